/*
 * test_client.c - `jobd COMMAND` as a client (issue 17, item 1; DESIGN
 * §9): build/jobd run as a child process against a running test daemon,
 * over loopback.  Every command, every exit status (0, 1, 2, 64, 65, 69,
 * 75), --json output parsed and compared with the API's own answer, the
 * payload from stdin, $JOBD_URL and --url, $JOBD_TOKEN against a daemon
 * with auth, output without escape codes off a terminal or with
 * NO_COLOR, colours and the progress bar on a pseudo-terminal.  A small
 * fake server stands in for a daemon that answers 5xx, non-JSON or too
 * much.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

#define HANDLERS \
	"[handler.once]\nbuiltin = fail\nmax_attempts = 1\n" \
	"[handler.shout]\ncommand = /bin/sh -c 'printf \"\\033[31mred\\033]0;t\\007\" >&2; exit 1'\n" \
	"max_attempts = 1\n" \
	"[schedule.nightly]\ncron = 30 2 * * *\ntype = echo\n"

static jd *d;

static void
setup(void)
{
	d = launch(4, HANDLERS);
}

static void
teardown(void)
{
	jd_free(d);
	d = NULL;
}

/* ---- running the client ---- */

struct run {
	int rc;                 /* exit status; -1 when it did not exit */
	char *out;              /* stdout (with a pty: stdout and stderr) */
	char *err;
};

static void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static void
append(char **buf, size_t *len, const char *data, size_t n)
{
	char *more = realloc(*buf, *len + n + 1);

	ck_assert_ptr_nonnull(more);
	memcpy(more + *len, data, n);
	*len += n;
	more[*len] = '\0';
	*buf = more;
}

/* The child's environment: JOBD_URL for port (unless env sets it; an
 * entry "NAME" without '=' removes NAME), no JOBD_TOKEN, NO_COLOR or
 * proxies unless env sets them. */
static void
child_env(int port, const char *const env[])
{
	char url[64];

	unsetenv("JOBD_TOKEN");
	unsetenv("NO_COLOR");
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	setenv("JOBD_URL", url, 1);
	for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
		const char *eq = strchr(env[i], '=');
		if (eq == NULL) {
			unsetenv(env[i]);
		} else {
			char name[64];
			snprintf(name, sizeof(name), "%.*s", (int)(eq - env[i]),
			         env[i]);
			setenv(name, eq + 1, 1);
		}
	}
}

