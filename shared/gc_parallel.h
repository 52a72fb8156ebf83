/* Run n independent jobs on a few threads and wait for all of them: the
 * concurrent upstream calls of one API request (a weight distribution's
 * member reads and writes), each still taking its slot of the shared rate
 * budget. Each worker thread gets a pool of its own, with its own allocator
 * (a request pool's allocator has no mutex), made a child of the caller's
 * pool: what a job allocates there lives until the caller's pool is
 * destroyed, and nothing is shared between threads but the job index. */
#ifndef GC_PARALLEL_H
#define GC_PARALLEL_H

#include <apr_pools.h>

/* Job i of n, run on some worker with that worker's pool. Jobs must write
 * only their own slot of any shared output. */
typedef void gc_parallel_fn(void *baton, size_t i, apr_pool_t *p);

/* The most threads gc_parallel_run starts. */
#define GC_PARALLEL_MAX_WORKERS 32

/* Run fn for every i in [0, n) on min(workers, n) threads (at most
 * GC_PARALLEL_MAX_WORKERS) and return when all have run. workers <= 1, n <= 1,
 * or a thread that cannot be started: the jobs not yet taken run in the
 * calling thread, so every job runs exactly once whatever happens. */
void gc_parallel_run(apr_pool_t *p, size_t n, int workers, gc_parallel_fn *fn, void *baton);

#endif
