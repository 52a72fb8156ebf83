/* gc_budget: exact sliding window shared by processes, dead-owner lock steal. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_time.h>

#include "gc_budget.h"
#include "gc_budget_test.h"
#include "gc_log.h"
#include "unit.h"

#define MS(n) ((apr_interval_time_t)(n)*1000)
#define NS_PER_MS INT64_C(1000000)

/* Budgets live in MAP_SHARED memory as in httpd (apr_shm is an mmap too). */
static void *shared_alloc(size_t size)
{
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(mem, MAP_FAILED);
    return mem;
}

static gc_budget_t *new_budget(int limit, apr_interval_time_t window, size_t *size)
{
    gc_budget_t *b;
    *size = gc_budget_size(limit);
    b = gc_budget_init(shared_alloc(*size), limit, window);
    ck_assert_ptr_nonnull(b);
    return b;
}

/* Log lines of the code under test, kept instead of going to stderr. */
static char logged[2048];

static int log_all(void *baton, int level)
{
    return 1;
}

static void log_keep(void *baton, const char *file, int line, int level, apr_status_t rv,
                     const char *msg)
{
    size_t len = strlen(logged);
    snprintf(logged + len, sizeof(logged) - len, "%d %s\n", level, msg);
}

static void log_capture(void)
{
    logged[0] = '\0';
    gc_log_set(log_all, log_keep, NULL);
}

static void log_restore(void)
{
    gc_log_set(NULL, NULL, NULL);
}

START_TEST(init_and_size)
{
    char mem[512] __attribute__((aligned(64)));
    gc_budget_t *b;

    ck_assert_uint_ge(gc_budget_size(10), 10 * sizeof(apr_int64_t));
    ck_assert_uint_gt(gc_budget_size(11), gc_budget_size(10));
    log_capture();
    ck_assert_ptr_null(gc_budget_init(mem, 0, APR_USEC_PER_SEC));
    ck_assert_ptr_null(gc_budget_init(mem, -3, APR_USEC_PER_SEC));
    ck_assert_ptr_null(gc_budget_init(mem, 5, 0));
    ck_assert_ptr_null(gc_budget_init(NULL, 5, APR_USEC_PER_SEC));
    log_restore();
    ck_assert_ptr_nonnull(strstr(logged, "GCM250: "));
    ck_assert_uint_le(gc_budget_size(5), sizeof(mem));
    b = gc_budget_init(mem, 5, 60 * APR_USEC_PER_SEC);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(gc_budget_limit(b), 5);
    ck_assert_int_eq(gc_budget_window(b), 60 * APR_USEC_PER_SEC);
    ck_assert_int_eq(gc_budget_used(b), 0);
    ck_assert_uint_eq(gc_budget_test_lock_owner(b), 0);
}
END_TEST

START_TEST(full_window_times_up_then_waits)
{
    size_t size;
    gc_budget_t *b = new_budget(5, APR_USEC_PER_SEC, &size);
    apr_interval_time_t retry = -1;
    apr_int64_t before, first = 0, g = 0, after;
    int i;

    before = gc_budget_now_ns();
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(gc_budget_acquire_ns(b, 0, NULL, NULL, &retry, &g), APR_SUCCESS);
        if (i == 0) {
            first = g;
        }
    }
    ck_assert_int_ge(first, before);
    ck_assert_int_lt(gc_budget_now_ns() - before, 200 * NS_PER_MS); /* immediate */
    ck_assert_int_eq(gc_budget_used(b), 5);

    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, &retry), APR_TIMEUP);
    ck_assert_int_gt(retry, 0);
    ck_assert_int_le(retry, APR_USEC_PER_SEC);
    /* It is the time until the oldest grant leaves the window. */
    ck_assert_int_ge((apr_int64_t)retry * 1000,
                     first + 1000 * NS_PER_MS - gc_budget_now_ns() - NS_PER_MS);
    ck_assert_int_eq(gc_budget_used(b), 5);

    ck_assert_int_eq(gc_budget_acquire_ns(b, 2 * APR_USEC_PER_SEC, NULL, NULL, &retry, &g),
                     APR_SUCCESS);
    after = gc_budget_now_ns();
    ck_assert_int_ge(g - first, 1000 * NS_PER_MS); /* not before the window allows */
    ck_assert_int_ge(after - before, 1000 * NS_PER_MS);
    ck_assert_int_lt(after - before, 1500 * NS_PER_MS); /* …but soon after */
    ck_assert_int_ge(gc_budget_used(b), 1);
    ck_assert_int_le(gc_budget_used(b), 5);
    munmap(b, size);
}
END_TEST

