/* gcmon core: the activation of a routing strategy as a durable job
 * (gc_strategy_job.h). */
#include <string.h>

#include <apr_strings.h>

#include "gc_backoff.h"
#include "gc_id.h"
#include "gc_log.h"
#include "gc_strategy_job.h"
#include "gc_webhook.h"

/* Queue states (the step's and the activation member's). */
#define Q_PENDING "pending"
#define Q_SAVED "saved"
#define Q_UNCHANGED "unchanged"
#define Q_APPLIED "applied"
#define Q_CONFIRMED "confirmed"
#define Q_RESTORED "restored"
#define Q_RESTORE_FAILED "restore_failed"

#define METHOD_KEY "skillEvaluationMethod"
#define METHOD_ALL "ALL"

typedef struct {
    apr_pool_t *p;
    const gc_strategy_job_env_t *env;
    const gc_job_t *job;
    gc_job_step_t *out;
    double rand;
    apr_time_t now;
    const char *strategy_id;
    json_t *step;   /* the progress (owned) */
    json_t *queues; /* step's "queues" (borrowed) */
    int resumed;    /* a step of this job was lost since the last one written */
} run_t;

/* ---------------------------------------------------------------- helpers */

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* A failed write that may still have landed upstream. */
static int ambiguous(const gc_error_t *e)
{
    if (!e) {
        return 1;
    }
    switch (e->kind) {
    case GC_ERR_CONNECT:
    case GC_ERR_TIMEOUT:
    case GC_ERR_SERVER:
    case GC_ERR_PROTOCOL:
    case GC_ERR_CANCELLED: return 1;
    default: return 0;
    }
}

static int cancelled(const gc_error_t *e)
{
    return e && e->kind == GC_ERR_CANCELLED;
}

static int conflict(const gc_error_t *e)
{
    return e && e->status == 409;
}

static int refused_for_good(const gc_error_t *e)
{
    return e
           && (e->kind == GC_ERR_NOT_FOUND || e->kind == GC_ERR_FORBIDDEN || e->status == 404
               || e->status == 403);
}

static apr_time_t activate_until(const run_t *r)
{
    return r->job->created_at + GC_STRATEGY_ACTIVATE_TIMEOUT;
}

static void set_phase(run_t *r, const char *phase)
{
    json_object_set_new(r->step, "phase", json_string(phase));
    json_object_set_new(r->step, "failures", json_integer(0));
}

/* Run again at `at` with the progress so far. */
static void again_at(run_t *r, apr_time_t at, const char *error)
{
    json_object_set_new(r->step, "seen", json_integer(r->job->attempts));
    r->out->outcome = GC_JOB_AGAIN;
    r->out->step = gc_json_text(r->p, r->step);
    r->out->next_run_at = at > r->now ? at : r->now;
    r->out->error = error;
}

/* The backoff delay after `failures` (gc_backoff_delay: min doubling to
 * max, jittered by rand), a longer Retry-After winning. */
static apr_interval_time_t delay(const run_t *r, apr_interval_time_t min, apr_interval_time_t max,
                                 int failures, apr_interval_time_t retry_after)
{
    apr_interval_time_t d = gc_backoff_delay(min, max, failures > 0 ? failures : 1, r->rand);

    return retry_after > d ? retry_after : d;
}

static json_t *queue_at(const run_t *r, size_t i)
{
    return json_array_get(r->queues, i);
}

static const char *qstate(const json_t *q)
{
    return str(q, "state");
}

static void set_qstate(json_t *q, const char *state)
{
    json_object_set_new(q, "state", json_string(state));
}

/* Written upstream, or maybe: to be restored on rollback. */
static int touched(const json_t *q)
{
    const char *s = qstate(q);

    return s
           && (!strcmp(s, Q_APPLIED) || !strcmp(s, Q_CONFIRMED)
               || (!strcmp(s, Q_SAVED) && json_is_true(json_object_get(q, "maybe"))));
}

static int any_touched(const run_t *r)
{
    size_t i;

    for (i = 0; i < json_array_size(r->queues); i++) {
        if (touched(queue_at(r, i))) {
            return 1;
        }
    }
    return 0;
}

/* The comma-separated ids of the queues in `state`, or NULL when none. */
static const char *ids_in(const run_t *r, const char *state)
{
    const char *list = NULL;
    size_t i;

    for (i = 0; i < json_array_size(r->queues); i++) {
        const json_t *q = queue_at(r, i);
        if (qstate(q) && !strcmp(qstate(q), state)) {
            list =
                list ? apr_pstrcat(r->p, list, ", ", str(q, "queue_id"), NULL) : str(q, "queue_id");
        }
    }
    return list;
}

