/* Idle alerts (gc_alerts.h): the timer engine alone (no clock, no database),
 * then the database side against SQLite files and, when PostgreSQL 15 is
 * installed, a throwaway cluster of the suite's own (unix socket only). */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "gc_alerts.h"
#include "gc_store.h"
#include "unit.h"

#ifndef PG_BIN
#define PG_BIN "/usr/lib/postgresql/15/bin"
#endif
#define T0 ((apr_time_t)1763750000000LL * 1000) /* 2025-11-21, ms precision */
#define SEC(n) apr_time_from_sec(n)
#define MS(n) ((apr_time_t)(n)*1000)

/* Tests only (gc_alerts.c): bytes the engine took for its agents. */
apr_size_t gc_alerts_test_bytes(const gc_alerts_t *a);

static apr_pool_t *pool;

static void setup_pool(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown_pool(void)
{
    apr_pool_destroy(pool);
}

/* ---------------------------------------------------------------- engine */

static gc_alerts_t *engine(int n, const gc_alert_rule_t *rules)
{
    apr_array_header_t *arr = apr_array_make(pool, n, sizeof(gc_alert_rule_t));
    gc_alerts_t *a;
    int i;

    for (i = 0; i < n; i++) {
        *(gc_alert_rule_t *)apr_array_push(arr) = rules[i];
    }
    a = gc_alerts_create(pool, arr);
    ck_assert_ptr_nonnull(a);
    return a;
}

static gc_alerts_t *engine1(const char *state, apr_interval_time_t threshold,
                            apr_interval_time_t repeat)
{
    gc_alert_rule_t r = { state, threshold, repeat };
    return engine(1, &r);
}

static gc_alert_due_t take1(gc_alerts_t *a, apr_time_t now)
{
    gc_alert_due_t d[4];
    int n = gc_alerts_take_due(a, now, d, 4);
    ck_assert_int_eq(n, 1);
    return d[0];
}

static void none_due(gc_alerts_t *a, apr_time_t now)
{
    gc_alert_due_t d[4];
    ck_assert_int_eq(gc_alerts_take_due(a, now, d, 4), 0);
}

START_TEST(defaults)
{
    apr_array_header_t *r = gc_alert_rules_default(pool);
    const gc_alert_rule_t *v = (const gc_alert_rule_t *)r->elts;

    ck_assert_int_eq(r->nelts, 2);
    ck_assert_str_eq(v[0].state, "Available");
    ck_assert_str_eq(v[1].state, "IDLE");
    ck_assert_int_eq(v[0].threshold, SEC(900));
    ck_assert_int_eq(v[1].threshold, SEC(900));
    ck_assert_int_eq(v[0].repeat, 0);
    ck_assert_int_eq(v[1].repeat, 0);
    ck_assert(gc_state_valid(v[0].state) && gc_state_valid(v[1].state));
}
END_TEST

START_TEST(crossing_at_threshold)
{
    gc_alerts_t *a = engine1("Available", SEC(60), 0);
    gc_alert_due_t d;
    char id[8] = "u1";

    ck_assert_int_eq(gc_alerts_next_due(a), 0);
    gc_alerts_observe(a, id, "Available", T0);
    strcpy(id, "xx"); /* the engine keeps its own copy */
    ck_assert_int_eq(gc_alerts_scheduled(a), 1);
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(60));
    none_due(a, T0 + SEC(60) - 1);
    d = take1(a, T0 + SEC(60));
    ck_assert_str_eq(d.user_id, "u1");
    ck_assert_str_eq(d.state, "Available");
    ck_assert_int_eq(d.episode_at, T0);
    ck_assert_int_eq(d.seq, 0);
    ck_assert_int_eq(d.threshold, SEC(60));
    ck_assert_int_eq(d.due_at, T0 + SEC(60));
    /* Once per episode: the same observation again changes nothing. */
    ck_assert_int_eq(gc_alerts_scheduled(a), 0);
    ck_assert_int_eq(gc_alerts_next_due(a), 0);
    gc_alerts_observe(a, "u1", "Available", T0);
    ck_assert_int_eq(gc_alerts_scheduled(a), 0);
    none_due(a, T0 + SEC(86400));
}
END_TEST

START_TEST(leaving_before_threshold)
{
    gc_alerts_t *a = engine1("Available", SEC(60), 0);

    gc_alerts_observe(a, "u1", "Available", T0);
    gc_alerts_observe(a, "u1", "Busy", T0 + SEC(59));
    ck_assert_int_eq(gc_alerts_scheduled(a), 0);
    ck_assert_int_eq(gc_alerts_next_due(a), 0);
    none_due(a, T0 + SEC(3600));
    /* Back in the state: a new episode from its own start. */
    gc_alerts_observe(a, "u1", "Available", T0 + SEC(100));
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(160));
    ck_assert_int_eq(take1(a, T0 + SEC(160)).episode_at, T0 + SEC(100));
}
END_TEST

