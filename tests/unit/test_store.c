/* The database layer (gc_store) against real databases: SQLite files in a
 * temporary directory and, when PostgreSQL 15 is installed, a throwaway
 * cluster the suite starts itself (unix socket only) and stops at the end.
 * Every test runs on both; a machine without PostgreSQL skips that half. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "gc_audit.h"
#include "gc_alerts.h"
#include "gc_board_cache.h"
#include "gc_store_idem.h"
#include "gc_store.h"
#include "gc_store_read.h"
#include "unit.h"

#ifndef PG_BIN
#define PG_BIN "/usr/lib/postgresql/15/bin"
#endif
#define T0 ((apr_time_t)1763750000000LL * 1000) /* 2025-11-21, ms precision */
#define MS(n) ((apr_time_t)(n)*1000)

static apr_pool_t *pool;
static const char *driver_name; /* of the running test case */
static char db_params[512];
static char raw_params[512];  /* a second, independent database (ingest baseline) */
static char sqlite_base[256]; /* per test case (see sqlite_base_start) */
static char sqlite_dir[300];  /* per test */

/* The PostgreSQL cluster (unchecked fixture: started once per run). */
static char pg_dir[256];
static int pg_port;
static int pg_up;
static char pg_why[512];
static char pg_as[64]; /* "runuser -u postgres -- " when root */

/* ---------------------------------------------------------------- helpers */

static gc_store_t *open_store_in(apr_pool_t *p, const char *params)
{
    gc_store_t *s = NULL;
    const char *err = NULL;
    apr_status_t rv = gc_store_open(p, driver_name, params, &s, &err);
    ck_assert_msg(rv == APR_SUCCESS && s, "gc_store_open(%s): %s", driver_name, err);
    return s;
}

static gc_store_t *open_store(void)
{
    return open_store_in(pool, db_params);
}

static gc_store_t *open_migrated(void)
{
    gc_store_t *s = open_store();
    const char *err = NULL;
    ck_assert_msg(gc_store_migrate(s, &err) == APR_SUCCESS, "migrate: %s", err);
    return s;
}

/* Raw SQL through a connection of its own (the test's view of the rows).
 * Rows are joined with ';', columns with '|', NULL is '~'. */
static const char *sql_rows_in(const char *params, const char *sql)
{
    const apr_dbd_driver_t *d = NULL;
    apr_dbd_t *h = NULL;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *out = "";
    int rv, first = 1;

    ck_assert_int_eq(apr_dbd_get_driver(pool, driver_name, &d), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_open(d, pool, params, &h), APR_SUCCESS);
    rv = apr_dbd_select(d, pool, h, &res, sql, 1);
    ck_assert_msg(rv == 0, "%s: %s", sql, apr_dbd_error(d, h, rv));
    while (apr_dbd_get_row(d, pool, res, &row, -1) == 0) {
        int c, n = apr_dbd_num_cols(d, res);
        out = apr_pstrcat(pool, out, first ? "" : ";", NULL);
        first = 0;
        for (c = 0; c < n; c++) {
            char *v = NULL;
            if (apr_dbd_datum_get(d, row, c, APR_DBD_TYPE_STRING, &v) != APR_SUCCESS || !v) {
                v = "~";
            }
            out = apr_pstrcat(pool, out, c ? "|" : "", v, NULL);
        }
    }
    apr_dbd_close(d, h);
    return out;
}

static const char *sql_rows(const char *sql)
{
    return sql_rows_in(db_params, sql);
}

static void sql_exec_in(const char *params, const char *sql)
{
    const apr_dbd_driver_t *d = NULL;
    apr_dbd_t *h = NULL;
    int rv, n = 0;

    ck_assert_int_eq(apr_dbd_get_driver(pool, driver_name, &d), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_open(d, pool, params, &h), APR_SUCCESS);
    rv = apr_dbd_query(d, h, &n, sql);
    ck_assert_msg(rv == 0, "%s: %s", sql, apr_dbd_error(d, h, rv));
    apr_dbd_close(d, h);
}

static long count_history(gc_store_t *s, const char *user)
{
    long n = -1;
    ck_assert_int_eq(gc_store_history_count(s, user, &n), APR_SUCCESS);
    return n;
}

static gc_agent_event_t ev_make(const char *user, const char *presence, const char *routing,
                                apr_time_t at)
{
    gc_agent_event_t e;
    memset(&e, 0, sizeof(e));
    e.user_id = user;
    e.presence = presence;
    e.routing_status = routing;
    e.presence_id = presence ? apr_psprintf(pool, "def-%s", presence) : NULL;
    e.presence_at = at;
    e.routing_at = at;
    e.event_at = at;
    e.state = (presence && strcmp(presence, "OnQueue") == 0) ? routing : presence;
    return e;
}

static void write_ok(gc_store_t *s, const gc_agent_event_t *evs, int n, const char *source,
                     gc_store_batch_result_t *r)
{
    const char *err = NULL;
    apr_status_t rv = gc_store_write_batch(s, pool, evs, n, source, T0 + MS(999999), r, &err);
    ck_assert_msg(rv == APR_SUCCESS, "write_batch: %s", err);
    ck_assert_ptr_null(err);
}

static void res_eq(const gc_store_batch_result_t *r, int t, int rf, int d, int st)
{
    ck_assert_msg(r->transitions == t && r->refreshed == rf && r->duplicates == d && r->stale == st,
                  "result T%d R%d D%d S%d, want T%d R%d D%d S%d", r->transitions, r->refreshed,
                  r->duplicates, r->stale, t, rf, d, st);
}

/* History of one user, oldest first: "state|previous|event_ms|source;…". */
static const char *history_of(const char *user)
{
    return sql_rows(apr_psprintf(pool,
                                 "SELECT state, previous_state, event_at - %" APR_INT64_T_FMT
                                 ", source FROM gcmon_history WHERE user_id = "
                                 "'%s' ORDER BY event_at LIMIT 1000",
                                 (apr_int64_t)apr_time_as_msec(T0), user));
}

/* Fork a child running fn(arg); its exit status is fn's return value. Children
 * never return into Check: they _exit. */
typedef int child_fn(int idx, void *arg);

static pid_t spawn(child_fn *fn, int idx, void *arg, const int gate[2])
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char c;
        /* Wait for the parent to open the gate (EOF on the pipe once every
         * write end is closed), so that all children start at once. */
        close(gate[1]);
        while (read(gate[0], &c, 1) < 0 && errno == EINTR) {
        }
        close(gate[0]);
        _exit(fn(idx, arg));
    }
    return pid;
}

static void reap_all(pid_t *pids, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        int status = 0;
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: status 0x%x", i,
                      status);
    }
}

/* ------------------------------------------------------------- fixtures */

static void rm_sqlite_dir(void)
{
    static const char *const files[] = { "gcmon.db",         "gcmon.db-wal",  "gcmon.db-shm",
                                         "gcmon.db-journal", "raw.db",        "raw.db-wal",
                                         "raw.db-shm",       "raw.db-journal" };
    size_t i;
    char path[512];

    if (!sqlite_dir[0]) {
        return;
    }
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", sqlite_dir, files[i]);
        unlink(path);
    }
    rmdir(sqlite_dir);
    sqlite_dir[0] = '\0';
}

static int run_cmd(const char *cmd);

/* One directory for the whole test case (unchecked fixture, in the runner
 * process), so that it is removed even after a forked test failed (Check then
 * ends the test without its teardown). */
static void sqlite_base_start(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(sqlite_base, sizeof(sqlite_base), "%s/gcmon-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(sqlite_base)) {
        sqlite_base[0] = '\0';
    }
}

static void sqlite_base_stop(void)
{
    char cmd[600];

    if (sqlite_base[0] && strstr(sqlite_base, "/gcmon-store-")) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sqlite_base);
        run_cmd(cmd);
    }
    sqlite_base[0] = '\0';
}

static void setup_sqlite(void)
{
    apr_pool_create(&pool, NULL);
    apr_dbd_init(pool);
    driver_name = "sqlite3";
    ck_assert_msg(sqlite_base[0], "no temporary directory");
    snprintf(sqlite_dir, sizeof(sqlite_dir), "%s/t-XXXXXX", sqlite_base);
    ck_assert_ptr_nonnull(mkdtemp(sqlite_dir));
    snprintf(db_params, sizeof(db_params), "%s/gcmon.db", sqlite_dir);
    snprintf(raw_params, sizeof(raw_params), "%s/raw.db", sqlite_dir);
}

static void teardown_sqlite(void)
{
    apr_pool_destroy(pool);
    rm_sqlite_dir();
}

