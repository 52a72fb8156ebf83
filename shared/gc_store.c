/* gcmon store: connections, the prepared-statement cache, statement and
 * transaction helpers shared by store_*.c. See gc_store.h and store_private.h.
 *
 * apr_dbd facts this file is built around (apr-util 1.6.3):
 * - sqlite3 prepares with legacy sqlite3_prepare: once another connection
 *   changes the schema, a cached statement fails for good with "database
 *   schema has changed" and must be prepared again;
 * - sqlite3 keeps every prepared statement until the connection closes, so
 *   statements are prepared once per connection and cached here;
 * - pgsql returns "" for NULL from apr_dbd_get_entry: NULLs are read with
 *   apr_dbd_datum_get (APR_ENOENT), which both drivers implement;
 * - pgsql transaction_start dereferences a NULL *trans when BEGIN fails, so
 *   the first BEGIN follows a liveness check and the object is reused;
 * - sqlite3 transaction_start leaves the handle "in a transaction" even when
 *   BEGIN fails, so every start is paired with an end. */
#include <string.h>

#include <apr_strings.h>

#include "gc_log.h"
#include "store_private.h"

/* Portable SQL (sqlite3 ≥ 3.24 and PostgreSQL ≥ 9.5): upserts, ON CONFLICT
 * DO NOTHING, BIGINT epoch milliseconds. Every SELECT is bounded. */
