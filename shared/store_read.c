/* Read queries of the API: history, alerts, the board (see gc_store_read.h).
 *
 * SQL is built per filter shape (which filters are present), prepared once per
 * connection under a label naming that shape, and bound with typed values
 * (apr_dbd_pbselect): no value is ever spliced into SQL text. Every listing
 * query is ORDER BY <time> DESC, id DESC LIMIT n+1, which the indexes
 * (<time> DESC, id DESC), (user_id, <time> DESC, id DESC) and (state, <time>
 * DESC, id DESC) serve without sorting; a cursor is the row-value condition
 * (<time>, id) < (?, ?), a range start in those indexes. Results are always
 * read to the end (pgsql selects are asynchronous). Stored times are epoch
 * milliseconds. */
#include <stdatomic.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "gc_log.h"
#include "gc_store_read.h"

#define T_HISTORY "gcmon_history"
#define T_AGENTS "gcmon_agents"
#define T_ALERTS "gcmon_alerts"

/* Totals cache, shared by the threads of a process (C11 spinlock: the
 * critical sections copy one small entry). Entries are scoped, so readers of
 * different databases (mod_dbd per virtual host) never share one. */
#define CACHE_SLOTS 128
#define CACHE_KEY 192
#define CACHE_TTL apr_time_from_sec(60)

typedef struct {
    const void *scope;
    char key[CACHE_KEY];            /* "" = free */
    apr_int64_t max_id, min_id, min_at;
    long total;
    apr_time_t counted_at;          /* last full count */
} centry_t;

static centry_t cache[CACHE_SLOTS];
static atomic_flag cache_lock = ATOMIC_FLAG_INIT;

struct gc_reader {
    apr_pool_t *pool;
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h;
    int pgsql;
    const void *scope;
    apr_hash_t *stmts;              /* label → apr_dbd_prepared_t * */
};

gc_reader_t *gc_reader_create(apr_pool_t *p, const apr_dbd_driver_t *driver,
                              apr_dbd_t *handle, const void *scope)
{
    gc_reader_t *rd = apr_pcalloc(p, sizeof(*rd));

    rd->scope = scope;
    rd->pool = p;
    rd->drv = driver;
    rd->h = handle;
    rd->pgsql = !strcmp(apr_dbd_name(driver), "pgsql");
    rd->stmts = apr_hash_make(p);
    return rd;
}

/* ---------------------------------------------------------------- helpers */

/* Milliseconds for a bound: ceil(t / 1000), so that "at least t" and "before
 * t" hold for millisecond rows compared with microsecond bounds. */
static apr_int64_t ms_ceil(apr_time_t t)
{
    apr_int64_t q = t / 1000;
    return (t % 1000 > 0) ? q + 1 : q;
}

static apr_time_t from_ms(apr_int64_t ms)
{
    return (apr_time_t)ms * 1000;
}

/* Bound arguments for apr_dbd_pbselect: strings by value, integers by address. */
typedef struct {
    const void *v[12];
    apr_int64_t i64[8];
    int iv[4];
    int n, ni, nint;
} args_t;

static void arg_str(args_t *a, const char *s)
{
    a->v[a->n++] = s;
}

static void arg_i64(args_t *a, apr_int64_t x)
{
    a->i64[a->ni] = x;
    a->v[a->n++] = &a->i64[a->ni++];
}

static void arg_int(args_t *a, int x)
{
    a->iv[a->nint] = x;
    a->v[a->n++] = &a->iv[a->nint++];
}

static const char *dbd_err(gc_reader_t *rd, apr_pool_t *p, const char *what, int rv)
{
    const char *e = apr_dbd_error(rd->drv, rd->h, rv);
    return apr_psprintf(p, "%s: %s", what, e ? e : "unknown database error");
}

