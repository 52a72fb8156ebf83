/* mod_gcmon_api: flow execution traces (SPEC §3.5, §5.5). A trace is a
 * durable job (gc_jobs.h) run by the stream holder (gc_trace_job.c): here
 * are its submission (202 at once, audited in the same transaction), the
 * trace as it stands, and the listing. */
#include <string.h>

#include <apr_strings.h>
#include <http_protocol.h>

#include "gc_audit.h"
#include "gc_id.h"
#include "gc_jobs.h"
#include "gc_time.h"
#include "gc_trace_job.h"
#include "mod_gcmon_api_private.h"

/* A stored result bigger than this is not parsed for a listing's row. */
#define LIST_RESULT_MAX (1024 * 1024)

static apr_status_t store_job(struct gc_store *st, apr_pool_t *p, gc_audit_rec_t *a,
                              const char *outbox_target, const char *outbox_body, void *baton,
                              const char **err)
{
    return gc_store_jobs_submit(st, p, baton, a, err);
}

int gcmon_api_traces_post(request_rec *r, const char **params, json_t *body)
{
    gc_result_t *res = gc_result_make(r->pool);
    apr_time_t now = apr_time_now();
    const char *payload = NULL;
    json_t *audit_req, *doc;
    gc_job_t job;

    audit_req = json_pack("{s:s, s:O?}", "flow_id", params[0], "body", body);
    if (gc_trace_job_validate(r->pool, res, params[0], body, &payload) > 0) {
        gcmon_api_audit(r, GC_AUDIT_TRACE_SUBMIT, gc_id_valid(params[0]) ? params[0] : NULL,
                        audit_req, NULL, res->status, now, NULL, NULL);
        json_decref(audit_req);
        return gcmon_api_send_result(r, res);
    }
    /* No credentials: no holder could ever run it (docs/stream.md). */
    if (!gcmon_api_upstream_ready(res)) {
        json_decref(audit_req);
        return gcmon_api_send_result(r, res);
    }
    if (!gcmon_api_store(r, 1)) {
        json_decref(audit_req);
        return OK;
    }
    memset(&job, 0, sizeof(job));
    job.id = gc_id_random(r->pool, "trace");
    job.kind = GC_TRACE_KIND;
    job.target = params[0];
    job.actor = gcmon_api_actor(r);
    job.payload = payload;
    job.created_at = now;
    job.next_run_at = now;
    job.deadline_at = now + gcmon_api_trace_timeout(gcmon_api_conf());
    doc = json_pack("{s:s, s:s}", "id", job.id, "status", "queued");
    if (gcmon_api_audit_with(r, GC_AUDIT_TRACE_SUBMIT, params[0], audit_req, doc, HTTP_ACCEPTED,
                             now, NULL, NULL, store_job, &job)
        != APR_SUCCESS) {
        json_decref(audit_req);
        json_decref(doc);
        return gcmon_api_send_problem(r, HTTP_INTERNAL_SERVER_ERROR, "database_error",
                                      "Database error", "the trace could not be queued");
    }
    json_decref(audit_req);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  GCMON_LOGNO(1408) "trace %s of flow %s queued by %s", job.id, params[0],
                  job.actor);
    apr_table_setn(r->headers_out, "Location",
                   apr_pstrcat(r->pool, gcmon_api_mount(r), "/v1/admin/traces/", job.id, NULL));
    return gcmon_api_send_json(r, HTTP_ACCEPTED, doc);
}

static json_t *time_or_null(request_rec *r, apr_time_t t)
{
    return t ? json_string(gc_time_format(r->pool, t)) : json_null();
}

/* A trace: the job's row, and (once ended) its stored result's members
 * (graph, bottleneck, …); the row's own fields win. `full` 0: a listing's
 * summary (the result only for its bottleneck). */
static json_t *trace_json(request_rec *r, const gc_job_t *j, int full)
{
    json_t *out = json_object(), *result = NULL;

    if (j->result && (full || strlen(j->result) <= LIST_RESULT_MAX)) {
        result = json_loads(j->result, 0, NULL);
    }
    if (full && json_is_object(result)) {
        json_object_update(out, result);
    }
    else if (!full) {
        json_t *b = json_is_object(result) ? json_object_get(result, "bottleneck") : NULL;
        json_object_set(out, "bottleneck", b ? b : json_null());
    }
    json_decref(result);
    json_object_set_new(out, "id", json_string(j->id));
    json_object_set_new(out, "flow_id", j->target ? json_string(j->target) : json_null());
    json_object_set_new(out, "status", json_string(j->state));
    json_object_set_new(out, "error", j->error ? json_string(j->error) : json_null());
    json_object_set_new(out, "created_at", time_or_null(r, j->created_at));
    json_object_set_new(out, "completed_at", time_or_null(r, j->completed_at));
    if (full) {
        json_object_set_new(out, "attempts", json_integer(j->attempts));
        json_object_set_new(out, "updated_at", time_or_null(r, j->updated_at));
    }
    return out;
}

int gcmon_api_trace_get(request_rec *r, const char **params, json_t *body)
{
    struct gc_store *st;
    const char *err = NULL;
    gc_job_t j;
    int found = 0;

    if (!gc_id_valid(params[0])) {
        return gcmon_api_send_problem(r, HTTP_BAD_REQUEST, "validation_failed", "Invalid request",
                                      "the trace id must be 1 to 64 letters, digits, '-' or '_'");
    }
    if (!(st = gcmon_api_store(r, 1))) {
        return OK;
    }
    if (gc_store_jobs_get(st, r->pool, params[0], &j, &found, &err) != APR_SUCCESS) {
        return gcmon_api_database_error(r, "trace", err);
    }
    if (!found || strcmp(j.kind, GC_TRACE_KIND)) {
        return gcmon_api_send_problem(r, HTTP_NOT_FOUND, "trace_not_found", "Unknown trace",
                                      "no trace has this id");
    }
    return gcmon_api_send_json(r, HTTP_OK, trace_json(r, &j, 1));
}

static json_t *summary_row(request_rec *r, const void *row)
{
    return trace_json(r, row, 0);
}

int gcmon_api_traces_get(request_rec *r, const char **params, json_t *body)
{
    gc_query_t q;
    gc_page_t pg;
    struct gc_store *st;
    const char *err = NULL;

    if (gcmon_api_parse_query(r, GC_Q_TRACES, GC_CURSOR_TRACES, &q) != OK
        || !(st = gcmon_api_store(r, 1))) {
        return OK;
    }
    q.target = q.flow_id;
    if (gc_store_jobs_list(st, r->pool, GC_TRACE_KIND, &q, &pg, &err) != APR_SUCCESS) {
        return gcmon_api_database_error(r, "traces", err);
    }
    return gcmon_api_send_page(r, &q, &pg, GC_CURSOR_TRACES, summary_row);
}
