#!/usr/bin/env bash
# tests/bus/run.sh — integration test of the bus (server/bus*.c) against a real RabbitMQ.
#
# Builds tests/bus/bus_smoke.c with the bus, the envelope codec and the lib
# objects it needs under ASan/UBSan (build/asan/tests/bus_smoke), starts a
# private RabbitMQ with scripts/services in a temporary LECTERN_VAR_DIR on
# free, non-default ports, and runs the program, which stops and restarts the
# broker itself for the reconnect checks (LECTERN_SERVICES). Whatever happens,
# the broker (and its epmd) is stopped and the directory removed on exit.
#
# Output is TAP-like ("ok - ..." / "not ok - ..."); exit status 1 on failure.
# Runnable from any directory; takes about 30 s (RabbitMQ boots twice).
# BUS_SMOKE_SKIP_RESTART=1 skips the restart checks (one boot, ~15 s).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
svc=$root/scripts/services
bin=$root/build/asan/tests/bus_smoke

# shellcheck disable=SC2016  # $1 expands in the inner bash
port_open() { timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# ---------------------------------------------------------------- build
mkdir -p "$(dirname "$bin")"
# shellcheck disable=SC2046  # pkg-config output is a list of flags
cc -std=c11 -D_GNU_SOURCE -g -O1 \
   -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
   -Wall -Wextra -Wshadow -Wstrict-prototypes -Wwrite-strings -Wformat=2 -Werror \
   -I"$root/lib" -I"$root/server" -pthread \
   -o "$bin" "$root/tests/bus/bus_smoke.c" "$root"/server/bus.c "$root"/server/bus_pub.c "$root"/server/bus_con.c "$root"/server/bus_conn.c "$root/lib/storage_queue.c" "$root/lib/envelope.c" "$root/lib/envbatch.c" "$root/lib/buf.c" \
   "$root/lib/mem.c" "$root/lib/log.c" "$root/lib/backoff.c" "$root/lib/clock.c" "$root/lib/histogram.c" "$root/lib/prom.c" "$root/lib/addrlist.c" "$root/lib/amqptls.c" \
   $(pkg-config --cflags --libs librabbitmq libuv openssl) -pthread

# ---------------------------------------------------------------- free ports
# Four consecutive ports in 20000-32000 (below the ephemeral range) that
# nobody listens on: AMQP, Erlang distribution, epmd, web-stomp.
# Distinct free ports on 127.0.0.1 (the integration suite's picker).
read -r -a PORTS <<<"$(node "$root/tests/integration/free-ports.mjs" 4)"
export LECTERN_AMQP_PORT=${PORTS[0]} LECTERN_RABBIT_DIST_PORT=${PORTS[1]} \
       LECTERN_EPMD_PORT=${PORTS[2]} LECTERN_WEB_STOMP_PORT=${PORTS[3]}
unset LECTERN_RABBIT_NODENAME LECTERN_SERVICE_TIMEOUT
LECTERN_VAR_DIR=$(mktemp -d /tmp/lectern-bus.XXXXXX)
export LECTERN_VAR_DIR LECTERN_SERVICES=$svc

cleanup() {
  local rc=$?
  "$svc" stop rabbitmq >/dev/null 2>&1 || echo "# cleanup: scripts/services stop rabbitmq failed" >&2
  rm -rf "$LECTERN_VAR_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# var dir $LECTERN_VAR_DIR; ports amqp=$LECTERN_AMQP_PORT dist=$LECTERN_RABBIT_DIST_PORT" \
     "epmd=$LECTERN_EPMD_PORT web-stomp=$LECTERN_WEB_STOMP_PORT"

# ---------------------------------------------------------------- broker
t0=$EPOCHREALTIME
if ! "$svc" start rabbitmq 2>"$LECTERN_VAR_DIR/start.err"; then
  sed 's/^/# /' "$LECTERN_VAR_DIR/start.err" >&2
  echo "Bail out! rabbitmq did not start"
  exit 1
fi
echo "# rabbitmq up in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}') s"

# ---------------------------------------------------------------- run
# The program's stderr (bus log lines, services progress) is kept in a file
# and shown only when something failed.
rc=0
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
  "$bin" 2>"$LECTERN_VAR_DIR/smoke.err" || rc=$?
if (( rc != 0 )); then
  echo "# bus_smoke exited with $rc; its stderr:"
  sed 's/^/# /' "$LECTERN_VAR_DIR/smoke.err"
  exit 1
fi
echo "# bus log: $(grep -c 'event=bus_up' "$LECTERN_VAR_DIR/smoke.err") bus_up," \
     "$(grep -c 'event=bus_down' "$LECTERN_VAR_DIR/smoke.err") bus_down lines"
