/* gcmon store: agent history and current state (write_batch), reads for the
 * API and tests, retention. */
#include <string.h>

#include <apr_strings.h>

#include "gc_log.h"
#include "gc_store_int.h"

/* write_batch's multi-row statements: a head, one row template repeated 64,
 * 16, 4 or 1 times (", "), a tail — a batch is written in the largest that
 * fit. Current rows are upserted; the WHERE keeps a writer whose view is
 * stale (an overlapping holder) from moving a row backwards — it then
 * affects fewer rows than it sent, which write_batch notices. */
#define BULK_SIZES 4
static const int bulk_rows[BULK_SIZES] = { 64, 16, 4, 1 };

#define REP2(x) x ", " x
#define REP4(x) REP2(REP2(x))
#define REP16(x) REP4(REP4(x))
#define REP64(x) REP4(REP16(x))
#define BULK(name, head, row, tail)                        \
    {                                                      \
        { name "*64", head REP64(row) tail, NULL, 0 },     \
            { name "*16", head REP16(row) tail, NULL, 0 }, \
            { name "*4", head REP4(row) tail, NULL, 0 },   \
        {                                                  \
            name "*1", head row tail, NULL, 0              \
        }                                                  \
    }

/* The current state of up to n agents (the LIMIT is the row count). */
#define READ_HEAD "SELECT user_id, state, event_at FROM gcmon_agents WHERE user_id IN ("
static const gc_stmt_t bulk_read[BULK_SIZES] = {
    { "history.read_current*64", READ_HEAD REP64("%s") ") LIMIT 64", NULL, 0 },
    { "history.read_current*16", READ_HEAD REP16("%s") ") LIMIT 16", NULL, 0 },
    { "history.read_current*4", READ_HEAD REP4("%s") ") LIMIT 4", NULL, 0 },
    { "history.read_current*1", READ_HEAD "%s) LIMIT 1", NULL, 0 },
};

/* History rows; a stream event has no name: take the current row's. */
static const gc_stmt_t bulk_history[BULK_SIZES] =
    BULK("history.insert",
         "INSERT INTO gcmon_history (user_id, user_name, state, previous_state, presence, "
         "presence_id, routing_status, event_at, ingested_at, source) VALUES ",
         "(%s, COALESCE(%s, (SELECT a.user_name FROM gcmon_agents a WHERE a.user_id = %s)), "
         "%s, %s, %s, %s, %s, %lld, %lld, %s)",
         " ON CONFLICT DO NOTHING");

#define AGENT_HEAD                                                    \
    "INSERT INTO gcmon_agents (user_id, user_name, state, presence, " \
    "presence_id, routing_status, queue_ids, since, event_at, updated_at, gen) VALUES "
#define AGENT_ROW "(%s, %s, %s, %s, %s, %s, %s, %lld, %lld, %lld, %lld)"

/* Current rows after a transition (since = the event). */
static const gc_stmt_t bulk_transition[BULK_SIZES] =
    BULK("history.current_transition", AGENT_HEAD, AGENT_ROW,
         " ON CONFLICT (user_id) DO UPDATE SET "
         "user_name = COALESCE(excluded.user_name, gcmon_agents.user_name), "
         "state = excluded.state, presence = excluded.presence, "
         "presence_id = excluded.presence_id, "
         "routing_status = COALESCE(excluded.routing_status, gcmon_agents.routing_status), "
         "queue_ids = COALESCE(excluded.queue_ids, gcmon_agents.queue_ids), "
         "since = excluded.since, event_at = excluded.event_at, "
         "updated_at = excluded.updated_at, gen = excluded.gen "
         "WHERE gcmon_agents.event_at <= excluded.event_at");

/* Current rows in the same state (since kept). */
static const gc_stmt_t bulk_refresh[BULK_SIZES] =
    BULK("history.current_refresh", AGENT_HEAD, AGENT_ROW,
         " ON CONFLICT (user_id) DO UPDATE SET "
         "user_name = COALESCE(excluded.user_name, gcmon_agents.user_name), "
         "presence = COALESCE(excluded.presence, gcmon_agents.presence), "
         "presence_id = COALESCE(excluded.presence_id, gcmon_agents.presence_id), "
         "routing_status = COALESCE(excluded.routing_status, gcmon_agents.routing_status), "
         "queue_ids = COALESCE(excluded.queue_ids, gcmon_agents.queue_ids), "
         "event_at = excluded.event_at, updated_at = excluded.updated_at, gen = excluded.gen "
         "WHERE gcmon_agents.state = excluded.state "
         "AND gcmon_agents.event_at <= excluded.event_at");

