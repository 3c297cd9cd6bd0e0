#!/usr/bin/env bash
# scripts/demo.sh — `make demo`: the transactional outbox end to end on one
# machine, without Docker: the seed's scenario with real services.
#
#   member service --(one transaction)--> member DB --binlog--> tailbox
#       --> devkafka --> board service --(inbox, one transaction)--> board DB
#
# It starts a private MariaDB for the demo (its own directory and port, apart
# from the test instance) holding the member and board databases, builds and
# starts devkafka (a Kafka-protocol broker), tailbox and the two example
# services (examples/member, examples/board). The member service withdraws
# members, each withdrawal one transaction that updates the member's row and
# writes a MemberWithdrawn event with pkg/outboxwriter (every 10th fails and
# is rolled back: its event must never appear). The board service consumes
# the events with franz-go and, through pkg/inbox, hides each withdrawn
# member's posts in its own database. Mid-stream the demo kills tailbox with
# -9 and restarts it: tailbox publishes again what it had sent since its last
# checkpoint, and the board shows those redelivered events were no-ops.
#
# The demo checks the outcome and exits non-zero when it is wrong: exactly
# the posts of the members whose withdrawal committed are hidden, each event
# was applied once (the inbox holds one row per committed event), every
# record after an event's first was a no-op, and there were redeliveries.
# It stops tailbox with SIGTERM (expecting exit 0), shows the checkpoint it
# wrote, and stops everything it started. Exit status 0 means the whole path
# works.
#
# Installs mariadb-server and kcat with apt when they are missing. Installing,
# downloading modules, building and starting MariaDB print one line each
# (scripts/prepare.sh); their output goes to .tmp/demo-install.log, and the
# last lines of it are printed when one of them fails.
#
# Environment:
#   TAILBOX_DEMO_DIR          work directory: config, logs, checkpoint
#                             (default: <repo>/.tmp/demo, emptied at start)
#   TAILBOX_DEMO_MARIADB_DIR  the demo MariaDB (default: <repo>/.tmp/demo-mariadb)
#   TAILBOX_DEMO_MYSQL_PORT   its port on 127.0.0.1 (default: 33307)
#   TAILBOX_DEMO_INSTALL_LOG  the log of those steps (default: <repo>/.tmp/demo-install.log,
#                             emptied at start)
#   TAILBOX_BIN               a tailbox binary to use instead of building bin/tailbox
#   TAILBOX_DEMO_MEMBERS      members of the demo (default: 200; 3/4 of them withdraw)
#   TAILBOX_KEEP_SERVERS=1    leave the demo MariaDB running afterwards
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=prepare.sh
. scripts/prepare.sh

demo_dir=${TAILBOX_DEMO_DIR:-$repo/.tmp/demo}
mariadb_dir=${TAILBOX_DEMO_MARIADB_DIR:-$repo/.tmp/demo-mariadb}
mysql_port=${TAILBOX_DEMO_MYSQL_PORT:-33307}
topic=outbox.event.member
export TAILBOX_STEP_LOG=${TAILBOX_DEMO_INSTALL_LOG:-$repo/.tmp/demo-install.log}
TAILBOX_STEP_PREFIX="    "
members=${TAILBOX_DEMO_MEMBERS:-200}
withdrawing=$((members * 3 / 4)) # members 1..withdrawing withdraw; the others stay
posts_per_member=3
fail_every=10 # every 10th withdrawal is rolled back

# The password reaches tailbox through the environment: the config says
# ${TAILBOX_MYSQL_PASSWORD}, never the secret itself.
export TAILBOX_MYSQL_PASSWORD=tailbox

bold= plain=
if [ -t 1 ]; then
  bold=$(tput bold 2>/dev/null || true)
  plain=$(tput sgr0 2>/dev/null || true)
fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
note() { printf '    %s\n' "$*"; }
die() {
  printf '\ndemo: FAILED: %s\n' "$*" >&2
  exit 1
}

# --- cleanup: stop everything this script started --------------------------
tailbox_pid=
devkafka_pid=
member_pid=
board_pid=
mariadb_started=false

