/* gc_route_shm: the route tables in shared memory — publish (slots kept,
 * cleared, overflow, generations, a late publish dropped), lookup and
 * decide, the refresh claim (fresh, taken over from a dead or stuck
 * refresher), a writer killed inside its critical section, a reader thread
 * racing a writer (no torn table), the layout check on attach, and the
 * per-thread random numbers. */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "gc_route_shm.h"
#include "unit.h"

#define T0 ((apr_time_t)1767225600 * APR_USEC_PER_SEC) /* 2026-01-01 */
#define SEC(n) apr_time_from_sec(n)

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static gc_route_shm_t *block(void)
{
    void *mem = apr_pcalloc(pool, gc_route_shm_size());
    return gc_route_shm_init(mem);
}

/* A strategy of n targets q<i> (priority 1, weight w), fallback "fb". */
static gc_strategy_t *strategy(int n, double w)
{
    gc_strategy_t *s = apr_pcalloc(pool, sizeof(*s));
    int i;

    s->name = "s";
    s->n_targets = n;
    s->targets = apr_pcalloc(pool, sizeof(gc_strategy_target_t) * (apr_size_t)n);
    for (i = 0; i < n; i++) {
        s->targets[i].queue_id = apr_psprintf(pool, "q%d", i);
        s->targets[i].priority = 1;
        s->targets[i].weight = w;
        s->targets[i].capacity = 10;
    }
    s->fallback.queue_id = "fb";
    s->fallback.priority = 99;
    s->fallback.weight = 1;
    return s;
}

/* Its table: every target observed with `interacting`. */
static void table(gc_route_table_t *t, const char *id, int n, double w, double interacting,
                  apr_time_t observed_at)
{
    gc_strategy_live_t live[GC_STRATEGY_MAX_TARGETS];
    int i;

    for (i = 0; i < n; i++) {
        live[i].observed = 1;
        live[i].interacting = interacting;
        live[i].skilled = -1;
    }
    ck_assert_int_eq(gc_strategy_compile(strategy(n, w), id, live, observed_at, 0, t), 0);
}

static gc_route_table_t *tables(int n)
{
    return apr_pcalloc(pool, sizeof(gc_route_table_t) * (apr_size_t)n);
}

START_TEST(route_shm_publish_and_decide)
{
    gc_route_shm_t *b = block();
    gc_route_table_t *in = tables(2), out;
    gc_route_decision_t d;
    gc_route_shm_info_t info;

    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-a", &out), GC_ROUTE_NOT_LOADED);
    ck_assert_int_eq(gc_route_shm_decide(b, "strat-a", 0.5, T0, &d), GC_ROUTE_NOT_LOADED);
    ck_assert_int_eq(gc_route_shm_lookup(NULL, "strat-a", &out), GC_ROUTE_NOT_LOADED);

    table(&in[0], "strat-a", 3, 1, 0, T0);
    table(&in[1], "strat-b", 2, 2, 10, T0); /* saturated: fallback */
    ck_assert_int_eq(gc_route_shm_publish(b, in, 2, T0), 0);
    gc_route_shm_info(b, &info);
    ck_assert_uint_eq(info.generation, 1);
    ck_assert_int_eq(info.refreshed_at, T0);
    ck_assert_int_eq(info.tables, 2);

    ck_assert_int_eq(gc_route_shm_decide(b, "strat-a", 0.5, T0 + SEC(1), &d), GC_ROUTE_OK);
    ck_assert_str_eq(d.route.queue_id, "q1");
    ck_assert_str_eq(d.route.reason, "weighted");
    ck_assert_int_eq(d.route.priority, 1);
    ck_assert_int_eq(d.route.stale, 0);
    ck_assert_int_eq(d.route.age, SEC(1));
    ck_assert_uint_eq(d.route.generation, 1);
    ck_assert_int_eq(d.observed_at, T0);

    ck_assert_int_eq(gc_route_shm_decide(b, "strat-b", 0.5, T0 + SEC(31), &d), GC_ROUTE_OK);
    ck_assert_str_eq(d.route.queue_id, "fb");
    ck_assert_str_eq(d.route.reason, "fallback");
    ck_assert_int_eq(d.route.priority, 99);
    ck_assert_int_eq(d.route.stale, 1);

    ck_assert_int_eq(gc_route_shm_decide(b, "strat-c", 0.5, T0, &d), GC_ROUTE_UNKNOWN);
    ck_assert_int_eq(gc_route_shm_decide(b, "", 0.5, T0, &d), GC_ROUTE_UNKNOWN);
    ck_assert_int_eq(gc_route_shm_decide(b, NULL, 0.5, T0, &d), GC_ROUTE_UNKNOWN);
    /* A prefix of an id is another id. */
    ck_assert_int_eq(gc_route_shm_decide(b, "strat-", 0.5, T0, &d), GC_ROUTE_UNKNOWN);
}
END_TEST

