#include <string.h>

#include <apr_strings.h>

#include "gc_body.h"
#include "gc_etag.h"
#include "gc_id.h"
#include "gc_log.h"
#include "gc_monitor.h"
#include "gc_outbox.h"
#include "gc_state.h"
#include "gc_status_change.h"
#include "gc_time.h"
#include "gc_webhook.h"

/* One change in flight. */
typedef struct {
    apr_pool_t *p;
    const gc_status_change_ops_t *ops;
    const gc_status_change_req_t *req;
    gc_result_t *res;
    gc_status_change_out_t *out;
    json_t *audit; /* what the audit row records of the request */
    const char *status, *reason, *wrapup_code;
    gc_presence_def_t def;
    const char *lock;
} change_t;

static const gc_body_field_t body_fields[] = {
    { "status", GC_BODY_STRING, GC_BODY_REQUIRED | GC_BODY_BOUNDED, 1, GC_STATUS_MAX_STATUS, NULL },
    { "reason", GC_BODY_STRING, GC_BODY_BOUNDED, 0, GC_STATUS_MAX_REASON, NULL },
    { "wrapup_code", GC_BODY_STRING, GC_BODY_BOUNDED, 0, GC_STATUS_MAX_WRAPUP, NULL },
};
#define N_FIELDS (sizeof(body_fields) / sizeof(body_fields[0]))

static apr_time_t now(const change_t *c)
{
    return c->ops->now ? c->ops->now(c->ops->baton) : apr_time_now();
}

static void pause_for(const change_t *c, apr_interval_time_t d)
{
    if (c->ops->sleep) {
        c->ops->sleep(c->ops->baton, d);
    }
    else {
        apr_sleep(d);
    }
}

static const char *member(const json_t *body, const char *key)
{
    return body ? json_string_value(json_object_get(body, key)) : NULL;
}

/* Refuse: the problem is already in c->res; record it. */
static void refuse(change_t *c, const char *metric)
{
    c->out->metric_result = metric;
    c->ops->record(c->ops->baton, c->p, c->audit, c->res, NULL, NULL);
}

static void refuse_upstream(change_t *c, const gc_error_t *e, const char *doing)
{
    gc_result_upstream(c->res, e);
    gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
           GCMON_LOGNO(1302) "status change of %s by %s failed while %s: %s (%s)", c->req->user_id,
           c->req->actor, doing, gc_err_kind_name(e->kind), e->message ? e->message : "");
    refuse(c, c->res->status == 503 ? "throttled" : "upstream_error");
}

static void refuse_unknown_user(change_t *c)
{
    gc_result_problem(c->res, 404, "user_not_found", "Unknown user",
                      apr_psprintf(c->p, "Genesys Cloud has no user %s", c->req->user_id));
    refuse(c, "not_found");
}

static void refuse_busy(change_t *c, const char *detail)
{
    gc_result_problem(c->res, 409, "status_change_in_progress",
                      "Another status change of this agent is in progress", detail);
    refuse(c, "other");
}

/* SPEC §5.3's body and the path's user id: 400 naming each bad field. */
static int validate(change_t *c)
{
    if (!gc_id_valid(c->req->user_id)) {
        gc_body_error(c->res, "user_id", "invalid_value",
                      "in the path must be 1 to 64 letters, digits, '-' or '_'");
    }
    gc_body_validate(c->res, c->req->body, body_fields, N_FIELDS, NULL);
    if (c->res->errors && json_array_size(c->res->errors) > 0) {
        gc_body_fail(c->res, 400);
        refuse(c, "invalid");
        return 0;
    }
    c->status = member(c->req->body, "status");
    c->reason = member(c->req->body, "reason");
    c->wrapup_code = member(c->req->body, "wrapup_code");
    return 1;
}

static int resolve(change_t *c)
{
    gc_error_t *err = NULL;
    int found = 0;

    if (c->ops->resolve(c->ops->baton, c->p, c->status, &c->def, &found, &err) != APR_SUCCESS) {
        refuse_upstream(c, err, "reading the presence definitions");
        return 0;
    }
    if (!found) {
        gc_result_field(c->res, "status", "status is not one of the organisation's presences");
        gc_result_problem(c->res, 422, "unknown_status", "Unknown status",
                          apr_psprintf(c->p,
                                       "the organisation has no active presence named "
                                       "'%s' (a system presence such as Break, or a presence "
                                       "label)",
                                       c->status));
        gc_result_error_type(c->res, "unknown_status");
        refuse(c, "invalid");
        return 0;
    }
    c->out->metric_status = c->def.system;
    return 1;
}

