/* gc_strategy_admin: the strategies' admin protocol through fake upstream
 * calls (and, for the rebalance, a real SQLite store): live validation and
 * its upstream failures, the rebalance with its audit row and WFM delivery
 * fenced by revision, the latency interval and figures, the Genesys audit
 * query's polling and pages, the merged audit trail. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_strings.h>

#include "gc_log.h"
#include "gc_outbox.h"
#include "gc_strategy_admin.h"
#include "gc_time.h"
#include "unit.h"

static apr_pool_t *pool;
static char db_dir[256];
static char db_path[300];

static int quiet(void *baton, int level)
{
    return 0;
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");

    apr_pool_create(&pool, NULL);
    apr_dbd_init(pool);
    snprintf(db_dir, sizeof(db_dir), "%s/gcmon-sadm-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(db_dir));
    snprintf(db_path, sizeof(db_path), "%s/gcmon.db", db_dir);
    gc_log_set(quiet, NULL, NULL);
}

static void teardown(void)
{
    static const char *const files[] = { "gcmon.db", "gcmon.db-wal", "gcmon.db-shm",
                                         "gcmon.db-journal" };
    char path[400];
    size_t i;

    gc_log_set(NULL, NULL, NULL);
    apr_pool_destroy(pool);
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", db_dir, files[i]);
        unlink(path);
    }
    rmdir(db_dir);
}

static apr_status_t decref(void *j)
{
    json_decref(j);
    return APR_SUCCESS;
}

/* A reference released with the test's pool. */
static json_t *keep(json_t *j)
{
    if (j) {
        apr_pool_cleanup_register(pool, j, decref, apr_pool_cleanup_null);
    }
    return j;
}

#define STRATEGY                                                                    \
    "{\"name\":\"Sales\",\"selection_criteria\":{\"skills\":[{\"skill_id\":\"s1\"," \
    "\"required\":true},{\"skill_id\":\"s2\",\"required\":false}]},\"targets\":["   \
    "{\"queue_id\":\"q1\",\"priority\":1,\"weight\":1,\"capacity\":10},"            \
    "{\"queue_id\":\"q2\",\"priority\":1,\"weight\":2,\"capacity\":4},"             \
    "{\"queue_id\":\"q3\",\"priority\":2,\"weight\":0.5,\"capacity\":3}],"          \
    "\"fallback\":{\"queue_id\":\"qf\",\"priority\":99,\"weight\":1}}"

static gc_strategy_t *strategy(void)
{
    gc_result_t *res = gc_result_make(pool);
    json_t *b = keep(json_loads(STRATEGY, 0, NULL));
    gc_strategy_t *s = NULL;

    ck_assert_int_eq(gc_strategy_validate(pool, res, b, &s), 0);
    return s;
}

/* ---------------------------------------------------------------- fakes */

typedef struct {
    /* observe */
    int observe_fail, deadline_cut;
    gc_err_kind_e kind;
    int observed[3];
    double interacting[3];
    int observe_calls;
    /* skilled: 1, 0, or -404 */
    int skilled[3];
    int fail_skilled_at; /* 1-based target whose probe fails with `kind`; 0 none */
    char skills_seen[64];
    int skilled_calls;
    /* aggregates */
    gc_strategy_latency_t fig[3];
    const char *interval;
    /* audits */
    int running_polls, polls, submits, pages_asked;
    const char *end_state;
    int pages; /* result pages, 2 entries each */
} fake_t;

static gc_error_t *fake_err(apr_pool_t *p, gc_err_kind_e kind, int status, int cut)
{
    gc_error_t *e = apr_pcalloc(p, sizeof(*e));

    e->kind = kind;
    e->status = status;
    e->deadline_cut = cut;
    e->message = "scripted failure";
    e->retry_after = apr_time_from_sec(7);
    return e;
}

