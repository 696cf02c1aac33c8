/*
 * http.c - libmicrohttpd glue.
 *
 * Each request gets a struct req (MHD's con_cls), made when its request
 * line arrives (the URI log callback: the target as sent, for the access
 * log) and holding its api_call and body.  The access handler is called:
 * once with the headers (we run the checks that need no body: the framing
 * rules of RFC 9112 - field names, Host, Content-Length, Transfer-Encoding
 * - then route, method, content type, the announced length), then with
 * each body chunk (kept up to max_body, then discarded), then once more at
 * the end (api_handle).  A call that needs the writer suspends the
 * connection; the writer's done() resumes it and the handler is called
 * again to send the answer.  No MHD thread ever waits for a commit.
 *
 * Each connection also gets a struct conn (MHD's socket context) that
 * sits in a deadline list while the connection owes a complete request
 * header (server.header_timeout); a reaper thread shuts down the socket
 * of any that is late, however steadily it trickles.
 *
 * LOCKING: a struct req is touched by its connection's MHD thread, except
 * req->call.op, which the writer owns between api_start and the resume
 * callback.  MHD_resume_connection is thread-safe.  srv->mu guards the
 * deadline list (head, tail, every struct conn's links and deadline) and
 * srv->stopping; it is a leaf lock, taken by MHD threads and the reaper.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "api.h"
#include "clock.h"
#include "err.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "sse.h"

#define CONNECTION_MEMORY (8 * 1024)

/* Past this many discarded bytes of an oversized body, hang up. */
#define DISCARD_FACTOR 16

struct http_server {
	struct MHD_Daemon *d;
	const struct config *cfg;
	api *a;
	int listen_fd;
	int owns_fd;
	char *tls_cert;   /* PEM text; libmicrohttpd keeps pointers to them */
	char *tls_key;
	bool systemd_socket; /* the socket came from LISTEN_FDS */
	char address[160];   /* what the socket is bound to (getsockname) */
	bool local;          /* loopback or a unix socket */
	atomic_int suspended; /* requests waiting for the writer or a job */
	atomic_int active;    /* requests begun and not yet completed */

	/* The header deadline (server.header_timeout): connections that
	 * owe a complete request header, oldest deadline first.  Every
	 * deadline is now + the same timeout, so appending keeps the
	 * order.  The reaper thread shuts down the socket of the first
	 * one whose deadline passed; libmicrohttpd then closes it. */
	pthread_mutex_t mu;   /* guards head, tail, every conn, stopping */
	pthread_cond_t cv;    /* the list became non-empty, or stopping */
	struct conn *head, *tail;
	bool stopping;
	bool reaper_started;
	pthread_t reaper;
};

/* One client connection (libmicrohttpd's socket context). */
struct conn {
	int fd;
	int64_t deadline_ms;  /* monotonic; valid while listed */
	bool listed;
	unsigned requests;    /* complete headers received so far */
	struct conn *prev, *next;
};

enum req_state { REQ_HEADERS, REQ_BODY, REQ_PENDING, REQ_SENT };

struct req {
	struct api_call call;
	struct MHD_Connection *conn;
	http_server *srv;
	int state;
	char *body;
	size_t len, cap;
	size_t discarded;
	bool too_large;
	bool early;      /* the answer was decided from the headers */
	bool close;      /* close the connection after the answer */
	bool active;     /* counted in srv->active */
	int64_t content_length; /* announced, or -1 */
	int status_sent; /* for the access log; 0 = none */
	size_t bytes_sent;
	char method[12];
	char target[512]; /* the request target as sent (for the log) */
};

/* ---- the header deadline ---- */

/* Caller holds s->mu. */
static void
conn_unlist(http_server *s, struct conn *c)
{
	if (!c->listed)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		s->tail = c->prev;
	c->prev = c->next = NULL;
	c->listed = false;
}

