/*
 * test_pgattack.c - the PostgreSQL store attacked (issue 13 review):
 * hostile values through the writer's array literals, the readers' pool
 * at its limits, a reader killed, URIs whose errors must not show the
 * password, a second jobd on the same database.
 *
 * PostgreSQL only (make integration-pg, JOBD_TEST_STORE=pg); the suite
 * runs its own server.
 */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"
#include "pg.h"

static struct jd_pg srv;

static long
http_status(jd *d, const char *method, const char *path)
{
	struct jd_resp *r = jd_request(d, method, path, NULL, NULL);
	long st = r->status;

	jd_resp_free(r);
	return st;
}

/* Polls (every 50 ms) until a SQL count on d's database is want. */
static bool
wait_sql_int(jd *d, const char *sql, long long want, int timeout_ms)
{
	int64_t until = jd_mono_ms() + timeout_ms;

	while (jd_mono_ms() < until) {
		if (jd_sql_int(d, sql) == want)
			return true;
		jd_pause_ms(50);
	}
	return false;
}

/* ---- hostile values ---- */

/* Submits body (with an Idempotency-Key when key is not NULL), waits for
 * the echo to succeed, and checks that payload and result come back as
 * sent, through GET and in the table. */
static void
roundtrip(jd *d, const char *payload_json, const char *key)
{
	size_t blen = strlen(payload_json) + 64;
	char *body = malloc(blen), hk[400];
	const char *hdrs[3] = {"Content-Type: application/json", NULL, NULL};
	struct jd_resp *r;
	cJSON *want = cJSON_Parse(payload_json), *got;
	char *id;

	ck_assert_ptr_nonnull(body);
	ck_assert_ptr_nonnull(want);
	snprintf(body, blen, "{\"type\":\"echo\",\"payload\":%s}", payload_json);
	if (key != NULL) {
		snprintf(hk, sizeof(hk), "Idempotency-Key: %s", key);
		hdrs[1] = hk;
	}
	r = jd_request(d, "POST", "/jobs", hdrs, body);
	ck_assert_msg(r->status == 202, "POST: %ld %s", r->status, r->body);
	id = strdup(jd_resp_str(r, "id"));
	jd_resp_free(r);
	ck_assert_ptr_nonnull(id);
	r = jd_wait_for_status(d, id, "succeeded", 30000);
	ck_assert_int_eq(r->status, 200);
	got = cJSON_GetObjectItemCaseSensitive(jd_json(r), "payload");
	ck_assert_msg(cJSON_Compare(want, got, true), "payload changed");
	got = cJSON_GetObjectItemCaseSensitive(jd_json(r), "result");
	ck_assert_msg(cJSON_Compare(want, got, true), "result changed");
	jd_resp_free(r);
	if (key != NULL) {
		/* The same key again: the same job, replayed. */
		r = jd_request(d, "POST", "/jobs", hdrs, body);
		ck_assert_msg(r->status == 200 || r->status == 202,
		              "replay: %ld %s", r->status, r->body);
		ck_assert_str_eq(jd_resp_str(r, "id"), id);
		jd_resp_free(r);
	}
	free(id);
	free(body);
	cJSON_Delete(want);
}

