/* Unit tests of gc_dbdir: which file a sqlite3 DBDParams names, its
 * directory, the check's verdicts over a scripted probe, and the real probe
 * (as another user when the tests run as root). */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "gc_dbdir.h"
#include "unit.h"

static apr_pool_t *pool;

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
    pool = NULL;
}

static void file_is(const char *driver, const char *params, const char *want)
{
    const char *got = gc_dbdir_sqlite_file(pool, driver, params);

    if (!want) {
        ck_assert_msg(got == NULL, "%s %s: got %s, want none", driver, params, got);
    }
    else {
        ck_assert_msg(got && !strcmp(got, want), "%s %s: got %s, want %s", driver, params,
                      got ? got : "(none)", want);
    }
}

START_TEST(sqlite_file_paths)
{
    file_is("sqlite3", "/var/lib/gcmon/gcmon.db", "/var/lib/gcmon/gcmon.db");
    file_is("sqlite3", "gcmon.db", "gcmon.db");
    file_is("sqlite3", "", NULL);
    file_is("sqlite3", ":memory:", NULL);
    file_is("sqlite3", NULL, NULL);
    file_is("pgsql", "host=127.0.0.1 dbname=gcmon", NULL);
    file_is("pgsql", "/var/lib/gcmon/gcmon.db", NULL);
    file_is(NULL, "/var/lib/gcmon/gcmon.db", NULL);
    file_is("SQLite3", "/x.db", NULL); /* apr_dbd loads apr_dbd_<name>: case matters */
}
END_TEST

START_TEST(sqlite_file_uris)
{
    file_is("sqlite3", "file:/srv/gc/gcmon.db", "/srv/gc/gcmon.db");
    file_is("sqlite3", "file:///srv/gc/gcmon.db?cache=shared", "/srv/gc/gcmon.db");
    file_is("sqlite3", "file://localhost/srv/gc/gcmon.db#frag", "/srv/gc/gcmon.db");
    file_is("sqlite3", "file://LOCALHOST/srv/gc/gcmon.db", "/srv/gc/gcmon.db");
    file_is("sqlite3", "file:/srv/my%20db/gc%2Edb?mode=rwc", "/srv/my db/gc.db");
    file_is("sqlite3", "file:/srv/bad%zz.db", "/srv/bad%zz.db");
    file_is("sqlite3", "file:/srv/end%2", "/srv/end%2");
    file_is("sqlite3", "file:rel.db", "rel.db");
    file_is("sqlite3", "file:/srv/gc.db?cache=shared&mode=memory", NULL);
    file_is("sqlite3", "file:/srv/gc.db?mode=memoryx", "/srv/gc.db");
    file_is("sqlite3", "file::memory:", NULL);
    file_is("sqlite3", "file:?mode=rwc", NULL);
    file_is("sqlite3", "file://otherhost/srv/gc.db", NULL);
}
END_TEST

START_TEST(dir_of)
{
    ck_assert_str_eq(gc_dbdir_dir(pool, "/var/lib/gcmon/gcmon.db"), "/var/lib/gcmon");
    ck_assert_str_eq(gc_dbdir_dir(pool, "/var/lib//gcmon.db"), "/var/lib");
    ck_assert_str_eq(gc_dbdir_dir(pool, "/gcmon.db"), "/");
    ck_assert_str_eq(gc_dbdir_dir(pool, "//gcmon.db"), "/");
    ck_assert_str_eq(gc_dbdir_dir(pool, "gcmon.db"), ".");
    ck_assert_str_eq(gc_dbdir_dir(pool, "data/gcmon.db"), "data");
}
END_TEST

/* ---- the check over a scripted probe ---------------------------------------- */

typedef struct script {
    int errs[8];
    int calls, n;
    const char *paths[8];
    int modes[8];
    apr_status_t fail;
} script_t;

static apr_status_t scripted(void *baton, int n, const char *const *paths, const int *modes,
                             int *errs)
{
    script_t *s = baton;
    int i;

    s->calls++;
    if (s->fail) {
        return s->fail;
    }
    s->n = n;
    for (i = 0; i < n && i < 8; i++) {
        s->paths[i] = apr_pstrdup(pool, paths[i]);
        s->modes[i] = modes[i];
        errs[i] = s->errs[i];
    }
    return APR_SUCCESS;
}

static const gc_dbdir_user_t www = { "www-data", "www-data", 33, 33 };

static const char *check(const char *file, script_t *s)
{
    const char *problem = "unset";

    ck_assert_int_eq(gc_dbdir_check(pool, file, &www, scripted, s, &problem), APR_SUCCESS);
    ck_assert_int_eq(s->calls, 1);
    return problem;
}

