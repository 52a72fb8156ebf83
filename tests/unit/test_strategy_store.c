/* gc_store_strategy: the routing strategies on each dialect of the store
 * suite (test_store.c's fixture: a SQLite file, a PostgreSQL 15) — every
 * write with its audit row (and job, outbox delivery) in one transaction,
 * the conditional changes fenced by status and revision, the listing. */
#include <string.h>

#include <apr_strings.h>

#include "gc_audit.h"
#include "gc_jobs.h"
#include "gc_outbox.h"
#include "gc_store.h"
#include "gc_store_strategy.h"
#include "unit.h"

static apr_pool_t *pool;
static gc_store_t *st;

#define T0 ((apr_time_t)1767607200000000) /* 2026-01-05T10:00:00Z */
#define BODY "{\"name\":\"Sales\",\"targets\":[]}"

/* The running dialect's migrated store (test_store.c's fixture). */
static void begin(void)
{
    st = store_test_migrated(&pool);
}

static gc_audit_rec_t *audit(const char *action, const char *target, int status)
{
    gc_audit_rec_t *a = apr_pcalloc(pool, sizeof(*a));

    a->at = T0;
    a->actor = "alice";
    a->actor_source = "user";
    a->action = action;
    a->target = target;
    a->status = status;
    return a;
}

static apr_int64_t add(const char *id, const char *name, const char *outbox)
{
    gc_strategy_rec_t r;
    const char *err = NULL;

    memset(&r, 0, sizeof(r));
    r.id = id;
    r.name = name;
    r.body = BODY;
    r.validation = "{\"ok\":true,\"targets\":[]}";
    r.actor = "alice";
    r.created_at = T0;
    ck_assert_msg(gc_store_strategy_add(st, pool, &r, audit(GC_AUDIT_STRATEGY_CREATE, id, 201),
                                        outbox, outbox ? "{\"strategy_id\":\"x\"}" : NULL, &err)
                      == APR_SUCCESS,
                  "add: %s", err);
    ck_assert_int_eq(r.revision, 1);
    ck_assert_str_eq(r.status, GC_STRATEGY_DRAFT);
    return r.seq;
}

static gc_strategy_rec_t get(const char *id)
{
    gc_strategy_rec_t r;
    const char *err = NULL;
    int found = 0;

    ck_assert_msg(gc_store_strategy_get(st, pool, id, &r, &found, &err) == APR_SUCCESS, "get: %s",
                  err);
    ck_assert_msg(found, "strategy %s not found", id);
    return r;
}

static int exists(const char *id)
{
    gc_strategy_rec_t r;
    const char *err = NULL;
    int found = 1;

    ck_assert(gc_store_strategy_get(st, pool, id, &r, &found, &err) == APR_SUCCESS);
    return found;
}

/* Audit rows of `target` (all actions). */
static long audit_count(const char *target)
{
    gc_query_t q;
    gc_page_t pg;
    const char *err = NULL;

    memset(&q, 0, sizeof(q));
    q.limit = 100;
    q.target = target;
    ck_assert_msg(gc_store_audit_list(st, pool, &q, &pg, &err) == APR_SUCCESS, "audit: %s", err);
    return pg.total;
}

static int outbox_count(void)
{
    apr_array_header_t *rows = NULL;
    const char *err = NULL;

    ck_assert(gc_store_outbox_due(st, pool, T0 + apr_time_from_sec(3600), 100, &rows, &err)
              == APR_SUCCESS);
    return rows->nelts;
}

static gc_job_t job_of(const char *id)
{
    gc_job_t j;

    memset(&j, 0, sizeof(j));
    j.id = id;
    j.kind = "strategy_activate";
    j.target = "strat-1";
    j.actor = "alice";
    j.payload = "{}";
    j.created_at = T0 + apr_time_from_sec(10);
    j.next_run_at = j.created_at;
    j.deadline_at = j.created_at + apr_time_from_sec(600);
    return j;
}

static gc_strategy_change_e activate(const char *id, const char *job_id, const char **status)
{
    gc_job_t j = job_of(job_id);
    gc_strategy_change_e oc = GC_STRATEGY_CHANGED;
    const char *err = NULL;

    ck_assert_msg(gc_store_strategy_activate(st, pool, id, &j,
                                             audit(GC_AUDIT_STRATEGY_ACTIVATE, id, 202), &oc,
                                             status, &err)
                      == APR_SUCCESS,
                  "activate: %s", err);
    return oc;
}

static int job_exists(const char *id)
{
    gc_job_t j;
    const char *err = NULL;
    int found = 0;

    ck_assert(gc_store_jobs_get(st, pool, id, &j, &found, &err) == APR_SUCCESS);
    return found;
}

