/* The outbox delivery thread (gc_outbox.h), run by the stream holder.
 *
 * Each pass takes the due rows (oldest first, BATCH at a time) and posts
 * each one: a 2xx marks it delivered; anything else schedules the next
 * attempt with exponential backoff (a longer Retry-After wins, capped at an
 * hour), or gives up once that would pass GcmonWebhookMaxAge. Between passes
 * the thread sleeps until the earliest pending row is due, at most POLL, and
 * gc_outbox_wake cuts the sleep short. A database error closes the
 * connection and retries with backoff; rows stay pending meanwhile.
 *
 * Webhook URLs are secrets: nothing here logs them, and bodies are logged
 * only at debug level. */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>

#include "gc_log.h"
#include "gc_metrics.h"
#include "gc_monitor.h"
#include "gc_outbox.h"
#include "gc_dbconn.h"
#include "gc_store.h"

#define FINAL_SLACK apr_time_from_sec(5)
#define BATCH 32
#define POLL apr_time_from_sec(1)
#define PRUNE_FIRST apr_time_from_sec(60)   /* after start: clear of the first deliveries */
#define PRUNE_EVERY apr_time_from_sec(3600)
#define PRUNE_CHUNK 1000
#define PRUNE_ROUNDS 20
#define RETRY_AFTER_CAP apr_time_from_sec(3600)
#define BACKOFF_MIN_DEFAULT apr_time_from_sec(1)
#define BACKOFF_MAX_DEFAULT apr_time_from_sec(300)
#define DB_RETRY_MIN apr_time_from_msec(500)
#define DB_RETRY_MAX apr_time_from_sec(30)
#define DB_LOG_EVERY apr_time_from_sec(60)

struct gc_outbox {
    apr_pool_t *pool;                   /* own allocator; used by the outbox thread */
    gc_outbox_env_t env;
    apr_thread_t *thread;
    apr_thread_mutex_t *mutex;          /* guards woken (and orders stop with it) */
    apr_thread_cond_t *cond;
    int woken;
    _Atomic int stop;

    /* outbox thread only */
    gc_dbconn_t db;
    int db_failures;
    apr_time_t db_logged_at;
    apr_time_t next_prune;
    apr_uint64_t rng;
};

static int stopping(gc_outbox_t *o)
{
    return atomic_load(&o->stop) != 0;
}

/* Uniform in [0, 1) (xorshift64: jitter only). */
static double rand01(gc_outbox_t *o)
{
    apr_uint64_t x = o->rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    o->rng = x;
    return (double)(x >> 11) / 9007199254740992.0;
}

/* Sleep until `until`, or until stopped; a wake ends it early when wakeable. */
static void wait_until(gc_outbox_t *o, apr_time_t until, int wakeable)
{
    apr_thread_mutex_lock(o->mutex);
    while (!stopping(o) && !(wakeable && o->woken)) {
        apr_time_t now = apr_time_now();
        if (now >= until) {
            break;
        }
        apr_thread_cond_timedwait(o->cond, o->mutex, until - now);
    }
    if (wakeable) {
        o->woken = 0;
    }
    apr_thread_mutex_unlock(o->mutex);
}

/* ---------------------------------------------------------------- database */

static void db_close(gc_outbox_t *o)
{
    gc_dbconn_close(&o->db, o->env.db_close, o->env.baton);
}

static apr_status_t db_open(gc_outbox_t *o, const char **err)
{
    return gc_dbconn_open(&o->db, o->pool, o->env.db_open, o->env.baton, err);
}

/* A database error: drop the connection, log (first time, then once a
 * minute), and the delay before the next try. */
static apr_interval_time_t db_failed(gc_outbox_t *o, const char *what, const char *err)
{
    apr_time_t now = apr_time_now();
    apr_interval_time_t delay;

    db_close(o);
    o->db_failures++;
    delay = gc_backoff_delay(DB_RETRY_MIN, DB_RETRY_MAX, o->db_failures, rand01(o));
    if (o->db_failures == 1 || now - o->db_logged_at >= DB_LOG_EVERY) {
        o->db_logged_at = now;
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(703) "outbox: database %s failed (attempt %d), webhook deliveries "
               "wait and retry in %" APR_TIME_T_FMT " ms: %s", what, o->db_failures,
               apr_time_as_msec(delay), err ? err : "unknown error");
    }
    return delay;
}

