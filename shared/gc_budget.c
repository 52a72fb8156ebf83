/* Exact sliding-window request budget in shared memory (see gc_budget.h).
 *
 * Layout (position-independent, no pointers): a small header followed by a
 * ring of the last `limit` grant times (CLOCK_MONOTONIC, ns; 0 = unused), in
 * storage for `capacity` of them so that the limit can change in place.
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
 * (the slot is written before `head` advances), which is conservative.
 *
 * A limit change (gc_budget_set_limit, a graceful restart with another
 * GcmonRateLimit) re-lays the ring under the lock: the grants of the current
 * window in time order, the newest `limit` of them as the ring (head = their
 * count), the older ones of the window in a stash right after it — counted by
 * gc_budget_used and taken back by a later, larger limit. Grants only ever
 * overwrite ring slots older than the window, so ring and stash always hold
 * every grant of the window, and the rule above holds at once for every
 * process, old generation and new: a window whose last grant came after the
 * change holds at most the new limit, the grants from before it included. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gc_budget.h"
#include "gc_budget_test.h"
#include "gc_log.h"

#define GC_BUDGET_MAGIC 0x67634232u /* "gcB2": segments with a version */
#define NS_PER_US INT64_C(1000)
#define NS_PER_MS INT64_C(1000000)
#define STEAL_AFTER_NS (50 * NS_PER_MS)
#define WAIT_SLICE_NS (100 * NS_PER_MS)

/* lock and magic keep their offsets in every version. */
struct gc_budget {
    _Atomic uint64_t lock; /* 0 = free, else the owner's pid */
    uint32_t magic;
    uint32_t version;      /* GC_BUDGET_VERSION */
    uint64_t header;       /* offsetof(struct gc_budget, slots) */
    int32_t capacity;      /* slots of storage */
    _Atomic int32_t limit; /* slots in use (1..capacity); changed under the lock */
    _Atomic int32_t stash; /* older grants of the window at the last limit change,
                                   kept at slots[limit, limit + stash) (for used and a
                                   later larger limit); never overwritten by grants */
    int64_t window_ns;
    int64_t window_us;
    _Atomic uint64_t head;   /* grants so far; next slot = head % limit */
    _Atomic uint64_t steals; /* locks taken over from dead owners */
    _Atomic int64_t slots[]; /* last `limit` grant times, ns; 0 = unused */
};

apr_int64_t gc_budget_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_int64_t)ts.tv_sec * INT64_C(1000000000) + (apr_int64_t)ts.tv_nsec;
}

apr_size_t gc_budget_size(int capacity)
{
    if (capacity < 1) {
        capacity = 1;
    }
    return offsetof(struct gc_budget, slots) + (apr_size_t)capacity * sizeof(_Atomic int64_t);
}

gc_budget_t *gc_budget_init_capacity(void *mem, int capacity, int limit, apr_interval_time_t window)
{
    gc_budget_t *b = mem;
    int i;

    if (mem == NULL || limit < 1 || capacity < limit || window <= 0
        || window > INT64_MAX / NS_PER_US || ((uintptr_t)mem % _Alignof(struct gc_budget)) != 0) {
        gc_log(GC_LOG_MARK, GC_LOG_ERR, APR_EINVAL,
               GCMON_LOGNO(250) "budget: invalid initialisation (limit %d, capacity %d, window "
                                "%" APR_INT64_T_FMT " us)",
               limit, capacity, (apr_int64_t)window);
        return NULL;
    }
    atomic_init(&b->lock, 0);
    b->magic = GC_BUDGET_MAGIC;
    b->version = GC_BUDGET_VERSION;
    b->header = offsetof(struct gc_budget, slots);
    b->capacity = capacity;
    atomic_init(&b->limit, limit);
    atomic_init(&b->stash, 0);
    b->window_us = window;
    b->window_ns = window * NS_PER_US;
    atomic_init(&b->head, 0);
    atomic_init(&b->steals, 0);
    /* Slots past the limit are zeroed when a larger limit takes them. */
    for (i = 0; i < limit; i++) {
        atomic_init(&b->slots[i], 0);
    }
    atomic_thread_fence(memory_order_seq_cst);
    return b;
}

gc_budget_t *gc_budget_init(void *mem, int limit, apr_interval_time_t window)
{
    return gc_budget_init_capacity(mem, limit, limit, window);
}

static int valid(const gc_budget_t *b)
{
    return b != NULL && b->magic == GC_BUDGET_MAGIC && b->version == GC_BUDGET_VERSION;
}

gc_budget_t *gc_budget_attach(void *mem, apr_size_t size)
{
    gc_budget_t *b = mem;
    int limit;

    if (mem == NULL || size < offsetof(struct gc_budget, slots)
        || ((uintptr_t)mem % _Alignof(struct gc_budget)) != 0) {
        return NULL;
    }
    if (!valid(b) || b->header != offsetof(struct gc_budget, slots) || b->capacity < 1
        || size < gc_budget_size(b->capacity)) {
        return NULL;
    }
    limit = atomic_load_explicit(&b->limit, memory_order_relaxed);
    return limit >= 1 && limit <= b->capacity
                   && atomic_load_explicit(&b->stash, memory_order_relaxed) <= b->capacity - limit
               ? b
               : NULL;
}

int gc_budget_limit(const gc_budget_t *b)
{
    return atomic_load_explicit(&b->limit, memory_order_relaxed);
}

