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

.PHONY: docker-check docker-test
docker-check: check-deps
	$(MAKE) SANITIZE=0 bin/lectern-server bin/lectern-storage
	cd tests && LECTERN_SERVER_BIN=$(abspath bin/lectern-server) \
	  LECTERN_STORAGE_BIN=$(abspath bin/lectern-storage) node --test docker/

docker-test: check-deps
	tests/docker/run.sh