/* The baseline of SPEC §8 (gc_store_test_raw_insert). */
static const gc_stmt_t history_insert_raw = {
    "history.insert_raw",
    "INSERT INTO gcmon_history (user_id, user_name, state, previous_state, presence, "
    "presence_id, routing_status, event_at, ingested_at, source) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %lld, %lld, %s)",
    NULL, 0
};

/* A late event's neighbours in the history, and the relink of the next one. */
static const gc_stmt_t history_before = {
    "history.before",
    "SELECT state FROM gcmon_history WHERE user_id = %s AND event_at <= %lld "
    "ORDER BY event_at DESC LIMIT 1",
    NULL, 0
};
static const gc_stmt_t history_after = {
    "history.after",
    "SELECT id, state FROM gcmon_history WHERE user_id = %s AND event_at > %lld "
    "ORDER BY event_at ASC LIMIT 1",
    NULL, 0
};
static const gc_stmt_t history_relink = {
    "history.relink", "UPDATE gcmon_history SET previous_state = %s WHERE id = %lld", NULL, 0
};

static const gc_stmt_t agent_get = {
    "history.agent_get",
    "SELECT user_id, user_name, state, presence, presence_id, routing_status, "
    "queue_ids, since, event_at, updated_at FROM gcmon_agents WHERE user_id = %s LIMIT 1",
    NULL, 0
};

static const gc_stmt_t history_count_all = { "history.count_all",
                                             "SELECT COUNT(*) FROM gcmon_history LIMIT 1", NULL,
                                             0 };

static const gc_stmt_t history_count_user = {
    "history.count_user", "SELECT COUNT(*) FROM gcmon_history WHERE user_id = %s LIMIT 1", NULL, 0
};

static const gc_stmt_t history_prune = {
    "history.prune",
    "DELETE FROM gcmon_history WHERE id IN (SELECT id FROM gcmon_history "
    "WHERE event_at < %lld ORDER BY event_at LIMIT %d)",
    NULL, 0
};

/* ---- write_batch ----
 *
 * Every batch bumps the write epoch first (epoch_bump). Fast path: read the
 * current state of every agent the batch names that the cache lacks
 * (multi-row SELECT … IN), judge every event in order against a
 * batch-local overlay, then write all history rows and one current row per
 * agent with multi-row statements (64/16/4/1 rows each). Every statement
 * must affect exactly the rows it sent; if not (two states observed in one
 * millisecond, rows changed behind gcmon's back), the batch is rolled back
 * and redone one event at a time against what the database holds. Both paths
 * give the same rows. The overlay is merged into the cache only after
 * COMMIT. */

typedef enum {
    OV_ABSENT, /* no current row in the database */
    OV_VALID,  /* state/event_at are what the database holds */
    OV_REREAD  /* unknown (not read yet, or another writer moved it) */
} ov_status_e;

/* The batch-local view of one agent, and (fast path) what to write for it. */
typedef struct {
    const char *user_id;
    const char *state; /* judged against */
    apr_time_t event_at;
    ov_status_e st;
    int touched; /* 0, 1 = refreshed only, 2 = had a transition */
    apr_int64_t since_ms, event_ms;
    /* Accumulated over the batch like the SQL would: NULL = keep the stored value
     * (except presence/presence_id after a transition: set, even to NULL). */
    const char *user_name, *presence, *presence_id, *routing_status, *queue_ids;
} ov_ent_t;

typedef struct {
    const gc_agent_event_t *ev;
    const char *previous_state;
    const char *user_name;
    apr_int64_t event_ms;
} hist_row_t;

typedef struct {
    const gc_agent_event_t *evs;
    int n;
    const char *source;
    apr_int64_t ingested_ms;
    int fail_at; /* test hook: the nth row written fails */
    int writes;
    apr_pool_t *bp;           /* overlay and rows, per attempt */
    apr_hash_t *overlay;      /* user_id → ov_ent_t */
    apr_array_header_t *hist; /* hist_row_t */
    apr_array_header_t *cur;  /* ov_ent_t *, one per touched agent */
    apr_int64_t epoch;        /* the database's write epoch, bumped by this batch */
    int cache_ok;             /* nobody else wrote since this store's last batch */
    gc_store_batch_result_t res;
} batch_ctx_t;

#define HIST_COLS 11
#define AGENT_COLS 11

static void batch_reset(batch_ctx_t *b)
{
    apr_pool_clear(b->bp);
    b->overlay = apr_hash_make(b->bp);
    b->hist = apr_array_make(b->bp, 64, sizeof(hist_row_t));
    b->cur = apr_array_make(b->bp, 64, sizeof(ov_ent_t *));
    memset(&b->res, 0, sizeof(b->res));
    b->writes = 0;
}

/* Events that cannot be recorded (no user, no derivable state, no time) are
 * counted as stale: ignored like an out-of-date observation. */
static int recordable(const gc_agent_event_t *ev)
{
    return ev->user_id && *ev->user_id && ev->state && *ev->state && ev->event_at > 0;
}

