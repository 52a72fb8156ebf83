/* mod_gcmon_stream directives (SPEC §2 "Stream", "Idle alerts", "Outbound
 * sync webhooks"); all global. */
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <http_core.h>

#include "gc_alerts.h"
#include "gc_id.h"
#include "gc_state.h"
#include "gc_strategy_watch.h"
#include "gc_webhook.h"
#include "mod_gcmon_stream_private.h"

void *gcmon_stream_create_server_conf(apr_pool_t *p, server_rec *s)
{
    gcmon_stream_conf_t *c = apr_pcalloc(p, sizeof(*c));
    c->mon.enabled = -1;
    c->mon.queues = apr_array_make(p, 4, sizeof(const char *));
    c->mon.users = apr_array_make(p, 4, sizeof(const char *));
    c->mon.idle_alerts = apr_array_make(p, 4, sizeof(gc_alert_rule_t));
    return c;
}

static gcmon_stream_conf_t *cmd_conf(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &gcmon_stream_module);
}

static const char *set_stream(cmd_parms *cmd, void *dc, int on)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    cmd_conf(cmd)->mon.enabled = on;
    return NULL;
}

static const char *add_id(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    gcmon_stream_conf_t *c = cmd_conf(cmd);
    if (err) {
        return err;
    }
    if (!gc_id_valid(arg)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a Genesys Cloud id", cmd->cmd->name, arg);
    }
    *(const char **)apr_array_push(cmd->info ? c->mon.users : c->mon.queues) = arg;
    return NULL;
}

/* Duration directives store into the field at offset cmd->info. */
static const char *set_duration(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    char *base = (char *)&cmd_conf(cmd)->mon;
    if (err) {
        return err;
    }
    return gcmon_glue_err(cmd,
                          gc_parse_duration(cmd->pool, arg, APR_USEC_PER_SEC,
                                            (apr_interval_time_t *)(base + (apr_size_t)cmd->info)));
}

/* GcmonAuditRetention: a duration, or off (kept for ever). */
static const char *set_audit_retention(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    if (!strcasecmp(arg, "off")) {
        cmd_conf(cmd)->mon.audit_retention = -1;
        return NULL;
    }
    return gcmon_glue_err(cmd, gc_parse_duration(cmd->pool, arg, APR_USEC_PER_SEC,
                                                 &cmd_conf(cmd)->mon.audit_retention));
}

static const char *set_topics(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long v;
    if (err) {
        return err;
    }
    if ((err = gc_parse_long(cmd->pool, arg, 1, GC_MAX_TOPICS_PER_CHANNEL, &v))) {
        return gcmon_glue_err(cmd, err);
    }
    cmd_conf(cmd)->mon.topics_per_channel = (int)v;
    return NULL;
}

static const char *set_event_queue(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long v;
    if (err) {
        return err;
    }
    if ((err = gc_parse_long(cmd->pool, arg, GC_EVENT_QUEUE_MIN, GC_EVENT_QUEUE_MAX, &v))) {
        return gcmon_glue_err(cmd, err);
    }
    cmd_conf(cmd)->mon.event_queue = (int)v;
    return NULL;
}

static const char *set_backoff(cmd_parms *cmd, void *dc, const char *min, const char *max)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    gcmon_stream_conf_t *c = cmd_conf(cmd);
    apr_interval_time_t lo, hi;
    if (err) {
        return err;
    }
    if ((err = gc_parse_duration(cmd->pool, min, APR_USEC_PER_SEC, &lo))
        || (err = gc_parse_duration(cmd->pool, max, APR_USEC_PER_SEC, &hi))) {
        return gcmon_glue_err(cmd, err);
    }
    if (lo > hi) {
        return apr_psprintf(cmd->pool, "%s: the minimum %s is above the maximum %s", cmd->cmd->name,
                            min, max);
    }
    c->mon.backoff_min = lo;
    c->mon.backoff_max = hi;
    return NULL;
}

