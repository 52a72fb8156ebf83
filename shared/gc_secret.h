/* Secrets in memory and in text.
 *
 * Memory: every buffer that holds a secret (the client secret, the Basic
 * credentials, an access token, a token response, a webhook signing secret)
 * is overwritten with zeros before it is released, on every path. Pool
 * copies get a pool cleanup that does it.
 *
 * Text: an excerpt of untrusted text (an error body, curl's message) is
 * redacted of every secret first and cut to its maximum length only then, so
 * that a secret straddling the cut never survives in part. */
#ifndef GC_SECRET_H
#define GC_SECRET_H

#include <apr_pools.h>

/* What a redacted secret is replaced with. */
#define GC_REDACTED "[hidden]"

/* Needles shorter than this are never redacted: they cannot carry a secret
 * and would mangle ordinary text. */
#define GC_REDACT_MIN 4

/* Overwrite n bytes at mem with zeros (never optimised away). mem may be NULL. */
void gc_wipe(void *mem, apr_size_t n);

/* Wipe n bytes at mem when p is cleared or destroyed. mem must stay valid
 * until then: memory of p itself or longer-lived (not of a subpool of p). */
void gc_wipe_on_cleanup(apr_pool_t *p, void *mem, apr_size_t n);

/* A copy of s (n bytes plus a NUL) from p, wiped when p goes; NULL for NULL. */
char *gc_secret_pmemdup(apr_pool_t *p, const char *s, apr_size_t n);
char *gc_secret_pstrdup(apr_pool_t *p, const char *s);

/* Have a string already allocated from p (e.g. by apr_pstrcat) wiped when p
 * goes; returns s. */
char *gc_secret_track(apr_pool_t *p, char *s);

/* One printable line made from untrusted text s (len bytes):
 *   1. every occurrence of a needle (NULL and shorter ones than GC_REDACT_MIN
 *      are skipped; at each position the longest matching needle wins) is
 *      replaced by GC_REDACTED, matched on the raw bytes, case-sensitively;
 *   2. control characters and runs of blanks become one space, bytes >= 0x80
 *      become '?' (the output is ASCII, so any cut is on a character boundary),
 *      leading and trailing blanks go;
 *   3. the result is cut to at most max bytes (a GC_REDACTED is never cut in
 *      half) and "..." appended when anything was left out.
 * more != 0 says s is only the start of a longer text (a bounded capture):
 * when s ends with the beginning of a needle, the output stops before it, as
 * the rest of that secret may be beyond the capture. From p; never NULL. */
const char *gc_redact_line(apr_pool_t *p, const char *s, apr_size_t len, const char *const *needles,
                           int nneedles, int more, apr_size_t max);

#endif
