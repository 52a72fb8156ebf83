/* The read API's query strings and cursors (gc_query, SPEC §5.1, §5.2) and
 * the RFC 3339 timestamps they carry (gc_time_parse): any bytes as r->args
 * (up to the first NUL, as httpd hands it over), parsed for every listing.
 *
 * Properties: the error count is the errors array's; each error names a field
 * the listing accepts, at most once, with a message in valid UTF-8; the values
 * kept are within their rules (ids, canonical states, action names, actor
 * size, limit 1..100, offset 0..2^31-1), fields the listing does not take
 * stay unset, a kept cursor encodes back to one that decodes the same, and an
 * accepted query (no error) has from <= to and no cursor with an offset. The whole input as a cursor, a board
 * generation or a timestamp: whatever decodes is canonical (encodes back to
 * the same text; a timestamp to the same instant, to the millisecond), and a
 * decoded query component never holds a NUL. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gc_id.h"
#include "gc_query.h"
#include "gc_state.h"
#include "gc_time.h"

static const struct {
    unsigned fields;
    char kind;
} listings[] = {
    { GC_Q_HISTORY, GC_CURSOR_HISTORY },
    { GC_Q_ALERTS, GC_CURSOR_ALERTS },
    { GC_Q_BOARD, 0 },
    { GC_Q_AUDIT, GC_CURSOR_AUDIT },
    { GC_Q_DISTRIBUTIONS, GC_CURSOR_DISTRIBUTIONS },
    { GC_Q_TRACES, GC_CURSOR_TRACES },
    { GC_Q_STRATEGIES, GC_CURSOR_STRATEGIES },
    { GC_Q_QUEUE_ID | GC_Q_SKILL_ID, 0 }, /* the weights preview */
    /* every field at once, but status: it fills `state` as state does, and
     * no listing takes both */
    { ~0u & ~(unsigned)GC_Q_STATUS, GC_CURSOR_HISTORY },
};

static const struct {
    const char *name;
    unsigned bit;
} names[] = {
    { "user_id", GC_Q_USER_ID },   { "state", GC_Q_STATE },     { "queue_id", GC_Q_QUEUE_ID },
    { "from", GC_Q_FROM },         { "to", GC_Q_TO },           { "limit", GC_Q_LIMIT },
    { "offset", GC_Q_OFFSET },     { "cursor", GC_Q_CURSOR },   { "actor", GC_Q_ACTOR },
    { "action", GC_Q_ACTION },     { "target", GC_Q_TARGET },   { "since", GC_Q_SINCE },
    { "skill_id", GC_Q_SKILL_ID }, { "flow_id", GC_Q_FLOW_ID }, { "status", GC_Q_STATUS },
};
#define N_NAMES (sizeof(names) / sizeof(names[0]))

static unsigned bit_of(const char *field)
{
    size_t i;

    for (i = 0; i < N_NAMES; i++) {
        if (strcmp(field, names[i].name) == 0) {
            return names[i].bit;
        }
    }
    return 0;
}

static void check_id(const char *v, unsigned fields, unsigned bit)
{
    FUZZ_CHECK(!v || ((fields & bit) && gc_id_valid(v)));
}

