/* The one upstream HTTP client of gcmon (libcurl). See gc_upstream.h for the
 * contract and SPEC §4.1/§4.6 for the policy. Layout of this file:
 *   1. client object, test hooks
 *   2. small helpers (URLs, sanitising, Retry-After, backoff, waits)
 *   3. the retry loop (run_call): per attempt the Authorization line, a
 *      budget slot, the attempt and its record, then retry or give up
 *   4. public API
 * One attempt and its classification are in gc_upstream_attempt.c, the token
 * cache in gc_upstream_token.c, the seams in gc_upstream_int.h.
 * Nothing in these files ever logs or returns the Authorization header, the
 * token, the client secret or a request body, and every copy of a secret made
 * there (the cached token, the Basic credentials, header lines, response
 * bodies) is wiped before its memory is released (gc_secret.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_date.h>
#include <apr_lib.h>
#include <apr_portable.h>
#include <apr_strings.h>

#include "gc_log.h"
#include "gc_secret.h"
#include "gc_upstream_int.h"

/* ---------------------------------------------------------------------------
 * 1. Client object and test hooks
 * ------------------------------------------------------------------------- */

apr_time_t gc_up_client_now(const gc_upstream_t *u)
{
    return u->clock ? u->clock(u->clock_baton) : apr_time_now();
}

int gc_up_is_cancelled(const gc_upstream_t *u)
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

/* ---------------------------------------------------------------------------
 * 2. Helpers
 * ------------------------------------------------------------------------- */

const char *gc_err_kind_name(gc_err_kind_e kind)
{
    switch (kind) {
    case GC_ERR_NONE: return "none";
    case GC_ERR_CONFIG: return "config";
    case GC_ERR_CONNECT: return "connect";
    case GC_ERR_TIMEOUT: return "timeout";
    case GC_ERR_THROTTLED: return "throttled";
    case GC_ERR_BUDGET: return "budget";
    case GC_ERR_AUTH: return "auth";
    case GC_ERR_FORBIDDEN: return "forbidden";
    case GC_ERR_NOT_FOUND: return "not_found";
    case GC_ERR_CLIENT: return "client";
    case GC_ERR_SERVER: return "server";
    case GC_ERR_PROTOCOL: return "protocol";
    case GC_ERR_CANCELLED: return "cancelled";
    }
    return "unknown";
}

const char *gc_err_text(apr_pool_t *p, const gc_error_t *e)
{
    if (!e) {
        return "the upstream call failed";
    }
    return apr_psprintf(p, "%s%s%s", gc_err_kind_name(e->kind), e->message ? ": " : "",
                        e->message ? e->message : "");
}

int gc_err_transient(const gc_error_t *e)
{
    if (!e) {
        return 1;
    }
    switch (e->kind) {
    case GC_ERR_CONNECT:
    case GC_ERR_TIMEOUT:
    case GC_ERR_THROTTLED:
    case GC_ERR_BUDGET:
    case GC_ERR_SERVER:
    case GC_ERR_AUTH: return 1;
    default: return 0;
    }
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

/* Printable single-line text of at most max bytes (plus "..."): the client
 * secret and the given secret (the bearer token, or the Basic credentials of
 * a token request) are hidden first, then the text is cut (gc_redact_line),
 * so a secret straddling the cut never survives in part. */
const char *gc_up_sanitize(apr_pool_t *p, const gc_upstream_t *u, const char *token, const char *s,
                           apr_size_t len, apr_size_t max)
{
    const char *needles[2];

    needles[0] = u->conf.client_secret;
    needles[1] = token;
    return gc_redact_line(p, s, len, needles, 2, 0, max);
}

/* "/api/v2/x?y" → "/api/v2/x"; absolute URLs lose their query too (pre-signed
 * URLs carry credentials there). */
const char *gc_up_strip_query(apr_pool_t *p, const char *path)
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
static const char *build_url(apr_pool_t *p, const gc_upstream_t *u, const char *path, int *absolute,
                             const char **why)
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
            if (secs < APR_INT64_C(100000000)) { /* clamp: ~3 years is plenty */
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

        if (gc_up_is_cancelled(u)) {
            return 1;
        }
        now = apr_time_now();
        if (now >= end) {
            return 0;
        }
        apr_sleep(end - now < GC_UP_SLICE ? end - now : GC_UP_SLICE);
    }
}