START_TEST(retry_after_is_accurate)
{
    size_t size;
    gc_budget_t *b = new_budget(3, MS(300), &size);
    apr_interval_time_t retry = 0;
    int i;

    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_SUCCESS);
    }
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, &retry), APR_TIMEUP);
    ck_assert_int_gt(retry, 0);
    ck_assert_int_le(retry, MS(300));
    apr_sleep(retry);
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, &retry), APR_SUCCESS);
    munmap(b, size);
}
END_TEST

/* A wait longer than max_wait: waits max_wait (in slices), then APR_TIMEUP
 * with the time still to go. */
START_TEST(short_max_wait_times_up)
{
    size_t size;
    gc_budget_t *b = new_budget(1, APR_USEC_PER_SEC, &size);
    apr_interval_time_t retry = 0;
    apr_int64_t t0, elapsed;

    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_SUCCESS);
    t0 = gc_budget_now_ns();
    ck_assert_int_eq(gc_budget_acquire(b, MS(250), NULL, NULL, &retry), APR_TIMEUP);
    elapsed = gc_budget_now_ns() - t0;
    ck_assert_int_ge(elapsed, 250 * NS_PER_MS);
    ck_assert_int_lt(elapsed, 500 * NS_PER_MS);
    ck_assert_int_gt(retry, MS(400));
    ck_assert_int_le(retry, MS(750));
    ck_assert_int_eq(gc_budget_used(b), 1);
    munmap(b, size);
}
END_TEST

typedef struct {
    apr_int64_t start;
    int calls;
} cancel_baton_t;

static int cancel_after_150ms(void *baton)
{
    cancel_baton_t *c = baton;
    c->calls++;
    return gc_budget_now_ns() - c->start >= 150 * NS_PER_MS;
}

START_TEST(cancel_interrupts_promptly)
{
    size_t size;
    gc_budget_t *b = new_budget(1, 5 * APR_USEC_PER_SEC, &size);
    cancel_baton_t c;
    apr_int64_t elapsed;

    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_SUCCESS);
    c.calls = 0;
    c.start = gc_budget_now_ns();
    ck_assert_int_eq(gc_budget_acquire(b, 10 * APR_USEC_PER_SEC, cancel_after_150ms, &c, NULL),
                     APR_EINTR);
    elapsed = gc_budget_now_ns() - c.start;
    ck_assert_int_ge(elapsed, 150 * NS_PER_MS);
    ck_assert_int_lt(elapsed, 400 * NS_PER_MS); /* slices of at most 100 ms */
    ck_assert_int_ge(c.calls, 2);
    ck_assert_int_eq(gc_budget_used(b), 1);
    munmap(b, size);
}
END_TEST

START_TEST(used_counts_current_window)
{
    size_t size;
    gc_budget_t *b = new_budget(5, MS(300), &size);
    int i;

    ck_assert_int_eq(gc_budget_used(b), 0);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_SUCCESS);
    }
    ck_assert_int_eq(gc_budget_used(b), 3);
    apr_sleep(MS(350));
    ck_assert_int_eq(gc_budget_used(b), 0);
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_SUCCESS);
    ck_assert_int_eq(gc_budget_used(b), 1);
    munmap(b, size);
}
END_TEST

/* --- several processes ---------------------------------------------------- */

#define PROCS 4
#define PER_PROC 15
#define MP_LIMIT 10
#define MP_WINDOW_MS 500

typedef struct {
    _Atomic int n;
    _Atomic int failures;
    apr_int64_t at[PROCS * PER_PROC];
} grant_log_t;

