/* gc_parallel: every job runs exactly once, on several threads, each with a
 * pool no other thread allocates from. */
#include <string.h>

#include <apr_atomic.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "gc_parallel.h"
#include "unit.h"

#define N_JOBS 2000

typedef struct {
    volatile apr_uint32_t runs[N_JOBS];
    char *text[N_JOBS];
    apr_os_thread_t thread[N_JOBS];
    apr_pool_t *pool[N_JOBS];
    int wait_for_job1;
} record_t;

static void job(void *baton, size_t i, apr_pool_t *p)
{
    record_t *r = baton;
    int k;

    apr_atomic_inc32(&r->runs[i]);
    /* Job 0 holds its thread until job 1 has run: on another thread, then
     * (bounded: a lone thread gives up after 5 s and the test fails). */
    if (i == 0 && r->wait_for_job1) {
        for (k = 0; k < 5000 && !apr_atomic_read32(&r->runs[1]); k++) {
            apr_sleep(1000);
        }
    }
    /* Allocate a little, many times: a shared allocator would be corrupted. */
    for (k = 0; k < 20; k++) {
        r->text[i] = apr_psprintf(p, "job %lu %d", (unsigned long)i, k);
    }
    r->thread[i] = apr_os_thread_current();
    r->pool[i] = p;
}

static void check_all(const record_t *r, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char want[32];

        ck_assert_uint_eq(r->runs[i], 1);
        snprintf(want, sizeof(want), "job %lu 19", (unsigned long)i);
        ck_assert_str_eq(r->text[i], want);
    }
}

START_TEST(every_job_runs_once_on_several_threads)
{
    apr_pool_t *p;
    record_t *r;
    size_t i;

    apr_pool_create(&p, NULL);
    r = apr_pcalloc(p, sizeof(*r));
    r->wait_for_job1 = 1;
    gc_parallel_run(p, N_JOBS, 8, job, r);
    check_all(r, N_JOBS);
    ck_assert(!apr_os_thread_equal(r->thread[0], r->thread[1]));
    /* No job ran on the caller's pool: each thread had its own. */
    for (i = 0; i < N_JOBS; i++) {
        ck_assert_ptr_ne(r->pool[i], p);
    }
    apr_pool_destroy(p);
}
END_TEST

START_TEST(one_worker_runs_in_the_caller)
{
    apr_pool_t *p;
    record_t *r;
    size_t i;

    apr_pool_create(&p, NULL);
    r = apr_pcalloc(p, sizeof(*r));
    gc_parallel_run(p, 50, 1, job, r);
    check_all(r, 50);
    for (i = 0; i < 50; i++) {
        ck_assert(apr_os_thread_equal(r->thread[i], apr_os_thread_current()));
        ck_assert_ptr_eq(r->pool[i], p);
    }
    /* More workers than jobs, and no job at all. */
    memset(r, 0, sizeof(*r));
    gc_parallel_run(p, 3, 64, job, r);
    check_all(r, 3);
    ck_assert_uint_eq(r->runs[3], 0);
    gc_parallel_run(p, 0, 8, job, r);
    ck_assert_uint_eq(r->runs[0], 1);
    apr_pool_destroy(p);
}
END_TEST

Suite *parallel_suite(void)
{
    Suite *s = suite_create("parallel");
    TCase *tc = tcase_create("run");

    tcase_add_test(tc, every_job_runs_once_on_several_threads);
    tcase_add_test(tc, one_worker_runs_in_the_caller);
    suite_add_tcase(s, tc);
    return s;
}
