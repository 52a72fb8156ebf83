/* mod_gcmon_api request handling: routing, RFC 9457 errors, the admin-write
 * guard (SPEC §5) and the endpoints that need no database. */
#include <string.h>
#include <strings.h>

#include <apr_optional.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

#include "gc_audit.h"
#include "gc_version.h"
#include "mod_gcmon_api_private.h"

#define PROBLEM_BASE "urn:gcmon:problem:"

typedef struct route route_t;
typedef int route_fn(request_rec *r, const route_t *rt, const char **params, json_t *body);

struct route {
    const char *pattern;    /* segments after the mount point; "*" matches one segment */
    int method;             /* M_GET, M_POST, … */
    const char *name;       /* metrics route label */
    int admin_write;        /* apply the admin-write guard and parse a JSON body */
    route_fn *fn;
};

#define MAX_SEGMENTS 8

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
        text = strdup("{\"type\":\"" PROBLEM_BASE "internal\",\"title\":\"Internal error\","
                      "\"status\":500,\"detail\":\"response could not be encoded\"}");
        status = HTTP_INTERNAL_SERVER_ERROR;
    }
    rc = gcmon_api_send_text(r, status, "application/json; charset=utf-8", text, strlen(text));
    free(text);
    return rc;
}

int gcmon_api_send_problem_ex(request_rec *r, int status, const char *slug, const char *title,
                              const char *detail, json_t *errors, json_t *extra)
{
    json_t *p = json_pack("{s:s, s:s, s:i}", "type", apr_pstrcat(r->pool, PROBLEM_BASE, slug,
                                                                 NULL),
                          "title", title, "status", status);
    char *text;

    if (extra) {
        json_object_update_missing(p, extra);
        json_decref(extra);
    }
    if (detail) {
        json_t *d = json_string(detail);
        json_object_set_new(p, "detail", d ? d : json_string("(detail not valid UTF-8)"));
    }
    if (errors) {
        json_object_set_new(p, "errors", errors);
    }
    text = json_dumps(p, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(p);
    gcmon_api_send_text(r, status, "application/problem+json", text ? text : "{}",
                        text ? strlen(text) : 2);
    free(text);
    return OK;
}

int gcmon_api_send_problem(request_rec *r, int status, const char *slug, const char *title,
                           const char *detail, json_t *errors)
{
    return gcmon_api_send_problem_ex(r, status, slug, title, detail, errors, NULL);
}

json_t *gcmon_api_field_error(const char *field, const char *message)
{
    return json_pack("[{s:s, s:s}]", "field", field, "message", message);
}

void gcmon_api_count_validation(const char *type)
{
    gcmon_api_runtime_t *rt = gcmon_api_runtime();
    if (rt && rt->shared.metrics) {
        gc_metrics_inc(rt->shared.metrics, GC_MET_VALIDATION_ERRORS, type, NULL);
    }
}

void gcmon_api_upstream_problem(const gc_error_t *e, int *status, const char **slug,
                                const char **title)
{
    *status = HTTP_BAD_GATEWAY;
    switch (e->kind) {
    case GC_ERR_THROTTLED:
    case GC_ERR_BUDGET:
        *status = HTTP_SERVICE_UNAVAILABLE;
        *slug = "upstream_throttled";
        *title = "Genesys Cloud throttling outlasted the retry budget";
        break;
    case GC_ERR_CONFIG:
        *status = HTTP_INTERNAL_SERVER_ERROR;
        *slug = "upstream_misconfigured";
        *title = "The Genesys Cloud connection is misconfigured";
        break;
    case GC_ERR_AUTH:
        *slug = "upstream_auth_failed";
        *title = "Genesys Cloud refused gcmon's credentials";
        break;
    case GC_ERR_FORBIDDEN:
        *slug = "upstream_forbidden";
        *title = "gcmon's OAuth client lacks a permission";
        break;
    default:
        *slug = "upstream_error";
        *title = "Genesys Cloud request failed";
        break;
    }
}

void gcmon_api_set_retry_after(request_rec *r, const gc_error_t *e)
{
    apr_int64_t secs = (e->retry_after + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC;

    apr_table_setn(r->headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_INT64_T_FMT, secs > 0 ? secs : 1));
}

/* Map an upstream failure to the client's response (SPEC §5.3: 502/503). */
int gcmon_api_send_upstream_error(request_rec *r, const gc_error_t *e)
{
    int status;
    const char *slug, *title;

    gcmon_api_upstream_problem(e, &status, &slug, &title);
    if (status == HTTP_SERVICE_UNAVAILABLE) {
        gcmon_api_set_retry_after(r, e);
    }
    return gcmon_api_send_problem(r, status, slug, title, e->message, NULL);
}

/* ---------------------------------------------------------------- request body */

/* Read the body into *buf (NUL-terminated), refusing more than max bytes. */
static int read_body(request_rec *r, long max, char **buf, apr_size_t *len)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_bucket_brigade *bb;
    char *out;
    apr_size_t used = 0;
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
    }
    out = apr_palloc(r->pool, (apr_size_t)max + 1);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!seen_eos) {
        apr_bucket *b;
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                                         APR_BLOCK_READ, HUGE_STRING_LEN);
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
    return !strncasecmp(ct, "application/json", n) && (ct[n] == '\0' || ct[n] == ';'
                                                       || ct[n] == ' ');
}