/* The statement for label, prepared from sql on first use. */
static apr_status_t prepared(gc_reader_t *rd, apr_pool_t *p, const char *label,
                             const char *sql, apr_dbd_prepared_t **out, const char **err)
{
    apr_dbd_prepared_t *st = apr_hash_get(rd->stmts, label, APR_HASH_KEY_STRING);
    int rv;

    if (st) {
        *out = st;
        return APR_SUCCESS;
    }
    rv = apr_dbd_prepare(rd->drv, rd->pool, rd->h, sql, label, &st);
    if (rv != 0 || !st) {
        *err = dbd_err(rd, p, apr_psprintf(p, "prepare %s", label), rv);
        gc_log(GC_LOG_MARK, GC_LOG_ERR, APR_EGENERAL, GCMON_LOGNO(600) "%s", *err);
        return APR_EGENERAL;
    }
    apr_hash_set(rd->stmts, apr_pstrdup(rd->pool, label), APR_HASH_KEY_STRING, st);
    *out = st;
    return APR_SUCCESS;
}

/* Run a prepared select. A statement that fails is prepared again and run
 * once more: the sqlite3 driver uses the legacy sqlite3_prepare, whose
 * statements expire for good ("database schema has changed") whenever any
 * connection changes the schema (a migration in another process, ANALYZE).
 * (pgsql re-plans by itself, and a label cannot be prepared twice there.) */