static void has(const char *text, const char *part)
{
    ck_assert_msg(text && strstr(text, part), "'%s' not in: %s", part, text ? text : "(null)");
}

START_TEST(check_asks_once_for_every_path)
{
    script_t s = { .errs = { 0, ENOENT, ENOENT, ENOENT, ENOENT } };

    ck_assert_ptr_null(check("/var/lib/gcmon/gcmon.db", &s));
    ck_assert_int_eq(s.n, 5);
    ck_assert_str_eq(s.paths[0], "/var/lib/gcmon");
    ck_assert_int_eq(s.modes[0], W_OK | X_OK);
    ck_assert_str_eq(s.paths[1], "/var/lib/gcmon/gcmon.db");
    ck_assert_str_eq(s.paths[2], "/var/lib/gcmon/gcmon.db-wal");
    ck_assert_str_eq(s.paths[3], "/var/lib/gcmon/gcmon.db-shm");
    ck_assert_str_eq(s.paths[4], "/var/lib/gcmon/gcmon.db-journal");
    ck_assert_int_eq(s.modes[1], R_OK | W_OK);
    ck_assert_int_eq(s.modes[4], R_OK | W_OK);
}
END_TEST

START_TEST(check_existing_files_writable)
{
    script_t s = { .errs = { 0, 0, 0, 0, ENOENT } };

    ck_assert_ptr_null(check("/var/lib/gcmon/gcmon.db", &s));
}
END_TEST

START_TEST(check_missing_directory)
{
    script_t s = { .errs = { ENOENT, ENOENT, ENOENT, ENOENT, ENOENT } };
    const char *p = check("/var/lib/gcmon/gcmon.db", &s);

    has(p, "the directory /var/lib/gcmon of gcmon's SQLite database /var/lib/gcmon/gcmon.db "
           "does not exist");
    has(p, "install -d -o www-data -g www-data -m 0750 /var/lib/gcmon");
    ck_assert_ptr_null(strstr(p, "relative"));
}
END_TEST

START_TEST(check_directory_not_writable)
{
    script_t s = { .errs = { EACCES, EACCES, EACCES, EACCES, EACCES } };
    const char *p = check("/srv/gc/gcmon.db", &s);

    has(p, "the directory /srv/gc of gcmon's SQLite database /srv/gc/gcmon.db is not writable "
           "by www-data, the user the server runs as");
    has(p, "chown www-data:www-data /srv/gc");
    has(p, strerror(EACCES));
}
END_TEST

START_TEST(check_read_only_file_system)
{
    script_t s = { .errs = { EROFS, ENOENT, ENOENT, ENOENT, ENOENT } };

    has(check("/srv/gc/gcmon.db", &s), strerror(EROFS));
}
END_TEST

START_TEST(check_database_not_writable)
{
    script_t s = { .errs = { 0, EACCES, ENOENT, ENOENT, ENOENT } };
    const char *p = check("/srv/gc/gcmon.db", &s);

    has(p, "/srv/gc/gcmon.db (gcmon's SQLite database) is not readable and writable by "
           "www-data");
    has(p, "chown www-data:www-data /srv/gc/gcmon.db");
}
END_TEST

START_TEST(check_wal_not_writable)
{
    script_t s = { .errs = { 0, 0, EACCES, 0, ENOENT } };
    const char *p = check("/srv/gc/gcmon.db", &s);

    has(p, "/srv/gc/gcmon.db-wal (a file SQLite keeps next to it) is not readable");
    ck_assert_ptr_null(strstr(p, "gcmon.db (gcmon's"));
}
END_TEST

START_TEST(check_relative_path_says_so)
{
    script_t s = { .errs = { ENOENT } };
    const char *p = check("gcmon.db", &s);

    has(p, "the directory . of gcmon's SQLite database gcmon.db does not exist");
    has(p, "relative DBDParams");
}
END_TEST

START_TEST(check_numeric_user)
{
    gc_dbdir_user_t u = { "#1234", NULL, 1234, 4321 };
    script_t s = { .errs = { EACCES } };
    const char *problem = NULL;

    ck_assert_int_eq(gc_dbdir_check(pool, "/srv/x.db", &u, scripted, &s, &problem), APR_SUCCESS);
    has(problem, "not writable by 1234,");
    has(problem, "chown 1234:4321 /srv");
}
END_TEST

START_TEST(check_probe_failure)
{
    script_t s = { .errs = { 0 } };
    const char *problem = "unset";

    s.fail = APR_ENOMEM;
    ck_assert_int_eq(gc_dbdir_check(pool, "/srv/x.db", &www, scripted, &s, &problem), APR_ENOMEM);
}
END_TEST

/* ---- the real probe ----------------------------------------------------------- */

/* A user that is not this process: nobody when root, else this process
 * itself (then the modes of the files decide). */
