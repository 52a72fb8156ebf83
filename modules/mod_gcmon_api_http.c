/* mod_gcmon_api HTTP helpers, a leaf of the glue: responses (JSON, problem,
 * core results), the admin-write guard and request bodies, query parsing,
 * the request's database connection and the audit trail. Resources call
 * these; these call only the core. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_dbd.h>
#include <apr_optional.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_dbd.h>
#include <util_filter.h>

#include "gc_audit.h"
#include "gc_metrics.h"
#include "gc_store.h"
#include "mod_gcmon_api_private.h"

#define DB_KEY "gcmon_api_db"

/* ---------------------------------------------------------------- responses */

void gcmon_api_common_headers(request_rec *r)
{
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
}

int gcmon_api_send_text(request_rec *r, int status, const char *ctype, const char *text,
                        apr_size_t len)
{
    r->status = status;
    gcmon_api_common_headers(r);
    ap_set_content_type(r, ctype);
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only) {
        ap_rwrite(text, (int)len, r);
    }
    return OK;
}

int gcmon_api_send_json(request_rec *r, int status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
    int rc;

    json_decref(doc);
    if (!text) {
        text = strdup("{\"type\":\"" GC_PROBLEM_BASE "internal\",\"title\":\"Internal error\","
                      "\"status\":500,\"detail\":\"response could not be encoded\"}");
        status = HTTP_INTERNAL_SERVER_ERROR;
    }
    rc = gcmon_api_send_text(r, status, "application/json; charset=utf-8", text, strlen(text));
    free(text);
    return rc;
}

