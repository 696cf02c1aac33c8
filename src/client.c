/*
 * client.c - the command-line client: `jobd submit|get|wait|ls|cancel|
 * retry|schedules|types|nodes|help` over the HTTP API (DESIGN §9).
 *
 * One process, one thread, one libcurl easy handle reused for every
 * request of a command.  What it promises scripts: the exit status (0 the
 * job succeeded or the command did its work, 1 failed, 2 cancelled, 75 not
 * finished within the wait, 65 refused, 69 unreachable or 5xx, 64 usage),
 * and with --json the API's body on stdout exactly as received.  Humans
 * get one line per job and aligned tables; colours only when stdout is a
 * terminal and NO_COLOR is unset or empty; `wait` draws a progress bar on
 * stderr when stderr is a terminal.
 *
 * Bounds: an answer larger than MAX_ANSWER_BYTES is abandoned (69), a
 * payload read from stdin larger than MAX_PAYLOAD_BYTES is refused (65);
 * every request has a connect timeout and an overall one a little longer
 * than the wait it asks the daemon for.  Text from the daemon is printed
 * with control characters escaped, so a job's error cannot drive the
 * terminal.  Proxies: libcurl's usual environment (http_proxy,
 * https_proxy, all_proxy, no_proxy) is honoured, except that loopback
 * addresses are never proxied; redirects are not followed.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "client.h"
#include "version.h"

#define DEFAULT_URL "http://127.0.0.1:8080"
#define MAX_ANSWER_BYTES (32u << 20)
#define MAX_PAYLOAD_BYTES (16u << 20)
#define CONNECT_TIMEOUT_MS 10000L
/* Beyond the wait asked of the daemon: the daemon answers a long-poll at
 * its end, so this only fires on a daemon that hangs.  (Ending a
 * `submit --wait` early would cancel the job: DESIGN §2.) */
#define REQUEST_SLACK_S 60L
/* One long-poll of `wait` without a terminal; with the bar, a second. */
#define WAIT_POLL_S 30LL
#define MAX_WAIT_S 2147483647LL
#define BAR_CELLS 30

/* Exit statuses besides sysexits.h's. */
#define EXIT_JOB_FAILED 1
#define EXIT_JOB_CANCELLED 2

enum cmd {
	CMD_SUBMIT, CMD_GET, CMD_WAIT, CMD_LS, CMD_CANCEL, CMD_RETRY,
	CMD_SCHEDULES, CMD_TYPES, CMD_NODES, CMD_HELP,
};

/* Options a command accepts (--url, --json and --help: all of them). */
enum {
	OPT_PRIORITY = 1 << 0,
	OPT_DELAY = 1 << 1,
	OPT_KEY = 1 << 2,
	OPT_DEPENDS = 1 << 3,
	OPT_WAIT = 1 << 4,
	OPT_STATUS = 1 << 5,
	OPT_TYPE = 1 << 6,
	OPT_LIMIT = 1 << 7,
};

struct command {
	const char *name;
	enum cmd id;
	int min_args, max_args;
	unsigned opts;
	const char *synopsis;
	const char *help;
};

static const struct command commands[] = {
	{"submit", CMD_SUBMIT, 1, 2,
	 OPT_PRIORITY | OPT_DELAY | OPT_KEY | OPT_DEPENDS | OPT_WAIT,
	 "submit TYPE [PAYLOAD|-] [--priority N] [--delay SECONDS] "
	 "[--key KEY] [--depends-on ID]... [--wait SECONDS]",
	 "Submits a job of TYPE.  PAYLOAD is JSON text (quote a string: "
	 "'\"hello\"');\n"
	 "`-` reads it from stdin; none sends null.  A payload that is not "
	 "JSON is\n"
	 "refused before anything is sent (exit 65).  --key sets the "
	 "Idempotency-Key;\n"
	 "--depends-on may repeat.  With --wait, waits up to SECONDS for the "
	 "job to end\n"
	 "(exit 0 succeeded, 1 failed, 2 cancelled, 75 not yet; a disconnect "
	 "while\n"
	 "waiting cancels the job), else prints the new job (exit 0)."},
	{"get", CMD_GET, 1, 1, OPT_WAIT,
	 "get ID [--wait SECONDS]",
	 "Prints the job, its result or error.  Exit 0; with --wait, waits up "
	 "to SECONDS\n"
	 "for the job to end: exit 0 succeeded, 1 failed, 2 cancelled, 75 not "
	 "yet."},
	{"wait", CMD_WAIT, 1, 1, OPT_WAIT,
	 "wait ID [--wait SECONDS]",
	 "Waits for the job to end (for ever, or up to SECONDS), showing its "
	 "progress on\n"
	 "a terminal, then prints its result or error.  Exit 0 succeeded, 1 "
	 "failed,\n"
	 "2 cancelled, 75 not finished within SECONDS."},
	{"ls", CMD_LS, 0, 0, OPT_STATUS | OPT_TYPE | OPT_LIMIT,
	 "ls [--status S] [--type T] [--limit N]",
	 "Lists jobs, newest first (S: waiting, queued, running, succeeded, "
	 "failed,\n"
	 "cancelled; N: 1..1000, default 50)."},
	{"cancel", CMD_CANCEL, 1, 1, 0, "cancel ID",
	 "Cancels a job: at once when it has not started, else its attempt is "
	 "told to\n"
	 "stop.  A job that has ended is refused (exit 65)."},
	{"retry", CMD_RETRY, 1, 1, 0, "retry ID",
	 "Queues a failed or cancelled job again with a fresh attempt budget."},
	{"schedules", CMD_SCHEDULES, 0, 0, 0, "schedules",
	 "Lists the schedules, when each runs next and last ran."},
	{"types", CMD_TYPES, 0, 0, 0, "types",
	 "Lists the job types (handlers): kind, pause, limits, queued and "
	 "running jobs."},
	{"nodes", CMD_NODES, 0, 0, 0, "nodes",
	 "Lists the daemons that share the store, and which one leads."},
	{"help", CMD_HELP, 0, 1, 0, "help [COMMAND]",
	 "Prints this help, or a command's."},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Long options; the values past 255 are the client's own. */
enum {
	LO_URL = 256, LO_JSON, LO_PRIORITY, LO_DELAY, LO_KEY, LO_DEPENDS,
	LO_WAIT, LO_STATUS, LO_TYPE, LO_LIMIT,
};

static const struct option longopts[] = {
	{"url", required_argument, NULL, LO_URL},
	{"json", no_argument, NULL, LO_JSON},
	{"priority", required_argument, NULL, LO_PRIORITY},
	{"delay", required_argument, NULL, LO_DELAY},
	{"key", required_argument, NULL, LO_KEY},
	{"depends-on", required_argument, NULL, LO_DEPENDS},
	{"wait", required_argument, NULL, LO_WAIT},
	{"status", required_argument, NULL, LO_STATUS},
	{"type", required_argument, NULL, LO_TYPE},
	{"limit", required_argument, NULL, LO_LIMIT},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* What the command line asked for.  Strings are borrowed from argv. */
struct args {
	const struct command *cmd;
	const char *words[2];
	int nwords;
	const char *url;
	bool json, help;
	unsigned given;          /* OPT_* bits seen */
	long long priority;
	double delay_s;
	const char *key;
	const char **depends;    /* owned array of borrowed strings */
	size_t ndepends;
	long long wait_s;
	const char *status, *type;
	long long limit;
};

/* One connection to the daemon. */
struct client {
	CURL *curl;
	char *base;              /* the URL without its trailing '/' (owned) */
	char *auth;              /* "Authorization: Bearer ..." or NULL */
	bool json;               /* print bodies as received */
	bool color;              /* stdout is a terminal, NO_COLOR empty */
};

/* One answer.  body is NUL-terminated (owned), never NULL after
 * http_request. */
struct answer {
	long status;             /* 0: no answer (error says why) */
	char *body;
	size_t len;
	size_t cap;              /* bytes allocated for body */
	bool too_big;
	char error[CURL_ERROR_SIZE + 64];
};

/* ---- small pieces ---- */

static long long
now_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "YYYY-MM-DDTHH:MM:SS[.mmm]Z" -> ms since the epoch; -1 otherwise. */
static long long
parse_time_ms(const char *s)
{
	struct tm tm = {0};
	int y, mo, d, h, mi, sec, ms = 0, n = 0;

	if (s == NULL)
		return -1;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
	           &n) != 6 || n == 0)
		return -1;
	s += n;
	if (*s == '.') {
		int digits = 0;
		for (s++; isdigit((unsigned char)*s); s++, digits++)
			if (digits < 3)
				ms = ms * 10 + (*s - '0');
		for (; digits > 0 && digits < 3; digits++)
			ms *= 10;
	}
	if (*s != 'Z')
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return (long long)timegm(&tm) * 1000 + ms;
}

