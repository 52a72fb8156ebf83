/* The status-change protocol (gc_status_change.c) driven through fake
 * callbacks: every branch, lock contention on a fake clock, the audit row of
 * every outcome; and its building blocks gc_body, gc_result, gc_etag. */
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "gc_body.h"
#include "gc_etag.h"
#include "gc_outbox.h"
#include "gc_result.h"
#include "gc_status_change.h"
#include "gc_webhook.h"
#include "unit.h"

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* ---------------------------------------------------------------- the fake world */

typedef struct {
    int ready;                 /* 0: not ready (503 upstream_not_configured) */
    int known;                 /* the status resolves */
    gc_err_kind_e resolve_err; /* != NONE: resolving fails so */
    int lock_busy_for;         /* lock attempts refused before one succeeds (-1 forever) */
    int lock_db_error;
    int renew_lost; /* the renewal finds the lock taken */
    gc_err_kind_e get_err, patch_err;
    const char *current; /* current system presence */
    apr_time_t clock;    /* fake time */
    /* what happened */
    int lock_attempts, unlocks, gets, patches, records, sleeps;
    const char *patch_body, *recorded_target, *recorded_body, *recorded_result;
    int recorded_status;
} world_t;

static int w_ready(void *b, gc_result_t *res)
{
    world_t *w = b;
    if (!w->ready) {
        gc_result_problem(res, 503, "upstream_not_configured", "No connection", "set it");
    }
    return w->ready;
}

static gc_error_t *make_err(apr_pool_t *p, gc_err_kind_e kind, int status)
{
    gc_error_t *e = apr_pcalloc(p, sizeof(*e));
    e->kind = kind;
    e->status = status;
    e->message = "upstream said no";
    e->retry_after = kind == GC_ERR_THROTTLED ? apr_time_from_sec(7) : 0;
    return e;
}

static apr_status_t w_resolve(void *b, apr_pool_t *p, const char *name, gc_presence_def_t *out,
                              int *found, gc_error_t **err)
{
    world_t *w = b;
    if (w->resolve_err) {
        *err = make_err(p, w->resolve_err, 503);
        return APR_EGENERAL;
    }
    *found = w->known;
    memset(out, 0, sizeof(*out));
    out->id = "def-break";
    out->system = "Break";
    return APR_SUCCESS;
}

static apr_status_t w_lock(void *b, apr_pool_t *p, const char *name, const char *holder,
                           apr_time_t now, apr_interval_time_t ttl, int *held)
{
    world_t *w = b;
    ck_assert_str_eq(name, "agent-status:u-1");
    ck_assert_str_eq(holder, "h-1");
    w->lock_attempts++;
    if (w->lock_db_error) {
        return APR_EGENERAL;
    }
    if (w->lock_busy_for < 0 || w->lock_busy_for >= w->lock_attempts) {
        *held = 0;
    }
    else {
        /* the renewal is the attempt after the one that took the lock */
        *held = !(w->renew_lost && w->lock_attempts > w->lock_busy_for + 1);
    }
    return APR_SUCCESS;
}

static void w_unlock(void *b, apr_pool_t *p, const char *name, const char *holder)
{
    ((world_t *)b)->unlocks++;
}

static apr_status_t w_presence(void *b, apr_pool_t *p, const char *user_id, const char *patch,
                               gc_user_presence_t *out, gc_error_t **err)
{
    world_t *w = b;
    gc_err_kind_e e = patch ? w->patch_err : w->get_err;

    if (patch) {
        w->patches++;
        w->patch_body = apr_pstrdup(pool, patch);
    }
    else {
        w->gets++;
    }
    if (e) {
        *err = make_err(p, e, e == GC_ERR_NOT_FOUND ? 404 : 503);
        return APR_EGENERAL;
    }
    memset(out, 0, sizeof(*out));
    out->definition_id = patch ? "def-break" : "def-cur";
    out->system = patch ? "Break" : w->current;
    out->modified = apr_time_from_sec(patch ? 2000 : 1000);
    out->etag = gc_presence_etag(p, out->definition_id, out->modified);
    return APR_SUCCESS;
}

