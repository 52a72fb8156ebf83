/* A process's copy of the live board (SPEC §5.2, §9.17), kept current by
 * generation: a full board request reads only the agents changed since the
 * copy's generation (an index range, see gc_store_read_board_since) and merges
 * them, so serving the whole board costs what changed, not 20,000 rows of
 * database reads. Every agent row carries its generation and rows are never
 * deleted, so a merge is exact; a copy of another database (board_id), or one
 * that has merged many times (its pool grows with replaced strings), is
 * rebuilt from a full read. Thread-safe. */
#ifndef GC_BOARD_CACHE_H
#define GC_BOARD_CACHE_H

#include <apr_pools.h>
#include <apr_tables.h>

#include "gc_store.h"
#include "gc_store_read.h"

typedef struct gc_board_cache gc_board_cache_t;

gc_board_cache_t *gc_board_cache_create(apr_pool_t *p);

/* Called with the board's rows (gc_board_row_t, ordered by user_id) while the
 * copy is held: render them before returning, keep no pointer. */
typedef void gc_board_visit_fn(void *baton, const apr_array_header_t *rows,
                               const gc_board_gen_t *gen);

/* Bring the copy up to the database's generation (read first, the rows after:
 * a row changed meanwhile is merged again next time, never missed) and visit
 * it. APR_SUCCESS, or the store's error in *err. */
apr_status_t gc_board_cache_visit(gc_board_cache_t *c, gc_store_t *s, apr_pool_t *p,
                                  gc_board_visit_fn *fn, void *baton, const char **err);

/* How the last visit was served (tests, bench): 0 from the copy as it was,
 * 1 merged a delta, 2 rebuilt from a full read. */
int gc_board_cache_last(const gc_board_cache_t *c);

#endif
