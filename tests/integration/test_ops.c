/*
 * test_ops.c - operating jobd (issue 6), against the real daemon:
 * Prometheus metrics (checked by a strict parser of the text exposition
 * format 0.0.4 below) and that they move as jobs run; socket activation
 * (LISTEN_FDS/LISTEN_PID, by fork and by systemd-socket-activate) with the
 * sd_notify datagrams read here; bearer-token auth; TLS; connection
 * limits; SIGHUP reload; the access log.
 *
 * The systemd unit checks (systemd-analyze verify / security) are in
 * tests/ops/systemd_unit.sh.
 *
 * Every test starts its own daemon (fork mode: it lives in the test's
 * process).  Nothing waits on a fixed delay: every wait polls with a
 * deadline.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

static const char *const json_ct[] = {"Content-Type: application/json",
                                      NULL};


/* ================================================================
 * Small helpers
 * ================================================================ */

static jd *
launch_opts(const struct jd_opts *o)
{
	jd *d = jd_launch(o);

	ck_assert_msg(d != NULL, "the daemon did not start");
	return d;
}

static void
append_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "ae");

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static int
count_lines(const char *path)
{
	char *s = jd_read_file(path, NULL);
	int n = 0;

	ck_assert_ptr_nonnull(s);
	for (const char *p = s; *p; p++)
		if (*p == '\n')
			n++;
	free(s);
	return n;
}


/* The line of text containing needle, as a new string; NULL if none. */
static char *
line_with(const char *text, const char *needle)
{
	const char *hit = strstr(text, needle), *b, *e;

	if (hit == NULL)
		return NULL;
	for (b = hit; b > text && b[-1] != '\n'; b--)
		;
	e = strchr(hit, '\n');
	return strndup(b, e ? (size_t)(e - b) : strlen(b));
}

static bool
daemon_alive(jd *d)
{
	int st;

	if (d->pid <= 0)
		return false;
	if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
		d->pid = -1;
		d->wait_status = st;
		return false;
	}
	return true;
}

/* A blocking TCP connection to 127.0.0.1:port; -1 (errno set) on
 * failure. */
static int
tcp_connect(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* A listening socket on 127.0.0.1 with a kernel-chosen port. */
static int
tcp_listen(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 128), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static int
free_port(void)
{
	int port, fd = tcp_listen(&port);

	close(fd);
	return port;
}

static bool
send_all(int fd, const char *s)
{
	size_t len = strlen(s), sent = 0;

	while (sent < len) {
		ssize_t n = send(fd, s + sent, len - sent, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		sent += (size_t)n;
	}
	return true;
}

/* Complete length of the HTTP answer in buf, 0 while incomplete. */
static size_t
answer_length(const char *buf, size_t len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	size_t body = 0;

	if (end == NULL)
		return 0;
	for (const char *p = buf; p < end;) {
		const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
		if (eol == NULL)
			break;
		if ((size_t)(eol - p) > 15 &&
		    strncasecmp(p, "Content-Length:", 15) == 0)
			body = strtoul(p + 15, NULL, 10);
		p = eol + 2;
	}
	return (size_t)(end - buf) + 4 + body;
}

/* Reads one HTTP answer from fd within timeout_ms: its status, or -1
 * when none came (EOF, reset or timeout). */
static int
read_answer(int fd, int timeout_ms)
{
	char buf[8192];
	size_t have = 0, want;
	int64_t deadline = jd_mono_ms() + timeout_ms;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - jd_mono_ms();
		ssize_t n;

		if (have > 0 && (want = answer_length(buf, have)) > 0 &&
		    have >= want)
			break;
		if (left <= 0 || have >= sizeof(buf) - 1)
			return -1;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
		if (n <= 0)
			return -1;
		have += (size_t)n;
		buf[have] = '\0';
	}
	if (have < 12 || strncmp(buf, "HTTP/1.", 7) != 0)
		return -1;
	return atoi(buf + 9);
}

/* Waits for the peer to close fd (EOF or reset): true when it did within
 * timeout_ms without sending anything. */
static bool
wait_closed(int fd, int timeout_ms)
{
	int64_t deadline = jd_mono_ms() + timeout_ms;
	char buf[256];

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - jd_mono_ms();
		ssize_t n;

		if (left <= 0)
			return false;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && (errno == ECONNRESET ||
		                         errno == EPIPE)))
			return true;
		if (n > 0)
			return false; /* it answered: not closed */
	}
}

/*
 * The server side of TCP port `port` on 127.0.0.1, from /proc/net/tcp:
 * how many connections wait in the listener's accept queue (a LISTEN
 * socket's rx_queue) and how many are established.  Together they tell
 * whether jobd has accepted (and still holds) the connections a test
 * opened.  -1 when /proc/net/tcp cannot be read.
 */
static int
tcp_port_stats(int port, int *backlog, int *established)
{
	FILE *f = fopen("/proc/net/tcp", "re");
	char line[512];

	*backlog = 0;
	*established = 0;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned laddr, lport, raddr, rport, st, txq, rxq;
		if (sscanf(line, " %*d: %8X:%4X %8X:%4X %2X %8X:%8X", &laddr,
		           &lport, &raddr, &rport, &st, &txq, &rxq) != 7)
			continue;
		if ((int)lport != port)
			continue;
		if (st == 0x0A)
			*backlog += (int)rxq;
		else if (st == 0x01)
			(*established)++;
	}
	fclose(f);
	return 0;
}

/* Polls until jobd has accepted every pending connection on its port
 * and holds at least n: true when it did within timeout_ms. */
static bool
wait_accepted(int port, int n, int timeout_ms, int *backlog,
              int *established)
{
	int64_t deadline = jd_mono_ms() + timeout_ms;

	for (;;) {
		ck_assert_int_eq(tcp_port_stats(port, backlog, established), 0);
		if (*backlog == 0 && *established >= n)
			return true;
		if (jd_mono_ms() >= deadline)
			return false;
		jd_pause_ms(20);
	}
}

/* A random token of len characters of [A-Za-z0-9]. */
static void
random_token(char *out, size_t len)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                            "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[256];

	ck_assert_uint_lt(len, sizeof(rnd));
	ck_assert_int_eq(getrandom(rnd, len, 0), (ssize_t)len);
	for (size_t i = 0; i < len; i++)
		out[i] = alnum[rnd[i] % (sizeof(alnum) - 1)];
	out[len] = '\0';
}

/* Writes text to path with exactly this mode (whatever the umask). */
static void
write_mode(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	ck_assert_int_eq(close(fd), 0);
}

/* ================================================================
 * A strict parser of the Prometheus text exposition format 0.0.4
 * ================================================================ */

#define PROM_MAX_LABELS 16

struct plabel {
	char name[128];
	char raw[512];   /* as written, escapes kept */
	char val[512];   /* unescaped */
};

struct prom_sample {
	char *name;
	char *labels;    /* canonical: sorted by name, k="v" joined by ',' */
	char *series;    /* the same without le */
	char *le;        /* the le label's value, NULL when absent */
	double value;
	size_t family;
};

struct prom_family {
	char *name;
	char type[16];   /* "" when no TYPE line: untyped */
	bool help, has_samples, closed;
};

struct prom {
	struct prom_sample *s;
	size_t ns;
	struct prom_family *f;
	size_t nf;
	char err[512];
};

static bool
is_name_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* Length of a metric name [a-zA-Z_:][a-zA-Z0-9_:]* at p (0: none). */
static size_t
scan_metric_name(const char *p)
{
	size_t n = 0;

	if (!is_name_start(p[0]) && p[0] != ':')
		return 0;
	while (is_name_start(p[n]) || is_digit(p[n]) || p[n] == ':')
		n++;
	return n;
}

/* Length of a label name [a-zA-Z_][a-zA-Z0-9_]* at p (0: none). */
static size_t
scan_label_name(const char *p)
{
	size_t n = 0;

	if (!is_name_start(p[0]))
		return 0;
	while (is_name_start(p[n]) || is_digit(p[n]))
		n++;
	return n;
}

static bool
is_blank(int c)
{
	return c == ' ' || c == '\t';
}

/* A sample value: a Go-style float, NaN, +Inf or -Inf. */
static bool
parse_prom_float(const char *s, size_t len, double *out)
{
	char buf[64];
	const char *p = buf;
	size_t digits = 0;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (strcmp(buf, "NaN") == 0) {
		*out = NAN;
		return true;
	}
	if (strcmp(buf, "+Inf") == 0 || strcmp(buf, "-Inf") == 0) {
		*out = buf[0] == '-' ? -INFINITY : INFINITY;
		return true;
	}
	if (*p == '+' || *p == '-')
		p++;
	while (is_digit(*p)) {
		p++;
		digits++;
	}
	if (*p == '.') {
		p++;
		while (is_digit(*p)) {
			p++;
			digits++;
		}
	}
	if (digits == 0)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!is_digit(*p))
			return false;
		while (is_digit(*p))
			p++;
	}
	if (*p != '\0')
		return false;
	*out = strtod(buf, NULL);
	return true;
}

static int
plabel_cmp(const void *a, const void *b)
{
	return strcmp(((const struct plabel *)a)->name,
	              ((const struct plabel *)b)->name);
}

/* Parses a label set at *pp (on its '{'); on success *pp is past the
 * '}'.  0, or -1 with the reason in err. */
