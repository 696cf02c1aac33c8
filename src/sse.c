/*
 * sse.c - GET /events: the event ring and the streams (see sse.h).
 *
 * The ring is an array of cap formatted events; event id N sits at
 * (N - base) % cap and is there while next - cap <= N < next.  A stream
 * keeps a cursor (the next id it looks at) and at most one event being
 * written (pend); libmicrohttpd calls stream_read whenever the connection
 * can take more, on its own thread.
 *
 * A stream's life: sse_open lists it (it is pinged and resumed from
 * then on) and registers its waiter; sse_response hands it to
 * libmicrohttpd; stream_done (the response's free callback) unlists it.
 * It is freed when both the response and the waiter have let go (refs).
 *
 * One thread (jobd-sse) resumes the suspended streams when events came
 * (s->wake, set by publish) and sends the pings.
 *
 * LOCKING: s->mu guards the ring, next, wake, the stream list and every field
 * of every stream except its waiter (events.c's until it fires or is
 * cancelled).  MHD_suspend_connection and MHD_resume_connection are
 * called with s->mu held (libmicrohttpd never calls stream_read or
 * stream_done with a lock of its own that those take).  events_wait and
 * events_cancel are called without s->mu; a waiter's callback takes it
 * (events.c calls it with no lock held).  Lock order: s->mu, then
 * libmicrohttpd's.
 */
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "clock.h"
#include "err.h"
#include "job.h"
#include "log.h"
#include "sse.h"

/* Remote finals already published, to drop the bus's repeats. */
#define SEEN_SLOTS 4096

struct ev_slot {
	char *text;                      /* the whole event, NULL: none */
	size_t len;
	char job[UUID_STR_LEN];
	char type[JOB_TYPE_MAX + 1];
	bool final;                      /* a job event with a final status */
};

struct seen {
	char id[UUID_STR_LEN];
	int status;
};

struct sse {
	pthread_mutex_t mu;
	pthread_cond_t cv;               /* the sse thread's */
	events *ev;
	struct ev_slot *ring;
	size_t cap;
	uint64_t base;                   /* this life's first id */
	uint64_t next;                   /* the next event's id */
	struct sse_stream *head, *tail;  /* by ping deadline */
	size_t nstreams;
	uint64_t seq;                    /* names the streams' waiters */
	struct seen *seen;
	pthread_t thread;
	bool started, stopping;
	bool wake;                       /* events came: resume the streams */
};

struct sse_stream {
	sse *s;
	struct waiter w;
	struct MHD_Connection *conn;
	atomic_int *suspended_count;
	int refs;                        /* response + waiter */
	bool listed, waiting, suspended, gone, ended, reset, ping, hello;
	uint64_t cursor;                 /* the next id to look at */
	char type[JOB_TYPE_MAX + 1];     /* filters, "" none */
	char job[UUID_STR_LEN];
	char *final_text;                /* ?job= already final */
	int64_t ping_at_ms;
	char *pend;                      /* what is being written */
	size_t pend_len, pend_off, pend_cap;
	struct sse_stream *prev, *next;
};

static uint32_t
hash_id(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 16777619u;
	return h;
}

sse *
sse_new(size_t capacity, events *ev)
{
	sse *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->cap = capacity > 0 ? capacity : 1;
	s->ring = calloc(s->cap, sizeof(*s->ring));
	s->seen = calloc(SEEN_SLOTS, sizeof(*s->seen));
	if (s->ring == NULL || s->seen == NULL || clock_cond_init(&s->cv)) {
		free(s->ring);
		free(s->seen);
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	s->ev = ev;
	s->base = (uint64_t)clock_now_us();
	s->next = s->base;
	return s;
}

void
sse_free(sse *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->nstreams > 0) {
		/* libmicrohttpd still holds them (it was left running at
		 * exit): leave everything to the exit. */
		pthread_mutex_unlock(&s->mu);
		return;
	}
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < s->cap; i++)
		free(s->ring[i].text);
	free(s->ring);
	free(s->seen);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

