/*
 * bus.c - the other nodes of a shared PostgreSQL store: heartbeats,
 * liveness, leadership, rescue, self-fencing and LISTEN/NOTIFY wake-ups.
 * See bus.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "clock.h"
#include "err.h"
#include "job.h"
#include "log.h"

struct bus {
	struct bus_config cfg;
	char node[64];           /* cfg.node points here */
	/* This run's id (jobs.node, jobd.nodes): a new one at a new life,
	 * written by the bus's thread under boot_mu, copied by others. */
	pthread_mutex_t boot_mu;
	char boot[BUS_BOOT_LEN];

	pthread_t thread;
	bool started;
	pthread_mutex_t mu;      /* stop and hooks */
	bool stop;
	struct store_hooks hooks;
	int wake[2];             /* a pipe: bus_free() wakes the thread */

	/* the thread's own */
	PGconn *c;
	int64_t ok_mono_ms;      /* last heartbeat written */
	int64_t fail_mono_ms;    /* last one that failed, -1 none */
	int64_t seen_finished_us;/* finished_at of the last remote end seen */
	int64_t counted_mono_ms; /* last look at the store's counts (hb_counts) */
	struct remote_run *running; /* other nodes' running jobs at the
	                            last look, sorted by id (hooks.started,
	                            hooks.progress) */
	size_t nrunning;

	_Atomic bool leader;
	_Atomic int live;        /* live nodes, as of the last heartbeat */
	_Atomic bool listening;  /* LISTEN is up on c */
	_Atomic bool fenced;     /* no heartbeat for a lease: claim nothing */
};

void
bus_one_line(char *dst, size_t len, const char *msg)
{
	size_t n;

	snprintf(dst, len, "%s", msg ? msg : "");
	n = strlen(dst);
	while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == ' '))
		dst[--n] = '\0';
	for (char *p = dst; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

static void
new_boot_id(char *out, size_t len)
{
	unsigned char rnd[8] = {0};
	FILE *f = fopen("/dev/urandom", "re");

	if (f == NULL || fread(rnd, 1, sizeof(rnd), f) != sizeof(rnd)) {
		int64_t t = clock_now_us() ^ ((int64_t)getpid() << 40);
		memcpy(rnd, &t, sizeof(rnd));
	}
	if (f != NULL)
		fclose(f);
	for (size_t i = 0; i < sizeof(rnd) && 2 * i + 2 < len; i++)
		snprintf(out + 2 * i, 3, "%02x", rnd[i]);
}

const char *
bus_boot(bus *b, char out[BUS_BOOT_LEN])
{
	pthread_mutex_lock(&b->boot_mu);
	memcpy(out, b->boot, BUS_BOOT_LEN);
	pthread_mutex_unlock(&b->boot_mu);
	return out;
}

static void hb_drop(struct bus *b);

/*
 * A statement on the heartbeat's connection, answered within a deadline:
 * half the lease, at most 5 s.  A link that takes the query and never
 * answers (a stalled network, a hung proxy: TCP keeps it alive) must not
 * stop the heartbeat loop, which fences the node when it cannot write.
 * On timeout or a lost connection the connection is dropped (the next
 * beat reconnects) and NULL is returned (PQresultStatus(NULL) is an
 * error; PQclear(NULL) is harmless).
 */
static PGresult *
hb_exec(struct bus *b, const char *sql, int n, const char *const *v)
{
	int64_t limit = b->cfg.lease_ms / 2 < 5000 ? b->cfg.lease_ms / 2 : 5000;
	int64_t until = clock_mono_ms() + (limit < 200 ? 200 : limit);
	PGresult *last = NULL, *r;

	/* n < 0: several statements, no parameters (the simple protocol) */
	if (b->c == NULL || !(n < 0 ? PQsendQuery(b->c, sql)
	    : PQsendQueryParams(b->c, sql, n, NULL, v, NULL, NULL, 0))) {
		hb_drop(b);
		return NULL;
	}
	for (;;) {
		while (!PQisBusy(b->c)) {
			r = PQgetResult(b->c);
			if (r == NULL)
				return last;
			PQclear(last);
			last = r;
		}
		struct pollfd p = {.fd = PQsocket(b->c), .events = POLLIN};
		int64_t left = until - clock_mono_ms();
		if (left <= 0 || (poll(&p, 1, (int)left) < 0 && errno != EINTR)) {
			log_warn("store", "pg: the heartbeat's statement had no "
			         "answer within %lld ms; reconnecting",
			         (long long)limit);
			break;
		}
		if (PQconsumeInput(b->c) != 1)
			break;
	}
	PQclear(last);
	hb_drop(b);
	return NULL;
}

/* One heartbeat: 1 written, 0 when the row was gone or marked dead
 * (declared dead by the others), -1 on error. */
static int
hb_beat(struct bus *b)
{
	char boot[33];
	const char *v[1] = {bus_boot(b, boot)};
	PGresult *r = hb_exec(b, "UPDATE jobd.nodes SET seen_at ="
	                           " now() WHERE boot = $1 AND NOT dead", 1, v);
	int rc = -1;

	if (PQresultStatus(r) == PGRES_COMMAND_OK)
		rc = atoi(PQcmdTuples(r)) > 0;
	PQclear(r);
	return rc;
}

static bool
hb_is_leader(struct bus *b)
{
	char lease[32], boot[33];
	const char *v[2] = {bus_boot(b, boot), lease};
	PGresult *r;
	bool yes = false;

	snprintf(lease, sizeof(lease), "%lld milliseconds",
	         (long long)b->cfg.lease_ms);
	r = hb_exec(b, "SELECT boot = $1, count(*) OVER ()"
	                 " FROM jobd.nodes WHERE seen_at >= now() - $2::interval"
	                 " AND NOT dead ORDER BY started_at, boot LIMIT 1", 2, v);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
		yes = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		atomic_store(&b->live, atoi(PQgetvalue(r, 0, 1)));
	}
	PQclear(r);
	return yes;
}

