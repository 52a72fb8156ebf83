/* Unit tests of the upstream client (gc_upstream.c) against the scripted
 * loopback server. No test sleeps to synchronise: waits happen inside the
 * client (Retry-After, budget) and are measured. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <apr_base64.h>
#include <apr_date.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "gc_log.h"
#include "gc_upstream.h"
#include "gc_upstream_test.h"
#include "gc_version.h"
#include "loopback_http.h"
#include "unit.h"

#define CLIENT_ID "client-id-7f3a"
#define SECRET "s3cr3t-Zq9-unit-test-secret"
#define TOKEN1 "tok-AAAA-1111-first-token"
#define TOKEN2 "tok-BBBB-2222-second-token"
#define JSON_CT "Content-Type: application/json\r\n"

static lb_server_t *srv;
static apr_pool_t *pool;
static gc_conn_conf_t conf;

/* Every level on, output dropped: formats every log line of every path
 * (under ASan/UBSan too) without cluttering the test output. */
static int log_all(void *baton, int level)
{
    (void)baton;
    (void)level;
    return 1;
}

static void log_discard(void *baton, const char *file, int line, int level, apr_status_t rv,
                        const char *msg)
{
    (void)baton;
    (void)file;
    (void)line;
    (void)level;
    (void)rv;
    (void)msg;
}

static void setup(void)
{
    gc_log_set(log_all, log_discard, NULL);
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
    srv = lb_start();
    memset(&conf, 0, sizeof(conf));
    conf.environment = "mypurecloud.com";
    conf.api_url = apr_pstrdup(pool, lb_url(srv));
    conf.login_url = apr_pstrdup(pool, lb_url(srv));
    conf.client_id = CLIENT_ID;
    conf.client_secret = SECRET;
    conf.request_timeout = apr_time_from_sec(5);
    conf.rate_limit = 300;
}

static void teardown(void)
{
    gc_log_set(NULL, NULL, NULL);
    lb_stop(srv);
    srv = NULL;
    apr_pool_destroy(pool);
    pool = NULL;
}

static void script_token(const char *token, int expires_in)
{
    lb_add_simple(srv, "/oauth/token", 200, NULL,
                  apr_psprintf(pool,
                               "{\"access_token\":\"%s\",\"token_type\":\"bearer\","
                               "\"expires_in\":%d}",
                               token, expires_in));
}

static gc_upstream_t *client_with(gc_budget_t *b, gc_metrics_t *m)
{
    gc_upstream_t *u = gc_upstream_create(pool, &conf, b, m);

    ck_assert_ptr_nonnull(u);
    gc_upstream_test_set_backoff(u, apr_time_from_msec(1), apr_time_from_msec(5));
    return u;
}

static gc_upstream_t *client(void)
{
    return client_with(NULL, NULL);
}

static apr_status_t call_ex(gc_upstream_t *u, const char *method, const char *path,
                            const char *body, int max_attempts, gc_response_t **r, gc_error_t **e)
{
    gc_request_t req;

    memset(&req, 0, sizeof(req));
    req.op = "test_op";
    req.method = method;
    req.path = path;
    req.body = body;
    req.max_attempts = max_attempts;
    return gc_upstream_call(u, pool, &req, r, e);
}

static apr_status_t call(gc_upstream_t *u, const char *method, const char *path, gc_response_t **r,
                         gc_error_t **e)
{
    return call_ex(u, method, path, NULL, 0, r, e);
}

static long ms_since(apr_time_t start)
{
    return (long)apr_time_as_msec(apr_time_now() - start);
}

static apr_time_t fake_now;

static apr_time_t fake_clock(void *baton)
{
    (void)baton;
    return fake_now;
}

/* ---- success and headers ------------------------------------------------ */

START_TEST(test_success_headers)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    const lb_request_t *api, *tok;
    const char *creds = CLIENT_ID ":" SECRET;
    char *b64 = apr_palloc(pool, (apr_size_t)apr_base64_encode_len((int)strlen(creds)));

    apr_base64_encode(b64, creds, (int)strlen(creds));
    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/v2/users/me", 200,
                  JSON_CT "ININ-Correlation-ID: corr-123\r\nX-Extra: Yes\r\n",
                  "{\"id\":\"u1\",\"name\":\"Agent One\"}");
    u = client();
    ck_assert_int_eq(call(u, "GET", "/api/v2/users/me?expand=presence", &r, &e), APR_SUCCESS);
    ck_assert_ptr_null(e);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_eq(r->attempts, 1);
    ck_assert_str_eq(r->body, "{\"id\":\"u1\",\"name\":\"Agent One\"}");
    ck_assert_uint_eq(r->body_len, strlen(r->body));
    ck_assert_ptr_nonnull(r->json);
    ck_assert_str_eq(json_string_value(json_object_get(r->json, "id")), "u1");
    ck_assert_pstr_eq(r->correlation_id, "corr-123");
    ck_assert_pstr_eq(apr_table_get(r->headers, "x-extra"), "Yes");
    ck_assert_pstr_eq(apr_table_get(r->headers, "content-type"), "application/json");

    api = lb_request(srv, "/api/", 0);
    ck_assert_ptr_nonnull(api);
    ck_assert_str_eq(api->method, "GET");
    ck_assert_str_eq(api->target, "/api/v2/users/me?expand=presence");
    ck_assert_pstr_eq(lb_header(api, "Authorization"), "Bearer " TOKEN1);
    ck_assert_pstr_eq(lb_header(api, "Accept"), "application/json");
    ck_assert_pstr_eq(lb_header(api, "User-Agent"), GCMON_USER_AGENT);
    ck_assert_pstr_eq(lb_header(api, "Content-Type"), NULL);

    tok = lb_request(srv, "/oauth/token", 0);
    ck_assert_ptr_nonnull(tok);
    ck_assert_str_eq(tok->method, "POST");
    ck_assert_pstr_eq(lb_header(tok, "Authorization"), apr_pstrcat(pool, "Basic ", b64, NULL));
    ck_assert_pstr_eq(lb_header(tok, "Content-Type"), "application/x-www-form-urlencoded");
    ck_assert_str_eq(tok->body, "grant_type=client_credentials");
    ck_assert_int_eq(lb_count(srv, NULL), 2);
}
END_TEST

