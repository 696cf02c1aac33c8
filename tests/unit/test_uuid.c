/*
 * test_uuid.c - unit tests of src/uuid.c: UUIDv7 layout (RFC 9562), and
 * ids that are strictly increasing as strings, within one millisecond, when
 * the clock steps back, and when the 12-bit counter runs out.
 *
 * Each test runs in its own process (CK_FORK), so each starts with the
 * generator's state fresh.
 */
#include <check.h>
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "uuid.h"

#define T0 1767323045123LL /* 2026-01-02T03:04:05.123Z */
#define MANY 10000

static int
hexval(char c)
{
	return isdigit((unsigned char)c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* The 12-bit rand_a field (the counter): hex digits 15..17. */
static int
rand_a(const char *id)
{
	return hexval(id[15]) << 8 | hexval(id[16]) << 4 | hexval(id[17]);
}

static void
assert_well_formed(const char *id)
{
	ck_assert_uint_eq(strlen(id), 36);
	ck_assert_msg(uuid_is_valid(id), "not a UUID: %s", id);
	for (int i = 0; i < 36; i++)
		ck_assert_msg(id[i] == '-' || isdigit((unsigned char)id[i]) ||
		              (id[i] >= 'a' && id[i] <= 'f'),
		              "not lowercase hex: %s", id);
	ck_assert_msg(id[14] == '7', "version nibble is not 7: %s", id);
	ck_assert_msg(strchr("89ab", id[19]) != NULL,
	              "variant bits are not 10: %s", id);
}

START_TEST(test_version_variant_format)
{
	char id[UUID_STR_LEN];

	for (int i = 0; i < 1000; i++) {
		ck_assert_int_eq(uuid_v7_new(id), 0);
		assert_well_formed(id);
	}
	for (int i = 0; i < 1000; i++) {
		ck_assert_int_eq(uuid_v7_new_at(T0 + i, id), 0);
		assert_well_formed(id);
	}
}
END_TEST

START_TEST(test_variant_bits_take_all_values)
{
	/* The two bits after the variant are random: all of 8, 9, a, b show. */
	char id[UUID_STR_LEN];
	bool seen[4] = {false, false, false, false};

	for (int i = 0; i < 1000; i++) {
		ck_assert_int_eq(uuid_v7_new(id), 0);
		seen[hexval(id[19]) - 8] = true;
	}
	for (int i = 0; i < 4; i++)
		ck_assert_msg(seen[i], "variant digit %x never seen", 8 + i);
}
END_TEST

START_TEST(test_is_valid)
{
	ck_assert(uuid_is_valid("01890a5d-ac96-774b-bcce-b302099a8057"));
	ck_assert(uuid_is_valid("01890A5D-AC96-774B-BCCE-B302099A8057"));
	ck_assert(uuid_is_valid("00000000-0000-0000-0000-000000000000"));
	ck_assert(!uuid_is_valid(""));
	ck_assert(!uuid_is_valid("01890a5d"));
	ck_assert(!uuid_is_valid("01890a5d-ac96-774b-bcce-b302099a805"));
	ck_assert(!uuid_is_valid("01890a5d-ac96-774b-bcce-b302099a80577"));
	ck_assert(!uuid_is_valid("01890a5dac96774bbcceb302099a8057"));
	ck_assert(!uuid_is_valid("01890a5d-ac96-774b-bcce_b302099a8057"));
	ck_assert(!uuid_is_valid("01890a5d-ac96-774b-bccg-b302099a8057"));
	ck_assert(!uuid_is_valid("01890a5-dac96-774b-bcce-b302099a8057"));
	ck_assert(!uuid_is_valid("{1890a5d-ac96-774b-bcce-b302099a8057"));
	ck_assert(!uuid_is_valid(" 1890a5d-ac96-774b-bcce-b302099a8057"));
	ck_assert(!uuid_is_valid("01890a5d-ac96-774b-bcce-b302099a805 "));
	ck_assert(!uuid_is_valid("../../../../etc/passwd-aaaaaaaaaaaaaa"));
}
END_TEST

START_TEST(test_increasing_within_one_ms)
{
	char (*ids)[UUID_STR_LEN] = calloc(MANY, UUID_STR_LEN);

	ck_assert_ptr_nonnull(ids);
	for (int i = 0; i < MANY; i++)
		ck_assert_int_eq(uuid_v7_new_at(T0, ids[i]), 0);
	for (int i = 1; i < MANY; i++)
		ck_assert_msg(strcmp(ids[i - 1], ids[i]) < 0,
		              "id %d not above id %d: %s <= %s", i, i - 1, ids[i],
		              ids[i - 1]);
	/* The first 2048 fit in T0 itself: the counter starts in its lower
	 * half and has 12 bits. */
	for (int i = 0; i < 2048; i++) {
		ck_assert_int_eq(uuid_v7_time_ms(ids[i]), T0);
		assert_well_formed(ids[i]);
	}
	for (int i = 1; i < 2048; i++)
		ck_assert_int_eq(rand_a(ids[i]), rand_a(ids[i - 1]) + 1);
	free(ids);
}
END_TEST

START_TEST(test_increasing_real_clock)
{
	char prev[UUID_STR_LEN], id[UUID_STR_LEN];

	ck_assert_int_eq(uuid_v7_new(prev), 0);
	for (int i = 0; i < MANY; i++) {
		ck_assert_int_eq(uuid_v7_new(id), 0);
		ck_assert_msg(strcmp(prev, id) < 0, "%s <= %s", id, prev);
		memcpy(prev, id, sizeof(id));
	}
}
END_TEST

START_TEST(test_clock_going_backwards)
{
	char prev[UUID_STR_LEN], id[UUID_STR_LEN];

	ck_assert_int_eq(uuid_v7_new_at(T0, prev), 0);
	ck_assert_int_eq(uuid_v7_time_ms(prev), T0);
	/* The clock steps back a second, then an hour, then creeps on. */
	static const int64_t steps[] = {T0 - 1000, T0 - 3600000, T0 - 1, T0,
	                                T0 - 5};
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		for (int i = 0; i < 500; i++) {
			ck_assert_int_eq(uuid_v7_new_at(steps[k] + i % 3, id), 0);
			ck_assert_msg(strcmp(prev, id) < 0, "%s <= %s", id, prev);
			/* never dated before the newest id */
			ck_assert_int_ge(uuid_v7_time_ms(id), T0);
			assert_well_formed(id);
			memcpy(prev, id, sizeof(id));
		}
	}
	/* When the clock is past the newest id again, ids follow it. */
	ck_assert_int_eq(uuid_v7_new_at(T0 + 60000, id), 0);
	ck_assert_int_eq(uuid_v7_time_ms(id), T0 + 60000);
	ck_assert_int_lt(strcmp(prev, id), 0);
}
END_TEST

START_TEST(test_time_round_trip)
{
	static const int64_t times[] = {
		0, 1, 999, 1000, 1700000000000LL, T0, T0 + 1,
		4102444800000LL,     /* 2100-01-01 */
		(1LL << 48) - 1,     /* the largest 48-bit value */
	};
	char id[UUID_STR_LEN];

	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		ck_assert_int_eq(uuid_v7_new_at(times[i], id), 0);
		ck_assert_msg(uuid_v7_time_ms(id) == times[i],
		              "%lld -> %s -> %lld", (long long)times[i], id,
		              (long long)uuid_v7_time_ms(id));
		assert_well_formed(id);
	}
	/* Upper case decodes the same. */
	ck_assert_int_eq(uuid_v7_time_ms("0189C1B6-A5A8-7000-8000-000000000000"),
	                 0x0189c1b6a5a8LL);
	ck_assert_int_eq(uuid_v7_time_ms("0189c1b6-a5a8-7fff-bfff-ffffffffffff"),
	                 0x0189c1b6a5a8LL);
}
END_TEST