static void w_record(void *b, apr_pool_t *p, const json_t *request, const gc_result_t *res,
                     const char *target, const char *body)
{
    world_t *w = b;
    json_t *r = gc_result_audit_json(res);
    char *text = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);

    w->records++;
    w->recorded_status = res->status;
    w->recorded_result = apr_pstrdup(pool, text);
    w->recorded_target = target ? apr_pstrdup(pool, target) : NULL;
    w->recorded_body = body ? apr_pstrdup(pool, body) : NULL;
    ck_assert(json_is_object(request));
    free(text);
    json_decref(r);
}

static apr_time_t w_now(void *b)
{
    return ((world_t *)b)->clock;
}

static void w_sleep(void *b, apr_interval_time_t d)
{
    world_t *w = b;
    w->clock += d;
    w->sleeps++;
}

static world_t happy(void)
{
    world_t w;
    memset(&w, 0, sizeof(w));
    w.ready = 1;
    w.known = 1;
    w.current = "Available";
    w.clock = apr_time_from_sec(1000000);
    return w;
}

/* Run one change of u-1 to Break in world w; the result. */
static gc_result_t *run(world_t *w, const char *body_text, const char *if_match,
                        const apr_array_header_t *rules, gc_status_change_out_t *out)
{
    gc_status_change_ops_t ops = { w,          w_ready,  w_resolve, w_lock, w_unlock,
                                   w_presence, w_record, w_now,     w_sleep };
    gc_status_change_req_t req;
    gc_result_t *res = gc_result_make(pool);
    json_t *body = body_text ? json_loads(body_text, 0, NULL) : NULL;

    memset(&req, 0, sizeof(req));
    req.user_id = "u-1";
    req.body = body;
    req.if_match = if_match;
    req.actor = "alice";
    req.transitions = rules;
    req.webhook = 1;
    req.holder = "h-1";
    req.lock_wait = apr_time_from_sec(5);
    gc_status_change(pool, &ops, &req, res, out);
    json_decref(body);
    ck_assert_int_eq(w->records, 1); /* every outcome is audited, once */
    ck_assert_int_eq(w->recorded_status, res->status);
    return res;
}

/* ---------------------------------------------------------------- protocol */

START_TEST(change_happy_path)
{
    world_t w = happy();
    gc_status_change_out_t out;
    gc_result_t *res = run(&w, "{\"status\":\"Break\",\"reason\":\"lunch\"}", NULL, NULL, &out);

    ck_assert_int_eq(res->status, 200);
    ck_assert(!gc_result_failed(res));
    ck_assert_str_eq(json_string_value(json_object_get(res->doc, "status")), "Break");
    ck_assert_str_eq(json_string_value(json_object_get(res->doc, "previous_status")), "Available");
    ck_assert_str_eq(res->etag, gc_presence_etag(pool, "def-break", apr_time_from_sec(2000)));
    ck_assert_int_eq(w.gets, 1);
    ck_assert_int_eq(w.patches, 1);
    ck_assert_str_eq(w.patch_body,
                     "{\"presenceDefinition\":{\"id\":\"def-break\"},\"message\":\"lunch\"}");
    ck_assert_int_eq(w.lock_attempts, 2); /* take, renew */
    ck_assert_int_eq(w.unlocks, 1);
    ck_assert_str_eq(w.recorded_target, GC_TARGET_STATUS);
    ck_assert(strstr(w.recorded_body, "\"actor\":\"alice\""));
    ck_assert(strstr(w.recorded_body, "\"target_status\":\"Break\""));
    ck_assert_str_eq(out.metric_status, "Break");
    ck_assert_str_eq(out.metric_result, "success");
}
END_TEST

START_TEST(change_validation_collects_every_error)
{
    world_t w = happy();
    gc_status_change_out_t out;
    gc_result_t *res = run(&w, "{\"status\":\"\",\"reason\":7,\"reson\":\"x\"}", NULL, NULL, &out);

    ck_assert_int_eq(res->status, 400);
    ck_assert_str_eq(res->slug, "validation_failed");
    ck_assert_int_eq(json_array_size(res->errors), 3);
    ck_assert_str_eq(res->detail, "3 fields are invalid");
    ck_assert_str_eq(res->error_type, "invalid_value");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(res->errors, 2), "message")),
                     "reson is not a member of this request (status, reason, wrapup_code)");
    ck_assert_int_eq(w.lock_attempts + w.gets + w.patches, 0);
    ck_assert_str_eq(out.metric_result, "invalid");
}
END_TEST

