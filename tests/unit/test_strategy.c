/* gc_strategy: the structural rules (one error entry and field each), the
 * live validation report, rebalanced weights, the route table (distribution,
 * tiers, fallback, staleness, flat layout) and the WFM webhook body. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include <apr_strings.h>

#include "gc_strategy.h"
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

static apr_status_t decref(void *j)
{
    json_decref(j);
    return APR_SUCCESS;
}

/* A reference released with the pool. */
static json_t *keep(json_t *j)
{
    ck_assert(j != NULL);
    apr_pool_cleanup_register(pool, j, decref, apr_pool_cleanup_null);
    return j;
}

static json_t *load(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);

    ck_assert_msg(j != NULL, "bad test JSON: %s", text);
    return keep(j);
}

static const char *dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    const char *out = apr_pstrdup(pool, s);

    free(s);
    return out;
}

#define GOOD                                                                           \
    "{\"name\":\"Support\",\"description\":\"tiers\","                                 \
    "\"selection_criteria\":{\"skills\":[{\"skill_id\":\"sk-1\",\"required\":true},"   \
    "{\"skill_id\":\"sk-2\",\"required\":false}]},"                                    \
    "\"targets\":[{\"queue_id\":\"q-a\",\"priority\":1,\"weight\":1,\"capacity\":10}," \
    "{\"queue_id\":\"q-b\",\"priority\":1,\"weight\":3,\"capacity\":20},"              \
    "{\"queue_id\":\"q-c\",\"priority\":2,\"weight\":0.5,\"capacity\":5}],"            \
    "\"fallback\":{\"queue_id\":\"q-fb\",\"priority\":99,\"weight\":0.1}}"