static void db_ok(gc_outbox_t *o)
{
    if (o->db_failures) {
        gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
               GCMON_LOGNO(704) "outbox: the database works again after %d failed "
               "attempt(s)", o->db_failures);
    }
    o->db_failures = 0;
}

/* ---------------------------------------------------------------- one row */

static apr_interval_time_t max_age_of(const gc_outbox_t *o)
{
    return o->env.conf->max_age > 0 ? o->env.conf->max_age : GC_WEBHOOK_MAX_AGE_DEFAULT;
}

/* "1h 2m 3s" (zero parts left out). */
static const char *age_text(apr_pool_t *p, apr_interval_time_t d)
{
    apr_int64_t s = d > 0 ? apr_time_sec(d) : 0;

    if (s >= 3600) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT "h %" APR_INT64_T_FMT "m", s / 3600,
                            s / 60 % 60);
    }
    if (s >= 60) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT "m %" APR_INT64_T_FMT "s", s / 60, s % 60);
    }
    return apr_psprintf(p, "%" APR_INT64_T_FMT "s", s);
}

static const char *not_configured(apr_pool_t *p, const char *target)
{
    static const struct {
        const char *target, *directive;
    } names[] = {
        { GC_TARGET_SLACK, "GcmonSlackWebhook" },
        { GC_TARGET_STATUS, "GcmonStatusWebhook" },
        { GC_TARGET_TRACE, "GcmonTraceWebhook" },
        { GC_TARGET_WFM, "GcmonWfmWebhook" },
    };
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(target, names[i].target) == 0) {
            return apr_pstrcat(p, names[i].directive, " is not configured", NULL);
        }
    }
    return apr_psprintf(p, "no webhook for target '%s'", target);
}

static const char *outcome_name(gc_outbox_outcome_e oc)
{
    return oc == GC_OUTBOX_DELIVERED ? "delivered" : oc == GC_OUTBOX_RETRY ? "retry" : "failed";
}

/* Record the outcome, count it, log it. */
static apr_status_t finish(gc_outbox_t *o, apr_pool_t *p, const gc_outbox_row_t *r,
                           gc_outbox_outcome_e oc, apr_time_t next_at, const char *why,
                           const char **err)
{
    apr_time_t now = apr_time_now();
    apr_status_t rv;
    int attempts = r->attempts + 1;

    rv = gc_store_outbox_result(o->db.store, p, r->id, oc, now, next_at, why, err);
    if (o->env.metrics) {
        gc_metrics_add(o->env.metrics, GC_MET_WEBHOOK_DELIVERIES, r->target, outcome_name(oc), 1);
    }
    if (oc == GC_OUTBOX_FAILED) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(700) "outbox: delivery to the %s webhook failed permanently "
               "(outbox id %" APR_INT64_T_FMT ", %d attempt(s)): %s", r->target, r->id,
               attempts, why);
    }
    else if (oc == GC_OUTBOX_RETRY && r->attempts == 0) {
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(701) "outbox: delivery to the %s webhook failed (outbox id %"
               APR_INT64_T_FMT "), retrying with backoff for up to %s: %s", r->target, r->id,
               age_text(p, max_age_of(o)), why);
    }
    else if (oc == GC_OUTBOX_RETRY) {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
               GCMON_LOGNO(705) "outbox: attempt %d to the %s webhook failed (outbox id %"
               APR_INT64_T_FMT "), next in %" APR_TIME_T_FMT " ms: %s", attempts, r->target,
               r->id, apr_time_as_msec(next_at - now), why);
    }
    else if (r->attempts > 0) {
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(702) "outbox: delivered to the %s webhook (outbox id %"
               APR_INT64_T_FMT ") at attempt %d", r->target, r->id, attempts);
    }
    return rv;
}

