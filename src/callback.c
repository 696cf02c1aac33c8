/*
 * callback.c - the outbox delivery thread (DESIGN §2.1).
 *
 * One thread, one libcurl multi handle.  The thread claims due outbox rows
 * through the writer (a WOP_OUTBOX_CLAIM op, answered after its commit),
 * reads each job as GET /jobs/<id> would show it (store_get + job_to_json:
 * the API's own rendering), signs it (Standard Webhooks), and runs the
 * POSTs side by side; each finished transfer's outcome goes back to the
 * writer (WOP_OUTBOX_DONE, not waited for).  A row is claimed with a
 * token of its own (this run's id and a count) and a lease (callbacks.timeout + store lease): a node that
 * dies with rows claimed leaves them to another after the lease; a daemon
 * alone on its store takes every claim back when it starts.
 *
 * The thread sleeps in curl_multi_poll() until a transfer moves, the
 * earliest next_at of a pending row comes, the writer answers its claim,
 * or callback_kick() wakes it (curl_multi_wakeup, thread-safe).  A claim
 * is not waited for: transfers go on while the writer works.  No busy polling; with a shared store
 * it also looks once a second (rows of other nodes: a rescue, a dead
 * claimer).
 *
 * LOCKING: mu guards the claim op's answer (claim_done) between the writer
 * thread, which answers, and the delivery thread, which looks at it (and
 * waits on cond for it when stopping).
 * kicked and stopping are atomics.  Everything else belongs to the
 * delivery thread once started.
 */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "callback.h"
#include "clock.h"
#include "err.h"
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "version.h"

#define MAX_INFLIGHT 32          /* transfers at once */
#define BACKOFF_MAX_MS (3600LL * 1000)
#define SHARED_LOOK_MS 1000      /* a shared store: look this often */
#define FAILED_CLAIM_WAIT_MS 1000

struct transfer {
	CURL *easy;
	char id[UUID_STR_LEN];
	char claim[CLAIM_TOKEN_MAX]; /* the row's claim */
	int attempts;                /* before this one */
	char *body;
	struct curl_slist *headers;
	char errbuf[CURL_ERROR_SIZE];
};

struct callback {
	writer *w;
	store *st;
	const struct config *cfg;
	unsigned char key[CALLBACK_KEY_MAX];
	size_t keylen;
	bool sign;
	unsigned long long nclaims;  /* claims made: each its own token */
	bool shared;
	/* [callbacks] allow is set: this daemon takes callback_urls, so it
	 * looks for rows after commits and, shared, once a second; else only
	 * at start and when a retry it knows of comes due (rows another
	 * config left behind) */
	bool active;
	CURLM *multi;
	pthread_t thread;
	bool started;
	atomic_bool kicked, stopping;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	/* The claim op in flight (claim_pending: submitted, not yet taken
	 * back by the thread); claim_done is set by the writer's answer. */
	struct writer_op claim_op;
	bool claim_pending;
	bool claim_done;             /* guarded by mu */
	struct transfer *xfers[MAX_INFLIGHT];
	int ninflight;
};

/* ---- the secret and the signature ---- */

int
callback_secret_decode(const char *secret, unsigned char key[CALLBACK_KEY_MAX],
                       size_t *keylen)
{
	unsigned char buf[CALLBACK_KEY_MAX + 3];
	const char *b64;
	size_t n, pad = 0;
	int got;

	if (strncmp(secret, "whsec_", 6) != 0)
		return JOBD_EINVAL;
	b64 = secret + 6;
	n = strlen(b64);
	if (n == 0 || n % 4 != 0 || n / 4 * 3 > sizeof(buf))
		return JOBD_EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = b64[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		          (c >= '0' && c <= '9') || c == '+' || c == '/';
		if (c == '=' && i >= n - 2) {
			pad++;
			continue;
		}
		if (!ok || pad > 0)
			return JOBD_EINVAL;
	}
	got = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)n);
	if (got < 0 || (size_t)got < pad || (size_t)got - pad == 0 ||
	    (size_t)got - pad > CALLBACK_KEY_MAX)
		return JOBD_EINVAL;
	*keylen = (size_t)got - pad;
	memcpy(key, buf, *keylen);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

