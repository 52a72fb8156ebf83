/* Idle-alert benchmark (SPEC §8: "idle alerts within 1 s of the crossing at
 * 20,000 agents; leader RSS ≤ 64 MB").
 *
 *   bench_alerts <dir> [agents] [spread_s] [threshold_s] [idle_s]
 *
 * 1. A SQLite database (gcmon's schema, WAL) with `agents` agents in
 *    Available, their starts staggered so that their crossings of the
 *    `threshold_s` rule spread uniformly over `spread_s` seconds, beginning a
 *    few seconds after the set-up.
 * 2. The engine is seeded from the database, then a loop like the holder's
 *    (sleep until min(next due, 100 ms), take what is due, read the agent's
 *    row, build the Slack body, raise the alert with its outbox row in one
 *    transaction) runs until every alert is raised. Latency = commit time −
 *    due time of each alert.
 * 3. Idle: the process CPU (getrusage) over `idle_s` seconds of the same loop
 *    with `agents` far-future timers scheduled.
 *
 * Output: one "name value" line per figure (bench/run.py formats them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <apr_dbd.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "gc_alerts.h"
#include "gc_outbox.h"
#include "gc_store.h"
#include "gc_webhook.h"

#define TAKE_MAX 64
#define TICK_MAX apr_time_from_msec(100)
#define LEAD apr_time_from_sec(3) /* set-up time before the first crossing */
#define BATCH 1000

/* Tests and benchmarks only (gc_alerts.c). */
apr_size_t gc_alerts_test_bytes(const gc_alerts_t *a);

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_alerts: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static int cmp_time(const void *a, const void *b)
{
    apr_time_t x = *(const apr_time_t *)a, y = *(const apr_time_t *)b;
    return x < y ? -1 : x > y;
}

static double ms(apr_time_t t)
{
    return (double)t / 1000.0;
}

static long status_kb(const char *field)
{
    char line[256];
    long kb = -1;
    size_t n = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");

    if (!f) {
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kb = strtol(line + n + 1, NULL, 10);
        }
    }
    fclose(f);
    return kb;
}

