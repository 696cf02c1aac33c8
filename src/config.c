/*
 * config.c - the configuration table and its INI loader (libinih).
 *
 * Every key lives in one table below: section, key, type, offset in its
 * struct, default (as text, parsed like a user value), bounds and a one-line
 * doc.  The same table applies defaults, parses values, checks bounds, and
 * writes the README's reference.  libinih does the INI parsing; we only feed
 * it lines through a reader that counts them so that every error can name
 * its line.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "callback.h"
#include "config.h"
#include "cron.h"
#include "err.h"
#include "job.h"
#include "log.h"
#include "rate.h"
#include "shellwords.h"
#include "submit.h"

enum conf_type { T_STR, T_SIZE, T_DUR, T_INT, T_ENUM, T_LISTEN };

struct conf_key {
	const char *section; /* "handler" for [handler.NAME] sections,
	                        "schedule" for [schedule.NAME] */
	const char *key;
	enum conf_type type;
	size_t offset;       /* in struct config, handler_conf or
	                        schedule_conf */
	const char *def;     /* default as text; NULL = unset */
	int64_t min, max;
	const char *const *names; /* T_ENUM: value names, index = value */
	const char *doc;
};

static const char *const durability_names[] = {"full", "normal", NULL};
static const char *const builtin_names[] = {"", "noop", "sleep", "echo",
                                            "fail", NULL};
static const char *const tz_names[] = {"UTC", "local", NULL};
static const char *const catch_up_names[] = {"one", "skip", NULL};
static const char *const level_names[] = {"", "", "", "err", "warning",
                                          "notice", "info", "debug", NULL};

#define C(f) offsetof(struct config, f)
#define H(f) offsetof(struct handler_conf, f)
#define S(f) offsetof(struct schedule_conf, f)
#define DAY (86400LL * 1000)

static const struct conf_key conf_keys[] = {
	{"server", "listen", T_LISTEN, C(server.listen), "127.0.0.1:8080", 0, 0,
	 NULL, "address:port to listen on (IPv6 as [::1]:8080; [::]:PORT "
	 "takes IPv4 too); ignored when systemd passes a socket (LISTEN_FDS)"},
	{"server", "max_body", T_SIZE, C(server.max_body_bytes), "1M", 1024,
	 1LL << 30, NULL, "largest accepted request body (413 above)"},
	{"server", "max_batch", T_INT, C(server.max_batch), "1000", 1,
	 1000000, NULL, "most jobs in one POST /jobs array (422 above)"},
	{"server", "max_wait", T_DUR, C(server.max_wait_ms), "60s", 0,
	 DAY, NULL, "cap on ?wait= / Prefer: wait= long-polls"},
	{"server", "max_waiters", T_INT, C(server.max_waiters), "10000", 0,
	 1000000, NULL, "most suspended waiting requests; beyond, waits answer "
	 "at once"},
	{"server", "event_buffer", T_INT, C(server.event_buffer), "10000", 1,
	 1000000, NULL, "events GET /events keeps for Last-Event-ID resumes"},
	{"server", "threads", T_INT, C(server.threads), "0", 0, 64, NULL,
	 "HTTP threads (0 = one per CPU)"},
	{"server", "max_connections", T_INT, C(server.max_connections), "4096",
	 16, 1000000, NULL, "most open client connections"},
	{"server", "per_ip_connections", T_INT, C(server.per_ip_connections),
	 "256", 0, 1000000, NULL, "most connections from one IP (0 = no "
	 "limit); more are refused at once"},
	{"server", "connection_timeout", T_DUR, C(server.connection_timeout_ms),
	 "60s", 0, DAY, NULL, "idle or slow connections are closed after this "
	 "(0 = never); any byte received restarts it"},
	{"server", "header_timeout", T_DUR, C(server.header_timeout_ms), "20s",
	 0, DAY, NULL, "a connection that has not sent a complete request "
	 "header this long after it opened (or after its previous answer) is "
	 "closed, however slowly it trickles (0 = never)"},
	{"server", "tls_cert", T_STR, C(server.tls_cert), NULL, 0, 0, NULL,
	 "PEM certificate file: serve HTTPS (with tls_key)"},
	{"server", "tls_key", T_STR, C(server.tls_key), NULL, 0, 0, NULL,
	 "PEM private key file for tls_cert; refused when its group or "
	 "others may read it"},
	{"server", "log_level", T_ENUM, C(server.log_level), "info", 3, 7,
	 level_names, "err | warning | notice | info | debug"},
	{"store", "path", T_STR, C(store.path), "/var/lib/jobd/jobs.db", 0, 0,
	 NULL, "SQLite database file, or a postgresql:// URI (libpq)"},
	{"store", "durability", T_ENUM, C(store.durability), "full", 0, 1,
	 durability_names, "full: fsync every commit (survives power loss); "
	 "normal: WAL without fsync per commit (survives process crashes)"},
	{"store", "max_queued", T_INT, C(store.max_queued), "1000000", 1,
	 1000000000, NULL, "queued jobs beyond which POST /jobs answers 503"},
	{"store", "pool", T_INT, C(store.pool), "4", 1, 256, NULL,
	 "PostgreSQL: reader connections (GET /jobs, lists, counts)"},
	{"store", "node", T_STR, C(store.node), NULL, 0, 0, NULL,
	 "PostgreSQL: this daemon's node name (default: the host name); one "
	 "live jobd per name"},
	{"store", "lease", T_DUR, C(store.lease_ms), "30s", 1000, DAY, NULL,
	 "PostgreSQL: a node silent this long is dead and its running jobs "
	 "run elsewhere"},
	{"store", "retention", T_DUR, C(store.retention_ms), "7d", 60000,
	 3650 * DAY, NULL, "finished jobs are deleted after this"},
	{"workers", "threads", T_INT, C(workers.threads), "4", 1, 1024, NULL,
	 "worker threads running attempts"},
	{"workers", "shutdown_grace", T_DUR, C(workers.shutdown_grace_ms), "30s",
	 0, DAY, NULL, "on SIGTERM, how long running attempts may finish "
	 "before they are stopped and requeued"},
	{"auth", "tokens_file", T_STR, C(auth.tokens_file), NULL, 0, 0, NULL,
	 "file of name:token lines; unset = no authentication"},
	{"callbacks", "secret", T_STR, C(callbacks.secret), NULL, 0, 0, NULL,
	 "whsec_ + base64 key that signs callbacks (Standard Webhooks); "
	 "unset = callbacks are sent unsigned"},
	{"callbacks", "allow", T_STR, C(callbacks.allow), NULL, 0, 0, NULL,
	 "space-separated URL prefixes a callback_url must start with "
	 "(unset = every callback_url is refused)"},
	{"callbacks", "max_attempts", T_INT, C(callbacks.max_attempts), "10",
	 1, 100, NULL, "deliveries of a callback tried before it is failed"},
	{"callbacks", "timeout", T_DUR, C(callbacks.timeout_ms), "10s", 1, DAY,
	 NULL, "a delivery without an answer after this failed"},
	{"callbacks", "backoff_base", T_DUR, C(callbacks.backoff_base_ms), "1s",
	 0, DAY, NULL, "retry n of a callback waits random(0, backoff_base * "
	 "2^(n-1)), at most 1h"},

	{"handler", "builtin", T_ENUM, H(builtin), NULL, 1, 4, builtin_names,
	 "noop | sleep | echo | fail (exclusive with command and plugin)"},
	{"handler", "command", T_STR, H(command), NULL, 0, 0, NULL,
	 "program and arguments, split like shell words, run without a shell"},
	{"handler", "plugin", T_STR, H(plugin), NULL, 0, 0, NULL,
	 "path of a plugin shared object (a '/' in it; see \"Writing a "
	 "plugin\"), loaded at start-up; exclusive with builtin and command"},
	{"handler", "plugin_config", T_STR, H(plugin_config), NULL, 0, 0, NULL,
	 "text handed to the plugin's init (plugin only)"},
	{"handler", "timeout", T_DUR, H(timeout_ms), "60s", 1, DAY, NULL,
	 "an attempt is stopped after this (per-job \"timeout\" overrides)"},
	{"handler", "max_attempts", T_INT, H(max_attempts), "3", 1, 100, NULL,
	 "attempts before a job fails (per-job \"max_attempts\" overrides)"},
	{"handler", "backoff_base", T_DUR, H(backoff_base_ms), "1s", 0, DAY, NULL,
	 "retry n waits random(0, backoff_base * 2^(n-1))"},
	{"handler", "backoff_max", T_DUR, H(backoff_max_ms), "1h", 0, 30 * DAY,
	 NULL, "cap of the retry delay"},
	{"handler", "concurrency", T_INT, H(concurrency), "0", 0, 1024, NULL,
	 "most attempts of this type running at once (0 = up to "
	 "workers.threads)"},
	{"handler", "rate", T_STR, H(rate), NULL, 0, 0, NULL,
	 "most attempts started per period by this daemon: N/s, N/m or N/h "
	 "(a token bucket of one token: starts spaced evenly; unset = no "
	 "limit)"},
	{"handler", "kill_grace", T_DUR, H(kill_grace_ms), "5s", 0, 3600000, NULL,
	 "after SIGTERM, wait this long before SIGKILL"},
	{"handler", "max_output", T_SIZE, H(max_output_bytes), "1M", 0,
	 1LL << 30, NULL, "stdout bytes kept as the result (exec); a larger "
	 "plugin result is dropped"},
	{"handler", "env", T_STR, H(env), NULL, 0, 0, NULL,
	 "extra environment, KEY=VALUE words (exec)"},
	{"handler", "workdir", T_STR, H(workdir), NULL, 0, 0, NULL,
	 "working directory of the command (exec; default: jobd's own)"},

	{"schedule", "cron", T_STR, S(cron), NULL, 0, 0, NULL,
	 "five cron fields (minute hour day month weekday; names, ranges, "
	 "steps, lists) or @hourly @daily @weekly @monthly @yearly; "
	 "exclusive with every"},
	{"schedule", "every", T_DUR, S(every_ms), NULL, 1000, 366 * DAY, NULL,
	 "a tick every this long (whole seconds), aligned to the Unix epoch "
	 "(15m ticks at :00 :15 :30 :45 UTC); exclusive with cron"},
	{"schedule", "type", T_STR, S(type), NULL, 0, 0, NULL,
	 "job type of each tick's job: a configured [handler.NAME]"},
	{"schedule", "payload", T_STR, S(payload), "null", 0, 0, NULL,
	 "the jobs' payload, JSON text"},
	{"schedule", "priority", T_INT, S(priority), "0", -100, 100, NULL,
	 "the jobs' priority"},
	{"schedule", "timezone", T_ENUM, S(timezone), "UTC", 0, 1, tz_names,
	 "UTC | local: the time zone cron is read in (every ignores it)"},
	{"schedule", "catch_up", T_ENUM, S(catch_up), "one", 0, 1,
	 catch_up_names, "one | skip: ticks missed while no jobd ran "
	 "schedules make one job, or none"},
};

