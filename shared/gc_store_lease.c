/* gcmon store: the stream-holder lease (SPEC §3.1: one holder per database,
 * across the children of a server and, with PostgreSQL, across hosts). */
#include <string.h>

#include <apr_strings.h>

#include "gc_log.h"
#include "gc_store_int.h"

static const gc_stmt_t lease_insert = {
    "lease.insert",
    "INSERT INTO gcmon_lease (name, holder, expires_at, acquired_at) "
    "VALUES (%s, %s, %lld, %lld) ON CONFLICT DO NOTHING",
    NULL, 0
};

/* Taken when it is ours or has expired; a renewal keeps acquired_at. */
static const gc_stmt_t lease_take = {
    "lease.take",
    "UPDATE gcmon_lease SET acquired_at = CASE WHEN holder = %s AND expires_at >= %lld "
    "THEN acquired_at ELSE %lld END, holder = %s, expires_at = %lld "
    "WHERE name = %s AND (holder = %s OR expires_at < %lld)",
    NULL, 0
};

static const gc_stmt_t lease_read = {
    "lease.read",
    "SELECT holder, expires_at, acquired_at, state FROM gcmon_lease WHERE name = %s LIMIT 1", NULL,
    0
};

static const gc_stmt_t lease_state = {
    "lease.state",
    "UPDATE gcmon_lease SET state = %s WHERE name = %s AND holder = %s AND expires_at >= %lld",
    NULL, 0
};

static const gc_stmt_t lease_release = {
    "lease.release", "UPDATE gcmon_lease SET expires_at = 0 WHERE name = %s AND holder = %s", NULL,
    0
};

/* Short-lived leases (per-agent status-change locks) are deleted, not kept. */
static const gc_stmt_t lease_delete = { "lease.delete",
                                        "DELETE FROM gcmon_lease WHERE name = %s AND holder = %s",
                                        NULL, 0 };

typedef struct {
    const char *name, *holder;
    apr_int64_t now_ms, expires_ms;
    const char *state_in;
    const char *current, *state;
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
    gc_rows_t r;
    apr_status_t rv;
    const void *ins[4], *take[8], *rd[1], *st[4];

    ins[0] = l->name;
    ins[1] = l->holder;
    ins[2] = &l->expires_ms;
    ins[3] = &l->now_ms;
    if ((rv = gc_store__exec(s, p, &lease_insert, ins, NULL, err)) != APR_SUCCESS) {
        return rv;
    }
    take[0] = l->holder; /* CASE WHEN holder = ? AND expires_at >= now */
    take[1] = &l->now_ms;
    take[2] = &l->now_ms; /* ELSE acquired_at = now */
    take[3] = l->holder;
    take[4] = &l->expires_ms;
    take[5] = l->name;
    take[6] = l->holder;
    take[7] = &l->now_ms;
    if ((rv = gc_store__exec(s, p, &lease_take, take, NULL, err)) != APR_SUCCESS) {
        return rv;
    }
    if (l->state_in) {
        st[0] = l->state_in;
        st[1] = l->name;
        st[2] = l->holder;
        st[3] = &l->now_ms;
        if ((rv = gc_store__exec(s, p, &lease_state, st, NULL, err)) != APR_SUCCESS) {
            return rv;
        }
    }
    rd[0] = l->name;
    if ((rv = gc_store__select(s, p, &lease_read, rd, &r, err)) != APR_SUCCESS) {
        return rv;
    }
    l->current = NULL;
    while (gc_store__next(&r)) {
        l->current = gc_store__text(&r, l->out_pool, 0);
        l->current_expires = gc_store__int(&r, 1);
        l->state = gc_store__text(&r, l->out_pool, 3);
    }
    if (!l->current) {
        *err = "lease row vanished";
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t gc_store_lease(gc_store_t *s, const char *name, const char *holder, apr_time_t now,
                            apr_interval_time_t ttl, int *held, const char **current, apr_pool_t *p)
{
    return gc_store_lease_state(s, name, holder, now, ttl, NULL, held, current, NULL, p);
}

apr_status_t gc_store_lease_state(gc_store_t *s, const char *name, const char *holder,
                                  apr_time_t now, apr_interval_time_t ttl, const char *state_in,
                                  int *held, const char **current, const char **state_out,
                                  apr_pool_t *p)
{
    lease_ctx_t l;
    apr_pool_t *tp;
    apr_status_t rv;
    const char *err = NULL;

    *held = 0;
    if (current) {
        *current = NULL;
    }
    if (state_out) {
        *state_out = "";
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
    l.state_in = state_in;
    rv = gc_store__tx(s, tp, lease_tx, &l, &err);
    if (rv == APR_SUCCESS) {
        *held = strcmp(l.current, holder) == 0 && l.current_expires >= l.now_ms;
        if (current) {
            *current = l.current;
        }
        if (state_out && l.state) {
            *state_out = l.state;
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
    rv = gc_store__exec(s, tp, &lease_release, args, NULL, &err);
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
    rv = gc_store__exec(s, p, &lease_delete, args, NULL, &err);
    if (rv != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, rv,
               GCMON_LOGNO(418) "store: deleting lease "
                                "'%s': %s (it expires by itself)",
               name, err);
    }
    return rv;
}

apr_status_t gc_store_lease_get(gc_store_t *s, apr_pool_t *p, const char *name, const char **holder,
                                apr_time_t *expires_at, apr_time_t *acquired_at)
{
    apr_pool_t *tp;
    gc_rows_t r;
    apr_status_t rv;
    const char *err = NULL;
    const void *args[1];
    int found = 0;

    if (apr_pool_create(&tp, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    args[0] = name;
    rv = gc_store__select(s, tp, &lease_read, args, &r, &err);
    if (rv == APR_SUCCESS) {
        while (gc_store__next(&r)) {
            found = 1;
            if (holder) {
                *holder = gc_store__text(&r, p, 0);
            }
            if (expires_at) {
                *expires_at = GC_FROM_MS(gc_store__int(&r, 1));
            }
            if (acquired_at) {
                *acquired_at = GC_FROM_MS(gc_store__int(&r, 2));
            }
        }
        if (!found) {
            rv = APR_NOTFOUND;
        }
    }
    apr_pool_destroy(tp);
    return rv;
}