static apr_status_t f_observe(void *baton, apr_pool_t *p, const char *const *queue_ids, int n,
                              gc_strategy_live_t *live, gc_error_t **err)
{
    fake_t *f = baton;
    int i;

    f->observe_calls++;
    if (f->observe_fail) {
        *err = fake_err(p, f->kind, f->kind == GC_ERR_THROTTLED ? 429 : 500, f->deadline_cut);
        return APR_EGENERAL;
    }
    for (i = 0; i < n && i < 3; i++) {
        live[i].observed = f->observed[i];
        live[i].interacting = f->interacting[i];
    }
    return APR_SUCCESS;
}

static apr_status_t f_skilled(void *baton, apr_pool_t *p, const char *queue_id,
                              const char *const *skill_ids, int n_skills, int *any,
                              gc_error_t **err)
{
    fake_t *f = baton;
    int i = queue_id[1] - '1', k;

    f->skilled_calls++;
    f->skills_seen[0] = '\0';
    for (k = 0; k < n_skills; k++) {
        strcat(f->skills_seen, skill_ids[k]);
        strcat(f->skills_seen, ",");
    }
    if (f->fail_skilled_at == i + 1) {
        *err = fake_err(p, f->kind, 502, f->deadline_cut);
        return APR_EGENERAL;
    }
    if (f->skilled[i] == -404) {
        *err = fake_err(p, GC_ERR_NOT_FOUND, 404, 0);
        return APR_EGENERAL;
    }
    *any = f->skilled[i];
    return APR_SUCCESS;
}

static apr_status_t f_aggregates(void *baton, apr_pool_t *p, const char *interval,
                                 const char *const *queue_ids, int n, gc_strategy_latency_t *out,
                                 gc_error_t **err)
{
    fake_t *f = baton;

    f->interval = apr_pstrdup(p, interval);
    memcpy(out, f->fig, sizeof(*out) * (size_t)n);
    return APR_SUCCESS;
}

static apr_status_t f_submit(void *baton, apr_pool_t *p, const char *interval,
                             const char *const *queue_ids, int n, const char **query_id,
                             const char **state, gc_error_t **err)
{
    fake_t *f = baton;

    f->submits++;
    f->interval = apr_pstrdup(p, interval);
    *query_id = "tx-1";
    *state = "Queued";
    return APR_SUCCESS;
}

static apr_status_t f_poll(void *baton, apr_pool_t *p, const char *query_id, const char **state,
                           gc_error_t **err)
{
    fake_t *f = baton;

    f->polls++;
    *state = f->polls <= f->running_polls ? "Running" : f->end_state;
    return APR_SUCCESS;
}

static apr_status_t f_results(void *baton, apr_pool_t *p, const char *query_id, const char *cursor,
                              json_t **entities, const char **next, gc_error_t **err)
{
    fake_t *f = baton;
    int page = cursor ? atoi(cursor) : 0;

    f->pages_asked++;
    *entities =
        json_pack("[{s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:{s:s}, s:[{s:s, s:[s], s:[s]}]}, "
                  "{s:s, s:s, s:s, s:{s:s}, s:s, s:{s:s}}, i]",
                  "id", apr_psprintf(p, "a%d", 2 * page), "eventDate",
                  apr_psprintf(p, "2026-01-05T10:0%d:00.000Z", 9 - 2 * page), "action", "Update",
                  "user", "id", "u1", "name", "Ada", "entityType", "Queue", "entity", "id", "q1",
                  "propertyChanges", "property", "skillEvaluationMethod", "oldValues", "BEST",
                  "newValues", "ALL", "id", apr_psprintf(p, "a%d", 2 * page + 1), "eventDate",
                  apr_psprintf(p, "2026-01-05T10:0%d:00.000Z", 8 - 2 * page), "action", "Update",
                  "client", "id", "c1", "entityType", "Queue", "entity", "id", "q2", 7);
    *next = page + 1 < f->pages ? apr_psprintf(p, "%d", page + 1) : NULL;
    return APR_SUCCESS;
}

