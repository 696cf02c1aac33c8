/*
 * test_store.c - unit tests of the job store (src/store.c over
 * src/store_sqlite.c), each against a fresh SQLite file in its own
 * temporary directory.  Writer calls are made the way writer.c makes them:
 * inside store_begin .. store_commit.
 */
#include <check.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "job.h"
#include "log.h"
#include "store.h"

#define NOW 1767323045000LL /* 2026-01-02T03:04:05Z */

static char base_dir[64]; /* per run, made and removed by the parent */
static char dir[128];     /* per test, inside base_dir */
static char db_path[160];
static store *st;
static char err[512];

/* ---- fixtures ---- */

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * Unchecked fixture, run in the parent process: a failed test's process
 * exits without its teardown, so the parent removes whatever it left.
 */
static void
setup_base(void)
{
	strcpy(base_dir, "/tmp/jobd-test-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base_dir));
}

static void
teardown_base(void)
{
	if (base_dir[0] != '\0')
		rm_tree(base_dir);
	base_dir[0] = '\0';
}

static void
open_store(void)
{
	struct store_options opt = {.durability_full = false};
	int rc;

	err[0] = '\0';
	rc = store_open(db_path, &opt, &st, err, sizeof(err));
	ck_assert_msg(rc == 0, "store_open(%s): %d %s", db_path, rc, err);
	ck_assert_ptr_nonnull(st);
}

/* Checked fixture: a fresh directory and store for each test. */
static void
setup(void)
{
	snprintf(dir, sizeof(dir), "%s/test-XXXXXX", base_dir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(db_path, sizeof(db_path), "%s/jobs.db", dir);
	st = NULL;
	open_store();
}

static void
teardown(void)
{
	store_close(st);
	st = NULL;
	rm_tree(dir);
}

/* ---- helpers ---- */

static void
make_id(char out[UUID_STR_LEN], int n)
{
	snprintf(out, UUID_STR_LEN, "01900000-0000-7000-8000-%012d", n);
}

/* A queued job n (ids increase with n) of type, priority and run_at. */
static void
make_job(struct job *j, int n, const char *type, int priority,
         int64_t run_at)
{
	job_init(j);
	make_id(j->id, n);
	snprintf(j->type, sizeof(j->type), "%s", type);
	j->priority = priority;
	j->max_attempts = 3;
	j->timeout_ms = 60000;
	j->created_at_us = NOW - 1000 + n;
	j->run_at_us = run_at;
	j->payload = strdup("{\"n\":1}");
	ck_assert_ptr_nonnull(j->payload);
}

static void
begin(void)
{
	int rc = store_begin(st, err, sizeof(err));

	ck_assert_msg(rc == 0, "store_begin: %d %s", rc, err);
}

static void
commit(void)
{
	int rc = store_commit(st, err, sizeof(err));

	ck_assert_msg(rc == 0, "store_commit: %d %s", rc, err);
}

static void
insert_job(const struct job *j)
{
	int rc;

	begin();
	rc = store_insert(st, j, err, sizeof(err));
	ck_assert_msg(rc == 0, "store_insert(%s): %d %s", j->id, rc, err);
	commit();
}

/* Inserts job n and frees the in-memory copy. */
static void
add(int n, const char *type, int priority, int64_t run_at, int max_attempts)
{
	struct job j;

	make_job(&j, n, type, priority, run_at);
	j.max_attempts = max_attempts;
	insert_job(&j);
	job_clear(&j);
}

static size_t
claim(int64_t now, size_t limit, const char *const *included,
      size_t nincluded, const char *token, struct job **out)
{
	/* NULL: every type these tests use. */
	static const char *const all[] = {"noop", "a", "b", "c", "thumb"};
	struct store_claim_req req = {
		.now_us = now,
		.limit = limit,
		.included = included ? included : all,
		.nincluded = included ? nincluded : 5,
		.claim = token,
	};
	size_t n = 12345;
	int rc;

	begin();
	rc = store_claim(st, &req, out, &n, err, sizeof(err));
	ck_assert_msg(rc == 0, "store_claim: %d %s", rc, err);
	commit();
	ck_assert_uint_le(n, limit);
	return n;
}

static void
free_jobs(struct job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		job_clear(&jobs[i]);
	free(jobs);
}

/* Claims exactly job n (it must be the only due job) with token. */
static void
claim_one(int n, const char *token)
{
	struct job *jobs = NULL;
	char id[UUID_STR_LEN];

	make_id(id, n);
	ck_assert_uint_eq(claim(NOW, 1, NULL, 0, token, &jobs), 1);
	ck_assert_str_eq(jobs[0].id, id);
	free_jobs(jobs, 1);
}

static struct job
get(int n)
{
	struct job j;
	char id[UUID_STR_LEN];
	int rc;

	make_id(id, n);
	job_init(&j);
	rc = store_get(st, id, &j, err, sizeof(err));
	ck_assert_msg(rc == 0, "store_get(%s): %d %s", id, rc, err);
	ck_assert_str_eq(j.id, id);
	return j;
}

static int
status_of(int n)
{
	struct job j = get(n);
	int s = j.status;

	job_clear(&j);
	return s;
}

static int
complete(int n, const char *token, int status, int64_t when,
         const char *result, const char *error, int exit_code)
{
	char id[UUID_STR_LEN];
	struct store_completion c = {
		.id = id,
		.claim = token,
		.status = status,
		.run_at_us = when,
		.finished_at_us = when,
		.result = result,
		.error = error,
		.has_exit_code = exit_code >= 0,
		.exit_code = exit_code,
	};
	int rc;

	make_id(id, n);
	begin();
	rc = store_complete(st, &c, NULL, err, sizeof(err));
	commit();
	return rc;
}

/* The status a completion left (the store may decide otherwise). */
static int
complete_status(int n, const char *token, int status, int64_t when,
                int *out)
{
	char id[UUID_STR_LEN];
	struct store_completion c = {
		.id = id, .claim = token, .status = status,
		.run_at_us = when, .finished_at_us = when, .now_us = when + 7,
		.error = status == JOB_SUCCEEDED ? NULL : "exit status 1",
	};
	int rc;

	make_id(id, n);
	begin();
	rc = store_complete(st, &c, out, err, sizeof(err));
	commit();
	return rc;
}

/* A worker started the attempt of job n under token. */
static int
start(int n, const char *token, int64_t when)
{
	char id[UUID_STR_LEN];
	int rc;

	make_id(id, n);
	begin();
	rc = store_start(st, id, token, when, err, sizeof(err));
	commit();
	return rc;
}

static int
cancel(int n, int64_t now, int *status)
{
	char id[UUID_STR_LEN];
	int rc;

	make_id(id, n);
	begin();
	rc = store_cancel(st, id, now, status, err, sizeof(err));
	commit();
	return rc;
}

static int
retry(int n, int64_t now, int *status)
{
	char id[UUID_STR_LEN];
	int rc;

	make_id(id, n);
	begin();
	rc = store_retry(st, id, now, status, err, sizeof(err));
	commit();
	return rc;
}

/* Runs one SQL statement returning one integer on a separate connection. */
static int64_t
sql_int(const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int64_t v;

	ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY,
	                                 NULL), SQLITE_OK);
	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK,
	              "%s: %s", sql, sqlite3_errmsg(db));
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

/* ---- open and migrate ---- */

START_TEST(test_open_creates_and_migrates)
{
	struct stat sb;
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;

	ck_assert_int_eq(stat(db_path, &sb), 0);
	ck_assert(S_ISREG(sb.st_mode));
	ck_assert(store_ping(st));
	store_close(st);
	st = NULL;

	ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY,
	                                 NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s,
	                                    NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(s, 0), 8);
	sqlite3_finalize(s);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s,
	                                    NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM "
	                                    "sqlite_master WHERE type = 'table'"
	                                    " AND name = 'jobs'", -1, &s, NULL),
	                 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(s, 0), 1);
	sqlite3_finalize(s);
	sqlite3_close(db);

	/* Opening again does not migrate twice. */
	open_store();
	ck_assert_int_eq(sql_int("PRAGMA user_version"), 8);
}
END_TEST

START_TEST(test_reopen_keeps_data)
{
	struct job j, got;

	make_job(&j, 1, "noop", 7, NOW + 5000);
	j.max_attempts = 9;
	j.timeout_ms = 1234;
	j.cancel_on_disconnect = false;
	j.idem_key = strdup("key-1");
	j.idem_fp = strdup("fp-1");
	insert_job(&j);
	store_close(st);
	st = NULL;
	open_store();

	got = get(1);
	ck_assert_str_eq(got.type, "noop");
	ck_assert_int_eq(got.status, JOB_QUEUED);
	ck_assert_int_eq(got.priority, 7);
	ck_assert_int_eq(got.max_attempts, 9);
	ck_assert_int_eq(got.timeout_ms, 1234);
	ck_assert_int_eq(got.run_at_us, NOW + 5000);
	ck_assert_int_eq(got.created_at_us, j.created_at_us);
	ck_assert_str_eq(got.payload, "{\"n\":1}");
	ck_assert(!got.cancel_on_disconnect);
	ck_assert_str_eq(got.idem_key, "key-1");
	ck_assert_str_eq(got.idem_fp, "fp-1");
	ck_assert_int_eq(sql_int("PRAGMA user_version"), 8);
	job_clear(&got);
	job_clear(&j);
}
END_TEST

/* Version 2 turned the times from ms into µs: a version-1 store's rows
 * keep their times across the upgrade. */