char *
client_reltime(long long at_ms, long long now, char *out, size_t outlen)
{
	long long diff = now - at_ms, s;
	bool future = diff < 0;
	const char *unit;
	long long v;

	s = (future ? -diff : diff) / 1000;
	if (s < 1) {
		snprintf(out, outlen, "just now");
		return out;
	}
	if (s < 60) {
		v = s;
		unit = "s";
	} else if (s < 3600) {
		v = s / 60;
		unit = "m";
	} else if (s < 86400) {
		v = s / 3600;
		unit = "h";
	} else {
		v = s / 86400;
		unit = "d";
	}
	if (future)
		snprintf(out, outlen, "in %lld%s", v, unit);
	else
		snprintf(out, outlen, "%lld%s ago", v, unit);
	return out;
}

char *
client_bar(double percent, int width, char *out, size_t outlen)
{
	int filled, i;
	size_t n = 0;

	if (outlen == 0)
		return out;
	if (width < 1)
		width = 1;
	if ((size_t)width + 8 > outlen)
		width = outlen > 9 ? (int)(outlen - 9) : 0;
	if (isnan(percent))
		percent = -1;
	if (percent > 100)
		percent = 100;
	filled = percent < 0 ? 0 : (int)(percent * width / 100.0);
	out[n++] = '[';
	for (i = 0; i < width; i++)
		out[n++] = i < filled ? '#' : ' ';
	out[n++] = ']';
	out[n] = '\0';
	if (percent >= 0)
		snprintf(out + n, outlen - n, " %3d%%", (int)percent);
	return out;
}

/* Writes s to f with control characters (and DEL) escaped as \xNN, so
 * that text from the daemon cannot move the cursor or change colours;
 * keep_newlines leaves '\n' and '\t' as they are. */
static void
put_safe(FILE *f, const char *s, bool keep_newlines)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c < 0x20 && !(keep_newlines && (c == '\n' || c == '\t'))) ||
		    c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
}

/* s with control characters replaced by '?': a new string (caller
 * frees), NULL when out of memory.  For table cells, whose width must be
 * that of what is shown. */
static char *
cell_dup(const char *s)
{
	char *c = strdup(s != NULL ? s : "-");

	if (c != NULL)
		for (char *p = c; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
	return c;
}

static const char *
status_color(const char *status)
{
	if (status == NULL)
		return NULL;
	if (strcmp(status, "succeeded") == 0)
		return "\033[32m";
	if (strcmp(status, "failed") == 0)
		return "\033[31m";
	if (strcmp(status, "cancelled") == 0)
		return "\033[33m";
	if (strcmp(status, "running") == 0)
		return "\033[36m";
	return NULL;
}

static bool
status_final(const char *status)
{
	return status != NULL && (strcmp(status, "succeeded") == 0 ||
	                          strcmp(status, "failed") == 0 ||
	                          strcmp(status, "cancelled") == 0);
}

/* The exit status a job's final state means; 75 for any other. */
static int
status_exit(const char *status)
{
	if (status == NULL)
		return EX_TEMPFAIL;
	if (strcmp(status, "succeeded") == 0)
		return EX_OK;
	if (strcmp(status, "failed") == 0)
		return EXIT_JOB_FAILED;
	if (strcmp(status, "cancelled") == 0)
		return EXIT_JOB_CANCELLED;
	return EX_TEMPFAIL;
}

static const char *
jstr(const cJSON *o, const char *field)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- usage ---- */

static const struct command *
command_find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void
usage_all(FILE *f)
{
	fprintf(f, "usage: jobd COMMAND [ARGS] [OPTIONS]     (the client)\n"
	        "       jobd --config FILE               (the daemon; jobd "
	        "--help)\n\ncommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  jobd %s\n", commands[i].synopsis);
	fprintf(f, "\noptions of every command:\n"
	        "  --url URL    the daemon (default $JOBD_URL, else %s)\n"
	        "  --json       print the API's JSON answer as received\n"
	        "  --help       this command's help\n"
	        "environment: JOBD_URL, JOBD_TOKEN (sent as a bearer token), "
	        "NO_COLOR\n"
	        "exit: 0 done or succeeded, 1 failed, 2 cancelled, 75 not "
	        "finished within\n"
	        "the wait, 65 refused (4xx), 69 unreachable or 5xx, 64 wrong "
	        "usage\n", DEFAULT_URL);
}

static void
usage_command(FILE *f, const struct command *c)
{
	fprintf(f, "usage: jobd %s\n\n%s\n\n"
	        "Every command also takes --url URL, --json and --help "
	        "(jobd help).\n", c->synopsis, c->help);
}

/* ---- command line ---- */

/* Strict integer in [min, max]: 0, or -1. */
static int
parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* A header value a user gave: printable, no CR/LF (no header injection). */
static bool
header_value_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static const char *
option_name(int opt)
{
	for (const struct option *o = longopts; o->name != NULL; o++)
		if (o->val == opt)
			return o->name;
	return "?";
}

/* Parses argv into a.  0, or EX_USAGE after saying why on stderr. */
static int
parse_args(int argc, char **argv, struct args *a)
{
	const char *words[4];
	int nwords = 0, opt, idx;
	unsigned bit;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", longopts, &idx)) != -1) {
		const char *v = optarg;
		bit = 0;
		switch (opt) {
		case 'h': a->help = true; break;
		case LO_URL: a->url = v; break;
		case LO_JSON: a->json = true; break;
		case LO_PRIORITY:
			bit = OPT_PRIORITY;
			if (parse_ll(v, INT64_MIN, INT64_MAX, &a->priority) != 0) {
				fprintf(stderr, "jobd: --priority: not an integer: "
				        "%s\n", v);
				return EX_USAGE;
			}
			break;
		case LO_DELAY: {
			char *end;
			bit = OPT_DELAY;
			errno = 0;
			a->delay_s = strtod(v, &end);
			if (*v == '\0' || *end != '\0' || errno != 0 ||
			    !isfinite(a->delay_s) || isspace((unsigned char)*v) ||
			    strpbrk(v, "xXnN") != NULL) {
				fprintf(stderr, "jobd: --delay: not a number of "
				        "seconds: %s\n", v);
				return EX_USAGE;
			}
			break;
		}
		case LO_KEY:
			bit = OPT_KEY;
			if (*v == '\0' || !header_value_ok(v)) {
				fprintf(stderr, "jobd: --key: empty or with control "
				        "characters\n");
				return EX_USAGE;
			}
			a->key = v;
			break;
		case LO_DEPENDS: {
			const char **more;
			bit = OPT_DEPENDS;
			more = realloc(a->depends,
			               (a->ndepends + 1) * sizeof(*more));
			if (more == NULL) {
				fprintf(stderr, "jobd: out of memory\n");
				return EX_OSERR;
			}
			a->depends = more;
			a->depends[a->ndepends++] = v;
			break;
		}
		case LO_WAIT:
			bit = OPT_WAIT;
			if (parse_ll(v, 0, MAX_WAIT_S, &a->wait_s) != 0) {
				fprintf(stderr, "jobd: --wait: not a whole number of "
				        "seconds (0..%lld): %s\n", MAX_WAIT_S, v);
				return EX_USAGE;
			}
			break;
		case LO_STATUS: bit = OPT_STATUS; a->status = v; break;
		case LO_TYPE: bit = OPT_TYPE; a->type = v; break;
		case LO_LIMIT:
			bit = OPT_LIMIT;
			if (parse_ll(v, INT32_MIN, INT32_MAX, &a->limit) != 0) {
				fprintf(stderr, "jobd: --limit: not an integer: %s\n",
				        v);
				return EX_USAGE;
			}
			break;
		case ':':
			fprintf(stderr, "jobd: %s needs a value\n",
			        argv[optind - 1]);
			return EX_USAGE;
		default:
			fprintf(stderr, "jobd: unknown option: %s\n",
			        argv[optind - 1]);
			return EX_USAGE;
		}
		if (bit != 0 && bit != OPT_DEPENDS && (a->given & bit)) {
			fprintf(stderr, "jobd: --%s given twice\n",
			        option_name(opt));
			return EX_USAGE;
		}
		a->given |= bit;
	}
	for (int i = optind; i < argc; i++) {
		if (nwords == 4) {
			fprintf(stderr, "jobd: too many arguments: %s\n", argv[i]);
			return EX_USAGE;
		}
		words[nwords++] = argv[i];
	}
	if (nwords == 0) {
		if (a->help) {
			a->cmd = command_find("help");
			return 0;
		}
		fprintf(stderr, "jobd: no command\n");
		usage_all(stderr);
		return EX_USAGE;
	}
	a->cmd = command_find(words[0]);
	if (a->cmd == NULL) {
		fprintf(stderr, "jobd: unknown command: %s (jobd help)\n",
		        words[0]);
		return EX_USAGE;
	}
	if (a->help)
		return 0;
	a->nwords = nwords - 1;
	if (a->nwords < a->cmd->min_args || a->nwords > a->cmd->max_args) {
		fprintf(stderr, "jobd: %s: %s\nusage: jobd %s\n", a->cmd->name,
		        a->nwords < a->cmd->min_args ? "missing argument"
		                                     : "too many arguments",
		        a->cmd->synopsis);
		return EX_USAGE;
	}
	for (int i = 0; i < a->nwords; i++) {
		if (words[i + 1][0] == '\0') {
			fprintf(stderr, "jobd: %s: empty argument\n", a->cmd->name);
			return EX_USAGE;
		}
		a->words[i] = words[i + 1];
	}
	if ((a->given & ~a->cmd->opts) != 0) {
		for (const struct option *o = longopts; o->name != NULL; o++) {
			static const struct {
				int val;
				unsigned bit;
			} map[] = {
				{LO_PRIORITY, OPT_PRIORITY}, {LO_DELAY, OPT_DELAY},
				{LO_KEY, OPT_KEY}, {LO_DEPENDS, OPT_DEPENDS},
				{LO_WAIT, OPT_WAIT}, {LO_STATUS, OPT_STATUS},
				{LO_TYPE, OPT_TYPE}, {LO_LIMIT, OPT_LIMIT},
			};
			for (size_t k = 0; k < sizeof(map) / sizeof(map[0]); k++)
				if (map[k].val == o->val &&
				    (a->given & map[k].bit) &&
				    !(a->cmd->opts & map[k].bit)) {
					fprintf(stderr, "jobd: %s does not take "
					        "--%s\nusage: jobd %s\n",
					        a->cmd->name, o->name,
					        a->cmd->synopsis);
					return EX_USAGE;
				}
		}
	}
	return 0;
}