int
callback_secret_check(const char *secret, char *err, size_t errlen)
{
	unsigned char key[CALLBACK_KEY_MAX];
	size_t n;

	if (strncmp(secret, "whsec_", 6) != 0)
		return jobd_seterr(err, errlen, JOBD_EINVAL, "must start with "
		                   "\"whsec_\" (then the key in base64)");
	if (callback_secret_decode(secret, key, &n) != 0)
		return jobd_seterr(err, errlen, JOBD_EINVAL, "the text after "
		                   "\"whsec_\" must be standard base64 of 1 to "
		                   "%d bytes", CALLBACK_KEY_MAX);
	OPENSSL_cleanse(key, sizeof(key));
	return 0;
}

int
callback_sign(const unsigned char *key, size_t keylen, const char *id,
              int64_t timestamp, const char *body, size_t bodylen,
              char out[CALLBACK_SIGNATURE_MAX])
{
	char head[UUID_STR_LEN + 64];
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	int n = snprintf(head, sizeof(head), "%.40s.%lld.", id,
	                 (long long)timestamp);
	size_t len = (size_t)n + bodylen;
	unsigned char *msg = malloc(len ? len : 1);

	if (msg == NULL)
		return JOBD_ENOMEM;
	memcpy(msg, head, (size_t)n);
	memcpy(msg + n, body, bodylen);
	if (HMAC(EVP_sha256(), key, (int)keylen, msg, len, mac,
	         &maclen) == NULL) {
		free(msg);
		return JOBD_ENOMEM;
	}
	free(msg);
	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)maclen);
	return 0;
}

bool
callback_url_allowed(const char *allow, const char *url)
{
	const char *p = allow;

	while (p != NULL && *p != '\0') {
		size_t k;
		p += strspn(p, " \t");
		k = strcspn(p, " \t");
		if (k > 0 && strncmp(url, p, k) == 0)
			return true;
		p += k;
	}
	return false;
}

/* ---- the thread ---- */

callback *
callback_new(writer *w, store *st, const struct config *cfg)
{
	callback *cb = calloc(1, sizeof(*cb));

	if (cb == NULL)
		return NULL;
	/* (Before any other thread uses libcurl: main calls this early.) */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	cb->w = w;
	cb->st = st;
	cb->cfg = cfg;
	cb->shared = store_is_shared(st);
	cb->active = cfg->callbacks.allow != NULL;
	if (cfg->callbacks.secret != NULL) {
		if (callback_secret_decode(cfg->callbacks.secret, cb->key,
		                           &cb->keylen) != 0) {
			free(cb);
			return NULL;
		}
		cb->sign = true;
	}
	pthread_mutex_init(&cb->mu, NULL);
	clock_cond_init(&cb->cond);
	cb->multi = curl_multi_init();
	if (cb->multi == NULL) {
		callback_free(cb);
		return NULL;
	}
	return cb;
}

void
callback_kick(void *arg)
{
	callback *cb = arg;

	if (cb == NULL || !cb->active)
		return;
	atomic_store(&cb->kicked, true);
	curl_multi_wakeup(cb->multi);
}

static void
claim_answered(struct writer_op *op, void *arg)
{
	callback *cb = arg;

	(void)op;
	/* Woken under the mutex: once it is released, the delivery
	 * thread may see claim_done, end, and be freed (callback_free). */
	pthread_mutex_lock(&cb->mu);
	cb->claim_done = true;
	pthread_cond_signal(&cb->cond);
	curl_multi_wakeup(cb->multi);
	pthread_mutex_unlock(&cb->mu);
}

static size_t
discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * nmemb;
}

static void
transfer_free(struct transfer *t)
{
	if (t == NULL)
		return;
	if (t->easy != NULL)
		curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->headers);
	free(t->body);
	free(t);
}

