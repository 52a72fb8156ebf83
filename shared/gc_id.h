/* Genesys Cloud object ids as gcmon accepts them. */
#ifndef GC_ID_H
#define GC_ID_H

#include <apr_pools.h>

/* A Genesys object id as gcmon accepts it in directives and URLs:
 * 1..64 of [A-Za-z0-9-_]. */
int gc_id_valid(const char *s);

/* A new id of gcmon's own: prefix, "-" and 32 random hex digits (from p),
 * e.g. "dist-…", "trace-…". */
const char *gc_id_random(apr_pool_t *p, const char *prefix);

#endif