/* Client options that take a value (for client_selected). */
static bool
takes_value(const char *arg)
{
	static const char *const with_value[] = {
		"--config", "-c", "--url", "--priority", "--delay", "--key",
		"--depends-on", "--wait", "--status", "--type", "--limit",
	};

	for (size_t i = 0; i < sizeof(with_value) / sizeof(with_value[0]); i++)
		if (strcmp(arg, with_value[i]) == 0)
			return true;
	return false;
}

bool
client_selected(int argc, char **argv)
{
	if (argc < 2)
		return true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0)
			return i + 1 < argc;
		if (a[0] != '-' || a[1] == '\0')
			return true;
		if (takes_value(a))
			i++;
	}
	return false;
}

/* ---- HTTP ---- */

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct answer *a = arg;
	size_t len = size * n;
	char *more;

	if (a->len + len > MAX_ANSWER_BYTES) {
		a->too_big = true;
		return 0;
	}
	/* Doubling: a realloc per chunk copies the whole body each time
	 * wherever realloc cannot grow in place (quadratic). */
	if (a->len + len + 1 > a->cap) {
		size_t cap = a->cap == 0 ? 16384 : a->cap;
		while (cap < a->len + len + 1)
			cap *= 2;
		if ((more = realloc(a->body, cap)) == NULL)
			return 0;
		a->body = more;
		a->cap = cap;
	}
	memcpy(a->body + a->len, data, len);
	a->len += len;
	a->body[a->len] = '\0';
	return len;
}

static void
answer_reset(struct answer *a)
{
	free(a->body);
	memset(a, 0, sizeof(*a));
}

/* Proxies as libcurl takes them from the environment, but never for
 * this machine: the default URL is loopback, and a proxy configured for
 * the web must not see (or break) it. */
static void
client_noproxy(struct client *c)
{
	const char *np = getenv("no_proxy");
	char noproxy[4096];

	if (np == NULL || *np == '\0')
		np = getenv("NO_PROXY");
	snprintf(noproxy, sizeof(noproxy), "localhost,127.0.0.1,::1%s%s",
	         np != NULL && *np != '\0' ? "," : "", np != NULL ? np : "");
	curl_easy_setopt(c->curl, CURLOPT_NOPROXY, noproxy);
}

/*
 * Sends method base+path with the extra headers (NULL-terminated, may be
 * NULL) and body (NULL: none), allowing timeout_s for the whole exchange.
 * Fills a (reset first; the caller answer_resets it).  0 when the daemon
 * answered (any status), -1 when not (a->error says why).
 */
static int
http_request(struct client *c, const char *method, const char *path,
             const char *const headers[], const char *body, long timeout_s,
             struct answer *a)
{
	struct curl_slist *hl = NULL, *more;
	char *url = NULL;
	char cerr[CURL_ERROR_SIZE] = "";
	size_t n;
	CURLcode rc;
	int ret = -1;

