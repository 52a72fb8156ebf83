/* The writer thread: group commit of agent events into the database.
 *
 * The monitor thread queues events (gc_writer_push); this thread takes what is
 * waiting — up to batch_max — and writes it in one transaction as soon as
 * anything waits, so a batch is committed within one transaction time of its
 * first event (well under 100 ms) and batches grow by themselves under load.
 * A failed batch is kept and retried with backoff on a fresh connection; the
 * queue is bounded (drop-oldest, counted and logged) so a long database outage
 * cannot exhaust memory. History older than GcmonRetention is pruned in small
 * chunks while the queue is idle. Dropped events leave the stored state behind
 * the platform's: once the queue has room again, the writer asks the monitor
 * for a resync of every monitored agent (gc_writer_take_resync). The thread is
 * a gc_worker: a push onto the empty queue wakes it; otherwise it waits for
 * the next idle alert or prune. */
#include <string.h>

#include <apr_strings.h>

#include "gc_evq.h"
#include "gc_monitor_int.h"

#define IDLE_WAIT apr_time_from_sec(1) /* longest wait with nothing due */
#define RETRY_MIN (100 * 1000)
#define RETRY_MAX apr_time_from_sec(5)
#define PRUNE_FIRST apr_time_from_sec(5) /* after taking the lead, clear of the connect burst */
#define PRUNE_EVERY apr_time_from_sec(3600)
#define PRUNE_CHUNK 5000
#define DROP_LOG_EVERY apr_time_from_sec(10)

struct gc_writer {
    gc_worker_t *worker; /* the writer thread; its pool holds this */
    gc_monitor_env_t env;
    gc_evq_t *q;
    _Atomic apr_time_t drain_until;
    gc_writer_commit_fn *on_commit;
    void *commit_baton;
    gc_alerter_t *alerter; /* idle alerts, or NULL */

    /* writer thread only */
    apr_time_t next_prune;

    /* any thread (push) */
    apr_thread_mutex_t *drop_mutex;
    long dropped_unlogged;
    apr_time_t drop_logged_at;

    int not_stored;          /* at the stop: events given up on (read after the join) */
    _Atomic long lost;       /* dropped since the last resync was asked for */
    _Atomic long resync_due; /* dropped events a resync should make up for; 0: none */
};

static int stopping(gc_writer_t *w)
{
    return gc_worker_stopping(w->worker);
}

static int past_drain(gc_writer_t *w)
{
    return stopping(w) && apr_time_now() >= atomic_load(&w->drain_until);
}

/* Wait for the next attempt after a failure: the backoff, which a stop cuts
 * to the drain deadline (the writer keeps retrying while it drains). 0 once
 * past that deadline. */
static int retry_wait(gc_writer_t *w)
{
    apr_time_t at = gc_worker_db_retry_at(w->worker), end, now;

    if (gc_worker_pause(w->worker, at) == GC_WORKER_STOPPED) {
        end = atomic_load(&w->drain_until);
        end = at < end ? at : end;
        now = apr_time_now();
        if (end > now) {
            apr_sleep(end - now);
        }
    }
    return !past_drain(w);
}

/* A failed attempt: the worker drops the connection and backs off; the status
 * block shows every failure, the log the first, then one a minute. */
static void note_error(gc_writer_t *w, const char *what, const char *err, int n)
{
    char msg[GC_STATUS_ERR_MAX];
    int log = gc_worker_db_failed(w->worker);

    apr_snprintf(msg, sizeof(msg), "database: %s: %s", what, err ? err : "unknown error");
    if (w->env.status) {
        gc_stream_status_error(w->env.status, apr_time_now(), msg);
    }
    if (log) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2300) "cannot store %d agent event(s) (attempt %d), keeping "
                                 "them and retrying: %s",
               n, gc_worker_db_failures(w->worker), msg);
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
    if (res->transitions + res->refreshed > 0) {
        gc_metrics_set(w->env.metrics, GC_MET_LAST_EVENT, NULL, NULL, (long long)apr_time_sec(at));
    }
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

/* After drops, once a commit succeeds and the queue is at most half full: the
 * monitor's next step resyncs (its events then have room). */
static void ask_resync(gc_writer_t *w)
{
    int max = w->env.queue_max > 0 ? w->env.queue_max : GC_WRITER_QUEUE_MAX;
    long lost;

    if (atomic_load(&w->lost) == 0 || gc_evq_count(w->q) > max / 2) {
        return;
    }
    lost = atomic_exchange(&w->lost, 0);
    atomic_fetch_add(&w->resync_due, lost);
}

