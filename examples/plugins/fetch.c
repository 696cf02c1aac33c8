/*
 * fetch.c - a jobd plugin: GET a URL with libcurl.
 *
 *   [handler.fetch]
 *   plugin = /usr/local/lib/jobd/plugins/fetch.so
 *   plugin_config = https://api.example.com/ http://127.0.0.1:9000/
 *                   ; optional: the URL must start with one of these
 *
 *   payload {"url": "https://..."}  ->  result {"status": 200, "bytes": N}
 *
 * Only http:// and https:// URLs; redirects are not followed; the body is
 * counted and thrown away.  Progress ({"bytes", "total", "percent"}) goes
 * to jobd_ctx_progress, at most five times a second; a stop request (DELETE, timeout, shutdown) aborts
 * the transfer from libcurl's progress callback, which libcurl calls at
 * least once a second even while nothing arrives.  A transfer error or a
 * 5xx/408/429 answer is retried; another 4xx, or a URL libcurl refuses,
 * fails for good.
 *
 * Build: cc -shared -fPIC -o fetch.so fetch.c -lcurl -lcjson
 */
#define _GNU_SOURCE /* strdup, strndup, realpath, O_CLOEXEC */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jobd/handler.h>

/* The URL prefixes allowed (plugin_config's words); read-only after init,
 * so run may use it on several threads at once. */
struct fetch_state {
	char **allow;
	size_t nallow;
};

static void
fetch_fini(void *state)
{
	struct fetch_state *st = state;

	if (st != NULL) {
		for (size_t i = 0; i < st->nallow; i++)
			free(st->allow[i]);
		free(st->allow);
		free(st);
	}
	curl_global_cleanup();
}

static int
fetch_init(const char *config, void **state)
{
	struct fetch_state *st;
	const char *p = config;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "fetch: curl_global_init failed\n");
		return -1;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		goto nomem;
	*state = st;
	while (p != NULL && *p != '\0') {
		size_t n;
		p += strspn(p, " \t\r\n");
		n = strcspn(p, " \t\r\n");
		if (n == 0)
			break;
		if (strncmp(p, "http://", 7) != 0 &&
		    strncmp(p, "https://", 8) != 0) {
			fprintf(stderr, "fetch: plugin_config: \"%.*s\" is not "
			         "an http:// or https:// prefix\n", (int)n, p);
			fetch_fini(st);
			*state = NULL;
			return -1;
		}
		char **a = realloc(st->allow, (st->nallow + 1) * sizeof(*a));
		if (a == NULL)
			goto nomem;
		st->allow = a;
		if ((a[st->nallow] = strndup(p, n)) == NULL)
			goto nomem;
		st->nallow++;
		p += n;
	}
	return 0;
nomem:
	fprintf(stderr, "fetch: out of memory\n");
	fetch_fini(st);
	*state = NULL;
	return -1;
}

/* What the callbacks share during one transfer. */
struct transfer {
	jobd_ctx *ctx;
	long long bytes;        /* body bytes received */
	long long reported;     /* bytes at the last progress report */
	int64_t reported_ms;    /* when (mono_ms) */
	bool stopped;           /* aborted on a stop request */
};

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;

	(void)data;
	t->bytes += (long long)(size * n);
	return size * n;
}

static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
            curl_off_t ultotal, curl_off_t ulnow)
{
	struct transfer *t = arg;

	(void)ultotal;
	(void)ulnow;
	if (jobd_ctx_stop_reason(t->ctx) != JOBD_STOP_NONE) {
		t->stopped = true;
		return 1; /* CURLE_ABORTED_BY_CALLBACK */
	}
	/* At most five reports a second: each one may reach every /events
	 * stream watching the job. */
	int64_t now = mono_ms();
	if (dlnow != t->reported && now - t->reported_ms >= 200) {
		char p[128];
		int pct = dltotal > 0 ? (int)(dlnow * 100 / dltotal) : -1;
		if (pct >= 0)
			snprintf(p, sizeof(p), "{\"bytes\": %lld, \"total\": "
			         "%lld, \"percent\": %d}", (long long)dlnow,
			         (long long)dltotal, pct > 100 ? 100 : pct);
		else
			snprintf(p, sizeof(p), "{\"bytes\": %lld}",
			         (long long)dlnow);
		jobd_ctx_progress(t->ctx, p);
		t->reported = dlnow;
		t->reported_ms = now;
	}
	return 0;
}