static int cmp_i64(const void *a, const void *b)
{
    apr_int64_t x = *(const apr_int64_t *)a, y = *(const apr_int64_t *)b;
    return (x > y) - (x < y);
}

START_TEST(processes_share_exact_window)
{
    size_t size;
    gc_budget_t *b = new_budget(MP_LIMIT, MS(MP_WINDOW_MS), &size);
    grant_log_t *log = shared_alloc(sizeof(*log));
    pid_t pids[PROCS];
    int i, n;

    atomic_init(&log->n, 0);
    atomic_init(&log->failures, 0);
    for (i = 0; i < PROCS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            int k;
            for (k = 0; k < PER_PROC; k++) {
                apr_int64_t g = 0;
                if (gc_budget_acquire_ns(b, 10 * APR_USEC_PER_SEC, NULL, NULL, NULL, &g)
                    == APR_SUCCESS) {
                    log->at[atomic_fetch_add(&log->n, 1)] = g;
                }
                else {
                    atomic_fetch_add(&log->failures, 1);
                }
            }
            _exit(0);
        }
    }
    for (i = 0; i < PROCS; i++) {
        int st = 0;
        ck_assert_int_eq(waitpid(pids[i], &st, 0), pids[i]);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    n = atomic_load(&log->n);
    ck_assert_int_eq(atomic_load(&log->failures), 0);
    ck_assert_int_eq(n, PROCS * PER_PROC);
    qsort(log->at, (size_t)n, sizeof(log->at[0]), cmp_i64);
    /* No half-open window of 0.5 s holds more than 10 grants: any 11
     * consecutive grants span at least the window. */
    for (i = 0; i + MP_LIMIT < n; i++) {
        ck_assert_msg(log->at[i + MP_LIMIT] - log->at[i] >= MP_WINDOW_MS * NS_PER_MS,
                      "grants %d..%d within %lld ns", i, i + MP_LIMIT,
                      (long long)(log->at[i + MP_LIMIT] - log->at[i]));
    }
    ck_assert_int_ge(log->at[n - 1] - log->at[0], (n / MP_LIMIT - 1) * MP_WINDOW_MS * NS_PER_MS);
    ck_assert_int_eq(gc_budget_test_steals(b), 0);
    munmap(log, sizeof(*log));
    munmap(b, size);
}
END_TEST

/* --- lock left behind ----------------------------------------------------- */

static pid_t exited_child(int reap)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        _exit(0);
    }
    if (reap) {
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
    }
    else {
        siginfo_t si;
        /* Wait for the exit but leave the zombie in place. */
        memset(&si, 0, sizeof(si));
        ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    }
    return pid;
}

START_TEST(dead_owner_lock_is_stolen)
{
    size_t size;
    gc_budget_t *b = new_budget(5, APR_USEC_PER_SEC, &size);
    pid_t dead = exited_child(1);
    apr_int64_t t0, elapsed;
    char pidstr[32];

    gc_budget_test_set_lock_owner(b, (apr_uint64_t)dead);
    log_capture();
    t0 = gc_budget_now_ns();
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_SUCCESS);
    elapsed = gc_budget_now_ns() - t0;
    log_restore();
    ck_assert_msg(strstr(logged, "4 GCM251: ") != NULL, "no warning logged: %s", logged);
    snprintf(pidstr, sizeof(pidstr), " %d ", (int)dead);
    ck_assert_ptr_nonnull(strstr(logged, pidstr));
    ck_assert_int_ge(elapsed, 50 * NS_PER_MS);
    ck_assert_int_lt(elapsed, 1000 * NS_PER_MS);
    ck_assert_uint_eq(gc_budget_test_steals(b), 1);
    ck_assert_uint_eq(gc_budget_test_lock_owner(b), 0);
    ck_assert_int_eq(gc_budget_used(b), 1);
    /* And the budget keeps working normally afterwards. */
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_SUCCESS);
    ck_assert_uint_eq(gc_budget_test_steals(b), 1);
    munmap(b, size);
}
END_TEST

