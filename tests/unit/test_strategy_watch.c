/* The route tables' sources on a SQLite store: every host's load of the
 * active strategies into its block (gc_route_load: bodies, live figures,
 * observed_at, unreadable rows, drafts not routed, strategies leaving), and
 * the holder's strategies thread (gc_strategy_watch: one observations query
 * for every distinct target queue, chunked; all or nothing; no call without
 * an active strategy; the rebalance schedule; the thread's loop, database
 * outage, stop). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_strings.h>

#include "gc_audit.h"
#include "gc_jobs.h"
#include "gc_log.h"
#include "gc_monitor.h"
#include "gc_route_load.h"
#include "gc_store.h"
#include "gc_store_strategy.h"
#include "gc_strategy_watch.h"
#include "unit.h"

#define T0 ((apr_time_t)1767607200000000) /* 2026-01-05T10:00:00Z */
#define SEC(n) apr_time_from_sec(n)

static apr_pool_t *pool;
static char db_dir[256], db_path[300];
static char *log_text; /* what the code under test logged (gc_log_set) */
static gc_store_t *st;

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    const char *err = NULL;

    apr_pool_create(&pool, NULL);
    apr_dbd_init(pool);
    snprintf(db_dir, sizeof(db_dir), "%s/gcmon-watch-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(db_dir));
    snprintf(db_path, sizeof(db_path), "%s/gcmon.db", db_dir);
    ck_assert_msg(gc_store_open(pool, "sqlite3", db_path, &st, &err) == APR_SUCCESS && st,
                  "gc_store_open: %s", err);
    ck_assert_msg(gc_store_migrate(st, &err) == APR_SUCCESS, "migrate: %s", err);
}

static void teardown(void)
{
    static const char *const files[] = { "gcmon.db", "gcmon.db-wal", "gcmon.db-shm",
                                         "gcmon.db-journal" };
    char path[400];
    size_t i;

    gc_log_set(NULL, NULL, NULL);
    free(log_text);
    log_text = NULL;
    gc_store_close(st);
    st = NULL;
    apr_pool_destroy(pool);
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", db_dir, files[i]);
        unlink(path);
    }
    rmdir(db_dir);
}

/* Raw SQL through a connection of its own. */
static void sql_exec(const char *sql)
{
    const apr_dbd_driver_t *d = NULL;
    apr_dbd_t *h = NULL;
    int rv, n = 0;

    ck_assert_int_eq(apr_dbd_get_driver(pool, "sqlite3", &d), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_open(d, pool, db_path, &h), APR_SUCCESS);
    rv = apr_dbd_query(d, h, &n, sql);
    ck_assert_msg(rv == 0, "%s: %s", sql, apr_dbd_error(d, h, rv));
    apr_dbd_close(d, h);
}

/* ---------------------------------------------------------------- strategies */

static gc_audit_rec_t *audit(const char *action, const char *target)
{
    gc_audit_rec_t *a = apr_pcalloc(pool, sizeof(*a));

    a->at = T0;
    a->actor = "alice";
    a->actor_source = "user";
    a->action = action;
    a->target = target;
    a->status = 200;
    return a;
}

/* The canonical body of a strategy over `queues` (space separated; priority
 * from a "2:" prefix, else 1), weight w, capacity 10, fallback "q-fb". */
static const char *body_of(const char *queues, double w)
{
    char *list = apr_pstrdup(pool, queues), *last = NULL, *q;
    json_t *targets = json_array(), *doc;
    gc_strategy_t *s = NULL;
    char *text;
    const char *out;

    for (q = apr_strtok(list, " ", &last); q; q = apr_strtok(NULL, " ", &last)) {
        int prio = 1;
        if (q[0] && q[1] == ':') {
            prio = q[0] - '0';
            q += 2;
        }
        json_array_append_new(targets, json_pack("{s:s,s:i,s:f,s:i}", "queue_id", q, "priority",
                                                 prio, "weight", w, "capacity", 10));
    }
    doc = json_pack("{s:s,s:o,s:{s:s,s:i,s:f}}", "name", "S", "targets", targets, "fallback",
                    "queue_id", "q-fb", "priority", 99, "weight", 1.0);
    ck_assert_int_eq(gc_strategy_validate(pool, gc_result_make(pool), doc, &s), 0);
    json_decref(doc);
    doc = gc_strategy_json(s);
    text = json_dumps(doc, JSON_COMPACT);
    out = apr_pstrdup(pool, text);
    free(text);
    json_decref(doc);
    return out;
}

/* A strategy stored as draft (active 0) or made active through its
 * activation (activate, then settle). */
