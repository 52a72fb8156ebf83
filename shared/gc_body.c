#include <math.h>
#include <string.h>

#include <apr_strings.h>

#include "gc_body.h"
#include "gc_utf8.h"

#define NAME_MAX_BYTES 64

static const char *const type_names[] = {
    [GC_BODY_STRING] = "a string",    [GC_BODY_NUMBER] = "a number",
    [GC_BODY_INTEGER] = "an integer", [GC_BODY_BOOLEAN] = "true or false",
    [GC_BODY_OBJECT] = "an object",   [GC_BODY_ARRAY] = "an array",
};

apr_size_t gc_body_chars(const json_t *s)
{
    const char *v = json_string_value(s);
    apr_size_t i, n = 0, len = json_string_length(s);

    for (i = 0; i < len; i++) {
        n += ((unsigned char)v[i] & 0xC0) != 0x80;
    }
    return n;
}

void gc_body_error(gc_result_t *res, const char *field, const char *type, const char *message)
{
    gc_result_field(res, field, apr_pstrcat(res->pool, field, " ", message, NULL));
    gc_result_error_type(res, type);
}

static int type_ok(gc_body_type_e t, const json_t *v)
{
    switch (t) {
    case GC_BODY_STRING: return json_is_string(v);
    case GC_BODY_NUMBER: return json_is_number(v);
    case GC_BODY_INTEGER: return json_is_integer(v);
    case GC_BODY_BOOLEAN: return json_is_boolean(v);
    case GC_BODY_OBJECT: return json_is_object(v);
    default: return json_is_array(v);
    }
}

/* "must be …" for a value out of its bounds, or NULL when within. */
static const char *bounds_message(apr_pool_t *p, const gc_body_field_t *f, const json_t *v)
{
    double x;
    const char *unit = NULL;

    switch (f->type) {
    case GC_BODY_STRING:
        x = (double)gc_body_chars(v);
        unit = "characters";
        break;
    case GC_BODY_NUMBER:
    case GC_BODY_INTEGER: x = json_number_value(v); break;
    case GC_BODY_OBJECT:
        x = (double)json_object_size(v);
        unit = "members";
        break;
    case GC_BODY_ARRAY:
        x = (double)json_array_size(v);
        unit = "items";
        break;
    default: return NULL;
    }
    if (!(f->flags & GC_BODY_BOUNDED) || (x >= f->min && x <= f->max && !isnan(x))) {
        return NULL;
    }
    if (unit) {
        return f->min > 0 ? apr_psprintf(p, "must be %.0f to %.0f %s", f->min, f->max, unit)
                          : apr_psprintf(p, "must be at most %.0f %s", f->max, unit);
    }
    return f->type == GC_BODY_INTEGER
               ? apr_psprintf(p, "must be an integer from %.0f to %.0f", f->min, f->max)
               : apr_psprintf(p, "must be between %g and %g", f->min, f->max);
}

static void check_field(gc_result_t *res, const gc_body_field_t *f, const json_t *v, void *baton)
{
    int required = (f->flags & GC_BODY_REQUIRED) != 0;
    const char *msg;

    if (!v || json_is_null(v)) {
        if (required) {
            gc_body_error(res, f->name, "missing_field", "is required");
        }
        return;
    }
    if (!type_ok(f->type, v)) {
        gc_body_error(res, f->name, "invalid_type",
                      apr_pstrcat(res->pool, "must be ", type_names[f->type],
                                  required ? NULL : " or null", NULL));
        return;
    }
    if ((msg = bounds_message(res->pool, f, v))) {
        gc_body_error(res, f->name, "invalid_value", msg);
        return;
    }
    if (f->check) {
        f->check(res, f, v, baton);
    }
}

/* A member's name for a message: at most 64 bytes, cut on a character
 * boundary so the error entry stays valid UTF-8. */
static const char *member_name(apr_pool_t *p, const char *key)
{
    apr_size_t len = strlen(key), cut = 0;

    while (cut < len) {
        apr_size_t n = gc_utf8_seq((const unsigned char *)key + cut, len - cut);
        if (n == 0 || cut + n > NAME_MAX_BYTES) {
            break;
        }
        cut += n;
    }
    return cut == len ? key : apr_pstrcat(p, apr_pstrmemdup(p, key, cut), "...", NULL);
}

static int known(const gc_body_field_t *fields, size_t n, const char *key)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (!strcmp(fields[i].name, key)) {
            return 1;
        }
    }
    return 0;
}

int gc_body_validate(gc_result_t *res, const json_t *body, const gc_body_field_t *fields, size_t n,
                     void *baton)
{
    return gc_body_validate_in(res, NULL, body, fields, n, baton);
}

int gc_body_validate_in(gc_result_t *res, const char *prefix, const json_t *body,
                        const gc_body_field_t *fields, size_t n, void *baton)
{
    size_t before = res->errors ? json_array_size(res->errors) : 0, i;
    const char *names = NULL, *key;
    int nested = prefix && *prefix;
    json_t *v;

    for (i = 0; i < n; i++) {
        gc_body_field_t f = fields[i];

        if (nested) {
            f.name = apr_pstrcat(res->pool, prefix, ".", fields[i].name, NULL);
        }
        check_field(res, &f, body ? json_object_get(body, fields[i].name) : NULL, baton);
    }
    if (body) {
        json_object_foreach((json_t *)body, key, v)
        {
            if (known(fields, n, key)) {
                continue;
            }
            if (!names) {
                names = n ? fields[0].name : "it takes none";
                for (i = 1; i < n; i++) {
                    names = apr_pstrcat(res->pool, names, ", ", fields[i].name, NULL);
                }
            }
            gc_body_error(
                res,
                nested ? apr_pstrcat(res->pool, prefix, ".", member_name(res->pool, key), NULL)
                       : member_name(res->pool, key),
                "invalid_value",
                apr_pstrcat(res->pool, "is not a member of this request (", names, ")", NULL));
        }
    }
    return (int)((res->errors ? json_array_size(res->errors) : 0) - before);
}

void gc_body_fail(gc_result_t *res, int status)
{
    size_t n = res->errors ? json_array_size(res->errors) : 0;
    const char *detail =
        n == 1 ? json_string_value(json_object_get(json_array_get(res->errors, 0), "message"))
               : apr_psprintf(res->pool, "%d fields are invalid", (int)n);

    gc_result_problem(res, status, "validation_failed", "Invalid request", detail);
}
