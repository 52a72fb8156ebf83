/* gcmon's SQLite database on disk (gc_dbdir.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_strings.h>

#include "gc_dbdir.h"

/* The paths gc_dbdir_check asks about: the directory, the database, and
 * SQLite's three files next to it. */
#define PROBE_MAX 8
static const char *const companions[] = { "-wal", "-shm", "-journal" };
#define N_COMPANIONS ((int)(sizeof(companions) / sizeof(companions[0])))

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* %XX decoded (an invalid escape is kept as it is, as SQLite does not
 * reject it either). */
static char *unescape(apr_pool_t *p, const char *s, apr_size_t n)
{
    char *out = apr_palloc(p, n + 1), *o = out;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0
            && (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        }
        else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* Whether a URI's query string asks for an in-memory database. */
static int query_memory(const char *q)
{
    while (q && *q) {
        const char *end = strchr(q, '&');
        apr_size_t n = end ? (apr_size_t)(end - q) : strlen(q);
        if (n == strlen("mode=memory") && !strncmp(q, "mode=memory", n)) {
            return 1;
        }
        q = end ? end + 1 : NULL;
    }
    return 0;
}

/* The file a "file:" URI names (SQLite's URI filenames, which Debian's
 * SQLite enables), or NULL. */
static const char *uri_file(apr_pool_t *p, const char *uri)
{
    const char *s = uri + strlen("file:"), *end;
    const char *file;

    if (!strncmp(s, "//", 2)) {
        const char *auth = s + 2, *slash = strchr(auth, '/');
        apr_size_t n = slash ? (apr_size_t)(slash - auth) : strlen(auth);
        if (n != 0 && !(n == strlen("localhost") && !strncasecmp(auth, "localhost", n))) {
            return NULL; /* another host: SQLite refuses it */
        }
        s = slash ? slash : auth + n;
    }
    end = s + strcspn(s, "?#");
    if (*end == '?' && query_memory(apr_pstrndup(p, end + 1, strcspn(end + 1, "#")))) {
        return NULL;
    }
    file = unescape(p, s, (apr_size_t)(end - s));
    return *file && strcmp(file, ":memory:") ? file : NULL;
}

const char *gc_dbdir_sqlite_file(apr_pool_t *p, const char *driver, const char *params)
{
    if (!driver || strcmp(driver, "sqlite3") || !params) {
        return NULL;
    }
    if (!strncmp(params, "file:", strlen("file:"))) {
        return uri_file(p, params);
    }
    return *params && strcmp(params, ":memory:") ? apr_pstrdup(p, params) : NULL;
}

const char *gc_dbdir_dir(apr_pool_t *p, const char *file)
{
    const char *slash = strrchr(file, '/');
    apr_size_t n;

    if (!slash) {
        return ".";
    }
    n = (apr_size_t)(slash - file);
    while (n > 0 && file[n - 1] == '/') {
        n--;
    }
    return n == 0 ? "/" : apr_pstrndup(p, file, n);
}

/* ---- the probe -------------------------------------------------------------- */

static int probe_one(const char *path, int mode)
{
    if (faccessat(AT_FDCWD, path, F_OK, AT_EACCESS) != 0
        || faccessat(AT_FDCWD, path, mode, AT_EACCESS) != 0) {
        return errno ? errno : EACCES;
    }
    return 0;
}

/* Take u's identity as httpd's unixd does for its children: the user's
 * supplementary groups, its group, then its uid. 0 or an errno. */
static int become(const gc_dbdir_user_t *u)
{
    const char *name = u->user;

    if (!name || name[0] == '#') {
        struct passwd *pw = getpwuid(u->uid);
        name = pw ? pw->pw_name : NULL;
    }
    if ((name ? initgroups(name, u->gid) : setgroups(0, NULL)) != 0 || setgid(u->gid) != 0
        || setuid(u->uid) != 0) {
        return errno ? errno : EPERM;
    }
    return 0;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const char *b = buf;

    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static size_t read_all(int fd, void *buf, size_t n)
{
    char *b = buf;
    size_t got = 0;

    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    return got;
}

/* The forked child: [0] = 0 or the errno of taking u's identity, then one
 * answer a path. Never returns. */
static void probe_child(int fd, const gc_dbdir_user_t *u, int n, const char *const *paths,
                        const int *modes)
{
    int out[PROBE_MAX + 1] = { 0 };
    int i;

    out[0] = become(u);
    for (i = 0; out[0] == 0 && i < n; i++) {
        out[i + 1] = probe_one(paths[i], modes[i]);
    }
    _exit(write_all(fd, out, sizeof(int) * (size_t)(n + 1)) == 0 ? 0 : 1);
}

apr_status_t gc_dbdir_probe_as(void *baton, int n, const char *const *paths, const int *modes,
                               int *errs)
{
    const gc_dbdir_user_t *u = baton;
    int out[PROBE_MAX + 1];
    int fds[2], status, i;
    size_t want = sizeof(int) * (size_t)(n + 1), got;
    pid_t pid;

    if (n < 0 || n > PROBE_MAX) {
        return APR_EINVAL;
    }
    if (geteuid() != 0 || u->uid == 0) {
        for (i = 0; i < n; i++) {
            errs[i] = probe_one(paths[i], modes[i]);
        }
        return APR_SUCCESS;
    }
    if (pipe(fds) != 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    if ((pid = fork()) < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return APR_FROM_OS_ERROR(e);
    }
    if (pid == 0) {
        close(fds[0]);
        probe_child(fds[1], u, n, paths, modes);
    }
    close(fds[1]);
    got = read_all(fds[0], out, want);
    close(fds[0]);
    /* Reaped here; with SIGCHLD ignored the kernel did (ECHILD): the answer
     * read from the pipe is what counts. */
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got != want) {
        return APR_EGENERAL;
    }
    if (out[0] != 0) {
        return APR_FROM_OS_ERROR(out[0]);
    }
    memcpy(errs, out + 1, sizeof(int) * (size_t)n);
    return APR_SUCCESS;
}

/* ---- the check ---------------------------------------------------------------- */

/* A name for chown and messages: the name, or the number ("#33" → "33"). */
static const char *label(apr_pool_t *p, const char *name, unsigned long id)
{
    if (name && *name && name[0] != '#') {
        return name;
    }
    return apr_psprintf(p, "%lu", id);
}

static const char *reason(apr_pool_t *p, int err)
{
    char buf[128];

    return apr_pstrdup(p, apr_strerror(APR_FROM_OS_ERROR(err), buf, sizeof(buf)));
}

apr_status_t gc_dbdir_check(apr_pool_t *p, const char *file, const gc_dbdir_user_t *u,
                            gc_dbdir_probe_fn *probe, void *baton, const char **problem)
{
    const char *paths[2 + N_COMPANIONS];
    int modes[2 + N_COMPANIONS], errs[2 + N_COMPANIONS];
    const char *dir = gc_dbdir_dir(p, file);
    const char *user = label(p, u->user, (unsigned long)u->uid);
    const char *group = label(p, u->group, (unsigned long)u->gid);
    const char *rel = file[0] == '/' ? ""
                                     : " (a relative DBDParams is resolved against the "
                                       "server's working directory, / once it runs as a daemon)";
    apr_status_t rv;
    int i, n = 0;

    *problem = NULL;
    paths[n] = dir;
    modes[n++] = W_OK | X_OK;
    paths[n] = file;
    modes[n++] = R_OK | W_OK;
    for (i = 0; i < N_COMPANIONS; i++) {
        paths[n] = apr_pstrcat(p, file, companions[i], NULL);
        modes[n++] = R_OK | W_OK;
    }
    if ((rv = probe(baton, n, paths, modes, errs)) != APR_SUCCESS) {
        return rv;
    }
    if (errs[0] == ENOENT) {
        *problem = apr_psprintf(p,
                                "the directory %s of gcmon's SQLite database %s does not "
                                "exist%s: create it for %s, the user the server runs as "
                                "(install -d -o %s -g %s -m 0750 %s)",
                                dir, file, rel, user, user, group, dir);
        return APR_SUCCESS;
    }
    if (errs[0] != 0) {
        *problem = apr_psprintf(p,
                                "the directory %s of gcmon's SQLite database %s is not "
                                "writable by %s, the user the server runs as (%s)%s: SQLite "
                                "creates the database and its -wal, -shm and -journal files "
                                "there; give it to that user (chown %s:%s %s; chmod 0750 %s)",
                                dir, file, user, reason(p, errs[0]), rel, user, group, dir, dir);
        return APR_SUCCESS;
    }
    for (i = 1; i < n; i++) {
        if (errs[i] != 0 && errs[i] != ENOENT) {
            *problem = apr_psprintf(
                p,
                "%s (%s) is not readable and writable by %s, the user the server runs as "
                "(%s)%s: gcmon cannot write it; give it to that user (chown %s:%s %s)",
                paths[i], i == 1 ? "gcmon's SQLite database" : "a file SQLite keeps next to it",
                user, reason(p, errs[i]), rel, user, group, paths[i]);
            return APR_SUCCESS;
        }
    }
    return APR_SUCCESS;
}
