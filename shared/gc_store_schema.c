/* gcmon store: schema creation and versioning (gcmon_schema holds one row
 * per applied version). Each migration is a list of idempotent DDL steps;
 * a later version appends an entry to `migrations` and bumps
 * GC_SCHEMA_VERSION. */
#include <apr_strings.h>

#include "gc_log.h"
#include "gc_store_int.h"

typedef struct {
    const char *sqlite3;
    const char *pgsql; /* NULL: same as sqlite3 */
} ddl_t;

/* Version 1: lease, history, current agents, channels, meta. Times are BIGINT epoch
 * milliseconds. The history indexes serve SPEC §5.1's newest-first keyset
 * pages (ORDER BY event_at DESC, id DESC) as index range scans:
 * - all rows:  gcmon_history_time (event_at DESC, id DESC);
 * - one state: gcmon_history_state (state, event_at DESC, id DESC);
 * - one user:  the UNIQUE (user_id, event_at) index. event_at is unique per
 *   user, so id never breaks a tie there: a separate (user_id, event_at DESC,
 *   id DESC) index would duplicate it, and as every batch touches most users'
 *   leaf pages it would cost a third of the ingest rate. (SQLite keeps the
 *   rowid id in every index entry: no sort at all; PostgreSQL adds an
 *   incremental sort over groups of one row: 0.06 ms at 1,000,000 rows.) */
static const ddl_t v1[] = {
    { "CREATE TABLE IF NOT EXISTS gcmon_lease ("
      "name TEXT NOT NULL PRIMARY KEY, holder TEXT NOT NULL, "
      "expires_at BIGINT NOT NULL, acquired_at BIGINT NOT NULL)",
      NULL },
    { "CREATE TABLE IF NOT EXISTS gcmon_history ("
      "id INTEGER PRIMARY KEY AUTOINCREMENT, "
      "user_id TEXT NOT NULL, user_name TEXT, state TEXT NOT NULL, previous_state TEXT, "
      "presence TEXT, presence_id TEXT, routing_status TEXT, "
      "event_at BIGINT NOT NULL, ingested_at BIGINT NOT NULL, source TEXT NOT NULL, "
      "UNIQUE (user_id, event_at))",
      "CREATE TABLE IF NOT EXISTS gcmon_history ("
      "id BIGSERIAL PRIMARY KEY, "
      "user_id TEXT NOT NULL, user_name TEXT, state TEXT NOT NULL, previous_state TEXT, "
      "presence TEXT, presence_id TEXT, routing_status TEXT, "
      "event_at BIGINT NOT NULL, ingested_at BIGINT NOT NULL, source TEXT NOT NULL, "
      "UNIQUE (user_id, event_at))" },
    { "CREATE INDEX IF NOT EXISTS gcmon_history_time "
      "ON gcmon_history (event_at DESC, id DESC)",
      NULL },
    { "CREATE INDEX IF NOT EXISTS gcmon_history_state "
      "ON gcmon_history (state, event_at DESC, id DESC)",
      NULL },
    { "CREATE TABLE IF NOT EXISTS gcmon_agents ("
      "user_id TEXT NOT NULL PRIMARY KEY, user_name TEXT, state TEXT NOT NULL, "
      "presence TEXT, presence_id TEXT, routing_status TEXT, queue_ids TEXT, "
      "since BIGINT NOT NULL, event_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
      NULL },
    { "CREATE INDEX IF NOT EXISTS gcmon_agents_state ON gcmon_agents (state)", NULL },
    { "CREATE TABLE IF NOT EXISTS gcmon_channels ("
      "id TEXT NOT NULL PRIMARY KEY, connect_uri TEXT NOT NULL, expires_at BIGINT NOT NULL, "
      "topics TEXT NOT NULL, updated_at BIGINT NOT NULL)",
      NULL },
    /* Named counters. write_epoch: bumped by every write batch (see
     * gc_store_history.c), so a writer knows when its cache may be stale. */
    { "CREATE TABLE IF NOT EXISTS gcmon_meta ("
      "name TEXT NOT NULL PRIMARY KEY, value BIGINT NOT NULL)",
      NULL },
    { "INSERT INTO gcmon_meta (name, value) VALUES ('write_epoch', 0) "
      "ON CONFLICT DO NOTHING",
      NULL },
};

/* Version 2: idle alerts (SPEC §3.2, §5.2 GET /v1/alerts). One row per alert
 * raised; (user_id, state, episode_at, seq) is the alert's identity — the
 * episode is the agent's `since` in that state, seq 0 the first alert of it and
 * n the n-th repeat — so a writer that restarts or fails over cannot raise the
 * same alert twice. The listing pages newest first like the history:
 * (raised_at DESC, id DESC) overall, per user and per state; the board reads
 * the open alerts through a partial index. */
