/* gcmon store: the read queries of the API (gc_store_read.h): the history and
 * alerts listings (declared here, run by gc_store__list) and the board. */
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "gc_store_read.h"
#include "gc_store_int.h"

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
 * event_at) index (gc_store_schema.c). */
static const gc_listing_t history_listing = {
    "history",
    "gcmon_history",
    "id, user_id, user_name, state, previous_state, presence, routing_status, event_at, "
    "ingested_at, source",
    "event_at",
    1,
    { { GC_Q_USER_ID, "user_id = %s" },
      { GC_Q_STATE, "state = %s" },
      { GC_Q_FROM, "event_at >= %lld" },
      { GC_Q_TO, "event_at < %lld" } },
    sizeof(gc_history_row_t),
    history_row,
    history_position
};

apr_status_t gc_store_read_history(gc_store_t *s, apr_pool_t *p, const gc_query_t *q,
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

/* Served by gcmon_alerts_time, _user and _state (gc_store_schema.c). */
static const gc_listing_t alerts_listing = {
    "alerts",
    "gcmon_alerts",
    "id, user_id, user_name, state, threshold_seconds, raised_at, cleared_at, "
    "delivery_status, delivery_attempts, delivery_last_error",
    "raised_at",
    1,
    { { GC_Q_USER_ID, "user_id = %s" },
      { GC_Q_STATE, "state = %s" },
      { GC_Q_FROM, "raised_at >= %lld" },
      { GC_Q_TO, "raised_at < %lld" } },
    sizeof(gc_alert_row_t),
    alert_row,
    alert_position
};

apr_status_t gc_store_read_alerts(gc_store_t *s, apr_pool_t *p, const gc_query_t *q, gc_page_t *out,
                                  const char **err)
{
    return gc_store__list(s, p, &alerts_listing, q, out, err);
}
