/*
 * auth.c - bearer token file loading and constant-time checks.
 *
 * LOCKING: lock (a rwlock) guards the token table: checks (any HTTP
 * thread) read it under the read lock and copy the name they return; a
 * reload (main thread) swaps in a new table under the write lock and frees
 * the old one at once, so that a revoked secret does not stay in memory.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "err.h"
#include "log.h"

struct token {
	char *name;
	char *secret;
	size_t len;
};

struct table {
	struct token *tokens;
	size_t n;
};

struct auth {
	pthread_rwlock_t lock;
	struct table *current;   /* lock */
};

static void
table_free(struct table *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n; i++) {
		free(a->tokens[i].name);
		if (a->tokens[i].secret != NULL) {
			explicit_bzero(a->tokens[i].secret, a->tokens[i].len);
			free(a->tokens[i].secret);
		}
	}
	free(a->tokens);
	free(a);
}

void
auth_free(auth *a)
{
	if (a == NULL)
		return;
	table_free(a->current);
	pthread_rwlock_destroy(&a->lock);
	free(a);
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int
table_load(const char *path, bool allow_empty, struct table **out, char *err,
           size_t errlen)
{
	FILE *f = NULL;
	struct table *a = NULL;
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, rc = 0;
	struct stat sb;

	/* Whoever may change the file may let anybody in: refuse a symlink
	 * (its target's checks would be the wrong ones), a file others may
	 * write or read, and one owned by another user than root or us. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0 && errno == ELOOP)
		return jobd_seterr(err, errlen, JOBD_EINVAL, "%s: is a symlink; "
		                   "name the file itself", path);
	if (fd < 0)
		return jobd_seterr(err, errlen, JOBD_ESYS, "%s: cannot open: %s",
		                   path, strerror(errno));
	f = fdopen(fd, "r");
	if (f == NULL) {
		close(fd);
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	}
	if (fstat(fileno(f), &sb) != 0) {
		rc = jobd_seterr(err, errlen, JOBD_ESYS, "%s: stat: %s", path,
		                 strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		rc = jobd_seterr(err, errlen, JOBD_EINVAL, "%s: not a regular "
		                 "file", path);
		goto out;
	}
	if (sb.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) {
		rc = jobd_seterr(err, errlen, JOBD_EINVAL,
		                 "%s: %s (mode %03o); chmod 600 (or "
		                 "640) it", path,
		                 sb.st_mode & (S_IWOTH | S_IWGRP)
		                     ? "writable by others than its owner"
		                     : "readable by others",
		                 (unsigned)(sb.st_mode & 0777));
		goto out;
	}
	if (sb.st_uid != 0 && sb.st_uid != geteuid()) {
		rc = jobd_seterr(err, errlen, JOBD_EINVAL,
		                 "%s: owned by uid %ld, neither root nor the user "
		                 "jobd runs as (uid %ld); chown it", path,
		                 (long)sb.st_uid, (long)geteuid());
		goto out;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		rc = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
		goto out;
	}
	while (getline(&line, &cap, f) >= 0) {
		char *s = trim(line), *colon, *name, *secret;
		lineno++;
		if (*s == '\0' || *s == '#')
			continue;
		colon = strchr(s, ':');
		if (colon == NULL) {
			rc = jobd_seterr(err, errlen, JOBD_EINVAL,
			                 "%s:%d: expected name:token", path, lineno);
			goto out;
		}
		*colon = '\0';
		name = trim(s);
		secret = trim(colon + 1);
		if (*name == '\0' || *secret == '\0') {
			rc = jobd_seterr(err, errlen, JOBD_EINVAL,
			                 "%s:%d: needs a name and a token", path,
			                 lineno);
			goto out;
		}
		if (strlen(secret) < 16)
			log_warn("auth", "%s:%d: token \"%s\" is shorter than 16 "
			         "characters; use a long random one", path, lineno,
			         name);
		for (char *p = secret; *p; p++)
			if (!isgraph((unsigned char)*p)) {
				rc = jobd_seterr(err, errlen, JOBD_EINVAL,
				                 "%s:%d: the token must be printable "
				                 "without spaces", path, lineno);
				goto out;
			}
		struct token *t = realloc(a->tokens, (a->n + 1) * sizeof(*t));
		if (t == NULL) {
			rc = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
			goto out;
		}
		a->tokens = t;
		t = &a->tokens[a->n];
		t->name = strdup(name);
		t->secret = strdup(secret);
		t->len = strlen(secret);
		a->n++;
		if (t->name == NULL || t->secret == NULL) {
			rc = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
			goto out;
		}
	}
	if (a->n == 0 && !allow_empty) {
		rc = jobd_seterr(err, errlen, JOBD_EINVAL,
		                 "%s: no tokens (lines of name:token)", path);
		goto out;
	}
out:
	if (line != NULL) {
		explicit_bzero(line, cap);
		free(line);
	}
	if (f != NULL)
		fclose(f);
	if (rc != 0) {
		table_free(a);
		return rc;
	}
	*out = a;
	return 0;
}

int
auth_load(const char *path, auth **out, char *err, size_t errlen)
{
	struct table *t = NULL;
	auth *a;
	int rc = table_load(path, false, &t, err, errlen);

	if (rc != 0)
		return rc;
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		table_free(t);
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	}
	pthread_rwlock_init(&a->lock, NULL);
	a->current = t;
	*out = a;
	return 0;
}

int
auth_reload(auth *a, const char *path, size_t *ntokens, char *err,
            size_t errlen)
{
	struct table *t = NULL, *old;
	/* An empty file is allowed here: it revokes every token. */
	int rc = table_load(path, true, &t, err, errlen);

	if (rc != 0)
		return rc;
	*ntokens = t->n;
	pthread_rwlock_wrlock(&a->lock);
	old = a->current;
	a->current = t;
	pthread_rwlock_unlock(&a->lock);
	table_free(old);
	return 0;
}

int
auth_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char diff = alen != blen;
	size_t n = alen < blen ? alen : blen;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

bool
auth_check(auth *a, const char *header, char *name, size_t namelen)
{
	const char *token, *found = NULL;
	size_t len;

	if (name != NULL && namelen > 0)
		name[0] = '\0';
	if (a == NULL || header == NULL)
		return false;
	while (*header == ' ')
		header++;
	if (strncasecmp(header, "Bearer ", 7) != 0)
		return false;
	token = header + 7;
	while (*token == ' ')
		token++;
	len = strlen(token);
	while (len > 0 && token[len - 1] == ' ')
		len--;
	pthread_rwlock_rdlock(&a->lock);
	/* Look at every token, match or not, so timing tells nothing. */
	for (size_t i = 0; i < a->current->n; i++)
		if (auth_equal(token, len, a->current->tokens[i].secret,
		               a->current->tokens[i].len))
			found = a->current->tokens[i].name;
	if (found != NULL && name != NULL && namelen > 0)
		snprintf(name, namelen, "%s", found);
	pthread_rwlock_unlock(&a->lock);
	return found != NULL;
}
