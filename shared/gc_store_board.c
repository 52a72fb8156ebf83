/* gcmon store: the live board (SPEC §5.2, §9.17) — its reads (full, one
 * agent, the agents changed since a generation), its generation, and the
 * queue membership the stream holder records. Every transaction that changes
 * what the board shows bumps the write epoch once (gc_store__gen_bump) and
 * stamps the rows it changes with it, so "changed since g" is an index range. */
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "gc_store_read.h"
#include "gc_store_int.h"

#define SQLITE_ARGS_MAX 3

static const gc_stmt_t gen_bump = {
    "board.gen_bump", "UPDATE gcmon_meta SET value = value + 1 WHERE name = 'write_epoch'", NULL, 0
};

static const gc_stmt_t gen_read = {
    "board.gen_read", "SELECT value FROM gcmon_meta WHERE name = 'write_epoch' LIMIT 1", NULL, 0
};

static const gc_stmt_t id_read = { "board.id_read",
                                   "SELECT value FROM gcmon_meta WHERE name = 'board_id' LIMIT 1",
                                   NULL, 0 };

static const gc_stmt_t membership_upsert = {
    "board.membership_upsert",
    "INSERT INTO gcmon_membership (user_id, queue_ids, gen) VALUES (%s, %s, %lld) "
    "ON CONFLICT (user_id) DO UPDATE SET queue_ids = excluded.queue_ids, gen = excluded.gen "
    "WHERE gcmon_membership.queue_ids <> excluded.queue_ids",
    NULL, 0
};

static const gc_stmt_t membership_has = {
    "board.membership_has",
    "SELECT COUNT(*) FROM gcmon_membership WHERE user_id = %s AND queue_ids <> '[]'", NULL, 0
};

/* Open alerts (few, through the partial index gcmon_alerts_open). */
static const gc_stmt_t alerts_all = {
    "board.alerts",
    "SELECT user_id, id, raised_at, threshold_seconds FROM gcmon_alerts "
    "WHERE cleared_at IS NULL ORDER BY id",
    NULL, 0
};

#define CHANGED_SINCE                                    \
    "SELECT user_id FROM gcmon_agents WHERE gen > %lld " \
    "UNION SELECT user_id FROM gcmon_membership WHERE gen > %lld"

/* The open alerts of the agents changed since a generation (a delta costs what
 * changed, not every open alert). */
static const gc_stmt_t alerts_since = {
    "board.alerts_since",
    "SELECT user_id, id, raised_at, threshold_seconds FROM gcmon_alerts "
    "WHERE cleared_at IS NULL AND user_id IN (" CHANGED_SINCE ") ORDER BY id",
    NULL, 0
};

static const gc_stmt_t alerts_user = {
    "board.alerts_user",
    "SELECT user_id, id, raised_at, threshold_seconds FROM gcmon_alerts "
    "WHERE cleared_at IS NULL AND user_id = %s ORDER BY id",
    NULL, 0
};

#define BOARD_COLS                                                           \
    "SELECT a.user_id, a.user_name, a.state, a.presence, a.routing_status, " \
    "m.queue_ids, a.queue_ids, a.since, a.gen, m.gen FROM gcmon_agents a "   \
    "LEFT JOIN gcmon_membership m ON m.user_id = a.user_id"

static const gc_stmt_t board_since = {
    "board.since", BOARD_COLS " WHERE a.user_id IN (" CHANGED_SINCE ") ORDER BY a.user_id", NULL, 0
};

/* ---------------------------------------------------------------- generation */

apr_status_t gc_store__gen_bump(gc_store_t *s, apr_pool_t *p, apr_int64_t *gen, const char **err)
{
    apr_status_t rv;
    int nrows = 0, found = 0;

    if ((rv = gc_store__exec(s, p, &gen_bump, NULL, &nrows, err)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = gc_store__select_int(s, p, &gen_read, NULL, gen, &found, err)) != APR_SUCCESS) {
        return rv;
    }
    if (!found || nrows != 1) {
        *err = "the write_epoch row of gcmon_meta is missing (was gc_store_migrate run?)";
        return APR_EGENERAL;
    }
    s->tx_gen = *gen;
    return APR_SUCCESS;
}

void gc_store_on_board_change(gc_store_t *s, gc_store_board_fn *fn, void *baton)
{
    s->board_hook = fn;
    s->board_baton = baton;
}

