/* A background thread's own database connection (gc_dbconn.h). */
#include "gc_dbconn.h"

apr_status_t gc_dbconn_open(gc_dbconn_t *c, apr_pool_t *parent, gc_db_open_fn *open, void *baton,
                            const char **err)
{
    apr_status_t rv;

    if (c->store) {
        return APR_SUCCESS;
    }
    if ((rv = apr_pool_create(&c->pool, parent)) != APR_SUCCESS) {
        c->pool = NULL;
        *err = "out of memory";
        return rv;
    }
    rv = open(baton, c->pool, &c->store, &c->handle, err);
    if (rv != APR_SUCCESS || !c->store) {
        c->store = NULL;
        c->handle = NULL;
        apr_pool_destroy(c->pool);
        c->pool = NULL;
        return rv != APR_SUCCESS ? rv : APR_EGENERAL;
    }
    return APR_SUCCESS;
}

void gc_dbconn_close(gc_dbconn_t *c, gc_db_close_fn *close, void *baton)
{
    if (c->handle && close) {
        close(baton, c->handle);
    }
    c->handle = NULL;
    c->store = NULL;
    if (c->pool) {
        apr_pool_destroy(c->pool);
        c->pool = NULL;
    }
}
