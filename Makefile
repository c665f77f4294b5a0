# ringrelay: plain GNU make. `make` builds build/ringrelay (release);
# `make test` installs what is missing, then runs unit and integration tests
# on the release build and again under ASan+UBSan.

PREFIX   ?= /usr/local
DESTDIR  ?=
# The version is debian/changelog's newest entry: one place for the package
# and for what ringrelay --version prints.
VERSION  := $(shell head -n 1 debian/changelog | cut -d ' ' -f 2 | tr -d '()')
MODE     ?= release

CC       ?= cc
WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wno-unused-parameter -Wpedantic
CFLAGS_COMMON := -std=gnu11 $(WARN) -Iinclude -D_GNU_SOURCE -DRINGRELAY_VERSION=\"$(VERSION)\" -MMD -MP
LIBS     := -luring -lssl -lcrypto -lyaml -lsystemd -lcares -lpthread

ifeq ($(MODE),release)
  CFLAGS_MODE := -O2 -g -fno-plt
  LIBS_MODE   := -ljemalloc
else ifeq ($(MODE),asan)
  CFLAGS_MODE := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
  LIBS_MODE   := -fsanitize=address,undefined
else ifeq ($(MODE),tsan)
  CFLAGS_MODE := -O1 -g -fno-omit-frame-pointer -fsanitize=thread
  LIBS_MODE   := -fsanitize=thread
else ifeq ($(MODE),debug)
  CFLAGS_MODE := -O0 -g3
  LIBS_MODE   :=
else
  $(error MODE must be release, asan, tsan or debug)
endif