static const ddl_t v2[] = {
    { "CREATE TABLE IF NOT EXISTS gcmon_alerts ("
      "id INTEGER PRIMARY KEY AUTOINCREMENT, "
      "user_id TEXT NOT NULL, user_name TEXT, state TEXT NOT NULL, "
      "threshold_seconds BIGINT NOT NULL, episode_at BIGINT NOT NULL, "
      "seq INTEGER NOT NULL DEFAULT 0, raised_at BIGINT NOT NULL, cleared_at BIGINT, "
      "delivery_status TEXT NOT NULL DEFAULT 'pending', "
      "delivery_attempts INTEGER NOT NULL DEFAULT 0, delivery_last_error TEXT, "
      "UNIQUE (user_id, state, episode_at, seq))",
      "CREATE TABLE IF NOT EXISTS gcmon_alerts ("
      "id BIGSERIAL PRIMARY KEY, "
      "user_id TEXT NOT NULL, user_name TEXT, state TEXT NOT NULL, "
      "threshold_seconds BIGINT NOT NULL, episode_at BIGINT NOT NULL, "
      "seq INTEGER NOT NULL DEFAULT 0, raised_at BIGINT NOT NULL, cleared_at BIGINT, "
      "delivery_status TEXT NOT NULL DEFAULT 'pending', "
      "delivery_attempts INTEGER NOT NULL DEFAULT 0, delivery_last_error TEXT, "
      "UNIQUE (user_id, state, episode_at, seq))" },
    { "CREATE INDEX IF NOT EXISTS gcmon_alerts_time "
      "ON gcmon_alerts (raised_at DESC, id DESC)",
      NULL },
    { "CREATE INDEX IF NOT EXISTS gcmon_alerts_user "
      "ON gcmon_alerts (user_id, raised_at DESC, id DESC)",
      NULL },
    { "CREATE INDEX IF NOT EXISTS gcmon_alerts_state "
      "ON gcmon_alerts (state, raised_at DESC, id DESC)",
      NULL },
    { "CREATE INDEX IF NOT EXISTS gcmon_alerts_open "
      "ON gcmon_alerts (user_id) WHERE cleared_at IS NULL",
      NULL },
};

/* Version 3: the outbox of every outbound webhook (gc_outbox.h). A row names
 * its target, never the URL (a secret); body is the exact JSON to POST (and
 * sign). The delivery thread reads the pending rows by next_at through a
 * partial index; alert_id links a Slack delivery to its alert. */
static const ddl_t v3[] = {
    { "CREATE TABLE IF NOT EXISTS gcmon_outbox ("
      "id INTEGER PRIMARY KEY AUTOINCREMENT, "
      "target TEXT NOT NULL, alert_id BIGINT, body TEXT NOT NULL, "
      "created_at BIGINT NOT NULL, next_at BIGINT NOT NULL, "
      "attempts INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'pending', "
      "last_error TEXT, done_at BIGINT)",
      "CREATE TABLE IF NOT EXISTS gcmon_outbox ("
      "id BIGSERIAL PRIMARY KEY, "
      "target TEXT NOT NULL, alert_id BIGINT, body TEXT NOT NULL, "
      "created_at BIGINT NOT NULL, next_at BIGINT NOT NULL, "
      "attempts INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'pending', "
      "last_error TEXT, done_at BIGINT)" },
    { "CREATE INDEX IF NOT EXISTS gcmon_outbox_due "
      "ON gcmon_outbox (next_at, id) WHERE status = 'pending'",
      NULL },
};

/* Version 4: the audit trail of admin actions (SPEC §5.8, gc_audit.h). Newest
 * first by id; filtered listings (actor, action, target) walk that order too —
 * admin actions are few, and the indexes keep a filtered page from reading
 * the whole table. request and result are JSON text without secrets. */
static const ddl_t v4[] = {
    { "CREATE TABLE IF NOT EXISTS gcmon_audit ("
      "id INTEGER PRIMARY KEY AUTOINCREMENT, at BIGINT NOT NULL, "
      "actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT, "
      "request TEXT, result TEXT, status INTEGER NOT NULL, latency_ms BIGINT NOT NULL)",
      "CREATE TABLE IF NOT EXISTS gcmon_audit ("
      "id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, "
      "actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT, "
      "request TEXT, result TEXT, status INTEGER NOT NULL, latency_ms BIGINT NOT NULL)" },
    { "CREATE INDEX IF NOT EXISTS gcmon_audit_actor ON gcmon_audit (actor, id DESC)", NULL },
    { "CREATE INDEX IF NOT EXISTS gcmon_audit_action ON gcmon_audit (action, id DESC)", NULL },
    { "CREATE INDEX IF NOT EXISTS gcmon_audit_target ON gcmon_audit (target, id DESC)", NULL },
};