START_TEST(test_hostile_values)
{
	struct jd_opts o = {.extra = "[server]\nmax_body = 8M\n"};
	jd *d = jd_launch(&o);
	static const char *const payloads[] = {
		"\"q\\\"uote\"", "\"back\\\\slash\\\\\"", "\"{br,ace}\"",
		"\"NULL\"", "\"\"", "null", "{\"\":\"\"}",
		"\"\\u00fcn\\u00ef \\u20ac \\ud834\\udd1e\"",
		"\"\xc3\xbcn\xc3\xaf \xe2\x82\xac \xf0\x9d\x84\x9e\"",
		"\"\\u0000 nul\"", "[\"a,b\",\"{c}\",\"\\\\\\\"\"]",
		"\"  spaced  \"", "\"\\t\\n\\r\"",
	};
	static const char *const keys[] = {
		"k\"q", "k\\b", "{k,}", "NULL", "k \"{\\,}\" z",
	};
	size_t big = 1u << 20;
	char *p;

	ck_assert_ptr_nonnull(d);
	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
		roundtrip(d, payloads[i], NULL);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		roundtrip(d, "\"k,\\\"{}\"", keys[i]);
	/* A 1 MiB string of quotes, backslashes, braces and commas. */
	p = malloc(big + 16);
	ck_assert_ptr_nonnull(p);
	{
		static const char *const tok[] = {"\\\"", "\\\\", "{", ",",
		                                   "}", "NULL"};
		size_t used = 1;
		p[0] = '"';
		for (size_t i = 0; used < big; i++) {
			size_t n = strlen(tok[i % 6]);
			memcpy(p + used, tok[i % 6], n);
			used += n;
		}
		p[used++] = '"';
		p[used] = '\0';
	}
	roundtrip(d, p, NULL);
	free(p);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs WHERE "
	                            "status <> 'succeeded'"), 0);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* Hostile values submitted at once from several clients: they share the
 * writer's batches (one array statement), and none spoils another. */
#define HOSTILE_THREADS 8
#define HOSTILE_EACH 40

struct hostile_arg {
	int port, idx;
	atomic_int ok;
};

static void *
hostile_main(void *arg)
{
	struct hostile_arg *a = arg;
	jd_client *c = jd_client_new(a->port);
	static const char *const vals[] = {
		"\\\"", "\\\\", "{", "}", ",", "NULL", "", "\xc3\xa9",
	};

	for (int i = 0; i < HOSTILE_EACH; i++) {
		char body[256], hk[128];
		const char *hdrs[3] = {"Content-Type: application/json", hk,
		                       NULL};
		const char *v = vals[(a->idx + i) % 8];
		struct jd_resp *r;
		snprintf(body, sizeof(body), "{\"type\":\"noop\",\"payload\":"
		         "[\"%s\",\"%s%s\"]}", v, v, v);
		snprintf(hk, sizeof(hk), "Idempotency-Key: %d,%d\"{%s}\\",
		         a->idx, i, (a->idx + i) % 2 ? "NULL" : "");
		r = jd_client_request(c, "POST", "/jobs", hdrs, body);
		if (r->status == 202)
			atomic_fetch_add(&a->ok, 1);
		else
			fprintf(stderr, "hostile: %ld %s\n", r->status,
			        r->body);
		jd_resp_free(r);
	}
	jd_client_free(c);
	return NULL;
}

START_TEST(test_hostile_values_batched)
{
	jd *d = jd_launch(NULL);
	struct hostile_arg a[HOSTILE_THREADS];
	pthread_t t[HOSTILE_THREADS];
	int ok = 0;

	ck_assert_ptr_nonnull(d);
	for (int i = 0; i < HOSTILE_THREADS; i++) {
		a[i].port = d->port;
		a[i].idx = i;
		atomic_init(&a[i].ok, 0);
		ck_assert_int_eq(pthread_create(&t[i], NULL, hostile_main,
		                                &a[i]), 0);
	}
	for (int i = 0; i < HOSTILE_THREADS; i++) {
		pthread_join(t[i], NULL);
		ok += atomic_load(&a[i].ok);
	}
	ck_assert_int_eq(ok, HOSTILE_THREADS * HOSTILE_EACH);
	ck_assert(wait_sql_int(d, "SELECT count(*) FROM jobs WHERE status = "
	                       "'succeeded'", ok, 60000));
	/* Keys and payloads stored as sent. */
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs WHERE "
	                            "idem_key = '3,4\"{NULL}\\'"), 1);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs WHERE "
	                            "payload = '[\"NULL\",\"NULLNULL\"]'"),
	                 HOSTILE_THREADS * HOSTILE_EACH / 8);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* Big payloads from several clients at once: a batch's insert statement
 * is sent early at 4 MiB of values (several statements a batch), each
 * payload kept whole. */
#define BIG_THREADS 6
#define BIG_EACH 5
#define BIG_LEN (900 * 1024)

