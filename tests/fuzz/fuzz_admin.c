/* The admin request bodies (gc_body-based validators) and the protocols they
 * feed, run against a fake Genesys: any bytes as
 *
 *   <kind> <path id>[ <extra>]\n<body>
 *
 * kind status   PUT …/agents/{id}/status   (extra: the If-Match header)
 *      weights  POST …/queues/{id}/weights (extra: the queue's GcmonWeightSkill)
 *      trace    POST …/flows/{id}/traces
 *      strategy POST …/strategies          (no path id: the first word is ignored)
 *
 * The body is decoded as the glue decodes it (JSON_REJECT_DUPLICATES |
 * JSON_DECODE_ANY; anything but an object is the glue's 400, the core never
 * sees it; an empty body is NULL, which the core reads as {}).
 *
 * Properties: every outcome is a well-formed result (fuzz_check_result); a
 * validator's count is its errors array's, 400 or 422; the status change
 * records its outcome exactly once, PATCHes a known definition only after the
 * preconditions held, and a success carries gcmon's strong ETag; a weights
 * distribution reports one of SPEC §3.4's statuses, writes proficiencies in
 * [0, 5] only after validation and the queue update, and its request hash is
 * 64 hex digits that ignore member order; a trace request's payload is a JSON
 * object; a valid strategy's canonical JSON validates again to the same JSON
 * (a fixed point) and makes a WFM body; the audit copies of the requests
 * serialise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "fuzz.h"
#include "gc_id.h"
#include "gc_presence.h"
#include "gc_status_change.h"
#include "gc_strategy.h"
#include "gc_trace_job.h"
#include "gc_weights.h"

static gc_error_t *fake_err(apr_pool_t *p, gc_err_kind_e kind, int status)
{
    gc_error_t *e = apr_pcalloc(p, sizeof(*e));

    e->kind = kind;
    e->status = status;
    e->message = "fake upstream failure";
    return e;
}

static int strong_tag(const char *t)
{
    return t && strlen(t) == 34 && t[0] == '"' && t[33] == '"'
           && strspn(t + 1, "0123456789abcdef") == 32;
}

/* ------------------------------------------------------------ status change */

/* The org's presence definitions as GET /api/v2/presence/definitions lists
 * them: system ones, an org-defined label, a deactivated one. */
static const char DEFINITIONS[] =
    "{\"entities\":["
    "{\"id\":\"6a3af858-942f-489d-9700-5f9bcdcdae9b\",\"type\":\"System\","
    "\"systemPresence\":\"AVAILABLE\",\"languageLabels\":{\"en_US\":\"Available\"}},"
    "{\"id\":\"3fd96123-badb-4f69-bc03-1b1ccc6d8014\",\"type\":\"System\","
    "\"systemPresence\":\"BREAK\",\"languageLabels\":{\"en_US\":\"Break\"}},"
    "{\"id\":\"e88f08e8-7b51-4b34-9c1c-ffc1ad9a1e5b\",\"type\":\"System\","
    "\"systemPresence\":\"ON_QUEUE\",\"languageLabels\":{\"en_US\":\"On Queue\"}},"
    "{\"id\":\"31fe3bac-dea6-44b7-bed7-47f91660a1a0\",\"type\":\"System\","
    "\"systemPresence\":\"MEAL\",\"languageLabels\":{\"en_US\":\"Meal\"}},"
    "{\"id\":\"5e5c5c66-ea97-4e7f-ac41-6424784829f2\",\"type\":\"User\","
    "\"systemPresence\":\"Away\",\"languageLabels\":{\"en_US\":\"Coaching\"}},"
    "{\"id\":\"ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5\",\"type\":\"User\","
    "\"systemPresence\":\"Busy\",\"languageLabels\":{\"en_US\":\"Old\"},\"deactivated\":true}]}";

typedef struct {
    apr_array_header_t *defs;
    apr_time_t clock;
    int records, patches, gets;
    const char *user_id;
} status_world_t;

static int s_ready(void *baton, gc_result_t *res)
{
    return 1;
}