static void
hb_call_work(struct bus *b)
{
	pthread_mutex_lock(&b->mu);
	if (b->hooks.work != NULL)
		b->hooks.work(b->hooks.arg);
	pthread_mutex_unlock(&b->mu);
}

/* The leader's rescue of dead nodes' running jobs (one statement: the
 * nodes silent for a lease are marked dead and their running jobs go back
 * in the same transaction, which wakes the other nodes when it made work
 * due), and the forgetting of nodes dead for longer than the retention. */
static void
hb_rescue(struct bus *b)
{
	char lease[32], now[24], keep[32], boot[33];
	const char *v[3] = {lease, now, bus_boot(b, boot)};
	const char *f[2] = {lease, keep};
	PGresult *r;

	snprintf(lease, sizeof(lease), "%lld milliseconds",
	         (long long)b->cfg.lease_ms);
	snprintf(keep, sizeof(keep), "%lld milliseconds",
	         (long long)b->cfg.retention_ms);
	snprintf(now, sizeof(now), "%" PRId64, clock_now_us());
	r = hb_exec(b,
	    "WITH go AS (SELECT pg_try_advisory_xact_lock("
	    "  hashtext('jobd.rescue')) AND now() - pg_postmaster_start_time()"
	    "  > $1::interval AS ok),"
	    " dead AS (UPDATE jobd.nodes SET dead = true WHERE (SELECT ok FROM go)"
	    "  AND seen_at < now() - $1::interval RETURNING boot),"
	    " back AS (UPDATE jobd.jobs j SET"
	    "  status = CASE WHEN cancel_requested = 1 THEN 'cancelled'"
	    "   WHEN attempt_started = 1 AND attempt >= max_attempts"
	    "   THEN 'failed' ELSE 'queued' END,"
	    "  finished_at = CASE WHEN cancel_requested = 1 OR"
	    "   (attempt_started = 1 AND attempt >= max_attempts)"
	    "   THEN $2::int8 ELSE NULL END,"
	    "  error = CASE WHEN cancel_requested = 0 AND attempt_started = 1"
	    "   AND attempt >= max_attempts THEN 'the node running it stopped"
	    " answering during the last attempt (no attempts left)'"
	    "   ELSE error END,"
	    "  run_at = CASE WHEN cancel_requested = 1 THEN run_at"
	    "   ELSE $2::int8 END,"
	    "  attempt = attempt - 1 + attempt_started, attempt_started = 0,"
	    "  claim = NULL, due = 1, cancel_requested = 0"
	    " FROM dead WHERE j.node = dead.boot AND j.status = 'running'"
	    " RETURNING j.id, j.status)"
	    " SELECT n, CASE WHEN q THEN pg_notify('jobd_work', $3) END"
	    " FROM (SELECT count(*) AS n, bool_or(status = 'queued') AS q"
	    "  FROM back) AS x",
	    3, v);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		char msg[300];
		bus_one_line(msg, sizeof(msg), PQresultErrorMessage(r));
		log_warn("store", "pg: rescue: %s", msg);
	} else if (PQntuples(r) > 0 && atoi(PQgetvalue(r, 0, 0)) > 0) {
		log_notice("store", "rescued %s job(s) of node(s) silent for "
		           "the whole lease (%lld ms)", PQgetvalue(r, 0, 0),
		           (long long)b->cfg.lease_ms);
		hb_call_work(b); /* our own NOTIFY does not wake us */
	}
	PQclear(r);
	/* Dead nodes are shown (GET /nodes) until the retention has passed;
	 * never one whose jobs were not all rescued. */
	r = hb_exec(b, "DELETE FROM jobd.nodes n WHERE dead"
	                 " AND (SELECT pg_try_advisory_xact_lock("
	                 "  hashtext('jobd.forget')))"
	                 " AND seen_at < now() - $1::interval"
	                 " AND seen_at < now() - $2::interval"
	                 " AND NOT EXISTS (SELECT 1 FROM jobd.jobs j"
	                 "  WHERE j.node = n.boot AND j.status = 'running')",
	                 2, f);
	PQclear(r);
}

