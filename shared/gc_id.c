/* Genesys Cloud object ids (see the header). */
#include <ctype.h>
#include <stddef.h>

#include "gc_id.h"

int gc_id_valid(const char *s)
{
    size_t n = 0;

    if (!s) {
        return 0;
    }
    for (; s[n]; n++) {
        if (n >= 64 || !(isalnum((unsigned char)s[n]) || s[n] == '-' || s[n] == '_')) {
            return 0;
        }
    }
    return n > 0;
}