static void
child_exec(const char *const argv[])
{
	const char *bin = getenv("JOBD_BIN");
	const char *args[32];
	size_t n = 0;

	if (bin == NULL)
		bin = "build/jobd";
	args[n++] = bin;
	for (size_t i = 0; argv[i] != NULL && n < 31; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	execv(bin, (char *const *)args);
	_exit(127);
}

static int
reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs `jobd argv...` with stdin_data (NULL: empty stdin), pipes for
 * stdout and stderr. */
static struct run
run_env(int port, const char *const env[], const char *stdin_data,
        size_t stdin_len, const char *const argv[])
{
	int in[2], out[2], err[2];
	struct run r = {.rc = -1};
	size_t olen = 0, elen = 0, sent = 0;
	pid_t pid;

	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(err, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		child_env(port, env);
		child_exec(argv);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (stdin_data == NULL || stdin_len == 0) {
		close(in[1]);
		in[1] = -1;
	} else {
		fcntl(in[1], F_SETFL, O_NONBLOCK);
	}
	r.out = strdup("");
	r.err = strdup("");
	for (;;) {
		struct pollfd p[3] = {{.fd = out[0], .events = POLLIN},
		                      {.fd = err[0], .events = POLLIN},
		                      {.fd = in[1], .events = POLLOUT}};
		char buf[65536];
		if (out[0] < 0 && err[0] < 0)
			break;
		if (poll(p, 3, -1) < 0) {
			ck_assert_int_eq(errno, EINTR);
			continue;
		}
		for (int i = 0; i < 2; i++) {
			int *fd = i == 0 ? &out[0] : &err[0];
			ssize_t n;
			if (*fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			n = read(*fd, buf, sizeof(buf));
			if (n <= 0) {
				close(*fd);
				*fd = -1;
			} else if (i == 0) {
				append(&r.out, &olen, buf, (size_t)n);
			} else {
				append(&r.err, &elen, buf, (size_t)n);
			}
		}
		if (in[1] >= 0 && (p[2].revents & (POLLOUT | POLLERR))) {
			ssize_t n = write(in[1], stdin_data + sent,
			                  stdin_len - sent);
			if (n > 0)
				sent += (size_t)n;
			if (n < 0 || sent == stdin_len) {
				close(in[1]);
				in[1] = -1;
			}
		}
	}
	if (in[1] >= 0)
		close(in[1]);
	r.rc = reap(pid);
	return r;
}

static struct run
run_args(const char *const argv[])
{
	return run_env(d->port, NULL, NULL, 0, argv);
}

#define RUN(...) run_args((const char *const[]){__VA_ARGS__, NULL})
#define RUN_ENV(env, ...) \
	run_env(d->port, (const char *const[]){env, NULL}, NULL, 0, \
	        (const char *const[]){__VA_ARGS__, NULL})

/* Runs the client on a pseudo-terminal (stdout and stderr both). */
static struct run
run_pty(const char *const env[], const char *const argv[])
{
	struct run r = {.rc = -1};
	size_t olen = 0;
	int master;
	pid_t pid = forkpty(&master, NULL, NULL, NULL);

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		child_env(d->port, env);
		child_exec(argv);
	}
	r.out = strdup("");
	r.err = strdup("");
	for (;;) {
		char buf[4096];
		ssize_t n = read(master, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;      /* EIO: the child closed the terminal */
		append(&r.out, &olen, buf, (size_t)n);
	}
	close(master);
	r.rc = reap(pid);
	return r;
}

#define assert_rc(r, want) \
	ck_assert_msg((r).rc == (want), "exit %d, expected %d; stdout: %s; " \
	              "stderr: %s", (r).rc, (want), (r).out, (r).err)

static void
assert_no_escape(const struct run *r)
{
	ck_assert_msg(strchr(r->out, '\033') == NULL, "escape in %s", r->out);
	ck_assert_msg(strchr(r->err, '\033') == NULL, "escape in %s", r->err);
}

/* The first word of the output (a job line starts with the id): a new
 * string. */
static char *
first_word(const char *s)
{
	size_t n = strcspn(s, " \n");
	char *w = strndup(s, n);

	ck_assert_ptr_nonnull(w);
	return w;
}

/* GET path from the API: its parsed body (caller deletes). */
static cJSON *
api_json(const char *method, const char *path, int want)
{
	struct jd_resp *r = jd_request(d, method, path, NULL, NULL);
	cJSON *o;

	assert_status(r, want);
	o = cJSON_Duplicate(jd_json(r), 1);
	ck_assert_ptr_nonnull(o);
	jd_resp_free(r);
	return o;
}

static cJSON *
parse_out(const struct run *r)
{
	cJSON *o = cJSON_Parse(r->out);

	ck_assert_msg(o != NULL, "--json printed no JSON: %s", r->out);
	return o;
}

static char *
job_status(const char *id)
{
	char path[128];
	cJSON *o;
	char *st;

	snprintf(path, sizeof(path), "/jobs/%s", id);
	o = api_json("GET", path, 200);
	st = strdup(jd_str(o, "status"));
	cJSON_Delete(o);
	return st;
}

static long long
job_count(void)
{
	return jd_sql_int(d, "SELECT count(*) FROM jobs");
}

/* ---- usage: 64, help: 0, the daemon still starts ---- */

START_TEST(test_usage)
{
	static const char *const bad[][5] = {
		{"frobnicate", NULL},
		{"ls", "--bogus", NULL},
		{"submit", NULL},
		{"get", NULL},
		{"wait", NULL},
		{"cancel", NULL},
		{"retry", NULL},
		{"ls", "extra", NULL},
		{"get", "a", "b", NULL},
		{"submit", "echo", "{}", "extra", NULL},
		{"ls", "--priority", "1", NULL},
		{"cancel", "x", "--wait", "1", NULL},
		{"get", "x", "--wait", NULL},
		{"get", "x", "--wait", "-1", NULL},
		{"get", "x", "--wait", "abc", NULL},
		{"get", "x", "--wait", "9223372036854775808", NULL},
		{"submit", "echo", "--priority", "1.5", NULL},
		{"submit", "echo", "--priority", "99999999999999999999", NULL},
		{"submit", "echo", "--delay", "nan", NULL},
		{"submit", "echo", "--delay", "", NULL},
		{"submit", "echo", "--key", "a\r\nX-Evil: 1", NULL},
		{"ls", "--limit", "ten", NULL},
		{"get", "", NULL},
		{"help", "nosuch", NULL},
		{"ls", "--url", "ftp://127.0.0.1/", NULL},
	};
	long long before = job_count();
	struct run r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = run_env(d->port, NULL, NULL, 0, bad[i]);
		ck_assert_msg(r.rc == 64, "%s %s: exit %d (%s)", bad[i][0],
		              bad[i][1] ? bad[i][1] : "", r.rc, r.err);
		ck_assert_msg(r.err[0] != '\0', "%s: nothing said", bad[i][0]);
		run_free(&r);
	}
	/* No arguments at all. */
	r = run_env(d->port, NULL, NULL, 0, (const char *const[]){NULL});
	assert_rc(r, 64);
	ck_assert_ptr_nonnull(strstr(r.err, "usage"));
	run_free(&r);
	ck_assert_int_eq(job_count(), before);

	r = RUN("help");
	assert_rc(r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "jobd submit TYPE"));
	ck_assert_ptr_nonnull(strstr(r.out, "jobd nodes"));
	run_free(&r);
	r = RUN("help", "submit");
	assert_rc(r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "--depends-on"));
	run_free(&r);
	r = RUN("wait", "--help");
	assert_rc(r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "usage: jobd wait ID"));
	run_free(&r);
	r = RUN("--help");      /* the daemon's help names the client */
	assert_rc(r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "--config"));
	ck_assert_ptr_nonnull(strstr(r.out, "jobd help"));
	run_free(&r);
	/* The daemon's options still mean the daemon. */
	r = RUN("--config", d->conf_path, "--check-config");
	assert_rc(r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "config OK"));
	run_free(&r);
	r = RUN("--check-config", "--config", d->conf_path);
	assert_rc(r, 0);
	run_free(&r);
	r = RUN("--json");
	assert_rc(r, 64);
	run_free(&r);
}
END_TEST

/* ---- submit ---- */

