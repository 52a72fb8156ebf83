/* Read API query parsing (shared/gc_query.c): strict validation, cursors. */
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "gc_query.h"
#include "gc_state.h"
#include "gc_time.h"
#include "gc_utf8.h"
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

/* Parse and return the single error's field ("" when none; "+" when several). */
static const char *one_error(const char *args, unsigned fields, gc_query_t *q)
{
    apr_array_header_t *errs = NULL;
    int n = gc_query_parse(pool, args, fields, GC_CURSOR_HISTORY, q, &errs);

    ck_assert_int_eq(n, errs->nelts);
    if (n == 0) {
        return "";
    }
    if (n > 1) {
        return "+";
    }
    return APR_ARRAY_IDX(errs, 0, gc_field_error_t).field;
}

START_TEST(defaults)
{
    gc_query_t q;
    ck_assert_str_eq(one_error(NULL, GC_Q_HISTORY, &q), "");
    ck_assert_int_eq(q.limit, 20);
    ck_assert_int_eq(q.offset, 0);
    ck_assert_int_eq(q.has_offset, 0);
    ck_assert_int_eq(q.has_cursor, 0);
    ck_assert_ptr_null(q.user_id);
    ck_assert_ptr_null(q.state);
    ck_assert_int_eq(q.has_from + q.has_to, 0);
    ck_assert_str_eq(one_error("", GC_Q_HISTORY, &q), "");
    ck_assert_str_eq(one_error("&&=&x", GC_Q_HISTORY, &q), "");
}
END_TEST

START_TEST(all_fields)
{
    gc_query_t q;
    apr_time_t t;
    ck_assert_str_eq(one_error("user_id=u-1_A&state=OFF_QUEUE&from=2026-01-02T03:04:05.678Z"
                               "&to=2026-01-03T00:00:00%2B01:00&limit=100&offset=2147483647"
                               "&foo=bar&limit_=x",
                               GC_Q_HISTORY, &q),
                     "");
    ck_assert_str_eq(q.user_id, "u-1_A");
    ck_assert_str_eq(q.state, "OFF_QUEUE");
    ck_assert_int_eq(q.limit, 100);
    ck_assert_int_eq(q.offset, 2147483647L);
    ck_assert_int_eq(q.has_offset, 1);
    ck_assert_int_eq(q.has_from, 1);
    ck_assert_int_eq(q.has_to, 1);
    ck_assert_int_eq(gc_time_parse("2026-01-02T03:04:05.678Z", &t), 0);
    ck_assert_int_eq(q.from, t);
    ck_assert_int_eq(gc_time_parse("2026-01-02T23:00:00Z", &t), 0);
    ck_assert_int_eq(q.to, t);
    /* Percent-encoded keys and values are decoded. */
    ck_assert_str_eq(one_error("%6cimit=%35&st%61te=Available", GC_Q_HISTORY, &q), "");
    ck_assert_int_eq(q.limit, 5);
    ck_assert_str_eq(q.state, "Available");
    ck_assert_str_eq(one_error("limit=1&offset=0", GC_Q_HISTORY, &q), "");
    ck_assert_int_eq(q.limit, 1);
}
END_TEST

START_TEST(limit_rejected)
{
    static const char *bad[] = {
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "limit=1e3",
        "limit=+5",
        "limit= 5",
        "limit=5 ",
        "limit=5.0",
        "limit=0x10",
        "limit=",
        "limit",
        "limit=99999999999999999999999999999999",
        "limit=18446744073709551617",
        "limit=%zz",
        "limit=%4",
        "limit=%",
        "limit=1%00",
        "limit=%c3%28",
        "limit=5&limit=5",
        "limit=%EF%BC%95", /* fullwidth digit five */
    };
    size_t i;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gc_query_t q;
        ck_assert_msg(!strcmp(one_error(bad[i], GC_Q_HISTORY, &q), "limit"), "%s", bad[i]);
    }
}
END_TEST

START_TEST(offset_rejected)
{
    static const char *bad[] = {
        "offset=-5", "offset=2147483648", "offset=1e2",
        "offset=",   "offset=x",          "offset=99999999999999999999999999",
    };
    size_t i;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gc_query_t q;
        ck_assert_msg(!strcmp(one_error(bad[i], GC_Q_HISTORY, &q), "offset"), "%s", bad[i]);
    }
}
END_TEST

