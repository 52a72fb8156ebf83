/* The stream monitor's thread: elect one holder per database through a lease
 * row, and while holder run the term — notification channels, WebSockets,
 * resync, membership — on one thread (lws service loop plus short blocking
 * REST calls, one per loop turn), with the writer thread behind a queue.
 * With GcmonStream Off but an outbound webhook configured the holder is a
 * background holder: same lease and lifecycle, only the outbox thread runs.
 * The thread is a gc_worker (its stop, waits, database connection, backoff
 * and random numbers). See docs/stream.md for the behaviour an operator sees. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "gc_monitor_int.h"
#include "gc_store_retention.h"
#include "gc_strategy_job.h"
#include "gc_stream_share.h"
#include "gc_strategy_admin.h"
#include "gc_trace_calls.h"
#include "gc_webhook.h"

#define MAX_MESSAGE (256 * 1024) /* one notification; real ones are ~1 KB */
#define FAST_POLL (250 * 1000)   /* standby: look at the status block */
#define DB_RETRY_MIN apr_time_from_sec(2)
/* A monitor without its database retries at most 10 s apart: the stream has a
 * holder again within 10 s of the database coming back. */
#define DB_RETRY_MAX apr_time_from_sec(10)
/* What the writer may still store once stopped. A locked sqlite3 database
 * answers a try after up to 1.5 s (apr_dbd_sqlite3's own retries), so a stop
 * ends within httpd's first patience (it warns of a child not exited after
 * about 3 s). */
#define WRITER_DRAIN apr_time_from_sec(1)
#define SERVICE_MS 100
#define LONG_CALL (500 * 1000)
#define BACKGROUND_NAP (100 * 1000) /* background holder: one loop turn */

/* ------------------------------------------------------------------ helpers */

int gc_mon_running(gc_monitor_t *m)
{
    if (gc_worker_stopping(m->worker)) {
        return 0;
    }
    return !(m->env.cancelled && m->env.cancelled(m->env.baton));
}

int gc_mon_cancel(void *baton)
{
    return !gc_mon_running(baton);
}

static int may_lead(gc_monitor_t *m)
{
    return gc_mon_running(m) && (!m->env.may_lead || m->env.may_lead(m->env.baton));
}

void gc_mon_channel_label(gc_monitor_t *m, const char *channel_id, char out[GC_CHANNEL_LABEL_SIZE])
{
    gc_channel_label(out, m->env.conn ? m->env.conn->client_secret : NULL, channel_id);
}

/* Replace in buf (size n) every occurrence of a channel id by its label
 * (truncating the end if the text grows past n). */
static void hide_id(char *buf, apr_size_t n, const mon_ident_t *d)
{
    apr_size_t idlen, lablen = strlen(d->label);
    char *from = buf, *at;

    if (!d->id || !*d->id) {
        return;
    }
    idlen = strlen(d->id);
    while ((at = strstr(from, d->id)) != NULL) {
        apr_size_t pos = (apr_size_t)(at - buf), tail = strlen(at + idlen);
        if (pos + lablen >= n) {
            *at = '\0';
            return;
        }
        if (pos + lablen + tail >= n) {
            tail = n - 1 - pos - lablen;
        }
        memmove(at + lablen, at + idlen, tail);
        memcpy(at, d->label, lablen);
        at[lablen + tail] = '\0';
        from = at + lablen;
    }
}

/* Genesys's messages may quote a channel id: show the labels instead. */
static void hide_channel_ids(gc_monitor_t *m, char *buf, apr_size_t n)
{
    int i;

    for (i = 0; i < GC_MAX_CHANNELS; i++) {
        hide_id(buf, n, &m->ch[i].cur);
        hide_id(buf, n, &m->ch[i].next);
        hide_id(buf, n, &m->ch[i].old);
    }
}