START_TEST(test_submit)
{
	struct run r;
	cJSON *o, *api, *deps;
	char *id, *dep, path[128];

	/* Human: one line, the id first; the job is stored. */
	r = RUN("submit", "echo", "{\"a\":1}");
	assert_rc(r, 0);
	assert_no_escape(&r);
	id = first_word(r.out);
	ck_assert_int_eq(strlen(id), 36);
	ck_assert_ptr_nonnull(strstr(r.out, "  echo  "));
	run_free(&r);
	snprintf(path, sizeof(path), "/jobs/%s", id);
	o = api_json("GET", path, 200);
	ck_assert_str_eq(jd_str(o, "type"), "echo");
	ck_assert_int_eq((int)jd_num(cJSON_GetObjectItem(o, "payload"), "a", 0),
	                 1);
	cJSON_Delete(o);
	dep = id;

	/* Options before the arguments and after them; --json is the
	 * 202 body. */
	r = RUN("submit", "--priority", "-7", "--json", "echo",
	        "--delay", "0.5", "--depends-on", dep, "[1,2]",
	        "--key", "k-1");
	assert_rc(r, 0);
	o = parse_out(&r);
	ck_assert_ptr_nonnull(jd_str(o, "id"));
	ck_assert_ptr_nonnull(jd_str(o, "href"));
	id = strdup(jd_str(o, "id"));
	cJSON_Delete(o);
	run_free(&r);
	snprintf(path, sizeof(path), "/jobs/%s", id);
	api = api_json("GET", path, 200);
	ck_assert_int_eq((int)jd_num(api, "priority", 0), -7);
	deps = cJSON_GetObjectItem(api, "depends_on");
	ck_assert_int_eq(cJSON_GetArraySize(deps), 1);
	ck_assert_str_eq(cJSON_GetArrayItem(deps, 0)->valuestring, dep);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(api,
	                                                        "payload")), 2);
	ck_assert_int_ge(jd_parse_time_ms(jd_str(api, "run_at")) -
	                 jd_parse_time_ms(jd_str(api, "created_at")), 500);
	cJSON_Delete(api);
	/* The same key and body: the same job (Idempotency-Key sent). */
	r = RUN("submit", "--priority", "-7", "--json", "echo",
	        "--delay", "0.5", "--depends-on", dep, "[1,2]",
	        "--key", "k-1");
	assert_rc(r, 0);
	o = parse_out(&r);
	ck_assert_str_eq(jd_str(o, "id"), id);
	cJSON_Delete(o);
	run_free(&r);
	/* The same key, another body: 409 -> 65. */
	r = RUN("submit", "echo", "[3]", "--key", "k-1");
	assert_rc(r, 65);
	ck_assert_ptr_nonnull(strstr(r.err, "409"));
	run_free(&r);
	free(id);
	free(dep);

	/* Refused by the daemon: unknown type, priority out of range. */
	r = RUN("submit", "nosuch");
	assert_rc(r, 65);
	ck_assert_ptr_nonnull(strstr(r.err, "422"));
	run_free(&r);
	r = RUN("submit", "echo", "--priority", "101");
	assert_rc(r, 65);
	run_free(&r);
	/* --json on a refusal: the problem body as received. */
	r = RUN("submit", "nosuch", "--json");
	assert_rc(r, 65);
	o = parse_out(&r);
	ck_assert_int_eq((int)jd_num(o, "status", 0), 422);
	cJSON_Delete(o);
	run_free(&r);
}
END_TEST

/* The payload: from stdin with "-", kept verbatim, refused (65, before
 * anything is sent) when it is not JSON. */
START_TEST(test_submit_payload)
{
	static const char big[] = "{\"n\": 9223372036854775808, \"s\": "
	                          "\"a\\u0000b\\u001b\"}";
	struct run r;
	cJSON *o;
	char *id, path[128];
	long long before;

	r = run_env(d->port, NULL, big, strlen(big),
	            (const char *const[]){"submit", "echo", "-", "--json",
	                                  NULL});
	assert_rc(r, 0);
	o = parse_out(&r);
	id = strdup(jd_str(o, "id"));
	cJSON_Delete(o);
	run_free(&r);
	snprintf(path, sizeof(path), "/jobs/%s", id);
	{
		struct jd_resp *g = jd_request(d, "GET", path, NULL, NULL);
		assert_status(g, 200);
		/* Not rounded through a double on the way. */
		ck_assert_msg(strstr(g->body, "9223372036854775808") != NULL,
		              "payload changed: %s", g->body);
		jd_resp_free(g);
	}
	free(id);

	/* Without a payload: null. */
	r = RUN("submit", "echo", "--json", "--wait", "10");
	assert_rc(r, 0);
	o = parse_out(&r);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "payload")));
	cJSON_Delete(o);
	run_free(&r);

	before = job_count();
	{
		static const char *const not_json[] = {
			"hello", "{", "{\"a\":1} x", "[1,]", "", "   ",
		};
		for (size_t i = 0; i < sizeof(not_json) / sizeof(*not_json);
		     i++) {
			r = RUN("submit", "echo", not_json[i]);
			if (not_json[i][0] == '\0') {
				/* An empty argument is wrong usage. */
				assert_rc(r, 64);
			} else {
				assert_rc(r, 65);
				ck_assert_ptr_nonnull(strstr(r.err, "not JSON"));
			}
			run_free(&r);
			r = run_env(d->port, NULL, not_json[i],
			            strlen(not_json[i]),
			            (const char *const[]){"submit", "echo", "-",
			                                  NULL});
			assert_rc(r, 65);
			run_free(&r);
		}
	}
	/* A NUL byte on stdin. */
	r = run_env(d->port, NULL, "{\"a\":\0}", 7,
	            (const char *const[]){"submit", "echo", "-", NULL});
	assert_rc(r, 65);
	run_free(&r);
	ck_assert_int_eq(job_count(), before);
}
END_TEST

