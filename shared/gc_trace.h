/* Flow execution traces, the pure part (SPEC §3.5, §5.5, §9.8): the
 * downloaded "historical flow execution data" documents of a trace (one per
 * traced instance, trace_depth 1..50) become a graph of execution items and
 * its results — bottleneck, critical path, failed nodes, accuracy rate —
 * plus the webhook body sent on completion. No HTTP, no database, no clock:
 * the glue submits the job, polls it, downloads each entity's downloadUri,
 * parses it (json_loads) and hands the documents here; storing the result,
 * the trace's id, status and timestamps are the glue's.
 *
 * Input, one document per instance, as Genesys documents it:
 *   {"flow":{"conversationId","division":{"id"},"startDateTime"?,"endDateTime",
 *            "executionItemsTruncated"?,
 *            "execution":[{"startedFlow":{"dateTime",…}},
 *                         {"actionAskForIntent":{"actionId","dateTime","execution":[…],
 *                          "outputPathId","outputVariables":[],"trackingId",…}},…]}}
 * Each item is an object with ONE key naming its type, whose value holds the
 * item's fields; the value's own "execution" list holds the items that action
 * called (nested items).
 *
 * Decisions (SPEC leaves them open):
 *  - Tolerated variants: the flow object itself at the top level (no "flow"
 *    wrapper); the real-time topic's flat items {"objectType","objectId",
 *    "startDateTime","error",…} (recognised by a string "objectType", any
 *    number of keys); an item's start in "dateTime" or "startDateTime"; an
 *    explicit "endDateTime" on an item (else its end is computed); the
 *    division as {"division":{"id"}} or "divisionId"; the action id in
 *    "actionId" or "objectId"; the variables in "variables" and
 *    "outputVariables"; an error in "error" (string, or an object whose
 *    errorMessage / message / errorCode / code string is taken, else its
 *    compact JSON) or a non-empty "errors" list (its first entry), or a
 *    "status" naming a failure ("failed", "failure", "error", any case).
 *    No explicit parent references are read (Genesys documents none): the
 *    graph is the documents' nesting, so it cannot have a cycle.
 *  - Nodes: one per item that is an object of one key (or a flat item),
 *    nested items included, in execution order (pre-order: an action, the
 *    items it called, then its next sibling). Node id "<instance>:<path>",
 *    instance 1-based in input order, path the 1-based positions in the
 *    document's lists ("1:3" the third top-level item of the first document,
 *    "1:3.2" the second item that one called): ids are unique and point into
 *    the document. A node also carries "parent" (the caller's id or null)
 *    and, with capture_data, "variables" (the item's "variables" then its
 *    "outputVariables", at most GC_TRACE_MAX_VARIABLES entries).
 *  - Times: start = the item's dateTime; end = its explicit endDateTime,
 *    else the next (graphed) sibling's start, else the caller's end for the
 *    last nested item, else the flow's endDateTime for the last top-level
 *    item. duration_ms = end - start in whole milliseconds. A missing or
 *    unparsable timestamp makes start/end null and the duration unknown
 *    (duration_ms null; it counts as 0 for the bottleneck and the critical
 *    path), with a warning. An end before the start (timestamps going
 *    backwards) is dropped (end and duration_ms null) with a warning.
 *  - status "failed" when the item carries an error (above), else "ok";
 *    error is that text (at most GC_TRACE_MAX_ERROR bytes) or null.
 *  - Edges, in execution order, each {"from","to","kind"}: "call" from an
 *    action to the first item it called; "sequence" from an item to its next
 *    sibling; "return" from the last item of a nested list to where the
 *    execution resumes (the caller's next sibling, climbing further up when
 *    the caller was last too). Instances are not connected to each other:
 *    they ran independently, they are parallel branches of the trace.
 *  - Bottleneck: the node with the longest known duration (a caller's
 *    duration includes its nested items'), the first in execution order on
 *    a tie; null when no node has a known duration.
 *  - Critical path: the longest path through the DAG (Kahn's topological
 *    order, then one pass of longest-path relaxation) weighted by each node's
 *    own time — its duration minus its nested items' durations, at least 0 —
 *    so a path's weight is wall-clock time, never counted twice. Ties prefer
 *    the path with more nodes (the one through nested items), then the first
 *    found. One instance runs sequentially, so its path is every node; with
 *    several instances it is the longest instance's. "critical_path_ms" is its
 *    weight. (A cycle cannot arise from nesting; were one found, the critical
 *    path is empty and a warning says so.)
 *  - accuracy_rate = items parsed (nodes) / items reported, a fraction 0..1,
 *    not rounded. Reported: the caller's count when it has one
 *    (items_reported >= 0), else every element of the documents' execution
 *    lists, nested ones included — malformed items and items past the caps
 *    count, so they lower the rate. Nothing reported → 1 (nothing missed).
 *    Parsed above reported (an external count that is too low) → 1, warned.
 *  - Malformed input. The whole trace is rejected (gc_trace_build returns
 *    -1 with a reason) when there are no documents, more than
 *    GC_TRACE_MAX_INSTANCES, or no usable one. A document is unusable (and
 *    skipped, with a warning, when others are usable) when it is NULL (not
 *    downloaded), not an object, or has no "execution" list. An item that is
 *    not an object, has no key, several keys (and no objectType), or whose
 *    one key's value is not an object is skipped with a warning (the graph
 *    links over it). executionItemsTruncated true → a warning (the instance
 *    also says "truncated": true); the rate drops only if the caller's count
 *    says how many are missing. Empty execution lists → a warning.
 *  - Caps: GC_TRACE_MAX_NODES nodes for the whole trace (later items are
 *    counted as reported, not graphed: one warning); nesting deeper than
 *    GC_TRACE_MAX_DEPTH lists is not walked (the too-deep list's length is
 *    counted as reported; one warning per list); strings copied at most
 *    GC_TRACE_MAX_STRING bytes (cut at a UTF-8 boundary); at most
 *    GC_TRACE_MAX_WARNINGS warnings, then one "… and N more warnings". The
 *    walk is iterative (an explicit stack of GC_TRACE_MAX_DEPTH frames):
 *    no recursion, every loop bounded by the document's size.
 *  - instances[]: one entry per document in input order (unusable ones
 *    too, with 0 nodes); start = the flow's startDateTime, else its first
 *    item's start; end = the flow's endDateTime.
 *  - Context: with capture_context each entry of "instances" keeps
 *    "conversation_id" and "division_id"; without, neither appears anywhere.
 *    Without capture_data no variables appear anywhere.
 *  - Retrieval latency (submit → parsed) is the caller's: it knows both
 *    times; gc_trace_retrieval_ms() does the arithmetic. */
