/* The flow execution document parser (gc_trace_build, SPEC §3.5, §5.5): any
 * bytes as the downloaded documents of one trace — one JSON document after
 * another (as many as trace_depth allows and one more), each parsed as the
 * job parses a download; a document that does not parse ends the list as a
 * failed download (NULL) would.
 *
 * Properties, with and without the capture flags: a rejection has a reason
 * in valid UTF-8 and no result; a result is a serialisable document whose
 * counts agree with it (nodes, items_parsed, failed = failed_nodes) within
 * the caps; node ids are unique, every node's parent and every edge's ends
 * are nodes, the edges point forward in execution order (so the graph is a
 * DAG); durations are known and >= 0 or null; the bottleneck is a node with
 * the largest duration; the critical path is a path along edges; the
 * accuracy rate is a fraction in [0, 1]; one instance entry per document;
 * variables and context appear only when captured; warnings are capped; and
 * the webhook body has the tutorial's eight members. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>

#include "fuzz.h"
#include "gc_trace.h"
#include "gc_utf8.h"

#define MAX_DOCS (GC_TRACE_MAX_INSTANCES + 1)

static const json_t *get(const json_t *o, const char *k)
{
    return json_object_get(o, k);
}

/* node id → 1 + its index in execution order */
static apr_hash_t *index_nodes(apr_pool_t *p, const json_t *nodes)
{
    apr_hash_t *h = apr_hash_make(p);
    size_t i;

    for (i = 0; i < json_array_size(nodes); i++) {
        const char *id = json_string_value(get(json_array_get(nodes, i), "id"));
        FUZZ_CHECK(id != NULL);
        FUZZ_CHECK(apr_hash_get(h, id, APR_HASH_KEY_STRING) == NULL);
        apr_hash_set(h, id, APR_HASH_KEY_STRING, (void *)(uintptr_t)(i + 1));
    }
    return h;
}

static size_t at(apr_hash_t *h, const json_t *id)
{
    size_t i = json_is_string(id)
                   ? (size_t)(uintptr_t)apr_hash_get(h, json_string_value(id), APR_HASH_KEY_STRING)
                   : 0;

    FUZZ_CHECK(i > 0);
    return i;
}

static int has_edge(const json_t *edges, const json_t *from, const json_t *to)
{
    size_t i;

    for (i = 0; i < json_array_size(edges); i++) {
        const json_t *e = json_array_get(edges, i);
        if (json_equal(get(e, "from"), from) && json_equal(get(e, "to"), to)) {
            return 1;
        }
    }
    return 0;
}

static void check_result(apr_pool_t *p, const gc_trace_input_t *in, const gc_trace_result_t *r)
{
    const json_t *doc = r->doc, *graph = get(doc, "graph");
    const json_t *nodes = get(graph, "nodes"), *edges = get(graph, "edges");
    const json_t *path = get(doc, "critical_path"), *failed = get(doc, "failed_nodes");
    const json_t *bottleneck = get(doc, "bottleneck"), *warnings = get(doc, "warnings");
    const json_t *instances = get(doc, "instances"), *v;
    json_int_t longest = -1;
    apr_hash_t *ids;
    size_t i, nfailed = 0;
    char *text;

    FUZZ_CHECK(json_is_object(doc) && json_is_array(nodes) && json_is_array(edges));
    fuzz_check_dumps(doc);
    FUZZ_CHECK(r->nodes >= 0 && r->nodes <= GC_TRACE_MAX_NODES);
    FUZZ_CHECK((size_t)r->nodes == json_array_size(nodes) && r->items_parsed == r->nodes);
    FUZZ_CHECK(r->accuracy_rate >= 0.0 && r->accuracy_rate <= 1.0 && isfinite(r->accuracy_rate));
    FUZZ_CHECK(json_is_array(instances) && json_array_size(instances) == (size_t)in->n_docs);
    FUZZ_CHECK(json_is_array(warnings) && json_array_size(warnings) <= GC_TRACE_MAX_WARNINGS + 1);
    ids = index_nodes(p, nodes);
    for (i = 0; i < json_array_size(nodes); i++) {
        const json_t *n = json_array_get(nodes, i), *d = get(n, "duration_ms");
        const json_t *st = get(n, "status");
        FUZZ_CHECK(json_is_null(d) || (json_is_integer(d) && json_integer_value(d) >= 0));
        if (json_is_integer(d) && json_integer_value(d) > longest) {
            longest = json_integer_value(d);
        }
        FUZZ_CHECK(json_is_string(st));
        if (strcmp(json_string_value(st), "failed") == 0) {
            nfailed++;
            FUZZ_CHECK(json_is_string(get(n, "error")));
        }
        if (!json_is_null(v = get(n, "parent"))) {
            FUZZ_CHECK(at(ids, v) < i + 1);
        }
        FUZZ_CHECK(in->capture_data || get(n, "variables") == NULL);
        FUZZ_CHECK(!get(n, "variables")
                   || json_array_size(get(n, "variables")) <= GC_TRACE_MAX_VARIABLES);
    }
    FUZZ_CHECK(nfailed == (size_t)r->failed && json_array_size(failed) == nfailed);
    for (i = 0; i < json_array_size(failed); i++) {
        at(ids, json_array_get(failed, i));
    }
    for (i = 0; i < json_array_size(edges); i++) {
        const json_t *e = json_array_get(edges, i);
        FUZZ_CHECK(at(ids, get(e, "from")) < at(ids, get(e, "to")));
        FUZZ_CHECK(json_is_string(get(e, "kind")));
    }
    for (i = 0; i < json_array_size(path); i++) {
        at(ids, json_array_get(path, i));
        if (i) {
            FUZZ_CHECK(has_edge(edges, json_array_get(path, i - 1), json_array_get(path, i)));
        }
    }
    if (longest < 0) {
        FUZZ_CHECK(json_is_null(bottleneck) && r->bottleneck_node == NULL);
    }
    else {
        FUZZ_CHECK(json_is_object(bottleneck) && r->bottleneck_node && r->bottleneck_ms == longest);
        FUZZ_CHECK(json_integer_value(get(bottleneck, "latency_ms")) == longest);
        at(ids, get(bottleneck, "node_id"));
    }
    for (i = 0; i < json_array_size(instances); i++) {
        const json_t *inst = json_array_get(instances, i);
        FUZZ_CHECK(in->capture_context
                   || (!get(inst, "conversation_id") && !get(inst, "division_id")));
    }
    text = json_dumps(doc, JSON_COMPACT);
    FUZZ_CHECK(text != NULL);
    FUZZ_CHECK(in->capture_data || strstr(text, "\"variables\"") == NULL);
    free(text);
}