void gc_mon_error(gc_monitor_t *m, int level, const char *fmt, ...)
{
    char buf[1024];
    const char *text = buf;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    hide_channel_ids(m, buf, sizeof(buf));
    gc_log(GC_LOG_MARK, level, 0, "%s", buf);
    if (m->env.status && level <= GC_LOG_WARNING) {
        /* Keep the tag out of the status text. */
        if (strncmp(text, "GCM", 3) == 0 && strstr(text, ": ")) {
            text = strstr(text, ": ") + 2;
        }
        gc_stream_status_error(m->env.status, apr_time_now(), text);
    }
}

void gc_mon_metric_inc(gc_monitor_t *m, gc_metric_id_e id, const char *label)
{
    if (m->env.metrics) {
        gc_metrics_inc(m->env.metrics, id, label, NULL);
    }
}

apr_status_t gc_mon_call(gc_monitor_t *m, const char *op, const char *method, const char *path,
                         const char *channel_id, const char *body, gc_response_t **resp,
                         gc_error_t **err)
{
    char label[GC_CHANNEL_LABEL_SIZE];
    gc_request_t req;

    memset(&req, 0, sizeof(req));
    req.op = op;
    req.method = method;
    req.path = path;
    req.body = body;
    if (channel_id) {
        gc_mon_channel_label(m, channel_id, label);
        req.secret = channel_id;
        req.secret_label = label;
    }
    *resp = NULL;
    *err = NULL;
    return gc_upstream_call(m->up, m->iter, &req, resp, err);
}

apr_interval_time_t gc_mon_retry_delay(gc_monitor_t *m, int failures, const gc_error_t *err)
{
    return gc_worker_backoff(m->worker, m->conf->backoff_min, m->conf->backoff_max, failures,
                             err ? err->retry_after : 0);
}

int gc_mon_power_of_two(int n)
{
    return n > 0 && (n & (n - 1)) == 0;
}

gc_monitor_mode_e gc_monitor_mode(const gc_monitor_conf_t *c)
{
    if (!c) {
        return GC_MONITOR_OFF;
    }
    if (c->enabled > 0) {
        return GC_MONITOR_STREAM;
    }
    return gc_webhook_any(&c->webhooks) || c->jobs ? GC_MONITOR_BACKGROUND : GC_MONITOR_OFF;
}

/* Wait up to d; a stop ends it at once. */
static void nap(gc_monitor_t *m, apr_interval_time_t d)
{
    gc_worker_wait(m->worker, apr_time_now() + d);
}

/* ------------------------------------------------------------------ database */

/* The worker drops the connection and backs off; logged at the first
 * failure, then at most once a minute. */
static void db_failed(gc_monitor_t *m, const char *what, const char *err)
{
    if (gc_worker_db_failed(m->worker)) {
        gc_mon_error(
            m, GC_LOG_ERR,
            GCMON_LOGNO(2100) "stream monitor: cannot %s the "
                              "database: %s (attempt %d; check DBDriver/DBDParams and that the "
                              "database directory is writable by the httpd user)",
            what, err ? err : "unknown error", gc_worker_db_failures(m->worker));
    }
}

/* The monitor thread's own connection, kept for the life of the thread (so
 * statements are prepared once per connection), the schema made current
 * first. 0 while the database is unavailable (backing off after a failure). */
int gc_mon_db_ready(gc_monitor_t *m)
{
    const char *err = NULL;
    gc_store_t *s = NULL;
    apr_status_t rv = gc_worker_db(m->worker, &s, &err);

    if (rv == APR_EAGAIN) {
        return 0;
    }
    if (rv != APR_SUCCESS) {
        db_failed(m, "open", err);
        return 0;
    }
    if (!m->migrated) {
        if (gc_store_migrate(s, &err) != APR_SUCCESS) {
            db_failed(m, "create or upgrade the schema of", err);
            return 0;
        }
        m->migrated = 1;
    }
    if (gc_worker_db_ok(m->worker)) {
        gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
               GCMON_LOGNO(2101) "stream monitor: database available again");
    }
    return 1;
}

/* ------------------------------------------------------------------ lease */

