/*
 * test_pgserver.c - the private PostgreSQL of the integration tests
 * (pg.h, tests/pg/pg.sh; issue 13), the seed of the PostgreSQL store's
 * suites:
 *  - a server starts on 127.0.0.1, answers SQL, is durable
 *    (synchronous_commit and fsync on), and stops: no process, no
 *    directory left;
 *  - one server per suite, started in an unchecked fixture (the Check
 *    parent), serves every test; a test child that ends, or calls
 *    jd_pg_stop() on it, does not stop it;
 *  - a database per test (jd_pg_create_db) is isolated from the others;
 *  - a starter killed with SIGKILL still gets its server stopped and its
 *    directory removed (the guard process);
 *  - an SQL error is an error;
 *  - the harness's switch JOBD_TEST_STORE=pg: jd_new() makes a database
 *    per jd on the run's server and writes its URI into the config,
 *    jd_free() drops it, and jd_sql_* read and write it (search_path =
 *    jobd) with the same answers as on SQLite.
 * With no PostgreSQL server binaries on the machine every test passes
 * after saying it skipped (scripts/deps.sh installs them).
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"
#include "pg.h"

/* The suite's server (unchecked fixture); skip when there is none. */
static struct jd_pg suite_pg;
static int suite_rc = -1;

static void
suite_setup(void)
{
	suite_rc = jd_pg_start(&suite_pg);
}

static void
suite_teardown(void)
{
	if (suite_rc == 0)
		jd_pg_stop(&suite_pg);
}

#define NEED_SUITE_PG() do { \
		if (suite_rc == 77) { \
			fprintf(stderr, "skipped: no PostgreSQL server\n"); \
			return; \
		} \
		ck_assert_msg(suite_rc == 0, "the suite's server did not start"); \
	} while (0)

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Alive and not a zombie. */
static bool
pid_alive(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;

	if (pid <= 0 || kill(pid, 0) != 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return false;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (p == NULL || (p = strrchr(buf, ')')) == NULL)
		return true;
	return p[1] != ' ' || p[2] != 'Z';
}

static bool
exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

/* Waits up to timeout_ms for pid to be gone and dir removed. */
static bool
wait_gone(pid_t pid, const char *dir, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 50) {
		if (!pid_alive(pid) && !exists(dir))
			return true;
		sleep_ms(50);
	}
	return false;
}

START_TEST(start_query_stop)
{
	struct jd_pg pg;
	char out[256], dir[256];
	pid_t pid;
	int rc = jd_pg_start(&pg);

	if (rc == 77) {
		fprintf(stderr, "skipped: no PostgreSQL server\n");
		return;
	}
	ck_assert_msg(rc == 0, "jd_pg_start failed");
	ck_assert_msg(strncmp(pg.uri, "postgresql://postgres@127.0.0.1:", 32) == 0,
	              "uri %s", pg.uri);
	ck_assert_int_gt(pg.port, 0);
	ck_assert(jd_pg_running(&pg));
	ck_assert_int_eq(jd_pg_sql(&pg, NULL, "select 1", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "1");
	ck_assert_int_eq(jd_pg_sql(&pg, NULL, "show synchronous_commit", out,
	                           sizeof(out)), 0);
	ck_assert_str_eq(out, "on");
	ck_assert_int_eq(jd_pg_sql(&pg, NULL, "show fsync", out, sizeof(out)),
	                 0);
	ck_assert_str_eq(out, "on");
	ck_assert_int_eq(jd_pg_sql(&pg, NULL, "select current_database()", out,
	                           sizeof(out)), 0);
	ck_assert_str_eq(out, "jobd");

	pid = pg.server_pid;
	snprintf(dir, sizeof(dir), "%s", pg.dir);
	jd_pg_stop(&pg);
	ck_assert_msg(!pid_alive(pid), "server %d still running", (int)pid);
	ck_assert_msg(!exists(dir), "%s still there", dir);
	ck_assert(!jd_pg_running(&pg));
	jd_pg_stop(&pg); /* twice: nothing */
}
END_TEST

START_TEST(suite_server_survives_children)
{
	char out[64];
	pid_t child;
	int st;

	NEED_SUITE_PG();
	/* This test runs in a child of the fixture's process (fork mode);
	 * a grandchild that stops and exits must not touch the server
	 * either. */
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		jd_pg_stop(&suite_pg);
		exit(0); /* the exit handler runs too */
	}
	ck_assert_int_eq(waitpid(child, &st, 0), child);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	if (getpid() != suite_pg.owner) /* fork mode: not the starter */
		jd_pg_stop(&suite_pg);
	ck_assert(jd_pg_running(&suite_pg));
	ck_assert_int_eq(jd_pg_sql(&suite_pg, NULL, "select 'still here'",
	                           out, sizeof(out)), 0);
	ck_assert_str_eq(out, "still here");
}
END_TEST

