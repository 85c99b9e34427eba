#!/usr/bin/env bash
# tests/run-integration.sh — run the Node integration suite against real
# services: private Redis, RabbitMQ and MariaDB (scripts/services) on free
# ports in temporary directories, stopped and removed whatever happens.
# Extra arguments select test files (default: tests/integration/). A test
# that runs longer than LECTERN_TEST_TIMEOUT_MS (10 min) fails instead of
# hanging the run.
#
# Lanes. LECTERN_TEST_LANES (1) lanes run the suite: each lane has
# services of its own and runs one file at a time, so a test that restarts
# or reconfigures a service disturbs only its own lane; tests/run-lanes.mjs
# hands out the files and prints each file's output whole. Files marked
# `// lane: alone` run first, by themselves. Two lanes take about 70% of
# the time on two cores, but tests with tight timing (a close frame that
# must leave before a timeout, a CONNECTED within 5 s, an RSS sampled
# while a flood is read) then fail now and then, so `make test` runs one.
#
# The servers under test read the service ports from the environment
# (LECTERN_REDIS_PORT, LECTERN_AMQP_PORT, LECTERN_MYSQL_PORT); tests that restart a service call
# scripts/services with the same environment.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lanes=${LECTERN_TEST_LANES:-1}
top=$(mktemp -d /tmp/lectern-it.XXXXXX)
read -r -a ports < <(node "$root/tests/integration/free-ports.mjs" $((6 * lanes)))

# lane N's environment, as KEY=VALUE lines (sourced here, read by run-lanes.mjs)
for ((n = 1; n <= lanes; n++)); do
  p=("${ports[@]:$((6 * (n - 1))):6}")
  mkdir -p "$top/lane$n"
  cat >"$top/lane$n.env" <<ENV
LECTERN_VAR_DIR=$top/lane$n
LECTERN_REDIS_PORT=${p[0]}
LECTERN_AMQP_PORT=${p[1]}
LECTERN_RABBIT_DIST_PORT=${p[2]}
LECTERN_EPMD_PORT=${p[3]}
LECTERN_WEB_STOMP_PORT=${p[4]}
LECTERN_MYSQL_PORT=${p[5]}
ENV
done

services() {   # services N ARGS...: scripts/services in lane N's environment
  local n=$1; shift
  ( set -a; . "$top/lane$n.env"; set +a; exec "$root/scripts/services" "$@" )
}

cleanup() {
  for ((n = 1; n <= lanes; n++)); do services "$n" stop redis rabbitmq mariadb >/dev/null 2>&1 || true; done
  rm -rf "$top"
}
trap cleanup EXIT

# Start every lane's services at once; each start's output is shown after.
pids=()
for ((n = 1; n <= lanes; n++)); do
  services "$n" start redis rabbitmq mariadb >"$top/start$n.log" 2>&1 &
  pids+=($!)
done
failed=0
for ((n = 1; n <= lanes; n++)); do
  wait "${pids[$((n - 1))]}" || failed=1
  sed "s/^/lane $n: /" "$top/start$n.log" >&2
done
[ "$failed" = 0 ] || { echo "run-integration: starting the services failed" >&2; exit 1; }

envs=()
for ((n = 1; n <= lanes; n++)); do envs+=(--env "$top/lane$n.env"); done
cd "$root/tests"
[ "$#" -gt 0 ] || set -- integration/
node run-lanes.mjs "${envs[@]}" "$@"
