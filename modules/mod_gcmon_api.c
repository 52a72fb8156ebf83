/* mod_gcmon_api: the gcmon HTTP API (SetHandler gcmon-api). It also owns the
 * Genesys Cloud connection settings and the shared memory (rate budget,
 * metrics) that mod_gcmon_stream uses through the optional function
 * gcmon_api_shared. */
#define GCMON_MODULE_MAIN
#include <apr_optional.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_request.h>

#include "gc_board_cache.h"
#include "mod_gcmon_api_private.h"

/* The optional function's name is its registration key. */
static const gcmon_shared_t *gcmon_api_shared(void)
{
    return gcmon_api_runtime()->shared.metrics ? &gcmon_api_runtime()->shared : NULL;
}

/* Cross-directive checks; runs under apache2 -t as well. */
static int gcmon_api_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                  server_rec *s)
{
    gcmon_api_conf_t *c = ap_get_module_config(s->module_config, &gcmon_api_module);

    if (!c->conn.client_id != !c->conn.client_secret) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     GCMON_LOGNO(1001) "%s is set but %s is not: both are needed for the "
                                       "Genesys Cloud connection",
                     c->conn.client_id ? "GcmonClientID" : "GcmonClientSecret",
                     c->conn.client_id ? "GcmonClientSecret" : "GcmonClientID");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return gcmon_api_dbdir_check(s, ptemp);
}

/* The shared memory outlives configuration generations: the segments hang off
 * the process pool, whose userdata survives the DSO being unloaded and
 * reloaded on every restart, so counters and the budget carry over graceful
 * restarts. Only the apr_shm_t (an APR object) is kept there, never a struct
 * of this module, and every build checks a segment's header before using it:
 * after an upgrade, a segment of another layout is replaced. */
#define SHM_METRICS_KEY "gcmon_api_shm_metrics"
#define SHM_BUDGET_KEY "gcmon_api_shm_budget"
/* GcmonRateLimit counts requests a minute at Genesys, where they arrive; a
 * slot is taken a little before (the attempt is set up, the connection
 * reused or made, the request sent). One second more in our window keeps a
 * burst delayed that much in flight inside Genesys' 60 s window too. */
#define BUDGET_WINDOW apr_time_from_sec(61)

static apr_shm_t *shm_create(server_rec *s, apr_size_t size, const char *what)
{
    apr_shm_t *shm = NULL;
    apr_status_t rv = apr_shm_create(&shm, size, NULL, s->process->pool);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     GCMON_LOGNO(1002) "cannot create %" APR_SIZE_T_FMT " bytes of anonymous "
                                       "shared memory for %s",
                     size, what);
        return NULL;
    }
    return shm;
}

static apr_shm_t *shm_kept(server_rec *s, const char *key)
{
    apr_shm_t *shm = NULL;

    apr_pool_userdata_get((void **)&shm, key, s->process->pool);
    return shm;
}

/* Keep `shm` for the next generations. The one it replaces is destroyed,
 * which unmaps it in this parent only: the children of the old generation
 * keep their mappings until they exit, and nothing piles up. */
static void shm_keep(server_rec *s, const char *key, apr_shm_t *shm, apr_shm_t *replaced,
                     const char *what)
{
    apr_pool_userdata_set(shm, key, NULL, s->process->pool);
    if (replaced) {
        ap_log_error(
            APLOG_MARK, APLOG_NOTICE, 0, s,
            GCMON_LOGNO(1007) "%s: the shared memory segment of the previous "
                              "generation has another layout (another build of gcmon); using a new "
                              "segment%s",
            what, strcmp(what, "metrics") == 0 ? " (counters restart from zero)" : "");
        apr_shm_destroy(replaced);
    }
}

static gc_metrics_t *metrics_segment(server_rec *s)
{
    apr_shm_t *old = shm_kept(s, SHM_METRICS_KEY), *shm;
    gc_metrics_t *m =
        old ? gc_metrics_attach(apr_shm_baseaddr_get(old), apr_shm_size_get(old)) : NULL;

    if (m) {
        return m;
    }
    if (!(shm = shm_create(s, gc_metrics_size(), "metrics"))
        || !(m = gc_metrics_init(apr_shm_baseaddr_get(shm)))) {
        return NULL;
    }
    shm_keep(s, SHM_METRICS_KEY, shm, old, "metrics");
    return m;
}

/* One budget segment for every generation, sized for the largest
 * GcmonRateLimit: a changed limit is set in place, so the children of the old
 * and the new generation share one window under the new limit. */
