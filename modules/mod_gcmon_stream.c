/* mod_gcmon_stream: the monitor of live agent state. It takes the Genesys
 * Cloud connection, the rate budget and the metrics from mod_gcmon_api, and
 * mod_dbd's connections for its database. Each child runs a monitor thread;
 * exactly one of them (per database) holds the stream — see docs/stream.md. */
#define GCMON_MODULE_MAIN
#include <apr_optional.h>
#include <apr_strings.h>
#include <apr_dbd.h>
#include <http_core.h>
#include <mod_dbd.h>
#include <mod_status.h>
#include <mpm_common.h>

#include "gc_alerts.h"
#include "gc_webhook.h"
#include "mod_gcmon_stream_private.h"

static APR_OPTIONAL_FN_TYPE(gcmon_api_shared) * api_shared;
static const gc_webhook_conf_t *webhooks;         /* of the running configuration */
static const apr_array_header_t *monitored_users; /* GcmonMonitorUser */

static gcmon_stream_conf_t *stream_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &gcmon_stream_module);
}

static int dbd_loaded(void)
{
    return APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open) && APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
}

/* GcmonStream Off with an outbound webhook runs a background holder, which
 * needs mod_dbd (the outbox is a table of gcmon's database). Without it httpd
 * still starts — a server that only serves the API has nothing to queue
 * deliveries in either — but says so, naming the directives (never the URLs).
 * 1 when it warned. */
static int warn_background_without_dbd(server_rec *s, apr_pool_t *p)
{
    const gc_webhook_conf_t *w = &stream_conf(s)->mon.webhooks;
    const char *names = "";
    int i;

    if (gc_monitor_mode(&stream_conf(s)->mon) != GC_MONITOR_BACKGROUND || dbd_loaded()) {
        return 0;
    }
    for (i = 0; i < GC_WEBHOOK__COUNT; i++) {
        if (gc_webhook_target_url(w, &gc_webhook_targets[i])) {
            names =
                apr_pstrcat(p, names, *names ? ", " : "", gc_webhook_targets[i].directive, NULL);
        }
    }
    ap_log_error(
        APLOG_MARK, APLOG_WARNING, 0, s,
        GCMON_LOGNO(
            2009) "%s set, but mod_dbd is not loaded: with GcmonStream Off "
                  "no webhook is queued or delivered (the background holder that delivers "
                  "them needs gcmon's database). Load mod_dbd (a2enmod dbd) and set DBDriver "
                  "and DBDParams",
        names);
    return 1;
}

