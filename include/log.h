/*
 * log.h - the one logger (STYLE.md §12).
 *
 * Lines go to stderr as "<prio>module: message", written with a single
 * write(2) so that lines from different threads never interleave; journald
 * reads the <N> prefix as the priority.  On a terminal outside journald
 * (stderr is a tty and JOURNAL_STREAM is unset) a line starts with the UTC
 * time and a level word instead.  errno is preserved.  Any thread may call
 * these functions.
 */
#ifndef JOBD_LOG_H
#define JOBD_LOG_H

#include <stdbool.h>

enum {
	LOG_ERR_ = 3,
	LOG_WARN_ = 4,
	LOG_NOTICE_ = 5,
	LOG_INFO_ = 6,
	LOG_DEBUG_ = 7,
};

/* Messages with a priority above this number are dropped (default: 6). */
void log_set_level(int level);
int log_get_level(void);

void log_msg(int prio, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(mod, ...) log_msg(LOG_ERR_, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_msg(LOG_WARN_, mod, __VA_ARGS__)
#define log_notice(mod, ...) log_msg(LOG_NOTICE_, mod, __VA_ARGS__)
#define log_info(mod, ...) log_msg(LOG_INFO_, mod, __VA_ARGS__)
#define log_debug(mod, ...) log_msg(LOG_DEBUG_, mod, __VA_ARGS__)

#endif
