/*
 * log.c - the one logger: "<prio>module: message\n" to stderr in one write.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"

static atomic_int log_level = LOG_INFO_;

void
log_set_level(int level)
{
	atomic_store(&log_level, level);
}

int
log_get_level(void)
{
	return atomic_load(&log_level);
}

int
log_level_parse(const char *name)
{
	static const struct { const char *name; int level; } names[] = {
		{"err", LOG_ERR_}, {"error", LOG_ERR_}, {"warning", LOG_WARN_},
		{"warn", LOG_WARN_}, {"notice", LOG_NOTICE_}, {"info", LOG_INFO_},
		{"debug", LOG_DEBUG_},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i].name) == 0)
			return names[i].level;
	return -1;
}

void
log_msg(int prio, const char *module, const char *fmt, ...)
{
	char line[2048];
	int saved = errno;
	int n, m;
	va_list ap;

	if (prio > atomic_load(&log_level)) {
		errno = saved;
		return;
	}
	n = snprintf(line, sizeof(line), "<%d>%s: ", prio, module);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	/* One line per record: fold embedded newlines so journald keeps it whole. */
	for (int i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
	errno = saved;
}
