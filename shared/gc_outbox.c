/* The outbox delivery thread (gc_outbox.h), run by the stream holder.
 *
 * Each pass takes the due rows (oldest first, BATCH at a time) and posts
 * each one: a 2xx marks it delivered; anything else schedules the next
 * attempt with exponential backoff (a longer Retry-After wins, capped at an
 * hour), or gives up once that would pass GcmonWebhookMaxAge. Between passes
 * the thread waits until the earliest pending row is due, at most POLL, and
 * gc_outbox_wake cuts the wait short. A database error closes the
 * connection and retries with backoff; rows stay pending meanwhile. The
 * thread is a gc_worker (its stop, waits, connection, backoff and RNG).
 *
 * Webhook URLs are secrets: nothing here logs them, and bodies are logged
 * only at debug level. */
#include <string.h>

#include <apr_strings.h>

#include "gc_log.h"
#include "gc_metrics.h"
#include "gc_outbox.h"
#include "gc_store.h"
#include "gc_webhook.h"
#include "gc_worker.h"

#define FINAL_SLACK apr_time_from_sec(5)
#define BATCH 32
#define POLL apr_time_from_sec(1)
#define PRUNE_FIRST apr_time_from_sec(60) /* after start: clear of the first deliveries */
#define PRUNE_EVERY apr_time_from_sec(3600)
#define PRUNE_CHUNK 1000
#define PRUNE_ROUNDS 20
#define RETRY_AFTER_CAP apr_time_from_sec(3600)
#define BACKOFF_MIN_DEFAULT apr_time_from_sec(1)
#define BACKOFF_MAX_DEFAULT apr_time_from_sec(300)
#define DB_RETRY_MIN apr_time_from_msec(500)
#define DB_RETRY_MAX apr_time_from_sec(30)

/* A row's result the database did not take (the connection failed after
 * the POST): recorded first on the next connection, before anything is
 * posted again, so a delivered row is not delivered twice. */
typedef struct {
    int valid;
    apr_int64_t id;
    gc_outbox_outcome_e oc;
    apr_time_t at, next_at;
    char why[256];
} unrecorded_t;

struct gc_outbox {
    gc_worker_t *worker; /* the delivery thread; its pool holds this */
    gc_outbox_env_t env;
    apr_time_t next_prune;   /* outbox thread only */
    unrecorded_t unrecorded; /* outbox thread only */
};

static int stopping(gc_outbox_t *o)
{
    return gc_worker_stopping(o->worker);
}

/* ---------------------------------------------------------------- database */

/* A database error: the worker drops the connection and backs off; logged
 * at the first failure, then at most once a minute. */
static void db_failed(gc_outbox_t *o, const char *what, const char *err)
{
    if (gc_worker_db_failed(o->worker)) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(703) "outbox: database %s failed (attempt %d), webhook deliveries "
                                "wait and retry in %" APR_TIME_T_FMT " ms: %s",
               what, gc_worker_db_failures(o->worker),
               apr_time_as_msec(gc_worker_db_retry_at(o->worker) - apr_time_now()),
               err ? err : "unknown error");
    }
}

static void db_ok(gc_outbox_t *o)
{
    int failures = gc_worker_db_ok(o->worker);

    if (failures) {
        gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
               GCMON_LOGNO(704) "outbox: the database works again after %d failed "
                                "attempt(s)",
               failures);
    }
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
    const gc_webhook_target_t *t = gc_webhook_target(target);

    if (t) {
        return apr_pstrcat(p, t->directive, " is not configured", NULL);
    }
    return apr_psprintf(p, "no webhook for target '%s'", target);
}

static const char *outcome_name(gc_outbox_outcome_e oc)
{
    return oc == GC_OUTBOX_DELIVERED ? "delivered" : oc == GC_OUTBOX_RETRY ? "retry" : "failed";
}

static void keep_unrecorded(gc_outbox_t *o, apr_int64_t id, gc_outbox_outcome_e oc, apr_time_t at,
                            apr_time_t next_at, const char *why)
{
    unrecorded_t *u = &o->unrecorded;

    u->valid = 1;
    u->id = id;
    u->oc = oc;
    u->at = at;
    u->next_at = next_at;
    apr_cpystrn(u->why, why ? why : "", sizeof(u->why));
}

/* The kept result, on a fresh connection; APR_SUCCESS when there is none. */
static apr_status_t record_unrecorded(gc_outbox_t *o, gc_store_t *s, apr_pool_t *p,
                                      const char **err)
{
    unrecorded_t *u = &o->unrecorded;
    apr_status_t rv;

    if (!u->valid) {
        return APR_SUCCESS;
    }
    rv = gc_store_outbox_result(s, p, u->id, u->oc, u->at, u->next_at, u->why[0] ? u->why : NULL,
                                err);
    if (rv == APR_SUCCESS) {
        u->valid = 0;
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(710) "outbox: recorded the %s of outbox id %" APR_INT64_T_FMT
                                " on a new database connection",
               outcome_name(u->oc), u->id);
    }
    return rv;
}

