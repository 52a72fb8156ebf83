/* Retention of gcmon's records besides the history (docs/operations.md,
 * "Retention"): cleared idle alerts, the admin audit, weight distributions and
 * ended background jobs. Each kind is deleted oldest first, a chunk per
 * statement (autocommit), so a writer never waits behind more than one chunk.
 * Open alerts and jobs not ended are never deleted. */
#ifndef GC_STORE_RETENTION_H
#define GC_STORE_RETENTION_H

#include <apr_pools.h>
#include <apr_time.h>

#include "gc_store.h"

typedef enum {
    GC_RETAIN_ALERTS,        /* cleared alerts, by cleared_at */
    GC_RETAIN_AUDIT,         /* audit rows, by at */
    GC_RETAIN_DISTRIBUTIONS, /* weight distributions, by at */
    GC_RETAIN_JOBS,          /* completed or failed jobs, by completed_at */
    GC_RETAIN__COUNT
} gc_retain_kind_e;

/* The kind's name in log lines ("alerts", "audit rows", …). */
const char *gc_store_retain_name(gc_retain_kind_e kind);

/* Delete at most max rows of `kind` older than `before`; *deleted: how many. */
apr_status_t gc_store_retain_prune(struct gc_store *s, apr_pool_t *p, gc_retain_kind_e kind,
                                   apr_time_t before, int max, int *deleted, const char **err);

#endif