START_TEST(database_per_test)
{
	char a[300], b[300], out[64];
	int64_t n = -1;

	NEED_SUITE_PG();
	ck_assert_int_eq(jd_pg_create_db(&suite_pg, "t_one", a, sizeof(a)), 0);
	ck_assert_int_eq(jd_pg_create_db(&suite_pg, "t_two", b, sizeof(b)), 0);
	ck_assert_int_eq(jd_pg_sql(&suite_pg, a, "create table x (v int);"
	                           " insert into x select generate_series(1, 3)",
	                           NULL, 0), 0);
	ck_assert_int_eq(jd_pg_sql_int(&suite_pg, a, "select sum(v) from x",
	                               &n), 0);
	ck_assert_int_eq(n, 6);
	ck_assert_int_eq(jd_pg_sql(&suite_pg, b, "select count(*) from"
	                           " pg_tables where tablename = 'x'", out,
	                           sizeof(out)), 0);
	ck_assert_str_eq(out, "0");
	/* Made again: empty again. */
	ck_assert_int_eq(jd_pg_create_db(&suite_pg, "t_one", a, sizeof(a)), 0);
	ck_assert_int_eq(jd_pg_sql(&suite_pg, a, "select count(*) from"
	                           " pg_tables where tablename = 'x'", out,
	                           sizeof(out)), 0);
	ck_assert_str_eq(out, "0");
	/* Names that are not plain identifiers are refused. */
	ck_assert_int_eq(jd_pg_create_db(&suite_pg, "x; drop database jobd",
	                                 a, sizeof(a)), -1);
	ck_assert_int_eq(jd_pg_create_db(&suite_pg, "", a, sizeof(a)), -1);
}
END_TEST

START_TEST(sql_errors)
{
	char out[64] = "untouched";
	int64_t n;

	NEED_SUITE_PG();
	ck_assert_int_eq(jd_pg_sql(&suite_pg, NULL, "select * from nosuch",
	                           out, sizeof(out)), -1);
	ck_assert_int_eq(jd_pg_sql_int(&suite_pg, NULL, "select 'abc'", &n),
	                 -1);
	ck_assert_int_eq(jd_pg_sql(&suite_pg, "postgresql://postgres@"
	                           "127.0.0.1:1/jobd", "select 1", NULL, 0),
	                 -1);
	/* Several statements: ON_ERROR_STOP, nothing after the error. */
	ck_assert_int_eq(jd_pg_sql(&suite_pg, NULL, "create table e (v int);"
	                           " insert into e values (1/0)", NULL, 0), -1);
	ck_assert_int_eq(jd_pg_sql_int(&suite_pg, NULL, "select count(*) from"
	                               " pg_tables where tablename = 'e'", &n),
	                 0);
	ck_assert_int_eq(n, 0); /* one implicit transaction: rolled back */
}
END_TEST

/* The starter dies by SIGKILL: no exit handler, no jd_pg_stop(); the
 * guard stops the server and removes its directory. */
