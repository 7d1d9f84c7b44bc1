# ctrd - build, test, run, bench. `make help` lists the targets.
#
# CFLAGS is yours to override (CFLAGS=-O0 make); the flags the code needs to
# be correct live in CTR_CFLAGS and are always added. -ffp-contract=off
# matters: the compiler must never fuse a*b+c on its own, or scores would
# depend on the compiler and the ISA (kernels fuse explicitly, with fmaf).

CC       ?= cc
CFLAGS   ?= -O2 -g
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ifeq ($(CI),true)
WARNINGS += -Werror
endif
CTR_CFLAGS := -std=gnu11 -D_GNU_SOURCE -pthread -fno-omit-frame-pointer \
              -ffp-contract=off -fno-math-errno -Iinclude $(WARNINGS)

# OpenBLAS is optional: `make BLAS=0` builds everything without it (its own
# build tree), and `--kernel blas` then says it is not built in.
BLAS ?= 1
ifeq ($(BLAS),0)
CTR_CFLAGS += -DCTR_NO_BLAS
BLAS_LDLIBS :=
else
BLAS_LDLIBS := -lopenblas
endif

# What each program links: libctr's own needs, then only what it uses.
LIB_LDLIBS    := -ljansson -lcrypto -lxxhash $(BLAS_LDLIBS) -lm -pthread
SERVER_LDLIBS := -lmicrohttpd -luring -lz
LOAD_LDLIBS   := -ljansson -lxxhash -lm -pthread

# `make SANITIZE=address,undefined test`: a separate build tree, so
# sanitized and plain objects never mix.
comma := ,
SANITIZE ?=
ifneq ($(SANITIZE),)
CTR_CFLAGS += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
LDFLAGS    += -fsanitize=$(SANITIZE)
B := build/san-$(subst $(comma),-,$(SANITIZE))
else
B := build
endif
ifeq ($(BLAS),0)
B := $(B)/noblas
endif

ALL_CFLAGS = $(CTR_CFLAGS) $(CFLAGS)

# Layering (DESIGN.md, docs/ARCHITECTURE.md): every folder compiles with
# include/ and, through quoted includes, its own headers; only libctr itself
# (model/), its tests and its benchmarks may also see model/'s internal
# headers. tests/test_layers.sh checks that nothing reaches around this.
$(B)/model/%.o $(B)/tests/%.o $(B)/bench/%.o: LAYER_CFLAGS := -Imodel

