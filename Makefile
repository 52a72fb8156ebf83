# gcmon — two Apache httpd 2.4 modules over one core library.
# `make` builds build/.libs/mod_gcmon_{api,stream}.so; `make test` runs every suite.

APXS      ?= apxs
PYTHON    ?= /usr/bin/python3
LIBTOOL   := $(shell $(APXS) -q LIBTOOL 2>/dev/null | sed 's/--no-silent/--silent/')
CC        := $(shell $(APXS) -q CC 2>/dev/null)
HTTPD_INC := $(shell $(APXS) -q INCLUDEDIR 2>/dev/null)
APR_INC   := $(shell $(APXS) -q APR_INCLUDEDIR 2>/dev/null)
APU_INC   := $(shell $(APXS) -q APU_INCLUDEDIR 2>/dev/null)
LWS_CFLAGS := $(shell pkg-config --cflags libwebsockets 2>/dev/null)

# C11 and the strict warning set (as mod_md), zero warnings.
WARNINGS  = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wmissing-prototypes \
            -Wmissing-declarations -Wstrict-prototypes -Wformat=2 -Wformat-security \
            -Wundef -Wvla -Wno-unused-parameter
SAN       ?=
EXTRA_CFLAGS ?=
EXTRA_LDFLAGS ?=
CFLAGS_GC = -std=c11 -g -O2 -fPIC -D_GNU_SOURCE -DLINUX -D_REENTRANT $(WARNINGS) $(SAN) \
            $(EXTRA_CFLAGS) -I$(APR_INC) -I$(APU_INC) -Ishared $(LWS_CFLAGS)
LIBS_GC   = -lcurl -ljansson -lwebsockets -lcrypto -lm

