/* mod_gcmon_api read API (SPEC §5.1, §5.2): state history, the live board,
 * one agent, the alerts list. Glue only: query parsing is gc_query.c, the SQL
 * is store_read.c; here are the database connection (mod_dbd), the JSON
 * shapes and the board's ETag. */
#include <stdlib.h>
#include <string.h>

#include <apr_dbd.h>
#include <apr_optional.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <mod_dbd.h>

#include "gc_jsonw.h"
#include "gc_monitor.h"
#include "gc_query.h"
#include "gc_store.h"
#include "gc_store_read.h"
#include "mod_gcmon_api_private.h"

#define DB_KEY "gcmon_api_db"

/* What a database connection carries for us (in its pool's userdata). */
typedef struct {
    gc_store_t *store;
    gc_reader_t *reader;
} conn_db_t;

/* ---------------------------------------------------------------- database */

/* This request's database connection, wrapped: a store and a reader that
 * live in the connection's pool, so statements are prepared once per
 * connection, and the schema is migrated (gc_store_migrate) before the first
 * of them. NULL after a response was sent. */
static conn_db_t *request_db(request_rec *r, int send)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    ap_dbd_t *dbd = acquire ? acquire(r) : NULL;
    conn_db_t *db = NULL;
    gc_store_t *st;
    gc_reader_t *rd;
    const char *err = NULL;
    int version = 0;

    if (!dbd) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      GCMON_LOGNO(1200) "no database connection: %s",
                      acquire ? "mod_dbd could not open one (see its messages above)"
                              : "mod_dbd is not loaded");
        if (send) {
            gcmon_api_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
                                   "The database is unavailable",
                                   acquire ? "no database connection could be opened"
                                           : "mod_dbd is not configured", NULL);
        }
        return NULL;
    }
    apr_pool_userdata_get((void **)&db, DB_KEY, dbd->pool);
    if (db) {
        return db;
    }
    /* First use of this connection: wrap it (sqlite3: WAL, busy_timeout), and
     * migrate unless the schema is already current — checked with a read, as
     * gc_store_migrate takes the database's write lock. */
    st = gc_store_wrap(dbd->pool, dbd->driver, dbd->handle);
    rd = st ? gc_reader_create(dbd->pool, dbd->driver, dbd->handle, r->server) : NULL;
    if (!rd || ((gc_read_schema_version(rd, r->pool, &version) != APR_SUCCESS
                 || version != GC_SCHEMA_VERSION)
                && gc_store_migrate(st, &err) != APR_SUCCESS)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      GCMON_LOGNO(1201) "database schema check failed: %s",
                      err ? err : "the connection could not be wrapped");
        if (send) {
            gcmon_api_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
                                   "The database is unavailable",
                                   "the database schema could not be checked", NULL);
        }
        return NULL;
    }
    db = apr_palloc(dbd->pool, sizeof(*db));
    db->store = st;
    db->reader = rd;
    apr_pool_userdata_setn(db, DB_KEY, NULL, dbd->pool);
    return db;
}

static gc_reader_t *request_reader(request_rec *r)
{
    conn_db_t *db = request_db(r, 1);
    return db ? db->reader : NULL;
}

gc_store_t *gcmon_api_request_store(request_rec *r, int send_problem)
{
    conn_db_t *db = request_db(r, send_problem);
    return db ? db->store : NULL;
}

static int database_error(request_rec *r, const char *what, const char *err)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, GCMON_LOGNO(1202) "%s query failed: %s", what,
                  err ? err : "unknown error");
    return gcmon_api_send_problem(r, HTTP_INTERNAL_SERVER_ERROR, "database_error",
                                  "Database query failed",
                                  "the database query failed; see the server's error log",
                                  NULL);
}

/* ---------------------------------------------------------------- JSON */

/* Send the writer's buffer as application/json (and free it). */
static int send_buffer(request_rec *r, gc_jw_t *w)
{
    apr_size_t len;
    char *text = gc_jw_steal(w, &len);
    apr_bucket_brigade *bb;

    if (!text) {
        return gcmon_api_send_problem(r, HTTP_INTERNAL_SERVER_ERROR, "internal",
                                      "Internal error", "out of memory", NULL);
    }
    r->status = HTTP_OK;
    gcmon_api_common_headers(r);
    ap_set_content_type(r, "application/json; charset=utf-8");
    ap_set_content_length(r, (apr_off_t)len);
    if (r->header_only) {
        free(text);
        return OK;
    }
    /* The buffer becomes a heap bucket (freed with free()): no copy of a
     * multi-megabyte board. */
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_heap_create(text, len, free,
                                                       r->connection->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(r->connection->bucket_alloc));
    return ap_pass_brigade(r->output_filters, bb) == APR_SUCCESS ? OK : AP_FILTER_ERROR;
}