#define NKEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))

/* ---- value parsers ---- */

int
config_parse_size(const char *s, int64_t *out)
{
	char *end;
	unsigned long long v;
	int64_t mult = 1;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return JOBD_EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return JOBD_EINVAL;
	switch (*end) {
	case 'k': case 'K': mult = 1LL << 10; end++; break;
	case 'm': case 'M': mult = 1LL << 20; end++; break;
	case 'g': case 'G': mult = 1LL << 30; end++; break;
	default: break;
	}
	if (mult > 1 && (end[0] == 'i' && end[1] == 'B'))
		end += 2;
	else if (*end == 'B' || *end == 'b')
		end++;
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0')
		return JOBD_EINVAL;
	if (v > (unsigned long long)(INT64_MAX / mult))
		return JOBD_EINVAL;
	*out = (int64_t)v * mult;
	return 0;
}

int
config_parse_duration(const char *s, int64_t *out_ms)
{
	char *end;
	double v, mult = 1000.0;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s) && *s != '.')
		return JOBD_EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || !isfinite(v) || v < 0)
		return JOBD_EINVAL;
	if (strncmp(end, "ms", 2) == 0) {
		mult = 1.0;
		end += 2;
	} else if (*end == 's') {
		end++;
	} else if (*end == 'm') {
		mult = 60e3;
		end++;
	} else if (*end == 'h') {
		mult = 3600e3;
		end++;
	} else if (*end == 'd') {
		mult = 86400e3;
		end++;
	}
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0')
		return JOBD_EINVAL;
	v *= mult;
	if (v > 9.0e15)
		return JOBD_EINVAL;
	*out_ms = (int64_t)llround(v);
	return 0;
}

static int
parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s)
		return JOBD_EINVAL;
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0')
		return JOBD_EINVAL;
	*out = v;
	return 0;
}

static int
parse_listen(const char *s)
{
	const char *colon, *p;
	long port;
	char *end;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return JOBD_EINVAL;
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || colon == s)
			return JOBD_EINVAL;
		for (p = s; p < colon; p++)
			if (*p == ':')
				return JOBD_EINVAL; /* bare IPv6 needs brackets */
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || port < 0 ||
	    port > 65535)
		return JOBD_EINVAL;
	return 0;
}