START_TEST(values_rejected)
{
    static const struct {
        const char *args, *field;
    } bad[] = {
        { "state=Foo", "state" },
        { "state=available", "state" },
        { "state=", "state" },
        { "state=IDLE%20", "state" },
        { "state=Available&state=Away", "state" },
        { "user_id=%27%20OR%201%3D1%20--", "user_id" },
        { "user_id=a;DROP", "user_id" },
        { "user_id=a%25", "user_id" },
        { "user_id=%C3%A9", "user_id" },
        { "user_id=%ff%fe", "user_id" },
        { "user_id=", "user_id" },
        { "from=yesterday", "from" },
        { "from=2026-13-01T00:00:00Z", "from" },
        { "from=2026-02-30T00:00:00Z", "from" },
        { "from=2026-01-01", "from" },
        { "from=2026-01-01T00:00:00+00:00", "from" }, /* '+' decodes to a space */
        { "to=2026-01-01T00:00:00.000Zjunk", "to" },
        { "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to" },
        { "cursor=abc", "cursor" },
        { "cursor=", "cursor" },
        { "cursor=AAAAAAAAAAAAAAAAAAAAAAAA", "cursor" },
    };
    size_t i;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gc_query_t q;
        ck_assert_msg(!strcmp(one_error(bad[i].args, GC_Q_HISTORY, &q), bad[i].field), "%s → %s",
                      bad[i].args, one_error(bad[i].args, GC_Q_HISTORY, &q));
    }
}
END_TEST

START_TEST(huge_value)
{
    gc_query_t q;
    char *big = apr_palloc(pool, 4096 + 16);
    memcpy(big, "user_id=", 8);
    memset(big + 8, 'a', 4096);
    big[8 + 4096] = '\0';
    ck_assert_str_eq(one_error(big, GC_Q_HISTORY, &q), "user_id");
    memcpy(big, "zzzzzzz=", 8); /* unknown: ignored, however long */
    ck_assert_str_eq(one_error(big, GC_Q_HISTORY, &q), "");
}
END_TEST

START_TEST(same_time_range_is_valid)
{
    gc_query_t q;
    ck_assert_str_eq(
        one_error("from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", GC_Q_HISTORY, &q), "");
}
END_TEST

START_TEST(fields_not_accepted_are_ignored)
{
    gc_query_t q;
    /* The board takes no paging: a bad limit there is an unknown parameter. */
    ck_assert_str_eq(one_error("limit=0&offset=-1&queue_id=q1", GC_Q_BOARD, &q), "");
    ck_assert_str_eq(q.queue_id, "q1");
    ck_assert_int_eq(q.limit, 20);
    ck_assert_str_eq(one_error("queue_id=a%20b", GC_Q_BOARD, &q), "queue_id");
    /* queue_id is unknown to the history listing. */
    ck_assert_str_eq(one_error("queue_id=a%20b", GC_Q_HISTORY, &q), "");
    ck_assert_ptr_null(q.queue_id);
}
END_TEST

/* The strategies listing: `status` is a strategy status (into q.state);
 * an agent state or `state` itself is not taken there. */
START_TEST(strategy_status)
{
    gc_query_t q;
    ck_assert_str_eq(one_error("status=activating&limit=5", GC_Q_STRATEGIES, &q), "");
    ck_assert_str_eq(q.state, "activating");
    ck_assert_int_eq(q.limit, 5);
    ck_assert_str_eq(one_error("status=IDLE", GC_Q_STRATEGIES, &q), "status");
    ck_assert_str_eq(one_error("status=", GC_Q_STRATEGIES, &q), "status");
    ck_assert_str_eq(one_error("status=draft&status=active", GC_Q_STRATEGIES, &q), "status");
    ck_assert_str_eq(one_error("state=draft", GC_Q_STRATEGIES, &q), "");
    ck_assert_ptr_null(q.state);
    ck_assert_str_eq(one_error("status=draft", GC_Q_HISTORY, &q), "");
    ck_assert_ptr_null(q.state);
}
END_TEST

START_TEST(several_errors_in_field_order)
{
    gc_query_t q;
    apr_array_header_t *errs;
    int n = gc_query_parse(pool, "offset=-1&limit=0&state=x&junk=1", GC_Q_HISTORY,
                           GC_CURSOR_HISTORY, &q, &errs);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(errs, 0, gc_field_error_t).field, "state");
    ck_assert_str_eq(APR_ARRAY_IDX(errs, 1, gc_field_error_t).field, "limit");
    ck_assert_str_eq(APR_ARRAY_IDX(errs, 2, gc_field_error_t).field, "offset");
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(errs, 0, gc_field_error_t).message, "OFF_QUEUE"));
    ck_assert_str_eq(APR_ARRAY_IDX(errs, 1, gc_field_error_t).message,
                     "must be an integer from 1 to 100");
}
END_TEST

START_TEST(cursor_round_trip)
{
    static const apr_int64_t vals[][2] = {
        { 0, 0 },     { 1, 1 }, { 1795000000123LL, 987654321LL }, { APR_INT64_MAX, APR_INT64_MAX },
        { 255, 256 },
    };
    size_t i;
    for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        const char *c = gc_cursor_encode(pool, GC_CURSOR_HISTORY, vals[i][0], vals[i][1]);
        gc_cursor_t cur;
        gc_query_t q;
        ck_assert_int_eq(strlen(c), 24);
        ck_assert_int_eq(strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789-_"),
                         24);
        ck_assert_int_eq(gc_cursor_decode(c, GC_CURSOR_HISTORY, &cur), 0);
        ck_assert_int_eq(cur.at, vals[i][0]);
        ck_assert_int_eq(cur.id, vals[i][1]);
        /* Another listing's cursor is refused. */
        ck_assert_int_eq(gc_cursor_decode(c, GC_CURSOR_ALERTS, &cur), -1);
        /* Through the query string. */
        ck_assert_str_eq(one_error(apr_pstrcat(pool, "cursor=", c, NULL), GC_Q_HISTORY, &q), "");
        ck_assert_int_eq(q.has_cursor, 1);
        ck_assert_int_eq(q.cursor.at, vals[i][0]);
        ck_assert_int_eq(q.cursor.id, vals[i][1]);
    }
}
END_TEST

