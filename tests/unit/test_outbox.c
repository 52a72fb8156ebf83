/* The outbox (gc_outbox.h): one webhook delivery against the loopback HTTP
 * server (signature, headers, Retry-After, secret-free errors), the Slack
 * Block Kit body, the database side on a temporary SQLite file, and the
 * delivery thread end to end (retries with backoff, max age, restart,
 * Retry-After). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_pools.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_time.h>
#include <jansson.h>

#include "gc_log.h"
#include "gc_metrics.h"
#include "gc_outbox.h"
#include "gc_store_retention.h"
#include "gc_store.h"
#include "gc_version.h"
#include "gc_webhook.h"
#include "loopback_http.h"
#include "unit.h"

#define T0 ((apr_time_t)1763750000000LL * 1000) /* 2025-11-21, ms precision */
#define MS(n) ((apr_time_t)(n)*1000)
#define SECRET_PATH "/services/T0AAA/B0BBB/xoxSeCrEtToKeN42"

static apr_pool_t *pool;
static char db_dir[256];
static char db_path[300];
static lb_server_t *lb;
static gc_metrics_t *metrics;
static void *metrics_mem;

/* ---------------------------------------------------------------- log capture */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char *log_text;

static int log_all(void *baton, int level)
{
    return 1;
}

static void log_capture(void *baton, const char *file, int line, int level, apr_status_t rv,
                        const char *msg)
{
    size_t old, add = strlen(msg);

    pthread_mutex_lock(&log_mu);
    old = log_text ? strlen(log_text) : 0;
    log_text = realloc(log_text, old + add + 2);
    memcpy(log_text + old, msg, add);
    log_text[old + add] = '\n';
    log_text[old + add + 1] = '\0';
    pthread_mutex_unlock(&log_mu);
}

static int log_has(const char *needle)
{
    int found;

    pthread_mutex_lock(&log_mu);
    found = log_text && strstr(log_text, needle) != NULL;
    pthread_mutex_unlock(&log_mu);
    return found;
}

/* Poll the log for needle, up to timeout_ms. */
static int wait_log(const char *needle, int timeout_ms)
{
    apr_time_t until = apr_time_now() + apr_time_from_msec(timeout_ms);

    while (!log_has(needle) && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(10));
    }
    return log_has(needle);
}

/* ---------------------------------------------------------------- fixtures */

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");

    apr_pool_create(&pool, NULL);
    apr_dbd_init(pool);
    snprintf(db_dir, sizeof(db_dir), "%s/gcmon-outbox-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(db_dir));
    snprintf(db_path, sizeof(db_path), "%s/gcmon.db", db_dir);
    lb = lb_start();
    ck_assert_int_eq(posix_memalign(&metrics_mem, 64, gc_metrics_size()), 0);
    metrics = gc_metrics_init(metrics_mem);
    gc_log_set(log_all, log_capture, NULL);
}

static void teardown(void)
{
    static const char *const files[] = { "gcmon.db", "gcmon.db-wal", "gcmon.db-shm",
                                         "gcmon.db-journal" };
    char path[400];
    size_t i;

    gc_log_set(NULL, NULL, NULL);
    free(log_text);
    log_text = NULL;
    lb_stop(lb);
    lb = NULL;
    free(metrics_mem);
    metrics_mem = NULL;
    metrics = NULL;
    apr_pool_destroy(pool);
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", db_dir, files[i]);
        unlink(path);
    }
    rmdir(db_dir);
}

/* ---------------------------------------------------------------- helpers */

static gc_store_t *open_migrated_in(apr_pool_t *p)
{
    gc_store_t *s = NULL;
    const char *err = NULL;

    ck_assert_msg(gc_store_open(p, "sqlite3", db_path, &s, &err) == APR_SUCCESS && s,
                  "gc_store_open: %s", err);
    ck_assert_msg(gc_store_migrate(s, &err) == APR_SUCCESS, "migrate: %s", err);
    return s;
}

/* Raw SQL through a connection of its own. Rows joined with ';', columns
 * with '|', NULL is '~'. */
static const char *sql_rows(const char *sql)
{
    const apr_dbd_driver_t *d = NULL;
    apr_dbd_t *h = NULL;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *out = "";
    int rv, first = 1;

    ck_assert_int_eq(apr_dbd_get_driver(pool, "sqlite3", &d), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_open(d, pool, db_path, &h), APR_SUCCESS);
    rv = apr_dbd_select(d, pool, h, &res, sql, 1);
    ck_assert_msg(rv == 0, "%s: %s", sql, apr_dbd_error(d, h, rv));
    while (apr_dbd_get_row(d, pool, res, &row, -1) == 0) {
        int c, n = apr_dbd_num_cols(d, res);
        out = apr_pstrcat(pool, out, first ? "" : ";", NULL);
        first = 0;
        for (c = 0; c < n; c++) {
            char *v = NULL;
            if (apr_dbd_datum_get(d, row, c, APR_DBD_TYPE_STRING, &v) != APR_SUCCESS || !v) {
                v = "~";
            }
            out = apr_pstrcat(pool, out, c ? "|" : "", v, NULL);
        }
    }
    apr_dbd_close(d, h);
    return out;
}

static void sql_exec(const char *sql)
{
    const apr_dbd_driver_t *d = NULL;
    apr_dbd_t *h = NULL;
    int rv, n = 0;

    ck_assert_int_eq(apr_dbd_get_driver(pool, "sqlite3", &d), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_open(d, pool, db_path, &h), APR_SUCCESS);
    rv = apr_dbd_query(d, h, &n, sql);
    ck_assert_msg(rv == 0, "%s: %s", sql, apr_dbd_error(d, h, rv));
    apr_dbd_close(d, h);
}

static void add_row(gc_store_t *s, const char *target, const apr_int64_t *alert_id,
                    const char *body, apr_time_t now)
{
    const char *err = NULL;

    ck_assert_msg(gc_store_outbox_add(s, pool, target, alert_id, body, now, &err) == APR_SUCCESS,
                  "outbox_add: %s", err);
}

static gc_webhook_conf_t conf_for(const char *path)
{
    gc_webhook_conf_t c;

    memset(&c, 0, sizeof(c));
    c.slack_url = apr_pstrcat(pool, lb_url(lb), path, NULL);
    c.timeout = apr_time_from_sec(5);
    return c;
}

/* Poll a SQL query until it returns `want` (the thread writes from its own
 * connection); 1 when it did within timeout_ms. */
static int wait_sql(const char *sql, const char *want, int timeout_ms)
{
    apr_time_t until = apr_time_now() + MS(timeout_ms);

    do {
        if (strcmp(sql_rows(sql), want) == 0) {
            return 1;
        }
        apr_sleep(MS(20));
    } while (apr_time_now() < until);
    return 0;
}

/* ---------------------------------------------------------------- the thread's env */

typedef struct {
    int fail_opens; /* the first n opens fail */
    int opens, closes;
} db_baton_t;

