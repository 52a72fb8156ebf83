/* Agent status changes and the audit trail: presence definitions (parse,
 * lookup by id / system presence / label), gcmon's presence ETag and
 * If-Match, GcmonTransition rules, the audit store (with its outbox row in
 * the same transaction) and the audit listing's query fields. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <jansson.h>

#include "gc_audit.h"
#include "gc_etag.h"
#include "gc_outbox.h"
#include "gc_presence.h"
#include "gc_query.h"
#include "gc_store.h"
#include "gc_webhook.h"
#include "unit.h"

static apr_pool_t *pool;
static char db_dir[256];
static char db_path[300];

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");

    apr_pool_create(&pool, NULL);
    apr_dbd_init(pool);
    snprintf(db_dir, sizeof(db_dir), "%s/gcmon-admin-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(db_dir));
    snprintf(db_path, sizeof(db_path), "%s/gcmon.db", db_dir);
}

static void teardown(void)
{
    static const char *const files[] = { "gcmon.db", "gcmon.db-wal", "gcmon.db-shm",
                                         "gcmon.db-journal" };
    char path[400];
    size_t i;

    apr_pool_destroy(pool);
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", db_dir, files[i]);
        unlink(path);
    }
    rmdir(db_dir);
}

/* ---------------------------------------------------------------- definitions */

static const char *LISTING =
    "{\"entities\":["
    "{\"id\":\"p-avail\",\"type\":\"System\",\"systemPresence\":\"Available\","
    " \"languageLabels\":{\"en_US\":\"Available\"},\"deactivated\":false},"
    "{\"id\":\"p-lunch\",\"type\":\"User\",\"systemPresence\":\"Meal\","
    " \"languageLabels\":{\"en_US\":\"Lunch Walk\"},\"deactivated\":false},"
    "{\"id\":\"p-meal\",\"type\":\"System\",\"systemPresence\":\"Meal\","
    " \"languageLabels\":{\"en_US\":\"Meal\"},\"deactivated\":false},"
    "{\"id\":\"p-queue\",\"type\":\"System\",\"systemPresence\":\"On Queue\","
    " \"languageLabels\":{\"en_US\":\"On Queue\"}},"
    "{\"id\":\"p-old\",\"type\":\"User\",\"systemPresence\":\"Break\","
    " \"languageLabels\":{\"en_US\":\"Smoke\"},\"deactivated\":true},"
    "{\"id\":\"p-weird\",\"type\":\"User\",\"systemPresence\":\"Nonsense\"},"
    "{\"type\":\"System\",\"systemPresence\":\"Away\"}"
    "]}";

static apr_array_header_t *defs(void)
{
    json_t *j = json_loads(LISTING, 0, NULL);
    apr_array_header_t *d;

    ck_assert_ptr_nonnull(j);
    d = gc_presence_defs_parse(pool, j);
    json_decref(j);
    return d;
}

START_TEST(defs_parse_keeps_active_known)
{
    apr_array_header_t *d = defs();
    const gc_presence_def_t *q;

    /* deactivated, unknown system presence and id-less entries are dropped */
    ck_assert_int_eq(d->nelts, 4);
    q = &APR_ARRAY_IDX(d, 3, gc_presence_def_t);
    ck_assert_str_eq(q->id, "p-queue");
    ck_assert_str_eq(q->system, "OnQueue");
    ck_assert_int_eq(q->user_defined, 0);
    ck_assert_int_eq(APR_ARRAY_IDX(d, 1, gc_presence_def_t).user_defined, 1);
}
END_TEST

