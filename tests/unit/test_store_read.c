/* Read queries (shared/gc_store_read.c, gc_store_list.c) against real databases: SQLite in a
 * temporary directory and, when PostgreSQL 15 is installed, a throwaway
 * cluster (unix socket only) started once for these cases. The schema is
 * gc_store_migrate's; rows are written with plain SQL. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "gc_jsonw.h"
#include "gc_query.h"
#include "gc_state.h"
#include "gc_store.h"
#include "gc_store_read.h"
#include "gc_time.h"
#include "unit.h"

#ifndef PG_BIN
#define PG_BIN "/usr/lib/postgresql/15/bin"
#endif
#define BASE_MS 1767225600000LL /* 2026-01-01T00:00:00Z */

static apr_pool_t *pool;
static const char *drv_name;
static char params[512];
static char sqlite_dir[256];
static char pg_dir[256], pg_as[64];
static int pg_port, pg_up;

static const apr_dbd_driver_t *drv;
static apr_dbd_t *conn;  /* the reading store's connection */
static apr_dbd_t *other; /* a writer's connection */
static gc_store_t *rd;   /* the store on conn, reading */
static char scopes[256];
static unsigned nscope;

/* ---------------------------------------------------------------- fixtures */

static int run_cmd(const char *cmd)
{
    int st = system(cmd);
    return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

static void exec_sql(apr_dbd_t *h, const char *sql)
{
    int n = 0, rv = apr_dbd_query(drv, h, &n, sql);
    ck_assert_msg(rv == 0, "%s: %s", sql, apr_dbd_error(drv, h, rv));
}

static void open_all(void)
{
    gc_store_t *s = NULL;
    const char *err = NULL;

    ck_assert_int_eq(apr_dbd_get_driver(pool, drv_name, &drv), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_open(drv, pool, params, &conn), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_open(drv, pool, params, &other), APR_SUCCESS);
    s = gc_store_wrap(pool, drv, conn);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(gc_store_migrate(s, &err) == APR_SUCCESS, "migrate: %s", err);
    /* A scope of its own per test: the totals cache is process-wide. */
    rd = s;
    gc_store_set_scope(rd, &scopes[nscope++ % sizeof(scopes)]);
}

static void close_all(void)
{
    apr_dbd_close(drv, conn);
    apr_dbd_close(drv, other);
}

static void setup_sqlite(void)
{
    apr_pool_create(&pool, NULL);
    apr_dbd_init(pool);
    drv_name = "sqlite3";
    snprintf(sqlite_dir, sizeof(sqlite_dir), "/tmp/gcmon-read-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(sqlite_dir));
    snprintf(params, sizeof(params), "%s/gcmon.db", sqlite_dir);
    open_all();
}

static void teardown_sqlite(void)
{
    char cmd[400];
    close_all();
    apr_pool_destroy(pool);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", sqlite_dir);
    run_cmd(cmd);
}

static void pg_start(void)
{
    struct passwd *pw;
    char cmd[2048];

    pg_up = 0;
    if (access(PG_BIN "/initdb", X_OK) != 0) {
        return;
    }
    snprintf(pg_dir, sizeof(pg_dir), "/tmp/gcmon-pgr-XXXXXX");
    if (!mkdtemp(pg_dir)) {
        return;
    }
    pg_as[0] = '\0';
    if (geteuid() == 0) {
        if (!(pw = getpwnam("postgres")) && !(pw = getpwnam("nobody"))) {
            return;
        }
        if (chown(pg_dir, pw->pw_uid, pw->pw_gid) != 0) {
            return;
        }
        snprintf(pg_as, sizeof(pg_as), "runuser -u %s -- ", pw->pw_name);
    }
    pg_port = 40000 + (int)(getpid() % 20000);
    snprintf(cmd, sizeof(cmd),
             "cd %s && %s%s/initdb -D %s/data -A trust -U gcmon -E UTF8 "
             "--no-sync >/dev/null 2>&1 && %s%s/pg_ctl -D %s/data -l %s/log -w -t 60 -o "
             "\"-c listen_addresses='' -c unix_socket_directories=%s -p %d -c fsync=off\" "
             "start >/dev/null 2>&1",
             pg_dir, pg_as, PG_BIN, pg_dir, pg_as, PG_BIN, pg_dir, pg_dir, pg_dir, pg_port);
    pg_up = run_cmd(cmd) == 0;
}

static void pg_stop(void)
{
    char cmd[1024];
    if (pg_up) {
        snprintf(cmd, sizeof(cmd),
                 "cd %s && %s%s/pg_ctl -D %s/data -m immediate -w stop "
                 ">/dev/null 2>&1",
                 pg_dir, pg_as, PG_BIN, pg_dir);
        run_cmd(cmd);
        pg_up = 0;
    }
    if (!strncmp(pg_dir, "/tmp/gcmon-pgr-", 15)) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", pg_dir);
        run_cmd(cmd);
    }
}

static void setup_pg(void)
{
    apr_pool_create(&pool, NULL);
    apr_dbd_init(pool);
    drv_name = "pgsql";
    ck_assert_msg(pg_up, "the PostgreSQL test cluster did not start");
    snprintf(params, sizeof(params), "host=%s port=%d user=gcmon dbname=postgres", pg_dir, pg_port);
    {
        apr_dbd_t *h;
        ck_assert_int_eq(apr_dbd_get_driver(pool, drv_name, &drv), APR_SUCCESS);
        ck_assert_int_eq(apr_dbd_open(drv, pool, params, &h), APR_SUCCESS);
        exec_sql(h, "DROP SCHEMA IF EXISTS public CASCADE");
        exec_sql(h, "CREATE SCHEMA public");
        apr_dbd_close(drv, h);
    }
    open_all();
}

static void teardown_pg(void)
{
    close_all();
    apr_pool_destroy(pool);
}

/* ---------------------------------------------------------------- data */

/* n history rows for users prefix-00..(users-1); rows 2k and 2k+1 share a
 * timestamp (a tie broken by id), the state cycles through 5 values. */
static void put_history(const char *prefix, int n, int users, long long t0)
{
    static const char *const st[] = { "Available", "Away", "IDLE", "OFF_QUEUE", "Busy" };
    int i;

    exec_sql(other, "BEGIN");
    for (i = 0; i < n; i++) {
        exec_sql(
            other,
            apr_psprintf(
                pool,
                "INSERT INTO gcmon_history (user_id, user_name, state, previous_state, presence, "
                "routing_status, event_at, ingested_at, source) VALUES ('%s-%02d', %s, '%s', NULL, "
                "'OnQueue', NULL, %" APR_INT64_T_FMT ", %" APR_INT64_T_FMT ", 'stream')",
                prefix, i % users, i % users ? "'Agent'" : "NULL", st[i % 5],
                (apr_int64_t)(t0 + (i / 2) * 1000LL), (apr_int64_t)(t0 + (i / 2) * 1000LL + 7)));
    }
    exec_sql(other, "COMMIT");
}

static gc_query_t query(const char *args)
{
    gc_query_t q;
    ck_assert_int_eq(gc_query_parse(pool, args, GC_Q_HISTORY, GC_CURSOR_HISTORY, &q, NULL), 0);
    return q;
}

static gc_page_t page(gc_query_t *q)
{
    gc_page_t pg;
    const char *err = NULL;
    ck_assert_msg(gc_store_read_history(rd, pool, q, &pg, &err) == APR_SUCCESS, "%s", err);
    return pg;
}

/* Every id of a filter by cursor walk with page size `limit`. */
static apr_array_header_t *walk(const char *args, int limit, int *pages)
{
    apr_array_header_t *ids = apr_array_make(pool, 64, sizeof(apr_int64_t));
    gc_query_t q = query(apr_psprintf(pool, "%s&limit=%d", args, limit));
    int i;

    *pages = 0;
    for (;;) {
        gc_page_t pg = page(&q);
        ++*pages;
        ck_assert_int_le(pg.rows->nelts, limit);
        for (i = 0; i < pg.rows->nelts; i++) {
            *(apr_int64_t *)apr_array_push(ids) = APR_ARRAY_IDX(pg.rows, i, gc_history_row_t).id;
        }
        if (!pg.has_more) {
            ck_assert_int_eq(ids->nelts, pg.total);
            return ids;
        }
        ck_assert_int_eq(pg.rows->nelts, limit);
        q.has_cursor = 1;
        q.cursor = pg.next;
    }
}

/* The expected ids, newest first, as the database orders them. */
static apr_array_header_t *expected(const char *where)
{
    apr_array_header_t *ids = apr_array_make(pool, 64, sizeof(apr_int64_t));
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row;
    int rv = apr_dbd_select(drv, pool, other, &res,
                            apr_pstrcat(pool, "SELECT id FROM gcmon_history WHERE ", where,
                                        " ORDER BY event_at DESC, id DESC", NULL),
                            1);
    ck_assert_int_eq(rv, 0);
    for (row = NULL; apr_dbd_get_row(drv, pool, res, &row, -1) == 0;) {
        *(apr_int64_t *)apr_array_push(ids) = apr_atoi64(apr_dbd_get_entry(drv, row, 0));
    }
    return ids;
}

static void same_ids(apr_array_header_t *a, apr_array_header_t *b)
{
    int i;
    ck_assert_int_eq(a->nelts, b->nelts);
    for (i = 0; i < a->nelts; i++) {
        ck_assert_int_eq(APR_ARRAY_IDX(a, i, apr_int64_t), APR_ARRAY_IDX(b, i, apr_int64_t));
    }
}

/* ---------------------------------------------------------------- tests */

START_TEST(history_order_filters_and_walks)
{
    static const struct {
        const char *args, *where;
    } f[] = {
        { "", "1=1" },
        { "user_id=p-03", "user_id = 'p-03'" },
        { "state=IDLE", "state = 'IDLE'" },
        { "user_id=p-01&state=IDLE", "user_id = 'p-01' AND state = 'IDLE'" },
        /* µs bounds: from rounds up to the next ms (inclusive), to as well (exclusive) */
        { "from=2026-01-01T00:00:10.000001Z&to=2026-01-01T00:00:40.000001Z",
          "event_at >= 1767225610001 AND event_at < 1767225640001" },
        { "from=2026-01-01T00:00:10Z&to=2026-01-01T00:00:40Z",
          "event_at >= 1767225610000 AND event_at < 1767225640000" },
        { "state=Away&from=2026-01-01T00:00:05Z", "state = 'Away' AND event_at >= 1767225605000" },
    };
    size_t i;
    int limits[] = { 1, 7, 100 }, k, pages;

    put_history("p", 250, 10, BASE_MS);
    for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        apr_array_header_t *want = expected(f[i].where);
        gc_query_t q = query(f[i].args);
        gc_page_t pg = page(&q);

        ck_assert_msg(pg.total == want->nelts, "%s: total %ld, want %d", f[i].args, pg.total,
                      want->nelts);
        for (k = 0; k < 3; k++) {
            same_ids(walk(f[i].args, limits[k], &pages), want);
            ck_assert_int_eq(pages, want->nelts ? (want->nelts + limits[k] - 1) / limits[k] : 1);
        }
    }
}
END_TEST

