/* Ingest benchmark (SPEC §8, "Ingest").
 *
 *   bench_ingest <dir> [events] [rate] [seconds]
 *
 * 1. raw: the apr_dbd batched-insert rate on SQLite — prepared INSERTs into
 *    gcmon's own history table (same columns and indexes), 500 per
 *    transaction, WAL + synchronous=NORMAL (the settings gcmon uses).
 * 2. ingest: a local libwebsockets server replays `events` activity
 *    notifications as fast as the socket takes them; gcmon's own path — the
 *    gc_ws client, gc_mon_handle_message (parse, derive, queue) and the writer
 *    thread (judge, history + current rows, group commit) — stores them. Rate =
 *    events / (first message received → last event committed).
 * 3. lag: the same path at `rate` events/s for `seconds`, each event stamped
 *    with its send time; event→queryable = commit time − event time.
 *
 * Output: one "name value" line per figure (bench/run.py formats them). */
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <libwebsockets.h>

#include "gc_monitor_int.h"

#define USERS 5000
#define BATCH 500
#define MSG_MAX 1024

/* ------------------------------------------------------------------ helpers */

static double secs(apr_time_t d)
{
    return (double)d / (double)APR_USEC_PER_SEC;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_ingest: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static void iso_ms(char *buf, apr_size_t n, apr_time_t t)
{
    apr_time_exp_t x;
    apr_time_exp_gmt(&x, t);
    apr_snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", x.tm_year + 1900, x.tm_mon + 1,
                 x.tm_mday, x.tm_hour, x.tm_min, x.tm_sec, x.tm_usec / 1000);
}

static int build_event(char *out, apr_size_t n, int i, apr_time_t at)
{
    static const char *const status[] = { "IDLE", "INTERACTING", "COMMUNICATING",
                                          "NOT_RESPONDING" };
    char ts[32];
    int u = i % USERS;

    iso_ms(ts, sizeof(ts), at);
    return apr_snprintf(
        out, n,
        "{\"topicName\":\"v2.users.00000000-0000-4000-8000-%012d.activity\",\"version\":\"2\","
        "\"eventBody\":{\"id\":\"00000000-0000-4000-8000-%012d\",\"routingStatus\":"
        "{\"status\":\"%s\",\"startTime\":\"%s\"},\"presence\":{\"presenceDefinition\":"
        "{\"id\":\"e08eaf1b-ee47-4fa9-a231-1200e284798f\",\"systemPresence\":\"ON_QUEUE\"},"
        "\"modifiedDate\":\"%s\"},\"activeQueueIds\":[\"3948fe4a-d262-5d71-a7ce-8cd9b0d75930\"]},"
        "\"metadata\":{\"CorrelationId\":\"bench-%d\"}}",
        u, u, status[(i / USERS) % 4], ts, ts, i);
}

/* ------------------------------------------------------------------ raw */

static void must_select(apr_pool_t *p, const apr_dbd_driver_t *d, apr_dbd_t *h, const char *q)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    if (apr_dbd_select(d, p, h, &res, q, 0) != 0) {
        die("pragma failed", q);
    }
    while (apr_dbd_get_row(d, p, res, &row, -1) == 0) {
    }
}

/* The apr_dbd driver: sqlite3, or pgsql when GCMON_BENCH_DRIVER says so. */
static const char *driver(void)
{
    const char *d = getenv("GCMON_BENCH_DRIVER");
    return d && strcmp(d, "pgsql") == 0 ? "pgsql" : "sqlite3";
}

/* A phase's database: <dir>/<label>.db for sqlite3; for pgsql, `dir` is a
 * libpq conninfo without dbname and the database is gcmon_bench_<label>
 * (bench/run.py creates them). */
static const char *db_params(apr_pool_t *p, const char *dir, const char *label)
{
    if (strcmp(driver(), "pgsql") == 0) {
        return apr_pstrcat(p, dir, " dbname=gcmon_bench_", label, NULL);
    }
    return apr_pstrcat(p, dir, "/", label, ".db", NULL);
}

/* Raw: prepared INSERTs of history rows into gcmon's own gcmon_history table
 * (same columns and indexes as the writer fills), 500 per transaction. */
