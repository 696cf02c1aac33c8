/*
 * bus.h - the other nodes of a shared PostgreSQL store: this daemon's
 * heartbeat, liveness and leadership, rescue of dead nodes' jobs,
 * self-fencing, and the LISTEN/NOTIFY hints that wake this node.
 *
 * One thread with one connection of its own (direct: LISTEN needs a
 * session), started by the PostgreSQL store (store_pg.c) and stopped by
 * it; what it hears goes to the store hooks (struct store_hooks), that is
 * to the writer, the workers and the events module (main.c wires them), so
 * that nothing above the store can tell a remote change from a local one.
 *
 * Every heartbeat (every min(1 s, lease / 4)):
 *  - writes this run's row of jobd.nodes (seen_at); 0 rows: the others
 *    declared this node dead (silent for a lease) -> fence, new life;
 *  - no heartbeat written for a whole lease -> fence (stop the attempts,
 *    claim nothing) until one is written, then a new life;
 *  - leader (the oldest live row, the same answer on every node): rescue
 *    of dead nodes' running jobs, forgetting of nodes dead for longer than
 *    the retention, and the earliest delayed job for the writer's timer;
 *  - cancels of jobs running here and jobs finished elsewhere (the
 *    fallback of the notifications).
 * Between heartbeats it sleeps on its socket: a NOTIFY on "jobd_work"
 * from another node (due work) or on "jobd_<boot id>" (a cancel of a job
 * running here) wakes it at once.
 *
 * A "new life" is a new boot id: the old one is marked dead, the new one
 * registered (started now, so leadership passes on) and listened to.
 */
#ifndef JOBD_BUS_H
#define JOBD_BUS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define BUS_BOOT_LEN 33 /* a boot id: 16 hex digits, NUL; room to spare */

/* What the bus needs from the store (called on the bus's thread). */
struct bus_config {
	const char *node;        /* this daemon's node name (copied) */
	int64_t lease_ms;
	int64_t retention_ms;    /* dead nodes are forgotten after it */
	/* a new connection to the store, or NULL with the reason in err */
	PGconn *(*connect)(void *arg, char *err, size_t errlen);
	/* registers this run's row (its current boot id) on c: 0 or a
	 * JOBD_E* code */
	int (*register_node)(void *arg, PGconn *c, char *err, size_t errlen);
	/* whether the store's writer is connected and registered */
	bool (*writer_up)(void *arg);
	void *arg;
};

typedef struct bus bus;

/* A bus with a fresh boot id; not running yet.  NULL when out of memory
 * (or a pipe could not be made), with the reason in err. */
bus *bus_new(const struct bus_config *cfg, char *err, size_t errlen);
/* Starts its thread: 0 or JOBD_ESYS. */
int bus_start(bus *b, char *err, size_t errlen);
/* Stops the thread (if started) and frees everything. */
void bus_free(bus *b);

/* This run's boot id, copied into out (it changes at a new life). */
const char *bus_boot(bus *b, char out[BUS_BOOT_LEN]);
/* As of the last heartbeat: leader, live nodes, fenced (claim nothing),
 * and whether LISTEN is up (other nodes' wake-ups reach this one). */
bool bus_is_leader(bus *b);
int bus_live_nodes(bus *b);
bool bus_fenced(bus *b);
bool bus_listening(bus *b);
/* Replaces the hooks (copied); once it returns the old ones never run. */
void bus_set_hooks(bus *b, const struct store_hooks *h);

/* libpq's multi-line message on one line, trailing blanks removed. */
void bus_one_line(char *dst, size_t len, const char *msg);

#endif