static int
parse_labels(const char **pp, struct plabel *ls, size_t *n, char *err,
             size_t errlen)
{
	const char *p = *pp + 1;

	*n = 0;
	for (;;) {
		struct plabel *l;
		size_t nl, ri = 0, vi = 0;

		if (*p == '}') {
			p++;
			break;
		}
		nl = scan_label_name(p);
		if (nl == 0 || nl >= sizeof(l->name)) {
			snprintf(err, errlen, "bad label name at \"%.20s\"", p);
			return -1;
		}
		if (*n == PROM_MAX_LABELS) {
			snprintf(err, errlen, "too many labels");
			return -1;
		}
		l = &ls[*n];
		memcpy(l->name, p, nl);
		l->name[nl] = '\0';
		if (strncmp(l->name, "__", 2) == 0) {
			snprintf(err, errlen, "reserved label name %s", l->name);
			return -1;
		}
		p += nl;
		if (p[0] != '=' || p[1] != '"') {
			snprintf(err, errlen, "label %s: expected =\"", l->name);
			return -1;
		}
		p += 2;
		while (*p != '"') {
			if (*p == '\0' || *p == '\n') {
				snprintf(err, errlen, "label %s: unterminated value",
				         l->name);
				return -1;
			}
			if (ri + 3 >= sizeof(l->raw)) {
				snprintf(err, errlen, "label %s: value too long",
				         l->name);
				return -1;
			}
			if (*p == '\\') {
				if (p[1] != '\\' && p[1] != '"' && p[1] != 'n') {
					snprintf(err, errlen, "label %s: bad escape "
					         "\\%c", l->name, p[1] ? p[1] : '0');
					return -1;
				}
				l->raw[ri++] = p[0];
				l->raw[ri++] = p[1];
				l->val[vi++] = p[1] == 'n' ? '\n' : p[1];
				p += 2;
			} else {
				l->raw[ri++] = *p;
				l->val[vi++] = *p;
				p++;
			}
		}
		l->raw[ri] = '\0';
		l->val[vi] = '\0';
		p++; /* the closing quote */
		for (size_t i = 0; i < *n; i++)
			if (strcmp(ls[i].name, l->name) == 0) {
				snprintf(err, errlen, "label %s repeated", l->name);
				return -1;
			}
		(*n)++;
		if (*p == ',') {
			p++;
			continue; /* a trailing comma before '}' is allowed */
		}
		if (*p == '}') {
			p++;
			break;
		}
		snprintf(err, errlen, "expected , or } after label %s", l->name);
		return -1;
	}
	*pp = p;
	return 0;
}

/* The canonical form of a label set (sorted), optionally without le. */
static char *
canon_labels(struct plabel *ls, size_t n, bool skip_le)
{
	size_t cap = 1, len = 0;
	char *out;

	qsort(ls, n, sizeof(*ls), plabel_cmp);
	for (size_t i = 0; i < n; i++)
		cap += strlen(ls[i].name) + strlen(ls[i].raw) + 4;
	out = malloc(cap);
	ck_assert_ptr_nonnull(out);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (skip_le && strcmp(ls[i].name, "le") == 0)
			continue;
		len += (size_t)snprintf(out + len, cap - len, "%s%s=\"%s\"",
		                        len ? "," : "", ls[i].name, ls[i].raw);
	}
	return out;
}

static void
prom_free(struct prom *p)
{
	for (size_t i = 0; i < p->ns; i++) {
		free(p->s[i].name);
		free(p->s[i].labels);
		free(p->s[i].series);
		free(p->s[i].le);
	}
	for (size_t i = 0; i < p->nf; i++)
		free(p->f[i].name);
	free(p->s);
	free(p->f);
	memset(p, 0, sizeof(*p));
}

static struct prom_family *
family_find(struct prom *p, const char *name, size_t len)
{
	for (size_t i = 0; i < p->nf; i++)
		if (strlen(p->f[i].name) == len &&
		    strncmp(p->f[i].name, name, len) == 0)
			return &p->f[i];
	return NULL;
}

static struct prom_family *
family_get(struct prom *p, const char *name, size_t len)
{
	struct prom_family *f = family_find(p, name, len), *nf;

	if (f != NULL)
		return f;
	nf = realloc(p->f, (p->nf + 1) * sizeof(*nf));
	ck_assert_ptr_nonnull(nf);
	p->f = nf;
	f = &p->f[p->nf++];
	memset(f, 0, sizeof(*f));
	f->name = strndup(name, len);
	ck_assert_ptr_nonnull(f->name);
	return f;
}

/* Every line of a family comes in one group: switching to another
 * family closes the current one for good. */
static int
family_enter(struct prom *p, struct prom_family *f, size_t *cur)
{
	size_t idx = (size_t)(f - p->f);

	if (*cur == idx)
		return 0;
	if (f->closed) {
		snprintf(p->err, sizeof(p->err), "the lines of %s are not "
		         "contiguous", f->name);
		return -1;
	}
	if (*cur != SIZE_MAX)
		p->f[*cur].closed = true;
	*cur = idx;
	return 0;
}

static int
parse_comment(struct prom *p, const char *l, size_t *cur)
{
	const char *q = l + 1, *name;
	size_t nl;
	bool help;
	struct prom_family *f;

	if (*q == '\0')
		return 0;
	if (!is_blank(*q))
		return 0; /* "#foo": a plain comment */
	while (is_blank(*q))
		q++;
	if (strncmp(q, "HELP", 4) == 0 && is_blank(q[4]))
		help = true;
	else if (strncmp(q, "TYPE", 4) == 0 && is_blank(q[4]))
		help = false;
	else
		return 0; /* any other comment */
	q += 4;
	while (is_blank(*q))
		q++;
	name = q;
	nl = scan_metric_name(q);
	if (nl == 0) {
		snprintf(p->err, sizeof(p->err), "%s: bad metric name",
		         help ? "HELP" : "TYPE");
		return -1;
	}
	q += nl;
	if (*q != '\0' && !is_blank(*q)) {
		snprintf(p->err, sizeof(p->err), "bad metric name %.*s",
		         (int)nl + 1, name);
		return -1;
	}
	f = family_get(p, name, nl);
	if (family_enter(p, f, cur) != 0)
		return -1;
	if (f->has_samples) {
		snprintf(p->err, sizeof(p->err), "%s for %s after its samples",
		         help ? "HELP" : "TYPE", f->name);
		return -1;
	}
	while (is_blank(*q))
		q++;
	if (help) {
		if (f->help) {
			snprintf(p->err, sizeof(p->err), "second HELP for %s",
			         f->name);
			return -1;
		}
		f->help = true;
		for (; *q; q++)
			if (*q == '\\') {
				if (q[1] != '\\' && q[1] != 'n') {
					snprintf(p->err, sizeof(p->err), "HELP %s: "
					         "bad escape", f->name);
					return -1;
				}
				q++;
			}
		return 0;
	}
	if (f->type[0] != '\0') {
		snprintf(p->err, sizeof(p->err), "second TYPE for %s", f->name);
		return -1;
	}
	if (strcmp(q, "counter") != 0 && strcmp(q, "gauge") != 0 &&
	    strcmp(q, "histogram") != 0 && strcmp(q, "summary") != 0 &&
	    strcmp(q, "untyped") != 0) {
		snprintf(p->err, sizeof(p->err), "TYPE %s: bad type \"%s\"",
		         f->name, q);
		return -1;
	}
	snprintf(f->type, sizeof(f->type), "%s", q);
	return 0;
}

static bool
ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len > n && strncmp(s + len - n, suffix, n) == 0;
}

/* The family a sample name belongs to: X for X_bucket/_sum/_count of a
 * histogram (or _sum/_count of a summary) X, else the name itself. */
static struct prom_family *
family_of_sample(struct prom *p, const char *name, size_t len,
                 const char **suffix)
{
	static const char *const sfx[] = {"_bucket", "_sum", "_count"};
	struct prom_family *f;

	*suffix = "";
	for (size_t i = 0; i < 3; i++) {
		if (!ends_with(name, len, sfx[i]))
			continue;
		f = family_find(p, name, len - strlen(sfx[i]));
		if (f != NULL && (strcmp(f->type, "histogram") == 0 ||
		                  (i > 0 && strcmp(f->type, "summary") == 0))) {
			*suffix = sfx[i];
			return f;
		}
	}
	return family_get(p, name, len);
}

