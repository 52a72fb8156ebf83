/* gcmon store: the one paged-listing helper (gc_store_int.h) behind the
 * history, alerts and audit listings, and the process-wide totals cache.
 *
 * SQL is built per filter shape (which filters are present, cursor or
 * offset), run through the executor under a name naming that shape (so it is
 * prepared once per connection), and bound with typed values: no value is
 * ever spliced into SQL text. A page is ORDER BY <time> DESC, id DESC (or id
 * DESC) LIMIT n+1, which the listing's indexes serve without sorting; a
 * cursor is the row-value condition (<time>, id) < (?, ?) (or id < ?), a
 * range start in those indexes. Stored times are epoch milliseconds. */
#include <stdatomic.h>
#include <string.h>

#include <apr_strings.h>

#include "gc_store_int.h"

/* Bound arguments: strings by value, integers by address. */
typedef struct {
    const void *v[GC_LIST_MAX_FILTERS + 4];
    apr_int64_t i64[GC_LIST_MAX_FILTERS + 4];
    int iv[2];
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

/* Milliseconds for a bound: ceil(t / 1000), so that "at least t" and "before
 * t" hold for millisecond rows compared with microsecond bounds. */
static apr_int64_t ms_ceil(apr_time_t t)
{
    apr_int64_t q = t / 1000;
    return (t % 1000 > 0) ? q + 1 : q;
}

/* ---------------------------------------------------------------- filters */

/* The value q gives the filter field (string or time): 0 when it is unset. */
static int field_value(const gc_query_t *q, unsigned field, const char **str, apr_int64_t *ms)
{
    *str = NULL;
    *ms = 0;
    switch (field) {
    case GC_Q_USER_ID: return (*str = q->user_id) != NULL;
    case GC_Q_STATE: return (*str = q->state) != NULL;
    case GC_Q_QUEUE_ID: return (*str = q->queue_id) != NULL;
    case GC_Q_ACTOR: return (*str = q->actor) != NULL;
    case GC_Q_ACTION: return (*str = q->action) != NULL;
    case GC_Q_TARGET: return (*str = q->target) != NULL;
    case GC_Q_FROM: *ms = ms_ceil(q->from); return q->has_from;
    case GC_Q_TO: *ms = ms_ceil(q->to); return q->has_to;
    default: return 0;
    }
}

/* Bit i set: filters[i] of l applies to q. */
static unsigned filter_mask(const gc_listing_t *l, const gc_query_t *q)
{
    unsigned mask = 0;
    const char *str;
    apr_int64_t ms;
    int i;

    for (i = 0; i < GC_LIST_MAX_FILTERS && l->filters[i].field; i++) {
        if (field_value(q, l->filters[i].field, &str, &ms)) {
            mask |= 1u << i;
        }
    }
    return mask;
}

/* " AND …" conditions of the filters in mask, binding their values into a. */
static const char *filter_sql(apr_pool_t *p, const gc_listing_t *l, unsigned mask,
                              const gc_query_t *q, args_t *a)
{
    const char *w = "", *str;
    apr_int64_t ms;
    int i;

    for (i = 0; i < GC_LIST_MAX_FILTERS && l->filters[i].field; i++) {
        if (!(mask & (1u << i))) {
            continue;
        }
        field_value(q, l->filters[i].field, &str, &ms);
        w = apr_pstrcat(p, w, " AND ", l->filters[i].cond, NULL);
        if (str) {
            arg_str(a, str);
        }
        else {
            arg_i64(a, ms);
        }
    }
    return w;
}

/* "WHERE 1=1 AND x" reads badly in logs; turn the first " AND " into " WHERE ". */
static const char *where(apr_pool_t *p, const char *conds)
{
    return *conds ? apr_pstrcat(p, " WHERE", conds + 4, NULL) : "";
}

/* The totals-cache key of l's filter in q: the name, the mask and each value
 * with its length (values may hold any character). */
static const char *filter_key(apr_pool_t *p, const gc_listing_t *l, unsigned mask,
                              const gc_query_t *q)
{
    const char *key = apr_psprintf(p, "%s|%x", l->name, mask), *str;
    apr_int64_t ms;
    int i;

    for (i = 0; i < GC_LIST_MAX_FILTERS && l->filters[i].field; i++) {
        if (mask & (1u << i)) {
            field_value(q, l->filters[i].field, &str, &ms);
            key = str ? apr_psprintf(p, "%s|%" APR_SIZE_T_FMT ":%s", key, strlen(str), str)
                      : apr_psprintf(p, "%s|%" APR_INT64_T_FMT, key, ms);
        }
    }
    return key;
}

/* ---------------------------------------------------------------- totals cache */

/* Shared by the threads of a process (C11 spinlock: the critical sections
 * copy one small entry). Entries are scoped, so stores of different databases
 * (mod_dbd per virtual host) never share one. */
#define CACHE_SLOTS 128
#define CACHE_KEY 192
#define CACHE_TTL apr_time_from_sec(60)

typedef struct {
    const void *scope;
    char key[CACHE_KEY]; /* "" = free */
    apr_int64_t max_id, min_id, min_at;
    long total;
    apr_time_t counted_at; /* last full count */
} centry_t;

static centry_t cache[CACHE_SLOTS];
static atomic_flag cache_lock = ATOMIC_FLAG_INIT;

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

/* ---------------------------------------------------------------- totals */

/* A select of one row; its columns into v[0..n). */
static apr_status_t select_row(gc_store_t *s, apr_pool_t *p, const gc_stmt_t *st, args_t *a,
                               apr_int64_t *v, int n, const char **err)
{
    gc_rows_t r;
    int i;

    memset(v, 0, sizeof(*v) * (size_t)n);
    if (gc_store__select(s, p, st, a->v, &r, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    while (gc_store__next(&r)) {
        for (i = 0; i < n; i++) {
            v[i] = gc_store__int(&r, i);
        }
    }
    return APR_SUCCESS;
}

/* The column of the table's key that only grows old (the listing's time, or id). */
static const char *age_col(const gc_listing_t *l)
{
    return l->tcol ? l->tcol : "id";
}

/* The exact count, every time. */
static apr_status_t count_plain(gc_store_t *s, apr_pool_t *p, const gc_listing_t *l, unsigned mask,
                                const gc_query_t *q, long *total, const char **err)
{
    gc_stmt_t st;
    args_t a;
    apr_int64_t n;

    memset(&a, 0, sizeof(a));
    st.name = apr_psprintf(p, "%s.count.%x", l->name, mask);
    st.sql = apr_pstrcat(p, "SELECT count(*) FROM ", l->table,
                         where(p, filter_sql(p, l, mask, q, &a)), " LIMIT 1", NULL);
    st.pgsql = NULL;
    st.flags = 0;
    if (select_row(s, p, &st, &a, &n, 1, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    *total = (long)n;
    return APR_SUCCESS;
}

/* The table's key — max(id), min(id), min(time) — in v[0..3). */
static apr_status_t table_key(gc_store_t *s, apr_pool_t *p, const gc_listing_t *l, apr_int64_t *v,
                              const char **err)
{
    gc_stmt_t st;
    args_t a;

    memset(&a, 0, sizeof(a));
    st.name = apr_psprintf(p, "%s.total_key", l->name);
    st.sql = apr_psprintf(p,
                          "SELECT (SELECT max(id) FROM %s), (SELECT min(id) FROM %s), "
                          "(SELECT min(%s) FROM %s)",
                          l->table, l->table, age_col(l), l->table);
    st.pgsql = NULL;
    st.flags = 0;
    return select_row(s, p, &st, &a, v, 3, err);
}

/* The rows matching the filter among ids (from, to], by id range (the rowid
 * on SQLite, not an index that would have to be joined back). */
static apr_status_t count_new(gc_store_t *s, apr_pool_t *p, const gc_listing_t *l, unsigned mask,
                              const gc_query_t *q, apr_int64_t from, apr_int64_t to, apr_int64_t *n,
                              const char **err)
{
    gc_stmt_t st;
    args_t a;

    memset(&a, 0, sizeof(a));
    arg_i64(&a, from);
    arg_i64(&a, to);
    st.name = apr_psprintf(p, "%s.total_new.%x", l->name, mask);
    st.sql = apr_pstrcat(p, "SELECT count(*) FROM ", l->table,
                         s->dialect == GC_DB_PGSQL ? "" : " NOT INDEXED",
                         " WHERE id > %lld AND id <= %lld", filter_sql(p, l, mask, q, &a), NULL);
    st.pgsql = NULL;
    st.flags = 0;
    return select_row(s, p, &st, &a, n, 1, err);
}

/* A full count, with the table's key in the same statement (one snapshot):
 * v[0..3) the key, v[3] the count. */
static apr_status_t count_keyed(gc_store_t *s, apr_pool_t *p, const gc_listing_t *l, unsigned mask,
                                const gc_query_t *q, apr_int64_t *v, const char **err)
{
    gc_stmt_t st;
    args_t a;

    memset(&a, 0, sizeof(a));
    st.name = apr_psprintf(p, "%s.total.%x", l->name, mask);
    st.sql = apr_pstrcat(p, "SELECT (SELECT max(id) FROM ", l->table, "), (SELECT min(id) FROM ",
                         l->table, "), (SELECT min(", age_col(l), ") FROM ", l->table,
                         "), (SELECT count(*) FROM ", l->table,
                         where(p, filter_sql(p, l, mask, q, &a)), ")", NULL);
    st.pgsql = NULL;
    st.flags = 0;
    return select_row(s, p, &st, &a, v, 4, err);
}

/* Total rows of listing l matching q's filter (see gc_store_read_history): a full
 * COUNT costs ~10-30 ms at a million rows, so it is cached under a key of the
 * table's state — max(id), min(id), min(time) — which one cheap statement
 * reads on every request. Only new rows (ids above the cached max; ids only
 * grow) → they alone are counted. The oldest rows gone (retention) or the
 * entry older than CACHE_TTL → full count. */
static apr_status_t count_cached(gc_store_t *s, apr_pool_t *p, const gc_listing_t *l, unsigned mask,
                                 const gc_query_t *q, long *total, const char **err)
{
    const char *key = filter_key(p, l, mask, q);
    int cacheable = s->scope && strlen(key) < CACHE_KEY;
    apr_time_t now = apr_time_now();
    apr_int64_t v[4], n = 0;
    centry_t ce;

    if (cacheable && cache_get(s->scope, key, &ce) && now - ce.counted_at < CACHE_TTL) {
        /* Has the table changed since? Three index end-points. */
        if (table_key(s, p, l, v, err) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (v[0] == ce.max_id && v[1] == ce.min_id && v[2] == ce.min_at) {
            *total = ce.total;
            return APR_SUCCESS;
        }
        if (v[1] == ce.min_id && v[2] == ce.min_at && v[0] > ce.max_id) {
            if (count_new(s, p, l, mask, q, ce.max_id, v[0], &n, err) != APR_SUCCESS) {
                return APR_EGENERAL;
            }
            ce.total += (long)n;
            ce.max_id = v[0];
            cache_put(&ce);
            *total = ce.total;
            return APR_SUCCESS;
        }
    }
    if (count_keyed(s, p, l, mask, q, v, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    *total = (long)v[3];
    if (cacheable) {
        memset(&ce, 0, sizeof(ce));
        ce.scope = s->scope;
        apr_cpystrn(ce.key, key, CACHE_KEY);
        ce.max_id = v[0];
        ce.min_id = v[1];
        ce.min_at = v[2];
        ce.total = (long)v[3];
        ce.counted_at = now;
        cache_put(&ce);
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------- pages */

#define F_CURSOR (1u << GC_LIST_MAX_FILTERS)
#define F_OFFSET (1u << (GC_LIST_MAX_FILTERS + 1))

/* SELECT … LIMIT n+1 of the page, with its arguments in a. */
static void page_stmt(apr_pool_t *p, const gc_listing_t *l, unsigned mask, const gc_query_t *q,
                      gc_stmt_t *st, args_t *a)
{
    const char *conds = filter_sql(p, l, mask, q, a);

    if (mask & F_CURSOR) {
        if (l->tcol) {
            conds = apr_pstrcat(p, conds, " AND (", l->tcol, ", id) < (%lld, %lld)", NULL);
            arg_i64(a, q->cursor.at);
        }
        else {
            conds = apr_pstrcat(p, conds, " AND id < %lld", NULL);
        }
        arg_i64(a, q->cursor.id);
    }
    st->name = apr_psprintf(p, "%s.page.%x", l->name, mask);
    st->sql = apr_pstrcat(p, "SELECT ", l->cols, " FROM ", l->table, where(p, conds), " ORDER BY ",
                          l->tcol ? l->tcol : "", l->tcol ? " DESC, " : "", "id DESC LIMIT %d",
                          (mask & F_OFFSET) ? " OFFSET %d" : "", NULL);
    st->pgsql = NULL;
    st->flags = 0;
    arg_int(a, q->limit + 1);
    if (mask & F_OFFSET) {
        arg_int(a, (int)q->offset);
    }
}

apr_status_t gc_store__first(gc_store_t *s, apr_pool_t *p, const gc_stmt_t *st, const void **args,
                             gc_list_read_fn *read, void *out, size_t size, int *found,
                             const char **err)
{
    gc_rows_t rows;
    apr_status_t rv;

    *found = 0;
    memset(out, 0, size);
    if ((rv = gc_store__select(s, p, st, args, &rows, err)) != APR_SUCCESS) {
        return rv;
    }
    while (gc_store__next(&rows)) {
        if (!*found) {
            *found = 1;
            read(&rows, p, out);
        }
    }
    return APR_SUCCESS;
}

apr_status_t gc_store__list(gc_store_t *s, apr_pool_t *p, const gc_listing_t *l,
                            const gc_query_t *q, gc_page_t *out, const char **err)
{
    unsigned fmask = filter_mask(l, q);
    unsigned mask =
        fmask | (q->has_cursor ? F_CURSOR : 0u) | (!q->has_cursor && q->offset > 0 ? F_OFFSET : 0u);
    apr_status_t rv;
    gc_stmt_t st;
    gc_rows_t r;
    args_t a;
    int got = 0;

    memset(out, 0, sizeof(*out));
    rv = l->cached_total ? count_cached(s, p, l, fmask, q, &out->total, err)
                         : count_plain(s, p, l, fmask, q, &out->total, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    memset(&a, 0, sizeof(a));
    page_stmt(p, l, mask, q, &st, &a);
    if (gc_store__select(s, p, &st, a.v, &r, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    out->rows = apr_array_make(p, q->limit + 1, (int)l->row_size);
    while (gc_store__next(&r)) {
        if (got++ < q->limit) {
            l->read(&r, p, apr_array_push(out->rows));
        }
        else {
            out->has_more = 1;
        }
    }
    if (out->has_more && out->rows->nelts > 0) {
        l->position(out->rows->elts + (apr_size_t)(out->rows->nelts - 1) * l->row_size, &out->next);
    }
    return APR_SUCCESS;
}