static double cpu_secs(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6
           + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static const char *user_id(apr_pool_t *p, int i)
{
    return apr_psprintf(p, "00000000-0000-4000-8000-%012d", i);
}

/* Agent i in Available since first - threshold + i × spread / n (ms). */
static void populate(gc_store_t *s, apr_pool_t *p, int n, apr_time_t first,
                     apr_interval_time_t spread, apr_interval_time_t threshold)
{
    gc_agent_event_t *evs = apr_pcalloc(p, BATCH * sizeof(*evs));
    gc_store_batch_result_t r;
    const char *err = NULL;
    int i, k;

    for (i = 0; i < n; i += k) {
        for (k = 0; k < BATCH && i + k < n; k++) {
            gc_agent_event_t *e = &evs[k];
            apr_time_t since = first - threshold + spread * (i + k) / n;
            since -= since % 1000;
            e->user_id = user_id(p, i + k);
            e->presence = e->state = "Available";
            e->presence_id = "e08eaf1b-ee47-4fa9-a231-1200e284798f";
            e->presence_at = e->event_at = since;
        }
        if (gc_store_write_batch(s, p, evs, k, "resync", apr_time_now(), &r, &err) != APR_SUCCESS) {
            die("cannot write the agents", err);
        }
    }
}

static gc_alerts_t *seed(gc_store_t *s, apr_pool_t *p, apr_interval_time_t threshold,
                         double *seed_ms)
{
    gc_alert_rule_t rule = { "Available", threshold, 0 };
    apr_array_header_t *rules = apr_array_make(p, 1, sizeof(rule)), *agents;
    const char *err = NULL;
    apr_pool_t *tp;
    gc_alerts_t *a;
    apr_time_t t0 = apr_time_now();
    int i;

    *(gc_alert_rule_t *)apr_array_push(rules) = rule;
    a = gc_alerts_create(p, rules);
    apr_pool_create(&tp, p);
    if (gc_store_alert_agents(s, tp, &agents, &err) != APR_SUCCESS) {
        die("cannot read the agents", err);
    }
    for (i = 0; i < agents->nelts; i++) {
        const gc_alert_agent_t *g = &APR_ARRAY_IDX(agents, i, gc_alert_agent_t);
        gc_alerts_observe(a, g->user_id, g->state, g->since);
    }
    apr_pool_destroy(tp);
    *seed_ms = ms(apr_time_now() - t0);
    return a;
}

/* One holder tick: raise what is due (as gc_monitor_alerter.c does), record
 * each commit's lateness. Returns the number taken. */
static int tick(gc_alerts_t *a, gc_store_t *s, apr_pool_t *p, apr_time_t *lat, int *nlat,
                int *raised)
{
    gc_alert_due_t due[TAKE_MAX];
    apr_time_t now = apr_time_now();
    int n = gc_alerts_take_due(a, now, due, TAKE_MAX), i;

    for (i = 0; i < n; i++) {
        gc_agent_row_t *row = NULL;
        gc_alert_result_e result;
        apr_int64_t id;
        const char *err = NULL, *name = NULL, *body;

        if (gc_store_agent_get(s, p, due[i].user_id, &row) == APR_SUCCESS && row) {
            name = row->user_name;
        }
        body = gc_slack_alert_body(p, due[i].user_id, name, due[i].state, now - due[i].episode_at,
                                   due[i].threshold);
        if (gc_store_alert_raise(s, p, &due[i], name, body, now, &result, &id, &err)
            != APR_SUCCESS) {
            die("raise failed", err);
        }
        lat[(*nlat)++] = apr_time_now() - due[i].due_at;
        *raised += result == GC_ALERT_RAISED;
    }
    return n;
}

/* The holder's wait: until the next due time, at most TICK_MAX. */
static void nap(const gc_alerts_t *a)
{
    apr_time_t now = apr_time_now(), next = gc_alerts_next_due(a);
    apr_interval_time_t d = next ? next - now : TICK_MAX;

    if (d > 0) {
        apr_sleep(d < TICK_MAX ? d : TICK_MAX);
    }
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p, *tp;
    gc_store_t *s = NULL;
    gc_alerts_t *a, *far;
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    int n = argc > 2 ? atoi(argv[2]) : 20000;
    apr_interval_time_t spread = apr_time_from_sec(argc > 3 ? atoi(argv[3]) : 10);
    apr_interval_time_t threshold = apr_time_from_sec(argc > 4 ? atoi(argv[4]) : 3);
    int idle_s = argc > 5 ? atoi(argv[5]) : 5;
    const char *err = NULL;
    apr_time_t first, deadline, *lat;
    int nlat = 0, raised = 0, i;
    double seed_ms, cpu0, cpu1;

    if (n <= 0 || spread <= 0 || threshold <= 0 || idle_s <= 0) {
        die("usage: bench_alerts <dir> [agents] [spread_s] [threshold_s] [idle_s]", NULL);
    }
    apr_initialize();
    apr_pool_create(&p, NULL);
    apr_dbd_init(p);
    if (gc_store_open(p, "sqlite3", apr_pstrcat(p, dir, "/alerts.db", NULL), &s, &err)
            != APR_SUCCESS
        || gc_store_migrate(s, &err) != APR_SUCCESS) {
        die("cannot create the database", err);
    }
    first = apr_time_now() + LEAD;
    populate(s, p, n, first, spread, threshold);
    a = seed(s, p, threshold, &seed_ms);
    if (apr_time_now() > first) {
        die("the set-up took longer than the lead time", NULL);
    }
    lat = apr_palloc(p, (apr_size_t)n * sizeof(*lat));
    apr_pool_create(&tp, p);
    deadline = first + spread + threshold + apr_time_from_sec(60);
    while (nlat < n && apr_time_now() < deadline) {
        if (tick(a, s, tp, lat, &nlat, &raised) < TAKE_MAX) {
            nap(a);
        }
        apr_pool_clear(tp);
    }
    if (nlat < n) {
        die("not every alert was raised before the deadline", NULL);
    }
    qsort(lat, (size_t)nlat, sizeof(*lat), cmp_time);

    /* Idle: every agent with a timer a day away. */
    far = gc_alerts_create(p, gc_alert_rules_default(p));
    for (i = 0; i < n; i++) {
        gc_alerts_observe(far, user_id(tp, i), "Available",
                          apr_time_now() + apr_time_from_sec(86400));
    }
    apr_pool_clear(tp);
    cpu0 = cpu_secs();
    deadline = apr_time_now() + apr_time_from_sec(idle_s);
    while (apr_time_now() < deadline) {
        tick(far, s, tp, lat, &nlat, &raised);
        nap(far);
        apr_pool_clear(tp);
    }
    cpu1 = cpu_secs();

    printf("alerts_agents %d\n", n);
    printf("alerts_raised %d\n", raised);
    printf("alerts_seed_ms %.1f\n", seed_ms);
    printf("alerts_latency_p50_ms %.1f\n", ms(lat[nlat / 2]));
    printf("alerts_latency_p99_ms %.1f\n", ms(lat[(int)((double)nlat * 0.99)]));
    printf("alerts_latency_max_ms %.1f\n", ms(lat[nlat - 1]));
    printf("alerts_idle_timers %d\n", gc_alerts_scheduled(far));
    printf("alerts_idle_cpu_pct %.3f\n", 100.0 * (cpu1 - cpu0) / idle_s);
    printf("alerts_engine_kb %.0f\n", (double)gc_alerts_test_bytes(far) / 1024.0);
    printf("alerts_rss_kb %ld\n", status_kb("VmRSS"));
    printf("alerts_hwm_kb %ld\n", status_kb("VmHWM"));
    apr_pool_destroy(p);
    apr_terminate();
    return 0;
}
