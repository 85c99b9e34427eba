#!/usr/bin/env bash
# tests/storage/run.sh — lectern-storage against a real RabbitMQ and MariaDB.
#
# First the unit tests of the pure parts (build/asan/tests/storage-units,
# from tests/storage/test_units.c). Then a private RabbitMQ and MariaDB are
# started with scripts/services in a temporary LECTERN_VAR_DIR on free ports,
# workers run (bin/lectern-storage for the heavy run, the ASan/UBSan build for
# the others) against storage queues filled by
# build/release/tests/storage-publish (tests/storage/publish.c), and MySQL,
# the queues and the workers' metrics, logs and exit codes are checked:
#
#   1. 100,000 messages while one of two workers is killed -9 twice and
#      restarted: every message stored exactly once (per room);
#   2. MySQL stopped for 10 s mid-stream: /readyz 503 then 200, nothing
#      lost, nothing duplicated;
#   3. duplicates and poison: duplicates stored once, poison rejected and
#      counted (in total and by reason), the rest stored (field by field),
#      metrics equal to MySQL;
#   4. SIGTERM mid-stream: exit 0, rows + the queue's remainder = published;
#      SIGTERM with MySQL down: exit 0 after the deadline, nothing lost;
#   5. --help, --check-config, the shipped config file, HTTP errors;
#   6. RabbitMQ restarted while a worker holds a batch: reconnect, the batch
#      is delivered again and stored once;
#   7. three workers migrating a fresh database at once: one applies the
#      migrations (GET_LOCK), all start, the columns are as wide as
#      lib/storelimits.h says.
#
# Output is TAP-like ("ok - ..." / "not ok - ..."), one line per check with
# its numbers; exit status 1 when any check failed. Whatever happens, the
# workers and services are stopped and the directory removed (kept, with the
# logs, when STORAGE_TEST_KEEP=1). Takes about 60 s on 2 cores.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
svc=$root/scripts/services
release=$root/bin/lectern-storage
asan=$root/build/asan/bin/lectern-storage
pub=$root/build/release/tests/storage-publish
units=$root/build/asan/tests/storage-units
for b in "$release" "$asan" "$pub" "$units"; do
  [[ -x $b ]] || { echo "Bail out! $b is missing: run make storage-test"; exit 1; }
done