/* ---------------------------------------------------------------- the end */

/* Decide the outcome: kept in the step first (phase settle), written by the
 * next step, so a holder dying in between settles the same way. A failure
 * remembers the phase that failed (rollback set it already). */
static void decide(run_t *r, const char *status, const char *error)
{
    if (strcmp(status, GC_STRATEGY_ACTIVE) && !str(r->step, "failed_phase")) {
        json_object_set_new(r->step, "failed_phase", json_string(str(r->step, "phase")));
    }
    set_phase(r, "settle");
    json_object_set_new(r->step, "outcome", json_string(status));
    json_object_set_new(r->step, "error", error ? json_string(error) : json_null());
    again_at(r, r->now, NULL);
}

/* Fail before anything was written upstream. */
static void fail_untouched(run_t *r, const char *error)
{
    decide(r, GC_STRATEGY_FAILED, error);
}

static json_t *queue_summary(const run_t *r)
{
    json_t *list = json_array();
    size_t i;

    for (i = 0; i < json_array_size(r->queues); i++) {
        const json_t *q = queue_at(r, i);
        json_array_append_new(
            list, json_pack("{s:s?, s:s?}", "queue_id", str(q, "queue_id"), "state", qstate(q)));
    }
    return list;
}

static json_t *ids_json(const run_t *r, const char *state)
{
    json_t *list = json_array();
    size_t i;

    for (i = 0; i < json_array_size(r->queues); i++) {
        const json_t *q = queue_at(r, i);
        if (qstate(q) && !strcmp(qstate(q), state)) {
            json_array_append_new(list, json_string(str(q, "queue_id")));
        }
    }
    return list;
}

/* The job's end: result, audit row and WFM delivery. s may be NULL (the
 * strategy could not be read: no delivery). */
static void finish(run_t *r, const gc_strategy_t *s, const char *status, const char *error)
{
    int ok = !strcmp(status, GC_STRATEGY_ACTIVE);
    json_t *result, *hook;

    result =
        json_pack("{s:s, s:s, s:O?, s:o, s:o, s:o, s:s?}", "strategy_id", r->strategy_id, "status",
                  status, "failed_phase", ok ? NULL : json_object_get(r->step, "failed_phase"),
                  "queues", queue_summary(r), "restored", ids_json(r, Q_RESTORED), "restore_failed",
                  ids_json(r, Q_RESTORE_FAILED), "error", error);
    if (!ok && !json_object_get(result, "failed_phase")) {
        json_object_set_new(result, "failed_phase", json_null());
    }
    if (!json_object_get(result, "error")) {
        json_object_set_new(result, "error", json_null());
    }
    r->out->outcome = ok ? GC_JOB_DONE : GC_JOB_FAILED;
    r->out->result = gc_json_text(r->p, result);
    r->out->error = ok ? NULL : (error ? error : "the activation failed");
    r->out->audit_action = GC_AUDIT_STRATEGY_ACTIVATED;
    r->out->audit_result = r->out->result;
    if (r->env->webhook && s) {
        hook = gc_strategy_webhook_body(r->p, r->strategy_id, s, status, r->now);
        if (hook) {
            r->out->outbox_target = GC_TARGET_WFM;
            r->out->outbox_body = gc_json_text(r->p, hook);
            json_decref(hook);
        }
    }
    json_decref(result);
}

/* A store fault: the same step again after the backoff. */
static void store_fault(run_t *r, const char *doing, const char *err)
{
    json_int_t failures = json_integer_value(json_object_get(r->step, "failures")) + 1;
    const char *why = apr_psprintf(r->p, "%s: %s", doing, err ? err : "database error");

    json_object_set_new(r->step, "failures", json_integer(failures));
    gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
           GCMON_LOGNO(870) "strategy %s activation %s: %s (attempt %d; retrying)", r->strategy_id,
           r->job->id, why, (int)failures);
    again_at(r, r->now + delay(r, GC_STRATEGY_RETRY_MIN, GC_STRATEGY_RETRY_MAX, (int)failures, 0),
             why);
}

/* The strategy's row and its parsed body: 1, or 0 after the step's outcome
 * was set (a store fault: again; gone or unreadable: *gone set). */
