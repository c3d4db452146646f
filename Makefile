# tm-telemetry build. Plain GNU make; everything lands in $(BUILD) (default build/).
#
#   make            release build (-O2 -g) of libtm and every program
#   make test       installs missing Debian packages, then builds and runs unit and
#                   integration tests twice (plain, then ASan+UBSan in build/san),
#                   a libFuzzer smoke run of every fuzz target, and the source checks
#   make fuzz       libFuzzer targets (clang) in build/fuzz, run FUZZ_SECONDS each
#   make bench      benchmarks (tests/bench), each against a reference run beside it
#   make chaos      the whole-system chaos test in full (make test runs its short form)
#   make run        the whole system on loopback (see tools/run-dev.sh)
#   make deb        Debian packages tm-agent and tm-server into $(BUILD)/deb
#                   (deploy/debian/build-debs.sh; version from the VERSION file)
#   make format / make check-format / make clean
#
# SANITIZE=address,undefined builds with those sanitizers (used by 'make test').
# tm-agent is linked statically (Debian's .a archives, unused sections dropped) unless
# AGENT_STATIC= (empty) or SANITIZE is given; the other programs are dynamic. Footprint,
# trade-offs and measurements: docs/agent.md.

BUILD ?= build
CC ?= cc
CLANG ?= clang
SANITIZE ?=
FUZZ_SECONDS ?= 60

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
	-Wmissing-prototypes -Wold-style-definition -Wvla -Wundef
OPT ?= -O2 -g
# The release: the VERSION file is the only place it is written (binaries print it with
# --version; deploy/debian/build-debs.sh names the packages after it).
TM_VERSION := $(shell tr -d '[:space:]' < VERSION)
CPPFLAGS += -Iinclude -D_GNU_SOURCE -MMD -MP -DTM_VERSION='"$(TM_VERSION)"'
CFLAGS ?=
CFLAGS += -std=c11 $(OPT) $(WARN) -pthread -fno-strict-aliasing

