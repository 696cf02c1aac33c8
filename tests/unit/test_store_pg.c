/*
 * test_store_pg.c - unit tests of the PostgreSQL store's migration runner
 * (store_pg_migrate) and of what store_open() does with a database, against
 * a real, private PostgreSQL (tests/integration/pg.h: one server for the
 * suite, started in the parent, one database per test).  Skipped (77) on a
 * machine without PostgreSQL's server binaries.
 */
#include <check.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../integration/pg.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "store.h"
#include "store_pg.h"

static struct jd_pg server;   /* the suite's, started by main() */
static char uri[600];         /* this test's database */
static PGconn *conn;          /* a session of the test's own on it */
static char err[512];

static const char *const two[] = {
	"CREATE TABLE jobd.t1 (a int)",
	"CREATE TABLE jobd.t2 (b int)",
};

/* ---- fixtures ---- */

static void
setup(void)
{
	char name[64];

	snprintf(name, sizeof(name), "t_%ld", (long)getpid());
	ck_assert_int_eq(jd_pg_create_db(&server, name, uri, sizeof(uri)), 0);
	conn = PQconnectdb(uri);
	ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "%s",
	              PQerrorMessage(conn));
	PQclear(PQexec(conn, "SET client_min_messages = warning"));
	err[0] = '\0';
}

static void
teardown(void)
{
	PQfinish(conn);
	conn = NULL;
}

/* The first column of the first row of sql as text ("" when no row). */
static char *
query1(PGconn *c, const char *sql)
{
	static char out[256];
	PGresult *r = PQexec(c, sql);

	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql,
	              PQresultErrorMessage(r));
	snprintf(out, sizeof(out), "%s",
	         PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return out;
}

static const char *
version(void)
{
	return query1(conn, "SELECT coalesce((SELECT value FROM jobd.meta"
	              " WHERE key = 'schema_version'), 'none')");
}

static bool
table_exists(const char *name)
{
	char sql[160];

	snprintf(sql, sizeof(sql), "SELECT to_regclass('%s') IS NOT NULL",
	         name);
	return strcmp(query1(conn, sql), "t") == 0;
}

/* ---- the runner ---- */

START_TEST(test_fresh_database_gets_every_migration)
{
	ck_assert_int_eq(store_pg_migrate(conn, two, 2, err, sizeof(err)), 0);
	ck_assert_str_eq(version(), "2");
	ck_assert(table_exists("jobd.t1"));
	ck_assert(table_exists("jobd.t2"));
}
END_TEST

START_TEST(test_up_to_date_is_a_no_op)
{
	ck_assert_int_eq(store_pg_migrate(conn, two, 2, err, sizeof(err)), 0);
	/* Run again: the CREATE TABLEs would fail if they ran twice. */
	ck_assert_int_eq(store_pg_migrate(conn, two, 2, err, sizeof(err)), 0);
	ck_assert_str_eq(version(), "2");
	/* And one step further runs only the new one. */
	const char *const three[] = {two[0], two[1],
	                             "CREATE TABLE jobd.t3 (c int)"};
	ck_assert_int_eq(store_pg_migrate(conn, three, 3, err, sizeof(err)),
	                 0);
	ck_assert_str_eq(version(), "3");
	ck_assert(table_exists("jobd.t3"));
}
END_TEST

START_TEST(test_newer_schema_is_refused)
{
	ck_assert_int_eq(store_pg_migrate(conn, two, 2, err, sizeof(err)), 0);
	PQclear(PQexec(conn, "UPDATE jobd.meta SET value = '7'"
	               " WHERE key = 'schema_version'"));
	ck_assert_int_eq(store_pg_migrate(conn, two, 2, err, sizeof(err)),
	                 JOBD_EINVAL);
	ck_assert_msg(strstr(err, "version 7 is newer than this jobd (2)") !=
	              NULL, "%s", err);
	ck_assert_str_eq(version(), "7"); /* untouched */
	/* The session is usable afterwards (the transaction was ended). */
	ck_assert_str_eq(query1(conn, "SELECT 1"), "1");
}
END_TEST

