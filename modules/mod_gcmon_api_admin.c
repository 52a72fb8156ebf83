/* mod_gcmon_api admin endpoints: agent status changes with gcmon's ETag
 * (SPEC §3.3, §5.3) and the audit trail (§5.8). The pieces are in the core:
 * presence definitions, ETag, If-Match and transition rules in gc_presence.c,
 * the audit rows and their outbox delivery in store_audit.c. */
#include <string.h>
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <http_protocol.h>

#include "gc_audit.h"
#include "gc_metrics.h"
#include "gc_outbox.h"
#include "gc_monitor.h"
#include "gc_state.h"
#include "gc_store.h"
#include "gc_utf8.h"
#include "mod_gcmon_api_private.h"

#define MAX_STATUS 100
#define MAX_REASON 500
#define MAX_WRAPUP 100
/* Longer than a change can take (two upstream calls, each bounded by the
 * client's attempts and Retry-After cap), so a held lock does not expire
 * under its holder; a crashed child's lock frees itself after this. */
#define LOCK_TTL apr_time_from_sec(300)
#define LOCK_POLL apr_time_from_msec(50)

/* ---------------------------------------------------------------- audit */

apr_status_t gcmon_api_audit(request_rec *r, const char *action, const char *target,
                             const json_t *request, const json_t *result, int status,
                             apr_time_t started, const char *outbox_target,
                             const char *outbox_body)
{
    gc_store_t *st = gcmon_api_request_store(r, 0);
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
        rv = gc_store_audit_add(st, r->pool, &a, outbox_target, outbox_body, &err);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      GCMON_LOGNO(1310) "audit row NOT stored (%s): actor=%s action=%s "
                      "target=%s status=%d request=%s result=%s%s%s", err, a.actor, action,
                      target ? target : "-", status, a.request ? a.request : "null",
                      a.result ? a.result : "null",
                      outbox_target ? "; the webhook delivery to " : "",
                      outbox_target ? apr_pstrcat(r->pool, outbox_target, " is lost too",
                                                  NULL) : "");
    }
    return rv;
}

/* ---------------------------------------------------------------- one change */

typedef struct {
    request_rec *r;
    apr_time_t started;
    const char *user_id;
    json_t *request;                /* what the audit row records */
    const char *metric_status;      /* the target presence, or "other" */
} change_t;

static void observe(change_t *c, const char *result)
{
    gcmon_api_runtime_t *run = gcmon_api_runtime();
    if (run && run->shared.metrics) {
        gc_metrics_observe(run->shared.metrics, GC_MET_STATE_UPDATE_LATENCY, c->metric_status,
                           result, (double)(apr_time_now() - c->started) / APR_USEC_PER_SEC);
    }
}

/* Answer a failed change: problem+json, audit row, latency metric. */
static int refuse(change_t *c, int status, const char *slug, const char *title,
                  const char *detail, json_t *errors, json_t *extra, const char *metric)
{
    json_t *result = json_pack("{s:s, s:s?}", "error", slug, "detail", detail);

    observe(c, metric);
    gcmon_api_send_problem_ex(c->r, status, slug, title, detail, errors, extra);
    gcmon_api_audit(c->r, GC_AUDIT_STATUS_CHANGE, c->user_id, c->request, result, status,
                    c->started, NULL, NULL);
    json_decref(result);
    return OK;
}

static int refuse_upstream(change_t *c, const gc_error_t *e, const char *doing)
{
    int status;
    const char *slug, *title;

    gcmon_api_upstream_problem(e, &status, &slug, &title);
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, c->r,
                  GCMON_LOGNO(1302) "status change of %s by %s failed while %s: %s (%s)",
                  c->user_id, gcmon_api_actor(c->r), doing, gc_err_kind_name(e->kind),
                  e->message ? e->message : "");
    if (status == HTTP_SERVICE_UNAVAILABLE) {
        gcmon_api_set_retry_after(c->r, e);
    }
    return refuse(c, status, slug, title, e->message, NULL, NULL,
                  status == HTTP_SERVICE_UNAVAILABLE ? "throttled" : "upstream_error");
}

static int refuse_unknown_user(change_t *c)
{
    return refuse(c, HTTP_NOT_FOUND, "user_not_found", "Unknown user",
                  apr_psprintf(c->r->pool, "Genesys Cloud has no user %s", c->user_id), NULL,
                  NULL, "not_found");
}