static const char *const stmt_sql[ST__COUNT] = {
    [ST_PING] = "SELECT 1 LIMIT 1",
    [ST_SCHEMA_CREATE] =
        "CREATE TABLE IF NOT EXISTS gcmon_schema (version INTEGER PRIMARY KEY, "
        "applied_at BIGINT NOT NULL)",
    /* Serialises concurrent migrations (CREATE … IF NOT EXISTS alone is not
     * race-safe on PostgreSQL); sqlite3's BEGIN IMMEDIATE already does. */
    [ST_PG_LOCK] = "SELECT pg_advisory_xact_lock(471100001) LIMIT 1",
    [ST_SCHEMA_VERSION] = "SELECT MAX(version) FROM gcmon_schema LIMIT 1",
    [ST_SCHEMA_MARK] =
        "INSERT INTO gcmon_schema (version, applied_at) VALUES (%d, %lld) "
        "ON CONFLICT DO NOTHING",
    [ST_LEASE_INSERT] =
        "INSERT INTO gcmon_lease (name, holder, expires_at, acquired_at) "
        "VALUES (%s, %s, %lld, %lld) ON CONFLICT DO NOTHING",
    [ST_LEASE_TAKE] =
        "UPDATE gcmon_lease SET acquired_at = CASE WHEN holder = %s AND expires_at >= %lld "
        "THEN acquired_at ELSE %lld END, holder = %s, expires_at = %lld "
        "WHERE name = %s AND (holder = %s OR expires_at < %lld)",
    [ST_LEASE_READ] =
        "SELECT holder, expires_at, acquired_at FROM gcmon_lease WHERE name = %s LIMIT 1",
    [ST_LEASE_RELEASE] =
        "UPDATE gcmon_lease SET expires_at = 0 WHERE name = %s AND holder = %s",
    [ST_AGENT_GET] =
        "SELECT user_id, user_name, state, presence, presence_id, routing_status, "
        "queue_ids, since, event_at, updated_at FROM gcmon_agents WHERE user_id = %s LIMIT 1",
    /* First statement of every batch: takes the row lock that serialises
     * writers (PostgreSQL; sqlite3's BEGIN IMMEDIATE already does). */
    [ST_EPOCH_BUMP] = "UPDATE gcmon_meta SET value = value + 1 WHERE name = 'write_epoch'",
    [ST_EPOCH_READ] = "SELECT value FROM gcmon_meta WHERE name = 'write_epoch' LIMIT 1",
    [ST_HISTORY_INSERT_RAW] =
        "INSERT INTO gcmon_history (user_id, user_name, state, previous_state, presence, "
        "presence_id, routing_status, event_at, ingested_at, source) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %lld, %lld, %s)",
    [ST_HISTORY_COUNT_ALL] = "SELECT COUNT(*) FROM gcmon_history LIMIT 1",
    [ST_HISTORY_COUNT_USER] = "SELECT COUNT(*) FROM gcmon_history WHERE user_id = %s LIMIT 1",
    [ST_HISTORY_PRUNE] =
        "DELETE FROM gcmon_history WHERE id IN (SELECT id FROM gcmon_history "
        "WHERE event_at < %lld ORDER BY event_at LIMIT %d)",
    [ST_CHANNEL_SAVE] =
        "INSERT INTO gcmon_channels (id, connect_uri, expires_at, topics, updated_at) "
        "VALUES (%s, %s, %lld, %s, %lld) ON CONFLICT (id) DO UPDATE SET "
        "connect_uri = excluded.connect_uri, expires_at = excluded.expires_at, "
        "topics = excluded.topics, updated_at = excluded.updated_at",
    [ST_CHANNEL_LOAD] =
        "SELECT id, connect_uri, expires_at, topics FROM gcmon_channels ORDER BY id LIMIT 256",
    [ST_CHANNEL_DELETE] = "DELETE FROM gcmon_channels WHERE id = %s",
    /* The outbox (store_outbox.c). */
    [ST_OUTBOX_INSERT] =
        "INSERT INTO gcmon_outbox (target, alert_id, body, created_at, next_at) "
        "VALUES (%s, %lld, %s, %lld, %lld)",
    [ST_OUTBOX_DUE] =
        "SELECT id, target, alert_id, body, created_at, next_at, attempts FROM gcmon_outbox "
        "WHERE status = 'pending' AND next_at <= %lld ORDER BY id LIMIT %d",
    [ST_OUTBOX_PENDING] =
        "SELECT MIN(next_at), COUNT(*) FROM gcmon_outbox WHERE status = 'pending' LIMIT 1",
    [ST_OUTBOX_RESULT] =
        "UPDATE gcmon_outbox SET status = %s, attempts = attempts + 1, "
        "next_at = COALESCE(%lld, next_at), last_error = COALESCE(%s, last_error), "
        "done_at = %lld WHERE id = %lld AND status = 'pending'",
    [ST_OUTBOX_ALERT_MIRROR] =
        "UPDATE gcmon_alerts SET delivery_status = %s, "
        "delivery_attempts = (SELECT o.attempts FROM gcmon_outbox o WHERE o.id = %lld), "
        "delivery_last_error = (SELECT o.last_error FROM gcmon_outbox o WHERE o.id = %lld) "
        "WHERE id = (SELECT o.alert_id FROM gcmon_outbox o WHERE o.id = %lld)",
    [ST_OUTBOX_PRUNE] =
        "DELETE FROM gcmon_outbox WHERE id IN (SELECT id FROM gcmon_outbox "
        "WHERE status <> 'pending' AND done_at < %lld ORDER BY id LIMIT %d)",
    /* Idle alerts (store_alerts.c). The insert re-checks the agent's episode
     * in the same statement; the SELECT's own WHERE keeps sqlite3 from parsing
     * ON CONFLICT as a join constraint. CASTs type the parameters of the
     * select list for PostgreSQL. */
    [ST_ALERT_AGENTS] = "SELECT user_id, state, since FROM gcmon_agents LIMIT 1000000",
    [ST_ALERT_INSERT] =
        "INSERT INTO gcmon_alerts (user_id, user_name, state, threshold_seconds, episode_at, "
        "seq, raised_at, delivery_status) SELECT a.user_id, COALESCE(CAST(%s AS TEXT), "
        "a.user_name), a.state, CAST(%lld AS BIGINT), a.since, CAST(%d AS INTEGER), "
        "CAST(%lld AS BIGINT), CAST(%s AS TEXT) FROM gcmon_agents a "
        "WHERE a.user_id = %s AND a.state = %s AND a.since = %lld "
        "ON CONFLICT DO NOTHING RETURNING id",
    [ST_ALERT_FIND] =
        "SELECT id FROM gcmon_alerts WHERE user_id = %s AND state = %s AND episode_at = %lld "
        "AND seq = %d LIMIT 1",
    [ST_ALERT_CLEAR] =
        "UPDATE gcmon_alerts SET cleared_at = %lld WHERE cleared_at IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM gcmon_agents a WHERE a.user_id = gcmon_alerts.user_id "
        "AND a.state = gcmon_alerts.state AND a.since = gcmon_alerts.episode_at)",
    /* The audit trail (store_audit.c). A NULL filter matches every row; the
     * CASTs type the parameters for PostgreSQL. Keyset below id, newest first. */
    [ST_AUDIT_INSERT] =
        "INSERT INTO gcmon_audit (at, actor, action, target, request, result, status, "
        "latency_ms, actor_source) VALUES (%lld, %s, %s, %s, %s, %s, %d, %lld, %s) "
        "RETURNING id",
    [ST_AUDIT_LIST] =
        "SELECT id, at, actor, action, target, request, result, status, latency_ms, "
        "actor_source "
        "FROM gcmon_audit WHERE (CAST(%s AS TEXT) IS NULL OR actor = %s) "
        "AND (CAST(%s AS TEXT) IS NULL OR action = %s) "
        "AND (CAST(%s AS TEXT) IS NULL OR target = %s) AND id < %lld "
        "ORDER BY id DESC LIMIT %d OFFSET %lld",
    [ST_AUDIT_COUNT] =
        "SELECT COUNT(*) FROM gcmon_audit WHERE (CAST(%s AS TEXT) IS NULL OR actor = %s) "
        "AND (CAST(%s AS TEXT) IS NULL OR action = %s) "
        "AND (CAST(%s AS TEXT) IS NULL OR target = %s) LIMIT 1",
    /* Short-lived leases (per-agent status-change locks) are deleted, not kept. */
    [ST_LEASE_DELETE] = "DELETE FROM gcmon_lease WHERE name = %s AND holder = %s",
};

