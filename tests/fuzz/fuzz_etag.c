/* Entity tags (gc_etag, RFC 9110 §8.8.3, §13.1.1–2): any bytes as an If-Match
 * or If-None-Match header value (up to the first NUL, as httpd hands it over)
 * against gcmon's strong validators, and the content hash behind them.
 *
 * Properties, against a small reference model of the header (its own
 * tokenizer: "*", or a comma-separated list of [W/]"…" with blanks around,
 * empty elements allowed): a header the model finds malformed matches nothing
 * (gc_etag.h: "A malformed header matches nothing"); a well-formed one
 * matches exactly when one of its tags is the current one (W/ only for the
 * weak comparison, "*" always); a strong match is a weak match; the current
 * tag alone, W/ before it, and "*" behave as documented. The hash's text is
 * always a strong tag of 32 lowercase hex digits, and so is the presence
 * ETag. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "fuzz.h"
#include "gc_etag.h"
#include "gc_presence.h"

/* -1 malformed; else whether it matches. */
static int model(const char *h, const char *etag, gc_etag_cmp_e cmp)
{
    size_t elen = strlen(etag);
    int found = 0;

    while (*h == ' ' || *h == '\t') {
        h++;
    }
    if (*h == '*') {
        for (h++; *h == ' ' || *h == '\t'; h++) {
        }
        return *h ? -1 : 1;
    }
    for (;;) {
        const char *q;
        int weak = 0;

        while (*h == ' ' || *h == '\t' || *h == ',') {
            h++;
        }
        if (!*h) {
            return found;
        }
        if (h[0] == 'W' && h[1] == '/') {
            weak = 1;
            h += 2;
        }
        if (*h != '"' || !(q = strchr(h + 1, '"'))) {
            return -1;
        }
        if ((size_t)(q + 1 - h) == elen && !memcmp(h, etag, elen)
            && (!weak || cmp == GC_ETAG_WEAK)) {
            found = 1;
        }
        for (h = q + 1; *h == ' ' || *h == '\t'; h++) {
        }
        if (*h && *h != ',') {
            return -1;
        }
    }
}

static int strong_tag(const char *t)
{
    size_t i;

    if (!t || strlen(t) != 34 || t[0] != '"' || t[33] != '"') {
        return 0;
    }
    for (i = 1; i < 33; i++) {
        if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static void check(apr_pool_t *p, const char *header, const char *etag)
{
    int s = gc_etag_match(header, etag, GC_ETAG_STRONG);
    int w = gc_etag_match(header, etag, GC_ETAG_WEAK);
    int ms = model(header, etag, GC_ETAG_STRONG), mw = model(header, etag, GC_ETAG_WEAK);

    FUZZ_CHECK(s == 0 || s == 1);
    FUZZ_CHECK(w == 0 || w == 1);
    FUZZ_CHECK(!s || w);
    FUZZ_CHECK(s == (ms == 1));
    FUZZ_CHECK(w == (mw == 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    char *header = fuzz_cstr(data, size);
    gc_etag_hash_t h;
    const char *etag, *fixed = "\"0123456789abcdef0123456789abcdef\"";
    size_t half = size / 2;
    char *a = fuzz_cstr(data, half), *b = fuzz_cstr(data + half, size - half);

    /* gcmon's tag of this input's content, as the board makes one */
    gc_etag_hash_init(&h);
    gc_etag_hash_str(&h, a);
    gc_etag_hash_str(&h, b);
    gc_etag_hash_int(&h, (apr_int64_t)size);
    etag = gc_etag_hash_text(p, &h);
    FUZZ_CHECK(strong_tag(etag));
    FUZZ_CHECK(strong_tag(gc_presence_etag(p, a, (apr_time_t)size * 1000)));

    check(p, header, fixed);
    check(p, header, etag);
    FUZZ_CHECK(gc_etag_match(etag, etag, GC_ETAG_STRONG) == 1);
    FUZZ_CHECK(gc_etag_match(apr_pstrcat(p, "W/", etag, NULL), etag, GC_ETAG_STRONG) == 0);
    FUZZ_CHECK(gc_etag_match(apr_pstrcat(p, " W/", etag, " ", NULL), etag, GC_ETAG_WEAK) == 1);
    FUZZ_CHECK(gc_etag_match("*", etag, GC_ETAG_STRONG) == 1);
    FUZZ_CHECK(gc_etag_match(NULL, etag, GC_ETAG_WEAK) == 0);
    /* The header after the current tag and before it, and glued onto it. */
    check(p, apr_pstrcat(p, etag, ", ", header, NULL), etag);
    check(p, apr_pstrcat(p, header, ",", etag, NULL), etag);
    check(p, apr_pstrcat(p, header, etag, NULL), etag);
    free(a);
    free(b);
    free(header);
    apr_pool_destroy(p);
    return 0;
}
