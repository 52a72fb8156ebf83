/* The gcmon API's route names, from one list: the route table of
 * mod_gcmon_api names its rows with these ids, and the metrics registry
 * derives the `route` label values of gcmon_api_requests_total from the same
 * list, so a route cannot be missing from the metrics ("other"). */
#ifndef GC_API_ROUTES_H
#define GC_API_ROUTES_H

/* clang-format off */
#define GC_API_ROUTE_LIST(X)                                                      \
    X(health) X(metrics) X(stream) X(history) X(agents) X(agent) X(alerts)        \
    X(upstream_check) X(admin_status) X(admin_audit) X(admin_weights)             \
    X(admin_distributions) X(admin_traces) X(admin_strategies) X(strategy_route)  \
    X(hooks_genesys) X(not_found)
/* clang-format on */

typedef enum {
#define GC_API_ROUTE_ENUM(name) GC_ROUTE_##name,
    GC_API_ROUTE_LIST(GC_API_ROUTE_ENUM)
#undef GC_API_ROUTE_ENUM
        GC_ROUTE__COUNT
} gc_api_route_e;

/* The label value of a route ("health", …). */
const char *gc_api_route_name(gc_api_route_e route);

#endif
