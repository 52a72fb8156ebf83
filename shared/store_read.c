/* gcmon store: the read queries of the API (gc_store_read.h): the history and
 * alerts listings (declared here, run by gc_store__list) and the board. */
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "gc_store_read.h"
#include "store_private.h"

/* ---------------------------------------------------------------- history */

static void history_row(gc_rows_t *r, apr_pool_t *p, void *out)
{
    gc_history_row_t *h = out;

    h->id = gc_store__int(r, 0);
    h->user_id = gc_store__text(r, p, 1);
    h->user_name = gc_store__text(r, p, 2);
    h->state = gc_store__text(r, p, 3);
    h->previous_state = gc_store__text(r, p, 4);
    h->presence = gc_store__text(r, p, 5);
    h->routing_status = gc_store__text(r, p, 6);
    h->event_at = GC_FROM_MS(gc_store__int(r, 7));
    h->ingested_at = GC_FROM_MS(gc_store__int(r, 8));
    h->source = gc_store__text(r, p, 9);
}

static void history_position(const void *row, gc_cursor_t *at)
{
    const gc_history_row_t *h = row;

    at->at = h->event_at / 1000;
    at->id = h->id;
}

/* Served by gcmon_history_time, gcmon_history_state and the UNIQUE (user_id,
 * event_at) index (store_schema.c). */
static const gc_listing_t history_listing = {
    "history", "gcmon_history",
    "id, user_id, user_name, state, previous_state, presence, routing_status, event_at, "
    "ingested_at, source",
    "event_at", 1,
    { { GC_Q_USER_ID, "user_id = %s" }, { GC_Q_STATE, "state = %s" },
      { GC_Q_FROM, "event_at >= %lld" }, { GC_Q_TO, "event_at < %lld" } },
    sizeof(gc_history_row_t), history_row, history_position
};

apr_status_t gc_read_history(gc_store_t *s, apr_pool_t *p, const gc_query_t *q,
                             gc_page_t *out, const char **err)
{
    return gc_store__list(s, p, &history_listing, q, out, err);
}

/* ---------------------------------------------------------------- alerts */

static void alert_row(gc_rows_t *r, apr_pool_t *p, void *out)
{
    gc_alert_row_t *a = out;

    a->id = gc_store__int(r, 0);
    a->user_id = gc_store__text(r, p, 1);
    a->user_name = gc_store__text(r, p, 2);
    a->state = gc_store__text(r, p, 3);
    a->threshold_seconds = (long)gc_store__int(r, 4);
    a->raised_at = GC_FROM_MS(gc_store__int(r, 5));
    a->cleared_at = GC_FROM_MS(gc_store__int(r, 6));
    a->delivery_status = gc_store__text(r, p, 7);
    a->delivery_attempts = (int)gc_store__int(r, 8);
    a->delivery_last_error = gc_store__text(r, p, 9);
}

static void alert_position(const void *row, gc_cursor_t *at)
{
    const gc_alert_row_t *a = row;

    at->at = a->raised_at / 1000;
    at->id = a->id;
}

/* Served by gcmon_alerts_time, _user and _state (store_schema.c). */
static const gc_listing_t alerts_listing = {
    "alerts", "gcmon_alerts",
    "id, user_id, user_name, state, threshold_seconds, raised_at, cleared_at, "
    "delivery_status, delivery_attempts, delivery_last_error",
    "raised_at", 1,
    { { GC_Q_USER_ID, "user_id = %s" }, { GC_Q_STATE, "state = %s" },
      { GC_Q_FROM, "raised_at >= %lld" }, { GC_Q_TO, "raised_at < %lld" } },
    sizeof(gc_alert_row_t), alert_row, alert_position
};

apr_status_t gc_read_alerts(gc_store_t *s, apr_pool_t *p, const gc_query_t *q,
                            gc_page_t *out, const char **err)
{
    return gc_store__list(s, p, &alerts_listing, q, out, err);
}

/* ---------------------------------------------------------------- board */

/* Open alerts (few, through the partial index gcmon_alerts_open). */
static const gc_stmt_t board_alerts_all = {
    "board.alerts",
    "SELECT user_id, id, raised_at, threshold_seconds FROM gcmon_alerts "
    "WHERE cleared_at IS NULL ORDER BY id", NULL, 0 };

static const gc_stmt_t board_alerts_user = {
    "board.alerts_user",
    "SELECT user_id, id, raised_at, threshold_seconds FROM gcmon_alerts "
    "WHERE cleared_at IS NULL AND user_id = %s ORDER BY id", NULL, 0 };

