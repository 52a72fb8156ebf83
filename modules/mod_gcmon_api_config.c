/* mod_gcmon_api directives: Connection (SPEC §2) and the API's own limits. */
#include <string.h>
#include <strings.h>

#include <apr_lib.h>

#include <apr_strings.h>
#include <http_core.h>
#include <http_main.h>

#include "gc_id.h"
#include "mod_gcmon_api_private.h"

void *gcmon_api_create_server_conf(apr_pool_t *p, server_rec *s)
{
    gcmon_api_conf_t *c = apr_pcalloc(p, sizeof(*c));
    c->max_body = -1;
    c->actor_mode = -1;
    c->deadline = -1;
    c->trace_timeout = -1;
    c->transitions = apr_array_make(p, 4, sizeof(gc_transition_t));
    c->weight_skills = apr_table_make(p, 4);
    return c;
}

/* The per-process runtime built from the configuration (post_config, child_init). */
static gcmon_api_runtime_t runtime;

gcmon_api_runtime_t *gcmon_api_runtime(void)
{
    return &runtime;
}

gcmon_actor_mode_e gcmon_api_actor_mode(const gcmon_api_conf_t *c)
{
    return c->actor_mode < 0 ? GCMON_ACTOR_USER : (gcmon_actor_mode_e)c->actor_mode;
}

apr_interval_time_t gcmon_api_request_deadline(const gcmon_api_conf_t *c)
{
    return c->deadline < 0 ? GC_DEFAULT_REQUEST_DEADLINE : c->deadline;
}

apr_interval_time_t gcmon_api_trace_timeout(const gcmon_api_conf_t *c)
{
    return c->trace_timeout < 0 ? apr_time_from_sec(600) : c->trace_timeout;
}

gcmon_api_conf_t *gcmon_api_conf(void)
{
    return ap_get_module_config(ap_server_conf->module_config, &gcmon_api_module);
}

const char *gcmon_api_weight_skill(const gcmon_api_conf_t *c, const char *queue_id)
{
    return c->weight_skills && queue_id ? apr_table_get(c->weight_skills, queue_id) : NULL;
}

long gcmon_api_max_body(const gcmon_api_conf_t *c)
{
    return c->max_body < 0 ? GCMON_DEFAULT_MAX_BODY : c->max_body;
}

static gcmon_api_conf_t *cmd_conf(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &gcmon_api_module);
}

static const char *set_environment(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    gcmon_api_conf_t *c = cmd_conf(cmd);
    if (err) {
        return err;
    }
    if ((err = gc_parse_domain(cmd->pool, arg))) {
        return gcmon_glue_err(cmd, err);
    }
    c->conn.environment = arg;
    c->conn_configured = 1;
    return NULL;
}

static const char *set_url(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    gcmon_api_conf_t *c = cmd_conf(cmd);
    const char *url;
    if (err) {
        return err;
    }
    if ((err = gc_parse_http_url(cmd->pool, arg, &url))) {
        return gcmon_glue_err(cmd, err);
    }
    if (gc_url_in_clear(cmd->temp_pool, url)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, cmd->server,
                     GCMON_LOGNO(1020) "%s %s (%s:%d) is plain http:// to a host that is not "
                                       "loopback: the client secret, access tokens and "
                                       "agent data would travel in clear; use https://",
                     cmd->cmd->name, url, cmd->directive ? cmd->directive->filename : "?",
                     cmd->directive ? cmd->directive->line_num : 0);
    }
    if (cmd->info) {
        c->conn.login_url = url;
    }
    else {
        c->conn.api_url = url;
    }
    c->conn_configured = 1;
    return NULL;
}

static const char *set_client_id(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    if (!*arg) {
        return gcmon_glue_err(cmd, "a client id is required");
    }
    cmd_conf(cmd)->conn.client_id = arg;
    cmd_conf(cmd)->conn_configured = 1;
    return NULL;
}

static const char *set_client_secret(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    cmd_conf(cmd)->conn_configured = 1;
    return gcmon_glue_secret(cmd, &gcmon_api_module, arg, &cmd_conf(cmd)->conn.client_secret);
}

