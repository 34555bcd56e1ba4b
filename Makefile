# loom - build, test, sanitize, format. Objects go to build/ (or build-sanitize/).
# Dependencies through pkg-config: zlib, a CBLAS (BLAS=openblas|blis), libcjson, libprotobuf-c;
# OpenMP by flag. ONNX's schema (onnx.proto) becomes C through protoc-c at build time.

CC      ?= gcc
ARCH    ?= native
BLAS    ?= openblas
BUILD   ?= build
WERROR  ?=
OPT     ?= -O3 -march=$(ARCH)
SAN     ?=

ifeq ($(BLAS),blis)
  BLAS_CFLAGS := -I/usr/include/blis -DLOOM_BLAS_BLIS
  BLAS_LIBS   := -lblis
else
  BLAS_CFLAGS := $(shell pkg-config --cflags openblas)
  BLAS_LIBS   := $(shell pkg-config --libs openblas)
endif

PKGS     := zlib libcjson plplot libpng libjpeg libcmark-gfm libprotobuf-c ompi-c
CFLAGS   ?=
CFLAGS   += -std=c17 -D_GNU_SOURCE $(OPT) -g -fopenmp -fno-math-errno -fPIC -Wall -Wextra -Wshadow \
            -Wstrict-prototypes -Wmissing-prototypes $(WERROR) $(SAN) \
            -Iinclude -I$(BUILD)/gen $(BLAS_CFLAGS) $(shell pkg-config --cflags $(PKGS))
LDLIBS   := $(BLAS_LIBS) $(shell pkg-config --libs $(PKGS)) -lm
LDFLAGS  += -fopenmp $(SAN)

LIB_SRC  := $(sort $(wildcard src/*/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_LIB := $(filter-out $(TEST_SRC),$(sort $(wildcard tests/*.c)))

# ONNX's own schema (proto2; Debian's libonnx-dev, or python3-onnx's copy via ONNX_PROTO=...),
# turned into C by protoc-c in BUILD/gen and compiled into the library: generated, never committed.
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/onnx.pb-c.o
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TLIB_OBJ := $(TEST_LIB:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

SONAME   := libloom.so.0

.PHONY: all test test-unit test-data sanitize format format-check clean bench results
all: $(BUILD)/libloom.a $(BUILD)/$(SONAME) $(BUILD)/loom $(BUILD)/bench/infer_cpu

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The library's objects hide every symbol but loom.h's (LOOM_API): libloom.so exports the
# public interface alone; the static library, the CLI and the tests still link the internals.
$(BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fvisibility=hidden -MMD -MP -c $< -o $@

%/gen/onnx.pb-c.c %/gen/onnx.pb-c.h: $(ONNX_PROTO)
	@mkdir -p $*/gen
	protoc-c --proto_path=$(dir $(ONNX_PROTO)) --c_out=$*/gen $(notdir $(ONNX_PROTO))

.PRECIOUS: %/gen/onnx.pb-c.c %/gen/onnx.pb-c.h
$(BUILD)/gen/onnx.pb-c.o: $(BUILD)/gen/onnx.pb-c.c
	$(CC) $(CFLAGS) -fvisibility=hidden -c $< -o $@

$(BUILD)/src/export/onnx.o $(BUILD)/src/export/onnx_import.o $(BUILD)/src/export/onnx_import_layers.o \
    $(BUILD)/src/export/onnx_import_util.o: $(BUILD)/gen/onnx.pb-c.h

$(BUILD)/libloom.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/$(SONAME): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) $(LDFLAGS) -o $@ $^ $(LDLIBS)
	ln -sf $(SONAME) $(BUILD)/libloom.so

$(BUILD)/loom: $(CLI_OBJ) $(BUILD)/libloom.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libloom.a $(LDLIBS)

# The tests also link the CLI's study runner (cli/study.c: a study file is loom commands).
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TLIB_OBJ) $(BUILD)/cli/study.o $(BUILD)/libloom.a
	$(CC) $(LDFLAGS) -o $@ $< $(TLIB_OBJ) $(BUILD)/cli/study.o $(BUILD)/libloom.a $(LDLIBS)

# The ONNX door's comparison program (tests/data/onnx.sh): not a unit test, no test_ prefix.
$(BUILD)/tests/onnx_compare: tests/onnx/compare.c $(BUILD)/libloom.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libloom.a $(LDLIBS)

# Inference CPU time per image (bench/infer_cpu.c): a figure a busy machine barely moves.
$(BUILD)/bench/infer_cpu: bench/infer_cpu.c $(BUILD)/libloom.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libloom.a $(LDLIBS)

# onnxruntime-node, which the ONNX door's test runs the exported models in (npm, not in Debian;
# --ignore-scripts: the package holds its Linux x64 library, its install script only downloads)
ORT_NODE := tests/onnx/node_modules/onnxruntime-node/package.json
$(ORT_NODE): tests/onnx/package.json
	npm install --ignore-scripts --no-audit --no-fund --prefix tests/onnx
	@touch $@

# Unit tests (synthetic data, about a minute) then the real-data group (tests/data/*.sh).
test: all $(TESTS) $(BUILD)/tests/onnx_compare $(ORT_NODE)
	@sh tests/run.sh $(BUILD)

test-unit: all $(TESTS)
	@sh tests/run.sh $(BUILD) unit

sanitize:
	$(MAKE) BUILD=build-sanitize OPT="-O1 -march=$(ARCH) -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all
	$(MAKE) BUILD=build-sanitize OPT="-O1 -march=$(ARCH) -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    $(TEST_SRC:tests/%.c=build-sanitize/tests/%)
	ASAN_OPTIONS=detect_leaks=1 LOOM_SANITIZE=1 sh tests/run.sh build-sanitize unit