START_TEST(history_offsets_and_fields)
{
    apr_array_header_t *all;
    gc_query_t q;
    gc_page_t pg;
    const gc_history_row_t *h;
    int off;

    put_history("o", 45, 4, BASE_MS);
    all = expected("1=1");
    for (off = 0; off <= 50; off += 5) {
        int i;
        q = query(apr_psprintf(pool, "limit=10&offset=%d", off));
        pg = page(&q);
        ck_assert_int_eq(pg.total, 45);
        ck_assert_int_eq(pg.rows->nelts, off >= 45 ? 0 : (45 - off < 10 ? 45 - off : 10));
        ck_assert_int_eq(pg.has_more, off + 10 < 45);
        for (i = 0; i < pg.rows->nelts; i++) {
            ck_assert_int_eq(APR_ARRAY_IDX(pg.rows, i, gc_history_row_t).id,
                             APR_ARRAY_IDX(all, off + i, apr_int64_t));
        }
    }
    q = query("user_id=o-00&limit=1");
    pg = page(&q);
    h = &APR_ARRAY_IDX(pg.rows, 0, gc_history_row_t);
    ck_assert_str_eq(h->user_id, "o-00");
    ck_assert_ptr_null(h->user_name); /* NULL stays NULL */
    ck_assert_ptr_null(h->previous_state);
    ck_assert_ptr_null(h->routing_status);
    ck_assert_str_eq(h->presence, "OnQueue");
    ck_assert_str_eq(h->source, "stream");
    ck_assert_int_eq(h->ingested_at - h->event_at, 7000);
    ck_assert_str_eq(gc_time_format(pool, h->event_at), "2026-01-01T00:00:22.000Z");
    /* The cursor continues after the last row of the page. */
    ck_assert_int_eq(pg.next.id, h->id);
    ck_assert_int_eq(pg.next.at, h->event_at / 1000);
}
END_TEST

