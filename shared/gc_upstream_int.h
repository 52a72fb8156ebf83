/* Private to the upstream client (gc_upstream*.c): the client object, one
 * call and one attempt, and the seams between its files:
 *   gc_upstream.c          the client, helpers, the retry loop (auth, budget,
 *                          attempt record, give-up) and the public API
 *   gc_upstream_attempt.c  one HTTP exchange (transport), and what it means:
 *                          what curl reported, then what the status and body say
 *   gc_upstream_token.c    the OAuth client-credentials token cache (fetch,
 *                          wait, share: one token request per client at a time)
 * Nothing outside them includes this header. */
#ifndef GC_UPSTREAM_INT_H
#define GC_UPSTREAM_INT_H

#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <curl/curl.h>

#include "gc_upstream.h"
#include "gc_upstream_test.h"

/* ------------------------------------------------------------------ tuning */

#define GC_UP_DEFAULT_ATTEMPTS 4
#define GC_UP_MAX_BODY ((apr_size_t)32 * 1024 * 1024)
#define GC_UP_RETRY_AFTER_DEFAULT apr_time_from_sec(3)
#define GC_UP_RETRY_AFTER_MAX apr_time_from_sec(180)
#define GC_UP_BACKOFF_BASE apr_time_from_msec(250)
#define GC_UP_BACKOFF_CAP apr_time_from_sec(8)
#define GC_UP_SLICE apr_time_from_msec(100)
#define GC_UP_CONNECT_TIMEOUT_MAX apr_time_from_sec(5)
#define GC_UP_TOKEN_SKEW apr_time_from_sec(60)
#define GC_UP_TOKEN_DEFAULT_LIFE 86400
#define GC_UP_AUTH_FAIL_HOLD apr_time_from_sec(10)
#define GC_UP_EXCERPT 200
#define GC_UP_MESSAGE_MAX 600
#define GC_UP_TOKEN_OP "oauth_token"
#define GC_UP_TOKEN_MAX 8192                      /* longest access token accepted */
#define GC_UP_MIN_ATTEMPT apr_time_from_msec(100) /* least time worth a retry */

/* ---------------------------------------------- the client (gc_upstream.c) */

struct gc_upstream {
    apr_pool_t *pool;
    gc_conn_conf_t conf; /* deep copy */
    gc_budget_t *budget;
    gc_metrics_t *metrics;
    gc_cancel_fn *cancel;
    void *cancel_baton;

    /* DNS cache and TLS sessions shared by every easy handle of this client.
     * Connections are deliberately NOT shared: curl silently re-sends a
     * request on a reused connection that turns out dead, which would defeat
     * the "never re-send a non-idempotent request" rule (is_idempotent). */
    CURLSH *share;
    apr_thread_mutex_t *share_locks[CURL_LOCK_DATA_LAST];

    /* Token cache, guarded by mutex. */
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *cond;
    apr_size_t token_len;            /* 0: no token */
    char token[GC_UP_TOKEN_MAX + 1]; /* the cached token, zero-padded; wiped whenever it
                                       is replaced or forgotten, and with the pool */
    apr_time_t token_renew_at;       /* client clock */
    unsigned long token_gen;         /* bumped whenever the token changes */
    int fetching;                    /* a thread is fetching a token */
    unsigned long fetch_seq;         /* bumped when a fetch ends */
    gc_err_kind_e fetch_kind;        /* result of the last failed fetch, for waiters */
    int fetch_status;
    apr_interval_time_t fetch_retry_after;
    char fetch_message[GC_UP_MESSAGE_MAX];
    int fetch_cut;         /* it stopped at its caller's deadline: waiters
                                       with another deadline (or none) try again */
    apr_time_t hold_until; /* client clock: answer token requests from the last
                                       failure until then (refused / throttled) */
    int token_requests;

    /* Tuning (test hooks). */
    apr_interval_time_t backoff_base;
    apr_interval_time_t backoff_cap;
    apr_interval_time_t retry_after_default;
    int jitter; /* 0: each backoff is its ceiling (tests) */
    apr_size_t max_body;
    gc_upstream_clock_fn *clock;
    void *clock_baton;
};

/* The client clock (token lifetimes; the test clock when set). */
apr_time_t gc_up_client_now(const gc_upstream_t *u);

/* The cancel callback asks to stop. */
int gc_up_is_cancelled(const gc_upstream_t *u);

/* An error of kind (msg NULL: the kind's name), from p. */
gc_error_t *gc_up_make_err(apr_pool_t *p, gc_err_kind_e kind, int status, const char *msg);

/* Printable single-line text of s (len bytes), at most max bytes, with the
 * client secret and token (if not NULL) hidden. */