/* Adds a header line to t (false when out of memory). */
static bool
add_header(struct transfer *t, const char *fmt, const char *a,
           long long b)
{
	char line[160];
	struct curl_slist *l;

	if (a != NULL)
		snprintf(line, sizeof(line), fmt, a);
	else
		snprintf(line, sizeof(line), fmt, b);
	l = curl_slist_append(t->headers, line);
	if (l == NULL)
		return false;
	t->headers = l;
	return true;
}

/*
 * Starts the POST of a claimed row.  0, or an error for a row that cannot
 * be sent (its job is gone: JOBD_ENOTFOUND; out of memory; a store read
 * that failed), with the reason in err.
 */
static int
transfer_start(callback *cb, const struct store_outbox_row *row,
               const char *claim, char *err, size_t errlen)
{
	struct transfer *t = calloc(1, sizeof(*t));
	struct job job;
	int64_t ts = clock_now_ms() / 1000;
	char sig[CALLBACK_SIGNATURE_MAX];
	size_t n;
	int rc;

	job_init(&job);
	if (t == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	memcpy(t->id, row->id, sizeof(t->id));
	snprintf(t->claim, sizeof(t->claim), "%s", claim);
	t->attempts = row->attempts;
	rc = store_get(cb->st, row->id, &job, err, errlen);
	if (rc != 0)
		goto out;
	/* The body of GET /jobs/<id>: the API's rendering, and its
	 * newline. */
	t->body = job_to_json(&job);
	rc = JOBD_ENOMEM;
	if (t->body == NULL)
		goto nomem;
	n = strlen(t->body);
	char *more = realloc(t->body, n + 2);
	if (more == NULL)
		goto nomem;
	t->body = more;
	memcpy(t->body + n, "\n", 2);
	n++;
	if (!add_header(t, "Content-Type: application/json", "", 0) ||
	    !add_header(t, "webhook-id: %s", row->id, 0) ||
	    !add_header(t, "webhook-timestamp: %lld", NULL, ts) ||
	    !add_header(t, "User-Agent: jobd/%s", JOBD_VERSION, 0) ||
	    !add_header(t, "Expect:", "", 0))
		goto nomem;
	if (cb->sign) {
		if (callback_sign(cb->key, cb->keylen, row->id, ts, t->body, n,
		                  sig) != 0 ||
		    !add_header(t, "webhook-signature: %s", sig, 0))
			goto nomem;
	}
	t->easy = curl_easy_init();
	if (t->easy == NULL)
		goto nomem;
	curl_easy_setopt(t->easy, CURLOPT_URL, row->url);
	curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(t->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION, 0L);
	/* No proxy, whatever the environment says. */
	curl_easy_setopt(t->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(t->easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS,
	                 (long)cb->cfg->callbacks.timeout_ms);
	curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body);
	curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE,
	                 (curl_off_t)n);
	curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
	if (curl_multi_add_handle(cb->multi, t->easy) != CURLM_OK)
		goto nomem;
	for (int i = 0; i < MAX_INFLIGHT; i++)
		if (cb->xfers[i] == NULL) {
			cb->xfers[i] = t;
			break;
		}
	cb->ninflight++;
	t = NULL;
	rc = 0;
	goto out;
nomem:
	rc = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
out:
	job_clear(&job);
	transfer_free(t);
	return rc;
}

/*
 * The outcome of one delivery (ok, or the reason in why) as the row's new
 * state in d; counts it.
 */
static void
settle(callback *cb, const char *id, const char *claim, int attempts, bool ok,
       const char *why, struct writer_outbox_done *d)
{
	memset(d, 0, sizeof(*d));
	memcpy(d->id, id, sizeof(d->id));
	snprintf(d->claim, sizeof(d->claim), "%s", claim);
	d->attempts = attempts + 1;
	if (ok) {
		d->status = OUTBOX_DELIVERED;
		metrics_callback(0);
		return;
	}
	d->last_error = strdup(why);
	if (d->attempts >= cb->cfg->callbacks.max_attempts) {
		d->status = OUTBOX_FAILED;
		metrics_callback(2);
		log_warn("callback", "job %s: callback failed after %d "
		         "attempt(s): %s", id, d->attempts, why);
		return;
	}
	d->status = OUTBOX_PENDING;
	d->next_at_us = clock_now_us() + 1000 *
	    backoff_jitter_ms(d->attempts, cb->cfg->callbacks.backoff_base_ms,
	                      BACKOFF_MAX_MS);
	metrics_callback(1);
}