START_TEST(totals_follow_inserts_and_deletes)
{
    gc_query_t all = query(""), idle = query("state=IDLE"), u = query("user_id=t-01");
    gc_page_t pg;

    put_history("t", 100, 5, BASE_MS);
    ck_assert_int_eq(page(&all).total, 100);
    ck_assert_int_eq(page(&idle).total, 20);
    ck_assert_int_eq(page(&u).total, 20);
    /* New rows, also older than everything (a resync): counted incrementally. */
    put_history("t", 10, 5, BASE_MS + 500000);
    put_history("x", 10, 5, BASE_MS - 500000);
    ck_assert_int_eq(page(&all).total, 120);
    ck_assert_int_eq(page(&idle).total, 24);
    ck_assert_int_eq(page(&u).total, 22);
    /* Retention deletes the oldest rows: recounted. */
    exec_sql(other, "DELETE FROM gcmon_history WHERE user_id LIKE 'x-%'");
    pg = page(&all);
    ck_assert_int_eq(pg.total, 110);
    ck_assert_int_eq(page(&idle).total, 22);
    /* Unchanged table: the cached total (and nothing else changes). */
    ck_assert_int_eq(page(&all).total, 110);
}
END_TEST

START_TEST(values_are_bound_not_spliced)
{
    gc_query_t q = query("");
    gc_page_t pg;
    const char *err = NULL;

    put_history("s", 10, 2, BASE_MS);
    q.user_id = "x' OR '1'='1"; /* bypassing gc_query's validation on purpose */
    pg = page(&q);
    ck_assert_int_eq(pg.total, 0);
    ck_assert_int_eq(pg.rows->nelts, 0);
    q.user_id = NULL;
    q.state = "IDLE'; DROP TABLE gcmon_history; --";
    pg = page(&q);
    ck_assert_int_eq(pg.total, 0);
    q.state = NULL;
    ck_assert_int_eq(gc_store_read_history(rd, pool, &q, &pg, &err), APR_SUCCESS);
    ck_assert_int_eq(pg.total, 10);
}
END_TEST

