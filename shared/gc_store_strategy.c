/* gcmon store: the routing strategies (gc_store_strategy.h).
 *
 * A conditional change (delete, activate, reweigh) is one transaction that
 * first reads the row's status and revision — locked on PostgreSQL (FOR
 * UPDATE); on SQLite BEGIN IMMEDIATE already serialises writers — decides,
 * then writes the row with the same condition in its WHERE and, only when it
 * changed, the audit row (and the job, the outbox delivery). */
#include <string.h>

#include <apr_strings.h>

#include "gc_outbox.h"
#include "gc_store_int.h"
#include "gc_store_strategy.h"

#define COLS                                                                          \
    "id, strategy_id, name, status, body, validation, error_message, job_id, actor, " \
    "created_at, updated_at, activated_at, rebalanced_at, live, observed_at, revision"

/* The statuses a strategy may be deleted or activated from. */
#define SETTLED "status IN ('" GC_STRATEGY_DRAFT "', '" GC_STRATEGY_FAILED "')"

static const gc_stmt_t strategy_insert = {
    "strategy.insert",
    "INSERT INTO gcmon_strategy (strategy_id, name, status, body, validation, error_message, "
    "job_id, actor, created_at, updated_at, activated_at, rebalanced_at, live, observed_at, "
    "revision) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %lld, %lld, %lld, %lld, %s, %lld, 1) "
    "RETURNING id",
    NULL, 0
};

static const gc_stmt_t strategy_get = {
    "strategy.get", "SELECT " COLS " FROM gcmon_strategy WHERE strategy_id = %s LIMIT 1", NULL, 0
};

static const gc_stmt_t strategy_lock = {
    "strategy.lock", "SELECT status, revision FROM gcmon_strategy WHERE strategy_id = %s LIMIT 1",
    "SELECT status, revision FROM gcmon_strategy WHERE strategy_id = %s LIMIT 1 FOR UPDATE", 0
};

static const gc_stmt_t strategy_active = {
    "strategy.active",
    "SELECT " COLS " FROM gcmon_strategy WHERE status = '" GC_STRATEGY_ACTIVE
    "' ORDER BY id LIMIT %d",
    NULL, 0
};

static const gc_stmt_t strategy_delete = {
    "strategy.delete", "DELETE FROM gcmon_strategy WHERE strategy_id = %s AND " SETTLED, NULL, 0
};

static const gc_stmt_t strategy_activate = {
    "strategy.activate",
    "UPDATE gcmon_strategy SET status = '" GC_STRATEGY_ACTIVATING
    "', job_id = %s, error_message = NULL, updated_at = %lld, revision = revision + 1 "
    "WHERE strategy_id = %s AND " SETTLED,
    NULL, 0
};

static const gc_stmt_t strategy_settle = {
    "strategy.settle",
    "UPDATE gcmon_strategy SET status = %s, error_message = %s, "
    "activated_at = COALESCE(%lld, activated_at), updated_at = %lld, revision = revision + 1 "
    "WHERE strategy_id = %s AND status = '" GC_STRATEGY_ACTIVATING "' AND job_id = %s",
    NULL, 0
};

static const gc_stmt_t strategy_reweigh = {
    "strategy.reweigh",
    "UPDATE gcmon_strategy SET body = %s, rebalanced_at = %lld, updated_at = %lld, "
    "revision = revision + 1 WHERE strategy_id = %s AND status <> '" GC_STRATEGY_ACTIVATING
    "' AND revision = %lld",
    NULL, 0
};

static const gc_stmt_t strategy_validation = {
    "strategy.validation",
    "UPDATE gcmon_strategy SET validation = %s, updated_at = %lld, revision = revision + 1 "
    "WHERE strategy_id = %s",
    NULL, 0
};

static const gc_stmt_t strategy_live = {
    "strategy.live",
    "UPDATE gcmon_strategy SET live = %s, observed_at = %lld WHERE strategy_id = %s", NULL, 0
};

/* A time column: NULL for 0 (never). */
static const void *time_arg(apr_time_t t, apr_int64_t *ms)
{
    *ms = GC_MS(t);
    return t ? ms : NULL;
}

