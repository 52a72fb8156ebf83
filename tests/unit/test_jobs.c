/* gc_jobs: durable background jobs on a real SQLite file — claims fenced by
 * their lease, progress kept across claims, the end written with its audit
 * row and webhook delivery, and the job thread. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_strings.h>

#include "gc_audit.h"
#include "gc_jobs.h"
#include "gc_log.h"
#include "gc_outbox.h"
#include "gc_store.h"
#include "gc_worker.h"
#include "unit.h"

static apr_pool_t *pool;
static char db_dir[256];
static char db_path[300];

static int quiet(void *baton, int level)
{
    return 0;
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");

    apr_pool_create(&pool, NULL);
    apr_dbd_init(pool);
    snprintf(db_dir, sizeof(db_dir), "%s/gcmon-jobs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(db_dir));
    snprintf(db_path, sizeof(db_path), "%s/gcmon.db", db_dir);
    gc_log_set(quiet, NULL, NULL);
}

static void teardown(void)
{
    static const char *const files[] = { "gcmon.db", "gcmon.db-wal", "gcmon.db-shm",
                                         "gcmon.db-journal" };
    char path[400];
    size_t i;

    gc_log_set(NULL, NULL, NULL);
    apr_pool_destroy(pool);
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", db_dir, files[i]);
        unlink(path);
    }
    rmdir(db_dir);
}

static gc_store_t *open_store(void)
{
    gc_store_t *s = NULL;
    const char *err = NULL;

    ck_assert_msg(gc_store_open(pool, "sqlite3", db_path, &s, &err) == APR_SUCCESS && s,
                  "gc_store_open: %s", err);
    ck_assert_msg(gc_store_migrate(s, &err) == APR_SUCCESS, "migrate: %s", err);
    return s;
}

static void submit(gc_store_t *s, const char *id, const char *kind, apr_time_t now,
                   apr_time_t deadline)
{
    gc_job_t j;
    const char *err = NULL;

    memset(&j, 0, sizeof(j));
    j.id = id;
    j.kind = kind;
    j.target = "flow-1";
    j.actor = "alice";
    j.payload = "{\"trace_depth\":1}";
    j.created_at = now;
    j.next_run_at = now;
    j.deadline_at = deadline;
    ck_assert_msg(gc_store_jobs_submit(s, pool, &j, NULL, &err) == APR_SUCCESS, "submit: %s", err);
}

static gc_job_t get(gc_store_t *s, const char *id)
{
    gc_job_t j;
    const char *err = NULL;
    int found = 0;

    ck_assert_msg(gc_store_jobs_get(s, pool, id, &j, &found, &err) == APR_SUCCESS, "get: %s", err);
    ck_assert_msg(found, "job %s not found", id);
    return j;
}

static int claim(gc_store_t *s, const char *owner, apr_time_t now, gc_job_t *out)
{
    const char *err = NULL;
    int found = 0;

    ck_assert_msg(gc_store_jobs_claim(s, pool, owner, now, apr_time_from_sec(60), out, &found, &err)
                      == APR_SUCCESS,
                  "claim: %s", err);
    return found;
}

static long audit_total(gc_store_t *s)
{
    gc_query_t q;
    gc_page_t pg;
    const char *err = NULL;

    memset(&q, 0, sizeof(q));
    q.limit = 100;
    ck_assert_msg(gc_store_audit_list(s, pool, &q, &pg, &err) == APR_SUCCESS, "audit: %s", err);
    return pg.total;
}

/* Claimed, a step kept, not claimable before its next run, resumed with its
 * step, ended with its audit row and webhook delivery in one. */
