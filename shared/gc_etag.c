#include <string.h>

#include <apr_strings.h>

#include "gc_etag.h"

#define K1 APR_UINT64_C(0x9E3779B97F4A7C15)
#define K2 APR_UINT64_C(0xC2B2AE3D27D4EB4F)

void gc_etag_hash_init(gc_etag_hash_t *h)
{
    h->a = APR_UINT64_C(0xcbf29ce484222325);
    h->b = APR_UINT64_C(0x84222325cbf29ce4);
}

static void word(gc_etag_hash_t *h, apr_uint64_t w)
{
    h->a = (h->a ^ w) * K1;
    h->a ^= h->a >> 29;
    h->b = (h->b ^ (w + K2)) * K2;
    h->b ^= h->b >> 31;
}

void gc_etag_hash_str(gc_etag_hash_t *h, const char *s)
{
    apr_size_t n, i;

    if (!s) {
        word(h, APR_UINT64_C(0xFFFFFFFFFFFFFFFF));
        return;
    }
    n = strlen(s);
    word(h, (apr_uint64_t)n);
    for (i = 0; i + 8 <= n; i += 8) {
        apr_uint64_t w;
        memcpy(&w, s + i, 8);
        word(h, w);
    }
    if (i < n) {
        apr_uint64_t w = 0;
        memcpy(&w, s + i, n - i);
        word(h, w);
    }
}

void gc_etag_hash_int(gc_etag_hash_t *h, apr_int64_t v)
{
    word(h, (apr_uint64_t)v);
}

const char *gc_etag_hash_text(apr_pool_t *p, const gc_etag_hash_t *h)
{
    return apr_psprintf(p, "\"%016" APR_UINT64_T_HEX_FMT "%016" APR_UINT64_T_HEX_FMT "\"", h->a,
                        h->b);
}

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return s;
}

int gc_etag_match(const char *header, const char *etag, gc_etag_cmp_e cmp)
{
    const char *s;
    size_t elen;
    int found = 0;

    if (!header || !etag) {
        return 0;
    }
    elen = strlen(etag);
    s = skip_ows(header);
    if (*s == '*') {
        return *skip_ows(s + 1) == '\0';
    }
    /* The whole list is read before answering: a malformed element after a
     * matching one still makes the header malformed (found by tests/fuzz). */
    while (*s) {
        const char *start, *end;
        int weak = 0;

        while (*s == ' ' || *s == '\t' || *s == ',') {
            s++;
        }
        if (!*s) {
            break;
        }
        if (s[0] == 'W' && s[1] == '/') {
            weak = 1;
            s += 2;
        }
        if (*s != '"' || !(end = strchr(s + 1, '"'))) {
            return 0;
        }
        start = s;
        s = end + 1;
        if ((!weak || cmp == GC_ETAG_WEAK) && (size_t)(s - start) == elen
            && strncmp(start, etag, elen) == 0) {
            found = 1;
        }
        s = skip_ows(s);
        if (*s && *s != ',') {
            return 0;
        }
    }
    return found;
}
