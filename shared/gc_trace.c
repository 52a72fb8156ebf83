/* Flow execution traces: documents → graph → results (see gc_trace.h).
 *
 * Three passes over plain arrays in the caller's pool:
 *  1. the walk: every document's execution lists, iteratively (an explicit
 *     stack of GC_TRACE_MAX_DEPTH frames), nodes appended in pre-order with
 *     their parent, first/last child and next-sibling links;
 *  2. times: in pre-order a node's parent is already done, so the last
 *     nested item can take its caller's end; then durations and own times;
 *  3. edges, Kahn's topological order and the longest-path relaxation,
 *     then the JSON document. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>

#include "gc_time.h"
#include "gc_trace.h"

typedef struct {
    const char *id;
    const char *type;
    const char *action_id; /* or NULL */
    const char *error;     /* or NULL */
    json_t *vars;          /* capture_data: new reference handed to the document, or NULL */
    apr_time_t start, end;
    int has_start, has_end, explicit_end;
    int instance; /* 0-based */
    int parent, first_child, last_child, next;
    apr_int64_t dur_ms; /* valid when has_dur */
    int has_dur;
    apr_int64_t child_ms; /* sum of the known durations of its nested items */
} node_t;

typedef struct {
    const json_t *flow;
    const char *instance_id;
    apr_time_t start, end;
    int has_start, has_end;
    int truncated;
    int nodes;
} inst_t;

typedef struct {
    apr_pool_t *p;
    const gc_trace_input_t *in;
    node_t *nodes;
    int n, cap;
    apr_int64_t reported;
    json_t *warnings;
    int n_warnings;
    int cap_warned;
} ctx_t;

typedef struct {
    const json_t *list;
    size_t i, n;
    int parent;         /* caller's node, -1 at the top level */
    int prev;           /* last graphed item of this list, -1 none */
    const char *prefix; /* id prefix of this list's items; NULL: count only */
} frame_t;

static apr_status_t release_json(void *data)
{
    json_decref(data);
    return APR_SUCCESS;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
warn(ctx_t *c, const char *fmt, ...)
{
    va_list ap;
    const char *s;

    c->n_warnings++;
    if (c->n_warnings > GC_TRACE_MAX_WARNINGS)
        return;
    va_start(ap, fmt);
    s = apr_pvsprintf(c->p, fmt, ap);
    va_end(ap);
    json_array_append_new(c->warnings, json_string(s));
}

/* A copy of at most max bytes, cut at a UTF-8 character boundary (the input
 * came from jansson, so it is valid UTF-8 and stays so). */
static const char *cap_str(apr_pool_t *p, const char *s, size_t max)
{
    size_t len = strlen(s);

    if (len <= max)
        return apr_pstrmemdup(p, s, len);
    len = max;
    while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
        len--;
    return apr_pstrmemdup(p, s, len);
}

static json_t *jstr(const char *s)
{
    json_t *j = s ? json_string(s) : NULL;

    return j ? j : json_null();
}

static json_t *jtime(apr_pool_t *p, int has, apr_time_t t)
{
    return has ? json_string(gc_time_format(p, t)) : json_null();
}

static const char *get_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The text of an error value, or NULL when it says "no error". */
static const char *error_text(apr_pool_t *p, const json_t *e)
{
    static const char *const keys[] = { "errorMessage", "message", "errorCode", "code" };
    const char *s;
    char *dump;
    size_t i;

    if (json_is_array(e))
        e = json_array_get(e, 0); /* one level only: NULL for [] */
    if (e == NULL || json_is_null(e) || json_is_false(e))
        return NULL;
    if (json_is_true(e))
        return "error";
    if (json_is_string(e)) {
        s = json_string_value(e);
        return *s ? cap_str(p, s, GC_TRACE_MAX_ERROR) : NULL;
    }
    if (json_is_object(e)) {
        for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            s = get_str(e, keys[i]);
            if (s && *s)
                return cap_str(p, s, GC_TRACE_MAX_ERROR);
        }
        if (json_object_size(e) == 0)
            return NULL;
    }
    dump = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
    if (dump == NULL)
        return "error";
    s = cap_str(p, dump, GC_TRACE_MAX_ERROR);
    free(dump);
    return s;
}

