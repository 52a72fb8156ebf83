/* gcmon store: the audit trail (gc_audit.h). */
#include <apr_strings.h>

#include "gc_audit.h"
#include "gc_outbox.h"
#include "store_private.h"

static const gc_stmt_t audit_insert = {
    "audit.insert",
    "INSERT INTO gcmon_audit (at, actor, action, target, request, result, status, "
    "latency_ms, actor_source) VALUES (%lld, %s, %s, %s, %s, %s, %d, %lld, %s) "
    "RETURNING id", NULL, 0 };

/* A NULL filter matches every row; the CASTs type the parameters for
 * PostgreSQL. Keyset below id, newest first. */
static const gc_stmt_t audit_list = {
    "audit.list",
    "SELECT id, at, actor, action, target, request, result, status, latency_ms, "
    "actor_source "
    "FROM gcmon_audit WHERE (CAST(%s AS TEXT) IS NULL OR actor = %s) "
    "AND (CAST(%s AS TEXT) IS NULL OR action = %s) "
    "AND (CAST(%s AS TEXT) IS NULL OR target = %s) AND id < %lld "
    "ORDER BY id DESC LIMIT %d OFFSET %lld", NULL, 0 };

static const gc_stmt_t audit_count = {
    "audit.count",
    "SELECT COUNT(*) FROM gcmon_audit WHERE (CAST(%s AS TEXT) IS NULL OR actor = %s) "
    "AND (CAST(%s AS TEXT) IS NULL OR action = %s) "
    "AND (CAST(%s AS TEXT) IS NULL OR target = %s) LIMIT 1", NULL, 0 };

typedef struct {
    gc_audit_rec_t *a;
    const char *target, *body;
} add_ctx_t;

static apr_status_t add_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    add_ctx_t *c = baton;
    gc_audit_rec_t *a = c->a;
    apr_int64_t at = GC_MS(a->at);
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
    rv = gc_store__select_int(s, p, &audit_insert, args, &a->id, NULL, err);
    if (rv != APR_SUCCESS) {
        return rv;
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
    apr_int64_t n = 0;
    gc_rows_t r;
    apr_status_t rv;

    args[0] = args[1] = f->actor;
    args[2] = args[3] = f->action;
    args[4] = args[5] = f->target;
    *total = 0;
    if ((rv = gc_store__select_int(s, p, &audit_count, args, &n, NULL, err)) != APR_SUCCESS) {
        return rv;
    }
    *total = (long)n;
    args[6] = &before;
    args[7] = &limit;
    args[8] = &offset;
    if ((rv = gc_store__select(s, p, &audit_list, args, &r, err)) != APR_SUCCESS) {
        return rv;
    }
    *out = apr_array_make(p, f->limit, sizeof(gc_audit_rec_t));
    *has_more = 0;
    while (gc_store__next(&r)) {
        gc_audit_rec_t *a;
        if ((*out)->nelts == f->limit) {
            *has_more = 1;
            continue;
        }
        a = apr_array_push(*out);
        a->id = gc_store__int(&r, 0);
        a->at = GC_FROM_MS(gc_store__int(&r, 1));
        a->actor = gc_store__text(&r, p, 2);
        a->action = gc_store__text(&r, p, 3);
        a->target = gc_store__text(&r, p, 4);
        a->request = gc_store__text(&r, p, 5);
        a->result = gc_store__text(&r, p, 6);
        a->status = (int)gc_store__int(&r, 7);
        a->latency_ms = gc_store__int(&r, 8);
        a->actor_source = gc_store__text(&r, p, 9);
    }
    return APR_SUCCESS;
}
