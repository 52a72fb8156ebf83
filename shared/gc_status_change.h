/* The agent status-change protocol of PUT /v1/admin/agents/{userId}/status
 * (SPEC §3.3, §5.3, §9.2), httpd-free and driven through callbacks:
 *
 *   validate the body → the upstream and database are ready → resolve the
 *   status against the org's presence definitions → take the agent's lock
 *   (bounded wait) → read the presence → If-Match against gcmon's ETag →
 *   GcmonTransition rules → renew the lock → PATCH → audit row + status
 *   webhook delivery (one transaction) → release the lock.
 *
 * Every outcome, success or refusal, is a gc_result_t (the glue renders it)
 * and is recorded through ops->record exactly once. */
#ifndef GC_STATUS_CHANGE_H
#define GC_STATUS_CHANGE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

#include "gc_presence.h"
#include "gc_result.h"
#include "gc_upstream.h"

#define GC_STATUS_MAX_STATUS 100
#define GC_STATUS_MAX_REASON 500
#define GC_STATUS_MAX_WRAPUP 100
/* Longer than a change can take, so a held lock does not expire under its
 * holder; a crashed child's lock frees itself after this. */
#define GC_STATUS_LOCK_TTL apr_time_from_sec(300)
#define GC_STATUS_LOCK_POLL apr_time_from_msec(50)

/* The outside world (baton first). */
typedef struct gc_status_change_ops {
    void *baton;
    /* Is the upstream client configured and the database reachable? 0 after
     * setting the 503 problem that says which is missing. */
    int (*ready)(void *baton, gc_result_t *res);
    /* The definition named `name` (gc_presence_resolve). */
    apr_status_t (*resolve)(void *baton, apr_pool_t *p, const char *name, gc_presence_def_t *out,
                            int *found, gc_error_t **err);
    /* One attempt at the lease `name` for `holder`: *held 1 when it is ours. */
    apr_status_t (*lock)(void *baton, apr_pool_t *p, const char *name, const char *holder,
                         apr_time_t now, apr_interval_time_t ttl, int *held);
    void (*unlock)(void *baton, apr_pool_t *p, const char *name, const char *holder);
    /* GET (patch NULL) or PATCH (patch = JSON body) the user's presence. */
    apr_status_t (*presence)(void *baton, apr_pool_t *p, const char *user_id, const char *patch,
                             gc_user_presence_t *out, gc_error_t **err);
    /* The audit row of the outcome (request: what was asked; res: what came
     * of it), with the webhook delivery when outbox_target is set. */
    void (*record)(void *baton, apr_pool_t *p, const json_t *request, const gc_result_t *res,
                   const char *outbox_target, const char *outbox_body);
    /* Clock and sleep (NULL: apr_time_now, apr_sleep); tests replace them. */
    apr_time_t (*now)(void *baton);
    void (*sleep)(void *baton, apr_interval_time_t d);
} gc_status_change_ops_t;

typedef struct {
    const char *user_id;  /* from the path */
    const json_t *body;   /* NULL counts as {} */
    const char *if_match; /* NULL: none */
    const char *actor;
    const apr_array_header_t *transitions; /* gc_transition_t; NULL or empty: any */
    int webhook;                           /* queue the status webhook on success */
    const char *holder;                    /* this change's unique lock holder id */
    apr_interval_time_t lock_wait;         /* how long to wait for a busy agent */
    apr_time_t deadline;                   /* 0: none; no wait goes past it */
} gc_status_change_req_t;

/* What the glue measures (gcmon_state_update_latency_seconds{status,result}). */
typedef struct {
    const char *metric_status; /* the target presence, or "other" */
    const char *metric_result; /* success, invalid, not_found, throttled,
                                               upstream_error, precondition_failed,
                                               not_allowed, other */
} gc_status_change_out_t;

/* Run the protocol; res (made in p) gets the 200 document with res->etag,
 * or the problem. */
void gc_status_change(apr_pool_t *p, const gc_status_change_ops_t *ops,
                      const gc_status_change_req_t *req, gc_result_t *res,
                      gc_status_change_out_t *out);

/* The audit row's copy of a status request: the known members as sent
 * (scalars; oversize or structured values named, not copied) and If-Match.
 * Never headers or credentials. New reference. */
json_t *gc_status_change_audit_request(const json_t *body, const char *if_match);

#endif
