/*
 * intake.h - the rules a submission meets inside the writer's
 * transaction, before it is inserted: an Idempotency-Key seen before
 * (the same body replays the first job; another body is a conflict), and
 * the queue's bound (store.max_queued).
 *
 * Called by the writer thread only, inside its transaction (the store's
 * writer calls).
 */
#ifndef JOBD_INTAKE_H
#define JOBD_INTAKE_H

#include <stdint.h>

#include "job.h"
#include "store.h"

enum intake_verdict {
	INTAKE_NEW,       /* insert it */
	INTAKE_REPLAY,    /* its key names an earlier job with the same body */
	INTAKE_CONFLICT,  /* its key names an earlier job with another body */
	INTAKE_FULL,      /* the queue holds max_queued jobs */
};

/* The earlier job of a replay or a conflict. */
struct intake_prev {
	char id[UUID_STR_LEN];
	int status;
};

/*
 * Checks job (borrowed) against the store and the queue's size (queued,
 * counting this transaction's inserts).  Returns 0 with the verdict in
 * *verdict (and, for a replay or a conflict, the earlier job in *prev,
 * and the answer's detail in err for a conflict or a full queue), or a
 * store error that aborts the transaction.
 */
int intake_check(store *st, const struct job *job, int64_t queued,
                 int64_t max_queued, int *verdict, struct intake_prev *prev,
                 char *err, size_t errlen);

#endif