/* Starts c's wait for a complete header.  Any MHD thread. */
static void
header_wait(http_server *s, struct conn *c)
{
	if (s->cfg->server.header_timeout_ms <= 0 || c == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	conn_unlist(s, c);
	c->deadline_ms = clock_mono_ms() + s->cfg->server.header_timeout_ms;
	c->prev = s->tail;
	if (s->tail)
		s->tail->next = c;
	else
		s->head = c;
	s->tail = c;
	c->listed = true;
	if (s->head == c) /* the reaper slept without a deadline */
		pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static struct conn *
conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci != NULL ? ci->socket_context : NULL;
}

/* The header of conn's request is complete.  Any MHD thread. */
static void
header_done(http_server *s, struct MHD_Connection *conn)
{
	struct conn *c;

	if (s->cfg->server.header_timeout_ms <= 0 ||
	    (c = conn_of(conn)) == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	conn_unlist(s, c);
	c->requests++;
	pthread_mutex_unlock(&s->mu);
}

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
              enum MHD_ConnectionNotificationCode code)
{
	http_server *s = cls;
	struct conn *c = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci;
		if (s->cfg->server.header_timeout_ms <= 0)
			return; /* no deadline: nothing to track */
		ci = MHD_get_connection_info(conn,
		                             MHD_CONNECTION_INFO_CONNECTION_FD);
		c = calloc(1, sizeof(*c));
		if (c == NULL || ci == NULL) {
			/* no deadline for this one: the idle timeout and
			 * the connection limits still hold */
			free(c);
			return;
		}
		c->fd = ci->connect_fd;
		*socket_context = c;
		header_wait(s, c);
	} else if (c != NULL) {
		/* Called before libmicrohttpd closes the fd: once c is
		 * unlisted under mu, the reaper can no longer touch it. */
		pthread_mutex_lock(&s->mu);
		conn_unlist(s, c);
		pthread_mutex_unlock(&s->mu);
		free(c);
		*socket_context = NULL;
	}
}

/*
 * The reaper thread: sleeps until the earliest header deadline (or until
 * a connection starts waiting), then shuts down the sockets whose
 * deadline passed.  shutdown(), not close(): the fd stays libmicrohttpd's,
 * which sees the end of the stream and closes the connection itself.
 */
static void *
reaper_main(void *arg)
{
	http_server *s = arg;

	pthread_setname_np(pthread_self(), "jobd-hdrtimeout");
	pthread_mutex_lock(&s->mu);
	while (!s->stopping) {
		struct conn *c = s->head;
		if (c == NULL) {
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		if (c->deadline_ms > clock_mono_ms()) {
			clock_cond_wait_until(&s->cv, &s->mu, c->deadline_ms);
			continue;
		}
		conn_unlist(s, c);
		/* An idle kept-alive connection is the common case; one
		 * that never completed a header is worth a line. */
		log_msg(c->requests ? LOG_DEBUG_ : LOG_INFO_, "http",
		        "closing a connection that sent no complete request "
		        "header within server.header_timeout (%lld ms) after "
		        "%s", (long long)s->cfg->server.header_timeout_ms,
		        c->requests ? "its previous answer" : "it opened");
		shutdown(c->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static const char *
req_arg(void *h, const char *name)
{
	struct req *r = h;

	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
	                                   name);
}

static const char *
req_header(void *h, const char *name)
{
	struct req *r = h;

	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static void
req_resume(void *h)
{
	struct req *r = h;

	MHD_resume_connection(r->conn);
}

static int
method_of(const char *m)
{
	static const struct { const char *name; int method; } methods[] = {
		{"GET", API_GET}, {"HEAD", API_HEAD}, {"POST", API_POST},
		{"DELETE", API_DELETE}, {"PUT", API_PUT}, {"PATCH", API_PATCH},
		{"OPTIONS", API_OPTIONS},
	};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(m, methods[i].name) == 0)
			return methods[i].method;
	return API_OTHER;
}

/* RFC 9110 §5.6.2: tchar, the bytes of a token (a field name). */
static bool
is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
is_token(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!is_tchar((unsigned char)*s))
			return false;
	return true;
}

/* RFC 9112 §3.2: uri-host [":" port], so no space, no '/', '@', ... */
static bool
is_host_value(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!(is_tchar(c) && c != '|' && c != '^' && c != '`' &&
		      c != '#') &&
		    strchr(":[]()!$&',;=", c) == NULL)
			return false;
	}
	return true;
}

/*
 * What the header fields of a request say about its framing.  libmicrohttpd
 * 0.9.75 hands over every field line as it came (a duplicate is a second
 * entry; "Name : value" arrives as the name "Name " with the space), and
 * frames the body from the first Content-Length or Transfer-Encoding it
 * finds by exact name.
 */
struct header_scan {
	const char *bad_name;   /* the first field name that is no token */
	int content_length;     /* how many Content-Length fields */
	const char *cl_value;
	int host;               /* how many Host fields */
	const char *host_value;
	int transfer_encoding;  /* how many Transfer-Encoding fields */
	const char *te_value;   /* the first one's value */
	int codings;            /* transfer codings listed, over all fields */
	int chunked;            /* how many of them are "chunked" */
	bool last_chunked;      /* the last one listed is "chunked" */
	bool chunked_params;    /* "chunked;x=y": chunked takes none */
	char other[32];         /* the first coding that is not chunked */
};

