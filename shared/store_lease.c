/* gcmon store: the stream-holder lease (SPEC §3.1: one holder per database,
 * across the children of a server and, with PostgreSQL, across hosts). */
#include <string.h>

#include <apr_strings.h>

#include "gc_log.h"
#include "store_private.h"

typedef struct {
    const char *name, *holder;
    apr_int64_t now_ms, expires_ms;
    const char *current;
    apr_int64_t current_expires;
    apr_pool_t *out_pool;
} lease_ctx_t;

/* One transaction: create the row if absent, take it when it is ours or has
 * expired, read back who holds it. The UPDATE's WHERE is evaluated against
 * the row as locked (sqlite3: BEGIN IMMEDIATE serialises writers; PostgreSQL:
 * the row lock re-checks the condition), so two contenders can never both
 * succeed while the lease is unexpired. */
static apr_status_t lease_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    lease_ctx_t *l = baton;
    apr_dbd_results_t *res;
    apr_dbd_row_t *row = NULL;
    apr_status_t rv;
    const void *ins[4], *take[8], *rd[1];

    ins[0] = l->name;
    ins[1] = l->holder;
    ins[2] = &l->expires_ms;
    ins[3] = &l->now_ms;
    if ((rv = gc_store__exec(s, p, ST_LEASE_INSERT, ins, NULL, err)) != APR_SUCCESS) {
        return rv;
    }
    take[0] = l->holder;            /* CASE WHEN holder = ? AND expires_at >= now */
    take[1] = &l->now_ms;
    take[2] = &l->now_ms;           /* ELSE acquired_at = now */
    take[3] = l->holder;
    take[4] = &l->expires_ms;
    take[5] = l->name;
    take[6] = l->holder;
    take[7] = &l->now_ms;
    if ((rv = gc_store__exec(s, p, ST_LEASE_TAKE, take, NULL, err)) != APR_SUCCESS) {
        return rv;
    }
    rd[0] = l->name;
    if ((rv = gc_store__select(s, p, ST_LEASE_READ, rd, &res, err)) != APR_SUCCESS) {
        return rv;
    }
    l->current = NULL;
    while (gc_store__row(s, p, res, &row)) {
        l->current = gc_store__text(s, l->out_pool, row, 0);
        l->current_expires = gc_store__int(s, row, 1);
    }
    if (!l->current) {
        *err = "lease row vanished";
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t gc_store_lease(gc_store_t *s, const char *name, const char *holder,
                            apr_time_t now, apr_interval_time_t ttl, int *held,
                            const char **current, apr_pool_t *p)
{
    lease_ctx_t l;
    apr_pool_t *tp;
    apr_status_t rv;
    const char *err = NULL;

    *held = 0;
    if (current) {
        *current = NULL;
    }
    if (!name || !holder || !*holder || ttl <= 0) {
        return APR_EINVAL;
    }
    if (apr_pool_create(&tp, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    memset(&l, 0, sizeof(l));
    l.name = name;
    l.holder = holder;
    l.now_ms = GC_MS(now);
    l.expires_ms = GC_MS(now + ttl);
    l.out_pool = p;
    rv = gc_store__tx(s, tp, lease_tx, &l, &err);
    if (rv == APR_SUCCESS) {
        *held = strcmp(l.current, holder) == 0 && l.current_expires >= l.now_ms;
        if (current) {
            *current = l.current;
        }
    }
    else {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, rv, GCMON_LOGNO(409) "store: lease '%s': %s", name,
               err ? err : "database error");
    }
    apr_pool_destroy(tp);
    return rv;
}

apr_status_t gc_store_lease_release(gc_store_t *s, const char *name, const char *holder)
{
    apr_pool_t *tp;
    apr_status_t rv;
    const char *err = NULL;
    const void *args[2];

    if (!name || !holder) {
        return APR_EINVAL;
    }
    if (apr_pool_create(&tp, s->pool) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    args[0] = name;
    args[1] = holder;
    rv = gc_store__exec(s, tp, ST_LEASE_RELEASE, args, NULL, &err);
    if (rv != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, rv, GCMON_LOGNO(410) "store: releasing lease '%s': %s",
               name, err);
    }
    apr_pool_destroy(tp);
    return rv;
}

apr_status_t gc_store_lease_delete(gc_store_t *s, apr_pool_t *p, const char *name,
                                  const char *holder)
{
    const char *err = NULL;
    const void *args[2];
    apr_status_t rv;

    args[0] = name;
    args[1] = holder;
    rv = gc_store__exec(s, p, ST_LEASE_DELETE, args, NULL, &err);
    if (rv != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, rv, GCMON_LOGNO(418) "store: deleting lease "
               "'%s': %s (it expires by itself)", name, err);
    }
    return rv;
}

apr_status_t gc_store_lease_get(gc_store_t *s, apr_pool_t *p, const char *name,
                                const char **holder, apr_time_t *expires_at,
                                apr_time_t *acquired_at)
{
    apr_pool_t *tp;
    apr_dbd_results_t *res;
    apr_dbd_row_t *row = NULL;
    apr_status_t rv;
    const char *err = NULL;
    const void *args[1];
    int found = 0;

    if (apr_pool_create(&tp, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    args[0] = name;
    rv = gc_store__select(s, tp, ST_LEASE_READ, args, &res, &err);
    if (rv == APR_SUCCESS) {
        while (gc_store__row(s, tp, res, &row)) {
            found = 1;
            if (holder) {
                *holder = gc_store__text(s, p, row, 0);
            }
            if (expires_at) {
                *expires_at = GC_FROM_MS(gc_store__int(s, row, 1));
            }
            if (acquired_at) {
                *acquired_at = GC_FROM_MS(gc_store__int(s, row, 2));
            }
        }
        if (!found) {
            rv = APR_NOTFOUND;
        }
    }
    apr_pool_destroy(tp);
    return rv;
}