static apr_status_t s_resolve(void *baton, apr_pool_t *p, const char *name, gc_presence_def_t *out,
                              int *found, gc_error_t **err)
{
    status_world_t *w = baton;
    const gc_presence_def_t *d;

    FUZZ_CHECK(name != NULL);
    if (strcmp(w->user_id, "defs-fail") == 0) {
        *err = fake_err(p, GC_ERR_THROTTLED, 429);
        (*err)->retry_after = apr_time_from_sec(30);
        return APR_EGENERAL;
    }
    d = gc_presence_find(w->defs, name);
    *found = d != NULL;
    if (d) {
        *out = *d;
    }
    return APR_SUCCESS;
}

static apr_status_t s_lock(void *baton, apr_pool_t *p, const char *name, const char *holder,
                           apr_time_t now, apr_interval_time_t ttl, int *held)
{
    status_world_t *w = baton;

    FUZZ_CHECK(name && holder && ttl > 0);
    *held = strcmp(w->user_id, "busy") != 0;
    return strcmp(w->user_id, "nodb") == 0 ? APR_EGENERAL : APR_SUCCESS;
}

static void s_unlock(void *baton, apr_pool_t *p, const char *name, const char *holder)
{
}

static apr_status_t s_presence(void *baton, apr_pool_t *p, const char *user_id, const char *patch,
                               gc_user_presence_t *out, gc_error_t **err)
{
    status_world_t *w = baton;
    const char *def_id = "6a3af858-942f-489d-9700-5f9bcdcdae9b", *msg = NULL;
    json_t *body;
    int rc;

    FUZZ_CHECK(gc_id_valid(user_id));
    if (strcmp(user_id, "gone") == 0) {
        *err = fake_err(p, GC_ERR_NOT_FOUND, 404);
        return APR_EGENERAL;
    }
    if (patch) {
        json_t *j = json_loads(patch, 0, NULL), *m;
        FUZZ_CHECK(json_is_object(j));
        def_id = json_string_value(json_object_get(json_object_get(j, "presenceDefinition"), "id"));
        FUZZ_CHECK(def_id && gc_presence_find(w->defs, def_id));
        def_id = apr_pstrdup(p, def_id);
        m = json_object_get(j, "message");
        FUZZ_CHECK(!m || json_is_string(m));
        msg = m ? apr_pstrdup(p, json_string_value(m)) : NULL;
        json_decref(j);
        w->patches++;
        if (strcmp(user_id, "patch-fail") == 0) {
            *err = fake_err(p, GC_ERR_SERVER, 503);
            return APR_EGENERAL;
        }
    }
    else {
        w->gets++;
    }
    body =
        json_pack("{s:{s:s}, s:s, s:s?}", "presenceDefinition", "id", def_id, "modifiedDate",
                  patch ? "2026-03-02T09:30:00.250Z" : "2026-03-02T09:00:00.000Z", "message", msg);
    FUZZ_CHECK(body != NULL);
    rc = gc_user_presence_parse(p, body, out);
    json_decref(body);
    FUZZ_CHECK(rc == 0);
    out->system = gc_presence_find(w->defs, out->definition_id)->system;
    return APR_SUCCESS;
}

static void s_record(void *baton, apr_pool_t *p, const json_t *request, const gc_result_t *res,
                     const char *outbox_target, const char *outbox_body)
{
    status_world_t *w = baton;

    w->records++;
    FUZZ_CHECK(json_is_object(request));
    fuzz_check_dumps(request);
    FUZZ_CHECK(res && res->status);
    FUZZ_CHECK(!outbox_target || (outbox_body && !gc_result_failed(res)));
    if (outbox_body) {
        json_t *j = json_loads(outbox_body, 0, NULL);
        FUZZ_CHECK(json_is_object(j) && json_object_size(j) == 8);
        json_decref(j);
    }
}

static apr_time_t s_now(void *baton)
{
    return ((status_world_t *)baton)->clock;
}

static void s_sleep(void *baton, apr_interval_time_t d)
{
    ((status_world_t *)baton)->clock += d;
}

static apr_array_header_t *transitions(apr_pool_t *p)
{
    static char *const r1[] = { "Available", "Break", "Meal", "Away" };
    static char *const r2[] = { "*", "Available" };
    static char *const r3[] = { "Break", "OnQueue" };
    apr_array_header_t *a = apr_array_make(p, 3, sizeof(gc_transition_t));

    FUZZ_CHECK(gc_transition_parse(p, 4, r1, apr_array_push(a)) == NULL);
    FUZZ_CHECK(gc_transition_parse(p, 2, r2, apr_array_push(a)) == NULL);
    FUZZ_CHECK(gc_transition_parse(p, 2, r3, apr_array_push(a)) == NULL);
    return a;
}