/* Counts the codings of one Transfer-Encoding value (a list, §5.6.1). */
static void
scan_codings(struct header_scan *hs, const char *v)
{
	while (*v) {
		const char *start, *end, *name_end;

		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (*v == '\0')
			break;
		start = v;
		while (*v && *v != ',')
			v++;
		end = v;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		name_end = start;
		while (name_end < end && *name_end != ';' &&
		       *name_end != ' ' && *name_end != '\t')
			name_end++;
		hs->codings++;
		if (name_end - start == 7 &&
		    strncasecmp(start, "chunked", 7) == 0) {
			hs->chunked++;
			hs->last_chunked = true;
			if (name_end != end)
				hs->chunked_params = true;
		} else {
			hs->last_chunked = false;
			if (hs->other[0] == '\0')
				snprintf(hs->other, sizeof(hs->other), "%.*s",
				         (int)(name_end - start), start);
		}
	}
}

static enum MHD_Result
scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
            const char *value)
{
	struct header_scan *hs = cls;

	(void)kind;
	if (key == NULL || !is_token(key)) {
		if (hs->bad_name == NULL)
			hs->bad_name = key ? key : "";
		return MHD_YES;
	}
	if (value == NULL)
		value = "";
	if (strcasecmp(key, "Content-Length") == 0) {
		hs->content_length++;
		hs->cl_value = value;
	} else if (strcasecmp(key, "Host") == 0) {
		hs->host++;
		hs->host_value = value;
	} else if (strcasecmp(key, "Transfer-Encoding") == 0) {
		if (hs->transfer_encoding++ == 0)
			hs->te_value = value;
		scan_codings(hs, value);
	}
	return MHD_YES;
}

static enum MHD_Result
send_answer(struct req *r)
{
	struct api_call *c = &r->call;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	size_t len = c->body_out_len;
	char *body = c->body_out;

	if (c->stream != NULL) {
		/* GET /events: a response that reads the event ring. */
		resp = sse_response(c->stream, r->conn, &r->srv->suspended);
		c->stream = NULL;
		if (resp == NULL)
			return MHD_NO;
	} else if (c->body_shared != NULL) {
		/* One rendering for many answers: the response takes the
		 * call's reference and drops it when it is done. */
		resp = MHD_create_response_from_buffer_with_free_callback_cls(
			len, (void *)c->body_shared_data, api_body_release,
			c->body_shared);
		if (resp == NULL)
			return MHD_NO; /* api_call_clear() releases it */
		c->body_shared = NULL;
	} else {
		if (body == NULL) {
			body = strdup("");
			len = 0;
			if (body == NULL)
				return MHD_NO;
		}
		resp = MHD_create_response_from_buffer(len, body,
		                                       MHD_RESPMEM_MUST_FREE);
		if (resp == NULL) {
			if (body != c->body_out)
				free(body);
			return MHD_NO;
		}
		c->body_out = NULL; /* the response owns it now */
	}
	if (r->close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
		                        "close");
	if (c->content_type != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		                        c->content_type);
	for (int i = 0; i < c->nheaders; i++)
		MHD_add_response_header(resp, c->headers[i].name,
		                        c->headers[i].value);
	ret = MHD_queue_response(r->conn, (unsigned int)c->status, resp);
	MHD_destroy_response(resp);
	r->state = REQ_SENT;
	r->status_sent = c->status;
	r->bytes_sent = len;
	return ret;
}

/*
 * Copies s into out (size outlen, NUL-terminated, cut with "..." when
 * long) with every byte that could forge or garble a log line (or make a
 * problem detail invalid UTF-8) - controls
 * (terminal escapes, newlines), DEL, '"', '\\' and bytes past ASCII (which
 * would make journald keep the line as a blob) - written as \\xHH.
 */
static void
log_escape(char *out, size_t outlen, const char *s)
{
	size_t j = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (j + 5 + 4 >= outlen) {
			memcpy(out + j, "...", 3);
			j += 3;
			break;
		}
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			j += (size_t)snprintf(out + j, outlen - j, "\\x%02x", c);
		else
			out[j++] = (char)c;
	}
	out[j] = '\0';
}

/* Sets a 4xx/5xx problem decided from the headers; the connection is
 * closed after it when close is true (the framing is in doubt). */
