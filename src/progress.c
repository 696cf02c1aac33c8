/*
 * progress.c - the progress of the attempts running on this node: reports
 * checked (progress_parse, progress_lines), kept per attempt for GET,
 * told to /events, and written to the store at most once a second per job
 * (see progress.h for an entry's life).
 *
 * The table is a short list: it holds the attempts running here that have
 * reported (at most one per worker thread) and those whose completion is
 * on its way to the store.  Its thread sleeps until the earliest report
 * that waits for its job's second to pass, and sends it to the writer.
 *
 * LOCKING: p->mu guards the list and every entry, stopping, and the
 * condition p->cond the thread sleeps on.  Lock order: p->mu before the
 * writer's queue lock (writer_submit is called with p->mu held, so that
 * two writes of one job reach the writer in the order they were made)
 * and before the events' locks (events_progress, so that /events sees a
 * job's reports in the table's order).  The writer calls back in here
 * (progress_forget, from a completion's done()) only with none of its
 * locks held.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "progress.h"
#include "submit.h"
#include "utf8.h"

#define PROGRESS_MAX_DEPTH 32

struct entry {
	char id[UUID_STR_LEN];
	char type[JOB_TYPE_MAX + 1];
	char claim[CLAIM_TOKEN_MAX];
	char *text;             /* the last report (compact JSON) */
	int64_t written_mono_ms; /* when one last went to the writer (at
	                           first: when the first report came) */
	bool dirty;             /* text has not gone to the writer */
	bool ended;             /* the completion carries text now */
	struct entry *next;
};

struct progress {
	writer *w;
	events *ev;
	pthread_mutex_t mu;
	pthread_cond_t cond;     /* a report waits, or stopping */
	struct entry *entries;   /* mu */
	bool stopping;           /* mu */
	bool started;
	pthread_t thread;
};

/* ---- reports ---- */

int
progress_parse(const char *text, size_t len, char **out)
{
	size_t i = 0;

	*out = NULL;
	if (len > 0 && text[len - 1] == '\r')
		len--;
	if (len == 0 || len > PROGRESS_MAX || memchr(text, '\0', len) != NULL ||
	    !utf8_valid(text, len))
		return JOBD_EINVAL;
	while (i < len && (text[i] == ' ' || text[i] == '\t' ||
	                   text[i] == '\r' || text[i] == '\n'))
		i++;
	if (i == len || text[i] != '{' ||
	    submit_json_strict(text, len, PROGRESS_MAX_DEPTH, NULL, 0) != 0)
		return JOBD_EINVAL;
	*out = submit_json_compact(text, len);
	return *out != NULL ? 0 : JOBD_ENOMEM;
}

void
progress_lines_feed(struct progress_lines *l, const char *p, size_t n,
                    progress_line_fn fn, void *arg)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl != NULL ? (size_t)(nl - p) : n;

		if (!l->skipping) {
			if (l->len + take > sizeof(l->buf)) {
				/* Too long: dropped up to its newline. */
				l->skipping = true;
				l->len = 0;
			} else {
				memcpy(l->buf + l->len, p, take);
				l->len += take;
			}
		}
		if (nl == NULL)
			return;
		if (!l->skipping)
			fn(arg, l->buf, l->len);
		l->skipping = false;
		l->len = 0;
		p = nl + 1;
		n -= take + 1;
	}
}

void
progress_lines_end(struct progress_lines *l, progress_line_fn fn, void *arg)
{
	if (!l->skipping && l->len > 0)
		fn(arg, l->buf, l->len);
	l->skipping = false;
	l->len = 0;
}

/* ---- the table ---- */

progress *
progress_new(writer *w, events *ev)
{
	progress *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->w = w;
	p->ev = ev;
	pthread_mutex_init(&p->mu, NULL);
	if (clock_cond_init(&p->cond) != 0) {
		pthread_mutex_destroy(&p->mu);
		free(p);
		return NULL;
	}
	return p;
}

static void
entry_free(struct entry *e)
{
	if (e != NULL) {
		free(e->text);
		free(e);
	}
}

void
progress_free(progress *p)
{
	if (p == NULL)
		return;
	while (p->entries != NULL) {
		struct entry *e = p->entries;
		p->entries = e->next;
		entry_free(e);
	}
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* The entry of job id's attempt under claim, or NULL.  (A job may have
 * two for a moment: an attempt that ended, its completion on its way,
 * and the next.)  p->mu held. */
static struct entry *
find(progress *p, const char *id, const char *claim)
{
	for (struct entry *e = p->entries; e != NULL; e = e->next)
		if (strcmp(e->id, id) == 0 && strcmp(e->claim, claim) == 0)
			return e;
	return NULL;
}

/*
 * Hands e's report to the writer (WOP_PROGRESS, fenced by its claim).
 * p->mu held.  Out of memory, or a writer that has stopped: the report
 * stays for the completion (and, out of memory, is tried again later).
 */
