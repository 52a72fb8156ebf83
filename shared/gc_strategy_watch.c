/* The stream holder's strategy thread: observations for the route tables and
 * the scheduled rebalance (see the header). */
#include <stdatomic.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <jansson.h>

#include "gc_log.h"
#include "gc_result.h"
#include "gc_strategy_watch.h"
#include "gc_worker.h"

#define DB_RETRY_MIN apr_time_from_sec(2)
#define DB_RETRY_MAX apr_time_from_sec(60)
#define LOG_EVERY apr_time_from_sec(60)

/* ---------------------------------------------------------------- one pass */

typedef struct {
    const gc_strategy_rec_t *rec;
    gc_strategy_t *s;
    int *slot; /* per target: its queue's index in the pass's queue list */
} watched_t;

static gc_strategy_t *read_body(apr_pool_t *p, const char *text)
{
    json_t *body = text ? json_loads(text, 0, NULL) : NULL;
    gc_strategy_t *s = NULL;
    int bad = !body || gc_strategy_validate(p, gc_result_make(p), body, &s) != 0 || !s;

    json_decref(body);
    return bad ? NULL : s;
}

apr_status_t gc_strategy_watch_observe(struct gc_store *s, apr_pool_t *p,
                                       const gc_strategy_ops_t *ops, apr_time_t (*now)(void),
                                       const apr_array_header_t *active,
                                       gc_strategy_watch_report_t *rep, const char **db_err,
                                       gc_error_t **up_err)
{
    apr_array_header_t *queues;
    watched_t *w;
    apr_hash_t *index = apr_hash_make(p);
    gc_strategy_live_t *live;
    apr_time_t observed_at;
    apr_status_t rv;
    int i, j, n = 0;

    memset(rep, 0, sizeof(*rep));
    *db_err = NULL;
    *up_err = NULL;
    if (!active) {
        apr_array_header_t *read = NULL;
        rv = gc_store_strategy_active(s, p, &read, db_err);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        active = read;
    }
    /* The strategies and the distinct queues of their targets. */
    w = apr_pcalloc(p, sizeof(*w) * (apr_size_t)(active->nelts > 0 ? active->nelts : 1));
    queues = apr_array_make(p, 16, sizeof(const char *));
    for (i = 0; i < active->nelts; i++) {
        const gc_strategy_rec_t *r = &APR_ARRAY_IDX(active, i, gc_strategy_rec_t);
        gc_strategy_t *st = r->id ? read_body(p, r->body) : NULL;
        if (!st) {
            continue; /* not routed either (gc_route_load says so) */
        }
        w[n].rec = r;
        w[n].s = st;
        w[n].slot =
            apr_palloc(p, sizeof(int) * (apr_size_t)(st->n_targets > 0 ? st->n_targets : 1));
        for (j = 0; j < st->n_targets; j++) {
            const char *q = st->targets[j].queue_id;
            int *at = apr_hash_get(index, q, APR_HASH_KEY_STRING);
            if (!at) {
                at = apr_palloc(p, sizeof(*at));
                *at = queues->nelts;
                APR_ARRAY_PUSH(queues, const char *) = q;
                apr_hash_set(index, q, APR_HASH_KEY_STRING, at);
            }
            w[n].slot[j] = *at;
        }
        n++;
    }
    rep->strategies = n;
    rep->queues = queues->nelts;
    if (queues->nelts == 0) {
        return APR_SUCCESS; /* nothing to observe: no upstream call */
    }
    /* Their observations, GC_STRATEGY_OBSERVE_CHUNK queues a query. */
    live = apr_pcalloc(p, sizeof(*live) * (apr_size_t)queues->nelts);
    for (i = 0; i < queues->nelts; i += GC_STRATEGY_OBSERVE_CHUNK) {
        int k = queues->nelts - i < GC_STRATEGY_OBSERVE_CHUNK ? queues->nelts - i
                                                              : GC_STRATEGY_OBSERVE_CHUNK;
        rep->queries++;
        rv =
            ops->observe(ops->baton, p, (const char *const *)queues->elts + i, k, live + i, up_err);
        if (rv != APR_SUCCESS) {
            if (!*up_err) {
                *up_err = apr_pcalloc(p, sizeof(**up_err));
                (*up_err)->message = "the observations query failed";
            }
            return rv;
        }
    }
    observed_at = now ? now() : apr_time_now();
    /* Each strategy's figures, index-aligned with its targets. */
    for (i = 0; i < n; i++) {
        gc_strategy_live_t mine[GC_STRATEGY_MAX_TARGETS];
        const char *text;
        memset(mine, 0, sizeof(mine));
        for (j = 0; j < w[i].s->n_targets && j < GC_STRATEGY_MAX_TARGETS; j++) {
            mine[j] = live[w[i].slot[j]];
        }
        text = gc_strategy_live_json(p, w[i].s, mine);
        rv = gc_store_strategy_set_live(s, p, w[i].rec->id, text, observed_at, db_err);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        rep->stored++;
    }
    return APR_SUCCESS;
}

