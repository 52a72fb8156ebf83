/* The activation of a routing strategy as a durable job (SPEC §3.6, §5.6):
 * POST /v1/admin/strategies/{id}/activate sets the strategy `activating` and
 * queues a job of kind GC_STRATEGY_JOB_KIND (gc_store_strategy_activate); the
 * holder's job thread (gc_jobs.h) runs it a step at a time through
 * gc_strategy_job_step, httpd-free behind two ops tables: the Genesys calls
 * (gc_strategy_ops_t) and the strategy's store (gc_strategy_store_ops_t).
 *
 * The step (JSON text kept with the job after every step, so a new holder
 * continues where the last one stopped) holds the phase and, per target
 * queue, its state:
 *
 *   pending → saved (the full queue body as read) → applied → confirmed
 *   saved → unchanged (nothing to write: see apply)
 *   on rollback: applied | confirmed | possibly applied → restored | restore_failed
 *
 * Phases:
 *   validate  the strategy's row must still be activating by this job; the
 *             live figures (gc_strategy_read_live, skills probed) judged
 *             (gc_strategy_judge), the report stored (set_validation). Not
 *             ok → failed, nothing touched, the error naming each target's
 *             reasons.
 *   save      GET /api/v2/routing/queues/{id} of every target, each body kept
 *             in the step.
 *   apply     one queue per step: PUT the saved body with
 *             skillEvaluationMethod "ALL" when the strategy requires any
 *             skill, everything else as read (version included). A queue
 *             already evaluating ALL — or any queue when no skill is
 *             required (its method is left as it was) — needs no write:
 *             state unchanged, no PUT, nothing to confirm or restore. A 409
 *             (version conflict) re-reads the queue and PUTs the saved body
 *             with the fresh version once; a second conflict or any other
 *             failure → rollback.
 *   confirm   GET each applied queue until the change reads back (its
 *             skillEvaluationMethod is ALL and its version at least the one
 *             the PUT answered), polls GC_STRATEGY_CONFIRM_MIN doubling to
 *             GC_STRATEGY_CONFIRM_MAX, at most GC_STRATEGY_CONFIRM_LIMIT from
 *             the first poll; not read back by then (or a poll refused for
 *             good: 403, 404) → rollback. A poll's transient fault is one
 *             more poll.
 *   rollback  one queue per step, every queue that was applied (or may have
 *             been: see resume): GET it for its current version, PUT the
 *             saved body with that version; a failure is retried
 *             (GC_STRATEGY_CONFIRM_MIN doubling to GC_STRATEGY_CONFIRM_MAX, a
 *             longer Retry-After wins) up to GC_STRATEGY_RESTORE_ATTEMPTS
 *             attempts, 403/404 at once, then restore_failed. Queues never
 *             written (saved, unchanged) are not touched. Restores are not
 *             polled for read-back.
 *   settle    the outcome decided by an earlier step (kept in the step before
 *             anything is written, so a holder that dies in between settles
 *             the same way): gc_store_strategy_settle (active with
 *             activated_at, or failed with error_message), then the job ends
 *             — completed or failed — with its audit row
 *             (GC_AUDIT_STRATEGY_ACTIVATED, the job's actor) and, when
 *             GcmonWfmWebhook is set, the WFM delivery
 *             (gc_strategy_webhook_body, status "active" or "failed").
 *
 * Decisions:
 *  - Deadlines. Validation, save and apply must be done (the confirm begun)
 *    within GC_STRATEGY_ACTIVATE_TIMEOUT (10 minutes) of the activation
 *    request; past it the job rolls back (or fails untouched). Upstream
 *    faults of validate and save (after the client's own retries: 429, 5xx,
 *    timeouts, dropped connections, token failures) run the step again after
 *    a backoff (GC_STRATEGY_RETRY_MIN doubling to GC_STRATEGY_RETRY_MAX,
 *    Retry-After honoured) until then; other faults (403, 404, 4xx) fail at
 *    once. The job row has no runner deadline (deadline_at 0): the runner's
 *    "timed out" would end the job without its rollback and leave the
 *    strategy activating; every phase here is bounded instead.
 *  - Resume. A job claimed again continues from its last step (never
 *    restarts, never rolls back for having been interrupted): each step
 *    records the claim it ran under (`seen`); a claim that finds a step
 *    missing (a holder died or stopped mid-step) treats the queue that may
 *    have been in flight — the first saved queue to apply — as possibly
 *    applied: it is re-read for a fresh version before its PUT (the PUT of
 *    the saved body is idempotent) and restored on rollback. Confirm, rollback
 *    and settle are idempotent by construction.
 *  - A PUT that failed ambiguously (timeout, dropped connection, 5xx, an
 *    unreadable 2xx answer) may have landed: the queue counts as possibly
 *    applied and is restored on rollback.
 *  - Store faults (the step's own reads and writes) run the step again after
 *    the backoff; they do not end the job.
 *  - The error_message of a failed activation says what failed, then which
 *    queues were restored and which could not be (by id, with why); the job's
 *    result lists them too (`restored`, `restore_failed`).
 *  - A stop in the middle of an upstream call gives the job back
 *    (GC_JOB_GIVE_BACK); the next holder resumes it as above. */
