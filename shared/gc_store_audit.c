/* gcmon store: the audit trail (gc_audit.h). */
#include <apr_strings.h>

#include "gc_audit.h"
#include "gc_outbox.h"
#include "gc_store_int.h"

static const gc_stmt_t audit_insert = {
    "audit.insert",
    "INSERT INTO gcmon_audit (at, actor, action, target, request, result, status, "
    "latency_ms, actor_source) VALUES (%lld, %s, %s, %s, %s, %s, %d, %lld, %s) "
    "RETURNING id",
    NULL, 0
};

typedef struct {
    gc_audit_rec_t *a;
    const char *target, *body;
} add_ctx_t;

apr_status_t gc_store__audit_add(gc_store_t *s, apr_pool_t *p, gc_audit_rec_t *a,
                                 const char *outbox_target, const char *outbox_body,
                                 const char **err)
{
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
    if (outbox_target) {
        return gc_store__outbox_add(s, p, outbox_target, NULL, outbox_body, a->at, err);
    }
    return APR_SUCCESS;
}

static apr_status_t add_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    add_ctx_t *c = baton;

    return gc_store__audit_add(s, p, c->a, c->target, c->body, err);
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

static void audit_row(gc_rows_t *r, apr_pool_t *p, void *out)
{
    gc_audit_rec_t *a = out;

    a->id = gc_store__int(r, 0);
    a->at = GC_FROM_MS(gc_store__int(r, 1));
    a->actor = gc_store__text(r, p, 2);
    a->action = gc_store__text(r, p, 3);
    a->target = gc_store__text(r, p, 4);
    a->request = gc_store__text(r, p, 5);
    a->result = gc_store__text(r, p, 6);
    a->status = (int)gc_store__int(r, 7);
    a->latency_ms = gc_store__int(r, 8);
    a->actor_source = gc_store__text(r, p, 9);
}

static void audit_position(const void *row, gc_cursor_t *at)
{
    const gc_audit_rec_t *a = row;

    at->at = a->at;
    at->id = a->id;
}

/* Newest first by id; the filtered listings walk the (actor|action|target,
 * id DESC) indexes (gc_store_schema.c v4). Admin actions are few: counted every
 * time. */
static const gc_listing_t audit_listing = {
    "audit",
    "gcmon_audit",
    "id, at, actor, action, target, request, result, status, latency_ms, actor_source",
    NULL,
    0,
    { { GC_Q_ACTOR, "actor = %s" },
      { GC_Q_ACTION, "action = %s" },
      { GC_Q_TARGET, "target = %s" } },
    sizeof(gc_audit_rec_t),
    audit_row,
    audit_position
};

apr_status_t gc_store_audit_list(gc_store_t *s, apr_pool_t *p, const gc_query_t *q, gc_page_t *out,
                                 const char **err)
{
    return gc_store__list(s, p, &audit_listing, q, out, err);
}
