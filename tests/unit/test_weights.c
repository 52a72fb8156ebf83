/* The routing-weight distribution (gc_weights.c) driven through fake
 * callbacks: every validation rule (nothing upstream), membership, the
 * saturation projection, the queue read-modify-write with its 409 retry, the
 * member writes and their rollback, request counting, balance accuracy and
 * the request hash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "gc_result.h"
#include "gc_weights.h"
#include "unit.h"

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static apr_status_t release_json(void *data)
{
    json_decref(data);
    return APR_SUCCESS;
}

/* JSON from text, released with the test's pool. */
static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);

    ck_assert_msg(j != NULL, "bad test JSON: %s", e.text);
    apr_pool_cleanup_register(pool, j, release_json, apr_pool_cleanup_null);
    return j;
}

static char *dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    char *out = apr_pstrdup(pool, s ? s : "(null)");

    free(s);
    return out;
}

/* ---------------------------------------------------------------- the fake world */

#define MAX_MEMBERS 8
#define MAX_WRITES 32

typedef struct {
    const char *user_id;
    double proficiency;
    const char *state;
} skill_row_t;

typedef struct {
    /* the upstream */
    gc_weights_member_t members[MAX_MEMBERS];
    int n_members, page_size;
    gc_err_kind_e members_err, obs_err, skill_err, queue_get_err;
    double interacting, waiting;
    skill_row_t skills[MAX_MEMBERS];
    int n_skills;
    json_t *queue;       /* the queue as Genesys holds it */
    int queue_conflicts; /* PUTs answered 409 (someone else edits the queue first) */
    int put_fail_from;   /* the PUTs from this one (1-based) on answer 500; 0 none */
    const char *fail_user;
    gc_err_kind_e fail_kind; /* put_skills fails for fail_user, in the first batch */
    int fail_always;         /* … and in every batch (its restore too) */
    apr_time_t clock;
    /* what happened */
    int member_calls, obs_calls, skill_calls, queue_gets, queue_puts, batches;
    const char *put_bodies[4];
    gc_weights_write_t writes[MAX_WRITES];
    int n_writes, batch_size[4];
} world_t;

static gc_error_t *make_err(apr_pool_t *p, gc_err_kind_e kind, int status)
{
    gc_error_t *e = apr_pcalloc(p, sizeof(*e));
    e->kind = kind;
    e->status = status;
    e->message = "upstream said no";
    e->retry_after = kind == GC_ERR_THROTTLED ? apr_time_from_sec(7) : 0;
    return e;
}

static int status_of(gc_err_kind_e k)
{
    switch (k) {
    case GC_ERR_NOT_FOUND: return 404;
    case GC_ERR_THROTTLED: return 429;
    case GC_ERR_CLIENT: return 400;
    case GC_ERR_TIMEOUT: return 0;
    default: return 500;
    }
}

static apr_status_t w_members(void *b, apr_pool_t *p, const char *queue_id, int page,
                              apr_array_header_t **members, int *more, gc_error_t **err)
{
    world_t *w = b;
    int i, from = (page - 1) * w->page_size;

    ck_assert_str_eq(queue_id, "q-1");
    w->member_calls++;
    if (w->members_err) {
        *err = make_err(p, w->members_err, status_of(w->members_err));
        return APR_EGENERAL;
    }
    *members = apr_array_make(p, w->page_size, sizeof(gc_weights_member_t));
    for (i = from; i < w->n_members && i < from + w->page_size; i++) {
        APR_ARRAY_PUSH(*members, gc_weights_member_t) = w->members[i];
    }
    *more = from + w->page_size < w->n_members;
    return APR_SUCCESS;
}

static apr_status_t w_obs(void *b, apr_pool_t *p, const char *queue_id, double *interacting,
                          double *waiting, gc_error_t **err)
{
    world_t *w = b;
    w->obs_calls++;
    if (w->obs_err) {
        *err = make_err(p, w->obs_err, status_of(w->obs_err));
        return APR_EGENERAL;
    }
    *interacting = w->interacting;
    *waiting = w->waiting;
    return APR_SUCCESS;
}

