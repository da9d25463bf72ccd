# slime in C — one Makefile for the whole program family.
#
#   make            all programs and build/libslime.a
#   make run        build, then run the embedded default topology on the CPU
#   make test       build and run every test, nproc at a time (tests/run.sh
#                   SL_TEST_JOBS; cmocka summaries, exit 77 = skip)
#   make deps       apt-get install every -dev package the build needs
#   make asan       the whole test suite under AddressSanitizer + UBSan (CI runs it)
#   make asan-ci    a quick part of it (ASAN_CI_TESTS: unit + hostile tests)
#   make soak       random faults for SOAK_MINUTES (10) minutes (tests/faults/soak.sh)
#   make fuzz       build the libFuzzer targets (clang) and run each FUZZ_SECONDS (60),
#                   FUZZ_JOBS (nproc) at once
#   make install PREFIX=/usr/local
#   make clean
#
# Builds run nproc jobs at once unless -jN is given. V=1 prints full
# commands. NO_CUDA=1 skips the CUDA backend even where nvcc
# is found.

CC ?= cc
CFLAGS ?= -O2 -g
override CFLAGS += -std=c11 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
                   -fno-strict-aliasing -pthread -fopenmp
override CPPFLAGS += -D_GNU_SOURCE -DPCRE2_CODE_UNIT_WIDTH=8 -I. -Ikernels -Imailbox -Itopology -Iactors \
                     -I/usr/include/x86_64-linux-gnu/openblas-pthread
LDLIBS_SLIME := -lzmq -lnng -luring -linih -ljansson -lpcre2-8 -lutf8proc -lopenblas -lxxhash -lz -lm -lpthread -ldl -fopenmp
PREFIX ?= /usr/local
BUILD ?= build
# One build job a core unless the command line says -jN (it wins); sub-makes
# share the top make's jobs.
NPROC := $(shell nproc 2>/dev/null || echo 1)
ifeq ($(MAKELEVEL),0)
MAKEFLAGS += -j$(NPROC)
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

# ------------------------------------------------------------------ deps
DEB_PKGS := build-essential pkg-config libzmq3-dev libnng-dev liburing-dev libcmocka-dev libinih-dev \
            libjansson-dev libpcre2-dev libutf8proc-dev libopenblas-dev libxxhash-dev zlib1g-dev \
            python3 python3-zmq
DEP_HEADERS := zmq.h nng/nng.h liburing.h cmocka.h ini.h jansson.h pcre2.h utf8proc.h cblas.h xxhash.h zlib.h

# Headers the compiler cannot find (computed once per make invocation).
MISSING_HEADERS := $(shell for h in $(DEP_HEADERS); do \
    printf '\#include <stddef.h>\n\#include <stdarg.h>\n\#include <setjmp.h>\n\#include <stdint.h>\n\#include <%s>\n' $$h | \
    $(CC) $(CPPFLAGS) -E -x c - >/dev/null 2>&1 || printf '%s ' $$h; done)

# ------------------------------------------------------------------ cuda
NVCC ?= $(shell command -v nvcc 2>/dev/null || (test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc))
ifeq ($(NO_CUDA),1)
CUDA_MSG := ✗ CUDA backend disabled (NO_CUDA=1)
NVCC :=
else ifeq ($(NVCC),)
CUDA_MSG := ✗ nvcc not found, building the CPU backend only
else
CUDA_MSG := ✓ nvcc found ($(NVCC)), CUDA sources under kernels/cuda/ are built
endif

