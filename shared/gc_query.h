/* Query-string parsing and validation for the read API (SPEC §5.1, §5.2):
 * strict, never clamping — every malformed or out-of-range value is reported
 * with the field it came from, and the caller answers 400. Unknown parameters
 * are ignored (SPEC §5). Plain C over APR: no httpd types. */
#ifndef GC_QUERY_H
#define GC_QUERY_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/* The fields an endpoint accepts (bit set); the others are ignored. */
enum {
    GC_Q_USER_ID = 1u << 0,
    GC_Q_STATE = 1u << 1,
    GC_Q_QUEUE_ID = 1u << 2,
    GC_Q_FROM = 1u << 3,
    GC_Q_TO = 1u << 4,
    GC_Q_LIMIT = 1u << 5,
    GC_Q_OFFSET = 1u << 6,
    GC_Q_CURSOR = 1u << 7,
    GC_Q_ACTOR = 1u << 8,
    GC_Q_ACTION = 1u << 9,
    GC_Q_TARGET = 1u << 10,
    GC_Q_SINCE = 1u << 11,
    GC_Q_SKILL_ID = 1u << 12,
    GC_Q_FLOW_ID = 1u << 13,
    GC_Q_STATUS = 1u << 14 /* a routing strategy's status, into `state` */
};
#define GC_Q_PAGED (GC_Q_LIMIT | GC_Q_OFFSET | GC_Q_CURSOR)
#define GC_Q_HISTORY (GC_Q_USER_ID | GC_Q_STATE | GC_Q_FROM | GC_Q_TO | GC_Q_PAGED)
#define GC_Q_ALERTS (GC_Q_USER_ID | GC_Q_STATE | GC_Q_FROM | GC_Q_TO | GC_Q_PAGED)
#define GC_Q_BOARD (GC_Q_STATE | GC_Q_QUEUE_ID | GC_Q_SINCE)
#define GC_Q_AUDIT (GC_Q_ACTOR | GC_Q_ACTION | GC_Q_TARGET | GC_Q_PAGED)
#define GC_Q_DISTRIBUTIONS (GC_Q_QUEUE_ID | GC_Q_PAGED)
#define GC_Q_TRACES (GC_Q_FLOW_ID | GC_Q_PAGED)
#define GC_Q_STRATEGIES (GC_Q_STATUS | GC_Q_PAGED)
#define GC_QUERY_MAX_ACTOR 256

#define GC_QUERY_DEFAULT_LIMIT 20
#define GC_QUERY_MAX_LIMIT 100
#define GC_QUERY_MAX_OFFSET 2147483647L

/* Cursor kinds: a cursor of one listing is refused by another. */
#define GC_CURSOR_HISTORY 'h'
#define GC_CURSOR_ALERTS 'a'
#define GC_CURSOR_AUDIT 'u'
#define GC_CURSOR_DISTRIBUTIONS 'd'
#define GC_CURSOR_TRACES 't'
#define GC_CURSOR_STRATEGIES 's'

/* A keyset position: the (time, id) of the last row of the previous page. */
typedef struct {
    apr_int64_t at;
    apr_int64_t id;
} gc_cursor_t;

typedef struct {
    const char *user_id;  /* NULL: no filter */
    const char *state;    /* canonical state name (the strategies listing: a
                             strategy status, from `status`), NULL: no filter */
    const char *queue_id; /* NULL: no filter */
    const char *actor;    /* 1..256 bytes of UTF-8, NULL: no filter */
    const char *action;   /* 1..64 of a-z and '_', NULL: no filter */
    const char *target;   /* a Genesys id, NULL: no filter */
    const char *skill_id; /* a Genesys id (the weights preview), NULL: not given */
    const char *flow_id;  /* a Genesys id (the traces listing), NULL: no filter */
    int has_from, has_to;
    apr_time_t from, to; /* from inclusive, to exclusive */
    int limit;           /* 1..100, default 20 */
    long offset;         /* 0..GC_QUERY_MAX_OFFSET, default 0 */
    int has_offset;      /* offset was given */
    int has_cursor;
    gc_cursor_t cursor;
    int has_since; /* since: a board generation (gc_board_gen_parse) */
    apr_int64_t since_id, since_gen;
} gc_query_t;

/* One validation failure: the query field and a message that never quotes
 * the offending value (it may be huge or not UTF-8). */
typedef struct {
    const char *field;
    const char *message;
} gc_field_error_t;

/* Parse the raw query string (`args` as received, may be NULL or empty) for
 * the fields in `fields`; `cursor_kind` is GC_CURSOR_*. Fills *q (defaults for
 * absent fields) and returns the number of errors; *errs (may be NULL) gets an
 * array of gc_field_error_t, at most one per field, in field order. A known
 * field given twice, empty, not validly percent-encoded, not UTF-8, malformed
 * or out of range is an error; so is `cursor` together with `offset` and a
 * `from` later than `to`. */
int gc_query_parse(apr_pool_t *p, const char *args, unsigned fields, char cursor_kind,
                   gc_query_t *q, apr_array_header_t **errs);

/* Opaque cursor text (base64url, no padding) and back. Decoding is strict:
 * anything but the exact canonical encoding of a cursor of `kind` → -1. */
const char *gc_cursor_encode(apr_pool_t *p, char kind, apr_int64_t at, apr_int64_t id);
int gc_cursor_decode(const char *text, char kind, gc_cursor_t *out);

/* A board generation token, "<board id, lowercase hex>-<generation>", as the
 * board answers it, and back (strict: the exact canonical form, else -1). */
const char *gc_board_gen_format(apr_pool_t *p, apr_int64_t id, apr_int64_t gen);
int gc_board_gen_parse(const char *text, apr_int64_t *id, apr_int64_t *gen);

/* Decode one application/x-www-form-urlencoded component of `len` bytes
 * ('+' is a space, %XX strict hex, %00 refused) into a NUL-terminated copy.
 * 0 on success, -1 when malformed. */
int gc_query_unescape(apr_pool_t *p, const char *s, apr_size_t len, char **out);

#endif
