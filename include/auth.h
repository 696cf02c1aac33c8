/*
 * auth.h - bearer tokens from [auth] tokens_file.
 *
 * The file holds one "name:token" per line; blank lines and lines starting
 * with '#' are ignored.  It must be a regular file (not a symlink) owned
 * by root or by jobd's user, writable by nobody else and not readable by
 * others (the daemon refuses to start otherwise).  Tokens are compared in
 * constant time and never logged; the token's name is.  Checks may run on
 * any thread, beside a reload (SIGHUP) on another.
 */
#ifndef JOBD_AUTH_H
#define JOBD_AUTH_H

#include <stdbool.h>
#include <stddef.h>

typedef struct auth auth;

/*
 * Loads path.  Returns 0 and a new auth (caller frees with auth_free), or
 * JOBD_EINVAL / JOBD_ESYS with "path:line: reason" in err.
 */
int auth_load(const char *path, auth **out, char *err, size_t errlen);
void auth_free(auth *a);

/*
 * Re-reads path (with the same checks, but an empty file is allowed: it
 * revokes every token) and makes its tokens the ones that count from now
 * on, freeing the old ones; on an error the old ones stay.  Returns 0 with the
 * number of tokens in *ntokens, or as auth_load.
 */
int auth_reload(auth *a, const char *path, size_t *ntokens, char *err,
                size_t errlen);

/*
 * Checks an Authorization header value ("Bearer <token>").  Returns
 * whether a token matches, and copies its name into name (namelen bytes,
 * cut if longer; may be NULL).
 */
bool auth_check(auth *a, const char *header, char *name, size_t namelen);

/* Constant-time comparison of two byte strings (length leaks only). */
int auth_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
