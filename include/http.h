/*
 * http.h - the HTTP server (libmicrohttpd): sockets, request bodies,
 * suspension of connections that wait for the writer, and responses.
 * Everything the answers say comes from api.c.
 */
#ifndef JOBD_HTTP_H
#define JOBD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "config.h"

typedef struct http_server http_server;

/*
 * Opens the listening socket - the one systemd passed (LISTEN_FDS) if any,
 * else cfg->server.listen - and loads the TLS files.  From here the kernel
 * queues connections, but none is answered before http_serve().  Returns
 * 0 and a new server (free it with http_stop), or JOBD_E* with err.
 */
int http_open(const struct config *cfg, api *a, http_server **out,
              char *err, size_t errlen);

/* Starts answering (libmicrohttpd's threads).  0 or JOBD_E* with err. */
int http_serve(http_server *s, char *err, size_t errlen);

/*
 * Waits (at most timeout_ms) until every request under way - suspended
 * ones included - has been answered and its answer sent: before stopping,
 * so that nobody who was promised an answer is left without it.
 */
void http_wait_answered(http_server *s, int64_t timeout_ms);


/* Stops the server and closes every connection; frees s - except when
 * requests are still suspended: libmicrohttpd cannot stop then, and s
 * stays for its threads until the process exits (main exits next). */
void http_stop(http_server *s);

/*
 * A message of libmicrohttpd's, for the log: the page title and status
 * code (*code, 0 when none) of an answer it sent by itself ("400 Request
 * malformed"), else the text without its HTML, on one line.  Pure.
 */
void http_mhd_message(const char *msg, char *out, size_t outlen, int *code);

/* Whether a libmicrohttpd message is about a client's request or
 * connection (logged at info) rather than the server (warning).  Pure. */
bool http_mhd_client_caused(const char *msg);

#endif