START_TEST(find_by_id_system_label)
{
    apr_array_header_t *d = defs();

    ck_assert_str_eq(gc_presence_find(d, "p-lunch")->id, "p-lunch");
    /* the System definition wins over an org-defined one of the same presence */
    ck_assert_str_eq(gc_presence_find(d, "meal")->id, "p-meal");
    ck_assert_str_eq(gc_presence_find(d, "MEAL")->id, "p-meal");
    ck_assert_str_eq(gc_presence_find(d, "lunch walk")->id, "p-lunch");
    ck_assert_str_eq(gc_presence_find(d, "ON_QUEUE")->id, "p-queue");
    ck_assert_str_eq(gc_presence_find(d, "on queue")->id, "p-queue");
    ck_assert_ptr_null(gc_presence_find(d, "Smoke")); /* deactivated */
    ck_assert_ptr_null(gc_presence_find(d, "Break")); /* no active definition */
    ck_assert_ptr_null(gc_presence_find(d, ""));
    ck_assert_ptr_null(gc_presence_find(d, NULL));
}
END_TEST

/* ---------------------------------------------------------------- ETag, If-Match */

START_TEST(user_presence_etag)
{
    json_t *a = json_loads("{\"presenceDefinition\":{\"id\":\"p-avail\",\"systemPresence\":"
                           "\"Available\"},\"message\":\"hi\",\"modifiedDate\":"
                           "\"2026-11-21T10:00:00.123Z\"}",
                           0, NULL);
    json_t *b = json_loads("{\"presenceDefinition\":{\"id\":\"p-avail\"},\"modifiedDate\":"
                           "\"2026-11-21T11:00:00.123+01:00\"}",
                           0, NULL);
    json_t *c = json_loads("{\"presenceDefinition\":{\"id\":\"p-meal\"},\"modifiedDate\":"
                           "\"2026-11-21T10:00:00.123Z\"}",
                           0, NULL);
    json_t *bad = json_loads("{\"presenceDefinition\":{\"id\":\"p\"}}", 0, NULL);
    gc_user_presence_t pa, pb, pc, px;

    ck_assert_int_eq(gc_user_presence_parse(pool, a, &pa), 0);
    ck_assert_int_eq(gc_user_presence_parse(pool, b, &pb), 0);
    ck_assert_int_eq(gc_user_presence_parse(pool, c, &pc), 0);
    ck_assert_int_eq(gc_user_presence_parse(pool, bad, &px), -1);
    ck_assert_str_eq(pa.system, "Available");
    ck_assert_str_eq(pa.message, "hi");
    ck_assert_int_eq(strlen(pa.etag), 34);
    ck_assert_int_eq(pa.etag[0], '"');
    ck_assert_int_eq(pa.etag[33], '"');
    /* the same instant in another offset is the same ETag; another presence is not */
    ck_assert_str_eq(pa.etag, pb.etag);
    ck_assert_str_ne(pa.etag, pc.etag);
    ck_assert_str_ne(pa.etag, gc_presence_etag(pool, "p-avail", pa.modified + 1000));
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(bad);
}
END_TEST

START_TEST(if_match_rules)
{
    const char *e = "\"0123456789abcdef0123456789abcdef\"";

    ck_assert(gc_etag_match(e, e, GC_ETAG_STRONG));
    ck_assert(gc_etag_match("*", e, GC_ETAG_STRONG));
    ck_assert(gc_etag_match(" * ", e, GC_ETAG_STRONG));
    ck_assert(gc_etag_match("\"x\", \"0123456789abcdef0123456789abcdef\"", e, GC_ETAG_STRONG));
    ck_assert(!gc_etag_match("W/\"0123456789abcdef0123456789abcdef\"", e, GC_ETAG_STRONG));
    ck_assert(!gc_etag_match("\"0123456789abcdef0123456789abcde\"", e, GC_ETAG_STRONG));
    ck_assert(!gc_etag_match("0123456789abcdef0123456789abcdef", e, GC_ETAG_STRONG));
    ck_assert(!gc_etag_match("\"unterminated", e, GC_ETAG_STRONG));
    ck_assert(!gc_etag_match("*, \"x\"", e, GC_ETAG_STRONG));
    ck_assert(!gc_etag_match("", e, GC_ETAG_STRONG));
    ck_assert(!gc_etag_match(NULL, e, GC_ETAG_STRONG));
    /* If-None-Match compares weakly; the same parser */
    ck_assert(gc_etag_match("W/\"0123456789abcdef0123456789abcdef\"", e, GC_ETAG_WEAK));
    ck_assert(gc_etag_match("\"a\" , W/\"0123456789abcdef0123456789abcdef\"", e, GC_ETAG_WEAK));
    ck_assert(gc_etag_match("*", e, GC_ETAG_WEAK));
    ck_assert(!gc_etag_match("W/\"0123456789abcdef0123456789abcde\"", e, GC_ETAG_WEAK));
    ck_assert(!gc_etag_match("\"x\" junk", e, GC_ETAG_WEAK));
}
END_TEST

