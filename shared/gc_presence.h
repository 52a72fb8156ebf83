/* Agent status changes (SPEC §3.3): the org's presence definitions (cached
 * per process), gcmon's own presence ETag and If-Match, and the
 * GcmonTransition rules. Genesys has no ETag or If-Match on presence, so the
 * ETag is gcmon's: a strong one over the presence definition id and
 * modifiedDate, checked against a fresh GET just before the PATCH (If-Match
 * is parsed by gc_etag_match). */
#ifndef GC_PRESENCE_H
#define GC_PRESENCE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

#include "gc_upstream.h"

/* One active presence definition. */
typedef struct {
    const char *id;
    const char *system; /* canonical system presence: "Available", "OnQueue" */
    const char *label;  /* languageLabels.en_US, or NULL */
    int user_defined;   /* type "User" (org-defined) */
} gc_presence_def_t;

/* Parse a GET /api/v2/presence/definitions listing: active definitions with a
 * known system presence, in listing order. */
apr_array_header_t *gc_presence_defs_parse(apr_pool_t *p, const json_t *listing);

/* Find `name` among defs: a definition id, then a system presence in any
 * casing ("break", "ON_QUEUE", "On Queue") — the System definition before
 * org-defined ones — then a label, case-insensitively (ASCII). NULL if none. */
const gc_presence_def_t *gc_presence_find(const apr_array_header_t *defs, const char *name);

/* The definitions, fetched with `upstream` and cached per process for `ttl`.
 * Thread-safe. */
typedef struct gc_presence_cache gc_presence_cache_t;
gc_presence_cache_t *gc_presence_cache_create(apr_pool_t *p, apr_interval_time_t ttl);

/* Resolve `name` (see gc_presence_find) into *out (copied into p). The cache
 * is refreshed when older than its ttl, and once more when `name` is unknown
 * and the cache is older than 30 s (a definition just added in Genesys); a
 * fetch runs under `deadline` (gc_request_t.deadline; 0: none).
 * APR_SUCCESS with *found 0 or 1; an upstream failure returns its status and
 * *err. */
apr_status_t gc_presence_resolve(gc_presence_cache_t *c, gc_upstream_t *u, apr_pool_t *p,
                                 const char *name, apr_time_t deadline, gc_presence_def_t *out,
                                 int *found, gc_error_t **err);

/* Forget the cached definitions (tests). */
void gc_presence_cache_clear(gc_presence_cache_t *c);

/* A user's current presence from GET/PATCH /api/v2/users/{id}/presences/purecloud. */
typedef struct {
    const char *definition_id;
    const char *system;  /* canonical system presence, or NULL if unknown */
    const char *message; /* may be NULL */
    apr_time_t modified; /* modifiedDate, ms precision; 0 if absent */
    const char *etag;    /* "\"<32 hex>\"" */
} gc_user_presence_t;

/* Read a UserPresence body. -1 when it lacks presenceDefinition.id or a
 * valid modifiedDate. */
int gc_user_presence_parse(apr_pool_t *p, const json_t *body, gc_user_presence_t *out);

/* gcmon's strong ETag of a presence: "\"" + 32 lowercase hex of SHA-256
 * over the definition id and the millisecond modifiedDate + "\"". */
const char *gc_presence_etag(apr_pool_t *p, const char *definition_id, apr_time_t modified);

/* ------------------------------------------------------------ GcmonTransition */

/* One rule: from (a system presence or "*") to any of `to`. */
typedef struct {
    const char *from;
    apr_array_header_t *to; /* const char *: system presences or "*" */
} gc_transition_t;

/* Parse "<from> <to>..." (argv of the directive). NULL on success, else the
 * reason (for apache2 -t). Names are the 10 system presences exactly as
 * written in SPEC §3.1 (Available … OnQueue), or "*"; routing statuses are
 * refused with an explanation. */
const char *gc_transition_parse(apr_pool_t *p, int argc, char *const argv[], gc_transition_t *out);

/* Is from → to allowed by rules (gc_transition_t)? Always when rules is
 * empty or NULL, and always when from equals to. */
int gc_transition_allowed(const apr_array_header_t *rules, const char *from, const char *to);

#endif