static void check_query(apr_pool_t *p, const char *args, unsigned fields, char kind)
{
    gc_query_t q, q2;
    apr_array_header_t *errs = NULL;
    unsigned reported = 0;
    int n = gc_query_parse(p, args, fields, kind, &q, &errs), i;

    FUZZ_CHECK(errs && n == errs->nelts);
    for (i = 0; i < errs->nelts; i++) {
        const gc_field_error_t *e = &APR_ARRAY_IDX(errs, i, gc_field_error_t);
        unsigned bit = e->field ? bit_of(e->field) : 0;
        FUZZ_CHECK(bit && (fields & bit) && !(reported & bit));
        FUZZ_CHECK(e->message && fuzz_utf8(e->message, strlen(e->message)));
        reported |= bit;
    }
    check_id(q.user_id, fields, GC_Q_USER_ID);
    check_id(q.queue_id, fields, GC_Q_QUEUE_ID);
    check_id(q.target, fields, GC_Q_TARGET);
    check_id(q.skill_id, fields, GC_Q_SKILL_ID);
    check_id(q.flow_id, fields, GC_Q_FLOW_ID);
    FUZZ_CHECK(!q.state || ((fields & GC_Q_STATE) && gc_state_valid(q.state))
               || ((fields & GC_Q_STATUS)
                   && (!strcmp(q.state, "draft") || !strcmp(q.state, "activating")
                       || !strcmp(q.state, "active") || !strcmp(q.state, "failed"))));
    FUZZ_CHECK(!q.action
               || ((fields & GC_Q_ACTION) && *q.action && strlen(q.action) <= 64
                   && strspn(q.action, "abcdefghijklmnopqrstuvwxyz_") == strlen(q.action)));
    FUZZ_CHECK(!q.actor
               || ((fields & GC_Q_ACTOR) && *q.actor && strlen(q.actor) <= GC_QUERY_MAX_ACTOR
                   && fuzz_utf8(q.actor, strlen(q.actor))));
    FUZZ_CHECK(q.limit >= 1 && q.limit <= GC_QUERY_MAX_LIMIT);
    FUZZ_CHECK(q.offset >= 0 && q.offset <= GC_QUERY_MAX_OFFSET);
    FUZZ_CHECK(!q.has_offset || (fields & GC_Q_OFFSET));
    FUZZ_CHECK(!q.has_from || (fields & GC_Q_FROM));
    FUZZ_CHECK(!q.has_to || (fields & GC_Q_TO));
    FUZZ_CHECK(!q.has_since || (fields & GC_Q_SINCE));
    /* The cross-field rules hold of an accepted query (with errors the caller
     * answers 400 and q is not used: "cursor=A&cursor=B&offset=5" keeps the
     * first cursor and the offset, with the cursor's error). */
    if (n == 0 && q.has_from && q.has_to) {
        FUZZ_CHECK(q.from <= q.to);
    }
    if (q.has_cursor) {
        gc_cursor_t c;
        FUZZ_CHECK((fields & GC_Q_CURSOR) && (n > 0 || !q.has_offset));
        FUZZ_CHECK(q.cursor.at >= 0 && q.cursor.id >= 0);
        FUZZ_CHECK(gc_cursor_decode(gc_cursor_encode(p, kind, q.cursor.at, q.cursor.id), kind, &c)
                   == 0);
        FUZZ_CHECK(c.at == q.cursor.at && c.id == q.cursor.id);
    }
    /* Deterministic, and the errors array is optional. */
    FUZZ_CHECK(gc_query_parse(p, args, fields, kind, &q2, NULL) == n);
}

static void check_tokens(apr_pool_t *p, const uint8_t *data, size_t size, const char *text)
{
    static const char kinds[] = { GC_CURSOR_HISTORY, GC_CURSOR_ALERTS, GC_CURSOR_AUDIT,
                                  GC_CURSOR_DISTRIBUTIONS, GC_CURSOR_TRACES };
    gc_cursor_t c;
    apr_int64_t id, gen;
    apr_time_t t, back;
    char *out;
    size_t i;

    for (i = 0; i < sizeof(kinds); i++) {
        if (gc_cursor_decode(text, kinds[i], &c) == 0) {
            FUZZ_CHECK(strcmp(gc_cursor_encode(p, kinds[i], c.at, c.id), text) == 0);
        }
    }
    if (gc_board_gen_parse(text, &id, &gen) == 0) {
        FUZZ_CHECK(gen >= 0);
        FUZZ_CHECK(strcmp(gc_board_gen_format(p, id, gen), text) == 0);
    }
    if (gc_time_parse(text, &t) == 0) {
        FUZZ_CHECK(gc_time_parse(gc_time_format(p, t), &back) == 0);
        FUZZ_CHECK(back <= t && t - back < 1000);
    }
    if (gc_query_unescape(p, (const char *)data, size, &out) == 0) {
        FUZZ_CHECK(strlen(out) <= size);
        FUZZ_CHECK(memchr(data, '\0', size) == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    char *args = fuzz_cstr(data, size);
    size_t i;

    for (i = 0; i < sizeof(listings) / sizeof(listings[0]); i++) {
        check_query(p, args, listings[i].fields, listings[i].kind);
    }
    check_tokens(p, data, size, args);
    free(args);
    apr_pool_destroy(p);
    return 0;
}
