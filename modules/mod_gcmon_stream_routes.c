/* mod_gcmon_stream: the route tables of the active strategies in shared
 * memory (gc_route_shm; an anonymous segment of the httpd parent, kept across
 * graceful restarts like the status block), refreshed from the database by
 * the monitor thread of one child at a time (gc_monitor), and the
 * `gcmon_stream_route` optional function behind GET /v1/strategies/{id}/route
 * (SPEC §3.6): a decision from the block, no database, no upstream call. */
#include <apr_optional.h>
#include <apr_shm.h>

#include "mod_gcmon_stream_private.h"

#define SHM_ROUTES_KEY "gcmon_stream_shm_routes"

static gc_route_shm_t *route_block;

gc_route_shm_t *gcmon_stream_routes_block(void)
{
    return route_block;
}

int gcmon_stream_routes_setup(server_rec *s)
{
    apr_pool_t *pp = s->process->pool;
    apr_size_t size = gc_route_shm_size();
    apr_shm_t *shm = NULL, *old = NULL;
    apr_status_t rv;

    /* Only the apr_shm_t is kept across generations (the process pool's
     * userdata): each build checks the block's layout first. */
    apr_pool_userdata_get((void **)&old, SHM_ROUTES_KEY, pp);
    route_block =
        old ? gc_route_shm_attach(apr_shm_baseaddr_get(old), apr_shm_size_get(old)) : NULL;
    if (route_block) {
        return OK; /* the tables carry over: routes keep answering */
    }
    rv = apr_shm_create(&shm, size, NULL, pp);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     GCMON_LOGNO(2016) "cannot create %" APR_SIZE_T_FMT " bytes of anonymous "
                                       "shared memory for the strategies' route tables",
                     size);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_userdata_set(shm, SHM_ROUTES_KEY, NULL, pp);
    route_block = gc_route_shm_init(apr_shm_baseaddr_get(shm));
    if (old) {
        /* Unmaps it here only: the old generation's children keep theirs. */
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     GCMON_LOGNO(2017) "route tables: the shared memory block of the previous "
                                       "generation has another layout (another build of gcmon); "
                                       "using a new segment, loaded from the database within "
                                       "%d s (until then GET /v1/strategies/{id}/route answers "
                                       "503)",
                     (int)apr_time_sec(GC_ROUTE_REFRESH));
        apr_shm_destroy(old);
    }
    return OK;
}

/* The optional function's name is its registration key. */
static int gcmon_stream_route(const char *strategy_id, gc_route_decision_t *out)
{
    return (int)gc_route_shm_decide(route_block, strategy_id, gc_route_shm_rand(), apr_time_now(),
                                    out);
}

void gcmon_stream_routes_register(void)
{
    APR_REGISTER_OPTIONAL_FN(gcmon_stream_route);
}
