/*
 * test_config.c - unit tests of src/config.c: the configuration table, its
 * defaults and bounds, the size and duration parsers, and the error
 * messages ("FILE:LINE: [section] key: reason", one per line, all of them).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"

#define NAME "t.conf"

static char errbuf[8192];

/* Loads text that must be valid; fails the test with the errors if not. */
static struct config *
load_ok(const char *text)
{
	struct config *cfg = NULL;
	int rc;

	errbuf[0] = '\0';
	rc = config_load_string(NAME, text, &cfg, errbuf, sizeof(errbuf));
	ck_assert_msg(rc == 0, "config_load_string failed (%d):\n%s", rc,
	              errbuf);
	ck_assert_ptr_nonnull(cfg);
	return cfg;
}

/* Loads text that must be rejected; returns the error text (errbuf). */
static const char *
load_bad(const char *text)
{
	struct config *cfg = NULL;
	int rc;

	memset(errbuf, 0, sizeof(errbuf));
	rc = config_load_string(NAME, text, &cfg, errbuf, sizeof(errbuf));
	ck_assert_msg(rc == JOBD_EINVAL, "expected JOBD_EINVAL, got %d for:\n%s",
	              rc, text);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(errbuf[0] != '\0', "no error message for:\n%s", text);
	return errbuf;
}

static int
count_lines(const char *s)
{
	int n = 0;

	if (*s == '\0')
		return 0;
	for (n = 1; *s; s++)
		if (*s == '\n' && s[1] != '\0')
			n++;
	return n;
}

/*
 * Checks that every line of err has the form "FILE:LINE: [section] key:
 * reason" with FILE == file, LINE a positive number, a non-empty key and a
 * non-empty reason.
 */
static void
check_format(const char *err, const char *file)
{
	const char *line = err;
	size_t flen = strlen(file);

	while (*line) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		char buf[1024];
		const char *p;
		char *end;
		long lineno;

		ck_assert_uint_lt(len, sizeof(buf));
		memcpy(buf, line, len);
		buf[len] = '\0';
		ck_assert_msg(strncmp(buf, file, flen) == 0 && buf[flen] == ':',
		              "line does not start with \"%s:\": %s", file, buf);
		p = buf + flen + 1;
		errno = 0;
		lineno = strtol(p, &end, 10);
		ck_assert_msg(end != p && lineno > 0,
		              "no positive line number: %s", buf);
		ck_assert_msg(strncmp(end, ": [", 3) == 0,
		              "no \": [\" after the line number: %s", buf);
		p = strchr(end + 3, ']');
		ck_assert_msg(p != NULL && p[1] == ' ', "no \"] \": %s", buf);
		end = strstr(p + 2, ": ");
		ck_assert_msg(end != NULL && end > p + 2,
		              "no \"key: \" after the section: %s", buf);
		ck_assert_msg(end[2] != '\0', "empty reason: %s", buf);
		line = eol ? eol + 1 : line + len;
	}
}

/* Asserts that the load of text fails with exactly the message want. */
static void
assert_error(const char *text, const char *want)
{
	const char *err = load_bad(text);

	check_format(err, NAME);
	ck_assert_str_eq(err, want);
}

/* Asserts that the load of text fails with one line starting with prefix. */
static void
assert_error_prefix(const char *text, const char *prefix)
{
	const char *err = load_bad(text);

	check_format(err, NAME);
	ck_assert_int_eq(count_lines(err), 1);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
	              "expected an error starting with\n  %s\ngot\n  %s", prefix,
	              err);
}

/* ---- defaults ---- */

START_TEST(test_defaults_empty_file)
{
	struct config *cfg = load_ok("");

	ck_assert_str_eq(cfg->file, NAME);
	ck_assert_str_eq(cfg->server.listen, "127.0.0.1:8080");
	ck_assert_int_eq(cfg->server.max_body_bytes, 1 << 20);
	ck_assert_int_eq(cfg->server.max_wait_ms, 60000);
	ck_assert_int_eq(cfg->server.max_waiters, 10000);
	ck_assert_int_eq(cfg->server.event_buffer, 10000);
	ck_assert_int_eq(cfg->server.threads, 0);
	ck_assert_int_eq(cfg->server.max_connections, 4096);
	ck_assert_int_eq(cfg->server.per_ip_connections, 256);
	ck_assert_int_eq(cfg->server.header_timeout_ms, 20000);
	ck_assert_int_eq(cfg->server.connection_timeout_ms, 60000);
	ck_assert_ptr_null(cfg->server.tls_cert);
	ck_assert_ptr_null(cfg->server.tls_key);
	ck_assert_int_eq(cfg->server.log_level, 6); /* info */
	ck_assert_str_eq(cfg->store.path, "/var/lib/jobd/jobs.db");
	ck_assert_int_eq(cfg->store.durability, DURABILITY_FULL);
	ck_assert_int_eq(cfg->store.max_queued, 1000000);
	ck_assert_int_eq(cfg->store.retention_ms, 7LL * 86400 * 1000);
	ck_assert_int_eq(cfg->workers.threads, 4);
	ck_assert_int_eq(cfg->workers.shutdown_grace_ms, 30000);
	ck_assert_ptr_null(cfg->auth.tokens_file);
	ck_assert_uint_eq(cfg->nhandlers, 0);
	ck_assert_ptr_null(config_handler(cfg, "noop"));
	config_free(cfg);
}
END_TEST

START_TEST(test_defaults_comments_and_blank_lines)
{
	struct config *cfg = load_ok("; a comment\n"
	                             "# another comment\n"
	                             "\n"
	                             "[server]\n"
	                             "   \n"
	                             "[store]\n"
	                             "[workers]\n"
	                             "[auth]\n");

	ck_assert_str_eq(cfg->server.listen, "127.0.0.1:8080");
	ck_assert_int_eq(cfg->workers.threads, 4);
	config_free(cfg);
}
END_TEST

