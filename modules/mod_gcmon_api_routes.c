/* mod_gcmon_api: the route table and the handler. A row names its route (the
 * metrics label, gc_api_routes.h), the path below <mount> with "*" for one
 * segment, the method, whether it is an admin resource (an actor is needed)
 * and a write (the admin-write guard and a JSON body), and the endpoint. */
#include <string.h>

#include <apr_strings.h>
#include <http_protocol.h>

#include "gc_metrics.h"
#include "mod_gcmon_api_private.h"

#define ADMIN 0x1u /* needs an actor (GcmonAdminActor) */
#define WRITE 0x2u /* the admin-write guard, then the JSON body */
#define RAW 0x4u   /* the endpoint reads its own body (signed webhooks) */
#define MAX_SEGMENTS 8

typedef struct {
    gc_api_route_e route;
    const char *pattern;
    int method;
    unsigned flags;
    gcmon_api_endpoint_fn *fn;
} route_t;

static const route_t routes[] = {
    { GC_ROUTE_health, "v1/health", M_GET, 0, gcmon_api_health_get },
    { GC_ROUTE_metrics, "v1/metrics", M_GET, 0, gcmon_api_metrics_get },
    { GC_ROUTE_stream, "v1/stream", M_GET, 0, gcmon_api_stream_get },
    { GC_ROUTE_history, "v1/agent-status/history", M_GET, 0, gcmon_api_history_get },
    { GC_ROUTE_agents, "v1/agents", M_GET, 0, gcmon_api_board_get },
    { GC_ROUTE_agent, "v1/agents/*", M_GET, 0, gcmon_api_agent_get },
    { GC_ROUTE_alerts, "v1/alerts", M_GET, 0, gcmon_api_alerts_get },
    { GC_ROUTE_upstream_check, "v1/admin/upstream/check", M_POST, ADMIN | WRITE,
      gcmon_api_upstream_check },
    { GC_ROUTE_admin_status, "v1/admin/agents/*/status", M_GET, ADMIN, gcmon_api_status_get },
    { GC_ROUTE_admin_status, "v1/admin/agents/*/status", M_PUT, ADMIN | WRITE,
      gcmon_api_status_put },
    { GC_ROUTE_admin_audit, "v1/admin/audit", M_GET, ADMIN, gcmon_api_audit_get },
    { GC_ROUTE_admin_weights, "v1/admin/queues/*/weights", M_GET, ADMIN, gcmon_api_weights_get },
    { GC_ROUTE_admin_weights, "v1/admin/queues/*/weights", M_POST, ADMIN | WRITE,
      gcmon_api_weights_post },
    { GC_ROUTE_admin_distributions, "v1/admin/distributions", M_GET, ADMIN,
      gcmon_api_distributions_get },
    { GC_ROUTE_admin_distributions, "v1/admin/distributions/*", M_GET, ADMIN,
      gcmon_api_distribution_get },
    { GC_ROUTE_admin_traces, "v1/admin/flows/*/traces", M_POST, ADMIN | WRITE,
      gcmon_api_traces_post },
    { GC_ROUTE_admin_traces, "v1/admin/traces", M_GET, ADMIN, gcmon_api_traces_get },
    { GC_ROUTE_admin_traces, "v1/admin/traces/*", M_GET, ADMIN, gcmon_api_trace_get },
    { GC_ROUTE_admin_strategies, "v1/admin/strategies", M_GET, ADMIN, gcmon_api_strategies_get },
    { GC_ROUTE_admin_strategies, "v1/admin/strategies", M_POST, ADMIN | WRITE,
      gcmon_api_strategies_post },
    { GC_ROUTE_admin_strategies, "v1/admin/strategies/*", M_GET, ADMIN, gcmon_api_strategy_get },
    { GC_ROUTE_admin_strategies, "v1/admin/strategies/*", M_DELETE, ADMIN | WRITE,
      gcmon_api_strategy_delete },
    { GC_ROUTE_admin_strategies, "v1/admin/strategies/*/rebalance", M_POST, ADMIN | WRITE,
      gcmon_api_strategy_rebalance },
    { GC_ROUTE_admin_strategies, "v1/admin/strategies/*/sync", M_POST, ADMIN | WRITE,
      gcmon_api_strategy_sync },
    { GC_ROUTE_admin_strategies, "v1/admin/strategies/*/latency", M_GET, ADMIN,
      gcmon_api_strategy_latency },
    { GC_ROUTE_admin_strategies, "v1/admin/strategies/*/audit", M_GET, ADMIN,
      gcmon_api_strategy_audit },
    { GC_ROUTE_admin_strategies, "v1/admin/strategies/*/activate", M_POST, ADMIN | WRITE,
      gcmon_api_strategy_activate },
    { GC_ROUTE_strategy_route, "v1/strategies/*/route", M_GET, 0, gcmon_api_strategy_route },
    { GC_ROUTE_hooks_genesys, "v1/hooks/genesys", M_POST, RAW, gcmon_api_hooks_genesys },
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

/* Does the path (n segments) match the row's pattern? params get the "*"s. */
static int match(const route_t *rt, const char **seg, int n, const char **params)
{
    const char *p = rt->pattern;
    int i, np = 0;

    for (i = 0; i < n; i++) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (!*p) {
            return 0;
        }
        if (len == 1 && *p == '*') {
            params[np++] = seg[i];
        }
        else if (strlen(seg[i]) != len || strncmp(p, seg[i], len)) {
            return 0;
        }
        p = end ? end + 1 : p + len;
    }
    return *p == '\0';
}