START_TEST(statements_survive_schema_changes)
{
    gc_query_t q = query("limit=3");
    apr_array_header_t *rows;
    const char *err = NULL;

    put_history("c", 10, 2, BASE_MS);
    ck_assert_int_eq(page(&q).rows->nelts, 3);
    ck_assert_int_eq(gc_store_read_board(rd, pool, NULL, NULL, NULL, &rows, &err), APR_SUCCESS);
    /* Another connection changes the schema: sqlite3's legacy prepared statements
     * expire; the store prepares them again. */
    exec_sql(other, "CREATE TABLE gcmon_unrelated (x INTEGER)");
    exec_sql(other, "CREATE INDEX gcmon_history_extra ON gcmon_history (ingested_at)");
    put_history("c", 2, 2, BASE_MS + 100000);
    ck_assert_int_eq(page(&q).total, 12);
    ck_assert_int_eq(page(&q).rows->nelts, 3);
    ck_assert_int_eq(gc_store_read_board(rd, pool, NULL, NULL, NULL, &rows, &err), APR_SUCCESS);
}
END_TEST

static void put_agent(const char *id, const char *state, const char *queues, long long since)
{
    exec_sql(
        other,
        apr_psprintf(pool,
                     "INSERT INTO gcmon_agents (user_id, user_name, state, presence, presence_id, "
                     "routing_status, queue_ids, since, event_at, updated_at) VALUES ('%s', 'Name "
                     "%s', '%s', "
                     "'OnQueue', NULL, '%s', %s, %" APR_INT64_T_FMT ", %" APR_INT64_T_FMT
                     ", %" APR_INT64_T_FMT ")",
                     id, id, state, state, queues, (apr_int64_t)since, (apr_int64_t)since,
                     (apr_int64_t)since));
}