/* Every batch first bumps the database's write epoch. On PostgreSQL that row
 * lock serialises concurrent writers for the whole transaction (sqlite3's
 * BEGIN IMMEDIATE already does); and an epoch that moved by more than this
 * bump since the store's last batch means another writer (an overlapping
 * holder) changed agents meanwhile: the cache is not trusted, and is dropped
 * after COMMIT. */
static apr_status_t epoch_bump(gc_store_t *s, batch_ctx_t *b, apr_pool_t *ip, const char **err)
{
    apr_status_t rv;

    if ((rv = gc_store__gen_bump(s, ip, &b->epoch, err)) != APR_SUCCESS) {
        return rv;
    }
    b->cache_ok = s->epoch_known && b->epoch == s->epoch + 1;
    return APR_SUCCESS;
}

/* The test hook's victim: the nth row binds NULL where NOT NULL is required. */
static int hook_fires(batch_ctx_t *b)
{
    return ++b->writes == b->fail_at;
}

static ov_ent_t *ov_new(batch_ctx_t *b, const char *user_id)
{
    ov_ent_t *o = apr_pcalloc(b->bp, sizeof(*o));
    o->user_id = user_id;
    o->st = OV_REREAD;
    apr_hash_set(b->overlay, user_id, APR_HASH_KEY_STRING, o);
    return o;
}

/* Read the current state of users[0..n) (all in the overlay, OV_REREAD) from
 * the database; those without a row become OV_ABSENT. */
static apr_status_t read_current(gc_store_t *s, batch_ctx_t *b, apr_pool_t *ip, ov_ent_t **users,
                                 int n, const char **err)
{
    int done = 0, k = 0, i;

    while (done < n) {
        int rows = bulk_rows[k];
        gc_rows_t r;
        const void **args;
        apr_status_t rv;

        if (n - done < rows) {
            k++;
            continue;
        }
        apr_pool_clear(ip);
        args = apr_palloc(ip, rows * sizeof(*args));
        for (i = 0; i < rows; i++) {
            args[i] = users[done + i]->user_id;
        }
        rv = gc_store__select(s, ip, &bulk_read[k], args, &r, err);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        while (gc_store__next(&r)) {
            const char *uid = gc_store__text(&r, ip, 0);
            ov_ent_t *o = uid ? apr_hash_get(b->overlay, uid, APR_HASH_KEY_STRING) : NULL;
            const char *state = gc_store__text(&r, b->bp, 1);
            if (o && state) {
                o->state = state;
                o->event_at = GC_FROM_MS(gc_store__int(&r, 2));
                o->st = OV_VALID;
            }
        }
        for (i = 0; i < rows; i++) {
            if (users[done + i]->st == OV_REREAD) {
                users[done + i]->st = OV_ABSENT;
            }
        }
        done += rows;
    }
    return APR_SUCCESS;
}

/* The overlay entry of an agent: from the cache when it can be trusted (fast
 * path), else read from the database now (slow path) or later (fast path,
 * left OV_REREAD for read_current). */
static apr_status_t current_of(gc_store_t *s, batch_ctx_t *b, apr_pool_t *ip, const char *user_id,
                               int read_db, ov_ent_t **out, const char **err)
{
    ov_ent_t *o = apr_hash_get(b->overlay, user_id, APR_HASH_KEY_STRING);

    if (!o) {
        gc_cache_ent_t *c =
            (b->cache_ok && !read_db) ? apr_hash_get(s->cache, user_id, APR_HASH_KEY_STRING) : NULL;
        o = ov_new(b, user_id);
        if (c && c->valid) {
            o->state = c->state;
            o->event_at = c->event_at;
            o->st = OV_VALID;
        }
    }
    *out = o;
    if (o->st == OV_REREAD && read_db) {
        return read_current(s, b, ip, &o, 1, err);
    }
    return APR_SUCCESS;
}

static void bind_hist(batch_ctx_t *b, const hist_row_t *h, const void **a)
{
    a[0] = hook_fires(b) ? NULL : h->ev->user_id;
    a[1] = h->user_name;
    a[2] = h->ev->user_id;
    a[3] = h->ev->state;
    a[4] = h->previous_state;
    a[5] = h->ev->presence;
    a[6] = h->ev->presence_id;
    a[7] = h->ev->routing_status;
    a[8] = &h->event_ms;
    a[9] = &b->ingested_ms;
    a[10] = b->source;
}

static void bind_agent(batch_ctx_t *b, const ov_ent_t *o, const void **a)
{
    a[0] = hook_fires(b) ? NULL : o->user_id;
    a[1] = o->user_name;
    a[2] = o->state;
    a[3] = o->presence;
    a[4] = o->presence_id;
    a[5] = o->routing_status;
    a[6] = o->queue_ids;
    a[7] = &o->since_ms;
    a[8] = &o->event_ms;
    a[9] = &b->ingested_ms;
    a[10] = &b->epoch;
}