static int settle(const char *id, const char *job_id, const char *status, const char *why)
{
    const char *err = NULL;
    int kept = -1;

    ck_assert_msg(gc_store_strategy_settle(st, pool, id, job_id, status, why,
                                           T0 + apr_time_from_sec(20), &kept, &err)
                      == APR_SUCCESS,
                  "settle: %s", err);
    return kept;
}

/* Stored with every field, its audit row and (when asked) its WFM
 * delivery; read back whole. */
START_TEST(strategy_store_add_get)
{
    gc_strategy_rec_t r;
    apr_int64_t seq1, seq2;
    const char *err = NULL;
    int found = 1;

    begin();
    seq1 = add("strat-1", "Sales", "wfm");
    seq2 = add("strat-2", "Support", NULL);
    ck_assert_int_gt(seq1, 0);
    ck_assert_int_gt(seq2, seq1);
    r = get("strat-1");
    ck_assert_int_eq(r.seq, seq1);
    ck_assert_str_eq(r.name, "Sales");
    ck_assert_str_eq(r.status, "draft");
    ck_assert_str_eq(r.body, BODY);
    ck_assert_str_eq(r.validation, "{\"ok\":true,\"targets\":[]}");
    ck_assert_ptr_null(r.error_message);
    ck_assert_ptr_null(r.job_id);
    ck_assert_ptr_null(r.live);
    ck_assert_str_eq(r.actor, "alice");
    ck_assert(r.created_at == T0 && r.updated_at == T0);
    ck_assert(r.activated_at == 0 && r.rebalanced_at == 0 && r.observed_at == 0);
    ck_assert_int_eq(r.revision, 1);
    ck_assert_int_eq(audit_count("strat-1"), 1);
    ck_assert_int_eq(audit_count("strat-2"), 1);
    ck_assert_int_eq(outbox_count(), 1); /* strat-2 asked for none */

    /* A duplicate id fails whole: no audit row either. */
    {
        gc_strategy_rec_t d;
        memset(&d, 0, sizeof(d));
        d.id = "strat-1";
        d.name = "Again";
        d.body = BODY;
        d.actor = "bob";
        d.created_at = T0;
        ck_assert(gc_store_strategy_add(st, pool, &d, audit(GC_AUDIT_STRATEGY_CREATE, "dup", 201),
                                        "wfm", "{}", &err)
                  != APR_SUCCESS);
        ck_assert_int_eq(audit_count("dup"), 0);
        ck_assert_int_eq(outbox_count(), 1);
    }
    ck_assert(gc_store_strategy_get(st, pool, "strat-404", &r, &found, &err) == APR_SUCCESS);
    ck_assert_int_eq(found, 0);
}
END_TEST

/* Newest first, paged by offset or cursor, filtered by status. */
START_TEST(strategy_store_listing)
{
    gc_query_t q;
    gc_page_t pg;
    const char *err = NULL;
    gc_strategy_rec_t *rows;
    int i;

    begin();
    for (i = 1; i <= 5; i++) {
        add(apr_psprintf(pool, "strat-%d", i), apr_psprintf(pool, "S%d", i), NULL);
    }
    ck_assert_int_eq(activate("strat-2", "job-2", NULL), GC_STRATEGY_CHANGED);
    ck_assert_int_eq(activate("strat-4", "job-4", NULL), GC_STRATEGY_CHANGED);

    memset(&q, 0, sizeof(q));
    q.limit = 2;
    ck_assert_msg(gc_store_strategy_list(st, pool, &q, &pg, &err) == APR_SUCCESS, "%s", err);
    ck_assert_int_eq(pg.total, 5);
    ck_assert_int_eq(pg.rows->nelts, 2);
    ck_assert(pg.has_more);
    rows = (gc_strategy_rec_t *)pg.rows->elts;
    ck_assert_str_eq(rows[0].id, "strat-5");
    ck_assert_str_eq(rows[1].id, "strat-4");
    ck_assert_str_eq(rows[1].status, "activating");

    q.has_cursor = 1;
    q.cursor = pg.next;
    ck_assert(gc_store_strategy_list(st, pool, &q, &pg, &err) == APR_SUCCESS);
    rows = (gc_strategy_rec_t *)pg.rows->elts;
    ck_assert_int_eq(pg.rows->nelts, 2);
    ck_assert_str_eq(rows[0].id, "strat-3");
    ck_assert_str_eq(rows[1].id, "strat-2");

    memset(&q, 0, sizeof(q));
    q.limit = 10;
    q.offset = 4;
    ck_assert(gc_store_strategy_list(st, pool, &q, &pg, &err) == APR_SUCCESS);
    ck_assert_int_eq(pg.rows->nelts, 1);
    ck_assert_str_eq(((gc_strategy_rec_t *)pg.rows->elts)[0].id, "strat-1");
    ck_assert(!pg.has_more);

    memset(&q, 0, sizeof(q));
    q.limit = 10;
    q.state = "activating";
    ck_assert(gc_store_strategy_list(st, pool, &q, &pg, &err) == APR_SUCCESS);
    ck_assert_int_eq(pg.total, 2);
    rows = (gc_strategy_rec_t *)pg.rows->elts;
    ck_assert_str_eq(rows[0].id, "strat-4");
    ck_assert_str_eq(rows[1].id, "strat-2");
    q.state = "active";
    ck_assert(gc_store_strategy_list(st, pool, &q, &pg, &err) == APR_SUCCESS);
    ck_assert_int_eq(pg.total, 0);
    ck_assert_int_eq(pg.rows->nelts, 0);
}
END_TEST