/* Holding, on PostgreSQL: the status document to share with the standbys of
 * other hosts through the lease row (gc_stream_share.h). SQLite has one host,
 * whose children share the status block already. */
static const char *share_doc(gc_monitor_t *m)
{
    if (!atomic_load(&m->holder)) {
        return NULL;
    }
    m->shared_connected = m->snap.connected;
    if (strcmp(gc_store_dialect(gc_worker_store(m->worker)), "pgsql") != 0) {
        return NULL;
    }
    return gc_stream_share_json(m->iter, &m->snap);
}

/* A standby: when another node holds the stream, show its shared status here. */
static void mirror(gc_monitor_t *m, const char *current, const char *doc)
{
    gc_stream_snapshot_t snap;

    if (!m->env.status || !current || gc_stream_share_same_node(current, m->env.host)) {
        return;
    }
    if (gc_stream_share_parse(doc, current, &snap)) {
        gc_stream_status_mirror(m->env.status, &snap);
        return;
    }
    /* Not shared yet (a new holder renews within GC_LEASE_RENEW): stop
     * showing the one mirrored before, which is no longer the holder. */
    gc_stream_status_read(m->env.status, &snap);
    if (snap.has_holder && strcmp(snap.holder_id, current) != 0
        && !gc_stream_share_same_node(snap.holder_id, m->env.host)) {
        gc_stream_status_clear_holder(m->env.status, snap.holder_id);
        gc_stream_status_note_lease(m->env.status, current);
    }
}

/* Take or renew. 1 held, 0 not held, -1 error (connection dropped). */
static int lease_take(gc_monitor_t *m, apr_time_t now)
{
    const char *current = NULL, *doc = NULL;
    int held = 0;

    if (!gc_mon_db_ready(m)) {
        return -1;
    }
    if (gc_store_lease_state(gc_worker_store(m->worker), GC_LEASE_NAME, m->holder_id, now,
                             m->env.lease_ttl, share_doc(m), &held, &current, &doc, m->iter)
        != APR_SUCCESS) {
        db_failed(m, "take or renew the stream lease in", "the lease query failed");
        return -1;
    }
    if (m->env.status && current) {
        gc_stream_status_note_lease(m->env.status, current);
    }
    if (!held && current) {
        gc_log(GC_LOG_MARK, GC_LOG_TRACE1, 0, "stream lease held by %s", current);
        mirror(m, current, doc);
    }
    return held;
}

/* While holder: renew when due. 0 when this process must step down. */
static int lease_keep(gc_monitor_t *m, apr_time_t now)
{
    int held;

    if (now < m->lease_next && !m->lease_check) {
        return 1;
    }
    held = lease_take(m, now);
    m->lease_check = 0;
    if (held == 1) {
        m->lease_renewed_at = now;
        m->lease_next = now + m->env.lease_renew;
        return 1;
    }
    if (held == 0) {
        gc_mon_error(m, GC_LOG_WARNING,
                     GCMON_LOGNO(2102) "lost the stream lease to another "
                                       "holder; stepping down");
        return 0;
    }
    m->lease_next = now + apr_time_from_sec(1);
    if (now - m->lease_renewed_at >= m->env.lease_ttl - m->env.lease_renew) {
        gc_mon_error(m, GC_LOG_ERR,
                     GCMON_LOGNO(2103) "could not renew the stream lease for "
                                       "%" APR_INT64_T_FMT " s; stepping down before it expires",
                     (apr_int64_t)apr_time_sec(now - m->lease_renewed_at));
        return 0;
    }
    return 1;
}

static void lease_release(gc_monitor_t *m)
{
    if (gc_mon_db_ready(m)
        && gc_store_lease_release(gc_worker_store(m->worker), GC_LEASE_NAME, m->holder_id)
               != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2104) "could not release the stream lease; another process "
                                 "takes over when it expires");
        gc_worker_db_close(m->worker);
    }
}

/* ------------------------------------------------------------------ term */