/* write_batch's statements: head, one row repeated n times (", "), tail.
 * Current rows are upserted; the WHERE keeps a writer whose view is stale (an
 * overlapping holder) from moving a row backwards — it then affects fewer
 * rows than it sent, which write_batch notices. */
const int gc_store__bulk_rows[GC_BULK_SIZES] = { 64, 16, 4, 1 };

#define AGENT_COLS "INSERT INTO gcmon_agents (user_id, user_name, state, presence, " \
    "presence_id, routing_status, queue_ids, since, event_at, updated_at) VALUES "
#define AGENT_ROW "(%s, %s, %s, %s, %s, %s, %s, %lld, %lld, %lld)"

static const struct {
    const char *head, *row, *tail;
} bulk_sql[BK__COUNT] = {
    [BK_READ] = {
        "SELECT user_id, state, event_at FROM gcmon_agents WHERE user_id IN (", "%s",
        ") LIMIT " },
    [BK_HISTORY] = {
        "INSERT INTO gcmon_history (user_id, user_name, state, previous_state, presence, "
        "presence_id, routing_status, event_at, ingested_at, source) VALUES ",
        /* A stream event has no name: take the current row's. */
        "(%s, COALESCE(%s, (SELECT a.user_name FROM gcmon_agents a WHERE a.user_id = %s)), "
        "%s, %s, %s, %s, %s, %lld, %lld, %s)",
        " ON CONFLICT DO NOTHING" },
    [BK_TRANSITION] = {
        AGENT_COLS, AGENT_ROW,
        " ON CONFLICT (user_id) DO UPDATE SET "
        "user_name = COALESCE(excluded.user_name, gcmon_agents.user_name), "
        "state = excluded.state, presence = excluded.presence, "
        "presence_id = excluded.presence_id, "
        "routing_status = COALESCE(excluded.routing_status, gcmon_agents.routing_status), "
        "queue_ids = COALESCE(excluded.queue_ids, gcmon_agents.queue_ids), "
        "since = excluded.since, event_at = excluded.event_at, "
        "updated_at = excluded.updated_at "
        "WHERE gcmon_agents.event_at <= excluded.event_at" },
    [BK_REFRESH] = {
        AGENT_COLS, AGENT_ROW,
        " ON CONFLICT (user_id) DO UPDATE SET "
        "user_name = COALESCE(excluded.user_name, gcmon_agents.user_name), "
        "presence = COALESCE(excluded.presence, gcmon_agents.presence), "
        "presence_id = COALESCE(excluded.presence_id, gcmon_agents.presence_id), "
        "routing_status = COALESCE(excluded.routing_status, gcmon_agents.routing_status), "
        "queue_ids = COALESCE(excluded.queue_ids, gcmon_agents.queue_ids), "
        "event_at = excluded.event_at, updated_at = excluded.updated_at "
        "WHERE gcmon_agents.state = excluded.state "
        "AND gcmon_agents.event_at <= excluded.event_at" },
};

