# Lectern — build, test and run.
#
#   make              build bin/lectern-server and bin/lectern-storage (release, -O2)
#   make SANITIZE=1   the same under ASan+UBSan, in build/asan (binary build/asan/bin/)
#   make deps         install the Debian packages and npm modules (idempotent)
#   make test         unit tests (under sanitizers), service smoke test, integration tests
#   make storage-test lectern-storage against private RabbitMQ and MariaDB
#   make run          start services and the cluster in the background, print the URLs
#                     (TLS=1 make run: haproxy serves https:// and wss:// with a local CA's certificate)
#   make stop         stop everything `make run` started
#   make bench        benchmark Lectern against RabbitMQ Web-STOMP, write docs/benchmarks.md
#   make soak         30 minutes of mixed traffic with a restart, sampled: docs/soak.json, docs/soak.png
#   make docker-check validate docker/ statically (compose, Dockerfile, haproxy, Prometheus, Grafana)
#   make fuzz         libFuzzer targets, FUZZ_SECONDS (60) each; fuzz-smoke: 10 s (tests/fuzz/)
#   make test-cluster three hosts in network namespaces (RabbitMQ cluster, Redis Sentinel):
#                     kill a RabbitMQ node, kill the Redis master, cut a link (tests/cluster/)
#
# Each variant builds in its own directory so switching flags never reuses
# stale objects.

SANITIZE ?= 0
# `make test` builds with one job per core.
NPROC := $(shell nproc 2>/dev/null || echo 1)
ifeq ($(SANITIZE),1)
VARIANT  := asan
BINDIR   := build/asan/bin
OPT      := -O1
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
VARIANT  := release
BINDIR   := bin
OPT      := -O2
SANFLAGS :=
endif
B := build/$(VARIANT)

CC       ?= cc
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wwrite-strings -Wformat=2 -Werror
CFLAGS   += -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARNINGS) $(SANFLAGS) -MMD -MP -Ilib -pthread \
            $(shell pkg-config --cflags libmariadb 2>/dev/null)
LDFLAGS  += $(SANFLAGS)

SERVER_PKGS := libwebsockets libuv librabbitmq hiredis libmariadb libssl libcrypto
SERVER_LIBS := $(shell pkg-config --libs $(SERVER_PKGS) 2>/dev/null) -linih -ljansson -lm -pthread
WORKER_PKGS := libwebsockets libuv librabbitmq libmariadb libssl libcrypto
WORKER_LIBS := $(shell pkg-config --libs $(WORKER_PKGS) 2>/dev/null) -linih -ljansson -lm -pthread
TEST_LIBS   := -lcmocka

