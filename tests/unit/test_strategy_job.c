/* gc_strategy_job: the activation job's phases (validate → save → apply →
 * confirm → settle) against a scripted Genesys and store: read-modify-write
 * bodies, read-back lag, version conflicts, rollback and its failures, live
 * validation failures, upstream faults, a holder lost mid-step, and the
 * strategy's `activation` member. */
#include <string.h>

#include <apr_strings.h>

#include "gc_jobs.h"
#include "gc_log.h"
#include "gc_strategy_job.h"
#include "gc_webhook.h"
#include "unit.h"

#define METHOD_KEY_TEST "skillEvaluationMethod"

static apr_pool_t *pool;

static int quiet(void *baton, int level)
{
    return 0;
}

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    gc_log_set(quiet, NULL, NULL);
}

static void teardown(void)
{
    gc_log_set(NULL, NULL, NULL);
    apr_pool_destroy(pool);
}

static apr_status_t decref(void *j)
{
    json_decref(j);
    return APR_SUCCESS;
}

static json_t *keep(json_t *j)
{
    ck_assert(j != NULL);
    apr_pool_cleanup_register(pool, j, decref, apr_pool_cleanup_null);
    return j;
}

static json_t *load(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);

    ck_assert_msg(j != NULL, "bad test JSON: %s", text ? text : "(null)");
    return keep(j);
}

/* ---------------------------------------------------------------- the world */

#define MAX_Q 4

typedef struct {
    const char *id;
    json_t *body;    /* as it is now (owned) */
    json_t *old;     /* what lagging GETs answer (owned), or NULL */
    int lag, stale;  /* GETs that lag after each PUT; lagging GETs left */
    int interacting; /* oInteracting */
    int skilled;     /* a member has every required skill */
    int gets, puts;
    /* scripted PUT faults: after put_skip good PUTs, put_count failures */
    int put_skip, put_count, put_status, put_lands;
    gc_err_kind_e put_kind;
    int get_count; /* the next GETs failing */
    gc_err_kind_e get_kind;
} fq_t;

typedef struct {
    fq_t q[MAX_Q];
    int nq;
    int observes;
    int observe_count; /* the next observation queries failing */
    gc_err_kind_e observe_kind;
    json_t *puts; /* [{"queue","body"}] (owned) */
    /* the store */
    const char *status, *job_id, *body, *validation, *error_message;
    int settles, store_count;
    apr_time_t activated_at;
} world_t;

static gc_error_t *make_err(apr_pool_t *p, gc_err_kind_e kind, int status)
{
    gc_error_t *e = apr_pcalloc(p, sizeof(*e));

    e->kind = kind;
    e->status = status;
    e->message = "scripted";
    e->retry_after = kind == GC_ERR_THROTTLED ? apr_time_from_sec(20) : 0;
    return e;
}

static fq_t *find_q(world_t *w, const char *id)
{
    int i;

    for (i = 0; i < w->nq; i++) {
        if (!strcmp(w->q[i].id, id)) {
            return &w->q[i];
        }
    }
    return NULL;
}

