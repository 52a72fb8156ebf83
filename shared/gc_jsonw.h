/* A small append-only JSON writer for the read API's large, hot responses
 * (history pages, the 20,000-agent board): straight into one growing buffer,
 * no intermediate object tree. jansson costs ~10x more per field there (one
 * allocation per value and per key, hashing, a second pass to dump), which
 * profiling showed to dominate a history page. Strings are escaped per RFC
 * 8259; bytes that are not valid UTF-8 become U+FFFD, so the output is always
 * valid UTF-8 JSON whatever the database holds. */
#ifndef GC_JSONW_H
#define GC_JSONW_H

#include <apr_time.h>

typedef struct {
    char *buf; /* malloc'd; NUL-terminated while !failed */
    apr_size_t len, cap;
    int failed; /* out of memory: everything after is dropped */
} gc_jw_t;

void gc_jw_init(gc_jw_t *w, apr_size_t hint);
void gc_jw_free(gc_jw_t *w);
/* Take the buffer (caller frees with free()); NULL when failed. */
char *gc_jw_steal(gc_jw_t *w, apr_size_t *len);

void gc_jw_raw(gc_jw_t *w, const char *s, apr_size_t n);
/* A string literal only (the "" s "" makes anything else a compile error,
 * e.g. a ?: whose sizeof would be a pointer's). */
#define gc_jw_lit(w, s) gc_jw_raw((w), "" s "", sizeof("" s "") - 1)
void gc_jw_str(gc_jw_t *w, const char *s); /* "escaped", or null for NULL */
void gc_jw_int(gc_jw_t *w, apr_int64_t v);
void gc_jw_time(gc_jw_t *w, apr_time_t t); /* "…T…​.mmmZ", or null for 0 */

/* RFC 3339 UTC with milliseconds into out (at least 32 bytes); returns the
 * length. Same text as gc_time_format, without a pool. */
apr_size_t gc_jw_format_time(char *out, apr_time_t t);

/* Is s a compact JSON array of strings of [A-Za-z0-9-_] (e.g. queue ids as
 * the store writes them)? Such text can be copied into the output verbatim. */
int gc_jw_simple_id_array(const char *s);

#endif
