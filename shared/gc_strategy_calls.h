/* The Genesys Cloud calls of routing strategies (SPEC §3.6, §4.4) behind one
 * ops table, so the strategy's protocol (live validation, activation,
 * rebalance, the holder's observations) is unit-tested with fakes and runs
 * over the upstream client in httpd: the queue observations, the
 * skilled-member probe, the queue read-modify-write. Also the `live` JSON
 * the store keeps for the route tables. */
#ifndef GC_STRATEGY_CALLS_H
#define GC_STRATEGY_CALLS_H

#include <apr_pools.h>
#include <jansson.h>

#include "gc_strategy.h"
#include "gc_upstream.h"

/* One duration metric of a queue's conversations over an interval. */
typedef struct {
    int has; /* the answer had the metric */
    double count, sum, max;
} gc_strategy_stat_t;

/* A queue's conversation figures over an interval (the latency endpoint). */
typedef struct {
    int has_data;              /* the answer had a group for the queue */
    double offered;            /* nOffered: count */
    gc_strategy_stat_t wait;   /* tWait (ms) */
    gc_strategy_stat_t answer; /* tAnswered (ms): its count is the answered */
} gc_strategy_latency_t;

typedef struct gc_strategy_ops {
    void *baton;
    /* POST /api/v2/analytics/queues/observations/query over the n queues in
     * one call (metric oInteracting): live[i].observed and .interacting for
     * each queue the answer has; the others are left unobserved. */
    apr_status_t (*observe)(void *baton, apr_pool_t *p, const char *const *queue_ids, int n,
                            gc_strategy_live_t *live, gc_error_t **err);
    /* GET /api/v2/routing/queues/{id}/members?pageSize=1&skills=… (n_skills
     * 0: no filter): *any 1 when at least one member matches. A 404 (unknown
     * queue) is an error of kind GC_ERR_NOT_FOUND (status 404). */
    apr_status_t (*skilled)(void *baton, apr_pool_t *p, const char *queue_id,
                            const char *const *skill_ids, int n_skills, int *any, gc_error_t **err);
    /* GET /api/v2/routing/queues/{id}: *queue (new reference). */
    apr_status_t (*queue_get)(void *baton, apr_pool_t *p, const char *queue_id, json_t **queue,
                              gc_error_t **err);
    /* PUT /api/v2/routing/queues/{id} with the full body: *answer (new
     * reference, may be NULL). A version conflict is GC_ERR_CLIENT, status 409. */
    apr_status_t (*queue_put)(void *baton, apr_pool_t *p, const char *queue_id, const json_t *queue,
                              json_t **answer, gc_error_t **err);
    /* --- the admin API's reads (appended; NULL where unused) --- */
    /* POST /api/v2/analytics/conversations/aggregates/query over interval
     * ("<start>/<end>"), groupBy queueId, filtered on the n queues, metrics
     * tWait, tAnswered, nOffered: out[i] (zeroed here) for each queue the
     * answer has; an answer without results is no data, not an error. */
    apr_status_t (*aggregates)(void *baton, apr_pool_t *p, const char *interval,
                               const char *const *queue_ids, int n, gc_strategy_latency_t *out,
                               gc_error_t **err);
    /* POST /api/v2/audits/query (serviceName Routing, an EntityId filter per
     * queue, newest first): *query_id and its first *state. */
    apr_status_t (*audit_submit)(void *baton, apr_pool_t *p, const char *interval,
                                 const char *const *queue_ids, int n, const char **query_id,
                                 const char **state, gc_error_t **err);
    /* GET /api/v2/audits/query/{id}: *state (Queued, Running, Succeeded,
     * Failed, Cancelled). */
    apr_status_t (*audit_poll)(void *baton, apr_pool_t *p, const char *query_id, const char **state,
                               gc_error_t **err);
    /* GET /api/v2/audits/query/{id}/results?pageSize=…&expand=user[&cursor=]:
     * *entities (new reference, an array of AuditLogMessage) and *next, the
     * next page's cursor or NULL at the end. */
    apr_status_t (*audit_results)(void *baton, apr_pool_t *p, const char *query_id,
                                  const char *cursor, json_t **entities, const char **next,
                                  gc_error_t **err);
} gc_strategy_ops_t;

/* The audit results page size asked of Genesys (its maximum is 500). */
#define GC_STRATEGY_AUDIT_PAGE 100

/* The ops over the upstream client up (its retries, budget and, when set,
 * the request's deadline apply to each call). The baton points into p.
 * gc_strategy_calls_ops is background work (no deadline); _until carries an
 * API request's deadline (gc_request_t.deadline; 0: none), the wait for a
 * rate-budget slot lasting at most until then. */
gc_strategy_ops_t gc_strategy_calls_ops(apr_pool_t *p, gc_upstream_t *up);
gc_strategy_ops_t gc_strategy_calls_ops_until(apr_pool_t *p, gc_upstream_t *up,
                                              apr_time_t deadline);

/* The live figures of s (live: s->n_targets entries, zeroed here, skilled
 * -1 until probed): one
 * observations query for every target, then, when want_skills, the
 * skilled-member probe of each target (every required skill; none required:
 * any member). Unobserved targets stay unobserved; a failed call ends it
 * with *err (the figures read so far are kept). */
apr_status_t gc_strategy_read_live(apr_pool_t *p, const gc_strategy_ops_t *ops,
                                   const gc_strategy_t *s, int want_skills,
                                   gc_strategy_live_t *live, gc_error_t **err);

/* The store's `live` JSON {"targets":[{"queue_id","interacting":n|null}]}
 * (text from p), and back: index-aligned with s->targets by queue_id; a
 * target missing from the text, or unreadable text, is unobserved. */
char *gc_strategy_live_json(apr_pool_t *p, const gc_strategy_t *s, const gc_strategy_live_t *live);
void gc_strategy_live_parse(const char *text, const gc_strategy_t *s, gc_strategy_live_t *live);

#endif
