/* The routing-weight distribution of POST /v1/admin/queues/{queueId}/weights
 * (SPEC §3.4, §5.4, §9.7), httpd-free and driven through callbacks:
 *
 *   validate the body (422 validation_failed, nothing upstream)
 *   → read the queue's members, every page (nextUri)
 *   → every requested user a member (422 validation_failed naming each)
 *   → saturation projection (409 saturation_blocked)
 *   → read each requested member's current proficiency of the weight skill,
 *     one batch the glue may run concurrently
 *   → queue read-modify-write: skillEvaluationMethod BEST (502 queue_update_failed)
 *   → each member's proficiency round(5*w, 2), one batch the glue may run
 *     concurrently (any failure: rollback, 502 member_update_failed).
 *
 * Nothing is written upstream before the queue update, and nothing after a
 * refusal. Every outcome is a gc_result_t (the glue renders it; res->doc on
 * success, the problem otherwise) plus a gc_weights_out_t saying which of
 * SPEC §3.4's statuses it is. The engine records nothing: storing the
 * distribution, the audit row, the Idempotency-Key and the WFM webhook are
 * the glue's (from the result and gc_weights_out_t).
 *
 * Decisions (SPEC leaves them open):
 *  - Sum of weights: at most 1.0 + GC_WEIGHTS_SUM_EPSILON (1e-9), so
 *    0.1 + 0.2 + 0.7 (1.0000000000000002 in binary floating point) passes.
 *  - Limits: 1..GC_WEIGHTS_MAX_MEMBERS (2000) weights a request (about
 *    4000 upstream requests, more than one request deadline fits at any sane
 *    rate budget anyway: gc_weights_estimate_requests); strategy_reference at
 *    most GC_WEIGHTS_MAX_REFERENCE characters; projected_load 0..1e9.
 *  - Validation errors are 422 (SPEC §5.4), one `errors` entry per problem:
 *    `member_weights.<userId>` for a bad id or weight (or a non-member),
 *    `member_weights` for the sum and the count, `skill_id` when neither the
 *    body nor the queue's GcmonWeightSkill names a skill, `queue_id` for a
 *    bad path id, the member's name for unknown members.
 *  - Active agents: joined members whose routing status is not OFF_QUEUE (a
 *    member without a routing status counts as active). Capacity 0 → blocked
 *    (ratio null); ratio > overflow_threshold → blocked (equal passes).
 *  - The queue PUT is skipped when the queue already evaluates BEST (nothing
 *    to write, nothing to restore). An upstream 409 (version conflict) on the
 *    PUT re-reads the queue and retries once.
 *  - Proficiency = round(5 * w, 2) (C round(): half away from zero, of 5 * w * 100), the
 *    skill's state kept (new skills "active"). applied_weights in weight
 *    units = proficiency / 5 (3 decimals).
 *  - balance_accuracy (percent, 2 decimals) =
 *        100 * (1 - Σ|requested - applied| / Σ requested),
 *    100 when every weight is 0 (Σ requested = 0).
 *  - Rollback (member_update_failed): every member whose write succeeded —
 *    and every member whose write failed ambiguously (timeout, connection,
 *    5xx, cancelled: it may have landed) — gets its old proficiency and
 *    state back in one put_skills batch; a member that had no such skill
 *    before gets a removal (item.remove = 1: the glue sends DELETE
 *    /api/v2/users/{userId}/routingskills/{skillId}). Then the queue: re-read
 *    (its version moved) and put back with the original skillEvaluationMethod
 *    (removed when the original had none), everything else as read now, so a
 *    concurrent edit of another field is not undone; one retry on 409.
 *    The problem lists `applied` (written, then rolled back or not),
 *    `failed`, `rolled_back`, `rollback_failed` (user ids) and
 *    `queue_restored`.
 *  - Read failures before any write (members, observations, proficiencies):
 *    throttling, our budget and the request deadline → gc_result_upstream's
 *    503 with Retry-After; an unknown queue (404 on the members) → 404
 *    queue_not_found; anything else → 502 projection_failed. Their
 *    gc_weights_out_t status is projection_failed.
 *  - upstream_requests counts the logical upstream requests the engine made
 *    (one per callback, one per put_skills item); retries inside the glue's
 *    gc_upstream_call are not counted.
 *  - The distribution id: req->id when the glue gives one (it may need it
 *    before, e.g. to store the Idempotency-Key), else "dist-" and 32 random
 *    hex digits made by the engine. */
