#!/usr/bin/env bash
# tests/docker/run.sh — run the compose deployment for real (make docker-test).
#
#   tests/docker/run.sh [--keep]
#   tests/docker/run.sh --prepare
#
# What an operator does with docker/, done on this machine and checked:
#   1. packages: docker.io, docker-compose (v1; `docker compose` v2 is used
#      when present) and debootstrap, installed when missing (scripts/deps
#      --docker);
#   2. engine: the machine's Docker engine when one answers (DOCKER_HOST or
#      /var/run/docker.sock), otherwise a dockerd started here as a plain
#      process with its data under var/docker/ (stopped again at the end);
#   3. base image: no registry is reachable on the test machines, so
#      debian:bookworm (and -slim) is made with `debootstrap --variant=minbase`
#      and `docker import`; the root is cached as var/docker/bookworm.tar;
#   4. images: the stand-ins for rabbitmq, redis, mariadb, haproxy and
#      prometheus (tests/docker/standins/, tagged with the names compose.yaml
#      uses; test-only), then Lectern's two images through compose;
#   5. `up --scale server=3 --scale storage-worker=2` of docker/compose.yaml
#      (Grafana's profile off: Debian has no Grafana), with
#      tests/docker/compose.test.yaml: this machine's open-files limit, a
#      throw-away key file and a throw-away TLS certificate for haproxy
#      (scripts/tls-ca: a local CA, under var/docker/test/tls/);
#   6. tests/docker/deploy.mjs against it, through haproxy's published HTTPS
#      port (wss://, https://, the CA trusted; the HTTP port redirects):
#      stompjs clients spread over the servers get every message once and in
#      order, history over HTTP, rows in MySQL, Prometheus's targets,
#      `--scale server=4` and new connections on the new server, `docker
#      kill` of a server under client-js clients that resume with no loss;
#   7. `down -v`, then nothing of the project may be left: containers,
#      volumes, networks.
# --prepare runs steps 1 to 4 only and leaves the engine it started running
# for the next full run, which finds the images in Docker's cache and stops
# that engine at its end: `make test` prepares in the background while it
# builds and runs the unit tests (a full run alone redoes whatever a
# prepare did not finish). Each phase's time is printed at the end. The project is `lectern-test`, so a
# real `lectern` deployment on the same engine is left alone. --keep leaves
# the deployment up (and the engine running) for a look; `down -v` by hand.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
keep=0 prepare=0
case ${1:-} in
  --keep) keep=1 ;;
  --prepare) prepare=1 ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  "") ;;
  *) echo "usage: tests/docker/run.sh [--keep | --prepare]" >&2; exit 2 ;;
esac