/* Hands outcomes to the writer (taking the array); lost when it is gone
 * (the rows stay claimed until their lease runs out).  Moves *next_us to
 * the earliest retry among them. */
static void
write_back(callback *cb, struct writer_outbox_done *done, size_t n,
           int64_t *next_us)
{
	struct writer_op *op;

	for (size_t i = 0; i < n; i++)
		if (done[i].status == OUTBOX_PENDING &&
		    (*next_us < 0 || done[i].next_at_us < *next_us))
			*next_us = done[i].next_at_us;

	if (n == 0) {
		free(done);
		return;
	}
	op = malloc(sizeof(*op));
	if (op == NULL) {
		for (size_t i = 0; i < n; i++)
			free(done[i].last_error);
		free(done);
		return;
	}
	writer_op_init(op, WOP_OUTBOX_DONE);
	op->outbox_done = done;
	op->noutbox_done = n;
	if (writer_submit(cb->w, op) != 0) {
		writer_op_clear(op);
		free(op);
	}
}

/* Asks the writer to claim due rows (answered by claim_answered, while
 * the thread goes on with its transfers).  false when the writer is not
 * running. */
static bool
claim_submit(callback *cb, bool release)
{
	struct writer_op *op = &cb->claim_op;
	int64_t now = clock_now_us();
	int64_t lease_ms = cb->cfg->callbacks.timeout_ms +
	                   cb->cfg->store.lease_ms;

	writer_op_init(op, WOP_OUTBOX_CLAIM);
	/* A token per claim: a row given back and claimed again (its job
	 * retried and ended again) never takes a late outcome of the
	 * delivery before. */
	snprintf(op->claim, sizeof(op->claim), "%s-cb%llu",
	         writer_boot_id(cb->w), ++cb->nclaims);
	op->outbox_req.now_us = now;
	op->outbox_req.until_us = now + lease_ms * 1000;
	op->outbox_req.limit = (size_t)(MAX_INFLIGHT - cb->ninflight);
	op->outbox_req.release = release && !cb->shared;
	op->outbox_next_us = -1;
	op->done = claim_answered;
	op->arg = cb;
	pthread_mutex_lock(&cb->mu);
	cb->claim_done = false;
	pthread_mutex_unlock(&cb->mu);
	if (writer_submit(cb->w, op) != 0) {
		writer_op_clear(op);
		return false;
	}
	cb->claim_pending = true;
	return true;
}

/* Whether the claim in flight has been answered (then the thread takes
 * it back). */
static bool
claim_answered_yet(callback *cb)
{
	bool done;

	pthread_mutex_lock(&cb->mu);
	done = cb->claim_done;
	pthread_mutex_unlock(&cb->mu);
	return done;
}

/* Takes the answered claim back: starts the transfers of the rows
 * claimed (or, stopping, gives them back).  Returns the time of the
 * earliest pending row left (µs; -1 none). */