/* The board_id, read once per store (it never changes). */
static apr_status_t board_id(gc_store_t *s, apr_pool_t *p, apr_int64_t *id, const char **err)
{
    apr_status_t rv;
    int found = 0;

    if (!s->board_id) {
        rv = gc_store__select_int(s, p, &id_read, NULL, &s->board_id, &found, err);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (!found) {
            *err = "the board_id row of gcmon_meta is missing (was gc_store_migrate run?)";
            return APR_EGENERAL;
        }
    }
    *id = s->board_id;
    return APR_SUCCESS;
}

void gc_store__board_committed(gc_store_t *s, apr_pool_t *p)
{
    apr_int64_t id = 0;
    const char *err = NULL;

    if (!s->tx_gen) {
        return;
    }
    /* The store's own epoch follows its own consecutive bumps, so a write
     * batch's judge cache stays trusted across alert and membership writes. */
    if (s->epoch_known && s->tx_gen == s->epoch + 1) {
        s->epoch = s->tx_gen;
    }
    if (s->board_hook && board_id(s, p, &id, &err) == APR_SUCCESS) {
        s->board_hook(s->board_baton, id, s->tx_gen);
    }
    s->tx_gen = 0;
}

apr_status_t gc_store_read_board_gen(gc_store_t *s, apr_pool_t *p, gc_board_gen_t *out,
                                     const char **err)
{
    apr_status_t rv;
    int found = 0;

    memset(out, 0, sizeof(*out));
    if ((rv = board_id(s, p, &out->id, err)) != APR_SUCCESS) {
        return rv;
    }
    return gc_store__select_int(s, p, &gen_read, NULL, &out->gen, &found, err);
}

/* ---------------------------------------------------------------- membership */

typedef struct {
    const gc_membership_t *m;
    int n;
} members_ctx_t;