static int run_cmd(const char *cmd)
{
    int st = system(cmd);
    return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

/* Why the cluster failed, with the end of its log (the directory is removed). */
static void pg_fail(const char *what, const char *log)
{
    char path[512], buf[400];
    size_t n = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", pg_dir, log);
    buf[0] = '\0';
    if ((f = fopen(path, "r")) != NULL) {
        if (fseek(f, -(long)(sizeof(buf) - 1), SEEK_END) != 0) {
            rewind(f);
        }
        n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    snprintf(pg_why, sizeof(pg_why), "%s: %s", what, buf);
}

static void pg_start(void)
{
    struct passwd *pw = NULL;
    char cmd[2048];
    const char *as = pg_as;

    pg_up = 0;
    pg_as[0] = '\0';
    snprintf(pg_dir, sizeof(pg_dir), "/tmp/gcmon-pg-XXXXXX");
    if (!mkdtemp(pg_dir)) {
        snprintf(pg_why, sizeof(pg_why), "mkdtemp: %s", strerror(errno));
        return;
    }
    if (geteuid() == 0) {
        /* initdb refuses root: run the cluster as an unprivileged user. */
        if (!(pw = getpwnam("postgres")) && !(pw = getpwnam("nobody"))) {
            snprintf(pg_why, sizeof(pg_why), "no postgres/nobody user to run initdb");
            return;
        }
        if (chown(pg_dir, pw->pw_uid, pw->pw_gid) != 0) {
            snprintf(pg_why, sizeof(pg_why), "chown %s: %s", pg_dir, strerror(errno));
            return;
        }
        snprintf(pg_as, sizeof(pg_as), "runuser -u %s -- ", pw->pw_name);
    }
    pg_port = 20000 + (int)(getpid() % 20000);
    /* cd: the unprivileged user may not be able to read the current directory. */
    snprintf(cmd, sizeof(cmd),
             "cd %s && %s%s/initdb -D %s/data -A trust -U gcmon -E UTF8 "
             "--no-sync >%s/initdb.out 2>&1",
             pg_dir, as, PG_BIN, pg_dir, pg_dir);
    if (run_cmd(cmd) != 0) {
        pg_fail("initdb failed", "initdb.out");
        return;
    }
    /* A throwaway cluster: unix socket only, no durability (fsync off). */
    snprintf(cmd, sizeof(cmd),
             "cd %s && %s%s/pg_ctl -D %s/data -l %s/server.log -w -t 60 -o "
             "\"-c listen_addresses='' -c unix_socket_directories=%s -p %d -c fsync=off "
             "-c full_page_writes=off -c max_connections=40\" start >%s/pg_ctl.out 2>&1",
             pg_dir, as, PG_BIN, pg_dir, pg_dir, pg_dir, pg_port, pg_dir);
    if (run_cmd(cmd) != 0) {
        pg_fail("pg_ctl start failed", "server.log");
        return;
    }
    pg_up = 1;
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
    if (pg_dir[0] && strncmp(pg_dir, "/tmp/gcmon-pg-", 14) == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", pg_dir);
        run_cmd(cmd);
    }
    pg_dir[0] = '\0';
}

static void setup_pg(void)
{
    apr_pool_create(&pool, NULL);
    apr_dbd_init(pool);
    driver_name = "pgsql";
    ck_assert_msg(pg_up, "PostgreSQL is installed but the test cluster did not start: %s", pg_why);
    snprintf(db_params, sizeof(db_params), "host=%s port=%d user=gcmon dbname=postgres", pg_dir,
             pg_port);
    /* The baseline database: same server, its own schema. */
    snprintf(raw_params, sizeof(raw_params),
             "host=%s port=%d user=gcmon dbname=postgres "
             "options='-c search_path=gcmon_raw'",
             pg_dir, pg_port);
    sql_exec_in(db_params, "DROP SCHEMA IF EXISTS public CASCADE");
    sql_exec_in(db_params, "DROP SCHEMA IF EXISTS gcmon_raw CASCADE");
    sql_exec_in(db_params, "CREATE SCHEMA public");
    sql_exec_in(db_params, "CREATE SCHEMA gcmon_raw");
}

static void teardown_pg(void)
{
    apr_pool_destroy(pool);
}

/* ---------------------------------------------------------------- schema */

START_TEST(migrate_idempotent)
{
    gc_store_t *s = open_store(), *s2;
    const char *err = NULL;

    ck_assert_str_eq(gc_store_dialect(s), driver_name);
    ck_assert_int_eq(gc_store_migrate(s, &err), APR_SUCCESS);
    ck_assert_int_eq(gc_store_migrate(s, &err), APR_SUCCESS);
    ck_assert_str_eq(sql_rows("SELECT MAX(version), COUNT(*) FROM gcmon_schema"),
                     apr_psprintf(pool, "%d|%d", GC_SCHEMA_VERSION, GC_SCHEMA_VERSION));
    /* Another connection finds it done; the tables and indexes exist. */
    s2 = open_store();
    ck_assert_int_eq(gc_store_migrate(s2, &err), APR_SUCCESS);
    ck_assert_str_eq(sql_rows("SELECT COUNT(*) FROM gcmon_schema"),
                     apr_psprintf(pool, "%d", GC_SCHEMA_VERSION));
    ck_assert_str_eq(sql_rows("SELECT (SELECT COUNT(*) FROM gcmon_lease) + "
                              "(SELECT COUNT(*) FROM gcmon_history) + "
                              "(SELECT COUNT(*) FROM gcmon_agents) + "
                              "(SELECT COUNT(*) FROM gcmon_channels)"),
                     "0");
    if (strcmp(driver_name, "sqlite3") == 0) {
        ck_assert_str_eq(sql_rows("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' "
                                  "AND name IN ('gcmon_history_time', 'gcmon_history_state', "
                                  "'gcmon_agents_state')"),
                         "3");
        /* UNIQUE (user_id, event_at): the per-user index. */
        ck_assert_str_eq(sql_rows("SELECT COUNT(*) FROM pragma_index_list('gcmon_history') "
                                  "WHERE \"unique\" = 1 AND origin = 'u'"),
                         "1");
        ck_assert_str_eq(sql_rows("PRAGMA journal_mode"), "wal");
    }
    else {
        ck_assert_str_eq(sql_rows("SELECT COUNT(*) FROM pg_indexes WHERE indexname IN "
                                  "('gcmon_history_time', 'gcmon_history_user_id_event_at_key', "
                                  "'gcmon_history_state', 'gcmon_agents_state')"),
                         "4");
    }
}
END_TEST

START_TEST(migrate_refuses_newer_schema)
{
    gc_store_t *s = open_migrated(), *s2;
    const char *err = NULL;

    sql_exec_in(db_params, "INSERT INTO gcmon_schema (version, applied_at) VALUES (999, 0)");
    s2 = open_store();
    ck_assert_int_ne(gc_store_migrate(s2, &err), APR_SUCCESS);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "newer"));
    (void)s;
}
END_TEST

static int child_migrate(int idx, void *arg)
{
    apr_pool_t *p;
    gc_store_t *s = NULL;
    const char *err = NULL;
    int rc = 0;

    (void)idx;
    (void)arg;
    apr_pool_create(&p, NULL);
    if (gc_store_open(p, driver_name, db_params, &s, &err) != APR_SUCCESS) {
        fprintf(stderr, "child open: %s\n", err);
        rc = 2;
    }
    else if (gc_store_migrate(s, &err) != APR_SUCCESS) {
        fprintf(stderr, "child migrate: %s\n", err);
        rc = 3;
    }
    apr_pool_destroy(p);
    return rc;
}

START_TEST(migrate_concurrent)
{
    enum { N = 4 };
    pid_t pids[N];
    int gate[2], i;
    gc_store_t *s;
    gc_agent_event_t e;
    gc_store_batch_result_t r;

    ck_assert_int_eq(pipe(gate), 0);
    for (i = 0; i < N; i++) {
        pids[i] = spawn(child_migrate, i, NULL, gate);
    }
    close(gate[0]);
    close(gate[1]); /* go */
    reap_all(pids, N);
    ck_assert_str_eq(sql_rows("SELECT MAX(version), COUNT(*) FROM gcmon_schema"),
                     apr_psprintf(pool, "%d|%d", GC_SCHEMA_VERSION, GC_SCHEMA_VERSION));
    s = open_migrated();
    e = ev_make("u1", "Available", "IDLE", T0);
    write_ok(s, &e, 1, "stream", &r);
    res_eq(&r, 1, 0, 0, 0);
}
END_TEST

/* ---------------------------------------------------------------- history */

/* Loop tests run twice: _i = 0 the normal (multi-row) path, 1 the per-event one. */
START_TEST(batch_verdicts_in_order)
{
    gc_store_t *s = open_migrated();
    gc_store_batch_result_t r;
    gc_agent_row_t *a = NULL;
    gc_agent_event_t evs[7];

    evs[0] = ev_make("u1", "Available", "OFF_QUEUE", T0 + MS(1000)); /* T (first) */
    evs[1] = ev_make("u1", "Available", "OFF_QUEUE", T0 + MS(2000)); /* R */
    evs[2] = ev_make("u1", "Available", "OFF_QUEUE", T0 + MS(2000)); /* D */
    evs[3] = ev_make("u1", "Busy", "OFF_QUEUE", T0 + MS(1500));      /* S: older */
    evs[4] = ev_make("u1", "Busy", "OFF_QUEUE", T0 + MS(3000));      /* T */
    evs[5] = ev_make("u2", "OnQueue", "IDLE", T0 + MS(1000));        /* T (first) */
    evs[6] = ev_make("u2", "OnQueue", "INTERACTING", T0 + MS(4000)); /* T */
    evs[6].queue_ids = "[\"q1\",\"q2\"]";
    evs[0].user_name = "Ada Lovelace";
    gc_store_test_force_slow(s, _i);
    write_ok(s, evs, 7, "stream", &r);
    res_eq(&r, 4, 1, 1, 1);

    ck_assert_str_eq(history_of("u1"), "Available|~|1000|stream;Busy|Available|3000|stream");
    ck_assert_str_eq(history_of("u2"), "IDLE|~|1000|stream;INTERACTING|IDLE|4000|stream");
    ck_assert_int_eq(count_history(s, NULL), 4);
    ck_assert_int_eq(count_history(s, "u1"), 2);
    ck_assert_int_eq(count_history(s, "nobody"), 0);
    /* The stream event carries no name: it is taken from the current row. */
    ck_assert_str_eq(sql_rows("SELECT user_name FROM gcmon_history WHERE user_id = 'u1' "
                              "ORDER BY event_at"),
                     "Ada Lovelace;Ada Lovelace");

    ck_assert_int_eq(gc_store_agent_get(s, pool, "u1", &a), APR_SUCCESS);
    ck_assert_str_eq(a->state, "Busy");
    ck_assert_str_eq(a->presence, "Busy");
    ck_assert_str_eq(a->presence_id, "def-Busy");
    ck_assert_str_eq(a->user_name, "Ada Lovelace");
    ck_assert_ptr_null(a->queue_ids);
    ck_assert_int_eq(a->since, T0 + MS(3000));
    ck_assert_int_eq(a->event_at, T0 + MS(3000));
    ck_assert_int_eq(a->updated_at, T0 + MS(999999));
    ck_assert_int_eq(gc_store_agent_get(s, pool, "u2", &a), APR_SUCCESS);
    ck_assert_str_eq(a->state, "INTERACTING");
    ck_assert_str_eq(a->routing_status, "INTERACTING");
    ck_assert_str_eq(a->queue_ids, "[\"q1\",\"q2\"]");
    ck_assert_int_eq(gc_store_agent_get(s, pool, "u3", &a), APR_NOTFOUND);
    ck_assert_ptr_null(a);
}
END_TEST

