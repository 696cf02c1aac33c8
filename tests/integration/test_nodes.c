/*
 * test_nodes.c - several jobd daemons on one PostgreSQL database (issue
 * 14, first part): node names, work spreading over the nodes, a node's
 * jobs rescued by another after a kill -9, a restarted node recovering
 * its own jobs at once, GET /nodes.  On SQLite only GET /nodes of the
 * one node.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

static const char *const json[] = {"Content-Type: application/json", NULL};

/* A node of the store of owner (NULL: a new store), named name. */
static jd *
node(const jd *owner, const char *name, int threads, const char *lease)
{
	char extra[256];
	struct jd_opts o = {.threads = threads, .extra = extra,
	                    .share_store = owner};
	jd *d;

	snprintf(extra, sizeof(extra), "[store]\nnode = %s\nlease = %s\n"
	         "[workers]\nshutdown_grace = 1s\n", name, lease);
	d = jd_new(&o);
	ck_assert_ptr_nonnull(d);
	return d;
}

/* Both nodes started (a first: the older one, the leader). */
static void
start_pair(jd *a, jd *b)
{
	ck_assert_int_eq(jd_start(a), 0);
	ck_assert_int_eq(jd_start(b), 0);
}

/* Both stopped (b first) and freed. */
static void
stop_pair(jd *a, jd *b)
{
	ck_assert_int_eq(jd_stop(b, 20000), 0);
	ck_assert_int_eq(jd_stop(a, 20000), 0);
	jd_free(b);
	jd_free(a);
}

static char *
submit(jd *d, const char *body)
{
	char *id = jd_submit(d, body);

	ck_assert_msg(id != NULL, "POST %s failed", body);
	return id;
}

/* The job's attempt and status once its status is want (on d). */
static int
wait_attempt(jd *d, const char *id, const char *want, int timeout_ms)
{
	struct jd_resp *r = jd_wait_for_status(d, id, want, timeout_ms);
	int attempt;

	const char *st = jd_resp_str(r, "status");

	ck_assert_msg(r->status == 200 && st != NULL && strcmp(st, want) == 0,
	              "job %s never became %s: %s", id, want,
	              r->body ? r->body : "(no answer)");
	attempt = (int)jd_num(jd_json(r), "attempt", -1);
	jd_resp_free(r);
	return attempt;
}

/* Two daemons under one node name: the second is refused, naming the
 * first; the first goes on. */
START_TEST(test_same_node_name_refused)
{
	jd *a = node(NULL, "alpha", 2, "30s"), *b;
	char *log;

	ck_assert_int_eq(jd_start(a), 0);
	b = node(a, "alpha", 2, "30s");
	ck_assert_int_ne(jd_start(b), 0);
	log = jd_read_file(b->log_path, NULL);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, "as node \"alpha\"") != NULL &&
	              strstr(log, "jobd pid") != NULL, "%s", log);
	free(log);
	{
		struct jd_resp *r = jd_request(a, "GET", "/readyz", NULL, NULL);
		ck_assert_int_eq(r->status, 200);
		jd_resp_free(r);
	}
	jd_free(b);
	ck_assert_int_eq(jd_stop(a, 20000), 0);
	jd_free(a);
}
END_TEST

/* A job submitted on one node is seen, cancelled and run by another:
 * with node A's only worker busy, B (idle) takes A's queued jobs. */
START_TEST(test_work_spreads_over_nodes)
{
	jd *a = node(NULL, "alpha", 1, "30s");
	jd *b = node(a, "bravo", 2, "30s");
	char *busy, *ids[6], *later, path[80];
	struct jd_resp *r;

	start_pair(a, b);
	busy = submit(a, "{\"type\":\"sleep\",\"payload\":{\"seconds\":60}}");
	wait_attempt(a, busy, "running", 10000);
	for (int i = 0; i < 6; i++)
		ids[i] = submit(a, "{\"type\":\"noop\"}");
	/* A's commits that left them queued woke B (a NOTIFY). */
	ck_assert_msg(jd_metric(a, "jobd_store_notifies_total") >= 1,
	              "no wake-up sent");
	/* B sees A's jobs, and runs them (A's only worker is busy). */
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(wait_attempt(b, ids[i], "succeeded", 20000), 1);
		free(ids[i]);
	}
	ck_assert_int_eq(jd_sql_int(a, "SELECT count(*) FROM jobs j JOIN "
	                            "nodes n ON n.boot = j.node WHERE "
	                            "n.name = 'bravo' AND j.type = 'noop'"), 6);
	/* A queued job of A's cancelled through B. */
	later = submit(a, "{\"type\":\"noop\",\"delay\":3600}");
	snprintf(path, sizeof(path), "/jobs/%s", later);
	r = jd_request(b, "DELETE", path, json, NULL);
	ck_assert_msg(r->status == 200 || r->status == 202, "%ld %s",
	              r->status, r->body);
	jd_resp_free(r);
	ck_assert_int_eq(wait_attempt(a, later, "cancelled", 10000), 0);
	free(later);
	free(busy);
	stop_pair(a, b);
}
END_TEST

/* kill -9 of the node running a long job: once its lease (2 s) has run
 * out, the other node rescues the job and runs it (attempt 2). */