/* A lease row per agent serialises gcmon's changes of one agent across
 * children and hosts, so two If-Match requests with the same ETag cannot both
 * pass the check. 1 held; 0 after refusing (busy past the wait, or no
 * database). */
static int lock_agent(change_t *c)
{
    apr_time_t until = now(c) + c->req->lock_wait;

    if (c->req->deadline && c->req->deadline < until) {
        until = c->req->deadline;
    }
    for (;;) {
        apr_time_t t = now(c);
        int held = 0;
        if (c->ops->lock(c->ops->baton, c->p, c->lock, c->req->holder, t, GC_STATUS_LOCK_TTL, &held)
            != APR_SUCCESS) {
            gc_result_problem(c->res, 503, "database_unavailable", "The database is unavailable",
                              "the agent's change lock could not be taken; see the server's "
                              "error log");
            refuse(c, "other");
            return 0;
        }
        if (held) {
            return 1;
        }
        if (t >= until) {
            refuse_busy(c, "another change of this agent did not finish in time; retry");
            return 0;
        }
        pause_for(c, GC_STATUS_LOCK_POLL);
    }
}

/* Renew the lock just before writing: had a stalled upstream outlasted it and
 * another change taken it, this one must not write on a stale read. */
static int renew(change_t *c)
{
    int held = 0;

    if (c->ops->lock(c->ops->baton, c->p, c->lock, c->req->holder, now(c), GC_STATUS_LOCK_TTL,
                     &held)
            == APR_SUCCESS
        && held) {
        return 1;
    }
    refuse_busy(c, "this change outlasted its lock and another one took over; read the "
                   "status again and retry");
    return 0;
}

static const char *patch_body(change_t *c)
{
    json_t *b = json_pack("{s:{s:s}}", "presenceDefinition", "id", c->def.id);
    const char *text;

    if (c->reason) {
        json_object_set_new(b, "message", json_string(c->reason));
    }
    text = gc_json_text(c->p, b);
    json_decref(b);
    return text;
}

/* 1 when the presence may change from cur; else refused. */
static int check_preconditions(change_t *c, const gc_user_presence_t *cur)
{
    const char *from = cur->system ? cur->system : "(unknown)";

    if (c->req->if_match && !gc_etag_match(c->req->if_match, cur->etag, GC_ETAG_STRONG)) {
        gc_result_problem(c->res, 412, "precondition_failed", "The agent's status changed",
                          "If-Match does not match the agent's current status; read it again "
                          "(current_status, etag) and retry");
        gc_result_extra(c->res, "current_status",
                        cur->system ? json_string(cur->system) : json_null());
        gc_result_extra(c->res, "etag", json_string(cur->etag));
        gc_result_error_type(c->res, "precondition_failed");
        c->res->etag = cur->etag;
        refuse(c, "precondition_failed");
        return 0;
    }
    if (!gc_transition_allowed(c->req->transitions, cur->system, c->def.system)) {
        gc_result_problem(c->res, 422, "transition_not_allowed", "Status transition not allowed",
                          apr_psprintf(c->p,
                                       "the transition from %s to %s is not allowed by "
                                       "the GcmonTransition rules",
                                       from, c->def.system));
        gc_result_extra(c->res, "from", json_string(from));
        gc_result_extra(c->res, "to", json_string(c->def.system));
        gc_result_error_type(c->res, "transition_not_allowed");
        refuse(c, "not_allowed");
        return 0;
    }
    return 1;
}

/* SPEC §3.3's webhook body. */
static const char *webhook_body(change_t *c, const gc_user_presence_t *cur,
                                const gc_user_presence_t *now_p, const char *updated)
{
    json_t *hook = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s, s:s, s:s}", "user_id",
                             c->req->user_id, "target_status", c->def.system, "previous_status",
                             cur->system, "reason", c->reason, "wrapup_code", c->wrapup_code,
                             "etag", now_p->etag, "timestamp", updated, "actor", c->req->actor);
    const char *text = gc_json_text(c->p, hook);

    json_decref(hook);
    return text;
}