/* Version 5: how each audit row's actor was established (GcmonAdminActor). */
static const ddl_t v5[] = {
    { "ALTER TABLE gcmon_audit ADD COLUMN actor_source TEXT",
      "ALTER TABLE gcmon_audit ADD COLUMN IF NOT EXISTS actor_source TEXT" },
};

/* Version 6: the board's change generation (SPEC §9.17). Every agent row
 * carries the write epoch (gcmon_meta.write_epoch) of its last change —
 * state, alert, membership — so a delta poll reads the rows changed since a
 * generation through an index; board_id tells generations of another
 * database apart. gcmon_membership holds the GcmonMonitorQueue queues each
 * monitored agent is a member of, as the holder last read them. */
static const ddl_t v6[] = {
    { "ALTER TABLE gcmon_agents ADD COLUMN gen BIGINT NOT NULL DEFAULT 0",
      "ALTER TABLE gcmon_agents ADD COLUMN IF NOT EXISTS gen BIGINT NOT NULL DEFAULT 0" },
    { "CREATE INDEX IF NOT EXISTS gcmon_agents_gen ON gcmon_agents (gen)", NULL },
    { "CREATE TABLE IF NOT EXISTS gcmon_membership ("
      "user_id TEXT NOT NULL PRIMARY KEY, queue_ids TEXT NOT NULL, gen BIGINT NOT NULL)",
      NULL },
    { "CREATE INDEX IF NOT EXISTS gcmon_membership_gen ON gcmon_membership (gen)", NULL },
    { "INSERT INTO gcmon_meta (name, value) VALUES ('board_id', "
      "(random() & 4503599627370495) + 1) ON CONFLICT DO NOTHING",
      "INSERT INTO gcmon_meta (name, value) VALUES ('board_id', "
      "CAST(floor(random() * 4503599627370495) AS BIGINT) + 1) ON CONFLICT DO NOTHING" },
};

/* Version 7: the stream holder's status, shared through its lease row with
 * the standbys of other hosts (gc_stream_share.h); NULL for other leases. */
static const ddl_t v7[] = {
    { "ALTER TABLE gcmon_lease ADD COLUMN state TEXT",
      "ALTER TABLE gcmon_lease ADD COLUMN IF NOT EXISTS state TEXT" },
};

/* Version 8: stored answers of Idempotency-Key requests (gc_store_idem.h), one
 * row per (scope, key), kept until expires_at. */
static const ddl_t v8[] = {
    { "CREATE TABLE IF NOT EXISTS gcmon_idempotency ("
      "scope TEXT NOT NULL, idem_key TEXT NOT NULL, request_hash TEXT NOT NULL, "
      "status INTEGER NOT NULL, content_type TEXT NOT NULL, body TEXT NOT NULL, "
      "created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, PRIMARY KEY (scope, idem_key))",
      NULL },
    { "CREATE INDEX IF NOT EXISTS gcmon_idempotency_expires ON gcmon_idempotency (expires_at)",
      NULL },
};

/* Version 9: the record of weight distributions (gc_store_distrib.h). */
static const ddl_t v9[] = {
    { "CREATE TABLE IF NOT EXISTS gcmon_distribution ("
      "id INTEGER PRIMARY KEY AUTOINCREMENT, dist_id TEXT NOT NULL UNIQUE, "
      "queue_id TEXT NOT NULL, status TEXT NOT NULL, http_status INTEGER NOT NULL, "
      "actor TEXT NOT NULL, at BIGINT NOT NULL, members INTEGER NOT NULL, "
      "upstream_requests INTEGER NOT NULL, latency_ms BIGINT NOT NULL, "
      "balance_accuracy REAL, request TEXT NOT NULL, result TEXT NOT NULL)",
      "CREATE TABLE IF NOT EXISTS gcmon_distribution ("
      "id BIGSERIAL PRIMARY KEY, dist_id TEXT NOT NULL UNIQUE, "
      "queue_id TEXT NOT NULL, status TEXT NOT NULL, http_status INTEGER NOT NULL, "
      "actor TEXT NOT NULL, at BIGINT NOT NULL, members INTEGER NOT NULL, "
      "upstream_requests INTEGER NOT NULL, latency_ms BIGINT NOT NULL, "
      "balance_accuracy DOUBLE PRECISION, request TEXT NOT NULL, result TEXT NOT NULL)" },
    { "CREATE INDEX IF NOT EXISTS gcmon_distribution_queue ON gcmon_distribution "
      "(queue_id, id DESC)",
      NULL },
};

