/* Regressions found by the fuzz targets (tests/fuzz/, docs/testing.md
 * "Fuzzing"): each test holds the input a target reported, as it reached the
 * core, and the behaviour fixed. The same inputs are in the targets' seed
 * corpora (tests/fuzz/corpus/<target>/regress-*), so every fuzz run replays
 * them first. */
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "gc_conf.h"
#include "gc_etag.h"
#include "gc_query.h"
#include "gc_state.h"
#include "gc_time.h"
#include "unit.h"

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* fuzz_notify (corpus/notify/regress-time-year-10000.json, regress-time-year-
 * minus-1.json): an offset carried a valid local time out of the years
 * 0000..9999 in UTC; gc_time_format then wrote "10000-01-01T…" (or
 * "-001-12-31T…") into history rows and API answers, and gc_time_parse could
 * not read it back. Such a timestamp is now refused, like any other bad one. */
START_TEST(time_offset_out_of_range)
{
    static const char *const refused[] = { "9999-12-31T23:59:59-00:01", "9999-12-31T23:00:00-23:59",
                                           "0000-01-01T00:00:00+00:01",
                                           "0000-01-01T23:58:59.999+23:59" };
    static const char *const kept[] = {
        "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59+00:00", "9999-12-31T00:00:00-23:59",
        "0000-01-01T00:00:00Z",        "0000-01-01T23:59:00+23:59", "0000-01-01T00:00:00-00:00"
    };
    apr_time_t t = 42, back;
    size_t i;

    for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        ck_assert_msg(gc_time_parse(refused[i], &t) == -1, "%s accepted", refused[i]);
        ck_assert_int_eq(t, 42); /* *out untouched */
    }
    for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
        ck_assert_msg(gc_time_parse(kept[i], &t) == 0, "%s refused", kept[i]);
        ck_assert_int_eq(gc_time_parse(gc_time_format(pool, t), &back), 0);
        ck_assert_int_eq(back, t - t % 1000 - (t % 1000 < 0 ? 1000 : 0));
    }
    ck_assert_int_eq(gc_time_parse("9999-12-31T23:59:59.999999Z", &t), 0);
    ck_assert_str_eq(gc_time_format(pool, t), "9999-12-31T23:59:59.999Z");
    ck_assert_int_eq(gc_time_parse("0000-01-01T00:00:00Z", &t), 0);
    ck_assert_str_eq(gc_time_format(pool, t), "0000-01-01T00:00:00.000Z");
}
END_TEST

/* The same input as the target saw it: a whole notification message, and a
 * query string with it. */
START_TEST(time_offset_out_of_range_in_messages)
{
    const char *msg =
        "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\",\"presence\":"
        "{\"presenceDefinition\":{\"systemPresence\":\"Break\"},"
        "\"modifiedDate\":\"9999-12-31T23:59:59-00:01\"}}}";
    gc_agent_event_t ev;
    const char *why = NULL;
    gc_query_t q;
    apr_array_header_t *errs = NULL;

    ck_assert_int_eq(gc_notify_parse(pool, msg, strlen(msg), &ev, &why), GC_MSG_MALFORMED);
    ck_assert_ptr_nonnull(why);
    ck_assert_ptr_null(ev.user_id);
    ck_assert_int_eq(gc_query_parse(pool, "from=9999-12-31T23:59:59-00:01", GC_Q_HISTORY,
                                    GC_CURSOR_HISTORY, &q, &errs),
                     1);
    ck_assert_str_eq(APR_ARRAY_IDX(errs, 0, gc_field_error_t).field, "from");
    ck_assert_int_eq(q.has_from, 0);
}
END_TEST

/* fuzz_etag (corpus/etag/regress-match-then-malformed): a list whose first
 * tag matched was answered at that tag, so `"<etag>", *` matched although
 * gc_etag.h says a malformed header matches nothing. The whole list is read
 * first now. */
START_TEST(etag_match_then_malformed)
{
    const char *e = "\"0123456789abcdef0123456789abcdef\"";

    ck_assert(!gc_etag_match(apr_pstrcat(pool, e, ", *", NULL), e, GC_ETAG_STRONG));
    ck_assert(!gc_etag_match(apr_pstrcat(pool, e, ", *", NULL), e, GC_ETAG_WEAK));
    ck_assert(!gc_etag_match(apr_pstrcat(pool, e, ", junk", NULL), e, GC_ETAG_STRONG));
    ck_assert(!gc_etag_match(apr_pstrcat(pool, e, ", \"x", NULL), e, GC_ETAG_STRONG));
    ck_assert(!gc_etag_match(apr_pstrcat(pool, "W/", e, " \"y\"", NULL), e, GC_ETAG_WEAK));
    /* well-formed lists still match wherever the tag is */
    ck_assert(gc_etag_match(apr_pstrcat(pool, e, ", \"x\"", NULL), e, GC_ETAG_STRONG));
    ck_assert(gc_etag_match(apr_pstrcat(pool, "\"x\",", e, ",", NULL), e, GC_ETAG_STRONG));
    ck_assert(gc_etag_match(apr_pstrcat(pool, "W/", e, ", W/\"y\"", NULL), e, GC_ETAG_WEAK));
}
END_TEST

/* fuzz_conf (corpus/conf/regress-duration-0): gc_format_duration(0) gave
 * "0us", which no directive accepts (a zero duration is valid where the
 * minimum is 0); it is "0s" now, so formatting and parsing agree. */
START_TEST(duration_zero_formats)
{
    apr_interval_time_t d = -1;

    ck_assert_ptr_null(gc_parse_duration(pool, "0", 0, &d));
    ck_assert_int_eq(d, 0);
    ck_assert_str_eq(gc_format_duration(pool, d), "0s");
    d = -1;
    ck_assert_ptr_null(gc_parse_duration(pool, gc_format_duration(pool, 0), 0, &d));
    ck_assert_int_eq(d, 0);
}
END_TEST

Suite *fuzz_suite(void)
{
    Suite *s = suite_create("fuzz");
    TCase *tc = tcase_create("regressions");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, time_offset_out_of_range);
    tcase_add_test(tc, time_offset_out_of_range_in_messages);
    tcase_add_test(tc, etag_match_then_malformed);
    tcase_add_test(tc, duration_zero_formats);
    suite_add_tcase(s, tc);
    return s;
}