# stop_process PID NAME sends SIGTERM and waits up to 15s, then SIGKILL.
stop_process() {
  local pid=$1 name=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "demo: $name (pid $pid) ignored SIGTERM for 15s: killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$tailbox_pid" ]; then
    stop_process "$tailbox_pid" tailbox
    if [ "$rc" -ne 0 ] && [ -f "$demo_dir/tailbox.log" ]; then
      echo "--- last lines of $demo_dir/tailbox.log ---" >&2
      tail -n 40 "$demo_dir/tailbox.log" >&2
    fi
  fi
  if [ -n "$member_pid" ]; then
    stop_process "$member_pid" "member service"
  fi
  if [ -n "$board_pid" ]; then
    stop_process "$board_pid" "board service"
    if [ "$rc" -ne 0 ] && [ -f "$demo_dir/board.log" ]; then
      echo "--- last lines of $demo_dir/board.log ---" >&2
      tail -n 20 "$demo_dir/board.log" >&2
    fi
  fi
  if [ -n "$devkafka_pid" ]; then
    stop_process "$devkafka_pid" devkafka
  fi
  if [ "$mariadb_started" = true ] && [ "${TAILBOX_KEEP_SERVERS:-}" != 1 ]; then
    TAILBOX_MARIADB_DIR=$mariadb_dir TAILBOX_MARIADB_PORT=$mysql_port \
      scripts/mariadb.sh stop >/dev/null 2>&1 || true
  fi
  if [ "$rc" -eq 0 ]; then
    printf '\n%sdemo: OK%s — everything it started is stopped.\n' "$bold" "$plain"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# sql runs SQL from stdin as the service would, over TCP as user tailbox.
sql() {
  MYSQL_PWD=$TAILBOX_MYSQL_PASSWORD mariadb --no-defaults --protocol=tcp -h 127.0.0.1 \
    -P "$mysql_port" -u tailbox --batch --skip-column-names "$@"
}

# --- prerequisites ---------------------------------------------------------
step "Checking prerequisites"
command -v go >/dev/null 2>&1 || die "go is not on PATH (needed to build tailbox, devkafka and the services)"
mkdir -p "$(dirname "$TAILBOX_STEP_LOG")"
: >"$TAILBOX_STEP_LOG"
note "the output of installing, building and starting MariaDB goes to ${TAILBOX_STEP_LOG#"$repo"/}"
mapfile -t missing < <(missing_packages mariadb-server mariadb-client kcat)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}" || die "cannot install ${missing[*]}"
fi
have_python=false
command -v python3 >/dev/null 2>&1 && have_python=true
note "go: $(go version | cut -d' ' -f3), kcat: $(kcat -V 2>/dev/null | sed -n 's/^Version \([^ ]*\).*/\1/p')"

rm -rf "$demo_dir"
mkdir -p "$demo_dir"

# --- MariaDB ---------------------------------------------------------------
step "Starting the demo's MariaDB (the member and board databases) on 127.0.0.1:$mysql_port"
mariadb_started=true # the demo instance is the demo's own: stopped at exit
run_step "starting MariaDB in ${mariadb_dir#"$repo"/}" "about 10 s" \
  env TAILBOX_MARIADB_DIR="$mariadb_dir" TAILBOX_MARIADB_PORT="$mysql_port" scripts/mariadb.sh start ||
  die "cannot start the demo MariaDB"
sql -e "SELECT CONCAT('    ', VERSION(), ', binlog_format=', @@binlog_format, ', binlog_row_image=', @@binlog_row_image, ', binlog_row_metadata=', @@binlog_row_metadata)"

# --- build -----------------------------------------------------------------
step "Building tailbox, devkafka and the example services"
version=$(scripts/version.sh version)
mkdir -p bin
run_step "downloading the Go modules" "about 30 s the first time" go mod download ||
  die "cannot download the Go modules"
run_step "building bin/devkafka" "about 1 min the first time" \
  go build -trimpath -o bin/devkafka ./cmd/devkafka || die "cannot build cmd/devkafka"
if [ -n "${TAILBOX_BIN:-}" ]; then
  tailbox_bin=$TAILBOX_BIN
  note "using TAILBOX_BIN=$tailbox_bin"
