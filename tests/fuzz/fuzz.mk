# tests/fuzz/fuzz.mk - libFuzzer harnesses, included by the main Makefile.
#
#   make fuzz                      build every harness and run each for
#                                  FUZZ_SECONDS (default 60) on its corpus
#   make fuzz FUZZ_SECONDS=10      a shorter run
#   make fuzz-build                build only
#   make fuzz-run-NAME             build and run one harness (NAME below)
#   make fuzz-regress              run each harness once over its seeds and
#                                  over tests/fuzz/crashes/NAME-* (no fuzzing)
#   make fuzz-clean                remove build/fuzz
#
# Not part of `make all` or `make check`.  Everything is built with clang,
# from the sources, into build/fuzz/ (gcc's objects are never reused: the
# fuzzer needs clang's coverage instrumentation).  The project's sources
# (SRCS, less main.c, as LIB_OBJS) go into one archive, so each harness
# links only the objects it needs.  Seeds are copied into
# build/fuzz/corpus-NAME, where libFuzzer adds what it finds, so that the
# committed tests/fuzz/corpus/NAME stays clean; crashes, leaks and timeouts
# are written to build/fuzz/artifacts/NAME-*, the log to build/fuzz/NAME.log.
# A harness stops at its first finding; `make fuzz` still runs the others,
# then fails.  Reproducers of findings are kept in tests/fuzz/crashes/.

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 5
FUZZ_RSS_MB ?= 2048
# Extra libFuzzer options, e.g. FUZZ_FLAGS='-jobs=4 -workers=4'.
FUZZ_FLAGS ?=
FUZZ_NAMES := submit route config shellwords reqparse cron batch
# An empty FUZZ_SECONDS= on the command line means the default too.
fuzz_seconds = $(or $(strip $(FUZZ_SECONDS)),60)

FUZZ_DIR := build/fuzz
FUZZ_SRC_DIR := tests/fuzz
FUZZ_PKGS := libmicrohttpd sqlite3 libcjson inih libsystemd libcrypto libpq \
	libcurl
FUZZ_SANITIZE := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := $(FUZZ_SANITIZE) -g -O1 -fno-omit-frame-pointer -std=c11 \
	-D_GNU_SOURCE -pthread -Wall -Wno-unused-parameter -iquote include -MMD -MP
# Recursive (=): pkg-config runs when a recipe runs, as in the Makefile.
FUZZ_PKG_CFLAGS = $(shell pkg-config --cflags $(FUZZ_PKGS))
FUZZ_PKG_LIBS = $(shell pkg-config --libs $(FUZZ_PKGS))