/* The queues an agent is a member of (the holder's membership pass). */
static void put_member(const char *id, const char *queues, long long gen)
{
    exec_sql(other, apr_psprintf(pool,
                                 "INSERT INTO gcmon_membership (user_id, queue_ids, gen) VALUES "
                                 "('%s', %s, %" APR_INT64_T_FMT ")",
                                 id, queues, (apr_int64_t)gen));
}

static void put_alert(const char *user, const char *state, int seq, long long raised,
                      const char *cleared)
{
    exec_sql(
        other,
        apr_psprintf(
            pool,
            "INSERT INTO gcmon_alerts (user_id, user_name, state, threshold_seconds, episode_at, "
            "seq, raised_at, cleared_at, delivery_status, delivery_attempts, delivery_last_error) "
            "VALUES ('%s', NULL, '%s', 900, %" APR_INT64_T_FMT ", %d, %" APR_INT64_T_FMT ", %s, "
            "'failed', 3, 'HTTP 500')",
            user, state, (apr_int64_t)BASE_MS, seq, (apr_int64_t)raised, cleared));
}

START_TEST(board_filters_and_alerts)
{
    apr_array_header_t *rows;
    const char *err = NULL;
    const gc_board_row_t *b;

    /* queue_ids: membership; active_queue_ids: the event's activeQueueIds */
    put_agent("a3", "IDLE", "'[\"qa\"]'", BASE_MS);
    put_agent("a1", "IDLE", "'[\"qa\"]'", BASE_MS + 1000);
    put_agent("a2", "Away", "'[]'", BASE_MS + 2000);
    put_agent("a4", "Busy", "NULL", BASE_MS + 3000);
    put_member("a3", "'[\"qa\",\"qb\"]'", 1);
    put_member("a1", "'[\"qa\"]'", 1);
    put_member("a2", "'[\"qb\"]'", 1);
    put_alert("a1", "IDLE", 0, BASE_MS + 900000, "NULL");
    put_alert("a1", "IDLE", 1, BASE_MS + 1800000, "NULL");         /* newest open wins */
    put_alert("a2", "Away", 0, BASE_MS + 900000, "1767230000000"); /* cleared: not shown */

    ck_assert_int_eq(gc_store_read_board(rd, pool, NULL, NULL, NULL, &rows, &err), APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 4);
    b = &APR_ARRAY_IDX(rows, 0, gc_board_row_t); /* ordered by id */
    ck_assert_str_eq(b->user_id, "a1");
    ck_assert_str_eq(b->user_name, "Name a1");
    ck_assert_str_eq(b->queue_ids, "[\"qa\"]");
    ck_assert_str_eq(b->active_queue_ids, "[\"qa\"]");
    ck_assert_int_eq(b->since, (apr_time_t)(BASE_MS + 1000) * 1000);
    ck_assert_int_eq(b->alert_raised_at, (apr_time_t)(BASE_MS + 1800000) * 1000);
    ck_assert_int_eq(b->alert_threshold_seconds, 900);
    ck_assert_int_eq(APR_ARRAY_IDX(rows, 1, gc_board_row_t).alert_id, 0);
    ck_assert_ptr_null(APR_ARRAY_IDX(rows, 3, gc_board_row_t).queue_ids);

    ck_assert_int_eq(gc_store_read_board(rd, pool, NULL, "IDLE", "qb", &rows, &err), APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(rows, 0, gc_board_row_t).user_id, "a3");
    ck_assert_int_eq(gc_store_read_board(rd, pool, NULL, NULL, "q", &rows, &err), APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 0); /* no partial match */
    ck_assert_int_eq(gc_store_read_board(rd, pool, NULL, NULL, "qa", &rows, &err), APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 2);
    /* an Away member stays in its queue: membership, not the active queues */
    ck_assert_int_eq(gc_store_read_board(rd, pool, NULL, NULL, "qb", &rows, &err), APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(rows, 1, gc_board_row_t).user_id, "a3");
    ck_assert_str_eq(APR_ARRAY_IDX(rows, 0, gc_board_row_t).active_queue_ids, "[]");
    ck_assert_int_eq(gc_store_read_board(rd, pool, "a2", NULL, NULL, &rows, &err), APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 1);
    ck_assert_int_eq(gc_store_read_board(rd, pool, "zz", NULL, NULL, &rows, &err), APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 0);
}
END_TEST