START_TEST(test_methods_and_bodies)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    const lb_request_t *q;

    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/v2/post", 201, NULL, "{\"id\":\"new\"}");
    lb_add_simple(srv, "/api/v2/put", 200, NULL, "{}");
    lb_add_simple(srv, "/api/v2/head", 200, NULL, "{\"ignored\":true}");
    lb_add_simple(srv, "/api/v2/delete", 204, NULL, NULL);
    lb_add_simple(srv, "/api/v2/patch", 200, "Content-Type: text/plain\r\n", "plain text");
    u = client();

    ck_assert_int_eq(call_ex(u, "POST", "/api/v2/post", "{\"a\":1}", 0, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(r->status, 201);
    q = lb_request(srv, "/api/v2/post", 0);
    ck_assert_str_eq(q->method, "POST");
    ck_assert_str_eq(q->body, "{\"a\":1}");
    ck_assert_pstr_eq(lb_header(q, "Content-Type"), "application/json");

    ck_assert_int_eq(call(u, "PUT", "/api/v2/put", &r, &e), APR_SUCCESS);
    q = lb_request(srv, "/api/v2/put", 0);
    ck_assert_str_eq(q->method, "PUT");
    ck_assert_pstr_eq(lb_header(q, "Content-Length"), "0");
    ck_assert_pstr_eq(lb_header(q, "Content-Type"), NULL);

    ck_assert_int_eq(call(u, "HEAD", "/api/v2/head", &r, &e), APR_SUCCESS);
    ck_assert_str_eq(lb_request(srv, "/api/v2/head", 0)->method, "HEAD");
    ck_assert_uint_eq(r->body_len, 0);
    ck_assert_str_eq(r->body, "");

    ck_assert_int_eq(call(u, "DELETE", "/api/v2/delete", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(r->status, 204);
    ck_assert_str_eq(lb_request(srv, "/api/v2/delete", 0)->method, "DELETE");
    ck_assert_ptr_null(r->json);
    ck_assert_str_eq(r->body, "");

    /* a non-JSON success body is returned as is, without json */
    ck_assert_int_eq(call_ex(u, "PATCH", "/api/v2/patch", "{\"b\":2}", 0, &r, &e), APR_SUCCESS);
    ck_assert_str_eq(lb_request(srv, "/api/v2/patch", 0)->method, "PATCH");
    ck_assert_str_eq(lb_request(srv, "/api/v2/patch", 0)->body, "{\"b\":2}");
    ck_assert_str_eq(r->body, "plain text");
    ck_assert_ptr_null(r->json);
}
END_TEST

START_TEST(test_absolute_url_no_auth)
{
    gc_upstream_t *u = client();
    gc_response_t *r;
    gc_error_t *e;
    gc_request_t req;
    const lb_request_t *q;

    lb_add_simple(srv, "/download", 200, "Content-Type: text/csv\r\n", "a,b\n1,2\n");
    memset(&req, 0, sizeof(req));
    req.op = "download";
    req.method = "GET";
    req.path = apr_pstrcat(pool, lb_url(srv), "/download/file.csv?X-Amz-Signature=abc", NULL);
    req.no_auth = 1;
    ck_assert_int_eq(gc_upstream_call(u, pool, &req, &r, &e), APR_SUCCESS);
    ck_assert_str_eq(r->body, "a,b\n1,2\n");
    q = lb_request(srv, "/download", 0);
    ck_assert_str_eq(q->target, "/download/file.csv?X-Amz-Signature=abc");
    ck_assert_pstr_eq(lb_header(q, "Authorization"), NULL);
    ck_assert_int_eq(lb_count(srv, "/oauth/token"), 0);
    ck_assert_int_eq(gc_upstream_token_requests(u), 0);
}
END_TEST

START_TEST(test_bearer_only_to_api_origin)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    const char *other[3];
    int i;

    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    u = client();
    /* an absolute URL below the API URL (e.g. a nextUri) carries the token */
    ck_assert_int_eq(
        call(u, "GET", apr_pstrcat(pool, lb_url(srv), "/api/v2/next?page=2", NULL), &r, &e),
        APR_SUCCESS);
    ck_assert_pstr_eq(lb_header(lb_request(srv, "/api/", 0), "Authorization"), "Bearer " TOKEN1);
    /* any other origin would receive it too: refused unless no_auth */
    other[0] = apr_psprintf(pool, "http://localhost:%d/api/v2/x", lb_port(srv));
    other[1] = apr_psprintf(pool, "http://127.0.0.1:%d0/api/v2/x", lb_port(srv));
    other[2] = apr_psprintf(pool, "http://127.0.0.1:%d.evil.example/api/v2/x", lb_port(srv));
    for (i = 0; i < 3; i++) {
        ck_assert_int_ne(call(u, "GET", other[i], &r, &e), APR_SUCCESS);
        ck_assert_int_eq(e->kind, GC_ERR_CONFIG);
    }
    ck_assert_int_eq(lb_count(srv, "/api/"), 1);
    ck_assert_int_eq(lb_count(srv, "/oauth/token"), 1);
}
END_TEST

/* ---- token cache -------------------------------------------------------- */

START_TEST(test_token_cached)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    int i;

    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    u = client();
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
        ck_assert_pstr_eq(lb_header(lb_request(srv, "/api/", i), "Authorization"),
                          "Bearer " TOKEN1);
    }
    ck_assert_int_eq(lb_count(srv, "/oauth/token"), 1);
    ck_assert_int_eq(gc_upstream_token_requests(u), 1);
    ck_assert_int_eq(lb_count(srv, "/api/"), 3);

    gc_upstream_invalidate_token(u);
    ck_assert_int_eq(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(gc_upstream_token_requests(u), 2);
}
END_TEST

typedef struct thread_arg {
    gc_upstream_t *u;
    atomic_int *ok;
} thread_arg_t;

static void *thread_calls(void *data)
{
    thread_arg_t *a = data;
    apr_pool_t *tp;
    int i;

    if (apr_pool_create_unmanaged_ex(&tp, NULL, NULL) != APR_SUCCESS) {
        return NULL;
    }
    for (i = 0; i < 5; i++) {
        gc_request_t req;
        gc_response_t *r;
        gc_error_t *e;

        memset(&req, 0, sizeof(req));
        req.op = "test_op";
        req.method = "GET";
        req.path = "/api/v2/threads";
        if (gc_upstream_call(a->u, tp, &req, &r, &e) == APR_SUCCESS && r->status == 200) {
            atomic_fetch_add(a->ok, 1);
        }
    }
    apr_pool_destroy(tp);
    return NULL;
}

START_TEST(test_token_single_flight_threads)
{
    lb_response_t slow_token = { LB_RESPOND, 200, NULL,
                                 "{\"access_token\":\"" TOKEN1 "\",\"expires_in\":86400}", 300 };
    gc_upstream_t *u;
    pthread_t th[8];
    thread_arg_t arg;
    atomic_int ok;
    int i;

    /* the token answer is slow, so all 8 threads ask while it is in flight */
    lb_add(srv, "/oauth/token", &slow_token);
    lb_add_simple(srv, "/api/", 200, NULL, "{\"ok\":true}");
    u = client();
    atomic_init(&ok, 0);
    arg.u = u;
    arg.ok = &ok;
    for (i = 0; i < 8; i++) {
        ck_assert_int_eq(pthread_create(&th[i], NULL, thread_calls, &arg), 0);
    }
    for (i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
    }
    ck_assert_int_eq(atomic_load(&ok), 40);
    ck_assert_int_eq(lb_count(srv, "/api/"), 40);
    ck_assert_int_eq(lb_count(srv, "/oauth/token"), 1);
    ck_assert_int_eq(gc_upstream_token_requests(u), 1);
}
END_TEST

START_TEST(test_token_renewal_clock)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    script_token(TOKEN1, 3600);
    script_token(TOKEN2, 100);
    script_token(TOKEN1, 100);
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    u = client();
    fake_now = apr_time_from_sec(1000000);
    gc_upstream_test_set_clock(u, fake_clock, NULL);

    ck_assert_int_eq(call(u, "GET", "/api/v2/a", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(gc_upstream_token_requests(u), 1);
    /* expires_in 3600: renewed at 3600 - 60 s */
    fake_now += apr_time_from_sec(3539);
    ck_assert_int_eq(call(u, "GET", "/api/v2/b", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(gc_upstream_token_requests(u), 1);
    fake_now += apr_time_from_sec(1);
    ck_assert_int_eq(call(u, "GET", "/api/v2/c", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(gc_upstream_token_requests(u), 2);
    ck_assert_pstr_eq(lb_header(lb_request(srv, "/api/", 2), "Authorization"), "Bearer " TOKEN2);
    /* expires_in 100: renewed at max(100 - 60, 100 / 2) = 50 s */
    fake_now += apr_time_from_sec(49);
    ck_assert_int_eq(call(u, "GET", "/api/v2/d", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(gc_upstream_token_requests(u), 2);
    fake_now += apr_time_from_sec(1);
    ck_assert_int_eq(call(u, "GET", "/api/v2/e", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(gc_upstream_token_requests(u), 3);
    ck_assert_pstr_eq(lb_header(lb_request(srv, "/api/", 4), "Authorization"), "Bearer " TOKEN1);
}
END_TEST

/* ---- secrets wiped ------------------------------------------------------ */

#define LONG_TOKEN "tok-LLLL-0123456789abcdef0123456789abcdef0123456789abcdef-long"

/* Bytes of the token storage from `from` on that are not zero. */
static int storage_nonzero_from(gc_upstream_t *u, apr_size_t from)
{
    apr_size_t size, i;
    const char *m = gc_upstream_test_token_storage(u, &size);
    int n = 0;

    for (i = from; i < size; i++) {
        n += m[i] != 0;
    }
    return n;
}

static int storage_holds(gc_upstream_t *u, const char *token)
{
    apr_size_t size;
    const char *m = gc_upstream_test_token_storage(u, &size);

    return memcmp(m, token, strlen(token)) == 0 && storage_nonzero_from(u, strlen(token)) == 0;
}

typedef struct storage_watch {
    gc_upstream_t *u;
    int ran, nonzero;
} storage_watch_t;

/* Registered before the client, so it runs after the client's cleanup,
 * before the pool's memory is freed. */
static apr_status_t storage_watch_cleanup(void *data)
{
    storage_watch_t *w = data;

    w->ran = 1;
    w->nonzero = w->u ? storage_nonzero_from(w->u, 0) : -1;
    return APR_SUCCESS;
}

/* The cached token is wiped when renewed (a shorter one leaves no tail of
 * the longer), when forgotten, and when the client's pool goes. */
START_TEST(test_token_storage_wiped)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    apr_pool_t *sp;
    storage_watch_t w;

    script_token(LONG_TOKEN, 100);
    script_token(TOKEN2, 86400);
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    u = client();
    fake_now = apr_time_from_sec(5000000);
    gc_upstream_test_set_clock(u, fake_clock, NULL);
    ck_assert_int_eq(storage_nonzero_from(u, 0), 0);
    ck_assert_int_eq(call(u, "GET", "/api/v2/a", &r, &e), APR_SUCCESS);
    ck_assert_msg(storage_holds(u, LONG_TOKEN), "first token not cached as expected");

    fake_now += apr_time_from_sec(51); /* renewal time of expires_in 100 */
    ck_assert_int_eq(call(u, "GET", "/api/v2/b", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(gc_upstream_token_requests(u), 2);
    ck_assert_msg(storage_holds(u, TOKEN2), "renewal left bytes of the old token");

    gc_upstream_invalidate_token(u);
    ck_assert_int_eq(storage_nonzero_from(u, 0), 0);

    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(apr_pool_create(&sp, pool), APR_SUCCESS);
    apr_pool_cleanup_register(sp, &w, storage_watch_cleanup, apr_pool_cleanup_null);
    w.u = gc_upstream_create(sp, &conf, NULL, NULL);
    ck_assert_ptr_nonnull(w.u);
    ck_assert_int_eq(call(w.u, "GET", "/api/v2/c", &r, &e), APR_SUCCESS);
    ck_assert_msg(storage_holds(w.u, TOKEN2), "token not cached");
    apr_pool_destroy(sp);
    ck_assert_int_eq(w.ran, 1);
    ck_assert_int_eq(w.nonzero, 0);
}
END_TEST

/* A 401 forgets (wipes) the rejected token before renewing it. */
START_TEST(test_token_storage_wiped_on_401)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    script_token(LONG_TOKEN, 86400);
    lb_add_simple(srv, "/oauth/token", 503, NULL, "busy");
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    lb_add_simple(srv, "/api/", 401, NULL, "{\"message\":\"expired\"}");
    u = client();
    ck_assert_int_eq(call(u, "GET", "/api/v2/a", &r, &e), APR_SUCCESS);
    ck_assert_msg(storage_holds(u, LONG_TOKEN), "token not cached");
    /* 401, then the renewal fails: nothing of the rejected token stays */
    ck_assert_int_ne(call(u, "GET", "/api/v2/b", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_SERVER);
    ck_assert_int_eq(storage_nonzero_from(u, 0), 0);
}
END_TEST

/* A login service echoing the Basic credentials: they never reach the error. */
START_TEST(test_basic_credentials_hidden)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    const char *creds = CLIENT_ID ":" SECRET;
    char *b64 = apr_palloc(pool, (apr_size_t)apr_base64_encode_len((int)strlen(creds)));

    apr_base64_encode(b64, creds, (int)strlen(creds));
    lb_add_simple(srv, "/oauth/token", 400, NULL,
                  apr_pstrcat(pool,
                              "{\"error\":\"invalid_client\",\"description\":"
                              "\"bad header: Basic ",
                              b64, "\"}", NULL));
    u = client();
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_AUTH);
    ck_assert_msg(!strstr(e->message, b64), "credentials in \"%s\"", e->message);
    ck_assert_ptr_nonnull(strstr(e->message, "bad header: Basic [hidden]"));
}
END_TEST

START_TEST(test_401_renews_once)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    script_token(TOKEN1, 86400);
    script_token(TOKEN2, 86400);
    lb_add_simple(srv, "/api/", 401, NULL,
                  "{\"message\":\"token expired\",\"code\":\"bad.credentials\"}");
    lb_add_simple(srv, "/api/", 200, NULL, "{\"id\":\"x\"}");
    u = client();
    ck_assert_int_eq(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_eq(r->attempts, 2);
    ck_assert_int_eq(gc_upstream_token_requests(u), 2);
    ck_assert_pstr_eq(lb_header(lb_request(srv, "/api/", 0), "Authorization"), "Bearer " TOKEN1);
    ck_assert_pstr_eq(lb_header(lb_request(srv, "/api/", 1), "Authorization"), "Bearer " TOKEN2);
}
END_TEST

typedef struct slow_call {
    gc_upstream_t *u;
    apr_status_t rv;
    int attempts;
} slow_call_t;

static void *slow_401_call(void *data)
{
    slow_call_t *sc = data;
    apr_pool_t *tp;
    gc_request_t req;
    gc_response_t *r = NULL;
    gc_error_t *e = NULL;

    if (apr_pool_create_unmanaged_ex(&tp, NULL, NULL) != APR_SUCCESS) {
        sc->rv = APR_ENOMEM;
        return NULL;
    }
    memset(&req, 0, sizeof(req));
    req.op = "test_op";
    req.method = "GET";
    req.path = "/api/v2/slow";
    sc->rv = gc_upstream_call(sc->u, tp, &req, &r, &e);
    sc->attempts = r ? r->attempts : -1;
    apr_pool_destroy(tp);
    return NULL;
}

/* A 401 for a token that another thread has already replaced must not throw
 * the new token away (no renewal stampede). */
START_TEST(test_401_stale_token_no_stampede)
{
    lb_response_t slow401 = { LB_RESPOND, 401, NULL, "{\"message\":\"expired\"}", 400 };
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    slow_call_t sc;
    pthread_t th;

    script_token(TOKEN1, 86400);
    script_token(TOKEN2, 86400);
    script_token(TOKEN2 "-third", 86400);
    lb_add_simple(srv, "/api/v2/warm", 200, NULL, "{}");
    lb_add(srv, "/api/v2/slow", &slow401);
    lb_add_simple(srv, "/api/v2/slow", 200, NULL, "{}");
    lb_add_simple(srv, "/api/v2/fast", 401, NULL, "{\"message\":\"expired\"}");
    lb_add_simple(srv, "/api/v2/fast", 200, NULL, "{}");
    u = client();
    ck_assert_int_eq(call(u, "GET", "/api/v2/warm", &r, &e), APR_SUCCESS); /* TOKEN1 */

    memset(&sc, 0, sizeof(sc));
    sc.u = u;
    ck_assert_int_eq(pthread_create(&th, NULL, slow_401_call, &sc), 0);
    /* the slow call has sent TOKEN1; its 401 comes back in 400 ms */
    ck_assert_int_eq(lb_wait_count(srv, "/api/v2/slow", 1, 5000), 1);
    /* meanwhile this call gets a 401 at once and renews to TOKEN2 */
    ck_assert_int_eq(call(u, "GET", "/api/v2/fast", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(gc_upstream_token_requests(u), 2);
    pthread_join(th, NULL);

    ck_assert_int_eq(sc.rv, APR_SUCCESS);
    ck_assert_int_eq(sc.attempts, 2);
    /* the slow call's 401 was for TOKEN1: it reuses TOKEN2 and asks for no third */
    ck_assert_int_eq(gc_upstream_token_requests(u), 2);
    ck_assert_pstr_eq(lb_header(lb_request(srv, "/api/v2/slow", 0), "Authorization"),
                      "Bearer " TOKEN1);
    ck_assert_pstr_eq(lb_header(lb_request(srv, "/api/v2/slow", 1), "Authorization"),
                      "Bearer " TOKEN2);
}
END_TEST

START_TEST(test_401_twice_is_auth)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    script_token(TOKEN1, 86400);
    script_token(TOKEN2, 86400);
    lb_add_simple(srv, "/api/", 401, NULL, "{\"message\":\"nope\",\"code\":\"bad.credentials\"}");
    u = client();
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->kind, GC_ERR_AUTH);
    ck_assert_int_eq(e->status, 401);
    ck_assert_int_eq(e->attempts, 2);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->status, 401);
    ck_assert_int_eq(lb_count(srv, "/api/"), 2);
    ck_assert_int_eq(gc_upstream_token_requests(u), 2);
}
END_TEST

START_TEST(test_token_endpoint_refuses)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    /* a login service that even echoes the secret back */
    lb_add_simple(
        srv, "/oauth/token", 401, NULL,
        "{\"error\":\"invalid_client\",\"description\":\"Bad client credentials for " SECRET
        "\",\"error_description\":\"Bad client credentials for " SECRET "\"}");
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    u = client();
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(e->kind, GC_ERR_AUTH);
    ck_assert_int_eq(e->status, 401);
    ck_assert_ptr_nonnull(strstr(e->message, "login service refused the client credentials"));
    ck_assert_ptr_nonnull(strstr(e->message, "invalid_client"));
    ck_assert_ptr_nonnull(strstr(e->message, "Bad client credentials"));
    ck_assert_ptr_null(strstr(e->message, SECRET));
    ck_assert_int_eq(lb_count(srv, "/oauth/token"), 1); /* refusals are not retried */
    ck_assert_int_eq(lb_count(srv, "/api/"), 0);
}
END_TEST

START_TEST(test_token_refusal_held_briefly)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    lb_add_simple(srv, "/oauth/token", 400, NULL,
                  "{\"error\":\"invalid_client\",\"description\":\"unknown client\"}");
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    u = client();
    fake_now = apr_time_from_sec(5000000);
    gc_upstream_test_set_clock(u, fake_clock, NULL);
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_AUTH);
    /* the refusal is remembered for 10 s: no request per incoming call */
    fake_now += apr_time_from_sec(9);
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_AUTH);
    ck_assert_ptr_nonnull(strstr(e->message, "unknown client"));
    ck_assert_int_eq(lb_count(srv, "/oauth/token"), 1);
    fake_now += apr_time_from_sec(1);
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(lb_count(srv, "/oauth/token"), 2);
    /* an explicit invalidation (operator's "renew") asks at once */
    gc_upstream_invalidate_token(u);
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(lb_count(srv, "/oauth/token"), 3);
    ck_assert_int_eq(lb_count(srv, "/api/"), 0);
}
END_TEST

START_TEST(test_token_throttled_held)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    lb_add_simple(srv, "/oauth/token", 429, "Retry-After: 500\r\n", "{}");
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    u = client();
    fake_now = apr_time_from_sec(7000000);
    gc_upstream_test_set_clock(u, fake_clock, NULL);
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_THROTTLED);
    ck_assert_int_eq(e->retry_after, apr_time_from_sec(500));
    fake_now += apr_time_from_sec(100);
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_THROTTLED);
    ck_assert_int_eq(e->retry_after, apr_time_from_sec(400));
    ck_assert_int_eq(lb_count(srv, "/oauth/token"), 1);
    ck_assert_int_eq(lb_count(srv, "/api/"), 0);
}
END_TEST

START_TEST(test_token_retried_on_503)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    gc_metrics_t *m = aligned_alloc(64, (gc_metrics_size() + 63) / 64 * 64);

    ck_assert_ptr_nonnull(m);
    m = gc_metrics_init(m);
    lb_add_simple(srv, "/oauth/token", 503, NULL, "busy");
    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    u = client_with(NULL, m);
    ck_assert_int_eq(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(lb_count(srv, "/oauth/token"), 2);
    ck_assert_int_eq(gc_upstream_token_requests(u), 2);
    ck_assert_int_eq(
        gc_metrics_get(m, GC_MET_UPSTREAM_REQUESTS, "oauth_token", gc_metrics_code_label(503)), 1);
    ck_assert_int_eq(
        gc_metrics_get(m, GC_MET_UPSTREAM_REQUESTS, "oauth_token", gc_metrics_code_label(200)), 1);
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_UPSTREAM_LATENCY, NULL, NULL), 3);
    free(m);
}
END_TEST