/* submit --wait: the job's final state decides. */
START_TEST(test_submit_wait)
{
	struct run r;
	cJSON *o;

	r = RUN("submit", "echo", "\"hi\"", "--wait", "30");
	assert_rc(r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "succeeded"));
	ck_assert_ptr_nonnull(strstr(r.out, "result: hi"));
	run_free(&r);
	r = RUN("submit", "once", "--wait", "30");
	assert_rc(r, 1);
	ck_assert_ptr_nonnull(strstr(r.out, "failed"));
	ck_assert_ptr_nonnull(strstr(r.out, "error: "));
	run_free(&r);
	r = RUN("submit", "once", "--wait", "30", "--json");
	assert_rc(r, 1);
	o = parse_out(&r);
	ck_assert_str_eq(jd_str(o, "status"), "failed");
	cJSON_Delete(o);
	run_free(&r);
	/* Not finished within the wait: 75 (and, answered, not cancelled). */
	r = RUN("submit", "sleep", "{\"seconds\": 60}", "--wait", "0",
	        "--json");
	assert_rc(r, 75);
	o = parse_out(&r);
	{
		char *st = job_status(jd_str(o, "id"));
		ck_assert_str_ne(st, "cancelled");
		free(st);
	}
	cJSON_Delete(o);
	run_free(&r);
	r = RUN("submit", "sleep", "{\"seconds\": 60}", "--wait", "1");
	assert_rc(r, 75);
	run_free(&r);
	/* A dependency already failed: cancelled at once -> 2. */
	{
		char *f = submit_ok(d, "{\"type\":\"once\"}");
		struct jd_resp *w = wait_status(d, f, "failed", 20000);
		jd_resp_free(w);
		r = RUN("submit", "echo", "--depends-on", f, "--wait", "30");
		assert_rc(r, 2);
		ck_assert_ptr_nonnull(strstr(r.out, "cancelled"));
		run_free(&r);
		free(f);
	}
}
END_TEST

/* ---- get and wait ---- */

START_TEST(test_get_wait)
{
	struct run r;
	cJSON *o, *api;
	char *id, *sl, path[128];

	id = submit_ok(d, "{\"type\":\"echo\",\"payload\":{\"x\":[1,2]}}");
	jd_resp_free(wait_status(d, id, "succeeded", 20000));
	r = RUN("get", id);
	assert_rc(r, 0);
	assert_no_escape(&r);
	ck_assert(strncmp(r.out, id, 36) == 0);
	ck_assert_ptr_nonnull(strstr(r.out, "succeeded"));
	ck_assert_ptr_nonnull(strstr(r.out, "result: {\"x\":[1,2]}"));
	run_free(&r);
	/* --json: the API's answer. */
	r = RUN("get", id, "--json");
	assert_rc(r, 0);
	o = parse_out(&r);
	snprintf(path, sizeof(path), "/jobs/%s", id);
	api = api_json("GET", path, 200);
	ck_assert_msg(cJSON_Compare(o, api, true), "get --json: %s", r.out);
	cJSON_Delete(api);
	cJSON_Delete(o);
	run_free(&r);
	/* An ended job: get --wait and wait decide by its state. */
	r = RUN("get", "--wait", "5", id);
	assert_rc(r, 0);
	run_free(&r);
	r = RUN("wait", id, "--json");
	assert_rc(r, 0);
	o = parse_out(&r);
	ck_assert_str_eq(jd_str(o, "id"), id);
	cJSON_Delete(o);
	run_free(&r);
	free(id);

	/* Unknown and hostile ids: 404 -> 65, the path escaped. */
	r = RUN("get", "01900000-0000-7000-8000-000000000000");
	assert_rc(r, 65);
	ck_assert_ptr_nonnull(strstr(r.err, "404"));
	run_free(&r);
	r = RUN("get", "../types");
	assert_rc(r, 65);
	run_free(&r);
	r = RUN("get", "x?limit=1");
	assert_rc(r, 65);
	run_free(&r);
	r = RUN("wait", "nope");
	assert_rc(r, 65);
	run_free(&r);

	/* A running job: get 0, get --wait 0 and wait --wait 1: 75. */
	sl = submit_ok(d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":60}}");
	jd_resp_free(wait_status(d, sl, "running", 20000));
	r = RUN("get", sl);
	assert_rc(r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "running"));
	run_free(&r);
	r = RUN("get", sl, "--wait", "0");
	assert_rc(r, 75);
	run_free(&r);
	r = RUN("wait", sl, "--wait", "1", "--json");
	assert_rc(r, 75);
	o = parse_out(&r);
	ck_assert_str_eq(jd_str(o, "status"), "running");
	cJSON_Delete(o);
	run_free(&r);
	/* Cancelled while waited for: 2. */
	{
		struct jd_resp *c;
		snprintf(path, sizeof(path), "/jobs/%s", sl);
		c = jd_request(d, "DELETE", path, NULL, NULL);
		ck_assert(c->status == 200 || c->status == 202);
		jd_resp_free(c);
	}
	r = RUN("wait", sl);
	assert_rc(r, 2);
	ck_assert_ptr_nonnull(strstr(r.out, "cancelled"));
	run_free(&r);
	free(sl);

	/* A job that fails: 1, its error shown. */
	id = submit_ok(d, "{\"type\":\"once\"}");
	r = RUN("wait", id);
	assert_rc(r, 1);
	ck_assert_ptr_nonnull(strstr(r.out, "error: fail: this handler"));
	run_free(&r);
	r = RUN("get", id, "--wait", "10");
	assert_rc(r, 1);
	run_free(&r);
	free(id);
}
END_TEST