/* The rest of a change once the agent is locked: read, check, write. */
static void change_locked(change_t *c)
{
    gc_user_presence_t cur, now_p;
    gc_error_t *err = NULL;
    const char *updated, *hook = NULL;
    json_t *doc;

    if (c->ops->presence(c->ops->baton, c->p, c->req->user_id, NULL, &cur, &err) != APR_SUCCESS) {
        if (err->kind == GC_ERR_NOT_FOUND) {
            refuse_unknown_user(c);
        }
        else {
            refuse_upstream(c, err, "reading the presence");
        }
        return;
    }
    if (!check_preconditions(c, &cur) || !renew(c)) {
        return;
    }
    if (c->ops->presence(c->ops->baton, c->p, c->req->user_id, patch_body(c), &now_p, &err)
        != APR_SUCCESS) {
        if (err->kind == GC_ERR_NOT_FOUND) {
            refuse_unknown_user(c);
        }
        else {
            refuse_upstream(c, err, "setting the presence");
        }
        return;
    }
    updated = gc_time_format(c->p, now_p.modified);
    doc =
        json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s, s:s, s:s}", "user_id", c->req->user_id,
                  "status", now_p.system ? now_p.system : c->def.system, "previous_status",
                  cur.system, "reason", c->reason, "wrapup_code", c->wrapup_code, "etag",
                  now_p.etag, "updated_at", updated, "presence_definition_id", now_p.definition_id);
    if (c->def.user_defined && c->def.label) {
        json_object_set_new(doc, "presence_label", json_string(c->def.label));
    }
    if (c->req->webhook) {
        hook = webhook_body(c, &cur, &now_p, updated);
    }
    gc_result_ok(c->res, 200, doc);
    c->res->etag = now_p.etag;
    c->out->metric_result = "success";
    c->ops->record(c->ops->baton, c->p, c->audit, c->res, hook ? GC_TARGET_STATUS : NULL, hook);
    gc_log(GC_LOG_MARK, GC_LOG_INFO, 0, GCMON_LOGNO(1301) "status of %s changed by %s: %s -> %s",
           c->req->user_id, c->req->actor, cur.system ? cur.system : "(unknown)", c->def.system);
}

void gc_status_change(apr_pool_t *p, const gc_status_change_ops_t *ops,
                      const gc_status_change_req_t *req, gc_result_t *res,
                      gc_status_change_out_t *out)
{
    change_t c;

    memset(&c, 0, sizeof(c));
    c.p = p;
    c.ops = ops;
    c.req = req;
    c.res = res;
    c.out = out;
    out->metric_status = "other";
    out->metric_result = "other";
    c.audit = gc_status_change_audit_request(req->body, req->if_match);
    if (!validate(&c)) {
        json_decref(c.audit);
        return;
    }
    if (!ops->ready(ops->baton, res)) {
        refuse(&c, "other");
    }
    else if (resolve(&c)) {
        c.lock = apr_pstrcat(p, "agent-status:", req->user_id, NULL);
        if (lock_agent(&c)) {
            change_locked(&c);
            ops->unlock(ops->baton, p, c.lock, req->holder);
        }
    }
    json_decref(c.audit);
}

json_t *gc_status_change_audit_request(const json_t *body, const char *if_match)
{
    json_t *out = json_object();
    size_t i;

    for (i = 0; i < N_FIELDS; i++) {
        json_t *v = body ? json_object_get(body, body_fields[i].name) : NULL;
        if ((json_is_string(v) && gc_body_chars(v) <= GC_STATUS_MAX_REASON) || json_is_number(v)
            || json_is_boolean(v) || json_is_null(v)) {
            json_object_set(out, body_fields[i].name, v);
        }
        else if (v) {
            json_object_set_new(out, body_fields[i].name,
                                json_string(json_is_string(v) ? "(too long)" : "(not a scalar)"));
        }
    }
    if (if_match) {
        json_object_set_new(out, "if_match", json_stringn(if_match, strnlen(if_match, 200)));
    }
    return out;
}