static apr_status_t w_observe(void *b, apr_pool_t *p, const char *const *ids, int n,
                              gc_strategy_live_t *live, gc_error_t **err)
{
    world_t *w = b;
    int i;

    w->observes++;
    if (w->observe_count > 0) {
        w->observe_count--;
        *err = make_err(p, w->observe_kind, w->observe_kind == GC_ERR_THROTTLED ? 429 : 503);
        return APR_EGENERAL;
    }
    for (i = 0; i < n; i++) {
        fq_t *q = find_q(w, ids[i]);
        if (q) {
            live[i].observed = 1;
            live[i].interacting = q->interacting;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t w_skilled(void *b, apr_pool_t *p, const char *queue_id,
                              const char *const *skill_ids, int n_skills, int *any,
                              gc_error_t **err)
{
    fq_t *q = find_q(b, queue_id);

    if (!q) {
        *err = make_err(p, GC_ERR_NOT_FOUND, 404);
        return APR_EGENERAL;
    }
    *any = q->skilled;
    return APR_SUCCESS;
}

static apr_status_t w_get(void *b, apr_pool_t *p, const char *queue_id, json_t **queue,
                          gc_error_t **err)
{
    fq_t *q = find_q(b, queue_id);

    *queue = NULL;
    if (!q) {
        *err = make_err(p, GC_ERR_NOT_FOUND, 404);
        return APR_EGENERAL;
    }
    q->gets++;
    if (q->get_count > 0) {
        q->get_count--;
        *err = make_err(p, q->get_kind, q->get_kind == GC_ERR_FORBIDDEN ? 403 : 503);
        return APR_EGENERAL;
    }
    if (q->stale > 0 && q->old) {
        q->stale--;
        *queue = json_deep_copy(q->old);
        return APR_SUCCESS;
    }
    *queue = json_deep_copy(q->body);
    return APR_SUCCESS;
}

static void land(fq_t *q, const json_t *body)
{
    json_int_t v = json_integer_value(json_object_get(q->body, "version"));

    if (q->lag) {
        if (!q->stale || !q->old) {
            json_decref(q->old);
            q->old = json_deep_copy(q->body);
        }
        q->stale = q->lag;
    }
    json_decref(q->body);
    q->body = json_deep_copy(body);
    json_object_set_new(q->body, "version", json_integer(v + 1));
}

static apr_status_t w_put(void *b, apr_pool_t *p, const char *queue_id, const json_t *queue,
                          json_t **answer, gc_error_t **err)
{
    world_t *w = b;
    fq_t *q = find_q(w, queue_id);

    *answer = NULL;
    ck_assert_ptr_nonnull(q);
    q->puts++;
    json_array_append_new(w->puts, json_pack("{s:s, s:O}", "queue", queue_id, "body", queue));
    if (q->put_skip > 0) {
        q->put_skip--;
    }
    else if (q->put_count > 0) {
        q->put_count--;
        if (q->put_lands) {
            land(q, queue);
        }
        *err = make_err(p, q->put_kind, q->put_status);
        return APR_EGENERAL;
    }
    if (json_integer_value(json_object_get(queue, "version"))
        != json_integer_value(json_object_get(q->body, "version"))) {
        *err = make_err(p, GC_ERR_CLIENT, 409);
        return APR_EGENERAL;
    }
    land(q, queue);
    *answer = json_deep_copy(q->body);
    return APR_SUCCESS;
}

static apr_status_t s_get(void *b, apr_pool_t *p, const char *id, gc_strategy_rec_t *out,
                          int *found, const char **err)
{
    world_t *w = b;

    if (w->store_count > 0) {
        w->store_count--;
        *err = "scripted database failure";
        return APR_EGENERAL;
    }
    memset(out, 0, sizeof(*out));
    *found = w->status != NULL;
    out->id = "strat-1";
    out->status = w->status;
    out->job_id = w->job_id;
    out->body = w->body;
    return APR_SUCCESS;
}

static apr_status_t s_settle(void *b, apr_pool_t *p, const char *id, const char *job_id,
                             const char *status, const char *error_message, apr_time_t now,
                             int *kept, const char **err)
{
    world_t *w = b;

    *kept = 0;
    if (w->status && !strcmp(w->status, GC_STRATEGY_ACTIVATING) && w->job_id
        && !strcmp(w->job_id, job_id)) {
        w->settles++;
        w->status = apr_pstrdup(pool, status);
        w->error_message = error_message ? apr_pstrdup(pool, error_message) : NULL;
        if (!strcmp(status, GC_STRATEGY_ACTIVE)) {
            w->activated_at = now;
        }
        *kept = 1;
    }
    return APR_SUCCESS;
}

static apr_status_t s_set_validation(void *b, apr_pool_t *p, const char *id, const char *validation,
                                     apr_time_t now, const char **err)
{
    world_t *w = b;

    w->validation = apr_pstrdup(pool, validation);
    return APR_SUCCESS;
}

static const char *const STRATEGY =
    "{\"name\":\"Support\",\"description\":null,"
    "\"selection_criteria\":{\"skills\":[{\"skill_id\":\"sk-1\",\"required\":true}]},"
    "\"targets\":[{\"queue_id\":\"q-a\",\"priority\":1,\"weight\":1,\"capacity\":10},"
    "{\"queue_id\":\"q-b\",\"priority\":1,\"weight\":2,\"capacity\":10},"
    "{\"queue_id\":\"q-c\",\"priority\":2,\"weight\":1,\"capacity\":10}],"
    "\"fallback\":{\"queue_id\":\"q-fb\",\"priority\":99,\"weight\":0.1}}";

static void world_init(world_t *w, const char *strategy)
{
    static const char *const ids[] = { "q-a", "q-b", "q-c" };
    int i;

    memset(w, 0, sizeof(*w));
    w->nq = 3;
    for (i = 0; i < w->nq; i++) {
        fq_t *q = &w->q[i];
        q->id = ids[i];
        q->body = json_pack("{s:s, s:s, s:s, s:s, s:{s:[{s:[{s:s, s:f}]}]}, s:I, s:[]}", "id",
                            ids[i], "name", apr_psprintf(pool, "Queue %d", i), METHOD_KEY_TEST,
                            "BEST", "scoringMethod", "TimestampAndPriority", "bullseye", "rings",
                            "expansionCriteria", "type", "TIMEOUT_SECONDS", "threshold", 15.0,
                            "version", (json_int_t)(3 + i), "routingRules");
        q->interacting = 2;
        q->skilled = 1;
    }
    w->puts = json_array();
    w->status = GC_STRATEGY_ACTIVATING;
    w->job_id = "sact-1";
    w->body = strategy ? strategy : STRATEGY;
}

static void world_free(world_t *w)
{
    int i;

    for (i = 0; i < w->nq; i++) {
        json_decref(w->q[i].body);
        json_decref(w->q[i].old);
    }
    json_decref(w->puts);
}

typedef struct {
    gc_strategy_ops_t up;
    gc_strategy_store_ops_t store;
    gc_strategy_job_env_t env;
    gc_job_t job;
    apr_time_t now;
    int steps;
    apr_interval_time_t waits[64]; /* next_run_at - now of each AGAIN */
} runner_t;

static void runner_init(runner_t *r, world_t *w, int webhook)
{
    memset(r, 0, sizeof(*r));
    r->up.baton = w;
    r->up.observe = w_observe;
    r->up.skilled = w_skilled;
    r->up.queue_get = w_get;
    r->up.queue_put = w_put;
    r->store.baton = w;
    r->store.get = s_get;
    r->store.settle = s_settle;
    r->store.set_validation = s_set_validation;
    r->env.up = &r->up;
    r->env.store = &r->store;
    r->env.webhook = webhook;
    r->now = apr_time_from_sec(1000000);
    gc_strategy_job_make(pool, "strat-1", "ada", r->now, &r->job);
    r->job.id = "sact-1";
    r->job.state = "running";
}

/* One step the way gc_jobs runs it (a claim: attempts + 1); keep: store
 * its progress (0: the holder died before writing it). */
static gc_job_step_t step(runner_t *r, int keep_step)
{
    gc_job_step_t out;

    r->job.attempts++;
    gc_strategy_job_step(pool, &r->env, &r->job, 0.0, r->now, &out);
    if (out.outcome == GC_JOB_AGAIN) {
        ck_assert_msg(out.next_run_at >= r->now, "a step due in the past");
        if (r->steps < 64) {
            r->waits[r->steps] = out.next_run_at - r->now;
        }
        if (keep_step) {
            ck_assert_ptr_nonnull(out.step);
            r->job.step = apr_pstrdup(pool, out.step);
            r->now = out.next_run_at;
        }
    }
    r->steps++;
    return out;
}

/* Steps until the end (or max): the last outcome. */
static gc_job_step_t run(runner_t *r, int max)
{
    gc_job_step_t out;
    int i;

    memset(&out, 0, sizeof(out));
    for (i = 0; i < max; i++) {
        out = step(r, 1);
        if (out.outcome != GC_JOB_AGAIN) {
            break;
        }
    }
    return out;
}

static const char *put_method(const world_t *w, size_t i)
{
    return json_string_value(
        json_object_get(json_object_get(json_array_get(w->puts, i), "body"), METHOD_KEY_TEST));
}

static const char *put_queue_id(const world_t *w, size_t i)
{
    return json_string_value(json_object_get(json_array_get(w->puts, i), "queue"));
}

/* The queue's body without its version equals `want` without its version. */
static int same_but_version(const json_t *have, const json_t *want)
{
    json_t *a = json_deep_copy(have), *b = json_deep_copy(want);
    int eq;

    json_object_del(a, "version");
    json_object_del(b, "version");
    eq = json_equal(a, b);
    json_decref(a);
    json_decref(b);
    return eq;
}

static const char *qstate_of(const gc_job_step_t *out, const char *queue_id)
{
    json_t *res = load(out->result), *q;
    size_t i;

    json_array_foreach(json_object_get(res, "queues"), i, q)
    {
        if (!strcmp(json_string_value(json_object_get(q, "queue_id")), queue_id)) {
            return json_string_value(json_object_get(q, "state"));
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- the tests */

/* The whole activation: one GET and one PUT per queue, the PUT the saved body
 * with ALL and everything else intact, confirmed, active, audited, the WFM
 * body queued. */
START_TEST(strategy_job_activates)
{
    world_t w;
    runner_t r;
    gc_job_step_t out;
    json_t *saved[3], *result, *hook;
    int i;

    world_init(&w, NULL);
    runner_init(&r, &w, 1);
    for (i = 0; i < 3; i++) {
        saved[i] = keep(json_deep_copy(w.q[i].body));
    }
    out = step(&r, 1); /* validate + save */
    ck_assert_int_eq(out.outcome, GC_JOB_AGAIN);
    ck_assert_int_eq(w.observes, 1);
    ck_assert_int_eq((int)json_array_size(w.puts), 0); /* saved bodies kept before any PUT */
    ck_assert(strstr(out.step, "\"phase\":\"apply\"") != NULL);
    ck_assert_ptr_nonnull(w.validation);
    ck_assert(json_is_true(json_object_get(load(w.validation), "ok")));
    out = step(&r, 1);
    ck_assert_int_eq(out.outcome, GC_JOB_AGAIN);
    ck_assert_int_eq((int)json_array_size(w.puts), 1); /* one PUT a step */
    out = run(&r, 20);
    ck_assert_int_eq(out.outcome, GC_JOB_DONE);
    ck_assert_int_eq((int)json_array_size(w.puts), 3);
    for (i = 0; i < 3; i++) {
        json_t *body = json_object_get(json_array_get(w.puts, i), "body");
        json_t *want = json_deep_copy(saved[i]);

        ck_assert_str_eq(put_queue_id(&w, i), w.q[i].id);
        ck_assert_str_eq(put_method(&w, i), "ALL");
        json_object_set_new(want, METHOD_KEY_TEST, json_string("ALL"));
        ck_assert(json_equal(body, want)); /* every other field as read, version too */
        json_decref(want);
        ck_assert_int_eq(w.q[i].gets, 2); /* save, confirm */
    }
    ck_assert_str_eq(w.status, GC_STRATEGY_ACTIVE);
    ck_assert_int_eq(w.settles, 1);
    ck_assert(w.activated_at > 0);
    ck_assert_str_eq(out.audit_action, GC_AUDIT_STRATEGY_ACTIVATED);
    result = load(out.result);
    ck_assert_str_eq(json_string_value(json_object_get(result, "status")), "active");
    ck_assert_str_eq(qstate_of(&out, "q-b"), "confirmed");
    ck_assert_str_eq(out.outbox_target, GC_TARGET_WFM);
    hook = load(out.outbox_body);
    ck_assert_str_eq(json_string_value(json_object_get(hook, "strategy_id")), "strat-1");
    ck_assert_str_eq(json_string_value(json_object_get(hook, "status")), "active");
    ck_assert_int_eq((int)json_array_size(json_object_get(hook, "targets")), 3);
    world_free(&w);

    /* no webhook: none queued; a queue already ALL needs no PUT */
    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    json_object_set_new(w.q[1].body, METHOD_KEY_TEST, json_string("ALL"));
    out = run(&r, 20);
    ck_assert_int_eq(out.outcome, GC_JOB_DONE);
    ck_assert_ptr_null(out.outbox_target);
    ck_assert_int_eq(w.q[1].puts, 0);
    ck_assert_str_eq(qstate_of(&out, "q-b"), "unchanged");
    ck_assert_str_eq(qstate_of(&out, "q-a"), "confirmed");
    world_free(&w);
}
END_TEST

/* No required skill: the method is left as it was, nothing is written. */
START_TEST(strategy_job_no_required_skill)
{
    world_t w;
    runner_t r;
    gc_job_step_t out;

    world_init(&w,
               "{\"name\":\"Any\",\"description\":null,"
               "\"selection_criteria\":{\"skills\":[{\"skill_id\":\"sk-1\",\"required\":false}]},"
               "\"targets\":[{\"queue_id\":\"q-a\",\"priority\":1,\"weight\":1,\"capacity\":10}],"
               "\"fallback\":{\"queue_id\":\"q-fb\",\"priority\":99,\"weight\":0.1}}");
    runner_init(&r, &w, 0);
    out = run(&r, 20);
    ck_assert_int_eq(out.outcome, GC_JOB_DONE);
    ck_assert_int_eq((int)json_array_size(w.puts), 0);
    ck_assert_str_eq(qstate_of(&out, "q-a"), "unchanged");
    ck_assert_str_eq(w.status, GC_STRATEGY_ACTIVE);
    world_free(&w);
}
END_TEST

/* A lagging read-back keeps it confirming: polls 250 ms doubling; then
 * active. Never reading back within the limit: rollback. */
START_TEST(strategy_job_readback_lag)
{
    world_t w;
    runner_t r;
    gc_job_step_t out;
    int i, confirm_polls = 0;

    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    w.q[0].lag = 3;
    for (i = 0; i < 30; i++) {
        out = step(&r, 1);
        if (out.outcome != GC_JOB_AGAIN) {
            break;
        }
        if (strstr(out.step, "\"phase\":\"confirm\"")) {
            ck_assert_str_eq(w.status, GC_STRATEGY_ACTIVATING);
            ck_assert_int_eq(r.waits[r.steps - 1], apr_time_from_msec(250) << confirm_polls);
            confirm_polls++;
        }
    }
    ck_assert_int_eq(out.outcome, GC_JOB_DONE);
    ck_assert_int_eq(confirm_polls, 3); /* three stale reads, the fourth reads back */
    ck_assert_int_eq(w.q[0].gets, 1 + 4);
    ck_assert_str_eq(w.status, GC_STRATEGY_ACTIVE);
    world_free(&w);

    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    w.q[2].lag = 1000;
    out = run(&r, 200);
    ck_assert_int_eq(out.outcome, GC_JOB_FAILED);
    ck_assert_str_eq(w.status, GC_STRATEGY_FAILED);
    ck_assert(strstr(w.error_message, "did not read back the change within 60 s") != NULL);
    ck_assert(strstr(w.error_message, "restored queue(s) q-a, q-b, q-c") != NULL);
    ck_assert_str_eq(json_string_value(json_object_get(load(out.result), "failed_phase")),
                     "confirm");
    world_free(&w);
}
END_TEST

/* The second queue's PUT refused: the first restored exactly (its saved body,
 * the current version), the third never touched; failed with the why. */
START_TEST(strategy_job_rollback)
{
    world_t w;
    runner_t r;
    gc_job_step_t out;
    json_t *orig_a, *orig_c, *result;

    world_init(&w, NULL);
    runner_init(&r, &w, 1);
    orig_a = keep(json_deep_copy(w.q[0].body));
    orig_c = keep(json_deep_copy(w.q[2].body));
    w.q[1].put_count = 1;
    w.q[1].put_kind = GC_ERR_CLIENT;
    w.q[1].put_status = 400;
    out = run(&r, 30);
    ck_assert_int_eq(out.outcome, GC_JOB_FAILED);
    ck_assert_int_eq(w.q[0].puts, 2); /* apply, restore */
    ck_assert_int_eq(w.q[1].puts, 1);
    ck_assert_int_eq(w.q[2].puts, 0);
    ck_assert(same_but_version(w.q[0].body, orig_a));
    ck_assert_int_eq(json_integer_value(json_object_get(w.q[0].body, "version")), 5);
    ck_assert(json_equal(w.q[2].body, orig_c));
    ck_assert_str_eq(w.status, GC_STRATEGY_FAILED);
    ck_assert(strstr(w.error_message, "updating queue q-b: client error") != NULL
              || strstr(w.error_message, "updating queue q-b:") != NULL);
    ck_assert(strstr(w.error_message, "restored queue(s) q-a") != NULL);
    ck_assert_str_eq(out.error, w.error_message);
    result = load(out.result);
    ck_assert_str_eq(json_string_value(json_object_get(result, "failed_phase")), "apply");
    ck_assert_int_eq((int)json_array_size(json_object_get(result, "restored")), 1);
    ck_assert_str_eq(qstate_of(&out, "q-a"), "restored");
    ck_assert_str_eq(qstate_of(&out, "q-b"), "saved");
    ck_assert_str_eq(qstate_of(&out, "q-c"), "saved");
    ck_assert_str_eq(out.audit_action, GC_AUDIT_STRATEGY_ACTIVATED);
    ck_assert_str_eq(json_string_value(json_object_get(load(out.outbox_body), "status")), "failed");
    world_free(&w);

    /* a PUT timing out may have landed: restored too */
    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    orig_a = keep(json_deep_copy(w.q[1].body));
    w.q[1].put_count = 1;
    w.q[1].put_kind = GC_ERR_TIMEOUT;
    w.q[1].put_lands = 1;
    out = run(&r, 30);
    ck_assert_int_eq(out.outcome, GC_JOB_FAILED);
    ck_assert(same_but_version(w.q[1].body, orig_a));
    ck_assert_str_eq(qstate_of(&out, "q-b"), "restored");
    ck_assert(strstr(w.error_message, "restored queue(s) q-a, q-b") != NULL);
    world_free(&w);
}
END_TEST

/* A restore failing for good is reported by queue id, never silently. */
START_TEST(strategy_job_restore_fails)
{
    world_t w;
    runner_t r;
    gc_job_step_t out;
    json_t *result;

    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    w.q[2].put_count = 1;
    w.q[2].put_kind = GC_ERR_CLIENT;
    w.q[2].put_status = 400;
    w.q[0].put_skip = 1; /* the apply passes, every restore attempt fails */
    w.q[0].put_count = 100;
    w.q[0].put_kind = GC_ERR_SERVER;
    w.q[0].put_status = 503;
    out = run(&r, 60);
    ck_assert_int_eq(out.outcome, GC_JOB_FAILED);
    ck_assert_int_eq(w.q[0].puts, 1 + GC_STRATEGY_RESTORE_ATTEMPTS);
    ck_assert_str_eq(w.status, GC_STRATEGY_FAILED);
    ck_assert(strstr(w.error_message, "restored queue(s) q-b") != NULL);
    ck_assert(strstr(w.error_message, "could not restore queue q-a") != NULL);
    result = load(out.result);
    ck_assert_str_eq(
        json_string_value(json_array_get(json_object_get(result, "restore_failed"), 0)), "q-a");
    ck_assert_str_eq(qstate_of(&out, "q-a"), "restore_failed");
    world_free(&w);

    /* a queue gone (404 on its GET): given up at once */
    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    w.q[1].put_count = 1;
    w.q[1].put_kind = GC_ERR_CLIENT;
    w.q[1].put_status = 400;
    w.q[0].get_count = 0;
    out = step(&r, 1);
    out = step(&r, 1); /* q-a applied */
    w.q[0].get_count = 100;
    w.q[0].get_kind = GC_ERR_FORBIDDEN;
    out = run(&r, 30);
    ck_assert_int_eq(out.outcome, GC_JOB_FAILED);
    ck_assert_str_eq(qstate_of(&out, "q-a"), "restore_failed");
    ck_assert_int_eq(w.q[0].puts, 1);
    world_free(&w);
}
END_TEST

/* A 409 re-reads and PUTs once more; a second 409 rolls back. */
START_TEST(strategy_job_version_conflict)
{
    world_t w;
    runner_t r;
    gc_job_step_t out;

    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    out = step(&r, 1); /* saved */
    /* someone else changes q-a meanwhile: its version moves */
    json_object_set_new(w.q[0].body, "version", json_integer(10));
    out = run(&r, 20);
    ck_assert_int_eq(out.outcome, GC_JOB_DONE);
    ck_assert_int_eq(w.q[0].puts, 2);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(json_array_get(w.puts, 1), "body"), "version")),
                     10);
    ck_assert_str_eq(put_method(&w, 1), "ALL");
    world_free(&w);

    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    w.q[1].put_count = 2;
    w.q[1].put_kind = GC_ERR_CLIENT;
    w.q[1].put_status = 409;
    out = run(&r, 30);
    ck_assert_int_eq(out.outcome, GC_JOB_FAILED);
    ck_assert_int_eq(w.q[1].puts, 2);
    ck_assert(strstr(w.error_message, "a second version conflict updating queue q-b") != NULL);
    ck_assert_str_eq(qstate_of(&out, "q-a"), "restored");
    world_free(&w);
}
END_TEST

/* Live validation failing: failed at once, nothing PUT, the report stored,
 * the targets' reasons in the error. */
START_TEST(strategy_job_live_validation_fails)
{
    world_t w;
    runner_t r;
    gc_job_step_t out;

    world_init(&w, NULL);
    runner_init(&r, &w, 1);
    w.q[1].interacting = 10;
    w.q[2].skilled = 0;
    out = run(&r, 10);
    ck_assert_int_eq(out.outcome, GC_JOB_FAILED);
    ck_assert_int_eq((int)json_array_size(w.puts), 0);
    ck_assert_int_eq(w.q[0].gets + w.q[1].gets + w.q[2].gets, 0);
    ck_assert_str_eq(w.status, GC_STRATEGY_FAILED);
    ck_assert(strstr(w.error_message, "live validation failed") != NULL);
    ck_assert(strstr(w.error_message, "targets[1] (queue q-b) has no spare capacity") != NULL);
    ck_assert(strstr(w.error_message, "targets[2] (queue q-c) has no member with every required "
                                      "skill")
              != NULL);
    ck_assert(json_is_false(json_object_get(load(w.validation), "ok")));
    ck_assert_str_eq(json_string_value(json_object_get(load(out.result), "failed_phase")),
                     "validate");
    ck_assert_str_eq(json_string_value(json_object_get(load(out.outbox_body), "status")), "failed");
    world_free(&w);
}
END_TEST

/* Upstream faults before any write: again after the backoff (Retry-After
 * wins), then on; 403 fails untouched; past the deadline fails. Store faults
 * run the step again. A stop mid-call gives the job back. */
START_TEST(strategy_job_faults)
{
    world_t w;
    runner_t r;
    gc_job_step_t out;

    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    w.observe_count = 1;
    w.observe_kind = GC_ERR_THROTTLED;
    out = step(&r, 1);
    ck_assert_int_eq(out.outcome, GC_JOB_AGAIN);
    ck_assert_int_eq(r.waits[0], apr_time_from_sec(20));
    ck_assert(strstr(out.error, "reading the live figures: throttled") != NULL);
    w.q[1].get_count = 1;
    w.q[1].get_kind = GC_ERR_SERVER;
    out = step(&r, 1);
    ck_assert_int_eq(out.outcome, GC_JOB_AGAIN);
    ck_assert(strstr(out.error, "reading queue q-b") != NULL);
    ck_assert(strstr(out.step, "\"phase\":\"save\"") != NULL);
    ck_assert_int_eq(w.q[0].gets, 1);
    w.store_count = 1;
    out = step(&r, 1); /* saved; the store's failure waits for the settle */
    ck_assert_int_eq(out.outcome, GC_JOB_AGAIN);
    ck_assert_ptr_null(out.error);
    out = run(&r, 20);
    ck_assert_int_eq(out.outcome, GC_JOB_DONE);
    ck_assert_int_eq(w.q[0].gets, 2); /* saved once; confirmed once */
    world_free(&w);

    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    w.store_count = 1;
    out = step(&r, 1);
    ck_assert_int_eq(out.outcome, GC_JOB_AGAIN);
    ck_assert(strstr(out.error, "reading the strategy: scripted database failure") != NULL);
    ck_assert_int_eq(w.observes, 0);
    w.q[0].get_count = 1;
    w.q[0].get_kind = GC_ERR_FORBIDDEN;
    out = run(&r, 10);
    ck_assert_int_eq(out.outcome, GC_JOB_FAILED);
    ck_assert(strstr(w.error_message, "reading queue q-a: forbidden") != NULL);
    ck_assert_int_eq((int)json_array_size(w.puts), 0);
    world_free(&w);

    /* past the activation's deadline while the figures keep failing */
    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    w.observe_count = 1000;
    w.observe_kind = GC_ERR_SERVER;
    out = run(&r, 200);
    ck_assert_int_eq(out.outcome, GC_JOB_FAILED);
    ck_assert(r.now - r.job.created_at <= GC_STRATEGY_ACTIVATE_TIMEOUT);
    ck_assert(strstr(w.error_message, "still failing after") != NULL);
    world_free(&w);

    /* stopping mid-PUT: given back; the next claim resumes */
    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    out = step(&r, 1);
    w.q[0].put_count = 1;
    w.q[0].put_kind = GC_ERR_CANCELLED;
    out = step(&r, 1);
    ck_assert_int_eq(out.outcome, GC_JOB_GIVE_BACK);
    out = run(&r, 20);
    ck_assert_int_eq(out.outcome, GC_JOB_DONE);
    ck_assert_str_eq(w.status, GC_STRATEGY_ACTIVE);

    /* the row is not this job's activation: nothing touched, the row left */
    world_free(&w);
    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    w.job_id = "sact-other";
    out = run(&r, 5);
    ck_assert_int_eq(out.outcome, GC_JOB_FAILED);
    ck_assert_int_eq(w.observes, 0);
    ck_assert_int_eq(w.settles, 0);
    ck_assert_str_eq(w.status, GC_STRATEGY_ACTIVATING);
    world_free(&w);
}
END_TEST

/* A holder dying mid-step: the step's progress is lost, the next claim
 * continues from the last one written; the queue that was being PUT is
 * treated as possibly applied (re-read for its version; restored on
 * rollback). A holder dying between settle and the job's end settles the
 * same way. */
START_TEST(strategy_job_resume)
{
    world_t w;
    runner_t r;
    gc_job_step_t out;
    json_t *orig_b;

    /* the PUT of q-b landed, the step was not written: resumed, PUT again
     * with the fresh version, active */
    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    step(&r, 1); /* validate + save */
    step(&r, 1); /* q-a */
    out = step(&r, 0);
    ck_assert_int_eq(w.q[1].puts, 1); /* landed; progress lost */
    out = run(&r, 20);
    ck_assert_int_eq(out.outcome, GC_JOB_DONE);
    ck_assert_int_eq(w.q[1].puts, 2);
    ck_assert_int_eq(json_integer_value(json_object_get(w.q[1].body, "version")), 6);
    ck_assert_str_eq(w.status, GC_STRATEGY_ACTIVE);
    world_free(&w);

    /* the same, then q-c fails: q-b (possibly applied) is restored too */
    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    orig_b = keep(json_deep_copy(w.q[1].body));
    step(&r, 1);
    step(&r, 1);
    w.q[1].put_count = 1; /* the PUT lands, the holder dies before any answer */
    w.q[1].put_kind = GC_ERR_CANCELLED;
    w.q[1].put_lands = 1;
    out = step(&r, 0);
    w.q[1].get_count = 1; /* the resumed holder cannot re-read it: rollback */
    w.q[1].get_kind = GC_ERR_SERVER;
    out = run(&r, 30);
    ck_assert_int_eq(out.outcome, GC_JOB_FAILED);
    ck_assert_int_eq(w.q[1].puts, 2); /* the lost one, the restore */
    ck_assert(same_but_version(w.q[1].body, orig_b));
    ck_assert(strstr(w.error_message, "re-reading queue q-b") != NULL);
    ck_assert(strstr(w.error_message, "restored queue(s) q-a, q-b") != NULL);
    ck_assert_int_eq(w.q[2].puts, 0);
    world_free(&w);

    /* dying after settle, before the job's end: settled once, same outcome */
    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    for (;;) {
        out = step(&r, 1);
        if (strstr(out.step, "\"phase\":\"settle\"")) {
            break;
        }
    }
    out = step(&r, 0); /* settled; the job's end is lost */
    ck_assert_int_eq(out.outcome, GC_JOB_DONE);
    ck_assert_int_eq(w.settles, 1);
    out = step(&r, 1);
    ck_assert_int_eq(out.outcome, GC_JOB_DONE);
    ck_assert_int_eq(w.settles, 1);
    ck_assert_str_eq(w.status, GC_STRATEGY_ACTIVE);
    world_free(&w);
}
END_TEST

/* The strategy document's `activation` member. */
START_TEST(strategy_job_progress)
{
    world_t w;
    runner_t r;
    gc_job_step_t out;
    gc_result_t *res = gc_result_make(pool);
    gc_strategy_t *s = NULL;
    json_t *a;

    ck_assert_int_eq(gc_strategy_validate(pool, res, load(STRATEGY), &s), 0);
    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    r.job.state = "queued";
    a = keep(gc_strategy_job_progress_json(&r.job, s));
    ck_assert_str_eq(json_string_value(json_object_get(a, "job_id")), "sact-1");
    ck_assert_str_eq(json_string_value(json_object_get(a, "state")), "queued");
    ck_assert(json_is_null(json_object_get(a, "phase")));
    ck_assert(json_is_null(json_object_get(a, "error")));
    ck_assert_int_eq((int)json_array_size(json_object_get(a, "queues")), 3);
    ck_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(a, "queues"), 0), "state")),
                     "pending");
    r.job.state = "running";
    step(&r, 1);
    step(&r, 1);
    a = keep(gc_strategy_job_progress_json(&r.job, s));
    ck_assert_str_eq(json_string_value(json_object_get(a, "phase")), "apply");
    ck_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(a, "queues"), 0), "state")),
                     "applied");
    ck_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(a, "queues"), 1), "state")),
                     "saved");
    ck_assert_ptr_null(json_object_get(json_array_get(json_object_get(a, "queues"), 0), "saved"));
    out = run(&r, 20);
    ck_assert_int_eq(out.outcome, GC_JOB_DONE);
    r.job.state = "completed";
    r.job.result = out.result;
    a = keep(gc_strategy_job_progress_json(&r.job, s));
    ck_assert_str_eq(json_string_value(json_object_get(a, "phase")), "done");
    ck_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(a, "queues"), 2), "state")),
                     "confirmed");
    world_free(&w);

    world_init(&w, NULL);
    runner_init(&r, &w, 0);
    w.q[0].interacting = 50;
    out = run(&r, 20);
    r.job.state = "failed";
    r.job.result = out.result;
    r.job.error = out.error;
    a = keep(gc_strategy_job_progress_json(&r.job, s));
    ck_assert_str_eq(json_string_value(json_object_get(a, "phase")), "validate");
    ck_assert(strstr(json_string_value(json_object_get(a, "error")), "no spare capacity") != NULL);
    /* While the failure is being settled (the job still running, the
     * strategy maybe failed already): the phase that failed too. */
    r.job.state = "running";
    r.job.result = NULL;
    r.job.step = "{\"phase\":\"settle\",\"failed_phase\":\"validate\",\"outcome\":\"failed\"}";
    a = keep(gc_strategy_job_progress_json(&r.job, s));
    ck_assert_str_eq(json_string_value(json_object_get(a, "phase")), "validate");
    r.job.step = "{\"phase\":\"settle\",\"outcome\":\"active\"}";
    a = keep(gc_strategy_job_progress_json(&r.job, s));
    ck_assert_str_eq(json_string_value(json_object_get(a, "phase")), "settle");
    world_free(&w);

    /* the job as submitted */
    gc_strategy_job_make(pool, "strat-9", "bob", apr_time_from_sec(5), &r.job);
    ck_assert(strncmp(r.job.id, "sact-", 5) == 0);
    ck_assert_int_eq((int)strlen(r.job.id), 5 + 32);
    ck_assert_str_eq(r.job.kind, GC_STRATEGY_JOB_KIND);
    ck_assert_str_eq(r.job.target, "strat-9");
    ck_assert_str_eq(r.job.actor, "bob");
    ck_assert_str_eq(json_string_value(json_object_get(load(r.job.payload), "strategy_id")),
                     "strat-9");
    ck_assert(r.job.deadline_at == 0);
}
END_TEST

Suite *strategy_job_suite(void)
{
    Suite *s = suite_create("strategy_job");
    TCase *tc = tcase_create("strategy_job");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, strategy_job_activates);
    tcase_add_test(tc, strategy_job_no_required_skill);
    tcase_add_test(tc, strategy_job_readback_lag);
    tcase_add_test(tc, strategy_job_rollback);
    tcase_add_test(tc, strategy_job_restore_fails);
    tcase_add_test(tc, strategy_job_version_conflict);
    tcase_add_test(tc, strategy_job_live_validation_fails);
    tcase_add_test(tc, strategy_job_faults);
    tcase_add_test(tc, strategy_job_resume);
    tcase_add_test(tc, strategy_job_progress);
    suite_add_tcase(s, tc);
    return s;
}