static gc_strategy_ops_t fake_ops(fake_t *f)
{
    gc_strategy_ops_t ops;

    memset(&ops, 0, sizeof(ops));
    ops.baton = f;
    ops.observe = f_observe;
    ops.skilled = f_skilled;
    ops.aggregates = f_aggregates;
    ops.audit_submit = f_submit;
    ops.audit_poll = f_poll;
    ops.audit_results = f_results;
    return ops;
}

static const char *field0(const gc_result_t *res)
{
    return json_string_value(json_object_get(json_array_get(res->errors, 0), "field"));
}

/* ---------------------------------------------------------------- check */

START_TEST(admin_check)
{
    fake_t f;
    gc_strategy_ops_t ops = fake_ops(&f);
    gc_strategy_t *s = strategy();
    gc_result_t *res;
    json_t *report = NULL;

    /* Every target with spare capacity and a skilled member. */
    memset(&f, 0, sizeof(f));
    f.observed[0] = f.observed[1] = f.observed[2] = 1;
    f.interacting[0] = 9;
    f.skilled[0] = f.skilled[1] = f.skilled[2] = 1;
    res = gc_result_make(pool);
    ck_assert_int_eq(gc_strategy_admin_check(pool, &ops, s, res, &report), 0);
    ck_assert(!gc_result_failed(res));
    keep(report); /* json_is_true evaluates its argument twice */
    ck_assert(json_is_true(json_object_get(report, "ok")));
    ck_assert_str_eq(f.skills_seen, "s1,"); /* the required skill only */
    ck_assert_int_eq(f.skilled_calls, 3);

    /* q1 full, q3 without a skilled member: 422 naming each, the report. */
    f.interacting[0] = 10;
    f.skilled[2] = 0;
    res = gc_result_make(pool);
    ck_assert_int_eq(gc_strategy_admin_check(pool, &ops, s, res, &report), 1);
    keep(report);
    ck_assert_int_eq(res->status, 422);
    ck_assert_str_eq(res->slug, "validation_failed");
    ck_assert_int_eq(json_array_size(res->errors), 2);
    ck_assert_str_eq(field0(res), "targets[0]");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(res->errors, 1), "field")),
                     "targets[2]");
    ck_assert_ptr_nonnull(json_object_get(res->extra, "validation"));

    /* A queue Genesys does not know: 422 naming it (every target probed). */
    f.interacting[0] = 0;
    f.skilled[1] = -404;
    f.skilled_calls = 0;
    res = gc_result_make(pool);
    ck_assert_int_eq(gc_strategy_admin_check(pool, &ops, s, res, &report), 1);
    ck_assert_int_eq(res->status, 422);
    ck_assert_str_eq(field0(res), "targets[1]");
    ck_assert_ptr_nonnull(strstr(
        json_string_value(json_object_get(json_array_get(res->errors, 0), "message")), "q2"));
    ck_assert_int_eq(f.skilled_calls, 3);

    /* Upstream failures: throttled → 503 with Retry-After; a deadline → 503
     * upstream_deadline; a server error → 502. */
    f.skilled[1] = 1;
    f.observe_fail = 1;
    f.kind = GC_ERR_THROTTLED;
    res = gc_result_make(pool);
    ck_assert_int_eq(gc_strategy_admin_check(pool, &ops, s, res, &report), 1);
    ck_assert_int_eq(res->status, 503);
    ck_assert_str_eq(res->slug, "upstream_throttled");
    ck_assert(res->retry_after == apr_time_from_sec(7));

    f.observe_fail = 0;
    f.fail_skilled_at = 2;
    f.kind = GC_ERR_TIMEOUT;
    f.deadline_cut = 1;
    res = gc_result_make(pool);
    ck_assert_int_eq(gc_strategy_admin_check(pool, &ops, s, res, &report), 1);
    ck_assert_int_eq(res->status, 503);
    ck_assert_str_eq(res->slug, "upstream_deadline");
    ck_assert(res->retry_after > 0);

    f.kind = GC_ERR_SERVER;
    f.deadline_cut = 0;
    res = gc_result_make(pool);
    ck_assert_int_eq(gc_strategy_admin_check(pool, &ops, s, res, &report), 1);
    ck_assert_int_eq(res->status, 502);
    ck_assert_str_eq(res->slug, "upstream_error");
}
END_TEST