static double bench_raw(apr_pool_t *p, const char *path, int n)
{
    const apr_dbd_driver_t *d;
    apr_dbd_t *h;
    apr_dbd_prepared_t *st;
    gc_store_t *store;
    const char *err = NULL;
    apr_time_t t0;
    int i, nrows;

    if (gc_store_open(p, driver(), path, &store, &err) != APR_SUCCESS
        || gc_store_migrate(store, &err) != APR_SUCCESS) {
        die("cannot create the gcmon schema", err);
    }
    if (apr_dbd_get_driver(p, driver(), &d) != APR_SUCCESS
        || apr_dbd_open_ex(d, p, path, &h, &err) != APR_SUCCESS) {
        die("cannot open the database", err);
    }
    if (strcmp(driver(), "sqlite3") == 0) {
        must_select(p, d, h, "PRAGMA journal_mode=WAL");
        must_select(p, d, h, "PRAGMA synchronous=NORMAL");
    }
    if (apr_dbd_prepare(d, p, h,
                        "INSERT INTO gcmon_history (user_id, user_name, state, "
                        "previous_state, presence, presence_id, routing_status, event_at, "
                        "ingested_at, source) VALUES (%s, %s, %s, %s, %s, %s, %s, %lld, %lld, "
                        "%s)",
                        "ins", &st)
        != 0) {
        die("cannot prepare the raw insert", apr_dbd_error(d, h, 0));
    }
    t0 = apr_time_now();
    for (i = 0; i < n; i += BATCH) {
        apr_dbd_transaction_t *tx = NULL;
        apr_pool_t *bp;
        int k;
        apr_pool_create(&bp, p);
        apr_dbd_transaction_start(d, bp, h, &tx);
        for (k = i; k < i + BATCH && k < n; k++) {
            char uid[48];
            long long at = 1700000000000LL + k, now = 1700000000000LL;
            const void *args[10];
            apr_snprintf(uid, sizeof(uid), "00000000-0000-4000-8000-%012d", k % USERS);
            args[0] = uid;
            args[1] = NULL;
            args[2] = "IDLE";
            args[3] = "INTERACTING";
            args[4] = "OnQueue";
            args[5] = "e08eaf1b-ee47-4fa9-a231-1200e284798f";
            args[6] = "IDLE";
            args[7] = &at;
            args[8] = &now;
            args[9] = "stream";
            if (apr_dbd_pbquery(d, bp, h, &nrows, st, args) != 0) {
                die("raw insert failed", apr_dbd_error(d, h, 0));
            }
        }
        apr_dbd_transaction_end(d, bp, tx);
        apr_pool_destroy(bp);
    }
    apr_dbd_close(d, h);
    return n / secs(apr_time_now() - t0);
}

/* ------------------------------------------------------------------ replay server */

typedef struct {
    int total, rate, sent;
    apr_time_t start;
    struct lws *wsi;
    struct lws_context *ctx;
    lws_sorted_usec_list_t sul;
    volatile int stop;
    int port;
} server_t;

static server_t srv;
static double server_cpu, writer_cpu;

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pace_cb(lws_sorted_usec_list_t *sul)
{
    if (srv.wsi && srv.sent < srv.total) {
        lws_callback_on_writable(srv.wsi);
    }
}

static int srv_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    unsigned char buf[LWS_PRE + MSG_MAX];
    apr_time_t now;
    int n;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        srv.wsi = wsi;
        srv.start = apr_time_now();
        lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        /* As many frames as the socket takes (paced when a rate is set). */
        do {
            if (srv.sent >= srv.total) {
                return 0;
            }
            now = apr_time_now();
            if (srv.rate > 0 && (double)srv.sent >= secs(now - srv.start) * srv.rate) {
                lws_sul_schedule(srv.ctx, 0, &srv.sul, pace_cb, 1000); /* 1 ms */
                return 0;
            }
            n = build_event(
                (char *)buf + LWS_PRE, MSG_MAX, srv.sent,
                srv.rate > 0 ? now : apr_time_from_sec(1700000000) + (apr_time_t)srv.sent * 1000);
            if (lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n) {
                return -1;
            }
            srv.sent++;
        } while (!lws_send_pipe_choked(wsi));
        lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLOSED: srv.wsi = NULL; break;
    default: break;
    }
    return 0;
}

static const struct lws_protocols srv_protocols[] = { { "replay", srv_cb, 0, MSG_MAX, 0, NULL, 0 },
                                                      { NULL, NULL, 0, 0, 0, NULL, 0 } };

static void *APR_THREAD_FUNC server_main(apr_thread_t *t, void *data)
{
    while (!srv.stop) {
        lws_service(srv.ctx, 0);
    }
    server_cpu = thread_cpu();
    return NULL;
}

