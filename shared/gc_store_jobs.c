/* gcmon store: durable background jobs (gc_jobs.h). */
#include <string.h>

#include "gc_jobs.h"
#include "gc_outbox.h"
#include "gc_store_int.h"

#define COLS                                                                           \
    "id, job_id, kind, target, actor, state, payload, step, result, error, attempts, " \
    "created_at, updated_at, next_run_at, deadline_at, completed_at, lease_owner"

#define LIVE "state IN ('queued', 'running')"

static const gc_stmt_t jobs_insert = {
    "jobs.insert",
    "INSERT INTO gcmon_jobs (job_id, kind, target, actor, state, payload, attempts, created_at, "
    "updated_at, next_run_at, deadline_at) VALUES (%s, %s, %s, %s, 'queued', %s, 0, %lld, %lld, "
    "%lld, %lld)",
    NULL, 0
};

/* One row: the due one with the earliest next run; the outer condition is
 * checked again on the row itself, so of two concurrent claimers one wins. */
static const gc_stmt_t jobs_claim = {
    "jobs.claim",
    "UPDATE gcmon_jobs SET state = 'running', attempts = attempts + 1, lease_owner = %s, "
    "lease_until = %lld, updated_at = %lld WHERE id = (SELECT id FROM gcmon_jobs WHERE " LIVE
    " AND next_run_at <= %lld AND (lease_until IS NULL OR lease_until <= %lld) "
    "ORDER BY next_run_at, id LIMIT 1) AND " LIVE
    " AND (lease_until IS NULL OR lease_until <= %lld) RETURNING " COLS,
    NULL, 0
};

static const gc_stmt_t jobs_progress = {
    "jobs.progress",
    "UPDATE gcmon_jobs SET step = COALESCE(%s, step), next_run_at = %lld, error = %s, "
    "lease_owner = NULL, lease_until = NULL, updated_at = %lld "
    "WHERE id = %lld AND lease_owner = %s AND " LIVE,
    NULL, 0
};

static const gc_stmt_t jobs_finish = {
    "jobs.finish",
    "UPDATE gcmon_jobs SET state = %s, result = %s, error = %s, completed_at = %lld, "
    "updated_at = %lld, lease_owner = NULL, lease_until = NULL "
    "WHERE id = %lld AND lease_owner = %s AND " LIVE,
    NULL, 0
};

static const gc_stmt_t jobs_release = {
    "jobs.release",
    "UPDATE gcmon_jobs SET lease_owner = NULL, lease_until = NULL, next_run_at = %lld, "
    "updated_at = %lld WHERE id = %lld AND lease_owner = %s AND " LIVE,
    NULL, 0
};

static const gc_stmt_t jobs_adopt = {
    "jobs.adopt",
    "UPDATE gcmon_jobs SET lease_owner = NULL, lease_until = NULL, next_run_at = %lld, "
    "updated_at = %lld WHERE lease_owner IS NOT NULL AND " LIVE,
    NULL, 0
};

static const gc_stmt_t jobs_get = { "jobs.get",
                                    "SELECT " COLS " FROM gcmon_jobs WHERE job_id = %s LIMIT 1",
                                    NULL, 0 };

/* A job held by a lease is not due before the lease runs out. */
static const gc_stmt_t jobs_pending = {
    "jobs.pending",
    "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_run_at "
    "THEN lease_until ELSE next_run_at END), COUNT(*) FROM gcmon_jobs WHERE " LIVE " LIMIT 1",
    NULL, 0
};

static void job_row(gc_rows_t *r, apr_pool_t *p, void *out)
{
    gc_job_t *j = out;

    j->seq = gc_store__int(r, 0);
    j->id = gc_store__text(r, p, 1);
    j->kind = gc_store__text(r, p, 2);
    j->target = gc_store__text(r, p, 3);
    j->actor = gc_store__text(r, p, 4);
    j->state = gc_store__text(r, p, 5);
    j->payload = gc_store__text(r, p, 6);
    j->step = gc_store__text(r, p, 7);
    j->result = gc_store__text(r, p, 8);
    j->error = gc_store__text(r, p, 9);
    j->attempts = (int)gc_store__int(r, 10);
    j->created_at = GC_FROM_MS(gc_store__int(r, 11));
    j->updated_at = GC_FROM_MS(gc_store__int(r, 12));
    j->next_run_at = GC_FROM_MS(gc_store__int(r, 13));
    j->deadline_at = GC_FROM_MS(gc_store__int(r, 14));
    j->completed_at = GC_FROM_MS(gc_store__int(r, 15));
    j->lease_owner = gc_store__text(r, p, 16);
}

