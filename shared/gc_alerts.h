/* Idle alerts (SPEC §3.2): an agent staying in a configured state for a
 * threshold raises an alert within 1 s of the crossing, once per episode (or
 * every `repeat`), never for an agent who left the state before, and never
 * twice across restarts or failovers — the alert's identity (user, state,
 * episode start, seq) is UNIQUE in the database. Leaving the state clears it.
 *
 * Two halves:
 * - gc_alerts_t: the in-memory timer structure of the holder (one min-heap of
 *   due times for every agent, O(log n) per change), fed with every agent's
 *   current (state, since) and asked for what is due. No database, no clock:
 *   unit-testable alone.
 * - gc_store_alert_*: the database side, each one transaction. */
#ifndef GC_ALERTS_H
#define GC_ALERTS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

struct gc_store;

/* One GcmonIdleAlert directive. */
typedef struct {
    const char *state;             /* a gc_state_valid() state name */
    apr_interval_time_t threshold; /* > 0 */
    apr_interval_time_t repeat;    /* 0: once per episode */
} gc_alert_rule_t;

/* The defaults when no GcmonIdleAlert is configured: Available 15m, IDLE 15m. */
apr_array_header_t *gc_alert_rules_default(apr_pool_t *p);

/* ------------------------------------------------------------ timer structure */

typedef struct gc_alerts gc_alerts_t;

/* rules: gc_alert_rule_t, at most one per state (a later rule for the same
 * state replaces the earlier). The engine keeps its memory in its own pool
 * under p; it is bounded by the number of agents. */
gc_alerts_t *gc_alerts_create(apr_pool_t *p, const apr_array_header_t *rules);

/* An agent's current state and the start of that state (its episode). The
 * same (state, since) again is a no-op; a different since or state starts a
 * new episode (any pending timer is replaced); a state without a rule cancels
 * the agent's timer. Observations older than the known since are ignored. */
void gc_alerts_observe(gc_alerts_t *a, const char *user_id, const char *state, apr_time_t since);

/* Forget an agent (no longer monitored). */
void gc_alerts_forget(gc_alerts_t *a, const char *user_id);

/* When the next alert is due (0 when nothing is scheduled). */
apr_time_t gc_alerts_next_due(const gc_alerts_t *a);

/* One alert that is due. Strings live until the next call on the engine. */
typedef struct {
    const char *user_id;
    const char *state;
    apr_time_t episode_at; /* the agent's since */
    int seq;               /* 0 = first alert of the episode, n = n-th repeat */
    apr_interval_time_t threshold;
    apr_time_t due_at; /* episode_at + threshold + seq * repeat */
} gc_alert_due_t;

/* Take up to max alerts due at `now`, earliest first. Each taken entry is
 * rescheduled for its next repeat (or dropped when the rule has none). An
 * episode that began long ago (e.g. a new holder's start) yields only its
 * latest due seq, not every repeat it missed. Returns the number written. */
int gc_alerts_take_due(gc_alerts_t *a, apr_time_t now, gc_alert_due_t *out, int max);

/* Number of agents with a scheduled timer (tests, status). */
int gc_alerts_scheduled(const gc_alerts_t *a);

/* ------------------------------------------------------------ database side */

/* Every agent's (user_id, state, since) from the current-state table, to seed
 * the engine when a holder starts. out: gc_alert_agent_t. */
typedef struct {
    const char *user_id;
    const char *state;
    apr_time_t since;
} gc_alert_agent_t;
apr_status_t gc_store_alert_agents(struct gc_store *s, apr_pool_t *p, apr_array_header_t **out,
                                   const char **err);

/* Raise alert `d` in one transaction, only if the agent's current row still
 * shows d->state since d->episode_at (else *result = GC_ALERT_MOVED: the
 * caller re-reads the agent and observes it again). The alert row's UNIQUE
 * identity makes a second raise a no-op (GC_ALERT_EXISTS). When raised and
 * outbox_body is not NULL, an outbox row for target "slack" carrying the
 * alert's id is written in the same transaction (gc_outbox.h); with NULL the
 * alert's delivery status is "disabled". *alert_id gets the new row's id. */
typedef enum { GC_ALERT_RAISED, GC_ALERT_EXISTS, GC_ALERT_MOVED } gc_alert_result_e;
apr_status_t gc_store_alert_raise(struct gc_store *s, apr_pool_t *p, const gc_alert_due_t *d,
                                  const char *user_name, const char *outbox_body, apr_time_t now,
                                  gc_alert_result_e *result, apr_int64_t *alert_id,
                                  const char **err);

/* Clear (cleared_at = now) every open alert whose agent is no longer in the
 * alert's state episode. *cleared = number of alerts cleared. */
apr_status_t gc_store_alerts_clear(struct gc_store *s, apr_pool_t *p, apr_time_t now, int *cleared,
                                   const char **err);

#endif