static apr_status_t w_skill(void *b, apr_pool_t *p, const char *user_id, const char *skill_id,
                            gc_weights_skill_t *out, int *present, gc_error_t **err)
{
    world_t *w = b;
    int i;

    ck_assert_str_eq(skill_id, "sk-1");
    w->skill_calls++;
    if (w->skill_err) {
        *err = make_err(p, w->skill_err, status_of(w->skill_err));
        return APR_EGENERAL;
    }
    *present = 0;
    for (i = 0; i < w->n_skills; i++) {
        if (!strcmp(w->skills[i].user_id, user_id)) {
            *present = 1;
            out->proficiency = w->skills[i].proficiency;
            out->state = w->skills[i].state;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t w_get_queue(void *b, apr_pool_t *p, const char *queue_id, json_t **queue,
                                gc_error_t **err)
{
    world_t *w = b;
    w->queue_gets++;
    if (w->queue_get_err) {
        *err = make_err(p, w->queue_get_err, status_of(w->queue_get_err));
        return APR_EGENERAL;
    }
    *queue = json_deep_copy(w->queue);
    return APR_SUCCESS;
}

static void bump_version(world_t *w)
{
    json_t *v = json_object_get(w->queue, "version");
    if (v) {
        json_object_set_new(w->queue, "version", json_integer(json_integer_value(v) + 1));
    }
}

static apr_status_t w_put_queue(void *b, apr_pool_t *p, const char *queue_id, const json_t *queue,
                                gc_error_t **err)
{
    world_t *w = b;

    ck_assert_int_lt(w->queue_puts, 4);
    w->put_bodies[w->queue_puts++] = dump(queue);
    if (w->queue_conflicts > 0) {
        /* someone else changed the queue since our read */
        w->queue_conflicts--;
        json_object_set_new(w->queue, "description", json_string("edited meanwhile"));
        bump_version(w);
        *err = make_err(p, GC_ERR_CLIENT, 409);
        return APR_EGENERAL;
    }
    if (w->put_fail_from && w->queue_puts >= w->put_fail_from) {
        *err = make_err(p, GC_ERR_SERVER, 500);
        return APR_EGENERAL;
    }
    json_decref(w->queue);
    w->queue = json_deep_copy(queue);
    bump_version(w);
    return APR_SUCCESS;
}

static void w_get_skills(void *b, apr_pool_t *p, const char *skill_id, gc_weights_read_t *items,
                         size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        items[i].rv = w_skill(b, p, items[i].user_id, skill_id, &items[i].skill, &items[i].present,
                              &items[i].err);
    }
}

static void w_put_skills(void *b, apr_pool_t *p, const gc_weights_write_t *items, size_t n,
                         gc_weights_write_result_t *results)
{
    world_t *w = b;
    size_t i;

    w->batch_size[w->batches] = (int)n;
    for (i = 0; i < n; i++) {
        ck_assert_int_lt(w->n_writes, MAX_WRITES);
        w->writes[w->n_writes] = items[i];
        w->writes[w->n_writes].user_id = apr_pstrdup(pool, items[i].user_id);
        w->writes[w->n_writes].state = items[i].state ? apr_pstrdup(pool, items[i].state) : NULL;
        w->n_writes++;
        if ((w->batches == 0 || w->fail_always) && w->fail_user
            && !strcmp(items[i].user_id, w->fail_user)) {
            results[i].rv = APR_EGENERAL;
            results[i].err = make_err(p, w->fail_kind, status_of(w->fail_kind));
        }
        else {
            results[i].rv = APR_SUCCESS;
            results[i].err = NULL;
        }
    }
    w->batches++;
}

static apr_time_t w_now(void *b)
{
    world_t *w = b;
    w->clock += apr_time_from_msec(7);
    return w->clock;
}

static const char *const QUEUE =
    "{\"id\":\"q-1\",\"name\":\"Sales\",\"version\":3,\"skillEvaluationMethod\":\"NONE\","
    "\"acwSettings\":{\"wrapupPrompt\":\"OPTIONAL\",\"timeoutMs\":3000},\"memberCount\":5}";

/* Five members: u-1..u-3 on queue, u-4 OFF_QUEUE, u-5 not joined. Skills: u-1
 * 3.0 inactive, u-2 1.0 active, u-3 none. */
static void world_init(world_t *w)
{
    static const gc_weights_member_t members[] = {
        { "u-1", 1, "IDLE", NULL }, { "u-2", 1, "INTERACTING", NULL },
        { "u-3", 1, NULL, NULL },   { "u-4", 1, "OFF_QUEUE", NULL },
        { "u-5", 0, "IDLE", NULL },
    };
    memset(w, 0, sizeof(*w));
    memcpy(w->members, members, sizeof(members));
    w->n_members = 5;
    w->page_size = 100;
    w->interacting = 1;
    w->waiting = 1; /* load 2 over capacity 3 * 0.8 = 2.4: ratio 0.833 */
    w->skills[0] = (skill_row_t){ "u-1", 3.0, "inactive" };
    w->skills[1] = (skill_row_t){ "u-2", 1.0, "active" };
    w->n_skills = 2;
    w->queue = json_loads(QUEUE, 0, NULL);
    w->clock = apr_time_from_sec(1000000);
}

static void world_done(world_t *w)
{
    json_decref(w->queue);
    w->queue = NULL;
}

static const char *const BODY = "{\"member_weights\":{\"u-1\":0.4,\"u-2\":0.25,\"u-3\":0.1234},"
                                "\"overflow_threshold\":0.85,\"utilization_target\":0.8,"
                                "\"skill_id\":\"sk-1\",\"strategy_reference\":\"plan-7\"}";

static gc_result_t *run_q(world_t *w, const char *queue_id, const char *body_text,
                          const char *default_skill, gc_weights_out_t *out)
{
    gc_weights_ops_t ops = { w,           w_members,   w_obs,        w_get_skills,
                             w_get_queue, w_put_queue, w_put_skills, w_now };
    gc_weights_req_t req;
    gc_result_t *res = gc_result_make(pool);

    memset(&req, 0, sizeof(req));
    req.id = "dist-1";
    req.queue_id = queue_id;
    req.body = body_text ? load(body_text) : NULL;
    req.default_skill = default_skill;
    gc_weights_distribute(pool, &ops, &req, res, out);
    return res;
}

static gc_result_t *run(world_t *w, const char *body_text, gc_weights_out_t *out)
{
    return run_q(w, "q-1", body_text, NULL, out);
}

static int upstream_calls(const world_t *w)
{
    return w->member_calls + w->obs_calls + w->skill_calls + w->queue_gets + w->queue_puts
           + w->n_writes;
}

static int has_field(const gc_result_t *res, const char *field)
{
    size_t i;

    for (i = 0; res->errors && i < json_array_size(res->errors); i++) {
        if (!strcmp(json_string_value(json_object_get(json_array_get(res->errors, i), "field")),
                    field)) {
            return 1;
        }
    }
    return 0;
}

static json_t *extra(const gc_result_t *res, const char *key)
{
    return json_object_get(res->extra, key);
}

/* ---------------------------------------------------------------- validation */

/* One invalid request: 422 naming `field`, n_errors entries, no callback. */
static void expect_invalid(const char *queue_id, const char *body, const char *default_skill,
                           const char *field, size_t n_errors)
{
    world_t w;
    gc_weights_out_t out;
    gc_result_t *res;

    world_init(&w);
    res = run_q(&w, queue_id, body, default_skill, &out);
    ck_assert_int_eq(res->status, 422);
    ck_assert_str_eq(res->slug, "validation_failed");
    ck_assert_str_eq(out.status, "validation_failed");
    ck_assert_msg(has_field(res, field), "no error on %s for %s: %s", field, body,
                  dump(res->errors));
    ck_assert_msg(json_array_size(res->errors) == n_errors, "%s: %s", body, dump(res->errors));
    ck_assert_int_eq(upstream_calls(&w), 0);
    ck_assert_int_eq(out.upstream_requests, 0);
    ck_assert_int_eq(out.writes, 0);
    ck_assert_str_eq(json_string_value(extra(res, "status")), "validation_failed");
    ck_assert_str_eq(json_string_value(extra(res, "id")), "dist-1");
    if (strcmp(queue_id, "q-1")) {
        ck_assert(json_is_null(extra(res, "queue_id")));
    }
    world_done(&w);
}

#define T ",\"overflow_threshold\":0.85,\"utilization_target\":0.8"

START_TEST(weights_validation_rules)
{
    char *many = apr_palloc(pool, 32 * (GC_WEIGHTS_MAX_MEMBERS + 2));
    size_t len;
    int i;

    expect_invalid("q-1", "{\"member_weights\":{\"u-1\":1.5}" T "}", "sk-1", "member_weights.u-1",
                   1);
    expect_invalid("q-1", "{\"member_weights\":{\"u-1\":-0.1}" T "}", "sk-1", "member_weights.u-1",
                   1);
    expect_invalid("q-1", "{\"member_weights\":{\"u-1\":\"0.4\"}" T "}", "sk-1",
                   "member_weights.u-1", 1);
    expect_invalid("q-1", "{\"member_weights\":{\"u-1\":null}" T "}", "sk-1", "member_weights.u-1",
                   1);
    expect_invalid("q-1", "{\"member_weights\":{\"bad id!\":0.4}" T "}", "sk-1",
                   "member_weights.bad id!", 1);
    expect_invalid("q-1", "{\"member_weights\":{\"u-1\":0.6,\"u-2\":0.5}" T "}", "sk-1",
                   "member_weights", 1);
    expect_invalid("q-1", "{\"member_weights\":{}" T "}", "sk-1", "member_weights", 1);
    expect_invalid("q-1", "{\"member_weights\":[0.4]" T "}", "sk-1", "member_weights", 1);
    expect_invalid("q-1", "{\"overflow_threshold\":0.85,\"utilization_target\":0.8}", "sk-1",
                   "member_weights", 1);
    expect_invalid("q-1",
                   "{\"member_weights\":{\"u-1\":0.4},\"overflow_threshold\":1.5,"
                   "\"utilization_target\":0.8}",
                   "sk-1", "overflow_threshold", 1);
    expect_invalid("q-1",
                   "{\"member_weights\":{\"u-1\":0.4},\"overflow_threshold\":0.5,"
                   "\"utilization_target\":-0.2}",
                   "sk-1", "utilization_target", 1);
    expect_invalid("q-1", "{\"member_weights\":{\"u-1\":0.4},\"utilization_target\":0.8}", "sk-1",
                   "overflow_threshold", 1);
    expect_invalid("q-1",
                   "{\"member_weights\":{\"u-1\":0.4},\"overflow_threshold\":\"high\","
                   "\"utilization_target\":0.8}",
                   "sk-1", "overflow_threshold", 1);
    /* no skill: neither in the body nor GcmonWeightSkill */
    expect_invalid("q-1", "{\"member_weights\":{\"u-1\":0.4}" T "}", NULL, "skill_id", 1);
    expect_invalid("q-1", "{\"member_weights\":{\"u-1\":0.4}" T ",\"skill_id\":null}", NULL,
                   "skill_id", 1);
    expect_invalid("q-1", "{\"member_weights\":{\"u-1\":0.4}" T ",\"skill_id\":\"a b\"}", "sk-1",
                   "skill_id", 1);
    expect_invalid("q-1", "{\"member_weights\":{\"u-1\":0.4}" T ",\"skill_id\":7}", "sk-1",
                   "skill_id", 1);
    expect_invalid("q-1", "{\"member_weights\":{\"u-1\":0.4}" T ",\"projected_load\":-1}", "sk-1",
                   "projected_load", 1);
    expect_invalid("q-1", "{\"member_weights\":{\"u-1\":0.4}" T ",\"projected_load\":\"45\"}",
                   "sk-1", "projected_load", 1);
    expect_invalid("q-1", "{\"member_weights\":{\"u-1\":0.4}" T ",\"score\":1}", "sk-1", "score",
                   1);
    expect_invalid("q-1", "[1,2]", "sk-1", "body", 1);
    expect_invalid("q 1", "{\"member_weights\":{\"u-1\":0.4}" T "}", "sk-1", "queue_id", 1);
    expect_invalid("q-1",
                   apr_pstrcat(pool,
                               "{\"member_weights\":{\"u-1\":0.4}" T ",\"strategy_reference\":\"",
                               apr_psprintf(pool, "%0201d", 0), "\"}", NULL),
                   "sk-1", "strategy_reference", 1);
    /* too many members */
    len = (size_t)sprintf(many, "{\"member_weights\":{");
    for (i = 0; i <= GC_WEIGHTS_MAX_MEMBERS; i++) {
        len += (size_t)sprintf(many + len, "%s\"u-%d\":0", i ? "," : "", i);
    }
    expect_invalid("q-1", apr_pstrcat(pool, many, "}" T "}", NULL), "sk-1", "member_weights", 1);
    /* every problem collected, one entry each */
    expect_invalid("q 1",
                   "{\"member_weights\":{\"u-1\":2,\"x y\":0.1,\"u-3\":0.5},\"overflow_threshold\":"
                   "-1,\"projected_load\":-3,\"extra\":true}",
                   NULL, "member_weights.x y", 8);
}
END_TEST

START_TEST(weights_validation_accepts_edges)
{
    world_t w;
    gc_weights_out_t out;
    gc_result_t *res;

    /* sum within the epsilon (1.0000000000000002), thresholds at their bounds, the
     * skill from GcmonWeightSkill, weights 0 */
    world_init(&w);
    w.interacting = 0;
    w.waiting = 0;
    res = run_q(&w, "q-1",
                "{\"member_weights\":{\"u-1\":0.1,\"u-2\":0.2,\"u-3\":0.7},"
                "\"overflow_threshold\":0,\"utilization_target\":1}",
                "sk-1", &out);
    ck_assert_msg(res->status == 200, "%d %s %s", res->status, res->slug ? res->slug : "",
                  res->errors ? dump(res->errors) : "");
    world_done(&w);

    world_init(&w);
    res = run_q(&w, "q-1",
                "{\"member_weights\":{\"u-1\":0,\"u-2\":0},\"overflow_threshold\":1,"
                "\"utilization_target\":0.8,\"projected_load\":0}",
                "sk-1", &out);
    ck_assert_int_eq(res->status, 200);
    ck_assert_double_eq(json_real_value(json_object_get(res->doc, "balance_accuracy")), 100.0);
    ck_assert_int_eq(gc_weights_validate(gc_result_make(pool), "q-1",
                                         load("{\"member_weights\":{\"u-1\":1}" T "}"), "sk-1"),
                     0);
    world_done(&w);
}
END_TEST

/* ---------------------------------------------------------------- refusals before writing */

START_TEST(weights_non_member_refused)
{
    world_t w;
    gc_weights_out_t out;
    gc_result_t *res;

    world_init(&w);
    res = run(
        &w, "{\"member_weights\":{\"u-1\":0.4,\"u-9\":0.2,\"u-8\":0.1}" T ",\"skill_id\":\"sk-1\"}",
        &out);
    ck_assert_int_eq(res->status, 422);
    ck_assert_str_eq(res->slug, "validation_failed");
    ck_assert_str_eq(out.status, "validation_failed");
    ck_assert_int_eq(json_array_size(res->errors), 2);
    ck_assert(has_field(res, "member_weights.u-9"));
    ck_assert(has_field(res, "member_weights.u-8"));
    ck_assert_int_eq(w.member_calls, 1);
    ck_assert_int_eq(w.obs_calls + w.skill_calls + w.queue_gets + w.queue_puts + w.n_writes, 0);
    ck_assert_int_eq(out.writes, 0);
    ck_assert_int_eq(out.upstream_requests, 1);
    world_done(&w);
}
END_TEST

START_TEST(weights_members_paged)
{
    world_t w;
    gc_weights_out_t out;
    gc_result_t *res;

    /* u-3 is on the second of three pages */
    world_init(&w);
    w.page_size = 2;
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 200);
    ck_assert_int_eq(w.member_calls, 3);
    ck_assert_int_eq(json_integer_value(
                         json_object_get(json_object_get(res->doc, "saturation"), "active_agents")),
                     3);
    ck_assert_int_eq(out.upstream_requests, upstream_calls(&w));
    world_done(&w);
}
END_TEST

START_TEST(weights_saturation_blocked)
{
    world_t w;
    gc_weights_out_t out;
    gc_result_t *res;
    json_t *sat;
    int i;

    /* ratio above the threshold: load 3 over 3 * 0.8 = 2.4 is 1.25 */
    world_init(&w);
    w.interacting = 2;
    w.waiting = 1;
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 409);
    ck_assert_str_eq(res->slug, "saturation_blocked");
    ck_assert_str_eq(out.status, "saturation_blocked");
    sat = extra(res, "saturation");
    ck_assert_int_eq(json_integer_value(json_object_get(sat, "active_agents")), 3);
    ck_assert_double_eq_tol(json_real_value(json_object_get(sat, "capacity")), 2.4, 1e-9);
    ck_assert_double_eq(json_real_value(json_object_get(sat, "projected_load")), 3.0);
    ck_assert_double_eq_tol(json_real_value(json_object_get(sat, "ratio")), 1.25, 1e-9);
    ck_assert_int_eq(w.obs_calls, 1);
    ck_assert_int_eq(w.skill_calls + w.queue_gets + w.queue_puts + w.n_writes, 0);
    ck_assert_int_eq(out.writes, 0);
    ck_assert_int_eq(json_integer_value(extra(res, "upstream_requests")), 2);
    world_done(&w);

    /* projected_load from the body wins over the observations */
    world_init(&w);
    res = run(&w,
              "{\"member_weights\":{\"u-1\":0.4}" T ",\"skill_id\":\"sk-1\",\"projected_load\":45}",
              &out);
    ck_assert_int_eq(res->status, 409);
    ck_assert_int_eq(w.obs_calls, 0);
    ck_assert_double_eq(
        json_real_value(json_object_get(extra(res, "saturation"), "projected_load")), 45.0);
    world_done(&w);

    /* no capacity: nobody active (OFF_QUEUE, not joined) */
    world_init(&w);
    for (i = 0; i < 3; i++) {
        w.members[i].routing_status = "OFF_QUEUE";
    }
    w.interacting = 0;
    w.waiting = 0;
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 409);
    ck_assert_str_eq(res->slug, "saturation_blocked");
    sat = extra(res, "saturation");
    ck_assert_int_eq(json_integer_value(json_object_get(sat, "active_agents")), 0);
    ck_assert(json_is_null(json_object_get(sat, "ratio")));
    ck_assert_int_eq(w.skill_calls + w.queue_gets + w.queue_puts + w.n_writes, 0);
    world_done(&w);

    /* no capacity: utilization target 0 */
    world_init(&w);
    res = run(&w,
              "{\"member_weights\":{\"u-1\":0.4},\"overflow_threshold\":1,"
              "\"utilization_target\":0,\"skill_id\":\"sk-1\",\"projected_load\":0}",
              &out);
    ck_assert_int_eq(res->status, 409);
    ck_assert_int_eq(w.queue_puts + w.n_writes, 0);
    world_done(&w);
}
END_TEST

