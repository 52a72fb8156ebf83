/* RFC 3339 timestamps <-> apr_time_t (SPEC §4.2, §9.1). */
#ifndef GC_TIME_H
#define GC_TIME_H

#include <apr_pools.h>
#include <apr_time.h>

/* RFC 3339 / ISO 8601 UTC ("2026-11-21T19:59:28.123Z", also "+00:00" offsets
 * and no fraction; fractions beyond microseconds are truncated). 0 on success;
 * -1 (and *out untouched) on anything else: out-of-range fields, trailing junk,
 * an offset that puts the instant outside 0000-01-01T00:00:00Z ..
 * 9999-12-31T23:59:59.999999Z (what gc_time_format can write back).
 * Independent of the locale and TZ. */
int gc_time_parse(const char *s, apr_time_t *out);

/* "2026-11-21T19:59:28.123Z" (milliseconds, UTC). */
const char *gc_time_format(apr_pool_t *p, apr_time_t t);

/* Days since 1970-01-01 → proleptic Gregorian year, month (1..12), day (1..31). */
void gc_time_civil_from_days(apr_int64_t days, apr_int64_t *y, int *m, int *d);

#endif