START_TEST(test_dead_node_rescued)
{
	jd *a = node(NULL, "alpha", 1, "2s");
	jd *b = node(a, "bravo", 1, "2s");
	char *id;
	int64_t t0;

	start_pair(a, b);
	id = submit(a, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	wait_attempt(a, id, "running", 10000);
	ck_assert_int_eq(jd_sql_int(a, "SELECT count(*) FROM jobs j JOIN "
	                            "nodes n ON n.boot = j.node WHERE "
	                            "n.name = 'alpha' AND j.status = 'running'"),
	                 1);
	ck_assert_int_eq(jd_kill9(a), 128 + 9);
	t0 = jd_mono_ms();
	/* Rescued (attempt counted) and claimed by B: running, attempt 2. */
	for (;;) {
		long long att = jd_sql_int(b, "SELECT attempt FROM jobs j JOIN "
		                           "nodes n ON n.boot = j.node WHERE "
		                           "n.name = 'bravo' AND j.status = "
		                           "'running' AND j.type = 'sleep'");
		if (att == 2)
			break;
		ck_assert_msg(jd_mono_ms() - t0 < 20000, "not rescued within "
		              "20 s (lease 2 s)");
		jd_pause_ms(100);
	}
	printf("kill -9 -> running on the other node after %lld ms "
	       "(lease 2 s)\n", (long long)(jd_mono_ms() - t0));
	{
		char *log = jd_wait_log(b, "rescued 1 job(s)", 1000);
		ck_assert_ptr_nonnull(log);
		free(log);
	}
	/* The dead node is still listed (until the retention), not live,
	 * not the leader. */
	{
		struct jd_resp *r = jd_request(b, "GET", "/nodes", NULL, NULL);
		ck_assert_int_eq(r->status, 200);
		ck_assert_msg(strstr(r->body, "\"alpha\"") != NULL, "%s",
		              r->body);
		jd_resp_free(r);
		ck_assert_int_eq(jd_sql_int(b, "SELECT count(*) FROM nodes "
		                            "WHERE name = 'alpha' AND dead"), 1);
		ck_assert(jd_wait_metric(b, "jobd_nodes", 1, 5000));
		ck_assert(jd_wait_metric(b, "jobd_leader", 1, 5000));
	}
	free(id);
	ck_assert_int_eq(jd_stop(b, 20000), 0);
	jd_free(b);
	jd_free(a);
}
END_TEST

/* A dead node is listed (GET /nodes) until the retention has passed, then
 * forgotten; a live one never is. */
START_TEST(test_dead_node_forgotten)
{
	char extra[256];
	struct jd_opts o = {.threads = 1, .extra = extra};
	jd *a, *b;

	snprintf(extra, sizeof(extra), "[store]\nnode = alpha\nlease = 2s\n"
	         "retention = 60s\n");
	a = jd_new(&o);
	ck_assert_ptr_nonnull(a);
	snprintf(extra, sizeof(extra), "[store]\nnode = bravo\nlease = 2s\n"
	         "retention = 60s\n");
	o.share_store = a;
	b = jd_new(&o);
	ck_assert_ptr_nonnull(b);
	start_pair(a, b);
	ck_assert(jd_wait_metric(b, "jobd_nodes", 2, 10000));
	ck_assert_int_eq(jd_kill9(a), 128 + 9);
	/* Dead after a lease, still listed... */
	for (int64_t t0 = jd_mono_ms(); jd_sql_int(b, "SELECT count(*) FROM "
	     "nodes WHERE name = 'alpha' AND dead") != 1; jd_pause_ms(100))
		ck_assert_msg(jd_mono_ms() - t0 < 20000, "alpha never dead");
	/* ...then gone once its last heartbeat is older than the retention
	 * (a minute: its heartbeat is moved back rather than waited for). */
	ck_assert_int_eq(jd_sql_exec(b, "UPDATE nodes SET seen_at = now() - "
	                             "interval '61 seconds' WHERE name = "
	                             "'alpha'"), 0);
	for (int64_t t0 = jd_mono_ms(); jd_sql_int(b, "SELECT count(*) FROM "
	     "nodes WHERE name = 'alpha'") != 0; jd_pause_ms(100))
		ck_assert_msg(jd_mono_ms() - t0 < 20000, "alpha never "
		              "forgotten");
	ck_assert_int_eq(jd_sql_int(b, "SELECT count(*) FROM nodes WHERE "
	                            "name = 'bravo'"), 1);
	ck_assert_int_eq(jd_stop(b, 20000), 0);
	jd_free(b);
	jd_free(a);
}
END_TEST

/* A node restarted under its name recovers its own interrupted jobs at
 * once (its lock proves the old run is gone), not after a lease; the
 * other node's running job is left alone. */
START_TEST(test_restarted_node_recovers_its_own)
{
	jd *a = node(NULL, "alpha", 1, "1h");
	jd *b = node(a, "bravo", 1, "1h");
	char *mine, *theirs;

	start_pair(a, b);
	theirs = submit(b, "{\"type\":\"sleep\",\"payload\":{\"seconds\":60}}");
	wait_attempt(b, theirs, "running", 10000);
	mine = submit(a, "{\"type\":\"sleep\",\"payload\":{\"seconds\":2}}");
	wait_attempt(a, mine, "running", 10000);
	ck_assert_int_eq(jd_kill9(a), 128 + 9);
	ck_assert_int_eq(jd_start(a), 0);
	/* Requeued by A's recovery and run again, long before the 1 h
	 * lease: attempt 2. */
	ck_assert_int_eq(wait_attempt(a, mine, "succeeded", 20000), 2);
	/* B's job was not touched. */
	ck_assert_int_eq(wait_attempt(b, theirs, "running", 1000), 1);
	free(mine);
	free(theirs);
	ck_assert_int_eq(jd_stop(a, 20000), 0);
	ck_assert_int_eq(jd_stop(b, 20000), 0);
	jd_free(b);
	jd_free(a);
}
END_TEST

/* DELETE on one node of a job running on another stops its attempt there
 * (within a heartbeat): the job ends cancelled. */
START_TEST(test_cancel_reaches_other_node)
{
	jd *a = node(NULL, "alpha", 1, "30s");
	jd *b = node(a, "bravo", 1, "30s");
	char *id, path[80];
	struct jd_resp *r;

	start_pair(a, b);
	id = submit(a, "{\"type\":\"sleep\",\"payload\":{\"seconds\":600}}");
	wait_attempt(a, id, "running", 10000);
	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = jd_request(b, "DELETE", path, json, NULL);
	ck_assert_int_eq(r->status, 202);
	jd_resp_free(r);
	/* The 600 s attempt was stopped on A, not waited for. */
	ck_assert_int_eq(wait_attempt(b, id, "cancelled", 15000), 1);
	ck_assert(jd_wait_metric(a, "jobd_workers_busy", 0, 5000));
	free(id);
	stop_pair(a, b);
}
END_TEST

/* A long-poll on one node for a job another node runs returns when the
 * job ends there, not at its timeout. */
START_TEST(test_long_poll_on_other_node)
{
	jd *a = node(NULL, "alpha", 1, "30s");
	jd *b = node(a, "bravo", 1, "30s");
	char *id, path[96];
	struct jd_resp *r;

	start_pair(a, b);
	id = submit(a, "{\"type\":\"sleep\",\"payload\":{\"seconds\":1}}");
	wait_attempt(a, id, "running", 10000);
	snprintf(path, sizeof(path), "/jobs/%s?wait=30", id);
	r = jd_request(b, "GET", path, NULL, NULL);
	ck_assert_int_eq(r->status, 200);
	/* At the timeout it would still say running. */
	ck_assert_str_eq(jd_resp_str(r, "status"), "succeeded");
	jd_resp_free(r);
	free(id);
	stop_pair(a, b);
}
END_TEST

/* A node frozen (SIGSTOP) longer than its lease while running a job: the
 * other node rescues and runs it (attempt 2); thawed, the frozen node finds
 * itself declared dead and stops its own attempt (self-fencing), whose late
 * end changes nothing.  The job's final state is written once. */
START_TEST(test_frozen_node_fences_itself)
{
	jd *a = node(NULL, "alpha", 1, "2s");
	jd *b = node(a, "bravo", 1, "2s");
	char *id, *log, path[80];
	struct jd_resp *r;
	int64_t t0;

	start_pair(a, b);
	id = submit(a, "{\"type\":\"sleep\",\"payload\":{\"seconds\":600}}");
	wait_attempt(a, id, "running", 10000);
	ck_assert_int_eq(kill(a->pid, SIGSTOP), 0);
	t0 = jd_mono_ms();
	while (jd_sql_int(b, "SELECT attempt FROM jobs j JOIN nodes n ON "
	                  "n.boot = j.node WHERE n.name = 'bravo' AND "
	                  "j.status = 'running'") != 2) {
		ck_assert_msg(jd_mono_ms() - t0 < 20000, "not rescued");
		jd_pause_ms(100);
	}
	ck_assert_int_eq(kill(a->pid, SIGCONT), 0);
	/* A stops its own (now stale) attempt instead of running 600 s. */
	log = jd_wait_log(a, "was declared dead", 10000);
	ck_assert_ptr_nonnull(log);
	free(log);
	ck_assert(jd_wait_metric(a, "jobd_workers_busy", 0, 10000));
	/* Its late end changed nothing: B's attempt 2 runs on. */
	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = jd_request(a, "GET", path, NULL, NULL);
	ck_assert_str_eq(jd_resp_str(r, "status"), "running");
	ck_assert_int_eq(jd_num(jd_json(r), "attempt", -1), 2);
	jd_resp_free(r);
	/* A is back in the list. */
	ck_assert(jd_wait_metric(b, "jobd_nodes", 2, 10000));
	free(id);
	stop_pair(a, b);
}
END_TEST

/* The leader is killed: the other node leads within a lease, and rescue
 * keeps working (a job of the dead leader runs again). */
START_TEST(test_leader_failover)
{
	jd *a = node(NULL, "alpha", 1, "2s");
	jd *b = node(a, "bravo", 1, "2s");
	char *id;
	int64_t t0;

	start_pair(a, b);
	ck_assert(jd_wait_metric(a, "jobd_leader", 1, 10000));
	ck_assert(jd_wait_metric(b, "jobd_leader", 0, 10000));
	id = submit(a, "{\"type\":\"sleep\",\"payload\":{\"seconds\":600}}");
	wait_attempt(a, id, "running", 10000);
	ck_assert_int_eq(jd_kill9(a), 128 + 9);
	t0 = jd_mono_ms();
	ck_assert(jd_wait_metric(b, "jobd_leader", 1, 20000));
	printf("leader killed -> the other node leads after %lld ms (lease "
	       "2 s)\n", (long long)(jd_mono_ms() - t0));
	while (jd_sql_int(b, "SELECT attempt FROM jobs WHERE status = "
	                  "'running' AND type = 'sleep'") != 2) {
		ck_assert_msg(jd_mono_ms() - t0 < 20000, "not rescued");
		jd_pause_ms(100);
	}
	ck_assert(jd_wait_metric(b, "jobd_nodes", 1, 10000));
	free(id);
	ck_assert_int_eq(jd_stop(b, 20000), 0);
	jd_free(b);
	jd_free(a);
}
END_TEST

/* Idle nodes that hear each other (LISTEN) do not look for work on a
 * timer: over a few seconds of an idle queue, no transaction at all. */
START_TEST(test_idle_nodes_do_not_poll)
{
	jd *a = node(NULL, "alpha", 1, "2s");
	jd *b = node(a, "bravo", 1, "2s");
	char *id;
	double ca, cb;

	start_pair(a, b);
	ck_assert(jd_wait_metric(a, "jobd_leader", 1, 10000));
	/* Some work first, so that both have claimed and gone quiet. */
	id = submit(b, "{\"type\":\"noop\"}");
	wait_attempt(b, id, "succeeded", 10000);
	free(id);
	jd_pause_ms(1500); /* let the last commits of that work land */
	ca = jd_metric(a, "jobd_store_commits_total");
	cb = jd_metric(b, "jobd_store_commits_total");
	/* An observation window, not a deadline: a writer polling once a
	 * second would commit about three times in it. */
	jd_pause_ms(3500);
	ck_assert_msg(jd_metric(a, "jobd_store_commits_total") == ca &&
	              jd_metric(b, "jobd_store_commits_total") == cb,
	              "idle writers committed: alpha %g -> %g, bravo %g -> %g",
	              ca, jd_metric(a, "jobd_store_commits_total"), cb,
	              jd_metric(b, "jobd_store_commits_total"));
	/* And they still hear of new work at once. */
	id = submit(a, "{\"type\":\"noop\"}");
	wait_attempt(b, id, "succeeded", 10000);
	free(id);
	stop_pair(a, b);
}
END_TEST

/* A delayed job submitted to a node that is not the leader, while the
 * leader's only worker is busy: the leader's timer makes it due and wakes
 * the other node, which runs it (no node polls, the non-leader keeps no
 * timer). */
START_TEST(test_delayed_job_wakes_other_node)
{
	jd *a = node(NULL, "alpha", 1, "2s");
	jd *b = node(a, "bravo", 1, "2s");
	char *busy, *id, q[256];

	start_pair(a, b);
	ck_assert(jd_wait_metric(a, "jobd_leader", 1, 10000));
	ck_assert(jd_wait_metric(b, "jobd_leader", 0, 10000));
	busy = submit(a, "{\"type\":\"sleep\",\"payload\":{\"seconds\":600}}");
	while (jd_sql_int(a, "SELECT count(*) FROM jobs j JOIN nodes n ON "
	                  "n.boot = j.node WHERE n.name = 'alpha' AND "
	                  "j.status = 'running' AND j.type = 'sleep'") != 1)
		jd_pause_ms(50);
	id = submit(b, "{\"type\":\"noop\",\"delay\":2}");
	ck_assert_int_eq(wait_attempt(b, id, "succeeded", 20000), 1);
	snprintf(q, sizeof(q), "SELECT count(*) FROM jobs j JOIN nodes n ON "
	         "n.boot = j.node WHERE n.name = 'bravo' AND j.id = '%s'", id);
	ck_assert_int_eq(jd_sql_int(b, q), 1);
	free(id);
	free(busy);
	stop_pair(a, b);
}
END_TEST

/* A node that cannot write its heartbeat for a whole lease (the nodes
 * table locked by an administrator, here) stops its attempts, claims
 * nothing until it can write again, then comes back under a new boot id;
 * the job is not lost and ends once. */
START_TEST(test_no_heartbeat_fences_node)
{
	jd *a = node(NULL, "alpha", 1, "2s");
	jd *b = node(a, "bravo", 1, "2s");
	char *id, *log, *boot0, *boot1;

	start_pair(a, b);
	id = submit(a, "{\"type\":\"sleep\",\"payload\":{\"seconds\":3}}");
	wait_attempt(a, id, "running", 10000);
	boot0 = jd_sql_text(a, "SELECT boot FROM nodes WHERE name = 'alpha'"
	                    " AND NOT dead");
	ck_assert_ptr_nonnull(boot0);
	/* Every heartbeat waits on the lock, and gives up (lock_timeout)
	 * for 5 s: longer than the 2 s lease. */
	ck_assert_int_eq(jd_sql_exec(a, "BEGIN; LOCK TABLE nodes IN ACCESS "
	                             "EXCLUSIVE MODE; SELECT pg_sleep(5); "
	                             "COMMIT"), 0);
	log = jd_wait_log(a, "could not write its heartbeat for the whole "
	                  "lease", 10000);
	ck_assert_ptr_nonnull(log);
	free(log);
	log = jd_wait_log(a, "registered again as boot id", 10000);
	ck_assert_ptr_nonnull(log);
	free(log);
	boot1 = jd_sql_text(a, "SELECT boot FROM nodes WHERE name = 'alpha'"
	                    " AND NOT dead");
	ck_assert_ptr_nonnull(boot1);
	ck_assert_str_ne(boot0, boot1);
	/* The stopped attempt was given back and ran again: one success. */
	wait_attempt(b, id, "succeeded", 30000);
	ck_assert_int_eq(jd_sql_int(a, "SELECT count(*) FROM jobs WHERE "
	                            "status = 'succeeded'"), 1);
	free(boot0);
	free(boot1);
	free(id);
	stop_pair(a, b);
}
END_TEST

/* A POST with Prefer: wait on node B whose job runs on node A (B's only
 * worker is busy): the client hangs up, and the job is cancelled there. */
START_TEST(test_disconnect_cancels_on_other_node)
{
	jd *a = node(NULL, "alpha", 1, "30s");
	jd *b = node(a, "bravo", 1, "30s");
	char *busy, *id, req[512];
	const char *body = "{\"type\":\"sleep\",\"payload\":{\"seconds\":600}}";
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd;

	start_pair(a, b);
	busy = submit(b, "{\"type\":\"sleep\",\"payload\":{\"seconds\":600}}");
	wait_attempt(b, busy, "running", 10000);
	snprintf(req, sizeof(req), "POST /jobs HTTP/1.1\r\nHost: x\r\n"
	         "Content-Type: application/json\r\nPrefer: wait=60\r\n"
	         "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)b->port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	              "connect: %s", strerror(errno));
	ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL),
	                 (ssize_t)strlen(req));
	/* Running on A, waited for on B. */
	for (int64_t t0 = jd_mono_ms();
	     jd_sql_int(a, "SELECT count(*) FROM jobs j JOIN nodes n ON "
	                "n.boot = j.node WHERE n.name = 'alpha' AND "
	                "j.status = 'running'") != 1;
	     jd_pause_ms(50))
		ck_assert_msg(jd_mono_ms() - t0 < 20000, "not running on alpha");
	ck_assert(jd_wait_metric(b, "jobd_waiters", 1, 10000));
	id = jd_sql_text(a, "SELECT j.id FROM jobs j JOIN nodes n ON "
	                 "n.boot = j.node WHERE n.name = 'alpha' AND "
	                 "j.status = 'running'");
	ck_assert_ptr_nonnull(id);
	close(fd);
	/* Cancelled on A (its 600 s attempt stopped), seen from both. */
	ck_assert_int_eq(wait_attempt(b, id, "cancelled", 20000), 1);
	ck_assert(jd_wait_metric(a, "jobd_workers_busy", 0, 10000));
	free(id);
	free(busy);
	stop_pair(a, b);
}
END_TEST

