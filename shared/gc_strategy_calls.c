/* gcmon core: the Genesys Cloud calls of routing strategies
 * (gc_strategy_calls.h). Every answer is read defensively: a member missing
 * or of another type leaves the figure unobserved (or the page empty), it
 * never crashes; only an answer without its one required member (the
 * observations' results, a listing's entities, a query's id) is a protocol
 * error. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <apr_escape.h>
#include <apr_strings.h>

#include "gc_strategy_calls.h"

typedef struct {
    gc_upstream_t *up;
    apr_time_t deadline; /* 0: background work */
} calls_t;

static apr_status_t call(const calls_t *c, apr_pool_t *p, const char *op, const char *method,
                         const char *path, const char *body, gc_response_t **resp, gc_error_t **err)
{
    gc_request_t req;

    memset(&req, 0, sizeof(req));
    req.op = op;
    req.method = method;
    req.path = path;
    req.body = body;
    if (c->deadline) {
        apr_interval_time_t left = c->deadline - apr_time_now();
        req.deadline = c->deadline;
        req.budget_wait = left > 0 ? left : 1;
    }
    *resp = NULL;
    *err = NULL;
    return gc_upstream_call(c->up, p, &req, resp, err);
}

static apr_status_t malformed(apr_pool_t *p, const gc_response_t *resp, const char *what,
                              gc_error_t **err)
{
    *err = apr_pcalloc(p, sizeof(**err));
    (*err)->kind = GC_ERR_PROTOCOL;
    (*err)->status = resp ? resp->status : 0;
    (*err)->message = what;
    return APR_EGENERAL;
}

/* A JSON body's text (from p), the reference released. */
static const char *text_of(apr_pool_t *p, json_t *j)
{
    const char *t = j ? gc_json_text(p, j) : NULL;

    json_decref(j);
    return t;
}

/* {"type":"or","predicates":[{"dimension":"queueId","value":id},…]} */
static json_t *queue_filter(const char *const *queue_ids, int n)
{
    json_t *preds = json_array();
    int i;

    for (i = 0; i < n; i++) {
        json_array_append_new(
            preds, json_pack("{s:s, s:s}", "dimension", "queueId", "value", queue_ids[i]));
    }
    return json_pack("{s:s, s:o}", "type", "or", "predicates", preds);
}

/* The index of queue_id among the n queues, or -1. */
static int index_of(const char *const *queue_ids, int n, const char *queue_id)
{
    int i;

    for (i = 0; queue_id && i < n; i++) {
        if (queue_ids[i] && !strcmp(queue_ids[i], queue_id)) {
            return i;
        }
    }
    return -1;
}

/* The queueId of a result's group, or NULL. */
static const char *group_queue(const json_t *result)
{
    return json_string_value(json_object_get(json_object_get(result, "group"), "queueId"));
}

/* ---------------------------------------------------------------- observations */