else
  run_step "building bin/tailbox" "about 1 min the first time" \
    go build -trimpath -ldflags "$(scripts/version.sh ldflags)" -o bin/tailbox ./cmd/tailbox ||
    die "cannot build cmd/tailbox"
  tailbox_bin=$repo/bin/tailbox
fi
run_step "building bin/member and bin/board (examples/)" "about 20 s the first time" \
  go build -trimpath -o bin/ ./examples/member ./examples/board || die "cannot build examples/member and examples/board"
note "bin/devkafka, bin/member, bin/board, $tailbox_bin ($version)"

# --- Kafka -----------------------------------------------------------------
step "Starting devkafka (a local Kafka-protocol broker)"
ready=$demo_dir/devkafka.addr
bin/devkafka -listen 127.0.0.1:0 -partitions 3 -ready-file "$ready" \
  >"$demo_dir/devkafka.log" 2>&1 &
devkafka_pid=$!
for ((i = 0; i < 200; i++)); do
  [ -s "$ready" ] && break
  kill -0 "$devkafka_pid" 2>/dev/null || { cat "$demo_dir/devkafka.log" >&2; die "devkafka exited"; }
  sleep 0.1
done
[ -s "$ready" ] || die "devkafka did not become ready within 20s"
kafka=$(cat "$ready")
note "bootstrap: $kafka (pid $devkafka_pid)"

# --- the services' databases -------------------------------------------------
step "Setting up the member and board services' databases"
sql -e "DROP DATABASE IF EXISTS member; CREATE DATABASE member; DROP DATABASE IF EXISTS board; CREATE DATABASE board"
# The services read their DSN from the environment: the password stays off
# the process list.
export MEMBER_DSN="tailbox:$TAILBOX_MYSQL_PASSWORD@tcp(127.0.0.1:$mysql_port)/member"
export BOARD_DSN="tailbox:$TAILBOX_MYSQL_PASSWORD@tcp(127.0.0.1:$mysql_port)/board"
bin/member setup -members "$members" 2>&1 | sed 's/^/    /'
[ "${PIPESTATUS[0]}" -eq 0 ] || die "member setup failed"
bin/board setup -members "$members" -posts "$posts_per_member" 2>&1 | sed 's/^/    /'
[ "${PIPESTATUS[0]}" -eq 0 ] || die "board setup failed"

# Start from the binlog position right after the setup: every later commit
# is captured, however long tailbox takes to connect.
start_gtid=$(sql -e "SELECT @@gtid_binlog_pos")
start_from=earliest
[ -n "$start_gtid" ] && start_from=gtid:$start_gtid

# --- tailbox -----------------------------------------------------------------
step "Starting tailbox"
config=$demo_dir/tailbox.yaml
checkpoint=$demo_dir/demo.checkpoint.json
cat >"$config" <<EOF
# Generated by scripts/demo.sh.
name: demo
source:
  addr: 127.0.0.1:$mysql_port
  user: tailbox
  password: \${TAILBOX_MYSQL_PASSWORD}
  server_id: 5401
start:
  from: "$start_from"
outbox:
  tables: [member.outbox]
kafka:
  brokers: [$kafka]
checkpoint:
  file: $checkpoint
  # Long on purpose (default 1s): the kill -9 below comes before the next
  # periodic checkpoint, so most of what was published before it (all after
  # the start point) is sent again.
  interval: 10m
http:
  listen: ""
log:
  level: info
  format: console
EOF
sed 's/^/    /' "$config"
note "tailbox check: the preflight of server settings, grants, table and Kafka"
"$tailbox_bin" check -c "$config" 2>&1 | sed 's/^/    /'
[ "${PIPESTATUS[0]}" -eq 0 ] || die "tailbox check found a problem"