static void run_status(apr_pool_t *p, const char *id, const char *if_match, const json_t *body)
{
    json_t *listing = json_loads(DEFINITIONS, 0, NULL), *audit;
    status_world_t w;
    gc_status_change_ops_t ops;
    gc_status_change_req_t req;
    gc_status_change_out_t out;
    gc_result_t *res = gc_result_make(p);

    memset(&w, 0, sizeof(w));
    w.defs = gc_presence_defs_parse(p, listing);
    json_decref(listing);
    w.clock = apr_time_from_sec(1767225600);
    w.user_id = id;
    memset(&ops, 0, sizeof(ops));
    ops.baton = &w;
    ops.ready = s_ready;
    ops.resolve = s_resolve;
    ops.lock = s_lock;
    ops.unlock = s_unlock;
    ops.presence = s_presence;
    ops.record = s_record;
    ops.now = s_now;
    ops.sleep = s_sleep;
    memset(&req, 0, sizeof(req));
    req.user_id = id;
    req.body = body;
    req.if_match = if_match;
    req.actor = "fuzz@example.org";
    req.transitions = (id[0] & 1) ? transitions(p) : NULL;
    req.webhook = 1;
    req.holder = "fuzz-holder";
    req.lock_wait = apr_time_from_msec(200);
    gc_status_change(p, &ops, &req, res, &out);

    FUZZ_CHECK(w.records == 1);
    FUZZ_CHECK(out.metric_status && out.metric_result);
    fuzz_check_result(res);
    FUZZ_CHECK(w.patches <= 1 && w.patches <= w.gets);
    if (!gc_result_failed(res)) {
        FUZZ_CHECK(res->status == 200 && w.patches == 1);
        FUZZ_CHECK(strong_tag(res->etag));
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(res->doc, "user_id")), id) == 0);
        FUZZ_CHECK(strcmp(out.metric_result, "success") == 0);
    }
    else if (res->status == 412) {
        FUZZ_CHECK(w.patches == 0 && if_match != NULL && strong_tag(res->etag));
    }
    else if (res->status == 400) {
        FUZZ_CHECK(w.gets == 0 && res->errors && json_array_size(res->errors) > 0);
    }
    audit = gc_status_change_audit_request(body, if_match);
    FUZZ_CHECK(json_is_object(audit) && json_object_size(audit) <= 4);
    fuzz_check_dumps(audit);
    json_decref(audit);
}

/* ------------------------------------------------------------------ weights */

typedef struct {
    const json_t *body;
    int queue_puts, skill_puts, upstream;
} weights_world_t;

static apr_status_t w_members(void *baton, apr_pool_t *p, const char *queue_id, int page,
                              apr_array_header_t **members, int *more, gc_error_t **err)
{
    weights_world_t *w = baton;
    const json_t *mw = json_object_get(w->body, "member_weights");
    static const char *const statuses[] = { "IDLE", "OFF_QUEUE", NULL, "INTERACTING" };
    const char *key;
    json_t *v;
    int i = 0;

    w->upstream = 1;
    FUZZ_CHECK(page >= 1);
    if (strcmp(queue_id, "missing") == 0) {
        *err = fake_err(p, GC_ERR_NOT_FOUND, 404);
        return APR_EGENERAL;
    }
    *members = apr_array_make(p, 8, sizeof(gc_weights_member_t));
    *more = page < 2; /* two pages: the requested users on the second */
    if (page == 1) {
        gc_weights_member_t *m = apr_array_push(*members);
        m->user_id = "not-requested";
        m->joined = 1;
        m->routing_status = "IDLE";
        return APR_SUCCESS;
    }
    json_object_foreach((json_t *)mw, key, v)
    {
        gc_weights_member_t *m;
        if (key[0] == 'o') { /* users starting with 'o' are outsiders */
            continue;
        }
        m = apr_array_push(*members);
        m->user_id = apr_pstrdup(p, key);
        m->joined = i % 5 != 4;
        m->routing_status = statuses[i % 4];
        m->name = i % 2 ? "Agent" : NULL;
        i++;
    }
    return APR_SUCCESS;
}

static apr_status_t w_observations(void *baton, apr_pool_t *p, const char *queue_id,
                                   double *interacting, double *waiting, gc_error_t **err)
{
    *interacting = 1;
    *waiting = 0;
    return APR_SUCCESS;
}