static int
parse_sample(struct prom *p, const char *l, size_t *cur)
{
	struct plabel ls[PROM_MAX_LABELS];
	size_t nl, nlabels = 0, vlen;
	const char *q = l, *suffix, *v;
	struct prom_family *f;
	struct prom_sample *s, *ns;
	double value;
	char *le = NULL;

	nl = scan_metric_name(q);
	if (nl == 0) {
		snprintf(p->err, sizeof(p->err), "bad metric name");
		return -1;
	}
	q += nl;
	if (*q == '{' &&
	    parse_labels(&q, ls, &nlabels, p->err, sizeof(p->err)) != 0)
		return -1;
	if (!is_blank(*q)) {
		snprintf(p->err, sizeof(p->err), "expected a blank before the "
		         "value");
		return -1;
	}
	while (is_blank(*q))
		q++;
	v = q;
	while (*q != '\0' && !is_blank(*q))
		q++;
	vlen = (size_t)(q - v);
	if (!parse_prom_float(v, vlen, &value)) {
		snprintf(p->err, sizeof(p->err), "bad value \"%.*s\"", (int)vlen,
		         v);
		return -1;
	}
	if (*q != '\0') { /* an optional timestamp, an int64 in ms */
		while (is_blank(*q))
			q++;
		if (*q == '-')
			q++;
		if (!is_digit(*q)) {
			snprintf(p->err, sizeof(p->err), "bad timestamp");
			return -1;
		}
		while (is_digit(*q))
			q++;
		if (*q != '\0') {
			snprintf(p->err, sizeof(p->err), "junk after the sample");
			return -1;
		}
	}
	f = family_of_sample(p, l, nl, &suffix);
	if (family_enter(p, f, cur) != 0)
		return -1;
	f->has_samples = true;
	for (size_t i = 0; i < nlabels; i++)
		if (strcmp(ls[i].name, "le") == 0) {
			le = strdup(ls[i].val);
			ck_assert_ptr_nonnull(le);
		}
	if (strcmp(f->type, "histogram") == 0) {
		double bound;
		if (suffix[0] == '\0') {
			snprintf(p->err, sizeof(p->err), "histogram %s: sample "
			         "without _bucket/_sum/_count", f->name);
			goto fail;
		}
		if (strcmp(suffix, "_bucket") == 0 &&
		    (le == NULL || !parse_prom_float(le, strlen(le), &bound) ||
		     isnan(bound))) {
			snprintf(p->err, sizeof(p->err), "%.*s: bucket without "
			         "a valid le", (int)nl, l);
			goto fail;
		}
		if (strcmp(suffix, "_sum") != 0 &&
		    (!(value >= 0) || isinf(value) || value != floor(value))) {
			snprintf(p->err, sizeof(p->err), "%.*s: count %g is not "
			         "a non-negative integer", (int)nl, l, value);
			goto fail;
		}
	}
	if (strcmp(f->type, "counter") == 0 && !(value >= 0)) {
		snprintf(p->err, sizeof(p->err), "counter %s is %g", f->name,
		         value);
		goto fail;
	}
	ns = realloc(p->s, (p->ns + 1) * sizeof(*ns));
	ck_assert_ptr_nonnull(ns);
	p->s = ns;
	s = &p->s[p->ns];
	s->name = strndup(l, nl);
	s->labels = canon_labels(ls, nlabels, false);
	s->series = canon_labels(ls, nlabels, true);
	s->le = le;
	s->value = value;
	s->family = (size_t)(f - p->f);
	ck_assert_ptr_nonnull(s->name);
	for (size_t i = 0; i < p->ns; i++)
		if (strcmp(p->s[i].name, s->name) == 0 &&
		    strcmp(p->s[i].labels, s->labels) == 0) {
			snprintf(p->err, sizeof(p->err), "series %s{%s} repeated",
			         s->name, s->labels);
			free(s->name);
			free(s->labels);
			free(s->series);
			free(s->le);
			return -1;
		}
	p->ns++;
	return 0;
fail:
	free(le);
	return -1;
}

/* Histograms: per series, buckets in increasing le order with
 * non-decreasing counts, the last one le="+Inf" and equal to _count,
 * and a _sum. */
static int
check_histograms(struct prom *p)
{
	for (size_t fi = 0; fi < p->nf; fi++) {
		const struct prom_family *f = &p->f[fi];
		size_t blen = strlen(f->name);

		if (strcmp(f->type, "histogram") != 0)
			continue;
		for (size_t i = 0; i < p->ns; i++) {
			const struct prom_sample *s = &p->s[i];
			double last_le = -INFINITY, last_count = 0, inf = -1;
			bool first = true, is_first_of_series = true;
			int sums = 0, counts = 0;
			double count = -1;

			if (s->family != fi)
				continue;
			/* Handle each series once: at its first sample. */
			for (size_t j = 0; j < i; j++)
				if (p->s[j].family == fi &&
				    strcmp(p->s[j].series, s->series) == 0)
					is_first_of_series = false;
			if (!is_first_of_series)
				continue;
			for (size_t j = i; j < p->ns; j++) {
				const struct prom_sample *t = &p->s[j];
				const char *sfx = t->name + blen;
				double le;

				if (t->family != fi ||
				    strcmp(t->series, s->series) != 0)
					continue;
				if (strcmp(sfx, "_sum") == 0) {
					sums++;
					continue;
				}
				if (strcmp(sfx, "_count") == 0) {
					counts++;
					count = t->value;
					continue;
				}
				parse_prom_float(t->le, strlen(t->le), &le);
				if (inf >= 0) {
					snprintf(p->err, sizeof(p->err), "%s{%s}: "
					         "bucket after le=\"+Inf\"", f->name,
					         s->series);
					return -1;
				}
				if (!first && !(le > last_le)) {
					snprintf(p->err, sizeof(p->err), "%s{%s}: le "
					         "%s not above %g", f->name, s->series,
					         t->le, last_le);
					return -1;
				}
				if (!first && t->value < last_count) {
					snprintf(p->err, sizeof(p->err), "%s{%s}: "
					         "bucket le=%s is %g, below the "
					         "previous %g: not cumulative",
					         f->name, s->series, t->le, t->value,
					         last_count);
					return -1;
				}
				first = false;
				last_le = le;
				last_count = t->value;
				if (isinf(le) && le > 0)
					inf = t->value;
			}
			if (inf < 0) {
				snprintf(p->err, sizeof(p->err), "%s{%s}: no "
				         "le=\"+Inf\" bucket", f->name, s->series);
				return -1;
			}
			if (sums != 1 || counts != 1) {
				snprintf(p->err, sizeof(p->err), "%s{%s}: %d _sum "
				         "and %d _count lines", f->name, s->series,
				         sums, counts);
				return -1;
			}
			if (count != inf) {
				snprintf(p->err, sizeof(p->err), "%s{%s}: _count %g "
				         "but the +Inf bucket %g", f->name,
				         s->series, count, inf);
				return -1;
			}
		}
	}
	return 0;
}

/* 0, or -1 with p->err (prefixed with the line number). */
static int
prom_parse(const char *text, struct prom *p)
{
	const char *line = text;
	size_t cur = SIZE_MAX;
	int lineno = 0;

	memset(p, 0, sizeof(*p));
	if (*text == '\0') {
		snprintf(p->err, sizeof(p->err), "empty exposition");
		return -1;
	}
	while (*line != '\0') {
		const char *eol = strchr(line, '\n');
		char *l;
		int rc = 0;

		lineno++;
		if (eol == NULL) {
			snprintf(p->err, sizeof(p->err), "line %d: the last line "
			         "does not end with \\n", lineno);
			return -1;
		}
		l = strndup(line, (size_t)(eol - line));
		ck_assert_ptr_nonnull(l);
		if (strchr(l, '\r') != NULL) {
			snprintf(p->err, sizeof(p->err), "a carriage return");
			rc = -1;
		} else if (l[0] == '#') {
			rc = parse_comment(p, l, &cur);
		} else if (l[0] != '\0') {
			rc = parse_sample(p, l, &cur);
		}
		if (rc != 0) {
			char why[sizeof(p->err)];
			snprintf(why, sizeof(why), "%s", p->err);
			snprintf(p->err, sizeof(p->err), "line %d \"%.80s\": %.400s",
			         lineno, l, why);
			free(l);
			return -1;
		}
		free(l);
		line = eol + 1;
	}
	return check_histograms(p);
}

/* The value of name{labels} (labels in any order, "" for none); NAN when
 * absent. */
static double
prom_get(const struct prom *p, const char *name, const char *labels)
{
	struct plabel ls[PROM_MAX_LABELS];
	char braced[512], err[256];
	const char *q = braced;
	size_t n = 0;
	char *canon;
	double v = NAN;

	snprintf(braced, sizeof(braced), "{%s}", labels);
	ck_assert_msg(parse_labels(&q, ls, &n, err, sizeof(err)) == 0, "%s",
	              err);
	canon = canon_labels(ls, n, false);
	for (size_t i = 0; i < p->ns; i++)
		if (strcmp(p->s[i].name, name) == 0 &&
		    strcmp(p->s[i].labels, canon) == 0)
			v = p->s[i].value;
	free(canon);
	return v;
}

static const char *
prom_type(const struct prom *p, const char *family)
{
	for (size_t i = 0; i < p->nf; i++)
		if (strcmp(p->f[i].name, family) == 0)
			return p->f[i].type;
	return NULL;
}

/* ---- the parser's own checks: it must reject what is not 0.0.4 ---- */

static const char *
prom_verdict(const char *text)
{
	static char why[600];
	struct prom p;
	int rc = prom_parse(text, &p);

	snprintf(why, sizeof(why), "%s", rc == 0 ? "ok" : p.err);
	prom_free(&p);
	return why;
}