/* Write rows[0..n) (hist_row_t for bulk_history, else ov_ent_t *) with the
 * multi-row statements of `set`. APR_EAGAIN when a statement affected fewer
 * rows than it sent. */
static apr_status_t write_rows(gc_store_t *s, batch_ctx_t *b, apr_pool_t *ip, const gc_stmt_t *set,
                               const apr_array_header_t *rows_arr, const char **err)
{
    int n = rows_arr->nelts, done = 0, k = 0, i;
    int hist = set == bulk_history, cols = hist ? HIST_COLS : AGENT_COLS;

    while (done < n) {
        int rows = bulk_rows[k], nrows = 0;
        const void **args;
        apr_status_t rv;

        if (n - done < rows) {
            k++;
            continue;
        }
        apr_pool_clear(ip);
        args = apr_palloc(ip, (apr_size_t)rows * cols * sizeof(*args));
        for (i = 0; i < rows; i++) {
            if (hist) {
                bind_hist(b, &APR_ARRAY_IDX(rows_arr, done + i, hist_row_t), args + i * cols);
            }
            else {
                bind_agent(b, APR_ARRAY_IDX(rows_arr, done + i, ov_ent_t *), args + i * cols);
            }
        }
        rv = gc_store__exec(s, ip, &set[k], args, &nrows, err);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (nrows != rows) {
            return APR_EAGAIN;
        }
        done += rows;
    }
    return APR_SUCCESS;
}

static int cmp_user(const void *a, const void *b)
{
    const ov_ent_t *x = *(ov_ent_t *const *)a, *y = *(ov_ent_t *const *)b;
    return strcmp(x->user_id, y->user_id);
}

/* Apply one judged event to the overlay entry (both paths). */
static void apply_transition(ov_ent_t *o, const gc_agent_event_t *ev, apr_int64_t ev_ms)
{
    o->user_name = ev->user_name ? ev->user_name : o->user_name;
    o->state = ev->state;
    o->presence = ev->presence;
    o->presence_id = ev->presence_id;
    o->routing_status = ev->routing_status ? ev->routing_status : o->routing_status;
    o->queue_ids = ev->queue_ids ? ev->queue_ids : o->queue_ids;
    o->since_ms = ev_ms;
    o->event_ms = ev_ms;
    o->event_at = GC_FROM_MS(ev_ms);
    o->st = OV_VALID;
}

static void apply_refresh(ov_ent_t *o, const gc_agent_event_t *ev, apr_int64_t ev_ms)
{
    o->user_name = ev->user_name ? ev->user_name : o->user_name;
    o->presence = ev->presence ? ev->presence : o->presence;
    o->presence_id = ev->presence_id ? ev->presence_id : o->presence_id;
    o->routing_status = ev->routing_status ? ev->routing_status : o->routing_status;
    o->queue_ids = ev->queue_ids ? ev->queue_ids : o->queue_ids;
    if (o->touched < 2 && !o->since_ms) {
        o->since_ms = ev_ms; /* only used if the row has vanished meanwhile */
    }
    o->event_ms = ev_ms;
    o->event_at = GC_FROM_MS(ev_ms);
}

static gc_ev_verdict_e judge(ov_ent_t *o, gc_agent_event_t *ev, apr_int64_t *ev_ms)
{
    gc_agent_current_t cur;

    /* Milliseconds are what the database keeps: judge in the same unit. */
    *ev_ms = GC_MS(ev->event_at);
    ev->event_at = GC_FROM_MS(*ev_ms);
    cur.state = o->state;
    cur.event_at = o->event_at;
    return gc_event_judge(o->st == OV_VALID ? &cur : NULL, ev);
}

/* A late event: older than the agent's current row (so it changes nothing
 * there), but around a reconnect notifications and resync snapshots arrive in
 * either order, and the state it reports may be missing from the history at its
 * time. It is placed there when the history has a row after it (the episode it
 * reports ended) and neither neighbour is already that state: inserted after
 * the row before it, the row after it now following it. Else it is stale.
 * Called for an event already counted stale: a placed one counts as a
 * transition instead. */
