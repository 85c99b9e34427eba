#!/bin/bash
# Stand-in for the official rabbitmq image's start (tests/docker/standins/
# Dockerfile): the default user from RABBITMQ_DEFAULT_USER/_PASS (as the
# official image writes them into rabbitmq.conf), the management plugin,
# logs to stdout, the broker in the foreground as PID 1's child.
set -euo pipefail
mkdir -p /etc/rabbitmq /var/lib/rabbitmq
{
  echo "loopback_users = none"
  echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
  echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
  echo "log.console = true"
  echo "log.file = false"
} > /etc/rabbitmq/rabbitmq.conf
echo "[rabbitmq_management]." > /etc/rabbitmq/enabled_plugins
# The cookie must exist before the broker and the CLI read it, with mode 400.
if [ ! -f "$HOME/.erlang.cookie" ]; then
  head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$HOME/.erlang.cookie"
  chmod 400 "$HOME/.erlang.cookie"
fi
exec rabbitmq-server "$@"