static apr_status_t test_db_open(void *baton, apr_pool_t *p, gc_store_t **store, void **handle,
                                 const char **err)
{
    db_baton_t *b = baton;

    b->opens++;
    if (b->opens <= b->fail_opens) {
        *err = "test: database unavailable";
        return APR_EGENERAL;
    }
    if (gc_store_open(p, "sqlite3", db_path, store, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    *handle = *store;
    return APR_SUCCESS;
}

static void test_db_close(void *baton, void *handle)
{
    db_baton_t *b = baton;

    b->closes++;
    gc_store_close(handle);
}

static gc_outbox_env_t env_for(const gc_webhook_conf_t *c, db_baton_t *b, apr_interval_time_t bmin,
                               apr_interval_time_t bmax)
{
    gc_outbox_env_t e;

    memset(&e, 0, sizeof(e));
    e.conf = c;
    e.metrics = metrics;
    e.baton = b;
    e.db_open = test_db_open;
    e.db_close = test_db_close;
    e.backoff_min = bmin;
    e.backoff_max = bmax;
    return e;
}

static long long deliveries(const char *target, const char *result)
{
    return gc_metrics_get(metrics, GC_MET_WEBHOOK_DELIVERIES, target, result);
}

/* ================================================================ one delivery */

START_TEST(signature_rfc4231)
{
    const char *data = "what do ya want for nothing?";

    ck_assert_str_eq(gc_webhook_signature(pool, "Jefe", data, strlen(data)),
                     "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* The length counts, not a NUL. */
    ck_assert_str_eq(gc_webhook_signature(pool, "Jefe", "what do ya want for nothing?!!", 28),
                     "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
END_TEST

START_TEST(url_per_target)
{
    gc_webhook_conf_t c;

    memset(&c, 0, sizeof(c));
    c.slack_url = "https://hooks.example/s";
    c.wfm_url = "https://wfm.example/w";
    ck_assert_str_eq(gc_webhook_url(&c, GC_TARGET_SLACK), "https://hooks.example/s");
    ck_assert_str_eq(gc_webhook_url(&c, GC_TARGET_WFM), "https://wfm.example/w");
    ck_assert_ptr_null(gc_webhook_url(&c, GC_TARGET_STATUS));
    ck_assert_ptr_null(gc_webhook_url(&c, GC_TARGET_TRACE));
    ck_assert_ptr_null(gc_webhook_url(&c, "other"));
    ck_assert_ptr_null(gc_webhook_url(NULL, GC_TARGET_SLACK));
}
END_TEST

/* Every target comes from gc_webhook_targets.h's one list: its URL field, its
 * name (the outbox row's target, a metrics label value of its own), its
 * directive, its event header; and the named constants point into it. */
START_TEST(every_target_from_the_table)
{
    const char *const named[] = { GC_TARGET_SLACK, GC_TARGET_STATUS, GC_TARGET_TRACE,
                                  GC_TARGET_WFM };
    int i, j, slack = 0;

    ck_assert_int_eq(GC_WEBHOOK__COUNT, 4);
    for (i = 0; i < GC_WEBHOOK__COUNT; i++) {
        const gc_webhook_target_t *t = &gc_webhook_targets[i];
        gc_webhook_conf_t c;

        memset(&c, 0, sizeof(c));
        ck_assert_ptr_eq(gc_webhook_target(t->name), t);
        ck_assert_int_eq(strncmp(t->directive, "Gcmon", 5), 0);
        ck_assert_ptr_nonnull(strstr(t->directive, "Webhook"));
        ck_assert(t->label && *t->label && t->help && *t->help);
        ck_assert(!gc_webhook_any(&c));
        *(const char **)((char *)&c + t->url_offset) = "https://hooks.example/x";
        ck_assert(gc_webhook_any(&c));
        for (j = 0; j < GC_WEBHOOK__COUNT; j++) {
            const char *url = gc_webhook_url(&c, gc_webhook_targets[j].name);
            if (j == i) {
                ck_assert_str_eq(url, "https://hooks.example/x");
            }
            else {
                ck_assert_ptr_null(url);
            }
        }
        gc_metrics_add(metrics, GC_MET_WEBHOOK_DELIVERIES, t->name, "delivered", 1);
        ck_assert_int_eq(deliveries(t->name, "delivered"), 1);
        ck_assert_int_eq(deliveries("other", "delivered"), 0);
        ck_assert_ptr_eq(named[i], t->name);
        slack += t->slack;
    }
    ck_assert_str_eq(GC_TARGET_SLACK, "slack");
    ck_assert_str_eq(GC_TARGET_STATUS, "status");
    ck_assert_str_eq(GC_TARGET_TRACE, "trace");
    ck_assert_str_eq(GC_TARGET_WFM, "wfm");
    ck_assert_int_eq(gc_webhook_targets[GC_WEBHOOK_slack].slack, 1);
    ck_assert_int_eq(slack, 1);
    ck_assert_str_eq(gc_webhook_event(GC_TARGET_STATUS), "state_change");
    ck_assert_ptr_null(gc_webhook_target("other"));
    ck_assert_ptr_null(gc_webhook_target(NULL));
}
END_TEST

START_TEST(post_signed_headers_and_body)
{
    gc_webhook_conf_t c = conf_for("/hook");
    gc_webhook_result_t res;
    const lb_request_t *r;
    const char *body = "{\"text\":\"hello\"}";

    lb_add_simple(lb, "/hook", 200, NULL, "ok");
    c.secret = "s3cret";
    ck_assert_int_eq(gc_webhook_post(pool, &c, GC_TARGET_SLACK, c.slack_url, body, &res),
                     APR_SUCCESS);
    ck_assert_int_eq(res.status, 200);
    ck_assert_ptr_null(res.error);
    ck_assert_int_eq(res.retry_after, 0);
    r = lb_request(lb, "/hook", 0);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->method, "POST");
    ck_assert_str_eq(r->body, body);
    ck_assert_str_eq(lb_header(r, "Content-Type"), "application/json");
    ck_assert_str_eq(lb_header(r, "User-Agent"), "gcmon/" GCMON_VERSION);
    ck_assert_str_eq(lb_header(r, "X-Gcmon-Signature"),
                     gc_webhook_signature(pool, "s3cret", body, strlen(body)));

    /* No secret: no signature header. */
    c.secret = NULL;
    ck_assert_int_eq(gc_webhook_post(pool, &c, GC_TARGET_SLACK, c.slack_url, body, &res),
                     APR_SUCCESS);
    r = lb_request(lb, "/hook", 1);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(lb_header(r, "X-Gcmon-Signature"));
    ck_assert_str_eq(r->body, body);
}
END_TEST

START_TEST(post_retry_after)
{
    gc_webhook_conf_t c = conf_for("/hook");
    gc_webhook_result_t res;
    char date[APR_RFC822_DATE_LEN], hdr[100];

    apr_rfc822_date(date, apr_time_now() + apr_time_from_sec(120));
    snprintf(hdr, sizeof(hdr), "Retry-After: %s\r\n", date);
    lb_add_simple(lb, "/hook", 429, "Retry-After: 7\r\n", NULL);
    lb_add_simple(lb, "/hook", 503, hdr, NULL);
    lb_add_simple(lb, "/hook", 500, "Retry-After: 7\r\n", NULL);
    lb_add_simple(lb, "/hook", 429, "Retry-After: soon\r\n", NULL);

    ck_assert_int_ne(gc_webhook_post(pool, &c, GC_TARGET_SLACK, c.slack_url, "{}", &res),
                     APR_SUCCESS);
    ck_assert_int_eq(res.status, 429);
    ck_assert_int_eq(res.retry_after, apr_time_from_sec(7));
    ck_assert_str_eq(res.error, "HTTP 429 from the slack webhook");

    ck_assert_int_ne(gc_webhook_post(pool, &c, GC_TARGET_SLACK, c.slack_url, "{}", &res),
                     APR_SUCCESS);
    ck_assert_int_eq(res.status, 503);
    ck_assert_msg(res.retry_after > apr_time_from_sec(110)
                      && res.retry_after <= apr_time_from_sec(121),
                  "HTTP-date Retry-After: %" APR_TIME_T_FMT, res.retry_after);

    /* Only 429 and 503 carry a meaningful Retry-After. */
    ck_assert_int_ne(gc_webhook_post(pool, &c, GC_TARGET_SLACK, c.slack_url, "{}", &res),
                     APR_SUCCESS);
    ck_assert_int_eq(res.status, 500);
    ck_assert_int_eq(res.retry_after, 0);

    ck_assert_int_ne(gc_webhook_post(pool, &c, GC_TARGET_SLACK, c.slack_url, "{}", &res),
                     APR_SUCCESS);
    ck_assert_int_eq(res.retry_after, 0);
}
END_TEST

START_TEST(errors_never_contain_the_url)
{
    gc_webhook_conf_t c = conf_for(SECRET_PATH);
    gc_webhook_result_t res;
    lb_response_t slow = { LB_RESPOND, 200, NULL, NULL, 3000 };
    const char *url;

    /* The server echoes the path in its error body. */
    lb_add_simple(lb, SECRET_PATH, 404, "Content-Type: text/plain\r\n",
                  "no such hook: " SECRET_PATH);
    lb_add_simple(lb, SECRET_PATH, 400, "Content-Type: text/plain\r\n", "invalid_payload\n");
    ck_assert_int_ne(gc_webhook_post(pool, &c, GC_TARGET_SLACK, c.slack_url, "{}", &res),
                     APR_SUCCESS);
    ck_assert_int_eq(res.status, 404);
    ck_assert_str_eq(res.error, "HTTP 404 from the slack webhook: no such hook: [hidden]");
    ck_assert_int_ne(gc_webhook_post(pool, &c, GC_TARGET_SLACK, c.slack_url, "{}", &res),
                     APR_SUCCESS);
    ck_assert_str_eq(res.error, "HTTP 400 from the slack webhook: invalid_payload");

    /* Nothing listening. */
    url = apr_psprintf(pool, "http://127.0.0.1:%d" SECRET_PATH, lb_closed_port());
    c.status_url = url;
    ck_assert_int_ne(gc_webhook_post(pool, &c, GC_TARGET_STATUS, url, "{}", &res), APR_SUCCESS);
    ck_assert_int_eq(res.status, 0);
    ck_assert_msg(strncmp(res.error, "connection failed: ", 19) == 0, "%s", res.error);
    ck_assert_ptr_null(strstr(res.error, "xoxSeCrEtToKeN42"));

    /* Refused protocol, and a bad host name embedding the token. */
    url = "ftp://127.0.0.1" SECRET_PATH;
    ck_assert_int_ne(gc_webhook_post(pool, &c, GC_TARGET_STATUS, url, "{}", &res), APR_SUCCESS);
    ck_assert_msg(strncmp(res.error, "connection failed: ", 19) == 0, "%s", res.error);
    ck_assert_ptr_null(strstr(res.error, "xoxSeCrEtToKeN42"));
    c.timeout = apr_time_from_sec(2);
    url = "http://gcmon-test.invalid" SECRET_PATH;
    ck_assert_int_ne(gc_webhook_post(pool, &c, GC_TARGET_STATUS, url, "{}", &res), APR_SUCCESS);
    ck_assert_ptr_null(strstr(res.error, "xoxSeCrEtToKeN42"));

    /* A timeout (conf->timeout bounds the attempt). */
    lb_add(lb, "/slow" SECRET_PATH, &slow);
    c.timeout = MS(300);
    url = apr_pstrcat(pool, lb_url(lb), "/slow" SECRET_PATH, NULL);
    ck_assert_int_ne(gc_webhook_post(pool, &c, GC_TARGET_STATUS, url, "{}", &res), APR_SUCCESS);
    ck_assert_msg(strncmp(res.error, "connection failed: ", 19) == 0, "%s", res.error);
    ck_assert_ptr_null(strstr(res.error, "xoxSeCrEtToKeN42"));

    ck_assert_msg(!log_has("xoxSeCrEtToKeN42"), "a log line names the URL:\n%s", log_text);
}
END_TEST

/* Script a 400 answer with body (text/plain) on route. */
static void script_echo(const char *route, const char *body)
{
    lb_add_simple(lb, route, 400, "Content-Type: text/plain\r\n", body);
}

/* The error text of a POST to url (answered 400). */
static const char *post_error(const char *url)
{
    gc_webhook_conf_t c = conf_for("/unused");
    gc_webhook_result_t res;

    ck_assert_int_ne(gc_webhook_post(pool, &c, GC_TARGET_SLACK, url, "{}", &res), APR_SUCCESS);
    ck_assert_int_eq(res.status, 400);
    return res.error;
}

/* No prefix of secret of 8 bytes or more appears in text. */
static void assert_no_prefix(const char *text, const char *secret)
{
    apr_size_t k;

    for (k = 8; k <= strlen(secret); k++) {
        ck_assert_msg(!strstr(text, apr_pstrndup(pool, secret, k)),
                      "%d-byte prefix of a secret in \"%s\"", (int)k, text);
    }
}

#define ECHO_PREFIX "HTTP 400 from the slack webhook: "

/* A receiver that echoes part of its URL: each path segment and query
 * name/value of 4 bytes or more is hidden, raw or percent-decoded. */
START_TEST(errors_hide_echoed_url_parts)
{
    const char *url = apr_pstrcat(pool, lb_url(lb), SECRET_PATH, NULL);
    const char *q = apr_pstrcat(pool, lb_url(lb), "/q/hook?token=abc123&team=T9", NULL);
    const char *enc = apr_pstrcat(pool, lb_url(lb), "/enc/sec%2Fret%20x42?key=a+b+c+d", NULL);

    /* one segment; two adjacent ones; a short part and other text stay */
    script_echo("/services", "invalid token xoxSeCrEtToKeN42!");
    script_echo("/services", "hook B0BBB/xoxSeCrEtToKeN42 is off");
    script_echo("/services", "Services T0AA are down");
    ck_assert_str_eq(post_error(url), ECHO_PREFIX "invalid token [hidden]!");
    ck_assert_str_eq(post_error(url), ECHO_PREFIX "hook [hidden]/[hidden] is off");
    ck_assert_str_eq(post_error(url), ECHO_PREFIX "Services T0AA are down");

    /* a query value, a name=value pair, a name and a short value */
    script_echo("/q/", "bad token abc123");
    script_echo("/q/", "got token=abc123;");
    script_echo("/q/", "unknown team T9"); /* "team" is a name */
    ck_assert_str_eq(post_error(q), ECHO_PREFIX "bad [hidden] [hidden]");
    ck_assert_str_eq(post_error(q), ECHO_PREFIX "got [hidden];");
    ck_assert_str_eq(post_error(q), ECHO_PREFIX "unknown [hidden] T9");

    /* percent-encoded parts: hidden as sent and as decoded */
    script_echo("/enc/", "no hook sec%2Fret%20x42");
    script_echo("/enc/", "no hook sec/ret x42");
    script_echo("/enc/", "key a b c d?");
    ck_assert_str_eq(post_error(enc), ECHO_PREFIX "no hook [hidden]");
    ck_assert_str_eq(post_error(enc), ECHO_PREFIX "no hook [hidden]");
    ck_assert_str_eq(post_error(enc), ECHO_PREFIX "key [hidden]?"); /* "key": too short */
}
END_TEST

/* Hidden before the cut at 120 bytes, and the 4 KiB read of the body may end
 * inside a secret: either way no part of it is left. */
START_TEST(errors_hide_url_parts_at_the_cut)
{
    const char *url = apr_pstrcat(pool, lb_url(lb), SECRET_PATH, NULL);
    char *big = apr_palloc(pool, 5000);
    const char *e;

    /* 110 bytes, then the segment across the cut at 120 */
    memset(big, 'x', 104);
    big[104] = '\0';
    script_echo("/services", apr_pstrcat(pool, "error ", big, "xoxSeCrEtToKeN42 after", NULL));
    /* blanks collapse, so what the 4 KiB read ends in would reach the text */
    memset(big, ' ', 4999);
    big[4999] = '\0';
    big[0] = 'a';
    memcpy(big + 4086, "xoxSeCrEtToKeN42", 16);
    script_echo("/services", big);

    e = post_error(url);
    assert_no_prefix(e, "xoxSeCrEtToKeN42");
    ck_assert_ptr_nonnull(strstr(e, "x[hidden] a..."));
    e = post_error(url);
    assert_no_prefix(e, "xoxSeCrEtToKeN42");
    ck_assert_str_eq(e, ECHO_PREFIX "a...");
}
END_TEST

START_TEST(slack_body_shape)
{
    const char *text =
        gc_slack_alert_body(pool, "u-123", "Ann <Lee> & co", "Available",
                            apr_time_from_sec(15 * 60 + 3), apr_time_from_sec(15 * 60));
    json_t *j, *blocks, *hdr, *sec, *fields;
    json_error_t jerr;

    ck_assert_ptr_nonnull(text);
    j = json_loads(text, 0, &jerr);
    ck_assert_msg(j != NULL, "%s: %s", jerr.text, text);
    ck_assert_str_eq(json_string_value(json_object_get(j, "text")),
                     "Idle alert: Ann &lt;Lee&gt; &amp; co (u-123) has been Available for "
                     "15m 3s (threshold 15m)");
    blocks = json_object_get(j, "blocks");
    ck_assert_int_eq(json_array_size(blocks), 2);
    hdr = json_array_get(blocks, 0);
    ck_assert_str_eq(json_string_value(json_object_get(hdr, "type")), "header");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(hdr, "text"), "type")),
                     "plain_text");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(hdr, "text"), "text")),
                     "Idle alert: Ann <Lee> & co in Available");
    sec = json_array_get(blocks, 1);
    ck_assert_str_eq(json_string_value(json_object_get(sec, "type")), "section");
    fields = json_object_get(sec, "fields");
    ck_assert_int_eq(json_array_size(fields), 4);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(fields, 0), "type")),
                     "mrkdwn");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(fields, 0), "text")),
                     "*Agent*\nAnn &lt;Lee&gt; &amp; co (u-123)");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(fields, 1), "text")),
                     "*State*\nAvailable");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(fields, 2), "text")),
                     "*Time in state*\n15m 3s");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(fields, 3), "text")),
                     "*Threshold*\n15m");
    json_decref(j);

    /* No name: the id stands in. */
    text = gc_slack_alert_body(pool, "u-9", NULL, "IDLE", apr_time_from_sec(3600 + 61),
                               apr_time_from_sec(3600));
    j = json_loads(text, 0, &jerr);
    ck_assert_ptr_nonnull(j);
    blocks = json_object_get(j, "blocks");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(blocks, 0), "text"), "text")),
                     "Idle alert: u-9 in IDLE");
    fields = json_object_get(json_array_get(blocks, 1), "fields");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(fields, 0), "text")),
                     "*Agent*\nu-9");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(fields, 2), "text")),
                     "*Time in state*\n1h 1m 1s");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(fields, 3), "text")),
                     "*Threshold*\n1h");
    json_decref(j);
}
END_TEST