START_TEST(repeats)
{
    gc_alerts_t *a = engine1("IDLE", SEC(10), SEC(5));
    gc_alert_due_t d;
    int k;

    gc_alerts_observe(a, "u1", "IDLE", T0);
    for (k = 0; k < 4; k++) {
        apr_time_t due = T0 + SEC(10) + SEC(5) * k;
        ck_assert_int_eq(gc_alerts_next_due(a), due);
        none_due(a, due - 1);
        d = take1(a, due);
        ck_assert_int_eq(d.seq, k);
        ck_assert_int_eq(d.due_at, due);
        ck_assert_int_eq(d.episode_at, T0);
        ck_assert_int_eq(gc_alerts_scheduled(a), 1);
    }
    /* Leaving ends the repeats. */
    gc_alerts_observe(a, "u1", "INTERACTING", T0 + SEC(31));
    ck_assert_int_eq(gc_alerts_scheduled(a), 0);
    none_due(a, T0 + SEC(3600));
}
END_TEST

START_TEST(long_past_yields_latest_only)
{
    gc_alerts_t *a = engine1("Available", SEC(10), SEC(5));
    gc_alert_due_t d;

    /* A holder starting late: 10 s + 7 × 5 s + 2 s after the start. */
    gc_alerts_observe(a, "u1", "Available", T0);
    d = take1(a, T0 + SEC(47));
    ck_assert_int_eq(d.seq, 7);
    ck_assert_int_eq(d.due_at, T0 + SEC(45));
    none_due(a, T0 + SEC(47));
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(50));
    ck_assert_int_eq(take1(a, T0 + SEC(50)).seq, 8);
    /* Exactly on a repeat's due time. */
    gc_alerts_forget(a, "u1");
    gc_alerts_observe(a, "u2", "Available", T0 + SEC(100));
    d = take1(a, T0 + SEC(100 + 10 + 5 * 3));
    ck_assert_int_eq(d.seq, 3);
    ck_assert_int_eq(d.due_at, T0 + SEC(125));
    /* Without repeat: the one alert of the episode. */
    a = engine1("Available", SEC(10), 0);
    gc_alerts_observe(a, "u1", "Available", T0);
    d = take1(a, T0 + SEC(86400));
    ck_assert_int_eq(d.seq, 0);
    ck_assert_int_eq(d.due_at, T0 + SEC(10));
    ck_assert_int_eq(gc_alerts_scheduled(a), 0);
}
END_TEST

START_TEST(forget)
{
    gc_alerts_t *a = engine1("Available", SEC(60), 0);

    gc_alerts_forget(a, "nobody");
    gc_alerts_observe(a, "u1", "Available", T0);
    gc_alerts_observe(a, "u2", "Available", T0 + SEC(1));
    gc_alerts_forget(a, "u1");
    ck_assert_int_eq(gc_alerts_scheduled(a), 1);
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(61));
    ck_assert_str_eq(take1(a, T0 + SEC(3600)).user_id, "u2");
    gc_alerts_forget(a, "u1");
    /* A forgotten agent comes back as new, even with the same episode. */
    gc_alerts_observe(a, "u1", "Available", T0);
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(60));
    ck_assert_str_eq(take1(a, T0 + SEC(60)).user_id, "u1");
    /* Forgotten, an older observation is not ignored either. */
    gc_alerts_forget(a, "u2");
    gc_alerts_observe(a, "u2", "Available", T0 - SEC(30));
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(30));
}
END_TEST

START_TEST(new_state_replaces_timer)
{
    gc_alert_rule_t rules[] = {
        { "Available", SEC(60), 0 },
        { "IDLE", SEC(30), SEC(10) },
        { "Available", SEC(20), 0 }, /* replaces the first */
    };
    gc_alerts_t *a = engine(3, rules);
    gc_alert_due_t d;

    gc_alerts_observe(a, "u1", "Available", T0);
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(20));
    gc_alerts_observe(a, "u1", "IDLE", T0 + SEC(10));
    ck_assert_int_eq(gc_alerts_scheduled(a), 1);
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(40));
    d = take1(a, T0 + SEC(40));
    ck_assert_str_eq(d.state, "IDLE");
    ck_assert_int_eq(d.episode_at, T0 + SEC(10));
    ck_assert_int_eq(d.threshold, SEC(30));
    /* A repeat in flight is replaced by the next state's first alert. */
    gc_alerts_observe(a, "u1", "Available", T0 + SEC(45));
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(65));
    d = take1(a, T0 + SEC(100));
    ck_assert_str_eq(d.state, "Available");
    ck_assert_int_eq(d.seq, 0);
    /* Same state, later start: a new episode (the store moved `since`). */
    gc_alerts_observe(a, "u1", "Available", T0 + SEC(200));
    ck_assert_int_eq(take1(a, T0 + SEC(220)).episode_at, T0 + SEC(200));
    /* Same start, other state with a rule: a new episode too. */
    gc_alerts_observe(a, "u1", "IDLE", T0 + SEC(200));
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(230));
}
END_TEST

