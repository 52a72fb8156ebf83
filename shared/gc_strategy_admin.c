/* gcmon core: the routing strategies' admin protocol (gc_strategy_admin.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "gc_audit.h"
#include "gc_body.h"
#include "gc_strategy_admin.h"
#include "gc_time.h"
#include "gc_webhook.h"

static const gc_error_t *or_unknown(const gc_error_t *e)
{
    static const gc_error_t unknown = { .kind = GC_ERR_PROTOCOL,
                                        .message = "the upstream call failed" };
    return e ? e : &unknown;
}

/* The target queue ids of s (from p). */
static const char **queue_ids(apr_pool_t *p, const gc_strategy_t *s)
{
    const char **q = apr_pcalloc(p, sizeof(*q) * (size_t)(s->n_targets + 1));
    int i;

    for (i = 0; i < s->n_targets; i++) {
        q[i] = s->targets[i].queue_id;
    }
    return q;
}

/* A count or a duration: an integer when it is one. */
static json_t *number(double v)
{
    if (isfinite(v) && v == floor(v) && fabs(v) < 9e15) {
        return json_integer((json_int_t)v);
    }
    return json_real(isfinite(v) ? v : 0);
}

/* ---------------------------------------------------------------- live validation */

int gc_strategy_admin_check(apr_pool_t *p, const gc_strategy_ops_t *ops, const gc_strategy_t *s,
                            gc_result_t *res, json_t **report)
{
    gc_strategy_live_t *live = apr_pcalloc(p, sizeof(*live) * (size_t)(s->n_targets + 1));
    const char **skills = apr_pcalloc(p, sizeof(*skills) * (size_t)(s->n_skills + 1));
    gc_error_t *e = NULL;
    int i, n_required = 0, unknown = 0;

    *report = NULL;
    if (gc_strategy_read_live(p, ops, s, 0, live, &e) != APR_SUCCESS) {
        gc_result_upstream(res, or_unknown(e));
        return 1;
    }
    for (i = 0; i < s->n_skills; i++) {
        if (s->skills[i].required) {
            skills[n_required++] = s->skills[i].skill_id;
        }
    }
    /* Every target probed, so a 422 names each queue Genesys does not know. */
    for (i = 0; i < s->n_targets; i++) {
        int any = 0;

        e = NULL;
        if (ops->skilled(ops->baton, p, s->targets[i].queue_id, skills, n_required, &any, &e)
            == APR_SUCCESS) {
            live[i].skilled = any ? 1 : 0;
            continue;
        }
        if (or_unknown(e)->kind != GC_ERR_NOT_FOUND || or_unknown(e)->deadline_cut) {
            gc_result_upstream(res, or_unknown(e));
            return 1;
        }
        unknown++;
        gc_body_error(res, apr_psprintf(res->pool, "targets[%d]", i), "invalid_value",
                      apr_psprintf(res->pool, "(queue %s) does not exist in Genesys Cloud",
                                   s->targets[i].queue_id));
    }
    if (unknown) {
        gc_body_fail(res, 422);
        return 1;
    }
    return gc_strategy_judge(res, s, live, report) > 0;
}

/* ---------------------------------------------------------------- rebalance */

gc_strategy_t *gc_strategy_admin_parse(apr_pool_t *p, const gc_strategy_rec_t *rec)
{
    json_t *body = rec && rec->body ? json_loads(rec->body, 0, NULL) : NULL;
    gc_result_t *scratch = gc_result_make(p);
    gc_strategy_t *s = NULL;

    if (json_is_object(body) && gc_strategy_validate(p, scratch, body, &s) != 0) {
        s = NULL;
    }
    json_decref(body);
    return s;
}