/* Durations' units, largest first: suffix and length in ms. */
static const struct { const char *suffix; int64_t ms; } dur_units[] = {
	{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
};
#define NDUR_UNITS (sizeof(dur_units) / sizeof(dur_units[0]))

/* The unit a duration was written in (index in dur_units; a bare number
 * is seconds). */
static size_t
dur_unit_of(const char *value)
{
	const char *p = value;
	size_t n;

	while (isspace((unsigned char)*p) || isdigit((unsigned char)*p) ||
	       *p == '.')
		p++;
	n = strcspn(p, " \t");
	for (size_t i = 0; i < NDUR_UNITS; i++)
		if (n > 0 && strlen(dur_units[i].suffix) == n &&
		    strncmp(p, dur_units[i].suffix, n) == 0)
			return i;
	return 3; /* "s" */
}

/*
 * Writes ms in dur_units[unit] ("1d", "0.001s"); when that would take more
 * than three decimals, in the largest unit that divides it ("1ms").
 */
static void
format_duration(char *buf, size_t len, int64_t ms, size_t unit)
{
	int64_t u = dur_units[unit].ms;

	if (ms == 0) {
		snprintf(buf, len, "0");
	} else if (ms % u == 0) {
		snprintf(buf, len, "%lld%s", (long long)(ms / u),
		         dur_units[unit].suffix);
	} else if ((ms * 1000) % u == 0) {
		int64_t milli = ms * 1000 / u; /* thousandths of the unit */
		char frac[8];
		int fl = snprintf(frac, sizeof(frac), "%03lld",
		                  (long long)(milli % 1000));
		while (fl > 1 && frac[fl - 1] == '0')
			frac[--fl] = '\0';
		snprintf(buf, len, "%lld.%s%s", (long long)(milli / 1000), frac,
		         dur_units[unit].suffix);
	} else {
		size_t i = 0;
		while (ms % dur_units[i].ms != 0)
			i++;
		snprintf(buf, len, "%lld%s", (long long)(ms / dur_units[i].ms),
		         dur_units[i].suffix);
	}
}

/* ---- loading ---- */

struct loader {
	const char *name;      /* file name for messages */
	struct config *cfg;
	int line;              /* line the reader returned last */
	char *errs;            /* all error lines */
	size_t errlen, errused;
	int nerrs;
	/* keys seen, to reject duplicates: "section\nkey" and its line */
	struct seen { char *tag; int line; } *seen;
	size_t nseen, capseen;
	char cur_section[256];  /* the whole name of the current section */
	char **bad;             /* sections that already have an error */
	size_t nbad;
	int broken_line;        /* first "[section" header without ']' */
	char broken_name[64];   /* its section name, for the message */
	char *linebuf;          /* the line the reader read last */
	size_t linecap, linelen;
	size_t linepos;         /* bytes of it already handed to libinih */
	/* reader state */
	FILE *file;
	const char *text;
	size_t text_pos;
};

static void
loader_error(struct loader *ld, int line, const char *section,
             const char *key, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void
loader_error(struct loader *ld, int line, const char *section,
             const char *key, const char *fmt, ...)
{
	char reason[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	ld->nerrs++;
	char **bad = realloc(ld->bad, (ld->nbad + 1) * sizeof(*bad));
	if (bad != NULL) {
		ld->bad = bad;
		if ((bad[ld->nbad] = strdup(section)) != NULL)
			ld->nbad++;
	}
	if (ld->errs == NULL || ld->errused >= ld->errlen)
		return;
	n = snprintf(ld->errs + ld->errused, ld->errlen - ld->errused,
	             "%s%s:%d: [%s] %s: %s", ld->errused ? "\n" : "", ld->name,
	             line, section, key, reason);
	if (n > 0)
		ld->errused += (size_t)n;
	if (ld->errused > ld->errlen)
		ld->errused = ld->errlen;
}

static const struct conf_key *
find_key(const char *section, const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(conf_keys[i].section, section) == 0 &&
		    strcmp(conf_keys[i].key, key) == 0)
			return &conf_keys[i];
	return NULL;
}

/* Sets one value; on failure writes a reason into why and returns < 0. */
static int
set_value(const struct conf_key *k, void *base, const char *value, char *why,
          size_t whylen)
{
	char *field = (char *)base + k->offset;
	int64_t v = 0;

	switch (k->type) {
	case T_STR:
	case T_LISTEN:
		if (k->type == T_LISTEN && parse_listen(value) != 0)
			return jobd_seterr(why, whylen, JOBD_EINVAL,
			                   "\"%s\" is not host:port "
			                   "(e.g. 127.0.0.1:8080 or [::1]:8080)",
			                   value);
		if (value[0] == '\0')
			return jobd_seterr(why, whylen, JOBD_EINVAL,
			                   "must not be empty");
		{
			char *dup = strdup(value);
			if (dup == NULL)
				return jobd_seterr(why, whylen, JOBD_ENOMEM,
				                   "out of memory");
			free(*(char **)field);
			*(char **)field = dup;
		}
		return 0;
	case T_SIZE:
		if (config_parse_size(value, &v) != 0)
			return jobd_seterr(why, whylen, JOBD_EINVAL,
			                   "\"%s\" is not a size (e.g. 512k, "
			                   "1M, 2G)", value);
		break;
	case T_DUR:
		if (config_parse_duration(value, &v) != 0)
			return jobd_seterr(why, whylen, JOBD_EINVAL,
			                   "\"%s\" is not a duration (e.g. 250ms, "
			                   "30s, 5m, 1h, 7d)", value);
		break;
	case T_INT:
		if (parse_int(value, &v) != 0)
			return jobd_seterr(why, whylen, JOBD_EINVAL,
			                   "\"%s\" is not an integer", value);
		break;
	case T_ENUM: {
		int found = -1;
		for (int i = 0; k->names[i] != NULL; i++)
			if (k->names[i][0] != '\0' &&
			    strcmp(k->names[i], value) == 0)
				found = i;
		if (found < 0) {
			char list[256] = "";
			for (int i = 0; k->names[i] != NULL; i++) {
				if (k->names[i][0] == '\0')
					continue;
				if (list[0])
					strncat(list, ", ",
					        sizeof(list) - strlen(list) - 1);
				strncat(list, k->names[i],
				        sizeof(list) - strlen(list) - 1);
			}
			return jobd_seterr(why, whylen, JOBD_EINVAL,
			                   "\"%s\" is not one of: %s", value,
			                   list);
		}
		*(int64_t *)field = found;
		return 0;
	}
	}
	if ((v < k->min || v > k->max) && k->type == T_DUR) {
		char lo[32], hi[32];
		size_t unit = dur_unit_of(value);
		format_duration(lo, sizeof(lo), k->min, unit);
		format_duration(hi, sizeof(hi), k->max, unit);
		return jobd_seterr(why, whylen, JOBD_ERANGE,
		                   "\"%s\" is out of range (%s..%s)", value, lo,
		                   hi);
	}
	if (v < k->min || v > k->max)
		return jobd_seterr(why, whylen, JOBD_ERANGE,
		                   "\"%s\" is out of range (%lld..%lld%s)", value,
		                   (long long)k->min, (long long)k->max,
		                   k->type == T_DUR ? " ms" :
		                   k->type == T_SIZE ? " bytes" : "");
	*(int64_t *)field = v;
	return 0;
}

static void
apply_defaults(void *base, const char *section)
{
	char why[256];

	for (size_t i = 0; i < NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];
		if (strcmp(k->section, section) != 0 || k->def == NULL)
			continue;
		int rc = set_value(k, base, k->def, why, sizeof(why));
		assert(rc == 0); /* the table's defaults are valid */
		(void)rc;
	}
}

static bool
is_known_section(const char *section)
{
	return strcmp(section, "server") == 0 || strcmp(section, "store") == 0 ||
	       strcmp(section, "workers") == 0 || strcmp(section, "auth") == 0 ||
	       strcmp(section, "callbacks") == 0;
}

static struct handler_conf *
get_handler(struct loader *ld, const char *name, int line)
{
	struct config *cfg = ld->cfg;
	struct handler_conf *h;

	for (size_t i = 0; i < cfg->nhandlers; i++)
		if (strcmp(cfg->handlers[i].name, name) == 0)
			return &cfg->handlers[i];
	h = realloc(cfg->handlers, (cfg->nhandlers + 1) * sizeof(*h));
	if (h == NULL)
		return NULL;
	cfg->handlers = h;
	h = &cfg->handlers[cfg->nhandlers];
	memset(h, 0, sizeof(*h));
	h->name = strdup(name);
	if (h->name == NULL)
		return NULL;
	h->line = line;
	cfg->nhandlers++;
	apply_defaults(h, "handler");
	return h;
}

static struct schedule_conf *
get_schedule(struct loader *ld, const char *name, int line)
{
	struct config *cfg = ld->cfg;
	struct schedule_conf *sc;

	for (size_t i = 0; i < cfg->nschedules; i++)
		if (strcmp(cfg->schedules[i].name, name) == 0)
			return &cfg->schedules[i];
	sc = realloc(cfg->schedules, (cfg->nschedules + 1) * sizeof(*sc));
	if (sc == NULL)
		return NULL;
	cfg->schedules = sc;
	sc = &cfg->schedules[cfg->nschedules];
	memset(sc, 0, sizeof(*sc));
	sc->name = strdup(name);
	if (sc->name == NULL)
		return NULL;
	sc->line = line;
	cfg->nschedules++;
	apply_defaults(sc, "schedule");
	return sc;
}

static bool
seen_before(struct loader *ld, const char *section, const char *key)
{
	size_t n = strlen(section) + strlen(key) + 2;
	char *tag = malloc(n);

	if (tag == NULL)
		return false;
	snprintf(tag, n, "%s\n%s", section, key);
	for (size_t i = 0; i < ld->nseen; i++)
		if (strcmp(ld->seen[i].tag, tag) == 0) {
			free(tag);
			return true;
		}
	if (ld->nseen == ld->capseen) {
		size_t cap = ld->capseen ? ld->capseen * 2 : 32;
		struct seen *s = realloc(ld->seen, cap * sizeof(*s));
		if (s == NULL) {
			free(tag);
			return false;
		}
		ld->seen = s;
		ld->capseen = cap;
	}
	ld->seen[ld->nseen].tag = tag;
	ld->seen[ld->nseen++].line = ld->line;
	return false;
}

/* Line where section/key was set, or 0. */
static int
key_line(const struct loader *ld, const char *section, const char *key)
{
	size_t sl = strlen(section);

	for (size_t i = 0; i < ld->nseen; i++)
		if (strncmp(ld->seen[i].tag, section, sl) == 0 &&
		    ld->seen[i].tag[sl] == '\n' &&
		    strcmp(ld->seen[i].tag + sl + 1, key) == 0)
			return ld->seen[i].line;
	return 0;
}

static int
ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	const struct conf_key *k;
	void *base = ld->cfg;
	char why[384];

	/* Debian's libinih cuts section names at 49 characters; the reader
	 * saw the whole header line. */
	if (strncmp(ld->cur_section, section, strlen(section)) == 0)
		section = ld->cur_section;

	if (seen_before(ld, section, name)) {
		loader_error(ld, ld->line, section, name,
		             "set twice (each key may appear once)");
		return 1;
	}
	if (strncmp(section, "handler.", 8) == 0) {
		const char *hname = section + 8;
		if (!job_type_valid(hname))
			return 1; /* reported once, from the section header */
		k = find_key("handler", name);
		if (k == NULL) {
			loader_error(ld, ld->line, section, name,
			             "unknown key");
			return 1;
		}
		base = get_handler(ld, hname, ld->line);
		if (base == NULL) {
			loader_error(ld, ld->line, section, name,
			             "out of memory");
			return 1;
		}
	} else if (strncmp(section, "schedule.", 9) == 0) {
		const char *sname = section + 9;
		if (!job_type_valid(sname))
			return 1; /* reported once, from the section header */
		k = find_key("schedule", name);
		if (k == NULL) {
			loader_error(ld, ld->line, section, name,
			             "unknown key");
			return 1;
		}
		base = get_schedule(ld, sname, ld->line);
		if (base == NULL) {
			loader_error(ld, ld->line, section, name,
			             "out of memory");
			return 1;
		}
	} else {
		/* Sections note_section_line() reported (unknown, or a bare
		 * [handler]): their keys are not ours to set. */
		if (section[0] != '\0' && !is_known_section(section))
			return 1;
		k = find_key(section, name);
		if (k == NULL) {
			if (section[0] == '\0')
				loader_error(ld, ld->line, section, name,
				             "key outside any [section]");
			else if (is_known_section(section))
				loader_error(ld, ld->line, section, name,
				             "unknown key");
			/* else: the section header was already reported */
			return 1;
		}
	}
	if (set_value(k, base, value, why, sizeof(why)) != 0)
		loader_error(ld, ld->line, section, name, "%s", why);
	/* Always go on, so that every error of the file is reported. */
	return 1;
}

