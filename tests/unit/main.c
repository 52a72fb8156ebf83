/* Check runner for the gcmon core. Prints Check's summary line for CI. */
#include <stdlib.h>

#include <apr_general.h>

#include "gc_upstream.h"
#include "unit.h"

int main(void)
{
    SRunner *sr;
    int failed;

    apr_initialize();
    gc_upstream_global_init();
    sr = srunner_create(conf_suite());
    srunner_add_suite(sr, budget_suite());
    srunner_add_suite(sr, metrics_suite());
    srunner_add_suite(sr, upstream_suite());
    srunner_add_suite(sr, state_suite());
    srunner_add_suite(sr, store_suite());
    srunner_add_suite(sr, ws_suite());
    srunner_add_suite(sr, query_suite());
    srunner_add_suite(sr, monitor_suite());
    srunner_add_suite(sr, alerts_suite());
    srunner_add_suite(sr, outbox_suite());
    srunner_add_suite(sr, admin_suite());
    srunner_add_suite(sr, status_change_suite());
    srunner_add_suite(sr, weights_suite());
    srunner_add_suite(sr, secret_suite());
    srunner_add_suite(sr, worker_suite());
    srunner_add_suite(sr, inbound_suite());
    srunner_add_suite(sr, parallel_suite());
    srunner_add_suite(sr, jobs_suite());
    srunner_add_suite(sr, trace_job_suite());
    srunner_add_suite(sr, trace_suite());
    srunner_add_suite(sr, strategy_suite());
    srunner_add_suite(sr, route_shm_suite());
    srunner_add_suite(sr, strategy_watch_suite());
    srunner_add_suite(sr, strategy_job_suite());
    srunner_add_suite(sr, strategy_calls_suite());
    srunner_add_suite(sr, strategy_admin_suite());
    srunner_add_suite(sr, dbdir_suite());
    srunner_add_suite(sr, fuzz_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    apr_terminate();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
