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
    return OK;
}

/* The shared memory outlives configuration generations: it hangs off the
 * process pool, whose userdata survives the DSO being unloaded and reloaded
 * on every restart, so counters and the budget carry over graceful restarts. */
typedef struct {
    apr_shm_t *metrics_shm;
    gc_metrics_t *metrics;
    apr_shm_t *budget_shm;
    gc_budget_t *budget;
    int budget_limit;
} shm_state_t;

#define SHM_STATE_KEY "gcmon_api_shm_state"

static apr_shm_t *shm_create(server_rec *s, apr_size_t size, const char *what)
{
    apr_shm_t *shm = NULL;
    apr_status_t rv = apr_shm_create(&shm, size, NULL, s->process->pool);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     GCMON_LOGNO(1002) "cannot create %" APR_SIZE_T_FMT " bytes of anonymous "
                     "shared memory for %s", size, what);
        return NULL;
    }
    return shm;
}

static shm_state_t *shm_state(server_rec *s, int rate_limit)
{
    apr_pool_t *pp = s->process->pool;
    shm_state_t *st = NULL;

    apr_pool_userdata_get((void **)&st, SHM_STATE_KEY, pp);
    if (!st) {
        st = apr_pcalloc(pp, sizeof(*st));
        apr_pool_userdata_set(st, SHM_STATE_KEY, NULL, pp);
    }
    if (!st->metrics) {
        if (!(st->metrics_shm = shm_create(s, gc_metrics_size(), "metrics"))) {
            return NULL;
        }
        st->metrics = gc_metrics_init(apr_shm_baseaddr_get(st->metrics_shm));
    }
    /* A new limit gets a new window: the old segment stays mapped (children of
     * the previous generation may still use it) until the parent exits. */
    if (!st->budget || st->budget_limit != rate_limit) {
        if (!(st->budget_shm = shm_create(s, gc_budget_size(rate_limit), "the rate budget"))) {
            return NULL;
        }
        st->budget = gc_budget_init(apr_shm_baseaddr_get(st->budget_shm), rate_limit,
                                    apr_time_from_sec(60));
        st->budget_limit = rate_limit;
    }
    return st;
}

/* An anonymous admin API is a choice worth a warning at every start. */
static void log_admin_actor(server_rec *s, const gcmon_api_conf_t *c)
{
    switch (gcmon_api_actor_mode(c)) {
    case GCMON_ACTOR_ANONYMOUS:
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     GCMON_LOGNO(1005) "GcmonAdminActor anonymous: admin actions are "
                     "accepted without knowing who makes them and audited as '-'; protect "
                     "the admin location with Apache's access control");
        break;
    case GCMON_ACTOR_HEADER:
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     GCMON_LOGNO(1006) "GcmonAdminActor: the actor of admin actions is taken "
                     "from the %s header; only a reverse proxy that sets it (and drops a "
                     "client's own) may reach this server", c->actor_header);
        break;
    default:
        break;
    }
}

static int gcmon_api_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                 server_rec *s)
{
    gcmon_api_conf_t *c = ap_get_module_config(s->module_config, &gcmon_api_module);
    shm_state_t *st;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    gcmon_glue_log_bridge(&gcmon_api_module, s, pconf);
    gc_conn_conf_finish(pconf, &c->conn);
    if (!(st = shm_state(s, c->conn.rate_limit)) || !st->metrics || !st->budget) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    log_admin_actor(s, c);
    gcmon_api_runtime()->shared.conn = &c->conn;
    gcmon_api_runtime()->shared.metrics = st->metrics;
    gcmon_api_runtime()->shared.budget = st->budget;
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 GCMON_LOGNO(1003) "gcmon_api: Genesys Cloud API %s, login %s, %s, "
                 "rate limit %d/min", c->conn.api_url, c->conn.login_url,
                 c->conn.client_id ? "client credentials configured"
                                   : "no client credentials (admin calls disabled)",
                 c->conn.rate_limit);
    return OK;
}

static void gcmon_api_child_init(apr_pool_t *pchild, server_rec *s)
{
    gcmon_api_conf_t *c = ap_get_module_config(s->module_config, &gcmon_api_module);

    gcmon_glue_log_bridge(&gcmon_api_module, s, pchild);
    gc_upstream_global_init();
    gcmon_api_runtime()->upstream = NULL;
    if (c->conn.client_id && c->conn.client_secret) {
        gcmon_api_runtime()->upstream = gc_upstream_create(pchild, &c->conn, gcmon_api_runtime()->shared.budget,
                                              gcmon_api_runtime()->shared.metrics);
    }
    gcmon_api_runtime()->presences = gc_presence_cache_create(pchild, GCMON_PRESENCE_CACHE_TTL);
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

AP_DECLARE_MODULE(gcmon_api) = {
    STANDARD20_MODULE_STUFF,
    NULL,
    NULL,
    gcmon_api_create_server_conf,
    NULL,
    gcmon_api_cmds,
    gcmon_api_register_hooks,
    AP_MODULE_FLAG_NONE
};
