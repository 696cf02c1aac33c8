/*
 * events.c - waiters on job state: a hash of job id -> waiters, a binary
 * heap of deadlines, and an epoll set watching waiters' client sockets for
 * EPOLLRDHUP.  One thread sleeps in epoll_wait until the earliest deadline
 * or a socket event; an eventfd wakes it when an earlier deadline arrives.
 *
 * epoll reports events asynchronously, so its data is not a pointer (the
 * waiter may be gone by then) but a slot number and a generation, checked
 * under the lock.
 *
 * LOCKING: ev->mu guards everything in struct events except the thread
 * handle, epfd and wakefd (set before the thread starts).  Callbacks are
 * called after the waiter has been removed from every structure, with
 * ev->mu released.  Lock order: ev->mu is a leaf lock.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "events.h"
#include "job.h"
#include "log.h"
#include "sse.h"

#define NBUCKETS 4096

struct slot {
	struct waiter *w;    /* NULL when free */
	uint32_t gen;
	uint32_t next_free;
};

struct events {
	pthread_mutex_t mu;
	pthread_t thread;
	bool started, stopping;
	int epfd, wakefd;
	size_t max;
	size_t count;
	struct waiter *buckets[NBUCKETS];
	struct waiter **heap;    /* by deadline */
	size_t heap_len;
	struct slot *slots;
	uint32_t free_head;      /* UINT32_MAX: none */
	struct sse *sse;         /* GET /events streams, NULL: none */
};

static uint32_t
hash_id(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 16777619u;
	return h % NBUCKETS;
}

events *
events_new(size_t max_waiters)
{
	events *ev = calloc(1, sizeof(*ev));

	if (ev == NULL)
		return NULL;
	ev->max = max_waiters;
	ev->heap = calloc(max_waiters + 1, sizeof(*ev->heap));
	ev->slots = calloc(max_waiters + 1, sizeof(*ev->slots));
	if (ev->heap == NULL || ev->slots == NULL) {
		free(ev->heap);
		free(ev->slots);
		free(ev);
		return NULL;
	}
	for (size_t i = 0; i < max_waiters; i++)
		ev->slots[i].next_free = i + 1 < max_waiters ? (uint32_t)(i + 1)
		                                             : UINT32_MAX;
	ev->free_head = max_waiters > 0 ? 0 : UINT32_MAX;
	pthread_mutex_init(&ev->mu, NULL);
	ev->epfd = epoll_create1(EPOLL_CLOEXEC);
	ev->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ev->epfd < 0 || ev->wakefd < 0) {
		events_free(ev);
		return NULL;
	}
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
	epoll_ctl(ev->epfd, EPOLL_CTL_ADD, ev->wakefd, &e);
	return ev;
}

void
events_free(events *ev)
{
	if (ev == NULL)
		return;
	if (ev->epfd >= 0)
		close(ev->epfd);
	if (ev->wakefd >= 0)
		close(ev->wakefd);
	pthread_mutex_destroy(&ev->mu);
	free(ev->heap);
	free(ev->slots);
	free(ev);
}

/* ---- heap (ev->mu held) ---- */

static void
heap_swap(events *ev, size_t a, size_t b)
{
	struct waiter *t = ev->heap[a];

	ev->heap[a] = ev->heap[b];
	ev->heap[b] = t;
	ev->heap[a]->heap_index = a;
	ev->heap[b]->heap_index = b;
}

static void
heap_up(events *ev, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (ev->heap[parent]->deadline_mono_ms <=
		    ev->heap[i]->deadline_mono_ms)
			break;
		heap_swap(ev, i, parent);
		i = parent;
	}
}

static void
heap_down(events *ev, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < ev->heap_len && ev->heap[l]->deadline_mono_ms <
		    ev->heap[m]->deadline_mono_ms)
			m = l;
		if (r < ev->heap_len && ev->heap[r]->deadline_mono_ms <
		    ev->heap[m]->deadline_mono_ms)
			m = r;
		if (m == i)
			break;
		heap_swap(ev, i, m);
		i = m;
	}
}

static void
heap_remove(events *ev, size_t i)
{
	ev->heap_len--;
	if (i != ev->heap_len) {
		heap_swap(ev, i, ev->heap_len);
		heap_down(ev, i);
		heap_up(ev, i);
	}
}

/* Removes w from every structure (ev->mu held). */
static void
detach(events *ev, struct waiter *w)
{
	uint32_t b = hash_id(w->id);

	if (w->bprev)
		w->bprev->bnext = w->bnext;
	else
		ev->buckets[b] = w->bnext;
	if (w->bnext)
		w->bnext->bprev = w->bprev;
	heap_remove(ev, w->heap_index);
	if (w->watch_fd >= 0)
		epoll_ctl(ev->epfd, EPOLL_CTL_DEL, w->watch_fd, NULL);
	ev->slots[w->slot].w = NULL;
	ev->slots[w->slot].gen++;
	ev->slots[w->slot].next_free = ev->free_head;
	ev->free_head = w->slot;
	ev->count--;
	w->active = false;
}

int
events_wait(events *ev, struct waiter *w)
{
	uint32_t b = hash_id(w->id);
	bool earliest;

	pthread_mutex_lock(&ev->mu);
	if (ev->stopping || !ev->started || ev->free_head == UINT32_MAX) {
		pthread_mutex_unlock(&ev->mu);
		return JOBD_EBUSY;
	}
	w->slot = ev->free_head;
	ev->free_head = ev->slots[w->slot].next_free;
	ev->slots[w->slot].w = w;
	w->bprev = NULL;
	w->bnext = ev->buckets[b];
	if (w->bnext)
		w->bnext->bprev = w;
	ev->buckets[b] = w;
	w->heap_index = ev->heap_len;
	ev->heap[ev->heap_len++] = w;
	heap_up(ev, w->heap_index);
	earliest = w->heap_index == 0;
	if (w->watch_fd >= 0) {
		struct epoll_event e = {
			.events = EPOLLRDHUP,
			.data.u64 = (uint64_t)ev->slots[w->slot].gen << 32 | w->slot,
		};
		if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, w->watch_fd, &e) != 0)
			w->watch_fd = -1; /* still times out; just not watched */
	}
	w->active = true;
	ev->count++;
	pthread_mutex_unlock(&ev->mu);
	if (earliest)
		eventfd_write(ev->wakefd, 1);
	return 0;
}