/* ---------------------------------------------------------------- board generation */

typedef struct {
    int calls;
    apr_int64_t id, gen;
} board_heard_t;

static void heard(void *baton, apr_int64_t id, apr_int64_t gen)
{
    board_heard_t *h = baton;
    h->calls++;
    h->id = id;
    h->gen = gen;
}

/* The user ids of the agents changed after `since`, "a,b". */
static const char *changed_since(gc_store_t *s, apr_int64_t since)
{
    apr_array_header_t *rows;
    const char *err = NULL, *out = "";
    int i;

    ck_assert_msg(gc_store_read_board_since(s, pool, since, &rows, &err) == APR_SUCCESS, "%s", err);
    for (i = 0; i < rows->nelts; i++) {
        out = apr_pstrcat(pool, out, i ? "," : "", APR_ARRAY_IDX(rows, i, gc_board_row_t).user_id,
                          NULL);
    }
    return out;
}

/* Every transaction that changes what the board shows moves the generation
 * once, stamps what it changed, and is heard after COMMIT. */
START_TEST(board_generation)
{
    gc_store_t *s = open_migrated();
    gc_store_batch_result_t r;
    gc_agent_event_t evs[2];
    gc_board_gen_t g0, g1;
    board_heard_t h = { 0, 0, 0 };
    gc_membership_t m[2] = { { "u1", "[\"q1\"]" }, { "u2", "[\"q1\",\"q2\"]" } };
    gc_alert_due_t due;
    gc_alert_result_e res;
    apr_int64_t alert_id = 0;
    const char *err = NULL;
    int cleared = 0;

    gc_store_on_board_change(s, heard, &h);
    ck_assert_int_eq(gc_store_read_board_gen(s, pool, &g0, &err), APR_SUCCESS);
    ck_assert(g0.id > 0);

    evs[0] = ev_make("u1", "Available", "OFF_QUEUE", T0 + MS(1000));
    evs[1] = ev_make("u2", "Away", "OFF_QUEUE", T0 + MS(1000));
    write_ok(s, evs, 2, "stream", &r);
    ck_assert_int_eq(h.calls, 1);
    ck_assert(h.id == g0.id && h.gen == g0.gen + 1);
    ck_assert_str_eq(changed_since(s, g0.gen), "u1,u2");
    ck_assert_str_eq(changed_since(s, h.gen), "");

    /* membership: a change is stamped, the same lists again are not */
    ck_assert_int_eq(gc_store_membership_set(s, pool, m, 2, &err), APR_SUCCESS);
    ck_assert_int_eq(h.calls, 2);
    g1.gen = h.gen;
    ck_assert_str_eq(changed_since(s, g1.gen - 1), "u1,u2");
    ck_assert_int_eq(gc_store_membership_set(s, pool, m, 1, &err), APR_SUCCESS);
    ck_assert_str_eq(changed_since(s, g1.gen), "");

    /* an alert raised shows on the board: its agent is stamped */
    memset(&due, 0, sizeof(due));
    due.user_id = "u2";
    due.state = "Away";
    due.episode_at = T0 + MS(1000);
    due.threshold = apr_time_from_sec(60);
    ck_assert_int_eq(
        gc_store_alert_raise(s, pool, &due, NULL, NULL, T0 + MS(70000), &res, &alert_id, &err),
        APR_SUCCESS);
    ck_assert_int_eq(res, GC_ALERT_RAISED);
    ck_assert_str_eq(changed_since(s, h.gen - 1), "u2");
    g1.gen = h.gen;

    /* clearing nothing moves nothing; u2 leaving Away clears and stamps it */
    ck_assert_int_eq(gc_store_alerts_clear(s, pool, T0 + MS(80000), &cleared, &err), APR_SUCCESS);
    ck_assert_int_eq(cleared, 0);
    ck_assert_int_eq(h.gen, g1.gen);
    evs[0] = ev_make("u2", "Available", "OFF_QUEUE", T0 + MS(90000));
    write_ok(s, evs, 1, "stream", &r);
    ck_assert_int_eq(gc_store_alerts_clear(s, pool, T0 + MS(90001), &cleared, &err), APR_SUCCESS);
    ck_assert_int_eq(cleared, 1);
    ck_assert_int_eq(h.gen, g1.gen + 2);
    ck_assert_str_eq(changed_since(s, g1.gen + 1), "u2");
    ck_assert_int_eq(gc_store_read_board_gen(s, pool, &g1, &err), APR_SUCCESS);
    ck_assert(g1.id == g0.id && g1.gen == h.gen);
}
END_TEST

/* The process's copy of the board: built once, then kept by merging the rows
 * changed since its generation. */
static void seen_rows(void *baton, const apr_array_header_t *rows, const gc_board_gen_t *g)
{
    const char **out = baton;
    int i;

    *out = apr_psprintf(pool, "%" APR_INT64_T_FMT ":", g->gen);
    for (i = 0; i < rows->nelts; i++) {
        const gc_board_row_t *b = &APR_ARRAY_IDX(rows, i, gc_board_row_t);
        *out = apr_pstrcat(pool, *out, i ? "," : "", b->user_id, "=", b->state, NULL);
    }
}

START_TEST(board_cache_merges)
{
    gc_store_t *s = open_migrated();
    gc_board_cache_t *c = gc_board_cache_create(pool);
    gc_store_batch_result_t r;
    gc_agent_event_t evs[2];
    gc_board_gen_t g;
    const char *seen = NULL, *err = NULL;

    evs[0] = ev_make("u2", "Available", "OFF_QUEUE", T0 + MS(1000));
    evs[1] = ev_make("u4", "Away", "OFF_QUEUE", T0 + MS(1000));
    write_ok(s, evs, 2, "stream", &r);
    ck_assert_int_eq(gc_board_cache_visit(c, s, pool, seen_rows, &seen, &err), APR_SUCCESS);
    ck_assert_int_eq(gc_board_cache_last(c), 2);
    ck_assert_int_eq(gc_store_read_board_gen(s, pool, &g, &err), APR_SUCCESS);
    ck_assert_str_eq(seen, apr_psprintf(pool, "%" APR_INT64_T_FMT ":u2=Available,u4=Away", g.gen));
    ck_assert_int_eq(gc_board_cache_visit(c, s, pool, seen_rows, &seen, &err), APR_SUCCESS);
    ck_assert_int_eq(gc_board_cache_last(c), 0);

    /* a change and a new agent (sorted in) are merged, nothing else is read */
    evs[0] = ev_make("u4", "Break", "OFF_QUEUE", T0 + MS(2000));
    evs[1] = ev_make("u3", "Meal", "OFF_QUEUE", T0 + MS(2000));
    write_ok(s, evs, 2, "stream", &r);
    ck_assert_int_eq(gc_board_cache_visit(c, s, pool, seen_rows, &seen, &err), APR_SUCCESS);
    ck_assert_int_eq(gc_board_cache_last(c), 1);
    ck_assert_int_eq(gc_store_read_board_gen(s, pool, &g, &err), APR_SUCCESS);
    ck_assert_str_eq(
        seen, apr_psprintf(pool, "%" APR_INT64_T_FMT ":u2=Available,u3=Meal,u4=Break", g.gen));
}
END_TEST

START_TEST(refresh_keeps_since)
{
    gc_store_t *s = open_migrated(), *s2;
    gc_store_batch_result_t r;
    gc_agent_row_t *a = NULL;
    gc_agent_event_t e;
    const char *st = NULL;
    apr_time_t at = 0;

    gc_store_test_force_slow(s, _i);
    e = ev_make("u1", "OnQueue", "IDLE", T0 + MS(1000));
    e.queue_ids = "[\"q1\"]";
    write_ok(s, &e, 1, "resync", &r);
    res_eq(&r, 1, 0, 0, 0);
    ck_assert(gc_store_test_cached(s, "u1", &st, &at));
    ck_assert_str_eq(st, "IDLE");
    ck_assert_int_eq(at, T0 + MS(1000));

    e = ev_make("u1", "OnQueue", "IDLE", T0 + MS(5000));
    e.presence_id = "def-OnQueue-2";
    e.queue_ids = "[\"q1\",\"q9\"]";
    write_ok(s, &e, 1, "stream", &r);
    res_eq(&r, 0, 1, 0, 0);
    ck_assert_int_eq(gc_store_agent_get(s, pool, "u1", &a), APR_SUCCESS);
    ck_assert_int_eq(a->since, T0 + MS(1000));
    ck_assert_int_eq(a->event_at, T0 + MS(5000));
    ck_assert_str_eq(a->presence_id, "def-OnQueue-2");
    ck_assert_str_eq(a->queue_ids, "[\"q1\",\"q9\"]");
    ck_assert_int_eq(count_history(s, "u1"), 1);
    ck_assert_str_eq(history_of("u1"), "IDLE|~|1000|resync");

    /* A new connection (empty cache) judges against the database. */
    s2 = open_migrated();
    gc_store_test_force_slow(s2, _i);
    ck_assert(!gc_store_test_cached(s2, "u1", NULL, NULL));
    write_ok(s2, &e, 1, "stream", &r);
    res_eq(&r, 0, 0, 1, 0);
    e.event_at = T0 + MS(4000);
    write_ok(s2, &e, 1, "stream", &r);
    res_eq(&r, 0, 0, 0, 1);
    e = ev_make("u1", "OnQueue", "INTERACTING", T0 + MS(6000));
    write_ok(s2, &e, 1, "stream", &r);
    res_eq(&r, 1, 0, 0, 0);
    ck_assert_str_eq(history_of("u1"), "IDLE|~|1000|resync;INTERACTING|IDLE|6000|stream");
    ck_assert_int_eq(gc_store_agent_get(s2, pool, "u1", &a), APR_SUCCESS);
    ck_assert_int_eq(a->since, T0 + MS(6000));
    ck_assert_str_eq(a->queue_ids, "[\"q1\",\"q9\"]"); /* kept: the event had none */
}
END_TEST