/* Characters (code points) of a JSON string: jansson holds valid UTF-8. */
static size_t utf8_chars(const json_t *v)
{
    const char *s = json_string_value(v);
    size_t i, n = 0, len = json_string_length(v);

    for (i = 0; i < len; i++) {
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return n;
}

/* A string member of 1..max (required) or 0..max bytes, or absent/null when
 * optional. Appends {field, message} to errors; the first error's metric type
 * goes to *type. */
static const char *check_string(apr_pool_t *p, json_t *body, const char *key, int required,
                                size_t max, json_t *errors, const char **type)
{
    json_t *v = json_object_get(body, key);
    const char *msg = NULL, *t = NULL;

    if (!v || json_is_null(v)) {
        if (required) {
            msg = "is required";
            t = "missing_field";
        }
    }
    else if (!json_is_string(v)) {
        msg = required ? "must be a string" : "must be a string or null";
        t = "invalid_type";
    }
    else if ((required && json_string_length(v) == 0) || utf8_chars(v) > max) {
        msg = apr_psprintf(p, "must be %s%" APR_SIZE_T_FMT " characters",
                           required ? "1 to " : "at most ", max);
        t = "invalid_value";
    }
    else {
        return json_string_value(v);
    }
    if (msg) {
        json_array_append_new(errors, json_pack("{s:s, s:s}", "field", key, "message",
                                                apr_pstrcat(p, key, " ", msg, NULL)));
        if (!*type) {
            *type = t;
        }
    }
    return NULL;
}

typedef struct {
    const char *status, *reason, *wrapup_code;
} change_req_t;

/* A body member's name for an error message: at most 64 bytes, cut on a
 * character boundary (jansson refuses invalid UTF-8, and an error entry that
 * fails to build would let the unknown member through). */
static const char *member_name(apr_pool_t *p, const char *key)
{
    apr_size_t len = strlen(key), cut = 0;

    while (cut < len) {
        apr_size_t n = gc_utf8_seq((const unsigned char *)key + cut, len - cut);
        if (n == 0 || cut + n > 64) {
            break;
        }
        cut += n;
    }
    return cut == len ? key : apr_pstrcat(p, apr_pstrmemdup(p, key, cut), "...", NULL);
}

/* SPEC §5.3's body; 400 naming each bad field. */
static int validate(change_t *c, json_t *body, change_req_t *req)
{
    request_rec *r = c->r;
    json_t *errors = json_array(), *empty = NULL;
    const char *type = NULL, *key;
    json_t *v;

    if (!body) {
        body = empty = json_object();
    }
    if (!gc_id_valid(c->user_id)) {
        json_array_append_new(errors, json_pack("{s:s, s:s}", "field", "user_id", "message",
                                                "user_id in the path must be 1 to 64 letters, "
                                                "digits, '-' or '_'"));
        type = "invalid_value";
    }
    req->status = check_string(r->pool, body, "status", 1, MAX_STATUS, errors, &type);
    req->reason = check_string(r->pool, body, "reason", 0, MAX_REASON, errors, &type);
    req->wrapup_code = check_string(r->pool, body, "wrapup_code", 0, MAX_WRAPUP, errors,
                                    &type);
    json_object_foreach(body, key, v) {
        if (strcmp(key, "status") && strcmp(key, "reason") && strcmp(key, "wrapup_code")) {
            const char *name = member_name(r->pool, key);
            json_array_append_new(errors, json_pack(
                "{s:s, s:s}", "field", name, "message",
                apr_pstrcat(r->pool, name, " is not a member of this request (status, "
                            "reason, wrapup_code)", NULL)));
            if (!type) {
                type = "invalid_value";
            }
        }
    }
    json_decref(empty);
    if (json_array_size(errors) == 0) {
        json_decref(errors);
        return OK;
    }
    gcmon_api_count_validation(type);
    refuse(c, HTTP_BAD_REQUEST, "validation_failed", "Invalid request",
                  json_array_size(errors) == 1
                      ? json_string_value(json_object_get(json_array_get(errors, 0), "message"))
                      : apr_psprintf(r->pool, "%d fields are invalid",
                                     (int)json_array_size(errors)),
                  errors, NULL, "invalid");
    return DONE;
}

/* The audit row's copy of the request: the known members as sent (scalars;
 * oversize or structured values are named, not copied) and If-Match. Nothing
 * else (never headers or credentials). */
static json_t *audit_request(json_t *body, const char *if_match)
{
    static const char *const keys[] = { "status", "reason", "wrapup_code" };
    json_t *out = json_object();
    size_t i;

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = body ? json_object_get(body, keys[i]) : NULL;
        if ((json_is_string(v) && utf8_chars(v) <= MAX_REASON) || json_is_number(v)
            || json_is_boolean(v) || json_is_null(v)) {
            json_object_set(out, keys[i], v);
        }
        else if (v) {
            json_object_set_new(out, keys[i], json_string(json_is_string(v) ? "(too long)"
                                                          : "(not a scalar)"));
        }
    }
    if (if_match) {
        json_object_set_new(out, "if_match", json_stringn(if_match, strnlen(if_match, 200)));
    }
    return out;
}

