/*
 * http.c - libmicrohttpd glue.
 *
 * Each request gets a struct req (MHD's con_cls) holding its api_call and
 * body.  The access handler is called: once with the headers (we run the
 * checks that need no body: route, method, content type, the announced
 * length, request smuggling), then with each body chunk (kept up to
 * max_body, then discarded), then once more at the end (api_handle).  A
 * call that needs the writer suspends the connection; the writer's done()
 * resumes it and the handler is called again to send the answer.  No MHD
 * thread ever waits for a commit.
 *
 * LOCKING: none of our own.  A struct req is touched by its connection's
 * MHD thread, except req->call.op, which the writer owns between api_start
 * and the resume callback.  MHD_resume_connection is thread-safe.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "api.h"
#include "clock.h"
#include "err.h"
#include "http.h"
#include "log.h"

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
	atomic_int suspended; /* requests waiting for the writer or a job */
	atomic_int active;    /* requests begun and not yet completed */
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
	int status_sent; /* for the access log; 0 = none */
	size_t bytes_sent;
	char method[12];
	char path[256];
};

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

struct header_scan {
	int content_length;     /* how many Content-Length headers */
	int transfer_encoding;  /* how many Transfer-Encoding headers */
	const char *cl_value;
};

static enum MHD_Result
scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
            const char *value)
{
	struct header_scan *hs = cls;

	(void)kind;
	if (strcasecmp(key, "Content-Length") == 0) {
		hs->content_length++;
		hs->cl_value = value;
	} else if (strcasecmp(key, "Transfer-Encoding") == 0) {
		hs->transfer_encoding++;
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

	if (body == NULL) {
		body = strdup("");
		len = 0;
		if (body == NULL)
			return MHD_NO;
	}
	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		if (body != c->body_out)
			free(body);
		return MHD_NO;
	}
	c->body_out = NULL; /* the response owns it now */
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

static enum MHD_Result
on_headers(struct req *r)
{
	struct header_scan hs = {0};
	int64_t content_length = -1;

	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, scan_header, &hs);
	/* Request smuggling: libmicrohttpd 0.9.75 accepts both forms. */
	if (hs.content_length > 1) {
		api_problem(&r->call, 400, "bad-request", NULL,
		            "more than one Content-Length header");
		goto early;
	}
	if (hs.content_length > 0 && hs.transfer_encoding > 0) {
		api_problem(&r->call, 400, "bad-request", NULL,
		            "both Content-Length and Transfer-Encoding");
		goto early;
	}
	if (hs.cl_value != NULL) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(hs.cl_value, &end, 10);
		if (errno != 0 || end == hs.cl_value || *end != '\0') {
			api_problem(&r->call, 400, "bad-request", NULL,
			            "malformed Content-Length");
			goto early;
		}
		content_length = v > INT64_MAX ? INT64_MAX : (int64_t)v;
	}
	if (api_precheck(r->srv->a, &r->call, content_length) == API_DONE)
		goto early;
	r->state = REQ_BODY;
	return MHD_YES;
early:
	r->early = true;
	return send_answer(r);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
           const char *method, const char *version, const char *upload_data,
           size_t *upload_data_size, void **con_cls)
{
	http_server *srv = cls;
	struct req *r = *con_cls;

	(void)version;
	if (r == NULL) {
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return MHD_NO;
		api_call_init(&r->call);
		r->conn = conn;
		r->srv = srv;
		atomic_fetch_add(&srv->active, 1);
		r->call.method = method_of(method);
		r->call.path = url;
		snprintf(r->method, sizeof(r->method), "%s", method);
		snprintf(r->path, sizeof(r->path), "%s", url);
		r->call.arg = req_arg;
		r->call.header = req_header;
		r->call.h = r;
		r->call.resume = req_resume;
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		r->call.fd = ci != NULL ? ci->connect_fd : -1;
		r->call.start_us = clock_mono_us();
		*con_cls = r;
		return on_headers(r);
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
				size_t cap = r->cap ? r->cap : 1024;
				while (cap < r->len + n + 1)
					cap *= 2;
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
		api_finish(srv->a, &r->call);
		{
			enum MHD_Result ret = send_answer(r);
			atomic_fetch_sub(&srv->suspended, 1);
			return ret;
		}
	case REQ_SENT:
	default:
		/* The answer went out before the body was read: drop it. */
		*upload_data_size = 0;
		return MHD_YES;
	}
}