START_TEST(test_real_clock_time)
{
	char id[UUID_STR_LEN];
	int64_t before = clock_now_ms(), after;

	ck_assert_int_eq(uuid_v7_new(id), 0);
	after = clock_now_ms();
	ck_assert_int_ge(uuid_v7_time_ms(id), before);
	ck_assert_int_le(uuid_v7_time_ms(id), after);
}
END_TEST

START_TEST(test_counter_overflow)
{
	/* 3 * 4096 ids in one millisecond exhaust the counter more than once;
	 * the generator borrows the next milliseconds and stays increasing. */
	enum { N = 3 * 4096 + 7 };
	char (*ids)[UUID_STR_LEN] = calloc(N, UUID_STR_LEN);
	int64_t last_t = T0;

	ck_assert_ptr_nonnull(ids);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(uuid_v7_new_at(T0, ids[i]), 0);
	for (int i = 1; i < N; i++) {
		int64_t t = uuid_v7_time_ms(ids[i]);
		ck_assert_msg(strcmp(ids[i - 1], ids[i]) < 0, "%s <= %s", ids[i],
		              ids[i - 1]);
		ck_assert_int_ge(t, last_t);
		ck_assert_int_le(rand_a(ids[i]), 0xfff);
		assert_well_formed(ids[i]);
		last_t = t;
	}
	/* At most 4096 ids per millisecond, so the clock was borrowed. */
	ck_assert_int_ge(uuid_v7_time_ms(ids[N - 1]), T0 + 2);
	ck_assert_int_le(uuid_v7_time_ms(ids[N - 1]), T0 + 6);
	/* The real clock catching up does not go below the borrowed ms. */
	char id[UUID_STR_LEN];
	ck_assert_int_eq(uuid_v7_new_at(T0 + 1, id), 0);
	ck_assert_int_lt(strcmp(ids[N - 1], id), 0);
	free(ids);
}
END_TEST