#ifndef GC_STRATEGY_JOB_H
#define GC_STRATEGY_JOB_H

#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>

#include "gc_jobs.h"
#include "gc_store_strategy.h"
#include "gc_strategy.h"
#include "gc_strategy_calls.h"

#define GC_STRATEGY_JOB_KIND "strategy_activate"
#define GC_STRATEGY_JOB_ID_PREFIX "sact"
#define GC_STRATEGY_ACTIVATE_TIMEOUT apr_time_from_sec(600)
#define GC_STRATEGY_RETRY_MIN apr_time_from_sec(1)
#define GC_STRATEGY_RETRY_MAX apr_time_from_sec(30)
#define GC_STRATEGY_CONFIRM_MIN apr_time_from_msec(250)
#define GC_STRATEGY_CONFIRM_MAX apr_time_from_sec(5)
#define GC_STRATEGY_CONFIRM_LIMIT apr_time_from_sec(60)
#define GC_STRATEGY_RESTORE_ATTEMPTS 8

/* The strategy's store as the job needs it (gc_store_strategy.h's functions
 * over the job thread's connection; fakes in the unit tests). */
typedef struct gc_strategy_store_ops {
    void *baton;
    apr_status_t (*get)(void *baton, apr_pool_t *p, const char *id, gc_strategy_rec_t *out,
                        int *found, const char **err);
    apr_status_t (*settle)(void *baton, apr_pool_t *p, const char *id, const char *job_id,
                           const char *status, const char *error_message, apr_time_t now, int *kept,
                           const char **err);
    apr_status_t (*set_validation)(void *baton, apr_pool_t *p, const char *id,
                                   const char *validation, apr_time_t now, const char **err);
} gc_strategy_store_ops_t;

/* The store ops over the store s (gc_store_strategy_get/_settle/_set_validation). */
gc_strategy_store_ops_t gc_strategy_job_store_ops(struct gc_store *s);

typedef struct {
    const gc_strategy_ops_t *up;
    const gc_strategy_store_ops_t *store;
    int webhook; /* GcmonWfmWebhook is set: the end queues the WFM delivery */
} gc_strategy_job_env_t;

/* The job of an activation of strategy_id, submitted now by actor (every
 * field from p): id GC_STRATEGY_JOB_ID_PREFIX "-" and 32 hex digits, kind,
 * target (the strategy id), payload {"strategy_id"}, due now, no runner
 * deadline (see above). */
void gc_strategy_job_make(apr_pool_t *p, const char *strategy_id, const char *actor, apr_time_t now,
                          gc_job_t *job);

/* One step of the activation job (a gc_job_step_fn's body): `rand` in
 * [0, 1) for the jitter; now the step's time. */
void gc_strategy_job_step(apr_pool_t *p, const gc_strategy_job_env_t *env, const gc_job_t *job,
                          double rand, apr_time_t now, gc_job_step_t *out);

/* The strategy document's `activation` member from its job (new reference):
 * {"job_id","state":"queued|running|completed|failed","phase","queues":
 * [{"queue_id","state"}],"error"}. phase: null until the first step, then
 * the current one (validate, save, apply, confirm, rollback, settle); at the
 * end "done" (completed) or the phase that failed. queues: from the step or
 * the result, else the targets of s (may be NULL) as pending. */
json_t *gc_strategy_job_progress_json(const gc_job_t *job, const gc_strategy_t *s);

#endif