/* Record the outcome (or keep it, when the database does not take it), count
 * it, log it. */
static apr_status_t finish(gc_outbox_t *o, apr_pool_t *p, const gc_outbox_row_t *r,
                           gc_outbox_outcome_e oc, apr_time_t next_at, const char *why,
                           const char **err)
{
    apr_time_t now = apr_time_now();
    apr_status_t rv;
    int attempts = r->attempts + 1;

    rv = gc_store_outbox_result(gc_worker_store(o->worker), p, r->id, oc, now, next_at, why, err);
    if (rv != APR_SUCCESS) {
        keep_unrecorded(o, r->id, oc, now, next_at, why);
    }
    if (o->env.metrics) {
        gc_metrics_add(o->env.metrics, GC_MET_WEBHOOK_DELIVERIES, r->target, outcome_name(oc), 1);
    }
    if (oc == GC_OUTBOX_FAILED) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(700) "outbox: delivery to the %s webhook failed permanently "
                                "(outbox id %" APR_INT64_T_FMT ", %d attempt(s)): %s",
               r->target, r->id, attempts, why);
    }
    else if (oc == GC_OUTBOX_RETRY && r->attempts == 0) {
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(
                   701) "outbox: delivery to the %s webhook failed (outbox id %" APR_INT64_T_FMT
                        "), retrying with backoff for up to %s: %s",
               r->target, r->id, age_text(p, max_age_of(o)), why);
    }
    else if (oc == GC_OUTBOX_RETRY) {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
               GCMON_LOGNO(
                   705) "outbox: attempt %d to the %s webhook failed (outbox id %" APR_INT64_T_FMT
                        "), next in %" APR_TIME_T_FMT " ms: %s",
               attempts, r->target, r->id, apr_time_as_msec(next_at - now), why);
    }
    else if (r->attempts > 0) {
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(702) "outbox: delivered to the %s webhook (outbox id %" APR_INT64_T_FMT
                                ") at attempt %d",
               r->target, r->id, attempts);
    }
    return rv;
}

/* The delay before the next attempt after a failed one. */
static apr_interval_time_t retry_delay(gc_outbox_t *o, const gc_outbox_row_t *r,
                                       const gc_webhook_result_t *res)
{
    apr_interval_time_t lo = o->env.backoff_min > 0 ? o->env.backoff_min : BACKOFF_MIN_DEFAULT;
    apr_interval_time_t hi = o->env.backoff_max > 0 ? o->env.backoff_max : BACKOFF_MAX_DEFAULT;
    apr_interval_time_t ra =
        res->retry_after < RETRY_AFTER_CAP ? res->retry_after : RETRY_AFTER_CAP;

    return gc_worker_backoff(o->worker, lo, hi, r->attempts + 1, ra);
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
                                "webhook: %.1000s",
               r->id, r->target, r->body);
    }
    if (gc_webhook_post(p, o->env.conf, r->target, url, r->body, &res) == APR_SUCCESS) {
        return finish(o, p, r, GC_OUTBOX_DELIVERED, 0, NULL, err);
    }
    now = apr_time_now();
    if (now >= give_up) {
        return finish(
            o, p, r, GC_OUTBOX_FAILED, 0,
            apr_psprintf(p, "gave up after %s: %s", age_text(p, now - r->created_at), res.error),
            err);
    }
    next = now + retry_delay(o, r, &res);
    if (next > give_up) {
        next = give_up; /* one last attempt when the age is reached */
    }
    return finish(o, p, r, GC_OUTBOX_RETRY, next, res.error, err);
}

/* ---------------------------------------------------------------- the thread */

