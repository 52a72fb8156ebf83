#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "gc_conf.h"
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

START_TEST(durations_accepted)
{
    static const struct {
        const char *in;
        apr_interval_time_t want;
    } ok[] = {
        { "90", 90 * APR_USEC_PER_SEC },
        { "90s", 90 * APR_USEC_PER_SEC },
        { "15m", 900 * APR_USEC_PER_SEC },
        { "2h", 7200 * APR_USEC_PER_SEC },
        { "1d", 86400 * APR_USEC_PER_SEC },
        { "1s", APR_USEC_PER_SEC },
        { "250ms", 250000 },
    };
    size_t i;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        apr_interval_time_t d = -1;
        const char *err = gc_parse_duration(pool, ok[i].in, 0, &d);
        ck_assert_msg(err == NULL, "%s: %s", ok[i].in, err);
        ck_assert_int_eq(d, ok[i].want);
    }
}
END_TEST

START_TEST(durations_rejected)
{
    static const char *bad[] = {
        "", "-5s", "abc", "5x", "1.5m", "s", "10 s", "m5", "99999999999999999999", "40000000d"
    };
    size_t i;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        apr_interval_time_t d = 42;
        const char *err = gc_parse_duration(pool, bad[i], 0, &d);
        ck_assert_msg(err != NULL, "'%s' accepted", bad[i]);
        ck_assert_int_eq(d, 42);
    }
}
END_TEST

START_TEST(duration_minimum)
{
    apr_interval_time_t d;
    const char *err = gc_parse_duration(pool, "500ms", APR_USEC_PER_SEC, &d);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "minimum of 1s"));
    ck_assert_ptr_null(gc_parse_duration(pool, "1s", APR_USEC_PER_SEC, &d));
}
END_TEST

START_TEST(duration_format)
{
    ck_assert_str_eq(gc_format_duration(pool, 900 * APR_USEC_PER_SEC), "15m");
    ck_assert_str_eq(gc_format_duration(pool, 90 * APR_USEC_PER_SEC), "90s");
    ck_assert_str_eq(gc_format_duration(pool, 86400 * APR_USEC_PER_SEC), "1d");
    ck_assert_str_eq(gc_format_duration(pool, 1500000), "1500ms");
}
END_TEST

START_TEST(longs)
{
    long v = 0;
    ck_assert_ptr_null(gc_parse_long(pool, "1000", 1, 1000, &v));
    ck_assert_int_eq(v, 1000);
    ck_assert_ptr_nonnull(gc_parse_long(pool, "1001", 1, 1000, &v));
    ck_assert_ptr_nonnull(gc_parse_long(pool, "0", 1, 1000, &v));
    ck_assert_ptr_nonnull(gc_parse_long(pool, "12abc", 1, 1000, &v));
    ck_assert_ptr_nonnull(gc_parse_long(pool, "", 1, 1000, &v));
    ck_assert_ptr_nonnull(gc_parse_long(pool, "99999999999999999999999", 1, 1000, &v));
    ck_assert_int_eq(v, 1000);
}
END_TEST

START_TEST(urls)
{
    const char *u = NULL;
    ck_assert_ptr_null(gc_parse_http_url(pool, "https://api.example.com/", &u));
    ck_assert_str_eq(u, "https://api.example.com");
    ck_assert_ptr_null(gc_parse_http_url(pool, "http://127.0.0.1:8099", &u));
    ck_assert_str_eq(u, "http://127.0.0.1:8099");
    ck_assert_ptr_nonnull(gc_parse_http_url(pool, "ftp://example.com", &u));
    ck_assert_ptr_nonnull(gc_parse_http_url(pool, "file:///etc/passwd", &u));
    ck_assert_ptr_nonnull(gc_parse_http_url(pool, "api.example.com", &u));
    ck_assert_ptr_nonnull(gc_parse_http_url(pool, "https://", &u));
    ck_assert_ptr_nonnull(gc_parse_http_url(pool, "https://x.com/?a=b", &u));
}
END_TEST

START_TEST(urls_in_clear)
{
    ck_assert_int_eq(gc_url_in_clear(pool, "http://api.example.com"), 1);
    ck_assert_int_eq(gc_url_in_clear(pool, "HTTP://10.0.0.5:8080/x"), 1);
    ck_assert_int_eq(gc_url_in_clear(pool, "http://127.example.com"), 1);
    ck_assert_int_eq(gc_url_in_clear(pool, "http://127.0.0.1.example.com"), 1);
    ck_assert_int_eq(gc_url_in_clear(pool, "https://api.example.com"), 0);
    ck_assert_int_eq(gc_url_in_clear(pool, "http://127.0.0.1:8099"), 0);
    ck_assert_int_eq(gc_url_in_clear(pool, "http://127.3.4.5/hook?k=v"), 0);
    ck_assert_int_eq(gc_url_in_clear(pool, "http://localhost:80/"), 0);
    ck_assert_int_eq(gc_url_in_clear(pool, "http://[::1]:8080/"), 0);
    ck_assert_int_eq(gc_url_in_clear(pool, NULL), 0);
}
END_TEST

START_TEST(domains)
{
    ck_assert_ptr_null(gc_parse_domain(pool, "mypurecloud.com"));
    ck_assert_ptr_null(gc_parse_domain(pool, "euw2.pure.cloud"));
    ck_assert_ptr_nonnull(gc_parse_domain(pool, "localhost"));
    ck_assert_ptr_nonnull(gc_parse_domain(pool, "https://mypurecloud.com"));
    ck_assert_ptr_nonnull(gc_parse_domain(pool, "a..b"));
    ck_assert_ptr_nonnull(gc_parse_domain(pool, ""));
}
END_TEST