/* GcmonIdleAlert <state> <threshold> [<repeat>] */
static const char *add_idle_alert(cmd_parms *cmd, void *dc, const char *state,
                                  const char *threshold, const char *repeat)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    gcmon_stream_conf_t *c = cmd_conf(cmd);
    gc_alert_rule_t rule = { NULL, 0, 0 };
    int i;

    if (err) {
        return err;
    }
    if (!gc_state_valid(state)) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a state (presences such as "
                            "Available, Break, Meal; routing statuses such as IDLE, "
                            "INTERACTING, NOT_RESPONDING)",
                            cmd->cmd->name, state);
    }
    for (i = 0; i < c->mon.idle_alerts->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(c->mon.idle_alerts, i, gc_alert_rule_t).state, state)) {
            return apr_psprintf(cmd->pool, "%s: a rule for state %s is already configured",
                                cmd->cmd->name, state);
        }
    }
    rule.state = state;
    if ((err = gc_parse_duration(cmd->pool, threshold, APR_USEC_PER_SEC, &rule.threshold))
        || (repeat
            && (err = gc_parse_duration(cmd->pool, repeat, APR_USEC_PER_SEC, &rule.repeat)))) {
        return gcmon_glue_err(cmd, err);
    }
    APR_ARRAY_PUSH(c->mon.idle_alerts, gc_alert_rule_t) = rule;
    return NULL;
}

/* A webhook URL directive: cmd->info is its target (gc_webhook_targets.h),
 * which says where the URL goes. Every webhook URL is treated as a secret (a
 * token often rides in its path or query): the secret syntax, hidden from
 * mod_info, never echoed in an error; only a Slack webhook, a credential by
 * design, warns about a literal value. */
static const char *set_webhook_url(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const gc_webhook_target_t *t = cmd->info;
    char *base = (char *)&cmd_conf(cmd)->mon.webhooks;
    const char *url = arg;

    if (err) {
        return err;
    }
    err = t->slack ? gcmon_glue_secret(cmd, &gcmon_stream_module, arg, &url)
                   : gcmon_glue_hidden(cmd, arg, &url);
    if (err) {
        return err;
    }
    if ((err = gc_parse_webhook_url(cmd->pool, url, 1))) {
        return gcmon_glue_err(cmd, err);
    }
    if (gc_url_in_clear(cmd->temp_pool, url)) {
        /* the URL itself may hold a token: named by its directive only */
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, cmd->server,
                     GCMON_LOGNO(2026) "%s (%s:%d) is plain http:// to a host that is not "
                                       "loopback: its payloads (and any token in the URL) "
                                       "would travel in clear; use https://",
                     cmd->cmd->name, cmd->directive ? cmd->directive->filename : "?",
                     cmd->directive ? cmd->directive->line_num : 0);
    }
    *(const char **)(base + t->url_offset) = url;
    return NULL;
}

static const char *set_node_name(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    if (!gcmon_stream_node_name_valid(arg)) {
        return apr_psprintf(cmd->pool,
                            "GcmonNodeName: '%s' is not a node name (1 to %d of "
                            "A-Z a-z 0-9 . _ -)",
                            arg, GC_STATUS_HOST_MAX - 1);
    }
    cmd_conf(cmd)->node_name = arg;
    return NULL;
}

static const char *set_webhook_secret(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    return gcmon_glue_secret(cmd, &gcmon_stream_module, arg, &cmd_conf(cmd)->mon.webhooks.secret);
}

static const char *set_webhook_max_age(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    return gcmon_glue_err(cmd, gc_parse_duration(cmd->pool, arg, APR_USEC_PER_SEC,
                                                 &cmd_conf(cmd)->mon.webhooks.max_age));
}

/* GcmonStrategyRebalance Off | <duration>: 1s to 24h. */
static const char *set_strategy_rebalance(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    apr_interval_time_t d;

    if (err) {
        return err;
    }
    if (!strcasecmp(arg, "off")) {
        cmd_conf(cmd)->mon.strategy_rebalance = 0;
        return NULL;
    }
    if ((err = gc_parse_duration(cmd->pool, arg, APR_USEC_PER_SEC, &d))) {
        return gcmon_glue_err(cmd, apr_pstrcat(cmd->pool, err, " (or Off)", NULL));
    }
    if (d > GC_STRATEGY_MAX_REBALANCE) {
        return apr_psprintf(cmd->pool, "%s: '%s' is above the maximum of 24h", cmd->cmd->name, arg);
    }
    cmd_conf(cmd)->mon.strategy_rebalance = d;
    return NULL;
}