LIB_SRC    := $(wildcard lib/*.c)
SERVER_SRC := $(wildcard server/*.c)
LIB_OBJ    := $(LIB_SRC:%.c=$(B)/%.o)
# The registry's Lua scripts are compiled into lectern-server (one C file
# made from server/lua/*.lua, each script behind the shared prelude).
LUA_PRELUDE := server/lua/prelude.lua
LUA_SCRIPTS := $(sort $(filter-out $(LUA_PRELUDE),$(wildcard server/lua/*.lua)))
SERVER_OBJ := $(SERVER_SRC:%.c=$(B)/%.o) $(B)/server/registry_lua.o
WORKER_SRC := $(wildcard storage-worker/*.c)
# The schema migrations are compiled into lectern-storage (one C file made
# from storage-worker/schema/*.sql), so a worker binary always carries the
# schema it expects.
SCHEMA_SQL := $(sort $(wildcard storage-worker/schema/*.sql))
WORKER_OBJ := $(WORKER_SRC:%.c=$(B)/%.o) $(B)/storage-worker/schema_sql.o
# Everything of the server but main(), for unit tests to link against.
SERVER_CORE := $(filter-out $(B)/server/main.o,$(SERVER_OBJ))

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

.PHONY: all deps test unit unit-bins integration services-test bus-test storage-test run stop \
        clean check-deps bench soak client-test fuzz fuzz-smoke docker-check test-cluster check-includes
.DEFAULT_GOAL := all

all: $(BINDIR)/lectern-server $(BINDIR)/lectern-storage $(B)/tests/lectern-load

$(BINDIR)/lectern-server: $(SERVER_OBJ) $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(SERVER_LIBS)

$(BINDIR)/lectern-storage: $(WORKER_OBJ) $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(WORKER_LIBS)

$(B)/storage-worker/schema_sql.c: $(SCHEMA_SQL) scripts/embed-sql
	@mkdir -p $(@D)
	scripts/embed-sql $(SCHEMA_SQL) > $@

$(B)/storage-worker/schema_sql.o: $(B)/storage-worker/schema_sql.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/server/registry_lua.c: $(LUA_PRELUDE) $(LUA_SCRIPTS) scripts/embed-lua
	@mkdir -p $(@D)
	scripts/embed-lua $(LUA_PRELUDE) $(LUA_SCRIPTS) > $@.tmp
	mv $@.tmp $@

$(B)/server/registry_lua.o: $(B)/server/registry_lua.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/storage-worker/%.o: CFLAGS += -Istorage-worker
$(B)/server/%.o: CFLAGS += -Iserver
$(B)/tests/%.o: CFLAGS += -Iserver

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/tests/test_%: $(B)/tests/unit/test_%.o $(SERVER_CORE) $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(SERVER_LIBS) $(TEST_LIBS)

# Unit tests of the modules above the cluster services link only the module
# under test and what it uses; what it would call in Redis, RabbitMQ or
# MySQL is a double in the test file itself (a link-time seam).
UNIT_ROOMS := server/room.o server/seqbuf.o server/msg.o server/stomp.o lib/buf.o lib/mem.o \
              lib/utf8.o
$(B)/tests/test_room: $(B)/tests/unit/test_room.o $(addprefix $(B)/,$(UNIT_ROOMS))
$(B)/tests/test_presence: $(B)/tests/unit/test_presence.o \
    $(addprefix $(B)/,$(UNIT_ROOMS) server/presence.o lib/log.o)
$(B)/tests/test_resume: $(B)/tests/unit/test_resume.o \
    $(addprefix $(B)/,$(UNIT_ROOMS) server/resume.o server/gate.o lib/msgid.o lib/log.o)
$(B)/tests/test_relay: $(B)/tests/unit/test_relay.o \
    $(addprefix $(B)/,$(UNIT_ROOMS) server/relay.o lib/envelope.o lib/storelimits.o \
                      lib/msgid.o lib/log.o)
$(B)/tests/test_status: $(B)/tests/unit/test_status.o \
    $(addprefix $(B)/,$(UNIT_ROOMS) server/status.o server/userid.o lib/log.o)
$(B)/tests/test_room $(B)/tests/test_presence $(B)/tests/test_resume $(B)/tests/test_relay \
$(B)/tests/test_status:
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ -luv -ljansson -lrabbitmq $(TEST_LIBS)
# Contact lists: the Redis and MySQL calls and the loop clock (uv_now) are
# doubles in the test, so no libuv either; the Redis value's codec is real.
$(B)/tests/test_contacts: $(B)/tests/unit/test_contacts.o $(B)/server/contacts.o \
    $(B)/server/registry_contacts_value.o $(B)/server/userid.o $(B)/lib/buf.o $(B)/lib/mem.o \
    $(B)/lib/utf8.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS)

# The load generator's codec, scanner, histogram, /status parser, connection
# layer, Socket.IO codec, TLS layer and report JSON (no server code).
LOAD_LIB := $(B)/tests/load/ws.o $(B)/tests/load/scan.o $(B)/tests/load/hist.o \
            $(B)/tests/load/statusmsg.o $(B)/tests/load/conn.o $(B)/tests/load/json.o \
            $(B)/tests/load/sio.o $(B)/tests/load/tlsio.o
$(B)/tests/test_loadgen: $(B)/tests/unit/test_loadgen.o $(LOAD_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(shell pkg-config --libs libssl libcrypto 2>/dev/null)

unit-bins: $(UNIT_BIN)

# The storage tests' publisher: envelopes into the storage queue, with confirms.
$(B)/tests/storage-publish: $(B)/tests/storage/publish.o $(B)/lib/envelope.o $(B)/lib/envbatch.o \
                           $(B)/lib/buf.o $(B)/lib/mem.o $(B)/lib/storage_queue.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs librabbitmq 2>/dev/null)

# The load generator (make bench; see tests/load/load.c); OpenSSL for
# wss:// (tests/load/tlsio.c) and the WebSocket key's SHA-1.
LOAD_SRC := $(wildcard tests/load/*.c)
$(B)/tests/lectern-load: $(LOAD_SRC:%.c=$(B)/%.o)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs libssl libcrypto 2>/dev/null)

# Unit tests of lectern-storage's pure parts (schema splitting, backoff, metrics text).
$(B)/tests/storage-units: $(B)/tests/storage/test_units.o $(B)/storage-worker/schema.o \
                          $(B)/storage-worker/schema_sql.o $(B)/storage-worker/metrics.o \
                          $(B)/lib/backoff.o $(B)/lib/buf.o $(B)/lib/clock.o $(B)/lib/mem.o \
                          $(B)/lib/prom.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS)

# --- dependencies ---------------------------------------------------------

deps:
	scripts/deps

# Runs `make deps` only when something is missing, so a machine that has
# everything does no package work.
check-deps:
	@scripts/deps --check 2>/dev/null || scripts/deps

# --- tests ----------------------------------------------------------------

# Unit tests and the integration suite run against the sanitizer build: any
# ASan/UBSan report fails the run. The release build is compiled too, so a
# warning that only -O2 finds still breaks the build.
test: check-deps
	$(MAKE) check-includes
	$(MAKE) docker-prepare-bg
	$(MAKE) -j$(NPROC) all
	$(MAKE) -j$(NPROC) SANITIZE=1 all unit-bins
	$(MAKE) SANITIZE=1 unit
	$(MAKE) fuzz-smoke
	$(MAKE) docker-check
	$(MAKE) docker-prepare-wait
	$(MAKE) docker-test
	$(MAKE) client-test
	$(MAKE) services-test
	$(MAKE) bus-test
	$(MAKE) storage-test
	$(MAKE) SANITIZE=1 integration
	$(MAKE) SANITIZE=1 test-cluster

# No cycle among the modules' #includes (scripts/check-includes; --dot
# prints the graph).
check-includes:
	scripts/check-includes

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 $$t; done

# client-js's unit tests (Node's test runner; no services needed).
client-test:
	node --test client-js/test/

services-test:
	tests/services.sh

# The RabbitMQ bus on its own, against a private broker (restarts it too).
bus-test:
	tests/bus/run.sh

# lectern-storage: its unit tests, then the worker against a private RabbitMQ
# and MariaDB: kill -9, a MySQL outage, duplicates and poison, SIGTERM, CLI
# and metrics. The heavy run uses the release build, the others the
# sanitizer build.
storage-test:
	$(MAKE) SANITIZE=0 bin/lectern-storage build/release/tests/storage-publish
	$(MAKE) SANITIZE=1 build/asan/bin/lectern-storage build/asan/tests/storage-units
	tests/storage/run.sh

integration: $(BINDIR)/lectern-server $(BINDIR)/lectern-storage $(B)/tests/lectern-load
	LECTERN_SERVER_BIN=$(abspath $(BINDIR)/lectern-server) \
	LECTERN_STORAGE_BIN=$(abspath $(BINDIR)/lectern-storage) \
	LECTERN_LOAD_BIN=$(abspath $(B)/tests/lectern-load) \
	  tests/run-integration.sh $(TESTS)

# The multi-host scenarios (tests/cluster/run.sh): hosts in network
# namespaces, or on loopback addresses where namespaces cannot be made.
test-cluster: $(BINDIR)/lectern-server $(BINDIR)/lectern-storage
	LECTERN_SERVER_BIN=$(abspath $(BINDIR)/lectern-server) \
	LECTERN_STORAGE_BIN=$(abspath $(BINDIR)/lectern-storage) \
	  tests/cluster/run.sh

# --- running locally ------------------------------------------------------

# A sub-make builds after check-deps, so that on a fresh machine the
# pkg-config flags are read once the packages are there.
run: check-deps
	$(MAKE) all
	scripts/cluster start

stop:
	scripts/cluster stop

# Benchmarks (release build): a private cluster on free ports, the load
# generator against it and against RabbitMQ Web-STOMP, docs/benchmarks.md.
bench: check-deps
	$(MAKE) SANITIZE=0 all build/release/tests/storage-publish
	scripts/bench $(BENCH_ARGS)

# The soak (release build, not part of make test): a private cluster under
# mixed traffic for SOAK_MINUTES (30), a server restart halfway, sampled and
# judged for growth and loss; docs/soak.json and docs/soak.png (gnuplot,
# from scripts/deps --soak).
soak: check-deps
	@scripts/deps --soak --check 2>/dev/null || scripts/deps --soak
	$(MAKE) SANITIZE=0 all
	scripts/soak

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
include tests/fuzz/fuzz.mk
include tests/docker/docker.mk