static int status_failed(const char *s)
{
    return s
           && (strcasecmp(s, "failed") == 0 || strcasecmp(s, "failure") == 0
               || strcasecmp(s, "error") == 0);
}

/* The item's type and fields object, or NULL with *why. */
static const json_t *item_fields(const json_t *item, const char **type, const char **why)
{
    const char *key;
    const json_t *v;

    if (!json_is_object(item)) {
        *why = "not an object";
        return NULL;
    }
    if (json_is_string(json_object_get(item, "objectType"))) {
        *type = get_str(item, "objectType");
        return item;
    }
    if (json_object_size(item) == 0) {
        *why = "an empty object (no type)";
        return NULL;
    }
    if (json_object_size(item) > 1) {
        *why = "several keys (one type expected)";
        return NULL;
    }
    json_object_foreach((json_t *)item, key, v)
    {
        if (!json_is_object(v)) {
            *why = "its type's value is not an object";
            return NULL;
        }
        *type = key;
        return v;
    }
    *why = "no type";
    return NULL;
}

/* A timestamp member: 1 parsed, 0 absent, -1 present but bad. */
static int get_time(const json_t *o, const char *key, apr_time_t *t)
{
    const json_t *v = json_object_get(o, key);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v) || gc_time_parse(json_string_value(v), t) != 0)
        return -1;
    return 1;
}

static json_t *variables(ctx_t *c, const char *id, const json_t *fields)
{
    static const char *const keys[] = { "variables", "outputVariables" };
    json_t *out = NULL;
    size_t i, j, n, cut = 0;

    for (i = 0; i < 2; i++) {
        const json_t *a = json_object_get(fields, keys[i]);

        if (a == NULL || json_is_null(a))
            continue;
        if (out == NULL)
            out = json_array();
        if (!json_is_array(a)) {
            warn(c, "item %s: %s is not a list (not kept)", id, keys[i]);
            continue;
        }
        n = json_array_size(a);
        for (j = 0; j < n; j++) {
            if (json_array_size(out) >= GC_TRACE_MAX_VARIABLES) {
                cut += n - j;
                break;
            }
            json_array_append_new(out, json_deep_copy(json_array_get(a, j)));
        }
    }
    if (cut)
        warn(c, "item %s: %lu variables beyond %d not kept", id, (unsigned long)cut,
             GC_TRACE_MAX_VARIABLES);
    return out;
}

