/*
 * test_progress.c - progress reports (src/progress.c): which texts are a
 * report (progress_parse), how fd 3's bytes become lines
 * (progress_lines), and the table of running attempts: the last report
 * shown for the current claim only, until the completion is written.
 */
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "handler_ctx.h"
#include "progress.h"

/* progress_parse of a NUL-terminated text: its compact form, or NULL. */
static char *
parse(const char *s, size_t len)
{
	char *out = NULL;
	int rc = progress_parse(s, len, &out);

	ck_assert(rc == 0 ? out != NULL : out == NULL);
	return out;
}

START_TEST(test_parse)
{
	static const struct { const char *in; const char *out; } ok[] = {
		{"{}", "{}"},
		{"{\"percent\": 40}", "{\"percent\":40}"},
		{"  {\"a\" : [1, 2, {\"b\": null}] }  ", "{\"a\":[1,2,{\"b\":null}]}"},
		{"{\"percent\": 40}\r", "{\"percent\":40}"},
		{"{\"m\": \"r\\u00e9sum\\u00e9 \\u0000 ok\"}",
		 "{\"m\":\"r\\u00e9sum\\u00e9 \\u0000 ok\"}"},
		{"{\"m\": \"\xc3\xa9\xe2\x82\xac\"}", "{\"m\":\"\xc3\xa9\xe2\x82\xac\"}"},
		{"{\"big\": 9007199254740993}", "{\"big\":9007199254740993}"},
		{"{\"a\": 1, \"a\": 2}", "{\"a\":1,\"a\":2}"},
	};
	static const char *const bad[] = {
		"", " ", "\r", "null", "true", "1", "\"s\"", "[]", "[{}]",
		"{", "}", "{\"a\": }", "{\"a\": 1,}", "{'a': 1}", "{a: 1}",
		"{\"a\": 1} {}", "{\"a\": 1} x", "{\"a\": NaN}",
		"{\"a\": 01}", "{\"a\": \"\x01\"}", "{\"a\": \"\xff\"}",
		"{\"a\": \"\xc0\x80\"}", "{\"a\": \"\xed\xa0\x80\"}",
		"\xef\xbb\xbf{}",
	};
	char *out;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		out = parse(ok[i].in, strlen(ok[i].in));
		ck_assert_msg(out != NULL && strcmp(out, ok[i].out) == 0,
		              "ok %zu: %s -> %s", i, ok[i].in, out);
		free(out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = parse(bad[i], strlen(bad[i]));
		ck_assert_msg(out == NULL, "bad %zu accepted: %s", i, out);
	}
	/* A NUL byte, inside a string or out of one. */
	ck_assert_ptr_null(parse("{\"a\": \"x\0y\"}", 12));
	ck_assert_ptr_null(parse("{}\0", 3));
	/* Nested 32 deep is fine, 33 is not. */
	char deep[128];
	for (int depth = 32; depth <= 33; depth++) {
		size_t n = 0;
		deep[n++] = '{';
		deep[n++] = '"', deep[n++] = 'a', deep[n++] = '"';
		deep[n++] = ':';
		for (int k = 1; k < depth; k++)
			deep[n++] = '[';
		for (int k = 1; k < depth; k++)
			deep[n++] = ']';
		deep[n++] = '}';
		out = parse(deep, n);
		ck_assert_msg((out != NULL) == (depth == 32), "depth %d", depth);
		free(out);
	}
}
END_TEST

/* 4096 bytes is a report, 4097 is not (a trailing "\r" not counted). */
START_TEST(test_parse_size)
{
	char *buf = malloc(PROGRESS_MAX + 3), *out;

	ck_assert_ptr_nonnull(buf);
	for (size_t len = PROGRESS_MAX - 1; len <= PROGRESS_MAX + 1; len++) {
		memset(buf, 'x', len);
		memcpy(buf, "{\"p\":\"", 6);
		memcpy(buf + len - 2, "\"}", 2);
		out = parse(buf, len);
		ck_assert_msg((out != NULL) == (len <= PROGRESS_MAX), "%zu",
		              len);
		free(out);
		buf[len] = '\r';
		out = parse(buf, len + 1);
		ck_assert_msg((out != NULL) == (len <= PROGRESS_MAX), "%zu\\r",
		              len);
		free(out);
	}
	free(buf);
}
END_TEST