START_TEST(alerts_listing)
{
    gc_query_t q;
    gc_page_t pg;
    const gc_alert_row_t *a;
    const char *err = NULL;
    int i, seen = 0;

    for (i = 0; i < 25; i++) {
        put_alert(i % 2 ? "u1" : "u2", i % 3 ? "IDLE" : "Away", i, BASE_MS + (i / 2) * 1000,
                  i % 4 ? "NULL" : "1767300000000");
    }
    ck_assert_int_eq(gc_query_parse(pool, "limit=10", GC_Q_ALERTS, GC_CURSOR_ALERTS, &q, NULL), 0);
    for (;;) {
        ck_assert_int_eq(gc_store_read_alerts(rd, pool, &q, &pg, &err), APR_SUCCESS);
        ck_assert_int_eq(pg.total, 25);
        seen += pg.rows->nelts;
        if (!pg.has_more) {
            break;
        }
        q.has_cursor = 1;
        q.cursor = pg.next;
    }
    ck_assert_int_eq(seen, 25);
    ck_assert_int_eq(gc_query_parse(pool, "user_id=u2&state=Away&limit=1", GC_Q_ALERTS,
                                    GC_CURSOR_ALERTS, &q, NULL),
                     0);
    ck_assert_int_eq(gc_store_read_alerts(rd, pool, &q, &pg, &err), APR_SUCCESS);
    ck_assert_int_eq(pg.total, 5); /* i = 0,6,12,18,24 */
    a = &APR_ARRAY_IDX(pg.rows, 0, gc_alert_row_t);
    ck_assert_int_eq(a->raised_at, (apr_time_t)(BASE_MS + 12000) * 1000);
    ck_assert_int_eq(a->cleared_at, (apr_time_t)1767300000000LL * 1000);
    ck_assert_ptr_null(a->user_name);
    ck_assert_str_eq(a->delivery_status, "failed");
    ck_assert_int_eq(a->delivery_attempts, 3);
    ck_assert_str_eq(a->delivery_last_error, "HTTP 500");
    ck_assert_int_eq(a->threshold_seconds, 900);
}
END_TEST

/* ---------------------------------------------------------------- JSON writer */

