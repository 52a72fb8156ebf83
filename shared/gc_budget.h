/* Upstream request budget shared by every child of one httpd: an exact sliding
 * window ("at most N requests in any window") kept in shared memory, so that
 * gcmon never causes Genesys 429s itself. Lock-free readers are not needed:
 * a tiny spinlock guards the ring; a lock left by a dead process is stolen. */
#ifndef GC_BUDGET_H
#define GC_BUDGET_H

#include <apr_errno.h>
#include <apr_time.h>

typedef struct gc_budget gc_budget_t;

/* Bytes of shared memory needed for a budget of up to `capacity` requests per
 * window. */
apr_size_t gc_budget_size(int capacity);

/* Initialise a budget in `mem` (at least gc_budget_size(limit) bytes, suitably
 * aligned, e.g. from apr_shm_baseaddr_get). Done once, in the parent. Its
 * capacity is its limit. */
gc_budget_t *gc_budget_init(void *mem, int limit, apr_interval_time_t window);

/* The same with room (gc_budget_size(capacity) bytes) for limits up to
 * `capacity`, so that gc_budget_set_limit can change it in place. */
gc_budget_t *gc_budget_init_capacity(void *mem, int capacity, int limit,
                                     apr_interval_time_t window);

/* Bump whenever the segment's layout or protocol changes (checked by attach). */
#define GC_BUDGET_VERSION 2

/* The budget in `mem` (size bytes, e.g. a segment kept across a graceful
 * restart) if a build of this layout initialised it, else NULL: then make a
 * new segment. */
gc_budget_t *gc_budget_attach(void *mem, apr_size_t size);

/* Change the limit in place, under the lock, for every process using the
 * segment: the ring is re-laid so that every grant of the current window
 * carries over (still counted by gc_budget_used), and a window whose last
 * grant comes after the change never holds more than the new limit, the
 * grants from before the change included — whichever generation's children
 * take them. APR_EINVAL when limit is not in 1..capacity, APR_ENOMEM. *carried
 * (may be NULL): the grants of the current window kept. */
apr_status_t gc_budget_set_limit(gc_budget_t *b, int limit, int *carried);

/* Current limit, capacity and window of an initialised budget. */
int gc_budget_limit(const gc_budget_t *b);
int gc_budget_capacity(const gc_budget_t *b);
apr_interval_time_t gc_budget_window(const gc_budget_t *b);

typedef int gc_cancel_fn(void *baton);

/* Take one slot. If the window is full, wait up to max_wait (in slices of at
 * most 100 ms, stopping early when cancel returns non-zero).
 * APR_SUCCESS: slot taken.  APR_TIMEUP: not within max_wait; *retry_after (if
 * not NULL) is how long until a slot frees.  APR_EINTR: cancelled. */
apr_status_t gc_budget_acquire(gc_budget_t *b, apr_interval_time_t max_wait, gc_cancel_fn *cancel,
                               void *baton, apr_interval_time_t *retry_after);

/* Requests counted in the current window (for status pages and tests). */
int gc_budget_used(gc_budget_t *b);

#endif
