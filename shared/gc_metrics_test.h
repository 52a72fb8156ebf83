/* Test-only introspection of gc_metrics (not for module code). */
#ifndef GC_METRICS_TEST_H
#define GC_METRICS_TEST_H

#include <apr_pools.h>

#include "gc_metrics.h"

/* Full metric name ("gcmon_…") and type ("counter", "gauge", "histogram"). */
const char *gc_metrics_test_name(gc_metric_id_e id);
const char *gc_metrics_test_type(gc_metric_id_e id);

/* Number of labels (0..2) and the name of label `which` (0 or 1). */
int gc_metrics_test_nlabels(gc_metric_id_e id);
const char *gc_metrics_test_label_name(gc_metric_id_e id, int which);

/* Fixed values of label `which`, "other" last; NULL past the end. */
int gc_metrics_test_nvalues(gc_metric_id_e id, int which);
const char *gc_metrics_test_value(gc_metric_id_e id, int which, int idx);

/* Histogram upper bounds (seconds, ascending, without +Inf). */
int gc_metrics_test_nbuckets(gc_metric_id_e id);
double gc_metrics_test_bucket(gc_metric_id_e id, int idx);

/* A label value escaped for the exposition format (\\, \", \n). */
char *gc_metrics_test_escape(apr_pool_t *p, const char *value);

/* Sum of a histogram series in microseconds. */
long long gc_metrics_test_sum_us(gc_metrics_t *m, gc_metric_id_e id, const char *l1,
                                 const char *l2);

#endif
