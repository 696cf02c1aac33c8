/*
 * sha256.c - a jobd plugin: the SHA-256 of a file.
 *
 *   [handler.sha256]
 *   plugin = /usr/local/lib/jobd/plugins/sha256.so
 *   plugin_config = /srv/files     ; optional: only files under this
 *
 *   payload {"path": "/srv/files/a.iso"}  ->  result {"sha256": "<hex>"}
 *
 * The file is read in 1 MiB chunks (OpenSSL EVP, streaming), with a stop
 * request honoured between chunks and progress reported as it goes.  A
 * file that is missing, not a regular file, unreadable, or outside
 * plugin_config's directory fails for good (a retry would not find it
 * either); an I/O error is retried.
 *
 * Build: cc -shared -fPIC -o sha256.so sha256.c -lcrypto -lcjson
 */
#define _GNU_SOURCE /* strdup, strndup, realpath, O_CLOEXEC */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jobd/handler.h>

#define CHUNK (1024 * 1024)

/* The plugin's state: the directory files must be under, or none.
 * Read-only after init, so run may use it on several threads at once. */
struct sha256_state {
	char root[PATH_MAX];
};

static int
sha256_init(const char *config, void **state)
{
	struct sha256_state *st;
	struct stat sb;

	if (config == NULL || config[0] == '\0')
		return 0; /* no restriction: state stays NULL */
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		fprintf(stderr, "sha256: out of memory\n");
		return -1;
	}
	const char *why = NULL;
	if (config[0] != '/')
		why = "not an absolute path";
	else if (realpath(config, st->root) == NULL || stat(st->root, &sb) != 0)
		why = strerror(errno);
	else if (!S_ISDIR(sb.st_mode))
		why = "not a directory";
	if (why != NULL) {
		fprintf(stderr, "sha256: plugin_config must be a directory: "
		         "%s: %s\n", config, why);
		free(st);
		return -1;
	}
	*state = st;
	return 0;
}

static void
sha256_fini(void *state)
{
	free(state);
}

/* Whether the JSON text has a \u0000 escape, which cJSON would cut a
 * string at (a path that is not the one asked for). */
static bool
has_nul_escape(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s != '\\')
			continue;
		if (s[1] == 'u' && strncmp(s + 2, "0000", 4) == 0)
			return true;
		if (s[1] != '\0')
			s++; /* the escaped character */
	}
	return false;
}

/* Sets the error text and returns outcome. */
static int
fail(struct jobd_result *result, int outcome, const char *what,
     const char *path, int e)
{
	char msg[PATH_MAX + 256];

	snprintf(msg, sizeof(msg), "sha256: %s%s%s%s%s", what,
	         path ? ": " : "", path ? path : "", e ? ": " : "",
	         e ? strerror(e) : "");
	result->error = strdup(msg);
	return outcome;
}

/* Whether errno e from opening a file would be the same next time. */
static bool
permanent(int e)
{
	return e == ENOENT || e == ENOTDIR || e == EACCES || e == ELOOP ||
	       e == ENAMETOOLONG || e == EPERM || e == ENXIO || e == EISDIR;
}

/* Digests fd into hex (65 bytes), honouring stop requests.  Returns an
 * outcome (JOBD_SUCCEEDED when hex is filled). */
static int
digest(int fd, off_t size, jobd_ctx *ctx, char hex[65],
       struct jobd_result *result, const char *path)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *buf = malloc(CHUNK), sum[EVP_MAX_MD_SIZE];
	unsigned int sumlen = 0;
	long long done = 0;
	int last_pct = -1, outcome = JOBD_SUCCEEDED;

	if (md == NULL || buf == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		outcome = fail(result, JOBD_RETRY, "out of memory", NULL, 0);
		goto out;
	}
	for (;;) {
		if (jobd_ctx_stop_reason(ctx) != JOBD_STOP_NONE) {
			outcome = JOBD_STOPPED;
			goto out;
		}
		ssize_t n = read(fd, buf, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			outcome = fail(result, JOBD_RETRY, "read", path, errno);
			goto out;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(md, buf, (size_t)n) != 1) {
			outcome = fail(result, JOBD_RETRY, "digest failed",
			               NULL, 0);
			goto out;
		}
		done += n;
		int pct = size > 0 ? (int)(done * 100 / size) : 100;
		if (pct > 100)
			pct = 100;
		if (pct != last_pct) {
			char p[96];
			snprintf(p, sizeof(p), "{\"percent\": %d, \"bytes\": "
			         "%lld}", pct, done);
			jobd_ctx_progress(ctx, p);
			last_pct = pct;
		}
	}
	if (EVP_DigestFinal_ex(md, sum, &sumlen) != 1 || sumlen != 32) {
		outcome = fail(result, JOBD_RETRY, "digest failed", NULL, 0);
		goto out;
	}
	for (unsigned int i = 0; i < sumlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", sum[i]);
out:
	free(buf);
	EVP_MD_CTX_free(md);
	return outcome;
}

static int
sha256_run(void *state, const struct jobd_job_view *job, jobd_ctx *ctx,
           struct jobd_result *result)
{
	const struct sha256_state *st = state;
	cJSON *root = NULL;
	const cJSON *path;
	char real[PATH_MAX], hex[65];
	struct stat sb;
	int fd = -1, outcome;

	root = cJSON_ParseWithLength(job->payload, job->payload_len);
	path = cJSON_GetObjectItemCaseSensitive(root, "path");
	if (!cJSON_IsString(path) || path->valuestring[0] == '\0' ||
	    has_nul_escape(job->payload)) {
		outcome = fail(result, JOBD_FAILED_FOR_GOOD, "payload must be "
		               "{\"path\": \"<file>\"}", NULL, 0);
		goto out;
	}
	if (realpath(path->valuestring, real) == NULL) {
		int e = errno;
		outcome = fail(result, permanent(e) ? JOBD_FAILED_FOR_GOOD
		                                    : JOBD_RETRY,
		               "cannot open", path->valuestring, e);
		goto out;
	}
	if (st != NULL && strcmp(st->root, "/") != 0 &&
	    (strncmp(real, st->root, strlen(st->root)) != 0 ||
	     real[strlen(st->root)] != '/')) {
		outcome = fail(result, JOBD_FAILED_FOR_GOOD, "not under the "
		               "configured directory", path->valuestring, 0);
		goto out;
	}
	/* O_NONBLOCK: a FIFO must not hang the open. */
	fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		outcome = fail(result, permanent(e) ? JOBD_FAILED_FOR_GOOD
		                                    : JOBD_RETRY,
		               "cannot open", path->valuestring, e);
		goto out;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		outcome = fail(result, JOBD_FAILED_FOR_GOOD, "not a regular "
		               "file", path->valuestring, 0);
		goto out;
	}
	fcntl(fd, F_SETFL, 0);
	outcome = digest(fd, sb.st_size, ctx, hex, result, path->valuestring);
	if (outcome == JOBD_SUCCEEDED) {
		char out[96];
		snprintf(out, sizeof(out), "{\"sha256\": \"%s\"}", hex);
		result->result = strdup(out);
		if (result->result == NULL)
			outcome = fail(result, JOBD_RETRY, "out of memory",
			               NULL, 0);
	}
out:
	if (fd >= 0)
		close(fd);
	cJSON_Delete(root);
	return outcome;
}

const struct jobd_plugin jobd_plugin = {
	.abi = JOBD_HANDLER_ABI,
	.name = "sha256",
	.init = sha256_init,
	.run = sha256_run,
	.fini = sha256_fini,
};