START_TEST(weights_read_failures)
{
    world_t w;
    gc_weights_out_t out;
    gc_result_t *res;

    world_init(&w);
    w.members_err = GC_ERR_NOT_FOUND;
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 404);
    ck_assert_str_eq(res->slug, "queue_not_found");
    ck_assert_str_eq(out.status, "projection_failed");
    world_done(&w);

    world_init(&w);
    w.obs_err = GC_ERR_THROTTLED;
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 503);
    ck_assert_str_eq(res->slug, "upstream_throttled");
    ck_assert_int_eq(res->retry_after, apr_time_from_sec(7));
    ck_assert_str_eq(out.status, "projection_failed");
    ck_assert_int_eq(w.queue_gets + w.n_writes, 0);
    world_done(&w);

    world_init(&w);
    w.skill_err = GC_ERR_SERVER;
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 502);
    ck_assert_str_eq(res->slug, "projection_failed");
    ck_assert_int_eq(w.skill_calls, 3); /* one batch, read concurrently by the glue */
    ck_assert_int_eq(w.queue_gets + w.queue_puts + w.n_writes, 0);
    ck_assert_int_eq(out.writes, 0);
    world_done(&w);
}
END_TEST

/* ---------------------------------------------------------------- writing */

START_TEST(weights_happy_path)
{
    world_t w;
    gc_weights_out_t out;
    gc_result_t *res;
    json_t *doc, *applied, *sat;

    world_init(&w);
    res = run(&w, BODY, &out);
    ck_assert_msg(res->status == 200, "%d %s", res->status, res->detail ? res->detail : "");
    ck_assert_str_eq(out.status, "completed");
    ck_assert_str_eq(out.id, "dist-1");
    /* the queue: one GET, one PUT of the same body with BEST, version as read */
    ck_assert_int_eq(w.queue_gets, 1);
    ck_assert_int_eq(w.queue_puts, 1);
    ck_assert_str_eq(w.put_bodies[0],
                     "{\"acwSettings\":{\"timeoutMs\":3000,\"wrapupPrompt\":\"OPTIONAL\"},"
                     "\"id\":\"q-1\",\"memberCount\":5,\"name\":\"Sales\","
                     "\"skillEvaluationMethod\":\"BEST\",\"version\":3}");
    /* the members: one batch, round(5w, 2), states kept */
    ck_assert_int_eq(w.batches, 1);
    ck_assert_int_eq(w.n_writes, 3);
    ck_assert_str_eq(w.writes[0].user_id, "u-1");
    ck_assert_str_eq(w.writes[0].skill_id, "sk-1");
    ck_assert_double_eq(w.writes[0].proficiency, 2.0);
    ck_assert_str_eq(w.writes[0].state, "inactive");
    ck_assert_str_eq(w.writes[1].user_id, "u-2");
    ck_assert_double_eq(w.writes[1].proficiency, 1.25);
    ck_assert_str_eq(w.writes[1].state, "active");
    ck_assert_str_eq(w.writes[2].user_id, "u-3");
    ck_assert_double_eq(w.writes[2].proficiency, 0.62);
    ck_assert_str_eq(w.writes[2].state, "active");
    ck_assert_int_eq(w.writes[0].remove + w.writes[1].remove + w.writes[2].remove, 0);
    /* the document, SPEC §5.4 */
    doc = res->doc;
    ck_assert_int_eq(json_object_size(doc), 11);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "id")), "dist-1");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "queue_id")), "q-1");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "status")), "completed");
    ck_assert_str_eq(dump(json_object_get(doc, "requested_weights")),
                     "{\"u-1\":0.40000000000000002,\"u-2\":0.25,\"u-3\":0.1234}");
    applied = json_object_get(doc, "applied_weights");
    ck_assert_double_eq(json_real_value(json_object_get(applied, "u-1")), 0.4);
    ck_assert_double_eq(json_real_value(json_object_get(applied, "u-2")), 0.25);
    ck_assert_double_eq(json_real_value(json_object_get(applied, "u-3")), 0.124);
    ck_assert_double_eq(json_real_value(json_object_get(doc, "overflow_threshold")), 0.85);
    ck_assert_double_eq(json_real_value(json_object_get(doc, "utilization_target")), 0.8);
    sat = json_object_get(doc, "saturation");
    ck_assert_int_eq(json_object_size(sat), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(sat, "active_agents")), 3);
    ck_assert_double_eq_tol(json_real_value(json_object_get(sat, "capacity")), 2.4, 1e-9);
    ck_assert_double_eq(json_real_value(json_object_get(sat, "projected_load")), 2.0);
    ck_assert_double_eq_tol(json_real_value(json_object_get(sat, "ratio")), 2.0 / 2.4, 1e-9);
    /* 100 * (1 - 0.0006 / 0.7734) */
    ck_assert_double_eq(json_real_value(json_object_get(doc, "balance_accuracy")), 99.92);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "latency_ms")), 7);
    /* members 1 + observations 1 + skills 3 + queue 2 + writes 3 */
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "upstream_requests")), 10);
    ck_assert_int_eq(out.upstream_requests, upstream_calls(&w));
    ck_assert_int_eq(out.upstream_requests, gc_weights_estimate_requests(3));
    ck_assert_int_eq(out.writes, 4);
    ck_assert_str_eq(json_string_value(json_object_get(w.queue, "skillEvaluationMethod")), "BEST");
    world_done(&w);
}
END_TEST

