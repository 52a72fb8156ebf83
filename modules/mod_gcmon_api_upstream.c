/* mod_gcmon_api: POST /v1/admin/upstream/check, the operator's connection
 * test — a token and GET /api/v2/organizations/me, audited. */
#include <string.h>

#include <apr_strings.h>
#include <http_protocol.h>

#include "gc_audit.h"
#include "mod_gcmon_api_private.h"

/* The check itself, into res; what the audit row records of it. */
static json_t *check(request_rec *r, json_t *renew, gc_result_t *res)
{
    gcmon_api_runtime_t *run = gcmon_api_runtime();
    apr_time_t start = apr_time_now();
    gc_request_t req;
    gc_response_t *resp = NULL;
    gc_error_t *err = NULL;

    if (json_is_true(renew)) {
        gc_upstream_invalidate_token(run->upstream);
    }
    memset(&req, 0, sizeof(req));
    req.op = "org_get";
    req.method = "GET";
    req.path = "/api/v2/organizations/me";
    req.deadline = gcmon_api_deadline(r);
    if (gc_upstream_call(run->upstream, r->pool, &req, &resp, &err) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      GCMON_LOGNO(1101) "upstream check by %s failed: %s (%s)", gcmon_api_actor(r),
                      gc_err_kind_name(err->kind), err->message ? err->message : "");
        gc_result_upstream(res, err);
        return json_pack("{s:s, s:s?}", "error", gc_err_kind_name(err->kind), "detail",
                         err->message);
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, GCMON_LOGNO(1100) "upstream check by %s: ok",
                  gcmon_api_actor(r));
    gc_result_ok(res, HTTP_OK,
                 json_pack("{s:s, s:{s:O?, s:O?}, s:s, s:i, s:I}", "status", "ok", "organization",
                           "id", json_object_get(resp->json, "id"), "name",
                           json_object_get(resp->json, "name"), "api_url",
                           gcmon_api_conf()->conn.api_url, "attempts", resp->attempts, "latency_ms",
                           (json_int_t)apr_time_as_msec(apr_time_now() - start)));
    return gc_result_audit_json(res);
}

int gcmon_api_upstream_check(request_rec *r, const char **params, json_t *body)
{
    json_t *renew = body ? json_object_get(body, "renew_token") : NULL;
    gc_result_t *res = gc_result_make(r->pool);
    apr_time_t start = apr_time_now();
    json_t *audit_req, *result;

    if (renew && !json_is_boolean(renew)) {
        gc_result_field(res, "renew_token", "must be a boolean");
        gc_result_problem(res, HTTP_BAD_REQUEST, "validation_failed", "Invalid request",
                          "renew_token must be a boolean");
        gc_result_error_type(res, "invalid_type");
        return gcmon_api_send_result(r, res);
    }
    if (!gcmon_api_upstream_ready(res)) {
        return gcmon_api_send_result(r, res);
    }
    result = check(r, renew, res);
    gcmon_api_send_result(r, res);
    audit_req = json_pack("{s:b}", "renew_token", json_is_true(renew));
    gcmon_api_audit(r, GC_AUDIT_UPSTREAM_CHECK, NULL, audit_req, result, r->status, start, NULL,
                    NULL);
    json_decref(audit_req);
    json_decref(result);
    return OK;
}