static apr_status_t late_event(gc_store_t *s, batch_ctx_t *b, apr_pool_t *ip,
                               const gc_agent_event_t *ev, apr_int64_t ev_ms, const char **err)
{
    const void *args[2];
    const char *before = NULL, *after = NULL;
    apr_int64_t after_id = 0;
    apr_array_header_t *one;
    hist_row_t *h;
    gc_rows_t r;
    apr_status_t rv;
    int found = 0;

    args[0] = ev->user_id;
    args[1] = &ev_ms;
    if ((rv = gc_store__select(s, ip, &history_before, args, &r, err)) != APR_SUCCESS) {
        return rv;
    }
    while (gc_store__next(&r)) {
        before = gc_store__text(&r, b->bp, 0);
    }
    if (before && !strcmp(before, ev->state)) {
        return APR_SUCCESS;
    }
    if ((rv = gc_store__select(s, ip, &history_after, args, &r, err)) != APR_SUCCESS) {
        return rv;
    }
    while (gc_store__next(&r)) {
        after_id = gc_store__int(&r, 0);
        after = gc_store__text(&r, b->bp, 1);
        found = 1;
    }
    if (!found || (after && !strcmp(after, ev->state))) {
        return APR_SUCCESS;
    }
    one = apr_array_make(b->bp, 1, sizeof(hist_row_t));
    h = apr_array_push(one);
    h->ev = ev;
    h->previous_state = before;
    h->user_name = ev->user_name;
    h->event_ms = ev_ms;
    rv = write_rows(s, b, ip, bulk_history, one, err);
    if (rv == APR_EAGAIN) {
        return APR_SUCCESS; /* a row holds that instant already */
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    args[0] = ev->state;
    args[1] = &after_id;
    if ((rv = gc_store__exec(s, ip, &history_relink, args, NULL, err)) == APR_SUCCESS) {
        b->res.transitions++;
        b->res.stale--;
    }
    return rv;
}

/* Judged stale with a current row to be older than: a candidate for late_event. */
static int late_candidate(const ov_ent_t *o, const gc_agent_event_t *ev)
{
    return o && o->st == OV_VALID && recordable(ev) && ev->event_at < o->event_at;
}

/* The stale events of the batch that are late: placed, or counted stale. */
static apr_status_t place_late(gc_store_t *s, batch_ctx_t *b, apr_pool_t *ip,
                               const apr_array_header_t *late, const char **err)
{
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; i < late->nelts && rv == APR_SUCCESS; i++) {
        const gc_agent_event_t *ev = APR_ARRAY_IDX(late, i, const gc_agent_event_t *);
        rv = late_event(s, b, ip, ev, GC_MS(ev->event_at), err);
    }
    return rv;
}