static gc_dbdir_user_t other_user(void)
{
    gc_dbdir_user_t u = { NULL, NULL, geteuid(), getegid() };
    struct passwd *pw;

    if (geteuid() == 0 && (pw = getpwnam("nobody"))) {
        u.user = "nobody";
        u.uid = pw->pw_uid;
        u.gid = pw->pw_gid;
    }
    return u;
}

START_TEST(probe_as_real_user)
{
    gc_dbdir_user_t u = other_user();
    char *dir = apr_pstrdup(pool, "/tmp/gcmon-dbdir-XXXXXX");
    const char *db, *wal, *problem = NULL;
    const char *paths[3];
    int modes[3] = { W_OK | X_OK, R_OK | W_OK, R_OK | W_OK }, errs[3] = { -1, -1, -1 };
    FILE *f;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    db = apr_pstrcat(pool, dir, "/gcmon.db", NULL);
    wal = apr_pstrcat(pool, db, "-wal", NULL);
    paths[0] = dir;
    paths[1] = db;
    paths[2] = wal;
    if (u.uid == 0) {
        /* root as itself: everything is writable (only the happy path). */
        ck_assert_int_eq(gc_dbdir_probe_as(&u, 3, paths, modes, errs), APR_SUCCESS);
        ck_assert_int_eq(errs[0], 0);
        rmdir(dir);
        return;
    }
    /* Not the user's: 0755, owned by root (or, not as root, read-only). */
    ck_assert_int_eq(chmod(dir, 0555), 0);
    ck_assert_int_eq(gc_dbdir_probe_as(&u, 3, paths, modes, errs), APR_SUCCESS);
    ck_assert_int_eq(errs[0], EACCES);
    ck_assert_int_eq(errs[1], ENOENT);
    ck_assert_int_eq(gc_dbdir_check(pool, db, &u, gc_dbdir_probe_as, &u, &problem), APR_SUCCESS);
    has(problem, "is not writable by");
    has(problem, dir);

    /* The user's own directory with a database it cannot write. */
    ck_assert_int_eq(chmod(dir, 0755), 0);
    ck_assert_ptr_nonnull(f = fopen(db, "w"));
    fclose(f);
    ck_assert_int_eq(chmod(db, 0444), 0);
    if (geteuid() == 0) {
        ck_assert_int_eq(chown(dir, u.uid, u.gid), 0);
    }
    ck_assert_int_eq(gc_dbdir_probe_as(&u, 3, paths, modes, errs), APR_SUCCESS);
    ck_assert_int_eq(errs[0], 0);
    ck_assert_int_eq(errs[1], EACCES);
    ck_assert_int_eq(errs[2], ENOENT);
    ck_assert_int_eq(gc_dbdir_check(pool, db, &u, gc_dbdir_probe_as, &u, &problem), APR_SUCCESS);
    has(problem, "(gcmon's SQLite database) is not readable and writable");

    /* Now theirs: all is well. */
    ck_assert_int_eq(chmod(db, 0644), 0);
    if (geteuid() == 0) {
        ck_assert_int_eq(chown(db, u.uid, u.gid), 0);
    }
    ck_assert_int_eq(gc_dbdir_check(pool, db, &u, gc_dbdir_probe_as, &u, &problem), APR_SUCCESS);
    ck_assert_ptr_null(problem);

    unlink(db);
    rmdir(dir);
}
END_TEST

START_TEST(probe_as_bounds)
{
    gc_dbdir_user_t u = other_user();
    const char *paths[9] = { "/" };
    int modes[9] = { 0 }, errs[9];

    ck_assert_int_eq(gc_dbdir_probe_as(&u, 9, paths, modes, errs), APR_EINVAL);
}
END_TEST

Suite *dbdir_suite(void)
{
    Suite *s = suite_create("dbdir");
    TCase *tc = tcase_create("dbdir");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, sqlite_file_paths);
    tcase_add_test(tc, sqlite_file_uris);
    tcase_add_test(tc, dir_of);
    tcase_add_test(tc, check_asks_once_for_every_path);
    tcase_add_test(tc, check_existing_files_writable);
    tcase_add_test(tc, check_missing_directory);
    tcase_add_test(tc, check_directory_not_writable);
    tcase_add_test(tc, check_read_only_file_system);
    tcase_add_test(tc, check_database_not_writable);
    tcase_add_test(tc, check_wal_not_writable);
    tcase_add_test(tc, check_relative_path_says_so);
    tcase_add_test(tc, check_numeric_user);
    tcase_add_test(tc, check_probe_failure);
    tcase_add_test(tc, probe_as_real_user);
    tcase_add_test(tc, probe_as_bounds);
    suite_add_tcase(s, tc);
    return s;
}