static const char *stmt_text(gc_store_t *s, int id)
{
    int kind, rows, i;
    char *sql;
    apr_size_t hl, rl, tl, len, off = 0;

    if (id < ST__COUNT) {
        return stmt_sql[id];
    }
    kind = (id - ST__COUNT) / GC_BULK_SIZES;
    rows = gc_store__bulk_rows[(id - ST__COUNT) % GC_BULK_SIZES];
    hl = strlen(bulk_sql[kind].head);
    rl = strlen(bulk_sql[kind].row);
    tl = strlen(bulk_sql[kind].tail);
    len = hl + (apr_size_t)rows * (rl + 2) + tl + 16;
    sql = apr_palloc(s->pool, len);
    memcpy(sql, bulk_sql[kind].head, hl);
    off = hl;
    for (i = 0; i < rows; i++) {
        if (i) {
            memcpy(sql + off, ", ", 2);
            off += 2;
        }
        memcpy(sql + off, bulk_sql[kind].row, rl);
        off += rl;
    }
    memcpy(sql + off, bulk_sql[kind].tail, tl);
    off += tl;
    if (kind == BK_READ) {
        off += (apr_size_t)apr_snprintf(sql + off, len - off, "%d", rows);
    }
    sql[off] = '\0';
    return sql;
}

/* Per-connection sqlite3 settings (apr_dbd_query reports PRAGMAs that return
 * a row as failures, so they run through apr_dbd_select). No busy_timeout:
 * apr_dbd_sqlite3 runs every call under ONE process-wide mutex, so a thread
 * sleeping in SQLite's busy handler would hold it, and the thread of the same
 * process that holds the database's write lock could not even COMMIT — every
 * writer of the process stalls for the whole timeout. The driver instead
 * retries SQLITE_BUSY with the mutex released (15 x 100 ms), and tx_begin
 * retries BEGIN beyond that (writers only contend there: in WAL mode readers
 * never wait, and a transaction that has begun holds the write lock).
 * busy_timeout=0 also resets a value left by an earlier gcmon on the
 * connection. WAL is a property of the file; synchronous=NORMAL is safe with it. */
static const char *const sqlite_pragmas[] = {
    "PRAGMA busy_timeout=0",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
};

const char *gc_store__err(gc_store_t *s, apr_pool_t *p, const char *what, int rv)
{
    const char *msg = NULL;
    char *out, *c;
    apr_size_t len;

    if (s && s->handle && !s->closed) {
        msg = apr_dbd_error(s->driver, s->handle, rv);
    }
    out = apr_psprintf(p, "%s: %s", what, (msg && *msg) ? msg : "database error");
    /* libpq's messages span lines ("ERROR: …\nDETAIL: …\n"): keep one line. */
    for (c = out; *c; c++) {
        if (*c == '\n' || *c == '\r' || *c == '\t') {
            *c = ' ';
        }
    }
    len = strlen(out);
    while (len > 0 && out[len - 1] == ' ') {
        out[--len] = '\0';
    }
    return out;
}

static int is_schema_changed(gc_store_t *s, int rv)
{
    const char *msg;

    if (s->dialect != GC_DB_SQLITE3 || rv == 0) {
        return 0;
    }
    msg = apr_dbd_error(s->driver, s->handle, rv);
    return msg && strstr(msg, "schema has changed") != NULL;
}

void gc_store__stmt_reset(gc_store_t *s)
{
    memset(s->stmt, 0, sizeof(s->stmt));
}

apr_dbd_prepared_t *gc_store__stmt(gc_store_t *s, int id, const char **err, apr_pool_t *p)
{
    int rv;

    if (s->closed) {
        *err = "gcmon store: the connection is closed";
        return NULL;
    }
    if (s->stmt[id]) {
        return s->stmt[id];
    }
    /* Label NULL: pgsql runs it with PQexecParams (no server-side name that
     * could clash on a shared connection); sqlite3 compiles it now. */
    rv = apr_dbd_prepare(s->driver, s->pool, s->handle, stmt_text(s, id), NULL, &s->stmt[id]);
    if (rv != 0) {
        *err = gc_store__err(s, p, "prepare", rv);
        s->stmt[id] = NULL;
        gc_log(GC_LOG_MARK, GC_LOG_ERR, APR_EGENERAL,
               GCMON_LOGNO(407) "store: preparing statement %d failed: %s", id, *err);
        return NULL;
    }
    return s->stmt[id];
}

/* A statement failed: was it because a schema change (another process
 * migrating) expired the sqlite3 statement cache? Then forget the cache. */
static int note_failure(gc_store_t *s, int rv)
{
    if (is_schema_changed(s, rv)) {
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(408) "store: the database schema changed under this "
               "connection; preparing statements again");
        gc_store__stmt_reset(s);
        s->stmt_stale = 1;
        return 1;
    }
    return 0;
}