static int add_node(ctx_t *c, frame_t *f, size_t idx, int instance, const char *type,
                    const json_t *fields)
{
    node_t *nd;
    const char *s;
    const json_t *errv;
    int k, r;

    if (c->n == c->cap) {
        int ncap = c->cap ? c->cap * 2 : 64;
        node_t *nn;

        if (ncap > GC_TRACE_MAX_NODES)
            ncap = GC_TRACE_MAX_NODES;
        nn = apr_palloc(c->p, sizeof(*nn) * (apr_size_t)ncap);
        if (c->n)
            memcpy(nn, c->nodes, sizeof(*nn) * (apr_size_t)c->n);
        c->nodes = nn;
        c->cap = ncap;
    }
    k = c->n++;
    nd = &c->nodes[k];
    memset(nd, 0, sizeof(*nd));
    nd->id = apr_psprintf(c->p, "%s%lu", f->prefix, (unsigned long)(idx + 1));
    nd->type = cap_str(c->p, type, GC_TRACE_MAX_STRING);
    nd->instance = instance;
    nd->parent = f->parent;
    nd->first_child = nd->last_child = nd->next = -1;

    s = get_str(fields, "actionId");
    if (s == NULL)
        s = get_str(fields, "objectId");
    nd->action_id = s ? cap_str(c->p, s, GC_TRACE_MAX_STRING) : NULL;

    r = get_time(fields, "dateTime", &nd->start);
    if (r == 0)
        r = get_time(fields, "startDateTime", &nd->start);
    if (r == 1)
        nd->has_start = 1;
    else
        warn(c, "item %s: %s start time (duration unknown)", nd->id, r == 0 ? "no" : "a bad");
    r = get_time(fields, "endDateTime", &nd->end);
    if (r == 1)
        nd->has_end = nd->explicit_end = 1;
    else if (r < 0)
        warn(c, "item %s: a bad endDateTime (ignored)", nd->id);

    errv = json_object_get(fields, "error");
    nd->error = error_text(c->p, errv);
    if (nd->error == NULL)
        nd->error = error_text(c->p, json_object_get(fields, "errors"));
    if (nd->error == NULL && status_failed(get_str(fields, "status")))
        nd->error = cap_str(c->p, apr_pstrcat(c->p, "status ", get_str(fields, "status"), NULL),
                            GC_TRACE_MAX_ERROR);
    if (c->in->capture_data)
        nd->vars = variables(c, nd->id, fields);

    if (f->prev >= 0)
        c->nodes[f->prev].next = k;
    f->prev = k;
    if (f->parent >= 0) {
        node_t *pa = &c->nodes[f->parent];

        if (pa->first_child < 0)
            pa->first_child = k;
        pa->last_child = k;
    }
    return k;
}

/* Pass 1 for one document's execution list. */
static void walk(ctx_t *c, int instance, const json_t *exec)
{
    frame_t stack[GC_TRACE_MAX_DEPTH];
    int depth = 1;

    stack[0].list = exec;
    stack[0].i = 0;
    stack[0].n = json_array_size(exec);
    stack[0].parent = -1;
    stack[0].prev = -1;
    stack[0].prefix = apr_psprintf(c->p, "%d:", instance + 1);
    while (depth > 0) {
        frame_t *f = &stack[depth - 1];
        const json_t *item, *fields, *nested;
        const char *type = NULL, *why = NULL;
        size_t idx;
        int node = -1;

        if (f->i >= f->n) {
            depth--;
            continue;
        }
        idx = f->i++;
        item = json_array_get(f->list, idx);
        c->reported++;
        fields = item_fields(item, &type, &why);
        if (fields == NULL) {
            if (f->prefix)
                warn(c, "item %s%lu: %s (skipped)", f->prefix, (unsigned long)(idx + 1), why);
            continue;
        }
        if (f->prefix) {
            if (c->n < GC_TRACE_MAX_NODES)
                node = add_node(c, f, idx, instance, type, fields);
            else if (!c->cap_warned) {
                c->cap_warned = 1;
                warn(c, "more than %d nodes: items from %s%lu on are not graphed",
                     GC_TRACE_MAX_NODES, f->prefix, (unsigned long)(idx + 1));
            }
        }
        nested = json_object_get(fields, "execution");
        if (nested == NULL || json_is_null(nested))
            continue;
        if (!json_is_array(nested)) {
            if (node >= 0)
                warn(c, "item %s: execution is not a list (ignored)", c->nodes[node].id);
            continue;
        }
        if (json_array_size(nested) == 0)
            continue;
        if (depth == GC_TRACE_MAX_DEPTH) {
            c->reported += (apr_int64_t)json_array_size(nested);
            if (node >= 0)
                warn(c, "item %s: items nested deeper than %d lists are not walked",
                     c->nodes[node].id, GC_TRACE_MAX_DEPTH);
            continue;
        }
        stack[depth].list = nested;
        stack[depth].i = 0;
        stack[depth].n = json_array_size(nested);
        stack[depth].parent = node;
        stack[depth].prev = -1;
        stack[depth].prefix = node >= 0 ? apr_pstrcat(c->p, c->nodes[node].id, ".", NULL) : NULL;
        depth++;
    }
}

