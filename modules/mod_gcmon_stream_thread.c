/* mod_gcmon_stream: the monitor thread of each child (apache-patterns §2.2):
 * started in child_init with its own pool and allocator (a gc_worker, on a
 * thread made by ap_thread_create), told to stop from child_stopping
 * (async-signal-safe: prefork calls it from a signal handler), stopped and
 * joined from a pre-cleanup of pchild (before sub-pools such as mod_dbd's
 * connection pool die), with a bounded wait. The glue gives the core mod_dbd
 * connections and tells it whether this child's generation may lead.
 * With GcmonStream On the holder runs the stream; with it Off but an outbound
 * webhook configured, a background holder runs only the outbox (gc_monitor_mode). */
#include <apr_dbd.h>
#include <apr_thread_proc.h>
#include <ap_mpm.h>
#include <http_core.h>
#include <mod_dbd.h>
#include <scoreboard.h>

#include "gc_store.h"
#include "gc_upstream.h"
#include "gc_ws.h"
#include "mod_gcmon_stream_private.h"

#define JOIN_PATIENCE apr_time_from_sec(10)

typedef struct {
    server_rec *s;
    gc_monitor_t *m;
    ap_generation_t generation;
    APR_OPTIONAL_FN_TYPE(ap_dbd_open) * dbd_open;
    APR_OPTIONAL_FN_TYPE(ap_dbd_close) * dbd_close;
} stream_child_t;

static stream_child_t *child;

static apr_status_t db_open(void *baton, apr_pool_t *p, gc_store_t **store, void **handle,
                            const char **err)
{
    stream_child_t *c = baton;
    ap_dbd_t *rec = c->dbd_open(p, c->s);

    if (!rec) {
        *err = "mod_dbd has no connection (see its error above; check DBDriver and "
               "DBDParams)";
        return APR_EGENERAL;
    }
    *store = gc_store_wrap(p, rec->driver, rec->handle);
    if (!*store) {
        c->dbd_close(c->s, rec);
        *err = "unsupported database driver (gcmon supports sqlite3 and pgsql)";
        return APR_EGENERAL;
    }
    *handle = rec;
    return APR_SUCCESS;
}

static void db_close(void *baton, void *handle)
{
    stream_child_t *c = baton;
    c->dbd_close(c->s, handle);
}

static int mpm_stopping(void)
{
    int state = AP_MPMQ_RUNNING;
    return ap_mpm_query(AP_MPMQ_MPM_STATE, &state) == APR_SUCCESS && state == AP_MPMQ_STOPPING;
}

static int cancelled(void *baton)
{
    return mpm_stopping();
}

/* Not while this child's generation is an old one (graceful restart, trap §9.8). */
static int may_lead(void *baton)
{
    stream_child_t *c = baton;

    if (mpm_stopping()) {
        return 0;
    }
    return !ap_scoreboard_image || ap_scoreboard_image->global->running_generation == c->generation;
}

static apr_status_t stop_and_join(void *data)
{
    stream_child_t *c = data;

    gc_monitor_stop(c->m);
    if (gc_monitor_join(c->m, JOIN_PATIENCE) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, c->s,
                     GCMON_LOGNO(2010) "the stream monitor thread did not stop within %d s; "
                                       "waiting for it",
                     (int)apr_time_sec(JOIN_PATIENCE));
        gc_monitor_join(c->m, -1);
    }
    child = NULL;
    return APR_SUCCESS;
}

void gcmon_stream_child_stopping(apr_pool_t *pchild, int graceful)
{
    stream_child_t *c = child;
    if (c) {
        gc_monitor_stop(c->m);
    }
}

static apr_pool_t *thread_pool(apr_pool_t *pchild)
{
    apr_allocator_t *alloc;
    apr_thread_mutex_t *mutex;
    apr_pool_t *p;

    if (apr_allocator_create(&alloc) != APR_SUCCESS) {
        return NULL;
    }
    apr_allocator_max_free_set(alloc, 1024 * 1024);
    if (apr_pool_create_ex(&p, pchild, NULL, alloc) != APR_SUCCESS) {
        apr_allocator_destroy(alloc);
        return NULL;
    }
    apr_allocator_owner_set(alloc, p);
    /* The monitor and its writer create and destroy sub-pools of p. */
    if (apr_thread_mutex_create(&mutex, APR_THREAD_MUTEX_DEFAULT, p) == APR_SUCCESS) {
        apr_allocator_mutex_set(alloc, mutex);
    }
    return p;
}

void gcmon_stream_thread_start(apr_pool_t *pchild, server_rec *s, const gcmon_shared_t *sh,
                               const gcmon_stream_conf_t *conf)
{
    gc_monitor_env_t env = { 0 };
    gc_monitor_mode_e mode = gc_monitor_mode(&conf->mon);
    stream_child_t *c;
    apr_pool_t *p;
    apr_status_t rv;

    if (mode == GC_MONITOR_OFF || ap_state_query(AP_SQ_RUN_MODE) != AP_SQ_RM_NORMAL) {
        return;
    }
    if (mode == GC_MONITOR_BACKGROUND
        && (!APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open) || !APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close))) {
        return; /* post_config said why (GCM2009) */
    }
    c = apr_pcalloc(pchild, sizeof(*c));
    c->s = s;
    c->dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    c->dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
    if (!c->dbd_open || !c->dbd_close || !(p = thread_pool(pchild))) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     GCMON_LOGNO(2011) "cannot start the stream monitor in this child");
        return;
    }
    ap_mpm_query(AP_MPMQ_GENERATION, &c->generation);
    gc_upstream_global_init(); /* libcurl: the outbox posts with it too */
    if (mode == GC_MONITOR_STREAM) {
        gc_ws_log_init(APLOG_MODULE_IS_LEVEL(s, gcmon_stream_module.module_index, APLOG_TRACE1));
    }

    env.conf = &conf->mon;
    env.conn = sh->conn;
    env.budget = sh->budget;
    env.metrics = sh->metrics;
    env.status = gcmon_stream_status_block();
    env.routes = gcmon_stream_routes_block();
    env.host = gcmon_stream_node();
    env.baton = c;
    env.db_open = db_open;
    env.db_close = db_close;
    env.may_lead = may_lead;
    env.cancelled = cancelled;
    if (!(c->m = gc_monitor_create(p, &env))) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     GCMON_LOGNO(2011) "cannot start the stream monitor in this child");
        return;
    }

    /* Registered before the thread exists: pchild's pre-cleanups run before
     * any of its sub-pools (ours, mod_dbd's) are destroyed. */
    apr_pool_pre_cleanup_register(pchild, c, stop_and_join);
    rv = gc_monitor_start(c->m, ap_thread_create);
    if (rv != APR_SUCCESS) {
        apr_pool_cleanup_kill(pchild, c, stop_and_join);
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     GCMON_LOGNO(2012) "cannot create the stream monitor thread");
        return;
    }
    child = c;
}