START_TEST(jobs_claim_progress_finish)
{
    gc_store_t *s = open_store();
    apr_time_t t0 = apr_time_now();
    gc_job_t j, again;
    gc_audit_rec_t a;
    apr_array_header_t *due = NULL;
    const char *err = NULL;
    int kept = 0;

    submit(s, "trace-1", "trace", t0, t0 + apr_time_from_sec(600));
    ck_assert_str_eq(get(s, "trace-1").state, "queued");
    ck_assert(claim(s, "holder-a", t0, &j));
    ck_assert_str_eq(j.id, "trace-1");
    ck_assert_str_eq(j.state, "running");
    ck_assert_int_eq(j.attempts, 1);
    ck_assert_str_eq(j.lease_owner, "holder-a");
    ck_assert_ptr_null(j.step);
    /* leased: nobody else gets it */
    ck_assert(!claim(s, "holder-b", t0, &again));

    ck_assert(gc_store_jobs_progress(s, pool, j.seq, "holder-a", "{\"genesys_job\":\"g-1\"}",
                                     t0 + apr_time_from_sec(5), "poll: Running", t0, &kept, &err)
              == APR_SUCCESS);
    ck_assert(kept);
    ck_assert(!claim(s, "holder-b", t0 + apr_time_from_sec(4), &again)); /* not due yet */
    ck_assert(claim(s, "holder-b", t0 + apr_time_from_sec(5), &again));
    ck_assert_str_eq(again.step, "{\"genesys_job\":\"g-1\"}");
    ck_assert_str_eq(again.error, "poll: Running");
    ck_assert_int_eq(again.attempts, 2);

    /* a step without news keeps the step */
    ck_assert(
        gc_store_jobs_progress(s, pool, again.seq, "holder-b", NULL, t0, NULL, t0, &kept, &err)
        == APR_SUCCESS);
    ck_assert(claim(s, "holder-b", t0 + apr_time_from_sec(6), &again));
    ck_assert_str_eq(again.step, "{\"genesys_job\":\"g-1\"}");

    memset(&a, 0, sizeof(a));
    a.at = t0;
    a.actor = "alice";
    a.action = "trace_complete";
    a.target = "flow-1";
    a.status = 200;
    ck_assert(gc_store_jobs_finish(s, pool, again.seq, "holder-b", 1, "{\"ok\":true}", NULL,
                                   t0 + apr_time_from_sec(7), &a, "trace", "{\"flowId\":\"f\"}",
                                   &kept, &err)
              == APR_SUCCESS);
    ck_assert(kept);
    j = get(s, "trace-1");
    ck_assert_str_eq(j.state, "completed");
    ck_assert_str_eq(j.result, "{\"ok\":true}");
    ck_assert_ptr_null(j.lease_owner);
    ck_assert_int_eq(j.completed_at, (t0 + apr_time_from_sec(7)) / 1000 * 1000);
    ck_assert_int_eq(audit_total(s), 1);
    ck_assert(gc_store_outbox_due(s, pool, t0 + apr_time_from_sec(60), 10, &due, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(due->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(due, 0, gc_outbox_row_t).target, "trace");
    /* ended: never claimed again */
    ck_assert(!claim(s, "holder-c", t0 + apr_time_from_sec(3600), &again));
    gc_store_close(s);
}
END_TEST

/* A holder whose lease ran out (it died) is fenced: the next one claims the
 * job and the old one's writes change nothing, announce nothing. */
START_TEST(jobs_lease_fences_a_late_holder)
{
    gc_store_t *s = open_store(), *s2 = open_store();
    apr_time_t t0 = apr_time_now();
    gc_job_t j, j2;
    const char *err = NULL;
    int kept = 1;

    submit(s, "trace-2", "trace", t0, 0);
    ck_assert(claim(s, "holder-a", t0, &j));
    ck_assert(!claim(s2, "holder-b", t0 + apr_time_from_sec(59), &j2));
    ck_assert(claim(s2, "holder-b", t0 + apr_time_from_sec(61), &j2));
    ck_assert_int_eq(j2.attempts, 2);
    ck_assert(gc_store_jobs_progress(s, pool, j.seq, "holder-a", "{\"late\":1}", t0, NULL, t0,
                                     &kept, &err)
              == APR_SUCCESS);
    ck_assert(!kept);
    ck_assert(gc_store_jobs_finish(s, pool, j.seq, "holder-a", 1, "{}", NULL, t0, NULL, "trace",
                                   "{}", &kept, &err)
              == APR_SUCCESS);
    ck_assert(!kept);
    j = get(s, "trace-2");
    ck_assert_str_eq(j.state, "running");
    ck_assert_str_eq(j.lease_owner, "holder-b");
    ck_assert_ptr_null(j.step);
    {
        apr_array_header_t *due = NULL;
        ck_assert(gc_store_outbox_due(s, pool, t0 + apr_time_from_sec(60), 10, &due, &err)
                  == APR_SUCCESS);
        ck_assert_int_eq(due->nelts, 0);
    }
    /* a new holder adopts what another one leased: claimable at once */
    {
        int n = 0;
        ck_assert(gc_store_jobs_adopt(s, pool, "holder-c", t0, &n, &err) == APR_SUCCESS);
        ck_assert_int_eq(n, 1);
        ck_assert(claim(s, "holder-c", t0, &j));
        ck_assert(gc_store_jobs_adopt(s, pool, "holder-c", t0, &n, &err) == APR_SUCCESS);
        ck_assert_int_eq(n, 0); /* its own leases stay */
        ck_assert(gc_store_jobs_release(s, pool, j.seq, "holder-c", &err) == APR_SUCCESS);
        ck_assert(claim(s2, "holder-b", t0 + apr_time_from_sec(62), &j2));
    }
    /* given back: claimable at once */
    ck_assert(gc_store_jobs_release(s2, pool, j2.seq, "holder-b", &err) == APR_SUCCESS);
    ck_assert(claim(s, "holder-a", apr_time_now(), &j));
    gc_store_close(s2);
    gc_store_close(s);
}
END_TEST

/* ---------------------------------------------------------------- the runner */

typedef struct {
    int calls;
    int polls_left; /* AGAIN this many times, then DONE */
    const char *last_step;
} kind_state_t;

static void test_step(void *baton, apr_pool_t *p, gc_worker_t *w, const gc_job_t *job,
                      gc_job_step_t *out)
{
    kind_state_t *k = baton;

    k->calls++;
    k->last_step = job->step ? apr_pstrdup(pool, job->step) : NULL;
    if (k->polls_left > 0) {
        k->polls_left--;
        out->outcome = GC_JOB_AGAIN;
        out->step = apr_psprintf(p, "{\"polls\":%d}", k->calls);
        out->next_run_at = apr_time_now();
        return;
    }
    out->outcome = GC_JOB_DONE;
    out->result = "{\"done\":true}";
    out->audit_action = "trace_complete";
    out->audit_result = "{\"status\":\"completed\"}";
    out->outbox_target = "trace";
    out->outbox_body = "{\"status\":\"completed\"}";
}

START_TEST(jobs_run_due_kinds_deadline)
{
    gc_store_t *s = open_store();
    kind_state_t ks = { 0, 2, NULL };
    gc_job_kind_t kinds[] = { { "trace", test_step, &ks } };
    gc_jobs_env_t env;
    apr_time_t t0 = apr_time_now(), next_at = 0;
    const char *err = NULL;
    gc_job_t j;
    int ran;

    memset(&env, 0, sizeof(env));
    env.kinds = kinds;
    env.nkinds = 1;
    env.owner = "holder-a";
    submit(s, "trace-3", "trace", t0, t0 + apr_time_from_sec(600));
    submit(s, "strange-1", "strategy_activate", t0, 0);
    submit(s, "late-1", "trace", t0 - apr_time_from_sec(10), t0 - apr_time_from_sec(1));
    ran = gc_jobs_run_due(s, pool, NULL, &env, 100, &next_at, &err);
    ck_assert_msg(ran >= 3, "ran %d: %s", ran, err ? err : "");
    ck_assert_int_eq(next_at, 0);  /* nothing pending */
    ck_assert_int_eq(ks.calls, 3); /* two polls, then done; the late one never called */
    ck_assert_str_eq(ks.last_step, "{\"polls\":2}");
    j = get(s, "trace-3");
    ck_assert_str_eq(j.state, "completed");
    ck_assert_int_eq(j.attempts, 3);
    j = get(s, "strange-1");
    ck_assert_str_eq(j.state, "failed");
    ck_assert_str_eq(j.error, "this build does not run jobs of kind strategy_activate");
    j = get(s, "late-1");
    ck_assert_str_eq(j.state, "failed");
    ck_assert_str_eq(j.error, "timed out");
    ck_assert_int_eq(audit_total(s), 1); /* the audit row of the completed trace */
    gc_store_close(s);
}
END_TEST

START_TEST(jobs_listing_by_kind)
{
    gc_store_t *s = open_store();
    apr_time_t t0 = apr_time_now();
    gc_query_t q;
    gc_page_t pg;
    const char *err = NULL;

    submit(s, "trace-a", "trace", t0, 0);
    submit(s, "trace-b", "trace", t0, 0);
    submit(s, "other-a", "strategy_activate", t0, 0);
    memset(&q, 0, sizeof(q));
    q.limit = 1;
    ck_assert(gc_store_jobs_list(s, pool, "trace", &q, &pg, &err) == APR_SUCCESS);
    ck_assert_int_eq(pg.total, 2);
    ck_assert_int_eq(pg.rows->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(pg.rows, 0, gc_job_t).id, "trace-b"); /* newest first */
    ck_assert(pg.has_more);
    q.target = "flow-2";
    ck_assert(gc_store_jobs_list(s, pool, "trace", &q, &pg, &err) == APR_SUCCESS);
    ck_assert_int_eq(pg.total, 0);
    gc_store_close(s);
}
END_TEST

/* The thread: a submitted job runs to its end after a wake. */
static apr_status_t db_open(void *baton, apr_pool_t *p, gc_store_t **store, void **handle,
                            const char **err)
{
    if (gc_store_open(p, "sqlite3", db_path, store, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    *handle = *store;
    return APR_SUCCESS;
}

static void db_close(void *baton, void *handle)
{
    gc_store_close(handle);
}

START_TEST(jobs_thread_runs_a_submitted_job)
{
    gc_store_t *s = open_store();
    kind_state_t ks = { 0, 1, NULL };
    gc_job_kind_t kinds[] = { { "trace", test_step, &ks } };
    gc_jobs_env_t env;
    gc_jobs_t *jobs = NULL;
    int i;

    memset(&env, 0, sizeof(env));
    env.kinds = kinds;
    env.nkinds = 1;
    env.owner = "holder-t";
    env.db_open = db_open;
    env.db_close = db_close;
    env.poll = apr_time_from_sec(30); /* only the wake makes it look */
    ck_assert_int_eq(gc_jobs_start(&jobs, pool, &env), APR_SUCCESS);
    submit(s, "trace-t", "trace", apr_time_now(), 0);
    gc_jobs_wake(jobs);
    for (i = 0; i < 500 && strcmp(get(s, "trace-t").state, "completed"); i++) {
        apr_sleep(apr_time_from_msec(10));
    }
    ck_assert_str_eq(get(s, "trace-t").state, "completed");
    gc_jobs_stop(jobs);
    ck_assert_int_eq(ks.calls, 2);
    gc_store_close(s);
}
END_TEST

Suite *jobs_suite(void)
{
    Suite *s = suite_create("jobs");
    TCase *tc = tcase_create("jobs");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, jobs_claim_progress_finish);
    tcase_add_test(tc, jobs_lease_fences_a_late_holder);
    tcase_add_test(tc, jobs_run_due_kinds_deadline);
    tcase_add_test(tc, jobs_listing_by_kind);
    tcase_add_test(tc, jobs_thread_runs_a_submitted_job);
    suite_add_tcase(s, tc);
    return s;
}
