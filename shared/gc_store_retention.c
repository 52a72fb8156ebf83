/* gcmon store: retention of alerts, audit, distributions and jobs
 * (gc_store_retention.h). The subselect walks the table by id from the
 * oldest row; ids grow with time, so it stops after max old rows (or at the
 * end of a table with nothing to delete, read once an hour). */
#include "gc_store_int.h"
#include "gc_store_retention.h"

typedef struct {
    const char *name;
    gc_stmt_t stmt;
} retain_t;

static const retain_t retains[GC_RETAIN__COUNT] = {
    [GC_RETAIN_ALERTS] = { "cleared alerts",
                           { "retain.alerts",
                             "DELETE FROM gcmon_alerts WHERE id IN (SELECT id FROM gcmon_alerts "
                             "WHERE cleared_at IS NOT NULL AND cleared_at < %lld "
                             "ORDER BY id LIMIT %d)",
                             NULL, 0 } },
    [GC_RETAIN_AUDIT] = { "audit rows",
                          { "retain.audit",
                            "DELETE FROM gcmon_audit WHERE id IN (SELECT id FROM gcmon_audit "
                            "WHERE at < %lld ORDER BY id LIMIT %d)",
                            NULL, 0 } },
    [GC_RETAIN_DISTRIBUTIONS] = { "weight distributions",
                                  { "retain.distributions",
                                    "DELETE FROM gcmon_distribution WHERE id IN (SELECT id FROM "
                                    "gcmon_distribution WHERE at < %lld ORDER BY id LIMIT %d)",
                                    NULL, 0 } },
    [GC_RETAIN_JOBS] = { "ended jobs",
                         { "retain.jobs",
                           "DELETE FROM gcmon_jobs WHERE id IN (SELECT id FROM gcmon_jobs "
                           "WHERE state IN ('completed', 'failed') AND completed_at < %lld "
                           "ORDER BY id LIMIT %d)",
                           NULL, 0 } },
};

const char *gc_store_retain_name(gc_retain_kind_e kind)
{
    return (unsigned)kind < GC_RETAIN__COUNT ? retains[kind].name : "?";
}

apr_status_t gc_store_retain_prune(gc_store_t *s, apr_pool_t *p, gc_retain_kind_e kind,
                                   apr_time_t before, int max, int *deleted, const char **err)
{
    apr_int64_t at = GC_MS(before);
    const void *args[2];

    *deleted = 0;
    if ((unsigned)kind >= GC_RETAIN__COUNT || max <= 0) {
        return APR_EINVAL;
    }
    args[0] = &at;
    args[1] = &max;
    return gc_store__exec(s, p, &retains[kind].stmt, args, deleted, err);
}