BUILD     ?= build
CORE_SRC  := $(sort $(wildcard shared/*.c))
CORE_LO   := $(patsubst shared/%.c,$(BUILD)/shared/%.lo,$(CORE_SRC))
CORE_HDR  := $(wildcard shared/*.h)
API_SRC   := $(sort $(wildcard modules/mod_gcmon_api*.c)) modules/gcmon_glue.c
STREAM_SRC:= $(sort $(wildcard modules/mod_gcmon_stream*.c)) modules/gcmon_glue.c
MOD_HDR   := $(wildcard modules/*.h)
API_LO    := $(patsubst modules/%.c,$(BUILD)/modules/%.lo,$(API_SRC))
STREAM_LO := $(patsubst modules/%.c,$(BUILD)/modules/%.lo,$(STREAM_SRC))
CORE_LA   := $(BUILD)/libgcmon.la
API_SO    := $(BUILD)/.libs/mod_gcmon_api.so
STREAM_SO := $(BUILD)/.libs/mod_gcmon_stream.so

UNIT_SRC  := $(sort $(wildcard tests/unit/*.c))
UNIT_BIN  := $(BUILD)/unit_tests

.PHONY: all deps test unit integration integration-pgsql asan-integration demo install uninstall \
        deb test-deb bench clean \
        asan-unit check-style style layout-build

all: $(API_SO) $(STREAM_SO)

# A copy of the modules whose metrics table has one more family
# (-DGCMON_TEST_METRICS_LAYOUT), in $(BUILD)/layout: the graceful-restart test
# of the shared memory layout check (tests/integration/test_shm_restart.py)
# switches to it and back. SAN carries over (ASan integration runs).
layout-build:
	$(MAKE) BUILD=$(BUILD)/layout EXTRA_CFLAGS=-DGCMON_TEST_METRICS_LAYOUT all

deps:
	@sh apxs/deps.sh

$(BUILD)/shared/%.lo: shared/%.c $(CORE_HDR)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(LIBTOOL) --mode=compile --tag=CC $(CC) $(CFLAGS_GC) -c -o $@ $<

$(BUILD)/modules/%.lo: modules/%.c $(CORE_HDR) $(MOD_HDR)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(LIBTOOL) --mode=compile --tag=CC $(CC) $(CFLAGS_GC) -I$(HTTPD_INC) -Imodules -c -o $@ $<

# The core, built once (PIC) as a libtool convenience library.
$(CORE_LA): $(CORE_LO)
	$(LIBTOOL) --mode=link --tag=CC $(CC) -o $@ $(CORE_LO)

# Each DSO is linked by apxs and exports only its module symbol.
$(API_SO): $(API_LO) $(CORE_LA) apxs/mod_gcmon_api.map
	$(APXS) -c -o $(BUILD)/mod_gcmon_api.la $(API_LO) $(CORE_LA) $(LIBS_GC) $(SAN) $(EXTRA_LDFLAGS) \
	    -Wl,--version-script=apxs/mod_gcmon_api.map
	@sh apxs/check-dso.sh $@ gcmon_api_module

$(STREAM_SO): $(STREAM_LO) $(CORE_LA) apxs/mod_gcmon_stream.map
	$(APXS) -c -o $(BUILD)/mod_gcmon_stream.la $(STREAM_LO) $(CORE_LA) $(LIBS_GC) $(SAN) $(EXTRA_LDFLAGS) \
	    -Wl,--version-script=apxs/mod_gcmon_stream.map
	@sh apxs/check-dso.sh $@ gcmon_stream_module

$(UNIT_BIN): $(UNIT_SRC) $(wildcard tests/unit/*.h) $(CORE_LA)
	$(CC) $(CFLAGS_GC) -Itests/unit -o $@ $(UNIT_SRC) $(BUILD)/.libs/libgcmon.a \
	    $(shell pkg-config --libs check) -lapr-1 -laprutil-1 $(LIBS_GC) -lpthread

unit: $(UNIT_BIN)
	CK_FORK=yes $(UNIT_BIN)

# The unit suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
asan-unit:
	$(MAKE) BUILD=build/asan SAN='$(ASAN_SAN)' build/asan/unit_tests
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 CK_FORK=no \
	    LSAN_OPTIONS=$(if $(wildcard tests/unit/lsan.supp),suppressions=$(CURDIR)/tests/unit/lsan.supp) \
	    build/asan/unit_tests

# The PostgreSQL-only suites (make integration-pgsql runs them).
PGSQL_ONLY   := $(addprefix tests/integration/,test_scale_out.py test_pg_errors.py \
                test_migrate_db.py)
# The suites that run a second time on PostgreSQL (DB=pgsql): every one whose
# SQL is the store's — the stream's writes, retention, leases and re-elections,
# idle alerts and the outbox, the background holder, the admin API's lock,
# audit and status webhooks, the read API, the weights record and Idempotency-Key
# claims, the routing strategies' conditional writes, the failure paths (a holder
# whose database refuses connections steps down). Not again: test_stream_chaos.py
# (upstream and WebSocket faults over the same writer path as test_stream.py;
# a failover on PostgreSQL is test_scale_out.py's) and the suites that touch
# no SQL of their own (configuration, security, budget, dashboard, install).
# Every pytest run: a test that hangs fails after PYTEST_TIMEOUT seconds
# (python3-pytest-timeout; setup and teardown included) instead of eating CI.
PYTEST_TIMEOUT ?= 600
PYTEST = $(PYTHON) -m pytest -q -p no:cacheprovider --timeout=$(PYTEST_TIMEOUT)

PGSQL_SUITES := $(addprefix tests/integration/,test_stream.py test_stream_edges.py \
                test_stream_lifecycle.py test_stream_scale.py test_alerts.py \
                test_background_holder.py test_admin_status.py test_read_api.py \
                test_weights.py test_strategies.py test_strategy_activation.py \
                test_failure_paths.py)

integration: all layout-build
	$(PYTEST) tests/emulator tests/integration \
	    $(addprefix --ignore=,$(PGSQL_ONLY)) $(PYTEST_ARGS)

# The PostgreSQL run: a throwaway PostgreSQL 15 (tests/integration/pgserver.py:
# initdb in a temp directory, 127.0.0.1, a free port, stopped by pid), a fresh
# database per server; then the scale-out, error-path and migration suites.
integration-pgsql: all
	DB=pgsql $(PYTEST) $(PGSQL_SUITES) $(PGSQL_ONLY) \
	    $(PYTEST_ARGS)

# The integration suite again with both modules built with ASan + UBSan (the
# runtime preloaded into apache2 only) and LeakSanitizer on (httpd.py;
# tests/integration/lsan.supp); any sanitizer report lands in error_log and
# fails the test that caused it. Not again under ASan: the
# browser suites (test_dashboard*.py: Chromium driving API calls the other
# suites make directly; they cost minutes and add no C path) and the package
# test (it installs the gcc build).
ASAN_SAN = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_SKIP = $(wildcard tests/integration/test_dashboard*.py) tests/integration/test_install.py
asan-integration:
	$(MAKE) BUILD=build/asan SAN='$(ASAN_SAN)' all layout-build
	GCMON_BUILD=$(CURDIR)/build/asan GCMON_HTTPD_LD_PRELOAD=$$($(CC) -print-file-name=libasan.so) \
	    $(PYTEST) tests/integration \
	    $(addprefix --ignore=,$(PGSQL_ONLY) $(ASAN_SKIP)) $(PYTEST_ARGS)

# libFuzzer targets of the core's parsers (tests/fuzz/, docs/testing.md
# "Fuzzing"): the core built again with Debian's clang, instrumented for
# libFuzzer (-fsanitize=fuzzer-no-link) under ASan + UBSan, in build/fuzz (the
# gcc build is untouched); one binary per tests/fuzz/fuzz_<target>.c.
# `make fuzz` runs each target FUZZ_SECONDS (default 60) from its seed corpus
# (tests/fuzz/corpus/<target>/) and dictionary (tests/fuzz/<target>.dict);
# `make fuzz-smoke` is the short run of `make test` (FUZZ_SMOKE_SECONDS each).
FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   = -std=c11 -g -O1 -D_GNU_SOURCE -DLINUX -D_REENTRANT $(WARNINGS) $(FUZZ_SAN) \
                -I$(APR_INC) -I$(APU_INC) -Ishared -Itests/fuzz $(LWS_CFLAGS)
FUZZ_SRC     := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_BINS    := $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_TARGETS))
FUZZ_CORE_O  := $(patsubst shared/%.c,$(FUZZ_BUILD)/shared/%.o,$(CORE_SRC))
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10

.PHONY: fuzz fuzz-build fuzz-smoke

$(FUZZ_BUILD)/shared/%.o: shared/%.c $(CORE_HDR)
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/libgcmon.a: $(FUZZ_CORE_O)
	@rm -f $@
	@ar rcs $@ $(FUZZ_CORE_O)

$(FUZZ_BUILD)/fuzz.o: tests/fuzz/fuzz.c tests/fuzz/fuzz.h $(CORE_HDR)
	@mkdir -p $(dir $@)
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_BUILD)/fuzz.o \
                      $(FUZZ_BUILD)/libgcmon.a
	@echo "  FUZZLD  $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/fuzz.o \
	    $(FUZZ_BUILD)/libgcmon.a -lapr-1 -laprutil-1 $(LIBS_GC) -lpthread

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The step of make test: a fixed seed, so each run tries the same inputs (a
# new finding comes from `make fuzz`, not from a CI run's luck).
fuzz-smoke: fuzz-build
	FUZZ_ARGS='-seed=1' sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

# The C style is .clang-format's (Debian's clang-format-14, installed by deps):
# check-style fails on any file that differs from it; style rewrites them.
CLANG_FORMAT ?= $(shell command -v clang-format-14 || command -v clang-format)
STYLE_SRC := $(sort $(wildcard shared/*.[ch] modules/*.[ch] tests/unit/*.[ch] tests/fuzz/*.[ch] \
             bench/*.c))

check-style:
	@test -n "$(CLANG_FORMAT)" || { echo "check-style: clang-format not found (make deps)"; exit 1; }
	@$(CLANG_FORMAT) --dry-run -Werror $(STYLE_SRC)
	@echo "check-style: $(words $(STYLE_SRC)) files follow .clang-format"

style:
	$(CLANG_FORMAT) -i $(STYLE_SRC)

test: deps
	$(MAKE) check-style
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) asan-unit
	$(MAKE) -j2 fuzz-smoke
	$(MAKE) integration
	$(MAKE) integration-pgsql
	$(MAKE) asan-integration
	$(MAKE) test-deb
	$(MAKE) bench QUICK=1

demo: deps
	$(MAKE) all
	$(PYTHON) tests/demo.py

# The soak (tests/soak/soak.py, docs/testing.md "The soak"): SOAK_SECONDS of mixed
# load, graceful restarts and a holder SIGKILL against one real apache2; figures in
# build/soak/. Not part of `make test`. SOAK_DB=pgsql runs it on PostgreSQL.
SOAK_SECONDS ?= 600
SOAK_DB ?= sqlite3
.PHONY: soak
soak: all
	$(PYTHON) tests/soak/soak.py --seconds $(SOAK_SECONDS) --db $(SOAK_DB)

# ---- install ---------------------------------------------------------------
# `make install` honours DESTDIR (staging, packaging) for every file and PREFIX
# for the dashboard, the documentation and, away from /usr, the modules; the
# configuration goes to APACHE_CONFDIR: the module's gcmon.load and gcmon.conf to
# mods-available (Debian's a2enmod layout), the site snippet (the URLs and their
# access rules, Included in the HTTPS virtual host) to gcmon/site.conf, with the
# installed paths written into all three. Each directory can be set on its own.
# An existing gcmon.conf or site.conf that differs from the new one is kept (the
# new one lands next to it as gcmon.conf.new, site.conf.new).
# The documentation includes contrib/ (the Prometheus and Grafana files
# docs/monitoring.md refers to). `make uninstall` with the same variables
# removes exactly these files, and gcmon's own directories once empty. The
# database directory (/var/lib/gcmon) is the administrator's (docs/install.md)
# and neither target touches it.
PREFIX         ?= /usr
LIBEXECDIR     := $(shell $(APXS) -q LIBEXECDIR 2>/dev/null)
MODULEDIR      ?= $(if $(filter /usr,$(PREFIX)),$(LIBEXECDIR),$(PREFIX)/lib/apache2/modules)
SHAREDIR       ?= $(PREFIX)/share/gcmon
HTDOCSDIR      ?= $(SHAREDIR)/htdocs
DOCDIR         ?= $(PREFIX)/share/doc/gcmon
APACHE_CONFDIR ?= /etc/apache2
MODSAVAIL       = $(APACHE_CONFDIR)/mods-available
SITECONFDIR     = $(APACHE_CONFDIR)/gcmon
# The installed paths in the configuration files: the dashboard's, and the
# configuration directory's (the snippet's Include line, the password files).
CONF_PATHS      = sed -e 's|/usr/share/gcmon/htdocs|$(HTDOCSDIR)|g' \
                      -e 's|/etc/apache2/|$(APACHE_CONFDIR)/|g'

# $(call install_conf,built file,installed path): installs it, unless the
# installed one differs (the administrator's edits): that one is kept and the
# new one lands next to it as <path>.new.
define install_conf
	@if [ -f '$(DESTDIR)$(2)' ] && ! cmp -s $(1) '$(DESTDIR)$(2)'; then \
	    echo "install -m 644 $(1) '$(DESTDIR)$(2).new'"; \
	    install -m 644 $(1) '$(DESTDIR)$(2).new'; \
	    echo "install: kept your $(2); the new reference configuration is" \
	         "$(2).new (compare them: diff -u $(notdir $(2)) $(notdir $(2)).new)"; \
	else \
	    echo "install -m 644 $(1) '$(DESTDIR)$(2)'"; \
	    install -m 644 $(1) '$(DESTDIR)$(2)'; \
	fi
endef

HTDOCS_FILES := $(sort $(shell cd htdocs && find . -type f | sed 's|^\./||'))
HTDOCS_DIRS  := $(sort $(shell cd htdocs && find . -mindepth 1 -type d | sed 's|^\./||'))
DOC_FILES    := README.md CHANGELOG.md SECURITY.md LICENSE $(sort $(wildcard docs/*.md docs/*.yaml) \
                $(wildcard docs/img/*) $(shell find contrib -type f 2>/dev/null))
DOC_DIRS     := $(sort docs $(shell find docs/img contrib -type d 2>/dev/null))

install: all
	install -d '$(DESTDIR)$(MODULEDIR)' '$(DESTDIR)$(MODSAVAIL)' '$(DESTDIR)$(SITECONFDIR)' \
	    '$(DESTDIR)$(HTDOCSDIR)' \
	    $(foreach d,$(DOC_DIRS),'$(DESTDIR)$(DOCDIR)/$(d)') \
	    $(foreach d,$(HTDOCS_DIRS),'$(DESTDIR)$(HTDOCSDIR)/$(d)')
	install -m 644 $(API_SO) $(STREAM_SO) '$(DESTDIR)$(MODULEDIR)/'
	sed 's|/usr/lib/apache2/modules|$(MODULEDIR)|g' conf/gcmon.load > $(BUILD)/gcmon.load
	$(CONF_PATHS) conf/gcmon.conf > $(BUILD)/gcmon.conf
	$(CONF_PATHS) conf/gcmon-site.conf > $(BUILD)/gcmon-site.conf
	install -m 644 $(BUILD)/gcmon.load '$(DESTDIR)$(MODSAVAIL)/gcmon.load'
	$(call install_conf,$(BUILD)/gcmon.conf,$(MODSAVAIL)/gcmon.conf)
	$(call install_conf,$(BUILD)/gcmon-site.conf,$(SITECONFDIR)/site.conf)
	@$(foreach f,$(HTDOCS_FILES),install -m 644 'htdocs/$(f)' '$(DESTDIR)$(HTDOCSDIR)/$(f)' && ) true
	@$(foreach f,$(DOC_FILES),install -m 644 '$(f)' '$(DESTDIR)$(DOCDIR)/$(f)' && ) true
	@echo "install: $(words $(HTDOCS_FILES)) dashboard files in $(HTDOCSDIR)," \
	     "$(words $(DOC_FILES)) documentation files in $(DOCDIR)"

uninstall:
	rm -f '$(DESTDIR)$(MODULEDIR)/mod_gcmon_api.so' '$(DESTDIR)$(MODULEDIR)/mod_gcmon_stream.so' \
	    '$(DESTDIR)$(MODSAVAIL)/gcmon.load' '$(DESTDIR)$(MODSAVAIL)/gcmon.conf' \
	    '$(DESTDIR)$(MODSAVAIL)/gcmon.conf.new' '$(DESTDIR)$(SITECONFDIR)/site.conf' \
	    '$(DESTDIR)$(SITECONFDIR)/site.conf.new'
	@$(foreach f,$(HTDOCS_FILES),rm -f '$(DESTDIR)$(HTDOCSDIR)/$(f)' && ) true
	@$(foreach f,$(DOC_FILES),rm -f '$(DESTDIR)$(DOCDIR)/$(f)' && ) true
	@printf '%s\n' $(foreach d,$(HTDOCS_DIRS),'$(HTDOCSDIR)/$(d)') '$(HTDOCSDIR)' '$(SHAREDIR)' \
	    $(foreach d,$(DOC_DIRS),'$(DOCDIR)/$(d)') '$(DOCDIR)' '$(SITECONFDIR)' | sort -r | \
	    while read -r d; do \
	    [ ! -d "$(DESTDIR)$$d" ] || rmdir "$(DESTDIR)$$d" 2>/dev/null || true; \
	done
	@if [ -e '$(DESTDIR)$(APACHE_CONFDIR)/mods-enabled/gcmon.load' ] || \
	    [ -L '$(DESTDIR)$(APACHE_CONFDIR)/mods-enabled/gcmon.load' ]; then \
	    echo "uninstall: gcmon is still enabled in $(APACHE_CONFDIR)/mods-enabled: run a2dismod gcmon"; \
	fi

# ---- the Debian package ------------------------------------------------------
# `make deb` builds libapache2-mod-gcmon from debian/ (dpkg-buildpackage -b,
# unsigned) in a copy of the sources below $(DEB_DIR), so that the .deb,
# .buildinfo and .changes land there rather than in the parent directory;
# lintian checks the result when it is installed (make deps installs it).
DEB_DIR  ?= $(BUILD)/deb
DEB_SRC  := Makefile .clang-format apxs conf contrib debian docs htdocs modules shared README.md \
            CHANGELOG.md SECURITY.md LICENSE

deb:
	rm -rf '$(DEB_DIR)'
	mkdir -p '$(DEB_DIR)/gcmon'
	tar -cf - $(DEB_SRC) | tar -xf - -C '$(DEB_DIR)/gcmon'
	cd '$(DEB_DIR)/gcmon' && dpkg-buildpackage -us -uc -b $(DEB_BUILD_ARGS)
	@if command -v lintian >/dev/null 2>&1; then \
	    echo "lintian $(DEB_DIR)/*.changes"; lintian --fail-on error $(LINTIAN_ARGS) $(DEB_DIR)/*.changes; \
	else echo "deb: lintian is not installed (make deps)"; fi
	@ls -1 $(DEB_DIR)/*.deb

# The package's test (test_install.py::test_deb_package, skipped unless
# GCMON_TEST_DEB=1): make deb and its lintian run, then — as root, on a machine
# where neither the package nor /var/lib/gcmon exists, as in CI — dpkg -i,
# apache2 -t and a start with gcmon enabled (in a private copy of
# /etc/apache2), remove, purge. Once per `make test`: one to two minutes.
test-deb: all
	GCMON_TEST_DEB=1 $(PYTEST) tests/integration/test_install.py \
	    -k deb_package $(PYTEST_ARGS)

BENCH_BIN := $(BUILD)/bench_ingest

$(BENCH_BIN): bench/ingest.c $(CORE_HDR) $(CORE_LA)
	$(CC) $(CFLAGS_GC) -o $@ bench/ingest.c $(BUILD)/.libs/libgcmon.a \
	    -lapr-1 -laprutil-1 $(LIBS_GC) -lpthread

BENCH_ALERTS := $(BUILD)/bench_alerts

$(BENCH_ALERTS): bench/alerts.c $(CORE_HDR) $(CORE_LA)
	$(CC) $(CFLAGS_GC) -o $@ bench/alerts.c $(BUILD)/.libs/libgcmon.a \
	    -lapr-1 -laprutil-1 $(LIBS_GC) -lpthread

bench: all $(BENCH_BIN) $(BENCH_ALERTS)
	GCMON_BUILD=$(abspath $(BUILD)) $(if $(QUICK),GCMON_BENCH_QUICK=1) $(PYTHON) bench/run.py

# The weight-distribution part of `make bench` alone (exits 1 above 1.05x or on a 429).
.PHONY: bench-weights
bench-weights: all
	GCMON_BUILD=$(abspath $(BUILD)) $(PYTHON) bench/run.py weights

# The flow-trace part of `make bench` alone (exits 1 unless all 100 traces complete exactly
# once within 1.5x the poll schedule's upper bound).
.PHONY: bench-traces
bench-traces: all
	GCMON_BUILD=$(abspath $(BUILD)) $(PYTHON) bench/run.py traces

# The route-decision part of `make bench` alone (exits 1 below 80% of the static file's
# requests/s at 32 connections).
.PHONY: bench-route
bench-route: all
	GCMON_BUILD=$(abspath $(BUILD)) $(PYTHON) bench/run.py route

# The idle-alert part of `make bench` alone.
.PHONY: bench-alerts
bench-alerts: $(BENCH_ALERTS)
	GCMON_BUILD=$(abspath $(BUILD)) $(PYTHON) bench/run.py alerts

clean:
	rm -rf build