START_TEST(test_failed_migration_changes_nothing)
{
	const char *const bad[] = {two[0], two[1],
	                           "CREATE TABLE jobd.t3 (c int);"
	                           " SELECT 1 / 0"};

	ck_assert_int_eq(store_pg_migrate(conn, two, 2, err, sizeof(err)), 0);
	ck_assert_int_ne(store_pg_migrate(conn, bad, 3, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "migration 3") != NULL &&
	              strstr(err, "22012") != NULL, "%s", err);
	ck_assert_str_eq(version(), "2");
	ck_assert(!table_exists("jobd.t3"));
	/* From scratch too: a failure in the first run leaves no schema
	 * version and no half-made tables. */
	PQclear(PQexec(conn, "DROP SCHEMA jobd CASCADE"));
	ck_assert_int_ne(store_pg_migrate(conn, bad, 3, err, sizeof(err)), 0);
	ck_assert(!table_exists("jobd.t1"));
	ck_assert(!table_exists("jobd.meta"));
}
END_TEST

struct racer {
	PGconn *c;
	int rc;
	char err[512];
};

static void *
race_migrate(void *arg)
{
	struct racer *r = arg;

	r->rc = store_pg_migrate(r->c, two, 2, r->err, sizeof(r->err));
	return NULL;
}

/* A second daemon migrating while the first holds the lock waits for it,
 * then finds the work done (its CREATE TABLEs would fail otherwise). */
START_TEST(test_second_migrator_waits_for_the_first)
{
	struct racer b = {.rc = -99};
	pthread_t t;
	char pid[32], sql[256];
	int64_t until = clock_mono_ms() + 30000;

	b.c = PQconnectdb(uri);
	ck_assert(PQstatus(b.c) == CONNECTION_OK);
	PQclear(PQexec(b.c, "SET client_min_messages = warning"));
	snprintf(pid, sizeof(pid), "%d", PQbackendPID(b.c));
	/* The first "daemon" (conn) is inside its migration transaction. */
	PQclear(PQexec(conn, "BEGIN; SELECT pg_advisory_xact_lock("
	               "hashtext('jobd.migrate'))"));
	ck_assert_int_eq(pthread_create(&t, NULL, race_migrate, &b), 0);
	/* Until the second one waits on that lock. */
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity"
	         " WHERE pid = %s AND wait_event_type = 'Lock'", pid);
	while (strcmp(query1(conn, sql), "1") != 0) {
		ck_assert_msg(clock_mono_ms() < until, "the second migrator "
		              "never waited on the lock");
		usleep(10 * 1000);
	}
	ck_assert_int_eq(b.rc, -99); /* still waiting */
	/* The first does the work and commits. */
	PGresult *r = PQexec(conn, "CREATE SCHEMA IF NOT EXISTS jobd;"
	                     " CREATE TABLE IF NOT EXISTS jobd.meta (key text"
	                     " PRIMARY KEY, value text NOT NULL);"
	                     " CREATE TABLE jobd.t1 (a int);"
	                     " CREATE TABLE jobd.t2 (b int);"
	                     " INSERT INTO jobd.meta VALUES"
	                     " ('schema_version', '2'); COMMIT");
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s",
	              PQresultErrorMessage(r));
	PQclear(r);
	pthread_join(t, NULL);
	ck_assert_msg(b.rc == 0, "%s", b.err);
	ck_assert_str_eq(version(), "2");
	PQfinish(b.c);
}
END_TEST

/* ---- store_open on a database ---- */

START_TEST(test_open_migrates_and_analyzes)
{
	struct store_options opt = {.durability_full = true, .pool = 2};
	store *st = NULL;

	ck_assert_int_eq(store_open(uri, &opt, &st, err, sizeof(err)), 0);
	ck_assert_str_eq(version(), "8");
	ck_assert(table_exists("jobd.jobs"));
	ck_assert(table_exists("jobd.type_pauses"));
	ck_assert(table_exists("jobd.nodes"));
	ck_assert(table_exists("jobd.schedules"));
	/* Statistics from the start: a claim planned without them sorts
	 * every queued row (docs/postgres-store.md §9). */
	ck_assert_str_eq(query1(conn, "SELECT last_analyze IS NOT NULL FROM"
	                        " pg_stat_user_tables WHERE schemaname = 'jobd'"
	                        " AND relname = 'jobs'"), "t");
	ck_assert(store_ping(st));
	store_close(st);
}
END_TEST

