#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "gc_board_cache.h"

/* Rebuild after this many merged rows beyond the board's size: the pool keeps
 * the strings of replaced rows until then. */
#define GARBAGE_FACTOR 2

struct gc_board_cache {
    apr_thread_mutex_t *mutex;
    apr_pool_t *parent;
    apr_pool_t *pool;         /* rows and their strings (NULL: no copy) */
    apr_array_header_t *rows; /* gc_board_row_t, ordered by user_id */
    apr_hash_t *index;        /* user_id → position in rows */
    gc_board_gen_t gen;
    long merged; /* rows merged since the last rebuild */
    int last;
};

gc_board_cache_t *gc_board_cache_create(apr_pool_t *p)
{
    gc_board_cache_t *c = apr_pcalloc(p, sizeof(*c));

    c->parent = p;
    if (apr_thread_mutex_create(&c->mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        return NULL;
    }
    return c;
}

int gc_board_cache_last(const gc_board_cache_t *c)
{
    return c->last;
}

static const char *pdup(apr_pool_t *p, const char *s)
{
    return s ? apr_pstrdup(p, s) : NULL;
}

static void copy_row(apr_pool_t *p, gc_board_row_t *to, const gc_board_row_t *from)
{
    *to = *from;
    to->user_id = pdup(p, from->user_id);
    to->user_name = pdup(p, from->user_name);
    to->state = pdup(p, from->state);
    to->presence = pdup(p, from->presence);
    to->routing_status = pdup(p, from->routing_status);
    to->queue_ids = pdup(p, from->queue_ids);
    to->active_queue_ids = pdup(p, from->active_queue_ids);
}

static void reindex(gc_board_cache_t *c)
{
    int i;

    c->index = apr_hash_make(c->pool);
    for (i = 0; i < c->rows->nelts; i++) {
        gc_board_row_t *b = &APR_ARRAY_IDX(c->rows, i, gc_board_row_t);
        int *pos = apr_palloc(c->pool, sizeof(*pos));
        *pos = i;
        apr_hash_set(c->index, b->user_id, APR_HASH_KEY_STRING, pos);
    }
}

static apr_status_t rebuild(gc_board_cache_t *c, gc_store_t *s, apr_pool_t *p,
                            const gc_board_gen_t *g, const char **err)
{
    apr_array_header_t *rows;
    apr_pool_t *np;
    int i;

    if (gc_store_read_board(s, p, NULL, NULL, NULL, &rows, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (apr_pool_create(&np, c->parent) != APR_SUCCESS) {
        *err = "out of memory";
        return APR_ENOMEM;
    }
    if (c->pool) {
        apr_pool_destroy(c->pool);
    }
    c->pool = np;
    c->rows = apr_array_make(np, rows->nelts + 16, sizeof(gc_board_row_t));
    for (i = 0; i < rows->nelts; i++) {
        const gc_board_row_t *b = &APR_ARRAY_IDX(rows, i, gc_board_row_t);
        if (b->user_id) {
            copy_row(np, apr_array_push(c->rows), b);
        }
    }
    reindex(c);
    c->gen = *g;
    c->merged = 0;
    c->last = 2;
    return APR_SUCCESS;
}

static int by_user(const void *a, const void *b)
{
    return strcmp(((const gc_board_row_t *)a)->user_id, ((const gc_board_row_t *)b)->user_id);
}

/* Merge the rows changed since the copy's generation; new agents are appended
 * and the order restored. */
static apr_status_t merge(gc_board_cache_t *c, gc_store_t *s, apr_pool_t *p,
                          const gc_board_gen_t *g, const char **err)
{
    apr_array_header_t *changed;
    int i, added = 0;

    if (gc_store_read_board_since(s, p, c->gen.gen, &changed, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < changed->nelts; i++) {
        const gc_board_row_t *b = &APR_ARRAY_IDX(changed, i, gc_board_row_t);
        int *pos;
        if (!b->user_id) {
            continue;
        }
        pos = apr_hash_get(c->index, b->user_id, APR_HASH_KEY_STRING);
        if (pos) {
            copy_row(c->pool, &APR_ARRAY_IDX(c->rows, *pos, gc_board_row_t), b);
        }
        else {
            copy_row(c->pool, apr_array_push(c->rows), b);
            added++;
        }
    }
    if (added) {
        qsort(c->rows->elts, (size_t)c->rows->nelts, sizeof(gc_board_row_t), by_user);
        reindex(c);
    }
    c->merged += changed->nelts;
    c->gen = *g;
    c->last = 1;
    return APR_SUCCESS;
}

apr_status_t gc_board_cache_visit(gc_board_cache_t *c, gc_store_t *s, apr_pool_t *p,
                                  gc_board_visit_fn *fn, void *baton, const char **err)
{
    gc_board_gen_t g;
    apr_status_t rv = APR_SUCCESS;

    if (gc_store_read_board_gen(s, p, &g, err) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    apr_thread_mutex_lock(c->mutex);
    if (!c->pool || g.id != c->gen.id || c->merged > GARBAGE_FACTOR * (long)c->rows->nelts + 1024) {
        rv = rebuild(c, s, p, &g, err);
    }
    else if (g.gen > c->gen.gen) {
        rv = merge(c, s, p, &g, err);
    }
    else {
        c->last = 0; /* current (or newer: another thread merged first) */
    }
    if (rv == APR_SUCCESS) {
        fn(baton, c->rows, &c->gen);
    }
    else if (c->pool) {
        /* a copy that may be half merged is not kept */
        apr_pool_destroy(c->pool);
        c->pool = NULL;
    }
    apr_thread_mutex_unlock(c->mutex);
    return rv;
}
