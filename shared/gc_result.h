/* The outcome of an API operation of the core, as the HTTP API answers it
 * (mod_md's md_result_t is the model): a success document, or an RFC 9457
 * problem with its field errors and extra members. The core decides every
 * status, slug and message; the glue only renders a result. Everything hangs
 * off the pool the result was made in (JSON references are released by a
 * cleanup of that pool). */
#ifndef GC_RESULT_H
#define GC_RESULT_H

#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>

#include "gc_upstream.h"

#define GC_PROBLEM_BASE "urn:gcmon:problem:"

typedef struct gc_result {
    apr_pool_t *pool;
    int status;       /* HTTP status; 0 until set */
    json_t *doc;      /* success document, or NULL */
    const char *slug; /* problem: urn:gcmon:problem:<slug> */
    const char *title;
    const char *detail;              /* may be NULL */
    json_t *errors;                  /* [{field, message}], or NULL */
    json_t *extra;                   /* more top-level members, or NULL */
    apr_interval_time_t retry_after; /* > 0: the answer carries Retry-After */
    const char *etag;                /* the answer carries this ETag, or NULL */
    const char *error_type;          /* gcmon_validation_errors_total{error_type}, or NULL */
} gc_result_t;

/* A fresh, unset result in pool p. */
gc_result_t *gc_result_make(apr_pool_t *p);

/* Success: status and document (stolen). */
void gc_result_ok(gc_result_t *res, int status, json_t *doc);

/* A problem. detail may be NULL. Field errors added before are kept. */
void gc_result_problem(gc_result_t *res, int status, const char *slug, const char *title,
                       const char *detail);

/* Append {field, message} to the problem's errors. */
void gc_result_field(gc_result_t *res, const char *field, const char *message);

/* Set an extra top-level member of the problem (value stolen). */
void gc_result_extra(gc_result_t *res, const char *key, json_t *value);

/* Count the problem under gcmon_validation_errors_total{error_type} (first
 * call wins: the first error found names the request's fault). */
void gc_result_error_type(gc_result_t *res, const char *type);

/* The problem an upstream failure maps to (SPEC §5.3): throttling and our own
 * budget → 503 upstream_throttled with Retry-After; misconfiguration → 500;
 * refused credentials, missing permission and the rest → 502. A call cut
 * short by its request's deadline (SPEC §9.16) → 503 upstream_deadline with
 * Retry-After, whatever the fault was. */
void gc_result_upstream(gc_result_t *res, const gc_error_t *e);

/* A problem has been set. */
int gc_result_failed(const gc_result_t *res);

/* The problem as JSON (type, title, status, detail, errors, extra), or the
 * document; a new reference. */
json_t *gc_result_json(const gc_result_t *res);

/* What an audit row records of it: the document (new reference), or
 * {"error": slug, "detail": detail}. */
json_t *gc_result_audit_json(const gc_result_t *res);

#endif
