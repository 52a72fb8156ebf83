/* mod_gcmon_api: refuse to start (and fail apache2 -t) when gcmon's SQLite
 * database cannot be written by the user the server runs as (gc_dbdir).
 *
 * mod_dbd keeps its settings private, so the values come from the
 * configuration tree, as mod_dbd itself reads them: DBDriver and DBDParams of
 * the main server, and of each <VirtualHost>, which inherits the main
 * server's unless it sets its own (mod_dbd's merge). <IfModule>, <IfDefine>
 * and Include are already expanded in the tree. The main server's database is
 * always gcmon's (the stream and the background holder use it); a virtual
 * host's own one only where the API can be served (a SetHandler gcmon-api in
 * it, or in the main server's sections, which every host inherits): another
 * module's database there (mod_authn_dbd's, read-only) is not gcmon's
 * business. The run user is mod_unixd's User and Group. Nothing is opened and
 * nothing upstream is asked: the check stays as fast as apache2 -t. */
#include <unistd.h>

#include <apr_strings.h>

#include "gc_dbdir.h"
#include "mod_gcmon_api_private.h"

#include <http_core.h>
#include <http_main.h>
#include <unixd.h>

typedef struct {
    const char *driver;
    const char *params;
    const ap_directive_t *where; /* the DBDParams line, for the message */
} dbd_values_t;

/* The last DBDriver and DBDParams among d and its siblings (not below them:
 * mod_dbd's directives are server config only). */
static void scan(apr_pool_t *p, const ap_directive_t *d, dbd_values_t *v)
{
    for (; d; d = d->next) {
        const char *args = d->args;
        if (!strcasecmp(d->directive, "DBDriver")) {
            v->driver = ap_getword_conf(p, &args);
        }
        else if (!strcasecmp(d->directive, "DBDParams")) {
            const char *params = ap_getword_conf(p, &args);
            if (*params) { /* mod_dbd: an empty value inherits */
                v->params = params;
                v->where = d;
            }
        }
    }
}

/* Whether a SetHandler gcmon-api is among d, its siblings or below them
 * (not inside a <VirtualHost> when skip_vhosts). */
static int serves_api(apr_pool_t *p, const ap_directive_t *d, int skip_vhosts)
{
    for (; d; d = d->next) {
        const char *args = d->args;
        if (!strcasecmp(d->directive, "SetHandler")
            && !strcasecmp(ap_getword_conf(p, &args), "gcmon-api")) {
            return 1;
        }
        if (d->first_child && !(skip_vhosts && !strcasecmp(d->directive, "<VirtualHost"))
            && serves_api(p, d->first_child, skip_vhosts)) {
            return 1;
        }
    }
    return 0;
}

/* The path the children open: below ChrootDir when there is one. */
static const char *run_path(apr_pool_t *p, const char *file)
{
    const char *root = ap_unixd_config.chroot_dir;

    if (!root || !*root) {
        return file;
    }
    return apr_pstrcat(p, root, file[0] == '/' ? "" : "/", file, NULL);
}

/* OK, or HTTP_INTERNAL_SERVER_ERROR when v's SQLite database is unusable.
 * `seen` keeps each file to one check. */
static int check_one(server_rec *s, apr_pool_t *p, const dbd_values_t *v, apr_hash_t *seen)
{
    gc_dbdir_user_t u;
    const char *file = gc_dbdir_sqlite_file(p, v->driver, v->params), *problem = NULL;
    apr_status_t rv;

    if (!file || apr_hash_get(seen, (file = run_path(p, file)), APR_HASH_KEY_STRING)) {
        return OK;
    }
    apr_hash_set(seen, file, APR_HASH_KEY_STRING, file);
    u.user = ap_unixd_config.user_name;
    u.group = ap_unixd_config.group_name;
    u.uid = ap_unixd_config.user_id;
    u.gid = ap_unixd_config.group_id;
    if (geteuid() != 0) {
        /* httpd switches users only when started as root. */
        u.user = u.group = NULL;
        u.uid = geteuid();
        u.gid = getegid();
    }
    if ((rv = gc_dbdir_check(p, file, &u, gc_dbdir_probe_as, &u, &problem)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     GCMON_LOGNO(1012) "cannot check whether the user the server runs as "
                                       "can write gcmon's SQLite database %s",
                     file);
        return OK;
    }
    if (problem) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     GCMON_LOGNO(1010) "refusing to start: %s (DBDParams at %s:%d)", problem,
                     v->where ? v->where->filename : "?", v->where ? v->where->line_num : 0);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 GCMON_LOGNO(1011) "gcmon's SQLite database %s: its directory is writable "
                                   "by the user the server runs as",
                 file);
    return OK;
}

int gcmon_api_dbdir_check(server_rec *s, apr_pool_t *ptemp)
{
    dbd_values_t main_values = { NULL, NULL, NULL };
    const ap_directive_t *d;
    apr_hash_t *seen = apr_hash_make(ptemp);
    int rc, everywhere;

    /* The first of the two configuration passes of a start is a dry run
     * (apache2 -t stops after it); other dumps (-S, -M) check nothing. */
    if (ap_state_query(AP_SQ_RUN_MODE) == AP_SQ_RM_CONFIG_DUMP
        || (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG
            && ap_state_query(AP_SQ_RUN_MODE) != AP_SQ_RM_CONFIG_TEST)) {
        return OK;
    }
    scan(ptemp, ap_conftree, &main_values);
    if ((rc = check_one(s, ptemp, &main_values, seen)) != OK) {
        return rc;
    }
    everywhere = serves_api(ptemp, ap_conftree, 1);
    for (d = ap_conftree; d; d = d->next) {
        dbd_values_t v = main_values;
        if (strcasecmp(d->directive, "<VirtualHost")
            || !(everywhere || serves_api(ptemp, d->first_child, 0))) {
            continue;
        }
        scan(ptemp, d->first_child, &v);
        if ((rc = check_one(s, ptemp, &v, seen)) != OK) {
            return rc;
        }
    }
    return OK;
}
