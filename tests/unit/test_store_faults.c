/*
 * test_store_faults.c - unit tests of the power-cut mode of the
 * fault-injection VFS (src/store_faults.c): what is written stays in the
 * process until the file's xSync, every handle of the process sees it,
 * xTruncate and xFileSize account for it, and a process that dies leaves
 * on disk only what was synced.  Each test runs in its own process (Check
 * fork mode): the VFS is registered once per process.
 */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store_faults.h"

static char dir[64];
static char path[128];

static int
rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void
setup(void)
{
	strcpy(dir, "/tmp/jobd-test-faults-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f.db", dir);
}

static void
teardown(void)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Registers the shim in power-cut mode; returns it (the default VFS). */
static sqlite3_vfs *
powercut_vfs(void)
{
	char err[256] = "";
	sqlite3_vfs *vfs;

	setenv("JOBD_FAULT_INJECT", "powercut", 1);
	ck_assert_msg(store_faults_init(err, sizeof(err)) == 0, "%s", err);
	vfs = sqlite3_vfs_find(NULL);
	ck_assert_ptr_nonnull(vfs);
	ck_assert_str_eq(vfs->zName, "jobd-faults");
	return vfs;
}

static sqlite3_file *
open_file(sqlite3_vfs *vfs, const char *name)
{
	sqlite3_file *f = calloc(1, (size_t)vfs->szOsFile);
	int out = 0;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(vfs->xOpen(vfs, name, f, SQLITE_OPEN_MAIN_DB |
	                            SQLITE_OPEN_CREATE | SQLITE_OPEN_READWRITE,
	                            &out), SQLITE_OK);
	return f;
}

static void
close_file(sqlite3_file *f)
{
	ck_assert_int_eq(f->pMethods->xClose(f), SQLITE_OK);
	free(f);
}

static sqlite3_int64
size_of(sqlite3_file *f)
{
	sqlite3_int64 n = -1;

	ck_assert_int_eq(f->pMethods->xFileSize(f, &n), SQLITE_OK);
	return n;
}

static off_t
disk_size(void)
{
	struct stat sb;

	ck_assert_int_eq(stat(path, &sb), 0);
	return sb.st_size;
}

/* Whether bytes [off, off + n) of the file read back as byte c. */
static bool
reads_as(sqlite3_file *f, sqlite3_int64 off, int n, unsigned char c)
{
	unsigned char buf[16384];
	int rc;

	ck_assert_int_le(n, (int)sizeof(buf));
	rc = f->pMethods->xRead(f, buf, n, off);
	if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
		return false;
	for (int i = 0; i < n; i++)
		if (buf[i] != c)
			return false;
	return true;
}

static void
write_bytes(sqlite3_file *f, sqlite3_int64 off, int n, unsigned char c)
{
	unsigned char buf[16384];

	ck_assert_int_le(n, (int)sizeof(buf));
	memset(buf, c, (size_t)n);
	ck_assert_int_eq(f->pMethods->xWrite(f, buf, n, off), SQLITE_OK);
}

/* ---- the overlay ---- */

START_TEST(test_writes_wait_for_sync)
{
	sqlite3_vfs *vfs = powercut_vfs();
	sqlite3_file *f = open_file(vfs, path);
	unsigned char buf[32];

	/* Across a block boundary (4096), then a hole. */
	write_bytes(f, 0, 5000, 'A');
	ck_assert_int_eq(size_of(f), 5000);
	ck_assert_int_eq(disk_size(), 0);
	ck_assert(reads_as(f, 0, 5000, 'A'));
	write_bytes(f, 10000, 10, 'B');
	ck_assert_int_eq(size_of(f), 10010);
	ck_assert(reads_as(f, 5000, 5000, 0));
	ck_assert(reads_as(f, 10000, 10, 'B'));
	/* Reading past the end: zero-filled, and said to be short. */
	memset(buf, 0xff, sizeof(buf));
	ck_assert_int_eq(f->pMethods->xRead(f, buf, 20, 10000),
	                 SQLITE_IOERR_SHORT_READ);
	ck_assert(buf[9] == 'B' && buf[10] == 0 && buf[19] == 0);

	ck_assert_int_eq(f->pMethods->xSync(f, SQLITE_SYNC_NORMAL), SQLITE_OK);
	ck_assert_int_eq(disk_size(), 10010);
	ck_assert(reads_as(f, 0, 5000, 'A'));
	ck_assert(reads_as(f, 10000, 10, 'B'));
	close_file(f);
}
END_TEST

