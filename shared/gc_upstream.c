/* The one upstream HTTP client of gcmon (libcurl). See gc_upstream.h for the
 * contract and SPEC §4.1/§4.6 for the policy. Layout of this file:
 *   1. client object, tuning, test hooks
 *   2. small helpers (URLs, sanitising, Retry-After, backoff, waits)
 *   3. one HTTP attempt (perform)
 *   4. classification of an attempt and the retry loop (run_call)
 *   5. OAuth client-credentials token cache (single flight per client)
 *   6. public API
 * Nothing here ever logs or returns the Authorization header, the token, the
 * client secret or a request body, and every copy of a secret made here (the
 * cached token, the Basic credentials, header lines, response bodies) is
 * wiped before its memory is released (gc_secret.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_base64.h>
#include <apr_date.h>
#include <apr_lib.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <curl/curl.h>

#include "gc_log.h"
#include "gc_secret.h"
#include "gc_upstream.h"
#include "gc_upstream_test.h"
#include "gc_version.h"

/* ---------------------------------------------------------------------------
 * 1. Client object
 * ------------------------------------------------------------------------- */

#define GC_UP_DEFAULT_ATTEMPTS     4
#define GC_UP_MAX_BODY             ((apr_size_t)32 * 1024 * 1024)
#define GC_UP_RETRY_AFTER_DEFAULT  apr_time_from_sec(3)
#define GC_UP_RETRY_AFTER_MAX      apr_time_from_sec(180)
#define GC_UP_BACKOFF_BASE         apr_time_from_msec(250)
#define GC_UP_BACKOFF_CAP          apr_time_from_sec(8)
#define GC_UP_SLICE                apr_time_from_msec(100)
#define GC_UP_CONNECT_TIMEOUT_MAX  apr_time_from_sec(5)
#define GC_UP_TOKEN_SKEW           apr_time_from_sec(60)
#define GC_UP_TOKEN_DEFAULT_LIFE   86400
#define GC_UP_AUTH_FAIL_HOLD       apr_time_from_sec(10)
#define GC_UP_EXCERPT              200
#define GC_UP_MESSAGE_MAX          600
#define GC_UP_TOKEN_OP             "oauth_token"
#define GC_UP_TOKEN_MAX            8192    /* longest access token accepted */
#define GC_UP_MIN_ATTEMPT          apr_time_from_msec(100) /* least time worth a retry */

struct gc_upstream {
    apr_pool_t *pool;
    gc_conn_conf_t conf;            /* deep copy */
    gc_budget_t *budget;
    gc_metrics_t *metrics;
    gc_cancel_fn *cancel;
    void *cancel_baton;

    /* DNS cache and TLS sessions shared by every easy handle of this client.
     * Connections are deliberately NOT shared: curl silently re-sends a
     * request on a reused connection that turns out dead, which would defeat
     * the "never re-send a non-idempotent request" rule below. */
    CURLSH *share;
    apr_thread_mutex_t *share_locks[CURL_LOCK_DATA_LAST];

    /* Token cache, guarded by mutex. */
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *cond;
    apr_size_t token_len;           /* 0: no token */
    char token[GC_UP_TOKEN_MAX + 1];/* the cached token, zero-padded; wiped whenever it
                                       is replaced or forgotten, and with the pool */
    apr_time_t token_renew_at;      /* client clock */
    unsigned long token_gen;        /* bumped whenever the token changes */
    int fetching;                   /* a thread is fetching a token */
    unsigned long fetch_seq;        /* bumped when a fetch ends */
    gc_err_kind_e fetch_kind;       /* result of the last failed fetch, for waiters */
    int fetch_status;
    apr_interval_time_t fetch_retry_after;
    char fetch_message[GC_UP_MESSAGE_MAX];
    int fetch_cut;                  /* it stopped at its caller's deadline: waiters
                                       with another deadline (or none) try again */
    apr_time_t hold_until;          /* client clock: answer token requests from the last
                                       failure until then (refused / throttled) */
    int token_requests;

    /* Tuning (test hooks). */
    apr_interval_time_t backoff_base;
    apr_interval_time_t backoff_cap;
    apr_interval_time_t retry_after_default;
    int jitter;                     /* 0: each backoff is its ceiling (tests) */
    apr_size_t max_body;
    gc_upstream_clock_fn *clock;
    void *clock_baton;
};

static apr_time_t client_now(const gc_upstream_t *u)
{
    return u->clock ? u->clock(u->clock_baton) : apr_time_now();
}

static int is_cancelled(const gc_upstream_t *u)
{
    return u->cancel && u->cancel(u->cancel_baton);
}

void gc_upstream_test_set_clock(gc_upstream_t *u, gc_upstream_clock_fn *fn, void *baton)
{
    u->clock = fn;
    u->clock_baton = baton;
}

void gc_upstream_test_set_backoff(gc_upstream_t *u, apr_interval_time_t base,
                                  apr_interval_time_t cap)
{
    u->backoff_base = base < 0 ? 0 : base;
    u->backoff_cap = cap < u->backoff_base ? u->backoff_base : cap;
}

void gc_upstream_test_set_jitter(gc_upstream_t *u, int on)
{
    u->jitter = on;
}

void gc_upstream_test_set_retry_after_default(gc_upstream_t *u, apr_interval_time_t d)
{
    u->retry_after_default = d < 0 ? 0 : d;
}

void gc_upstream_test_set_max_body(gc_upstream_t *u, apr_size_t max)
{
    u->max_body = max;
}

const char *gc_upstream_test_token_storage(gc_upstream_t *u, apr_size_t *size)
{
    *size = sizeof(u->token);
    return u->token;
}

/* ---------------------------------------------------------------------------
 * 2. Helpers
 * ------------------------------------------------------------------------- */

const char *gc_err_kind_name(gc_err_kind_e kind)
{
    switch (kind) {
    case GC_ERR_NONE:      return "none";
    case GC_ERR_CONFIG:    return "config";
    case GC_ERR_CONNECT:   return "connect";
    case GC_ERR_TIMEOUT:   return "timeout";
    case GC_ERR_THROTTLED: return "throttled";
    case GC_ERR_BUDGET:    return "budget";
    case GC_ERR_AUTH:      return "auth";
    case GC_ERR_FORBIDDEN: return "forbidden";
    case GC_ERR_NOT_FOUND: return "not_found";
    case GC_ERR_CLIENT:    return "client";
    case GC_ERR_SERVER:    return "server";
    case GC_ERR_PROTOCOL:  return "protocol";
    case GC_ERR_CANCELLED: return "cancelled";
    }
    return "unknown";
}

const char *gc_json_text(apr_pool_t *p, const json_t *j)
{
    char *s;
    const char *out;

    if (!j) {
        return NULL;
    }
    s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) {
        return NULL;
    }
    out = apr_pstrdup(p, s);
    free(s);
    return out;
}

static apr_status_t json_cleanup(void *data)
{
    json_decref((json_t *)data);
    return APR_SUCCESS;
}

/* Tie a json_t to a pool (takes over the caller's reference). */
static json_t *json_pool_owned(apr_pool_t *p, json_t *j)
{
    if (j) {
        apr_pool_cleanup_register(p, j, json_cleanup, apr_pool_cleanup_null);
    }
    return j;
}

/* Printable single-line text of at most max bytes (plus "..."): the client
 * secret and the given secret (the bearer token, or the Basic credentials of
 * a token request) are hidden first, then the text is cut (gc_redact_line),
 * so a secret straddling the cut never survives in part. */
static const char *sanitize(apr_pool_t *p, const gc_upstream_t *u, const char *token,
                            const char *s, apr_size_t len, apr_size_t max)
{
    const char *needles[2];

    needles[0] = u->conf.client_secret;
    needles[1] = token;
    return gc_redact_line(p, s, len, needles, 2, 0, max);
}

/* "/api/v2/x?y" → "/api/v2/x"; absolute URLs lose their query too (pre-signed
 * URLs carry credentials there). */
static const char *strip_query(apr_pool_t *p, const char *path)
{
    size_t n = strcspn(path, "?#");

    return apr_pstrmemdup(p, path, n);
}

