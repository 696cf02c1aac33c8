/*
 * pgroups.h - the process groups of running exec attempts, recorded in a
 * small file beside the store, so that a start after a crash kills what
 * the dead jobd's attempts left running before their jobs run again.
 */
#ifndef JOBD_PGROUPS_H
#define JOBD_PGROUPS_H

#include <stddef.h>
#include <sys/types.h>

/*
 * At start-up, before recovery requeues anything and before any worker
 * runs: opens (creating it) <store_path>.pgroups and locks it for the
 * life of the process; kills every group recorded there whose leader
 * still runs with the recorded start time, logging each (a group whose
 * number now belongs to another process, or whose leader is gone, is left
 * alone); then empties the file and makes room for nslots records.
 *
 * Returns 0; also when store_path is not a file (":memory:", a URL):
 * nothing is recorded then.  On failure (the file cannot be opened, or
 * another jobd holds it) returns a JOBD_E* code with the reason in err,
 * and nothing is recorded: jobd runs on without it.  Main thread only,
 * once.
 */
int pgroups_reap(const char *store_path, int nslots, char *err,
                 size_t errlen);

/*
 * Records pgid, a group whose leader (pid pgid) was just spawned and not
 * yet reaped, in the calling thread's record (the first call on a thread
 * claims one of the nslots; a thread that ends gives it back).  Best
 * effort: does nothing when recording is off or no record is free.
 * Any thread.
 */
void pgroups_record(pid_t pgid);

/* Empties the calling thread's record: its group is gone.  Any thread. */
void pgroups_clear(void);

#endif
