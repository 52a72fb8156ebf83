/* gcmon core: the Genesys Cloud calls of a trace job (gc_trace_calls.h). */
#include <string.h>

#include <apr_strings.h>

#include "gc_trace_calls.h"

typedef struct {
    gc_upstream_t *up;
    int webhook;
} calls_t;

static apr_status_t call(const calls_t *c, apr_pool_t *p, const char *op, const char *method,
                         const char *path, const char *body, int no_auth, gc_response_t **resp,
                         gc_error_t **err)
{
    gc_request_t req;

    memset(&req, 0, sizeof(req));
    req.op = op;
    req.method = method;
    req.path = path;
    req.body = body;
    req.no_auth = no_auth;
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

static json_t *criteria(const char *key, const char *value)
{
    return json_pack("{s:{s:s, s:[s], s:s}}", "criteria", "key", key, "values", value, "operator",
                     "equal");
}

static apr_status_t c_query(void *baton, apr_pool_t *p, const char *flow_id,
                            const char *conversation_id, int max, apr_array_header_t **ids,
                            gc_error_t **err)
{
    calls_t *c = baton;
    json_t *q = json_pack("{s:[o]}", "query", criteria("flowId", flow_id)), *entities, *e;
    gc_response_t *resp;
    const char *body;
    apr_status_t rv;
    size_t i;

    if (conversation_id) {
        json_array_append_new(json_object_get(q, "query"),
                              criteria("conversationId", conversation_id));
    }
    body = gc_json_text(p, q);
    json_decref(q);
    rv = call(c, p, "flow_instances_query", "POST",
              apr_psprintf(p, "/api/v2/flows/instances/query?pageSize=%d", max), body, 0, &resp,
              err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    entities = resp->json ? json_object_get(resp->json, "entities") : NULL;
    if (!json_is_array(entities)) {
        return malformed(p, resp, "the flow instances query answered no entities", err);
    }
    *ids = apr_array_make(p, (int)json_array_size(entities) + 1, sizeof(const char *));
    json_array_foreach(entities, i, e)
    {
        const char *id = json_string_value(json_object_get(e, "id"));
        if (id) {
            APR_ARRAY_PUSH(*ids, const char *) = apr_pstrdup(p, id);
        }
    }
    return APR_SUCCESS;
}

static apr_status_t c_submit(void *baton, apr_pool_t *p, const apr_array_header_t *ids,
                             const char **job_id, gc_error_t **err)
{
    calls_t *c = baton;
    json_t *list = json_array(), *b;
    gc_response_t *resp;
    const char *body, *id;
    apr_status_t rv;
    int i;

    for (i = 0; i < ids->nelts; i++) {
        json_array_append_new(list, json_string(APR_ARRAY_IDX(ids, i, const char *)));
    }
    b = json_pack("{s:o}", "ids", list);
    body = gc_json_text(p, b);
    json_decref(b);
    rv = call(c, p, "flow_instances_job", "POST", "/api/v2/flows/instances/jobs", body, 0, &resp,
              err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    id = resp->json ? json_string_value(json_object_get(resp->json, "id")) : NULL;
    if (!id) {
        return malformed(p, resp, "the download job has no id", err);
    }
    *job_id = apr_pstrdup(p, id);
    return APR_SUCCESS;
}

static const char *dup_str(apr_pool_t *p, const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? apr_pstrdup(p, s) : NULL;
}

static apr_status_t c_poll(void *baton, apr_pool_t *p, const char *job_id, const char **state,
                           apr_array_header_t **entities, const char **reason, gc_error_t **err)
{
    calls_t *c = baton;
    gc_response_t *resp;
    json_t *list, *e;
    apr_status_t rv;
    size_t i;

    rv = call(c, p, "flow_instances_job_get", "GET",
              apr_pstrcat(p, "/api/v2/flows/instances/jobs/", job_id, NULL), NULL, 0, &resp, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!resp->json || !(*state = dup_str(p, resp->json, "jobState"))) {
        return malformed(p, resp, "the download job has no jobState", err);
    }
    *reason = dup_str(p, resp->json, "errorMessage");
    list = json_object_get(resp->json, "entities");
    *entities = apr_array_make(p, (int)json_array_size(list) + 1, sizeof(gc_trace_entity_t));
    json_array_foreach(list, i, e)
    {
        gc_trace_entity_t *en = apr_array_push(*entities);

        en->instance_id = dup_str(p, e, "id");
        en->download_uri = dup_str(p, e, "downloadUri");
        en->failed = json_is_true(json_object_get(e, "failed"));
        en->status_code = dup_str(p, e, "statusCode");
    }
    return APR_SUCCESS;
}

static apr_status_t c_download(void *baton, apr_pool_t *p, const char *uri, const char **body,
                               apr_size_t *len, gc_error_t **err)
{
    calls_t *c = baton;
    gc_response_t *resp;
    apr_status_t rv;

    rv = call(c, p, "flow_execution_download", "GET", uri, NULL, 1, &resp, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *body = resp->body;
    *len = resp->body_len;
    return APR_SUCCESS;
}

static int c_webhook(void *baton)
{
    return ((calls_t *)baton)->webhook;
}

gc_trace_ops_t gc_trace_calls_ops(apr_pool_t *p, gc_upstream_t *up, int webhook)
{
    gc_trace_ops_t ops;
    calls_t *c = apr_pcalloc(p, sizeof(*c));

    c->up = up;
    c->webhook = webhook;
    memset(&ops, 0, sizeof(ops));
    ops.baton = c;
    ops.query = c_query;
    ops.submit = c_submit;
    ops.poll = c_poll;
    ops.download = c_download;
    ops.webhook_configured = c_webhook;
    return ops;
}
