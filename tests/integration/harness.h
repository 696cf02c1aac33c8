/*
 * harness.h - run the real jobd for integration tests.
 *
 * A jd is one daemon under test: its own temporary directory (config file,
 * SQLite store, stderr log), a free loopback port picked at creation, and a
 * NOTIFY_SOCKET the harness owns, so that start-up waits for the daemon's
 * READY=1 instead of sleeping.  The HTTP helpers use libcurl (one easy
 * handle per client, kept alive between requests); jd_raw() sends exact
 * bytes for what libcurl refuses to produce (request smuggling, headers
 * without a body).  Nothing here calls Check: every helper returns an
 * error value and says why on stderr, and the tests assert.
 *
 * Threads: a jd and its default client belong to the thread that made
 * them.  A jd_client may be used by one thread at a time; make one per
 * thread (test_crash does).  jd_new() initialises libcurl once.
 *
 * Environment: JOBD_BIN (default build/jobd) names the daemon binary;
 * JOBD_KEEP, when set, keeps the temporary directories (and databases)
 * for inspection; JOBD_ITEST_ROOT (set by jd_global_init) is where they
 * are made.  JOBD_OPENAPI_LOG, when it names a directory, gets one JSON
 * line per answer received (<dir>/<suite>.jsonl) for tests/openapi/check.py.
 *
 * The store: SQLite (<dir>/jobs.db) unless JOBD_TEST_STORE=pg, which
 * gives every jd a PostgreSQL database of its own (made by jd_new, kept
 * across restarts, dropped by jd_free) on one private server for the
 * run: the one tests/pg/with_server.sh started (JOBD_TEST_PG_URI, its
 * psql in JOBD_TEST_PG_BIN), or else one jd_global_init starts for the
 * test binary (tests/pg/pg.sh; it exports those two for its children).
 * Such a daemon also gets STATE_DIRECTORY=<dir>, as systemd would give
 * it, where it keeps jobd.pgroups (beside the file on SQLite).  Suites
 * read and write the store with jd_sql_*, which go to either.
 */
#ifndef JOBD_ITEST_HARNESS_H
#define JOBD_ITEST_HARNESS_H

#include <cJSON.h>
#include <curl/curl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define JD_READY_TIMEOUT_MS 10000

/* What the generated configuration holds besides the fixed parts. */
struct jd_opts {
	int threads;            /* [workers] threads; 0 = 4 */
	bool no_default_handlers; /* leave out noop/echo/sleep/fail */
	const char *extra;      /* INI text appended verbatim (may repeat
	                           [server], [store], [workers] headers, but
	                           must not set a key the harness sets) */
	const struct jd *share_store; /* PostgreSQL: use this jd's database
	                           (several nodes on one store); it stays
	                           the owner's, dropped with the owner */
};

/*
 * The generated file:
 *   [server]  listen = 127.0.0.1:<port>
 *   [store]   path = <dir>/jobs.db
 *   [workers] threads = <threads>
 *   [handler.noop] builtin = noop     [handler.echo] builtin = echo
 *   [handler.sleep] builtin = sleep   [handler.fail] builtin = fail,
 *       max_attempts = 3, backoff_base = 10ms, backoff_max = 50ms
 *   <extra>
 */

typedef struct jd_client jd_client;

typedef struct jd {
	char dir[256];          /* the temporary directory */
	char conf_path[300];
	char db_path[300];      /* the config's [store] path: <dir>/jobs.db,
	                           or (JOBD_TEST_STORE=pg) the URI of pg_db */
	char pg_db[64];         /* its PostgreSQL database; "" on SQLite */
	bool db_borrowed;       /* pg_db belongs to another jd (share_store) */
	char log_path[300];
	char notify_name[108];  /* abstract socket name, without the '@' */
	int notify_fd;
	int port;
	pid_t pid;              /* > 0 while the daemon runs */
	int wait_status;        /* waitpid status of its last exit */
	jd_client *client;      /* the default client of jd_request() */
} jd;

/* One answer.  headers are "Name: value" lines of the final response. */
struct jd_header {
	char *name;
	char *value;
};