static enum MHD_Result
answer_early(struct req *r, int status, const char *title, bool close,
             const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static enum MHD_Result
answer_early(struct req *r, int status, const char *title, bool close,
             const char *fmt, ...)
{
	char detail[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	api_problem(&r->call, status, status == 501 ? "not-implemented"
	            : "bad-request", title, detail);
	r->close = close;
	r->early = true;
	return send_answer(r);
}

/*
 * The checks that need only the header (RFC 9112): field names, Host,
 * and the body's framing, which must be unambiguous before a byte of the
 * body is read - else what jobd takes for a body, a proxy in front of it
 * may take for a second request (request smuggling), or the reverse.
 * Every framing error closes the connection after the answer.
 */
static enum MHD_Result
on_headers(struct req *r, const char *version)
{
	struct header_scan hs = {0};
	int64_t content_length = -1;
	bool http11 = version != NULL && strcmp(version, "HTTP/1.0") != 0;

	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, scan_header, &hs);
	if (hs.bad_name != NULL) {
		char name[64];
		log_escape(name, sizeof(name), hs.bad_name);
		return answer_early(r, 400, NULL, true, "the header field "
		                    "name \"%s\" is not a token (no space "
		                    "before the colon, RFC 9112 section 5.1)",
		                    name);
	}
	if (hs.host > 1 || (http11 && hs.host == 0))
		return answer_early(r, 400, NULL, true, "%s",
		                    hs.host ? "more than one Host header"
		                    : "HTTP/1.1 needs a Host header");
	if (hs.host == 1 && !is_host_value(hs.host_value))
		return answer_early(r, 400, NULL, true,
		                    "the Host header is not host[:port]");
	/* Request smuggling: libmicrohttpd 0.9.75 accepts both forms. */
	if (hs.content_length > 1)
		return answer_early(r, 400, NULL, true,
		                    "more than one Content-Length header");
	if (hs.content_length > 0 && hs.transfer_encoding > 0)
		return answer_early(r, 400, NULL, true,
		                    "both Content-Length and "
		                    "Transfer-Encoding");
	if (hs.transfer_encoding > 0) {
		/* RFC 9112 §6.3: unless chunked is last, the body's length
		 * cannot be known: 400 and close.  Other codings: 501. */
		if (!http11)
			return answer_early(r, 400, NULL, true,
			                    "Transfer-Encoding in an HTTP/1.0 "
			                    "request");
		if (hs.codings == 0 || !hs.last_chunked || hs.chunked > 1 ||
		    hs.chunked_params)
			return answer_early(r, 400, NULL, true,
			                    "Transfer-Encoding must end with "
			                    "chunked, once and without "
			                    "parameters");
		if (hs.other[0] != '\0') {
			char coding[sizeof(hs.other) + 8];
			log_escape(coding, sizeof(coding), hs.other);
			return answer_early(r, 501, "Not Implemented", true,
			                    "the transfer coding \"%s\" is not "
			                    "supported; send Transfer-Encoding: "
			                    "chunked", coding);
		}
		/* libmicrohttpd frames by the first field's exact value. */
		if (hs.transfer_encoding > 1 ||
		    strcasecmp(hs.te_value, "chunked") != 0)
			return answer_early(r, 400, NULL, true,
			                    "send Transfer-Encoding: chunked "
			                    "as one field");
	}
	if (hs.cl_value != NULL) {
		const char *p = hs.cl_value;
		uint64_t v = 0;
		bool overflow = false;

		for (; *p >= '0' && *p <= '9'; p++) {
			if (v > (UINT64_MAX - 9) / 10)
				overflow = true;
			else
				v = v * 10 + (uint64_t)(*p - '0');
		}
		if (p == hs.cl_value || *p != '\0')
			return answer_early(r, 400, NULL, true,
			                    "malformed Content-Length");
		content_length = overflow || v > INT64_MAX ? INT64_MAX
		               : (int64_t)v;
	}
	r->content_length = content_length;
	if (api_precheck(r->srv->a, &r->call, content_length) == API_DONE) {
		r->early = true;
		return send_answer(r);
	}
	r->state = REQ_BODY;
	return MHD_YES;
}

/*
 * A request line has arrived (libmicrohttpd's URI log callback, called
 * with the target as sent, before any header): the request starts here,
 * and its struct req with it, so that the access log sees the target's
 * query string and requests that libmicrohttpd answers by itself.
 */
static void *
on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
	http_server *srv = cls;
	struct req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	api_call_init(&r->call);
	r->conn = conn;
	r->srv = srv;
	r->content_length = -1;
	r->call.start_us = clock_mono_us();
	if (uri == NULL)
		uri = "";
	if (strlen(uri) < sizeof(r->target))
		memcpy(r->target, uri, strlen(uri) + 1);
	else /* shown cut, with "..." */
		snprintf(r->target, sizeof(r->target), "%.*s...",
		         (int)sizeof(r->target) - 4, uri);
	return r;
}

/*
 * The path of a request target: an absolute-form target
 * ("http://host:port/path", what a client sends to a proxy, RFC 9112
 * §3.2.2) is served as its path.  Borrowed from url.
 */