START_TEST(test_prom_parser_self_check)
{
	static const char *const good[] = {
		"# HELP a_total Things.\n# TYPE a_total counter\n"
		"a_total{x=\"1\"} 3\na_total{x=\"q\\\"\\\\\\n\"} 0\n",
		"# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\n"
		"h_bucket{le=\"1e+06\"} 2\nh_bucket{le=\"+Inf\"} 2\n"
		"h_sum 0.7\nh_count 2\n",
		"plain 1.5e-3 1700000000000\n# just a comment\n\nother NaN\n",
		"g{a=\"b\",} -Inf\n",
	};
	static const char *const bad[] = {
		"",                                    /* empty */
		"a 1",                                 /* no final \n */
		"1a 1\n",                              /* name */
		"a-b 1\n",                             /* name */
		"a{1x=\"1\"} 1\n",                     /* label name */
		"a{x=1} 1\n",                          /* unquoted */
		"a{x=\"\\t\"} 1\n",                    /* bad escape */
		"a{x=\"1\",x=\"2\"} 1\n",              /* repeated label */
		"a{x=\"1\" 1\n",                       /* unterminated */
		"a 1,5\n",                             /* value */
		"a 0x10\n",                            /* hex */
		"a inf\n",                             /* spelling */
		"a 1 2 3\n",                           /* junk */
		"a 1\na 2\n",                          /* repeated series */
		"a 1\nb 1\na{x=\"1\"} 1\n",            /* not contiguous */
		"a 1\n# TYPE a gauge\n",               /* TYPE after samples */
		"# TYPE a gauge\n# TYPE a gauge\na 1\n", /* two TYPEs */
		"# TYPE a foo\na 1\n",                 /* type */
		"# TYPE c counter\nc -1\n",            /* negative counter */
		"# TYPE h histogram\nh 1\n",           /* bare histogram */
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\n"
		"h_count 1\n",                         /* no +Inf */
		"# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
		"h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", /* cumulative */
		"# TYPE h histogram\nh_bucket{le=\"2\"} 1\n"
		"h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n"
		"h_count 1\n",                         /* le order */
		"# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n"
		"h_count 3\n",                         /* +Inf != count */
		"# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n",
		                                       /* no _sum */
		"a 1\r\n",                             /* CR */
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(strcmp(prom_verdict(good[i]), "ok") == 0,
		              "rejected good input %zu: %s", i,
		              prom_verdict(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(strcmp(prom_verdict(bad[i]), "ok") != 0,
		              "accepted bad input %zu: %s", i, bad[i]);
}
END_TEST

/* ================================================================
 * 1. Metrics
 * ================================================================ */

/* GET /metrics (with the extra headers), checked and parsed into p. */
static void
scrape(jd *d, const char *const headers[], struct prom *p)
{
	struct jd_resp *r = jd_request(d, "GET", "/metrics", headers, NULL);
	const char *ct;

	assert_status(r, 200);
	ct = jd_header(r, "Content-Type");
	ck_assert_msg(ct != NULL && strncmp(ct, "text/plain", 10) == 0 &&
	              strstr(ct, "version=0.0.4") != NULL,
	              "Content-Type %s, expected text/plain; version=0.0.4",
	              ct ? ct : "(none)");
	ck_assert_msg(prom_parse(r->body, p) == 0,
	              "GET /metrics is not Prometheus text 0.0.4: %s\n%.1500s",
	              p->err, r->body); /* Check's messages are bounded */
	jd_resp_free(r);
}

struct expect {
	const char *name;
	const char *labels;
	double value;
	int op; /* 0: ==, 1: >=, 2: > */
};

static bool
expect_holds(const struct prom *p, const struct expect *e, double *got)
{
	*got = prom_get(p, e->name, e->labels);
	if (isnan(*got))
		return false;
	switch (e->op) {
	case 1: return *got >= e->value;
	case 2: return *got > e->value;
	default: return *got == e->value;
	}
}

START_TEST(test_metrics)
{
	static const struct expect want[] = {
		{"jobd_jobs_submitted_total", "type=\"echo\"", 3, 0},
		{"jobd_jobs_submitted_total", "type=\"fail\"", 2, 0},
		{"jobd_jobs_started_total", "type=\"echo\"", 3, 0},
		{"jobd_jobs_started_total", "type=\"fail\"", 4, 0},
		{"jobd_jobs_finished_total", "type=\"echo\",status=\"succeeded\"",
		 3, 0},
		{"jobd_jobs_finished_total", "type=\"fail\",status=\"failed\"",
		 2, 0},
		{"jobd_job_retries_total", "type=\"fail\"", 2, 0},
		{"jobd_jobs", "status=\"succeeded\"", 3, 0},
		{"jobd_jobs", "status=\"failed\"", 2, 0},
		{"jobd_jobs", "status=\"queued\"", 0, 0},
		{"jobd_jobs", "status=\"running\"", 0, 0},
		{"jobd_workers_busy", "", 0, 0},
		{"jobd_waiters", "", 0, 0},
		{"jobd_intake_seconds_count", "", 5, 1},
		{"jobd_queue_wait_seconds_count", "", 7, 0},
		{"jobd_store_commit_batch_size_count", "", 0, 2},
		{"jobd_run_seconds_count", "type=\"echo\"", 3, 0},
		{"jobd_run_seconds_count", "type=\"fail\"", 4, 0},
	};
	static const struct { const char *family, *type; } types[] = {
		{"jobd_jobs_submitted_total", "counter"},
		{"jobd_jobs_started_total", "counter"},
		{"jobd_jobs_finished_total", "counter"},
		{"jobd_job_retries_total", "counter"},
		{"jobd_jobs", "gauge"},
		{"jobd_workers_busy", "gauge"},
		{"jobd_waiters", "gauge"},
		{"jobd_intake_seconds", "histogram"},
		{"jobd_queue_wait_seconds", "histogram"},
		{"jobd_run_seconds", "histogram"},
		{"jobd_store_commit_batch_size", "histogram"},
	};
	struct jd_opts o = {.threads = 2};
	jd *d = launch_opts(&o);
	char *ids[5];
	struct prom p;
	int64_t deadline;
	bool all;

	/* Before any job: already valid, every family declared. */
	scrape(d, NULL, &p);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		const char *t = prom_type(&p, types[i].family);
		ck_assert_msg(t != NULL && strcmp(t, types[i].type) == 0,
		              "%s: TYPE %s, expected %s", types[i].family,
		              t ? t : "(none)", types[i].type);
	}
	ck_assert_msg(prom_get(&p, "jobd_intake_seconds_count", "") == 0,
	              "intake count before any job: %g",
	              prom_get(&p, "jobd_intake_seconds_count", ""));
	prom_free(&p);

	for (int i = 0; i < 3; i++) {
		char body[96];
		snprintf(body, sizeof(body),
		         "{\"type\":\"echo\",\"payload\":{\"n\":%d}}", i);
		ids[i] = jd_submit(d, body);
		ck_assert_ptr_nonnull(ids[i]);
	}
	for (int i = 3; i < 5; i++) {
		ids[i] = jd_submit(d, "{\"type\":\"fail\",\"max_attempts\":2}");
		ck_assert_ptr_nonnull(ids[i]);
	}
	for (int i = 0; i < 5; i++) {
		struct jd_resp *r = jd_wait_for_status(
			d, ids[i], i < 3 ? "succeeded" : "failed", 30000);
		ck_assert_msg(r != NULL, "job %s did not finish", ids[i]);
		if (i >= 3)
			ck_assert_int_eq((int)jd_num(jd_json(r), "attempt", -1),
			                 2);
		jd_resp_free(r);
		free(ids[i]);
	}

	/* The counters may trail the API by a commit: poll, then assert. */
	deadline = jd_mono_ms() + 10000;
	for (;;) {
		double got;
		scrape(d, NULL, &p);
		all = true;
		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
			if (!expect_holds(&p, &want[i], &got))
				all = false;
		if (all || jd_mono_ms() >= deadline)
			break;
		prom_free(&p);
		jd_pause_ms(50);
	}
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		double got;
		ck_assert_msg(expect_holds(&p, &want[i], &got),
		              "%s{%s} is %g, expected %s %g", want[i].name,
		              want[i].labels, got,
		              want[i].op == 0 ? "" : want[i].op == 1 ? ">=" : ">",
		              want[i].value);
	}
	/* The run histogram's buckets are per type. */
	ck_assert_msg(prom_get(&p, "jobd_run_seconds_bucket",
	                       "type=\"echo\",le=\"+Inf\"") == 3,
	              "jobd_run_seconds_bucket{type=\"echo\",le=\"+Inf\"} is %g",
	              prom_get(&p, "jobd_run_seconds_bucket",
	                       "type=\"echo\",le=\"+Inf\""));
	prom_free(&p);
	jd_free(d);
}
END_TEST

/* ================================================================
 * 3. Socket activation and sd_notify
 * ================================================================ */

#define MAX_NOTES 512

struct note {
	char text[1024];
	struct timespec ts;   /* when it arrived (kernel time if known) */
	bool kernel_ts;
};

static struct note notes[MAX_NOTES];
static size_t nnotes;

/* recv with the kernel's receive timestamp (SO_TIMESTAMPNS) when the
 * socket has one, else the time of the read. */
static ssize_t
recv_ts(int fd, char *buf, size_t len, int flags, struct timespec *ts,
        bool *kernel)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct timespec)) + 256];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
	                    .msg_control = ctl.buf,
	                    .msg_controllen = sizeof(ctl.buf)};
	ssize_t n = recvmsg(fd, &mh, flags);

	clock_gettime(CLOCK_REALTIME, ts);
	*kernel = false;
	if (n <= 0)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
	     c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SCM_TIMESTAMPNS) {
			memcpy(ts, CMSG_DATA(c), sizeof(*ts));
			*kernel = true;
		}
	return n;
}

static void
read_notes(jd *d)
{
	for (;;) {
		struct note *n = &notes[nnotes < MAX_NOTES ? nnotes
		                                            : MAX_NOTES - 1];
		ssize_t got = recv_ts(d->notify_fd, n->text, sizeof(n->text) - 1,
		                      MSG_DONTWAIT, &n->ts, &n->kernel_ts);
		if (got < 0)
			return;
		n->text[got] = '\0';
		if (nnotes < MAX_NOTES)
			nnotes++;
	}
}

