# tests/fuzz/fuzz.mk — libFuzzer harnesses (docs/fuzzing.md), included by the Makefile.
#
#   make fuzz                  build every tests/fuzz/fuzz_*.c and run each for FUZZ_SECONDS (default 600) in turn,
#                              growing a corpus under $(FUZZ_BUILD)/corpus/<target> (seeds: tests/fuzz/corpus/<target>)
#   make fuzz-ci               the same, FUZZ_CI_SECONDS (default 10) each; CI runs it before `make check`
#   make fuzz FUZZ_TARGETS_RUN="fuzz_parse fuzz_render"   only these targets
#
# The library sources are compiled again by clang into $(FUZZ_BUILD) with coverage instrumentation
# (-fsanitize=fuzzer-no-link) plus ASan and UBSan into $(FUZZ_BUILD)/libdsv4.a; each harness links it with
# -fsanitize=fuzzer. Needs clang and
# its compiler-rt (Debian: clang libclang-rt-dev).
FUZZ_CC         ?= clang
FUZZ_BUILD      ?= build/libfuzzer
FUZZ_SECONDS    ?= 600
FUZZ_CI_SECONDS ?= 10
FUZZ_SAN        := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS     := -O1 -g $(FUZZ_SAN) -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra \
                   -Iinclude -Isrc -MMD -MP
FUZZ_SRC        := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS       := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_LIB_OBJ    := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)

# the SIMD files' ISA flags: the Makefile's table (isa_of)
$(FUZZ_BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(call isa_of,$@) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%.o: tests/fuzz/fuzz_%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -c -o $@ $<

$(FUZZ_BUILD)/libdsv4.a: $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/fuzz_%.o $(FUZZ_BUILD)/libdsv4.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-build: $(FUZZ_BINS:=.o) $(FUZZ_BINS)

fuzz: fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) ./tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS_RUN)

fuzz-ci: fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) ./tests/fuzz/run.sh $(FUZZ_CI_SECONDS) $(FUZZ_TARGETS_RUN)

.PHONY: fuzz fuzz-ci fuzz-build
.PRECIOUS: $(FUZZ_BUILD)/%.o
-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_BINS:=.d)
