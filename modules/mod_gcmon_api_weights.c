/* mod_gcmon_api: the routing-weight distribution (SPEC §3.4, §5.4, §9.7). The
 * protocol is the core's (gc_weights.c); here are its callbacks — the
 * upstream client under the request's deadline — the up-front rate-budget
 * check, the audit row and the WFM webhook delivery. */
#include <math.h>
#include <string.h>

#include <apr_strings.h>
#include <http_protocol.h>

#include "gc_audit.h"
#include "gc_id.h"
#include "gc_parallel.h"
#include "gc_store_idem.h"
#include "gc_webhook.h"
#include "gc_weights.h"
#include "mod_gcmon_api_private.h"

/* Pages of a user's routing skills read at most while looking for one skill. */
#define SKILL_PAGES_MAX 50
/* Member reads and writes of one distribution in flight at once; each still
 * waits for its slot of the shared rate budget (GcmonRateLimit). */
#define MEMBER_CONCURRENCY 8

/* The callbacks' baton: nothing of the request_rec, for the worker threads. */
typedef struct {
    apr_time_t deadline;
} weights_t;

/* ---------------------------------------------------------------- upstream */

/* One upstream call under the request's deadline; the wait for a budget slot
 * may last until then (the budget was checked up front: budget_fits). */
static apr_status_t call(const weights_t *x, apr_pool_t *p, const char *op, const char *method,
                         const char *path, const char *body, gc_response_t **resp, gc_error_t **err)
{
    gc_request_t req;
    apr_interval_time_t left = x->deadline - apr_time_now();

    memset(&req, 0, sizeof(req));
    req.op = op;
    req.method = method;
    req.path = path;
    req.body = body;
    req.deadline = x->deadline;
    req.budget_wait = left > 0 ? left : 1;
    *resp = NULL;
    return gc_upstream_call(gcmon_api_runtime()->upstream, p, &req, resp, err);
}

static apr_status_t protocol_error(apr_pool_t *p, const gc_response_t *resp, const char *message,
                                   gc_error_t **err)
{
    *err = apr_pcalloc(p, sizeof(**err));
    (*err)->kind = GC_ERR_PROTOCOL;
    (*err)->status = resp ? resp->status : 0;
    (*err)->message = message;
    return APR_EGENERAL;
}

