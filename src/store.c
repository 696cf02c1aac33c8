/*
 * store.c - picks the store backend for a path and forwards every call to
 * its operations table.
 */
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "store.h"
#include "store_backend.h"
#include "store_pg.h"

struct store {
	const struct store_ops *ops;
	void *impl;
};

/* A libpq URI selects the PostgreSQL store; anything else is a file. */
static bool
store_is_pg(const char *path)
{
	return strncmp(path, "postgresql://", 13) == 0 ||
	       strncmp(path, "postgres://", 11) == 0;
}

/* Query parameters of a libpq URI whose values are shown as they are;
 * every other value (password=, passw%6Frd=, sslpassword=, ...) is
 * "***". */
static bool
shown_param(const char *key, size_t n)
{
	static const char *const shown[] = {
		"host", "hostaddr", "port", "dbname", "user", "sslmode",
		"connect_timeout", "application_name", "target_session_attrs",
		"keepalives", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "options", NULL,
	};

	for (int i = 0; shown[i] != NULL; i++)
		if (strlen(shown[i]) == n && strncmp(shown[i], key, n) == 0)
			return true;
	return false;
}

void
store_display(const char *path, char *buf, size_t len)
{
	const char *p, *at, *colon, *q;
	size_t used = 0;

	snprintf(buf, len, "%s", path);
	if (!store_is_pg(path) || len == 0)
		return;
	/* scheme://user:SECRET@host... */
	p = strstr(path, "://") + 3;
	q = p + strcspn(p, "?");
	/* (the last '@': an unencoded one inside the password stays hidden) */
	at = memrchr(p, '@', (size_t)(q - p));
	colon = at != NULL ? memchr(p, ':', (size_t)(at - p)) : NULL;
	if (colon != NULL)
		used = (size_t)snprintf(buf, len, "%.*s:***%.*s",
		                        (int)(colon - path), path,
		                        (int)(q - at), at);
	else
		used = (size_t)snprintf(buf, len, "%.*s", (int)(q - path), path);
	/* ...?key=value&...: values of keys not known harmless hidden. */
	while (*q != '\0' && used < len) {
		const char *key = q + 1, *eq, *end;
		end = key + strcspn(key, "&");
		eq = memchr(key, '=', (size_t)(end - key));
		if (eq != NULL && !shown_param(key, (size_t)(eq - key)))
			used += (size_t)snprintf(buf + used, len - used,
			                         "%c%.*s=***", *q,
			                         (int)(eq - key), key);
		else
			used += (size_t)snprintf(buf + used, len - used,
			                         "%c%.*s", *q,
			                         (int)(end - key), key);
		q = end;
	}
}