START_TEST(weights_queue_already_best_and_versionless)
{
    world_t w;
    gc_weights_out_t out;
    gc_result_t *res;

    /* already BEST: nothing to write to the queue */
    world_init(&w);
    json_object_set_new(w.queue, "skillEvaluationMethod", json_string("BEST"));
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 200);
    ck_assert_int_eq(w.queue_gets, 1);
    ck_assert_int_eq(w.queue_puts, 0);
    ck_assert_int_eq(out.upstream_requests, 9);
    world_done(&w);

    /* a queue without version (and without skillEvaluationMethod) goes back as read */
    world_init(&w);
    json_object_del(w.queue, "version");
    json_object_del(w.queue, "skillEvaluationMethod");
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(w.put_bodies[0],
                     "{\"acwSettings\":{\"timeoutMs\":3000,\"wrapupPrompt\":\"OPTIONAL\"},"
                     "\"id\":\"q-1\",\"memberCount\":5,\"name\":\"Sales\","
                     "\"skillEvaluationMethod\":\"BEST\"}");
    world_done(&w);
}
END_TEST

START_TEST(weights_queue_conflict_retried_once)
{
    world_t w;
    gc_weights_out_t out;
    gc_result_t *res;

    world_init(&w);
    w.queue_conflicts = 1;
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 200);
    ck_assert_int_eq(w.queue_gets, 2);
    ck_assert_int_eq(w.queue_puts, 2);
    /* the retry carries the re-read queue: the other edit and its version */
    ck_assert_str_eq(w.put_bodies[1],
                     "{\"acwSettings\":{\"timeoutMs\":3000,\"wrapupPrompt\":\"OPTIONAL\"},"
                     "\"description\":\"edited meanwhile\",\"id\":\"q-1\",\"memberCount\":5,"
                     "\"name\":\"Sales\",\"skillEvaluationMethod\":\"BEST\",\"version\":4}");
    ck_assert_int_eq(w.n_writes, 3);
    ck_assert_int_eq(out.upstream_requests, 12);
    ck_assert_int_eq(out.upstream_requests, upstream_calls(&w));
    world_done(&w);

    /* a second conflict: queue_update_failed, no member written */
    world_init(&w);
    w.queue_conflicts = 2;
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 502);
    ck_assert_str_eq(res->slug, "queue_update_failed");
    ck_assert_int_eq(w.queue_puts, 2);
    ck_assert_int_eq(w.n_writes, 0);
    world_done(&w);
}
END_TEST