gc_error_t *gc_up_make_err(apr_pool_t *p, gc_err_kind_e kind, int status, const char *msg)
{
    gc_error_t *e = apr_pcalloc(p, sizeof(*e));

    e->kind = kind;
    e->status = status;
    e->message = msg ? msg : gc_err_kind_name(kind);
    return e;
}

long gc_up_ms_of(apr_interval_time_t t)
{
    long ms = (long)apr_time_as_msec(t);

    return ms > 0 ? ms : 1;
}

/* ---------------------------------------------------------------------------
 * 3. The retry loop: auth, budget, the attempt and its record, retry or give up
 * ------------------------------------------------------------------------- */

static void log_attempt(const gc_upstream_t *u, const call_t *c, const attempt_t *at, int attempt,
                        int limit)
{
    const char *corr;

    if (!gc_log_is_level(GC_LOG_DEBUG)) {
        return;
    }
    corr = apr_table_get(at->headers, "inin-correlation-id");
    if (at->cc == CURLE_OK) {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, APR_SUCCESS,
               GCMON_LOGNO(101) "upstream %s %s -> %ld in %ld ms (op %s, attempt %d/%d, "
                                "ININ-Correlation-ID %s)",
               c->method, c->log_path, at->status, (long)apr_time_as_msec(at->elapsed), c->op,
               attempt, limit, corr ? corr : "-");
    }
    else {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, APR_SUCCESS,
               GCMON_LOGNO(102) "upstream %s %s -> no response in %ld ms: %s (op %s, "
                                "attempt %d/%d)",
               c->method, c->log_path, (long)apr_time_as_msec(at->elapsed),
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
    case GC_ERR_CANCELLED: level = GC_LOG_DEBUG; break;
    case GC_ERR_CLIENT: level = GC_LOG_INFO; break;
    default: level = GC_LOG_WARNING; break;
    }
    if (level != GC_LOG_DEBUG) {
        path = c->show_path ? c->show_path : c->log_path;
        msg = hide_secret(p, msg, c->secret, c->secret_label);
    }
    gc_log(GC_LOG_MARK, level, APR_SUCCESS,
           GCMON_LOGNO(103) "upstream %s %s failed (%s, %d attempt%s, status %d, "
                            "ININ-Correlation-ID %s): %s",
           c->method, path, gc_err_kind_name(e->kind), e->attempts, e->attempts == 1 ? "" : "s",
           e->status, e->correlation_id ? e->correlation_id : "-", msg);
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
 * requests and no_auth calls take none: they go to the login service or to a
 * storage service's pre-signed link, not the API). The wait is
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
        return gc_up_make_err(p, GC_ERR_CANCELLED, status,
                              "cancelled while waiting for the rate budget");
    }
    e = gc_up_make_err(p, GC_ERR_BUDGET, status,
                       apr_psprintf(p,
                                    "the upstream rate budget (GcmonRateLimit) had no free "
                                    "slot %s; retry after %ld ms",
                                    cut ? "before this request's deadline" : "in time",
                                    gc_up_ms_of(ra)));
    e->retry_after = ra > 0 ? ra : GC_UP_SLICE;
    e->deadline_cut = cut;
    return e;
}

/* The state of one call's retry loop. */
typedef struct run {
    int attempt;           /* attempts sent so far */
    int limit;             /* attempts allowed (one more after a 401 renewal) */
    int renewed;           /* the token was renewed after a 401 */
    int backoffs;          /* exponential backoffs so far */
    int last_status;       /* of the last response, 0 if none */
    const char *last_corr; /* its ININ-Correlation-ID (from the call's pool) */
    int stopped;           /* stopped because of the call's deadline */
    apr_uint64_t rng;      /* backoff jitter */
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
    const char *line;   /* the Authorization header line, NULL: none */
    const char *secret; /* what it carries (the token, or the Basic
                                       credentials of a token request): hidden in texts */
    unsigned long gen;  /* the token's generation, to forget it after a 401 */
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
        if (gc_up_get_token(u, p, ap, c->deadline, &a->secret, &a->gen, &e) != APR_SUCCESS) {
            return e;
        }
        a->line = gc_secret_track(ap, apr_pstrcat(ap, "Authorization: Bearer ", a->secret, NULL));
    }
    return NULL;
}