size_t
sse_streams(sse *s)
{
	size_t n;

	pthread_mutex_lock(&s->mu);
	n = s->nstreams;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* ---- streams (s->mu held) ---- */

static void
stream_unlist(sse *s, sse_stream *st)
{
	if (!st->listed)
		return;
	if (st->prev)
		st->prev->next = st->next;
	else
		s->head = st->next;
	if (st->next)
		st->next->prev = st->prev;
	else
		s->tail = st->prev;
	st->prev = st->next = NULL;
	st->listed = false;
	s->nstreams--;
}

/* Appends st with its next ping deadline (all deadlines are now + the
 * same interval, so appending keeps the list in order). */
static void
stream_list(sse *s, sse_stream *st)
{
	st->ping_at_ms = clock_mono_ms() + SSE_PING_MS;
	st->prev = s->tail;
	st->next = NULL;
	if (s->tail)
		s->tail->next = st;
	else
		s->head = st;
	s->tail = st;
	if (!st->listed)
		s->nstreams++;
	st->listed = true;
}

static void
stream_resume(sse_stream *st)
{
	if (!st->suspended)
		return;
	st->suspended = false;
	atomic_fetch_sub(st->suspended_count, 1);
	MHD_resume_connection(st->conn);
}

static void
stream_free(sse_stream *st)
{
	free(st->final_text);
	free(st->pend);
	free(st);
}

/* Drops one reference (s->mu held); true when st must be freed (after
 * the unlock). */
static bool
stream_unref(sse_stream *st)
{
	return --st->refs == 0;
}

/* ---- the ring ---- */

/* The oldest id still in the ring (s->mu held). */
static uint64_t
oldest(const sse *s)
{
	return s->next - s->base > s->cap ? s->next - s->cap : s->base;
}

static bool
wants(const sse_stream *st, const char *job, const char *type)
{
	return (st->type[0] == '\0' || strcmp(st->type, type) == 0) &&
	       (st->job[0] == '\0' || strcmp(st->job, job) == 0);
}

/*
 * Appends an event (data: one line of JSON, borrowed) and wakes the
 * streams that want it.  Out of memory: the event is lost (the streams
 * still see consecutive ids: the slot holds nothing, and they skip it).
 */
static void
publish(sse *s, const char *kind, const char *job, const char *type,
        bool final, const char *data)
{
	size_t len = strlen(data) + strlen(kind) + 64;
	char *text = malloc(len);
	struct ev_slot *e;
	uint64_t id;

	pthread_mutex_lock(&s->mu);
	id = s->next++;
	e = &s->ring[(id - s->base) % s->cap];
	free(e->text);
	e->text = NULL;
	e->len = 0;
	if (text != NULL) {
		e->len = (size_t)snprintf(text, len, "id: %llu\nevent: %s\n"
		                          "data: %s\n\n", (unsigned long long)id,
		                          kind, data);
		e->text = text;
	}
	snprintf(e->job, sizeof(e->job), "%s", job);
	snprintf(e->type, sizeof(e->type), "%s", type);
	e->final = final;
	/* The streams are resumed by the sse thread: a burst of events (a
	 * batch commits thousands) wakes each stream once, and the
	 * publishing thread (the writer's) does not wait for them. */
	if (!s->wake) {
		s->wake = true;
		pthread_cond_signal(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
}

/* The data of a job event, one line of JSON (a new string, freed with
 * free()).  Ids and types are plain ASCII (uuid, job_type_valid): written
 * directly, the writer's thread calls this for every state change. */
static char *
job_data(const char *id, const char *type, int status, int attempt)
{
	char num[24] = "null";
	size_t len;
	char *text;

	if (!job_type_valid(type) && type[0] != '\0')
		type = "?";
	if (strlen(id) >= UUID_STR_LEN)
		return NULL;
	for (const char *p = id; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ||
		    (unsigned char)*p >= 0x7f)
			return NULL;
	if (attempt >= 0)
		snprintf(num, sizeof(num), "%d", attempt);
	len = strlen(id) + strlen(type) + strlen(num) + 80;
	text = malloc(len);
	if (text != NULL)
		snprintf(text, len, "{\"id\":\"%s\",\"type\":\"%s\","
		         "\"status\":\"%s\",\"attempt\":%s}", id, type,
		         job_status_name(status), num);
	return text;
}

void
sse_job(sse *s, const char *id, const char *type, int status, int attempt)
{
	char *data;

	if (s == NULL || id == NULL || status < 0 || status >= JOB_NSTATUS)
		return;
	if (type == NULL)
		type = "";
	data = job_data(id, type, status, attempt);
	if (data == NULL) {
		log_warn("sse", "out of memory: an event of job %s is lost", id);
		return;
	}
	publish(s, "job", id, type, job_status_is_final(status), data);
	free(data);
}

bool
sse_remote_new(sse *s, const char *id, int status)
{
	struct seen *e;
	bool dup;

	if (s == NULL || id == NULL)
		return false;
	pthread_mutex_lock(&s->mu);
	e = &s->seen[hash_id(id) % SEEN_SLOTS];
	dup = strcmp(e->id, id) == 0 && e->status == status;
	if (!dup) {
		snprintf(e->id, sizeof(e->id), "%s", id);
		e->status = status;
	}
	pthread_mutex_unlock(&s->mu);
	return !dup;
}

void
sse_progress(sse *s, const char *id, const char *type, const char *json)
{
	cJSON *o = NULL, *p;
	char *data = NULL;

	if (s == NULL || id == NULL || json == NULL)
		return;
	if (type == NULL)
		type = "";
	/* Printed again: one line whatever the handler sent. */
	p = cJSON_Parse(json);
	if (p == NULL || !cJSON_IsObject(p)) {
		cJSON_Delete(p);
		return;
	}
	o = cJSON_CreateObject();
	if (o != NULL) {
		cJSON_AddStringToObject(o, "id", id);
		cJSON_AddStringToObject(o, "type", type);
		cJSON_AddItemToObject(o, "progress", p);
		p = NULL;
		data = cJSON_PrintUnformatted(o);
	}
	cJSON_Delete(p);
	cJSON_Delete(o);
	if (data == NULL) {
		log_warn("sse", "out of memory: a progress event of job %s is "
		         "lost", id);
		return;
	}
	publish(s, "progress", id, type, false, data);
	cJSON_free(data);
}

/* ---- the sse thread: wake-ups and pings ---- */

static void *
ping_main(void *arg)
{
	sse *s = arg;
	sigset_t set;

	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_setname_np(pthread_self(), "jobd-sse");
	pthread_mutex_lock(&s->mu);
	while (!s->stopping) {
		sse_stream *st = s->head;
		if (s->wake) {
			/* Those behind the ring's end; a filtered one that
			 * finds nothing for it catches up and sleeps again. */
			s->wake = false;
			for (; st; st = st->next)
				if (st->suspended && st->cursor < s->next)
					stream_resume(st);
			continue;
		}
		if (st == NULL) {
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		if (st->ping_at_ms > clock_mono_ms()) {
			clock_cond_wait_until(&s->cv, &s->mu, st->ping_at_ms);
			continue;
		}
		stream_unlist(s, st);
		stream_list(s, st);
		st->ping = true;
		stream_resume(st);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int
sse_start(sse *s)
{
	if (pthread_create(&s->thread, NULL, ping_main, s) != 0)
		return JOBD_ESYS;
	s->started = true;
	return 0;
}

void
sse_stop(sse *s)
{
	if (s == NULL || !s->started)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	s->started = false;
}

/* ---- a stream ---- */

/* The client left, or jobd stops: on the events thread (or the thread
 * that calls events_stop), no events lock held. */
static void
stream_fired(void *arg, int reason)
{
	sse_stream *st = arg;
	sse *s = st->s;
	bool drop;

	pthread_mutex_lock(&s->mu);
	st->waiting = false;
	if (reason == WAKE_DISCONNECT)
		st->gone = true;
	else
		st->ended = true;
	stream_resume(st);
	drop = stream_unref(st);
	pthread_mutex_unlock(&s->mu);
	if (drop)
		stream_free(st);
}

/* Parses a Last-Event-ID: true with *id for digits only that fit. */
static bool
parse_event_id(const char *v, uint64_t *id)
{
	uint64_t n = 0;

	if (*v == '\0' || strlen(v) > 20)
		return false;
	for (; *v; v++) {
		if (*v < '0' || *v > '9')
			return false;
		if (n > (UINT64_MAX - (uint64_t)(*v - '0')) / 10)
			return false;
		n = n * 10 + (uint64_t)(*v - '0');
	}
	*id = n;
	return true;
}

int
sse_open(sse *s, const char *type, const char *job,
         const char *last_event_id, int fd, sse_stream **out)
{
	sse_stream *st = calloc(1, sizeof(*st));
	uint64_t last = 0;
	bool resume;

	*out = NULL;
	if (st == NULL)
		return JOBD_ENOMEM;
	st->s = s;
	snprintf(st->type, sizeof(st->type), "%s", type ? type : "");
	snprintf(st->job, sizeof(st->job), "%s", job ? job : "");
	/* An empty Last-Event-ID is what a client sends that saw no id. */
	resume = last_event_id != NULL && last_event_id[0] != '\0';

	pthread_mutex_lock(&s->mu);
	snprintf(st->w.id, sizeof(st->w.id), "sse-%llu",
	         (unsigned long long)++s->seq);
	st->cursor = s->next;
	if (resume) {
		if (parse_event_id(last_event_id, &last) &&
		    last + 1 >= oldest(s) && last < s->next)
			st->cursor = last + 1;
		else
			st->reset = true;
	}
	st->refs = 2;
	st->waiting = true;
	stream_list(s, st);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);

	st->w.deadline_mono_ms = INT64_MAX;
	st->w.watch_fd = fd;
	st->w.fn = stream_fired;
	st->w.arg = st;
	if (events_wait(s->ev, &st->w) != 0) {
		pthread_mutex_lock(&s->mu);
		stream_unlist(s, st);
		pthread_mutex_unlock(&s->mu);
		stream_free(st);
		return JOBD_EBUSY;
	}
	*out = st;
	return 0;
}

void
sse_stream_job_state(sse_stream *st, int status, const char *type,
                     int attempt)
{
	char *data, *text;
	size_t len;

	if (!job_status_is_final(status))
		return;
	data = job_data(st->job, type ? type : "", status, attempt);
	if (data == NULL)
		return;
	/* Without an id: it is not a new event of the ring. */
	len = strlen(data) + 32;
	text = malloc(len);
	if (text != NULL)
		snprintf(text, len, "event: job\ndata: %s\n\n", data);
	free(data);
	pthread_mutex_lock(&st->s->mu);
	free(st->final_text);
	st->final_text = text;
	if (st->suspended)
		stream_resume(st);
	pthread_mutex_unlock(&st->s->mu);
}

void
sse_stream_abort(sse_stream *st)
{
	sse *s;
	bool drop;

	if (st == NULL)
		return;
	s = st->s;
	if (events_cancel(s->ev, &st->w)) {
		pthread_mutex_lock(&s->mu);
		st->waiting = false;
		stream_unref(st);
		pthread_mutex_unlock(&s->mu);
	}
	pthread_mutex_lock(&s->mu);
	stream_unlist(s, st);
	drop = stream_unref(st);
	pthread_mutex_unlock(&s->mu);
	if (drop)
		stream_free(st);
}

/* Makes text the event being written (s->mu held); false: no memory. */
static bool
stage(sse_stream *st, const char *text, size_t len)
{
	if (len > st->pend_cap) {
		char *p = realloc(st->pend, len);
		if (p == NULL)
			return false;
		st->pend = p;
		st->pend_cap = len;
	}
	memcpy(st->pend, text, len);
	st->pend_len = len;
	st->pend_off = 0;
	return true;
}

/* Stages the next thing to write; false when there is none now. */
static bool
stage_next(sse *s, sse_stream *st)
{
	char line[96];
	int n;

	if (!st->hello) {
		st->hello = true;
		return stage(st, ": jobd events\n\n", 15);
	}
	if (!st->reset && st->cursor < oldest(s))
		st->reset = true; /* fell behind the ring */
	if (st->reset) {
		/* What was missed is gone: go on from the newest event.  The
		 * id lets a client that reconnects resume from here. */
		st->reset = false;
		st->cursor = s->next;
		n = snprintf(line, sizeof(line), "id: %llu\nevent: reset\n"
		             "data: {}\n\n", (unsigned long long)(s->next - 1));
		return stage(st, line, (size_t)n);
	}
	if (st->ping) {
		st->ping = false;
		return stage(st, ": ping\n\n", 8);
	}
	while (st->cursor < s->next) {
		struct ev_slot *e = &s->ring[(st->cursor - s->base) % s->cap];
		st->cursor++;
		if (e->text == NULL || !wants(st, e->job, e->type))
			continue;
		if (st->job[0] != '\0' && e->final)
			st->ended = true; /* after this one */
		return stage(st, e->text, e->len);
	}
	if (st->final_text != NULL) {
		bool ok = stage(st, st->final_text, strlen(st->final_text));
		st->ended = true;
		return ok;
	}
	return false;
}

/* libmicrohttpd wants more of the stream (on its thread). */
static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	sse_stream *st = cls;
	sse *s = st->s;
	size_t n = 0;

	(void)pos;
	pthread_mutex_lock(&s->mu);
	if (st->gone) {
		pthread_mutex_unlock(&s->mu);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	while (n < max) {
		if (st->pend_off < st->pend_len) {
			size_t k = st->pend_len - st->pend_off;
			if (k > max - n)
				k = max - n;
			memcpy(buf + n, st->pend + st->pend_off, k);
			st->pend_off += k;
			n += k;
			continue;
		}
		if (st->ended || !stage_next(s, st))
			break;
	}
	if (n > 0) {
		pthread_mutex_unlock(&s->mu);
		return (ssize_t)n;
	}
	if (st->ended) {
		pthread_mutex_unlock(&s->mu);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	/* Caught up: sleep until an event, a ping or the end. */
	st->suspended = true;
	atomic_fetch_add(st->suspended_count, 1);
	MHD_suspend_connection(st->conn);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* libmicrohttpd is done with the response (on its thread). */
static void
stream_done(void *cls)
{
	sse_stream *st = cls;
	sse *s = st->s;
	bool drop;

	if (events_cancel(s->ev, &st->w)) {
		pthread_mutex_lock(&s->mu);
		st->waiting = false;
		stream_unref(st);
		pthread_mutex_unlock(&s->mu);
	}
	pthread_mutex_lock(&s->mu);
	stream_unlist(s, st);
	if (st->suspended) { /* not expected: it is being destroyed */
		st->suspended = false;
		atomic_fetch_sub(st->suspended_count, 1);
	}
	drop = stream_unref(st);
	pthread_mutex_unlock(&s->mu);
	if (drop)
		stream_free(st);
}

struct MHD_Response *
sse_response(sse_stream *st, struct MHD_Connection *conn,
             atomic_int *suspended)
{
	struct MHD_Response *r;

	pthread_mutex_lock(&st->s->mu);
	st->conn = conn;
	st->suspended_count = suspended;
	pthread_mutex_unlock(&st->s->mu);
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
	                                      stream_read, st, stream_done);
	if (r == NULL)
		sse_stream_abort(st);
	return r;
}
