/* gcmon store: the record of weight distributions (gc_store_distrib.h). */
#include <stdlib.h>
#include <string.h>

#include "gc_store_distrib.h"
#include "gc_store_int.h"

#define COLS                                                                              \
    "id, dist_id, queue_id, status, http_status, actor, at, members, upstream_requests, " \
    "latency_ms, "                                                                        \
    "balance_accuracy, request, result"

static const gc_stmt_t distrib_insert = {
    "distrib.insert",
    "INSERT INTO gcmon_distribution (dist_id, queue_id, status, http_status, actor, at, members, "
    "upstream_requests, latency_ms, balance_accuracy, request, result) "
    "VALUES (%s, %s, %s, %d, %s, %lld, %d, %d, %lld, %lf, %s, %s) RETURNING id",
    NULL, 0
};

static const gc_stmt_t distrib_get = {
    "distrib.get", "SELECT " COLS " FROM gcmon_distribution WHERE dist_id = %s LIMIT 1", NULL, 0
};

typedef struct {
    gc_distrib_rec_t *d;
    gc_audit_rec_t *a;
    const char *target, *body;
} add_ctx_t;

static apr_status_t add_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    add_ctx_t *c = baton;
    gc_distrib_rec_t *d = c->d;
    apr_int64_t at = GC_MS(d->at);
    const void *args[12];
    apr_status_t rv;

    args[0] = d->id;
    args[1] = d->queue_id;
    args[2] = d->status;
    args[3] = &d->http_status;
    args[4] = d->actor;
    args[5] = &at;
    args[6] = &d->members;
    args[7] = &d->upstream_requests;
    args[8] = &d->latency_ms;
    args[9] = d->has_accuracy ? &d->balance_accuracy : NULL;
    args[10] = d->request ? d->request : "{}";
    args[11] = d->result ? d->result : "{}";
    rv = gc_store__select_int(s, p, &distrib_insert, args, &d->seq, NULL, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return gc_store__audit_add(s, p, c->a, c->target, c->body, err);
}

apr_status_t gc_store_distrib_add(gc_store_t *s, apr_pool_t *p, gc_distrib_rec_t *d,
                                  gc_audit_rec_t *a, const char *outbox_target,
                                  const char *outbox_body, const char **err)
{
    add_ctx_t c;

    if (!d->id || !d->queue_id || !d->status || !d->actor || !a->actor || !a->action) {
        *err = "distribution: a row needs an id, a queue, a status and an actor";
        return APR_EINVAL;
    }
    c.d = d;
    c.a = a;
    c.target = outbox_target;
    c.body = outbox_body;
    return gc_store__tx(s, p, add_tx, &c, err);
}

static void distrib_row(gc_rows_t *r, apr_pool_t *p, void *out)
{
    gc_distrib_rec_t *d = out;
    const char *acc;

    d->seq = gc_store__int(r, 0);
    d->id = gc_store__text(r, p, 1);
    d->queue_id = gc_store__text(r, p, 2);
    d->status = gc_store__text(r, p, 3);
    d->http_status = (int)gc_store__int(r, 4);
    d->actor = gc_store__text(r, p, 5);
    d->at = GC_FROM_MS(gc_store__int(r, 6));
    d->members = (int)gc_store__int(r, 7);
    d->upstream_requests = (int)gc_store__int(r, 8);
    d->latency_ms = gc_store__int(r, 9);
    acc = gc_store__text(r, p, 10);
    d->has_accuracy = acc != NULL;
    d->balance_accuracy = acc ? strtod(acc, NULL) : 0;
    d->request = gc_store__text(r, p, 11);
    d->result = gc_store__text(r, p, 12);
}

apr_status_t gc_store_distrib_get(gc_store_t *s, apr_pool_t *p, const char *id,
                                  gc_distrib_rec_t *out, int *found, const char **err)
{
    const void *args[1];

    args[0] = id;
    return gc_store__first(s, p, &distrib_get, args, distrib_row, out, sizeof(*out), found, err);
}

static void distrib_position(const void *row, gc_cursor_t *at)
{
    const gc_distrib_rec_t *d = row;

    at->at = d->at;
    at->id = d->seq;
}

/* Newest first by the row id; the queue filter walks (queue_id, id DESC). */
static const gc_listing_t distrib_listing = { "distrib",
                                              "gcmon_distribution",
                                              COLS,
                                              NULL,
                                              0,
                                              { { GC_Q_QUEUE_ID, "queue_id = %s" } },
                                              sizeof(gc_distrib_rec_t),
                                              distrib_row,
                                              distrib_position };

apr_status_t gc_store_distrib_list(gc_store_t *s, apr_pool_t *p, const gc_query_t *q,
                                   gc_page_t *out, const char **err)
{
    return gc_store__list(s, p, &distrib_listing, q, out, err);
}