/* The leader's look at the delayed jobs: the earliest run_at not yet due,
 * given to the writer's timer (jobs_waiting: one index probe). */
static void
hb_due_at(struct bus *b)
{
	PGresult *r = hb_exec(b, "SELECT min(run_at) FROM jobd.jobs"
	                      " WHERE status = 'queued' AND due = 0", 0, NULL);

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 &&
	    !PQgetisnull(r, 0, 0)) {
		int64_t at = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		pthread_mutex_lock(&b->mu);
		if (b->hooks.due_at != NULL)
			b->hooks.due_at(b->hooks.arg, at);
		pthread_mutex_unlock(&b->mu);
	}
	PQclear(r);
}

/*
 * The store's counts of queued, waiting and running jobs, for this node's
 * writer (every BUS_COUNT_MS): each node's writer counts what it does, and
 * other nodes claim and end the jobs it accepted, so its own counts drift
 * (queued up on the node that takes submissions, down on the ones that run
 * them); admission (store.max_queued), /metrics and the shutdown log use
 * these.  Three index range counts (jobs_status).
 */
#define BUS_COUNT_MS 5000
static void
hb_counts(struct bus *b)
{
	int64_t now = clock_mono_ms(), n[3] = {0, 0, 0};
	PGresult *r;

	if (b->counted_mono_ms != 0 && now - b->counted_mono_ms < BUS_COUNT_MS)
		return;
	r = hb_exec(b, "SELECT status, count(*) FROM jobd.jobs"
	            " WHERE status IN ('queued', 'waiting', 'running')"
	            " GROUP BY status", 0, NULL);
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		b->counted_mono_ms = now;
		for (int i = 0; i < PQntuples(r); i++) {
			const char *st = PQgetvalue(r, i, 0);
			int64_t c = strtoll(PQgetvalue(r, i, 1), NULL, 10);
			n[strcmp(st, "queued") == 0 ? 0
			  : strcmp(st, "waiting") == 0 ? 1 : 2] = c;
		}
		pthread_mutex_lock(&b->mu);
		if (b->hooks.counts != NULL)
			b->hooks.counts(b->hooks.arg, n[0], n[1], n[2]);
		pthread_mutex_unlock(&b->mu);
	}
	PQclear(r);
}