int gc_budget_capacity(const gc_budget_t *b)
{
    return b->capacity;
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
        return errno != ESRCH; /* EPERM: exists, not ours to signal */
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

    if (atomic_compare_exchange_strong_explicit(&b->lock, &expected, self, memory_order_acquire,
                                                memory_order_relaxed)) {
        return 0;
    }
    for (;;) {
        uint64_t cur = atomic_load_explicit(&b->lock, memory_order_relaxed);

        if (cur == 0) {
            expected = 0;
            if (atomic_compare_exchange_weak_explicit(&b->lock, &expected, self,
                                                      memory_order_acquire, memory_order_relaxed)) {
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
            struct timespec ts = { 0, 50000 }; /* 50 us */
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

static void log_stolen(uint64_t stolen)
{
    if (stolen != 0) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(251) "budget: lock held by dead process %" APR_UINT64_T_FMT
                                " taken over",
               (apr_uint64_t)stolen);
    }
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
    idx = (size_t)(h % (uint64_t)atomic_load_explicit(&b->limit, memory_order_relaxed));
    oldest = atomic_load_explicit(&b->slots[idx], memory_order_relaxed);
    if (oldest == 0 || now - oldest >= b->window_ns) {
        /* Slot first, then head: a death in between is conservative. */
        atomic_store_explicit(&b->slots[idx], now, memory_order_relaxed);
        atomic_store_explicit(&b->head, h + 1, memory_order_relaxed);
        granted = 1;
    }
    budget_unlock(b);
    /* --- end of critical section --- */

    log_stolen(stolen);
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

    if (!valid(b)) {
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

apr_status_t gc_budget_acquire(gc_budget_t *b, apr_interval_time_t max_wait, gc_cancel_fn *cancel,
                               void *baton, apr_interval_time_t *retry_after)
{
    return gc_budget_acquire_ns(b, max_wait, cancel, baton, retry_after, NULL);
}

/* --- changing the limit in place (lock held) ----------------------------- */

static int64_t slot_get(gc_budget_t *b, int i)
{
    return atomic_load_explicit(&b->slots[i], memory_order_relaxed);
}

static void slot_set(gc_budget_t *b, int i, int64_t v)
{
    atomic_store_explicit(&b->slots[i], v, memory_order_relaxed);
}

static int in_window(const gc_budget_t *b, int64_t t, int64_t now)
{
    return t != 0 && now - t < b->window_ns;
}

/* The grants of the current window, oldest first, into out (capacity slots):
 * the stash (older) and then the ring from its oldest slot. */
static int window_grants(gc_budget_t *b, int64_t now, int64_t *out)
{
    int limit = atomic_load_explicit(&b->limit, memory_order_relaxed);
    int stash = atomic_load_explicit(&b->stash, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&b->head, memory_order_relaxed);
    int n = h < (uint64_t)limit ? (int)h : limit;
    int oldest = h < (uint64_t)limit ? 0 : (int)(h % (uint64_t)limit);
    int k = 0, i;

    for (i = 0; i < stash; i++) {
        if (in_window(b, slot_get(b, limit + i), now)) {
            out[k++] = slot_get(b, limit + i);
        }
    }
    for (i = 0; i < n; i++) {
        int64_t t = slot_get(b, (oldest + i) % limit);
        if (in_window(b, t, now)) {
            out[k++] = t;
        }
    }
    return k;
}

/* Re-lay for a new limit (lock held): the newest `limit` grants of the window
 * form the ring in time order (head = their count), the older ones of the
 * window go to the stash right after it. Returns the grants kept. */
static int relay(gc_budget_t *b, int limit, int64_t now, int64_t *scratch)
{
    int k = window_grants(b, now, scratch), keep = k < limit ? k : limit, i;

    for (i = 0; i < keep; i++) {
        slot_set(b, i, scratch[k - keep + i]);
    }
    for (i = keep; i < limit; i++) {
        slot_set(b, i, 0);
    }
    for (i = 0; i < k - keep; i++) {
        slot_set(b, limit + i, scratch[i]);
    }
    atomic_store_explicit(&b->head, (uint64_t)keep, memory_order_relaxed);
    atomic_store_explicit(&b->stash, k - keep, memory_order_relaxed);
    atomic_store_explicit(&b->limit, limit, memory_order_relaxed);
    return k;
}

apr_status_t gc_budget_set_limit(gc_budget_t *b, int limit, int *carried)
{
    int64_t *scratch;
    uint64_t stolen;
    int kept;

    if (!valid(b) || limit < 1 || limit > b->capacity) {
        return APR_EINVAL;
    }
    /* Allocated outside the critical section. */
    if ((scratch = malloc(sizeof(*scratch) * (size_t)b->capacity)) == NULL) {
        return APR_ENOMEM;
    }
    stolen = budget_lock(b, (uint64_t)getpid());
    kept = relay(b, limit, gc_budget_now_ns(), scratch);
    budget_unlock(b);
    free(scratch);
    log_stolen(stolen);
    if (carried != NULL) {
        *carried = kept;
    }
    return APR_SUCCESS;
}

int gc_budget_used(gc_budget_t *b)
{
    int64_t now = gc_budget_now_ns();
    int i, limit, stash, used = 0;

    if (!valid(b)) {
        return 0;
    }
    /* Lock-free snapshot: good enough for status pages (the two loads may
     * straddle a limit change: stay inside the storage). */
    limit = atomic_load_explicit(&b->limit, memory_order_relaxed);
    stash = atomic_load_explicit(&b->stash, memory_order_relaxed);
    if (stash > b->capacity - limit) {
        stash = b->capacity - limit;
    }
    for (i = 0; i < limit + stash; i++) {
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