START_TEST(secrets)
{
    const char *v = NULL;
    int literal = -1;
    char path[] = "/tmp/gcmon-secret-XXXXXX";
    int fd = mkstemp(path);
    const char *err;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "t0p-s3cret\nsecond line\n", 23), 23);
    close(fd);

    ck_assert_ptr_null(gc_parse_secret(pool, apr_pstrcat(pool, "file:", path, NULL), &v, &literal));
    ck_assert_str_eq(v, "t0p-s3cret");
    ck_assert_int_eq(literal, 0);

    setenv("GCMON_UNIT_SECRET", "from-env", 1);
    ck_assert_ptr_null(gc_parse_secret(pool, "env:GCMON_UNIT_SECRET", &v, &literal));
    ck_assert_str_eq(v, "from-env");
    ck_assert_int_eq(literal, 0);

    ck_assert_ptr_null(gc_parse_secret(pool, "plain-value", &v, &literal));
    ck_assert_str_eq(v, "plain-value");
    ck_assert_int_eq(literal, 1);

    unsetenv("GCMON_UNIT_NOPE");
    err = gc_parse_secret(pool, "env:GCMON_UNIT_NOPE", &v, &literal);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "GCMON_UNIT_NOPE"));

    err = gc_parse_secret(pool, "file:/nonexistent/gcmon-secret", &v, &literal);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/gcmon-secret"));

    /* An empty file is an error, and no error message carries the secret. */
    fd = open(path, O_WRONLY | O_TRUNC);
    close(fd);
    err = gc_parse_secret(pool, apr_pstrcat(pool, "file:", path, NULL), &v, &literal);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(strstr(err, "t0p-s3cret"));
    unlink(path);
}
END_TEST

/* Records what a secret's memory holds when its pool is destroyed. It is
 * registered before the secret is parsed, so (cleanups run last-in first-out)
 * it runs after the secret's own cleanups, before the memory is freed. */
typedef struct watch {
    const char *mem;
    apr_size_t n;
    int ran, nonzero;
} watch_t;

static apr_status_t watch_cleanup(void *data)
{
    watch_t *w = data;
    apr_size_t i;

    w->ran = 1;
    for (i = 0; w->mem && i < w->n; i++) {
        w->nonzero += w->mem[i] != 0;
    }
    return APR_SUCCESS;
}

/* Parse arg in a pool of its own and report whether the value was wiped
 * (1), left in memory (0) when that pool went. */
static int secret_wiped(const char *arg, const char *expect)
{
    apr_pool_t *sp;
    watch_t w;
    const char *v = NULL;
    int literal;

    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(apr_pool_create(&sp, pool), APR_SUCCESS);
    apr_pool_cleanup_register(sp, &w, watch_cleanup, apr_pool_cleanup_null);
    ck_assert_ptr_null(gc_parse_secret(sp, arg, &v, &literal));
    ck_assert_str_eq(v, expect);
    w.mem = v;
    w.n = strlen(v);
    apr_pool_destroy(sp);
    ck_assert_int_eq(w.ran, 1);
    return w.nonzero == 0;
}

START_TEST(secrets_wiped_with_the_pool)
{
    char path[] = "/tmp/gcmon-secret-XXXXXX";
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "f1le-s3cret\r\nsecond line\n", 25), 25);
    close(fd);
    /* the buffer the file was read into is the value handed to the pool */
    ck_assert_msg(secret_wiped(apr_pstrcat(pool, "file:", path, NULL), "f1le-s3cret"),
                  "file: secret left in memory");
    unlink(path);
    setenv("GCMON_UNIT_WIPE", "env-s3cret", 1);
    ck_assert_msg(secret_wiped("env:GCMON_UNIT_WIPE", "env-s3cret"), "env: secret left");
    /* a copy was wiped, not the environment (httpd reads its config twice) */
    ck_assert_pstr_eq(getenv("GCMON_UNIT_WIPE"), "env-s3cret");
    unsetenv("GCMON_UNIT_WIPE");
    ck_assert_msg(secret_wiped("literal-s3cret", "literal-s3cret"), "literal left");
}
END_TEST

START_TEST(conn_defaults)
{
    gc_conn_conf_t c;
    memset(&c, 0, sizeof(c));
    gc_conn_conf_finish(pool, &c);
    ck_assert_str_eq(c.api_url, "https://api.mypurecloud.com");
    ck_assert_str_eq(c.login_url, "https://login.mypurecloud.com");
    ck_assert_int_eq(c.rate_limit, 300);
    ck_assert_int_eq(c.request_timeout, 10 * APR_USEC_PER_SEC);

    memset(&c, 0, sizeof(c));
    c.environment = "mypurecloud.de";
    c.login_url = "http://127.0.0.1:9";
    gc_conn_conf_finish(pool, &c);
    ck_assert_str_eq(c.api_url, "https://api.mypurecloud.de");
    ck_assert_str_eq(c.login_url, "http://127.0.0.1:9");
}
END_TEST

Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, durations_accepted);
    tcase_add_test(tc, durations_rejected);
    tcase_add_test(tc, duration_minimum);
    tcase_add_test(tc, duration_format);
    tcase_add_test(tc, longs);
    tcase_add_test(tc, urls);
    tcase_add_test(tc, urls_in_clear);
    tcase_add_test(tc, domains);
    tcase_add_test(tc, secrets);
    tcase_add_test(tc, secrets_wiped_with_the_pool);
    tcase_add_test(tc, conn_defaults);
    suite_add_tcase(s, tc);
    return s;
}