/* ---- lines ---- */

struct seen {
	char lines[16][PROGRESS_MAX + 2];
	size_t len[16];
	int n;
};

static void
on_line(void *arg, const char *line, size_t len)
{
	struct seen *s = arg;

	ck_assert_int_lt(s->n, 16);
	ck_assert_uint_le(len, PROGRESS_MAX + 1);
	memcpy(s->lines[s->n], line, len);
	s->lines[s->n][len] = '\0';
	s->len[s->n++] = len;
}

/* Feeds text in pieces of step bytes. */
static void
feed(struct progress_lines *l, struct seen *s, const char *text, size_t n,
     size_t step)
{
	for (size_t at = 0; at < n; at += step)
		progress_lines_feed(l, text + at, n - at < step ? n - at : step,
		                    on_line, s);
}

START_TEST(test_lines)
{
	static const char text[] = "one\ntwo\n\nthree\r\nlast";
	static const size_t steps[] = {1, 2, 3, 7, sizeof(text)};

	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		struct progress_lines l = {0};
		struct seen s = {0};
		feed(&l, &s, text, sizeof(text) - 1, steps[k]);
		ck_assert_int_eq(s.n, 4);
		progress_lines_end(&l, on_line, &s);
		ck_assert_int_eq(s.n, 5);
		ck_assert_str_eq(s.lines[0], "one");
		ck_assert_str_eq(s.lines[1], "two");
		ck_assert_str_eq(s.lines[2], "");
		ck_assert_str_eq(s.lines[3], "three\r");
		ck_assert_str_eq(s.lines[4], "last");
		/* A NUL is just a byte of its line. */
		l = (struct progress_lines){0};
		s.n = 0;
		feed(&l, &s, "a\0b\nc", 5, steps[k]);
		ck_assert_int_eq(s.n, 1);
		ck_assert_uint_eq(s.len[0], 3);
		ck_assert(memcmp(s.lines[0], "a\0b", 3) == 0);
	}
}
END_TEST

/* A line longer than the buffer is dropped whole, however it comes, and
 * the next one is whole. */
START_TEST(test_lines_too_long)
{
	size_t big = 3 * PROGRESS_MAX;
	char *text = malloc(big + 64);
	static const size_t steps[] = {1, 100, PROGRESS_MAX, PROGRESS_MAX + 1,
	                               65536};

	ck_assert_ptr_nonnull(text);
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		/* exactly the buffer (PROGRESS_MAX + 1), one more, much more */
		size_t sizes[] = {PROGRESS_MAX + 1, PROGRESS_MAX + 2, big};
		for (size_t z = 0; z < 3; z++) {
			struct progress_lines l = {0};
			struct seen s = {0};
			size_t n = sizes[z];
			memset(text, 'x', n);
			memcpy(text + n, "\nok\nlong", 8);
			feed(&l, &s, text, n + 8, steps[k]);
			progress_lines_end(&l, on_line, &s);
			if (z == 0) {
				ck_assert_int_eq(s.n, 3);
				ck_assert_uint_eq(s.len[0], PROGRESS_MAX + 1);
				ck_assert_str_eq(s.lines[1], "ok");
			} else {
				ck_assert_int_eq(s.n, 2);
				ck_assert_str_eq(s.lines[0], "ok");
				ck_assert_str_eq(s.lines[1], "long");
			}
			/* Too long at EOF: nothing. */
			l = (struct progress_lines){0};
			s.n = 0;
			feed(&l, &s, text, sizes[z] == big ? big : n, steps[k]);
			progress_lines_end(&l, on_line, &s);
			ck_assert_int_eq(s.n, z == 0 ? 1 : 0);
		}
	}
	free(text);
}
END_TEST

