/* mod_gcmon_api: an agent's status (SPEC §3.3, §5.3). The protocol of a change
 * is the core's (gc_status_change.c); here are its callbacks — the upstream
 * client, the presence cache, the lock and audit rows in the request's
 * database — and the metrics. */
#include <string.h>
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <http_protocol.h>

#include "gc_audit.h"
#include "gc_id.h"
#include "gc_metrics.h"
#include "gc_monitor.h"
#include "gc_outbox.h"
#include "gc_state.h"
#include "gc_status_change.h"
#include "gc_store.h"
#include "gc_time.h"
#include "gc_webhook.h"
#include "mod_gcmon_api_private.h"

static apr_uint32_t lock_seq;

/* ---------------------------------------------------------------- upstream */

/* GET (patch NULL) or PATCH the user's presence into *out. */
static apr_status_t presence_call(request_rec *r, const char *user_id, const char *patch,
                                  gc_user_presence_t *out, gc_error_t **err)
{
    gc_request_t req;
    gc_response_t *resp = NULL;
    apr_status_t rv;

    memset(&req, 0, sizeof(req));
    req.op = patch ? "presence_patch" : "presence_get";
    req.method = patch ? "PATCH" : "GET";
    req.path = apr_pstrcat(r->pool, "/api/v2/users/", user_id, "/presences/purecloud", NULL);
    req.body = patch;
    req.deadline = gcmon_api_deadline(r);
    if ((rv = gc_upstream_call(gcmon_api_runtime()->upstream, r->pool, &req, &resp, err))
        != APR_SUCCESS) {
        return rv;
    }
    if (!resp->json || gc_user_presence_parse(r->pool, resp->json, out) != 0) {
        *err = apr_pcalloc(r->pool, sizeof(**err));
        (*err)->kind = GC_ERR_PROTOCOL;
        (*err)->status = resp->status;
        (*err)->message = "the user presence has no presenceDefinition.id or modifiedDate";
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------- GET */

int gcmon_api_status_get(request_rec *r, const char **params, json_t *body)
{
    gc_result_t *res = gc_result_make(r->pool);
    const char *user_id = params[0];
    gc_user_presence_t cur;
    gc_error_t *err = NULL;

    if (!gc_id_valid(user_id)) {
        gc_result_field(res, "user_id", "user_id must be 1 to 64 letters, digits, '-' or '_'");
        gc_result_problem(res, HTTP_BAD_REQUEST, "validation_failed", "Invalid request",
                          "user_id in the path must be 1 to 64 letters, digits, '-' or '_'");
        gc_result_error_type(res, "invalid_value");
    }
    else if (!gcmon_api_upstream_ready(res)) {
        /* the 503 is in res */
    }
    else if (presence_call(r, user_id, NULL, &cur, &err) != APR_SUCCESS) {
        if (err->kind == GC_ERR_NOT_FOUND) {
            gc_result_problem(res, HTTP_NOT_FOUND, "user_not_found", "Unknown user",
                              apr_psprintf(r->pool, "Genesys Cloud has no user %s", user_id));
        }
        else {
            gc_result_upstream(res, err);
        }
    }
    else {
        gc_result_ok(res, HTTP_OK,
                     json_pack("{s:s, s:s?, s:s, s:s?, s:s, s:s}", "user_id", user_id, "status",
                               cur.system, "presence_definition_id", cur.definition_id, "message",
                               cur.message, "modified_date", gc_time_format(r->pool, cur.modified),
                               "etag", cur.etag));
        res->etag = cur.etag;
    }
    return gcmon_api_send_result(r, res);
}

/* ---------------------------------------------------------------- PUT: callbacks */

typedef struct {
    request_rec *r;
    apr_time_t started;
    const char *user_id;
    struct gc_store *store;
} put_t;

static int op_ready(void *baton, gc_result_t *res)
{
    put_t *x = baton;

    if (!gcmon_api_upstream_ready(res)) {
        return 0;
    }
    if (!(x->store = gcmon_api_store(x->r, 0))) {
        gc_result_problem(res, HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
                          "The database is unavailable",
                          "no database connection could be "
                          "opened, or its schema could not be checked");
        return 0;
    }
    return 1;
}

static apr_status_t op_resolve(void *baton, apr_pool_t *p, const char *name, gc_presence_def_t *out,
                               int *found, gc_error_t **err)
{
    put_t *x = baton;
    gcmon_api_runtime_t *run = gcmon_api_runtime();
    return gc_presence_resolve(run->presences, run->upstream, p, name, gcmon_api_deadline(x->r),
                               out, found, err);
}

static apr_status_t op_lock(void *baton, apr_pool_t *p, const char *name, const char *holder,
                            apr_time_t now, apr_interval_time_t ttl, int *held)
{
    put_t *x = baton;
    return gc_store_lease(x->store, name, holder, now, ttl, held, NULL, p);
}

static void op_unlock(void *baton, apr_pool_t *p, const char *name, const char *holder)
{
    put_t *x = baton;
    gc_store_lease_delete(x->store, p, name, holder);
}

static apr_status_t op_presence(void *baton, apr_pool_t *p, const char *user_id, const char *patch,
                                gc_user_presence_t *out, gc_error_t **err)
{
    put_t *x = baton;
    return presence_call(x->r, user_id, patch, out, err);
}

static void op_record(void *baton, apr_pool_t *p, const json_t *request, const gc_result_t *res,
                      const char *outbox_target, const char *outbox_body)
{
    put_t *x = baton;
    json_t *result = gc_result_audit_json(res);

    gcmon_api_audit(x->r, GC_AUDIT_STATUS_CHANGE, x->user_id, request, result, res->status,
                    x->started, outbox_target, outbox_body);
    json_decref(result);
}

/* How long a change waits for a busy agent: twice the upstream timeout,
 * within 5..30 s. */
static apr_interval_time_t lock_wait(void)
{
    apr_interval_time_t wait = 2 * gcmon_api_conf()->conn.request_timeout;

    if (wait < apr_time_from_sec(5)) {
        wait = apr_time_from_sec(5);
    }
    return wait > apr_time_from_sec(30) ? apr_time_from_sec(30) : wait;
}

/* This change's lock holder id: process, sequence and randomness. */
static const char *lock_holder(request_rec *r)
{
    unsigned char rnd[6];

    if (apr_generate_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
        memset(rnd, 0, sizeof(rnd));
    }
    return apr_psprintf(r->pool, "api:%ld:%u:%02x%02x%02x%02x%02x%02x", (long)getpid(),
                        apr_atomic_inc32(&lock_seq), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
                        rnd[5]);
}

static void observe(apr_time_t started, const gc_status_change_out_t *out)
{
    gcmon_api_runtime_t *run = gcmon_api_runtime();

    if (run && run->shared.metrics) {
        gc_metrics_observe(run->shared.metrics, GC_MET_STATE_UPDATE_LATENCY, out->metric_status,
                           out->metric_result,
                           (double)(apr_time_now() - started) / APR_USEC_PER_SEC);
    }
}

/* ---------------------------------------------------------------- PUT */

int gcmon_api_status_put(request_rec *r, const char **params, json_t *body)
{
    static const gc_status_change_ops_t ops_template = { NULL,      op_ready,  op_resolve,
                                                         op_lock,   op_unlock, op_presence,
                                                         op_record, NULL,      NULL };
    gc_status_change_ops_t ops = ops_template;
    gc_status_change_req_t req;
    gc_status_change_out_t out;
    gc_result_t *res = gc_result_make(r->pool);
    put_t x;

    memset(&x, 0, sizeof(x));
    x.r = r;
    x.started = apr_time_now();
    x.user_id = params[0];
    ops.baton = &x;
    memset(&req, 0, sizeof(req));
    req.user_id = params[0];
    req.body = body;
    req.if_match = apr_table_get(r->headers_in, "If-Match");
    req.actor = gcmon_api_actor(r);
    req.transitions = gcmon_api_conf()->transitions;
    req.webhook = gcmon_api_webhook_configured(GC_TARGET_STATUS);
    req.holder = lock_holder(r);
    req.lock_wait = lock_wait();
    req.deadline = gcmon_api_deadline(r);
    gc_status_change(r->pool, &ops, &req, res, &out);
    observe(x.started, &out);
    return gcmon_api_send_result(r, res);
}
