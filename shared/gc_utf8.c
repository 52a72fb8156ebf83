#include "gc_utf8.h"

apr_size_t gc_utf8_seq(const unsigned char *s, apr_size_t avail)
{
    apr_size_t n, i;
    unsigned int cp;

    if (avail == 0) {
        return 0;
    }
    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2, cp = s[0] & 0x1f;
    }
    else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3, cp = s[0] & 0x0f;
    }
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4, cp = s[0] & 0x07;
    }
    else {
        return 0;
    }
    if (n > avail) {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))
        || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

int gc_utf8_valid(const char *str, apr_size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    apr_size_t i = 0;

    while (i < len) {
        apr_size_t n = gc_utf8_seq(s + i, len - i);
        if (n == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}