static void *
big_main(void *arg)
{
	struct hostile_arg *a = arg;
	jd_client *c = jd_client_new(a->port);
	const char *hdrs[] = {"Content-Type: application/json", NULL};
	char *body = malloc(BIG_LEN + 100);

	if (body == NULL)
		return NULL;
	for (int i = 0; i < BIG_EACH; i++) {
		size_t used = (size_t)snprintf(body, 100, "{\"type\":\"noop\","
		                               "\"payload\":\"%d:", a->idx);
		struct jd_resp *r;
		while (used < BIG_LEN) {
			memcpy(body + used, "\\\"{,}\\\\", 7);
			used += 7;
		}
		memcpy(body + used, "\"}", 3);
		r = jd_client_request(c, "POST", "/jobs", hdrs, body);
		if (r->status == 202)
			atomic_fetch_add(&a->ok, 1);
		else
			fprintf(stderr, "big: %ld %.200s\n", r->status, r->body);
		jd_resp_free(r);
	}
	free(body);
	jd_client_free(c);
	return NULL;
}

START_TEST(test_big_payloads_batched)
{
	struct jd_opts o = {.extra = "[server]\nmax_body = 2M\n"};
	jd *d = jd_launch(&o);
	struct hostile_arg a[BIG_THREADS];
	pthread_t t[BIG_THREADS];
	int ok = 0;

	ck_assert_ptr_nonnull(d);
	for (int i = 0; i < BIG_THREADS; i++) {
		a[i].port = d->port;
		a[i].idx = i;
		atomic_init(&a[i].ok, 0);
		ck_assert_int_eq(pthread_create(&t[i], NULL, big_main, &a[i]),
		                 0);
	}
	for (int i = 0; i < BIG_THREADS; i++) {
		pthread_join(t[i], NULL);
		ok += atomic_load(&a[i].ok);
	}
	ck_assert_int_eq(ok, BIG_THREADS * BIG_EACH);
	ck_assert(wait_sql_int(d, "SELECT count(*) FROM jobs WHERE status = "
	                       "'succeeded'", ok, 60000));
	/* Each payload whole: its length as sent (the JSON text). */
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(DISTINCT length(payload))"
	                            " FROM jobs"), 1);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs WHERE "
	                            "payload NOT LIKE '\"_:\\\\\"{,}%'"), 0);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* ---- readers ---- */

#define READ_THREADS 12
#define READ_EACH 30

struct reads {
	int port;
	char path[80];
	atomic_int ok, other;
};

static void *
reads_main(void *arg)
{
	struct reads *rs = arg;
	jd_client *c = jd_client_new(rs->port);

	for (int i = 0; i < READ_EACH; i++) {
		const char *path = i % 3 == 0 ? rs->path
		                   : i % 3 == 1 ? "/jobs?limit=5" : "/types";
		struct jd_resp *r = jd_client_request(c, "GET", path, NULL,
		                                      NULL);
		if (r->status == 200)
			atomic_fetch_add(&rs->ok, 1);
		else
			atomic_fetch_add(&rs->other, 1);
		jd_resp_free(r);
	}
	jd_client_free(c);
	return NULL;
}

/* store.pool = 1, twelve clients reading at once: each waits for the one
 * connection (never 503 while the database answers); a reader connection
 * killed by an administrator is replaced before the next read. */