/* A job another node runs, as of a look: its id, the row of the look
 * (while sorting), and a hash of its progress text (0: none). */
struct remote_run {
	char id[37];
	int row;
	uint64_t progress;
};

static int
cmp_run(const void *a, const void *b)
{
	return strcmp(((const struct remote_run *)a)->id,
	              ((const struct remote_run *)b)->id);
}

/* FNV-1a of the progress text; 0 only for none. */
static uint64_t
progress_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h != 0 ? h : 1;
}

/*
 * The jobs other nodes run now (the partial index on running jobs), with
 * their progress as stored (written at most once a second per job by the
 * node running it): those not running at the last look are reported as
 * started (at the first look, all of them: this node's streams have been
 * told nothing yet), and each whose stored progress differs from the last
 * look's as progress.  A job that started and ended between two looks is
 * reported ended only.  Called with b->mu held.
 */
static void
hb_started(struct bus *b, PGresult *r)
{
	size_t n = (size_t)PQntuples(r);
	struct remote_run *now = calloc(n ? n : 1, sizeof(*now));

	if (now == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		snprintf(now[i].id, sizeof(now[i].id), "%s",
		         PQgetvalue(r, (int)i, 0));
		now[i].row = (int)i;
		now[i].progress = PQgetisnull(r, (int)i, 3) ? 0
		    : progress_hash(PQgetvalue(r, (int)i, 3));
	}
	qsort(now, n, sizeof(*now), cmp_run);
	for (size_t i = 0; i < n; i++) {
		const struct remote_run *was = b->nrunning > 0
		    ? bsearch(&now[i], b->running, b->nrunning, sizeof(*now),
		              cmp_run) : NULL;
		const char *type = PQgetvalue(r, now[i].row, 1);
		if (was == NULL && b->hooks.started != NULL)
			b->hooks.started(b->hooks.arg, now[i].id, type,
			                 atoi(PQgetvalue(r, now[i].row, 2)));
		if (now[i].progress != 0 && b->hooks.progress != NULL &&
		    (was == NULL || was->progress != now[i].progress))
			b->hooks.progress(b->hooks.arg, now[i].id, type,
			                  PQgetvalue(r, now[i].row, 3));
	}
	free(b->running);
	b->running = now;
	b->nrunning = n;
}

/*
 * What the other nodes did for us, once a beat (the fallback of the
 * notifications): cancels requested for the jobs running here (DELETE on
 * another node), and the jobs other nodes finished since the last look,
 * for the waiters here (their finished_at comes from their clocks: looked
 * at with a second of slack, so a job may be reported twice, which
 * waiters do not mind).
 */