static apr_status_t op_members_page(void *baton, apr_pool_t *p, const char *queue_id, int page,
                                    apr_array_header_t **members, int *more, gc_error_t **err)
{
    weights_t *x = baton;
    gc_response_t *resp;
    json_t *entities, *e;
    size_t i;
    apr_status_t rv;

    rv = call(x, p, "queue_members_get", "GET",
              apr_psprintf(p, "/api/v2/routing/queues/%s/members?pageSize=%d&pageNumber=%d",
                           queue_id, GC_WEIGHTS_MEMBERS_PAGE_SIZE, page),
              NULL, &resp, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    entities = resp->json ? json_object_get(resp->json, "entities") : NULL;
    if (!json_is_array(entities)) {
        return protocol_error(p, resp, "the queue members listing has no entities", err);
    }
    *members = apr_array_make(p, (int)json_array_size(entities) + 1, sizeof(gc_weights_member_t));
    json_array_foreach(entities, i, e)
    {
        gc_weights_member_t *m;
        const char *id = json_string_value(json_object_get(e, "id"));
        json_t *rs = json_object_get(e, "routingStatus");

        if (!id) {
            continue;
        }
        m = apr_array_push(*members);
        m->user_id = apr_pstrdup(p, id);
        m->joined = json_is_true(json_object_get(e, "joined"));
        m->routing_status =
            json_is_object(rs) ? json_string_value(json_object_get(rs, "status")) : NULL;
        if (m->routing_status) {
            m->routing_status = apr_pstrdup(p, m->routing_status);
        }
        if (json_is_string(json_object_get(e, "name"))) {
            m->name = apr_pstrdup(p, json_string_value(json_object_get(e, "name")));
        }
    }
    *more = json_is_string(json_object_get(resp->json, "nextUri"))
            && *json_string_value(json_object_get(resp->json, "nextUri"));
    return APR_SUCCESS;
}

static apr_status_t op_observations(void *baton, apr_pool_t *p, const char *queue_id,
                                    double *interacting, double *waiting, gc_error_t **err)
{
    weights_t *x = baton;
    gc_response_t *resp;
    json_t *q, *results, *res, *data, *d;
    size_t i, j;
    apr_status_t rv;
    const char *body;

    q = json_pack("{s:{s:s, s:[{s:s, s:s}]}, s:[s, s, s]}", "filter", "type", "or", "predicates",
                  "dimension", "queueId", "value", queue_id, "metrics", "oOnQueueUsers",
                  "oInteracting", "oWaiting");
    body = gc_json_text(p, q);
    json_decref(q);
    rv = call(x, p, "queue_observations", "POST", "/api/v2/analytics/queues/observations/query",
              body, &resp, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *interacting = 0;
    *waiting = 0;
    results = resp->json ? json_object_get(resp->json, "results") : NULL;
    if (!json_is_array(results)) {
        return protocol_error(p, resp, "the queue observations have no results", err);
    }
    json_array_foreach(results, i, res)
    {
        data = json_object_get(res, "data");
        json_array_foreach(data, j, d)
        {
            const char *metric = json_string_value(json_object_get(d, "metric"));
            json_t *count = json_object_get(json_object_get(d, "stats"), "count");

            if (!metric || !json_is_number(count)) {
                continue;
            }
            if (!strcmp(metric, "oInteracting")) {
                *interacting += json_number_value(count);
            }
            else if (!strcmp(metric, "oWaiting")) {
                *waiting += json_number_value(count);
            }
        }
    }
    return APR_SUCCESS;
}

static apr_status_t get_skill(const weights_t *x, apr_pool_t *p, const char *user_id,
                              const char *skill_id, gc_weights_skill_t *out, int *present,
                              gc_error_t **err)
{
    int page;

    *present = 0;
    memset(out, 0, sizeof(*out));
    for (page = 1; page <= SKILL_PAGES_MAX; page++) {
        gc_response_t *resp;
        json_t *entities, *e;
        size_t i;
        apr_status_t rv;

        rv = call(x, p, "user_skills_get", "GET",
                  apr_psprintf(p, "/api/v2/users/%s/routingskills?pageSize=100&pageNumber=%d",
                               user_id, page),
                  NULL, &resp, err);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        entities = resp->json ? json_object_get(resp->json, "entities") : NULL;
        if (!json_is_array(entities)) {
            return protocol_error(p, resp, "the user's routing skills have no entities", err);
        }
        json_array_foreach(entities, i, e)
        {
            const char *id = json_string_value(json_object_get(e, "id"));
            const char *state = json_string_value(json_object_get(e, "state"));

            if (id && !strcmp(id, skill_id)) {
                *present = 1;
                out->proficiency = json_number_value(json_object_get(e, "proficiency"));
                out->state = state ? apr_pstrdup(p, state) : NULL;
                return APR_SUCCESS;
            }
        }
        if (!json_is_string(json_object_get(resp->json, "nextUri"))) {
            return APR_SUCCESS;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t op_get_queue(void *baton, apr_pool_t *p, const char *queue_id, json_t **queue,
                                 gc_error_t **err)
{
    weights_t *x = baton;
    gc_response_t *resp;
    apr_status_t rv;

    rv = call(x, p, "queue_get", "GET", apr_pstrcat(p, "/api/v2/routing/queues/", queue_id, NULL),
              NULL, &resp, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!json_is_object(resp->json)) {
        return protocol_error(p, resp, "the queue is not a JSON object", err);
    }
    /* resp->json is released with the pool: the engine gets its own copy. */
    *queue = json_deep_copy(resp->json);
    return *queue ? APR_SUCCESS : protocol_error(p, resp, "the queue could not be copied", err);
}

static apr_status_t op_put_queue(void *baton, apr_pool_t *p, const char *queue_id,
                                 const json_t *queue, gc_error_t **err)
{
    weights_t *x = baton;
    gc_response_t *resp;
    const char *body = gc_json_text(p, queue);

    if (!body) {
        return protocol_error(p, NULL, "the queue could not be serialised", err);
    }
    return call(x, p, "queue_put", "PUT", apr_pstrcat(p, "/api/v2/routing/queues/", queue_id, NULL),
                body, &resp, err);
}

/* A batch of member reads or writes, run by gc_parallel_run's workers: each
 * job touches only its own item and the worker's pool. */
typedef struct {
    const weights_t *x;
    const char *skill_id;
    gc_weights_read_t *reads;
    const gc_weights_write_t *writes;
    gc_weights_write_result_t *results;
} batch_t;

static void read_job(void *baton, size_t i, apr_pool_t *p)
{
    batch_t *b = baton;
    gc_weights_read_t *it = &b->reads[i];

    it->err = NULL;
    it->rv = get_skill(b->x, p, it->user_id, b->skill_id, &it->skill, &it->present, &it->err);
}

static void op_get_skills(void *baton, apr_pool_t *p, const char *skill_id,
                          gc_weights_read_t *items, size_t n)
{
    batch_t b = { baton, skill_id, items, NULL, NULL };

    gc_parallel_run(p, n, MEMBER_CONCURRENCY, read_job, &b);
}

static void write_job(void *baton, size_t i, apr_pool_t *p)
{
    batch_t *b = baton;
    const gc_weights_write_t *w = &b->writes[i];
    const char *path =
        apr_pstrcat(p, "/api/v2/users/", w->user_id, "/routingskills/", w->skill_id, NULL);
    gc_response_t *resp;
    const char *body = NULL;

    b->results[i].err = NULL;
    if (!w->remove) {
        json_t *j = json_pack("{s:s, s:f, s:s}", "id", w->skill_id, "proficiency", w->proficiency,
                              "state", w->state ? w->state : "active");
        body = gc_json_text(p, j);
        json_decref(j);
    }
    b->results[i].rv = call(b->x, p, w->remove ? "user_skill_delete" : "user_skill_put",
                            w->remove ? "DELETE" : "PUT", path, body, &resp, &b->results[i].err);
}

static void op_put_skills(void *baton, apr_pool_t *p, const gc_weights_write_t *items, size_t n,
                          gc_weights_write_result_t *results)
{
    batch_t b = { baton, NULL, NULL, items, results };

    gc_parallel_run(p, n, MEMBER_CONCURRENCY, write_job, &b);
}

/* ---------------------------------------------------------------- budget */

/* The seconds the rate budget needs for `requests` upstream requests at its
 * steady pace (GcmonRateLimit a minute), rounded up. */
static long budget_seconds(int requests)
{
    int rate = gcmon_api_conf()->conn.rate_limit;

    if (rate <= 0) {
        rate = GC_DEFAULT_RATE_LIMIT;
    }
    return (long)ceil((double)requests * 60.0 / rate);
}

/* 1 when a distribution of n weights fits the rate budget before the
 * request's deadline; else 0 with the 503 in res. */
static int budget_fits(request_rec *r, gc_result_t *res, int n)
{
    int requests = gc_weights_estimate_requests(n);
    long need = budget_seconds(requests);
    apr_interval_time_t left = gcmon_api_deadline(r) - apr_time_now();

    if (apr_time_from_sec(need) <= left) {
        return 1;
    }
    gc_result_problem(
        res, HTTP_SERVICE_UNAVAILABLE, "upstream_budget_exceeded", "Too many upstream requests",
        apr_psprintf(r->pool,
                     "%d member weights need up to %d Genesys Cloud requests, about %ld s of "
                     "the rate budget (GcmonRateLimit %d a minute), more than the %ld s left "
                     "before the request's deadline (GcmonRequestDeadline); nothing was changed",
                     n, requests, need,
                     gcmon_api_conf()->conn.rate_limit > 0 ? gcmon_api_conf()->conn.rate_limit
                                                           : GC_DEFAULT_RATE_LIMIT,
                     (long)apr_time_sec(left > 0 ? left : 0)));
    res->retry_after = apr_time_from_sec(need);
    return 0;
}

/* ---------------------------------------------------------------- Idempotency-Key */

#define IDEM_SCOPE "weights"

/* The answer of res as gcmon_api_send_result writes it (same bytes). */
static void idem_record(request_rec *r, const gc_result_t *res, const char *hash,
                        gc_store_idem_rec_t *rec)
{
    json_t *doc = gc_result_json(res);
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

    json_decref(doc);
    memset(rec, 0, sizeof(*rec));
    rec->request_hash = hash;
    rec->status = res->status;
    rec->content_type =
        gc_result_failed(res) ? "application/problem+json" : "application/json; charset=utf-8";
    rec->body = text ? apr_pstrdup(r->pool, text) : NULL;
    free(text);
}

/* Keep the answer under the key: final outcomes only (a 500 or 503 may
 * succeed when retried with the same key). */
static void idem_store(request_rec *r, const char *key, const char *hash, const gc_result_t *res)
{
    struct gc_store *st;
    gc_store_idem_rec_t rec;
    const char *err = NULL;

    if (res->status == HTTP_INTERNAL_SERVER_ERROR || res->status == HTTP_SERVICE_UNAVAILABLE) {
        return;
    }
    idem_record(r, res, hash, &rec);
    if (!rec.body || !(st = gcmon_api_store(r, 0))
        || gc_store_idem_put(st, r->pool, IDEM_SCOPE, key, &rec, apr_time_now(), GC_IDEM_TTL, NULL,
                             &err)
               != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      GCMON_LOGNO(1406) "the answer of Idempotency-Key %s was not stored: %s", key,
                      err ? err : "no database connection");
    }
}

/* Before running: 1 to run the request; 0 when res holds a refusal, or *replay
 * the stored answer. */
static int idem_check(request_rec *r, const char *key, const char *hash, gc_result_t *res,
                      gc_store_idem_rec_t *replay, int *found)
{
    struct gc_store *st;
    const char *err = NULL;

    *found = 0;
    if (!gc_store_idem_key_valid(key)) {
        gc_result_field(res, "Idempotency-Key",
                        "must be 1 to 255 printable ASCII characters without blanks");
        gc_result_problem(res, HTTP_BAD_REQUEST, "validation_failed", "Invalid request",
                          "the Idempotency-Key header must be 1 to 255 printable ASCII "
                          "characters without blanks");
        gc_result_error_type(res, "invalid_value");
        return 0;
    }
    if (!hash) {
        gc_result_problem(res, HTTP_INTERNAL_SERVER_ERROR, "internal", "Internal error",
                          "the request could not be hashed");
        return 0;
    }
    if (!(st = gcmon_api_store(r, 0))) {
        gc_result_problem(res, HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
                          "The database is unavailable",
                          "an Idempotency-Key needs the database, and no connection could be "
                          "opened, or its schema could not be checked");
        return 0;
    }
    if (gc_store_idem_get(st, r->pool, IDEM_SCOPE, key, apr_time_now(), replay, found, &err)
        != APR_SUCCESS) {
        gc_result_problem(res, HTTP_INTERNAL_SERVER_ERROR, "database_error", "Database error",
                          "the Idempotency-Key could not be looked up");
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      GCMON_LOGNO(1406) "Idempotency-Key lookup failed: %s", err);
        return 0;
    }
    if (*found && strcmp(replay->request_hash, hash)) {
        *found = 0;
        gc_result_problem(res, HTTP_UNPROCESSABLE_ENTITY, "idempotency_key_reused",
                          "Idempotency-Key reused",
                          "this Idempotency-Key was used for another request (a different "
                          "queue or body) in the last 24 hours");
        gc_result_error_type(res, "idempotency_key_reused");
        return 0;
    }
    return !*found;
}

/* ---------------------------------------------------------------- POST */

/* The WFM webhook's body: the distribution and who made it. */
static const char *wfm_body(request_rec *r, const gc_result_t *res)
{
    json_t *hook = json_pack("{s:s, s:s, s:O}", "event", "weights_distributed", "actor",
                             gcmon_api_actor(r), "distribution", res->doc);
    const char *text = hook ? gc_json_text(r->pool, hook) : NULL;

    json_decref(hook);
    return text;
}

int gcmon_api_weights_post(request_rec *r, const char **params, json_t *body)
{
    static const gc_weights_ops_t ops_template = {
        NULL,         op_members_page, op_observations, op_get_skills,
        op_get_queue, op_put_queue,    op_put_skills,   NULL
    };
    gc_weights_ops_t ops = ops_template;
    gc_result_t *res = gc_result_make(r->pool);
    gc_weights_req_t req;
    gc_weights_out_t out;
    apr_time_t started = apr_time_now();
    const char *queue_id = params[0];
    const char *hook = NULL, *hash = NULL;
    const char *idem_key = apr_table_get(r->headers_in, "Idempotency-Key");
    gc_store_idem_rec_t replay;
    int replayed = 0;
    json_t *audit_req, *result, *weights;
    weights_t x;

    memset(&x, 0, sizeof(x));
    memset(&out, 0, sizeof(out));
    x.deadline = gcmon_api_deadline(r);
    ops.baton = &x;
    memset(&req, 0, sizeof(req));
    req.queue_id = queue_id;
    req.body = body;
    req.default_skill =
        gc_id_valid(queue_id) ? gcmon_api_weight_skill(gcmon_api_conf(), queue_id) : NULL;

    weights = body ? json_object_get(body, "member_weights") : NULL;
    if (idem_key) {
        hash = gc_weights_request_hash(r->pool, queue_id, body);
    }
    if (!gc_id_valid(queue_id)) {
        /* A malformed path id is the request's shape, as for the status
         * resource (400); the body's faults are 422 (SPEC §5.4). */
        gc_result_field(res, "queue_id", "queue_id must be 1 to 64 letters, digits, '-' or '_'");
        gc_result_problem(res, HTTP_BAD_REQUEST, "validation_failed", "Invalid request",
                          "queue_id in the path must be 1 to 64 letters, digits, '-' or '_'");
        gc_result_error_type(res, "invalid_value");
        out.status = "validation_failed";
    }
    else if (gc_weights_validate(res, queue_id, body, req.default_skill) > 0) {
        out.status = "validation_failed";
    }
    else if (idem_key && !idem_check(r, idem_key, hash, res, &replay, &replayed)) {
        out.status = replayed ? "replayed"
                     : res->status == HTTP_BAD_REQUEST || res->status == HTTP_UNPROCESSABLE_ENTITY
                         ? "validation_failed"
                         : "projection_failed";
    }
    else if (!gcmon_api_upstream_ready(res)) {
        out.status = "projection_failed";
    }
    else if (!budget_fits(r, res, (int)json_object_size(weights))) {
        out.status = "projection_failed";
    }
    else {
        gc_weights_distribute(r->pool, &ops, &req, res, &out);
    }
    if (res->status == HTTP_OK && res->doc && gcmon_api_webhook_configured(GC_TARGET_WFM)) {
        hook = wfm_body(r, res);
    }
    audit_req = gc_weights_audit_request(body);
    if (replayed) {
        /* The stored answer, again: nothing was sent upstream. */
        result = json_pack("{s:b, s:i}", "replayed", 1, "status", replay.status);
        gcmon_api_audit(r, GC_AUDIT_WEIGHTS_DISTRIBUTE, queue_id, audit_req, result, replay.status,
                        started, NULL, NULL);
        json_decref(audit_req);
        json_decref(result);
        return gcmon_api_send_text(r, replay.status, replay.content_type, replay.body,
                                   strlen(replay.body));
    }
    /* Refusals of the request itself (validation, the key) are not kept. */
    if (idem_key && hash && out.status && strcmp(out.status, "validation_failed") != 0) {
        idem_store(r, idem_key, hash, res);
    }
    result = gc_result_audit_json(res);
    if (out.status && json_is_object(result) && !json_object_get(result, "status")) {
        json_object_set_new(result, "status", json_string(out.status));
    }
    gcmon_api_audit(r, GC_AUDIT_WEIGHTS_DISTRIBUTE, queue_id, audit_req, result, res->status,
                    started, hook ? GC_TARGET_WFM : NULL, hook);
    json_decref(audit_req);
    json_decref(result);
    if (gc_result_failed(res)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      GCMON_LOGNO(1405) "weights of queue %s by %s: %s (%d upstream requests, "
                                        "%d writes)",
                      queue_id, gcmon_api_actor(r), out.status ? out.status : res->slug,
                      out.upstream_requests, out.writes);
    }
    return gcmon_api_send_result(r, res);
}
