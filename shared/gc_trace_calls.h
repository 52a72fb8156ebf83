/* The Genesys Cloud calls of a trace job (gc_trace_ops_t) over the upstream
 * client (SPEC §3.5, §4.5): the flow-instances query, the download job and
 * its polls, the pre-signed download (no bearer token, no rate-budget slot,
 * TLS verified, at most the client's response cap). Background work: no
 * request deadline; the client's retries apply to each call. */
#ifndef GC_TRACE_CALLS_H
#define GC_TRACE_CALLS_H

#include "gc_trace_job.h"
#include "gc_upstream.h"

/* The ops of a trace job calling through up; webhook says whether
 * GcmonTraceWebhook is set. The returned struct's baton points into p. */
gc_trace_ops_t gc_trace_calls_ops(apr_pool_t *p, gc_upstream_t *up, int webhook);

#endif