/* ap_method_name_of() answers "HEAD" for M_GET, which shares its number. */
static const char *method_name(int m)
{
    switch (m) {
    case M_GET: return "GET";
    case M_PUT: return "PUT";
    case M_POST: return "POST";
    case M_DELETE: return "DELETE";
    case M_PATCH: return "PATCH";
    default: return "OPTIONS";
    }
}

static int serve(request_rec *r, const route_t *rt, const char **params)
{
    json_t *body = NULL;
    int rc;

    if (rt->flags & ADMIN) {
        gc_result_t *res = gc_result_make(r->pool);
        if (gcmon_api_actor_establish(r, res) != OK) {
            return gcmon_api_send_result(r, res);
        }
    }
    if (rt->flags & WRITE) {
        if (gcmon_api_admin_guard(r, &body) != OK) {
            return OK;
        }
    }
    else if (!(rt->flags & RAW)) {
        ap_discard_request_body(r);
    }
    rc = rt->fn(r, params, body);
    json_decref(body);
    return rc;
}

static int method_not_allowed(request_rec *r, const char *allow)
{
    apr_table_setn(r->headers_out, "Allow", allow);
    return gcmon_api_send_problem(
        r, HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed",
        apr_psprintf(r->pool, "%s is not allowed here; use %s", r->method, allow));
}

static int dispatch(request_rec *r, gc_api_route_e *route)
{
    const char *seg[MAX_SEGMENTS], *params[MAX_SEGMENTS];
    const char *allow = NULL;
    int n = gcmon_api_route_segments(r, seg, MAX_SEGMENTS);
    size_t i;

    *route = GC_ROUTE_not_found;
    for (i = 0; n >= 0 && i < N_ROUTES; i++) {
        if (!match(&routes[i], seg, n, params)) {
            continue;
        }
        *route = routes[i].route;
        if (routes[i].method == r->method_number) {
            return serve(r, &routes[i], params);
        }
        allow = apr_pstrcat(r->pool, allow ? allow : "", allow ? ", " : "",
                            method_name(routes[i].method),
                            routes[i].method == M_GET ? ", HEAD" : "", NULL);
    }
    ap_discard_request_body(r);
    if (allow) {
        return method_not_allowed(r, allow);
    }
    return gcmon_api_send_problem(r, HTTP_NOT_FOUND, "not_found", "Not found",
                                  "no gcmon API resource at this path");
}

static void count_request(gc_api_route_e route, int status)
{
    gcmon_api_runtime_t *run = gcmon_api_runtime();

    if (run && run->shared.metrics) {
        gc_metrics_inc(run->shared.metrics, GC_MET_API_REQUESTS, gc_api_route_name(route),
                       gc_metrics_code_label(status));
    }
}

int gcmon_api_handler(request_rec *r)
{
    gc_api_route_e route = GC_ROUTE_not_found;
    int rc;

    if (!r->handler || strcmp(r->handler, "gcmon-api")) {
        return DECLINED;
    }
    rc = dispatch(r, &route);
    count_request(route, r->status);
    return rc;
}
