#!/usr/bin/env bash
# scripts/demo.sh — `make demo`: the transactional outbox end to end on one
# machine, without Docker.
#
#   member service DB (MariaDB) --binlog--> tailbox --> devkafka --> kcat
#
# It starts a private MariaDB for the demo (its own directory and port, apart
# from the test instance), builds and starts devkafka (a Kafka-protocol broker)
# and tailbox, then plays the member service: a member joins, and later
# withdraws — each time the business row and its outbox row are written in ONE
# transaction. A third transaction is rolled back: its event must never
# appear. kcat, an independent Kafka client, reads the events back; the demo
# checks that exactly the two committed events arrived, in order, stops
# tailbox with SIGTERM (expecting exit 0), shows the checkpoint it wrote, and
# stops everything it started. Exit status 0 means the whole path works.
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
expected_events=2

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
command -v go >/dev/null 2>&1 || die "go is not on PATH (needed to build tailbox and devkafka)"
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
step "Starting the member service's MariaDB on 127.0.0.1:$mysql_port"
mariadb_started=true # the demo instance is the demo's own: stopped at exit
run_step "starting MariaDB in ${mariadb_dir#"$repo"/}" "about 10 s" \
  env TAILBOX_MARIADB_DIR="$mariadb_dir" TAILBOX_MARIADB_PORT="$mysql_port" scripts/mariadb.sh start ||
  die "cannot start the demo MariaDB"
sql -e "SELECT CONCAT('    ', VERSION(), ', binlog_format=', @@binlog_format, ', binlog_row_image=', @@binlog_row_image, ', binlog_row_metadata=', @@binlog_row_metadata)"

# --- build -----------------------------------------------------------------
step "Building tailbox and devkafka"
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
note "bin/devkafka, $tailbox_bin ($version)"

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

# --- schema ----------------------------------------------------------------
step "Creating the member service's schema: member.members and member.outbox"
sql <<'SQL'
DROP DATABASE IF EXISTS member;
CREATE DATABASE member;

CREATE TABLE member.members (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email        VARCHAR(255)    NOT NULL UNIQUE,
  display_name VARCHAR(100)    NOT NULL,
  status       VARCHAR(20)     NOT NULL DEFAULT 'ACTIVE',
  joined_at    TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  withdrawn_at TIMESTAMP(6)    NULL
);