START_TEST(test_handler_defaults)
{
	struct config *cfg = load_ok("[handler.noop]\nbuiltin = noop\n");
	const struct handler_conf *h;

	ck_assert_uint_eq(cfg->nhandlers, 1);
	h = config_handler(cfg, "noop");
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(h->name, "noop");
	ck_assert_int_eq(h->line, 1);
	ck_assert_int_eq(h->builtin, BUILTIN_NOOP);
	ck_assert_ptr_null(h->command);
	ck_assert_int_eq(h->timeout_ms, 60000);
	ck_assert_int_eq(h->max_attempts, 3);
	ck_assert_int_eq(h->backoff_base_ms, 1000);
	ck_assert_int_eq(h->backoff_max_ms, 3600000);
	ck_assert_int_eq(h->concurrency, 0);
	ck_assert_int_eq(h->kill_grace_ms, 5000);
	ck_assert_int_eq(h->max_output_bytes, 1 << 20);
	ck_assert_ptr_null(h->env);
	ck_assert_ptr_null(h->workdir);
	config_free(cfg);
}
END_TEST

/* rate = N/s | N/m | N/h (DESIGN §4): parsed at load, errors at the
 * key's line. */
START_TEST(test_handler_rate)
{
	struct config *cfg = load_ok("[handler.a]\nbuiltin = noop\n"
	                             "rate = 20/s\n"
	                             "[handler.b]\nbuiltin = noop\n"
	                             "rate = 3 / h\n"
	                             "[handler.c]\nbuiltin = noop\n");
	const struct handler_conf *h = config_handler(cfg, "a");

	ck_assert_str_eq(h->rate, "20/s");
	ck_assert_int_eq(h->rate_n, 20);
	ck_assert_int_eq(h->rate_period_us, 1000000);
	h = config_handler(cfg, "b");
	ck_assert_int_eq(h->rate_n, 3);
	ck_assert_int_eq(h->rate_period_us, 3600000000LL);
	h = config_handler(cfg, "c");
	ck_assert_ptr_null(h->rate);
	ck_assert_int_eq(h->rate_n, 0);
	config_free(cfg);
	assert_error("[handler.a]\nbuiltin = noop\n\nrate = 5/x\n",
	             NAME ":4: [handler.a] rate: \"5/x\" is not a rate (N/s, "
	             "N/m or N/h, e.g. 20/s)");
	assert_error("[handler.a]\nbuiltin = noop\nrate = 0/s\n",
	             NAME ":3: [handler.a] rate: \"0/s\": the number of starts "
	             "must be 1..1000000");
	assert_error("[handler.a]\nbuiltin = noop\nrate = 1000001/m\n",
	             NAME ":3: [handler.a] rate: \"1000001/m\": the number of "
	             "starts must be 1..1000000");
	assert_error("[handler.a]\nbuiltin = noop\nrate =\n",
	             NAME ":3: [handler.a] rate: must not be empty");
}
END_TEST

/* ---- every key of the table ---- */

START_TEST(test_every_key_parses)
{
	struct config *cfg = load_ok(
		"[server]\n"
		"listen = [::1]:9090\n"
		"max_body = 2M\n"
		"max_wait = 2m\n"
		"max_waiters = 50\n"
		"threads = 8\n"
		"max_connections = 100\n"
		"per_ip_connections = 10\n"
		"connection_timeout = 90s\n"
		"tls_cert = /etc/jobd/cert.pem\n"
		"tls_key = /etc/jobd/key.pem\n"
		"log_level = debug\n"
		"[store]\n"
		"path = /tmp/x/jobs.db\n"
		"durability = normal\n"
		"max_queued = 500\n"
		"retention = 2d\n"
		"[workers]\n"
		"threads = 16\n"
		"shutdown_grace = 1m\n"
		"[auth]\n"
		"tokens_file = /etc/jobd/tokens\n"
		"[handler.resize]\n"
		"command = /usr/local/bin/resize --quality 80\n"
		"timeout = 30s\n"
		"max_attempts = 5\n"
		"backoff_base = 250ms\n"
		"backoff_max = 10m\n"
		"concurrency = 2\n"
		"kill_grace = 3s\n"
		"max_output = 64k\n"
		"env = A=1 B=2\n"
		"workdir = /srv\n"
		"[handler.sleep]\n"
		"builtin = sleep\n"
		"[handler.echo]\n"
		"builtin = echo\n"
		"[handler.fail]\n"
		"builtin = fail\n");
	const struct handler_conf *h;

	ck_assert_str_eq(cfg->server.listen, "[::1]:9090");
	ck_assert_int_eq(cfg->server.max_body_bytes, 2 << 20);
	ck_assert_int_eq(cfg->server.max_wait_ms, 120000);
	ck_assert_int_eq(cfg->server.max_waiters, 50);
	ck_assert_int_eq(cfg->server.threads, 8);
	ck_assert_int_eq(cfg->server.max_connections, 100);
	ck_assert_int_eq(cfg->server.per_ip_connections, 10);
	ck_assert_int_eq(cfg->server.connection_timeout_ms, 90000);
	ck_assert_str_eq(cfg->server.tls_cert, "/etc/jobd/cert.pem");
	ck_assert_str_eq(cfg->server.tls_key, "/etc/jobd/key.pem");
	ck_assert_int_eq(cfg->server.log_level, 7);
	ck_assert_str_eq(cfg->store.path, "/tmp/x/jobs.db");
	ck_assert_int_eq(cfg->store.durability, DURABILITY_NORMAL);
	ck_assert_int_eq(cfg->store.max_queued, 500);
	ck_assert_int_eq(cfg->store.retention_ms, 2LL * 86400 * 1000);
	ck_assert_int_eq(cfg->workers.threads, 16);
	ck_assert_int_eq(cfg->workers.shutdown_grace_ms, 60000);
	ck_assert_str_eq(cfg->auth.tokens_file, "/etc/jobd/tokens");

	ck_assert_uint_eq(cfg->nhandlers, 4);
	h = config_handler(cfg, "resize");
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(h->line, 23);
	ck_assert_int_eq(h->builtin, BUILTIN_NONE);
	ck_assert_str_eq(h->command, "/usr/local/bin/resize --quality 80");
	ck_assert_int_eq(h->timeout_ms, 30000);
	ck_assert_int_eq(h->max_attempts, 5);
	ck_assert_int_eq(h->backoff_base_ms, 250);
	ck_assert_int_eq(h->backoff_max_ms, 600000);
	ck_assert_int_eq(h->concurrency, 2);
	ck_assert_int_eq(h->kill_grace_ms, 3000);
	ck_assert_int_eq(h->max_output_bytes, 64 << 10);
	ck_assert_str_eq(h->env, "A=1 B=2");
	ck_assert_str_eq(h->workdir, "/srv");
	ck_assert_int_eq(config_handler(cfg, "sleep")->builtin, BUILTIN_SLEEP);
	ck_assert_int_eq(config_handler(cfg, "echo")->builtin, BUILTIN_ECHO);
	ck_assert_int_eq(config_handler(cfg, "fail")->builtin, BUILTIN_FAIL);
	ck_assert_str_eq(config_builtin_name(BUILTIN_SLEEP), "sleep");
	ck_assert_str_eq(config_builtin_name(BUILTIN_NONE), "");
	config_free(cfg);
}
END_TEST