	answer_reset(a);
	n = strlen(c->base) + strlen(path) + 1;
	url = malloc(n);
	if (url == NULL) {
		snprintf(a->error, sizeof(a->error), "out of memory");
		goto out;
	}
	snprintf(url, n, "%s%s", c->base, path);
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
		if ((more = curl_slist_append(hl, headers[i])) == NULL)
			goto oom;
		hl = more;
	}
	if (c->auth != NULL) {
		if ((more = curl_slist_append(hl, c->auth)) == NULL)
			goto oom;
		hl = more;
	}
	if (body != NULL) {
		if ((more = curl_slist_append(hl, "Content-Type: "
		                              "application/json")) == NULL)
			goto oom;
		hl = more;
	}
	if ((more = curl_slist_append(hl, "Accept: application/json")) == NULL ||
	    (hl = more, more = curl_slist_append(hl, "Expect:")) == NULL)
		goto oom;
	hl = more;

	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	if (body != NULL) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)strlen(body));
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)0);
	}
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "jobd/" JOBD_VERSION);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->curl, CURLOPT_MAXFILESIZE_LARGE,
	                 (curl_off_t)MAX_ANSWER_BYTES);
	client_noproxy(c);

	rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK) {
		if (a->too_big || rc == CURLE_FILESIZE_EXCEEDED)
			snprintf(a->error, sizeof(a->error), "%s: the answer is "
			         "larger than %u bytes", url, MAX_ANSWER_BYTES);
		else
			snprintf(a->error, sizeof(a->error), "%s: %s", url,
			         cerr[0] != '\0' ? cerr : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &a->status);
	if (a->body == NULL && (a->body = strdup("")) == NULL) {
		a->status = 0;
		snprintf(a->error, sizeof(a->error), "out of memory");
		goto out;
	}
	ret = 0;
	goto out;
oom:
	snprintf(a->error, sizeof(a->error), "out of memory");
out:
	if (ret != 0 && a->body == NULL)
		a->body = strdup("");
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	free(url);
	return ret;
}

/* With --json: the body as received, ended by a newline. */
static void
print_body(const struct answer *a)
{
	fwrite(a->body, 1, a->len, stdout);
	if (a->len == 0 || a->body[a->len - 1] != '\n')
		fputc('\n', stdout);
}

/*
 * For an answer that is not 2xx (or none at all): says why on stderr
 * (and with --json prints the problem body on stdout) and returns the
 * exit status: 65 for 4xx, 69 for none, 5xx or anything else.  Returns 0
 * for a 2xx answer, printing nothing.
 */
static int
answer_check(struct client *c, const struct answer *a)
{
	cJSON *p;
	const char *title = NULL, *detail = NULL;

	if (a->status == 0) {
		fprintf(stderr, "jobd: cannot reach the daemon: ");
		put_safe(stderr, a->error, false);
		fputc('\n', stderr);
		return EX_UNAVAILABLE;
	}
	if (a->status >= 200 && a->status < 300)
		return 0;
	if (c->json && a->len > 0)
		print_body(a);
	p = cJSON_ParseWithLength(a->body, a->len);
	if (p != NULL) {
		title = jstr(p, "title");
		detail = jstr(p, "detail");
	}
	fprintf(stderr, "jobd: %ld", a->status);
	if (title != NULL) {
		fputc(' ', stderr);
		put_safe(stderr, title, false);
	}
	if (detail != NULL) {
		fputs(": ", stderr);
		put_safe(stderr, detail, false);
	}
	fputc('\n', stderr);
	cJSON_Delete(p);
	return a->status >= 400 && a->status < 500 ? EX_DATAERR
	                                           : EX_UNAVAILABLE;
}

/* The 2xx body as JSON (caller deletes), or NULL after saying so. */
static cJSON *
answer_json(const struct answer *a)
{
	cJSON *o = cJSON_ParseWithLength(a->body, a->len);

	if (o == NULL)
		fprintf(stderr, "jobd: the daemon's answer (%ld) is not JSON\n",
		        a->status);
	return o;
}

/* ---- human output ---- */

static void
print_status(const struct client *c, const char *status, int width)
{
	const char *col = c->color ? status_color(status) : NULL;
	char *s = cell_dup(status);

	if (s == NULL)
		return;
	if (col != NULL)
		printf("%s%-*s\033[0m", col, width, s);
	else
		printf("%-*s", width, s);
	free(s);
}

/* The job's latest moment: finished, started, else created. */
static const char *
job_time(const cJSON *job)
{
	const char *t = jstr(job, "finished_at");

	if (t == NULL)
		t = jstr(job, "started_at");
	if (t == NULL)
		t = jstr(job, "created_at");
	return t;
}

/* "<id>  <type>  <status>  <when>" for one job. */
static void
print_job_line(const struct client *c, const cJSON *job, const char *type)
{
	char when[32] = "";
	char *id = cell_dup(jstr(job, "id"));
	char *ty = cell_dup(type != NULL ? type : jstr(job, "type"));
	long long t = parse_time_ms(job_time(job));

	if (id != NULL && ty != NULL) {
		printf("%s  %s  ", id, ty);
		print_status(c, jstr(job, "status"), 0);
		if (t >= 0)
			printf("  %s",
			       client_reltime(t, now_ms(CLOCK_REALTIME), when,
			                      sizeof(when)));
		putchar('\n');
	}
	free(id);
	free(ty);
}

/* A JSON value for humans: strings as they are, the rest as JSON. */
static void
print_value(const char *label, const cJSON *v)
{
	char *text;

	if (v == NULL || cJSON_IsNull(v))
		return;
	printf("%s: ", label);
	if (cJSON_IsString(v)) {
		put_safe(stdout, v->valuestring, true);
	} else if ((text = cJSON_PrintUnformatted(v)) != NULL) {
		put_safe(stdout, text, false);
		free(text);
	}
	putchar('\n');
}

/* The job line, then its result, error and progress when present. */
static void
print_job(const struct client *c, const cJSON *job)
{
	print_job_line(c, job, NULL);
	print_value("result", cJSON_GetObjectItemCaseSensitive(job, "result"));
	print_value("error", cJSON_GetObjectItemCaseSensitive(job, "error"));
	if (!status_final(jstr(job, "status")))
		print_value("progress",
		            cJSON_GetObjectItemCaseSensitive(job, "progress"));
}

/* A table: rows of ncols cells (owned strings), the first row the
 * header.  Columns are padded to their widest cell; a column named
 * STATUS is coloured. */
struct table {
	char **cells;
	size_t ncols, nrows, cap;
};

/* Appends one row; takes ownership of the cells.  0 or -1. */
static int
table_row(struct table *t, char **row)
{
	if (t->nrows + 1 > t->cap) {
		size_t cap = t->cap == 0 ? 16 : t->cap * 2;
		char **more = realloc(t->cells, cap * t->ncols * sizeof(*more));
		if (more == NULL)
			goto fail;
		t->cells = more;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++)
		if (row[i] == NULL)
			goto fail;
	memcpy(t->cells + t->nrows * t->ncols, row,
	       t->ncols * sizeof(*row));
	t->nrows++;
	return 0;
fail:
	for (size_t i = 0; i < t->ncols; i++)
		free(row[i]);
	return -1;
}

static void
table_print(const struct client *c, const struct table *t, int status_col)
{
	size_t w[16] = {0};

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols && i < 16; i++) {
			size_t n = strlen(t->cells[r * t->ncols + i]);
			if (n > w[i])
				w[i] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < t->ncols; i++) {
			const char *cell = t->cells[r * t->ncols + i];
			bool last = i + 1 == t->ncols;
			if (r == 0 && c->color)
				printf("\033[1m%-*s\033[0m", last ? 0 : (int)w[i],
				       cell);
			else if (r > 0 && (int)i == status_col)
				print_status(c, cell, last ? 0 : (int)w[i]);
			else
				printf("%-*s", last ? 0 : (int)w[i], cell);
			if (!last)
				fputs("  ", stdout);
		}
		putchar('\n');
	}
}

static void
table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
}

