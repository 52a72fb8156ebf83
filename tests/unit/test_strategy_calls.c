/* gc_strategy_calls: the routing strategies' Genesys Cloud calls against the
 * scripted loopback server — the requests they send, the answers they read
 * (odd or missing members leave a figure unobserved, never crash), the live
 * figures of a strategy and the store's live JSON. */
#include <string.h>

#include <apr_strings.h>

#include "gc_log.h"
#include "gc_strategy_calls.h"
#include "gc_upstream_test.h"
#include "loopback_http.h"
#include "unit.h"

static lb_server_t *srv;
static apr_pool_t *pool;
static gc_upstream_t *up;
static gc_strategy_ops_t ops;

static int quiet(void *baton, int level)
{
    return 0;
}

static void setup(void)
{
    gc_conn_conf_t conf;

    gc_log_set(quiet, NULL, NULL);
    apr_pool_create(&pool, NULL);
    srv = lb_start();
    memset(&conf, 0, sizeof(conf));
    conf.environment = "mypurecloud.com";
    conf.api_url = apr_pstrdup(pool, lb_url(srv));
    conf.login_url = apr_pstrdup(pool, lb_url(srv));
    conf.client_id = "client-1";
    conf.client_secret = "secret-1";
    conf.request_timeout = apr_time_from_sec(5);
    conf.rate_limit = 300;
    up = gc_upstream_create(pool, &conf, NULL, NULL);
    gc_upstream_test_set_backoff(up, apr_time_from_msec(1), apr_time_from_msec(5));
    lb_add_simple(srv, "/oauth/token", 200, NULL,
                  "{\"access_token\":\"tok\",\"token_type\":\"bearer\",\"expires_in\":86400}");
    ops = gc_strategy_calls_ops(pool, up);
}

static void teardown(void)
{
    gc_log_set(NULL, NULL, NULL);
    lb_stop(srv);
    apr_pool_destroy(pool);
}

static json_t *body_of(const lb_request_t *r)
{
    json_t *j;

    ck_assert_ptr_nonnull(r);
    j = json_loads(r->body, 0, NULL);
    ck_assert_msg(j != NULL, "request body is not JSON: %s", r->body);
    return j;
}

static gc_strategy_t *strategy(int n, const char *const *queues)
{
    gc_strategy_t *s = apr_pcalloc(pool, sizeof(*s));
    int i;

    s->name = "S";
    s->n_targets = n;
    s->targets = apr_pcalloc(pool, sizeof(*s->targets) * (size_t)n);
    for (i = 0; i < n; i++) {
        s->targets[i].queue_id = queues[i];
        s->targets[i].priority = 1;
        s->targets[i].weight = 1;
        s->targets[i].capacity = 10;
    }
    s->fallback.queue_id = "qf";
    s->fallback.priority = 99;
    s->fallback.weight = 1;
    return s;
}

#define OBS "/api/v2/analytics/queues/observations/query"
#define Q1_MEMBERS "/api/v2/routing/queues/q1/members"
#define Q2_MEMBERS "/api/v2/routing/queues/q2/members"

/* One query for every queue (the body as SPEC §4.4); oInteracting of the
 * queue's groups added up; a queue the answer lacks, or whose count is not a
 * number, stays unobserved. */
