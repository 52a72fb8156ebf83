#include <apr_strings.h>

#include "gc_result.h"

static apr_status_t release(void *data)
{
    gc_result_t *res = data;

    json_decref(res->doc);
    json_decref(res->errors);
    json_decref(res->extra);
    res->doc = res->errors = res->extra = NULL;
    return APR_SUCCESS;
}

gc_result_t *gc_result_make(apr_pool_t *p)
{
    gc_result_t *res = apr_pcalloc(p, sizeof(*res));

    res->pool = p;
    apr_pool_cleanup_register(p, res, release, apr_pool_cleanup_null);
    return res;
}

void gc_result_ok(gc_result_t *res, int status, json_t *doc)
{
    json_decref(res->doc);
    res->status = status;
    res->doc = doc;
    res->slug = NULL;
}

void gc_result_problem(gc_result_t *res, int status, const char *slug, const char *title,
                       const char *detail)
{
    json_decref(res->doc);
    res->doc = NULL;
    res->status = status;
    res->slug = slug;
    res->title = title;
    res->detail = detail;
}

void gc_result_field(gc_result_t *res, const char *field, const char *message)
{
    json_t *e = json_pack("{s:s, s:s}", "field", field, "message", message);

    if (!res->errors) {
        res->errors = json_array();
    }
    /* Field names and messages are built from valid UTF-8; should one not be,
     * the error still counts. */
    json_array_append_new(
        res->errors,
        e ? e : json_pack("{s:s, s:s}", "field", "(invalid)", "message", "invalid member"));
}

void gc_result_extra(gc_result_t *res, const char *key, json_t *value)
{
    if (!res->extra) {
        res->extra = json_object();
    }
    json_object_set_new(res->extra, key, value ? value : json_null());
}

void gc_result_error_type(gc_result_t *res, const char *type)
{
    if (!res->error_type) {
        res->error_type = type;
    }
}

void gc_result_upstream(gc_result_t *res, const gc_error_t *e)
{
    if (e->deadline_cut && e->kind != GC_ERR_THROTTLED && e->kind != GC_ERR_BUDGET) {
        gc_result_problem(res, 503, "upstream_deadline",
                          "Genesys Cloud did not answer within this request's deadline",
                          e->message);
        res->retry_after = e->retry_after > 0 ? e->retry_after : APR_USEC_PER_SEC;
        return;
    }
    switch (e->kind) {
    case GC_ERR_THROTTLED:
    case GC_ERR_BUDGET:
        gc_result_problem(res, 503, "upstream_throttled",
                          "Genesys Cloud throttling outlasted the retry budget", e->message);
        res->retry_after = e->retry_after > 0 ? e->retry_after : APR_USEC_PER_SEC;
        break;
    case GC_ERR_CONFIG:
        gc_result_problem(res, 500, "upstream_misconfigured",
                          "The Genesys Cloud connection is misconfigured", e->message);
        break;
    case GC_ERR_AUTH:
        gc_result_problem(res, 502, "upstream_auth_failed",
                          "Genesys Cloud refused gcmon's credentials", e->message);
        break;
    case GC_ERR_FORBIDDEN:
        gc_result_problem(res, 502, "upstream_forbidden", "gcmon's OAuth client lacks a permission",
                          e->message);
        break;
    default:
        gc_result_problem(res, 502, "upstream_error", "Genesys Cloud request failed", e->message);
        break;
    }
}

int gc_result_failed(const gc_result_t *res)
{
    return res->slug != NULL;
}

json_t *gc_result_json(const gc_result_t *res)
{
    json_t *p, *d;

    if (!gc_result_failed(res)) {
        return json_incref(res->doc);
    }
    p = json_pack("{s:s, s:s, s:i}", "type",
                  apr_pstrcat(res->pool, GC_PROBLEM_BASE, res->slug, NULL), "title",
                  res->title ? res->title : res->slug, "status", res->status);
    if (res->extra) {
        json_object_update_missing(p, res->extra);
    }
    if (res->detail) {
        d = json_string(res->detail);
        json_object_set_new(p, "detail", d ? d : json_string("(detail not valid UTF-8)"));
    }
    if (res->errors) {
        json_object_set(p, "errors", res->errors);
    }
    return p;
}

json_t *gc_result_audit_json(const gc_result_t *res)
{
    if (!gc_result_failed(res)) {
        return json_incref(res->doc);
    }
    return json_pack("{s:s, s:s?}", "error", res->slug, "detail", res->detail);
}