START_TEST(change_not_ready_unknown_and_upstream)
{
    world_t w = happy();
    gc_status_change_out_t out;
    gc_result_t *res;

    w.ready = 0;
    res = run(&w, "{\"status\":\"Break\"}", NULL, NULL, &out);
    ck_assert_int_eq(res->status, 503);
    ck_assert_int_eq(w.lock_attempts, 0);

    w = happy();
    w.known = 0;
    res = run(&w, "{\"status\":\"Nap\"}", NULL, NULL, &out);
    ck_assert_int_eq(res->status, 422);
    ck_assert_str_eq(res->slug, "unknown_status");
    ck_assert_str_eq(res->error_type, "unknown_status");
    ck_assert_int_eq(w.lock_attempts, 0);

    w = happy();
    w.resolve_err = GC_ERR_THROTTLED;
    res = run(&w, "{\"status\":\"Break\"}", NULL, NULL, &out);
    ck_assert_int_eq(res->status, 503);
    ck_assert_int_eq(res->retry_after, apr_time_from_sec(7));
    ck_assert_str_eq(out.metric_result, "throttled");

    w = happy();
    w.get_err = GC_ERR_NOT_FOUND;
    res = run(&w, "{\"status\":\"Break\"}", NULL, NULL, &out);
    ck_assert_int_eq(res->status, 404);
    ck_assert_str_eq(res->slug, "user_not_found");
    ck_assert_int_eq(w.unlocks, 1);

    w = happy();
    w.patch_err = GC_ERR_SERVER;
    res = run(&w, "{\"status\":\"Break\"}", NULL, NULL, &out);
    ck_assert_int_eq(res->status, 502);
    ck_assert_str_eq(res->slug, "upstream_error");
    ck_assert_ptr_null(w.recorded_target); /* nothing announced */
    ck_assert_int_eq(w.unlocks, 1);
}
END_TEST

START_TEST(change_if_match_and_rules)
{
    world_t w = happy();
    gc_status_change_out_t out;
    apr_array_header_t *rules = apr_array_make(pool, 1, sizeof(gc_transition_t));
    char *argv[] = { "Busy", "Break" };
    const char *cur = gc_presence_etag(pool, "def-cur", apr_time_from_sec(1000));
    gc_result_t *res = run(&w, "{\"status\":\"Break\"}", "\"stale\"", NULL, &out);

    ck_assert_int_eq(res->status, 412);
    ck_assert_str_eq(res->etag, cur);
    ck_assert_str_eq(json_string_value(json_object_get(res->extra, "current_status")), "Available");
    ck_assert_int_eq(w.patches, 0);

    w = happy();
    res = run(&w, "{\"status\":\"Break\"}", cur, NULL, &out);
    ck_assert_int_eq(res->status, 200);

    w = happy();
    ck_assert_ptr_null(
        gc_transition_parse(pool, 2, argv, (gc_transition_t *)apr_array_push(rules)));
    res = run(&w, "{\"status\":\"Break\"}", NULL, rules, &out);
    ck_assert_int_eq(res->status, 422);
    ck_assert_str_eq(res->slug, "transition_not_allowed");
    ck_assert_str_eq(json_string_value(json_object_get(res->extra, "from")), "Available");
    ck_assert_int_eq(w.patches, 0);
    ck_assert_str_eq(out.metric_result, "not_allowed");
}
END_TEST