/* ================================================================ the database side */

START_TEST(store_add_due_pending)
{
    gc_store_t *s = open_migrated_in(pool);
    apr_array_header_t *rows = NULL;
    const gc_outbox_row_t *r;
    const char *err = NULL;
    apr_time_t next = 0;
    apr_int64_t alert = 42;
    long count = -1;

    ck_assert_int_eq(gc_store_outbox_pending(s, pool, &next, &count, &err), APR_SUCCESS);
    ck_assert_int_eq(count, 0);
    ck_assert_int_eq(next, 0);

    add_row(s, GC_TARGET_SLACK, &alert, "{\"n\":1}", T0 + MS(100));
    add_row(s, GC_TARGET_STATUS, NULL, "{\"n\":2}", T0);
    add_row(s, GC_TARGET_WFM, NULL, "{\"n\":3}", T0 + MS(5000));

    ck_assert_int_eq(gc_store_outbox_pending(s, pool, &next, &count, &err), APR_SUCCESS);
    ck_assert_int_eq(count, 3);
    ck_assert_int_eq(next, T0);

    /* Due at T0+100ms: the first two, oldest (first written) first. */
    ck_assert_int_eq(gc_store_outbox_due(s, pool, T0 + MS(100), 10, &rows, &err), APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 2);
    r = &APR_ARRAY_IDX(rows, 0, gc_outbox_row_t);
    ck_assert_str_eq(r->target, "slack");
    ck_assert_int_eq(r->alert_id, 42);
    ck_assert_str_eq(r->body, "{\"n\":1}");
    ck_assert_int_eq(r->created_at, T0 + MS(100));
    ck_assert_int_eq(r->next_at, T0 + MS(100));
    ck_assert_int_eq(r->attempts, 0);
    r = &APR_ARRAY_IDX(rows, 1, gc_outbox_row_t);
    ck_assert_str_eq(r->target, "status");
    ck_assert_int_eq(r->alert_id, 0);

    ck_assert_int_eq(gc_store_outbox_due(s, pool, T0 + MS(99), 10, &rows, &err), APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 1);
    ck_assert_int_eq(gc_store_outbox_due(s, pool, T0 + MS(5000), 2, &rows, &err), APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 2);
    ck_assert_int_eq(gc_store_outbox_due(s, pool, T0 - 1000, 10, &rows, &err), APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 0);

    /* Only the target is stored, never a URL. */
    ck_assert_str_eq(sql_rows("SELECT target, alert_id, status, attempts, last_error, done_at "
                              "FROM gcmon_outbox ORDER BY id"),
                     "slack|42|pending|0|~|~;status|~|pending|0|~|~;wfm|~|pending|0|~|~");
    gc_store_close(s);
}
END_TEST