START_TEST(calls_observe)
{
    static const char *const queues[] = { "q1", "q2", "q3", "q4" };
    gc_strategy_live_t live[4];
    gc_error_t *e = NULL;
    json_t *b, *preds;

    lb_add_simple(
        srv, OBS, 200, NULL,
        "{\"results\":["
        "{\"group\":{\"queueId\":\"q1\",\"mediaType\":\"voice\"},\"data\":[{\"metric\":"
        "\"oInteracting\",\"stats\":{\"count\":1}},{\"metric\":\"oWaiting\",\"stats\":{\"count\":"
        "9}}]},"
        "{\"group\":{\"queueId\":\"q1\",\"mediaType\":\"chat\"},\"data\":[{\"metric\":"
        "\"oInteracting\",\"stats\":{\"count\":2}}]},"
        "{\"group\":{\"queueId\":\"q2\"},\"data\":[{\"metric\":\"oWaiting\",\"stats\":{\"count\":"
        "1}}]},"
        "{\"group\":{\"queueId\":\"q3\"},\"data\":[{\"metric\":\"oInteracting\",\"stats\":{"
        "\"count\":\"7\"}}]},"
        "{\"group\":{},\"data\":7},{\"group\":{\"queueId\":\"q9\"},\"data\":[{\"metric\":"
        "\"oInteracting\",\"stats\":{\"count\":5}}]},42]}");
    memset(live, 0, sizeof(live));
    ck_assert_int_eq(ops.observe(ops.baton, pool, queues, 4, live, &e), APR_SUCCESS);
    ck_assert(live[0].observed && live[0].interacting == 3);
    ck_assert(!live[1].observed && !live[2].observed && !live[3].observed);

    b = body_of(lb_request(srv, OBS, 0));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b, "filter"), "type")),
                     "or");
    preds = json_object_get(json_object_get(b, "filter"), "predicates");
    ck_assert_int_eq(json_array_size(preds), 4);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(preds, 3), "value")), "q4");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(preds, 0), "dimension")),
                     "queueId");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(b, "metrics"), 1)),
                     "oInteracting");
    json_decref(b);
    ck_assert_str_eq(lb_request(srv, OBS, 0)->method, "POST");
}
END_TEST

START_TEST(calls_observe_malformed)
{
    static const char *const queues[] = { "q1" };
    gc_strategy_live_t live[1];
    gc_error_t *e = NULL;

    lb_add_simple(srv, OBS, 200, NULL, "{\"entities\":[]}");
    memset(live, 0, sizeof(live));
    ck_assert_int_ne(ops.observe(ops.baton, pool, queues, 1, live, &e), APR_SUCCESS);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->kind, GC_ERR_PROTOCOL);
    ck_assert(!live[0].observed);
}
END_TEST

/* One member asked for, the skills as repeated parameters; a 404 is
 * NOT_FOUND. */