START_TEST(test_log_levels)
{
	static const struct { const char *name; int level; } levels[] = {
		{"err", 3}, {"warning", 4}, {"notice", 5}, {"info", 6},
		{"debug", 7},
	};
	char text[128];

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		struct config *cfg;
		snprintf(text, sizeof(text), "[server]\nlog_level = %s\n",
		         levels[i].name);
		cfg = load_ok(text);
		ck_assert_int_eq(cfg->server.log_level, levels[i].level);
		config_free(cfg);
	}
	assert_error("[server]\nlog_level = loud\n",
	             NAME ":2: [server] log_level: \"loud\" is not one of: "
	             "err, warning, notice, info, debug");
}
END_TEST

START_TEST(test_inline_comment_and_spaces)
{
	struct config *cfg = load_ok("[server]\n"
	                             "  listen   =   127.0.0.1:8081   ; port\n"
	                             "[workers]\n"
	                             "threads=2\n");

	ck_assert_str_eq(cfg->server.listen, "127.0.0.1:8081");
	ck_assert_int_eq(cfg->workers.threads, 2);
	config_free(cfg);
}
END_TEST

/* ---- sizes ---- */

START_TEST(test_size_values)
{
	static const struct { const char *s; int64_t v; } ok[] = {
		{"512", 512},
		{"0", 0},
		{"1k", 1024},
		{"64k", 65536},
		{"64K", 65536},
		{"1M", 1048576},
		{"1m", 1048576},
		{"2G", 2147483648LL},
		{"1g", 1073741824LL},
		{"10kB", 10240},
		{"3MiB", 3145728},
		{" 7 ", 7},
	};
	static const char *const bad[] = {
		"1X", "", "k", "M", "-1", "1.5M", "1 M", "1MM", "12abc", "0x10",
		"99999999999999999999", "9000000000G",
	};
	int64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = -1;
		ck_assert_msg(config_parse_size(ok[i].s, &v) == 0,
		              "\"%s\" rejected", ok[i].s);
		ck_assert_msg(v == ok[i].v, "\"%s\" gave %lld, want %lld",
		              ok[i].s, (long long)v, (long long)ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 12345;
		ck_assert_msg(config_parse_size(bad[i], &v) == JOBD_EINVAL,
		              "\"%s\" accepted", bad[i]);
		ck_assert_int_eq(v, 12345); /* untouched on error */
	}
}
END_TEST

START_TEST(test_size_in_file)
{
	struct config *cfg = load_ok("[server]\nmax_body = 512k\n"
	                             "[handler.x]\nbuiltin = echo\n"
	                             "max_output = 0\n");

	ck_assert_int_eq(cfg->server.max_body_bytes, 512 * 1024);
	ck_assert_int_eq(config_handler(cfg, "x")->max_output_bytes, 0);
	config_free(cfg);

	assert_error("[server]\nmax_body = 1X\n",
	             NAME ":2: [server] max_body: \"1X\" is not a size "
	             "(e.g. 512k, 1M, 2G)");
	/* 512 bytes parses but is below the minimum of 1024. */
	assert_error("[server]\nmax_body = 512\n",
	             NAME ":2: [server] max_body: \"512\" is out of range "
	             "(1024..1073741824 bytes)");
	assert_error_prefix("[server]\nmax_body = 2G\n",
	                    NAME ":2: [server] max_body: \"2G\" is out of range");
	/* GET /events' ring: at least one event, at most a million. */
	cfg = load_ok("[server]\nevent_buffer = 1\n");
	ck_assert_int_eq(cfg->server.event_buffer, 1);
	config_free(cfg);
	assert_error_prefix("[server]\nevent_buffer = 0\n",
	                    NAME ":2: [server] event_buffer: \"0\" is out of "
	                    "range");
	assert_error_prefix("[server]\nevent_buffer = -1\n",
	                    NAME ":2: [server] event_buffer: \"-1\" is out of "
	                    "range");
	cfg = load_ok("[server]\nevent_buffer = 1000000\n");
	ck_assert_int_eq(cfg->server.event_buffer, 1000000);
	config_free(cfg);
	assert_error_prefix("[server]\nevent_buffer = 1000001\n",
	                    NAME ":2: [server] event_buffer: \"1000001\" is "
	                    "out of range");
	assert_error_prefix("[server]\nevent_buffer = 9223372036854775808\n",
	                    NAME ":2: [server] event_buffer:");
}
END_TEST

/* ---- durations ---- */

START_TEST(test_duration_values)
{
	static const struct { const char *s; int64_t ms; } ok[] = {
		{"250ms", 250},
		{"0ms", 0},
		{"30s", 30000},
		{"5m", 300000},
		{"1h", 3600000},
		{"7d", 604800000LL},
		{"1.5s", 1500},
		{"0.5m", 30000},
		{"1.5h", 5400000},
		{"2", 2000},
		{"0", 0},
		{"0.25", 250},
		{" 3s ", 3000},
	};
	static const char *const bad[] = {
		"", "s", "ms", "abc", "5x", "-1s", "-1", "1s2", "5 s", "1sec",
		"1.5.s", "10y", "nan", "inf", "1e300d",
	};
	int64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = -1;
		ck_assert_msg(config_parse_duration(ok[i].s, &v) == 0,
		              "\"%s\" rejected", ok[i].s);
		ck_assert_msg(v == ok[i].ms, "\"%s\" gave %lld ms, want %lld",
		              ok[i].s, (long long)v, (long long)ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 12345;
		ck_assert_msg(config_parse_duration(bad[i], &v) == JOBD_EINVAL,
		              "\"%s\" accepted", bad[i]);
		ck_assert_int_eq(v, 12345);
	}
}
END_TEST