START_TEST(store_result_mirrors_the_alert)
{
    gc_store_t *s = open_migrated_in(pool);
    apr_array_header_t *rows = NULL;
    const char *err = NULL;
    apr_time_t next = 0;
    apr_int64_t alert = 1;
    long count = 0;

    sql_exec("INSERT INTO gcmon_alerts (user_id, user_name, state, threshold_seconds, "
             "episode_at, raised_at) VALUES ('u1', 'Ann', 'Available', 900, 1, 2)");
    ck_assert_str_eq(sql_rows("SELECT id, delivery_status, delivery_attempts FROM gcmon_alerts"),
                     "1|pending|0");
    add_row(s, GC_TARGET_SLACK, &alert, "{}", T0); /* outbox id 1 */
    add_row(s, GC_TARGET_STATUS, NULL, "{}", T0);  /* outbox id 2 */

    /* A failed attempt: next attempt later, error recorded on both rows. */
    ck_assert_int_eq(gc_store_outbox_result(s, pool, 1, GC_OUTBOX_RETRY, T0 + MS(10), T0 + MS(2000),
                                            "HTTP 500 from the slack webhook", &err),
                     APR_SUCCESS);
    ck_assert_str_eq(sql_rows("SELECT status, attempts, next_at - created_at, last_error, "
                              "done_at FROM gcmon_outbox WHERE id = 1"),
                     "pending|1|2000|HTTP 500 from the slack webhook|~");
    ck_assert_str_eq(sql_rows("SELECT delivery_status, delivery_attempts, delivery_last_error "
                              "FROM gcmon_alerts WHERE id = 1"),
                     "pending|1|HTTP 500 from the slack webhook");
    ck_assert_int_eq(gc_store_outbox_due(s, pool, T0 + MS(1999), 10, &rows, &err), APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 1); /* only id 2 */
    ck_assert_int_eq(APR_ARRAY_IDX(rows, 0, gc_outbox_row_t).id, 2);
    ck_assert_int_eq(gc_store_outbox_pending(s, pool, &next, &count, &err), APR_SUCCESS);
    ck_assert_int_eq(count, 2);
    ck_assert_int_eq(next, T0);

    /* Delivered: done, counted, no longer pending. */
    ck_assert_int_eq(
        gc_store_outbox_result(s, pool, 1, GC_OUTBOX_DELIVERED, T0 + MS(2100), 0, NULL, &err),
        APR_SUCCESS);
    ck_assert_str_eq(sql_rows("SELECT status, attempts, done_at - created_at FROM gcmon_outbox "
                              "WHERE id = 1"),
                     "delivered|2|2100");
    ck_assert_str_eq(sql_rows("SELECT delivery_status, delivery_attempts FROM gcmon_alerts "
                              "WHERE id = 1"),
                     "delivered|2");
    ck_assert_int_eq(gc_store_outbox_due(s, pool, T0 + MS(9000), 10, &rows, &err), APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(rows, 0, gc_outbox_row_t).id, 2);

    /* A delivered row is never touched again (a late overlapping holder). */
    ck_assert_int_eq(gc_store_outbox_result(s, pool, 1, GC_OUTBOX_RETRY, T0 + MS(3000),
                                            T0 + MS(4000), "late", &err),
                     APR_SUCCESS);
    ck_assert_str_eq(sql_rows("SELECT status, attempts FROM gcmon_outbox WHERE id = 1"),
                     "delivered|2");
    ck_assert_str_eq(sql_rows("SELECT delivery_status, delivery_attempts FROM gcmon_alerts "
                              "WHERE id = 1"),
                     "delivered|2");

    /* Given up: failed, done, no alert to mirror. */
    ck_assert_int_eq(gc_store_outbox_result(s, pool, 2, GC_OUTBOX_FAILED, T0 + MS(5000), 0,
                                            "gave up after 5s", &err),
                     APR_SUCCESS);
    ck_assert_str_eq(sql_rows("SELECT status, attempts, last_error, done_at - created_at "
                              "FROM gcmon_outbox WHERE id = 2"),
                     "failed|1|gave up after 5s|5000");
    ck_assert_int_eq(gc_store_outbox_pending(s, pool, &next, &count, &err), APR_SUCCESS);
    ck_assert_int_eq(count, 0);
    ck_assert_int_eq(next, 0);
    ck_assert_str_eq(sql_rows("SELECT delivery_status FROM gcmon_alerts WHERE id = 1"),
                     "delivered");
    gc_store_close(s);
}
END_TEST