static int is_method(const char *m)
{
    static const char *const ok[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE" };
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (strcmp(m, ok[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Idempotent methods (RFC 9110 §9.2.2) may be re-sent after a request may
 * have reached the server. POST and PATCH are not: re-sending one after the
 * connection dropped mid-request could apply a change twice (e.g. a presence
 * PATCH racing a supervisor's own change, or a duplicate channel). */
static int is_idempotent(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "PUT") == 0
           || strcmp(m, "DELETE") == 0;
}

static int has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Full URL of a request path, or NULL with *why set. */
static const char *build_url(apr_pool_t *p, const gc_upstream_t *u, const char *path,
                             int *absolute, const char **why)
{
    const char *c, *host;

    *absolute = 0;
    if (!path || !*path) {
        *why = "empty request path";
        return NULL;
    }
    for (c = path; *c; c++) {
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
            *why = "request path contains spaces, control characters or raw non-ASCII bytes";
            return NULL;
        }
    }
    if (path[0] == '/') {
        if (path[1] == '/') {
            *why = "request path starts with '//'";
            return NULL;
        }
        if (!u->conf.api_url || !*u->conf.api_url) {
            *why = "no API URL configured";
            return NULL;
        }
        return apr_pstrcat(p, u->conf.api_url, path, NULL);
    }
    if (has_prefix_ci(path, "https://")) {
        host = path + 8;
    }
    else if (has_prefix_ci(path, "http://")) {
        host = path + 7;
    }
    else {
        *why = "not a path starting with '/' nor an absolute http(s) URL";
        return NULL;
    }
    if (!*host || *host == '/' || *host == '?' || *host == '#') {
        *why = "URL has no host";
        return NULL;
    }
    *absolute = 1;
    return path;
}

/* url lies below base ("https://api.x" matches "https://api.x/…", "…?…", but
 * not "https://api.x.evil/…"); scheme and host compare case-insensitively. */
static int same_origin_prefix(const char *url, const char *base)
{
    size_t n;

    if (!base || !*base) {
        return 0;
    }
    n = strlen(base);
    return strncasecmp(url, base, n) == 0
           && (url[n] == '\0' || url[n] == '/' || url[n] == '?' || url[n] == '#');
}

int gc_retry_after_parse(const char *v, apr_interval_time_t *out)
{
    apr_int64_t secs = 0;
    apr_time_t t;
    const char *c;

    if (!v) {
        return 0;
    }
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    if (apr_isdigit(*v)) {
        for (c = v; apr_isdigit(*c); c++) {
            if (secs < APR_INT64_C(100000000)) {     /* clamp: ~3 years is plenty */
                secs = secs * 10 + (*c - '0');
            }
        }
        while (*c == ' ' || *c == '\t') {
            c++;
        }
        if (*c) {
            return 0;
        }
        *out = apr_time_from_sec(secs);
        return 1;
    }
    t = apr_date_parse_http(v);
    if (t == APR_DATE_BAD) {
        return 0;
    }
    /* The date is the server's wall clock: compare with ours, not the test clock. */
    *out = t > apr_time_now() ? t - apr_time_now() : 0;
    return 1;
}

static apr_uint64_t rng_next(apr_uint64_t *s)
{
    apr_uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^n)]. */
static apr_interval_time_t backoff_delay(const gc_upstream_t *u, int n, apr_uint64_t *rng)
{
    apr_interval_time_t ceiling = u->backoff_base;
    int i;

    for (i = 0; i < n && ceiling < u->backoff_cap; i++) {
        ceiling *= 2;
    }
    if (ceiling > u->backoff_cap) {
        ceiling = u->backoff_cap;
    }
    if (ceiling <= 0) {
        return 0;
    }
    if (!u->jitter) {
        return ceiling;
    }
    return (apr_interval_time_t)(rng_next(rng) % (apr_uint64_t)(ceiling + 1));
}

/* Sleep d in slices of at most 100 ms. 0 when done, 1 when cancelled. */
static int wait_for(const gc_upstream_t *u, apr_interval_time_t d)
{
    apr_time_t end = apr_time_now() + d;

    for (;;) {
        apr_time_t now;

        if (is_cancelled(u)) {
            return 1;
        }
        now = apr_time_now();
        if (now >= end) {
            return 0;
        }
        apr_sleep(end - now < GC_UP_SLICE ? end - now : GC_UP_SLICE);
    }
}

static gc_error_t *make_err(apr_pool_t *p, gc_err_kind_e kind, int status, const char *msg)
{
    gc_error_t *e = apr_pcalloc(p, sizeof(*e));

    e->kind = kind;
    e->status = status;
    e->message = msg ? msg : gc_err_kind_name(kind);
    return e;
}

static int is_json_type(const char *ct)
{
    return ct && (strstr(ct, "/json") || strstr(ct, "+json"));
}

/* ---------------------------------------------------------------------------
 * 3. One HTTP attempt
 * ------------------------------------------------------------------------- */

typedef struct body_buf {
    char *data;                     /* malloc'd, wiped and freed by the attempt pool
                                       (a token response holds the token) */
    apr_size_t len, cap, max;
    int too_big, no_mem;
} body_buf_t;

typedef struct call {
    const char *op;
    const char *method;
    const char *url;
    const char *log_path;           /* no query string */
    const char *show_path;          /* log_path for lines above debug (secret hidden) */
    const char *secret, *secret_label;
    const char *body;               /* NULL: none */
    const char *content_type;       /* for the body */
    const char *basic_auth;         /* token request: "Authorization: Basic …" */
    const char *basic_b64;          /* token request: its credentials, hidden in texts */
    int token_request;
    int no_auth;
    int idempotent;                 /* may be re-sent after it may have arrived */
    int retry_500;
    apr_interval_time_t budget_wait;
    int max_attempts;
    apr_time_t deadline;            /* 0: none (see gc_upstream.h) */
} call_t;

typedef struct attempt {
    const gc_upstream_t *u;
    apr_pool_t *pool;
    body_buf_t *buf;                /* from pool (outlives this struct on success) */
    apr_table_t *headers;
    long status;                    /* 0: no response */
    CURLcode cc;
    int sent;                       /* some request bytes may have reached the server */
    int cancelled;
    apr_interval_time_t timeout;    /* the request timeout, cut to the time left before
                                       the call's deadline */
    apr_interval_time_t elapsed;
    char errbuf[CURL_ERROR_SIZE];
} attempt_t;

static apr_status_t body_buf_cleanup(void *data)
{
    body_buf_t *b = data;

    gc_wipe(b->data, b->cap);
    free(b->data);
    b->data = NULL;
    return APR_SUCCESS;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    body_buf_t *b = ud;
    size_t n = size * nmemb;

    if (n > b->max - b->len) {
        b->too_big = 1;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        apr_size_t cap = b->cap ? b->cap : 4096;
        char *d;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        if (cap > b->max + 1) {
            cap = b->max + 1;
        }
        /* not realloc: the old block is wiped before it is freed */
        d = malloc(cap);
        if (!d) {
            b->no_mem = 1;
            return 0;
        }
        if (b->data) {
            memcpy(d, b->data, b->len + 1);
            gc_wipe(b->data, b->cap);
            free(b->data);
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    attempt_t *at = ud;
    size_t n = size * nitems, i;
    const char *colon, *v, *end = buf + n;
    char *name;

    if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        apr_table_clear(at->headers);   /* a new response (after 1xx) */
        return n;
    }
    colon = memchr(buf, ':', n);
    if (!colon || colon == buf) {
        return n;
    }
    name = apr_pstrmemdup(at->pool, buf, (apr_size_t)(colon - buf));
    for (i = 0; name[i]; i++) {
        name[i] = (char)apr_tolower(name[i]);
    }
    v = colon + 1;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '
                       || end[-1] == '\t')) {
        end--;
    }
    apr_table_addn(at->headers, name, apr_pstrmemdup(at->pool, v, (apr_size_t)(end - v)));
    return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    attempt_t *at = ud;

    (void)dltotal; (void)dlnow; (void)ultotal; (void)ulnow;
    if (is_cancelled(at->u)) {
        at->cancelled = 1;
        return 1;
    }
    return 0;
}

static struct curl_slist *slist_add(struct curl_slist *l, const char *h, int *oom)
{
    struct curl_slist *n;

    if (*oom) {
        return l;
    }
    n = curl_slist_append(l, h);
    if (!n) {
        *oom = 1;
        return l;
    }
    return n;
}

/* Free a header list, wiping every line first (one holds the credentials). */
static void slist_free_wiped(struct curl_slist *l)
{
    struct curl_slist *n;

    for (n = l; n; n = n->next) {
        gc_wipe(n->data, strlen(n->data));
    }
    curl_slist_free_all(l);
}

static long ms_of(apr_interval_time_t t)
{
    long ms = (long)apr_time_as_msec(t);

    return ms > 0 ? ms : 1;
}

/* The request's header lines (with auth, a complete Authorization line, when
 * not NULL), or NULL when out of memory. */
static struct curl_slist *request_headers(const call_t *c, const attempt_t *at,
                                          const char *auth)
{
    struct curl_slist *hl = NULL;
    int oom = 0;

    hl = slist_add(hl, "Accept: application/json", &oom);
    if (auth) {
        hl = slist_add(hl, auth, &oom);
    }
    if (c->body) {
        hl = slist_add(hl, apr_pstrcat(at->pool, "Content-Type: ", c->content_type, NULL), &oom);
    }
    else {
        hl = slist_add(hl, "Content-Type:", &oom);  /* no curl default form type */
    }
    hl = slist_add(hl, "Expect:", &oom);
    if (oom) {
        slist_free_wiped(hl);
        return NULL;
    }
    return hl;
}

/* The security-relevant options (protocols, no redirects, TLS verification,
 * timeouts, CA file) are checked: a libcurl that refuses one must not be
 * used. CURLE_OK, or the error of the option refused. */
static CURLcode set_checked_options(const gc_upstream_t *u, const call_t *c, const attempt_t *at,
                                    CURL *h)
{
    apr_interval_time_t connect_timeout = at->timeout;
    CURLcode sc = CURLE_OK;

    if (connect_timeout > GC_UP_CONNECT_TIMEOUT_MAX) {
        connect_timeout = GC_UP_CONNECT_TIMEOUT_MAX;
    }
    if ((sc = curl_easy_setopt(h, CURLOPT_URL, c->url)) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https")) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https")) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L)) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L)) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L)) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms_of(at->timeout))) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms_of(connect_timeout)))
               != CURLE_OK
        || (u->conf.ca_file
            && ((sc = curl_easy_setopt(h, CURLOPT_CAINFO, u->conf.ca_file)) != CURLE_OK
                || (sc = curl_easy_setopt(h, CURLOPT_CAPATH, "/etc/ssl/certs")) != CURLE_OK))) {
        return sc;
    }
    return CURLE_OK;
}