START_TEST(test_open_twice_refused)
{
	struct store_options opt = {.durability_full = true, .pool = 1};
	struct store_options other_node = {.durability_full = true, .pool = 1,
	                                   .node = "another-node"};
	store *st = NULL, *other = NULL;

	ck_assert_int_eq(store_open(uri, &opt, &st, err, sizeof(err)), 0);
	ck_assert_int_eq(store_open(uri, &opt, &other, err, sizeof(err)),
	                 JOBD_EBUSY);
	ck_assert_ptr_null(other);
	/* Two daemons under one node name (both default to the host name). */
	ck_assert_msg(strstr(err, "in use by another jobd as node") != NULL &&
	              strstr(err, "jobd pid") != NULL, "%s", err);
	/* Another node name on the same database: several nodes. */
	ck_assert_int_eq(store_open(uri, &other_node, &other, err,
	                            sizeof(err)), 0);
	store_close(other);
	other = NULL;
	store_close(st);
	/* Closed: the next one may. */
	ck_assert_int_eq(store_open(uri, &opt, &other, err, sizeof(err)), 0);
	store_close(other);
}
END_TEST

START_TEST(test_open_refuses_newer_schema)
{
	struct store_options opt = {.durability_full = true, .pool = 1};
	store *st = NULL;

	ck_assert_int_eq(store_open(uri, &opt, &st, err, sizeof(err)), 0);
	store_close(st);
	st = NULL;
	PQclear(PQexec(conn, "UPDATE jobd.meta SET value = '99'"
	               " WHERE key = 'schema_version'"));
	ck_assert_int_eq(store_open(uri, &opt, &st, err, sizeof(err)),
	                 JOBD_EINVAL);
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(err, "version 99 is newer than this jobd (8)") !=
	              NULL, "%s", err);
}
END_TEST

/*
 * Every writer statement, planned generically (the plan a prepared
 * statement keeps) on a table of 200,000 rows that was never analyzed
 * since: none scans the table, sorts it or filters a join (the trap of docs/postgres-
 * store.md §9: a claim sorting every queued row took 93-98 ms).  The
 * session is the writer's: enable_sort = off.
 */
START_TEST(test_writer_plans_without_statistics)
{
	struct store_options opt = {.durability_full = true, .pool = 1};
	store *st = NULL;
	PGresult *r;

	ck_assert_int_eq(store_open(uri, &opt, &st, err, sizeof(err)), 0);
	store_close(st);
	r = PQexec(conn, "ALTER TABLE jobd.jobs SET (autovacuum_enabled = off);"
	           " INSERT INTO jobd.jobs (id, type, status, max_attempts,"
	           " timeout_ms, created_at, run_at, due, finished_at, claim)"
	           " SELECT gen_random_uuid(), 't' || (g % 5),"
	           " (ARRAY['queued', 'queued', 'running', 'succeeded'])[1 + g % 4],"
	           " 3, 1000, g, g, (g % 3 > 0)::int,"
	           " CASE WHEN g % 4 = 3 THEN g END,"
	           " CASE WHEN g % 4 = 2 THEN 'c' || g END"
	           " FROM generate_series(1, 200000) g;"
	           " SET enable_sort = off;"
	           " SET plan_cache_mode = force_generic_plan");
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s",
	              PQresultErrorMessage(r));
	PQclear(r);
	for (int i = 0; store_pg_writer_sql(i) != NULL; i++) {
		const char *sql = store_pg_writer_sql(i);
		char exec[256], plan[8192] = "";
		size_t used = 0;
		int nparams;

		PQclear(PQexec(conn, "DEALLOCATE ALL"));
		r = PQprepare(conn, "p", sql, 0, NULL);
		ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s",
		              sql, PQresultErrorMessage(r));
		PQclear(r);
		nparams = atoi(query1(conn, "SELECT cardinality(parameter_types)"
		                      " FROM pg_prepared_statements"
		                      " WHERE name = 'p'"));
		used = (size_t)snprintf(exec, sizeof(exec), "EXPLAIN EXECUTE p");
		for (int k = 0; k < nparams; k++)
			used += (size_t)snprintf(exec + used, sizeof(exec) - used,
			                         "%sNULL", k ? ", " : "(");
		snprintf(exec + used, sizeof(exec) - used, nparams ? ")" : "");
		r = PQexec(conn, exec);
		ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s",
		              exec, PQresultErrorMessage(r));
		for (int row = 0, off = 0; row < PQntuples(r); row++)
			off += snprintf(plan + off, sizeof(plan) - (size_t)off,
			                "%s\n", PQgetvalue(r, row, 0));
		PQclear(r);
		/* Recovery runs once, at start-up: a scan is fine there. */
		if (strstr(sql, "WHERE status = 'running'") != NULL &&
		    strstr(sql, "claim = $") == NULL &&
		    strstr(sql, "claim = s.claim") == NULL &&
		    strstr(sql, "claim = c.claim") == NULL)
			continue;
		/* ... nor joins a batch by scanning it once per job (a Join
		 * Filter: 512 x 512 rows at 512 a batch). */
		ck_assert_msg(strstr(plan, "Seq Scan on jobs") == NULL &&
		              strstr(plan, "Sort") == NULL &&
		              strstr(plan, "Join Filter") == NULL, "%s\n%s", sql,
		              plan);
	}
}
END_TEST

