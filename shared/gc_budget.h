/* Upstream request budget shared by every child of one httpd: an exact sliding
 * window ("at most N requests in any window") kept in shared memory, so that
 * gcmon never causes Genesys 429s itself. Lock-free readers are not needed:
 * a tiny spinlock guards the ring; a lock left by a dead process is stolen. */
#ifndef GC_BUDGET_H
#define GC_BUDGET_H

#include <apr_errno.h>
#include <apr_time.h>

typedef struct gc_budget gc_budget_t;

/* Bytes of shared memory needed for a budget of `limit` requests per window. */
apr_size_t gc_budget_size(int limit);

/* Initialise a budget in `mem` (at least gc_budget_size(limit) bytes, suitably
 * aligned, e.g. from apr_shm_baseaddr_get). Done once, in the parent. */
gc_budget_t *gc_budget_init(void *mem, int limit, apr_interval_time_t window);

/* Current limit and window of an initialised budget. */
int gc_budget_limit(const gc_budget_t *b);
apr_interval_time_t gc_budget_window(const gc_budget_t *b);

typedef int gc_cancel_fn(void *baton);

/* Take one slot. If the window is full, wait up to max_wait (in slices of at
 * most 100 ms, stopping early when cancel returns non-zero).
 * APR_SUCCESS: slot taken.  APR_TIMEUP: not within max_wait; *retry_after (if
 * not NULL) is how long until a slot frees.  APR_EINTR: cancelled. */
apr_status_t gc_budget_acquire(gc_budget_t *b, apr_interval_time_t max_wait,
                               gc_cancel_fn *cancel, void *baton,
                               apr_interval_time_t *retry_after);

/* Requests counted in the current window (for status pages and tests). */
int gc_budget_used(gc_budget_t *b);

#endif
