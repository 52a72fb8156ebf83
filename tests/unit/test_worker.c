/* The background thread skeleton (gc_worker.h): waits that a wake or a stop
 * ends at once (also a stop from a signal handler), the bounded join, the
 * worker's random numbers and backoff, its database connection with
 * reconnect backoff and throttled failure logging. */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "gc_store.h"
#include "gc_worker.h"
#include "unit.h"

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}
static void teardown(void)
{
    apr_pool_destroy(pool);
}

#define MS(n) apr_time_from_msec(n)

static gc_worker_t *worker_new(const char *name)
{
    gc_worker_t *w = NULL;

    ck_assert_int_eq(gc_worker_create(&w, pool, name), APR_SUCCESS);
    ck_assert_ptr_nonnull(w);
    ck_assert_str_eq(gc_worker_name(w), name);
    return w;
}

/* ---------------------------------------------------------------- waits */

/* A worker that waits once for `wait`, recording how the wait ended and when. */
typedef struct {
    apr_interval_time_t wait;
    int pause; /* gc_worker_pause instead of _wait */
    _Atomic int waiting;
    gc_worker_wait_e result, next; /* next: an immediate gc_worker_wait after it */
    apr_time_t ended_at;
} waiter_t;

static void waiter_main(gc_worker_t *w, void *baton)
{
    waiter_t *x = baton;
    apr_time_t until = apr_time_now() + x->wait;

    atomic_store(&x->waiting, 1);
    x->result = x->pause ? gc_worker_pause(w, until) : gc_worker_wait(w, until);
    x->ended_at = apr_time_now();
    x->next = gc_worker_wait(w, apr_time_now());
}

static void wait_until_waiting(waiter_t *x)
{
    apr_time_t until = apr_time_now() + apr_time_from_sec(5);

    while (!atomic_load(&x->waiting) && apr_time_now() < until) {
        apr_sleep(1000);
    }
    ck_assert(atomic_load(&x->waiting));
    apr_sleep(MS(20)); /* inside the wait by now */
}

START_TEST(wait_times_out_at_until)
{
    gc_worker_t *w = worker_new("waiter");
    waiter_t x = { MS(150), 0, 0, -1, -1, 0 };
    apr_time_t t0 = apr_time_now();

    gc_worker_run(w, waiter_main, &x);
    ck_assert_int_eq(x.result, GC_WORKER_TIMEOUT);
    ck_assert_int_ge(x.ended_at - t0, MS(150));
    ck_assert_int_lt(x.ended_at - t0, MS(1000));
    ck_assert_int_eq(x.next, GC_WORKER_TIMEOUT);
    gc_worker_destroy(w);
}
END_TEST

START_TEST(wake_ends_a_wait_at_once)
{
    gc_worker_t *w = worker_new("waiter");
    waiter_t x = { apr_time_from_sec(10), 0, 0, -1, -1, 0 };
    apr_time_t t0;

    ck_assert_int_eq(gc_worker_start(w, waiter_main, &x, NULL), APR_SUCCESS);
    wait_until_waiting(&x);
    t0 = apr_time_now();
    gc_worker_wake(w);
    ck_assert_int_eq(gc_worker_join(w, apr_time_from_sec(5)), APR_SUCCESS);
    ck_assert_int_eq(x.result, GC_WORKER_WOKEN);
    ck_assert_int_lt(x.ended_at - t0, MS(500));
    ck_assert_int_eq(x.next, GC_WORKER_TIMEOUT); /* one wake, consumed */
    ck_assert(!gc_worker_stopping(w));
    gc_worker_destroy(w);
}
END_TEST

START_TEST(stop_ends_every_wait)
{
    gc_worker_t *w = worker_new("waiter");
    waiter_t x = { apr_time_from_sec(10), 0, 0, -1, -1, 0 };
    apr_time_t t0;

    ck_assert_int_eq(gc_worker_start(w, waiter_main, &x, NULL), APR_SUCCESS);
    wait_until_waiting(&x);
    t0 = apr_time_now();
    gc_worker_stop(w);
    ck_assert_int_eq(gc_worker_join(w, apr_time_from_sec(5)), APR_SUCCESS);
    ck_assert_int_eq(x.result, GC_WORKER_STOPPED);
    ck_assert_int_lt(x.ended_at - t0, MS(500));
    ck_assert_int_eq(x.next, GC_WORKER_STOPPED); /* and every later one */
    ck_assert(gc_worker_stopping(w));
    ck_assert_int_eq(gc_worker_pause(w, apr_time_now() + apr_time_from_sec(10)), GC_WORKER_STOPPED);
    gc_worker_destroy(w);
}
END_TEST

/* Wakes before a wait coalesce into one. */
START_TEST(wakes_coalesce)
{
    gc_worker_t *w = worker_new("waiter");
    waiter_t x = { apr_time_from_sec(10), 0, 0, -1, -1, 0 };

    gc_worker_wake(w);
    gc_worker_wake(w);
    gc_worker_run(w, waiter_main, &x);
    ck_assert_int_eq(x.result, GC_WORKER_WOKEN);
    ck_assert_int_eq(x.next, GC_WORKER_TIMEOUT);
    gc_worker_destroy(w);
}
END_TEST