/* A relative time cell for an RFC 3339 string (or "-"). */
static char *
time_cell(const char *s)
{
	char buf[32];
	long long t = parse_time_ms(s);

	if (t < 0)
		return strdup("-");
	return strdup(client_reltime(t, now_ms(CLOCK_REALTIME), buf,
	                             sizeof(buf)));
}

/* A number, boolean or string cell ("-" for null or absent). */
static char *
value_cell(const cJSON *v)
{
	char buf[64];

	if (v == NULL || cJSON_IsNull(v))
		return strdup("-");
	if (cJSON_IsBool(v))
		return strdup(cJSON_IsTrue(v) ? "yes" : "no");
	if (cJSON_IsNumber(v)) {
		if (v->valuedouble == (double)(long long)v->valuedouble)
			snprintf(buf, sizeof(buf), "%lld",
			         (long long)v->valuedouble);
		else
			snprintf(buf, sizeof(buf), "%g", v->valuedouble);
		return strdup(buf);
	}
	if (cJSON_IsString(v))
		return cell_dup(v->valuestring);
	{
		char *text = cJSON_PrintUnformatted(v), *cell;
		cell = cell_dup(text != NULL ? text : "?");
		free(text);
		return cell;
	}
}

static char *
field_cell(const cJSON *o, const char *field)
{
	return value_cell(cJSON_GetObjectItemCaseSensitive(o, field));
}

/*
 * Prints the array `key` of body as a table: headers[i] over field
 * fields[i] (a field whose name ends in "_at" shown as a relative time).
 * 0, or 69 when the body is not what the API promises.
 */
static int
print_list(const struct client *c, const struct answer *a, const char *key,
           const char *const headers[], const char *const fields[],
           size_t ncols, int status_col)
{
	struct table t = {.ncols = ncols};
	cJSON *body = answer_json(a), *arr, *e;
	char *row[16];
	int ret = EX_UNAVAILABLE;

	if (body == NULL)
		return EX_UNAVAILABLE;
	arr = cJSON_GetObjectItemCaseSensitive(body, key);
	if (!cJSON_IsArray(arr)) {
		fprintf(stderr, "jobd: the daemon's answer has no \"%s\"\n", key);
		goto out;
	}
	for (size_t i = 0; i < ncols; i++)
		row[i] = strdup(headers[i]);
	if (table_row(&t, row) != 0)
		goto oom;
	cJSON_ArrayForEach(e, arr) {
		for (size_t i = 0; i < ncols; i++) {
			size_t n = strlen(fields[i]);
			if (n > 3 && strcmp(fields[i] + n - 3, "_at") == 0)
				row[i] = time_cell(jstr(e, fields[i]));
			else
				row[i] = field_cell(e, fields[i]);
		}
		if (table_row(&t, row) != 0)
			goto oom;
	}
	if (t.nrows > 1)
		table_print(c, &t, status_col);
	ret = EX_OK;
	goto out;
oom:
	fprintf(stderr, "jobd: out of memory\n");
	ret = EX_OSERR;
out:
	table_free(&t);
	cJSON_Delete(body);
	return ret;
}

/* ---- the progress bar (stderr, on a terminal) ---- */

struct bar {
	bool on;
	size_t drawn;            /* characters of the last drawing */
	long long start_ms;      /* CLOCK_MONOTONIC */
};

static void
bar_clear(struct bar *b)
{
	if (!b->on || b->drawn == 0)
		return;
	fputc('\r', stderr);
	for (size_t i = 0; i < b->drawn; i++)
		fputc(' ', stderr);
	fputc('\r', stderr);
	fflush(stderr);
	b->drawn = 0;
}

/* Draws progress.percent and .message (progress may be NULL: an empty
 * bar) beside the job's status and the time waited. */
static void
bar_show(struct bar *b, const char *status, const cJSON *prog)
{
	const cJSON *pc = cJSON_GetObjectItemCaseSensitive(prog, "percent");
	const char *msg = jstr(prog, "message");
	char line[256], cells[BAR_CELLS + 16];
	char *st = cell_dup(status), *m = NULL;
	int n;

	if (!b->on)
		goto out;
	if (msg != NULL && (m = cell_dup(msg)) != NULL && strlen(m) > 60)
		m[60] = '\0';
	client_bar(cJSON_IsNumber(pc) ? pc->valuedouble : -1, BAR_CELLS, cells,
	           sizeof(cells));
	n = snprintf(line, sizeof(line), "%s  %s  %llds%s%s", cells,
	             st != NULL ? st : "?",
	             (now_ms(CLOCK_MONOTONIC) - b->start_ms) / 1000,
	             m != NULL ? "  " : "", m != NULL ? m : "");
	if (n < 0)
		goto out;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	fputc('\r', stderr);
	fputs(line, stderr);
	for (size_t i = (size_t)n; i < b->drawn; i++)
		fputc(' ', stderr);
	fflush(stderr);
	b->drawn = (size_t)n > b->drawn ? (size_t)n : b->drawn;
out:
	free(st);
	free(m);
}

static void
bar_draw(struct bar *b, const cJSON *job)
{
	bar_show(b, jstr(job, "status"),
	         cJSON_GetObjectItemCaseSensitive(job, "progress"));
}

/* ---- following GET /events?job=ID (the bar's source when served) ---- */

#define SSE_LINE_MAX 65536

/* One event stream being read (WHATWG EventSource format). */
struct sse {
	struct client *c;
	struct bar *b;
	char line[SSE_LINE_MAX];
	size_t linelen;
	char event[32];
	char *data;              /* the event's data lines, joined by '\n' */
	size_t datalen;
	bool checked;            /* the answer's status and type were seen */
	bool served;             /* 200 text/event-stream */
	bool done;               /* the job's final-state event came */
	bool failed;             /* a line too long, out of memory */
	bool after_cr;           /* the last character was '\r' */
	long long deadline;      /* CLOCK_MONOTONIC ms; 0: none */
	char status[16];         /* the job's last status */
	cJSON *progress;         /* its last progress (owned) */
};

static void
sse_dispatch(struct sse *s)
{
	cJSON *o;

	if (s->data == NULL)
		goto out;
	o = cJSON_ParseWithLength(s->data, s->datalen);
	if (o != NULL && strcmp(s->event, "progress") == 0) {
		cJSON *p = cJSON_DetachItemFromObjectCaseSensitive(o,
		                                                   "progress");
		if (p != NULL) {
			cJSON_Delete(s->progress);
			s->progress = p;
		}
		bar_show(s->b, s->status[0] ? s->status : "running",
		         s->progress);
	} else if (o != NULL && strcmp(s->event, "job") == 0 &&
	           jstr(o, "status") != NULL) {
		snprintf(s->status, sizeof(s->status), "%s", jstr(o, "status"));
		if (status_final(s->status))
			s->done = true;
		else
			bar_show(s->b, s->status, s->progress);
	}
	cJSON_Delete(o);
out:
	free(s->data);
	s->data = NULL;
	s->datalen = 0;
	s->event[0] = '\0';
}

/* One line of the stream (without its end). */
static void
sse_line(struct sse *s, char *line, size_t len)
{
	char *value;
	size_t vlen;

	if (len == 0) {
		sse_dispatch(s);
		return;
	}
	if (line[0] == ':')
		return;                 /* a comment: ": ping" */
	value = memchr(line, ':', len);
	if (value == NULL) {
		vlen = 0;
		value = line + len;
	} else {
		*value++ = '\0';
		if (*value == ' ')
			value++;
		vlen = len - (size_t)(value - line);
	}
	if (strcmp(line, "event") == 0) {
		snprintf(s->event, sizeof(s->event), "%.*s", (int)vlen, value);
	} else if (strcmp(line, "data") == 0) {
		char *more = NULL;
		/* An event is a job's state or progress (4 KiB): one of
		 * many lines is no event of ours. */
		if (s->datalen + vlen > SSE_LINE_MAX ||
		    (more = realloc(s->data, s->datalen + vlen + 2)) == NULL) {
			s->failed = true;
			return;
		}
		s->data = more;
		if (s->datalen > 0)
			s->data[s->datalen++] = '\n';
		memcpy(s->data + s->datalen, value, vlen);
		s->datalen += vlen;
		s->data[s->datalen] = '\0';
	}
}

