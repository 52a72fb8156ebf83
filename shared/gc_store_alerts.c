/* gcmon store: idle alerts (gc_alerts.h, SPEC §3.2). An alert row is written
 * only while the agent's current row still shows the alert's episode, and its
 * UNIQUE (user_id, state, episode_at, seq) makes any second raise — another
 * holder, a restart — a no-op. */
#include <apr_strings.h>

#include "gc_alerts.h"
#include "gc_outbox.h"
#include "gc_store_int.h"
#include "gc_webhook.h"

static const gc_stmt_t alert_agents = {
    "alert.agents", "SELECT user_id, state, since FROM gcmon_agents LIMIT 1000000", NULL, 0
};

/* The insert re-checks the agent's episode in the same statement; the
 * SELECT's own WHERE keeps sqlite3 from parsing ON CONFLICT as a join
 * constraint. CASTs type the parameters of the select list for PostgreSQL. */
static const gc_stmt_t alert_insert = {
    "alert.insert",
    "INSERT INTO gcmon_alerts (user_id, user_name, state, threshold_seconds, episode_at, "
    "seq, raised_at, delivery_status) SELECT a.user_id, COALESCE(CAST(%s AS TEXT), "
    "a.user_name), a.state, CAST(%lld AS BIGINT), a.since, CAST(%d AS INTEGER), "
    "CAST(%lld AS BIGINT), CAST(%s AS TEXT) FROM gcmon_agents a "
    "WHERE a.user_id = %s AND a.state = %s AND a.since = %lld "
    "ON CONFLICT DO NOTHING RETURNING id",
    NULL, 0
};

static const gc_stmt_t alert_find = {
    "alert.find",
    "SELECT id FROM gcmon_alerts WHERE user_id = %s AND state = %s AND episode_at = %lld "
    "AND seq = %d LIMIT 1",
    NULL, 0
};

/* The board shows an agent's open alert: stamp the agent's row with the
 * generation of the transaction that raised or clears it. */
static const gc_stmt_t alert_stamp = { "alert.stamp",
                                       "UPDATE gcmon_agents SET gen = %lld WHERE user_id = %s",
                                       NULL, 0 };

static const gc_stmt_t alert_stamp_ending = {
    "alert.stamp_ending",
    "UPDATE gcmon_agents SET gen = %lld WHERE user_id IN (SELECT user_id FROM gcmon_alerts "
    "WHERE cleared_at IS NULL AND NOT EXISTS (SELECT 1 FROM gcmon_agents a "
    "WHERE a.user_id = gcmon_alerts.user_id AND a.state = gcmon_alerts.state "
    "AND a.since = gcmon_alerts.episode_at))",
    NULL, 0
};

/* Alerts whose episode is over (the agent's current row moved on). */
static const gc_stmt_t alert_clear = {
    "alert.clear",
    "UPDATE gcmon_alerts SET cleared_at = %lld WHERE cleared_at IS NULL AND NOT EXISTS "
    "(SELECT 1 FROM gcmon_agents a WHERE a.user_id = gcmon_alerts.user_id "
    "AND a.state = gcmon_alerts.state AND a.since = gcmon_alerts.episode_at)",
    NULL, 0
};

