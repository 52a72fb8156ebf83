/* One attempt of an upstream call (see gc_upstream_int.h): the HTTP exchange
 * itself (libcurl: header lines, options, what came back), and what it
 * means: first what curl reported (transport), then what the HTTP status and
 * body say (status), as a verdict for the retry loop in gc_upstream.c. */
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_uri.h>

#include "gc_secret.h"
#include "gc_upstream_int.h"
#include "gc_version.h"

/* ---------------------------------------------------------------------------
 * 1. One HTTP exchange: the transport
 * ------------------------------------------------------------------------- */

struct body_buf {
    char *data; /* malloc'd, wiped and freed by the attempt pool
                                       (a token response holds the token) */
    apr_size_t len, cap, max;
    int too_big, no_mem;
};

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
        apr_table_clear(at->headers); /* a new response (after 1xx) */
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
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    apr_table_addn(at->headers, name, apr_pstrmemdup(at->pool, v, (apr_size_t)(end - v)));
    return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    attempt_t *at = ud;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (gc_up_is_cancelled(at->u)) {
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

/* The request's header lines (with auth, a complete Authorization line, when
 * not NULL), or NULL when out of memory. */
static struct curl_slist *request_headers(const call_t *c, const attempt_t *at, const char *auth)
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
        hl = slist_add(hl, "Content-Type:", &oom); /* no curl default form type */
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
        || (sc = curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, gc_up_ms_of(at->timeout))) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, gc_up_ms_of(connect_timeout)))
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
static void set_io_options(const gc_upstream_t *u, attempt_t *at, CURL *h, struct curl_slist *hl)
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
        req_size = 1; /* unknown: assume something was sent */
    }
    switch (at->cc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR: at->sent = 0; break;
    default: at->sent = at->status > 0 || req_size > 0; break;
    }
}

/* A fresh attempt in ap, limited to timeout: empty headers, and a body buffer
 * of at most u->max_body bytes that ap wipes and frees. */
void gc_up_attempt_init(attempt_t *at, const gc_upstream_t *u, apr_pool_t *ap,
                        apr_interval_time_t timeout)
{
    memset(at, 0, sizeof(*at));
    at->u = u;
    at->pool = ap;
    at->timeout = timeout;
    at->headers = apr_table_make(ap, 16);
    at->buf = apr_pcalloc(ap, sizeof(*at->buf));
    at->buf->max = u->max_body;
    apr_pool_cleanup_register(ap, at->buf, body_buf_cleanup, apr_pool_cleanup_null);
}

/* Run one HTTP exchange; fills *at. auth is a complete header line or NULL. */
void gc_up_perform(const gc_upstream_t *u, const call_t *c, attempt_t *at, const char *auth)
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
 * 2. Classification: what curl reported, what the status and body mean
 * ------------------------------------------------------------------------- */

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
            *message = gc_up_sanitize(p, u, token, m, strlen(m), GC_UP_MESSAGE_MAX - 100);
        }
        if (cd) {
            *code = gc_up_sanitize(p, u, token, cd, strlen(cd), 100);
        }
    }
    else {
        *message = gc_up_sanitize(p, u, token, at->buf->data, at->buf->len, GC_UP_EXCERPT);
    }
    json_decref(j);
}