/* ---- the table ---- */

static struct job
running(const char *id, const char *claim)
{
	struct job j;

	job_init(&j);
	snprintf(j.id, sizeof(j.id), "%s", id);
	snprintf(j.claim, sizeof(j.claim), "%s", claim);
	j.status = JOB_RUNNING;
	return j;
}

static char *
text(const char *s)
{
	char *t = strdup(s);

	ck_assert_ptr_nonnull(t);
	return t;
}

START_TEST(test_table)
{
	progress *p = progress_new(NULL, NULL);
	const char *id = "01900000-0000-7000-8000-000000000001";
	struct job j[3];
	char *last;

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(progress_report(p, id, "t", "c1", text("{\"a\":1}")),
	                 0);
	ck_assert_int_eq(progress_report(p, id, "t", "c1", text("{\"a\":2}")),
	                 0);
	/* Shown for the current claim of a running job only; the store's
	 * stays otherwise. */
	j[0] = running(id, "c1");
	j[1] = running(id, "c0");
	j[2] = running(id, "c1");
	j[2].status = JOB_QUEUED;
	j[2].progress = text("{\"stored\":1}");
	progress_apply(p, j, 3);
	ck_assert_str_eq(j[0].progress, "{\"a\":2}");
	ck_assert_ptr_null(j[1].progress);
	ck_assert_str_eq(j[2].progress, "{\"stored\":1}");
	for (int i = 0; i < 3; i++)
		job_clear(&j[i]);

	/* Ended: its last for the completion, still shown, no more taken. */
	last = progress_end(p, id, "c0");
	ck_assert_ptr_null(last);
	last = progress_end(p, id, "c1");
	ck_assert_str_eq(last, "{\"a\":2}");
	free(last);
	ck_assert_int_eq(progress_report(p, id, "t", "c1", text("{\"a\":3}")),
	                 0);
	j[0] = running(id, "c1");
	progress_apply(p, j, 1);
	ck_assert_str_eq(j[0].progress, "{\"a\":2}");
	job_clear(&j[0]);

	/* A new attempt's report beside an ended one not yet forgotten
	 * (and a stale attempt's, still running here): each is shown for
	 * its own claim only; forgetting the old claim leaves the new one. */
	ck_assert_int_eq(progress_report(p, id, "t", "c2", text("{\"b\":1}")),
	                 0);
	ck_assert_int_eq(progress_report(p, id, "t", "c0", text("{\"z\":1}")),
	                 0);
	j[0] = running(id, "c1");
	progress_apply(p, j, 1);
	ck_assert_str_eq(j[0].progress, "{\"a\":2}");
	job_clear(&j[0]);
	progress_forget(p, id, "c0");
	progress_forget(p, id, "c1");
	j[0] = running(id, "c2");
	progress_apply(p, j, 1);
	ck_assert_str_eq(j[0].progress, "{\"b\":1}");
	job_clear(&j[0]);
	progress_forget(p, id, "c2");
	j[0] = running(id, "c2");
	progress_apply(p, j, 1);
	ck_assert_ptr_null(j[0].progress);
	job_clear(&j[0]);

	/* A NULL table takes reports and shows nothing. */
	ck_assert_int_eq(progress_report(NULL, id, "t", "c", text("{}")), 0);
	ck_assert_ptr_null(progress_end(NULL, id, "c"));
	progress_forget(NULL, id, "c");
	progress_apply(NULL, j, 0);
	progress_free(p);
}
END_TEST