/* The flow object of a document, or NULL with *why. */
static const json_t *doc_flow(const json_t *doc, const json_t **exec, const char **why)
{
    const json_t *flow;

    if (doc == NULL) {
        *why = "no document (not downloaded)";
        return NULL;
    }
    if (!json_is_object(doc)) {
        *why = "the document is not an object";
        return NULL;
    }
    flow = json_object_get(doc, "flow");
    if (!json_is_object(flow))
        flow = doc;
    *exec = json_object_get(flow, "execution");
    if (*exec == NULL) {
        *why = "the document has no execution list";
        return NULL;
    }
    if (!json_is_array(*exec)) {
        *why = "execution is not a list";
        return NULL;
    }
    return flow;
}

/* Pass 2: ends, durations, own times. */
static void times(ctx_t *c, const inst_t *inst)
{
    int v;

    for (v = 0; v < c->n; v++) {
        node_t *nd = &c->nodes[v];

        if (nd->explicit_end) {
            /* kept */
        }
        else if (nd->next >= 0) {
            nd->has_end = c->nodes[nd->next].has_start;
            nd->end = c->nodes[nd->next].start;
        }
        else if (nd->parent >= 0) {
            nd->has_end = c->nodes[nd->parent].has_end;
            nd->end = c->nodes[nd->parent].end;
        }
        else {
            nd->has_end = inst[nd->instance].has_end;
            nd->end = inst[nd->instance].end;
        }
        if (nd->has_start && nd->has_end) {
            if (nd->end < nd->start) {
                warn(c, "item %s: ends before it starts (timestamps go backwards; end dropped)",
                     nd->id);
                nd->has_end = 0;
            }
            else {
                nd->has_dur = 1;
                nd->dur_ms = (nd->end - nd->start) / 1000;
            }
        }
        if (nd->has_dur && nd->parent >= 0)
            c->nodes[nd->parent].child_ms += nd->dur_ms;
    }
}

static apr_int64_t own_ms(const node_t *nd)
{
    if (!nd->has_dur || nd->dur_ms <= nd->child_ms)
        return 0;
    return nd->dur_ms - nd->child_ms;
}

/* Where the execution resumes after v, the last item of a nested list. */
static int resume_of(const ctx_t *c, int v)
{
    int u = c->nodes[v].parent;

    while (u >= 0 && c->nodes[u].next < 0)
        u = c->nodes[u].parent;
    return u >= 0 ? c->nodes[u].next : -1;
}