static const char *curl_text(apr_pool_t *p, const gc_upstream_t *u, const attempt_t *at)
{
    const char *t = at->errbuf[0] ? at->errbuf : curl_easy_strerror(at->cc);

    return gc_up_sanitize(p, u, NULL, t, strlen(t), 300);
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
static int local_stop(apr_pool_t *p, const gc_upstream_t *u, const attempt_t *at, verdict_t *v)
{
    if (at->cc == CURLE_ABORTED_BY_CALLBACK && at->cancelled) {
        v->kind = GC_ERR_CANCELLED;
        v->message = "cancelled during the request";
        return 1;
    }
    if (at->cc == CURLE_WRITE_ERROR && at->buf->too_big) {
        v->kind = GC_ERR_PROTOCOL;
        v->message =
            apr_psprintf(p, "response body larger than %" APR_SIZE_T_FMT " bytes", u->max_body);
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
        *what = "TLS verification failed";
        return 1;
    case CURLE_OUT_OF_MEMORY:
    case CURLE_FAILED_INIT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_NOT_BUILT_IN:
        *kind = GC_ERR_CONNECT;
        *what = "HTTP client failure: ";
        return 1;
    default: return 0;
    }
}

/* What follows "TLS verification failed" for a TLS trust failure:
 * " for host:port: " naming the server refused (the API and login hosts can
 * differ), or ": " without a host; "" for any other error. */
static const char *tls_peer(apr_pool_t *p, CURLcode cc, const char *url)
{
    apr_uri_t uri;

    switch (cc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: break;
    default: return "";
    }
    if (!url || apr_uri_parse(p, url, &uri) != APR_SUCCESS || !uri.hostname) {
        return ": ";
    }
    return apr_psprintf(p, " for %s%s%s%s%s: ", strchr(uri.hostname, ':') ? "[" : "", uri.hostname,
                        strchr(uri.hostname, ':') ? "]" : "", uri.port_str ? ":" : "",
                        uri.port_str ? uri.port_str : "");
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
        v.message = apr_pstrcat(p, what, tls_peer(p, at->cc, c->url), curl_text(p, u, at), NULL);
        return v;
    }
    if (at->cc == CURLE_OPERATION_TIMEDOUT) {
        v.kind = GC_ERR_TIMEOUT;
        v.message = apr_psprintf(
            p, "no complete response within %ld ms%s (%s)", gc_up_ms_of(at->timeout),
            at->timeout < u->conf.request_timeout ? ", the time left before this request's deadline"
                                                  : "",
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
static void verdict_401(apr_pool_t *p, const call_t *c, int renewed, const char *gm, verdict_t *v)
{
    v->kind = GC_ERR_AUTH;
    if (!c->no_auth && !renewed) {
        v->outcome = V_AUTH_RETRY;
        return;
    }
    v->message = apr_psprintf(p, "Genesys Cloud rejected the access token%s (401%s): %s",
                              renewed ? " even after renewing it" : "", code_part(p, v->code), gm);
}

/* 429: retry after Retry-After (the default without one), unless that is
 * longer than GC_UP_RETRY_AFTER_MAX. */
static void verdict_429(apr_pool_t *p, const gc_upstream_t *u, const attempt_t *at, const char *gm,
                        verdict_t *v)
{
    apr_interval_time_t ra;

    if (!gc_retry_after_parse(apr_table_get(at->headers, "retry-after"), &ra)) {
        ra = u->retry_after_default;
    }
    v->kind = GC_ERR_THROTTLED;
    v->retry_after = ra;
    if (ra > GC_UP_RETRY_AFTER_MAX) {
        v->message = apr_psprintf(p,
                                  "Genesys Cloud is rate limiting (429) and asked to "
                                  "retry after %" APR_TIME_T_FMT " s (more than %d s: "
                                  "not waited for): %s",
                                  apr_time_sec(ra), (int)apr_time_sec(GC_UP_RETRY_AFTER_MAX), gm);
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
        v->message = apr_psprintf(p, "Genesys Cloud rejected the request (%ld%s): %s", s, code, gm);
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
    v->message =
        apr_psprintf(p, "Genesys Cloud server error (%ld%s): %s", s, code_part(p, v->code), gm);
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
verdict_t gc_up_classify(apr_pool_t *p, const gc_upstream_t *u, const call_t *c,
                         const attempt_t *at, const char *token, int renewed)
{
    if (at->cc != CURLE_OK) {
        return classify_transport(p, u, c, at);
    }
    return classify_status(p, u, c, at, token, renewed);
}

/* ---------------------------------------------------------------------------
 * 3. The response
 * ------------------------------------------------------------------------- */

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

static int is_json_type(const char *ct)
{
    return ct && (strstr(ct, "/json") || strstr(ct, "+json"));
}

gc_response_t *gc_up_make_response(apr_pool_t *p, attempt_t *at, int attempts, int *bad_json)
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
