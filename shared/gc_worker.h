/* One skeleton for gcmon's background threads: the stream monitor of each
 * child, the holder's writer and outbox threads, and whatever background job
 * comes next (docs/architecture.md, "How to add a background job").
 *
 * A worker is a name, a main function and a baton, run on a thread of its
 * own (gc_worker_start) or on the caller's (gc_worker_run). It brings:
 * - a stop request and a wake that end its waits at once: no thread polls a
 *   flag in short sleeps. Both are async-signal-safe (an atomic store and a
 *   write(2) to the worker's eventfd), so httpd's child_stopping may stop a
 *   worker from a signal handler;
 * - a join with a bounded wait;
 * - its own database connection (gc_dbconn) with reconnect backoff and
 *   throttled failure logging: the worker decides when a failure is worth a
 *   line, the caller writes it with its own tag and level;
 * - its own random numbers (splitmix64 seeded from apr_generate_random_bytes)
 *   and the one backoff of the core (gc_backoff_delay) jittered with them.
 *
 * Everything below "inside the worker" is for the worker's own thread. */
#ifndef GC_WORKER_H
#define GC_WORKER_H

#include <apr_pools.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include "gc_dbconn.h"

struct gc_store;

typedef struct gc_worker gc_worker_t;

/* The worker's body: returns once gc_worker_stopping(w) (or when its work is
 * done). The worker closes its database connection after it. */
typedef void gc_worker_main_fn(gc_worker_t *w, void *baton);

/* How a worker's thread is made: apr_thread_create's signature, which httpd's
 * ap_thread_create shares. */
typedef apr_status_t gc_thread_create_fn(apr_thread_t **thread, apr_threadattr_t *attr,
                                         apr_thread_start_t func, void *data, apr_pool_t *p);

/* ---------------------------------------------------------------- lifecycle */

/* A worker named `name` (a short word: "monitor", "writer", "outbox"), not
 * running yet, with a pool of its own (own allocator) under parent. */
apr_status_t gc_worker_create(gc_worker_t **out, apr_pool_t *parent, const char *name);

/* The worker's pool: the worker's own data, used by its thread once it runs
 * and freed by gc_worker_destroy. */
apr_pool_t *gc_worker_pool(gc_worker_t *w);
const char *gc_worker_name(const gc_worker_t *w);

/* Run main(w, baton) on a new thread made by create (NULL: apr_thread_create). */
apr_status_t gc_worker_start(gc_worker_t *w, gc_worker_main_fn *main, void *baton,
                             gc_thread_create_fn *create);

/* Run main(w, baton) on the calling thread, which then is the worker's
 * (tests, bench, a thread the caller made). Returns when main returns. */
void gc_worker_run(gc_worker_t *w, gc_worker_main_fn *main, void *baton);

/* End the worker's current or next gc_worker_wait (not a gc_worker_pause).
 * Wakes coalesce. Any thread; async-signal-safe. */
void gc_worker_wake(gc_worker_t *w);

/* Ask the worker to stop: gc_worker_stopping becomes true and every wait and
 * pause ends at once, now and later. Any thread; async-signal-safe. */
void gc_worker_stop(gc_worker_t *w);

/* Wait up to `patience` (< 0: as long as it takes) for main to return, then
 * join the thread: APR_SUCCESS, or APR_TIMEUP when main still runs (call
 * again). APR_SUCCESS at once for a worker never started. For one started
 * with gc_worker_start; by its owner only. */
apr_status_t gc_worker_join(gc_worker_t *w, apr_interval_time_t patience);

/* Join (as long as it takes: stop it first) and free the worker's pool. */
void gc_worker_destroy(gc_worker_t *w);

/* ---------------------------------------------------------------- inside the worker */

/* Has a stop been asked for? Any thread. */
int gc_worker_stopping(gc_worker_t *w);

