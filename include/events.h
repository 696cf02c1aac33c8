/*
 * events.h - job state changes and the clients waiting for them.
 *
 * A waiter is a suspended HTTP request waiting for a job to reach a final
 * state (long-poll GET, or POST with Prefer: wait).  It is woken exactly
 * once, by the first of: the job's final state (events_publish, called by
 * the writer after a commit), its deadline, the close of its client's
 * connection (the socket is watched with EPOLLRDHUP, because libmicrohttpd
 * does not notice the close of a suspended connection), or shutdown.  No
 * thread is parked per waiter: one events thread runs the timers and the
 * socket watch; wake-ups by state change run on the publishing thread.
 *
 * Waiters are embedded in their owner's memory (the API call) and must
 * stay valid until their callback has run or events_cancel() returned true.
 */
#ifndef JOBD_EVENTS_H
#define JOBD_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uuid.h"

typedef struct events events;

enum wake_reason {
	WAKE_FINAL = 1,      /* the job reached a final state */
	WAKE_TIMEOUT = 2,    /* the deadline passed */
	WAKE_DISCONNECT = 3, /* the client closed its connection */
	WAKE_SHUTDOWN = 4,   /* the daemon is stopping */
};

/* Called once, without any events lock held, from any thread. */
typedef void (*waiter_fn)(void *arg, int reason);

struct waiter {
	/* Set by the owner before events_wait(). */
	char id[UUID_STR_LEN];
	int64_t deadline_mono_ms;
	int watch_fd;            /* client socket to watch, or -1 */
	waiter_fn fn;
	void *arg;
	/* Private to events.c. */
	uint32_t slot;
	size_t heap_index;
	struct waiter *bnext, *bprev;
	bool active;
};

/* Creates the registry for at most max_waiters waiters; NULL on ENOMEM. */
events *events_new(size_t max_waiters);
void events_free(events *ev);

/* Starts the timer/socket thread.  Returns 0 or JOBD_ESYS. */
int events_start(events *ev);

/* Wakes every waiter with WAKE_SHUTDOWN and stops the thread. */
void events_stop(events *ev);

/*
 * Registers w.  Returns 0, or JOBD_EBUSY when max_waiters are waiting or
 * the registry has stopped (the caller then answers at once).
 */
int events_wait(events *ev, struct waiter *w);

/*
 * Unregisters w if it has not been woken yet: returns true, and its
 * callback will never run.  False: it was woken (its callback ran or is
 * running).
 */
bool events_cancel(events *ev, struct waiter *w);

/* A job's state changed (after commit): wakes its waiters if final. */
void events_publish(events *ev, const char *id, int status);

/*
 * A running job reported progress (json: one JSON object, borrowed), for
 * GET /events streams (sse.c feeds its ring from here).  Any thread; does
 * not block.
 */
void events_progress(events *ev, const char *id, const char *type,
                     const char *json);

/* Every state change of a job (after commit, local or remote), for GET
 * /events: type "" and attempt < 0 when unknown.  Any thread. */
void events_job(events *ev, const char *id, const char *type, int status,
                int attempt);

/* Where events_job and events_progress go (sse.h; NULL: nowhere). */
struct sse;
void events_set_sse(events *ev, struct sse *s);
struct sse *events_sse(events *ev);

/* Number of waiters now (GET /events streams included). */
size_t events_count(events *ev);

#endif
