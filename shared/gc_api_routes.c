#include "gc_api_routes.h"

static const char *const names[GC_ROUTE__COUNT] = {
#define GC_API_ROUTE_NAME(name) #name,
    GC_API_ROUTE_LIST(GC_API_ROUTE_NAME)
#undef GC_API_ROUTE_NAME
};

const char *gc_api_route_name(gc_api_route_e route)
{
    return (unsigned)route < GC_ROUTE__COUNT ? names[route] : "other";
}
