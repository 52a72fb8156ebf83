/* The OAuth client-credentials token cache of the upstream client (see
 * gc_upstream_int.h): one token per client, renewed at expires_in - 60 s and
 * after a 401; only one thread per client fetches, the others wait for it
 * and share its result (or its failure, held for a while when the login
 * service refused the credentials or throttled). Every copy of the token or
 * the credentials made here is wiped before its memory is released. */
#include <string.h>

#include <apr_base64.h>
#include <apr_strings.h>

#include "gc_log.h"
#include "gc_secret.h"
#include "gc_upstream_int.h"

/* ---------------------------------------------------------------------------
 * 1. One token request
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
    char *creds =
        gc_secret_track(tp, apr_pstrcat(tp, u->conf.client_id, ":", u->conf.client_secret, NULL));
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
    c->log_path = apr_pstrcat(tp, gc_up_strip_query(tp, u->conf.login_url), "/oauth/token", NULL);
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
        *err = gc_up_make_err(tp, GC_ERR_CONFIG, 0, "no login URL configured");
        return APR_EINVAL;
    }
    token_call(u, tp, deadline, &c);
    rv = gc_up_run_call(u, tp, &c, &resp, err, cut);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!take_access_token(tp, resp, tok, tok_len)) {
        *err = gc_up_make_err(tp, GC_ERR_PROTOCOL, resp->status,
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

/* ---------------------------------------------------------------------------
 * 2. The cache: one thread fetches, the others wait and share
 * ------------------------------------------------------------------------- */

static gc_error_t *copy_err(apr_pool_t *p, const gc_error_t *s)
{
    gc_error_t *e = apr_pmemdup(p, s, sizeof(*s));

    e->message = apr_pstrdup(p, s->message);
    e->code = apr_pstrdup(p, s->code);
    e->correlation_id = apr_pstrdup(p, s->correlation_id);
    return e;
}

/* Forget the cached token, wiping it. Under u->mutex (or single-threaded). */
void gc_up_forget_token(gc_upstream_t *u)
{
    gc_wipe(u->token, sizeof(u->token));
    u->token_len = 0;
}

/* Replace the cached token (n <= GC_UP_TOKEN_MAX bytes): the old one is wiped,
 * all of it, also where the new one is shorter. Under u->mutex. */
static void store_token(gc_upstream_t *u, const char *t, apr_size_t n)
{
    gc_up_forget_token(u);
    memcpy(u->token, t, n);
    u->token_len = n;
}

static int token_valid(const gc_upstream_t *u)
{
    return u->token_len && gc_up_client_now(u) < u->token_renew_at;
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
                *err = gc_up_make_err(p, GC_ERR_TIMEOUT, 0,
                                      "this request's deadline passed while "
                                      "another request was obtaining the access token");
                (*err)->deadline_cut = 1;
                (*err)->retry_after = APR_USEC_PER_SEC;
                return APR_TIMEUP;
            }
            slice = left < slice ? left : slice;
        }
        apr_thread_cond_timedwait(u->cond, u->mutex, slice);
        if (gc_up_is_cancelled(u)) {
            *err = gc_up_make_err(p, GC_ERR_CANCELLED, 0, "cancelled while waiting for a token");
            return APR_EINTR;
        }
    }
    return APR_SUCCESS;
}

/* Record (under u->mutex) the result of this thread's fetch, for the waiters
 * and for the callers that come while a failure is held. */
static void end_fetch(gc_upstream_t *u, const char *tok, apr_size_t tok_len,
                      apr_interval_time_t life, apr_time_t started, const gc_error_t *fe, int cut)
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
            u->hold_until = gc_up_client_now(u) + fe->retry_after;
        }
        if (fe->kind == GC_ERR_AUTH) {
            u->hold_until = gc_up_client_now(u) + GC_UP_AUTH_FAIL_HOLD;
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
    return gc_up_make_err(p, u->fetch_kind, u->fetch_status, apr_pstrdup(p, u->fetch_message));
}

/* Under u->mutex: what the cache answers. A valid token: APR_SUCCESS with
 * *token and *gen. A held failure, or the failure of the fetch this thread
 * waited for: APR_EGENERAL with *err. While another thread fetches, this one
 * waits for it (APR_EINTR when cancelled, APR_TIMEUP at the deadline, *err
 * set). APR_INCOMPLETE: nobody fetches, and this thread now does
 * (u->fetching set). */
static apr_status_t token_from_cache(gc_upstream_t *u, apr_pool_t *p, apr_pool_t *tp,
                                     apr_time_t deadline, const char **token, unsigned long *gen,
                                     gc_error_t **err)
{
    for (;;) {
        unsigned long seq;
        apr_status_t rv;

        if (token_valid(u)) {
            hand_out_token(u, tp, token, gen);
            return APR_SUCCESS;
        }
        if (!u->fetching && gc_up_client_now(u) < u->hold_until) {
            /* The login service refused these credentials moments ago (they
             * cannot have changed: config), or asked us to come back later:
             * answer every caller from that result meanwhile instead of
             * asking again for each incoming request. */
            *err = fetch_failure(u, p);
            if (u->fetch_kind == GC_ERR_THROTTLED) {
                (*err)->retry_after = u->hold_until - gc_up_client_now(u);
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
                                    apr_time_t deadline, const char **token, unsigned long *gen,
                                    gc_error_t **err)
{
    apr_pool_t *fp;
    apr_status_t rv;
    const char *tok = NULL;
    apr_size_t tok_len = 0;
    apr_interval_time_t life = 0;
    apr_time_t started = gc_up_client_now(u);
    gc_error_t *fe = NULL;
    int cut = 0;

    if (apr_pool_create(&fp, p) != APR_SUCCESS) {
        rv = APR_ENOMEM;
        fe = gc_up_make_err(p, GC_ERR_CONNECT, 0, "out of memory");
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
apr_status_t gc_up_get_token(gc_upstream_t *u, apr_pool_t *p, apr_pool_t *tp, apr_time_t deadline,
                             const char **token, unsigned long *gen, gc_error_t **err)
{
    apr_status_t rv;

    if (!u->conf.client_id || !*u->conf.client_id || !u->conf.client_secret
        || !*u->conf.client_secret) {
        *err = gc_up_make_err(p, GC_ERR_CONFIG, 0,
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

void gc_up_invalidate_if(gc_upstream_t *u, unsigned long gen)
{
    apr_thread_mutex_lock(u->mutex);
    if (u->token_len && u->token_gen == gen) {
        gc_up_forget_token(u);
        u->token_gen++;
    }
    apr_thread_mutex_unlock(u->mutex);
}

/* ---------------------------------------------------------------------------
 * 3. Public API and test hook of the token cache
 * ------------------------------------------------------------------------- */

void gc_upstream_invalidate_token(gc_upstream_t *u)
{
    apr_thread_mutex_lock(u->mutex);
    gc_up_forget_token(u);
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

const char *gc_upstream_test_token_storage(gc_upstream_t *u, apr_size_t *size)
{
    *size = sizeof(u->token);
    return u->token;
}