void gc_strategy_admin_rebalance(apr_pool_t *p, struct gc_store *st, const gc_strategy_ops_t *ops,
                                 const gc_strategy_rec_t *rec, const char *actor,
                                 const char *actor_source, apr_time_t started, int wfm,
                                 gc_result_t *res)
{
    gc_strategy_t *s, *out = NULL;
    gc_strategy_live_t *live;
    gc_strategy_change_e oc = GC_STRATEGY_MISSING;
    gc_audit_rec_t a;
    gc_error_t *e = NULL;
    json_t *report = NULL, *doc, *canon, *hook = NULL;
    const char *body, *hook_body = NULL, *err = NULL;
    int done;

    if (!strcmp(rec->status, GC_STRATEGY_ACTIVATING)) {
        gc_result_problem(res, 409, "strategy_activating", "The strategy is being activated",
                          apr_psprintf(p,
                                       "strategy %s is activating: rebalance it once its "
                                       "activation has ended",
                                       rec->id));
        return;
    }
    if (!(s = gc_strategy_admin_parse(p, rec))) {
        gc_result_problem(
            res, 500, "strategy_unreadable", "The stored strategy is unreadable",
            apr_psprintf(p, "the stored body of strategy %s is not a strategy", rec->id));
        return;
    }
    live = apr_pcalloc(p, sizeof(*live) * (size_t)(s->n_targets + 1));
    if (gc_strategy_read_live(p, ops, s, 0, live, &e) != APR_SUCCESS) {
        gc_result_upstream(res, or_unknown(e));
        return;
    }
    done = gc_strategy_rebalance(p, s, live, &out, &report);
    if (done == 0) {
        json_decref(report);
        gc_result_problem(res, 502, "observations_unavailable", "No target queue could be observed",
                          "Genesys Cloud answered no observations of any target queue: the "
                          "weights were kept");
        return;
    }
    canon = gc_strategy_json(out);
    body = canon ? gc_json_text(p, canon) : NULL;
    json_decref(canon);
    doc = json_pack("{s:s, s:O, s:O, s:O, s:I, s:s}", "strategy_id", rec->id, "targets",
                    json_object_get(report, "targets"), "rebalanced",
                    json_object_get(report, "rebalanced"), "kept", json_object_get(report, "kept"),
                    "revision", (json_int_t)(rec->revision + 1), "rebalanced_at",
                    gc_time_format(p, started));
    json_decref(report);
    if (wfm) {
        hook = gc_strategy_webhook_body(p, rec->id, out, rec->status, started);
        hook_body = hook ? gc_json_text(p, hook) : NULL;
        json_decref(hook);
    }
    if (!body || !doc || (wfm && !hook_body)) {
        json_decref(doc);
        gc_result_problem(res, 500, "internal", "Internal error",
                          "the rebalanced strategy could not be encoded");
        return;
    }
    memset(&a, 0, sizeof(a));
    a.at = apr_time_now();
    a.actor = actor ? actor : "-";
    a.actor_source = actor_source;
    a.action = GC_AUDIT_STRATEGY_REBALANCE;
    a.target = rec->id;
    a.result = gc_json_text(p, doc);
    a.status = 200;
    a.latency_ms = (apr_int64_t)apr_time_as_msec(a.at - started);
    if (gc_store_strategy_reweigh(st, p, rec->id, rec->revision, body, started, &a,
                                  wfm ? GC_TARGET_WFM : NULL, hook_body, &oc, &err)
        != APR_SUCCESS) {
        json_decref(doc);
        gc_result_problem(
            res, 500, "database_error", "Database error",
            apr_psprintf(p, "the new weights were not stored: %s", err ? err : "database error"));
        return;
    }
    if (oc == GC_STRATEGY_MISSING) {
        json_decref(doc);
        gc_result_problem(res, 404, "strategy_not_found", "Unknown strategy",
                          "the strategy was deleted meanwhile");
        return;
    }
    if (oc == GC_STRATEGY_CONFLICT) {
        json_decref(doc);
        gc_result_problem(res, 409, "strategy_changed", "The strategy changed meanwhile",
                          apr_psprintf(p,
                                       "strategy %s changed after revision %" APR_INT64_T_FMT
                                       " was read (or is being activated): read it again and "
                                       "retry",
                                       rec->id, rec->revision));
        return;
    }
    gc_result_ok(res, 200, doc);
}

