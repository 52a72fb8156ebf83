/* What every libFuzzer target of the core shares (tests/fuzz/fuzz_*.c;
 * docs/testing.md, "Fuzzing"): APR initialised once, a pool per input, a log
 * printer that formats every message at every level (so the core's format
 * strings and their arguments run on fuzzed data too) and drops it, the input
 * as a C string in a malloc'd block of its exact size (so ASan sees a read
 * past its end), and FUZZ_CHECK for the properties each target asserts: a
 * failed one aborts, and libFuzzer keeps the input as a crash. */
#ifndef GC_FUZZ_H
#define GC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include <apr_pools.h>
#include <jansson.h>

#include "gc_result.h"

/* libFuzzer's entry points (each target defines LLVMFuzzerTestOneInput;
 * fuzz.c defines LLVMFuzzerInitialize). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort with the property that failed (a finding, like a sanitizer report). */
void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));
#define FUZZ_CHECK(cond) ((cond) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #cond))

/* A fresh pool for one input (destroy it at the end of the input). */
apr_pool_t *fuzz_pool(void);

/* The size bytes as a NUL-terminated string (stops at an embedded NUL, as
 * a C string handed to the core would), malloc'd to its exact size: free it. */
char *fuzz_cstr(const uint8_t *data, size_t size);

/* Split "<line>\n<rest>" at the first newline: *line (malloc'd C string, free
 * it) and *rest, *rest_len (pointing into data; empty when there is no
 * newline). */
void fuzz_split_line(const uint8_t *data, size_t size, char **line, const uint8_t **rest,
                     size_t *rest_len);

/* Is s (len bytes) valid UTF-8 without NUL? */
int fuzz_utf8(const char *s, size_t len);

/* The invariants of any result the core hands the glue: a success has a
 * status 2xx and a document; a problem has a status 4xx/5xx, a slug and a
 * title, its detail and field errors (if any) are {field, message} strings
 * of valid UTF-8, gc_result_json renders it as RFC 9457 (type, title, status)
 * and gc_result_audit_json as the audit row's copy, both serialisable. With
 * FUZZ_DEBUG in the environment each result is printed (for writing seeds). */
void fuzz_check_result(const gc_result_t *res);

/* json_dumps that must succeed (the value is well-formed), then freed. */
void fuzz_check_dumps(const json_t *j);

#endif