/* Notes a "[section]" header line: handler sections exist even if empty. */
static void
note_section_line(struct loader *ld, const char *line)
{
	const char *p = line, *end;
	char name[256];

	while (isspace((unsigned char)*p))
		p++;
	if (*p != '[')
		return;
	p++;
	end = strchr(p, ']');
	if (end == NULL) {
		/* Reported alone (see load()): every key after it would be
		 * blamed on the section before. */
		if (ld->broken_line == 0) {
			size_t n = strcspn(p, ";#\r\n");
			while (n > 0 && isspace((unsigned char)p[n - 1]))
				n--;
			if (n >= sizeof(ld->broken_name))
				n = sizeof(ld->broken_name) - 1;
			memcpy(ld->broken_name, p, n);
			ld->broken_name[n] = '\0';
			ld->broken_line = ld->line;
		}
		return;
	}
	if ((size_t)(end - p) >= sizeof(name)) {
		loader_error(ld, ld->line, "...", "*", "section name longer "
		             "than %zu characters", sizeof(name) - 1);
		snprintf(ld->cur_section, sizeof(ld->cur_section), "?");
		return;
	}
	memcpy(name, p, (size_t)(end - p));
	name[end - p] = '\0';
	snprintf(ld->cur_section, sizeof(ld->cur_section), "%s", name);
	if (strncmp(name, "handler.", 8) == 0) {
		if (!job_type_valid(name + 8)) {
			loader_error(ld, ld->line, name, "NAME",
			             "handler name must match [A-Za-z0-9_.-]{1,64}");
			return;
		}
		for (size_t i = 0; i < ld->cfg->nhandlers; i++)
			if (strcmp(ld->cfg->handlers[i].name, name + 8) == 0) {
				loader_error(ld, ld->line, name, "NAME",
				             "handler section appears twice");
				return;
			}
		if (get_handler(ld, name + 8, ld->line) == NULL)
			loader_error(ld, ld->line, name, "NAME",
			             "out of memory");
	} else if (strncmp(name, "schedule.", 9) == 0) {
		if (!job_type_valid(name + 9)) {
			loader_error(ld, ld->line, name, "NAME",
			             "schedule name must match "
			             "[A-Za-z0-9_.-]{1,64}");
			return;
		}
		for (size_t i = 0; i < ld->cfg->nschedules; i++)
			if (strcmp(ld->cfg->schedules[i].name, name + 9) == 0) {
				loader_error(ld, ld->line, name, "NAME",
				             "schedule section appears twice");
				return;
			}
		if (get_schedule(ld, name + 9, ld->line) == NULL)
			loader_error(ld, ld->line, name, "NAME",
			             "out of memory");
	} else if (!is_known_section(name)) {
		loader_error(ld, ld->line, name, "*", "unknown section");
	}
}

/* Reads the next whole line into ld->linebuf; false at the end. */
static bool
next_line(struct loader *ld)
{
	if (ld->file != NULL) {
		ssize_t n = getline(&ld->linebuf, &ld->linecap, ld->file);
		if (n < 0)
			return false;
		ld->linelen = (size_t)n;
		return true;
	}
	const char *p = ld->text + ld->text_pos;
	size_t n = strcspn(p, "\n");
	if (*p == '\0')
		return false;
	if (p[n] == '\n')
		n++;
	if (n + 1 > ld->linecap) {
		char *b = realloc(ld->linebuf, n + 1);
		if (b == NULL)
			return false;
		ld->linebuf = b;
		ld->linecap = n + 1;
	}
	memcpy(ld->linebuf, p, n);
	ld->linebuf[n] = '\0';
	ld->linelen = n;
	ld->text_pos += n;
	return true;
}