/* The index of the first note from `from` on that contains all of the
 * NULL-terminated words, waiting up to timeout_ms; -1 if none came. */
static int
wait_note(jd *d, size_t from, int timeout_ms, const char *const words[])
{
	int64_t deadline = jd_mono_ms() + timeout_ms;

	for (;;) {
		struct pollfd p = {.fd = d->notify_fd, .events = POLLIN};
		int64_t left;

		read_notes(d);
		for (size_t i = from; i < nnotes; i++) {
			bool all = true;
			for (size_t w = 0; words[w] != NULL; w++)
				if (strstr(notes[i].text, words[w]) == NULL)
					all = false;
			if (all)
				return (int)i;
		}
		left = deadline - jd_mono_ms();
		if (left <= 0)
			return -1;
		poll(&p, 1, left > 200 ? 200 : (int)left);
	}
}

static void
dump_notes(void)
{
	for (size_t i = 0; i < nnotes; i++)
		fprintf(stderr, "notify[%zu] %lld.%09ld: %s\n", i,
		        (long long)notes[i].ts.tv_sec, notes[i].ts.tv_nsec,
		        notes[i].text);
}

static int64_t
ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/*
 * Starts the daemon with a socket handed over the systemd way.  With
 * listen_fd >= 0: fork, put the socket on fd 3, set LISTEN_FDS=1 and
 * LISTEN_PID (and WATCHDOG_USEC), exec jobd.  Else run
 * systemd-socket-activate -l 127.0.0.1:tool_port, which sets LISTEN_*
 * itself and execs jobd in place at the first connection.  The daemon's
 * stderr goes to its log, its notifications to the jd's socket.
 */
static void
spawn_activated(jd *d, int listen_fd, int tool_port)
{
	const char *bin = getenv("JOBD_BIN");
	char notify_env[160], listen_arg[64];
	int log_fd, null_fd;
	pid_t parent = getpid(), pid;

	if (bin == NULL || bin[0] == '\0')
		bin = "build/jobd";
	snprintf(notify_env, sizeof(notify_env), "@%s", d->notify_name);
	snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%d", tool_port);
	log_fd = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	              0644);
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(log_fd, 0);
	ck_assert_int_ge(null_fd, 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		sigset_t none;
		char pidbuf[32];

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 ||
		    dup2(log_fd, 2) < 0)
			_exit(127);
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDNAMES");
		unsetenv("WATCHDOG_USEC");
		unsetenv("WATCHDOG_PID");
		unsetenv("NOTIFY_SOCKET");
		if (listen_fd >= 0) {
			if (listen_fd == 3) {
				if (fcntl(3, F_SETFD, 0) != 0)
					_exit(127);
			} else if (dup2(listen_fd, 3) != 3) {
				_exit(127);
			}
			close_range(4, ~0U, 0);
			snprintf(pidbuf, sizeof(pidbuf), "%ld", (long)getpid());
			setenv("LISTEN_FDS", "1", 1);
			setenv("LISTEN_PID", pidbuf, 1);
			setenv("NOTIFY_SOCKET", notify_env, 1);
			/* 2 s: jobd pings (and sends STATUS=) every second. */
			setenv("WATCHDOG_USEC", "2000000", 1);
			execl(bin, bin, "--config", d->conf_path, (char *)NULL);
		} else {
			char setenv_arg[200];
			snprintf(setenv_arg, sizeof(setenv_arg),
			         "--setenv=NOTIFY_SOCKET=%s", notify_env);
			close_range(3, ~0U, 0);
			execl("/usr/bin/systemd-socket-activate",
			      "systemd-socket-activate", "-l", listen_arg,
			      setenv_arg, bin, "--config", d->conf_path,
			      (char *)NULL);
		}
		_exit(127);
	}
	close(log_fd);
	close(null_fd);
	d->pid = pid;
}

static void
socket_activation(bool via_tool)
{
	static const char request[] = "GET /healthz HTTP/1.1\r\n"
	                              "Host: 127.0.0.1\r\n"
	                              "Connection: close\r\n\r\n";
	struct jd_opts o = {.threads = 2};
	jd *d = jd_new(&o);
	int one = 1, listen_fd = -1, port, conf_port, fd = -1, st;
	int ready = -1, status_note, stop_note;
	char answer[8192];
	size_t alen = 0;
	struct timespec t_answer = {0};
	bool k_answer = false, eof = false;
	int64_t deadline;
	long mainpid = -1;
	const char *mp;
	char *log;

	ck_assert_ptr_nonnull(d);
	nnotes = 0;
	conf_port = d->port; /* [server] listen: must stay unused */
	ck_assert_int_eq(setsockopt(d->notify_fd, SOL_SOCKET, SO_TIMESTAMPNS,
	                            &one, sizeof(one)), 0);
	if (via_tool) {
		do
			port = free_port();
		while (port == conf_port);
		spawn_activated(d, -1, port);
		/* The tool binds, then waits for a first connection before
		 * it execs jobd: connect as soon as it listens. */
		deadline = jd_mono_ms() + 10000;
		while ((fd = tcp_connect(port)) < 0) {
			ck_assert_msg(errno == ECONNREFUSED, "connect: %s",
			              strerror(errno));
			ck_assert_msg(daemon_alive(d), "systemd-socket-activate "
			              "exited (status 0x%x)", d->wait_status);
			ck_assert_msg(jd_mono_ms() < deadline,
			              "systemd-socket-activate never listened");
			jd_pause_ms(10);
		}
	} else {
		listen_fd = tcp_listen(&port);
		ck_assert_int_ne(port, conf_port);
		spawn_activated(d, listen_fd, 0);
		close(listen_fd); /* the daemon holds it now */
		/* The kernel queues this connection on the passed socket
		 * while jobd is still starting. */
		fd = tcp_connect(port);
		ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	}
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one,
	                            sizeof(one)), 0);
	ck_assert(send_all(fd, request));

	/* Collect the notifications and the answer as they come. */
	deadline = jd_mono_ms() + JD_READY_TIMEOUT_MS + 5000;
	while (!(ready >= 0 && (eof || (alen > 0 &&
	                                answer_length(answer, alen) > 0 &&
	                                alen >= answer_length(answer, alen))))) {
		struct pollfd p[2] = {{.fd = d->notify_fd, .events = POLLIN},
		                      {.fd = fd, .events = POLLIN}};
		int64_t left = deadline - jd_mono_ms();

		if (left <= 0) {
			dump_notes();
			ck_abort_msg("no READY=1 and answer within %d ms (ready "
			             "%d, %zu answer bytes)",
			             JD_READY_TIMEOUT_MS + 5000, ready, alen);
		}
		ck_assert_msg(daemon_alive(d), "jobd exited during start-up "
		              "(status 0x%x)", d->wait_status);
		poll(p, eof ? 1 : 2, left > 100 ? 100 : (int)left);
		if (p[0].revents & POLLIN) {
			size_t from = nnotes;
			read_notes(d);
			for (size_t i = from; i < nnotes && ready < 0; i++)
				if (strstr(notes[i].text, "READY=1") != NULL)
					ready = (int)i;
		}
		if (!eof && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			struct timespec ts;
			bool kernel;
			ssize_t n = recv_ts(fd, answer + alen,
			                    sizeof(answer) - 1 - alen, 0, &ts,
			                    &kernel);
			if (n <= 0) {
				eof = true;
			} else {
				if (alen == 0) {
					t_answer = ts;
					k_answer = kernel;
				}
				alen += (size_t)n;
				answer[alen] = '\0';
			}
		}
	}
	close(fd);
	ck_assert_msg(alen >= 12 && strncmp(answer, "HTTP/1.1 200", 12) == 0,
	              "the queued request got: %.200s", alen ? answer : "(none)");
	/* READY=1 must come before the first answer.  Kernel timestamps
	 * order them even when one poll() saw both. */
	if (notes[ready].kernel_ts != k_answer)
		fprintf(stderr, "test_ops: only one of the two timestamps is "
		        "the kernel's\n");
	ck_assert_msg(ts_ns(&notes[ready].ts) < ts_ns(&t_answer),
	              "the first request was answered %lld us before READY=1 "
	              "was sent (%s timestamps: answer %lld.%09ld, READY=1 "
	              "%lld.%09ld)", (long long)(ts_ns(&notes[ready].ts) -
	                                        ts_ns(&t_answer)) / 1000,
	              k_answer && notes[ready].kernel_ts ? "kernel" : "read",
	              (long long)t_answer.tv_sec, t_answer.tv_nsec,
	              (long long)notes[ready].ts.tv_sec, notes[ready].ts.tv_nsec);

	/* MAINPID= names the process we started (the tool execs jobd in
	 * place). */
	mp = strstr(notes[ready].text, "MAINPID=");
	if (mp != NULL)
		mainpid = strtol(mp + 8, NULL, 10);
	ck_assert_msg(mainpid == (long)d->pid, "MAINPID=%ld, started %ld",
	              mainpid, (long)d->pid);

	/* The passed socket serves; [server] listen was never bound. */
	errno = 0;
	fd = tcp_connect(conf_port);
	ck_assert_msg(fd < 0 && errno == ECONNREFUSED,
	              "[server] listen (port %d) is bound although systemd "
	              "passed a socket", conf_port);
	jd_client_free(d->client);
	d->client = jd_client_new(port);
	d->port = port;
	{
		char *id = jd_submit(d, "{\"type\":\"echo\",\"payload\":1}");
		struct jd_resp *r;
		ck_assert_ptr_nonnull(id);
		r = jd_wait_for_status(d, id, "succeeded", 15000);
		ck_assert_ptr_nonnull(r);
		jd_resp_free(r);
		free(id);
	}

	/* STATUS= with the queue depth and running count (every tick: 5 s,
	 * or half the watchdog interval). */
	status_note = wait_note(d, (size_t)ready + 1, 15000,
	                        (const char *const[]){"STATUS=", "queued",
	                                              "running", NULL});
	if (status_note < 0)
		dump_notes();
	ck_assert_msg(status_note > ready, "no STATUS= with the queue depth "
	              "and running count after READY=1");
	if (!via_tool) {
		int wd = wait_note(d, (size_t)ready + 1, 10000,
		                   (const char *const[]){"WATCHDOG=1", NULL});
		if (wd < 0)
			dump_notes();
		ck_assert_msg(wd > ready, "no WATCHDOG=1 with WATCHDOG_USEC "
		              "set");
	}

	/* SIGTERM: STOPPING=1, then a clean exit. */
	ck_assert_int_eq(kill(d->pid, SIGTERM), 0);
	stop_note = wait_note(d, (size_t)status_note + 1, 30000,
	                      (const char *const[]){"STOPPING=1", NULL});
	if (stop_note < 0)
		dump_notes();
	ck_assert_msg(stop_note > ready, "no STOPPING=1 after SIGTERM");
	st = jd_stop(d, 30000);
	ck_assert_msg(st == 0, "jobd exited with %d after SIGTERM", st);
	log = jd_read_file(d->log_path, NULL);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, "systemd") != NULL,
	              "the log does not say the systemd socket is used:\n%s",
	              log);
	free(log);
	jd_free(d);
}