static apr_status_t run_select(gc_reader_t *rd, apr_pool_t *p, const char *label,
                               const char *sql, args_t *a, apr_dbd_results_t **res,
                               const char **err)
{
    apr_dbd_prepared_t *st;
    int rv, attempt;

    for (attempt = 0; attempt < (rd->pgsql ? 1 : 2); attempt++) {
        if (prepared(rd, p, label, sql, &st, err) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        *res = NULL;
        rv = apr_dbd_pbselect(rd->drv, p, rd->h, res, st, 0, a->v);
        if (rv == 0) {
            return APR_SUCCESS;
        }
        *err = dbd_err(rd, p, label, rv);
        if (attempt == 0) {
            gc_log(GC_LOG_MARK, GC_LOG_DEBUG, APR_EGENERAL,
                   GCMON_LOGNO(601) "%s; preparing the statement again", *err);
        }
        apr_hash_set(rd->stmts, label, APR_HASH_KEY_STRING, NULL);
    }
    return APR_EGENERAL;
}

/* NULL for SQL NULL. sqlite3 values are already copies in the select's pool;
 * pgsql values point into a PGresult that the driver clears when the rows are
 * read to the end, so they are copied. */
static const char *col_str(gc_reader_t *rd, apr_pool_t *p, apr_dbd_row_t *row, int n)
{
    char *s = NULL;
    if (apr_dbd_datum_get(rd->drv, row, n, APR_DBD_TYPE_STRING, &s) != APR_SUCCESS || !s) {
        return NULL;
    }
    return rd->pgsql ? apr_pstrdup(p, s) : s;
}

/* 0 for NULL. */
static apr_int64_t col_i64(gc_reader_t *rd, apr_dbd_row_t *row, int n, int *is_null)
{
    apr_int64_t v = 0;
    int null = apr_dbd_datum_get(rd->drv, row, n, APR_DBD_TYPE_LONGLONG, &v) != APR_SUCCESS;

    if (is_null) {
        *is_null = null;
    }
    return null ? 0 : v;
}

/* ---------------------------------------------------------------- schema */

apr_status_t gc_read_schema_version(gc_reader_t *rd, apr_pool_t *p, int *version)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row;
    int rv;

    *version = 0;
    /* Not a cached statement: the table may not exist yet, and this runs once
     * per connection. */
    rv = apr_dbd_select(rd->drv, p, rd->h, &res, "SELECT MAX(version) FROM gcmon_schema", 1);
    if (rv != 0) {
        return APR_EGENERAL;
    }
    for (row = NULL; apr_dbd_get_row(rd->drv, p, res, &row, -1) == 0;) {
        *version = (int)col_i64(rd, row, 0, NULL);
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------- listings */

enum {
    F_USER = 1, F_STATE = 2, F_FROM = 4, F_TO = 8, F_CURSOR = 16, F_OFFSET = 32
};

typedef struct {
    char tag;                       /* label letter */
    const char *table;
    const char *tcol;               /* the time column paging orders by */
    const char *cols;               /* selected columns */
} listing_t;

static const listing_t L_HISTORY = {
    'h', T_HISTORY, "event_at",
    "id, user_id, user_name, state, previous_state, presence, routing_status, event_at, "
    "ingested_at, source"
};

static const listing_t L_ALERTS = {
    'a', T_ALERTS, "raised_at",
    "id, user_id, user_name, state, threshold_seconds, raised_at, cleared_at, "
    "delivery_status, delivery_attempts, delivery_last_error"
};

static unsigned filter_mask(const gc_query_t *q)
{
    return (q->user_id ? F_USER : 0u) | (q->state ? F_STATE : 0u)
           | (q->has_from ? F_FROM : 0u) | (q->has_to ? F_TO : 0u);
}

/* " AND …" conditions of the filter (not cursor/offset), binding into a. */
static const char *filter_sql(apr_pool_t *p, const listing_t *l, unsigned mask,
                              const gc_query_t *q, args_t *a)
{
    const char *w = "";

    if (mask & F_USER) {
        w = apr_pstrcat(p, w, " AND user_id = %s", NULL);
        arg_str(a, q->user_id);
    }
    if (mask & F_STATE) {
        w = apr_pstrcat(p, w, " AND state = %s", NULL);
        arg_str(a, q->state);
    }
    if (mask & F_FROM) {
        w = apr_pstrcat(p, w, " AND ", l->tcol, " >= %lld", NULL);
        arg_i64(a, ms_ceil(q->from));
    }
    if (mask & F_TO) {
        w = apr_pstrcat(p, w, " AND ", l->tcol, " < %lld", NULL);
        arg_i64(a, ms_ceil(q->to));
    }
    return w;
}

/* "WHERE 1=1 AND x" reads badly in logs; turn the first " AND " into " WHERE ". */
static const char *where(apr_pool_t *p, const char *conds)
{
    return *conds ? apr_pstrcat(p, " WHERE", conds + 4, NULL) : "";
}

static unsigned cache_index(const char *key)
{
    unsigned h = 2166136261u;
    const unsigned char *k;

    for (k = (const unsigned char *)key; *k; k++) {
        h = (h ^ *k) * 16777619u;
    }
    return h % CACHE_SLOTS;
}

/* Copy the entry for (scope, key) into *out; 0 when there is none. */
static int cache_get(const void *scope, const char *key, centry_t *out)
{
    centry_t *ce = &cache[cache_index(key)];
    int hit;

    while (atomic_flag_test_and_set_explicit(&cache_lock, memory_order_acquire)) {
    }
    hit = ce->scope == scope && !strcmp(ce->key, key);
    if (hit) {
        *out = *ce;
    }
    atomic_flag_clear_explicit(&cache_lock, memory_order_release);
    return hit;
}

static void cache_put(const centry_t *in)
{
    centry_t *ce = &cache[cache_index(in->key)];

    while (atomic_flag_test_and_set_explicit(&cache_lock, memory_order_acquire)) {
    }
    *ce = *in;
    atomic_flag_clear_explicit(&cache_lock, memory_order_release);
}

/* Total rows of listing l matching q's filter (see gc_read_history): a full
 * COUNT costs ~10-30 ms at a million rows, so it is cached under a key of the
 * table's state — max(id), min(id), min(time) — which one cheap statement
 * reads on every request. Only new rows (ids above the cached max; ids only
 * grow) → they alone are counted. The oldest rows gone (retention) or the
 * entry older than CACHE_TTL → full count. */
static apr_status_t listing_total(gc_reader_t *rd, apr_pool_t *p, const listing_t *l,
                                  const gc_query_t *q, long *total, const char **err)
{
    unsigned mask = filter_mask(q);
    const char *key = apr_psprintf(p, "%c|%x|%s|%s|%" APR_INT64_T_FMT "|%" APR_INT64_T_FMT,
                                   l->tag, mask, q->user_id ? q->user_id : "",
                                   q->state ? q->state : "",
                                   (apr_int64_t)(q->has_from ? q->from : 0),
                                   (apr_int64_t)(q->has_to ? q->to : 0));
    int cacheable = strlen(key) < CACHE_KEY;
    apr_time_t now = apr_time_now();
    apr_dbd_results_t *res;
    apr_dbd_row_t *row;
    apr_int64_t max_id = 0, min_id = 0, min_at = 0, n = 0;
    const char *sql;
    centry_t ce;
    args_t a;

    memset(&a, 0, sizeof(a));
    if (cacheable && cache_get(rd->scope, key, &ce) && now - ce.counted_at < CACHE_TTL) {
        /* Has the table changed since? Three index end-points. */
        sql = apr_psprintf(p, "SELECT (SELECT max(id) FROM %s), (SELECT min(id) FROM %s), "
                              "(SELECT min(%s) FROM %s)", l->table, l->table, l->tcol,
                           l->table);
        if (run_select(rd, p, apr_psprintf(p, "gcr_%c_v", l->tag), sql, &a, &res, err)
            != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        for (row = NULL; apr_dbd_get_row(rd->drv, p, res, &row, -1) == 0;) {
            max_id = col_i64(rd, row, 0, NULL);
            min_id = col_i64(rd, row, 1, NULL);
            min_at = col_i64(rd, row, 2, NULL);
        }
        if (max_id == ce.max_id && min_id == ce.min_id && min_at == ce.min_at) {
            *total = ce.total;
            return APR_SUCCESS;
        }
        if (min_id == ce.min_id && min_at == ce.min_at && max_id > ce.max_id) {
            /* Only new rows: count those, by id range (the rowid on SQLite). */
            args_t b;
            const char *conds;

            memset(&b, 0, sizeof(b));
            arg_i64(&b, ce.max_id);
            arg_i64(&b, max_id);
            conds = filter_sql(p, l, mask, q, &b);
            sql = apr_pstrcat(p, "SELECT count(*) FROM ", l->table,
                              rd->pgsql ? "" : " NOT INDEXED",
                              " WHERE id > %lld AND id <= %lld", conds, NULL);
            if (run_select(rd, p, apr_psprintf(p, "gcr_%c_i%x", l->tag, mask), sql, &b, &res,
                           err) != APR_SUCCESS) {
                return APR_EGENERAL;
            }
            for (row = NULL; apr_dbd_get_row(rd->drv, p, res, &row, -1) == 0;) {
                n = col_i64(rd, row, 0, NULL);
            }
            ce.total += (long)n;
            ce.max_id = max_id;
            cache_put(&ce);
            *total = ce.total;
            return APR_SUCCESS;
        }
    }
    /* Full count, with the key in the same statement (one snapshot). */
    sql = apr_pstrcat(p, "SELECT (SELECT max(id) FROM ", l->table, "), (SELECT min(id) FROM ",
                      l->table, "), (SELECT min(", l->tcol, ") FROM ", l->table,
                      "), (SELECT count(*) FROM ", l->table,
                      where(p, filter_sql(p, l, mask, q, &a)), ")", NULL);
    if (run_select(rd, p, apr_psprintf(p, "gcr_%c_c%x", l->tag, mask), sql, &a, &res, err)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (row = NULL; apr_dbd_get_row(rd->drv, p, res, &row, -1) == 0;) {
        max_id = col_i64(rd, row, 0, NULL);
        min_id = col_i64(rd, row, 1, NULL);
        min_at = col_i64(rd, row, 2, NULL);
        n = col_i64(rd, row, 3, NULL);
    }
    *total = (long)n;
    if (cacheable) {
        memset(&ce, 0, sizeof(ce));
        ce.scope = rd->scope;
        apr_cpystrn(ce.key, key, CACHE_KEY);
        ce.max_id = max_id;
        ce.min_id = min_id;
        ce.min_at = min_at;
        ce.total = (long)n;
        ce.counted_at = now;
        cache_put(&ce);
    }
    return APR_SUCCESS;
}

typedef void row_fn(gc_reader_t *rd, apr_pool_t *p, apr_dbd_row_t *row, void *out);

static apr_status_t listing_page(gc_reader_t *rd, apr_pool_t *p, const listing_t *l,
                                 const gc_query_t *q, row_fn *fill, size_t row_size,
                                 gc_page_t *out, const char **err)
{
    unsigned mask = filter_mask(q) | (q->has_cursor ? F_CURSOR : 0u)
                    | (!q->has_cursor && q->offset > 0 ? F_OFFSET : 0u);
    apr_dbd_results_t *res;
    apr_dbd_row_t *row;
    const char *conds, *sql;
    args_t a;
    int got = 0;

    memset(out, 0, sizeof(*out));
    if (listing_total(rd, p, l, q, &out->total, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    memset(&a, 0, sizeof(a));
    conds = filter_sql(p, l, mask, q, &a);
    if (mask & F_CURSOR) {
        conds = apr_pstrcat(p, conds, " AND (", l->tcol, ", id) < (%lld, %lld)", NULL);
        arg_i64(&a, q->cursor.at);
        arg_i64(&a, q->cursor.id);
    }
    sql = apr_pstrcat(p, "SELECT ", l->cols, " FROM ", l->table, where(p, conds),
                      " ORDER BY ", l->tcol, " DESC, id DESC LIMIT %d",
                      (mask & F_OFFSET) ? " OFFSET %d" : "", NULL);
    arg_int(&a, q->limit + 1);
    if (mask & F_OFFSET) {
        arg_int(&a, (int)q->offset);
    }
    if (run_select(rd, p, apr_psprintf(p, "gcr_%c_p%x", l->tag, mask), sql, &a, &res, err)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    out->rows = apr_array_make(p, q->limit + 1, (int)row_size);
    for (row = NULL; apr_dbd_get_row(rd->drv, p, res, &row, -1) == 0;) {
        if (got++ < q->limit) {
            fill(rd, p, row, apr_array_push(out->rows));
        }
        else {
            out->has_more = 1;
        }
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------- history */

static void history_row(gc_reader_t *rd, apr_pool_t *p, apr_dbd_row_t *row, void *out)
{
    gc_history_row_t *h = out;

    h->id = col_i64(rd, row, 0, NULL);
    h->user_id = col_str(rd, p, row, 1);
    h->user_name = col_str(rd, p, row, 2);
    h->state = col_str(rd, p, row, 3);
    h->previous_state = col_str(rd, p, row, 4);
    h->presence = col_str(rd, p, row, 5);
    h->routing_status = col_str(rd, p, row, 6);
    h->event_at = from_ms(col_i64(rd, row, 7, NULL));
    h->ingested_at = from_ms(col_i64(rd, row, 8, NULL));
    h->source = col_str(rd, p, row, 9);
}

apr_status_t gc_read_history(gc_reader_t *rd, apr_pool_t *p, const gc_query_t *q,
                             gc_page_t *out, const char **err)
{
    apr_status_t rv = listing_page(rd, p, &L_HISTORY, q, history_row,
                                   sizeof(gc_history_row_t), out, err);

    if (rv == APR_SUCCESS && out->has_more) {
        const gc_history_row_t *last = &APR_ARRAY_IDX(out->rows, out->rows->nelts - 1,
                                                      gc_history_row_t);
        out->next.at = last->event_at / 1000;
        out->next.id = last->id;
    }
    return rv;
}

/* ---------------------------------------------------------------- alerts */

static void alert_row(gc_reader_t *rd, apr_pool_t *p, apr_dbd_row_t *row, void *out)
{
    gc_alert_row_t *a = out;

    a->id = col_i64(rd, row, 0, NULL);
    a->user_id = col_str(rd, p, row, 1);
    a->user_name = col_str(rd, p, row, 2);
    a->state = col_str(rd, p, row, 3);
    a->threshold_seconds = (long)col_i64(rd, row, 4, NULL);
    a->raised_at = from_ms(col_i64(rd, row, 5, NULL));
    a->cleared_at = from_ms(col_i64(rd, row, 6, NULL));
    a->delivery_status = col_str(rd, p, row, 7);
    a->delivery_attempts = (int)col_i64(rd, row, 8, NULL);
    a->delivery_last_error = col_str(rd, p, row, 9);
}

apr_status_t gc_read_alerts(gc_reader_t *rd, apr_pool_t *p, const gc_query_t *q,
                            gc_page_t *out, const char **err)
{
    apr_status_t rv = listing_page(rd, p, &L_ALERTS, q, alert_row, sizeof(gc_alert_row_t),
                                   out, err);

    if (rv == APR_SUCCESS && out->has_more) {
        const gc_alert_row_t *last = &APR_ARRAY_IDX(out->rows, out->rows->nelts - 1,
                                                    gc_alert_row_t);
        out->next.at = last->raised_at / 1000;
        out->next.id = last->id;
    }
    return rv;
}

/* ---------------------------------------------------------------- board */

apr_status_t gc_read_board(gc_reader_t *rd, apr_pool_t *p, const char *user_id,
                           const char *state, const char *queue_id,
                           apr_array_header_t **rows, const char **err)
{
    unsigned mask = (user_id ? 1u : 0u) | (state ? 2u : 0u) | (queue_id ? 4u : 0u);
    apr_dbd_results_t *res;
    apr_dbd_row_t *row;
    apr_hash_t *alerts = NULL;
    const char *conds = "", *sql;
    args_t a;

    /* Open alerts first (few): user id → newest open alert. */
    memset(&a, 0, sizeof(a));
    if (user_id) {
        arg_str(&a, user_id);
    }
    sql = apr_pstrcat(p, "SELECT user_id, id, raised_at, threshold_seconds FROM ", T_ALERTS,
                      " WHERE cleared_at IS NULL", user_id ? " AND user_id = %s" : "",
                      " ORDER BY id", NULL);
    if (run_select(rd, p, user_id ? "gcr_b_a1" : "gcr_b_a0", sql, &a, &res, err)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (row = NULL; apr_dbd_get_row(rd->drv, p, res, &row, -1) == 0;) {
        gc_board_row_t *al = apr_pcalloc(p, sizeof(*al));
        const char *uid = col_str(rd, p, row, 0);

        if (!uid) {
            continue;
        }
        al->alert_id = col_i64(rd, row, 1, NULL);
        al->alert_raised_at = from_ms(col_i64(rd, row, 2, NULL));
        al->alert_threshold_seconds = (long)col_i64(rd, row, 3, NULL);
        if (!alerts) {
            alerts = apr_hash_make(p);
        }
        apr_hash_set(alerts, uid, APR_HASH_KEY_STRING, al);   /* newest wins */
    }

    memset(&a, 0, sizeof(a));
    if (user_id) {
        conds = apr_pstrcat(p, conds, " AND user_id = %s", NULL);
        arg_str(&a, user_id);
    }
    if (state) {
        conds = apr_pstrcat(p, conds, " AND state = %s", NULL);
        arg_str(&a, state);
    }
    if (queue_id) {
        /* queue_ids is a JSON array of ids of [A-Za-z0-9-_]: match the quoted id. */
        conds = apr_pstrcat(p, conds, rd->pgsql ? " AND strpos(queue_ids, %s) > 0"
                                                : " AND instr(queue_ids, %s) > 0", NULL);
        arg_str(&a, apr_pstrcat(p, "\"", queue_id, "\"", NULL));
    }
    sql = apr_pstrcat(p, "SELECT user_id, user_name, state, presence, routing_status, "
                         "queue_ids, since FROM ", T_AGENTS, where(p, conds),
                      " ORDER BY user_id", NULL);
    if (run_select(rd, p, apr_psprintf(p, "gcr_b_%x", mask), sql, &a, &res, err)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    *rows = apr_array_make(p, 64, sizeof(gc_board_row_t));
    for (row = NULL; apr_dbd_get_row(rd->drv, p, res, &row, -1) == 0;) {
        gc_board_row_t *b = apr_array_push(*rows);
        const gc_board_row_t *al;

        b->user_id = col_str(rd, p, row, 0);
        b->user_name = col_str(rd, p, row, 1);
        b->state = col_str(rd, p, row, 2);
        b->presence = col_str(rd, p, row, 3);
        b->routing_status = col_str(rd, p, row, 4);
        b->queue_ids = col_str(rd, p, row, 5);
        b->since = from_ms(col_i64(rd, row, 6, NULL));
        b->alert_id = 0;
        b->alert_raised_at = 0;
        b->alert_threshold_seconds = 0;
        if (alerts && b->user_id
            && (al = apr_hash_get(alerts, b->user_id, APR_HASH_KEY_STRING))) {
            b->alert_id = al->alert_id;
            b->alert_raised_at = al->alert_raised_at;
            b->alert_threshold_seconds = al->alert_threshold_seconds;
        }
    }
    return APR_SUCCESS;
}