static void
hb_remote(struct bus *b)
{
	char since[24], boot[33];
	const char *v[2] = {bus_boot(b, boot), since};
	PGresult *c, *f, *s = NULL;
	bool want, started;

	pthread_mutex_lock(&b->mu);
	want = b->hooks.cancel != NULL || b->hooks.finished != NULL;
	started = b->hooks.started != NULL;
	pthread_mutex_unlock(&b->mu);
	if (!want)
		return;
	if (started)
		s = hb_exec(b, "SELECT id, type, attempt, progress"
		                 " FROM jobd.jobs WHERE status = 'running'"
		                 " AND node IS DISTINCT FROM $1", 1, v);
	c = hb_exec(b, "SELECT id FROM jobd.jobs WHERE node = $1"
	                 " AND status = 'running' AND cancel_requested = 1", 1,
	                 v);
	snprintf(since, sizeof(since), "%" PRId64,
	         b->seen_finished_us - 1000000);
	f = hb_exec(b, "SELECT id, status, finished_at FROM jobd.jobs"
	                 " WHERE finished_at IS NOT NULL AND finished_at > $2"
	                 " AND node IS DISTINCT FROM $1"
	                 " ORDER BY finished_at LIMIT 20000", 2, v);
	/* Delivered under hb_mu: once store_set_hooks() has returned, the
	 * hooks it replaced are never called again (main clears them before
	 * it frees what they use). */
	pthread_mutex_lock(&b->mu);
	if (s != NULL && PQresultStatus(s) == PGRES_TUPLES_OK &&
	    b->hooks.started != NULL)
		hb_started(b, s);
	if (PQresultStatus(c) == PGRES_TUPLES_OK && b->hooks.cancel != NULL)
		for (int i = 0; i < PQntuples(c); i++)
			b->hooks.cancel(b->hooks.arg, PQgetvalue(c, i, 0));
	if (PQresultStatus(f) == PGRES_TUPLES_OK) {
		for (int i = 0; i < PQntuples(f); i++) {
			int st = job_status_parse(PQgetvalue(f, i, 1));
			int64_t at = strtoll(PQgetvalue(f, i, 2), NULL, 10);
			if (st >= 0 && b->hooks.finished != NULL)
				b->hooks.finished(b->hooks.arg,
				                  PQgetvalue(f, i, 0), st);
			if (at > b->seen_finished_us)
				b->seen_finished_us = at;
		}
	}
	pthread_mutex_unlock(&b->mu);
	PQclear(s);
	PQclear(c);
	PQclear(f);
}

static void
hb_call_fence(struct bus *b)
{
	pthread_mutex_lock(&b->mu);
	if (b->hooks.fence != NULL)
		b->hooks.fence(b->hooks.arg);
	pthread_mutex_unlock(&b->mu);
}

/* Listens on the work channel and this run's own one ("jobd_<boot>":
 * cancels of jobs running here); then looks for work once, for the
 * notifications it may have missed while it did not listen. */
static void
hb_listen(struct bus *b)
{
	char sql[96], boot[33];
	PGresult *r;

	snprintf(sql, sizeof(sql), "UNLISTEN *; LISTEN jobd_work;"
	         " LISTEN jobd_%s", bus_boot(b, boot));
	r = hb_exec(b, sql, -1, NULL);
	atomic_store(&b->listening, PQresultStatus(r) == PGRES_COMMAND_OK);
	PQclear(r);
	if (atomic_load(&b->listening))
		hb_call_work(b);
}

/* The notifications read so far: work from another node (not our own
 * commits'), or a cancel of a job running here. */
static void
hb_notices(struct bus *b)
{
	PGnotify *n;
	char boot[33];
	bool work = false;

	bus_boot(b, boot);
	while ((n = PQnotifies(b->c)) != NULL) {
		if (strcmp(n->relname, "jobd_work") == 0) {
			if (strcmp(n->extra, boot) != 0)
				work = true;
		} else if (strncmp(n->extra, "c ", 2) == 0) {
			pthread_mutex_lock(&b->mu);
			if (b->hooks.cancel != NULL)
				b->hooks.cancel(b->hooks.arg, n->extra + 2);
			pthread_mutex_unlock(&b->mu);
		}
		PQfreemem(n);
	}
	if (work)
		hb_call_work(b);
}

static void
hb_drop(struct bus *b)
{
	if (b->c != NULL)
		PQfinish(b->c);
	b->c = NULL;
	atomic_store(&b->listening, false);
}

/*
 * Sleeps until the deadline (monotonic ms), a notification, or pg_close().
 * Reads what arrived; a connection that fails to read is dropped (the next
 * beat reconnects).
 */