/* SPEC §5: cross-site refusal, custom header, JSON only, size cap, strict JSON.
 * Returns OK with *body (new reference; NULL for an empty body) or a response
 * already sent (DONE). */
static int admin_guard(request_rec *r, json_t **body)
{
    const char *site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
    const char *marker = apr_table_get(r->headers_in, "X-Gcmon-Request");
    long max = gcmon_api_max_body(gcmon_api_conf());
    json_error_t jerr;
    char *buf = NULL;
    apr_size_t len = 0;
    int rc;

    *body = NULL;
    if (site && !strcasecmp(site, "cross-site")) {
        gcmon_api_count_validation("csrf_rejected");
        gcmon_api_send_problem(r, HTTP_FORBIDDEN, "cross_site_request",
                               "Cross-site request refused",
                               "admin writes are refused when Sec-Fetch-Site is cross-site",
                               NULL);
        return DONE;
    }
    if (!marker || strcmp(marker, "1")) {
        gcmon_api_count_validation("csrf_rejected");
        gcmon_api_send_problem(r, HTTP_FORBIDDEN, "missing_request_header",
                               "Missing X-Gcmon-Request header",
                               "admin writes must carry the header X-Gcmon-Request: 1", NULL);
        return DONE;
    }
    if (!is_json_type(apr_table_get(r->headers_in, "Content-Type"))) {
        gcmon_api_count_validation("unsupported_media_type");
        gcmon_api_send_problem(r, HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                               "Unsupported media type",
                               "admin writes take Content-Type: application/json", NULL);
        return DONE;
    }
    rc = read_body(r, max, &buf, &len);
    if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        gcmon_api_count_validation("body_too_large");
        r->connection->keepalive = AP_CONN_CLOSE;
        gcmon_api_send_problem(r, rc, "body_too_large", "Request body too large",
                               apr_psprintf(r->pool, "the body exceeds GcmonMaxBody (%ld bytes)",
                                            max), NULL);
        return DONE;
    }
    if (rc != OK) {
        gcmon_api_send_problem(r, HTTP_BAD_REQUEST, "bad_body", "Request body could not be read",
                               NULL, NULL);
        return DONE;
    }
    if (len == 0) {
        return OK;
    }
    *body = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!*body) {
        int dup = json_error_code(&jerr) == json_error_duplicate_key;
        gcmon_api_count_validation(dup ? "duplicate_key" : "malformed_json");
        gcmon_api_send_problem(r, HTTP_BAD_REQUEST, dup ? "duplicate_key" : "malformed_json",
                               dup ? "Duplicate key in JSON body" : "Malformed JSON body",
                               apr_psprintf(r->pool, "line %d, column %d: %s", jerr.line,
                                            jerr.column, jerr.text), NULL);
        return DONE;
    }
    if (!json_is_object(*body)) {
        json_decref(*body);
        *body = NULL;
        gcmon_api_count_validation("invalid_type");
        gcmon_api_send_problem(r, HTTP_BAD_REQUEST, "invalid_body", "Invalid body",
                               "the body must be a JSON object", NULL);
        return DONE;
    }
    return OK;
}

/* ---------------------------------------------------------------- endpoints */

static int health(request_rec *r, const route_t *rt, const char **params, json_t *body)
{
    return gcmon_api_send_json(r, HTTP_OK, json_pack("{s:s, s:s}", "status", "ok", "version",
                                                     GCMON_VERSION));
}

static int metrics(request_rec *r, const route_t *rt, const char **params, json_t *body)
{
    gcmon_api_runtime_t *run = gcmon_api_runtime();
    const char *text;

    if (!run || !run->shared.metrics) {
        return gcmon_api_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "metrics_unavailable",
                                      "Metrics are not available", NULL, NULL);
    }
    /* The budget's window slides by itself: read it when asked. */
    if (run->shared.budget) {
        gc_metrics_set(run->shared.metrics, GC_MET_BUDGET_USED, NULL, NULL,
                       gc_budget_used(run->shared.budget));
        gc_metrics_set(run->shared.metrics, GC_MET_BUDGET_LIMIT, NULL, NULL,
                       gc_budget_limit(run->shared.budget));
    }
    text = gc_metrics_render(run->shared.metrics, r->pool);
    return gcmon_api_send_text(r, HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text,
                               strlen(text));
}