# start_tailbox RUN starts tailbox in the background, its log appended to
# tailbox.log, and waits until this (the RUN-th) run has logged that it
# starts: its start position is then fixed.
start_tailbox() {
  local run=$1 i
  "$tailbox_bin" run -c "$config" >>"$demo_dir/tailbox.log" 2>&1 &
  tailbox_pid=$!
  for ((i = 0; i < 300; i++)); do
    kill -0 "$tailbox_pid" 2>/dev/null || {
      wait "$tailbox_pid" && rc=0 || rc=$?
      tailbox_pid=
      tail -n 40 "$demo_dir/tailbox.log" >&2
      die "tailbox exited at start (status $rc)"
    }
    [ "$(grep -c ' INF starting ' "$demo_dir/tailbox.log")" -ge "$run" ] && return 0
    sleep 0.1
  done
  die "tailbox did not start within 30s"
}
start_tailbox 1
note "tailbox runs (pid $tailbox_pid), log in $demo_dir/tailbox.log"

# board_stat NAME prints one of the board service's counters (-stats).
board_stat() {
  local v
  v=$(sed -n "s/.*\\b$1=\\([0-9]*\\).*/\\1/p" "$demo_dir/board.stats" 2>/dev/null)
  echo "${v:-0}"
}
board_stats() {
  note "board: consumed $(board_stat consumed) records, applied $(board_stat applied), no-ops $(board_stat noops), posts hidden $(board_stat hidden)"
}

# --- the services at work ----------------------------------------------------
step "Starting the board service (franz-go consumer group \"board\", inbox table board.inbox)"
bin/board run -brokers "$kafka" -topic "$topic" -stats "$demo_dir/board.stats" >"$demo_dir/board.log" 2>&1 &
board_pid=$!
note "bin/board (pid $board_pid), log in $demo_dir/board.log"

step "Member service: members 1-$withdrawing withdraw, one transaction each (row + MemberWithdrawn event)"
note "every ${fail_every}th withdrawal fails after writing its event and is rolled back: no event, posts stay"
bin/member withdraw -every 10ms -fail-every "$fail_every" "1-$withdrawing" >"$demo_dir/member.log" 2>&1 &
member_pid=$!

