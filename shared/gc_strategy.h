/* Routing strategies, the pure part (SPEC §3.6, §5.6, §9.9): the body of
 * POST /v1/admin/strategies validated into a gc_strategy_t (and its
 * canonical JSON), the live validation judged from figures the caller read,
 * the rebalanced weights, the route decision (a flat route table compiled
 * from a strategy and live occupancy, then one call per decision), and the
 * WFM webhook body. No HTTP, no database, no threads, no clock: the glue
 * reads the observations (oInteracting per target queue) and the members
 * (GET …/members?skills=…), stores the strategy, its status and its id, and
 * hands the figures here.
 *
 * A strategy is gcmon's own object (the tutorial's /api/v2/routing/strategies
 * does not exist):
 *   {"name", "description"?,
 *    "selection_criteria"?: {"skills"?: [{"skill_id", "required": bool}]},
 *    "targets": [{"queue_id", "priority": int, "weight": number, "capacity": int}],
 *    "fallback": {"queue_id", "priority": int, "weight": number}}
 *
 * Decisions (SPEC leaves them open):
 *  - Structure (gc_strategy_validate): 422 validation_failed with one
 *    `errors` entry per problem, each naming its field by path
 *    (`targets[2].weight`, `selection_criteria.skills[0].skill_id`,
 *    `fallback.queue_id`; list indexes 0-based). Rules: name 1..100
 *    characters, not blank; description optional, at most 1000 characters;
 *    selection_criteria optional (no skills), skills 0..50 items, each skill
 *    id a Genesys id (gc_id.h), unique, `required` a boolean (required: no
 *    default is guessed); targets 1..GC_STRATEGY_MAX_TARGETS (50); each
 *    queue_id a Genesys id, unique (the later duplicate is the error, naming
 *    the first); priority an integer 1..99; weight a number > 0 and at most
 *    1e6; capacity an integer 1..100000; fallback required, its queue_id an
 *    id that is none of the targets' (that would be a cycle: the fallback of
 *    a saturated target routing back to it), priority 1..99, weight > 0.
 *    Members the contract does not name are refused, at every level (so a
 *    client's "status": "draft" is refused: the status is gcmon's). The
 *    fallback's priority is kept and reported but takes no part in the route
 *    decision (the fallback is used only when every target is saturated).
 *  - The canonical JSON (gc_strategy_json) has every member in the order
 *    above, description null when absent, selection_criteria always present
 *    (skills [] when none). It is what the store keeps; reading it back is
 *    gc_strategy_validate again.
 *  - Live figures come index-aligned with the targets (gc_strategy_live_t).
 *    An observation that is missing, negative or not finite counts as
 *    unobserved.
 *  - Live validation (gc_strategy_judge): a target is ok when observed, its
 *    spare capacity (capacity − oInteracting) > 0 (SPEC §3.6), and some
 *    member has every *required* skill (skills with required false are
 *    preferences, not checked; with no required skill the caller says
 *    whether the queue has a member at all). Per target the report gives
 *    spare_capacity (null when unobserved), skilled_members (null when
 *    unknown) and reasons, codes in this order: observations_unavailable,
 *    no_spare_capacity, members_unavailable, no_skilled_member. Any target
 *    not ok → 422 validation_failed, one `errors` entry per reason, field
 *    `targets[i]` (the message names the queue and the figures), and the
 *    report as the problem's extra member `validation`. The fallback is not
 *    judged (it is the overflow: being busy is its job). A read that failed
 *    upstream is normally answered by the glue (502/503) before judging; the
 *    unknown states exist for when it judges anyway.
 *  - Rebalance (gc_strategy_rebalance): each observed target's weight becomes
 *    the raw 1/(1+occupancy), occupancy = oInteracting / capacity (SPEC §9.9:
 *    not normalised, not rounded; an occupancy above 1 is kept, so the weight
 *    stays in (0, 1]). An unobserved target keeps its old weight with the
 *    reason observations_unavailable. The fallback's weight is not touched
 *    (it has no capacity to be occupied).
 *  - Route (gc_strategy_compile, gc_strategy_route): tiers are the targets'
 *    distinct priorities, lower number preferred (SPEC §9.9). A target has
 *    spare capacity when observed and capacity − oInteracting > 0. The chosen
 *    tier is the preferred one having a target with spare capacity; inside it
 *    a weighted random pick over its targets with spare capacity, by the
 *    strategy's (stored) weights: P(target) = weight / Σ weights. No such
 *    tier (everything saturated or unobserved) → the fallback, reason
 *    "fallback". The tier, its cumulative weights and the fallback are
 *    decided when compiling (the table is immutable: it does not count the
 *    interactions it routes — Genesys assigns them, the next observations
 *    show them), so a decision is a binary search over at most 50 cumulative
 *    weights: O(log targets), no allocation, no lock of its own.
 *  - The route table (gc_route_table_t) is flat and fixed-size
 *    (GC_ROUTE_TABLE_SIZE bytes, static-asserted below): no pointers,
 *    fixed-width fields, explicit padding, so it can be memcpy'd into
 *    shared memory and read by any process at any address. version says a
 *    compiled table (0: never compiled; bump GC_ROUTE_TABLE_VERSION with
 *    any layout change); generation and observed_at are the caller's (a
 *    seqlock's counter or a change number; the time of the observations).
 *  - Staleness: gc_strategy_route takes now and a max age (SPEC §9.9: 30 s,
 *    GC_STRATEGY_MAX_AGE) and says whether the view is older (or has no
 *    observation time). It still decides from it: whether to answer, refresh
 *    first or refuse is the caller's. A view from the future (clocks) has
 *    age 0.
 *  - The WFM webhook body (gc_strategy_webhook_body) is exactly
 *    {"strategy_id","name","status","targets","timestamp"}, targets as in
 *    the canonical JSON, the timestamp RFC 3339 UTC with milliseconds. */
