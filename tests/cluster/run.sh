#!/usr/bin/env bash
# tests/cluster/run.sh — the multi-host scenarios: three test hosts, each
# with a Lectern server, a storage worker and one node of a 3-node RabbitMQ
# cluster; Redis with a replica and three Sentinels; MariaDB on a host of
# its own; clients and haproxy on a fourth host (tests/cluster/multihost.test.mjs
# says what is checked).
#
# Hosts are Linux network namespaces joined by veth links to a bridge that
# lives in a namespace of its own ("the switch"), so nothing here touches
# the machine's own network and no packet can leave it:
#
#     h1 10.231.0.11   h2 .12   h3 .13   db .20   clients .30
#        \               |        |        |       /
#         +------------ br0 in <prefix>-sw ---------+
#
# Cutting a host's link is `ip link set <host> down` on its switch port:
# its packets are dropped silently, like a pulled cable (no RST, no FIN).
# Everything this script creates is removed on exit, whatever happens: the
# processes in the namespaces are killed, then the namespaces deleted.
#
# When namespaces cannot be created (no CAP_SYS_ADMIN, no iproute2), the
# script says so, loudly, and runs the same scenarios with the hosts on
# loopback addresses (127.0.1.11 ...); a cut link is then emulated by
# stopping (SIGSTOP) every process of the host for the same time. It never
# skips. LECTERN_MULTIHOST=loopback forces that mode.
#
# Usage: tests/cluster/run.sh [node --test options, e.g. --test-name-pattern=Redis]
#        (run by `make test-cluster`, part of `make test`)
# Needs: built binaries in LECTERN_SERVER_BIN / LECTERN_STORAGE_BIN (the
# Makefile passes the ASan build), root for namespaces.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
prefix=lx$$
var=$(mktemp -d /tmp/lectern-mh.XXXXXX)
hosts=(h1 h2 h3 db cl)
declare -A addr=([h1]=11 [h2]=12 [h3]=13 [db]=20 [cl]=30)
mode=${LECTERN_MULTIHOST:-netns}
made=()

say() { printf 'multihost: %s\n' "$*" >&2; }

cleanup() {
  local ns pid
  for ns in "${made[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  done
  if [[ $mode == loopback && -d $var ]]; then
    # Loopback hosts: every pid file under the run's directory is ours.
    for pid in $(cat "$var"/*/*/*.pid "$var"/*/*.pid 2>/dev/null); do
      kill -CONT "$pid" 2>/dev/null || true; kill -9 "$pid" 2>/dev/null || true
    done
    pkill -9 -f "$var" 2>/dev/null || true
    # Redis and Sentinel rename themselves to their address:port.
    pkill -9 -f '^redis-server 127\.0\.1\.' 2>/dev/null || true
    # The hosts' shared epmd (tests/cluster/hosts.mjs: PORTS.epmd).
    for pid in $(ss -Hltnp 'sport = :4391' 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
      kill -9 "$pid" 2>/dev/null || true
    done
  fi
  sleep 0.2
  for ns in "${made[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$var"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The bridge lives in a namespace of its own ($prefix-sw), not in the host's:
# a Docker engine on the machine (make docker-test starts one) sets the
# host's iptables FORWARD policy to DROP and loads br_netfilter, but a new
# namespace has its own, empty tables (policy ACCEPT), so the hosts' traffic
# crosses the bridge whether dockerd ran before, runs now, or never ran.
make_netns() {
  local h
  ip netns add "$prefix-sw" || return 1
  made+=("$prefix-sw")
  ip -n "$prefix-sw" link add br0 type bridge || return 1
  ip -n "$prefix-sw" link set br0 up || return 1
  for h in "${hosts[@]}"; do
    ip netns add "$prefix-$h" || return 1
    made+=("$prefix-$h")
    ip -n "$prefix-$h" link set lo up || return 1
    ip -n "$prefix-$h" link add eth0 type veth peer name "$h" netns "$prefix-sw" || return 1
    ip -n "$prefix-sw" link set "$h" master br0 up || return 1
    ip -n "$prefix-$h" addr add "10.231.0.${addr[$h]}/24" dev eth0 || return 1
    ip -n "$prefix-$h" link set eth0 up || return 1
  done
}

if [[ $mode == netns ]]; then
  if ! command -v ip >/dev/null 2>&1; then
    why="iproute2's ip is not installed"
  elif ! make_netns 2>"$var/netns.err"; then
    why=$(tr '\n' ' ' < "$var/netns.err")
    why=${why:-could not create network namespaces}
  else
    why=""
  fi
  if [[ -n $why ]]; then
    say "NETWORK NAMESPACES UNAVAILABLE ($why)"
    say "running the same scenarios with hosts on loopback addresses instead"
    for ns in "${made[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    made=()
    mode=loopback
  fi
fi

export LECTERN_MH_MODE=$mode LECTERN_MH_PREFIX=$prefix LECTERN_MH_VAR=$var
export LECTERN_SERVER_BIN=${LECTERN_SERVER_BIN:-$root/build/asan/bin/lectern-server}
export LECTERN_STORAGE_BIN=${LECTERN_STORAGE_BIN:-$root/build/asan/bin/lectern-storage}
cd "$root/tests"
if [[ $mode == netns ]]; then
  say "hosts are network namespaces $prefix-{h1,h2,h3,db,cl} on bridge $prefix-sw/br0 (10.231.0.0/24)"
  ip netns exec "$prefix-cl" node --test --test-concurrency=1 "$@" cluster/multihost.test.mjs
else
  say "hosts are loopback addresses 127.0.1.{11,12,13,20,30}; a cut link is SIGSTOP of the host's processes"
  node --test --test-concurrency=1 "$@" cluster/multihost.test.mjs
fi