START_TEST(test_socket_activation_fork)
{
	socket_activation(false);
}
END_TEST

START_TEST(test_socket_activation_tool)
{
	if (access("/usr/bin/systemd-socket-activate", X_OK) != 0) {
		fprintf(stderr, "test_ops: SKIP socket activation via "
		        "systemd-socket-activate: /usr/bin/systemd-socket-"
		        "activate is missing\n");
		return;
	}
	socket_activation(true);
}
END_TEST

/* ================================================================
 * 4. Authentication
 * ================================================================ */

/* A jd whose config names a tokens file (written with mode) holding
 * alice's token; not started. */
static jd *
new_with_tokens(const char *token, mode_t mode, char *tokens_path,
                size_t len)
{
	struct jd_opts o = {.threads = 2};
	jd *d = jd_new(&o);
	char text[256], conf[400];

	ck_assert_ptr_nonnull(d);
	snprintf(tokens_path, len, "%s/tokens", d->dir);
	snprintf(text, sizeof(text), "# tokens for test_ops\n\nalice:%s\n",
	         token);
	write_mode(tokens_path, text, mode);
	snprintf(conf, sizeof(conf), "[auth]\ntokens_file = %s\n",
	         tokens_path);
	append_file(d->conf_path, conf);
	return d;
}

static void
assert_401(jd *d, const char *method, const char *path,
           const char *auth_header)
{
	const char *hdrs[] = {"Content-Type: application/json", auth_header,
	                      NULL};
	struct jd_resp *r = jd_request(d, method, path, hdrs,
	                               strcmp(method, "POST") == 0
	                               ? "{\"type\":\"echo\"}" : NULL);
	const char *www;

	ck_assert_msg(r != NULL && r->status == 401, "%s %s with %s: %ld %s",
	              method, path, auth_header ? auth_header : "no token",
	              r ? r->status : 0L, r ? r->body : "");
	www = jd_header(r, "WWW-Authenticate");
	ck_assert_msg(www != NULL && strncmp(www, "Bearer", 6) == 0 &&
	              (www[6] == '\0' || www[6] == ' '),
	              "%s %s: WWW-Authenticate is %s", method, path,
	              www ? www : "(none)");
	jd_resp_free(r);
}