static void
hb_sleep(struct bus *b, int64_t until)
{
	for (;;) {
		struct pollfd p[2] = {
			{.fd = b->wake[0], .events = POLLIN},
			{.fd = b->c != NULL ? PQsocket(b->c) : -1,
			 .events = POLLIN},
		};
		int64_t left = until - clock_mono_ms();
		if (left <= 0)
			return;
		if (poll(p, 2, (int)left) < 0 && errno != EINTR)
			return;
		if (p[0].revents != 0)
			return; /* pg_close() */
		if (p[1].fd >= 0 && p[1].revents != 0) {
			if (PQconsumeInput(b->c) != 1) {
				hb_drop(b);
				continue;
			}
			hb_notices(b);
		}
	}
}

/*
 * A new life after a fence: a new boot id, registered afresh (started
 * now, so the leadership passes to an older node), listened to.  Until it
 * is done the node claims nothing.
 */
static int
hb_reborn(struct bus *b, char *err, size_t errlen)
{
	char boot[33], old[33];
	const char *v[1] = {bus_boot(b, old)};
	PGresult *r;
	int rc;

	/* The old life is dead at once (not the leader any more); the
	 * leader rescues what it still has running a lease after its last
	 * heartbeat, if the attempts' ends did not give it back first. */
	r = hb_exec(b, "UPDATE jobd.nodes SET dead = true"
	                 " WHERE boot = $1", 1, v);
	rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0
	    : jobd_seterr(err, errlen, JOBD_EUNAVAIL, "pg: mark the old boot "
	                  "id dead: %s", b->c ? PQerrorMessage(b->c) : "gone");
	PQclear(r);
	if (rc != 0)
		return rc;
	new_boot_id(boot, sizeof(boot));
	pthread_mutex_lock(&b->boot_mu);
	memcpy(b->boot, boot, sizeof(boot));
	pthread_mutex_unlock(&b->boot_mu);
	rc = b->cfg.register_node(b->cfg.arg, b->c, err, errlen);
	if (rc != 0)
		return rc;
	log_notice("store", "node %s registered again as boot id %s",
	           b->cfg.node, boot);
	hb_listen(b);
	atomic_store(&b->fenced, false);
	hb_call_work(b);
	return 0;
}

