/* mod_gcmon_api read API (SPEC §5.1, §5.2): the state history and the
 * alerts listing. Query parsing is gc_query.c, the SQL gc_store_read.c; here are
 * the JSON shapes. */
#include <http_protocol.h>

#include "gc_store_read.h"
#include "mod_gcmon_api_private.h"

/* ---------------------------------------------------------------- history */

int gcmon_api_history_get(request_rec *r, const char **params, json_t *body)
{
    gc_query_t q;
    gc_page_t pg;
    gc_store_t *st;
    const char *err = NULL;
    gc_jw_t w;
    int i;

    if (gcmon_api_parse_query(r, GC_Q_HISTORY, GC_CURSOR_HISTORY, &q) != OK
        || !(st = gcmon_api_store(r, 1))) {
        return OK;
    }
    if (gc_store_read_history(st, r->pool, &q, &pg, &err) != APR_SUCCESS) {
        return gcmon_api_database_error(r, "history", err);
    }
    gc_jw_init(&w, 512 + (apr_size_t)pg.rows->nelts * 320);
    gcmon_api_page_head(r, &w, &q, &pg, GC_CURSOR_HISTORY);
    for (i = 0; i < pg.rows->nelts; i++) {
        const gc_history_row_t *h = &APR_ARRAY_IDX(pg.rows, i, gc_history_row_t);
        if (i) {
            gc_jw_lit(&w, ",");
        }
        gc_jw_lit(&w, "{\"id\":");
        gc_jw_int(&w, h->id);
        gc_jw_lit(&w, ",\"user_id\":");
        gc_jw_str(&w, h->user_id);
        gc_jw_lit(&w, ",\"user_name\":");
        gc_jw_str(&w, h->user_name);
        gc_jw_lit(&w, ",\"state\":");
        gc_jw_str(&w, h->state);
        gc_jw_lit(&w, ",\"previous_state\":");
        gc_jw_str(&w, h->previous_state);
        gc_jw_lit(&w, ",\"presence\":");
        gc_jw_str(&w, h->presence);
        gc_jw_lit(&w, ",\"routing_status\":");
        gc_jw_str(&w, h->routing_status);
        gc_jw_lit(&w, ",\"event_timestamp\":");
        gc_jw_time(&w, h->event_at);
        gc_jw_lit(&w, ",\"ingested_at\":");
        gc_jw_time(&w, h->ingested_at);
        gc_jw_lit(&w, ",\"source\":");
        gc_jw_str(&w, h->source);
        gc_jw_lit(&w, "}");
    }
    gc_jw_lit(&w, "]}");
    return gcmon_api_send_jw(r, &w);
}

/* ---------------------------------------------------------------- alerts */

int gcmon_api_alerts_get(request_rec *r, const char **params, json_t *body)
{
    gc_query_t q;
    gc_page_t pg;
    gc_store_t *st;
    const char *err = NULL;
    gc_jw_t w;
    int i;

    if (gcmon_api_parse_query(r, GC_Q_ALERTS, GC_CURSOR_ALERTS, &q) != OK
        || !(st = gcmon_api_store(r, 1))) {
        return OK;
    }
    if (gc_store_read_alerts(st, r->pool, &q, &pg, &err) != APR_SUCCESS) {
        return gcmon_api_database_error(r, "alerts", err);
    }
    gc_jw_init(&w, 512 + (apr_size_t)pg.rows->nelts * 320);
    gcmon_api_page_head(r, &w, &q, &pg, GC_CURSOR_ALERTS);
    for (i = 0; i < pg.rows->nelts; i++) {
        const gc_alert_row_t *a = &APR_ARRAY_IDX(pg.rows, i, gc_alert_row_t);
        if (i) {
            gc_jw_lit(&w, ",");
        }
        gc_jw_lit(&w, "{\"id\":");
        gc_jw_int(&w, a->id);
        gc_jw_lit(&w, ",\"user_id\":");
        gc_jw_str(&w, a->user_id);
        gc_jw_lit(&w, ",\"user_name\":");
        gc_jw_str(&w, a->user_name);
        gc_jw_lit(&w, ",\"state\":");
        gc_jw_str(&w, a->state);
        gc_jw_lit(&w, ",\"threshold_seconds\":");
        gc_jw_int(&w, a->threshold_seconds);
        gc_jw_lit(&w, ",\"raised_at\":");
        gc_jw_time(&w, a->raised_at);
        gc_jw_lit(&w, ",\"cleared_at\":");
        gc_jw_time(&w, a->cleared_at);
        gc_jw_lit(&w, ",\"delivery\":{\"status\":");
        gc_jw_str(&w, a->delivery_status);
        gc_jw_lit(&w, ",\"attempts\":");
        gc_jw_int(&w, a->delivery_attempts);
        gc_jw_lit(&w, ",\"last_error\":");
        gc_jw_str(&w, a->delivery_last_error);
        gc_jw_lit(&w, "}}");
    }
    gc_jw_lit(&w, "]}");
    return gcmon_api_send_jw(r, &w);
}