/* ---------------------------------------------------------------- rebalance */

static gc_store_t *open_store(void)
{
    gc_store_t *st = NULL;
    const char *err = NULL;

    ck_assert_msg(gc_store_open(pool, "sqlite3", db_path, &st, &err) == APR_SUCCESS && st,
                  "gc_store_open: %s", err);
    ck_assert_msg(gc_store_migrate(st, &err) == APR_SUCCESS, "migrate: %s", err);
    return st;
}

static gc_strategy_rec_t stored(gc_store_t *st, const char *id)
{
    gc_strategy_rec_t r;
    gc_audit_rec_t a;
    const char *err = NULL;
    json_t *canon = keep(gc_strategy_json(strategy()));

    memset(&r, 0, sizeof(r));
    r.id = id;
    r.name = "Sales";
    r.body = gc_json_text(pool, canon);
    r.actor = "alice";
    r.created_at = apr_time_now();
    memset(&a, 0, sizeof(a));
    a.at = r.created_at;
    a.actor = "alice";
    a.action = GC_AUDIT_STRATEGY_CREATE;
    a.target = id;
    a.status = 201;
    ck_assert_msg(gc_store_strategy_add(st, pool, &r, &a, NULL, NULL, &err) == APR_SUCCESS, "%s",
                  err);
    return r;
}

static gc_strategy_rec_t reread(gc_store_t *st, const char *id)
{
    gc_strategy_rec_t r;
    const char *err = NULL;
    int found = 0;

    ck_assert(gc_store_strategy_get(st, pool, id, &r, &found, &err) == APR_SUCCESS && found);
    return r;
}

static long audits(gc_store_t *st, const char *action)
{
    gc_query_t q;
    gc_page_t pg;
    const char *err = NULL;

    memset(&q, 0, sizeof(q));
    q.limit = 100;
    q.action = action;
    ck_assert(gc_store_audit_list(st, pool, &q, &pg, &err) == APR_SUCCESS);
    return pg.total;
}

static apr_array_header_t *outbox(gc_store_t *st)
{
    apr_array_header_t *rows = NULL;
    const char *err = NULL;

    ck_assert(
        gc_store_outbox_due(st, pool, apr_time_now() + apr_time_from_sec(3600), 100, &rows, &err)
        == APR_SUCCESS);
    return rows;
}

/* The raw 1/(1+occupancy) of each observed target, stored at the next
 * revision with its audit row and WFM delivery; an unobserved target kept. */