/* ---- a link that stalls ---- */

/* A TCP relay to PostgreSQL that can stall: while stalled it moves no
 * byte (what is sent waits in the sockets' buffers, acknowledged by TCP),
 * like a network that stopped delivering or a hung proxy; the connections
 * stay open, and flow again when it resumes. */
struct relay {
	int lfd, port, target;
	atomic_bool stalled, stop;
	pthread_t t;
};

struct pump {
	struct relay *r;
	int a, b;
};

static void *
pump_main(void *arg)
{
	struct pump *p = arg;
	char buf[16384];

	while (!atomic_load(&p->r->stop)) {
		struct pollfd f[2] = {{.fd = p->a, .events = POLLIN},
		                      {.fd = p->b, .events = POLLIN}};
		if (atomic_load(&p->r->stalled)) {
			jd_pause_ms(20);
			continue;
		}
		if (poll(f, 2, 50) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (f[i].revents == 0)
				continue;
			int from = i ? p->b : p->a, to = i ? p->a : p->b;
			ssize_t n = read(from, buf, sizeof(buf));
			if (n <= 0)
				goto out;
			for (ssize_t off = 0; off < n; ) {
				ssize_t w = write(to, buf + off, (size_t)(n - off));
				if (w <= 0)
					goto out;
				off += w;
			}
		}
	}
out:
	close(p->a);
	close(p->b);
	free(p);
	return NULL;
}