START_TEST(older_observations_ignored)
{
    gc_alerts_t *a = engine1("Available", SEC(60), 0);

    gc_alerts_observe(a, "u1", "Available", T0 + SEC(10));
    gc_alerts_observe(a, "u1", "Busy", T0);
    gc_alerts_observe(a, "u1", "Available", T0 + SEC(5));
    ck_assert_int_eq(gc_alerts_scheduled(a), 1);
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(70));
    gc_alerts_observe(a, "u1", "Busy", T0 + SEC(20));
    gc_alerts_observe(a, "u1", "Available", T0 + SEC(10));
    ck_assert_int_eq(gc_alerts_scheduled(a), 0);
    /* Unknown states, NULLs: no timer, no crash. */
    gc_alerts_observe(a, "u2", "NoSuchState", T0);
    gc_alerts_observe(a, NULL, "Available", T0);
    gc_alerts_observe(a, "u3", NULL, T0);
    gc_alerts_forget(a, NULL);
    ck_assert_int_eq(gc_alerts_scheduled(a), 0);
}
END_TEST

START_TEST(next_due_and_max)
{
    gc_alert_rule_t rules[] = { { "Available", SEC(60), 0 }, { "IDLE", SEC(10), 0 } };
    gc_alerts_t *a = engine(2, rules);
    gc_alert_due_t d[8];

    gc_alerts_observe(a, "a", "Available", T0);           /* T0+60 */
    gc_alerts_observe(a, "b", "IDLE", T0 + SEC(20));      /* T0+30 */
    gc_alerts_observe(a, "c", "Available", T0 - SEC(50)); /* T0+10 */
    gc_alerts_observe(a, "d", "IDLE", T0 + SEC(5));       /* T0+15 */
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(10));
    gc_alerts_observe(a, "c", "Busy", T0);
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(15));
    gc_alerts_observe(a, "a", "IDLE", T0 + SEC(1)); /* T0+11 */
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(11));
    /* At most max, earliest first; the rest stays due. */
    ck_assert_int_eq(gc_alerts_take_due(a, T0 + SEC(100), d, 2), 2);
    ck_assert_str_eq(d[0].user_id, "a");
    ck_assert_str_eq(d[1].user_id, "d");
    ck_assert_int_eq(gc_alerts_next_due(a), T0 + SEC(30));
    ck_assert_int_eq(gc_alerts_take_due(a, T0 + SEC(100), d, 8), 1);
    ck_assert_str_eq(d[0].user_id, "b");
    ck_assert_int_eq(gc_alerts_next_due(a), 0);
    ck_assert_int_eq(gc_alerts_take_due(a, T0 + SEC(100), d, 0), 0);
}
END_TEST

static unsigned int lcg(unsigned int *x)
{
    *x = *x * 1103515245u + 12345u;
    return (*x >> 8) & 0xffffff;
}

/* 20,000 agents on staggered thresholds and starts, with episodes replaced,
 * cancelled and forgotten: everything comes out in due order, each once. */
START_TEST(twenty_thousand_in_due_order)
{
    enum { N = 20000 };
    gc_alert_rule_t rules[] = {
        { "Available", SEC(900), 0 },
        { "IDLE", SEC(300), 0 },
        { "Away", SEC(60), SEC(600) },
    };
    static const char *const states[] = { "Available", "IDLE", "Away", "Busy" };
    gc_alerts_t *a = engine(3, rules);
    gc_alert_due_t d[97];
    const char **ids = apr_palloc(pool, N * sizeof(*ids));
    char *seen = apr_pcalloc(pool, N);
    unsigned int x = 42;
    int i, n, taken = 0, expect = 0;
    apr_time_t now, last = 0;

    for (i = 0; i < N; i++) {
        const char *st = states[lcg(&x) % 4];
        ids[i] = apr_psprintf(pool, "agent-%05d", i);
        gc_alerts_observe(a, ids[i], st, T0 + MS(lcg(&x) % 3600000));
    }
    for (i = 0; i < N; i += 3) { /* later episodes for a third */
        const char *st = states[lcg(&x) % 4];
        gc_alerts_observe(a, ids[i], st, T0 + SEC(3600) + MS(lcg(&x) % 60000));
    }
    for (i = 1; i < N; i += 10) {
        gc_alerts_forget(a, ids[i]);
    }
    expect = gc_alerts_scheduled(a);
    ck_assert_int_gt(expect, N / 2);
    /* Take in steps of 7 s until past every first alert (repeats are due
     * only after 600 s more; stop before the first one). */
    for (now = T0; now <= T0 + SEC(3660 + 900 + 7); now += SEC(7)) {
        while ((n = gc_alerts_take_due(a, now, d, 97)) > 0) {
            for (i = 0; i < n; i++) {
                int k = atoi(d[i].user_id + 6);
                ck_assert_int_le(d[i].due_at, now);
                ck_assert_int_ge(d[i].due_at, last);
                ck_assert_int_eq(d[i].due_at, d[i].episode_at + d[i].threshold
                                                  + d[i].seq * (apr_interval_time_t)SEC(600));
                last = d[i].due_at;
                if (d[i].seq == 0) {
                    ck_assert_int_eq(seen[k], 0);
                    seen[k] = 1;
                    taken++;
                }
            }
        }
        ck_assert(gc_alerts_next_due(a) == 0 || gc_alerts_next_due(a) > now);
    }
    ck_assert_int_eq(taken, expect);
    for (i = 1; i < N; i += 10) {
        ck_assert_int_eq(seen[i], 0);
    }
}
END_TEST

