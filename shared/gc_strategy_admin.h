/* The routing strategies' admin protocol (SPEC §3.6, §5.6) over the store
 * (gc_store_strategy.h) and the upstream calls (gc_strategy_calls.h), for
 * the admin API (mod_gcmon_api_strategies.c) and the holder's periodic
 * rebalance (GcmonStrategyRebalance, actor "gcmon"): the live validation of
 * a new strategy, the rebalance of a stored one, the latency figures, the
 * Genesys audit entries of its queues and the merged audit trail. No
 * request_rec: each outcome is a gc_result_t the glue renders.
 *
 * Decisions:
 *  - Live validation (gc_strategy_admin_check): a target queue Genesys
 *    does not know (its members answer 404) is a 422 validation_failed
 *    naming targets[i] (reason queue_not_found); throttling, our budget and
 *    the request's deadline → 503 with Retry-After; any other upstream
 *    failure → 502 (gc_result_upstream); else gc_strategy_judge.
 *  - Rebalance (gc_strategy_admin_rebalance): refused while activating
 *    (409 strategy_activating); observations read (nothing else), weights
 *    from gc_strategy_rebalance; when no target could be observed nothing
 *    is written (502 observations_unavailable); else the new body is stored
 *    fenced by the revision read (a change meanwhile → 409
 *    strategy_changed), with its audit row (strategy_rebalance, the actor)
 *    and, when WFM is configured, the WFM webhook delivery, in one
 *    transaction.
 *  - Latency interval: "<start>/<end>", both RFC 3339 (ISO 8601 durations
 *    are not taken), end after start, at most GC_STRATEGY_ADMIN_MAX_INTERVAL
 *    (31 days); anything else is refused, never clamped.
 *  - Latency figures per target: offered (nOffered), answered (tAnswered's
 *    count), wait_ms and answer_ms {avg, max, count} (avg = sum / count);
 *    a target without data has offered 0, answered 0 and {avg: null,
 *    max: null, count: 0}.
 *  - Genesys audits: the asynchronous query (serviceName Routing, an
 *    EntityId filter per target queue, newest first), polled 200 ms after
 *    the submission, then with the wait doubling (at most 3.2 s); a wait
 *    that would pass the deadline → 503 upstream_deadline with
 *    Retry-After; Failed or Cancelled → 502 upstream_audit_failed; then
 *    at most GC_STRATEGY_ADMIN_AUDIT_PAGES pages of results (more:
 *    *truncated).
 *  - Entries: gcmon's {"source":"gcmon","id","at","actor","actor_source",
 *    "action","target","request","result","status","latency_ms"};
 *    Genesys's {"source":"genesys","id","at","actor","action","entity":
 *    {"id","type","name"},"changes","status"} — actor the user's name, else
 *    its id, else "client:<OAuth client id>", else null; changes the
 *    propertyChanges [{"property","old","new"}] (absent members left out).
 *    Merged newest first by `at` (ties: gcmon first). */
#ifndef GC_STRATEGY_ADMIN_H
#define GC_STRATEGY_ADMIN_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

#include "gc_result.h"
#include "gc_store_strategy.h"
#include "gc_strategy.h"
#include "gc_strategy_calls.h"

#define GC_STRATEGY_ADMIN_MAX_INTERVAL apr_time_from_sec(31 * 86400)
#define GC_STRATEGY_ADMIN_AUDIT_PAGES 10
#define GC_STRATEGY_ADMIN_POLL_FIRST apr_time_from_msec(200)
#define GC_STRATEGY_ADMIN_POLL_MAX apr_time_from_msec(3200)

/* The live validation of s. 0: ok, *report (new reference) the `validation`
 * report; else res holds the problem (422 with the report as `validation`,
 * or the upstream one) and *report is NULL or the report (new reference). */
int gc_strategy_admin_check(apr_pool_t *p, const gc_strategy_ops_t *ops, const gc_strategy_t *s,
                            gc_result_t *res, json_t **report);

/* The stored strategy of rec, parsed (its body); NULL when unreadable. */
gc_strategy_t *gc_strategy_admin_parse(apr_pool_t *p, const gc_strategy_rec_t *rec);

/* Rebalance the stored strategy rec (see above); started: when the work
 * began (rebalanced_at, the webhook's timestamp, the audit row's latency);
 * wfm: GcmonWfmWebhook is set. res: 200 {"strategy_id","targets":[report
 * rows],"rebalanced","kept","revision","rebalanced_at"}, or the problem (404
 * strategy_not_found, 409, 502/503 upstream, 500). Nothing is audited unless
 * it was written: the glue audits a refusal. */
void gc_strategy_admin_rebalance(apr_pool_t *p, struct gc_store *st, const gc_strategy_ops_t *ops,
                                 const gc_strategy_rec_t *rec, const char *actor,
                                 const char *actor_source, apr_time_t started, int wfm,
                                 gc_result_t *res);

/* Parse an interval "<start>/<end>": 0, or -1 with *why (static text). */
int gc_strategy_admin_interval(const char *text, apr_time_t *start, apr_time_t *end,
                               const char **why);

/* The latency figures of s's targets over [start, end): res 200
 * {"strategy_id","interval","targets":[…]} or the upstream problem. */
void gc_strategy_admin_latency(apr_pool_t *p, const gc_strategy_ops_t *ops, const char *strategy_id,
                               const gc_strategy_t *s, apr_time_t start, apr_time_t end,
                               gc_result_t *res);

/* The Genesys audit entries of s's target queues over [from, to) (see
 * above): APR_SUCCESS with *entries (new reference, entries as above,
 * newest first) and *truncated, or an error with the problem in res. */
apr_status_t gc_strategy_admin_upstream_audit(apr_pool_t *p, const gc_strategy_ops_t *ops,
                                              const gc_strategy_t *s, apr_time_t from,
                                              apr_time_t to, apr_time_t deadline, json_t **entries,
                                              int *truncated, gc_result_t *res);

/* One gcmon audit row as an entry (new reference). */
json_t *gc_strategy_admin_audit_entry(apr_pool_t *p, const gc_audit_rec_t *a);

/* gcmon's entries and Genesys's (arrays, either may be NULL) merged newest
 * first (new reference; the inputs are not changed). */
json_t *gc_strategy_admin_audit_merge(const json_t *gcmon, const json_t *genesys);

#endif
