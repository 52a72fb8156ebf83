/* mod_gcmon_api: the routing strategies' admin API (SPEC §3.6, §5.6):
 * create (structure, then the live platform within the request's deadline),
 * list, get, delete, rebalance, WFM sync, latency figures and the audit
 * trail. The protocol is the core's (gc_strategy.c, gc_strategy_admin.c,
 * gc_strategy_calls.c, gc_store_strategy.c); here are the request's
 * parsing, its actor, its audit rows and the answers. Every refused admin
 * write is audited with its status, like the accepted ones. */
#include <string.h>

#include <apr_strings.h>
#include <http_protocol.h>

#include "gc_audit.h"
#include "gc_id.h"
#include "gc_store_strategy.h"
#include "gc_strategy.h"
#include "gc_strategy_admin.h"
#include "gc_strategy_calls.h"
#include "gc_strategy_job.h"
#include "gc_time.h"
#include "gc_webhook.h"
#include "mod_gcmon_api_private.h"

/* gcmon's own audit rows shown at most (newest first). */
#define AUDIT_ROWS GC_QUERY_MAX_LIMIT
/* The Genesys audit query starts this long before the strategy's creation. */
#define AUDIT_LOOKBACK apr_time_from_sec(3600)

/* ---------------------------------------------------------------- the document */

static json_t *time_or_null(request_rec *r, apr_time_t t)
{
    return t ? json_string(gc_time_format(r->pool, t)) : json_null();
}

static json_t *text_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* A member of the stored body (new reference), or null. */
static json_t *member(const json_t *body, const char *key)
{
    json_t *v = json_object_get(body, key);

    return v ? json_incref(v) : json_null();
}

/* The last activation (gc_strategy_job_progress_json of its job), or null:
 * never activated, or its job could not be read (logged). */
static json_t *activation_json(request_rec *r, const gc_strategy_rec_t *rec, json_t *body)
{
    struct gc_store *st;
    gc_result_t *res;
    gc_strategy_t *s = NULL;
    const char *err = NULL, *why = NULL;
    gc_job_t job;
    int found = 0;

    if (!rec->job_id) {
        return json_null();
    }
    if (!(st = gcmon_api_store(r, 0))) {
        why = "no database connection";
    }
    else if (gc_store_jobs_get(st, r->pool, rec->job_id, &job, &found, &err) != APR_SUCCESS) {
        why = err ? err : "database error";
    }
    else if (!found) {
        why = "no such job: deleted after GcmonAuditRetention";
    }
    if (why) {
        ap_log_rerror(APLOG_MARK, st && !err ? APLOG_DEBUG : APLOG_WARNING, 0, r,
                      GCMON_LOGNO(1441) "strategy %s: its activation job %s could not be read "
                                        "(%s): the document shows activation null",
                      rec->id, rec->job_id, why);
        return json_null();
    }
    res = gc_result_make(r->pool);
    if (!body || gc_strategy_validate(r->pool, res, body, &s) != 0) {
        s = NULL;
    }
    return gc_strategy_job_progress_json(&job, s);
}

json_t *gcmon_api_strategy_json(request_rec *r, const gc_strategy_rec_t *rec, int full)
{
    json_t *body = rec->body ? json_loads(rec->body, 0, NULL) : NULL, *out = json_object();
    json_t *validation = NULL;

    json_object_set_new(out, "id", json_string(rec->id));
    json_object_set_new(out, "name", text_or_null(rec->name));
    if (full) {
        json_object_set_new(out, "description", member(body, "description"));
    }
    json_object_set_new(out, "status", text_or_null(rec->status));
    if (full) {
        json_object_set_new(out, "selection_criteria", member(body, "selection_criteria"));
    }
    json_object_set_new(out, "targets", member(body, "targets"));
    if (full) {
        json_object_set_new(out, "fallback", member(body, "fallback"));
        validation = rec->validation ? json_loads(rec->validation, 0, NULL) : NULL;
        json_object_set_new(out, "validation", validation ? validation : json_null());
    }
    json_object_set_new(out, "error_message", text_or_null(rec->error_message));
    json_object_set_new(out, "job_id", text_or_null(rec->job_id));
    if (full) {
        json_object_set_new(out, "activation", activation_json(r, rec, body));
    }
    json_object_set_new(out, "created_by", text_or_null(rec->actor));
    json_object_set_new(out, "created_at", time_or_null(r, rec->created_at));
    json_object_set_new(out, "updated_at", time_or_null(r, rec->updated_at));
    json_object_set_new(out, "activated_at", time_or_null(r, rec->activated_at));
    json_object_set_new(out, "rebalanced_at", time_or_null(r, rec->rebalanced_at));
    if (full) {
        json_object_set_new(out, "observed_at", time_or_null(r, rec->observed_at));
    }
    json_object_set_new(out, "revision", json_integer((json_int_t)rec->revision));
    json_decref(body);
    return out;
}

