#!/usr/bin/env bash
# scripts/mariadb.sh — a private MariaDB instance on loopback for tests and demos.
#
# Usage: scripts/mariadb.sh start|stop|status|env
#
#   start   install mariadb-server (and kcat) with apt when no server binary is
#           found, initialise the data directory when it is new, start the
#           server in the background, wait until it answers and make sure the
#           test user exists. A no-op when the instance already runs.
#   stop    shut the instance down cleanly (kill as a fallback); a no-op when
#           it is not running.
#   status  print whether the instance runs; exit 0 when it does, 3 when not.
#   env     print the `export TAILBOX_TEST_MYSQL_*=...` line for this instance
#           (use: eval "$(scripts/mariadb.sh env)").
#
# Environment:
#   TAILBOX_MARIADB_DIR         instance directory: my.cnf, data/, tmp/, socket,
#                               pid file, error.log (default: <repo>/.tmp/mariadb)
#   TAILBOX_MARIADB_PORT        TCP port on 127.0.0.1 (default: 33306)
#   TAILBOX_MARIADB_EXTRA_OPTS  extra lines appended to the [mysqld] section,
#                               e.g. "binlog_format=MIXED" for a deliberately
#                               misconfigured instance on another dir and port
#   TAILBOX_MARIADB_START_TIMEOUT  seconds to wait for the server (default: 60)
#   TAILBOX_MARIADB_NO_INSTALL  "1": fail instead of installing packages (tests)
#
# The server gets the settings tailbox needs (ROW format, FULL row image, FULL
# row metadata, GTID strict mode) and durability traded for speed: it is a
# test instance, never a place for real data. The user tailbox/tailbox has all
# privileges (WITH GRANT OPTION) from 127.0.0.1 and localhost; root has no
# password and is reachable only through the socket.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${TAILBOX_MARIADB_DIR:-$repo/.tmp/mariadb}
port=${TAILBOX_MARIADB_PORT:-33306}
extra_opts=${TAILBOX_MARIADB_EXTRA_OPTS:-}
start_timeout=${TAILBOX_MARIADB_START_TIMEOUT:-60}

test_user=tailbox
test_password=tailbox

log() { printf 'mariadb.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

case "$port" in
  '' | *[!0-9]*) die "TAILBOX_MARIADB_PORT must be a port number (got '$port')" ;;
esac

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
datadir=$dir/data
cnf=$dir/my.cnf
pidfile=$dir/mariadbd.pid
errlog=$dir/error.log
# A unix socket path is limited to 107 bytes; deep directories fall back to a
# name in /tmp derived from the instance directory.
socket=$dir/mariadbd.sock
if [ ${#socket} -gt 100 ]; then
  socket=/tmp/tailbox-mariadb-$(printf '%s' "$dir" | cksum | cut -d' ' -f1).sock
fi

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

# install_packages installs mariadb-server and kcat from the distribution.
install_packages() {
  if [ "${TAILBOX_MARIADB_NO_INSTALL:-}" = 1 ]; then
    die "no MariaDB server found and TAILBOX_MARIADB_NO_INSTALL=1: run 'scripts/mariadb.sh start' once to install it"
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "no MariaDB server found and no apt-get to install one: install mariadb-server 10.11 yourself"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "no MariaDB server found; installing it needs root: run 'apt-get install mariadb-server kcat' as root"
    sudo=(sudo)
  fi
  log "installing mariadb-server and kcat with apt-get"
  # Lock::Timeout waits for another apt run (e.g. unattended upgrades) instead of failing.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
    --no-install-recommends mariadb-server mariadb-client kcat
}

server_bin() { find_bin mariadbd mysqld; }

client_bins() {
  admin=$(find_bin mariadb-admin mysqladmin) || die "mariadb-admin not found (package mariadb-client)"
  client=$(find_bin mariadb mysql) || die "mariadb client not found (package mariadb-client)"
}

# alive succeeds while process $1 runs (a zombie waiting to be reaped has
# finished).
alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
  [ "$state" != Z ]
}

# pid prints the server's pid when its pid file names a live process.
pid() {
  local p
  [ -f "$pidfile" ] || return 1
  p=$(cat "$pidfile" 2>/dev/null) || return 1
  case "$p" in '' | *[!0-9]*) return 1 ;; esac
  alive "$p" || return 1
  printf '%s\n' "$p"
}

ping_server() {
  "$admin" --no-defaults --protocol=socket --socket="$socket" --user=root \
    --connect-timeout=2 ping >/dev/null 2>&1
}

sql() {
  "$client" --no-defaults --protocol=socket --socket="$socket" --user=root --batch "$@"
}

# port_busy succeeds when something accepts connections on 127.0.0.1:$port.
port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

show_log_tail() {
  if [ -f "$errlog" ]; then
    log "last lines of $errlog:"
    tail -n 20 "$errlog" >&2
  fi
}