START_TEST(calls_skilled)
{
    static const char *const skills[] = { "s1", "s-2" };
    gc_error_t *e = NULL;
    int any = -1;

    lb_add_simple(srv, Q1_MEMBERS, 200, NULL, "{\"entities\":[{\"id\":\"u1\"}]}");
    lb_add_simple(srv, Q1_MEMBERS, 200, NULL, "{\"entities\":[]}");
    ck_assert_int_eq(ops.skilled(ops.baton, pool, "q1", skills, 2, &any, &e), APR_SUCCESS);
    ck_assert_int_eq(any, 1);
    ck_assert_str_eq(lb_request(srv, Q1_MEMBERS, 0)->target,
                     Q1_MEMBERS "?pageSize=1&skills=s1&skills=s-2");
    ck_assert_int_eq(ops.skilled(ops.baton, pool, "q1", skills, 0, &any, &e), APR_SUCCESS);
    ck_assert_int_eq(any, 0);
    ck_assert_str_eq(lb_request(srv, Q1_MEMBERS, 1)->target, Q1_MEMBERS "?pageSize=1");

    lb_add_simple(srv, Q2_MEMBERS, 404, NULL,
                  "{\"message\":\"no queue\",\"code\":\"not.found\",\"status\":404}");
    ck_assert_int_ne(ops.skilled(ops.baton, pool, "q2", skills, 1, &any, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_NOT_FOUND);
    ck_assert_int_eq(e->status, 404);
}
END_TEST

/* The live figures: observations, then each target's probe with the
 * required skills only; a failed probe ends it, the figures read kept. */
START_TEST(calls_read_live)
{
    static const char *const queues[] = { "q1", "q2" };
    gc_strategy_t *s = strategy(2, queues);
    gc_strategy_live_t live[2];
    gc_error_t *e = NULL;

    s->n_skills = 2;
    s->skills = apr_pcalloc(pool, 2 * sizeof(*s->skills));
    s->skills[0].skill_id = "s1";
    s->skills[0].required = 0;
    s->skills[1].skill_id = "s2";
    s->skills[1].required = 1;
    lb_add_simple(srv, OBS, 200, NULL,
                  "{\"results\":[{\"group\":{\"queueId\":\"q2\"},\"data\":[{\"metric\":"
                  "\"oInteracting\",\"stats\":{\"count\":4}}]}]}");
    lb_add_simple(srv, Q1_MEMBERS, 200, NULL, "{\"entities\":[]}");
    lb_add_simple(srv, Q2_MEMBERS, 500, NULL, "{\"message\":\"boom\"}");
    ck_assert_int_ne(gc_strategy_read_live(pool, &ops, s, 1, live, &e), APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_SERVER);
    ck_assert(!live[0].observed && live[0].skilled == 0);
    ck_assert(live[1].observed && live[1].interacting == 4 && live[1].skilled == -1);
    ck_assert_str_eq(lb_request(srv, Q1_MEMBERS, 0)->target, Q1_MEMBERS "?pageSize=1&skills=s2");

    /* Observations only: no member probe. */
    ck_assert_int_eq(gc_strategy_read_live(pool, &ops, s, 0, live, &e), APR_SUCCESS);
    ck_assert_int_eq(lb_count(srv, Q1_MEMBERS), 1);
    ck_assert(live[1].observed && live[0].skilled == -1);
}
END_TEST

/* The aggregates query's body; groups merged (counts and sums add up, max
 * of maxes); an answer without results is no data. */
START_TEST(calls_aggregates)
{
    static const char *const queues[] = { "q1", "q2" };
    gc_strategy_latency_t fig[2];
    gc_error_t *e = NULL;
    json_t *b;
    const char *path = "/api/v2/analytics/conversations/aggregates/query";

    lb_add_simple(
        srv, path, 200, NULL,
        "{\"results\":[{\"group\":{\"queueId\":\"q1\"},\"data\":["
        "{\"interval\":\"x\",\"metrics\":["
        "{\"metric\":\"tWait\",\"stats\":{\"max\":9000,\"min\":1000,\"count\":4,\"sum\":16500}},"
        "{\"metric\":\"nOffered\",\"stats\":{\"count\":4}},"
        "{\"metric\":\"tAnswered\",\"stats\":{\"max\":500,\"count\":2,\"sum\":700}}]},"
        "{\"interval\":\"y\",\"metrics\":["
        "{\"metric\":\"tWait\",\"stats\":{\"max\":12000,\"count\":1,\"sum\":12000}},"
        "{\"metric\":\"tWait\",\"stats\":\"odd\"},{\"metric\":7}]}]},"
        "{\"group\":{\"queueId\":\"zz\"},\"data\":[]}]}");
    lb_add_simple(srv, path, 200, NULL, "{}");
    ck_assert_int_eq(ops.aggregates(ops.baton, pool,
                                    "2026-01-05T00:00:00.000Z/2026-01-06T00:00:00.000Z", queues, 2,
                                    fig, &e),
                     APR_SUCCESS);
    ck_assert(fig[0].has_data && fig[0].offered == 4);
    ck_assert(fig[0].wait.has && fig[0].wait.count == 5 && fig[0].wait.sum == 28500
              && fig[0].wait.max == 12000);
    ck_assert(fig[0].answer.has && fig[0].answer.count == 2 && fig[0].answer.max == 500);
    ck_assert(!fig[1].has_data && !fig[1].wait.has && fig[1].offered == 0);
    b = body_of(lb_request(srv, path, 0));
    ck_assert_str_eq(json_string_value(json_object_get(b, "interval")),
                     "2026-01-05T00:00:00.000Z/2026-01-06T00:00:00.000Z");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(b, "groupBy"), 0)),
                     "queueId");
    ck_assert_int_eq(json_array_size(json_object_get(b, "metrics")), 3);
    ck_assert_int_eq(json_array_size(json_object_get(json_object_get(b, "filter"), "predicates")),
                     2);
    json_decref(b);

    ck_assert_int_eq(ops.aggregates(ops.baton, pool, "a/b", queues, 2, fig, &e), APR_SUCCESS);
    ck_assert(!fig[0].has_data && !fig[1].has_data);
}
END_TEST