/* ---------------------------------------------------------------- helpers */

/* The ops over the upstream client under this request's deadline. */
static gc_strategy_ops_t request_ops(request_rec *r)
{
    return gc_strategy_calls_ops_until(r->pool, gcmon_api_runtime()->upstream,
                                       gcmon_api_deadline(r));
}

/* 400 for a malformed strategy id in the path. */
static int bad_id(request_rec *r, gc_result_t *res)
{
    gc_result_field(res, "id", "id must be 1 to 64 letters, digits, '-' or '_'");
    gc_result_problem(res, HTTP_BAD_REQUEST, "validation_failed", "Invalid request",
                      "the strategy id must be 1 to 64 letters, digits, '-' or '_'");
    gc_result_error_type(res, "invalid_value");
    return 0;
}

static void not_found(gc_result_t *res, const char *id)
{
    gc_result_problem(res, HTTP_NOT_FOUND, "strategy_not_found", "Unknown strategy",
                      apr_psprintf(res->pool, "no routing strategy has the id %s", id));
}

/* The strategy `id` of the path into *rec: 1, or 0 with the problem in res
 * (400 bad id, 404, 500/503 database). */
static int load(request_rec *r, const char *id, gc_result_t *res, gc_strategy_rec_t *rec)
{
    struct gc_store *st;
    const char *err = NULL;
    int found = 0;

    if (!gc_id_valid(id)) {
        return bad_id(r, res);
    }
    if (!(st = gcmon_api_store(r, 0))) {
        gc_result_problem(res, HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
                          "The database is unavailable",
                          "no database connection could be opened, or its schema could not be "
                          "checked");
        return 0;
    }
    if (gc_store_strategy_get(st, r->pool, id, rec, &found, &err) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      GCMON_LOGNO(1420) "strategy %s could not be read: %s", id, err);
        gc_result_problem(res, HTTP_INTERNAL_SERVER_ERROR, "database_error", "Database error",
                          "the strategy could not be read");
        return 0;
    }
    if (!found) {
        not_found(res, id);
        return 0;
    }
    return 1;
}

/* The stored strategy parsed: 1, or 0 with a 500 in res. */
static int parsed(request_rec *r, const gc_strategy_rec_t *rec, gc_result_t *res, gc_strategy_t **s)
{
    if ((*s = gc_strategy_admin_parse(r->pool, rec))) {
        return 1;
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  GCMON_LOGNO(1421) "strategy %s: its stored body is not a strategy", rec->id);
    gc_result_problem(
        res, HTTP_INTERNAL_SERVER_ERROR, "strategy_unreadable", "The stored strategy is unreadable",
        apr_psprintf(r->pool, "the stored body of strategy %s is not a strategy", rec->id));
    return 0;
}

/* An action's body that takes no member (rebalance, sync): empty or {}. */
static int empty_body(const json_t *body, gc_result_t *res)
{
    const char *key;
    json_t *v;

    if (!body || json_object_size(body) == 0) {
        return 1;
    }
    json_object_foreach((json_t *)body, key, v)
    {
        gc_result_field(res, key,
                        apr_pstrcat(res->pool, key, " is not a member of this request", NULL));
    }
    gc_result_problem(res, HTTP_UNPROCESSABLE_ENTITY, "validation_failed", "Invalid request",
                      "this action takes an empty body or {}");
    gc_result_error_type(res, "unknown_field");
    return 0;
}

/* Audit a refusal (or any answer not audited by the store) and send it. */
static int refuse(request_rec *r, const char *action, const char *target, const json_t *request,
                  gc_result_t *res, apr_time_t started)
{
    json_t *result = gc_result_audit_json(res);

    gcmon_api_audit(r, action, target && gc_id_valid(target) ? target : NULL, request, result,
                    res->status, started, NULL, NULL);
    json_decref(result);
    return gcmon_api_send_result(r, res);
}