static apr_status_t c_observe(void *baton, apr_pool_t *p, const char *const *queue_ids, int n,
                              gc_strategy_live_t *live, gc_error_t **err)
{
    calls_t *c = baton;
    gc_response_t *resp;
    json_t *results, *res, *d;
    const char *body;
    apr_status_t rv;
    size_t i, j;

    body = text_of(p, json_pack("{s:o, s:[s, s, s]}", "filter", queue_filter(queue_ids, n),
                                "metrics", "oOnQueueUsers", "oInteracting", "oWaiting"));
    rv = call(c, p, "queue_observations", "POST", "/api/v2/analytics/queues/observations/query",
              body, &resp, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    results = resp->json ? json_object_get(resp->json, "results") : NULL;
    if (!json_is_array(results)) {
        return malformed(p, resp, "the queue observations have no results", err);
    }
    /* Groups of one queue (by media type) add up. */
    json_array_foreach(results, i, res)
    {
        int k = index_of(queue_ids, n, group_queue(res));

        if (k < 0) {
            continue;
        }
        json_array_foreach(json_object_get(res, "data"), j, d)
        {
            const char *metric = json_string_value(json_object_get(d, "metric"));
            json_t *count = json_object_get(json_object_get(d, "stats"), "count");

            if (!metric || strcmp(metric, "oInteracting") || !json_is_number(count)) {
                continue;
            }
            live[k].interacting =
                (live[k].observed ? live[k].interacting : 0) + json_number_value(count);
            live[k].observed = 1;
        }
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------- members, queues */

static apr_status_t c_skilled(void *baton, apr_pool_t *p, const char *queue_id,
                              const char *const *skill_ids, int n_skills, int *any,
                              gc_error_t **err)
{
    calls_t *c = baton;
    gc_response_t *resp;
    json_t *entities;
    const char *path;
    apr_status_t rv;
    int i;

    /* The skills filter is a list parameter, repeated (the SDKs' "multi"
     * collection format); ids are [A-Za-z0-9_-], nothing to escape. */
    path = apr_pstrcat(p, "/api/v2/routing/queues/", queue_id, "/members?pageSize=1", NULL);
    for (i = 0; i < n_skills; i++) {
        path = apr_pstrcat(p, path, "&skills=", skill_ids[i], NULL);
    }
    *any = 0;
    rv = call(c, p, "queue_members_get", "GET", path, NULL, &resp, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    entities = resp->json ? json_object_get(resp->json, "entities") : NULL;
    if (!json_is_array(entities)) {
        return malformed(p, resp, "the queue members listing has no entities", err);
    }
    *any = json_array_size(entities) > 0;
    return APR_SUCCESS;
}

static const char *queue_path(apr_pool_t *p, const char *queue_id)
{
    return apr_pstrcat(p, "/api/v2/routing/queues/", queue_id, NULL);
}

static apr_status_t c_queue_get(void *baton, apr_pool_t *p, const char *queue_id, json_t **queue,
                                gc_error_t **err)
{
    gc_response_t *resp;
    apr_status_t rv;

    *queue = NULL;
    rv = call(baton, p, "queue_get", "GET", queue_path(p, queue_id), NULL, &resp, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!json_is_object(resp->json)) {
        return malformed(p, resp, "the queue is not a JSON object", err);
    }
    /* resp->json goes with the pool: the caller gets its own copy. */
    *queue = json_deep_copy(resp->json);
    return *queue ? APR_SUCCESS : malformed(p, resp, "the queue could not be copied", err);
}

static apr_status_t c_queue_put(void *baton, apr_pool_t *p, const char *queue_id,
                                const json_t *queue, json_t **answer, gc_error_t **err)
{
    gc_response_t *resp;
    const char *body = gc_json_text(p, queue);
    apr_status_t rv;

    *answer = NULL;
    if (!body) {
        return malformed(p, NULL, "the queue could not be serialised", err);
    }
    rv = call(baton, p, "queue_put", "PUT", queue_path(p, queue_id), body, &resp, err);
    if (rv == APR_SUCCESS && json_is_object(resp->json)) {
        *answer = json_deep_copy(resp->json);
    }
    return rv;
}

/* ---------------------------------------------------------------- aggregates */

/* One metric's stats into a figure (counts and sums add up; max of maxes). */
static void add_stat(gc_strategy_stat_t *s, const json_t *stats)
{
    json_t *count = json_object_get(stats, "count"), *sum = json_object_get(stats, "sum"),
           *max = json_object_get(stats, "max");

    if (!json_is_number(count)) {
        return;
    }
    s->count += json_number_value(count);
    s->sum += json_is_number(sum) ? json_number_value(sum) : 0;
    if (json_is_number(max) && (!s->has || json_number_value(max) > s->max)) {
        s->max = json_number_value(max);
    }
    s->has = 1;
}

static void add_metrics(gc_strategy_latency_t *out, const json_t *metrics)
{
    json_t *m;
    size_t i;

    json_array_foreach(metrics, i, m)
    {
        const char *name = json_string_value(json_object_get(m, "metric"));
        json_t *stats = json_object_get(m, "stats");
        gc_strategy_stat_t offered;

        if (!name || !json_is_object(stats)) {
            continue;
        }
        if (!strcmp(name, "tWait")) {
            add_stat(&out->wait, stats);
        }
        else if (!strcmp(name, "tAnswered")) {
            add_stat(&out->answer, stats);
        }
        else if (!strcmp(name, "nOffered")) {
            memset(&offered, 0, sizeof(offered));
            add_stat(&offered, stats);
            out->offered += offered.count;
        }
    }
}

static apr_status_t c_aggregates(void *baton, apr_pool_t *p, const char *interval,
                                 const char *const *queue_ids, int n, gc_strategy_latency_t *out,
                                 gc_error_t **err)
{
    gc_response_t *resp;
    json_t *results, *res, *d;
    const char *body;
    apr_status_t rv;
    size_t i, j;

    memset(out, 0, sizeof(*out) * (size_t)(n > 0 ? n : 0));
    body = text_of(p, json_pack("{s:s, s:[s], s:o, s:[s, s, s]}", "interval", interval, "groupBy",
                                "queueId", "filter", queue_filter(queue_ids, n), "metrics", "tWait",
                                "tAnswered", "nOffered"));
    rv = call(baton, p, "conversation_aggregates", "POST",
              "/api/v2/analytics/conversations/aggregates/query", body, &resp, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!json_is_object(resp->json)) {
        return malformed(p, resp, "the conversation aggregates are not a JSON object", err);
    }
    /* No data at all: {} (no results), as upstream answers it. */
    results = json_object_get(resp->json, "results");
    json_array_foreach(results, i, res)
    {
        int k = index_of(queue_ids, n, group_queue(res));

        if (k < 0) {
            continue;
        }
        out[k].has_data = 1;
        json_array_foreach(json_object_get(res, "data"), j, d)
        {
            add_metrics(&out[k], json_object_get(d, "metrics"));
        }
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------- audits */

static const char *dup_string(apr_pool_t *p, const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? apr_pstrdup(p, s) : NULL;
}

static apr_status_t c_audit_submit(void *baton, apr_pool_t *p, const char *interval,
                                   const char *const *queue_ids, int n, const char **query_id,
                                   const char **state, gc_error_t **err)
{
    json_t *filters = json_array();
    gc_response_t *resp;
    const char *body;
    apr_status_t rv;
    int i;

    for (i = 0; i < n; i++) {
        json_array_append_new(
            filters, json_pack("{s:s, s:s}", "property", "EntityId", "value", queue_ids[i]));
    }
    body = text_of(p, json_pack("{s:s, s:s, s:o, s:[{s:s, s:s}]}", "interval", interval,
                                "serviceName", "Routing", "filters", filters, "sort", "name",
                                "Timestamp", "sortOrder", "descending"));
    *query_id = *state = NULL;
    rv = call(baton, p, "audit_query", "POST", "/api/v2/audits/query", body, &resp, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!(*query_id = dup_string(p, resp->json, "id"))) {
        return malformed(p, resp, "the audit query has no id", err);
    }
    *state = dup_string(p, resp->json, "state");
    return APR_SUCCESS;
}

static apr_status_t c_audit_poll(void *baton, apr_pool_t *p, const char *query_id,
                                 const char **state, gc_error_t **err)
{
    gc_response_t *resp;
    apr_status_t rv;

    *state = NULL;
    rv = call(baton, p, "audit_query_get", "GET",
              apr_pstrcat(p, "/api/v2/audits/query/", apr_pescape_path_segment(p, query_id), NULL),
              NULL, &resp, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!(*state = dup_string(p, resp->json, "state"))) {
        return malformed(p, resp, "the audit query has no state", err);
    }
    return APR_SUCCESS;
}

static apr_status_t c_audit_results(void *baton, apr_pool_t *p, const char *query_id,
                                    const char *cursor, json_t **entities, const char **next,
                                    gc_error_t **err)
{
    gc_response_t *resp;
    json_t *list;
    apr_status_t rv;
    const char *path = apr_psprintf(p, "/api/v2/audits/query/%s/results?pageSize=%d&expand=user",
                                    apr_pescape_path_segment(p, query_id), GC_STRATEGY_AUDIT_PAGE);

    *entities = NULL;
    *next = NULL;
    if (cursor) {
        path = apr_pstrcat(p, path, "&cursor=", apr_pescape_urlencoded(p, cursor), NULL);
    }
    rv = call(baton, p, "audit_query_results", "GET", path, NULL, &resp, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    list = resp->json ? json_object_get(resp->json, "entities") : NULL;
    if (!json_is_array(list)) {
        return malformed(p, resp, "the audit results have no entities", err);
    }
    *next = dup_string(p, resp->json, "cursor");
    if (*next && !**next) {
        *next = NULL;
    }
    *entities = json_deep_copy(list);
    return *entities ? APR_SUCCESS
                     : malformed(p, resp, "the audit results could not be copied", err);
}

/* ---------------------------------------------------------------- the ops */

gc_strategy_ops_t gc_strategy_calls_ops_until(apr_pool_t *p, gc_upstream_t *up, apr_time_t deadline)
{
    gc_strategy_ops_t ops;
    calls_t *c = apr_pcalloc(p, sizeof(*c));

    c->up = up;
    c->deadline = deadline;
    memset(&ops, 0, sizeof(ops));
    ops.baton = c;
    ops.observe = c_observe;
    ops.skilled = c_skilled;
    ops.queue_get = c_queue_get;
    ops.queue_put = c_queue_put;
    ops.aggregates = c_aggregates;
    ops.audit_submit = c_audit_submit;
    ops.audit_poll = c_audit_poll;
    ops.audit_results = c_audit_results;
    return ops;
}

gc_strategy_ops_t gc_strategy_calls_ops(apr_pool_t *p, gc_upstream_t *up)
{
    return gc_strategy_calls_ops_until(p, up, 0);
}

/* ---------------------------------------------------------------- live figures */

apr_status_t gc_strategy_read_live(apr_pool_t *p, const gc_strategy_ops_t *ops,
                                   const gc_strategy_t *s, int want_skills,
                                   gc_strategy_live_t *live, gc_error_t **err)
{
    const char **queues, **skills;
    int i, n_required = 0;
    apr_status_t rv;

    *err = NULL;
    memset(live, 0, sizeof(*live) * (size_t)s->n_targets);
    for (i = 0; i < s->n_targets; i++) {
        live[i].skilled = -1;
    }
    if (s->n_targets <= 0) {
        return APR_SUCCESS;
    }
    queues = apr_pcalloc(p, sizeof(*queues) * (size_t)s->n_targets);
    for (i = 0; i < s->n_targets; i++) {
        queues[i] = s->targets[i].queue_id;
    }
    if ((rv = ops->observe(ops->baton, p, queues, s->n_targets, live, err)) != APR_SUCCESS) {
        return rv;
    }
    if (!want_skills) {
        return APR_SUCCESS;
    }
    /* Only the required skills are checked (the others are preferences). */
    skills = apr_pcalloc(p, sizeof(*skills) * (size_t)(s->n_skills + 1));
    for (i = 0; i < s->n_skills; i++) {
        if (s->skills[i].required) {
            skills[n_required++] = s->skills[i].skill_id;
        }
    }
    for (i = 0; i < s->n_targets; i++) {
        int any = 0;

        rv = ops->skilled(ops->baton, p, queues[i], skills, n_required, &any, err);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        live[i].skilled = any ? 1 : 0;
    }
    return APR_SUCCESS;
}

char *gc_strategy_live_json(apr_pool_t *p, const gc_strategy_t *s, const gc_strategy_live_t *live)
{
    json_t *targets = json_array(), *doc;
    char *text, *out;
    int i;

    for (i = 0; i < s->n_targets; i++) {
        const gc_strategy_live_t *l = live ? &live[i] : NULL;
        int known = l && l->observed && isfinite(l->interacting) && l->interacting >= 0;

        json_array_append_new(targets, json_pack("{s:s, s:o}", "queue_id", s->targets[i].queue_id,
                                                 "interacting",
                                                 known ? json_real(l->interacting) : json_null()));
    }
    doc = json_pack("{s:o}", "targets", targets);
    text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    out = text ? apr_pstrdup(p, text) : NULL;
    free(text);
    return out;
}

void gc_strategy_live_parse(const char *text, const gc_strategy_t *s, gc_strategy_live_t *live)
{
    json_t *doc = text ? json_loads(text, 0, NULL) : NULL, *targets, *t;
    size_t j;
    int i;

    memset(live, 0, sizeof(*live) * (size_t)(s->n_targets > 0 ? s->n_targets : 0));
    for (i = 0; i < s->n_targets; i++) {
        live[i].skilled = -1;
    }
    targets = json_object_get(doc, "targets");
    json_array_foreach(targets, j, t)
    {
        const char *queue_id = json_string_value(json_object_get(t, "queue_id"));
        json_t *v = json_object_get(t, "interacting");

        for (i = 0; queue_id && i < s->n_targets; i++) {
            if (!strcmp(s->targets[i].queue_id, queue_id) && json_is_number(v)
                && isfinite(json_number_value(v)) && json_number_value(v) >= 0) {
                live[i].observed = 1;
                live[i].interacting = json_number_value(v);
            }
        }
    }
    json_decref(doc);
}