#ifndef GC_STRATEGY_H
#define GC_STRATEGY_H

#include <stddef.h>
#include <stdint.h>

#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>

#include "gc_result.h"

#define GC_STRATEGY_MAX_TARGETS 50
#define GC_STRATEGY_MAX_SKILLS 50
#define GC_STRATEGY_MAX_NAME 100
#define GC_STRATEGY_MAX_DESCRIPTION 1000
#define GC_STRATEGY_MIN_PRIORITY 1
#define GC_STRATEGY_MAX_PRIORITY 99
#define GC_STRATEGY_MAX_WEIGHT 1e6
#define GC_STRATEGY_MAX_CAPACITY 100000
#define GC_STRATEGY_ID_SIZE 65 /* a Genesys id (1..64) and its NUL */
#define GC_STRATEGY_MAX_AGE apr_time_from_sec(30)

/* ---------------------------------------------------------------- the strategy */

typedef struct {
    const char *skill_id;
    int required;
} gc_strategy_skill_t;

typedef struct {
    const char *queue_id;
    int priority;
    double weight;
    int capacity; /* 0 for the fallback */
} gc_strategy_target_t;

typedef struct {
    const char *name;
    const char *description; /* or NULL */
    gc_strategy_skill_t *skills;
    int n_skills;
    gc_strategy_target_t *targets;
    int n_targets;
    gc_strategy_target_t fallback;
} gc_strategy_t;

/* Validate the body of POST /v1/admin/strategies (NULL counts as {}).
 * Returns the number of errors; res then holds the 422 validation_failed
 * problem. On success *out is the parsed strategy (everything from p). */
int gc_strategy_validate(apr_pool_t *p, gc_result_t *res, const json_t *body, gc_strategy_t **out);

/* The canonical JSON of a strategy (new reference). */
json_t *gc_strategy_json(const gc_strategy_t *s);

/* ---------------------------------------------------------------- live figures */

/* What the caller read for one target (index-aligned with s->targets). */
typedef struct {
    int observed;       /* interacting is known */
    double interacting; /* oInteracting of the queue's observations */
    int skilled;        /* live validation only: 1 some member has every required
                           skill, 0 none, -1 unknown */
} gc_strategy_live_t;

/* The live validation of s (live: n_targets entries). *report (new
 * reference) is the `validation` report {"ok","targets":[{"queue_id",
 * "spare_capacity","skilled_members","ok","reasons":[…]}]}. Returns the
 * number of targets not ok; then res holds the 422 problem. */
int gc_strategy_judge(gc_result_t *res, const gc_strategy_t *s, const gc_strategy_live_t *live,
                      json_t **report);

/* Rebalance: *out (from p) is a copy of s (strings shared) with the new
 * weights; *report (new reference) {"targets":[{"queue_id","previous_weight","weight","occupancy",
 * "interacting","capacity","reason"}],"rebalanced":n,"kept":m} (occupancy,
 * interacting and reason null where they do not apply). Returns the number
 * of targets rebalanced. */