START_TEST(weights_queue_update_failure_writes_nothing_else)
{
    world_t w;
    gc_weights_out_t out;
    gc_result_t *res;

    world_init(&w);
    w.put_fail_from = 1;
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 502);
    ck_assert_str_eq(res->slug, "queue_update_failed");
    ck_assert_str_eq(out.status, "queue_update_failed");
    ck_assert_str_eq(json_string_value(extra(res, "status")), "queue_update_failed");
    ck_assert_int_eq(w.queue_puts, 1);
    ck_assert_int_eq(w.queue_gets, 1);
    ck_assert_int_eq(w.n_writes, 0);
    ck_assert_int_eq(w.batches, 0);
    ck_assert_int_eq(out.writes, 1);
    ck_assert_int_eq(out.upstream_requests, upstream_calls(&w));
    world_done(&w);

    world_init(&w);
    w.queue_get_err = GC_ERR_SERVER;
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 502);
    ck_assert_str_eq(res->slug, "queue_update_failed");
    ck_assert_int_eq(w.queue_puts + w.n_writes, 0);
    world_done(&w);
}
END_TEST

START_TEST(weights_member_failure_rolls_back)
{
    world_t w;
    gc_weights_out_t out;
    gc_result_t *res;
    json_t *orig;

    /* the 3rd member's write fails (400): u-1 and u-2 get their old values back,
     * the queue its old skillEvaluationMethod */
    world_init(&w);
    w.fail_user = "u-3";
    w.fail_kind = GC_ERR_CLIENT;
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 502);
    ck_assert_str_eq(res->slug, "member_update_failed");
    ck_assert_str_eq(out.status, "member_update_failed");
    ck_assert_int_eq(w.batches, 2);
    ck_assert_int_eq(w.batch_size[0], 3);
    ck_assert_int_eq(w.batch_size[1], 2);
    ck_assert_str_eq(w.writes[3].user_id, "u-1");
    ck_assert_double_eq(w.writes[3].proficiency, 3.0);
    ck_assert_str_eq(w.writes[3].state, "inactive");
    ck_assert_int_eq(w.writes[3].remove, 0);
    ck_assert_str_eq(w.writes[4].user_id, "u-2");
    ck_assert_double_eq(w.writes[4].proficiency, 1.0);
    ck_assert_str_eq(w.writes[4].state, "active");
    ck_assert_int_eq(w.writes[4].remove, 0);
    /* the queue: re-read (version 4 after our PUT), put back with NONE */
    ck_assert_int_eq(w.queue_gets, 2);
    ck_assert_int_eq(w.queue_puts, 2);
    ck_assert_str_eq(w.put_bodies[1],
                     "{\"acwSettings\":{\"timeoutMs\":3000,\"wrapupPrompt\":\"OPTIONAL\"},"
                     "\"id\":\"q-1\",\"memberCount\":5,\"name\":\"Sales\","
                     "\"skillEvaluationMethod\":\"NONE\",\"version\":4}");
    orig = load(QUEUE);
    json_object_set_new(orig, "version", json_integer(5));
    ck_assert(json_equal(orig, w.queue));
    ck_assert_str_eq(dump(extra(res, "applied")), "[\"u-1\",\"u-2\"]");
    ck_assert_str_eq(dump(extra(res, "failed")), "[\"u-3\"]");
    ck_assert_str_eq(dump(extra(res, "rolled_back")), "[\"u-1\",\"u-2\"]");
    ck_assert_str_eq(dump(extra(res, "rollback_failed")), "[]");
    ck_assert(json_is_true(extra(res, "queue_restored")));
    /* 10 + 2 restores + queue GET and PUT */
    ck_assert_int_eq(out.upstream_requests, 14);
    ck_assert_int_eq(out.upstream_requests, upstream_calls(&w));
    ck_assert_int_eq(json_integer_value(extra(res, "upstream_requests")), 14);
    ck_assert_int_le(out.upstream_requests, gc_weights_max_requests(3));
    world_done(&w);
}
END_TEST

