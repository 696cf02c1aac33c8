/*
 * pg.h - a private PostgreSQL server for integration tests (issue 13).
 *
 * jd_pg_start() runs tests/pg/pg.sh start in a new temporary directory: a
 * throwaway cluster (initdb as the user postgres when run as root),
 * listening on 127.0.0.1 at a free port, durable (fsync and
 * synchronous_commit on), with a database jobd; pg->uri is its libpq URI.
 * jd_pg_stop() stops it (pg_ctl stop -m fast, then by its pid) and removes
 * the directory.
 *
 * The server is stopped by the process that started it, however that
 * process ends:
 *  - jd_pg_stop(), or exit() (an atexit handler stops every server the
 *    process still has), waits for the server to be gone;
 *  - a crash or a SIGKILL of the starting process: a small guard process,
 *    forked at start, waits on a pipe only the starter holds (close-on-exec,
 *    so a daemon under test does not keep it) and stops the server when
 *    the pipe closes.
 * In Check's fork mode a test's child inherits the jd_pg of an unchecked
 * fixture: jd_pg_stop() and the exit handler do nothing in any process but
 * the starter, so a test child ending never stops its parent's server.
 * Start a server per suite in an unchecked fixture (one initdb, ~1 s), or
 * per test in the test itself.
 *
 * SQL runs through psql (the server's own, pg->bin/psql), so the test
 * binaries need no libpq: jd_pg_sql() returns psql's unaligned, tuples-only
 * output.  Nothing here calls Check: every call returns an error value and
 * says why on stderr.
 *
 * Environment: JOBD_PG_SH (default tests/pg/pg.sh, relative to the current
 * directory: make runs the suites from the top); JOBD_PG_BIN and
 * JOBD_PG_TIMEOUT are read by the script.
 */
#ifndef JOBD_ITEST_PG_H
#define JOBD_ITEST_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct jd_pg {
	char dir[256];          /* the temporary directory (pg.sh's DIR) */
	char uri[512];          /* postgresql://postgres@127.0.0.1:PORT/jobd */
	char bin[256];          /* the directory of psql, pg_ctl, ... */
	int port;
	pid_t server_pid;       /* the postmaster; > 0 while it runs */
	pid_t owner;            /* the process that started it */
	pid_t guard_pid;        /* the guard process (see above) */
	int guard_fd;           /* the starter's end of the guard's pipe */
	struct jd_pg *next;     /* the exit handler's list */
};

/*
 * Starts a server into *pg (which must stay valid until jd_pg_stop()).
 * 0, -1 on failure (the script's messages and the server's log are on
 * stderr; nothing is left running), or 77 when this machine has no
 * PostgreSQL server binaries (the caller skips).
 */
int jd_pg_start(struct jd_pg *pg);

/* Stops the server and removes its directory (only in the starter). */
void jd_pg_stop(struct jd_pg *pg);

/* True while the postmaster runs. */
bool jd_pg_running(const struct jd_pg *pg);

/*
 * Runs sql (one or more statements; ON_ERROR_STOP) against the database
 * named in uri (NULL: pg->uri).  0 with psql's output, unaligned and
 * tuples only, trailing newline removed, in out (may be NULL; cut to
 * outlen), or -1 with psql's error on stderr.
 */
int jd_pg_sql(const struct jd_pg *pg, const char *uri, const char *sql,
              char *out, size_t outlen);

/*
 * The first column of the first row of sql: 0 with *value a new string
 * (caller frees; newlines and all), or NULL when there is no row or the
 * value is NULL; -1 on an error (psql's message on stderr).
 */
int jd_pg_sql_value(const struct jd_pg *pg, const char *uri, const char *sql,
                    char **value);

/* The first column of the first row of sql, as an integer: 0 or -1. */
int jd_pg_sql_int(const struct jd_pg *pg, const char *uri, const char *sql,
                  int64_t *out);

/*
 * Creates a fresh database name (dropping one of that name first) and
 * writes its URI into uri: one database per test or per daemon lets tests
 * share a server.  name: [a-z0-9_], at most 63 bytes.  0 or -1.
 */
int jd_pg_create_db(const struct jd_pg *pg, const char *name, char *uri,
                    size_t urilen);

/* Drops the database name (WITH (FORCE): sessions a killed daemon left
 * are ended first); no such database is fine.  0 or -1. */
int jd_pg_drop_db(const struct jd_pg *pg, const char *name);

/*
 * Fills *pg to use a server another process started (tests/pg/
 * with_server.sh), from its URI (postgresql://postgres@127.0.0.1:PORT/DB)
 * and the directory of its psql.  jd_pg_stop() does nothing on it.  0, or
 * -1 when uri is not of that form.
 */
int jd_pg_attach(struct jd_pg *pg, const char *uri, const char *bin);

#endif