/* Where the response goes (body, headers, error text), cancellation, the
 * header lines, and the DNS/TLS cache shared by the client's handles. */
static void set_io_options(const gc_upstream_t *u, attempt_t *at, CURL *h,
                           struct curl_slist *hl)
{
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, at->errbuf);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_USERAGENT, GCMON_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, at->buf);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, at);
    if (u->cancel) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, at);
    }
    if (u->share) {
        curl_easy_setopt(h, CURLOPT_SHARE, u->share);
    }
}

/* The method, and the request body. */
static void set_method(CURL *h, const call_t *c)
{
    if (strcmp(c->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    else if (strcmp(c->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    }
    else {
        if (strcmp(c->method, "POST") != 0) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
        }
        if (c->body || strcmp(c->method, "DELETE") != 0) {
            /* POST/PUT/PATCH always carry a body (possibly empty: Content-Length: 0) */
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body ? c->body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)(c->body ? strlen(c->body) : 0));
        }
    }
}

/* After curl_easy_perform: the status, and whether the request may have
 * reached the server (it never left when the connection was not made). */
static void record_exchange(CURL *h, attempt_t *at)
{
    long status = 0, req_size = 0;

    if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK) {
        at->status = status;
    }
    if (curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &req_size) != CURLE_OK) {
        req_size = 1;   /* unknown: assume something was sent */
    }
    switch (at->cc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
        at->sent = 0;
        break;
    default:
        at->sent = at->status > 0 || req_size > 0;
        break;
    }
}

/* Run one HTTP exchange; fills *at. auth is a complete header line or NULL. */
static void perform(const gc_upstream_t *u, const call_t *c, attempt_t *at, const char *auth)
{
    CURL *h;
    struct curl_slist *hl;
    apr_time_t start = apr_time_now();

    at->errbuf[0] = '\0';
    h = curl_easy_init();
    if (!h) {
        at->cc = CURLE_OUT_OF_MEMORY;
        return;
    }
    hl = request_headers(c, at, auth);
    if (!hl) {
        at->cc = CURLE_OUT_OF_MEMORY;
    }
    else if ((at->cc = set_checked_options(u, c, at, h)) != CURLE_OK) {
        apr_cpystrn(at->errbuf, curl_easy_strerror(at->cc), sizeof(at->errbuf));
    }
    else {
        set_io_options(u, at, h, hl);
        set_method(h, c);
        at->cc = curl_easy_perform(h);
        record_exchange(h, at);
        at->elapsed = apr_time_now() - start;
    }
    slist_free_wiped(hl);
    curl_easy_cleanup(h);
}

/* ---------------------------------------------------------------------------
 * 4. Classification and the retry loop
 * ------------------------------------------------------------------------- */

typedef enum { V_SUCCESS, V_FINAL, V_RETRY, V_AUTH_RETRY } outcome_e;

typedef struct verdict {
    outcome_e outcome;
    gc_err_kind_e kind;             /* for V_FINAL, and for V_RETRY when attempts run out */
    const char *message;
    const char *code;
    apr_interval_time_t delay;      /* V_RETRY: -1 = exponential backoff */
    apr_interval_time_t retry_after;
} verdict_t;

/* message/code of a Genesys error body {"message","code",…} or an OAuth error
 * {"error","description","error_description"}; a short excerpt otherwise. */
static void parse_error_body(apr_pool_t *p, const gc_upstream_t *u, const char *token,
                             const attempt_t *at, const char **message, const char **code)
{
    json_t *j = NULL, *v;
    const char *m = NULL, *cd = NULL;

    *message = NULL;
    *code = NULL;
    if (at->buf->len == 0) {
        return;
    }
    j = json_loadb(at->buf->data, at->buf->len, 0, NULL);
    if (json_is_object(j)) {
        m = json_string_value(json_object_get(j, "message"));
        if (!m) {
            m = json_string_value(json_object_get(j, "error_description"));
        }
        if (!m) {
            m = json_string_value(json_object_get(j, "description"));
        }
        if (!m && json_is_array(v = json_object_get(j, "errors")) && json_array_size(v) > 0) {
            m = json_string_value(json_object_get(json_array_get(v, 0), "message"));
        }
        cd = json_string_value(json_object_get(j, "code"));
        if (!cd) {
            cd = json_string_value(json_object_get(j, "error"));
        }
        if (m) {
            *message = sanitize(p, u, token, m, strlen(m), GC_UP_MESSAGE_MAX - 100);
        }
        if (cd) {
            *code = sanitize(p, u, token, cd, strlen(cd), 100);
        }
    }
    else {
        *message = sanitize(p, u, token, at->buf->data, at->buf->len, GC_UP_EXCERPT);
    }
    json_decref(j);
}

static const char *curl_text(apr_pool_t *p, const gc_upstream_t *u, const attempt_t *at)
{
    const char *t = at->errbuf[0] ? at->errbuf : curl_easy_strerror(at->cc);

    return sanitize(p, u, NULL, t, strlen(t), 300);
}

/* A final verdict, to be filled in (retries, if any, back off exponentially). */
static verdict_t new_verdict(void)
{
    verdict_t v;

    memset(&v, 0, sizeof(v));
    v.outcome = V_FINAL;
    v.delay = -1;
    return v;
}

/* Transfers that stopped on our side: cancelled, a body too large, no memory
 * for it. 1 with *v set (final), else 0. */
static int local_stop(apr_pool_t *p, const gc_upstream_t *u, const attempt_t *at,
                      verdict_t *v)
{
    if (at->cc == CURLE_ABORTED_BY_CALLBACK && at->cancelled) {
        v->kind = GC_ERR_CANCELLED;
        v->message = "cancelled during the request";
        return 1;
    }
    if (at->cc == CURLE_WRITE_ERROR && at->buf->too_big) {
        v->kind = GC_ERR_PROTOCOL;
        v->message = apr_psprintf(p, "response body larger than %" APR_SIZE_T_FMT " bytes",
                                  u->max_body);
        return 1;
    }
    if (at->cc == CURLE_WRITE_ERROR && at->buf->no_mem) {
        v->kind = GC_ERR_CONNECT;
        v->message = "out of memory reading the response";
        return 1;
    }
    return 0;
}

/* curl errors that no retry mends: 1 with the kind and the start of the
 * message (curl's text follows), else 0. */
static int permanent_curl_error(CURLcode cc, gc_err_kind_e *kind, const char **what)
{
    switch (cc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        *kind = GC_ERR_CONFIG;
        *what = "bad URL: ";
        return 1;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        /* Trust problems do not go away by retrying. */
        *kind = GC_ERR_CONNECT;
        *what = "TLS verification failed: ";
        return 1;
    case CURLE_OUT_OF_MEMORY:
    case CURLE_FAILED_INIT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_NOT_BUILT_IN:
        *kind = GC_ERR_CONNECT;
        *what = "HTTP client failure: ";
        return 1;
    default:
        return 0;
    }
}

/* Transport: what curl reported when the exchange failed. */
static verdict_t classify_transport(apr_pool_t *p, const gc_upstream_t *u, const call_t *c,
                                    const attempt_t *at)
{
    verdict_t v = new_verdict();
    const char *what;
    int may_resend = !at->sent || c->idempotent;

    if (local_stop(p, u, at, &v)) {
        return v;
    }
    if (permanent_curl_error(at->cc, &v.kind, &what)) {
        v.message = apr_pstrcat(p, what, curl_text(p, u, at), NULL);
        return v;
    }
    if (at->cc == CURLE_OPERATION_TIMEDOUT) {
        v.kind = GC_ERR_TIMEOUT;
        v.message = apr_psprintf(p, "no complete response within %ld ms%s (%s)",
                                 ms_of(at->timeout),
                                 at->timeout < u->conf.request_timeout
                                     ? ", the time left before this request's deadline" : "",
                                 curl_text(p, u, at));
    }
    else {
        v.kind = GC_ERR_CONNECT;
        v.message = apr_pstrcat(p, "connection failed: ", curl_text(p, u, at), NULL);
    }
    /* Connection errors and timeouts: a request that never left (connect
     * failure) is always safe to send again; one that may have reached
     * the server only when the method is idempotent. */
    v.outcome = may_resend ? V_RETRY : V_FINAL;
    if (!may_resend) {
        v.message = apr_pstrcat(p, v.message, "; not retried: ", c->method,
                                " is not idempotent and may have been received", NULL);
    }
    return v;
}

/* " CODE" after the status in messages ("403 CODE"), "" without a code. */
static const char *code_part(apr_pool_t *p, const char *code)
{
    return code ? apr_pstrcat(p, " ", code, NULL) : "";
}

/* 401: renew the token once (a call that sends none gives up at once). */
static void verdict_401(apr_pool_t *p, const call_t *c, int renewed, const char *gm,
                        verdict_t *v)
{
    v->kind = GC_ERR_AUTH;
    if (!c->no_auth && !renewed) {
        v->outcome = V_AUTH_RETRY;
        return;
    }
    v->message = apr_psprintf(p, "Genesys Cloud rejected the access token%s (401%s): %s",
                              renewed ? " even after renewing it" : "", code_part(p, v->code),
                              gm);
}

