/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF. Used wherever gcmon checks or copies untrusted text. */
#ifndef GC_UTF8_H
#define GC_UTF8_H

#include <apr.h>

/* Length (1..4) of the valid sequence at s, of which `avail` bytes may be
 * read; 0 when it is invalid or cut short. */
apr_size_t gc_utf8_seq(const unsigned char *s, apr_size_t avail);

/* Is s[0..len) well-formed UTF-8? */
int gc_utf8_valid(const char *s, apr_size_t len);

#endif