START_TEST(admin_rebalance)
{
    gc_store_t *st = open_store();
    gc_strategy_rec_t rec = stored(st, "strat-1"), after;
    fake_t f;
    gc_strategy_ops_t ops = fake_ops(&f);
    gc_result_t *res = gc_result_make(pool);
    apr_time_t started = apr_time_now();
    gc_strategy_t *s;
    json_t *rows, *hook;
    apr_array_header_t *ob;

    memset(&f, 0, sizeof(f));
    f.observed[0] = f.observed[1] = 1;
    f.interacting[0] = 3; /* occupancy 0.3 */
    f.interacting[1] = 6; /* 1.5: above 1 is kept */
    gc_strategy_admin_rebalance(pool, st, &ops, &rec, "bob", "user", started, 1, res);
    ck_assert_msg(!gc_result_failed(res), "%s", res->detail);
    ck_assert_int_eq(res->status, 200);
    ck_assert_int_eq(f.skilled_calls, 0); /* observations only */
    ck_assert_str_eq(json_string_value(json_object_get(res->doc, "strategy_id")), "strat-1");
    ck_assert_int_eq(json_integer_value(json_object_get(res->doc, "rebalanced")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(res->doc, "kept")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(res->doc, "revision")), 2);
    rows = json_object_get(res->doc, "targets");
    ck_assert(json_real_value(json_object_get(json_array_get(rows, 0), "weight"))
              == 1.0 / (1.0 + 3.0 / 10.0));
    ck_assert(json_real_value(json_object_get(json_array_get(rows, 1), "weight"))
              == 1.0 / (1.0 + 6.0 / 4.0));
    ck_assert(json_real_value(json_object_get(json_array_get(rows, 2), "weight")) == 0.5);

    after = reread(st, "strat-1");
    ck_assert_int_eq(after.revision, 2);
    ck_assert(after.rebalanced_at == started - started % 1000);
    s = gc_strategy_admin_parse(pool, &after);
    ck_assert_ptr_nonnull(s);
    ck_assert(s->targets[0].weight == 1.0 / 1.3);
    ck_assert(s->targets[1].weight == 1.0 / 2.5);
    ck_assert(s->targets[2].weight == 0.5);
    ck_assert(s->fallback.weight == 1);
    ck_assert_int_eq(audits(st, GC_AUDIT_STRATEGY_REBALANCE), 1);
    ob = outbox(st);
    ck_assert_int_eq(ob->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(ob, 0, gc_outbox_row_t).target, "wfm");
    hook = keep(json_loads(APR_ARRAY_IDX(ob, 0, gc_outbox_row_t).body, 0, NULL));
    ck_assert_str_eq(json_string_value(json_object_get(hook, "strategy_id")), "strat-1");
    ck_assert_str_eq(json_string_value(json_object_get(hook, "status")), "draft");
    ck_assert(json_real_value(
                  json_object_get(json_array_get(json_object_get(hook, "targets"), 0), "weight"))
              == 1.0 / 1.3);

    /* The revision read is stale now: 409, nothing written. */
    res = gc_result_make(pool);
    gc_strategy_admin_rebalance(pool, st, &ops, &rec, "bob", "user", started, 0, res);
    ck_assert_int_eq(res->status, 409);
    ck_assert_str_eq(res->slug, "strategy_changed");
    ck_assert_int_eq(reread(st, "strat-1").revision, 2);
    ck_assert_int_eq(audits(st, GC_AUDIT_STRATEGY_REBALANCE), 1);

    /* Nothing observed: 502, nothing written; no WFM without wfm. */
    f.observed[0] = f.observed[1] = 0;
    res = gc_result_make(pool);
    gc_strategy_admin_rebalance(pool, st, &ops, &after, "bob", "user", started, 1, res);
    ck_assert_int_eq(res->status, 502);
    ck_assert_str_eq(res->slug, "observations_unavailable");
    ck_assert_int_eq(reread(st, "strat-1").revision, 2);

    f.observed[2] = 1;
    f.interacting[2] = 0;
    res = gc_result_make(pool);
    gc_strategy_admin_rebalance(pool, st, &ops, &after, "gcmon", NULL, started, 0, res);
    ck_assert_int_eq(res->status, 200);
    ck_assert_int_eq(reread(st, "strat-1").revision, 3);
    ck_assert_int_eq(outbox(st)->nelts, 1);
    ck_assert_int_eq(audits(st, GC_AUDIT_STRATEGY_REBALANCE), 2);

    /* Upstream failure: its problem, nothing written. */
    after = reread(st, "strat-1");
    f.observe_fail = 1;
    f.kind = GC_ERR_THROTTLED;
    res = gc_result_make(pool);
    gc_strategy_admin_rebalance(pool, st, &ops, &after, "bob", "user", started, 0, res);
    ck_assert_int_eq(res->status, 503);
    ck_assert_int_eq(reread(st, "strat-1").revision, 3);

    /* Activating: 409 before any upstream call. */
    f.observe_calls = 0;
    after.status = GC_STRATEGY_ACTIVATING;
    res = gc_result_make(pool);
    gc_strategy_admin_rebalance(pool, st, &ops, &after, "bob", "user", started, 0, res);
    ck_assert_int_eq(res->status, 409);
    ck_assert_str_eq(res->slug, "strategy_activating");
    ck_assert_int_eq(f.observe_calls, 0);

    /* Deleted meanwhile: 404. */
    {
        gc_strategy_change_e oc;
        const char *status = NULL, *err = NULL;
        after = reread(st, "strat-1");
        ck_assert(gc_store_strategy_delete(st, pool, "strat-1", NULL, &oc, &status, &err)
                  == APR_SUCCESS);
        f.observe_fail = 0;
        res = gc_result_make(pool);
        gc_strategy_admin_rebalance(pool, st, &ops, &after, "bob", "user", started, 0, res);
        ck_assert_int_eq(res->status, 404);
    }
}
END_TEST

