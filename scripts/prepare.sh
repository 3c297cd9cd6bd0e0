# scripts/prepare.sh — sourced, not run: how the scripts that prepare a
# machine (demo.sh, test.sh, mariadb.sh, .ci/run) install packages, download
# modules and build. Each such step prints one line saying what it does and
# roughly how long it takes, then how long it took; everything the step's
# command prints goes to a log file. A step that fails prints the last lines
# of its output and the log's path, and returns the command's exit status.
#
#   run_step DESCRIPTION ESTIMATE COMMAND [ARG...]
#       e.g. run_step "building bin/tailbox" "about 1 min the first time" go build ...
#       prints "==> building bin/tailbox (about 1 min the first time) ... done in 4 s"
#   apt_install PACKAGE...      apt-get update and install, as two steps
#   missing_packages PACKAGE... prints those whose program is not installed
#   find_bin NAME...            path of the first NAME on PATH or in an sbin directory
#
# Environment:
#   TAILBOX_STEP_LOG     the log the steps append to (default:
#                        <repo>/.tmp/install.log). A script that starts a run
#                        sets and exports it, so that the scripts it calls
#                        log to the same file.
#   TAILBOX_STEP_PREFIX  what a step's line starts with (default: "==> ")
#   TAILBOX_STEP_TAIL    how many lines of a failed step's output to print
#                        (default: 40; "all": the step's whole output)
#
# COMMAND runs with stdin from /dev/null: a question it asks (which nobody
# would see) fails it instead of hanging. COMMAND may be a shell function,
# but one that calls exit ends the calling script without a result line.

prepare_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# step_duration SECONDS prints a duration as "7 s" or "2 min 5 s".
step_duration() {
  if [ "$1" -lt 60 ]; then
    printf '%d s' "$1"
  else
    printf '%d min %d s' $(($1 / 60)) $(($1 % 60))
  fi
}

# run_step DESCRIPTION ESTIMATE COMMAND [ARG...] runs COMMAND with its output
# appended to $TAILBOX_STEP_LOG and prints one line on stdout: DESCRIPTION,
# ESTIMATE, and "done in N s" or "FAILED after N s (exit status S)". On
# failure the step's last lines and the log's path go to stderr. Returns
# COMMAND's exit status.
run_step() {
  local desc=$1 estimate=$2
  shift 2
  local log=${TAILBOX_STEP_LOG:-$prepare_repo/.tmp/install.log}
  local tail_lines=${TAILBOX_STEP_TAIL:-40}
  local offset=0 status=0 began=$SECONDS took
  mkdir -p "$(dirname "$log")"
  [ -f "$log" ] && offset=$(wc -c <"$log")
  printf '%s%s (%s) ... ' "${TAILBOX_STEP_PREFIX-==> }" "$desc" "$estimate"
  printf '\n=== %s: %s\n=== $ %s\n' "$(date '+%F %T')" "$desc" "$*" >>"$log"
  "$@" </dev/null >>"$log" 2>&1 || status=$?
  took=$(step_duration $((SECONDS - began)))
  if [ "$status" -eq 0 ]; then
    printf 'done in %s\n' "$took"
    printf '=== done in %s\n' "$took" >>"$log"
    return 0
  fi
  printf 'FAILED after %s (exit status %d)\n' "$took" "$status"
  {
    if [ "$tail_lines" = all ]; then
      printf -- '--- output of "%s" ---\n' "$desc"
      tail -c +$((offset + 1)) "$log"
    else
      printf -- '--- last %s lines of the output of "%s" ---\n' "$tail_lines" "$desc"
      tail -c +$((offset + 1)) "$log" | tail -n "$tail_lines"
    fi
    printf -- '--- the whole log: %s ---\n' "$log"
  } >&2
  printf '=== FAILED after %s (exit status %d)\n' "$took" "$status" >>"$log"
  return "$status"
}

# find_bin NAME... prints the path of the first NAME found on PATH or in the
# sbin directories, which are not on every user's PATH.
find_bin() {
  local name d
  for name in "$@"; do
    if command -v "$name" >/dev/null 2>&1; then
      command -v "$name"
      return 0
    fi
    for d in /usr/sbin /usr/local/sbin /sbin /usr/libexec; do
      if [ -x "$d/$name" ]; then
        printf '%s\n' "$d/$name"
        return 0
      fi
    done
  done
  return 1
}

# missing_packages PACKAGE... prints, one a line, each PACKAGE whose program
# is not installed: mariadbd for mariadb-server, mariadb for mariadb-client,
# the package's own name for anything else (kcat, make).
missing_packages() {
  local pkg
  for pkg in "$@"; do
    case $pkg in
      mariadb-server) find_bin mariadbd mysqld >/dev/null || echo "$pkg" ;;
      mariadb-client) find_bin mariadb mysql >/dev/null || echo "$pkg" ;;
      *) find_bin "$pkg" >/dev/null || echo "$pkg" ;;
    esac
  done
}

# apt_install PACKAGE... installs the packages from the distribution with
# apt-get (without recommended packages), as root or through sudo; sudo asks
# for its password before the step, on the terminal. Returns non-zero, with a
# message on stderr, when that is not possible or a step fails.
apt_install() {
  local estimate="about 15 s" sudo=()
  case " $* " in *" mariadb-server "*) estimate="about 1 min" ;; esac
  if ! command -v apt-get >/dev/null 2>&1; then
    printf 'no apt-get on this machine to install %s: install them yourself\n' "$*" >&2
    return 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      printf 'installing %s needs root: run "apt-get install %s" as root\n' "$*" "$*" >&2
      return 1
    fi
    sudo=(sudo)
    sudo -v || return
  fi
  # Lock::Timeout waits for another apt run (e.g. unattended upgrades)
  # instead of failing.
  run_step "updating the apt package lists" "about 20 s" \
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q || return
  run_step "installing $* with apt-get" "$estimate" \
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
    --no-install-recommends "$@"
}