/* ---------------------------------------------------------------- transitions */

static const char *parse_rule(apr_array_header_t *rules, const char *line)
{
    char *argv[8], *st, *tok, *copy = apr_pstrdup(pool, line);
    int argc = 0;

    for (tok = apr_strtok(copy, " ", &st); tok && argc < 8; tok = apr_strtok(NULL, " ", &st)) {
        argv[argc++] = tok;
    }
    return gc_transition_parse(pool, argc, argv, apr_array_push(rules));
}

START_TEST(transition_rules)
{
    apr_array_header_t *rules = apr_array_make(pool, 4, sizeof(gc_transition_t));
    apr_array_header_t *bad = apr_array_make(pool, 4, sizeof(gc_transition_t));
    const char *e;

    ck_assert(gc_transition_allowed(rules, "Available", "Offline")); /* no rules */
    ck_assert_ptr_null(parse_rule(rules, "Available Break Meal"));
    ck_assert_ptr_null(parse_rule(rules, "* Available"));
    ck_assert(gc_transition_allowed(rules, "Available", "Break"));
    ck_assert(gc_transition_allowed(rules, "Available", "Meal"));
    ck_assert(gc_transition_allowed(rules, "Training", "Available")); /* * from */
    ck_assert(gc_transition_allowed(rules, NULL, "Available"));
    ck_assert(!gc_transition_allowed(rules, "Available", "Offline"));
    ck_assert(!gc_transition_allowed(rules, "Break", "Meal"));
    ck_assert(!gc_transition_allowed(rules, NULL, "Meal"));
    ck_assert(gc_transition_allowed(rules, "Offline", "Offline")); /* same state */
    ck_assert_ptr_null(parse_rule(rules, "Offline *"));
    ck_assert(gc_transition_allowed(rules, "Offline", "Meeting"));

    e = parse_rule(bad, "IDLE Break");
    ck_assert_ptr_nonnull(strstr(e, "routing status"));
    e = parse_rule(bad, "Available break");
    ck_assert_ptr_nonnull(strstr(e, "unknown state 'break'"));
    e = parse_rule(bad, "Available");
    ck_assert_ptr_nonnull(strstr(e, "at least one to state"));
}
END_TEST

/* ---------------------------------------------------------------- audit store */

static gc_store_t *open_store(void)
{
    gc_store_t *s = NULL;
    const char *err = NULL;

    ck_assert_msg(gc_store_open(pool, "sqlite3", db_path, &s, &err) == APR_SUCCESS, "open: %s",
                  err);
    ck_assert_msg(gc_store_migrate(s, &err) == APR_SUCCESS, "migrate: %s", err);
    return s;
}

static apr_int64_t add(gc_store_t *s, const char *actor, const char *action, const char *target,
                       int status, const char *hook)
{
    gc_audit_rec_t a;
    const char *err = NULL;

    memset(&a, 0, sizeof(a));
    a.at = apr_time_now();
    a.actor = actor;
    a.action = action;
    a.target = target;
    a.request = "{\"status\":\"Break\"}";
    a.result = "{\"etag\":\"x\"}";
    a.status = status;
    a.latency_ms = 12;
    ck_assert_msg(gc_store_audit_add(s, pool, &a, hook ? GC_TARGET_STATUS : NULL, hook, &err)
                      == APR_SUCCESS,
                  "audit add: %s", err);
    ck_assert_int_gt(a.id, 0);
    return a.id;
}