/* 400 with every bad field (SPEC §5: never clamped). */
int gcmon_api_parse_query(request_rec *r, unsigned fields, char kind, gc_query_t *q)
{
    apr_array_header_t *errs;
    json_t *list;
    int i;

    if (gc_query_parse(r->pool, r->args, fields, kind, q, &errs) == 0) {
        return OK;
    }
    list = json_array();
    for (i = 0; i < errs->nelts; i++) {
        const gc_field_error_t *e = &APR_ARRAY_IDX(errs, i, gc_field_error_t);
        json_array_append_new(list, json_pack("{s:s, s:s}", "field", e->field, "message",
                                              apr_pstrcat(r->pool, e->field, " ", e->message,
                                                          NULL)));
    }
    gcmon_api_count_validation("invalid_value");
    gcmon_api_send_problem(r, HTTP_BAD_REQUEST, "validation_failed", "Invalid query parameter",
                           errs->nelts == 1
                               ? apr_pstrcat(r->pool, "query parameter ",
                                             APR_ARRAY_IDX(errs, 0, gc_field_error_t).field,
                                             " ",
                                             APR_ARRAY_IDX(errs, 0, gc_field_error_t).message,
                                             NULL)
                               : apr_psprintf(r->pool, "%d query parameters are invalid",
                                              errs->nelts),
                           list);
    return DONE;
}

/* {"total":…,"limit":…,"offset":…,"next_cursor":…,"data":[ — the rows follow. */
static void page_head(request_rec *r, gc_jw_t *w, const gc_query_t *q, const gc_page_t *pg,
                      char kind)
{
    gc_jw_lit(w, "{\"total\":");
    gc_jw_int(w, pg->total);
    gc_jw_lit(w, ",\"limit\":");
    gc_jw_int(w, q->limit);
    gc_jw_lit(w, ",\"offset\":");
    if (q->has_cursor) {
        gc_jw_lit(w, "null");
    }
    else {
        gc_jw_int(w, q->offset);
    }
    gc_jw_lit(w, ",\"next_cursor\":");
    gc_jw_str(w, pg->has_more ? gc_cursor_encode(r->pool, kind, pg->next.at, pg->next.id)
                              : NULL);
    gc_jw_lit(w, ",\"data\":[");
}

/* ---------------------------------------------------------------- history */

int gcmon_api_read_history(request_rec *r, const char **params)
{
    gc_query_t q;
    gc_page_t pg;
    gc_reader_t *rd;
    const char *err = NULL;
    gc_jw_t w;
    int i;

    if (gcmon_api_parse_query(r, GC_Q_HISTORY, GC_CURSOR_HISTORY, &q) != OK
        || !(rd = request_reader(r))) {
        return OK;
    }
    if (gc_read_history(rd, r->pool, &q, &pg, &err) != APR_SUCCESS) {
        return database_error(r, "history", err);
    }
    gc_jw_init(&w, 512 + (apr_size_t)pg.rows->nelts * 320);
    page_head(r, &w, &q, &pg, GC_CURSOR_HISTORY);
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
    return send_buffer(r, &w);
}

/* ---------------------------------------------------------------- alerts */

int gcmon_api_read_alerts(request_rec *r, const char **params)
{
    gc_query_t q;
    gc_page_t pg;
    gc_reader_t *rd;
    const char *err = NULL;
    gc_jw_t w;
    int i;

    if (gcmon_api_parse_query(r, GC_Q_ALERTS, GC_CURSOR_ALERTS, &q) != OK || !(rd = request_reader(r))) {
        return OK;
    }
    if (gc_read_alerts(rd, r->pool, &q, &pg, &err) != APR_SUCCESS) {
        return database_error(r, "alerts", err);
    }
    gc_jw_init(&w, 512 + (apr_size_t)pg.rows->nelts * 320);
    page_head(r, &w, &q, &pg, GC_CURSOR_ALERTS);
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
    return send_buffer(r, &w);
}

/* ---------------------------------------------------------------- board */

/* The board's ETag is strong and names the rows' content: every field of every
 * agent except the two the clock derives at request time (generated_at,
 * seconds_in_state — a client computes them from `since`). A 128-bit hash (two
 * 64-bit multiply-xorshift lanes, eight bytes at a time) over the fields, each
 * prefixed with its length or a NULL marker, so NULL, "" and field
 * boundaries never collide. Not cryptographic: it only has to change when the
 * content does. */
typedef struct {
    apr_uint64_t a, b;
} etag_hash_t;

#define EH_K1 APR_UINT64_C(0x9E3779B97F4A7C15)
#define EH_K2 APR_UINT64_C(0xC2B2AE3D27D4EB4F)

static void eh_word(etag_hash_t *h, apr_uint64_t w)
{
    h->a = (h->a ^ w) * EH_K1;
    h->a ^= h->a >> 29;
    h->b = (h->b ^ (w + EH_K2)) * EH_K2;
    h->b ^= h->b >> 31;
}

static void eh_str(etag_hash_t *h, const char *s)
{
    apr_size_t n, i;

    if (!s) {
        eh_word(h, APR_UINT64_C(0xFFFFFFFFFFFFFFFF));
        return;
    }
    n = strlen(s);
    eh_word(h, (apr_uint64_t)n);
    for (i = 0; i + 8 <= n; i += 8) {
        apr_uint64_t w;
        memcpy(&w, s + i, 8);
        eh_word(h, w);
    }
    if (i < n) {
        apr_uint64_t w = 0;
        memcpy(&w, s + i, n - i);
        eh_word(h, w);
    }
}

