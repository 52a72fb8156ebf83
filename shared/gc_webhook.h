/* Outbound webhooks (SPEC §2 "Outbound sync webhooks"): the configuration of
 * every target, the target table (gc_webhook_targets.h), the signature, one
 * delivery (POST) and the Slack Block Kit body of an idle alert. Queuing and
 * retrying deliveries is the outbox's (gc_outbox.h).
 *
 * Webhook URLs are secrets: they are never stored in the database, logged or
 * shown; a row names its target and the URL comes from the configuration at
 * delivery time. */
#ifndef GC_WEBHOOK_H
#define GC_WEBHOOK_H

#include <apr_pools.h>
#include <apr_time.h>

#include "gc_webhook_targets.h"

/* Outbound webhook directives. URLs and the secret are resolved values (the
 * secret syntax is handled by the directive parser). NULL: not configured.
 * Every webhook URL is a secret. */
typedef struct gc_webhook_conf {
    /* One URL per target of gc_webhook_targets.h (slack_url, status_url, …). */
#define GC_WEBHOOK_CONF_URL(name, directive, member, slack, event, label, help) const char *member;
    GC_WEBHOOK_TARGET_LIST(GC_WEBHOOK_CONF_URL)
#undef GC_WEBHOOK_CONF_URL
    const char *secret;          /* GcmonWebhookSecret: HMAC-SHA256 key */
    apr_interval_time_t max_age; /* GcmonWebhookMaxAge, default 24h */
    apr_interval_time_t timeout; /* per delivery attempt: GcmonRequestTimeout */
    const char *ca_file;         /* GcmonTLSCAFile or NULL */
} gc_webhook_conf_t;

#define GC_WEBHOOK_MAX_AGE_DEFAULT apr_time_from_sec(86400)

/* A target of gc_webhook_targets.h's list (see the meaning of each column
 * there). */
typedef struct gc_webhook_target {
    const char *name;
    const char *directive;
    apr_size_t url_offset; /* of its URL in gc_webhook_conf_t */
    int slack;
    const char *event;
    const char *label;
    const char *help;
} gc_webhook_target_t;

/* Every target, in the list's order (index: gc_webhook_target_e). */
extern const gc_webhook_target_t gc_webhook_targets[GC_WEBHOOK__COUNT];

/* A target's name, for code that queues deliveries to it (outbox rows). */
#define GC_TARGET_SLACK (gc_webhook_targets[GC_WEBHOOK_slack].name)
#define GC_TARGET_STATUS (gc_webhook_targets[GC_WEBHOOK_status].name)
#define GC_TARGET_TRACE (gc_webhook_targets[GC_WEBHOOK_trace].name)
#define GC_TARGET_WFM (gc_webhook_targets[GC_WEBHOOK_wfm].name)

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
    int status;                      /* HTTP status, 0 when no response */
    apr_interval_time_t retry_after; /* from Retry-After on 429/503, else 0 */
    const char *error;               /* why it failed, never containing the URL */
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

#endif