static void ws_destroy(gc_monitor_t *m)
{
    gc_ws_t *ws = atomic_exchange(&m->ws, NULL);

    if (ws) {
        gc_ws_destroy(ws);
    }
    gc_mon_socks_free_all(m);
}

static const char *holder_loop(gc_monitor_t *m)
{
    for (;;) {
        apr_time_t now = apr_time_now(), t0;
        int did;
        gc_ws_t *ws;

        apr_pool_clear(m->iter);
        if (!gc_mon_running(m)) {
            return "stopping";
        }
        if (!may_lead(m)) {
            return "a new configuration generation runs";
        }
        if (!lease_keep(m, now)) {
            return "lease lost";
        }
        gc_mon_routes_tick(m, now);
        if (m->background) {
            /* Outbox only: the delivery thread works on its own; this thread
             * keeps the lease and the status block and naps in between. */
            gc_mon_status_tick(m, now, 0);
            nap(m, BACKGROUND_NAP);
            continue;
        }
        gc_mon_channels_connect(m, now);
        gc_mon_watchdog(m, now);
        t0 = apr_time_now();
        did = gc_mon_channels_step(m, now) || gc_mon_resync_step(m, now)
              || gc_mon_members_step(m, now);
        now = apr_time_now();
        if (did && now - t0 > LONG_CALL) {
            m->resumed_at = now;
        }
        gc_mon_status_tick(m, now, 0);
        ws = atomic_load(&m->ws);
        gc_ws_service(ws, did ? 0 : SERVICE_MS);
    }
}

#define RETAIN_CHUNK 1000
#define RETAIN_ROUNDS 50 /* at most 50,000 rows of a kind an hour */

/* Hourly, on the outbox thread: delete cleared alerts older than
 * GcmonRetention and audit rows, distributions and ended jobs older than
 * GcmonAuditRetention (docs/operations.md). A failure only logs; the rows
 * stay for the next round. */
static void housekeeping(void *baton, gc_store_t *s, apr_pool_t *p, apr_time_t now)
{
    gc_monitor_t *m = baton;
    int kind;

    for (kind = 0; kind < GC_RETAIN__COUNT; kind++) {
        apr_interval_time_t keep =
            kind == GC_RETAIN_ALERTS ? m->conf->retention : m->conf->audit_retention;
        const char *err = NULL;
        int round, deleted = 0, total = 0;

        for (round = 0; keep > 0 && round < RETAIN_ROUNDS; round++) {
            if (gc_store_retain_prune(s, p, kind, now - keep, RETAIN_CHUNK, &deleted, &err)
                != APR_SUCCESS) {
                gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
                       GCMON_LOGNO(2141) "retention: deleting %s failed (tried again in an "
                                         "hour): %s",
                       gc_store_retain_name(kind), err ? err : "database error");
                break;
            }
            total += deleted;
            if (deleted < RETAIN_CHUNK) {
                break;
            }
        }
        if (total > 0) {
            gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
                   GCMON_LOGNO(2140) "retention: deleted %d %s older than the retention", total,
                   gc_store_retain_name(kind));
        }
    }
}

/* The holder delivers the outbox (idle alerts, every webhook); in background
 * mode it is all the holder does. */
static void outbox_start(gc_monitor_t *m)
{
    gc_outbox_env_t oenv;

    memset(&oenv, 0, sizeof(oenv));
    oenv.conf = &m->conf->webhooks;
    oenv.metrics = m->env.metrics;
    oenv.baton = m->env.baton;
    oenv.db_open = m->env.db_open;
    oenv.db_close = m->env.db_close;
    oenv.retention = m->conf->retention;
    oenv.housekeeping = housekeeping;
    oenv.housekeeping_baton = m;
    if (gc_outbox_start(&m->outbox, m->term, &oenv) != APR_SUCCESS) {
        m->outbox = NULL;
        gc_mon_error(m, GC_LOG_ERR,
                     GCMON_LOGNO(2113) "cannot start the outbox thread; "
                                       "webhook deliveries wait for the next holder");
    }
}

/* One step of a trace job, through the holder's upstream client (its
 * cancel ends a call in flight when the holder stops). */