START_TEST(store_failed_mirrors_the_alert)
{
    gc_store_t *s = open_migrated_in(pool);
    const char *err = NULL;
    apr_int64_t alert = 7;

    sql_exec("INSERT INTO gcmon_alerts (id, user_id, state, threshold_seconds, episode_at, "
             "raised_at) VALUES (7, 'u7', 'IDLE', 60, 1, 2)");
    sql_exec("INSERT INTO gcmon_alerts (id, user_id, state, threshold_seconds, episode_at, "
             "raised_at) VALUES (8, 'u8', 'IDLE', 60, 1, 2)");
    add_row(s, GC_TARGET_SLACK, &alert, "{}", T0);
    ck_assert_int_eq(gc_store_outbox_result(s, pool, 1, GC_OUTBOX_FAILED, T0 + MS(1), 0,
                                            "GcmonSlackWebhook is not configured", &err),
                     APR_SUCCESS);
    ck_assert_str_eq(sql_rows("SELECT id, delivery_status, delivery_attempts, "
                              "delivery_last_error FROM gcmon_alerts ORDER BY id"),
                     "7|failed|1|GcmonSlackWebhook is not configured;8|pending|0|~");
    gc_store_close(s);
}
END_TEST

/* Finished rows older than `before` go, oldest first and at most max per call;
 * pending rows stay however old. */
START_TEST(store_prune_finished_only)
{
    gc_store_t *s = open_migrated_in(pool);
    const char *err = NULL;
    int deleted = -1;

    sql_exec("INSERT INTO gcmon_outbox (target, body, created_at, next_at, status, done_at) "
             "VALUES ('slack', '{}', 1, 1, 'delivered', 1000), "
             "('status', '{}', 1, 1, 'failed', 2000), "
             "('status', '{}', 1, 1, 'delivered', 9000), "
             "('status', '{}', 1, 1, 'pending', NULL), "
             "('wfm', '{}', 1, 1, 'delivered', 3000)");
    ck_assert_int_eq(gc_store_outbox_prune(s, pool, MS(5000), 2, &deleted, &err), APR_SUCCESS);
    ck_assert_int_eq(deleted, 2);
    ck_assert_str_eq(sql_rows("SELECT id FROM gcmon_outbox ORDER BY id"), "3;4;5");
    ck_assert_int_eq(gc_store_outbox_prune(s, pool, MS(5000), 2, &deleted, &err), APR_SUCCESS);
    ck_assert_int_eq(deleted, 1);
    ck_assert_str_eq(sql_rows("SELECT id, status FROM gcmon_outbox ORDER BY id"),
                     "3|delivered;4|pending");
    gc_store_close(s);
}
END_TEST

/* The status webhook announces itself; other targets carry no event header. */
START_TEST(post_event_header_per_target)
{
    gc_webhook_conf_t c = conf_for("/hook");
    gc_webhook_result_t res;

    lb_add_simple(lb, "/hook", 200, NULL, "ok");
    lb_add_simple(lb, "/hook", 200, NULL, "ok");
    ck_assert_int_eq(gc_webhook_post(pool, &c, GC_TARGET_STATUS, c.slack_url, "{}", &res),
                     APR_SUCCESS);
    ck_assert_int_eq(gc_webhook_post(pool, &c, GC_TARGET_SLACK, c.slack_url, "{}", &res),
                     APR_SUCCESS);
    ck_assert_str_eq(lb_header(lb_request(lb, "/hook", 0), "X-Genesys-Event"), "state_change");
    ck_assert_ptr_null(lb_header(lb_request(lb, "/hook", 1), "X-Genesys-Event"));
    ck_assert_ptr_null(gc_webhook_event(GC_TARGET_TRACE));
}
END_TEST

/* ================================================================ the thread */