static int64_t
claim_taken(callback *cb, bool stopping)
{
	struct writer_op *op = &cb->claim_op;
	struct writer_outbox_done *bad = NULL;
	size_t nbad = 0;
	int64_t now = clock_now_us(), next;

	cb->claim_pending = false;
	if (op->rc != 0) {
		log_warn("callback", "claim of due callbacks failed: %s",
		         op->err);
		writer_op_clear(op);
		return now + FAILED_CLAIM_WAIT_MS * 1000;
	}
	next = op->outbox_next_us;
	/* Due rows it could not take (another node's claim was being
	 * written): look again a little later, not in a loop. */
	if (op->noutbox_rows == 0 && next >= 0 && next <= now)
		next = now + 200 * 1000;
	if (op->noutbox_rows > 0)
		bad = calloc(op->noutbox_rows, sizeof(*bad));
	for (size_t i = 0; i < op->noutbox_rows; i++) {
		const struct store_outbox_row *row = &op->outbox_rows[i];
		char err[256];
		int rc;
		if (stopping) {
			/* Given back as it was: due now, uncounted. */
			if (bad != NULL) {
				struct writer_outbox_done *d = &bad[nbad++];
				memcpy(d->id, row->id, sizeof(d->id));
				snprintf(d->claim, sizeof(d->claim), "%s",
				         op->claim);
				d->status = OUTBOX_PENDING;
				d->attempts = row->attempts;
				d->next_at_us = now;
			}
			continue;
		}
		/* (allow may have narrowed since the job was submitted) */
		if (!callback_url_allowed(cb->cfg->callbacks.allow, row->url)) {
			log_warn("callback", "job %s: %s is not allowed by "
			         "[callbacks] allow (any more): failed unsent",
			         row->id, row->url);
			if (bad != NULL) {
				struct writer_outbox_done *d = &bad[nbad++];
				memcpy(d->id, row->id, sizeof(d->id));
				snprintf(d->claim, sizeof(d->claim), "%s",
				         op->claim);
				d->status = OUTBOX_FAILED;
				d->attempts = row->attempts;
				d->last_error = strdup("not allowed by "
				                       "[callbacks] allow");
				metrics_callback(2);
			}
			continue;
		}
		rc = transfer_start(cb, row, op->claim, err, sizeof(err));
		if (rc == 0)
			continue;
		/* Not sent: counts as a failed attempt (a job purged
		 * meanwhile takes its row with it). */
		log_warn("callback", "job %s: cannot send its callback: %s",
		         row->id, err);
		if (bad != NULL)
			settle(cb, row->id, op->claim, row->attempts, false, err,
			       &bad[nbad++]);
	}
	write_back(cb, bad, nbad, &next);
	writer_op_clear(op);
	return next;
}

/* Collects finished transfers and writes their outcomes back; moves
 * *next_us to the earliest retry. */
static void
collect(callback *cb, int64_t *next_us)
{
	struct writer_outbox_done *done = NULL;
	size_t n = 0;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(cb->multi, &left)) != NULL) {
		struct transfer *t = NULL;
		long code = 0;
		char why[CURL_ERROR_SIZE + 64];
		bool ok;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		ok = m->data.result == CURLE_OK && code >= 200 && code < 300;
		if (m->data.result != CURLE_OK)
			snprintf(why, sizeof(why), "%s", t->errbuf[0] ? t->errbuf
			         : curl_easy_strerror(m->data.result));
		else if (code >= 300 && code < 400)
			snprintf(why, sizeof(why), "HTTP %ld (redirects are not "
			         "followed)", code);
		else
			snprintf(why, sizeof(why), "HTTP %ld", code);
		if (done == NULL)
			done = calloc(MAX_INFLIGHT, sizeof(*done));
		if (done != NULL && n < MAX_INFLIGHT)
			settle(cb, t->id, t->claim, t->attempts, ok, why,
			       &done[n++]);
		curl_multi_remove_handle(cb->multi, t->easy);
		for (int i = 0; i < MAX_INFLIGHT; i++)
			if (cb->xfers[i] == t)
				cb->xfers[i] = NULL;
		cb->ninflight--;
		transfer_free(t);
	}
	write_back(cb, done, n, next_us);
}

/* At a stop: the deliveries in flight are given back, due now and their
 * attempt not counted, so that the next daemon (this one restarted, or
 * another node) sends them without waiting for the claims' lease. */