#ifndef GC_WEIGHTS_H
#define GC_WEIGHTS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

#include "gc_result.h"
#include "gc_upstream.h"

#define GC_WEIGHTS_MAX_MEMBERS 2000
#define GC_WEIGHTS_SUM_EPSILON 1e-9
#define GC_WEIGHTS_MAX_REFERENCE 200
#define GC_WEIGHTS_MAX_LOAD 1e9
/* Members pages read at most (100 a page): a listing that never ends is a
 * projection failure, not a loop. */
#define GC_WEIGHTS_MAX_MEMBER_PAGES 1000
#define GC_WEIGHTS_MEMBERS_PAGE_SIZE 100

/* One queue member as GET /api/v2/routing/queues/{id}/members lists it. */
typedef struct {
    const char *user_id;
    int joined;
    const char *routing_status; /* routingStatus.status, or NULL */
    const char *name;           /* or NULL */
} gc_weights_member_t;

/* A user's entry of the weight skill (GET /api/v2/users/{id}/routingskills). */
typedef struct {
    double proficiency;
    const char *state; /* "active", "inactive", or NULL */
} gc_weights_skill_t;

/* One write of put_skills: PUT /api/v2/users/{user_id}/routingskills/{skill_id}
 * {"id":skill_id,"proficiency":…,"state":…}, or with remove set the DELETE of
 * that skill (a rollback of a skill the user did not have). */
typedef struct {
    const char *user_id;
    const char *skill_id;
    double proficiency;
    const char *state; /* never NULL for a PUT */
    int remove;
} gc_weights_write_t;

/* The outcome of one write: rv APR_SUCCESS, or err set. */
typedef struct {
    apr_status_t rv;
    gc_error_t *err;
} gc_weights_write_result_t;

/* One read of get_skills: the user's entry of the skill (present 0 when the
 * user lacks it); rv APR_SUCCESS, or err set. */
typedef struct {
    const char *user_id;
    gc_weights_skill_t skill;
    int present;
    apr_status_t rv;
    gc_error_t *err;
} gc_weights_read_t;

/* The outside world (baton first). Upstream callbacks return APR_SUCCESS or
 * set *err (the gc_upstream_call convention, deadline included). */
typedef struct gc_weights_ops {
    void *baton;
    /* Page `page` (1-based, GC_WEIGHTS_MEMBERS_PAGE_SIZE a page) of the
     * queue's members: *members an array of gc_weights_member_t (from p),
     * *more 1 when the listing has a nextUri. */
    apr_status_t (*members_page)(void *baton, apr_pool_t *p, const char *queue_id, int page,
                                 apr_array_header_t **members, int *more, gc_error_t **err);
    /* The queue's oInteracting and oWaiting counts (observations query);
     * called only without projected_load. */
    apr_status_t (*observations)(void *baton, apr_pool_t *p, const char *queue_id,
                                 double *interacting, double *waiting, gc_error_t **err);
    /* The n users' entries of skill_id (GET /api/v2/users/{id}/routingskills),
     * in any order or concurrently; fills items[i] for items[i].user_id. */
    void (*get_skills)(void *baton, apr_pool_t *p, const char *skill_id, gc_weights_read_t *items,
                       size_t n);
    /* GET the queue: *queue a new reference the engine releases. */
    apr_status_t (*get_queue)(void *baton, apr_pool_t *p, const char *queue_id, json_t **queue,
                              gc_error_t **err);
    /* PUT the full queue body back (a version conflict: err->status 409). */
    apr_status_t (*put_queue)(void *baton, apr_pool_t *p, const char *queue_id, const json_t *queue,
                              gc_error_t **err);
    /* The n writes (each after the glue's retries), in any order or
     * concurrently; results[i] for items[i]. */
    void (*put_skills)(void *baton, apr_pool_t *p, const gc_weights_write_t *items, size_t n,
                       gc_weights_write_result_t *results);
    /* Clock (NULL: apr_time_now); tests replace it. */
    apr_time_t (*now)(void *baton);
} gc_weights_ops_t;