int gc_strategy_rebalance(apr_pool_t *p, const gc_strategy_t *s, const gc_strategy_live_t *live,
                          gc_strategy_t **out, json_t **report);

/* The raw rebalanced weight of one target: 1 / (1 + interacting / capacity). */
double gc_strategy_weight(double interacting, int capacity);

/* ---------------------------------------------------------------- the route */

#define GC_ROUTE_TABLE_VERSION 1u

/* One target of a route table, in tier order. */
typedef struct {
    char queue_id[GC_STRATEGY_ID_SIZE];
    uint8_t spare_ok; /* observed, and spare capacity > 0 */
    uint8_t pad_[2];
    int32_t priority;
    double weight;
    double spare; /* capacity - oInteracting (0 when unobserved) */
    double cum;   /* in the chosen tier: Σ weights of its targets with spare
                     capacity up to this one; elsewhere 0 */
} gc_route_target_t;

/* A compiled route table: flat, fixed-size, no pointers (see above). */
typedef struct {
    uint32_t version;    /* GC_ROUTE_TABLE_VERSION; 0: not compiled */
    uint32_t n_targets;  /* 1..GC_STRATEGY_MAX_TARGETS */
    uint32_t pick_first; /* the chosen tier's targets with spare capacity lie */
    uint32_t pick_count; /* in targets[pick_first, +pick_count); 0: fallback */
    uint64_t generation; /* the caller's */
    int64_t observed_at; /* apr_time_t of the observations; 0: unknown */
    double pick_total;   /* Σ weights of the chosen tier's targets with spare capacity */
    int32_t pick_priority;
    int32_t fallback_priority;
    char strategy_id[GC_STRATEGY_ID_SIZE];
    char fallback_id[GC_STRATEGY_ID_SIZE];
    uint8_t pad_[6];
    gc_route_target_t targets[GC_STRATEGY_MAX_TARGETS];
} gc_route_table_t;

#define GC_ROUTE_TARGET_SIZE 96
#define GC_ROUTE_TABLE_SIZE (184 + GC_STRATEGY_MAX_TARGETS * GC_ROUTE_TARGET_SIZE) /* 4984 */
_Static_assert(sizeof(gc_route_target_t) == GC_ROUTE_TARGET_SIZE, "route target layout");
_Static_assert(offsetof(gc_route_table_t, targets) == 184, "route table header layout");
_Static_assert(sizeof(gc_route_table_t) == GC_ROUTE_TABLE_SIZE, "route table layout");

/* Compile s (with its id and live occupancy, live may be NULL: nothing
 * observed) into *out, which is overwritten whole (padding zeroed, so two
 * compilations of the same input are byte-identical). Returns 0, or -1 (out
 * zeroed, version 0) when s has no or too many targets or an id does not fit. */
int gc_strategy_compile(const gc_strategy_t *s, const char *strategy_id,
                        const gc_strategy_live_t *live, apr_time_t observed_at, uint64_t generation,
                        gc_route_table_t *out);

/* One route decision. */
typedef struct {
    char queue_id[GC_STRATEGY_ID_SIZE];
    const char *reason; /* "weighted" or "fallback" (static strings) */
    int fallback;
    int priority;            /* the chosen tier's, or the fallback's */
    int stale;               /* the view is older than max_age, or of no known time */
    apr_interval_time_t age; /* now - observed_at, at least 0 */
    uint64_t generation;     /* the table's */
} gc_strategy_route_t;

/* Decide from table t with rand01 in [0, 1) (out of range or NaN is
 * clamped). Returns 0, or -1 when t is not a compiled table (out->queue_id
 * empty). No allocation; t is only read. */
int gc_strategy_route(const gc_route_table_t *t, double rand01, apr_time_t now,
                      apr_interval_time_t max_age, gc_strategy_route_t *out);

/* The route answer {"queue_id","strategy_id","reason"} (new reference). */
json_t *gc_strategy_route_json(const gc_route_table_t *t, const gc_strategy_route_t *r);

/* ---------------------------------------------------------------- the webhook */

/* The WFM webhook body {"strategy_id","name","status","targets","timestamp"}
 * (new reference; the timestamp's text from p). */
json_t *gc_strategy_webhook_body(apr_pool_t *p, const char *strategy_id, const gc_strategy_t *s,
                                 const char *status, apr_time_t timestamp);

#endif