apr_status_t gc_store__exec(gc_store_t *s, apr_pool_t *p, int id, const void **args,
                            int *nrows, const char **err)
{
    apr_dbd_prepared_t *st;
    int rv, n = 0, attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        if (!(st = gc_store__stmt(s, id, err, p))) {
            return APR_EGENERAL;
        }
        rv = apr_dbd_pbquery(s->driver, p, s->handle, &n, st, args);
        if (rv == 0) {
            if (nrows) {
                *nrows = n;
            }
            return APR_SUCCESS;
        }
        *err = gc_store__err(s, p, "query", rv);
        /* Inside a transaction the driver has doomed it: gc_store__tx retries. */
        if (!note_failure(s, rv) || s->in_tx) {
            break;
        }
    }
    return APR_EGENERAL;
}

apr_status_t gc_store__select(gc_store_t *s, apr_pool_t *p, int id, const void **args,
                              apr_dbd_results_t **res, const char **err)
{
    apr_dbd_prepared_t *st;
    int rv, attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        if (!(st = gc_store__stmt(s, id, err, p))) {
            return APR_EGENERAL;
        }
        *res = NULL;
        /* random=1: pgsql fetches synchronously, so a partly read result can
         * never hold the connection busy (the async PQsendQuery trap). */
        rv = apr_dbd_pbselect(s->driver, p, s->handle, res, st, 1, args);
        if (rv == 0) {
            return APR_SUCCESS;
        }
        *err = gc_store__err(s, p, "select", rv);
        if (!note_failure(s, rv) || s->in_tx) {
            break;
        }
    }
    return APR_EGENERAL;
}

int gc_store__row(gc_store_t *s, apr_pool_t *p, apr_dbd_results_t *res, apr_dbd_row_t **row)
{
    return apr_dbd_get_row(s->driver, p, res, row, -1) == 0;
}

