/* gc_trace_job: the request's validation and the trace job's steps against a
 * scripted Genesys (find → submit → poll → fetch), its faults and restarts. */
#include <string.h>

#include <apr_strings.h>

#include "gc_jobs.h"
#include "gc_log.h"
#include "gc_trace_job.h"
#include "unit.h"

static apr_pool_t *pool;

static int quiet(void *baton, int level)
{
    return 0;
}

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    gc_log_set(quiet, NULL, NULL);
}

static void teardown(void)
{
    gc_log_set(NULL, NULL, NULL);
    apr_pool_destroy(pool);
}

static apr_status_t decref(void *j)
{
    json_decref(j);
    return APR_SUCCESS;
}

static json_t *load(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);

    ck_assert_msg(j != NULL, "bad test JSON: %s", text);
    apr_pool_cleanup_register(pool, j, decref, apr_pool_cleanup_null);
    return j;
}

/* ---------------------------------------------------------------- validation */

static gc_result_t *validate(const char *flow, const char *body, const char **payload)
{
    gc_result_t *res = gc_result_make(pool);

    gc_trace_job_validate(pool, res, flow, body ? load(body) : NULL, payload);
    return res;
}

static const char *first_field(const gc_result_t *res)
{
    return json_string_value(json_object_get(json_array_get(res->errors, 0), "field"));
}

START_TEST(trace_request_validation)
{
    const char *payload = NULL;
    gc_result_t *res;
    json_t *p;

    res = validate("flow-1",
                   "{\"conversation_id\":\"c-1\",\"trace_depth\":5,"
                   "\"context_directives\":{\"capture_data\":true}}",
                   &payload);
    ck_assert_int_eq(res->status, 0);
    p = load(payload);
    ck_assert_str_eq(json_string_value(json_object_get(p, "flow_id")), "flow-1");
    ck_assert_str_eq(json_string_value(json_object_get(p, "conversation_id")), "c-1");
    ck_assert_int_eq(json_integer_value(json_object_get(p, "trace_depth")), 5);
    ck_assert(json_is_true(json_object_get(p, "capture_data")));
    ck_assert(json_is_false(json_object_get(p, "capture_context")));

    ck_assert_int_eq(validate("bad flow", "{}", &payload)->status, 400);
    res = validate("flow-1", "{\"trace_depth\":0,\"context_directives\":{\"capture_data\":true}}",
                   &payload);
    ck_assert_int_eq(res->status, 422);
    ck_assert_str_eq(first_field(res), "trace_depth");
    ck_assert_int_eq(validate("flow-1",
                              "{\"trace_depth\":51,\"context_directives\":{\"capture_data\":true}}",
                              &payload)
                         ->status,
                     422);
    res = validate("flow-1", "{\"trace_depth\":3,\"context_directives\":{\"capture_data\":false}}",
                   &payload);
    ck_assert_int_eq(res->status, 422);
    ck_assert_str_eq(first_field(res), "context_directives");
    res = validate("flow-1",
                   "{\"trace_depth\":3,\"context_directives\":{\"capture_data\":true,"
                   "\"capture_everything\":true}}",
                   &payload);
    ck_assert_str_eq(first_field(res), "context_directives.capture_everything");
    res = validate("flow-1",
                   "{\"trace_depth\":3,\"instance_id\":\"i-1\",\"conversation_id\":\"c-1\","
                   "\"context_directives\":{\"capture_data\":true}}",
                   &payload);
    ck_assert_int_eq(res->status, 422);
    ck_assert_str_eq(first_field(res), "instance_id");
    res = validate("flow-1", "{\"context_directives\":{}}", &payload);
    ck_assert_int_eq(json_array_size(res->errors), 2); /* every problem, one entry each */
    ck_assert_ptr_null(payload);
}
END_TEST

/* ---------------------------------------------------------------- the steps */