START_TEST(test_duration_in_file)
{
	struct config *cfg = load_ok("[server]\nmax_wait = 1.5s\n"
	                             "connection_timeout = 0\n"
	                             "[store]\nretention = 1m\n"
	                             "[workers]\nshutdown_grace = 10\n");

	ck_assert_int_eq(cfg->server.max_wait_ms, 1500);
	ck_assert_int_eq(cfg->server.connection_timeout_ms, 0);
	ck_assert_int_eq(cfg->store.retention_ms, 60000);
	ck_assert_int_eq(cfg->workers.shutdown_grace_ms, 10000);
	config_free(cfg);

	assert_error("[server]\nmax_wait = soon\n",
	             NAME ":2: [server] max_wait: \"soon\" is not a duration "
	             "(e.g. 250ms, 30s, 5m, 1h, 7d)");
	/* The bounds are shown in the unit the value was written in. */
	assert_error("[server]\nmax_wait = 2d\n",
	             NAME ":2: [server] max_wait: \"2d\" is out of range "
	             "(0..1d)");
	assert_error("[server]\nmax_wait = 100000000ms\n",
	             NAME ":2: [server] max_wait: \"100000000ms\" is out of "
	             "range (0..86400000ms)");
	assert_error("[handler.a]\nbuiltin = noop\nkill_grace = 2h\n",
	             NAME ":3: [handler.a] kill_grace: \"2h\" is out of range "
	             "(0..1h)");
	assert_error("[handler.a]\nbuiltin = noop\nkill_grace = 61m\n",
	             NAME ":3: [handler.a] kill_grace: \"61m\" is out of range "
	             "(0..60m)");
	assert_error("[store]\nretention = 59s\n",
	             NAME ":2: [store] retention: \"59s\" is out of range "
	             "(60s..315360000s)");
	/* A bare number is seconds; a bound that is not whole shows its
	 * decimals. */
	assert_error("[handler.a]\nbuiltin = noop\ntimeout = 0\n",
	             NAME ":3: [handler.a] timeout: \"0\" is out of range "
	             "(0.001s..86400s)");
	assert_error("[handler.a]\nbuiltin = noop\ntimeout = 2d\n"
	             "[server]\nmax_wait = 1.5d\n",
	             NAME ":3: [handler.a] timeout: \"2d\" is out of range "
	             "(1ms..1d)\n"
	             NAME ":5: [server] max_wait: \"1.5d\" is out of range "
	             "(0..1d)");
	/* retention must be at least a minute. */
	assert_error_prefix("[store]\nretention = 59s\n",
	                    NAME ":2: [store] retention: \"59s\" is out of "
	                    "range");
	/* A handler's timeout must be > 0. */
	assert_error_prefix("[handler.a]\nbuiltin = noop\ntimeout = 0\n",
	                    NAME ":3: [handler.a] timeout: \"0\" is out of "
	                    "range");
}
END_TEST

/* ---- ranges of integers ---- */

START_TEST(test_out_of_range)
{
	assert_error("[workers]\nthreads = 0\n",
	             NAME ":2: [workers] threads: \"0\" is out of range "
	             "(1..1024)");
	assert_error_prefix("[workers]\nthreads = 1025\n",
	                    NAME ":2: [workers] threads: \"1025\" is out of "
	                    "range");
	assert_error_prefix("[server]\nthreads = 65\n",
	                    NAME ":2: [server] threads: \"65\" is out of range");
	assert_error_prefix("[server]\nmax_connections = 15\n",
	                    NAME ":2: [server] max_connections: \"15\" is out "
	                    "of range");
	assert_error_prefix("[store]\nmax_queued = 0\n",
	                    NAME ":2: [store] max_queued: \"0\" is out of range");
	assert_error_prefix("[server]\nper_ip_connections = -1\n",
	                    NAME ":2: [server] per_ip_connections: \"-1\" is "
	                    "out of range");
	assert_error_prefix("[handler.a]\nbuiltin = noop\nmax_attempts = 0\n",
	                    NAME ":3: [handler.a] max_attempts: \"0\" is out of "
	                    "range");
	assert_error_prefix("[handler.a]\nbuiltin = noop\nmax_attempts = 101\n",
	                    NAME ":3: [handler.a] max_attempts: \"101\" is out "
	                    "of range");
	assert_error_prefix("[handler.a]\nbuiltin = noop\nconcurrency = 1025\n",
	                    NAME ":3: [handler.a] concurrency: \"1025\" is out "
	                    "of range");
	assert_error_prefix("[handler.a]\nbuiltin = noop\nkill_grace = 2h\n",
	                    NAME ":3: [handler.a] kill_grace: \"2h\" is out of "
	                    "range");

	/* The bounds themselves are accepted. */
	struct config *cfg = load_ok("[workers]\nthreads = 1024\n"
	                             "[handler.a]\nbuiltin = noop\n"
	                             "max_attempts = 100\nconcurrency = 0\n");
	ck_assert_int_eq(cfg->workers.threads, 1024);
	ck_assert_int_eq(config_handler(cfg, "a")->max_attempts, 100);
	config_free(cfg);
}
END_TEST

START_TEST(test_not_an_integer)
{
	assert_error("[workers]\nthreads = four\n",
	             NAME ":2: [workers] threads: \"four\" is not an integer");
	assert_error_prefix("[workers]\nthreads = 4.0\n",
	                    NAME ":2: [workers] threads: \"4.0\" is not an "
	                    "integer");
	assert_error_prefix("[workers]\nthreads = 99999999999999999999\n",
	                    NAME ":2: [workers] threads:");
}
END_TEST

/* ---- sections and keys ---- */

START_TEST(test_unknown_section)
{
	/* The keys of an unknown section are not reported a second time. */
	assert_error("[server]\nthreads = 1\n[bogus]\nx = 1\ny = 2\n",
	             NAME ":3: [bogus] *: unknown section");
}
END_TEST