static void *
relay_main(void *arg)
{
	struct relay *r = arg;

	for (;;) {
		int c = accept(r->lfd, NULL, NULL);
		if (c < 0)
			return NULL; /* shut down */
		struct sockaddr_in sa = {.sin_family = AF_INET};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa.sin_port = htons((uint16_t)r->target);
		int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct pump *p = malloc(sizeof(*p));
		pthread_t t;
		if (u < 0 || p == NULL ||
		    connect(u, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			close(c);
			if (u >= 0)
				close(u);
			free(p);
			continue;
		}
		*p = (struct pump){r, c, u};
		if (pthread_create(&t, NULL, pump_main, p) != 0) {
			close(c);
			close(u);
			free(p);
			continue;
		}
		pthread_detach(t);
	}
}

static void
relay_start(struct relay *r, int target)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);

	memset(r, 0, sizeof(*r));
	r->target = target;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(r->lfd, 0);
	ck_assert_int_eq(bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(r->lfd, 64), 0);
	ck_assert_int_eq(getsockname(r->lfd, (struct sockaddr *)&sa, &len), 0);
	r->port = ntohs(sa.sin_port);
	ck_assert_int_eq(pthread_create(&r->t, NULL, relay_main, r), 0);
}

static void
relay_stop(struct relay *r)
{
	atomic_store(&r->stop, true);
	shutdown(r->lfd, SHUT_RDWR);
	pthread_join(r->t, NULL);
	close(r->lfd);
	jd_pause_ms(200); /* the pumps see stop within 50 ms and close */
}