/* One page of the audit listing, as its rows, total and has_more. */
static apr_status_t audit_list(gc_store_t *s, const gc_query_t *f, apr_array_header_t **rows,
                               long *total, int *more, const char **err)
{
    gc_page_t pg;
    apr_status_t rv = gc_store_audit_list(s, pool, f, &pg, err);

    *rows = pg.rows;
    *total = pg.total;
    *more = pg.has_more;
    return rv;
}

START_TEST(audit_add_list_page)
{
    gc_store_t *s = open_store();
    gc_query_t f;
    apr_array_header_t *rows, *due;
    const gc_audit_rec_t *r;
    const char *err = NULL;
    long total;
    int more, i;
    apr_int64_t first = add(s, "alice", GC_AUDIT_STATUS_CHANGE, "u1", 200, "{\"a\":1}");

    for (i = 0; i < 4; i++) {
        add(s, i % 2 ? "bob" : "alice", GC_AUDIT_STATUS_CHANGE, "u2", 412, NULL);
    }
    add(s, "bob", GC_AUDIT_UPSTREAM_CHECK, NULL, 200, NULL);

    memset(&f, 0, sizeof(f));
    f.limit = 2;
    ck_assert(audit_list(s, &f, &rows, &total, &more, &err) == APR_SUCCESS);
    ck_assert_int_eq(total, 6);
    ck_assert_int_eq(rows->nelts, 2);
    ck_assert_int_eq(more, 1);
    r = &APR_ARRAY_IDX(rows, 0, gc_audit_rec_t);
    ck_assert_str_eq(r->action, GC_AUDIT_UPSTREAM_CHECK); /* newest first */
    ck_assert_ptr_null(r->target);
    ck_assert_str_eq(r->request, "{\"status\":\"Break\"}");
    ck_assert_int_eq(r->latency_ms, 12);

    /* keyset below the last row of the page */
    f.has_cursor = 1;
    f.cursor.id = APR_ARRAY_IDX(rows, 1, gc_audit_rec_t).id;
    f.limit = 10;
    ck_assert(audit_list(s, &f, &rows, &total, &more, &err) == APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 4);
    ck_assert_int_eq(more, 0);
    ck_assert_int_eq(APR_ARRAY_IDX(rows, 3, gc_audit_rec_t).id, first);

    memset(&f, 0, sizeof(f));
    f.limit = 10;
    f.actor = "alice";
    f.action = GC_AUDIT_STATUS_CHANGE;
    ck_assert(audit_list(s, &f, &rows, &total, &more, &err) == APR_SUCCESS);
    ck_assert_int_eq(total, 3);
    f.target = "u1";
    ck_assert(audit_list(s, &f, &rows, &total, &more, &err) == APR_SUCCESS);
    ck_assert_int_eq(total, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(rows, 0, gc_audit_rec_t).status, 200);
    f.target = NULL;
    f.offset = 2;
    ck_assert(audit_list(s, &f, &rows, &total, &more, &err) == APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(rows, 0, gc_audit_rec_t).id, first);

    /* the one row that asked for a webhook queued exactly one delivery */
    ck_assert(gc_store_outbox_due(s, pool, apr_time_now() + 1000, 10, &due, &err) == APR_SUCCESS);
    ck_assert_int_eq(due->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(due, 0, gc_outbox_row_t).target, GC_TARGET_STATUS);
    ck_assert_str_eq(APR_ARRAY_IDX(due, 0, gc_outbox_row_t).body, "{\"a\":1}");
}
END_TEST

