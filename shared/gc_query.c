/* Strict query-string parsing for the read API (see gc_query.h). */
#include <limits.h>
#include <string.h>

#include <apr_strings.h>

#include "gc_id.h"
#include "gc_query.h"
#include "gc_state.h"
#include "gc_time.h"
#include "gc_utf8.h"

/* ---------------------------------------------------------------- bytes */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int gc_query_unescape(apr_pool_t *p, const char *s, apr_size_t len, char **out)
{
    char *buf = apr_palloc(p, len + 1), *o = buf;
    apr_size_t i;

    for (i = 0; i < len; i++) {
        if (s[i] == '+') {
            *o++ = ' ';
        }
        else if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hexval((unsigned char)s[i + 1])) < 0
                || (lo = hexval((unsigned char)s[i + 2])) < 0 || (hi == 0 && lo == 0)) {
                return -1;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        }
        else if (s[i] == '\0') {
            return -1;
        }
        else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    *out = buf;
    return 0;
}

/* ---------------------------------------------------------------- cursor */

#define CURSOR_VERSION 1
#define CURSOR_BYTES 18 /* version, kind, at (8, big-endian), id (8) */
#define CURSOR_CHARS 24 /* base64url of 18 bytes, no padding */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void put64(unsigned char *b, apr_int64_t v)
{
    apr_uint64_t u = (apr_uint64_t)v;
    int i;

    for (i = 7; i >= 0; i--) {
        b[i] = (unsigned char)(u & 0xFF);
        u >>= 8;
    }
}

static apr_int64_t get64(const unsigned char *b)
{
    apr_uint64_t u = 0;
    int i;

    for (i = 0; i < 8; i++) {
        u = (u << 8) | b[i];
    }
    return (apr_int64_t)u;
}

const char *gc_cursor_encode(apr_pool_t *p, char kind, apr_int64_t at, apr_int64_t id)
{
    unsigned char raw[CURSOR_BYTES];
    char *out = apr_palloc(p, CURSOR_CHARS + 1), *o = out;
    int i;

    raw[0] = CURSOR_VERSION;
    raw[1] = (unsigned char)kind;
    put64(raw + 2, at);
    put64(raw + 10, id);
    for (i = 0; i < CURSOR_BYTES; i += 3) {
        unsigned v = ((unsigned)raw[i] << 16) | ((unsigned)raw[i + 1] << 8) | raw[i + 2];
        *o++ = b64url[(v >> 18) & 63];
        *o++ = b64url[(v >> 12) & 63];
        *o++ = b64url[(v >> 6) & 63];
        *o++ = b64url[v & 63];
    }
    *o = '\0';
    return out;
}

static int b64val(int c)
{
    const char *hit = c ? strchr(b64url, c) : NULL;
    return hit ? (int)(hit - b64url) : -1;
}