# ----------------------------------------------------------------- sources
LIB_SRC := $(sort $(wildcard kernels/*.c mailbox/*.c topology/*.c actors/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CU_SRC := $(if $(NVCC),$(sort $(wildcard kernels/cuda/*.cu)))
CU_OBJ := $(CU_SRC:%.cu=$(BUILD)/obj/%.o)
# CUDA builds: C code sees SL_HAVE_CUDA (ops_cuda.h is inline stubs without
# it), programs link the CUDA runtime and cuBLAS only where they use them
# (--as-needed; NCCL too: /usr/local/cuda/lib64 here, the system's
# libnccl.so.2 on a GPU machine), and the GPU tests are built (they skip,
# exit 77, without a GPU).
ifneq ($(NVCC),)
CUDA_HOME ?= $(patsubst %/bin/,%,$(dir $(NVCC)))
override CPPFLAGS += -DSL_HAVE_CUDA
LDLIBS_SLIME += -Wl,--push-state,--as-needed -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 \
                -lcudart -lcublas -lcublasLt -lnccl -lstdc++ -Wl,--pop-state
CUDA_TESTS := $(patsubst tests/gpu/%.c,$(BUILD)/tests/%,$(wildcard tests/gpu/test_*.c))
endif
LIB := $(BUILD)/libslime.a

BIN_SRC := $(filter-out bin/bench_%.c,$(sort $(wildcard bin/*.c)))
BINS := $(BIN_SRC:bin/%.c=$(BUILD)/%)
BENCH_SRC := $(sort $(wildcard bin/bench_*.c))
BENCH_OBJ := $(BENCH_SRC:%.c=$(BUILD)/obj/%.o)

TEST_SRC := $(sort $(wildcard tests/unit/test_*.c))
TESTS := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(sort $(wildcard tests/unit/helper_*.c))
TEST_HELPER_BINS := $(TEST_HELPERS:tests/unit/helper_%.c=$(BUILD)/tests/helper_%)

.PHONY: all run test deps deps-check asan asan-ci soak install clean info cflags libs
# keep program objects (they are intermediates of the link rules)
.SECONDARY:
.DEFAULT_GOAL := all

all: info deps-check $(LIB) $(BINS) $(TESTS) $(TEST_HELPER_BINS)

info:
	@echo "$(CUDA_MSG)"

# Flags for a program built against build/libslime.a (a custom C actor, see
# README "Attaching custom actors"), run from the repository root:
#   cc $$(make -s cflags) -o my_actor my_actor.c $$(make -s libs)
# (libs starts with LDFLAGS: a library built by `make asan` needs
# -fsanitize=address,undefined at the link too)
cflags:
	@echo "$(CPPFLAGS) -std=c11 -pthread -fopenmp"
libs:
	@echo "$(strip $(LDFLAGS) $(LIB) $(LDLIBS_SLIME))"

deps-check:
ifneq ($(strip $(MISSING_HEADERS)),)
	@echo "missing headers: $(MISSING_HEADERS)"
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory deps; else \
	  echo "install them with:"; \
	  echo "  sudo apt-get install -y $(DEB_PKGS)"; exit 2; fi
endif

deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PKGS)

# (after deps-check, which may install missing packages, even with -j)
$(BUILD)/obj/%.o: %.c | deps-check
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.cu | deps-check
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  NVCC    $<")
	$(Q)$(NVCC) -O3 -arch=sm_90a -std=c++17 -I. -Ikernels -c $< -o $@

$(CU_OBJ): $(wildcard kernels/cuda/*.cuh) kernels/ops.h kernels/ops_cuda.h kernels/gpu_model.h kernels/gpu_sync.h \
          kernels/nccl_comm.h

$(LIB): $(LIB_OBJ) $(CU_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/slime-bench: $(BUILD)/obj/bin/slime-bench.o $(BENCH_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(BUILD)/obj/bin/slime-bench.o $(BENCH_OBJ) $(LIB) $(LDLIBS_SLIME)

$(BUILD)/%: $(BUILD)/obj/bin/%.o $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS_SLIME)

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -MMD -MP -o $@ $< $(LIB) -lcmocka $(LDLIBS_SLIME)

# GPU op test (tests/gpu/): CPU twin vs CUDA, only in CUDA builds.
all: $(CUDA_TESTS)
$(CUDA_TESTS): $(BUILD)/tests/%: tests/gpu/%.c $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -MMD -MP -o $@ $< $(LIB) -lcmocka $(LDLIBS_SLIME)

# ------------------------------------------------------------------ run/test
run: all
	$(BUILD)/slime-supervisor conf/topology.conf

test: all
	@BUILD=$(BUILD) tests/run.sh

SOAK_MINUTES ?= 10
soak: all
	@SL_ROOT=$(CURDIR) SL_BUILD=$(CURDIR)/$(BUILD) SOAK_MINUTES=$(SOAK_MINUTES) sh tests/faults/soak.sh

ASAN_FLAGS := BUILD=build/asan NO_CUDA=1 \
  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
  LDFLAGS="-fsanitize=address,undefined"
# Sanitizer reports of every process (actors under the supervisor too, whose
# stderr goes to logs that tests delete) land in build/asan/reports/: an
# error report there (not a notice such as "Suppressions used") fails the
# target.
ASAN_REPORTS := $(CURDIR)/build/asan/reports
# SL_TIME_SCALE multiplies the tests' deadlines and heartbeat timeouts
# (never what they assert): the sanitized programs are 2-5x slower.
# ASAN_JOBS tests run at once (tests/run.sh SL_TEST_JOBS, nproc as in
# `make test`): most wait on processes, timeouts and sleeps, so even 2 cores
# overlap them. CI (.ci/run) runs the whole `make asan` after `make test`,
# the fuzzers one at a time beside it.
# Two long runs are shorter here, through their own knobs: they prove
# learning (test_default_run, 120 GRPO steps: 645 s under ASan on 2 loaded
# cores) and the heartbeat deadlock fix (250 kills: 292 s) in `make test`;
# under the sanitizers the same code paths run (stop, resume, ledger, every
# assertion; kills and restarts), 40 steps and 100 kills.
ASAN_TIME_SCALE ?= 4
ASAN_JOBS ?= $(NPROC)
ASAN_ENV = ASAN_OPTIONS=log_path=$(ASAN_REPORTS)/asan UBSAN_OPTIONS=log_path=$(ASAN_REPORTS)/ubsan:print_stacktrace=1 \
  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp SL_TIME_SCALE=$(ASAN_TIME_SCALE) SL_TEST_JOBS=$(ASAN_JOBS) \
  SL_RL_TEST_STEPS=40 SL_STORM_KILLS=100
define asan_check
	@bad=$$(grep -l "ERROR: \|runtime error" $(ASAN_REPORTS)/* 2>/dev/null); \
	if [ -n "$$bad" ]; then echo "sanitizer errors in $(ASAN_REPORTS):"; head -40 $$bad; exit 1; fi; \
	echo "no sanitizer errors ($$(ls $(ASAN_REPORTS) | wc -l) notice file(s) in $(ASAN_REPORTS))"
endef
asan:
	@rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS)
	$(ASAN_ENV) $(MAKE) --no-print-directory $(ASAN_FLAGS) test
	$(asan_check)

# A quick part of the suite under the sanitizers, for developers (CI runs
# the whole `make asan`, .ci/run): every unit test program but test_learning
# (the longest), and the hostile-input suite.
ASAN_CI_TESTS ?= test_* tests/hostile/*
ASAN_CI_SKIP ?= test_learning
asan-ci:
	@rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS)
	$(ASAN_ENV) SL_TEST_ONLY="$(ASAN_CI_TESTS)" SL_TEST_SKIP="$(ASAN_CI_SKIP)" \
	  $(MAKE) --no-print-directory $(ASAN_FLAGS) test
	$(asan_check)

# ------------------------------------------------------------------ fuzz
# libFuzzer targets tests/fuzz/fuzz_*.c: the library and each target are
# built with clang + ASan + UBSan in build/fuzz (a sub-make with its own
# CC/CFLAGS); tests/fuzz/run.sh runs each from a scratch copy of its corpus,
# FUZZ_JOBS targets at once (each for FUZZ_SECONDS).
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= $(NPROC)
FUZZ_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
               -fno-sanitize-recover=undefined -Wno-pass-failed

.PHONY: fuzz fuzz-build
fuzz-build:
	$(MAKE) --no-print-directory BUILD=build/fuzz NO_CUDA=1 CC=clang CFLAGS="$(FUZZ_CFLAGS)" \
	  $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)

fuzz: fuzz-build
	FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run.sh build/fuzz $(FUZZ_SECONDS)

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h $(LIB)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB) $(LDLIBS_SLIME)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/slime
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	for d in kernels mailbox topology actors; do \
	  install -d $(DESTDIR)$(PREFIX)/include/slime/$$d; \
	  install -m 0644 $$d/*.h $(DESTDIR)$(PREFIX)/include/slime/$$d/; done

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj $(BUILD)/tests -name '*.d' 2>/dev/null)