#define MON_OFFSET(field) (void *)APR_OFFSETOF(gc_monitor_conf_t, field)
/* One URL directive per webhook target. */
#define WEBHOOK_DIRECTIVE(name, directive, member, slack, event, label, help)                 \
    AP_INIT_TAKE1(directive, set_webhook_url, (void *)&gc_webhook_targets[GC_WEBHOOK_##name], \
                  RSRC_CONF, help),

const command_rec gcmon_stream_cmds[] = {
    AP_INIT_FLAG("GcmonStream", set_stream, NULL, RSRC_CONF,
                 "On to run the Genesys Cloud agent state monitor (default Off)"),
    AP_INIT_TAKE1("GcmonNodeName", set_node_name, NULL, RSRC_CONF,
                  "This instance's name in holder ids; unique per instance sharing a "
                  "database (default: host name + random suffix kept in the runtime dir)"),
    AP_INIT_ITERATE("GcmonMonitorQueue", add_id, NULL, RSRC_CONF,
                    "Monitor every member of these queues (ids)"),
    AP_INIT_ITERATE("GcmonMonitorUser", add_id, (void *)1, RSRC_CONF, "Monitor these users (ids)"),
    AP_INIT_TAKE1("GcmonMembershipRefresh", set_duration, MON_OFFSET(membership_refresh), RSRC_CONF,
                  "How often queue membership is re-read (default 5m)"),
    AP_INIT_TAKE1("GcmonTopicsPerChannel", set_topics, NULL, RSRC_CONF,
                  "Topics per notification channel, 1..1000 (default 1000)"),
    AP_INIT_TAKE1("GcmonEventQueue", set_event_queue, NULL, RSRC_CONF,
                  "Agent events waiting for the database, at most, 100..10000000; the oldest "
                  "are dropped beyond it (default 100000)"),
    AP_INIT_TAKE1("GcmonHeartbeatTimeout", set_duration, MON_OFFSET(heartbeat_timeout), RSRC_CONF,
                  "Silence after which a ping is sent (default 60s)"),
    AP_INIT_TAKE1("GcmonPongTimeout", set_duration, MON_OFFSET(pong_timeout), RSRC_CONF,
                  "Time to wait for a pong before reconnecting (default 10s)"),
    AP_INIT_TAKE2("GcmonReconnectBackoff", set_backoff, NULL, RSRC_CONF,
                  "Reconnect backoff: minimum and maximum (default 1s 60s)"),
    AP_INIT_TAKE1("GcmonRetention", set_duration, MON_OFFSET(retention), RSRC_CONF,
                  "Delete history and cleared alerts older than this (default 90d)"),
    AP_INIT_TAKE1("GcmonAuditRetention", set_audit_retention, NULL, RSRC_CONF,
                  "Delete audit rows, weight distributions and ended jobs older than this, "
                  "or off (default 365d)"),
    AP_INIT_TAKE23("GcmonIdleAlert", add_idle_alert, NULL, RSRC_CONF,
                   "Alert when an agent stays in <state> for <threshold>; re-alert every "
                   "<repeat> (default: Available 15m and IDLE 15m)"),
    GC_WEBHOOK_TARGET_LIST(WEBHOOK_DIRECTIVE)
        AP_INIT_TAKE1("GcmonWebhookSecret", set_webhook_secret, NULL, RSRC_CONF,
                      "HMAC-SHA256 key signing every outbound webhook: file:/path, env:NAME or "
                      "a literal"),
    AP_INIT_TAKE1("GcmonWebhookMaxAge", set_webhook_max_age, NULL, RSRC_CONF,
                  "Give up on a webhook delivery after this long (default 24h)"),
    AP_INIT_TAKE1("GcmonStrategyRebalance", set_strategy_rebalance, NULL, RSRC_CONF,
                  "Rebalance every active routing strategy this often from live observations "
                  "(1s to 24h), or Off (default)"),
    { NULL }
};
