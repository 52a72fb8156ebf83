/* gcmon's SQLite database on disk: the file mod_dbd's sqlite3 driver opens
 * and whether the user the server runs as can write where SQLite needs to.
 * Checked at start-up and by apache2 -t (mod_gcmon_api's check_config): a
 * directory the run user cannot write fails every write later (GCM2100,
 * 503s), long after the configuration was accepted. */
#ifndef GC_DBDIR_H
#define GC_DBDIR_H

#include <sys/types.h>

#include <apr_pools.h>

/* The file apr_dbd's sqlite3 driver opens for DBDParams `params` (which it
 * passes to sqlite3_open: a path, or a "file:" URI), or NULL when `driver` is
 * not sqlite3 or the database is no file of the file system (":memory:", "",
 * a URI with mode=memory or another host). Relative paths stay relative (to
 * the server's working directory, as SQLite resolves them). */
const char *gc_dbdir_sqlite_file(apr_pool_t *p, const char *driver, const char *params);

/* The directory of `file`: "." for a bare name, "/" for a file in the root. */
const char *gc_dbdir_dir(apr_pool_t *p, const char *file);

/* The user and group the server's children run as. */
typedef struct gc_dbdir_user {
    const char *user;  /* for messages and its supplementary groups; "#33" or NULL:
                          looked up by uid */
    const char *group; /* for messages; NULL: the gid */
    uid_t uid;
    gid_t gid;
} gc_dbdir_user_t;

/* Answers, for each of n paths, whether the run user has access(2) `modes[i]`
 * (R_OK, W_OK, X_OK) to it: errs[i] = 0, ENOENT when the path does not exist,
 * or the errno of the refusal. APR_SUCCESS, or the probe itself could not run
 * (errs unset). */
typedef apr_status_t gc_dbdir_probe_fn(void *baton, int n, const char *const *paths,
                                       const int *modes, int *errs);

/* The probe for a gc_dbdir_user_t (baton): access(2) in a forked child that
 * takes the user's identity first (its groups, gid, uid) as the server's
 * children do, when this process is root and the user is not; otherwise
 * faccessat(AT_EACCESS) here (a server that does not start as root does not
 * switch users). */
apr_status_t gc_dbdir_probe_as(void *baton, int n, const char *const *paths, const int *modes,
                               int *errs);

/* Whether u can use the SQLite database `file`: its directory exists and u
 * may create files in it (write and search: SQLite creates the database and
 * its -wal, -shm and -journal files there), and the database and those files,
 * where they exist, are readable and writable by u. APR_SUCCESS with
 * *problem NULL when they are, or a sentence naming the path, the user and
 * the fix; another status when the probe could not run. */
apr_status_t gc_dbdir_check(apr_pool_t *p, const char *file, const gc_dbdir_user_t *u,
                            gc_dbdir_probe_fn *probe, void *baton, const char **problem);

#endif
