#!/usr/bin/env bash
# scripts/test.sh — what `make test` runs: every test, against real servers.
#
# Usage: scripts/test.sh [go test flags and packages...]
#   scripts/test.sh                      # go vet ./... and go test ./...
#   scripts/test.sh -run TestOutbox ./pkg/outbox/
#
# Downloads the Go modules, installs mariadb-server when it is missing, starts
# the shared MariaDB (scripts/mariadb.sh) — one line each on stderr, their
# output in .tmp/test-install.log (scripts/prepare.sh) —, exports its
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
#   TAILBOX_STEP_LOG         the log of the preparation steps (default:
#                            .tmp/test-install.log, emptied at start; when
#                            set, e.g. by .ci/run, appended to)
#   TAILBOX_STEP_TAIL        see scripts/prepare.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=prepare.sh
. scripts/prepare.sh

say() { printf '==> %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || { echo "test.sh: go is not on PATH" >&2; exit 1; }

if [ -z "${TAILBOX_STEP_LOG:-}" ]; then
  export TAILBOX_STEP_LOG=$repo/.tmp/test-install.log
  mkdir -p "$(dirname "$TAILBOX_STEP_LOG")"
  : >"$TAILBOX_STEP_LOG"
fi
export TAILBOX_STEP_LOG
run_step "downloading the Go modules" "about 30 s the first time" go mod download >&2

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

if [ "$was_running" = true ]; then
  say "MariaDB already runs: $(scripts/mariadb.sh status)"
else
  mapfile -t missing < <(missing_packages mariadb-server mariadb-client)
  if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}" >&2
  fi
  started_here=true
  run_step "starting MariaDB on 127.0.0.1:${TAILBOX_MARIADB_PORT:-33306}" "about 10 s" scripts/mariadb.sh start >&2
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
