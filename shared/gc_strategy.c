/* gcmon core: routing strategies, the pure part (gc_strategy.h). */
#include <math.h>
#include <string.h>

#include <apr_strings.h>

#include "gc_body.h"
#include "gc_id.h"
#include "gc_strategy.h"
#include "gc_time.h"

#define ID_MESSAGE "must be 1 to 64 letters, digits, '-' or '_'"

/* ---------------------------------------------------------------- validation */

static void check_id(gc_result_t *res, const gc_body_field_t *f, const json_t *value, void *baton)
{
    if (!gc_id_valid(json_string_value(value))) {
        gc_body_error(res, f->name, "invalid_value", ID_MESSAGE);
    }
}

static void check_name(gc_result_t *res, const gc_body_field_t *f, const json_t *value, void *baton)
{
    const char *s = json_string_value(value);

    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
        s++;
    }
    if (!*s) {
        gc_body_error(res, f->name, "invalid_value", "must not be blank");
    }
}

static void check_weight(gc_result_t *res, const gc_body_field_t *f, const json_t *value,
                         void *baton)
{
    double w = json_number_value(value);

    if (!(w > 0 && w <= GC_STRATEGY_MAX_WEIGHT)) {
        gc_body_error(res, f->name, "invalid_value", "must be greater than 0 and at most 1000000");
    }
}

static const gc_body_field_t skill_fields[] = {
    { "skill_id", GC_BODY_STRING, GC_BODY_REQUIRED, 0, 0, check_id },
    { "required", GC_BODY_BOOLEAN, GC_BODY_REQUIRED, 0, 0, NULL },
};

static const gc_body_field_t target_fields[] = {
    { "queue_id", GC_BODY_STRING, GC_BODY_REQUIRED, 0, 0, check_id },
    { "priority", GC_BODY_INTEGER, GC_BODY_REQUIRED | GC_BODY_BOUNDED, GC_STRATEGY_MIN_PRIORITY,
      GC_STRATEGY_MAX_PRIORITY, NULL },
    { "weight", GC_BODY_NUMBER, GC_BODY_REQUIRED, 0, 0, check_weight },
    { "capacity", GC_BODY_INTEGER, GC_BODY_REQUIRED | GC_BODY_BOUNDED, 1, GC_STRATEGY_MAX_CAPACITY,
      NULL },
};

