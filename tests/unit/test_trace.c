/* Flow execution traces (gc_trace.h): documents → graph → bottleneck,
 * critical path, failed nodes, accuracy rate; malformed and huge documents
 * (rejected or degraded with their reason), the caps, the capture flags and
 * the webhook body.
 *
 * Test documents are written with ' for " and @SS.mmm for the timestamp
 * 2023-10-12T09:09:SS.mmmZ (see doc()). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "gc_time.h"
#include "gc_trace.h"
#include "unit.h"

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static apr_status_t release_json(void *data)
{
    json_decref(data);
    return APR_SUCCESS;
}

/* A new reference, released with the test's pool. */
static json_t *own(json_t *j)
{
    apr_pool_cleanup_register(pool, j, release_json, apr_pool_cleanup_null);
    return j;
}

/* The JSON text of the test notation: ' → ", @SS.mmm → the timestamp. */
static const char *expand(const char *s)
{
    char *out = apr_palloc(pool, strlen(s) * 8 + 1), *o = out;

    for (; *s; s++) {
        if (*s == '\'')
            *o++ = '"';
        else if (*s == '@') {
            memcpy(o, "2023-10-12T09:09:", 17);
            o += 17;
            memcpy(o, s + 1, 6);
            o += 6;
            *o++ = 'Z';
            s += 6;
        }
        else
            *o++ = *s;
    }
    *o = '\0';
    return out;
}

/* A document in the test notation, released with the test's pool. */
static json_t *doc(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(expand(text), 0, &e);

    ck_assert_msg(j != NULL, "bad test JSON: %s (%s)", e.text, expand(text));
    return own(j);
}

static char *dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    char *out = apr_pstrdup(pool, s ? s : "(null)");

    free(s);
    return out;
}

/* Compare a dump with an expectation in the test notation. */
#define ck_json(j, expected) ck_assert_str_eq(dump(j), expand(expected))

/* Run the engine over n documents (test notation; NULL: not downloaded). */
static gc_trace_result_t *run_n(const char *const *texts, int n, int data, int context,
                                apr_int64_t reported)
{
    const json_t **docs = apr_pcalloc(pool, sizeof(*docs) * (apr_size_t)n);
    gc_trace_input_t in = { 0 };
    gc_trace_result_t *r = NULL;
    const char *why = NULL;
    int i;

    for (i = 0; i < n; i++)
        docs[i] = texts[i] ? doc(texts[i]) : NULL;
    in.docs = docs;
    in.n_docs = n;
    in.capture_data = data;
    in.capture_context = context;
    in.items_reported = reported;
    ck_assert_msg(gc_trace_build(pool, &in, &r, &why) == 0, "rejected: %s", why);
    ck_assert_ptr_nonnull(r);
    return r;
}

static gc_trace_result_t *run(const char *text)
{
    return run_n(&text, 1, 0, 0, -1);
}

/* Run the engine over one built document. */
static gc_trace_result_t *run_json(const json_t *d, int data)
{
    gc_trace_input_t in = { 0 };
    gc_trace_result_t *r = NULL;
    const char *why = NULL;

    in.docs = &d;
    in.n_docs = 1;
    in.capture_data = data;
    in.items_reported = -1;
    ck_assert_msg(gc_trace_build(pool, &in, &r, &why) == 0, "rejected: %s", why);
    return r;
}

/* The rejection reason of one document. */
static const char *reject(const json_t *d)
{
    gc_trace_input_t in = { 0 };
    gc_trace_result_t *r = NULL;
    const char *why = NULL;

    in.docs = &d;
    in.n_docs = 1;
    in.items_reported = -1;
    ck_assert_int_eq(gc_trace_build(pool, &in, &r, &why), -1);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(why);
    return why;
}

static const json_t *node(const gc_trace_result_t *r, const char *id)
{
    const json_t *nodes = json_object_get(json_object_get(r->doc, "graph"), "nodes");
    size_t i;

    for (i = 0; i < json_array_size(nodes); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(nodes, i), "id")), id) == 0)
            return json_array_get(nodes, i);
    ck_abort_msg("no node %s", id);
    return NULL;
}

static const json_t *field(const gc_trace_result_t *r, const char *id, const char *key)
{
    return json_object_get(node(r, id), key);
}

static const json_t *member(const gc_trace_result_t *r, const char *key)
{
    return json_object_get(r->doc, key);
}

static const json_t *instance(const gc_trace_result_t *r, size_t i, const char *key)
{
    return json_object_get(json_array_get(member(r, "instances"), i), key);
}