/* ---------------------------------------------------------------- per-agent lock */

static apr_uint32_t lock_seq;

/* A lease row per agent serialises gcmon's changes of one agent across
 * children and hosts, so two If-Match requests with the same ETag cannot both
 * pass the check. 1 held, 0 busy past the wait, -1 database error. */
static int lock_agent(request_rec *r, gc_store_t *st, const char *name, const char *holder)
{
    const gc_conn_conf_t *conn = &gcmon_api_conf()->conn;
    apr_interval_time_t wait = 2 * conn->request_timeout;
    apr_time_t deadline;
    int held = 0;

    if (wait < apr_time_from_sec(5)) {
        wait = apr_time_from_sec(5);
    }
    if (wait > apr_time_from_sec(30)) {
        wait = apr_time_from_sec(30);
    }
    deadline = apr_time_now() + wait;
    for (;;) {
        apr_time_t now = apr_time_now();
        if (gc_store_lease(st, name, holder, now, LOCK_TTL, &held, NULL, r->pool)
            != APR_SUCCESS) {
            return -1;
        }
        if (held) {
            return 1;
        }
        if (now >= deadline) {
            return 0;
        }
        apr_sleep(LOCK_POLL);
    }
}

/* Extend a held lock: 1 still ours, 0 taken by another, -1 database error. */
static int lock_agent_renew(request_rec *r, gc_store_t *st, const char *name,
                            const char *holder)
{
    int held = 0;

    if (gc_store_lease(st, name, holder, apr_time_now(), LOCK_TTL, &held, NULL, r->pool)
        != APR_SUCCESS) {
        return -1;
    }
    return held;
}

/* ---------------------------------------------------------------- upstream */

static const char *presence_path(request_rec *r, const char *user_id)
{
    return apr_pstrcat(r->pool, "/api/v2/users/", user_id, "/presences/purecloud", NULL);
}

