/* Test-only hooks of gc_budget (not for module code). */
#ifndef GC_BUDGET_TEST_H
#define GC_BUDGET_TEST_H

#include <apr.h>

#include "gc_budget.h"

/* gc_budget_acquire, also reporting the CLOCK_MONOTONIC time (ns) recorded
 * in the ring for the grant (only set on APR_SUCCESS). */
apr_status_t gc_budget_acquire_ns(gc_budget_t *b, apr_interval_time_t max_wait,
                                  gc_cancel_fn *cancel, void *baton,
                                  apr_interval_time_t *retry_after, apr_int64_t *granted_ns);

/* The clock the ring uses: CLOCK_MONOTONIC in nanoseconds. */
apr_int64_t gc_budget_now_ns(void);

/* Read / overwrite the lock word (0 = free, else the owner's pid), e.g. to
 * simulate a child killed inside the critical section. */
apr_uint64_t gc_budget_test_lock_owner(gc_budget_t *b);
void gc_budget_test_set_lock_owner(gc_budget_t *b, apr_uint64_t owner);

/* Times the lock was stolen from a dead owner since gc_budget_init. */
apr_uint64_t gc_budget_test_steals(gc_budget_t *b);

#endif