static void strategy_row(gc_rows_t *r, apr_pool_t *p, void *out)
{
    gc_strategy_rec_t *s = out;

    s->seq = gc_store__int(r, 0);
    s->id = gc_store__text(r, p, 1);
    s->name = gc_store__text(r, p, 2);
    s->status = gc_store__text(r, p, 3);
    s->body = gc_store__text(r, p, 4);
    s->validation = gc_store__text(r, p, 5);
    s->error_message = gc_store__text(r, p, 6);
    s->job_id = gc_store__text(r, p, 7);
    s->actor = gc_store__text(r, p, 8);
    s->created_at = GC_FROM_MS(gc_store__int(r, 9));
    s->updated_at = GC_FROM_MS(gc_store__int(r, 10));
    s->activated_at = GC_FROM_MS(gc_store__int(r, 11));
    s->rebalanced_at = GC_FROM_MS(gc_store__int(r, 12));
    s->live = gc_store__text(r, p, 13);
    s->observed_at = GC_FROM_MS(gc_store__int(r, 14));
    s->revision = gc_store__int(r, 15);
}

/* ---------------------------------------------------------------- add */

typedef struct {
    gc_strategy_rec_t *r;
    gc_audit_rec_t *a;
    const char *target, *body;
} add_ctx_t;

static apr_status_t add_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    add_ctx_t *c = baton;
    gc_strategy_rec_t *r = c->r;
    apr_int64_t created = GC_MS(r->created_at), updated, activated, rebalanced, observed;
    const void *args[14];
    apr_status_t rv;

    args[0] = r->id;
    args[1] = r->name;
    args[2] = r->status;
    args[3] = r->body;
    args[4] = r->validation;
    args[5] = r->error_message;
    args[6] = r->job_id;
    args[7] = r->actor;
    args[8] = &created;
    args[9] = time_arg(r->updated_at ? r->updated_at : r->created_at, &updated);
    args[10] = time_arg(r->activated_at, &activated);
    args[11] = time_arg(r->rebalanced_at, &rebalanced);
    args[12] = r->live;
    args[13] = time_arg(r->observed_at, &observed);
    rv = gc_store__select_int(s, p, &strategy_insert, args, &r->seq, NULL, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return gc_store__audit_add(s, p, c->a, c->target, c->body, err);
}

apr_status_t gc_store_strategy_add(gc_store_t *s, apr_pool_t *p, gc_strategy_rec_t *r,
                                   gc_audit_rec_t *a, const char *outbox_target,
                                   const char *outbox_body, const char **err)
{
    add_ctx_t c;

    if (!r->id || !r->name || !r->body || !r->actor || !a || !a->actor || !a->action) {
        *err = "strategy: a row needs an id, a name, a body, an actor and its audit row";
        return APR_EINVAL;
    }
    if (!r->status) {
        r->status = GC_STRATEGY_DRAFT;
    }
    if (!r->updated_at) {
        r->updated_at = r->created_at;
    }
    r->revision = 1;
    c.r = r;
    c.a = a;
    c.target = outbox_target;
    c.body = outbox_body;
    return gc_store__tx(s, p, add_tx, &c, err);
}

/* ---------------------------------------------------------------- reads */

apr_status_t gc_store_strategy_get(gc_store_t *s, apr_pool_t *p, const char *id,
                                   gc_strategy_rec_t *out, int *found, const char **err)
{
    const void *args[1];

    args[0] = id;
    return gc_store__first(s, p, &strategy_get, args, strategy_row, out, sizeof(*out), found, err);
}

static void strategy_position(const void *row, gc_cursor_t *at)
{
    const gc_strategy_rec_t *r = row;

    at->at = r->created_at;
    at->id = r->seq;
}

/* Newest first by the row id; the status filter walks (status, id DESC). */
static const gc_listing_t strategy_listing = { "strategy",
                                               "gcmon_strategy",
                                               COLS,
                                               NULL,
                                               0,
                                               { { GC_Q_STATE, "status = %s" } },
                                               sizeof(gc_strategy_rec_t),
                                               strategy_row,
                                               strategy_position };

apr_status_t gc_store_strategy_list(gc_store_t *s, apr_pool_t *p, const gc_query_t *q,
                                    gc_page_t *out, const char **err)
{
    return gc_store__list(s, p, &strategy_listing, q, out, err);
}