/* GET (body NULL) or PATCH the user's presence into *out. */
static apr_status_t presence_call(request_rec *r, const char *user_id, const char *body,
                                  gc_user_presence_t *out, gc_error_t **err)
{
    gc_request_t req;
    gc_response_t *resp = NULL;
    apr_status_t rv;

    memset(&req, 0, sizeof(req));
    req.op = body ? "presence_patch" : "presence_get";
    req.method = body ? "PATCH" : "GET";
    req.path = presence_path(r, user_id);
    req.body = body;
    if ((rv = gc_upstream_call(gcmon_api_runtime()->upstream, r->pool, &req, &resp, err))
        != APR_SUCCESS) {
        return rv;
    }
    if (!resp->json || gc_user_presence_parse(r->pool, resp->json, out) != 0) {
        *err = apr_pcalloc(r->pool, sizeof(**err));
        (*err)->kind = GC_ERR_PROTOCOL;
        (*err)->status = resp->status;
        (*err)->message = "the user presence has no presenceDefinition.id or modifiedDate";
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static const char *patch_body(request_rec *r, const gc_presence_def_t *def, const char *reason)
{
    json_t *b = json_pack("{s:{s:s}}", "presenceDefinition", "id", def->id);
    const char *text;

    if (reason) {
        json_object_set_new(b, "message", json_string(reason));
    }
    text = gc_json_text(r->pool, b);
    json_decref(b);
    return text;
}

/* 1, or 0 after a 503 was sent. */
static int upstream_ready(request_rec *r)
{
    gcmon_api_runtime_t *run = gcmon_api_runtime();

    if (run && run->upstream && run->presences) {
        return 1;
    }
    gcmon_api_send_problem(r, HTTP_SERVICE_UNAVAILABLE, "upstream_not_configured",
                                  "No Genesys Cloud connection is configured",
                                  "set GcmonClientID and GcmonClientSecret", NULL);
    return 0;
}

/* ---------------------------------------------------------------- GET status */

int gcmon_api_status_get(request_rec *r, const char **params)
{
    const char *user_id = params[0];
    gc_user_presence_t cur;
    gc_error_t *err = NULL;

    if (!gc_id_valid(user_id)) {
        gcmon_api_count_validation("invalid_value");
        return gcmon_api_send_problem(r, HTTP_BAD_REQUEST, "validation_failed",
                                      "Invalid request", "user_id in the path must be 1 to 64 "
                                      "letters, digits, '-' or '_'",
                                      gcmon_api_field_error("user_id", "user_id must be 1 to "
                                                            "64 letters, digits, '-' or '_'"));
    }
    if (!upstream_ready(r)) {
        return OK;
    }
    if (presence_call(r, user_id, NULL, &cur, &err) != APR_SUCCESS) {
        if (err->kind == GC_ERR_NOT_FOUND) {
            return gcmon_api_send_problem(r, HTTP_NOT_FOUND, "user_not_found", "Unknown user",
                                          apr_psprintf(r->pool, "Genesys Cloud has no user %s",
                                                       user_id), NULL);
        }
        return gcmon_api_send_upstream_error(r, err);
    }
    apr_table_setn(r->headers_out, "ETag", cur.etag);
    return gcmon_api_send_json(r, HTTP_OK, json_pack(
        "{s:s, s:s?, s:s, s:s?, s:s, s:s}", "user_id", user_id, "status", cur.system,
        "presence_definition_id", cur.definition_id, "message", cur.message,
        "modified_date", gc_time_format(r->pool, cur.modified), "etag", cur.etag));
}

/* ---------------------------------------------------------------- PUT status */

static int webhook_configured(const char *target)
{
    APR_OPTIONAL_FN_TYPE(gcmon_stream_webhook_configured) *fn =
        APR_RETRIEVE_OPTIONAL_FN(gcmon_stream_webhook_configured);
    return fn && fn(target);
}

/* The rest of a change once the agent is locked: read, check, write. */
static int change_locked(change_t *c, gc_store_t *st, const change_req_t *req,
                         const gc_presence_def_t *def, const char *if_match,
                         const char *lock, const char *holder)
{
    request_rec *r = c->r;
    const char *actor = gcmon_api_actor(r);
    gc_user_presence_t cur, now;
    gc_error_t *err = NULL;
    json_t *doc, *hook = NULL;
    const char *hook_body = NULL, *updated;

    if (presence_call(r, c->user_id, NULL, &cur, &err) != APR_SUCCESS) {
        return err->kind == GC_ERR_NOT_FOUND ? refuse_unknown_user(c)
                                             : refuse_upstream(c, err, "reading the presence");
    }
    if (if_match && !gc_if_match(if_match, cur.etag)) {
        gcmon_api_count_validation("precondition_failed");
        apr_table_setn(r->headers_out, "ETag", cur.etag);
        return refuse(c, HTTP_PRECONDITION_FAILED, "precondition_failed",
                      "The agent's status changed",
                      "If-Match does not match the agent's current status; read it again "
                      "(current_status, etag) and retry",
                      NULL, json_pack("{s:s?, s:s}", "current_status", cur.system, "etag",
                                      cur.etag), "precondition_failed");
    }
    if (!gc_transition_allowed(gcmon_api_conf()->transitions, cur.system, def->system)) {
        const char *from = cur.system ? cur.system : "(unknown)";
        gcmon_api_count_validation("transition_not_allowed");
        return refuse(c, HTTP_UNPROCESSABLE_ENTITY, "transition_not_allowed",
                      "Status transition not allowed",
                      apr_psprintf(r->pool, "the transition from %s to %s is not allowed by "
                                   "the GcmonTransition rules", from, def->system),
                      NULL, json_pack("{s:s, s:s}", "from", from, "to", def->system),
                      "not_allowed");
    }
    /* Renew just before writing: had a stalled upstream outlasted the lock and
     * another change taken it, this one must not write on a stale read. */
    if (lock_agent_renew(r, st, lock, holder) != 1) {
        return refuse(c, HTTP_CONFLICT, "status_change_in_progress",
                      "Another status change of this agent is in progress",
                      "this change outlasted its lock and another one took over; read the "
                      "status again and retry", NULL, NULL, "other");
    }
    if (presence_call(r, c->user_id, patch_body(r, def, req->reason), &now, &err)
        != APR_SUCCESS) {
        return err->kind == GC_ERR_NOT_FOUND ? refuse_unknown_user(c)
                                             : refuse_upstream(c, err, "setting the presence");
    }
    updated = gc_time_format(r->pool, now.modified);
    doc = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s, s:s, s:s}", "user_id", c->user_id,
                    "status", now.system ? now.system : def->system,
                    "previous_status", cur.system, "reason", req->reason,
                    "wrapup_code", req->wrapup_code, "etag", now.etag, "updated_at", updated,
                    "presence_definition_id", now.definition_id);
    if (def->user_defined && def->label) {
        json_object_set_new(doc, "presence_label", json_string(def->label));
    }
    if (webhook_configured(GC_TARGET_STATUS)) {
        hook = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s, s:s, s:s}", "user_id", c->user_id,
                         "target_status", def->system, "previous_status", cur.system,
                         "reason", req->reason, "wrapup_code", req->wrapup_code,
                         "etag", now.etag, "timestamp", updated, "actor", actor);
        hook_body = gc_json_text(r->pool, hook);
        json_decref(hook);
    }
    observe(c, "success");
    gcmon_api_audit(r, GC_AUDIT_STATUS_CHANGE, c->user_id, c->request, doc, HTTP_OK,
                    c->started, hook_body ? GC_TARGET_STATUS : NULL, hook_body);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  GCMON_LOGNO(1301) "status of %s changed by %s: %s -> %s", c->user_id, actor,
                  cur.system ? cur.system : "(unknown)", def->system);
    apr_table_setn(r->headers_out, "ETag", now.etag);
    return gcmon_api_send_json(r, HTTP_OK, doc);
}

