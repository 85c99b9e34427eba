#!/usr/bin/env bash
# tests/run-integration.sh — run the Node integration suite against real
# services: a private Redis, RabbitMQ and MariaDB (scripts/services) on free ports in a
# temporary directory, stopped and removed whatever happens. Extra arguments
# select test files (default: tests/integration/). A test that runs longer
# than LECTERN_TEST_TIMEOUT_MS (10 min) fails instead of hanging the run.
#
# The servers under test read the service ports from the environment
# (LECTERN_REDIS_PORT, LECTERN_AMQP_PORT, LECTERN_MYSQL_PORT); tests that restart a service call
# scripts/services with the same environment.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
LECTERN_VAR_DIR=$(mktemp -d /tmp/lectern-it.XXXXXX)
export LECTERN_VAR_DIR
read -r LECTERN_REDIS_PORT LECTERN_AMQP_PORT LECTERN_RABBIT_DIST_PORT LECTERN_EPMD_PORT \
  LECTERN_WEB_STOMP_PORT LECTERN_MYSQL_PORT < <(node "$root/tests/integration/free-ports.mjs" 6)
export LECTERN_REDIS_PORT LECTERN_AMQP_PORT LECTERN_RABBIT_DIST_PORT LECTERN_EPMD_PORT \
  LECTERN_WEB_STOMP_PORT LECTERN_MYSQL_PORT

cleanup() {
  "$root/scripts/services" stop redis rabbitmq mariadb >/dev/null 2>&1 || true
  rm -rf "$LECTERN_VAR_DIR"
}
trap cleanup EXIT

"$root/scripts/services" start redis rabbitmq mariadb
cd "$root/tests"
[ "$#" -gt 0 ] || set -- integration/
node --test --test-concurrency=1 --test-timeout="${LECTERN_TEST_TIMEOUT_MS:-600000}" "$@"