static apr_status_t members_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    members_ctx_t *c = baton;
    apr_int64_t gen = 0;
    apr_status_t rv;
    int i;

    if ((rv = gc_store__gen_bump(s, p, &gen, err)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < c->n; i++) {
        const void *args[3];
        args[0] = c->m[i].user_id;
        args[1] = c->m[i].queue_ids;
        args[2] = &gen;
        if ((rv = gc_store__exec(s, p, &membership_upsert, args, NULL, err)) != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

apr_status_t gc_store_membership_set(gc_store_t *s, apr_pool_t *p, const gc_membership_t *m, int n,
                                     const char **err)
{
    members_ctx_t c;

    if (n <= 0) {
        return APR_SUCCESS;
    }
    c.m = m;
    c.n = n;
    return gc_store__tx(s, p, members_tx, &c, err);
}

/* ---------------------------------------------------------------- reads */

/* User id → its newest open alert (a gc_board_row_t with the alert fields),
 * from one of the alert statements above. */
static apr_status_t open_alerts(gc_store_t *s, apr_pool_t *p, const gc_stmt_t *st,
                                const void **args, apr_hash_t **alerts, const char **err)
{
    gc_rows_t r;

    *alerts = NULL;
    if (gc_store__select(s, p, st, args, &r, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    while (gc_store__next(&r)) {
        gc_board_row_t *al;
        const char *uid = gc_store__text(&r, p, 0);

        if (!uid) {
            continue;
        }
        al = apr_pcalloc(p, sizeof(*al));
        al->alert_id = gc_store__int(&r, 1);
        al->alert_raised_at = GC_FROM_MS(gc_store__int(&r, 2));
        al->alert_threshold_seconds = (long)gc_store__int(&r, 3);
        if (!*alerts) {
            *alerts = apr_hash_make(p);
        }
        apr_hash_set(*alerts, uid, APR_HASH_KEY_STRING, al); /* newest wins */
    }
    return APR_SUCCESS;
}

/* The agents of the board, one statement per filter shape. */
static void board_stmt(apr_pool_t *p, const char *user_id, const char *state, const char *queue_id,
                       gc_stmt_t *st, const void **args)
{
    const char *head = BOARD_COLS, *tail = " ORDER BY a.user_id";
    const char *conds = "", *pg_conds;
    int n = 0;

    if (user_id) {
        conds = " AND a.user_id = %s";
        args[n++] = user_id;
    }
    if (state) {
        conds = apr_pstrcat(p, conds, " AND a.state = %s", NULL);
        args[n++] = state;
    }
    pg_conds = conds;
    if (queue_id) {
        /* queue_ids is a JSON array of ids of [A-Za-z0-9-_]: match the quoted id. */
        conds = apr_pstrcat(p, conds, " AND instr(m.queue_ids, %s) > 0", NULL);
        pg_conds = apr_pstrcat(p, pg_conds, " AND strpos(m.queue_ids, %s) > 0", NULL);
        args[n++] = apr_pstrcat(p, "\"", queue_id, "\"", NULL);
    }
    st->name = apr_psprintf(p, "board.agents.%x",
                            (user_id ? 1u : 0u) | (state ? 2u : 0u) | (queue_id ? 4u : 0u));
    st->sql = apr_pstrcat(p, head, *conds ? " WHERE" : "", *conds ? conds + 4 : "", tail, NULL);
    st->pgsql = queue_id ? apr_pstrcat(p, head, " WHERE", pg_conds + 4, tail, NULL) : NULL;
    st->flags = 0;
}

static void read_row(gc_rows_t *r, apr_pool_t *p, apr_hash_t *alerts, gc_board_row_t *b)
{
    const gc_board_row_t *al;
    apr_int64_t mgen;

    b->user_id = gc_store__text(r, p, 0);
    b->user_name = gc_store__text(r, p, 1);
    b->state = gc_store__text(r, p, 2);
    b->presence = gc_store__text(r, p, 3);
    b->routing_status = gc_store__text(r, p, 4);
    b->queue_ids = gc_store__text(r, p, 5);
    b->active_queue_ids = gc_store__text(r, p, 6);
    b->since = GC_FROM_MS(gc_store__int(r, 7));
    b->gen = gc_store__int(r, 8);
    mgen = gc_store__int(r, 9);
    if (mgen > b->gen) {
        b->gen = mgen;
    }
    if (alerts && b->user_id && (al = apr_hash_get(alerts, b->user_id, APR_HASH_KEY_STRING))) {
        b->alert_id = al->alert_id;
        b->alert_raised_at = al->alert_raised_at;
        b->alert_threshold_seconds = al->alert_threshold_seconds;
    }
}

static apr_status_t read_rows(gc_store_t *s, apr_pool_t *p, const gc_stmt_t *st, const void **args,
                              apr_hash_t *alerts, apr_array_header_t **rows, const char **err)
{
    gc_rows_t r;

    if (gc_store__select(s, p, st, args, &r, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    *rows = apr_array_make(p, 64, sizeof(gc_board_row_t));
    while (gc_store__next(&r)) {
        read_row(&r, p, alerts, apr_array_push(*rows));
    }
    return APR_SUCCESS;
}

apr_status_t gc_store_read_board(gc_store_t *s, apr_pool_t *p, const char *user_id,
                                 const char *state, const char *queue_id, apr_array_header_t **rows,
                                 const char **err)
{
    apr_hash_t *alerts;
    const void *args[SQLITE_ARGS_MAX], *uargs[1] = { user_id };
    gc_stmt_t st;

    if (open_alerts(s, p, user_id ? &alerts_user : &alerts_all, user_id ? uargs : NULL, &alerts,
                    err)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    board_stmt(p, user_id, state, queue_id, &st, args);
    return read_rows(s, p, &st, args, alerts, rows, err);
}

apr_status_t gc_store_read_board_since(gc_store_t *s, apr_pool_t *p, apr_int64_t since,
                                       apr_array_header_t **rows, const char **err)
{
    apr_hash_t *alerts;
    const void *args[2];

    args[0] = &since;
    args[1] = &since;
    if (open_alerts(s, p, &alerts_since, args, &alerts, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    return read_rows(s, p, &board_since, args, alerts, rows, err);
}

int gc_board_row_matches(const gc_board_row_t *b, const char *state, const char *queue_id)
{
    if (state && (!b->state || strcmp(b->state, state))) {
        return 0;
    }
    if (queue_id) {
        const char *q = b->queue_ids;
        size_t n = strlen(queue_id);
        /* the same test as the SQL: the quoted id in the JSON array */
        for (; q && (q = strchr(q, '"')); q++) {
            if (!strncmp(q + 1, queue_id, n) && q[n + 1] == '"') {
                return 1;
            }
        }
        return 0;
    }
    return 1;
}

apr_status_t gc_store_membership_has(gc_store_t *s, apr_pool_t *p, const char *user_id, int *member,
                                     const char **err)
{
    const void *args[1] = { user_id };
    apr_int64_t n = 0;
    apr_status_t rv = gc_store__select_int(s, p, &membership_has, args, &n, NULL, err);

    *member = rv == APR_SUCCESS && n > 0;
    return rv;
}
