/* gcmon store: the outbox of outbound webhooks (gc_outbox.h). A row names its
 * target, never the URL; `attempts` counts the delivery passes recorded by
 * gc_store_outbox_result (every outcome counts one). */
#include <apr_strings.h>

#include "gc_log.h"
#include "gc_outbox.h"
#include "gc_store_int.h"

static const gc_stmt_t outbox_insert = {
    "outbox.insert",
    "INSERT INTO gcmon_outbox (target, alert_id, body, created_at, next_at) "
    "VALUES (%s, %lld, %s, %lld, %lld)",
    NULL, 0
};

static const gc_stmt_t outbox_due = {
    "outbox.due",
    "SELECT id, target, alert_id, body, created_at, next_at, attempts FROM gcmon_outbox "
    "WHERE status = 'pending' AND next_at <= %lld ORDER BY id LIMIT %d",
    NULL, 0
};

static const gc_stmt_t outbox_pending = {
    "outbox.pending",
    "SELECT MIN(next_at), COUNT(*) FROM gcmon_outbox WHERE status = 'pending' LIMIT 1", NULL, 0
};

static const gc_stmt_t outbox_result = {
    "outbox.result",
    "UPDATE gcmon_outbox SET status = %s, attempts = attempts + 1, "
    "next_at = COALESCE(%lld, next_at), last_error = COALESCE(%s, last_error), "
    "done_at = %lld WHERE id = %lld AND status = 'pending'",
    NULL, 0
};

/* An alert's delivery columns follow its outbox row. */
static const gc_stmt_t outbox_alert_mirror = {
    "outbox.alert_mirror",
    "UPDATE gcmon_alerts SET delivery_status = %s, "
    "delivery_attempts = (SELECT o.attempts FROM gcmon_outbox o WHERE o.id = %lld), "
    "delivery_last_error = (SELECT o.last_error FROM gcmon_outbox o WHERE o.id = %lld) "
    "WHERE id = (SELECT o.alert_id FROM gcmon_outbox o WHERE o.id = %lld)",
    NULL, 0
};

static const gc_stmt_t outbox_prune = {
    "outbox.prune",
    "DELETE FROM gcmon_outbox WHERE id IN (SELECT id FROM gcmon_outbox "
    "WHERE status <> 'pending' AND done_at < %lld ORDER BY id LIMIT %d)",
    NULL, 0
};

apr_status_t gc_store__outbox_add(gc_store_t *s, apr_pool_t *p, const char *target,
                                  const apr_int64_t *alert_id, const char *body, apr_time_t now,
                                  const char **err)
{
    apr_int64_t at = GC_MS(now);
    const void *args[5];

    if (!target || !body) {
        *err = "outbox: a row needs a target and a body";
        return APR_EINVAL;
    }
    args[0] = target;
    args[1] = alert_id;
    args[2] = body;
    args[3] = &at;
    args[4] = &at;
    return gc_store__exec(s, p, &outbox_insert, args, NULL, err);
}

typedef struct {
    const char *target;
    const apr_int64_t *alert_id;
    const char *body;
    apr_time_t now;
} add_ctx_t;

static apr_status_t add_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    add_ctx_t *a = baton;

    return gc_store__outbox_add(s, p, a->target, a->alert_id, a->body, a->now, err);
}

apr_status_t gc_store_outbox_add(gc_store_t *s, apr_pool_t *p, const char *target,
                                 const apr_int64_t *alert_id, const char *body, apr_time_t now,
                                 const char **err)
{
    add_ctx_t a;

    a.target = target;
    a.alert_id = alert_id;
    a.body = body;
    a.now = now;
    return gc_store__tx(s, p, add_tx, &a, err);
}