BUILD    := build/$(MODE)
SRCS     := $(wildcard src/*.c)
OBJS     := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
LIBOBJS  := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_BINS := $(patsubst tests/tools/%.c,build/tools/%,$(wildcard tests/tools/*.c))
# libFuzzer targets link only the pure modules (no I/O): parsers and codecs.
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SRCS := src/proxy_parse.c src/crc32c.c src/sniff.c src/addr.c src/cidr.c src/proxy.c \
             src/clienthello.c src/config.c src/config_args.c src/config_dump.c \
             src/config_table.c src/config_walk.c src/route.c \
             src/options.c src/log.c \
             src/stats_report.c src/stats_html.c src/stats.c src/admin_cmd.c src/pool.c \
             src/server_state.c
FUZZ_SECONDS ?= 15

ifeq ($(V),1)
  Q :=
else
  Q := @
endif

.PHONY: all asan debug test unit integration run install format lint clean deps docs \
        bench bench-quick bench-tools fuzz soak deb test-deb

all: $(BUILD)/ringrelay
ifeq ($(MODE),release)
all: build/ringrelay
build/ringrelay: $(BUILD)/ringrelay
	$(Q)ln -sf release/ringrelay $@
endif

$(BUILD)/ringrelay: $(OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_MODE) $(LIBS)

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_COMMON) $(CFLAGS_MODE) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_COMMON) $(CFLAGS_MODE) $(CFLAGS) -o $@ $< $(LIBOBJS) $(LIBS_MODE) $(LIBS) -lcriterion

# Helpers the integration tests run (not sanitized: they are not under test).
build/tools/%: tests/tools/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -o $@ $<

# The lists in README.md and the man page made from the code's own tables
# (the end reasons); an integration test checks them with --check.
build/tools/docgen: tests/tools/docgen.c src/stats.c src/log.c include/stats.h
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -Iinclude -D_GNU_SOURCE -o $@ \
	    tests/tools/docgen.c src/stats.c src/log.c -lpthread

docs: build/tools/docgen
	$(Q)build/tools/docgen README.md man/ringrelay.8

-include $(OBJS:.o=.d) $(UNIT_BINS:=.d)

asan:
	$(Q)$(MAKE) --no-print-directory MODE=asan
debug:
	$(Q)$(MAKE) --no-print-directory MODE=debug

deps:
	$(Q)sh scripts/deps.sh

# A test that hangs fails after 60 s instead of holding make test.
unit: $(UNIT_BINS)
	$(Q)rc=0; for t in $(UNIT_BINS); do $$t --jobs 1 --timeout 60 || rc=1; done; exit $$rc

integration: all $(TOOL_BINS)
	$(Q)python3 tests/integration/run.py --binary $(BUILD)/ringrelay $(ARGS)

# The whole suite (scripts/test.sh): release build, then the same tests
# under ASan+UBSan and again under TSan (the stats socket, access log writer,
# health checks, reloads and workers share data), then a short run of every
# fuzz target (clang comes with scripts/deps.sh). Every stage runs; the last
# line is the sum: "N passed, N failed".
test: deps
	$(Q)sh scripts/test.sh

build/fuzz/%: tests/fuzz/%.c $(FUZZ_SRCS)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)clang -std=gnu11 -g -O1 -Iinclude -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=all -o $@ $< $(FUZZ_SRCS) -lyaml

# Each target runs FUZZ_SECONDS from its committed seeds plus what earlier
# runs found (build/fuzz/corpus-*); a crash stops make with the input saved.
fuzz: $(FUZZ_BINS)
	$(Q)set -e; for t in $(FUZZ_BINS); do n=$$(basename $$t); \
	    mkdir -p build/fuzz/corpus-$$n; \
	    echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	    $$t -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1 \
	        -artifact_prefix=build/fuzz/$$n- build/fuzz/corpus-$$n tests/fuzz/corpus/$$n \
	        2>build/fuzz/$$n.log || { tail -40 build/fuzz/$$n.log; exit 1; }; \
	    grep -E "stat::number_of_executed_units|stat::new_units_added" build/fuzz/$$n.log; \
	    echo "fuzz: $$n passed"; \
	done

run: deps all
	$(Q)sh scripts/demo.sh build/ringrelay

# The binary, the systemd unit (its paths set to PREFIX), the man page, the
# example configuration (as documentation, and as the configuration if there
# is none yet: an existing one is never overwritten), upgrade.sh, and
# deploy/ (the fleet's files: BIRD, nftables, Prometheus rules, the Grafana
# dashboard, their scripts and units, paths set to PREFIX) under
# share/ringrelay. Installed on the machine itself (no DESTDIR), it also
# makes the system user the unit runs as; the Debian package's postinst does
# that there (make deb).
SYSTEMD_DIR ?= /lib/systemd/system
DEPLOY_FILES := $(shell find deploy -type f 2>/dev/null)
install: all
	install -D -m 0755 $(BUILD)/ringrelay $(DESTDIR)$(PREFIX)/bin/ringrelay
	install -d $(DESTDIR)$(SYSTEMD_DIR) $(DESTDIR)$(PREFIX)/share/man/man8 \
	    $(DESTDIR)$(PREFIX)/share/doc/ringrelay $(DESTDIR)$(PREFIX)/share/ringrelay \
	    $(DESTDIR)/etc/ringrelay
	sed 's|/usr/local/bin/ringrelay|$(PREFIX)/bin/ringrelay|g' systemd/ringrelay.service \
	    > $(DESTDIR)$(SYSTEMD_DIR)/ringrelay.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_DIR)/ringrelay.service
	install -m 0644 man/ringrelay.8 $(DESTDIR)$(PREFIX)/share/man/man8/ringrelay.8
	install -m 0644 conf/ringrelay.yaml $(DESTDIR)$(PREFIX)/share/doc/ringrelay/ringrelay.yaml
	install -m 0755 scripts/upgrade.sh $(DESTDIR)$(PREFIX)/share/ringrelay/upgrade.sh
	test -e $(DESTDIR)/etc/ringrelay/ringrelay.yaml || \
	    install -m 0644 conf/ringrelay.yaml $(DESTDIR)/etc/ringrelay/ringrelay.yaml
	for f in $(DEPLOY_FILES); do \
	    d=$(DESTDIR)$(PREFIX)/share/ringrelay/$$f; mkdir -p $$(dirname $$d); \
	    case $$f in *.png | *.svg) cp $$f $$d ;; \
	    *) sed 's|/usr/share/ringrelay/|$(PREFIX)/share/ringrelay/|g' $$f > $$d ;; esac; \
	    if [ -x $$f ]; then chmod 0755 $$d; else chmod 0644 $$d; fi; \
	done
ifeq ($(DESTDIR),)
	getent passwd ringrelay >/dev/null || \
	    useradd --system --user-group --home-dir /nonexistent --no-create-home \
	        --shell /usr/sbin/nologin --comment "ringrelay L4 relay" ringrelay
endif

# The Debian package, built from a copy of this tree (no build/, no .git) so
# that dpkg-buildpackage's clean never touches the working tree; the .debs
# (ringrelay and ringrelay-dbgsym) and lintian's report land in build/deb/,
# and the temporary files lintian leaves behind in build/deb/tmp, not /tmp.
# lintian's errors fail the build; its warnings are printed (README lists
# them with their reasons).
DEB_DIR := build/deb
deb:
	$(Q)sh scripts/deps.sh build
	$(Q)rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/ringrelay-$(VERSION)
	$(Q)tar --exclude=./build --exclude=./.git --exclude=./bench/build --exclude=__pycache__ \
	    -cf - . | tar -xf - -C $(DEB_DIR)/ringrelay-$(VERSION)
	$(Q)cd $(DEB_DIR)/ringrelay-$(VERSION) && \
	    dpkg-buildpackage -us -uc -b -j$$(nproc) >../build.log 2>&1 || { tail -40 ../build.log; exit 1; }
	$(Q)mkdir -p $(DEB_DIR)/tmp && TMPDIR=$$(pwd)/$(DEB_DIR)/tmp \
	    lintian --fail-on error --tag-display-limit 0 $(DEB_DIR)/ringrelay_$(VERSION)_*.changes \
	    >$(DEB_DIR)/lintian.txt 2>&1; rc=$$?; grep -v 'root privileges' $(DEB_DIR)/lintian.txt; \
	    [ $$rc -eq 0 ] || { echo "make deb: lintian reports errors"; exit 1; }
	$(Q)ls -1 $(DEB_DIR)/*.deb

# The package as an operator meets it (tests/integration/cases/package.py):
# built, installed with apt-get, run, upgraded, purged. Root; make test runs it.
test-deb: all $(TOOL_BINS)
	$(Q)python3 tests/integration/run.py --binary $(BUILD)/ringrelay --suite package $(ARGS)

# Not part of make test: 30 minutes, at least a million connections.
SOAK_MINUTES ?= 30
soak: deps all
	$(Q)python3 tests/soak/soak.py --binary $(BUILD)/ringrelay --minutes $(SOAK_MINUTES)

bench-tools:
	$(Q)$(MAKE) --no-print-directory -C bench tools
bench: deps all bench-tools
	$(Q)bench/run.sh
bench-quick: deps all bench-tools
	$(Q)bench/run.sh --quick

# Every C file of the project, as .clang-format has it; make lint fails on
# any drift from it.
FORMAT_FILES = src/*.c include/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c tests/tools/*.c \
               bench/*.c bench/*.h
format:
	clang-format -i $(FORMAT_FILES)

lint:
	clang-format --dry-run -Werror $(FORMAT_FILES)
	clang-tidy --quiet $(SRCS) -- $(CFLAGS_COMMON)
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr -Iinclude -D_GNU_SOURCE src
	$(Q)for f in $(SRCS); do \
	    $(CC) $(filter-out -MMD -MP,$(CFLAGS_COMMON)) -O1 -fanalyzer -Werror -c -o /dev/null $$f || exit 1; \
	done

clean:
	rm -rf build