apr_status_t gc_store__exec_sql(gc_store_t *s, apr_pool_t *p, const char *sql,
                                const char **err)
{
    apr_dbd_prepared_t *st = NULL;
    int rv, n = 0;

    rv = apr_dbd_prepare(s->driver, s->pool, s->handle, sql, NULL, &st);
    if (rv == 0) {
        rv = apr_dbd_pbquery(s->driver, p, s->handle, &n, st, NULL);
    }
    if (rv != 0) {
        *err = gc_store__err(s, p, "schema", rv);
        note_failure(s, rv);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

const char *gc_store__text(gc_store_t *s, apr_pool_t *p, apr_dbd_row_t *row, int col)
{
    char *v = NULL;

    if (apr_dbd_datum_get(s->driver, row, col, APR_DBD_TYPE_STRING, &v) != APR_SUCCESS || !v) {
        return NULL;
    }
    /* pgsql values point into the PGresult, freed when the rows run out. */
    return apr_pstrdup(p, v);
}

apr_int64_t gc_store__int(gc_store_t *s, apr_dbd_row_t *row, int col)
{
    apr_int64_t v = 0;

    if (apr_dbd_datum_get(s->driver, row, col, APR_DBD_TYPE_LONGLONG, &v) != APR_SUCCESS) {
        return 0;
    }
    return v;
}

/* ---- transactions ---- */

/* apr_dbd_transaction_start registers a cleanup (ending the transaction) on
 * the pool it is given, and apr_dbd_transaction_end only removes it from the
 * pool it is given: both must get the same pool. */
static apr_pool_t *tx_pool(gc_store_t *s, apr_pool_t *p)
{
    return s->dialect == GC_DB_PGSQL ? s->pool : p;
}

/* Another connection holds the write lock ("database is locked"/"busy"). */
static int sqlite_busy(gc_store_t *s, int rv)
{
    const char *msg = apr_dbd_error(s->driver, s->handle, rv);
    return msg && (strstr(msg, "locked") || strstr(msg, "busy"));
}

/* BEGIN IMMEDIATE found the write lock taken even after the driver's own
 * retries (~1.5 s): keep trying, sleeping outside the driver's mutex, until
 * GC_STORE_BEGIN_WAIT has passed. The driver leaves a failed BEGIN's handle
 * "in a transaction", so each failure is ended before the next try. */
static int sqlite_begin_retry(gc_store_t *s, apr_pool_t *p, apr_dbd_transaction_t **t, int rv)
{
    apr_time_t deadline = apr_time_now() + GC_STORE_BEGIN_WAIT;

    while (rv != 0 && sqlite_busy(s, rv) && apr_time_now() < deadline) {
        if (*t) {
            apr_dbd_transaction_mode_set(s->driver, *t, APR_DBD_TRANSACTION_ROLLBACK);
            apr_dbd_transaction_end(s->driver, tx_pool(s, p), *t);
            *t = NULL;
        }
        apr_sleep(apr_time_from_msec(20));
        rv = apr_dbd_transaction_start(s->driver, tx_pool(s, p), s->handle, t);
    }
    return rv;
}

static apr_status_t tx_begin(gc_store_t *s, apr_pool_t *p, apr_dbd_transaction_t **t,
                             const char **err)
{
    int rv;

    *t = NULL;
    if (s->dialect == GC_DB_PGSQL) {
        if (!s->pg_trans) {
            /* First BEGIN on this connection: make sure it is alive (a dead
             * one is noticed by the ping and re-opened by check_conn). */
            apr_dbd_results_t *res = NULL;
            apr_dbd_row_t *row = NULL;
            if (gc_store__select(s, p, ST_PING, NULL, &res, err) == APR_SUCCESS) {
                while (gc_store__row(s, p, res, &row)) {
                }
            }
            else if (apr_dbd_check_conn(s->driver, p, s->handle) != APR_SUCCESS) {
                return APR_EGENERAL;
            }
        }
        *t = s->pg_trans;
    }
    rv = apr_dbd_transaction_start(s->driver, tx_pool(s, p), s->handle, t);
    if (s->dialect == GC_DB_PGSQL) {
        s->pg_trans = *t;
    }
    else if (rv != 0 && sqlite_busy(s, rv)) {
        rv = sqlite_begin_retry(s, p, t, rv);
    }
    if (rv != 0) {
        *err = gc_store__err(s, p, "begin", rv);
        if (*t) {
            apr_dbd_transaction_mode_set(s->driver, *t, APR_DBD_TRANSACTION_ROLLBACK);
            apr_dbd_transaction_end(s->driver, tx_pool(s, p), *t);
        }
        note_failure(s, rv);
        return APR_EGENERAL;
    }
    apr_dbd_transaction_mode_set(s->driver, *t, APR_DBD_TRANSACTION_COMMIT);
    s->in_tx = 1;
    return APR_SUCCESS;
}

static apr_status_t tx_end(gc_store_t *s, apr_pool_t *p, apr_dbd_transaction_t *t, int commit,
                           const char **err)
{
    int rv, n;

    s->in_tx = 0;
    if (!commit) {
        apr_dbd_transaction_mode_set(s->driver, t, APR_DBD_TRANSACTION_ROLLBACK);
        apr_dbd_transaction_end(s->driver, tx_pool(s, p), t);
        return APR_EGENERAL;
    }
    rv = apr_dbd_transaction_end(s->driver, tx_pool(s, p), t);
    if (rv != 0) {
        *err = gc_store__err(s, p, "commit", rv);
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, APR_EGENERAL,
               GCMON_LOGNO(406) "store: commit failed, rolling back: %s", *err);
        /* A failed sqlite3 COMMIT (e.g. SQLITE_BUSY) leaves the transaction
         * open; the driver has already forgotten it. Constant control
         * statement, nothing to bind. */
        if (s->dialect == GC_DB_SQLITE3) {
            apr_dbd_query(s->driver, s->handle, &n, "ROLLBACK");
        }
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t gc_store__tx(gc_store_t *s, apr_pool_t *p, gc_store_tx_fn *fn, void *baton,
                          const char **err)
{
    apr_dbd_transaction_t *t;
    apr_status_t rv = APR_EGENERAL;
    int attempt;

    if (s->closed) {
        *err = "gcmon store: the connection is closed";
        return APR_EGENERAL;
    }
    for (attempt = 0; attempt < 2; attempt++) {
        s->stmt_stale = 0;
        rv = tx_begin(s, p, &t, err);
        if (rv == APR_SUCCESS) {
            rv = fn(s, p, baton, err);
            if (rv == APR_SUCCESS) {
                rv = tx_end(s, p, t, 1, err);
            }
            else {
                tx_end(s, p, t, 0, err);
            }
        }
        if (rv == APR_SUCCESS || !s->stmt_stale) {
            break;
        }
    }
    if (rv != APR_SUCCESS && rv != APR_EAGAIN && s->dialect == GC_DB_PGSQL) {
        /* Re-open a connection the server dropped, so the caller's retry can work. */
        apr_dbd_check_conn(s->driver, p, s->handle);
    }
    return rv;
}

/* ---- the judge cache ---- */

static void cache_init(gc_store_t *s)
{
    s->cache = apr_hash_make(s->cache_pool);
    s->interned = apr_hash_make(s->cache_pool);
}

void gc_store_cache_reset(gc_store_t *s)
{
    apr_pool_clear(s->cache_pool);
    cache_init(s);
}

const char *gc_store__intern(gc_store_t *s, const char *state)
{
    const char *v = apr_hash_get(s->interned, state, APR_HASH_KEY_STRING);

    if (!v) {
        v = apr_pstrdup(s->cache_pool, state);
        apr_hash_set(s->interned, v, APR_HASH_KEY_STRING, v);
    }
    return v;
}

int gc_store_test_cached(gc_store_t *s, const char *user_id, const char **state,
                         apr_time_t *event_at)
{
    gc_cache_ent_t *e = apr_hash_get(s->cache, user_id, APR_HASH_KEY_STRING);

    if (!e || !e->valid) {
        return 0;
    }
    if (state) {
        *state = e->state;
    }
    if (event_at) {
        *event_at = e->event_at;
    }
    return 1;
}

void gc_store_test_fail_write(gc_store_t *s, int nth)
{
    s->test_fail_write = nth;
}

void gc_store_test_force_slow(gc_store_t *s, int on)
{
    s->test_force_slow = on;
}

/* ---- opening and closing ---- */

static void sqlite_setup(gc_store_t *s)
{
    apr_pool_t *tp;
    size_t i;

    if (apr_pool_create(&tp, s->pool) != APR_SUCCESS) {
        return;
    }
    for (i = 0; i < sizeof(sqlite_pragmas) / sizeof(sqlite_pragmas[0]); i++) {
        apr_dbd_results_t *res = NULL;
        apr_dbd_row_t *row = NULL;
        const char *mode = NULL;
        int rv, tries = 0;

        /* Switching to WAL needs a moment alone with the file and does not
         * wait on busy_timeout: retry for up to 5 s while another connection
         * (a sibling process starting at the same time) holds it. */
        while ((rv = apr_dbd_select(s->driver, tp, s->handle, &res, sqlite_pragmas[i], 1)) != 0
               && ++tries < 100) {
            const char *msg = apr_dbd_error(s->driver, s->handle, rv);
            if (!msg || (!strstr(msg, "locked") && !strstr(msg, "busy"))) {
                break;
            }
            apr_sleep(apr_time_from_msec(50));
            res = NULL;
        }
        if (rv != 0) {
            gc_log(GC_LOG_MARK, GC_LOG_WARNING, APR_EGENERAL,
                   GCMON_LOGNO(402) "store: %s failed: %s", sqlite_pragmas[i],
                   gc_store__err(s, tp, "sqlite3", rv));
            continue;
        }
        while (apr_dbd_get_row(s->driver, tp, res, &row, -1) == 0) {
            if (!mode) {
                mode = apr_dbd_get_entry(s->driver, row, 0);
            }
        }
        if (i == 1 && (!mode || strcmp(mode, "wal") != 0)) {
            /* :memory: databases, or a file system without shared memory. */
            gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
                   GCMON_LOGNO(403) "store: sqlite3 journal_mode is '%s', not WAL; "
                   "readers will block the writer", mode ? mode : "?");
        }
    }
    apr_pool_destroy(tp);
}

static apr_status_t store_close_cleanup(void *data)
{
    gc_store_t *s = data;

    if (!s->closed) {
        s->closed = 1;
        /* The sqlite3 driver finalizes its statements before closing. */
        apr_dbd_close(s->driver, s->handle);
    }
    return APR_SUCCESS;
}

void gc_store_close(gc_store_t *s)
{
    if (s && s->owns_handle && !s->closed) {
        apr_pool_cleanup_run(s->pool, s, store_close_cleanup);
    }
}

static gc_store_t *store_new(apr_pool_t *p, const apr_dbd_driver_t *driver, apr_dbd_t *handle)
{
    const char *name = apr_dbd_name(driver);
    gc_store_t *s;

    if (!name || (strcmp(name, "sqlite3") != 0 && strcmp(name, "pgsql") != 0)) {
        gc_log(GC_LOG_MARK, GC_LOG_ERR, APR_ENOTIMPL,
               GCMON_LOGNO(401) "store: apr_dbd driver '%s' is not supported "
               "(use sqlite3 or pgsql)", name ? name : "?");
        return NULL;
    }
    s = apr_pcalloc(p, sizeof(*s));
    s->pool = p;
    s->driver = driver;
    s->handle = handle;
    s->dialect = strcmp(name, "pgsql") == 0 ? GC_DB_PGSQL : GC_DB_SQLITE3;
    s->dialect_name = s->dialect == GC_DB_PGSQL ? "pgsql" : "sqlite3";
    if (apr_pool_create(&s->cache_pool, p) != APR_SUCCESS) {
        return NULL;
    }
    apr_pool_tag(s->cache_pool, "gcmon_store_cache");
    cache_init(s);
    if (s->dialect == GC_DB_SQLITE3) {
        sqlite_setup(s);
    }
    return s;
}

gc_store_t *gc_store_wrap(apr_pool_t *p, const apr_dbd_driver_t *driver, apr_dbd_t *handle)
{
    char key[64];
    void *found = NULL;
    gc_store_t *s;

    if (!p || !driver || !handle) {
        return NULL;
    }
    apr_snprintf(key, sizeof(key), "gcmon_store:%pp", (void *)handle);
    if (apr_pool_userdata_get(&found, key, p) == APR_SUCCESS && found) {
        s = found;
        if (s->handle == handle && s->driver == driver && !s->closed) {
            return s;
        }
    }
    s = store_new(p, driver, handle);
    if (s) {
        apr_pool_userdata_set(s, key, NULL, p);     /* copies the key */
    }
    return s;
}

apr_status_t gc_store_open(apr_pool_t *p, const char *driver_name, const char *params,
                           gc_store_t **out, const char **err)
{
    const apr_dbd_driver_t *driver = NULL;
    apr_dbd_t *handle = NULL;
    const char *derr = NULL;
    gc_store_t *s;
    apr_status_t rv;

    *out = NULL;
    *err = NULL;
    if (!driver_name || (strcmp(driver_name, "sqlite3") != 0 && strcmp(driver_name, "pgsql") != 0)) {
        *err = apr_psprintf(p, "apr_dbd driver '%s' is not supported (use sqlite3 or pgsql)",
                            driver_name ? driver_name : "(none)");
        return APR_ENOTIMPL;
    }
    rv = apr_dbd_init(p);
    if (rv != APR_SUCCESS) {
        *err = "apr_dbd_init failed";
        return rv;
    }
    rv = apr_dbd_get_driver(p, driver_name, &driver);
    if (rv != APR_SUCCESS) {
        *err = apr_psprintf(p, "apr_dbd driver '%s' %s", driver_name,
                            rv == APR_EDSOOPEN ? "could not be loaded (on Debian install "
                            "libaprutil1-dbd-sqlite3 or libaprutil1-dbd-pgsql)"
                            : "is not available in this apr-util");
        return rv;
    }
    /* The parameters may hold a password: never echo them. */
    rv = apr_dbd_open_ex(driver, p, params, &handle, &derr);
    if (rv != APR_SUCCESS || !handle) {
        char *m = apr_psprintf(p, "cannot open the %s database%s%s", driver_name,
                               derr ? ": " : "", derr ? derr : ""), *c;
        apr_size_t len;
        for (c = m; *c; c++) {          /* libpq's message spans lines */
            if (*c == '\n' || *c == '\r' || *c == '\t') {
                *c = ' ';
            }
        }
        for (len = strlen(m); len > 0 && m[len - 1] == ' '; len--) {
            m[len - 1] = '\0';
        }
        *err = m;
        return rv != APR_SUCCESS ? rv : APR_EGENERAL;
    }
    s = store_new(p, driver, handle);
    if (!s) {
        apr_dbd_close(driver, handle);
        *err = apr_psprintf(p, "apr_dbd driver '%s' is not supported", driver_name);
        return APR_ENOTIMPL;
    }
    s->owns_handle = 1;
    apr_pool_cleanup_register(p, s, store_close_cleanup, apr_pool_cleanup_null);
    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0, GCMON_LOGNO(400) "store: opened a %s connection",
           s->dialect_name);
    *out = s;
    return APR_SUCCESS;
}

const char *gc_store_dialect(const gc_store_t *s)
{
    return s->dialect_name;
}