START_TEST(thread_retries_then_delivers)
{
    gc_webhook_conf_t c = conf_for("/hook");
    db_baton_t b = { 0, 0, 0 };
    gc_outbox_env_t e = env_for(&c, &b, MS(50), apr_time_from_sec(2));
    gc_store_t *s = open_migrated_in(pool);
    gc_outbox_t *o = NULL;
    apr_int64_t alert = 1;
    apr_time_t t0;

    sql_exec("INSERT INTO gcmon_alerts (user_id, state, threshold_seconds, episode_at, "
             "raised_at) VALUES ('u1', 'Available', 900, 1, 2)");
    lb_add_simple(lb, "/hook", 500, NULL, NULL);
    lb_add_simple(lb, "/hook", 500, NULL, NULL);
    lb_add_simple(lb, "/hook", 500, NULL, NULL);
    lb_add_simple(lb, "/hook", 200, NULL, "ok");
    c.secret = "k";
    add_row(s, GC_TARGET_SLACK, &alert, "{\"text\":\"idle\"}", apr_time_now());
    t0 = apr_time_now();
    ck_assert_int_eq(gc_outbox_start(&o, pool, &e), APR_SUCCESS);
    ck_assert(lb_wait_count(lb, "/hook", 4, 10000));
    ck_assert(wait_sql("SELECT status, attempts FROM gcmon_outbox", "delivered|4", 5000));
    /* Backoff 50 + 100 + 200 ms at least between the four attempts. */
    ck_assert_msg(apr_time_now() - t0 >= MS(350), "too fast: %" APR_TIME_T_FMT " µs",
                  apr_time_now() - t0);
    ck_assert_str_eq(sql_rows("SELECT delivery_status, delivery_attempts FROM gcmon_alerts"),
                     "delivered|4");
    ck_assert_str_eq(
        lb_header(lb_request(lb, "/hook", 3), "X-Gcmon-Signature"),
        gc_webhook_signature(pool, "k", "{\"text\":\"idle\"}", strlen("{\"text\":\"idle\"}")));

    /* Delivered is final: nothing is sent again. */
    apr_sleep(apr_time_from_msec(1500));
    ck_assert_int_eq(lb_count(lb, "/hook"), 4);
    gc_outbox_stop(o);
    ck_assert_int_eq(deliveries("slack", "retry"), 3);
    ck_assert_int_eq(deliveries("slack", "delivered"), 1);
    ck_assert_int_eq(deliveries("slack", "failed"), 0);
    ck_assert_int_eq(gc_metrics_get(metrics, GC_MET_OUTBOX_PENDING, NULL, NULL), 0);
    ck_assert(log_has("GCM701")); /* the first failure, once */
    ck_assert(log_has("GCM702"));
    ck_assert_int_eq(b.opens, b.closes);
    gc_store_close(s);
}
END_TEST

/* The connection fails between the POST and its bookkeeping (here: the table
 * is away while the endpoint answers): the result is kept and recorded on the
 * next connection, and the row is not posted again. */
START_TEST(thread_records_a_result_the_database_missed)
{
    gc_webhook_conf_t c = conf_for("/hook");
    db_baton_t b = { 0, 0, 0 };
    gc_outbox_env_t e = env_for(&c, &b, MS(50), apr_time_from_sec(2));
    gc_store_t *s = open_migrated_in(pool);
    gc_outbox_t *o = NULL;
    lb_response_t slow = { LB_RESPOND, 200, NULL, "ok", 800 };

    lb_add(lb, "/hook", &slow);
    add_row(s, GC_TARGET_SLACK, NULL, "{\"text\":\"idle\"}", apr_time_now());
    ck_assert_int_eq(gc_outbox_start(&o, pool, &e), APR_SUCCESS);
    ck_assert(lb_wait_count(lb, "/hook", 1, 5000));
    sql_exec("ALTER TABLE gcmon_outbox RENAME TO gcmon_outbox_away");
    ck_assert(wait_log("GCM703", 5000)); /* the result could not be written */
    sql_exec("ALTER TABLE gcmon_outbox_away RENAME TO gcmon_outbox");
    ck_assert(wait_log("GCM710", 5000));
    ck_assert(wait_sql("SELECT status, attempts FROM gcmon_outbox", "delivered|1", 5000));
    apr_sleep(MS(300)); /* a second post would come within the backoff (50 ms) */
    ck_assert_int_eq(lb_count(lb, "/hook"), 1);
    gc_outbox_stop(o);
    ck_assert_int_eq(deliveries("slack", "delivered"), 1);
    ck_assert(!log_has("GCM711"));
    gc_store_close(s);
}
END_TEST

START_TEST(thread_gives_up_at_max_age)
{
    gc_webhook_conf_t c = conf_for(SECRET_PATH);
    db_baton_t b = { 0, 0, 0 };
    gc_outbox_env_t e = env_for(&c, &b, MS(300), apr_time_from_sec(1));
    gc_store_t *s = open_migrated_in(pool);
    gc_outbox_t *o = NULL;
    int n;

    lb_add_simple(lb, SECRET_PATH, 500, NULL, NULL);
    c.max_age = apr_time_from_sec(1);
    /* Far too old (a holder was away): failed without a request. */
    add_row(s, GC_TARGET_SLACK, NULL, "{\"old\":1}", apr_time_now() - apr_time_from_sec(10));
    /* Fresh, but the endpoint keeps failing: retried up to a last attempt at
     * created_at + 1 s, then given up. */
    add_row(s, GC_TARGET_SLACK, NULL, "{\"new\":1}", apr_time_now());
    ck_assert_int_eq(gc_outbox_start(&o, pool, &e), APR_SUCCESS);
    ck_assert(wait_sql("SELECT status FROM gcmon_outbox ORDER BY id", "failed;failed", 5000));
    ck_assert_str_eq(sql_rows("SELECT last_error FROM gcmon_outbox WHERE id = 1"),
                     "gave up after 10s");
    ck_assert_str_eq(sql_rows("SELECT substr(last_error, 1, 12) FROM gcmon_outbox WHERE id = 2"),
                     "gave up afte");
    ck_assert_ptr_nonnull(strstr(sql_rows("SELECT last_error FROM gcmon_outbox WHERE id = 2"),
                                 "HTTP 500 from the slack webhook"));
    n = lb_count(lb, SECRET_PATH);
    ck_assert_int_ge(n, 1);
    ck_assert_int_le(n, 4);
    /* Not retried after failing. */
    apr_sleep(apr_time_from_msec(1500));
    ck_assert_int_eq(lb_count(lb, SECRET_PATH), n);
    gc_outbox_stop(o);
    ck_assert_int_eq(deliveries("slack", "failed"), 2);
    ck_assert(log_has("GCM700"));
    ck_assert(!log_has("xoxSeCrEtToKeN42"));
    gc_store_close(s);
}
END_TEST

START_TEST(thread_not_configured)
{
    gc_webhook_conf_t c = conf_for("/hook");
    db_baton_t b = { 0, 0, 0 };
    gc_outbox_env_t e = env_for(&c, &b, MS(50), apr_time_from_sec(1));
    gc_store_t *s = open_migrated_in(pool);
    gc_outbox_t *o = NULL;

    c.slack_url = NULL;
    add_row(s, GC_TARGET_SLACK, NULL, "{}", apr_time_now());
    add_row(s, "carrier-pigeon", NULL, "{}", apr_time_now());
    ck_assert_int_eq(gc_outbox_start(&o, pool, &e), APR_SUCCESS);
    ck_assert(wait_sql("SELECT status, last_error FROM gcmon_outbox ORDER BY id",
                       "failed|GcmonSlackWebhook is not configured;"
                       "failed|no webhook for target 'carrier-pigeon'",
                       5000));
    gc_outbox_stop(o);
    ck_assert_int_eq(lb_count(lb, NULL), 0);
    ck_assert_int_eq(deliveries("slack", "failed"), 1);
    ck_assert_int_eq(deliveries("other", "failed"), 1);
    gc_store_close(s);
}
END_TEST

