/*
 * config.h - jobd's configuration: one INI file parsed with libinih, driven
 * by one table of keys (config.c) that gives each key's type, default,
 * bounds and one-line documentation.  The table drives parsing, validation,
 * --check-config and the README's reference (jobd --config-reference).
 *
 * A loaded config is read-only after start-up and may be read by any thread.
 */
#ifndef JOBD_CONFIG_H
#define JOBD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cron.h"

enum durability { DURABILITY_FULL = 0, DURABILITY_NORMAL = 1 };

enum builtin_kind {
	BUILTIN_NONE = 0,
	BUILTIN_NOOP,
	BUILTIN_SLEEP,
	BUILTIN_ECHO,
	BUILTIN_FAIL,
};

struct handler_plugin;

struct handler_conf {
	char *name;              /* the job type this handler serves */
	int line;                /* line of the [handler.NAME] header */
	int command_line;        /* line of its command key (else line) */
	int64_t builtin;         /* enum builtin_kind, BUILTIN_NONE for exec */
	char *command;           /* exec command line (NULL for builtins) */
	char *plugin;            /* plugin shared object's path, or NULL */
	char *plugin_config;     /* text for the plugin's init, or NULL */
	int plugin_line;         /* line of its plugin key (else line) */
	struct handler_plugin *loaded; /* the loaded plugin (borrowed from
	                            handler_plugin.c, which sets it); NULL
	                            until handler_plugin_attach() */
	int64_t timeout_ms;      /* default per-attempt timeout */
	int64_t max_attempts;    /* default attempt budget, 1..100 */
	int64_t backoff_base_ms; /* first retry delay upper bound */
	int64_t backoff_max_ms;  /* cap of the exponential backoff */
	int64_t concurrency;     /* most attempts running at once; 0 = no cap */
	char *rate;              /* "N/s", "N/m", "N/h" as written; NULL none */
	int64_t rate_n;          /* parsed from rate: starts per period, 0 none */
	int64_t rate_period_us;  /* its period (1 s, 1 min or 1 h) */
	int64_t kill_grace_ms;   /* SIGTERM -> SIGKILL delay */
	int64_t max_output_bytes; /* stdout kept as result (exec) */
	char *env;               /* "KEY=VALUE ..." added to the environment */
	char *workdir;           /* working directory of the command */
};

enum schedule_timezone { SCHEDULE_UTC = 0, SCHEDULE_LOCAL = 1 };
enum schedule_catch_up { CATCH_UP_ONE = 0, CATCH_UP_SKIP = 1 };

/* A [schedule.NAME] section (DESIGN.md §5): cron xor every. */
struct schedule_conf {
	char *name;              /* [A-Za-z0-9_.-]{1,64} */
	int line;                /* line of the [schedule.NAME] header */
	char *cron;              /* the expression as written, or NULL */
	struct cron cron_expr;   /* parsed (when cron != NULL) */
	int64_t every_ms;        /* 0 with cron; whole seconds otherwise */
	char *type;              /* the handler its jobs go to */
	char *payload;           /* compact JSON text ("null" by default) */
	int64_t priority;        /* -100..100 */
	int64_t timezone;        /* enum schedule_timezone (cron only) */
	int64_t catch_up;        /* enum schedule_catch_up */
};

struct config {
	char *file; /* path the config came from */
	int refs;   /* config_acquire/config_release; guarded by their lock */
	struct {
		char *listen;            /* "host:port" or "[v6]:port" */
		int64_t max_body_bytes;
		int64_t max_batch;       /* most jobs in one POST /jobs array */
		int64_t max_wait_ms;
		int64_t max_waiters;
		int64_t event_buffer;    /* GET /events ring */
		int64_t threads;         /* HTTP threads, 0 = one per CPU */
		int64_t max_connections;
		int64_t per_ip_connections; /* 0 = no per-IP limit */
		int64_t connection_timeout_ms;
		int64_t header_timeout_ms;  /* 0 = no header deadline */
		char *tls_cert;
		char *tls_key;
		int64_t log_level;
	} server;
	struct {
		char *path;              /* SQLite file or postgresql:// URI */
		int64_t durability;      /* enum durability */
		int64_t max_queued;
		int64_t retention_ms;
		int64_t pool;            /* PostgreSQL reader connections */
		char *node;              /* node name; NULL: the host name */
		int64_t lease_ms;        /* a silent node is dead after this */
	} store;
	struct {
		int64_t threads;
		int64_t shutdown_grace_ms;
	} workers;
	struct {
		char *tokens_file;
	} auth;
	struct {
		char *secret;            /* "whsec_" + base64 key, or NULL */
		char *allow;             /* URL prefixes, space-separated */
		int64_t max_attempts;    /* deliveries tried before failed */
		int64_t timeout_ms;      /* of one delivery */
		int64_t backoff_base_ms; /* retry n waits random(0, base*2^(n-1)) */
	} callbacks;
	struct handler_conf *handlers;
	size_t nhandlers;
	struct schedule_conf *schedules;  /* in file order */
	size_t nschedules;
};