static const char *
target_path(const char *url)
{
	const char *p;

	if (strncasecmp(url, "http://", 7) == 0)
		p = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		p = url + 8;
	else
		return url;
	p += strcspn(p, "/");
	return *p ? p : "/";
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
           const char *method, const char *version, const char *upload_data,
           size_t *upload_data_size, void **con_cls)
{
	http_server *srv = cls;
	struct req *r = *con_cls;

	if (r == NULL) {
		/* on_request_line ran out of memory */
		return MHD_NO;
	}
	if (r->state == REQ_HEADERS) {
		const union MHD_ConnectionInfo *ci;

		header_done(srv, conn);
		/* Under way from here: a request still trickling its header
		 * is not one http_wait_answered waits for. */
		atomic_fetch_add(&srv->active, 1);
		r->active = true;
		r->call.method = method_of(method);
		r->call.path = target_path(url);
		snprintf(r->method, sizeof(r->method), "%s", method);
		r->call.arg = req_arg;
		r->call.header = req_header;
		r->call.h = r;
		r->call.resume = req_resume;
		r->call.shared_ok = true;
		ci = MHD_get_connection_info(conn,
		                             MHD_CONNECTION_INFO_CONNECTION_FD);
		r->call.fd = ci != NULL ? ci->connect_fd : -1;
		return on_headers(r, version);
	}

	switch (r->state) {
	case REQ_BODY:
		if (*upload_data_size > 0) {
			size_t n = *upload_data_size;
			*upload_data_size = 0;
			if (!api_wants_body(&r->call))
				return MHD_YES;
			if (r->too_large || r->len + n >
			    (size_t)srv->cfg->server.max_body_bytes) {
				r->too_large = true;
				r->discarded += n;
				/* A body that never ends: stop listening. */
				if (r->discarded > DISCARD_FACTOR *
				    (size_t)srv->cfg->server.max_body_bytes)
					return MHD_NO;
				return MHD_YES;
			}
			if (r->len + n + 1 > r->cap) {
				/* Sized once when the length was announced
				 * (it is at most max_body, api_precheck saw to
				 * it); a chunked body doubles, up to max_body. */
				size_t need = r->len + n + 1, cap;
				size_t most = (size_t)srv->cfg->server.max_body_bytes
				              + 1;
				if (r->content_length >= 0 &&
				    (size_t)r->content_length + 1 >= need)
					cap = (size_t)r->content_length + 1;
				else
					cap = r->cap ? r->cap : 16384;
				while (cap < need)
					cap *= 2;
				if (cap > most)
					cap = most > need ? most : need;
				char *b = realloc(r->body, cap);
				if (b == NULL)
					return MHD_NO;
				r->body = b;
				r->cap = cap;
			}
			memcpy(r->body + r->len, upload_data, n);
			r->len += n;
			r->body[r->len] = '\0';
			return MHD_YES;
		}
		/* The whole request is in. */
		if (r->too_large) {
			char detail[128];
			snprintf(detail, sizeof(detail), "the body is larger "
			         "than server.max_body (%lld bytes)",
			         (long long)srv->cfg->server.max_body_bytes);
			api_problem(&r->call, 413, "too-large", NULL, detail);
			return send_answer(r);
		}
		r->call.body = r->body ? r->body : "";
		r->call.body_len = r->len;
		if (api_handle(srv->a, &r->call) == API_PENDING) {
			r->state = REQ_PENDING;
			atomic_fetch_add(&srv->suspended, 1);
			MHD_suspend_connection(conn);
			api_start(srv->a, &r->call);
			return MHD_YES;
		}
		return send_answer(r);
	case REQ_PENDING:
		/* Counted down here, once: from now on on_completed has
		 * nothing to undo, whether the answer goes out or not. */
		r->state = REQ_SENT;
		atomic_fetch_sub(&srv->suspended, 1);
		api_finish(srv->a, &r->call);
		return send_answer(r);
	case REQ_SENT:
	default:
		/* The answer went out before the body was read: drop it. */
		*upload_data_size = 0;
		return MHD_YES;
	}
}

/* One access log line per request, at info level.  The status is "-"
 * when jobd did not answer (libmicrohttpd did, or the client left). */
