/* Logging seam of the gcmon core: the core never calls httpd; the module glue
 * installs a printer that forwards to ap_log_error under its own module index. */
#ifndef GC_LOG_H
#define GC_LOG_H

#include <apr_errno.h>

/* Same numbers as httpd's APLOG_* levels. */
#define GC_LOG_EMERG 0
#define GC_LOG_ALERT 1
#define GC_LOG_CRIT 2
#define GC_LOG_ERR 3
#define GC_LOG_WARNING 4
#define GC_LOG_NOTICE 5
#define GC_LOG_INFO 6
#define GC_LOG_DEBUG 7
#define GC_LOG_TRACE1 8
#define GC_LOG_TRACE2 9

/* Our own stable message tags: "GCM1234: ". Ranges are listed in docs/logging.md. */
#define GCMON_LOGNO(n) "GCM" #n ": "

#define GC_LOG_MARK __FILE__, __LINE__

typedef int gc_log_level_fn(void *baton, int level);
typedef void gc_log_print_fn(void *baton, const char *file, int line, int level, apr_status_t rv,
                             const char *msg);

/* Install the printer (NULL restores the default: stderr for WARNING and worse). */
void gc_log_set(gc_log_level_fn *is_level, gc_log_print_fn *print, void *baton);

int gc_log_is_level(int level);

/* Formats into a bounded stack buffer (no pool growth in long-lived threads). */
void gc_log(const char *file, int line, int level, apr_status_t rv, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