/* The one value of query parameter `name`: 1 with *value (NULL when
 * absent), or 0 with a 400 in res (twice, empty, not validly encoded). */
static int query_param(request_rec *r, const char *name, const char **value, gc_result_t *res)
{
    const char *s = r->args ? r->args : "", *msg = NULL;
    size_t nlen = strlen(name);

    *value = NULL;
    while (*s && !msg) {
        const char *amp = strchr(s, '&'), *end = amp ? amp : s + strlen(s);
        const char *eq = memchr(s, '=', (size_t)(end - s));
        char *key = NULL, *val = NULL;

        if (gc_query_unescape(r->pool, s, (apr_size_t)((eq ? eq : end) - s), &key) == 0
            && strlen(key) == nlen && !strcmp(key, name)) {
            const char *vs = eq ? eq + 1 : end;
            if (*value) {
                msg = "is given more than once";
            }
            else if (gc_query_unescape(r->pool, vs, (apr_size_t)(end - vs), &val) != 0) {
                msg = "is not validly percent-encoded";
            }
            else if (!*val) {
                msg = "is empty";
            }
            *value = val;
        }
        s = amp ? amp + 1 : end;
    }
    if (!msg) {
        return 1;
    }
    gc_result_field(res, name, apr_pstrcat(r->pool, name, " ", msg, NULL));
    gc_result_problem(res, HTTP_BAD_REQUEST, "validation_failed", "Invalid query parameter",
                      apr_pstrcat(r->pool, "query parameter ", name, " ", msg, NULL));
    gc_result_error_type(res, "invalid_value");
    return 0;
}

static void bad_param(gc_result_t *res, const char *name, const char *why)
{
    gc_result_field(res, name, apr_pstrcat(res->pool, name, " ", why, NULL));
    gc_result_problem(res, HTTP_BAD_REQUEST, "validation_failed", "Invalid query parameter",
                      apr_pstrcat(res->pool, "query parameter ", name, " ", why, NULL));
    gc_result_error_type(res, "invalid_value");
}

/* ---------------------------------------------------------------- POST (create) */

typedef struct {
    gc_strategy_rec_t *rec;
} create_ctx_t;

static apr_status_t store_strategy(struct gc_store *st, apr_pool_t *p, gc_audit_rec_t *a,
                                   const char *outbox_target, const char *outbox_body, void *baton,
                                   const char **err)
{
    create_ctx_t *c = baton;

    return gc_store_strategy_add(st, p, c->rec, a, outbox_target, outbox_body, err);
}

/* The WFM webhook body of s in status, or NULL when GcmonWfmWebhook is unset. */
static const char *wfm_body(request_rec *r, const char *id, const gc_strategy_t *s,
                            const char *status, apr_time_t at)
{
    json_t *hook;
    const char *text;

    if (!gcmon_api_webhook_configured(GC_TARGET_WFM)) {
        return NULL;
    }
    hook = gc_strategy_webhook_body(r->pool, id, s, status, at);
    text = hook ? gc_json_text(r->pool, hook) : NULL;
    json_decref(hook);
    return text;
}

