/* gcmon core: a few worker threads over n jobs (gc_parallel.h). */
#include <apr_allocator.h>
#include <apr_atomic.h>
#include <apr_thread_proc.h>

#include "gc_parallel.h"

typedef struct {
    gc_parallel_fn *fn;
    void *baton;
    size_t n;
    volatile apr_uint32_t next; /* the next job to take */
} jobs_t;

typedef struct {
    jobs_t *jobs;
    apr_pool_t *pool;
} worker_t;

static void drain(jobs_t *j, apr_pool_t *p)
{
    size_t i;

    while ((i = apr_atomic_inc32(&j->next)) < j->n) {
        j->fn(j->baton, i, p);
    }
}

/* Returns normally (no apr_thread_exit, which would destroy the thread's pool
 * from this thread): everything is freed with the caller's pool. */
static void *APR_THREAD_FUNC worker_main(apr_thread_t *t, void *data)
{
    worker_t *w = data;

    (void)t;
    drain(w->jobs, w->pool);
    return NULL;
}

/* A child of p with an allocator of its own, for one thread's use. */
static apr_pool_t *own_pool(apr_pool_t *p)
{
    apr_allocator_t *a = NULL;
    apr_pool_t *sub = NULL;

    if (apr_allocator_create(&a) != APR_SUCCESS) {
        return NULL;
    }
    if (apr_pool_create_ex(&sub, p, NULL, a) != APR_SUCCESS) {
        apr_allocator_destroy(a);
        return NULL;
    }
    apr_allocator_owner_set(a, sub);
    return sub;
}

void gc_parallel_run(apr_pool_t *p, size_t n, int workers, gc_parallel_fn *fn, void *baton)
{
    apr_thread_t *threads[GC_PARALLEL_MAX_WORKERS];
    worker_t w[GC_PARALLEL_MAX_WORKERS];
    jobs_t jobs;
    int k, started = 0;

    jobs.fn = fn;
    jobs.baton = baton;
    jobs.n = n;
    jobs.next = 0;
    if (workers > GC_PARALLEL_MAX_WORKERS) {
        workers = GC_PARALLEL_MAX_WORKERS;
    }
    if ((size_t)workers > n) {
        workers = (int)n;
    }
    for (k = 0; workers > 1 && k < workers; k++) {
        apr_threadattr_t *attr = NULL;

        w[k].jobs = &jobs;
        if (!(w[k].pool = own_pool(p)) || apr_threadattr_create(&attr, w[k].pool) != APR_SUCCESS
            || apr_thread_create(&threads[k], attr, worker_main, &w[k], w[k].pool) != APR_SUCCESS) {
            break;
        }
        started++;
    }
    /* The caller works too when threads were not wanted or not all started. */
    if (started < 2) {
        drain(&jobs, p);
    }
    for (k = 0; k < started; k++) {
        apr_status_t ignored;
        apr_thread_join(&ignored, threads[k]);
    }
}