START_TEST(test_missing_credentials)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    conf.client_secret = NULL;
    u = client();
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_CONFIG);
    ck_assert_int_eq(lb_count(srv, NULL), 0);
}
END_TEST

/* ---- 429 ---------------------------------------------------------------- */

START_TEST(test_429_retry_after_then_ok)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    apr_time_t start;
    gc_metrics_t *m = aligned_alloc(64, (gc_metrics_size() + 63) / 64 * 64);

    ck_assert_ptr_nonnull(m);
    m = gc_metrics_init(m);
    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 429, "Retry-After: 1\r\n",
                  "{\"message\":\"Rate limit exceeded\",\"code\":\"too.many.requests\"}");
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    u = client_with(NULL, m);
    start = apr_time_now();
    ck_assert_int_eq(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_ge(ms_since(start), 1000);
    ck_assert_int_eq(r->attempts, 2);
    ck_assert_int_eq(lb_count(srv, "/api/"), 2);
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_UPSTREAM_THROTTLED, NULL, NULL), 1);
    free(m);
}
END_TEST

START_TEST(test_429_long_retry_after_stops)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    apr_time_t start;

    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 429, "Retry-After: 500\r\n", "{\"message\":\"slow down\"}");
    u = client();
    start = apr_time_now();
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_lt(ms_since(start), 1000);
    ck_assert_int_eq(e->kind, GC_ERR_THROTTLED);
    ck_assert_int_eq(e->retry_after, apr_time_from_sec(500));
    ck_assert_int_eq(e->status, 429);
    ck_assert_int_eq(e->attempts, 1);
    ck_assert_int_eq(r->status, 429);
    ck_assert_int_eq(lb_count(srv, "/api/"), 1);
}
END_TEST