START_TEST(thread_restart_resumes)
{
    gc_webhook_conf_t c = conf_for("/hook");
    db_baton_t b = { 0, 0, 0 };
    gc_outbox_env_t e = env_for(&c, &b, MS(400), apr_time_from_sec(1));
    gc_store_t *s = open_migrated_in(pool);
    gc_outbox_t *o = NULL;

    lb_add_simple(lb, "/hook", 503, NULL, NULL);
    lb_add_simple(lb, "/hook", 200, NULL, NULL);
    add_row(s, GC_TARGET_SLACK, NULL, "{\"r\":1}", apr_time_now());
    ck_assert_int_eq(gc_outbox_start(&o, pool, &e), APR_SUCCESS);
    ck_assert(wait_sql("SELECT status, attempts FROM gcmon_outbox", "pending|1", 5000));
    gc_outbox_stop(o); /* before the retry is due */
    ck_assert_int_eq(lb_count(lb, "/hook"), 1);

    ck_assert_int_eq(gc_outbox_start(&o, pool, &e), APR_SUCCESS);
    ck_assert(wait_sql("SELECT status, attempts FROM gcmon_outbox", "delivered|2", 5000));
    ck_assert_int_eq(lb_count(lb, "/hook"), 2);
    ck_assert_str_eq(lb_request(lb, "/hook", 1)->body, "{\"r\":1}");
    gc_outbox_stop(o);
    gc_store_close(s);
}
END_TEST

START_TEST(thread_honours_retry_after)
{
    gc_webhook_conf_t c = conf_for("/hook");
    db_baton_t b = { 0, 0, 0 };
    gc_outbox_env_t e = env_for(&c, &b, MS(50), apr_time_from_sec(1));
    gc_store_t *s = open_migrated_in(pool);
    gc_outbox_t *o = NULL;
    apr_time_t t0;

    lb_add_simple(lb, "/hook", 429, "Retry-After: 1\r\n", NULL);
    lb_add_simple(lb, "/hook", 200, NULL, NULL);
    add_row(s, GC_TARGET_SLACK, NULL, "{}", apr_time_now());
    t0 = apr_time_now();
    ck_assert_int_eq(gc_outbox_start(&o, pool, &e), APR_SUCCESS);
    ck_assert(lb_wait_count(lb, "/hook", 1, 5000));
    ck_assert(lb_wait_count(lb, "/hook", 2, 5000));
    ck_assert_msg(apr_time_now() - t0 >= apr_time_from_sec(1),
                  "the retry came after %" APR_TIME_T_FMT " µs", apr_time_now() - t0);
    ck_assert(wait_sql("SELECT status FROM gcmon_outbox", "delivered", 5000));
    gc_outbox_stop(o);
    gc_store_close(s);
}
END_TEST

START_TEST(thread_wake_and_database_outage)
{
    gc_webhook_conf_t c = conf_for("/hook");
    db_baton_t b = { 2, 0, 0 }; /* the first two opens fail */
    gc_outbox_env_t e = env_for(&c, &b, MS(50), apr_time_from_sec(1));
    gc_store_t *s = open_migrated_in(pool);
    gc_outbox_t *o = NULL;
    apr_time_t t;

    lb_add_simple(lb, "/hook", 200, NULL, NULL);
    ck_assert_int_eq(gc_outbox_start(&o, pool, &e), APR_SUCCESS);
    /* Wait out the outage (backoff 0.5 s, 1 s), then an idle pass. */
    t = apr_time_now() + apr_time_from_sec(10);
    while (b.opens < 3 && apr_time_now() < t) {
        apr_sleep(MS(20));
    }
    ck_assert_int_eq(b.opens, 3);
    ck_assert(log_has("GCM703"));
    ck_assert(wait_log("GCM704", 5000));

    /* A new row and a wake: delivered well before the 1 s poll. */
    add_row(s, GC_TARGET_SLACK, NULL, "{\"w\":1}", apr_time_now());
    t = apr_time_now();
    gc_outbox_wake(o);
    ck_assert(lb_wait_count(lb, "/hook", 1, 3000));
    ck_assert_msg(apr_time_now() - t < MS(500), "woken after %" APR_TIME_T_FMT " µs",
                  apr_time_now() - t);
    ck_assert(wait_sql("SELECT status FROM gcmon_outbox", "delivered", 5000));
    gc_outbox_stop(o);
    ck_assert_int_eq(b.opens, b.closes + 2); /* the failed opens have nothing to close */
    gc_store_close(s);
}
END_TEST

/* With a retention, the thread deletes finished deliveries older than it and
 * keeps recent and pending ones. */
START_TEST(thread_prunes_finished_rows)
{
    gc_webhook_conf_t c = conf_for("/hook");
    db_baton_t b = { 0, 0, 0 };
    gc_outbox_env_t e = env_for(&c, &b, MS(50), apr_time_from_sec(2));
    gc_store_t *s = open_migrated_in(pool);
    gc_outbox_t *o = NULL;
    char sql[512];
    apr_int64_t now = apr_time_as_msec(apr_time_now());

    e.retention = apr_time_from_sec(3600);
    e.prune_first = MS(1);
    snprintf(sql, sizeof(sql),
             "INSERT INTO gcmon_outbox (target, body, created_at, next_at, status, done_at) "
             "VALUES ('slack', '{}', 1, 1, 'delivered', %lld), "
             "('status', '{}', 1, 1, 'failed', %lld), "
             "('status', '{}', 1, 1, 'delivered', %lld), "
             "('status', '{}', 1, %lld, 'pending', NULL)",
             (long long)(now - 7200 * 1000), (long long)(now - 3601 * 1000),
             (long long)(now - 60 * 1000), (long long)(now + 86400 * 1000));
    sql_exec(sql);
    ck_assert_int_eq(gc_outbox_start(&o, pool, &e), APR_SUCCESS);
    ck_assert(
        wait_sql("SELECT id, status FROM gcmon_outbox ORDER BY id", "3|delivered;4|pending", 5000));
    gc_outbox_stop(o);
    ck_assert(log_has("GCM708"));
    ck_assert_int_eq(lb_count(lb, "/hook"), 0);
    gc_store_close(s);
}
END_TEST

/* Retention of the other records (gc_store_retention.h): old rows go, recent
 * ones, open alerts and running jobs stay. */