START_TEST(unrecordable_events_ignored)
{
    gc_store_t *s = open_migrated();
    gc_store_batch_result_t r;
    gc_agent_event_t evs[3];

    evs[0] = ev_make("u1", "OnQueue", NULL, T0); /* no derivable state */
    evs[1] = ev_make(NULL, "Busy", NULL, T0);
    evs[2] = ev_make("u2", "Busy", NULL, 0);
    write_ok(s, evs, 3, "stream", &r);
    res_eq(&r, 0, 0, 0, 3);
    ck_assert_int_eq(count_history(s, NULL), 0);
    write_ok(s, evs, 0, "stream", &r);
    res_eq(&r, 0, 0, 0, 0);
}
END_TEST

/* Late events (older than the current row): around a reconnect notifications
 * and resync snapshots arrive in either order. Each goes into the history at
 * its place when the history has a row after it and neither neighbour is
 * already its state; else it is stale. The current row never moves back. */
START_TEST(late_events_take_their_place)
{
    gc_store_t *s = open_migrated();
    gc_store_batch_result_t r;
    gc_agent_row_t *row = NULL;
    gc_agent_event_t e[3];

    gc_store_test_force_slow(s, _i);
    e[0] = ev_make("L1", "Available", NULL, T0 + MS(1000));
    e[1] = ev_make("L1", "Break", NULL, T0 + MS(3000));
    write_ok(s, e, 2, "stream", &r);
    res_eq(&r, 2, 0, 0, 0);
    /* Between two rows, another state: placed, the next row relinked. */
    e[0] = ev_make("L1", "Away", NULL, T0 + MS(2000));
    write_ok(s, e, 1, "resync", &r);
    res_eq(&r, 1, 0, 0, 0);
    ck_assert_str_eq(history_of("L1"), "Available|~|1000|stream;Away|Available|2000|resync;"
                                       "Break|Away|3000|stream");
    /* Inside an episode of the same state, or just before the same state: stale. */
    e[0] = ev_make("L1", "Away", NULL, T0 + MS(2500));
    e[1] = ev_make("L1", "Available", NULL, T0 + MS(1500));
    write_ok(s, e, 2, "stream", &r);
    res_eq(&r, 0, 0, 0, 2);
    e[0] = ev_make("L1", "Away", NULL, T0 + MS(1800));
    write_ok(s, e, 1, "stream", &r);
    res_eq(&r, 0, 0, 0, 1);
    /* At an instant a row holds: stale (the first row of an instant stays). */
    e[0] = ev_make("L1", "Meal", NULL, T0 + MS(2000));
    write_ok(s, e, 1, "stream", &r);
    res_eq(&r, 0, 0, 0, 1);
    /* After the last row but before a refresh of it: no row after it, stale
     * (when that episode ended is unknown). */
    e[0] = ev_make("L1", "Break", NULL, T0 + MS(5000));
    write_ok(s, e, 1, "stream", &r);
    res_eq(&r, 0, 1, 0, 0);
    e[0] = ev_make("L1", "Meal", NULL, T0 + MS(4000));
    write_ok(s, e, 1, "stream", &r);
    res_eq(&r, 0, 0, 0, 1);
    /* Out of order within one batch: the older one is placed too. */
    e[0] = ev_make("L2", "Available", NULL, T0 + MS(1000));
    e[1] = ev_make("L2", "Training", NULL, T0 + MS(3000));
    e[2] = ev_make("L2", "Meeting", NULL, T0 + MS(2000));
    write_ok(s, e, 3, "stream", &r);
    res_eq(&r, 3, 0, 0, 0);
    ck_assert_str_eq(history_of("L2"), "Available|~|1000|stream;Meeting|Available|2000|stream;"
                                       "Training|Meeting|3000|stream");
    ck_assert_int_eq(gc_store_agent_get(s, pool, "L1", &row), APR_SUCCESS);
    ck_assert_str_eq(row->state, "Break");
    ck_assert_int_eq(row->since, T0 + MS(3000));
    ck_assert_int_eq(row->event_at, T0 + MS(5000));
    ck_assert_int_eq(gc_store_agent_get(s, pool, "L2", &row), APR_SUCCESS);
    ck_assert_str_eq(row->state, "Training");
}
END_TEST

START_TEST(overlapping_writers)
{
    gc_store_t *a = open_migrated(), *b = open_migrated();
    gc_store_batch_result_t r;
    gc_agent_row_t *row = NULL;
    gc_agent_event_t both[2];
    const char *st = NULL;
    apr_time_t at = 0;

    gc_store_test_force_slow(a, _i);
    gc_store_test_force_slow(b, _i);
    /* Both holders see the same events; each is stored once. */
    both[0] = ev_make("u1", "Available", NULL, T0 + MS(1000));
    both[1] = ev_make("u1", "Busy", NULL, T0 + MS(2000));
    write_ok(a, both, 2, "stream", &r);
    res_eq(&r, 2, 0, 0, 0);
    write_ok(b, both, 2, "stream", &r); /* judged against what a stored */
    res_eq(&r, 0, 0, 1, 1);
    ck_assert_int_eq(count_history(a, "u1"), 2);

    /* b caches u2, then a writes: b sees the write epoch moved, forgets its
     * cache and judges against the database. */
    {
        gc_agent_event_t e3 = ev_make("u2", "Away", NULL, T0 + MS(1000));
        gc_agent_event_t e4 = ev_make("u2", "Meal", NULL, T0 + MS(3000));
        write_ok(b, &e3, 1, "stream", &r);
        res_eq(&r, 1, 0, 0, 0);
        ck_assert(gc_store_test_cached(b, "u2", &st, &at));
        ck_assert_str_eq(st, "Away");
        write_ok(a, &e4, 1, "stream", &r);
        res_eq(&r, 1, 0, 0, 0);
        write_ok(b, &e4, 1, "stream", &r); /* the same event from b: nothing new */
        res_eq(&r, 0, 0, 1, 0);
        ck_assert_int_eq(count_history(a, "u2"), 2);
        ck_assert(gc_store_test_cached(b, "u2", &st, &at));
        ck_assert_str_eq(st, "Meal");
        ck_assert_int_eq(at, T0 + MS(3000));
        e4 = ev_make("u2", "Training", NULL, T0 + MS(4000));
        write_ok(b, &e4, 1, "stream", &r);
        res_eq(&r, 1, 0, 0, 0);
        ck_assert_str_eq(history_of("u2"),
                         "Away|~|1000|stream;Meal|Away|3000|stream;Training|Meal|4000|stream");
    }
    /* An event older than what the other holder stored is not a transition
     * from b's last view: it goes into the history at its place (a late
     * event), the current row untouched. */
    {
        gc_agent_event_t x1 = ev_make("u3", "Away", NULL, T0 + MS(1000));
        gc_agent_event_t x3 = ev_make("u3", "Busy", NULL, T0 + MS(3000));
        gc_agent_event_t x2 = ev_make("u3", "Meeting", NULL, T0 + MS(2000));
        gc_agent_event_t x4 = ev_make("u3", "Busy", NULL, T0 + MS(4000));
        write_ok(b, &x1, 1, "stream", &r);
        write_ok(a, &x3, 1, "stream", &r);
        write_ok(b, &x2, 1, "stream", &r);
        res_eq(&r, 1, 0, 0, 0);
        write_ok(b, &x4, 1, "stream", &r); /* same state as a stored: a refresh */
        res_eq(&r, 0, 1, 0, 0);
        ck_assert_str_eq(history_of("u3"), "Away|~|1000|stream;Meeting|Away|2000|stream;"
                                           "Busy|Meeting|3000|stream");
        ck_assert_int_eq(gc_store_agent_get(a, pool, "u3", &row), APR_SUCCESS);
        ck_assert_str_eq(row->state, "Busy");
        ck_assert_int_eq(row->since, T0 + MS(3000));
        ck_assert_int_eq(row->event_at, T0 + MS(4000));
    }
}
END_TEST

/* Rows changed behind gcmon's back (no write epoch): the WHERE of the current
 * upserts refuses a stale view, and the batch is redone against the database. */