static void
access_log(struct req *r, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;
	char addr[INET6_ADDRSTRLEN] = "-";
	char method[4 * sizeof(r->method) + 8];
	char target[1024];
	char status[16] = "-";
	const char *job = api_call_job_id(&r->call);

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL && ci->client_addr != NULL) {
		const struct sockaddr *sa = ci->client_addr;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
			          addr, sizeof(addr));
		else if (sa->sa_family == AF_INET6) {
			const struct in6_addr *a6 =
				&((const struct sockaddr_in6 *)sa)->sin6_addr;
			/* IPv4 through a dual-stack [::] socket */
			if (IN6_IS_ADDR_V4MAPPED(a6))
				inet_ntop(AF_INET, a6->s6_addr + 12, addr,
				          sizeof(addr));
			else
				inet_ntop(AF_INET6, a6, addr, sizeof(addr));
		}
	}
	log_escape(method, sizeof(method), r->method[0] ? r->method : "-");
	log_escape(target, sizeof(target), r->target);
	if (r->status_sent > 0)
		snprintf(status, sizeof(status), "%d", r->status_sent);
	log_info("access", "%s \"%s %s\" %s %zu %.3fms job=%s token=%s", addr,
	         method, target, status, r->bytes_sent,
	         (double)(clock_mono_us() - r->call.start_us) / 1000.0, job,
	         r->call.token_name[0] ? r->call.token_name : "-");
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	(void)cls;
	if (r == NULL)
		return;
	if (r->status_sent > 0)
		metrics_http_answer(r->status_sent);
	if (log_get_level() >= LOG_INFO_)
		access_log(r, conn);
	/* Resumed, but its client had gone: libmicrohttpd closed the
	 * connection without calling the handler again. */
	if (r->state == REQ_PENDING)
		atomic_fetch_sub(&r->srv->suspended, 1);
	if (r->active)
		atomic_fetch_sub(&r->srv->active, 1);
	/* A kept-alive connection now owes the next request's header. */
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		header_wait(r->srv, conn_of(conn));
	api_call_clear(&r->call);
	free(r->body);
	free(r);
	*con_cls = NULL;
}

/*
 * URL unescaping as libmicrohttpd does it (%XX), except that %00 stays as
 * written: a decoded NUL would end the C string early, and
 * "DELETE /jobs/<id>%00x" would then act on job <id>.
 */
static size_t
unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	char *in = s, *out = s;

	(void)cls;
	(void)conn;
	while (*in) {
		if (in[0] == '%' && isxdigit((unsigned char)in[1]) &&
		    isxdigit((unsigned char)in[2]) &&
		    !(in[1] == '0' && in[2] == '0')) {
			char hex[3] = {in[1], in[2], 0};
			*out++ = (char)strtol(hex, NULL, 16);
			in += 3;
		} else {
			*out++ = *in++;
		}
	}
	*out = '\0';
	return (size_t)(out - s);
}

void
http_mhd_message(const char *msg, char *out, size_t outlen, int *code)
{
	const char *p = strstr(msg, "HTTP response code is ");
	const char *title = strstr(msg, "<title>");
	size_t n = 0;
	bool tag = false, space = false;

	*code = 0;
	if (p != NULL) {
		int c = atoi(p + strlen("HTTP response code is "));
		if (c >= 100 && c < 600)
			*code = c;
	}
	if (*code > 0 && title != NULL) {
		/* "400 Request malformed": the code and the page's title. */
		const char *end = strstr(title, "</title>");
		int len = end ? (int)(end - title - 7) : 0;
		snprintf(out, outlen, "%d %.*s", *code, len > 200 ? 200 : len,
		         title + 7);
		return;
	}
	/* Anything else: the text without HTML tags, on one line. */
	for (p = msg; *p != '\0' && n + 1 < outlen; p++) {
		if (*p == '<')
			tag = true;
		else if (*p == '>')
			tag = false;
		else if (!tag) {
			bool sp = *p == ' ' || *p == '\n' || *p == '\r' ||
			          *p == '\t';
			if (sp && (space || n == 0))
				continue;
			out[n++] = sp ? ' ' : *p;
			space = sp;
		}
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

bool
http_mhd_client_caused(const char *msg)
{
	static const char *const marks[] = {
		"Error processing request", "Failed to parse", "malformed",
		"without `Host'", "Connection reset", "Failed to receive",
		"Failed to send", "too big", "chunk", "Invalid", "invalid",
		"timed out", "Unsupported HTTP version", "closure",
		"Connection socket is closed",
	};

	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
		if (strstr(msg, marks[i]) != NULL)
			return true;
	return false;
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512], text[512];
	int code = 0;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	http_mhd_message(msg, text, sizeof(text), &code);
	if (code > 0) {
		/* An answer libmicrohttpd sent by itself to a bad request: the
		 * client's doing, and an answer like jobd's own. */
		metrics_http_answer(code);
		log_info("http", "libmicrohttpd refused a request: %s", text);
	} else if (http_mhd_client_caused(msg)) {
		log_info("http", "libmicrohttpd: %s", text);
	} else {
		log_warn("http", "libmicrohttpd: %s", text);
	}
}

/* Reads a whole (PEM) file into a new NUL-terminated string. */
static int
read_file(const char *path, char **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return jobd_seterr(err, errlen, JOBD_ESYS, "%s: %s", path,
		                   strerror(errno));
	do {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *b = realloc(buf, cap);
			if (b == NULL) {
				free(buf);
				fclose(f);
				return jobd_seterr(err, errlen, JOBD_ENOMEM,
				                   "out of memory");
			}
			buf = b;
		}
		n = fread(buf + len, 1, 4096, f);
		len += n;
	} while (n > 0 && len <= (1 << 20));
	fclose(f);
	if (len == 0 || len > (1 << 20)) {
		free(buf);
		return jobd_seterr(err, errlen, JOBD_EINVAL, "%s: %s", path,
		                   len ? "larger than 1 MiB" : "empty");
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

/* Binds and listens on "host:port" or "[v6]:port". */
static int
bind_listen(const char *listen_addr, int *out_fd, char *err, size_t errlen)
{
	char host[256];
	const char *port;
	struct addrinfo hints = {0}, *res = NULL, *ai;
	int fd = -1, rc, one = 1, zero = 0;

	if (listen_addr[0] == '[') {
		const char *close = strchr(listen_addr, ']');
		size_t n = (size_t)(close - listen_addr - 1);
		if (n >= sizeof(host))
			return jobd_seterr(err, errlen, JOBD_EINVAL,
			                   "listen address too long");
		memcpy(host, listen_addr + 1, n);
		host[n] = '\0';
		port = close + 2;
	} else {
		const char *colon = strrchr(listen_addr, ':');
		size_t n = (size_t)(colon - listen_addr);
		if (n >= sizeof(host))
			return jobd_seterr(err, errlen, JOBD_EINVAL,
			                   "listen address too long");
		memcpy(host, listen_addr, n);
		host[n] = '\0';
		port = colon + 1;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0)
		return jobd_seterr(err, errlen, JOBD_EINVAL, "listen %s: %s",
		                   listen_addr, gai_strerror(rc));
	rc = JOBD_ESYS;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
		            SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* [::]:PORT takes IPv4 too (as IPv4-mapped addresses), as
		 * most daemons do, whatever net.ipv6.bindv6only says. */
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero,
			           sizeof(zero));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 1024) == 0) {
			rc = 0;
			break;
		}
		jobd_seterr(err, errlen, JOBD_ESYS, "listen %s: %s",
		            listen_addr, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (rc != 0)
		return rc;
	*out_fd = fd;
	return 0;
}