/* ---------------------------------------------------------------- latency */

START_TEST(admin_interval)
{
    apr_time_t a, b;
    const char *why = NULL;

    ck_assert_int_eq(
        gc_strategy_admin_interval("2026-01-05T00:00:00Z/2026-01-06T00:00:00.500Z", &a, &b, &why),
        0);
    ck_assert(b - a == apr_time_from_sec(86400) + apr_time_from_msec(500));
    ck_assert_int_eq(
        gc_strategy_admin_interval("2026-01-01T00:00:00Z/2026-02-01T00:00:00Z", &a, &b, &why), 0);
    ck_assert_int_eq(
        gc_strategy_admin_interval("2026-01-01T00:00:00Z/2026-02-01T00:00:01Z", &a, &b, &why), -1);
    ck_assert_str_eq(why, "must span at most 31 days");
    ck_assert_int_eq(
        gc_strategy_admin_interval("2026-01-06T00:00:00Z/2026-01-05T00:00:00Z", &a, &b, &why), -1);
    ck_assert_int_eq(
        gc_strategy_admin_interval("2026-01-05T00:00:00Z/2026-01-05T00:00:00Z", &a, &b, &why), -1);
    ck_assert_int_eq(gc_strategy_admin_interval("2026-01-05T00:00:00Z/P1D", &a, &b, &why), -1);
    ck_assert_int_eq(gc_strategy_admin_interval("2026-01-05T00:00:00Z", &a, &b, &why), -1);
    ck_assert_int_eq(gc_strategy_admin_interval("/2026-01-05T00:00:00Z", &a, &b, &why), -1);
    ck_assert_int_eq(
        gc_strategy_admin_interval("2026-01-05T00:00:00Z/2026-01-06T00:00:00Z/x", &a, &b, &why),
        -1);
    ck_assert_int_eq(gc_strategy_admin_interval("", &a, &b, &why), -1);
    ck_assert_int_eq(gc_strategy_admin_interval(NULL, &a, &b, &why), -1);
}
END_TEST

START_TEST(admin_latency)
{
    fake_t f;
    gc_strategy_ops_t ops = fake_ops(&f);
    gc_strategy_t *s = strategy();
    gc_result_t *res = gc_result_make(pool);
    apr_time_t a, b;
    const char *why;
    json_t *t0, *t1;

    memset(&f, 0, sizeof(f));
    f.fig[0].has_data = 1;
    f.fig[0].offered = 4;
    f.fig[0].wait.has = 1;
    f.fig[0].wait.count = 4;
    f.fig[0].wait.sum = 16500;
    f.fig[0].wait.max = 9000;
    f.fig[0].answer.has = 1;
    f.fig[0].answer.count = 3;
    f.fig[0].answer.sum = 1000;
    f.fig[0].answer.max = 500;
    ck_assert_int_eq(
        gc_strategy_admin_interval("2026-01-05T00:00:00Z/2026-01-06T00:00:00Z", &a, &b, &why), 0);
    gc_strategy_admin_latency(pool, &ops, "strat-1", s, a, b, res);
    ck_assert_int_eq(res->status, 200);
    ck_assert_str_eq(f.interval, "2026-01-05T00:00:00.000Z/2026-01-06T00:00:00.000Z");
    ck_assert_str_eq(json_string_value(json_object_get(res->doc, "interval")), f.interval);
    t0 = json_array_get(json_object_get(res->doc, "targets"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(t0, "queue_id")), "q1");
    ck_assert_int_eq(json_integer_value(json_object_get(t0, "offered")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(t0, "answered")), 3);
    ck_assert(json_real_value(json_object_get(json_object_get(t0, "wait_ms"), "avg")) == 4125.0);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(t0, "wait_ms"), "max")),
                     9000);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(t0, "answer_ms"), "count")),
                     3);
    t1 = json_array_get(json_object_get(res->doc, "targets"), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(t1, "offered")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(t1, "answered")), 0);
    ck_assert(json_is_null(json_object_get(json_object_get(t1, "wait_ms"), "avg")));
    ck_assert(json_is_null(json_object_get(json_object_get(t1, "wait_ms"), "max")));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(t1, "wait_ms"), "count")),
                     0);
    ck_assert_int_eq(json_array_size(json_object_get(res->doc, "targets")), 3);
}
END_TEST