/* The process's private data size (VmData): APR's allocator maps its blocks
 * directly (mmap), so malloc statistics would not see the engine grow. */
static apr_size_t data_bytes(void)
{
    char line[256];
    apr_size_t kb = 0;
    FILE *f = fopen("/proc/self/status", "r");

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmData:", 7) == 0) {
            kb = (apr_size_t)strtoul(line + 7, NULL, 10);
        }
    }
    fclose(f);
    return kb * 1024;
}

/* 1,000 agents alternating between a state with a rule and one without, a
 * new episode each time: after the first rounds the engine takes no memory. */
START_TEST(memory_flat_over_a_million_observations)
{
    enum { AGENTS = 1000, ROUNDS = 1000, WARM = 4 };
    apr_allocator_t *alloc;
    apr_pool_t *own;
    gc_alerts_t *a;
    apr_array_header_t *rules;
    const char **ids = apr_palloc(pool, AGENTS * sizeof(*ids));
    apr_size_t bytes = 0, used = 0;
    int r, i;

    /* A fresh allocator: no cached free blocks, every new one is mapped anew. */
    ck_assert_int_eq(apr_allocator_create(&alloc), APR_SUCCESS);
    ck_assert_int_eq(apr_pool_create_ex(&own, pool, NULL, alloc), APR_SUCCESS);
    apr_allocator_owner_set(alloc, own);
    rules = gc_alert_rules_default(own);
    a = gc_alerts_create(own, rules);
    for (i = 0; i < AGENTS; i++) {
        ids[i] = apr_psprintf(pool, "6f1c2a3b-0000-4000-8000-%012d", i);
    }
    for (r = 0; r < ROUNDS; r++) {
        if (r == WARM) {
            bytes = gc_alerts_test_bytes(a);
            used = data_bytes();
        }
        for (i = 0; i < AGENTS; i++) {
            gc_alerts_observe(a, ids[i], (r + i) % 2 ? "Available" : "Busy",
                              T0 + MS(r * 10 + i % 7));
        }
    }
    ck_assert_int_gt(bytes, AGENTS * 32);
    ck_assert_int_eq(gc_alerts_test_bytes(a), bytes);
    ck_assert_msg(data_bytes() <= used + 256 * 1024, "VmData grew from %zu to %zu", used,
                  data_bytes());
    ck_assert_int_eq(gc_alerts_scheduled(a), AGENTS / 2);
}
END_TEST

/* Forgetting most agents gives their memory back; the rest keep their timers. */
START_TEST(forget_compacts)
{
    enum { N = 5000 };
    gc_alerts_t *a = engine1("Available", SEC(60), 0);
    gc_alert_due_t d[64];
    apr_size_t full;
    apr_time_t last = 0;
    int i, n, taken = 0;

    for (i = 0; i < N; i++) {
        gc_alerts_observe(a, apr_psprintf(pool, "agent-%05d", i), "Available",
                          T0 + MS((i * 7919) % N));
    }
    full = gc_alerts_test_bytes(a);
    for (i = 0; i < N; i++) {
        if (i % 5) {
            gc_alerts_forget(a, apr_psprintf(pool, "agent-%05d", i));
        }
    }
    ck_assert_int_eq(gc_alerts_scheduled(a), N / 5);
    ck_assert_int_lt(gc_alerts_test_bytes(a), full / 2);
    /* A forgotten one returns; the survivors come out in order. */
    gc_alerts_observe(a, "agent-00001", "Available", T0);
    while ((n = gc_alerts_take_due(a, T0 + SEC(3600), d, 64)) > 0) {
        for (i = 0; i < n; i++) {
            ck_assert_int_ge(d[i].due_at, last);
            ck_assert(atoi(d[i].user_id + 6) % 5 == 0 || atoi(d[i].user_id + 6) == 1);
            last = d[i].due_at;
            taken++;
        }
    }
    ck_assert_int_eq(taken, N / 5 + 1);
}
END_TEST

/* ---------------------------------------------------------------- store */

static const char *driver_name;
static char db_params[512];
static char sqlite_base[256];
static char pg_dir[256];
static int pg_port, pg_up;
static char pg_why[512];
static char pg_as[64];

