/* Append-only JSON writer (see gc_jsonw.h). */
#include <stdlib.h>
#include <string.h>

#include "gc_jsonw.h"
#include "gc_state.h"
#include "gc_time.h"
#include "gc_utf8.h"

void gc_jw_init(gc_jw_t *w, apr_size_t hint)
{
    w->cap = hint < 256 ? 256 : hint;
    w->len = 0;
    w->buf = malloc(w->cap);
    w->failed = w->buf == NULL;
    if (w->buf) {
        w->buf[0] = '\0';
    }
}

void gc_jw_free(gc_jw_t *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

char *gc_jw_steal(gc_jw_t *w, apr_size_t *len)
{
    char *b = w->failed ? NULL : w->buf;

    if (w->failed) {
        free(w->buf);
    }
    if (len) {
        *len = b ? w->len : 0;
    }
    w->buf = NULL;
    w->len = w->cap = 0;
    return b;
}

/* Room for n more bytes plus the NUL. */
static int reserve(gc_jw_t *w, apr_size_t n)
{
    if (w->failed) {
        return 0;
    }
    if (w->len + n + 1 > w->cap) {
        apr_size_t cap = w->cap;
        char *nb;
        while (w->len + n + 1 > cap) {
            cap *= 2;
        }
        nb = realloc(w->buf, cap);
        if (!nb) {
            w->failed = 1;
            return 0;
        }
        w->buf = nb;
        w->cap = cap;
    }
    return 1;
}

void gc_jw_raw(gc_jw_t *w, const char *s, apr_size_t n)
{
    if (!reserve(w, n)) {
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

void gc_jw_str(gc_jw_t *w, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    apr_size_t len, i, run;

    if (!str) {
        gc_jw_lit(w, "null");
        return;
    }
    len = strlen(str);
    /* Worst case: every byte becomes \u00XX (6) or U+FFFD (3). */
    if (!reserve(w, len * 6 + 2)) {
        return;
    }
    w->buf[w->len++] = '"';
    for (i = 0; i < len;) {
        unsigned char c = s[i];

        /* Copy runs of plain ASCII in one go. */
        for (run = i;
             run < len && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\';
             run++) {
        }
        if (run > i) {
            memcpy(w->buf + w->len, s + i, run - i);
            w->len += run - i;
            i = run;
            continue;
        }
        if (c == '"' || c == '\\') {
            w->buf[w->len++] = '\\';
            w->buf[w->len++] = (char)c;
            i++;
        }
        else if (c < 0x20) {
            const char *esc = c == '\n'   ? "\\n"
                              : c == '\r' ? "\\r"
                              : c == '\t' ? "\\t"
                              : c == '\b' ? "\\b"
                              : c == '\f' ? "\\f"
                                          : NULL;
            if (esc) {
                memcpy(w->buf + w->len, esc, 2);
                w->len += 2;
            }
            else {
                memcpy(w->buf + w->len, "\\u00", 4);
                w->buf[w->len + 4] = hex[c >> 4];
                w->buf[w->len + 5] = hex[c & 15];
                w->len += 6;
            }
            i++;
        }
        else {
            apr_size_t n = gc_utf8_seq(s + i, len - i);
            if (n) {
                memcpy(w->buf + w->len, s + i, n);
                w->len += n;
                i += n;
            }
            else {
                memcpy(w->buf + w->len, "\xEF\xBF\xBD", 3); /* U+FFFD */
                w->len += 3;
                i++;
            }
        }
    }
    w->buf[w->len++] = '"';
    w->buf[w->len] = '\0';
}

void gc_jw_int(gc_jw_t *w, apr_int64_t v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    apr_uint64_t u = v < 0 ? (apr_uint64_t)0 - (apr_uint64_t)v : (apr_uint64_t)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) {
        *--p = '-';
    }
    gc_jw_raw(w, p, (apr_size_t)(tmp + sizeof(tmp) - p));
}

static apr_int64_t floor_div(apr_int64_t a, apr_int64_t b)
{
    apr_int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static char *put_num(char *p, apr_int64_t v, int width)
{
    int i;
    for (i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

apr_size_t gc_jw_format_time(char *out, apr_time_t t)
{
    apr_int64_t ms = floor_div(t, 1000), secs = floor_div(ms, 1000);
    apr_int64_t z = floor_div(secs, 86400), sod = secs - z * 86400;
    apr_int64_t y;
    int m, d;
    char *p = out;

    gc_time_civil_from_days(z, &y, &m, &d);
    if (y < 0 || y > 9999) {
        y = y < 0 ? 0 : 9999; /* outside RFC 3339; never stored by gcmon */
    }
    p = put_num(p, y, 4);
    *p++ = '-';
    p = put_num(p, m, 2);
    *p++ = '-';
    p = put_num(p, d, 2);
    *p++ = 'T';
    p = put_num(p, sod / 3600, 2);
    *p++ = ':';
    p = put_num(p, sod / 60 % 60, 2);
    *p++ = ':';
    p = put_num(p, sod % 60, 2);
    *p++ = '.';
    p = put_num(p, ms - secs * 1000, 3);
    *p++ = 'Z';
    *p = '\0';
    return (apr_size_t)(p - out);
}

void gc_jw_time(gc_jw_t *w, apr_time_t t)
{
    char tmp[40];
    apr_size_t n;

    if (!t) {
        gc_jw_lit(w, "null");
        return;
    }
    tmp[0] = '"';
    n = gc_jw_format_time(tmp + 1, t);
    tmp[n + 1] = '"';
    gc_jw_raw(w, tmp, n + 2);
}

int gc_jw_simple_id_array(const char *s)
{
    if (!s || *s++ != '[') {
        return 0;
    }
    if (*s == ']') {
        return s[1] == '\0';
    }
    for (;;) {
        const char *start;
        if (*s++ != '"') {
            return 0;
        }
        for (start = s; (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')
                        || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_';
             s++) {
        }
        if (s == start || *s++ != '"') {
            return 0;
        }
        if (*s == ']') {
            return s[1] == '\0';
        }
        if (*s++ != ',') {
            return 0;
        }
    }
}