/* Pass 3: edges (into the document) and the critical path. */
static json_t *edges_and_path(ctx_t *c, json_t *edges, apr_int64_t *path_ms)
{
    int n = c->n, v, head = 0, tail = 0, done = 0, best = -1;
    int(*out)[2] = apr_pcalloc(c->p, sizeof(*out) * (apr_size_t)(n ? n : 1));
    int *indeg = apr_pcalloc(c->p, sizeof(int) * (apr_size_t)(n ? n : 1));
    int *queue = apr_palloc(c->p, sizeof(int) * (apr_size_t)(n ? n : 1));
    int *len = apr_palloc(c->p, sizeof(int) * (apr_size_t)(n ? n : 1));
    int *pred = apr_palloc(c->p, sizeof(int) * (apr_size_t)(n ? n : 1));
    apr_int64_t *dist = apr_palloc(c->p, sizeof(apr_int64_t) * (apr_size_t)(n ? n : 1));
    json_t *path = json_array();

    for (v = 0; v < n; v++) {
        const node_t *nd = &c->nodes[v];
        int to[2] = { -1, -1 };
        const char *kind[2] = { "call", NULL };
        int k;

        to[0] = nd->first_child;
        if (nd->next >= 0) {
            to[1] = nd->next;
            kind[1] = "sequence";
        }
        else if (nd->parent >= 0) {
            to[1] = resume_of(c, v);
            kind[1] = "return";
        }
        for (k = 0; k < 2; k++) {
            out[v][k] = to[k];
            if (to[k] < 0)
                continue;
            indeg[to[k]]++;
            json_array_append_new(edges, json_pack("{s:s,s:s,s:s}", "from", nd->id, "to",
                                                   c->nodes[to[k]].id, "kind", kind[k]));
        }
        dist[v] = own_ms(nd);
        len[v] = 1;
        pred[v] = -1;
    }
    for (v = 0; v < n; v++)
        if (indeg[v] == 0)
            queue[tail++] = v;
    while (head < tail) {
        int u = queue[head++], k;

        done++;
        for (k = 0; k < 2; k++) {
            int w = out[u][k];
            apr_int64_t d;

            if (w < 0)
                continue;
            d = dist[u] + own_ms(&c->nodes[w]);
            if (d > dist[w] || (d == dist[w] && len[u] + 1 > len[w])) {
                dist[w] = d;
                len[w] = len[u] + 1;
                pred[w] = u;
            }
            if (--indeg[w] == 0)
                queue[tail++] = w;
        }
    }
    *path_ms = 0;
    if (done < n) {
        warn(c, "the graph has a cycle: no critical path");
        return path;
    }
    for (v = 0; v < n; v++)
        if (best < 0 || dist[v] > dist[best] || (dist[v] == dist[best] && len[v] > len[best]))
            best = v;
    if (best >= 0) {
        int k = len[best];

        *path_ms = dist[best];
        /* queue is free again: the path backwards, then forwards */
        for (v = best; v >= 0 && k > 0; v = pred[v])
            queue[--k] = v;
        for (k = 0; k < len[best]; k++)
            json_array_append_new(path, json_string(c->nodes[queue[k]].id));
    }
    return path;
}

