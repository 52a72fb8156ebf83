/* gcmon's database, through apr_dbd (SQLite by default, PostgreSQL to scale
 * out): schema creation/versioning, the stream-holder lease, the agent
 * history and current state, persisted notification channels, retention, and
 * the read queries of the API (gc_store_read.h, gc_audit.h). SQL only through
 * prepared statements (prepared lazily per connection and cached in the
 * gc_store_t), portable between the sqlite3 and pgsql drivers. One gc_store_t
 * wraps one connection and serves writes and reads alike. */
#ifndef GC_STORE_H
#define GC_STORE_H

#include <apr_dbd.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "gc_query.h"
#include "gc_state.h"

#define GC_SCHEMA_VERSION 11

typedef struct gc_store gc_store_t;

/* Wrap a connection opened elsewhere (mod_dbd's ap_dbd_open in the module).
 * On sqlite3 this sets WAL, synchronous=NORMAL and foreign_keys=ON, and
 * busy_timeout=0: no SQLite busy handler at all (it would sleep under
 * apr_dbd_sqlite3's process-wide mutex and stall the lock holder); the
 * driver retries SQLITE_BUSY itself and transactions retry BEGIN outside the
 * mutex. Pass the pool that lives as long as the connection
 * (ap_dbd_t.pool): the store keeps its prepared statements there, and wrapping
 * the same handle again with the same pool returns the same store (apr_dbd
 * sqlite3 keeps every statement ever prepared until the connection closes, so
 * preparing per request would grow it without bound). The store is used by
 * one thread at a time, like the connection. NULL for a driver other than
 * sqlite3 or pgsql. */
gc_store_t *gc_store_wrap(apr_pool_t *p, const apr_dbd_driver_t *driver, apr_dbd_t *handle);

/* Open a connection directly with apr_dbd (tests, benchmarks, tools). */
apr_status_t gc_store_open(apr_pool_t *p, const char *driver_name, const char *params,
                           gc_store_t **out, const char **err);

/* Close a store from gc_store_open now (else it closes with its pool). A
 * wrapped connection belongs to its opener and is left alone. */
void gc_store_close(gc_store_t *s);

const char *gc_store_dialect(const gc_store_t *s); /* "sqlite3" or "pgsql" */

/* A sqlite3 transaction waits up to 10 s for another connection's write lock;
 * give_up(baton), asked every 20 ms of that wait, ends it at once (the BEGIN
 * fails as busy): a stopping thread does not sit out the wait. NULL: none. */
typedef int gc_store_give_up_fn(void *baton);
void gc_store_set_give_up(gc_store_t *s, gc_store_give_up_fn *give_up, void *baton);

/* Name the database for the process-wide totals cache of the listings
 * (gc_store_read.h): stores of the same database may share a scope (the glue
 * passes its server_rec); stores of different databases must not. Without a
 * scope (the default) totals are counted on every request. */
void gc_store_set_scope(gc_store_t *s, const void *scope);

/* A page of a listing (history, alerts, the audit trail), newest first. */
typedef struct {
    long total;               /* rows matching the filter, all pages */
    apr_array_header_t *rows; /* the listing's row type */
    int has_more;             /* another page follows */
    gc_cursor_t next;         /* keyset position of the last row (when has_more) */
} gc_page_t;

/* The schema version recorded in the database (0 when there is none yet), read
 * without taking the write lock that gc_store_migrate takes: a connection whose
 * schema is current skips the migration. APR_EGENERAL when gcmon_schema does
 * not exist (a fresh database). */
apr_status_t gc_store_schema_version(gc_store_t *s, apr_pool_t *p, int *version);

/* Create or upgrade the schema to GC_SCHEMA_VERSION (idempotent, safe when
 * several processes race: one wins, the others see the version). */
apr_status_t gc_store_migrate(gc_store_t *s, const char **err);

/* Take or renew lease `name` for `holder` until now + ttl, when it is free,
 * expired, or already ours. *held tells whether we hold it afterwards;
 * *current (may be NULL) names the holder then. */
apr_status_t gc_store_lease(gc_store_t *s, const char *name, const char *holder, apr_time_t now,
                            apr_interval_time_t ttl, int *held, const char **current,
                            apr_pool_t *p);

/* gc_store_lease, and the holder's state document: when we hold the lease
 * afterwards and state_in is not NULL, it is stored in the row; *state_out
 * (may be NULL) is the row's document then ("" when none), whoever wrote it. */
apr_status_t gc_store_lease_state(gc_store_t *s, const char *name, const char *holder,
                                  apr_time_t now, apr_interval_time_t ttl, const char *state_in,
                                  int *held, const char **current, const char **state_out,
                                  apr_pool_t *p);
apr_status_t gc_store_lease_release(gc_store_t *s, const char *name, const char *holder);
/* Remove lease `name` if `holder` has it (short-lived locks leave no row). */
apr_status_t gc_store_lease_delete(gc_store_t *s, apr_pool_t *p, const char *name,
                                   const char *holder);

/* Read lease `name` (status API): last holder, expiry and when that holder's
 * tenure began (any of the out pointers may be NULL). APR_NOTFOUND when it
 * was never taken. An expired or released lease still names its last holder;
 * compare expires_at with the clock. */
