/* RFC 3339 timestamps <-> apr_time_t (SPEC §4.2, §9.1), independent of the
 * locale and of TZ: calendar arithmetic is done by hand (days from civil). */
#include <apr_strings.h>

#include "gc_time.h"

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static apr_int64_t days_from_civil(apr_int64_t y, int m, int d)
{
    apr_int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Inverse of days_from_civil. */
void gc_time_civil_from_days(apr_int64_t z, apr_int64_t *y, int *m, int *d)
{
    apr_int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(apr_int64_t y, int m)
{
    static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : dim[m - 1];
}

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z in seconds since the epoch. */
#define GC_TIME_MIN_SECS APR_INT64_C(-62167219200)
#define GC_TIME_MAX_SECS APR_INT64_C(253402300799)

/* Exactly n ASCII digits at *s; advances *s. -1 when not. */
static int digits(const char **s, int n)
{
    int v = 0;

    while (n-- > 0) {
        if (**s < '0' || **s > '9') {
            return -1;
        }
        v = v * 10 + (**s - '0');
        (*s)++;
    }
    return v;
}

int gc_time_parse(const char *s, apr_time_t *out)
{
    int year, mon, day, hour, min, sec, usec = 0, off = 0;
    apr_int64_t secs;

    if (!s || !out) {
        return -1;
    }
    if ((year = digits(&s, 4)) < 0 || *s++ != '-' || (mon = digits(&s, 2)) < 0 || *s++ != '-'
        || (day = digits(&s, 2)) < 0 || (*s != 'T' && *s != 't')) {
        return -1;
    }
    s++;
    if ((hour = digits(&s, 2)) < 0 || *s++ != ':' || (min = digits(&s, 2)) < 0 || *s++ != ':'
        || (sec = digits(&s, 2)) < 0) {
        return -1;
    }
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > 23 || min > 59
        || sec > 59) {
        return -1;
    }
    if (*s == '.') {
        int n = 0;

        s++;
        if (*s < '0' || *s > '9') {
            return -1;
        }
        /* Digits beyond microseconds are truncated (any number of them). */
        for (; *s >= '0' && *s <= '9'; s++, n++) {
            if (n < 6) {
                usec = usec * 10 + (*s - '0');
            }
        }
        for (; n < 6; n++) {
            usec *= 10;
        }
    }
    if (*s == 'Z' || *s == 'z') {
        s++;
    }
    else if (*s == '+' || *s == '-') {
        int sign = *s++ == '-' ? -1 : 1, oh, om;

        if ((oh = digits(&s, 2)) < 0 || *s++ != ':' || (om = digits(&s, 2)) < 0 || oh > 23
            || om > 59) {
            return -1;
        }
        off = sign * (oh * 3600 + om * 60);
    }
    else {
        return -1;
    }
    if (*s) {
        return -1;
    }
    secs = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec - off;
    /* An offset must not carry the instant out of the years 0000..9999 in UTC
     * (found by tests/fuzz: gc_time_format would write "10000-01-01T…" or
     * "-001-12-31T…", which nothing parses back). */
    if (secs < GC_TIME_MIN_SECS || secs > GC_TIME_MAX_SECS) {
        return -1;
    }
    *out = (apr_time_t)(secs * APR_USEC_PER_SEC + usec);
    return 0;
}

static apr_int64_t floor_div(apr_int64_t a, apr_int64_t b)
{
    apr_int64_t q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

const char *gc_time_format(apr_pool_t *p, apr_time_t t)
{
    apr_int64_t ms = floor_div(t, 1000), secs = floor_div(ms, 1000);
    apr_int64_t days = floor_div(secs, 86400), sod = secs - days * 86400, y;
    int m, d;

    gc_time_civil_from_days(days, &y, &m, &d);
    return apr_psprintf(p, "%04" APR_INT64_T_FMT "-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d,
                        (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60),
                        (int)(ms - secs * 1000));
}
