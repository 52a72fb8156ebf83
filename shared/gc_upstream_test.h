/* Test hooks of the upstream client (unit tests only; production code never
 * calls these). Each hook applies to one client; call them before the client
 * is used by more than one thread. */
#ifndef GC_UPSTREAM_TEST_H
#define GC_UPSTREAM_TEST_H

#include "gc_upstream.h"

/* Clock used for token lifetimes (obtained-at and renewal time). NULL restores
 * apr_time_now. Waits (budget, Retry-After, backoff) always use the real clock. */
typedef apr_time_t gc_upstream_clock_fn(void *baton);
void gc_upstream_test_set_clock(gc_upstream_t *u, gc_upstream_clock_fn *fn, void *baton);

/* Exponential backoff for 5xx/connection retries: full jitter in
 * [0, min(cap, base * 2^retry)]. Defaults 250 ms and 8 s. */
void gc_upstream_test_set_backoff(gc_upstream_t *u, apr_interval_time_t base,
                                  apr_interval_time_t cap);

/* on = 0: no jitter, each backoff is exactly min(cap, base * 2^retry), so a
 * test knows when the next retry would be. Default on. */
void gc_upstream_test_set_jitter(gc_upstream_t *u, int on);

/* Wait after a 429 without (or with an unparseable) Retry-After. Default 3 s. */
void gc_upstream_test_set_retry_after_default(gc_upstream_t *u, apr_interval_time_t d);

/* Largest response body accepted (default 32 MiB); larger is GC_ERR_PROTOCOL. */
void gc_upstream_test_set_max_body(gc_upstream_t *u, apr_size_t max);

/* The client's own storage of the cached access token (*size bytes, the
 * token then zeros), so a test can check that a forgotten or replaced token
 * leaves no byte behind. Valid as long as the client's pool. */
const char *gc_upstream_test_token_storage(gc_upstream_t *u, apr_size_t *size);

#endif