int gcmon_api_strategies_post(request_rec *r, const char **params, json_t *body)
{
    gc_result_t *res = gc_result_make(r->pool);
    apr_time_t started = apr_time_now();
    json_t *audit_req = body ? json_incref(body) : json_object(), *report = NULL, *canon, *doc,
           *result;
    gc_strategy_ops_t ops;
    gc_strategy_rec_t rec;
    gc_strategy_t *s = NULL;
    create_ctx_t c;
    const char *hook;
    int rc;

    if (gc_strategy_validate(r->pool, res, body, &s) > 0 || !gcmon_api_upstream_ready(res)) {
        rc = refuse(r, GC_AUDIT_STRATEGY_CREATE, NULL, audit_req, res, started);
        json_decref(audit_req);
        return rc;
    }
    if (!gcmon_api_store(r, 1)) {
        json_decref(audit_req);
        return OK;
    }
    ops = request_ops(r);
    if (gc_strategy_admin_check(r->pool, &ops, s, res, &report)) {
        json_decref(report);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      GCMON_LOGNO(1422) "strategy \"%s\" by %s refused: %d %s", s->name,
                      gcmon_api_actor(r), res->status, res->slug);
        rc = refuse(r, GC_AUDIT_STRATEGY_CREATE, NULL, audit_req, res, started);
        json_decref(audit_req);
        return rc;
    }
    canon = gc_strategy_json(s);
    memset(&rec, 0, sizeof(rec));
    rec.id = gc_id_random(r->pool, "strat");
    rec.name = s->name;
    rec.status = GC_STRATEGY_DRAFT;
    rec.body = canon ? gc_json_text(r->pool, canon) : NULL;
    rec.validation = report ? gc_json_text(r->pool, report) : NULL;
    rec.actor = gcmon_api_actor(r);
    rec.created_at = started;
    rec.updated_at = started;
    rec.revision = 1;
    json_decref(canon);
    json_decref(report);
    hook = wfm_body(r, rec.id, s, GC_STRATEGY_DRAFT, started);
    c.rec = &rec;
    result = json_pack("{s:s, s:s}", "id", rec.id, "status", GC_STRATEGY_DRAFT);
    if (!rec.body
        || gcmon_api_audit_with(r, GC_AUDIT_STRATEGY_CREATE, rec.id, audit_req, result,
                                HTTP_CREATED, started, hook ? GC_TARGET_WFM : NULL, hook,
                                store_strategy, &c)
               != APR_SUCCESS) {
        json_decref(audit_req);
        json_decref(result);
        return gcmon_api_send_problem(r, HTTP_INTERNAL_SERVER_ERROR, "database_error",
                                      "Database error", "the strategy could not be stored");
    }
    json_decref(audit_req);
    json_decref(result);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  GCMON_LOGNO(1423) "strategy %s \"%s\" (%d targets) created by %s", rec.id,
                  rec.name, s->n_targets, rec.actor);
    doc = gcmon_api_strategy_json(r, &rec, 1);
    apr_table_setn(r->headers_out, "Location",
                   apr_pstrcat(r->pool, gcmon_api_mount(r), "/v1/admin/strategies/", rec.id, NULL));
    return gcmon_api_send_json(r, HTTP_CREATED, doc);
}

/* ---------------------------------------------------------------- GET */

static json_t *summary_row(request_rec *r, const void *row)
{
    return gcmon_api_strategy_json(r, row, 0);
}

int gcmon_api_strategies_get(request_rec *r, const char **params, json_t *body)
{
    gc_query_t q;
    gc_page_t pg;
    struct gc_store *st;
    const char *err = NULL;

    if (gcmon_api_parse_query(r, GC_Q_STRATEGIES, GC_CURSOR_STRATEGIES, &q) != OK
        || !(st = gcmon_api_store(r, 1))) {
        return OK;
    }
    if (gc_store_strategy_list(st, r->pool, &q, &pg, &err) != APR_SUCCESS) {
        return gcmon_api_database_error(r, "strategies", err);
    }
    return gcmon_api_send_page(r, &q, &pg, GC_CURSOR_STRATEGIES, summary_row);
}

int gcmon_api_strategy_get(request_rec *r, const char **params, json_t *body)
{
    gc_result_t *res = gc_result_make(r->pool);
    gc_strategy_rec_t rec;

    if (!load(r, params[0], res, &rec)) {
        return gcmon_api_send_result(r, res);
    }
    return gcmon_api_send_json(r, HTTP_OK, gcmon_api_strategy_json(r, &rec, 1));
}

/* ---------------------------------------------------------------- DELETE */

typedef struct {
    const char *id;
    gc_strategy_change_e outcome;
    const char *status;
} delete_ctx_t;

static apr_status_t delete_strategy(struct gc_store *st, apr_pool_t *p, gc_audit_rec_t *a,
                                    const char *outbox_target, const char *outbox_body, void *baton,
                                    const char **err)
{
    delete_ctx_t *c = baton;

    return gc_store_strategy_delete(st, p, c->id, a, &c->outcome, &c->status, err);
}