static gc_budget_t *budget_segment(server_rec *s, int limit)
{
    apr_shm_t *old = shm_kept(s, SHM_BUDGET_KEY), *shm;
    gc_budget_t *b =
        old ? gc_budget_attach(apr_shm_baseaddr_get(old), apr_shm_size_get(old)) : NULL;
    int was, carried = 0;
    apr_status_t rv;

    if (b && (was = gc_budget_limit(b)) == limit) {
        return b;
    }
    if (b && (rv = gc_budget_set_limit(b, limit, &carried)) == APR_SUCCESS) {
        ap_log_error(
            APLOG_MARK, APLOG_INFO, 0, s,
            GCMON_LOGNO(1008) "rate budget: GcmonRateLimit changed from %d to %d per "
                              "minute in place; %d request(s) of the current window carried over",
            was, limit, carried);
        return b;
    }
    if (b) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     GCMON_LOGNO(1009) "rate budget: cannot change GcmonRateLimit from %d to "
                                       "%d in place",
                     was, limit);
        return NULL;
    }
    if (!(shm = shm_create(s, gc_budget_size(GC_MAX_RATE_LIMIT), "the rate budget"))
        || !(b = gc_budget_init_capacity(apr_shm_baseaddr_get(shm), GC_MAX_RATE_LIMIT, limit,
                                         BUDGET_WINDOW))) {
        return NULL;
    }
    shm_keep(s, SHM_BUDGET_KEY, shm, old, "rate budget");
    return b;
}

/* An anonymous admin API is a choice worth a warning at every start. */
static void log_admin_actor(server_rec *s, const gcmon_api_conf_t *c)
{
    switch (gcmon_api_actor_mode(c)) {
    case GCMON_ACTOR_ANONYMOUS:
        ap_log_error(
            APLOG_MARK, APLOG_WARNING, 0, s,
            GCMON_LOGNO(1005) "GcmonAdminActor anonymous: admin actions are "
                              "accepted without knowing who makes them and audited as '-'; protect "
                              "the admin location with Apache's access control");
        break;
    case GCMON_ACTOR_HEADER:
        ap_log_error(
            APLOG_MARK, APLOG_INFO, 0, s,
            GCMON_LOGNO(1006) "GcmonAdminActor: the actor of admin actions is taken "
                              "from the %s header; only a reverse proxy that sets it (and drops a "
                              "client's own) may reach this server",
            c->actor_header);
        break;
    default: break;
    }
}

static int gcmon_api_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                 server_rec *s)
{
    gcmon_api_conf_t *c = ap_get_module_config(s->module_config, &gcmon_api_module);
    gc_metrics_t *metrics;
    gc_budget_t *budget;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    gcmon_glue_log_bridge(&gcmon_api_module, s, pconf);
    gc_conn_conf_finish(pconf, &c->conn);
    if (!(metrics = metrics_segment(s)) || !(budget = budget_segment(s, c->conn.rate_limit))) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    log_admin_actor(s, c);
    gcmon_api_runtime()->shared.conn = &c->conn;
    gcmon_api_runtime()->shared.metrics = metrics;
    gcmon_api_runtime()->shared.budget = budget;
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 GCMON_LOGNO(1003) "gcmon_api: Genesys Cloud API %s, login %s, %s, "
                                   "rate limit %d/min",
                 c->conn.api_url, c->conn.login_url,
                 c->conn.client_id ? "client credentials configured"
                                   : "no client credentials (admin calls disabled)",
                 c->conn.rate_limit);
    return OK;
}

static void gcmon_api_child_init(apr_pool_t *pchild, server_rec *s)
{
    gcmon_api_conf_t *c = ap_get_module_config(s->module_config, &gcmon_api_module);

    gcmon_api_runtime_t *run = gcmon_api_runtime();

    gcmon_glue_log_bridge(&gcmon_api_module, s, pchild);
    gc_upstream_global_init();
    run->upstream = NULL;
    if (c->conn.client_id && c->conn.client_secret) {
        run->upstream =
            gc_upstream_create(pchild, &c->conn, run->shared.budget, run->shared.metrics);
    }
    run->presences = gc_presence_cache_create(pchild, GCMON_PRESENCE_CACHE_TTL);
    run->board = gc_board_cache_create(pchild);
}

static void gcmon_api_register_hooks(apr_pool_t *p)
{
    ap_hook_check_config(gcmon_api_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(gcmon_api_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(gcmon_api_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_map_to_storage(gcmon_api_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(gcmon_api_handler, NULL, NULL, APR_HOOK_MIDDLE);
    APR_REGISTER_OPTIONAL_FN(gcmon_api_shared);
}

AP_DECLARE_MODULE(gcmon_api) = { STANDARD20_MODULE_STUFF,
                                 NULL,
                                 NULL,
                                 gcmon_api_create_server_conf,
                                 NULL,
                                 gcmon_api_cmds,
                                 gcmon_api_register_hooks,
                                 AP_MODULE_FLAG_NONE };