/*
 * Writes the address a listening socket is bound to ("127.0.0.1:8080",
 * "[::]:8080", "unix:/run/jobd.sock") into out, and whether only this
 * machine can reach it (loopback or a unix socket).
 */
static void
socket_address(int fd, char *out, size_t outlen, bool *local)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";

	*local = false;
	snprintf(out, outlen, "?");
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		*local = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
		snprintf(out, outlen, "%s:%u", host, ntohs(in->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
			(const struct sockaddr_in6 *)&ss;
		const uint8_t *b = in6->sin6_addr.s6_addr;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		*local = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
		         (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && b[12] == 127);
		snprintf(out, outlen, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else if (ss.ss_family == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
		*local = true;
		if (len > offsetof(struct sockaddr_un, sun_path) &&
		    un->sun_path[0] != '\0')
			snprintf(out, outlen, "unix:%.*s",
			         (int)(len - offsetof(struct sockaddr_un,
			                              sun_path)), un->sun_path);
		else
			snprintf(out, outlen, "unix:(abstract or unnamed)");
	}
}

int
http_open(const struct config *cfg, api *a, http_server **out, char *err,
          size_t errlen)
{
	http_server *s = calloc(1, sizeof(*s));
	int rc, nfds;

	if (s == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	s->cfg = cfg;
	s->a = a;
	s->listen_fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	if (clock_cond_init(&s->cv) != 0) {
		pthread_mutex_destroy(&s->mu);
		free(s);
		return jobd_seterr(err, errlen, JOBD_ESYS, "pthread_cond_init");
	}

	nfds = sd_listen_fds(1);
	if (nfds > 0) {
		s->listen_fd = SD_LISTEN_FDS_START;
		if (nfds > 1)
			log_warn("http", "systemd passed %d sockets; using the "
			         "first", nfds);
		fcntl(s->listen_fd, F_SETFL,
		      fcntl(s->listen_fd, F_GETFL) | O_NONBLOCK);
		log_info("http", "using the socket passed by systemd");
	} else {
		rc = bind_listen(cfg->server.listen, &s->listen_fd, err, errlen);
		if (rc != 0)
			goto fail;
		s->owns_fd = 1;
	}
	socket_address(s->listen_fd, s->address, sizeof(s->address),
	               &s->local);
	/* main warns from the configured address; a socket systemd passed
	 * is only known here. */
	if (nfds > 0 && !s->local && cfg->auth.tokens_file == NULL)
		log_warn("auth", "WARNING: no [auth] tokens_file and the "
		         "socket systemd passed is bound to %s, which is not "
		         "loopback: ANYONE who can reach it can submit and "
		         "cancel jobs", s->address);
	if (cfg->server.tls_cert != NULL) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			rc = jobd_seterr(err, errlen, JOBD_EINVAL, "this "
			                 "libmicrohttpd has no TLS support");
			goto fail;
		}
		rc = read_file(cfg->server.tls_cert, &s->tls_cert, err, errlen);
		if (rc == 0)
			rc = read_file(cfg->server.tls_key, &s->tls_key, err,
			               errlen);
		if (rc != 0)
			goto fail;
	}
	s->systemd_socket = nfds > 0;
	*out = s;
	return 0;
fail:
	if (s->owns_fd && s->listen_fd >= 0)
		close(s->listen_fd);
	free(s->tls_cert);
	free(s->tls_key);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return rc;
}

int
http_serve(http_server *s, char *err, size_t errlen)
{
	const struct config *cfg = s->cfg;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int threads;

	if (s->tls_cert != NULL)
		flags |= MHD_USE_TLS;
	threads = cfg->server.threads > 0 ? (unsigned int)cfg->server.threads
	                                  : (unsigned int)(ncpu > 0 ? ncpu : 1);
	struct MHD_OptionItem opts[20];
	size_t n = 0;
#define OPT(o, v, p) (opts[n++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (p)})
	OPT(MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL); /* first: see MHD */
	OPT(MHD_OPTION_LISTEN_SOCKET, s->listen_fd, NULL);
	OPT(MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL);
	OPT(MHD_OPTION_NOTIFY_CONNECTION, on_connection, s);
	OPT(MHD_OPTION_URI_LOG_CALLBACK, on_request_line, s);
	OPT(MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL);
	/* Per-connection memory: the request line and headers must fit
	 * (bigger ones get 431/414 from libmicrohttpd); every waiting client
	 * holds it, so it is kept small. */
	OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONNECTION_MEMORY, NULL);
	OPT(MHD_OPTION_CONNECTION_LIMIT, cfg->server.max_connections, NULL);
	OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->server.per_ip_connections,
	    NULL);
	OPT(MHD_OPTION_CONNECTION_TIMEOUT,
	    (cfg->server.connection_timeout_ms + 999) / 1000, NULL);
	if (s->tls_cert != NULL) {
		OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert);
		OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key);
	}
	if (threads > 1)
		OPT(MHD_OPTION_THREAD_POOL_SIZE, threads, NULL);
	OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
	if (cfg->server.header_timeout_ms > 0) {
		sigset_t all, old;
		int prc;
		/* The reaper takes no signal: main's sigwait does. */
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		prc = pthread_create(&s->reaper, NULL, reaper_main, s);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (prc != 0)
			return jobd_seterr(err, errlen, JOBD_ESYS,
			                   "cannot start the header timeout "
			                   "thread: %s", strerror(prc));
		s->reaper_started = true;
	}
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
	                        MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (s->d == NULL)
		return jobd_seterr(err, errlen, JOBD_ESYS,
		                   "libmicrohttpd failed to start on %s%s",
		                   s->address,
		                   s->tls_cert ? " (check the TLS certificate and "
		                   "key)" : "");
	log_notice("http", "listening on %s://%s%s with %u thread(s)",
	           s->tls_cert ? "https" : "http", s->address,
	           s->systemd_socket ? " (socket passed by systemd)" : "",
	           threads);
	return 0;
}