START_TEST(test_random_bits_differ)
{
	/* Two ids of the same millisecond differ in their random tail. */
	char a[UUID_STR_LEN], b[UUID_STR_LEN];

	ck_assert_int_eq(uuid_v7_new_at(T0, a), 0);
	ck_assert_int_eq(uuid_v7_new_at(T0, b), 0);
	ck_assert_str_ne(a + 19, b + 19);
}
END_TEST

#define NTHREADS 4
#define PER_THREAD 2500

struct gen_arg {
	char (*ids)[UUID_STR_LEN];
	int rc;
};

static void *
gen_thread(void *p)
{
	struct gen_arg *a = p;

	a->rc = 0;
	for (int i = 0; i < PER_THREAD && a->rc == 0; i++)
		a->rc = uuid_v7_new_at(T0, a->ids[i]);
	return NULL;
}

static int
cmp_ids(const void *x, const void *y)
{
	return strcmp(x, y);
}

START_TEST(test_threads_unique_and_increasing)
{
	char (*ids)[UUID_STR_LEN] = calloc(NTHREADS * PER_THREAD, UUID_STR_LEN);
	pthread_t th[NTHREADS];
	struct gen_arg args[NTHREADS];

	ck_assert_ptr_nonnull(ids);
	for (int t = 0; t < NTHREADS; t++) {
		args[t].ids = ids + t * PER_THREAD;
		ck_assert_int_eq(pthread_create(&th[t], NULL, gen_thread,
		                                &args[t]), 0);
	}
	for (int t = 0; t < NTHREADS; t++) {
		ck_assert_int_eq(pthread_join(th[t], NULL), 0);
		ck_assert_int_eq(args[t].rc, 0);
		for (int i = 1; i < PER_THREAD; i++)
			ck_assert_int_lt(strcmp(args[t].ids[i - 1],
			                        args[t].ids[i]), 0);
	}
	qsort(ids, NTHREADS * PER_THREAD, UUID_STR_LEN, cmp_ids);
	for (int i = 1; i < NTHREADS * PER_THREAD; i++)
		ck_assert_str_ne(ids[i - 1], ids[i]);
	free(ids);
}
END_TEST

static Suite *
uuid_suite(void)
{
	Suite *s = suite_create("uuid");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_version_variant_format);
	tcase_add_test(tc, test_variant_bits_take_all_values);
	tcase_add_test(tc, test_is_valid);
	tcase_add_test(tc, test_increasing_within_one_ms);
	tcase_add_test(tc, test_increasing_real_clock);
	tcase_add_test(tc, test_clock_going_backwards);
	tcase_add_test(tc, test_time_round_trip);
	tcase_add_test(tc, test_real_clock_time);
	tcase_add_test(tc, test_counter_overflow);
	tcase_add_test(tc, test_random_bits_differ);
	tcase_add_test(tc, test_threads_unique_and_increasing);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(uuid_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures != 0;
}
