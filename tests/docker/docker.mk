# tests/docker/docker.mk — static validation of the Docker deployment
# (docker/: Dockerfile, compose.yaml, haproxy.cfg, Prometheus and Grafana
# files; .dockerignore). Included by the Makefile; run by `make test`.
#
#   make docker-check
#
# No Docker engine is used: tests/docker/validate.mjs cross-checks the files
# against each other and against the release binaries (their knobs,
# --check-config, their shared libraries), the metric names in the sources,
# haproxy -c and, when installed, promtool; tests/docker/validate.test.mjs
# runs it on the real tree and on broken copies. Release binaries, because
# the runtime-library check compares `ldd` with the image's packages.

.PHONY: docker-check
docker-check: check-deps
	$(MAKE) SANITIZE=0 bin/lectern-server bin/lectern-storage
	cd tests && LECTERN_SERVER_BIN=$(abspath bin/lectern-server) \
	  LECTERN_STORAGE_BIN=$(abspath bin/lectern-storage) node --test docker/