static void trace_step(void *baton, apr_pool_t *p, gc_worker_t *w, const gc_job_t *job,
                       gc_job_step_t *out)
{
    gc_monitor_t *m = baton;
    gc_trace_ops_t ops =
        gc_trace_calls_ops(p, m->up, gc_webhook_url(&m->conf->webhooks, GC_TRACE_KIND) != NULL);

    gc_trace_job_step(p, &ops, job, gc_worker_rand(w), apr_time_now(), out);
}

/* One step of a strategy activation, through the holder's upstream client
 * and the job thread's own database connection (the runner's). */
static void strategy_step(void *baton, apr_pool_t *p, gc_worker_t *w, const gc_job_t *job,
                          gc_job_step_t *out)
{
    gc_monitor_t *m = baton;
    gc_store_t *s = gc_worker_store(w);
    gc_strategy_ops_t up;
    gc_strategy_store_ops_t store;
    gc_strategy_job_env_t env;

    if (!s) {
        memset(out, 0, sizeof(*out));
        out->outcome = GC_JOB_GIVE_BACK;
        return;
    }
    up = gc_strategy_calls_ops(p, m->up);
    store = gc_strategy_job_store_ops(s);
    memset(&env, 0, sizeof(env));
    env.up = &up;
    env.store = &store;
    env.webhook = gc_webhook_url(&m->conf->webhooks, GC_TARGET_WFM) != NULL;
    gc_strategy_job_step(p, &env, job, gc_worker_rand(w), apr_time_now(), out);
}

/* The job thread runs the kinds that need the upstream client: a streaming
 * holder, or a background one where jobs can be queued (conf->jobs). */
static void jobs_start(gc_monitor_t *m)
{
    gc_jobs_env_t jenv;

    m->job_kinds[0].kind = GC_TRACE_KIND;
    m->job_kinds[0].step = trace_step;
    m->job_kinds[0].baton = m;
    m->job_kinds[1].kind = GC_STRATEGY_JOB_KIND;
    m->job_kinds[1].step = strategy_step;
    m->job_kinds[1].baton = m;
    memset(&jenv, 0, sizeof(jenv));
    jenv.kinds = m->job_kinds;
    jenv.nkinds = sizeof(m->job_kinds) / sizeof(m->job_kinds[0]);
    jenv.owner = m->holder_id;
    jenv.db_open = m->env.db_open;
    jenv.db_close = m->env.db_close;
    jenv.db_baton = m->env.baton;
    if (gc_jobs_start(&m->jobs, m->term, &jenv) != APR_SUCCESS) {
        m->jobs = NULL;
        gc_mon_error(m, GC_LOG_ERR,
                     GCMON_LOGNO(2118) "cannot start the job thread; traces and strategy "
                                       "activations wait for the next holder");
    }
}

/* A scheduled rebalance (GcmonStrategyRebalance): the stored strategy's own
 * rebalance, as gcmon, over the holder's upstream client. */
static apr_status_t strategy_rebalance(void *baton, apr_pool_t *p, gc_store_t *s,
                                       const gc_strategy_rec_t *r, const char **err)
{
    gc_monitor_t *m = baton;
    gc_result_t *res = gc_result_make(p);

    gc_strategy_admin_rebalance(p, s, &m->strategy_ops, r, GC_STRATEGY_WATCH_ACTOR,
                                GC_STRATEGY_WATCH_ACTOR_SOURCE, apr_time_now(),
                                gc_webhook_url(&m->conf->webhooks, GC_TARGET_WFM) != NULL, res);
    if (!gc_result_failed(res)) {
        return APR_SUCCESS;
    }
    *err = apr_psprintf(p, "%d %s%s%s", res->status, res->slug ? res->slug : "error",
                        res->detail ? ": " : "", res->detail ? res->detail : "");
    return APR_EGENERAL;
}

/* The strategies' observations and scheduled rebalance (a thread of their
 * own: an observation query may wait for the rate budget, which must not
 * hold up the WebSockets of this thread). */
