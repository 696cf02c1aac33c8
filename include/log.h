/*
 * log.h - the one logger (STYLE.md §12).
 *
 * Lines go to stderr as "<prio>module: message", written with a single
 * write(2) so that lines from different threads never interleave; journald
 * reads the <N> prefix as the priority.  errno is preserved.  Any thread may
 * call these functions.
 */
#ifndef JOBD_LOG_H
#define JOBD_LOG_H

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

/* Parses "err|warning|notice|info|debug"; returns the level or -1. */
int log_level_parse(const char *name);

void log_msg(int prio, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(mod, ...) log_msg(LOG_ERR_, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_msg(LOG_WARN_, mod, __VA_ARGS__)
#define log_notice(mod, ...) log_msg(LOG_NOTICE_, mod, __VA_ARGS__)
#define log_info(mod, ...) log_msg(LOG_INFO_, mod, __VA_ARGS__)
#define log_debug(mod, ...) log_msg(LOG_DEBUG_, mod, __VA_ARGS__)

#endif
