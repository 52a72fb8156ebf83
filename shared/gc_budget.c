/* Exact sliding-window request budget in shared memory (see gc_budget.h).
 *
 * Layout (position-independent, no pointers): a small header followed by a
 * ring of the last `limit` grant times (CLOCK_MONOTONIC, ns; 0 = unused).
 * A grant is allowed iff the slot it would overwrite, i.e. the oldest of the
 * last `limit` grants, is at least `window` old. Then every limit+1
 * consecutive grants span at least `window`, so no half-open window of that
 * length ever holds more than `limit` grants.
 *
 * The ring is guarded by a spinlock word holding the owner's pid. The
 * critical section is a handful of loads/stores plus clock_gettime (vDSO).
 * A waiter that has spun for more than ~50 ms checks whether the owner is
 * still alive and, if not, steals the lock: a child SIGKILLed inside the
 * critical section leaves at worst one extra recent timestamp in the ring
 * (the slot is written before `head` advances), which is conservative. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gc_budget.h"
#include "gc_budget_test.h"
#include "gc_log.h"

#define GC_BUDGET_MAGIC      0x67634255u /* "gcBU" */
#define NS_PER_US            INT64_C(1000)
#define NS_PER_MS            INT64_C(1000000)
#define STEAL_AFTER_NS       (50 * NS_PER_MS)
#define WAIT_SLICE_NS        (100 * NS_PER_MS)

struct gc_budget {
    _Atomic uint64_t lock;      /* 0 = free, else the owner's pid */
    uint32_t magic;
    int32_t limit;
    int64_t window_ns;
    int64_t window_us;
    _Atomic uint64_t head;      /* grants so far; next slot = head % limit */
    _Atomic uint64_t steals;    /* locks taken over from dead owners */
    _Atomic int64_t slots[];    /* last `limit` grant times, ns; 0 = unused */
};

apr_int64_t gc_budget_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_int64_t)ts.tv_sec * INT64_C(1000000000) + (apr_int64_t)ts.tv_nsec;
}

apr_size_t gc_budget_size(int limit)
{
    if (limit < 1) {
        limit = 1;
    }
    return offsetof(struct gc_budget, slots) + (apr_size_t)limit * sizeof(_Atomic int64_t);
}

gc_budget_t *gc_budget_init(void *mem, int limit, apr_interval_time_t window)
{
    gc_budget_t *b = mem;
    int i;

    if (mem == NULL || limit < 1 || window <= 0 || window > INT64_MAX / NS_PER_US
        || ((uintptr_t)mem % _Alignof(struct gc_budget)) != 0) {
        gc_log(GC_LOG_MARK, GC_LOG_ERR, APR_EINVAL,
               GCMON_LOGNO(250) "budget: invalid initialisation (limit %d, window %"
               APR_INT64_T_FMT " us)", limit, (apr_int64_t)window);
        return NULL;
    }
    atomic_init(&b->lock, 0);
    b->magic = GC_BUDGET_MAGIC;
    b->limit = limit;
    b->window_us = window;
    b->window_ns = window * NS_PER_US;
    atomic_init(&b->head, 0);
    atomic_init(&b->steals, 0);
    for (i = 0; i < limit; i++) {
        atomic_init(&b->slots[i], 0);
    }
    atomic_thread_fence(memory_order_seq_cst);
    return b;
}

int gc_budget_limit(const gc_budget_t *b)
{
    return b->limit;
}

apr_interval_time_t gc_budget_window(const gc_budget_t *b)
{
    return b->window_us;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Is `pid` a live process? Zombies (killed but not yet reaped by the httpd
 * parent) count as dead: they can never release the lock. */
static int owner_alive(uint64_t owner)
{
    pid_t pid;

    if (owner == 0 || owner > (uint64_t)INT_MAX) {
        return 0;
    }
    pid = (pid_t)owner;
    if (kill(pid, 0) != 0) {
        return errno != ESRCH;   /* EPERM: exists, not ours to signal */
    }
#ifdef __linux__
    {
        char path[64], buf[512];
        const char *rp;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            return errno != ENOENT;
        }
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0) {
            return 1;
        }
        buf[n] = '\0';
        /* "pid (comm) S ..."; comm may contain ')' so take the last one. */
        rp = strrchr(buf, ')');
        if (rp != NULL && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X')) {
            return 0;
        }
    }
#endif
    return 1;
}

/* Take the ring lock; returns the pid it was stolen from, or 0. */
static uint64_t budget_lock(gc_budget_t *b, uint64_t self)
{
    uint64_t expected = 0;
    int64_t since = 0;
    unsigned spins = 0;

    if (atomic_compare_exchange_strong_explicit(&b->lock, &expected, self,
                                                memory_order_acquire, memory_order_relaxed)) {
        return 0;
    }
    for (;;) {
        uint64_t cur = atomic_load_explicit(&b->lock, memory_order_relaxed);

        if (cur == 0) {
            expected = 0;
            if (atomic_compare_exchange_weak_explicit(&b->lock, &expected, self,
                                                      memory_order_acquire,
                                                      memory_order_relaxed)) {
                return 0;
            }
            continue;
        }
        spins++;
        if (spins < 64) {
            cpu_relax();
            continue;
        }
        if (spins < 1024) {
            sched_yield();
        }
        else {
            struct timespec ts = { 0, 50000 };   /* 50 us */
            nanosleep(&ts, NULL);
        }
        if ((spins & 15) == 0) {
            int64_t now = gc_budget_now_ns();

            if (since == 0) {
                since = now;
            }
            else if (now - since > STEAL_AFTER_NS) {
                if (!owner_alive(cur)) {
                    expected = cur;
                    if (atomic_compare_exchange_strong_explicit(&b->lock, &expected, self,
                                                                memory_order_acquire,
                                                                memory_order_relaxed)) {
                        atomic_fetch_add_explicit(&b->steals, 1, memory_order_relaxed);
                        return cur;
                    }
                }
                since = now;
            }
        }
    }
}

