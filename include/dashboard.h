/*
 * dashboard.h - the built-in dashboard page (src/dashboard.html), embedded
 * in the binary at build time (build/<...>/gen/dashboard.c).
 */
#ifndef JOBD_DASHBOARD_H
#define JOBD_DASHBOARD_H

#include <stddef.h>

extern const char dashboard_html[];
extern const size_t dashboard_html_len;

#endif
