/* Read queries of the API (SPEC §5.1, §5.2) over the gcmon schema: the
 * history listing, the live board and the alerts listing, run by the store
 * (gc_store.h) on its connection like its writes (the schema must have been
 * migrated by gc_store_migrate). Every query is a prepared statement,
 * prepared lazily on that connection (one per filter shape) and served by an
 * index in newest-first order, bounded by LIMIT: keyset ("cursor") pages cost
 * the same at any depth. Totals come from a process-wide cache that is
 * revalidated against the table on every request (see gc_store_read_history), for
 * stores given a scope (gc_store_set_scope). Implemented in gc_store_read.c and
 * gc_store_list.c. */
#ifndef GC_STORE_READ_H
#define GC_STORE_READ_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "gc_query.h"
#include "gc_store.h"

/* One history row (SPEC §5.1). Times are 0 when unknown; strings NULL. */
typedef struct {
    apr_int64_t id;
    const char *user_id, *user_name, *state, *previous_state, *presence, *routing_status;
    const char *source;
    apr_time_t event_at, ingested_at;
} gc_history_row_t;

/* One alert row (SPEC §5.2). */
typedef struct {
    apr_int64_t id;
    const char *user_id, *user_name, *state;
    long threshold_seconds;
    apr_time_t raised_at, cleared_at; /* cleared_at 0 while open */
    const char *delivery_status;      /* pending|delivered|failed|disabled */
    int delivery_attempts;
    const char *delivery_last_error;
} gc_alert_row_t;

/* History (rows: gc_history_row_t): filters user_id, state, from/to of q;
 * q->limit rows after q->offset rows or after q->cursor. `total` is exact for
 * the table as of this request: the cache is keyed by the filter and
 * revalidated by the table's max(id), min(id) and min(event_at); new rows are
 * counted incrementally; entries older than 60 s are recounted (a safety net
 * for deletions the key cannot see). Without a scope, counted every time. */
apr_status_t gc_store_read_history(gc_store_t *s, apr_pool_t *p, const gc_query_t *q,
                                   gc_page_t *out, const char **err);

/* Alerts (rows: gc_alert_row_t): the same paging and totals; filters user_id,
 * state, from/to on raised_at. */
apr_status_t gc_store_read_alerts(gc_store_t *s, apr_pool_t *p, const gc_query_t *q, gc_page_t *out,
                                  const char **err);

/* One agent of the board, with its newest open alert (alert_id 0 when none). */
typedef struct {
    const char *user_id, *user_name, *state, *presence, *routing_status;
    const char *queue_ids;        /* monitored queues it is a member of (JSON array
                                       text), or NULL when not known yet */
    const char *active_queue_ids; /* the event's activeQueueIds (JSON array text), or NULL */
    apr_time_t since;             /* start of the current state, 0 when unknown */
    apr_int64_t alert_id;
    apr_time_t alert_raised_at;
    long alert_threshold_seconds;
    apr_int64_t gen; /* the board generation of its last change */
} gc_board_row_t;

/* The board's generation (SPEC §9.17): the database's board_id (tells
 * databases apart) and its write epoch, bumped by every transaction that
 * changes what the board shows. */
typedef struct {
    apr_int64_t id;
    apr_int64_t gen;
} gc_board_gen_t;

apr_status_t gc_store_read_board_gen(gc_store_t *s, apr_pool_t *p, gc_board_gen_t *out,
                                     const char **err);

/* The board ordered by user_id: every agent (user_id NULL) or one agent,
 * filtered by state and by membership of queue_id (NULL: no filter).
 * *rows is an array of gc_board_row_t. */
apr_status_t gc_store_read_board(gc_store_t *s, apr_pool_t *p, const char *user_id,
                                 const char *state, const char *queue_id, apr_array_header_t **rows,
                                 const char **err);

/* The agents changed after generation `since` (unfiltered: the caller tells
 * which still match its filter), ordered by user_id. */
apr_status_t gc_store_read_board_since(gc_store_t *s, apr_pool_t *p, apr_int64_t since,
                                       apr_array_header_t **rows, const char **err);

/* Does a board row pass the board's filters (NULL: no filter)? */
int gc_board_row_matches(const gc_board_row_t *b, const char *state, const char *queue_id);

#endif