# libFuzzer harnesses fuzz/fuzz_*.c, built with clang (ASan + UBSan) against the library sources
# compiled into build-fuzz/; each runs FUZZ_SECONDS on fuzz/corpus/<name>/ (new inputs and crash
# artifacts go to build-fuzz/). A single malloc over 1 GiB, or 2 GiB resident, is a failure.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_NAMES   := $(patsubst fuzz/%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -std=c17 -D_GNU_SOURCE -O1 -march=$(ARCH) -g -fno-omit-frame-pointer -fopenmp -Wall -Wextra \
                -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-pass-failed $(FUZZ_SAN) -Iinclude \
                -Ibuild-fuzz/gen \
                $(BLAS_CFLAGS) $(shell pkg-config --cflags $(PKGS))
FUZZ_OBJ     := $(LIB_SRC:%.c=build-fuzz/%.o) build-fuzz/gen/onnx.pb-c.o build-fuzz/cli/study.o

.PHONY: fuzz fuzz-build valgrind
.SECONDARY: $(FUZZ_OBJ)
-include $(shell find build-fuzz -name '*.d' 2>/dev/null)
build-fuzz/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
build-fuzz/gen/onnx.pb-c.o: build-fuzz/gen/onnx.pb-c.c
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
build-fuzz/src/export/onnx.o build-fuzz/src/export/onnx_import.o \
    build-fuzz/src/export/onnx_import_layers.o build-fuzz/src/export/onnx_import_util.o: \
    build-fuzz/gen/onnx.pb-c.h
build-fuzz/cli/%.o: cli/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

build-fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(LDLIBS)

fuzz-build: $(FUZZ_NAMES:%=build-fuzz/%)
	@printf '*\n' >build-fuzz/.gitignore

fuzz: fuzz-build
	@for f in $(FUZZ_NAMES); do \
	    mkdir -p build-fuzz/corpus/$$f; \
	    echo "== $$f: $(FUZZ_SECONDS) s"; \
	    build-fuzz/$$f -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
	        -malloc_limit_mb=1024 -timeout=25 -print_final_stats=1 \
	        -artifact_prefix=build-fuzz/$$f- build-fuzz/corpus/$$f fuzz/corpus/$$f \
	        2>build-fuzz/$$f.log || { tail -n 60 build-fuzz/$$f.log; exit 1; }; \
	    grep -E '^(INFO: seed corpus|Done|stat::number_of_executed_units|stat::peak_rss_mb)' \
	        build-fuzz/$$f.log; \
	done

# valgrind memcheck of a short training run: no errors, no definite or indirect leaks. Built
# for baseline x86-64 in build/valgrind/: valgrind cannot decode the AVX-512 of -march=native.
# --no-plots: fontconfig and pango, under PLplot's cairo driver, keep caches valgrind calls lost.
valgrind:
	$(MAKE) BUILD=build/valgrind ARCH=x86-64 build/valgrind/loom
	@rm -rf build/valgrind-run
	valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    build/valgrind/loom train mlp --subset 500 --epochs 1 --no-test --no-plots --quiet \
	    --threads 1 --out build/valgrind-run
	@rm -rf build/valgrind-run

FORMAT_FILES := $(shell find include src cli tests bench examples fuzz -name '*.[ch]' 2>/dev/null)
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

bench: all
	sh bench/run.sh

results: all
	sh docs/results.sh

# Install under DESTDIR/PREFIX: the CLI, libloom.so.0 (+ libloom.so) and libloom.a, loom.h,
# loom.pc (static links: pkg-config --static), the man page and the bash completion.
PREFIX  ?= /usr/local
DESTDIR ?=
VERSION := $(shell sed -n 's/^\#define LOOM_VERSION "\(.*\)"/\1/p' include/loom.h)
PC_REQUIRES := $(PKGS) $(if $(filter blis,$(BLAS)),,openblas)
PC_LIBS     := $(strip $(if $(filter blis,$(BLAS)),-lblis) -fopenmp -lm)
I_BIN   := $(DESTDIR)$(PREFIX)/bin
I_LIB   := $(DESTDIR)$(PREFIX)/lib
I_INC   := $(DESTDIR)$(PREFIX)/include
I_MAN   := $(DESTDIR)$(PREFIX)/share/man/man1
I_COMP  := $(DESTDIR)$(PREFIX)/share/bash-completion/completions

.PHONY: install uninstall
install: all
	install -d $(I_BIN) $(I_LIB)/pkgconfig $(I_INC) $(I_MAN) $(I_COMP)
	install -m 755 $(BUILD)/loom $(I_BIN)/loom
	install -m 755 $(BUILD)/$(SONAME) $(I_LIB)/$(SONAME)
	ln -sf $(SONAME) $(I_LIB)/libloom.so
	install -m 644 $(BUILD)/libloom.a $(I_LIB)/libloom.a
	install -m 644 include/loom.h $(I_INC)/loom.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@REQUIRES_PRIVATE@|$(PC_REQUIRES)|' -e 's|@LIBS_PRIVATE@|$(PC_LIBS)|' \
	    loom.pc.in > $(I_LIB)/pkgconfig/loom.pc
	install -m 644 docs/loom.1 $(I_MAN)/loom.1
	install -m 644 completions/loom.bash $(I_COMP)/loom
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then \
	    ldconfig; fi

uninstall:
	rm -f $(I_BIN)/loom $(I_LIB)/$(SONAME) $(I_LIB)/libloom.so $(I_LIB)/libloom.a \
	    $(I_INC)/loom.h $(I_LIB)/pkgconfig/loom.pc $(I_MAN)/loom.1 $(I_COMP)/loom

clean:
	rm -rf build build-sanitize build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