int gcmon_api_strategy_delete(request_rec *r, const char **params, json_t *body)
{
    gc_result_t *res = gc_result_make(r->pool);
    apr_time_t started = apr_time_now();
    const char *id = params[0];
    delete_ctx_t c;
    json_t *result;
    apr_status_t rv;

    if (!gc_id_valid(id)) {
        bad_id(r, res);
        return refuse(r, GC_AUDIT_STRATEGY_DELETE, NULL, NULL, res, started);
    }
    if (!gcmon_api_store(r, 1)) {
        return OK;
    }
    memset(&c, 0, sizeof(c));
    c.id = id;
    c.outcome = GC_STRATEGY_MISSING;
    result = json_pack("{s:b}", "deleted", 1);
    rv = gcmon_api_audit_with(r, GC_AUDIT_STRATEGY_DELETE, id, NULL, result, HTTP_NO_CONTENT,
                              started, NULL, NULL, delete_strategy, &c);
    json_decref(result);
    if (rv != APR_SUCCESS) {
        return gcmon_api_send_problem(r, HTTP_INTERNAL_SERVER_ERROR, "database_error",
                                      "Database error", "the strategy could not be deleted");
    }
    if (c.outcome == GC_STRATEGY_MISSING) {
        not_found(res, id);
        return refuse(r, GC_AUDIT_STRATEGY_DELETE, id, NULL, res, started);
    }
    if (c.outcome == GC_STRATEGY_CONFLICT) {
        gc_result_problem(
            res, HTTP_CONFLICT, "strategy_not_deletable", "The strategy cannot be deleted",
            apr_psprintf(r->pool, "strategy %s is %s: only a draft or failed strategy is deleted",
                         id, c.status ? c.status : "in use"));
        gc_result_extra(res, "strategy_status", text_or_null(c.status));
        return refuse(r, GC_AUDIT_STRATEGY_DELETE, id, NULL, res, started);
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, GCMON_LOGNO(1424) "strategy %s (%s) deleted by %s",
                  id, c.status, gcmon_api_actor(r));
    r->status = HTTP_NO_CONTENT;
    gcmon_api_common_headers(r);
    return OK;
}

/* ---------------------------------------------------------------- rebalance */

int gcmon_api_strategy_rebalance(request_rec *r, const char **params, json_t *body)
{
    gc_result_t *res = gc_result_make(r->pool);
    apr_time_t started = apr_time_now();
    const char *id = params[0];
    gc_strategy_ops_t ops;
    gc_strategy_rec_t rec;

    if (!empty_body(body, res) || !load(r, id, res, &rec) || !gcmon_api_upstream_ready(res)) {
        return refuse(r, GC_AUDIT_STRATEGY_REBALANCE, id, body, res, started);
    }
    ops = request_ops(r);
    gc_strategy_admin_rebalance(r->pool, gcmon_api_store(r, 0), &ops, &rec, gcmon_api_actor(r),
                                gcmon_api_actor_source(r), started,
                                gcmon_api_webhook_configured(GC_TARGET_WFM), res);
    if (gc_result_failed(res)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      GCMON_LOGNO(1425) "rebalance of strategy %s by %s: %d %s", id,
                      gcmon_api_actor(r), res->status, res->slug);
        return refuse(r, GC_AUDIT_STRATEGY_REBALANCE, id, body, res, started);
    }
    /* Audited with the new weights, in their transaction. */
    return gcmon_api_send_result(r, res);
}

/* ---------------------------------------------------------------- sync */

int gcmon_api_strategy_sync(request_rec *r, const char **params, json_t *body)
{
    gc_result_t *res = gc_result_make(r->pool);
    apr_time_t started = apr_time_now();
    const char *id = params[0], *hook;
    gc_strategy_rec_t rec;
    gc_strategy_t *s;
    json_t *doc;

    if (!empty_body(body, res) || !load(r, id, res, &rec)) {
        return refuse(r, GC_AUDIT_STRATEGY_SYNC, id, body, res, started);
    }
    if (!gcmon_api_webhook_configured(GC_TARGET_WFM)) {
        gc_result_problem(res, HTTP_CONFLICT, "wfm_not_configured", "No WFM webhook is configured",
                          "set GcmonWfmWebhook to sync strategies to workforce management");
        return refuse(r, GC_AUDIT_STRATEGY_SYNC, id, body, res, started);
    }
    if (!parsed(r, &rec, res, &s)) {
        return refuse(r, GC_AUDIT_STRATEGY_SYNC, id, body, res, started);
    }
    hook = wfm_body(r, rec.id, s, rec.status, started);
    doc = json_pack("{s:s, s:b}", "strategy_id", rec.id, "queued", 1);
    if (!hook
        || gcmon_api_audit(r, GC_AUDIT_STRATEGY_SYNC, id, body, doc, HTTP_ACCEPTED, started,
                           GC_TARGET_WFM, hook)
               != APR_SUCCESS) {
        json_decref(doc);
        return gcmon_api_send_problem(r, HTTP_INTERNAL_SERVER_ERROR, "database_error",
                                      "Database error", "the WFM delivery could not be queued");
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, GCMON_LOGNO(1426) "strategy %s synced to WFM by %s",
                  id, gcmon_api_actor(r));
    return gcmon_api_send_json(r, HTTP_ACCEPTED, doc);
}

