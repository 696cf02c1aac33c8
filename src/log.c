/*
 * log.c - the one logger: "<prio>module: message\n" to stderr in one write,
 * or, on a terminal outside journald, "time level module: message".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/*
 * Whether lines are for a person: stderr is a terminal and not journald's
 * stream (JOURNAL_STREAM).  Decided once; 1 yes, 0 no, -1 not yet.
 */
static atomic_int for_terminal = -1;

static bool
terminal(void)
{
	int t = atomic_load(&for_terminal);

	if (t < 0) {
		t = isatty(STDERR_FILENO) && getenv("JOURNAL_STREAM") == NULL;
		atomic_store(&for_terminal, t);
	}
	return t == 1;
}

/* "2026-11-30T21:04:05.123Z warning " for a terminal. */
static int
terminal_prefix(char *out, size_t outlen, int prio)
{
	static const char *const words[] = {
		[LOG_ERR_] = "error", [LOG_WARN_] = "warning",
		[LOG_NOTICE_] = "notice", [LOG_INFO_] = "info",
		[LOG_DEBUG_] = "debug",
	};
	struct timespec ts;
	struct tm tm;
	char when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	return snprintf(out, outlen, "%s.%03ldZ %-7s ", when,
	                ts.tv_nsec / 1000000L,
	                prio >= LOG_ERR_ && prio <= LOG_DEBUG_ ? words[prio]
	                                                     : "?");
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
	n = terminal() ? terminal_prefix(line, sizeof(line), prio)
	               : snprintf(line, sizeof(line), "<%d>", prio);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	m = snprintf(line + n, sizeof(line) - (size_t)n, "%s: ", module);
	if (m > 0 && (size_t)(n + m) < sizeof(line))
		n += m;
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
