/*
 * store_pg.h - what the PostgreSQL store shows besides its operations
 * table: the URI check (store_check_path) and the migration runner, which
 * its unit test drives with migrations of its own.
 */
#ifndef JOBD_STORE_PG_H
#define JOBD_STORE_PG_H

#include <libpq-fe.h>
#include <stddef.h>

/* 0 when uri parses as a libpq connection URI, else JOBD_EINVAL. */
int store_pg_check_uri(const char *uri, char *err, size_t errlen);

/*
 * Brings the schema "jobd" of the database on c to version n by running
 * migs[version .. n-1], in one transaction under a transaction-level
 * advisory lock (a second daemon waits, then finds the work done), and
 * ANALYZEs jobd.jobs after a change.  A database at a version above n is
 * refused (JOBD_EINVAL, naming both versions); a migration that fails
 * leaves the version as it was.  c must not be in pipeline mode.
 */
int store_pg_migrate(PGconn *c, const char *const *migs, int n, char *err,
                     size_t errlen);

/* The writer's statements, i from 0 until NULL (the plan test). */
const char *store_pg_writer_sql(int i);

#endif
