# dsv4 — build with `make`, test with `make test`, sanitizers with `make SAN=1 test`.
# Sources are found by wildcard: every src/<concern>/*.c except src/cli goes into libdsv4.a;
# src/cli/*.c builds the `dsv4` binary; every tests/test_*.c builds one test binary.
CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Iinclude -Isrc -MMD -MP
# a*b+c stays two roundings unless written as fmaf: the kernels' fixed order depends on it (clang fuses by default)
CFLAGS  += -ffp-contract=off
LDLIBS  += -lcjson -lpcre2-8 -lutf8proc -lmicrohttpd -ledit -ljpeg -lpng -lm -lpthread
ifeq ($(SAN),1)
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  BUILD   ?= build/san
else
  BUILD   ?= build/rel
endif

# SIMD paths: every src/*/*_avx512.c and *_avx2.c is compiled for its path's ISA (isa_of; the libFuzzer build in
# tests/fuzz/fuzz.mk uses the same rule). The CPU is checked at run time (src/kernels/linear.c) and these files only
# run when their path was chosen, so each may use all the path's extensions.
ifneq (,$(findstring x86_64,$(shell $(CC) -dumpmachine)))
ISA_AVX512 := -mavx512f -mavx512bw -mavx512vl -mavx512bf16 -mavx512vbmi -mavx2 -mfma
ISA_AVX2   := -mavx2 -mfma -mf16c
$(foreach f,$(basename $(notdir $(wildcard src/*/*_avx512.c))),$(eval ISA_$(f) := $(ISA_AVX512)))
$(foreach f,$(basename $(notdir $(wildcard src/*/*_avx2.c))),$(eval ISA_$(f) := $(ISA_AVX2)))
endif
isa_of = $(ISA_$(basename $(notdir $(1))))
# linear_neon.c needs no flag on aarch64 (Advanced SIMD is baseline). Debian 12's aarch64 gcc 12.2 crashes (ICE in
# vect_transform_reduction) vectorizing the tests' fmax() reductions: no loop vectorizing in test objects there.
ifneq (,$(findstring aarch64,$(shell $(CC) -dumpmachine)))
$(BUILD)/tests/%.o: CFLAGS += -fno-tree-loop-vectorize
endif

# test_threads counts the allocations of libdsv4's code (decoding must make none).
$(BUILD)/tests/test_threads: LDFLAGS += -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc
# test_budget too (decoding under a memory budget must make none either).
$(BUILD)/tests/test_budget: LDFLAGS += -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc

LIB_SRC  := $(filter-out src/cli/%,$(wildcard src/*/*.c src/*.c))
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

all: $(BUILD)/dsv4 dsv4 $(BUILD)/tools/make_flash_ckpt

dsv4: $(BUILD)/dsv4
	ln -sf $(BUILD)/dsv4 dsv4

$(BUILD)/libdsv4.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/dsv4: $(CLI_OBJ) $(BUILD)/libdsv4.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libdsv4.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# test_cli runs the commands' own entry points (every src/cli object but main.o).
$(BUILD)/tests/test_cli: $(BUILD)/tests/test_cli.o $(filter-out $(BUILD)/src/cli/main.o,$(CLI_OBJ)) $(BUILD)/libdsv4.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(call isa_of,$@) -c -o $@ $<

# DeepSeek-V4-compatible tokenizer: the V3 tokenizer.json plus the V4 added tokens (tools/tokenizer/README.md).
# A stable path for tests and tools; `make test` builds it.
V3_TOKENIZER := vendor/deepseek-v3-tokenizer/tokenizer.json
build/v4-tokenizer.json: $(BUILD)/tools/make_v4_tokenizer tools/tokenizer/v4-added-tokens.tsv
	$(RUN) $(BUILD)/tools/make_v4_tokenizer $(V3_TOKENIZER) tools/tokenizer/v4-added-tokens.tsv $@

$(BUILD)/tools/make_v4_tokenizer: tools/tokenizer/make_v4_tokenizer.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lcjson

# The whole suite: unit, golden and CLI tests. Prints a final "N passed, N failed" line.
test: $(TESTS) $(BUILD)/dsv4 build/v4-tokenizer.json $(BUILD)/tools/make_flash_ckpt
	@DSV4_BIN=$(BUILD)/dsv4 DSV4_RUN='$(RUN)' BUILD=$(BUILD) ./tests/run.sh $(TESTS)

# Cross builds (README "Portability"; .ci/cross.sh installs the toolchains and libraries): build for another
# architecture and run the built binaries under qemu-user (RUN, passed to tests/run.sh as DSV4_RUN).
#   cross-aarch64       everything, then the whole release suite (`make test`) under qemu-aarch64: about an hour of
#                       CPU at full size (qemu runs the float kernels ~76x slower than native; the golden tests
#                       rerun on the scalar path). CI (.ci/cross.sh aarch64) runs it with DSV4_TEST_QEMU=1 (the
#                       heaviest tests at a reduced size, each printed; tests/run.sh) and DSV4_TEST_JOBS=2
#   cross-riscv64       the library without the server, images and engram (no riscv64 libmicrohttpd, libjpeg,
#                       libpng, utf8proc in Debian 12), then RV_TESTS: the kernel tests (the scalar path bit for
#                       bit against the definition, as on x86) and config/io; the golden tests run only the
#                       scalar path there, ~80x slower under qemu (test_golden alone ~15 CPU-minutes), so CI
#                       leaves them out (RV_TESTS='...' adds them). cJSON and PCRE2 are built from Debian's
#                       sources into $(RV_DEPS) by .ci/cross.sh riscv64
CROSS_BUILD ?= build/cross
CROSS_A64 := BUILD=$(CROSS_BUILD)-aarch64 CC=aarch64-linux-gnu-gcc AR=aarch64-linux-gnu-ar RUN='qemu-aarch64 -L /'
cross-aarch64:
	$(MAKE) $(CROSS_A64) test
RV_DEPS    ?= $(CROSS_BUILD)-riscv64-deps
RV_TESTS   ?= test_kernels test_ops test_io test_config
cross-riscv64:
	$(MAKE) BUILD=$(CROSS_BUILD)-riscv64 CC=riscv64-linux-gnu-gcc AR=riscv64-linux-gnu-ar \
	    CPPFLAGS='-isystem $(RV_DEPS)/include' LDFLAGS='-L$(RV_DEPS)/lib' LDLIBS='-lcjson -lpcre2-8 -lm -lpthread' \
	    LIB_SRC='$(filter-out src/server/% src/vision/% src/model/engram.c,$(LIB_SRC))' \
	    TESTS='$(RV_TESTS:%=$(CROSS_BUILD)-riscv64/tests/%)' test-bins
	DSV4_RUN='qemu-riscv64 -L /usr/riscv64-linux-gnu' DSV4_TESTS_ONLY=1 ./tests/run.sh \
	    $(RV_TESTS:%=$(CROSS_BUILD)-riscv64/tests/%)
test-bins: $(TESTS)

# CI: the release suite, then the same suite under AddressSanitizer + UBSan.
# two test binaries at a time, the CLI checks alongside (tests/run.sh DSV4_TEST_JOBS; `make test` alone: one)
check:
	DSV4_TEST_JOBS=$${DSV4_TEST_JOBS:-2} $(MAKE) test
	DSV4_TEST_JOBS=$${DSV4_TEST_JOBS:-2} $(MAKE) SAN=1 test

# What the build and the whole test suite need on a fresh Debian machine (README's second command; .ci/run):
# the libraries, tmux (terminal tests), chromium (the chat page), curl (the server tests), node + npm and the locked
# npm packages of tests/server (the openai / @anthropic-ai/sdk clients). Installs only what is missing; needs root.
DEB_BUILD := build-essential libcjson-dev libpcre2-dev libutf8proc-dev libmicrohttpd-dev libedit-dev libjpeg-dev libpng-dev
DEB_TEST  := tmux chromium curl
test-deps:
	@dpkg -s $(DEB_BUILD) $(DEB_TEST) >/dev/null 2>&1 || { apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_BUILD) $(DEB_TEST) >/dev/null; }
	@command -v npm >/dev/null || { apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
	cd tests/server && npm ci --no-audit --no-fund --loglevel=error

# Quick smoke run of the benchmark on the nano model; bench-flash is the real-shapes one (docs/performance.md).
bench: $(BUILD)/dsv4
	./$(BUILD)/dsv4 bench -m models/nano -n 8 --ctx 4096,65536 --batch 1,4,16 --repeat 3

# Real-shapes benchmark (issue 6): V4-Flash-shaped checkpoints with random weights, written once to $(BENCH_DIR)
# (about 13 GB, never committed; regenerated only when complete.txt is missing), then `dsv4 bench` on them.
BENCH_DIR  ?= /tmp/dsv4-flash-bench
BENCH_ARGS ?=
$(BUILD)/tools/make_flash_ckpt: tools/bench/make_flash_ckpt.c $(BUILD)/libdsv4.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libdsv4.a $(LDLIBS)

# Memory-budget benchmark (issue 9, docs/memory-budget.md): a 9-layer real-shapes V4-Flash checkpoint (34 GB, larger
# than a 24 GiB machine's RAM; written once to $(BENCH_MEM_DIR), never committed), decoded under budgets with the
# checkpoint dropped from the page cache before each run (posix_fadvise DONTNEED on its files).
BENCH_MEM_DIR ?= /tmp/dsv4-flash-big
BENCH_MEM_ARGS ?=
$(BUILD)/tools/bench_mem: tools/bench/bench_mem.c $(BUILD)/libdsv4.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libdsv4.a $(LDLIBS)

bench-mem: $(BUILD)/tools/bench_mem $(BUILD)/tools/make_flash_ckpt
	@test -f $(BENCH_MEM_DIR)/complete.txt || $(BUILD)/tools/make_flash_ckpt -o $(BENCH_MEM_DIR) --layers 0,3,4,5,6,7,8,9,10
	./$(BUILD)/tools/bench_mem -m $(BENCH_MEM_DIR)/twin --mem 0,4G,8G,16G --csv $(BENCH_MEM_DIR)/bench_mem.csv $(BENCH_MEM_ARGS)
	./$(BUILD)/tools/bench_mem -m $(BENCH_MEM_DIR)/full --mem 0,8G,16G --csv $(BENCH_MEM_DIR)/bench_mem.csv $(BENCH_MEM_ARGS)

# Multi-token dsv4_linear speed vs the VDPBF16PS / FMA peak measured in the same run (issue 6 item 5).
$(BUILD)/tools/bench_gemm: tools/bench/bench_gemm.c $(BUILD)/libdsv4.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libdsv4.a $(LDLIBS)

bench-gemm: $(BUILD)/tools/bench_gemm
	./$(BUILD)/tools/bench_gemm $(BENCH_GEMM_ARGS)

# V4.1-Flash attention + indexer per decoded token at real shapes: the shared-kernel path, the earlier scalar loops
# and V4-Flash's (the peer), at 4 Ki and 64 Ki context (docs/performance.md "V4.1"; synthetic state, no checkpoint).
$(BUILD)/tools/bench_attn41: tools/bench/bench_attn41.c $(BUILD)/libdsv4.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libdsv4.a $(LDLIBS)

bench-attn41: $(BUILD)/tools/bench_attn41
	./$(BUILD)/tools/bench_attn41 $(BENCH_ATTN41_ARGS)

# Vision tower speed per block and aligner, real V4.1 widths, random weights (docs/vision.md "Speed").
$(BUILD)/tools/bench_vtower: tools/bench/bench_vtower.c $(BUILD)/libdsv4.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libdsv4.a $(LDLIBS)

bench-vtower: $(BUILD)/tools/bench_vtower
	./$(BUILD)/tools/bench_vtower $(BENCH_VTOWER_ARGS)

bench-flash: $(BUILD)/dsv4 $(BUILD)/tools/make_flash_ckpt
	@test -f $(BENCH_DIR)/complete.txt || $(BUILD)/tools/make_flash_ckpt -o $(BENCH_DIR)
	./$(BUILD)/dsv4 bench -m $(BENCH_DIR)/full --twin $(BENCH_DIR)/twin --csv $(BENCH_DIR)/bench.csv $(BENCH_ARGS)

clean:
	rm -rf build dsv4

.PHONY: all test check test-deps cross-aarch64 cross-riscv64 test-bins bench bench-flash bench-mem bench-gemm bench-attn41 bench-vtower clean
.PRECIOUS: $(BUILD)/%.o $(BUILD)/tests/%.o
# libFuzzer harnesses: make fuzz / make fuzz-ci (docs/fuzzing.md)
include tests/fuzz/fuzz.mk
-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TESTS:=.d)
