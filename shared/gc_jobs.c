/* gcmon core: the job thread of the holder (gc_jobs.h). A gc_worker: claim
 * the due job, run one step of its kind, write what came of it; repeat until
 * nothing is due, then wait for the next due time or a wake. */
#include <string.h>

#include <apr_strings.h>

#include "gc_jobs.h"
#include "gc_log.h"
#include "gc_worker.h"

#define POLL apr_time_from_sec(1)
#define DB_RETRY_MIN apr_time_from_sec(1)
#define DB_RETRY_MAX apr_time_from_sec(30)
/* Steps run before the thread looks at its stop flag and the pending count. */
#define BATCH 32

struct gc_jobs {
    gc_worker_t *worker; /* the job thread; its pool holds this */
    gc_jobs_env_t env;
    int adopted; /* the predecessor's leased jobs taken over (job thread only) */
};

/* Once, on the first working connection: the jobs another holder leased. */
static apr_status_t adopt(gc_jobs_t *j, gc_store_t *s, apr_pool_t *p, const char **err)
{
    int n = 0;
    apr_status_t rv;

    if (j->adopted) {
        return APR_SUCCESS;
    }
    if ((rv = gc_store_jobs_adopt(s, p, j->env.owner, apr_time_now(), &n, err)) != APR_SUCCESS) {
        return rv;
    }
    j->adopted = 1;
    if (n > 0) {
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(855) "jobs: took over %d job(s) a previous holder left mid-step", n);
    }
    return APR_SUCCESS;
}

static const gc_job_kind_t *kind_of(const gc_jobs_env_t *env, const char *kind)
{
    size_t i;

    for (i = 0; kind && i < env->nkinds; i++) {
        if (!strcmp(env->kinds[i].kind, kind)) {
            return &env->kinds[i];
        }
    }
    return NULL;
}

/* The audit row of a job's end: its submitter is the actor. */
static gc_audit_rec_t *end_audit(apr_pool_t *p, const gc_job_t *job, const gc_job_step_t *st,
                                 apr_time_t now)
{
    gc_audit_rec_t *a;

    if (!st->audit_action) {
        return NULL;
    }
    a = apr_pcalloc(p, sizeof(*a));
    a->at = now;
    a->actor = job->actor;
    a->actor_source = "job";
    a->action = st->audit_action;
    a->target = job->target;
    a->request = apr_psprintf(p, "{\"job_id\":\"%s\"}", job->id);
    a->result = st->audit_result;
    a->status = st->outcome == GC_JOB_DONE ? 200 : 502;
    a->latency_ms = (apr_int64_t)apr_time_as_msec(now - job->created_at);
    return a;
}

/* Run one step of a claimed job and write its outcome. */
static apr_status_t run_step(gc_store_t *s, apr_pool_t *p, gc_worker_t *w, const gc_jobs_env_t *env,
                             const gc_job_t *job, const char **err)
{
    const gc_job_kind_t *k = kind_of(env, job->kind);
    apr_time_t now = apr_time_now();
    gc_job_step_t st;
    int kept = 1;
    apr_status_t rv;

    memset(&st, 0, sizeof(st));
    if (!k) {
        st.outcome = GC_JOB_FAILED;
        st.error = apr_psprintf(p, "this build does not run jobs of kind %s", job->kind);
    }
    else if (job->deadline_at && now >= job->deadline_at) {
        st.outcome = GC_JOB_FAILED;
        st.error = "timed out";
    }
    else {
        k->step(k->baton, p, w, job, &st);
        now = apr_time_now();
    }
    switch (st.outcome) {
    case GC_JOB_AGAIN:
        rv = gc_store_jobs_progress(s, p, job->seq, env->owner, st.step,
                                    st.next_run_at > now ? st.next_run_at : now, st.error, now,
                                    &kept, err);
        break;
    case GC_JOB_GIVE_BACK: rv = gc_store_jobs_release(s, p, job->seq, env->owner, err); break;
    default:
        rv = gc_store_jobs_finish(s, p, job->seq, env->owner, st.outcome == GC_JOB_DONE, st.result,
                                  st.error, now, end_audit(p, job, &st, now), st.outbox_target,
                                  st.outbox_body, &kept, err);
        if (rv == APR_SUCCESS && kept) {
            gc_log(GC_LOG_MARK, st.outcome == GC_JOB_DONE ? GC_LOG_INFO : GC_LOG_WARNING, 0,
                   GCMON_LOGNO(851) "job %s (%s) %s after %d attempt(s)%s%s", job->id, job->kind,
                   st.outcome == GC_JOB_DONE ? "completed" : "failed", job->attempts,
                   st.error ? ": " : "", st.error ? st.error : "");
        }
        break;
    }
    if (rv == APR_SUCCESS && !kept) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(852) "job %s (%s): its lease passed to another holder during a "
                                "step; this step's outcome was dropped",
               job->id, job->kind);
    }
    return rv;
}