/* ---------------------------------------------------------------- audits */

START_TEST(admin_upstream_audit)
{
    fake_t f;
    gc_strategy_ops_t ops = fake_ops(&f);
    gc_strategy_t *s = strategy();
    gc_result_t *res = gc_result_make(pool);
    json_t *entries = NULL, *e0, *e1;
    int truncated = -1;
    apr_time_t from, to, t0 = apr_time_now();

    gc_time_parse("2026-01-05T09:00:00Z", &from);
    gc_time_parse("2026-01-05T11:00:00Z", &to);
    memset(&f, 0, sizeof(f));
    f.running_polls = 1;
    f.end_state = "Succeeded";
    f.pages = 2;
    ck_assert_int_eq(gc_strategy_admin_upstream_audit(pool, &ops, s, from, to,
                                                      apr_time_now() + apr_time_from_sec(10),
                                                      &entries, &truncated, res),
                     APR_SUCCESS);
    keep(entries);
    ck_assert(!gc_result_failed(res));
    ck_assert_str_eq(f.interval, "2026-01-05T09:00:00.000Z/2026-01-05T11:00:00.000Z");
    ck_assert_int_eq(f.polls, 2);
    /* Queued → (200 ms) Running → (400 ms) Succeeded. */
    ck_assert(apr_time_now() - t0 >= apr_time_from_msec(600));
    ck_assert_int_eq(f.pages_asked, 2);
    ck_assert_int_eq(truncated, 0);
    ck_assert_int_eq(json_array_size(entries), 4);
    e0 = json_array_get(entries, 0);
    ck_assert_str_eq(json_string_value(json_object_get(e0, "source")), "genesys");
    ck_assert_str_eq(json_string_value(json_object_get(e0, "actor")), "Ada");
    ck_assert_str_eq(json_string_value(json_object_get(e0, "at")), "2026-01-05T10:09:00.000Z");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(e0, "entity"), "type")),
                     "Queue");
    ck_assert_str_eq(
        json_string_value(json_array_get(
            json_object_get(json_array_get(json_object_get(e0, "changes"), 0), "new"), 0)),
        "ALL");
    e1 = json_array_get(entries, 1);
    ck_assert_str_eq(json_string_value(json_object_get(e1, "actor")), "client:c1");
    ck_assert_int_eq(json_array_size(json_object_get(e1, "changes")), 0);

    /* More pages than kept: truncated. */
    memset(&f, 0, sizeof(f));
    f.end_state = "Succeeded";
    f.pages = GC_STRATEGY_ADMIN_AUDIT_PAGES + 3;
    res = gc_result_make(pool);
    ck_assert_int_eq(
        gc_strategy_admin_upstream_audit(pool, &ops, s, from, to, 0, &entries, &truncated, res),
        APR_SUCCESS);
    keep(entries);
    ck_assert_int_eq(truncated, 1);
    ck_assert_int_eq(f.pages_asked, GC_STRATEGY_ADMIN_AUDIT_PAGES);

    /* Failed: 502. */
    memset(&f, 0, sizeof(f));
    f.end_state = "Failed";
    res = gc_result_make(pool);
    ck_assert_int_ne(
        gc_strategy_admin_upstream_audit(pool, &ops, s, from, to, 0, &entries, &truncated, res),
        APR_SUCCESS);
    ck_assert_int_eq(res->status, 502);
    ck_assert_str_eq(res->slug, "upstream_audit_failed");
    ck_assert_ptr_null(entries);

    /* A wait that would pass the deadline: 503 at once, with Retry-After. */
    memset(&f, 0, sizeof(f));
    f.running_polls = 100;
    f.end_state = "Succeeded";
    res = gc_result_make(pool);
    t0 = apr_time_now();
    ck_assert_int_ne(gc_strategy_admin_upstream_audit(pool, &ops, s, from, to,
                                                      apr_time_now() + apr_time_from_msec(700),
                                                      &entries, &truncated, res),
                     APR_SUCCESS);
    ck_assert_int_eq(res->status, 503);
    ck_assert_str_eq(res->slug, "upstream_deadline");
    ck_assert(res->retry_after >= apr_time_from_sec(1));
    ck_assert_int_eq(f.polls, 2); /* 200 + 400 ms waited; 800 more would pass it */
    ck_assert(apr_time_now() - t0 < apr_time_from_msec(700));
}
END_TEST

