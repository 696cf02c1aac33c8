/*
 * sse.h - GET /events (DESIGN.md §2): the event ring and the streams.
 *
 * Every job state change and every progress report becomes one event,
 * formatted once ("id: N\nevent: job|progress\ndata: {...}\n\n") and kept
 * in a ring of the last server.event_buffer events.  Ids grow by one per
 * event; the first id of a daemon's life is its start time in
 * microseconds, so an id from an earlier life (or another node) is older
 * than anything in the ring and gets "event: reset".
 *
 * A stream is a suspended libmicrohttpd connection whose response reads
 * from the ring (MHD_create_response_from_callback): when it has caught
 * up, the reader suspends the connection and returns 0 bytes; a new
 * event, a ping (every 15 s) or the end resumes it.  A stream holds at
 * most one event of its own (the one being written); a reader so slow
 * that the ring overwrote its place gets "event: reset" and goes on from
 * the newest event.  No thread per stream: one thread wakes the streams
 * when events came (once per burst, off the publishing thread) and sends
 * the pings.
 *
 * Each stream holds a waiter of the events module (events.h): it counts
 * against server.max_waiters, and the events thread tells it when its
 * client closed the connection or jobd stops.
 */
#ifndef JOBD_SSE_H
#define JOBD_SSE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"

struct MHD_Connection;
struct MHD_Response;

typedef struct sse sse;
typedef struct sse_stream sse_stream;

/* The ping interval (DESIGN §2). */
#define SSE_PING_MS 15000

/*
 * A ring of capacity events over ev (borrowed; the streams' waiters are
 * registered there).  NULL when out of memory.
 */
sse *sse_new(size_t capacity, events *ev);
/* Frees it (after sse_stop, once every stream has ended). */
void sse_free(sse *s);

/* Starts its thread: 0 or JOBD_ESYS. */
int sse_start(sse *s);
/* Stops its thread (streams end through their waiters). */
void sse_stop(sse *s);

/*
 * A job changed state (after commit): one "event: job".  type "" and
 * attempt < 0 when unknown.  Any thread; does not block on a client.
 */
void sse_job(sse *s, const char *id, const char *type, int status,
             int attempt);

/* A job reported progress (json: a JSON object, borrowed). */
void sse_progress(sse *s, const char *id, const char *type,
                  const char *json);

/*
 * A job finished on another node (the bus reports it, maybe twice):
 * true the first time (then publish it with sse_job), false when that
 * final state of that job was seen recently.
 */
bool sse_remote_new(sse *s, const char *id, int status);

/*
 * Opens a stream.  type, job: the filters (NULL: none; borrowed).
 * last_event_id: the Last-Event-ID header as sent (NULL: none): resume
 * after it, or start with "event: reset" when it is not an id in the
 * ring.  fd: the client's socket (watched for its close; -1 none).
 * Returns 0 with *out, or JOBD_EBUSY (max_waiters reached, or stopping)
 * or JOBD_ENOMEM.
 */
int sse_open(sse *s, const char *type, const char *job,
             const char *last_event_id, int fd, sse_stream **out);

/*
 * With ?job=: the job's state as read after sse_open (status, type,
 * attempt).  If final, the stream ends after that job's final-state event
 * (from the ring, or this one if the ring has none after the stream's
 * start).
 */
void sse_stream_job_state(sse_stream *st, int status, const char *type,
                          int attempt);

/*
 * The stream's response for conn (it takes the stream: freed when
 * libmicrohttpd destroys the response).  suspended: http's count of
 * suspended connections, kept up to date while the stream is suspended.
 * NULL when out of memory (the stream is then freed).
 */
struct MHD_Response *sse_response(sse_stream *st, struct MHD_Connection *conn,
                                  atomic_int *suspended);

/* Frees a stream that never got a response. */
void sse_stream_abort(sse_stream *st);

/* Streams open now, and the ring's ids (for tests and metrics). */
size_t sse_streams(sse *s);

#endif
