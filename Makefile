# metaembed — one top-level Makefile.
#
#   make demo                 install what is missing, build, run the main job
#   make                      release build of every binary into build/release/
#   make check                unit + integration tests under ASan + UBSan, then the Python client's
#   make check-python         the Python client's tests alone (release build)
#   make bench                benchmarks (print figures, never fail on time)
#   make SANITIZER=address    any build with a sanitizer (address|undefined|thread)
#
# Objects go out of tree into $(BUILD); -MMD keeps header dependencies exact.

.DEFAULT_GOAL := all
CC      ?= cc
OPT     ?= -O2
SANITIZER ?=

ifeq ($(SANITIZER),)
BUILD   ?= build/release
SANFLAGS :=
else
BUILD   ?= build/$(subst $(comma),-,$(SANITIZER))
SANFLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
comma := ,

PKGS    := libzmq libprotobuf-c rocksdb libuv libpng libjpeg liburiparser libarchive
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
BLAS_CFLAGS := -I/usr/include/x86_64-linux-gnu/openblas-pthread
BLAS_LIBS   := -lopenblas

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes
ifneq ($(CI),)
WARN    += -Werror
endif
CFLAGS  += -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) $(SANFLAGS) -MMD -MP \
           -I. -I$(BUILD)/gen $(PKG_CFLAGS) $(BLAS_CFLAGS)
LDFLAGS += $(SANFLAGS)
LDLIBS  += $(PKG_LIBS) $(BLAS_LIBS) -lhttp_parser -lz -lpthread -lm

# ---- generated protocol code ------------------------------------------------
PROTO_C := $(BUILD)/gen/proto/metaembed.pb-c.c
PROTO_H := $(BUILD)/gen/proto/metaembed.pb-c.h
$(PROTO_C) $(PROTO_H): proto/metaembed.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen proto/metaembed.proto

