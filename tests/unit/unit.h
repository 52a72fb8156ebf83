#ifndef GC_UNIT_H
#define GC_UNIT_H
#include <check.h>

Suite *conf_suite(void);
Suite *budget_suite(void);
Suite *metrics_suite(void);
Suite *upstream_suite(void);
Suite *state_suite(void);
Suite *store_suite(void);
Suite *ws_suite(void);
Suite *query_suite(void);
void store_read_tcases(Suite *s); /* test_store_read.c, part of query_suite */
Suite *monitor_suite(void);
Suite *alerts_suite(void);
Suite *outbox_suite(void);
Suite *admin_suite(void);
Suite *status_change_suite(void);
Suite *weights_suite(void);
Suite *secret_suite(void);
Suite *worker_suite(void);
Suite *inbound_suite(void);
Suite *parallel_suite(void);
Suite *jobs_suite(void);
Suite *trace_job_suite(void);
Suite *trace_suite(void);
Suite *strategy_suite(void);
Suite *route_shm_suite(void);
Suite *strategy_watch_suite(void);
Suite *strategy_job_suite(void);
Suite *strategy_calls_suite(void);
Suite *strategy_admin_suite(void);
/* test_strategy_store.c, part of store_suite (each dialect); the store of
 * the running test case from test_store.c. */
struct gc_store;
struct apr_pool_t;
void strategy_store_tcases(TCase *tc);
struct gc_store *store_test_migrated(struct apr_pool_t **p);
Suite *dbdir_suite(void);
Suite *fuzz_suite(void); /* regressions found by tests/fuzz */

#endif