/* Deleted only from draft or failed, with its audit row; otherwise nothing
 * written and the status said. */
START_TEST(strategy_store_delete)
{
    gc_strategy_change_e oc;
    const char *status = NULL, *err = NULL;

    begin();
    add("strat-1", "A", NULL);
    add("strat-2", "B", NULL);
    add("strat-3", "C", NULL);

    ck_assert(gc_store_strategy_delete(st, pool, "strat-1",
                                       audit(GC_AUDIT_STRATEGY_DELETE, "strat-1", 204), &oc,
                                       &status, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(oc, GC_STRATEGY_CHANGED);
    ck_assert_str_eq(status, "draft");
    ck_assert(!exists("strat-1"));
    ck_assert_int_eq(audit_count("strat-1"), 2);

    ck_assert(gc_store_strategy_delete(st, pool, "strat-1",
                                       audit(GC_AUDIT_STRATEGY_DELETE, "strat-1", 404), &oc,
                                       &status, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(oc, GC_STRATEGY_MISSING);
    ck_assert_ptr_null(status);
    ck_assert_int_eq(audit_count("strat-1"), 2);

    /* activating: refused */
    ck_assert_int_eq(activate("strat-2", "job-2", NULL), GC_STRATEGY_CHANGED);
    ck_assert(gc_store_strategy_delete(st, pool, "strat-2",
                                       audit(GC_AUDIT_STRATEGY_DELETE, "strat-2", 204), &oc,
                                       &status, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(oc, GC_STRATEGY_CONFLICT);
    ck_assert_str_eq(status, "activating");
    ck_assert(exists("strat-2"));
    ck_assert_int_eq(audit_count("strat-2"), 2); /* create + activate */

    /* active: refused */
    ck_assert_int_eq(settle("strat-2", "job-2", "active", NULL), 1);
    ck_assert(gc_store_strategy_delete(st, pool, "strat-2", NULL, &oc, &status, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(oc, GC_STRATEGY_CONFLICT);
    ck_assert_str_eq(status, "active");
    ck_assert(exists("strat-2"));

    /* failed: deleted */
    ck_assert_int_eq(activate("strat-3", "job-3", NULL), GC_STRATEGY_CHANGED);
    ck_assert_int_eq(settle("strat-3", "job-3", "failed", "queue PUT refused"), 1);
    ck_assert(gc_store_strategy_delete(st, pool, "strat-3", NULL, &oc, &status, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(oc, GC_STRATEGY_CHANGED);
    ck_assert_str_eq(status, "failed");
    ck_assert(!exists("strat-3"));
}
END_TEST

/* Activation: draft or failed → activating with its job queued and its
 * audit row, in one; anything else refused with nothing written. The end
 * by its job only. */
START_TEST(strategy_store_activate_settle)
{
    gc_strategy_rec_t r;
    const char *status = NULL;

    begin();
    add("strat-1", "A", NULL);
    ck_assert_int_eq(activate("strat-404", "job-0", &status), GC_STRATEGY_MISSING);
    ck_assert_ptr_null(status);
    ck_assert(!job_exists("job-0"));

    ck_assert_int_eq(activate("strat-1", "job-1", &status), GC_STRATEGY_CHANGED);
    ck_assert_str_eq(status, "draft");
    ck_assert(job_exists("job-1"));
    r = get("strat-1");
    ck_assert_str_eq(r.status, "activating");
    ck_assert_str_eq(r.job_id, "job-1");
    ck_assert_int_eq(r.revision, 2);
    ck_assert(r.updated_at == T0 + apr_time_from_sec(10));
    ck_assert_str_eq(r.validation, "{\"ok\":true,\"targets\":[]}"); /* kept */
    ck_assert_int_eq(audit_count("strat-1"), 2);

    /* A second activation while activating: refused, no job, no audit row. */
    ck_assert_int_eq(activate("strat-1", "job-1b", &status), GC_STRATEGY_CONFLICT);
    ck_assert_str_eq(status, "activating");
    ck_assert(!job_exists("job-1b"));
    ck_assert_int_eq(audit_count("strat-1"), 2);
    ck_assert_int_eq(get("strat-1").revision, 2);

    /* Another job's end changes nothing. */
    ck_assert_int_eq(settle("strat-1", "job-other", "active", NULL), 0);
    ck_assert_str_eq(get("strat-1").status, "activating");

    /* Failed, with why; then activated again, clearing it. */
    ck_assert_int_eq(settle("strat-1", "job-1", "failed", "PUT of queue q1 refused"), 1);
    r = get("strat-1");
    ck_assert_str_eq(r.status, "failed");
    ck_assert_str_eq(r.error_message, "PUT of queue q1 refused");
    ck_assert(r.activated_at == 0);
    ck_assert_int_eq(r.revision, 3);
    ck_assert_int_eq(settle("strat-1", "job-1", "active", NULL), 0); /* not activating */

    ck_assert_int_eq(activate("strat-1", "job-2", &status), GC_STRATEGY_CHANGED);
    ck_assert_str_eq(status, "failed");
    r = get("strat-1");
    ck_assert_ptr_null(r.error_message);
    ck_assert_str_eq(r.job_id, "job-2");
    ck_assert_int_eq(settle("strat-1", "job-1", "active", NULL), 0); /* the old job */
    ck_assert_int_eq(settle("strat-1", "job-2", "active", NULL), 1);
    r = get("strat-1");
    ck_assert_str_eq(r.status, "active");
    ck_assert(r.activated_at == T0 + apr_time_from_sec(20));
    ck_assert_int_eq(r.revision, 5);

    /* Active stays active: no re-activation. */
    ck_assert_int_eq(activate("strat-1", "job-3", &status), GC_STRATEGY_CONFLICT);
    ck_assert_str_eq(status, "active");
    ck_assert(!job_exists("job-3"));

    /* A status other than active or failed is refused. */
    {
        const char *err = NULL;
        int kept = 1;
        ck_assert(
            gc_store_strategy_settle(st, pool, "strat-1", "job-2", "draft", NULL, T0, &kept, &err)
            == APR_EINVAL);
        ck_assert_int_eq(kept, 0);
    }
}
END_TEST

/* New weights fenced by the revision the caller read, refused while
 * activating; written with the audit row and the WFM delivery. */
START_TEST(strategy_store_reweigh)
{
    gc_strategy_change_e oc;
    gc_strategy_rec_t r;
    const char *err = NULL;
    apr_time_t now = T0 + apr_time_from_sec(30);

    begin();
    add("strat-1", "A", NULL);
    ck_assert_int_eq(outbox_count(), 0);

    /* stale revision */
    ck_assert(gc_store_strategy_reweigh(st, pool, "strat-1", 7, "{\"w\":2}", now,
                                        audit(GC_AUDIT_STRATEGY_REBALANCE, "strat-1", 200), "wfm",
                                        "{}", &oc, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(oc, GC_STRATEGY_CONFLICT);
    ck_assert_str_eq(get("strat-1").body, BODY);
    ck_assert_int_eq(audit_count("strat-1"), 1);
    ck_assert_int_eq(outbox_count(), 0);

    /* the revision read: written */
    ck_assert(gc_store_strategy_reweigh(st, pool, "strat-1", 1, "{\"w\":2}", now,
                                        audit(GC_AUDIT_STRATEGY_REBALANCE, "strat-1", 200), "wfm",
                                        "{}", &oc, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(oc, GC_STRATEGY_CHANGED);
    r = get("strat-1");
    ck_assert_str_eq(r.body, "{\"w\":2}");
    ck_assert(r.rebalanced_at == now && r.updated_at == now);
    ck_assert_int_eq(r.revision, 2);
    ck_assert_int_eq(audit_count("strat-1"), 2);
    ck_assert_int_eq(outbox_count(), 1);

    /* the same revision again: someone (we) changed it meanwhile */
    ck_assert(gc_store_strategy_reweigh(st, pool, "strat-1", 1, "{\"w\":3}", now, NULL, NULL, NULL,
                                        &oc, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(oc, GC_STRATEGY_CONFLICT);

    /* no fence (0): written, without an audit row but with its delivery */
    ck_assert(gc_store_strategy_reweigh(st, pool, "strat-1", 0, "{\"w\":4}", now, NULL, "wfm", "{}",
                                        &oc, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(oc, GC_STRATEGY_CHANGED);
    ck_assert_int_eq(get("strat-1").revision, 3);
    ck_assert_int_eq(audit_count("strat-1"), 2);
    ck_assert_int_eq(outbox_count(), 2);

    /* activating: refused */
    ck_assert_int_eq(activate("strat-1", "job-1", NULL), GC_STRATEGY_CHANGED);
    ck_assert(gc_store_strategy_reweigh(st, pool, "strat-1", 0, "{\"w\":5}", now, NULL, NULL, NULL,
                                        &oc, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(oc, GC_STRATEGY_CONFLICT);
    ck_assert_str_eq(get("strat-1").body, "{\"w\":4}");

    /* active: rebalanced in place */
    ck_assert_int_eq(settle("strat-1", "job-1", "active", NULL), 1);
    r = get("strat-1");
    ck_assert(gc_store_strategy_reweigh(st, pool, "strat-1", r.revision, "{\"w\":6}", now, NULL,
                                        NULL, NULL, &oc, &err)
              == APR_SUCCESS);
    ck_assert_int_eq(oc, GC_STRATEGY_CHANGED);
    ck_assert_int_eq(get("strat-1").revision, r.revision + 1);

    ck_assert(
        gc_store_strategy_reweigh(st, pool, "strat-404", 0, "{}", now, NULL, NULL, NULL, &oc, &err)
        == APR_SUCCESS);
    ck_assert_int_eq(oc, GC_STRATEGY_MISSING);
}
END_TEST

/* The validation bumps the revision; the holder's observations do not. The
 * active listing has the active strategies only, by row id. */
START_TEST(strategy_store_validation_live_active)
{
    gc_strategy_rec_t r;
    apr_array_header_t *rows = NULL;
    const char *err = NULL;
    apr_time_t seen = T0 + apr_time_from_sec(40);

    begin();
    add("strat-1", "A", NULL);
    add("strat-2", "B", NULL);
    add("strat-3", "C", NULL);
    ck_assert(gc_store_strategy_set_validation(st, pool, "strat-1", "{\"ok\":false}", seen, &err)
              == APR_SUCCESS);
    r = get("strat-1");
    ck_assert_str_eq(r.validation, "{\"ok\":false}");
    ck_assert_int_eq(r.revision, 2);
    ck_assert(r.updated_at == seen);

    ck_assert(gc_store_strategy_set_live(st, pool, "strat-1", "{\"targets\":[]}", seen, &err)
              == APR_SUCCESS);
    r = get("strat-1");
    ck_assert_str_eq(r.live, "{\"targets\":[]}");
    ck_assert(r.observed_at == seen);
    ck_assert_int_eq(r.revision, 2);

    ck_assert(gc_store_strategy_active(st, pool, &rows, &err) == APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 0);
    ck_assert_int_eq(activate("strat-3", "job-3", NULL), GC_STRATEGY_CHANGED);
    ck_assert_int_eq(activate("strat-1", "job-1", NULL), GC_STRATEGY_CHANGED);
    ck_assert_int_eq(activate("strat-2", "job-2", NULL), GC_STRATEGY_CHANGED);
    ck_assert_int_eq(settle("strat-3", "job-3", "active", NULL), 1);
    ck_assert_int_eq(settle("strat-1", "job-1", "active", NULL), 1);
    ck_assert_int_eq(settle("strat-2", "job-2", "failed", "x"), 1);
    ck_assert(gc_store_strategy_active(st, pool, &rows, &err) == APR_SUCCESS);
    ck_assert_int_eq(rows->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(rows, 0, gc_strategy_rec_t).id, "strat-1");
    ck_assert_str_eq(APR_ARRAY_IDX(rows, 0, gc_strategy_rec_t).live, "{\"targets\":[]}");
    ck_assert_str_eq(APR_ARRAY_IDX(rows, 1, gc_strategy_rec_t).id, "strat-3");
}
END_TEST

void strategy_store_tcases(TCase *tc)
{
    tcase_add_test(tc, strategy_store_add_get);
    tcase_add_test(tc, strategy_store_listing);
    tcase_add_test(tc, strategy_store_delete);
    tcase_add_test(tc, strategy_store_activate_settle);
    tcase_add_test(tc, strategy_store_reweigh);
    tcase_add_test(tc, strategy_store_validation_live_active);
}
