/* Wiping secrets and redacting them from text (gc_secret.h). */
#include <string.h>

#include <apr_strings.h>

#include "gc_secret.h"

void gc_wipe(void *mem, apr_size_t n)
{
    if (mem && n) {
        explicit_bzero(mem, n); /* glibc: a store the compiler keeps */
    }
}

typedef struct wipe {
    void *mem;
    apr_size_t n;
} wipe_t;

static apr_status_t wipe_cleanup(void *data)
{
    wipe_t *w = data;

    gc_wipe(w->mem, w->n);
    return APR_SUCCESS;
}

void gc_wipe_on_cleanup(apr_pool_t *p, void *mem, apr_size_t n)
{
    wipe_t *w;

    if (!mem || !n) {
        return;
    }
    w = apr_palloc(p, sizeof(*w));
    w->mem = mem;
    w->n = n;
    apr_pool_cleanup_register(p, w, wipe_cleanup, apr_pool_cleanup_null);
}

char *gc_secret_pmemdup(apr_pool_t *p, const char *s, apr_size_t n)
{
    char *c;

    if (!s) {
        return NULL;
    }
    c = apr_pstrmemdup(p, s, n);
    gc_wipe_on_cleanup(p, c, n + 1);
    return c;
}

char *gc_secret_pstrdup(apr_pool_t *p, const char *s)
{
    return s ? gc_secret_pmemdup(p, s, strlen(s)) : NULL;
}

char *gc_secret_track(apr_pool_t *p, char *s)
{
    if (s) {
        gc_wipe_on_cleanup(p, s, strlen(s) + 1);
    }
    return s;
}

/* Length of the longest needle that starts at s (rest bytes left), or 0.
 * With more, *partial is set when s ends inside what may be a needle. */
static apr_size_t match_at(const char *s, apr_size_t rest, const char *const *needles,
                           const apr_size_t *lens, int n, int more, int *partial)
{
    apr_size_t best = 0;
    int i;

    for (i = 0; i < n; i++) {
        apr_size_t nl = lens[i];

        if (nl < GC_REDACT_MIN || needles[i][0] != s[0]) {
            continue;
        }
        if (nl <= rest) {
            if (nl > best && memcmp(s, needles[i], nl) == 0) {
                best = nl;
            }
        }
        else if (more && memcmp(s, needles[i], rest) == 0) {
            *partial = 1;
        }
    }
    return best;
}

const char *gc_redact_line(apr_pool_t *p, const char *s, apr_size_t len, const char *const *needles,
                           int nneedles, int more, apr_size_t max)
{
    static const char redacted[] = GC_REDACTED;
    char *out = apr_palloc(p, max + 4);
    apr_size_t *lens = apr_pcalloc(p, sizeof(*lens) * (apr_size_t)(nneedles > 0 ? nneedles : 1));
    apr_size_t i = 0, o = 0;
    int blank = 0, cut = 0, k;

    for (k = 0; k < nneedles; k++) {
        lens[k] = needles[k] ? strlen(needles[k]) : 0;
    }
    while (s && i < len) {
        unsigned char c = (unsigned char)s[i];
        int partial = 0;
        apr_size_t hit = match_at(s + i, len - i, needles, lens, nneedles, more, &partial);
        const char *piece;
        apr_size_t plen;
        char ch;

        if (partial) {
            cut = 1; /* the rest of a secret may lie beyond s */
            break;
        }
        if (hit) {
            piece = redacted;
            plen = sizeof(redacted) - 1;
        }
        else if (c < 0x20 || c == 0x7f || c == ' ') {
            blank = o > 0; /* leading blanks vanish, a run becomes one */
            i++;
            continue;
        }
        else {
            ch = c >= 0x80 ? '?' : (char)c;
            piece = &ch;
            plen = 1;
        }
        if (o + (apr_size_t)blank + plen > max) {
            cut = 1;
            break;
        }
        if (blank) {
            out[o++] = ' ';
            blank = 0;
        }
        memcpy(out + o, piece, plen);
        o += plen;
        i += hit ? hit : 1;
    }
    if (cut || more) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}