apr_status_t gc_store_strategy_active(gc_store_t *s, apr_pool_t *p, apr_array_header_t **rows,
                                      const char **err)
{
    int limit = GC_STORE_STRATEGY_MAX_ACTIVE;
    const void *args[1];
    gc_rows_t r;
    apr_status_t rv;

    args[0] = &limit;
    *rows = apr_array_make(p, 4, sizeof(gc_strategy_rec_t));
    if ((rv = gc_store__select(s, p, &strategy_active, args, &r, err)) != APR_SUCCESS) {
        return rv;
    }
    while (gc_store__next(&r)) {
        gc_strategy_rec_t *rec = apr_array_push(*rows);

        memset(rec, 0, sizeof(*rec));
        strategy_row(&r, p, rec);
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------- conditional changes */

/* The row's status and revision, locked for the transaction. *status NULL:
 * no such strategy. */
static apr_status_t lock_row(gc_store_t *s, apr_pool_t *p, const char *id, const char **status,
                             apr_int64_t *revision, const char **err)
{
    const void *args[1];
    gc_rows_t r;
    apr_status_t rv;

    *status = NULL;
    *revision = 0;
    args[0] = id;
    if ((rv = gc_store__select(s, p, &strategy_lock, args, &r, err)) != APR_SUCCESS) {
        return rv;
    }
    while (gc_store__next(&r)) {
        if (!*status) {
            *status = gc_store__text(&r, p, 0);
            *revision = gc_store__int(&r, 1);
        }
    }
    return APR_SUCCESS;
}

static int settled(const char *status)
{
    return status && (!strcmp(status, GC_STRATEGY_DRAFT) || !strcmp(status, GC_STRATEGY_FAILED));
}

typedef struct {
    const char *id;
    const gc_job_t *job;
    gc_audit_rec_t *a;
    const char *target, *body; /* the outbox delivery */
    const char *new_body;      /* reweigh */
    apr_int64_t expect, now;   /* reweigh */
    gc_strategy_change_e outcome;
    const char *status;
} change_ctx_t;

static apr_status_t delete_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    change_ctx_t *c = baton;
    const void *args[1];
    apr_int64_t revision;
    apr_status_t rv;
    int n = 0;

    c->outcome = GC_STRATEGY_MISSING;
    if ((rv = lock_row(s, p, c->id, &c->status, &revision, err)) != APR_SUCCESS || !c->status) {
        return rv;
    }
    c->outcome = GC_STRATEGY_CONFLICT;
    if (!settled(c->status)) {
        return APR_SUCCESS;
    }
    args[0] = c->id;
    if ((rv = gc_store__exec(s, p, &strategy_delete, args, &n, err)) != APR_SUCCESS) {
        return rv;
    }
    if (n == 0) {
        return APR_SUCCESS; /* CONFLICT: changed meanwhile (a guard: the row is locked) */
    }
    c->outcome = GC_STRATEGY_CHANGED;
    return c->a ? gc_store__audit_add(s, p, c->a, NULL, NULL, err) : APR_SUCCESS;
}

/* Run a change transaction; outcome and status come back (status from p). */
static apr_status_t run_change(gc_store_t *s, apr_pool_t *p, gc_store_tx_fn *fn, change_ctx_t *c,
                               gc_strategy_change_e *outcome, const char **status, const char **err)
{
    apr_status_t rv = gc_store__tx(s, p, fn, c, err);

    if (rv != APR_SUCCESS) {
        c->outcome = GC_STRATEGY_MISSING;
        c->status = NULL;
    }
    if (outcome) {
        *outcome = c->outcome;
    }
    if (status) {
        *status = c->status;
    }
    return rv;
}

apr_status_t gc_store_strategy_delete(gc_store_t *s, apr_pool_t *p, const char *id,
                                      gc_audit_rec_t *a, gc_strategy_change_e *outcome,
                                      const char **status, const char **err)
{
    change_ctx_t c;

    memset(&c, 0, sizeof(c));
    c.id = id;
    c.a = a;
    return run_change(s, p, delete_tx, &c, outcome, status, err);
}

static apr_status_t activate_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    change_ctx_t *c = baton;
    apr_int64_t revision, now = GC_MS(c->job->created_at);
    const void *args[3];
    apr_status_t rv;
    int n = 0;

    c->outcome = GC_STRATEGY_MISSING;
    if ((rv = lock_row(s, p, c->id, &c->status, &revision, err)) != APR_SUCCESS || !c->status) {
        return rv;
    }
    c->outcome = GC_STRATEGY_CONFLICT;
    if (!settled(c->status)) {
        return APR_SUCCESS;
    }
    args[0] = c->job->id;
    args[1] = &now;
    args[2] = c->id;
    if ((rv = gc_store__exec(s, p, &strategy_activate, args, &n, err)) != APR_SUCCESS) {
        return rv;
    }
    if (n == 0) {
        return APR_SUCCESS; /* CONFLICT: changed meanwhile (a guard: the row is locked) */
    }
    if ((rv = gc_store__jobs_submit(s, p, c->job, err)) != APR_SUCCESS) {
        return rv;
    }
    c->outcome = GC_STRATEGY_CHANGED;
    return c->a ? gc_store__audit_add(s, p, c->a, NULL, NULL, err) : APR_SUCCESS;
}