/* d's config goes through the relay: its store URI's port replaced. */
static void
through_relay(jd *d, const struct relay *r)
{
	char *conf = jd_read_file(d->conf_path, NULL), from[32], to[32];
	char *at;
	FILE *f;

	ck_assert_ptr_nonnull(conf);
	snprintf(from, sizeof(from), ":%d/", r->target);
	snprintf(to, sizeof(to), ":%d/", r->port);
	at = strstr(conf, from);
	ck_assert_ptr_nonnull(at);
	f = fopen(d->conf_path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%.*s%s%s", (int)(at - conf), conf, to, at + strlen(from));
	ck_assert_int_eq(fclose(f), 0);
	free(conf);
}

/* The link between a node and PostgreSQL stalls (nothing delivered, the
 * connection open) while the node runs a job: its heartbeat gives up on
 * the unanswered statement, the node fences itself (stops its attempt),
 * the other node runs the job (attempt 2); when the link flows again, the
 * stalled node comes back under a new boot id and its late end changes
 * nothing. */
START_TEST(test_stalled_link_fences_node)
{
	jd *a = node(NULL, "alpha", 1, "2s");
	jd *b = node(a, "bravo", 1, "2s");
	struct relay r;
	const char *port = strstr(a->db_path, "127.0.0.1:");
	char *id, *log, *boot0, *boot1, path[80];
	struct jd_resp *resp;

	ck_assert_ptr_nonnull(port);
	relay_start(&r, atoi(port + strlen("127.0.0.1:")));
	through_relay(a, &r);
	start_pair(a, b);
	id = submit(a, "{\"type\":\"sleep\",\"payload\":{\"seconds\":600}}");
	wait_attempt(a, id, "running", 10000);
	boot0 = jd_sql_text(b, "SELECT boot FROM nodes WHERE name = 'alpha'"
	                    " AND NOT dead");
	ck_assert_ptr_nonnull(boot0);
	atomic_store(&r.stalled, true);
	log = jd_wait_log(a, "could not write its heartbeat for the whole "
	                  "lease", 15000);
	ck_assert_ptr_nonnull(log);
	free(log);
	/* A read on A gets an answer: 503 (its reader gives up on the
	 * stalled link), not a thread held for as long as the stall. */
	snprintf(path, sizeof(path), "/jobs/%s", id);
	resp = jd_request(a, "GET", path, NULL, NULL);
	ck_assert_msg(resp->status == 503, "GET on the stalled node: %ld %s",
	              resp->status, resp->body ? resp->body : "");
	jd_resp_free(resp);
	/* Rescued by the leader (B: A was marked dead), run by B. */
	for (int64_t t0 = jd_mono_ms();
	     jd_sql_int(b, "SELECT attempt FROM jobs j JOIN nodes n ON "
	                "n.boot = j.node WHERE n.name = 'bravo' AND "
	                "j.status = 'running'") != 2; jd_pause_ms(100))
		ck_assert_msg(jd_mono_ms() - t0 < 20000, "not rescued");
	atomic_store(&r.stalled, false);
	log = jd_wait_log(a, "registered again as boot id", 20000);
	ck_assert_ptr_nonnull(log);
	free(log);
	boot1 = jd_sql_text(b, "SELECT boot FROM nodes WHERE name = 'alpha'"
	                    " AND NOT dead");
	ck_assert_ptr_nonnull(boot1);
	ck_assert_str_ne(boot0, boot1);
	/* A stopped its attempt; its late end changed nothing. */
	ck_assert(jd_wait_metric(a, "jobd_workers_busy", 0, 10000));
	resp = jd_request(b, "GET", path, NULL, NULL);
	ck_assert_str_eq(jd_resp_str(resp, "status"), "running");
	ck_assert_int_eq(jd_num(jd_json(resp), "attempt", -1), 2);
	jd_resp_free(resp);
	free(boot0);
	free(boot1);
	free(id);
	ck_assert_int_eq(jd_stop(b, 20000), 0);
	ck_assert_int_eq(jd_stop(a, 20000), 0);
	relay_stop(&r);
	jd_free(b);
	jd_free(a);
}
END_TEST

/* ---- kill -9 rounds under load ---- */

#define LOAD_THREADS 64
#define MAX_IDS 300000
/* Acknowledged jobs a round may add (so that 200 rounds stay within
 * MAX_IDS, every acknowledged id checked): clients wait beyond it. */
#define ROUND_BUDGET 1400

struct load {
	int port[2];
	atomic_bool stop;
	pthread_mutex_t mu;
	char (*ids)[40];
	size_t n;
	atomic_long refused;
	atomic_size_t budget;     /* clients pause once n reaches it */
	pthread_t t[LOAD_THREADS];
};

struct loader {
	struct load *l;
	int which;
};

static struct loader loaders[LOAD_THREADS];

static void *
load_main(void *arg)
{
	struct loader *me = arg;
	struct load *l = me->l;
	jd_client *c = jd_client_new(l->port[me->which]);

	while (!atomic_load(&l->stop)) {
		pthread_mutex_lock(&l->mu);
		bool full = l->n >= atomic_load(&l->budget);
		pthread_mutex_unlock(&l->mu);
		if (full) {
			jd_pause_ms(5);
			continue;
		}
		struct jd_resp *r = jd_client_request(c, "POST", "/jobs", json,
		                                      "{\"type\":\"noop\"}");
		if (r->status == 202 && jd_resp_str(r, "id") != NULL) {
			pthread_mutex_lock(&l->mu);
			if (l->n < MAX_IDS)
				snprintf(l->ids[l->n++], 40, "%s",
				         jd_resp_str(r, "id"));
			pthread_mutex_unlock(&l->mu);
		} else if (r->status == 0) {
			atomic_fetch_add(&l->refused, 1); /* its node is down */
			jd_pause_ms(20);
		}
		jd_resp_free(r);
	}
	jd_client_free(c);
	return NULL;
}

static size_t
load_count(struct load *l)
{
	size_t n;

	pthread_mutex_lock(&l->mu);
	n = l->n;
	pthread_mutex_unlock(&l->mu);
	return n;
}

/* One of two nodes killed (SIGKILL) and restarted, round after round,
 * while 32 clients submit to both: every 202 is in the store, and every
 * job ends succeeded, once (fencing), none left queued or running. */
START_TEST(test_kill9_rounds_under_load)
{
	const char *e = getenv("JOBD_NODE_ROUNDS");
	const char *san = getenv("JOBD_SANITIZE");
	/* 20 rounds (make check-crash: 200); 5 under sanitizers, where the
	 * instrumented daemons' start-ups make each round several times
	 * longer and the fencing is the same code. */
	int rounds = e != NULL && atoi(e) > 0 ? atoi(e)
	             : san != NULL && *san != '\0' ? 5 : 20;
	jd *n[2];
	struct load *l = calloc(1, sizeof(*l));
	long long present, left = -1, retried;

	ck_assert_ptr_nonnull(l);
	l->ids = calloc(MAX_IDS, sizeof(*l->ids));
	ck_assert_ptr_nonnull(l->ids);
	pthread_mutex_init(&l->mu, NULL);
	n[0] = node(NULL, "alpha", 2, "2s");
	n[1] = node(n[0], "bravo", 2, "2s");
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(jd_start(n[i]), 0);
		l->port[i] = n[i]->port;
	}
	atomic_store(&l->budget, ROUND_BUDGET);
	for (int i = 0; i < LOAD_THREADS; i++) {
		loaders[i] = (struct loader){l, i % 2};
		ck_assert_int_eq(pthread_create(&l->t[i], NULL, load_main,
		                                &loaders[i]), 0);
	}
	for (int round = 0; round < rounds; round++) {
		jd *victim = n[round % 2];
		size_t before = load_count(l);
		atomic_store(&l->budget, before + ROUND_BUDGET);
		/* Until this round's load has reached the store. */
		while (load_count(l) < before + 200)
			jd_pause_ms(10);
		ck_assert_int_eq(jd_kill9(victim), 128 + 9);
		ck_assert_msg(jd_start(victim) == 0, "round %d: the node did "
		              "not restart", round);
	}
	atomic_store(&l->stop, true);
	for (int i = 0; i < LOAD_THREADS; i++)
		pthread_join(l->t[i], NULL);
	/* Every acknowledged id present. */
	present = jd_sql_count_ids(n[0], l->ids[0], sizeof(l->ids[0]), l->n);
	ck_assert_msg(l->n < MAX_IDS, "more acknowledged jobs than recorded");
	ck_assert_msg(present == (long long)l->n, "%lld of %zu acknowledged "
	              "jobs in the store", present, l->n);
	for (int64_t until = jd_mono_ms() + 60000; jd_mono_ms() < until;) {
		left = jd_sql_int(n[0], "SELECT count(*) FROM jobs WHERE "
		                  "status IN ('queued', 'running')");
		if (left == 0)
			break;
		jd_pause_ms(200);
	}
	ck_assert_msg(left == 0, "%lld jobs never ended", left);
	ck_assert_int_eq(jd_sql_int(n[0], "SELECT count(*) FROM jobs WHERE "
	                            "status <> 'succeeded'"), 0);
	retried = jd_sql_int(n[0], "SELECT count(*) FROM jobs WHERE attempt > 1");
	printf("%d kill -9 rounds of one of two nodes: %zu acknowledged, %lld "
	       "present, 0 lost, %lld ran again after a kill, %ld refused "
	       "while a node was down\n", rounds, l->n, present, retried,
	       atomic_load(&l->refused));
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(jd_stop(n[i], 20000), 0);
	}
	jd_free(n[1]);
	jd_free(n[0]);
	pthread_mutex_destroy(&l->mu);
	free(l->ids);
	free(l);
}
END_TEST