struct jd_resp {
	long status;            /* 0 when the request failed */
	char *body;             /* NUL-terminated, never NULL */
	size_t body_len;
	struct jd_header *headers;
	size_t nheaders;
	cJSON *json;            /* parsed on demand by jd_json() */
	char error[CURL_ERROR_SIZE]; /* why status is 0 */
};

/* ---- daemon ---- */

/* Call once from main(), before srunner_run_all: makes the run's root
 * directory (exported as JOBD_ITEST_ROOT, so forked tests inherit it),
 * under which every jd_new() makes its own, and removes it at exit unless
 * JOBD_KEEP is set.  This is what cleans up after a failed forked test:
 * Check ends it with _exit(), before its teardown and atexit handlers.
 * 0 or -1. */
int jd_global_init(void);

/* Creates the directory, picks a port, writes the config.  Does not start
 * the daemon.  NULL on failure (reason on stderr). */
jd *jd_new(const struct jd_opts *opts);

/* Starts (or restarts, on the same directory, store and port) the daemon
 * and waits up to JD_READY_TIMEOUT_MS for READY=1.  0 on success, -1 on
 * failure (the daemon is killed and its log is copied to stderr). */
int jd_start(jd *d);

/* jd_new + jd_start; NULL on failure. */
jd *jd_launch(const struct jd_opts *opts);

/* SIGTERM, then waits up to timeout_ms for the process to exit.  Returns
 * its exit status (0..255), 128+signal if a signal ended it, or -1 if it
 * did not exit in time (it is then killed with SIGKILL). */
int jd_stop(jd *d, int timeout_ms);

/* SIGKILL and reap.  Returns like jd_stop. */
int jd_kill9(jd *d);

/* Waits up to timeout_ms for a notification datagram containing `what`
 * (e.g. "STOPPING=1").  0 when seen, -1 on timeout. */
int jd_wait_notify(jd *d, const char *what, int timeout_ms);

/* Kills the daemon if it runs, frees everything and removes the directory
 * (unless JOBD_KEEP is set).  Accepts NULL. */
void jd_free(jd *d);

/* ---- HTTP ---- */

/* A client with its own curl handle, for port.  jd_client_free accepts
 * NULL. */
jd_client *jd_client_new(int port);
void jd_client_free(jd_client *c);

/* Sends method path (path starts with '/') with extra request headers
 * (a NULL-terminated array of "Name: value", or NULL) and body (NULL: no
 * body; "" an empty one).  The harness adds no Content-Type of its own
 * and disables libcurl's Expect: 100-continue unless the caller passes an
 * Expect header.  Returns a new answer the caller frees with jd_resp_free
 * (never NULL except when out of memory); status 0 means no answer. */
struct jd_resp *jd_client_request(jd_client *c, const char *method,
                                  const char *path,
                                  const char *const headers[],
                                  const char *body);
struct jd_resp *jd_request(jd *d, const char *method, const char *path,
                           const char *const headers[], const char *body);
void jd_resp_free(struct jd_resp *r);

/* The value of a response header, by case-insensitive name; NULL when
 * absent.  Borrowed from r. */
const char *jd_header(const struct jd_resp *r, const char *name);

/* POST /jobs with Content-Type: application/json.  Returns the new job's
 * id (caller frees) when the answer is 202, else NULL (the answer goes to
 * stderr). */
char *jd_submit(jd *d, const char *json);
char *jd_client_submit(jd_client *c, const char *json, long *status_out);

/* Polls GET /jobs/<id> every 20 ms until its status is `status` or
 * timeout_ms passes.  Returns the last answer (caller frees) when the
 * status was reached, else NULL (the last status goes to stderr). */
struct jd_resp *jd_wait_for_status(jd *d, const char *id, const char *status,
                                   int timeout_ms);

/* Sends exactly len bytes on a new connection and reads the answer (up to
 * timeout_ms).  Returns its status code, or -1 when there was none.  When
 * answer is not NULL it receives the raw answer (caller frees). */
int jd_raw(jd *d, const void *bytes, size_t len, int timeout_ms,
           char **answer);

/* ---- JSON ---- */