/* 429: retry after Retry-After (the default without one), unless that is
 * longer than GC_UP_RETRY_AFTER_MAX. */
static void verdict_429(apr_pool_t *p, const gc_upstream_t *u, const attempt_t *at,
                        const char *gm, verdict_t *v)
{
    apr_interval_time_t ra;

    if (!gc_retry_after_parse(apr_table_get(at->headers, "retry-after"), &ra)) {
        ra = u->retry_after_default;
    }
    v->kind = GC_ERR_THROTTLED;
    v->retry_after = ra;
    if (ra > GC_UP_RETRY_AFTER_MAX) {
        v->message = apr_psprintf(p, "Genesys Cloud is rate limiting (429) and asked to "
                                  "retry after %" APR_TIME_T_FMT " s (more than %d s: "
                                  "not waited for): %s",
                                  apr_time_sec(ra), (int)apr_time_sec(GC_UP_RETRY_AFTER_MAX),
                                  gm);
        return;
    }
    v->outcome = V_RETRY;
    v->delay = ra;
    v->message = apr_psprintf(p, "Genesys Cloud is rate limiting (429): %s", gm);
}

/* Any other 4xx: final. */
static void verdict_4xx(apr_pool_t *p, long s, const char *gm, verdict_t *v)
{
    const char *code = code_part(p, v->code);

    if (s == 403) {
        v->kind = GC_ERR_FORBIDDEN;
        v->message = apr_psprintf(p, "Genesys Cloud refused the request (403%s): %s", code, gm);
    }
    else if (s == 404) {
        v->kind = GC_ERR_NOT_FOUND;
        v->message = apr_psprintf(p, "not found (404%s): %s", code, gm);
    }
    else {
        v->kind = GC_ERR_CLIENT;
        v->message = apr_psprintf(p, "Genesys Cloud rejected the request (%ld%s): %s", s, code,
                                  gm);
    }
}

/* 5xx: retried when the request can be sent again (see below), after
 * Retry-After when the server sends one (final when that is too long). */
static void verdict_5xx(apr_pool_t *p, const call_t *c, const attempt_t *at, const char *gm,
                        verdict_t *v)
{
    long s = at->status;
    apr_interval_time_t ra;

    v->kind = GC_ERR_SERVER;
    v->message = apr_psprintf(p, "Genesys Cloud server error (%ld%s): %s", s,
                              code_part(p, v->code), gm);
    /* 502/503/504 come from the gateway layer: the service did not (fully)
     * get the request or is unavailable, so any method is retried (as the
     * Genesys SDKs do). 500 means the service itself failed while handling
     * the request and may already have applied part of a PUT/PATCH/POST:
     * only safe methods (GET/HEAD) are retried. 501/505/… are permanent. */
    if (!(s == 502 || s == 503 || s == 504 || (s == 500 && c->retry_500))) {
        return;
    }
    v->outcome = V_RETRY;
    if (gc_retry_after_parse(apr_table_get(at->headers, "retry-after"), &ra)) {
        if (ra > GC_UP_RETRY_AFTER_MAX) {
            v->outcome = V_FINAL;
            v->retry_after = ra;
            return;
        }
        v->delay = ra;
        v->retry_after = ra;
    }
}

/* Status: what the HTTP status and body of a response mean. token: the
 * credential sent (hidden in messages). */
static verdict_t classify_status(apr_pool_t *p, const gc_upstream_t *u, const call_t *c,
                                 const attempt_t *at, const char *token, int renewed)
{
    verdict_t v = new_verdict();
    const char *gm;
    long s = at->status;

    if (s >= 200 && s <= 299) {
        v.outcome = V_SUCCESS;
        return v;
    }
    parse_error_body(p, u, token, at, &gm, &v.code);
    if (c->token_request && s >= 400 && s <= 499 && s != 429) {
        v.kind = GC_ERR_AUTH;
        v.message = apr_psprintf(p, "login service refused the client credentials (%s: %s)",
                                 v.code ? v.code : apr_psprintf(p, "HTTP %ld", s),
                                 gm ? gm : "no description");
        return v;
    }
    if (!gm) {
        gm = "no details";
    }
    if (s == 401) {
        verdict_401(p, c, renewed, gm, &v);
    }
    else if (s == 429) {
        verdict_429(p, u, at, gm, &v);
    }
    else if (s >= 400 && s <= 499) {
        verdict_4xx(p, s, gm, &v);
    }
    else if (s >= 500 && s <= 599) {
        verdict_5xx(p, c, at, gm, &v);
    }
    else {
        v.kind = GC_ERR_PROTOCOL;
        v.message = s >= 300 && s <= 399
                        ? apr_psprintf(p, "unexpected redirect (%ld), not followed", s)
                        : apr_psprintf(p, "unexpected HTTP status %ld", s);
    }
    return v;
}

/* The verdict on an attempt: transport first (curl reported an error), else
 * what the status and body mean. renewed: the token was renewed after a 401. */
static verdict_t classify(apr_pool_t *p, const gc_upstream_t *u, const call_t *c,
                          const attempt_t *at, const char *token, int renewed)
{
    if (at->cc != CURLE_OK) {
        return classify_transport(p, u, c, at);
    }
    return classify_status(p, u, c, at, token, renewed);
}

static gc_response_t *make_response(apr_pool_t *p, attempt_t *at, int attempts, int *bad_json)
{
    gc_response_t *r = apr_pcalloc(p, sizeof(*r));
    const char *ct = apr_table_get(at->headers, "content-type");

    *bad_json = 0;
    r->status = (int)at->status;
    r->body = at->buf->data ? at->buf->data : "";
    r->body_len = at->buf->len;
    r->headers = at->headers;
    r->correlation_id = apr_table_get(at->headers, "inin-correlation-id");
    r->attempts = attempts;
    if (at->buf->len > 0) {
        const char *b = at->buf->data;

        while (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n') {
            b++;
        }
        if (is_json_type(ct) || *b == '{' || *b == '[') {
            r->json = json_pool_owned(at->pool, json_loadb(at->buf->data, at->buf->len, 0, NULL));
            *bad_json = !r->json && is_json_type(ct);
        }
    }
    return r;
}

static apr_status_t get_token(gc_upstream_t *u, apr_pool_t *p, apr_pool_t *tp,
                              apr_time_t deadline, const char **token, unsigned long *gen,
                              gc_error_t **err);
static void invalidate_if(gc_upstream_t *u, unsigned long gen);

static void log_attempt(const gc_upstream_t *u, const call_t *c, const attempt_t *at,
                        int attempt, int limit)
{
    const char *corr;

    if (!gc_log_is_level(GC_LOG_DEBUG)) {
        return;
    }
    corr = apr_table_get(at->headers, "inin-correlation-id");
    if (at->cc == CURLE_OK) {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, APR_SUCCESS,
               GCMON_LOGNO(101) "upstream %s %s -> %ld in %ld ms (op %s, attempt %d/%d, "
               "ININ-Correlation-ID %s)", c->method, c->log_path, at->status,
               (long)apr_time_as_msec(at->elapsed), c->op, attempt, limit, corr ? corr : "-");
    }
    else {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, APR_SUCCESS,
               GCMON_LOGNO(102) "upstream %s %s -> no response in %ld ms: %s (op %s, "
               "attempt %d/%d)", c->method, c->log_path, (long)apr_time_as_msec(at->elapsed),
               curl_easy_strerror(at->cc), c->op, attempt, limit);
    }
}

/* text with every occurrence of secret replaced by label, in p. */
static const char *hide_secret(apr_pool_t *p, const char *text, const char *secret,
                               const char *label)
{
    const char *at;
    char *out = "";

    if (!text || !secret || !*secret || !strstr(text, secret)) {
        return text;
    }
    while ((at = strstr(text, secret)) != NULL) {
        out = apr_pstrcat(p, out, apr_pstrndup(p, text, (apr_size_t)(at - text)), label, NULL);
        text = at + strlen(secret);
    }
    return apr_pstrcat(p, out, text, NULL);
}

static void set_log_path(apr_pool_t *p, call_t *c, const char *path)
{
    c->log_path = path;
    c->show_path = hide_secret(p, path, c->secret, c->secret_label);
}

static void log_give_up(apr_pool_t *p, const call_t *c, const gc_error_t *e)
{
    const char *path = c->log_path, *msg = e->message;
    int level;

    switch (e->kind) {
    case GC_ERR_NOT_FOUND:
    case GC_ERR_CANCELLED:
        level = GC_LOG_DEBUG;
        break;
    case GC_ERR_CLIENT:
        level = GC_LOG_INFO;
        break;
    default:
        level = GC_LOG_WARNING;
        break;
    }
    if (level != GC_LOG_DEBUG) {
        path = c->show_path ? c->show_path : c->log_path;
        msg = hide_secret(p, msg, c->secret, c->secret_label);
    }
    gc_log(GC_LOG_MARK, level, APR_SUCCESS,
           GCMON_LOGNO(103) "upstream %s %s failed (%s, %d attempt%s, status %d, "
           "ININ-Correlation-ID %s): %s", c->method, path, gc_err_kind_name(e->kind),
           e->attempts, e->attempts == 1 ? "" : "s", e->status,
           e->correlation_id ? e->correlation_id : "-", msg);
}