static int load_strategy(run_t *r, gc_strategy_rec_t *rec, gc_strategy_t **s, int *gone)
{
    const gc_strategy_store_ops_t *st = r->env->store;
    const char *err = NULL;
    gc_result_t *res;
    json_t *body;
    int found = 0;

    *gone = 0;
    *s = NULL;
    memset(rec, 0, sizeof(*rec));
    if (st->get(st->baton, r->p, r->strategy_id, rec, &found, &err) != APR_SUCCESS) {
        store_fault(r, "reading the strategy", err);
        return 0;
    }
    if (!found) {
        *gone = 1;
        return 1;
    }
    body = rec->body ? json_loads(rec->body, 0, NULL) : NULL;
    res = gc_result_make(r->p);
    if (!body || gc_strategy_validate(r->p, res, body, s) != 0) {
        *s = NULL;
    }
    json_decref(body);
    return 1;
}

static void settle(run_t *r)
{
    const gc_strategy_store_ops_t *st = r->env->store;
    /* copies: the step's JSON ends with this step */
    const char *status = apr_pstrdup(r->p, str(r->step, "outcome"));
    const char *error = apr_pstrdup(r->p, str(r->step, "error"));
    const char *err = NULL;
    gc_strategy_rec_t rec;
    gc_strategy_t *s = NULL;
    int kept = 0, gone = 0;

    if (!status || (strcmp(status, GC_STRATEGY_ACTIVE) && strcmp(status, GC_STRATEGY_FAILED))) {
        status = GC_STRATEGY_FAILED;
        error = "the activation's progress is unreadable";
    }
    if (!load_strategy(r, &rec, &s, &gone)) {
        return;
    }
    if (gone) {
        finish(r, NULL, GC_STRATEGY_FAILED, "the strategy no longer exists");
        return;
    }
    if (st->settle(st->baton, r->p, r->strategy_id, r->job->id, status, error, r->now, &kept, &err)
        != APR_SUCCESS) {
        store_fault(r, "settling the strategy", err);
        return;
    }
    if (!kept
        && !(rec.job_id && !strcmp(rec.job_id, r->job->id) && rec.status
             && !strcmp(rec.status, status))) {
        /* Not this job's activation any more (and not settled by it before
         * a crash either): say so, leave the row alone. */
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(871) "strategy %s activation %s ended %s, but the strategy is %s "
                                "(job %s) now: its row was left as it is",
               r->strategy_id, r->job->id, status, rec.status ? rec.status : "?",
               rec.job_id ? rec.job_id : "none");
        error = apr_psprintf(r->p, "%s%sthe strategy was no longer activating by this job",
                             error ? error : "", error ? "; " : "");
        finish(r, s, GC_STRATEGY_FAILED, error);
        return;
    }
    gc_log(GC_LOG_MARK, strcmp(status, GC_STRATEGY_ACTIVE) ? GC_LOG_WARNING : GC_LOG_INFO, 0,
           GCMON_LOGNO(872) "strategy %s activation %s: %s%s%s", r->strategy_id, r->job->id, status,
           error ? ": " : "", error ? error : "");
    finish(r, s, status, error);
}

/* ---------------------------------------------------------------- rollback */

static void rollback_step(run_t *r);

/* Something failed after a write (or maybe one): restore what was touched. */
static void rollback(run_t *r, const char *reason)
{
    json_object_set_new(r->step, "failed_phase", json_string(str(r->step, "phase")));
    json_object_set_new(r->step, "reason", json_string(reason));
    set_phase(r, "rollback");
    gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
           GCMON_LOGNO(873) "strategy %s activation %s: %s; restoring the queues", r->strategy_id,
           r->job->id, reason);
    rollback_step(r);
}

static void rollback_done(run_t *r)
{
    const char *reason = str(r->step, "reason"), *restored = ids_in(r, Q_RESTORED);
    const char *error = reason ? reason : "the activation failed";
    size_t i;

    if (restored) {
        error = apr_psprintf(r->p, "%s; restored queue(s) %s", error, restored);
    }
    for (i = 0; i < json_array_size(r->queues); i++) {
        const json_t *q = queue_at(r, i);
        if (qstate(q) && !strcmp(qstate(q), Q_RESTORE_FAILED)) {
            error = apr_psprintf(r->p, "%s; could not restore queue %s (%s)", error,
                                 str(q, "queue_id"), str(q, "error") ? str(q, "error") : "failed");
        }
    }
    if (!restored && !ids_in(r, Q_RESTORE_FAILED)) {
        error = apr_psprintf(r->p, "%s; no queue had been changed", error);
    }
    decide(r, GC_STRATEGY_FAILED, error);
}

