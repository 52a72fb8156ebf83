/* Internals of the gcmon store (gc_store*.c / store_*.c), shared by its
 * files only. Nothing outside the store includes this header. */
#ifndef GC_STORE_PRIVATE_H
#define GC_STORE_PRIVATE_H

#include <apr_dbd.h>
#include <apr_hash.h>
#include <apr_pools.h>

#include "gc_store.h"

typedef enum {
    GC_DB_SQLITE3,
    GC_DB_PGSQL
} gc_db_dialect_e;

/* Every statement the store runs, prepared lazily (label NULL) once per
 * connection and cached in the gc_store_t. The SQL is in gc_store.c. */
typedef enum {
    ST_PING,
    ST_SCHEMA_CREATE,
    ST_PG_LOCK,
    ST_SCHEMA_VERSION,
    ST_SCHEMA_MARK,
    ST_LEASE_INSERT,
    ST_LEASE_TAKE,
    ST_LEASE_READ,
    ST_LEASE_RELEASE,
    ST_AGENT_GET,
    ST_EPOCH_BUMP,
    ST_EPOCH_READ,
    ST_HISTORY_INSERT_RAW,
    ST_HISTORY_COUNT_ALL,
    ST_HISTORY_COUNT_USER,
    ST_HISTORY_PRUNE,
    ST_CHANNEL_SAVE,
    ST_CHANNEL_LOAD,
    ST_CHANNEL_DELETE,
    ST_OUTBOX_INSERT,
    ST_OUTBOX_DUE,
    ST_OUTBOX_PENDING,
    ST_OUTBOX_RESULT,
    ST_OUTBOX_ALERT_MIRROR,
    ST_OUTBOX_PRUNE,
    ST_ALERT_AGENTS,
    ST_ALERT_INSERT,
    ST_ALERT_FIND,
    ST_ALERT_CLEAR,
    ST_AUDIT_INSERT,
    ST_AUDIT_LIST,
    ST_AUDIT_COUNT,
    ST_LEASE_DELETE,
    ST__COUNT
} gc_stmt_e;

/* write_batch's multi-row statements: one row template repeated
 * gc_store__bulk_rows[i] times (64, 16, 4, 1), cached like the others. */
typedef enum {
    BK_READ,                        /* current state of up to n agents */
    BK_HISTORY,                     /* history rows, ON CONFLICT DO NOTHING */
    BK_TRANSITION,                  /* current rows after a transition (since = event) */
    BK_REFRESH,                     /* current rows, same state (since kept) */
    BK__COUNT
} gc_bulk_e;

#define GC_BULK_SIZES 4
extern const int gc_store__bulk_rows[GC_BULK_SIZES];
#define GC_STMT_BULK(kind, i) ((int)ST__COUNT + (int)(kind) * GC_BULK_SIZES + (i))
#define GC_STMT_SLOTS ((int)ST__COUNT + (int)BK__COUNT * GC_BULK_SIZES)

/* What write_batch remembers of an agent: the judged-against state. */
typedef struct {
    const char *user_id;
    const char *state;              /* interned in the cache pool */
    apr_time_t event_at;            /* µs, millisecond precision */
    int valid;
} gc_cache_ent_t;

struct gc_store {
    apr_pool_t *pool;               /* store lifetime (= the connection's, when wrapped) */
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    gc_db_dialect_e dialect;
    const char *dialect_name;
    int owns_handle;                /* opened by gc_store_open: closed with the pool */
    int closed;

    apr_dbd_prepared_t *stmt[GC_STMT_SLOTS];
    int stmt_stale;                 /* sqlite3: a schema change expired the cache */
    int in_tx;                      /* inside gc_store__tx */
    /* pgsql: one transaction object reused for the connection's lifetime,
     * because apr_dbd_pgsql's start dereferences a NULL *trans when BEGIN
     * fails (dead connection). */
    apr_dbd_transaction_t *pg_trans;

    /* The database's write epoch after this store's last committed batch: if
     * a batch finds it moved by more than its own bump, someone else wrote. */
    apr_int64_t epoch;
    int epoch_known;

    apr_pool_t *cache_pool;         /* per-agent judge cache, bounded by agent count */
    apr_hash_t *cache;              /* user_id → gc_cache_ent_t */
    apr_hash_t *interned;           /* state names */

    char migrate_err[512];          /* gc_store_migrate's last error (no pool growth) */

    int test_fail_write;            /* test hook: nth row written by the next batch fails */
    int test_force_slow;            /* test hook: per-event path only */
};

/* How long a sqlite3 transaction waits for another connection's write lock. */
#define GC_STORE_BEGIN_WAIT apr_time_from_sec(10)

/* Milliseconds stored in the database ↔ apr_time_t. */
#define GC_MS(t) ((apr_int64_t)apr_time_as_msec(t))
#define GC_FROM_MS(ms) ((apr_time_t)(ms) * 1000)

/* A statement of the cache, prepared on first use; NULL and *err set on failure. */
apr_dbd_prepared_t *gc_store__stmt(gc_store_t *s, int id, const char **err, apr_pool_t *p);

/* Run a cached statement with binary arguments (pointers as for
 * apr_dbd_pbquery: const char * for %s, apr_int64_t * for %lld, int * for %d,
 * NULL for SQL NULL). */
apr_status_t gc_store__exec(gc_store_t *s, apr_pool_t *p, int id, const void **args,
                            int *nrows, const char **err);

/* Run a cached SELECT (synchronous, random access) with binary arguments. The
 * caller iterates with gc_store__row until it returns 0. */
apr_status_t gc_store__select(gc_store_t *s, apr_pool_t *p, int id, const void **args,
                              apr_dbd_results_t **res, const char **err);
int gc_store__row(gc_store_t *s, apr_pool_t *p, apr_dbd_results_t *res, apr_dbd_row_t **row);

/* Run one-off SQL (migration DDL) as an uncached prepared statement. */
apr_status_t gc_store__exec_sql(gc_store_t *s, apr_pool_t *p, const char *sql,
                                const char **err);

/* Column accessors, copying into p; NULL / 0 for SQL NULL. */
const char *gc_store__text(gc_store_t *s, apr_pool_t *p, apr_dbd_row_t *row, int col);
apr_int64_t gc_store__int(gc_store_t *s, apr_dbd_row_t *row, int col);

/* Transactions: run fn inside one, commit when it returns APR_SUCCESS, else
 * roll back. When the statement cache was found expired by a concurrent
 * schema change (sqlite3), the whole transaction is retried once. */
typedef apr_status_t gc_store_tx_fn(gc_store_t *s, apr_pool_t *p, void *baton,
                                    const char **err);
apr_status_t gc_store__tx(gc_store_t *s, apr_pool_t *p, gc_store_tx_fn *fn, void *baton,
                          const char **err);

/* Forget every prepared statement (after DDL on sqlite3). */
void gc_store__stmt_reset(gc_store_t *s);

/* Error text "what: database message" in p. */
const char *gc_store__err(gc_store_t *s, apr_pool_t *p, const char *what, int rv);

/* Interned copy of a state name in the cache pool. */
const char *gc_store__intern(gc_store_t *s, const char *state);

#endif