/* The audit query: submitted (Routing, an EntityId filter a queue, newest
 * first), polled, its result pages followed by cursor (sent escaped). */
START_TEST(calls_audits)
{
    static const char *const queues[] = { "q1", "q2" };
    gc_error_t *e = NULL;
    const char *qid = NULL, *state = NULL, *next = NULL;
    json_t *b, *list = NULL;

    lb_add_simple(srv, "/api/v2/audits/query", 200, NULL,
                  "{\"id\":\"tx-1\",\"state\":\"Running\"}");
    lb_add_simple(srv, "/api/v2/audits/query", 200, NULL, "{\"state\":\"Running\"}");
    lb_add_simple(srv, "/api/v2/audits/query/tx-1", 200, NULL,
                  "{\"id\":\"tx-1\",\"state\":\"Succeeded\"}");
    lb_add_simple(srv, "/api/v2/audits/query/tx-1/results", 200, NULL,
                  "{\"id\":\"tx-1\",\"entities\":[{\"id\":\"a1\"},{\"id\":\"a2\"}],"
                  "\"cursor\":\"c+/=1\"}");
    lb_add_simple(srv, "/api/v2/audits/query/tx-1/results", 200, NULL,
                  "{\"id\":\"tx-1\",\"entities\":[{\"id\":\"a3\"}]}");
    ck_assert_int_eq(ops.audit_submit(ops.baton, pool, "a/b", queues, 2, &qid, &state, &e),
                     APR_SUCCESS);
    ck_assert_str_eq(qid, "tx-1");
    ck_assert_str_eq(state, "Running");
    b = body_of(lb_request(srv, "/api/v2/audits/query", 0));
    ck_assert_str_eq(json_string_value(json_object_get(b, "serviceName")), "Routing");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(b, "filters"), 1), "property")),
                     "EntityId");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(b, "filters"), 1), "value")),
                     "q2");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(b, "sort"), 0), "sortOrder")),
                     "descending");
    json_decref(b);

    ck_assert_int_eq(ops.audit_poll(ops.baton, pool, "tx-1", &state, &e), APR_SUCCESS);
    ck_assert_str_eq(state, "Succeeded");

    ck_assert_int_eq(ops.audit_results(ops.baton, pool, "tx-1", NULL, &list, &next, &e),
                     APR_SUCCESS);
    ck_assert_int_eq(json_array_size(list), 2);
    ck_assert_str_eq(next, "c+/=1");
    json_decref(list);
    ck_assert_int_eq(ops.audit_results(ops.baton, pool, "tx-1", next, &list, &next, &e),
                     APR_SUCCESS);
    ck_assert_int_eq(json_array_size(list), 1);
    ck_assert_ptr_null(next);
    json_decref(list);
    ck_assert_str_eq(lb_request(srv, "/api/v2/audits/query/tx-1/results", 0)->target,
                     "/api/v2/audits/query/tx-1/results?pageSize=100&expand=user");
    ck_assert_str_eq(
        lb_request(srv, "/api/v2/audits/query/tx-1/results", 1)->target,
        "/api/v2/audits/query/tx-1/results?pageSize=100&expand=user&cursor=c%2b%2f%3d1");

    /* No id: a protocol error. */
    ck_assert_int_ne(ops.audit_submit(ops.baton, pool, "a/b", queues, 2, &qid, &state, &e),
                     APR_SUCCESS);
    ck_assert_int_eq(e->kind, GC_ERR_PROTOCOL);
}
END_TEST