static const char *set_inbound_secret(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    return gcmon_glue_secret(cmd, &gcmon_api_module, arg, &cmd_conf(cmd)->inbound_secret);
}

static const char *set_ca_file(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const char *path;
    apr_finfo_t fi;
    if (err) {
        return err;
    }
    path = ap_server_root_relative(cmd->pool, arg);
    if (!path || apr_stat(&fi, path, APR_FINFO_TYPE, cmd->pool) != APR_SUCCESS
        || fi.filetype != APR_REG) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a readable file", cmd->cmd->name, arg);
    }
    cmd_conf(cmd)->conn.ca_file = path;
    return NULL;
}

static const char *set_timeout(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    return gcmon_glue_err(cmd, gc_parse_duration(cmd->pool, arg, APR_USEC_PER_SEC,
                                                 &cmd_conf(cmd)->conn.request_timeout));
}

/* A server-wide duration of at most max (why: the error's explanation). */
static const char *bounded_duration(cmd_parms *cmd, const char *arg, apr_interval_time_t max,
                                    const char *why, apr_interval_time_t *out)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    apr_interval_time_t d;
    if (err) {
        return err;
    }
    if ((err = gc_parse_duration(cmd->pool, arg, APR_USEC_PER_SEC, &d))) {
        return gcmon_glue_err(cmd, err);
    }
    if (d > max) {
        return apr_psprintf(cmd->pool, "%s: at most %s", cmd->cmd->name, why);
    }
    *out = d;
    return NULL;
}

static const char *set_deadline(cmd_parms *cmd, void *dc, const char *arg)
{
    return bounded_duration(cmd, arg, apr_time_from_sec(300),
                            "5m (a request thread waits that long at most)",
                            &cmd_conf(cmd)->deadline);
}

static const char *set_trace_timeout(cmd_parms *cmd, void *dc, const char *arg)
{
    return bounded_duration(cmd, arg, apr_time_from_sec(24 * 3600), "24h",
                            &cmd_conf(cmd)->trace_timeout);
}

static const char *set_rate_limit(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long v;
    if (err) {
        return err;
    }
    if ((err = gc_parse_long(cmd->pool, arg, 1, GC_MAX_RATE_LIMIT, &v))) {
        return gcmon_glue_err(cmd, err);
    }
    cmd_conf(cmd)->conn.rate_limit = (int)v;
    return NULL;
}

static const char *set_max_body(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long v;
    if (err) {
        return err;
    }
    if ((err = gc_parse_long(cmd->pool, arg, 1, GCMON_MAX_MAX_BODY, &v))) {
        return gcmon_glue_err(cmd, err);
    }
    cmd_conf(cmd)->max_body = v;
    return NULL;
}

static const char *set_transition(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    gc_transition_t *t;
    if (err) {
        return err;
    }
    t = apr_array_push(cmd_conf(cmd)->transitions);
    if ((err = gc_transition_parse(cmd->pool, argc, argv, t))) {
        return gcmon_glue_err(cmd, err);
    }
    return NULL;
}

static const char *set_weight_skill(cmd_parms *cmd, void *dc, const char *queue_id,
                                    const char *skill_id)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    gcmon_api_conf_t *c = cmd_conf(cmd);
    const char *prev;
    if (err) {
        return err;
    }
    if (!gc_id_valid(queue_id)) {
        return apr_psprintf(cmd->pool,
                            "%s: queue id '%s' must be 1 to 64 letters, digits, '-' or '_'",
                            cmd->cmd->name, queue_id);
    }
    if (!gc_id_valid(skill_id)) {
        return apr_psprintf(cmd->pool,
                            "%s: skill id '%s' must be 1 to 64 letters, digits, '-' or '_'",
                            cmd->cmd->name, skill_id);
    }
    if ((prev = apr_table_get(c->weight_skills, queue_id)) && strcmp(prev, skill_id)) {
        return apr_psprintf(cmd->pool, "%s: queue %s already has the weight skill %s",
                            cmd->cmd->name, queue_id, prev);
    }
    apr_table_set(c->weight_skills, queue_id, skill_id);
    return NULL;
}