typedef struct {
    int queries, submits, polls, downloads;
    int polls_until_success; /* Running before */
    int job_fails;
    gc_err_kind_e poll_err; /* the next poll fails so */
    int poll_err_status;
    int download_status; /* the next download answers this (0: the doc) */
    int n_instances;
    int hook;
    const char *last_uri;
} world_t;

static const char *const DOC =
    "{\"flow\":{\"conversationId\":\"c-1\",\"endDateTime\":\"2026-12-01T10:00:05.000Z\","
    "\"execution\":[{\"startedFlow\":{\"dateTime\":\"2026-12-01T10:00:00.000Z\"}},"
    "{\"actionCallData\":{\"actionId\":\"a-1\",\"dateTime\":\"2026-12-01T10:00:01.000Z\"}},"
    "{\"actionDecision\":{\"actionId\":\"a-2\",\"dateTime\":\"2026-12-01T10:00:04.000Z\"}}]}}";

static gc_error_t *make_err(apr_pool_t *p, gc_err_kind_e kind, int status)
{
    gc_error_t *e = apr_pcalloc(p, sizeof(*e));

    e->kind = kind;
    e->status = status;
    e->message = "scripted";
    e->retry_after = kind == GC_ERR_THROTTLED ? apr_time_from_sec(20) : 0;
    return e;
}

static apr_status_t w_query(void *b, apr_pool_t *p, const char *flow_id, const char *conv, int max,
                            apr_array_header_t **ids, gc_error_t **err)
{
    world_t *w = b;
    int i;

    w->queries++;
    ck_assert_str_eq(flow_id, "flow-1");
    *ids = apr_array_make(p, 4, sizeof(const char *));
    for (i = 0; i < w->n_instances; i++) {
        APR_ARRAY_PUSH(*ids, const char *) = apr_psprintf(p, "inst-%d", i + 1);
    }
    return APR_SUCCESS;
}

static apr_status_t w_submit(void *b, apr_pool_t *p, const apr_array_header_t *ids,
                             const char **job_id, gc_error_t **err)
{
    world_t *w = b;

    w->submits++;
    *job_id = apr_psprintf(p, "gjob-%d", w->submits);
    return APR_SUCCESS;
}

static apr_status_t w_poll(void *b, apr_pool_t *p, const char *job_id, const char **state,
                           apr_array_header_t **entities, const char **reason, gc_error_t **err)
{
    world_t *w = b;
    int i;

    w->polls++;
    if (w->poll_err) {
        *err = make_err(p, w->poll_err, w->poll_err_status);
        w->poll_err = 0;
        return APR_EGENERAL;
    }
    if (w->polls_until_success > 0) {
        w->polls_until_success--;
        *state = "Running";
        return APR_SUCCESS;
    }
    if (w->job_fails) {
        *state = "Failed";
        *reason = "execution data storage is disabled";
        return APR_SUCCESS;
    }
    *state = "Success";
    *entities = apr_array_make(p, 4, sizeof(gc_trace_entity_t));
    for (i = 0; i < (w->n_instances ? w->n_instances : 1); i++) {
        gc_trace_entity_t *e = apr_array_push(*entities);
        e->instance_id = apr_psprintf(p, "inst-%d", i + 1);
        e->download_uri = apr_psprintf(p, "https://storage.example/%s/%d", job_id, i);
    }
    return APR_SUCCESS;
}

static apr_status_t w_download(void *b, apr_pool_t *p, const char *uri, const char **body,
                               apr_size_t *len, gc_error_t **err)
{
    world_t *w = b;

    w->downloads++;
    w->last_uri = apr_pstrdup(pool, uri);
    if (w->download_status) {
        *err = make_err(p, GC_ERR_CLIENT, w->download_status);
        w->download_status = 0;
        return APR_EGENERAL;
    }
    *body = DOC;
    *len = strlen(DOC);
    return APR_SUCCESS;
}

static int w_hook(void *b)
{
    return ((world_t *)b)->hook;
}

/* Run the job's steps the way gc_jobs would, keeping its step between them;
 * *steps counts them. The final step's outcome. */
