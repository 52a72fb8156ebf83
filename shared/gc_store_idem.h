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

/* A request that is still running holds its key with a row of status
 * GC_IDEM_RUNNING (no answer yet) until it finishes or until now + hold (a
 * process that died mid-request frees its keys that way). A lookup finding
 * such a row answers 409 (SPEC §3.4: a replay while the first still runs). */
#define GC_IDEM_RUNNING 0

/* Take (scope, key) for a request of request_hash before running it:
 * *claimed 1 when this call holds it now; 0 when a live row (running or
 * answered) holds it: look it up again. An expired row is replaced. The
 * claim is unique across every process and instance sharing the database
 * (the primary key). */
apr_status_t gc_store_idem_claim(struct gc_store *s, apr_pool_t *p, const char *scope,
                                 const char *key, const char *request_hash, apr_time_t now,
                                 apr_interval_time_t hold, int *claimed, const char **err);

/* The claimed request's answer, kept until now + ttl. */
apr_status_t gc_store_idem_finish(struct gc_store *s, apr_pool_t *p, const char *scope,
                                  const char *key, const gc_store_idem_rec_t *rec, apr_time_t now,
                                  apr_interval_time_t ttl, const char **err);

/* Give a claimed key back unanswered (an outcome not worth keeping: the
 * same key may run again at once). */
apr_status_t gc_store_idem_release(struct gc_store *s, apr_pool_t *p, const char *scope,
                                   const char *key, const char **err);

#endif