bool
events_cancel(events *ev, struct waiter *w)
{
	bool removed = false;

	pthread_mutex_lock(&ev->mu);
	if (w->active) {
		detach(ev, w);
		removed = true;
	}
	pthread_mutex_unlock(&ev->mu);
	return removed;
}

void
events_publish(events *ev, const char *id, int status)
{
	struct waiter *fired = NULL, *w, *next;

	if (ev == NULL || !job_status_is_final(status))
		return;
	pthread_mutex_lock(&ev->mu);
	for (w = ev->buckets[hash_id(id)]; w; w = next) {
		next = w->bnext;
		if (strcmp(w->id, id) != 0)
			continue;
		detach(ev, w);
		w->bnext = fired; /* reuse the link for the fired list */
		fired = w;
	}
	pthread_mutex_unlock(&ev->mu);
	for (w = fired; w; w = next) {
		next = w->bnext;
		w->fn(w->arg, WAKE_FINAL);
	}
}

size_t
events_count(events *ev)
{
	size_t n;

	pthread_mutex_lock(&ev->mu);
	n = ev->count;
	pthread_mutex_unlock(&ev->mu);
	return n;
}

static void *
events_main(void *arg)
{
	events *ev = arg;
	struct epoll_event evs[64];
	sigset_t set;

	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_setname_np(pthread_self(), "jobd-events");

	for (;;) {
		struct waiter *fired = NULL, *w, *next;
		int timeout = -1, n;

		pthread_mutex_lock(&ev->mu);
		if (ev->stopping) {
			/* Answer every waiter before the daemon goes. */
			while (ev->heap_len > 0) {
				w = ev->heap[0];
				detach(ev, w);
				w->bnext = fired;
				w->heap_index = WAKE_SHUTDOWN;
				fired = w;
			}
			pthread_mutex_unlock(&ev->mu);
			for (w = fired; w; w = next) {
				next = w->bnext;
				w->fn(w->arg, WAKE_SHUTDOWN);
			}
			return NULL;
		}
		if (ev->heap_len > 0) {
			int64_t d = ev->heap[0]->deadline_mono_ms - clock_mono_ms();
			timeout = d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
		}
		pthread_mutex_unlock(&ev->mu);

		n = epoll_wait(ev->epfd, evs, 64, timeout);
		if (n < 0 && errno != EINTR)
			log_err("events", "epoll_wait: %s", strerror(errno));

		pthread_mutex_lock(&ev->mu);
		for (int i = 0; i < n; i++) {
			uint64_t data = evs[i].data.u64;
			if (data == UINT64_MAX) {
				eventfd_t v;
				eventfd_read(ev->wakefd, &v);
				continue;
			}
			uint32_t slot = (uint32_t)data, gen = (uint32_t)(data >> 32);
			if (slot >= ev->max || ev->slots[slot].gen != gen ||
			    (w = ev->slots[slot].w) == NULL)
				continue; /* woken meanwhile */
			detach(ev, w);
			w->heap_index = WAKE_DISCONNECT;
			w->bnext = fired;
			fired = w;
		}
		int64_t now = clock_mono_ms();
		while (ev->heap_len > 0 && ev->heap[0]->deadline_mono_ms <= now) {
			w = ev->heap[0];
			detach(ev, w);
			w->heap_index = WAKE_TIMEOUT;
			w->bnext = fired;
			fired = w;
		}
		pthread_mutex_unlock(&ev->mu);
		/* heap_index carries the reason once a waiter is detached. */
		for (w = fired; w; w = next) {
			next = w->bnext;
			w->fn(w->arg, (int)w->heap_index);
		}
	}
}

int
events_start(events *ev)
{
	pthread_mutex_lock(&ev->mu);
	ev->started = true;
	pthread_mutex_unlock(&ev->mu);
	if (pthread_create(&ev->thread, NULL, events_main, ev) != 0) {
		pthread_mutex_lock(&ev->mu);
		ev->started = false;
		pthread_mutex_unlock(&ev->mu);
		return JOBD_ESYS;
	}
	return 0;
}

void
events_stop(events *ev)
{
	bool started;

	pthread_mutex_lock(&ev->mu);
	started = ev->started;
	ev->stopping = true;
	pthread_mutex_unlock(&ev->mu);
	eventfd_write(ev->wakefd, 1);
	if (started)
		pthread_join(ev->thread, NULL);
	ev->started = false;
}

void
events_set_sse(events *ev, struct sse *s)
{
	pthread_mutex_lock(&ev->mu);
	ev->sse = s;
	pthread_mutex_unlock(&ev->mu);
}

struct sse *
events_sse(events *ev)
{
	struct sse *s;

	pthread_mutex_lock(&ev->mu);
	s = ev->sse;
	pthread_mutex_unlock(&ev->mu);
	return s;
}

void
events_job(events *ev, const char *id, const char *type, int status,
           int attempt)
{
	if (ev != NULL)
		sse_job(events_sse(ev), id, type, status, attempt);
}

void
events_progress(events *ev, const char *id, const char *type,
                const char *json)
{
	if (ev != NULL)
		sse_progress(events_sse(ev), id, type, json);
}