/* ---------------------------------------------------------------- latency */

int gc_strategy_admin_interval(const char *text, apr_time_t *start, apr_time_t *end,
                               const char **why)
{
    const char *slash = text ? strchr(text, '/') : NULL;
    char left[64];
    size_t n;

    if (!text || !*text) {
        *why = "is required: an ISO 8601 interval <start>/<end>, e.g. "
               "2026-01-05T00:00:00Z/2026-01-06T00:00:00Z";
        return -1;
    }
    n = slash ? (size_t)(slash - text) : 0;
    if (!slash || strchr(slash + 1, '/') || n == 0 || n >= sizeof(left)) {
        *why = "must be <start>/<end>, two RFC 3339 timestamps, e.g. "
               "2026-01-05T00:00:00Z/2026-01-06T00:00:00Z";
        return -1;
    }
    memcpy(left, text, n);
    left[n] = '\0';
    if (gc_time_parse(left, start) != 0 || gc_time_parse(slash + 1, end) != 0) {
        *why = "must be <start>/<end>, two RFC 3339 timestamps (durations are not taken), e.g. "
               "2026-01-05T00:00:00Z/2026-01-06T00:00:00Z";
        return -1;
    }
    if (*end <= *start) {
        *why = "must end after it starts";
        return -1;
    }
    if (*end - *start > GC_STRATEGY_ADMIN_MAX_INTERVAL) {
        *why = "must span at most 31 days";
        return -1;
    }
    return 0;
}

static json_t *stat_json(const gc_strategy_stat_t *s)
{
    int any = s->has && s->count > 0;

    return json_pack("{s:o, s:o, s:o}", "avg", any ? json_real(s->sum / s->count) : json_null(),
                     "max", any ? number(s->max) : json_null(), "count",
                     number(s->has ? s->count : 0));
}

void gc_strategy_admin_latency(apr_pool_t *p, const gc_strategy_ops_t *ops, const char *strategy_id,
                               const gc_strategy_t *s, apr_time_t start, apr_time_t end,
                               gc_result_t *res)
{
    gc_strategy_latency_t *fig = apr_pcalloc(p, sizeof(*fig) * (size_t)(s->n_targets + 1));
    const char *interval =
        apr_pstrcat(p, gc_time_format(p, start), "/", gc_time_format(p, end), NULL);
    json_t *targets;
    gc_error_t *e = NULL;
    int i;

    if (!ops->aggregates) {
        gc_result_problem(res, 500, "internal", "Internal error", "no aggregates call");
        return;
    }
    if (ops->aggregates(ops->baton, p, interval, queue_ids(p, s), s->n_targets, fig, &e)
        != APR_SUCCESS) {
        gc_result_upstream(res, or_unknown(e));
        return;
    }
    targets = json_array();
    for (i = 0; i < s->n_targets; i++) {
        json_array_append_new(
            targets, json_pack("{s:s, s:o, s:o, s:o, s:o}", "queue_id", s->targets[i].queue_id,
                               "offered", number(fig[i].offered), "answered",
                               number(fig[i].answer.has ? fig[i].answer.count : 0), "wait_ms",
                               stat_json(&fig[i].wait), "answer_ms", stat_json(&fig[i].answer)));
    }
    gc_result_ok(res, 200,
                 json_pack("{s:s, s:s, s:o}", "strategy_id", strategy_id, "interval", interval,
                           "targets", targets));
}

/* ---------------------------------------------------------------- audits */