START_TEST(change_lock_contention)
{
    world_t w = happy();
    gc_status_change_out_t out;
    gc_result_t *res;

    /* busy for 10 polls, then free: the change waits and goes through */
    w.lock_busy_for = 10;
    res = run(&w, "{\"status\":\"Break\"}", NULL, NULL, &out);
    ck_assert_int_eq(res->status, 200);
    ck_assert_int_eq(w.sleeps, 10);

    /* busy for ever: 409 after the wait, nothing read or written */
    w = happy();
    w.lock_busy_for = -1;
    res = run(&w, "{\"status\":\"Break\"}", NULL, NULL, &out);
    ck_assert_int_eq(res->status, 409);
    ck_assert_str_eq(res->slug, "status_change_in_progress");
    ck_assert_int_eq(w.sleeps, 100); /* 5 s of 50 ms polls */
    ck_assert_int_eq(w.gets + w.patches + w.unlocks, 0);

    /* the deadline cuts the wait short */
    w = happy();
    w.lock_busy_for = -1;
    {
        gc_status_change_ops_t ops = { &w,         w_ready,  w_resolve, w_lock, w_unlock,
                                       w_presence, w_record, w_now,     w_sleep };
        gc_status_change_req_t req;
        json_t *body = json_pack("{s:s}", "status", "Break");
        memset(&req, 0, sizeof(req));
        req.user_id = "u-1";
        req.body = body;
        req.actor = "a";
        req.holder = "h-1";
        req.lock_wait = apr_time_from_sec(30);
        req.deadline = w.clock + apr_time_from_sec(1);
        res = gc_result_make(pool);
        gc_status_change(pool, &ops, &req, res, &out);
        json_decref(body);
        ck_assert_int_eq(res->status, 409);
        ck_assert_int_eq(w.sleeps, 20);
    }

    /* lost during the upstream read: renewing fails, no PATCH */
    w = happy();
    w.renew_lost = 1;
    res = run(&w, "{\"status\":\"Break\"}", NULL, NULL, &out);
    ck_assert_int_eq(res->status, 409);
    ck_assert_int_eq(w.gets, 1);
    ck_assert_int_eq(w.patches, 0);
    ck_assert_int_eq(w.unlocks, 1);

    /* database down */
    w = happy();
    w.lock_db_error = 1;
    res = run(&w, "{\"status\":\"Break\"}", NULL, NULL, &out);
    ck_assert_int_eq(res->status, 503);
    ck_assert_str_eq(res->slug, "database_unavailable");
}
END_TEST

/* ---------------------------------------------------------------- building blocks */

static void positive(gc_result_t *res, const gc_body_field_t *f, const json_t *v, void *baton)
{
    if (json_number_value(v) == 0) {
        gc_body_error(res, f->name, "invalid_value", "must not be 0");
    }
}

START_TEST(body_validator)
{
    static const gc_body_field_t fields[] = {
        { "name", GC_BODY_STRING, GC_BODY_REQUIRED | GC_BODY_BOUNDED, 1, 3, NULL },
        { "weight", GC_BODY_NUMBER, GC_BODY_BOUNDED, 0, 1, positive },
        { "depth", GC_BODY_INTEGER, GC_BODY_REQUIRED | GC_BODY_BOUNDED, 1, 50, NULL },
        { "flag", GC_BODY_BOOLEAN, 0, 0, 0, NULL },
        { "items", GC_BODY_ARRAY, GC_BODY_BOUNDED, 1, 2, NULL },
    };
    gc_result_t *res = gc_result_make(pool);
    json_t *b = json_loads("{\"name\":\"\\u00e9\\u00e9\\u00e9\",\"weight\":0,\"depth\":2,"
                           "\"flag\":true}",
                           0, NULL);
    json_t *e;

    /* three characters of two bytes each fit a 3-character bound */
    ck_assert_int_eq(gc_body_validate(res, b, fields, 5, NULL), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(res->errors, 0), "message")),
                     "weight must not be 0");
    json_decref(b);

    res = gc_result_make(pool);
    b = json_loads("{\"name\":\"abcd\",\"weight\":1.5,\"depth\":0.5,\"flag\":1,\"items\":[],"
                   "\"x\":1}",
                   0, NULL);
    ck_assert_int_eq(gc_body_validate(res, b, fields, 5, NULL), 6);
    e = res->errors;
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(e, 0), "message")),
                     "name must be 1 to 3 characters");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(e, 1), "message")),
                     "weight must be between 0 and 1");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(e, 2), "message")),
                     "depth must be an integer");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(e, 3), "message")),
                     "flag must be true or false or null");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(e, 4), "message")),
                     "items must be 1 to 2 items");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(e, 5), "field")), "x");
    ck_assert_str_eq(res->error_type, "invalid_value");
    gc_body_fail(res, 422);
    ck_assert_int_eq(res->status, 422);
    ck_assert_str_eq(res->detail, "6 fields are invalid");
    json_decref(b);

    /* absent required members; a long unknown name cut inside UTF-8 */
    res = gc_result_make(pool);
    b = json_object();
    json_object_set_new(b,
                        apr_pstrcat(pool,
                                    apr_pstrndup(pool,
                                                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                                                 63),
                                    "\xc3\xa9z", NULL),
                        json_true());
    ck_assert_int_eq(gc_body_validate(res, b, fields, 5, NULL), 3);
    ck_assert_str_eq(res->error_type, "missing_field");
    ck_assert(
        strstr(json_string_value(json_object_get(json_array_get(res->errors, 2), "field")), "..."));
    json_decref(b);
}
END_TEST