/* The call stops at its deadline before its next attempt (or its first). */
static gc_error_t *deadline_passed(apr_pool_t *p, run_t *r)
{
    gc_error_t *e =
        gc_up_make_err(p, GC_ERR_TIMEOUT, r->last_status,
                       r->attempt ? "this request's deadline passed before the next attempt"
                                  : "this request's deadline passed before anything was sent");
    e->deadline_cut = 1;
    e->retry_after = APR_USEC_PER_SEC;
    r->stopped = 1;
    return e;
}

/* Counts and logs a finished attempt. */
static void account_attempt(gc_upstream_t *u, const call_t *c, const attempt_t *at, int attempt,
                            int limit)
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
static gc_error_t *final_err(apr_pool_t *p, const verdict_t *v, const attempt_t *at, int attempt,
                             apr_interval_time_t stop)
{
    gc_error_t *e = gc_up_make_err(p, v->kind, (int)at->status, apr_pstrdup(p, v->message));

    e->code = v->code ? apr_pstrdup(p, v->code) : NULL;
    e->retry_after = v->retry_after;
    if (stop >= 0) {
        e->deadline_cut = 1;
        if (v->kind != GC_ERR_THROTTLED) {
            e->retry_after = stop;
        }
    }
    if (stop >= 0 && v->kind == GC_ERR_THROTTLED) {
        e->message = apr_psprintf(p,
                                  "%s; Genesys Cloud asked to retry after %s, beyond this "
                                  "request's deadline",
                                  e->message, wait_text(p, stop));
    }
    else if (stop >= 0) {
        e->message = apr_psprintf(p,
                                  "%s (gave up after %d attempt%s: the next retry, in %s, "
                                  "would pass this request's deadline)",
                                  e->message, attempt, attempt == 1 ? "" : "s", wait_text(p, stop));
    }
    else if (v->outcome == V_RETRY && v->kind != GC_ERR_THROTTLED) {
        e->message = apr_psprintf(p, "%s (gave up after %d attempt%s)", e->message, attempt,
                                  attempt == 1 ? "" : "s");
    }
    else if (v->outcome == V_RETRY) {
        e->message = apr_psprintf(p, "%s (still throttled after %d attempts)", e->message, attempt);
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
    apr_interval_time_t timeout;
    gc_error_t *e;

    if (gc_up_is_cancelled(u)) {
        return gc_up_make_err(p, GC_ERR_CANCELLED, r->last_status, "cancelled");
    }
    if (!attempt_timeout(u, c)) {
        return deadline_passed(p, r);
    }
    if (apr_pool_create(&ap, p) != APR_SUCCESS) {
        return gc_up_make_err(p, GC_ERR_CONNECT, r->last_status, "out of memory");
    }
    if ((e = auth_line(u, p, ap, c, a)) != NULL
        || (u->budget && !c->token_request && !c->no_auth
            && (e = take_budget(u, p, c, r->last_status)))) {
        apr_pool_destroy(ap);
        return e;
    }
    /* the token and the budget may have taken time */
    if ((timeout = attempt_timeout(u, c)) == 0) {
        apr_pool_destroy(ap);
        return deadline_passed(p, r);
    }
    gc_up_attempt_init(at, u, ap, timeout);
    return NULL;
}

/* Send one attempt and account for it: metrics and the debug line, the
 * client's count of token requests, the last status and correlation id. */
static void run_attempt(gc_upstream_t *u, apr_pool_t *p, const call_t *c, run_t *r, attempt_t *at,
                        const char *auth)
{
    r->attempt++;
    if (c->token_request) {
        apr_thread_mutex_lock(u->mutex);
        u->token_requests++;
        apr_thread_mutex_unlock(u->mutex);
    }
    gc_up_perform(u, c, at, auth);
    account_attempt(u, c, at, r->attempt, r->limit);
    if (at->cc == CURLE_OK) {
        r->last_status = (int)at->status;
        r->last_corr = apr_table_get(at->headers, "inin-correlation-id");
        r->last_corr = r->last_corr ? apr_pstrdup(p, r->last_corr) : NULL;
    }
}

/* A 2xx: *resp_out set; NULL, or GC_ERR_PROTOCOL when its JSON body does not parse. */
static gc_error_t *take_response(apr_pool_t *p, const run_t *r, attempt_t *at,
                                 gc_response_t **resp_out)
{
    int bad_json;
    gc_response_t *resp = gc_up_make_response(p, at, r->attempt, &bad_json);
    gc_error_t *e;

    /* at->buf is owned by the attempt pool, which lives on in p */
    *resp_out = resp;
    if (!bad_json) {
        return NULL;
    }
    e = gc_up_make_err(p, GC_ERR_PROTOCOL, resp->status, "response is not valid JSON");
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
                            "once",
           c->method, c->show_path ? c->show_path : c->log_path);
    gc_up_invalidate_if(u, a->gen);
    r->renewed = 1;
    r->limit++;
    apr_pool_destroy(at->pool);
}

