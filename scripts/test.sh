#!/usr/bin/env bash
# scripts/test.sh — what `make test` runs: every test, against real servers.
#
# Usage: scripts/test.sh [go test flags and packages...]
#   scripts/test.sh                      # go vet ./... and go test ./...
#   scripts/test.sh -run TestOutbox ./pkg/outbox/
#
# Downloads the Go modules, starts the shared MariaDB (scripts/mariadb.sh,
# installing mariadb-server and kcat when missing), exports its
# TAILBOX_TEST_MYSQL_* variables and TAILBOX_TEST_REQUIRE_SERVERS=1 (a test
# that cannot reach a server fails instead of skipping), runs go vet and
# go test, and stops MariaDB again. Kafka needs no server: tests run franz-go
# kfake in-process (internal/testenv).
#
# Arguments are passed to go test; when none of them names a package (./x,
# ../x or github.com/...), ./... is vetted and tested, else the named
# packages are. go test runs even when go vet fails. Exit status: go test's
# when it fails, else go vet's.
#
# Environment:
#   TAILBOX_KEEP_SERVERS=1   leave MariaDB running afterwards (faster reruns)
#   TAILBOX_TEST_TIMEOUT     go test -timeout (default: 20m)
#   TAILBOX_TEST_ARTIFACTS   where go test's output and the whole tailbox log
#                            of each failed e2e test go (default: .tmp/test-artifacts)
#   TAILBOX_MARIADB_DIR, TAILBOX_MARIADB_PORT   see scripts/mariadb.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

say() { printf '==> %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || { echo "test.sh: go is not on PATH" >&2; exit 1; }

say "go mod download"
go mod download

started_here=false
was_running=false
if scripts/mariadb.sh status >/dev/null 2>&1; then
  was_running=true
fi

stop_servers() {
  if [ "$started_here" = true ] && [ "${TAILBOX_KEEP_SERVERS:-}" != 1 ]; then
    scripts/mariadb.sh stop || true
  fi
}
trap stop_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting MariaDB"
scripts/mariadb.sh start
if [ "$was_running" = false ]; then
  started_here=true
fi
eval "$(scripts/mariadb.sh env)"
export TAILBOX_TEST_REQUIRE_SERVERS=1

# Test ./... unless arguments name packages; vet what is tested.
pkgs=(./...)
vet_pkgs=()
for arg in "$@"; do
  case "$arg" in
    ./* | ../* | github.com/*) pkgs=() vet_pkgs+=("$arg") ;;
  esac
done
[ "${#vet_pkgs[@]}" -gt 0 ] || vet_pkgs=(./...)

say "go vet ${vet_pkgs[*]}"
vet_status=0
go vet "${vet_pkgs[@]}" || vet_status=$?

# go test's output is also kept in a file, so that a failure's own message
# can be repeated at the very end, below the logs of every other test.
export TAILBOX_TEST_ARTIFACTS=${TAILBOX_TEST_ARTIFACTS:-$repo/.tmp/test-artifacts}
mkdir -p "$TAILBOX_TEST_ARTIFACTS"
rm -f "$TAILBOX_TEST_ARTIFACTS"/Test*.log # an earlier run's
out="$TAILBOX_TEST_ARTIFACTS/go-test.log"
say "go test -count=1 -timeout ${TAILBOX_TEST_TIMEOUT:-20m} ${*:-} ${pkgs[*]:-}"
set +e
go test -count=1 -timeout "${TAILBOX_TEST_TIMEOUT:-20m}" "$@" "${pkgs[@]}" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  say "tests failed (go test exit status $status); what failed, from $out:"
  # The FAIL lines, the first line of each test message (those of a saved
  # tailbox log name its file), and panics.
  grep -E '^[[:space:]]*--- FAIL|^[[:space:]]+[[:alnum:]_]+_test\.go:[0-9]+: |^panic:|^FAIL[[:space:]]' "$out" \
    | cut -c1-300 | tail -n 80 >&2 || true
  say "tests failed (go test exit status $status); whole logs of failed runs: $TAILBOX_TEST_ARTIFACTS"
elif [ "$vet_status" -ne 0 ]; then
  say "tests passed, but go vet failed (exit status $vet_status)"
  status=$vet_status
else
  say "vet and tests passed"
fi
exit "$status"
