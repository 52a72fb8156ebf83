/* mod_gcmon_api: POST /v1/admin/strategies/{id}/activate (SPEC §3.6, §5.6).
 * The activation is a durable job run by the holder (gc_strategy_job.c):
 * here the strategy is set activating, the job queued and the request
 * audited in one transaction (gc_store_strategy_activate), and 202 answered
 * at once. The holder's job thread looks for due jobs at least every second
 * (it runs in another process: there is no wake across processes). */
#include <string.h>

#include <apr_strings.h>
#include <http_protocol.h>

#include "gc_audit.h"
#include "gc_body.h"
#include "gc_id.h"
#include "gc_store_strategy.h"
#include "gc_strategy_job.h"
#include "mod_gcmon_api_private.h"

typedef struct {
    const char *id;
    gc_job_t *job;
    gc_strategy_change_e outcome;
    const char *status; /* CONFLICT: the strategy's status */
} activate_t;

/* The strategy set activating, its job and the audit row: one transaction
 * (nothing is written when the strategy is missing or not activatable). */
static apr_status_t store_activation(struct gc_store *st, apr_pool_t *p, gc_audit_rec_t *a,
                                     const char *outbox_target, const char *outbox_body,
                                     void *baton, const char **err)
{
    activate_t *x = baton;

    return gc_store_strategy_activate(st, p, x->id, x->job, a, &x->outcome, &x->status, err);
}

/* The body is {} (or empty): every member is refused by name. */
static int check_body(gc_result_t *res, const json_t *body)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)body, key, v)
    {
        gc_body_error(res, key, "unknown_field", "is not a known member (the body is {})");
    }
    if (json_object_size(body)) {
        gc_body_fail(res, HTTP_UNPROCESSABLE_ENTITY);
        return 0;
    }
    return 1;
}

/* A refusal (nothing else written): its audit row alone; audit_req released. */
static void refused(request_rec *r, const gc_result_t *res, const char *target, json_t *audit_req,
                    apr_time_t started)
{
    json_t *result = gc_result_audit_json(res);

    gcmon_api_audit(r, GC_AUDIT_STRATEGY_ACTIVATE, target, audit_req, result, res->status, started,
                    NULL, NULL);
    json_decref(result);
    json_decref(audit_req);
}

int gcmon_api_strategy_activate(request_rec *r, const char **params, json_t *body)
{
    gc_result_t *res = gc_result_make(r->pool);
    apr_time_t now = apr_time_now();
    const char *id = params[0];
    json_t *audit_req, *doc;
    activate_t x;
    gc_job_t job;

    audit_req = json_pack("{s:s, s:O?}", "strategy_id", id, "body", body);
    if (!gc_id_valid(id)) {
        gc_result_field(res, "id", "the strategy id must be 1 to 64 letters, digits, '-' or '_'");
        gc_result_problem(res, HTTP_BAD_REQUEST, "validation_failed", "Invalid request",
                          "the strategy id in the path must be 1 to 64 letters, digits, '-' or "
                          "'_'");
        gc_result_error_type(res, "invalid_value");
    }
    else if (check_body(res, body) && gcmon_api_upstream_ready(res)) {
        /* res stays empty: on to the store */
    }
    if (gc_result_failed(res)) {
        /* Refused before anything was written: audited alone. */
        refused(r, res, gc_id_valid(id) ? id : NULL, audit_req, now);
        return gcmon_api_send_result(r, res);
    }
    if (!gcmon_api_store(r, 1)) {
        json_decref(audit_req);
        return OK;
    }
    gc_strategy_job_make(r->pool, id, gcmon_api_actor(r), now, &job);
    memset(&x, 0, sizeof(x));
    x.id = id;
    x.job = &job;
    x.outcome = GC_STRATEGY_MISSING;
    doc =
        json_pack("{s:s, s:s, s:s}", "id", id, "status", GC_STRATEGY_ACTIVATING, "job_id", job.id);
    if (gcmon_api_audit_with(r, GC_AUDIT_STRATEGY_ACTIVATE, id, audit_req, doc, HTTP_ACCEPTED, now,
                             NULL, NULL, store_activation, &x)
        != APR_SUCCESS) {
        json_decref(audit_req);
        json_decref(doc);
        return gcmon_api_send_problem(r, HTTP_INTERNAL_SERVER_ERROR, "database_error",
                                      "Database error", "the activation could not be queued");
    }
    if (x.outcome != GC_STRATEGY_CHANGED) {
        json_decref(doc);
        if (x.outcome == GC_STRATEGY_MISSING) {
            gc_result_problem(res, HTTP_NOT_FOUND, "strategy_not_found", "Unknown strategy",
                              apr_psprintf(r->pool, "there is no strategy %s", id));
        }
        else {
            gc_result_problem(res, HTTP_CONFLICT, "strategy_not_activatable",
                              "The strategy cannot be activated now",
                              apr_psprintf(r->pool,
                                           "the strategy is %s; only a draft or failed strategy "
                                           "can be activated",
                                           x.status ? x.status : "in another state"));
            gc_result_extra(res, "strategy_status", x.status ? json_string(x.status) : json_null());
        }
        refused(r, res, id, audit_req, now);
        return gcmon_api_send_result(r, res);
    }
    json_decref(audit_req);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  GCMON_LOGNO(1440) "strategy %s: activation %s queued by %s", id, job.id,
                  job.actor);
    apr_table_setn(r->headers_out, "Location",
                   apr_pstrcat(r->pool, gcmon_api_mount(r), "/v1/admin/strategies/", id, NULL));
    return gcmon_api_send_json(r, HTTP_ACCEPTED, doc);
}