/* The limit of the next attempt: the request timeout, cut to the time left
 * before the call's deadline; 0 when that has passed. */
static apr_interval_time_t attempt_timeout(const gc_upstream_t *u, const call_t *c)
{
    apr_interval_time_t left;

    if (!c->deadline) {
        return u->conf.request_timeout;
    }
    left = c->deadline - apr_time_now();
    return left <= 0 ? 0 : left < u->conf.request_timeout ? left : u->conf.request_timeout;
}

/* "120 s" or "250 ms", for messages. */
static const char *wait_text(apr_pool_t *p, apr_interval_time_t d)
{
    if (d >= APR_USEC_PER_SEC && d % APR_USEC_PER_SEC == 0) {
        return apr_psprintf(p, "%" APR_TIME_T_FMT " s", apr_time_sec(d));
    }
    return apr_psprintf(p, "%ld ms", (long)apr_time_as_msec(d));
}

/* A slot of our own rate budget, taken before anything is sent (token
 * requests take none: they go to the login service, not the API). The wait is
 * budget_wait (or the request timeout); with a deadline it is cut to the time
 * left, and a slot that frees only after the deadline is not waited for at
 * all. NULL when taken, else the error (from p). */
static gc_error_t *take_budget(gc_upstream_t *u, apr_pool_t *p, const call_t *c, int status)
{
    apr_interval_time_t ra = 0, left = 0;
    apr_interval_time_t wait = c->budget_wait > 0 ? c->budget_wait : u->conf.request_timeout;
    apr_status_t rv = APR_TIMEUP;
    int cut = 0;
    gc_error_t *e;

    if (c->deadline) {
        left = c->deadline - apr_time_now();
        /* a slot free now; if not, ra says when the next one frees */
        rv = gc_budget_acquire(u->budget, 0, NULL, NULL, &ra);
        cut = rv == APR_TIMEUP && (ra >= left || left < wait);
        wait = left < wait ? left : wait;
    }
    if (rv == APR_TIMEUP && !(c->deadline && ra >= left)) {
        rv = gc_budget_acquire(u->budget, wait, u->cancel, u->cancel_baton, &ra);
    }
    if (rv == APR_SUCCESS) {
        return NULL;
    }
    if (rv == APR_EINTR) {
        return make_err(p, GC_ERR_CANCELLED, status, "cancelled while waiting for the rate budget");
    }
    e = make_err(p, GC_ERR_BUDGET, status,
                 apr_psprintf(p, "the upstream rate budget (GcmonRateLimit) had no free slot %s; "
                              "retry after %ld ms",
                              cut ? "before this request's deadline" : "in time", ms_of(ra)));
    e->retry_after = ra > 0 ? ra : GC_UP_SLICE;
    e->deadline_cut = cut;
    return e;
}

/* The state of one call's retry loop. */
typedef struct run {
    int attempt;                    /* attempts sent so far */
    int limit;                      /* attempts allowed (one more after a 401 renewal) */
    int renewed;                    /* the token was renewed after a 401 */
    int backoffs;                   /* exponential backoffs so far */
    int last_status;                /* of the last response, 0 if none */
    const char *last_corr;          /* its ININ-Correlation-ID (from the call's pool) */
    int stopped;                    /* stopped because of the call's deadline */
    apr_uint64_t rng;               /* backoff jitter */
} run_t;

static void run_init(run_t *r, const call_t *c)
{
    memset(r, 0, sizeof(*r));
    r->limit = c->max_attempts;
    r->rng = (apr_uint64_t)apr_time_now() ^ ((apr_uint64_t)(uintptr_t)&r->rng << 16)
             ^ (apr_uint64_t)apr_os_thread_current();
    if (!r->rng) {
        r->rng = 0x9e3779b97f4a7c15ULL;
    }
}

/* The credentials of one attempt. */
typedef struct auth {
    const char *line;               /* the Authorization header line, NULL: none */
    const char *secret;             /* what it carries (the token, or the Basic
                                       credentials of a token request): hidden in texts */
    unsigned long gen;              /* the token's generation, to forget it after a 401 */
} auth_t;

/* The Authorization line of an attempt, in ap (wiped when ap goes), what it
 * carries and the token's generation. NULL, or the error. */
static gc_error_t *auth_line(gc_upstream_t *u, apr_pool_t *p, apr_pool_t *ap, const call_t *c,
                             auth_t *a)
{
    gc_error_t *e = NULL;

    memset(a, 0, sizeof(*a));
    if (c->token_request) {
        a->line = c->basic_auth;
        a->secret = c->basic_b64;
    }
    else if (!c->no_auth) {
        if (get_token(u, p, ap, c->deadline, &a->secret, &a->gen, &e) != APR_SUCCESS) {
            return e;
        }
        a->line = gc_secret_track(ap, apr_pstrcat(ap, "Authorization: Bearer ", a->secret,
                                                  NULL));
    }
    return NULL;
}

/* The call stops at its deadline before its next attempt (or its first). */
static gc_error_t *deadline_passed(apr_pool_t *p, run_t *r)
{
    gc_error_t *e = make_err(p, GC_ERR_TIMEOUT, r->last_status,
                             r->attempt ? "this request's deadline passed before the next "
                                          "attempt"
                                        : "this request's deadline passed before anything was "
                                          "sent");
    e->deadline_cut = 1;
    e->retry_after = APR_USEC_PER_SEC;
    r->stopped = 1;
    return e;
}

/* Counts and logs a finished attempt. */
static void account_attempt(gc_upstream_t *u, const call_t *c, const attempt_t *at,
                            int attempt, int limit)
{
    if (u->metrics) {
        gc_metrics_inc(u->metrics, GC_MET_UPSTREAM_REQUESTS, c->op,
                       gc_metrics_code_label(at->cc == CURLE_OK ? (int)at->status : 0));
        gc_metrics_observe(u->metrics, GC_MET_UPSTREAM_LATENCY, NULL, NULL,
                           (double)at->elapsed / (double)APR_USEC_PER_SEC);
        if (at->cc == CURLE_OK && at->status == 429) {
            gc_metrics_inc(u->metrics, GC_MET_UPSTREAM_THROTTLED, NULL, NULL);
        }
    }
    log_attempt(u, c, at, attempt, limit);
}

/* The error of a final verdict (from p). stop >= 0: a retry was due in stop
 * but would have passed the call's deadline. */
static gc_error_t *final_err(apr_pool_t *p, const verdict_t *v, const attempt_t *at,
                             int attempt, apr_interval_time_t stop)
{
    gc_error_t *e = make_err(p, v->kind, (int)at->status, apr_pstrdup(p, v->message));

    e->code = v->code ? apr_pstrdup(p, v->code) : NULL;
    e->retry_after = v->retry_after;
    if (stop >= 0) {
        e->deadline_cut = 1;
        if (v->kind != GC_ERR_THROTTLED) {
            e->retry_after = stop;
        }
    }
    if (stop >= 0 && v->kind == GC_ERR_THROTTLED) {
        e->message = apr_psprintf(p, "%s; Genesys Cloud asked to retry after %s, beyond this "
                                  "request's deadline", e->message, wait_text(p, stop));
    }
    else if (stop >= 0) {
        e->message = apr_psprintf(p, "%s (gave up after %d attempt%s: the next retry, in %s, "
                                  "would pass this request's deadline)", e->message, attempt,
                                  attempt == 1 ? "" : "s", wait_text(p, stop));
    }
    else if (v->outcome == V_RETRY && v->kind != GC_ERR_THROTTLED) {
        e->message = apr_psprintf(p, "%s (gave up after %d attempt%s)", e->message, attempt,
                                  attempt == 1 ? "" : "s");
    }
    else if (v->outcome == V_RETRY) {
        e->message = apr_psprintf(p, "%s (still throttled after %d attempts)", e->message,
                                  attempt);
    }
    return e;
}

/* Everything before an attempt is sent: not cancelled, time left before the
 * deadline, the Authorization line, a slot of the rate budget, the attempt's
 * own pool and timeout. NULL with *at and *a ready, or the error. */
static gc_error_t *prepare_attempt(gc_upstream_t *u, apr_pool_t *p, const call_t *c, run_t *r,
                                   attempt_t *at, auth_t *a)
{
    apr_pool_t *ap;
    gc_error_t *e;

    if (is_cancelled(u)) {
        return make_err(p, GC_ERR_CANCELLED, r->last_status, "cancelled");
    }
    if (!attempt_timeout(u, c)) {
        return deadline_passed(p, r);
    }
    if (apr_pool_create(&ap, p) != APR_SUCCESS) {
        return make_err(p, GC_ERR_CONNECT, r->last_status, "out of memory");
    }
    if ((e = auth_line(u, p, ap, c, a)) != NULL
        || (u->budget && !c->token_request && (e = take_budget(u, p, c, r->last_status)))) {
        apr_pool_destroy(ap);
        return e;
    }
    memset(at, 0, sizeof(*at));
    /* the token and the budget may have taken time */
    if ((at->timeout = attempt_timeout(u, c)) == 0) {
        apr_pool_destroy(ap);
        return deadline_passed(p, r);
    }
    at->u = u;
    at->pool = ap;
    at->headers = apr_table_make(ap, 16);
    at->buf = apr_pcalloc(ap, sizeof(*at->buf));
    at->buf->max = u->max_body;
    apr_pool_cleanup_register(ap, at->buf, body_buf_cleanup, apr_pool_cleanup_null);
    return NULL;
}