/* The job ends while `wait` long-polls it (not before it started). */
START_TEST(test_wait_ends)
{
	struct run r;
	char *id = submit_ok(d, "{\"type\":\"sleep\",\"payload\":"
	                        "{\"seconds\":1.5}}");

	r = RUN("wait", id);
	assert_rc(r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "succeeded"));
	run_free(&r);
	free(id);
}
END_TEST

/* ---- ls, cancel, retry ---- */

START_TEST(test_ls_cancel_retry)
{
	struct run r;
	cJSON *o, *api, *a, *b;
	char *ok, *bad, *sl;

	ok = submit_ok(d, "{\"type\":\"echo\"}");
	bad = submit_ok(d, "{\"type\":\"once\"}");
	jd_resp_free(wait_status(d, ok, "succeeded", 20000));
	jd_resp_free(wait_status(d, bad, "failed", 20000));

	r = RUN("ls", "--json");
	assert_rc(r, 0);
	o = parse_out(&r);
	api = api_json("GET", "/jobs", 200);
	ck_assert_msg(cJSON_Compare(o, api, true), "ls --json: %s", r.out);
	cJSON_Delete(api);
	cJSON_Delete(o);
	run_free(&r);

	/* Human: a header and one aligned row per job. */
	r = RUN("ls");
	assert_rc(r, 0);
	assert_no_escape(&r);
	ck_assert(strncmp(r.out, "ID ", 3) == 0);
	{
		const char *l1 = strchr(r.out, '\n') + 1;
		const char *l2 = strchr(l1, '\n') + 1;
		ck_assert_ptr_nonnull(strstr(r.out, bad));
		ck_assert_ptr_nonnull(strstr(r.out, ok));
		/* Columns line up: STATUS starts where each row's status
		 * does. */
		size_t col = (size_t)(strstr(r.out, "STATUS") - r.out);
		ck_assert(strncmp(l1 + col, "failed", 6) == 0 ||
		          strncmp(l1 + col, "succeeded", 9) == 0);
		ck_assert(strncmp(l2 + col, "failed", 6) == 0 ||
		          strncmp(l2 + col, "succeeded", 9) == 0);
		ck_assert(strstr(r.out, "ago") != NULL ||
		          strstr(r.out, "just now") != NULL);
	}
	run_free(&r);

	/* Filters and limit, as the API applies them. */
	r = RUN("ls", "--status", "failed", "--json");
	assert_rc(r, 0);
	o = parse_out(&r);
	a = cJSON_GetObjectItem(o, "jobs");
	ck_assert_int_eq(cJSON_GetArraySize(a), 1);
	ck_assert_str_eq(jd_str(cJSON_GetArrayItem(a, 0), "id"), bad);
	cJSON_Delete(o);
	run_free(&r);
	r = RUN("--json", "ls", "--type", "echo", "--limit", "1");
	assert_rc(r, 0);
	o = parse_out(&r);
	a = cJSON_GetObjectItem(o, "jobs");
	ck_assert_int_eq(cJSON_GetArraySize(a), 1);
	ck_assert_str_eq(jd_str(cJSON_GetArrayItem(a, 0), "id"), ok);
	cJSON_Delete(o);
	run_free(&r);
	r = RUN("ls", "--status", "bogus&x=1");
	assert_rc(r, 65);
	run_free(&r);
	r = RUN("ls", "--limit", "0");
	assert_rc(r, 65);
	run_free(&r);

	/* retry: a failed job goes back (200, 0); a succeeded one: 409. */
	r = RUN("retry", bad, "--json");
	assert_rc(r, 0);
	o = parse_out(&r);
	ck_assert_str_eq(jd_str(o, "id"), bad);
	cJSON_Delete(o);
	run_free(&r);
	r = RUN("retry", ok);
	assert_rc(r, 65);
	run_free(&r);

	/* cancel: a running job (202) and a queued one (200): 0; again,
	 * ended: 409 -> 65. */
	sl = submit_ok(d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":60}}");
	jd_resp_free(wait_status(d, sl, "running", 20000));
	r = RUN("cancel", sl);
	assert_rc(r, 0);
	ck_assert_ptr_nonnull(strstr(r.out, sl));
	run_free(&r);
	jd_resp_free(wait_status(d, sl, "cancelled", 20000));
	r = RUN("cancel", sl);
	assert_rc(r, 65);
	ck_assert_ptr_nonnull(strstr(r.err, "409"));
	run_free(&r);
	free(sl);
	sl = submit_ok(d, "{\"type\":\"echo\",\"delay\":3600}");
	r = RUN("cancel", "--json", sl);
	assert_rc(r, 0);
	o = parse_out(&r);
	ck_assert_str_eq(jd_str(o, "status"), "cancelled");
	cJSON_Delete(o);
	run_free(&r);
	b = NULL;
	cJSON_Delete(b);
	free(sl);
	free(ok);
	free(bad);
}
END_TEST

/* ---- schedules, types, nodes ---- */