static int run_cmd(const char *cmd)
{
    int st = system(cmd);
    return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

static gc_store_t *open_migrated_in(apr_pool_t *p)
{
    gc_store_t *s = NULL;
    const char *err = NULL;

    ck_assert_msg(gc_store_open(p, driver_name, db_params, &s, &err) == APR_SUCCESS, "open: %s",
                  err);
    ck_assert_msg(gc_store_migrate(s, &err) == APR_SUCCESS, "migrate: %s", err);
    return s;
}

static gc_store_t *open_migrated(void)
{
    return open_migrated_in(pool);
}

/* The test's own view through its own connection: rows joined with ';',
 * columns with '|', NULL as '~'; or a statement without rows. */
static const char *sql_rows(const char *sql)
{
    const apr_dbd_driver_t *d = NULL;
    apr_dbd_t *h = NULL;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *out = "";
    int rv, c;

    ck_assert_int_eq(apr_dbd_get_driver(pool, driver_name, &d), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_open(d, pool, db_params, &h), APR_SUCCESS);
    rv = apr_dbd_select(d, pool, h, &res, sql, 1);
    ck_assert_msg(rv == 0, "%s: %s", sql, apr_dbd_error(d, h, rv));
    while (apr_dbd_get_row(d, pool, res, &row, -1) == 0) {
        for (c = 0; c < apr_dbd_num_cols(d, res); c++) {
            char *v = NULL;
            if (apr_dbd_datum_get(d, row, c, APR_DBD_TYPE_STRING, &v) != APR_SUCCESS || !v) {
                v = "~";
            }
            out = apr_pstrcat(pool, out, c ? "|" : (*out ? ";" : ""), v, NULL);
        }
    }
    apr_dbd_close(d, h);
    return out;
}

static void sql_exec(const char *sql)
{
    const apr_dbd_driver_t *d = NULL;
    apr_dbd_t *h = NULL;
    int rv, n = 0;

    ck_assert_int_eq(apr_dbd_get_driver(pool, driver_name, &d), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_open(d, pool, db_params, &h), APR_SUCCESS);
    rv = apr_dbd_query(d, h, &n, sql);
    ck_assert_msg(rv == 0, "%s: %s", sql, apr_dbd_error(d, h, rv));
    apr_dbd_close(d, h);
}

/* An agent's current row: state since T0 + since_s seconds. */
static void agent_set(const char *user, const char *name, const char *state, int since_s)
{
    apr_int64_t since = apr_time_as_msec(T0 + SEC(since_s));

    sql_exec(apr_psprintf(pool,
                          "INSERT INTO gcmon_agents (user_id, user_name, state, since, "
                          "event_at, updated_at) VALUES ('%s', %s%s%s, '%s', %" APR_INT64_T_FMT
                          ", %" APR_INT64_T_FMT ", %" APR_INT64_T_FMT ") ON CONFLICT (user_id) "
                          "DO UPDATE SET state = excluded.state, since = excluded.since",
                          user, name ? "'" : "", name ? name : "NULL", name ? "'" : "", state,
                          since, since, since));
}

static gc_alert_due_t due_of(const char *user, const char *state, int since_s, int seq)
{
    gc_alert_due_t d;

    d.user_id = user;
    d.state = state;
    d.episode_at = T0 + SEC(since_s);
    d.seq = seq;
    d.threshold = SEC(900);
    d.due_at = d.episode_at + d.threshold + SEC(60) * seq;
    return d;
}

static gc_alert_result_e raise_ok(gc_store_t *s, const gc_alert_due_t *d, const char *name,
                                  const char *body, apr_int64_t *id)
{
    gc_alert_result_e result = (gc_alert_result_e)-1;
    const char *err = NULL;
    apr_int64_t tmp;
    apr_status_t rv = gc_store_alert_raise(s, pool, d, name, body, d->due_at + MS(5), &result,
                                           id ? id : &tmp, &err);
    ck_assert_msg(rv == APR_SUCCESS, "raise: %s", err);
    return result;
}

static const char *count_of(const char *table)
{
    return sql_rows(apr_psprintf(pool, "SELECT COUNT(*) FROM %s", table));
}

START_TEST(raise_then_exists_then_moved)
{
    gc_store_t *s = open_migrated();
    gc_alert_due_t d = due_of("u1", "Available", 0, 0);
    apr_int64_t id = 0, id2 = 0;

    agent_set("u1", "Ann", "Available", 0);
    ck_assert_int_eq(raise_ok(s, &d, "Ann B", NULL, &id), GC_ALERT_RAISED);
    ck_assert_int_gt(id, 0);
    ck_assert_str_eq(sql_rows(apr_psprintf(pool,
                                           "SELECT id, user_id, user_name, state, "
                                           "threshold_seconds, episode_at - %" APR_INT64_T_FMT
                                           ", seq, raised_at - %" APR_INT64_T_FMT ", "
                                           "cleared_at, delivery_status FROM gcmon_alerts",
                                           (apr_int64_t)apr_time_as_msec(T0),
                                           (apr_int64_t)apr_time_as_msec(T0))),
                     apr_psprintf(pool,
                                  "%" APR_INT64_T_FMT "|u1|Ann B|Available|900|0|0|"
                                  "900005|~|disabled",
                                  id));
    /* The same alert again (a restart, another holder): nothing new. */
    ck_assert_int_eq(raise_ok(s, &d, "Ann B", NULL, &id2), GC_ALERT_EXISTS);
    ck_assert_int_eq(id2, id);
    /* Its repeat is another alert; the name defaults to the agent row's. */
    d.seq = 1;
    ck_assert_int_eq(raise_ok(s, &d, NULL, NULL, &id2), GC_ALERT_RAISED);
    ck_assert_int_gt(id2, id);
    ck_assert_str_eq(sql_rows("SELECT seq, user_name FROM gcmon_alerts ORDER BY id"),
                     "0|Ann B;1|Ann");
    /* The agent left (or started a new episode of the same state): moved. */
    d.seq = 2;
    agent_set("u1", NULL, "Busy", 30);
    ck_assert_int_eq(raise_ok(s, &d, NULL, NULL, &id2), GC_ALERT_MOVED);
    ck_assert_int_eq(id2, 0);
    agent_set("u1", NULL, "Available", 40);
    ck_assert_int_eq(raise_ok(s, &d, NULL, NULL, NULL), GC_ALERT_MOVED);
    d = due_of("nobody", "Available", 0, 0);
    ck_assert_int_eq(raise_ok(s, &d, NULL, NULL, NULL), GC_ALERT_MOVED);
    ck_assert_str_eq(count_of("gcmon_alerts"), "2");
    ck_assert_str_eq(count_of("gcmon_outbox"), "0");
}
END_TEST

START_TEST(raise_with_body_writes_outbox)
{
    gc_store_t *s = open_migrated();
    gc_alert_due_t d = due_of("u1", "IDLE", 10, 0);
    const char *body = "{\"text\":\"Ann has been IDLE for 15m\"}";
    apr_int64_t id = 0;

    agent_set("u1", "Ann", "IDLE", 10);
    ck_assert_int_eq(raise_ok(s, &d, "Ann", body, &id), GC_ALERT_RAISED);
    ck_assert_str_eq(sql_rows("SELECT delivery_status FROM gcmon_alerts"), "pending");
    ck_assert_str_eq(sql_rows(apr_psprintf(pool,
                                           "SELECT target, alert_id, body, status, "
                                           "created_at - %" APR_INT64_T_FMT " FROM gcmon_outbox",
                                           (apr_int64_t)apr_time_as_msec(T0))),
                     apr_psprintf(pool, "slack|%" APR_INT64_T_FMT "|%s|pending|910005", id, body));
    /* Raised once, delivered once. */
    ck_assert_int_eq(raise_ok(s, &d, "Ann", body, NULL), GC_ALERT_EXISTS);
    ck_assert_str_eq(count_of("gcmon_outbox"), "1");
    agent_set("u1", NULL, "Busy", 20);
    d.seq = 1;
    ck_assert_int_eq(raise_ok(s, &d, "Ann", body, NULL), GC_ALERT_MOVED);
    ck_assert_str_eq(count_of("gcmon_outbox"), "1");
}
END_TEST

START_TEST(clear_ended_episodes)
{
    gc_store_t *s = open_migrated();
    gc_alert_due_t d;
    const char *err = NULL;
    int cleared = -1, i;
    static const char *const users[] = { "u1", "u2", "u3", "u4" };

    for (i = 0; i < 4; i++) {
        agent_set(users[i], NULL, "Available", 0);
        d = due_of(users[i], "Available", 0, 0);
        ck_assert_int_eq(raise_ok(s, &d, NULL, NULL, NULL), GC_ALERT_RAISED);
    }
    d = due_of("u1", "Available", 0, 1);
    ck_assert_int_eq(raise_ok(s, &d, NULL, NULL, NULL), GC_ALERT_RAISED);
    ck_assert_int_eq(gc_store_alerts_clear(s, pool, T0 + SEC(1000), &cleared, &err), APR_SUCCESS);
    ck_assert_int_eq(cleared, 0);
    agent_set("u2", NULL, "Busy", 950);      /* left */
    agent_set("u3", NULL, "Available", 960); /* a new episode */
    ck_assert_int_eq(gc_store_alerts_clear(s, pool, T0 + SEC(1000), &cleared, &err), APR_SUCCESS);
    ck_assert_int_eq(cleared, 2);
    ck_assert_str_eq(sql_rows(apr_psprintf(pool,
                                           "SELECT user_id, seq, cleared_at - %" APR_INT64_T_FMT
                                           " FROM gcmon_alerts ORDER BY id",
                                           (apr_int64_t)apr_time_as_msec(T0))),
                     "u1|0|~;u2|0|1000000;u3|0|1000000;u4|0|~;u1|1|~");
    /* Cleared once: a later run leaves them as they are. */
    agent_set("u4", NULL, "Meal", 1100);
    ck_assert_int_eq(gc_store_alerts_clear(s, pool, T0 + SEC(2000), &cleared, &err), APR_SUCCESS);
    ck_assert_int_eq(cleared, 1);
    ck_assert_str_eq(sql_rows(apr_psprintf(pool,
                                           "SELECT user_id, cleared_at - %" APR_INT64_T_FMT
                                           " FROM gcmon_alerts WHERE "
                                           "cleared_at IS NOT NULL ORDER BY id",
                                           (apr_int64_t)apr_time_as_msec(T0))),
                     "u2|1000000;u3|1000000;u4|2000000");
}
END_TEST

START_TEST(agents_for_seeding)
{
    gc_store_t *s = open_migrated();
    apr_array_header_t *out = NULL;
    const char *err = NULL;
    gc_alert_agent_t *g;

    ck_assert_int_eq(gc_store_alert_agents(s, pool, &out, &err), APR_SUCCESS);
    ck_assert_int_eq(out->nelts, 0);
    agent_set("u1", NULL, "Available", 5);
    agent_set("u2", "Bo", "IDLE", 7);
    ck_assert_int_eq(gc_store_alert_agents(s, pool, &out, &err), APR_SUCCESS);
    ck_assert_int_eq(out->nelts, 2);
    g = (gc_alert_agent_t *)out->elts;
    if (strcmp(g[0].user_id, "u1") != 0) {
        gc_alert_agent_t t = g[0];
        g[0] = g[1];
        g[1] = t;
    }
    ck_assert_str_eq(g[0].user_id, "u1");
    ck_assert_str_eq(g[0].state, "Available");
    ck_assert_int_eq(g[0].since, T0 + SEC(5));
    ck_assert_str_eq(g[1].user_id, "u2");
    ck_assert_str_eq(g[1].state, "IDLE");
    ck_assert_int_eq(g[1].since, T0 + SEC(7));
}
END_TEST

/* Several processes, each with its own connection, raise the same alert at
 * once: exactly one raises it, the others find it. */
START_TEST(racing_raises_one_row)
{
    enum { N = 4 };
    gc_store_t *s = open_migrated();
    gc_alert_due_t d = due_of("u1", "Available", 0, 0);
    int gate[2], i, raised = 0, exists = 0;
    pid_t pids[N];

    agent_set("u1", NULL, "Available", 0);
    gc_store_close(s);
    ck_assert_int_eq(pipe(gate), 0);
    for (i = 0; i < N; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            apr_pool_t *p;
            gc_store_t *cs = NULL;
            gc_alert_result_e result = GC_ALERT_MOVED;
            apr_int64_t id = 0;
            const char *err = NULL;
            char c;
            int rc = 1;

            close(gate[1]);
            apr_pool_create(&p, NULL);
            if (gc_store_open(p, driver_name, db_params, &cs, &err) == APR_SUCCESS) {
                while (read(gate[0], &c, 1) < 0 && errno == EINTR) {
                }
                if (gc_store_alert_raise(cs, p, &d, NULL, "{}", d.due_at, &result, &id, &err)
                    == APR_SUCCESS) {
                    rc = result == GC_ALERT_RAISED ? 10 : result == GC_ALERT_EXISTS ? 11 : 12;
                }
                else {
                    fprintf(stderr, "racing raise: %s\n", err);
                }
            }
            _exit(rc);
        }
    }
    close(gate[0]);
    close(gate[1]);
    for (i = 0; i < N; i++) {
        int st = 0;
        ck_assert_int_eq(waitpid(pids[i], &st, 0), pids[i]);
        ck_assert(WIFEXITED(st));
        raised += WEXITSTATUS(st) == 10;
        exists += WEXITSTATUS(st) == 11;
    }
    ck_assert_int_eq(raised, 1);
    ck_assert_int_eq(exists, N - 1);
    ck_assert_str_eq(count_of("gcmon_alerts"), "1");
    ck_assert_str_eq(count_of("gcmon_outbox"), "1");
}
END_TEST