int gcmon_api_send_jw(request_rec *r, gc_jw_t *w)
{
    apr_size_t len;
    char *text = gc_jw_steal(w, &len);
    apr_bucket_brigade *bb;

    if (!text) {
        return gcmon_api_send_problem(r, HTTP_INTERNAL_SERVER_ERROR, "internal", "Internal error",
                                      "out of memory");
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
    APR_BRIGADE_INSERT_TAIL(bb,
                            apr_bucket_heap_create(text, len, free, r->connection->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(r->connection->bucket_alloc));
    return ap_pass_brigade(r->output_filters, bb) == APR_SUCCESS ? OK : AP_FILTER_ERROR;
}

static void set_retry_after(request_rec *r, apr_interval_time_t after)
{
    apr_int64_t secs = (after + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC;

    apr_table_setn(r->headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_INT64_T_FMT, secs > 0 ? secs : 1));
}

int gcmon_api_send_result(request_rec *r, gc_result_t *res)
{
    json_t *doc = gc_result_json(res);
    char *text;

    if (res->etag) {
        apr_table_setn(r->headers_out, "ETag", res->etag);
    }
    if (!gc_result_failed(res)) {
        return gcmon_api_send_json(r, res->status, doc);
    }
    if (res->retry_after > 0) {
        set_retry_after(r, res->retry_after);
    }
    if (res->error_type) {
        gcmon_api_count_validation(res->error_type);
    }
    text = doc ? json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(doc);
    gcmon_api_send_text(r, res->status, "application/problem+json", text ? text : "{}",
                        text ? strlen(text) : 2);
    free(text);
    return OK;
}

int gcmon_api_send_problem(request_rec *r, int status, const char *slug, const char *title,
                           const char *detail)
{
    gc_result_t *res = gc_result_make(r->pool);

    gc_result_problem(res, status, slug, title, detail);
    return gcmon_api_send_result(r, res);
}

int gcmon_api_not_modified(request_rec *r, const char *etag)
{
    gcmon_api_common_headers(r);
    apr_table_setn(r->headers_out, "ETag", etag);
    r->status = HTTP_NOT_MODIFIED;
    return OK;
}

void gcmon_api_count_validation(const char *type)
{
    gcmon_api_runtime_t *rt = gcmon_api_runtime();
    if (rt && rt->shared.metrics) {
        gc_metrics_inc(rt->shared.metrics, GC_MET_VALIDATION_ERRORS, type, NULL);
    }
}

/* ---------------------------------------------------------------- request body */

/* Read the body into *buf (NUL-terminated), refusing more than max bytes. The
 * buffer grows as data arrives (a Content-Length only sizes the first
 * allocation): a client announcing GcmonMaxBody bytes and sending none costs
 * nothing. */
static int read_body(request_rec *r, long max, char **buf, apr_size_t *len)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_bucket_brigade *bb;
    char *out;
    apr_size_t used = 0, cap = 1024;
    int seen_eos = 0;

    if (cl) {
        char *end;
        apr_off_t n;
        if (apr_strtoff(&n, cl, &end, 10) != APR_SUCCESS || *end || n < 0) {
            return HTTP_BAD_REQUEST;
        }
        if (n > max) {
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
        if (n > 0 && (apr_size_t)n < HUGE_STRING_LEN) {
            cap = (apr_size_t)n;
        }
    }
    out = apr_palloc(r->pool, cap + 1);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!seen_eos) {
        apr_bucket *b;
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ,
                                         HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t n;
            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            if (apr_bucket_read(b, &data, &n, APR_BLOCK_READ) != APR_SUCCESS) {
                return HTTP_BAD_REQUEST;
            }
            if (used + n > (apr_size_t)max) {
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            if (used + n > cap) {
                char *bigger;
                while (cap < used + n) {
                    cap = cap * 2 < (apr_size_t)max ? cap * 2 : (apr_size_t)max;
                }
                bigger = apr_palloc(r->pool, cap + 1);
                memcpy(bigger, out, used);
                out = bigger;
            }
            memcpy(out + used, data, n);
            used += n;
        }
        apr_brigade_cleanup(bb);
    }
    out[used] = '\0';
    *buf = out;
    *len = used;
    return OK;
}

static int is_json_type(const char *ct)
{
    size_t n = sizeof("application/json") - 1;
    if (!ct) {
        return 0;
    }
    while (*ct == ' ') {
        ct++;
    }
    return !strncasecmp(ct, "application/json", n)
           && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static int refuse(request_rec *r, int status, const char *type, const char *slug, const char *title,
                  const char *detail)
{
    gcmon_api_count_validation(type);
    gcmon_api_send_problem(r, status, slug, title, detail);
    return DONE;
}

/* The body as one strict JSON object: OK, or DONE after a 400. */
static int parse_object(request_rec *r, const char *buf, apr_size_t len, json_t **body)
{
    json_error_t jerr;

    *body = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!*body) {
        int dup = json_error_code(&jerr) == json_error_duplicate_key;
        return refuse(
            r, HTTP_BAD_REQUEST, dup ? "duplicate_key" : "malformed_json",
            dup ? "duplicate_key" : "malformed_json",
            dup ? "Duplicate key in JSON body" : "Malformed JSON body",
            apr_psprintf(r->pool, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text));
    }
    if (!json_is_object(*body)) {
        json_decref(*body);
        *body = NULL;
        return refuse(r, HTTP_BAD_REQUEST, "invalid_type", "invalid_body", "Invalid body",
                      "the body must be a JSON object");
    }
    return OK;
}

/* A JSON body of at most GcmonMaxBody bytes, read whole: OK, or the 415,
 * 413 or 400 problem sent (DONE). */
static int json_body(request_rec *r, const char *detail_415, const char **buf, apr_size_t *len)
{
    long max = gcmon_api_max_body(gcmon_api_conf());
    char *out = NULL;
    int rc;

    if (!is_json_type(apr_table_get(r->headers_in, "Content-Type"))) {
        ap_discard_request_body(r);
        return refuse(r, HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                      "unsupported_media_type", "Unsupported media type", detail_415);
    }
    rc = read_body(r, max, &out, len);
    if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        r->connection->keepalive = AP_CONN_CLOSE;
        return refuse(r, rc, "body_too_large", "body_too_large", "Request body too large",
                      apr_psprintf(r->pool, "the body exceeds GcmonMaxBody (%ld bytes)", max));
    }
    if (rc != OK) {
        gcmon_api_send_problem(r, HTTP_BAD_REQUEST, "bad_body", "Request body could not be read",
                               NULL);
        return DONE;
    }
    *buf = out;
    return OK;
}

int gcmon_api_admin_guard(request_rec *r, json_t **body)
{
    const char *site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
    const char *marker = apr_table_get(r->headers_in, "X-Gcmon-Request");
    const char *buf = NULL;
    apr_size_t len = 0;
    int rc;

    *body = NULL;
    if (site && !strcasecmp(site, "cross-site")) {
        return refuse(r, HTTP_FORBIDDEN, "csrf_rejected", "cross_site_request",
                      "Cross-site request refused",
                      "admin writes are refused when Sec-Fetch-Site is cross-site");
    }
    if (!marker || strcmp(marker, "1")) {
        return refuse(r, HTTP_FORBIDDEN, "csrf_rejected", "missing_request_header",
                      "Missing X-Gcmon-Request header",
                      "admin writes must carry the header X-Gcmon-Request: 1");
    }
    if ((rc = json_body(r, "admin writes take Content-Type: application/json", &buf, &len)) != OK) {
        return rc;
    }
    return len == 0 ? OK : parse_object(r, buf, len, body);
}