const char *gc_up_sanitize(apr_pool_t *p, const gc_upstream_t *u, const char *token, const char *s,
                           apr_size_t len, apr_size_t max);

/* path without its query string and fragment. */
const char *gc_up_strip_query(apr_pool_t *p, const char *path);

/* t in milliseconds, at least 1 (curl timeouts, messages). */
long gc_up_ms_of(apr_interval_time_t t);

/* -------------------------------- one call, the retry loop (gc_upstream.c) */

/* One logical call (an API call or a token request) as the retry loop runs it. */
typedef struct call {
    const char *op;
    const char *method;
    const char *url;
    const char *log_path;  /* no query string */
    const char *show_path; /* log_path for lines above debug (secret hidden) */
    const char *secret, *secret_label;
    const char *body;         /* NULL: none */
    const char *content_type; /* for the body */
    const char *basic_auth;   /* token request: "Authorization: Basic …" */
    const char *basic_b64;    /* token request: its credentials, hidden in texts */
    int token_request;
    int no_auth;
    int idempotent; /* may be re-sent after it may have arrived */
    int retry_500;
    apr_interval_time_t budget_wait;
    int max_attempts;
    apr_time_t deadline; /* 0: none (see gc_upstream.h) */
} call_t;

/* The retry loop shared by API calls and token requests: APR_SUCCESS with
 * *resp_out, or APR_EGENERAL with *err_out (and *resp_out when a response
 * came). *cut (if not NULL): it stopped because of the call's deadline. */
apr_status_t gc_up_run_call(gc_upstream_t *u, apr_pool_t *p, const call_t *c,
                            gc_response_t **resp_out, gc_error_t **err_out, int *cut);

/* ------------------------------------- one attempt (gc_upstream_attempt.c) */

/* The response body of an attempt (gc_upstream_attempt.c). */
typedef struct body_buf body_buf_t;

/* One HTTP exchange of a call, and what it left. */
typedef struct attempt {
    const gc_upstream_t *u;
    apr_pool_t *pool;
    body_buf_t *buf; /* from pool (outlives this struct on success) */
    apr_table_t *headers;
    long status; /* 0: no response */
    CURLcode cc;
    int sent; /* some request bytes may have reached the server */
    int cancelled;
    apr_interval_time_t timeout; /* the request timeout, cut to the time left before
                                       the call's deadline */
    apr_interval_time_t elapsed;
    char errbuf[CURL_ERROR_SIZE];
} attempt_t;

/* What an attempt means to the retry loop. */
typedef enum { V_SUCCESS, V_FINAL, V_RETRY, V_AUTH_RETRY } outcome_e;

typedef struct verdict {
    outcome_e outcome;
    gc_err_kind_e kind; /* for V_FINAL, and for V_RETRY when attempts run out */
    const char *message;
    const char *code;
    apr_interval_time_t delay; /* V_RETRY: -1 = exponential backoff */
    apr_interval_time_t retry_after;
} verdict_t;

/* A fresh attempt of the call, in ap, limited to timeout. */
void gc_up_attempt_init(attempt_t *at, const gc_upstream_t *u, apr_pool_t *ap,
                        apr_interval_time_t timeout);

/* Run one HTTP exchange; fills *at. auth is a complete header line or NULL. */
void gc_up_perform(const gc_upstream_t *u, const call_t *c, attempt_t *at, const char *auth);

/* The verdict on a performed attempt (messages from p). token: the credential
 * sent, hidden in messages; renewed: the token was renewed after a 401. */
verdict_t gc_up_classify(apr_pool_t *p, const gc_upstream_t *u, const call_t *c,
                         const attempt_t *at, const char *token, int renewed);

/* The response of an attempt, from p (its body stays in the attempt pool).
 * *bad_json: a JSON body did not parse. */
gc_response_t *gc_up_make_response(apr_pool_t *p, attempt_t *at, int attempts, int *bad_json);

/* --------------------------------------- token cache (gc_upstream_token.c) */

/* A valid token, copied into tp (wiped when tp goes), and its generation;
 * errors from p. Waits for (and shares) another thread's fetch. */
apr_status_t gc_up_get_token(gc_upstream_t *u, apr_pool_t *p, apr_pool_t *tp, apr_time_t deadline,
                             const char **token, unsigned long *gen, gc_error_t **err);

/* Forget the cached token if it is still generation gen (after a 401). */
void gc_up_invalidate_if(gc_upstream_t *u, unsigned long gen);

/* Forget the cached token, wiping it. Under u->mutex (or single-threaded). */
void gc_up_forget_token(gc_upstream_t *u);

#endif