static void
write_now(progress *p, struct entry *e, int64_t now)
{
	struct writer_op *op = malloc(sizeof(*op));

	e->written_mono_ms = now;
	if (p->w == NULL) { /* (a unit test's table) */
		free(op);
		e->dirty = false;
		return;
	}
	if (op == NULL)
		return;
	writer_op_init(op, WOP_PROGRESS);
	memcpy(op->id, e->id, sizeof(op->id));
	memcpy(op->type, e->type, sizeof(op->type));
	memcpy(op->claim, e->claim, sizeof(op->claim));
	op->progress = strdup(e->text);
	if (op->progress == NULL) {
		free(op);
		return;
	}
	e->dirty = false;
	if (writer_submit(p->w, op) != 0) {
		writer_op_clear(op);
		free(op);
	}
}

int
progress_report(progress *p, const char *id, const char *type,
                const char *claim, char *text)
{
	struct entry *e;
	int64_t now = clock_mono_ms();

	if (p == NULL) {
		free(text);
		return 0;
	}
	pthread_mutex_lock(&p->mu);
	e = find(p, id, claim);
	if (e == NULL) {
		e = calloc(1, sizeof(*e));
		if (e == NULL) {
			pthread_mutex_unlock(&p->mu);
			free(text);
			return JOBD_ENOMEM;
		}
		snprintf(e->id, sizeof(e->id), "%s", id);
		snprintf(e->type, sizeof(e->type), "%s", type);
		snprintf(e->claim, sizeof(e->claim), "%s", claim);
		/* The first report waits its second too: an attempt that
		 * ends before costs no write but its completion's. */
		e->written_mono_ms = now;
		e->next = p->entries;
		p->entries = e;
	}
	if (e->ended || (e->text != NULL && strcmp(e->text, text) == 0)) {
		/* After the end (a handler's stray thread), or no change. */
		pthread_mutex_unlock(&p->mu);
		free(text);
		return 0;
	}
	free(e->text);
	e->text = text;
	if (p->ev != NULL)
		events_progress(p->ev, e->id, e->type, e->text);
	if (now - e->written_mono_ms >= PROGRESS_STORE_INTERVAL_MS) {
		write_now(p, e, now);
	} else if (!e->dirty) {
		e->dirty = true;
		pthread_cond_signal(&p->cond); /* a new deadline */
	}
	pthread_mutex_unlock(&p->mu);
	return 0;
}

char *
progress_end(progress *p, const char *id, const char *claim)
{
	struct entry *e;
	char *last = NULL;

	if (p == NULL)
		return NULL;
	pthread_mutex_lock(&p->mu);
	e = find(p, id, claim);
	if (e != NULL) {
		e->ended = true;
		e->dirty = false;
		if (e->text != NULL)
			last = strdup(e->text);
	}
	pthread_mutex_unlock(&p->mu);
	return last;
}

void
progress_forget(progress *p, const char *id, const char *claim)
{
	struct entry *gone = NULL;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	for (struct entry **e = &p->entries; *e != NULL; e = &(*e)->next)
		if (strcmp((*e)->id, id) == 0 &&
		    strcmp((*e)->claim, claim) == 0) {
			gone = *e;
			*e = gone->next;
			break;
		}
	pthread_mutex_unlock(&p->mu);
	entry_free(gone);
}

void
progress_apply(progress *p, struct job *jobs, size_t n)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	if (p->entries != NULL) {
		for (size_t i = 0; i < n; i++) {
			struct job *j = &jobs[i];
			struct entry *e;
			char *text;
			if (j->status != JOB_RUNNING || j->claim[0] == '\0' ||
			    (e = find(p, j->id, j->claim)) == NULL ||
			    e->text == NULL)
				continue;
			/* Out of memory: the store's (older) report stays. */
			if ((text = strdup(e->text)) != NULL) {
				free(j->progress);
				j->progress = text;
			}
		}
	}
	pthread_mutex_unlock(&p->mu);
}

/* ---- the thread: reports that waited for their job's second ---- */

static void *
progress_main(void *arg)
{
	progress *p = arg;
	sigset_t set;

	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_setname_np(pthread_self(), "jobd-progress");

	pthread_mutex_lock(&p->mu);
	while (!p->stopping) {
		int64_t now = clock_mono_ms(), next = -1;
		for (struct entry *e = p->entries; e != NULL; e = e->next) {
			if (!e->dirty || e->ended)
				continue;
			int64_t due = e->written_mono_ms +
			              PROGRESS_STORE_INTERVAL_MS;
			if (due <= now) {
				write_now(p, e, now);
				if (!e->dirty)
					continue;
				/* Out of memory: again a second later. */
				due = now + PROGRESS_STORE_INTERVAL_MS;
			}
			if (next < 0 || due < next)
				next = due;
		}
		clock_cond_wait_until(&p->cond, &p->mu, next);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int
progress_start(progress *p)
{
	if (pthread_create(&p->thread, NULL, progress_main, p) != 0)
		return JOBD_ESYS;
	p->started = true;
	return 0;
}

void
progress_stop(progress *p)
{
	if (p == NULL || !p->started)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	p->started = false;
}