/* SPEC §5.2: served by mod_gcmon_stream from its shared-memory status. */
static int stream_status(request_rec *r, const route_t *rt, const char **params, json_t *body)
{
    APR_OPTIONAL_FN_TYPE(gcmon_stream_status_json) *status =
        APR_RETRIEVE_OPTIONAL_FN(gcmon_stream_status_json);
    const char *text = status ? status(r->pool) : NULL;

    if (!text) {
        text = "{\"enabled\":false,\"holder\":null,\"connected\":false,\"channels\":[],"
               "\"agents_monitored\":0,\"last_event_at\":null,\"events_total\":0,"
               "\"reconnects_total\":0,\"last_error\":null}";
    }
    return gcmon_api_send_text(r, HTTP_OK, "application/json; charset=utf-8", text, strlen(text));
}

/* Operator's connection test: token + GET /api/v2/organizations/me. */
static int upstream_check(request_rec *r, const route_t *rt, const char **params, json_t *body)
{
    gcmon_api_runtime_t *run = gcmon_api_runtime();
    json_t *renew = body ? json_object_get(body, "renew_token") : NULL;
    gc_request_t req;
    gc_response_t *resp = NULL;
    gc_error_t *err = NULL;
    apr_time_t start = apr_time_now();
    const char *actor = r->user ? r->user : "-";
    json_t *audit_req, *result;

    if (renew && !json_is_boolean(renew)) {
        gcmon_api_count_validation("invalid_type");
        return gcmon_api_send_problem(r, HTTP_BAD_REQUEST, "validation_failed", "Invalid request",
                                      "renew_token must be a boolean",
                                      gcmon_api_field_error("renew_token", "must be a boolean"));
    }
    if (!run || !run->upstream) {
        return gcmon_api_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "upstream_not_configured",
                                      "No Genesys Cloud connection is configured",
                                      "set GcmonClientID and GcmonClientSecret", NULL);
    }
    if (json_is_true(renew)) {
        gc_upstream_invalidate_token(run->upstream);
    }
    memset(&req, 0, sizeof(req));
    req.op = "org_get";
    req.method = "GET";
    req.path = "/api/v2/organizations/me";
    audit_req = json_pack("{s:b}", "renew_token", json_is_true(renew));
    if (gc_upstream_call(run->upstream, r->pool, &req, &resp, &err) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      GCMON_LOGNO(1101) "upstream check by %s failed: %s (%s)", actor,
                      gc_err_kind_name(err->kind), err->message ? err->message : "");
        gcmon_api_send_upstream_error(r, err);
        result = json_pack("{s:s, s:s?}", "error", gc_err_kind_name(err->kind), "detail",
                           err->message);
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, GCMON_LOGNO(1100) "upstream check by %s: ok",
                      actor);
        result = json_pack(
            "{s:s, s:{s:O?, s:O?}, s:s, s:i, s:I}", "status", "ok", "organization",
            "id", json_object_get(resp->json, "id"), "name", json_object_get(resp->json, "name"),
            "api_url", gcmon_api_conf()->conn.api_url, "attempts", resp->attempts,
            "latency_ms", (json_int_t)apr_time_as_msec(apr_time_now() - start));
        gcmon_api_send_json(r, HTTP_OK, json_incref(result));
    }
    gcmon_api_audit(r, GC_AUDIT_UPSTREAM_CHECK, NULL, audit_req, result, r->status, start,
                    NULL, NULL);
    json_decref(audit_req);
    json_decref(result);
    return OK;
}

/* The read API lives in mod_gcmon_api_read.c. */
static int history(request_rec *r, const route_t *rt, const char **params, json_t *body)
{
    return gcmon_api_read_history(r, params);
}

static int agents(request_rec *r, const route_t *rt, const char **params, json_t *body)
{
    return gcmon_api_read_agents(r, params);
}

static int agent(request_rec *r, const route_t *rt, const char **params, json_t *body)
{
    return gcmon_api_read_agent(r, params);
}

static int alerts(request_rec *r, const route_t *rt, const char **params, json_t *body)
{
    return gcmon_api_read_alerts(r, params);
}

static int status_get(request_rec *r, const route_t *rt, const char **params, json_t *body)
{
    return gcmon_api_status_get(r, params);
}

static int status_put(request_rec *r, const route_t *rt, const char **params, json_t *body)
{
    return gcmon_api_status_put(r, params, body);
}

static int audit_list(request_rec *r, const route_t *rt, const char **params, json_t *body)
{
    return gcmon_api_audit_list(r, params);
}