START_TEST(test_pool_of_one)
{
	struct jd_opts o = {.extra = "[store]\npool = 1\n"};
	jd *d = jd_launch(&o);
	struct reads rs = {0};
	pthread_t t[READ_THREADS];
	char *id;

	ck_assert_ptr_nonnull(d);
	id = jd_submit(d, "{\"type\":\"noop\"}");
	ck_assert_ptr_nonnull(id);
	jd_resp_free(jd_wait_for_status(d, id, "succeeded", 20000));
	rs.port = d->port;
	snprintf(rs.path, sizeof(rs.path), "/jobs/%s", id);
	for (int i = 0; i < READ_THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, reads_main, &rs),
		                 0);
	for (int i = 0; i < READ_THREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&rs.other), 0);
	ck_assert_int_eq(atomic_load(&rs.ok), READ_THREADS * READ_EACH);

	/* Kill every connection of jobd but the writer's (it holds the
	 * store's advisory lock): the readers. */
	ck_assert_int_eq(jd_sql_exec(d, "SELECT pg_terminate_backend(pid) "
	    "FROM pg_stat_activity WHERE application_name LIKE 'jobd pid %' "
	    "AND datname = current_database() AND pid NOT IN (SELECT pid "
	    "FROM pg_locks WHERE locktype = 'advisory' AND granted)"), 0);
	ck_assert(wait_sql_int(d, "SELECT count(*) FROM pg_stat_activity "
	    "WHERE application_name LIKE 'jobd pid %' AND datname = "
	    "current_database()", 1, 10000));
	ck_assert_int_eq(http_status(d, "GET", rs.path), 200);
	ck_assert_int_eq(http_status(d, "GET", "/jobs"), 200);
	ck_assert_int_eq(http_status(d, "GET", "/readyz"), 200);
	free(id);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* The writer's connection killed while idle: the next POST is served on
 * a new connection (no 503), and a job then runs. */