START_TEST(test_unknown_key)
{
	assert_error("[server]\nthreads = 1\nthread = 2\n",
	             NAME ":3: [server] thread: unknown key");
	assert_error("[handler.a]\nbuiltin = noop\nretries = 2\n",
	             NAME ":3: [handler.a] retries: unknown key");
	/* [workers] threads exists, [store] threads does not. */
	assert_error("\n[store]\nthreads = 2\n",
	             NAME ":3: [store] threads: unknown key");
}
END_TEST

START_TEST(test_key_outside_section)
{
	const char *err = load_bad("threads = 4\n[server]\n");

	check_format(err, NAME);
	ck_assert_msg(strncmp(err, NAME ":1: [] threads: ", 17) == 0, "got %s",
	              err);
}
END_TEST

START_TEST(test_duplicate_key)
{
	assert_error("[server]\nthreads = 1\nmax_body = 2M\nthreads = 2\n",
	             NAME ":4: [server] threads: set twice (each key may appear "
	             "once)");
	/* Also across two headers of the same section. */
	assert_error("[workers]\nthreads = 1\n[server]\n[workers]\nthreads = 2\n",
	             NAME ":5: [workers] threads: set twice (each key may "
	             "appear once)");
	assert_error("[handler.a]\nbuiltin = noop\ntimeout = 1s\ntimeout = 2s\n",
	             NAME ":4: [handler.a] timeout: set twice (each key may "
	             "appear once)");
	/* The same key in two handlers is not a duplicate. */
	struct config *cfg = load_ok("[handler.a]\nbuiltin = noop\n"
	                             "timeout = 1s\n"
	                             "[handler.b]\nbuiltin = noop\n"
	                             "timeout = 2s\n");
	ck_assert_int_eq(config_handler(cfg, "a")->timeout_ms, 1000);
	ck_assert_int_eq(config_handler(cfg, "b")->timeout_ms, 2000);
	config_free(cfg);
}
END_TEST

START_TEST(test_handler_section_twice)
{
	const char *err = load_bad("[handler.a]\nbuiltin = noop\n"
	                           "[server]\n[handler.a]\n");

	check_format(err, NAME);
	ck_assert_str_eq(err, NAME ":4: [handler.a] NAME: handler section "
	                 "appears twice");
}
END_TEST

/* ---- handlers ---- */

START_TEST(test_handler_without_builtin_or_command)
{
	assert_error("[server]\nthreads = 1\n[handler.a]\ntimeout = 5s\n",
	             NAME ":3: [handler.a] command: a handler needs \"builtin\", "
	             "\"command\" or \"plugin\"");
	/* An empty handler section is a handler without either. */
	assert_error("[handler.empty]\n",
	             NAME ":1: [handler.empty] command: a handler needs "
	             "\"builtin\", \"command\" or \"plugin\"");
}
END_TEST

START_TEST(test_handler_builtin_and_command)
{
	/* Reported on the line of the key that came second. */
	assert_error("\n[handler.a]\nbuiltin = noop\ncommand = /bin/true\n",
	             NAME ":4: [handler.a] command: \"builtin\" and \"command\" "
	             "exclude each other");
	assert_error("\n[handler.a]\ncommand = /bin/true\n\nbuiltin = noop\n",
	             NAME ":5: [handler.a] builtin: \"builtin\" and \"command\" "
	             "exclude each other");
}
END_TEST

/* plugin = PATH.so (DESIGN §4): exclusive with builtin and command, a
 * path, plugin_config only with it; the loading is handler_plugin.c's. */
START_TEST(test_handler_plugin)
{
	struct config *cfg = load_ok("[handler.p]\nplugin = /x/p.so\n"
	                             "plugin_config = a = b; \"c\"\n"
	                             "[handler.q]\nplugin = ./q.so\n");
	const struct handler_conf *h = config_handler(cfg, "p");

	ck_assert_str_eq(h->plugin, "/x/p.so");
	ck_assert_str_eq(h->plugin_config, "a = b; \"c\"");
	ck_assert_int_eq(h->plugin_line, 2);
	ck_assert_ptr_null(h->command);
	ck_assert_ptr_null(h->loaded);
	ck_assert_ptr_null(config_handler(cfg, "q")->plugin_config);
	config_free(cfg);

	assert_error("[handler.a]\ncommand = /bin/true\nplugin = /x/p.so\n",
	             NAME ":3: [handler.a] plugin: \"plugin\" and \"command\" "
	             "exclude each other");
	assert_error("[handler.a]\nplugin = /x/p.so\nbuiltin = noop\n",
	             NAME ":2: [handler.a] plugin: \"plugin\" and \"builtin\" "
	             "exclude each other");
	assert_error("[handler.a]\nplugin = p.so\n",
	             NAME ":2: [handler.a] plugin: must be a path with a '/' "
	             "(a bare name would be searched for like a library)");
	assert_error("[handler.a]\nplugin =\n",
	             NAME ":2: [handler.a] plugin: must not be empty");
	assert_error("[handler.a]\nbuiltin = noop\nplugin_config = x\n",
	             NAME ":3: [handler.a] plugin_config: only for a "
	             "\"plugin\" handler");
}
END_TEST

START_TEST(test_handler_errors_on_key_lines)
{
	assert_error("[handler.a]\ntimeout = 5s\n\ncommand = 'open quote\n",
	             NAME ":4: [handler.a] command: unterminated single quote");
	assert_error("[handler.a]\ncommand = /bin/true\ntimeout = 5s\n"
	             "env = 1X=2\n",
	             NAME ":4: [handler.a] env: \"1X=2\" is not KEY=VALUE");
	assert_error("[handler.a]\nbuiltin = noop\nbackoff_base = 1m\n"
	             "timeout = 1s\nbackoff_max = 1s\n",
	             NAME ":5: [handler.a] backoff_max: smaller than "
	             "backoff_base");
	/* Without a backoff_max line, the backoff_base line. */
	assert_error("[handler.a]\nbuiltin = noop\nbackoff_base = 2h\n",
	             NAME ":3: [handler.a] backoff_base: larger than "
	             "backoff_max (1h)");
}
END_TEST

