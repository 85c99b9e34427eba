#!/usr/bin/env bash
# tests/services.sh — smoke test for scripts/services.
#
# Runs Redis, RabbitMQ (+ web-stomp) and MariaDB in a temporary LECTERN_VAR_DIR
# on free, non-default ports, checks each one end to end, checks that `start`
# is idempotent, that `stop` closes every port, and the failure paths (port
# taken by a stranger, readiness deadline). Whatever happens, the services are
# stopped and the directory removed on exit.
#
# Output is TAP-like ("ok - ..." / "not ok - ..."); exit status 1 on any failure.
# Runnable from any directory; takes about 25 s (RabbitMQ boots twice).

# Single-quoted `bash -c` bodies below expand their own positional parameters.
# shellcheck disable=SC2016
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
svc=$root/scripts/services

n=0 failed=0
ok()     { n=$((n + 1)); echo "ok - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok - $*"; }
check()  {  # check "description" command...
  local what=$1; shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}
diag()   { sed 's/^/# /' >&2; }

port_open() { timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }
port_closed() { ! port_open "$1"; }
# pid_gone PID: no such process, or a zombie waiting for PID 1 to reap it
pid_gone() {
  local stat
  { read -r stat < "/proc/$1/stat"; } 2>/dev/null || return 0
  stat=${stat##*) }
  [[ ${stat%% *} == Z ]]
}

# ---------------------------------------------------------------- free ports
# Six ports in 20000-32000 (below the ephemeral range) that nobody listens on.
# Distinct free ports on 127.0.0.1 (the integration suite's picker).
read -r -a PORTS <<<"$(node "$root/tests/integration/free-ports.mjs" 6)"
export LECTERN_REDIS_PORT=${PORTS[0]} LECTERN_AMQP_PORT=${PORTS[1]} \
       LECTERN_RABBIT_DIST_PORT=${PORTS[2]} LECTERN_EPMD_PORT=${PORTS[3]} \
       LECTERN_WEB_STOMP_PORT=${PORTS[4]} LECTERN_MYSQL_PORT=${PORTS[5]}
unset LECTERN_RABBIT_NODENAME LECTERN_SERVICE_TIMEOUT LECTERN_REDIS_TLS
# short path: the MariaDB socket path must stay under 108 bytes
LECTERN_VAR_DIR=$(mktemp -d /tmp/lectern-svc.XXXXXX)
export LECTERN_VAR_DIR

stranger_pid=""
cleanup() {
  local rc=$?
  if [[ -n $stranger_pid ]]; then kill "$stranger_pid" 2>/dev/null || true; fi
  "$svc" stop >/dev/null 2>&1 || echo "# cleanup: scripts/services stop failed" >&2
  rm -rf "$LECTERN_VAR_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# var dir $LECTERN_VAR_DIR; ports redis=$LECTERN_REDIS_PORT amqp=$LECTERN_AMQP_PORT" \
     "dist=$LECTERN_RABBIT_DIST_PORT epmd=$LECTERN_EPMD_PORT web-stomp=$LECTERN_WEB_STOMP_PORT" \
     "mysql=$LECTERN_MYSQL_PORT"

all_ports=("${PORTS[@]}")

# ---------------------------------------------------------------- env
env_out=$("$svc" env)
check "env prints the effective settings" \
  grep -qx "LECTERN_VAR_DIR='$LECTERN_VAR_DIR'" <<<"$env_out"
check "env derives the RabbitMQ node name from the AMQP port" \
  grep -qx "LECTERN_RABBIT_NODENAME='lectern-$LECTERN_AMQP_PORT@localhost'" <<<"$env_out"
check "usage errors exit 2" bash -c '"$1" bogus >/dev/null 2>&1; [ $? = 2 ]' _ "$svc"
check "LECTERN_REDIS_TLS=on without LECTERN_SERVICE_TLS_DIR is a usage error" \
  bash -c 'LECTERN_REDIS_TLS=on LECTERN_SERVICE_TLS_DIR= "$1" env >/dev/null 2>&1; [ $? = 2 ]' _ "$svc"
check "LECTERN_REDIS_TLS other than on/off is a usage error" \
  bash -c 'LECTERN_REDIS_TLS=yes "$1" env >/dev/null 2>&1; [ $? = 2 ]' _ "$svc"
check "env reports LECTERN_REDIS_TLS (off by default)" grep -qx "LECTERN_REDIS_TLS=off" <<<"$env_out"

# ---------------------------------------------------------------- start
check "status before start exits non-zero" bash -c '! "$1" status >/dev/null 2>&1' _ "$svc"
t0=$EPOCHREALTIME
if "$svc" start 2>"$LECTERN_VAR_DIR/start.err"; then
  ok "start brings up redis, rabbitmq and mariadb"
else
  not_ok "start brings up redis, rabbitmq and mariadb"
  diag < "$LECTERN_VAR_DIR/start.err"
  echo "Bail out! services did not start"
  exit 1
fi
sed 's/^/# /' "$LECTERN_VAR_DIR/start.err"
echo "# start took $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}') s"

# ---------------------------------------------------------------- redis
rcli() { timeout 5 redis-cli -h 127.0.0.1 -p "$LECTERN_REDIS_PORT" "$@"; }
check "redis answers PING" test "$(rcli ping)" = PONG
check "redis SET/GET round-trips" \
  bash -c '[ "$(redis-cli -h 127.0.0.1 -p "$1" set lectern:smoke hello)" = OK ] &&
           [ "$(redis-cli -h 127.0.0.1 -p "$1" get lectern:smoke)" = hello ]' _ "$LECTERN_REDIS_PORT"

# ---------------------------------------------------------------- rabbitmq
# The RabbitMQ CLI needs the broker's environment (HOME holds the Erlang cookie).
rabbit_cli() {
  ( set -a; eval "$env_out"; set +a
    HOME=$LECTERN_RABBIT_HOME exec timeout 60 "/usr/lib/rabbitmq/bin/$1" "${@:2}" </dev/null )
}
plugins=$(rabbit_cli rabbitmq-plugins -q list 2>&1 || true)
if grep -Eq '^ *\[E\*\] rabbitmq_web_stomp ' <<<"$plugins"; then
  ok "rabbitmq-plugins list shows rabbitmq_web_stomp enabled and running"
else
  not_ok "rabbitmq-plugins list shows rabbitmq_web_stomp enabled and running"
  diag <<<"$plugins"
fi
check "AMQP port accepts connections" port_open "$LECTERN_AMQP_PORT"
check "web-stomp port accepts connections" port_open "$LECTERN_WEB_STOMP_PORT"

# AMQP 0-9-1: after the protocol header the broker sends connection.start
# (frame type 1, channel 0, class 10, method 10).
amqp_hello() {
  local hex
  exec 3<>"/dev/tcp/127.0.0.1/$LECTERN_AMQP_PORT" || return 1
  printf 'AMQP\x00\x00\x09\x01' >&3
  hex=$(timeout 5 head -c 11 <&3 | od -An -tx1 | tr -d ' \n')
  exec 3>&-
  [[ $hex =~ ^010000[0-9a-f]{8}000a000a$ ]]
}
check "AMQP handshake starts (connection.start received)" amqp_hello

# Web-STOMP: WebSocket upgrade, then a STOMP CONNECT as guest (loopback) in one
# masked text frame (mask key 0 leaves the payload as is); expect CONNECTED.
web_stomp_connect() {
  local line payload len reply
  exec 3<>"/dev/tcp/127.0.0.1/$LECTERN_WEB_STOMP_PORT" || return 1
  printf 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n' \
    "$LECTERN_WEB_STOMP_PORT" >&3
  IFS= read -r -t 5 line <&3 || { exec 3>&-; return 1; }
  [[ $line == "HTTP/1.1 101"* ]] || { echo "# upgrade answered: $line" >&2; exec 3>&-; return 1; }
  while IFS= read -r -t 5 line <&3 && [[ $line != $'\r' && -n $line ]]; do :; done
  payload=$'CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n'
  len=$(( ${#payload} + 1 ))   # + the NUL that ends a STOMP frame
  # shellcheck disable=SC2059  # the format carries the frame header bytes
  printf "\\x81\\x$(printf %02x $((0x80 | len)))\\x00\\x00\\x00\\x00%s\\x00" "$payload" >&3
  reply=$(timeout 5 head -c 11 <&3 | tr -dc '[:upper:]')
  exec 3>&-
  [[ $reply == CONNECTED ]] || { echo "# STOMP reply: $reply" >&2; return 1; }
}
check "web-stomp upgrades /ws and answers a STOMP CONNECT with CONNECTED" web_stomp_connect

# ---------------------------------------------------------------- mariadb
sql_tcp() { timeout 10 mariadb -h127.0.0.1 -P"$LECTERN_MYSQL_PORT" -ulectern -plectern lectern "$@"; }
check "mariadb: lectern@127.0.0.1 runs 'select 1' over TCP" \
  bash -c '[ "$(timeout 10 mariadb -h127.0.0.1 -P"$1" -ulectern -plectern lectern -N -e "select 1")" = 1 ]' \
  _ "$LECTERN_MYSQL_PORT"
check "mariadb: lectern has DDL/DML rights on lectern.*" \
  sql_tcp -e 'CREATE TABLE smoke (x INT); INSERT INTO smoke VALUES (1); DROP TABLE smoke'
check "mariadb: lectern@localhost works over the socket" \
  bash -c '[ "$(timeout 10 mariadb --socket="$1" -ulectern -plectern lectern -N -e "select 1")" = 1 ]' \
  _ "$LECTERN_VAR_DIR/mariadb/mysqld.sock"

# ---------------------------------------------------------------- status / idempotent start
status_out=$("$svc" status 2>/dev/null) && status_rc=0 || status_rc=$?
check "status exits 0 with everything up" test "$status_rc" = 0
check "status prints one 'up' line per service with its port" bash -c '
  grep -Eqx "redis up port=$1 pid=[0-9]+" <<<"$4" &&
  grep -Eqx "rabbitmq up port=$2 pid=[0-9]+" <<<"$4" &&
  grep -Eqx "mariadb up port=$3 pid=[0-9]+" <<<"$4" && [ "$(wc -l <<<"$4")" = 3 ]' \
  _ "$LECTERN_REDIS_PORT" "$LECTERN_AMQP_PORT" "$LECTERN_MYSQL_PORT" "$status_out"
mapfile -t pids < <(sed -n 's/.* pid=\([0-9]*\)$/\1/p' <<<"$status_out")

t0=$EPOCHREALTIME
check "start again succeeds (idempotent)" "$svc" start 2>/dev/null
again=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b-a}')
echo "# second start took $again s"
check "start again is fast (${again} s < 5 s)" awk -v s="$again" 'BEGIN{exit !(s < 5)}'
check "start again keeps the same processes" test "$("$svc" status 2>/dev/null)" = "$status_out"
check "status of a subset works" bash -c '[ "$("$1" status redis mariadb 2>/dev/null | wc -l)" = 2 ]' _ "$svc"

# ---------------------------------------------------------------- stop
if "$svc" stop 2>"$LECTERN_VAR_DIR/stop.err"; then ok "stop succeeds"; else not_ok "stop succeeds"; fi
sed 's/^/# /' "$LECTERN_VAR_DIR/stop.err"
status_out=$("$svc" status 2>/dev/null) && status_rc=0 || status_rc=$?
check "status exits non-zero after stop" test "$status_rc" != 0
check "status says every service is down" \
  test "$status_out" = $'redis down\nrabbitmq down\nmariadb down'
for p in "${all_ports[@]}"; do
  check "port $p is closed after stop" port_closed "$p"
done
for pid in "${pids[@]}"; do
  check "pid $pid is gone after stop" pid_gone "$pid"
done
check "stop again succeeds (idempotent)" "$svc" stop 2>/dev/null

# ---------------------------------------------------------------- failure paths
# A port held by a process that is not ours: start must refuse, clearly.
redis-server --port "$LECTERN_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$LECTERN_VAR_DIR" >/dev/null 2>&1 </dev/null &
stranger_pid=$!
for _ in $(seq 1 100); do port_open "$LECTERN_REDIS_PORT" && break; sleep 0.05; done
err=$("$svc" start redis 2>&1) && rc=0 || rc=$?
check "start refuses a port taken by a stranger (exit $rc)" test "$rc" != 0
check "the refusal names the port" grep -q "port 127.0.0.1:$LECTERN_REDIS_PORT is already in use" <<<"$err"
kill "$stranger_pid" 2>/dev/null || true
for _ in $(seq 1 100); do port_open "$LECTERN_REDIS_PORT" || break; sleep 0.05; done
stranger_pid=""

# The readiness deadline: RabbitMQ cannot boot in 1 s; start must fail, show
# the log, and leave nothing behind.
t0=$EPOCHREALTIME
err=$(LECTERN_SERVICE_TIMEOUT=1 "$svc" start rabbitmq 2>&1) && rc=0 || rc=$?
took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
check "start fails on the readiness deadline (exit $rc, ${took} s)" test "$rc" != 0
check "the failure shows the log tail" grep -q -- '---- last lines of ' <<<"$err"
for p in "$LECTERN_AMQP_PORT" "$LECTERN_WEB_STOMP_PORT" "$LECTERN_RABBIT_DIST_PORT" "$LECTERN_EPMD_PORT"; do
  check "port $p is closed after the failed start" port_closed "$p"
done

echo "1..$n"
if (( failed )); then
  echo "# $failed of $n checks failed"
  exit 1
fi
echo "# all $n checks passed"