START_TEST(test_lists)
{
	static const char *const cmds[] = {"schedules", "types", "nodes"};
	struct run r;
	cJSON *o, *api;

	for (size_t i = 0; i < 3; i++) {
		char path[32];
		snprintf(path, sizeof(path), "/%s", cmds[i]);
		r = RUN(cmds[i], "--json");
		assert_rc(r, 0);
		o = parse_out(&r);
		api = api_json("GET", path, 200);
		if (i == 2) {
			/* Heartbeats move: compare the names. */
			cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "nodes"),
			                              0);
			cJSON *b = cJSON_GetArrayItem(
				cJSON_GetObjectItem(api, "nodes"), 0);
			ck_assert_str_eq(jd_str(a, "name"), jd_str(b, "name"));
			ck_assert_str_eq(jd_str(a, "boot_id"),
			                 jd_str(b, "boot_id"));
		} else {
			ck_assert_msg(cJSON_Compare(o, api, true), "%s --json: %s",
			              cmds[i], r.out);
		}
		cJSON_Delete(api);
		cJSON_Delete(o);
		run_free(&r);

		r = RUN(cmds[i]);
		assert_rc(r, 0);
		assert_no_escape(&r);
		ck_assert(strncmp(r.out, "NAME ", 5) == 0);
		run_free(&r);
	}
	r = RUN("schedules");
	ck_assert_ptr_nonnull(strstr(r.out, "nightly"));
	ck_assert_ptr_nonnull(strstr(r.out, "30 2 * * *"));
	ck_assert_ptr_nonnull(strstr(r.out, "in "));
	run_free(&r);
	r = RUN("types");
	ck_assert_ptr_nonnull(strstr(r.out, "shout"));
	ck_assert_ptr_nonnull(strstr(r.out, "builtin"));
	ck_assert_ptr_nonnull(strstr(r.out, "exec"));
	run_free(&r);
	r = RUN("nodes");
	ck_assert_ptr_nonnull(strstr(r.out, "yes"));
	run_free(&r);
}
END_TEST

/* ---- where it talks to ---- */

/* A port nobody listens on (a daemon that was stopped). */
static int
closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);             /* bound, never listened: refused */
	return port;
}

START_TEST(test_url)
{
	char good[64], bad[64], envgood[80], envbad[80];
	struct run r;
	int cp = closed_port();

	snprintf(good, sizeof(good), "http://127.0.0.1:%d/", d->port);
	snprintf(bad, sizeof(bad), "http://127.0.0.1:%d", cp);
	snprintf(envgood, sizeof(envgood), "JOBD_URL=%s", good);
	snprintf(envbad, sizeof(envbad), "JOBD_URL=%s", bad);

	/* Unreachable: 69, for every command that talks. */
	{
		static const char *const cmds[][3] = {
			{"ls", NULL}, {"types", NULL}, {"schedules", NULL},
			{"nodes", NULL}, {"get", "x", NULL}, {"wait", "x", NULL},
			{"cancel", "x", NULL}, {"retry", "x", NULL},
			{"submit", "echo", NULL},
		};
		for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
			r = run_env(d->port, (const char *const[]){envbad, NULL},
			            NULL, 0, cmds[i]);
			ck_assert_msg(r.rc == 69, "%s: exit %d", cmds[i][0], r.rc);
			ck_assert_ptr_nonnull(strstr(r.err, "cannot reach"));
			run_free(&r);
		}
	}
	/* --url wins over $JOBD_URL; $JOBD_URL over the default. */
	r = RUN_ENV(envbad, "types", "--url", good);
	assert_rc(r, 0);
	run_free(&r);
	r = RUN_ENV(envgood, "types");
	assert_rc(r, 0);
	run_free(&r);
	r = RUN_ENV(envgood, "--url", bad, "types");
	assert_rc(r, 69);
	run_free(&r);
	/* Without either: 127.0.0.1:8080 (nothing there in the tests, or
	 * not this daemon: either way not an answer from d). */
	/* A proxy in the environment is not used for loopback. */
	r = run_env(d->port, (const char *const[]){
		"http_proxy=http://127.0.0.1:1", "HTTP_PROXY=http://127.0.0.1:1",
		"all_proxy=http://127.0.0.1:1", NULL}, NULL, 0,
	            (const char *const[]){"types", NULL});
	assert_rc(r, 0);
	run_free(&r);
}
END_TEST

/* A fake daemon: answers every connection with `answer` (and then
 * `extra` bytes of filler), count connections. */
struct fake_route {
	const char *request;    /* the request line's start, "GET /events" */
	const char *answer;
	bool keep_open;         /* leave the connection open afterwards */
};

struct fake {
	int fd, port, count;
	const char *answer;
	size_t extra;
	const struct fake_route *routes; /* when set: answer by request */
	int open_fds[8];
	int nopen;
	pthread_t t;
};

static void *
fake_run(void *arg)
{
	struct fake *f = arg;

	for (int i = 0; i < f->count; i++) {
		int c = accept(f->fd, NULL, NULL);
		char buf[8192];
		size_t got = 0;
		if (c < 0)
			break;
		while (got < sizeof(buf) - 1) {
			ssize_t n = read(c, buf + got, sizeof(buf) - 1 - got);
			if (n <= 0)
				break;
			got += (size_t)n;
			buf[got] = '\0';
			if (strstr(buf, "\r\n\r\n") != NULL)
				break;
		}
		if (f->routes != NULL) {
			const struct fake_route *rt = f->routes;
			while (rt->request != NULL &&
			       strncmp(buf, rt->request, strlen(rt->request)) != 0)
				rt++;
			if (rt->request == NULL) {
				close(c);
				continue;
			}
			/* In two writes, cut inside a line end. */
			{
				const char *cut = strstr(rt->answer, "\r\n\r\n");
				size_t half = cut != NULL ? (size_t)(cut - rt->answer) + 1
				                          : strlen(rt->answer);
				(void)!write(c, rt->answer, half);
				(void)!write(c, rt->answer + half,
				             strlen(rt->answer) - half);
			}
			if (rt->keep_open && f->nopen < 8) {
				f->open_fds[f->nopen++] = c;
				continue;
			}
			close(c);
			continue;
		}
		(void)!write(c, f->answer, strlen(f->answer));
		if (f->extra > 0) {
			char *fill = malloc(65536);
			memset(fill, 'x', 65536);
			for (size_t s = 0; s < f->extra; s += 65536)
				if (write(c, fill, 65536) <= 0)
					break;
			free(fill);
		}
		close(c);
	}
	return NULL;
}