/* jobd_ctx_progress(), as builtins and plugins call it. */
START_TEST(test_ctx)
{
	progress *p = progress_new(NULL, NULL);
	const char *id = "01900000-0000-7000-8000-000000000002";
	jobd_ctx *ctx = NULL;
	size_t big = 1 << 20;
	char *huge = malloc(big + 1);
	struct job j;

	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(huge);
	ck_assert_int_eq(handler_ctx_init(&ctx, INT64_MAX, 1000), 0);
	/* No table yet: checked, then dropped. */
	ck_assert_int_eq(jobd_ctx_progress(ctx, "{\"a\": 1}"), 0);
	ck_assert_int_eq(jobd_ctx_progress(ctx, "[1]"), -1);
	ck_assert(!handler_ctx_reported(ctx));
	handler_ctx_set_job(ctx, p, id, "t", "c");
	ck_assert_int_eq(jobd_ctx_progress(NULL, "{}"), -1);
	ck_assert_int_eq(jobd_ctx_progress(ctx, NULL), -1);
	ck_assert_int_eq(jobd_ctx_progress(ctx, ""), -1);
	ck_assert_int_eq(jobd_ctx_progress(ctx, "{\"a\": }"), -1);
	/* A MiB-long text is refused without being read whole. */
	memset(huge, ' ', big);
	huge[0] = '{';
	huge[big - 1] = '}';
	huge[big] = '\0';
	ck_assert_int_eq(jobd_ctx_progress(ctx, huge), -1);
	ck_assert(!handler_ctx_reported(ctx));
	ck_assert_int_eq(jobd_ctx_progress(ctx, "{\"percent\": 7}"), 0);
	ck_assert(handler_ctx_reported(ctx));
	j = running(id, "c");
	progress_apply(p, &j, 1);
	ck_assert_str_eq(j.progress, "{\"percent\":7}");
	job_clear(&j);
	handler_ctx_free(ctx);
	free(huge);
	progress_free(p);
}
END_TEST

/* Threads of one attempt report at once (a plugin may), beside GET and
 * the worker's end: every report is taken whole, the last of one of them
 * wins. */
struct racer {
	progress *p;
	int n;
};

#define RACE_ID "01900000-0000-7000-8000-000000000003"

static void *
race_report(void *arg)
{
	struct racer *r = arg;
	char buf[64];

	for (int i = 0; i <= 2000; i++) {
		snprintf(buf, sizeof(buf), "{\"t\":%d,\"i\":%d}", r->n, i);
		ck_assert_int_eq(progress_report(r->p, RACE_ID, "t", "c",
		                                 text(buf)), 0);
	}
	return NULL;
}

static void *
race_get(void *arg)
{
	struct racer *r = arg;

	for (int i = 0; i < 2000; i++) {
		struct job j = running(RACE_ID, "c");
		progress_apply(r->p, &j, 1);
		ck_assert(j.progress == NULL || j.progress[0] == '{');
		job_clear(&j);
	}
	return NULL;
}

START_TEST(test_race)
{
	progress *p = progress_new(NULL, NULL);
	struct racer r[5];
	pthread_t t[5];
	struct job j;
	char *last;

	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < 5; i++) {
		r[i] = (struct racer){p, i};
		ck_assert_int_eq(pthread_create(&t[i], NULL, i < 4 ? race_report
		                                : race_get, &r[i]), 0);
	}
	for (int i = 0; i < 5; i++)
		pthread_join(t[i], NULL);
	last = progress_end(p, RACE_ID, "c");
	ck_assert_ptr_nonnull(last);
	ck_assert_msg(strstr(last, "\"i\":2000}") != NULL, "%s", last);
	j = running(RACE_ID, "c");
	progress_apply(p, &j, 1);
	ck_assert_str_eq(j.progress, last);
	job_clear(&j);
	free(last);
	progress_forget(p, RACE_ID, "c");
	progress_free(p);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("progress");
	TCase *tc = tcase_create("progress");

	tcase_add_test(tc, test_parse);
	tcase_add_test(tc, test_parse_size);
	tcase_add_test(tc, test_lines);
	tcase_add_test(tc, test_lines_too_long);
	tcase_add_test(tc, test_table);
	tcase_add_test(tc, test_ctx);
	tcase_add_test(tc, test_race);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