static gc_job_step_t run(world_t *w, const char *payload, int max_steps, int *steps, gc_job_t *job)
{
    gc_trace_ops_t ops = { w, w_query, w_submit, w_poll, w_download, w_hook };
    gc_job_step_t out;
    apr_time_t now = apr_time_from_sec(1000000);
    int i;

    memset(job, 0, sizeof(*job));
    job->id = "trace-1";
    job->kind = GC_TRACE_KIND;
    job->payload = payload;
    job->created_at = now;
    memset(&out, 0, sizeof(out));
    for (i = 0; i < max_steps; i++) {
        gc_trace_job_step(pool, &ops, job, 0.5, now, &out);
        if (out.outcome != GC_JOB_AGAIN) {
            break;
        }
        ck_assert_msg(out.next_run_at >= now, "a step due in the past");
        now = out.next_run_at;
        if (out.step) {
            job->step = apr_pstrdup(pool, out.step);
        }
    }
    *steps = i + 1;
    return out;
}

static const char *const PAYLOAD =
    "{\"flow_id\":\"flow-1\",\"conversation_id\":\"c-1\",\"trace_depth\":2,"
    "\"action_invocation_id\":\"inv-9\",\"capture_context\":true,\"capture_data\":false}";

START_TEST(trace_job_completes)
{
    world_t w;
    gc_job_t job;
    gc_job_step_t out;
    json_t *result, *hook;
    int steps = 0;

    memset(&w, 0, sizeof(w));
    w.n_instances = 2;
    w.polls_until_success = 2;
    w.hook = 1;
    out = run(&w, PAYLOAD, 20, &steps, &job);
    ck_assert_int_eq(out.outcome, GC_JOB_DONE);
    ck_assert_int_eq(steps, 4); /* find+submit, Running, Running, Success+fetch */
    ck_assert_int_eq(w.queries, 1);
    ck_assert_int_eq(w.submits, 1);
    ck_assert_int_eq(w.polls, 3);
    ck_assert_int_eq(w.downloads, 2);
    result = load(out.result);
    ck_assert_str_eq(json_string_value(json_object_get(result, "status")), "completed");
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(result, "bottleneck"), "node_id")),
        "1:2"); /* the data action: 3 s */
    ck_assert_int_eq(json_array_size(json_object_get(result, "instance_ids")), 2);
    ck_assert_str_eq(out.audit_action, GC_TRACE_AUDIT_ACTION);
    ck_assert_str_eq(out.outbox_target, GC_TRACE_KIND);
    hook = load(out.outbox_body);
    ck_assert_str_eq(json_string_value(json_object_get(hook, "flowId")), "flow-1");
    ck_assert_str_eq(json_string_value(json_object_get(hook, "actionInvocationId")), "inv-9");
    ck_assert_str_eq(json_string_value(json_object_get(hook, "status")), "completed");
    ck_assert_str_eq(json_string_value(json_object_get(hook, "bottleneckNode")), "1:2");
    ck_assert_int_eq(json_integer_value(json_object_get(hook, "bottleneckLatencyMs")), 3000);

    /* no webhook configured: none queued */
    memset(&w, 0, sizeof(w));
    w.n_instances = 1;
    out = run(&w, PAYLOAD, 20, &steps, &job);
    ck_assert_int_eq(out.outcome, GC_JOB_DONE);
    ck_assert_ptr_null(out.outbox_target);
}
END_TEST

/* A poll throttled: the next step waits the Retry-After; a poll 404 (the
 * Genesys job expired) submits again; an expired link polls again. */
