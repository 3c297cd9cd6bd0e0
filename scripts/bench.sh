#!/usr/bin/env bash
# scripts/bench.sh — what `make bench` runs: the backlog benchmark of
# internal/bench on a private MariaDB (its own dir and port, .tmp/bench-mariadb
# on 33308) and devkafka as a separate process. Arguments go to the benchmark
# (e.g. -rows 1000000). Stops everything it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
work=$repo/.tmp/bench
mkdir -p "$work"
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

go build -trimpath -o bin/tailbox ./cmd/tailbox
go build -trimpath -o bin/devkafka ./cmd/devkafka
go build -trimpath -o bin/bench ./internal/bench

rm -f "$work/devkafka.addr"
bin/devkafka -listen 127.0.0.1:0 -partitions 8 -ready-file "$work/devkafka.addr" >"$work/devkafka.log" 2>&1 &
devkafka_pid=$!
for _ in $(seq 1 200); do [ -s "$work/devkafka.addr" ] && break; sleep 0.1; done
[ -s "$work/devkafka.addr" ] || { cat "$work/devkafka.log" >&2; echo "devkafka did not start" >&2; exit 1; }

bin/bench -brokers "$(cat "$work/devkafka.addr")" -tailbox bin/tailbox "$@"