/* User id → its newest open alert (a gc_board_row_t with the alert fields). */
static apr_status_t open_alerts(gc_store_t *s, apr_pool_t *p, const char *user_id,
                                apr_hash_t **alerts, const char **err)
{
    const void *args[1] = { user_id };
    gc_rows_t r;

    *alerts = NULL;
    if (gc_store__select(s, p, user_id ? &board_alerts_user : &board_alerts_all,
                         user_id ? args : NULL, &r, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    while (gc_store__next(&r)) {
        gc_board_row_t *al;
        const char *uid = gc_store__text(&r, p, 0);

        if (!uid) {
            continue;
        }
        al = apr_pcalloc(p, sizeof(*al));
        al->alert_id = gc_store__int(&r, 1);
        al->alert_raised_at = GC_FROM_MS(gc_store__int(&r, 2));
        al->alert_threshold_seconds = (long)gc_store__int(&r, 3);
        if (!*alerts) {
            *alerts = apr_hash_make(p);
        }
        apr_hash_set(*alerts, uid, APR_HASH_KEY_STRING, al);   /* newest wins */
    }
    return APR_SUCCESS;
}

/* The agents of the board, one statement per filter shape. */
static void board_stmt(apr_pool_t *p, const char *user_id, const char *state,
                       const char *queue_id, gc_stmt_t *st, const void **args)
{
    const char *conds = "", *pg_conds;
    int n = 0;

    if (user_id) {
        conds = " AND user_id = %s";
        args[n++] = user_id;
    }
    if (state) {
        conds = apr_pstrcat(p, conds, " AND state = %s", NULL);
        args[n++] = state;
    }
    pg_conds = conds;
    if (queue_id) {
        /* queue_ids is a JSON array of ids of [A-Za-z0-9-_]: match the quoted id. */
        conds = apr_pstrcat(p, conds, " AND instr(queue_ids, %s) > 0", NULL);
        pg_conds = apr_pstrcat(p, pg_conds, " AND strpos(queue_ids, %s) > 0", NULL);
        args[n++] = apr_pstrcat(p, "\"", queue_id, "\"", NULL);
    }
    st->name = apr_psprintf(p, "board.agents.%x",
                            (user_id ? 1u : 0u) | (state ? 2u : 0u) | (queue_id ? 4u : 0u));
    st->sql = apr_pstrcat(p, "SELECT user_id, user_name, state, presence, routing_status, "
                             "queue_ids, since FROM gcmon_agents",
                          *conds ? " WHERE" : "", *conds ? conds + 4 : "",
                          " ORDER BY user_id", NULL);
    st->pgsql = queue_id ? apr_pstrcat(p, "SELECT user_id, user_name, state, presence, "
                                          "routing_status, queue_ids, since FROM gcmon_agents "
                                          "WHERE", pg_conds + 4, " ORDER BY user_id", NULL)
                         : NULL;
    st->flags = 0;
}

apr_status_t gc_read_board(gc_store_t *s, apr_pool_t *p, const char *user_id,
                           const char *state, const char *queue_id,
                           apr_array_header_t **rows, const char **err)
{
    apr_hash_t *alerts;
    const void *args[3];
    gc_stmt_t st;
    gc_rows_t r;

    if (open_alerts(s, p, user_id, &alerts, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    board_stmt(p, user_id, state, queue_id, &st, args);
    if (gc_store__select(s, p, &st, args, &r, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    *rows = apr_array_make(p, 64, sizeof(gc_board_row_t));
    while (gc_store__next(&r)) {
        gc_board_row_t *b = apr_array_push(*rows);
        const gc_board_row_t *al;

        b->user_id = gc_store__text(&r, p, 0);
        b->user_name = gc_store__text(&r, p, 1);
        b->state = gc_store__text(&r, p, 2);
        b->presence = gc_store__text(&r, p, 3);
        b->routing_status = gc_store__text(&r, p, 4);
        b->queue_ids = gc_store__text(&r, p, 5);
        b->since = GC_FROM_MS(gc_store__int(&r, 6));
        if (alerts && b->user_id
            && (al = apr_hash_get(alerts, b->user_id, APR_HASH_KEY_STRING))) {
            b->alert_id = al->alert_id;
            b->alert_raised_at = al->alert_raised_at;
            b->alert_threshold_seconds = al->alert_threshold_seconds;
        }
    }
    return APR_SUCCESS;
}
