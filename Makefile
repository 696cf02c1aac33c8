# jobd - one flat Makefile (STYLE.md §16).
#
#   make / make all   build build/jobd
#   make test-build   build build/jobd-test: the daemon with its test hooks
#                     (JOBD_FAULT_INJECT, clock offsets), which build/jobd
#                     does not have
#   make run          build and run in the foreground with conf/jobd.conf
#   make check        build and run every test
#   make integration-pg  the integration suites with every daemon on
#                     PostgreSQL (a private server: tests/pg/with_server.sh)
#   make openapi-check  openapi/openapi.json, and every answer the last
#                     integration runs received, against it
#   make bench        benchmarks (tests/bench)
#   make man          the manual pages in build/man (jobd.conf.5 generated
#                     from the configuration table)
#   make deb          the Debian package, build/jobd_<version>_<arch>.deb
#   make install      PREFIX=/usr/local DESTDIR=
#   make clean
#
# SANITIZE=address,undefined (or thread) builds an instrumented daemon and
# tests under build/<sanitizer>/ and runs the same suite against them.

CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
SANITIZE ?=

PKGS := libmicrohttpd sqlite3 libcjson inih libsystemd libcrypto libpq libcurl
TEST_PKGS := check libcurl

comma := ,
ifeq ($(SANITIZE),)
BUILD := build
else
BUILD := build/$(subst $(comma),-,$(SANITIZE))
endif

SRCS := \
	src/api.c \
	src/auth.c \
	src/backoff.c \
	src/batch.c \
	src/bus.c \
	src/callback.c \
	src/client.c \
	src/clock.c \
	src/config.c \
	src/cron.c \
	src/err.c \
	src/events.c \
	src/handler.c \
	src/handler_builtin.c \
	src/handler_ctx.c \
	src/handler_exec.c \
	src/handler_plugin.c \
	src/http.c \
	src/intake.c \
	src/job.c \
	src/log.c \
	src/metrics.c \
	src/pgroups.c \
	src/progress.c \
	src/rate.c \
	src/reqparse.c \
	src/sched.c \
	src/schedule.c \
	src/shellwords.c \
	src/sse.c \
	src/stats.c \
	src/store.c \
	src/store_pg.c \
	src/store_sqlite.c \
	src/submit.c \
	src/utf8.c \
	src/uuid.c \
	src/wait.c \
	src/workers.c \
	src/writer.c

# Test hooks, compiled with -DJOBD_TEST_HOOKS into the test build only
# ($(BUILD)/jobd-test and the unit tests): the fault-injection VFS, and
# the clock offset in clock.c.
TEST_HOOK_SRCS := \
	src/store_faults.c

UNIT_TESTS := \
	test_backoff \
	test_batch \
	test_callback \
	test_client \
	test_clock \
	test_metrics \
	test_progress \
	test_config \
	test_cron \
	test_events \
	test_http \
	test_intake \
	test_rate \
	test_reqparse \
	test_sched \
	test_schedule \
	test_stats \
	test_store \
	test_store_faults \
	test_store_pg \
	test_submit \
	test_utf8 \
	test_uuid \
	test_wait

# Every tests/integration/test_*.c is a suite run by `make check`.
INTEGRATION_TESTS := $(sort $(patsubst tests/integration/%.c,%,\
	$(wildcard tests/integration/test_*.c)))
# The suites that CI runs on PostgreSQL under ASan+UBSan (every suite runs
# on PostgreSQL in `make check`, and on SQLite under ASan+UBSan): those
# that drive the PostgreSQL store's own code (claims, dependencies,
# batches, pauses, nodes, faults, hostile values); the others test HTTP,
# exec or timing paths that do not depend on the store.
PG_SANITIZE_TESTS := test_api test_batch test_deps test_lifecycle \
	test_nodes test_pgattack test_pgfaults test_pgserver test_types

