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
#include "gc_webhook_targets.h"

struct gc_store;
struct gc_metrics;

/* Outbound webhook directives. URLs and the secret are resolved values (the
 * secret syntax is handled by the directive parser). NULL: not configured.
 * Every webhook URL is a secret. */
typedef struct gc_webhook_conf {
    /* One URL per target of gc_webhook_targets.h (slack_url, status_url, …). */
#define GC_WEBHOOK_CONF_URL(name, directive, member, slack, event, label, help) \
    const char *member;
    GC_WEBHOOK_TARGET_LIST(GC_WEBHOOK_CONF_URL)
#undef GC_WEBHOOK_CONF_URL
    const char *secret;                 /* GcmonWebhookSecret: HMAC-SHA256 key */
    apr_interval_time_t max_age;        /* GcmonWebhookMaxAge, default 24h */
    apr_interval_time_t timeout;        /* per delivery attempt: GcmonRequestTimeout */
    const char *ca_file;                /* GcmonTLSCAFile or NULL */
} gc_webhook_conf_t;

#define GC_WEBHOOK_MAX_AGE_DEFAULT apr_time_from_sec(86400)

/* A target of gc_webhook_targets.h's list (see the meaning of each column
 * there). */
typedef struct gc_webhook_target {
    const char *name;
    const char *directive;
    apr_size_t url_offset;              /* of its URL in gc_webhook_conf_t */
    int slack;
    const char *event;
    const char *label;
    const char *help;
} gc_webhook_target_t;

/* Every target, in the list's order (index: gc_webhook_target_e). */
extern const gc_webhook_target_t gc_webhook_targets[GC_WEBHOOK__COUNT];

/* A target's name, for code that queues deliveries to it (outbox rows). */
#define GC_TARGET_SLACK  (gc_webhook_targets[GC_WEBHOOK_slack].name)
#define GC_TARGET_STATUS (gc_webhook_targets[GC_WEBHOOK_status].name)
#define GC_TARGET_TRACE  (gc_webhook_targets[GC_WEBHOOK_trace].name)
#define GC_TARGET_WFM    (gc_webhook_targets[GC_WEBHOOK_wfm].name)

/* The target called name, or NULL. */
const gc_webhook_target_t *gc_webhook_target(const char *name);

/* The URL configured for t, or NULL. */
const char *gc_webhook_target_url(const gc_webhook_conf_t *c, const gc_webhook_target_t *t);

/* Is any outbound webhook configured? */
int gc_webhook_any(const gc_webhook_conf_t *c);

/* The URL configured for a target, or NULL. */
const char *gc_webhook_url(const gc_webhook_conf_t *c, const char *target);

/* The X-Genesys-Event header value a target's deliveries carry ("state_change"
 * for the status webhook, SPEC §3.3), or NULL for none. */
const char *gc_webhook_event(const char *target);

/* ------------------------------------------------------------ one delivery */

/* "sha256=<64 lowercase hex>" of HMAC-SHA256(secret, body), in p. */
const char *gc_webhook_signature(apr_pool_t *p, const char *secret, const char *body,
                                 apr_size_t len);

typedef struct {
    int status;                         /* HTTP status, 0 when no response */
    apr_interval_time_t retry_after;    /* from Retry-After on 429/503, else 0 */
    const char *error;                  /* why it failed, never containing the URL */
} gc_webhook_result_t;

/* POST body (application/json) to url, signed with X-Gcmon-Signature when
 * conf->secret is set, TLS verified, http/https only, no redirects, within
 * conf->timeout. target (GC_TARGET_*) names the webhook in messages, which
 * never show the URL. APR_SUCCESS on a 2xx. Thread-safe (one curl handle per
 * call). */
apr_status_t gc_webhook_post(apr_pool_t *p, const gc_webhook_conf_t *conf, const char *target,
                             const char *url, const char *body, gc_webhook_result_t *res);

/* Slack Block Kit for an idle alert: `text` fallback, a header block, and a
 * section with the agent's name and id, state, time in state and threshold
 * (fields). user_name may be NULL (the id is shown). JSON text in p. */
const char *gc_slack_alert_body(apr_pool_t *p, const char *user_id, const char *user_name,
                                const char *state, apr_interval_time_t in_state,
                                apr_interval_time_t threshold);

/* ------------------------------------------------------------ database side */

/* Add a pending row INSIDE the caller's transaction (a gc_store__tx function,
 * see store_private.h), due now. alert_id: the gcmon_alerts row it delivers,
 * or NULL. */
apr_status_t gc_store__outbox_add(struct gc_store *s, apr_pool_t *p, const char *target,
                                  const apr_int64_t *alert_id, const char *body,
                                  apr_time_t now, const char **err);

/* The same in its own transaction (later features' callers outside a tx). */
apr_status_t gc_store_outbox_add(struct gc_store *s, apr_pool_t *p, const char *target,
                                 const apr_int64_t *alert_id, const char *body,
                                 apr_time_t now, const char **err);

typedef struct {
    apr_int64_t id;
    const char *target;
    apr_int64_t alert_id;               /* 0 when none */
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
typedef enum {
    GC_OUTBOX_DELIVERED,
    GC_OUTBOX_RETRY,
    GC_OUTBOX_FAILED
} gc_outbox_outcome_e;
apr_status_t gc_store_outbox_result(struct gc_store *s, apr_pool_t *p, apr_int64_t id,
                                    gc_outbox_outcome_e outcome, apr_time_t now,
                                    apr_time_t next_at, const char *last_error,
                                    const char **err);

/* Delete up to max finished rows (delivered or failed) done before `before`,
 * oldest first; pending rows are never touched. */
apr_status_t gc_store_outbox_prune(struct gc_store *s, apr_pool_t *p, apr_time_t before,
                                   int max, int *deleted, const char **err);

/* ------------------------------------------------------------ the delivery thread */

typedef struct gc_outbox gc_outbox_t;

/* What the holder gives the outbox thread. */
typedef struct {
    const gc_webhook_conf_t *conf;
    struct gc_metrics *metrics;         /* may be NULL */
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
    apr_interval_time_t prune_first;    /* first check after start; 0 = 60 s (tests) */
} gc_outbox_env_t;

/* Start the delivery thread (the holder, after taking the lead). */
apr_status_t gc_outbox_start(gc_outbox_t **out, apr_pool_t *p, const gc_outbox_env_t *env);

/* New rows were committed: look now instead of at the next poll (≤ 1 s). */
void gc_outbox_wake(gc_outbox_t *o);

/* Stop and join: an attempt in flight finishes (bounded by conf->timeout);
 * rows left pending stay for the next holder. */
void gc_outbox_stop(gc_outbox_t *o);

#endif