long gc_writer_take_resync(gc_writer_t *w)
{
    return w ? atomic_exchange(&w->resync_due, 0) : 0;
}

/* A run was committed: metrics, idle alerts, the commit hook, and the line
 * saying the database works again after failures. */
static void committed(gc_writer_t *w, const gc_evrec_t *run, int n,
                      const gc_store_batch_result_t *res)
{
    apr_time_t now = apr_time_now();
    int failures = gc_worker_db_ok(w->worker);

    account(w, run, n, run->source, res, now);
    ask_resync(w);
    gc_alerter_committed(w->alerter, run, n);
    if (w->on_commit) {
        w->on_commit(w->commit_baton, run, n, now);
    }
    if (failures) {
        gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
               GCMON_LOGNO(2301) "database writes work again after %d failed attempt(s)", failures);
    }
}

/* Write one run of events of the same source; retry (each time on a fresh
 * connection) until stored or the drain deadline passes. 1 when stored. */
static int write_run(gc_writer_t *w, apr_pool_t *p, gc_evrec_t *run, int n)
{
    gc_agent_event_t *evs = apr_palloc(p, sizeof(*evs) * (apr_size_t)n);
    gc_store_batch_result_t res;
    const gc_evrec_t *r;
    int i;

    for (r = run, i = 0; i < n; r = r->next, i++) {
        evs[i] = r->ev;
    }
    for (;;) {
        const char *err = NULL, *what = "connect";
        gc_store_t *s = NULL;
        apr_status_t rv = gc_worker_db(w->worker, &s, &err);

        if (rv == APR_SUCCESS) {
            memset(&res, 0, sizeof(res));
            what = "write";
            rv = gc_store_write_batch(s, p, evs, n, run->source, apr_time_now(), &res, &err);
            if (rv == APR_SUCCESS) {
                committed(w, run, n, &res);
                return 1;
            }
        }
        if (rv != APR_EAGAIN) {
            note_error(w, what, err, n);
        }
        if (!retry_wait(w)) {
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
    gc_store_t *s = NULL;
    int deleted = 0;

    if (now < w->next_prune || stopping(w) || w->env.conf->retention <= 0) {
        return;
    }
    if (gc_worker_db(w->worker, &s, &err) != APR_SUCCESS
        || gc_store_prune(s, now - w->env.conf->retention, PRUNE_CHUNK, &deleted) != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2302) "pruning history older than the retention failed; "
                                 "trying again in an hour%s%s",
               err ? ": " : "", err ? err : "");
        gc_worker_db_close(w->worker);
        w->next_prune = now + PRUNE_EVERY;
        return;
    }
    if (deleted > 0) {
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(2303) "pruned %d history row(s) older than the retention", deleted);
    }
    w->next_prune = deleted >= PRUNE_CHUNK ? now : now + PRUNE_EVERY;
}

/* Idle alerts between batches; returns when the writer should look again
 * (the next alert due or clear, at most IDLE_WAIT away). */
static apr_time_t alert_tick(gc_writer_t *w, apr_pool_t *p)
{
    apr_time_t now = apr_time_now(), idle = now + IDLE_WAIT, next;
    const char *err = NULL;
    gc_store_t *s = NULL;

    if (!w->alerter || stopping(w) || gc_worker_db(w->worker, &s, &err) != APR_SUCCESS) {
        return idle;
    }
    next = gc_alerter_tick(w->alerter, s, p, now);
    return next > 0 && next < idle ? next : idle;
}

/* With nothing queued: wait for a push (its wake), the next alert tick or the
 * next prune. */
static void idle_wait(gc_writer_t *w, apr_time_t until)
{
    if (w->env.conf->retention > 0 && w->next_prune < until) {
        until = w->next_prune;
    }
    gc_worker_wait(w->worker, until);
}

/* Once stopped: what is still queued is dropped, counted and logged. */
static void count_lost(gc_writer_t *w, int lost)
{
    int left = gc_evq_count(w->q);

    if (left > 0) {
        gc_evrec_t *list = NULL;
        while (gc_evq_take(w->q, &list, 100000) > 0) {
            gc_evq_free(list);
        }
    }
    w->not_stored = lost + left;
    if (lost + left > 0) {
        count_dropped(w, "shutdown", lost + left);
        gc_log(
            GC_LOG_MARK, GC_LOG_WARNING, 0,
            GCMON_LOGNO(2304) "stopping with %d agent event(s) not stored (database "
                              "unavailable); the next holder's resync restores the current state",
            lost + left);
    }
}

