/* The outbox (SPEC §2 "Outbound sync webhooks", §3.2): every outbound webhook
 * delivery — Slack idle alerts now; status, trace and WFM webhooks later — is
 * first written to gcmon_outbox in the same transaction as the event that
 * caused it, then delivered by the holder's outbox thread with retries
 * (exponential backoff with jitter, Retry-After honoured) until a 2xx, or
 * until older than GcmonWebhookMaxAge (then failed, logged). A restart or
 * failover resumes pending rows; a row confirmed delivered is never sent again.
 *
 * Webhook URLs are secrets: they are never stored in the database, logged or
 * shown; a row names its target and the URL comes from the configuration at
 * delivery time. */
#ifndef GC_OUTBOX_H
#define GC_OUTBOX_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "gc_dbconn.h"
#include "gc_webhook.h"

struct gc_store;
struct gc_metrics;

/* ------------------------------------------------------------ database side */

/* Add a pending row INSIDE the caller's transaction (a gc_store__tx function,
 * see gc_store_int.h), due now. alert_id: the gcmon_alerts row it delivers,
 * or NULL. */
apr_status_t gc_store__outbox_add(struct gc_store *s, apr_pool_t *p, const char *target,
                                  const apr_int64_t *alert_id, const char *body, apr_time_t now,
                                  const char **err);

/* The same in its own transaction (later features' callers outside a tx). */
apr_status_t gc_store_outbox_add(struct gc_store *s, apr_pool_t *p, const char *target,
                                 const apr_int64_t *alert_id, const char *body, apr_time_t now,
                                 const char **err);

typedef struct {
    apr_int64_t id;
    const char *target;
    apr_int64_t alert_id; /* 0 when none */
    const char *body;
    apr_time_t created_at;
    apr_time_t next_at;
    int attempts;
} gc_outbox_row_t;

/* Pending rows due at `now`, oldest first, at most max. out: gc_outbox_row_t. */
apr_status_t gc_store_outbox_due(struct gc_store *s, apr_pool_t *p, apr_time_t now, int max,
                                 apr_array_header_t **out, const char **err);

/* Earliest next_at of the pending rows (0 when none) and their count. */
apr_status_t gc_store_outbox_pending(struct gc_store *s, apr_pool_t *p, apr_time_t *next_at,
                                     long *count, const char **err);

/* Record an attempt's outcome (one transaction; the alert row named by the
 * outbox row mirrors it in delivery_status/attempts/last_error):
 * - GC_OUTBOX_DELIVERED: status delivered, done_at = now;
 * - GC_OUTBOX_RETRY: attempts + 1, next_at, last_error;
 * - GC_OUTBOX_FAILED: status failed (given up), done_at = now, last_error. */
typedef enum { GC_OUTBOX_DELIVERED, GC_OUTBOX_RETRY, GC_OUTBOX_FAILED } gc_outbox_outcome_e;
apr_status_t gc_store_outbox_result(struct gc_store *s, apr_pool_t *p, apr_int64_t id,
                                    gc_outbox_outcome_e outcome, apr_time_t now, apr_time_t next_at,
                                    const char *last_error, const char **err);

/* Delete up to max finished rows (delivered or failed) done before `before`,
 * oldest first; pending rows are never touched. */
apr_status_t gc_store_outbox_prune(struct gc_store *s, apr_pool_t *p, apr_time_t before, int max,
                                   int *deleted, const char **err);

/* ------------------------------------------------------------ the delivery thread */

typedef struct gc_outbox gc_outbox_t;

/* What the holder gives the outbox thread. */
typedef struct {
    const gc_webhook_conf_t *conf;
    struct gc_metrics *metrics; /* may be NULL */
    void *baton;
    /* Open/close a database connection for the outbox thread (as the writer's). */
    gc_db_open_fn *db_open;
    gc_db_close_fn *db_close;
    /* Backoff between attempts: min (default 1 s) doubling to max (default
     * 5 min), full jitter; a Retry-After above the computed delay wins (cap 1 h). */
    apr_interval_time_t backoff_min, backoff_max;
    /* Finished rows are deleted once older than this (GcmonRetention), checked
     * hourly; 0 keeps them. */
    apr_interval_time_t retention;
    apr_interval_time_t prune_first; /* first check after start; 0 = 60 s (tests) */
    /* The holder's other housekeeping (retention of alerts, audit, …), run in
     * the same hourly round on this thread's connection; may be NULL. */
    void (*housekeeping)(void *baton, struct gc_store *s, apr_pool_t *p, apr_time_t now);
    void *housekeeping_baton;
} gc_outbox_env_t;

/* Start the delivery thread (the holder, after taking the lead). */
apr_status_t gc_outbox_start(gc_outbox_t **out, apr_pool_t *p, const gc_outbox_env_t *env);

/* New rows were committed: look now instead of at the next poll (≤ 1 s). */
void gc_outbox_wake(gc_outbox_t *o);

/* Stop and join: an attempt in flight finishes (bounded by conf->timeout);
 * rows left pending stay for the next holder. */
void gc_outbox_stop(gc_outbox_t *o);

#endif