int gcmon_api_status_put(request_rec *r, const char **params, json_t *body)
{
    change_t c;
    change_req_t req;
    const char *if_match = apr_table_get(r->headers_in, "If-Match");
    const char *lock, *holder;
    gc_presence_def_t def;
    gc_error_t *err = NULL;
    gc_store_t *st;
    unsigned char rnd[6];
    int found = 0, rc, locked;

    memset(&c, 0, sizeof(c));
    c.r = r;
    c.started = apr_time_now();
    c.user_id = params[0];
    c.metric_status = "other";
    c.request = audit_request(body, if_match);
    if (validate(&c, body, &req) != OK) {
        json_decref(c.request);
        return OK;
    }
    if (!upstream_ready(r) || !(st = gcmon_api_request_store(r, 1))) {
        json_t *result = json_pack("{s:s}", "error", r->status == HTTP_SERVICE_UNAVAILABLE
                                   && !gcmon_api_runtime()->upstream ? "upstream_not_configured"
                                                                    : "database_unavailable");
        observe(&c, "other");
        gcmon_api_audit(r, GC_AUDIT_STATUS_CHANGE, c.user_id, c.request, result, r->status,
                        c.started, NULL, NULL);
        json_decref(result);
        json_decref(c.request);
        return OK;
    }
    if (gc_presence_resolve(gcmon_api_runtime()->presences, gcmon_api_runtime()->upstream,
                            r->pool, req.status, &def, &found, &err) != APR_SUCCESS) {
        rc = refuse_upstream(&c, err, "reading the presence definitions");
        json_decref(c.request);
        return rc;
    }
    if (!found) {
        gcmon_api_count_validation("unknown_status");
        rc = refuse(&c, HTTP_UNPROCESSABLE_ENTITY, "unknown_status", "Unknown status",
                    apr_psprintf(r->pool, "the organisation has no active presence named "
                                 "'%s' (a system presence such as Break, or a presence "
                                 "label)", req.status),
                    gcmon_api_field_error("status", "status is not one of the organisation's "
                                          "presences"), NULL, "invalid");
        json_decref(c.request);
        return rc;
    }
    c.metric_status = def.system;
    lock = apr_pstrcat(r->pool, "agent-status:", c.user_id, NULL);
    if (apr_generate_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
        memset(rnd, 0, sizeof(rnd));
    }
    holder = apr_psprintf(r->pool, "api:%ld:%u:%02x%02x%02x%02x%02x%02x", (long)getpid(),
                          apr_atomic_inc32(&lock_seq), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
                          rnd[5]);
    locked = lock_agent(r, st, lock, holder);
    if (locked < 0) {
        rc = refuse(&c, HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
                    "The database is unavailable",
                    "the agent's change lock could not be taken; see the server's error log",
                    NULL, NULL, "other");
    }
    else if (locked == 0) {
        rc = refuse(&c, HTTP_CONFLICT, "status_change_in_progress",
                    "Another status change of this agent is in progress",
                    "another change of this agent did not finish in time; retry", NULL, NULL,
                    "other");
    }
    else {
        rc = change_locked(&c, st, &req, &def, if_match, lock, holder);
        gc_store_lease_delete(st, r->pool, lock, holder);
    }
    json_decref(c.request);
    return rc;
}