START_TEST(admin_audit_merge)
{
    gc_audit_rec_t a;
    json_t *gcmon = keep(json_array()), *genesys, *merged;

    memset(&a, 0, sizeof(a));
    a.id = 7;
    gc_time_parse("2026-01-05T10:05:00Z", &a.at);
    a.actor = "alice";
    a.actor_source = "user";
    a.action = GC_AUDIT_STRATEGY_CREATE;
    a.target = "strat-1";
    a.request = "{\"name\":\"Sales\"}";
    a.result = "not json";
    a.status = 201;
    json_array_append_new(gcmon, gc_strategy_admin_audit_entry(pool, &a));
    a.id = 8;
    gc_time_parse("2026-01-05T10:09:00Z", &a.at);
    json_array_append_new(gcmon, gc_strategy_admin_audit_entry(pool, &a));
    genesys = keep(json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s}]", "source", "genesys", "at",
                             "2026-01-05T10:09:00.000Z", "source", "genesys", "at",
                             "2026-01-05T10:07:00.000Z", "source", "genesys"));
    merged = keep(gc_strategy_admin_audit_merge(gcmon, genesys));
    ck_assert_int_eq(json_array_size(merged), 5);
    /* 10:09 gcmon, 10:09 genesys (ties: gcmon first), 10:07, 10:05, no time. */
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(merged, 0), "id")), 8);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(merged, 1), "source")),
                     "genesys");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(merged, 2), "at")),
                     "2026-01-05T10:07:00.000Z");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(merged, 3), "id")), 7);
    ck_assert_ptr_null(json_object_get(json_array_get(merged, 4), "at"));
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(merged, 3), "request"), "name")),
                     "Sales");
    ck_assert(json_is_null(json_object_get(json_array_get(merged, 3), "result")));
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(merged, 3), "source")),
                     "gcmon");
    ck_assert_int_eq(json_array_size(gcmon), 2); /* inputs unchanged */
    merged = keep(gc_strategy_admin_audit_merge(NULL, NULL));
    ck_assert_int_eq(json_array_size(merged), 0);
}
END_TEST

Suite *strategy_admin_suite(void)
{
    Suite *s = suite_create("strategy_admin");
    TCase *tc = tcase_create("admin");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, admin_check);
    tcase_add_test(tc, admin_rebalance);
    tcase_add_test(tc, admin_interval);
    tcase_add_test(tc, admin_latency);
    tcase_add_test(tc, admin_upstream_audit);
    tcase_add_test(tc, admin_audit_merge);
    suite_add_tcase(s, tc);
    return s;
}