OBJS := $(SRCS:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/pages.o
LIB_OBJS := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
# The same with the test hooks (no main.o either: unit tests link them).
TEST_LIB_OBJS := $(patsubst src/%.c,$(BUILD)/test/obj/%.o,\
	$(SRCS) $(TEST_HOOK_SRCS)) $(BUILD)/obj/pages.o

# Recursive (=) on purpose: pkg-config runs when a recipe runs, after
# `deps` has installed what was missing.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS = $(shell pkg-config --libs $(PKGS))
TEST_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS))
TEST_LIBS = $(shell pkg-config --libs $(TEST_PKGS))

override CFLAGS += -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror \
	-Wmissing-prototypes -Wshadow -Wno-unused-parameter -pthread \
	-MMD -MP -iquote include
override LDFLAGS += -pthread
ifneq ($(SANITIZE),)
override CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
override LDFLAGS += -fsanitize=$(SANITIZE)
endif

.PHONY: all run check unit integration integration-pg ops smoke bench \
	install clean deps check-browser bench-sse reliability check-crash soak \
	test-build plugins test-plugins openapi-check

all: deps
	@$(MAKE) --no-print-directory $(BUILD)/jobd plugins

deps:
	@sh scripts/deps.sh

test-build: deps
	@$(MAKE) --no-print-directory $(BUILD)/jobd-test

# What plugins may call in the executable (jobd_ctx_*), and nothing else.
EXPORTS := include/jobd/exports.list
EXPORT_LDFLAGS := -Wl,--dynamic-list=$(EXPORTS)

$(BUILD)/jobd: $(OBJS) $(BUILD)/obj/main.o $(EXPORTS)
	$(CC) $(LDFLAGS) $(EXPORT_LDFLAGS) -o $@ $(filter %.o,$^) \
		$(PKG_LIBS) -lm

$(BUILD)/jobd-test: $(TEST_LIB_OBJS) $(BUILD)/test/obj/main.o $(EXPORTS)
	$(CC) $(LDFLAGS) $(EXPORT_LDFLAGS) -o $@ $(filter %.o,$^) \
		$(PKG_LIBS) -lm

# Plugins (DESIGN §4): the examples, built into $(BUILD)/plugins/, and
# the tests' own (tests/plugins/: good, broken on purpose, C++) into
# $(BUILD)/test-plugins/.  They see jobd/handler.h as an installed header
# would be seen: a copy alone in $(BUILD)/include (include/ also holds
# headers named like system ones, sched.h).  The header must compile
# alone as C11 and as C++ (its .stamp).
CXX ?= c++
PLUGIN_CFLAGS = -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wshadow -fPIC \
	-fvisibility=hidden -I $(BUILD)/include