int gcmon_api_raw_body(request_rec *r, const char **buf, apr_size_t *len)
{
    return json_body(r, "the body must be Content-Type: application/json", buf, len);
}

/* ---------------------------------------------------------------- query */

int gcmon_api_parse_query(request_rec *r, unsigned fields, char kind, gc_query_t *q)
{
    gc_result_t *res;
    apr_array_header_t *errs;
    int i;

    if (gc_query_parse(r->pool, r->args, fields, kind, q, &errs) == 0) {
        return OK;
    }
    res = gc_result_make(r->pool);
    for (i = 0; i < errs->nelts; i++) {
        const gc_field_error_t *e = &APR_ARRAY_IDX(errs, i, gc_field_error_t);
        gc_result_field(res, e->field, apr_pstrcat(r->pool, e->field, " ", e->message, NULL));
    }
    gc_result_problem(res, HTTP_BAD_REQUEST, "validation_failed", "Invalid query parameter",
                      errs->nelts == 1
                          ? apr_pstrcat(r->pool, "query parameter ",
                                        APR_ARRAY_IDX(errs, 0, gc_field_error_t).field, " ",
                                        APR_ARRAY_IDX(errs, 0, gc_field_error_t).message, NULL)
                          : apr_psprintf(r->pool, "%d query parameters are invalid", errs->nelts));
    gc_result_error_type(res, "invalid_value");
    gcmon_api_send_result(r, res);
    return DONE;
}

/* {"total":…,"limit":…,"offset":…,"next_cursor":…,"data":[ — the rows follow. */
void gcmon_api_page_head(request_rec *r, gc_jw_t *w, const gc_query_t *q, const gc_page_t *pg,
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
    gc_jw_str(w, pg->has_more ? gc_cursor_encode(r->pool, kind, pg->next.at, pg->next.id) : NULL);
    gc_jw_lit(w, ",\"data\":[");
}

int gcmon_api_send_page(request_rec *r, const gc_query_t *q, const gc_page_t *pg, char kind,
                        gcmon_api_row_fn *row)
{
    gc_jw_t w;
    int i;

    gc_jw_init(&w, 512 + (apr_size_t)pg->rows->nelts * 256);
    gcmon_api_page_head(r, &w, q, pg, kind);
    for (i = 0; i < pg->rows->nelts; i++) {
        json_t *j = row(r, pg->rows->elts + (apr_size_t)i * (apr_size_t)pg->rows->elt_size);
        char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

        json_decref(j);
        if (!text) {
            gc_jw_free(&w);
            return gcmon_api_send_problem(r, HTTP_INTERNAL_SERVER_ERROR, "internal",
                                          "Internal error", "response could not be encoded");
        }
        if (i) {
            gc_jw_lit(&w, ",");
        }
        gc_jw_raw(&w, text, strlen(text));
        free(text);
    }
    gc_jw_lit(&w, "]}");
    return gcmon_api_send_jw(r, &w);
}

/* ---------------------------------------------------------------- database */

static void db_unavailable(request_rec *r, int send, const char *detail)
{
    if (send) {
        gcmon_api_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
                               "The database is unavailable", detail);
    }
}

/* This request's database connection, wrapped: a store that lives in the
 * connection's pool, so statements are prepared once per connection, and the
 * schema is migrated (gc_store_migrate) before the first of them — checked
 * with a read first, as migrating takes the write lock. NULL after a response
 * was sent (when send). */