int gc_trace_build(apr_pool_t *p, const gc_trace_input_t *in, gc_trace_result_t **out,
                   const char **reason)
{
    ctx_t c;
    inst_t *inst;
    gc_trace_result_t *res;
    json_t *doc, *nodes, *edges, *failed, *insts, *path;
    const char *first_why = NULL;
    int i, v, usable = 0, bneck = -1;
    double rate;

    *out = NULL;
    if (in == NULL || in->n_docs < 1 || in->docs == NULL) {
        *reason = "no execution data documents";
        return -1;
    }
    if (in->n_docs > GC_TRACE_MAX_INSTANCES) {
        *reason = apr_psprintf(p, "%d documents: at most %d instances are traced", in->n_docs,
                               GC_TRACE_MAX_INSTANCES);
        return -1;
    }
    memset(&c, 0, sizeof(c));
    c.p = p;
    c.in = in;
    c.warnings = json_array();
    apr_pool_cleanup_register(p, c.warnings, release_json, apr_pool_cleanup_null);
    inst = apr_pcalloc(p, sizeof(*inst) * (apr_size_t)in->n_docs);

    for (i = 0; i < in->n_docs; i++) {
        const json_t *exec = NULL, *trunc;
        const char *why = NULL;
        int before = c.n, r, end_r;

        inst[i].flow = doc_flow(in->docs[i], &exec, &why);
        inst[i].instance_id = in->instance_ids ? in->instance_ids[i] : NULL;
        if (inst[i].flow == NULL) {
            if (first_why == NULL)
                first_why = apr_psprintf(p, "instance %d: %s", i + 1, why);
            warn(&c, "instance %d: %s (skipped)", i + 1, why);
            continue;
        }
        usable++;
        end_r = get_time(inst[i].flow, "endDateTime", &inst[i].end);
        inst[i].has_end = end_r == 1;
        if (end_r < 0)
            warn(&c, "instance %d: a bad endDateTime", i + 1);
        r = get_time(inst[i].flow, "startDateTime", &inst[i].start);
        inst[i].has_start = r == 1;
        if (r < 0)
            warn(&c, "instance %d: a bad startDateTime", i + 1);
        trunc = json_object_get(inst[i].flow, "executionItemsTruncated");
        inst[i].truncated = json_is_true(trunc);
        if (inst[i].truncated)
            warn(&c, "instance %d: executionItemsTruncated: the execution list is incomplete",
                 i + 1);
        if (json_array_size(exec) == 0)
            warn(&c, "instance %d: no execution items", i + 1);
        walk(&c, i, exec);
        inst[i].nodes = c.n - before;
        if (inst[i].nodes > 0 && end_r == 0)
            warn(&c, "instance %d: no endDateTime (the last item's duration is unknown)", i + 1);
        if (!inst[i].has_start && inst[i].nodes > 0 && c.nodes[before].has_start) {
            inst[i].has_start = 1;
            inst[i].start = c.nodes[before].start;
        }
    }
    if (usable == 0) {
        *reason = first_why;
        return -1;
    }
    times(&c, inst);

    doc = json_object();
    apr_pool_cleanup_register(p, doc, release_json, apr_pool_cleanup_null);
    res = apr_pcalloc(p, sizeof(*res));
    res->doc = doc;
    nodes = json_array();
    edges = json_array();
    failed = json_array();
    for (v = 0; v < c.n; v++) {
        node_t *nd = &c.nodes[v];
        json_t *jn = json_object();

        json_object_set_new(jn, "id", json_string(nd->id));
        json_object_set_new(jn, "type", jstr(nd->type));
        json_object_set_new(jn, "action_id", jstr(nd->action_id));
        json_object_set_new(jn, "start", jtime(p, nd->has_start, nd->start));
        json_object_set_new(jn, "end", jtime(p, nd->has_end, nd->end));
        json_object_set_new(jn, "duration_ms",
                            nd->has_dur ? json_integer((json_int_t)nd->dur_ms) : json_null());
        json_object_set_new(jn, "status", json_string(nd->error ? "failed" : "ok"));
        json_object_set_new(jn, "error", jstr(nd->error));
        json_object_set_new(jn, "parent",
                            nd->parent >= 0 ? json_string(c.nodes[nd->parent].id) : json_null());
        if (nd->vars) {
            json_object_set_new(jn, "variables", nd->vars);
            nd->vars = NULL;
        }
        json_array_append_new(nodes, jn);
        if (nd->error) {
            res->failed++;
            json_array_append_new(failed, json_string(nd->id));
        }
        if (nd->has_dur && (bneck < 0 || nd->dur_ms > c.nodes[bneck].dur_ms))
            bneck = v;
    }
    path = edges_and_path(&c, edges, &res->critical_path_ms);
    json_object_set_new(doc, "graph", json_pack("{s:o,s:o}", "nodes", nodes, "edges", edges));
    if (bneck >= 0) {
        res->bottleneck_node = c.nodes[bneck].id;
        res->bottleneck_ms = c.nodes[bneck].dur_ms;
        json_object_set_new(doc, "bottleneck",
                            json_pack("{s:s,s:I}", "node_id", res->bottleneck_node, "latency_ms",
                                      (json_int_t)res->bottleneck_ms));
    }
    else {
        json_object_set_new(doc, "bottleneck", json_null());
    }
    json_object_set_new(doc, "critical_path", path);
    json_object_set_new(doc, "critical_path_ms", json_integer((json_int_t)res->critical_path_ms));
    json_object_set_new(doc, "failed_nodes", failed);

    res->nodes = c.n;
    res->items_parsed = c.n;
    res->items_reported = in->items_reported >= 0 ? in->items_reported : c.reported;
    if (res->items_reported == 0 || res->items_parsed >= res->items_reported) {
        if (res->items_parsed > res->items_reported)
            warn(&c,
                 "%" APR_INT64_T_FMT " items parsed, more than the %" APR_INT64_T_FMT
                 " reported (rate 1)",
                 res->items_parsed, res->items_reported);
        rate = 1.0;
    }
    else {
        rate = (double)res->items_parsed / (double)res->items_reported;
    }
    res->accuracy_rate = rate;
    json_object_set_new(doc, "accuracy_rate", json_real(rate));
    json_object_set_new(doc, "items_parsed", json_integer((json_int_t)res->items_parsed));
    json_object_set_new(doc, "items_reported", json_integer((json_int_t)res->items_reported));

    insts = json_array();
    for (i = 0; i < in->n_docs; i++) {
        json_t *ji = json_object();

        json_object_set_new(ji, "index", json_integer(i + 1));
        json_object_set_new(ji, "instance_id", jstr(inst[i].instance_id));
        json_object_set_new(ji, "nodes", json_integer(inst[i].nodes));
        json_object_set_new(ji, "start", jtime(p, inst[i].has_start, inst[i].start));
        json_object_set_new(ji, "end", jtime(p, inst[i].has_end, inst[i].end));
        json_object_set_new(ji, "truncated", json_boolean(inst[i].truncated));
        if (in->capture_context) {
            const char *conv = inst[i].flow ? get_str(inst[i].flow, "conversationId") : NULL;
            const char *div = NULL;

            if (inst[i].flow) {
                div = get_str(json_object_get(inst[i].flow, "division"), "id");
                if (div == NULL)
                    div = get_str(inst[i].flow, "divisionId");
            }
            json_object_set_new(ji, "conversation_id",
                                conv ? json_string(cap_str(p, conv, GC_TRACE_MAX_STRING))
                                     : json_null());
            json_object_set_new(ji, "division_id",
                                div ? json_string(cap_str(p, div, GC_TRACE_MAX_STRING))
                                    : json_null());
        }
        json_array_append_new(insts, ji);
    }
    json_object_set_new(doc, "instances", insts);

    if (c.n_warnings > GC_TRACE_MAX_WARNINGS)
        json_array_append_new(c.warnings,
                              json_string(apr_psprintf(p, "… and %d more warnings",
                                                       c.n_warnings - GC_TRACE_MAX_WARNINGS)));
    json_object_set(doc, "warnings", c.warnings);
    res->warnings = c.n_warnings;
    *out = res;
    return 0;
}

