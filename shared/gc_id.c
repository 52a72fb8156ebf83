/* Genesys Cloud object ids (see the header). */
#include <ctype.h>
#include <stddef.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "gc_id.h"

int gc_id_valid(const char *s)
{
    size_t n = 0;

    if (!s) {
        return 0;
    }
    for (; s[n]; n++) {
        if (n >= 64 || !(isalnum((unsigned char)s[n]) || s[n] == '-' || s[n] == '_')) {
            return 0;
        }
    }
    return n > 0;
}

const char *gc_id_random(apr_pool_t *p, const char *prefix)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[16];
    char buf[2 * sizeof(rnd) + 1];
    size_t i;

    if (apr_generate_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
        /* No entropy source: time and address still make a usable id. */
        return apr_psprintf(p, "%s-%" APR_TIME_T_FMT "-%pp", prefix, apr_time_now(), (void *)rnd);
    }
    for (i = 0; i < sizeof(rnd); i++) {
        buf[2 * i] = hex[rnd[i] >> 4];
        buf[2 * i + 1] = hex[rnd[i] & 0xF];
    }
    buf[2 * sizeof(rnd)] = '\0';
    return apr_pstrcat(p, prefix, "-", buf, NULL);
}