/* Wait d before the next attempt: NULL, or the error when cancelled. */
static gc_error_t *wait_to_retry(gc_upstream_t *u, apr_pool_t *p, const call_t *c, const run_t *r,
                                 const verdict_t *v, attempt_t *at, apr_interval_time_t d)
{
    gc_error_t *e;

    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, APR_SUCCESS,
           GCMON_LOGNO(105) "upstream %s %s: %s; retrying in %ld ms", c->method, c->log_path,
           v->message, (long)apr_time_as_msec(d));
    apr_pool_destroy(at->pool);
    if (!wait_for(u, d)) {
        return NULL;
    }
    e = gc_up_make_err(p, GC_ERR_CANCELLED, r->last_status, "cancelled while waiting to retry");
    e->correlation_id = r->last_corr;
    return e;
}

/* After a failed attempt: retry (NULL, once waited), or give up and return
 * the final error, with *resp_out set when there was a response. A retry
 * whose wait would end after the deadline (or leave it next to no time) is
 * not waited for: the call gives up at once. */
static gc_error_t *retry_or_give_up(gc_upstream_t *u, apr_pool_t *p, const call_t *c, run_t *r,
                                    const verdict_t *v, attempt_t *at, gc_response_t **resp_out)
{
    apr_interval_time_t stop = -1;
    gc_error_t *e;

    if (v->outcome == V_RETRY && r->attempt < r->limit) {
        apr_interval_time_t d = v->delay >= 0 ? v->delay : backoff_delay(u, r->backoffs++, &r->rng);

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

        *resp_out = gc_up_make_response(p, at, r->attempt, &bad_json);
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
apr_status_t gc_up_run_call(gc_upstream_t *u, apr_pool_t *p, const call_t *c,
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
        v = gc_up_classify(at.pool, u, c, &at, a.secret, r.renewed);
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
 * 4. Public API
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
    gc_up_forget_token(u);
    return APR_SUCCESS;
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
    gc_upstream_t *u = ud;

    (void)h;
    (void)access;
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
        || curl_share_setopt(u->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
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

gc_upstream_t *gc_upstream_create(apr_pool_t *pool, const gc_conn_conf_t *conf, gc_budget_t *budget,
                                  gc_metrics_t *metrics)
{
    gc_upstream_t *u = apr_pcalloc(pool, sizeof(*u));

    u->pool = pool;
    u->conf.environment = apr_pstrdup(pool, conf->environment);
    u->conf.api_url = trim_slash(pool, conf->api_url);
    u->conf.login_url = trim_slash(pool, conf->login_url);
    u->conf.client_id = apr_pstrdup(pool, conf->client_id);
    u->conf.client_secret = gc_secret_pstrdup(pool, conf->client_secret);
    u->conf.ca_file = apr_pstrdup(pool, conf->ca_file);
    u->conf.request_timeout =
        conf->request_timeout > 0 ? conf->request_timeout : GC_DEFAULT_REQUEST_TIMEOUT;
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
    set_log_path(p, &c, req->path ? gc_up_strip_query(p, req->path) : "(none)");
    if (!is_method(c.method)) {
        *err = gc_up_make_err(
            p, GC_ERR_CONFIG, 0,
            apr_psprintf(p, "unsupported HTTP method '%s'",
                         gc_up_sanitize(p, u, NULL, c.method, strlen(c.method), 20)));
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
        set_log_path(p, &c,
                     req->path ? gc_up_sanitize(p, u, NULL, c.log_path, strlen(c.log_path), 100)
                               : "(none)");
        *err = gc_up_make_err(p, GC_ERR_CONFIG, 0, apr_pstrcat(p, "bad request URL: ", why, NULL));
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
    return gc_up_run_call(u, p, &c, resp, err, NULL);
}

apr_time_t gc_upstream_deadline(apr_interval_time_t budget)
{
    return apr_time_now() + (budget > 0 ? budget : GC_DEFAULT_REQUEST_DEADLINE);
}