int gc_jobs_run_due(gc_store_t *s, apr_pool_t *p, gc_worker_t *w, const gc_jobs_env_t *env, int max,
                    apr_time_t *next_at, const char **err)
{
    apr_interval_time_t lease = env->lease > 0 ? env->lease : GC_JOBS_LEASE;
    apr_pool_t *sp;
    long pending = 0;
    int ran = 0;

    *next_at = 0;
    *err = NULL;
    if (apr_pool_create(&sp, p) != APR_SUCCESS) {
        *err = "out of memory";
        return -1;
    }
    while (ran < max && !(w && gc_worker_stopping(w))) {
        gc_job_t job;
        int found = 0;

        if (gc_store_jobs_claim(s, sp, env->owner, apr_time_now(), lease, &job, &found, err)
                != APR_SUCCESS
            || !found) {
            break;
        }
        if (run_step(s, sp, w, env, &job, err) != APR_SUCCESS) {
            break;
        }
        ran++;
        apr_pool_clear(sp);
    }
    if (*err) {
        *err = apr_pstrdup(p, *err);
    }
    apr_pool_destroy(sp);
    if (!*err && gc_store_jobs_pending(s, p, next_at, &pending, err) != APR_SUCCESS) {
        return -1;
    }
    return *err ? -1 : ran;
}

/* ---------------------------------------------------------------- the thread */

static void jobs_main(gc_worker_t *w, void *data)
{
    gc_jobs_t *j = data;
    apr_pool_t *iter;

    if (apr_pool_create(&iter, gc_worker_pool(w)) != APR_SUCCESS) {
        return;
    }
    while (!gc_worker_stopping(w)) {
        gc_store_t *s = NULL;
        const char *err = NULL;
        apr_time_t next_at = 0, wake_at;
        apr_status_t rv = gc_worker_db(w, &s, &err);
        int ran = -1;

        if (rv == APR_SUCCESS && (rv = adopt(j, s, iter, &err)) == APR_SUCCESS) {
            ran = gc_jobs_run_due(s, iter, w, &j->env, BATCH, &next_at, &err);
        }
        if (ran >= 0) {
            int failures = gc_worker_db_ok(w);

            if (failures) {
                gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
                       GCMON_LOGNO(854) "jobs: the database works again after %d failed "
                                        "attempt(s)",
                       failures);
            }
            apr_pool_clear(iter);
            wake_at = apr_time_now() + (j->env.poll > 0 ? j->env.poll : POLL);
            if (ran >= BATCH) {
                continue; /* more may be due */
            }
            if (next_at > 0 && next_at < wake_at) {
                wake_at = next_at;
            }
            gc_worker_wait(w, wake_at);
            continue;
        }
        if (rv != APR_EAGAIN && gc_worker_db_failed(w)) {
            gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
                   GCMON_LOGNO(853) "jobs: database work failed (attempt %d); background jobs "
                                    "wait and retry: %s",
                   gc_worker_db_failures(w), err ? err : "unknown error");
        }
        apr_pool_clear(iter);
        gc_worker_pause(w, gc_worker_db_retry_at(w));
    }
    apr_pool_destroy(iter);
}

apr_status_t gc_jobs_start(gc_jobs_t **out, apr_pool_t *p, const gc_jobs_env_t *env)
{
    gc_worker_db_conf_t db;
    gc_worker_t *w;
    gc_jobs_t *j;
    apr_status_t rv;

    *out = NULL;
    if (!env || !env->db_open || !env->owner) {
        return APR_EINVAL;
    }
    if ((rv = gc_worker_create(&w, p, "jobs")) != APR_SUCCESS) {
        return rv;
    }
    j = apr_pcalloc(gc_worker_pool(w), sizeof(*j));
    j->worker = w;
    j->env = *env;
    j->env.owner = apr_pstrdup(gc_worker_pool(w), env->owner);
    memset(&db, 0, sizeof(db));
    db.open = env->db_open;
    db.close = env->db_close;
    db.baton = env->db_baton;
    db.retry_min = DB_RETRY_MIN;
    db.retry_max = DB_RETRY_MAX;
    gc_worker_use_db(w, &db);
    if ((rv = gc_worker_start(w, jobs_main, j, NULL)) != APR_SUCCESS) {
        gc_worker_destroy(w);
        return rv;
    }
    *out = j;
    return APR_SUCCESS;
}

void gc_jobs_wake(gc_jobs_t *j)
{
    if (j) {
        gc_worker_wake(j->worker);
    }
}

void gc_jobs_stop(gc_jobs_t *j)
{
    if (j) {
        gc_worker_stop(j->worker);
        gc_worker_destroy(j->worker);
    }
}