START_TEST(test_writer_killed_idle)
{
	jd *d = jd_launch(NULL);
	char *id;

	ck_assert_ptr_nonnull(d);
	id = jd_submit(d, "{\"type\":\"noop\"}");
	ck_assert_ptr_nonnull(id);
	jd_resp_free(jd_wait_for_status(d, id, "succeeded", 20000));
	free(id);
	ck_assert_int_eq(jd_sql_exec(d, "SELECT pg_terminate_backend(pid) "
	    "FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
	    "database = (SELECT oid FROM pg_database WHERE datname = "
	    "current_database())"), 0);
	ck_assert(wait_sql_int(d, "SELECT count(*) FROM pg_locks WHERE "
	    "locktype = 'advisory' AND granted AND database = (SELECT oid "
	    "FROM pg_database WHERE datname = current_database())", 0, 10000));
	id = jd_submit(d, "{\"type\":\"noop\",\"payload\":\"after\"}");
	ck_assert_ptr_nonnull(id);
	jd_resp_free(jd_wait_for_status(d, id, "succeeded", 20000));
	free(id);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/*
 * An administrator's ACCESS EXCLUSIVE lock on jobd.jobs (LOCK TABLE,
 * VACUUM FULL, ALTER TABLE) held for 20 s: reads answer 503 soon (their
 * lock_timeout), instead of holding the HTTP threads until the lock goes
 * (which stalled /healthz with them), and serve again after it.
 */
START_TEST(test_table_locked_reads)
{
	jd *d = jd_launch(NULL);
	char psql[400], *id;
	pid_t pid;
	int st;
	struct jd_resp *r;

	ck_assert_ptr_nonnull(d);
	id = jd_submit(d, "{\"type\":\"noop\"}");
	ck_assert_ptr_nonnull(id);
	jd_resp_free(jd_wait_for_status(d, id, "succeeded", 20000));
	snprintf(psql, sizeof(psql), "%s/psql", srv.bin);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null_fd = open("/dev/null", O_WRONLY);
		if (null_fd >= 0) /* ("connection to server was lost") */
			dup2(null_fd, 2);
		execl(psql, "psql", "-q", "-X", "-d", d->db_path, "-c",
		      "BEGIN; LOCK TABLE jobd.jobs IN ACCESS EXCLUSIVE MODE;"
		      " SELECT pg_sleep(20); COMMIT", (char *)NULL);
		_exit(127);
	}
	ck_assert(wait_sql_int(d, "SELECT count(*) FROM pg_locks WHERE "
	    "relation = 'jobd.jobs'::regclass AND mode = "
	    "'AccessExclusiveLock' AND granted", 1, 10000));
	r = jd_request(d, "GET", "/jobs", NULL, NULL);
	ck_assert_msg(r->status == 503, "GET /jobs under a table lock: %ld",
	              r->status);
	ck_assert_ptr_nonnull(jd_header(r, "Retry-After"));
	jd_resp_free(r);
	ck_assert_int_eq(http_status(d, "GET", "/healthz"), 200);
	ck_assert_int_eq(jd_sql_exec(d, "SELECT pg_terminate_backend(pid) "
	    "FROM pg_locks WHERE relation = 'jobd.jobs'::regclass AND mode = "
	    "'AccessExclusiveLock' AND granted"), 0);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(wait_sql_int(d, "SELECT count(*) FROM pg_locks WHERE "
	    "relation = 'jobd.jobs'::regclass AND mode = "
	    "'AccessExclusiveLock'", 0, 30000));
	r = jd_wait_for_status(d, id, "succeeded", 20000);
	ck_assert_int_eq(r->status, 200);
	jd_resp_free(r);
	free(id);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* ---- the writer's connection killed under load ---- */

#define BURST_THREADS 8
#define MAX_ACKED 100000

struct burst {
	int port;
	atomic_bool stop;
	pthread_mutex_t mu;
	char (*acked)[40];
	size_t nacked;
	atomic_long nother, n503;
	pthread_t t[BURST_THREADS];
};

static void *
burst_main(void *arg)
{
	struct burst *b = arg;
	jd_client *c = jd_client_new(b->port);
	const char *const hdrs[] = {"Content-Type: application/json", NULL};

	while (!atomic_load(&b->stop)) {
		struct jd_resp *r = jd_client_request(c, "POST", "/jobs", hdrs,
		    "{\"type\":\"noop\",\"payload\":\"a\\\"b,{c}\\\\\"}");
		if (r->status == 202) {
			const char *id = jd_resp_str(r, "id");
			pthread_mutex_lock(&b->mu);
			if (id != NULL && b->nacked < MAX_ACKED)
				snprintf(b->acked[b->nacked++], 40, "%s", id);
			pthread_mutex_unlock(&b->mu);
		} else if (r->status == 503 &&
		           jd_header(r, "Retry-After") != NULL) {
			atomic_fetch_add(&b->n503, 1);
		} else {
			fprintf(stderr, "burst: %ld %s\n", r->status, r->body);
			atomic_fetch_add(&b->nother, 1);
		}
		jd_resp_free(r);
	}
	jd_client_free(c);
	return NULL;
}

static size_t
burst_acked(struct burst *b)
{
	size_t n;

	pthread_mutex_lock(&b->mu);
	n = b->nacked;
	pthread_mutex_unlock(&b->mu);
	return n;
}

/*
 * pg_terminate_backend() on jobd's writer, twenty times during a burst of
 * submissions (each kill lands wherever the pipeline is: a batch being
 * sent, a COMMIT in flight, idle): every 202 is in the store, no answer is
 * other than 202 or 503 + Retry-After, jobd never exits, and every job
 * ends.  A terminated backend answers the COMMIT it was running before
 * its FATAL: that transaction committed, and jobd says so (202s, claims
 * kept, its counts right).  Before store_pg knew it, the 503s of such
 * COMMITs hid committed jobs (2101 in the store for 2081 202s) and
 * /metrics' jobd_jobs drifted (queued -20, running 8).
 */
START_TEST(test_writer_terminated_under_burst)
{
	jd *d = jd_launch(NULL);
	struct burst *b = calloc(1, sizeof(*b));
	int64_t until;
	long long left = -1;

	ck_assert_ptr_nonnull(d);
	ck_assert_ptr_nonnull(b);
	b->acked = calloc(MAX_ACKED, sizeof(*b->acked));
	ck_assert_ptr_nonnull(b->acked);
	b->port = d->port;
	pthread_mutex_init(&b->mu, NULL);
	for (int i = 0; i < BURST_THREADS; i++)
		ck_assert_int_eq(pthread_create(&b->t[i], NULL, burst_main, b),
		                 0);
	for (int k = 0; k < 20; k++) {
		size_t before = burst_acked(b);
		until = jd_mono_ms() + 30000;
		while (burst_acked(b) < before + 40) {
			ck_assert_msg(jd_mono_ms() < until, "no 202 after kill "
			              "%d", k);
			jd_pause_ms(10);
		}
		ck_assert_int_eq(jd_sql_exec(d, "SELECT pg_terminate_backend("
		    "pid) FROM pg_locks WHERE locktype = 'advisory' AND "
		    "granted AND database = (SELECT oid FROM pg_database "
		    "WHERE datname = current_database())"), 0);
	}
	atomic_store(&b->stop, true);
	for (int i = 0; i < BURST_THREADS; i++)
		pthread_join(b->t[i], NULL);
	ck_assert(!jd_proc_gone(d->pid));
	fprintf(stderr, "writer killed x20 under load: %zu answered 202, "
	        "%ld 503\n", b->nacked, atomic_load(&b->n503));
	ck_assert_int_eq(atomic_load(&b->nother), 0);
	/* Every 202 is there. */
	ck_assert_int_eq(jd_sql_count_ids(d, b->acked[0], sizeof(b->acked[0]),
	                                  b->nacked), (long long)b->nacked);
	/* A terminated backend answers its COMMIT before its FATAL: every
	 * job that committed got its 202 (none answered 503). */
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs"),
	                 (long long)b->nacked);
	/* Every job ends, once. */
	until = jd_mono_ms() + 60000;
	while (jd_mono_ms() < until) {
		left = jd_sql_int(d, "SELECT count(*) FROM jobs WHERE status IN "
		                  "('queued', 'running')");
		if (left == 0)
			break;
		jd_pause_ms(100);
	}
	ck_assert_msg(left == 0, "%lld jobs still queued or running", left);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs WHERE "
	                            "status <> 'succeeded' OR attempt <> 1 OR "
	                            "payload <> '\"a\\\"b,{c}\\\\\"'"), 0);
	/* The writer's counts (kept in memory since start-up) agree with
	 * the store's, unknown COMMITs included. */
	{
		long long n = jd_sql_int(d, "SELECT count(*) FROM jobs");
		double q = jd_metric(d, "jobd_jobs{status=\"queued\"}");
		double run = jd_metric(d, "jobd_jobs{status=\"running\"}");
		double ok = jd_metric(d, "jobd_jobs{status=\"succeeded\"}");
		ck_assert_msg(q == 0 && run == 0 && ok == (double)n,
		              "jobd_jobs: queued %g, running %g, succeeded %g; "
		              "the store has %lld, all succeeded", q, run, ok, n);
	}
	pthread_mutex_destroy(&b->mu);
	free(b->acked);
	free(b);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}

