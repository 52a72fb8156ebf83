/* mod_gcmon_api: where the API is mounted (SPEC §9.13).
 *
 * gcmon answers only at <mount>/v1/<route>, where <mount> is the literal path
 * of the <Location> section whose `SetHandler gcmon-api` gave the request its
 * handler. httpd does not tell a handler which section set it, so gcmon finds
 * it the way core does: among the server's <Location> sections (config order,
 * the main server's included) the last one that matches the URI and sets a
 * handler decides. A request whose handler came from anywhere else — a
 * <LocationMatch>, a wildcard or regex <Location>, <Directory>, <Files>,
 * .htaccess, AddHandler — has no mount and is answered 404: Apache's access
 * control on <Location <mount>/v1/admin> then covers every admin resource.
 *
 * API requests skip httpd's filesystem walk (map_to_storage), as mod_proxy's
 * do: no stat calls, and a long path segment is gcmon's problem+json, never
 * Apache's HTML 403. */
#include <string.h>

#include <apr_fnmatch.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_request.h>

#include "mod_gcmon_api_private.h"

#define GCMON_HANDLER "gcmon-api"

/* Does <Location> section d match uri, as httpd's location walk decides? */
static int section_matches(const core_dir_config *d, const char *uri)
{
    size_t len;

    if (d->r) {
        return ap_regexec(d->r, uri, 0, NULL, 0) == 0;
    }
    if (d->d_is_fnmatch) {
        return apr_fnmatch(d->d, uri, APR_FNM_PATHNAME) == APR_SUCCESS;
    }
    len = strlen(d->d);
    if (strncmp(d->d, uri, len)) {
        return 0;
    }
    return len == 0 || d->d[len - 1] == '/' || uri[len] == '/' || uri[len] == '\0';
}

/* "/gcmon/api/" → "/gcmon/api"; "/" stays "" (the API at the root). */
static const char *mount_path(apr_pool_t *p, const char *d)
{
    size_t len = strlen(d);

    while (len > 0 && d[len - 1] == '/') {
        len--;
    }
    return apr_pstrmemdup(p, d, len);
}

/* Say once per process that a section serves gcmon-api without a literal path. */
static void warn_unmounted(request_rec *r, const core_dir_config *d)
{
    static volatile int warned;

    if (warned) {
        return;
    }
    warned = 1;
    ap_log_rerror(
        APLOG_MARK, APLOG_WARNING, 0, r,
        GCMON_LOGNO(
            1004) "SetHandler gcmon-api reached %s from a section "
                  "without a literal path (%s); gcmon answers 404 there. Mount the API with "
                  "<Location /path> (see docs/api.md, \"Where the API is served\")",
        r->uri, d ? (d->r ? "a regular expression" : "a wildcard <Location>") : "not a <Location>");
}

static const char *resolve(request_rec *r)
{
    core_server_config *sc = ap_get_core_module_config(r->server->module_config);
    ap_conf_vector_t **sec = (ap_conf_vector_t **)sc->sec_url->elts;
    const core_dir_config *last = NULL;
    const char *handler, *err = NULL;
    int i;

    if (!r->uri || r->uri[0] != '/') {
        return NULL;
    }
    for (i = 0; i < sc->sec_url->nelts; i++) {
        const core_dir_config *d = ap_get_core_module_config(sec[i]);
        if (d->expr_handler && section_matches(d, r->uri)) {
            last = d;
        }
    }
    if (!last) {
        return NULL;
    }
    handler = ap_expr_str_exec(r, last->expr_handler, &err);
    if (err || !handler || strcmp(handler, GCMON_HANDLER)) {
        return NULL;
    }
    if (last->r || last->d_is_fnmatch) {
        warn_unmounted(r, last);
        return NULL;
    }
    return mount_path(r->pool, last->d);
}

gcmon_api_req_t *gcmon_api_req(request_rec *r)
{
    gcmon_api_req_t *n = ap_get_module_config(r->request_config, &gcmon_api_module);

    if (!n) {
        n = apr_pcalloc(r->pool, sizeof(*n));
        ap_set_module_config(r->request_config, &gcmon_api_module, n);
    }
    return n;
}

const char *gcmon_api_mount(request_rec *r)
{
    gcmon_api_req_t *n = gcmon_api_req(r);

    if (!n->mount_resolved) {
        n->mount = resolve(r);
        n->mount_resolved = 1;
    }
    return n->mount;
}

/* A segment gcmon routes: no empty, dot or still-encoded segments. */
static int segment_ok(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '%' || c == '\\') {
            return 0;
        }
    }
    return 1;
}

int gcmon_api_route_segments(request_rec *r, const char **seg, int max)
{
    const char *mount = gcmon_api_mount(r), *rel, *p;
    int n = 0;

    if (!mount) {
        if (r->handler && !strcmp(r->handler, GCMON_HANDLER)) {
            warn_unmounted(r, NULL);
        }
        return -1;
    }
    rel = r->uri + strlen(mount);
    if (*rel != '/') {
        return -1;
    }
    for (p = rel + 1;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (n == max || !segment_ok(p, len)) {
            return -1;
        }
        seg[n++] = apr_pstrmemdup(r->pool, p, len);
        if (!end) {
            break;
        }
        p = end + 1;
    }
    return n;
}

int gcmon_api_map_to_storage(request_rec *r)
{
    if (!gcmon_api_mount(r)) {
        return DECLINED;
    }
    r->filename = apr_pstrcat(r->pool, GCMON_HANDLER ":", r->uri, NULL);
    return OK;
}