static void server_start(apr_pool_t *p, int total, int rate, apr_thread_t **thread)
{
    struct lws_context_creation_info info;
    struct lws_vhost *vh;

    memset(&srv, 0, sizeof(srv));
    srv.total = total;
    srv.rate = rate;
    memset(&info, 0, sizeof(info));
    info.port = 0;
    info.iface = "127.0.0.1";
    info.protocols = srv_protocols;
    info.gid = -1;
    info.uid = -1;
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    srv.ctx = lws_create_context(&info);
    if (!srv.ctx || !(vh = lws_create_vhost(srv.ctx, &info))) {
        die("cannot start the replay server", NULL);
    }
    srv.port = lws_get_vhost_listen_port(vh);
    apr_thread_create(thread, NULL, server_main, NULL, p);
}

static void server_stop(apr_thread_t *thread)
{
    apr_status_t rv;
    srv.stop = 1;
    lws_cancel_service(srv.ctx);
    apr_thread_join(&rv, thread);
    lws_context_destroy(srv.ctx);
}

/* ------------------------------------------------------------------ gcmon's path */

typedef struct {
    gc_monitor_t *m;
    mon_sock_t sock;
    int total;
    _Atomic int committed, commits, received;
    _Atomic apr_time_t first_rx, last_rx, last_commit;
    double *lags; /* ms, one per event (lag run) */
    _Atomic int nlags;
    volatile int closed;
    const char *path;
} client_t;

static apr_status_t bench_db_open(void *baton, apr_pool_t *p, gc_store_t **store, void **handle,
                                  const char **err)
{
    client_t *c = baton;
    apr_status_t rv;
    if (getenv("GCMON_BENCH_NODB")) {
        *err = "disabled";
        return APR_EGENERAL;
    }
    rv = gc_store_open(p, driver(), c->path, store, err);
    *handle = *store;
    return rv;
}

static void bench_db_close(void *baton, void *handle)
{
}

static void on_commit(void *baton, const gc_evrec_t *list, int n, apr_time_t at)
{
    client_t *c = baton;
    const gc_evrec_t *r;
    int i;

    for (r = list, i = 0; r && i < n; r = r->next, i++) {
        if (c->lags) {
            int k = atomic_fetch_add(&c->nlags, 1);
            if (k < c->total) {
                c->lags[k] = (double)(at - r->ev.event_at) / 1000.0;
            }
        }
    }
    atomic_fetch_add(&c->committed, n);
    atomic_fetch_add(&c->commits, 1);
    writer_cpu = thread_cpu();
    atomic_store(&c->last_commit, at);
}

static void cl_open(void *baton, gc_ws_conn_t *conn, void *cb)
{
}

static void cl_message(void *baton, gc_ws_conn_t *conn, void *cb, const char *text, apr_size_t len)
{
    client_t *c = baton;
    if (atomic_load(&c->first_rx) == 0) {
        atomic_store(&c->first_rx, apr_time_now());
    }
    if (!getenv("GCMON_BENCH_NOOP")) {
        gc_mon_handle_message(c->m, &c->sock, text, len);
    }
    if ((getenv("GCMON_BENCH_NOOP") || getenv("GCMON_BENCH_NODB"))
        && atomic_load(&c->received) + 1 >= c->total) {
        atomic_store(&c->committed, c->total);
    }
    atomic_fetch_add(&c->received, 1);
    atomic_store(&c->last_rx, apr_time_now());
}

static void cl_close(void *baton, gc_ws_conn_t *conn, void *cb, int error, const char *reason)
{
    client_t *c = baton;
    c->closed = 1;
}

static const gc_ws_callbacks_t client_cbs = { cl_open, cl_message, cl_close };

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Replay `total` events (at `rate`/s, 0 = as fast as possible) through gcmon's
 * path into a fresh database. Returns events/s; fills p50/p99 when lags. */
