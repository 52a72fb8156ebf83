/* The writer thread: group commit of agent events into the database.
 *
 * The monitor thread queues events (gc_writer_push); this thread takes what is
 * waiting — up to batch_max — and writes it in one transaction as soon as
 * anything waits, so a batch is committed within one transaction time of its
 * first event (well under 100 ms) and batches grow by themselves under load.
 * A failed batch is kept and retried with backoff on a fresh connection; the
 * queue is bounded (drop-oldest, counted and logged) so a long database outage
 * cannot exhaust memory. History older than GcmonRetention is pruned in small
 * chunks while the queue is idle. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "gc_monitor_int.h"

#define TAKE_WAIT (100 * 1000)                      /* 100 ms */
#define RETRY_MIN (100 * 1000)
#define RETRY_MAX apr_time_from_sec(5)
#define PRUNE_FIRST apr_time_from_sec(5)     /* after taking the lead, clear of the connect burst */
#define PRUNE_EVERY apr_time_from_sec(3600)
#define PRUNE_CHUNK 5000
#define DROP_LOG_EVERY apr_time_from_sec(10)
#define ERR_LOG_EVERY apr_time_from_sec(30)

struct gc_writer {
    apr_pool_t *pool;                   /* own allocator; used by the writer thread */
    gc_monitor_env_t env;
    gc_evq_t *q;
    apr_thread_t *thread;
    _Atomic int stop;
    _Atomic apr_time_t drain_until;
    gc_writer_commit_fn *on_commit;
    void *commit_baton;
    gc_alerter_t *alerter;              /* idle alerts, or NULL */

    /* writer thread only */
    gc_dbconn_t db;                     /* the writer's own connection */
    apr_time_t next_prune;
    int failures;
    apr_time_t err_logged_at;

    /* any thread (push) */
    apr_thread_mutex_t *drop_mutex;
    long dropped_unlogged;
    apr_time_t drop_logged_at;
};

static void db_close(gc_writer_t *w)
{
    gc_dbconn_close(&w->db, w->env.db_close, w->env.baton);
}

static apr_status_t db_open(gc_writer_t *w, const char **err)
{
    return gc_dbconn_open(&w->db, w->pool, w->env.db_open, w->env.baton, err);
}

static int stopping(gc_writer_t *w)
{
    return atomic_load(&w->stop) != 0;
}

static int past_drain(gc_writer_t *w)
{
    return stopping(w) && apr_time_now() >= atomic_load(&w->drain_until);
}

/* Sleep up to d, waking early once the drain deadline has passed. */
static void nap(gc_writer_t *w, apr_interval_time_t d)
{
    apr_time_t until = apr_time_now() + d;

    while (!past_drain(w) && apr_time_now() < until) {
        apr_sleep(20 * 1000);
    }
}

static void note_error(gc_writer_t *w, const char *what, const char *err, int n)
{
    apr_time_t now = apr_time_now();
    char msg[GC_STATUS_ERR_MAX];

    apr_snprintf(msg, sizeof(msg), "database: %s: %s", what, err ? err : "unknown error");
    if (w->env.status) {
        gc_stream_status_error(w->env.status, now, msg);
    }
    if (w->failures == 1 || now - w->err_logged_at >= ERR_LOG_EVERY) {
        w->err_logged_at = now;
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2300) "cannot store %d agent event(s) (attempt %d), keeping "
               "them and retrying: %s", n, w->failures, msg);
    }
}

static void account(gc_writer_t *w, const gc_evrec_t *run, int n, const char *source,
                    const gc_store_batch_result_t *res, apr_time_t at)
{
    const gc_evrec_t *r;
    int i;

    if (!w->env.metrics) {
        return;
    }
    gc_metrics_add(w->env.metrics, GC_MET_EVENTS_STORED, source, NULL,
                   res->transitions + res->refreshed);
    if (strcmp(source, "stream") != 0) {
        return;
    }
    for (r = run, i = 0; r && i < n; r = r->next, i++) {
        if (r->ev.event_at > 0) {
            apr_time_t lag = at > r->ev.event_at ? at - r->ev.event_at : 0;
            gc_metrics_observe(w->env.metrics, GC_MET_EVENT_LAG, NULL, NULL,
                               (double)lag / (double)APR_USEC_PER_SEC);
        }
    }
}

/* Write one run of events of the same source; retry until stored or the
 * drain deadline passes. 1 when stored. */
