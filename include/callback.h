/*
 * callback.h - completion webhooks (DESIGN §2.1): the outbox delivery
 * thread, and the Standard Webhooks signature.
 *
 * The store fills the outbox when a job with a callback_url ends (store.h).
 * One thread per daemon claims due rows through the writer, POSTs each
 * job's JSON (the body of GET /jobs/<id>) with libcurl's multi interface,
 * and writes back delivered, a retry (the job backoff rule, backoff.h), or
 * failed, through the writer again.  It sleeps until a commit made a job
 * final (callback_kick) or the earliest retry comes; with a shared store
 * it also looks once a second (other nodes' rows whose claim ran out).
 */
#ifndef JOBD_CALLBACK_H
#define JOBD_CALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"
#include "writer.h"

typedef struct callback callback;

#define CALLBACK_KEY_MAX 256          /* bytes of a decoded secret */
#define CALLBACK_SIGNATURE_MAX 64     /* "v1," + base64 of 32 bytes + NUL */

/*
 * A [callbacks] secret: "whsec_" then standard base64 of 1 to
 * CALLBACK_KEY_MAX bytes.  callback_secret_check: 0, or JOBD_EINVAL with
 * the reason in err.  callback_secret_decode: 0 and the key in key[] (its
 * length in *keylen), or JOBD_EINVAL.
 */
int callback_secret_check(const char *secret, char *err, size_t errlen);
int callback_secret_decode(const char *secret,
                           unsigned char key[CALLBACK_KEY_MAX],
                           size_t *keylen);

/*
 * Whether url starts with one of the space-separated prefixes of allow
 * ([callbacks] allow; NULL allows nothing).  Any thread.
 */
bool callback_url_allowed(const char *allow, const char *url);

/*
 * The webhook-signature header's value: "v1," and the base64 of
 * HMAC-SHA256(key, "<id>.<timestamp>.<body>").  0, or JOBD_ENOMEM.  Any
 * thread.
 */
int callback_sign(const unsigned char *key, size_t keylen, const char *id,
                  int64_t timestamp, const char *body, size_t bodylen,
                  char out[CALLBACK_SIGNATURE_MAX]);

/*
 * The delivery thread of writer w and store st (borrowed; they outlive
 * it), with cfg's [callbacks] (borrowed, read-only).  callback_new: NULL
 * when out of memory (or libcurl cannot start).  callback_start: 0 or
 * JOBD_ESYS.  callback_stop: stops and joins the thread (deliveries in
 * flight are abandoned: their rows are claimed again after the claim's
 * lease, or at the next start of a daemon alone on its store); call it
 * before writer_stop().  callback_free accepts NULL.
 */
callback *callback_new(writer *w, store *st, const struct config *cfg);
int callback_start(callback *cb);
void callback_stop(callback *cb);
void callback_free(callback *cb);

/* Tells the thread that outbox rows may have come (any thread; cheap;
 * matches writer_set_outbox_hook's callback type). */
void callback_kick(void *cb);

#endif