START_TEST(test_truncate_waits_for_sync)
{
	sqlite3_vfs *vfs = powercut_vfs();
	sqlite3_file *f = open_file(vfs, path);
	int fd;
	unsigned char c = 0;

	write_bytes(f, 0, 9000, 'A');
	ck_assert_int_eq(f->pMethods->xSync(f, SQLITE_SYNC_NORMAL), SQLITE_OK);
	/* Cut inside a block, then grow again: the bytes in between are
	 * zeros, not the synced 'A's still on disk. */
	ck_assert_int_eq(f->pMethods->xTruncate(f, 4100), SQLITE_OK);
	ck_assert_int_eq(size_of(f), 4100);
	ck_assert_int_eq(disk_size(), 9000);
	ck_assert_int_eq(f->pMethods->xTruncate(f, 12000), SQLITE_OK);
	ck_assert(reads_as(f, 0, 4100, 'A'));
	ck_assert(reads_as(f, 4100, 7900, 0));
	/* Cut to 0 and write one byte at 8192. */
	ck_assert_int_eq(f->pMethods->xTruncate(f, 0), SQLITE_OK);
	write_bytes(f, 8192, 1, 'C');
	ck_assert_int_eq(size_of(f), 8193);
	ck_assert(reads_as(f, 0, 8192, 0));
	ck_assert_int_eq(disk_size(), 9000);

	ck_assert_int_eq(f->pMethods->xSync(f, SQLITE_SYNC_NORMAL), SQLITE_OK);
	ck_assert_int_eq(disk_size(), 8193);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, 100), 1);
	ck_assert_int_eq(c, 0);
	ck_assert_int_eq(pread(fd, &c, 1, 8192), 1);
	ck_assert_int_eq(c, 'C');
	close(fd);
	close_file(f);
}
END_TEST

START_TEST(test_handles_share_what_is_unsynced)
{
	sqlite3_vfs *vfs = powercut_vfs();
	sqlite3_file *f = open_file(vfs, path), *g;

	write_bytes(f, 0, 100, 'A');
	g = open_file(vfs, path);
	ck_assert_int_eq(size_of(g), 100);
	ck_assert(reads_as(g, 0, 100, 'A'));
	write_bytes(g, 50, 10, 'B');
	ck_assert(reads_as(f, 50, 10, 'B'));
	/* Closing is not syncing: a new handle still sees the writes, and
	 * the disk does not. */
	close_file(f);
	close_file(g);
	f = open_file(vfs, path);
	ck_assert(reads_as(f, 50, 10, 'B'));
	ck_assert_int_eq(disk_size(), 0);
	close_file(f);
	/* A deleted file's unsynced writes go with it. */
	ck_assert_int_eq(vfs->xDelete(vfs, path, 0), SQLITE_OK);
	f = open_file(vfs, path);
	ck_assert_int_eq(size_of(f), 0);
	close_file(f);
}
END_TEST

/* ---- through SQLite: a cut keeps what was synced ---- */

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", sql, msg ? msg : "?");
		_exit(2);
	}
}

static int
count_rows(sqlite3 *db, const char *where)
{
	char sql[128];
	sqlite3_stmt *st = NULL;
	int n = -1;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM t WHERE %s", where);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

START_TEST(test_cut_keeps_only_synced_commits)
{
	char shm[160];
	sqlite3 *db = NULL, *reader = NULL;
	pid_t pid;
	int status = 0;
	sqlite3_stmt *st = NULL;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* The daemon: one commit fsynced, one not; a second
		 * connection sees both; then the power goes (no close). */
		powercut_vfs();
		if (sqlite3_open(path, &db) != SQLITE_OK)
			_exit(2);
		exec_ok(db, "PRAGMA journal_mode = WAL;"
		        " PRAGMA synchronous = FULL;"
		        " CREATE TABLE t (v INTEGER);"
		        " INSERT INTO t VALUES (1);"
		        " PRAGMA synchronous = OFF;"
		        " INSERT INTO t VALUES (2);");
		if (sqlite3_open(path, &reader) != SQLITE_OK ||
		    count_rows(reader, "1") != 2)
			_exit(3);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	              "child status %d", status);
	snprintf(shm, sizeof(shm), "%s-shm", path);
	unlink(shm);
	/* This process has no shim: it reads the disk as it was left. */
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(count_rows(db, "v = 1"), 1);
	ck_assert_int_eq(count_rows(db, "v = 2"), 0);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1,
	                                    &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_bad_specs_refused)
{
	static const char *const bad[] = {
		"powercut:1", "write:0", "write:-1", "write:3x", "fsync:1,stick",
		"write", "read:1", "write:9223372036854775808",
		"slowsync:0", "slowsync:60001", "slowsync:5,sticky", "slowsync",
	};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("JOBD_FAULT_INJECT", bad[i], 1);
		err[0] = '\0';
		ck_assert_msg(store_faults_init(err, sizeof(err)) != 0,
		              "%s accepted", bad[i]);
		ck_assert_ptr_nonnull(strstr(err, "JOBD_FAULT_INJECT"));
	}
}
END_TEST

static Suite *
faults_suite(void)
{
	Suite *s = suite_create("store_faults");
	TCase *tc = tcase_create("powercut");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_writes_wait_for_sync);
	tcase_add_test(tc, test_truncate_waits_for_sync);
	tcase_add_test(tc, test_handles_share_what_is_unsynced);
	tcase_add_test(tc, test_cut_keeps_only_synced_commits);
	tcase_add_test(tc, test_bad_specs_refused);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(faults_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