/* GET /nodes lists both, the older one the leader, with their running
 * jobs; /metrics says the same. */
START_TEST(test_get_nodes)
{
	jd *a = node(NULL, "alpha", 1, "30s");
	jd *b = node(a, "bravo", 1, "30s");
	struct jd_resp *r;
	cJSON *nodes, *n0, *n1;
	char *id;

	start_pair(a, b);
	id = submit(b, "{\"type\":\"sleep\",\"payload\":{\"seconds\":60}}");
	wait_attempt(b, id, "running", 10000);
	/* Each node's heartbeat has run once (jobd_nodes counts both). */
	ck_assert(jd_wait_metric(a, "jobd_nodes", 2, 10000));
	ck_assert(jd_wait_metric(b, "jobd_nodes", 2, 10000));
	ck_assert(jd_wait_metric(a, "jobd_leader", 1, 10000));
	ck_assert(jd_wait_metric(b, "jobd_leader", 0, 10000));
	r = jd_request(b, "GET", "/nodes", NULL, NULL);
	ck_assert_int_eq(r->status, 200);
	nodes = cJSON_GetObjectItem(jd_json(r), "nodes");
	ck_assert_int_eq(cJSON_GetArraySize(nodes), 2);
	n0 = cJSON_GetArrayItem(nodes, 0);
	n1 = cJSON_GetArrayItem(nodes, 1);
	ck_assert_str_eq(jd_str(n0, "name"), "alpha");
	ck_assert_str_eq(jd_str(n1, "name"), "bravo");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(n0, "leader")));
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(n1, "leader")));
	ck_assert_int_eq(jd_num(n0, "running", -1), 0);
	ck_assert_int_eq(jd_num(n1, "running", -1), 1);
	ck_assert_int_eq(strlen(jd_str(n0, "boot_id")), 16);
	ck_assert(jd_parse_time_ms(jd_str(n1, "heartbeat_at")) > 0);
	ck_assert(jd_parse_time_ms(jd_str(n1, "started_at")) > 0);
	jd_resp_free(r);
	free(id);
	stop_pair(a, b);
}
END_TEST