static int write_run(gc_writer_t *w, apr_pool_t *p, gc_evrec_t *run, int n)
{
    gc_agent_event_t *evs = apr_palloc(p, sizeof(*evs) * (apr_size_t)n);
    gc_store_batch_result_t res;
    const gc_evrec_t *r;
    const char *err = NULL;
    int i;

    for (r = run, i = 0; i < n; r = r->next, i++) {
        evs[i] = r->ev;
    }
    for (;;) {
        apr_time_t now = apr_time_now();
        apr_status_t rv = db_open(w, &err);
        if (rv == APR_SUCCESS) {
            memset(&res, 0, sizeof(res));
            rv = gc_store_write_batch(w->db.store, p, evs, n, run->source, now, &res, &err);
            if (rv == APR_SUCCESS) {
                now = apr_time_now();
                account(w, run, n, run->source, &res, now);
                gc_alerter_committed(w->alerter, run, n);
                if (w->on_commit) {
                    w->on_commit(w->commit_baton, run, n, now);
                }
                if (w->failures) {
                    gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
                           GCMON_LOGNO(2301) "database writes work again after %d failed "
                           "attempt(s)", w->failures);
                }
                w->failures = 0;
                return 1;
            }
            db_close(w);            /* a fresh connection for the retry */
        }
        w->failures++;
        note_error(w, rv == APR_SUCCESS ? "write" : "connect", err, n);
        if (past_drain(w)) {
            return 0;
        }
        nap(w, gc_backoff_delay(RETRY_MIN, RETRY_MAX, w->failures, 0.5));
        if (past_drain(w)) {
            return 0;
        }
    }
}

static void count_dropped(gc_writer_t *w, const char *reason, long n)
{
    if (w->env.metrics && n > 0) {
        gc_metrics_add(w->env.metrics, GC_MET_EVENTS_DROPPED, reason, NULL, n);
    }
}

/* Split the chain into runs of one source and write each. Returns how many
 * events could not be stored (only when stopping). */
static int write_list(gc_writer_t *w, apr_pool_t *p, gc_evrec_t *list)
{
    int lost = 0;

    while (list) {
        gc_evrec_t *run = list, *last = list, *rest;
        int n = 1;
        while (last->next && last->next->source == run->source) {
            last = last->next;
            n++;
        }
        rest = last->next;
        last->next = NULL;
        if (!write_run(w, p, run, n)) {
            lost += n;
        }
        gc_evq_free(run);
        list = rest;
    }
    return lost;
}

static void maybe_prune(gc_writer_t *w)
{
    apr_time_t now = apr_time_now();
    const char *err = NULL;
    int deleted = 0;

    if (now < w->next_prune || stopping(w) || w->env.conf->retention <= 0) {
        return;
    }
    if (db_open(w, &err) != APR_SUCCESS
        || gc_store_prune(w->db.store, now - w->env.conf->retention, PRUNE_CHUNK, &deleted)
           != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2302) "pruning history older than the retention failed; "
               "trying again in an hour%s%s", err ? ": " : "", err ? err : "");
        db_close(w);
        w->next_prune = now + PRUNE_EVERY;
        return;
    }
    if (deleted > 0) {
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(2303) "pruned %d history row(s) older than the retention", deleted);
    }
    w->next_prune = deleted >= PRUNE_CHUNK ? now : now + PRUNE_EVERY;
}

/* Idle alerts between batches; returns how long the queue may be waited on. */
static apr_interval_time_t alert_tick(gc_writer_t *w, apr_pool_t *p)
{
    apr_time_t now = apr_time_now(), next;
    const char *err = NULL;

    if (!w->alerter || stopping(w) || db_open(w, &err) != APR_SUCCESS) {
        return TAKE_WAIT;
    }
    next = gc_alerter_tick(w->alerter, w->db.store, p, now);
    now = apr_time_now();
    if (next <= 0 || next - now >= TAKE_WAIT) {
        return TAKE_WAIT;
    }
    return next > now ? next - now : 0;
}

