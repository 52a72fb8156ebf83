/* Every host's route tables from the database (see the header). */
#include <string.h>

#include <jansson.h>

#include "gc_result.h"
#include "gc_route_load.h"
#include "gc_store_strategy.h"
#include "gc_strategy.h"
#include "gc_strategy_calls.h"

/* One row's table: 0, or -1 when its body does not read back. */
static int compile_row(apr_pool_t *p, const gc_strategy_rec_t *r, gc_route_table_t *t)
{
    gc_strategy_live_t live[GC_STRATEGY_MAX_TARGETS];
    gc_strategy_t *s = NULL;
    json_t *body = r->body ? json_loads(r->body, 0, NULL) : NULL;
    int bad;

    bad = !body || gc_strategy_validate(p, gc_result_make(p), body, &s) != 0 || !s
          || s->n_targets < 1 || s->n_targets > GC_STRATEGY_MAX_TARGETS;
    json_decref(body);
    if (bad) {
        return -1;
    }
    memset(live, 0, sizeof(live));
    gc_strategy_live_parse(r->live, s, live);
    return gc_strategy_compile(s, r->id, live, r->live ? r->observed_at : 0, 0, t);
}

void gc_route_load_compile(apr_pool_t *p, const apr_array_header_t *rows, gc_route_table_t **tables,
                           int *n, gc_route_load_report_t *rep)
{
    int i, nrows = rows ? rows->nelts : 0;
    int room = nrows < GC_ROUTE_SHM_SLOTS ? nrows : GC_ROUTE_SHM_SLOTS;

    memset(rep, 0, sizeof(*rep));
    *n = 0;
    *tables = apr_palloc(p, sizeof(gc_route_table_t) * (apr_size_t)(room > 0 ? room : 1));
    rep->active = nrows;
    for (i = 0; i < nrows; i++) {
        const gc_strategy_rec_t *r = &APR_ARRAY_IDX(rows, i, gc_strategy_rec_t);
        if (*n == room) {
            rep->left_out++; /* the block could not hold it anyway */
            continue;
        }
        if (!r->id || compile_row(p, r, &(*tables)[*n]) != 0) {
            if (rep->unreadable++ == 0) {
                rep->unreadable_id = r->id;
            }
            continue;
        }
        (*n)++;
    }
}

apr_status_t gc_route_load(gc_route_shm_t *b, struct gc_store *s, apr_pool_t *p, apr_time_t read_at,
                           gc_route_load_report_t *rep, const char **err)
{
    apr_array_header_t *rows = NULL;
    gc_route_table_t *tables;
    gc_route_shm_info_t info;
    int n, left;
    apr_status_t rv;

    memset(rep, 0, sizeof(*rep));
    rv = gc_store_strategy_active(s, p, &rows, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    gc_route_load_compile(p, rows, &tables, &n, rep);
    left = gc_route_shm_publish(b, tables, n, read_at);
    if (left < 0) {
        rep->dropped = 1;
    }
    else {
        rep->left_out += left;
    }
    gc_route_shm_info(b, &info);
    rep->routed = info.tables;
    rep->generation = info.generation;
    return APR_SUCCESS;
}