/* One access log line per request, at info level. */
static void
access_log(struct req *r, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;
	char addr[INET6_ADDRSTRLEN] = "-";
	const char *job = r->call.op.job.id[0] ? r->call.op.job.id
	                : r->call.id[0] ? r->call.id : "-";

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL && ci->client_addr != NULL) {
		const struct sockaddr *sa = ci->client_addr;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
			          addr, sizeof(addr));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6,
			          &((const struct sockaddr_in6 *)sa)->sin6_addr,
			          addr, sizeof(addr));
	}
	log_info("access", "%s \"%s %s\" %d %zu %.3fms job=%s token=%s", addr,
	         r->method, r->path, r->status_sent, r->bytes_sent,
	         (double)(clock_mono_us() - r->call.start_us) / 1000.0, job,
	         r->call.token_name ? r->call.token_name : "-");
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)toe;
	if (r == NULL)
		return;
	if (log_get_level() >= LOG_INFO_)
		access_log(r, conn);
	/* Resumed, but its client had gone: libmicrohttpd closed the
	 * connection without calling the handler again. */
	if (r->state == REQ_PENDING)
		atomic_fetch_sub(&r->srv->suspended, 1);
	atomic_fetch_sub(&r->srv->active, 1);
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

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_warn("http", "libmicrohttpd: %s", msg);
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
	} while (n > 0 && len < (1 << 20));
	fclose(f);
	if (buf == NULL)
		return jobd_seterr(err, errlen, JOBD_EINVAL, "%s: empty", path);
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
	int fd = -1, rc, one = 1;

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
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			           sizeof(one));
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
		if (rc != 0) {
			free(s);
			return rc;
		}
		s->owns_fd = 1;
	}
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
	struct MHD_OptionItem opts[16];
	size_t n = 0;
#define OPT(o, v, p) (opts[n++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (p)})
	OPT(MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL); /* first: see MHD */
	OPT(MHD_OPTION_LISTEN_SOCKET, s->listen_fd, NULL);
	OPT(MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL);
	OPT(MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL);
	/* Per-connection memory: the request line and headers must fit
	 * (bigger ones get 431/414 from libmicrohttpd).  The default 32 KiB
	 * made 1,000 waiting clients cost 35 MB. */
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
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
	                        MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (s->d == NULL)
		return jobd_seterr(err, errlen, JOBD_ESYS,
		                   "libmicrohttpd failed to start on %s%s",
		                   cfg->server.listen,
		                   s->tls_cert ? " (check the TLS certificate and "
		                   "key)" : "");
	log_notice("http", "serving %s%s with %u thread(s)",
	           s->systemd_socket ? "the systemd socket" : cfg->server.listen,
	           s->tls_cert ? " (HTTPS)" : "", threads);
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
	if (s == NULL)
		return;
	if (s->d != NULL && atomic_load(&s->suspended) > 0) {
		/* libmicrohttpd aborts the process if stopped with a suspended
		 * connection; the process is about to exit anyway. */
		log_warn("http", "%d request(s) still suspended at exit",
		         atomic_load(&s->suspended));
		s->d = NULL;
	}
	if (s->d != NULL)
		MHD_stop_daemon(s->d); /* leaves a socket it was given open */
	if (s->owns_fd && s->listen_fd >= 0)
		close(s->listen_fd);
	free(s->tls_cert);
	if (s->tls_key != NULL) {
		explicit_bzero(s->tls_key, strlen(s->tls_key));
		free(s->tls_key);
	}
	free(s);
}