START_TEST(test_auth)
{
	char token[33], wrong[33], tokens_path[300], bearer[64], bad[64];
	const char *with[] = {bearer, NULL};
	const char *with_json[] = {bearer, "Content-Type: application/json",
	                           NULL};
	struct jd_resp *r;
	char *id, *log, path[128];
	jd *d;

	random_token(token, 32);
	random_token(wrong, 32);
	snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", token);
	snprintf(bad, sizeof(bad), "Authorization: Bearer %s", wrong);
	d = new_with_tokens(token, 0600, tokens_path, sizeof(tokens_path));
	ck_assert_msg(jd_start(d) == 0, "jobd did not start with a 0600 "
	              "tokens file");

	/* No token needed for the probes. */
	r = jd_request(d, "GET", "/healthz", NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	r = jd_request(d, "GET", "/readyz", NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);

	/* Everything else: 401 without a token, or with a wrong one. */
	assert_401(d, "POST", "/jobs", NULL);
	assert_401(d, "GET", "/jobs", NULL);
	assert_401(d, "GET", "/metrics", NULL);
	assert_401(d, "POST", "/jobs", bad);
	assert_401(d, "GET", "/jobs", bad);
	assert_401(d, "GET", "/metrics", bad);
	assert_401(d, "GET", "/jobs", "Authorization: Basic YWxpY2U6eA==");
	{
		/* A prefix of the right token is wrong too. */
		char prefix[64];
		snprintf(prefix, sizeof(prefix), "Authorization: Bearer %.31s",
		         token);
		assert_401(d, "GET", "/jobs", prefix);
	}

	/* The right token. */
	r = jd_request(d, "POST", "/jobs", with_json,
	               "{\"type\":\"echo\",\"payload\":\"hi\"}");
	assert_status(r, 202);
	id = strdup(jd_resp_str(r, "id"));
	jd_resp_free(r);
	ck_assert_ptr_nonnull(id);
	r = jd_request(d, "GET", "/jobs", with, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = jd_request(d, "GET", path, with, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	r = jd_request(d, "GET", "/metrics", with, NULL);
	assert_status(r, 200);
	jd_resp_free(r);

	/* The dashboard: a sign-in page without a token, the page with. */
	r = jd_request(d, "GET", "/", NULL, NULL);
	assert_status(r, 401);
	ck_assert_msg(jd_header(r, "Content-Type") != NULL &&
	              strncmp(jd_header(r, "Content-Type"), "text/html", 9) == 0,
	              "GET / without a token: Content-Type %s",
	              jd_header(r, "Content-Type"));
	ck_assert_msg(strstr(r->body, "<form") != NULL,
	              "GET / without a token is no sign-in page: %.200s",
	              r->body);
	ck_assert_msg(jd_header(r, "WWW-Authenticate") != NULL &&
	              strncmp(jd_header(r, "WWW-Authenticate"), "Bearer", 6)
	              == 0, "GET /: no WWW-Authenticate: Bearer");
	ck_assert_msg(strstr(r->body, token) == NULL, "the token is in the "
	              "sign-in page");
	jd_resp_free(r);
	r = jd_request(d, "GET", "/", with, NULL);
	assert_status(r, 200);
	ck_assert_msg(jd_header(r, "Content-Type") != NULL &&
	              strncmp(jd_header(r, "Content-Type"), "text/html", 9) == 0,
	              "GET / with the token: Content-Type %s",
	              jd_header(r, "Content-Type"));
	ck_assert_msg(strcasestr(r->body, "dashboard") != NULL,
	              "GET / with the token is not the dashboard: %.200s",
	              r->body);
	jd_resp_free(r);

	/* The access log names alice, never a token. */
	log = jd_wait_log(d, "token=alice", 10000);
	ck_assert_msg(log != NULL, "no access line with token=alice");
	free(log);
	/* The last request (GET / with the token) is logged too. */
	{
		int64_t deadline = jd_mono_ms() + 10000;
		for (;;) {
			char *line;
			log = jd_read_file(d->log_path, NULL);
			ck_assert_ptr_nonnull(log);
			line = line_with(log, "\"GET /\" 200");
			if (line != NULL) {
				ck_assert_msg(strstr(line, "token=alice") != NULL,
				              "GET / with alice's token logged as: %s",
				              line);
				free(line);
				break;
			}
			ck_assert_msg(jd_mono_ms() < deadline, "GET / 200 was "
			              "never logged");
			free(log);
			jd_pause_ms(20);
		}
	}
	ck_assert_msg(strstr(log, token) == NULL, "the log contains the "
	              "token:\n%s", log);
	ck_assert_msg(strstr(log, wrong) == NULL, "the log contains a "
	              "refused token:\n%s", log);
	free(log);
	free(id);
	jd_free(d);
}
END_TEST

static void
refuses_mode(mode_t mode)
{
	char token[33], tokens_path[300], *log, *line;
	jd *d;
	int st;

	random_token(token, 32);
	d = new_with_tokens(token, mode, tokens_path, sizeof(tokens_path));
	fprintf(stderr, "test_ops: jobd must refuse a tokens file of mode "
	        "%03o (the harness reports the exit below)\n", (unsigned)mode);
	ck_assert_msg(jd_start(d) != 0, "jobd started with a tokens file of "
	              "mode %03o", (unsigned)mode);
	st = d->wait_status;
	ck_assert_msg(d->pid <= 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
	              "jobd did not exit non-zero (wait status 0x%x)", st);
	log = jd_read_file(d->log_path, NULL);
	ck_assert_ptr_nonnull(log);
	line = line_with(log, tokens_path);
	ck_assert_msg(line != NULL, "no log line names %s:\n%s", tokens_path,
	              log);
	ck_assert_msg(strncmp(line, "<3>", 3) == 0 ||
	              strncmp(line, "<2>", 3) == 0,
	              "not an error line: %s", line);
	ck_assert_msg(strstr(log, token) == NULL, "the log contains the "
	              "token");
	free(line);
	free(log);
	jd_free(d);
}

START_TEST(test_auth_refuses_world_readable)
{
	refuses_mode(0644);
}
END_TEST

START_TEST(test_auth_refuses_world_writable)
{
	refuses_mode(0602);
}
END_TEST

/* ================================================================
 * 5. TLS
 * ================================================================ */

struct buf {
	char *data;
	size_t len;
};

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t n = size * nmemb;
	char *d = realloc(b->data, b->len + n + 1);

	if (d == NULL)
		return 0;
	memcpy(d + b->len, ptr, n);
	b->data = d;
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* An HTTPS request verified against cafile.  Returns the status (0: no
 * answer, with the reason in err); *body (caller frees) gets the body. */
static long
https_request(int port, const char *cafile, const char *method,
              const char *path, const char *json, char **body, char *err)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct buf b = {NULL, 0};
	char url[256];
	long status = 0;
	CURLcode cc;

	ck_assert_ptr_nonnull(c);
	err[0] = '\0';
	snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CAINFO, cafile);
	curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (json != NULL) {
		h = curl_slist_append(h, "Content-Type: application/json");
		h = curl_slist_append(h, "Expect:");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else if (err[0] == '\0')
		snprintf(err, CURL_ERROR_SIZE, "%s", curl_easy_strerror(cc));
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	if (body != NULL)
		*body = b.data ? b.data : strdup("");
	else
		free(b.data);
	return status;
}

static bool
have_program(const char *name)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

START_TEST(test_tls)
{
	struct jd_opts o = {.threads = 2};
	char cert[300], key[300], cmd[1200], conf[700], err[CURL_ERROR_SIZE];
	char *body, *id, path[128];
	struct jd_resp *r;
	cJSON *j;
	long st;
	int64_t deadline;
	jd *d;

	if (!have_program("openssl")) {
		fprintf(stderr, "test_ops: SKIP TLS: no openssl\n");
		return;
	}
	d = jd_new(&o);
	ck_assert_ptr_nonnull(d);
	snprintf(cert, sizeof(cert), "%s/cert.pem", d->dir);
	snprintf(key, sizeof(key), "%s/key.pem", d->dir);
	snprintf(cmd, sizeof(cmd),
	         "openssl req -x509 -newkey rsa:2048 -nodes -keyout '%s' "
	         "-out '%s' -days 2 -subj /CN=127.0.0.1 "
	         "-addext subjectAltName=IP:127.0.0.1 >'%s/openssl.log' 2>&1",
	         key, cert, d->dir);
	ck_assert_msg(system(cmd) == 0, "openssl failed: %s", cmd);
	snprintf(conf, sizeof(conf), "[server]\ntls_cert = %s\ntls_key = %s\n",
	         cert, key);
	append_file(d->conf_path, conf);
	ck_assert_msg(jd_start(d) == 0, "jobd did not start with TLS");

	st = https_request(d->port, cert, "GET", "/healthz", NULL, &body, err);
	ck_assert_msg(st == 200, "https GET /healthz: %ld %s %s", st, err,
	              body);
	free(body);

	/* Plain HTTP to the HTTPS port gets no HTTP answer. */
	r = jd_request(d, "GET", "/healthz", NULL, NULL);
	ck_assert_msg(r != NULL && r->status == 0,
	              "plain http to the TLS port answered %ld", r->status);
	jd_resp_free(r);

	/* A job over HTTPS. */
	st = https_request(d->port, cert, "POST", "/jobs",
	                   "{\"type\":\"echo\",\"payload\":{\"tls\":true}}",
	                   &body, err);
	ck_assert_msg(st == 202, "https POST /jobs: %ld %s %s", st, err, body);
	j = cJSON_Parse(body);
	ck_assert_msg(jd_str(j, "id") != NULL, "no id in %s", body);
	id = strdup(jd_str(j, "id"));
	cJSON_Delete(j);
	free(body);
	snprintf(path, sizeof(path), "/jobs/%s", id);
	deadline = jd_mono_ms() + 15000;
	for (;;) {
		const char *status;
		st = https_request(d->port, cert, "GET", path, NULL, &body, err);
		ck_assert_msg(st == 200, "https GET %s: %ld %s", path, st, err);
		j = cJSON_Parse(body);
		status = jd_str(j, "status");
		if (status != NULL && strcmp(status, "succeeded") == 0) {
			cJSON_Delete(j);
			free(body);
			break;
		}
		cJSON_Delete(j);
		ck_assert_msg(jd_mono_ms() < deadline, "job over https did "
		              "not succeed: %s", body);
		free(body);
		jd_pause_ms(20);
	}
	free(id);
	jd_free(d);
}
END_TEST

/* ================================================================
 * 6. Connection limits
 * ================================================================ */

static void
raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want
	            ? want : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

#define IDLE_CONNECTIONS 500

START_TEST(test_idle_connections)
{
	/* all from one address, held idle: no per-IP cap, no deadline */
	struct jd_opts o = {.threads = 2,
	                    .extra = "[server]\nper_ip_connections = 0\n"
	                             "header_timeout = 0\n"};
	static int fds[IDLE_CONNECTIONS];
	int backlog, established;
	jd *d;

	raise_nofile(4096); /* the daemon inherits it */
	d = launch_opts(&o);
	for (int i = 0; i < IDLE_CONNECTIONS; i++) {
		fds[i] = tcp_connect(d->port);
		ck_assert_msg(fds[i] >= 0, "idle connection %d: %s", i,
		              strerror(errno));
	}
	/* Make sure jobd has accepted them all (not just the kernel). */
	ck_assert_msg(wait_accepted(d->port, IDLE_CONNECTIONS, 15000, &backlog,
	                            &established), "jobd did not accept the "
	              "idle connections: %d in the accept queue, %d "
	              "established", backlog, established);

	for (int i = 0; i < 20; i++) {
		jd_client *c = jd_client_new(d->port);
		int64_t t0 = jd_mono_ms(), dt;
		struct jd_resp *r;

		ck_assert_ptr_nonnull(c);
		r = jd_client_request(c, "GET", "/healthz", NULL, NULL);
		dt = jd_mono_ms() - t0;
		assert_status(r, 200);
		ck_assert_msg(dt < 1000, "GET /healthz #%d took %lld ms beside "
		              "%d idle connections", i, (long long)dt,
		              IDLE_CONNECTIONS);
		jd_resp_free(r);
		jd_client_free(c);
	}
	/* The idle connections were still held meanwhile. */
	ck_assert_int_eq(tcp_port_stats(d->port, &backlog, &established), 0);
	ck_assert_msg(established >= IDLE_CONNECTIONS, "jobd dropped idle "
	              "connections: %d left", established);
	for (int i = 0; i < IDLE_CONNECTIONS; i++)
		close(fds[i]);
	jd_free(d);
}
END_TEST

START_TEST(test_per_ip_limit)
{
	static const char request[] = "GET /healthz HTTP/1.1\r\n"
	                              "Host: 127.0.0.1\r\n\r\n";
	struct jd_opts o = {.threads = 2,
	                    .extra = "[server]\nper_ip_connections = 10\n"};
	int fds[10], extra, backlog, established, st = -1;
	int64_t deadline;
	jd *d = launch_opts(&o);

	for (int i = 0; i < 10; i++) {
		fds[i] = tcp_connect(d->port);
		ck_assert_msg(fds[i] >= 0, "connection %d: %s", i,
		              strerror(errno));
	}
	ck_assert_msg(wait_accepted(d->port, 10, 10000, &backlog,
	                            &established), "jobd did not accept 10 "
	              "connections: %d in the accept queue, %d established",
	              backlog, established);

	/* The 11th is closed at once, unanswered. */
	extra = tcp_connect(d->port);
	ck_assert_msg(extra >= 0, "connect: %s", strerror(errno));
	send_all(extra, request);
	ck_assert_msg(wait_closed(extra, 10000), "the 11th connection from "
	              "one IP was not closed (or was answered)");
	close(extra);

	/* The 10 work. */
	for (int i = 0; i < 10; i++) {
		ck_assert(send_all(fds[i], request));
		st = read_answer(fds[i], 10000);
		ck_assert_msg(st == 200, "connection %d within the limit: %d",
		              i, st);
	}
	/* Once one closes, a new connection gets in. */
	close(fds[0]);
	deadline = jd_mono_ms() + 10000;
	for (;;) {
		st = jd_raw(d, request, strlen(request), 2000, NULL);
		if (st == 200 || jd_mono_ms() >= deadline)
			break;
		jd_pause_ms(20);
	}
	ck_assert_msg(st == 200, "no room after a connection closed: %d", st);
	for (int i = 1; i < 10; i++)
		close(fds[i]);
	jd_free(d);
}
END_TEST

/* ================================================================
 * 7. Reload
 * ================================================================ */

static long
post_status(jd *d, const char *body, char **id)
{
	struct jd_resp *r = jd_request(d, "POST", "/jobs", json_ct, body);
	long st;

	ck_assert_ptr_nonnull(r);
	st = r->status;
	if (id != NULL)
		*id = st == 202 && jd_resp_str(r, "id")
		    ? strdup(jd_resp_str(r, "id")) : NULL;
	jd_resp_free(r);
	return st;
}

START_TEST(test_reload)
{
	struct jd_opts o = {.threads = 2};
	jd *d = launch_opts(&o);
	char *id = NULL, *log, *line, needle[400];
	struct jd_resp *r;
	int64_t deadline;
	long st;
	int bad_line;

	ck_assert_int_eq(post_status(d, "{\"type\":\"hello\"}", NULL), 422);

	/* A new handler section, then SIGHUP. */
	append_file(d->conf_path, "[handler.hello]\nbuiltin = echo\n");
	ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
	deadline = jd_mono_ms() + 10000;
	while ((st = post_status(d, "{\"type\":\"hello\",\"payload\":"
	                         "{\"v\":1}}", &id)) != 202) {
		ck_assert_msg(st == 422, "POST hello after SIGHUP: %ld", st);
		ck_assert_msg(jd_mono_ms() < deadline, "the new handler was "
		              "not loaded within 10 s of SIGHUP");
		jd_pause_ms(20);
	}
	r = jd_wait_for_status(d, id, "succeeded", 15000);
	ck_assert_msg(r != NULL, "the hello job did not run");
	ck_assert_msg(jd_num(cJSON_GetObjectItem(jd_json(r), "result"), "v",
	                     -1) == 1, "hello's result: %s", r->body);
	jd_resp_free(r);
	free(id);

	/* A broken file (with a valid new section before the error):
	 * rejected whole, the old handlers kept, the error logged with the
	 * file and line. */
	append_file(d->conf_path, "[handler.later]\nbuiltin = noop\n"
	            "[handler.broken]\n");
	bad_line = count_lines(d->conf_path) + 1;
	append_file(d->conf_path, "builtin = no-such-builtin\n");
	ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
	snprintf(needle, sizeof(needle), "%s:%d:", d->conf_path, bad_line);
	log = jd_wait_log(d, needle, 10000);
	if (log == NULL) {
		log = jd_read_file(d->log_path, NULL);
		ck_abort_msg("no log line names %s after SIGHUP with a broken "
		             "file:\n%s", needle, log);
	}
	line = line_with(log, needle);
	ck_assert_msg(strncmp(line, "<3>", 3) == 0, "not logged as an error: "
	              "%s", line);
	free(line);
	free(log);
	ck_assert_msg(daemon_alive(d), "jobd exited on a broken reload "
	              "(status 0x%x)", d->wait_status);
	r = jd_request(d, "GET", "/healthz", NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	/* Old handlers (including the reloaded one) still work; the valid
	 * section of the rejected file was not applied. */
	ck_assert_int_eq(post_status(d, "{\"type\":\"hello\",\"payload\":"
	                             "{\"v\":2}}", &id), 202);
	r = jd_wait_for_status(d, id, "succeeded", 15000);
	ck_assert_msg(r != NULL, "hello did not run after a broken reload");
	jd_resp_free(r);
	free(id);
	ck_assert_int_eq(post_status(d, "{\"type\":\"echo\"}", NULL), 202);
	ck_assert_int_eq(post_status(d, "{\"type\":\"later\"}", NULL), 422);
	ck_assert_int_eq(post_status(d, "{\"type\":\"broken\"}", NULL), 422);
	ck_assert_int_eq(jd_stop(d, 30000), 0);
	jd_free(d);
}
END_TEST

/* ================================================================
 * 8. Access log
 * ================================================================ */

struct access_line {
	char addr[64], method[16], path[256], job[64], token[64];
	int status;
	long bytes;
	double ms;
};

/* Parses "<6>access: ADDR "METHOD PATH" STATUS BYTES DURms job=J
 * token=T", the whole line. */
static bool
parse_access(const char *line, struct access_line *a)
{
	int end = -1;

	memset(a, 0, sizeof(*a));
	if (sscanf(line, "<6>access: %63s \"%15s %255[^\"]\" %d %ld %lfms "
	           "job=%63s token=%63s%n", a->addr, a->method, a->path,
	           &a->status, &a->bytes, &a->ms, a->job, a->token, &end) != 8)
		return false;
	return end == (int)strlen(line);
}

/* The access lines of the log (at most max), parsed; how many. */
static int
access_lines(const jd *d, struct access_line *out, int max, char **raw)
{
	char *log = jd_read_file(d->log_path, NULL), *save = NULL;
	int n = 0;

	ck_assert_ptr_nonnull(log);
	*raw = strdup(log);
	for (char *l = strtok_r(log, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "<6>access:", 10) != 0)
			continue;
		if (n < max)
			ck_assert_msg(parse_access(l, &out[n]), "malformed access "
			              "line: %s", l);
		n++;
	}
	free(log);
	return n;
}

START_TEST(test_access_log)
{
	struct req {
		const char *method, *path, *body;
		int status;
		char job[64];
		size_t bytes;
	} reqs[6] = {
		{"POST", "/jobs", "{\"type\":\"echo\",\"payload\":[1,2]}", 202,
		 "", 0},
		{"GET", NULL, NULL, 200, "", 0},
		{"GET", "/no-such-path", NULL, 404, "-", 0},
		{"POST", "/jobs", "{\"type\":", 400, "-", 0},
		{"GET", "/healthz", NULL, 200, "-", 0},
		{"GET", "/metrics", NULL, 200, "-", 0},
	};
	const int nreq = 6;
	struct access_line got[16];
	struct jd_opts o = {.threads = 2};
	jd *d = launch_opts(&o);
	char job_path[128], *raw = NULL;
	int64_t deadline;
	int n;

	for (int i = 0; i < nreq; i++) {
		struct jd_resp *r;
		if (i == 1) {
			snprintf(job_path, sizeof(job_path), "/jobs/%s",
			         reqs[0].job);
			reqs[1].path = job_path;
			snprintf(reqs[1].job, sizeof(reqs[1].job), "%s",
			         reqs[0].job);
		}
		r = jd_request(d, reqs[i].method, reqs[i].path,
		               reqs[i].body ? json_ct : NULL, reqs[i].body);
		assert_status(r, reqs[i].status);
		reqs[i].bytes = r->body_len;
		if (i == 0) {
			ck_assert_ptr_nonnull(jd_resp_str(r, "id"));
			snprintf(reqs[0].job, sizeof(reqs[0].job), "%s",
			         jd_resp_str(r, "id"));
		}
		jd_resp_free(r);
	}

	/* A line is written when its request completes: poll. */
	deadline = jd_mono_ms() + 10000;
	for (;;) {
		free(raw);
		n = access_lines(d, got, 16, &raw);
		if (n >= nreq || jd_mono_ms() >= deadline)
			break;
		jd_pause_ms(20);
	}
	ck_assert_msg(n == nreq, "%d access lines for %d requests:\n%s", n,
	              nreq, raw);
	/* Lines come in completion order, which need not be request order
	 * (an answer sent before the body closes its connection later):
	 * each request must match exactly one line. */
	for (int i = 0; i < nreq; i++) {
		int match = -1, matches = 0;
		const struct access_line *a;

		for (int k = 0; k < n; k++)
			if (strcmp(got[k].method, reqs[i].method) == 0 &&
			    strcmp(got[k].path, reqs[i].path) == 0 &&
			    got[k].status == reqs[i].status) {
				match = k;
				matches++;
			}
		ck_assert_msg(matches == 1, "%d access lines for \"%s %s\" %d:"
		              "\n%s", matches, reqs[i].method, reqs[i].path,
		              reqs[i].status, raw);
		a = &got[match];
		ck_assert_msg(strcmp(a->addr, "127.0.0.1") == 0 &&
		              a->bytes == (long)reqs[i].bytes &&
		              a->ms >= 0 && a->ms < 60000 &&
		              strcmp(a->job, reqs[i].job) == 0 &&
		              strcmp(a->token, "-") == 0,
		              "access line \"%s %s %s %d %ld %.3fms job=%s "
		              "token=%s\", expected \"127.0.0.1 %s %s %d %zu "
		              "job=%s token=-\"\n%s", a->addr, a->method,
		              a->path, a->status, a->bytes, a->ms, a->job,
		              a->token, reqs[i].method, reqs[i].path,
		              reqs[i].status, reqs[i].bytes, reqs[i].job, raw);
	}
	free(raw);
	jd_free(d);
}
END_TEST

/* ================================================================ */

static Suite *
ops_suite(void)
{
	Suite *s = suite_create("ops");
	TCase *tc = tcase_create("ops");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_prom_parser_self_check);
	tcase_add_test(tc, test_metrics);
	tcase_add_test(tc, test_socket_activation_fork);
	tcase_add_test(tc, test_socket_activation_tool);
	tcase_add_test(tc, test_auth);
	tcase_add_test(tc, test_auth_refuses_world_readable);
	tcase_add_test(tc, test_auth_refuses_world_writable);
	tcase_add_test(tc, test_tls);
	tcase_add_test(tc, test_idle_connections);
	tcase_add_test(tc, test_per_ip_limit);
	tcase_add_test(tc, test_reload);
	tcase_add_test(tc, test_access_log);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(ops_suite());
}