START_TEST(external_change_detected)
{
    gc_store_t *s = open_migrated();
    gc_store_batch_result_t r;
    gc_agent_row_t *a = NULL;
    gc_agent_event_t e = ev_make("u1", "Away", NULL, T0 + MS(1000));
    const char *st = NULL;
    apr_time_t at = 0;
    apr_int64_t t0ms = apr_time_as_msec(T0);

    gc_store_test_force_slow(s, _i);
    write_ok(s, &e, 1, "stream", &r);
    e = ev_make("u2", "Away", NULL, T0 + MS(1000));
    write_ok(s, &e, 1, "stream", &r);
    sql_exec_in(db_params, apr_psprintf(pool,
                                        "UPDATE gcmon_agents SET state = 'Busy', "
                                        "since = %" APR_INT64_T_FMT ", event_at = %" APR_INT64_T_FMT
                                        " WHERE user_id IN ('u1', 'u2')",
                                        t0ms + 3000, t0ms + 3000));
    /* u1: older than the stored row: stale, even though the cache said Away@1000. */
    e = ev_make("u1", "Meeting", NULL, T0 + MS(2000));
    write_ok(s, &e, 1, "stream", &r);
    res_eq(&r, 0, 0, 0, 1);
    ck_assert_str_eq(history_of("u1"), "Away|~|1000|stream");
    ck_assert(gc_store_test_cached(s, "u1", &st, &at));
    ck_assert_str_eq(st, "Busy");
    ck_assert_int_eq(at, T0 + MS(3000));
    /* u2: the cache would call Away@4000 a refresh; it is a transition from Busy. */
    e = ev_make("u2", "Away", NULL, T0 + MS(4000));
    write_ok(s, &e, 1, "stream", &r);
    res_eq(&r, 1, 0, 0, 0);
    ck_assert_str_eq(history_of("u2"), "Away|~|1000|stream;Away|Busy|4000|stream");
    ck_assert_int_eq(gc_store_agent_get(s, pool, "u2", &a), APR_SUCCESS);
    ck_assert_str_eq(a->state, "Away");
    ck_assert_int_eq(a->since, T0 + MS(4000));
}
END_TEST

START_TEST(rollback_leaves_nothing)
{
    gc_store_t *s = open_migrated();
    gc_store_batch_result_t r;
    gc_agent_event_t first = ev_make("u1", "Available", NULL, T0 + MS(1000));
    gc_agent_event_t evs[3];
    gc_agent_row_t *a = NULL;
    const char *err = NULL, *st = NULL;
    apr_time_t at = 0;
    /* Rows written: multi-row path 2 history + 2 current; per-event path
     * u2 history + current, u1 refresh, u1 history + current. */
    int fail_at, rows = _i ? 5 : 4;

    gc_store_test_force_slow(s, _i);
    write_ok(s, &first, 1, "stream", &r);
    evs[0] = ev_make("u2", "Busy", NULL, T0 + MS(1000));
    evs[1] = ev_make("u1", "Available", NULL, T0 + MS(2000));
    evs[2] = ev_make("u1", "Away", NULL, T0 + MS(3000));

    for (fail_at = 1; fail_at <= rows; fail_at++) {
        memset(&r, 0x55, sizeof(r));
        gc_store_test_fail_write(s, fail_at);
        ck_assert_int_ne(gc_store_write_batch(s, pool, evs, 3, "stream", T0, &r, &err),
                         APR_SUCCESS);
        ck_assert_ptr_nonnull(err);
        res_eq(&r, 0, 0, 0, 0);
        /* Nothing of the batch is stored, and the cache is as before. */
        ck_assert_int_eq(count_history(s, NULL), 1);
        ck_assert_int_eq(gc_store_agent_get(s, pool, "u2", &a), APR_NOTFOUND);
        ck_assert_int_eq(gc_store_agent_get(s, pool, "u1", &a), APR_SUCCESS);
        ck_assert_int_eq(a->event_at, T0 + MS(1000));
        ck_assert(gc_store_test_cached(s, "u1", &st, &at));
        ck_assert_str_eq(st, "Available");
        ck_assert_int_eq(at, T0 + MS(1000));
        ck_assert(!gc_store_test_cached(s, "u2", NULL, NULL));
    }
    /* The hook is spent: the retry of the same batch succeeds in full. */
    write_ok(s, evs, 3, "stream", &r);
    res_eq(&r, 2, 1, 0, 0);
    ck_assert_str_eq(history_of("u1"), "Available|~|1000|stream;Away|Available|3000|stream");
    ck_assert_str_eq(history_of("u2"), "Busy|~|1000|stream");
    ck_assert(gc_store_test_cached(s, "u1", &st, &at));
    ck_assert_str_eq(st, "Away");
    ck_assert_int_eq(at, T0 + MS(3000));
}
END_TEST

/* Two states observed at the same millisecond (going OnQueue: presence and
 * routing status change together): UNIQUE(user_id, event_at) keeps the first
 * history row of the instant, the current row follows the latest. */
START_TEST(same_instant_two_states)
{
    gc_store_t *s = open_migrated();
    gc_store_batch_result_t r;
    gc_agent_row_t *a = NULL;
    gc_agent_event_t evs[3];

    gc_store_test_force_slow(s, _i);
    evs[0] = ev_make("u1", "OnQueue", "OFF_QUEUE", T0 + MS(1000));
    evs[1] = ev_make("u1", "OnQueue", "IDLE", T0 + MS(1000));
    write_ok(s, evs, 2, "stream", &r);
    res_eq(&r, 1, 0, 1, 0);
    ck_assert_int_eq(gc_store_agent_get(s, pool, "u1", &a), APR_SUCCESS);
    ck_assert_str_eq(a->state, "IDLE");
    ck_assert_int_eq(a->since, T0 + MS(1000));
    /* The next transition chains from the current state. */
    evs[2] = ev_make("u1", "Away", NULL, T0 + MS(2000));
    write_ok(s, &evs[2], 1, "stream", &r);
    res_eq(&r, 1, 0, 0, 0);
    ck_assert_str_eq(history_of("u1"), "OFF_QUEUE|~|1000|stream;Away|IDLE|2000|stream");
    /* Replaying all three (an overlapping holder) changes nothing. */
    write_ok(s, evs, 3, "stream", &r);
    res_eq(&r, 0, 0, 1, 2);
    ck_assert_int_eq(count_history(s, "u1"), 2);
    ck_assert_int_eq(gc_store_agent_get(s, pool, "u1", &a), APR_SUCCESS);
    ck_assert_str_eq(a->state, "Away");
}
END_TEST

/* Both paths leave the same rows for the same events, including how a batch
 * folds several events of one agent into its current row. */
static void paths_batch(gc_store_t *s, const char *pfx)
{
    gc_store_batch_result_t r;
    gc_agent_event_t pre, evs[8];
    const char *u = apr_pstrcat(pool, pfx, "-u", NULL), *v = apr_pstrcat(pool, pfx, "-v", NULL);

    pre = ev_make(u, "OnQueue", "IDLE", T0 + MS(1000));
    pre.user_name = "Old Name";
    pre.queue_ids = "[\"q0\"]";
    write_ok(s, &pre, 1, "resync", &r);
    res_eq(&r, 1, 0, 0, 0);

    evs[0] = ev_make(u, "OnQueue", "IDLE", T0 + MS(2000)); /* R: new queues */
    evs[0].queue_ids = "[\"q1\"]";
    evs[0].presence_id = NULL;
    evs[1] = ev_make(v, "Away", NULL, T0 + MS(2000));      /* T: new agent */
    evs[2] = ev_make(u, "Available", NULL, T0 + MS(3000)); /* T, no routing */
    evs[2].presence_id = NULL;
    evs[3] = ev_make(u, "Available", "OFF_QUEUE", T0 + MS(3500)); /* R: routing, id */
    evs[4] = ev_make(u, "Available", NULL, T0 + MS(3500));        /* D */
    evs[5] = ev_make(v, "Away", NULL, T0 + MS(1500));             /* S */
    evs[5].user_name = "Ignored";
    evs[6] = ev_make(u, "Busy", NULL, T0 + MS(4000)); /* T: renamed */
    evs[6].user_name = "New Name";
    evs[7] = ev_make(v, "Meal", NULL, T0 + MS(5000)); /* T */
    write_ok(s, evs, 8, "stream", &r);
    res_eq(&r, 4, 2, 1, 1);
}

static const char *agent_text(gc_store_t *s, const char *user)
{
    gc_agent_row_t *a = NULL;
    ck_assert_int_eq(gc_store_agent_get(s, pool, user, &a), APR_SUCCESS);
    return apr_psprintf(
        pool, "%s|%s|%s|%s|%s|%s|%" APR_INT64_T_FMT "|%" APR_INT64_T_FMT,
        a->user_name ? a->user_name : "~", a->state, a->presence ? a->presence : "~",
        a->presence_id ? a->presence_id : "~", a->routing_status ? a->routing_status : "~",
        a->queue_ids ? a->queue_ids : "~", (apr_int64_t)apr_time_as_msec(a->since - T0),
        (apr_int64_t)apr_time_as_msec(a->event_at - T0));
}

static const char *history_full(const char *user)
{
    return sql_rows(apr_psprintf(pool,
                                 "SELECT user_name, state, previous_state, presence, "
                                 "presence_id, routing_status, event_at - %" APR_INT64_T_FMT
                                 " FROM gcmon_history WHERE user_id = '%s' ORDER BY id LIMIT 100",
                                 (apr_int64_t)apr_time_as_msec(T0), user));
}

START_TEST(paths_agree)
{
    gc_store_t *fast = open_migrated(), *slow = open_migrated();

    gc_store_test_force_slow(slow, 1);
    paths_batch(fast, "f");
    paths_batch(slow, "s");
    ck_assert_str_eq(agent_text(fast, "f-u"), agent_text(slow, "s-u"));
    ck_assert_str_eq(agent_text(fast, "f-v"), agent_text(slow, "s-v"));
    ck_assert_str_eq(history_full("f-u"), history_full("s-u"));
    ck_assert_str_eq(history_full("f-v"), history_full("s-v"));
    /* And what that is, spelled out. */
    ck_assert_str_eq(agent_text(fast, "f-u"),
                     "New Name|Busy|Busy|def-Busy|OFF_QUEUE|[\"q1\"]|4000|4000");
    ck_assert_str_eq(agent_text(fast, "f-v"), "~|Meal|Meal|def-Meal|~|~|5000|5000");
    ck_assert_str_eq(history_full("f-u"), "Old Name|IDLE|~|OnQueue|def-OnQueue|IDLE|1000;"
                                          "Old Name|Available|IDLE|Available|~|~|3000;"
                                          "New Name|Busy|Available|Busy|def-Busy|~|4000");
}
END_TEST