static void add(const char *id, const char *body, int active)
{
    gc_strategy_rec_t r;
    gc_strategy_change_e oc = GC_STRATEGY_CHANGED;
    const char *err = NULL, *status = NULL;
    gc_job_t j;
    int kept = 0;

    memset(&r, 0, sizeof(r));
    r.id = id;
    r.name = "S";
    r.body = body;
    r.actor = "alice";
    r.created_at = T0;
    ck_assert_msg(
        gc_store_strategy_add(st, pool, &r, audit(GC_AUDIT_STRATEGY_CREATE, id), NULL, NULL, &err)
            == APR_SUCCESS,
        "add: %s", err);
    if (!active) {
        return;
    }
    memset(&j, 0, sizeof(j));
    j.id = apr_pstrcat(pool, "job-", id, NULL);
    j.kind = "strategy_activate";
    j.target = id;
    j.actor = "alice";
    j.payload = "{}";
    j.created_at = T0;
    j.next_run_at = T0;
    j.deadline_at = T0 + SEC(600);
    ck_assert_msg(gc_store_strategy_activate(
                      st, pool, id, &j, audit(GC_AUDIT_STRATEGY_ACTIVATE, id), &oc, &status, &err)
                      == APR_SUCCESS,
                  "activate: %s", err);
    ck_assert_int_eq(oc, GC_STRATEGY_CHANGED);
    ck_assert(
        gc_store_strategy_settle(st, pool, id, j.id, GC_STRATEGY_ACTIVE, NULL, T0, &kept, &err)
        == APR_SUCCESS);
    ck_assert_int_eq(kept, 1);
}

static gc_strategy_rec_t get(const char *id)
{
    gc_strategy_rec_t r;
    const char *err = NULL;
    int found = 0;

    ck_assert(gc_store_strategy_get(st, pool, id, &r, &found, &err) == APR_SUCCESS);
    ck_assert_msg(found, "%s not found", id);
    return r;
}

static void set_live(const char *id, const char *live, apr_time_t at)
{
    const char *err = NULL;

    ck_assert_msg(gc_store_strategy_set_live(st, pool, id, live, at, &err) == APR_SUCCESS,
                  "set_live: %s", err);
}

static gc_route_shm_t *block(void)
{
    return gc_route_shm_init(apr_pcalloc(pool, gc_route_shm_size()));
}

/* ---------------------------------------------------------------- gc_route_load */

START_TEST(load_publishes_the_active_strategies)
{
    gc_route_shm_t *b = block();
    gc_route_load_report_t rep;
    gc_route_decision_t d;
    const char *err = NULL;

    add("strat-a", body_of("q-1 q-2", 1), 1);
    add("strat-b", body_of("q-3 2:q-4", 2), 1);
    add("strat-draft", body_of("q-5", 1), 0);
    /* strat-a: q-1 full, q-2 has room; strat-b never observed. */
    set_live("strat-a",
             "{\"targets\":[{\"queue_id\":\"q-1\",\"interacting\":10},"
             "{\"queue_id\":\"q-2\",\"interacting\":4}]}",
             T0 + SEC(3));

    ck_assert(gc_route_shm_claim(b, T0 + SEC(4), GC_ROUTE_REFRESH));
    ck_assert_msg(gc_route_load(b, st, pool, T0 + SEC(4), &rep, &err) == APR_SUCCESS, "load: %s",
                  err);
    ck_assert_int_eq(rep.active, 2);
    ck_assert_int_eq(rep.routed, 2);
    ck_assert_int_eq(rep.unreadable, 0);
    ck_assert_int_eq(rep.left_out, 0);
    ck_assert_uint_eq(rep.generation, 1);

    ck_assert_int_eq(gc_route_shm_decide(b, "strat-a", 0.99, T0 + SEC(5), &d), GC_ROUTE_OK);
    ck_assert_str_eq(d.route.queue_id, "q-2");
    ck_assert_str_eq(d.route.reason, "weighted");
    ck_assert_int_eq(d.observed_at, T0 + SEC(3));
    ck_assert_int_eq(d.route.age, SEC(2));
    ck_assert_int_eq(d.route.stale, 0);
    /* Never observed: nothing has spare capacity as far as gcmon knows, and
     * the view is of no known time. */
    ck_assert_int_eq(gc_route_shm_decide(b, "strat-b", 0.5, T0 + SEC(5), &d), GC_ROUTE_OK);
    ck_assert_str_eq(d.route.queue_id, "q-fb");
    ck_assert_str_eq(d.route.reason, "fallback");
    ck_assert_int_eq(d.route.stale, 1);
    ck_assert_int_eq(d.observed_at, 0);
    ck_assert_int_eq(gc_route_shm_decide(b, "strat-draft", 0.5, T0, &d), GC_ROUTE_UNKNOWN);
}
END_TEST