/*
 * libinih's reader, fgets-like: it hands out the current line in pieces of
 * at most num - 1 bytes (libinih asks again, with a grown buffer, for the
 * rest of a long line) and counts lines as they start, so that errors can
 * name their line.
 */
static char *
reader(char *str, int num, void *stream)
{
	struct loader *ld = stream;
	size_t n;

	if (num < 2)
		return NULL;
	if (ld->linepos >= ld->linelen) {
		if (!next_line(ld))
			return NULL;
		ld->linepos = 0;
		ld->line++;
		note_section_line(ld, ld->linebuf);
	}
	n = ld->linelen - ld->linepos;
	if (n > (size_t)num - 1)
		n = (size_t)num - 1;
	memcpy(str, ld->linebuf + ld->linepos, n);
	str[n] = '\0';
	ld->linepos += n;
	return str;
}

/*
 * The TLS files, as far as a look at them can tell (reading them is the
 * server's): an empty one, and a private key that its group or others may
 * read - no longer private - are refused, at start-up and by
 * --check-config alike.  One that cannot be stat'ed is reported when the
 * server opens it.
 */
static void
validate_tls_files(struct loader *ld)
{
	const struct config *cfg = ld->cfg;
	const char *cert = cfg->server.tls_cert, *key = cfg->server.tls_key;
	struct stat st;

	if (cert != NULL && stat(cert, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size == 0)
		loader_error(ld, key_line(ld, "server", "tls_cert"), "server",
		             "tls_cert", "%s is empty", cert);
	if (key == NULL || stat(key, &st) != 0)
		return;
	if (S_ISREG(st.st_mode) && st.st_size == 0)
		loader_error(ld, key_line(ld, "server", "tls_key"), "server",
		             "tls_key", "%s is empty", key);
	/* As for the tokens file: 0640 stays allowed (Debian's ssl-cert
	 * group, as PostgreSQL allows it); readable by others, or writable
	 * by anyone but its owner, is refused. */
	else if ((st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) != 0)
		loader_error(ld, key_line(ld, "server", "tls_key"), "server",
		             "tls_key", "%s is %s (mode %04o): chmod 600 (or "
		             "640) it", key, (st.st_mode & (S_IWOTH | S_IWGRP))
		             ? "writable by others than its owner"
		             : "readable by others",
		             (unsigned)(st.st_mode & 07777));
}

/*
 * The [schedule.NAME] sections: cron xor every (every in whole seconds),
 * the cron expression parses, type names a handler, payload is JSON (kept
 * compact).  Errors point at the key's line, the header's when missing.
 */
static void
validate_schedules(struct loader *ld)
{
	struct config *cfg = ld->cfg;

	for (size_t i = 0; i < cfg->nschedules; i++) {
		struct schedule_conf *sc = &cfg->schedules[i];
		char sec[80], why[256];
		bool bad = false;
		snprintf(sec, sizeof(sec), "schedule.%s", sc->name);
		for (size_t k = 0; k < ld->nbad && !bad; k++)
			bad = strcmp(ld->bad[k], sec) == 0;
		if (bad)
			continue;
		int cron_line = key_line(ld, sec, "cron");
		int every_line = key_line(ld, sec, "every");
		int type_line = key_line(ld, sec, "type");
		int payload_line = key_line(ld, sec, "payload");
		if (sc->cron == NULL && sc->every_ms == 0)
			loader_error(ld, sc->line, sec, "cron",
			             "a schedule needs \"cron\" or \"every\"");
		else if (sc->cron != NULL && sc->every_ms != 0)
			loader_error(ld, cron_line > every_line ? cron_line
			                                        : every_line,
			             sec, cron_line > every_line ? "cron"
			                                         : "every",
			             "\"cron\" and \"every\" exclude each other");
		else if (sc->cron != NULL &&
		         cron_parse(&sc->cron_expr, sc->cron, why,
		                    sizeof(why)) != 0)
			loader_error(ld, cron_line, sec, "cron", "%s", why);
		else if (sc->every_ms % 1000 != 0)
			loader_error(ld, every_line, sec, "every",
			             "must be whole seconds");
		if (sc->type == NULL)
			loader_error(ld, sc->line, sec, "type",
			             "a schedule needs \"type\" (a handler's "
			             "name)");
		else if (config_handler(cfg, sc->type) == NULL)
			loader_error(ld, type_line, sec, "type",
			             "no [handler.%.64s] is configured",
			             sc->type);
		if (sc->payload != NULL) {
			size_t len = strlen(sc->payload);
			if (submit_json_strict(sc->payload, len,
			                       SUBMIT_MAX_DEPTH, why,
			                       sizeof(why)) != 0) {
				loader_error(ld, payload_line, sec, "payload",
				             "not JSON: %s", why);
			} else {
				char *c = submit_json_compact(sc->payload, len);
				if (c == NULL) {
					loader_error(ld, payload_line, sec,
					             "payload", "out of memory");
				} else {
					free(sc->payload);
					sc->payload = c;
				}
			}
		}
	}
}

/* [callbacks]: a secret that decodes, prefixes that are http(s) URLs. */
static void
validate_callbacks(struct loader *ld)
{
	const struct config *cfg = ld->cfg;
	const char *p = cfg->callbacks.allow;
	char why[160];

	if (cfg->callbacks.secret != NULL &&
	    callback_secret_check(cfg->callbacks.secret, why,
	                          sizeof(why)) != 0)
		loader_error(ld, key_line(ld, "callbacks", "secret"),
		             "callbacks", "secret", "%s", why);
	while (p != NULL && *p != '\0') {
		size_t n;
		p += strspn(p, " \t");
		n = strcspn(p, " \t");
		size_t scheme = strncmp(p, "http://", 7) == 0 ? 7
		              : strncmp(p, "https://", 8) == 0 ? 8 : 0;
		const char *slash = scheme ? memchr(p + scheme, '/', n - scheme)
		                           : NULL;
		if (n > 0 && scheme == 0) {
			loader_error(ld, key_line(ld, "callbacks", "allow"),
			             "callbacks", "allow", "\"%.*s\" is not an "
			             "http:// or https:// URL prefix",
			             (int)(n > 80 ? 80 : n), p);
			break;
		}
		/* "https://a.example" would allow https://a.example.evil.net
		 * and https://a.example@evil.net too. */
		if (n > 0 && (slash == NULL || slash == p + scheme)) {
			loader_error(ld, key_line(ld, "callbacks", "allow"),
			             "callbacks", "allow", "\"%.*s\" must name a "
			             "host and end it with '/' (e.g. "
			             "https://hooks.example.com/)",
			             (int)(n > 80 ? 80 : n), p);
			break;
		}
		p += n;
	}
}

static void
validate(struct loader *ld)
{
	struct config *cfg = ld->cfg;

	validate_callbacks(ld);

	for (size_t i = 0; i < cfg->nhandlers; i++) {
		struct handler_conf *h = &cfg->handlers[i];
		char sec[80];
		bool bad = false;
		snprintf(sec, sizeof(sec), "handler.%s", h->name);
		/* A section with an error of its own: its keys may be missing
		 * only because they failed; do not pile on. */
		for (size_t k = 0; k < ld->nbad && !bad; k++)
			bad = strcmp(ld->bad[k], sec) == 0;
		if (bad)
			continue;
		/* Errors point at the key's line; the header's when the key
		 * is missing. */
		int cmd_line = key_line(ld, sec, "command");
		int builtin_line = key_line(ld, sec, "builtin");
		int env_line = key_line(ld, sec, "env");
		int plugin_line = key_line(ld, sec, "plugin");
		h->command_line = cmd_line ? cmd_line : h->line;
		h->plugin_line = plugin_line ? plugin_line : h->line;
		if (h->plugin != NULL &&
		    (h->builtin != BUILTIN_NONE || h->command != NULL))
			loader_error(ld, h->plugin_line, sec, "plugin",
			             "\"plugin\" and \"%s\" exclude each other",
			             h->command != NULL ? "command" : "builtin");
		else if (h->plugin != NULL && strchr(h->plugin, '/') == NULL)
			loader_error(ld, h->plugin_line, sec, "plugin",
			             "must be a path with a '/' (a bare name "
			             "would be searched for like a library)");
		else if (h->plugin == NULL && h->plugin_config != NULL)
			loader_error(ld, key_line(ld, sec, "plugin_config"),
			             sec, "plugin_config", "only for a \"plugin\" "
			             "handler");
		else if (h->plugin == NULL && h->builtin == BUILTIN_NONE &&
		         h->command == NULL)
			loader_error(ld, h->line, sec, "command",
			             "a handler needs \"builtin\", \"command\" or "
			             "\"plugin\"");
		else if (h->builtin != BUILTIN_NONE && h->command != NULL)
			loader_error(ld, cmd_line > builtin_line ? cmd_line
			                                         : builtin_line,
			             sec, cmd_line > builtin_line ? "command"
			                                          : "builtin",
			             "\"builtin\" and \"command\" exclude each other");
		if (h->command != NULL) {
			char **argv = NULL, why[128];
			int argc = 0;
			if (shellwords_split(h->command, &argv, &argc, why,
			                     sizeof(why)) != 0)
				loader_error(ld, h->command_line, sec, "command",
				             "%s", why);
			else if (argc == 0)
				loader_error(ld, h->command_line, sec, "command",
				             "must name a program");
			shellwords_free(argv);
		}
		if (env_line == 0)
			env_line = h->line;
		if (h->env != NULL) {
			char **words = NULL, why[128];
			int n = 0;
			if (shellwords_split(h->env, &words, &n, why,
			                     sizeof(why)) != 0) {
				loader_error(ld, env_line, sec, "env", "%s", why);
			} else {
				for (int k = 0; k < n; k++) {
					size_t kl = strcspn(words[k], "=");
					bool ok = words[k][kl] == '=' && kl > 0 &&
					    !isdigit((unsigned char)words[k][0]);
					for (size_t c = 0; ok && c < kl; c++)
						ok = isalnum((unsigned char)words[k][c]) ||
						     words[k][c] == '_';
					if (!ok) {
						loader_error(ld, env_line, sec, "env",
						    "\"%s\" is not KEY=VALUE", words[k]);
						break;
					}
				}
			}
			shellwords_free(words);
		}
		if (h->rate != NULL) {
			char why[128];
			if (rate_parse(h->rate, &h->rate_n, &h->rate_period_us,
			               why, sizeof(why)) != 0)
				loader_error(ld, key_line(ld, sec, "rate") ?
				             key_line(ld, sec, "rate") : h->line,
				             sec, "rate", "%s", why);
		}
		if (h->backoff_max_ms < h->backoff_base_ms) {
			int max_line = key_line(ld, sec, "backoff_max");
			int base_line = key_line(ld, sec, "backoff_base");
			char max[32];
			size_t u = 0; /* the largest unit that divides it */
			while (h->backoff_max_ms % dur_units[u].ms != 0)
				u++;
			format_duration(max, sizeof(max), h->backoff_max_ms, u);
			if (max_line > 0 || base_line == 0)
				loader_error(ld, max_line ? max_line : h->line, sec,
				             "backoff_max", "smaller than "
				             "backoff_base");
			else
				loader_error(ld, base_line, sec, "backoff_base",
				             "larger than backoff_max (%s)", max);
		}
	}
	validate_schedules(ld);
	validate_tls_files(ld);
	if ((cfg->server.tls_cert == NULL) != (cfg->server.tls_key == NULL)) {
		const char *set = cfg->server.tls_cert ? "tls_cert" : "tls_key";
		loader_error(ld, key_line(ld, "server", set), "server", set,
		             "tls_cert and tls_key must be set together");
	}
}

static int
load(struct loader *ld, struct config **out, char *err, size_t errlen)
{
	struct config *cfg;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	cfg->file = strdup(ld->name);
	ld->cfg = cfg;
	ld->errs = err;
	ld->errlen = errlen;
	apply_defaults(cfg, "server");
	apply_defaults(cfg, "store");
	apply_defaults(cfg, "workers");
	apply_defaults(cfg, "auth");
	apply_defaults(cfg, "callbacks");

	/* Our runtime choices for Debian's libinih: long lines, no
	 * continuation lines, ';' and '#' comments. */
	ini_allow_multiline = false;
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = 64 * 1024;

	rc = ini_parse_stream(reader, ld, ini_cb, ld);
	if (ld->broken_line > 0) {
		/* The one error worth reading: forget the others. */
		ld->nerrs = 0;
		ld->errused = 0;
		if (ld->errs != NULL && ld->errlen > 0)
			ld->errs[0] = '\0';
		loader_error(ld, ld->broken_line, ld->broken_name[0] ?
		             ld->broken_name : "?", "*", "the section header "
		             "lacks its closing ']'");
	} else {
		/* ini_cb never fails: a positive rc is a syntax error's
		 * line. */
		if (rc > 0)
			loader_error(ld, rc, "?", "?", "syntax error (expected "
			             "[section] or key = value)");
		else if (rc == -2)
			loader_error(ld, 0, "?", "?", "out of memory");
		validate(ld);
	}
	for (size_t i = 0; i < ld->nseen; i++)
		free(ld->seen[i].tag);
	free(ld->seen);
	free(ld->linebuf);
	for (size_t i = 0; i < ld->nbad; i++)
		free(ld->bad[i]);
	free(ld->bad);
	if (ld->nerrs > 0) {
		config_free(cfg);
		return JOBD_EINVAL;
	}
	*out = cfg;
	return 0;
}

int
config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	struct loader ld = {.name = path};
	int rc;

	ld.file = fopen(path, "re");
	if (ld.file == NULL)
		return jobd_seterr(err, errlen, JOBD_ESYS, "%s: cannot open: %s",
		                   path, strerror(errno));
	rc = load(&ld, out, err, errlen);
	fclose(ld.file);
	return rc;
}

