/* gcmon store: the audit trail (gc_audit.h). */
#include <apr_strings.h>

#include "gc_audit.h"
#include "gc_outbox.h"
#include "store_private.h"

typedef struct {
    gc_audit_rec_t *a;
    const char *target, *body;
} add_ctx_t;

static apr_status_t add_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    add_ctx_t *c = baton;
    gc_audit_rec_t *a = c->a;
    apr_int64_t at = GC_MS(a->at);
    apr_dbd_results_t *res;
    apr_dbd_row_t *row = NULL;
    const void *args[9];
    apr_status_t rv;

    args[0] = &at;
    args[1] = a->actor;
    args[2] = a->action;
    args[3] = a->target;
    args[4] = a->request;
    args[5] = a->result;
    args[6] = &a->status;
    args[7] = &a->latency_ms;
    args[8] = a->actor_source;
    if ((rv = gc_store__select(s, p, ST_AUDIT_INSERT, args, &res, err)) != APR_SUCCESS) {
        return rv;
    }
    while (gc_store__row(s, p, res, &row)) {
        a->id = gc_store__int(s, row, 0);
    }
    if (c->target) {
        return gc_store__outbox_add(s, p, c->target, NULL, c->body, a->at, err);
    }
    return APR_SUCCESS;
}

apr_status_t gc_store_audit_add(gc_store_t *s, apr_pool_t *p, gc_audit_rec_t *a,
                                const char *outbox_target, const char *outbox_body,
                                const char **err)
{
    add_ctx_t c;

    if (!a->actor || !a->action) {
        *err = "audit: a row needs an actor and an action";
        return APR_EINVAL;
    }
    c.a = a;
    c.target = outbox_target;
    c.body = outbox_body;
    return gc_store__tx(s, p, add_tx, &c, err);
}

apr_status_t gc_store_audit_list(gc_store_t *s, apr_pool_t *p, const gc_audit_filter_t *f,
                                 apr_array_header_t **out, long *total, int *has_more,
                                 const char **err)
{
    apr_int64_t before = f->before_id > 0 ? f->before_id : APR_INT64_MAX;
    apr_int64_t offset = f->offset;
    int limit = f->limit + 1;
    const void *args[10];
    apr_dbd_results_t *res;
    apr_dbd_row_t *row = NULL;
    apr_status_t rv;

    args[0] = args[1] = f->actor;
    args[2] = args[3] = f->action;
    args[4] = args[5] = f->target;
    if ((rv = gc_store__select(s, p, ST_AUDIT_COUNT, args, &res, err)) != APR_SUCCESS) {
        return rv;
    }
    *total = 0;
    while (gc_store__row(s, p, res, &row)) {
        *total = (long)gc_store__int(s, row, 0);
    }
    args[6] = &before;
    args[7] = &limit;
    args[8] = &offset;
    if ((rv = gc_store__select(s, p, ST_AUDIT_LIST, args, &res, err)) != APR_SUCCESS) {
        return rv;
    }
    *out = apr_array_make(p, f->limit, sizeof(gc_audit_rec_t));
    *has_more = 0;
    row = NULL;
    while (gc_store__row(s, p, res, &row)) {
        gc_audit_rec_t *a;
        if ((*out)->nelts == f->limit) {
            *has_more = 1;
            continue;
        }
        a = apr_array_push(*out);
        a->id = gc_store__int(s, row, 0);
        a->at = GC_FROM_MS(gc_store__int(s, row, 1));
        a->actor = gc_store__text(s, p, row, 2);
        a->action = gc_store__text(s, p, row, 3);
        a->target = gc_store__text(s, p, row, 4);
        a->request = gc_store__text(s, p, row, 5);
        a->result = gc_store__text(s, p, row, 6);
        a->status = (int)gc_store__int(s, row, 7);
        a->latency_ms = gc_store__int(s, row, 8);
        a->actor_source = gc_store__text(s, p, row, 9);
    }
    return APR_SUCCESS;
}