static void strategies_start(gc_monitor_t *m)
{
    gc_strategy_watch_env_t senv;

    m->strategy_ops = gc_strategy_calls_ops(m->term, m->up);
    memset(&senv, 0, sizeof(senv));
    senv.ops = &m->strategy_ops;
    senv.rebalance_every = m->conf->strategy_rebalance;
    senv.rebalance = strategy_rebalance;
    senv.rebalance_baton = m;
    senv.db_open = m->env.db_open;
    senv.db_close = m->env.db_close;
    senv.db_baton = m->env.baton;
    if (gc_strategy_watch_start(&m->watch, m->term, &senv) != APR_SUCCESS) {
        m->watch = NULL;
        gc_mon_error(m, GC_LOG_ERR,
                     GCMON_LOGNO(2136) "cannot start the strategies thread; the route tables "
                                       "keep their last observations until the next holder");
    }
}

int gc_mon_workers_start(gc_monitor_t *m)
{
    outbox_start(m);
    if (m->up) {
        jobs_start(m);
        strategies_start(m);
    }
    if (m->background) {
        return m->outbox != NULL;
    }
    /* The writer wakes the outbox: it starts after it and stops before it. */
    if (gc_writer_start(&m->writer, m->term, &m->env, m->outbox, NULL, NULL) != APR_SUCCESS) {
        m->writer = NULL;
        gc_mon_error(m, GC_LOG_ERR, GCMON_LOGNO(2105) "cannot start the writer thread");
        return 0;
    }
    return 1;
}

int gc_mon_workers_stop(gc_monitor_t *m)
{
    int not_stored = 0;

    if (m->watch) {
        gc_strategy_watch_stop(m->watch);
        m->watch = NULL;
    }
    if (m->jobs) {
        gc_jobs_stop(m->jobs);
        m->jobs = NULL;
    }
    if (m->writer) {
        not_stored = gc_writer_stop(m->writer, WRITER_DRAIN);
        m->writer = NULL;
    }
    if (m->outbox) {
        gc_outbox_stop(m->outbox);
        m->outbox = NULL;
    }
    return not_stored;
}

static int term_start(gc_monitor_t *m, apr_time_t now)
{
    gc_ws_t *ws;
    int i;

    memset(m->ch, 0, sizeof(m->ch));
    for (i = 0; i < GC_MAX_CHANNELS; i++) {
        m->ch[i].idx = i;
    }
    m->socks = NULL;
    m->resync_pending = 0;
    m->resync_next = 0;
    m->resync_failures = 0;
    m->unassigned = 0;
    memset(&m->members, 0, sizeof(m->members));
    m->lease_renewed_at = now;
    m->lease_next = now + m->env.lease_renew;
    m->lease_check = 0;
    m->resumed_at = 0;
    apr_pool_create(&m->term, m->pool);
    apr_pool_create(&m->msg, m->term);
    gc_mon_status_begin(m, now);
    if (!gc_mon_workers_start(m)) {
        return 0;
    }
    if (m->background) {
        return 1; /* outbox only: no WebSockets, channels or members */
    }
    ws = gc_ws_create(m->term, m->env.conn->ca_file, MAX_MESSAGE, &gc_mon_ws_callbacks, m);
    if (!ws) {
        gc_mon_error(m, GC_LOG_ERR,
                     GCMON_LOGNO(2111) "cannot create the WebSocket client "
                                       "context");
        return 0;
    }
    atomic_store(&m->ws, ws);
    gc_mon_users_init(m);
    gc_mon_channels_reuse(m, now);
    for (i = 0; i < m->conf->users->nelts; i++) {
        gc_mon_users_add_assigned(m, APR_ARRAY_IDX(m->conf->users, i, const char *), -1);
    }
    gc_mon_users_assign(m);
    m->members.due = now;
    return 1;
}

