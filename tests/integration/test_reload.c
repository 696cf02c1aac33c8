/*
 * test_reload.c - SIGHUP (issue 12): the tokens file and log_level are
 * re-read, so that revoking a token needs no restart, and a reload names
 * the keys whose change needs one.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(chmod(path, mode), 0);
}

static char *
read_file(const char *path)
{
	char *text = jd_read_file(path, NULL);

	ck_assert_msg(text != NULL, "cannot read %s", path);
	return text;
}

/* Replaces the first `from` in the config file with `to`. */
static void
edit_config(jd *d, const char *from, const char *to)
{
	char *text = read_file(d->conf_path), *at = strstr(text, from);
	FILE *f;

	ck_assert_msg(at != NULL, "no %s in the config", from);
	*at = '\0';
	f = fopen(d->conf_path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%s%s%s", text, to, at + strlen(from));
	fclose(f);
	free(text);
}

static long
get_jobs_as(jd *d, const char *token)
{
	char hdr[128];
	struct jd_resp *r;
	long st;

	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", token);
	r = jd_request(d, "GET", "/jobs?limit=1",
	               (const char *const[]){hdr, NULL}, NULL);
	st = r->status;
	jd_resp_free(r);
	return st;
}

/* Waits (bounded) until the log holds `what`. */
static void
wait_log(jd *d, const char *what)
{
	char *log = jd_wait_log(d, what, 10000);

	ck_assert_msg(log != NULL, "no \"%s\" in the log", what);
	free(log);
}

START_TEST(test_reload_tokens_level_and_restart_keys)
{
	char dir[] = "/tmp/jobd-reload-XXXXXX", tokens[128], extra[256];
	struct jd_opts o = {.threads = 2};
	jd *d;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(tokens, sizeof(tokens), "%s/tokens", dir);
	write_file(tokens, "alice:alice-token-0123456789\n", 0600);
	snprintf(extra, sizeof(extra), "[auth]\ntokens_file = %s\n", tokens);
	o.extra = extra;
	d = jd_new(&o);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(jd_start(d), 0);
	ck_assert_int_eq(get_jobs_as(d, "alice-token-0123456789"), 200);
	ck_assert_int_eq(get_jobs_as(d, "bob-token-0123456789ab"), 401);

	/* Alice revoked, Bob added; the log level raised; the workers
	 * changed (that needs a restart). */
	write_file(tokens, "bob:bob-token-0123456789ab\n", 0600);
	edit_config(d, "[server]\n", "[server]\nlog_level = notice\n");
	edit_config(d, "threads = 2", "threads = 3");
	ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
	wait_log(d, "SIGHUP: reloaded");
	ck_assert_int_eq(get_jobs_as(d, "alice-token-0123456789"), 401);
	ck_assert_int_eq(get_jobs_as(d, "bob-token-0123456789ab"), 200);
	wait_log(d, "take effect at the next restart: [workers] threads");

	/* No access line (info) after the reload: the level is notice. */
	char *log = read_file(d->log_path);
	char *after = strstr(log, "SIGHUP: reloaded");
	ck_assert_ptr_nonnull(after);
	ck_assert_msg(strstr(after, "access:") == NULL,
	              "access lines after log_level = notice:\n%s", after);
	free(log);

	/* A bad tokens file on a reload keeps the tokens in use. */
	write_file(tokens, "no colon here\n", 0600);
	ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
	wait_log(d, "the tokens in use are kept");
	ck_assert_int_eq(get_jobs_as(d, "bob-token-0123456789ab"), 200);

	/* An empty file revokes the last token too (found by review: it
	 * was refused, and revoking it needed a restart). */
	write_file(tokens, "# nobody\n", 0600);
	ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
	wait_log(d, "SIGHUP: 0 token(s)");
	ck_assert_int_eq(get_jobs_as(d, "bob-token-0123456789ab"), 401);

	jd_free(d);
	unlink(tokens);
	rmdir(dir);
}
END_TEST

static Suite *
reload_suite(void)
{
	Suite *s = suite_create("reload");
	TCase *tc = tcase_create("reload");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_reload_tokens_level_and_restart_keys);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(reload_suite());
}