static inline void budget_unlock(gc_budget_t *b)
{
    atomic_store_explicit(&b->lock, 0, memory_order_release);
}

/* One attempt. 1: granted at *at. 0: full, the oldest grant leaves the
 * window in *wait_ns (> 0); *at is the time of the check. */
static int try_grant(gc_budget_t *b, int64_t *at, int64_t *wait_ns)
{
    uint64_t self = (uint64_t)getpid();
    uint64_t stolen, h;
    int64_t now, oldest;
    int granted = 0;
    size_t idx;

    stolen = budget_lock(b, self);
    /* --- critical section: no syscalls but clock_gettime --- */
    now = gc_budget_now_ns();
    h = atomic_load_explicit(&b->head, memory_order_relaxed);
    idx = (size_t)(h % (uint64_t)b->limit);
    oldest = atomic_load_explicit(&b->slots[idx], memory_order_relaxed);
    if (oldest == 0 || now - oldest >= b->window_ns) {
        /* Slot first, then head: a death in between is conservative. */
        atomic_store_explicit(&b->slots[idx], now, memory_order_relaxed);
        atomic_store_explicit(&b->head, h + 1, memory_order_relaxed);
        granted = 1;
    }
    budget_unlock(b);
    /* --- end of critical section --- */

    if (stolen != 0) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(251) "budget: lock held by dead process %" APR_UINT64_T_FMT
               " taken over", (apr_uint64_t)stolen);
    }
    *at = now;
    if (!granted) {
        *wait_ns = oldest + b->window_ns - now;
        if (*wait_ns < 1) {
            *wait_ns = 1;
        }
    }
    return granted;
}

apr_status_t gc_budget_acquire_ns(gc_budget_t *b, apr_interval_time_t max_wait,
                                  gc_cancel_fn *cancel, void *baton,
                                  apr_interval_time_t *retry_after, apr_int64_t *granted_ns)
{
    int64_t deadline, now, wait_ns = 0;

    if (b == NULL || b->magic != GC_BUDGET_MAGIC) {
        return APR_EINVAL;
    }
    if (max_wait < 0) {
        max_wait = 0;
    }
    if (max_wait > INT64_MAX / NS_PER_US / 2) {
        max_wait = INT64_MAX / NS_PER_US / 2;
    }
    deadline = gc_budget_now_ns() + max_wait * NS_PER_US;
    for (;;) {
        int64_t slice;

        if (try_grant(b, &now, &wait_ns)) {
            if (granted_ns != NULL) {
                *granted_ns = now;
            }
            return APR_SUCCESS;
        }
        if (now >= deadline) {
            if (retry_after != NULL) {
                *retry_after = (apr_interval_time_t)((wait_ns + NS_PER_US - 1) / NS_PER_US);
            }
            return APR_TIMEUP;
        }
        if (cancel != NULL && cancel(baton)) {
            return APR_EINTR;
        }
        /* Sleep until the oldest grant leaves the window, in slices so
         * that cancellation is noticed, but not past the deadline. */
        slice = wait_ns < WAIT_SLICE_NS ? wait_ns : WAIT_SLICE_NS;
        if (slice > deadline - now) {
            slice = deadline - now;
        }
        apr_sleep((apr_interval_time_t)((slice + NS_PER_US - 1) / NS_PER_US));
    }
}

apr_status_t gc_budget_acquire(gc_budget_t *b, apr_interval_time_t max_wait,
                               gc_cancel_fn *cancel, void *baton,
                               apr_interval_time_t *retry_after)
{
    return gc_budget_acquire_ns(b, max_wait, cancel, baton, retry_after, NULL);
}

int gc_budget_used(gc_budget_t *b)
{
    int64_t now = gc_budget_now_ns();
    int i, used = 0;

    if (b == NULL || b->magic != GC_BUDGET_MAGIC) {
        return 0;
    }
    /* Lock-free snapshot: good enough for status pages. */
    for (i = 0; i < b->limit; i++) {
        int64_t t = atomic_load_explicit(&b->slots[i], memory_order_relaxed);
        if (t != 0 && now - t < b->window_ns) {
            used++;
        }
    }
    return used;
}

apr_uint64_t gc_budget_test_lock_owner(gc_budget_t *b)
{
    return atomic_load_explicit(&b->lock, memory_order_acquire);
}

void gc_budget_test_set_lock_owner(gc_budget_t *b, apr_uint64_t owner)
{
    atomic_store_explicit(&b->lock, owner, memory_order_release);
}

apr_uint64_t gc_budget_test_steals(gc_budget_t *b)
{
    return atomic_load_explicit(&b->steals, memory_order_relaxed);
}