/* The delay before the next attempt after a failed one. */
static apr_interval_time_t retry_delay(gc_outbox_t *o, const gc_outbox_row_t *r,
                                       const gc_webhook_result_t *res)
{
    apr_interval_time_t lo = o->env.backoff_min > 0 ? o->env.backoff_min : BACKOFF_MIN_DEFAULT;
    apr_interval_time_t hi = o->env.backoff_max > 0 ? o->env.backoff_max : BACKOFF_MAX_DEFAULT;
    apr_interval_time_t d = gc_backoff_delay(lo, hi, r->attempts + 1, rand01(o));
    apr_interval_time_t ra = res->retry_after < RETRY_AFTER_CAP ? res->retry_after
                                                                : RETRY_AFTER_CAP;

    return ra > d ? ra : d;
}

static apr_status_t deliver(gc_outbox_t *o, apr_pool_t *p, const gc_outbox_row_t *r,
                            const char **err)
{
    const char *url = gc_webhook_url(o->env.conf, r->target);
    apr_time_t now = apr_time_now(), give_up = r->created_at + max_age_of(o), next;
    gc_webhook_result_t res;

    if (!url) {
        return finish(o, p, r, GC_OUTBOX_FAILED, 0, not_configured(p, r->target), err);
    }
    /* The last attempt is scheduled at give_up itself: allow the thread some
     * lateness for it, but not a holder that was away long past the age. */
    if (now > give_up + FINAL_SLACK) {
        return finish(o, p, r, GC_OUTBOX_FAILED, 0,
                      apr_pstrcat(p, "gave up after ", age_text(p, now - r->created_at), NULL),
                      err);
    }
    if (gc_log_is_level(GC_LOG_DEBUG)) {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
               GCMON_LOGNO(706) "outbox: posting outbox id %" APR_INT64_T_FMT " to the %s "
               "webhook: %.1000s", r->id, r->target, r->body);
    }
    if (gc_webhook_post(p, o->env.conf, r->target, url, r->body, &res) == APR_SUCCESS) {
        return finish(o, p, r, GC_OUTBOX_DELIVERED, 0, NULL, err);
    }
    now = apr_time_now();
    if (now >= give_up) {
        return finish(o, p, r, GC_OUTBOX_FAILED, 0,
                      apr_psprintf(p, "gave up after %s: %s", age_text(p, now - r->created_at),
                                   res.error),
                      err);
    }
    next = now + retry_delay(o, r, &res);
    if (next > give_up) {
        next = give_up;             /* one last attempt when the age is reached */
    }
    return finish(o, p, r, GC_OUTBOX_RETRY, next, res.error, err);
}

/* ---------------------------------------------------------------- the thread */

/* Deliver what is due; *wake_at: when to look again. */
static apr_status_t pass(gc_outbox_t *o, apr_pool_t *p, apr_time_t *wake_at, const char **what,
                         const char **err)
{
    apr_array_header_t *rows;
    apr_pool_t *rp;
    apr_time_t next_at = 0, now;
    apr_status_t rv;
    long count = 0;
    int i;

    *what = "read";
    rv = gc_store_outbox_due(o->db.store, p, apr_time_now(), BATCH, &rows, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if ((rv = apr_pool_create(&rp, p)) != APR_SUCCESS) {
        return rv;
    }
    *what = "write";
    for (i = 0; i < rows->nelts && !stopping(o); i++) {
        rv = deliver(o, rp, &APR_ARRAY_IDX(rows, i, gc_outbox_row_t), err);
        if (rv != APR_SUCCESS) {
            *err = apr_pstrdup(p, *err ? *err : "unknown error");
            return rv;
        }
        apr_pool_clear(rp);
    }
    *what = "read";
    rv = gc_store_outbox_pending(o->db.store, p, &next_at, &count, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (o->env.metrics) {
        gc_metrics_set(o->env.metrics, GC_MET_OUTBOX_PENDING, NULL, NULL, count);
    }
    now = apr_time_now();
    *wake_at = now + POLL;
    if (rows->nelts >= BATCH) {
        *wake_at = now;                 /* more may be due */
    }
    else if (count > 0 && next_at < *wake_at) {
        *wake_at = next_at;
    }
    return APR_SUCCESS;
}

/* Hourly: delete finished rows older than the retention, a chunk per
 * statement so a delivery never waits long behind it. A failure only logs:
 * the rows stay for the next round. */
static void prune(gc_outbox_t *o, apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    const char *err = NULL;
    int deleted = 0, total = 0, round;

    if (o->env.retention <= 0 || now < o->next_prune) {
        return;
    }
    o->next_prune = now + PRUNE_EVERY;
    for (round = 0; round < PRUNE_ROUNDS && !stopping(o); round++) {
        if (gc_store_outbox_prune(o->db.store, p, now - o->env.retention, PRUNE_CHUNK, &deleted,
                                  &err) != APR_SUCCESS) {
            gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0, GCMON_LOGNO(707) "outbox: pruning "
                   "finished deliveries failed (tried again in an hour): %s", err);
            break;
        }
        total += deleted;
        if (deleted < PRUNE_CHUNK) {
            break;
        }
    }
    if (total > 0) {
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0, GCMON_LOGNO(708) "outbox: deleted %d finished "
               "deliveries older than the retention", total);
    }
}