/* A child killed but not yet reaped by the parent is a zombie: kill(pid, 0)
 * still succeeds, yet it will never release the lock. */
START_TEST(zombie_owner_lock_is_stolen)
{
    size_t size;
    gc_budget_t *b = new_budget(5, APR_USEC_PER_SEC, &size);
    pid_t zombie = exited_child(0);

    gc_budget_test_set_lock_owner(b, (apr_uint64_t)zombie);
    log_capture();
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_SUCCESS);
    log_restore();
    ck_assert_uint_eq(gc_budget_test_steals(b), 1);
    ck_assert_int_eq(waitpid(zombie, NULL, 0), zombie);
    munmap(b, size);
}
END_TEST

typedef struct {
    gc_budget_t *b;
    apr_status_t rv;
    _Atomic int done;
} acquirer_t;

static void *acquire_thread(void *arg)
{
    acquirer_t *a = arg;
    a->rv = gc_budget_acquire(a->b, 0, NULL, NULL, NULL);
    atomic_store(&a->done, 1);
    return NULL;
}

/* A live owner keeps the lock; once it is SIGKILLed the lock is taken over. */
START_TEST(live_owner_kept_until_killed)
{
    size_t size;
    gc_budget_t *b = new_budget(5, APR_USEC_PER_SEC, &size);
    acquirer_t a;
    pthread_t th;
    pid_t owner;
    apr_int64_t t0;

    owner = fork();
    ck_assert_int_ge(owner, 0);
    if (owner == 0) {
        for (;;) {
            pause();
        }
    }
    gc_budget_test_set_lock_owner(b, (apr_uint64_t)owner);
    a.b = b;
    a.rv = APR_EGENERAL;
    atomic_init(&a.done, 0);
    log_capture();
    ck_assert_int_eq(pthread_create(&th, NULL, acquire_thread, &a), 0);
    apr_sleep(MS(300));
    ck_assert_int_eq(atomic_load(&a.done), 0); /* > 50 ms, yet not stolen */
    ck_assert_uint_eq(gc_budget_test_lock_owner(b), (apr_uint64_t)owner);

    ck_assert_int_eq(kill(owner, SIGKILL), 0);
    ck_assert_int_eq(waitpid(owner, NULL, 0), owner);
    t0 = gc_budget_now_ns();
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    log_restore();
    ck_assert_int_lt(gc_budget_now_ns() - t0, 500 * NS_PER_MS);
    ck_assert_int_eq(a.rv, APR_SUCCESS);
    ck_assert_uint_eq(gc_budget_test_steals(b), 1);
    munmap(b, size);
}
END_TEST

/* Threads of one process contend on the same lock word (same pid). */
#define THREADS 4
#define PER_THREAD 200

static void *grab_many(void *arg)
{
    gc_budget_t *b = arg;
    int k;
    for (k = 0; k < PER_THREAD; k++) {
        if (gc_budget_acquire(b, 0, NULL, NULL, NULL) != APR_SUCCESS) {
            break;
        }
    }
    return NULL;
}

START_TEST(threads_never_exceed_limit)
{
    size_t size;
    gc_budget_t *b = new_budget(500, 60 * APR_USEC_PER_SEC, &size);
    pthread_t th[THREADS];
    int i;

    for (i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_create(&th[i], NULL, grab_many, b), 0);
    }
    for (i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    }
    ck_assert_int_eq(gc_budget_used(b), 500);
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_TIMEUP);
    ck_assert_uint_eq(gc_budget_test_lock_owner(b), 0);
    munmap(b, size);
}
END_TEST

/* --- the segment header and in-place limit changes ----------------------- */