static void
fake_start(struct fake *f)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);

	signal(SIGPIPE, SIG_IGN);
	f->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(f->fd, 0);
	ck_assert_int_eq(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(f->fd, 8), 0);
	ck_assert_int_eq(getsockname(f->fd, (struct sockaddr *)&a, &len), 0);
	f->port = ntohs(a.sin_port);
	ck_assert_int_eq(pthread_create(&f->t, NULL, fake_run, f), 0);
}

static void
fake_stop(struct fake *f)
{
	shutdown(f->fd, SHUT_RDWR);
	pthread_join(f->t, NULL);
	close(f->fd);
	for (int i = 0; i < f->nopen; i++)
		close(f->open_fds[i]);
}

START_TEST(test_bad_daemon)
{
	static const char *const answers[] = {
		"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
		"application/problem+json\r\nContent-Length: 61\r\n"
		"Connection: close\r\n\r\n"
		"{\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"x\"}  ",
		"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
		"Connection: close\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n"
		"\r\nhello",
		"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\n"
		"Content-Length: 0\r\nConnection: close\r\n\r\n",
		"garbage\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		struct fake f = {.answer = answers[i], .count = 1};
		struct run r;
		fake_start(&f);
		r = run_env(f.port, NULL, NULL, 0,
		            (const char *const[]){"types", NULL});
		ck_assert_msg(r.rc == 69, "answer %zu: exit %d (%s)", i, r.rc,
		              r.err);
		run_free(&r);
		fake_stop(&f);
	}
	/* An answer without end: abandoned at the bound, 69. */
	{
		struct fake f = {.answer = "HTTP/1.1 200 OK\r\nConnection: "
		                 "close\r\n\r\n{\"types\":[\"",
		                 .extra = (size_t)48 << 20, .count = 1};
		struct run r;
		fake_start(&f);
		r = run_env(f.port, NULL, NULL, 0,
		            (const char *const[]){"types", NULL});
		assert_rc(r, 69);
		ck_assert_msg(strstr(r.err, "larger than") != NULL, "%s", r.err);
		run_free(&r);
		fake_stop(&f);
	}
}
END_TEST

/* jobd wait on a terminal follows GET /events?job=ID when served: the
 * bar shows the progress events, the final-state event ends it (the
 * stream is left open here: the client must not wait for its end), and
 * the job's GET gives the result and the exit status. */
START_TEST(test_wait_events)
{
	static const char job[] =
		"{\"id\":\"J1\",\"type\":\"resize\",\"status\":\"failed\","
		"\"error\":\"boom\",\"created_at\":\"2026-01-01T00:00:00.000Z\"}";
	char job_answer[512];
	const struct fake_route routes[] = {
		{"GET /events?job=J1 ",
		 "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
		 "Cache-Control: no-cache\r\n\r\n"
		 ": ping\r\n\r\n"
		 "id: 1\r\nevent: job\r\ndata: {\"id\":\"J1\",\"type\":"
		 "\"resize\",\"status\":\"running\",\"attempt\":1}\r\n\r\n"
		 "id: 2\nevent: progress\ndata: {\"id\":\"J1\",\"type\":"
		 "\"resize\",\"progress\":{\"percent\":40,\"message\":"
		 "\"resizing\\u001b[2J\"}}\n\n"
		 "id: 3\nevent: job\ndata: {\"id\":\"J1\",\"type\":\"resize\","
		 "\"status\":\"failed\",\"attempt\":1}\n\n",
		 true},
		{"GET /jobs/J1", job_answer, false},
		{NULL, NULL, false},
	};
	struct fake f = {.routes = routes, .count = 2};
	struct run r;
	char url[64];

	snprintf(job_answer, sizeof(job_answer),
	         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	         strlen(job), job);
	fake_start(&f);
	snprintf(url, sizeof(url), "JOBD_URL=http://127.0.0.1:%d", f.port);
	r = run_pty((const char *const[]){url, "NO_COLOR=1", NULL},
	            (const char *const[]){"wait", "J1", NULL});
	assert_rc(r, 1);
	ck_assert_msg(strstr(r.out, "[############                  ]  40%") !=
	              NULL, "no bar at 40%%: %s", r.out);
	ck_assert_ptr_nonnull(strstr(r.out, "resizing?[2J"));
	ck_assert_ptr_nonnull(strstr(r.out, "error: boom"));
	ck_assert_msg(strchr(r.out, '\033') == NULL, "escape: %s", r.out);
	run_free(&r);
	fake_stop(&f);
}
END_TEST

/* ---- auth ---- */