/* One restore attempt failed: retry later, or give the queue up. */
static void restore_fault(run_t *r, json_t *q, const gc_error_t *e, const char *doing)
{
    json_int_t attempts = json_integer_value(json_object_get(q, "attempts")) + 1;
    const char *why = apr_psprintf(r->p, "%s: %s", doing, gc_err_text(r->p, e));

    json_object_set_new(q, "attempts", json_integer(attempts));
    json_object_set_new(q, "error", json_string(why));
    if (refused_for_good(e) || attempts >= GC_STRATEGY_RESTORE_ATTEMPTS) {
        set_qstate(q, Q_RESTORE_FAILED);
        gc_log(GC_LOG_MARK, GC_LOG_ERR, 0,
               GCMON_LOGNO(874) "strategy %s activation %s: queue %s could NOT be restored "
                                "after %d attempt(s): %s",
               r->strategy_id, r->job->id, str(q, "queue_id"), (int)attempts, why);
        again_at(r, r->now, why);
        return;
    }
    again_at(r,
             r->now
                 + delay(r, GC_STRATEGY_CONFIRM_MIN, GC_STRATEGY_CONFIRM_MAX, (int)attempts,
                         e ? e->retry_after : 0),
             why);
}

/* One queue restored a step: GET for its current version, PUT the saved body. */
static void rollback_step(run_t *r)
{
    const gc_strategy_ops_t *up = r->env->up;
    json_t *q = NULL, *current = NULL, *body, *answer = NULL, *version;
    gc_error_t *e = NULL;
    const char *id;
    size_t i;

    for (i = 0; i < json_array_size(r->queues); i++) {
        if (touched(queue_at(r, i)) && json_is_object(json_object_get(queue_at(r, i), "saved"))) {
            q = queue_at(r, i);
            break;
        }
    }
    if (!q) {
        rollback_done(r);
        return;
    }
    id = str(q, "queue_id");
    if (up->queue_get(up->baton, r->p, id, &current, &e) != APR_SUCCESS) {
        json_decref(current);
        if (cancelled(e)) {
            r->out->outcome = GC_JOB_GIVE_BACK;
            return;
        }
        restore_fault(r, q, e, "reading the queue for its version");
        return;
    }
    body = json_deep_copy(json_object_get(q, "saved"));
    /* The current version: the later of the one read and the one our PUT
     * answered (a lagging read shows the queue as before that PUT). */
    version = json_object_get(current, "version");
    if (json_is_integer(json_object_get(q, "version"))
        && (!json_is_integer(version)
            || json_integer_value(version) < json_integer_value(json_object_get(q, "version")))) {
        version = json_object_get(q, "version");
    }
    if (version) {
        json_object_set(body, "version", version);
    }
    json_decref(current);
    if (up->queue_put(up->baton, r->p, id, body, &answer, &e) != APR_SUCCESS) {
        json_decref(body);
        json_decref(answer);
        if (cancelled(e)) {
            r->out->outcome = GC_JOB_GIVE_BACK;
            return;
        }
        restore_fault(r, q, e, "putting the saved queue back");
        return;
    }
    json_decref(body);
    json_decref(answer);
    set_qstate(q, Q_RESTORED);
    json_object_del(q, "maybe");
    json_object_del(q, "error");
    gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
           GCMON_LOGNO(875) "strategy %s activation %s: queue %s restored", r->strategy_id,
           r->job->id, id);
    again_at(r, r->now, NULL);
}

/* ---------------------------------------------------------------- confirm */

/* Does the queue as read show what the PUT wrote? */
static int reads_back(const run_t *r, const json_t *q, const json_t *got)
{
    const char *method = str(r->step, "method");
    const json_t *want = json_object_get(q, "version"), *have = json_object_get(got, "version");

    if (method && !(str(got, METHOD_KEY) && !strcmp(str(got, METHOD_KEY), method))) {
        return 0;
    }
    if (json_is_number(want) && json_is_number(have)) {
        return json_number_value(have) >= json_number_value(want);
    }
    return 1;
}