apr_status_t gc_store_lease_get(gc_store_t *s, apr_pool_t *p, const char *name, const char **holder,
                                apr_time_t *expires_at, apr_time_t *acquired_at);

typedef struct {
    int transitions; /* history rows written */
    int refreshed;   /* current rows updated without a transition */
    int duplicates;  /* ignored: already stored */
    int stale;       /* ignored: older than stored */
} gc_store_batch_result_t;

/* Record a batch of observations in ONE transaction: judge each against the
 * stored current state (gc_event_judge), in order (later events of an agent
 * against the earlier ones of the batch), insert a history row per transition
 * (UNIQUE(user_id, event_at) makes overlapping writers harmless), upsert the
 * current row (since = the transition's time; kept on a refresh). The states
 * judged against are cached in the store (updated only after COMMIT); batches
 * of concurrent writers are serialised, and a store that finds another writer
 * has written since its last batch drops its cache. Two states observed in the
 * same millisecond: the first keeps the history row of that instant (the
 * second counts as a duplicate), the current row takes the second. Events
 * without user id, state or time count as stale. On any error everything is
 * rolled back, *res is zero, the cache is unchanged, and APR_EGENERAL is
 * returned with *err (from p); the caller may retry the same batch. `source`
 * is "stream", "resync" or "inbound". */
apr_status_t gc_store_write_batch(gc_store_t *s, apr_pool_t *p, const gc_agent_event_t *evs, int n,
                                  const char *source, apr_time_t ingested_at,
                                  gc_store_batch_result_t *res, const char **err);

/* Forget the per-agent states write_batch judges against (they are re-read
 * from the database on next use). write_batch already does so when another
 * writer has written; this is for rows changed outside gc_store. */
void gc_store_cache_reset(gc_store_t *s);

/* One agent's current row (tests, API). APR_NOTFOUND when unknown. */
typedef struct {
    const char *user_id, *user_name, *state, *presence, *presence_id, *routing_status;
    const char *queue_ids; /* JSON array text or NULL */
    apr_time_t since, event_at, updated_at;
} gc_agent_row_t;
apr_status_t gc_store_agent_get(gc_store_t *s, apr_pool_t *p, const char *user_id,
                                gc_agent_row_t **out);

/* Count of history rows (tests, status). */
apr_status_t gc_store_history_count(gc_store_t *s, const char *user_id, long *out);

/* Persisted notification channels, so a new holder reuses them. */
typedef struct {
    const char *id;
    const char *connect_uri;
    apr_time_t expires_at;
    const char *topics; /* JSON array text of topic names */
} gc_channel_rec_t;
apr_status_t gc_store_channels_load(gc_store_t *s, apr_pool_t *p, apr_array_header_t **out);
apr_status_t gc_store_channel_save(gc_store_t *s, const gc_channel_rec_t *c);
apr_status_t gc_store_channel_delete(gc_store_t *s, const char *id);

/* Delete up to max_rows history rows older than `before`, oldest first, in
 * chunks of at most 1000 rows per statement (each its own transaction, so
 * writers are never held up for long). max_rows must be > 0. */
apr_status_t gc_store_prune(gc_store_t *s, apr_time_t before, int max_rows, int *deleted);

/* Test hooks (unit tests and benchmarks only; production code never calls them). */

/* Make the nth (1-based) row that the next gc_store_write_batch writes
 * (history or current) violate a NOT NULL constraint in the database, so the
 * statement fails mid-transaction; 0 disarms. */
void gc_store_test_fail_write(gc_store_t *s, int nth);

/* write_batch normally judges a whole batch in memory and writes it with
 * multi-row statements, falling back to one statement per event only when
 * another writer interferes; on != 0 forces the per-event path. */
void gc_store_test_force_slow(gc_store_t *s, int on);

/* Whether write_batch's cache holds `user_id`, and with what. */
int gc_store_test_cached(gc_store_t *s, const char *user_id, const char **state,
                         apr_time_t *event_at);

/* The baseline of SPEC §8: insert the same history rows with a plain INSERT in
 * one transaction, without judging or current rows. */
apr_status_t gc_store_test_raw_insert(gc_store_t *s, apr_pool_t *p, const gc_agent_event_t *evs,
                                      int n, const char *source, apr_time_t ingested_at,
                                      const char **err);

/* ---- the live board (SPEC §9.17) ---- */

/* Heard after every committed transaction of this store that changed what the
 * board shows (agent rows, alerts, membership): the database's board_id and
 * the new generation. The stream holder publishes it to shared memory. */
typedef void gc_store_board_fn(void *baton, apr_int64_t board_id, apr_int64_t gen);
void gc_store_on_board_change(gc_store_t *s, gc_store_board_fn *fn, void *baton);

/* The monitored queues an agent is a member of (JSON array text of ids). */
typedef struct {
    const char *user_id;
    const char *queue_ids;
} gc_membership_t;

/* Record memberships (one transaction, one generation; unchanged ones are
 * not stamped). */
apr_status_t gc_store_membership_set(gc_store_t *s, apr_pool_t *p, const gc_membership_t *m, int n,
                                     const char **err);

/* Is user_id, as the holder last read the queues, a member of a monitored
 * queue (GcmonMonitorQueue)? *member 0 on any error. */
apr_status_t gc_store_membership_has(gc_store_t *s, apr_pool_t *p, const char *user_id, int *member,
                                     const char **err);

#endif