apr_status_t gc_store_alert_agents(gc_store_t *s, apr_pool_t *p, apr_array_header_t **out,
                                   const char **err)
{
    gc_rows_t r;
    apr_status_t rv;

    *out = apr_array_make(p, 256, sizeof(gc_alert_agent_t));
    rv = gc_store__select(s, p, &alert_agents, NULL, &r, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    while (gc_store__next(&r)) {
        gc_alert_agent_t *g = apr_array_push(*out);
        g->user_id = gc_store__text(&r, p, 0);
        g->state = gc_store__text(&r, p, 1);
        g->since = GC_FROM_MS(gc_store__int(&r, 2));
        if (!g->user_id || !g->state) {
            (*out)->nelts--;
        }
    }
    return APR_SUCCESS;
}

/* ---- raise ---- */

typedef struct {
    const gc_alert_due_t *d;
    const char *user_name;
    const char *body;
    apr_time_t now;
    gc_alert_result_e result;
    apr_int64_t id;
} raise_ctx_t;

static apr_status_t raise_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    raise_ctx_t *c = baton;
    const gc_alert_due_t *d = c->d;
    apr_int64_t threshold = (apr_int64_t)apr_time_sec(d->threshold);
    apr_int64_t episode = GC_MS(d->episode_at), raised = GC_MS(c->now);
    int seq = d->seq;
    const void *ins[8], *find[4];
    apr_status_t rv;

    ins[0] = c->user_name;
    ins[1] = &threshold;
    ins[2] = &seq;
    ins[3] = &raised;
    ins[4] = c->body ? "pending" : "disabled";
    ins[5] = d->user_id;
    ins[6] = d->state;
    ins[7] = &episode;
    if ((rv = gc_store__select_int(s, p, &alert_insert, ins, &c->id, NULL, err)) != APR_SUCCESS) {
        return rv;
    }
    if (c->id > 0) {
        apr_int64_t gen = 0;
        const void *stamp[2];
        c->result = GC_ALERT_RAISED;
        if ((rv = gc_store__gen_bump(s, p, &gen, err)) != APR_SUCCESS) {
            return rv;
        }
        stamp[0] = &gen;
        stamp[1] = d->user_id;
        if ((rv = gc_store__exec(s, p, &alert_stamp, stamp, NULL, err)) != APR_SUCCESS) {
            return rv;
        }
        return c->body ? gc_store__outbox_add(s, p, GC_TARGET_SLACK, &c->id, c->body, c->now, err)
                       : APR_SUCCESS;
    }
    /* Nothing inserted: the alert exists already, or the episode is over. */
    find[0] = d->user_id;
    find[1] = d->state;
    find[2] = &episode;
    find[3] = &seq;
    if ((rv = gc_store__select_int(s, p, &alert_find, find, &c->id, NULL, err)) != APR_SUCCESS) {
        return rv;
    }
    c->result = c->id > 0 ? GC_ALERT_EXISTS : GC_ALERT_MOVED;
    return APR_SUCCESS;
}

apr_status_t gc_store_alert_raise(gc_store_t *s, apr_pool_t *p, const gc_alert_due_t *d,
                                  const char *user_name, const char *outbox_body, apr_time_t now,
                                  gc_alert_result_e *result, apr_int64_t *alert_id,
                                  const char **err)
{
    raise_ctx_t c;
    apr_status_t rv;

    *result = GC_ALERT_MOVED;
    *alert_id = 0;
    if (!d || !d->user_id || !d->state) {
        *err = "gcmon store: alert without agent or state";
        return APR_EINVAL;
    }
    c.d = d;
    c.user_name = user_name;
    c.body = outbox_body;
    c.now = now;
    c.result = GC_ALERT_MOVED;
    c.id = 0;
    rv = gc_store__tx(s, p, raise_tx, &c, err);
    if (rv == APR_SUCCESS) {
        *result = c.result;
        *alert_id = c.id;
    }
    return rv;
}

typedef struct {
    apr_int64_t at;
    int cleared;
} clear_ctx_t;

static apr_status_t clear_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    clear_ctx_t *c = baton;
    apr_int64_t gen = 0;
    const void *args[1];
    apr_status_t rv;
    int ending = 0;

    if ((rv = gc_store__gen_bump(s, p, &gen, err)) != APR_SUCCESS) {
        return rv;
    }
    args[0] = &gen;
    if ((rv = gc_store__exec(s, p, &alert_stamp_ending, args, &ending, err)) != APR_SUCCESS) {
        return rv;
    }
    args[0] = &c->at;
    if ((rv = gc_store__exec(s, p, &alert_clear, args, &c->cleared, err)) != APR_SUCCESS) {
        return rv;
    }
    /* Nothing ended: leave the generation alone (no board change to announce). */
    return ending || c->cleared ? APR_SUCCESS : APR_EAGAIN;
}

apr_status_t gc_store_alerts_clear(gc_store_t *s, apr_pool_t *p, apr_time_t now, int *cleared,
                                   const char **err)
{
    clear_ctx_t c;
    apr_status_t rv;

    *cleared = 0;
    c.at = GC_MS(now);
    c.cleared = 0;
    rv = gc_store__tx(s, p, clear_tx, &c, err);
    if (rv == APR_EAGAIN) {
        return APR_SUCCESS; /* rolled back on purpose: nothing to clear */
    }
    *cleared = c.cleared;
    return rv;
}
