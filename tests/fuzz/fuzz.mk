# tests/fuzz/fuzz.mk — libFuzzer targets (included at the end of the Makefile).
#
#   make fuzz         build the targets in build/fuzz, run each for FUZZ_SECONDS
#                     (60) from its seeds; fails if any target finds a crash
#   make fuzz-smoke   the same with 10 seconds per target
#
# Needs clang and libFuzzer (Debian: clang, libclang-rt-14-dev; scripts/deps).
# Objects for the fuzzers carry coverage instrumentation and ASan+UBSan, so
# they are built apart, in build/fuzz/obj, and each target links only the
# objects it needs. Seeds live in tests/fuzz/corpus/<target>; scripts/fuzz
# runs each target on a copy in build/fuzz/corpus/<target> (the source tree
# never receives generated inputs) and writes crash inputs to
# build/fuzz/artifacts. See tests/fuzz/README.md.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FB           := build/fuzz
FUZZ_SAN     := -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 $(WARNINGS) $(FUZZ_SAN) \
                -fsanitize=fuzzer-no-link,address,undefined \
                -MMD -MP -Ilib -Iserver $(shell pkg-config --cflags libmariadb 2>/dev/null)
FUZZ_LDFLAGS := -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer,address,undefined

# The jwt target is built once server/jwt.c exists.
FUZZ_TARGETS := stomp history_query history_json $(if $(wildcard server/jwt.c),jwt)

# Per target: project objects linked (besides the target's own), extra link
# flags and libraries, and the largest input libFuzzer generates.
#
# stomp: the codec uses buf (encoding) and mem (xmalloc); two control bytes
# plus a stream of several frames.
FUZZ_OBJS_stomp   := server/stomp.o lib/buf.o lib/mem.o
FUZZ_MAXLEN_stomp := 4096
# history_query: server/http_query.c (pure) and the message ids. The query
# is at most 8 fragments of < 160 decoded bytes.
FUZZ_OBJS_history_query    := server/http_query.o lib/msgid.o
FUZZ_MAXLEN_history_query  := 2048
# history_json: the page writer (server/history_json.c) with utf8 and mem;
# jansson parses what it wrote. One message's fields, up to frame size.
FUZZ_OBJS_history_json   := server/history_json.o lib/utf8.o lib/mem.o
FUZZ_LIBS_history_json   := -ljansson
FUZZ_MAXLEN_history_json := 8192
# jwt: what server/jwt.c needs from lib/ is taken from an archive of lib/, so
# the linker picks exactly the members it uses; jansson and libcrypto do the
# JSON and the crypto (the target signs tokens with libcrypto too).
FUZZ_OBJS_jwt   := server/jwt.o server/userid.o
FUZZ_AR_jwt     := $(FB)/liblectern.a
FUZZ_LIBS_jwt   := -ljansson $(shell pkg-config --libs libcrypto 2>/dev/null)
FUZZ_MAXLEN_jwt := 4096

FUZZ_BINS := $(FUZZ_TARGETS:%=$(FB)/fuzz_%)

# fuzz-smoke is what `make test` runs.
fuzz-smoke: FUZZ_SECONDS = 10
fuzz fuzz-smoke: $(FUZZ_BINS)
	scripts/fuzz -t $(FUZZ_SECONDS) $(foreach t,$(FUZZ_TARGETS),$(t):$(FUZZ_MAXLEN_$(t)))

$(FB)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FB)/liblectern.a: $(LIB_SRC:%.c=$(FB)/obj/%.o)
	rm -f $@
	ar rcs $@ $^

define FUZZ_TARGET_RULE
$(FB)/fuzz_$(1): $(FB)/obj/tests/fuzz/fuzz_$(1).o $(FUZZ_OBJS_$(1):%=$(FB)/obj/%) $(FUZZ_AR_$(1))
	$$(FUZZ_CC) $$(FUZZ_LDFLAGS) $(FUZZ_LDFLAGS_$(1)) -o $$@ $$^ $(FUZZ_LIBS_$(1))
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_TARGET_RULE,$(t))))