/* The parsed body (borrowed from r; NULL when it is not JSON). */
cJSON *jd_json(struct jd_resp *r);
/* A string field of an object; NULL when absent or not a string. */
const char *jd_str(const cJSON *obj, const char *field);
/* A number field of an object; `def` when absent or not a number. */
double jd_num(const cJSON *obj, const char *field, double def);
/* jd_str(jd_json(r), field). */
const char *jd_resp_str(struct jd_resp *r, const char *field);

/* Parses "YYYY-MM-DDTHH:MM:SS.mmmZ" (RFC 3339 UTC with milliseconds) into
 * ms since the epoch; -1 when s is NULL or not in that exact form. */
int64_t jd_parse_time_ms(const char *s);

/* ---- the store, SQLite or PostgreSQL ---- */

/* True when JOBD_TEST_STORE=pg: every jd made now uses PostgreSQL. */
bool jd_store_is_pg(void);

/*
 * SQL on d's store, whichever it is.  Write it for both: the table is
 * jobs (on PostgreSQL the harness's session has search_path = jobd);
 * status is text, flags 0/1, times integer µs; nothing SQLite-only
 * (rowid, iif, PRAGMA, sqlite_master).  Each call opens its own
 * connection (a psql run on PostgreSQL, ~10-20 ms), so poll no faster
 * than the harness's other helpers do.
 */
/* The first column of the first row as a new string (caller frees);
 * NULL on error (said on stderr), no row, or NULL. */
char *jd_sql_text(jd *d, const char *sql);
/* The first column of the first row, which must be an integer; -1 on
 * error, no row or NULL (said on stderr). */
long long jd_sql_int(jd *d, const char *sql);
/* How many of the n job ids (36 characters each, in slots of stride
 * bytes) are in d's store: asked 2,000 at a time (a psql command line
 * each stays under the kernel's 128 KiB per argument).  -1 on error. */
long long jd_sql_count_ids(jd *d, const char *ids, size_t stride, size_t n);
/* Runs sql (one or more statements) for its effect: 0 or -1. */
int jd_sql_exec(jd *d, const char *sql);
/* s as an SQL string literal, quotes doubled ('it''s'): a new string the
 * caller frees; NULL when out of memory. */
char *jd_sql_literal(const char *s);
/* Whether the daemon has made its store yet: SQLite, the file exists;
 * PostgreSQL, the schema jobd exists in d's database (which the harness
 * made empty).  -1 when that cannot be told. */
int jd_store_made(jd *d);

/* ---- SQLite only ---- */

/* Opens the daemon's store read-write (never creates it).  NULL on
 * failure (and always under JOBD_TEST_STORE=pg: use jd_sql_*).  Close
 * with sqlite3_close. */
sqlite3 *jd_db_open(jd *d);
/* The first column of the first row of sql as a new string (caller
 * frees); NULL on error or no row. */
char *jd_db_text(sqlite3 *db, const char *sql);
/* The first column of the first row as an integer; -1 on error. */
long long jd_db_int(sqlite3 *db, const char *sql);

/* ---- metrics ---- */

/* One series of GET /metrics (its name with labels, as printed): its
 * value, or -1 when absent or unreachable. */
double jd_metric(jd *d, const char *series);

/* Polls jd_metric until it equals want; false (and a line on stderr)
 * after timeout_ms. */
bool jd_wait_metric(jd *d, const char *series, double want, int timeout_ms);

/* ---- files ---- */

/* The whole file, NUL-terminated (caller frees), its length in *len (may
 * be NULL); NULL when it cannot be read. */
char *jd_read_file(const char *path, size_t *len);

/* Polls d's log (every 20 ms) until it contains needle: the log (caller
 * frees), or NULL after timeout_ms. */
char *jd_wait_log(const jd *d, const char *needle, int timeout_ms);

/* ---- processes ---- */

/* A number field of /proc/<pid>/status ("VmRSS:" in kB, "Threads:"...);
 * -1 when absent. */
long jd_proc_status(pid_t pid, const char *field);

/* Reaps pid if it is an orphan reparented to us, then: is it gone? */
bool jd_proc_gone(pid_t pid);

/* ---- misc ---- */

int64_t jd_now_ms(void);            /* CLOCK_REALTIME */
int64_t jd_mono_ms(void);           /* CLOCK_MONOTONIC */
void jd_pause_ms(int ms);           /* between polls only */

#endif