START_TEST(schema_change_under_cached_statements)
{
    gc_store_t *s = open_migrated();
    gc_store_batch_result_t r;
    gc_agent_event_t e = ev_make("u1", "Available", NULL, T0 + MS(1000));
    gc_channel_rec_t c = { "ch1", "wss://x/1", T0, "[]" };
    apr_array_header_t *chs = NULL;
    int held = 0;

    write_ok(s, &e, 1, "stream", &r);
    ck_assert_int_eq(gc_store_channel_save(s, &c), APR_SUCCESS);
    /* Another connection changes the schema: sqlite3's cached statements expire. */
    sql_exec_in(db_params, "CREATE TABLE gcmon_test_other (x INTEGER)");
    e = ev_make("u1", "Busy", NULL, T0 + MS(2000));
    write_ok(s, &e, 1, "stream", &r);
    res_eq(&r, 1, 0, 0, 0);
    sql_exec_in(db_params, "DROP TABLE gcmon_test_other");
    ck_assert_int_eq(gc_store_channels_load(s, pool, &chs), APR_SUCCESS);
    ck_assert_int_eq(chs->nelts, 1);
    sql_exec_in(db_params, "CREATE TABLE gcmon_test_other (x INTEGER)");
    ck_assert_int_eq(gc_store_lease(s, "stream", "me", T0, apr_time_from_sec(5), &held, NULL, pool),
                     APR_SUCCESS);
    ck_assert(held);
}
END_TEST

/* ------------------------------------------------------------------ lease */

START_TEST(lease_lifecycle)
{
    gc_store_t *s = open_migrated(), *o = open_migrated();
    apr_interval_time_t ttl = apr_time_from_sec(10);
    const char *cur = NULL, *holder = NULL;
    apr_time_t exp = 0, acq = 0;
    int held = -1;

    ck_assert_int_eq(gc_store_lease_get(s, pool, "stream", &holder, &exp, &acq), APR_NOTFOUND);
    ck_assert_int_eq(gc_store_lease(s, "stream", "A", T0, ttl, &held, &cur, pool), APR_SUCCESS);
    ck_assert(held);
    ck_assert_str_eq(cur, "A");
    /* B (another connection) is refused while A's lease runs. */
    ck_assert_int_eq(gc_store_lease(o, "stream", "B", T0 + MS(1000), ttl, &held, &cur, pool),
                     APR_SUCCESS);
    ck_assert(!held);
    ck_assert_str_eq(cur, "A");
    /* A renews; the tenure start stays. */
    ck_assert_int_eq(gc_store_lease(s, "stream", "A", T0 + MS(5000), ttl, &held, &cur, pool),
                     APR_SUCCESS);
    ck_assert(held);
    ck_assert_int_eq(gc_store_lease_get(o, pool, "stream", &holder, &exp, &acq), APR_SUCCESS);
    ck_assert_str_eq(holder, "A");
    ck_assert_int_eq(exp, T0 + MS(15000));
    ck_assert_int_eq(acq, T0);
    /* Still refused just before expiry (inclusive), taken just after. */
    ck_assert_int_eq(gc_store_lease(o, "stream", "B", T0 + MS(15000), ttl, &held, &cur, pool),
                     APR_SUCCESS);
    ck_assert(!held);
    ck_assert_int_eq(gc_store_lease(o, "stream", "B", T0 + MS(15001), ttl, &held, &cur, pool),
                     APR_SUCCESS);
    ck_assert(held);
    ck_assert_str_eq(cur, "B");
    ck_assert_int_eq(gc_store_lease_get(s, pool, "stream", &holder, &exp, &acq), APR_SUCCESS);
    ck_assert_str_eq(holder, "B");
    ck_assert_int_eq(acq, T0 + MS(15001));
    /* A is refused now; other lease names are independent. */
    ck_assert_int_eq(gc_store_lease(s, "stream", "A", T0 + MS(16000), ttl, &held, &cur, pool),
                     APR_SUCCESS);
    ck_assert(!held);
    ck_assert_str_eq(cur, "B");
    ck_assert_int_eq(gc_store_lease(s, "other", "A", T0 + MS(16000), ttl, &held, NULL, pool),
                     APR_SUCCESS);
    ck_assert(held);
    /* Release by a non-holder does nothing; by the holder frees it at once. */
    ck_assert_int_eq(gc_store_lease_release(s, "stream", "A"), APR_SUCCESS);
    ck_assert_int_eq(gc_store_lease(s, "stream", "A", T0 + MS(17000), ttl, &held, &cur, pool),
                     APR_SUCCESS);
    ck_assert(!held);
    ck_assert_int_eq(gc_store_lease_release(o, "stream", "B"), APR_SUCCESS);
    ck_assert_int_eq(gc_store_lease(s, "stream", "A", T0 + MS(17001), ttl, &held, &cur, pool),
                     APR_SUCCESS);
    ck_assert(held);
    ck_assert_str_eq(cur, "A");
    ck_assert_int_eq(gc_store_lease_get(s, pool, "stream", &holder, &exp, &acq), APR_SUCCESS);
    ck_assert_int_eq(acq, T0 + MS(17001));
    ck_assert_int_eq(gc_store_lease(s, "stream", "", T0, ttl, &held, NULL, pool), APR_EINVAL);
}
END_TEST

/* The holder's state document rides on its lease row: stored only by the
 * holder, read back by everyone. */