START_TEST(test_429_forever)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 429, NULL, "{\"message\":\"slow down\"}");
    u = client();
    gc_upstream_test_set_retry_after_default(u, apr_time_from_msec(10));
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_THROTTLED);
    ck_assert_int_eq(e->attempts, 4);
    ck_assert_int_eq(e->retry_after, apr_time_from_msec(10));
    ck_assert_int_eq(lb_count(srv, "/api/"), 4);
    ck_assert_int_eq(lb_count(srv, "/oauth/token"), 1);
}
END_TEST

START_TEST(test_429_http_date)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    char past[APR_RFC822_DATE_LEN], future[APR_RFC822_DATE_LEN];
    apr_time_t start;

    apr_rfc822_date(past, apr_time_now() - apr_time_from_sec(30));
    apr_rfc822_date(future, apr_time_now() + apr_time_from_sec(1000));
    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/v2/a", 429, apr_psprintf(pool, "Retry-After: %s\r\n", past), "{}");
    lb_add_simple(srv, "/api/v2/a", 200, NULL, "{}");
    lb_add_simple(srv, "/api/v2/b", 429, apr_psprintf(pool, "Retry-After: %s\r\n", future), "{}");
    u = client();
    /* if the date were not understood, the 5 s default would apply */
    gc_upstream_test_set_retry_after_default(u, apr_time_from_sec(5));
    start = apr_time_now();
    ck_assert_int_eq(call(u, "GET", "/api/v2/a", &r, &e), APR_SUCCESS);
    ck_assert_int_lt(ms_since(start), 2000);
    ck_assert_int_eq(r->attempts, 2);

    ck_assert_int_ne(call(u, "GET", "/api/v2/b", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_THROTTLED);
    ck_assert_int_ge(e->retry_after, apr_time_from_sec(990));
    ck_assert_int_le(e->retry_after, apr_time_from_sec(1001));
    ck_assert_int_eq(lb_count(srv, "/api/v2/b"), 1);
}
END_TEST

static apr_time_t cancel_at;

static int cancel_after(void *baton)
{
    atomic_int *calls = baton;

    atomic_fetch_add(calls, 1);
    return apr_time_now() >= cancel_at;
}

START_TEST(test_cancel_during_retry_after)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    apr_time_t start;
    atomic_int calls;

    atomic_init(&calls, 0);
    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 429, "Retry-After: 30\r\n", "{}");
    u = client();
    start = apr_time_now();
    cancel_at = start + apr_time_from_msec(300);
    gc_upstream_set_cancel(u, cancel_after, &calls);
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_CANCELLED);
    ck_assert_int_ge(ms_since(start), 300);
    ck_assert_int_lt(ms_since(start), 1000); /* 100 ms slices, not 30 s */
    ck_assert_int_eq(lb_count(srv, "/api/"), 1);
    ck_assert_int_ge(atomic_load(&calls), 3);
}
END_TEST

/* ---- 5xx and connection errors ------------------------------------------ */

START_TEST(test_503_503_200)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 503, NULL, "{\"message\":\"unavailable\"}");
    lb_add_simple(srv, "/api/", 503, NULL, "{\"message\":\"unavailable\"}");
    lb_add_simple(srv, "/api/", 200, NULL, "{\"done\":1}");
    u = client();
    ck_assert_int_eq(call(u, "POST", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(r->attempts, 3);
    ck_assert_int_eq(lb_count(srv, "/api/"), 3);
}
END_TEST

START_TEST(test_503_forever)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 503, "ININ-Correlation-ID: c-503\r\n", "{\"message\":\"down\"}");
    u = client();
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_SERVER);
    ck_assert_int_eq(e->status, 503);
    ck_assert_int_eq(e->attempts, 4);
    ck_assert_pstr_eq(e->correlation_id, "c-503");
    ck_assert_int_eq(lb_count(srv, "/api/"), 4);

    /* req->max_attempts overrides the default */
    ck_assert_int_ne(call_ex(u, "GET", "/api/v2/y", NULL, 2, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->attempts, 2);
    ck_assert_int_eq(lb_count(srv, "/api/v2/y"), 2);
}
END_TEST

