/* gcmon core: a flow trace as a durable job (gc_trace_job.h). */
#include <string.h>

#include <apr_strings.h>

#include "gc_backoff.h"
#include "gc_body.h"
#include "gc_id.h"
#include "gc_trace.h"
#include "gc_trace_job.h"

#define ID_MESSAGE "must be 1 to 64 letters, digits, '-' or '_'"

/* ---------------------------------------------------------------- the request */

static void check_id(gc_result_t *res, const gc_body_field_t *f, const json_t *value, void *baton)
{
    if (!gc_id_valid(json_string_value(value))) {
        gc_body_error(res, f->name, "invalid_value", ID_MESSAGE);
    }
}

static void check_directives(gc_result_t *res, const gc_body_field_t *f, const json_t *value,
                             void *baton)
{
    const char *key;
    json_t *v;
    int any = 0;

    json_object_foreach((json_t *)value, key, v)
    {
        const char *field = apr_pstrcat(res->pool, f->name, ".", key, NULL);

        if (strcmp(key, "capture_context") && strcmp(key, "capture_data")) {
            gc_body_error(res, field, "unknown_field", "is not a known member");
        }
        else if (!json_is_boolean(v)) {
            gc_body_error(res, field, "invalid_type", "must be true or false");
        }
        else {
            any |= json_is_true(v);
        }
    }
    if (!any) {
        gc_body_error(res, f->name, "invalid_value",
                      "must set at least one of capture_context, capture_data to true");
    }
}

static const gc_body_field_t body_fields[] = {
    { "instance_id", GC_BODY_STRING, 0, 0, 0, check_id },
    { "conversation_id", GC_BODY_STRING, 0, 0, 0, check_id },
    { "action_invocation_id", GC_BODY_STRING, 0, 0, 0, check_id },
    { "trace_depth", GC_BODY_INTEGER, GC_BODY_REQUIRED | GC_BODY_BOUNDED, GC_TRACE_MIN_DEPTH,
      GC_TRACE_MAX_DEPTH_REQ, NULL },
    { "context_directives", GC_BODY_OBJECT, GC_BODY_REQUIRED, 0, 0, check_directives },
};
#define N_FIELDS (sizeof(body_fields) / sizeof(body_fields[0]))