static void *
hb_main(void *arg)
{
	struct bus *b = arg;
	int64_t every = b->cfg.lease_ms / 4 < 1000 ? b->cfg.lease_ms / 4 : 1000;
	char err[400];
	bool said_dead = false;

	pthread_setname_np(pthread_self(), "jobd-heartbeat");
	b->ok_mono_ms = clock_mono_ms();
	b->seen_finished_us = clock_now_us();
	pthread_mutex_lock(&b->mu);
	while (!b->stop) {
		int64_t now = clock_mono_ms();
		pthread_mutex_unlock(&b->mu);
		if (b->c != NULL && (PQstatus(b->c) == CONNECTION_BAD ||
		    PQconsumeInput(b->c) != 1))
			hb_drop(b);
		if (b->c == NULL) {
			b->c = b->cfg.connect(b->cfg.arg, err, sizeof(err));
			if (b->c != NULL && !atomic_load(&b->fenced))
				hb_listen(b);
		}
		int beat = b->c != NULL ? hb_beat(b) : -1;
		if (beat == 0 && b->cfg.writer_up(b->cfg.arg)) {
			/* Declared dead while alive (silent for a lease): the
			 * leader requeued our running jobs; their late ends are
			 * stale and change nothing. */
			if (!said_dead)
				log_err("store", "this node (%s) was declared "
				        "dead by the others (silent for the whole "
				        "lease): its running jobs run elsewhere; "
				        "stopping its attempts and registering "
				        "again", b->cfg.node);
			said_dead = true;
			atomic_store(&b->fenced, true);
			hb_call_fence(b);
		}
		if (beat >= 0 && atomic_load(&b->fenced) &&
		    b->cfg.writer_up(b->cfg.arg) &&
		    hb_reborn(b, err, sizeof(err)) == 0)
			beat = 1;
		if (beat > 0) {
			b->ok_mono_ms = now;
			said_dead = false;
			bool lead = hb_is_leader(b);
			bool was = atomic_exchange(&b->leader, lead);
			if (lead && !was)
				hb_call_work(b); /* its writer purges, times */
			/* Not within a lease of our own failed heartbeats. */
			if (lead && (b->fail_mono_ms < 0 ||
			    now - b->fail_mono_ms > b->cfg.lease_ms))
				hb_rescue(b);
			if (lead)
				hb_due_at(b);
			hb_remote(b);
			hb_counts(b);
		} else if (beat < 0) {
			b->fail_mono_ms = now;
			atomic_store(&b->leader, false);
			if (b->c != NULL && PQstatus(b->c) == CONNECTION_BAD)
				hb_drop(b);
			if (!atomic_load(&b->fenced) &&
			    clock_mono_ms() - b->ok_mono_ms >= b->cfg.lease_ms) {
				/* Silent for a whole lease: the others may
				 * rescue our jobs at any moment; stop running
				 * them, claim nothing until we can write. */
				log_err("store", "this node (%s) could not write "
				        "its heartbeat for the whole lease (%lld "
				        "ms): stopping its attempts (they will "
				        "run elsewhere) and claiming nothing "
				        "until it can", b->cfg.node,
				        (long long)b->cfg.lease_ms);
				atomic_store(&b->fenced, true);
				hb_call_fence(b);
			}
		}
		if (b->c != NULL)
			hb_notices(b);
		hb_sleep(b, now + every);
		pthread_mutex_lock(&b->mu);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}


bus *
bus_new(const struct bus_config *cfg, char *err, size_t errlen)
{
	bus *b = calloc(1, sizeof(*b));

	if (b == NULL) {
		jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
		return NULL;
	}
	b->cfg = *cfg;
	snprintf(b->node, sizeof(b->node), "%s", cfg->node);
	b->cfg.node = b->node;
	if (pipe2(b->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		jobd_seterr(err, errlen, JOBD_ESYS, "pipe: %s", strerror(errno));
		free(b);
		return NULL;
	}
	pthread_mutex_init(&b->boot_mu, NULL);
	pthread_mutex_init(&b->mu, NULL);
	new_boot_id(b->boot, sizeof(b->boot));
	b->fail_mono_ms = -1;
	return b;
}

int
bus_start(bus *b, char *err, size_t errlen)
{
	if (pthread_create(&b->thread, NULL, hb_main, b) != 0)
		return jobd_seterr(err, errlen, JOBD_ESYS, "cannot start the "
		                   "heartbeat thread");
	b->started = true;
	return 0;
}

void
bus_free(bus *b)
{
	if (b == NULL)
		return;
	if (b->started) {
		pthread_mutex_lock(&b->mu);
		b->stop = true;
		pthread_mutex_unlock(&b->mu);
		if (write(b->wake[1], "x", 1) < 0 && errno != EAGAIN)
			log_warn("store", "pg: cannot wake the heartbeat "
			         "thread: %s", strerror(errno));
		pthread_join(b->thread, NULL);
	}
	if (b->c != NULL)
		PQfinish(b->c);
	close(b->wake[0]);
	close(b->wake[1]);
	pthread_mutex_destroy(&b->boot_mu);
	pthread_mutex_destroy(&b->mu);
	free(b->running);
	free(b);
}

void
bus_set_hooks(bus *b, const struct store_hooks *h)
{
	pthread_mutex_lock(&b->mu);
	b->hooks = *h;
	pthread_mutex_unlock(&b->mu);
}

bool
bus_is_leader(bus *b)
{
	return atomic_load(&b->leader);
}

int
bus_live_nodes(bus *b)
{
	return atomic_load(&b->live);
}

bool
bus_fenced(bus *b)
{
	return atomic_load(&b->fenced);
}

bool
bus_listening(bus *b)
{
	return atomic_load(&b->listening);
}
