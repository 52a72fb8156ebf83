/* Every host's route tables from the database (SPEC §9.9; docs/scale-out.md):
 * the active strategies (gc_store_strategy_active: body, live, observed_at)
 * compiled into route tables (gc_strategy_compile) and published into this
 * host's block (gc_route_shm_publish). The monitor thread of one child runs
 * it whenever the block is older than GC_ROUTE_REFRESH and it took the
 * block's refresh claim (gc_monitor_routes.c). */
#ifndef GC_ROUTE_LOAD_H
#define GC_ROUTE_LOAD_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "gc_route_shm.h"

struct gc_store;

/* What a load found. */
typedef struct {
    int active;                /* active strategies read */
    int routed;                /* their tables in the block */
    int unreadable;            /* stored body that does not validate: not routed */
    const char *unreadable_id; /* the first of them, or NULL */
    int left_out;              /* no free slot (more than GC_ROUTE_SHM_SLOTS) */
    apr_uint64_t generation;   /* the block's after the publish */
    int dropped;               /* a newer publish came first: nothing changed */
} gc_route_load_report_t;

/* Compile rows (gc_strategy_rec_t of active strategies) into *tables (from
 * p; *n the count compiled, at most GC_ROUTE_SHM_SLOTS: rows past them are
 * counted as left out, in rows' order): each body read back with
 * gc_strategy_validate, its `live` with gc_strategy_live_parse, observed_at
 * from the row (0: no observation yet, the route says stale). Rows whose body
 * does not read are skipped and counted in rep. */
void gc_route_load_compile(apr_pool_t *p, const apr_array_header_t *rows, gc_route_table_t **tables,
                           int *n, gc_route_load_report_t *rep);

/* Read the active strategies from s, compile and publish them into b as read
 * at read_at (the time before the read). The caller holds b's refresh claim
 * (gc_route_shm_claim); a publish releases it. On a database error nothing
 * is published and *err says why: the caller releases the claim. Scratch
 * from p. */
apr_status_t gc_route_load(gc_route_shm_t *b, struct gc_store *s, apr_pool_t *p, apr_time_t read_at,
                           gc_route_load_report_t *rep, const char **err);

#endif