# The daemon's sources as the Makefile lists them (SRCS), or every src/*.c
# when this file is used on its own; main.c holds main() and is left out.
FUZZ_LIB_SRCS := $(filter-out src/main.c,\
	$(if $(SRCS),$(SRCS),$(wildcard src/*.c)))
FUZZ_LIB_OBJS := $(FUZZ_LIB_SRCS:src/%.c=$(FUZZ_DIR)/obj/%.o) \
	$(FUZZ_DIR)/obj/pages.o
FUZZ_BINS := $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz_%)

# Keep the harness objects (make would delete them as intermediates).
.SECONDARY: $(FUZZ_NAMES:%=$(FUZZ_DIR)/harness/fuzz_%.o)

.PHONY: fuzz fuzz-build fuzz-regress fuzz-clean \
	$(FUZZ_NAMES:%=fuzz-run-%)

# Each harness in turn, even under make -j (they would share the CPUs),
# all of them even when one finds something; then one line each.
fuzz: fuzz-build
	@failed=; for n in $(FUZZ_NAMES); do \
		$(MAKE) --no-print-directory fuzz-run-$$n || failed="$$failed $$n"; \
	done; \
	echo "== fuzz summary ($(fuzz_seconds) s each)"; \
	for n in $(FUZZ_NAMES); do \
		line=$$(grep -E '^#[0-9]+[[:space:]]+DONE' $(FUZZ_DIR)/$$n.log | tail -n 1); \
		echo "$$n: $${line:-FAILED, see $(FUZZ_DIR)/$$n.log and $(FUZZ_DIR)/artifacts/}"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: findings in:$$failed"; exit 1; fi

fuzz-build: $(FUZZ_BINS)

$(FUZZ_DIR)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_PKG_CFLAGS) -c -o $@ $<

# api.c refers to the embedded pages; generated here as the Makefile does,
# so that the fuzz build needs nothing from build/.
$(FUZZ_DIR)/gen/pages.c: src/dashboard.html src/login.html \
		openapi/openapi.json scripts/embed.sh
	@mkdir -p $(dir $@)
	sh scripts/embed.sh dashboard.h $(PAGES) > $@

$(FUZZ_DIR)/obj/pages.o: $(FUZZ_DIR)/gen/pages.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_DIR)/libjobd.a: $(FUZZ_LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/harness/%.o: $(FUZZ_SRC_DIR)/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Wextra $(FUZZ_PKG_CFLAGS) -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/harness/fuzz_%.o $(FUZZ_DIR)/libjobd.a
	$(FUZZ_CC) $(FUZZ_SANITIZE) -pthread -o $@ $^ $(FUZZ_PKG_LIBS) -lm || \
	{ echo "fuzz: cannot link $@; libFuzzer comes with clang's runtime" \
	       "(Debian: apt-get install clang libclang-rt-14-dev)"; exit 1; }

# One harness: fresh seeds on top of what earlier runs found, a dictionary
# when there is one, the final stats line kept in build/fuzz/NAME.log.
$(FUZZ_NAMES:%=fuzz-run-%): fuzz-run-%: $(FUZZ_DIR)/fuzz_%
	@mkdir -p $(FUZZ_DIR)/corpus-$* $(FUZZ_DIR)/artifacts
	@cp $(FUZZ_SRC_DIR)/corpus/$*/* $(FUZZ_DIR)/corpus-$*/
	@echo "== fuzz: $* for $(fuzz_seconds) s"
	@{ UBSAN_OPTIONS=print_stacktrace=1 \
	   $(FUZZ_DIR)/fuzz_$* -max_total_time=$(fuzz_seconds) \
		-timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=$(FUZZ_RSS_MB) \
		-print_final_stats=1 \
		-artifact_prefix=$(FUZZ_DIR)/artifacts/$*- \
		$(if $(wildcard $(FUZZ_SRC_DIR)/$*.dict),-dict=$(FUZZ_SRC_DIR)/$*.dict) \
		$(FUZZ_FLAGS) $(FUZZ_DIR)/corpus-$* 2>&1; \
	   echo $$? > $(FUZZ_DIR)/$*.rc; } | tee $(FUZZ_DIR)/$*.log | \
	  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::number_of_executed_units|^Done [0-9]+ runs' \
	  || true
	@rc=$$(cat $(FUZZ_DIR)/$*.rc); if [ "$$rc" != 0 ]; then \
		awk '/runtime error|ERROR|^fuzz_[a-z]+: /{ p = 1 } p' \
			$(FUZZ_DIR)/$*.log | head -n 80; \
		echo "fuzz: $* FAILED (exit $$rc); log: $(FUZZ_DIR)/$*.log"; \
		exit 1; fi

# Replays the committed seeds and reproducers once each (no fuzzing); a
# reproducer that still fails is a finding not fixed yet.  Runs them all,
# then fails if any failed.
fuzz-regress: $(FUZZ_BINS)
	@failed=; for n in $(FUZZ_NAMES); do \
		echo "== fuzz-regress: $$n"; \
		UBSAN_OPTIONS=print_stacktrace=1 $(FUZZ_DIR)/fuzz_$$n -runs=0 \
			-timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=$(FUZZ_RSS_MB) \
			$(FUZZ_SRC_DIR)/corpus/$$n > $(FUZZ_DIR)/regress.log 2>&1 \
			|| { cat $(FUZZ_DIR)/regress.log; failed="$$failed corpus/$$n"; }; \
		for f in $(FUZZ_SRC_DIR)/crashes/$$n-*; do \
			[ -f "$$f" ] || continue; \
			if UBSAN_OPTIONS=print_stacktrace=1 $(FUZZ_DIR)/fuzz_$$n \
				-timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=$(FUZZ_RSS_MB) \
				"$$f" > $(FUZZ_DIR)/regress.log 2>&1; then \
				echo "fixed: $$f"; \
			else \
				echo "FAILS: $$f: $$(grep -m 1 -E 'runtime error|ERROR|^fuzz_[a-z]+: ' $(FUZZ_DIR)/regress.log)"; \
				failed="$$failed $${f##*/}"; \
			fi; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz-regress: failing:$$failed"; exit 1; fi

fuzz-clean:
	rm -rf $(FUZZ_DIR)

-include $(wildcard $(FUZZ_DIR)/obj/*.d $(FUZZ_DIR)/harness/*.d)