int gc_cursor_decode(const char *text, char kind, gc_cursor_t *out)
{
    unsigned char raw[CURSOR_BYTES];
    int i, j = 0;

    if (!text || strlen(text) != CURSOR_CHARS) {
        return -1;
    }
    for (i = 0; i < CURSOR_CHARS; i += 4) {
        int a = b64val((unsigned char)text[i]), b = b64val((unsigned char)text[i + 1]);
        int c = b64val((unsigned char)text[i + 2]), d = b64val((unsigned char)text[i + 3]);
        unsigned v;
        if (a < 0 || b < 0 || c < 0 || d < 0) {
            return -1;
        }
        v = ((unsigned)a << 18) | ((unsigned)b << 12) | ((unsigned)c << 6) | (unsigned)d;
        raw[j++] = (unsigned char)(v >> 16);
        raw[j++] = (unsigned char)(v >> 8);
        raw[j++] = (unsigned char)v;
    }
    if (raw[0] != CURSOR_VERSION || raw[1] != (unsigned char)kind) {
        return -1;
    }
    out->at = get64(raw + 2);
    out->id = get64(raw + 10);
    if (out->at < 0 || out->id < 0) {
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- fields */

typedef struct {
    const char *name;
    unsigned bit;
} field_t;

/* In the order errors are reported; F_* index it. */
enum { F_USER_ID, F_STATE, F_QUEUE_ID, F_FROM, F_TO, F_LIMIT, F_OFFSET, F_CURSOR };
static const field_t known[] = {
    { "user_id", GC_Q_USER_ID },   { "state", GC_Q_STATE },     { "queue_id", GC_Q_QUEUE_ID },
    { "from", GC_Q_FROM },         { "to", GC_Q_TO },           { "limit", GC_Q_LIMIT },
    { "offset", GC_Q_OFFSET },     { "cursor", GC_Q_CURSOR },   { "actor", GC_Q_ACTOR },
    { "action", GC_Q_ACTION },     { "target", GC_Q_TARGET },   { "since", GC_Q_SINCE },
    { "skill_id", GC_Q_SKILL_ID }, { "flow_id", GC_Q_FLOW_ID }, { "status", GC_Q_STATUS },
};
#define N_KNOWN ((int)(sizeof(known) / sizeof(known[0])))

/* Decimal digits only (no sign, space, exponent), value in [min, max]. */
static int parse_bounded(const char *s, long min, long max, long *out)
{
    long v = 0;

    if (!*s) {
        return -1;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }
        if (v > (max - (*s - '0')) / 10) {
            return -1; /* beyond max: no overflow, no clamping */
        }
        v = v * 10 + (*s - '0');
    }
    if (v < min) {
        return -1;
    }
    *out = v;
    return 0;
}

static const char *state_message(apr_pool_t *p)
{
    const char *m = "must be one of";
    apr_size_t i, n;
    const char *const *state_names = gc_state_names(&n);

    for (i = 0; i < n; i++) {
        m = apr_pstrcat(p, m, i ? ", " : " ", state_names[i], NULL);
    }
    return m;
}

#define MSG_TIME                                                      \
    "must be an RFC 3339 timestamp such as 2026-11-21T19:59:28.123Z " \
    "(send '+' as %2B)"
#define MSG_ID "must be 1 to 64 letters, digits, '-' or '_'"

/* Validate one decoded value of field k into q; NULL or an error message. */
static const char *set_field(apr_pool_t *p, int k, const char *v, gc_query_t *q)
{
    long n;

    switch (known[k].bit) {
    case GC_Q_USER_ID:
        if (!gc_id_valid(v)) {
            return MSG_ID;
        }
        q->user_id = v;
        return NULL;
    case GC_Q_QUEUE_ID:
        if (!gc_id_valid(v)) {
            return MSG_ID;
        }
        q->queue_id = v;
        return NULL;
    case GC_Q_TARGET:
        if (!gc_id_valid(v)) {
            return MSG_ID;
        }
        q->target = v;
        return NULL;
    case GC_Q_SKILL_ID:
        if (!gc_id_valid(v)) {
            return MSG_ID;
        }
        q->skill_id = v;
        return NULL;
    case GC_Q_FLOW_ID:
        if (!gc_id_valid(v)) {
            return MSG_ID;
        }
        q->flow_id = v;
        return NULL;
    case GC_Q_ACTOR:
        if (strlen(v) > GC_QUERY_MAX_ACTOR) {
            return apr_psprintf(p, "must be at most %d bytes", GC_QUERY_MAX_ACTOR);
        }
        q->actor = v;
        return NULL;
    case GC_Q_ACTION:
        if (strlen(v) > 64 || strspn(v, "abcdefghijklmnopqrstuvwxyz_") != strlen(v)) {
            return "must be an action name: lower-case letters and '_' (e.g. "
                   "agent_status_change)";
        }
        q->action = v;
        return NULL;
    case GC_Q_STATE:
        if (!gc_state_valid(v)) {
            return state_message(p);
        }
        q->state = v;
        return NULL;
    case GC_Q_STATUS:
        if (strcmp(v, "draft") && strcmp(v, "activating") && strcmp(v, "active")
            && strcmp(v, "failed")) {
            return "must be one of draft, activating, active, failed";
        }
        q->state = v;
        return NULL;
    case GC_Q_FROM:
        if (gc_time_parse(v, &q->from) != 0) {
            return MSG_TIME;
        }
        q->has_from = 1;
        return NULL;
    case GC_Q_TO:
        if (gc_time_parse(v, &q->to) != 0) {
            return MSG_TIME;
        }
        q->has_to = 1;
        return NULL;
    case GC_Q_LIMIT:
        if (parse_bounded(v, 1, GC_QUERY_MAX_LIMIT, &n) != 0) {
            return apr_psprintf(p, "must be an integer from 1 to %d", GC_QUERY_MAX_LIMIT);
        }
        q->limit = (int)n;
        return NULL;
    case GC_Q_OFFSET:
        if (parse_bounded(v, 0, GC_QUERY_MAX_OFFSET, &n) != 0) {
            return apr_psprintf(p, "must be an integer from 0 to %ld", GC_QUERY_MAX_OFFSET);
        }
        q->offset = n;
        q->has_offset = 1;
        return NULL;
    case GC_Q_SINCE:
        if (gc_board_gen_parse(v, &q->since_id, &q->since_gen) != 0) {
            return "is not a board generation (pass `generation` from a previous board "
                   "answer unchanged)";
        }
        q->has_since = 1;
        return NULL;
    default: /* GC_Q_CURSOR */ return NULL;
    }
}

const char *gc_board_gen_format(apr_pool_t *p, apr_int64_t id, apr_int64_t gen)
{
    return apr_psprintf(p, "%" APR_UINT64_T_HEX_FMT "-%" APR_INT64_T_FMT, (apr_uint64_t)id, gen);
}

int gc_board_gen_parse(const char *text, apr_int64_t *id, apr_int64_t *gen)
{
    const char *dash = text ? strchr(text, '-') : NULL;
    apr_uint64_t x = 0;
    long g = 0;
    const char *c;

    if (!dash || dash == text || dash - text > 16 || (*text == '0' && dash - text > 1)) {
        return -1;
    }
    for (c = text; c < dash; c++) {
        int d = (*c >= '0' && *c <= '9') ? *c - '0' : (*c >= 'a' && *c <= 'f') ? *c - 'a' + 10 : -1;
        if (d < 0) {
            return -1;
        }
        x = x * 16 + (apr_uint64_t)d;
    }
    if ((dash[1] == '0' && dash[2]) || parse_bounded(dash + 1, 0, LONG_MAX, &g) != 0) {
        return -1;
    }
    *id = (apr_int64_t)x;
    *gen = g;
    return 0;
}

int gc_query_parse(apr_pool_t *p, const char *args, unsigned fields, char cursor_kind,
                   gc_query_t *q, apr_array_header_t **errs)
{
    const char *msg[N_KNOWN];
    int seen[N_KNOWN];
    const char *s = args ? args : "";
    int k, nerr = 0;

    memset(q, 0, sizeof(*q));
    q->limit = GC_QUERY_DEFAULT_LIMIT;
    memset(seen, 0, sizeof(seen));
    for (k = 0; k < N_KNOWN; k++) {
        msg[k] = NULL;
    }
    while (*s) {
        const char *amp = strchr(s, '&'), *end = amp ? amp : s + strlen(s);
        const char *eq = memchr(s, '=', (size_t)(end - s));
        const char *vs = eq ? eq + 1 : end;
        char *key, *val;

        if (gc_query_unescape(p, s, (apr_size_t)((eq ? eq : end) - s), &key) == 0) {
            for (k = 0; k < N_KNOWN; k++) {
                if ((fields & known[k].bit) && !strcmp(key, known[k].name)) {
                    break;
                }
            }
            if (k < N_KNOWN && !msg[k]) {
                if (seen[k]++) {
                    msg[k] = "is given more than once";
                }
                else if (gc_query_unescape(p, vs, (apr_size_t)(end - vs), &val) != 0) {
                    msg[k] = "is not validly percent-encoded";
                }
                else if (!gc_utf8_valid(val, strlen(val))) {
                    msg[k] = "is not valid UTF-8";
                }
                else if (!*val) {
                    msg[k] = "is empty";
                }
                else if (known[k].bit == GC_Q_CURSOR) {
                    if (gc_cursor_decode(val, cursor_kind, &q->cursor) != 0) {
                        msg[k] = "is not a cursor of this listing (pass next_cursor from a "
                                 "previous page unchanged)";
                    }
                    else {
                        q->has_cursor = 1;
                    }
                }
                else {
                    msg[k] = set_field(p, k, val, q);
                }
            }
        }
        s = amp ? amp + 1 : end;
    }
    /* Cross-field rules, reported on the later field. */
    if (!msg[F_CURSOR] && q->has_cursor && seen[F_OFFSET]) {
        msg[F_CURSOR] = "cannot be combined with offset";
        q->has_cursor = 0;
    }
    if (!msg[F_TO] && !msg[F_FROM] && q->has_from && q->has_to && q->from > q->to) {
        msg[F_TO] = "must not be earlier than from";
    }
    if (errs) {
        *errs = apr_array_make(p, 2, sizeof(gc_field_error_t));
    }
    for (k = 0; k < N_KNOWN; k++) {
        if (msg[k]) {
            nerr++;
            if (errs) {
                gc_field_error_t *e = apr_array_push(*errs);
                e->field = known[k].name;
                e->message = msg[k];
            }
        }
    }
    return nerr;
}
