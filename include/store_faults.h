/*
 * store_faults.h - I/O fault injection for the SQLite store (STYLE.md §15,
 * after SQLite's own test VFS): a VFS shim over the default one that can
 * fail the N-th write or the N-th fsync with an I/O error, so tests can
 * prove that a failed commit never yields a 202, or simulate a power cut,
 * so tests can prove that what was acknowledged or shown was durable.
 *
 * Off unless the environment variable JOBD_FAULT_INJECT is set when the
 * store opens:
 *   "write:N" or "fsync:N"  (N >= 1; counted over the database and WAL
 *                           files of the process), optionally ",sticky"
 *                           to fail every operation from the N-th on;
 *   "powercut"              writes to the database and WAL files stay in
 *                           the process's memory (seen by every read of
 *                           the process) until that file's next fsync, so
 *                           that SIGKILL leaves on disk only what was
 *                           fsynced: what a power cut would leave.  The
 *                           -shm file is not modelled (delete it after the
 *                           kill, as a reboot would lose it).
 *   "slowsync:MS"           every fsync first sleeps MS ms (1..60000) and
 *                           logs "slow fsync #N" at notice level: a slow
 *                           disk, so that a test can act while a commit
 *                           is in flight.
 * Only in the test build (-DJOBD_TEST_HOOKS, build/jobd-test); build/jobd
 * has none of it.
 */
#ifndef JOBD_STORE_FAULTS_H
#define JOBD_STORE_FAULTS_H

#include <stddef.h>

#ifdef JOBD_TEST_HOOKS
/*
 * Registers the shim (as the default VFS) when JOBD_FAULT_INJECT asks for
 * it.  Returns 0 (also when off) or a JOBD_E* code on a malformed value.
 * Call before opening any connection; not thread-safe.
 */
int store_faults_init(char *err, size_t errlen);
#else
/* A release build has no fault injection: JOBD_FAULT_INJECT is not read. */
static inline int
store_faults_init(char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	return 0;
}
#endif

#endif
