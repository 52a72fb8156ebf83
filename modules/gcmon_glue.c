#include <string.h>

#include "gcmon_glue.h"

#include <apr_strings.h>
#include <http_log.h>

#include "gc_log.h"

typedef struct {
    module *m;
    server_rec *s;
} log_baton_t;

static int glue_is_level(void *baton, int level)
{
    log_baton_t *b = baton;
    return APLOG_MODULE_IS_LEVEL(b->s, b->m->module_index, level);
}

static void glue_print(void *baton, const char *file, int line, int level, apr_status_t rv,
                       const char *msg)
{
    log_baton_t *b = baton;
    ap_log_error_(file, line, b->m->module_index, level, rv, b->s, "%s", msg);
}

void gcmon_glue_log_bridge(module *m, server_rec *s, apr_pool_t *p)
{
    log_baton_t *b = apr_palloc(p, sizeof(*b));
    b->m = m;
    b->s = s;
    gc_log_set(glue_is_level, glue_print, b);
}

const char *gcmon_glue_err(cmd_parms *cmd, const char *err)
{
    return err ? apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err) : NULL;
}

static const char *parse_hidden(cmd_parms *cmd, const char *arg, const char **out, int *literal)
{
    const char *err = gc_parse_secret(cmd->pool, arg, out, literal);

    if (err) {
        return gcmon_glue_err(cmd, err);
    }
    if (cmd->directive) {
        cmd->directive->args = "[hidden]";
    }
    return NULL;
}

const char *gcmon_glue_hidden(cmd_parms *cmd, const char *arg, const char **out)
{
    int literal = 0;
    return parse_hidden(cmd, arg, out, &literal);
}

const char *gcmon_glue_secret(cmd_parms *cmd, module *m, const char *arg, const char **out)
{
    int literal = 0;
    const char *err = parse_hidden(cmd, arg, out, &literal);

    if (err) {
        return err;
    }
    if (literal) {
        ap_log_error_(
            __FILE__, __LINE__, m->module_index, APLOG_WARNING, 0, cmd->server,
            GCMON_LOGNO(10) "%s is given as a literal value in %s:%d; use "
                            "file:/path or env:NAME so the secret stays out of the configuration",
            cmd->cmd->name, cmd->directive ? cmd->directive->filename : "?",
            cmd->directive ? cmd->directive->line_num : 0);
    }
    return NULL;
}