static size_t
on_sse(char *data, size_t size, size_t n, void *arg)
{
	struct sse *s = arg;
	size_t len = size * n;

	if (!s->checked) {
		long code = 0;
		char *ct = NULL;
		s->checked = true;
		curl_easy_getinfo(s->c->curl, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_getinfo(s->c->curl, CURLINFO_CONTENT_TYPE, &ct);
		s->served = code == 200 && ct != NULL &&
		            strncasecmp(ct, "text/event-stream", 17) == 0;
		if (s->served)
			bar_show(s->b, "...", NULL);
	}
	if (!s->served)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = data[i];
		if (ch == '\n' || ch == '\r') {
			/* "\r\n" ends one line, not two (even split
			 * between two reads). */
			bool crlf = ch == '\n' && s->after_cr;
			s->after_cr = ch == '\r';
			if (crlf)
				continue;
			s->line[s->linelen] = '\0';
			sse_line(s, s->line, s->linelen);
			s->linelen = 0;
			if (s->done || s->failed)
				return 0;
			continue;
		}
		if (s->linelen + 1 >= sizeof(s->line)) {
			s->failed = true;
			return 0;
		}
		s->after_cr = false;
		s->line[s->linelen++] = ch;
	}
	return len;
}

/* About once a second: redraws the bar (its clock) and ends the stream
 * at the deadline. */
static int
on_sse_tick(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
            curl_off_t un)
{
	struct sse *s = arg;
	long long now = now_ms(CLOCK_MONOTONIC);

	if (s->deadline != 0 && now >= s->deadline)
		return 1;
	if (s->served)
		bar_show(s->b, s->status[0] ? s->status
		                            : s->progress ? "running" : "...",
		         s->progress);
	return 0;
}

/*
 * Follows GET /events?job=ID, drawing the bar from its events, until the
 * job's final-state event, the stream's end, or the deadline (ms,
 * CLOCK_MONOTONIC; 0: none).  Returns true when the stream was served
 * (whatever happened then), false when the daemon does not serve it
 * (an older daemon: 404) or refused it: the caller long-polls instead.
 */
static bool
follow_events(struct client *c, const char *id, long long deadline,
              struct bar *b)
{
	struct sse *s = calloc(1, sizeof(*s));
	struct curl_slist *hl = NULL, *more;
	char *esc = NULL, *url = NULL;
	size_t n;
	bool served = false;

	if (s == NULL || (esc = curl_easy_escape(c->curl, id, 0)) == NULL)
		goto out;
	n = strlen(c->base) + strlen(esc) + 32;
	if ((url = malloc(n)) == NULL)
		goto out;
	snprintf(url, n, "%s/events?job=%s", c->base, esc);
	if ((hl = curl_slist_append(NULL, "Accept: text/event-stream")) == NULL)
		goto out;
	if (c->auth != NULL) {
		if ((more = curl_slist_append(hl, c->auth)) == NULL)
			goto out;
		hl = more;
	}
	s->c = c;
	s->b = b;
	s->deadline = deadline;
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "jobd/" JOBD_VERSION);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_sse);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_sse_tick);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, s);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	/* The daemon pings every 15 s: a stream silent for a minute is dead
	 * (the long-polls that follow say why). */
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, REQUEST_SLACK_S);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	client_noproxy(c);
	(void)curl_easy_perform(c->curl);
	served = s->served;
out:
	if (c->curl != NULL) {
		curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 1L);
	}
	curl_slist_free_all(hl);
	if (esc != NULL)
		curl_free(esc);
	free(url);
	if (s != NULL) {
		free(s->data);
		cJSON_Delete(s->progress);
		free(s);
	}
	return served;
}

/* ---- commands ---- */

/* "/jobs/<escaped id><suffix>" into a new string (caller frees). */
static char *
job_path(struct client *c, const char *id, const char *suffix)
{
	char *esc = curl_easy_escape(c->curl, id, 0), *path = NULL;
	size_t n;

	if (esc == NULL)
		return NULL;
	n = strlen(esc) + strlen(suffix) + 8;
	if ((path = malloc(n)) != NULL)
		snprintf(path, n, "/jobs/%s%s", esc, suffix);
	curl_free(esc);
	return path;
}

/*
 * Long-polls the job until it ends or, when bounded, until deadline
 * (CLOCK_MONOTONIC ms); the bar (may be off) shows its progress meanwhile.  a holds the
 * last answer.  Returns the exit status (0/1/2 by the final state, 75,
 * or 65/69 for a refused or failed request); prints the job.
 */
static int
wait_job(struct client *c, const char *id, bool bounded, long long deadline,
         struct bar *b, struct answer *a)
{
	cJSON *job = NULL;
	int ret;

	for (;;) {
		long long poll_s = b->on ? 1 : WAIT_POLL_S, left_ms;
		char suffix[40], *path;

		if (bounded) {
			left_ms = deadline - now_ms(CLOCK_MONOTONIC);
			if (left_ms < 0)
				left_ms = 0;
			if ((left_ms + 999) / 1000 < poll_s)
				poll_s = (left_ms + 999) / 1000;
		}
		snprintf(suffix, sizeof(suffix), "?wait=%lld", poll_s);
		if ((path = job_path(c, id, suffix)) == NULL) {
			fprintf(stderr, "jobd: out of memory\n");
			ret = EX_OSERR;
			goto out;
		}
		http_request(c, "GET", path, NULL, NULL, poll_s + REQUEST_SLACK_S,
		             a);
		free(path);
		if ((ret = answer_check(c, a)) != 0) {
			bar_clear(b);
			goto out;
		}
		cJSON_Delete(job);
		if ((job = answer_json(a)) == NULL) {
			ret = EX_UNAVAILABLE;
			goto out;
		}
		if (status_final(jstr(job, "status")) ||
		    (bounded && now_ms(CLOCK_MONOTONIC) >= deadline))
			break;
		bar_draw(b, job);
	}
	bar_clear(b);
	ret = status_exit(jstr(job, "status"));
	if (c->json)
		print_body(a);
	else
		print_job(c, job);
out:
	cJSON_Delete(job);
	return ret;
}

/* Reads stdin whole into a new string (caller frees).  NULL after
 * saying why (too large, read error, out of memory); *len its length. */
static char *
read_stdin(size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap), *more;

	if (buf == NULL)
		goto oom;
	for (;;) {
		size_t got;
		if (n + 1 >= cap) {
			if (cap >= MAX_PAYLOAD_BYTES + 1) {
				fprintf(stderr, "jobd: submit: the payload on stdin "
				        "is larger than %u bytes\n",
				        MAX_PAYLOAD_BYTES);
				free(buf);
				return NULL;
			}
			cap = cap * 2 > MAX_PAYLOAD_BYTES + 1 ? MAX_PAYLOAD_BYTES + 1
			                                      : cap * 2;
			if ((more = realloc(buf, cap)) == NULL)
				goto oom;
			buf = more;
		}
		got = fread(buf + n, 1, cap - 1 - n, stdin);
		n += got;
		if (got == 0) {
			if (ferror(stdin)) {
				fprintf(stderr, "jobd: submit: reading stdin: %s\n",
				        strerror(errno));
				free(buf);
				return NULL;
			}
			break;
		}
	}
	buf[n] = '\0';
	*len = n;
	return buf;