var=$root/var/docker
project=lectern-test
mkdir -p "$var/test"
say() { printf '[docker-test] %s\n' "$*"; }
t_all=$(date +%s.%N)
timings=()
phase_start=
phase() { phase_start=$(date +%s.%N); phase_name=$1; say "$1"; }
phase_end() {
  local s
  s=$(awk -v a="$phase_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  timings+=("$(printf '%-46s %7s s' "$phase_name" "$s")")
}
# Each phase's time, then the whole run's.
say_timings() {
  local t
  say "timings:"
  for t in "${timings[@]}"; do say "  $t"; done
  say "$(printf '  %-46s %7s s' total "$(awk -v a="$t_all" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')")"
}

# --- 1. packages ------------------------------------------------------------
phase "packages"
"$root/scripts/deps" --docker --check 2>/dev/null || "$root/scripts/deps" --docker
phase_end

# --- 2. engine --------------------------------------------------------------
phase "engine"
started_engine=0
engine_ok() { docker info > /dev/null 2>&1; }
if [ -z "${DOCKER_HOST:-}" ] && [ -S /var/run/docker.sock ] && DOCKER_HOST=unix:///var/run/docker.sock engine_ok; then
  export DOCKER_HOST=unix:///var/run/docker.sock
fi
if [ -n "${DOCKER_HOST:-}" ] && engine_ok; then
  say "using the Docker engine at $DOCKER_HOST"
else
  export DOCKER_HOST=unix://$var/docker.sock
  if ! engine_ok; then
    # exec-root holds containerd's sockets, whose paths must stay short
    # (108 bytes): under var/ when the checkout's path allows it.
    exec_root=$var/x
    [ "${#exec_root}" -le 48 ] || exec_root=/run/lectern-docker-$(printf '%s' "$root" | md5sum | cut -c1-8)
    mkdir -p "$var/data" "$exec_root"
    setsid dockerd --data-root "$var/data" --exec-root "$exec_root" \
      --pidfile "$var/dockerd.pid" -H "$DOCKER_HOST" > "$var/dockerd.log" 2>&1 < /dev/null &
    started_engine=1
    for _ in $(seq 150); do engine_ok && break; sleep 0.2; done
    engine_ok || { say "dockerd did not start: $var/dockerd.log"; tail -20 "$var/dockerd.log" >&2; exit 1; }
    say "started dockerd (data under $var/data, log $var/dockerd.log)"
  else
    say "using the project's dockerd at $DOCKER_HOST"
    # A --prepare run started it for this run, which stops it at its end.
    if [ -e "$var/engine.prepared" ]; then
      started_engine=1
      rm -f "$var/engine.prepared"
    fi
  fi
fi
phase_end

stop_engine() {
  [ "$started_engine" = 1 ] || return 0
  local pid
  pid=$(cat "$var/dockerd.pid" 2>/dev/null || true)
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}

# compose v2 when the engine's CLI has it, else Debian's v1.
if docker compose version > /dev/null 2>&1; then
  compose=(docker compose)
else
  compose=(docker-compose)
fi
compose+=(-p "$project" -f "$root/docker/compose.yaml" -f "$root/tests/docker/compose.test.yaml")
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0   # the legacy builder: BuildKit would fetch a frontend image

down() {
  "${compose[@]}" down -v --remove-orphans > "$var/test/down.log" 2>&1
}
cleanup() {
  local rc=$?
  if [ "$keep" = 1 ]; then
    say "left running (--keep): ${compose[*]} down -v"
  elif [ "$prepare" = 1 ] && [ "$rc" = 0 ]; then
    # The images are built; the engine stays up for the full run.
    [ "$started_engine" = 0 ] || touch "$var/engine.prepared"
  else
    [ "$rc" = 0 ] || { down || true; }
    stop_engine
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 3. base image ----------------------------------------------------------
phase "base image (debootstrap, cached)"
if ! docker image inspect debian:bookworm > /dev/null 2>&1; then
  if [ ! -s "$var/bookworm.tar" ]; then
    rm -rf "$var/bookworm"
    debootstrap --variant=minbase bookworm "$var/bookworm" http://deb.debian.org/debian > "$var/debootstrap.log" 2>&1 ||
      { say "debootstrap failed: $var/debootstrap.log"; tail -20 "$var/debootstrap.log" >&2; exit 1; }
    tar -C "$var/bookworm" -cf "$var/bookworm.tar.part" . && mv "$var/bookworm.tar.part" "$var/bookworm.tar"
    rm -rf "$var/bookworm"
  fi
  docker import - debian:bookworm < "$var/bookworm.tar" > /dev/null
fi
docker tag debian:bookworm debian:bookworm-slim
phase_end

# --- 4. images --------------------------------------------------------------
phase "stand-in images (Debian packages)"
standins=(rabbitmq=rabbitmq:3.12-management redis=redis:7 mariadb=mariadb:10.11
          haproxy=haproxy:2.6 prometheus=prom/prometheus:v2.51.2)
for s in "${standins[@]}"; do
  docker build -q --target "${s%%=*}" -t "${s#*=}" "$root/tests/docker/standins" > "$var/test/build-${s%%=*}.log" 2>&1 ||
    { say "building the ${s%%=*} stand-in failed"; tail -30 "$var/test/build-${s%%=*}.log" >&2; exit 1; }
done
phase_end

# A throw-away key file for the servers (compose's secret), readable by their
# uid only, as docker/README.md tells operators to make theirs.
keys=$var/test/lectern-keys
if [ ! -s "$keys" ]; then
  printf 'k1 HS256 %s\n' "$(openssl rand -hex 32)" > "$keys"
fi
chown 10001 "$keys" 2>/dev/null || true
chmod 400 "$keys"

# haproxy's certificate (compose's secret lectern-tls): from a throw-away
# local CA (scripts/tls-ca, openssl; kept and reused while valid) for
# localhost and 127.0.0.1, the chain and key in one file as docker/README.md
# tells operators to write theirs, readable by haproxy's uid (99 in the
# official image). deploy.mjs trusts the CA (LECTERN_DT_CA).
LECTERN_VAR_DIR=$var/test "$root/scripts/tls-ca" make > /dev/null
tls_pem=$var/test/lectern-tls.pem
rm -f "$tls_pem"
cp "$var/test/tls/server.pem" "$tls_pem"
chown 99 "$tls_pem" 2>/dev/null || true
chmod 400 "$tls_pem"

# Free host ports for what compose publishes (a running `make run` or another
# deployment may hold the defaults).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export LECTERN_PUBLIC_PORT=$(free_port) LECTERN_HTTP_PORT=$(free_port) LECTERN_STATS_PORT=$(free_port)
export LECTERN_PROMETHEUS_PORT=$(free_port) LECTERN_RABBITMQ_UI_PORT=$(free_port)
export LECTERN_GRAFANA_PORT=$(free_port)

down || true    # what an interrupted earlier run left
phase "Lectern images (compose build)"
"${compose[@]}" build > "$var/test/build-lectern.log" 2>&1 ||
  { say "compose build failed: $var/test/build-lectern.log"; tail -40 "$var/test/build-lectern.log" >&2; exit 1; }
phase_end

if [ "$prepare" = 1 ]; then
  say "prepared: the images are built"
  say_timings
  exit 0
fi

# --- 5. up ------------------------------------------------------------------
phase "up --scale server=3 --scale storage-worker=2"
"${compose[@]}" up -d --scale server=3 --scale storage-worker=2 > "$var/test/up.log" 2>&1 ||
  { say "compose up failed: $var/test/up.log"; tail -40 "$var/test/up.log" >&2; "${compose[@]}" logs --no-color --tail 30 >&2 || true; exit 1; }
phase_end

# --- 6. the scenario --------------------------------------------------------
phase "scenario (tests/docker/deploy.mjs)"
compose_json=$(printf '%s\n' "${compose[@]}" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().splitlines()))')
set +e
(cd "$root/tests" && LECTERN_DT_COMPOSE=$compose_json LECTERN_DT_PROJECT=$project \
  LECTERN_DT_KEYS=$keys LECTERN_DT_CA=$var/test/tls/ca.pem node --test --test-concurrency=1 docker/deploy.mjs)
rc=$?
set -e
phase_end
if [ "$rc" != 0 ]; then
  say "the scenario failed; the last lines of each container's log:"
  "${compose[@]}" logs --no-color --tail 25 >&2 || true
  exit "$rc"
fi

# --- 7. down ----------------------------------------------------------------
if [ "$keep" = 1 ]; then exit 0; fi
phase "down -v"
down || { say "compose down failed: $var/test/down.log"; cat "$var/test/down.log" >&2; exit 1; }
left=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
vols=$(docker volume ls -q --filter "label=com.docker.compose.project=$project")
nets=$(docker network ls -q --filter "label=com.docker.compose.project=$project")
if [ -n "$left$vols$nets" ]; then
  say "compose down -v left: containers [$left] volumes [$vols] networks [$nets]"
  exit 1
fi
say "nothing of $project is left: no container, volume or network"
phase_end

say_timings