static void term_end(gc_monitor_t *m, int release)
{
    m->closing = 1;
    ws_destroy(m);
    m->closing = 0;
    if (gc_mon_workers_stop(m) > 0 && release) {
        /* The writer found the database unavailable to the end: releasing
         * would wait on it too, past httpd's patience with a stopping child. */
        gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
               GCMON_LOGNO(2119) "not releasing the stream lease (the database is "
                                 "unavailable); another process takes over when it expires");
        release = 0;
    }
    if (release) {
        lease_release(m);
    }
    gc_mon_status_end(m);
    atomic_store(&m->holder, 0);
    apr_pool_destroy(m->term);
    m->term = NULL;
    m->msg = NULL;
    m->users_pool = NULL;
    m->users = NULL;
    memset(m->ch, 0, sizeof(m->ch));
}

static void holder_term(gc_monitor_t *m, apr_time_t now)
{
    const char *why = "could not start";
    int release;

    atomic_store(&m->holder, 1);
    if (m->background) {
        gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
               GCMON_LOGNO(2114) "this process (%s) is now the background holder (outbox%s; "
                                 "GcmonStream Off)",
               m->holder_id, m->conf->jobs ? " and jobs" : " only");
    }
    else {
        gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
               GCMON_LOGNO(2106) "this process (%s) is now the stream holder", m->holder_id);
    }
    if (term_start(m, now)) {
        why = holder_loop(m);
    }
    /* Release on an orderly end, so the next holder (the new generation after a
     * graceful restart) takes over at once instead of after the lease TTL. */
    release = strcmp(why, "lease lost") != 0;
    term_end(m, release);
    if (m->background) {
        gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
               GCMON_LOGNO(2115) "this process (%s) stopped being the background holder: %s",
               m->holder_id, why);
    }
    else {
        gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
               GCMON_LOGNO(2107) "this process (%s) stopped holding the stream: %s", m->holder_id,
               why);
    }
    if (strcmp(why, "could not start") == 0) {
        nap(m, apr_time_from_sec(5));
    }
}

/* ------------------------------------------------------------------ API */

/* The monitor thread's own database connection. */
static void use_db(gc_monitor_t *m)
{
    gc_worker_db_conf_t db;

    memset(&db, 0, sizeof(db));
    db.open = m->env.db_open;
    db.close = m->env.db_close;
    db.baton = m->env.baton;
    db.retry_min = DB_RETRY_MIN;
    db.retry_max = DB_RETRY_MAX;
    db.opened = gc_mon_board_publisher;
    db.opened_baton = m->env.status;
    gc_worker_use_db(m->worker, &db);
}

gc_monitor_t *gc_monitor_create(apr_pool_t *pool, const gc_monitor_env_t *env)
{
    gc_monitor_t *m = apr_pcalloc(pool, sizeof(*m));
    unsigned char rnd[4];
    char host[GC_STATUS_HOST_MAX];

    if (gc_worker_create(&m->worker, pool, "monitor") != APR_SUCCESS) {
        return NULL;
    }
    m->pool = pool;
    m->env = *env;
    m->conf = env->conf;
    m->background = gc_monitor_mode(env->conf) != GC_MONITOR_STREAM;
    if (m->env.lease_ttl <= 0) {
        m->env.lease_ttl = GC_LEASE_TTL;
    }
    if (m->env.lease_renew <= 0) {
        m->env.lease_renew = GC_LEASE_RENEW;
    }
    if (m->env.lease_poll <= 0) {
        m->env.lease_poll = GC_LEASE_POLL;
    }
    if (m->env.queue_max <= 0) {
        m->env.queue_max = m->conf->event_queue > 0 ? m->conf->event_queue : GC_WRITER_QUEUE_MAX;
    }
    if (m->env.batch_max <= 0) {
        m->env.batch_max = GC_WRITER_BATCH_MAX;
    }
    use_db(m);
    if (apr_generate_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
        apr_uint64_t r = (apr_uint64_t)(gc_worker_rand(m->worker) * 4294967296.0);
        memcpy(rnd, &r, sizeof(rnd));
    }
    m->pid = (int)getpid();
    gc_status_copy_line(host, sizeof(host), env->host && *env->host ? env->host : "localhost");
    for (char *c = host; *c; c++) {
        if (*c == ':') {
            *c = '_';
        }
    }
    apr_snprintf(m->holder_id, sizeof(m->holder_id), "%s:%d:%02x%02x%02x%02x", host, m->pid, rnd[0],
                 rnd[1], rnd[2], rnd[3]);
    atomic_init(&m->holder, 0);
    atomic_init(&m->ws, NULL);
    return m;
}