/*
 * Loads and validates FILE.  On success returns 0 and a new config in *out
 * that the caller frees with config_free().  On failure returns JOBD_EINVAL
 * (or JOBD_ESYS when the file cannot be read) and writes every error found,
 * one per line, as "FILE:LINE: [section] key: reason", into err.
 */
int config_load(const char *path, struct config **out, char *err,
                size_t errlen);

/* Same as config_load, from a string; name is used in messages. */
int config_load_string(const char *name, const char *text,
                       struct config **out, char *err, size_t errlen);

void config_free(struct config *cfg);

/*
 * The current configuration, for what SIGHUP may reload (the handler
 * sections).  config_set_current() takes ownership of cfg (NULL clears);
 * the previous current config is released.  config_acquire() returns the
 * current config with a reference that the caller gives back with
 * config_release(); a config is freed when its last reference goes.  Any
 * thread.
 */
void config_set_current(struct config *cfg);
struct config *config_acquire(void);
void config_release(struct config *cfg);

/* Borrowed pointer to the handler for type, or NULL. */
const struct handler_conf *config_handler(const struct config *cfg,
                                          const char *type);

/* Borrowed pointer to the schedule called name, or NULL. */
const struct schedule_conf *config_schedule(const struct config *cfg,
                                            const char *name);

/*
 * Parses a size ("512", "64k", "1M", "2G"; binary multiples) into bytes.
 * Returns 0 or JOBD_EINVAL.
 */
int config_parse_size(const char *s, int64_t *out);

/*
 * Parses a duration ("250ms", "30s", "5m", "1h", "7d", "1.5s"; a bare
 * number means seconds) into milliseconds.  Returns 0 or JOBD_EINVAL.
 */
int config_parse_duration(const char *s, int64_t *out_ms);

/* Name of a builtin kind ("noop", ...). */
const char *config_builtin_name(int64_t kind);

/*
 * Whether "host:port" can be listened on as far as can be known without
 * binding: it parses and the host resolves (a bracketed host must be a
 * numeric IPv6 address).  0 or JOBD_EINVAL with the reason in err.
 */
int config_check_listen(const char *listen, char *err, size_t errlen);

/*
 * The start-up's checks of what a valid file names, short of binding and
 * opening the store: the listen address (config_check_listen) and the TLS
 * files' readability.  Returns 0, or JOBD_EINVAL with every problem, one
 * per line ("FILE: [section] key: reason"), in err.
 */
int config_check_runtime(const struct config *cfg, char *err, size_t errlen);

/*
 * What will not work although the file is valid: a handler command that
 * is not an executable file (programs named without a '/' are looked up
 * where exec handlers look), no handler at all.  Writes one line per
 * warning into out (may be NULL) and returns how many there are.
 */
size_t config_warnings(const struct config *cfg, char *out, size_t outlen);

/* Writes the Markdown reference of every key (from the table) to f. */
void config_write_reference(FILE *f);

/*
 * Writes the same reference as mdoc(7) lines, one .Ss and .Bl -tag list per
 * section, for the generated jobd.conf(5) (man/jobd.conf.5.in).
 */
void config_write_mdoc(FILE *f);

/*
 * The keys whose change a reload cannot apply (everything but the handler
 * and schedule sections, [server] log_level and the contents of [auth] tokens_file):
 * returns how many differ between running and next, and names them in out
 * ("[server] listen, [store] path").
 */
size_t config_restart_changes(const struct config *running,
                              const struct config *next, char *out,
                              size_t outlen);

#endif