T0=$EPOCHREALTIME
n=0 failed=0
ok()     { n=$((n + 1)); echo "ok - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok - $*"; }
check()  {  # check "description" 'condition' (evaluated)
  if eval "$2"; then ok "$1"; else not_ok "$1"; fi
}
diag()   { echo "# $*"; }
secs()   { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- unit tests
if out=$(ASAN_OPTIONS=detect_leaks=1 "$units" 2>&1); then
  ok "0. unit tests: schema splitting, backoff, metrics text ($(grep -c '\[       OK \]' <<<"$out") passed)"
else
  not_ok "0. unit tests"
  sed 's/^/# /' <<<"$out"
fi

# ---------------------------------------------------------------- environment
read -r -a PORTS <<<"$(node "$root/tests/integration/free-ports.mjs" 17)"
export LECTERN_REDIS_PORT=${PORTS[0]} LECTERN_AMQP_PORT=${PORTS[1]} \
       LECTERN_RABBIT_DIST_PORT=${PORTS[2]} LECTERN_EPMD_PORT=${PORTS[3]} \
       LECTERN_WEB_STOMP_PORT=${PORTS[4]} LECTERN_MYSQL_PORT=${PORTS[5]}
HTTP_PORTS=("${PORTS[@]:6}")
unset LECTERN_RABBIT_NODENAME LECTERN_SERVICE_TIMEOUT
LECTERN_VAR_DIR=$(mktemp -d /tmp/lectern-st.XXXXXX)
export LECTERN_VAR_DIR
var=$LECTERN_VAR_DIR
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1

declare -A WPID=()   # worker name -> pid (running ones)

cleanup() {
  local rc=$? name
  for name in "${!WPID[@]}"; do kill -KILL "${WPID[$name]}" 2>/dev/null || true; done
  "$svc" stop rabbitmq mariadb >/dev/null 2>&1 || echo "# cleanup: scripts/services stop failed" >&2
  if [[ ${STORAGE_TEST_KEEP:-0} == 1 ]]; then echo "# kept $var"; else rm -rf "$var"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

diag "var dir $var; amqp=$LECTERN_AMQP_PORT mysql=$LECTERN_MYSQL_PORT"
t=$EPOCHREALTIME
if ! "$svc" start rabbitmq mariadb 2>"$var/services.err"; then
  sed 's/^/# /' "$var/services.err"
  echo "Bail out! the services did not start"
  exit 1
fi
diag "rabbitmq and mariadb up in $(secs "$t") s"

# ---------------------------------------------------------------- helpers
sql() {
  mariadb --no-defaults -h127.0.0.1 -P"$LECTERN_MYSQL_PORT" -ulectern -plectern -N -B \
    --connect-timeout=5 lectern -e "$1"
}
# rows ROOM_PATTERN -> "count distinct" for rooms LIKE the pattern
rows() { sql "SELECT COUNT(*), COUNT(DISTINCT room, id_ms, id_n) FROM messages WHERE room LIKE '$1'" | tr '\t' ' '; }
count() { sql "SELECT COUNT(*) FROM messages WHERE room LIKE '$1'" 2>/dev/null || echo -1; }
publish() { "$pub" --port "$LECTERN_AMQP_PORT" "$@"; }
# depth QUEUE -> "messages consumers" (ready messages, from a passive declare)
depth() { publish --queue "$1" --depth | sed 's/messages=\([0-9]*\) consumers=\([0-9]*\)/\1 \2/'; }
queue_empty() { [[ $(depth "$1") == "0 "* ]]; }
no_consumers() { [[ $(depth "$1") == *" 0" ]]; }
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1$2" || true; }
metric() {  # metric PORT 'name{labels}' -> value
  curl -s --max-time 2 "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'
}
# wait_until SECONDS command... : poll every 0.1 s until it succeeds
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    (( SECONDS < deadline )) || return 1
    sleep 0.1
  done
}
http_is() { [[ $(http_code "$1" "$2") == "$3" ]]; }
ready_all() {  # ready_all CODE PORT...: every worker's /readyz answers CODE
  local code=$1 p; shift
  for p in "$@"; do http_is "$p" /readyz "$code" || return 1; done
}
count_at_least() { (( $(count "$1") >= $2 )); }

# start_worker NAME BINARY HTTP_PORT QUEUE [--set ...]: start in the background;
# waits for /readyz 200 (WAIT=healthz: for /healthz; WAIT=none: not at all).
start_worker() {
  local name=$1 bin=$2 port=$3 queue=$4
  shift 4
  "$bin" --config "$root/config/lectern-storage.conf" \
    --set "amqp.port=$LECTERN_AMQP_PORT" --set "mysql.port=$LECTERN_MYSQL_PORT" \
    --set "http.port=$port" --set "storage.queue=$queue" \
    --set amqp.backoff_max_ms=500 --set mysql.backoff_max_ms=500 "$@" \
    </dev/null >>"$var/$name.log" 2>&1 &
  WPID[$name]=$!
  local want=/readyz
  [[ ${WAIT:-readyz} == none ]] && return 0
  [[ ${WAIT:-readyz} == healthz ]] && want=/healthz
  if ! wait_until 30 http_is "$port" "$want" 200; then
    diag "$name did not become ready; its log:"
    sed 's/^/#   /' "$var/$name.log" | tail -n 20
    return 1
  fi
}
# kill_worker NAME SIGNAL: signal it, wait, exit status in RC; forgets the worker
kill_worker() {
  local pid=${WPID[$1]}
  RC=0
  kill "-$2" "$pid"
  { wait "$pid"; } 2>/dev/null || RC=$?     # (no "Killed" job notice)
  unset "WPID[$1]"
}
show_log() { diag "log of $1:"; tail -n "${2:-15}" "$var/$1.log" | sed 's/^/#   /'; }

# ================================================================= 1. kill -9
echo "# 1. 100,000 messages, two release workers, one killed -9 twice"
Q=t1.storage ROOMS=load-a,load-b,load-c,load-d
start_worker w1 "$release" "${HTTP_PORTS[0]}" $Q
start_worker w2 "$release" "${HTTP_PORTS[1]}" $Q
t1=$EPOCHREALTIME
publish --queue $Q --rooms $ROOMS --count 100000 --base 1000 >"$var/pub1.out" 2>&1 &
pub1=$!
kills=0
for at in 20000 60000; do
  if wait_until 60 count_at_least 'load-%' $at; then
    held=$(metric "${HTTP_PORTS[0]}" lectern_storage_in_hand)
    kill_worker w1 KILL
    [[ $RC == 137 ]] && kills=$((kills + 1))
    diag "killed w1 -9 at $(count 'load-%') rows, holding $held unacked ($(secs "$t1") s)"
    sleep 0.5
    start_worker w1 "$release" "${HTTP_PORTS[0]}" $Q
  fi
done
rc=0; wait $pub1 || rc=$?
diag "publisher: $(cat "$var/pub1.out")"
check "1. the publisher had all 100,000 messages confirmed by RabbitMQ" '[[ $rc == 0 ]]'
check "1. worker w1 was killed -9 twice mid-stream and restarted" '[[ $kills == 2 ]]'
wait_until 120 count_at_least 'load-%' 100000 || true
stored_s=$(secs "$t1")
sleep 0.5     # late duplicates would show now
read -r total distinct <<<"$(rows 'load-%')"
rate=$(awk -v n="$total" -v s="$stored_s" 'BEGIN { printf "%d", n / s }')
check "1. MySQL holds each of the 100,000 messages exactly once: $total rows, $distinct distinct, all stored ${stored_s} s after the first publish ($rate rows/s end to end)" \
  '[[ $total == 100000 && $distinct == 100000 ]]'
per_room=$(sql "SELECT CONCAT(room, '=', COUNT(*), '/', COUNT(DISTINCT id_ms, id_n)) FROM messages WHERE room LIKE 'load-%' GROUP BY room" | tr '\n' ' ')
check "1. and per room: $per_room" \
  '[[ $per_room == "load-a=25000/25000 load-b=25000/25000 load-c=25000/25000 load-d=25000/25000 " ]]'
dups=$(( $(metric "${HTTP_PORTS[0]}" lectern_storage_duplicates_total) + $(metric "${HTTP_PORTS[1]}" lectern_storage_duplicates_total) ))
wait_until 10 queue_empty $Q || true
check "1. the queue is empty ($(depth $Q | cut -d' ' -f1) left); redeliveries absorbed as duplicates: $dups" \
  'queue_empty $Q'
for w in w1 w2; do
  kill_worker $w TERM
  check "1. $w exits 0 on SIGTERM" '[[ $RC == 0 ]]'
done

# ================================================================= 2. MySQL down
echo "# 2. MySQL stopped for 10 s mid-stream (an ASan worker and a release worker)"
Q=t2.storage
start_worker w3 "$asan" "${HTTP_PORTS[2]}" $Q
start_worker w4 "$release" "${HTTP_PORTS[3]}" $Q
publish --queue $Q --rooms out-a,out-b --count 20000 --rate 1000 --base 2000 >"$var/pub2.out" 2>&1 &
pub2=$!
wait_until 30 count_at_least 'out-%' 2000 || true
"$svc" stop mariadb 2>>"$var/services.err"
t_down=$EPOCHREALTIME
check "2. both workers answer /readyz 503 while MySQL is down" \
  'wait_until 10 ready_all 503 ${HTTP_PORTS[2]} ${HTTP_PORTS[3]}'
reason=$(curl -s --max-time 2 "http://127.0.0.1:${HTTP_PORTS[2]}/readyz")
diag "w3 /readyz: $reason"
sleep "$(awk -v a="$t_down" -v b="$EPOCHREALTIME" 'BEGIN { d = 10 - (b - a); print (d > 0 ? d : 0) }')"
held=$(( $(metric "${HTTP_PORTS[2]}" lectern_storage_in_hand) + $(metric "${HTTP_PORTS[3]}" lectern_storage_in_hand) ))
errs=$(metric "${HTTP_PORTS[2]}" 'lectern_storage_errors_total{kind="mysql"}')
check "2. after 10 s down the workers hold $held messages unacked and counted $errs MySQL errors (w3)" \
  '(( held > 0 && ${errs:-0} > 0 ))'
"$svc" start mariadb 2>>"$var/services.err"
diag "mariadb back after $(secs "$t_down") s"
check "2. both workers answer /readyz 200 again" \
  'wait_until 30 ready_all 200 ${HTTP_PORTS[2]} ${HTTP_PORTS[3]}'
rc=0; wait $pub2 || rc=$?
diag "publisher: $(cat "$var/pub2.out")"
check "2. the publisher had all 20,000 messages confirmed" '[[ $rc == 0 ]]'
wait_until 60 count_at_least 'out-%' 20000 || true
sleep 0.5
read -r total distinct <<<"$(rows 'out-%')"
recon=$(metric "${HTTP_PORTS[2]}" 'lectern_storage_reconnects_total{to="mysql"}')
check "2. nothing lost, nothing duplicated: $total rows, $distinct distinct of 20,000 (w3 reconnected to MySQL $recon times)" \
  '[[ $total == 20000 && $distinct == 20000 ]] && (( ${recon:-0} >= 1 ))'
for w in w3 w4; do
  kill_worker $w TERM
  check "2. $w exits 0 on SIGTERM" '[[ $RC == 0 ]]'
done

# ================================================================= 3. duplicates and poison
echo "# 3. duplicates and poison (ASan worker)"
Q=t3.storage P=${HTTP_PORTS[4]}
start_worker w5 "$asan" "$P" $Q --set storage.check_ms=200 --set storage.poison_log_every=20
rc=0
publish --queue $Q --rooms dp-a,dp-b,dp-c --count 6000 --dup-every 10 --poison 40 --bad-rows 5 \
  --base 3000 >"$var/pub3.out" 2>&1 || rc=$?
diag "publisher: $(cat "$var/pub3.out")"
check "3. the publisher had all 6,645 publishes confirmed" '[[ $rc == 0 ]]'
settled() { queue_empty $Q && [[ $(metric "$P" lectern_storage_in_hand) == 0 &&
                                $(metric "$P" lectern_storage_queue_messages) == 0 ]]; }
wait_until 30 settled || true
read -r total distinct <<<"$(rows 'dp-%')"
check "3. 6,000 messages + 600 duplicate publishes: $total rows, $distinct distinct" \
  '[[ $total == 6000 && $distinct == 6000 ]]'
poison=$(metric "$P" 'lectern_storage_errors_total{kind="poison"}')
long=$(sql "SELECT COUNT(*) FROM messages WHERE LENGTH(room) > 255")
check "3. 40 undecodable messages and 5 rows MySQL refuses were rejected and counted: poison=$poison, none stored ($long)" \
  '[[ $poison == 45 && $long == 0 ]]'
by=$(for r in undecodable bad_id too_large refused; do
  printf '%s=%s ' $r "$(metric "$P" "lectern_storage_poison_total{reason=\"$r\"}")"; done)
check "3. poison is counted by reason: $by" '[[ $by == "undecodable=20 bad_id=20 too_large=0 refused=5 " ]]'
check "3. the poison did not block the queue: $(depth $Q | cut -d' ' -f1) messages left, queue_messages=$(metric "$P" lectern_storage_queue_messages)" \
  'settled'
lines=$(grep -c 'event=poison' "$var/w5.log" || true)
check "3. poison is logged once per storage.poison_log_every (20): $lines lines for 45" '[[ $lines == 3 ]]'
written=$(metric "$P" lectern_storage_rows_written_total)
dups=$(metric "$P" lectern_storage_duplicates_total)
deliv=$(metric "$P" lectern_storage_deliveries_total)
check "3. metrics equal MySQL: rows_written_total=$written, duplicates_total=$dups, deliveries_total=$deliv" \
  '[[ $written == 6000 && $dups == 600 && $deliv == 6645 ]]'
batches=$(metric "$P" lectern_storage_batches_total)
hcount=$(metric "$P" lectern_storage_batch_rows_count)
hsum=$(metric "$P" lectern_storage_batch_rows_sum)
ccount=$(metric "$P" lectern_storage_commit_seconds_count)
inf=$(metric "$P" 'lectern_storage_batch_rows_bucket{le="+Inf"}')
check "3. histograms: $batches batches, batch_rows count=$hcount sum=$hsum, commit_seconds count=$ccount" \
  '(( batches > 0 )) && [[ $hcount == "$batches" && $inf == "$batches" && $ccount == "$batches" && $hsum == 6600 ]]'
lag=$(metric "$P" lectern_storage_lag_seconds)
check "3. up{dep=amqp} and up{dep=mysql} are 1; lag_seconds is set ($lag)" \
  '[[ $(metric "$P" "lectern_storage_up{dep=\"amqp\"}") == 1 && $(metric "$P" "lectern_storage_up{dep=\"mysql\"}") == 1 && $lag != 0.000 ]]'
# Field by field, against what publish.c sends for message i.
fields=$(sql "SELECT SUM(body = ''), SUM(HEX(body) = '6200FF78'), SUM(content_type IS NOT NULL),
  SUM(headers IS NOT NULL), SUM(body = CONCAT('body-', id_n)), SUM(seq = id_n AND epoch = 1),
  SUM(sender = CONCAT('user', id_n % 50)), SUM(sender_name = CONCAT('User \"', id_n % 50, '\" é')),
  SUM(origin = 'storage-publish'), SUM(headers = CONCAT('x-n:', id_n, '\nx-colon:a\\\\cb\n'))
  FROM messages WHERE room LIKE 'dp-%'" | tr '\t' ' ')
check "3. stored fields are what was sent (empty, binary, text bodies; NULL content types and headers): $fields" \
  '[[ $fields == "858 468 1200 2000 4674 6000 6000 6000 6000 2000" ]]'
# HTTP odds and ends, on the running worker.
post=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -d x=1 "http://127.0.0.1:$P/metrics" || true)
check "3. /healthz 200, unknown path 404, POST 405 ($post)" \
  'http_is $P /healthz 200 && http_is $P /nope 404 && [[ $post == 405 ]]'
kill_worker w5 TERM
check "3. w5 exits 0 on SIGTERM" '[[ $RC == 0 ]]'

# ================================================================= 4. SIGTERM
echo "# 4. SIGTERM mid-stream (ASan worker)"
Q=t4.storage P=${HTTP_PORTS[5]}
publish --queue $Q --rooms term-a --count 30000 --base 4000 >"$var/pub4.out" 2>&1 || true
diag "publisher: $(cat "$var/pub4.out")"
start_worker w6 "$asan" "$P" $Q
wait_until 30 count_at_least 'term-%' 3000 || true
t=$EPOCHREALTIME
kill_worker w6 TERM
exit_s=$(secs "$t")
wait_until 10 no_consumers $Q || true
sleep 0.3
read -r left _ <<<"$(depth $Q)"
stored=$(count 'term-%')
check "4. SIGTERM mid-stream: exit $RC in ${exit_s} s; $stored rows + $left still queued = $((stored + left)) of 30,000" \
  '[[ $RC == 0 ]] && (( left > 0 && stored > 0 && stored + left == 30000 ))'
check "4. the worker drained its hand before leaving (abandoned=false, unacked=0)" \
  'grep -q "event=worker_stopped abandoned=false unacked=0" "$var/w6.log"'
t=$EPOCHREALTIME
start_worker w7 "$release" "${HTTP_PORTS[6]}" $Q
wait_until 60 count_at_least 'term-%' 30000 || true
drain_s=$(secs "$t")
read -r total distinct <<<"$(rows 'term-%')"
drain_rate=$(awk -v n="$left" -v s="$drain_s" 'BEGIN { printf "%d", n / s }')
check "4. a new release worker stores the rest: $total rows, $distinct distinct ($left drained in ${drain_s} s incl. its start: $drain_rate rows/s)" \
  '[[ $total == 30000 && $distinct == 30000 ]]'
kill_worker w7 TERM

echo "# 4b. SIGTERM while MySQL is down: exit 0 at storage.shutdown_timeout_ms, nothing acked"
publish --queue $Q --rooms term-a --count 2000 --start 30000 --base 4000 >"$var/pub4b.out" 2>&1 || true
"$svc" stop mariadb 2>>"$var/services.err"
WAIT=healthz start_worker w8 "$asan" "${HTTP_PORTS[7]}" $Q --set storage.shutdown_timeout_ms=2000
holding() { (( $(metric "${HTTP_PORTS[7]}" lectern_storage_in_hand) > 0 )); }
wait_until 10 holding || true
held=$(metric "${HTTP_PORTS[7]}" lectern_storage_in_hand)
t=$EPOCHREALTIME
kill_worker w8 TERM
exit_s=$(secs "$t")
check "4b. holding $held messages, exit $RC after ${exit_s} s (deadline 2 s), giving them up unacked" \
  '[[ $RC == 0 ]] && (( held > 0 )) && grep -q "event=worker_stopped abandoned=true" "$var/w8.log" &&
   awk -v s="$exit_s" "BEGIN { exit !(s >= 1.9 && s < 5) }"'
"$svc" start mariadb 2>>"$var/services.err"
start_worker w9 "$release" "${HTTP_PORTS[6]}" $Q
wait_until 30 count_at_least 'term-%' 32000 || true
sleep 0.3
read -r total distinct <<<"$(rows 'term-%')"
check "4b. after MySQL is back a worker stores them all: $total rows, $distinct distinct of 32,000" \
  '[[ $total == 32000 && $distinct == 32000 ]]'
kill_worker w9 TERM

# ================================================================= 5. CLI
echo "# 5. command line"
out=$("$release" --help 2>&1) && rc=0 || rc=$?
check "5. --help exits 0 and explains the program" \
  '[[ $rc == 0 && $out == *"Usage: lectern-storage"* && $out == *"--check-config"* ]]'
check "5. config/lectern-storage.conf is exactly what --print-config prints" \
  'diff -u "$root/config/lectern-storage.conf" <("$release" --print-config) | sed "s/^/# /"; (( PIPESTATUS[0] == 0 ))'
out=$("$release" --config "$root/config/lectern-storage.conf" --check-config 2>&1) && rc=0 || rc=$?
check "5. --check-config accepts the shipped file" '[[ $rc == 0 && $out == "configuration ok" ]]'
out=$("$release" --set storage.batch_max=0 --check-config 2>&1) && rc=0 || rc=$?
check "5. --check-config refuses storage.batch_max=0 with exit 2 and a reason" \
  '[[ $rc == 2 && $out == *"storage.batch_max"*"out of range"* ]]'
printf '[storage]\nqueue_type = stream\n' >"$var/bad.conf"
out=$("$release" --config "$var/bad.conf" --check-config 2>&1) && rc=0 || rc=$?
check "5. a bad value in a file is reported as file:line: $out" \
  '[[ $rc == 2 && $out == *"bad.conf:2: storage.queue_type"* ]]'
for bad in 'amqp.host=,' 'amqp.host=a:0' 'amqp.host=a,,b' 'amqp.host=[::1'; do
  out=$("$release" --set "$bad" --check-config 2>&1) && rc=0 || rc=$?
  check "5. --check-config refuses $bad: $out" '[[ $rc == 2 && $out == *"amqp.host: "* ]]'
done
out=$("$release" --set 'amqp.host=10.0.0.1:5672, rabbit2 ,[fd00::3]:5673' --check-config 2>&1) && rc=0 || rc=$?
check "5. --check-config accepts a cluster's node list" '[[ $rc == 0 ]]'
out=$("$release" --set nope.knob=1 --check-config 2>&1) && rc=0 || rc=$?
check "5. an unknown knob is refused" '[[ $rc == 2 && $out == *"unknown knob"* ]]'
nc_port=${HTTP_PORTS[7]}
node -e 'const s = require("net").createServer().listen(Number(process.argv[1]), "127.0.0.1"); setTimeout(() => s.close(), 10000)' "$nc_port" &
holder=$!
sleep 0.3
out=$(timeout 10 "$release" --set "http.port=$nc_port" --set "amqp.port=$LECTERN_AMQP_PORT" 2>&1) && rc=0 || rc=$?
kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true
check "5. a taken HTTP port stops the start with exit 1 and a reason" \
  '[[ $rc == 1 && $out == *"cannot listen on 0.0.0.0:$nc_port: Address already in use"* ]]'

# ================================================================= 6. RabbitMQ restart
echo "# 6. RabbitMQ restarted while a worker holds a batch (ASan worker)"
Q=t6.storage P=${HTTP_PORTS[6]}
# A long batch wait: the worker holds all 3,000 unacked until stopped.
start_worker w10 "$asan" "$P" $Q --set storage.prefetch=5000 --set storage.batch_max=5000 \
  --set storage.batch_wait_ms=60000
publish --queue $Q --rooms rmq-a --count 3000 --base 6000 >"$var/pub6.out" 2>&1 || true
in_hand_is() { [[ $(metric "$P" lectern_storage_in_hand) == "$1" ]]; }
wait_until 10 in_hand_is 3000 || true
held=$(metric "$P" lectern_storage_in_hand)
t=$EPOCHREALTIME
"$svc" stop rabbitmq 2>>"$var/services.err"
check "6. holding $held unacked, the worker answers /readyz 503 once RabbitMQ is gone" \
  '[[ $held == 3000 ]] && wait_until 10 http_is $P /readyz 503'
"$svc" start rabbitmq 2>>"$var/services.err"
diag "rabbitmq back after $(secs "$t") s"
check "6. it reconnects (/readyz 200) and the broker delivers the 3,000 again" \
  'wait_until 30 http_is $P /readyz 200 && wait_until 10 in_hand_is 3000'
recon=$(metric "$P" 'lectern_storage_reconnects_total{to="amqp"}')
errs=$(metric "$P" 'lectern_storage_errors_total{kind="amqp"}')
deliv=$(metric "$P" lectern_storage_deliveries_total)
kill_worker w10 TERM
read -r total distinct <<<"$(rows 'rmq-%')"
check "6. SIGTERM writes them: exit $RC; $total rows, $distinct distinct of 3,000; deliveries=$deliv reconnects{amqp}=$recon errors{amqp}=$errs" \
  '[[ $RC == 0 && $total == 3000 && $distinct == 3000 && $deliv == 6000 && $recon == 1 ]] && (( errs >= 1 ))'

# ================================================================= 7. schema lock
echo "# 7. three workers migrate a fresh database at once"
sock=$var/mariadb/mysqld.sock
mariadb --no-defaults --socket="$sock" -uroot -e "CREATE DATABASE lectern_m;
  GRANT ALL PRIVILEGES ON lectern_m.* TO 'lectern'@'127.0.0.1'"
for i in 1 2 3; do
  WAIT=none start_worker "m$i" "$asan" "${HTTP_PORTS[$((7 + i))]}" t7.storage \
    --set mysql.database=lectern_m
done
check "7. all three become ready" \
  'wait_until 30 ready_all 200 ${HTTP_PORTS[8]} ${HTTP_PORTS[9]} ${HTTP_PORTS[10]}'
# Every migration file, as schema_migrations records them: "1:0001_x.sql,2:0002_y.sql".
files=("$root"/storage-worker/schema/[0-9]*.sql)
want=$(for f in "${files[@]}"; do b=$(basename "$f"); printf '%d:%s\n' "$((10#${b%%_*}))" "$b"; done | paste -sd,)
last=$(basename "${files[-1]}")
latest=$((10#${last%%_*}))
migrated=$(cat "$var"/m[123].log | grep -c 'event=schema_migrated' || true)
current=$(cat "$var"/m[123].log | grep -c "event=schema_current version=$latest" || true)
recorded=$(mariadb --no-defaults --socket="$sock" -uroot -N -B lectern_m \
  -e "SELECT GROUP_CONCAT(version, ':', name ORDER BY version) FROM schema_migrations")
check "7. one applied the ${#files[@]} migrations under the lock ($migrated schema_migrated lines, $current at version $latest), recorded once: $recorded" \
  '[[ $migrated == ${#files[@]} && $current == 3 && $recorded == "$want" ]]'
headers=$(mariadb --no-defaults --socket="$sock" -uroot -N -B -e "SELECT DATA_TYPE FROM
  information_schema.COLUMNS WHERE TABLE_SCHEMA = 'lectern_m' AND TABLE_NAME = 'messages' AND COLUMN_NAME = 'headers'")
check "7. the headers column is a MEDIUMBLOB (lib/storelimits.h): $headers" '[[ $headers == mediumblob ]]'
for i in 1 2 3; do
  kill_worker "m$i" TERM
  check "7. m$i exits 0" '[[ $RC == 0 ]]'
done

# ================================================================= 8. batches
echo "# 8. batches (several messages per AMQP message, as servers publish under load)"
Q=t8.storage
start_worker w8 "$asan" "${HTTP_PORTS[0]}" $Q --set storage.batch_max=40
start_worker w9 "$release" "${HTTP_PORTS[1]}" $Q --set storage.batch_max=40
# batches of 64 with batch_max 40: every batch of the worker ends inside a
# delivery, which must be extended, never split across two acks
publish --queue $Q --rooms batch-a,batch-b,batch-c --count 30000 --batch 64 --base 3000 \
  >"$var/pub8.out" 2>&1 &
pub8=$!
if wait_until 60 count_at_least 'batch-%' 10000; then
  kill_worker w9 KILL
  diag "killed w9 -9 at $(count 'batch-%') rows"
  start_worker w9 "$release" "${HTTP_PORTS[1]}" $Q --set storage.batch_max=40
fi
rc=0; wait $pub8 || rc=$?
check "8. the publisher had 469 batches (30,000 messages) confirmed" '[[ $rc == 0 ]]'
wait_until 60 count_at_least 'batch-%' 30000 || true
sleep 0.5
read -r total distinct <<<"$(rows 'batch-%')"
check "8. MySQL holds each of the 30,000 batched messages exactly once ($total rows, $distinct distinct)" \
  '[[ $total == 30000 && $distinct == 30000 ]]'
poison8=$(metric "${HTTP_PORTS[0]}" 'lectern_storage_errors_total{kind="poison"}')
check "8. no poison counted ($poison8)" '[[ $poison8 == 0 ]]'
check "8. the queue is empty: every batch acked" 'wait_until 20 queue_empty $Q'
kill_worker w8 TERM
check "8. the ASan worker exits 0" '[[ $RC == 0 ]]'
kill_worker w9 TERM

# ================================================================= summary
reports=$(grep -l -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$var"/w*.log |
          xargs -r -n1 basename | tr '\n' ' ' || true)
check "no sanitizer report in any worker log${reports:+ (found in: $reports)}" '[[ -z $reports ]]'
if (( failed )); then
  for f in "$var"/w*.log; do show_log "$(basename "$f" .log)" 8; done
fi
echo "1..$n"
diag "$((n - failed))/$n checks passed in $(secs "$T0") s"
(( failed == 0 ))