/* The queue read-modify-write: copies the caller owns. */
START_TEST(calls_queue_get_put)
{
    json_t *q = NULL, *answer = NULL;
    gc_error_t *e = NULL;

    lb_add_simple(srv, "/api/v2/routing/queues/q1", 200, NULL,
                  "{\"id\":\"q1\",\"version\":3,\"skillEvaluationMethod\":\"BEST\"}");
    ck_assert_int_eq(ops.queue_get(ops.baton, pool, "q1", &q, &e), APR_SUCCESS);
    ck_assert_int_eq(json_integer_value(json_object_get(q, "version")), 3);
    json_object_set_new(q, "skillEvaluationMethod", json_string("ALL"));
    ck_assert_int_eq(ops.queue_put(ops.baton, pool, "q1", q, &answer, &e), APR_SUCCESS);
    ck_assert_str_eq(lb_request(srv, "/api/v2/routing/queues/q1", 1)->method, "PUT");
    ck_assert_ptr_nonnull(strstr(lb_request(srv, "/api/v2/routing/queues/q1", 1)->body,
                                 "\"skillEvaluationMethod\":\"ALL\""));
    ck_assert_ptr_nonnull(answer); /* the scripted answer repeats */
    json_decref(q);
    json_decref(answer);

    lb_add_simple(srv, "/api/v2/routing/queues/q2", 200, NULL, "[1,2]");
    ck_assert_int_ne(ops.queue_get(ops.baton, pool, "q2", &q, &e), APR_SUCCESS);
    ck_assert_ptr_null(q);
    ck_assert_int_eq(e->kind, GC_ERR_PROTOCOL);
}
END_TEST

/* The store's live JSON and back, by queue id; missing or odd figures, or
 * unreadable text, are unobserved. */
START_TEST(calls_live_json)
{
    static const char *const queues[] = { "q1", "q2", "q3" };
    static const char *const swapped[] = { "q3", "q1", "q2" };
    gc_strategy_t *s = strategy(3, queues), *t = strategy(3, swapped);
    gc_strategy_live_t live[3], back[3];
    char *text;

    memset(live, 0, sizeof(live));
    live[0].observed = 1;
    live[0].interacting = 2.5;
    live[2].observed = 1;
    live[2].interacting = 0;
    text = gc_strategy_live_json(pool, s, live);
    ck_assert_str_eq(text, "{\"targets\":[{\"queue_id\":\"q1\",\"interacting\":2.5},"
                           "{\"queue_id\":\"q2\",\"interacting\":null},"
                           "{\"queue_id\":\"q3\",\"interacting\":0.0}]}");
    gc_strategy_live_parse(text, t, back);
    ck_assert(back[0].observed && back[0].interacting == 0);
    ck_assert(back[1].observed && back[1].interacting == 2.5);
    ck_assert(!back[2].observed && back[2].skilled == -1);

    gc_strategy_live_parse("{\"targets\":[{\"queue_id\":\"q1\",\"interacting\":-1},"
                           "{\"queue_id\":\"q2\",\"interacting\":\"3\"},{\"queue_id\":7},5]}",
                           s, back);
    ck_assert(!back[0].observed && !back[1].observed && !back[2].observed);
    gc_strategy_live_parse("not json", s, back);
    ck_assert(!back[0].observed);
    gc_strategy_live_parse(NULL, s, back);
    ck_assert(!back[2].observed);
}
END_TEST

/* With a deadline already past, nothing is sent: the request's deadline. */
START_TEST(calls_deadline)
{
    static const char *const queues[] = { "q1" };
    gc_strategy_ops_t late = gc_strategy_calls_ops_until(pool, up, apr_time_now() - 1000);
    gc_strategy_live_t live[1];
    gc_error_t *e = NULL;

    ck_assert_int_ne(late.observe(late.baton, pool, queues, 1, live, &e), APR_SUCCESS);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->kind, GC_ERR_TIMEOUT);
    ck_assert_int_eq(lb_count(srv, OBS), 0);
}
END_TEST

Suite *strategy_calls_suite(void)
{
    Suite *s = suite_create("strategy_calls");
    TCase *tc = tcase_create("calls");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, calls_observe);
    tcase_add_test(tc, calls_observe_malformed);
    tcase_add_test(tc, calls_skilled);
    tcase_add_test(tc, calls_read_live);
    tcase_add_test(tc, calls_aggregates);
    tcase_add_test(tc, calls_audits);
    tcase_add_test(tc, calls_queue_get_put);
    tcase_add_test(tc, calls_live_json);
    tcase_add_test(tc, calls_deadline);
    suite_add_tcase(s, tc);
    return s;
}