static void
give_back(callback *cb)
{
	struct writer_outbox_done *done;
	size_t n = 0;
	int64_t now = clock_now_us(), ignored = -1;

	if (cb->ninflight == 0)
		return;
	done = calloc(MAX_INFLIGHT, sizeof(*done));
	if (done == NULL)
		return;
	for (int i = 0; i < MAX_INFLIGHT; i++) {
		const struct transfer *t = cb->xfers[i];
		if (t == NULL)
			continue;
		memcpy(done[n].id, t->id, sizeof(done[n].id));
		memcpy(done[n].claim, t->claim, sizeof(done[n].claim));
		done[n].status = OUTBOX_PENDING;
		done[n].attempts = t->attempts;
		done[n].next_at_us = now;
		n++;
	}
	write_back(cb, done, n, &ignored);
}

static void *
run(void *arg)
{
	callback *cb = arg;
	sigset_t set;
	int64_t next_us = 0;   /* look at once: rows left by a last run */
	bool first = true, kicked = false;

	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_setname_np(pthread_self(), "jobd-callback");
	while (!atomic_load(&cb->stopping)) {
		int64_t now = clock_now_us(), wait_ms;
		int running = 0;
		/* (a kick during a claim asks for another after it) */
		kicked = atomic_exchange(&cb->kicked, false) || kicked;
		if (cb->claim_pending && claim_answered_yet(cb)) {
			next_us = claim_taken(cb, false);
			now = clock_now_us();
		}
		if (!cb->claim_pending && cb->ninflight < MAX_INFLIGHT &&
		    (kicked || (next_us >= 0 && next_us <= now))) {
			kicked = false;
			if (claim_submit(cb, first))
				first = false;
			else
				next_us = now + FAILED_CLAIM_WAIT_MS * 1000;
		}
		curl_multi_perform(cb->multi, &running);
		collect(cb, &next_us);
		wait_ms = next_us < 0 ? 60000 : next_us <= now ? 0
		        : (next_us - now + 999) / 1000;
		if (cb->shared && cb->active && wait_ms > SHARED_LOOK_MS) {
			wait_ms = SHARED_LOOK_MS;
			if (next_us < 0 || next_us > now + SHARED_LOOK_MS * 1000)
				next_us = now + SHARED_LOOK_MS * 1000;
		}
		if (wait_ms > 60000)
			wait_ms = 60000;
		/* A claim in flight, or every slot busy: the answer or the
		 * transfers wake it. */
		if ((cb->claim_pending || cb->ninflight >= MAX_INFLIGHT) &&
		    wait_ms < 1000)
			wait_ms = 1000;
		curl_multi_poll(cb->multi, NULL, 0, (int)wait_ms, NULL);
	}
	/* The claim in flight is answered (the writer stops after this
	 * thread): its rows go back as they were. */
	if (cb->claim_pending) {
		pthread_mutex_lock(&cb->mu);
		while (!cb->claim_done)
			pthread_cond_wait(&cb->cond, &cb->mu);
		pthread_mutex_unlock(&cb->mu);
		claim_taken(cb, true);
	}
	give_back(cb);
	return NULL;
}

int
callback_start(callback *cb)
{
	if (pthread_create(&cb->thread, NULL, run, cb) != 0)
		return JOBD_ESYS;
	cb->started = true;
	return 0;
}

void
callback_stop(callback *cb)
{
	if (cb == NULL || !cb->started)
		return;
	atomic_store(&cb->stopping, true);
	curl_multi_wakeup(cb->multi);
	pthread_join(cb->thread, NULL);
	cb->started = false;
}

void
callback_free(callback *cb)
{
	if (cb == NULL)
		return;
	callback_stop(cb);
	for (int i = 0; i < MAX_INFLIGHT; i++)
		if (cb->xfers[i] != NULL) {
			curl_multi_remove_handle(cb->multi, cb->xfers[i]->easy);
			transfer_free(cb->xfers[i]);
		}
	if (cb->multi != NULL)
		curl_multi_cleanup(cb->multi);
	pthread_cond_destroy(&cb->cond);
	pthread_mutex_destroy(&cb->mu);
	OPENSSL_cleanse(cb->key, sizeof(cb->key));
	free(cb);
}