/* SQLite: the one node, this daemon, the leader. */
START_TEST(test_get_nodes_single)
{
	jd *d = jd_launch(NULL);
	struct jd_resp *r;
	cJSON *nodes, *n;

	ck_assert_ptr_nonnull(d);
	r = jd_request(d, "GET", "/nodes", NULL, NULL);
	ck_assert_int_eq(r->status, 200);
	nodes = cJSON_GetObjectItem(jd_json(r), "nodes");
	ck_assert_int_eq(cJSON_GetArraySize(nodes), 1);
	n = cJSON_GetArrayItem(nodes, 0);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(n, "leader")));
	ck_assert_int_eq(strlen(jd_str(n, "boot_id")), 16);
	ck_assert_int_eq(jd_num(n, "running", -1), 0);
	ck_assert_ptr_nonnull(jd_str(n, "name"));
	jd_resp_free(r);
	ck_assert(jd_metric(d, "jobd_leader") == 1);
	ck_assert(jd_metric(d, "jobd_nodes") == 1);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* Each writer counts what it does; on a shared store another node claims
 * and ends the jobs this one accepted.  The node that only takes
 * submissions must not count them queued for ever: its counts follow the
 * store's (every few heartbeats), so its store.max_queued admits again
 * once the other node has run them, and its /metrics says 0 queued. */
