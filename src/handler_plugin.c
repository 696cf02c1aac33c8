/*
 * handler_plugin.c - handlers in shared objects (DESIGN §4 "plugin"):
 * loads them with dlopen at start-up (and at SIGHUP for sections that are
 * new or changed), and runs their attempts on worker threads behind the
 * same ops table as exec and builtin.  What a plugin returns is checked
 * here the way exec output is: a result that is not JSON is kept as a
 * JSON string, one over max_output is dropped, an error message is made
 * valid UTF-8 and bounded, an outcome jobd does not know is a retry.
 *
 * LOCKING: the list of loaded plugins (loaded_head) is changed by the
 * main thread only (handler_plugin_attach at start-up and SIGHUP,
 * handler_plugin_unload_all at shutdown, after the workers stopped), so
 * it needs no lock.  Workers reach a loaded plugin only through a
 * handler_conf published by config_set_current() (whose lock orders the
 * writes before), and a loaded plugin's fields never change after it was
 * loaded, so workers read them without a lock.  Calls into a plugin's
 * run may overlap on several workers: the plugin guards its own state.
 */
#include <cJSON.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "handler_plugin.h"
#include "log.h"
#include "submit.h"
#include "utf8.h"

/* One init of one shared object with one plugin_config. */
struct handler_plugin {
	char *path;                     /* as configured */
	char *config;                   /* plugin_config, or NULL */
	void *dl;                       /* dlopen handle */
	const struct jobd_plugin *def;  /* the plugin's jobd_plugin */
	void *state;                    /* what its init made */
	struct handler_plugin *next;
};

/* Every plugin loaded and initialised, newest first; main thread. */
static struct handler_plugin *loaded_head;

/* Results nested deeper than this are kept as a string (as exec's). */
#define RESULT_MAX_DEPTH 64
/* The longest error message kept from a plugin, in bytes. */
#define ERROR_MAX 4096