/* ---- URIs and passwords ---- */

/* jobd --check-config on a config whose store path is uri: its output
 * (stdout and stderr) in a new string. */
static char *
check_config(const char *uri)
{
	jd *d = jd_new(NULL);
	char path[400], cmd[1200];
	const char *bin = getenv("JOBD_BIN");
	FILE *f;
	char *out;
	size_t len = 0;

	ck_assert_ptr_nonnull(d);
	snprintf(path, sizeof(path), "%s/odd.ini", d->dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[server]\nlisten = 127.0.0.1:%d\n[store]\npath = %s\n"
	        "[handler.noop]\nbuiltin = noop\n", d->port, uri);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s --check-config -c %s >%s.out 2>&1",
	         bin ? bin : "build/jobd", path, path);
	(void)system(cmd);
	snprintf(cmd, sizeof(cmd), "%s.out", path);
	out = jd_read_file(cmd, &len);
	ck_assert_ptr_nonnull(out);
	jd_free(d);
	return out;
}

/* libpq's messages about a URI it cannot parse quote the URI, or a part
 * of it: the password must not reach the output (nor the journal). */
START_TEST(test_bad_uri_hides_password)
{
	static const char *const uris[] = {
		"postgresql://u:S3cretPw@[::1/db",
		"postgresql://127.0.0.1/db?password=S3cretPw%zz",
		"postgresql://127.0.0.1/db?password=S3cretPw=x",
		"postgresql://u:S3cretPw@127.0.0.1:99999999999/db",
	};

	for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
		char *out = check_config(uris[i]);
		ck_assert_msg(strstr(out, "S3cret") == NULL, "%s: %s", uris[i],
		              out);
		free(out);
	}
}
END_TEST

