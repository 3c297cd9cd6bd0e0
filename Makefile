# tailbox — common tasks. `make help` lists them.

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.DEFAULT_GOAL := help

.PHONY: help build test soak bench demo mariadb-start mariadb-stop fmt vet clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/tailbox and bin/devkafka
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/tailbox ./cmd/tailbox
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/devkafka ./cmd/devkafka

test: ## go vet and all tests against a private MariaDB (scripts/test.sh; ARGS="-run X" passes flags)
	scripts/test.sh $(ARGS)

soak: ## long fault runs: 200 kill -9 of tailbox under load (100 with exactly_once), repeated broker and MariaDB crashes (TAILBOX_SOAK_KILLS=N)
	TAILBOX_SOAK=1 TAILBOX_TEST_TIMEOUT=$${TAILBOX_TEST_TIMEOUT:-90m} scripts/test.sh -v -run 'TestCrash|TestFault|TestExactlyOnceKill9' ./e2e/ $(ARGS)

bench: ## benchmarks vs the read/produce ceilings (scripts/bench.sh; ARGS="-scenario backlog -rows 200000 -profile .tmp/bench/profile")
	scripts/bench.sh $(ARGS)

demo: ## end-to-end demo: MariaDB + devkafka + tailbox + kcat (scripts/demo.sh)
	scripts/demo.sh

mariadb-start: ## start the shared test MariaDB on 127.0.0.1:33306 (scripts/mariadb.sh)
	scripts/mariadb.sh start
	@scripts/mariadb.sh env

mariadb-stop: ## stop the shared test MariaDB
	scripts/mariadb.sh stop

fmt: ## gofmt every Go file
	gofmt -w .

vet: ## go vet ./...
	$(GO) vet ./...

clean: ## remove bin/ and .tmp/ (stops the MariaDB instances there first)
	-scripts/mariadb.sh stop
	-TAILBOX_MARIADB_DIR=.tmp/demo-mariadb TAILBOX_MARIADB_PORT=33307 scripts/mariadb.sh stop
	rm -rf bin .tmp