/* Deliver what is due; *wake_at: when to look again. */
static apr_status_t pass(gc_outbox_t *o, gc_store_t *s, apr_pool_t *p, apr_time_t *wake_at,
                         const char **what, const char **err)
{
    apr_array_header_t *rows;
    apr_pool_t *rp;
    apr_time_t next_at = 0, now;
    apr_status_t rv;
    long count = 0;
    int i;

    *what = "read";
    rv = gc_store_outbox_due(s, p, apr_time_now(), BATCH, &rows, err);
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
    rv = gc_store_outbox_pending(s, p, &next_at, &count, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (o->env.metrics) {
        gc_metrics_set(o->env.metrics, GC_MET_OUTBOX_PENDING, NULL, NULL, count);
    }
    now = apr_time_now();
    *wake_at = now + POLL;
    if (rows->nelts >= BATCH) {
        *wake_at = now; /* more may be due */
    }
    else if (count > 0 && next_at < *wake_at) {
        *wake_at = next_at;
    }
    return APR_SUCCESS;
}

/* Hourly: delete finished rows older than the retention, a chunk per
 * statement so a delivery never waits long behind it. A failure only logs:
 * the rows stay for the next round. */
static void prune(gc_outbox_t *o, gc_store_t *s, apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    const char *err = NULL;
    int deleted = 0, total = 0, round;

    if (o->env.retention <= 0 || now < o->next_prune) {
        return;
    }
    o->next_prune = now + PRUNE_EVERY;
    for (round = 0; round < PRUNE_ROUNDS && !stopping(o); round++) {
        if (gc_store_outbox_prune(s, p, now - o->env.retention, PRUNE_CHUNK, &deleted, &err)
            != APR_SUCCESS) {
            gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
                   GCMON_LOGNO(707) "outbox: pruning "
                                    "finished deliveries failed (tried again in an hour): %s",
                   err);
            break;
        }
        total += deleted;
        if (deleted < PRUNE_CHUNK) {
            break;
        }
    }
    if (total > 0) {
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(708) "outbox: deleted %d finished "
                                "deliveries older than the retention",
               total);
    }
    if (o->env.housekeeping && !stopping(o)) {
        o->env.housekeeping(o->env.housekeeping_baton, s, p, now);
    }
}

/* One pass, then a wait until the next row is due (a wake cuts it short);
 * after a database error, the backoff (a wake does not cut it short). */
static void outbox_main(gc_worker_t *w, void *data)
{
    gc_outbox_t *o = data;
    apr_pool_t *iter;

    if (apr_pool_create(&iter, gc_worker_pool(w)) != APR_SUCCESS) {
        return;
    }
    while (!stopping(o)) {
        apr_time_t wake_at = 0;
        const char *err = NULL, *what = "connect";
        gc_store_t *s = NULL;
        apr_status_t rv = gc_worker_db(w, &s, &err);

        if (rv == APR_SUCCESS) {
            what = "write";
            rv = record_unrecorded(o, s, iter, &err);
        }
        if (rv == APR_SUCCESS) {
            rv = pass(o, s, iter, &wake_at, &what, &err);
        }
        if (rv == APR_SUCCESS) {
            db_ok(o);
            prune(o, s, iter);
            apr_pool_clear(iter);
            gc_worker_wait(w, wake_at);
            continue;
        }
        if (rv != APR_EAGAIN) {
            db_failed(o, what, err);
        }
        apr_pool_clear(iter);
        gc_worker_pause(w, gc_worker_db_retry_at(w));
    }
    if (o->unrecorded.valid) {
        /* One last try; else the next holder posts that row again. */
        const char *err = NULL;
        gc_store_t *s = NULL;
        if (gc_worker_db(w, &s, &err) != APR_SUCCESS
            || record_unrecorded(o, s, iter, &err) != APR_SUCCESS) {
            gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
                   GCMON_LOGNO(711) "outbox: stopping without recording the %s of outbox id "
                                    "%" APR_INT64_T_FMT " (database unavailable); it may be "
                                    "posted again: %s",
                   outcome_name(o->unrecorded.oc), o->unrecorded.id, err ? err : "unknown error");
        }
    }
    apr_pool_destroy(iter);
}

apr_status_t gc_outbox_start(gc_outbox_t **out, apr_pool_t *p, const gc_outbox_env_t *env)
{
    gc_worker_db_conf_t db;
    gc_worker_t *w;
    gc_outbox_t *o;
    apr_status_t rv;

    *out = NULL;
    if (!env || !env->conf || !env->db_open) {
        return APR_EINVAL;
    }
    if ((rv = gc_worker_create(&w, p, "outbox")) != APR_SUCCESS) {
        return rv;
    }
    o = apr_pcalloc(gc_worker_pool(w), sizeof(*o));
    o->worker = w;
    o->env = *env;
    o->next_prune = apr_time_now() + (env->prune_first > 0 ? env->prune_first : PRUNE_FIRST);
    memset(&db, 0, sizeof(db));
    db.open = env->db_open;
    db.close = env->db_close;
    db.baton = env->baton;
    db.retry_min = DB_RETRY_MIN;
    db.retry_max = DB_RETRY_MAX;
    gc_worker_use_db(w, &db);
    if ((rv = gc_worker_start(w, outbox_main, o, NULL)) != APR_SUCCESS) {
        gc_worker_destroy(w);
        return rv;
    }
    *out = o;
    return APR_SUCCESS;
}

void gc_outbox_wake(gc_outbox_t *o)
{
    if (o) {
        gc_worker_wake(o->worker);
    }
}

void gc_outbox_stop(gc_outbox_t *o)
{
    if (o) {
        gc_worker_stop(o->worker);
        gc_worker_destroy(o->worker);
    }
}