static void confirm_step(run_t *r)
{
    const gc_strategy_ops_t *up = r->env->up;
    json_int_t polls = json_integer_value(json_object_get(r->step, "polls")) + 1;
    json_int_t from = json_integer_value(json_object_get(r->step, "confirm_from"));
    const char *last_err = NULL;
    int waiting = 0;
    size_t i;

    json_object_set_new(r->step, "polls", json_integer(polls));
    for (i = 0; i < json_array_size(r->queues); i++) {
        json_t *q = queue_at(r, i), *got = NULL;
        gc_error_t *e = NULL;
        const char *id = str(q, "queue_id");

        if (!qstate(q) || strcmp(qstate(q), Q_APPLIED)) {
            continue;
        }
        if (up->queue_get(up->baton, r->p, id, &got, &e) != APR_SUCCESS) {
            json_decref(got);
            if (cancelled(e)) {
                r->out->outcome = GC_JOB_GIVE_BACK;
                return;
            }
            if (refused_for_good(e)) {
                rollback(r,
                         apr_psprintf(r->p, "confirming queue %s: %s", id, gc_err_text(r->p, e)));
                return;
            }
            last_err = apr_psprintf(r->p, "confirming queue %s: %s", id, gc_err_text(r->p, e));
            waiting++;
            continue;
        }
        if (reads_back(r, q, got)) {
            set_qstate(q, Q_CONFIRMED);
        }
        else {
            waiting++;
        }
        json_decref(got);
    }
    if (!waiting) {
        decide(r, GC_STRATEGY_ACTIVE, NULL);
        return;
    }
    if (r->now - apr_time_from_msec(from) >= GC_STRATEGY_CONFIRM_LIMIT) {
        rollback(r, apr_psprintf(r->p,
                                 "%d queue(s) did not read back the change within %d s "
                                 "(%d polls)%s%s",
                                 waiting, (int)apr_time_sec(GC_STRATEGY_CONFIRM_LIMIT), (int)polls,
                                 last_err ? "; last error: " : "", last_err ? last_err : ""));
        return;
    }
    again_at(r, r->now + delay(r, GC_STRATEGY_CONFIRM_MIN, GC_STRATEGY_CONFIRM_MAX, (int)polls, 0),
             last_err);
}

static void start_confirm(run_t *r)
{
    set_phase(r, "confirm");
    json_object_set_new(r->step, "confirm_from", json_integer(apr_time_as_msec(r->now)));
    json_object_set_new(r->step, "polls", json_integer(0));
    confirm_step(r);
}

/* ---------------------------------------------------------------- apply */

/* The body to PUT for q (new reference), or NULL when nothing changes. */
static json_t *wanted_body(const run_t *r, const json_t *q)
{
    const char *method = str(r->step, "method");
    const json_t *saved = json_object_get(q, "saved");
    const char *has = str(saved, METHOD_KEY);
    json_t *body;

    if (!method || (has && !strcmp(has, method))) {
        return NULL;
    }
    body = json_deep_copy(saved);
    json_object_set_new(body, METHOD_KEY, json_string(method));
    return body;
}

/* PUT body to queue id: APR_SUCCESS with *version (of the answer, NULL
 * when none; new reference). */
static apr_status_t put_queue(run_t *r, const char *id, json_t *body, json_t **version,
                              gc_error_t **e)
{
    const gc_strategy_ops_t *up = r->env->up;
    json_t *answer = NULL;
    apr_status_t rv = up->queue_put(up->baton, r->p, id, body, &answer, e);

    *version = NULL;
    if (rv == APR_SUCCESS && json_is_object(answer) && json_object_get(answer, "version")) {
        *version = json_incref(json_object_get(answer, "version"));
    }
    json_decref(answer);
    return rv;
}

/* body's version := the queue's current one. */
static apr_status_t refresh_version(run_t *r, const char *id, json_t *body, gc_error_t **e)
{
    const gc_strategy_ops_t *up = r->env->up;
    json_t *current = NULL;
    apr_status_t rv = up->queue_get(up->baton, r->p, id, &current, e);

    if (rv == APR_SUCCESS && json_object_get(current, "version")) {
        json_object_set(body, "version", json_object_get(current, "version"));
    }
    json_decref(current);
    return rv;
}

/* A failed write of q: give back, or roll back (q maybe written). */
static void apply_fault(run_t *r, json_t *q, const gc_error_t *e, const char *doing)
{
    if (ambiguous(e)) {
        json_object_set_new(q, "maybe", json_true());
    }
    if (cancelled(e)) {
        r->out->outcome = GC_JOB_GIVE_BACK;
        return;
    }
    rollback(
        r, apr_psprintf(r->p, "%s queue %s: %s", doing, str(q, "queue_id"), gc_err_text(r->p, e)));
}

