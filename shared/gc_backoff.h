/* Reconnect/retry delays: exponential with jitter. */
#ifndef GC_BACKOFF_H
#define GC_BACKOFF_H

#include <apr_time.h>

/* Reconnect/retry delay after `failures` consecutive failed attempts: 0 for
 * the first attempt after a healthy connection, then min * 2^(failures-1)
 * capped at max, with up to 25% jitter (and at the cap, 20% below it). u01 is
 * a uniform random number in [0, 1). Workers use gc_worker_backoff. */
apr_interval_time_t gc_backoff_delay(apr_interval_time_t min, apr_interval_time_t max, int failures,
                                     double u01);

#endif
