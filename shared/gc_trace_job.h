/* A flow trace as a durable job (SPEC §3.5, §5.5): the request's validation,
 * and the job's steps, httpd-free behind callbacks. The job runner
 * (gc_jobs.h) calls gc_trace_job_step once per due step; the step's progress
 * is JSON text kept with the job, so a restarted or new holder continues
 * where the last one stopped:
 *
 *   find     instance_id given → it; else POST /api/v2/flows/instances/query
 *            (flowId and conversationId criteria, pageSize trace_depth)
 *   submit   POST /api/v2/flows/instances/jobs {"ids":[…]}
 *   poll     GET /api/v2/flows/instances/jobs/{jobId} until Success/Failed,
 *            exponential backoff with jitter (GC_TRACE_POLL_MIN doubling to
 *            GC_TRACE_POLL_MAX), a longer Retry-After wins
 *   fetch    at Success, each entity's downloadUri without the bearer token
 *            (pre-signed), in the same step; gc_trace_build; the end.
 *
 * Decisions:
 *  - Upstream faults of a step (after the client's own retries: 429, 5xx,
 *    timeouts, dropped connections) do not fail the trace: the step runs
 *    again after the backoff (Retry-After honoured), its error kept as the
 *    job's last error, until GcmonTraceTimeout (the job's deadline) fails
 *    it. 4xx other than 404/429 (a permission, a bad id) fail at once.
 *  - A poll answering 404 (the Genesys job expired) submits again; a
 *    download answering 403/404 (the link expired: a holder resumed late)
 *    polls again for fresh links. Each is allowed GC_TRACE_MAX_RESTARTS
 *    times.
 *  - Downloads happen in the step that sees Success and end the trace in
 *    that step: a finished trace is never fetched again; a holder stopped
 *    during the downloads leaves the job at its poll, and the next one
 *    fetches them again (with fresh links).
 *  - An entity marked failed, or a download failing for good, leaves its
 *    document out (gc_trace_build warns; the accuracy rate shows it); no
 *    usable document at all fails the trace with the reason.
 *  - The completed or failed trace's result is the stored document
 *    (gc_trace.h's, plus flow_id, instance_ids, retrieval_latency_ms,
 *    status); the webhook body is gc_trace_webhook_body's. */
#ifndef GC_TRACE_JOB_H
#define GC_TRACE_JOB_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

#include "gc_jobs.h"
#include "gc_result.h"
#include "gc_upstream.h"

#define GC_TRACE_KIND "trace"
#define GC_TRACE_AUDIT_ACTION GC_AUDIT_TRACE_COMPLETE
#define GC_TRACE_POLL_MIN apr_time_from_sec(1)
#define GC_TRACE_POLL_MAX apr_time_from_sec(30)
#define GC_TRACE_MAX_RESTARTS 3
#define GC_TRACE_MIN_DEPTH 1
#define GC_TRACE_MAX_DEPTH_REQ 50

/* ---------------------------------------------------------------- the request */

/* Validate POST …/flows/{flowId}/traces (SPEC §5.5): flow_id a Genesys id;
 * trace_depth 1..50 (required); context_directives an object with at least
 * one of capture_context, capture_data true; instance_id or
 * conversation_id (not both; ids); action_invocation_id optional (an id).
 * Returns the number of errors; res then holds the problem: 400 for a bad
 * path id, 422 validation_failed with one `errors` entry per problem.
 * On success *payload (from p) is the job's payload text. */
int gc_trace_job_validate(apr_pool_t *p, gc_result_t *res, const char *flow_id, const json_t *body,
                          const char **payload);

/* ---------------------------------------------------------------- the steps */

/* One Genesys job entity at Success. */
typedef struct {
    const char *instance_id;
    const char *download_uri; /* NULL when failed */
    int failed;
    const char *status_code;
} gc_trace_entity_t;

typedef struct gc_trace_ops {
    void *baton;
    /* POST /api/v2/flows/instances/query: up to `max` instance ids of the flow
     * (and the conversation, when not NULL), newest first. */
    apr_status_t (*query)(void *baton, apr_pool_t *p, const char *flow_id,
                          const char *conversation_id, int max, apr_array_header_t **ids,
                          gc_error_t **err);
    /* POST /api/v2/flows/instances/jobs: *job_id. */
    apr_status_t (*submit)(void *baton, apr_pool_t *p, const apr_array_header_t *ids,
                           const char **job_id, gc_error_t **err);
    /* GET …/jobs/{id}: *state ("Registered", "Running", "Success", "Failed"),
     * at Success *entities (gc_trace_entity_t), at Failed *reason if any. */
    apr_status_t (*poll)(void *baton, apr_pool_t *p, const char *job_id, const char **state,
                         apr_array_header_t **entities, const char **reason, gc_error_t **err);
    /* GET the pre-signed link without the bearer token: the body. */
    apr_status_t (*download)(void *baton, apr_pool_t *p, const char *uri, const char **body,
                             apr_size_t *len, gc_error_t **err);
    /* Is GcmonTraceWebhook set? */
    int (*webhook_configured)(void *baton);
} gc_trace_ops_t;

/* One step of the trace job (a gc_job_step_fn's body): `rand` in [0, 1) for
 * the jitter; now the step's time. */
void gc_trace_job_step(apr_pool_t *p, const gc_trace_ops_t *ops, const gc_job_t *job, double rand,
                       apr_time_t now, gc_job_step_t *out);

#endif