/* A pause runs its course through a wake, which waits for the next wait. */
START_TEST(pause_keeps_a_wake_for_the_next_wait)
{
    gc_worker_t *w = worker_new("waiter");
    waiter_t x = { MS(300), 1, 0, -1, -1, 0 };
    apr_time_t t0 = apr_time_now();

    ck_assert_int_eq(gc_worker_start(w, waiter_main, &x, NULL), APR_SUCCESS);
    wait_until_waiting(&x);
    gc_worker_wake(w);
    ck_assert_int_eq(gc_worker_join(w, apr_time_from_sec(5)), APR_SUCCESS);
    ck_assert_int_eq(x.result, GC_WORKER_TIMEOUT);
    ck_assert_int_ge(x.ended_at - t0, MS(300));
    ck_assert_int_eq(x.next, GC_WORKER_WOKEN);
    gc_worker_destroy(w);
}
END_TEST

/* prefork stops the monitor from a signal handler: gc_worker_stop there ends
 * the worker's wait as promptly as from a thread. */
static gc_worker_t *signalled;

static void on_signal(int sig)
{
    gc_worker_stop(signalled);
}

START_TEST(stop_from_a_signal_handler)
{
    gc_worker_t *w = worker_new("waiter");
    waiter_t x = { apr_time_from_sec(10), 0, 0, -1, -1, 0 };
    struct sigaction sa, old;
    apr_time_t t0;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR2, &sa, &old), 0);
    signalled = w;
    ck_assert_int_eq(gc_worker_start(w, waiter_main, &x, NULL), APR_SUCCESS);
    wait_until_waiting(&x);
    t0 = apr_time_now();
    raise(SIGUSR2);
    ck_assert_int_eq(gc_worker_join(w, apr_time_from_sec(5)), APR_SUCCESS);
    ck_assert_int_eq(x.result, GC_WORKER_STOPPED);
    ck_assert_int_lt(x.ended_at - t0, MS(500));
    sigaction(SIGUSR2, &old, NULL);
    gc_worker_destroy(w);
}
END_TEST

/* ---------------------------------------------------------------- join */

static void stubborn_main(gc_worker_t *w, void *baton)
{
    gc_worker_wait(w, apr_time_now() + apr_time_from_sec(10));
    apr_sleep(MS(400)); /* takes its time after the stop */
}

START_TEST(join_is_bounded)
{
    gc_worker_t *w = worker_new("stubborn");
    apr_time_t t0;

    ck_assert_int_eq(gc_worker_join(w, 0), APR_SUCCESS); /* never started */
    ck_assert_int_eq(gc_worker_start(w, stubborn_main, NULL, NULL), APR_SUCCESS);
    gc_worker_stop(w);
    t0 = apr_time_now();
    ck_assert_int_eq(gc_worker_join(w, MS(100)), APR_TIMEUP);
    ck_assert_int_ge(apr_time_now() - t0, MS(100));
    ck_assert_int_lt(apr_time_now() - t0, MS(350));
    ck_assert_int_eq(gc_worker_join(w, apr_time_from_sec(5)), APR_SUCCESS);
    ck_assert_int_eq(gc_worker_join(w, 0), APR_SUCCESS); /* joined already */
    gc_worker_destroy(w);
}
END_TEST

/* ---------------------------------------------------------------- random, backoff */

START_TEST(random_is_uniform_and_per_worker)
{
    gc_worker_t *a = worker_new("a"), *b = worker_new("b");
    double sum = 0, lo = 1, hi = 0;
    int i, same = 0;

    for (i = 0; i < 10000; i++) {
        double u = gc_worker_rand(a);
        ck_assert(u >= 0 && u < 1);
        sum += u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
        same += u == gc_worker_rand(b);
    }
    ck_assert(sum / 10000 > 0.45 && sum / 10000 < 0.55);
    ck_assert(lo < 0.01 && hi > 0.99);
    ck_assert_int_lt(same, 5); /* seeded apart */
    gc_worker_destroy(a);
    gc_worker_destroy(b);
}
END_TEST

START_TEST(backoff_is_jittered_and_retry_after_wins)
{
    gc_worker_t *w = worker_new("b");
    apr_interval_time_t sec = apr_time_from_sec(1);
    int i, distinct = 0;
    apr_interval_time_t prev = -1;

    ck_assert_int_eq(gc_worker_backoff(w, sec, 60 * sec, 0, 0), 0);
    for (i = 0; i < 100; i++) {
        apr_interval_time_t d = gc_worker_backoff(w, sec, 60 * sec, 3, 0);
        ck_assert_int_ge(d, 4 * sec);
        ck_assert_int_le(d, 5 * sec);
        distinct += d != prev;
        prev = d;
    }
    ck_assert_int_gt(distinct, 50);
    ck_assert_int_eq(gc_worker_backoff(w, sec, 60 * sec, 1, 30 * sec), 30 * sec);
    ck_assert_int_le(gc_worker_backoff(w, sec, 60 * sec, 1, MS(10)), sec + sec / 4);
    gc_worker_destroy(w);
}
END_TEST