/* Send one attempt and account for it: metrics and the debug line, the
 * client's count of token requests, the last status and correlation id. */
static void run_attempt(gc_upstream_t *u, apr_pool_t *p, const call_t *c, run_t *r,
                        attempt_t *at, const char *auth)
{
    r->attempt++;
    if (c->token_request) {
        apr_thread_mutex_lock(u->mutex);
        u->token_requests++;
        apr_thread_mutex_unlock(u->mutex);
    }
    perform(u, c, at, auth);
    account_attempt(u, c, at, r->attempt, r->limit);
    if (at->cc == CURLE_OK) {
        r->last_status = (int)at->status;
        r->last_corr = apr_table_get(at->headers, "inin-correlation-id");
        r->last_corr = r->last_corr ? apr_pstrdup(p, r->last_corr) : NULL;
    }
}

/* A 2xx: *resp_out, and NULL or (a JSON body that does not parse) the error. */
static gc_error_t *take_response(apr_pool_t *p, const run_t *r, attempt_t *at,
                                 gc_response_t **resp_out)
{
    int bad_json;
    gc_response_t *resp = make_response(p, at, r->attempt, &bad_json);
    gc_error_t *e;

    /* at->buf is owned by the attempt pool, which lives on in p */
    *resp_out = resp;
    if (!bad_json) {
        return NULL;
    }
    e = make_err(p, GC_ERR_PROTOCOL, resp->status, "response is not valid JSON");
    e->correlation_id = r->last_corr;
    return e;
}

/* A 401 with a token: forget it (unless already replaced) and try once more
 * with a new one; that attempt does not use up the retry budget. */
static void renew_after_401(gc_upstream_t *u, const call_t *c, run_t *r, const auth_t *a,
                            attempt_t *at)
{
    gc_log(GC_LOG_MARK, GC_LOG_INFO, APR_SUCCESS,
           GCMON_LOGNO(104) "upstream %s %s: access token rejected (401), renewing it "
           "once", c->method, c->show_path ? c->show_path : c->log_path);
    invalidate_if(u, a->gen);
    r->renewed = 1;
    r->limit++;
    apr_pool_destroy(at->pool);
}

/* Wait d before the next attempt: NULL, or the error when cancelled. */
static gc_error_t *wait_to_retry(gc_upstream_t *u, apr_pool_t *p, const call_t *c,
                                 const run_t *r, const verdict_t *v, attempt_t *at,
                                 apr_interval_time_t d)
{
    gc_error_t *e;

    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, APR_SUCCESS,
           GCMON_LOGNO(105) "upstream %s %s: %s; retrying in %ld ms", c->method,
           c->log_path, v->message, (long)apr_time_as_msec(d));
    apr_pool_destroy(at->pool);
    if (!wait_for(u, d)) {
        return NULL;
    }
    e = make_err(p, GC_ERR_CANCELLED, r->last_status, "cancelled while waiting to retry");
    e->correlation_id = r->last_corr;
    return e;
}

/* After a failed attempt: retry (NULL, once waited), or give up and return
 * the final error, with *resp_out set when there was a response. A retry
 * whose wait would end after the deadline (or leave it next to no time) is
 * not waited for: the call gives up at once. */
static gc_error_t *retry_or_give_up(gc_upstream_t *u, apr_pool_t *p, const call_t *c,
                                    run_t *r, const verdict_t *v, attempt_t *at,
                                    gc_response_t **resp_out)
{
    apr_interval_time_t stop = -1;
    gc_error_t *e;

    if (v->outcome == V_RETRY && r->attempt < r->limit) {
        apr_interval_time_t d = v->delay >= 0 ? v->delay
                                              : backoff_delay(u, r->backoffs++, &r->rng);

        if (!c->deadline || apr_time_now() + d + GC_UP_MIN_ATTEMPT <= c->deadline) {
            return wait_to_retry(u, p, c, r, v, at, d);
        }
        stop = d;
        r->stopped = 1;
    }
    /* Final: keep the attempt pool (child of p) for the response. */
    e = final_err(p, v, at, r->attempt, stop);
    e->correlation_id = r->last_corr;
    if (at->cc == CURLE_OK) {
        int bad_json;

        *resp_out = make_response(p, at, r->attempt, &bad_json);
    }
    return e;
}

/* The end of a failed call: the error completed, logged (a refused token
 * request is logged by the token cache) and handed out. */
static apr_status_t give_up(apr_pool_t *p, const call_t *c, const run_t *r, gc_error_t *e,
                            gc_error_t **err_out, int *cut)
{
    e->attempts = r->attempt;
    e->deadline_cut |= r->stopped;
    if (!e->correlation_id) {
        e->correlation_id = r->last_corr;
    }
    *err_out = e;
    if (cut) {
        *cut = r->stopped;
    }
    if (!c->token_request || e->kind != GC_ERR_AUTH) {
        log_give_up(p, c, e);
    }
    return APR_EGENERAL;
}

/* The retry loop shared by API calls and token requests. *cut (if not NULL)
 * tells whether it stopped because of the call's deadline. */
static apr_status_t run_call(gc_upstream_t *u, apr_pool_t *p, const call_t *c,
                             gc_response_t **resp_out, gc_error_t **err_out, int *cut)
{
    run_t r;
    gc_error_t *e;

    run_init(&r, c);
    for (;;) {
        attempt_t at;
        auth_t a;
        verdict_t v;

        if ((e = prepare_attempt(u, p, c, &r, &at, &a)) != NULL) {
            break;
        }
        run_attempt(u, p, c, &r, &at, a.line);
        v = classify(at.pool, u, c, &at, a.secret, r.renewed);
        if (v.outcome == V_SUCCESS) {
            if ((e = take_response(p, &r, &at, resp_out)) == NULL) {
                return APR_SUCCESS;
            }
            break;
        }
        if (v.outcome == V_AUTH_RETRY) {
            renew_after_401(u, c, &r, &a, &at);
            continue;
        }
        if ((e = retry_or_give_up(u, p, c, &r, &v, &at, resp_out)) != NULL) {
            break;
        }
    }
    return give_up(p, c, &r, e, err_out, cut);
}

/* ---------------------------------------------------------------------------
 * 5. Token cache
 * ------------------------------------------------------------------------- */