START_TEST(attach_checks_the_header)
{
    size_t size = gc_budget_size(20);
    unsigned char *mem = shared_alloc(size);
    gc_budget_t *b = gc_budget_init_capacity(mem, 20, 5, APR_USEC_PER_SEC);

    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(gc_budget_capacity(b), 20);
    ck_assert_int_eq(gc_budget_limit(b), 5);
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_SUCCESS);
    ck_assert_ptr_eq(gc_budget_attach(mem, size), b);
    ck_assert_int_eq(gc_budget_used(gc_budget_attach(mem, size)), 1); /* carries over */
    ck_assert_ptr_null(gc_budget_attach(mem, size - 1));              /* too small */
    ck_assert_ptr_null(gc_budget_attach(NULL, size));
    ck_assert_ptr_null(gc_budget_attach(mem + 8, size - 8)); /* not a header */
    /* Another version (offset 12) or header size (offset 16): another layout. */
    mem[12] ^= 1;
    ck_assert_ptr_null(gc_budget_attach(mem, size));
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_EINVAL);
    mem[12] ^= 1;
    mem[16] ^= 8;
    ck_assert_ptr_null(gc_budget_attach(mem, size));
    mem[16] ^= 8;
    ck_assert_ptr_eq(gc_budget_attach(mem, size), b);
    /* The earlier format ("gcBU" at offset 8, no version) and zeros are refused. */
    memcpy(mem + 8, "UBcg", 4);
    ck_assert_ptr_null(gc_budget_attach(mem, size));
    memset(mem, 0, size);
    ck_assert_ptr_null(gc_budget_attach(mem, size));
    munmap(mem, size);
}
END_TEST

/* A smaller limit keeps every grant of the window (used stays), so nothing
 * more is granted until enough of them leave it; a larger one takes the
 * older ones back and grants only up to the new limit. */
START_TEST(set_limit_carries_the_window)
{
    size_t size = gc_budget_size(20);
    gc_budget_t *b = gc_budget_init_capacity(shared_alloc(size), 20, 10, MS(400));
    int i, carried = -1;

    for (i = 0; i < 6; i++) {
        ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_SUCCESS);
    }
    ck_assert_int_eq(gc_budget_set_limit(b, 4, &carried), APR_SUCCESS);
    ck_assert_int_eq(carried, 6);
    ck_assert_int_eq(gc_budget_limit(b), 4);
    ck_assert_int_eq(gc_budget_used(b), 6);
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_TIMEUP);

    ck_assert_int_eq(gc_budget_set_limit(b, 8, &carried), APR_SUCCESS);
    ck_assert_int_eq(carried, 6);
    ck_assert_int_eq(gc_budget_used(b), 6);
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_SUCCESS);
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_SUCCESS);
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_TIMEUP);
    ck_assert_int_eq(gc_budget_used(b), 8);

    ck_assert_int_eq(gc_budget_set_limit(b, 21, NULL), APR_EINVAL);
    ck_assert_int_eq(gc_budget_set_limit(b, 0, NULL), APR_EINVAL);
    ck_assert_int_eq(gc_budget_limit(b), 8);
    ck_assert_int_eq(gc_budget_set_limit(b, 8, &carried), APR_SUCCESS); /* same: no-op */
    ck_assert_int_eq(carried, 8);
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_TIMEUP);

    /* Once the window has passed, everything is free under the last limit. */
    apr_sleep(MS(450));
    ck_assert_int_eq(gc_budget_used(b), 0);
    ck_assert_int_eq(gc_budget_set_limit(b, 3, &carried), APR_SUCCESS);
    ck_assert_int_eq(carried, 0);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_SUCCESS);
    }
    ck_assert_int_eq(gc_budget_acquire(b, 0, NULL, NULL, NULL), APR_TIMEUP);
    munmap(b, size);
}
END_TEST

#define LC_PROCS 3
#define LC_WINDOW_MS 200
#define LC_PERIOD_MS 300
#define LC_MAX 8192

static const int lc_limits[] = { 8, 3, 6, 2, 7, 4 };
#define LC_N ((int)(sizeof(lc_limits) / sizeof(lc_limits[0])))

typedef struct {
    _Atomic int n;
    _Atomic int stop;
    apr_int64_t at[LC_MAX];
} lc_log_t;

/* Grants in (at[g] - window, at[g]] of the sorted log. */
static int grants_in_window(const lc_log_t *log, int g)
{
    int i, n = 0;

    for (i = g; i >= 0 && log->at[i] > log->at[g] - LC_WINDOW_MS * NS_PER_MS; i--) {
        n++;
    }
    return n;
}