static void writer_main(gc_worker_t *wk, void *data)
{
    gc_writer_t *w = data;
    apr_pool_t *iter;
    int lost = 0;

    apr_pool_create(&iter, gc_worker_pool(wk));
    w->next_prune = apr_time_now() + PRUNE_FIRST;
    for (;;) {
        gc_evrec_t *list = NULL;
        apr_time_t next;
        int n;
        if (past_drain(w) || (stopping(w) && gc_evq_count(w->q) == 0)) {
            break;
        }
        n = gc_evq_take(w->q, &list, w->env.batch_max);
        if (n == 0) {
            maybe_prune(w);
        }
        else {
            lost += write_list(w, iter, list);
        }
        next = alert_tick(w, iter);
        apr_pool_clear(iter);
        if (n == 0) {
            idle_wait(w, next);
        }
    }
    count_lost(w, lost);
    apr_pool_destroy(iter);
}

apr_status_t gc_writer_start(gc_writer_t **out, apr_pool_t *p, const gc_monitor_env_t *env,
                             gc_outbox_t *outbox, gc_writer_commit_fn *on_commit,
                             void *commit_baton)
{
    gc_worker_db_conf_t db;
    gc_worker_t *wk;
    gc_writer_t *w;
    apr_status_t rv;

    if ((rv = gc_worker_create(&wk, p, "writer")) != APR_SUCCESS) {
        return rv;
    }
    w = apr_pcalloc(gc_worker_pool(wk), sizeof(*w));
    w->worker = wk;
    w->env = *env;
    if (w->env.batch_max <= 0) {
        w->env.batch_max = GC_WRITER_BATCH_MAX;
    }
    w->on_commit = on_commit;
    w->commit_baton = commit_baton;
    w->alerter = gc_alerter_create(gc_worker_pool(wk), env->conf, env->metrics, outbox);
    atomic_init(&w->drain_until, 0);
    memset(&db, 0, sizeof(db));
    db.open = env->db_open;
    db.close = env->db_close;
    db.baton = env->baton;
    db.retry_min = RETRY_MIN;
    db.retry_max = RETRY_MAX;
    db.opened = gc_mon_board_publisher;
    db.opened_baton = env->status;
    gc_worker_use_db(wk, &db);
    /* The queue and the drop mutex belong to p (the caller's side), so pushes
     * stay valid until the caller's pool goes, after the join. */
    w->q = gc_evq_create(p, env->queue_max);
    if (!w->q
        || apr_thread_mutex_create(&w->drop_mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        gc_worker_destroy(wk);
        return APR_ENOMEM;
    }
    gc_evq_notify(w->q, wk);
    if ((rv = gc_worker_start(wk, writer_main, w, NULL)) != APR_SUCCESS) {
        gc_evq_notify(w->q, NULL);
        gc_worker_destroy(wk);
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
    atomic_fetch_add(&w->lost, 1);
    apr_thread_mutex_lock(w->drop_mutex);
    w->dropped_unlogged++;
    now = apr_time_now();
    if (now - w->drop_logged_at >= DROP_LOG_EVERY) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(
                   2305) "the database is not keeping up: dropped %ld agent "
                         "event(s) (%s) since the last report; a resync restores the current state "
                         "once the queue has room",
               w->dropped_unlogged, dropped < 0 ? "out of memory" : "queue full, oldest first");
        w->dropped_unlogged = 0;
        w->drop_logged_at = now;
    }
    apr_thread_mutex_unlock(w->drop_mutex);
}

int gc_writer_pending(gc_writer_t *w)
{
    return gc_evq_count(w->q);
}

int gc_writer_stop(gc_writer_t *w, apr_interval_time_t drain)
{
    int not_stored;

    atomic_store(&w->drain_until, apr_time_now() + drain);
    gc_worker_db_patience(w->worker, atomic_load(&w->drain_until));
    gc_worker_stop(w->worker);
    gc_worker_join(w->worker, -1);
    gc_evq_notify(w->q, NULL);
    if (w->dropped_unlogged > 0) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2305) "the database is not keeping up: dropped %ld agent "
                                 "event(s) (queue full, oldest first) since the last report",
               w->dropped_unlogged);
    }
    not_stored = w->not_stored;
    gc_worker_destroy(w->worker);
    return not_stored;
}