# libctr: everything in model/. ctrtool is a program over it, in tools/ctrtool/.
LIB_SRC  := $(filter-out $(if $(filter 0,$(BLAS)),model/kernels_blas.c),$(wildcard model/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
TOOL_SRC := $(wildcard tools/ctrtool/*.c)
TOOL_OBJ := $(TOOL_SRC:%.c=$(B)/%.o)
LIB      := $(B)/libctr.a

# ctrd: server/ (main.c holds only main; the rest is libctrd so tests can
# link the decoder, batcher, ...). ctrload: loadtest/.
SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
SERVER_OBJ := $(SERVER_SRC:%.c=$(B)/%.o)
SERVER_LIB := $(B)/libctrd.a
LOAD_SRC   := $(wildcard loadtest/*.c)
LOAD_OBJ   := $(LOAD_SRC:%.c=$(B)/%.o)
LOAD_LIB   := $(B)/libctrload.a

# Per-ISA kernels get their own -m flags; nothing else may use them.
$(B)/model/kernels_avx2.o:   EXTRA_CFLAGS := -mavx2 -mfma
$(B)/model/kernels_avx512.o: EXTRA_CFLAGS := -mavx512f -mavx2 -mfma
$(B)/model/quant_avx2.o:      EXTRA_CFLAGS := -mavx2 -mfma -mf16c
$(B)/model/quant_avx512.o:    EXTRA_CFLAGS := -mavx512f -mavx2 -mfma -mf16c

# Test-only: the AVX-512 source compiled against SIMDe, so its logic runs
# (and is compared bit for bit) on CPUs without AVX-512. -mfma makes SIMDe
# split each 512-bit FMA into two native 256-bit ones: still fused.
SIMDE_OBJ := $(B)/tests/kernels_avx512_simde.o $(B)/tests/quant_avx512_simde.o

TEST_SRC  := $(wildcard tests/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(B)/tests/%)
TEST_SH   := $(wildcard tests/test_*.sh)
# bench_kernels measures against OpenBLAS: not built without it.
BENCH_SRC := $(filter-out $(if $(filter 0,$(BLAS)),bench/bench_kernels.c),$(wildcard bench/bench_*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(B)/bench/%)

PROGRAMS := $(B)/ctrtool
ifneq ($(wildcard server/main.c),)
PROGRAMS += $(B)/ctrd
endif
ifneq ($(LOAD_SRC),)
PROGRAMS += $(B)/ctrload
endif

.PHONY: all deps test check run bench clean help checksymbols demo-model container-test
all: $(PROGRAMS) $(TEST_BIN) $(BENCH_BIN)

help:
	@echo "make deps    install missing Debian packages (apt-get)"
	@echo "make         build libctr, ctrtool, ctrd, tests, benchmarks"
	@echo "make test    build and run every test (SANITIZE=address,undefined for ASan+UBSan)"
	@echo "make run     build, make the demo model, serve on :8080"
	@echo "make bench   performance report (see BENCHMARKS.md)"
	@echo "make bench-quick  the same, short (< 3 min): a smoke test of the benchmark"
	@echo "make container-test  build the image with podman, run and check it (root)"

deps:
	@scripts/deps.sh

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LAYER_CFLAGS) $(EXTRA_CFLAGS) -MMD -MP -c $< -o $@

# Built without sanitizers: SIMDe's headers under ASan take minutes and
# gigabytes to compile, and the object is checked bit for bit anyway.
$(B)/tests/kernels_avx512_simde.o: model/kernels_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -fsanitize%,$(ALL_CFLAGS)) $(LAYER_CFLAGS) -DCTR_AVX512_SIMDE -mavx2 -mfma -Wno-psabi -MMD -MP -c $< -o $@

# The quantized row decoders the same way (F16C too: the SIMDe build does
# the half conversions with the 256-bit instruction).
$(B)/tests/quant_avx512_simde.o: model/quant_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -fsanitize%,$(ALL_CFLAGS)) $(LAYER_CFLAGS) -DCTR_AVX512_SIMDE -mavx2 -mfma -mf16c -Wno-psabi -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(SERVER_LIB): $(SERVER_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/ctrtool: $(TOOL_OBJ) $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIB_LDLIBS)

$(B)/ctrd: $(B)/server/main.o $(SERVER_LIB) $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(SERVER_LDLIBS) $(LIB_LDLIBS)

# ctrload: its own modules and the few libctr objects they use (features,
# data); no libmicrohttpd, liburing, OpenBLAS or libcrypto.
$(B)/ctrload: $(B)/loadtest/main.o $(LOAD_LIB) $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LOAD_LDLIBS)

$(B)/tests/%: $(B)/tests/%.o $(B)/tests/testutil.o $(SIMDE_OBJ) $(SERVER_LIB) $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(SERVER_LDLIBS) $(LIB_LDLIBS)

# ctrload's tests (tests/test_loadgen_*.c) link its modules, all of
# loadtest/ but main.c, from libctrload.a; the shorter stem wins over the
# generic tests rule above.
$(LOAD_LIB): $(filter-out $(B)/loadtest/main.o,$(LOAD_OBJ))
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/tests/test_loadgen_%: $(B)/tests/test_loadgen_%.o $(B)/tests/testutil.o $(LOAD_LIB) $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIB_LDLIBS)

$(B)/bench/%: $(B)/bench/%.o $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIB_LDLIBS)

# The runner gives each test a timeout and prints `N passed, N failed, N skipped`.
test check: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) tests/run.sh $(TEST_BIN) $(TEST_SH)

# Every archive's exported names carry the ctr_ prefix (also a test:
# tests/test_layers.sh, with the include and link layering checks).
checksymbols: $(LIB) $(SERVER_LIB) $(LOAD_LIB)
	@scripts/checksymbols.sh $^

DEMO_MODEL := build/demo.ctrm
demo-model: $(DEMO_MODEL)
# The demo model: a small SmeLU MLP trained on synthetic Criteo-shaped rows
# (seconds on two cores); docs/MODELS.md has its figures.
DEMO_DATA := build/demo-data.tsv
$(DEMO_MODEL): | $(B)/ctrtool
	$(B)/ctrtool gen-data --rows 200000 --seed 1 --out $(DEMO_DATA)
	$(B)/ctrtool train --data $(DEMO_DATA) --out $@ --name demo --activation smelu --beta 1 \
	    --hidden 128,64 --dim 8 --buckets 16384 --epochs 1 --batch 128 --lr 3e-3 --seed 1

# The same on the real Criteo sample when it is there (never copied here).
# Its flags (ctrtool train's defaults) give the best model on held-out rows
# of the grid in docs/MODELS.md, "Accuracy on the Criteo sample".
CRITEO ?= ../shared/data/criteo/criteo_sample.tsv.xz
.PHONY: demo-criteo repro
demo-criteo: $(B)/ctrtool
	@test -r $(CRITEO) || { echo "demo-criteo: $(CRITEO) is not here (set CRITEO=path)"; exit 1; }
	$(B)/ctrtool train --data $(CRITEO) --out build/demo-criteo.ctrm --name demo-criteo \
	    --activation smelu --beta 1 --hidden 512,256 --dim 16 --buckets 65536 --epochs 1 \
	    --batch 256 --lr 1e-3 --emb-lr 0.1 --lr-decay linear --seed 1

# The SmeLU reproducibility study on the Criteo sample (docs/REPRODUCIBILITY.md;
# about 75 min on 2 cores, resumable; STUDY_GROUPS=betas for the 8-minute core).
repro: $(B)/ctrtool
	@B=$(B) CRITEO=$(CRITEO) scripts/repro.sh

# Wukong's scaling law in miniature: logloss against MFLOP/example on the
# Criteo sample and gen-data rows, plots in docs/ (docs/SCALING.md; about
# 50 minutes on 2 cores; resumable).
.PHONY: scaling
scaling: $(B)/ctrtool
	@B=$(B) CRITEO=$(CRITEO) scripts/scaling.sh && /usr/bin/python3 scripts/scaling.py build/scaling/results.tsv docs

# Serves the demo model on :8080 in the foreground (Ctrl-C drains and exits).
# Score an example from another shell:
#   curl -s -H 'Content-Type: application/json' \
#        -d '{"examples":[{"I1":3,"C1":"68fd1e64"}]}' localhost:8080/v1/score
run: deps
	@$(MAKE) --no-print-directory $(B)/ctrd $(B)/ctrtool $(DEMO_MODEL)
	@echo "ctrd: serving $(DEMO_MODEL) on http://localhost:8080 (docs/API.md); try:"
	@echo "  curl -s -H 'Content-Type: application/json' -d '{\"examples\":[{\"I1\":3,\"C1\":\"68fd1e64\"}]}' localhost:8080/v1/score"
	exec $(B)/ctrd --model $(DEMO_MODEL) --port 8080 --audit-dir build/audit

bench: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) bench/run.sh

# The same parts, short (under 3 minutes once the benchmark models exist in
# build/bench): a smoke test of the benchmark, not figures to quote. Its
# report is build/bench/out/BENCHMARKS-quick.md; BENCHMARKS.md is untouched.
.PHONY: bench-quick
bench-quick: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) BENCH_QUICK=1 bench/run.sh

# Builds the Dockerfile's image with podman (set up by scripts/podman-setup.sh)
# and checks it serves, passes its health check and drains on SIGTERM.
container-test:
	@scripts/container-test.sh

clean:
	rm -rf build

# ---- hardening: fuzzing, corpus replay, soak (docs/RELIABILITY.md) --------
#
# A fuzz target is tests/fuzz/fuzz_<name>.c (LLVMFuzzerTestOneInput); its
# corpus, seeds plus every crash or slow input found, is
# tests/fuzz/corpus/<name>/. Each target is built twice:
#  - $(B)/tests/fuzz_replay_<name>: tests/fuzz/replay.c's main() runs it over
#    its corpus, with this build's compiler and flags (part of `all`);
#    tests/test_fuzz_replay.sh runs them under ASan+UBSan in `make test`;
#  - build/fuzz/fuzz_<name>: clang -fsanitize=fuzzer,address,undefined, for
#    `make fuzz FUZZ_SECONDS=N`, which runs every target N seconds, niced,
#    reading the repository corpus and writing new inputs to
#    build/fuzz/work/<name>/ (crashes to build/fuzz/artifacts/<name>/).
#    `make fuzz-merge` adds the coverage-increasing work inputs to the
#    repository corpus (libFuzzer -merge=1).
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY  := $(FUZZ_TARGETS:%=$(B)/tests/fuzz_replay_%)
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 1
FUZZ_ARGS    ?=
FUZZ_CC      ?= clang
FUZZ_B       := build/fuzz
# Objects every target may use: the jansson reference decoder and the test
# helpers (test_make_model).
FUZZ_HELPERS  = $(B)/tests/decode_ref.o $(B)/tests/testutil.o

all: $(FUZZ_REPLAY)

# test_decode shares the reference decoder with the differential targets.
$(B)/tests/test_decode: $(B)/tests/decode_ref.o

$(B)/tests/fuzz_replay_%: $(B)/tests/fuzz/fuzz_%.o $(B)/tests/fuzz/replay.o $(FUZZ_HELPERS) $(SERVER_LIB) $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(SERVER_LDLIBS) $(LIB_LDLIBS)

# libFuzzer binaries: only built in $(FUZZ_B), by `fuzz-build`.
$(B)/fuzz_%: $(B)/tests/fuzz/fuzz_%.o $(FUZZ_HELPERS) $(SERVER_LIB) $(LIB)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(SERVER_LDLIBS) $(LIB_LDLIBS)

.PHONY: fuzz fuzz-build fuzz-merge soak
fuzz-build:
	@command -v $(FUZZ_CC) >/dev/null || { echo "fuzz: $(FUZZ_CC) not found (make deps installs clang)"; exit 1; }
	@$(MAKE) --no-print-directory B=$(FUZZ_B) CC=$(FUZZ_CC) CFLAGS="-O1 -g" \
	    SANITIZE=fuzzer-no-link,address,undefined $(FUZZ_TARGETS:%=$(FUZZ_B)/fuzz_%)

fuzz: fuzz-build
	@FUZZ_B=$(FUZZ_B) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) \
	    scripts/fuzz.sh run $(FUZZ_TARGETS) -- $(FUZZ_ARGS)

fuzz-merge: fuzz-build
	@FUZZ_B=$(FUZZ_B) scripts/fuzz.sh merge $(FUZZ_TARGETS)

# `make fuzz-cover`: line and branch coverage of the code each target tests,
# replaying its corpus (and the last run's work inputs) through drivers
# built with clang source-based coverage in build/fuzz-cov.
FUZZ_COV_B := build/fuzz-cov
.PHONY: fuzz-cover
fuzz-cover:
	@$(MAKE) --no-print-directory B=$(FUZZ_COV_B) CC=$(FUZZ_CC) \
	    CFLAGS="-O1 -g -fprofile-instr-generate -fcoverage-mapping" $(FUZZ_TARGETS:%=$(FUZZ_COV_B)/tests/fuzz_replay_%)
	@FUZZ_B=$(FUZZ_B) FUZZ_COV_B=$(FUZZ_COV_B) scripts/fuzz.sh cover $(FUZZ_TARGETS)

# `make tsan-check`: ThreadSanitizer over the batcher, the reload path and
# the HTTP layer: ctrd, ctrtool and ctrload with -fsanitize=thread in
# build/san-thread, then the reload storm (RELOAD_STORM_SECONDS, 10) under
# load with the audit log on (TSAN_NO_AUDIT=1: off). A report makes ctrd
# exit 66 at SIGTERM, which the test counts as a failure; the reports are
# in build/san-thread/tsan.* (TSAN_OPTIONS log_path). No suppressions.
RELOAD_STORM_SECONDS ?= 10
TSAN_NO_AUDIT ?= 0
.PHONY: tsan-check
tsan-check:
	@$(MAKE) --no-print-directory SANITIZE=thread B=build/san-thread \
	    build/san-thread/ctrd build/san-thread/ctrtool build/san-thread/ctrload
	@rm -f build/san-thread/tsan.*
	@TSAN_OPTIONS="log_path=$(CURDIR)/build/san-thread/tsan $(TSAN_OPTIONS)" B=build/san-thread \
	    RELOAD_STORM_SECONDS=$(RELOAD_STORM_SECONDS) RELOAD_STORM_NO_AUDIT=$(TSAN_NO_AUDIT) \
	    bash tests/test_faults_reload.sh; rc=$$?; \
	    cat build/san-thread/tsan.* 2>/dev/null | grep -E '^(WARNING|SUMMARY)'; exit $$rc

# `make soak SOAK_SECONDS=N`: ctrload at 70% of measured capacity with the
# audit log on; errors, p99 drift, RSS and fd growth (scripts/soak.sh).
SOAK_SECONDS ?= 600
soak:
	@$(MAKE) --no-print-directory $(B)/ctrd $(B)/ctrtool $(B)/ctrload
	@B=$(B) SOAK_SECONDS=$(SOAK_SECONDS) scripts/soak.sh


-include $(shell find $(B) -name '*.d' 2>/dev/null)
