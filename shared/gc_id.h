/* Genesys Cloud object ids as gcmon accepts them. */
#ifndef GC_ID_H
#define GC_ID_H

/* A Genesys object id as gcmon accepts it in directives and URLs:
 * 1..64 of [A-Za-z0-9-_]. */
int gc_id_valid(const char *s);

#endif