static void *APR_THREAD_FUNC writer_main(apr_thread_t *t, void *data)
{
    gc_writer_t *w = data;
    apr_pool_t *iter;
    int lost = 0, left;
    apr_interval_time_t wait = TAKE_WAIT;

    apr_pool_create(&iter, w->pool);
    w->next_prune = apr_time_now() + PRUNE_FIRST;
    for (;;) {
        gc_evrec_t *list = NULL;
        int n;
        if (past_drain(w) || (stopping(w) && gc_evq_count(w->q) == 0)) {
            break;
        }
        n = gc_evq_take(w->q, &list, w->env.batch_max, stopping(w) ? 0 : wait);
        if (n == 0) {
            maybe_prune(w);
        }
        else {
            lost += write_list(w, iter, list);
        }
        wait = alert_tick(w, iter);
        apr_pool_clear(iter);
    }
    left = gc_evq_count(w->q);
    if (left > 0) {
        gc_evrec_t *list = NULL;
        while (gc_evq_take(w->q, &list, 100000, 0) > 0) {
            gc_evq_free(list);
        }
    }
    if (lost + left > 0) {
        count_dropped(w, "shutdown", lost + left);
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2304) "stopping with %d agent event(s) not stored (database "
               "unavailable); the next holder's resync restores the current state",
               lost + left);
    }
    db_close(w);
    apr_pool_destroy(iter);
    return NULL;
}

apr_status_t gc_writer_start(gc_writer_t **out, apr_pool_t *p, const gc_monitor_env_t *env,
                             gc_outbox_t *outbox, gc_writer_commit_fn *on_commit,
                             void *commit_baton)
{
    apr_allocator_t *alloc;
    apr_pool_t *wp;
    gc_writer_t *w;
    apr_status_t rv;

    if ((rv = apr_allocator_create(&alloc)) != APR_SUCCESS) {
        return rv;
    }
    apr_allocator_max_free_set(alloc, 256 * 1024);
    if ((rv = apr_pool_create_ex(&wp, p, NULL, alloc)) != APR_SUCCESS) {
        apr_allocator_destroy(alloc);
        return rv;
    }
    apr_allocator_owner_set(alloc, wp);
    w = apr_pcalloc(wp, sizeof(*w));
    w->pool = wp;
    w->env = *env;
    if (w->env.batch_max <= 0) {
        w->env.batch_max = GC_WRITER_BATCH_MAX;
    }
    w->on_commit = on_commit;
    w->commit_baton = commit_baton;
    w->alerter = gc_alerter_create(wp, env->conf, env->metrics, outbox);
    atomic_init(&w->stop, 0);
    atomic_init(&w->drain_until, 0);
    /* The queue and the drop mutex belong to p (the caller's side), so pushes
     * stay valid until the caller's pool goes, after the join. */
    w->q = gc_evq_create(p, env->queue_max);
    if (!w->q || apr_thread_mutex_create(&w->drop_mutex, APR_THREAD_MUTEX_DEFAULT, p)
                 != APR_SUCCESS) {
        apr_pool_destroy(wp);
        return APR_ENOMEM;
    }
    rv = apr_thread_create(&w->thread, NULL, writer_main, w, wp);
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(wp);
        return rv;
    }
    *out = w;
    return APR_SUCCESS;
}

void gc_writer_push(gc_writer_t *w, const gc_agent_event_t *ev, const char *source)
{
    int dropped = gc_evq_push(w->q, ev, source, apr_time_now());
    apr_time_t now;

    if (dropped == 0) {
        return;
    }
    count_dropped(w, dropped < 0 ? "other" : "queue_full", 1);
    apr_thread_mutex_lock(w->drop_mutex);
    w->dropped_unlogged++;
    now = apr_time_now();
    if (now - w->drop_logged_at >= DROP_LOG_EVERY) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2305) "the database is not keeping up: dropped %ld agent "
               "event(s) (%s) since the last report; the next resync restores the current "
               "state", w->dropped_unlogged,
               dropped < 0 ? "out of memory" : "queue full, oldest first");
        w->dropped_unlogged = 0;
        w->drop_logged_at = now;
    }
    apr_thread_mutex_unlock(w->drop_mutex);
}

int gc_writer_pending(gc_writer_t *w)
{
    return gc_evq_count(w->q);
}

void gc_writer_stop(gc_writer_t *w, apr_interval_time_t drain)
{
    apr_status_t rv;

    atomic_store(&w->drain_until, apr_time_now() + drain);
    atomic_store(&w->stop, 1);
    gc_evq_wake(w->q);
    apr_thread_join(&rv, w->thread);
    if (w->dropped_unlogged > 0) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2305) "the database is not keeping up: dropped %ld agent "
               "event(s) (queue full, oldest first) since the last report",
               w->dropped_unlogged);
    }
    apr_pool_destroy(w->pool);
}