START_TEST(retain_prunes_old_records_only)
{
    gc_store_t *s = open_migrated_in(pool);
    const char *err = NULL;
    apr_time_t now = apr_time_now();
    apr_int64_t old = apr_time_as_msec(now) - 7200 * 1000, recent = apr_time_as_msec(now);
    char sql[2048];
    int deleted = -1;

    snprintf(sql, sizeof(sql),
             "INSERT INTO gcmon_alerts (user_id, state, threshold_seconds, episode_at, raised_at, "
             "cleared_at) VALUES ('u1', 'Break', 60, 1, %lld, %lld), "
             "('u2', 'Break', 60, 1, %lld, NULL), ('u3', 'Break', 60, 1, %lld, %lld);"
             "INSERT INTO gcmon_audit (at, actor, action, status, latency_ms) VALUES "
             "(%lld, 'a', 'x', 200, 1), (%lld, 'a', 'x', 200, 1);"
             "INSERT INTO gcmon_distribution (dist_id, queue_id, status, http_status, actor, at, "
             "members, upstream_requests, latency_ms, request, result) VALUES "
             "('d1', 'q', 'completed', 200, 'a', %lld, 1, 1, 1, '{}', '{}'), "
             "('d2', 'q', 'completed', 200, 'a', %lld, 1, 1, 1, '{}', '{}');"
             "INSERT INTO gcmon_jobs (job_id, kind, actor, state, payload, attempts, created_at, "
             "updated_at, next_run_at, deadline_at, completed_at) VALUES "
             "('j1', 'trace', 'a', 'completed', '{}', 1, 1, 1, 1, 1, %lld), "
             "('j2', 'trace', 'a', 'running', '{}', 1, 1, 1, 1, 1, NULL), "
             "('j3', 'trace', 'a', 'failed', '{}', 1, 1, 1, 1, 1, %lld)",
             (long long)old, (long long)old, (long long)old, (long long)recent, (long long)recent,
             (long long)old, (long long)recent, (long long)old, (long long)recent, (long long)old,
             (long long)recent);
    sql_exec(sql);
    ck_assert_int_eq(gc_store_retain_prune(s, pool, GC_RETAIN_ALERTS, now - apr_time_from_sec(3600),
                                           10, &deleted, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(deleted, 1);
    ck_assert_str_eq(sql_rows("SELECT user_id FROM gcmon_alerts ORDER BY id"), "u2;u3");
    ck_assert_int_eq(gc_store_retain_prune(s, pool, GC_RETAIN_AUDIT, now - apr_time_from_sec(3600),
                                           10, &deleted, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(deleted, 1);
    ck_assert_str_eq(sql_rows("SELECT COUNT(*) FROM gcmon_audit"), "1");
    ck_assert_int_eq(gc_store_retain_prune(s, pool, GC_RETAIN_DISTRIBUTIONS,
                                           now - apr_time_from_sec(3600), 10, &deleted, &err),
                     APR_SUCCESS);
    ck_assert_str_eq(sql_rows("SELECT dist_id FROM gcmon_distribution"), "d2");
    /* A chunk at a time: max 1 of the one old ended job. */
    ck_assert_int_eq(gc_store_retain_prune(s, pool, GC_RETAIN_JOBS, now - apr_time_from_sec(3600),
                                           1, &deleted, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(deleted, 1);
    ck_assert_str_eq(sql_rows("SELECT job_id FROM gcmon_jobs ORDER BY id"), "j2;j3");
    ck_assert_int_eq(gc_store_retain_prune(s, pool, GC_RETAIN__COUNT, now, 1, &deleted, &err),
                     APR_EINVAL);
    gc_store_close(s);
}
END_TEST

static void count_housekeeping(void *baton, gc_store_t *s, apr_pool_t *p, apr_time_t now)
{
    (void)s;
    (void)p;
    (void)now;
    apr_atomic_inc32(baton);
}

/* The outbox thread's hourly round runs the holder's housekeeping too. */
START_TEST(thread_runs_housekeeping)
{
    gc_webhook_conf_t c = conf_for("/hook");
    db_baton_t b = { 0, 0, 0 };
    gc_outbox_env_t e = env_for(&c, &b, MS(50), apr_time_from_sec(2));
    gc_store_t *s = open_migrated_in(pool);
    gc_outbox_t *o = NULL;
    volatile apr_uint32_t calls = 0;
    int i;

    e.retention = apr_time_from_sec(3600);
    e.prune_first = MS(1);
    e.housekeeping = count_housekeeping;
    e.housekeeping_baton = (void *)&calls;
    ck_assert_int_eq(gc_outbox_start(&o, pool, &e), APR_SUCCESS);
    for (i = 0; i < 500 && apr_atomic_read32(&calls) == 0; i++) {
        apr_sleep(MS(10));
    }
    gc_outbox_stop(o);
    /* Once: the next round is an hour away. */
    ck_assert_int_eq(apr_atomic_read32(&calls), 1);
    gc_store_close(s);
}
END_TEST

START_TEST(stop_is_bounded_by_the_timeout)
{
    gc_webhook_conf_t c = conf_for("/hook");
    db_baton_t b = { 0, 0, 0 };
    gc_outbox_env_t e = env_for(&c, &b, MS(50), apr_time_from_sec(1));
    gc_store_t *s = open_migrated_in(pool);
    gc_outbox_t *o = NULL;
    lb_response_t slow = { LB_RESPOND, 200, NULL, NULL, 5000 };
    apr_time_t t;

    lb_add(lb, "/hook", &slow);
    c.timeout = MS(500);
    add_row(s, GC_TARGET_SLACK, NULL, "{}", apr_time_now());
    ck_assert_int_eq(gc_outbox_start(&o, pool, &e), APR_SUCCESS);
    ck_assert(lb_wait_count(lb, "/hook", 1, 5000));
    t = apr_time_now();
    gc_outbox_stop(o);
    ck_assert_msg(apr_time_now() - t < apr_time_from_sec(2), "stop took %" APR_TIME_T_FMT " µs",
                  apr_time_now() - t);
    /* The timed-out attempt was recorded; the row stays for the next holder. */
    ck_assert_str_eq(sql_rows("SELECT status, attempts FROM gcmon_outbox"), "pending|1");
    gc_store_close(s);
}
END_TEST

Suite *outbox_suite(void)
{
    Suite *s = suite_create("outbox");
    TCase *tc = tcase_create("webhook");
    TCase *ts = tcase_create("store");
    TCase *tt = tcase_create("thread");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, signature_rfc4231);
    tcase_add_test(tc, url_per_target);
    tcase_add_test(tc, every_target_from_the_table);
    tcase_add_test(tc, post_signed_headers_and_body);
    tcase_add_test(tc, post_event_header_per_target);
    tcase_add_test(tc, post_retry_after);
    tcase_add_test(tc, errors_never_contain_the_url);
    tcase_add_test(tc, errors_hide_echoed_url_parts);
    tcase_add_test(tc, errors_hide_url_parts_at_the_cut);
    tcase_add_test(tc, slack_body_shape);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(ts, setup, teardown);
    tcase_set_timeout(ts, 30);
    tcase_add_test(ts, store_add_due_pending);
    tcase_add_test(ts, store_prune_finished_only);
    tcase_add_test(ts, store_result_mirrors_the_alert);
    tcase_add_test(ts, store_failed_mirrors_the_alert);
    suite_add_tcase(s, ts);

    tcase_add_checked_fixture(tt, setup, teardown);
    tcase_set_timeout(tt, 60);
    tcase_add_test(tt, thread_retries_then_delivers);
    tcase_add_test(tt, thread_records_a_result_the_database_missed);
    tcase_add_test(tt, thread_gives_up_at_max_age);
    tcase_add_test(tt, thread_not_configured);
    tcase_add_test(tt, thread_restart_resumes);
    tcase_add_test(tt, thread_honours_retry_after);
    tcase_add_test(tt, thread_wake_and_database_outage);
    tcase_add_test(tt, stop_is_bounded_by_the_timeout);
    tcase_add_test(tt, thread_prunes_finished_rows);
    tcase_add_test(tt, thread_runs_housekeeping);
    tcase_add_test(tt, retain_prunes_old_records_only);
    suite_add_tcase(s, tt);
    return s;
}