/* Queues needing no write are passed; at most one PUT a step. */
static void apply_step(run_t *r)
{
    size_t i;

    if (r->now >= activate_until(r)) {
        rollback(r, apr_psprintf(r->p, "the activation did not finish applying within %d s",
                                 (int)apr_time_sec(GC_STRATEGY_ACTIVATE_TIMEOUT)));
        return;
    }
    for (i = 0; i < json_array_size(r->queues); i++) {
        json_t *q = queue_at(r, i), *body, *version = NULL;
        const char *id = str(q, "queue_id");
        gc_error_t *e = NULL;
        apr_status_t rv;

        if (!qstate(q) || strcmp(qstate(q), Q_SAVED)) {
            continue;
        }
        if (!(body = wanted_body(r, q))) {
            set_qstate(q, Q_UNCHANGED);
            json_object_del(q, "maybe");
            continue;
        }
        if (r->resumed || json_is_true(json_object_get(q, "maybe"))) {
            /* This PUT may have been sent by a holder that died: its
             * version moved on then. */
            json_object_set_new(q, "maybe", json_true());
            if (refresh_version(r, id, body, &e) != APR_SUCCESS) {
                json_decref(body);
                apply_fault(r, q, e, "re-reading");
                return;
            }
        }
        rv = put_queue(r, id, body, &version, &e);
        if (rv != APR_SUCCESS && conflict(e)) {
            /* a version conflict: the queue changed since it was saved */
            gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
                   GCMON_LOGNO(876) "strategy %s activation %s: queue %s changed meanwhile "
                                    "(409); reading it again",
                   r->strategy_id, r->job->id, id);
            e = NULL;
            if (refresh_version(r, id, body, &e) != APR_SUCCESS) {
                json_decref(body);
                apply_fault(r, q, e, "re-reading");
                return;
            }
            rv = put_queue(r, id, body, &version, &e);
        }
        json_decref(body);
        if (rv != APR_SUCCESS) {
            apply_fault(r, q, e, conflict(e) ? "a second version conflict updating" : "updating");
            return;
        }
        set_qstate(q, Q_APPLIED);
        json_object_del(q, "maybe");
        if (version) {
            json_object_set_new(q, "version", version);
        }
        again_at(r, r->now, NULL);
        return;
    }
    start_confirm(r);
}

/* ---------------------------------------------------------------- validate, save */

/* An upstream fault before any write: again later (until the activation's
 * deadline), or the end. */
static void read_fault(run_t *r, const gc_error_t *e, const char *doing)
{
    json_int_t failures = json_integer_value(json_object_get(r->step, "failures")) + 1;
    const char *why = apr_psprintf(r->p, "%s: %s", doing, gc_err_text(r->p, e));
    apr_interval_time_t d;

    if (cancelled(e)) {
        r->out->outcome = GC_JOB_GIVE_BACK;
        return;
    }
    if (!gc_err_transient(e)) {
        fail_untouched(r, why);
        return;
    }
    d = delay(r, GC_STRATEGY_RETRY_MIN, GC_STRATEGY_RETRY_MAX, (int)failures,
              e ? e->retry_after : 0);
    if (r->now + d >= activate_until(r)) {
        fail_untouched(r, apr_psprintf(r->p, "%s (still failing after %d attempt(s) within %d s)",
                                       why, (int)failures,
                                       (int)apr_time_sec(GC_STRATEGY_ACTIVATE_TIMEOUT)));
        return;
    }
    json_object_set_new(r->step, "failures", json_integer(failures));
    again_at(r, r->now + d, why);
}

static void save_step(run_t *r)
{
    const gc_strategy_ops_t *up = r->env->up;
    size_t i;

    for (i = 0; i < json_array_size(r->queues); i++) {
        json_t *q = queue_at(r, i), *body = NULL;
        const char *id = str(q, "queue_id");
        gc_error_t *e = NULL;

        if (!qstate(q) || strcmp(qstate(q), Q_PENDING)) {
            continue;
        }
        if (up->queue_get(up->baton, r->p, id, &body, &e) != APR_SUCCESS) {
            json_decref(body);
            read_fault(r, e, apr_psprintf(r->p, "reading queue %s", id));
            return;
        }
        if (!json_is_object(body)) {
            json_decref(body);
            fail_untouched(r, apr_psprintf(r->p, "reading queue %s: not a queue object", id));
            return;
        }
        json_object_set_new(q, "saved", body);
        set_qstate(q, Q_SAVED);
    }
    /* Every saved body is kept (this step written) before the first PUT. */
    set_phase(r, "apply");
    again_at(r, r->now, NULL);
}

/* The judge's errors as one sentence. */
static const char *judged(apr_pool_t *p, const gc_result_t *res)
{
    const char *text = "live validation failed";
    const json_t *e;
    size_t i;

    json_array_foreach(res->errors, i, e)
    {
        text = apr_psprintf(p, "%s%s %s %s", text, i ? ";" : ":", str(e, "field"),
                            str(e, "message") ? str(e, "message") : "is not ok");
    }
    return text;
}

