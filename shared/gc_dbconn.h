/* A background thread's own database connection (every gc_worker: the
 * stream monitor, its writer, the outbox): opened through the glue's
 * db_open/db_close callbacks (gc_monitor_env_t, gc_outbox_env_t) into a pool
 * of its own, so a failed or dropped connection goes away whole and the next
 * open starts clean. */
#ifndef GC_DBCONN_H
#define GC_DBCONN_H

#include <apr_pools.h>

struct gc_store;

typedef apr_status_t gc_db_open_fn(void *baton, apr_pool_t *p, struct gc_store **store,
                                   void **handle, const char **err);
typedef void gc_db_close_fn(void *baton, void *handle);

typedef struct gc_dbconn {
    apr_pool_t *pool;
    struct gc_store *store; /* NULL while closed */
    void *handle;           /* the glue's, passed back to close */
} gc_dbconn_t;

/* Open c unless it is open. APR_SUCCESS with c->store set; otherwise c is
 * closed and *err says why. */
apr_status_t gc_dbconn_open(gc_dbconn_t *c, apr_pool_t *parent, gc_db_open_fn *open, void *baton,
                            const char **err);

/* Close c (if open) and free its pool. */
void gc_dbconn_close(gc_dbconn_t *c, gc_db_close_fn *close, void *baton);

#endif