/* A member's string, or NULL. */
static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* One AuditLogMessage as an entry, or NULL when it is not an object. */
static json_t *genesys_entry(apr_pool_t *p, const json_t *m)
{
    const json_t *user = json_object_get(m, "user"), *client = json_object_get(m, "client");
    const json_t *entity = json_object_get(m, "entity"),
                 *changes = json_object_get(m, "propertyChanges");
    const char *actor = str(user, "name");
    json_t *out, *list, *c;
    size_t i;

    if (!json_is_object(m)) {
        return NULL;
    }
    if (!actor || !*actor) {
        actor = str(user, "id");
    }
    if ((!actor || !*actor) && str(client, "id")) {
        actor = apr_pstrcat(p, "client:", str(client, "id"), NULL);
    }
    out = json_pack("{s:s, s:o, s:o, s:o, s:o}", "source", "genesys", "id",
                    str_or_null(str(m, "id")), "at", str_or_null(str(m, "eventDate")), "actor",
                    str_or_null(actor), "action", str_or_null(str(m, "action")));
    json_object_set_new(out, "entity",
                        json_pack("{s:o, s:o, s:o}", "id", str_or_null(str(entity, "id")), "type",
                                  str_or_null(str(m, "entityType")), "name",
                                  str_or_null(str(entity, "name"))));
    list = json_array();
    json_array_foreach(changes, i, c)
    {
        json_t *ch;

        if (!json_is_object(c)) {
            continue;
        }
        ch = json_pack("{s:o}", "property", str_or_null(str(c, "property")));
        if (json_object_get(c, "oldValues")) {
            json_object_set(ch, "old", json_object_get(c, "oldValues"));
        }
        if (json_object_get(c, "newValues")) {
            json_object_set(ch, "new", json_object_get(c, "newValues"));
        }
        json_array_append_new(list, ch);
    }
    json_object_set_new(out, "changes", list);
    json_object_set_new(out, "status", str_or_null(str(m, "status")));
    return out;
}

static int failed_state(const char *state)
{
    return state && (!strcmp(state, "Failed") || !strcmp(state, "Cancelled"));
}

/* Polls of one query at most, whatever the deadline (a stuck query). */
#define MAX_POLLS 30

/* Wait until the query has Succeeded: APR_SUCCESS, or the problem in res. */
static apr_status_t await_query(apr_pool_t *p, const gc_strategy_ops_t *ops, const char *qid,
                                const char *state, apr_time_t deadline, gc_result_t *res)
{
    apr_interval_time_t delay = GC_STRATEGY_ADMIN_POLL_FIRST;
    gc_error_t *e = NULL;
    int polls = 0;

    while (!state || strcmp(state, "Succeeded")) {
        if (failed_state(state)) {
            gc_result_problem(res, 502, "upstream_audit_failed", "The Genesys audit query failed",
                              apr_psprintf(p, "Genesys Cloud audit query %s ended %s", qid, state));
            return APR_EGENERAL;
        }
        if ((deadline && apr_time_now() + delay > deadline) || polls >= MAX_POLLS) {
            gc_result_problem(res, 503, "upstream_deadline",
                              "Genesys Cloud did not answer within this request's deadline",
                              apr_psprintf(p,
                                           "the Genesys audit query %s was still %s when the "
                                           "request's deadline (GcmonRequestDeadline) came",
                                           qid, state ? state : "unknown"));
            res->retry_after = apr_time_from_sec(apr_time_sec(delay) + 1);
            return APR_TIMEUP;
        }
        apr_sleep(delay);
        delay = delay * 2 > GC_STRATEGY_ADMIN_POLL_MAX ? GC_STRATEGY_ADMIN_POLL_MAX : delay * 2;
        polls++;
        if (ops->audit_poll(ops->baton, p, qid, &state, &e) != APR_SUCCESS) {
            gc_result_upstream(res, or_unknown(e));
            return APR_EGENERAL;
        }
    }
    return APR_SUCCESS;
}