static void validate_step(run_t *r)
{
    const gc_strategy_store_ops_t *st = r->env->store;
    gc_strategy_rec_t rec;
    gc_strategy_t *s = NULL;
    gc_strategy_live_t *live;
    gc_error_t *e = NULL;
    gc_result_t *res;
    json_t *report = NULL;
    const char *err = NULL;
    int gone = 0, i, bad;

    if (!load_strategy(r, &rec, &s, &gone)) {
        return;
    }
    if (gone || !rec.status || strcmp(rec.status, GC_STRATEGY_ACTIVATING) || !rec.job_id
        || strcmp(rec.job_id, r->job->id)) {
        /* Nothing was touched; nothing to settle: the row is not this job's. */
        finish(r, NULL, GC_STRATEGY_FAILED,
               gone
                   ? "the strategy no longer exists"
                   : apr_psprintf(r->p, "the strategy is %s (job %s), not activating by this job",
                                  rec.status ? rec.status : "?", rec.job_id ? rec.job_id : "none"));
        return;
    }
    if (!s) {
        fail_untouched(r, "the strategy's stored body is unreadable");
        return;
    }
    if (!json_array_size(r->queues)) {
        for (i = 0; i < s->n_targets; i++) {
            json_array_append_new(r->queues, json_pack("{s:s, s:s}", "queue_id",
                                                       s->targets[i].queue_id, "state", Q_PENDING));
        }
        json_object_set_new(r->step, "method", json_null());
        for (i = 0; i < s->n_skills; i++) {
            if (s->skills[i].required) {
                json_object_set_new(r->step, "method", json_string(METHOD_ALL));
            }
        }
    }
    if (r->now >= activate_until(r)) {
        fail_untouched(r, apr_psprintf(r->p, "the activation did not finish validating within %d s",
                                       (int)apr_time_sec(GC_STRATEGY_ACTIVATE_TIMEOUT)));
        return;
    }
    live = apr_pcalloc(r->p, sizeof(*live) * (apr_size_t)s->n_targets);
    if (gc_strategy_read_live(r->p, r->env->up, s, 1, live, &e) != APR_SUCCESS) {
        read_fault(r, e, "reading the live figures");
        return;
    }
    res = gc_result_make(r->p);
    bad = gc_strategy_judge(res, s, live, &report);
    if (report
        && st->set_validation(st->baton, r->p, r->strategy_id, gc_json_text(r->p, report), r->now,
                              &err)
               != APR_SUCCESS) {
        json_decref(report);
        store_fault(r, "storing the validation report", err);
        return;
    }
    json_decref(report);
    if (bad) {
        fail_untouched(r, judged(r->p, res));
        return;
    }
    set_phase(r, "save");
    save_step(r);
}

/* ---------------------------------------------------------------- the step */

void gc_strategy_job_step(apr_pool_t *p, const gc_strategy_job_env_t *env, const gc_job_t *job,
                          double rand, apr_time_t now, gc_job_step_t *out)
{
    run_t r;
    json_t *payload;
    const char *phase;
    json_int_t seen;

    memset(&r, 0, sizeof(r));
    memset(out, 0, sizeof(*out));
    r.p = p;
    r.env = env;
    r.job = job;
    r.out = out;
    r.rand = rand;
    r.now = now;
    payload = job->payload ? json_loads(job->payload, 0, NULL) : NULL;
    r.strategy_id =
        str(payload, "strategy_id") ? apr_pstrdup(p, str(payload, "strategy_id")) : job->target;
    json_decref(payload);
    r.step = job->step ? json_loads(job->step, 0, NULL) : NULL;
    if (!json_is_object(r.step)) {
        json_decref(r.step);
        r.step = json_pack("{s:s, s:[]}", "phase", "validate", "queues");
    }
    if (!json_is_array(json_object_get(r.step, "queues"))) {
        json_object_set_new(r.step, "queues", json_array());
    }
    r.queues = json_object_get(r.step, "queues");
    seen = json_integer_value(json_object_get(r.step, "seen"));
    r.resumed = seen > 0 && job->attempts > seen + 1;
    phase = str(r.step, "phase");
    if (!r.strategy_id || !phase) {
        r.strategy_id = r.strategy_id ? r.strategy_id : "";
        finish(&r, NULL, GC_STRATEGY_FAILED, "the activation's stored request is unreadable");
    }
    else if (!strcmp(phase, "validate")) {
        validate_step(&r);
    }
    else if (!strcmp(phase, "save")) {
        save_step(&r);
    }
    else if (!strcmp(phase, "apply")) {
        apply_step(&r);
    }
    else if (!strcmp(phase, "confirm")) {
        confirm_step(&r);
    }
    else if (!strcmp(phase, "rollback")) {
        rollback_step(&r);
    }
    else if (!strcmp(phase, "settle")) {
        settle(&r);
    }
    else if (any_touched(&r)) {
        rollback(&r, apr_psprintf(p, "the activation's progress is unreadable (phase %s)", phase));
    }
    else {
        fail_untouched(
            &r, apr_psprintf(p, "the activation's progress is unreadable (phase %s)", phase));
    }
    json_decref(r.step);
}

