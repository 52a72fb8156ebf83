/* The background thread skeleton (gc_worker.h).
 *
 * Waits are poll(2) on an eventfd, not a condition variable: a stop must be
 * possible from a signal handler (prefork runs child_stopping and destroys
 * pchild from one), and write(2) is async-signal-safe where signalling a
 * condition variable — which takes a mutex the interrupted thread may hold —
 * is not. The flags say why a wait ended; the eventfd only rings. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "gc_backoff.h"
#include "gc_store.h"
#include "gc_worker.h"

#define POOL_MAX_FREE (256 * 1024)

/* A doorbell: a non-blocking eventfd (one descriptor). */
typedef struct {
    int fd;
} bell_t;

struct gc_worker {
    apr_pool_t *pool;
    const char *name;
    gc_worker_main_fn *main;
    void *baton;
    apr_thread_t *thread; /* gc_worker_start's; NULL once joined */
    bell_t bell;          /* wakes and stops: the worker waits on it */
    bell_t done_bell;     /* main returned: the joiner waits on it */
    _Atomic int stop;
    _Atomic int woken;
    _Atomic int started;
    _Atomic int done;
    _Atomic apr_time_t db_patience; /* after a stop, database waits end then */

    /* the worker's thread only */
    apr_uint64_t rng;
    gc_worker_db_conf_t dbconf;
    gc_dbconn_t db;
    int db_failures;
    apr_time_t db_retry_at;
    apr_time_t db_logged_at;
};

/* ---------------------------------------------------------------- doorbell */

static apr_status_t bell_close(void *data)
{
    bell_t *b = data;

    if (b->fd >= 0) {
        close(b->fd);
    }
    b->fd = -1;
    return APR_SUCCESS;
}

