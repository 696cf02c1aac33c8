/*
 * intake.c - the rules a submission meets before it is inserted (see
 * intake.h).
 *
 * LOCKING: none; the writer thread calls it inside its transaction.
 */
#include <string.h>

#include "err.h"
#include "intake.h"

int
intake_check(store *st, const struct job *job, int64_t queued,
             int64_t max_queued, int *verdict, struct intake_prev *prev,
             char *err, size_t errlen)
{
	*verdict = INTAKE_NEW;
	if (job->idem_key != NULL) {
		struct job earlier;
		int rc;

		job_init(&earlier);
		rc = store_find_idem(st, job->idem_key, &earlier, err, errlen);
		if (rc != 0 && rc != JOBD_ENOTFOUND)
			return rc;
		if (rc == 0) {
			bool same = earlier.idem_fp != NULL &&
			            job->idem_fp != NULL &&
			            strcmp(earlier.idem_fp, job->idem_fp) == 0;
			memcpy(prev->id, earlier.id, sizeof(prev->id));
			prev->status = earlier.status;
			job_clear(&earlier);
			*verdict = same ? INTAKE_REPLAY : INTAKE_CONFLICT;
			if (!same)
				jobd_seterr(err, errlen, JOBD_ECONFLICT,
				            "Idempotency-Key was used for a "
				            "different submission (job %s)",
				            prev->id);
			return 0;
		}
	}
	if (queued >= max_queued) {
		*verdict = INTAKE_FULL;
		jobd_seterr(err, errlen, JOBD_EFULL, "the queue holds "
		            "store.max_queued = %lld jobs", (long long)max_queued);
	}
	return 0;
}