/* -------------------------------------------------------------- fixtures */

static void sqlite_base_start(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(sqlite_base, sizeof(sqlite_base), "%s/gcmon-alerts-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(sqlite_base)) {
        sqlite_base[0] = '\0';
    }
}

static void sqlite_base_stop(void)
{
    char cmd[600];

    if (sqlite_base[0] && strstr(sqlite_base, "/gcmon-alerts-")) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sqlite_base);
        run_cmd(cmd);
    }
    sqlite_base[0] = '\0';
}

static void setup_sqlite(void)
{
    static int n;
    char dir[400];

    setup_pool();
    apr_dbd_init(pool);
    driver_name = "sqlite3";
    ck_assert_msg(sqlite_base[0], "no temporary directory");
    snprintf(dir, sizeof(dir), "%s/t%d-%ld", sqlite_base, ++n, (long)getpid());
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(db_params, sizeof(db_params), "%s/gcmon.db", dir);
}

static void pg_start(void)
{
    struct passwd *pw;
    char cmd[2048];

    pg_up = 0;
    pg_as[0] = '\0';
    snprintf(pg_dir, sizeof(pg_dir), "/tmp/gcmon-pga-XXXXXX");
    if (!mkdtemp(pg_dir)) {
        snprintf(pg_why, sizeof(pg_why), "mkdtemp: %s", strerror(errno));
        return;
    }
    if (geteuid() == 0) {
        /* initdb refuses root: run the cluster as an unprivileged user. */
        if ((!(pw = getpwnam("postgres")) && !(pw = getpwnam("nobody")))
            || chown(pg_dir, pw->pw_uid, pw->pw_gid) != 0) {
            snprintf(pg_why, sizeof(pg_why), "no user to run initdb as");
            return;
        }
        snprintf(pg_as, sizeof(pg_as), "runuser -u %s -- ", pw->pw_name);
    }
    pg_port = 20000 + (int)((getpid() + 7919) % 20000);
    snprintf(cmd, sizeof(cmd),
             "cd %s && %s%s/initdb -D %s/data -A trust -U gcmon -E UTF8 "
             "--no-sync >%s/initdb.out 2>&1",
             pg_dir, pg_as, PG_BIN, pg_dir, pg_dir);
    if (run_cmd(cmd) != 0) {
        snprintf(pg_why, sizeof(pg_why), "initdb failed (see %s/initdb.out)", pg_dir);
        return;
    }
    snprintf(cmd, sizeof(cmd),
             "cd %s && %s%s/pg_ctl -D %s/data -l %s/server.log -w -t 60 -o "
             "\"-c listen_addresses='' -c unix_socket_directories=%s -p %d -c fsync=off "
             "-c full_page_writes=off -c max_connections=20\" start >%s/pg_ctl.out 2>&1",
             pg_dir, pg_as, PG_BIN, pg_dir, pg_dir, pg_dir, pg_port, pg_dir);
    if (run_cmd(cmd) != 0) {
        snprintf(pg_why, sizeof(pg_why), "pg_ctl start failed (see %s/server.log)", pg_dir);
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
    if (strncmp(pg_dir, "/tmp/gcmon-pga-", 15) == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", pg_dir);
        run_cmd(cmd);
    }
    pg_dir[0] = '\0';
}

static void setup_pg(void)
{
    setup_pool();
    apr_dbd_init(pool);
    driver_name = "pgsql";
    ck_assert_msg(pg_up, "PostgreSQL is installed but the test cluster did not start: %s", pg_why);
    snprintf(db_params, sizeof(db_params), "host=%s port=%d user=gcmon dbname=postgres", pg_dir,
             pg_port);
    sql_exec("DROP SCHEMA IF EXISTS public CASCADE");
    sql_exec("CREATE SCHEMA public");
}

static void add_store_tests(TCase *tc)
{
    tcase_add_test(tc, raise_then_exists_then_moved);
    tcase_add_test(tc, raise_with_body_writes_outbox);
    tcase_add_test(tc, clear_ended_episodes);
    tcase_add_test(tc, agents_for_seeding);
    tcase_add_test(tc, racing_raises_one_row);
}

Suite *alerts_suite(void)
{
    Suite *s = suite_create("alerts");
    TCase *tc = tcase_create("engine");

    tcase_add_checked_fixture(tc, setup_pool, teardown_pool);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, crossing_at_threshold);
    tcase_add_test(tc, leaving_before_threshold);
    tcase_add_test(tc, repeats);
    tcase_add_test(tc, long_past_yields_latest_only);
    tcase_add_test(tc, forget);
    tcase_add_test(tc, new_state_replaces_timer);
    tcase_add_test(tc, older_observations_ignored);
    tcase_add_test(tc, next_due_and_max);
    tcase_add_test(tc, twenty_thousand_in_due_order);
    tcase_add_test(tc, memory_flat_over_a_million_observations);
    tcase_add_test(tc, forget_compacts);
    suite_add_tcase(s, tc);

    tc = tcase_create("store-sqlite3");
    tcase_add_unchecked_fixture(tc, sqlite_base_start, sqlite_base_stop);
    tcase_add_checked_fixture(tc, setup_sqlite, teardown_pool);
    tcase_set_timeout(tc, 60);
    add_store_tests(tc);
    suite_add_tcase(s, tc);

    if (access(PG_BIN "/initdb", X_OK) == 0 && access(PG_BIN "/pg_ctl", X_OK) == 0) {
        tc = tcase_create("store-pgsql");
        tcase_add_unchecked_fixture(tc, pg_start, pg_stop);
        tcase_add_checked_fixture(tc, setup_pg, teardown_pool);
        tcase_set_timeout(tc, 120);
        add_store_tests(tc);
        suite_add_tcase(s, tc);
    }
    return s;
}
