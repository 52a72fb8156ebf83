/* The stream holder's status shared with the other hosts of one PostgreSQL
 * database (docs/scale-out.md): the holder writes its snapshot into the lease
 * row at every renewal; a standby on another host reads it back with the
 * lease and mirrors it into its own status block, so that /v1/stream and
 * mod_status show the holder's real state on every host. One host's children
 * share the status block already and need none of this. */
#ifndef GC_STREAM_SHARE_H
#define GC_STREAM_SHARE_H

#include <apr_pools.h>

#include "gc_stream_status.h"

/* The holder's snapshot `s` as a compact JSON document from pool p (times in
 * microseconds; channel labels only, never ids; `enabled` and `lease_holder`
 * are the reader's own and not included). */
char *gc_stream_share_json(apr_pool_t *p, const gc_stream_snapshot_t *s);

/* Read `doc` into *out (zeroed first). 1 when it is a well-formed document of
 * holder `holder_id` (a row rewritten by a new holder is not taken for the
 * old one's); else 0 and *out is left zeroed. */
int gc_stream_share_parse(const char *doc, const char *holder_id, gc_stream_snapshot_t *out);

/* Holder id "node:pid:random": does it belong to node `node`? */
int gc_stream_share_same_node(const char *holder_id, const char *node);

#endif
