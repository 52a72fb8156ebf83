/* Internals of the gcmon store (gc_store*.c / store_*.c), shared by its
 * files only. Nothing outside the store includes this header.
 *
 * One database layer for writes and reads:
 * - a statement is a gc_stmt_t (name, SQL), a static const in the store file
 *   that runs it (or built there per filter shape), passed by address;
 * - the executor (gc_store.c) prepares it on first use per connection, caches
 *   it in the store under its name, and runs it with bound arguments; one
 *   retry policy (a statement SQLite expired is prepared again), one error
 *   text, one set of column readers (gc_rows_t), transactions (gc_store__tx);
 * - paged listings (gc_store_list.c): a store file declares a gc_listing_t
 *   (table, columns, order, filters, row reader) and gc_store__list runs it
 *   into a gc_page_t (gc_store.h). */
#ifndef GC_GC_STORE_INT_H
#define GC_GC_STORE_INT_H

#include <apr_dbd.h>
#include <apr_hash.h>
#include <apr_pools.h>

#include "gc_query.h"
#include "gc_store.h"

typedef enum { GC_DB_SQLITE3, GC_DB_PGSQL } gc_db_dialect_e;

/* ---- statements ---- */

/* One statement. `name` identifies it in the connection's cache and in error
 * texts: one name, one SQL text (a second text under a name is refused).
 * Placeholders are apr_dbd's (%s, %d, %lld; a literal % is %%). Portable SQL
 * (sqlite3 >= 3.24, PostgreSQL >= 9.5); `pgsql` only where the dialects
 * differ. Every SELECT is bounded. */
typedef struct {
    const char *name;
    const char *sql;   /* sqlite3, and pgsql unless `pgsql` is set */
    const char *pgsql; /* NULL: `sql` */
    unsigned flags;    /* GC_STMT_* */
} gc_stmt_t;

/* Failing is expected (e.g. probing a table that may not exist yet): a
 * failed prepare is logged at debug, not error. */
#define GC_STMT_QUIET 1u

/* Run a statement (prepared on first use on this connection) with binary
 * arguments, as for apr_dbd_pbquery: const char * for %s, apr_int64_t * for
 * %lld, int * for %d, NULL for SQL NULL. *nrows (may be NULL): rows affected. */
apr_status_t gc_store__exec(gc_store_t *s, apr_pool_t *p, const gc_stmt_t *st, const void **args,
                            int *nrows, const char **err);

/* A SELECT's rows, read with gc_store__next until it returns 0 (always to the
 * end: pgsql frees its result when the rows run out). pgsql is fetched
 * synchronously (random access), so even a result read only in part could
 * never hold the connection busy (apr_dbd_pgsql's async-select trap). */
typedef struct {
    gc_store_t *s;
    apr_pool_t *pool; /* the select's pool */
    apr_dbd_results_t *res;
    apr_dbd_row_t *row;
} gc_rows_t;

apr_status_t gc_store__select(gc_store_t *s, apr_pool_t *p, const gc_stmt_t *st, const void **args,
                              gc_rows_t *rows, const char **err);
int gc_store__next(gc_rows_t *r);

/* Column readers of the current row: text in pool p (NULL for SQL NULL; not
 * copied when it already lives there), integers 0 for NULL. */
const char *gc_store__text(gc_rows_t *r, apr_pool_t *p, int col);
apr_int64_t gc_store__int(gc_rows_t *r, int col);

/* The first column of the first row as an integer (0 when there is no row;
 * *found, which may be NULL, tells). */
apr_status_t gc_store__select_int(gc_store_t *s, apr_pool_t *p, const gc_stmt_t *st,
                                  const void **args, apr_int64_t *v, int *found, const char **err);

/* Run one-off SQL (migration DDL) as an uncached prepared statement. */
apr_status_t gc_store__exec_sql(gc_store_t *s, apr_pool_t *p, const char *sql, const char **err);

/* Forget every prepared statement (after DDL on sqlite3). */
void gc_store__stmt_reset(gc_store_t *s);

/* Error text "what: database message" in p, on one line. */
const char *gc_store__err(gc_store_t *s, apr_pool_t *p, const char *what, int rv);

/* Transactions: run fn inside one, commit when it returns APR_SUCCESS, else
 * roll back. When the statement cache was found expired by a concurrent
 * schema change (sqlite3), the whole transaction is retried once. */
typedef apr_status_t gc_store_tx_fn(gc_store_t *s, apr_pool_t *p, void *baton, const char **err);
apr_status_t gc_store__tx(gc_store_t *s, apr_pool_t *p, gc_store_tx_fn *fn, void *baton,
                          const char **err);

/* ---- paged listings (gc_store_list.c) ---- */

/* A filter of a listing: a condition with one placeholder, applied when the
 * gc_query_t field it names is set. String fields (GC_Q_USER_ID, GC_Q_STATE,
 * GC_Q_ACTOR, GC_Q_ACTION, GC_Q_TARGET) bind %s; times (GC_Q_FROM, GC_Q_TO)
 * bind %lld epoch milliseconds, rounded up (so "at least t" and "before t"
 * hold for millisecond rows and microsecond bounds). */