static bool
str_same(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The loaded plugin for path and config in list, or NULL. */
static struct handler_plugin *
find(struct handler_plugin *list, const char *path, const char *config)
{
	for (struct handler_plugin *p = list; p != NULL; p = p->next)
		if (strcmp(p->path, path) == 0 && str_same(p->config, config))
			return p;
	return NULL;
}

/* fini, dlclose and free of one loaded plugin (initialised or not). */
static void
plugin_unload(struct handler_plugin *p, bool initialised)
{
	if (p == NULL)
		return;
	if (initialised && p->def != NULL && p->def->fini != NULL)
		p->def->fini(p->state);
	if (p->dl != NULL)
		dlclose(p->dl);
	free(p->path);
	free(p->config);
	free(p);
}

/* dlerror()'s text without the path it starts with (ours says it). */
static const char *
dl_reason(const char *e, const char *path)
{
	size_t n = strlen(path);

	if (e == NULL)
		return "dlopen failed";
	if (strncmp(e, path, n) == 0 && e[n] == ':' && e[n + 1] == ' ')
		return e + n + 2;
	return e;
}

/*
 * Loads path, checks its jobd_plugin and calls its init with config.
 * Returns 0 and a new loaded plugin in *out, or JOBD_EINVAL (or
 * JOBD_ENOMEM) with the reason, which does not repeat the path, in why.
 */
static int
plugin_load(const char *path, const char *config,
            struct handler_plugin **out, char *why, size_t whylen)
{
	struct handler_plugin *p = calloc(1, sizeof(*p));
	struct stat sb;
	const char *e;
	int rc;

	*out = NULL;
	if (p == NULL || (p->path = strdup(path)) == NULL ||
	    (config != NULL && (p->config = strdup(config)) == NULL)) {
		plugin_unload(p, false);
		return jobd_seterr(why, whylen, JOBD_ENOMEM, "out of memory");
	}
	/* dlopen would block on a FIFO and take code from a file others may
	 * have written: refuse both first. */
	if (stat(path, &sb) != 0) {
		rc = jobd_seterr(why, whylen, JOBD_EINVAL, "cannot load: %s",
		                 strerror(errno));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		rc = jobd_seterr(why, whylen, JOBD_EINVAL, "not a regular file");
		goto fail;
	}
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		rc = jobd_seterr(why, whylen, JOBD_EINVAL, "writable by %s "
		                 "(mode %04o): whoever can write it runs code "
		                 "inside jobd; chmod go-w it",
		                 sb.st_mode & S_IWOTH ? "others" : "its group",
		                 (unsigned)(sb.st_mode & 07777));
		goto fail;
	}
	dlerror();
	p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (p->dl == NULL) {
		e = dlerror();
		rc = jobd_seterr(why, whylen, JOBD_EINVAL, "cannot load: %s",
		                 dl_reason(e, path));
		goto fail;
	}
	dlerror();
	p->def = dlsym(p->dl, "jobd_plugin");
	if (p->def == NULL) {
		rc = jobd_seterr(why, whylen, JOBD_EINVAL, "no \"jobd_plugin\" "
		                 "symbol: not a jobd plugin");
		goto fail;
	}
	if (p->def->abi != JOBD_HANDLER_ABI) {
		rc = jobd_seterr(why, whylen, JOBD_EINVAL, "plugin ABI %d, but "
		                 "this jobd has JOBD_HANDLER_ABI %d: rebuild the "
		                 "plugin against this jobd's jobd/handler.h",
		                 p->def->abi, JOBD_HANDLER_ABI);
		goto fail;
	}
	if (p->def->run == NULL) {
		rc = jobd_seterr(why, whylen, JOBD_EINVAL, "its jobd_plugin "
		                 "has no run function");
		goto fail;
	}
	if (p->def->init != NULL) {
		/* DESIGN §4: init(config, &state); a plugin says why it
		 * refuses on stderr, before this line. */
		int irc = p->def->init(config, &p->state);
		if (irc != 0) {
			rc = jobd_seterr(why, whylen, JOBD_EINVAL, "init failed "
			                 "(returned %d; the plugin's own reason, "
			                 "if any, is on the line before)", irc);
			goto fail;
		}
	}
	*out = p;
	return 0;
fail:
	plugin_unload(p, false);
	return rc;
}

int
handler_plugin_attach(struct config *cfg, char *err, size_t errlen)
{
	struct handler_plugin *fresh = NULL; /* loaded by this call */
	size_t used = 0;
	int rc = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	for (size_t i = 0; i < cfg->nhandlers; i++) {
		struct handler_conf *h = &cfg->handlers[i];
		struct handler_plugin *p;
		char why[1024];

		h->loaded = NULL;
		if (h->plugin == NULL)
			continue;
		p = find(fresh, h->plugin, h->plugin_config);
		if (p == NULL)
			p = find(loaded_head, h->plugin, h->plugin_config);
		if (p == NULL) {
			int lrc = plugin_load(h->plugin, h->plugin_config, &p,
			                      why, sizeof(why));
			if (lrc != 0) {
				int n = 0;
				if (err != NULL && used < errlen)
					n = snprintf(err + used, errlen - used,
					             "%s%s:%d: [handler.%s] plugin: "
					             "%s: %s", used ? "\n" : "",
					             cfg->file, h->plugin_line,
					             h->name, h->plugin, why);
				if (n > 0)
					used += (size_t)n;
				rc = JOBD_EINVAL;
				continue;
			}
			log_info("plugin", "%s: loaded plugin \"%s\" (ABI %d) "
			         "for [handler.%s]", p->path,
			         p->def->name ? p->def->name : "", p->def->abi,
			         h->name);
			p->next = fresh;
			fresh = p;
		}
		h->loaded = p;
	}
	if (rc != 0) {
		for (size_t i = 0; i < cfg->nhandlers; i++)
			cfg->handlers[i].loaded = NULL;
		while (fresh != NULL) {
			struct handler_plugin *next = fresh->next;
			plugin_unload(fresh, true);
			fresh = next;
		}
		return rc;
	}
	/* Kept: fresh ones join the list (none is ever unloaded before
	 * shutdown). */
	while (fresh != NULL) {
		struct handler_plugin *next = fresh->next;
		fresh->next = loaded_head;
		loaded_head = fresh;
		fresh = next;
	}
	return 0;
}

