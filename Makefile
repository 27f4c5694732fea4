# blurd - plain GNU Makefile on pkg-config.
#
#   make                 build ./blurd
#   make check           build and run every test (tests/runner prints "N passed, N failed")
#   make check TEST=x    run one test
#   make bench           build and run the benchmark (prints ratios, asserts nothing)
#   make SANITIZE=1      AddressSanitizer + UndefinedBehaviorSanitizer build (or SANITIZE=address,...)
#   make install         honours PREFIX and DESTDIR
#   make format-check    clang-format over the tree, failing on any difference

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SHAREDIR ?= $(PREFIX)/share/blurd
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DOCDIR ?= $(PREFIX)/share/doc/blurd

CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS := vips libuv sqlite3 openblas inih jansson
HAVE_SYSTEMD := $(shell $(PKG_CONFIG) --exists libsystemd && echo 1)
ifeq ($(HAVE_SYSTEMD),1)
PKGS += libsystemd
endif

VERSION := 0.1.0
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wdouble-promotion
ifdef WERROR
WARNINGS += -Werror
endif
OPTIMIZE ?= -O2 -g
CFLAGS ?= $(OPTIMIZE)
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARNINGS) $(CFLAGS) -Iinclude \
	-DBLURD_VERSION='"$(VERSION)"' -DBLURD_DATADIR='"$(SHAREDIR)"' \
	$(if $(HAVE_SYSTEMD),-DBLURD_HAVE_SYSTEMD=1) \
	$(shell $(PKG_CONFIG) --cflags $(PKGS)) -pthread -MMD -MP
LDLIBS := $(shell $(PKG_CONFIG) --libs $(PKGS)) -pthread -lm

ifdef SANITIZE
ifeq ($(SANITIZE),1)
override SANITIZE := address,undefined
endif
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=$(SANITIZE)
BUILD ?= build/sanitize
else
BUILD ?= build/release
endif

LIB_SOURCES := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJECTS := $(LIB_SOURCES:src/%.c=$(BUILD)/src/%.o)
TEST_SOURCES := $(wildcard tests/*.c)
TEST_OBJECTS := $(TEST_SOURCES:tests/%.c=$(BUILD)/tests/%.o)
BENCH_SOURCES := $(wildcard bench/*.c)
BENCH_OBJECTS := $(BENCH_SOURCES:bench/%.c=$(BUILD)/bench/%.o)

BLURD := $(BUILD)/blurd
RUNNER := $(BUILD)/tests/runner
BENCH := $(BUILD)/bench/bench

.PHONY: all check bench install uninstall clean format format-check model
all: $(BLURD) blurd

# ./blurd is a copy of the release (or sanitizer) binary, so README commands work from the top.
blurd: $(BLURD)
	cp $(BLURD) $@

$(BUILD)/libblurd.a: $(LIB_OBJECTS)
	$(AR) rcs $@ $^

$(BLURD): $(BUILD)/src/main.o $(BUILD)/libblurd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(RUNNER): $(TEST_OBJECTS) $(BUILD)/libblurd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BENCH): $(BENCH_OBJECTS) $(BUILD)/libblurd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Kernels for wider vector units are compiled for them and chosen at run time.
ifeq ($(shell uname -m),x86_64)
$(BUILD)/src/kernels_avx2.o: ALL_CFLAGS += -mavx2 -mfma
$(BUILD)/src/kernels_avx512.o: ALL_CFLAGS += -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma
endif

# Rebuilds models/default.safetensors from public photographs (recipe/README.md); resumable:
# run it again after an interruption and it continues where it stopped.
model: blurd
	INSTALL=1 recipe/make-model

check: $(BLURD) $(RUNNER)
	BLURD=$(abspath $(BLURD)) BLURD_SOURCE=$(CURDIR) $(RUNNER) $(TEST)

bench: $(BLURD) $(BENCH)
	BLURD=$(abspath $(BLURD)) BLURD_SOURCE=$(CURDIR) $(BENCH)

# The unit's paths follow PREFIX and SYSCONFDIR; an existing configuration is never
# overwritten (the example is installed beside it as blurd.conf.example).
install: $(BLURD)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SHAREDIR)/models $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/blurd
	install -m 755 $(BLURD) $(DESTDIR)$(BINDIR)/blurd
	if [ -f models/default.safetensors ]; then \
		install -m 644 models/default.safetensors $(DESTDIR)$(SHAREDIR)/models/; fi
	sed -e 's|/usr/local/bin/blurd|$(BINDIR)/blurd|g' \
		-e 's|/etc/blurd/|$(SYSCONFDIR)/blurd/|g' \
		-e 's|/usr/local/share/doc/blurd|$(DOCDIR)|g' \
		systemd/blurd.service > $(DESTDIR)$(UNITDIR)/blurd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/blurd.service
	install -m 644 systemd/blurd.sysusers $(DESTDIR)$(SYSUSERSDIR)/blurd.conf
	install -m 644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -m 644 etc/blurd.conf $(DESTDIR)$(SYSCONFDIR)/blurd/blurd.conf.example
	if [ ! -e $(DESTDIR)$(SYSCONFDIR)/blurd/blurd.conf ]; then \
		install -m 644 etc/blurd.conf $(DESTDIR)$(SYSCONFDIR)/blurd/blurd.conf; fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/blurd $(DESTDIR)$(SHAREDIR)/models/default.safetensors \
		$(DESTDIR)$(UNITDIR)/blurd.service $(DESTDIR)$(SYSUSERSDIR)/blurd.conf \
		$(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(SYSCONFDIR)/blurd/blurd.conf.example

FORMAT_FILES := $(wildcard src/*.c include/blurd/*.h tests/*.c tests/*.h bench/*.c)
format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf build blurd

-include $(shell find build -name '*.d' 2>/dev/null)