/* Odd but valid URIs pass --check-config. */
START_TEST(test_odd_uris_accepted)
{
	static const char *const uris[] = {
		"postgres://", "postgresql:///jobd?host=/tmp",
		"postgresql://[::1]:5432/jobd?sslmode=disable",
	};

	for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
		char *out = check_config(uris[i]);
		ck_assert_msg(strstr(out, "config OK") != NULL, "%s: %s",
		              uris[i], out);
		free(out);
	}
}
END_TEST

/* A schema version that is no version (a corrupted jobd.meta): jobd
 * refuses to start, saying so, and does not run "migrations" from an
 * index before the first (it read migrations[-1]). */
START_TEST(test_negative_schema_version)
{
	static const char *const bad[] = {"-1", "-2147483648"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		jd *d = jd_launch(NULL);
		char sql[200], *log;

		ck_assert_ptr_nonnull(d);
		ck_assert_int_eq(jd_stop(d, 20000), 0);
		snprintf(sql, sizeof(sql), "UPDATE meta SET value = '%s' WHERE "
		         "key = 'schema_version'", bad[i]);
		ck_assert_int_eq(jd_sql_exec(d, sql), 0);
		ck_assert_int_ne(jd_start(d), 0);
		ck_assert_msg(WIFEXITED(d->wait_status), "jobd died of signal "
		              "%d", WTERMSIG(d->wait_status));
		ck_assert_int_ne(WEXITSTATUS(d->wait_status), 0);
		log = jd_wait_log(d, "schema version", 5000);
		ck_assert_ptr_nonnull(log);
		free(log);
		jd_free(d);
	}
}
END_TEST

/* ---- found by the review, fixed after it ---- */

/* The store's display (start-up log) masked only the first password=. */
START_TEST(test_second_password_hidden)
{
	jd *d = jd_new(NULL);
	char uri[700];
	char *log;

	ck_assert_ptr_nonnull(d);
	snprintf(uri, sizeof(uri), "%s%spassword=x&password=", d->db_path,
	         strchr(d->db_path, '?') ? "&" : "?");
	/* (the server trusts local connections: any password works) */
	{
		char *conf, *p, *nconf;
		size_t len;
		FILE *f;
		conf = jd_read_file(d->conf_path, &len);
		ck_assert_ptr_nonnull(conf);
		p = strstr(conf, d->db_path);
		ck_assert_ptr_nonnull(p);
		nconf = malloc(len + 200);
		ck_assert_ptr_nonnull(nconf);
		snprintf(nconf, len + 200, "%.*s%sS3cretPw%s", (int)(p - conf),
		         conf, uri, p + strlen(d->db_path));
		f = fopen(d->conf_path, "w");
		ck_assert_ptr_nonnull(f);
		fputs(nconf, f);
		fclose(f);
		free(conf);
		free(nconf);
	}
	ck_assert_int_eq(jd_start(d), 0);
	log = jd_wait_log(d, "ready", 10000);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, "S3cret") == NULL, "%s", log);
	free(log);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* Points b's config at a's database. */