PKGS := libevent libevent_openssl libevent_pthreads rdkafka hiredis jansson yajl inih zlib openssl
# pkg-config runs once, on first use (after 'deps' has installed what was missing).
PKG_CFLAGS = $(eval PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
PKG_LIBS = $(eval PKG_LIBS := $(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)
# mbedTLS (Debian's 2.28 has no pkg-config file): tm-agent's TLS and digests, agent/tls.c.
MBEDTLS_LIBS := -lmbedtls -lmbedx509 -lmbedcrypto
# --as-needed: each program links only the libraries it calls (tm-agent stays small).
LDFLAGS += -Wl,--as-needed
LDLIBS = $(PKG_LIBS) $(MBEDTLS_LIBS) -lm -lpthread

# tm-agent is linked statically by default: the archives of the libraries it calls (yajl's
# is libyajl_s.a); sections let --gc-sections drop what nothing reaches. That is what keeps
# it within its RSS targets (docs/agent.md, "Footprint"). Sanitizers need dynamic linking,
# so a SANITIZE build links it dynamically, as does AGENT_STATIC= (empty).
AGENT_STATIC ?= $(if $(SANITIZE),,1)
AGENT_STATIC_LIBS := -levent -ljansson -lyajl_s -linih -lz $(MBEDTLS_LIBS) -lm -lpthread
ifneq ($(AGENT_STATIC),)
ifneq ($(SANITIZE),)
$(error AGENT_STATIC and SANITIZE do not mix: sanitizers need a dynamic tm-agent)
endif
CFLAGS += -ffunction-sections -fdata-sections
endif

ifneq ($(SANITIZE),)
CFLAGS += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SANITIZE)
endif

OBJ := $(BUILD)/obj
LIBTM := $(BUILD)/libtm.a
LIBTM_SRCS := $(wildcard common/*.c)
LIBTM_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(LIBTM_SRCS))

# Programs: name and the folder holding its sources (all *.c in that folder).
PROGRAMS := tm-devkafka tm-collector tm-aggregator tm-dashboard tm-agent tmctl tm-loadgen
tm-devkafka_DIR := tools/devkafka
tm-collector_DIR := collector
tm-aggregator_DIR := aggregator
tm-dashboard_DIR := dashboard
tm-agent_DIR := agent
tmctl_DIR := tools/tmctl
tm-loadgen_DIR := tools/loadgen

BINS :=
define program
$(1)_SRCS := $$(wildcard $$($(1)_DIR)/*.c)
ifneq ($$(wildcard $$($(1)_DIR)/main.c),)
BINS += $$(BUILD)/$(1)
$$(BUILD)/$(1): $$(patsubst %.c,$$(OBJ)/%.o,$$($(1)_SRCS)) $$(LIBTM)
	$$(CC) $$(CFLAGS) $$(LDFLAGS) -o $$@ $$(filter %.o %.a,$$^) $$(LDLIBS)
endif
endef
$(foreach p,$(PROGRAMS),$(eval $(call program,$(p))))
ifneq ($(AGENT_STATIC),)
# lld places the functions a running agent executes (agent/layout.order, listed by
# tools/agent-layout.sh) next to each other, so the pages the kernel maps around them
# hold little else: 1.9 instead of 2.3 MiB idle (docs/agent.md, "Footprint").
$(BUILD)/tm-agent: LDFLAGS += -static -Wl,--gc-sections -fuse-ld=lld \
	-Wl,--symbol-ordering-file=agent/layout.order -Wl,--no-warn-symbol-ordering
$(BUILD)/tm-agent: LDLIBS = $(AGENT_STATIC_LIBS)
$(BUILD)/tm-agent: agent/layout.order
endif

# Tests: one binary per tests/unit/test_*.c and tests/integration/test_*.c; fuzz targets
# are also built as replay drivers (plain cc) that run their corpus in 'make test'.
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))
INTEG_SRCS := $(wildcard tests/integration/test_*.c)
INTEG_BINS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(INTEG_SRCS))
INTEG_HELPERS := $(filter-out tests/integration/test_%,$(wildcard tests/integration/*.c))
INTEG_HELPER_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(INTEG_HELPERS))
# A unit test of a program-local module links that module: tests/unit/test_spool.c gets
# agent/spool.c (and agent/ on its include path); tests/unit/test_window.c gets
# aggregator/window.c; tests/unit/test_match.c gets tools/tmctl/match.c. Module names must
# therefore be unique across agent/, aggregator/ and tools/tmctl/.
MODULE_SRCS := $(wildcard agent/*.c aggregator/*.c tools/tmctl/*.c)
define unit_module
$$(BUILD)/tests/unit/test_$(1): $$(patsubst %.c,$$(OBJ)/%.o,$$(filter %/$(1).c,$$(MODULE_SRCS)))
$$(OBJ)/tests/unit/test_$(1).o: CPPFLAGS += $$(patsubst %/,-I%,$$(dir $$(filter %/$(1).c,$$(MODULE_SRCS))))
endef
$(foreach t,$(patsubst tests/unit/test_%.c,%,$(UNIT_SRCS)),$(eval $(call unit_module,$(t))))
# A module that calls its siblings: its unit test links them too.
$(BUILD)/tests/unit/test_stats: $(OBJ)/aggregator/batch.o $(OBJ)/aggregator/window.o
$(BUILD)/tests/unit/test_ship: $(OBJ)/agent/tls.o
# The trend script runs in Redis: its test starts a private redis-server with the harness.
$(BUILD)/tests/unit/test_trend: $(OBJ)/tests/integration/harness.o
$(OBJ)/tests/unit/test_trend.o: CPPFLAGS += -Itests/integration
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRCS))
REPLAY_BINS := $(patsubst %,$(BUILD)/tests/fuzz/replay_%,$(FUZZ_NAMES))
BENCH_SRCS := $(wildcard tests/bench/bench_*.c)
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILD)/tests/bench/%,$(BENCH_SRCS))
TEST_BINS := $(UNIT_BINS) $(INTEG_BINS) $(REPLAY_BINS) $(BENCH_BINS)

.PHONY: all deps binaries tests-build test test-run fuzz fuzz-build fuzz-smoke bench chaos run \
	deb clean format check-format check-banned

all: deps
	@$(MAKE) --no-print-directory binaries

deps:
	@./deploy/install-deps.sh

binaries: $(LIBTM) $(BINS)

tests-build: binaries $(TEST_BINS)

$(LIBTM): $(LIBTM_OBJS)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(OBJ)/%.o: %.c VERSION
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/unit/%: $(OBJ)/tests/unit/%.o $(LIBTM)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIBTM) -lcmocka $(LDLIBS)

$(BUILD)/tests/integration/%: $(OBJ)/tests/integration/%.o $(INTEG_HELPER_OBJS) $(LIBTM)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

$(BUILD)/tests/bench/%: $(OBJ)/tests/bench/%.o $(LIBTM)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/fuzz/replay_%: $(OBJ)/tests/fuzz/fuzz_%.o $(OBJ)/tests/fuzz/replay.o $(LIBTM)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# 'make test': the plain pass, the sanitizer pass, the fuzz smoke run, the source checks.
test: deps
	@$(MAKE) --no-print-directory tests-build
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/san SANITIZE=address,undefined tests-build
	@$(MAKE) --no-print-directory check-banned check-format
	@$(MAKE) --no-print-directory FUZZ_SECONDS=10 fuzz
	@tests/run-tests.sh $(BUILD) $(BUILD)/san

# Runs the tests of one build directory (used by 'make test'; handy alone).
test-run:
	@tests/run-tests.sh $(BUILD)

# libFuzzer: libtm and the targets rebuilt with clang and -fsanitize=fuzzer.
FUZZ_BUILD := $(BUILD)/fuzz
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@tests/fuzz/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_NAMES)

fuzz-build:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(CLANG) \
		OPT="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" \
		$(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_NAMES))

$(BUILD)/fuzz_%: $(OBJ)/tests/fuzz/fuzz_%.o $(LIBTM)
	$(CC) $(CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

bench: deps
	@$(MAKE) --no-print-directory binaries tests-build
	@tests/bench/run-bench.sh $(BUILD)

# The whole system under faults (tests/integration/test_chaos.c) with TM_CHAOS=full: three
# rounds of SIGKILLs and outages, about 90,000 events; a few minutes.
chaos: deps
	@$(MAKE) --no-print-directory binaries $(BUILD)/tests/integration/test_chaos
	@TM_CHAOS=full TM_BUILD=$(BUILD) TM_ROOT=$(CURDIR) timeout 1200 \
		$(BUILD)/tests/integration/test_chaos

run: deps
	@$(MAKE) --no-print-directory binaries
	@tools/run-dev.sh $(BUILD)

# Packages from this build's binaries (tmctl goes into tm-server when it is built).
deb: deps
	@$(MAKE) --no-print-directory binaries
	@deploy/debian/build-debs.sh $(BUILD) $(BUILD)/deb

check-banned:
	@tests/check-banned.sh

C_FILES = $(shell git ls-files --cached --others --exclude-standard '*.c' '*.h')

format:
	clang-format -i $(C_FILES)

check-format:
	@clang-format --dry-run --Werror $(C_FILES) && echo "check-format: ok"

clean:
	rm -rf $(BUILD)

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)