START_TEST(lease_carries_holder_state)
{
    gc_store_t *s = open_migrated(), *o = open_migrated();
    apr_interval_time_t ttl = apr_time_from_sec(10);
    const char *cur = NULL, *doc = NULL;
    int held = -1;

    ck_assert_int_eq(
        gc_store_lease_state(s, "stream", "A", T0, ttl, "{\"a\":1}", &held, &cur, &doc, pool),
        APR_SUCCESS);
    ck_assert(held);
    ck_assert_str_eq(doc, "{\"a\":1}");
    /* A standby's document is never stored; it reads the holder's. */
    ck_assert_int_eq(gc_store_lease_state(o, "stream", "B", T0 + MS(1000), ttl, "{\"b\":1}", &held,
                                          &cur, &doc, pool),
                     APR_SUCCESS);
    ck_assert(!held);
    ck_assert_str_eq(cur, "A");
    ck_assert_str_eq(doc, "{\"a\":1}");
    /* A renewal without a document keeps the stored one. */
    ck_assert_int_eq(gc_store_lease(s, "stream", "A", T0 + MS(2000), ttl, &held, &cur, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(
        gc_store_lease_state(o, "stream", "B", T0 + MS(3000), ttl, NULL, &held, &cur, &doc, pool),
        APR_SUCCESS);
    ck_assert_str_eq(doc, "{\"a\":1}");
    /* A lease row with no document reads as "". */
    ck_assert_int_eq(gc_store_lease_state(s, "other", "A", T0, ttl, NULL, &held, &cur, &doc, pool),
                     APR_SUCCESS);
    ck_assert(held);
    ck_assert_str_eq(doc, "");
}
END_TEST

typedef struct {
    int holder;
    apr_int64_t from_ms, to_ms;
} grant_t;

typedef struct {
    int n;
    int takeovers;
    grant_t g[8192];
} grants_t;

#define LEASE_TTL_MS 40

static int child_contend(int idx, void *arg)
{
    grants_t *sh = arg;
    apr_pool_t *p, *ip;
    gc_store_t *s = NULL;
    const char *err = NULL;
    char me[32];
    apr_time_t end;
    int streak = 0, rc = 0;

    apr_pool_create(&p, NULL);
    apr_pool_create(&ip, p);
    snprintf(me, sizeof(me), "proc-%d", idx);
    if (gc_store_open(p, driver_name, db_params, &s, &err) != APR_SUCCESS) {
        fprintf(stderr, "%s: open: %s\n", me, err);
        apr_pool_destroy(p);
        return 2;
    }
    srand((unsigned)getpid());
    end = apr_time_now() + apr_time_from_msec(1500);
    while (apr_time_now() < end) {
        apr_time_t now;
        int held = 0;
        apr_status_t rv;

        apr_pool_clear(ip);
        now = apr_time_now();
        rv =
            gc_store_lease(s, "stream", me, now, apr_time_from_msec(LEASE_TTL_MS), &held, NULL, ip);
        if (rv != APR_SUCCESS) {
            fprintf(stderr, "%s: lease failed (%d)\n", me, rv);
            rc = 3;
            break;
        }
        if (held) {
            int i = __atomic_fetch_add(&sh->n, 1, __ATOMIC_SEQ_CST);
            if (i < (int)(sizeof(sh->g) / sizeof(sh->g[0]))) {
                sh->g[i].holder = idx;
                sh->g[i].from_ms = apr_time_as_msec(now);
                sh->g[i].to_ms = apr_time_as_msec(now + apr_time_from_msec(LEASE_TTL_MS));
            }
            if (++streak >= 3) {
                /* Stall past the expiry, as a holder that hangs or dies would. */
                apr_sleep(apr_time_from_msec(2 * LEASE_TTL_MS));
                streak = 0;
            }
            else {
                apr_sleep(apr_time_from_msec(LEASE_TTL_MS / 4));
            }
        }
        else {
            streak = 0;
            apr_sleep(apr_time_from_msec(1 + rand() % 4));
        }
    }
    apr_pool_destroy(p);
    return rc;
}

START_TEST(lease_contention_processes)
{
    enum { N = 4 };
    pid_t pids[N];
    grants_t *sh;
    int gate[2], i, j, n, holders = 0, seen[N] = { 0 };
    gc_store_t *s = open_migrated();

    gc_store_close(s);
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(sh != MAP_FAILED);
    memset(sh, 0, sizeof(*sh));
    ck_assert_int_eq(pipe(gate), 0);
    for (i = 0; i < N; i++) {
        pids[i] = spawn(child_contend, i, sh, gate);
    }
    close(gate[0]);
    close(gate[1]);
    reap_all(pids, N);
    n = sh->n < 8192 ? sh->n : 8192;
    ck_assert_int_gt(n, 10);
    for (i = 0; i < n; i++) {
        if (!seen[sh->g[i].holder]++) {
            holders++;
        }
    }
    ck_assert_msg(holders >= 2, "only %d process(es) ever held the lease", holders);
    /* At any instant at most one unexpired holder: grants of different
     * processes never overlap in time. */
    for (i = 0; i < n; i++) {
        for (j = i + 1; j < n; j++) {
            const grant_t *a = &sh->g[i], *b = &sh->g[j];
            if (a->holder != b->holder) {
                ck_assert_msg(a->to_ms < b->from_ms || b->to_ms < a->from_ms,
                              "proc-%d [%lld,%lld] overlaps proc-%d [%lld,%lld]", a->holder,
                              (long long)a->from_ms, (long long)a->to_ms, b->holder,
                              (long long)b->from_ms, (long long)b->to_ms);
            }
        }
    }
    munmap(sh, sizeof(*sh));
}
END_TEST

/* --------------------------------------------------------------- channels */

START_TEST(channels_round_trip)
{
    gc_store_t *s = open_migrated(), *s2;
    gc_channel_rec_t c1 = { "streaming-1-abc", "wss://streaming.example/channels/1", T0,
                            "[\"v2.users.u1.activity\"]" };
    gc_channel_rec_t c2 = { "streaming-0-xyz", "wss://streaming.example/channels/0",
                            T0 + apr_time_from_sec(86400), "[]" };
    apr_array_header_t *a = NULL;
    gc_channel_rec_t *r;

    ck_assert_int_eq(gc_store_channels_load(s, pool, &a), APR_SUCCESS);
    ck_assert_int_eq(a->nelts, 0);
    ck_assert_int_eq(gc_store_channel_save(s, &c1), APR_SUCCESS);
    ck_assert_int_eq(gc_store_channel_save(s, &c2), APR_SUCCESS);
    c1.topics = "[\"v2.users.u1.activity\",\"v2.users.u2.activity\"]";
    c1.expires_at = T0 + MS(1234);
    ck_assert_int_eq(gc_store_channel_save(s, &c1), APR_SUCCESS);

    s2 = open_migrated(); /* a new holder sees them */
    ck_assert_int_eq(gc_store_channels_load(s2, pool, &a), APR_SUCCESS);
    ck_assert_int_eq(a->nelts, 2);
    r = &APR_ARRAY_IDX(a, 0, gc_channel_rec_t);
    ck_assert_str_eq(r->id, "streaming-0-xyz");
    ck_assert_str_eq(r->connect_uri, "wss://streaming.example/channels/0");
    ck_assert_int_eq(r->expires_at, T0 + apr_time_from_sec(86400));
    ck_assert_str_eq(r->topics, "[]");
    r = &APR_ARRAY_IDX(a, 1, gc_channel_rec_t);
    ck_assert_str_eq(r->id, "streaming-1-abc");
    ck_assert_str_eq(r->topics, "[\"v2.users.u1.activity\",\"v2.users.u2.activity\"]");
    ck_assert_int_eq(r->expires_at, T0 + MS(1234));

    ck_assert_int_eq(gc_store_channel_delete(s2, "streaming-0-xyz"), APR_SUCCESS);
    ck_assert_int_eq(gc_store_channel_delete(s2, "no-such"), APR_SUCCESS);
    ck_assert_int_eq(gc_store_channels_load(s, pool, &a), APR_SUCCESS);
    ck_assert_int_eq(a->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(a, 0, gc_channel_rec_t).id, "streaming-1-abc");
}
END_TEST

/* ------------------------------------------------------------------ prune */

START_TEST(prune_in_chunks)
{
    gc_store_t *s = open_migrated();
    enum { USERS = 5, PER = 500 };
    gc_agent_event_t *evs = apr_pcalloc(pool, USERS * PER * sizeof(*evs));
    static const char *const states[] = { "Available", "Busy", "Away", "Meal" };
    gc_store_batch_result_t r;
    int u, k, n = 0, deleted = -1;

    for (k = 0; k < PER; k++) {
        for (u = 0; u < USERS; u++) {
            evs[n++] = ev_make(apr_psprintf(pool, "user-%d", u), states[(k + u) % 4], NULL,
                               T0 + MS(1000 * (k + 1)));
        }
    }
    write_ok(s, evs, n, "stream", &r);
    res_eq(&r, USERS * PER, 0, 0, 0);
    /* Rows at k+1 < 301 s, i.e. 300 per user, are older than the cut-off. */
    ck_assert_int_eq(gc_store_prune(s, T0 + MS(301000), 1200, &deleted), APR_SUCCESS);
    ck_assert_int_eq(deleted, 1200);
    ck_assert_int_eq(count_history(s, NULL), USERS * PER - 1200);
    ck_assert_int_eq(gc_store_prune(s, T0 + MS(301000), 100000, &deleted), APR_SUCCESS);
    ck_assert_int_eq(deleted, USERS * 300 - 1200);
    ck_assert_int_eq(count_history(s, NULL), USERS * 200);
    ck_assert_str_eq(sql_rows(apr_psprintf(
                         pool, "SELECT MIN(event_at) - %" APR_INT64_T_FMT " FROM gcmon_history",
                         (apr_int64_t)apr_time_as_msec(T0))),
                     "301000");
    ck_assert_int_eq(gc_store_prune(s, T0 + MS(301000), 100, &deleted), APR_SUCCESS);
    ck_assert_int_eq(deleted, 0);
    ck_assert_int_eq(gc_store_prune(s, T0, 0, &deleted), APR_EINVAL);
    /* Current rows are not history: they stay. */
    ck_assert_str_eq(sql_rows("SELECT COUNT(*) FROM gcmon_agents"), "5");
}
END_TEST

/* ----------------------------------------------------------------- ingest */

static gc_agent_event_t *ingest_events(int users, int per)
{
    static const char *const presences[] = { "Available", "Busy", "Away", "OnQueue" };
    gc_agent_event_t *evs = apr_pcalloc(pool, (apr_size_t)users * per * sizeof(*evs));
    const char **ids = apr_pcalloc(pool, users * sizeof(*ids));
    int u, k, n = 0;

    for (u = 0; u < users; u++) {
        ids[u] = apr_psprintf(pool, "6f1c2a3b-0000-4000-8000-%012d", u);
    }
    /* Time-major, as a stream delivers: every batch touches many agents. */
    for (k = 0; k < per; k++) {
        for (u = 0; u < users; u++) {
            evs[n++] =
                ev_make(ids[u], presences[(k + u) % 4], "IDLE", T0 + MS(1000 * (apr_int64_t)k + u));
        }
    }
    return evs;
}

START_TEST(ingest_100k)
{
    enum { USERS = 1000, PER = 100, BATCH = 1000, N = USERS * PER };
    gc_agent_event_t *evs = ingest_events(USERS, PER);
    gc_store_t *s = open_migrated(), *raw;
    gc_store_batch_result_t r;
    apr_time_t t0, t_ingest, t_raw;
    const char *err = NULL;
    long total = 0;
    int i;

    /* Baseline: plain INSERTs of the same rows, same batches, fresh database. */
    raw = open_store_in(pool, raw_params);
    ck_assert_msg(gc_store_migrate(raw, &err) == APR_SUCCESS, "%s", err);
    t0 = apr_time_now();
    for (i = 0; i < N; i += BATCH) {
        ck_assert_msg(gc_store_test_raw_insert(raw, pool, evs + i, BATCH, "stream", T0, &err)
                          == APR_SUCCESS,
                      "raw insert: %s", err);
    }
    t_raw = apr_time_now() - t0;
    ck_assert_int_eq(count_history(raw, NULL), N);
    gc_store_close(raw);

    t0 = apr_time_now();
    for (i = 0; i < N; i += BATCH) {
        write_ok(s, evs + i, BATCH, "stream", &r);
        total += r.transitions;
    }
    t_ingest = apr_time_now() - t0;
    ck_assert_int_eq(total, N);
    ck_assert_int_eq(count_history(s, NULL), N);
    ck_assert_str_eq(sql_rows("SELECT COUNT(*) FROM gcmon_agents"), "1000");
    fprintf(stderr,
            "store[%s]: ingest %d events in batches of %d: %.0f rows/s; raw batched "
            "INSERT %.0f rows/s; ratio %.0f%%\n",
            driver_name, N, BATCH, N / ((double)t_ingest / APR_USEC_PER_SEC),
            N / ((double)t_raw / APR_USEC_PER_SEC), 100.0 * (double)t_raw / (double)t_ingest);
}
END_TEST

/* ------------------------------------------------------- pgsql specifics */

START_TEST(pg_connection_killed_then_retry)
{
    gc_store_t *s = open_migrated();
    gc_store_batch_result_t r;
    gc_agent_event_t e = ev_make("u1", "Available", NULL, T0 + MS(1000));
    const char *err = NULL;
    apr_status_t rv;
    int tries;

    write_ok(s, &e, 1, "stream", &r);
    /* The server drops every other session (ours included). */
    sql_rows("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE pid <> pg_backend_pid() AND datname = current_database()");
    e = ev_make("u1", "Busy", NULL, T0 + MS(2000));
    rv = gc_store_write_batch(s, pool, &e, 1, "stream", T0, &r, &err);
    for (tries = 0; rv != APR_SUCCESS && tries < 3; tries++) {
        ck_assert_ptr_nonnull(err);
        rv = gc_store_write_batch(s, pool, &e, 1, "stream", T0, &r, &err);
    }
    ck_assert_msg(rv == APR_SUCCESS, "no recovery: %s", err);
    ck_assert_str_eq(history_of("u1"), "Available|~|1000|stream;Busy|Available|2000|stream");
}
END_TEST

/* ---------------------------------------------------------------- audit */

/* The audit trail's statements on both dialects: NULL filters, keyset,
 * RETURNING id, the outbox row in the same transaction, short-lived locks. */
START_TEST(audit_round_trip)
{
    gc_store_t *s = open_migrated();
    gc_query_t f;
    gc_page_t pg;
    const char *err = NULL;
    int held = 0, i;
    apr_int64_t ids[3];

    for (i = 0; i < 3; i++) {
        gc_audit_rec_t a;
        memset(&a, 0, sizeof(a));
        a.at = apr_time_now();
        a.actor = i == 1 ? "bob" : "alice";
        a.actor_source = i == 2 ? NULL : (i == 1 ? "header:X-Forwarded-User" : "user");
        a.action = "agent_status_change";
        a.target = i == 2 ? NULL : "u1";
        a.request = "{\"status\":\"Break\"}";
        a.status = 200 + i;
        ck_assert_msg(gc_store_audit_add(s, pool, &a, i == 0 ? "status" : NULL, "{}", &err)
                          == APR_SUCCESS,
                      "audit add: %s", err);
        ids[i] = a.id;
    }
    ck_assert(ids[0] > 0 && ids[1] > ids[0] && ids[2] > ids[1]);
    memset(&f, 0, sizeof(f));
    f.limit = 1;
    f.actor = "alice";
    ck_assert_msg(gc_store_audit_list(s, pool, &f, &pg, &err) == APR_SUCCESS, "list: %s", err);
    ck_assert_int_eq(pg.total, 2);
    ck_assert_int_eq(pg.has_more, 1);
    ck_assert_int_eq(pg.rows->nelts, 1);
    ck_assert(APR_ARRAY_IDX(pg.rows, 0, gc_audit_rec_t).id == ids[2]);
    ck_assert_ptr_null(APR_ARRAY_IDX(pg.rows, 0, gc_audit_rec_t).target);
    ck_assert_ptr_null(APR_ARRAY_IDX(pg.rows, 0, gc_audit_rec_t).result);
    ck_assert_ptr_null(APR_ARRAY_IDX(pg.rows, 0, gc_audit_rec_t).actor_source);
    f.has_cursor = 1; /* keyset below ids[2] */
    f.cursor.id = ids[2];
    ck_assert(gc_store_audit_list(s, pool, &f, &pg, &err) == APR_SUCCESS);
    ck_assert_int_eq(pg.has_more, 0);
    ck_assert(APR_ARRAY_IDX(pg.rows, 0, gc_audit_rec_t).id == ids[0]);
    ck_assert_str_eq(APR_ARRAY_IDX(pg.rows, 0, gc_audit_rec_t).request, "{\"status\":\"Break\"}");
    ck_assert_str_eq(APR_ARRAY_IDX(pg.rows, 0, gc_audit_rec_t).actor_source, "user");
    ck_assert_str_eq(sql_rows("SELECT COUNT(*) FROM gcmon_outbox WHERE target = 'status'"), "1");

    ck_assert(gc_store_lease(s, "agent-status:u1", "h1", apr_time_now(), apr_time_from_sec(60),
                             &held, NULL, pool)
              == APR_SUCCESS);
    ck_assert_int_eq(held, 1);
    ck_assert(gc_store_lease_delete(s, pool, "agent-status:u1", "h2") == APR_SUCCESS);
    ck_assert_str_eq(sql_rows("SELECT COUNT(*) FROM gcmon_lease WHERE name = 'agent-status:u1'"),
                     "1");
    ck_assert(gc_store_lease_delete(s, pool, "agent-status:u1", "h1") == APR_SUCCESS);
    ck_assert_str_eq(sql_rows("SELECT COUNT(*) FROM gcmon_lease WHERE name = 'agent-status:u1'"),
                     "0");
}
END_TEST

/* ---------------------------------------------------------------- idempotency */

/* Stored answers of Idempotency-Key requests on both dialects: absent, kept,
 * a live row not replaced, an expired one replaced, scopes apart. */
START_TEST(idem_round_trip)
{
    gc_store_t *s = open_migrated();
    gc_store_idem_rec_t rec, got;
    const char *err = NULL;
    apr_time_t t0 = apr_time_now();
    int found = -1, stored = -1;

    ck_assert(gc_store_idem_key_valid("k-1"));
    ck_assert(!gc_store_idem_key_valid(""));
    ck_assert(!gc_store_idem_key_valid("a b"));
    ck_assert(!gc_store_idem_key_valid("\x7f"));
    ck_assert(gc_store_idem_key_valid(apr_psprintf(pool, "%0255d", 0)));
    ck_assert(!gc_store_idem_key_valid(apr_psprintf(pool, "%0256d", 0)));

    ck_assert_msg(gc_store_idem_get(s, pool, "weights", "k1", t0, &got, &found, &err)
                      == APR_SUCCESS,
                  "get: %s", err);
    ck_assert_int_eq(found, 0);
    memset(&rec, 0, sizeof(rec));
    rec.request_hash = "h1";
    rec.status = 200;
    rec.content_type = "application/json; charset=utf-8";
    rec.body = "{\"a\":1}";
    ck_assert_msg(
        gc_store_idem_put(s, pool, "weights", "k1", &rec, t0, apr_time_from_sec(60), &stored, &err)
            == APR_SUCCESS,
        "put: %s", err);
    ck_assert_int_eq(stored, 1);
    ck_assert(gc_store_idem_get(s, pool, "weights", "k1", t0 + 1000, &got, &found, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(found, 1);
    ck_assert_str_eq(got.request_hash, "h1");
    ck_assert_int_eq(got.status, 200);
    ck_assert_str_eq(got.content_type, "application/json; charset=utf-8");
    ck_assert_str_eq(got.body, "{\"a\":1}");
    /* another scope does not see it */
    ck_assert(gc_store_idem_get(s, pool, "other", "k1", t0, &got, &found, &err) == APR_SUCCESS);
    ck_assert_int_eq(found, 0);
    /* a live row is kept */
    rec.request_hash = "h2";
    rec.status = 409;
    ck_assert(gc_store_idem_put(s, pool, "weights", "k1", &rec, t0 + 1000, apr_time_from_sec(60),
                                &stored, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(stored, 0);
    ck_assert(gc_store_idem_get(s, pool, "weights", "k1", t0 + 2000, &got, &found, &err)
              == APR_SUCCESS);
    ck_assert_str_eq(got.request_hash, "h1");
    /* expired: absent, and replaced */
    ck_assert(
        gc_store_idem_get(s, pool, "weights", "k1", t0 + apr_time_from_sec(61), &got, &found, &err)
        == APR_SUCCESS);
    ck_assert_int_eq(found, 0);
    ck_assert(gc_store_idem_put(s, pool, "weights", "k1", &rec, t0 + apr_time_from_sec(61),
                                apr_time_from_sec(60), &stored, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(stored, 1);
    ck_assert(
        gc_store_idem_get(s, pool, "weights", "k1", t0 + apr_time_from_sec(62), &got, &found, &err)
        == APR_SUCCESS);
    ck_assert_int_eq(found, 1);
    ck_assert_str_eq(got.request_hash, "h2");
    ck_assert_int_eq(got.status, 409);
}
END_TEST

/* ------------------------------------------------------------------ suite */

gc_store_t *store_test_migrated(apr_pool_t **p)
{
    *p = pool;
    return open_migrated();
}

static void add_common(TCase *tc)
{
    strategy_store_tcases(tc);
    tcase_add_test(tc, migrate_idempotent);
    tcase_add_test(tc, migrate_refuses_newer_schema);
    tcase_add_test(tc, migrate_concurrent);
    tcase_add_loop_test(tc, batch_verdicts_in_order, 0, 2);
    tcase_add_loop_test(tc, refresh_keeps_since, 0, 2);
    tcase_add_test(tc, unrecordable_events_ignored);
    tcase_add_loop_test(tc, overlapping_writers, 0, 2);
    tcase_add_loop_test(tc, late_events_take_their_place, 0, 2);
    tcase_add_loop_test(tc, external_change_detected, 0, 2);
    tcase_add_loop_test(tc, rollback_leaves_nothing, 0, 2);
    tcase_add_loop_test(tc, same_instant_two_states, 0, 2);
    tcase_add_test(tc, paths_agree);
    tcase_add_test(tc, schema_change_under_cached_statements);
    tcase_add_test(tc, lease_lifecycle);
    tcase_add_test(tc, lease_carries_holder_state);
    tcase_add_test(tc, lease_contention_processes);
    tcase_add_test(tc, channels_round_trip);
    tcase_add_test(tc, prune_in_chunks);
    tcase_add_test(tc, ingest_100k);
    tcase_add_test(tc, audit_round_trip);
    tcase_add_test(tc, idem_round_trip);
    tcase_add_test(tc, board_generation);
    tcase_add_test(tc, board_cache_merges);
}

Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("sqlite3");

    tcase_add_unchecked_fixture(tc, sqlite_base_start, sqlite_base_stop);
    tcase_add_checked_fixture(tc, setup_sqlite, teardown_sqlite);
    tcase_set_timeout(tc, 120);
    add_common(tc);
    suite_add_tcase(s, tc);

    if (access(PG_BIN "/initdb", X_OK) == 0 && access(PG_BIN "/pg_ctl", X_OK) == 0) {
        tc = tcase_create("pgsql");
        tcase_add_unchecked_fixture(tc, pg_start, pg_stop);
        tcase_add_checked_fixture(tc, setup_pg, teardown_pg);
        tcase_set_timeout(tc, 300);
        add_common(tc);
        tcase_add_test(tc, pg_connection_killed_then_retry);
        suite_add_tcase(s, tc);
    }
    else {
        fprintf(stderr, "store: PostgreSQL 15 is not installed (%s): pgsql tests skipped\n",
                PG_BIN);
    }
    return s;
}