static apr_status_t one_job(gc_store_t *s, apr_pool_t *p, const gc_stmt_t *st, const void **args,
                            gc_job_t *out, int *found, const char **err)
{
    return gc_store__first(s, p, st, args, job_row, out, sizeof(*out), found, err);
}

static int job_complete(const gc_job_t *job, const char **err)
{
    if (!job->id || !job->kind || !job->actor || !job->payload) {
        *err = "jobs: a job needs an id, a kind, an actor and a payload";
        return 0;
    }
    return 1;
}

apr_status_t gc_store__jobs_submit(gc_store_t *s, apr_pool_t *p, const gc_job_t *job,
                                   const char **err)
{
    apr_int64_t created = GC_MS(job->created_at), next = GC_MS(job->next_run_at),
                deadline = GC_MS(job->deadline_at);
    const void *args[9];

    if (!job_complete(job, err)) {
        return APR_EINVAL;
    }
    args[0] = job->id;
    args[1] = job->kind;
    args[2] = job->target;
    args[3] = job->actor;
    args[4] = job->payload;
    args[5] = &created;
    args[6] = &created;
    args[7] = &next;
    args[8] = &deadline;
    return gc_store__exec(s, p, &jobs_insert, args, NULL, err);
}

typedef struct {
    const gc_job_t *job;
    gc_audit_rec_t *audit;
} submit_ctx_t;

static apr_status_t submit_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    submit_ctx_t *c = baton;
    apr_status_t rv;

    if ((rv = gc_store__jobs_submit(s, p, c->job, err)) != APR_SUCCESS || !c->audit) {
        return rv;
    }
    return gc_store__audit_add(s, p, c->audit, NULL, NULL, err);
}

apr_status_t gc_store_jobs_submit(gc_store_t *s, apr_pool_t *p, const gc_job_t *job,
                                  gc_audit_rec_t *audit, const char **err)
{
    submit_ctx_t c;

    if (!job_complete(job, err)) {
        return APR_EINVAL;
    }
    c.job = job;
    c.audit = audit;
    return gc_store__tx(s, p, submit_tx, &c, err);
}

typedef struct {
    const char *owner;
    apr_int64_t now, until;
    gc_job_t *out;
    int *found;
} claim_ctx_t;

static apr_status_t claim_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    claim_ctx_t *c = baton;
    const void *args[6];

    args[0] = c->owner;
    args[1] = &c->until;
    args[2] = &c->now;
    args[3] = &c->now;
    args[4] = &c->now;
    args[5] = &c->now;
    return one_job(s, p, &jobs_claim, args, c->out, c->found, err);
}

apr_status_t gc_store_jobs_claim(gc_store_t *s, apr_pool_t *p, const char *owner, apr_time_t now,
                                 apr_interval_time_t lease, gc_job_t *out, int *found,
                                 const char **err)
{
    claim_ctx_t c;

    c.owner = owner;
    c.now = GC_MS(now);
    c.until = GC_MS(now + lease);
    c.out = out;
    c.found = found;
    *found = 0;
    return gc_store__tx(s, p, claim_tx, &c, err);
}

apr_status_t gc_store_jobs_progress(gc_store_t *s, apr_pool_t *p, apr_int64_t seq,
                                    const char *owner, const char *step, apr_time_t next_run_at,
                                    const char *error, apr_time_t now, int *kept, const char **err)
{
    apr_int64_t next = GC_MS(next_run_at), at = GC_MS(now);
    const void *args[6];
    int n = 0;
    apr_status_t rv;

    args[0] = step;
    args[1] = &next;
    args[2] = error;
    args[3] = &at;
    args[4] = &seq;
    args[5] = owner;
    rv = gc_store__exec(s, p, &jobs_progress, args, &n, err);
    *kept = rv == APR_SUCCESS && n > 0;
    return rv;
}

typedef struct {
    apr_int64_t seq, now;
    const char *owner, *state, *result, *error;
    gc_audit_rec_t *audit;
    const char *target, *body;
    int kept;
} finish_ctx_t;