typedef struct {
    const char *id;            /* the distribution's id, or NULL: the engine makes one */
    const char *queue_id;      /* from the path */
    const json_t *body;        /* NULL counts as {} */
    const char *default_skill; /* the queue's GcmonWeightSkill, or NULL */
} gc_weights_req_t;

typedef struct {
    const char *id;     /* the distribution's id (req->id or the one made) */
    const char *status; /* completed, validation_failed, projection_failed,
                           saturation_blocked, queue_update_failed,
                           member_update_failed */
    int upstream_requests;
    int writes; /* upstream writes made (queue and members, rollback included) */
} gc_weights_out_t;

/* Run the distribution; res (made in p) gets the 200 document of SPEC §5.4,
 * or the problem (with the extra members id, queue_id, status,
 * upstream_requests, and saturation or the rollback lists). */
void gc_weights_distribute(apr_pool_t *p, const gc_weights_ops_t *ops, const gc_weights_req_t *req,
                           gc_result_t *res, gc_weights_out_t *out);

/* GET /v1/admin/queues/{queueId}/weights[?skill_id=]: what an editor shows
 * before a distribution — every member of the queue (all pages) with its
 * current proficiency of the weight skill, and the live load — through the
 * same callbacks (members_page, observations, get_skills; nothing written).
 * res gets the 200 document
 *   {"queue_id","skill_id","members":[{"user_id","name","joined",
 *    "routing_status","active","proficiency","state","weight"}],
 *    "saturation":{"active_agents","interacting","waiting","projected_load"},
 *    "upstream_requests"}
 * (proficiency, state, weight null for a member without the skill; weight =
 * proficiency / 5), or the problem: 400 a bad queue id, 422 validation_failed
 * for a bad or missing skill (field skill_id) or a queue of more than
 * GC_WEIGHTS_MAX_MEMBERS members, 404 queue_not_found, 502
 * projection_failed, 503 throttled/budget/deadline with Retry-After. */
void gc_weights_preview(apr_pool_t *p, const gc_weights_ops_t *ops, const char *queue_id,
                        const char *skill_id, const char *default_skill, gc_result_t *res,
                        int *upstream_requests);

/* The audit row's copy of a weights request: the known members as sent
 * (numbers, null, strings up to GC_WEIGHTS_MAX_REFERENCE characters;
 * member_weights when an object of at most GC_WEIGHTS_MAX_MEMBERS members,
 * its numbers under valid user ids); anything else named, not copied
 * ("(too long)", "(not a scalar)", "(invalid)"), unknown members left out.
 * New reference. */
json_t *gc_weights_audit_request(const json_t *body);

/* Only the validation (no callback): the number of errors appended to res;
 * when there are any, res is the 422 validation_failed problem. */
int gc_weights_validate(gc_result_t *res, const char *queue_id, const json_t *body,
                        const char *default_skill);

/* The proficiency a weight is applied as: round(5 * w, 2). */
double gc_weights_proficiency(double w);

/* balance_accuracy (percent, 2 decimals) of n requested/applied pairs. */
double gc_weights_balance_accuracy(const double *requested, const double *applied, size_t n);

/* The request's canonical hash, for Idempotency-Key (the same key with
 * another hash → 422): lower-case hex SHA-256 of
 * queue_id "\n" json_dumps(body, JSON_SORT_KEYS | JSON_COMPACT) (body NULL:
 * "{}"), so member order and blanks do not matter. From p; NULL only when
 * the body cannot be serialised. */
const char *gc_weights_request_hash(apr_pool_t *p, const char *queue_id, const json_t *body);

/* Upstream requests a successful distribution of n_members weights needs at
 * most, members pages being unknown up front (n_members count as members):
 * ceil(n/100) pages (at least 1) + 1 observations + n skill reads + 2 queue
 * GET/PUT + n skill writes. The glue refuses up front (503) when the rate
 * budget cannot fit it before the request's deadline. */
int gc_weights_estimate_requests(int n_members);

/* The worst case, a 409 retry of the queue and a full rollback included:
 * the estimate + 2 (queue conflict) + n (restores) + 4 (queue restore with
 * its conflict retry). */
int gc_weights_max_requests(int n_members);

#endif
