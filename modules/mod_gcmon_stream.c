/* mod_gcmon_stream: the monitor of live agent state. It takes the Genesys
 * Cloud connection, the rate budget and the metrics from mod_gcmon_api. */
#define GCMON_MODULE_MAIN
#include <apr_optional.h>
#include <http_core.h>

#include "mod_gcmon_stream_private.h"

static APR_OPTIONAL_FN_TYPE(gcmon_api_shared) *api_shared;

static int gcmon_stream_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                    server_rec *s)
{
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    gcmon_glue_log_bridge(&gcmon_stream_module, s, pconf);
    api_shared = APR_RETRIEVE_OPTIONAL_FN(gcmon_api_shared);
    if (!api_shared || !api_shared()) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     GCMON_LOGNO(2001) "mod_gcmon_stream needs mod_gcmon_api: load "
                     "mod_gcmon_api.so before mod_gcmon_stream.so (see conf/gcmon.load)");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

static void gcmon_stream_child_init(apr_pool_t *pchild, server_rec *s)
{
    gcmon_glue_log_bridge(&gcmon_stream_module, s, pchild);
}

static void gcmon_stream_register_hooks(apr_pool_t *p)
{
    static const char *const after_api[] = { "mod_gcmon_api.c", NULL };
    ap_hook_post_config(gcmon_stream_post_config, after_api, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(gcmon_stream_child_init, after_api, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(gcmon_stream) = {
    STANDARD20_MODULE_STUFF,
    NULL,
    NULL,
    gcmon_stream_create_server_conf,
    NULL,
    gcmon_stream_cmds,
    gcmon_stream_register_hooks,
    AP_MODULE_FLAG_NONE
};