static apr_status_t batch_fast_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    batch_ctx_t *b = baton;
    apr_array_header_t *misses, *trans, *refr, *late;
    apr_pool_t *ip;
    apr_status_t rv;
    int i;

    batch_reset(b);
    if (apr_pool_create(&ip, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    if ((rv = epoch_bump(s, b, ip, err)) != APR_SUCCESS) {
        apr_pool_destroy(ip);
        return rv;
    }
    /* 1. The agents neither the overlay nor the cache knows: read them. */
    misses = apr_array_make(b->bp, 16, sizeof(ov_ent_t *));
    for (i = 0; i < b->n; i++) {
        ov_ent_t *o;
        if (!recordable(&b->evs[i])
            || apr_hash_get(b->overlay, b->evs[i].user_id, APR_HASH_KEY_STRING)) {
            continue;
        }
        current_of(s, b, ip, b->evs[i].user_id, 0, &o, err);
        if (o->st == OV_REREAD) {
            APR_ARRAY_PUSH(misses, ov_ent_t *) = o;
        }
    }
    rv = read_current(s, b, ip, (ov_ent_t **)misses->elts, misses->nelts, err);
    late = apr_array_make(b->bp, 4, sizeof(const gc_agent_event_t *));
    /* 2. Judge in order. */
    for (i = 0; i < b->n && rv == APR_SUCCESS; i++) {
        gc_agent_event_t ev = b->evs[i];
        apr_int64_t ev_ms;
        ov_ent_t *o;

        if (!recordable(&ev)) {
            b->res.stale++;
            continue;
        }
        o = apr_hash_get(b->overlay, ev.user_id, APR_HASH_KEY_STRING);
        switch (judge(o, &ev, &ev_ms)) {
        case GC_EV_TRANSITION: {
            hist_row_t *h = apr_array_push(b->hist);
            h->ev = &b->evs[i];
            h->previous_state = o->st == OV_VALID ? o->state : NULL;
            h->user_name = ev.user_name ? ev.user_name : o->user_name;
            h->event_ms = ev_ms;
            if (!o->touched) {
                APR_ARRAY_PUSH(b->cur, ov_ent_t *) = o;
            }
            o->touched = 2;
            apply_transition(o, &ev, ev_ms);
            b->res.transitions++;
            break;
        }
        case GC_EV_REFRESH:
            if (!o->touched) {
                APR_ARRAY_PUSH(b->cur, ov_ent_t *) = o;
                o->touched = 1;
            }
            apply_refresh(o, &ev, ev_ms);
            b->res.refreshed++;
            break;
        case GC_EV_DUPLICATE: b->res.duplicates++; break;
        case GC_EV_STALE:
        default:
            b->res.stale++;
            if (late_candidate(o, &ev)) {
                APR_ARRAY_PUSH(late, const gc_agent_event_t *) = &b->evs[i];
            }
            break;
        }
    }
    /* 3. History in event order, then current rows in user_id order (the
     * same lock order for every writer). */
    if (rv == APR_SUCCESS) {
        rv = write_rows(s, b, ip, bulk_history, b->hist, err);
    }
    if (rv == APR_SUCCESS) {
        qsort(b->cur->elts, b->cur->nelts, sizeof(ov_ent_t *), cmp_user);
        trans = apr_array_make(b->bp, b->cur->nelts, sizeof(ov_ent_t *));
        refr = apr_array_make(b->bp, 16, sizeof(ov_ent_t *));
        for (i = 0; i < b->cur->nelts; i++) {
            ov_ent_t *o = APR_ARRAY_IDX(b->cur, i, ov_ent_t *);
            APR_ARRAY_PUSH(o->touched == 2 ? trans : refr, ov_ent_t *) = o;
        }
        rv = write_rows(s, b, ip, bulk_transition, trans, err);
        if (rv == APR_SUCCESS) {
            rv = write_rows(s, b, ip, bulk_refresh, refr, err);
        }
    }
    /* 4. Late events, at their place in the history. */
    if (rv == APR_SUCCESS) {
        rv = place_late(s, b, ip, late, err);
    }
    apr_pool_destroy(ip);
    return rv;
}

/* One statement per event, every agent's state read from the database (not
 * the cache): whatever another writer stored is taken as found. */
static apr_status_t batch_slow_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    batch_ctx_t *b = baton;
    apr_array_header_t *one_h, *one_o;
    apr_pool_t *ip;
    apr_status_t rv = APR_SUCCESS;
    int i;

    batch_reset(b);
    if (apr_pool_create(&ip, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    if ((rv = epoch_bump(s, b, ip, err)) != APR_SUCCESS) {
        apr_pool_destroy(ip);
        return rv;
    }
    one_h = apr_array_make(b->bp, 1, sizeof(hist_row_t));
    one_o = apr_array_make(b->bp, 1, sizeof(ov_ent_t *));
    for (i = 0; i < b->n && rv == APR_SUCCESS; i++) {
        gc_agent_event_t ev = b->evs[i];
        apr_int64_t ev_ms;
        ov_ent_t *o;

        if (!recordable(&ev)) {
            b->res.stale++;
            continue;
        }
        if ((rv = current_of(s, b, ip, ev.user_id, 1, &o, err)) != APR_SUCCESS) {
            break;
        }
        switch (judge(o, &ev, &ev_ms)) {
        case GC_EV_TRANSITION: {
            hist_row_t h;
            ov_ent_t row;
            h.ev = &b->evs[i];
            h.previous_state = o->st == OV_VALID ? o->state : NULL;
            h.user_name = ev.user_name;
            h.event_ms = ev_ms;
            one_h->nelts = 0;
            *(hist_row_t *)apr_array_push(one_h) = h;
            rv = write_rows(s, b, ip, bulk_history, one_h, err);
            if (rv == APR_EAGAIN) {
                /* UNIQUE(user_id, event_at) holds a row for this instant: an
                 * overlapping holder stored it, or another state was observed
                 * at the same millisecond. The first row of an instant stays;
                 * the current row follows the latest observation (the WHERE
                 * still refuses to move it backwards). */
                rv = APR_SUCCESS;
                b->res.duplicates++;
            }
            else if (rv == APR_SUCCESS) {
                b->res.transitions++;
            }
            else {
                break;
            }
            memset(&row, 0, sizeof(row));
            row.user_id = o->user_id;
            apply_transition(&row, &ev, ev_ms);
            one_o->nelts = 0;
            APR_ARRAY_PUSH(one_o, ov_ent_t *) = &row;
            rv = write_rows(s, b, ip, bulk_transition, one_o, err);
            if (rv == APR_EAGAIN) {
                rv = APR_SUCCESS;
                o->st = OV_REREAD; /* the stored current row is newer */
            }
            else if (rv == APR_SUCCESS) {
                apply_transition(o, &ev, ev_ms);
            }
            break;
        }
        case GC_EV_REFRESH: {
            ov_ent_t row;
            memset(&row, 0, sizeof(row));
            row.user_id = o->user_id;
            row.state = o->state;
            apply_refresh(&row, &ev, ev_ms);
            one_o->nelts = 0;
            APR_ARRAY_PUSH(one_o, ov_ent_t *) = &row;
            rv = write_rows(s, b, ip, bulk_refresh, one_o, err);
            if (rv == APR_EAGAIN) {
                rv = APR_SUCCESS;
                b->res.stale++; /* the stored row moved on meanwhile */
                o->st = OV_REREAD;
            }
            else if (rv == APR_SUCCESS) {
                b->res.refreshed++;
                o->event_at = ev.event_at;
            }
            break;
        }
        case GC_EV_DUPLICATE: b->res.duplicates++; break;
        case GC_EV_STALE:
        default:
            b->res.stale++;
            if (late_candidate(o, &ev)) {
                rv = late_event(s, b, ip, &b->evs[i], ev_ms, err);
            }
            break;
        }
    }
    apr_pool_destroy(ip);
    return rv;
}

/* After COMMIT only: the overlay becomes the cache. */
static void cache_merge(gc_store_t *s, batch_ctx_t *b)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(b->bp, b->overlay); hi; hi = apr_hash_next(hi)) {
        const void *key;
        apr_ssize_t klen;
        void *val;
        ov_ent_t *o;
        gc_cache_ent_t *c;

        apr_hash_this(hi, &key, &klen, &val);
        o = val;
        c = apr_hash_get(s->cache, key, klen);
        if (o->st == OV_VALID) {
            if (!c) {
                c = apr_palloc(s->cache_pool, sizeof(*c));
                c->user_id = apr_pstrmemdup(s->cache_pool, key, klen);
                apr_hash_set(s->cache, c->user_id, klen, c);
            }
            c->state = gc_store__intern(s, o->state);
            c->event_at = o->event_at;
            c->valid = 1;
        }
        else if (c) {
            c->valid = 0; /* kept for reuse: the cache never outgrows the agents */
        }
    }
}