#ifndef GC_TRACE_H
#define GC_TRACE_H

#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>

#define GC_TRACE_MAX_INSTANCES 50
#define GC_TRACE_MAX_NODES 10000
#define GC_TRACE_MAX_DEPTH 64
#define GC_TRACE_MAX_STRING 256
#define GC_TRACE_MAX_ERROR 1024
#define GC_TRACE_MAX_VARIABLES 200
#define GC_TRACE_MAX_WARNINGS 50

typedef struct {
    const json_t *const *docs;       /* n_docs parsed documents, NULL entries allowed */
    int n_docs;                      /* 1..GC_TRACE_MAX_INSTANCES */
    const char *const *instance_ids; /* n_docs instance ids (entries may be NULL), or NULL */
    int capture_data;                /* keep node variables */
    int capture_context;             /* keep conversation and division ids */
    apr_int64_t items_reported;      /* upstream's item count; < 0: unknown (count the docs) */
} gc_trace_input_t;

typedef struct {
    /* The result document, released by a cleanup of the pool given to
     * gc_trace_build (json_incref it to keep it longer):
     *   {"graph":{"nodes":[{"id","type","action_id","start","end","duration_ms",
     *                       "status","error","parent"[,"variables"]}],
     *             "edges":[{"from","to","kind"}]},
     *    "bottleneck":{"node_id","latency_ms"}|null,
     *    "critical_path":[node ids],"critical_path_ms",
     *    "failed_nodes":[node ids],"accuracy_rate",
     *    "items_parsed","items_reported",
     *    "instances":[{"index","instance_id","nodes","start","end","truncated"
     *                  [,"conversation_id","division_id"]}],
     *    "warnings":[strings]}
     * SPEC §5.5's graph/bottleneck/critical_path/failed_nodes/accuracy_rate;
     * the caller adds id, flow_id, status, error, retrieval_latency_ms and
     * the timestamps. */
    json_t *doc;
    int nodes;
    int failed;                  /* failed nodes */
    int warnings;                /* warnings raised (more than listed when capped) */
    apr_int64_t items_parsed;    /* = nodes */
    apr_int64_t items_reported;  /* the denominator used */
    double accuracy_rate;        /* 0..1 */
    const char *bottleneck_node; /* NULL: none */
    apr_int64_t bottleneck_ms;   /* 0 when none */
    apr_int64_t critical_path_ms;
} gc_trace_result_t;

/* Build the graph and the results of one trace. 0 with *out set (from p);
 * -1 with *reason (from p) when the input is rejected. Never loops, never
 * recurses: bounded by the documents' size and the caps above. */
int gc_trace_build(apr_pool_t *p, const gc_trace_input_t *in, gc_trace_result_t **out,
                   const char **reason);

/* Retrieval latency in whole milliseconds, submit → parsed (0 when parsed
 * precedes submitted). */
apr_int64_t gc_trace_retrieval_ms(apr_time_t submitted, apr_time_t parsed);

/* The completion webhook body (SPEC §3.5, the tutorial's, camelCase, in
 * this order):
 *   {"flowId","actionInvocationId","status","bottleneckNode",
 *    "bottleneckLatencyMs","retrievalLatencyMs","traceAccuracyRate","timestamp"}
 * result is the engine's document (or the stored copy of it), NULL for a
 * trace that failed: then bottleneckNode null, bottleneckLatencyMs 0 and
 * traceAccuracyRate 0. actionInvocationId null when NULL. timestamp RFC 3339
 * in milliseconds (gc_time_format). A new reference. */
json_t *gc_trace_webhook_body(apr_pool_t *p, const char *flow_id, const char *action_invocation_id,
                              const char *status, const json_t *result,
                              apr_int64_t retrieval_latency_ms, apr_time_t timestamp);

#endif