gc_store_t *gcmon_api_store(request_rec *r, int send)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    ap_dbd_t *dbd = acquire ? acquire(r) : NULL;
    gc_store_t *st = NULL;
    const char *err = NULL;
    int version = 0;

    if (!dbd) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, GCMON_LOGNO(1200) "no database connection: %s",
                      acquire ? "mod_dbd could not open one (see its messages above)"
                              : "mod_dbd is not loaded");
        db_unavailable(r, send,
                       acquire ? "no database connection could be opened"
                               : "mod_dbd is not configured");
        return NULL;
    }
    apr_pool_userdata_get((void **)&st, DB_KEY, dbd->pool);
    if (st) {
        return st;
    }
    st = gc_store_wrap(dbd->pool, dbd->driver, dbd->handle);
    if (!st
        || ((gc_store_schema_version(st, r->pool, &version) != APR_SUCCESS
             || version != GC_SCHEMA_VERSION)
            && gc_store_migrate(st, &err) != APR_SUCCESS)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      GCMON_LOGNO(1201) "database schema check failed: %s",
                      err ? err : "the connection could not be wrapped");
        db_unavailable(r, send, "the database schema could not be checked");
        return NULL;
    }
    /* The totals cache is shared by the connections of this server's database. */
    gc_store_set_scope(st, r->server);
    apr_pool_userdata_setn(st, DB_KEY, NULL, dbd->pool);
    return st;
}

int gcmon_api_database_error(request_rec *r, const char *what, const char *err)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, GCMON_LOGNO(1202) "%s query failed: %s", what,
                  err ? err : "unknown error");
    return gcmon_api_send_problem(r, HTTP_INTERNAL_SERVER_ERROR, "database_error",
                                  "Database query failed",
                                  "the database query failed; see the server's error log");
}

/* ---------------------------------------------------------------- upstream */

apr_time_t gcmon_api_deadline(request_rec *r)
{
    return r->request_time + gcmon_api_request_deadline(gcmon_api_conf());
}

int gcmon_api_upstream_ready(gc_result_t *res)
{
    gcmon_api_runtime_t *run = gcmon_api_runtime();

    if (run && run->upstream && run->presences) {
        return 1;
    }
    gc_result_problem(res, HTTP_SERVICE_UNAVAILABLE, "upstream_not_configured",
                      "No Genesys Cloud connection is configured",
                      "set GcmonClientID and GcmonClientSecret");
    return 0;
}

int gcmon_api_webhook_configured(const char *target)
{
    APR_OPTIONAL_FN_TYPE(gcmon_stream_webhook_configured) *fn =
        APR_RETRIEVE_OPTIONAL_FN(gcmon_stream_webhook_configured);
    return fn && fn(target);
}

/* ---------------------------------------------------------------- audit */

apr_status_t gcmon_api_audit(request_rec *r, const char *action, const char *target,
                             const json_t *request, const json_t *result, int status,
                             apr_time_t started, const char *outbox_target, const char *outbox_body)
{
    return gcmon_api_audit_with(r, action, target, request, result, status, started, outbox_target,
                                outbox_body, NULL, NULL);
}

apr_status_t gcmon_api_audit_with(request_rec *r, const char *action, const char *target,
                                  const json_t *request, const json_t *result, int status,
                                  apr_time_t started, const char *outbox_target,
                                  const char *outbox_body, gcmon_api_audit_store_fn *store,
                                  void *baton)
{
    gc_store_t *st = gcmon_api_store(r, 0);
    gc_audit_rec_t a;
    const char *err = "no database connection";
    apr_status_t rv = APR_EGENERAL;
    int attempt;

    memset(&a, 0, sizeof(a));
    a.at = apr_time_now();
    a.actor = gcmon_api_actor(r);
    a.actor_source = gcmon_api_actor_source(r);
    a.action = action;
    a.target = target;
    a.request = request ? gc_json_text(r->pool, request) : NULL;
    a.result = result ? gc_json_text(r->pool, result) : NULL;
    a.status = status;
    a.latency_ms = (apr_int64_t)apr_time_as_msec(a.at - started);
    /* A second try rides out a busy database (another writer's long batch). */
    for (attempt = 0; st && attempt < 2 && rv != APR_SUCCESS; attempt++) {
        rv = store ? store(st, r->pool, &a, outbox_target, outbox_body, baton, &err)
                   : gc_store_audit_add(st, r->pool, &a, outbox_target, outbox_body, &err);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, 0, r,
            GCMON_LOGNO(1310) "audit row NOT stored (%s): actor=%s action=%s "
                              "target=%s status=%d request=%s result=%s%s%s",
            err, a.actor, action, target ? target : "-", status, a.request ? a.request : "null",
            a.result ? a.result : "null", outbox_target ? "; the webhook delivery to " : "",
            outbox_target ? apr_pstrcat(r->pool, outbox_target, " is lost too", NULL) : "");
    }
    return rv;
}
