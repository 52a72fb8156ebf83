/* Stored answers of requests sent with an Idempotency-Key (SPEC §3.4): a
 * replay of the same key answers the stored status and body, byte for byte,
 * without touching Genesys; the same key with another request (its hash
 * differs) is refused by the caller. Rows live in gcmon_idempotency (schema
 * v8) until expires_at; an expired row counts as absent. */
#ifndef GC_STORE_IDEM_H
#define GC_STORE_IDEM_H

#include <apr_pools.h>
#include <apr_time.h>

#include "gc_store.h"

/* How long an answer is kept. */
#define GC_IDEM_TTL apr_time_from_sec(24 * 3600)
/* Longest key accepted (bytes, printable ASCII). */
#define GC_IDEM_MAX_KEY 255

typedef struct {
    const char *request_hash;
    int status;
    const char *content_type;
    const char *body;
} gc_store_idem_rec_t;

/* A well-formed key: 1..GC_IDEM_MAX_KEY printable ASCII characters, no blank. */
int gc_store_idem_key_valid(const char *key);

/* The unexpired answer stored under (scope, key): *found 1 with *out set. */
apr_status_t gc_store_idem_get(struct gc_store *s, apr_pool_t *p, const char *scope,
                               const char *key, apr_time_t now, gc_store_idem_rec_t *out,
                               int *found, const char **err);

/* Store an answer under (scope, key) until now + ttl, replacing an expired
 * one; a live row (a concurrent request stored first) is kept: *stored 0. */
apr_status_t gc_store_idem_put(struct gc_store *s, apr_pool_t *p, const char *scope,
                               const char *key, const gc_store_idem_rec_t *rec, apr_time_t now,
                               apr_interval_time_t ttl, int *stored, const char **err);

#endif