/* The set replaces the block: strategies no longer active disappear, the
 * others keep their slot, and a table's generation moves only when it changed. */
START_TEST(route_shm_publish_replaces_the_set)
{
    gc_route_shm_t *b = block();
    gc_route_table_t *in = tables(3), out;
    gc_route_shm_info_t info;

    table(&in[0], "strat-a", 2, 1, 0, T0);
    table(&in[1], "strat-b", 2, 1, 0, T0);
    ck_assert_int_eq(gc_route_shm_publish(b, in, 2, T0), 0);

    /* Same tables again: nothing rewritten (generation 1 kept), block at 2. */
    ck_assert_int_eq(gc_route_shm_publish(b, in, 2, T0 + SEC(2)), 0);
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-a", &out), GC_ROUTE_OK);
    ck_assert_uint_eq(out.generation, 1);
    gc_route_shm_info(b, &info);
    ck_assert_uint_eq(info.generation, 2);
    ck_assert_int_eq(info.refreshed_at, T0 + SEC(2));

    /* strat-a gone, strat-b observed anew, strat-c new. */
    table(&in[0], "strat-c", 1, 1, 0, T0);
    table(&in[1], "strat-b", 2, 1, 3, T0 + SEC(5));
    ck_assert_int_eq(gc_route_shm_publish(b, in, 2, T0 + SEC(6)), 0);
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-a", &out), GC_ROUTE_UNKNOWN);
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-b", &out), GC_ROUTE_OK);
    ck_assert_uint_eq(out.generation, 3);
    ck_assert_int_eq(out.observed_at, T0 + SEC(5));
    ck_assert(out.targets[0].spare == 7);
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-c", &out), GC_ROUTE_OK);
    ck_assert_uint_eq(out.generation, 3);
    gc_route_shm_info(b, &info);
    ck_assert_int_eq(info.tables, 2);

    /* Nothing active: an empty block that is loaded (unknown, not "not loaded"). */
    ck_assert_int_eq(gc_route_shm_publish(b, in, 0, T0 + SEC(8)), 0);
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-b", &out), GC_ROUTE_UNKNOWN);
    gc_route_shm_info(b, &info);
    ck_assert_int_eq(info.tables, 0);
}
END_TEST

START_TEST(route_shm_publish_overflow_and_bad_tables)
{
    gc_route_shm_t *b = block();
    int n = GC_ROUTE_SHM_SLOTS + 6, i;
    gc_route_table_t *in = tables(n + 1), out;
    gc_route_shm_info_t info;

    for (i = 0; i < n; i++) {
        table(&in[i], apr_psprintf(pool, "strat-%d", i), 1, 1, 0, T0);
    }
    memset(&in[n], 0, sizeof(in[n])); /* not compiled */
    ck_assert_int_eq(gc_route_shm_publish(b, in, n + 1, T0), 7);
    gc_route_shm_info(b, &info);
    ck_assert_int_eq(info.tables, GC_ROUTE_SHM_SLOTS);
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-0", &out), GC_ROUTE_OK);
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-63", &out), GC_ROUTE_OK);
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-64", &out), GC_ROUTE_UNKNOWN);
    /* One goes: one of those left out gets its slot. */
    ck_assert_int_eq(gc_route_shm_publish(b, in + 1, n - 1, T0 + SEC(2)), 5);
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-0", &out), GC_ROUTE_UNKNOWN);
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-64", &out), GC_ROUTE_OK);
}
END_TEST

/* A publish read before the block's last one changes nothing. */
START_TEST(route_shm_late_publish_is_dropped)
{
    gc_route_shm_t *b = block();
    gc_route_table_t *in = tables(1), out;
    gc_route_shm_info_t info;

    table(&in[0], "strat-a", 2, 1, 0, T0 + SEC(10));
    ck_assert_int_eq(gc_route_shm_publish(b, in, 1, T0 + SEC(10)), 0);
    table(&in[0], "strat-old", 2, 1, 0, T0);
    ck_assert_int_eq(gc_route_shm_publish(b, in, 1, T0 + SEC(9)), -1);
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-a", &out), GC_ROUTE_OK);
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-old", &out), GC_ROUTE_UNKNOWN);
    gc_route_shm_info(b, &info);
    ck_assert_uint_eq(info.generation, 1);
    ck_assert_int_eq(info.refreshed_at, T0 + SEC(10));
}
END_TEST