/* Version 10: durable background jobs (gc_jobs.h). The due-job lookup
 * walks the partial index of the jobs not ended. */
static const ddl_t v10[] = {
    { "CREATE TABLE IF NOT EXISTS gcmon_jobs ("
      "id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, "
      "target TEXT, actor TEXT NOT NULL, state TEXT NOT NULL, payload TEXT NOT NULL, "
      "step TEXT, result TEXT, error TEXT, attempts INTEGER NOT NULL, "
      "created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, next_run_at BIGINT NOT NULL, "
      "deadline_at BIGINT NOT NULL, completed_at BIGINT, lease_owner TEXT, lease_until BIGINT)",
      "CREATE TABLE IF NOT EXISTS gcmon_jobs ("
      "id BIGSERIAL PRIMARY KEY, job_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, "
      "target TEXT, actor TEXT NOT NULL, state TEXT NOT NULL, payload TEXT NOT NULL, "
      "step TEXT, result TEXT, error TEXT, attempts INTEGER NOT NULL, "
      "created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, next_run_at BIGINT NOT NULL, "
      "deadline_at BIGINT NOT NULL, completed_at BIGINT, lease_owner TEXT, lease_until BIGINT)" },
    { "CREATE INDEX IF NOT EXISTS gcmon_jobs_due ON gcmon_jobs (next_run_at) "
      "WHERE state IN ('queued', 'running')",
      NULL },
    { "CREATE INDEX IF NOT EXISTS gcmon_jobs_kind ON gcmon_jobs (kind, id DESC)", NULL },
    { "CREATE INDEX IF NOT EXISTS gcmon_jobs_kind_target ON gcmon_jobs (kind, target, id DESC)",
      NULL },
};

/* Version 11: routing strategies (gc_store_strategy.h). The row id orders
 * the listing (newest first by id); strategy_id is the strategy's own. The
 * status filter and the holder's read of the active strategies walk
 * (status, id DESC). body, validation and live are JSON text. */
static const ddl_t v11[] = {
    { "CREATE TABLE IF NOT EXISTS gcmon_strategy ("
      "id INTEGER PRIMARY KEY AUTOINCREMENT, strategy_id TEXT NOT NULL UNIQUE, "
      "name TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL, validation TEXT, "
      "error_message TEXT, job_id TEXT, actor TEXT NOT NULL, "
      "created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, activated_at BIGINT, "
      "rebalanced_at BIGINT, live TEXT, observed_at BIGINT, revision BIGINT NOT NULL)",
      "CREATE TABLE IF NOT EXISTS gcmon_strategy ("
      "id BIGSERIAL PRIMARY KEY, strategy_id TEXT NOT NULL UNIQUE, "
      "name TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL, validation TEXT, "
      "error_message TEXT, job_id TEXT, actor TEXT NOT NULL, "
      "created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, activated_at BIGINT, "
      "rebalanced_at BIGINT, live TEXT, observed_at BIGINT, revision BIGINT NOT NULL)" },
    { "CREATE INDEX IF NOT EXISTS gcmon_strategy_status ON gcmon_strategy (status, id DESC)",
      NULL },
};

static const struct {
    int version;
    const ddl_t *steps;
    size_t nsteps;
} migrations[] = {
    { 1, v1, sizeof(v1) / sizeof(v1[0]) },     { 2, v2, sizeof(v2) / sizeof(v2[0]) },
    { 3, v3, sizeof(v3) / sizeof(v3[0]) },     { 4, v4, sizeof(v4) / sizeof(v4[0]) },
    { 5, v5, sizeof(v5) / sizeof(v5[0]) },     { 6, v6, sizeof(v6) / sizeof(v6[0]) },
    { 7, v7, sizeof(v7) / sizeof(v7[0]) },     { 8, v8, sizeof(v8) / sizeof(v8[0]) },
    { 9, v9, sizeof(v9) / sizeof(v9[0]) },     { 10, v10, sizeof(v10) / sizeof(v10[0]) },
    { 11, v11, sizeof(v11) / sizeof(v11[0]) },
};

static const gc_stmt_t schema_create = {
    "schema.create",
    "CREATE TABLE IF NOT EXISTS gcmon_schema (version INTEGER PRIMARY KEY, "
    "applied_at BIGINT NOT NULL)",
    NULL, 0
};

/* Serialises concurrent migrations (CREATE … IF NOT EXISTS alone is not
 * race-safe on PostgreSQL); sqlite3's BEGIN IMMEDIATE already does. */