ifneq ($(SANITIZE),)
PLUGIN_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
endif
EXAMPLE_PLUGINS := sha256 fetch hello
TEST_PLUGINS := $(sort $(patsubst tests/plugins/%.c,%,\
	$(wildcard tests/plugins/*.c)))

plugins: $(EXAMPLE_PLUGINS:%=$(BUILD)/plugins/%.so)

test-plugins: plugins $(TEST_PLUGINS:%=$(BUILD)/test-plugins/%.so) \
	$(BUILD)/test-plugins/cplusplus.so

$(BUILD)/gen/handler_h.stamp: include/jobd/handler.h
	@mkdir -p $(dir $@) $(BUILD)/include/jobd
	cp include/jobd/handler.h $(BUILD)/include/jobd/handler.h
	$(CC) -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only \
		-x c include/jobd/handler.h
	$(CXX) -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only \
		-x c++ include/jobd/handler.h
	@touch $@

# The libraries (pkg-config names) each example plugin links.
PLUGIN_PKGS_sha256 := libcrypto libcjson
PLUGIN_PKGS_fetch := libcurl libcjson
PLUGIN_PKGS_hello :=

$(BUILD)/plugins/%.so: examples/plugins/%.c include/jobd/handler.h \
		$(BUILD)/gen/handler_h.stamp
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) -shared -o $@ $< \
		$(if $(PLUGIN_PKGS_$*),$(shell pkg-config --libs $(PLUGIN_PKGS_$*)))
	@chmod go-w $@ # jobd refuses a plugin its group or others may write

$(BUILD)/test-plugins/%.so: tests/plugins/%.c include/jobd/handler.h \
		$(BUILD)/gen/handler_h.stamp
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) -shared -o $@ $<
	@chmod go-w $@

$(BUILD)/test-plugins/cplusplus.so: tests/plugins/cplusplus.cc \
		include/jobd/handler.h $(BUILD)/gen/handler_h.stamp
	@mkdir -p $(dir $@)
	$(CXX) -std=c++11 -O2 -Wall -Wextra -Werror -fPIC \
		-fvisibility=hidden -I $(BUILD)/include $(filter -fsanitize=%,\
		$(PLUGIN_CFLAGS)) -shared -o $@ $<
	@chmod go-w $@

# The built-in pages (dashboard, sign-in) and the OpenAPI description,
# embedded as byte arrays.
PAGES := dashboard_html src/dashboard.html login_html src/login.html \
	openapi_json openapi/openapi.json
$(BUILD)/gen/pages.c: src/dashboard.html src/login.html openapi/openapi.json \
		scripts/embed.sh
	@mkdir -p $(dir $@)
	sh scripts/embed.sh dashboard.h $(PAGES) > $@

$(BUILD)/obj/pages.o: $(BUILD)/gen/pages.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

$(BUILD)/test/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DJOBD_TEST_HOOKS $(PKG_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DJOBD_TEST_HOOKS $(PKG_CFLAGS) $(TEST_CFLAGS) \
		-Wno-missing-prototypes -c -o $@ $<

$(BUILD)/itests/%.o: tests/integration/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(TEST_LIB_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(TEST_LIBS) -lm

# The PostgreSQL store's tests start a private server (tests/integration/pg.c).
$(BUILD)/tests/test_store_pg: $(BUILD)/tests/test_store_pg.o $(TEST_LIB_OBJS) \
		$(BUILD)/itests/pg.o
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(TEST_LIBS) -lm

$(BUILD)/itests/test_%: $(BUILD)/itests/test_%.o $(BUILD)/itests/harness.o \
		$(BUILD)/itests/pg.o
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(TEST_LIBS) -lm

# Manual pages: jobd.8 as written; jobd.conf.5 is man/jobd.conf.5.in with
# its @CONFIG_KEYS@ line replaced by the key list that the binary writes
# from the configuration table, so that the page cannot drift from it.
MAN_PAGES := $(BUILD)/man/jobd.8 $(BUILD)/man/jobd.conf.5

.PHONY: man deb

man: deps
	@$(MAKE) --no-print-directory $(MAN_PAGES)

$(BUILD)/man/jobd.8: man/jobd.8
	@mkdir -p $(dir $@)
	cp man/jobd.8 $@

$(BUILD)/man/jobd.conf.5: man/jobd.conf.5.in $(BUILD)/jobd
	@mkdir -p $(dir $@)
	$(BUILD)/jobd --config-reference=mdoc > $@.keys
	sed -e '/^\.\\" @CONFIG_KEYS@$$/{r $@.keys' -e 'd}' \
		man/jobd.conf.5.in > $@.tmp
	@grep -q '^\.It Cm' $@.tmp || { echo "$@: no keys" >&2; exit 1; }
	rm -f $@.keys && mv $@.tmp $@

# The Debian package (packaging/debian, DESIGN §9), built by
# dpkg-buildpackage in a copy of the tree (build/deb/), so that neither the
# tree nor build/ gets the package build's objects; the .deb lands in build/.
deb: deps
	@sh scripts/deb.sh

run: all
	@mkdir -p var
	exec $(BUILD)/jobd --config conf/jobd.conf

check: deps
	@$(MAKE) --no-print-directory unit integration integration-pg \
		openapi-check ops reliability smoke

# Shell tests of what ships beside the binary (systemd units, manual
# pages, the Debian package); 77 = skip.
ops: $(BUILD)/jobd $(MAN_PAGES)
	@for t in tests/ops/*.sh; do \
		echo "== $$t"; JOBD_BIN=$(BUILD)/jobd JOBD_MAN=$(BUILD)/man \
			sh $$t; rc=$$?; \
		if [ $$rc -eq 77 ]; then echo "(skipped)"; \
		elif [ $$rc -ne 0 ]; then exit $$rc; fi; done

# Crash, disk-full, I/O-error and power-cut tests (tests/crash,
# tests/reliability).  A daemon started with a fault (JOBD_FAULT_INJECT)
# is the test build, JOBD_TEST_BIN; every other is the release build.
reliability: $(BUILD)/jobd $(BUILD)/jobd-test
	@echo "== crash (short)"
	@JOBD_BIN=$(BUILD)/jobd CRASH_ROUNDS=$${CRASH_ROUNDS:-20} sh tests/crash/run.sh
	@for t in tests/reliability/*.sh; do \
		echo "== $$t"; JOBD_BIN=$(BUILD)/jobd \
		JOBD_TEST_BIN=$(BUILD)/jobd-test sh $$t || exit 1; done

check-crash: $(BUILD)/jobd $(BUILD)/jobd-test $(BUILD)/itests/test_nodes
	JOBD_BIN=$(BUILD)/jobd CRASH_ROUNDS=$${CRASH_ROUNDS:-200} sh tests/crash/run.sh
	JOBD_TEST_STORE=pg JOBD_NODE_ROUNDS=$${NODE_ROUNDS:-200} \
		JOBD_BIN=$(BUILD)/jobd JOBD_TEST_BIN=$(BUILD)/jobd-test CK_FORK=yes \
		sh tests/pg/with_server.sh $(BUILD)/itests/test_nodes

soak: $(BUILD)/jobd
	JOBD_BIN=$(BUILD)/jobd SOAK_SECONDS=$${SOAK_SECONDS:-300} sh tests/soak/run.sh

# libFuzzer harnesses (clang): make fuzz FUZZ_SECONDS=N
-include tests/fuzz/fuzz.mk

# A short benchmark that fails only on a gross regression (intake below
# 10 % of the same daemon's /healthz rate).
smoke: $(BUILD)/jobd
	@echo "== smoke benchmark"
	@if [ -n "$(SANITIZE)" ]; then \
		echo "smoke: skipped under SANITIZE=$(SANITIZE) (timing means nothing there)"; \
	else JOBD_BIN=$(BUILD)/jobd sh tests/bench/smoke.sh; fi

unit: $(BUILD)/jobd $(UNIT_TESTS:%=$(BUILD)/tests/%)
	@set -e; for t in $(UNIT_TESTS); do \
		echo "== unit: $$t"; CK_FORK=yes $(BUILD)/tests/$$t; done

# Every answer the suites receive is logged (one JSON line each, by the
# harness) under $(OPENAPI_LOG)/<store>/ for openapi-check.
OPENAPI_LOG := $(abspath $(BUILD))/openapi-log

integration: $(BUILD)/jobd $(BUILD)/jobd-test test-plugins \
		$(INTEGRATION_TESTS:%=$(BUILD)/itests/%)
	@set -e; log=$(OPENAPI_LOG)/$${JOBD_TEST_STORE:-sqlite}; \
	rm -rf "$$log"; mkdir -p "$$log"; \
	for t in $(INTEGRATION_TESTS); do \
		echo "== integration$${JOBD_TEST_STORE:+ ($$JOBD_TEST_STORE)}: $$t"; \
		t0=$$(date +%s); \
		JOBD_BIN=$(BUILD)/jobd JOBD_TEST_BIN=$(BUILD)/jobd-test \
			JOBD_PLUGIN_DIR=$(BUILD)/plugins \
			JOBD_TEST_PLUGIN_DIR=$(BUILD)/test-plugins \
			JOBD_SANITIZE=$(SANITIZE) CK_FORK=yes \
			JOBD_OPENAPI_LOG="$$log" $(BUILD)/itests/$$t; \
		echo "== $$t: $$(($$(date +%s) - t0)) s"; done

# The same suites, every daemon on PostgreSQL: one private server for the
# run (tests/pg/with_server.sh), a database per daemon (the harness).
# Skipped, with a line saying so, on a machine without PostgreSQL.
integration-pg: $(BUILD)/jobd $(BUILD)/jobd-test \
		$(INTEGRATION_TESTS:%=$(BUILD)/itests/%)
	@JOBD_TEST_STORE=pg JOBD_TEST_PG_SKIP_OK=1 sh tests/pg/with_server.sh \
		$(MAKE) --no-print-directory integration SANITIZE=$(SANITIZE)

# The description is valid OpenAPI 3.1, and every answer logged by the
# last `make integration` and `make integration-pg` matches it (one python
# process over all logs; tests/openapi/check.py says how it matches).
openapi-check:
	@echo "== openapi-check"
	@dirs=$$(ls -d $(OPENAPI_LOG)/*/ 2>/dev/null || true); \
	if [ -z "$$dirs" ]; then \
		echo "openapi-check: no answers logged yet: run make integration"; \
		exit 1; fi; \
	python3 tests/openapi/check.py --spec openapi/openapi.json \
		--selftest tests/openapi/selftest $$dirs

# The dashboard in a real browser (Debian's chromium, installed as needed).
check-browser: all
	JOBD_BIN=$(BUILD)/jobd sh tests/browser/dashboard_test.sh

bench: all
	@sh tests/bench/run.sh

# GET /events with 1,000 open streams: latency and RSS (prints figures).
bench-sse: all $(BUILD)/bench/sse_bench
	JOBD_BIN=$(BUILD)/jobd $(BUILD)/bench/sse_bench

$(BUILD)/bench/sse_bench: tests/bench/sse_bench.c $(BUILD)/itests/harness.o \
		$(BUILD)/itests/pg.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) -Wno-missing-prototypes \
		-iquote tests/integration -o $@ $^ $(LDFLAGS) $(PKG_LIBS) \
		$(TEST_LIBS) -lm

UNITDIR ?= $(PREFIX)/lib/systemd/system

install: all man
	install -D -m 0755 $(BUILD)/jobd $(DESTDIR)$(PREFIX)/bin/jobd
	install -D -m 0644 packaging/bash-completion/jobd \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/jobd
	@if [ -e $(DESTDIR)/etc/jobd/jobd.conf ]; then \
		echo "keeping the existing $(DESTDIR)/etc/jobd/jobd.conf"; \
	else \
		mkdir -p $(DESTDIR)/etc/jobd && \
		sh scripts/install-conf.sh conf/jobd.conf \
			$(DESTDIR)/etc/jobd/jobd.conf $(PREFIX); \
	fi
	install -D -m 0755 examples/handlers/greet.sh \
		$(DESTDIR)$(PREFIX)/share/jobd/examples/handlers/greet.sh
	install -D -m 0644 include/jobd/handler.h \
		$(DESTDIR)$(PREFIX)/include/jobd/handler.h
	for p in $(EXAMPLE_PLUGINS); do \
		install -D -m 0644 $(BUILD)/plugins/$$p.so \
			$(DESTDIR)$(PREFIX)/lib/jobd/plugins/$$p.so || exit 1; \
	done
	mkdir -p $(DESTDIR)$(UNITDIR)
	sed 's#/usr/local/bin/jobd#$(PREFIX)/bin/jobd#' systemd/jobd.service \
		> $(DESTDIR)$(UNITDIR)/jobd.service
	install -m 0644 systemd/jobd.socket $(DESTDIR)$(UNITDIR)/jobd.socket
	install -D -m 0644 systemd/jobd.sysusers \
		$(DESTDIR)$(PREFIX)/lib/sysusers.d/jobd.conf
	install -D -m 0644 systemd/jobd.tmpfiles \
		$(DESTDIR)$(PREFIX)/lib/tmpfiles.d/jobd.conf
	install -D -m 0644 $(BUILD)/man/jobd.8 \
		$(DESTDIR)$(PREFIX)/share/man/man8/jobd.8
	install -D -m 0644 $(BUILD)/man/jobd.conf.5 \
		$(DESTDIR)$(PREFIX)/share/man/man5/jobd.conf.5

clean:
	rm -rf build

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/test/obj/*.d $(BUILD)/tests/*.d \
	$(BUILD)/itests/*.d)

# make -s print-VAR: a variable's value (for .ci/run).
print-%:
	@echo $($*)
