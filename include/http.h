/*
 * http.h - the HTTP server (libmicrohttpd): sockets, request bodies,
 * suspension of connections that wait for the writer, and responses.
 * Everything the answers say comes from api.c.
 */
#ifndef JOBD_HTTP_H
#define JOBD_HTTP_H

#include "api.h"
#include "config.h"

typedef struct http_server http_server;

/*
 * Starts serving: on the socket systemd passed (LISTEN_FDS) if any, else
 * on cfg->server.listen.  Returns 0 and a new server, or JOBD_E* with err.
 */
int http_start(const struct config *cfg, api *a, http_server **out,
               char *err, size_t errlen);

/* Stops accepting new connections (shutdown begins). */
void http_quiesce(http_server *s);

/* Stops the server and closes every connection; frees s. */
void http_stop(http_server *s);

#endif