START_TEST(cursor_garbage)
{
    const char *c = gc_cursor_encode(pool, GC_CURSOR_HISTORY, 1795000000123LL, 42);
    gc_cursor_t cur;
    gc_query_t q;
    char *t;
    size_t i;

    /* Truncated, extended, padded, non-alphabet characters. */
    ck_assert_int_eq(gc_cursor_decode(apr_pstrndup(pool, c, 23), GC_CURSOR_HISTORY, &cur), -1);
    ck_assert_int_eq(gc_cursor_decode(apr_pstrcat(pool, c, "A", NULL), GC_CURSOR_HISTORY, &cur),
                     -1);
    ck_assert_int_eq(gc_cursor_decode(apr_pstrcat(pool, c, "==", NULL), GC_CURSOR_HISTORY, &cur),
                     -1);
    for (i = 0; i < 24; i++) {
        t = apr_pstrdup(pool, c);
        t[i] = '+';
        ck_assert_int_eq(gc_cursor_decode(t, GC_CURSOR_HISTORY, &cur), -1);
        t[i] = '/';
        ck_assert_int_eq(gc_cursor_decode(t, GC_CURSOR_HISTORY, &cur), -1);
    }
    /* A flipped version byte. */
    t = apr_pstrdup(pool, c);
    t[0] = t[0] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(gc_cursor_decode(t, GC_CURSOR_HISTORY, &cur), -1);
    /* Negative positions cannot come from us. */
    c = gc_cursor_encode(pool, GC_CURSOR_HISTORY, -1, 5);
    ck_assert_int_eq(gc_cursor_decode(c, GC_CURSOR_HISTORY, &cur), -1);
    /* With offset: refused, even offset=0. */
    c = gc_cursor_encode(pool, GC_CURSOR_HISTORY, 5, 5);
    ck_assert_str_eq(one_error(apr_pstrcat(pool, "offset=0&cursor=", c, NULL), GC_Q_HISTORY, &q),
                     "cursor");
    ck_assert_int_eq(q.has_cursor, 0);
}
END_TEST

START_TEST(unescape_and_utf8)
{
    char *out;
    ck_assert_int_eq(gc_query_unescape(pool, "a+b%20c%2B", 10, &out), 0);
    ck_assert_str_eq(out, "a b c+");
    ck_assert_int_eq(gc_query_unescape(pool, "%4", 2, &out), -1);
    ck_assert_int_eq(gc_query_unescape(pool, "%", 1, &out), -1);
    ck_assert_int_eq(gc_query_unescape(pool, "%00", 3, &out), -1);
    ck_assert_int_eq(gc_query_unescape(pool, "%g0", 3, &out), -1);
    ck_assert_int_eq(gc_query_unescape(pool, "ab%41", 3, &out), -1); /* len bounds the input */
    ck_assert_int_eq(gc_query_unescape(pool, "ab%41", 2, &out), 0);
    ck_assert_str_eq(out, "ab");
    ck_assert_int_eq(gc_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15), 1);
    ck_assert_int_eq(gc_utf8_valid("\xc3", 1), 0);             /* truncated */
    ck_assert_int_eq(gc_utf8_valid("\xc0\xaf", 2), 0);         /* overlong */
    ck_assert_int_eq(gc_utf8_valid("\xe0\x80\xaf", 3), 0);     /* overlong */
    ck_assert_int_eq(gc_utf8_valid("\xed\xa0\x80", 3), 0);     /* surrogate */
    ck_assert_int_eq(gc_utf8_valid("\xf4\x90\x80\x80", 4), 0); /* > U+10FFFF */
    ck_assert_int_eq(gc_utf8_valid("\xff", 1), 0);
    ck_assert_int_eq(gc_utf8_valid("\x80", 1), 0);
}
END_TEST

Suite *query_suite(void)
{
    Suite *s = suite_create("query");
    TCase *tc = tcase_create("parse");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, all_fields);
    tcase_add_test(tc, limit_rejected);
    tcase_add_test(tc, offset_rejected);
    tcase_add_test(tc, values_rejected);
    tcase_add_test(tc, huge_value);
    tcase_add_test(tc, same_time_range_is_valid);
    tcase_add_test(tc, fields_not_accepted_are_ignored);
    tcase_add_test(tc, strategy_status);
    tcase_add_test(tc, several_errors_in_field_order);
    tcase_add_test(tc, cursor_round_trip);
    tcase_add_test(tc, cursor_garbage);
    tcase_add_test(tc, unescape_and_utf8);
    suite_add_tcase(s, tc);
    store_read_tcases(s);
    return s;
}