START_TEST(weights_rollback_of_absent_and_ambiguous)
{
    world_t w;
    gc_weights_out_t out;
    gc_result_t *res;

    /* u-1's write times out (it may have landed): restored too; u-3 had no
     * skill: removed; the queue had no skillEvaluationMethod: removed again */
    world_init(&w);
    json_object_del(w.queue, "skillEvaluationMethod");
    w.fail_user = "u-1";
    w.fail_kind = GC_ERR_TIMEOUT;
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 502);
    ck_assert_str_eq(res->slug, "member_update_failed");
    ck_assert_int_eq(w.batch_size[1], 3);
    ck_assert_str_eq(w.writes[3].user_id, "u-1");
    ck_assert_double_eq(w.writes[3].proficiency, 3.0);
    ck_assert_int_eq(w.writes[3].remove, 0);
    ck_assert_str_eq(w.writes[5].user_id, "u-3");
    ck_assert_int_eq(w.writes[5].remove, 1);
    ck_assert_str_eq(dump(extra(res, "applied")), "[\"u-2\",\"u-3\"]");
    ck_assert_str_eq(dump(extra(res, "failed")), "[\"u-1\"]");
    ck_assert_str_eq(dump(extra(res, "rolled_back")), "[\"u-1\",\"u-2\",\"u-3\"]");
    ck_assert_ptr_null(json_object_get(w.queue, "skillEvaluationMethod"));
    ck_assert(json_is_true(extra(res, "queue_restored")));
    world_done(&w);

    /* the queue restore (the second PUT) fails: reported, not hidden */
    world_init(&w);
    w.fail_user = "u-2";
    w.fail_kind = GC_ERR_FORBIDDEN;
    w.put_fail_from = 2;
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 502);
    ck_assert_str_eq(res->slug, "member_update_failed");
    ck_assert_int_eq(w.queue_puts, 2);
    ck_assert(json_is_false(extra(res, "queue_restored")));
    ck_assert_str_eq(dump(extra(res, "rolled_back")), "[\"u-1\",\"u-3\"]");
    ck_assert_ptr_nonnull(strstr(res->detail, "rollback was incomplete"));
    world_done(&w);
}
END_TEST