oom:
	free(buf);
	fprintf(stderr, "jobd: out of memory\n");
	return NULL;
}

static int
cmd_submit(struct client *c, const struct args *a)
{
	const char *type = a->words[0];
	const char *payload = a->nwords > 1 ? a->words[1] : NULL;
	char *input = NULL, *text = NULL, *path = NULL;
	char *keyh = NULL, preferh[64], prio[32];
	const char *headers[3] = {NULL, NULL, NULL};
	size_t plen = 0, nh = 0;
	cJSON *body = NULL, *parsed = NULL, *deps, *resp = NULL;
	struct answer ans = {0};
	long long deadline;
	int ret = EX_OSERR;

	if (payload != NULL && strcmp(payload, "-") == 0) {
		if ((input = read_stdin(&plen)) == NULL) {
			ret = EX_DATAERR;
			goto out;
		}
		payload = input;
	} else if (payload != NULL) {
		plen = strlen(payload);
	}
	/* Checked here, so that a typo is not a 400 after a round trip;
	 * sent as given (cJSON would round big integers through double). */
	if (payload != NULL &&
	    (strlen(payload) != plen ||
	     (parsed = cJSON_ParseWithOpts(payload, NULL, true)) == NULL)) {
		fprintf(stderr, "jobd: submit: the payload is not JSON (a "
		        "string must be quoted: '\"text\"')\n");
		ret = EX_DATAERR;
		goto out;
	}
	if ((body = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(body, "type", type) == NULL ||
	    (payload != NULL &&
	     cJSON_AddRawToObject(body, "payload", payload) == NULL))
		goto oom;
	snprintf(prio, sizeof(prio), "%lld", a->priority);
	if ((a->given & OPT_PRIORITY) &&
	    cJSON_AddRawToObject(body, "priority", prio) == NULL)
		goto oom;
	if ((a->given & OPT_DELAY) &&
	    cJSON_AddNumberToObject(body, "delay", a->delay_s) == NULL)
		goto oom;
	if (a->ndepends > 0) {
		if ((deps = cJSON_AddArrayToObject(body, "depends_on")) == NULL)
			goto oom;
		for (size_t i = 0; i < a->ndepends; i++) {
			cJSON *s = cJSON_CreateString(a->depends[i]);
			if (s == NULL || !cJSON_AddItemToArray(deps, s)) {
				cJSON_Delete(s);
				goto oom;
			}
		}
	}
	if ((text = cJSON_PrintUnformatted(body)) == NULL)
		goto oom;
	if (a->key != NULL) {
		size_t kn = strlen(a->key) + 20;
		if ((keyh = malloc(kn)) == NULL)
			goto oom;
		snprintf(keyh, kn, "Idempotency-Key: %s", a->key);
		headers[nh++] = keyh;
	}
	if (a->given & OPT_WAIT) {
		snprintf(preferh, sizeof(preferh), "Prefer: wait=%lld", a->wait_s);
		headers[nh++] = preferh;
	}
	deadline = now_ms(CLOCK_MONOTONIC) + a->wait_s * 1000;
	http_request(c, "POST", "/jobs", headers, text,
	             ((a->given & OPT_WAIT) ? (long)a->wait_s : 0) +
	             REQUEST_SLACK_S, &ans);
	if ((ret = answer_check(c, &ans)) != 0)
		goto out;
	if ((resp = answer_json(&ans)) == NULL) {
		ret = EX_UNAVAILABLE;
		goto out;
	}
	if (!(a->given & OPT_WAIT) || status_final(jstr(resp, "status"))) {
		ret = (a->given & OPT_WAIT) ? status_exit(jstr(resp, "status"))
		                            : EX_OK;
		if (c->json)
			print_body(&ans);
		else if (a->given & OPT_WAIT)
			print_job(c, resp);
		else
			print_job_line(c, resp, type);
		goto out;
	}
	/* 202 within the wait (the daemon's max_wait may be shorter than
	 * asked): wait on with GET for the rest. */
	if (jstr(resp, "id") == NULL) {
		fprintf(stderr, "jobd: the daemon's answer has no id\n");
		ret = EX_UNAVAILABLE;
		goto out;
	}
	{
		struct bar b = {0};
		ret = wait_job(c, jstr(resp, "id"), true, deadline, &b, &ans);
	}
	goto out;
oom:
	fprintf(stderr, "jobd: out of memory\n");
	ret = EX_OSERR;
out:
	free(keyh);
	free(path);
	free(input);
	free(text);
	cJSON_Delete(parsed);
	cJSON_Delete(body);
	cJSON_Delete(resp);
	answer_reset(&ans);
	return ret;
}

static int
cmd_get(struct client *c, const struct args *a, bool wait_cmd)
{
	struct answer ans = {0};
	struct bar b = {.start_ms = now_ms(CLOCK_MONOTONIC)};
	char *path = NULL;
	cJSON *job = NULL;
	int ret;

	if (wait_cmd || (a->given & OPT_WAIT)) {
		b.on = wait_cmd && !c->json && isatty(STDERR_FILENO);
		/* On a terminal, the bar follows the job's events when the
		 * daemon serves them; the long-polls then find it ended (or
		 * take over). */
		if (b.on)
			(void)follow_events(c, a->words[0],
			                    (a->given & OPT_WAIT)
			                        ? b.start_ms + a->wait_s * 1000
			                        : 0, &b);
		ret = wait_job(c, a->words[0], !wait_cmd || (a->given & OPT_WAIT),
		               b.start_ms + a->wait_s * 1000, &b, &ans);
		goto out;
	}
	if ((path = job_path(c, a->words[0], "")) == NULL) {
		fprintf(stderr, "jobd: out of memory\n");
		ret = EX_OSERR;
		goto out;
	}
	http_request(c, "GET", path, NULL, NULL, REQUEST_SLACK_S, &ans);
	if ((ret = answer_check(c, &ans)) != 0)
		goto out;
	if (c->json) {
		print_body(&ans);
	} else if ((job = answer_json(&ans)) != NULL) {
		print_job(c, job);
	} else {
		ret = EX_UNAVAILABLE;
	}
out:
	cJSON_Delete(job);
	free(path);
	answer_reset(&ans);
	return ret;
}

/* Appends "&name=<escaped value>" ('?' for the first) to q, which the
 * caller sized for it.  0, or -1 when out of memory. */
static int
query_add(struct client *c, char *q, size_t qlen, const char *name,
          const char *value)
{
	char *esc = curl_easy_escape(c->curl, value, 0);
	size_t n = strlen(q);

	if (esc == NULL)
		return -1;
	snprintf(q + n, qlen - n, "%c%s=%s", strchr(q, '?') ? '&' : '?', name,
	         esc);
	curl_free(esc);
	return 0;
}

static int
cmd_ls(struct client *c, const struct args *a)
{
	static const char *const headers[] = {"ID", "TYPE", "STATUS",
	                                      "ATTEMPT", "CREATED"};
	static const char *const fields[] = {"id", "type", "status", "attempt",
	                                     "created_at"};
	struct answer ans = {0};
	char num[32], *path;
	size_t plen = 64 + 3 * ((a->status ? strlen(a->status) : 0) +
	                        (a->type ? strlen(a->type) : 0));
	int ret;

	/* Sized for the escaped values: a long value is sent whole (and
	 * refused by the daemon), never cut into another query. */
	if ((path = malloc(plen)) == NULL) {
		fprintf(stderr, "jobd: out of memory\n");
		return EX_OSERR;
	}
	strcpy(path, "/jobs");
	snprintf(num, sizeof(num), "%lld", a->limit);
	if ((a->status != NULL &&
	     query_add(c, path, plen, "status", a->status) != 0) ||
	    (a->type != NULL && query_add(c, path, plen, "type", a->type) != 0) ||
	    ((a->given & OPT_LIMIT) &&
	     query_add(c, path, plen, "limit", num) != 0)) {
		fprintf(stderr, "jobd: out of memory\n");
		ret = EX_OSERR;
		goto out;
	}
	http_request(c, "GET", path, NULL, NULL, REQUEST_SLACK_S, &ans);
	if ((ret = answer_check(c, &ans)) != 0)
		goto out;
	if (c->json)
		print_body(&ans);
	else
		ret = print_list(c, &ans, "jobs", headers, fields, 5, 2);
out:
	free(path);
	answer_reset(&ans);
	return ret;
}

/* DELETE /jobs/ID or POST /jobs/ID/retry: the job's line. */
static int
cmd_job_verb(struct client *c, const struct args *a, bool cancel)
{
	struct answer ans = {0};
	char *path = job_path(c, a->words[0], cancel ? "" : "/retry");
	cJSON *job = NULL;
	int ret;

	if (path == NULL) {
		fprintf(stderr, "jobd: out of memory\n");
		return EX_OSERR;
	}
	http_request(c, cancel ? "DELETE" : "POST", path, NULL, NULL,
	             REQUEST_SLACK_S, &ans);
	if ((ret = answer_check(c, &ans)) != 0)
		goto out;
	if (c->json) {
		print_body(&ans);
	} else if ((job = answer_json(&ans)) != NULL) {
		if (cancel && ans.status == 202 && !status_final(jstr(job,
		                                                       "status")))
			printf("cancelling (the attempt is told to stop): ");
		print_job_line(c, job, NULL);
	} else {
		ret = EX_UNAVAILABLE;
	}
out:
	cJSON_Delete(job);
	free(path);
	answer_reset(&ans);
	return ret;
}

/* GET path and print its array key as a table (or the body). */
static int
cmd_list(struct client *c, const char *path, const char *key,
         const char *const headers[], const char *const fields[],
         size_t ncols)
{
	struct answer ans = {0};
	int ret;

	http_request(c, "GET", path, NULL, NULL, REQUEST_SLACK_S, &ans);
	if ((ret = answer_check(c, &ans)) != 0)
		goto out;
	if (c->json)
		print_body(&ans);
	else
		ret = print_list(c, &ans, key, headers, fields, ncols, -1);
out:
	answer_reset(&ans);
	return ret;
}

static int
cmd_schedules(struct client *c)
{
	static const char *const h[] = {"NAME", "CRON", "EVERY", "TYPE",
	                                "PAUSED", "NEXT", "LAST", "LAST JOB"};
	static const char *const f[] = {"name", "cron", "every", "type",
	                                "paused", "next_run_at", "last_run_at",
	                                "last_job_id"};

	return cmd_list(c, "/schedules", "schedules", h, f, 8);
}

static int
cmd_types(struct client *c)
{
	static const char *const h[] = {"NAME", "KIND", "PAUSED",
	                                "CONCURRENCY", "RATE", "QUEUED",
	                                "RUNNING"};
	static const char *const f[] = {"name", "kind", "paused", "concurrency",
	                                "rate", "queued", "running"};

	return cmd_list(c, "/types", "types", h, f, 7);
}

static int
cmd_nodes(struct client *c)
{
	static const char *const h[] = {"NAME", "BOOT ID", "STARTED",
	                                "HEARTBEAT", "RUNNING", "LEADER"};
	static const char *const f[] = {"name", "boot_id", "started_at",
	                                "heartbeat_at", "running", "leader"};

	return cmd_list(c, "/nodes", "nodes", h, f, 6);
}

/* ---- main ---- */

static int
client_open(struct client *c, const struct args *a)
{
	const char *url = a->url, *token = getenv("JOBD_TOKEN"),
	           *nc = getenv("NO_COLOR");
	size_t n;

	if (url == NULL || *url == '\0')
		url = getenv("JOBD_URL");
	if (url == NULL || *url == '\0')
		url = DEFAULT_URL;
	if (!header_value_ok(url)) {
		fprintf(stderr, "jobd: the URL has control characters\n");
		return EX_USAGE;
	}
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		fprintf(stderr, "jobd: the URL must start with http:// or "
		        "https://: %s\n", url);
		return EX_USAGE;
	}
	if ((c->base = strdup(url)) == NULL)
		goto oom;
	n = strlen(c->base);
	while (n > 0 && c->base[n - 1] == '/')
		c->base[--n] = '\0';
	if (token != NULL && *token != '\0') {
		if (!header_value_ok(token)) {
			fprintf(stderr, "jobd: JOBD_TOKEN has control "
			        "characters\n");
			return EX_USAGE;
		}
		n = strlen(token) + 32;
		if ((c->auth = malloc(n)) == NULL)
			goto oom;
		snprintf(c->auth, n, "Authorization: Bearer %s", token);
	}
	c->json = a->json;
	c->color = isatty(STDOUT_FILENO) && (nc == NULL || *nc == '\0');
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (c->curl = curl_easy_init()) == NULL) {
		fprintf(stderr, "jobd: cannot initialise libcurl\n");
		return EX_SOFTWARE;
	}
	return 0;
