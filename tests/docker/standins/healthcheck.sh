#!/bin/bash
# Stand-in for the official mariadb image's healthcheck.sh, for the two
# checks docker/compose.yaml uses: --connect (a TCP connection, so it fails
# while the first-start initialisation runs without networking) and
# --innodb_initialized (InnoDB is up). Connects as MARIADB_USER.
set -euo pipefail
q() {
  mariadb --protocol=tcp -h127.0.0.1 -P3306 -u"${MARIADB_USER:-root}" \
    -p"${MARIADB_PASSWORD:-${MARIADB_ROOT_PASSWORD:-}}" -N -B -e "$1"
}
for arg in "$@"; do
  case $arg in
    --connect) q "SELECT 1" > /dev/null ;;
    --innodb_initialized)
      [ "$(q "SELECT 1 FROM information_schema.ENGINES WHERE engine='InnoDB' AND support IN ('YES','DEFAULT')")" = 1 ] ;;
    *) echo "healthcheck.sh: unsupported check $arg" >&2; exit 1 ;;
  esac
done