static gc_strategy_t *good(void)
{
    gc_result_t *res = gc_result_make(pool);
    gc_strategy_t *s = NULL;

    ck_assert_int_eq(gc_strategy_validate(pool, res, load(GOOD), &s), 0);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* Validate body; the number of errors must be `n`; res returned. */
static gc_result_t *invalid(const char *body, int n)
{
    gc_result_t *res = gc_result_make(pool);
    gc_strategy_t *s = (gc_strategy_t *)1;
    int got = gc_strategy_validate(pool, res, body ? load(body) : NULL, &s);

    ck_assert_msg(got == n, "%d errors, not %d: %s", got, n, dump(keep(gc_result_json(res))));
    if (n) {
        ck_assert_ptr_null(s);
        ck_assert_int_eq(res->status, 422);
        ck_assert_str_eq(res->slug, "validation_failed");
    }
    return res;
}

static const char *field(const gc_result_t *res, size_t i)
{
    return json_string_value(json_object_get(json_array_get(res->errors, i), "field"));
}

static const char *message(const gc_result_t *res, size_t i)
{
    return json_string_value(json_object_get(json_array_get(res->errors, i), "message"));
}

/* The body GOOD with `from` replaced by `to` (first occurrence). */
static const char *edit(const char *from, const char *to)
{
    const char *at = strstr(GOOD, from);

    ck_assert_msg(at != NULL, "%s not in GOOD", from);
    return apr_pstrcat(pool, apr_pstrmemdup(pool, GOOD, (apr_size_t)(at - GOOD)), to,
                       at + strlen(from), NULL);
}

/* One error, on field f. */
static void one(const char *body, const char *f)
{
    gc_result_t *res = invalid(body, 1);

    ck_assert_str_eq(field(res, 0), f);
}

/* ---------------------------------------------------------------- structure */

START_TEST(strategy_valid_parses)
{
    gc_strategy_t *s = good();

    ck_assert_str_eq(s->name, "Support");
    ck_assert_str_eq(s->description, "tiers");
    ck_assert_int_eq(s->n_skills, 2);
    ck_assert_str_eq(s->skills[0].skill_id, "sk-1");
    ck_assert_int_eq(s->skills[0].required, 1);
    ck_assert_int_eq(s->skills[1].required, 0);
    ck_assert_int_eq(s->n_targets, 3);
    ck_assert_str_eq(s->targets[1].queue_id, "q-b");
    ck_assert_int_eq(s->targets[1].priority, 1);
    ck_assert_double_eq(s->targets[1].weight, 3);
    ck_assert_int_eq(s->targets[1].capacity, 20);
    ck_assert_str_eq(s->fallback.queue_id, "q-fb");
    ck_assert_int_eq(s->fallback.priority, 99);
    ck_assert_double_eq(s->fallback.weight, 0.1);
    ck_assert_str_eq(
        dump(keep(gc_strategy_json(s))),
        "{\"name\":\"Support\",\"description\":\"tiers\",\"selection_criteria\":{\"skills\":"
        "[{\"skill_id\":\"sk-1\",\"required\":true},{\"skill_id\":\"sk-2\",\"required\":false}]},"
        "\"targets\":[{\"queue_id\":\"q-a\",\"priority\":1,\"weight\":1.0,\"capacity\":10},"
        "{\"queue_id\":\"q-b\",\"priority\":1,\"weight\":3.0,\"capacity\":20},"
        "{\"queue_id\":\"q-c\",\"priority\":2,\"weight\":0.5,\"capacity\":5}],"
        "\"fallback\":{\"queue_id\":\"q-fb\",\"priority\":99,\"weight\":0.10000000000000001}}");

    /* The canonical JSON validates again to the same JSON; no criteria, no
     * description: null and []. */
    {
        gc_result_t *res = gc_result_make(pool);
        gc_strategy_t *t = NULL;
        json_t *c = keep(gc_strategy_json(s));

        ck_assert_int_eq(gc_strategy_validate(pool, res, c, &t), 0);
        ck_assert_str_eq(dump(keep(gc_strategy_json(t))), dump(c));
        ck_assert_int_eq(
            gc_strategy_validate(pool, res,
                                 load("{\"name\":\"n\",\"targets\":[{\"queue_id\":\"q\","
                                      "\"priority\":1,\"weight\":2,\"capacity\":1}],"
                                      "\"fallback\":{\"queue_id\":\"f\",\"priority\":1,"
                                      "\"weight\":1}}"),
                                 &t),
            0);
        ck_assert_str_eq(dump(keep(gc_strategy_json(t))),
                         "{\"name\":\"n\",\"description\":null,\"selection_criteria\":"
                         "{\"skills\":[]},\"targets\":[{\"queue_id\":\"q\",\"priority\":1,"
                         "\"weight\":2.0,\"capacity\":1}],\"fallback\":{\"queue_id\":\"f\","
                         "\"priority\":1,\"weight\":1.0}}");
    }
}
END_TEST

START_TEST(strategy_structure_rules)
{
    gc_result_t *res;

    /* The body itself. */
    one("[]", "body");
    res = invalid(NULL, 3);
    ck_assert_str_eq(field(res, 0), "name");
    ck_assert_str_eq(field(res, 1), "targets");
    ck_assert_str_eq(field(res, 2), "fallback");
    ck_assert_str_eq(message(res, 0), "name is required");
    ck_assert_str_eq(res->error_type, "missing_field");

    /* name */
    one(edit("\"Support\"", "\"\""), "name");
    one(edit("\"Support\"", "\"   \""), "name");
    one(edit("\"Support\"", "7"), "name");
    {
        char big[GC_STRATEGY_MAX_NAME + 2];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        one(edit("Support", big), "name");
        big[sizeof(big) - 2] = '\0'; /* 100 characters pass */
        invalid(edit("Support", big), 0);
    }
    one(edit("\"tiers\"", "[]"), "description");
    invalid(edit("\"tiers\"", "null"), 0);

    /* targets: count, type, items */
    res = invalid(edit("\"targets\":[", "\"targets\":[],\"x\":["), 2);
    ck_assert_str_eq(field(res, 0), "targets");
    ck_assert_str_eq(field(res, 1), "x");
    res = invalid("{\"name\":\"n\",\"targets\":[],\"fallback\":{\"queue_id\":\"f\",\"priority\":1,"
                  "\"weight\":1}}",
                  1);
    ck_assert_str_eq(field(res, 0), "targets");
    ck_assert_str_eq(message(res, 0), "targets must be 1 to 50 items");
    {
        char *body = apr_pstrdup(pool, "{\"name\":\"n\",\"fallback\":{\"queue_id\":\"f\","
                                       "\"priority\":1,\"weight\":1},\"targets\":[");
        int i;
        for (i = 0; i < GC_STRATEGY_MAX_TARGETS + 1; i++) {
            body = apr_psprintf(pool,
                                "%s%s{\"queue_id\":\"q%d\",\"priority\":1,\"weight\":1,"
                                "\"capacity\":1}",
                                body, i ? "," : "", i);
        }
        one(apr_pstrcat(pool, body, "]}", NULL), "targets");
    }
    one(edit("{\"queue_id\":\"q-b\",\"priority\":1,\"weight\":3,\"capacity\":20}", "\"q-b\""),
        "targets[1]");
    one(edit("\"queue_id\":\"q-b\"", "\"queue_id\":\"q b\""), "targets[1].queue_id");
    one(edit("\"queue_id\":\"q-b\",", ""), "targets[1].queue_id");
    one(edit("\"queue_id\":\"q-b\"", "\"queue_id\":\"q-a\""), "targets[1].queue_id");
    res = invalid(edit("\"queue_id\":\"q-c\"", "\"queue_id\":\"q-a\""), 1);
    ck_assert_str_eq(field(res, 0), "targets[2].queue_id");
    ck_assert_str_eq(message(res, 0), "targets[2].queue_id duplicates targets[0].queue_id: each "
                                      "queue is a target once");
    ck_assert_str_eq(res->error_type, "duplicate_key");
    one(edit("\"weight\":0.5", "\"weight\":0"), "targets[2].weight");
    one(edit("\"weight\":0.5", "\"weight\":-1"), "targets[2].weight");
    one(edit("\"weight\":0.5", "\"weight\":\"1\""), "targets[2].weight");
    one(edit("\"weight\":0.5", "\"weight\":1e7"), "targets[2].weight");
    one(edit("\"capacity\":5", "\"capacity\":0"), "targets[2].capacity");
    one(edit("\"capacity\":5", "\"capacity\":2.5"), "targets[2].capacity");
    one(edit("\"capacity\":5", "\"capacity\":100001"), "targets[2].capacity");
    one(edit("\"priority\":2", "\"priority\":1.5"), "targets[2].priority");
    one(edit("\"priority\":2", "\"priority\":0"), "targets[2].priority");
    one(edit("\"priority\":2", "\"priority\":100"), "targets[2].priority");
    one(edit("\"capacity\":5", "\"capacity\":5,\"status\":\"draft\""), "targets[2].status");

    /* fallback */
    one(edit("\"queue_id\":\"q-fb\"", "\"queue_id\":\"q-b\""), "fallback.queue_id");
    res = invalid(edit("\"queue_id\":\"q-fb\"", "\"queue_id\":\"q-c\""), 1);
    ck_assert_str_eq(message(res, 0), "fallback.queue_id is also targets[2].queue_id: the "
                                      "fallback must not be a target (a routing cycle)");
    one(edit("\"queue_id\":\"q-fb\"", "\"queue_id\":\"\""), "fallback.queue_id");
    one(edit("\"weight\":0.1", "\"weight\":0"), "fallback.weight");
    one(edit("\"priority\":99", "\"priority\":\"99\""), "fallback.priority");
    one(edit("\"weight\":0.1", "\"weight\":0.1,\"capacity\":3"), "fallback.capacity");
    one(edit("\"fallback\":{\"queue_id\":\"q-fb\",\"priority\":99,\"weight\":0.1}",
             "\"fallback\":[]"),
        "fallback");

    /* selection criteria */
    one(edit("\"skill_id\":\"sk-2\"", "\"skill_id\":\"sk-1\""),
        "selection_criteria.skills[1].skill_id");
    one(edit("\"skill_id\":\"sk-2\"", "\"skill_id\":\"a/b\""),
        "selection_criteria.skills[1].skill_id");
    one(edit("\"required\":false", "\"required\":0"), "selection_criteria.skills[1].required");
    one(edit(",\"required\":false", ""), "selection_criteria.skills[1].required");
    one(edit("\"required\":false", "\"required\":false,\"level\":1"),
        "selection_criteria.skills[1].level");
    one(edit("\"skills\":", "\"skill\":"), "selection_criteria.skill");
    one(edit("{\"skills\":[", "{\"skills\":[7,"), "selection_criteria.skills[0]");
    res = invalid(edit("\"selection_criteria\":{", "\"selection_criteria\":[],\"y\":{"), 2);
    ck_assert_str_eq(field(res, 0), "selection_criteria");
    ck_assert_str_eq(field(res, 1), "y");

    /* unknown top-level members: the client's status is refused */
    one(edit("\"name\"", "\"status\":\"draft\",\"name\""), "status");

    /* every problem its own entry, in order */
    res = invalid("{\"name\":\"\",\"targets\":[{\"queue_id\":\"q-1\",\"priority\":1,\"weight\":0,"
                  "\"capacity\":1},{\"queue_id\":\"q-1\",\"priority\":1,\"weight\":1,"
                  "\"capacity\":0},{\"queue_id\":\"q-2\",\"priority\":1,\"weight\":-2,"
                  "\"capacity\":1}],\"fallback\":{\"queue_id\":\"q-2\",\"priority\":1,"
                  "\"weight\":1}}",
                  6);
    ck_assert_str_eq(field(res, 0), "name");
    ck_assert_str_eq(field(res, 1), "targets[0].weight");
    ck_assert_str_eq(field(res, 2), "targets[1].capacity");
    ck_assert_str_eq(field(res, 3), "targets[2].weight");
    ck_assert_str_eq(field(res, 4), "targets[1].queue_id");
    ck_assert_str_eq(field(res, 5), "fallback.queue_id");
    ck_assert_str_eq(res->detail, "6 fields are invalid");
}
END_TEST

/* ---------------------------------------------------------------- live figures */

START_TEST(strategy_live_validation)
{
    gc_strategy_t *s = good();
    gc_strategy_live_t ok[3] = { { 1, 4, 1 }, { 1, 19, 1 }, { 1, 0, 1 } };
    gc_strategy_live_t bad[3] = { { 1, 10, 1 }, { 0, 0, 0 }, { 1, 2, -1 } };
    gc_result_t *res = gc_result_make(pool);
    json_t *report = NULL, *problem;

    ck_assert_int_eq(gc_strategy_judge(res, s, ok, &report), 0);
    keep(report);
    ck_assert_int_eq(res->status, 0);
    ck_assert_str_eq(
        dump(report),
        "{\"ok\":true,\"targets\":["
        "{\"queue_id\":\"q-a\",\"spare_capacity\":6.0,\"skilled_members\":true,\"ok\":true,"
        "\"reasons\":[]},"
        "{\"queue_id\":\"q-b\",\"spare_capacity\":1.0,\"skilled_members\":true,\"ok\":true,"
        "\"reasons\":[]},"
        "{\"queue_id\":\"q-c\",\"spare_capacity\":5.0,\"skilled_members\":true,\"ok\":true,"
        "\"reasons\":[]}]}");

    res = gc_result_make(pool);
    ck_assert_int_eq(gc_strategy_judge(res, s, bad, &report), 3);
    keep(report);
    ck_assert_str_eq(
        dump(report),
        "{\"ok\":false,\"targets\":["
        "{\"queue_id\":\"q-a\",\"spare_capacity\":0.0,\"skilled_members\":true,\"ok\":false,"
        "\"reasons\":[\"no_spare_capacity\"]},"
        "{\"queue_id\":\"q-b\",\"spare_capacity\":null,\"skilled_members\":false,\"ok\":false,"
        "\"reasons\":[\"observations_unavailable\",\"no_skilled_member\"]},"
        "{\"queue_id\":\"q-c\",\"spare_capacity\":3.0,\"skilled_members\":null,\"ok\":false,"
        "\"reasons\":[\"members_unavailable\"]}]}");
    ck_assert_int_eq(res->status, 422);
    ck_assert_str_eq(res->slug, "validation_failed");
    ck_assert_int_eq(json_array_size(res->errors), 4);
    ck_assert_str_eq(field(res, 0), "targets[0]");
    ck_assert_str_eq(message(res, 0),
                     "targets[0] (queue q-a) has no spare capacity: capacity 10, 10 interacting");
    ck_assert_str_eq(field(res, 1), "targets[1]");
    ck_assert_str_eq(field(res, 2), "targets[1]");
    ck_assert_str_eq(message(res, 2),
                     "targets[1] (queue q-b) has no member with every required skill");
    ck_assert_str_eq(field(res, 3), "targets[2]");
    problem = keep(gc_result_json(res));
    ck_assert(json_equal(json_object_get(problem, "validation"), report));

    /* Over capacity, negative or non-finite observations. */
    {
        gc_strategy_live_t odd[3] = { { 1, 12, 1 }, { 1, -1, 1 }, { 1, NAN, 1 } };
        res = gc_result_make(pool);
        ck_assert_int_eq(gc_strategy_judge(res, s, odd, &report), 3);
        keep(report);
        ck_assert_double_eq(
            json_real_value(json_object_get(json_array_get(json_object_get(report, "targets"), 0),
                                            "spare_capacity")),
            -2);
        ck_assert(json_is_null(json_object_get(
            json_array_get(json_object_get(report, "targets"), 1), "spare_capacity")));
    }
}
END_TEST

START_TEST(strategy_rebalance_weights)
{
    gc_strategy_t *s = good(), *n = NULL;
    /* q-a 5/10 → 1/1.5; q-b unobserved → kept (3); q-c 10/5 (over) → 1/3 */
    gc_strategy_live_t live[3] = { { 1, 5, 0 }, { 0, 0, 0 }, { 1, 10, 0 } };
    json_t *report = NULL, *rows;

    ck_assert_int_eq(gc_strategy_rebalance(pool, s, live, &n, &report), 2);
    keep(report);
    ck_assert_double_eq_tol(n->targets[0].weight, 1.0 / 1.5, 1e-15);
    ck_assert_double_eq(n->targets[1].weight, 3);
    ck_assert_double_eq_tol(n->targets[2].weight, 1.0 / 3.0, 1e-15);
    ck_assert_double_eq(n->fallback.weight, 0.1);
    ck_assert_double_eq(s->targets[0].weight, 1); /* the original is untouched */
    ck_assert_str_eq(n->name, "Support");
    rows = json_object_get(report, "targets");
    ck_assert_int_eq(json_integer_value(json_object_get(report, "rebalanced")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(report, "kept")), 1);
    ck_assert_double_eq(json_real_value(json_object_get(json_array_get(rows, 0), "occupancy")),
                        0.5);
    ck_assert_double_eq(
        json_real_value(json_object_get(json_array_get(rows, 0), "previous_weight")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 1), "reason")),
                     "observations_unavailable");
    ck_assert(json_is_null(json_object_get(json_array_get(rows, 1), "occupancy")));
    ck_assert(json_is_null(json_object_get(json_array_get(rows, 0), "reason")));
    ck_assert_double_eq(json_real_value(json_object_get(json_array_get(rows, 2), "occupancy")), 2);

    /* Scripted occupancies: raw 1/(1+o), not normalised. */
    ck_assert_double_eq(gc_strategy_weight(0, 10), 1);
    ck_assert_double_eq(gc_strategy_weight(10, 10), 0.5);
    ck_assert_double_eq(gc_strategy_weight(3, 4), 1.0 / 1.75);
    ck_assert_double_eq(gc_strategy_weight(1, 4), 0.8);
    ck_assert_double_eq(gc_strategy_weight(30, 10), 0.25);

    /* Nothing observed: everything kept. */
    ck_assert_int_eq(gc_strategy_rebalance(pool, s, NULL, &n, &report), 0);
    keep(report);
    ck_assert_double_eq(n->targets[1].weight, 3);
}
END_TEST