START_TEST(killed_starter_server_stopped)
{
	int fds[2], st;
	pid_t child, server = 0;
	char dir[256] = "";
	FILE *f;

	ck_assert_int_eq(pipe(fds), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct jd_pg pg;
		int rc;

		close(fds[0]);
		rc = jd_pg_start(&pg);
		f = fdopen(fds[1], "w");
		if (rc == 0)
			fprintf(f, "%d %s\n", (int)pg.server_pid, pg.dir);
		else
			fprintf(f, "%d -\n", rc == 77 ? -77 : -1);
		fclose(f);
		for (;;)
			pause(); /* until the SIGKILL */
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	ck_assert_ptr_nonnull(f);
	{
		int p = 0;

		ck_assert_msg(fscanf(f, "%d %255s", &p, dir) == 2,
		              "no answer from the starter");
		server = (pid_t)p;
	}
	fclose(f);
	if (server == -77) {
		kill(child, SIGKILL);
		waitpid(child, &st, 0);
		fprintf(stderr, "skipped: no PostgreSQL server\n");
		return;
	}
	ck_assert_msg(server > 0, "the starter's jd_pg_start failed");
	ck_assert(pid_alive(server));
	ck_assert(exists(dir));

	ck_assert_int_eq(kill(child, SIGKILL), 0);
	ck_assert_int_eq(waitpid(child, &st, 0), child);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	ck_assert_msg(wait_gone(server, dir, 60000),
	              "server %d or %s still there 60 s after its starter "
	              "was killed", (int)server, dir);
}
END_TEST

/*
 * jd_sql_* on d's store, which holds a table jobs made by the caller:
 * the same answers whichever store it is.
 */
static void
check_sql_helpers(jd *d)
{
	char sql[256], *v, *lit;

	ck_assert_int_eq(jd_sql_exec(d, "INSERT INTO jobs VALUES "
	                 "('0190aaaa-0000-7000-8000-000000000001', 'queued', 0,"
	                 " NULL), ('0190aaaa-0000-7000-8000-000000000002',"
	                 " 'running', 2, 'line one\nline two')"), 0);
	/* The table unqualified: search_path on PostgreSQL. */
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs"), 2);
	ck_assert_int_eq(jd_sql_int(d, "SELECT attempt FROM jobs WHERE id = "
	                            "'0190aaaa-0000-7000-8000-000000000002'"),
	                 2);
	ck_assert_int_eq(jd_sql_int(d, "SELECT sum(attempt) * 1000000000000"
	                            " FROM jobs"), 2000000000000LL);
	v = jd_sql_text(d, "SELECT status FROM jobs ORDER BY status DESC");
	ck_assert_str_eq(v, "running");
	free(v);
	/* Newlines stay in, and only the first column counts. */
	v = jd_sql_text(d, "SELECT error, status FROM jobs WHERE attempt = 2");
	ck_assert_str_eq(v, "line one\nline two");
	free(v);
	/* NULL, no row, an error: NULL; an empty string is one. */
	ck_assert_ptr_null(jd_sql_text(d, "SELECT error FROM jobs WHERE "
	                               "attempt = 0"));
	ck_assert_ptr_null(jd_sql_text(d, "SELECT status FROM jobs WHERE "
	                               "attempt = 99"));
	ck_assert_ptr_null(jd_sql_text(d, "SELECT nosuch FROM jobs"));
	v = jd_sql_text(d, "SELECT ''");
	ck_assert_str_eq(v, "");
	free(v);
	/* jd_sql_int: NULL, no row, not an integer, an error: -1. */
	ck_assert_int_eq(jd_sql_int(d, "SELECT max(attempt) FROM jobs WHERE"
	                            " attempt > 99"), -1);
	ck_assert_int_eq(jd_sql_int(d, "SELECT attempt FROM jobs WHERE "
	                            "attempt = 99"), -1);
	ck_assert_int_eq(jd_sql_int(d, "SELECT status FROM jobs WHERE "
	                            "attempt = 2"), -1);
	ck_assert_int_eq(jd_sql_int(d, "SELECT nosuch FROM jobs"), -1);
	/* A literal with quotes and a backslash goes in and comes back
	 * unchanged. */
	lit = jd_sql_literal("it's '' a \\ key; --");
	ck_assert_ptr_nonnull(lit);
	ck_assert_str_eq(lit, "'it''s '''' a \\ key; --'");
	snprintf(sql, sizeof(sql), "UPDATE jobs SET error = %s WHERE "
	         "attempt = 0", lit);
	ck_assert_int_eq(jd_sql_exec(d, sql), 0);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM jobs WHERE error = %s",
	         lit);
	ck_assert_int_eq(jd_sql_int(d, sql), 1);
	free(lit);
	v = jd_sql_text(d, "SELECT error FROM jobs WHERE attempt = 0");
	ck_assert_str_eq(v, "it's '' a \\ key; --");
	free(v);
	lit = jd_sql_literal("");
	ck_assert_str_eq(lit, "''");
	free(lit);
	/* An error is an error. */
	ck_assert_int_eq(jd_sql_exec(d, "UPDATE jobs SET nosuch = 1"), -1);
}

/* The server the harness's databases are on. */
static struct jd_pg harness_pg;

/*
 * JOBD_TEST_STORE=pg on the suite's server, as with_server.sh sets it;
 * or, when this suite itself runs under JOBD_TEST_STORE=pg, on the run's
 * server, which the harness took before the tests began.
 */