static const json_t *edges(const gc_trace_result_t *r)
{
    return json_object_get(member(r, "graph"), "edges");
}

static json_int_t dur(const gc_trace_result_t *r, const char *id)
{
    const json_t *d = field(r, id, "duration_ms");

    return json_is_null(d) ? -1 : json_integer_value(d);
}

/* Whether some warning contains s. */
static int warned(const gc_trace_result_t *r, const char *s)
{
    const json_t *w = member(r, "warnings");
    size_t i;

    for (i = 0; i < json_array_size(w); i++)
        if (strstr(json_string_value(json_array_get(w, i)), s))
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ sequences */

START_TEST(sequence)
{
    gc_trace_result_t *r =
        run("{'flow':{'conversationId':'c-1','division':{'id':'d-1'},'endDateTime':'@10.000',"
            "'execution':["
            "{'startedFlow':{'dateTime':'@00.000','languageTag':'en-us','variables':[]}},"
            "{'actionAskForIntent':{'actionId':'a-1','dateTime':'@01.000','executionId':'e-1',"
            "  'outputPathId':'p','outputVariables':[],'trackingId':11}},"
            "{'actionDecision':{'actionId':'a-2','dateTime':'@03.500'}},"
            "{'actionDisconnect':{'actionId':'a-3','dateTime':'@04.000'}}]}}");

    ck_assert_int_eq(r->nodes, 4);
    ck_json(node(r, "1:2"),
            "{'id':'1:2','type':'actionAskForIntent','action_id':'a-1','start':'@01.000',"
            "'end':'@03.500','duration_ms':2500,'status':'ok','error':null,'parent':null}");
    ck_json(field(r, "1:1", "action_id"), "null");
    ck_assert_int_eq(dur(r, "1:1"), 1000);
    ck_assert_int_eq(dur(r, "1:3"), 500);
    ck_assert_int_eq(dur(r, "1:4"), 6000); /* until the flow's end */
    ck_json(edges(r), "[{'from':'1:1','to':'1:2','kind':'sequence'},"
                      "{'from':'1:2','to':'1:3','kind':'sequence'},"
                      "{'from':'1:3','to':'1:4','kind':'sequence'}]");
    ck_json(member(r, "bottleneck"), "{'node_id':'1:4','latency_ms':6000}");
    ck_json(member(r, "critical_path"), "['1:1','1:2','1:3','1:4']");
    ck_assert_int_eq(r->critical_path_ms, 10000);
    ck_json(member(r, "critical_path_ms"), "10000");
    ck_json(member(r, "failed_nodes"), "[]");
    ck_json(member(r, "accuracy_rate"), "1.0");
    ck_json(member(r, "warnings"), "[]");
    ck_json(member(r, "instances"), "[{'index':1,'instance_id':null,'nodes':4,'start':'@00.000',"
                                    "'end':'@10.000','truncated':false}]");
    /* no capture flags: neither variables nor context anywhere */
    ck_assert_ptr_null(strstr(dump(r->doc), "variables"));
    ck_assert_ptr_null(strstr(dump(r->doc), "c-1"));
    ck_assert_ptr_null(strstr(dump(r->doc), "d-1"));
}
END_TEST

START_TEST(unwrapped_and_flat_items)
{
    /* the flow object without its wrapper; the real-time topic's flat items */
    const char *text = "{'conversationId':'c-9','divisionId':'d-9','startDateTime':'@00.000',"
                       "'endDateTime':'@05.000','execution':["
                       "{'objectType':'actionCallData','objectId':'o-1','outputPathId':'x',"
                       "  'startDateTime':'@00.500'},"
                       "{'objectType':'actionTransfer','objectId':'o-2','startDateTime':'@02.000',"
                       "  'error':null}]}";
    gc_trace_result_t *r = run_n(&text, 1, 0, 1, -1);

    ck_assert_int_eq(r->nodes, 2);
    ck_json(field(r, "1:1", "type"), "'actionCallData'");
    ck_json(field(r, "1:1", "action_id"), "'o-1'");
    ck_assert_int_eq(dur(r, "1:1"), 1500);
    ck_assert_int_eq(dur(r, "1:2"), 3000);
    ck_json(member(r, "failed_nodes"), "[]");
    ck_json(member(r, "instances"),
            "[{'index':1,'instance_id':null,'nodes':2,'start':'@00.000','end':'@05.000',"
            "'truncated':false,'conversation_id':'c-9','division_id':'d-9'}]");
}
END_TEST

START_TEST(explicit_end)
{
    gc_trace_result_t *r = run("{'flow':{'endDateTime':'@10.000','execution':["
                               "{'a':{'dateTime':'@00.000','endDateTime':'@00.250'}},"
                               "{'b':{'dateTime':'@01.000'}}]}}");

    ck_assert_int_eq(dur(r, "1:1"), 250);
    ck_assert_int_eq(dur(r, "1:2"), 9000);
}
END_TEST

/* ------------------------------------------------------------------ nesting */

START_TEST(nested)
{
    gc_trace_result_t *r = run("{'flow':{'endDateTime':'@10.000','execution':["
                               "{'startedFlow':{'dateTime':'@00.000'}},"
                               "{'actionCallTask':{'actionId':'task','dateTime':'@01.000',"
                               "  'execution':["
                               "  {'actionSetData':{'actionId':'s','dateTime':'@02.000'}},"
                               "  {'actionCallData':{'actionId':'d','dateTime':'@04.000'}}]}},"
                               "{'actionDisconnect':{'dateTime':'@07.000'}}]}}");

    ck_assert_int_eq(r->nodes, 5);
    ck_assert_int_eq(dur(r, "1:2"), 6000);   /* the caller includes what it called */
    ck_assert_int_eq(dur(r, "1:2.1"), 2000); /* until its next sibling */
    ck_assert_int_eq(dur(r, "1:2.2"), 3000); /* the last one: until the caller's end */
    ck_json(field(r, "1:2.2", "parent"), "'1:2'");
    ck_json(field(r, "1:2.2", "end"), "'@07.000'");
    ck_json(field(r, "1:2", "parent"), "null");
    ck_json(edges(r), "[{'from':'1:1','to':'1:2','kind':'sequence'},"
                      "{'from':'1:2','to':'1:2.1','kind':'call'},"
                      "{'from':'1:2','to':'1:3','kind':'sequence'},"
                      "{'from':'1:2.1','to':'1:2.2','kind':'sequence'},"
                      "{'from':'1:2.2','to':'1:3','kind':'return'}]");
    /* the path goes through the nested items; its weight is wall-clock time */
    ck_json(member(r, "critical_path"), "['1:1','1:2','1:2.1','1:2.2','1:3']");
    ck_assert_int_eq(r->critical_path_ms, 10000);
    ck_json(member(r, "bottleneck"), "{'node_id':'1:2','latency_ms':6000}");
}
END_TEST

START_TEST(nested_last_climbs)
{
    /* a nested list whose caller is last returns to the outer next sibling;
     * one at the very end returns nowhere */
    gc_trace_result_t *r = run("{'flow':{'endDateTime':'@20.000','execution':["
                               "{'a':{'dateTime':'@00.000','execution':["
                               "  {'b':{'dateTime':'@01.000','execution':["
                               "    {'c':{'dateTime':'@02.000'}}]}}]}},"
                               "{'d':{'dateTime':'@05.000','execution':["
                               "  {'e':{'dateTime':'@06.000'}}]}}]}}");

    ck_json(edges(r), "[{'from':'1:1','to':'1:1.1','kind':'call'},"
                      "{'from':'1:1','to':'1:2','kind':'sequence'},"
                      "{'from':'1:1.1','to':'1:1.1.1','kind':'call'},"
                      "{'from':'1:1.1','to':'1:2','kind':'return'},"
                      "{'from':'1:1.1.1','to':'1:2','kind':'return'},"
                      "{'from':'1:2','to':'1:2.1','kind':'call'}]");
    ck_assert_int_eq(dur(r, "1:1.1.1"), 3000); /* c ends with b, which ends with a: at d */
    ck_assert_int_eq(dur(r, "1:2.1"), 14000);  /* e ends with d, at the flow's end */
    ck_json(member(r, "critical_path"), "['1:1','1:1.1','1:1.1.1','1:2','1:2.1']");
    ck_assert_int_eq(r->critical_path_ms, 20000);
}
END_TEST

/* ------------------------------------------------------------------ results */

START_TEST(bottleneck_slowest_action)
{
    gc_trace_result_t *r = run("{'flow':{'endDateTime':'@10.000','execution':["
                               "{'startedFlow':{'dateTime':'@00.000'}},"
                               "{'actionSetData':{'actionId':'s','dateTime':'@00.100'}},"
                               "{'actionCallData':{'actionId':'slow','dateTime':'@00.300'}},"
                               "{'actionDecision':{'actionId':'x','dateTime':'@08.300'}},"
                               "{'actionTransferToAcd':{'actionId':'y','dateTime':'@09.000'}},"
                               "{'endFlow':{'dateTime':'@09.500'}}]}}");

    ck_json(member(r, "bottleneck"), "{'node_id':'1:3','latency_ms':8000}");
    ck_assert_str_eq(r->bottleneck_node, "1:3");
    ck_assert_int_eq(r->bottleneck_ms, 8000);
    ck_json(field(r, "1:3", "action_id"), "'slow'");

    /* ties: the first in execution order */
    r = run("{'flow':{'endDateTime':'@04.000','execution':["
            "{'a':{'dateTime':'@00.000'}},{'b':{'dateTime':'@02.000'}}]}}");
    ck_json(member(r, "bottleneck"), "{'node_id':'1:1','latency_ms':2000}");
}
END_TEST

START_TEST(parallel_instances)
{
    const json_t *d[3];
    const char *ids[] = { "inst-a", NULL, "inst-c" };
    gc_trace_input_t in = { 0 };
    gc_trace_result_t *r = NULL;
    const char *why = NULL;

    d[0] = doc("{'flow':{'endDateTime':'@03.000','execution':["
               "{'a':{'dateTime':'@00.000'}},{'b':{'dateTime':'@01.000'}}]}}");
    d[1] = doc("{'flow':{'endDateTime':'@09.000','execution':["
               "{'a':{'dateTime':'@00.000'}},{'b':{'dateTime':'@05.000'}},"
               "{'c':{'dateTime':'@06.000'}}]}}");
    d[2] = doc("{'flow':{'endDateTime':'@05.000','execution':[{'a':{'dateTime':'@00.000'}}]}}");
    in.docs = d;
    in.n_docs = 3;
    in.instance_ids = ids;
    in.items_reported = -1;
    ck_assert_int_eq(gc_trace_build(pool, &in, &r, &why), 0);
    ck_assert_int_eq(r->nodes, 6);
    /* the branches are not connected: the longest one is the critical path */
    ck_json(edges(r), "[{'from':'1:1','to':'1:2','kind':'sequence'},"
                      "{'from':'2:1','to':'2:2','kind':'sequence'},"
                      "{'from':'2:2','to':'2:3','kind':'sequence'}]");
    ck_json(member(r, "critical_path"), "['2:1','2:2','2:3']");
    ck_assert_int_eq(r->critical_path_ms, 9000);
    ck_json(member(r, "bottleneck"), "{'node_id':'2:1','latency_ms':5000}");
    ck_json(instance(r, 0, "instance_id"), "'inst-a'");
    ck_json(instance(r, 1, "instance_id"), "null");
    ck_json(instance(r, 2, "nodes"), "1");
}
END_TEST

START_TEST(failed_actions)
{
    gc_trace_result_t *r =
        run("{'flow':{'endDateTime':'@10.000','execution':["
            "{'a':{'dateTime':'@00.000','error':'Data action timed out'}},"
            "{'b':{'dateTime':'@01.000','error':{'errorCode':'E42','errorMessage':'bad gateway'}}},"
            "{'c':{'dateTime':'@02.000','error':null,'errors':[]}},"
            "{'d':{'dateTime':'@03.000','errors':[{'code':'X1'}]}},"
            "{'e':{'dateTime':'@04.000','status':'FAILED'}},"
            "{'f':{'dateTime':'@05.000','error':false,'status':'ok'}},"
            "{'g':{'dateTime':'@06.000','error':{'detail':[1,2]}}},"
            "{'h':{'dateTime':'@07.000','error':''}}]}}");

    ck_json(member(r, "failed_nodes"), "['1:1','1:2','1:4','1:5','1:7']");
    ck_assert_int_eq(r->failed, 5);
    ck_json(field(r, "1:1", "status"), "'failed'");
    ck_json(field(r, "1:1", "error"), "'Data action timed out'");
    ck_json(field(r, "1:2", "error"), "'bad gateway'");
    ck_json(field(r, "1:3", "status"), "'ok'");
    ck_json(field(r, "1:3", "error"), "null");
    ck_json(field(r, "1:4", "error"), "'X1'");
    ck_json(field(r, "1:5", "error"), "'status FAILED'");
    ck_json(field(r, "1:6", "status"), "'ok'");
    ck_assert_str_eq(json_string_value(field(r, "1:7", "error")), "{\"detail\":[1,2]}");
    ck_json(field(r, "1:8", "status"), "'ok'");
}
END_TEST

START_TEST(long_error_cut)
{
    char *big = apr_palloc(pool, GC_TRACE_MAX_ERROR + 100);
    json_t *d = own(json_object());
    gc_trace_result_t *r;
    size_t i;

    /* "é" is two bytes: the cut must not split one */
    big[0] = 'x';
    for (i = 1; i + 2 < GC_TRACE_MAX_ERROR + 100; i += 2) {
        big[i] = (char)0xC3;
        big[i + 1] = (char)0xA9;
    }
    big[i] = '\0';
    json_object_set_new(d, "execution", json_pack("[{s:{s:s}}]", "a", "error", big));
    r = run_json(d, 0);
    ck_assert_uint_le(strlen(json_string_value(field(r, "1:1", "error"))), GC_TRACE_MAX_ERROR);
    ck_assert_uint_ge(strlen(json_string_value(field(r, "1:1", "error"))), GC_TRACE_MAX_ERROR - 1);
}
END_TEST

/* ------------------------------------------------------------------ degraded input */

START_TEST(missing_timestamps)
{
    gc_trace_result_t *r = run("{'flow':{'execution':["
                               "{'a':{'dateTime':'@00.000'}},"
                               "{'b':{'actionId':'no-time'}},"
                               "{'c':{'dateTime':'yesterday'}},"
                               "{'d':{'dateTime':'@05.000'}},"
                               "{'e':{'dateTime':'@06.500'}}]}}");

    ck_assert_int_eq(r->nodes, 5);
    ck_assert_int_eq(dur(r, "1:1"), -1); /* its end (b's start) is unknown */
    ck_json(field(r, "1:1", "end"), "null");
    ck_json(field(r, "1:2", "start"), "null");
    ck_assert_int_eq(dur(r, "1:2"), -1);
    ck_assert_int_eq(dur(r, "1:3"), -1);
    ck_assert_int_eq(dur(r, "1:4"), 1500);
    ck_assert_int_eq(dur(r, "1:5"), -1); /* no flow end */
    ck_assert(warned(r, "item 1:2: no start time"));
    ck_assert(warned(r, "item 1:3: a bad start time"));
    ck_assert(warned(r, "instance 1: no endDateTime"));
    ck_json(member(r, "bottleneck"), "{'node_id':'1:4','latency_ms':1500}");
    /* unknown durations weigh 0; the path is still every node */
    ck_assert_int_eq(r->critical_path_ms, 1500);
    ck_assert_int_eq(json_array_size(member(r, "critical_path")), 5);

    /* nothing known at all: no bottleneck */
    r = run("{'flow':{'execution':[{'a':{'x':1}}]}}");
    ck_json(member(r, "bottleneck"), "null");
    ck_json(member(r, "critical_path"), "['1:1']");
}
END_TEST

START_TEST(backwards_timestamps)
{
    gc_trace_result_t *r = run("{'flow':{'endDateTime':'@01.000','execution':["
                               "{'a':{'dateTime':'@05.000'}},"
                               "{'b':{'dateTime':'@02.000'}},"
                               "{'c':{'dateTime':'@03.000'}}]}}");

    ck_assert_int_eq(dur(r, "1:1"), -1);
    ck_json(field(r, "1:1", "end"), "null");
    ck_assert_int_eq(dur(r, "1:2"), 1000);
    ck_assert_int_eq(dur(r, "1:3"), -1); /* the flow "ended" before it */
    ck_assert(warned(r, "item 1:1: ends before it starts"));
    ck_assert(warned(r, "item 1:3: ends before it starts"));
}
END_TEST

START_TEST(truncated_list)
{
    const char *text = "{'flow':{'executionItemsTruncated':true,'endDateTime':'@09.000',"
                       "'execution':[{'a':{'dateTime':'@00.000'}},{'b':{'dateTime':'@01.000'}}]}}";
    gc_trace_result_t *r = run(text);

    ck_assert(warned(r, "instance 1: executionItemsTruncated"));
    ck_json(instance(r, 0, "truncated"), "true");
    ck_json(member(r, "accuracy_rate"), "1.0"); /* nothing says how many are missing */

    /* the upstream's count does */
    r = run_n(&text, 1, 0, 0, 8);
    ck_json(member(r, "accuracy_rate"), "0.25");
    ck_assert_int_eq(r->items_reported, 8);
}
END_TEST

START_TEST(malformed_documents)
{
    gc_trace_input_t in = { 0 };
    gc_trace_result_t *r = NULL;
    const json_t *none = NULL;
    const json_t *many[GC_TRACE_MAX_INSTANCES + 1];
    const char *why = NULL;
    int i;

    ck_assert_str_eq(reject(doc("[1,2]")), "instance 1: the document is not an object");
    ck_assert_str_eq(reject(own(json_string("flow"))), "instance 1: the document is not an object");
    ck_assert_str_eq(reject(doc("{'flow':{'endDateTime':'@00.000'}}")),
                     "instance 1: the document has no execution list");
    ck_assert_str_eq(reject(doc("{}")), "instance 1: the document has no execution list");
    ck_assert_str_eq(reject(doc("{'flow':{'execution':{'a':{}}}}")),
                     "instance 1: execution is not a list");
    ck_assert_str_eq(reject(NULL), "instance 1: no document (not downloaded)");

    in.items_reported = -1;
    ck_assert_int_eq(gc_trace_build(pool, &in, &r, &why), -1);
    ck_assert_str_eq(why, "no execution data documents");
    in.docs = &none;
    in.n_docs = 0;
    ck_assert_int_eq(gc_trace_build(pool, &in, &r, &why), -1);
    for (i = 0; i <= GC_TRACE_MAX_INSTANCES; i++)
        many[i] = doc("{'execution':[]}");
    in.docs = many;
    in.n_docs = GC_TRACE_MAX_INSTANCES + 1;
    ck_assert_int_eq(gc_trace_build(pool, &in, &r, &why), -1);
    ck_assert_str_eq(why, "51 documents: at most 50 instances are traced");
    in.n_docs = GC_TRACE_MAX_INSTANCES;
    ck_assert_int_eq(gc_trace_build(pool, &in, &r, &why), 0);

    /* one bad document among good ones: degraded, not rejected */
    r = run_n((const char *const[]){ "[]", NULL, "{'execution':[{'a':{'dateTime':'@00.000'}}]}" },
              3, 0, 0, -1);
    ck_assert_int_eq(r->nodes, 1);
    ck_json(member(r, "critical_path"), "['3:1']");
    ck_assert(warned(r, "instance 1: the document is not an object (skipped)"));
    ck_assert(warned(r, "instance 2: no document (not downloaded) (skipped)"));
    ck_assert_int_eq(json_array_size(member(r, "instances")), 3);
}
END_TEST

START_TEST(malformed_items)
{
    gc_trace_result_t *r = run("{'flow':{'endDateTime':'@10.000','execution':["
                               "{'a':{'dateTime':'@00.000'}},"
                               "42,'actionX',null,{},"
                               "{'x':{'dateTime':'@01.000'},'y':{}},"
                               "{'z':[1]},"
                               "{'b':{'dateTime':'@04.000','execution':{'not':'a list'}}}]}}");

    ck_assert_int_eq(r->nodes, 2);
    ck_assert(warned(r, "item 1:2: not an object (skipped)"));
    ck_assert(warned(r, "item 1:3: not an object (skipped)"));
    ck_assert(warned(r, "item 1:4: not an object (skipped)"));
    ck_assert(warned(r, "item 1:5: an empty object (no type) (skipped)"));
    ck_assert(warned(r, "item 1:6: several keys (one type expected) (skipped)"));
    ck_assert(warned(r, "item 1:7: its type's value is not an object (skipped)"));
    ck_assert(warned(r, "item 1:8: execution is not a list (ignored)"));
    /* the graph links over the skipped items */
    ck_json(edges(r), "[{'from':'1:1','to':'1:8','kind':'sequence'}]");
    ck_assert_int_eq(dur(r, "1:1"), 4000);
    /* 2 parsed of 8 seen */
    ck_assert_int_eq(r->items_reported, 8);
    ck_json(member(r, "accuracy_rate"), "0.25");
}
END_TEST

/* ------------------------------------------------------------------ caps */

START_TEST(node_cap)
{
    json_t *d = own(json_object());
    json_t *exec = json_array();
    gc_trace_result_t *r;
    int i;

    json_object_set_new(d, "execution", exec);
    for (i = 0; i < GC_TRACE_MAX_NODES + 5; i++)
        json_array_append_new(exec, json_pack("{s:{s:s,s:[{s:{s:s}}]}}", "a", "dateTime",
                                              "2023-10-12T09:09:00.000Z", "execution", "n",
                                              "dateTime", "2023-10-12T09:09:00.000Z"));
    r = run_json(d, 0);
    ck_assert_int_eq(r->nodes, GC_TRACE_MAX_NODES);
    ck_assert_int_eq(json_array_size(json_object_get(member(r, "graph"), "nodes")),
                     GC_TRACE_MAX_NODES);
    ck_assert(warned(r, "more than 10000 nodes: items from 1:5001 on are not graphed"));
    /* every item and its nested one counted, also past the cap */
    ck_assert_int_eq(r->items_reported, 2 * (GC_TRACE_MAX_NODES + 5));
    ck_assert(r->accuracy_rate < 0.5 && r->accuracy_rate > 0.49);
}
END_TEST

START_TEST(depth_cap)
{
    json_t *d = own(json_object());
    json_t *list = json_array();
    gc_trace_result_t *r;
    int i;

    /* 100 levels of nesting, built from the inside out */
    for (i = 0; i < 100; i++) {
        json_t *outer = json_array();

        json_array_append_new(outer, json_pack("{s:{s:s,s:o}}", "a", "dateTime",
                                               "2023-10-12T09:09:00.000Z", "execution", list));
        list = outer;
    }
    json_object_set_new(d, "execution", list);
    json_object_set_new(d, "endDateTime", json_string("2023-10-12T09:09:01.000Z"));
    r = run_json(d, 0);
    ck_assert_int_eq(r->nodes, GC_TRACE_MAX_DEPTH);
    ck_assert_int_eq(r->items_reported, GC_TRACE_MAX_DEPTH + 1);
    ck_assert(warned(r, "items nested deeper than 64 lists are not walked"));
    ck_assert_int_eq(json_array_size(member(r, "critical_path")), GC_TRACE_MAX_DEPTH);
    ck_assert_int_eq(r->critical_path_ms, 1000);
}
END_TEST

START_TEST(warnings_cap)
{
    json_t *d = own(json_object());
    json_t *exec = json_array();
    gc_trace_result_t *r;
    int i;

    json_object_set_new(d, "execution", exec);
    for (i = 0; i < GC_TRACE_MAX_WARNINGS + 10; i++)
        json_array_append_new(exec, json_integer(i));
    r = run_json(d, 0);
    ck_assert_int_eq(r->nodes, 0);
    ck_assert_int_eq(r->warnings, GC_TRACE_MAX_WARNINGS + 10);
    ck_assert_int_eq(json_array_size(member(r, "warnings")), GC_TRACE_MAX_WARNINGS + 1);
    ck_assert(warned(r, "… and 10 more warnings"));
    ck_json(member(r, "accuracy_rate"), "0.0");
}
END_TEST

/* ------------------------------------------------------------------ capture, accuracy */

START_TEST(capture_flags)
{
    const char *text =
        "{'flow':{'conversationId':'conv-7','division':{'id':'div-7'},'endDateTime':'@02.000',"
        "'execution':["
        "{'startedFlow':{'dateTime':'@00.000','variables':[{'name':'Flow.x','value':1}]}},"
        "{'actionAskForIntent':{'dateTime':'@01.000','variables':['v'],"
        "  'outputVariables':[{'name':'Intent','value':'billing'}]}},"
        "{'actionDecision':{'dateTime':'@01.500'}}]}}";
    gc_trace_result_t *r = run_n(&text, 1, 1, 0, -1);

    ck_json(field(r, "1:1", "variables"), "[{'name':'Flow.x','value':1}]");
    ck_json(field(r, "1:2", "variables"), "['v',{'name':'Intent','value':'billing'}]");
    ck_assert_ptr_null(field(r, "1:3", "variables"));
    ck_assert_ptr_null(strstr(dump(r->doc), "conv-7"));
    ck_assert_ptr_null(strstr(dump(r->doc), "div-7"));

    r = run_n(&text, 1, 0, 1, -1);
    ck_assert_ptr_null(strstr(dump(r->doc), "variables"));
    ck_assert_ptr_null(strstr(dump(r->doc), "billing"));
    ck_json(instance(r, 0, "conversation_id"), "'conv-7'");
    ck_json(instance(r, 0, "division_id"), "'div-7'");
}
END_TEST

START_TEST(variables_cap)
{
    json_t *d = own(json_object());
    json_t *vars = json_array();
    gc_trace_result_t *r;
    int i;

    for (i = 0; i < GC_TRACE_MAX_VARIABLES + 7; i++)
        json_array_append_new(vars, json_integer(i));
    json_object_set_new(d, "execution", json_pack("[{s:{s:o}}]", "a", "outputVariables", vars));
    r = run_json(d, 1);
    ck_assert_int_eq(json_array_size(field(r, "1:1", "variables")), GC_TRACE_MAX_VARIABLES);
    ck_assert(warned(r, "item 1:1: 7 variables beyond 200 not kept"));
}
END_TEST

START_TEST(accuracy_rate)
{
    const char *text = "{'flow':{'endDateTime':'@04.000','execution':["
                       "{'a':{'dateTime':'@00.000'}},7,"
                       "{'b':{'dateTime':'@01.000','execution':[{'c':{'dateTime':'@02.000'}}]}}]}}";
    gc_trace_result_t *r;

    r = run(text); /* 3 parsed of 4 seen */
    ck_json(member(r, "accuracy_rate"), "0.75");
    ck_assert_int_eq(r->items_parsed, 3);
    ck_assert_int_eq(r->items_reported, 4);
    ck_json(member(r, "items_parsed"), "3");
    ck_json(member(r, "items_reported"), "4");
    r = run_n(&text, 1, 0, 0, 12); /* the upstream said 12 */
    ck_json(member(r, "accuracy_rate"), "0.25");
    r = run_n(&text, 1, 0, 0, 2); /* a count lower than what was parsed */
    ck_json(member(r, "accuracy_rate"), "1.0");
    ck_assert(warned(r, "3 items parsed, more than the 2 reported"));
    r = run_n(&text, 1, 0, 0, 0);
    ck_json(member(r, "accuracy_rate"), "1.0");

    /* nothing reported, nothing parsed: nothing missed */
    r = run("{'flow':{'execution':[]}}");
    ck_json(member(r, "accuracy_rate"), "1.0");
    ck_assert(warned(r, "instance 1: no execution items"));
    ck_json(member(r, "bottleneck"), "null");
    ck_json(member(r, "critical_path"), "[]");
    ck_assert_int_eq(r->nodes, 0);
}
END_TEST

/* ------------------------------------------------------------------ webhook */

START_TEST(webhook_body)
{
    gc_trace_result_t *r = run("{'flow':{'endDateTime':'@04.000','execution':["
                               "{'a':{'dateTime':'@00.000'}},[],"
                               "{'b':{'dateTime':'@01.000'}},{'c':{'dateTime':'@03.750'}}]}}");
    apr_time_t ts;
    json_t *body;

    ck_assert_int_eq(gc_time_parse("2026-12-02T10:11:12.345Z", &ts), 0);
    body = own(gc_trace_webhook_body(pool, "flow-1", "inv-9", "completed", r->doc,
                                     gc_trace_retrieval_ms(ts - 4321000, ts), ts));
    ck_json(body, "{'flowId':'flow-1','actionInvocationId':'inv-9','status':'completed',"
                  "'bottleneckNode':'1:3','bottleneckLatencyMs':2750,'retrievalLatencyMs':4321,"
                  "'traceAccuracyRate':0.75,'timestamp':'2026-12-02T10:11:12.345Z'}");

    body = own(gc_trace_webhook_body(pool, "flow-1", NULL, "failed", NULL, 0, ts));
    ck_json(body, "{'flowId':'flow-1','actionInvocationId':null,'status':'failed',"
                  "'bottleneckNode':null,'bottleneckLatencyMs':0,'retrievalLatencyMs':0,"
                  "'traceAccuracyRate':0.0,'timestamp':'2026-12-02T10:11:12.345Z'}");
    ck_assert_int_eq(gc_trace_retrieval_ms(ts, ts - 1000), 0);
    ck_assert_int_eq(gc_trace_retrieval_ms(ts, ts + 1999), 1);
}
END_TEST

Suite *trace_suite(void)
{
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("engine");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, sequence);
    tcase_add_test(tc, unwrapped_and_flat_items);
    tcase_add_test(tc, explicit_end);
    tcase_add_test(tc, nested);
    tcase_add_test(tc, nested_last_climbs);
    tcase_add_test(tc, bottleneck_slowest_action);
    tcase_add_test(tc, parallel_instances);
    tcase_add_test(tc, failed_actions);
    tcase_add_test(tc, long_error_cut);
    tcase_add_test(tc, missing_timestamps);
    tcase_add_test(tc, backwards_timestamps);
    tcase_add_test(tc, truncated_list);
    tcase_add_test(tc, malformed_documents);
    tcase_add_test(tc, malformed_items);
    tcase_add_test(tc, node_cap);
    tcase_add_test(tc, depth_cap);
    tcase_add_test(tc, warnings_cap);
    tcase_add_test(tc, capture_flags);
    tcase_add_test(tc, variables_cap);
    tcase_add_test(tc, accuracy_rate);
    tcase_add_test(tc, webhook_body);
    suite_add_tcase(s, tc);
    return s;
}