static void *APR_THREAD_FUNC outbox_main(apr_thread_t *t, void *data)
{
    gc_outbox_t *o = data;
    apr_pool_t *iter;

    if (apr_pool_create(&iter, o->pool) != APR_SUCCESS) {
        return NULL;
    }
    while (!stopping(o)) {
        apr_time_t wake_at = 0;
        const char *err = NULL, *what = "connect";
        apr_status_t rv = db_open(o, &err);

        if (rv == APR_SUCCESS) {
            rv = pass(o, iter, &wake_at, &what, &err);
        }
        if (rv == APR_SUCCESS) {
            db_ok(o);
            prune(o, iter);
            apr_pool_clear(iter);
            wait_until(o, wake_at, 1);
            continue;
        }
        wake_at = apr_time_now() + db_failed(o, what, err);
        apr_pool_clear(iter);
        wait_until(o, wake_at, 0);
    }
    db_close(o);
    apr_pool_destroy(iter);
    return NULL;
}

apr_status_t gc_outbox_start(gc_outbox_t **out, apr_pool_t *p, const gc_outbox_env_t *env)
{
    apr_allocator_t *alloc;
    apr_pool_t *op;
    gc_outbox_t *o;
    apr_status_t rv;

    *out = NULL;
    if (!env || !env->conf || !env->db_open) {
        return APR_EINVAL;
    }
    if ((rv = apr_allocator_create(&alloc)) != APR_SUCCESS) {
        return rv;
    }
    apr_allocator_max_free_set(alloc, 256 * 1024);
    if ((rv = apr_pool_create_ex(&op, p, NULL, alloc)) != APR_SUCCESS) {
        apr_allocator_destroy(alloc);
        return rv;
    }
    apr_allocator_owner_set(alloc, op);
    apr_pool_tag(op, "gcmon_outbox");
    o = apr_pcalloc(op, sizeof(*o));
    o->pool = op;
    o->env = *env;
    o->rng = (apr_uint64_t)apr_time_now() ^ (apr_uint64_t)(uintptr_t)o;
    if (!o->rng) {
        o->rng = 0x9e3779b97f4a7c15ULL;
    }
    o->next_prune = apr_time_now() + (env->prune_first > 0 ? env->prune_first : PRUNE_FIRST);
    atomic_init(&o->stop, 0);
    if ((rv = apr_thread_mutex_create(&o->mutex, APR_THREAD_MUTEX_DEFAULT, op)) != APR_SUCCESS
        || (rv = apr_thread_cond_create(&o->cond, op)) != APR_SUCCESS
        || (rv = apr_thread_create(&o->thread, NULL, outbox_main, o, op)) != APR_SUCCESS) {
        apr_pool_destroy(op);
        return rv;
    }
    *out = o;
    return APR_SUCCESS;
}

void gc_outbox_wake(gc_outbox_t *o)
{
    if (!o) {
        return;
    }
    apr_thread_mutex_lock(o->mutex);
    o->woken = 1;
    apr_thread_cond_signal(o->cond);
    apr_thread_mutex_unlock(o->mutex);
}

void gc_outbox_stop(gc_outbox_t *o)
{
    apr_status_t rv;

    if (!o) {
        return;
    }
    apr_thread_mutex_lock(o->mutex);
    atomic_store(&o->stop, 1);
    apr_thread_cond_signal(o->cond);
    apr_thread_mutex_unlock(o->mutex);
    apr_thread_join(&rv, o->thread);
    apr_pool_destroy(o->pool);
}