static void
share_store(jd *b, const jd *a)
{
	char *conf, *p, *nconf;
	size_t len;
	FILE *f;

	conf = jd_read_file(b->conf_path, &len);
	ck_assert_ptr_nonnull(conf);
	p = strstr(conf, b->db_path);
	ck_assert_ptr_nonnull(p);
	nconf = malloc(len + strlen(a->db_path) + 1);
	ck_assert_ptr_nonnull(nconf);
	snprintf(nconf, len + strlen(a->db_path) + 1, "%.*s%s%s",
	         (int)(p - conf), conf, a->db_path, p + strlen(b->db_path));
	f = fopen(b->conf_path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(nconf, f);
	fclose(f);
	free(conf);
	free(nconf);
}

/* A second jobd on the same database while the first runs is refused
 * (exit 73) when the first holds its connection. */
START_TEST(test_second_jobd_refused)
{
	jd *a = jd_launch(NULL), *b = jd_new(NULL);

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	share_store(b, a);
	ck_assert_int_ne(jd_start(b), 0);
	ck_assert(WIFEXITED(b->wait_status));
	ck_assert_int_eq(WEXITSTATUS(b->wait_status), 73);
	ck_assert_int_eq(jd_stop(a, 20000), 0);
	jd_free(b);
	jd_free(a);
}
END_TEST

/*
 * The first jobd's writer connection dropped while idle (an
 * administrator's pg_terminate_backend, a network blip): its session
 * advisory lock went with it, and it takes it back only with its next
 * batch.  A second jobd started meanwhile must still be refused while the
 * first runs; instead it starts, recovers (requeues the first's running
 * jobs: two executions at once) and serves, and the first is left
 * answering 503 forever.
 */
START_TEST(test_second_jobd_after_writer_drop)
{
	jd *a = jd_launch(NULL), *b = jd_new(NULL);
	char *id;
	int rc;

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	id = jd_submit(a, "{\"type\":\"noop\"}");
	ck_assert_ptr_nonnull(id);
	jd_resp_free(jd_wait_for_status(a, id, "succeeded", 20000));
	free(id);
	ck_assert_int_eq(jd_sql_exec(a, "SELECT pg_terminate_backend(pid) "
	    "FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
	    "database = (SELECT oid FROM pg_database WHERE datname = "
	    "current_database())"), 0);
	ck_assert(wait_sql_int(a, "SELECT count(*) FROM pg_locks WHERE "
	    "locktype = 'advisory' AND granted AND database = (SELECT oid "
	    "FROM pg_database WHERE datname = current_database())", 0, 10000));
	share_store(b, a);
	rc = jd_start(b);
	if (rc == 0) {
		long sa, sb;
		/* Both serve, or one of them is a zombie: either is wrong. */
		jd_pause_ms(500);
		sa = http_status(a, "GET", "/readyz");
		sb = http_status(b, "GET", "/readyz");
		jd_stop(b, 20000);
		ck_abort_msg("a second jobd started on a database in use "
		             "(readyz: first %ld, second %ld)", sa, sb);
	}
	ck_assert_int_eq(WEXITSTATUS(b->wait_status), 73);
	ck_assert_int_eq(jd_stop(a, 20000), 0);
	jd_free(b);
	jd_free(a);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("pgattack");
	TCase *tc = tcase_create("pgattack");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_hostile_values);
	tcase_add_test(tc, test_hostile_values_batched);
	tcase_add_test(tc, test_big_payloads_batched);
	tcase_add_test(tc, test_pool_of_one);
	tcase_add_test(tc, test_table_locked_reads);
	tcase_add_test(tc, test_writer_killed_idle);
	tcase_add_test(tc, test_writer_terminated_under_burst);
	tcase_add_test(tc, test_bad_uri_hides_password);
	tcase_add_test(tc, test_odd_uris_accepted);
	tcase_add_test(tc, test_second_jobd_refused);
	tcase_add_test(tc, test_negative_schema_version);
	tcase_add_test(tc, test_second_password_hidden);
	tcase_add_test(tc, test_second_jobd_after_writer_drop);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed, rc;

	if (!jd_store_is_pg()) {
		printf("pgattack: PostgreSQL only (make integration-pg)\n");
		return 0;
	}
	rc = jd_pg_start(&srv);
	if (rc == 77) {
		printf("pgattack: no PostgreSQL server here; skipped\n");
		return 0;
	}
	if (rc != 0) {
		fprintf(stderr, "pgattack: cannot start PostgreSQL\n");
		return 1;
	}
	setenv("JOBD_TEST_PG_URI", srv.uri, 1);
	setenv("JOBD_TEST_PG_BIN", srv.bin, 1);
	if (jd_global_init() != 0)
		return 1;
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	jd_pg_stop(&srv);
	return failed ? 1 : 0;
}