void gc_monitor_stop(gc_monitor_t *m)
{
    /* Async-signal-safe (prefork calls child_stopping from a signal handler):
     * it ends the thread's waits at once; the holder's WebSocket loop turns
     * every 100 ms, and upstream calls check it through their cancel hook. */
    gc_worker_stop(m->worker);
}

int gc_monitor_is_holder(gc_monitor_t *m)
{
    return atomic_load(&m->holder);
}

const char *gc_monitor_holder_id(gc_monitor_t *m)
{
    return m->holder_id;
}

/* Standby: should we try for the lease now? Every lease_poll, and at once
 * (checked every 250 ms, without touching the database) when the status block
 * shows the stream vacant: released by an orderly holder, or its process on
 * this host is gone — then the dead holder's lease is released first. */
static int standby_due(gc_monitor_t *m, apr_time_t now, apr_time_t next_poll, char *dead,
                       apr_size_t n)
{
    dead[0] = '\0';
    if (m->env.status && gc_stream_status_vacant(m->env.status, m->env.host, dead, n)) {
        return 1;
    }
    return now >= next_poll;
}

static void monitor_main(gc_worker_t *w, void *baton)
{
    gc_monitor_t *m = baton;
    apr_time_t next_poll = 0;
    char dead[GC_STATUS_ID_MAX];

    apr_pool_create(&m->iter, m->pool);
    if (!m->background || m->conf->jobs) {
        m->up = gc_upstream_create(m->pool, m->env.conn, m->env.budget, m->env.metrics);
        if (!m->up) {
            gc_mon_error(m, GC_LOG_ERR,
                         GCMON_LOGNO(2108) "stream monitor: cannot create the "
                                           "upstream client");
            return;
        }
        gc_upstream_set_cancel(m->up, gc_mon_cancel, m);
    }
    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0, GCMON_LOGNO(2109) "stream monitor started as %s%s",
           m->holder_id,
           !m->background  ? ""
           : m->conf->jobs ? " (background: outbox and jobs)"
                           : " (background: outbox only)");
    while (gc_mon_running(m)) {
        apr_time_t now = apr_time_now();
        apr_pool_clear(m->iter);
        if (may_lead(m)) {
            gc_mon_routes_tick(m, now);
            apr_pool_clear(m->iter);
        }
        if (may_lead(m) && standby_due(m, now, next_poll, dead, sizeof(dead))) {
            if (dead[0] && gc_mon_db_ready(m)) {
                gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
                       GCMON_LOGNO(2112) "the stream holder %s is gone; taking over", dead);
                gc_store_lease_release(gc_worker_store(w), GC_LEASE_NAME, dead);
                gc_stream_status_clear_holder(m->env.status, dead);
            }
            next_poll = now + m->env.lease_poll;
            if (lease_take(m, now) == 1) {
                holder_term(m, now);
                next_poll = 0;
                continue;
            }
        }
        nap(m, FAST_POLL);
    }
    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0, GCMON_LOGNO(2110) "stream monitor %s stopped",
           m->holder_id);
}

void gc_monitor_run(gc_monitor_t *m)
{
    gc_worker_run(m->worker, monitor_main, m);
}

apr_status_t gc_monitor_start(gc_monitor_t *m, gc_thread_create_fn *create)
{
    return gc_worker_start(m->worker, monitor_main, m, create);
}

apr_status_t gc_monitor_join(gc_monitor_t *m, apr_interval_time_t patience)
{
    return gc_worker_join(m->worker, patience);
}
