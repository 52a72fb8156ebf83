/* httpd glue shared by both gcmon modules (compiled into each DSO).
 * Everything here takes the calling module explicitly, because each DSO
 * logs under its own module name (LogLevel gcmon_api:debug). */
#ifndef GCMON_GLUE_H
#define GCMON_GLUE_H

#include <httpd.h>
#include <http_config.h>
#include <apr_optional.h>

#include "gc_budget.h"
#include "gc_conf.h"
#include "gc_metrics.h"
#include "gc_route_shm.h"

/* Route the core's gc_log() to ap_log_error under module m for server s. */
void gcmon_glue_log_bridge(module *m, server_rec *s, apr_pool_t *p);

/* Parse a secret directive argument (file:, env:, literal). A literal logs a
 * warning naming the directive, and every form is replaced by "[hidden]" in the
 * stored configuration tree so mod_info never shows it. */
const char *gcmon_glue_secret(cmd_parms *cmd, module *m, const char *arg, const char **out);

/* The same syntax for a value that is confidential but normally written out
 * (a webhook URL whose path or query carries a token): hidden from mod_info
 * like a secret, no warning for a literal. */
const char *gcmon_glue_hidden(cmd_parms *cmd, const char *arg, const char **out);

/* Prefix a parser error with the directive name, for apache2 -t. */
const char *gcmon_glue_err(cmd_parms *cmd, const char *err);

/* What mod_gcmon_api shares with mod_gcmon_stream (optional function). */
typedef struct gcmon_shared {
    const gc_conn_conf_t *conn;
    gc_budget_t *budget;
    gc_metrics_t *metrics;
} gcmon_shared_t;

APR_DECLARE_OPTIONAL_FN(const gcmon_shared_t *, gcmon_api_shared, (void));

/* What mod_gcmon_stream offers mod_gcmon_api: the stream status document of
 * SPEC §5.2 (`GET /v1/stream`) as JSON text from pool p, read from shared memory
 * (no database, no upstream call). */
APR_DECLARE_OPTIONAL_FN(char *, gcmon_stream_status_json, (apr_pool_t * p));

/* What mod_gcmon_stream offers mod_gcmon_api: whether the outbound webhook
 * `target` (a name of gc_webhook_targets.h's list) is configured, so the API
 * queues deliveries only for webhooks that exist. 0 when mod_gcmon_stream is
 * not loaded. */
APR_DECLARE_OPTIONAL_FN(int, gcmon_stream_webhook_configured, (const char *target));

/* What mod_gcmon_stream offers mod_gcmon_api: the board generation (SPEC
 * §9.17) the stream holder of this server published after its last commit —
 * 1 with *board_id and *gen when a live holder runs on this server, else 0
 * (the API then reads the generation from the database). */
APR_DECLARE_OPTIONAL_FN(int, gcmon_stream_board_gen, (apr_int64_t * board_id, apr_int64_t *gen));

/* mod_gcmon_stream: a process other than the holder committed a board change
 * (the inbound receiver): the generation in shared memory stops answering
 * 304s for the holder until it publishes again (it names this process). */
APR_DECLARE_OPTIONAL_FN(void, gcmon_stream_board_changed, (apr_int64_t board_id, apr_int64_t gen));

/* mod_gcmon_stream: is user_id one of the GcmonMonitorUser ids? */
APR_DECLARE_OPTIONAL_FN(int, gcmon_stream_monitors_user, (const char *user_id));

/* mod_gcmon_stream: one route decision for the active strategy strategy_id
 * from the route tables in shared memory (no database, no upstream call):
 * a gc_route_shm_e, *out set when GC_ROUTE_OK. */
APR_DECLARE_OPTIONAL_FN(int, gcmon_stream_route,
                        (const char *strategy_id, gc_route_decision_t *out));

#endif
