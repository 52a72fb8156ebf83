/* mod_gcmon_api: the endpoints that need neither the database nor Genesys
 * (SPEC §5.2): health, the Prometheus metrics and the stream's status. */
#include <string.h>

#include <apr_optional.h>
#include <http_protocol.h>

#include "gc_metrics.h"
#include "gc_version.h"
#include "mod_gcmon_api_private.h"

int gcmon_api_health_get(request_rec *r, const char **params, json_t *body)
{
    return gcmon_api_send_json(r, HTTP_OK,
                               json_pack("{s:s, s:s}", "status", "ok", "version", GCMON_VERSION));
}

int gcmon_api_metrics_get(request_rec *r, const char **params, json_t *body)
{
    gcmon_api_runtime_t *run = gcmon_api_runtime();
    const char *text;

    if (!run || !run->shared.metrics) {
        return gcmon_api_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "metrics_unavailable",
                                      "Metrics are not available", NULL);
    }
    /* The budget's window slides by itself: read it when asked. */
    if (run->shared.budget) {
        gc_metrics_set(run->shared.metrics, GC_MET_BUDGET_USED, NULL, NULL,
                       gc_budget_used(run->shared.budget));
        gc_metrics_set(run->shared.metrics, GC_MET_BUDGET_LIMIT, NULL, NULL,
                       gc_budget_limit(run->shared.budget));
    }
    text = gc_metrics_render(run->shared.metrics, r->pool);
    return gcmon_api_send_text(r, HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text,
                               strlen(text));
}

/* Served by mod_gcmon_stream from its shared-memory status. */
int gcmon_api_stream_get(request_rec *r, const char **params, json_t *body)
{
    APR_OPTIONAL_FN_TYPE(gcmon_stream_status_json) *status =
        APR_RETRIEVE_OPTIONAL_FN(gcmon_stream_status_json);
    const char *text = status ? status(r->pool) : NULL;

    if (!text) {
        text = "{\"enabled\":false,\"holder\":null,\"connected\":false,\"channels\":[],"
               "\"agents_monitored\":0,\"last_event_at\":null,\"events_total\":0,"
               "\"reconnects_total\":0,\"last_error\":null}";
    }
    return gcmon_api_send_text(r, HTTP_OK, "application/json; charset=utf-8", text, strlen(text));
}
