# tests/docker/docker.mk — the Docker deployment's tests (docker/:
# Dockerfile, compose.yaml, haproxy.cfg, Prometheus and Grafana files;
# .dockerignore). Included by the Makefile; both run by `make test`.
#
#   make docker-check    static: the files against each other and the code
#   make docker-test     for real: images built, compose up, clients through
#                        haproxy, scaling, a server killed, down -v
#
# docker-test (tests/docker/run.sh) installs what it needs (a Docker engine,
# compose, debootstrap), starts dockerd as a plain process under var/docker/
# when the machine has no engine, makes the Debian base image locally (no
# registry is reachable here; cached under var/docker/) and stand-ins for the
# third-party images (tests/docker/standins/), then runs
# tests/docker/deploy.mjs against the deployment. It prints its timings.
#
# docker-check:
# No Docker engine is used: tests/docker/validate.mjs cross-checks the files
# against each other and against the release binaries (their knobs,
# --check-config, their shared libraries), the metric names in the sources,
# haproxy -c and, when installed, promtool; tests/docker/validate.test.mjs
# runs it on the real tree and on broken copies. Release binaries, because
# the runtime-library check compares `ldd` with the image's packages.

.PHONY: docker-check docker-test docker-prepare-bg docker-prepare-wait
docker-check: check-deps
	$(MAKE) SANITIZE=0 bin/lectern-server bin/lectern-storage
	cd tests && LECTERN_SERVER_BIN=$(abspath bin/lectern-server) \
	  LECTERN_STORAGE_BIN=$(abspath bin/lectern-storage) node --test docker/

docker-test: check-deps
	tests/docker/run.sh

# make test builds the images in the background (run.sh --prepare: packages,
# engine, debootstrap, stand-ins, compose build; mostly downloads) while it
# compiles and runs the unit tests, and waits for that before docker-test,
# which then finds them in Docker's cache. The prepare's output is shown
# when it is waited for; docker-test redoes whatever it did not finish.
docker-prepare-bg:
	@mkdir -p var/docker
	@tests/docker/run.sh --prepare > var/docker/prepare.log 2>&1 < /dev/null & echo $$! > var/docker/prepare.pid

docker-prepare-wait:
	@p=$$(cat var/docker/prepare.pid 2>/dev/null || true); \
	  while [ -n "$$p" ] && kill -0 "$$p" 2>/dev/null; do sleep 1; done; \
	  sed 's/^/[docker-prepare] /' var/docker/prepare.log 2>/dev/null || true; \
	  rm -f var/docker/prepare.pid