apr_status_t gc_store_outbox_due(gc_store_t *s, apr_pool_t *p, apr_time_t now, int max,
                                 apr_array_header_t **out, const char **err)
{
    gc_rows_t r;
    apr_int64_t at = GC_MS(now);
    const void *args[2];
    apr_status_t rv;

    if (max <= 0) {
        max = 1;
    }
    *out = apr_array_make(p, max < 64 ? max : 64, sizeof(gc_outbox_row_t));
    args[0] = &at;
    args[1] = &max;
    rv = gc_store__select(s, p, &outbox_due, args, &r, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    while (gc_store__next(&r)) {
        gc_outbox_row_t *o = apr_array_push(*out);
        o->id = gc_store__int(&r, 0);
        o->target = gc_store__text(&r, p, 1);
        o->alert_id = gc_store__int(&r, 2);
        o->body = gc_store__text(&r, p, 3);
        o->created_at = GC_FROM_MS(gc_store__int(&r, 4));
        o->next_at = GC_FROM_MS(gc_store__int(&r, 5));
        o->attempts = (int)gc_store__int(&r, 6);
        if (!o->target) {
            o->target = "";
        }
        if (!o->body) {
            o->body = "";
        }
    }
    return APR_SUCCESS;
}

apr_status_t gc_store_outbox_pending(gc_store_t *s, apr_pool_t *p, apr_time_t *next_at, long *count,
                                     const char **err)
{
    gc_rows_t r;
    apr_status_t rv;

    *next_at = 0;
    *count = 0;
    rv = gc_store__select(s, p, &outbox_pending, NULL, &r, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    while (gc_store__next(&r)) {
        /* MIN() of no rows is NULL: read as 0. */
        *next_at = GC_FROM_MS(gc_store__int(&r, 0));
        *count = (long)gc_store__int(&r, 1);
    }
    return APR_SUCCESS;
}

typedef struct {
    apr_int64_t id;
    gc_outbox_outcome_e outcome;
    apr_time_t now, next_at;
    const char *last_error;
} result_ctx_t;

static const char *outcome_status(gc_outbox_outcome_e o)
{
    switch (o) {
    case GC_OUTBOX_DELIVERED: return "delivered";
    case GC_OUTBOX_RETRY: return "pending";
    default: return "failed";
    }
}

/* The outbox row first (only while still pending: a row confirmed delivered
 * is never touched again), then its alert, from the row's updated values. */
static apr_status_t result_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    result_ctx_t *c = baton;
    const char *status = outcome_status(c->outcome);
    apr_int64_t next = GC_MS(c->next_at), done = GC_MS(c->now);
    const void *args[5];
    apr_status_t rv;
    int n = 0;

    args[0] = status;
    args[1] = c->outcome == GC_OUTBOX_RETRY ? &next : NULL;
    args[2] = c->last_error;
    args[3] = c->outcome == GC_OUTBOX_RETRY ? NULL : &done;
    args[4] = &c->id;
    rv = gc_store__exec(s, p, &outbox_result, args, &n, err);
    if (rv != APR_SUCCESS || n == 0) {
        return rv;
    }
    args[0] = status;
    args[1] = &c->id;
    args[2] = &c->id;
    args[3] = &c->id;
    return gc_store__exec(s, p, &outbox_alert_mirror, args, NULL, err);
}

apr_status_t gc_store_outbox_result(gc_store_t *s, apr_pool_t *p, apr_int64_t id,
                                    gc_outbox_outcome_e outcome, apr_time_t now, apr_time_t next_at,
                                    const char *last_error, const char **err)
{
    result_ctx_t c;

    c.id = id;
    c.outcome = outcome;
    c.now = now;
    c.next_at = next_at;
    c.last_error = outcome == GC_OUTBOX_DELIVERED ? NULL : last_error;
    return gc_store__tx(s, p, result_tx, &c, err);
}

apr_status_t gc_store_outbox_prune(gc_store_t *s, apr_pool_t *p, apr_time_t before, int max,
                                   int *deleted, const char **err)
{
    apr_int64_t at = GC_MS(before);
    const void *args[2];

    *deleted = 0;
    args[0] = &at;
    args[1] = &max;
    return gc_store__exec(s, p, &outbox_prune, args, deleted, err);
}