START_TEST(test_uri_checked_before_anything)
{
	ck_assert_int_eq(store_check_path("postgresql://h:x:y/?=", err,
	                                  sizeof(err)), JOBD_EINVAL);
	ck_assert_int_eq(store_check_path(uri, err, sizeof(err)), 0);
	/* A node name outside [A-Za-z0-9._-] or too long: refused before
	 * anything is opened. */
	{
		struct store_options bad = {.durability_full = true, .pool = 1,
		                            .node = "a b"};
		store *st = NULL;
		ck_assert_int_eq(store_open(uri, &bad, &st, err, sizeof(err)),
		                 JOBD_EINVAL);
		ck_assert_ptr_null(st);
		ck_assert_msg(strstr(err, "[store] node") != NULL, "%s", err);
	}
}
END_TEST

START_TEST(test_display_hides_password)
{
	char out[256];

	store_display("postgresql://jobd:s3cret@db:5432/jobs", out,
	              sizeof(out));
	ck_assert_str_eq(out, "postgresql://jobd:***@db:5432/jobs");
	store_display("postgresql://db/jobs?user=j&password=s3cret&x=1", out,
	              sizeof(out));
	ck_assert_str_eq(out, "postgresql://db/jobs?user=j&password=***&x=***");
	/* Every value of a key not known harmless: twice, percent-encoded,
	 * sslpassword (found by review: the second password= was shown). */
	store_display("postgresql://db/j?password=a&password=s3cret&passw%6Frd="
	              "s3cret&sslpassword=s3cret&sslmode=require", out,
	              sizeof(out));
	ck_assert_str_eq(out, "postgresql://db/j?password=***&password=***&"
	                 "passw%6Frd=***&sslpassword=***&sslmode=require");
	store_display("postgresql://u:p@ss@h/db", out, sizeof(out));
	ck_assert_msg(strstr(out, "p@ss") == NULL && strstr(out, "ss@") == NULL,
	              "%s", out);
	store_display("postgresql://jobd@db/jobs", out, sizeof(out));
	ck_assert_str_eq(out, "postgresql://jobd@db/jobs");
	store_display("/var/lib/jobd/jobs.db", out, sizeof(out));
	ck_assert_str_eq(out, "/var/lib/jobd/jobs.db");
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("store_pg");
	TCase *tc = tcase_create("migrate");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_fresh_database_gets_every_migration);
	tcase_add_test(tc, test_up_to_date_is_a_no_op);
	tcase_add_test(tc, test_newer_schema_is_refused);
	tcase_add_test(tc, test_failed_migration_changes_nothing);
	tcase_add_test(tc, test_second_migrator_waits_for_the_first);
	tcase_add_test(tc, test_open_migrates_and_analyzes);
	tcase_add_test(tc, test_open_twice_refused);
	tcase_add_test(tc, test_open_refuses_newer_schema);
	tcase_add_test(tc, test_uri_checked_before_anything);
	tcase_add_test(tc, test_writer_plans_without_statistics);
	tcase_add_test(tc, test_display_hides_password);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed, rc;

	log_set_level(LOG_WARN_);
	rc = jd_pg_start(&server);
	if (rc == 77) {
		fprintf(stderr, "test_store_pg: no PostgreSQL server binaries; "
		        "skipped\n");
		return 0;
	}
	if (rc != 0) {
		fprintf(stderr, "test_store_pg: cannot start PostgreSQL\n");
		return 1;
	}
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	jd_pg_stop(&server);
	return failed ? 1 : 0;
}