START_TEST(test_counts_follow_store)
{
	struct jd_opts oa = {.threads = 1, .extra = "[store]\nnode = alpha\n"
	                     "lease = 2s\nmax_queued = 20\n[workers]\n"
	                     "shutdown_grace = 1s\n"};
	jd *a, *b;
	char *busy, *id, q[256];
	struct jd_resp *r;
	const char *ct[] = {"Content-Type: application/json", NULL};

	a = jd_new(&oa);
	ck_assert_ptr_nonnull(a);
	b = node(a, "bravo", 2, "2s");
	start_pair(a, b);
	ck_assert(jd_wait_metric(a, "jobd_leader", 1, 10000));
	/* alpha's only worker is busy: bravo runs what alpha accepts */
	busy = submit(a, "{\"type\":\"sleep\",\"payload\":{\"seconds\":600}}");
	while (jd_sql_int(a, "SELECT count(*) FROM jobs j JOIN nodes n ON "
	                  "n.boot = j.node WHERE n.name = 'alpha' AND "
	                  "j.status = 'running' AND j.type = 'sleep'") != 1)
		jd_pause_ms(50);
	for (int i = 0; i < 19; i++) /* the sleep is the 20th */
		free(submit(a, "{\"type\":\"noop\"}"));
	while (jd_sql_int(a, "SELECT count(*) FROM jobs WHERE type = 'noop' "
	                  "AND status = 'succeeded'") != 19)
		jd_pause_ms(50);
	snprintf(q, sizeof(q), "SELECT count(*) FROM jobs j JOIN nodes n ON "
	         "n.boot = j.node WHERE n.name = 'bravo' AND j.type = 'noop'");
	ck_assert_int_eq(jd_sql_int(a, q), 19);
	/* Before: alpha counted 19 queued for ever, and refused the next
	 * job with 503 "queue full" on an empty queue. */
	ck_assert_msg(jd_wait_metric(a, "jobd_jobs{status=\"queued\"}", 0,
	                             15000), "alpha still counts %g queued",
	              jd_metric(a, "jobd_jobs{status=\"queued\"}"));
	r = jd_request(a, "POST", "/jobs", ct, "{\"type\":\"noop\"}");
	ck_assert_ptr_nonnull(r);
	ck_assert_msg(r->status == 202, "POST on alpha: %ld %s", r->status,
	              r->body);
	id = strdup(jd_resp_str(r, "id"));
	jd_resp_free(r);
	ck_assert_int_eq(wait_attempt(b, id, "succeeded", 10000), 1);
	free(id);
	free(busy);
	stop_pair(a, b);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("nodes");
	TCase *tc = tcase_create("nodes");

	tcase_set_timeout(tc, 600);
	if (!jd_store_is_pg()) {
		tcase_add_test(tc, test_get_nodes_single);
		suite_add_tcase(s, tc);
		return s;
	}
	/* JOBD_NODES_ONLY=test_name runs that test alone. */
#define ADD(t) do { const char *only = getenv("JOBD_NODES_ONLY"); \
		if (only == NULL || strcmp(only, #t) == 0) \
			tcase_add_test(tc, t); } while (0)
	ADD(test_get_nodes);
	ADD(test_cancel_reaches_other_node);
	ADD(test_long_poll_on_other_node);
	ADD(test_frozen_node_fences_itself);
	ADD(test_leader_failover);
	ADD(test_kill9_rounds_under_load);
	ADD(test_same_node_name_refused);
	ADD(test_work_spreads_over_nodes);
	ADD(test_dead_node_rescued);
	ADD(test_restarted_node_recovers_its_own);
	ADD(test_idle_nodes_do_not_poll);
	ADD(test_delayed_job_wakes_other_node);
	ADD(test_no_heartbeat_fences_node);
	ADD(test_disconnect_cancels_on_other_node);
	ADD(test_dead_node_forgotten);
	ADD(test_stalled_link_fences_node);
	ADD(test_counts_follow_store);
#undef ADD
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	if (jd_global_init() != 0)
		return 1;
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