/* ---------------------------------------------------------------- the job */

void gc_strategy_job_make(apr_pool_t *p, const char *strategy_id, const char *actor, apr_time_t now,
                          gc_job_t *job)
{
    json_t *payload = json_pack("{s:s}", "strategy_id", strategy_id);

    memset(job, 0, sizeof(*job));
    job->id = gc_id_random(p, GC_STRATEGY_JOB_ID_PREFIX);
    job->kind = GC_STRATEGY_JOB_KIND;
    job->target = apr_pstrdup(p, strategy_id);
    job->actor = actor ? apr_pstrdup(p, actor) : "-";
    job->payload = gc_json_text(p, payload);
    job->created_at = now;
    job->next_run_at = now;
    job->deadline_at = 0;
    json_decref(payload);
}

/* ---------------------------------------------------------------- the store ops */

static apr_status_t s_get(void *baton, apr_pool_t *p, const char *id, gc_strategy_rec_t *out,
                          int *found, const char **err)
{
    return gc_store_strategy_get(baton, p, id, out, found, err);
}

static apr_status_t s_settle(void *baton, apr_pool_t *p, const char *id, const char *job_id,
                             const char *status, const char *error_message, apr_time_t now,
                             int *kept, const char **err)
{
    return gc_store_strategy_settle(baton, p, id, job_id, status, error_message, now, kept, err);
}

static apr_status_t s_set_validation(void *baton, apr_pool_t *p, const char *id,
                                     const char *validation, apr_time_t now, const char **err)
{
    return gc_store_strategy_set_validation(baton, p, id, validation, now, err);
}

gc_strategy_store_ops_t gc_strategy_job_store_ops(struct gc_store *s)
{
    gc_strategy_store_ops_t ops;

    ops.baton = s;
    ops.get = s_get;
    ops.settle = s_settle;
    ops.set_validation = s_set_validation;
    return ops;
}

/* ---------------------------------------------------------------- progress */

json_t *gc_strategy_job_progress_json(const gc_job_t *job, const gc_strategy_t *s)
{
    json_t *step = job->step ? json_loads(job->step, 0, NULL) : NULL;
    json_t *result = job->result ? json_loads(job->result, 0, NULL) : NULL;
    json_t *out, *queues = json_array(), *from, *q;
    const char *state = job->state ? job->state : "queued";
    const char *phase = str(step, "phase");
    size_t i;
    int ended = !strcmp(state, "completed") || !strcmp(state, "failed");

    if (ended) {
        phase = !strcmp(state, "completed")   ? "done"
                : str(result, "failed_phase") ? str(result, "failed_phase")
                : str(step, "failed_phase")   ? str(step, "failed_phase")
                                              : phase;
    }
    from = json_is_array(json_object_get(result, "queues")) ? json_object_get(result, "queues")
                                                            : json_object_get(step, "queues");
    if (json_array_size(from)) {
        json_array_foreach(from, i, q)
        {
            json_array_append_new(queues, json_pack("{s:s?, s:s?}", "queue_id", str(q, "queue_id"),
                                                    "state", str(q, "state")));
        }
    }
    else if (s) {
        for (i = 0; i < (size_t)s->n_targets; i++) {
            json_array_append_new(queues, json_pack("{s:s, s:s}", "queue_id",
                                                    s->targets[i].queue_id, "state", Q_PENDING));
        }
    }
    out = json_pack("{s:s, s:s, s:s?, s:o, s:s?}", "job_id", job->id, "state", state, "phase",
                    phase, "queues", queues, "error", job->error);
    if (out && !json_object_get(out, "phase")) {
        json_object_set_new(out, "phase", json_null());
    }
    if (out && !json_object_get(out, "error")) {
        json_object_set_new(out, "error", json_null());
    }
    json_decref(step);
    json_decref(result);
    return out;
}
