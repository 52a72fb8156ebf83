/* Durable background jobs (issue 15: flow traces first, strategy activation
 * next): a row per job in gcmon_jobs (schema v10), run a step at a time by
 * the holder's job thread, so a job survives graceful restarts, a SIGKILL of
 * its holder and a failover, and resumes where it was.
 *
 * A job is queued (submitted), running (claimed at least once) and, at the
 * end, completed or failed. Its `step` is the kind's own progress (JSON
 * text: e.g. the Genesys job id being polled, the documents already
 * fetched), written after every step together with when the next one is due,
 * so the next holder continues instead of starting over.
 *
 * Claiming is one UPDATE … WHERE lease_until < now on a single row: on
 * PostgreSQL with several instances two claimers of one job race on the row
 * and exactly one wins; the lease (GC_JOBS_LEASE) covers one step, and a job
 * whose holder died is claimed again once its lease runs out. Every write
 * after the claim is fenced by the claimer's owner id: a claimer whose lease
 * was taken over writes nothing.
 *
 * The end of a job (completed or failed) is written in one transaction with
 * its audit row and, when asked, its outbox delivery (the kind's webhook),
 * so a finished job is never announced twice or not at all.
 *
 * Decisions:
 *  - A step that overruns the job's deadline_at is not started: the job
 *    fails with "timed out" (the kind's handler is not called).
 *  - A kind the runner does not know fails the job at once (a newer build's
 *    job in an older holder would otherwise be claimed forever).
 *  - A handler's own error (GC_JOB_AGAIN with a delay) is the kind's retry
 *    policy; the runner only counts attempts (claims) and keeps the last
 *    error text.
 *  - Stopping in the middle of a step gives the job back (lease cleared), so
 *    the next holder takes it at once; a holder that died with a job leased
 *    is taken over the same way: the job thread first adopts every leased
 *    job (gc_store_jobs_adopt) when it starts, and again after a database
 *    failure. */
#ifndef GC_JOBS_H
#define GC_JOBS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "gc_audit.h"
#include "gc_dbconn.h"
#include "gc_query.h"
#include "gc_store.h"

struct gc_worker;

#define GC_JOBS_LEASE apr_time_from_sec(300)
#define GC_JOBS_MAX_ID 64

typedef struct {
    apr_int64_t seq;       /* the row id (listing order) */
    const char *id;        /* the job's public id, e.g. "trace-…" */
    const char *kind;      /* "trace", … */
    const char *target;    /* what it is about (a flow id), for listings */
    const char *actor;     /* who submitted it */
    const char *state;     /* queued | running | completed | failed */
    const char *payload;   /* JSON: the request */
    const char *step;      /* JSON: the kind's progress, or NULL */
    const char *result;    /* JSON: the outcome (completed or failed), or NULL */
    const char *error;     /* the last error (failed: why), or NULL */
    int attempts;          /* claims so far */
    apr_time_t created_at; /* submitted */
    apr_time_t updated_at;
    apr_time_t next_run_at;
    apr_time_t deadline_at;
    apr_time_t completed_at; /* 0 until it ends */
    const char *lease_owner; /* NULL when nobody holds it */
} gc_job_t;

/* ---------------------------------------------------------------- store */

/* Queue a job (state queued, due at job->next_run_at) and, when audit is
 * not NULL, its audit row, in one transaction. id: 1..GC_JOBS_MAX_ID
 * letters, digits, '-' or '_'; a duplicate id fails. */
apr_status_t gc_store_jobs_submit(struct gc_store *s, apr_pool_t *p, const gc_job_t *job,
                                  gc_audit_rec_t *audit, const char **err);

/* The same INSIDE the caller's transaction (a gc_store__tx function, see
 * gc_store_int.h), without an audit row: a resource's own change and its
 * job in one (e.g. gc_store_strategy_activate). */
apr_status_t gc_store__jobs_submit(struct gc_store *s, apr_pool_t *p, const gc_job_t *job,
                                   const char **err);

/* Claim the due job with the earliest next_run_at whose lease is free (or
 * ran out): state running, attempts + 1, lease_owner = owner, lease until
 * now + lease. *found 0 when none is due. */
apr_status_t gc_store_jobs_claim(struct gc_store *s, apr_pool_t *p, const char *owner,
                                 apr_time_t now, apr_interval_time_t lease, gc_job_t *out,
                                 int *found, const char **err);

/* After a step that did not end the job: step, next_run_at, error (may be
 * NULL) stored, the lease released. *kept 0 when owner no longer held it. */
apr_status_t gc_store_jobs_progress(struct gc_store *s, apr_pool_t *p, apr_int64_t seq,
                                    const char *owner, const char *step, apr_time_t next_run_at,
                                    const char *error, apr_time_t now, int *kept, const char **err);

