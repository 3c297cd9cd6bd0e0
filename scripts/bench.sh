#!/usr/bin/env bash
# scripts/bench.sh — what `make bench` runs: internal/bench (scenarios
# backlog, mixed, live, bigtxn, startup, with their read and produce
# ceilings) on a private MariaDB (its own dir and port, .tmp/bench-mariadb on
# 33308; with -own-server its old binary logs are purged and the binlog is
# rotated before each scenario) and devkafka as a separate process.
# Arguments go to the benchmark, e.g.
#   scripts/bench.sh -scenario backlog,mixed -rows 1000000 -profile .tmp/bench/profile
# Binaries are built into .tmp/bench/bin. Stops everything it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
work=$repo/.tmp/bench
mkdir -p "$work/bin"
export TAILBOX_MARIADB_DIR=${TAILBOX_BENCH_MARIADB_DIR:-$repo/.tmp/bench-mariadb}
export TAILBOX_MARIADB_PORT=${TAILBOX_BENCH_MARIADB_PORT:-33308}

devkafka_pid=
cleanup() {
  if [ -n "$devkafka_pid" ]; then kill "$devkafka_pid" 2>/dev/null || true; wait "$devkafka_pid" 2>/dev/null || true; fi
  scripts/mariadb.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

scripts/mariadb.sh start
eval "$(scripts/mariadb.sh env)"

go build -trimpath -o "$work/bin/tailbox" ./cmd/tailbox
go build -trimpath -o "$work/bin/devkafka" ./cmd/devkafka
go build -trimpath -o "$work/bin/bench" ./internal/bench

rm -f "$work/devkafka.addr"
"$work/bin/devkafka" -listen 127.0.0.1:0 -partitions 8 -ready-file "$work/devkafka.addr" >"$work/devkafka.log" 2>&1 &
devkafka_pid=$!
for _ in $(seq 1 200); do [ -s "$work/devkafka.addr" ] && break; sleep 0.1; done
[ -s "$work/devkafka.addr" ] || { cat "$work/devkafka.log" >&2; echo "devkafka did not start" >&2; exit 1; }

"$work/bin/bench" -brokers "$(cat "$work/devkafka.addr")" -tailbox "$work/bin/tailbox" -own-server "$@"