START_TEST(test_500_retried_only_for_get)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/v2/post", 500, NULL, "{\"message\":\"boom\"}");
    lb_add_simple(srv, "/api/v2/post", 200, NULL, "{}");
    lb_add_simple(srv, "/api/v2/patch", 500, NULL, "{\"message\":\"boom\"}");
    lb_add_simple(srv, "/api/v2/patch", 200, NULL, "{}");
    lb_add_simple(srv, "/api/v2/get", 500, NULL, "{\"message\":\"boom\"}");
    lb_add_simple(srv, "/api/v2/get", 200, NULL, "{}");
    lb_add_simple(srv, "/api/v2/501", 501, NULL, "{\"message\":\"no\"}");
    u = client();

    ck_assert_int_ne(call_ex(u, "POST", "/api/v2/post", "{}", 0, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_SERVER);
    ck_assert_int_eq(e->attempts, 1);
    ck_assert_int_eq(lb_count(srv, "/api/v2/post"), 1);

    ck_assert_int_ne(call_ex(u, "PATCH", "/api/v2/patch", "{}", 0, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(lb_count(srv, "/api/v2/patch"), 1);

    ck_assert_int_eq(call(u, "GET", "/api/v2/get", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(r->attempts, 2);

    ck_assert_int_ne(call(u, "GET", "/api/v2/501", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_SERVER);
    ck_assert_int_eq(lb_count(srv, "/api/v2/501"), 1);
}
END_TEST

START_TEST(test_connection_refused)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    script_token(TOKEN1, 86400);
    conf.api_url = apr_psprintf(pool, "http://127.0.0.1:%d", lb_closed_port());
    u = client();
    ck_assert_int_ne(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(e->kind, GC_ERR_CONNECT);
    ck_assert_int_eq(e->status, 0);
    ck_assert_int_eq(e->attempts, 4);
    /* nothing was sent, so even a POST is retried */
    ck_assert_int_ne(call_ex(u, "POST", "/api/v2/x", "{}", 0, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_CONNECT);
    ck_assert_int_eq(e->attempts, 4);
}
END_TEST

START_TEST(test_timeout)
{
    lb_response_t slow = { LB_RESPOND, 200, NULL, "{}", 3000 };
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    apr_time_t start;

    script_token(TOKEN1, 86400);
    lb_add(srv, "/api/", &slow);
    conf.request_timeout = apr_time_from_msec(300);
    u = client();
    start = apr_time_now();
    ck_assert_int_ne(call_ex(u, "GET", "/api/v2/x", NULL, 2, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_TIMEOUT);
    ck_assert_int_eq(e->attempts, 2);
    ck_assert_int_ge(ms_since(start), 600);
    ck_assert_int_lt(ms_since(start), 2500);
    ck_assert_int_eq(lb_count(srv, "/api/"), 2);
}
END_TEST

START_TEST(test_dropped_get_retried)
{
    lb_response_t drop = { LB_DROP, 0, NULL, NULL, 0 };
    lb_response_t reset = { LB_RESET, 0, NULL, NULL, 0 };
    lb_response_t mid = { LB_DROP_MID_BODY, 200, NULL,
                          "{\"entities\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}", 0 };
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    script_token(TOKEN1, 86400);
    lb_add(srv, "/api/v2/a", &drop);
    lb_add_simple(srv, "/api/v2/a", 200, NULL, "{\"n\":1}");
    lb_add(srv, "/api/v2/b", &reset);
    lb_add_simple(srv, "/api/v2/b", 200, NULL, "{\"n\":2}");
    lb_add(srv, "/api/v2/c", &mid);
    lb_add_simple(srv, "/api/v2/c", 200, NULL, "{\"n\":3}");
    lb_add(srv, "/api/v2/d", &drop);
    lb_add_simple(srv, "/api/v2/d", 200, NULL, "{\"n\":4}");
    u = client();
    ck_assert_int_eq(call(u, "GET", "/api/v2/a", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(r->attempts, 2);
    ck_assert_int_eq(call(u, "GET", "/api/v2/b", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(r->attempts, 2);
    ck_assert_int_eq(call(u, "GET", "/api/v2/c", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(r->attempts, 2);
    ck_assert_str_eq(r->body, "{\"n\":3}");
    /* PUT is idempotent too */
    ck_assert_int_eq(call_ex(u, "PUT", "/api/v2/d", "{}", 0, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(r->attempts, 2);
}
END_TEST

START_TEST(test_dropped_post_not_retried)
{
    lb_response_t drop = { LB_DROP, 0, NULL, NULL, 0 };
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    script_token(TOKEN1, 86400);
    lb_add(srv, "/api/v2/a", &drop);
    lb_add_simple(srv, "/api/v2/a", 200, NULL, "{}");
    lb_add(srv, "/api/v2/b", &drop);
    lb_add_simple(srv, "/api/v2/b", 200, NULL, "{}");
    u = client();
    ck_assert_int_ne(call_ex(u, "POST", "/api/v2/a", "{\"x\":1}", 0, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_CONNECT);
    ck_assert_int_eq(e->attempts, 1);
    ck_assert_int_eq(lb_count(srv, "/api/v2/a"), 1);
    ck_assert_int_ne(call_ex(u, "PATCH", "/api/v2/b", "{\"x\":1}", 0, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_CONNECT);
    ck_assert_int_eq(lb_count(srv, "/api/v2/b"), 1);
}
END_TEST

START_TEST(test_https_to_plain_server)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    gc_request_t req;

    u = client();
    memset(&req, 0, sizeof(req));
    req.op = "test_op";
    req.method = "GET";
    req.path = apr_psprintf(pool, "https://127.0.0.1:%d/x", lb_port(srv));
    req.no_auth = 1;
    req.max_attempts = 1;
    ck_assert_int_ne(gc_upstream_call(u, pool, &req, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_CONNECT);
    ck_assert_int_ge(lb_tls_attempts(srv), 1); /* a TLS handshake really started */
    ck_assert_int_eq(lb_count(srv, NULL), 0);

    /* an https login URL is used as TLS too: the token request fails the same way */
    conf.login_url = apr_psprintf(pool, "https://127.0.0.1:%d", lb_port(srv));
    u = client();
    ck_assert_int_ne(call_ex(u, "GET", "/api/v2/x", NULL, 1, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_CONNECT);
    ck_assert_int_eq(lb_count(srv, NULL), 0);
}
END_TEST

/* ---- 4xx and error bodies ----------------------------------------------- */

START_TEST(test_403_forbidden)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 403, "ININ-Correlation-ID: corr-403\r\n",
                  "{\"message\":\"Unable to perform the requested action. You are missing the "
                  "following permission(s): [routing:queue:view]\",\"code\":"
                  "\"missing.permissions\",\"status\":403,\"messageParams\":{},"
                  "\"contextId\":\"ctx-1\",\"details\":[],\"errors\":[]}");
    u = client();
    ck_assert_int_ne(call(u, "GET", "/api/v2/routing/queues/q1", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_FORBIDDEN);
    ck_assert_int_eq(e->status, 403);
    ck_assert_ptr_nonnull(strstr(e->message, "routing:queue:view"));
    ck_assert_pstr_eq(e->code, "missing.permissions");
    ck_assert_pstr_eq(e->correlation_id, "corr-403");
    ck_assert_int_eq(lb_count(srv, "/api/"), 1);
    ck_assert_int_eq(gc_upstream_token_requests(u), 1);
}
END_TEST

START_TEST(test_404_not_found)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 404, NULL,
                  "{\"message\":\"The requested queue was not found\",\"code\":\"not.found\"}");
    u = client();
    ck_assert_int_ne(call(u, "GET", "/api/v2/routing/queues/nope", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_NOT_FOUND);
    ck_assert_int_eq(e->status, 404);
    ck_assert_pstr_eq(e->code, "not.found");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->status, 404);
    ck_assert_ptr_nonnull(r->json);
    ck_assert_int_eq(lb_count(srv, "/api/"), 1);
}
END_TEST

START_TEST(test_error_bodies)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    char *html = apr_pstrcat(pool, "<html>\n<body>\tTeapot\x01 error ",
                             apr_pstrndup(pool,
                                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                                          250),
                             "</body></html>", NULL);
    const char *c;

    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/v2/json", 400, "ININ-Correlation-ID: corr-400\r\n",
                  "{\"message\":\"Value [abc] is not valid for field type [UUID]\","
                  "\"code\":\"bad.request\",\"status\":400,\"messageParams\":{\"a\":\"b\"},"
                  "\"contextId\":\"ctx-2\",\"details\":[{\"errorCode\":\"x\"}],\"errors\":[]}");
    lb_add_simple(srv, "/api/v2/html", 418, "Content-Type: text/html\r\n", html);
    lb_add_simple(srv, "/api/v2/errors", 422, NULL,
                  "{\"status\":422,\"errors\":[{\"message\":\"field weight is out of range\"}]}");
    u = client();

    ck_assert_int_ne(call(u, "GET", "/api/v2/json", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_CLIENT);
    ck_assert_int_eq(e->status, 400);
    ck_assert_ptr_nonnull(strstr(e->message, "Value [abc] is not valid for field type [UUID]"));
    ck_assert_pstr_eq(e->code, "bad.request");
    ck_assert_pstr_eq(e->correlation_id, "corr-400");
    ck_assert_int_eq(lb_count(srv, "/api/v2/json"), 1);

    ck_assert_int_ne(call(u, "GET", "/api/v2/html", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_CLIENT);
    ck_assert_ptr_null(e->code);
    ck_assert_ptr_nonnull(strstr(e->message, "<html> <body> Teapot error"));
    ck_assert_ptr_null(strstr(e->message, "</html>")); /* cut short */
    ck_assert_int_lt(strlen(e->message), 400);
    for (c = e->message; *c; c++) {
        ck_assert_msg((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f,
                      "control or non-ASCII byte in message");
    }
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->body, html); /* the response itself is untouched */
    ck_assert_ptr_null(r->json);

    ck_assert_int_ne(call(u, "GET", "/api/v2/errors", &r, &e), APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(e->message, "field weight is out of range"));
}
END_TEST

/* No prefix of secret of 8 bytes or more appears in text. */
static void assert_no_prefix(const char *text, const char *secret)
{
    apr_size_t k;

    for (k = 8; k <= strlen(secret); k++) {
        ck_assert_msg(!strstr(text, apr_pstrndup(pool, secret, k)),
                      "%d-byte prefix of a secret in \"%s\"", (int)k, text);
    }
}

/* Error excerpts are redacted before they are cut: a secret straddling the
 * cut (200 bytes of a plain body, 500 of a JSON message) leaves nothing. */
START_TEST(test_error_excerpt_secret_at_cut)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    char pad[600];

    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/v2/plain", 403, "Content-Type: text/plain\r\n",
                  apr_pstrcat(pool, apr_pstrndup(pool, pad, 190), TOKEN1, " and more", NULL));
    lb_add_simple(srv, "/api/v2/plain2", 403, "Content-Type: text/plain\r\n",
                  apr_pstrcat(pool, apr_pstrndup(pool, pad, 195), SECRET, " and more", NULL));
    lb_add_simple(
        srv, "/api/v2/json", 400, NULL,
        apr_pstrcat(pool, "{\"message\":\"", apr_pstrndup(pool, pad, 494), TOKEN1, "\"}", NULL));
    u = client();

    ck_assert_int_ne(call(u, "GET", "/api/v2/plain", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_FORBIDDEN);
    assert_no_prefix(e->message, TOKEN1);
    ck_assert_ptr_nonnull(strstr(e->message, "x[hidden]"));

    ck_assert_int_ne(call(u, "GET", "/api/v2/plain2", &r, &e), APR_SUCCESS);
    assert_no_prefix(e->message, SECRET);
    ck_assert_ptr_nonnull(strstr(e->message, "xxx..."));

    ck_assert_int_ne(call(u, "GET", "/api/v2/json", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_CLIENT);
    assert_no_prefix(e->message, TOKEN1);
    ck_assert_ptr_nonnull(strstr(e->message, "xxx..."));
}
END_TEST

START_TEST(test_bad_success_bodies)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    char big[1001];

    memset(big, 'a', 1000);
    big[1000] = '\0';
    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/v2/broken", 200, NULL, "{\"unterminated\": ");
    lb_add_simple(srv, "/api/v2/big", 200, "Content-Type: text/plain\r\n", big);
    lb_add_simple(srv, "/api/v2/redirect", 302, "Location: http://example.invalid/\r\n", NULL);
    u = client();
    gc_upstream_test_set_max_body(u, 500);
    ck_assert_int_ne(call(u, "GET", "/api/v2/broken", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_PROTOCOL);
    ck_assert_int_eq(e->status, 200);

    ck_assert_int_ne(call(u, "GET", "/api/v2/big", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_PROTOCOL);
    ck_assert_int_eq(lb_count(srv, "/api/v2/big"), 1);

    ck_assert_int_ne(call(u, "GET", "/api/v2/redirect", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_PROTOCOL);
    ck_assert_int_eq(e->status, 302);
    ck_assert_int_eq(lb_count(srv, NULL), 4); /* token + 3: the redirect not followed */
}
END_TEST

START_TEST(test_bad_urls_send_nothing)
{
    static const char *const bad[] = { "ftp://127.0.0.1/x",
                                       "file:///etc/passwd",
                                       "file:/etc/passwd",
                                       "api/v2/users",
                                       "//evil.example/x",
                                       "http:///x",
                                       "/api/v2 /x",
                                       "/api/v2/\r\nX-Injected: 1",
                                       "",
                                       "/api/v2/users/\xc3\xa9",
                                       "gopher://127.0.0.1/" };
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    size_t i;

    script_token(TOKEN1, 86400);
    u = client();
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_ne(call(u, "GET", bad[i], &r, &e), APR_SUCCESS);
        ck_assert_ptr_null(r);
        ck_assert_msg(e->kind == GC_ERR_CONFIG, "%s: kind %s", bad[i], gc_err_kind_name(e->kind));
    }
    ck_assert_int_ne(call(u, "TRACE", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_CONFIG);
    ck_assert_int_eq(lb_count(srv, NULL), 0);
    ck_assert_int_eq(gc_upstream_token_requests(u), 0);
}
END_TEST

/* ---- logging ------------------------------------------------------------ */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char *log_text;

static void log_capture(void *baton, const char *file, int line, int level, apr_status_t rv,
                        const char *msg)
{
    size_t old, add = strlen(msg);
    char *n;

    (void)baton;
    (void)file;
    (void)line;
    (void)level;
    (void)rv;
    pthread_mutex_lock(&log_mu);
    old = log_text ? strlen(log_text) : 0;
    n = realloc(log_text, old + add + 2);
    if (n) {
        memcpy(n + old, msg, add);
        n[old + add] = '\n';
        n[old + add + 1] = '\0';
        log_text = n;
    }
    pthread_mutex_unlock(&log_mu);
}

START_TEST(test_log_never_shows_secrets)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    const char *creds = CLIENT_ID ":" SECRET;
    char *b64 = apr_palloc(pool, (apr_size_t)apr_base64_encode_len((int)strlen(creds)));
    int found_debug;

    apr_base64_encode(b64, creds, (int)strlen(creds));
    log_text = NULL;
    gc_log_set(log_all, log_capture, NULL);
    script_token(TOKEN1, 86400);
    script_token(TOKEN2, 86400);
    lb_add_simple(srv, "/oauth/token", 400, NULL,
                  "{\"error\":\"invalid_client\",\"description\":\"secret " SECRET "\"}");
    lb_add_simple(srv, "/api/", 200, "ININ-Correlation-ID: corr-log-1\r\n", "{}");
    lb_add_simple(srv, "/api/", 401, NULL, "{\"message\":\"expired " TOKEN1 "\"}");
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    lb_add_simple(srv, "/api/", 401, NULL, "{\"message\":\"expired " TOKEN2 "\"}");
    u = client();
    ck_assert_int_eq(call_ex(u, "POST", "/api/v2/a", "{\"password\":\"body-secret\"}", 0, &r, &e),
                     APR_SUCCESS);
    ck_assert_int_eq(call(u, "GET", "/api/v2/b", &r, &e), APR_SUCCESS); /* 401, renew */
    ck_assert_int_ne(call(u, "GET", "/api/v2/c", &r, &e), APR_SUCCESS); /* token refused */
    ck_assert_int_eq(e->kind, GC_ERR_AUTH);
    ck_assert_ptr_null(strstr(e->message, SECRET));
    ck_assert_ptr_null(strstr(e->message, TOKEN1));
    gc_log_set(NULL, NULL, NULL);

    ck_assert_ptr_nonnull(log_text);
    found_debug = strstr(log_text, "GCM101") && strstr(log_text, "corr-log-1")
                  && strstr(log_text, "/api/v2/a");
    ck_assert_msg(found_debug, "no per-attempt debug line in:\n%s", log_text);
    ck_assert_msg(!strstr(log_text, SECRET), "secret logged:\n%s", log_text);
    ck_assert_msg(!strstr(log_text, TOKEN1), "token logged:\n%s", log_text);
    ck_assert_msg(!strstr(log_text, TOKEN2), "token logged:\n%s", log_text);
    ck_assert_msg(!strstr(log_text, b64), "basic credentials logged:\n%s", log_text);
    ck_assert_msg(!strstr(log_text, "body-secret"), "request body logged:\n%s", log_text);
    free(log_text);
    log_text = NULL;
}
END_TEST

/* Lines above debug only. */
static char *loud_text;

static void log_capture_loud(void *baton, const char *file, int line, int level, apr_status_t rv,
                             const char *msg)
{
    log_capture(baton, file, line, level, rv, msg);
    if (level < GC_LOG_DEBUG) {
        char *keep = log_text;
        log_text = loud_text;
        log_capture(baton, file, line, level, rv, msg);
        loud_text = log_text;
        log_text = keep;
    }
}

/* A notification channel id in the path is a credential: log lines above debug
 * show its label instead, in the path and in Genesys's message; the per-attempt
 * debug lines keep the path (to map a label back to its channel). */
START_TEST(test_log_hides_a_path_secret_above_debug)
{
    static const char id[] = "streaming-0-k2l9x0d7s1secret";
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    gc_request_t req;

    log_text = loud_text = NULL;
    gc_log_set(log_all, log_capture_loud, NULL);
    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 500, NULL,
                  apr_psprintf(pool, "{\"message\":\"channel %s is broken\"}", id));
    u = client();
    memset(&req, 0, sizeof(req));
    req.op = "subscriptions_put";
    req.method = "PUT";
    req.path = apr_psprintf(pool, "/api/v2/notifications/channels/%s/subscriptions", id);
    req.body = "[]";
    req.secret = id;
    req.secret_label = "ch-0a1b2c3d4e";
    ck_assert_int_ne(gc_upstream_call(u, pool, &req, &r, &e), APR_SUCCESS);
    gc_log_set(NULL, NULL, NULL);

    ck_assert_ptr_nonnull(loud_text);
    ck_assert_msg(strstr(loud_text, "GCM103") && strstr(loud_text, "channels/ch-0a1b2c3d4e/sub")
                      && strstr(loud_text, "channel ch-0a1b2c3d4e is broken"),
                  "no labelled give-up line in:\n%s", loud_text);
    ck_assert_msg(!strstr(loud_text, id), "channel id logged above debug:\n%s", loud_text);
    ck_assert_msg(strstr(log_text, "GCM101") && strstr(log_text, id),
                  "the debug line lacks the path:\n%s", log_text);
    free(log_text);
    free(loud_text);
    log_text = loud_text = NULL;
}
END_TEST

/* ---- rate budget -------------------------------------------------------- */

static void *budget_mem(int limit)
{
    size_t n = (gc_budget_size(limit) + 63) / 64 * 64;
    void *m = aligned_alloc(64, n);

    ck_assert_ptr_nonnull(m);
    memset(m, 0, n);
    return m;
}

START_TEST(test_budget_third_call_waits)
{
    void *mem = budget_mem(2);
    gc_budget_t *b = gc_budget_init(mem, 2, apr_time_from_sec(1));
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    apr_time_t start;
    int i;

    ck_assert_ptr_nonnull(b);
    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    u = client_with(b, NULL);
    start = apr_time_now();
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    }
    ck_assert_int_lt(ms_since(start), 900);
    ck_assert_int_eq(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    ck_assert_int_ge(ms_since(start), 990);
    ck_assert_int_eq(lb_count(srv, "/api/"), 3);
    ck_assert_int_eq(lb_count(srv, "/oauth/token"), 1);
    free(mem);
}
END_TEST

START_TEST(test_budget_exhausted)
{
    void *mem = budget_mem(1);
    gc_budget_t *b = gc_budget_init(mem, 1, apr_time_from_sec(60));
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    gc_request_t req;
    apr_time_t start;

    ck_assert_ptr_nonnull(b);
    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    conf.request_timeout = apr_time_from_msec(300);
    u = client_with(b, NULL);
    /* the token request does not use the budget, or this would fail */
    ck_assert_int_eq(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);

    /* budget_wait 0: wait up to the request timeout, then give up unsent */
    memset(&req, 0, sizeof(req));
    req.op = "test_op";
    req.method = "GET";
    req.path = "/api/v2/y";
    req.budget_wait = 0;
    start = apr_time_now();
    ck_assert_int_ne(gc_upstream_call(u, pool, &req, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_BUDGET);
    ck_assert_int_gt(e->retry_after, 0);
    ck_assert_int_le(e->retry_after, apr_time_from_sec(60));
    ck_assert_ptr_null(r);
    ck_assert_int_ge(ms_since(start), 250);
    ck_assert_int_lt(ms_since(start), 2000);

    req.budget_wait = apr_time_from_msec(50);
    ck_assert_int_ne(gc_upstream_call(u, pool, &req, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_BUDGET);
    ck_assert_int_eq(lb_count(srv, "/api/"), 1);
    free(mem);
}
END_TEST

/* ---- request deadline (SPEC §9.16) --------------------------------------- */

/* A GET of path whose upstream work must end by deadline (0: none). */
static apr_status_t call_by(gc_upstream_t *u, const char *path, apr_time_t deadline,
                            gc_response_t **r, gc_error_t **e)
{
    gc_request_t req;

    memset(&req, 0, sizeof(req));
    req.op = "test_op";
    req.method = "GET";
    req.path = path;
    req.deadline = deadline;
    return gc_upstream_call(u, pool, &req, r, e);
}

static void assert_mentions_deadline(const gc_error_t *e)
{
    ck_assert_msg(strstr(e->message, "deadline") != NULL, "no deadline in \"%s\"", e->message);
}

/* A 429 asking for 120 s with 2 s left is answered at once, not slept through. */
START_TEST(test_deadline_429_beyond)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    apr_time_t start;

    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/v2/long", 429, "Retry-After: 120\r\n", "{\"message\":\"slow down\"}");
    lb_add_simple(srv, "/api/v2/short", 429, "Retry-After: 1\r\n", "{}");
    lb_add_simple(srv, "/api/v2/short", 200, NULL, "{}");
    u = client();
    start = apr_time_now();
    ck_assert_int_ne(call_by(u, "/api/v2/long", gc_upstream_deadline(apr_time_from_sec(2)), &r, &e),
                     APR_SUCCESS);
    ck_assert_int_lt(ms_since(start), 500);
    ck_assert_int_eq(e->kind, GC_ERR_THROTTLED);
    ck_assert_int_eq(e->retry_after, apr_time_from_sec(120));
    ck_assert_int_eq(e->status, 429);
    ck_assert_int_eq(e->attempts, 1);
    ck_assert_ptr_nonnull(strstr(e->message, "asked to retry after 120 s, beyond this "
                                             "request's deadline"));
    ck_assert_int_eq(lb_count(srv, "/api/v2/long"), 1);

    /* a Retry-After that fits is still waited for */
    start = apr_time_now();
    ck_assert_int_eq(
        call_by(u, "/api/v2/short", gc_upstream_deadline(apr_time_from_sec(5)), &r, &e),
        APR_SUCCESS);
    ck_assert_int_ge(ms_since(start), 1000);
    ck_assert_int_eq(r->attempts, 2);
}
END_TEST

/* 5xx retries stop as soon as the next backoff would pass the deadline; those
 * that fit are made as before. */
START_TEST(test_deadline_5xx_backoff)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    apr_time_t start;

    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/v2/down", 503, NULL, "{\"message\":\"unavailable\"}");
    lb_add_simple(srv, "/api/v2/later", 503, "Retry-After: 3\r\n", "{}");
    u = client();
    gc_upstream_test_set_jitter(u, 0);
    gc_upstream_test_set_backoff(u, apr_time_from_sec(2), apr_time_from_sec(2));
    start = apr_time_now();
    ck_assert_int_ne(call_by(u, "/api/v2/down", gc_upstream_deadline(apr_time_from_sec(1)), &r, &e),
                     APR_SUCCESS);
    ck_assert_int_lt(ms_since(start), 500);
    ck_assert_int_eq(e->kind, GC_ERR_SERVER);
    ck_assert_int_eq(e->status, 503);
    ck_assert_int_eq(e->attempts, 1);
    ck_assert_ptr_nonnull(strstr(e->message, "the next retry, in 2 s, would pass this "
                                             "request's deadline"));
    ck_assert_int_eq(lb_count(srv, "/api/v2/down"), 1);

    /* the server's Retry-After is the next wait */
    start = apr_time_now();
    ck_assert_int_ne(
        call_by(u, "/api/v2/later", gc_upstream_deadline(apr_time_from_sec(1)), &r, &e),
        APR_SUCCESS);
    ck_assert_int_lt(ms_since(start), 500);
    ck_assert_int_eq(e->kind, GC_ERR_SERVER);
    ck_assert_int_eq(e->retry_after, apr_time_from_sec(3));
    assert_mentions_deadline(e);

    /* backoffs that fit: all 4 attempts */
    gc_upstream_test_set_backoff(u, apr_time_from_msec(20), apr_time_from_msec(20));
    ck_assert_int_ne(call_by(u, "/api/v2/down", gc_upstream_deadline(apr_time_from_sec(5)), &r, &e),
                     APR_SUCCESS);
    ck_assert_int_eq(e->attempts, 4);
    ck_assert_ptr_nonnull(strstr(e->message, "(gave up after 4 attempts)"));
    ck_assert_int_eq(lb_count(srv, "/api/v2/down"), 5);
}
END_TEST

/* An attempt's timeout is cut to the time left. */
START_TEST(test_deadline_cuts_attempt_timeout)
{
    lb_response_t slow = { LB_RESPOND, 200, NULL, "{}", 3000 };
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    apr_time_t start;

    script_token(TOKEN1, 86400);
    lb_add(srv, "/api/", &slow);
    u = client(); /* request timeout 5 s */
    start = apr_time_now();
    ck_assert_int_ne(
        call_by(u, "/api/v2/slow", gc_upstream_deadline(apr_time_from_msec(400)), &r, &e),
        APR_SUCCESS);
    ck_assert_int_ge(ms_since(start), 300);
    ck_assert_int_lt(ms_since(start), 1500);
    ck_assert_int_eq(e->kind, GC_ERR_TIMEOUT);
    ck_assert_int_eq(e->attempts, 1);
    assert_mentions_deadline(e);
    ck_assert_int_eq(lb_count(srv, "/api/"), 1);
}
END_TEST

/* A full rate budget whose next slot frees after the deadline: BUDGET at
 * once, with when it frees; a slot freeing in time is waited for. */
START_TEST(test_deadline_budget)
{
    void *mem = budget_mem(1), *mem2 = budget_mem(1);
    gc_budget_t *b = gc_budget_init(mem, 1, apr_time_from_sec(60));
    gc_budget_t *b2 = gc_budget_init(mem2, 1, apr_time_from_msec(300));
    gc_upstream_t *u, *u2;
    gc_response_t *r;
    gc_error_t *e;
    apr_time_t start;

    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(b2);
    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    u = client_with(b, NULL);
    ck_assert_int_eq(call(u, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    start = apr_time_now();
    ck_assert_int_ne(call_by(u, "/api/v2/y", gc_upstream_deadline(apr_time_from_sec(2)), &r, &e),
                     APR_SUCCESS);
    ck_assert_int_lt(ms_since(start), 500);
    ck_assert_int_eq(e->kind, GC_ERR_BUDGET);
    ck_assert_int_gt(e->retry_after, apr_time_from_sec(50));
    ck_assert_int_le(e->retry_after, apr_time_from_sec(60));
    ck_assert_ptr_null(r);
    assert_mentions_deadline(e);
    ck_assert_int_eq(lb_count(srv, "/api/"), 1);

    u2 = client_with(b2, NULL);
    ck_assert_int_eq(call(u2, "GET", "/api/v2/x", &r, &e), APR_SUCCESS);
    start = apr_time_now();
    ck_assert_int_eq(call_by(u2, "/api/v2/y", gc_upstream_deadline(apr_time_from_sec(2)), &r, &e),
                     APR_SUCCESS);
    ck_assert_int_ge(ms_since(start), 200);
    ck_assert_int_eq(lb_count(srv, "/api/"), 3);
    free(mem);
    free(mem2);
}
END_TEST

/* A deadline already passed: nothing is sent, not even a token request. */
START_TEST(test_deadline_passed_sends_nothing)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;

    script_token(TOKEN1, 86400);
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    u = client();
    ck_assert_int_ne(call_by(u, "/api/v2/x", apr_time_now() - 1, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_TIMEOUT);
    ck_assert_int_eq(e->attempts, 0);
    ck_assert_ptr_null(r);
    assert_mentions_deadline(e);
    ck_assert_int_eq(lb_count(srv, NULL), 0);
    ck_assert_int_eq(gc_upstream_token_requests(u), 0);
    /* no deadline: as always */
    ck_assert_int_eq(call_by(u, "/api/v2/x", 0, &r, &e), APR_SUCCESS);
    ck_assert_int_eq(lb_count(srv, NULL), 2);
}
END_TEST

/* The token request runs under the deadline of the call that needs it. */
START_TEST(test_deadline_token_request)
{
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    apr_time_t start;

    lb_add_simple(srv, "/oauth/token", 429, "Retry-After: 120\r\n", "{}");
    u = client();
    start = apr_time_now();
    ck_assert_int_ne(call_by(u, "/api/v2/x", gc_upstream_deadline(apr_time_from_sec(2)), &r, &e),
                     APR_SUCCESS);
    ck_assert_int_lt(ms_since(start), 500);
    ck_assert_int_eq(e->kind, GC_ERR_THROTTLED);
    ck_assert_int_eq(e->retry_after, apr_time_from_sec(120));
    assert_mentions_deadline(e);
    ck_assert_int_eq(gc_upstream_token_requests(u), 1);
    ck_assert_int_eq(lb_count(srv, "/api/"), 0);
}
END_TEST

typedef struct deadline_call {
    gc_upstream_t *u;
    apr_time_t deadline;
    apr_status_t rv;
    gc_err_kind_e kind;
    char message[600];
} deadline_call_t;

static void *thread_deadline_call(void *data)
{
    deadline_call_t *d = data;
    apr_pool_t *tp;
    gc_request_t req;
    gc_response_t *r;
    gc_error_t *e;

    if (apr_pool_create_unmanaged_ex(&tp, NULL, NULL) != APR_SUCCESS) {
        return NULL;
    }
    memset(&req, 0, sizeof(req));
    req.op = "test_op";
    req.method = "GET";
    req.path = "/api/v2/t";
    req.deadline = d->deadline;
    d->rv = gc_upstream_call(d->u, tp, &req, &r, &e);
    d->kind = e ? e->kind : GC_ERR_NONE;
    apr_cpystrn(d->message, e ? e->message : "", sizeof(d->message));
    apr_pool_destroy(tp);
    return NULL;
}

/* Waiting for another thread's token request ends at the deadline. */
START_TEST(test_deadline_waiting_for_token)
{
    lb_response_t slow_token = { LB_RESPOND, 200, NULL,
                                 "{\"access_token\":\"" TOKEN1 "\",\"expires_in\":86400}", 1000 };
    gc_upstream_t *u;
    gc_response_t *r;
    gc_error_t *e;
    deadline_call_t bg;
    pthread_t th;
    apr_time_t start;

    lb_add(srv, "/oauth/token", &slow_token);
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    u = client();
    memset(&bg, 0, sizeof(bg));
    bg.u = u; /* background: no deadline */
    ck_assert_int_eq(pthread_create(&th, NULL, thread_deadline_call, &bg), 0);
    ck_assert_int_eq(lb_wait_count(srv, "/oauth/token", 1, 5000), 1);
    start = apr_time_now();
    ck_assert_int_ne(call_by(u, "/api/v2/x", gc_upstream_deadline(apr_time_from_msec(300)), &r, &e),
                     APR_SUCCESS);
    ck_assert_int_ge(ms_since(start), 250);
    ck_assert_int_lt(ms_since(start), 900);
    ck_assert_int_eq(e->kind, GC_ERR_TIMEOUT);
    assert_mentions_deadline(e);
    pthread_join(th, NULL);
    ck_assert_int_eq(bg.rv, APR_SUCCESS);
    ck_assert_int_eq(gc_upstream_token_requests(u), 1);
}
END_TEST

/* A token request cut by its caller's deadline is not the answer for a
 * background caller waiting on it: that one asks again. */
START_TEST(test_deadline_cut_fetch_not_shared)
{
    lb_response_t slow_token = { LB_RESPOND, 200, NULL,
                                 "{\"access_token\":\"" TOKEN1 "\",\"expires_in\":86400}", 3000 };
    gc_upstream_t *u;
    deadline_call_t api, bg;
    pthread_t th_api, th_bg;

    lb_add(srv, "/oauth/token", &slow_token);
    script_token(TOKEN2, 86400);
    lb_add_simple(srv, "/api/", 200, NULL, "{}");
    u = client();
    memset(&api, 0, sizeof(api));
    memset(&bg, 0, sizeof(bg));
    api.u = bg.u = u;
    api.deadline = gc_upstream_deadline(apr_time_from_sec(1));
    ck_assert_int_eq(pthread_create(&th_api, NULL, thread_deadline_call, &api), 0);
    ck_assert_int_eq(lb_wait_count(srv, "/oauth/token", 1, 5000), 1);
    ck_assert_int_eq(pthread_create(&th_bg, NULL, thread_deadline_call, &bg), 0);
    pthread_join(th_api, NULL);
    pthread_join(th_bg, NULL);
    ck_assert_int_ne(api.rv, APR_SUCCESS);
    ck_assert_int_eq(api.kind, GC_ERR_TIMEOUT);
    ck_assert_msg(bg.rv == APR_SUCCESS, "background call shared the cut fetch: %s (%s)",
                  gc_err_kind_name(bg.kind), bg.message);
    ck_assert_int_eq(gc_upstream_token_requests(u), 2);
    ck_assert_pstr_eq(lb_header(lb_request(srv, "/api/", 0), "Authorization"), "Bearer " TOKEN2);
}
END_TEST

/* ---- small helpers ------------------------------------------------------ */

START_TEST(test_helpers)
{
    json_t *j = json_pack("{s:i,s:[s]}", "a", 1, "b", "c");

    ck_assert_str_eq(gc_json_text(pool, j), "{\"a\":1,\"b\":[\"c\"]}");
    json_decref(j);
    ck_assert_ptr_null(gc_json_text(pool, NULL));
    ck_assert_str_eq(gc_err_kind_name(GC_ERR_THROTTLED), "throttled");
    ck_assert_str_eq(gc_err_kind_name(GC_ERR_NOT_FOUND), "not_found");
    ck_assert_str_eq(gc_err_kind_name(GC_ERR_CANCELLED), "cancelled");
}
END_TEST

Suite *upstream_suite(void)
{
    Suite *s = suite_create("upstream");
    TCase *tc = tcase_create("upstream");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_success_headers);
    tcase_add_test(tc, test_methods_and_bodies);
    tcase_add_test(tc, test_absolute_url_no_auth);
    tcase_add_test(tc, test_bearer_only_to_api_origin);
    tcase_add_test(tc, test_token_cached);
    tcase_add_test(tc, test_token_single_flight_threads);
    tcase_add_test(tc, test_token_renewal_clock);
    tcase_add_test(tc, test_token_storage_wiped);
    tcase_add_test(tc, test_token_storage_wiped_on_401);
    tcase_add_test(tc, test_basic_credentials_hidden);
    tcase_add_test(tc, test_401_renews_once);
    tcase_add_test(tc, test_401_stale_token_no_stampede);
    tcase_add_test(tc, test_401_twice_is_auth);
    tcase_add_test(tc, test_token_endpoint_refuses);
    tcase_add_test(tc, test_token_refusal_held_briefly);
    tcase_add_test(tc, test_token_throttled_held);
    tcase_add_test(tc, test_token_retried_on_503);
    tcase_add_test(tc, test_missing_credentials);
    tcase_add_test(tc, test_429_retry_after_then_ok);
    tcase_add_test(tc, test_429_long_retry_after_stops);
    tcase_add_test(tc, test_429_forever);
    tcase_add_test(tc, test_429_http_date);
    tcase_add_test(tc, test_cancel_during_retry_after);
    tcase_add_test(tc, test_503_503_200);
    tcase_add_test(tc, test_503_forever);
    tcase_add_test(tc, test_500_retried_only_for_get);
    tcase_add_test(tc, test_connection_refused);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_dropped_get_retried);
    tcase_add_test(tc, test_dropped_post_not_retried);
    tcase_add_test(tc, test_https_to_plain_server);
    tcase_add_test(tc, test_403_forbidden);
    tcase_add_test(tc, test_404_not_found);
    tcase_add_test(tc, test_error_bodies);
    tcase_add_test(tc, test_error_excerpt_secret_at_cut);
    tcase_add_test(tc, test_bad_success_bodies);
    tcase_add_test(tc, test_bad_urls_send_nothing);
    tcase_add_test(tc, test_log_never_shows_secrets);
    tcase_add_test(tc, test_log_hides_a_path_secret_above_debug);
    tcase_add_test(tc, test_budget_third_call_waits);
    tcase_add_test(tc, test_budget_exhausted);
    tcase_add_test(tc, test_helpers);
    tcase_add_test(tc, test_deadline_429_beyond);
    tcase_add_test(tc, test_deadline_5xx_backoff);
    tcase_add_test(tc, test_deadline_cuts_attempt_timeout);
    tcase_add_test(tc, test_deadline_budget);
    tcase_add_test(tc, test_deadline_passed_sends_nothing);
    tcase_add_test(tc, test_deadline_token_request);
    tcase_add_test(tc, test_deadline_waiting_for_token);
    tcase_add_test(tc, test_deadline_cut_fetch_not_shared);
    suite_add_tcase(s, tc);
    return s;
}