/* ---------------------------------------------------------------- the route */

/* A deterministic RNG (xorshift64*) in [0, 1). */
static double next_rand(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

#define T0 ((apr_time_t)1800000000 * APR_USEC_PER_SEC)

static void compile(const gc_strategy_t *s, const gc_strategy_live_t *live, gc_route_table_t *t)
{
    ck_assert_int_eq(gc_strategy_compile(s, "strat-1", live, T0, 7, t), 0);
}

static const char *route(const gc_route_table_t *t, double r)
{
    static gc_strategy_route_t out;

    ck_assert_int_eq(gc_strategy_route(t, r, T0, GC_STRATEGY_MAX_AGE, &out), 0);
    return out.queue_id;
}

START_TEST(strategy_route_distribution)
{
    gc_strategy_t *s = good();
    /* Tier 1: q-a weight 1, q-b weight 3, both with spare; q-c (tier 2) idle. */
    gc_strategy_live_t live[3] = { { 1, 0, 1 }, { 1, 5, 1 }, { 1, 0, 1 } };
    gc_route_table_t *t = apr_palloc(pool, sizeof(*t));
    gc_strategy_route_t out;
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    int counts[3] = { 0, 0, 0 }, i;

    compile(s, live, t);
    ck_assert_uint_eq(t->pick_count, 2);
    ck_assert_double_eq(t->pick_total, 4);
    for (i = 0; i < 10000; i++) {
        ck_assert_int_eq(gc_strategy_route(t, next_rand(&seed), T0, GC_STRATEGY_MAX_AGE, &out), 0);
        ck_assert_str_eq(out.reason, "weighted");
        ck_assert_int_eq(out.fallback, 0);
        ck_assert_int_eq(out.priority, 1);
        counts[!strcmp(out.queue_id, "q-a") ? 0 : !strcmp(out.queue_id, "q-b") ? 1 : 2]++;
    }
    ck_assert_int_eq(counts[2], 0);
    ck_assert_msg(fabs(counts[0] / 10000.0 - 0.25) < 0.03, "q-a %d of 10000", counts[0]);
    ck_assert_msg(fabs(counts[1] / 10000.0 - 0.75) < 0.03, "q-b %d of 10000", counts[1]);

    /* The boundaries of [0, 1), and out-of-range values clamped. */
    ck_assert_str_eq(route(t, 0), "q-a");
    ck_assert_str_eq(route(t, 0.2499), "q-a");
    ck_assert_str_eq(route(t, 0.25), "q-b");
    ck_assert_str_eq(route(t, 0.999999), "q-b");
    ck_assert_str_eq(route(t, 1), "q-b");
    ck_assert_str_eq(route(t, -3), "q-a");
    ck_assert_str_eq(route(t, NAN), "q-a");

    /* The answer. */
    ck_assert_int_eq(gc_strategy_route(t, 0.5, T0, GC_STRATEGY_MAX_AGE, &out), 0);
    ck_assert_str_eq(dump(keep(gc_strategy_route_json(t, &out))),
                     "{\"queue_id\":\"q-b\",\"strategy_id\":\"strat-1\",\"reason\":\"weighted\"}");
}
END_TEST

START_TEST(strategy_route_tiers)
{
    gc_strategy_t *s = good();
    gc_route_table_t *t = apr_palloc(pool, sizeof(*t));
    gc_strategy_route_t out;
    int i;

    /* Priority order wins over the strategy's order: the tier-2 target is
     * listed first, the tier-1 ones after it. */
    {
        gc_result_t *res = gc_result_make(pool);
        gc_strategy_t *r = NULL;
        gc_strategy_live_t idle[3] = { { 1, 0, 1 }, { 1, 0, 1 }, { 1, 0, 1 } };

        ck_assert_int_eq(
            gc_strategy_validate(
                pool, res,
                load("{\"name\":\"n\",\"targets\":["
                     "{\"queue_id\":\"low\",\"priority\":5,\"weight\":100,\"capacity\":9},"
                     "{\"queue_id\":\"top\",\"priority\":2,\"weight\":1,\"capacity\":9},"
                     "{\"queue_id\":\"mid\",\"priority\":3,\"weight\":100,\"capacity\":9}],"
                     "\"fallback\":{\"queue_id\":\"fb\",\"priority\":99,\"weight\":1}}"),
                &r),
            0);
        compile(r, idle, t);
        ck_assert_str_eq(t->targets[0].queue_id, "top");
        ck_assert_str_eq(t->targets[1].queue_id, "mid");
        ck_assert_str_eq(t->targets[2].queue_id, "low");
        for (i = 0; i < 100; i++) {
            ck_assert_str_eq(route(t, i / 100.0), "top");
        }
        /* top saturated: mid, the next tier */
        idle[1].interacting = 9;
        compile(r, idle, t);
        ck_assert_str_eq(route(t, 0.3), "mid");
    }

    /* The top tier saturated (q-a at capacity, q-b over it): the next tier. */
    {
        gc_strategy_live_t live[3] = { { 1, 10, 1 }, { 1, 25, 1 }, { 1, 4, 1 } };

        compile(s, live, t);
        for (i = 0; i < 100; i++) {
            ck_assert_int_eq(gc_strategy_route(t, i / 100.0, T0, GC_STRATEGY_MAX_AGE, &out), 0);
            ck_assert_str_eq(out.queue_id, "q-c");
            ck_assert_str_eq(out.reason, "weighted");
            ck_assert_int_eq(out.priority, 2);
        }
    }

    /* One of the top tier saturated: only the other is picked. */
    {
        gc_strategy_live_t live[3] = { { 1, 0, 1 }, { 1, 20, 1 }, { 1, 0, 1 } };

        compile(s, live, t);
        for (i = 0; i < 100; i++) {
            ck_assert_str_eq(route(t, i / 100.0), "q-a");
        }
        /* and the other way round (the saturated one first in its tier) */
        live[0].interacting = 10;
        live[1].interacting = 0;
        compile(s, live, t);
        for (i = 0; i < 100; i++) {
            ck_assert_str_eq(route(t, i / 100.0), "q-b");
        }
    }

    /* Everything saturated or unobserved: the fallback. */
    {
        gc_strategy_live_t live[3] = { { 1, 10, 1 }, { 0, 0, 1 }, { 1, 5, 1 } };

        compile(s, live, t);
        ck_assert_uint_eq(t->pick_count, 0);
        ck_assert_int_eq(gc_strategy_route(t, 0.5, T0, GC_STRATEGY_MAX_AGE, &out), 0);
        ck_assert_str_eq(out.queue_id, "q-fb");
        ck_assert_str_eq(out.reason, "fallback");
        ck_assert_int_eq(out.fallback, 1);
        ck_assert_int_eq(out.priority, 99);
        ck_assert_str_eq(
            dump(keep(gc_strategy_route_json(t, &out))),
            "{\"queue_id\":\"q-fb\",\"strategy_id\":\"strat-1\",\"reason\":\"fallback\"}");
        compile(s, NULL, t);
        ck_assert_str_eq(route(t, 0.1), "q-fb");
    }
}
END_TEST

START_TEST(strategy_route_stale)
{
    gc_strategy_t *s = good();
    gc_strategy_live_t live[3] = { { 1, 0, 1 }, { 1, 0, 1 }, { 1, 0, 1 } };
    gc_route_table_t *t = apr_palloc(pool, sizeof(*t));
    gc_strategy_route_t out;

    ck_assert_int_eq(gc_strategy_compile(s, "strat-1", live, T0, 42, t), 0);
    ck_assert_int_eq(
        gc_strategy_route(t, 0.1, T0 + apr_time_from_sec(30), GC_STRATEGY_MAX_AGE, &out), 0);
    ck_assert_int_eq(out.stale, 0);
    ck_assert_int_eq(out.age, apr_time_from_sec(30));
    ck_assert_uint_eq(out.generation, 42);
    ck_assert_int_eq(
        gc_strategy_route(t, 0.1, T0 + apr_time_from_sec(30) + 1, GC_STRATEGY_MAX_AGE, &out), 0);
    ck_assert_int_eq(out.stale, 1);
    ck_assert_str_eq(out.queue_id, "q-a"); /* still decided */
    /* A view from the future: age 0. No observation time: stale. */
    ck_assert_int_eq(gc_strategy_route(t, 0.1, T0 - 5, GC_STRATEGY_MAX_AGE, &out), 0);
    ck_assert_int_eq(out.stale, 0);
    ck_assert_int_eq(out.age, 0);
    ck_assert_int_eq(gc_strategy_compile(s, "strat-1", live, 0, 1, t), 0);
    ck_assert_int_eq(gc_strategy_route(t, 0.1, T0, GC_STRATEGY_MAX_AGE, &out), 0);
    ck_assert_int_eq(out.stale, 1);
}
END_TEST

START_TEST(strategy_route_table_flat)
{
    gc_strategy_t *s = good();
    gc_strategy_live_t live[3] = { { 1, 0, 1 }, { 1, 5, 1 }, { 1, 0, 1 } };
    gc_route_table_t *a = apr_palloc(pool, sizeof(*a)), *b = apr_palloc(pool, sizeof(*b));
    unsigned char *shm = apr_palloc(pool, sizeof(*a) + 8);
    gc_strategy_route_t x, y;
    uint64_t seed = 12345;
    int i;

    /* The documented size and layout (the header's static asserts say the same). */
    ck_assert_uint_eq(sizeof(gc_route_table_t), GC_ROUTE_TABLE_SIZE);
    ck_assert_uint_eq(GC_ROUTE_TABLE_SIZE, 4984);
    ck_assert_uint_eq(sizeof(gc_route_target_t), 96);
    ck_assert_uint_eq(offsetof(gc_route_table_t, targets), 184);

    /* Deterministic bytes: padding zeroed, so compiling twice compares equal. */
    memset(a, 0xAA, sizeof(*a));
    memset(b, 0x55, sizeof(*b));
    compile(s, live, a);
    compile(s, live, b);
    ck_assert_int_eq(memcmp(a, b, sizeof(*a)), 0);
    ck_assert_uint_eq(a->version, GC_ROUTE_TABLE_VERSION);
    ck_assert_uint_eq(a->n_targets, 3);

    /* No pointers: a copy at another address (as in shared memory), the original
     * wiped, decides the same. */
    memcpy(shm + 8, a, sizeof(*a));
    memcpy(b, shm + 8, sizeof(*b));
    memset(a, 0xEE, sizeof(*a));
    compile(s, live, a);
    for (i = 0; i < 1000; i++) {
        double r = next_rand(&seed);
        ck_assert_int_eq(gc_strategy_route(a, r, T0, GC_STRATEGY_MAX_AGE, &x), 0);
        ck_assert_int_eq(gc_strategy_route(b, r, T0, GC_STRATEGY_MAX_AGE, &y), 0);
        ck_assert_str_eq(x.queue_id, y.queue_id);
    }

    /* Not a compiled table; nothing compiled from a bad input. */
    memset(b, 0, sizeof(*b));
    ck_assert_int_eq(gc_strategy_route(b, 0.5, T0, GC_STRATEGY_MAX_AGE, &x), -1);
    ck_assert_str_eq(x.queue_id, "");
    ck_assert_int_eq(gc_strategy_compile(s, NULL, live, T0, 1, b), -1);
    ck_assert_uint_eq(b->version, 0);
    ck_assert_int_eq(gc_strategy_compile(s,
                                         "s-0123456789012345678901234567890123456789012345678901234"
                                         "567890123",
                                         live, T0, 1, b),
                     -1);
    a->pick_first = 3; /* a corrupted range */
    ck_assert_int_eq(gc_strategy_route(a, 0.5, T0, GC_STRATEGY_MAX_AGE, &x), -1);
}
END_TEST

/* ---------------------------------------------------------------- the webhook */

START_TEST(strategy_webhook_body)
{
    gc_strategy_t *s = good();
    apr_time_t ts = T0 + 123000;

    ck_assert_str_eq(
        dump(keep(gc_strategy_webhook_body(pool, "strat-1", s, "active", ts))),
        "{\"strategy_id\":\"strat-1\",\"name\":\"Support\",\"status\":\"active\",\"targets\":["
        "{\"queue_id\":\"q-a\",\"priority\":1,\"weight\":1.0,\"capacity\":10},"
        "{\"queue_id\":\"q-b\",\"priority\":1,\"weight\":3.0,\"capacity\":20},"
        "{\"queue_id\":\"q-c\",\"priority\":2,\"weight\":0.5,\"capacity\":5}],"
        "\"timestamp\":\"2027-01-15T08:00:00.123Z\"}");
}
END_TEST

Suite *strategy_suite(void)
{
    Suite *s = suite_create("strategy");
    TCase *tc = tcase_create("strategy");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, strategy_valid_parses);
    tcase_add_test(tc, strategy_structure_rules);
    tcase_add_test(tc, strategy_live_validation);
    tcase_add_test(tc, strategy_rebalance_weights);
    tcase_add_test(tc, strategy_route_distribution);
    tcase_add_test(tc, strategy_route_tiers);
    tcase_add_test(tc, strategy_route_stale);
    tcase_add_test(tc, strategy_route_table_flat);
    tcase_add_test(tc, strategy_webhook_body);
    suite_add_tcase(s, tc);
    return s;
}