oom:
	fprintf(stderr, "jobd: out of memory\n");
	return EX_OSERR;
}

static void
client_close(struct client *c)
{
	if (c->curl != NULL) {
		curl_easy_cleanup(c->curl);
		curl_global_cleanup();
	}
	if (c->auth != NULL) {
		/* A token should not linger in freed memory. */
		memset(c->auth, 0, strlen(c->auth));
		free(c->auth);
	}
	free(c->base);
}

int
client_main(int argc, char **argv)
{
	struct args a = {0};
	struct client c = {0};
	int ret;

	if ((ret = parse_args(argc, argv, &a)) != 0)
		goto out;
	if (a.help) {
		if (a.cmd->id == CMD_HELP)
			usage_all(stdout);
		else
			usage_command(stdout, a.cmd);
		goto out;
	}
	if (a.cmd->id == CMD_HELP) {
		const struct command *cmd;
		if (a.nwords == 0) {
			usage_all(stdout);
		} else if ((cmd = command_find(a.words[0])) != NULL) {
			usage_command(stdout, cmd);
		} else {
			fprintf(stderr, "jobd: help: unknown command: %s\n",
			        a.words[0]);
			ret = EX_USAGE;
		}
		goto out;
	}
	if ((ret = client_open(&c, &a)) != 0)
		goto out;
	switch (a.cmd->id) {
	case CMD_SUBMIT: ret = cmd_submit(&c, &a); break;
	case CMD_GET: ret = cmd_get(&c, &a, false); break;
	case CMD_WAIT: ret = cmd_get(&c, &a, true); break;
	case CMD_LS: ret = cmd_ls(&c, &a); break;
	case CMD_CANCEL: ret = cmd_job_verb(&c, &a, true); break;
	case CMD_RETRY: ret = cmd_job_verb(&c, &a, false); break;
	case CMD_SCHEDULES: ret = cmd_schedules(&c); break;
	case CMD_TYPES: ret = cmd_types(&c); break;
	case CMD_NODES: ret = cmd_nodes(&c); break;
	case CMD_HELP: break;
	}
out:
	if (fflush(stdout) != 0 && ret == 0)
		ret = EX_IOERR;
	client_close(&c);
	free(a.depends);
	return ret;
}
