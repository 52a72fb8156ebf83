/* mod_gcmon_api live board (SPEC §5.2, §9.17): every agent's current state,
 * the agents changed since a generation (a delta), or one agent.
 *
 * The board's ETag is its generation ("<board id>-<gen>"): the database's
 * write epoch, bumped by every transaction that changes what the board shows,
 * and published in shared memory by a stream holder of this server after each
 * commit. A matching If-None-Match is answered from there without touching
 * the database; without a local holder the generation is one row read. The
 * two fields the clock derives at request time (generated_at,
 * seconds_in_state — a client computes them from `since`) are not covered by
 * the validator. One agent's ETag hashes its row's content (gc_etag). */
#include <stdlib.h>
#include <string.h>

#include <apr_optional.h>
#include <apr_strings.h>
#include <http_protocol.h>

#include "gc_board_cache.h"
#include "gc_etag.h"
#include "gc_id.h"
#include "gc_monitor.h"
#include "gc_store_read.h"
#include "mod_gcmon_api_private.h"

static int if_none_match(request_rec *r, const char *etag)
{
    return gc_etag_match(apr_table_get(r->headers_in, "If-None-Match"), etag, GC_ETAG_WEAK);
}

/* ---------------------------------------------------------------- generation */

/* The generation a stream holder of this server published (1), if any. */
static int published_gen(gc_board_gen_t *g)
{
    APR_OPTIONAL_FN_TYPE(gcmon_stream_board_gen) *fn =
        APR_RETRIEVE_OPTIONAL_FN(gcmon_stream_board_gen);

    return fn && fn(&g->id, &g->gen);
}

/* The board's validator: its generation, and for a filtered board a hash of
 * the filters (another filter is another representation). */
static const char *gen_etag(request_rec *r, const gc_board_gen_t *g, const gc_query_t *q)
{
    const char *tag = gc_board_gen_format(r->pool, g->id, g->gen);

    if (q->state || q->queue_id) {
        gc_etag_hash_t h;
        gc_etag_hash_init(&h);
        gc_etag_hash_str(&h, q->state);
        gc_etag_hash_str(&h, q->queue_id);
        tag = apr_psprintf(r->pool, "%s.%08x", tag, (unsigned)(h.a & 0xffffffffu));
    }
    return apr_pstrcat(r->pool, "\"", tag, "\"", NULL);
}

/* ---------------------------------------------------------------- JSON */