apr_status_t gc_store_write_batch(gc_store_t *s, apr_pool_t *p, const gc_agent_event_t *evs, int n,
                                  const char *source, apr_time_t ingested_at,
                                  gc_store_batch_result_t *res, const char **err)
{
    batch_ctx_t b;
    apr_pool_t *tp;
    apr_status_t rv = APR_EAGAIN;
    const char *e = NULL;

    memset(res, 0, sizeof(*res));
    *err = NULL;
    if (n <= 0) {
        return APR_SUCCESS;
    }
    if (!evs || !source) {
        *err = "write_batch: no events or no source";
        return APR_EINVAL;
    }
    if (apr_pool_create(&tp, p) != APR_SUCCESS) {
        *err = "out of memory";
        return APR_ENOMEM;
    }
    memset(&b, 0, sizeof(b));
    b.evs = evs;
    b.n = n;
    b.source = source;
    b.ingested_ms = GC_MS(ingested_at);
    b.fail_at = s->test_fail_write;
    s->test_fail_write = 0;
    if (apr_pool_create(&b.bp, tp) != APR_SUCCESS) {
        apr_pool_destroy(tp);
        *err = "out of memory";
        return APR_ENOMEM;
    }
    if (!s->test_force_slow) {
        rv = gc_store__tx(s, tp, batch_fast_tx, &b, &e);
    }
    if (rv == APR_EAGAIN) {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
               GCMON_LOGNO(417) "store: batch of %d overlaps another writer's rows; "
                                "writing it event by event",
               n);
        rv = gc_store__tx(s, tp, batch_slow_tx, &b, &e);
    }
    if (rv == APR_SUCCESS) {
        if (!b.cache_ok) {
            gc_store_cache_reset(s);
        }
        cache_merge(s, &b);
        s->epoch = b.epoch;
        s->epoch_known = 1;
        *res = b.res;
        gc_log(GC_LOG_MARK, GC_LOG_TRACE1, 0,
               GCMON_LOGNO(416) "store: batch of %d (%s): %d transitions, %d refreshed, "
                                "%d duplicates, %d stale",
               n, source, b.res.transitions, b.res.refreshed, b.res.duplicates, b.res.stale);
    }
    else {
        rv = APR_EGENERAL;
        *err = apr_pstrcat(p, "write batch rolled back: ", e ? e : "database error", NULL);
        gc_log(GC_LOG_MARK, GC_LOG_INFO, rv, GCMON_LOGNO(414) "store: %s", *err);
    }
    apr_pool_destroy(tp);
    return rv;
}

typedef struct {
    const gc_agent_event_t *evs;
    int n;
    const char *source;
    apr_int64_t ingested_ms;
} raw_ctx_t;