START_TEST(audit_query_fields)
{
    gc_query_t q;
    apr_array_header_t *errs;

    ck_assert_int_eq(gc_query_parse(pool,
                                    "actor=jane%40example.com&action=agent_status_change"
                                    "&target=u-1&limit=5",
                                    GC_Q_AUDIT, GC_CURSOR_AUDIT, &q, &errs),
                     0);
    ck_assert_str_eq(q.actor, "jane@example.com");
    ck_assert_str_eq(q.action, "agent_status_change");
    ck_assert_str_eq(q.target, "u-1");
    ck_assert_int_eq(q.limit, 5);
    ck_assert_int_eq(gc_query_parse(pool, "action=Drop%20table&target=a/b&actor=", GC_Q_AUDIT,
                                    GC_CURSOR_AUDIT, &q, &errs),
                     3);
    /* a cursor of another listing is refused */
    ck_assert_int_eq(
        gc_query_parse(
            pool,
            apr_pstrcat(pool, "cursor=", gc_cursor_encode(pool, GC_CURSOR_HISTORY, 1, 2), NULL),
            GC_Q_AUDIT, GC_CURSOR_AUDIT, &q, &errs),
        1);
    /* the history listing ignores the audit fields */
    ck_assert_int_eq(
        gc_query_parse(pool, "actor=x&action=BAD", GC_Q_HISTORY, GC_CURSOR_HISTORY, &q, &errs), 0);
    ck_assert_ptr_null(q.actor);
}
END_TEST

/* Threads of ONE process writing through their own connections: apr_dbd_sqlite3
 * serialises every call of a process under one mutex, so a thread must never
 * sleep inside SQLite waiting for another connection's lock (busy_timeout) —
 * the lock's holder, a sibling thread, could not commit. Every write must get
 * through. */
#define WRITERS 8
#define WRITES 40

static void *writer_thread(void *arg)
{
    apr_pool_t *p;
    gc_store_t *s = NULL;
    const char *err = NULL;
    long failures = 0;
    int i;

    apr_pool_create(&p, NULL);
    if (gc_store_open(p, "sqlite3", db_path, &s, &err) != APR_SUCCESS) {
        failures = WRITES;
    }
    for (i = 0; s && i < WRITES; i++) {
        gc_audit_rec_t a;
        memset(&a, 0, sizeof(a));
        a.at = apr_time_now();
        a.actor = "t";
        a.action = GC_AUDIT_STATUS_CHANGE;
        a.target = (const char *)arg;
        a.status = 200;
        if (gc_store_audit_add(s, p, &a, GC_TARGET_STATUS, "{}", &err) != APR_SUCCESS) {
            failures++;
        }
    }
    apr_pool_destroy(p);
    return (void *)failures;
}

START_TEST(audit_concurrent_threads)
{
    gc_store_t *s = open_store();
    pthread_t th[WRITERS];
    gc_query_t f;
    apr_array_header_t *rows;
    const char *err = NULL;
    long total = 0, failures = 0;
    int more, i;

    for (i = 0; i < WRITERS; i++) {
        ck_assert_int_eq(pthread_create(&th[i], NULL, writer_thread, apr_psprintf(pool, "u%d", i)),
                         0);
    }
    for (i = 0; i < WRITERS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        failures += (long)ret;
    }
    ck_assert_int_eq(failures, 0);
    memset(&f, 0, sizeof(f));
    f.limit = 1;
    ck_assert(audit_list(s, &f, &rows, &total, &more, &err) == APR_SUCCESS);
    ck_assert_int_eq(total, WRITERS * WRITES);
}
END_TEST

Suite *admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("presence");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, defs_parse_keeps_active_known);
    tcase_add_test(tc, find_by_id_system_label);
    tcase_add_test(tc, user_presence_etag);
    tcase_add_test(tc, if_match_rules);
    tcase_add_test(tc, transition_rules);
    suite_add_tcase(s, tc);
    tc = tcase_create("audit");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, audit_add_list_page);
    tcase_add_test(tc, audit_query_fields);
    tcase_add_test(tc, audit_concurrent_threads);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}