/* Closed with p, and in a child forked from this process before it execs. */
static apr_status_t bell_init(bell_t *b, apr_pool_t *p)
{
    if ((b->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    apr_pool_cleanup_register(p, b, bell_close, bell_close);
    return APR_SUCCESS;
}

/* Async-signal-safe: one write(2), errno kept. */
static void bell_ring(bell_t *b)
{
    int saved = errno;
    uint64_t one = 1;

    if (write(b->fd, &one, sizeof(one)) < 0) {
        /* EAGAIN (the counter is full): it rings already */
    }
    errno = saved;
}

/* Wait until the bell rings or `until` (at the millisecond, rounded up so a
 * wait never spins); silences it. */
static void bell_wait(bell_t *b, apr_time_t until)
{
    struct pollfd pfd;
    apr_time_t left = until - apr_time_now();
    uint64_t count;
    int ms;

    if (left <= 0) {
        ms = 0;
    }
    else if (left >= (apr_time_t)INT_MAX * 1000) {
        ms = INT_MAX;
    }
    else {
        ms = (int)((left + 999) / 1000);
    }
    memset(&pfd, 0, sizeof(pfd));
    pfd.fd = b->fd;
    pfd.events = POLLIN;
    if (poll(&pfd, 1, ms) > 0 && read(b->fd, &count, sizeof(count)) < 0) {
        /* EAGAIN: another read took it */
    }
}

/* ---------------------------------------------------------------- random */

/* splitmix64: any seed will do, zero included. */
static apr_uint64_t next_random(gc_worker_t *w)
{
    apr_uint64_t z = (w->rng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void seed(gc_worker_t *w)
{
    unsigned char b[sizeof(w->rng)];

    if (apr_generate_random_bytes(b, sizeof(b)) == APR_SUCCESS) {
        memcpy(&w->rng, b, sizeof(w->rng));
    }
    else {
        w->rng = (apr_uint64_t)apr_time_now() ^ (apr_uint64_t)(uintptr_t)w;
    }
}

double gc_worker_rand(gc_worker_t *w)
{
    return (double)(next_random(w) >> 11) / 9007199254740992.0;
}

apr_interval_time_t gc_worker_backoff(gc_worker_t *w, apr_interval_time_t min,
                                      apr_interval_time_t max, int failures,
                                      apr_interval_time_t retry_after)
{
    apr_interval_time_t d = gc_backoff_delay(min, max, failures, gc_worker_rand(w));

    return retry_after > d ? retry_after : d;
}

/* ---------------------------------------------------------------- lifecycle */

apr_status_t gc_worker_create(gc_worker_t **out, apr_pool_t *parent, const char *name)
{
    apr_allocator_t *alloc;
    apr_pool_t *p;
    gc_worker_t *w;
    apr_status_t rv;

    *out = NULL;
    if ((rv = apr_allocator_create(&alloc)) != APR_SUCCESS) {
        return rv;
    }
    apr_allocator_max_free_set(alloc, POOL_MAX_FREE);
    if ((rv = apr_pool_create_ex(&p, parent, NULL, alloc)) != APR_SUCCESS) {
        apr_allocator_destroy(alloc);
        return rv;
    }
    apr_allocator_owner_set(alloc, p);
    w = apr_pcalloc(p, sizeof(*w));
    w->pool = p;
    w->name = apr_pstrdup(p, name ? name : "worker");
    apr_pool_tag(p, apr_pstrcat(p, "gcmon_", w->name, NULL));
    w->bell.fd = w->done_bell.fd = -1;
    if ((rv = bell_init(&w->bell, p)) != APR_SUCCESS
        || (rv = bell_init(&w->done_bell, p)) != APR_SUCCESS) {
        apr_pool_destroy(p);
        return rv;
    }
    atomic_init(&w->stop, 0);
    atomic_init(&w->woken, 0);
    atomic_init(&w->started, 0);
    atomic_init(&w->done, 0);
    seed(w);
    *out = w;
    return APR_SUCCESS;
}

apr_pool_t *gc_worker_pool(gc_worker_t *w)
{
    return w->pool;
}

const char *gc_worker_name(const gc_worker_t *w)
{
    return w->name;
}

/* main, then the epilogue every worker needs: its connection closed, and the
 * joiner told (done before the ring: a joiner that wakes finds it set). */
static void run_main(gc_worker_t *w)
{
    w->main(w, w->baton);
    gc_worker_db_close(w);
    atomic_store(&w->done, 1);
    bell_ring(&w->done_bell);
}

static void *APR_THREAD_FUNC worker_thread(apr_thread_t *t, void *data)
{
    run_main(data);
    return NULL;
}

apr_status_t gc_worker_start(gc_worker_t *w, gc_worker_main_fn *main, void *baton,
                             gc_thread_create_fn *create)
{
    apr_status_t rv;

    w->main = main;
    w->baton = baton;
    atomic_store(&w->started, 1);
    rv = (create ? create : apr_thread_create)(&w->thread, NULL, worker_thread, w, w->pool);
    if (rv != APR_SUCCESS) {
        w->thread = NULL;
        atomic_store(&w->started, 0);
    }
    return rv;
}

void gc_worker_run(gc_worker_t *w, gc_worker_main_fn *main, void *baton)
{
    w->main = main;
    w->baton = baton;
    run_main(w);
}

void gc_worker_wake(gc_worker_t *w)
{
    if (!atomic_exchange(&w->woken, 1)) {
        bell_ring(&w->bell);
    }
}

void gc_worker_stop(gc_worker_t *w)
{
    atomic_store(&w->stop, 1);
    bell_ring(&w->bell);
}

apr_status_t gc_worker_join(gc_worker_t *w, apr_interval_time_t patience)
{
    apr_time_t until = patience < 0 ? APR_INT64_MAX : apr_time_now() + patience;
    apr_status_t rv;

    if (!atomic_load(&w->started)) {
        return APR_SUCCESS;
    }
    while (!atomic_load(&w->done) && apr_time_now() < until) {
        bell_wait(&w->done_bell, until);
    }
    if (!atomic_load(&w->done)) {
        return APR_TIMEUP;
    }
    if (w->thread) {
        apr_thread_join(&rv, w->thread);
        w->thread = NULL;
    }
    return APR_SUCCESS;
}

void gc_worker_destroy(gc_worker_t *w)
{
    if (w) {
        gc_worker_join(w, -1);
        apr_pool_destroy(w->pool);
    }
}

/* ---------------------------------------------------------------- waits */

int gc_worker_stopping(gc_worker_t *w)
{
    return atomic_load(&w->stop) != 0;
}

gc_worker_wait_e gc_worker_wait(gc_worker_t *w, apr_time_t until)
{
    for (;;) {
        if (atomic_load(&w->stop)) {
            return GC_WORKER_STOPPED;
        }
        if (atomic_exchange(&w->woken, 0)) {
            return GC_WORKER_WOKEN;
        }
        if (apr_time_now() >= until) {
            return GC_WORKER_TIMEOUT;
        }
        bell_wait(&w->bell, until);
    }
}

gc_worker_wait_e gc_worker_pause(gc_worker_t *w, apr_time_t until)
{
    for (;;) {
        if (atomic_load(&w->stop)) {
            return GC_WORKER_STOPPED;
        }
        if (apr_time_now() >= until) {
            return GC_WORKER_TIMEOUT;
        }
        bell_wait(&w->bell, until);
    }
}

/* ---------------------------------------------------------------- database */

void gc_worker_use_db(gc_worker_t *w, const gc_worker_db_conf_t *db)
{
    w->dbconf = *db;
    if (w->dbconf.retry_min <= 0) {
        w->dbconf.retry_min = GC_WORKER_DB_RETRY_MIN;
    }
    if (w->dbconf.retry_max <= 0) {
        w->dbconf.retry_max = GC_WORKER_DB_RETRY_MAX;
    }
}

static int db_give_up(void *baton)
{
    gc_worker_t *w = baton;

    return gc_worker_stopping(w) && apr_time_now() >= atomic_load(&w->db_patience);
}

void gc_worker_db_patience(gc_worker_t *w, apr_time_t until)
{
    atomic_store(&w->db_patience, until);
}

apr_status_t gc_worker_db(gc_worker_t *w, struct gc_store **store, const char **err)
{
    apr_status_t rv;

    *store = w->db.store;
    if (*store) {
        return APR_SUCCESS;
    }
    if (!w->dbconf.open) {
        *err = "no database configured";
        return APR_EINVAL;
    }
    if (apr_time_now() < w->db_retry_at) {
        return APR_EAGAIN;
    }
    rv = gc_dbconn_open(&w->db, w->pool, w->dbconf.open, w->dbconf.baton, err);
    if (rv == APR_SUCCESS) {
        *store = w->db.store;
        gc_store_set_give_up(*store, db_give_up, w);
        if (w->dbconf.opened) {
            w->dbconf.opened(*store, w->dbconf.opened_baton);
        }
    }
    return rv == APR_EAGAIN ? APR_EGENERAL : rv;
}

struct gc_store *gc_worker_store(gc_worker_t *w)
{
    return w->db.store;
}

int gc_worker_db_failed(gc_worker_t *w)
{
    apr_time_t now = apr_time_now();

    gc_worker_db_close(w);
    w->db_failures++;
    w->db_retry_at =
        now + gc_worker_backoff(w, w->dbconf.retry_min, w->dbconf.retry_max, w->db_failures, 0);
    if (w->db_failures == 1 || now - w->db_logged_at >= GC_WORKER_LOG_EVERY) {
        w->db_logged_at = now;
        return 1;
    }
    return 0;
}

int gc_worker_db_ok(gc_worker_t *w)
{
    int n = w->db_failures;

    w->db_failures = 0;
    w->db_retry_at = 0;
    return n;
}

int gc_worker_db_failures(gc_worker_t *w)
{
    return w->db_failures;
}

apr_time_t gc_worker_db_retry_at(gc_worker_t *w)
{
    return w->db_retry_at;
}

void gc_worker_db_close(gc_worker_t *w)
{
    gc_dbconn_close(&w->db, w->dbconf.close, w->dbconf.baton);
}
