#!/usr/bin/env bash
# scripts/licenses.sh — the licence texts of the Go modules linked into
# tailbox, for redistributing its binaries (`make release` writes them to
# dist/THIRD_PARTY_LICENSES).
#
# Usage: scripts/licenses.sh GOOS/GOARCH...
#
# Prints Go's own LICENSE, then, for every module that cmd/tailbox imports
# on any of the given platforms (sorted by path), its path and version and
# each LICENSE*, LICENCE*, COPYING* and NOTICE* file at the module's root
# (and the files of a LICENSES directory there), unchanged. Fails
# naming the module when one has no licence file. Reads the module cache
# (`go mod download` fills it); the output depends on go.sum only.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: scripts/licenses.sh GOOS/GOARCH..." >&2; exit 2; }
go=${GO:-go}

modules=$(
  for p in "$@"; do
    GOOS=${p%/*} GOARCH=${p#*/} CGO_ENABLED=0 $go list -deps \
      -f '{{with .Module}}{{if not .Main}}{{with .Replace}}{{.Path}} {{.Version}} {{.Dir}}{{else}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}{{end}}' \
      ./cmd/tailbox
  done | LC_ALL=C sort -u
)

# section TITLE FILE prints FILE under a heading.
section() {
  printf '\n================================================================================\n'
  printf '%s\n' "$1"
  printf '================================================================================\n\n'
  cat "$2"
}

echo "tailbox binaries are statically linked with the Go standard library and"
echo "runtime and with the following Go modules. Each one's licence files follow,"
echo "unchanged."
section "Go standard library and runtime ($($go env GOVERSION)) — LICENSE" "$($go env GOROOT)/LICENSE"
while read -r path version dir; do
  [ -n "$path" ] || continue
  found=false
  # LICENSE, NOTICE..., and the files of a LICENSES directory.
  for f in $(cd "$dir" && LC_ALL=C ls | grep -iE '^(licen[cs]es?|copying|notice)([.-].*)?$' || true); do
    if [ -d "$dir/$f" ]; then
      for g in $(cd "$dir/$f" && LC_ALL=C ls); do
        [ -f "$dir/$f/$g" ] && section "$path $version — $f/$g" "$dir/$f/$g"
      done
    elif [ -f "$dir/$f" ]; then
      found=true
      section "$path $version — $f" "$dir/$f"
    fi
  done
  $found || { echo "scripts/licenses.sh: $path $version has no licence file in $dir" >&2; exit 1; }
done <<<"$modules"