int
store_check_path(const char *path, char *err, size_t errlen)
{
	char *copy;
	const char *dir;
	struct stat sb;
	int rc = 0;

	if (store_is_pg(path))
		return store_pg_check_uri(path, err, errlen);
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		return jobd_seterr(err, errlen, JOBD_EINVAL, "%s is a directory; "
		                   "name a file in it (e.g. %s/jobs.db)", path,
		                   path);
	copy = strdup(path);
	if (copy == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	dir = dirname(copy);
	if (stat(dir, &sb) != 0)
		rc = jobd_seterr(err, errlen, JOBD_ESYS, "the store's directory "
		                 "%s does not exist: create it (mkdir -p %s, "
		                 "writable only by the user jobd runs as) or set "
		                 "[store] path: %s", dir, dir, strerror(errno));
	else if (!S_ISDIR(sb.st_mode))
		rc = jobd_seterr(err, errlen, JOBD_EINVAL, "%s is not a "
		                 "directory", dir);
	free(copy);
	return rc;
}

int
store_open(const char *path, const struct store_options *opt, store **out,
           char *err, size_t errlen)
{
	const struct store_ops *ops = store_is_pg(path) ? &store_pg_ops
	                                                : &store_sqlite_ops;
	store *st;
	int rc;

	rc = store_check_path(path, err, errlen);
	if (rc != 0)
		return rc;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	st->ops = ops;
	rc = ops->open(path, opt, &st->impl, err, errlen);
	if (rc != 0) {
		free(st);
		return rc;
	}
	*out = st;
	return 0;
}

void
store_close(store *st)
{
	if (st == NULL)
		return;
	st->ops->close(st->impl);
	free(st);
}


bool store_is_shared(store *st)
{ return st->ops->shared; }

int store_begin(store *st, char *err, size_t errlen)
{ return st->ops->begin(st->impl, err, errlen); }

int store_commit(store *st, char *err, size_t errlen)
{ return st->ops->commit(st->impl, err, errlen); }

void store_rollback(store *st)
{ st->ops->rollback(st->impl); }

/* The callback_url of jobs just inserted: a statement of its own (rare),
 * before anything else may end the job. */
static int
set_callbacks(store *st, const struct job *jobs, size_t n, char *err,
              size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		int rc;
		if (jobs[i].callback_url == NULL)
			continue;
		rc = st->ops->set_callback(st->impl, jobs[i].id,
		                           jobs[i].callback_url, err, errlen);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int store_insert(store *st, const struct job *job, char *err, size_t errlen)
{
	int rc = st->ops->insert(st->impl, job, err, errlen);

	return rc != 0 ? rc : set_callbacks(st, job, 1, err, errlen);
}

int
store_insert_many(store *st, const struct job *jobs, size_t n, char *err,
                  size_t errlen)
{
	if (st->ops->insert_many != NULL) {
		int rc = st->ops->insert_many(st->impl, jobs, n, err, errlen);
		return rc != 0 ? rc : set_callbacks(st, jobs, n, err, errlen);
	}
	for (size_t i = 0; i < n; i++) {
		int rc = store_insert(st, &jobs[i], err, errlen);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int
store_outbox_claim(store *st, const struct store_outbox_claim_req *req,
                   struct store_outbox_row **out, size_t *nout,
                   int64_t *next_us, char *err, size_t errlen)
{
	return st->ops->outbox_claim(st->impl, req, out, nout, next_us, err,
	                             errlen);
}

int
store_outbox_done(store *st, const char *id, const char *claim, int status,
                  int attempts, int64_t next_at_us, const char *last_error,
                  char *err, size_t errlen)
{
	return st->ops->outbox_done(st->impl, id, claim, status, attempts,
	                            next_at_us, last_error, err, errlen);
}

int store_find_idem(store *st, const char *key, struct job *out, char *err,
                    size_t errlen)
{ return st->ops->find_idem(st->impl, key, out, err, errlen); }

int store_claim(store *st, const struct store_claim_req *req,
                struct job **out, size_t *nout, char *err, size_t errlen)
{ return st->ops->claim(st->impl, req, out, nout, err, errlen); }

/* A later answer, waited for. */
static int
settle(store *st, int rc, const struct store_answer *a, const char *id,
       const char *claim, int *status, char *err, size_t errlen)
{
	if (rc == 0)
		rc = st->ops->flush(st->impl, err, errlen);
	if (rc != 0)
		return rc;
	if (a->rc != 0)
		return jobd_seterr(err, errlen, a->rc, "job %s: claim %s is no "
		                   "longer current", id, claim);
	if (status != NULL)
		*status = a->status;
	return 0;
}

int store_complete(store *st, const struct store_completion *c, int *status,
                   char *err, size_t errlen)
{
	struct store_answer a = {0, -1, false};
	int rc = st->ops->complete(st->impl, c, &a, err, errlen);

	return settle(st, rc, &a, c->id, c->claim, status, err, errlen);
}

int store_complete_later(store *st, const struct store_completion *c,
                         struct store_answer *ans, char *err, size_t errlen)
{ return st->ops->complete(st->impl, c, ans, err, errlen); }

int store_flush(store *st, char *err, size_t errlen)
{ return st->ops->flush(st->impl, err, errlen); }

int store_progress(store *st, const char *id, const char *claim,
                   const char *json, char *err, size_t errlen)
{ return st->ops->progress(st->impl, id, claim, json, err, errlen); }

int store_start(store *st, const char *id, const char *claim,
                int64_t started_at_us, char *err, size_t errlen)
{ return st->ops->start(st->impl, id, claim, started_at_us, err, errlen); }

int store_cancel(store *st, const char *id, int64_t now_us, int *status,
                 char *err, size_t errlen)
{ return st->ops->cancel(st->impl, id, now_us, status, err, errlen); }

int store_retry(store *st, const char *id, int64_t now_us, int *status,
                char *err, size_t errlen)
{ return st->ops->retry(st->impl, id, now_us, status, err, errlen); }

int store_recover(store *st, int64_t now_us, int *requeued, int *failed,
                  char *err, size_t errlen)
{ return st->ops->recover(st->impl, now_us, requeued, failed, err, errlen); }

int store_purge(store *st, int64_t cutoff_us, int limit,
                int64_t deleted[JOB_NSTATUS], char *err, size_t errlen)
{ return st->ops->purge(st->impl, cutoff_us, limit, deleted, err, errlen); }

int store_next_run_at(store *st, int64_t *out_us, char *err, size_t errlen)
{ return st->ops->next_run_at(st->impl, out_us, err, errlen); }

int store_put_back(store *st, const char *id, const char *claim,
                   int64_t now_us, int *status, char *err, size_t errlen)
{
	struct store_answer a = {0, -1, false};
	int rc = st->ops->put_back(st->impl, id, claim, now_us, &a, err,
	                           errlen);

	return settle(st, rc, &a, id, claim, status, err, errlen);
}

int store_put_back_later(store *st, const char *id, const char *claim,
                         int64_t now_us, struct store_answer *ans, char *err,
                         size_t errlen)
{ return st->ops->put_back(st->impl, id, claim, now_us, ans, err, errlen); }

int store_get(store *st, const char *id, struct job *out, char *err,
              size_t errlen)
{ return st->ops->get(st->impl, id, out, err, errlen); }

int store_list(store *st, const struct store_filter *f, struct job **out,
               size_t *nout, char *err, size_t errlen)
{ return st->ops->list(st->impl, f, out, nout, err, errlen); }

int store_counts(store *st, int64_t counts[JOB_NSTATUS], char *err,
                 size_t errlen)
{ return st->ops->counts(st->impl, counts, err, errlen); }

int store_counts_by_type(store *st, store_type_count_fn fn, void *arg,
                         char *err, size_t errlen)
{ return st->ops->counts_by_type(st->impl, fn, arg, err, errlen); }

int store_pauses(store *st, store_pause_fn fn, void *arg, char *err,
                 size_t errlen)
{ return st->ops->pauses(st->impl, fn, arg, err, errlen); }

int store_read_pauses(store *st, store_pause_fn fn, void *arg, char *err,
                      size_t errlen)
{ return st->ops->read_pauses(st->impl, fn, arg, err, errlen); }

int store_set_pause(store *st, const char *type, bool paused, int64_t now_us,
                    char *err, size_t errlen)
{ return st->ops->set_pause(st->impl, type, paused, now_us, err, errlen); }
int store_schedules(store *st, store_schedule_fn fn, void *arg, char *err,
                    size_t errlen)
{ return st->ops->schedules(st->impl, fn, arg, err, errlen); }

int store_schedule_put(store *st, const struct store_schedule *s, char *err,
                       size_t errlen)
{ return st->ops->schedule_put(st->impl, s, err, errlen); }

int store_nodes(store *st, store_node_fn fn, void *arg, char *err,
                size_t errlen)
{
	if (st->ops->nodes == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOTFOUND, "not shared");
	return st->ops->nodes(st->impl, fn, arg, err, errlen);
}

void store_set_hooks(store *st, const struct store_hooks *h)
{
	if (st->ops->set_hooks != NULL)
		st->ops->set_hooks(st->impl, h);
}

bool store_is_leader(store *st)
{ return st->ops->is_leader == NULL || st->ops->is_leader(st->impl); }

int store_live_nodes(store *st)
{ return st->ops->live_nodes == NULL ? 1 : st->ops->live_nodes(st->impl); }

bool store_may_claim(store *st)
{ return st->ops->may_claim == NULL || st->ops->may_claim(st->impl); }

bool store_listening(store *st)
{ return st->ops->listening == NULL || st->ops->listening(st->impl); }

int store_notify_work(store *st, char *err, size_t errlen)
{
	return st->ops->notify_work == NULL ? 0
	    : st->ops->notify_work(st->impl, err, errlen);
}

bool store_ping(store *st)
{ return st->ops->ping(st->impl); }

int store_check(store *st, char *err, size_t errlen)
{ return st->ops->check(st->impl, err, errlen); }

int store_deps_missing(store *st, const char *const *ids, size_t n,
                       size_t *missing, char *err, size_t errlen)
{
	*missing = n;
	return n == 0 ? 0 : st->ops->deps_missing(st->impl, ids, n, missing,
	                                          err, errlen);
}

int store_deps_link(store *st, const struct job *job, int64_t now_us,
                    int *status, char *err, size_t errlen)
{ return st->ops->deps_link(st->impl, job, now_us, status, err, errlen); }

int store_deps_resolve(store *st, const char *const *ids,
                       const int *statuses, size_t n, int64_t now_us,
                       store_dep_fn fn, void *arg, char *err, size_t errlen)
{
	return n == 0 ? 0 : st->ops->deps_resolve(st->impl, ids, statuses, n,
	                                          now_us, fn, arg, err, errlen);
}

int store_deps_sweep(store *st, int64_t now_us, store_dep_fn fn, void *arg,
                     char *err, size_t errlen)
{ return st->ops->deps_sweep(st->impl, now_us, fn, arg, err, errlen); }

int store_deps_cancel(store *st, const char *id, int64_t now_us,
                      bool *cancelled, char *err, size_t errlen)
{
	return st->ops->deps_cancel(st->impl, id, now_us, cancelled, err,
	                            errlen);
}
