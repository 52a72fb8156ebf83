/* Table-driven validation of admin request bodies (JSON objects), in the
 * spirit of gc_query.c: every error is collected with the member it concerns,
 * nothing is clamped, and members the table does not name are refused (a typo
 * such as "reson" must not be dropped silently). Messages never quote the
 * offending value. */
#ifndef GC_BODY_H
#define GC_BODY_H

#include <jansson.h>

#include "gc_result.h"

typedef enum {
    GC_BODY_STRING,  /* length bounds in characters (code points) */
    GC_BODY_NUMBER,  /* value bounds */
    GC_BODY_INTEGER, /* value bounds */
    GC_BODY_BOOLEAN,
    GC_BODY_OBJECT, /* bounds on the number of members */
    GC_BODY_ARRAY   /* bounds on the number of items */
} gc_body_type_e;

#define GC_BODY_REQUIRED 0x1u /* absent or null is an error */
#define GC_BODY_BOUNDED 0x2u  /* min/max apply */

typedef struct gc_body_field gc_body_field_t;

/* Further checks of a present, well-typed value (nested members, ids, sums):
 * report with gc_body_error(). */
typedef void gc_body_check_fn(gc_result_t *res, const gc_body_field_t *f, const json_t *value,
                              void *baton);

struct gc_body_field {
    const char *name;
    gc_body_type_e type;
    unsigned flags;
    double min, max;
    gc_body_check_fn *check; /* may be NULL */
};

/* Validate `body` (NULL counts as {}) against n fields. Errors are appended to
 * res (gc_result_field) in table order, unknown members after them, and the
 * first one names res->error_type (missing_field, invalid_type,
 * invalid_value). Returns the number of errors. */
int gc_body_validate(gc_result_t *res, const json_t *body, const gc_body_field_t *fields, size_t n,
                     void *baton);

/* gc_body_validate of a nested object (an item of a list, a member object):
 * every error names its field under `prefix` ("targets[2]" → "targets[2].weight",
 * unknown members "targets[2].<key>"), and a check function gets a copy of its
 * field whose name is that full path. prefix NULL or "" is gc_body_validate. */
int gc_body_validate_in(gc_result_t *res, const char *prefix, const json_t *body,
                        const gc_body_field_t *fields, size_t n, void *baton);

/* One error for `field` ("<field> <message>"), typed for the metric. */
void gc_body_error(gc_result_t *res, const char *field, const char *type, const char *message);

/* Turn the collected errors into the problem: `status` (400 or 422)
 * validation_failed, "Invalid request", the detail being the one message or
 * "N fields are invalid". */
void gc_body_fail(gc_result_t *res, int status);

/* Characters (code points) of a JSON string. */
apr_size_t gc_body_chars(const json_t *s);

#endif
