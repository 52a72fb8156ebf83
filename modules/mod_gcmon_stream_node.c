/* mod_gcmon_stream: this instance's node name, the first part of every holder
 * id ("node:pid:random") it writes into the lease.
 *
 * The name must tell Apache instances apart, not just host names: two
 * containers named alike sharing one PostgreSQL would otherwise each take the
 * other's live holder for one of their own whose pid is gone (kill(pid, 0)
 * sees only its own PID namespace) and release its lease. So the default is
 * the host name plus a random suffix, kept in the runtime directory (one per
 * instance), so that it stays the same across restarts — after a crash, the
 * restarted instance still recognises its dead holder's lease and takes over
 * at once instead of waiting for the lease to expire. GcmonNodeName sets it
 * explicitly. */
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_network_io.h>
#include <apr_strings.h>

#include "mod_gcmon_stream_private.h"

#define NODE_FILE "gcmon-node"
#define NODE_KEY "gcmon_stream_node"
#define SUFFIX_LEN 8

static char node_name[GC_STATUS_HOST_MAX];

const char *gcmon_stream_node(void)
{
    return node_name[0] ? node_name : "localhost";
}

static int name_char(char c)
{
    return apr_isalnum(c) || c == '.' || c == '_' || c == '-';
}

int gcmon_stream_node_name_valid(const char *name)
{
    size_t n = strlen(name), i;

    if (n == 0 || n >= GC_STATUS_HOST_MAX) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!name_char(name[i])) {
            return 0;
        }
    }
    return 1;
}

/* "<host name>-<8 hex>", the host name cut to fit and stripped of anything
 * but [A-Za-z0-9._-]. */
static const char *generate(apr_pool_t *p)
{
    char host[APRMAXHOSTLEN + 1];
    unsigned char rnd[SUFFIX_LEN / 2];
    char *o;

    if (apr_gethostname(host, sizeof(host), p) != APR_SUCCESS || !host[0]) {
        apr_cpystrn(host, "localhost", sizeof(host));
    }
    host[GC_STATUS_HOST_MAX - SUFFIX_LEN - 2] = '\0';
    for (o = host; *o; o++) {
        if (!name_char(*o)) {
            *o = '_';
        }
    }
    if (apr_generate_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
        apr_uint32_t t = (apr_uint32_t)apr_time_now() ^ (apr_uint32_t)getpid();
        memcpy(rnd, &t, sizeof(rnd));
    }
    return apr_psprintf(p, "%s-%02x%02x%02x%02x", host, rnd[0], rnd[1], rnd[2], rnd[3]);
}

/* The name kept in the runtime directory, or NULL. */
static const char *read_kept(apr_pool_t *p, const char *path)
{
    char buf[GC_STATUS_HOST_MAX + 2];
    apr_file_t *f;
    apr_size_t n = sizeof(buf) - 1;

    if (apr_file_open(&f, path, APR_FOPEN_READ, 0, p) != APR_SUCCESS) {
        return NULL;
    }
    if (apr_file_read(f, buf, &n) != APR_SUCCESS) {
        n = 0;
    }
    apr_file_close(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return gcmon_stream_node_name_valid(buf) ? apr_pstrdup(p, buf) : NULL;
}

static apr_status_t keep(apr_pool_t *p, const char *path, const char *name)
{
    const char *tmp = apr_pstrcat(p, path, ".tmp", NULL);
    apr_file_t *f;
    apr_status_t rv;

    rv = apr_file_open(&f, tmp, APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_TRUNCATE,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD | APR_FPROT_WREAD, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = apr_file_puts(apr_pstrcat(p, name, "\n", NULL), f);
    apr_file_close(f);
    return rv == APR_SUCCESS ? apr_file_rename(tmp, path, p) : rv;
}

/* Called from post_config. The name lives in the process pool, so it is
 * settled once per parent and the same in every generation. */
void gcmon_stream_node_setup(server_rec *s, const char *configured)
{
    apr_pool_t *pp = s->process->pool;
    const char *name = NULL, *path;
    apr_status_t rv;

    if (configured) {
        gc_status_copy_line(node_name, sizeof(node_name), configured);
        return;
    }
    apr_pool_userdata_get((void **)&name, NODE_KEY, pp);
    if (!name) {
        path = ap_runtime_dir_relative(pp, NODE_FILE);
        if (!path || !(name = read_kept(pp, path))) {
            name = generate(pp);
            if (!path || (rv = keep(pp, path, name)) != APR_SUCCESS) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, path ? rv : 0, s,
                             GCMON_LOGNO(2015) "stream: cannot keep this instance's node "
                                               "name in %s; using %s until the server stops (set "
                                               "GcmonNodeName to keep one across restarts)",
                             path ? path : "the runtime directory", name);
            }
        }
        apr_pool_userdata_set(name, NODE_KEY, NULL, pp);
    }
    gc_status_copy_line(node_name, sizeof(node_name), name);
}