START_TEST(test_migrate_v1_times_to_us)
{
	struct job j, got;
	sqlite3 *db = NULL;
	char *msg = NULL;

	make_job(&j, 1, "noop", 0, NOW + 5000);
	insert_job(&j);
	store_close(st);
	st = NULL;
	/* Make it a version-1 store: whole ms, as that version kept them. */
	ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	ck_assert_msg(sqlite3_exec(db, "UPDATE jobs SET created_at = 1767323044001,"
	                           " run_at = 1767323050000, started_at = 1767323050002,"
	                           " finished_at = 1767323050003;"
	                           " ALTER TABLE jobs DROP COLUMN attempt_started;"
	                           " DROP TABLE type_pauses;"
	                           " DROP TABLE schedules;"
	                           " ALTER TABLE jobs DROP COLUMN depends_on;"
	                           " ALTER TABLE jobs DROP COLUMN unmet;"
	                           " DROP TABLE job_deps;"
	                           " ALTER TABLE jobs DROP COLUMN progress;"
	                           " DROP TRIGGER jobs_outbox;"
	                           " DROP TRIGGER jobs_outbox_gone;"
	                           " DROP TABLE outbox;"
	                           " ALTER TABLE jobs DROP COLUMN callback_url;"
	                           " PRAGMA user_version = 1;", NULL, NULL,
	                           &msg) == SQLITE_OK, "%s", msg ? msg : "");
	sqlite3_close(db);
	open_store();

	got = get(1);
	ck_assert_int_eq(got.created_at_us, 1767323044001000LL);
	ck_assert_int_eq(got.run_at_us, 1767323050000000LL);
	ck_assert_int_eq(got.started_at_us, 1767323050002000LL);
	ck_assert_int_eq(got.finished_at_us, 1767323050003000LL);
	ck_assert_int_eq(sql_int("PRAGMA user_version"), 8);
	job_clear(&got);
	job_clear(&j);
}
END_TEST

START_TEST(test_open_newer_schema_refused)
{
	sqlite3 *db = NULL;

	store_close(st);
	st = NULL;
	ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL,
	                              NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	struct store_options opt = {.durability_full = true};
	ck_assert_int_eq(store_open(db_path, &opt, &st, err, sizeof(err)),
	                 JOBD_EINVAL);
	ck_assert_ptr_null(st);
	ck_assert_ptr_nonnull(strstr(err, "99"));
}
END_TEST

START_TEST(test_open_failures)
{
	struct store_options opt = {.durability_full = true};
	store *other = NULL;
	char path[256];

	snprintf(path, sizeof(path), "%s/no/such/dir/jobs.db", dir);
	ck_assert_int_ne(store_open(path, &opt, &other, err, sizeof(err)), 0);
	ck_assert_ptr_null(other);
	ck_assert_str_ne(err, "");
	/* Not a URI libpq can parse: refused before anything is opened. */
	ck_assert_int_eq(store_open("postgresql://host:notaport:/x?=", &opt,
	                            &other, err, sizeof(err)), JOBD_EINVAL);
	ck_assert_ptr_null(other);
	ck_assert_msg(strstr(err, "URI") != NULL, "%s", err);
	/* A server that is not there (port 1 of loopback): the store opens
	 * and waits for it, not ready; every writer call says unavailable. */
	ck_assert_int_eq(store_open("postgresql://127.0.0.1:1/jobd", &opt,
	                            &other, err, sizeof(err)), 0);
	ck_assert(!store_ping(other));
	ck_assert_int_eq(store_begin(other, err, sizeof(err)), JOBD_EUNAVAIL);
	ck_assert_int_eq(store_check(other, err, sizeof(err)), JOBD_EUNAVAIL);
	store_close(other);
}
END_TEST

START_TEST(test_open_twice_refused)
{
	struct store_options opt = {.durability_full = true};
	store *other = NULL;
	char pid[32];

	/* The lock is per open, not per process: a second open of the same
	 * file is refused too, naming the holder. */
	ck_assert_int_eq(store_open(db_path, &opt, &other, err, sizeof(err)),
	                 JOBD_EBUSY);
	ck_assert_ptr_null(other);
	snprintf(pid, sizeof(pid), "pid %ld", (long)getpid());
	ck_assert_msg(strstr(err, pid) != NULL, "%s", err);
	/* Closed, it is free again. */
	store_close(st);
	st = NULL;
	ck_assert_int_eq(store_open(db_path, &opt, &other, err, sizeof(err)),
	                 0);
	store_close(other);
}
END_TEST

START_TEST(test_file_deleted_refuses_commit)
{
	struct job j;
	int rc;

	ck_assert_int_eq(store_check(st, err, sizeof(err)), 0);
	ck_assert(store_ping(st));
	ck_assert_int_eq(unlink(db_path), 0);
	ck_assert_int_eq(store_check(st, err, sizeof(err)), JOBD_EBUSY);
	ck_assert_msg(strstr(err, db_path) && strstr(err, "deleted"), "%s",
	              err);
	ck_assert(!store_ping(st));
	begin();
	make_job(&j, 1, "noop", 0, NOW);
	ck_assert_int_eq(store_insert(st, &j, err, sizeof(err)), 0);
	rc = store_commit(st, err, sizeof(err));
	ck_assert_int_eq(rc, JOBD_EBUSY);
	job_clear(&j);
	/* Rolled back: the next transaction can begin. */
	begin();
	store_rollback(st);
}
END_TEST