int
config_load_string(const char *name, const char *text, struct config **out,
                   char *err, size_t errlen)
{
	struct loader ld = {.name = name, .text = text};

	return load(&ld, out, err, errlen);
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];
		if ((k->type == T_STR || k->type == T_LISTEN) &&
		    strcmp(k->section, "handler") != 0 &&
		    strcmp(k->section, "schedule") != 0)
			free(*(char **)((char *)cfg + k->offset));
	}
	for (size_t h = 0; h < cfg->nhandlers; h++) {
		for (size_t i = 0; i < NKEYS; i++) {
			const struct conf_key *k = &conf_keys[i];
			if (k->type == T_STR &&
			    strcmp(k->section, "handler") == 0)
				free(*(char **)((char *)&cfg->handlers[h] +
				                k->offset));
		}
		free(cfg->handlers[h].name);
	}
	free(cfg->handlers);
	for (size_t s = 0; s < cfg->nschedules; s++) {
		for (size_t i = 0; i < NKEYS; i++) {
			const struct conf_key *k = &conf_keys[i];
			if (k->type == T_STR &&
			    strcmp(k->section, "schedule") == 0)
				free(*(char **)((char *)&cfg->schedules[s] +
				                k->offset));
		}
		free(cfg->schedules[s].name);
	}
	free(cfg->schedules);
	free(cfg->file);
	free(cfg);
}

