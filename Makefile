# loom - build, test, sanitize, format. Objects go to build/ (or build-sanitize/).
# Dependencies through pkg-config: zlib, a CBLAS (BLAS=openblas|blis), libcjson; OpenMP by flag.

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

PKGS     := zlib libcjson
CFLAGS   ?=
CFLAGS   += -std=c17 -D_GNU_SOURCE $(OPT) -g -fopenmp -fPIC -Wall -Wextra -Wshadow \
            -Wstrict-prototypes -Wmissing-prototypes $(WERROR) $(SAN) \
            -Iinclude $(BLAS_CFLAGS) $(shell pkg-config --cflags $(PKGS))
LDLIBS   := $(BLAS_LIBS) $(shell pkg-config --libs $(PKGS)) -lm
LDFLAGS  += -fopenmp $(SAN)

LIB_SRC  := $(sort $(wildcard src/*/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_LIB := $(filter-out $(TEST_SRC),$(sort $(wildcard tests/*.c)))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TLIB_OBJ := $(TEST_LIB:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

SONAME   := libloom.so.0

.PHONY: all test test-unit test-data sanitize format format-check clean bench results
all: $(BUILD)/libloom.a $(BUILD)/$(SONAME) $(BUILD)/loom

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libloom.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/$(SONAME): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) $(LDFLAGS) -o $@ $^ $(LDLIBS)
	ln -sf $(SONAME) $(BUILD)/libloom.so

$(BUILD)/loom: $(CLI_OBJ) $(BUILD)/libloom.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libloom.a $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TLIB_OBJ) $(BUILD)/libloom.a
	$(CC) $(LDFLAGS) -o $@ $< $(TLIB_OBJ) $(BUILD)/libloom.a $(LDLIBS)

# Unit tests (synthetic data, about a minute) then the real-data group (tests/data/*.sh).
test: all $(TESTS)
	@sh tests/run.sh $(BUILD)

test-unit: all $(TESTS)
	@sh tests/run.sh $(BUILD) unit

sanitize:
	$(MAKE) BUILD=build-sanitize OPT="-O1 -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all
	$(MAKE) BUILD=build-sanitize OPT="-O1 -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    $(TEST_SRC:tests/%.c=build-sanitize/tests/%)
	ASAN_OPTIONS=detect_leaks=1 LOOM_SANITIZE=1 sh tests/run.sh build-sanitize unit

FORMAT_FILES := $(shell find include src cli tests bench examples -name '*.[ch]' 2>/dev/null)
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

bench: all
	sh bench/run.sh

results: all
	sh docs/results.sh

clean:
	rm -rf build build-sanitize

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