/* ---------------------------------------------------------------- latency */

int gcmon_api_strategy_latency(request_rec *r, const char **params, json_t *body)
{
    gc_result_t *res = gc_result_make(r->pool);
    const char *id = params[0], *interval = NULL, *why = NULL;
    apr_time_t start = 0, end = 0;
    gc_strategy_ops_t ops;
    gc_strategy_rec_t rec;
    gc_strategy_t *s;

    if (!gc_id_valid(id)) {
        bad_id(r, res);
        return gcmon_api_send_result(r, res);
    }
    if (!query_param(r, "interval", &interval, res)) {
        return gcmon_api_send_result(r, res);
    }
    if (gc_strategy_admin_interval(interval, &start, &end, &why) != 0) {
        bad_param(res, "interval", why);
        return gcmon_api_send_result(r, res);
    }
    if (!load(r, id, res, &rec) || !gcmon_api_upstream_ready(res) || !parsed(r, &rec, res, &s)) {
        return gcmon_api_send_result(r, res);
    }
    ops = request_ops(r);
    gc_strategy_admin_latency(r->pool, &ops, rec.id, s, start, end, res);
    if (gc_result_failed(res)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      GCMON_LOGNO(1427) "latency of strategy %s: %d %s", id, res->status,
                      res->slug);
    }
    return gcmon_api_send_result(r, res);
}

/* ---------------------------------------------------------------- audit */

int gcmon_api_strategy_audit(request_rec *r, const char **params, json_t *body)
{
    gc_result_t *res = gc_result_make(r->pool);
    const char *id = params[0], *upstream = NULL, *err = NULL;
    json_t *mine, *theirs = NULL, *entries;
    gc_strategy_rec_t rec;
    gc_strategy_t *s = NULL;
    gc_query_t q;
    gc_page_t pg;
    int want = 0, truncated = 0, i;

    if (!gc_id_valid(id)) {
        bad_id(r, res);
        return gcmon_api_send_result(r, res);
    }
    if (!query_param(r, "upstream", &upstream, res)) {
        return gcmon_api_send_result(r, res);
    }
    if (upstream && strcmp(upstream, "true") && strcmp(upstream, "false")) {
        bad_param(res, "upstream", "must be true or false");
        return gcmon_api_send_result(r, res);
    }
    want = upstream && !strcmp(upstream, "true");
    if (!load(r, id, res, &rec)
        || (want && (!gcmon_api_upstream_ready(res) || !parsed(r, &rec, res, &s)))) {
        return gcmon_api_send_result(r, res);
    }
    memset(&q, 0, sizeof(q));
    q.limit = AUDIT_ROWS;
    q.target = rec.id;
    if (gc_store_audit_list(gcmon_api_store(r, 0), r->pool, &q, &pg, &err) != APR_SUCCESS) {
        return gcmon_api_database_error(r, "strategy audit", err);
    }
    mine = json_array();
    for (i = 0; i < pg.rows->nelts; i++) {
        json_array_append_new(mine, gc_strategy_admin_audit_entry(
                                        r->pool, &APR_ARRAY_IDX(pg.rows, i, gc_audit_rec_t)));
    }
    if (want) {
        gc_strategy_ops_t ops = request_ops(r);
        apr_time_t now = apr_time_now();

        if (gc_strategy_admin_upstream_audit(r->pool, &ops, s, rec.created_at - AUDIT_LOOKBACK, now,
                                             gcmon_api_deadline(r), &theirs, &truncated, res)
            != APR_SUCCESS) {
            json_decref(mine);
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          GCMON_LOGNO(1428) "Genesys audits of strategy %s: %d %s", id, res->status,
                          res->slug);
            return gcmon_api_send_result(r, res);
        }
    }
    entries = gc_strategy_admin_audit_merge(mine, theirs);
    json_decref(mine);
    json_decref(theirs);
    return gcmon_api_send_json(r, HTTP_OK,
                               json_pack("{s:s, s:o, s:b, s:b}", "strategy_id", rec.id, "entries",
                                         entries, "upstream", want, "truncated",
                                         pg.has_more || truncated));
}