/* ---------------------------------------------------------------- GET audit */

static json_t *json_or_null(const char *text)
{
    json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return j ? j : json_null();
}

int gcmon_api_audit_list(request_rec *r, const char **params)
{
    gc_query_t q;
    gc_audit_filter_t f;
    apr_array_header_t *rows;
    gc_store_t *st;
    const char *err = NULL;
    json_t *data, *doc;
    long total = 0;
    int has_more = 0, i;

    if (gcmon_api_parse_query(r, GC_Q_AUDIT, GC_CURSOR_AUDIT, &q) != OK
        || !(st = gcmon_api_request_store(r, 1))) {
        return OK;
    }
    memset(&f, 0, sizeof(f));
    f.actor = q.actor;
    f.action = q.action;
    f.target = q.target;
    f.limit = q.limit;
    f.offset = q.has_cursor ? 0 : q.offset;
    f.before_id = q.has_cursor ? q.cursor.id : 0;
    if (gc_store_audit_list(st, r->pool, &f, &rows, &total, &has_more, &err) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, GCMON_LOGNO(1303) "audit query failed: %s",
                      err ? err : "unknown error");
        return gcmon_api_send_problem(r, HTTP_INTERNAL_SERVER_ERROR, "database_error",
                                      "Database query failed",
                                      "the database query failed; see the server's error log",
                                      NULL);
    }
    data = json_array();
    for (i = 0; i < rows->nelts; i++) {
        const gc_audit_rec_t *a = &APR_ARRAY_IDX(rows, i, gc_audit_rec_t);
        json_array_append_new(data, json_pack(
            "{s:I, s:s, s:s, s:s?, s:s, s:s?, s:o, s:o, s:i, s:I}", "id", (json_int_t)a->id,
            "at", gc_time_format(r->pool, a->at), "actor", a->actor ? a->actor : "-",
            "actor_source", a->actor_source,
            "action", a->action ? a->action : "", "target", a->target,
            "request", json_or_null(a->request), "result", json_or_null(a->result),
            "status", a->status, "latency_ms", (json_int_t)a->latency_ms));
    }
    doc = json_pack("{s:I, s:i, s:o, s:o, s:o}", "total", (json_int_t)total, "limit", q.limit,
                    "offset", q.has_cursor ? json_null() : json_integer(q.offset),
                    "next_cursor", has_more && rows->nelts
                        ? json_string(gc_cursor_encode(r->pool, GC_CURSOR_AUDIT,
                              APR_ARRAY_IDX(rows, rows->nelts - 1, gc_audit_rec_t).at,
                              APR_ARRAY_IDX(rows, rows->nelts - 1, gc_audit_rec_t).id))
                        : json_null(),
                    "data", data);
    return gcmon_api_send_json(r, HTTP_OK, doc);
}
