/*
 * schedule.h - the [schedule.NAME] sections turned into jobs (DESIGN.md
 * §2 "Schedules and types", §5).
 *
 * Ticks.  A cron schedule ticks at the start of each matching minute (in
 * UTC or local time, cron.h); an `every` schedule ticks at the multiples
 * of its period since the Unix epoch, so `every = 15m` ticks at :00 :15
 * :30 :45 UTC whenever jobd started.  A tick makes one job whose
 * Idempotency-Key is "schedule:<name>:<tick in RFC 3339 UTC>", submitted
 * through the writer like POST /jobs: a tick made twice (a restart in the
 * middle, two leaders for a moment) is one job.
 *
 * The store keeps, per schedule, a cursor (every tick up to it is done),
 * the last job and the pause (store.h struct store_schedule), so that any
 * node shows them and the next leader goes on where the last one stopped.
 * The job of a tick and the cursor's move are one transaction.
 *
 * Missed ticks.  A tick is missed when it fell due before this node began
 * running schedules (it started, or became the leader: "since"), or more
 * than SCHEDULE_LATE_MS ago (the machine slept, the clock jumped, the
 * store was down).  All the missed ticks in a row are one decision:
 * catch_up = one makes one job, for the latest of them; skip makes none.
 * Every other tick makes its own job.  A paused schedule makes no job;
 * resuming moves its cursor to now (the ticks of the pause are not caught
 * up).  A schedule seen for the first time starts from now.
 *
 * Only the leader runs schedules (store_is_leader(): always on SQLite).
 * The thread sleeps until the next tick, but at most SCHEDULE_RECHECK_MS:
 * ticks are computed from the wall clock while the sleep is measured on
 * the monotonic one, so a wall-clock jump is noticed within that time.
 * It re-reads the store's rows at each wake-up (a pause made on another
 * node).  On an idle daemon with no schedule it sleeps until told.
 */
#ifndef JOBD_SCHEDULE_H
#define JOBD_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "job.h"
#include "store.h"
#include "writer.h"

#define SCHEDULE_LATE_MS 60000
#define SCHEDULE_RECHECK_MS 60000
/* "schedule:" + name + ":" + "manual:" + RFC 3339 with µs + NUL */
#define SCHEDULE_KEY_MAX 128

/* ---- tick arithmetic (pure; any thread) ---- */

/*
 * The first tick of sc strictly after after_ms (Unix ms).  0 with it in
 * *next_ms, or JOBD_ENOTFOUND when the schedule never ticks again.
 */
int schedule_next_tick(const struct schedule_conf *sc, int64_t after_ms,
                       int64_t *next_ms);

/*
 * The latest tick T of sc with after_ms < T < before_ms: 0 with it in
 * *tick_ms, or JOBD_ENOTFOUND when there is none.
 */
int schedule_last_tick_before(const struct schedule_conf *sc,
                              int64_t after_ms, int64_t before_ms,
                              int64_t *tick_ms);

/* What to do now for one schedule (the rules at the top). */
struct schedule_step {
	bool run;          /* make the job of tick_ms */
	int64_t tick_ms;   /* the tick to make (run), or -1 */
	int64_t cursor_ms; /* the cursor to store; -1: leave it */
	bool missed;       /* tick_ms / cursor_ms close a run of missed ticks */
	int64_t wake_ms;   /* look again at this wall time; -1: never */
};

/*
 * The next step of schedule sc whose stored cursor is cursor_ms (-1: no
 * row yet), on a node that runs schedules since since_ms, at now_ms.
 * When out->run or out->cursor_ms >= 0, the caller stores that and steps
 * again; else it sleeps until out->wake_ms.
 */
void schedule_step(const struct schedule_conf *sc, int64_t cursor_ms,
                   int64_t since_ms, int64_t now_ms,
                   struct schedule_step *out);

/* A tick as its key shows it: "2026-12-01T02:30:00Z" (whole seconds,
 * UTC; "" outside years 1-9999). */
void schedule_format_tick(int64_t ms, char *buf, size_t len);

/*
 * Fills job (job_init'ed) as POST /jobs would for the schedule's type,
 * payload and priority, with Idempotency-Key key (borrowed, copied), a
 * fingerprint and a fresh id.  0, or JOBD_E* with the reason in err (the
 * type lost its handler in a reload: JOBD_ERANGE).
 */
int schedule_make_job(const struct schedule_conf *sc,
                      const struct config *cfg, const char *key,
                      int64_t now_us, struct job *job, char *err,
                      size_t errlen);

/* ---- the leader's thread ---- */

typedef struct schedules schedules;

/* st and w are borrowed and must outlive it.  NULL when out of memory. */
schedules *schedules_new(store *st, writer *w);
void schedules_free(schedules *s);

/* Starts the thread: 0 or JOBD_ESYS. */
int schedules_start(schedules *s);

/* Makes the thread look again now (a reload, a pause or resume, this
 * node may have become the leader).  Any thread; cheap. */
void schedules_poke(schedules *s);

/* Pokes the thread only if it last found this node not the leader (the
 * store's hint that it may have become one).  Any thread; cheap. */
void schedules_leader_hint(schedules *s);

/* Stops and joins the thread (before the writer stops: a submission in
 * flight is waited for). */
void schedules_stop(schedules *s);

/*
 * GET /schedules: the configured schedules with their stored state, as a
 * cJSON object {"schedules": [...]} (void * keeps cJSON out of this
 * header), or with name set the one schedule's object.  Returns a new
 * cJSON the caller deletes, or NULL with *code set (JOBD_ENOTFOUND for an
 * unknown name, a store error, JOBD_ENOMEM) and err.
 */
void *schedules_json(const struct config *cfg, store *st, const char *name,
                     int64_t now_ms, int *code, char *err, size_t errlen);

#endif
