#include <stdarg.h>
#include <stdio.h>

#include "gc_log.h"

static gc_log_level_fn *log_is_level;
static gc_log_print_fn *log_print;
static void *log_baton;

void gc_log_set(gc_log_level_fn *is_level, gc_log_print_fn *print, void *baton)
{
    log_is_level = is_level;
    log_print = print;
    log_baton = baton;
}

int gc_log_is_level(int level)
{
    if (log_is_level) {
        return log_is_level(log_baton, level);
    }
    return level <= GC_LOG_WARNING;
}

void gc_log(const char *file, int line, int level, apr_status_t rv, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;

    if (!gc_log_is_level(level)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (log_print) {
        log_print(log_baton, file, line, level, rv, buf);
    }
    else {
        fprintf(stderr, "[gcmon:%d] %s\n", level, buf);
    }
}
