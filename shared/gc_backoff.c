/* Reconnect/retry delays: exponential with jitter (see the header). */
#include "gc_backoff.h"

apr_interval_time_t gc_backoff_delay(apr_interval_time_t min, apr_interval_time_t max, int failures,
                                     double u01)
{
    apr_interval_time_t base = min, lo, hi;
    int i;

    if (failures <= 0) {
        return 0;
    }
    if (max < min) {
        max = min;
    }
    for (i = 1; i < failures && base < max; i++) {
        base *= 2;
    }
    if (base >= max) {
        lo = max - max / 5;
        hi = max;
    }
    else {
        lo = base;
        hi = base + base / 4;
        if (hi > max) {
            hi = max;
        }
    }
    if (u01 < 0) {
        u01 = 0;
    }
    if (u01 >= 1) {
        u01 = 0.999999;
    }
    return lo + (apr_interval_time_t)((double)(hi - lo) * u01);
}