static pid_t dead_pid(void)
{
    pid_t pid = fork();

    if (pid == 0) {
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    return pid;
}

#define AT(b, off, type) ((type *)((char *)(b) + (off)))

START_TEST(route_shm_claim)
{
    gc_route_shm_t *b = block();
    gc_route_table_t *in = tables(1);
    apr_interval_time_t bound = SEC(2);

    /* Never refreshed: due. While claimed (by this live process), no second
     * claim; an attempt makes it fresh for a bound even without a publish. */
    ck_assert_int_eq(gc_route_shm_claim(b, T0, bound), 1);
    ck_assert_int_eq(*AT(b, 24, int), (int)getpid());
    ck_assert_int_eq(gc_route_shm_claim(b, T0, bound), 0);
    gc_route_shm_release(b);
    ck_assert_int_eq(*AT(b, 24, int), 0);
    ck_assert_int_eq(gc_route_shm_claim(b, T0 + SEC(1), bound), 0);
    ck_assert_int_eq(gc_route_shm_claim(b, T0 + SEC(2), bound), 1);

    /* A publish releases the claim; the block is fresh for a bound after
     * its read time. */
    table(&in[0], "strat-a", 1, 1, 0, T0);
    ck_assert_int_eq(gc_route_shm_publish(b, in, 1, T0 + SEC(2)), 0);
    ck_assert_int_eq(*AT(b, 24, int), 0);
    ck_assert_int_eq(gc_route_shm_claim(b, T0 + SEC(3), bound), 0);
    ck_assert_int_eq(gc_route_shm_claim(b, T0 + SEC(4), bound), 1);
    gc_route_shm_release(b);
    /* A clock set back by more than the bound: due again. */
    ck_assert_int_eq(gc_route_shm_claim(b, T0 - SEC(10), bound), 1);
    gc_route_shm_release(b);

    /* Another live process's recent claim is respected... */
    *AT(b, 24, int) = (int)getppid();
    *AT(b, 32, apr_int64_t) = T0 + SEC(20);
    ck_assert_int_eq(gc_route_shm_claim(b, T0 + SEC(21), bound), 0);
    ck_assert_int_eq(*AT(b, 24, int), (int)getppid());
    /* ...until it is older than GC_ROUTE_CLAIM_TTL (a refresher stuck in a
     * database call). */
    ck_assert_int_eq(gc_route_shm_claim(b, T0 + SEC(20) + GC_ROUTE_CLAIM_TTL, bound), 1);
    ck_assert_int_eq(*AT(b, 24, int), (int)getpid());
    gc_route_shm_release(b);

    /* A dead process's claim is taken over at once. */
    *AT(b, 24, int) = (int)dead_pid();
    *AT(b, 32, apr_int64_t) = T0 + SEC(100);
    ck_assert_int_eq(gc_route_shm_claim(b, T0 + SEC(101), bound), 1);
    ck_assert_int_eq(*AT(b, 24, int), (int)getpid());
    /* Releasing what another process holds does nothing. */
    *AT(b, 24, int) = (int)getppid();
    gc_route_shm_release(b);
    ck_assert_int_eq(*AT(b, 24, int), (int)getppid());
}
END_TEST

/* A writer SIGKILLed inside a slot's critical section leaves the lock taken
 * and that slot's sequence odd: readers of the slot give up after a bounded
 * wait (BUSY), the next publish steals the lock and repairs the sequence. */
START_TEST(route_shm_survives_killed_writer)
{
    gc_route_shm_t *b = block();
    gc_route_table_t *in = tables(2), out;
    uint32_t *seq;
    int slot_b;

    table(&in[0], "strat-a", 2, 1, 0, T0);
    table(&in[1], "strat-b", 2, 1, 0, T0);
    ck_assert_int_eq(gc_route_shm_publish(b, in, 2, T0), 0);
    /* The slots were taken in order: strat-b is slot 1. */
    slot_b = 1;
    seq = AT(b, 64 + slot_b * (16 + GC_ROUTE_TABLE_SIZE), uint32_t);
    ck_assert_uint_eq(*seq % 2, 0);
    *AT(b, 4, int) = (int)dead_pid();
    (*seq)++;
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-b", &out), GC_ROUTE_BUSY);
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-a", &out), GC_ROUTE_OK);

    table(&in[1], "strat-b", 2, 1, 4, T0 + SEC(1));
    ck_assert_int_eq(gc_route_shm_publish(b, in, 2, T0 + SEC(1)), 0);
    ck_assert_int_eq(*AT(b, 4, int), 0);
    ck_assert_uint_eq(*seq % 2, 0);
    ck_assert_int_eq(gc_route_shm_lookup(b, "strat-b", &out), GC_ROUTE_OK);
    ck_assert_int_eq(out.observed_at, T0 + SEC(1));
}
END_TEST

/* ---------------------------------------------------------------- torn reads */

#define RACE_TARGETS 40

typedef struct {
    gc_route_shm_t *b;
    gc_route_table_t *a, *c; /* two tables of one strategy, every field differing */
    _Atomic int stop;
    long reads, torn, busy, missing;
} race_t;

static void *APR_THREAD_FUNC race_reader(apr_thread_t *th, void *data)
{
    race_t *r = data;
    gc_route_table_t t;

    while (!atomic_load(&r->stop)) {
        gc_route_shm_e rc = gc_route_shm_lookup(r->b, "strat-race", &t);
        if (rc == GC_ROUTE_BUSY) {
            r->busy++;
            continue;
        }
        if (rc != GC_ROUTE_OK) {
            r->missing++;
            continue;
        }
        /* Either table whole (the generation aside), never a mix. */
        t.generation = 0;
        if (memcmp(&t, r->a, sizeof(t)) != 0 && memcmp(&t, r->c, sizeof(t)) != 0) {
            r->torn++;
        }
        r->reads++;
    }
    return NULL;
}

START_TEST(route_shm_reader_never_sees_a_torn_table)
{
    race_t r;
    apr_thread_t *th;
    apr_status_t rv;
    apr_time_t end;
    long publishes = 0;

    memset(&r, 0, sizeof(r));
    r.b = block();
    r.a = tables(1);
    r.c = tables(1);
    table(r.a, "strat-race", RACE_TARGETS, 1, 0, T0);
    table(r.c, "strat-race", RACE_TARGETS, 7, 9, T0 + SEC(1));
    ck_assert_int_eq(gc_route_shm_publish(r.b, r.a, 1, 1), 0);
    ck_assert_int_eq(apr_thread_create(&th, NULL, race_reader, &r, pool), APR_SUCCESS);
    end = apr_time_now() + apr_time_from_msec(400);
    while (apr_time_now() < end || r.reads < 1000) {
        publishes++;
        ck_assert_int_eq(gc_route_shm_publish(r.b, publishes % 2 ? r.c : r.a, 1, publishes + 1), 0);
    }
    atomic_store(&r.stop, 1);
    apr_thread_join(&rv, th);
    ck_assert_int_eq(r.torn, 0);
    ck_assert_int_eq(r.missing, 0);
    ck_assert_int_gt(r.reads, 999);
    ck_assert_int_gt(publishes, 100);
}
END_TEST

/* ---------------------------------------------------------------- layout */

START_TEST(route_shm_attach_checks_the_layout)
{
    apr_size_t size = gc_route_shm_size();
    unsigned char *mem = apr_pcalloc(pool, size + 64);
    gc_route_shm_t *b = gc_route_shm_init(mem);
    gc_route_table_t *in = tables(1), out;

    ck_assert_uint_eq(size, 64 + GC_ROUTE_SHM_SLOTS * (16 + GC_ROUTE_TABLE_SIZE));
    table(&in[0], "strat-a", 2, 1, 0, T0);
    ck_assert_int_eq(gc_route_shm_publish(b, in, 1, T0), 0);
    /* Kept across a graceful restart by a build of this layout: the tables too. */
    ck_assert_ptr_eq(gc_route_shm_attach(mem, size), b);
    ck_assert_ptr_eq(gc_route_shm_attach(mem, size + 64), b);
    ck_assert_int_eq(gc_route_shm_lookup(gc_route_shm_attach(mem, size), "strat-a", &out),
                     GC_ROUTE_OK);
    ck_assert_ptr_null(gc_route_shm_attach(mem, size - 1));
    ck_assert_ptr_null(gc_route_shm_attach(NULL, size));
    ck_assert_ptr_null(gc_route_shm_attach(mem + 4, size));
    mem[8] ^= 1; /* version */
    ck_assert_ptr_null(gc_route_shm_attach(mem, size));
    mem[8] ^= 1;
    mem[12] ^= 1; /* slot count */
    ck_assert_ptr_null(gc_route_shm_attach(mem, size));
    mem[12] ^= 1;
    mem[16] ^= 8; /* size */
    ck_assert_ptr_null(gc_route_shm_attach(mem, size));
    mem[16] ^= 8;
    ck_assert_ptr_eq(gc_route_shm_attach(mem, size), b);
    memcpy(mem, "gcS2", 4); /* another block's magic */
    ck_assert_ptr_null(gc_route_shm_attach(mem, size));
    memset(mem, 0, size);
    ck_assert_ptr_null(gc_route_shm_attach(mem, size));
}
END_TEST

/* ---------------------------------------------------------------- random */

typedef struct {
    double first[4];
} rand_run_t;

static void *APR_THREAD_FUNC rand_thread(apr_thread_t *th, void *data)
{
    rand_run_t *r = data;
    int i;

    for (i = 0; i < 4; i++) {
        r->first[i] = gc_route_shm_rand();
    }
    return NULL;
}

START_TEST(route_shm_rand_uniform_per_thread)
{
    double sum = 0, lo = 1, hi = 0;
    int i, n = 200000, buckets[10] = { 0 };
    rand_run_t a, c;
    apr_thread_t *t1, *t2;
    apr_status_t rv;

    for (i = 0; i < n; i++) {
        double x = gc_route_shm_rand();
        ck_assert(x >= 0 && x < 1);
        sum += x;
        lo = x < lo ? x : lo;
        hi = x > hi ? x : hi;
        buckets[(int)(x * 10)]++;
    }
    ck_assert(sum / n > 0.49 && sum / n < 0.51);
    ck_assert(lo < 0.001 && hi > 0.999);
    for (i = 0; i < 10; i++) {
        ck_assert_int_gt(buckets[i], n / 10 - n / 100);
        ck_assert_int_lt(buckets[i], n / 10 + n / 100);
    }
    /* Each thread seeds its own generator: two threads, two sequences. */
    ck_assert_int_eq(apr_thread_create(&t1, NULL, rand_thread, &a, pool), APR_SUCCESS);
    ck_assert_int_eq(apr_thread_create(&t2, NULL, rand_thread, &c, pool), APR_SUCCESS);
    apr_thread_join(&rv, t1);
    apr_thread_join(&rv, t2);
    ck_assert(memcmp(a.first, c.first, sizeof(a.first)) != 0);
}
END_TEST

/* Decisions from the block follow the weights (1:3 in the tier). */
START_TEST(route_shm_decide_follows_the_weights)
{
    gc_route_shm_t *b = block();
    gc_route_table_t *in = tables(1);
    gc_strategy_t *s = strategy(2, 1);
    gc_strategy_live_t live[2] = { { 1, 0, -1 }, { 1, 0, -1 } };
    gc_route_decision_t d;
    int i, n = 100000, q1 = 0;

    s->targets[1].weight = 3;
    ck_assert_int_eq(gc_strategy_compile(s, "strat-w", live, T0, 0, &in[0]), 0);
    ck_assert_int_eq(gc_route_shm_publish(b, in, 1, T0), 0);
    for (i = 0; i < n; i++) {
        ck_assert_int_eq(gc_route_shm_decide(b, "strat-w", gc_route_shm_rand(), T0, &d),
                         GC_ROUTE_OK);
        q1 += strcmp(d.route.queue_id, "q1") == 0;
    }
    ck_assert_int_gt(q1, 74000);
    ck_assert_int_lt(q1, 76000);
}
END_TEST

Suite *route_shm_suite(void)
{
    Suite *s = suite_create("route_shm");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, route_shm_publish_and_decide);
    tcase_add_test(tc, route_shm_publish_replaces_the_set);
    tcase_add_test(tc, route_shm_publish_overflow_and_bad_tables);
    tcase_add_test(tc, route_shm_late_publish_is_dropped);
    tcase_add_test(tc, route_shm_claim);
    tcase_add_test(tc, route_shm_survives_killed_writer);
    tcase_add_test(tc, route_shm_reader_never_sees_a_torn_table);
    tcase_add_test(tc, route_shm_attach_checks_the_layout);
    tcase_add_test(tc, route_shm_rand_uniform_per_thread);
    tcase_add_test(tc, route_shm_decide_follows_the_weights);
    suite_add_tcase(s, tc);
    return s;
}