START_TEST(trace_job_faults_and_restarts)
{
    world_t w;
    gc_job_t job;
    gc_trace_ops_t ops = { &w, w_query, w_submit, w_poll, w_download, w_hook };
    gc_job_step_t out;
    apr_time_t now = apr_time_from_sec(2000000);
    int steps = 0;

    memset(&w, 0, sizeof(w));
    memset(&job, 0, sizeof(job));
    job.id = "trace-2";
    job.payload = "{\"flow_id\":\"flow-1\",\"instance_id\":\"inst-7\",\"trace_depth\":1,"
                  "\"capture_context\":false,\"capture_data\":true}";
    job.created_at = now;
    gc_trace_job_step(pool, &ops, &job, 0.0, now, &out); /* instance given: no query */
    ck_assert_int_eq(out.outcome, GC_JOB_AGAIN);
    ck_assert_int_eq(w.queries, 0);
    ck_assert_int_eq(w.submits, 1);
    job.step = apr_pstrdup(pool, out.step);
    w.poll_err = GC_ERR_THROTTLED;
    w.poll_err_status = 429;
    gc_trace_job_step(pool, &ops, &job, 0.0, now, &out);
    ck_assert_int_eq(out.outcome, GC_JOB_AGAIN);
    ck_assert_int_eq(out.next_run_at, now + apr_time_from_sec(20)); /* Retry-After wins */
    ck_assert(strstr(out.error, "throttled") != NULL);
    job.step = apr_pstrdup(pool, out.step);
    w.poll_err = GC_ERR_NOT_FOUND;
    w.poll_err_status = 404;
    gc_trace_job_step(pool, &ops, &job, 0.0, now, &out);
    ck_assert_int_eq(out.outcome, GC_JOB_AGAIN);
    ck_assert_int_eq(w.submits, 2);
    ck_assert(strstr(out.step, "\"job\":\"gjob-2\"") != NULL);
    job.step = apr_pstrdup(pool, out.step);
    w.download_status = 403;
    gc_trace_job_step(pool, &ops, &job, 0.0, now, &out); /* Success, the link expired */
    ck_assert_int_eq(out.outcome, GC_JOB_AGAIN);
    ck_assert(strstr(out.step, "\"phase\":\"poll\"") != NULL);
    job.step = apr_pstrdup(pool, out.step);
    gc_trace_job_step(pool, &ops, &job, 0.0, now, &out);
    ck_assert_int_eq(out.outcome, GC_JOB_DONE);
    ck_assert_int_eq(w.downloads, 2);

    /* a permission problem fails at once; the Genesys job failing too */
    memset(&w, 0, sizeof(w));
    w.n_instances = 1;
    w.job_fails = 1;
    out = run(&w, PAYLOAD, 20, &steps, &job);
    ck_assert_int_eq(out.outcome, GC_JOB_FAILED);
    ck_assert_str_eq(out.error,
                     "the Genesys Cloud download job failed: execution data storage is disabled");
    ck_assert_str_eq(json_string_value(json_object_get(load(out.result), "status")), "failed");
    memset(&w, 0, sizeof(w));
    w.n_instances = 1;
    w.poll_err = GC_ERR_FORBIDDEN;
    w.poll_err_status = 403;
    out = run(&w, PAYLOAD, 20, &steps, &job);
    ck_assert_int_eq(out.outcome, GC_JOB_FAILED);
    ck_assert(strstr(out.error, "polling the download job: forbidden") != NULL);
    /* nothing found */
    memset(&w, 0, sizeof(w));
    out = run(&w, PAYLOAD, 20, &steps, &job);
    ck_assert_int_eq(out.outcome, GC_JOB_FAILED);
    ck_assert_str_eq(out.error, "no execution of flow flow-1 was found for conversation c-1");
    /* a stop in the middle of a call gives the job back */
    memset(&w, 0, sizeof(w));
    w.n_instances = 1;
    w.poll_err = GC_ERR_CANCELLED;
    out = run(&w, PAYLOAD, 20, &steps, &job);
    ck_assert_int_eq(out.outcome, GC_JOB_GIVE_BACK);
}
END_TEST

Suite *trace_job_suite(void)
{
    Suite *s = suite_create("trace_job");
    TCase *tc = tcase_create("trace_job");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, trace_request_validation);
    tcase_add_test(tc, trace_job_completes);
    tcase_add_test(tc, trace_job_faults_and_restarts);
    suite_add_tcase(s, tc);
    return s;
}