/* LOCKING: current_mu guards current and every config's refs. */
static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static struct config *current;

void
config_set_current(struct config *cfg)
{
	struct config *old;

	pthread_mutex_lock(&current_mu);
	old = current;
	current = cfg;
	if (cfg != NULL)
		cfg->refs++;
	pthread_mutex_unlock(&current_mu);
	if (old != NULL)
		config_release(old);
}

struct config *
config_acquire(void)
{
	struct config *cfg;

	pthread_mutex_lock(&current_mu);
	cfg = current;
	if (cfg != NULL)
		cfg->refs++;
	pthread_mutex_unlock(&current_mu);
	return cfg;
}

void
config_release(struct config *cfg)
{
	bool last;

	if (cfg == NULL)
		return;
	pthread_mutex_lock(&current_mu);
	last = --cfg->refs == 0;
	pthread_mutex_unlock(&current_mu);
	if (last)
		config_free(cfg);
}

const struct handler_conf *
config_handler(const struct config *cfg, const char *type)
{
	for (size_t i = 0; i < cfg->nhandlers; i++)
		if (strcmp(cfg->handlers[i].name, type) == 0)
			return &cfg->handlers[i];
	return NULL;
}

const struct schedule_conf *
config_schedule(const struct config *cfg, const char *name)
{
	for (size_t i = 0; cfg != NULL && i < cfg->nschedules; i++)
		if (strcmp(cfg->schedules[i].name, name) == 0)
			return &cfg->schedules[i];
	return NULL;
}

const char *
config_builtin_name(int64_t kind)
{
	if (kind < 0 || kind > BUILTIN_FAIL)
		return "";
	return builtin_names[kind];
}

void
config_write_reference(FILE *f)
{
	const char *last = "";

	for (size_t i = 0; i < NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];
		if (strcmp(k->section, last) != 0) {
			fprintf(f, "%s### `[%s%s]`\n\n| key | default | doc |\n"
			        "|---|---|---|\n", i ? "\n" : "", k->section,
			        strcmp(k->section, "handler") == 0 ||
			        strcmp(k->section, "schedule") == 0 ? ".NAME"
			                                            : "");
			last = k->section;
		}
		fprintf(f, "| `%s` | %s%s%s | ", k->key, k->def ? "`" : "",
		        k->def ? k->def : "(unset)", k->def ? "`" : "");
		for (const char *c = k->doc; *c; c++) /* '|' ends a cell */
			fputs(*c == '|' ? "\\|" : (char[]){*c, 0}, f);
		fputs(" |\n", f);
	}
}

/* Writes s as roff text lines of about 72 bytes, broken at spaces: a
 * backslash is \e, and no line starts with a control character. */
static void
mdoc_text(FILE *f, const char *s)
{
	size_t col = 0;

	for (; *s; s++) {
		if (*s == ' ' && col >= 72 && s[1] != '\0' && s[1] != ' ') {
			fputc('\n', f);
			col = 0;
			continue;
		}
		if (col == 0 && (*s == '.' || *s == '\''))
			col += (size_t)fprintf(f, "\\&");
		if (*s == '\\')
			col += (size_t)fprintf(f, "\\e");
		else if (*s != '\n') {
			fputc(*s, f);
			col++;
		}
	}
}

/* Writes s as one quoted macro argument (a '"' inside is doubled). */
static void
mdoc_arg(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++)
		if (*s == '\\')
			fputs("\\e", f);
		else if (*s == '"')
			fputs("\"\"", f);
		else if (*s != '\n')
			fputc(*s, f);
	fputc('"', f);
}

/* A size bound in the largest unit that divides it ("1k", "1G"). */
static void
format_size(char *buf, size_t len, int64_t bytes)
{
	static const struct { const char *suffix; int64_t n; } u[] = {
		{"G", 1LL << 30}, {"M", 1LL << 20}, {"k", 1LL << 10},
	};

	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++)
		if (bytes != 0 && bytes % u[i].n == 0) {
			snprintf(buf, len, "%lld%s", (long long)(bytes / u[i].n),
			         u[i].suffix);
			return;
		}
	snprintf(buf, len, "%lld", (long long)bytes);
}

/* A key's bounds as text ("" when it has none). */
static void
format_bound(char *buf, size_t len, const struct conf_key *k, int64_t v)
{
	if (k->type == T_SIZE)
		format_size(buf, len, v);
	else if (k->type == T_DUR && v != 0) {
		size_t u = 0; /* the largest unit that divides it: "1d" */
		while (v % dur_units[u].ms != 0)
			u++;
		format_duration(buf, len, v, u);
	} else if (k->type == T_DUR)
		snprintf(buf, len, "0");
	else
		snprintf(buf, len, "%lld", (long long)v);
}

void
config_write_mdoc(FILE *f)
{
	static const char *const what[] = {
		[T_STR] = "text", [T_SIZE] = "size", [T_DUR] = "duration",
		[T_INT] = "integer", [T_ENUM] = "word",
		[T_LISTEN] = "address:port",
	};
	const char *last = "";

	for (size_t i = 0; i < NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];
		bool named = strcmp(k->section, "handler") == 0 ||
		             strcmp(k->section, "schedule") == 0;
		char lo[64], hi[64];

		if (strcmp(k->section, last) != 0) {
			if (i > 0)
				fputs(".El\n", f);
			fprintf(f, ".Ss \"[%s%s]\\&\"\n.Bl -tag -width Ds\n",
			        k->section, named ? ".NAME" : "");
			last = k->section;
		}
		fputs(".It Cm ", f);
		mdoc_arg(f, k->key);
		fprintf(f, " No = Ar %s\n", what[k->type]);
		mdoc_text(f, k->doc);
		fputs(".\n", f);
		if (k->type == T_ENUM) {
			fputs("One of", f);
			for (int64_t v = k->min; v <= k->max; v++) {
				fputs(v == k->min ? "\n.Cm " : " ,\n.Cm ", f);
				mdoc_arg(f, k->names[v]);
			}
			fputs(" .\n", f);
		} else if (k->type == T_INT || k->type == T_SIZE ||
		           k->type == T_DUR) {
			/* min == max == 0 would mean no bounds (never so for
			 * these types in the table). */
			format_bound(lo, sizeof(lo), k, k->min);
			format_bound(hi, sizeof(hi), k, k->max);
			fputs("From\n.Ql ", f);
			mdoc_arg(f, lo);
			fputs("\nto\n.Ql ", f);
			mdoc_arg(f, hi);
			fputs(" .\n", f);
		}
		if (k->def != NULL) {
			fputs("Default:\n.Ql ", f);
			mdoc_arg(f, k->def);
			fputs(" .\n", f);
		} else {
			fputs("Unset by default.\n", f);
		}
	}
	if (NKEYS > 0)
		fputs(".El\n", f);
}