static apr_status_t finish_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    finish_ctx_t *c = baton;
    const void *args[7];
    apr_status_t rv;
    int n = 0;

    args[0] = c->state;
    args[1] = c->result;
    args[2] = c->error;
    args[3] = &c->now;
    args[4] = &c->now;
    args[5] = &c->seq;
    args[6] = c->owner;
    if ((rv = gc_store__exec(s, p, &jobs_finish, args, &n, err)) != APR_SUCCESS) {
        return rv;
    }
    c->kept = n > 0;
    if (!c->kept) {
        return APR_SUCCESS; /* another holder has it: announce nothing */
    }
    if (c->audit) {
        return gc_store__audit_add(s, p, c->audit, c->target, c->body, err);
    }
    return c->target ? gc_store__outbox_add(s, p, c->target, NULL, c->body, GC_FROM_MS(c->now), err)
                     : APR_SUCCESS;
}

apr_status_t gc_store_jobs_finish(gc_store_t *s, apr_pool_t *p, apr_int64_t seq, const char *owner,
                                  int completed, const char *result, const char *error,
                                  apr_time_t now, gc_audit_rec_t *audit, const char *outbox_target,
                                  const char *outbox_body, int *kept, const char **err)
{
    finish_ctx_t c;
    apr_status_t rv;

    memset(&c, 0, sizeof(c));
    c.seq = seq;
    c.now = GC_MS(now);
    c.owner = owner;
    c.state = completed ? "completed" : "failed";
    c.result = result;
    c.error = error;
    c.audit = audit;
    c.target = outbox_target;
    c.body = outbox_body;
    rv = gc_store__tx(s, p, finish_tx, &c, err);
    *kept = rv == APR_SUCCESS && c.kept;
    return rv;
}

apr_status_t gc_store_jobs_release(gc_store_t *s, apr_pool_t *p, apr_int64_t seq, const char *owner,
                                   const char **err)
{
    apr_int64_t now = GC_MS(apr_time_now());
    const void *args[4];

    args[0] = &now;
    args[1] = &now;
    args[2] = &seq;
    args[3] = owner;
    return gc_store__exec(s, p, &jobs_release, args, NULL, err);
}

apr_status_t gc_store_jobs_adopt(gc_store_t *s, apr_pool_t *p, apr_time_t now, int *n,
                                 const char **err)
{
    apr_int64_t at = GC_MS(now);
    const void *args[2];

    args[0] = &at;
    args[1] = &at;
    *n = 0;
    return gc_store__exec(s, p, &jobs_adopt, args, n, err);
}

apr_status_t gc_store_jobs_get(gc_store_t *s, apr_pool_t *p, const char *id, gc_job_t *out,
                               int *found, const char **err)
{
    const void *args[1];

    args[0] = id;
    return one_job(s, p, &jobs_get, args, out, found, err);
}

apr_status_t gc_store_jobs_pending(gc_store_t *s, apr_pool_t *p, apr_time_t *next_at, long *count,
                                   const char **err)
{
    gc_rows_t rows;
    apr_status_t rv;

    *next_at = 0;
    *count = 0;
    if ((rv = gc_store__select(s, p, &jobs_pending, NULL, &rows, err)) != APR_SUCCESS) {
        return rv;
    }
    while (gc_store__next(&rows)) {
        *next_at = GC_FROM_MS(gc_store__int(&rows, 0));
        *count = (long)gc_store__int(&rows, 1);
    }
    return APR_SUCCESS;
}

static void job_position(const void *row, gc_cursor_t *at)
{
    const gc_job_t *j = row;

    at->at = j->created_at;
    at->id = j->seq;
}

/* Newest first by row id. The kind is bound through the `action` field of a
 * copy of the query (the listing's filters are gc_query_t fields); the
 * (kind, id DESC) and (kind, target, id DESC) indexes serve both shapes. */
static const gc_listing_t jobs_listing = { "jobs",
                                           "gcmon_jobs",
                                           COLS,
                                           NULL,
                                           0,
                                           { { GC_Q_ACTION, "kind = %s" },
                                             { GC_Q_TARGET, "target = %s" } },
                                           sizeof(gc_job_t),
                                           job_row,
                                           job_position };

apr_status_t gc_store_jobs_list(gc_store_t *s, apr_pool_t *p, const char *kind, const gc_query_t *q,
                                gc_page_t *out, const char **err)
{
    gc_query_t mine = *q;

    mine.action = kind;
    return gc_store__list(s, p, &jobs_listing, &mine, out, err);
}