static const gc_stmt_t schema_pg_lock = { "schema.pg_lock",
                                          "SELECT pg_advisory_xact_lock(471100001) LIMIT 1", NULL,
                                          0 };

static const gc_stmt_t schema_version = { "schema.version",
                                          "SELECT MAX(version) FROM gcmon_schema LIMIT 1", NULL,
                                          0 };

/* The same read before any migration: the table may not exist yet. */
static const gc_stmt_t schema_probe = { "schema.probe",
                                        "SELECT MAX(version) FROM gcmon_schema LIMIT 1", NULL,
                                        GC_STMT_QUIET };

static const gc_stmt_t schema_mark = {
    "schema.mark",
    "INSERT INTO gcmon_schema (version, applied_at) VALUES (%d, %lld) "
    "ON CONFLICT DO NOTHING",
    NULL, 0
};

typedef struct {
    int from, to;
    apr_time_t now;
} migrate_ctx_t;

static apr_status_t migrate_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    migrate_ctx_t *m = baton;
    apr_int64_t applied_at = GC_MS(m->now), v = 0;
    apr_status_t rv;
    size_t i, j;

    m->from = m->to = 0;
    if (s->dialect == GC_DB_PGSQL
        && (rv = gc_store__select_int(s, p, &schema_pg_lock, NULL, &v, NULL, err)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = gc_store__exec(s, p, &schema_create, NULL, NULL, err)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = gc_store__select_int(s, p, &schema_version, NULL, &v, NULL, err)) != APR_SUCCESS) {
        return rv;
    }
    m->from = m->to = (int)v;
    if (m->from > GC_SCHEMA_VERSION) {
        *err = apr_psprintf(p,
                            "the database schema is version %d, newer than this "
                            "gcmon's %d: upgrade gcmon",
                            m->from, GC_SCHEMA_VERSION);
        return APR_EGENERAL;
    }
    for (i = 0; i < sizeof(migrations) / sizeof(migrations[0]); i++) {
        const void *args[2];
        int version = migrations[i].version;

        if (version <= m->from) {
            continue;
        }
        for (j = 0; j < migrations[i].nsteps; j++) {
            const ddl_t *d = &migrations[i].steps[j];
            const char *sql = (s->dialect == GC_DB_PGSQL && d->pgsql) ? d->pgsql : d->sqlite3;
            if ((rv = gc_store__exec_sql(s, p, sql, err)) != APR_SUCCESS) {
                *err = apr_psprintf(p, "migration to version %d, step %d: %s", version, (int)j + 1,
                                    *err);
                return rv;
            }
        }
        /* DDL expires every sqlite3 statement compiled before it. */
        gc_store__stmt_reset(s);
        args[0] = &version;
        args[1] = &applied_at;
        if ((rv = gc_store__exec(s, p, &schema_mark, args, NULL, err)) != APR_SUCCESS) {
            return rv;
        }
        m->to = version;
    }
    return APR_SUCCESS;
}

apr_status_t gc_store_migrate(gc_store_t *s, const char **err)
{
    migrate_ctx_t m = { 0, 0, apr_time_now() };
    apr_pool_t *p;
    apr_status_t rv;
    const char *e = NULL;

    *err = NULL;
    if (apr_pool_create(&p, s->pool) != APR_SUCCESS) {
        *err = "out of memory";
        return APR_ENOMEM;
    }
    rv = gc_store__tx(s, p, migrate_tx, &m, &e);
    if (rv != APR_SUCCESS) {
        /* *err must outlive the scratch pool, without growing the store's
         * pool each time a caller retries. */
        apr_snprintf(s->migrate_err, sizeof(s->migrate_err), "schema migration failed: %s",
                     e ? e : "database error");
        *err = s->migrate_err;
        /* The caller logs *err where it can say what it was doing. */
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, rv, GCMON_LOGNO(405) "store: %s", *err);
    }
    else if (m.to != m.from) {
        gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
               GCMON_LOGNO(404) "store: %s database schema upgraded from version %d to %d",
               s->dialect_name, m.from, m.to);
    }
    apr_pool_destroy(p);
    return rv;
}

apr_status_t gc_store_schema_version(gc_store_t *s, apr_pool_t *p, int *version)
{
    apr_int64_t v = 0;
    const char *err = NULL;
    apr_status_t rv = gc_store__select_int(s, p, &schema_probe, NULL, &v, NULL, &err);

    *version = rv == APR_SUCCESS ? (int)v : 0;
    return rv == APR_SUCCESS ? APR_SUCCESS : APR_EGENERAL;
}