/* ---------------------------------------------------------------- database */

typedef struct {
    const char *path;
    int fail_opens; /* the first n opens fail */
    int opens, closes;
} fake_db_t;

static apr_status_t fake_open(void *baton, apr_pool_t *p, gc_store_t **store, void **handle,
                              const char **err)
{
    fake_db_t *f = baton;

    f->opens++;
    if (f->opens <= f->fail_opens) {
        *err = "injected failure";
        return APR_EGENERAL;
    }
    if (gc_store_open(p, "sqlite3", f->path, store, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    *handle = *store;
    return APR_SUCCESS;
}

static void fake_close(void *baton, void *handle)
{
    fake_db_t *f = baton;

    f->closes++;
    gc_store_close(handle);
}

static char *temp_path(void)
{
    char *path = apr_pstrdup(pool, "/tmp/gcmon-worker-XXXXXX");
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    close(fd);
    return path;
}

static void use_fake_db(gc_worker_t *w, fake_db_t *f, apr_interval_time_t min,
                        apr_interval_time_t max)
{
    gc_worker_db_conf_t db;

    memset(&db, 0, sizeof(db));
    db.open = fake_open;
    db.close = fake_close;
    db.baton = f;
    db.retry_min = min;
    db.retry_max = max;
    gc_worker_use_db(w, &db);
}

typedef struct {
    int logged[4];               /* gc_worker_db_failed of failures 1..4 */
    apr_status_t eagain;         /* gc_worker_db during the backoff */
    apr_interval_time_t backoff; /* retry_at - now after the first failure */
    int ended;                   /* gc_worker_db_ok */
    int reopened;
} db_run_t;

static void db_main(gc_worker_t *w, void *baton)
{
    db_run_t *r = baton;
    gc_store_t *s = NULL;
    const char *err = NULL;
    int i;

    for (i = 0; i < 4; i++) {
        while (gc_worker_db(w, &s, &err) == APR_EAGAIN) {
            gc_worker_pause(w, gc_worker_db_retry_at(w));
        }
        ck_assert_ptr_null(s);
        ck_assert_str_eq(err, "injected failure");
        r->logged[i] = gc_worker_db_failed(w);
        ck_assert_int_eq(gc_worker_db_failures(w), i + 1);
        if (i == 0) {
            r->backoff = gc_worker_db_retry_at(w) - apr_time_now();
            r->eagain = gc_worker_db(w, &s, &err);
        }
    }
    gc_worker_pause(w, gc_worker_db_retry_at(w));
    r->reopened = gc_worker_db(w, &s, &err) == APR_SUCCESS && s && gc_worker_store(w) == s;
    r->ended = gc_worker_db_ok(w);
    ck_assert_int_eq(gc_worker_db_failures(w), 0);
    /* A new run of failures is logged from its first again. */
    ck_assert_int_eq(gc_worker_db_failed(w), 1);
    ck_assert_ptr_null(gc_worker_store(w));
    gc_worker_db_ok(w);
    ck_assert_int_eq(gc_worker_db(w, &s, &err), APR_SUCCESS); /* open at the end */
}

START_TEST(database_reconnects_with_backoff_and_throttled_logging)
{
    gc_worker_t *w = worker_new("db");
    fake_db_t f = { temp_path(), 4, 0, 0 };
    db_run_t r;

    memset(&r, 0, sizeof(r));
    use_fake_db(w, &f, MS(20), MS(80));
    gc_worker_run(w, db_main, &r);
    /* Logged at the first failure only (the rest within the minute). */
    ck_assert_int_eq(r.logged[0], 1);
    ck_assert_int_eq(r.logged[1], 0);
    ck_assert_int_eq(r.logged[2], 0);
    ck_assert_int_eq(r.logged[3], 0);
    ck_assert_int_eq(r.eagain, APR_EAGAIN);
    ck_assert_int_ge(r.backoff, MS(15));
    ck_assert_int_le(r.backoff, MS(25));
    ck_assert(r.reopened);
    ck_assert_int_eq(r.ended, 4);
    /* Four failed opens, two good ones; the worker closed what was open. */
    ck_assert_int_eq(f.opens, 6);
    ck_assert_int_eq(f.closes, 2);
    gc_worker_destroy(w);
    unlink(f.path);
}
END_TEST

Suite *worker_suite(void)
{
    Suite *s = suite_create("worker");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, wait_times_out_at_until);
    tcase_add_test(tc, wake_ends_a_wait_at_once);
    tcase_add_test(tc, wakes_coalesce);
    tcase_add_test(tc, stop_ends_every_wait);
    tcase_add_test(tc, pause_keeps_a_wake_for_the_next_wait);
    tcase_add_test(tc, stop_from_a_signal_handler);
    tcase_add_test(tc, join_is_bounded);
    tcase_add_test(tc, random_is_uniform_and_per_worker);
    tcase_add_test(tc, backoff_is_jittered_and_retry_after_wins);
    tcase_add_test(tc, database_reconnects_with_backoff_and_throttled_logging);
    suite_add_tcase(s, tc);
    return s;
}
