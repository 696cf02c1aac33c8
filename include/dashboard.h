/*
 * dashboard.h - the built-in pages, embedded in the binary at build time
 * (scripts/embed.sh into build/<...>/gen/pages.c): the dashboard
 * (src/dashboard.html) and the sign-in page a browser gets when auth is on
 * and it has no token (src/login.html); and the OpenAPI description of the
 * API (openapi/openapi.json), served at GET /openapi.json.
 */
#ifndef JOBD_DASHBOARD_H
#define JOBD_DASHBOARD_H

#include <stddef.h>

extern const char dashboard_html[];
extern const size_t dashboard_html_len;
extern const char login_html[];
extern const size_t login_html_len;
extern const char openapi_json[];
extern const size_t openapi_json_len;

#endif