START_TEST(test_missing_bracket_first_and_alone)
{
	/* Every key after a broken header would be blamed on the section
	 * before it: the broken header is the one error reported. */
	assert_error("[server]\nthreads = 1\n[store\npath = /x\n"
	             "durability = fast\n[workers]\nthreads = 0\n",
	             NAME ":3: [store] *: the section header lacks its "
	             "closing ']'");
	assert_error("[workers]\nthreads = 0\n  [handler.a  \nbuiltin = noop\n",
	             NAME ":3: [handler.a] *: the section header lacks its "
	             "closing ']'");
}
END_TEST

START_TEST(test_handler_bad_builtin)
{
	assert_error("[handler.a]\nbuiltin = nope\n",
	             NAME ":2: [handler.a] builtin: \"nope\" is not one of: "
	             "noop, sleep, echo, fail");
	/* The empty name of BUILTIN_NONE is not a value. */
	assert_error_prefix("[handler.a]\nbuiltin =\n",
	                    NAME ":2: [handler.a] builtin: \"\" is not one of");
}
END_TEST

START_TEST(test_handler_empty_command)
{
	assert_error("[handler.a]\ncommand =\n",
	             NAME ":2: [handler.a] command: must not be empty");
}
END_TEST

START_TEST(test_handler_bad_name)
{
	char text[256];

	assert_error("[handler.bad name!]\nbuiltin = noop\n",
	             NAME ":1: [handler.bad name!] NAME: handler name must "
	             "match [A-Za-z0-9_.-]{1,64}");
	assert_error("[server]\n[handler.]\nbuiltin = noop\n",
	             NAME ":2: [handler.] NAME: handler name must match "
	             "[A-Za-z0-9_.-]{1,64}");
	assert_error_prefix("[handler.a/b]\ncommand = /bin/true\n",
	                    NAME ":1: [handler.a/b] NAME:");

	/* 65 characters are too many. */
	snprintf(text, sizeof(text), "[handler.%065d]\nbuiltin = noop\n", 0);
	assert_error_prefix(text, NAME ":1: [handler.");
	ck_assert_ptr_nonnull(strstr(errbuf, "] NAME: handler name must match"));

	struct config *cfg = load_ok("[handler.A-z_0.9]\nbuiltin = noop\n");
	ck_assert_ptr_nonnull(config_handler(cfg, "A-z_0.9"));
	config_free(cfg);
}
END_TEST

START_TEST(test_handler_long_names)
{
	/* Every name length the rule allows (1..64) must work, keys and all. */
	for (int n = 1; n <= 64; n++) {
		char name[65], text[256];
		struct config *cfg;
		const struct handler_conf *h;

		memset(name, 'h', (size_t)n);
		name[n] = '\0';
		snprintf(text, sizeof(text),
		         "[handler.%s]\nbuiltin = noop\ntimeout = 7s\n", name);
		cfg = load_ok(text);
		ck_assert_uint_eq(cfg->nhandlers, 1);
		h = config_handler(cfg, name);
		ck_assert_msg(h != NULL, "no handler of %d characters", n);
		ck_assert_int_eq(h->builtin, BUILTIN_NOOP);
		ck_assert_int_eq(h->timeout_ms, 7000);
		config_free(cfg);
	}
}
END_TEST

START_TEST(test_backoff_max_below_base)
{
	assert_error_prefix("[handler.a]\nbuiltin = noop\nbackoff_base = 10s\n"
	                    "backoff_max = 1s\n",
	                    NAME ":4: [handler.a] backoff_max: ");
}
END_TEST

START_TEST(test_config_handler_lookup)
{
	struct config *cfg = load_ok("[handler.thumb]\ncommand = /bin/thumb\n"
	                             "[handler.noop]\nbuiltin = noop\n"
	                             "[handler.Noop2]\nbuiltin = fail\n");
	const struct handler_conf *h;

	ck_assert_uint_eq(cfg->nhandlers, 3);
	h = config_handler(cfg, "thumb");
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(h->name, "thumb");
	ck_assert_str_eq(h->command, "/bin/thumb");
	ck_assert_int_eq(h->line, 1);
	h = config_handler(cfg, "noop");
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(h->builtin, BUILTIN_NOOP);
	ck_assert_int_eq(h->line, 3);
	ck_assert_ptr_nonnull(config_handler(cfg, "Noop2"));
	ck_assert_ptr_null(config_handler(cfg, "noop2")); /* case-sensitive */
	ck_assert_ptr_null(config_handler(cfg, "NOOP"));
	ck_assert_ptr_null(config_handler(cfg, "thumbnail"));
	ck_assert_ptr_null(config_handler(cfg, "thu"));
	ck_assert_ptr_null(config_handler(cfg, ""));
	config_free(cfg);
}
END_TEST

/* ---- listen, durability, strings ---- */

START_TEST(test_listen_addresses)
{
	static const char *const ok[] = {
		"127.0.0.1:8080", "0.0.0.0:1", "localhost:65535", "[::1]:8080",
		"[::]:80", "[fe80::1%eth0]:8080",
	};
	static const char *const bad[] = {
		"localhost", "127.0.0.1", "127.0.0.1:", ":8080",
		"127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80x", "::1:8080",
		"[::1]8080", "[::1:8080", "[::1]:",
	};
	char text[256], want[512];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text), "[server]\nlisten = %s\n", ok[i]);
		struct config *cfg = load_ok(text);
		ck_assert_str_eq(cfg->server.listen, ok[i]);
		config_free(cfg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[server]\n\nlisten = %s\n", bad[i]);
		snprintf(want, sizeof(want),
		         NAME ":3: [server] listen: \"%s\" is not host:port "
		         "(e.g. 127.0.0.1:8080 or [::1]:8080)", bad[i]);
		assert_error(text, want);
	}
}
END_TEST