void
handler_plugin_unload_all(void)
{
	while (loaded_head != NULL) {
		struct handler_plugin *next = loaded_head->next;
		plugin_unload(loaded_head, true);
		loaded_head = next;
	}
}

/*
 * A plugin's result text as the job's result: the text itself (compact)
 * when it is strict JSON, else a JSON string of it.  NULL when there is
 * none (or out of memory).
 */
static char *
make_result(const char *text, size_t len)
{
	cJSON *v;
	char *out = NULL, *clean;

	if (len == 0)
		return NULL;
	if (utf8_valid(text, len) &&
	    submit_json_strict(text, len, RESULT_MAX_DEPTH, NULL, 0) == 0)
		return submit_json_compact(text, len);
	clean = utf8_sanitize(text, len);
	if (clean == NULL)
		return NULL;
	v = cJSON_CreateString(clean);
	free(clean);
	if (v != NULL)
		out = cJSON_PrintUnformatted(v);
	cJSON_Delete(v);
	return out;
}

/* Replaces res->error with a printf-style message followed by what the
 * plugin said (if anything). */
static void
add_error(struct jobd_result *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
add_error(struct jobd_result *res, const char *fmt, ...)
{
	char msg[256], *both = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (res->error != NULL && asprintf(&both, "%s: %s", msg,
	                                   res->error) < 0)
		both = NULL;
	if (both == NULL)
		both = strdup(msg);
	free(res->error);
	res->error = both;
}

static void
plugin_run(const struct handler_conf *h, const struct jobd_job_view *job,
           jobd_ctx *ctx, struct jobd_result *res)
{
	const struct handler_plugin *p = h->loaded;
	struct jobd_result out = {0};
	int outcome;

	if (p == NULL) {
		/* Cannot happen once attach succeeded; be safe anyway. */
		res->outcome = JOBD_RETRY;
		res->error = strdup("plugin: not loaded");
		return;
	}
	outcome = p->def->run(p->state, job, ctx, &out);

	res->has_exit_code = out.has_exit_code != 0;
	res->exit_code = out.has_exit_code ? out.exit_code : 0;
	if (out.error != NULL) {
		size_t n = strnlen(out.error, ERROR_MAX);
		res->error = utf8_sanitize(out.error, n);
		free(out.error);
	}
	if (out.result != NULL) {
		size_t n = strlen(out.result);
		if ((int64_t)n > h->max_output_bytes) {
			res->output_truncated = 1;
			log_warn("plugin", "job %s (%s): result of %zu bytes "
			         "dropped: over max_output (%lld)", job->id,
			         job->type, n, (long long)h->max_output_bytes);
		} else {
			res->result = make_result(out.result, n);
		}
		free(out.result);
	}
	switch (outcome) {
	case JOBD_SUCCEEDED:
	case JOBD_RETRY:
	case JOBD_FAILED_FOR_GOOD:
		res->outcome = outcome;
		break;
	case JOBD_STOPPED:
		res->outcome = outcome;
		if (jobd_ctx_stop_reason(ctx) == JOBD_STOP_NONE)
			add_error(res, "plugin %s stopped unasked", p->path);
		break;
	default:
		res->outcome = JOBD_RETRY;
		add_error(res, "plugin %s returned outcome %d, not a "
		          "jobd_outcome", p->path, outcome);
		break;
	}
}

const struct handler_kind handler_plugin_kind = {
	.name = "plugin",
	.run = plugin_run,
};