/* ---- checks beyond the file's syntax (start-up and --check-config) ---- */

/* Where exec handlers look for a program named without a '/' (the PATH
 * handler_exec.c gives the commands it runs). */
#define EXEC_PATH "/usr/local/bin:/usr/bin:/bin"

/* Appends one formatted line to out (bounded; "\n" between lines). */
static void
add_line(char *out, size_t outlen, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
add_line(char *out, size_t outlen, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (out == NULL || *used + 1 >= outlen)
		return;
	if (*used > 0)
		out[(*used)++] = '\n';
	out[*used] = '\0';
	va_start(ap, fmt);
	n = vsnprintf(out + *used, outlen - *used, fmt, ap);
	va_end(ap);
	if (n > 0)
		*used += (size_t)n;
	if (*used >= outlen)
		*used = outlen - 1;
}

int
config_check_listen(const char *listen, char *err, size_t errlen)
{
	char host[256];
	const char *port, *sep, *orig = listen;
	struct addrinfo hints = {0}, *res = NULL;
	size_t n;
	int rc;

	if (parse_listen(listen) != 0)
		return jobd_seterr(err, errlen, JOBD_EINVAL, "\"%s\" is not "
		                   "host:port", listen);
	if (listen[0] == '[') {
		sep = strchr(listen, ']');
		n = (size_t)(sep - listen - 1);
		port = sep + 2;
		listen++;
		/* A bracketed host is an IPv6 literal: never a resolver's. */
		hints.ai_flags = AI_NUMERICHOST;
	} else {
		sep = strrchr(listen, ':');
		n = (size_t)(sep - listen);
		port = sep + 1;
	}
	if (n >= sizeof(host))
		return jobd_seterr(err, errlen, JOBD_EINVAL, "the host is "
		                   "longer than %zu characters", sizeof(host) - 1);
	memcpy(host, listen, n);
	host[n] = '\0';
	/* As http.c's bind_listen() asks, so that both agree. */
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags |= AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0)
		return jobd_seterr(err, errlen, JOBD_EINVAL, "cannot listen on "
		                   "%s: %s", orig, gai_strerror(rc));
	freeaddrinfo(res);
	return 0;
}

int
config_check_runtime(const struct config *cfg, char *err, size_t errlen)
{
	const char *tls[2] = {cfg->server.tls_cert, cfg->server.tls_key};
	const char *tls_key[2] = {"tls_cert", "tls_key"};
	char why[384];
	size_t used = 0;
	int bad = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (config_check_listen(cfg->server.listen, why, sizeof(why)) != 0) {
		add_line(err, errlen, &used, "%s: [server] listen: %s", cfg->file,
		         why);
		bad++;
	}
	for (int i = 0; i < 2; i++) {
		if (tls[i] == NULL)
			continue;
		FILE *f = fopen(tls[i], "re");
		if (f == NULL) {
			add_line(err, errlen, &used, "%s: [server] %s: %s: %s",
			         cfg->file, tls_key[i], tls[i], strerror(errno));
			bad++;
		} else {
			fclose(f);
		}
	}
	return bad ? JOBD_EINVAL : 0;
}

/* Whether a handler's program can be run: 0, or errno's reason. */
static int
program_runs(const struct handler_conf *h, const char *prog)
{
	char path[4096];
	const char *p = EXEC_PATH;
	struct stat sb;
	int e = ENOENT;

	if (strchr(prog, '/') != NULL) {
		if (prog[0] != '/' && h->workdir != NULL)
			snprintf(path, sizeof(path), "%s/%s", h->workdir, prog);
		else
			snprintf(path, sizeof(path), "%s", prog);
		if (stat(path, &sb) != 0)
			return errno;
		if (!S_ISREG(sb.st_mode))
			return EISDIR;
		return access(path, X_OK) == 0 ? 0 : errno;
	}
	while (*p) {
		size_t n = strcspn(p, ":");
		snprintf(path, sizeof(path), "%.*s/%s", (int)n, p, prog);
		if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
			if (access(path, X_OK) == 0)
				return 0;
			e = EACCES;
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return e;
}

size_t
config_warnings(const struct config *cfg, char *out, size_t outlen)
{
	size_t used = 0, count = 0;

	if (out != NULL && outlen > 0)
		out[0] = '\0';
	if (cfg->nhandlers == 0) {
		add_line(out, outlen, &used, "%s: no handler is configured "
		         "([handler.NAME] sections): every POST /jobs will be "
		         "refused (422)", cfg->file);
		count++;
	}
	for (size_t i = 0; i < cfg->nhandlers; i++) {
		const struct handler_conf *h = &cfg->handlers[i];
		char **argv = NULL, why[128];
		int argc = 0, e;

		if (h->command == NULL ||
		    shellwords_split(h->command, &argv, &argc, why,
		                     sizeof(why)) != 0 || argc == 0) {
			shellwords_free(argv);
			continue;
		}
		e = program_runs(h, argv[0]);
		if (e != 0) {
			add_line(out, outlen, &used, "%s:%d: [handler.%s] command: "
			         "%s is not an executable file%s (%s): its jobs "
			         "will fail", cfg->file,
			         h->command_line ? h->command_line : h->line,
			         h->name, argv[0],
			         strchr(argv[0], '/') ? "" : " on " EXEC_PATH,
			         strerror(e));
			count++;
		}
		shellwords_free(argv);
	}
	return count;
}

/* Whether key k (not a handler key) holds the same value in a and b. */
static bool
same_value(const struct conf_key *k, const struct config *a,
           const struct config *b)
{
	const char *pa = (const char *)a + k->offset;
	const char *pb = (const char *)b + k->offset;

	if (k->type == T_STR || k->type == T_LISTEN) {
		const char *sa = *(char *const *)(const void *)pa;
		const char *sb = *(char *const *)(const void *)pb;
		return (sa == NULL && sb == NULL) ||
		       (sa != NULL && sb != NULL && strcmp(sa, sb) == 0);
	}
	return *(const int64_t *)(const void *)pa ==
	       *(const int64_t *)(const void *)pb;
}

size_t
config_restart_changes(const struct config *running,
                       const struct config *next, char *out, size_t outlen)
{
	size_t n = 0, used = 0;

	if (outlen > 0)
		out[0] = '\0';
	for (size_t i = 0; i < sizeof(conf_keys) / sizeof(conf_keys[0]); i++) {
		const struct conf_key *k = &conf_keys[i];
		bool reloadable = strcmp(k->section, "handler") == 0 ||
		    strcmp(k->section, "schedule") == 0 ||
		    (strcmp(k->section, "server") == 0 &&
		     strcmp(k->key, "log_level") == 0);
		if (reloadable)
			continue;
		/* A tokens file is re-read on reload; switching auth on or
		 * off needs a restart. */
		if (strcmp(k->section, "auth") == 0 &&
		    strcmp(k->key, "tokens_file") == 0 &&
		    (running->auth.tokens_file == NULL) ==
		    (next->auth.tokens_file == NULL))
			continue;
		if (same_value(k, running, next))
			continue;
		n++;
		if (used < outlen) {
			int w = snprintf(out + used, outlen - used, "%s[%s] %s",
			                 used ? ", " : "", k->section, k->key);
			if (w > 0)
				used += (size_t)w;
		}
	}
	return n;
}
