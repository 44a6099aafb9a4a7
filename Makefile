# tapwork — build, run and test.
#   make            build build/release/tapwork
#   make run        install missing packages, build, run on the embedded default config
#   make test       install missing packages, build release + asan, run unit, e2e, fuzz smoke
#   make asan       build build/asan/tapwork (AddressSanitizer + UndefinedBehaviorSanitizer)
#   make fuzz       build the libFuzzer targets (clang) into build/fuzz/
#   make format     clang-format the C sources
#   make image      build the container image (docker or podman; docs/deploy.md)
#   make test-containers  build + start the Compose stack and check it (minutes)
# Sources are found by directory: every src/**/*.c is part of the program,
# every tests/unit/**/*.c is one unit-test program, every fuzz/*.c one fuzzer.

CC       ?= cc
VARIANT  ?= release
B        := build/$(VARIANT)
WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter -Wno-format-truncation
PQ_CFLAGS:= $(shell pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
BASEFLAGS:= -std=c11 -D_GNU_SOURCE -Isrc $(PQ_CFLAGS) -pthread -MMD -MP $(WARN)
LIBS     := -lssl -lcrypto -lyaml -lzstd -lbrotlienc -lbrotlidec -lz -ljansson -lnghttp2 -lpthread -lm

ifeq ($(VARIANT),asan)
  OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDOPT := -fsanitize=address,undefined
else ifeq ($(VARIANT),fuzz)
  CC := clang
  OPT := -Wno-unknown-warning-option -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
  LDOPT := -fsanitize=fuzzer,address,undefined
else
  OPT := -O2 -g
  LDOPT :=
endif
CFLAGS   ?=
CFLAGS   += $(BASEFLAGS) $(OPT)

MAIN_SRC := src/cli/main.c
LIB_SRCS := $(filter-out $(MAIN_SRC),$(shell find src -name '*.c' | sort))
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/obj/%.o)
MAIN_OBJ := $(MAIN_SRC:%.c=$(B)/obj/%.o)
UNIT_SRCS:= $(shell find tests/unit -name '*.c' ! -path '*/helpers/*' 2>/dev/null | sort)
UNIT_HELPERS := $(shell find tests/unit/helpers -name '*.c' 2>/dev/null | sort)
UNIT_BINS:= $(UNIT_SRCS:%.c=$(B)/%)
FUZZ_SRCS:= $(shell find fuzz -maxdepth 1 -name '*.c' | sort)

.PHONY: all asan release run test test-tls deps deps-bench unit e2e fuzz fuzz-smoke format clean bench check-banned docs-check image test-containers

all: release

release:
	@$(MAKE) --no-print-directory VARIANT=release build/release/tapwork build-units-release

asan:
	@$(MAKE) --no-print-directory VARIANT=asan build/asan/tapwork build-units-asan

$(B)/tapwork: $(LIB_OBJS) $(MAIN_OBJ)
	@echo "  LD $@"
	@$(CC) $(LDOPT) -pthread -o $@ $^ $(LIBS)

build-units-$(VARIANT): $(UNIT_BINS)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $(VARIANT) $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

$(B)/tests/unit/%: tests/unit/%.c $(LIB_OBJS) $(UNIT_HELPERS)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(UNIT_HELPERS) $(LIB_OBJS) $(LIBS) -lcmocka

FUZZ_BINS := $(FUZZ_SRCS:fuzz/%.c=build/fuzz/bin/%)
build-fuzz: $(FUZZ_BINS)
build/fuzz/bin/%: fuzz/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDOPT) -o $@ $< $(LIB_OBJS) $(LIBS)

-include $(shell find build -name '*.d' 2>/dev/null)

deps:
	@scripts/deps.sh

deps-bench:
	@scripts/deps.sh --bench

run: deps release
	./build/release/tapwork run $(ARGS)

unit:
	@scripts/run-unit.sh build/$(VARIANT)

e2e:
	@TAPWORK_BIN=$(CURDIR)/build/$(VARIANT)/tapwork /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e

fuzz:
	@scripts/fuzz.sh build

fuzz-smoke:
	@scripts/fuzz.sh smoke $(FUZZ_SECONDS)

check-banned:
	@scripts/check-banned.sh

docs-check: release
	@./build/release/tapwork config-docs | diff -u docs/config.md - >/dev/null || { echo "docs/config.md is stale: run 'make docs'"; exit 1; }

docs: release
	./build/release/tapwork config-docs > docs/config.md

test: deps
	@scripts/test.sh

# The full testssl.sh scan of the HTTPS listener (several minutes; `make test` runs a subset).
test-tls: deps release
	@TAPWORK_TESTSSL_FULL=1 TAPWORK_BIN=$(CURDIR)/build/release/tapwork /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e/tls/test_testssl.py

bench: deps-bench release
	bench/run.sh

image:
	@deploy/scripts/image.sh

test-containers: release
	@scripts/deps.sh --containers
	@deploy/scripts/base-image.sh
	@TAPWORK_E2E_CONTAINERS=1 TAPWORK_BIN=$(CURDIR)/build/release/tapwork /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider tests/e2e/deploy/test_compose.py

format:
	clang-format -i $$(find src tests/unit fuzz -name '*.[ch]')

clean:
	rm -rf build