static void check_webhook(apr_pool_t *p, const json_t *result)
{
    static const char *const keys[] = { "flowId",
                                        "actionInvocationId",
                                        "status",
                                        "bottleneckNode",
                                        "bottleneckLatencyMs",
                                        "retrievalLatencyMs",
                                        "traceAccuracyRate",
                                        "timestamp" };
    json_t *w = gc_trace_webhook_body(p, "flow-1", NULL, result ? "completed" : "failed", result,
                                      gc_trace_retrieval_ms(1000, 2000), apr_time_from_sec(1));
    size_t i;

    FUZZ_CHECK(json_is_object(w) && json_object_size(w) == 8);
    for (i = 0; i < 8; i++) {
        FUZZ_CHECK(json_object_get(w, keys[i]) != NULL);
    }
    fuzz_check_dumps(w);
    json_decref(w);
}

static void build(apr_pool_t *p, const json_t *const *docs, int n, int capture,
                  apr_int64_t reported)
{
    gc_trace_input_t in;
    gc_trace_result_t *r = NULL;
    const char *reason = NULL;
    const char *ids[MAX_DOCS];
    int i;

    for (i = 0; i < n; i++) {
        ids[i] = i % 2 ? "5d3c2b1a-0f9e-4d8c-b7a6-958473625140" : NULL;
    }
    memset(&in, 0, sizeof(in));
    in.docs = docs;
    in.n_docs = n;
    in.instance_ids = capture ? ids : NULL;
    in.capture_data = capture;
    in.capture_context = capture;
    in.items_reported = reported;
    if (gc_trace_build(p, &in, &r, &reason) != 0) {
        FUZZ_CHECK(reason != NULL && fuzz_utf8(reason, strlen(reason)));
        check_webhook(p, NULL);
        return;
    }
    FUZZ_CHECK(r != NULL);
    check_result(p, &in, r);
    check_webhook(p, r->doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    json_t *docs[MAX_DOCS];
    size_t off = 0;
    int n = 0, i;

    while (n < MAX_DOCS && off < size) {
        json_error_t err;
        json_t *d = json_loadb((const char *)data + off, size - off, JSON_DISABLE_EOF_CHECK, &err);
        docs[n++] = d;
        if (!d) {
            break; /* a failed download: NULL, and the end of the list */
        }
        off += (size_t)err.position;
        while (
            off < size
            && (data[off] == ' ' || data[off] == '\n' || data[off] == '\r' || data[off] == '\t')) {
            off++;
        }
    }
    if (n > 0) {
        build(p, (const json_t *const *)docs, n, 0, -1);
        build(p, (const json_t *const *)docs, n, 1, (apr_int64_t)(size % 7 ? size % 64 : 0));
    }
    for (i = 0; i < n; i++) {
        json_decref(docs[i]);
    }
    apr_pool_destroy(p);
    return 0;
}