write_config() {
  {
    echo "# Generated by scripts/mariadb.sh; rewritten at every start."
    echo "[mysqld]"
    if [ "$(id -u)" -eq 0 ]; then echo "user=root"; fi
    cat <<EOF
datadir=$datadir
tmpdir=$dir/tmp
socket=$socket
pid-file=$pidfile
log-error=$errlog
port=$port
bind-address=127.0.0.1
skip-name-resolve
server_id=1
log_bin=mysql-bin
binlog_format=ROW
binlog_row_image=FULL
binlog_row_metadata=FULL
binlog_annotate_row_events=OFF
gtid_strict_mode=ON
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci
innodb_buffer_pool_size=64M
innodb_log_file_size=32M
innodb_flush_log_at_trx_commit=2
innodb_buffer_pool_dump_at_shutdown=OFF
innodb_buffer_pool_load_at_startup=OFF
sync_binlog=0
max_allowed_packet=64M
performance_schema=OFF
EOF
    if [ -n "$extra_opts" ]; then
      echo "# TAILBOX_MARIADB_EXTRA_OPTS"
      printf '%s\n' "$extra_opts"
    fi
  } >"$cnf.tmp"
  mv "$cnf.tmp" "$cnf"
}

cmd_start() {
  local bin p i
  if p=$(pid); then
    log "already running (pid $p, port $port, dir $dir)"
    return 0
  fi
  if ! bin=$(server_bin); then
    install_packages
    bin=$(server_bin) || die "mariadb-server installed, but no mariadbd binary found"
  fi
  client_bins
  if port_busy; then
    die "port $port on 127.0.0.1 is already in use by another process: set TAILBOX_MARIADB_PORT"
  fi

  write_config
  # Its own tmpdir: with /tmp shared, instances started at the same moment
  # (tests run packages in parallel) lost each other's temporary table
  # files ("Error on delete of '/tmp/#sql-temptable-...'" from
  # mariadb-install-db).
  mkdir -p "$dir/tmp"
  rm -f "$pidfile" "$socket"
  if [ ! -d "$datadir/mysql" ]; then
    log "initialising $datadir"
    rm -rf "$datadir"
    local install_db
    install_db=$(find_bin mariadb-install-db mysql_install_db) || die "mariadb-install-db not found"
    if ! "$install_db" --defaults-file="$cnf" --auth-root-authentication-method=normal \
      --skip-test-db >"$dir/install-db.log" 2>&1; then
      log "mariadb-install-db failed (output in $dir/install-db.log)"
      show_log_tail
      exit 1
    fi
  fi

  log "starting $bin on 127.0.0.1:$port (dir $dir)"
  # setsid detaches the server from this script's process group and terminal,
  # so that it keeps running after the script exits.
  setsid "$bin" --defaults-file="$cnf" </dev/null >>"$errlog" 2>&1 &
  local server_pid=$!

  for ((i = 0; i < start_timeout * 5; i++)); do
    if ping_server; then
      break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      log "the server exited during start-up"
      show_log_tail
      exit 1
    fi
    sleep 0.2
  done
  if ! ping_server; then
    log "the server did not answer within ${start_timeout}s"
    show_log_tail
    kill "$server_pid" 2>/dev/null || true
    exit 1
  fi

  sql <<EOF
CREATE USER IF NOT EXISTS '$test_user'@'127.0.0.1' IDENTIFIED BY '$test_password';
CREATE USER IF NOT EXISTS '$test_user'@'localhost' IDENTIFIED BY '$test_password';
ALTER USER '$test_user'@'127.0.0.1' IDENTIFIED BY '$test_password';
ALTER USER '$test_user'@'localhost' IDENTIFIED BY '$test_password';
GRANT ALL PRIVILEGES ON *.* TO '$test_user'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$test_user'@'localhost' WITH GRANT OPTION;
EOF
  log "ready: 127.0.0.1:$port, socket $socket, user $test_user"
}

cmd_stop() {
  local p i
  if ! p=$(pid); then
    log "not running (dir $dir)"
    rm -f "$pidfile"
    return 0
  fi
  client_bins
  log "stopping pid $p"
  # The SHUTDOWN statement returns at once (mariadb-admin shutdown polls
  # the pid file once a second); SIGTERM is the same clean shutdown.
  sql --connect-timeout=5 -e SHUTDOWN >/dev/null 2>&1 || kill -TERM "$p" 2>/dev/null || true
  for ((i = 0; i < 600; i++)); do
    alive "$p" || break
    sleep 0.05
  done
  if alive "$p"; then
    log "pid $p still running after 30s: killing it"
    kill -KILL "$p" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
  log "stopped"
}

cmd_status() {
  local p
  if p=$(pid); then
    echo "running: pid $p, 127.0.0.1:$port, socket $socket, dir $dir"
    return 0
  fi
  echo "not running (dir $dir)"
  return 3
}

cmd_env() {
  printf 'export TAILBOX_TEST_MYSQL_ADDR=127.0.0.1:%s TAILBOX_TEST_MYSQL_USER=%s TAILBOX_TEST_MYSQL_PASSWORD=%s TAILBOX_TEST_MYSQL_SOCKET=%s\n' \
    "$port" "$test_user" "$test_password" "$socket"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