START_TEST(test_file_replaced_refuses_commit)
{
	char other[200];
	FILE *f;

	snprintf(other, sizeof(other), "%s/other.db", dir);
	f = fopen(other, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(rename(other, db_path), 0);
	ck_assert_int_eq(store_check(st, err, sizeof(err)), JOBD_EBUSY);
	ck_assert_msg(strstr(err, "replaced") != NULL, "%s", err);
	begin();
	ck_assert_int_eq(store_commit(st, err, sizeof(err)), JOBD_EBUSY);
}
END_TEST

START_TEST(test_file_created_private)
{
	struct stat sb;
	char path[200];

	ck_assert_int_eq(stat(db_path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s.lock", db_path);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
}
END_TEST

START_TEST(test_durability_full_opens)
{
	struct store_options opt = {.durability_full = true};

	store_close(st);
	st = NULL;
	ck_assert_int_eq(store_open(db_path, &opt, &st, err, sizeof(err)), 0);
	add(1, "noop", 0, NOW, 3);
	ck_assert_int_eq(status_of(1), JOB_QUEUED);
}
END_TEST

/* ---- insert and get ---- */

START_TEST(test_insert_and_get)
{
	struct job j, got;

	make_job(&j, 1, "thumb", -42, NOW);
	free(j.payload);
	j.payload = strdup("[1,\"two\",{\"3\":null}]");
	insert_job(&j);

	got = get(1);
	ck_assert_str_eq(got.id, j.id);
	ck_assert_str_eq(got.type, "thumb");
	ck_assert_int_eq(got.status, JOB_QUEUED);
	ck_assert_int_eq(got.priority, -42);
	ck_assert_int_eq(got.attempt, 0);
	ck_assert_int_eq(got.max_attempts, 3);
	ck_assert_int_eq(got.timeout_ms, 60000);
	ck_assert_int_eq(got.created_at_us, NOW - 999);
	ck_assert_int_eq(got.run_at_us, NOW);
	ck_assert_int_eq(got.started_at_us, -1);
	ck_assert_int_eq(got.finished_at_us, -1);
	ck_assert_str_eq(got.payload, "[1,\"two\",{\"3\":null}]");
	ck_assert_ptr_null(got.result);
	ck_assert_ptr_null(got.error);
	ck_assert(!got.has_exit_code);
	ck_assert(got.cancel_on_disconnect);
	ck_assert_ptr_null(got.idem_key);
	ck_assert_ptr_null(got.idem_fp);
	ck_assert_str_eq(got.claim, "");
	job_clear(&got);
	job_clear(&j);
}
END_TEST

START_TEST(test_get_missing)
{
	struct job j;

	job_init(&j);
	ck_assert_int_eq(store_get(st, "01900000-0000-7000-8000-999999999999",
	                           &j, err, sizeof(err)), JOBD_ENOTFOUND);
	ck_assert_ptr_null(j.payload);
}
END_TEST

START_TEST(test_uncommitted_insert_invisible_and_rollback)
{
	struct job j, got;

	make_job(&j, 1, "noop", 0, NOW);
	begin();
	ck_assert_int_eq(store_insert(st, &j, err, sizeof(err)), 0);
	/* Readers see only committed jobs. */
	job_init(&got);
	ck_assert_int_eq(store_get(st, j.id, &got, err, sizeof(err)),
	                 JOBD_ENOTFOUND);
	store_rollback(st);
	ck_assert_int_eq(store_get(st, j.id, &got, err, sizeof(err)),
	                 JOBD_ENOTFOUND);
	/* The store is usable after a rollback. */
	insert_job(&j);
	got = get(1);
	job_clear(&got);
	job_clear(&j);
}
END_TEST

START_TEST(test_duplicate_id)
{
	struct job j, dup, got;

	make_job(&j, 1, "noop", 1, NOW);
	insert_job(&j);
	make_job(&dup, 1, "other", 9, NOW + 1);
	begin();
	ck_assert_int_eq(store_insert(st, &dup, err, sizeof(err)),
	                 JOBD_ECONFLICT);
	commit();
	job_clear(&dup);
	job_clear(&j);
	got = get(1);
	ck_assert_str_eq(got.type, "noop");
	ck_assert_int_eq(got.priority, 1);
	ck_assert_int_eq(got.run_at_us, NOW);
	job_clear(&got);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM jobs"), 1);
}
END_TEST

START_TEST(test_duplicate_id_same_batch)
{
	struct job a, b, c, got;

	make_job(&a, 1, "noop", 1, NOW);
	make_job(&b, 1, "other", 2, NOW);
	make_job(&c, 2, "noop", 3, NOW);
	begin();
	ck_assert_int_eq(store_insert(st, &a, err, sizeof(err)), 0);
	ck_assert_int_eq(store_insert(st, &b, err, sizeof(err)), JOBD_ECONFLICT);
	ck_assert_int_eq(store_insert(st, &c, err, sizeof(err)), 0);
	commit();
	got = get(1);
	ck_assert_str_eq(got.type, "noop");
	job_clear(&got);
	got = get(2);
	ck_assert_int_eq(got.priority, 3);
	job_clear(&got);
	job_clear(&a);
	job_clear(&b);
	job_clear(&c);
}
END_TEST

START_TEST(test_idempotency_key)
{
	struct job j, other, found;

	make_job(&j, 1, "noop", 0, NOW);
	j.idem_key = strdup("order-17");
	j.idem_fp = strdup("sha-abc");
	insert_job(&j);

	job_init(&found);
	begin();
	ck_assert_int_eq(store_find_idem(st, "order-17", &found, err,
	                                 sizeof(err)), 0);
	ck_assert_str_eq(found.id, j.id);
	ck_assert_str_eq(found.idem_key, "order-17");
	ck_assert_str_eq(found.idem_fp, "sha-abc");
	ck_assert_str_eq(found.payload, "{\"n\":1}");
	job_clear(&found);
	ck_assert_int_eq(store_find_idem(st, "order-18", &found, err,
	                                 sizeof(err)), JOBD_ENOTFOUND);
	ck_assert_int_eq(store_find_idem(st, "ORDER-17", &found, err,
	                                 sizeof(err)), JOBD_ENOTFOUND);
	/* A second job with the same key is a conflict. */
	make_job(&other, 2, "noop", 0, NOW);
	other.idem_key = strdup("order-17");
	ck_assert_int_eq(store_insert(st, &other, err, sizeof(err)),
	                 JOBD_ECONFLICT);
	commit();
	job_clear(&other);
	job_clear(&j);
}
END_TEST

/* ---- claim ---- */

START_TEST(test_claim_order)
{
	static const int prio[] = {0, 5, -3, 5, 10, 0, 100, -100};
	static const int want[] = {7, 5, 2, 4, 1, 6, 3, 8};
	struct job *jobs = NULL;
	size_t n;

	for (int i = 0; i < 8; i++)
		add(i + 1, "noop", prio[i], NOW - 10, 3);
	n = claim(NOW, 100, NULL, 0, "c1", &jobs);
	ck_assert_uint_eq(n, 8);
	for (int i = 0; i < 8; i++) {
		char id[UUID_STR_LEN];
		make_id(id, want[i]);
		ck_assert_msg(strcmp(jobs[i].id, id) == 0,
		              "claim %d: %s (prio %d), want %s", i, jobs[i].id,
		              jobs[i].priority, id);
	}
	free_jobs(jobs, n);
	/* Nothing is left. */
	ck_assert_uint_eq(claim(NOW, 100, NULL, 0, "c2", &jobs), 0);
	ck_assert_ptr_null(jobs);
}
END_TEST

START_TEST(test_claim_limit_takes_best_first)
{
	static const int prio[] = {1, 2, 3, 4, 5};
	struct job *jobs = NULL;
	size_t n;

	for (int i = 0; i < 5; i++)
		add(i + 1, "noop", prio[i], NOW, 3);
	n = claim(NOW, 2, NULL, 0, "a", &jobs);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(jobs[0].priority, 5);
	ck_assert_int_eq(jobs[1].priority, 4);
	free_jobs(jobs, n);
	n = claim(NOW, 2, NULL, 0, "b", &jobs);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(jobs[0].priority, 3);
	ck_assert_int_eq(jobs[1].priority, 2);
	free_jobs(jobs, n);
	n = claim(NOW, 2, NULL, 0, "c", &jobs);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(jobs[0].priority, 1);
	free_jobs(jobs, n);
}
END_TEST

START_TEST(test_claim_limit_zero)
{
	static struct job sentinel;
	struct job *jobs = &sentinel; /* must be reset to NULL */

	add(1, "noop", 0, NOW, 3);
	ck_assert_uint_eq(claim(NOW, 0, NULL, 0, "a", &jobs), 0);
	ck_assert_ptr_null(jobs);
	ck_assert_int_eq(status_of(1), JOB_QUEUED);
}
END_TEST

START_TEST(test_claim_not_before_run_at)
{
	struct job *jobs = NULL;
	size_t n;

	add(1, "noop", 100, NOW + 1000, 3); /* future, highest priority */
	add(2, "noop", 0, NOW, 3);          /* due exactly now */
	add(3, "noop", 0, NOW + 1, 3);      /* one ms in the future */
	n = claim(NOW, 10, NULL, 0, "a", &jobs);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(jobs[0].type, "noop");
	ck_assert_int_eq(jobs[0].run_at_us, NOW);
	free_jobs(jobs, n);
	ck_assert_int_eq(status_of(1), JOB_QUEUED);
	ck_assert_int_eq(status_of(3), JOB_QUEUED);

	n = claim(NOW + 999, 10, NULL, 0, "b", &jobs);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(jobs[0].run_at_us, NOW + 1);
	free_jobs(jobs, n);
	n = claim(NOW + 1000, 10, NULL, 0, "c", &jobs);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(jobs[0].priority, 100);
	free_jobs(jobs, n);
}
END_TEST

START_TEST(test_claim_included_types)
{
	/* Only the listed types are claimed (the others are at their cap,
	 * or have no handler any more). */
	static const char *const only_c[] = {"c"};
	static const char *const b_c[] = {"b", "c"};
	static const char *const a_alike[] = {"a", "zzz", "a.b"};
	struct job *jobs = NULL;
	size_t n;

	add(1, "a", 50, NOW, 3);
	add(2, "b", 0, NOW, 3);
	add(3, "a", 10, NOW, 3);
	add(4, "c", -5, NOW, 3);

	n = claim(NOW, 10, only_c, 1, "x", &jobs);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(jobs[0].type, "c");
	free_jobs(jobs, n);
	n = claim(NOW, 10, b_c, 2, "y", &jobs);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(jobs[0].type, "b");
	free_jobs(jobs, n);
	ck_assert_uint_eq(claim(NOW, 10, b_c, 2, "y2", &jobs), 0);
	/* Types that only look alike are not included. */
	n = claim(NOW, 10, a_alike, 3, "z", &jobs);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(jobs[0].type, "a");
	ck_assert_int_eq(jobs[0].priority, 50);
	ck_assert_int_eq(jobs[1].priority, 10);
	free_jobs(jobs, n);
}
END_TEST

START_TEST(test_claim_token_longest)
{
	/* The longest token a struct job holds round-trips whole. */
	char token[CLAIM_TOKEN_MAX];
	struct job got;

	memset(token, 'k', sizeof(token) - 1);
	token[sizeof(token) - 1] = '\0';
	add(1, "noop", 0, NOW, 3);
	claim_one(1, token);
	got = get(1);
	ck_assert_str_eq(got.claim, token);
	ck_assert_int_eq(complete(1, got.claim, JOB_SUCCEEDED, NOW, NULL, NULL,
	                          0), 0);
	job_clear(&got);
}
END_TEST

START_TEST(test_claim_marks_running)
{
	struct job *jobs = NULL, got;
	size_t n;

	add(1, "noop", 0, NOW - 50, 3);
	n = claim(NOW, 1, NULL, 0, "boot1:lease7", &jobs);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(jobs[0].status, JOB_RUNNING);
	ck_assert_int_eq(jobs[0].attempt, 1);
	ck_assert_int_eq(jobs[0].started_at_us, NOW);
	ck_assert_int_eq(jobs[0].finished_at_us, -1);
	ck_assert_str_eq(jobs[0].claim, "boot1:lease7");
	ck_assert_str_eq(jobs[0].payload, "{\"n\":1}");
	ck_assert_int_eq(jobs[0].max_attempts, 3);
	free_jobs(jobs, n);

	got = get(1);
	ck_assert_int_eq(got.status, JOB_RUNNING);
	ck_assert_int_eq(got.attempt, 1);
	ck_assert_int_eq(got.started_at_us, NOW);
	ck_assert_str_eq(got.claim, "boot1:lease7");
	job_clear(&got);

	/* A running job is not claimed again. */
	ck_assert_uint_eq(claim(NOW + 10, 10, NULL, 0, "other", &jobs), 0);
}
END_TEST

/* ---- complete (fencing) ---- */

START_TEST(test_complete_with_right_claim)
{
	struct job got;

	add(1, "noop", 0, NOW, 3);
	claim_one(1, "tok-A");
	ck_assert_int_eq(complete(1, "tok-A", JOB_SUCCEEDED, NOW + 20,
	                          "{\"ok\":true}", NULL, 0), 0);
	got = get(1);
	ck_assert_int_eq(got.status, JOB_SUCCEEDED);
	ck_assert_int_eq(got.attempt, 1);
	ck_assert_int_eq(got.finished_at_us, NOW + 20);
	ck_assert_int_eq(got.started_at_us, NOW);
	ck_assert_str_eq(got.result, "{\"ok\":true}");
	ck_assert_ptr_null(got.error);
	ck_assert(got.has_exit_code);
	ck_assert_int_eq(got.exit_code, 0);
	ck_assert_str_eq(got.claim, "");
	job_clear(&got);

	/* Completing it again with the same token is stale. */
	ck_assert_int_eq(complete(1, "tok-A", JOB_FAILED, NOW + 30, NULL,
	                          "late", 1), JOBD_ESTALE);
	ck_assert_int_eq(status_of(1), JOB_SUCCEEDED);
}
END_TEST

START_TEST(test_complete_failed_with_error)
{
	struct job got;

	add(1, "noop", 0, NOW, 1);
	claim_one(1, "tok");
	ck_assert_int_eq(complete(1, "tok", JOB_FAILED, NOW + 5, NULL,
	                          "boom: exit 3", 3), 0);
	got = get(1);
	ck_assert_int_eq(got.status, JOB_FAILED);
	ck_assert_str_eq(got.error, "boom: exit 3");
	ck_assert_ptr_null(got.result);
	ck_assert_int_eq(got.exit_code, 3);
	ck_assert_int_eq(got.finished_at_us, NOW + 5);
	job_clear(&got);
}
END_TEST

START_TEST(test_complete_with_wrong_claim)
{
	struct job got;

	add(1, "noop", 0, NOW, 3);
	claim_one(1, "tok-A");
	ck_assert_int_eq(complete(1, "tok-B", JOB_SUCCEEDED, NOW + 20, "1",
	                          NULL, 0), JOBD_ESTALE);
	ck_assert_int_eq(complete(1, "", JOB_SUCCEEDED, NOW + 20, "1", NULL, 0),
	                 JOBD_ESTALE);
	got = get(1);
	ck_assert_int_eq(got.status, JOB_RUNNING);
	ck_assert_int_eq(got.attempt, 1);
	ck_assert_str_eq(got.claim, "tok-A");
	ck_assert_ptr_null(got.result);
	ck_assert_int_eq(got.finished_at_us, -1);
	ck_assert(!got.has_exit_code);
	job_clear(&got);

	/* Unknown ids are stale too: nothing to complete. */
	ck_assert_int_eq(complete(99, "tok-A", JOB_SUCCEEDED, NOW, NULL, NULL,
	                          -1), JOBD_ESTALE);
}
END_TEST

START_TEST(test_complete_with_old_claim)
{
	struct job got;

	add(1, "noop", 0, NOW, 3);
	claim_one(1, "old");
	/* The attempt failed and the job was requeued for a retry... */
	ck_assert_int_eq(complete(1, "old", JOB_QUEUED, NOW, NULL, "try again",
	                          1), 0);
	got = get(1);
	ck_assert_int_eq(got.status, JOB_QUEUED);
	ck_assert_int_eq(got.run_at_us, NOW);
	ck_assert_int_eq(got.finished_at_us, -1);
	ck_assert_str_eq(got.claim, "");
	job_clear(&got);
	/* ... and claimed again. */
	claim_one(1, "new");
	/* The old attempt's late completion is discarded. */
	ck_assert_int_eq(complete(1, "old", JOB_SUCCEEDED, NOW + 50, "\"old\"",
	                          NULL, 0), JOBD_ESTALE);
	got = get(1);
	ck_assert_int_eq(got.status, JOB_RUNNING);
	ck_assert_int_eq(got.attempt, 2);
	ck_assert_str_eq(got.claim, "new");
	ck_assert_ptr_null(got.result);
	job_clear(&got);
	/* The current one goes through. */
	ck_assert_int_eq(complete(1, "new", JOB_SUCCEEDED, NOW + 60, "\"new\"",
	                          NULL, 0), 0);
	got = get(1);
	ck_assert_int_eq(got.status, JOB_SUCCEEDED);
	ck_assert_str_eq(got.result, "\"new\"");
	job_clear(&got);
}
END_TEST

START_TEST(test_complete_requeue_with_backoff)
{
	struct job *jobs = NULL, got;

	add(1, "noop", 0, NOW, 3);
	claim_one(1, "t1");
	ck_assert_int_eq(complete(1, "t1", JOB_QUEUED, NOW + 4000, NULL, "err",
	                          1), 0);
	got = get(1);
	ck_assert_int_eq(got.run_at_us, NOW + 4000);
	ck_assert_int_eq(got.attempt, 1);
	job_clear(&got);
	/* Not due before its backoff. */
	ck_assert_uint_eq(claim(NOW + 3999, 5, NULL, 0, "t2", &jobs), 0);
	ck_assert_uint_eq(claim(NOW + 4000, 5, NULL, 0, "t2", &jobs), 1);
	ck_assert_int_eq(jobs[0].attempt, 2);
	free_jobs(jobs, 1);
}
END_TEST

START_TEST(test_put_back_uncounts_attempt)
{
	char id[UUID_STR_LEN];
	struct job got;
	int status = -1;

	make_id(id, 1);
	add(1, "noop", 0, NOW, 3);
	claim_one(1, "t");
	begin();
	ck_assert_int_eq(store_put_back(st, id, "other", NOW, &status, err,
	                                sizeof(err)), JOBD_ESTALE);
	ck_assert_int_eq(store_put_back(st, id, "t", NOW, &status, err,
	                                sizeof(err)), 0);
	commit();
	ck_assert_int_eq(status, JOB_QUEUED);
	got = get(1);
	ck_assert_int_eq(got.status, JOB_QUEUED);
	ck_assert_int_eq(got.attempt, 0);
	ck_assert_str_eq(got.claim, "");
	job_clear(&got);

	/* Put back while a cancel is requested: cancelled. */
	claim_one(1, "u");
	ck_assert_int_eq(cancel(1, NOW + 1, &status), JOBD_ECONFLICT);
	begin();
	ck_assert_int_eq(store_put_back(st, id, "u", NOW + 2, &status, err,
	                                sizeof(err)), 0);
	commit();
	ck_assert_int_eq(status, JOB_CANCELLED);
	got = get(1);
	ck_assert_int_eq(got.status, JOB_CANCELLED);
	ck_assert_int_eq(got.finished_at_us, NOW + 2);
	job_clear(&got);
}
END_TEST

/* ---- cancel ---- */

START_TEST(test_cancel_queued)
{
	int status = -1;
	struct job got;

	add(1, "noop", 0, NOW + 60000, 3);
	ck_assert_int_eq(cancel(1, NOW + 7, &status), 0);
	ck_assert_int_eq(status, JOB_CANCELLED);
	got = get(1);
	ck_assert_int_eq(got.status, JOB_CANCELLED);
	ck_assert_int_eq(got.finished_at_us, NOW + 7);
	job_clear(&got);
	/* A cancelled job is never claimed. */
	struct job *jobs = NULL;
	ck_assert_uint_eq(claim(NOW + 120000, 10, NULL, 0, "c", &jobs), 0);
}
END_TEST

START_TEST(test_cancel_running)
{
	int status = -1;

	add(1, "noop", 0, NOW, 3);
	claim_one(1, "tok");
	ck_assert_int_eq(cancel(1, NOW + 1, &status), JOBD_ECONFLICT);
	ck_assert_int_eq(status, JOB_RUNNING);
	ck_assert_int_eq(status_of(1), JOB_RUNNING);
	/* The request is remembered for recovery. */
	ck_assert_int_eq(sql_int("SELECT cancel_requested FROM jobs"), 1);
	/* The attempt can still end normally, with its claim. */
	ck_assert_int_eq(complete(1, "tok", JOB_CANCELLED, NOW + 2, NULL,
	                          "cancelled", -1), 0);
	ck_assert_int_eq(status_of(1), JOB_CANCELLED);
}
END_TEST

START_TEST(test_cancel_finished)
{
	int status = -1;

	add(1, "noop", 0, NOW, 3);
	claim_one(1, "tok");
	ck_assert_int_eq(complete(1, "tok", JOB_SUCCEEDED, NOW + 1, "1", NULL,
	                          0), 0);
	ck_assert_int_eq(cancel(1, NOW + 2, &status), JOBD_ECONFLICT);
	ck_assert_int_eq(status, JOB_SUCCEEDED);
	ck_assert_int_eq(status_of(1), JOB_SUCCEEDED);

	add(2, "noop", 0, NOW + 10000, 3);
	ck_assert_int_eq(cancel(2, NOW, &status), 0);
	ck_assert_int_eq(cancel(2, NOW + 1, &status), JOBD_ECONFLICT);
	ck_assert_int_eq(status, JOB_CANCELLED);

	add(3, "noop", 0, NOW, 1);
	claim_one(3, "t3");
	ck_assert_int_eq(complete(3, "t3", JOB_FAILED, NOW + 1, NULL, "x", 1),
	                 0);
	ck_assert_int_eq(cancel(3, NOW + 2, &status), JOBD_ECONFLICT);
	ck_assert_int_eq(status, JOB_FAILED);
}
END_TEST

START_TEST(test_cancel_missing)
{
	int status = -1;

	ck_assert_int_eq(cancel(42, NOW, &status), JOBD_ENOTFOUND);
}
END_TEST

/* ---- retry ---- */

START_TEST(test_retry_failed_and_cancelled)
{
	int status = -1;
	struct job got;

	add(1, "noop", 0, NOW, 1);
	claim_one(1, "tok");
	ck_assert_int_eq(complete(1, "tok", JOB_FAILED, NOW + 1, "{\"p\":1}",
	                          "bad", 2), 0);
	ck_assert_int_eq(retry(1, NOW + 100, &status), 0);
	ck_assert_int_eq(status, JOB_FAILED); /* the status it had */
	got = get(1);
	ck_assert_int_eq(got.status, JOB_QUEUED);
	ck_assert_int_eq(got.attempt, 0); /* a fresh attempt budget */
	ck_assert_int_eq(got.max_attempts, 1);
	ck_assert_int_eq(got.run_at_us, NOW + 100);
	ck_assert_int_eq(got.started_at_us, -1);
	ck_assert_int_eq(got.finished_at_us, -1);
	ck_assert_ptr_null(got.result);
	ck_assert_ptr_null(got.error);
	ck_assert(!got.has_exit_code);
	ck_assert_str_eq(got.claim, "");
	job_clear(&got);
	/* It runs again. */
	struct job *jobs = NULL;
	ck_assert_uint_eq(claim(NOW + 100, 1, NULL, 0, "tok2", &jobs), 1);
	ck_assert_int_eq(jobs[0].attempt, 1);
	free_jobs(jobs, 1);

	add(2, "noop", 0, NOW + 5000, 3);
	ck_assert_int_eq(cancel(2, NOW, &status), 0);
	ck_assert_int_eq(retry(2, NOW + 200, &status), 0);
	ck_assert_int_eq(status, JOB_CANCELLED);
	got = get(2);
	ck_assert_int_eq(got.status, JOB_QUEUED);
	ck_assert_int_eq(got.run_at_us, NOW + 200);
	ck_assert_int_eq(got.finished_at_us, -1);
	job_clear(&got);
}
END_TEST

START_TEST(test_retry_other_states)
{
	int status = -1;

	add(1, "noop", 0, NOW, 3); /* queued */
	ck_assert_int_eq(retry(1, NOW, &status), JOBD_ECONFLICT);
	ck_assert_int_eq(status, JOB_QUEUED);

	claim_one(1, "tok"); /* running */
	ck_assert_int_eq(retry(1, NOW, &status), JOBD_ECONFLICT);
	ck_assert_int_eq(status, JOB_RUNNING);
	ck_assert_int_eq(status_of(1), JOB_RUNNING);

	ck_assert_int_eq(complete(1, "tok", JOB_SUCCEEDED, NOW, "1", NULL, 0),
	                 0);
	ck_assert_int_eq(retry(1, NOW, &status), JOBD_ECONFLICT);
	ck_assert_int_eq(status, JOB_SUCCEEDED);
	ck_assert_int_eq(status_of(1), JOB_SUCCEEDED);

	ck_assert_int_eq(retry(77, NOW, &status), JOBD_ENOTFOUND);
}
END_TEST

START_TEST(test_retry_forgets_old_cancel_request)
{
	int status = -1, requeued = -1, failed = -1;

	add(1, "noop", 0, NOW, 3);
	claim_one(1, "t1");
	ck_assert_int_eq(cancel(1, NOW, &status), JOBD_ECONFLICT);
	ck_assert_int_eq(complete(1, "t1", JOB_CANCELLED, NOW + 1, NULL,
	                          "cancelled", -1), 0);
	ck_assert_int_eq(retry(1, NOW, &status), 0);
	ck_assert_int_eq(status, JOB_CANCELLED);
	ck_assert_int_eq(sql_int("SELECT cancel_requested FROM jobs"), 0);
	/* Its next attempt is interrupted by a crash: requeued, not cancelled. */
	claim_one(1, "t2");
	begin();
	ck_assert_int_eq(store_recover(st, NOW + 3, &requeued, &failed, err,
	                               sizeof(err)), 0);
	commit();
	ck_assert_int_eq(requeued, 1);
	ck_assert_int_eq(status_of(1), JOB_QUEUED);
}
END_TEST

/* ---- recovery ---- */

START_TEST(test_recover)
{
	struct job *jobs = NULL, got;
	int requeued = -1, failed = -1, status;
	size_t n;

	add(1, "noop", 0, NOW, 3);  /* running, attempts left -> queued */
	add(2, "noop", 0, NOW, 1);  /* running, none left -> failed */
	add(3, "noop", 0, NOW, 3);  /* running, cancel requested -> cancelled */
	add(4, "noop", 0, NOW, 1);  /* none left and cancel -> cancelled */
	add(6, "noop", 0, NOW, 1);  /* claimed, never started -> queued */
	n = claim(NOW, 10, NULL, 0, "dead-daemon", &jobs);
	ck_assert_uint_eq(n, 5);
	free_jobs(jobs, n);
	for (int i = 1; i <= 4; i++)
		ck_assert_int_eq(start(i, "dead-daemon", NOW + 1), 0);
	add(5, "noop", 0, NOW + 50000, 3); /* queued, untouched */
	ck_assert_int_eq(cancel(3, NOW, &status), JOBD_ECONFLICT);
	ck_assert_int_eq(cancel(4, NOW, &status), JOBD_ECONFLICT);

	/* The daemon restarts. */
	store_close(st);
	st = NULL;
	open_store();
	begin();
	ck_assert_int_eq(store_recover(st, NOW + 1000, &requeued, &failed, err,
	                               sizeof(err)), 0);
	commit();
	ck_assert_int_eq(requeued, 2);

	/* An attempt that never started does not count: with one attempt
	 * allowed, the job is queued again, not failed. */
	got = get(6);
	ck_assert_int_eq(got.status, JOB_QUEUED);
	ck_assert_int_eq(got.attempt, 0);
	job_clear(&got);

	got = get(1);
	ck_assert_int_eq(got.status, JOB_QUEUED);
	ck_assert_int_eq(got.attempt, 1); /* the attempt is counted */
	ck_assert_int_eq(got.run_at_us, NOW + 1000);
	ck_assert_str_eq(got.claim, "");
	job_clear(&got);

	got = get(2);
	ck_assert_int_eq(got.status, JOB_FAILED);
	ck_assert_int_eq(got.attempt, 1);
	ck_assert_int_eq(got.finished_at_us, NOW + 1000);
	ck_assert_ptr_nonnull(got.error);
	ck_assert_str_eq(got.claim, "");
	job_clear(&got);

	got = get(3);
	ck_assert_int_eq(got.status, JOB_CANCELLED);
	ck_assert_int_eq(got.finished_at_us, NOW + 1000);
	ck_assert_str_eq(got.claim, "");
	job_clear(&got);

	ck_assert_int_eq(status_of(4), JOB_CANCELLED);

	got = get(5);
	ck_assert_int_eq(got.status, JOB_QUEUED);
	ck_assert_int_eq(got.run_at_us, NOW + 50000);
	job_clear(&got);

	/* The old claim can no longer complete anything. */
	ck_assert_int_eq(complete(1, "dead-daemon", JOB_SUCCEEDED, NOW, "1",
	                          NULL, 0), JOBD_ESTALE);
	/* Recovery twice changes nothing. */
	begin();
	ck_assert_int_eq(store_recover(st, NOW + 2000, &requeued, &failed, err,
	                               sizeof(err)), 0);
	commit();
	ck_assert_int_eq(requeued, 0);
	ck_assert_int_eq(failed, 0);
	/* The requeued jobs run again: attempt 2, and 1 for the one that
	 * never started. */
	n = claim(NOW + 1000, 10, NULL, 0, "new-daemon", &jobs);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(jobs[0].attempt, 2);
	ck_assert_int_eq(jobs[1].attempt, 1);
	free_jobs(jobs, n);
}
END_TEST

/* A cancel requested while the attempt runs: the store decides at the
 * attempt's end (issue 11, item 1). */
START_TEST(test_cancel_decided_at_completion)
{
	struct job *jobs = NULL, got;
	int status = -1;
	size_t n;

	add(1, "noop", 0, NOW, 5); /* fails with attempts left */
	add(2, "noop", 0, NOW, 1); /* fails with none left */
	add(3, "noop", 0, NOW, 5); /* succeeds */
	add(4, "noop", 0, NOW, 5); /* put back at shutdown */
	n = claim(NOW, 10, NULL, 0, "t", &jobs);
	ck_assert_uint_eq(n, 4);
	free_jobs(jobs, n);
	for (int i = 1; i <= 4; i++)
		ck_assert_int_eq(cancel(i, NOW + 1, &status), JOBD_ECONFLICT);

	ck_assert_int_eq(complete_status(1, "t", JOB_QUEUED, NOW + 10, &status),
	                 0);
	ck_assert_int_eq(status, JOB_CANCELLED);
	got = get(1);
	ck_assert_int_eq(got.status, JOB_CANCELLED);
	ck_assert_int_eq(got.finished_at_us, NOW + 17);
	ck_assert_str_eq(got.error, "exit status 1");
	job_clear(&got);
	ck_assert_int_eq(complete_status(2, "t", JOB_FAILED, NOW + 10, &status),
	                 0);
	ck_assert_int_eq(status, JOB_CANCELLED);
	ck_assert_int_eq(complete_status(3, "t", JOB_SUCCEEDED, NOW + 10,
	                                 &status), 0);
	ck_assert_int_eq(status, JOB_SUCCEEDED);
	ck_assert_int_eq(complete_status(4, "t", JOB_QUEUED, NOW + 10, &status),
	                 0);
	ck_assert_int_eq(status, JOB_CANCELLED);

	/* The flag is cleared by a retry and by a claim: a later failure is
	 * a plain failure. */
	ck_assert_int_eq(retry(2, NOW + 20, &status), 0);
	n = claim(NOW + 20, 10, NULL, 0, "t2", &jobs);
	ck_assert_uint_eq(n, 1);
	free_jobs(jobs, n);
	ck_assert_int_eq(complete_status(2, "t2", JOB_FAILED, NOW + 30, &status),
	                 0);
	ck_assert_int_eq(status, JOB_FAILED);
}
END_TEST

/* A start is fenced like a completion. */
START_TEST(test_start_fenced)
{
	struct job *jobs = NULL, got;
	size_t n;

	add(1, "noop", 0, NOW, 3);
	n = claim(NOW, 10, NULL, 0, "t", &jobs);
	ck_assert_uint_eq(n, 1);
	free_jobs(jobs, n);
	ck_assert_int_eq(start(1, "other", NOW + 5), JOBD_ESTALE);
	ck_assert_int_eq(start(1, "t", NOW + 5), 0);
	got = get(1);
	ck_assert_int_eq(got.started_at_us, NOW + 5);
	job_clear(&got);
	ck_assert_int_eq(complete(1, "t", JOB_SUCCEEDED, NOW + 9, "1", NULL, 0),
	                 0);
	ck_assert_int_eq(start(1, "t", NOW + 5), JOBD_ESTALE);
}
END_TEST

/* A report of job n's attempt under token. */
static int
progress_write(int n, const char *token, const char *json)
{
	char id[UUID_STR_LEN];
	int rc;

	make_id(id, n);
	begin();
	rc = store_progress(st, id, token, json, err, sizeof(err));
	commit();
	return rc;
}

static void
assert_progress(int n, const char *want)
{
	struct job got = get(n);

	if (want == NULL)
		ck_assert_ptr_null(got.progress);
	else
		ck_assert_str_eq(got.progress, want);
	job_clear(&got);
}

/* Progress is written for the current claim only (a stale one changes
 * nothing, and is no error), kept by a completion that brings none,
 * cleared by the next claim and by a retry, and set by a completion that
 * brings one; lists show it. */
START_TEST(test_progress_fenced)
{
	char id[UUID_STR_LEN];
	struct store_completion c = {
		.id = id, .claim = "u", .status = JOB_FAILED,
		.finished_at_us = NOW + 9, .now_us = NOW + 9,
		.progress = "{\"a\":4}",
	};
	struct store_filter f = {.status = -1, .limit = 10};
	struct job *jobs = NULL;
	size_t n = 0;
	int status = -1;

	add(1, "noop", 0, NOW, 3);
	assert_progress(1, NULL);
	claim_one(1, "t");
	ck_assert_int_eq(progress_write(1, "other", "{\"a\":1}"), 0);
	assert_progress(1, NULL);
	ck_assert_int_eq(progress_write(1, "t", "{\"a\":2}"), 0);
	assert_progress(1, "{\"a\":2}");
	ck_assert_int_eq(complete(1, "t", JOB_QUEUED, NOW, NULL, "again", 1),
	                 0);
	assert_progress(1, "{\"a\":2}");
	/* The ended attempt's late report. */
	ck_assert_int_eq(progress_write(1, "t", "{\"a\":3}"), 0);
	assert_progress(1, "{\"a\":2}");
	claim_one(1, "u");
	assert_progress(1, NULL);
	make_id(id, 1);
	begin();
	ck_assert_int_eq(store_complete(st, &c, NULL, err, sizeof(err)), 0);
	commit();
	assert_progress(1, "{\"a\":4}");
	ck_assert_int_eq(store_list(st, &f, &jobs, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(jobs[0].progress, "{\"a\":4}");
	free_jobs(jobs, n);
	ck_assert_int_eq(retry(1, NOW + 10, &status), 0);
	assert_progress(1, NULL);
}
END_TEST

START_TEST(test_recover_nothing)
{
	int requeued = -1, failed = -1;

	add(1, "noop", 0, NOW, 3);
	begin();
	ck_assert_int_eq(store_recover(st, NOW, &requeued, &failed, err,
	                               sizeof(err)), 0);
	commit();
	ck_assert_int_eq(requeued, 0);
	ck_assert_int_eq(failed, 0);
	ck_assert_int_eq(status_of(1), JOB_QUEUED);
}
END_TEST

/* ---- purge ---- */

/* Makes job n finished with status at time when. */
static void
finish(int n, int status, int64_t when)
{
	int st_out;

	add(n, "noop", 0, NOW, 3);
	if (status == JOB_CANCELLED) {
		ck_assert_int_eq(cancel(n, when, &st_out), 0);
		return;
	}
	claim_one(n, "p");
	ck_assert_int_eq(complete(n, "p", status, when, NULL, NULL, -1), 0);
}

/* Purges in its own transaction; returns the total, per status in by. */
static int64_t
purge(int64_t cutoff, int limit, int64_t by[JOB_NSTATUS])
{
	int64_t total = 0;
	int rc;

	for (int i = 0; i < JOB_NSTATUS; i++)
		by[i] = 0;
	begin();
	rc = store_purge(st, cutoff, limit, by, err, sizeof(err));
	ck_assert_msg(rc == 0, "store_purge: %d %s", rc, err);
	commit();
	for (int i = 0; i < JOB_NSTATUS; i++)
		total += by[i];
	return total;
}

START_TEST(test_purge)
{
	struct job j;
	int64_t by[JOB_NSTATUS];

	finish(1, JOB_SUCCEEDED, 100);
	finish(2, JOB_FAILED, 200);
	finish(3, JOB_CANCELLED, 300);
	finish(4, JOB_SUCCEEDED, 1000);   /* after the cutoff */
	finish(5, JOB_FAILED, 500);       /* exactly at the cutoff: kept */
	add(6, "noop", 0, NOW + 5000, 3); /* queued */
	add(7, "noop", 0, NOW, 3);
	claim_one(7, "r");                /* running */
	add(8, "noop", 0, NOW + 9999, 3); /* queued, future */

	ck_assert_int_eq(purge(500, 100, by), 3);
	ck_assert_int_eq(by[JOB_SUCCEEDED], 1);
	ck_assert_int_eq(by[JOB_FAILED], 1);
	ck_assert_int_eq(by[JOB_CANCELLED], 1);
	ck_assert_int_eq(by[JOB_QUEUED], 0);
	ck_assert_int_eq(by[JOB_RUNNING], 0);
	job_init(&j);
	for (int n = 1; n <= 3; n++) {
		char id[UUID_STR_LEN];
		make_id(id, n);
		ck_assert_int_eq(store_get(st, id, &j, err, sizeof(err)),
		                 JOBD_ENOTFOUND);
	}
	ck_assert_int_eq(status_of(4), JOB_SUCCEEDED);
	ck_assert_int_eq(status_of(5), JOB_FAILED);
	ck_assert_int_eq(status_of(6), JOB_QUEUED);
	ck_assert_int_eq(status_of(7), JOB_RUNNING);
	ck_assert_int_eq(status_of(8), JOB_QUEUED);

	/* Even a far cutoff never touches live jobs. */
	ck_assert_int_eq(purge(INT64_MAX, 100, by), 2);
	ck_assert_int_eq(by[JOB_SUCCEEDED], 1);
	ck_assert_int_eq(by[JOB_FAILED], 1);
	ck_assert_int_eq(status_of(6), JOB_QUEUED);
	ck_assert_int_eq(status_of(7), JOB_RUNNING);
	ck_assert_int_eq(status_of(8), JOB_QUEUED);
}
END_TEST

START_TEST(test_purge_limit)
{
	int64_t by[JOB_NSTATUS], counts[JOB_NSTATUS];

	for (int n = 1; n <= 5; n++)
		finish(n, JOB_SUCCEEDED, 100 + n);
	ck_assert_int_eq(purge(1000, 2, by), 2);
	ck_assert_int_eq(by[JOB_SUCCEEDED], 2);
	ck_assert_int_eq(store_counts(st, counts, err, sizeof(err)), 0);
	ck_assert_int_eq(counts[JOB_SUCCEEDED], 3);
	ck_assert_int_eq(purge(1000, 2, by), 2);
	ck_assert_int_eq(purge(1000, 2, by), 1);
	ck_assert_int_eq(purge(1000, 2, by), 0);
	ck_assert_int_eq(store_counts(st, counts, err, sizeof(err)), 0);
	ck_assert_int_eq(counts[JOB_SUCCEEDED], 0);
}
END_TEST

START_TEST(test_purge_adds_to_counts)
{
	/* deleted[] is added to, so a caller can sum several batches. */
	int64_t by[JOB_NSTATUS] = {0, 0, 7, 0, 0};

	finish(1, JOB_SUCCEEDED, 10);
	begin();
	ck_assert_int_eq(store_purge(st, 1000, 10, by, err, sizeof(err)), 0);
	commit();
	ck_assert_int_eq(by[JOB_SUCCEEDED], 8);
}
END_TEST

/* ---- next_run_at ---- */

START_TEST(test_next_run_at)
{
	int64_t next = 0;
	int status;

	begin();
	ck_assert_int_eq(store_next_run_at(st, &next, err, sizeof(err)), 0);
	commit();
	ck_assert_int_eq(next, -1);

	add(1, "noop", 0, NOW + 500, 3);
	add(2, "noop", 0, NOW + 300, 3);
	add(3, "noop", 0, NOW + 900, 3);
	add(4, "noop", 0, NOW + 100, 3);
	ck_assert_int_eq(cancel(4, NOW, &status), 0); /* not queued any more */
	begin();
	ck_assert_int_eq(store_next_run_at(st, &next, err, sizeof(err)), 0);
	commit();
	ck_assert_int_eq(next, NOW + 300);

	/* A running job does not count. */
	struct job *jobs = NULL;
	ck_assert_uint_eq(claim(NOW + 300, 1, NULL, 0, "c", &jobs), 1);
	free_jobs(jobs, 1);
	begin();
	ck_assert_int_eq(store_next_run_at(st, &next, err, sizeof(err)), 0);
	commit();
	ck_assert_int_eq(next, NOW + 500);
}
END_TEST

/* ---- list ---- */

static void
assert_list(const struct store_filter *f, const int *want, size_t nwant)
{
	struct job *jobs = NULL;
	size_t n = 12345;

	ck_assert_int_eq(store_list(st, f, &jobs, &n, err, sizeof(err)), 0);
	ck_assert_msg(n == nwant, "listed %zu jobs, want %zu", n, nwant);
	for (size_t i = 0; i < n; i++) {
		char id[UUID_STR_LEN];
		make_id(id, want[i]);
		ck_assert_msg(strcmp(jobs[i].id, id) == 0, "job %zu: %s, want %s",
		              i, jobs[i].id, id);
		ck_assert_ptr_nonnull(jobs[i].payload);
	}
	free_jobs(jobs, n);
}

START_TEST(test_list)
{
	char after[UUID_STR_LEN];
	int status;

	/* 1..6: types a b a b a c; 2 running, 4 cancelled, others queued. */
	add(1, "a", 0, NOW, 3);
	add(2, "b", 9, NOW, 3);
	add(3, "a", 0, NOW + 9000, 3);
	add(4, "b", 0, NOW, 3);
	add(5, "a", 0, NOW + 9000, 3);
	add(6, "c", 0, NOW + 9000, 3);
	ck_assert_int_eq(cancel(4, NOW, &status), 0);
	struct job *jobs = NULL;
	ck_assert_uint_eq(claim(NOW, 1, NULL, 0, "c", &jobs), 1);
	ck_assert_int_eq(jobs[0].priority, 9);
	free_jobs(jobs, 1);

	struct store_filter all = {.status = -1, .limit = 50};
	assert_list(&all, (const int[]){6, 5, 4, 3, 2, 1}, 6);

	struct store_filter lim = {.status = -1, .limit = 2};
	assert_list(&lim, (const int[]){6, 5}, 2);

	struct store_filter queued = {.status = JOB_QUEUED, .limit = 50};
	assert_list(&queued, (const int[]){6, 5, 3, 1}, 4);
	struct store_filter running = {.status = JOB_RUNNING, .limit = 50};
	assert_list(&running, (const int[]){2}, 1);
	struct store_filter cancelled = {.status = JOB_CANCELLED, .limit = 50};
	assert_list(&cancelled, (const int[]){4}, 1);
	struct store_filter succeeded = {.status = JOB_SUCCEEDED, .limit = 50};
	assert_list(&succeeded, NULL, 0);

	struct store_filter type_a = {.status = -1, .type = "a", .limit = 50};
	assert_list(&type_a, (const int[]){5, 3, 1}, 3);
	struct store_filter type_z = {.status = -1, .type = "z", .limit = 50};
	assert_list(&type_z, NULL, 0);

	/* Pagination: ids below the cursor, newest first. */
	make_id(after, 5);
	struct store_filter page = {.status = -1, .after = after, .limit = 2};
	assert_list(&page, (const int[]){4, 3}, 2);
	make_id(after, 3);
	assert_list(&page, (const int[]){2, 1}, 2);
	make_id(after, 1);
	assert_list(&page, NULL, 0);

	/* All filters at once. */
	make_id(after, 5);
	struct store_filter combo = {.status = JOB_QUEUED, .type = "a",
	                             .after = after, .limit = 1};
	assert_list(&combo, (const int[]){3}, 1);
	combo.limit = 10;
	assert_list(&combo, (const int[]){3, 1}, 2);
	struct store_filter b_queued = {.status = JOB_QUEUED, .type = "b",
	                                .limit = 10};
	assert_list(&b_queued, NULL, 0);
}
END_TEST

START_TEST(test_list_walks_all_pages)
{
	char after[UUID_STR_LEN] = "";
	int seen = 0, expect = 37;

	for (int n = 1; n <= 37; n++)
		add(n, n % 2 ? "odd" : "even", 0, NOW, 3);
	for (;;) {
		struct store_filter f = {.status = -1,
		                         .after = after[0] ? after : NULL,
		                         .limit = 5};
		struct job *jobs = NULL;
		size_t n = 0;
		ck_assert_int_eq(store_list(st, &f, &jobs, &n, err, sizeof(err)),
		                 0);
		for (size_t i = 0; i < n; i++) {
			char id[UUID_STR_LEN];
			make_id(id, expect--);
			ck_assert_str_eq(jobs[i].id, id);
			seen++;
		}
		if (n > 0)
			memcpy(after, jobs[n - 1].id, UUID_STR_LEN);
		free_jobs(jobs, n);
		if (n < 5)
			break;
	}
	ck_assert_int_eq(seen, 37);
}
END_TEST

/* ---- counts ---- */

START_TEST(test_counts)
{
	int64_t counts[JOB_NSTATUS];
	int status;

	ck_assert_int_eq(store_counts(st, counts, err, sizeof(err)), 0);
	for (int i = 0; i < JOB_NSTATUS; i++)
		ck_assert_int_eq(counts[i], 0);

	for (int n = 1; n <= 9; n++)
		add(n, "noop", n, n <= 6 ? NOW : NOW + 100000, 1);
	claim_one(6, "x"); /* highest due priority first */
	claim_one(5, "y");
	claim_one(4, "z");
	claim_one(3, "w");
	ck_assert_int_eq(complete(6, "x", JOB_SUCCEEDED, NOW, NULL, NULL, 0), 0);
	ck_assert_int_eq(complete(5, "y", JOB_FAILED, NOW, NULL, "e", 1), 0);
	ck_assert_int_eq(complete(4, "z", JOB_FAILED, NOW, NULL, "e", 1), 0);
	ck_assert_int_eq(cancel(9, NOW, &status), 0);

	ck_assert_int_eq(store_counts(st, counts, err, sizeof(err)), 0);
	ck_assert_int_eq(counts[JOB_QUEUED], 4); /* 1, 2, 7, 8 */
	ck_assert_int_eq(counts[JOB_RUNNING], 1);
	ck_assert_int_eq(counts[JOB_SUCCEEDED], 1);
	ck_assert_int_eq(counts[JOB_FAILED], 2);
	ck_assert_int_eq(counts[JOB_CANCELLED], 1);
}
END_TEST

/* store_insert_many: rows like store_insert's, 64/16/4 to a statement and
 * the rest one by one (103 = 64 + 16 + 16 + 4 + 3). */
START_TEST(test_insert_many_like_insert)
{
	enum { N = 103 };
	struct job many[N], one;
	char key[32];
	int rc;

	for (int i = 0; i < N; i++) {
		make_job(&many[i], i + 1, i % 3 ? "noop" : "echo", i % 7 - 3,
		         i % 5 ? NOW - 1000 : NOW + 60000000LL);
		many[i].cancel_on_disconnect = i % 2;
		if (i % 4 == 0) {
			snprintf(key, sizeof(key), "a%d", i);
			many[i].idem_key = strdup(key);
			many[i].idem_fp = strdup("fp");
		}
	}
	begin();
	rc = store_insert_many(st, many, N, err, sizeof(err));
	ck_assert_msg(rc == 0, "store_insert_many: %d %s", rc, err);
	for (int i = 0; i < N; i++) {
		rc = job_copy(&one, &many[i]);
		ck_assert_int_eq(rc, 0);
		make_id(one.id, 1000 + i);
		if (one.idem_key != NULL)
			one.idem_key[0] = 'b';
		rc = store_insert(st, &one, err, sizeof(err));
		ck_assert_msg(rc == 0, "store_insert: %d %s", rc, err);
		job_clear(&one);
	}
	commit();
	ck_assert_int_eq(sql_int("SELECT count(*) FROM jobs"), 2 * N);
#define COLS "type, status, priority, attempt, max_attempts, timeout_ms, " \
	"created_at, run_at, started_at, finished_at, payload, " \
	"cancel_on_disconnect, cancel_requested, claim, substr(idem_key, 2), " \
	"idem_fp, output_truncated, due, attempt_started"
	ck_assert_int_eq(sql_int("SELECT count(*) FROM (SELECT " COLS " FROM "
	                         "jobs WHERE id < '01900000-0000-7000-8000-"
	                         "000000001000' EXCEPT SELECT " COLS " FROM jobs"
	                         " WHERE id >= '01900000-0000-7000-8000-"
	                         "000000001000')"), 0);
#undef COLS
	ck_assert_int_eq(sql_int("SELECT count(*) FROM jobs WHERE due = 0"),
	                 2 * 21);
	for (int i = 0; i < N; i++)
		job_clear(&many[i]);
}
END_TEST

/* ---- the callbacks' outbox ---- */

static size_t
outbox_claim(int64_t now, const char *token, int64_t until, bool release,
             struct store_outbox_row **rows, int64_t *next)
{
	struct store_outbox_claim_req req = {.now_us = now, .claim = token,
	    .until_us = until, .limit = 10, .release = release};
	size_t n = 99;
	int rc;

	begin();
	rc = store_outbox_claim(st, &req, rows, &n, next, err, sizeof(err));
	ck_assert_msg(rc == 0, "store_outbox_claim: %d %s", rc, err);
	commit();
	return n;
}

static void
outbox_rows_free(struct store_outbox_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rows[i].url);
	free(rows);
}

static void
outbox_done(int n, const char *token, int status, int attempts, int64_t next,
            const char *why)
{
	char id[UUID_STR_LEN];
	int rc;

	make_id(id, n);
	begin();
	rc = store_outbox_done(st, id, token, status, attempts, next, why, err,
	                       sizeof(err));
	ck_assert_msg(rc == 0, "store_outbox_done: %d %s", rc, err);
	commit();
}

/* A job's end puts its callback in the outbox (whatever ends it); one
 * claimer at a time, until its lease; a late outcome under an old claim
 * changes nothing; purge takes the row with the job. */
START_TEST(test_outbox)
{
	struct job j;
	struct store_outbox_row *rows = NULL;
	int64_t next = 0;
	int st_out;
	char id1[UUID_STR_LEN];

	make_id(id1, 1);
	make_job(&j, 1, "noop", 0, NOW);
	j.callback_url = strdup("http://127.0.0.1:9/a");
	insert_job(&j);
	job_clear(&j);
	make_job(&j, 2, "noop", 0, NOW);
	j.callback_url = strdup("http://127.0.0.1:9/b");
	insert_job(&j);
	job_clear(&j);
	add(3, "noop", 0, NOW + 1000000000, 3); /* no callback */
	/* Not final: nothing owed, "pending" shown. */
	ck_assert_int_eq(outbox_claim(NOW, "t1", NOW + 100, false, &rows,
	                              &next), 0);
	outbox_rows_free(rows, 0);
	ck_assert_int_eq(next, -1);
	j = get(1);
	ck_assert_str_eq(j.callback, "{\"url\":\"http://127.0.0.1:9/a\","
	                 "\"status\":\"pending\",\"attempts\":0,"
	                 "\"last_error\":null}");
	job_clear(&j);
	j = get(3);
	ck_assert_ptr_null(j.callback);
	job_clear(&j);
	/* Job 1 succeeds, job 2 is cancelled, job 3 too (no row). */
	claim_one(1, "c");
	ck_assert_int_eq(complete(1, "c", JOB_SUCCEEDED, NOW + 5, NULL, NULL,
	                          -1), 0);
	ck_assert_int_eq(cancel(2, NOW + 6, &st_out), 0);
	ck_assert_int_eq(cancel(3, NOW + 6, &st_out), 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM outbox"), 2);
	ck_assert_uint_eq(outbox_claim(NOW + 10, "t1", NOW + 100, false, &rows,
	                               &next), 2);
	ck_assert_int_eq(rows[0].attempts, 0);
	outbox_rows_free(rows, 2);
	ck_assert_int_eq(next, NOW + 100); /* the claims' lease */
	/* Claimed: nobody else takes them before the lease. */
	ck_assert_uint_eq(outbox_claim(NOW + 99, "t2", NOW + 200, false, &rows,
	                               &next), 0);
	outbox_rows_free(rows, 0);
	/* Job 1: a retry at NOW + 150; job 2: delivered. */
	outbox_done(1, "t1", OUTBOX_PENDING, 1, NOW + 150, "HTTP 500");
	outbox_done(2, "t1", OUTBOX_DELIVERED, 1, 0, NULL);
	/* A late outcome under a claim no longer current: nothing. */
	outbox_done(1, "t0", OUTBOX_FAILED, 9, 0, "late");
	j = get(1);
	ck_assert_str_eq(j.callback, "{\"url\":\"http://127.0.0.1:9/a\","
	                 "\"status\":\"pending\",\"attempts\":1,"
	                 "\"last_error\":\"HTTP 500\"}");
	job_clear(&j);
	ck_assert_uint_eq(outbox_claim(NOW + 149, "t3", NOW + 300, false,
	                               &rows, &next), 0);
	ck_assert_int_eq(next, NOW + 150);
	outbox_rows_free(rows, 0);
	ck_assert_uint_eq(outbox_claim(NOW + 150, "t3", NOW + 300, false,
	                               &rows, &next), 1);
	ck_assert_str_eq(rows[0].id, id1);
	ck_assert_str_eq(rows[0].url, "http://127.0.0.1:9/a");
	ck_assert_int_eq(rows[0].attempts, 1);
	outbox_rows_free(rows, 1);
	/* Its lease runs out: another claimer takes it over. */
	ck_assert_uint_eq(outbox_claim(NOW + 300, "t4", NOW + 400, false,
	                               &rows, &next), 1);
	outbox_rows_free(rows, 1);
	/* A start-up alone on the store takes every claim back. */
	ck_assert_uint_eq(outbox_claim(NOW + 301, "t5", NOW + 500, true,
	                               &rows, &next), 1);
	outbox_rows_free(rows, 1);
	outbox_done(1, "t5", OUTBOX_FAILED, 2, 0, NULL);
	j = get(1);
	ck_assert_str_eq(j.callback, "{\"url\":\"http://127.0.0.1:9/a\","
	                 "\"status\":\"failed\",\"attempts\":2,"
	                 "\"last_error\":\"HTTP 500\"}");
	job_clear(&j);
	/* A retried job that ends again owes a new delivery. */
	ck_assert_int_eq(retry(2, NOW + 500, &st_out), 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM outbox WHERE"
	                         " status = 'pending'"), 0);
	ck_assert_int_eq(cancel(2, NOW + 501, &st_out), 0);
	ck_assert_int_eq(sql_int("SELECT attempts FROM outbox WHERE"
	                         " status = 'pending'"), 0);
	/* Purge takes the rows with their jobs. */
	int64_t by[JOB_NSTATUS] = {0};
	begin();
	ck_assert_int_eq(store_purge(st, NOW + 1000000, 100, by, err,
	                             sizeof(err)), 0);
	commit();
	ck_assert_int_eq(sql_int("SELECT count(*) FROM outbox"), 0);
}
END_TEST

static Suite *
store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("sqlite");

	tcase_add_unchecked_fixture(tc, setup_base, teardown_base);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_open_creates_and_migrates);
	tcase_add_test(tc, test_reopen_keeps_data);
	tcase_add_test(tc, test_migrate_v1_times_to_us);
	tcase_add_test(tc, test_open_newer_schema_refused);
	tcase_add_test(tc, test_open_failures);
	tcase_add_test(tc, test_open_twice_refused);
	tcase_add_test(tc, test_file_deleted_refuses_commit);
	tcase_add_test(tc, test_file_replaced_refuses_commit);
	tcase_add_test(tc, test_file_created_private);
	tcase_add_test(tc, test_durability_full_opens);
	tcase_add_test(tc, test_insert_and_get);
	tcase_add_test(tc, test_get_missing);
	tcase_add_test(tc, test_uncommitted_insert_invisible_and_rollback);
	tcase_add_test(tc, test_duplicate_id);
	tcase_add_test(tc, test_duplicate_id_same_batch);
	tcase_add_test(tc, test_idempotency_key);
	tcase_add_test(tc, test_claim_order);
	tcase_add_test(tc, test_claim_limit_takes_best_first);
	tcase_add_test(tc, test_claim_limit_zero);
	tcase_add_test(tc, test_claim_not_before_run_at);
	tcase_add_test(tc, test_claim_included_types);
	tcase_add_test(tc, test_cancel_decided_at_completion);
	tcase_add_test(tc, test_start_fenced);
	tcase_add_test(tc, test_progress_fenced);
	tcase_add_test(tc, test_claim_token_longest);
	tcase_add_test(tc, test_claim_marks_running);
	tcase_add_test(tc, test_complete_with_right_claim);
	tcase_add_test(tc, test_complete_failed_with_error);
	tcase_add_test(tc, test_complete_with_wrong_claim);
	tcase_add_test(tc, test_complete_with_old_claim);
	tcase_add_test(tc, test_complete_requeue_with_backoff);
	tcase_add_test(tc, test_put_back_uncounts_attempt);
	tcase_add_test(tc, test_cancel_queued);
	tcase_add_test(tc, test_cancel_running);
	tcase_add_test(tc, test_cancel_finished);
	tcase_add_test(tc, test_cancel_missing);
	tcase_add_test(tc, test_retry_failed_and_cancelled);
	tcase_add_test(tc, test_retry_other_states);
	tcase_add_test(tc, test_retry_forgets_old_cancel_request);
	tcase_add_test(tc, test_recover);
	tcase_add_test(tc, test_recover_nothing);
	tcase_add_test(tc, test_purge);
	tcase_add_test(tc, test_purge_limit);
	tcase_add_test(tc, test_purge_adds_to_counts);
	tcase_add_test(tc, test_next_run_at);
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_list_walks_all_pages);
	tcase_add_test(tc, test_counts);
	tcase_add_test(tc, test_insert_many_like_insert);
	tcase_add_test(tc, test_outbox);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failures;

	log_set_level(LOG_WARN_); /* no "migrated schema" notices */
	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures != 0;
}
