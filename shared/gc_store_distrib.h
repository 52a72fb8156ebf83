/* The record of weight distributions (SPEC §5.4, GET /v1/admin/distributions):
 * one row per POST …/weights that reached a verdict, written in the same
 * transaction as its audit row and its WFM webhook delivery, so a
 * distribution is never listed without its audit row or the reverse. Rows
 * live in gcmon_distribution (schema v9): the row id (`seq` here) orders the
 * listing, dist_id (`id` here) is the distribution's own ("dist-" and 32 hex
 * digits). request/result are JSON
 * text without credentials: the audit copy of the body, and the answer's
 * document (the 200 document or the problem). */
#ifndef GC_STORE_DISTRIB_H
#define GC_STORE_DISTRIB_H

#include <apr_pools.h>
#include <apr_time.h>

#include "gc_audit.h"
#include "gc_query.h"
#include "gc_store.h"

typedef struct {
    apr_int64_t seq; /* the row id, set by gc_store_distrib_add */
    const char *id;
    const char *queue_id;
    const char *status; /* completed, validation_failed, … (SPEC §3.4) */
    int http_status;
    const char *actor;
    apr_time_t at;
    int members; /* member weights requested */
    int upstream_requests;
    apr_int64_t latency_ms;
    int has_accuracy; /* balance_accuracy known (a completed distribution) */
    double balance_accuracy;
    const char *request; /* JSON object text */
    const char *result;  /* JSON object text */
} gc_distrib_rec_t;

/* Insert *d (d->seq set) with its audit row *a (gc_store_audit_add) and,
 * when outbox_target is not NULL, one outbox delivery, in one transaction. */
apr_status_t gc_store_distrib_add(struct gc_store *s, apr_pool_t *p, gc_distrib_rec_t *d,
                                  gc_audit_rec_t *a, const char *outbox_target,
                                  const char *outbox_body, const char **err);

/* The distribution `id`: *found 1 with *out set. */
apr_status_t gc_store_distrib_get(struct gc_store *s, apr_pool_t *p, const char *id,
                                  gc_distrib_rec_t *out, int *found, const char **err);

/* The listing (rows: gc_distrib_rec_t), newest first, paged like the history:
 * filter queue_id of q, then q->limit rows after q->offset rows or below
 * q->cursor (its id is the row's seq, its `at` the row's time). The total is
 * counted on every call. */
apr_status_t gc_store_distrib_list(struct gc_store *s, apr_pool_t *p, const gc_query_t *q,
                                   gc_page_t *out, const char **err);

#endif