/* What apache2 -t can check: our own directives and mod_dbd's presence. */
static int gcmon_stream_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                     server_rec *s)
{
    gcmon_stream_conf_t *c = stream_conf(s);
    long max_users =
        (long)GC_MAX_CHANNELS
        * (c->mon.topics_per_channel > 0 ? c->mon.topics_per_channel : GC_MAX_TOPICS_PER_CHANNEL);

    if (c->mon.enabled <= 0) {
        /* A real start says it in post_config (into the error log). */
        if (ap_state_query(AP_SQ_RUN_MODE) == AP_SQ_RM_CONFIG_TEST) {
            warn_background_without_dbd(s, ptemp);
        }
        return OK;
    }
    if (!dbd_loaded()) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     GCMON_LOGNO(2003) "GcmonStream On needs mod_dbd for its database: "
                                       "load it (a2enmod dbd) and set DBDriver and DBDParams");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (c->mon.queues->nelts + c->mon.users->nelts == 0) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     GCMON_LOGNO(2002) "GcmonStream On needs at least one GcmonMonitorQueue "
                                       "or GcmonMonitorUser: nothing to monitor");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (c->mon.users->nelts > max_users) {
        ap_log_error(
            APLOG_MARK, APLOG_CRIT, 0, s,
            GCMON_LOGNO(2005) "%d users are configured with GcmonMonitorUser, but "
                              "Genesys Cloud allows at most %d notification channels of %d topics "
                              "(GcmonTopicsPerChannel), i.e. %ld users",
            c->mon.users->nelts, GC_MAX_CHANNELS, (int)(max_users / GC_MAX_CHANNELS), max_users);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* Whether each webhook is set, never its URL: "Slack webhook set, status/
 * trace/WFM webhooks not set/set/not set" (Slack ones alone, the rest grouped). */
static const char *webhooks_set(apr_pool_t *p, const gc_webhook_conf_t *w)
{
    const char *alone = "", *names = "", *states = "";
    int i;

    for (i = 0; i < GC_WEBHOOK__COUNT; i++) {
        const gc_webhook_target_t *t = &gc_webhook_targets[i];
        const char *state = gc_webhook_target_url(w, t) ? "set" : "not set";
        if (t->slack) {
            alone = apr_psprintf(p, "%s%s webhook %s, ", alone, t->label, state);
        }
        else {
            names = apr_pstrcat(p, names, *names ? "/" : "", t->label, NULL);
            states = apr_pstrcat(p, states, *states ? "/" : "", state, NULL);
        }
    }
    return apr_psprintf(p, "%s%s webhooks %s", alone, names, states);
}

/* The idle alert rules and whether each webhook is set (never its URL). */
static void log_alert_rules(server_rec *s, apr_pool_t *p, const gc_monitor_conf_t *mon)
{
    const char *rules = "";
    int i;

    for (i = 0; i < mon->idle_alerts->nelts; i++) {
        const gc_alert_rule_t *r = &APR_ARRAY_IDX(mon->idle_alerts, i, gc_alert_rule_t);
        rules = apr_psprintf(p, "%s%s%s %s%s%s", rules, i ? ", " : "", r->state,
                             gc_format_duration(p, r->threshold), r->repeat ? " every " : "",
                             r->repeat ? gc_format_duration(p, r->repeat) : "");
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 GCMON_LOGNO(2008) "gcmon_stream: idle alerts: %s; %s, signing %s, "
                                   "webhook max age %s",
                 rules, webhooks_set(p, &mon->webhooks), mon->webhooks.secret ? "on" : "off",
                 gc_format_duration(p, mon->webhooks.max_age));
}

static int gcmon_stream_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                    server_rec *s)
{
    gcmon_stream_conf_t *c = stream_conf(s);
    const gcmon_shared_t *sh;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    gcmon_glue_log_bridge(&gcmon_stream_module, s, pconf);
    api_shared = APR_RETRIEVE_OPTIONAL_FN(gcmon_api_shared);
    if (!api_shared || !(sh = api_shared())) {
        ap_log_error(
            APLOG_MARK, APLOG_CRIT, 0, s,
            GCMON_LOGNO(2001) "mod_gcmon_stream needs mod_gcmon_api: load "
                              "mod_gcmon_api.so before mod_gcmon_stream.so (see conf/gcmon.load)");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* Each DSO indexes the segments with its own copy of the core. */
    if (!gc_metrics_attach(sh->metrics, gc_metrics_size())
        || !gc_budget_attach(sh->budget, gc_budget_size(GC_MAX_RATE_LIMIT))) {
        ap_log_error(
            APLOG_MARK, APLOG_CRIT, 0, s,
            GCMON_LOGNO(
                2014) "mod_gcmon_stream.so and mod_gcmon_api.so are from "
                      "different builds of gcmon (their shared memory layouts differ): install "
                      "both from one build");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    gc_monitor_conf_defaults(&c->mon);
    if (c->mon.idle_alerts->nelts == 0) {
        c->mon.idle_alerts = gc_alert_rules_default(pconf);
    }
    /* Traces can be queued by mod_gcmon_api: a background holder runs them. */
    c->mon.jobs = sh->conn->client_id && sh->conn->client_secret && dbd_loaded();
    c->mon.webhooks.timeout = sh->conn->request_timeout;
    c->mon.webhooks.ca_file = sh->conn->ca_file;
    webhooks = &c->mon.webhooks;
    monitored_users = c->mon.users;
    if (c->mon.enabled && (!sh->conn->client_id || !sh->conn->client_secret)) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     GCMON_LOGNO(2004) "GcmonStream On needs the Genesys Cloud client "
                                       "credentials: set GcmonClientID and GcmonClientSecret");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    gcmon_stream_node_setup(s, c->node_name);
    if (gcmon_stream_status_setup(s, c->mon.enabled) != OK || gcmon_stream_routes_setup(s) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (c->mon.enabled) {
        ap_log_error(
            APLOG_MARK, APLOG_INFO, 0, s,
            GCMON_LOGNO(
                2007) "gcmon_stream: monitoring %d queue(s) and %d user(s); "
                      "%d topics per channel, heartbeat timeout %s, pong timeout %s, "
                      "backoff %s..%s, membership refresh %s, retention %s, audit retention %s",
            c->mon.queues->nelts, c->mon.users->nelts, c->mon.topics_per_channel,
            gc_format_duration(ptemp, c->mon.heartbeat_timeout),
            gc_format_duration(ptemp, c->mon.pong_timeout),
            gc_format_duration(ptemp, c->mon.backoff_min),
            gc_format_duration(ptemp, c->mon.backoff_max),
            gc_format_duration(ptemp, c->mon.membership_refresh),
            gc_format_duration(ptemp, c->mon.retention),
            c->mon.audit_retention < 0 ? "off" : gc_format_duration(ptemp, c->mon.audit_retention));
        log_alert_rules(s, ptemp, &c->mon);
    }
    else {
        warn_background_without_dbd(s, ptemp);
    }
    return OK;
}

static void gcmon_stream_child_init(apr_pool_t *pchild, server_rec *s)
{
    gcmon_glue_log_bridge(&gcmon_stream_module, s, pchild);
    if (api_shared && api_shared()) {
        gcmon_stream_thread_start(pchild, s, api_shared(), stream_conf(s));
    }
}

/* The optional function's name is its registration key. */
static int gcmon_stream_webhook_configured(const char *target)
{
    return webhooks && gc_webhook_url(webhooks, target) != NULL;
}

static int gcmon_stream_monitors_user(const char *user_id)
{
    int i;

    for (i = 0; monitored_users && user_id && i < monitored_users->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(monitored_users, i, const char *), user_id)) {
            return 1;
        }
    }
    return 0;
}

static void gcmon_stream_register_hooks(apr_pool_t *p)
{
    static const char *const after_api[] = { "mod_gcmon_api.c", NULL };
    static const char *const after_api_dbd[] = { "mod_gcmon_api.c", "mod_dbd.c", NULL };

    ap_hook_check_config(gcmon_stream_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(gcmon_stream_post_config, after_api, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(gcmon_stream_child_init, after_api_dbd, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_stopping(gcmon_stream_child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, gcmon_stream_status_hook, NULL, NULL, APR_HOOK_MIDDLE);
    gcmon_stream_status_register();
    gcmon_stream_routes_register();
    APR_REGISTER_OPTIONAL_FN(gcmon_stream_webhook_configured);
    APR_REGISTER_OPTIONAL_FN(gcmon_stream_monitors_user);
}

AP_DECLARE_MODULE(gcmon_stream) = { STANDARD20_MODULE_STUFF,
                                    NULL,
                                    NULL,
                                    gcmon_stream_create_server_conf,
                                    NULL,
                                    gcmon_stream_cmds,
                                    gcmon_stream_register_hooks,
                                    AP_MODULE_FLAG_NONE };