static const route_t routes[] = {
    { "v1/health", M_GET, "health", 0, health },
    { "v1/metrics", M_GET, "metrics", 0, metrics },
    { "v1/stream", M_GET, "stream", 0, stream_status },
    { "v1/agent-status/history", M_GET, "history", 0, history },
    { "v1/agents", M_GET, "agents", 0, agents },
    { "v1/agents/*", M_GET, "agent", 0, agent },
    { "v1/alerts", M_GET, "alerts", 0, alerts },
    { "v1/admin/upstream/check", M_POST, "upstream_check", 1, upstream_check },
    { "v1/admin/agents/*/status", M_GET, "admin_status", 0, status_get },
    { "v1/admin/agents/*/status", M_PUT, "admin_status", 1, status_put },
    { "v1/admin/audit", M_GET, "admin_audit", 0, audit_list },
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

/* ---------------------------------------------------------------- dispatch */

/* The request path below the handler's mount point, split into segments. */
static int split_path(request_rec *r, const char **seg)
{
    gcmon_api_dir_t *d = ap_get_module_config(r->per_dir_config, &gcmon_api_module);
    const char *rel = r->uri;
    size_t blen = d && d->base ? strlen(d->base) : 0;
    char *copy, *tok, *state;
    int n = 0;

    if (blen && !strncmp(rel, d->base, blen) && (rel[blen] == '/' || rel[blen] == '\0')) {
        rel += blen;
    }
    else if ((tok = strstr(rel, "/v1/")) || (tok = strstr(rel, "/v1"))) {
        rel = tok;
    }
    copy = apr_pstrdup(r->pool, rel);
    for (tok = apr_strtok(copy, "/", &state); tok; tok = apr_strtok(NULL, "/", &state)) {
        if (n == MAX_SEGMENTS) {
            return -1;
        }
        seg[n++] = tok;
    }
    return n;
}

static int match(const route_t *rt, const char **seg, int n, const char **params)
{
    char *pat = strdup(rt->pattern), *tok, *state;
    int i = 0, np = 0, ok = 1;

    for (tok = strtok_r(pat, "/", &state); tok; tok = strtok_r(NULL, "/", &state), i++) {
        if (i >= n || (strcmp(tok, "*") && strcmp(tok, seg[i]))) {
            ok = 0;
            break;
        }
        if (!strcmp(tok, "*")) {
            params[np++] = seg[i];
        }
    }
    free(pat);
    return ok && i == n;
}

/* ap_method_name_of() answers "HEAD" for M_GET, which shares its number. */
static const char *method_name(int m)
{
    switch (m) {
    case M_GET: return "GET";
    case M_PUT: return "PUT";
    case M_POST: return "POST";
    case M_DELETE: return "DELETE";
    case M_PATCH: return "PATCH";
    default: return "OPTIONS";
    }
}

static void count_request(const char *route, int status)
{
    gcmon_api_runtime_t *run = gcmon_api_runtime();
    if (run && run->shared.metrics) {
        gc_metrics_inc(run->shared.metrics, GC_MET_API_REQUESTS, route,
                       gc_metrics_code_label(status));
    }
}

static int dispatch(request_rec *r, const char **route_name)
{
    const char *seg[MAX_SEGMENTS], *params[MAX_SEGMENTS];
    const char *allow = NULL;
    int n = split_path(r, seg), method = r->method_number;
    size_t i;

    *route_name = "not_found";
    for (i = 0; n >= 0 && i < N_ROUTES; i++) {
        if (!match(&routes[i], seg, n, params)) {
            continue;
        }
        *route_name = routes[i].name;
        if (routes[i].method == method) {
            json_t *body = NULL;
            int rc;
            if (routes[i].admin_write) {
                if (admin_guard(r, &body) != OK) {
                    return OK;
                }
            }
            else {
                ap_discard_request_body(r);
            }
            rc = routes[i].fn(r, &routes[i], params, body);
            json_decref(body);
            return rc;
        }
        allow = allow ? apr_pstrcat(r->pool, allow, ", ", method_name(routes[i].method), NULL)
                      : method_name(routes[i].method);
        if (routes[i].method == M_GET) {
            allow = apr_pstrcat(r->pool, allow, ", HEAD", NULL);
        }
    }
    ap_discard_request_body(r);
    if (allow) {
        apr_table_setn(r->headers_out, "Allow", allow);
        return gcmon_api_send_problem(r, HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                      "Method not allowed",
                                      apr_psprintf(r->pool, "%s is not allowed here; use %s",
                                                   r->method, allow), NULL);
    }
    return gcmon_api_send_problem(r, HTTP_NOT_FOUND, "not_found", "Not found",
                                  "no gcmon API resource at this path", NULL);
}

int gcmon_api_handler(request_rec *r)
{
    const char *route = "not_found";
    int rc;

    if (!r->handler || strcmp(r->handler, "gcmon-api")) {
        return DECLINED;
    }
    rc = dispatch(r, &route);
    count_request(route, r->status);
    return rc;
}