START_TEST(test_durability_enum)
{
	struct config *cfg = load_ok("[store]\ndurability = full\n");
	ck_assert_int_eq(cfg->store.durability, DURABILITY_FULL);
	config_free(cfg);
	cfg = load_ok("[store]\ndurability = normal\n");
	ck_assert_int_eq(cfg->store.durability, DURABILITY_NORMAL);
	config_free(cfg);

	assert_error("[store]\ndurability = fast\n",
	             NAME ":2: [store] durability: \"fast\" is not one of: "
	             "full, normal");
	assert_error_prefix("[store]\ndurability = FULL\n",
	                    NAME ":2: [store] durability: \"FULL\" is not one "
	                    "of");
}
END_TEST

START_TEST(test_empty_string_value)
{
	assert_error("[store]\npath =\n",
	             NAME ":2: [store] path: must not be empty");
}
END_TEST

START_TEST(test_tls_cert_without_key)
{
	/* The error names the line of the key that was set, not line 0. */
	const char *err = load_bad("[server]\nthreads = 1\n"
	                           "tls_cert = /etc/jobd/cert.pem\n");

	check_format(err, NAME);
	ck_assert_int_eq(count_lines(err), 1);
	ck_assert_msg(strncmp(err, NAME ":3: [server] tls_", 17) == 0,
	              "expected \"%s:3: [server] tls_...\", got \"%s\"", NAME,
	              err);
}
END_TEST

/* ---- line numbers and several errors ---- */

START_TEST(test_line_numbers)
{
	assert_error("; jobd\n"
	             "\n"
	             "# comment\n"
	             "[server]\n"
	             "listen = 127.0.0.1:8080   ; inline\n"
	             "\n"
	             "[workers]\n"
	             "; threads\n"
	             "threads = many\n",
	             NAME ":9: [workers] threads: \"many\" is not an integer");
	/* CRLF line ends count the same. */
	assert_error("[server]\r\n\r\n[workers]\r\nthreads = x\r\n",
	             NAME ":4: [workers] threads: \"x\" is not an integer");
	/* No newline at the end of the file. */
	assert_error("[workers]\nthreads = 4\nthreads = 5",
	             NAME ":3: [workers] threads: set twice (each key may appear "
	             "once)");
}
END_TEST

START_TEST(test_line_numbers_after_long_line)
{
	/* A line longer than libinih's first buffer must still count as one. */
	char text[4096];
	char cmd[1001];

	memset(cmd, 'a', sizeof(cmd) - 1);
	cmd[0] = '/';
	cmd[sizeof(cmd) - 1] = '\0';
	snprintf(text, sizeof(text),
	         "[handler.a]\ncommand = %s\ntimeout = never\n", cmd);
	assert_error(text, NAME ":3: [handler.a] timeout: \"never\" is not a "
	             "duration (e.g. 250ms, 30s, 5m, 1h, 7d)");

	/* And the long value itself is kept whole. */
	snprintf(text, sizeof(text), "[handler.a]\ncommand = %s\n", cmd);
	struct config *cfg = load_ok(text);
	ck_assert_str_eq(config_handler(cfg, "a")->command, cmd);
	config_free(cfg);
}
END_TEST

START_TEST(test_several_errors_all_reported)
{
	const char *err = load_bad("[server]\n"                    /* 1 */
	                           "listen = nowhere\n"            /* 2 */
	                           "max_body = 1X\n"               /* 3 */
	                           "[store]\n"                     /* 4 */
	                           "durability = sometimes\n"      /* 5 */
	                           "colour = blue\n"               /* 6 */
	                           "[nope]\n"                      /* 7 */
	                           "[workers]\n"                   /* 8 */
	                           "threads = 0\n"                 /* 9 */
	                           "threads = 1\n"                 /* 10 */
	                           "[handler.x]\n"                 /* 11 */
	                           "builtin = noop\n"              /* 12 */
	                           "timeout = -1s\n");             /* 13 */

	check_format(err, NAME);
	ck_assert_str_eq(err,
	                 NAME ":2: [server] listen: \"nowhere\" is not host:port "
	                 "(e.g. 127.0.0.1:8080 or [::1]:8080)\n"
	                 NAME ":3: [server] max_body: \"1X\" is not a size "
	                 "(e.g. 512k, 1M, 2G)\n"
	                 NAME ":5: [store] durability: \"sometimes\" is not one "
	                 "of: full, normal\n"
	                 NAME ":6: [store] colour: unknown key\n"
	                 NAME ":7: [nope] *: unknown section\n"
	                 NAME ":9: [workers] threads: \"0\" is out of range "
	                 "(1..1024)\n"
	                 NAME ":10: [workers] threads: set twice (each key may "
	                 "appear once)\n"
	                 NAME ":13: [handler.x] timeout: \"-1s\" is not a "
	                 "duration (e.g. 250ms, 30s, 5m, 1h, 7d)");
}
END_TEST

START_TEST(test_value_error_and_handler_error_both_reported)
{
	/* An error in [server] must not hide an unrelated handler error. */
	const char *err = load_bad("[server]\n"
	                           "max_body = 1X\n"
	                           "[handler.lonely]\n"
	                           "timeout = 5s\n");

	check_format(err, NAME);
	ck_assert_int_eq(count_lines(err), 2);
	ck_assert_ptr_nonnull(strstr(err, NAME ":2: [server] max_body: "));
	ck_assert_ptr_nonnull(strstr(err, NAME ":3: [handler.lonely] command: "
	                             "a handler needs"));
}
END_TEST

START_TEST(test_syntax_error)
{
	const char *err = load_bad("[server]\nthreads = 1\nthis is not ini\n");

	check_format(err, NAME);
	ck_assert_int_eq(count_lines(err), 1);
	ck_assert_msg(strncmp(err, NAME ":3: [", 9) == 0, "got %s", err);
	ck_assert_ptr_nonnull(strstr(err, "syntax error"));
}
END_TEST

START_TEST(test_syntax_error_and_value_error_both_reported)
{
	const char *err = load_bad("[workers]\n"
	                           "threads = 0\n"
	                           "this is not ini\n");

	check_format(err, NAME);
	ck_assert_ptr_nonnull(strstr(err, NAME ":2: [workers] threads: "));
	ck_assert_msg(strstr(err, NAME ":3: ") != NULL &&
	              strstr(err, "syntax error") != NULL,
	              "the syntax error on line 3 is not reported:\n%s", err);
}
END_TEST