int gc_trace_job_validate(apr_pool_t *p, gc_result_t *res, const char *flow_id, const json_t *body,
                          const char **payload)
{
    size_t before = res->errors ? json_array_size(res->errors) : 0, n;
    json_t *cd, *out;

    *payload = NULL;
    if (!flow_id || !gc_id_valid(flow_id)) {
        gc_body_error(res, "flow_id", "invalid_value", "in the path " ID_MESSAGE);
        gc_body_fail(res, 400);
        return 1;
    }
    if (body && !json_is_object(body)) {
        gc_body_error(res, "body", "invalid_type", "must be a JSON object");
    }
    else {
        gc_body_validate(res, body, body_fields, N_FIELDS, NULL);
        if (body && json_is_string(json_object_get(body, "instance_id"))
            && json_is_string(json_object_get(body, "conversation_id"))) {
            gc_body_error(res, "instance_id", "invalid_value",
                          "give instance_id or conversation_id, not both");
        }
    }
    n = (res->errors ? json_array_size(res->errors) : 0) - before;
    if (n) {
        gc_body_fail(res, 422);
        return (int)n;
    }
    cd = json_object_get(body, "context_directives");
    out = json_pack("{s:s, s:s?, s:s?, s:s?, s:I, s:b, s:b}", "flow_id", flow_id, "instance_id",
                    json_string_value(json_object_get(body, "instance_id")), "conversation_id",
                    json_string_value(json_object_get(body, "conversation_id")),
                    "action_invocation_id",
                    json_string_value(json_object_get(body, "action_invocation_id")), "trace_depth",
                    json_integer_value(json_object_get(body, "trace_depth")), "capture_context",
                    json_is_true(json_object_get(cd, "capture_context")), "capture_data",
                    json_is_true(json_object_get(cd, "capture_data")));
    *payload = out ? gc_json_text(p, out) : NULL;
    json_decref(out);
    if (!*payload) {
        gc_result_problem(res, 500, "internal", "Internal error",
                          "the trace request could not be encoded");
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the steps */

typedef struct {
    apr_pool_t *p;
    const gc_trace_ops_t *ops;
    const gc_job_t *job;
    gc_job_step_t *out;
    double rand;
    apr_time_t now;
    /* the payload */
    json_t *payload;
    const char *flow_id, *instance_id, *conversation_id, *action_invocation_id;
    int depth, capture_context, capture_data;
    /* the progress */
    json_t *step;
} run_t;

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static const char *step_text(run_t *r)
{
    return gc_json_text(r->p, r->step);
}

/* Run again after the backoff of `failures` (jittered), a longer Retry-After
 * winning. */
static void again(run_t *r, int failures, apr_interval_time_t retry_after, const char *error)
{
    apr_interval_time_t d = gc_backoff_delay(GC_TRACE_POLL_MIN, GC_TRACE_POLL_MAX, failures, 0);

    d = d / 2 + (apr_interval_time_t)(r->rand * (double)(d / 2));
    if (retry_after > d) {
        d = retry_after;
    }
    r->out->outcome = GC_JOB_AGAIN;
    r->out->step = step_text(r);
    r->out->next_run_at = r->now + d;
    r->out->error = error;
}

/* The end, completed (doc: the engine's document) or failed (reason). */
static void finish(run_t *r, json_t *doc, const char *reason)
{
    const char *status = doc ? "completed" : "failed";
    apr_int64_t latency = gc_trace_retrieval_ms(r->job->created_at, r->now);
    json_t *result = doc ? json_copy(doc) : json_object(), *hook, *audit, *instances;

    json_object_set_new(result, "status", json_string(status));
    json_object_set_new(result, "flow_id", json_string(r->flow_id));
    instances = json_object_get(r->step, "instances");
    json_object_set_new(result, "instance_ids", instances ? json_incref(instances) : json_array());
    json_object_set_new(result, "retrieval_latency_ms", json_integer(latency));
    json_object_set_new(result, "error", reason ? json_string(reason) : json_null());
    r->out->outcome = doc ? GC_JOB_DONE : GC_JOB_FAILED;
    r->out->result = gc_json_text(r->p, result);
    r->out->error = reason;
    r->out->audit_action = GC_TRACE_AUDIT_ACTION;
    audit = json_pack("{s:s, s:s, s:s?, s:O?}", "status", status, "flow_id", r->flow_id, "error",
                      reason, "bottleneck", json_object_get(result, "bottleneck"));
    r->out->audit_result = audit ? gc_json_text(r->p, audit) : NULL;
    json_decref(audit);
    if (r->ops->webhook_configured && r->ops->webhook_configured(r->ops->baton)) {
        hook = gc_trace_webhook_body(r->p, r->flow_id, r->action_invocation_id, status, doc,
                                     latency, r->now);
        r->out->outbox_target = GC_TRACE_KIND;
        r->out->outbox_body = hook ? gc_json_text(r->p, hook) : NULL;
        json_decref(hook);
    }
    json_decref(result);
}

/* A failed upstream call of phase `doing`: again later, or the end. */
static void fault(run_t *r, const gc_error_t *e, const char *doing)
{
    const char *why = apr_psprintf(r->p, "%s: %s", doing, gc_err_text(r->p, e));
    json_int_t failures = json_integer_value(json_object_get(r->step, "failures")) + 1;

    if (e && e->kind == GC_ERR_CANCELLED) {
        r->out->outcome = GC_JOB_GIVE_BACK;
        return;
    }
    if (!gc_err_transient(e)) {
        finish(r, NULL, why);
        return;
    }
    json_object_set_new(r->step, "failures", json_integer(failures));
    again(r, (int)failures, e ? e->retry_after : 0, why);
}

static void set_phase(run_t *r, const char *phase)
{
    json_object_set_new(r->step, "phase", json_string(phase));
    json_object_set_new(r->step, "failures", json_integer(0));
}

/* One restart more (a new Genesys job, fresh links): 0 when spent. */
static int restart(run_t *r, const char *phase)
{
    json_int_t n = json_integer_value(json_object_get(r->step, "restarts")) + 1;

    if (n > GC_TRACE_MAX_RESTARTS) {
        return 0;
    }
    json_object_set_new(r->step, "restarts", json_integer(n));
    set_phase(r, phase);
    json_object_set_new(r->step, "polls", json_integer(0));
    return 1;
}

static int find(run_t *r)
{
    apr_array_header_t *ids = NULL;
    gc_error_t *e = NULL;
    json_t *list = json_array();
    int i;

    if (r->instance_id) {
        json_array_append_new(list, json_string(r->instance_id));
    }
    else if (r->ops->query(r->ops->baton, r->p, r->flow_id, r->conversation_id, r->depth, &ids, &e)
             != APR_SUCCESS) {
        json_decref(list);
        if (e && e->kind == GC_ERR_NOT_FOUND) {
            finish(r, NULL, apr_psprintf(r->p, "Genesys Cloud has no flow %s", r->flow_id));
        }
        else {
            fault(r, e, "finding the flow's instances");
        }
        return 0;
    }
    for (i = 0; ids && i < ids->nelts && i < r->depth; i++) {
        json_array_append_new(list, json_string(APR_ARRAY_IDX(ids, i, const char *)));
    }
    if (!json_array_size(list)) {
        json_decref(list);
        finish(r, NULL,
               r->conversation_id
                   ? apr_psprintf(r->p, "no execution of flow %s was found for conversation %s",
                                  r->flow_id, r->conversation_id)
                   : apr_psprintf(r->p,
                                  "no execution of flow %s was found (is execution data "
                                  "enabled for it?)",
                                  r->flow_id));
        return 0;
    }
    json_object_set_new(r->step, "instances", list);
    set_phase(r, "submit");
    return 1;
}

static void submit(run_t *r)
{
    json_t *list = json_object_get(r->step, "instances"), *v;
    apr_array_header_t *ids =
        apr_array_make(r->p, (int)json_array_size(list) + 1, sizeof(const char *));
    const char *job_id = NULL;
    gc_error_t *e = NULL;
    size_t i;

    json_array_foreach(list, i, v)
    {
        APR_ARRAY_PUSH(ids, const char *) = json_string_value(v);
    }
    if (r->ops->submit(r->ops->baton, r->p, ids, &job_id, &e) != APR_SUCCESS) {
        fault(r, e, "submitting the download job");
        return;
    }
    json_object_set_new(r->step, "job", json_string(job_id));
    set_phase(r, "poll");
    json_object_set_new(r->step, "polls", json_integer(0));
    again(r, 1, 0, NULL);
}

static apr_status_t decref_json(void *j)
{
    json_decref(j);
    return APR_SUCCESS;
}

/* Success: every document, then the graph and the end. */
static void fetch(run_t *r, const apr_array_header_t *entities)
{
    int n = entities->nelts, i, usable = 0;
    const json_t **docs = apr_pcalloc(r->p, (n + 1) * sizeof(*docs));
    const char **ids = apr_pcalloc(r->p, (n + 1) * sizeof(*ids));
    gc_trace_input_t in;
    gc_trace_result_t *res = NULL;
    const char *reason = NULL, *first_err = NULL;

    for (i = 0; i < n; i++) {
        const gc_trace_entity_t *en = &APR_ARRAY_IDX(entities, i, gc_trace_entity_t);
        const char *body = NULL;
        apr_size_t len = 0;
        gc_error_t *e = NULL;
        json_t *doc;

        ids[i] = en->instance_id;
        if (en->failed || !en->download_uri) {
            continue;
        }
        if (r->ops->download(r->ops->baton, r->p, en->download_uri, &body, &len, &e)
            != APR_SUCCESS) {
            if (e && e->kind == GC_ERR_CANCELLED) {
                r->out->outcome = GC_JOB_GIVE_BACK;
                return;
            }
            if (e && (e->status == 403 || e->status == 404) && restart(r, "poll")) {
                again(r, 0, 0, "a download link had expired: polling for fresh ones");
                return;
            }
            if (!first_err) {
                first_err = apr_psprintf(r->p, "downloading %s: %s",
                                         en->instance_id ? en->instance_id : "an instance",
                                         gc_err_text(r->p, e));
            }
            continue;
        }
        doc = json_loadb(body, len, 0, NULL);
        if (doc) {
            /* released with the step's pool */
            apr_pool_cleanup_register(r->p, doc, decref_json, apr_pool_cleanup_null);
            docs[i] = doc;
            usable++;
        }
    }
    memset(&in, 0, sizeof(in));
    in.docs = docs;
    in.n_docs = n;
    in.instance_ids = ids;
    in.capture_data = r->capture_data;
    in.capture_context = r->capture_context;
    in.items_reported = -1;
    if (!n) {
        finish(r, NULL, "the download job returned no instance");
        return;
    }
    if (!usable && first_err) {
        finish(r, NULL, first_err);
        return;
    }
    if (gc_trace_build(r->p, &in, &res, &reason) != 0) {
        finish(r, NULL, reason ? reason : "the execution data could not be read");
        return;
    }
    finish(r, res->doc, NULL);
}

static void poll(run_t *r)
{
    const char *state = NULL, *reason = NULL;
    apr_array_header_t *entities = NULL;
    gc_error_t *e = NULL;
    json_int_t polls = json_integer_value(json_object_get(r->step, "polls")) + 1;

    json_object_set_new(r->step, "polls", json_integer(polls));
    if (r->ops->poll(r->ops->baton, r->p, str(r->step, "job"), &state, &entities, &reason, &e)
        != APR_SUCCESS) {
        if (e && e->kind == GC_ERR_NOT_FOUND && restart(r, "submit")) {
            submit(r);
            return;
        }
        fault(r, e, "polling the download job");
        return;
    }
    json_object_set_new(r->step, "failures", json_integer(0));
    if (state && !strcmp(state, "Success")) {
        fetch(r, entities ? entities : apr_array_make(r->p, 1, sizeof(gc_trace_entity_t)));
        return;
    }
    if (state && !strcmp(state, "Failed")) {
        finish(r, NULL,
               apr_psprintf(r->p, "the Genesys Cloud download job failed%s%s", reason ? ": " : "",
                            reason ? reason : ""));
        return;
    }
    again(r, (int)polls, 0, NULL);
}

void gc_trace_job_step(apr_pool_t *p, const gc_trace_ops_t *ops, const gc_job_t *job, double rand,
                       apr_time_t now, gc_job_step_t *out)
{
    run_t r;
    const char *phase;

    memset(&r, 0, sizeof(r));
    memset(out, 0, sizeof(*out));
    r.p = p;
    r.ops = ops;
    r.job = job;
    r.out = out;
    r.rand = rand;
    r.now = now;
    r.payload = job->payload ? json_loads(job->payload, 0, NULL) : NULL;
    r.step = job->step ? json_loads(job->step, 0, NULL) : NULL;
    if (!r.step) {
        r.step = json_pack("{s:s}", "phase", "find");
    }
    r.flow_id = str(r.payload, "flow_id");
    r.instance_id = str(r.payload, "instance_id");
    r.conversation_id = str(r.payload, "conversation_id");
    r.action_invocation_id = str(r.payload, "action_invocation_id");
    r.depth = (int)json_integer_value(json_object_get(r.payload, "trace_depth"));
    r.capture_context = json_is_true(json_object_get(r.payload, "capture_context"));
    r.capture_data = json_is_true(json_object_get(r.payload, "capture_data"));
    phase = str(r.step, "phase");
    if (!r.flow_id || r.depth < GC_TRACE_MIN_DEPTH || !phase) {
        r.flow_id = r.flow_id ? r.flow_id : "";
        finish(&r, NULL, "the trace's stored request is unreadable");
    }
    else if (!strcmp(phase, "find")) {
        if (find(&r)) {
            submit(&r);
        }
    }
    else if (!strcmp(phase, "submit")) {
        submit(&r);
    }
    else if (!strcmp(phase, "poll")) {
        poll(&r);
    }
    else {
        finish(&r, NULL, apr_psprintf(p, "the trace's progress is unreadable (phase %s)", phase));
    }
    json_decref(r.payload);
    json_decref(r.step);
}