/* An HTTP field name (RFC 9110 token). */
static int header_name_ok(const char *s)
{
    if (!*s) {
        return 0;
    }
    for (; *s; s++) {
        if (!apr_isalnum(*s) && !strchr("!#$%&'*+-.^_`|~", *s)) {
            return 0;
        }
    }
    return 1;
}

static const char *set_admin_actor(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    gcmon_api_conf_t *c = cmd_conf(cmd);
    if (err) {
        return err;
    }
    if (!strcasecmp(arg, "user")) {
        c->actor_mode = GCMON_ACTOR_USER;
    }
    else if (!strcasecmp(arg, "anonymous")) {
        c->actor_mode = GCMON_ACTOR_ANONYMOUS;
    }
    else if (!strncasecmp(arg, "header:", 7) && header_name_ok(arg + 7)) {
        c->actor_mode = GCMON_ACTOR_HEADER;
        c->actor_header = arg + 7;
    }
    else {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not user, header:<Name> (an HTTP header "
                            "name) or anonymous",
                            cmd->cmd->name, arg);
    }
    return NULL;
}

const command_rec gcmon_api_cmds[] = {
    AP_INIT_TAKE1("GcmonEnvironment", set_environment, NULL, RSRC_CONF,
                  "Genesys Cloud region domain, e.g. mypurecloud.com"),
    AP_INIT_TAKE1("GcmonApiURL", set_url, NULL, RSRC_CONF,
                  "Base URL of the Platform API (default https://api.<environment>)"),
    AP_INIT_TAKE1("GcmonLoginURL", set_url, (void *)1, RSRC_CONF,
                  "Base URL of the login service (default https://login.<environment>)"),
    AP_INIT_TAKE1("GcmonClientID", set_client_id, NULL, RSRC_CONF,
                  "OAuth client-credentials client id"),
    AP_INIT_TAKE1("GcmonClientSecret", set_client_secret, NULL, RSRC_CONF,
                  "OAuth client secret: file:/path, env:NAME or a literal"),
    AP_INIT_TAKE1("GcmonInboundSecret", set_inbound_secret, NULL, RSRC_CONF,
                  "HMAC-SHA256 key of POST /v1/hooks/genesys: file:/path, env:NAME or a literal "
                  "(unset: the receiver is off)"),
    AP_INIT_TAKE1("GcmonTLSCAFile", set_ca_file, NULL, RSRC_CONF,
                  "Extra CA bundle (PEM) trusted for upstream TLS"),
    AP_INIT_TAKE1("GcmonRequestTimeout", set_timeout, NULL, RSRC_CONF,
                  "Timeout of one upstream HTTP request (default 10s)"),
    AP_INIT_TAKE1("GcmonTraceTimeout", set_trace_timeout, NULL, RSRC_CONF,
                  "How long a flow trace may take, polls included, before it fails "
                  "(default 10m)"),
    AP_INIT_TAKE1("GcmonRequestDeadline", set_deadline, NULL, RSRC_CONF,
                  "How long an API request may spend on Genesys Cloud calls, waits "
                  "included (default 25s)"),
    AP_INIT_TAKE1("GcmonRateLimit", set_rate_limit, NULL, RSRC_CONF,
                  "Upstream requests per minute shared by all children (default 300)"),
    AP_INIT_TAKE1("GcmonMaxBody", set_max_body, NULL, RSRC_CONF,
                  "Largest admin request body in bytes (default 65536)"),
    AP_INIT_TAKE_ARGV("GcmonTransition", set_transition, NULL, RSRC_CONF,
                      "Allowed status change: <from> <to>... (presences or *; repeatable; "
                      "every change is allowed when none is given)"),
    AP_INIT_TAKE1("GcmonAdminActor", set_admin_actor, NULL, RSRC_CONF,
                  "Who performs admin actions: user (Apache's authenticated user, the "
                  "default), header:<Name> (set by a trusted reverse proxy) or anonymous"),
    AP_INIT_TAKE2("GcmonWeightSkill", set_weight_skill, NULL, RSRC_CONF,
                  "Routing skill whose proficiency carries a queue's member weights: "
                  "<queueId> <skillId> (repeatable, one skill a queue)"),
    { NULL }
};
