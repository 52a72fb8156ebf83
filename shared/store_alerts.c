/* gcmon store: idle alerts (gc_alerts.h, SPEC §3.2). An alert row is written
 * only while the agent's current row still shows the alert's episode, and its
 * UNIQUE (user_id, state, episode_at, seq) makes any second raise — another
 * holder, a restart — a no-op. */
#include <apr_strings.h>

#include "gc_alerts.h"
#include "gc_outbox.h"
#include "store_private.h"

apr_status_t gc_store_alert_agents(gc_store_t *s, apr_pool_t *p, apr_array_header_t **out,
                                   const char **err)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    apr_status_t rv;

    *out = apr_array_make(p, 256, sizeof(gc_alert_agent_t));
    rv = gc_store__select(s, p, ST_ALERT_AGENTS, NULL, &res, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    while (gc_store__row(s, p, res, &row)) {
        gc_alert_agent_t *g = apr_array_push(*out);
        g->user_id = gc_store__text(s, p, row, 0);
        g->state = gc_store__text(s, p, row, 1);
        g->since = GC_FROM_MS(gc_store__int(s, row, 2));
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

/* The id of the first row of a RETURNING / SELECT id, or 0 when none. */
static apr_status_t first_id(gc_store_t *s, apr_pool_t *p, int stmt, const void **args,
                             apr_int64_t *id, const char **err)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    apr_status_t rv = gc_store__select(s, p, stmt, args, &res, err);

    *id = 0;
    if (rv != APR_SUCCESS) {
        return rv;
    }
    while (gc_store__row(s, p, res, &row)) {
        if (*id == 0) {
            *id = gc_store__int(s, row, 0);
        }
    }
    return APR_SUCCESS;
}

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
    if ((rv = first_id(s, p, ST_ALERT_INSERT, ins, &c->id, err)) != APR_SUCCESS) {
        return rv;
    }
    if (c->id > 0) {
        c->result = GC_ALERT_RAISED;
        return c->body ? gc_store__outbox_add(s, p, GC_TARGET_SLACK, &c->id, c->body, c->now,
                                              err)
                       : APR_SUCCESS;
    }
    /* Nothing inserted: the alert exists already, or the episode is over. */
    find[0] = d->user_id;
    find[1] = d->state;
    find[2] = &episode;
    find[3] = &seq;
    if ((rv = first_id(s, p, ST_ALERT_FIND, find, &c->id, err)) != APR_SUCCESS) {
        return rv;
    }
    c->result = c->id > 0 ? GC_ALERT_EXISTS : GC_ALERT_MOVED;
    return APR_SUCCESS;
}

apr_status_t gc_store_alert_raise(gc_store_t *s, apr_pool_t *p, const gc_alert_due_t *d,
                                  const char *user_name, const char *outbox_body,
                                  apr_time_t now, gc_alert_result_e *result,
                                  apr_int64_t *alert_id, const char **err)
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

apr_status_t gc_store_alerts_clear(gc_store_t *s, apr_pool_t *p, apr_time_t now, int *cleared,
                                   const char **err)
{
    apr_int64_t at = GC_MS(now);
    const void *args[1];

    *cleared = 0;
    args[0] = &at;
    return gc_store__exec(s, p, ST_ALERT_CLEAR, args, cleared, err);
}