/* A JSON array of queue ids as stored ([] for NULL); never invalid JSON. */
static void id_array(gc_jw_t *w, const char *ids)
{
    json_t *arr;
    char *text;

    if (!ids) {
        gc_jw_lit(w, "[]");
        return;
    }
    if (gc_jw_simple_id_array(ids)) {
        gc_jw_raw(w, ids, strlen(ids));
        return;
    }
    /* Not the store's compact form: re-encode. */
    arr = json_loads(ids, JSON_DECODE_ANY, NULL);
    text = json_is_array(arr) ? json_dumps(arr, JSON_COMPACT) : NULL;
    if (text) {
        gc_jw_raw(w, text, strlen(text));
    }
    else {
        gc_jw_lit(w, "[]");
    }
    free(text);
    json_decref(arr);
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
    id_array(w, a->queue_ids);
    gc_jw_lit(w, ",\"active_queue_ids\":");
    id_array(w, a->active_queue_ids);
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

/* {"total","generated_at","generation","full","removed","data"} into w; rows
 * without a user id, and those that fail the filters when `filter`, are
 * skipped. */
static void render_board(request_rec *r, gc_jw_t *w, const gc_board_gen_t *g, const gc_query_t *q,
                         int filter, long total, int full, const apr_array_header_t *rows,
                         const apr_array_header_t *removed)
{
    apr_time_t now = apr_time_now();
    int i, first = 1;

    gc_jw_init(w, 256 + (apr_size_t)rows->nelts * 320);
    gc_jw_lit(w, "{\"total\":");
    gc_jw_int(w, total);
    gc_jw_lit(w, ",\"generated_at\":");
    gc_jw_time(w, now);
    gc_jw_lit(w, ",\"generation\":");
    gc_jw_str(w, gc_board_gen_format(r->pool, g->id, g->gen));
    if (full) {
        gc_jw_lit(w, ",\"full\":true,\"removed\":[");
    }
    else {
        gc_jw_lit(w, ",\"full\":false,\"removed\":[");
    }
    for (i = 0; removed && i < removed->nelts; i++) {
        if (i) {
            gc_jw_lit(w, ",");
        }
        gc_jw_str(w, APR_ARRAY_IDX(removed, i, const char *));
    }
    gc_jw_lit(w, "],\"data\":[");
    for (i = 0; i < rows->nelts; i++) {
        const gc_board_row_t *a = &APR_ARRAY_IDX(rows, i, gc_board_row_t);
        if (!a->user_id || (filter && !gc_board_row_matches(a, q->state, q->queue_id))) {
            continue;
        }
        if (!first) {
            gc_jw_lit(w, ",");
        }
        first = 0;
        board_item(w, a, now);
    }
    gc_jw_lit(w, "]}");
    apr_table_setn(r->headers_out, "ETag", gen_etag(r, g, q));
}

/* ---------------------------------------------------------------- GET /v1/agents */

typedef struct {
    request_rec *r;
    const gc_query_t *q;
    gc_jw_t w;
} board_req_t;

/* The whole board, filtered. */
static void render_full(void *baton, const apr_array_header_t *rows, const gc_board_gen_t *g)
{
    board_req_t *b = baton;
    long total = 0;
    int i;

    for (i = 0; i < rows->nelts; i++) {
        total += gc_board_row_matches(&APR_ARRAY_IDX(rows, i, gc_board_row_t), b->q->state,
                                      b->q->queue_id);
    }
    render_board(b->r, &b->w, g, b->q, 1, total, 1, rows, NULL);
}

/* The agents changed after the client's generation: those matching the
 * filters are the data, the others are named as removed (the client drops
 * them). */
static void render_delta(void *baton, const apr_array_header_t *rows, const gc_board_gen_t *g)
{
    board_req_t *b = baton;
    apr_array_header_t *changed = apr_array_make(b->r->pool, 16, sizeof(gc_board_row_t));
    apr_array_header_t *removed = apr_array_make(b->r->pool, 4, sizeof(const char *));
    long total = 0;
    int i;

    for (i = 0; i < rows->nelts; i++) {
        const gc_board_row_t *a = &APR_ARRAY_IDX(rows, i, gc_board_row_t);
        int match = gc_board_row_matches(a, b->q->state, b->q->queue_id);
        total += match;
        if (a->gen <= b->q->since_gen) {
            continue;
        }
        if (match) {
            *(gc_board_row_t *)apr_array_push(changed) = *a;
        }
        else {
            APR_ARRAY_PUSH(removed, const char *) = a->user_id;
        }
    }
    render_board(b->r, &b->w, g, b->q, 0, total, 0, changed, removed);
}

int gcmon_api_board_get(request_rec *r, const char **params, json_t *body)
{
    struct gc_store *st;
    const char *err = NULL;
    board_req_t b;
    gc_board_gen_t g;
    gc_query_t q;

    if (gcmon_api_parse_query(r, GC_Q_BOARD, GC_CURSOR_HISTORY, &q) != OK) {
        return OK;
    }
    /* Nothing changed since the client's copy: answered from shared memory. */
    if (published_gen(&g) && if_none_match(r, gen_etag(r, &g, &q))) {
        return gcmon_api_not_modified(r, gen_etag(r, &g, &q));
    }
    if (!(st = gcmon_api_store(r, 1))) {
        return OK;
    }
    if (gc_store_read_board_gen(st, r->pool, &g, &err) != APR_SUCCESS) {
        return gcmon_api_database_error(r, "board", err);
    }
    if (if_none_match(r, gen_etag(r, &g, &q))) {
        return gcmon_api_not_modified(r, gen_etag(r, &g, &q));
    }
    /* This process's copy, brought up to the database's generation: a full
     * board or a delta then costs what changed since the copy's last visit. */
    b.r = r;
    b.q = &q;
    if (gc_board_cache_visit(
            gcmon_api_runtime()->board, st, r->pool,
            q.has_since && q.since_id == g.id && q.since_gen <= g.gen ? render_delta : render_full,
            &b, &err)
        != APR_SUCCESS) {
        return gcmon_api_database_error(r, "board", err);
    }
    return gcmon_api_send_jw(r, &b.w);
}

/* ---------------------------------------------------------------- GET /v1/agents/{id} */

static void hash_row(gc_etag_hash_t *h, const gc_board_row_t *a)
{
    gc_etag_hash_str(h, a->user_id);
    gc_etag_hash_str(h, a->user_name);
    gc_etag_hash_str(h, a->state);
    gc_etag_hash_str(h, a->presence);
    gc_etag_hash_str(h, a->routing_status);
    gc_etag_hash_str(h, a->queue_ids);
    gc_etag_hash_str(h, a->active_queue_ids);
    gc_etag_hash_int(h, a->since);
    gc_etag_hash_int(h, a->alert_id);
    gc_etag_hash_int(h, a->alert_raised_at);
    gc_etag_hash_int(h, a->alert_threshold_seconds);
}

int gcmon_api_agent_get(request_rec *r, const char **params, json_t *body)
{
    struct gc_store *st;
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
    if (gc_store_read_board(st, r->pool, id, NULL, NULL, &rows, &err) != APR_SUCCESS) {
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