apr_status_t gc_strategy_admin_upstream_audit(apr_pool_t *p, const gc_strategy_ops_t *ops,
                                              const gc_strategy_t *s, apr_time_t from,
                                              apr_time_t to, apr_time_t deadline, json_t **entries,
                                              int *truncated, gc_result_t *res)
{
    const char *interval =
        apr_pstrcat(p, gc_time_format(p, from), "/", gc_time_format(p, to), NULL);
    const char *qid = NULL, *state = NULL, *cursor = NULL;
    gc_error_t *e = NULL;
    apr_status_t rv;
    int page;

    *entries = NULL;
    *truncated = 0;
    if (!ops->audit_submit || !ops->audit_poll || !ops->audit_results) {
        gc_result_problem(res, 500, "internal", "Internal error", "no audit calls");
        return APR_ENOTIMPL;
    }
    if (ops->audit_submit(ops->baton, p, interval, queue_ids(p, s), s->n_targets, &qid, &state, &e)
        != APR_SUCCESS) {
        gc_result_upstream(res, or_unknown(e));
        return APR_EGENERAL;
    }
    if ((rv = await_query(p, ops, qid, state, deadline, res)) != APR_SUCCESS) {
        return rv;
    }
    *entries = json_array();
    for (page = 0; page < GC_STRATEGY_ADMIN_AUDIT_PAGES; page++) {
        json_t *list = NULL, *m;
        const char *next = NULL;
        size_t i;

        e = NULL;
        if (ops->audit_results(ops->baton, p, qid, cursor, &list, &next, &e) != APR_SUCCESS) {
            json_decref(*entries);
            *entries = NULL;
            gc_result_upstream(res, or_unknown(e));
            return APR_EGENERAL;
        }
        json_array_foreach(list, i, m)
        {
            json_t *entry = genesys_entry(p, m);
            if (entry) {
                json_array_append_new(*entries, entry);
            }
        }
        json_decref(list);
        if (!next) {
            return APR_SUCCESS;
        }
        cursor = next;
    }
    *truncated = 1;
    return APR_SUCCESS;
}

static json_t *json_text_or_null(const char *text)
{
    json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;

    return j ? j : json_null();
}

json_t *gc_strategy_admin_audit_entry(apr_pool_t *p, const gc_audit_rec_t *a)
{
    return json_pack(
        "{s:s, s:I, s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:i, s:I}", "source", "gcmon", "id",
        (json_int_t)a->id, "at", gc_time_format(p, a->at), "actor", a->actor ? a->actor : "-",
        "actor_source", str_or_null(a->actor_source), "action", a->action ? a->action : "",
        "target", str_or_null(a->target), "request", json_text_or_null(a->request), "result",
        json_text_or_null(a->result), "status", a->status, "latency_ms", (json_int_t)a->latency_ms);
}

typedef struct {
    json_t *entry;
    apr_time_t at; /* 0: unknown (last) */
    size_t order;  /* gcmon's first, then each list's order */
} item_t;

static int newest_first(const void *x, const void *y)
{
    const item_t *a = x, *b = y;

    if (a->at != b->at) {
        return a->at > b->at ? -1 : 1;
    }
    return a->order < b->order ? -1 : a->order > b->order;
}

json_t *gc_strategy_admin_audit_merge(const json_t *gcmon, const json_t *genesys)
{
    size_t n = json_array_size(gcmon) + json_array_size(genesys), k = 0, i;
    item_t *items = calloc(n ? n : 1, sizeof(*items));
    const json_t *lists[2] = { gcmon, genesys };
    json_t *out = json_array(), *e;
    int l;

    if (!items) {
        return out;
    }
    for (l = 0; l < 2; l++) {
        json_array_foreach(lists[l], i, e)
        {
            apr_time_t t = 0;
            const char *at = str(e, "at");

            if (!at || gc_time_parse(at, &t) != 0) {
                t = 0;
            }
            items[k].entry = e;
            items[k].at = t;
            items[k].order = k;
            k++;
        }
    }
    qsort(items, k, sizeof(*items), newest_first);
    for (i = 0; i < k; i++) {
        json_array_append(out, items[i].entry);
    }
    free(items);
    return out;
}
