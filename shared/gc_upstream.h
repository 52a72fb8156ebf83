/* The one upstream HTTP client of gcmon (libcurl): every call to Genesys Cloud
 * goes through gc_upstream_call, which takes a slot of the shared rate budget,
 * adds the bearer token (OAuth client credentials, cached per process, renewed
 * at expires_in - 60 s and once on 401), retries 429 (Retry-After, capped at
 * 180 s) and 502/503/504/connection errors (exponential backoff with jitter,
 * bounded attempts), parses error bodies, and counts everything in metrics.
 *
 * Deadline (SPEC §9.16). Upstream work done for an API request carries an
 * absolute deadline (gc_request_t.deadline; background work has none, and
 * behaves as described above). With one, gc_upstream_call never begins a wait
 * that would end after it (a retry also needs 100 ms left after its wait), and
 * cuts each attempt's timeout to the time left; when the next wait would pass
 * it, it returns at once:
 *   - a 429 whose Retry-After would pass it: GC_ERR_THROTTLED, retry_after =
 *     the server's Retry-After;
 *   - no rate-budget slot: GC_ERR_BUDGET, retry_after = when a slot frees. The
 *     wait for one is min(budget_wait or the request timeout, time left), and
 *     none at all when the next slot frees only after the deadline;
 *   - a 5xx/connection-error retry whose backoff would pass it: the last
 *     error's kind, as without a deadline (SERVER, CONNECT, TIMEOUT);
 *   - a token renewal runs under the same deadline; waiting for another
 *     thread's renewal ends at the deadline (GC_ERR_TIMEOUT);
 *   - the deadline passed before anything was sent (also before the call
 *     started): GC_ERR_TIMEOUT, no network I/O at all.
 * The message then says that the request's deadline would pass. */
#ifndef GC_UPSTREAM_H
#define GC_UPSTREAM_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

#include "gc_budget.h"
#include "gc_conf.h"
#include "gc_metrics.h"

typedef struct gc_upstream gc_upstream_t;

typedef enum {
    GC_ERR_NONE = 0,
    GC_ERR_CONFIG,    /* missing client id/secret, bad URL */
    GC_ERR_CONNECT,   /* connection refused/reset/dropped, DNS, TLS — after retries */
    GC_ERR_TIMEOUT,   /* request timeout — after retries; or the request's deadline */
    GC_ERR_THROTTLED, /* 429 beyond the retry budget (retry_after set) */
    GC_ERR_BUDGET,    /* our own rate budget had no slot in time (retry_after set) */
    GC_ERR_AUTH,      /* token request refused, or 401 after one renewal */
    GC_ERR_FORBIDDEN, /* 403: missing permission (message names it when Genesys does) */
    GC_ERR_NOT_FOUND, /* 404 */
    GC_ERR_CLIENT,    /* other 4xx */
    GC_ERR_SERVER,    /* 5xx after retries */
    GC_ERR_PROTOCOL,  /* unparseable success body where JSON was required */
    GC_ERR_CANCELLED  /* the cancel callback asked us to stop */
} gc_err_kind_e;

typedef struct gc_error {
    gc_err_kind_e kind;
    int status;                      /* last HTTP status, 0 if none */
    const char *message;             /* human readable; never contains secrets */
    const char *code;                /* Genesys error "code" when present */
    const char *correlation_id;      /* ININ-Correlation-ID of the last response */
    apr_interval_time_t retry_after; /* for THROTTLED/BUDGET (and a deadline cut): how
                                       long to wait */
    int attempts;
    int deadline_cut; /* the call stopped at its request's deadline */
} gc_error_t;

typedef struct gc_request {
    const char *op;                  /* metrics label, e.g. "users_get" */
    const char *method;              /* "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD" */
    const char *path;                /* "/api/v2/..." (joined to api_url), or an absolute
                                       http(s) URL (pre-signed downloads) */
    const char *body;                /* JSON text, or NULL */
    int no_auth;                     /* don't send the bearer token (a pre-signed link
                                       of a storage service: no rate-budget slot either) */
    apr_interval_time_t budget_wait; /* max wait for a rate-budget slot; 0 = request timeout */
    int max_attempts;                /* 0 = default (4) */
    apr_time_t deadline;             /* absolute (apr_time_now clock) end of the upstream
                                       work of an API request; 0 = none (background work) */
    const char *secret;              /* a credential inside path (a notification channel
                                       id): log lines above debug show secret_label in
                                       its place, in the path and in Genesys's message */
    const char *secret_label;
} gc_request_t;

typedef struct gc_response {
    int status;
    const char *body; /* NUL-terminated, from the call's pool */
    apr_size_t body_len;
    json_t *json;         /* parsed body or NULL; decref'd by pool cleanup */
    apr_table_t *headers; /* response headers (lower-case names) */
    const char *correlation_id;
    int attempts;
} gc_response_t;

/* Default deadline of the upstream work of one API request (SPEC §9.16). */
#define GC_DEFAULT_REQUEST_DEADLINE apr_time_from_sec(25)

/* The deadline of upstream work that may take `budget` from now (<= 0:
 * GC_DEFAULT_REQUEST_DEADLINE), for gc_request_t.deadline. */
apr_time_t gc_upstream_deadline(apr_interval_time_t budget);

/* Call once per process before threads start (child_init); idempotent. */
void gc_upstream_global_init(void);

/* budget and metrics may be NULL (unit tests). The config is copied. */
gc_upstream_t *gc_upstream_create(apr_pool_t *pool, const gc_conn_conf_t *conf, gc_budget_t *budget,
                                  gc_metrics_t *metrics);

/* Let long-running callers (the monitor thread) abort waits and retries. */
void gc_upstream_set_cancel(gc_upstream_t *u, gc_cancel_fn *cancel, void *baton);

/* Perform one logical call with the retry policy. APR_SUCCESS for a 2xx
 * response. Otherwise *err is set (from p); *resp is still set when a response
 * was received (e.g. 404), NULL otherwise. */
apr_status_t gc_upstream_call(gc_upstream_t *u, apr_pool_t *p, const gc_request_t *req,
                              gc_response_t **resp, gc_error_t **err);

/* Convenience: JSON body to text (compact) from pool p; NULL on failure. */
const char *gc_json_text(apr_pool_t *p, const json_t *j);

/* A Retry-After value: delta-seconds or an HTTP-date (against the wall clock;
 * a past date is 0), surrounding blanks allowed. 1 with *out set, or 0 when
 * absent or unparseable. Also used by the webhook client. */
int gc_retry_after_parse(const char *v, apr_interval_time_t *out);

/* Name of an error kind for logs and problem details ("throttled", …). */
const char *gc_err_kind_name(gc_err_kind_e kind);

/* "kind: message" of e from p; NULL: "the upstream call failed" (a job's
 * last error, a log line). */
const char *gc_err_text(apr_pool_t *p, const gc_error_t *e);

/* A fault of background work worth another try after a while, the client
 * having retried already: connect, timeout, throttled, budget, server and
 * auth faults, and an unknown one (NULL). */
int gc_err_transient(const gc_error_t *e);

/* Forget the cached token (tests, and after credentials change). */
void gc_upstream_invalidate_token(gc_upstream_t *u);

/* Number of token requests made by this client (tests, status). */
int gc_upstream_token_requests(gc_upstream_t *u);

#endif