/* The end: state completed or failed, result and error, the lease
 * released; in the same transaction the audit row *audit (may be NULL) and,
 * with outbox_target, one outbox delivery. *kept 0 (and nothing written)
 * when owner no longer held it. */
apr_status_t gc_store_jobs_finish(struct gc_store *s, apr_pool_t *p, apr_int64_t seq,
                                  const char *owner, int completed, const char *result,
                                  const char *error, apr_time_t now, gc_audit_rec_t *audit,
                                  const char *outbox_target, const char *outbox_body, int *kept,
                                  const char **err);

/* Clear every lease of the jobs not ended (due at once). The job thread
 * calls it whenever it (re)connects, before any step of its own runs: the
 * holder adopts the steps its predecessor — or itself, before a database
 * failure — left mid-way instead of waiting for their leases to run out; a
 * predecessor still running a step is fenced off (its writes change
 * nothing). *n: how many. */
apr_status_t gc_store_jobs_adopt(struct gc_store *s, apr_pool_t *p, apr_time_t now, int *n,
                                 const char **err);

/* Give a claimed job back (lease cleared), due at once. */
apr_status_t gc_store_jobs_release(struct gc_store *s, apr_pool_t *p, apr_int64_t seq,
                                   const char *owner, const char **err);

/* One job by its id: *found 1 with *out. */
apr_status_t gc_store_jobs_get(struct gc_store *s, apr_pool_t *p, const char *id, gc_job_t *out,
                               int *found, const char **err);

/* The jobs of `kind`, newest first, paged like the history (filter target
 * of q; rows gc_job_t). */
apr_status_t gc_store_jobs_list(struct gc_store *s, apr_pool_t *p, const char *kind,
                                const gc_query_t *q, gc_page_t *out, const char **err);

/* Jobs not ended, and the earliest next_run_at among them (0 when none). */
apr_status_t gc_store_jobs_pending(struct gc_store *s, apr_pool_t *p, apr_time_t *next_at,
                                   long *count, const char **err);

/* ---------------------------------------------------------------- the runner */

typedef enum {
    GC_JOB_AGAIN,    /* not done: store step, run again at next_run_at */
    GC_JOB_DONE,     /* completed: result */
    GC_JOB_FAILED,   /* failed: error (and result, if any) */
    GC_JOB_GIVE_BACK /* stopping mid-step: nothing learnt, release the lease */
} gc_job_outcome_e;

/* What a step came to (filled by the kind's handler, from the step's pool). */
typedef struct {
    gc_job_outcome_e outcome;
    const char *step;       /* AGAIN: the new progress (NULL keeps the old) */
    apr_time_t next_run_at; /* AGAIN */
    const char *result;     /* DONE/FAILED: JSON text */
    const char *error;      /* FAILED: why; AGAIN: the last error, if any */
    /* DONE/FAILED: the audit row's action (NULL: no audit row) and result,
     * and the webhook delivery (target NULL: none). */
    const char *audit_action;
    const char *audit_result;
    const char *outbox_target;
    const char *outbox_body;
} gc_job_step_t;

/* Run one step of job (claimed by this runner) and say what came of it. The
 * worker is the runner's: gc_worker_stopping, waits, jitter. */
typedef void gc_job_step_fn(void *baton, apr_pool_t *p, struct gc_worker *w, const gc_job_t *job,
                            gc_job_step_t *out);

typedef struct {
    const char *kind;
    gc_job_step_fn *step;
    void *baton;
} gc_job_kind_t;

typedef struct {
    const gc_job_kind_t *kinds;
    size_t nkinds;
    const char *owner; /* the holder's id */
    gc_db_open_fn *db_open;
    gc_db_close_fn *db_close;
    void *db_baton;
    apr_interval_time_t lease; /* 0: GC_JOBS_LEASE */
    apr_interval_time_t poll;  /* look for due jobs at least this often; 0: 1 s */
} gc_jobs_env_t;

typedef struct gc_jobs gc_jobs_t;

/* Start the job thread (the holder, after taking the lead). env->kinds must
 * outlive it. */
apr_status_t gc_jobs_start(gc_jobs_t **out, apr_pool_t *p, const gc_jobs_env_t *env);

/* A job was submitted: look now. Any thread. */
void gc_jobs_wake(gc_jobs_t *j);

/* Stop and join; a step in flight is given back. */
void gc_jobs_stop(gc_jobs_t *j);

/* Claim and run due jobs (one step each) until none is due or `max` steps
 * ran, on the caller's thread with its own store and worker (tests). The
 * number of steps run; *next_at the earliest next run (0: none pending). */
int gc_jobs_run_due(struct gc_store *s, apr_pool_t *p, struct gc_worker *w,
                    const gc_jobs_env_t *env, int max, apr_time_t *next_at, const char **err);

#endif