START_TEST(test_small_error_buffer)
{
	struct config *cfg = NULL;
	char small[24];
	int rc;

	memset(small, 'x', sizeof(small));
	rc = config_load_string(NAME, "[workers]\nthreads = 0\nthreads = 1\n",
	                        &cfg, small, sizeof(small));
	ck_assert_int_eq(rc, JOBD_EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(memchr(small, '\0', sizeof(small)));
	ck_assert_int_eq(strncmp(small, NAME ":2: [workers]", 10), 0);

	/* No buffer at all is fine too. */
	rc = config_load_string(NAME, "[workers]\nthreads = 0\n", &cfg, NULL, 0);
	ck_assert_int_eq(rc, JOBD_EINVAL);
	ck_assert_ptr_null(cfg);
}
END_TEST

/* ---- files ---- */

START_TEST(test_load_file)
{
	char path[] = "/tmp/jobd-test-config-XXXXXX";
	const char *text = "[server]\nlisten = 127.0.0.1:9999\n"
	                   "[handler.noop]\nbuiltin = noop\n";
	struct config *cfg = NULL;
	int fd, rc;
	FILE *f;

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);

	errbuf[0] = '\0';
	rc = config_load(path, &cfg, errbuf, sizeof(errbuf));
	ck_assert_msg(rc == 0, "config_load: %d %s", rc, errbuf);
	ck_assert_str_eq(cfg->file, path);
	ck_assert_str_eq(cfg->server.listen, "127.0.0.1:9999");
	ck_assert_ptr_nonnull(config_handler(cfg, "noop"));
	ck_assert_int_eq(config_handler(cfg, "noop")->line, 3);
	config_free(cfg);

	/* Errors name the file's path. */
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("[server]\n\nmax_wait = forever\n[handler.x]\nbuiltin = x\n", f);
	ck_assert_int_eq(fclose(f), 0);
	cfg = NULL;
	rc = config_load(path, &cfg, errbuf, sizeof(errbuf));
	unlink(path);
	ck_assert_int_eq(rc, JOBD_EINVAL);
	ck_assert_ptr_null(cfg);
	check_format(errbuf, path);
	char want[1024];
	snprintf(want, sizeof(want),
	         "%s:3: [server] max_wait: \"forever\" is not a duration (e.g. "
	         "250ms, 30s, 5m, 1h, 7d)\n"
	         "%s:5: [handler.x] builtin: \"x\" is not one of: noop, sleep, "
	         "echo, fail", path, path);
	ck_assert_str_eq(errbuf, want);
}
END_TEST

START_TEST(test_load_missing_file)
{
	const char *path = "/nonexistent/jobd/missing.conf";
	struct config *cfg = NULL;
	int rc;

	errbuf[0] = '\0';
	rc = config_load(path, &cfg, errbuf, sizeof(errbuf));
	ck_assert_int_eq(rc, JOBD_ESYS);
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(strstr(errbuf, path));
	ck_assert_ptr_nonnull(strstr(errbuf, "cannot open"));
	ck_assert_ptr_nonnull(strstr(errbuf, strerror(ENOENT)));
}
END_TEST

START_TEST(test_config_free_null)
{
	config_free(NULL);
}
END_TEST

START_TEST(test_write_reference)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	config_write_reference(f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_ptr_nonnull(strstr(buf, "### `[server]`"));
	ck_assert_ptr_nonnull(strstr(buf, "### `[handler.NAME]`"));
	ck_assert_ptr_nonnull(strstr(buf, "| `max_body` | `1M` |"));
	ck_assert_ptr_nonnull(strstr(buf, "| `tokens_file` | (unset) |"));
	free(buf);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_defaults_empty_file);
	tcase_add_test(tc, test_defaults_comments_and_blank_lines);
	tcase_add_test(tc, test_handler_defaults);
	tcase_add_test(tc, test_handler_rate);
	tcase_add_test(tc, test_every_key_parses);
	tcase_add_test(tc, test_log_levels);
	tcase_add_test(tc, test_inline_comment_and_spaces);
	tcase_add_test(tc, test_size_values);
	tcase_add_test(tc, test_size_in_file);
	tcase_add_test(tc, test_duration_values);
	tcase_add_test(tc, test_duration_in_file);
	tcase_add_test(tc, test_out_of_range);
	tcase_add_test(tc, test_not_an_integer);
	tcase_add_test(tc, test_unknown_section);
	tcase_add_test(tc, test_unknown_key);
	tcase_add_test(tc, test_key_outside_section);
	tcase_add_test(tc, test_duplicate_key);
	tcase_add_test(tc, test_handler_section_twice);
	tcase_add_test(tc, test_handler_without_builtin_or_command);
	tcase_add_test(tc, test_handler_builtin_and_command);
	tcase_add_test(tc, test_handler_plugin);
	tcase_add_test(tc, test_handler_errors_on_key_lines);
	tcase_add_test(tc, test_missing_bracket_first_and_alone);
	tcase_add_test(tc, test_handler_bad_builtin);
	tcase_add_test(tc, test_handler_empty_command);
	tcase_add_test(tc, test_handler_bad_name);
	tcase_add_test(tc, test_handler_long_names);
	tcase_add_test(tc, test_backoff_max_below_base);
	tcase_add_test(tc, test_config_handler_lookup);
	tcase_add_test(tc, test_listen_addresses);
	tcase_add_test(tc, test_durability_enum);
	tcase_add_test(tc, test_empty_string_value);
	tcase_add_test(tc, test_tls_cert_without_key);
	tcase_add_test(tc, test_line_numbers);
	tcase_add_test(tc, test_line_numbers_after_long_line);
	tcase_add_test(tc, test_several_errors_all_reported);
	tcase_add_test(tc, test_value_error_and_handler_error_both_reported);
	tcase_add_test(tc, test_syntax_error);
	tcase_add_test(tc, test_syntax_error_and_value_error_both_reported);
	tcase_add_test(tc, test_small_error_buffer);
	tcase_add_test(tc, test_load_file);
	tcase_add_test(tc, test_load_missing_file);
	tcase_add_test(tc, test_config_free_null);
	tcase_add_test(tc, test_write_reference);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures != 0;
}