# wait_until SECONDS WHAT COMMAND... polls COMMAND every 0.1s.
wait_until() {
  local limit=$1 what=$2 i
  shift 2
  for ((i = 0; i < limit * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  board_stats >&2
  die "timed out after ${limit}s waiting until $what"
}
applied_at_least() { [ "$(board_stat applied)" -ge "$1" ]; }
consumed_at_least() { [ "$(board_stat consumed)" -ge "$1" ]; }

wait_until 60 "the board applied 40 events" applied_at_least 40

# --- kill -9 -----------------------------------------------------------------
step "kill -9 tailbox mid-stream (its last checkpoint is from its first seconds)"
kill -KILL "$tailbox_pid"
wait "$tailbox_pid" 2>/dev/null || true
tailbox_pid=
applied_at_kill=$(board_stat applied)
board_stats
note "the member service keeps committing; its events wait in the binlog"
sleep 1

step "Restarting tailbox: it resumes from its checkpoint and publishes again what it had sent since"
start_tailbox 2
note "tailbox runs again (pid $tailbox_pid)"
wait "$member_pid" || die "the member service failed: $(cat "$demo_dir/member.log")"
member_pid=
sed 's/^/    /' "$demo_dir/member.log"
committed=$(sql -e "SELECT COUNT(*) FROM member.outbox")
wait_until 60 "the board applied all $committed committed events" applied_at_least "$committed"
board_stats

# --- stop tailbox ------------------------------------------------------------
step "Stopping tailbox with SIGTERM (it drains, writes its checkpoint, exits 0)"
kill -TERM "$tailbox_pid"
rc=0
for ((i = 0; i < 300; i++)); do
  kill -0 "$tailbox_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$tailbox_pid" 2>/dev/null && die "tailbox still running 30s after SIGTERM"
wait "$tailbox_pid" || rc=$?
tailbox_pid=
[ "$rc" -eq 0 ] || { tail -n 40 "$demo_dir/tailbox.log" >&2; die "tailbox exited with status $rc after SIGTERM, want 0"; }
note "tailbox exited 0; the last lines of its log:"
tail -n 4 "$demo_dir/tailbox.log" | cut -c 1-150 | sed 's/^/      /'

# --- the board's result ------------------------------------------------------
step "The board service's result"
records=$(kcat -b "$kafka" -C -t "$topic" -o beginning -e -q -f '%o\n' 2>/dev/null | wc -l)
wait_until 60 "the board consumed all $records records of $topic" consumed_at_least "$records"
kill -TERM "$board_pid"
wait "$board_pid" || die "the board service exited with status $? after SIGTERM, want 0"
board_pid=
consumed=$(board_stat consumed) applied=$(board_stat applied) noops=$(board_stat noops)
hidden=$(board_stat hidden) skipped=$(board_stat skipped)
withdrawn=$(sql -e "SELECT COUNT(*) FROM member.members WHERE status = 'WITHDRAWN'")
note "$topic holds $records records for $committed committed events (kcat)"
note "board consumed $consumed: applied $applied (once per event), no-ops $noops (sent again after the kill -9)"
note "posts hidden: $hidden = $posts_per_member for each of the $withdrawn withdrawn members"
sql -e "SELECT CONCAT('    posts of members who stayed, or whose withdrawal was rolled back: ', COUNT(*), ', hidden: ', COALESCE(SUM(p.hidden), 0))
        FROM board.posts p JOIN member.members m ON m.id = p.author_id WHERE m.status <> 'WITHDRAWN'"

# The outside checks: the services' databases against each other.
wrong=$(sql -e "SELECT COUNT(*) FROM board.posts p JOIN member.members m ON m.id = p.author_id
                WHERE p.hidden <> (m.status = 'WITHDRAWN')")
inbox_rows=$(sql -e "SELECT COUNT(*) FROM board.inbox")
rolled_back=$((withdrawing / fail_every))
[ "$withdrawn" -eq $((withdrawing - rolled_back)) ] && [ "$committed" -eq "$withdrawn" ] ||
  die "$withdrawn members withdrawn and $committed events committed, want $((withdrawing - rolled_back)) of each"
[ "$wrong" -eq 0 ] || die "$wrong posts are hidden although their author did not withdraw, or visible although they did"
[ "$hidden" -eq $((posts_per_member * withdrawn)) ] ||
  die "the board counted $hidden posts hidden, want $((posts_per_member * withdrawn))"
[ "$applied" -eq "$committed" ] && [ "$inbox_rows" -eq "$committed" ] ||
  die "the board applied $applied events and its inbox holds $inbox_rows, want each of the $committed events once"
[ "$consumed" -eq "$records" ] && [ "$noops" -eq $((records - committed)) ] && [ "$skipped" -eq 0 ] ||
  die "the board consumed $consumed records ($noops no-ops, $skipped passed over), want all $records, $((records - committed)) no-ops"
[ "$noops" -gt 0 ] ||
  die "no event was sent again after the kill -9 ($applied_at_kill had been applied before it): nothing shown"
note "checked: exactly the withdrawn members' posts are hidden; each event applied once, every redelivery a no-op"

step "One of the events, as the board received it (kcat)"
kcat -b "$kafka" -C -t "$topic" -o beginning -c 1 -e -q -J >"$demo_dir/event.json" 2>/dev/null || true
if [ "$have_python" = true ]; then
  python3 - "$demo_dir/event.json" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    rec = json.loads(line)
    h = rec.get("headers") or []
    headers = ", ".join(f"{h[i]}={h[i + 1]}" for i in range(0, len(h) - 1, 2))
    print(f"    {rec['topic']} partition {rec['partition']} offset {rec['offset']}  key={rec['key']}  headers: {headers}")
    value = json.loads(rec["payload"])
    source = value.pop("source", None)
    print("    " + json.dumps(value))
    if source is not None:
        print("    source: " + json.dumps(source))
PY
else
  sed 's/^/    /' "$demo_dir/event.json"
fi

step "The checkpoint tailbox wrote ($checkpoint)"
[ -s "$checkpoint" ] || die "no checkpoint file at $checkpoint"
if [ "$have_python" = true ]; then
  python3 -m json.tool "$checkpoint" | sed 's/^/    /'
else
  sed 's/^/    /' "$checkpoint"
fi
note "A restart resumes after this position: nothing is read twice, nothing skipped."
