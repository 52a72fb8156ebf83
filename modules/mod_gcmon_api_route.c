/* mod_gcmon_api: GET /v1/strategies/{id}/route (SPEC §3.6, §5.6, §8, §9.9),
 * the route decision for a new interaction, meant for Architect data actions:
 * answered from the route tables mod_gcmon_stream keeps in shared memory (the
 * optional function gcmon_stream_route), with no database read and no
 * upstream call, so it runs at close to the speed of a static file. */
#include <apr_optional.h>
#include <apr_strings.h>
#include <http_protocol.h>

#include "gc_id.h"
#include "gc_time.h"
#include "mod_gcmon_api_private.h"

/* The answer, written by hand (every field is known: ids are gc_id_valid,
 * so nothing needs escaping). */
static int send_route(request_rec *r, const char *strategy_id, const gc_route_decision_t *d)
{
    const gc_strategy_route_t *rt = &d->route;
    const char *observed = "null", *age = "null", *text;

    if (d->observed_at > 0) {
        observed = apr_pstrcat(r->pool, "\"", gc_time_format(r->pool, d->observed_at), "\"", NULL);
        age = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, (apr_int64_t)(rt->age / 1000));
    }
    text = apr_psprintf(r->pool,
                        "{\"queue_id\":\"%s\",\"strategy_id\":\"%s\",\"reason\":\"%s\","
                        "\"priority\":%d,\"stale\":%s,\"observed_at\":%s,\"age_ms\":%s,"
                        "\"generation\":%" APR_UINT64_T_FMT "}",
                        rt->queue_id, strategy_id, rt->reason, rt->priority,
                        rt->stale ? "true" : "false", observed, age, (apr_uint64_t)rt->generation);
    return gcmon_api_send_text(r, HTTP_OK, "application/json; charset=utf-8", text, strlen(text));
}

static int unavailable(request_rec *r, const char *detail, int retry_after)
{
    apr_table_setn(r->headers_out, "Retry-After", apr_itoa(r->pool, retry_after));
    return gcmon_api_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "route_unavailable",
                                  "Route decisions are not available", detail);
}

int gcmon_api_strategy_route(request_rec *r, const char **params, json_t *body)
{
    APR_OPTIONAL_FN_TYPE(gcmon_stream_route) *route = APR_RETRIEVE_OPTIONAL_FN(gcmon_stream_route);
    const char *id = params[0];
    gc_route_decision_t d;

    if (!gc_id_valid(id)) {
        gc_result_t *res = gc_result_make(r->pool);
        gc_result_field(res, "id", "the strategy id must be 1 to 64 letters, digits, '-' or '_'");
        gc_result_problem(res, HTTP_BAD_REQUEST, "validation_failed", "Invalid request",
                          "the strategy id in the path must be 1 to 64 letters, digits, '-' or "
                          "'_'");
        gc_result_error_type(res, "invalid_value");
        return gcmon_api_send_result(r, res);
    }
    if (!route) {
        return unavailable(r,
                           "route decisions are made by mod_gcmon_stream from its route tables "
                           "in shared memory: load mod_gcmon_stream.so (conf/gcmon.load)",
                           60);
    }
    switch ((gc_route_shm_e)route(id, &d)) {
    case GC_ROUTE_OK: return send_route(r, id, &d);
    case GC_ROUTE_UNKNOWN:
        return gcmon_api_send_problem(
            r, HTTP_NOT_FOUND, "strategy_not_active", "Strategy not active",
            apr_psprintf(r->pool,
                         "no active strategy has this id on this server (a strategy is routed "
                         "once active; a strategy just activated appears here within %d s, "
                         "when this server's route tables are next refreshed from the database)",
                         (int)apr_time_sec(GC_ROUTE_REFRESH)));
    case GC_ROUTE_NOT_LOADED:
        return unavailable(r,
                           apr_psprintf(r->pool,
                                        "this server's route tables have not been loaded from "
                                        "the database yet: they are loaded every %d s by "
                                        "mod_gcmon_stream's monitor thread, which runs with "
                                        "mod_dbd and GcmonStream On, the client credentials "
                                        "or a webhook",
                                        (int)apr_time_sec(GC_ROUTE_REFRESH)),
                           (int)apr_time_sec(GC_ROUTE_REFRESH));
    default: return unavailable(r, "the strategy's route table is being rewritten; try again", 1);
    }
}