void
http_wait_answered(http_server *s, int64_t timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	struct timespec tick = {.tv_nsec = 5 * 1000000L};

	if (s == NULL || s->d == NULL)
		return;
	/* Bounded waits on libmicrohttpd's own threads, on the rare paths
	 * that end the process right after (it offers no event for this). */
	/* A request is complete (on_completed) once its answer has been
	 * sent; idle keep-alive connections hold no request. */
	while ((atomic_load(&s->suspended) > 0 || atomic_load(&s->active) > 0) &&
	       clock_mono_ms() < deadline)
		nanosleep(&tick, NULL);
}

void
http_stop(http_server *s)
{
	bool leaked = false;

	if (s == NULL)
		return;
	if (s->d != NULL && atomic_load(&s->suspended) > 0) {
		/* libmicrohttpd aborts the process if stopped with a suspended
		 * connection; the process is about to exit anyway. */
		log_warn("http", "%d request(s) still suspended at exit",
		         atomic_load(&s->suspended));
		leaked = true;
	}
	if (s->reaper_started) {
		pthread_mutex_lock(&s->mu);
		s->stopping = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->reaper, NULL);
	}
	/* libmicrohttpd's threads still run and use s (and the PEM text):
	 * leave it all to the exit. */
	if (leaked)
		return;
	if (s->d != NULL)
		MHD_stop_daemon(s->d); /* leaves a socket it was given open */
	if (s->owns_fd && s->listen_fd >= 0)
		close(s->listen_fd);
	free(s->tls_cert);
	if (s->tls_key != NULL) {
		explicit_bzero(s->tls_key, strlen(s->tls_key));
		free(s->tls_key);
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
