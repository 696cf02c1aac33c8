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

#include <stddef.h>

typedef struct auth auth;

/*
 * Loads path.  Returns 0 and a new auth (caller frees with auth_free), or
 * JOBD_EINVAL / JOBD_ESYS with "path:line: reason" in err.
 */
int auth_load(const char *path, auth **out, char *err, size_t errlen);
void auth_free(auth *a);

/*
 * Re-reads path (with the same checks) and makes its tokens the ones that
 * count from now on; on an error the old ones stay.  Returns 0 with the
 * number of tokens in *ntokens, or as auth_load.
 */
int auth_reload(auth *a, const char *path, size_t *ntokens, char *err,
                size_t errlen);

/*
 * Checks an Authorization header value ("Bearer <token>").  Returns the
 * name of the matching token (valid until auth_free), or NULL.
 */
const char *auth_check(const auth *a, const char *header);

/* Constant-time comparison of two byte strings (length leaks only). */
int auth_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