int gc_strategy_watch_unobserved(const apr_array_header_t *active)
{
    int i;

    for (i = 0; active && i < active->nelts; i++) {
        const gc_strategy_rec_t *r = &APR_ARRAY_IDX(active, i, gc_strategy_rec_t);
        if (r->observed_at <= 0 || !r->live) {
            return 1;
        }
    }
    return 0;
}

int gc_strategy_watch_rebalance_due(const gc_strategy_rec_t *r, apr_interval_time_t every,
                                    apr_time_t now)
{
    apr_time_t last = r->rebalanced_at > 0 ? r->rebalanced_at : r->activated_at;

    if (every <= 0) {
        return 0;
    }
    /* Never activated nor rebalanced (a row from before activated_at was
     * kept): due now. A clock set back: due once it passes again. */
    return last <= 0 || now - last >= every;
}

/* ---------------------------------------------------------------- the thread */

struct gc_strategy_watch {
    gc_worker_t *worker;
    gc_strategy_watch_env_t env;
    apr_pool_t *iter;
    _Atomic int passes;
    int up_failures;         /* observation passes failed in a row */
    apr_time_t up_logged_at; /* the last GCM2132 */
    apr_pool_t *retry_pool;  /* the strategies whose scheduled rebalance failed: */
    apr_hash_t *retry_at;    /* id → apr_time_t of the next try */
};

/* The database failed: logged at the first failure, then at most once a minute. */
static void db_failed(gc_strategy_watch_t *sw, const char *what, const char *err)
{
    if (gc_worker_db_failed(sw->worker)) {
        gc_log(GC_LOG_MARK, GC_LOG_ERR, 0,
               GCMON_LOGNO(2130) "strategies: cannot %s the database: %s (attempt %d; the "
                                 "route tables keep their last observations, which turn stale "
                                 "after %d s)",
               what, err ? err : "unknown error", gc_worker_db_failures(sw->worker),
               (int)apr_time_sec(GC_STRATEGY_MAX_AGE));
    }
}

static void upstream_failed(gc_strategy_watch_t *sw, apr_time_t now, const gc_error_t *e)
{
    if (sw->up_failures++ == 0 || now - sw->up_logged_at >= LOG_EVERY) {
        sw->up_logged_at = now;
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2132) "strategies: cannot read the target queues' observations "
                                 "from Genesys Cloud: %s (%d pass(es) in a row; route "
                                 "decisions keep the last figures and say stale after %d s)",
               e && e->message ? e->message : "unknown error", sw->up_failures,
               (int)apr_time_sec(GC_STRATEGY_MAX_AGE));
    }
}

/* A strategy's scheduled rebalance failed: not again before now + retry. */
static void rebalance_later(gc_strategy_watch_t *sw, const char *id, apr_time_t at)
{
    apr_time_t *slot = apr_hash_get(sw->retry_at, id, APR_HASH_KEY_STRING);

    if (!slot) {
        if (apr_hash_count(sw->retry_at) >= GC_STORE_STRATEGY_MAX_ACTIVE) {
            apr_pool_clear(sw->retry_pool); /* ids long gone pile up no further */
            sw->retry_at = apr_hash_make(sw->retry_pool);
        }
        slot = apr_palloc(sw->retry_pool, sizeof(*slot));
        apr_hash_set(sw->retry_at, apr_pstrdup(sw->retry_pool, id), APR_HASH_KEY_STRING, slot);
    }
    *slot = at;
}

static void rebalance_due(gc_strategy_watch_t *sw, gc_store_t *st, const apr_array_header_t *rows,
                          apr_time_t now)
{
    apr_interval_time_t retry = sw->env.rebalance_every < GC_STRATEGY_REBALANCE_RETRY
                                    ? sw->env.rebalance_every
                                    : GC_STRATEGY_REBALANCE_RETRY;
    int i;

    if (sw->env.rebalance_every <= 0 || !sw->env.rebalance || !rows) {
        return;
    }
    for (i = 0; i < rows->nelts && !gc_worker_stopping(sw->worker); i++) {
        const gc_strategy_rec_t *r = &APR_ARRAY_IDX(rows, i, gc_strategy_rec_t);
        const apr_time_t *later = apr_hash_get(sw->retry_at, r->id, APR_HASH_KEY_STRING);
        const char *err = NULL;

        if (!gc_strategy_watch_rebalance_due(r, sw->env.rebalance_every, now)
            || (later && now < *later)) {
            continue;
        }
        if (sw->env.rebalance(sw->env.rebalance_baton, sw->iter, st, r, &err) == APR_SUCCESS) {
            if (later) {
                apr_hash_set(sw->retry_at, r->id, APR_HASH_KEY_STRING, NULL);
            }
            gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
                   GCMON_LOGNO(2134) "strategies: rebalanced %s on schedule", r->id);
            continue;
        }
        rebalance_later(sw, r->id, now + retry);
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2133) "strategies: the scheduled rebalance of %s failed: %s "
                                 "(tried again in %d s)",
               r->id, err ? err : "unknown error", (int)apr_time_sec(retry));
    }
}