static int token_chars_ok(const char *t)
{
    for (; *t; t++) {
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* The Basic credentials of a token request, in tp (wiped when tp goes). */
static void basic_auth(gc_upstream_t *u, apr_pool_t *tp, call_t *c)
{
    char *creds = gc_secret_track(tp, apr_pstrcat(tp, u->conf.client_id, ":",
                                                  u->conf.client_secret, NULL));
    int len = (int)strlen(creds);
    apr_size_t elen = (apr_size_t)apr_base64_encode_len(len);
    char *enc = apr_palloc(tp, elen);

    gc_wipe_on_cleanup(tp, enc, elen);
    apr_base64_encode(enc, creds, len);
    c->basic_b64 = enc;
    c->basic_auth = gc_secret_track(tp, apr_pstrcat(tp, "Authorization: Basic ", enc, NULL));
}

/* The call of a token request, from tp: POST grant_type=client_credentials to
 * the login service with the Basic credentials, within deadline (0: none). */
static void token_call(gc_upstream_t *u, apr_pool_t *tp, apr_time_t deadline, call_t *c)
{
    memset(c, 0, sizeof(*c));
    c->op = GC_UP_TOKEN_OP;
    c->method = "POST";
    c->url = apr_pstrcat(tp, u->conf.login_url, "/oauth/token", NULL);
    c->log_path = apr_pstrcat(tp, strip_query(tp, u->conf.login_url), "/oauth/token", NULL);
    c->body = "grant_type=client_credentials";
    c->content_type = "application/x-www-form-urlencoded";
    c->token_request = 1;
    /* Asking for another token is harmless (the old one stays valid), so the
     * token POST is retried like an idempotent request. */
    c->idempotent = 1;
    c->retry_500 = 1;
    c->max_attempts = GC_UP_DEFAULT_ATTEMPTS;
    c->deadline = deadline;
    basic_auth(u, tp, c);
}

/* The access_token of a token response, copied into tp (*tok, *tok_len):
 * 1, or 0 when it is missing or unusable. */
static int take_access_token(apr_pool_t *tp, const gc_response_t *resp, const char **tok,
                             apr_size_t *tok_len)
{
    const char *at = json_string_value(json_object_get(resp->json, "access_token"));
    apr_size_t n = at ? strlen(at) : 0;
    int usable = n > 0 && n <= GC_UP_TOKEN_MAX && token_chars_ok(at);

    if (usable) {
        *tok = gc_secret_pmemdup(tp, at, n);
        *tok_len = n;
    }
    /* jansson frees its copy without wiping it: wipe it in place (its tree is
     * only released after this) */
    gc_wipe((char *)at, n);
    return usable;
}

/* The token's lifetime in seconds: expires_in, a day without one, at most
 * 10^8 s. */
static apr_int64_t token_life(const json_t *json)
{
    const json_t *ex = json_object_get(json, "expires_in");
    apr_int64_t life = GC_UP_TOKEN_DEFAULT_LIFE;

    if (json_is_integer(ex) && json_integer_value(ex) > 0) {
        life = (apr_int64_t)json_integer_value(ex);
    }
    else if (json_is_real(ex) && json_real_value(ex) >= 1.0 && json_real_value(ex) < 1e9) {
        life = (apr_int64_t)json_real_value(ex);
    }
    if (life > APR_INT64_C(100000000)) {
        life = APR_INT64_C(100000000);
    }
    return life;
}

/* One token request (with retries, within the deadline of the call that
 * needs it; 0: none). On success *tok (*tok_len bytes) is from tp and wiped
 * when tp goes; every other copy made here (the credentials, the response
 * body, jansson's string) is wiped too. *cut: it stopped at the deadline. */
static apr_status_t fetch_token(gc_upstream_t *u, apr_pool_t *tp, apr_time_t deadline,
                                const char **tok, apr_size_t *tok_len,
                                apr_interval_time_t *lifetime, gc_error_t **err, int *cut)
{
    call_t c;
    gc_response_t *resp = NULL;
    apr_int64_t life;
    apr_status_t rv;

    if (!u->conf.login_url || !*u->conf.login_url) {
        *err = make_err(tp, GC_ERR_CONFIG, 0, "no login URL configured");
        return APR_EINVAL;
    }
    token_call(u, tp, deadline, &c);
    rv = run_call(u, tp, &c, &resp, err, cut);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!take_access_token(tp, resp, tok, tok_len)) {
        *err = make_err(tp, GC_ERR_PROTOCOL, resp->status,
                        "login service answered without a usable access_token (printable "
                        "ASCII, at most " APR_STRINGIFY(GC_UP_TOKEN_MAX) " bytes)");
        (*err)->attempts = resp->attempts;
        (*err)->correlation_id = resp->correlation_id;
        return APR_EGENERAL;
    }
    life = token_life(resp->json);
    *lifetime = apr_time_from_sec(life);
    gc_log(GC_LOG_MARK, GC_LOG_INFO, APR_SUCCESS,
           GCMON_LOGNO(106) "obtained an access token from %s (valid %" APR_INT64_T_FMT " s)",
           c.log_path, life);
    return APR_SUCCESS;
}

static gc_error_t *copy_err(apr_pool_t *p, const gc_error_t *s)
{
    gc_error_t *e = apr_pmemdup(p, s, sizeof(*s));

    e->message = apr_pstrdup(p, s->message);
    e->code = apr_pstrdup(p, s->code);
    e->correlation_id = apr_pstrdup(p, s->correlation_id);
    return e;
}

/* Forget the cached token, wiping it. Under u->mutex (or single-threaded). */
static void forget_token(gc_upstream_t *u)
{
    gc_wipe(u->token, sizeof(u->token));
    u->token_len = 0;
}

/* Replace the cached token (n <= GC_UP_TOKEN_MAX bytes): the old one is wiped,
 * all of it, also where the new one is shorter. Under u->mutex. */
static void store_token(gc_upstream_t *u, const char *t, apr_size_t n)
{
    forget_token(u);
    memcpy(u->token, t, n);
    u->token_len = n;
}

static int token_valid(const gc_upstream_t *u)
{
    return u->token_len && client_now(u) < u->token_renew_at;
}

/* Wait (under u->mutex) until the fetch in flight that had sequence seq ends,
 * at most until the deadline (0: none). APR_EINTR (cancelled) or APR_TIMEUP
 * (deadline passed) with *err set. */
static apr_status_t wait_for_fetch(gc_upstream_t *u, apr_pool_t *p, unsigned long seq,
                                   apr_time_t deadline, gc_error_t **err)
{
    while (u->fetching && u->fetch_seq == seq) {
        apr_interval_time_t slice = GC_UP_SLICE;

        if (deadline) {
            apr_interval_time_t left = deadline - apr_time_now();

            if (left <= 0) {
                *err = make_err(p, GC_ERR_TIMEOUT, 0, "this request's deadline passed while "
                                "another request was obtaining the access token");
                (*err)->deadline_cut = 1;
                (*err)->retry_after = APR_USEC_PER_SEC;
                return APR_TIMEUP;
            }
            slice = left < slice ? left : slice;
        }
        apr_thread_cond_timedwait(u->cond, u->mutex, slice);
        if (is_cancelled(u)) {
            *err = make_err(p, GC_ERR_CANCELLED, 0, "cancelled while waiting for a token");
            return APR_EINTR;
        }
    }
    return APR_SUCCESS;
}

/* Record (under u->mutex) the result of this thread's fetch, for the waiters
 * and for the callers that come while a failure is held. */
static void end_fetch(gc_upstream_t *u, const char *tok, apr_size_t tok_len,
                      apr_interval_time_t life, apr_time_t started, const gc_error_t *fe,
                      int cut)
{
    if (!fe) {
        apr_interval_time_t keep = life - GC_UP_TOKEN_SKEW;

        if (keep < life / 2) {
            keep = life / 2;
        }
        store_token(u, tok, tok_len);
        u->token_renew_at = started + keep;
        u->token_gen++;
    }
    else {
        u->fetch_kind = fe->kind;
        u->fetch_status = fe->status;
        u->fetch_retry_after = fe->retry_after;
        u->fetch_cut = cut;
        apr_cpystrn(u->fetch_message, fe->message ? fe->message : "", sizeof(u->fetch_message));
        if (fe->kind == GC_ERR_THROTTLED && fe->retry_after > 0) {
            u->hold_until = client_now(u) + fe->retry_after;
        }
        if (fe->kind == GC_ERR_AUTH) {
            u->hold_until = client_now(u) + GC_UP_AUTH_FAIL_HOLD;
            gc_log(GC_LOG_MARK, GC_LOG_WARNING, APR_SUCCESS,
                   GCMON_LOGNO(107) "cannot obtain an access token: %s", fe->message);
        }
    }
    u->fetching = 0;
    u->fetch_seq++;
    apr_thread_cond_broadcast(u->cond);
}

/* The cached token, copied into tp (wiped when tp goes), and its generation.
 * Under u->mutex. */
static void hand_out_token(const gc_upstream_t *u, apr_pool_t *tp, const char **token,
                           unsigned long *gen)
{
    *token = gc_secret_pmemdup(tp, u->token, u->token_len);
    *gen = u->token_gen;
}

/* The error of the last failed fetch, from p, for the callers that share it.
 * Under u->mutex. */
static gc_error_t *fetch_failure(const gc_upstream_t *u, apr_pool_t *p)
{
    return make_err(p, u->fetch_kind, u->fetch_status, apr_pstrdup(p, u->fetch_message));
}

/* Under u->mutex: what the cache answers. A valid token: APR_SUCCESS with
 * *token and *gen. A held failure, or the failure of the fetch this thread
 * waited for: APR_EGENERAL with *err. While another thread fetches, this one
 * waits for it (APR_EINTR when cancelled, APR_TIMEUP at the deadline, *err
 * set). APR_INCOMPLETE: nobody fetches, and this thread now does
 * (u->fetching set). */
static apr_status_t token_from_cache(gc_upstream_t *u, apr_pool_t *p, apr_pool_t *tp,
                                     apr_time_t deadline, const char **token,
                                     unsigned long *gen, gc_error_t **err)
{
    for (;;) {
        unsigned long seq;
        apr_status_t rv;

        if (token_valid(u)) {
            hand_out_token(u, tp, token, gen);
            return APR_SUCCESS;
        }
        if (!u->fetching && client_now(u) < u->hold_until) {
            /* The login service refused these credentials moments ago (they
             * cannot have changed: config), or asked us to come back later:
             * answer every caller from that result meanwhile instead of
             * asking again for each incoming request. */
            *err = fetch_failure(u, p);
            if (u->fetch_kind == GC_ERR_THROTTLED) {
                (*err)->retry_after = u->hold_until - client_now(u);
            }
            return APR_EGENERAL;
        }
        if (!u->fetching) {
            u->fetching = 1;
            return APR_INCOMPLETE;
        }
        seq = u->fetch_seq;
        if ((rv = wait_for_fetch(u, p, seq, deadline, err)) != APR_SUCCESS) {
            return rv;
        }
        if (u->fetch_seq != seq && !token_valid(u) && !u->fetch_cut) {
            /* the fetch we waited for failed: report its error, don't stampede */
            *err = fetch_failure(u, p);
            (*err)->retry_after = u->fetch_retry_after;
            return APR_EGENERAL;
        }
    }
}

/* This thread's fetch (u->fetching set): its result is recorded for the
 * waiters, and the token handed out as from the cache, or its error (from p). */
static apr_status_t fetch_and_share(gc_upstream_t *u, apr_pool_t *p, apr_pool_t *tp,
                                    apr_time_t deadline, const char **token,
                                    unsigned long *gen, gc_error_t **err)
{
    apr_pool_t *fp;
    apr_status_t rv;
    const char *tok = NULL;
    apr_size_t tok_len = 0;
    apr_interval_time_t life = 0;
    apr_time_t started = client_now(u);
    gc_error_t *fe = NULL;
    int cut = 0;

    if (apr_pool_create(&fp, p) != APR_SUCCESS) {
        rv = APR_ENOMEM;
        fe = make_err(p, GC_ERR_CONNECT, 0, "out of memory");
        fp = NULL;
    }
    else {
        rv = fetch_token(u, fp, deadline, &tok, &tok_len, &life, &fe, &cut);
    }

    apr_thread_mutex_lock(u->mutex);
    end_fetch(u, tok, tok_len, life, started, rv == APR_SUCCESS ? NULL : fe, cut);
    if (rv == APR_SUCCESS) {
        hand_out_token(u, tp, token, gen);
    }
    else {
        *err = copy_err(p, fe);
    }
    apr_thread_mutex_unlock(u->mutex);
    if (fp) {
        apr_pool_destroy(fp);
    }
    return rv;
}

/* A valid token (copied into tp, wiped when tp goes) and its generation.
 * Errors from p. Only one thread per client fetches; the others wait for it
 * (cancellable, at most until their deadline) and share its result, so a
 * burst of requests after expiry makes one token request. A fetch is bounded
 * by the deadline of the call that makes it; when it stops there, waiters
 * with another deadline (or none) try again instead of sharing that error. */
static apr_status_t get_token(gc_upstream_t *u, apr_pool_t *p, apr_pool_t *tp,
                              apr_time_t deadline, const char **token, unsigned long *gen,
                              gc_error_t **err)
{
    apr_status_t rv;

    if (!u->conf.client_id || !*u->conf.client_id || !u->conf.client_secret
        || !*u->conf.client_secret) {
        *err = make_err(p, GC_ERR_CONFIG, 0,
                        "no OAuth client credentials configured (GcmonClientID, "
                        "GcmonClientSecret)");
        return APR_EINVAL;
    }
    apr_thread_mutex_lock(u->mutex);
    rv = token_from_cache(u, p, tp, deadline, token, gen, err);
    apr_thread_mutex_unlock(u->mutex);
    if (rv != APR_INCOMPLETE) {
        return rv;
    }
    return fetch_and_share(u, p, tp, deadline, token, gen, err);
}

static void invalidate_if(gc_upstream_t *u, unsigned long gen)
{
    apr_thread_mutex_lock(u->mutex);
    if (u->token_len && u->token_gen == gen) {
        forget_token(u);
        u->token_gen++;
    }
    apr_thread_mutex_unlock(u->mutex);
}

/* ---------------------------------------------------------------------------
 * 6. Public API
 * ------------------------------------------------------------------------- */

void gc_upstream_global_init(void)
{
    static int done;
    CURLcode cc;

    if (done) {
        return;
    }
    cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) {
        gc_log(GC_LOG_MARK, GC_LOG_ERR, APR_EGENERAL,
               GCMON_LOGNO(108) "curl_global_init failed: %s", curl_easy_strerror(cc));
        return;
    }
    done = 1;
}