static apr_status_t raw_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    raw_ctx_t *r = baton;
    apr_pool_t *ip;
    apr_status_t rv = APR_SUCCESS;
    int i;

    if (apr_pool_create(&ip, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    for (i = 0; i < r->n && rv == APR_SUCCESS; i++) {
        const gc_agent_event_t *ev = &r->evs[i];
        apr_int64_t ev_ms = GC_MS(ev->event_at);
        const void *h[10];

        apr_pool_clear(ip);
        h[0] = ev->user_id;
        h[1] = ev->user_name;
        h[2] = ev->state;
        h[3] = NULL;
        h[4] = ev->presence;
        h[5] = ev->presence_id;
        h[6] = ev->routing_status;
        h[7] = &ev_ms;
        h[8] = &r->ingested_ms;
        h[9] = r->source;
        rv = gc_store__exec(s, ip, &history_insert_raw, h, NULL, err);
    }
    apr_pool_destroy(ip);
    return rv;
}

apr_status_t gc_store_test_raw_insert(gc_store_t *s, apr_pool_t *p, const gc_agent_event_t *evs,
                                      int n, const char *source, apr_time_t ingested_at,
                                      const char **err)
{
    raw_ctx_t r;
    apr_pool_t *tp;
    apr_status_t rv;
    const char *e = NULL;

    *err = NULL;
    if (apr_pool_create(&tp, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    r.evs = evs;
    r.n = n;
    r.source = source;
    r.ingested_ms = GC_MS(ingested_at);
    rv = gc_store__tx(s, tp, raw_tx, &r, &e);
    if (rv != APR_SUCCESS) {
        *err = apr_pstrdup(p, e ? e : "database error");
    }
    apr_pool_destroy(tp);
    return rv;
}

/* ---- reads ---- */

apr_status_t gc_store_agent_get(gc_store_t *s, apr_pool_t *p, const char *user_id,
                                gc_agent_row_t **out)
{
    apr_pool_t *tp;
    gc_rows_t r;
    apr_status_t rv;
    const char *err = NULL;
    const void *args[1];

    *out = NULL;
    if (!user_id) {
        return APR_EINVAL;
    }
    if (apr_pool_create(&tp, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    args[0] = user_id;
    rv = gc_store__select(s, tp, &agent_get, args, &r, &err);
    if (rv == APR_SUCCESS) {
        while (gc_store__next(&r)) {
            gc_agent_row_t *a = apr_pcalloc(p, sizeof(*a));
            a->user_id = gc_store__text(&r, p, 0);
            a->user_name = gc_store__text(&r, p, 1);
            a->state = gc_store__text(&r, p, 2);
            a->presence = gc_store__text(&r, p, 3);
            a->presence_id = gc_store__text(&r, p, 4);
            a->routing_status = gc_store__text(&r, p, 5);
            a->queue_ids = gc_store__text(&r, p, 6);
            a->since = GC_FROM_MS(gc_store__int(&r, 7));
            a->event_at = GC_FROM_MS(gc_store__int(&r, 8));
            a->updated_at = GC_FROM_MS(gc_store__int(&r, 9));
            *out = a;
        }
        if (!*out) {
            rv = APR_NOTFOUND;
        }
    }
    apr_pool_destroy(tp);
    return rv;
}

apr_status_t gc_store_history_count(gc_store_t *s, const char *user_id, long *out)
{
    apr_pool_t *tp;
    apr_status_t rv;
    apr_int64_t n = 0;
    const char *err = NULL;
    const void *args[1];

    *out = 0;
    if (apr_pool_create(&tp, s->pool) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    args[0] = user_id;
    rv = gc_store__select_int(s, tp, user_id ? &history_count_user : &history_count_all,
                              user_id ? args : NULL, &n, NULL, &err);
    *out = (long)n;
    apr_pool_destroy(tp);
    return rv;
}

/* ---- retention ---- */

#define PRUNE_CHUNK 1000

apr_status_t gc_store_prune(gc_store_t *s, apr_time_t before, int max_rows, int *deleted)
{
    apr_pool_t *tp;
    apr_status_t rv = APR_SUCCESS;
    apr_int64_t before_ms = GC_MS(before);
    const char *err = NULL;
    int total = 0;

    if (deleted) {
        *deleted = 0;
    }
    if (max_rows <= 0) {
        return APR_EINVAL;
    }
    if (apr_pool_create(&tp, s->pool) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    while (total < max_rows) {
        int chunk = max_rows - total < PRUNE_CHUNK ? max_rows - total : PRUNE_CHUNK;
        int nrows = 0;
        const void *args[2];

        apr_pool_clear(tp);
        args[0] = &before_ms;
        args[1] = &chunk;
        /* Autocommit per chunk: a writer waits for one chunk at most. */
        rv = gc_store__exec(s, tp, &history_prune, args, &nrows, &err);
        if (rv != APR_SUCCESS) {
            gc_log(GC_LOG_MARK, GC_LOG_WARNING, rv,
                   GCMON_LOGNO(415) "store: pruning history failed after %d rows: %s", total, err);
            break;
        }
        total += nrows;
        if (nrows < chunk) {
            break;
        }
    }
    apr_pool_destroy(tp);
    if (deleted) {
        *deleted = total;
    }
    return rv;
}