static void
use_pg_store(void)
{
	const char *uri = getenv("JOBD_TEST_PG_URI");

	if (jd_store_is_pg() && uri != NULL) {
		ck_assert_int_eq(jd_pg_attach(&harness_pg, uri,
		                              getenv("JOBD_TEST_PG_BIN")), 0);
		return;
	}
	setenv("JOBD_TEST_STORE", "pg", 1);
	setenv("JOBD_TEST_PG_URI", suite_pg.uri, 1);
	setenv("JOBD_TEST_PG_BIN", suite_pg.bin, 1);
	ck_assert_int_eq(jd_pg_attach(&harness_pg, suite_pg.uri, suite_pg.bin),
	                 0);
}

static int64_t
databases_named(const char *name)
{
	char sql[200];
	int64_t n = -1;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_database WHERE "
	         "datname = '%s'", name);
	ck_assert_int_eq(jd_pg_sql_int(&harness_pg, NULL, sql, &n), 0);
	return n;
}

START_TEST(harness_pg_store)
{
	char want[400], name[64], *conf;
	jd *d, *d2;

	NEED_SUITE_PG();
	use_pg_store();
	ck_assert(jd_store_is_pg());
	d = jd_new(NULL);
	ck_assert_ptr_nonnull(d);
	/* Its own database, named after its directory, in the config. */
	ck_assert_msg(d->pg_db[0] != '\0', "no database");
	snprintf(want, sizeof(want), "postgresql://postgres@127.0.0.1:%d/%s",
	         harness_pg.port, d->pg_db);
	ck_assert_str_eq(d->db_path, want);
	ck_assert_int_eq(databases_named(d->pg_db), 1);
	conf = jd_read_file(d->conf_path, NULL);
	ck_assert_ptr_nonnull(conf);
	snprintf(want, sizeof(want), "[store]\npath = %s\n", d->db_path);
	ck_assert_msg(strstr(conf, want) != NULL, "the config has no %s:\n%s",
	              want, conf);
	free(conf);

	/* Empty until the daemon makes its schema. */
	ck_assert_int_eq(jd_store_made(d), 0);
	ck_assert_int_eq(jd_sql_exec(d, "CREATE SCHEMA jobd; CREATE TABLE "
	                             "jobd.jobs (id uuid PRIMARY KEY, status "
	                             "text, attempt int8, error text)"), 0);
	ck_assert_int_eq(jd_store_made(d), 1);
	check_sql_helpers(d);

	/* A second jd: another database, which sees nothing of the first. */
	d2 = jd_new(NULL);
	ck_assert_ptr_nonnull(d2);
	ck_assert_str_ne(d2->pg_db, d->pg_db);
	ck_assert_int_eq(jd_store_made(d2), 0);
	ck_assert_int_eq(jd_sql_int(d2, "SELECT count(*) FROM pg_tables "
	                            "WHERE tablename = 'jobs'"), 0);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM pg_tables "
	                            "WHERE tablename = 'jobs'"), 1);

	/* jd_free drops it. */
	snprintf(name, sizeof(name), "%s", d->pg_db);
	jd_free(d);
	ck_assert_int_eq(databases_named(name), 0);
	snprintf(name, sizeof(name), "%s", d2->pg_db);
	jd_free(d2);
	ck_assert_int_eq(databases_named(name), 0);
}
END_TEST

/* The same helpers on SQLite, JOBD_TEST_STORE unset. */
START_TEST(harness_sqlite_store)
{
	sqlite3 *db = NULL;
	jd *d;

	unsetenv("JOBD_TEST_STORE");
	ck_assert(!jd_store_is_pg());
	d = jd_new(NULL);
	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(d->pg_db, "");
	ck_assert_int_eq(jd_store_made(d), 0);
	ck_assert_int_eq(jd_sql_int(d, "SELECT 1"), -1); /* no file yet */
	ck_assert_int_eq(sqlite3_open(d->db_path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE jobs (id TEXT PRIMARY"
	                              " KEY, status TEXT, attempt INTEGER,"
	                              " error TEXT)", NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(jd_store_made(d), 1);
	check_sql_helpers(d);
	jd_free(d);
}
END_TEST

static Suite *
pgserver_suite(void)
{
	Suite *s = suite_create("pgserver");
	TCase *tc = tcase_create("server");

	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, start_query_stop);
	tcase_add_test(tc, suite_server_survives_children);
	tcase_add_test(tc, database_per_test);
	tcase_add_test(tc, sql_errors);
	tcase_add_test(tc, killed_starter_server_stopped);
	tcase_add_test(tc, harness_pg_store);
	tcase_add_test(tc, harness_sqlite_store);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(pgserver_suite());
}
