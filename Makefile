# tailbox — common tasks. `make help` lists them.

GO      ?= go

# What `tailbox version` and tailbox_build_info report, from git
# (scripts/version.sh): VERSION is the v* tag, v1.2.3-N-gHASH past it,
# v0.0.0-N-gHASH before the first, -dirty with uncommitted changes; DATE is
# the commit's time (or SOURCE_DATE_EPOCH's). Outside a git checkout set
# them: make release VERSION=v1.2.3 COMMIT=<hash> DATE=2026-01-02T03:04:05Z.
VERSION ?= $(shell scripts/version.sh version)
COMMIT  ?= $(shell scripts/version.sh commit)
DATE    ?= $(shell scripts/version.sh date)
BUILDINFO := github.com/tailbox-cdc/tailbox/internal/buildinfo
LDFLAGS   := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT) -X $(BUILDINFO).date=$(DATE)

# Release builds (make release, make binary, the Dockerfile): static
# (CGO_ENABLED=0), baseline instruction sets, no build paths (-trimpath),
# no VCS stamp or build ID, symbols stripped, the date from the commit —
# so that two builds of one commit with one Go version are byte-identical.
PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
DIST      ?= dist
GOOS      ?= $(shell $(GO) env GOOS)
GOARCH    ?= $(shell $(GO) env GOARCH)
OUT       ?= bin/tailbox-$(GOOS)-$(GOARCH)
# release_build(GOOS, GOARCH, OUT) is the one release build command.
release_build = GOOS=$(1) GOARCH=$(2) CGO_ENABLED=0 GOAMD64=v1 GOARM64=v8.0 \
	$(GO) build -trimpath -buildvcs=false -ldflags "-s -w -buildid= $(LDFLAGS)" -o $(3) ./cmd/tailbox
SHA256SUM ?= $(shell command -v sha256sum >/dev/null 2>&1 && echo sha256sum || echo shasum -a 256)

.DEFAULT_GOAL := help

.PHONY: help build binary release test soak bench demo mariadb-start mariadb-stop fmt vet clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/tailbox and bin/devkafka for this machine, stamped with VERSION, COMMIT and DATE
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/tailbox ./cmd/tailbox
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/devkafka ./cmd/devkafka

binary: ## one release binary as release builds it: GOOS, GOARCH (default this machine's), OUT (default bin/tailbox-GOOS-GOARCH)
	$(call release_build,$(GOOS),$(GOARCH),$(OUT))

release: ## static, reproducible tailbox-VERSION-OS-ARCH for PLATFORMS (linux, darwin × amd64, arm64) in DIST (dist/), with LICENSE, NOTICE, THIRD_PARTY_LICENSES and SHA256SUMS
	@case "$(VERSION)" in *-dirty) echo "make release: warning: uncommitted changes; $(VERSION) cannot be rebuilt from its commit" >&2;; esac
	@mkdir -p $(DIST)
	rm -f $(DIST)/tailbox-* $(DIST)/LICENSE $(DIST)/NOTICE $(DIST)/THIRD_PARTY_LICENSES $(DIST)/SHA256SUMS
	@set -e; for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; \
	  echo "go build $(DIST)/tailbox-$(VERSION)-$$os-$$arch"; \
	  $(call release_build,$$os,$$arch,$(DIST)/tailbox-$(VERSION)-$$os-$$arch); \
	done
	cp LICENSE NOTICE $(DIST)/
	scripts/licenses.sh $(PLATFORMS) >$(DIST)/THIRD_PARTY_LICENSES
	cd $(DIST) && LC_ALL=C $(SHA256SUM) $$(LC_ALL=C ls tailbox-$(VERSION)-*) LICENSE NOTICE THIRD_PARTY_LICENSES >SHA256SUMS
	@cd $(DIST) && ls -l tailbox-$(VERSION)-* && cat SHA256SUMS

test: ## go vet and all tests against a private MariaDB (scripts/test.sh; ARGS="-run X" passes flags)
	scripts/test.sh $(ARGS)

soak: ## long fault runs: 200 kill -9 of tailbox under load (100 with exactly_once), repeated broker and MariaDB crashes (TAILBOX_SOAK_KILLS=N)
	TAILBOX_SOAK=1 TAILBOX_TEST_TIMEOUT=$${TAILBOX_TEST_TIMEOUT:-90m} scripts/test.sh -v -run 'TestCrash|TestFault|TestExactlyOnceKill9' ./e2e/ $(ARGS)

bench: ## benchmarks vs the read/produce ceilings (scripts/bench.sh; ARGS="-scenario backlog -rows 200000 -profile .tmp/bench/profile")
	scripts/bench.sh $(ARGS)

demo: ## end-to-end demo: MariaDB + devkafka + tailbox + the member and board services (examples/), tailbox killed with -9 mid-stream (scripts/demo.sh)
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

clean: ## remove bin/, dist/ and .tmp/ (stops the MariaDB instances there first)
	-scripts/mariadb.sh stop
	-TAILBOX_MARIADB_DIR=.tmp/demo-mariadb TAILBOX_MARIADB_PORT=33307 scripts/mariadb.sh stop
	rm -rf bin dist .tmp
