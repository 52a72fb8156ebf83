/* Entity tags (RFC 9110 §8.8.3, §13.1.1–2): the one parser of If-Match and
 * If-None-Match lists, and the content hash behind gcmon's strong validators
 * of JSON representations (the board, one agent). */
#ifndef GC_ETAG_H
#define GC_ETAG_H

#include <apr_pools.h>

/* A 128-bit content hash (two 64-bit multiply-xorshift lanes, eight bytes at
 * a time). Each value is prefixed with its length or a NULL marker, so NULL,
 * "" and field boundaries never collide. Not cryptographic: it only has to
 * change when the content does. */
typedef struct {
    apr_uint64_t a, b;
} gc_etag_hash_t;

void gc_etag_hash_init(gc_etag_hash_t *h);
void gc_etag_hash_str(gc_etag_hash_t *h, const char *s);
void gc_etag_hash_int(gc_etag_hash_t *h, apr_int64_t v);

/* The strong entity tag of a hash: "\"" + 32 lowercase hex + "\"". */
const char *gc_etag_hash_text(apr_pool_t *p, const gc_etag_hash_t *h);

typedef enum {
    GC_ETAG_STRONG, /* If-Match: W/"…" never matches */
    GC_ETAG_WEAK    /* If-None-Match: W/"x" matches "x" */
} gc_etag_cmp_e;

/* Does the header (an If-Match or If-None-Match value) match the current
 * strong entity tag `etag` (with its quotes)? "*" alone matches any current
 * representation; otherwise a comma-separated list of entity tags compared
 * as `cmp` says. A malformed header matches nothing (the request then goes
 * on as if it had no condition for If-None-Match, and fails If-Match). */
int gc_etag_match(const char *header, const char *etag, gc_etag_cmp_e cmp);

#endif
