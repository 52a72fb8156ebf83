/* gcmon store: connections, and the one executor every store file runs its
 * statements through (gc_store_int.h): the prepared-statement cache, the
 * retry policy, the column readers, the error text, transactions.
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
#include "gc_store_int.h"

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

/* ---- the statement cache ---- */

/* A prepared statement of the cache, under its gc_stmt_t's name. */
typedef struct {
    const char *src; /* the text it was prepared from (compared only) */
    const char *sql; /* a copy of that text */
    apr_dbd_prepared_t *prep;
} prep_ent_t;

void gc_store__stmt_reset(gc_store_t *s)
{
    apr_hash_clear(s->stmts);
}

static const char *stmt_text(const gc_store_t *s, const gc_stmt_t *st)
{
    return (s->dialect == GC_DB_PGSQL && st->pgsql) ? st->pgsql : st->sql;
}

static apr_dbd_prepared_t *prepare(gc_store_t *s, const gc_stmt_t *st, const char *sql,
                                   apr_pool_t *p, const char **err)
{
    prep_ent_t *e;
    int rv;

    e = apr_pcalloc(s->pool, sizeof(*e));
    /* Label NULL: pgsql runs it with PQexecParams (no server-side name that
     * could clash on a shared connection or vanish when it is re-opened);
     * sqlite3 compiles it now. */
    rv = apr_dbd_prepare(s->driver, s->pool, s->handle, sql, NULL, &e->prep);
    if (rv != 0 || !e->prep) {
        *err = gc_store__err(s, p, apr_pstrcat(p, "prepare ", st->name, NULL), rv);
        gc_log(GC_LOG_MARK, (st->flags & GC_STMT_QUIET) ? GC_LOG_DEBUG : GC_LOG_ERR, APR_EGENERAL,
               GCMON_LOGNO(407) "store: %s", *err);
        return NULL;
    }
    e->src = sql;
    e->sql = apr_pstrdup(s->pool, sql);
    apr_hash_set(s->stmts, apr_pstrdup(s->pool, st->name), APR_HASH_KEY_STRING, e);
    return e->prep;
}

/* The statement, prepared on its first use on this connection. */
static apr_dbd_prepared_t *stmt_get(gc_store_t *s, const gc_stmt_t *st, apr_pool_t *p,
                                    const char **err)
{
    const char *sql = stmt_text(s, st);
    prep_ent_t *e;

    if (s->closed) {
        *err = "gcmon store: the connection is closed";
        return NULL;
    }
    e = apr_hash_get(s->stmts, st->name, APR_HASH_KEY_STRING);
    if (!e) {
        return prepare(s, st, sql, p, err);
    }
    /* The same static text (pointer), or a statement built again per call. */
    if (e->src == sql || strcmp(e->sql, sql) == 0) {
        return e->prep;
    }
    *err = apr_psprintf(p, "statement %s: another SQL text under the same name", st->name);
    gc_log(GC_LOG_MARK, GC_LOG_ERR, APR_EGENERAL, GCMON_LOGNO(419) "store: %s", *err);
    return NULL;
}

/* A statement failed: was it because a schema change (another process
 * migrating, ANALYZE) expired the sqlite3 statements (legacy sqlite3_prepare:
 * "database schema has changed", for good)? Then forget the cache, and tell
 * whether the statement may run again now: not inside a transaction, which
 * the driver has doomed (gc_store__tx retries the whole of it). */
static int retry_after(gc_store_t *s, int rv)
{
    if (!is_schema_changed(s, rv)) {
        return 0;
    }
    gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
           GCMON_LOGNO(408) "store: the database schema changed under this "
                            "connection; preparing statements again");
    gc_store__stmt_reset(s);
    s->stmt_stale = 1;
    return !s->in_tx;
}

/* A pgsql select failed outside a transaction: the server may have dropped
 * the connection (a restart, pg_terminate_backend, an idle timeout), which
 * libpq notices only on use — mod_dbd's check before handing the connection
 * out cannot. Re-open it (PQreset) and tell whether a read may run again;
 * an SQL error runs again once and fails the same way. Writes are not run
 * again: whether a dropped one took effect is unknown (their callers retry
 * through gc_store__tx, whose transaction makes that safe). */
static int pg_reconnected(gc_store_t *s, apr_pool_t *p)
{
    if (s->dialect != GC_DB_PGSQL || s->in_tx) {
        return 0;
    }
    return apr_dbd_check_conn(s->driver, p, s->handle) == APR_SUCCESS;
}

/* ---- the executor ---- */

apr_status_t gc_store__exec(gc_store_t *s, apr_pool_t *p, const gc_stmt_t *st, const void **args,
                            int *nrows, const char **err)
{
    apr_dbd_prepared_t *prep;
    int rv, n = 0, attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        if (!(prep = stmt_get(s, st, p, err))) {
            return APR_EGENERAL;
        }
        rv = apr_dbd_pbquery(s->driver, p, s->handle, &n, prep, args);
        if (rv == 0) {
            if (nrows) {
                *nrows = n;
            }
            return APR_SUCCESS;
        }
        *err = gc_store__err(s, p, st->name, rv);
        if (!retry_after(s, rv)) {
            break;
        }
    }
    return APR_EGENERAL;
}

