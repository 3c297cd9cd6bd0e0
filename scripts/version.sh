#!/usr/bin/env bash
# scripts/version.sh — what `make build`, `make release` and the Dockerfile
# stamp into tailbox (internal/buildinfo, printed by `tailbox version`).
#
# Usage: scripts/version.sh version|commit|date|ldflags
#
#   version  the v* tag on HEAD (v1.2.3); past the latest one, v1.2.3-N-gHASH
#            (N commits later); before the first tag, v0.0.0-N-gHASH (N
#            commits in all); "-dirty" appended when tracked files have
#            uncommitted changes. HASH is 12 hex digits.
#   commit   HEAD's full hash
#   date     HEAD's commit time in UTC, RFC 3339 — or SOURCE_DATE_EPOCH's
#            when that is set — never the wall clock, so that two builds of
#            one commit are byte-identical
#   ldflags  the linker's -X flags setting all three
#
# Outside a git checkout: version "dev", commit and date empty; the binary
# then reports what the Go toolchain recorded (internal/buildinfo).
set -euo pipefail
cd "$(dirname "$0")/.."

pkg=github.com/tailbox-cdc/tailbox/internal/buildinfo

in_git() { git rev-parse --verify -q HEAD >/dev/null 2>&1; }

version() {
  in_git || { echo dev; return; }
  git describe --tags --match 'v[0-9]*' --abbrev=12 --dirty 2>/dev/null && return
  # No v* tag yet: the shape describe gives after one, counted from the
  # first commit, so that versions keep ordering by N.
  echo "v0.0.0-$(git rev-list --count HEAD)-g$(git describe --always --abbrev=12 --dirty --exclude '*')"
}

commit() {
  in_git || return 0
  git rev-parse HEAD
}

date_() {
  local fmt=%Y-%m-%dT%H:%M:%SZ
  if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    date -u -d "@$SOURCE_DATE_EPOCH" +$fmt 2>/dev/null || date -u -r "$SOURCE_DATE_EPOCH" +$fmt
    return
  fi
  in_git || return 0
  TZ=UTC0 git show -s --format=%cd --date=format-local:$fmt HEAD
}

case "${1:-}" in
  version) version ;;
  commit) commit ;;
  date) date_ ;;
  ldflags) echo "-X $pkg.version=$(version) -X $pkg.commit=$(commit) -X $pkg.date=$(date_)" ;;
  *) echo "usage: scripts/version.sh version|commit|date|ldflags" >&2; exit 2 ;;
esac
