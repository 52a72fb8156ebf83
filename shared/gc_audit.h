/* The audit trail of admin actions (SPEC §5.8): who did what to which object,
 * what was asked, what came of it. Rows are written by the API in the same
 * transaction as the outbox delivery an action causes, so a change is never
 * announced without its audit row or the reverse. request/result are JSON
 * text built by the caller from known fields only: never credentials. */
#ifndef GC_AUDIT_H
#define GC_AUDIT_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "gc_query.h"
#include "gc_store.h"

/* Actions (also the `action` filter values). */
#define GC_AUDIT_STATUS_CHANGE "agent_status_change"
#define GC_AUDIT_UPSTREAM_CHECK "upstream_check"
#define GC_AUDIT_WEIGHTS_DISTRIBUTE "weights_distribute"
#define GC_AUDIT_TRACE_SUBMIT "trace_submit"
#define GC_AUDIT_TRACE_COMPLETE "trace_complete"
#define GC_AUDIT_STRATEGY_CREATE "strategy_create"
#define GC_AUDIT_STRATEGY_DELETE "strategy_delete"
#define GC_AUDIT_STRATEGY_ACTIVATE "strategy_activate"
#define GC_AUDIT_STRATEGY_ACTIVATED "strategy_activation_complete"
#define GC_AUDIT_STRATEGY_REBALANCE "strategy_rebalance"
#define GC_AUDIT_STRATEGY_SYNC "strategy_sync"

typedef struct gc_audit_rec {
    apr_int64_t id; /* set by gc_store_audit_add */
    apr_time_t at;
    const char *actor;        /* who acted (GcmonAdminActor), or "-" */
    const char *actor_source; /* how: "user", "header:<Name>", "anonymous";
                                           NULL for rows written before schema v5 */
    const char *action;
    const char *target;  /* e.g. the user id; may be NULL */
    const char *request; /* JSON object text; may be NULL */
    const char *result;  /* JSON object text; may be NULL */
    int status;          /* HTTP status answered */
    apr_int64_t latency_ms;
} gc_audit_rec_t;

/* Insert *a (a->id set) and, when outbox_target is not NULL, one pending
 * outbox delivery of outbox_body to it, in one transaction. */
apr_status_t gc_store_audit_add(struct gc_store *s, apr_pool_t *p, gc_audit_rec_t *a,
                                const char *outbox_target, const char *outbox_body,
                                const char **err);

/* The same INSIDE the caller's transaction (a gc_store__tx function, see
 * gc_store_int.h): a resource's own row and its audit row in one. */
apr_status_t gc_store__audit_add(struct gc_store *s, apr_pool_t *p, gc_audit_rec_t *a,
                                 const char *outbox_target, const char *outbox_body,
                                 const char **err);

/* The listing (rows: gc_audit_rec_t), newest first by id, paged like the
 * history (gc_store_read.h): filters actor, action, target of q (NULL = any),
 * then q->limit rows after q->offset rows or below q->cursor (its id; its
 * `at` is the row's time, in µs). The total is counted on every call. */
apr_status_t gc_store_audit_list(struct gc_store *s, apr_pool_t *p, const gc_query_t *q,
                                 gc_page_t *out, const char **err);

#endif
