/* Unit tests of gc_secret: wiping (observed through a pool cleanup that runs
 * after the wiping one, while the pool's memory is still valid) and
 * redact-then-cut. */
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "gc_secret.h"
#include "unit.h"

static apr_pool_t *pool;

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
    pool = NULL;
}

/* ---- wiping ------------------------------------------------------------- */

/* Records what a watched buffer holds when its pool is destroyed. Registered
 * before the secret is allocated, so (cleanups run last-in first-out) it runs
 * after every cleanup of that secret, before the pool's memory is freed. */
typedef struct watch {
    const char *mem;
    apr_size_t n;
    int ran;
    int nonzero; /* bytes that were not zero */
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

static apr_pool_t *watched_pool(watch_t *w)
{
    apr_pool_t *sp;

    memset(w, 0, sizeof(*w));
    ck_assert_int_eq(apr_pool_create(&sp, pool), APR_SUCCESS);
    apr_pool_cleanup_register(sp, w, watch_cleanup, apr_pool_cleanup_null);
    return sp;
}

static void watch(watch_t *w, const char *mem)
{
    w->mem = mem;
    w->n = strlen(mem);
    ck_assert_uint_gt(w->n, 0);
}

START_TEST(wipe_helpers)
{
    watch_t w;
    apr_pool_t *sp;
    char buf[16];
    char *s;

    memcpy(buf, "0123456789abcde", 16);
    gc_wipe(buf, 10);
    ck_assert_int_eq(buf[0], 0);
    ck_assert_int_eq(buf[9], 0);
    ck_assert_int_eq(buf[10], 'a');
    gc_wipe(NULL, 10);

    sp = watched_pool(&w);
    watch(&w, gc_secret_pstrdup(sp, "dup-secret"));
    ck_assert_str_eq(w.mem, "dup-secret");
    apr_pool_destroy(sp);
    ck_assert_int_eq(w.ran, 1);
    ck_assert_int_eq(w.nonzero, 0);

    sp = watched_pool(&w);
    watch(&w, gc_secret_pmemdup(sp, "memdup-secret-and-more", 13));
    ck_assert_str_eq(w.mem, "memdup-secret");
    apr_pool_destroy(sp);
    ck_assert_int_eq(w.nonzero, 0);

    sp = watched_pool(&w);
    s = gc_secret_track(sp, apr_pstrcat(sp, "Authorization: Basic ", "c2VjcmV0", NULL));
    watch(&w, s);
    apr_pool_destroy(sp);
    ck_assert_int_eq(w.nonzero, 0);

    /* the observer sees what a pool without the wiping cleanup leaves */
    sp = watched_pool(&w);
    watch(&w, apr_pstrdup(sp, "not-wiped"));
    apr_pool_destroy(sp);
    ck_assert_int_eq(w.nonzero, (int)strlen("not-wiped"));

    ck_assert_ptr_null(gc_secret_pstrdup(pool, NULL));
    ck_assert_ptr_null(gc_secret_track(pool, NULL));
}
END_TEST

/* ---- redaction ---------------------------------------------------------- */

static const char *redact1(const char *s, const char *needle, apr_size_t max)
{
    const char *n[1];

    n[0] = needle;
    return gc_redact_line(pool, s, strlen(s), n, 1, 0, max);
}

/* No prefix of secret of 8 bytes or more appears in text. */
static void assert_no_prefix(const char *text, const char *secret)
{
    apr_size_t k;

    for (k = 8; k <= strlen(secret); k++) {
        ck_assert_msg(!strstr(text, apr_pstrndup(pool, secret, k)),
                      "%d-byte prefix of the secret in \"%s\"", (int)k, text);
    }
}

START_TEST(redact_then_cut)
{
    const char *secret = "SeCrEt-0123456789-abcdef";
    const char *n2[3];
    char pad[64];
    char *s;
    int pos;

    ck_assert_str_eq(redact1("a SeCrEt-0123456789-abcdef b", secret, 100), "a [hidden] b");
    ck_assert_str_eq(redact1("SeCrEt-0123456789-abcdefSeCrEt-0123456789-abcdef", secret, 100),
                     "[hidden][hidden]");
    /* whitespace, control characters, non-ASCII, leading/trailing blanks */
    ck_assert_str_eq(redact1("  <p>\r\n\tx\x01y \xc3\xa9 </p>\n", NULL, 100), "<p> x y ?? </p>");
    ck_assert_str_eq(redact1("abcdefghij", NULL, 4), "abcd...");
    ck_assert_str_eq(redact1("", NULL, 4), "");
    /* short needles are ignored */
    ck_assert_str_eq(redact1("abc abc", "abc", 100), "abc abc");
    /* case-sensitive */
    ck_assert_str_eq(redact1("SECRET-0123456789-ABCDEF", secret, 100), "SECRET-0123456789-ABCDEF");

    /* The secret straddles the cut at every possible offset: never any part of it. */
    for (pos = 30; pos <= 50; pos++) {
        const char *out;

        memset(pad, 'x', (size_t)pos);
        pad[pos] = '\0';
        s = apr_pstrcat(pool, pad, secret, " tail", NULL);
        out = redact1(s, secret, 40);
        assert_no_prefix(out, secret);
        ck_assert_uint_le(strlen(out), 43);
        ck_assert_msg(strcmp(out + strlen(out) - 3, "...") == 0, "not marked cut: %s", out);
    }
    /* the [hidden] marker is never cut in half */
    ck_assert_str_eq(redact1("xxxxSeCrEt-0123456789-abcdef", secret, 8), "xxxx...");
    ck_assert_str_eq(redact1("xxxxSeCrEt-0123456789-abcdef", secret, 12), "xxxx[hidden]");

    /* The longest matching needle wins, wherever it is listed. */
    n2[0] = "B0123";
    n2[1] = "B0123/XyZsecret";
    n2[2] = NULL;
    s = "see B0123/XyZsecret and B0123";
    ck_assert_str_eq(gc_redact_line(pool, s, strlen(s), n2, 3, 0, 100),
                     "see [hidden] and [hidden]");
}
END_TEST

START_TEST(redact_bounded_capture)
{
    const char *n[1] = { "xoxSeCrEtToKeN42" };
    const char *s = "error for xoxSeCrE";

    /* The capture ends inside what may be the secret: stop before it. */
    ck_assert_str_eq(gc_redact_line(pool, s, strlen(s), n, 1, 1, 100), "error for...");
    /* A complete text may end with an unrelated prefix of it. */
    ck_assert_str_eq(gc_redact_line(pool, s, strlen(s), n, 1, 0, 100), "error for xoxSeCrE");
    /* more: "..." even when everything captured fits */
    ck_assert_str_eq(gc_redact_line(pool, "abc", 3, n, 1, 1, 100), "abc...");
    /* len bounds the text, not the NUL */
    ck_assert_str_eq(gc_redact_line(pool, "abcdef", 3, NULL, 0, 0, 100), "abc");
}
END_TEST

Suite *secret_suite(void)
{
    Suite *s = suite_create("secret");
    TCase *tc = tcase_create("secret");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, wipe_helpers);
    tcase_add_test(tc, redact_then_cut);
    tcase_add_test(tc, redact_bounded_capture);
    suite_add_tcase(s, tc);
    return s;
}
