/* The route tables in shared memory (SPEC §3.6 "Route decision", §8, §9.9):
 * one block per httpd (an anonymous segment of the parent, kept across
 * graceful restarts like the stream status block) holding the compiled route
 * table (gc_route_table_t, flat and pointer-free) of every active strategy,
 * so that GET /v1/strategies/{id}/route decides in any child without a
 * database read or an upstream call.
 *
 * Layout: a header (magic, layout version and size checked on attach, the
 * writer lock, the refresh claim, a block-wide generation and refreshed_at)
 * and GC_ROUTE_SHM_SLOTS slots, each one table under a seqlock of its own:
 * readers never block and never see a torn table (they retry, boundedly,
 * while its writer is inside), and a publish rewrites only the slots whose
 * table changed.
 *
 * Writers: one process of the host at a time refreshes the block from the
 * database (gc_route_load). It first takes the refresh claim
 * (gc_route_shm_claim: only when the block is older than the bound, and no
 * live process holds a recent claim), reads and compiles outside any lock,
 * then publishes under the writer lock, a word holding the writer's pid that
 * is stolen when that process is gone (a SIGKILLed child never wedges the
 * block). A claim is stolen too when its process is gone or it is older than
 * GC_ROUTE_CLAIM_TTL (a refresher stuck in a database call); a publish older
 * than the last one (read_at before refreshed_at) is then dropped, so the
 * block never goes back in time.
 *
 * A table's generation is the block generation of the publish that last
 * changed it (weights, observations, tiers): equal generations on one server
 * mean the same table. */
#ifndef GC_ROUTE_SHM_H
#define GC_ROUTE_SHM_H

#include <apr_pools.h>
#include <apr_time.h>

#include "gc_strategy.h"

/* Active strategies one block holds; more are not routed (publish says how
 * many were left out). */
#define GC_ROUTE_SHM_SLOTS 64

/* Bump with any change of the block's layout (checked by attach, with the
 * size): a graceful restart onto another layout makes a new segment. */
#define GC_ROUTE_SHM_VERSION 1u

/* Every host refreshes its block from the database at least this often
 * (docs/api.md "Freshness"). */
#define GC_ROUTE_REFRESH apr_time_from_sec(2)
/* A refresh claim older than this is taken over even from a live process. */
#define GC_ROUTE_CLAIM_TTL apr_time_from_sec(30)

typedef struct gc_route_shm gc_route_shm_t;

/* Bytes of shared memory for the block. */
apr_size_t gc_route_shm_size(void);

/* Zero and initialise the block in mem (gc_route_shm_size bytes, aligned;
 * the parent, once per segment). */
gc_route_shm_t *gc_route_shm_init(void *mem);

/* The block in mem (size bytes, e.g. a segment kept across a graceful
 * restart) when this build's layout (version, slot count, size) initialised
 * it, else NULL: then make a new segment. */
gc_route_shm_t *gc_route_shm_attach(void *mem, apr_size_t size);

/* ---------------------------------------------------------------- refresh */

/* Should the caller refresh the block now? 1 when it is older than bound
 * (never refreshed, or the last refresh or attempt began bound ago or more)
 * and the caller took the refresh claim; then it must end with
 * gc_route_shm_publish or gc_route_shm_release. 0 otherwise (fresh, or
 * another live process is refreshing). Cheap: a few atomic loads when fresh. */
int gc_route_shm_claim(gc_route_shm_t *b, apr_time_t now, apr_interval_time_t bound);

/* Give the claim back without publishing (the database failed): the next
 * attempt comes a bound after this one, from whichever process claims. */
void gc_route_shm_release(gc_route_shm_t *b);

/* Publish the complete set of active strategies' tables (n of them, each
 * compiled: version set, strategy_id unique), read from the database at
 * read_at: each table replaces its strategy's slot (rewritten only when it
 * differs), new ones take free slots, and the slots of strategies not in the
 * set are cleared. refreshed_at becomes read_at and the block generation
 * grows by one; the caller's claim is released. A publish whose read_at is
 * before the block's refreshed_at (a claim taken over from a slow refresher)
 * changes nothing and returns -1. Otherwise returns how many tables found no
 * free slot (more than GC_ROUTE_SHM_SLOTS, or not compiled): not routed. */
int gc_route_shm_publish(gc_route_shm_t *b, const gc_route_table_t *tables, int n,
                         apr_time_t read_at);

/* ---------------------------------------------------------------- read */

typedef struct {
    apr_uint64_t generation; /* block-wide: publishes so far */
    apr_time_t refreshed_at; /* read_at of the last publish; 0: never */
    int tables;              /* active strategies held */
} gc_route_shm_info_t;

void gc_route_shm_info(gc_route_shm_t *b, gc_route_shm_info_t *out);

typedef enum {
    GC_ROUTE_OK = 0,     /* *out decided */
    GC_ROUTE_UNKNOWN,    /* no active strategy with that id in the block */
    GC_ROUTE_NOT_LOADED, /* the block was never refreshed (just started) */
    GC_ROUTE_BUSY        /* a writer stayed inside the slot for the whole bounded wait */
} gc_route_shm_e;

/* The table of strategy_id, copied consistently into *t. */
gc_route_shm_e gc_route_shm_lookup(gc_route_shm_t *b, const char *strategy_id, gc_route_table_t *t);

/* One route decision. */
typedef struct {
    gc_strategy_route_t route; /* gc_strategy_route's answer */
    apr_time_t observed_at;    /* the table's observations; 0: none */
} gc_route_decision_t;

/* Look strategy_id up and decide with rand01 (gc_strategy_route, max age
 * GC_STRATEGY_MAX_AGE). No allocation, no lock. */
gc_route_shm_e gc_route_shm_decide(gc_route_shm_t *b, const char *strategy_id, double rand01,
                                   apr_time_t now, gc_route_decision_t *out);

/* Uniform in [0, 1) from a per-thread generator (xoshiro256+, seeded once per
 * thread from apr_generate_random_bytes): fast, never for secrets. */
double gc_route_shm_rand(void);

#endif