START_TEST(jsonw_strings_and_numbers)
{
    gc_jw_t w;
    char *out;
    apr_size_t len;

    gc_jw_init(&w, 1);
    gc_jw_str(&w, "a\"b\\c\n\t\x01/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    gc_jw_lit(&w, ",");
    gc_jw_str(&w, "bad\xff\xc3(\xed\xa0\x80"
                  "end");
    gc_jw_lit(&w, ",");
    gc_jw_str(&w, NULL);
    gc_jw_lit(&w, ",");
    gc_jw_int(&w, APR_INT64_MIN);
    gc_jw_lit(&w, ",");
    gc_jw_int(&w, 0);
    gc_jw_lit(&w, ",");
    gc_jw_time(&w, 0);
    gc_jw_lit(&w, ",");
    gc_jw_time(&w, (apr_time_t)1795000000123LL * 1000 + 999);
    out = gc_jw_steal(&w, &len);
    ck_assert_str_eq(out, "\"a\\\"b\\\\c\\n\\t\\u0001/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\","
                          "\"bad\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd"
                          "\xef\xbf\xbd"
                          "end\","
                          "null,-9223372036854775808,0,null,\"2026-11-18T11:06:40.123Z\"");
    ck_assert_int_eq(len, strlen(out));
    free(out);
}
END_TEST

START_TEST(jsonw_time_matches_gc_time_format)
{
    apr_time_t t;
    char buf[40];

    for (t = -(apr_time_t)86400 * 1000000 * 365 * 70; t < (apr_time_t)86400 * 1000000 * 365 * 80;
         t += (apr_time_t)77777777777LL + 123) {
        gc_jw_format_time(buf, t);
        ck_assert_str_eq(buf, gc_time_format(pool, t));
    }
}
END_TEST

START_TEST(jsonw_id_arrays)
{
    ck_assert(gc_jw_simple_id_array("[]"));
    ck_assert(gc_jw_simple_id_array("[\"a\"]"));
    ck_assert(gc_jw_simple_id_array("[\"3fa85f64-5717-4562-b3fc-2c963f66afa6\",\"q_2\"]"));
    ck_assert(!gc_jw_simple_id_array(NULL));
    ck_assert(!gc_jw_simple_id_array(""));
    ck_assert(!gc_jw_simple_id_array("[\"\"]"));
    ck_assert(!gc_jw_simple_id_array("[\"a\",]"));
    ck_assert(!gc_jw_simple_id_array("[\"a\"] "));
    ck_assert(!gc_jw_simple_id_array("[\"a\" ]"));
    ck_assert(!gc_jw_simple_id_array("[\"a\\\"\"]"));
    ck_assert(!gc_jw_simple_id_array("[1]"));
    ck_assert(!gc_jw_simple_id_array("{\"a\":1}"));
    ck_assert(!gc_jw_simple_id_array("[\"a\""));
}
END_TEST

static void setup_plain(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown_plain(void)
{
    apr_pool_destroy(pool);
}

static void add_db_tests(TCase *tc)
{
    tcase_add_test(tc, history_order_filters_and_walks);
    tcase_add_test(tc, history_offsets_and_fields);
    tcase_add_test(tc, totals_follow_inserts_and_deletes);
    tcase_add_test(tc, values_are_bound_not_spliced);
    tcase_add_test(tc, statements_survive_schema_changes);
    tcase_add_test(tc, board_filters_and_alerts);
    tcase_add_test(tc, alerts_listing);
}

void store_read_tcases(Suite *s)
{
    TCase *tc = tcase_create("jsonw");

    tcase_add_checked_fixture(tc, setup_plain, teardown_plain);
    tcase_add_test(tc, jsonw_strings_and_numbers);
    tcase_add_test(tc, jsonw_time_matches_gc_time_format);
    tcase_add_test(tc, jsonw_id_arrays);
    suite_add_tcase(s, tc);

    tc = tcase_create("read_sqlite3");
    tcase_add_checked_fixture(tc, setup_sqlite, teardown_sqlite);
    tcase_set_timeout(tc, 60);
    add_db_tests(tc);
    suite_add_tcase(s, tc);

    if (access(PG_BIN "/initdb", X_OK) == 0) {
        tc = tcase_create("read_pgsql");
        tcase_add_unchecked_fixture(tc, pg_start, pg_stop);
        tcase_add_checked_fixture(tc, setup_pg, teardown_pg);
        tcase_set_timeout(tc, 120);
        add_db_tests(tc);
        suite_add_tcase(s, tc);
    }
    else {
        fprintf(stderr, "query: PostgreSQL 15 is not installed: read_pgsql cases skipped\n");
    }
}