START_TEST(load_follows_the_database)
{
    gc_route_shm_t *b = block();
    gc_route_load_report_t rep;
    gc_route_decision_t d;
    gc_strategy_change_e oc;
    const char *err = NULL;

    add("strat-a", body_of("q-1", 1), 1);
    add("strat-b", body_of("q-2", 1), 1);
    set_live("strat-b", "{\"targets\":[{\"queue_id\":\"q-2\",\"interacting\":1}]}", T0);
    ck_assert(gc_route_shm_claim(b, T0, GC_ROUTE_REFRESH));
    ck_assert(gc_route_load(b, st, pool, T0, &rep, &err) == APR_SUCCESS);
    ck_assert_int_eq(gc_route_shm_decide(b, "strat-b", 0.5, T0, &d), GC_ROUTE_OK);
    ck_assert_str_eq(d.route.queue_id, "q-2");

    /* New weights (a rebalance) and a saturated queue come through; a strategy
     * that is no longer active disappears (here: its row gone). */
    ck_assert(gc_store_strategy_reweigh(st, pool, "strat-b", 0, body_of("q-2", 0.5), T0 + SEC(1),
                                        audit(GC_AUDIT_STRATEGY_REBALANCE, "strat-b"), NULL, NULL,
                                        &oc, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(oc, GC_STRATEGY_CHANGED);
    set_live("strat-b", "{\"targets\":[{\"queue_id\":\"q-2\",\"interacting\":12}]}", T0 + SEC(1));
    sql_exec("DELETE FROM gcmon_strategy WHERE strategy_id = 'strat-a'");
    ck_assert(!gc_route_shm_claim(b, T0 + SEC(1), GC_ROUTE_REFRESH));
    ck_assert(gc_route_shm_claim(b, T0 + SEC(2), GC_ROUTE_REFRESH));
    ck_assert(gc_route_load(b, st, pool, T0 + SEC(2), &rep, &err) == APR_SUCCESS);
    ck_assert_int_eq(rep.routed, 1);
    ck_assert_uint_eq(rep.generation, 2);
    ck_assert_int_eq(gc_route_shm_decide(b, "strat-a", 0.5, T0, &d), GC_ROUTE_UNKNOWN);
    ck_assert_int_eq(gc_route_shm_decide(b, "strat-b", 0.5, T0 + SEC(2), &d), GC_ROUTE_OK);
    ck_assert_str_eq(d.route.reason, "fallback");
    ck_assert_uint_eq(d.route.generation, 2);
}
END_TEST

START_TEST(load_skips_unreadable_bodies)
{
    gc_route_shm_t *b = block();
    gc_route_load_report_t rep;
    gc_route_decision_t d;
    const char *err = NULL;

    add("strat-a", body_of("q-1", 1), 1);
    add("strat-bad", "{\"name\":\"S\",\"targets\":[]}", 1);
    add("strat-junk", "not json", 1);
    ck_assert(gc_route_shm_claim(b, T0, GC_ROUTE_REFRESH));
    ck_assert(gc_route_load(b, st, pool, T0, &rep, &err) == APR_SUCCESS);
    ck_assert_int_eq(rep.active, 3);
    ck_assert_int_eq(rep.routed, 1);
    ck_assert_int_eq(rep.unreadable, 2);
    ck_assert_str_eq(rep.unreadable_id, "strat-bad");
    ck_assert_int_eq(gc_route_shm_decide(b, "strat-a", 0.5, T0, &d), GC_ROUTE_OK);
    ck_assert_int_eq(gc_route_shm_decide(b, "strat-bad", 0.5, T0, &d), GC_ROUTE_UNKNOWN);
}
END_TEST

/* More active strategies than a block holds: the first 64 (by id) routed,
 * the rest counted as left out (GCM2127). */
START_TEST(load_more_than_the_block_holds)
{
    gc_route_shm_t *b = block();
    gc_route_load_report_t rep;
    gc_route_decision_t d;
    const char *err = NULL;
    int i;

    for (i = 0; i < GC_ROUTE_SHM_SLOTS + 6; i++) {
        add(apr_psprintf(pool, "strat-%03d", i), body_of("q-1", 1), 1);
    }
    ck_assert(gc_route_shm_claim(b, T0, GC_ROUTE_REFRESH));
    ck_assert(gc_route_load(b, st, pool, T0, &rep, &err) == APR_SUCCESS);
    ck_assert_int_eq(rep.active, GC_ROUTE_SHM_SLOTS + 6);
    ck_assert_int_eq(rep.routed, GC_ROUTE_SHM_SLOTS);
    ck_assert_int_eq(rep.left_out, 6);
    ck_assert_int_eq(gc_route_shm_decide(b, "strat-063", 0.5, T0, &d), GC_ROUTE_OK);
    ck_assert_int_eq(gc_route_shm_decide(b, "strat-064", 0.5, T0, &d), GC_ROUTE_UNKNOWN);
}
END_TEST

/* A database error publishes nothing (the caller keeps its claim to
 * release): the block keeps what it had. */
START_TEST(load_database_error_changes_nothing)
{
    gc_route_shm_t *b = block();
    gc_route_load_report_t rep;
    gc_route_decision_t d;
    const char *err = NULL;

    add("strat-a", body_of("q-1", 1), 1);
    ck_assert(gc_route_shm_claim(b, T0, GC_ROUTE_REFRESH));
    ck_assert(gc_route_load(b, st, pool, T0, &rep, &err) == APR_SUCCESS);
    sql_exec("DROP TABLE gcmon_strategy");
    ck_assert(gc_route_shm_claim(b, T0 + SEC(2), GC_ROUTE_REFRESH));
    ck_assert(gc_route_load(b, st, pool, T0 + SEC(2), &rep, &err) != APR_SUCCESS);
    ck_assert_ptr_nonnull(err);
    gc_route_shm_release(b);
    ck_assert_int_eq(gc_route_shm_decide(b, "strat-a", 0.5, T0, &d), GC_ROUTE_OK);
}
END_TEST

/* ---------------------------------------------------------------- observations */

typedef struct {
    int calls;
    int fail; /* the nth call (1-based) fails; 0 none */
    int max_n;
    char queues[2048];       /* the last call's ids, space separated */
    double interacting_of_q; /* every queue's figure... */
    const char *unobserved;  /* ...but this one, left unobserved */
} fake_t;

static apr_status_t fake_observe(void *baton, apr_pool_t *p, const char *const *ids, int n,
                                 gc_strategy_live_t *live, gc_error_t **err)
{
    fake_t *f = baton;
    int i;

    f->calls++;
    f->max_n = n > f->max_n ? n : f->max_n;
    f->queues[0] = '\0';
    for (i = 0; i < n; i++) {
        apr_cpystrn(f->queues + strlen(f->queues), ids[i], sizeof(f->queues) - strlen(f->queues));
        apr_cpystrn(f->queues + strlen(f->queues), i + 1 < n ? " " : "",
                    sizeof(f->queues) - strlen(f->queues));
    }
    if (f->calls == f->fail) {
        *err = apr_pcalloc(p, sizeof(**err));
        (*err)->kind = GC_ERR_SERVER;
        (*err)->status = 503;
        (*err)->message = "test: Genesys is down";
        return APR_EGENERAL;
    }
    for (i = 0; i < n; i++) {
        if (f->unobserved && !strcmp(ids[i], f->unobserved)) {
            continue;
        }
        live[i].observed = 1;
        live[i].interacting = f->interacting_of_q;
    }
    return APR_SUCCESS;
}

static gc_strategy_ops_t fake_ops(fake_t *f)
{
    gc_strategy_ops_t ops;

    memset(&ops, 0, sizeof(ops));
    ops.baton = f;
    ops.observe = fake_observe;
    return ops;
}

static apr_time_t fixed_now(void)
{
    return T0 + SEC(42);
}

START_TEST(observe_one_query_for_every_queue)
{
    fake_t f;
    gc_strategy_ops_t ops;
    gc_strategy_watch_report_t rep;
    gc_error_t *up = NULL;
    const char *err = NULL;
    gc_strategy_rec_t r;

    memset(&f, 0, sizeof(f));
    f.interacting_of_q = 3;
    f.unobserved = "q-3";
    ops = fake_ops(&f);
    /* Nothing active: no upstream call at all. */
    add("strat-draft", body_of("q-9", 1), 0);
    ck_assert(gc_strategy_watch_observe(st, pool, &ops, fixed_now, NULL, &rep, &err, &up)
              == APR_SUCCESS);
    ck_assert_int_eq(f.calls, 0);
    ck_assert_int_eq(rep.strategies, 0);

    /* Two strategies sharing q-2: one query over the three distinct queues. */
    add("strat-a", body_of("q-1 q-2", 1), 1);
    add("strat-b", body_of("q-2 q-3", 1), 1);
    ck_assert_msg(gc_strategy_watch_observe(st, pool, &ops, fixed_now, NULL, &rep, &err, &up)
                      == APR_SUCCESS,
                  "observe: %s", err);
    ck_assert_int_eq(f.calls, 1);
    ck_assert_str_eq(f.queues, "q-1 q-2 q-3");
    ck_assert_int_eq(rep.strategies, 2);
    ck_assert_int_eq(rep.queues, 3);
    ck_assert_int_eq(rep.queries, 1);
    ck_assert_int_eq(rep.stored, 2);
    r = get("strat-b");
    ck_assert_int_eq(r.observed_at, T0 + SEC(42));
    ck_assert_ptr_nonnull(strstr(r.live, "\"q-2\""));
    ck_assert_ptr_nonnull(strstr(r.live, "\"interacting\":null")); /* q-3 */
    r = get("strat-a");
    ck_assert_ptr_null(strstr(r.live, "null"));
    r = get("strat-draft");
    ck_assert_ptr_null(r.live);
}
END_TEST

START_TEST(observe_chunks_and_is_all_or_nothing)
{
    fake_t f;
    gc_strategy_ops_t ops;
    gc_strategy_watch_report_t rep;
    gc_error_t *up = NULL;
    const char *err = NULL;
    char *qs[3] = { "", "", "" };
    int i, k;

    /* 3 strategies of 40 distinct queues: 120 queues, two queries. */
    for (k = 0; k < 3; k++) {
        for (i = 0; i < 40; i++) {
            qs[k] = apr_psprintf(pool, "%s%sq-%d", qs[k], i ? " " : "", k * 40 + i);
        }
        add(apr_psprintf(pool, "strat-%d", k), body_of(qs[k], 1), 1);
    }
    memset(&f, 0, sizeof(f));
    ops = fake_ops(&f);
    ck_assert(gc_strategy_watch_observe(st, pool, &ops, fixed_now, NULL, &rep, &err, &up)
              == APR_SUCCESS);
    ck_assert_int_eq(f.calls, 2);
    ck_assert_int_eq(f.max_n, GC_STRATEGY_OBSERVE_CHUNK);
    ck_assert_int_eq(rep.queues, 120);
    ck_assert_int_eq(rep.stored, 3);

    /* The second query fails: nothing written in this pass. */
    memset(&f, 0, sizeof(f));
    f.fail = 2;
    ops = fake_ops(&f);
    ck_assert(gc_strategy_watch_observe(st, pool, &ops, NULL, NULL, &rep, &err, &up)
              != APR_SUCCESS);
    ck_assert_ptr_nonnull(up);
    ck_assert_str_eq(up->message, "test: Genesys is down");
    ck_assert_ptr_null(err);
    ck_assert_int_eq(rep.stored, 0);
    ck_assert_int_eq(get("strat-0").observed_at, T0 + SEC(42));
}
END_TEST

START_TEST(rebalance_schedule)
{
    gc_strategy_rec_t r;

    memset(&r, 0, sizeof(r));
    ck_assert(!gc_strategy_watch_rebalance_due(&r, 0, T0));
    ck_assert(gc_strategy_watch_rebalance_due(&r, SEC(60), T0));
    r.activated_at = T0;
    ck_assert(!gc_strategy_watch_rebalance_due(&r, SEC(60), T0 + SEC(59)));
    ck_assert(gc_strategy_watch_rebalance_due(&r, SEC(60), T0 + SEC(60)));
    r.rebalanced_at = T0 + SEC(50);
    ck_assert(!gc_strategy_watch_rebalance_due(&r, SEC(60), T0 + SEC(100)));
    ck_assert(gc_strategy_watch_rebalance_due(&r, SEC(60), T0 + SEC(110)));
    ck_assert(!gc_strategy_watch_rebalance_due(&r, 0, T0 + SEC(110)));
}
END_TEST

/* ---------------------------------------------------------------- the thread */

typedef struct {
    int fail_opens;
    _Atomic int opens, closes;
} db_baton_t;

static apr_status_t test_db_open(void *baton, apr_pool_t *p, gc_store_t **store, void **handle,
                                 const char **err)
{
    db_baton_t *b = baton;

    if (atomic_fetch_add(&b->opens, 1) < b->fail_opens) {
        *err = "test: database unavailable";
        return APR_EGENERAL;
    }
    if (gc_store_open(p, "sqlite3", db_path, store, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    *handle = *store;
    return APR_SUCCESS;
}

static void test_db_close(void *baton, void *handle)
{
    db_baton_t *b = baton;

    atomic_fetch_add(&b->closes, 1);
    gc_store_close(handle);
}

typedef struct {
    _Atomic int calls;
    _Atomic int fail;
    const char *fail_id; /* fails for this strategy only */
} rebalancer_t;

/* The stored strategy's own rebalance, faked: new weights through the store
 * (rebalanced_at moves, so it is not due again). */
static apr_status_t fake_rebalance(void *baton, apr_pool_t *p, gc_store_t *s,
                                   const gc_strategy_rec_t *r, const char **err)
{
    rebalancer_t *rb = baton;
    gc_strategy_change_e oc;

    atomic_fetch_add(&rb->calls, 1);
    if (atomic_load(&rb->fail) || (rb->fail_id && !strcmp(r->id, rb->fail_id))) {
        *err = "test: rebalance failed";
        return APR_EGENERAL;
    }
    return gc_store_strategy_reweigh(s, p, r->id, r->revision, r->body, apr_time_now(), NULL, NULL,
                                     NULL, &oc, err);
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static int log_all(void *baton, int level)
{
    return level <= GC_LOG_DEBUG;
}

static void log_capture(void *baton, const char *file, int line, int level, apr_status_t rv,
                        const char *msg)
{
    size_t have, add = strlen(msg);

    pthread_mutex_lock(&log_mu);
    have = log_text ? strlen(log_text) : 0;
    log_text = realloc(log_text, have + add + 2);
    memcpy(log_text + have, msg, add);
    log_text[have + add] = '\n';
    log_text[have + add + 1] = '\0';
    pthread_mutex_unlock(&log_mu);
}

static int log_count(const char *needle)
{
    const char *at;
    int n = 0;

    pthread_mutex_lock(&log_mu);
    for (at = log_text; at && (at = strstr(at, needle)); at += strlen(needle)) {
        n++;
    }
    pthread_mutex_unlock(&log_mu);
    return n;
}

static void wait_for(int (*cond)(void *), void *arg, apr_interval_time_t patience)
{
    apr_time_t end = apr_time_now() + patience;

    while (!cond(arg) && apr_time_now() < end) {
        apr_sleep(5000);
    }
    ck_assert_msg(cond(arg), "condition not met in time");
}

static int observed(void *id)
{
    return get(id).observed_at > 0;
}

static int rebalanced(void *id)
{
    return get(id).rebalanced_at > 0;
}

static int passes_at_least_3(void *w)
{
    return gc_strategy_watch_passes(w) >= 3;
}

START_TEST(thread_observes_and_rebalances)
{
    fake_t f;
    gc_strategy_ops_t ops;
    rebalancer_t rb;
    db_baton_t db;
    gc_strategy_watch_env_t env;
    gc_strategy_watch_t *w = NULL;
    apr_time_t t;

    gc_log_set(log_all, log_capture, NULL);
    add("strat-a", body_of("q-1", 1), 1);
    add("strat-b", body_of("q-2", 1), 1);
    /* strat-b was rebalanced just now: not due for the next hour. */
    sql_exec("UPDATE gcmon_strategy SET rebalanced_at = "
             "(CAST(strftime('%s','now') AS INTEGER) * 1000) WHERE strategy_id = 'strat-b'");
    memset(&f, 0, sizeof(f));
    f.interacting_of_q = 2;
    ops = fake_ops(&f);
    memset(&rb, 0, sizeof(rb));
    memset(&db, 0, sizeof(db));
    db.fail_opens = 2; /* an outage first: logged once, then it works */
    memset(&env, 0, sizeof(env));
    env.ops = &ops;
    env.observe_every = apr_time_from_msec(30);
    env.rebalance_every = SEC(3600);
    env.rebalance = fake_rebalance;
    env.rebalance_baton = &rb;
    env.db_open = test_db_open;
    env.db_close = test_db_close;
    env.db_baton = &db;
    env.db_retry_min = apr_time_from_msec(10);
    env.db_retry_max = apr_time_from_msec(20);
    ck_assert_int_eq(gc_strategy_watch_start(&w, pool, &env), APR_SUCCESS);
    wait_for(observed, "strat-a", SEC(10));
    wait_for(rebalanced, "strat-a", SEC(5));
    wait_for(passes_at_least_3, w, SEC(5));
    /* strat-a (activated at T0, an hour and more ago) was rebalanced once;
     * strat-b not; both observed every pass. */
    ck_assert_int_eq(atomic_load(&rb.calls), 1);
    ck_assert_int_gt(f.calls, 2);
    ck_assert_int_eq(log_count("GCM2130"), 1);
    ck_assert_int_eq(log_count("GCM2131"), 1);
    t = apr_time_now();
    gc_strategy_watch_stop(w);
    ck_assert_int_lt(apr_time_now() - t, SEC(1));
    ck_assert_int_eq(atomic_load(&db.opens) - 2, atomic_load(&db.closes));
}
END_TEST

static int rebalance_failed(void *rb)
{
    return atomic_load(&((rebalancer_t *)rb)->calls) >= 1 && log_count("GCM2133") >= 1;
}

START_TEST(thread_logs_failures_once)
{
    fake_t f;
    gc_strategy_ops_t ops;
    rebalancer_t rb;
    db_baton_t db;
    gc_strategy_watch_env_t env;
    gc_strategy_watch_t *w = NULL;

    gc_log_set(log_all, log_capture, NULL);
    add("strat-a", body_of("q-1", 1), 1);
    memset(&f, 0, sizeof(f));
    f.fail = 1; /* the first pass's query fails */
    ops = fake_ops(&f);
    memset(&rb, 0, sizeof(rb));
    atomic_store(&rb.fail, 1);
    memset(&db, 0, sizeof(db));
    memset(&env, 0, sizeof(env));
    env.ops = &ops;
    env.observe_every = apr_time_from_msec(20);
    env.rebalance_every = SEC(1);
    env.rebalance = fake_rebalance;
    env.rebalance_baton = &rb;
    env.db_open = test_db_open;
    env.db_close = test_db_close;
    env.db_baton = &db;
    env.db_retry_min = apr_time_from_msec(10);
    env.db_retry_max = apr_time_from_msec(20);
    ck_assert_int_eq(gc_strategy_watch_start(&w, pool, &env), APR_SUCCESS);
    wait_for(observed, "strat-a", SEC(10));
    wait_for(rebalance_failed, &rb, SEC(5));
    apr_sleep(apr_time_from_msec(200));
    gc_strategy_watch_stop(w);
    ck_assert_int_eq(log_count("GCM2132"), 1); /* observations failed, then */
    ck_assert_int_eq(log_count("GCM2135"), 1); /* ...worked again */
    /* A failed rebalance waits min(interval, 60 s) before the next try. */
    ck_assert_int_eq(atomic_load(&rb.calls), 1);
    ck_assert_int_eq(log_count("GCM2133"), 1);
    ck_assert_int_eq(atomic_load(&db.opens), atomic_load(&db.closes));
}
END_TEST

static int fake_calls_2(void *f)
{
    return ((fake_t *)f)->calls >= 2;
}

/* A strategy just activated is observed at the thread's next look (not at
 * the next observation, 5 s away), once; the others wait for their time. */
START_TEST(thread_observes_a_new_strategy_at_once)
{
    fake_t f;
    gc_strategy_ops_t ops;
    db_baton_t db;
    gc_strategy_watch_env_t env;
    gc_strategy_watch_t *w = NULL;

    add("strat-a", body_of("q-1", 1), 1);
    memset(&f, 0, sizeof(f));
    ops = fake_ops(&f);
    memset(&db, 0, sizeof(db));
    memset(&env, 0, sizeof(env));
    env.ops = &ops;
    env.observe_every = SEC(3600);
    env.look_every = apr_time_from_msec(20);
    env.db_open = test_db_open;
    env.db_close = test_db_close;
    env.db_baton = &db;
    ck_assert_int_eq(gc_strategy_watch_start(&w, pool, &env), APR_SUCCESS);
    wait_for(observed, "strat-a", SEC(10));
    add("strat-b", body_of("q-2", 1), 1);
    wait_for(observed, "strat-b", SEC(2));
    wait_for(fake_calls_2, &f, SEC(2));
    apr_sleep(apr_time_from_msec(200));
    gc_strategy_watch_stop(w);
    ck_assert_int_eq(f.calls, 2);
    ck_assert_int_eq(atomic_load(&db.opens), atomic_load(&db.closes));
}
END_TEST

/* One strategy whose scheduled rebalance keeps failing waits for its retry;
 * the others are rebalanced meanwhile. */
START_TEST(thread_rebalance_failure_blocks_no_other)
{
    fake_t f;
    gc_strategy_ops_t ops;
    rebalancer_t rb;
    db_baton_t db;
    gc_strategy_watch_env_t env;
    gc_strategy_watch_t *w = NULL;

    gc_log_set(log_all, log_capture, NULL);
    add("strat-a", body_of("q-1", 1), 1); /* first in the listing (by id) */
    add("strat-b", body_of("q-2", 1), 1);
    memset(&f, 0, sizeof(f));
    ops = fake_ops(&f);
    memset(&rb, 0, sizeof(rb));
    rb.fail_id = "strat-a";
    memset(&db, 0, sizeof(db));
    memset(&env, 0, sizeof(env));
    env.ops = &ops;
    env.observe_every = apr_time_from_msec(20);
    env.look_every = apr_time_from_msec(20);
    env.rebalance_every = SEC(2);
    env.rebalance = fake_rebalance;
    env.rebalance_baton = &rb;
    env.db_open = test_db_open;
    env.db_close = test_db_close;
    env.db_baton = &db;
    ck_assert_int_eq(gc_strategy_watch_start(&w, pool, &env), APR_SUCCESS);
    wait_for(rebalanced, "strat-b", SEC(10));
    apr_sleep(apr_time_from_msec(300));
    gc_strategy_watch_stop(w);
    ck_assert_int_eq(get("strat-a").rebalanced_at, 0);
    /* strat-a tried once (then waits 2 s), strat-b done once. */
    ck_assert_int_eq(atomic_load(&rb.calls), 2);
    ck_assert_int_eq(log_count("GCM2133"), 1);
    ck_assert_ptr_nonnull(strstr(log_text, "strat-a failed"));
}
END_TEST

/* ---------------------------------------------------------------- every child */

static int found_in(gc_route_shm_t *b, const char *id)
{
    gc_route_table_t t;
    return gc_route_shm_lookup(b, id, &t) == GC_ROUTE_OK;
}

/* The monitor threads of two children (here: two monitors of one process,
 * one of them the background holder, the other a standby) keep one block
 * fresh: a strategy activated in the database appears within the bound, and
 * the block is refreshed about once per bound, not once per monitor. */
START_TEST(monitors_refresh_the_block)
{
    gc_route_shm_t *b = block();
    gc_monitor_conf_t conf;
    gc_monitor_env_t env;
    gc_monitor_t *m[2];
    db_baton_t db;
    gc_route_shm_info_t i1, i2;
    apr_time_t t0;
    int i;

    add("strat-a", body_of("q-1", 1), 1);
    memset(&conf, 0, sizeof(conf));
    conf.queues = apr_array_make(pool, 1, sizeof(const char *));
    conf.users = apr_array_make(pool, 1, sizeof(const char *));
    conf.webhooks.status_url = "http://127.0.0.1:9/never-called";
    gc_monitor_conf_defaults(&conf);
    ck_assert_int_eq(gc_monitor_mode(&conf), GC_MONITOR_BACKGROUND);
    memset(&db, 0, sizeof(db));
    memset(&env, 0, sizeof(env));
    env.conf = &conf;
    env.host = "unit-host";
    env.baton = &db;
    env.db_open = test_db_open;
    env.db_close = test_db_close;
    env.routes = b;
    for (i = 0; i < 2; i++) {
        apr_pool_t *mp;
        ck_assert_int_eq(apr_pool_create(&mp, pool), APR_SUCCESS);
        m[i] = gc_monitor_create(mp, &env);
        ck_assert_ptr_nonnull(m[i]);
        ck_assert_int_eq(gc_monitor_start(m[i], NULL), APR_SUCCESS);
    }
    t0 = apr_time_now();
    while (!found_in(b, "strat-a") && apr_time_now() - t0 < SEC(5)) {
        apr_sleep(10000);
    }
    ck_assert(found_in(b, "strat-a"));
    ck_assert_int_lt(apr_time_now() - t0, GC_ROUTE_REFRESH + SEC(1));

    add("strat-b", body_of("q-2", 1), 1);
    t0 = apr_time_now();
    gc_route_shm_info(b, &i1);
    while (!found_in(b, "strat-b") && apr_time_now() - t0 < SEC(5)) {
        apr_sleep(10000);
    }
    ck_assert(found_in(b, "strat-b"));
    ck_assert_int_lt(apr_time_now() - t0, GC_ROUTE_REFRESH + SEC(1));
    apr_sleep(SEC(3));
    gc_route_shm_info(b, &i2);
    /* ~2 refreshes in ~3.5 s from two monitors polling every 250 ms. */
    ck_assert_uint_ge(i2.generation - i1.generation, 1);
    ck_assert_uint_le(i2.generation - i1.generation, 3);
    ck_assert_int_eq(i2.tables, 2);
    for (i = 0; i < 2; i++) {
        gc_monitor_stop(m[i]);
    }
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(gc_monitor_join(m[i], SEC(5)), APR_SUCCESS);
    }
}
END_TEST

Suite *strategy_watch_suite(void)
{
    Suite *s = suite_create("strategy_watch");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, load_publishes_the_active_strategies);
    tcase_add_test(tc, load_follows_the_database);
    tcase_add_test(tc, load_skips_unreadable_bodies);
    tcase_add_test(tc, load_database_error_changes_nothing);
    tcase_add_test(tc, load_more_than_the_block_holds);
    tcase_add_test(tc, observe_one_query_for_every_queue);
    tcase_add_test(tc, observe_chunks_and_is_all_or_nothing);
    tcase_add_test(tc, rebalance_schedule);
    tcase_add_test(tc, thread_observes_and_rebalances);
    tcase_add_test(tc, thread_logs_failures_once);
    tcase_add_test(tc, thread_observes_a_new_strategy_at_once);
    tcase_add_test(tc, thread_rebalance_failure_blocks_no_other);
    tcase_add_test(tc, monitors_refresh_the_block);
    suite_add_tcase(s, tc);
    return s;
}