apr_status_t gc_store__select(gc_store_t *s, apr_pool_t *p, const gc_stmt_t *st, const void **args,
                              gc_rows_t *rows, const char **err)
{
    apr_dbd_prepared_t *prep;
    int rv, attempt;

    rows->s = s;
    rows->pool = p;
    rows->res = NULL;
    rows->row = NULL;
    for (attempt = 0; attempt < 2; attempt++) {
        if (!(prep = stmt_get(s, st, p, err))) {
            return APR_EGENERAL;
        }
        rows->res = NULL;
        /* random=1: pgsql fetches synchronously (see gc_rows_t). */
        rv = apr_dbd_pbselect(s->driver, p, s->handle, &rows->res, prep, 1, args);
        if (rv == 0) {
            return APR_SUCCESS;
        }
        *err = gc_store__err(s, p, st->name, rv);
        if (!retry_after(s, rv) && !pg_reconnected(s, p)) {
            break;
        }
    }
    return APR_EGENERAL;
}

int gc_store__next(gc_rows_t *r)
{
    return apr_dbd_get_row(r->s->driver, r->pool, r->res, &r->row, -1) == 0;
}

const char *gc_store__text(gc_rows_t *r, apr_pool_t *p, int col)
{
    char *v = NULL;

    if (apr_dbd_datum_get(r->s->driver, r->row, col, APR_DBD_TYPE_STRING, &v) != APR_SUCCESS
        || !v) {
        return NULL;
    }
    /* sqlite3 values are copies in the select's pool already; pgsql values
     * point into the PGresult, freed when the rows run out. */
    return (r->s->dialect == GC_DB_SQLITE3 && p == r->pool) ? v : apr_pstrdup(p, v);
}

apr_int64_t gc_store__int(gc_rows_t *r, int col)
{
    apr_int64_t v = 0;

    if (apr_dbd_datum_get(r->s->driver, r->row, col, APR_DBD_TYPE_LONGLONG, &v) != APR_SUCCESS) {
        return 0;
    }
    return v;
}

apr_status_t gc_store__select_int(gc_store_t *s, apr_pool_t *p, const gc_stmt_t *st,
                                  const void **args, apr_int64_t *v, int *found, const char **err)
{
    gc_rows_t r;
    apr_status_t rv = gc_store__select(s, p, st, args, &r, err);
    int n = 0;

    *v = 0;
    if (rv == APR_SUCCESS) {
        while (gc_store__next(&r)) {
            if (n++ == 0) {
                *v = gc_store__int(&r, 0);
            }
        }
    }
    if (found) {
        *found = n > 0;
    }
    return rv;
}

apr_status_t gc_store__exec_sql(gc_store_t *s, apr_pool_t *p, const char *sql, const char **err)
{
    apr_dbd_prepared_t *st = NULL;
    int rv, n = 0;

    rv = apr_dbd_prepare(s->driver, s->pool, s->handle, sql, NULL, &st);
    if (rv == 0) {
        rv = apr_dbd_pbquery(s->driver, p, s->handle, &n, st, NULL);
    }
    if (rv != 0) {
        *err = gc_store__err(s, p, "schema", rv);
        retry_after(s, rv);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
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

    while (rv != 0 && sqlite_busy(s, rv) && apr_time_now() < deadline
           && !(s->give_up && s->give_up(s->give_up_baton))) {
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

void gc_store_set_give_up(gc_store_t *s, gc_store_give_up_fn *give_up, void *baton)
{
    s->give_up = give_up;
    s->give_up_baton = baton;
}

static const gc_stmt_t ping = { "ping", "SELECT 1 LIMIT 1", NULL, 0 };

static apr_status_t tx_begin(gc_store_t *s, apr_pool_t *p, apr_dbd_transaction_t **t,
                             const char **err)
{
    int rv;

    *t = NULL;
    if (s->dialect == GC_DB_PGSQL) {
        if (!s->pg_trans) {
            /* First BEGIN on this connection: make sure it is alive (a dead
             * one is noticed by the ping and re-opened by check_conn). */
            apr_int64_t one;
            if (gc_store__select_int(s, p, &ping, NULL, &one, NULL, err) != APR_SUCCESS
                && apr_dbd_check_conn(s->driver, p, s->handle) != APR_SUCCESS) {
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
        retry_after(s, rv);
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
        s->tx_gen = 0;
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
    if (rv == APR_SUCCESS) {
        gc_store__board_committed(s, p);
    }
    s->tx_gen = 0;
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
                                    "readers will block the writer",
                   mode ? mode : "?");
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
                                "(use sqlite3 or pgsql)",
               name ? name : "?");
        return NULL;
    }
    s = apr_pcalloc(p, sizeof(*s));
    s->pool = p;
    s->driver = driver;
    s->handle = handle;
    s->dialect = strcmp(name, "pgsql") == 0 ? GC_DB_PGSQL : GC_DB_SQLITE3;
    s->dialect_name = s->dialect == GC_DB_PGSQL ? "pgsql" : "sqlite3";
    s->stmts = apr_hash_make(p);
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
        apr_pool_userdata_set(s, key, NULL, p); /* copies the key */
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
    if (!driver_name
        || (strcmp(driver_name, "sqlite3") != 0 && strcmp(driver_name, "pgsql") != 0)) {
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
        char *m = apr_psprintf(p, "cannot open the %s database%s%s", driver_name, derr ? ": " : "",
                               derr ? derr : ""),
             *c;
        apr_size_t len;
        for (c = m; *c; c++) { /* libpq's message spans lines */
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

void gc_store_set_scope(gc_store_t *s, const void *scope)
{
    s->scope = scope;
}