static apr_status_t upstream_cleanup(void *data)
{
    gc_upstream_t *u = data;

    if (u->share) {
        curl_share_cleanup(u->share);
        u->share = NULL;
    }
    forget_token(u);
    return APR_SUCCESS;
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
    gc_upstream_t *u = ud;

    (void)h; (void)access;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST && u->share_locks[data]) {
        apr_thread_mutex_lock(u->share_locks[data]);
    }
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
    gc_upstream_t *u = ud;

    (void)h;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST && u->share_locks[data]) {
        apr_thread_mutex_unlock(u->share_locks[data]);
    }
}

static void setup_share(gc_upstream_t *u)
{
    int i;

    for (i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        if (apr_thread_mutex_create(&u->share_locks[i], APR_THREAD_MUTEX_DEFAULT, u->pool)
            != APR_SUCCESS) {
            return;
        }
    }
    u->share = curl_share_init();
    if (!u->share) {
        return;
    }
    if (curl_share_setopt(u->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK
        || curl_share_setopt(u->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK
        || curl_share_setopt(u->share, CURLSHOPT_USERDATA, u) != CURLSHE_OK
        || curl_share_setopt(u->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK
        || curl_share_setopt(u->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION)
               != CURLSHE_OK) {
        curl_share_cleanup(u->share);
        u->share = NULL;
    }
}

static const char *trim_slash(apr_pool_t *p, const char *s)
{
    size_t n;

    if (!s) {
        return NULL;
    }
    n = strlen(s);
    while (n > 0 && s[n - 1] == '/') {
        n--;
    }
    return apr_pstrmemdup(p, s, n);
}

gc_upstream_t *gc_upstream_create(apr_pool_t *pool, const gc_conn_conf_t *conf,
                                  gc_budget_t *budget, gc_metrics_t *metrics)
{
    gc_upstream_t *u = apr_pcalloc(pool, sizeof(*u));

    u->pool = pool;
    u->conf.environment = apr_pstrdup(pool, conf->environment);
    u->conf.api_url = trim_slash(pool, conf->api_url);
    u->conf.login_url = trim_slash(pool, conf->login_url);
    u->conf.client_id = apr_pstrdup(pool, conf->client_id);
    u->conf.client_secret = gc_secret_pstrdup(pool, conf->client_secret);
    u->conf.ca_file = apr_pstrdup(pool, conf->ca_file);
    u->conf.request_timeout = conf->request_timeout > 0 ? conf->request_timeout
                                                        : GC_DEFAULT_REQUEST_TIMEOUT;
    u->conf.rate_limit = conf->rate_limit;
    u->budget = budget;
    u->metrics = metrics;
    u->backoff_base = GC_UP_BACKOFF_BASE;
    u->backoff_cap = GC_UP_BACKOFF_CAP;
    u->retry_after_default = GC_UP_RETRY_AFTER_DEFAULT;
    u->jitter = 1;
    u->max_body = GC_UP_MAX_BODY;
    if (apr_thread_mutex_create(&u->mutex, APR_THREAD_MUTEX_DEFAULT, pool) != APR_SUCCESS
        || apr_thread_cond_create(&u->cond, pool) != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_ERR, APR_EGENERAL,
               GCMON_LOGNO(109) "cannot create the upstream client's mutex");
        return NULL;
    }
    setup_share(u);
    /* registered after the share's mutexes: runs before they are destroyed */
    apr_pool_cleanup_register(pool, u, upstream_cleanup, apr_pool_cleanup_null);
    return u;
}

void gc_upstream_set_cancel(gc_upstream_t *u, gc_cancel_fn *cancel, void *baton)
{
    u->cancel = cancel;
    u->cancel_baton = baton;
}

apr_status_t gc_upstream_call(gc_upstream_t *u, apr_pool_t *p, const gc_request_t *req,
                              gc_response_t **resp, gc_error_t **err)
{
    call_t c;
    const char *why = NULL;
    int absolute = 0;

    *resp = NULL;
    *err = NULL;
    memset(&c, 0, sizeof(c));
    c.op = req->op ? req->op : "other";
    c.method = req->method ? req->method : "GET";
    c.secret = req->secret;
    c.secret_label = req->secret_label ? req->secret_label : "(hidden)";
    set_log_path(p, &c, req->path ? strip_query(p, req->path) : "(none)");
    if (!is_method(c.method)) {
        *err = make_err(p, GC_ERR_CONFIG, 0,
                        apr_psprintf(p, "unsupported HTTP method '%s'",
                                     sanitize(p, u, NULL, c.method, strlen(c.method), 20)));
        log_give_up(p, &c, *err);
        return APR_EINVAL;
    }
    c.url = build_url(p, u, req->path, &absolute, &why);
    if (c.url && absolute && !req->no_auth && !same_origin_prefix(c.url, u->conf.api_url)) {
        /* Never hand the bearer token to another host (pre-signed download
         * URLs point at storage services): such calls must set no_auth. */
        c.url = NULL;
        why = "absolute URL outside the API URL needs no_auth (the access token is only "
              "sent to the API URL)";
    }
    if (!c.url) {
        set_log_path(p, &c, req->path ? sanitize(p, u, NULL, c.log_path, strlen(c.log_path),
                                                 100)
                                      : "(none)");
        *err = make_err(p, GC_ERR_CONFIG, 0, apr_pstrcat(p, "bad request URL: ", why, NULL));
        log_give_up(p, &c, *err);
        return APR_EINVAL;
    }
    c.body = req->body;
    c.content_type = "application/json";
    c.no_auth = req->no_auth;
    c.idempotent = is_idempotent(c.method);
    c.retry_500 = strcmp(c.method, "GET") == 0 || strcmp(c.method, "HEAD") == 0;
    c.budget_wait = req->budget_wait;
    c.max_attempts = req->max_attempts > 0 ? req->max_attempts : GC_UP_DEFAULT_ATTEMPTS;
    c.deadline = req->deadline;
    return run_call(u, p, &c, resp, err, NULL);
}

apr_time_t gc_upstream_deadline(apr_interval_time_t budget)
{
    return apr_time_now() + (budget > 0 ? budget : GC_DEFAULT_REQUEST_DEADLINE);
}

void gc_upstream_invalidate_token(gc_upstream_t *u)
{
    apr_thread_mutex_lock(u->mutex);
    forget_token(u);
    u->token_gen++;
    u->hold_until = 0;
    apr_thread_mutex_unlock(u->mutex);
}

int gc_upstream_token_requests(gc_upstream_t *u)
{
    int n;

    apr_thread_mutex_lock(u->mutex);
    n = u->token_requests;
    apr_thread_mutex_unlock(u->mutex);
    return n;
}