START_TEST(weights_rollback_failure_reported)
{
    world_t w;
    gc_weights_out_t out;
    gc_result_t *res;

    /* u-2's write times out, and so does its restore */
    world_init(&w);
    w.fail_user = "u-2";
    w.fail_kind = GC_ERR_TIMEOUT;
    w.fail_always = 1;
    res = run(&w, BODY, &out);
    ck_assert_int_eq(res->status, 502);
    ck_assert_str_eq(res->slug, "member_update_failed");
    ck_assert_int_eq(w.batch_size[1], 3);
    ck_assert_str_eq(dump(extra(res, "rolled_back")), "[\"u-1\",\"u-3\"]");
    ck_assert_str_eq(dump(extra(res, "rollback_failed")), "[\"u-2\"]");
    ck_assert(json_is_true(extra(res, "queue_restored")));
    ck_assert_ptr_nonnull(strstr(res->detail, "rollback was incomplete"));
    ck_assert_str_eq(json_string_value(extra(res, "id")), "dist-1");
    ck_assert_str_eq(json_string_value(extra(res, "queue_id")), "q-1");
    ck_assert_str_eq(json_string_value(extra(res, "status")), "member_update_failed");
    world_done(&w);
}
END_TEST

START_TEST(weights_audit_request)
{
    json_t *a;
    char *long_ref = apr_psprintf(pool, "%0201d", 0);

    a = gc_weights_audit_request(load(BODY));
    ck_assert_str_eq(dump(a), dump(load(BODY)));
    json_decref(a);
    a = gc_weights_audit_request(
        load(apr_pstrcat(pool,
                         "{\"member_weights\":{\"u-1\":\"x\",\"bad id\":1},\"skill_id\":[1],"
                         "\"projected_load\":null,\"token\":\"secret\",\"strategy_reference\":\"",
                         long_ref, "\"}", NULL)));
    ck_assert_str_eq(dump(a), "{\"member_weights\":{\"u-1\":null},\"projected_load\":null,"
                              "\"skill_id\":\"(not a scalar)\",\"strategy_reference\":\"(too "
                              "long)\"}");
    json_decref(a);
    a = gc_weights_audit_request(load("{\"member_weights\":[1]}"));
    ck_assert_str_eq(dump(a), "{\"member_weights\":\"(invalid)\"}");
    json_decref(a);
    a = gc_weights_audit_request(NULL);
    ck_assert_str_eq(dump(a), "{}");
    json_decref(a);
}
END_TEST

/* ---------------------------------------------------------------- helpers */

START_TEST(weights_figures_and_hash)
{
    const char *h1, *h2;
    double req[] = { 0.5, 0.3 }, app[] = { 0.5, 0.3 }, app2[] = { 0.4, 0.3 };
    world_t w;
    gc_weights_out_t out;
    gc_result_t *res;

    ck_assert_double_eq(gc_weights_proficiency(0.4), 2.0);
    ck_assert_double_eq(gc_weights_proficiency(0.1234), 0.62);
    ck_assert_double_eq(gc_weights_proficiency(1), 5.0);
    ck_assert_double_eq(gc_weights_proficiency(0), 0.0);
    ck_assert_double_eq(gc_weights_balance_accuracy(req, app, 2), 100.0);
    ck_assert_double_eq(gc_weights_balance_accuracy(req, app2, 2), 87.5);
    ck_assert_double_eq(gc_weights_balance_accuracy(app2, app2, 0), 100.0);

    ck_assert_int_eq(gc_weights_estimate_requests(1), 1 + 1 + 1 + 2 + 1);
    ck_assert_int_eq(gc_weights_estimate_requests(100), 1 + 1 + 100 + 2 + 100);
    ck_assert_int_eq(gc_weights_estimate_requests(101), 2 + 1 + 101 + 2 + 101);
    ck_assert_int_eq(gc_weights_max_requests(3), 10 + 2 + 3 + 4);

    /* canonical: member order and blanks do not matter; the queue does */
    h1 = gc_weights_request_hash(pool, "q-1",
                                 load("{\"member_weights\":{\"u-1\":0.5,\"u-2\":0.25},"
                                      "\"overflow_threshold\":0.75,\"utilization_target\":0.5}"));
    h2 = gc_weights_request_hash(pool, "q-1",
                                 load("{ \"utilization_target\": 0.5, \"overflow_threshold\":0.75,"
                                      " \"member_weights\": {\"u-2\":0.25, \"u-1\":0.50}}"));
    ck_assert_str_eq(h1, "66a16ac7e572ad1f9270a774fb204a3e0b883cc72a55ca48eb42c0c48db5346d");
    ck_assert_str_eq(h1, h2);
    ck_assert_str_ne(h1, gc_weights_request_hash(
                             pool, "q-2",
                             load("{\"member_weights\":{\"u-1\":0.5,\"u-2\":0.25},"
                                  "\"overflow_threshold\":0.75,\"utilization_target\":0.5}")));
    ck_assert_str_ne(h1, gc_weights_request_hash(
                             pool, "q-1",
                             load("{\"member_weights\":{\"u-1\":0.5,\"u-2\":0.26},"
                                  "\"overflow_threshold\":0.75,\"utilization_target\":0.5}")));
    ck_assert_int_eq(strlen(gc_weights_request_hash(pool, "q-1", NULL)), 64);

    /* an id made by the engine when the glue gives none */
    world_init(&w);
    {
        gc_weights_ops_t ops = { &w,          w_members,   w_obs,        w_get_skills,
                                 w_get_queue, w_put_queue, w_put_skills, NULL };
        gc_weights_req_t rq = { NULL, "q-1", load(BODY), NULL };
        res = gc_result_make(pool);
        gc_weights_distribute(pool, &ops, &rq, res, &out);
    }
    ck_assert_int_eq(res->status, 200);
    ck_assert_int_eq(strlen(out.id), 5 + 32);
    ck_assert(!strncmp(out.id, "dist-", 5));
    ck_assert_str_eq(json_string_value(json_object_get(res->doc, "id")), out.id);
    world_done(&w);
}
END_TEST