-- The outbox table, as in DESIGN.md (Debezium's Outbox Event Router names).
CREATE TABLE member.outbox (
  id            CHAR(36)     NOT NULL PRIMARY KEY,
  aggregatetype VARCHAR(255) NOT NULL,
  aggregateid   VARCHAR(255) NOT NULL,
  type          VARCHAR(255) NOT NULL,
  payload       JSON,
  created_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
);

-- Members who joined before tailbox was set up: no events for them.
INSERT INTO member.members (email, display_name) VALUES
  ('lee@example.com', 'Lee'), ('park@example.com', 'Park');
SQL
note "member.members: 2 existing members; member.outbox: empty"

# Start from the binlog position right after the schema: every later commit is
# captured, however long tailbox takes to connect.
start_gtid=$(sql -e "SELECT @@gtid_binlog_pos")
start_from=earliest
[ -n "$start_gtid" ] && start_from=gtid:$start_gtid

# --- tailbox ---------------------------------------------------------------
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
  interval: 1s
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
"$tailbox_bin" run -c "$config" >"$demo_dir/tailbox.log" 2>&1 &
tailbox_pid=$!
sleep 1
kill -0 "$tailbox_pid" 2>/dev/null || {
  wait "$tailbox_pid" && rc=0 || rc=$?
  tailbox_pid=
  cat "$demo_dir/tailbox.log" >&2
  die "tailbox exited at start (status $rc)"
}
note "tailbox runs (pid $tailbox_pid), log in $demo_dir/tailbox.log"

# --- the member service at work ---------------------------------------------
step "Member service: Kim joins (member row + MemberJoined outbox row, one transaction)"
member_id=$(
  sql <<'SQL'
START TRANSACTION;
INSERT INTO member.members (email, display_name) VALUES ('kim@example.com', 'Kim');
SET @member_id = LAST_INSERT_ID();
INSERT INTO member.outbox (id, aggregatetype, aggregateid, type, payload)
VALUES (UUID(), 'member', @member_id, 'MemberJoined',
        JSON_OBJECT('memberId', CAST(@member_id AS UNSIGNED), 'email', 'kim@example.com', 'displayName', 'Kim',
                    'joinedAt', DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%fZ')));
COMMIT;
SELECT @member_id;
SQL
)
note "member $member_id joined"

step "Member service: a suspension that is rolled back (must never be published)"
sql <<SQL
START TRANSACTION;
UPDATE member.members SET status = 'SUSPENDED' WHERE id = $member_id;
INSERT INTO member.outbox (id, aggregatetype, aggregateid, type, payload)
VALUES (UUID(), 'member', '$member_id', 'MemberSuspended', JSON_OBJECT('memberId', $member_id));
ROLLBACK;
SQL
note "rolled back: a rolled-back transaction never reaches the binlog"

step "Member service: Kim withdraws (status WITHDRAWN + MemberWithdrawn outbox row, one transaction)"
sql <<SQL
START TRANSACTION;
UPDATE member.members SET status = 'WITHDRAWN', withdrawn_at = UTC_TIMESTAMP(6) WHERE id = $member_id;
INSERT INTO member.outbox (id, aggregatetype, aggregateid, type, payload)
VALUES (UUID(), 'member', '$member_id', 'MemberWithdrawn',
        JSON_OBJECT('memberId', $member_id, 'reason', 'moved abroad',
                    'withdrawnAt', DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%fZ')));
COMMIT;
SQL
sql -e "SELECT CONCAT('    members: ', id, ' ', display_name, ' ', status) FROM member.members ORDER BY id"

# --- consume -----------------------------------------------------------------
step "Reading $topic with kcat (an independent Kafka client)"
count=0
for ((i = 0; i < 60; i++)); do
  count=$(kcat -b "$kafka" -C -t "$topic" -o beginning -e -q -f '%o\n' 2>/dev/null | wc -l) || count=0
  [ "$count" -ge "$expected_events" ] && break
  kill -0 "$tailbox_pid" 2>/dev/null || die "tailbox exited while the demo waited for events"
  sleep 0.5
done
kcat -b "$kafka" -C -t "$topic" -o beginning -e -q -J >"$demo_dir/events.jsonl" 2>/dev/null || true
if [ "$have_python" = true ]; then
  python3 - "$demo_dir/events.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    rec = json.loads(line)
    h = rec.get("headers") or []
    headers = ", ".join(f"{h[i]}={h[i + 1]}" for i in range(0, len(h) - 1, 2))
    print(f"  {rec['topic']} partition {rec['partition']} offset {rec['offset']}  key={rec['key']}  headers: {headers}")
    try:
        value = json.dumps(json.loads(rec["payload"]), indent=2)
    except (TypeError, ValueError):
        value = str(rec["payload"])
    print("\n".join("    " + l for l in value.splitlines()))
PY
else
  sed 's/^/  /' "$demo_dir/events.jsonl"
fi

[ "$count" -eq "$expected_events" ] ||
  die "expected $expected_events events on $topic, got $count (see $demo_dir/tailbox.log)"
# The envelope format puts the event type in the "type" header.
types=$(kcat -b "$kafka" -C -t "$topic" -o beginning -e -q -f '%h\n' 2>/dev/null |
  sed -n 's/.*type=\([A-Za-z]*\).*/\1/p' | tr '\n' ' ')
[ "$types" = "MemberJoined MemberWithdrawn " ] ||
  die "expected MemberJoined then MemberWithdrawn, got: ${types:-nothing}"
keys=$(kcat -b "$kafka" -C -t "$topic" -o beginning -e -q -f '%k\n' 2>/dev/null | sort -u)
[ "$keys" = "$member_id" ] || die "expected every event keyed by member id $member_id, got: $keys"
note "$count events, in commit order, both keyed by member id $member_id (one partition, so ordered)"

cat <<EOF

    What the board service (a consumer of $topic) does with them:
      - It de-duplicates by the "id" header: delivery is at-least-once, so an
        event may arrive twice after a crash; the id makes the second a no-op.
      - MemberJoined: creates the member's board profile ("Kim") so posts can
        show an author.
      - MemberWithdrawn: hides Kim's profile, anonymises her posts to
        "withdrawn member" and closes her open threads — without ever calling
        the member service, and without a lost or phantom event: the event
        exists exactly when the WITHDRAWN status was committed.
      - The rolled-back suspension produced nothing, so nobody acts on a
        change that never happened.
EOF

# --- stop --------------------------------------------------------------------
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
note "tailbox exited 0; its log:"
sed 's/^/      /' "$demo_dir/tailbox.log"

step "The checkpoint tailbox wrote ($checkpoint)"
[ -s "$checkpoint" ] || die "no checkpoint file at $checkpoint"
if [ "$have_python" = true ]; then
  python3 -m json.tool "$checkpoint" | sed 's/^/    /'
else
  sed 's/^/    /' "$checkpoint"
fi
note "A restart resumes after this position: nothing is read twice, nothing skipped."