static void eh_int(etag_hash_t *h, apr_int64_t v)
{
    eh_word(h, (apr_uint64_t)v);
}

static void eh_row(etag_hash_t *h, const gc_board_row_t *a)
{
    eh_str(h, a->user_id);
    eh_str(h, a->user_name);
    eh_str(h, a->state);
    eh_str(h, a->presence);
    eh_str(h, a->routing_status);
    eh_str(h, a->queue_ids);
    eh_int(h, a->since);
    eh_int(h, a->alert_id);
    eh_int(h, a->alert_raised_at);
    eh_int(h, a->alert_threshold_seconds);
}

static const char *etag_text(apr_pool_t *p, const etag_hash_t *h)
{
    return apr_psprintf(p, "\"%016" APR_UINT64_T_HEX_FMT "%016" APR_UINT64_T_HEX_FMT "\"",
                        h->a, h->b);
}

/* Does If-None-Match (a list of entity tags, or "*") match etag? RFC 9110
 * §13.1.2: weak comparison, so W/"x" matches "x". */
static int if_none_match(request_rec *r, const char *etag)
{
    const char *inm = apr_table_get(r->headers_in, "If-None-Match");
    size_t elen = strlen(etag);

    if (!inm) {
        return 0;
    }
    while (*inm) {
        const char *start, *end;

        while (*inm == ' ' || *inm == '\t' || *inm == ',') {
            inm++;
        }
        if (*inm == '*') {
            return 1;
        }
        if (inm[0] == 'W' && inm[1] == '/') {
            inm += 2;
        }
        if (*inm != '"') {
            return 0;   /* malformed: no match, send the representation */
        }
        start = inm;
        end = strchr(inm + 1, '"');
        if (!end) {
            return 0;
        }
        if ((size_t)(end + 1 - start) == elen && !strncmp(start, etag, elen)) {
            return 1;
        }
        inm = end + 1;
    }
    return 0;
}

/* 304 with the validator and no body. */
static int not_modified(request_rec *r, const char *etag)
{
    gcmon_api_common_headers(r);
    apr_table_setn(r->headers_out, "ETag", etag);
    r->status = HTTP_NOT_MODIFIED;
    return OK;
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

int gcmon_api_read_agents(request_rec *r, const char **params)
{
    gc_query_t q;
    gc_reader_t *rd;
    apr_array_header_t *rows;
    const char *err = NULL, *etag;
    etag_hash_t h = { APR_UINT64_C(0xcbf29ce484222325), APR_UINT64_C(0x84222325cbf29ce4) };
    apr_time_t now;
    gc_jw_t w;
    int i;

    if (gcmon_api_parse_query(r, GC_Q_BOARD, GC_CURSOR_HISTORY, &q) != OK || !(rd = request_reader(r))) {
        return OK;
    }
    if (gc_read_board(rd, r->pool, NULL, q.state, q.queue_id, &rows, &err) != APR_SUCCESS) {
        return database_error(r, "board", err);
    }
    for (i = 0; i < rows->nelts; i++) {
        eh_row(&h, &APR_ARRAY_IDX(rows, i, gc_board_row_t));
    }
    eh_int(&h, rows->nelts);
    etag = etag_text(r->pool, &h);
    if (if_none_match(r, etag)) {
        return not_modified(r, etag);
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
    return send_buffer(r, &w);
}

int gcmon_api_read_agent(request_rec *r, const char **params)
{
    gc_reader_t *rd;
    apr_array_header_t *rows;
    const char *err = NULL, *etag;
    etag_hash_t h = { APR_UINT64_C(0xcbf29ce484222325), APR_UINT64_C(0x84222325cbf29ce4) };
    const char *id = params[0];
    gc_jw_t w;

    if (!gc_id_valid(id)) {
        return gcmon_api_send_problem(r, HTTP_NOT_FOUND, "agent_not_found", "Agent not found",
                                      "no agent has this id", NULL);
    }
    if (!(rd = request_reader(r))) {
        return OK;
    }
    if (gc_read_board(rd, r->pool, id, NULL, NULL, &rows, &err) != APR_SUCCESS) {
        return database_error(r, "agent", err);
    }
    if (rows->nelts == 0) {
        return gcmon_api_send_problem(r, HTTP_NOT_FOUND, "agent_not_found", "Agent not found",
                                      "no agent with this id is monitored", NULL);
    }
    eh_row(&h, &APR_ARRAY_IDX(rows, 0, gc_board_row_t));
    etag = etag_text(r->pool, &h);
    if (if_none_match(r, etag)) {
        return not_modified(r, etag);
    }
    apr_table_setn(r->headers_out, "ETag", etag);
    gc_jw_init(&w, 512);
    board_item(&w, &APR_ARRAY_IDX(rows, 0, gc_board_row_t), apr_time_now());
    return send_buffer(r, &w);
}