static double bench_ingest(apr_pool_t *parent, const char *path, int total, int rate, double *p50,
                           double *p99)
{
    gc_monitor_conf_t conf;
    gc_conn_conf_t conn;
    gc_monitor_env_t env;
    client_t c;
    apr_thread_t *st;
    apr_pool_t *p;
    gc_store_t *store;
    gc_ws_t *ws;
    const char *err = NULL;
    apr_time_t deadline;
    double rate_out;
    int i;

    apr_pool_create(&p, parent);
    memset(&c, 0, sizeof(c));
    c.total = total;
    c.path = path;
    atomic_init(&c.committed, 0);
    atomic_init(&c.commits, 0);
    atomic_init(&c.received, 0);
    atomic_init(&c.last_rx, 0);
    atomic_init(&c.first_rx, 0);
    atomic_init(&c.last_commit, 0);
    atomic_init(&c.nlags, 0);
    if (p50) {
        c.lags = calloc((size_t)total, sizeof(double));
    }
    if (gc_store_open(p, driver(), path, &store, &err) != APR_SUCCESS
        || gc_store_migrate(store, &err) != APR_SUCCESS) {
        die("cannot create the gcmon schema", err);
    }
    memset(&conf, 0, sizeof(conf));
    conf.enabled = 1;
    conf.queues = apr_array_make(p, 1, sizeof(const char *));
    conf.users = apr_array_make(p, 1, sizeof(const char *));
    gc_monitor_conf_defaults(&conf);
    conf.retention = 0;
    memset(&conn, 0, sizeof(conn));
    conn.api_url = "http://127.0.0.1:1";
    conn.login_url = conn.api_url;
    memset(&env, 0, sizeof(env));
    env.conf = &conf;
    env.conn = &conn;
    env.host = "bench";
    env.baton = &c;
    env.db_open = bench_db_open;
    env.db_close = bench_db_close;
    env.queue_max = total + 1;
    c.m = gc_monitor_create(p, &env);
    c.m->msg = NULL;
    apr_pool_create(&c.m->msg, p);
    apr_pool_create(&c.m->iter, p);
    /* Every replayed agent is monitored (events of others are ignored). */
    c.m->term = p;
    gc_mon_users_init(c.m);
    for (i = 0; i < USERS; i++) {
        gc_mon_users_add_assigned(c.m, apr_psprintf(p, "00000000-0000-4000-8000-%012d", i), -1);
    }
    if (gc_writer_start(&c.m->writer, p, &c.m->env, NULL, on_commit, &c) != APR_SUCCESS) {
        die("cannot start the writer", NULL);
    }
    server_start(p, total, rate, &st);
    ws = gc_ws_create(p, NULL, 256 * 1024, &client_cbs, &c);
    if (!ws
        || !gc_ws_connect(ws, apr_psprintf(p, "ws://127.0.0.1:%d/channels/bench", srv.port),
                          NULL)) {
        die("cannot connect to the replay server", NULL);
    }
    deadline = apr_time_now() + apr_time_from_sec(600);
    while (atomic_load(&c.committed) < total && !c.closed && apr_time_now() < deadline) {
        gc_ws_service(ws, 50);
    }
    gc_ws_destroy(ws);
    server_stop(st);
    gc_writer_stop(c.m->writer, apr_time_from_sec(30));
    if (atomic_load(&c.committed) < total) {
        die("not every event was stored", NULL);
    }
    rate_out = total / secs(atomic_load(&c.last_commit) - atomic_load(&c.first_rx));
    if (getenv("GCMON_BENCH_VERBOSE")) {
        fprintf(stderr, "cpu: client %.2f s, server %.2f s, writer %.2f s\n", thread_cpu(),
                server_cpu, writer_cpu);
        fprintf(stderr, "%s: received %d in %.3f s, %d commits (%.0f events each)\n", path,
                atomic_load(&c.received), secs(atomic_load(&c.last_rx) - atomic_load(&c.first_rx)),
                atomic_load(&c.commits), (double)total / atomic_load(&c.commits));
    }
    if (c.lags) {
        int n = atomic_load(&c.nlags);
        qsort(c.lags, (size_t)n, sizeof(double), cmp_double);
        *p50 = c.lags[n / 2];
        *p99 = c.lags[(int)((double)n * 0.99)];
        free(c.lags);
    }
    apr_pool_destroy(p);
    return rate_out;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    int events = argc > 2 ? atoi(argv[2]) : 200000;
    int rate = argc > 3 ? atoi(argv[3]) : 5000;
    int seconds = argc > 4 ? atoi(argv[4]) : 10;
    double raw, ingest, p50 = 0, p99 = 0;

    apr_initialize();
    apr_pool_create(&p, NULL);
    apr_dbd_init(p);
    gc_ws_log_init(0);
    raw = bench_raw(p, db_params(p, dir, "raw"), events);
    ingest = bench_ingest(p, db_params(p, dir, "ingest"), events, 0, NULL, NULL);
    bench_ingest(p, db_params(p, dir, "lag"), rate * seconds, rate, &p50, &p99);
    printf("raw_insert_rows_per_s %.0f\n", raw);
    printf("ingest_events_per_s %.0f\n", ingest);
    printf("ingest_ratio %.3f\n", ingest / raw);
    printf("lag_rate_events_per_s %d\n", rate);
    printf("lag_p50_ms %.1f\n", p50);
    printf("lag_p99_ms %.1f\n", p99);
    apr_pool_destroy(p);
    apr_terminate();
    return 0;
}