apr_int64_t gc_trace_retrieval_ms(apr_time_t submitted, apr_time_t parsed)
{
    return parsed > submitted ? (apr_int64_t)((parsed - submitted) / 1000) : 0;
}

json_t *gc_trace_webhook_body(apr_pool_t *p, const char *flow_id, const char *action_invocation_id,
                              const char *status, const json_t *result,
                              apr_int64_t retrieval_latency_ms, apr_time_t timestamp)
{
    const json_t *b = json_object_get(result, "bottleneck");
    const json_t *node = json_object_get(b, "node_id");
    const json_t *rate = json_object_get(result, "accuracy_rate");
    json_t *o = json_object();

    json_object_set_new(o, "flowId", jstr(flow_id));
    json_object_set_new(o, "actionInvocationId", jstr(action_invocation_id));
    json_object_set_new(o, "status", jstr(status));
    json_object_set_new(o, "bottleneckNode",
                        json_is_string(node) ? json_string(json_string_value(node)) : json_null());
    json_object_set_new(o, "bottleneckLatencyMs",
                        json_integer(json_is_integer(json_object_get(b, "latency_ms"))
                                         ? json_integer_value(json_object_get(b, "latency_ms"))
                                         : 0));
    json_object_set_new(o, "retrievalLatencyMs", json_integer((json_int_t)retrieval_latency_ms));
    json_object_set_new(o, "traceAccuracyRate",
                        json_real(json_is_number(rate) ? json_number_value(rate) : 0.0));
    json_object_set_new(o, "timestamp", json_string(gc_time_format(p, timestamp)));
    return o;
}