typedef enum {
    GC_WORKER_TIMEOUT = 0, /* `until` came */
    GC_WORKER_WOKEN,       /* gc_worker_wake */
    GC_WORKER_STOPPED      /* gc_worker_stop (also before the call) */
} gc_worker_wait_e;

/* Wait until `until`, a wake (consumed) or a stop, whichever comes first. */
gc_worker_wait_e gc_worker_wait(gc_worker_t *w, apr_time_t until);

/* A delay that only `until` or a stop ends: a wake arriving meanwhile is kept
 * for the next gc_worker_wait (retry backoff after a failure). */
gc_worker_wait_e gc_worker_pause(gc_worker_t *w, apr_time_t until);

/* Uniform in [0, 1): jitter, never secrets. */
double gc_worker_rand(gc_worker_t *w);

/* The delay before attempt `failures` + 1: gc_backoff_delay(min, max,
 * failures) jittered with gc_worker_rand; a longer retry_after (what the other
 * side asked for, e.g. Retry-After; 0 for none) wins. */
apr_interval_time_t gc_worker_backoff(gc_worker_t *w, apr_interval_time_t min,
                                      apr_interval_time_t max, int failures,
                                      apr_interval_time_t retry_after);

/* ---------------------------------------------------------------- database */

/* The worker's own connection, through the glue's callbacks. */
typedef struct gc_worker_db_conf {
    gc_db_open_fn *open;
    gc_db_close_fn *close;
    void *baton;
    /* Reconnect backoff after a failure: min doubling to max, with jitter;
     * 0 = GC_WORKER_DB_RETRY_MIN / _MAX. */
    apr_interval_time_t retry_min, retry_max;
    /* Called with every connection just opened (may be NULL): e.g. to install
     * the store's board-change hook. */
    void (*opened)(struct gc_store *s, void *opened_baton);
    void *opened_baton;
} gc_worker_db_conf_t;

#define GC_WORKER_DB_RETRY_MIN apr_time_from_sec(1)
#define GC_WORKER_DB_RETRY_MAX apr_time_from_sec(60)
/* A failure line is written for the first failure in a row, then at most
 * this often (gc_worker_db_failed). */
#define GC_WORKER_LOG_EVERY apr_time_from_sec(60)

/* Give the worker a database (before it starts). */
void gc_worker_use_db(gc_worker_t *w, const gc_worker_db_conf_t *db);

/* The open connection, opened now when closed. APR_SUCCESS with *store;
 * APR_EAGAIN while the backoff after a failure runs (nothing was tried);
 * otherwise the open failed (*err says why): report it with
 * gc_worker_db_failed. */
apr_status_t gc_worker_db(gc_worker_t *w, struct gc_store **store, const char **err);

/* The connection if open, else NULL (never opens). */
struct gc_store *gc_worker_store(gc_worker_t *w);

/* The database work failed (open, query or transaction): the connection is
 * closed — the next gc_worker_db opens a fresh one once the backoff has run —
 * and the failure counted. 1 when the caller should log it (with its own tag
 * and level): the first failure in a row, then at most once a minute. */
int gc_worker_db_failed(gc_worker_t *w);

/* The database work succeeded: how many failures in a row this ends (> 0:
 * log the thread's "works again" line). */
int gc_worker_db_ok(gc_worker_t *w);

/* Failures in a row so far (the attempt number in messages). */
int gc_worker_db_failures(gc_worker_t *w);

/* When the next attempt may be made (after gc_worker_db_failed). */
apr_time_t gc_worker_db_retry_at(gc_worker_t *w);

/* Close the connection without counting a failure. */
void gc_worker_db_close(gc_worker_t *w);

/* Once stopped, the worker's database waits (a sqlite3 BEGIN waiting for
 * another connection's lock) end at `until` (0, the default: at once), so a
 * stop is never held up by a locked database longer than the worker allows.
 * Any thread; call before gc_worker_stop. */
void gc_worker_db_patience(gc_worker_t *w, apr_time_t until);

#endif