typedef struct {
    unsigned field;   /* one GC_Q_* bit; 0 ends the list */
    const char *cond; /* e.g. "user_id = %s", "event_at >= %lld" */
} gc_list_filter_t;

#define GC_LIST_MAX_FILTERS 8

typedef void gc_list_read_fn(gc_rows_t *r, apr_pool_t *p, void *row);

/* The first row of a select read into *out (size bytes, zeroed first) by
 * read; the rest read to the end. *found 0 when there is no row. */
apr_status_t gc_store__first(gc_store_t *s, apr_pool_t *p, const gc_stmt_t *st, const void **args,
                             gc_list_read_fn *read, void *out, size_t size, int *found,
                             const char **err);
typedef void gc_list_position_fn(const void *row, gc_cursor_t *at);

/* What a listing is: newest first by (tcol, id), or by id alone when tcol is
 * NULL, which the table's indexes must serve without sorting. */
typedef struct {
    const char *name; /* statement names, totals-cache keys */
    const char *table;
    const char *cols; /* selected columns, in the order `read` takes */
    const char *tcol; /* time column of the order and keyset, or NULL */
    int cached_total; /* total through the process-wide cache */
    gc_list_filter_t filters[GC_LIST_MAX_FILTERS];
    size_t row_size;
    gc_list_read_fn *read;         /* one row into a row_size struct */
    gc_list_position_fn *position; /* a row's keyset position (the next cursor) */
} gc_listing_t;

/* One page of listing l for q: filters, then q->limit rows after q->offset
 * rows or below q->cursor ((at, id) or id alone), plus the total of rows
 * matching the filters: counted every time, or (cached_total) through the
 * totals cache of gc_store_read.h. */
apr_status_t gc_store__list(gc_store_t *s, apr_pool_t *p, const gc_listing_t *l,
                            const gc_query_t *q, gc_page_t *out, const char **err);

/* ---- the store ---- */

/* What write_batch remembers of an agent: the judged-against state. */
typedef struct {
    const char *user_id;
    const char *state;   /* interned in the cache pool */
    apr_time_t event_at; /* µs, millisecond precision */
    int valid;
} gc_cache_ent_t;

struct gc_store {
    apr_pool_t *pool; /* store lifetime (= the connection's, when wrapped) */
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    gc_db_dialect_e dialect;
    const char *dialect_name;
    int owns_handle; /* opened by gc_store_open: closed with the pool */
    int closed;
    const void *scope; /* the database, for the totals cache (NULL: none) */

    apr_hash_t *stmts; /* statement name → prepared statement */
    int stmt_stale;    /* sqlite3: a schema change expired the cache */
    int in_tx;         /* inside gc_store__tx */
    /* pgsql: one transaction object reused for the connection's lifetime,
     * because apr_dbd_pgsql's start dereferences a NULL *trans when BEGIN
     * fails (dead connection). */
    apr_dbd_transaction_t *pg_trans;

    /* The database's write epoch after this store's last committed batch: if
     * a batch finds it moved by more than its own bump, someone else wrote. */
    apr_int64_t epoch;
    int epoch_known;

    /* The board generation (= write epoch) the running transaction bumped to,
     * 0: none; after COMMIT board_hook hears of it. */
    apr_int64_t tx_gen;
    apr_int64_t board_id; /* gcmon_meta.board_id, 0 until read */
    gc_store_board_fn *board_hook;
    void *board_baton;

    apr_pool_t *cache_pool; /* per-agent judge cache, bounded by agent count */
    apr_hash_t *cache;      /* user_id → gc_cache_ent_t */
    apr_hash_t *interned;   /* state names */

    char migrate_err[512]; /* gc_store_migrate's last error (no pool growth) */

    gc_store_give_up_fn *give_up; /* ends a sqlite3 BEGIN's wait; NULL: none */
    void *give_up_baton;

    int test_fail_write; /* test hook: nth row written by the next batch fails */
    int test_force_slow; /* test hook: per-event path only */
};

/* How long a sqlite3 transaction waits for another connection's write lock. */
#define GC_STORE_BEGIN_WAIT apr_time_from_sec(10)

/* Milliseconds stored in the database ↔ apr_time_t. */
#define GC_MS(t) ((apr_int64_t)apr_time_as_msec(t))
#define GC_FROM_MS(ms) ((apr_time_t)(ms)*1000)

/* Inside a transaction: bump the write epoch — the board generation — and
 * give its new value. Every transaction that changes what the board shows
 * (an agent row, an alert, a membership) calls it once and stamps the rows
 * it changes with the value. */
apr_status_t gc_store__gen_bump(gc_store_t *s, apr_pool_t *p, apr_int64_t *gen, const char **err);

/* After COMMIT of a transaction that bumped the generation: tell the board
 * hook (gc_store_board.c). */
void gc_store__board_committed(gc_store_t *s, apr_pool_t *p);

/* Interned copy of a state name in the cache pool. */
const char *gc_store__intern(gc_store_t *s, const char *state);

#endif
