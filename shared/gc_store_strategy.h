/* The routing strategies (SPEC §3.6, §5.6): gcmon's own objects, one row per
 * strategy in gcmon_strategy (schema v11). The row id (`seq`) orders the
 * listing; `id` is the strategy's own ("strat-" and 32 hex digits). `body`
 * is the canonical JSON of gc_strategy_json (the weights included, so a
 * rebalance rewrites it); `validation` the live report of the last
 * validation; `live` the holder's last observations of the targets (the
 * route table is compiled from body + live on every host).
 *
 * Status: draft → activating (activate) → active | failed (the activation
 * job's end); failed → activating again; active stays active (rebalanced in
 * place). Only draft and failed may be deleted. Every change of a row is
 * written with its audit row (and its WFM outbox delivery, when asked) in one
 * transaction, and bumps `revision` (the route table's generation source). */
#ifndef GC_STORE_STRATEGY_H
#define GC_STORE_STRATEGY_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "gc_audit.h"
#include "gc_jobs.h"
#include "gc_query.h"
#include "gc_store.h"

#define GC_STRATEGY_DRAFT "draft"
#define GC_STRATEGY_ACTIVATING "activating"
#define GC_STRATEGY_ACTIVE "active"
#define GC_STRATEGY_FAILED "failed"

typedef struct {
    apr_int64_t seq; /* the row id, set by gc_store_strategy_add */
    const char *id;
    const char *name;
    const char *status;        /* GC_STRATEGY_* */
    const char *body;          /* canonical JSON (gc_strategy_json) */
    const char *validation;    /* JSON report of the last live validation, or NULL */
    const char *error_message; /* failed: why; else NULL */
    const char *job_id;        /* the last activation job, or NULL */
    const char *actor;         /* who created it */
    apr_time_t created_at;
    apr_time_t updated_at;
    apr_time_t activated_at;  /* 0 until first active */
    apr_time_t rebalanced_at; /* 0 until first rebalanced */
    const char *live;         /* JSON: the holder's last observations, or NULL */
    apr_time_t observed_at;   /* when `live` was read upstream; 0: never */
    apr_int64_t revision;     /* 1 at creation, + 1 on every write */
} gc_strategy_rec_t;

/* Insert *r (r->seq set; revision 1) with its audit row *a and, when
 * outbox_target is not NULL, one outbox delivery, in one transaction. */
apr_status_t gc_store_strategy_add(struct gc_store *s, apr_pool_t *p, gc_strategy_rec_t *r,
                                   gc_audit_rec_t *a, const char *outbox_target,
                                   const char *outbox_body, const char **err);

/* The strategy `id`: *found 1 with *out set. */
apr_status_t gc_store_strategy_get(struct gc_store *s, apr_pool_t *p, const char *id,
                                   gc_strategy_rec_t *out, int *found, const char **err);

/* The listing (rows: gc_strategy_rec_t), newest first, paged like the
 * history: filter q->state (a status), then q->limit rows after q->offset rows
 * or below q->cursor. The total is counted on every call. */
apr_status_t gc_store_strategy_list(struct gc_store *s, apr_pool_t *p, const gc_query_t *q,
                                    gc_page_t *out, const char **err);

/* Every active strategy (rows: gc_strategy_rec_t, by seq; at most
 * GC_STORE_STRATEGY_MAX_ACTIVE), for the holder's observations and every
 * host's route tables. */
#define GC_STORE_STRATEGY_MAX_ACTIVE 1000
apr_status_t gc_store_strategy_active(struct gc_store *s, apr_pool_t *p, apr_array_header_t **rows,
                                      const char **err);

/* The outcome of a conditional change. */
typedef enum {
    GC_STRATEGY_CHANGED, /* done (with the audit row) */
    GC_STRATEGY_MISSING, /* no such strategy: nothing written */
    GC_STRATEGY_CONFLICT /* its status forbids it: nothing written; *status says */
} gc_strategy_change_e;

/* Delete `id` when its status is draft or failed, with the audit row *a, in
 * one transaction. *status (from p): the status it had. */
apr_status_t gc_store_strategy_delete(struct gc_store *s, apr_pool_t *p, const char *id,
                                      gc_audit_rec_t *a, gc_strategy_change_e *outcome,
                                      const char **status, const char **err);

/* Start an activation: when `id` is draft or failed, set it activating
 * (job_id = job->id, error_message NULL, validation kept, updated_at =
 * job->created_at), queue the job
 * (gc_store_jobs_submit's rules) and write the audit row *a, in one
 * transaction. */
apr_status_t gc_store_strategy_activate(struct gc_store *s, apr_pool_t *p, const char *id,
                                        const gc_job_t *job, gc_audit_rec_t *a,
                                        gc_strategy_change_e *outcome, const char **status,
                                        const char **err);

/* The activation's end, by its job: when `id` is activating with job_id,
 * set status (active or failed), error_message (failed: why; NULL clears)
 * and, when active, activated_at = now. *kept 0 when the row was not that
 * job's activation any more (nothing written). Not audited here: the job's
 * finish writes its audit row. */
apr_status_t gc_store_strategy_settle(struct gc_store *s, apr_pool_t *p, const char *id,
                                      const char *job_id, const char *status,
                                      const char *error_message, apr_time_t now, int *kept,
                                      const char **err);

/* New weights (a rebalance): body (the canonical JSON with them),
 * rebalanced_at = now, with the audit row *a (may be NULL) and, when
 * outbox_target is not NULL, one outbox delivery, in one transaction. When
 * expect_revision > 0 the row must still be at that revision (else CONFLICT:
 * someone changed it meanwhile). An activating strategy is not reweighed
 * (CONFLICT: its activation applies the body it read). */
apr_status_t gc_store_strategy_reweigh(struct gc_store *s, apr_pool_t *p, const char *id,
                                       apr_int64_t expect_revision, const char *body,
                                       apr_time_t now, gc_audit_rec_t *a, const char *outbox_target,
                                       const char *outbox_body, gc_strategy_change_e *outcome,
                                       const char **err);

/* The validation report of a re-validation (JSON text); bumps revision,
 * not audited. */
apr_status_t gc_store_strategy_set_validation(struct gc_store *s, apr_pool_t *p, const char *id,
                                              const char *validation, apr_time_t now,
                                              const char **err);

/* The holder's observations of an active strategy's targets (JSON text,
 * see gc_strategy_live.h) and when they were read. Not audited; does not
 * bump revision (the route table's age comes from observed_at). */
apr_status_t gc_store_strategy_set_live(struct gc_store *s, apr_pool_t *p, const char *id,
                                        const char *live, apr_time_t observed_at, const char **err);

#endif