START_TEST(result_rendering)
{
    gc_result_t *res = gc_result_make(pool);
    gc_error_t e;
    json_t *j;

    memset(&e, 0, sizeof(e));
    e.kind = GC_ERR_BUDGET;
    e.message = "no slot";
    gc_result_upstream(res, &e);
    ck_assert_int_eq(res->status, 503);
    ck_assert_int_eq(res->retry_after, APR_USEC_PER_SEC);
    gc_result_extra(res, "etag", json_string("\"x\""));
    gc_result_field(res, "f", "f is bad");
    j = gc_result_json(res);
    ck_assert_str_eq(json_string_value(json_object_get(j, "type")),
                     "urn:gcmon:problem:upstream_throttled");
    ck_assert_str_eq(json_string_value(json_object_get(j, "etag")), "\"x\"");
    ck_assert_int_eq(json_array_size(json_object_get(j, "errors")), 1);
    json_decref(j);
    j = gc_result_audit_json(res);
    ck_assert_str_eq(json_string_value(json_object_get(j, "error")), "upstream_throttled");
    json_decref(j);
    e.kind = GC_ERR_FORBIDDEN;
    gc_result_upstream(res, &e);
    ck_assert_int_eq(res->status, 502);
    ck_assert_str_eq(res->slug, "upstream_forbidden");
    gc_result_ok(res, 200, json_pack("{s:i}", "a", 1));
    ck_assert(!gc_result_failed(res));
}
END_TEST

START_TEST(etag_hash)
{
    gc_etag_hash_t a, b;

    gc_etag_hash_init(&a);
    gc_etag_hash_init(&b);
    gc_etag_hash_str(&a, NULL);
    gc_etag_hash_str(&b, "");
    ck_assert_str_ne(gc_etag_hash_text(pool, &a), gc_etag_hash_text(pool, &b));
    gc_etag_hash_init(&a);
    gc_etag_hash_init(&b);
    gc_etag_hash_str(&a, "ab");
    gc_etag_hash_str(&a, "c");
    gc_etag_hash_str(&b, "a");
    gc_etag_hash_str(&b, "bc");
    ck_assert_str_ne(gc_etag_hash_text(pool, &a), gc_etag_hash_text(pool, &b));
    ck_assert_int_eq(strlen(gc_etag_hash_text(pool, &a)), 34);
}
END_TEST

Suite *status_change_suite(void)
{
    Suite *s = suite_create("status_change");
    TCase *tc = tcase_create("protocol");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, change_happy_path);
    tcase_add_test(tc, change_validation_collects_every_error);
    tcase_add_test(tc, change_not_ready_unknown_and_upstream);
    tcase_add_test(tc, change_if_match_and_rules);
    tcase_add_test(tc, change_lock_contention);
    tcase_add_test(tc, body_validator);
    tcase_add_test(tc, result_rendering);
    tcase_add_test(tc, etag_hash);
    suite_add_tcase(s, tc);
    return s;
}