static gc_result_t *preview(world_t *w, const char *queue_id, const char *skill,
                            const char *default_skill, int *requests)
{
    gc_weights_ops_t ops = { w,           w_members,   w_obs,        w_get_skills,
                             w_get_queue, w_put_queue, w_put_skills, w_now };
    gc_result_t *res = gc_result_make(pool);

    gc_weights_preview(pool, &ops, queue_id, skill, default_skill, res, requests);
    return res;
}

/* The editor's view: every member (every page) with its proficiency, the
 * load; nothing written; bad ids and no skill refused before any read. */
START_TEST(weights_preview_lists_members_and_load)
{
    world_t w;
    gc_result_t *res;
    json_t *members, *m;
    int requests = 0;

    world_init(&w);
    w.page_size = 2; /* 5 members: 3 pages */
    w.members[0].name = "Ann";
    res = preview(&w, "q-1", NULL, "sk-1", &requests);
    ck_assert_int_eq(res->status, 200);
    ck_assert_int_eq(w.member_calls, 3);
    ck_assert_int_eq(w.obs_calls, 1);
    ck_assert_int_eq(w.skill_calls, 5);
    ck_assert_int_eq(requests, 3 + 1 + 5);
    ck_assert_int_eq(w.queue_gets + w.queue_puts + w.n_writes, 0);
    ck_assert_str_eq(json_string_value(json_object_get(res->doc, "skill_id")), "sk-1");
    members = json_object_get(res->doc, "members");
    ck_assert_int_eq(json_array_size(members), 5);
    m = json_array_get(members, 0);
    ck_assert_str_eq(json_string_value(json_object_get(m, "name")), "Ann");
    ck_assert(json_real_value(json_object_get(m, "proficiency")) == 3.0);
    ck_assert(json_real_value(json_object_get(m, "weight")) == 0.6);
    ck_assert_str_eq(json_string_value(json_object_get(m, "state")), "inactive");
    ck_assert(json_is_true(json_object_get(m, "active")));
    m = json_array_get(members, 2); /* u-3: no skill */
    ck_assert(json_is_null(json_object_get(m, "proficiency")));
    ck_assert(json_is_null(json_object_get(m, "weight")));
    ck_assert(json_is_false(json_object_get(json_array_get(members, 3), "active"))); /* OFF_QUEUE */
    ck_assert(json_is_false(json_object_get(json_array_get(members, 4), "active"))); /* unjoined */
    m = json_object_get(res->doc, "saturation");
    ck_assert_int_eq(json_integer_value(json_object_get(m, "active_agents")), 3);
    ck_assert(json_real_value(json_object_get(m, "projected_load")) == 2.0);

    /* the body's skill wins over GcmonWeightSkill */
    w.skills[2] = (skill_row_t){ "u-3", 2.5, "active" };
    w.n_skills = 3;
    res = preview(&w, "q-1", "sk-1", "sk-other", NULL);
    ck_assert_int_eq(res->status, 200);
    m = json_array_get(json_object_get(res->doc, "members"), 2);
    ck_assert(json_real_value(json_object_get(m, "weight")) == 0.5);

    /* refusals before any read */
    w.member_calls = 0;
    ck_assert_int_eq(preview(&w, "q 1", NULL, "sk-1", NULL)->status, 400);
    res = preview(&w, "q-1", NULL, NULL, NULL);
    ck_assert_int_eq(res->status, 422);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(res->errors, 0), "field")),
                     "skill_id");
    ck_assert_int_eq(preview(&w, "q-1", "bad skill", "sk-1", NULL)->status, 422);
    ck_assert_int_eq(w.member_calls, 0);

    /* an unknown queue, a failed skill read */
    w.members_err = GC_ERR_NOT_FOUND;
    res = preview(&w, "q-1", NULL, "sk-1", NULL);
    ck_assert_int_eq(res->status, 404);
    ck_assert_str_eq(res->slug, "queue_not_found");
    w.members_err = 0;
    w.skill_err = GC_ERR_THROTTLED;
    res = preview(&w, "q-1", NULL, "sk-1", NULL);
    ck_assert_int_eq(res->status, 503);
    ck_assert_int_eq(w.n_writes, 0);
    world_done(&w);
}
END_TEST

Suite *weights_suite(void)
{
    Suite *s = suite_create("weights");
    TCase *tc = tcase_create("distribution");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, weights_validation_rules);
    tcase_add_test(tc, weights_validation_accepts_edges);
    tcase_add_test(tc, weights_non_member_refused);
    tcase_add_test(tc, weights_members_paged);
    tcase_add_test(tc, weights_saturation_blocked);
    tcase_add_test(tc, weights_read_failures);
    tcase_add_test(tc, weights_preview_lists_members_and_load);
    tcase_add_test(tc, weights_happy_path);
    tcase_add_test(tc, weights_queue_already_best_and_versionless);
    tcase_add_test(tc, weights_queue_conflict_retried_once);
    tcase_add_test(tc, weights_queue_update_failure_writes_nothing_else);
    tcase_add_test(tc, weights_member_failure_rolls_back);
    tcase_add_test(tc, weights_rollback_of_absent_and_ambiguous);
    tcase_add_test(tc, weights_rollback_failure_reported);
    tcase_add_test(tc, weights_audit_request);
    tcase_add_test(tc, weights_figures_and_hash);
    suite_add_tcase(s, tc);
    return s;
}
