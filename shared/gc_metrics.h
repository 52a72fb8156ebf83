/* Prometheus metrics of gcmon (SPEC §6), kept as atomic counters in one shared
 * memory segment so every child adds to the same numbers and any child can
 * render them. Label values come from fixed lists (bounded cardinality);
 * a value not in its list is counted under "other". */
#ifndef GC_METRICS_H
#define GC_METRICS_H

#include <apr_pools.h>

typedef enum {
    GC_MET_STREAM_CONNECTED,     /* gauge */
    GC_MET_STREAM_CHANNELS,      /* gauge */
    GC_MET_STREAM_TOPICS,        /* gauge */
    GC_MET_STREAM_RECONNECTS,    /* counter {reason} */
    GC_MET_STREAM_MESSAGES,      /* counter {kind} */
    GC_MET_EVENTS_STORED,        /* counter {source} */
    GC_MET_EVENTS_DROPPED,       /* counter {reason} */
    GC_MET_EVENT_LAG,            /* histogram (seconds) */
    GC_MET_AGENTS_MONITORED,     /* gauge */
    GC_MET_IDLE_ALERTS,          /* counter {result} */
    GC_MET_WEBHOOK_DELIVERIES,   /* counter {target,result} */
    GC_MET_OUTBOX_PENDING,       /* gauge */
    GC_MET_UPSTREAM_REQUESTS,    /* counter {op,code} */
    GC_MET_UPSTREAM_LATENCY,     /* histogram (seconds) */
    GC_MET_UPSTREAM_THROTTLED,   /* counter */
    GC_MET_STATE_UPDATE_LATENCY, /* histogram {status,result} */
    GC_MET_VALIDATION_ERRORS,    /* counter {error_type} */
    GC_MET_API_REQUESTS,         /* counter {route,code} */
    GC_MET_BUDGET_USED,          /* gauge (set when /metrics is rendered) */
    GC_MET_BUDGET_LIMIT,         /* gauge (set when /metrics is rendered) */
    GC_MET_BUILD_INFO,           /* gauge {version}: 1 for this build's version */
    GC_MET_LAST_EVENT,           /* gauge: epoch seconds of the last agent event stored */
#ifdef GCMON_TEST_METRICS_LAYOUT
    GC_MET_TEST_LAYOUT, /* gauge: only in the layout-test build */
#endif
    GC_MET__COUNT
} gc_metric_id_e;

typedef struct gc_metrics gc_metrics_t;

/* Bytes of shared memory for the whole registry. */
apr_size_t gc_metrics_size(void);

/* Zero and initialise in `mem` (parent, once per segment). */
gc_metrics_t *gc_metrics_init(void *mem);

/* This build's layout: a hash over the family table (names, types, label
 * names and value lists, bucket bounds) and the header and cell sizes. */
apr_uint64_t gc_metrics_layout(void);

/* The registry in `mem` (size bytes, e.g. a segment kept across a graceful
 * restart) if a build with this layout initialised it, else NULL: then make
 * a new segment — indexing another layout with this table would count into
 * the wrong cells. */
gc_metrics_t *gc_metrics_attach(void *mem, apr_size_t size);

/* Counters: add `by` to the series named by up to two label values (NULL
 * when the family has fewer labels). Safe from any thread of any child. */
void gc_metrics_add(gc_metrics_t *m, gc_metric_id_e id, const char *l1, const char *l2,
                    long long by);
#define gc_metrics_inc(m, id, l1, l2) gc_metrics_add((m), (id), (l1), (l2), 1)

/* Gauges: set the value. */
void gc_metrics_set(gc_metrics_t *m, gc_metric_id_e id, const char *l1, const char *l2,
                    long long value);

/* Histograms: record one observation in seconds. */
void gc_metrics_observe(gc_metrics_t *m, gc_metric_id_e id, const char *l1, const char *l2,
                        double seconds);

/* Read one series (tests, status pages). Histograms: the observation count. */
long long gc_metrics_get(gc_metrics_t *m, gc_metric_id_e id, const char *l1, const char *l2);

/* Prometheus text exposition format 0.0.4 of every family (HELP/TYPE once per
 * family; labelled series only once they are non-zero). */
char *gc_metrics_render(gc_metrics_t *m, apr_pool_t *p);

/* Map an HTTP status to its bounded `code` label ("200", "429", …, "other"). */
const char *gc_metrics_code_label(int status);

#endif