# ---- sources ----------------------------------------------------------------
COMMON_SRC := $(wildcard common/*.c)
SHARD_SRC  := $(filter-out shard/main.c,$(wildcard shard/*.c))
CLIENT_SRC := client/metaembed.c
CLI_SRC    := $(wildcard cli/*.c)
COORD_SRC  := $(filter-out coordinator/main.c,$(wildcard coordinator/*.c))
ENCODER_SRC := $(filter-out encoder/main.c,$(wildcard encoder/*.c))

COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/proto/metaembed.pb-c.o
SHARD_OBJ  := $(SHARD_SRC:%.c=$(BUILD)/%.o)
CLIENT_OBJ := $(CLIENT_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/%.o)
COORD_OBJ  := $(COORD_SRC:%.c=$(BUILD)/%.o)
ENCODER_OBJ := $(ENCODER_SRC:%.c=$(BUILD)/%.o)

BIN        := $(BUILD)/bin
SHARD_BIN  := $(BIN)/metaembed-shard
COORD_BIN  := $(BIN)/metaembed-coordinator
ENC_BIN    := $(BIN)/metaembed-encoder
CLI_BIN    := $(BIN)/metaembed
DAEMONS    := $(SHARD_BIN) $(COORD_BIN) $(ENC_BIN) $(CLI_BIN)

UNIT_SRC   := $(wildcard tests/unit/*.c)
INTEG_SRC  := $(wildcard tests/integration/*.c)
TESTLIB_SRC := $(wildcard tests/*.c)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/%.o)
BENCH_SRC  := $(wildcard tests/bench/*.c)
BENCH_BIN  := $(BENCH_SRC:tests/bench/%.c=$(BIN)/%)
FUZZ_SRC   := $(wildcard tests/fuzz/*.c)

ALL_OBJ := $(COMMON_OBJ) $(SHARD_OBJ) $(CLIENT_OBJ) $(CLI_OBJ) $(COORD_OBJ) $(ENCODER_OBJ) $(BUILD)/shard/main.o \
           $(BUILD)/coordinator/main.o $(BUILD)/encoder/main.o $(TESTLIB_OBJ) \
           $(UNIT_SRC:%.c=$(BUILD)/%.o) $(INTEG_SRC:%.c=$(BUILD)/%.o) \
           $(BENCH_SRC:%.c=$(BUILD)/%.o) $(FUZZ_SRC:%.c=$(BUILD)/%.o)

.PHONY: all check check-build check-python bench demo clean install install-deps dashboard-screenshot search-screenshot deploy-lint fuzz fuzz-build soak
all: $(DAEMONS)

# Every object waits for the generated header so first builds are ordered.
$(BUILD)/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# GET /openapi.json serves the checked-in document, embedded with .incbin.
$(BUILD)/coordinator/openapi.o: docs/openapi.json

$(BUILD)/gen/proto/metaembed.pb-c.o: $(PROTO_C)
	$(CC) $(CFLAGS) -Wno-shadow -c $< -o $@

$(BUILD)/libmecommon.a: $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SHARD_BIN): $(BUILD)/shard/main.o $(SHARD_OBJ) $(BUILD)/libmecommon.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(ENC_BIN): $(BUILD)/encoder/main.o $(ENCODER_OBJ) $(BUILD)/libmetaembed.a $(BUILD)/libmecommon.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(COORD_BIN): $(BUILD)/coordinator/main.o $(COORD_OBJ) $(BUILD)/libmetaembed.a $(BUILD)/libmecommon.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(CLI_BIN): $(CLI_OBJ) $(ENCODER_OBJ) $(BUILD)/libmetaembed.a $(BUILD)/libmecommon.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libmetaembed.a: $(CLIENT_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/unit_tests: $(UNIT_SRC:%.c=$(BUILD)/%.o) $(TESTLIB_OBJ) $(SHARD_OBJ) $(COORD_OBJ) $(ENCODER_OBJ) $(BUILD)/libmetaembed.a $(BUILD)/libmecommon.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/integration_tests: $(INTEG_SRC:%.c=$(BUILD)/%.o) $(TESTLIB_OBJ) $(ENCODER_OBJ) $(BUILD)/libmetaembed.a $(BUILD)/libmecommon.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/bench_%: $(BUILD)/tests/bench/bench_%.o $(TESTLIB_OBJ) $(SHARD_OBJ) $(ENCODER_OBJ) $(BUILD)/libmetaembed.a $(BUILD)/libmecommon.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ---- targets ----------------------------------------------------------------
CHECK_BUILD := build/address-undefined

check-build: $(DAEMONS) $(BIN)/unit_tests $(BIN)/integration_tests

# Tests run under ASan + UBSan (the Python client's against those daemons);
# the runner prints one closing line "N passed, N failed" summed over the
# suites. openapi-check: every route of the HTTP API is in docs/openapi.json.
check:
	@deploy/install-deps.sh --check-only || deploy/install-deps.sh
	$(MAKE) --no-print-directory SANITIZER=address,undefined OPT=-O1 check-build
	@tests/layering.sh
	@tests/openapi-check.py
	@ME_BIN=$(CHECK_BUILD)/bin tests/run-tests.sh $(CHECK_BUILD)/bin

# The Python client alone (clients/python): pip-installed offline into
# build/pyvenv, its pytest suite against a real cluster of release binaries.
check-python: $(DAEMONS)
	@tests/openapi-check.py
	@tests/run-python.sh $(BIN)

bench:
	$(MAKE) --no-print-directory $(DAEMONS) $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; ME_BIN=$(BIN) $$b || exit 1; done

install-deps:
	deploy/install-deps.sh

# The main job: a local cluster ingests the Debian descriptions as text and
# prints the quality / latency / size table per budget (deploy/demo.sh).
demo:
	@deploy/install-deps.sh --check-only || deploy/install-deps.sh
	$(MAKE) --no-print-directory all
	deploy/demo.sh

# The long forms of the crash-consistency loop (make check kills 20 times),
# the load soak (make check runs 20 s) and the replicas' fault loop with its
# consistency checker (make check injects 16 faults). SOAK_TESTS picks some.
SOAK_KILLS ?= 200
SOAK_SECONDS ?= 300
SOAK_FAULTS ?= 200
SOAK_TESTS ?= crash_ load_ converge_fault
soak:
	$(MAKE) --no-print-directory SANITIZER=address,undefined OPT=-O1 check-build
	ME_SOAK_KILLS=$(SOAK_KILLS) ME_SOAK_SECONDS=$(SOAK_SECONDS) ME_SOAK_FAULTS=$(SOAK_FAULTS) ME_BIN=$(CHECK_BUILD)/bin \
	  $(CHECK_BUILD)/bin/integration_tests --suite soak $(SOAK_TESTS)

# libFuzzer targets (clang): `make fuzz` runs each for FUZZ_SECONDS from the
# seeds in tests/fuzz/seeds, then replays tests/fuzz/regressions.
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 1
fuzz:
	$(MAKE) --no-print-directory CC=clang BUILD=build/fuzz SANITIZER=address,undefined,fuzzer-no-link OPT=-O1 fuzz-build
	tests/fuzz/run.sh build/fuzz/bin $(FUZZ_SECONDS) $(FUZZ_JOBS)

fuzz-build: $(FUZZ_SRC:tests/fuzz/%.c=$(BIN)/%)
.SECONDARY:

$(BIN)/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(SHARD_OBJ) $(COORD_OBJ) $(ENCODER_OBJ) $(BUILD)/libmetaembed.a $(BUILD)/libmecommon.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# Parses deploy/ (YAML via npm's js-yaml, JSON, shell syntax).
deploy-lint:
	tests/deploy-lint.sh

# The coordinator's dashboard in headless Chromium, with live figures.
dashboard-screenshot: all
	deploy/dashboard-screenshot.sh

# The page's search view: emoji hits as thumbnails (needs the emoji model).
search-screenshot: all
	deploy/search-screenshot.sh

# make install [PREFIX=/usr/local] [DESTDIR=]: the binaries, libmetaembed
# (static, self-contained apart from libzmq and libprotobuf-c), its header
# a pkg-config file: cc app.c $(pkg-config --cflags --libs metaembed), and
# the shipped models under PREFIX/share/metaembed/models, where the binaries
# look for their default --model (common/paths.c).
PREFIX ?= /usr/local
LIB_OBJ := $(CLIENT_OBJ) $(BUILD)/common/wire.o $(BUILD)/common/curve.o $(BUILD)/common/dtype.o $(BUILD)/common/error.o $(BUILD)/common/validate.o $(BUILD)/common/hash.o \
           $(BUILD)/common/payload.o $(BUILD)/common/filter_parse.o $(BUILD)/common/json.o \
           $(BUILD)/gen/proto/metaembed.pb-c.o
$(BUILD)/dist/libmetaembed.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

install: all $(BUILD)/dist/libmetaembed.a
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(DAEMONS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/dist/libmetaembed.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/metaembed.h $(DESTDIR)$(PREFIX)/include/
	sed 's|@PREFIX@|$(PREFIX)|' client/metaembed.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/metaembed.pc
	install -d $(DESTDIR)$(PREFIX)/share/metaembed/models
	install -m 644 models/*.safetensors $(DESTDIR)$(PREFIX)/share/metaembed/models/

clean:
	rm -rf build

-include $(ALL_OBJ:.o=.d) $(FUZZ_SRC:%.c=$(BUILD)/%.d)