/* Whether the JSON text has a \u0000 escape, which cJSON would cut a
 * string at (a URL that is not the one asked for). */
static bool
has_nul_escape(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s != '\\')
			continue;
		if (s[1] == 'u' && strncmp(s + 2, "0000", 4) == 0)
			return true;
		if (s[1] != '\0')
			s++;
	}
	return false;
}

static int
fail(struct jobd_result *result, int outcome, const char *fmt,
     const char *arg)
{
	char msg[1024];

	snprintf(msg, sizeof(msg), fmt, arg);
	result->error = strdup(msg);
	return outcome;
}

static int
fetch_run(void *state, const struct jobd_job_view *job, jobd_ctx *ctx,
          struct jobd_result *result)
{
	const struct fetch_state *st = state;
	struct transfer t = {.ctx = ctx, .reported = -1,
	                     .reported_ms = INT64_MIN / 2};
	char curl_err[CURL_ERROR_SIZE] = "";
	cJSON *root = cJSON_ParseWithLength(job->payload, job->payload_len);
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(root, "url");
	CURL *c = NULL;
	CURLcode rc;
	long status = 0;
	int outcome;
	bool allowed;

	if (!cJSON_IsString(url) || has_nul_escape(job->payload) ||
	    (strncmp(url->valuestring, "http://", 7) != 0 &&
	     strncmp(url->valuestring, "https://", 8) != 0)) {
		outcome = fail(result, JOBD_FAILED_FOR_GOOD, "fetch: payload "
		               "must be {\"url\": \"http(s)://...\"}%s", "");
		goto out;
	}
	allowed = st == NULL || st->nallow == 0;
	for (size_t i = 0; st != NULL && i < st->nallow && !allowed; i++)
		allowed = strncmp(url->valuestring, st->allow[i],
		                  strlen(st->allow[i])) == 0;
	if (!allowed) {
		outcome = fail(result, JOBD_FAILED_FOR_GOOD, "fetch: %s is not "
		               "under an allowed prefix (plugin_config)",
		               url->valuestring);
		goto out;
	}
	c = curl_easy_init();
	if (c == NULL) {
		outcome = fail(result, JOBD_RETRY, "fetch: %s",
		               "curl_easy_init failed");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, url->valuestring);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* worker threads */
	curl_easy_setopt(c, CURLOPT_USERAGENT, "jobd-fetch/1");
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
	rc = curl_easy_perform(c);
	if (t.stopped) {
		outcome = JOBD_STOPPED;
		goto out;
	}
	if (rc != CURLE_OK) {
		/* A URL libcurl will not take (control bytes, spaces, another
		 * scheme) stays so: no retry.  Anything else may pass. */
		bool bad_url = rc == CURLE_URL_MALFORMAT ||
		               rc == CURLE_UNSUPPORTED_PROTOCOL;
		outcome = fail(result, bad_url ? JOBD_FAILED_FOR_GOOD
		                               : JOBD_RETRY, "fetch: %s",
		               curl_err[0] ? curl_err : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	char out[128];
	snprintf(out, sizeof(out), "{\"status\": %ld, \"bytes\": %lld}",
	         status, t.bytes);
	result->result = strdup(out);
	if (status >= 500 || status == 408 || status == 429)
		outcome = JOBD_RETRY;
	else if (status >= 400)
		outcome = JOBD_FAILED_FOR_GOOD;
	else
		outcome = JOBD_SUCCEEDED;
	if (outcome != JOBD_SUCCEEDED) {
		char s[32];
		snprintf(s, sizeof(s), "%ld", status);
		fail(result, outcome, "fetch: HTTP status %s", s);
	}
out:
	curl_easy_cleanup(c);
	cJSON_Delete(root);
	return outcome;
}

const struct jobd_plugin jobd_plugin = {
	.abi = JOBD_HANDLER_ABI,
	.name = "fetch",
	.init = fetch_init,
	.run = fetch_run,
	.fini = fetch_fini,
};