static void watch_main(gc_worker_t *w, void *baton)
{
    gc_strategy_watch_t *sw = baton;
    apr_time_t next_observe = 0;

    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
           GCMON_LOGNO(2137) "strategies thread started: observations every %d ms, scheduled "
                             "rebalance every %" APR_INT64_T_FMT " s (0: off)",
           (int)apr_time_as_msec(sw->env.observe_every),
           (apr_int64_t)apr_time_sec(sw->env.rebalance_every));

    while (!gc_worker_stopping(w)) {
        apr_time_t now = apr_time_now(), wake;
        gc_strategy_watch_report_t rep;
        apr_array_header_t *rows = NULL;
        const char *err = NULL;
        gc_error_t *up_err = NULL;
        gc_store_t *st = NULL;
        apr_status_t rv;

        apr_pool_clear(sw->iter);
        rv = gc_worker_db(w, &st, &err);
        if (rv == APR_EAGAIN) {
            gc_worker_pause(w, gc_worker_db_retry_at(w));
            continue;
        }
        if (rv != APR_SUCCESS) {
            db_failed(sw, "open", err);
            gc_worker_pause(w, gc_worker_db_retry_at(w));
            continue;
        }
        if (gc_store_strategy_active(st, sw->iter, &rows, &err) != APR_SUCCESS) {
            db_failed(sw, "read the active strategies from", err);
            gc_worker_pause(w, gc_worker_db_retry_at(w));
            continue;
        }
        /* Every observe_every; sooner for a strategy never observed (just
         * activated), unless the last pass failed. */
        if (now >= next_observe || (sw->up_failures == 0 && gc_strategy_watch_unobserved(rows))) {
            next_observe = now + sw->env.observe_every;
            rv = gc_strategy_watch_observe(st, sw->iter, sw->env.ops, NULL, rows, &rep, &err,
                                           &up_err);
            atomic_fetch_add(&sw->passes, 1);
            if (rv != APR_SUCCESS && !up_err) {
                db_failed(sw, "write the observations to", err);
                gc_worker_pause(w, gc_worker_db_retry_at(w));
                continue;
            }
            if (up_err) {
                upstream_failed(sw, now, up_err);
            }
            else {
                if (sw->up_failures > 0) {
                    gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
                           GCMON_LOGNO(2135) "strategies: the observations are read again "
                                             "(after %d failed pass(es))",
                           sw->up_failures);
                }
                sw->up_failures = 0;
                gc_log(GC_LOG_MARK, GC_LOG_TRACE1, 0,
                       "strategies: %d active, %d queues observed in %d query(ies)", rep.strategies,
                       rep.queues, rep.queries);
            }
        }
        if (gc_worker_db_ok(w)) {
            gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
                   GCMON_LOGNO(2131) "strategies: database available again");
        }
        rebalance_due(sw, st, rows, apr_time_now());
        wake = now + sw->env.look_every;
        gc_worker_wait(w, wake < next_observe ? wake : next_observe);
    }
}

apr_status_t gc_strategy_watch_start(gc_strategy_watch_t **out, apr_pool_t *p,
                                     const gc_strategy_watch_env_t *env)
{
    gc_worker_db_conf_t db;
    gc_strategy_watch_t *sw;
    gc_worker_t *w;
    apr_status_t rv;

    *out = NULL;
    if (!env || !env->ops || !env->ops->observe || !env->db_open) {
        return APR_EINVAL;
    }
    if ((rv = gc_worker_create(&w, p, "strategies")) != APR_SUCCESS) {
        return rv;
    }
    sw = apr_pcalloc(gc_worker_pool(w), sizeof(*sw));
    sw->worker = w;
    sw->env = *env;
    if (sw->env.observe_every <= 0) {
        sw->env.observe_every = GC_ROUTE_OBSERVE;
    }
    if (sw->env.look_every <= 0) {
        sw->env.look_every = GC_STRATEGY_WATCH_LOOK;
    }
    atomic_init(&sw->passes, 0);
    apr_pool_create(&sw->iter, gc_worker_pool(w));
    apr_pool_create(&sw->retry_pool, gc_worker_pool(w));
    sw->retry_at = apr_hash_make(sw->retry_pool);
    memset(&db, 0, sizeof(db));
    db.open = env->db_open;
    db.close = env->db_close;
    db.baton = env->db_baton;
    db.retry_min = env->db_retry_min > 0 ? env->db_retry_min : DB_RETRY_MIN;
    db.retry_max = env->db_retry_max > 0 ? env->db_retry_max : DB_RETRY_MAX;
    gc_worker_use_db(w, &db);
    if ((rv = gc_worker_start(w, watch_main, sw, NULL)) != APR_SUCCESS) {
        gc_worker_destroy(w);
        return rv;
    }
    *out = sw;
    return APR_SUCCESS;
}

void gc_strategy_watch_stop(gc_strategy_watch_t *sw)
{
    if (sw) {
        gc_worker_stop(sw->worker);
        gc_worker_destroy(sw->worker);
    }
}

int gc_strategy_watch_passes(gc_strategy_watch_t *sw)
{
    return sw ? atomic_load(&sw->passes) : 0;
}