apr_status_t gc_store_strategy_activate(gc_store_t *s, apr_pool_t *p, const char *id,
                                        const gc_job_t *job, gc_audit_rec_t *a,
                                        gc_strategy_change_e *outcome, const char **status,
                                        const char **err)
{
    change_ctx_t c;

    if (!job || !job->id) {
        *err = "strategy: an activation needs its job";
        return APR_EINVAL;
    }
    memset(&c, 0, sizeof(c));
    c.id = id;
    c.job = job;
    c.a = a;
    return run_change(s, p, activate_tx, &c, outcome, status, err);
}

apr_status_t gc_store_strategy_settle(gc_store_t *s, apr_pool_t *p, const char *id,
                                      const char *job_id, const char *status,
                                      const char *error_message, apr_time_t now, int *kept,
                                      const char **err)
{
    apr_int64_t at = GC_MS(now), activated;
    const void *args[6];
    apr_status_t rv;
    int n = 0;

    *kept = 0;
    if (!status || (strcmp(status, GC_STRATEGY_ACTIVE) && strcmp(status, GC_STRATEGY_FAILED))
        || !job_id) {
        *err = "strategy: an activation ends active or failed, by its job";
        return APR_EINVAL;
    }
    args[0] = status;
    args[1] = error_message;
    args[2] = time_arg(strcmp(status, GC_STRATEGY_ACTIVE) ? 0 : now, &activated);
    args[3] = &at;
    args[4] = id;
    args[5] = job_id;
    rv = gc_store__exec(s, p, &strategy_settle, args, &n, err);
    *kept = rv == APR_SUCCESS && n > 0;
    return rv;
}

static apr_status_t reweigh_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    change_ctx_t *c = baton;
    apr_int64_t revision;
    const void *args[5];
    apr_status_t rv;
    int n = 0;

    c->outcome = GC_STRATEGY_MISSING;
    if ((rv = lock_row(s, p, c->id, &c->status, &revision, err)) != APR_SUCCESS || !c->status) {
        return rv;
    }
    c->outcome = GC_STRATEGY_CONFLICT;
    if (!strcmp(c->status, GC_STRATEGY_ACTIVATING) || (c->expect > 0 && revision != c->expect)) {
        return APR_SUCCESS;
    }
    args[0] = c->new_body;
    args[1] = &c->now;
    args[2] = &c->now;
    args[3] = c->id;
    args[4] = &revision;
    if ((rv = gc_store__exec(s, p, &strategy_reweigh, args, &n, err)) != APR_SUCCESS) {
        return rv;
    }
    if (n == 0) {
        return APR_SUCCESS; /* CONFLICT: changed meanwhile (a guard: the row is locked) */
    }
    c->outcome = GC_STRATEGY_CHANGED;
    if (c->a) {
        return gc_store__audit_add(s, p, c->a, c->target, c->body, err);
    }
    return c->target ? gc_store__outbox_add(s, p, c->target, NULL, c->body, GC_FROM_MS(c->now), err)
                     : APR_SUCCESS;
}

apr_status_t gc_store_strategy_reweigh(gc_store_t *s, apr_pool_t *p, const char *id,
                                       apr_int64_t expect_revision, const char *body,
                                       apr_time_t now, gc_audit_rec_t *a, const char *outbox_target,
                                       const char *outbox_body, gc_strategy_change_e *outcome,
                                       const char **err)
{
    change_ctx_t c;

    if (!body) {
        *err = "strategy: new weights need the strategy's body";
        return APR_EINVAL;
    }
    memset(&c, 0, sizeof(c));
    c.id = id;
    c.a = a;
    c.target = outbox_target;
    c.body = outbox_body;
    c.new_body = body;
    c.expect = expect_revision;
    c.now = GC_MS(now);
    return run_change(s, p, reweigh_tx, &c, outcome, NULL, err);
}

apr_status_t gc_store_strategy_set_validation(gc_store_t *s, apr_pool_t *p, const char *id,
                                              const char *validation, apr_time_t now,
                                              const char **err)
{
    apr_int64_t at = GC_MS(now);
    const void *args[3];

    args[0] = validation;
    args[1] = &at;
    args[2] = id;
    return gc_store__exec(s, p, &strategy_validation, args, NULL, err);
}

apr_status_t gc_store_strategy_set_live(gc_store_t *s, apr_pool_t *p, const char *id,
                                        const char *live, apr_time_t observed_at, const char **err)
{
    apr_int64_t at;
    const void *args[3];

    args[0] = live;
    args[1] = time_arg(observed_at, &at);
    args[2] = id;
    return gc_store__exec(s, p, &strategy_live, args, NULL, err);
}