static const gc_body_field_t fallback_fields[] = {
    { "queue_id", GC_BODY_STRING, GC_BODY_REQUIRED, 0, 0, check_id },
    { "priority", GC_BODY_INTEGER, GC_BODY_REQUIRED | GC_BODY_BOUNDED, GC_STRATEGY_MIN_PRIORITY,
      GC_STRATEGY_MAX_PRIORITY, NULL },
    { "weight", GC_BODY_NUMBER, GC_BODY_REQUIRED, 0, 0, check_weight },
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The valid id under `key` of an object, or NULL. */
static const char *valid_id(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s && gc_id_valid(s) ? s : NULL;
}

/* Each item of a list an object validated against fields (its errors named
 * "<list>[i].<member>"), then the later duplicates of the ids under key. */
static void check_list(gc_result_t *res, const char *list, const json_t *value,
                       const gc_body_field_t *fields, size_t n, const char *key, const char *unique)
{
    size_t i, j, len = json_array_size(value);

    for (i = 0; i < len; i++) {
        const json_t *item = json_array_get(value, i);
        const char *at = apr_psprintf(res->pool, "%s[%d]", list, (int)i);

        if (!json_is_object(item)) {
            gc_body_error(res, at, "invalid_type", "must be an object");
            continue;
        }
        gc_body_validate_in(res, at, item, fields, n, NULL);
    }
    for (j = 1; j < len; j++) {
        const char *id = valid_id(json_array_get(value, j), key);

        for (i = 0; id && i < j; i++) {
            const char *other = valid_id(json_array_get(value, i), key);

            if (other && !strcmp(id, other)) {
                gc_body_error(
                    res, apr_psprintf(res->pool, "%s[%d].%s", list, (int)j, key), "duplicate_key",
                    apr_psprintf(res->pool, "duplicates %s[%d].%s: %s", list, (int)i, key, unique));
                break;
            }
        }
    }
}

static void check_skills(gc_result_t *res, const gc_body_field_t *f, const json_t *value,
                         void *baton)
{
    check_list(res, f->name, value, skill_fields, COUNT_OF(skill_fields), "skill_id",
               "each skill is listed once");
}

static const gc_body_field_t criteria_fields[] = {
    { "skills", GC_BODY_ARRAY, GC_BODY_BOUNDED, 0, GC_STRATEGY_MAX_SKILLS, check_skills },
};

static void check_criteria(gc_result_t *res, const gc_body_field_t *f, const json_t *value,
                           void *baton)
{
    gc_body_validate_in(res, f->name, value, criteria_fields, COUNT_OF(criteria_fields), NULL);
}

static void check_targets(gc_result_t *res, const gc_body_field_t *f, const json_t *value,
                          void *baton)
{
    check_list(res, f->name, value, target_fields, COUNT_OF(target_fields), "queue_id",
               "each queue is a target once");
}

/* baton: the body (to see the targets). */
static void check_fallback(gc_result_t *res, const gc_body_field_t *f, const json_t *value,
                           void *baton)
{
    const json_t *targets = json_object_get((const json_t *)baton, "targets");
    const char *id;
    size_t i;

    gc_body_validate_in(res, f->name, value, fallback_fields, COUNT_OF(fallback_fields), NULL);
    if (!(id = valid_id(value, "queue_id"))) {
        return;
    }
    for (i = 0; i < json_array_size(targets); i++) {
        const char *t = valid_id(json_array_get(targets, i), "queue_id");

        if (t && !strcmp(t, id)) {
            gc_body_error(res, apr_pstrcat(res->pool, f->name, ".queue_id", NULL), "invalid_value",
                          apr_psprintf(res->pool,
                                       "is also targets[%d].queue_id: the fallback must not be "
                                       "a target (a routing cycle)",
                                       (int)i));
            return;
        }
    }
}

static const gc_body_field_t body_fields[] = {
    { "name", GC_BODY_STRING, GC_BODY_REQUIRED | GC_BODY_BOUNDED, 1, GC_STRATEGY_MAX_NAME,
      check_name },
    { "description", GC_BODY_STRING, GC_BODY_BOUNDED, 0, GC_STRATEGY_MAX_DESCRIPTION, NULL },
    { "selection_criteria", GC_BODY_OBJECT, 0, 0, 0, check_criteria },
    { "targets", GC_BODY_ARRAY, GC_BODY_REQUIRED | GC_BODY_BOUNDED, 1, GC_STRATEGY_MAX_TARGETS,
      check_targets },
    { "fallback", GC_BODY_OBJECT, GC_BODY_REQUIRED, 0, 0, check_fallback },
};

static void parse_target(apr_pool_t *p, const json_t *o, gc_strategy_target_t *t)
{
    t->queue_id = apr_pstrdup(p, json_string_value(json_object_get(o, "queue_id")));
    t->priority = (int)json_integer_value(json_object_get(o, "priority"));
    t->weight = json_number_value(json_object_get(o, "weight"));
    t->capacity = (int)json_integer_value(json_object_get(o, "capacity"));
}

/* The strategy of a body that passed validation. */
static gc_strategy_t *parse(apr_pool_t *p, const json_t *body)
{
    gc_strategy_t *s = apr_pcalloc(p, sizeof(*s));
    const json_t *skills = json_object_get(json_object_get(body, "selection_criteria"), "skills");
    const json_t *targets = json_object_get(body, "targets");
    const char *d = json_string_value(json_object_get(body, "description"));
    int i;

    s->name = apr_pstrdup(p, json_string_value(json_object_get(body, "name")));
    s->description = d ? apr_pstrdup(p, d) : NULL;
    s->n_skills = (int)json_array_size(skills);
    s->skills = apr_pcalloc(p, (s->n_skills ? s->n_skills : 1) * sizeof(*s->skills));
    for (i = 0; i < s->n_skills; i++) {
        const json_t *o = json_array_get(skills, i);

        s->skills[i].skill_id = apr_pstrdup(p, json_string_value(json_object_get(o, "skill_id")));
        s->skills[i].required = json_is_true(json_object_get(o, "required"));
    }
    s->n_targets = (int)json_array_size(targets);
    s->targets = apr_pcalloc(p, s->n_targets * sizeof(*s->targets));
    for (i = 0; i < s->n_targets; i++) {
        parse_target(p, json_array_get(targets, i), &s->targets[i]);
    }
    parse_target(p, json_object_get(body, "fallback"), &s->fallback);
    return s;
}

int gc_strategy_validate(apr_pool_t *p, gc_result_t *res, const json_t *body, gc_strategy_t **out)
{
    size_t before = res->errors ? json_array_size(res->errors) : 0, n;

    *out = NULL;
    if (body && !json_is_object(body)) {
        gc_body_error(res, "body", "invalid_type", "must be a JSON object");
    }
    else {
        gc_body_validate(res, body, body_fields, COUNT_OF(body_fields), (void *)body);
    }
    n = (res->errors ? json_array_size(res->errors) : 0) - before;
    if (n) {
        gc_body_fail(res, 422);
        return (int)n;
    }
    *out = parse(p, body);
    return 0;
}

static json_t *target_json(const gc_strategy_target_t *t, int with_capacity)
{
    json_t *o = json_object();

    json_object_set_new(o, "queue_id", json_string(t->queue_id));
    json_object_set_new(o, "priority", json_integer(t->priority));
    json_object_set_new(o, "weight", json_real(t->weight));
    if (with_capacity) {
        json_object_set_new(o, "capacity", json_integer(t->capacity));
    }
    return o;
}

static json_t *targets_json(const gc_strategy_t *s)
{
    json_t *a = json_array();
    int i;

    for (i = 0; i < s->n_targets; i++) {
        json_array_append_new(a, target_json(&s->targets[i], 1));
    }
    return a;
}

json_t *gc_strategy_json(const gc_strategy_t *s)
{
    json_t *o = json_object(), *skills = json_array();
    int i;

    for (i = 0; i < s->n_skills; i++) {
        json_array_append_new(skills, json_pack("{s:s, s:b}", "skill_id", s->skills[i].skill_id,
                                                "required", s->skills[i].required));
    }
    json_object_set_new(o, "name", json_string(s->name));
    json_object_set_new(o, "description",
                        s->description ? json_string(s->description) : json_null());
    json_object_set_new(o, "selection_criteria", json_pack("{s:o}", "skills", skills));
    json_object_set_new(o, "targets", targets_json(s));
    json_object_set_new(o, "fallback", target_json(&s->fallback, 0));
    return o;
}

/* ---------------------------------------------------------------- live figures */

static int observed(const gc_strategy_live_t *l)
{
    return l && l->observed && isfinite(l->interacting) && l->interacting >= 0;
}

int gc_strategy_judge(gc_result_t *res, const gc_strategy_t *s, const gc_strategy_live_t *live,
                      json_t **report)
{
    json_t *targets = json_array();
    int i, bad = 0;

    for (i = 0; i < s->n_targets; i++) {
        const gc_strategy_target_t *t = &s->targets[i];
        const gc_strategy_live_t *l = live ? &live[i] : NULL;
        const char *field = apr_psprintf(res->pool, "targets[%d]", i);
        json_t *reasons = json_array();
        int obs = observed(l), skilled = l ? l->skilled : -1;
        double spare = obs ? t->capacity - l->interacting : 0;

        if (!obs) {
            json_array_append_new(reasons, json_string("observations_unavailable"));
            gc_body_error(res, field, "invalid_value",
                          apr_psprintf(res->pool,
                                       "(queue %s): its observations could not be read, so its "
                                       "spare capacity is unknown",
                                       t->queue_id));
        }
        else if (!(spare > 0)) {
            json_array_append_new(reasons, json_string("no_spare_capacity"));
            gc_body_error(res, field, "invalid_value",
                          apr_psprintf(res->pool,
                                       "(queue %s) has no spare capacity: capacity %d, %g "
                                       "interacting",
                                       t->queue_id, t->capacity, l->interacting));
        }
        if (skilled < 0) {
            json_array_append_new(reasons, json_string("members_unavailable"));
            gc_body_error(
                res, field, "invalid_value",
                apr_psprintf(res->pool, "(queue %s): its members could not be read", t->queue_id));
        }
        else if (!skilled) {
            json_array_append_new(reasons, json_string("no_skilled_member"));
            gc_body_error(res, field, "invalid_value",
                          apr_psprintf(res->pool,
                                       "(queue %s) has no member with every required skill",
                                       t->queue_id));
        }
        bad += json_array_size(reasons) > 0;
        json_array_append_new(
            targets, json_pack("{s:s, s:o, s:o, s:b, s:o}", "queue_id", t->queue_id,
                               "spare_capacity", obs ? json_real(spare) : json_null(),
                               "skilled_members", skilled < 0 ? json_null() : json_boolean(skilled),
                               "ok", json_array_size(reasons) == 0, "reasons", reasons));
    }
    *report = json_pack("{s:b, s:o}", "ok", bad == 0, "targets", targets);
    if (bad) {
        gc_body_fail(res, 422);
        gc_result_extra(res, "validation", json_incref(*report));
    }
    return bad;
}

double gc_strategy_weight(double interacting, int capacity)
{
    return 1.0 / (1.0 + interacting / (double)capacity);
}

int gc_strategy_rebalance(apr_pool_t *p, const gc_strategy_t *s, const gc_strategy_live_t *live,
                          gc_strategy_t **out, json_t **report)
{
    gc_strategy_t *n = apr_pmemdup(p, s, sizeof(*s));
    json_t *targets = json_array();
    int i, done = 0;

    n->targets =
        apr_pmemdup(p, s->targets, (s->n_targets ? s->n_targets : 1) * sizeof(*n->targets));
    for (i = 0; i < s->n_targets; i++) {
        gc_strategy_target_t *t = &n->targets[i];
        const gc_strategy_live_t *l = live ? &live[i] : NULL;
        int obs = observed(l) && t->capacity > 0;
        json_t *row;

        if (obs) {
            t->weight = gc_strategy_weight(l->interacting, t->capacity);
            done++;
        }
        row = json_pack("{s:s, s:f, s:f, s:o, s:o, s:i, s:o}", "queue_id", t->queue_id,
                        "previous_weight", s->targets[i].weight, "weight", t->weight, "occupancy",
                        obs ? json_real(l->interacting / t->capacity) : json_null(), "interacting",
                        obs ? json_real(l->interacting) : json_null(), "capacity", t->capacity,
                        "reason", obs ? json_null() : json_string("observations_unavailable"));
        json_array_append_new(targets, row);
    }
    *out = n;
    *report = json_pack("{s:o, s:i, s:i}", "targets", targets, "rebalanced", done, "kept",
                        s->n_targets - done);
    return done;
}

/* ---------------------------------------------------------------- the route */

/* Copy an id into a fixed field: 0, or -1 when it does not fit. */
static int put_id(char *dst, const char *src)
{
    size_t len = src ? strlen(src) : 0;

    if (!src || len >= GC_STRATEGY_ID_SIZE) {
        return -1;
    }
    memcpy(dst, src, len + 1);
    return 0;
}

int gc_strategy_compile(const gc_strategy_t *s, const char *strategy_id,
                        const gc_strategy_live_t *live, apr_time_t observed_at, uint64_t generation,
                        gc_route_table_t *out)
{
    int order[GC_STRATEGY_MAX_TARGETS];
    int i, j, n = s ? s->n_targets : 0;
    uint32_t k;

    memset(out, 0, sizeof(*out));
    if (n < 1 || n > GC_STRATEGY_MAX_TARGETS || put_id(out->strategy_id, strategy_id)
        || put_id(out->fallback_id, s->fallback.queue_id)) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    /* Stable insertion sort by priority (lower first): equal priorities keep
     * the strategy's order. */
    for (i = 0; i < n; i++) {
        for (j = i; j > 0 && s->targets[order[j - 1]].priority > s->targets[i].priority; j--) {
            order[j] = order[j - 1];
        }
        order[j] = i;
    }
    for (i = 0; i < n; i++) {
        const gc_strategy_target_t *t = &s->targets[order[i]];
        const gc_strategy_live_t *l = live ? &live[order[i]] : NULL;
        gc_route_target_t *rt = &out->targets[i];

        if (put_id(rt->queue_id, t->queue_id)) {
            memset(out, 0, sizeof(*out));
            return -1;
        }
        rt->priority = t->priority;
        rt->weight = t->weight;
        rt->spare = observed(l) ? t->capacity - l->interacting : 0;
        rt->spare_ok = observed(l) && rt->spare > 0 && t->weight > 0;
    }
    /* The chosen tier: the first holding a target with spare capacity; its
     * range runs from its first such target to its last. */
    for (k = 0; k < (uint32_t)n && !out->targets[k].spare_ok; k++) {
    }
    if (k < (uint32_t)n) {
        int32_t prio = out->targets[k].priority;
        double cum = 0;
        uint32_t last = k, m;

        out->pick_first = k;
        out->pick_priority = prio;
        for (m = k; m < (uint32_t)n && out->targets[m].priority == prio; m++) {
            if (out->targets[m].spare_ok) {
                cum += out->targets[m].weight;
                last = m;
            }
            out->targets[m].cum = cum;
        }
        for (m = last + 1; m < (uint32_t)n && out->targets[m].priority == prio; m++) {
            out->targets[m].cum = 0;
        }
        out->pick_count = last - k + 1;
        out->pick_total = cum;
    }
    else {
        out->pick_priority = s->fallback.priority;
    }
    out->fallback_priority = s->fallback.priority;
    out->n_targets = (uint32_t)n;
    out->generation = generation;
    out->observed_at = observed_at;
    out->version = GC_ROUTE_TABLE_VERSION;
    return 0;
}

int gc_strategy_route(const gc_route_table_t *t, double rand01, apr_time_t now,
                      apr_interval_time_t max_age, gc_strategy_route_t *out)
{
    const char *id;

    memset(out, 0, sizeof(*out));
    if (t->version != GC_ROUTE_TABLE_VERSION || t->n_targets < 1
        || t->n_targets > GC_STRATEGY_MAX_TARGETS
        || (uint64_t)t->pick_first + t->pick_count > t->n_targets) {
        out->reason = "fallback";
        out->stale = 1;
        return -1;
    }
    out->generation = t->generation;
    out->age = now > t->observed_at ? now - t->observed_at : 0;
    out->stale = t->observed_at <= 0 || out->age > max_age;
    if (t->pick_count) {
        uint32_t lo = t->pick_first, hi = t->pick_first + t->pick_count - 1;
        double x;

        if (!(rand01 >= 0)) { /* negative or NaN */
            rand01 = 0;
        }
        else if (rand01 >= 1) {
            rand01 = nextafter(1.0, 0.0);
        }
        x = rand01 * t->pick_total;
        /* The first target whose cumulative weight exceeds x: the range's
         * last (cum == total) when rounding put x on the total. */
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;

            if (t->targets[mid].cum > x) {
                hi = mid;
            }
            else {
                lo = mid + 1;
            }
        }
        id = t->targets[lo].queue_id;
        out->reason = "weighted";
        out->priority = t->targets[lo].priority;
    }
    else {
        id = t->fallback_id;
        out->reason = "fallback";
        out->fallback = 1;
        out->priority = t->fallback_priority;
    }
    memcpy(out->queue_id, id, strnlen(id, GC_STRATEGY_ID_SIZE - 1));
    return 0;
}

json_t *gc_strategy_route_json(const gc_route_table_t *t, const gc_strategy_route_t *r)
{
    return json_pack("{s:s, s:s%, s:s}", "queue_id", r->queue_id, "strategy_id", t->strategy_id,
                     strnlen(t->strategy_id, GC_STRATEGY_ID_SIZE - 1), "reason", r->reason);
}

/* ---------------------------------------------------------------- the webhook */

json_t *gc_strategy_webhook_body(apr_pool_t *p, const char *strategy_id, const gc_strategy_t *s,
                                 const char *status, apr_time_t timestamp)
{
    json_t *o = json_object();

    json_object_set_new(o, "strategy_id", json_string(strategy_id));
    json_object_set_new(o, "name", json_string(s->name));
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "targets", targets_json(s));
    json_object_set_new(o, "timestamp", json_string(gc_time_format(p, timestamp)));
    return o;
}
