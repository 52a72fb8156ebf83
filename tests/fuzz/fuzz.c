/* The shared part of the fuzz targets (fuzz.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>

#include "fuzz.h"
#include "gc_log.h"
#include "gc_utf8.h"

static int debug; /* FUZZ_DEBUG set: print each result checked (writing seeds) */

static int log_all(void *baton, int level)
{
    return 1;
}

/* Every message has been formatted (gc_log's vsnprintf); nothing is printed. */
static void log_drop(void *baton, const char *file, int line, int level, apr_status_t rv,
                     const char *msg)
{
    FUZZ_CHECK(msg != NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_initialize();
    atexit(apr_terminate);
    gc_log_set(log_all, log_drop, NULL);
    debug = getenv("FUZZ_DEBUG") != NULL;
    return 0;
}

void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "fuzz: property failed at %s:%d: %s\n", file, line, what);
    fflush(stderr);
    abort();
}

apr_pool_t *fuzz_pool(void)
{
    apr_pool_t *p = NULL;

    FUZZ_CHECK(apr_pool_create(&p, NULL) == APR_SUCCESS);
    return p;
}

char *fuzz_cstr(const uint8_t *data, size_t size)
{
    size_t n = size ? strnlen((const char *)data, size) : 0;
    char *s = malloc(n + 1);

    FUZZ_CHECK(s != NULL);
    if (n) {
        memcpy(s, data, n);
    }
    s[n] = '\0';
    return s;
}

void fuzz_split_line(const uint8_t *data, size_t size, char **line, const uint8_t **rest,
                     size_t *rest_len)
{
    const uint8_t *nl = size ? memchr(data, '\n', size) : NULL;
    size_t n = nl ? (size_t)(nl - data) : size;

    *line = fuzz_cstr(data, n);
    *rest = nl ? nl + 1 : data + size;
    *rest_len = nl ? size - n - 1 : 0;
}

int fuzz_utf8(const char *s, size_t len)
{
    return s && memchr(s, '\0', len) == NULL && gc_utf8_valid(s, len);
}

static void check_text(const json_t *v)
{
    FUZZ_CHECK(json_is_string(v));
    FUZZ_CHECK(fuzz_utf8(json_string_value(v), json_string_length(v)));
}

void fuzz_check_dumps(const json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

    FUZZ_CHECK(text != NULL);
    free(text);
}

void fuzz_check_result(const gc_result_t *res)
{
    json_t *j;
    size_t i;

    FUZZ_CHECK(res != NULL);
    if (debug) {
        char *doc = gc_result_failed(res) ? NULL : json_dumps(res->doc, JSON_COMPACT);
        fprintf(stderr, "fuzz: result %d %s %s\n", res->status,
                gc_result_failed(res) ? res->slug : "ok",
                gc_result_failed(res) ? (res->detail ? res->detail : "") : (doc ? doc : ""));
        free(doc);
    }
    if (!gc_result_failed(res)) {
        FUZZ_CHECK(res->status >= 200 && res->status < 300);
        FUZZ_CHECK(res->doc != NULL);
        fuzz_check_dumps(res->doc);
        return;
    }
    FUZZ_CHECK(res->status >= 400 && res->status < 600);
    FUZZ_CHECK(res->slug != NULL && res->title != NULL);
    FUZZ_CHECK(!res->detail || fuzz_utf8(res->detail, strlen(res->detail)));
    for (i = 0; res->errors && i < json_array_size(res->errors); i++) {
        const json_t *e = json_array_get(res->errors, i);
        check_text(json_object_get(e, "field"));
        check_text(json_object_get(e, "message"));
    }
    j = gc_result_json(res);
    FUZZ_CHECK(j != NULL);
    check_text(json_object_get(j, "type"));
    check_text(json_object_get(j, "title"));
    FUZZ_CHECK(json_integer_value(json_object_get(j, "status")) == res->status);
    fuzz_check_dumps(j);
    json_decref(j);
    /* what the audit row records of it */
    j = gc_result_audit_json(res);
    FUZZ_CHECK(j != NULL);
    fuzz_check_dumps(j);
    json_decref(j);
}