/* Processes take grants as fast as they can while the parent changes the
 * limit every 1.5 windows (as graceful restarts with another GcmonRateLimit
 * would, with the old generation's children still running): every window
 * whose last grant came after a change holds at most that change's limit,
 * counting the grants from before it. */
START_TEST(limit_changes_never_exceed_the_new_limit)
{
    size_t size = gc_budget_size(16);
    gc_budget_t *b =
        gc_budget_init_capacity(shared_alloc(size), 16, lc_limits[0], MS(LC_WINDOW_MS));
    lc_log_t *log = shared_alloc(sizeof(*log));
    apr_int64_t from[LC_N], until[LC_N];
    int per[LC_N];
    pid_t pids[LC_PROCS];
    int i, j, n;

    atomic_init(&log->n, 0);
    atomic_init(&log->stop, 0);
    for (i = 0; i < LC_PROCS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            while (!atomic_load(&log->stop)) {
                apr_int64_t g = 0;
                if (gc_budget_acquire_ns(b, MS(20), NULL, NULL, NULL, &g) == APR_SUCCESS) {
                    int k = atomic_fetch_add(&log->n, 1);
                    if (k >= LC_MAX) {
                        _exit(3);
                    }
                    log->at[k] = g;
                }
            }
            _exit(0);
        }
    }
    from[0] = 0;
    for (j = 1; j <= LC_N; j++) {
        apr_sleep(MS(LC_PERIOD_MS));
        until[j - 1] = gc_budget_now_ns();
        if (j < LC_N) {
            ck_assert_int_eq(gc_budget_set_limit(b, lc_limits[j], NULL), APR_SUCCESS);
            from[j] = gc_budget_now_ns();
        }
    }
    atomic_store(&log->stop, 1);
    for (i = 0; i < LC_PROCS; i++) {
        int st = 0;
        ck_assert_int_eq(waitpid(pids[i], &st, 0), pids[i]);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    n = atomic_load(&log->n);
    qsort(log->at, (size_t)n, sizeof(log->at[0]), cmp_i64);
    memset(per, 0, sizeof(per));
    for (i = 0; i < n; i++) {
        for (j = 0; j < LC_N; j++) {
            if (log->at[i] >= from[j] && log->at[i] < until[j]) {
                break; /* else: taken during a change, under either limit */
            }
        }
        if (j == LC_N) {
            continue;
        }
        per[j]++;
        ck_assert_msg(grants_in_window(log, i) <= lc_limits[j],
                      "period %d (limit %d): %d grants in the window ending at grant %d", j,
                      lc_limits[j], grants_in_window(log, i), i);
    }
    for (j = 0; j < LC_N; j++) {
        ck_assert_msg(per[j] >= 2, "period %d had %d grants", j, per[j]);
    }
    munmap(log, sizeof(*log));
    munmap(b, size);
}
END_TEST

Suite *budget_suite(void)
{
    Suite *s = suite_create("budget");
    TCase *tc = tcase_create("budget");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, init_and_size);
    tcase_add_test(tc, full_window_times_up_then_waits);
    tcase_add_test(tc, retry_after_is_accurate);
    tcase_add_test(tc, short_max_wait_times_up);
    tcase_add_test(tc, cancel_interrupts_promptly);
    tcase_add_test(tc, used_counts_current_window);
    tcase_add_test(tc, processes_share_exact_window);
    tcase_add_test(tc, dead_owner_lock_is_stolen);
    tcase_add_test(tc, zombie_owner_lock_is_stolen);
    tcase_add_test(tc, live_owner_kept_until_killed);
    tcase_add_test(tc, threads_never_exceed_limit);
    tcase_add_test(tc, attach_checks_the_header);
    tcase_add_test(tc, set_limit_carries_the_window);
    tcase_add_test(tc, limit_changes_never_exceed_the_new_limit);
    suite_add_tcase(s, tc);
    return s;
}
