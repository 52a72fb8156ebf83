/* mod_gcmon_api live board (SPEC §5.2): every agent's current state, or one
 * agent, with a strong ETag and If-None-Match. The ETag names the rows'
 * content: every field of every agent except the two the clock derives at
 * request time (generated_at, seconds_in_state — a client computes them from
 * `since`), hashed by gc_etag. */
#include <stdlib.h>
#include <string.h>

#include <http_protocol.h>

#include "gc_etag.h"
#include "gc_monitor.h"
#include "gc_store_read.h"
#include "mod_gcmon_api_private.h"

static void hash_row(gc_etag_hash_t *h, const gc_board_row_t *a)
{
    gc_etag_hash_str(h, a->user_id);
    gc_etag_hash_str(h, a->user_name);
    gc_etag_hash_str(h, a->state);
    gc_etag_hash_str(h, a->presence);
    gc_etag_hash_str(h, a->routing_status);
    gc_etag_hash_str(h, a->queue_ids);
    gc_etag_hash_int(h, a->since);
    gc_etag_hash_int(h, a->alert_id);
    gc_etag_hash_int(h, a->alert_raised_at);
    gc_etag_hash_int(h, a->alert_threshold_seconds);
}

static int if_none_match(request_rec *r, const char *etag)
{
    return gc_etag_match(apr_table_get(r->headers_in, "If-None-Match"), etag, GC_ETAG_WEAK);
}

/* One board item (SPEC §5.2). */
static void board_item(gc_jw_t *w, const gc_board_row_t *a, apr_time_t now)
{
    gc_jw_lit(w, "{\"user_id\":");
    gc_jw_str(w, a->user_id);
    gc_jw_lit(w, ",\"user_name\":");
    gc_jw_str(w, a->user_name);
    gc_jw_lit(w, ",\"state\":");
    gc_jw_str(w, a->state);
    gc_jw_lit(w, ",\"presence\":");
    gc_jw_str(w, a->presence);
    gc_jw_lit(w, ",\"routing_status\":");
    gc_jw_str(w, a->routing_status);
    gc_jw_lit(w, ",\"since\":");
    gc_jw_time(w, a->since);
    gc_jw_lit(w, ",\"seconds_in_state\":");
    if (a->since) {
        gc_jw_int(w, now > a->since ? apr_time_sec(now - a->since) : 0);
    }
    else {
        gc_jw_lit(w, "null");
    }
    gc_jw_lit(w, ",\"queue_ids\":");
    if (!a->queue_ids) {
        gc_jw_lit(w, "[]");
    }
    else if (gc_jw_simple_id_array(a->queue_ids)) {
        gc_jw_raw(w, a->queue_ids, strlen(a->queue_ids));
    }
    else {
        /* Not the store's compact form: re-encode (and never emit invalid JSON). */
        json_t *arr = json_loads(a->queue_ids, JSON_DECODE_ANY, NULL);
        char *text = json_is_array(arr) ? json_dumps(arr, JSON_COMPACT) : NULL;
        if (text) {
            gc_jw_raw(w, text, strlen(text));
        }
        else {
            gc_jw_lit(w, "[]");
        }
        free(text);
        json_decref(arr);
    }
    gc_jw_lit(w, ",\"alert\":");
    if (a->alert_id) {
        gc_jw_lit(w, "{\"id\":");
        gc_jw_int(w, a->alert_id);
        gc_jw_lit(w, ",\"raised_at\":");
        gc_jw_time(w, a->alert_raised_at);
        gc_jw_lit(w, ",\"threshold_seconds\":");
        gc_jw_int(w, a->alert_threshold_seconds);
        gc_jw_lit(w, "}}");
    }
    else {
        gc_jw_lit(w, "null}");
    }
}

int gcmon_api_board_get(request_rec *r, const char **params, json_t *body)
{
    gc_query_t q;
    gc_store_t *st;
    apr_array_header_t *rows;
    const char *err = NULL, *etag;
    gc_etag_hash_t h;
    apr_time_t now;
    gc_jw_t w;
    int i;

    if (gcmon_api_parse_query(r, GC_Q_BOARD, GC_CURSOR_HISTORY, &q) != OK
        || !(st = gcmon_api_store(r, 1))) {
        return OK;
    }
    if (gc_read_board(st, r->pool, NULL, q.state, q.queue_id, &rows, &err) != APR_SUCCESS) {
        return gcmon_api_database_error(r, "board", err);
    }
    gc_etag_hash_init(&h);
    for (i = 0; i < rows->nelts; i++) {
        hash_row(&h, &APR_ARRAY_IDX(rows, i, gc_board_row_t));
    }
    gc_etag_hash_int(&h, rows->nelts);
    etag = gc_etag_hash_text(r->pool, &h);
    if (if_none_match(r, etag)) {
        return gcmon_api_not_modified(r, etag);
    }
    now = apr_time_now();
    gc_jw_init(&w, 256 + (apr_size_t)rows->nelts * 300);
    gc_jw_lit(&w, "{\"total\":");
    gc_jw_int(&w, rows->nelts);
    gc_jw_lit(&w, ",\"generated_at\":");
    gc_jw_time(&w, now);
    gc_jw_lit(&w, ",\"data\":[");
    for (i = 0; i < rows->nelts; i++) {
        if (i) {
            gc_jw_lit(&w, ",");
        }
        board_item(&w, &APR_ARRAY_IDX(rows, i, gc_board_row_t), now);
    }
    gc_jw_lit(&w, "]}");
    apr_table_setn(r->headers_out, "ETag", etag);
    return gcmon_api_send_jw(r, &w);
}

int gcmon_api_agent_get(request_rec *r, const char **params, json_t *body)
{
    gc_store_t *st;
    apr_array_header_t *rows;
    const char *err = NULL, *etag;
    gc_etag_hash_t h;
    const char *id = params[0];
    gc_jw_t w;

    if (!gc_id_valid(id)) {
        return gcmon_api_send_problem(r, HTTP_NOT_FOUND, "agent_not_found", "Agent not found",
                                      "no agent has this id");
    }
    if (!(st = gcmon_api_store(r, 1))) {
        return OK;
    }
    if (gc_read_board(st, r->pool, id, NULL, NULL, &rows, &err) != APR_SUCCESS) {
        return gcmon_api_database_error(r, "agent", err);
    }
    if (rows->nelts == 0) {
        return gcmon_api_send_problem(r, HTTP_NOT_FOUND, "agent_not_found", "Agent not found",
                                      "no agent with this id is monitored");
    }
    gc_etag_hash_init(&h);
    hash_row(&h, &APR_ARRAY_IDX(rows, 0, gc_board_row_t));
    etag = gc_etag_hash_text(r->pool, &h);
    if (if_none_match(r, etag)) {
        return gcmon_api_not_modified(r, etag);
    }
    apr_table_setn(r->headers_out, "ETag", etag);
    gc_jw_init(&w, 512);
    board_item(&w, &APR_ARRAY_IDX(rows, 0, gc_board_row_t), apr_time_now());
    return gcmon_api_send_jw(r, &w);
}
