#!/bin/bash
# Stand-in for the official mariadb image's start (tests/docker/standins/
# Dockerfile). On the first start (no /var/lib/mysql/mysql) it initialises
# the data directory and, with a server that listens on no TCP port (so the
# health check fails until this is done), sets the root password and creates
# MARIADB_DATABASE and MARIADB_USER@'%' with MARIADB_PASSWORD and every
# privilege on that database, as the official image does. Then the server
# runs in the foreground on 3306.
set -euo pipefail
datadir=/var/lib/mysql
sock=/run/mysqld/mysqld.sock
mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld "$datadir"
sqlstr() { printf "'%s'" "${1//\'/\'\'}"; }
if [ ! -d "$datadir/mysql" ]; then
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
    --auth-root-authentication-method=socket > /dev/null
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket="$sock" &
  pid=$!
  for _ in $(seq 100); do
    mariadb-admin --socket="$sock" -uroot ping > /dev/null 2>&1 && break
    sleep 0.1
  done
  {
    # mariadb-install-db makes anonymous users; ''@localhost would shadow
    # MARIADB_USER@'%' for local connections (the official image drops them).
    echo "DELETE FROM mysql.global_priv WHERE User=''; FLUSH PRIVILEGES;"
    if [ -n "${MARIADB_ROOT_PASSWORD:-}" ]; then
      echo "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD($(sqlstr "$MARIADB_ROOT_PASSWORD"));"
    fi
    if [ -n "${MARIADB_DATABASE:-}" ]; then
      echo "CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
    fi
    if [ -n "${MARIADB_USER:-}" ]; then
      echo "CREATE USER $(sqlstr "$MARIADB_USER")@'%' IDENTIFIED BY $(sqlstr "${MARIADB_PASSWORD:-}");"
      [ -n "${MARIADB_DATABASE:-}" ] &&
        echo "GRANT ALL ON \`$MARIADB_DATABASE\`.* TO $(sqlstr "$MARIADB_USER")@'%';"
    fi
  } | mariadb --socket="$sock" -uroot
  mariadb-admin --socket="$sock" -uroot shutdown
  wait "$pid" || true
fi
exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 --port=3306 \
  --socket="$sock" "$@"