START_TEST(test_token)
{
	struct jd_opts o = {.threads = 1};
	char tokens[320], conf[400], url[64];
	jd *a;
	FILE *f;
	struct run r;

	a = jd_new(&o);
	ck_assert_ptr_nonnull(a);
	snprintf(tokens, sizeof(tokens), "%s/tokens", a->dir);
	f = fopen(tokens, "w");
	ck_assert_ptr_nonnull(f);
	fputs("cli:client-secret-token-123\n", f);
	fclose(f);
	chmod(tokens, 0600);
	snprintf(conf, sizeof(conf), "[auth]\ntokens_file = %s\n", tokens);
	f = fopen(a->conf_path, "a");
	ck_assert_ptr_nonnull(f);
	fputs(conf, f);
	fclose(f);
	ck_assert_int_eq(jd_start(a), 0);
	snprintf(url, sizeof(url), "JOBD_URL=http://127.0.0.1:%d", a->port);

	r = run_env(a->port, (const char *const[]){url, NULL}, NULL, 0,
	            (const char *const[]){"ls", NULL});
	assert_rc(r, 65);
	ck_assert_ptr_nonnull(strstr(r.err, "401"));
	run_free(&r);
	r = run_env(a->port, (const char *const[]){url,
	            "JOBD_TOKEN=wrong-token-000000000", NULL}, NULL, 0,
	            (const char *const[]){"ls", NULL});
	assert_rc(r, 65);
	run_free(&r);
	r = run_env(a->port, (const char *const[]){url,
	            "JOBD_TOKEN=client-secret-token-123", NULL}, NULL, 0,
	            (const char *const[]){"submit", "echo", "1", "--wait",
	                                  "30", NULL});
	assert_rc(r, 0);
	run_free(&r);
	r = run_env(a->port, (const char *const[]){url,
	            "JOBD_TOKEN=client-secret-token-123", NULL}, NULL, 0,
	            (const char *const[]){"ls", "--json", NULL});
	assert_rc(r, 0);
	run_free(&r);
	/* A token that would inject a header: refused before sending. */
	r = run_env(a->port, (const char *const[]){url,
	            "JOBD_TOKEN=x\r\nX-Evil: 1", NULL}, NULL, 0,
	            (const char *const[]){"ls", NULL});
	assert_rc(r, 64);
	run_free(&r);
	jd_free(a);
}
END_TEST

/* ---- terminals and colours ---- */

START_TEST(test_terminal)
{
	struct run r;
	char *ok = submit_ok(d, "{\"type\":\"echo\"}");
	char *sh;

	jd_resp_free(wait_status(d, ok, "succeeded", 20000));
	/* On a terminal: colours. */
	r = run_pty(NULL, (const char *const[]){"ls", NULL});
	assert_rc(r, 0);
	ck_assert_msg(strstr(r.out, "\033[") != NULL, "no colour: %s", r.out);
	run_free(&r);
	/* NO_COLOR (any non-empty value): none, on a terminal too. */
	r = run_pty((const char *const[]){"NO_COLOR=1", NULL},
	            (const char *const[]){"ls", NULL});
	assert_rc(r, 0);
	ck_assert_msg(strchr(r.out, '\033') == NULL, "escape: %s", r.out);
	ck_assert_ptr_nonnull(strstr(r.out, ok));
	run_free(&r);
	r = run_pty((const char *const[]){"NO_COLOR=1", NULL},
	            (const char *const[]){"get", ok, NULL});
	assert_rc(r, 0);
	ck_assert(strchr(r.out, '\033') == NULL);
	run_free(&r);
	/* An empty NO_COLOR does not count. */
	r = run_pty((const char *const[]){"NO_COLOR=", NULL},
	            (const char *const[]){"get", ok, NULL});
	assert_rc(r, 0);
	ck_assert(strstr(r.out, "\033[32m") != NULL);
	run_free(&r);

	/* wait on a terminal: a bar while it runs, then the result. */
	free(ok);
	ok = submit_ok(d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":2.5}}");
	jd_resp_free(wait_status(d, ok, "running", 20000));
	r = run_pty((const char *const[]){"NO_COLOR=1", NULL},
	            (const char *const[]){"wait", ok, NULL});
	assert_rc(r, 0);
	ck_assert_msg(strstr(r.out, "[    ") != NULL, "no bar: %s", r.out);
	ck_assert_ptr_nonnull(strstr(r.out, "running"));
	ck_assert_ptr_nonnull(strstr(r.out, "succeeded"));
	ck_assert_msg(strchr(r.out, '\033') == NULL, "escape: %s", r.out);
	run_free(&r);
	free(ok);

	/* A job's error with escape sequences reaches the terminal
	 * escaped, never as codes. */
	sh = submit_ok(d, "{\"type\":\"shout\"}");
	jd_resp_free(wait_status(d, sh, "failed", 20000));
	r = run_pty((const char *const[]){"NO_COLOR=1", NULL},
	            (const char *const[]){"get", sh, NULL});
	assert_rc(r, 0);
	ck_assert_msg(strchr(r.out, '\033') == NULL, "escape: %s", r.out);
	ck_assert_msg(strchr(r.out, '\007') == NULL, "bell: %s", r.out);
	ck_assert_ptr_nonnull(strstr(r.out, "\\x1b[31mred"));
	run_free(&r);
	r = RUN("wait", sh);
	assert_rc(r, 1);
	assert_no_escape(&r);
	run_free(&r);
	free(sh);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("client");
	TCase *tc = tcase_create("client");

	tcase_set_timeout(tc, 180);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_usage);
	tcase_add_test(tc, test_submit);
	tcase_add_test(tc, test_submit_payload);
	tcase_add_test(tc, test_submit_wait);
	tcase_add_test(tc, test_get_wait);
	tcase_add_test(tc, test_wait_ends);
	tcase_add_test(tc, test_ls_cancel_retry);
	tcase_add_test(tc, test_lists);
	tcase_add_test(tc, test_url);
	tcase_add_test(tc, test_bad_daemon);
	tcase_add_test(tc, test_wait_events);
	tcase_add_test(tc, test_token);
	tcase_add_test(tc, test_terminal);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(suite());
}