static void w_get_skills(void *baton, apr_pool_t *p, const char *skill_id, gc_weights_read_t *items,
                         size_t n)
{
    size_t i;

    FUZZ_CHECK(gc_id_valid(skill_id));
    for (i = 0; i < n; i++) {
        FUZZ_CHECK(items[i].user_id != NULL);
        items[i].rv = APR_SUCCESS;
        items[i].present = items[i].user_id[0] != 'n'; /* 'n': no such skill yet */
        items[i].skill.proficiency = 2.5;
        items[i].skill.state = "active";
    }
}

static apr_status_t w_get_queue(void *baton, apr_pool_t *p, const char *queue_id, json_t **queue,
                                gc_error_t **err)
{
    *queue = json_pack("{s:s, s:s, s:i, s:s, s:{s:i}}", "id", queue_id, "name", "Support",
                       "version", 7, "skillEvaluationMethod", "ALL", "mediaSettings", "call", 20);
    return APR_SUCCESS;
}

static apr_status_t w_put_queue(void *baton, apr_pool_t *p, const char *queue_id,
                                const json_t *queue, gc_error_t **err)
{
    weights_world_t *w = baton;

    FUZZ_CHECK(json_is_object(queue));
    w->queue_puts++;
    if (strcmp(queue_id, "queue-fail") == 0) {
        *err = fake_err(p, GC_ERR_SERVER, 500);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static void w_put_skills(void *baton, apr_pool_t *p, const gc_weights_write_t *items, size_t n,
                         gc_weights_write_result_t *results)
{
    weights_world_t *w = baton;
    size_t i;

    FUZZ_CHECK(w->queue_puts > 0); /* members only after the queue (ALL → BEST) */
    for (i = 0; i < n; i++) {
        FUZZ_CHECK(items[i].user_id && gc_id_valid(items[i].skill_id));
        if (!items[i].remove) {
            FUZZ_CHECK(isfinite(items[i].proficiency) && items[i].proficiency >= 0
                       && items[i].proficiency <= 5 && items[i].state);
        }
        w->skill_puts++;
        results[i].rv = APR_SUCCESS;
        results[i].err = NULL;
        if (items[i].user_id[0] == 'x') { /* 'x': this write fails */
            results[i].rv = APR_EGENERAL;
            results[i].err = fake_err(p, i % 2 ? GC_ERR_TIMEOUT : GC_ERR_CLIENT, i % 2 ? 0 : 400);
        }
    }
}

static void run_weights(apr_pool_t *p, const char *queue_id, const char *skill, const json_t *body)
{
    static const char *const statuses[] = { "completed",           "validation_failed",
                                            "projection_failed",   "saturation_blocked",
                                            "queue_update_failed", "member_update_failed" };
    weights_world_t w;
    gc_weights_ops_t ops;
    gc_weights_req_t req;
    gc_weights_out_t out;
    gc_result_t *res = gc_result_make(p), *vres = gc_result_make(p);
    const char *h1, *h2;
    json_t *audit, *copy;
    int nerr, known = 0;
    size_t i;

    nerr = gc_weights_validate(vres, queue_id, body, skill);
    FUZZ_CHECK(nerr >= 0);
    FUZZ_CHECK(nerr == (vres->errors ? (int)json_array_size(vres->errors) : 0));
    if (nerr) {
        FUZZ_CHECK(vres->status == 400 || vres->status == 422);
        fuzz_check_result(vres);
    }

    memset(&w, 0, sizeof(w));
    w.body = body;
    memset(&ops, 0, sizeof(ops));
    ops.baton = &w;
    ops.members_page = w_members;
    ops.observations = w_observations;
    ops.get_skills = w_get_skills;
    ops.get_queue = w_get_queue;
    ops.put_queue = w_put_queue;
    ops.put_skills = w_put_skills;
    memset(&req, 0, sizeof(req));
    req.id = "dist-fuzz";
    req.queue_id = queue_id;
    req.body = body;
    req.default_skill = skill;
    memset(&out, 0, sizeof(out));
    gc_weights_distribute(p, &ops, &req, res, &out);
    fuzz_check_result(res);
    FUZZ_CHECK(out.status != NULL);
    for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        known |= strcmp(out.status, statuses[i]) == 0;
    }
    FUZZ_CHECK(known);
    FUZZ_CHECK((strcmp(out.status, "completed") == 0) == !gc_result_failed(res));
    if (nerr) { /* refused before any upstream call */
        FUZZ_CHECK(strcmp(out.status, "validation_failed") == 0 && !w.upstream);
    }

    audit = gc_weights_audit_request(body);
    FUZZ_CHECK(json_is_object(audit));
    fuzz_check_dumps(audit);
    json_decref(audit);
    /* The Idempotency-Key hash ignores member order: a deep copy hashes alike. */
    h1 = gc_weights_request_hash(p, queue_id, body);
    copy = body ? json_deep_copy(body) : NULL;
    h2 = gc_weights_request_hash(p, queue_id, copy);
    json_decref(copy);
    FUZZ_CHECK(h1 && strlen(h1) == 64 && strspn(h1, "0123456789abcdef") == 64);
    FUZZ_CHECK(h2 && strcmp(h1, h2) == 0);
}

/* ------------------------------------------------------------- trace, strategy */

static void run_trace(apr_pool_t *p, const char *flow_id, const json_t *body)
{
    gc_result_t *res = gc_result_make(p);
    const char *payload = "unset";
    int nerr = gc_trace_job_validate(p, res, flow_id, body, &payload);

    FUZZ_CHECK(nerr >= 0);
    if (nerr) {
        FUZZ_CHECK(payload == NULL && (res->status == 400 || res->status == 422));
        FUZZ_CHECK((size_t)nerr == json_array_size(res->errors));
        fuzz_check_result(res);
    }
    else {
        json_t *j = json_loads(payload, 0, NULL);
        FUZZ_CHECK(!gc_result_failed(res) && json_is_object(j));
        json_decref(j);
    }
}

static void run_strategy(apr_pool_t *p, const json_t *body)
{
    gc_result_t *res = gc_result_make(p), *res2;
    gc_strategy_t *s = NULL, *s2 = NULL;
    json_t *canon, *canon2, *hook;
    int nerr = gc_strategy_validate(p, res, body, &s);

    FUZZ_CHECK(nerr >= 0);
    if (nerr) {
        FUZZ_CHECK(res->status == 422 && (size_t)nerr == json_array_size(res->errors));
        fuzz_check_result(res);
        return;
    }
    FUZZ_CHECK(s && s->n_targets >= 1 && s->n_targets <= GC_STRATEGY_MAX_TARGETS);
    canon = gc_strategy_json(s);
    FUZZ_CHECK(json_is_object(canon));
    res2 = gc_result_make(p);
    FUZZ_CHECK(gc_strategy_validate(p, res2, canon, &s2) == 0);
    canon2 = gc_strategy_json(s2);
    FUZZ_CHECK(json_equal(canon, canon2));
    hook = gc_strategy_webhook_body(p, "strategy-1", s, "draft", apr_time_from_sec(1));
    FUZZ_CHECK(json_is_object(hook));
    fuzz_check_dumps(hook);
    json_decref(hook);
    json_decref(canon2);
    json_decref(canon);
}

/* ------------------------------------------------------------------ entry */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    char *line, *kind, *id, *extra, *last = NULL;
    const uint8_t *rest;
    size_t rest_len;
    json_t *body = NULL;

    fuzz_split_line(data, size, &line, &rest, &rest_len);
    kind = apr_strtok(line, " ", &last);
    id = kind ? apr_strtok(NULL, " ", &last) : NULL;
    extra = last && *last ? last : NULL;
    if (!kind || !id) {
        free(line);
        return 0;
    }
    if (rest_len) {
        body = json_loadb((const char *)rest, rest_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                          NULL);
        if (!json_is_object(body)) { /* the glue's 400: the core never sees it */
            json_decref(body);
            free(line);
            return 0;
        }
    }
    p = fuzz_pool();
    if (strcmp(kind, "status") == 0) {
        run_status(p, id, extra, body);
    }
    else if (strcmp(kind, "weights") == 0) {
        run_weights(p, id, extra, body);
    }
    else if (strcmp(kind, "trace") == 0) {
        run_trace(p, id, body);
    }
    else if (strcmp(kind, "strategy") == 0) {
        run_strategy(p, body);
    }
    apr_pool_destroy(p);
    json_decref(body);
    free(line);
    return 0;
}
