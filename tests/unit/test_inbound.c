/* The inbound Genesys event receiver without httpd (shared/gc_inbound.c):
 * signature, body, filter, answer; and its events stored beside the stream's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "gc_inbound.h"
#include "gc_result.h"
#include "gc_state.h"
#include "gc_store.h"
#include "gc_webhook.h"
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

#define NELTS(a) (sizeof(a) / sizeof((a)[0]))

#define UID "e40f28ea-fa86-493f-a5b8-d559c8533c96"
#define UID2 "u-42"

/* The activity event of SPEC §4.2 (real shape), as the stream delivers it. */
#define ACTIVITY                                                                               \
    "{\"topicName\":\"v2.users." UID ".activity\",\"version\":\"2\","                          \
    "\"eventBody\":{\"id\":\"" UID "\","                                                       \
    "\"routingStatus\":{\"status\":\"OFF_QUEUE\",\"startTime\":\"2021-05-14T09:03:17.067Z\"}," \
    "\"presence\":{\"presenceDefinition\":{\"id\":\"6a3af858-942f-489d-9700-5f9bcdcdae9b\","   \
    "\"systemPresence\":\"AVAILABLE\"},\"modifiedDate\":\"2021-05-14T09:03:17.047Z\"},"        \
    "\"outOfOffice\":{\"active\":false,\"modifiedDate\":\"2018-04-02T01:42:52.505Z\"},"        \
    "\"activeQueueIds\":[\"4750048b-1994-41d4-8410-a5760c49a6cd\","                            \
    " \"d3a783a9-547b-4bb8-88df-4bfb43ecc322\"],"                                              \
    "\"dateActiveQueuesChanged\":\"2021-03-25T04:15:44.913Z\"},"                               \
    "\"metadata\":{\"CorrelationId\":\"9e8067c7-8b35-4e54-add9-db24e7d6f086\"}}"

/* An OnQueue agent (state from the routing status), another user. */
#define ACTIVITY2                                                                                \
    "{\"topicName\":\"v2.users." UID2 ".activity\",\"version\":\"2\","                           \
    "\"eventBody\":{\"id\":\"" UID2 "\","                                                        \
    "\"routingStatus\":{\"status\":\"INTERACTING\",\"startTime\":\"2026-11-21T19:59:20.500Z\"}," \
    "\"presence\":{\"presenceDefinition\":{\"id\":\"pd-onq\",\"systemPresence\":\"On Queue\"},"  \
    "\"modifiedDate\":\"2026-11-21T19:59:28.123Z\"}}}"

/* Routing status only: parsed, but no derivable state (the stream drops it). */
#define ACTIVITY_NO_STATE                                                               \
    "{\"topicName\":\"v2.users." UID2 ".activity\",\"eventBody\":{\"id\":\"" UID2 "\"," \
    "\"routingStatus\":{\"status\":\"IDLE\",\"startTime\":\"2026-11-21T19:59:20.500Z\"}}}"

#define HEARTBEAT \
    "{\"topicName\":\"channel.metadata\",\"eventBody\":{\"message\":\"WebSocket Heartbeat\"}}"
#define OTHER_TOPIC                                                            \
    "{\"topicName\":\"v2.routing.queues.q1.conversations\",\"version\":\"2\"," \
    "\"eventBody\":{\"id\":\"c1\"}}"
#define CLOSING "{\"topicName\":\"v2.system.socket_closing\",\"eventBody\":{}}"

/* ---------------------------------------------------------------- helpers */

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

#define CK_SAME_STR(a, b, f)                                              \
    ck_assert_msg(same_str((a)->f, (b)->f), "field " #f ": '%s' vs '%s'", \
                  (a)->f ? (a)->f : "(null)", (b)->f ? (b)->f : "(null)")

/* Every field of gc_agent_event_t. */
static void ck_same_event(const gc_agent_event_t *a, const gc_agent_event_t *b)
{
    CK_SAME_STR(a, b, user_id);
    CK_SAME_STR(a, b, user_name);
    CK_SAME_STR(a, b, presence);
    CK_SAME_STR(a, b, presence_id);
    CK_SAME_STR(a, b, routing_status);
    ck_assert(a->presence_at == b->presence_at);
    ck_assert(a->routing_at == b->routing_at);
    ck_assert(a->event_at == b->event_at);
    CK_SAME_STR(a, b, state);
    CK_SAME_STR(a, b, queue_ids);
    CK_SAME_STR(a, b, correlation_id);
}

/* What the stream makes of one message's text. */
static gc_agent_event_t stream_event(const char *text)
{
    gc_agent_event_t ev;

    ck_assert_int_eq(gc_notify_parse(pool, text, strlen(text), &ev, NULL), GC_MSG_EVENT);
    return ev;
}

static gc_inbound_batch_t *parse_ok(const char *body)
{
    gc_result_t *res = gc_result_make(pool);
    gc_inbound_batch_t *b = NULL;

    ck_assert_msg(gc_inbound_parse(pool, body, strlen(body), res, &b) == 0, "parse failed: %s",
                  res->detail ? res->detail : "(no detail)");
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(b->events);
    ck_assert(!gc_result_failed(res));
    return b;
}

static gc_result_t *parse_fail(const char *body, apr_size_t len)
{
    gc_result_t *res = gc_result_make(pool);
    static gc_inbound_batch_t sentinel;
    gc_inbound_batch_t *b = &sentinel; /* must be reset */

    ck_assert_int_eq(gc_inbound_parse(pool, body, len, res, &b), -1);
    ck_assert_ptr_null(b);
    ck_assert(gc_result_failed(res));
    ck_assert_int_eq(res->status, 400);
    ck_assert_ptr_nonnull(res->detail);
    return res;
}

static const gc_agent_event_t *event_at(const apr_array_header_t *a, int i)
{
    ck_assert_int_lt(i, a->nelts);
    return &APR_ARRAY_IDX(a, i, gc_agent_event_t);
}

/* The problem as the glue renders it must be valid JSON with these members. */
static void ck_problem_json(const gc_result_t *res, const char *slug)
{
    json_t *j = gc_result_json(res);
    const char *type;

    ck_assert_ptr_nonnull(j);
    type = json_string_value(json_object_get(j, "type"));
    ck_assert_ptr_nonnull(type);
    ck_assert_str_eq(type, apr_pstrcat(pool, GC_PROBLEM_BASE, slug, NULL));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), res->status);
    ck_assert(json_is_string(json_object_get(j, "detail")));
    json_decref(j);
}

/* ---------------------------------------------------------------- signature */

/* RFC 4231 test case 2: an independent check of the digest. */
#define RFC_KEY "Jefe"
#define RFC_DATA "what do ya want for nothing?"
#define RFC_SIG "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"

START_TEST(verify_good)
{
    const char *body = "[" ACTIVITY "]";

    ck_assert_int_eq(gc_inbound_verify(RFC_KEY, RFC_DATA, strlen(RFC_DATA), RFC_SIG), 1);
    /* The outbound format (gc_webhook_signature) is what inbound accepts. */
    ck_assert_int_eq(
        gc_inbound_verify("s3cret-value", body, strlen(body),
                          gc_webhook_signature(pool, "s3cret-value", body, strlen(body))),
        1);
    /* The empty body is signable (NULL with len 0 is the empty body). */
    ck_assert_int_eq(gc_inbound_verify("k3y!", NULL, 0, gc_webhook_signature(pool, "k3y!", "", 0)),
                     1);
    ck_assert_int_eq(gc_inbound_verify("k3y!", "", 0, gc_webhook_signature(pool, "k3y!", "", 0)),
                     1);
}
END_TEST

START_TEST(verify_wrong)
{
    char tampered[] = RFC_DATA;
    char sig[] = RFC_SIG;
    size_t i, n = strlen(RFC_DATA);

    /* Another secret. */
    ck_assert_int_eq(gc_inbound_verify("Jeff", RFC_DATA, n, RFC_SIG), 0);
    ck_assert_int_eq(gc_inbound_verify("Jefe ", RFC_DATA, n, RFC_SIG), 0);
    /* The body tampered by one byte, anywhere. */
    for (i = 0; i < n; i++) {
        tampered[i] ^= 0x01;
        ck_assert_int_eq(gc_inbound_verify(RFC_KEY, tampered, n, RFC_SIG), 0);
        tampered[i] ^= 0x01;
    }
    ck_assert_int_eq(gc_inbound_verify(RFC_KEY, tampered, n, RFC_SIG), 1);
    /* One byte more or less. */
    ck_assert_int_eq(gc_inbound_verify(RFC_KEY, RFC_DATA, n - 1, RFC_SIG), 0);
    ck_assert_int_eq(gc_inbound_verify(RFC_KEY, RFC_DATA "!", n + 1, RFC_SIG), 0);
    /* One digit of the digest changed (still well-formed). */
    sig[sizeof(sig) - 2] = sig[sizeof(sig) - 2] == '3' ? '4' : '3';
    ck_assert_int_eq(gc_inbound_verify(RFC_KEY, RFC_DATA, n, sig), 0);
}
END_TEST

START_TEST(verify_header_shapes)
{
    static const char *const bad[] = {
        NULL, /* missing */
        "",
        "sha256=",
        /* no prefix */
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        /* other prefixes and casings */
        "SHA256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        "sha1=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        "sha256:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        /* short and long hex */
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec384",
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec38433",
        "sha256=5bdcc146",
        /* upper-case hex of the right digest */
        "sha256=5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843",
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec384A",
        /* not hex */
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec384g",
        "sha256=zbdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        /* blanks, lists */
        " sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843 ",
        "sha256= 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843,"
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    };
    size_t i;

    for (i = 0; i < NELTS(bad); i++) {
        ck_assert_msg(gc_inbound_verify(RFC_KEY, RFC_DATA, strlen(RFC_DATA), bad[i]) == 0,
                      "accepted header %zu", i);
    }
}
END_TEST

START_TEST(verify_empty_secret)
{
    /* The HMAC of the empty key is well defined: it must still be refused. */
    const char *sig = gc_webhook_signature(pool, "", RFC_DATA, strlen(RFC_DATA));

    ck_assert_ptr_nonnull(sig);
    ck_assert_int_eq(gc_inbound_verify("", RFC_DATA, strlen(RFC_DATA), sig), 0);
    ck_assert_int_eq(gc_inbound_verify(NULL, RFC_DATA, strlen(RFC_DATA), sig), 0);
    /* A NULL body with a length is refused, not read. */
    ck_assert_int_eq(gc_inbound_verify(RFC_KEY, NULL, 5, RFC_SIG), 0);
}
END_TEST

START_TEST(unauthorized_problem)
{
    static const struct {
        const char *header, *needle;
    } t[] = {
        { NULL, "no X-Gcmon-Signature" },
        { "sha256=abc", "must be sha256=" },
        { RFC_SIG, "does not match" },
    };
    size_t i;

    for (i = 0; i < NELTS(t); i++) {
        gc_result_t *res = gc_result_make(pool);
        gc_inbound_unauthorized(res, t[i].header);
        ck_assert(gc_result_failed(res));
        ck_assert_int_eq(res->status, 401);
        ck_assert_str_eq(res->slug, "invalid_signature");
        ck_assert_msg(strstr(res->detail, t[i].needle), "detail '%s'", res->detail);
        /* The value received is never echoed. */
        ck_assert_ptr_null(strstr(res->detail, "5bdcc146"));
        ck_problem_json(res, "invalid_signature");
    }
}
END_TEST

/* ------------------------------------------------------------------- body */

START_TEST(parse_one_envelope)
{
    gc_inbound_batch_t *b = parse_ok(ACTIVITY);
    gc_agent_event_t s = stream_event(ACTIVITY);

    ck_assert_int_eq(b->counts.received, 1);
    ck_assert_int_eq(b->counts.events, 1);
    ck_assert_int_eq(b->counts.skipped, 0);
    ck_assert_int_eq(b->counts.by_kind[GC_MSG_EVENT], 1);
    ck_assert_int_eq(b->events->nelts, 1);
    ck_same_event(event_at(b->events, 0), &s);
    /* And what that is (the real message of SPEC §4.2). */
    ck_assert_str_eq(event_at(b->events, 0)->user_id, UID);
    ck_assert_str_eq(event_at(b->events, 0)->state, "Available");
    ck_assert_str_eq(event_at(b->events, 0)->correlation_id,
                     "9e8067c7-8b35-4e54-add9-db24e7d6f086");
    ck_assert_ptr_null(b->kept);
}
END_TEST

START_TEST(parse_array)
{
    const char *body = "[" ACTIVITY "," HEARTBEAT "," ACTIVITY2 "," OTHER_TOPIC "," CLOSING
                       "," ACTIVITY_NO_STATE "]";
    gc_inbound_batch_t *b = parse_ok(body);
    gc_agent_event_t s1 = stream_event(ACTIVITY), s2 = stream_event(ACTIVITY2);

    ck_assert_int_eq(b->counts.received, 6);
    ck_assert_int_eq(b->counts.events, 2);
    ck_assert_int_eq(b->counts.no_state, 1);
    ck_assert_int_eq(b->counts.skipped, 4);
    ck_assert_int_eq(b->counts.by_kind[GC_MSG_EVENT], 3);
    ck_assert_int_eq(b->counts.by_kind[GC_MSG_HEARTBEAT], 1);
    ck_assert_int_eq(b->counts.by_kind[GC_MSG_UNKNOWN], 1);
    ck_assert_int_eq(b->counts.by_kind[GC_MSG_SOCKET_CLOSING], 1);
    ck_assert_int_eq(b->counts.by_kind[GC_MSG_MALFORMED], 0);
    ck_assert_int_eq(b->events->nelts, 2);
    /* Body order. */
    ck_same_event(event_at(b->events, 0), &s1);
    ck_same_event(event_at(b->events, 1), &s2);
    ck_assert_str_eq(event_at(b->events, 1)->state, "INTERACTING");
}
END_TEST

START_TEST(parse_empty_array)
{
    gc_inbound_batch_t *b = parse_ok(" [ ] ");
    json_t *doc;

    ck_assert_int_eq(b->counts.received, 0);
    ck_assert_int_eq(b->counts.events, 0);
    ck_assert_int_eq(b->events->nelts, 0);
    gc_inbound_filter(pool, b, NULL, NULL);
    ck_assert_int_eq(b->kept->nelts, 0);
    doc = gc_inbound_response_json(b, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "received")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "queued")), 0);
    json_decref(doc);
}
END_TEST

START_TEST(parse_skipped_only)
{
    gc_inbound_batch_t *b = parse_ok(HEARTBEAT);

    ck_assert_int_eq(b->counts.received, 1);
    ck_assert_int_eq(b->counts.skipped, 1);
    ck_assert_int_eq(b->counts.events, 0);
    ck_assert_int_eq(b->counts.by_kind[GC_MSG_HEARTBEAT], 1);
    b = parse_ok(OTHER_TOPIC);
    ck_assert_int_eq(b->counts.skipped, 1);
    ck_assert_int_eq(b->counts.by_kind[GC_MSG_UNKNOWN], 1);
    b = parse_ok("[" HEARTBEAT "," HEARTBEAT "]");
    ck_assert_int_eq(b->counts.received, 2);
    ck_assert_int_eq(b->counts.skipped, 2);
    ck_assert_int_eq(b->events->nelts, 0);
    /* An activity event without a derivable state: skipped, as on the stream. */
    b = parse_ok(ACTIVITY_NO_STATE);
    ck_assert_int_eq(b->counts.no_state, 1);
    ck_assert_int_eq(b->counts.skipped, 1);
    ck_assert_int_eq(b->events->nelts, 0);
}
END_TEST

START_TEST(parse_malformed_json)
{
    static const char *const bad[] = {
        "{", "[" ACTIVITY, "nope", "{\"topicName\":}", "[1,]", "{} {}", "\xff\xfe",
    };
    gc_result_t *res;
    size_t i;

    for (i = 0; i < NELTS(bad); i++) {
        res = parse_fail(bad[i], strlen(bad[i]));
        ck_assert_str_eq(res->slug, "malformed_json");
        ck_assert_str_eq(res->error_type, "malformed_json");
        ck_problem_json(res, "malformed_json");
    }
    /* Empty (NULL or zero length). */
    res = parse_fail(NULL, 0);
    ck_assert_str_eq(res->slug, "malformed_json");
    res = parse_fail("{}", 0);
    ck_assert_str_eq(res->slug, "malformed_json");
    ck_assert_ptr_nonnull(strstr(res->detail, "empty"));
    /* Bytes after the given length are not read; a NUL inside is not an end. */
    res = parse_fail(HEARTBEAT, strlen(HEARTBEAT) - 1);
    ck_assert_str_eq(res->slug, "malformed_json");
    {
        static const char nul[] = "[]\0garbage";
        gc_inbound_batch_t *b = NULL;
        gc_result_t *r2 = gc_result_make(pool);
        ck_assert_int_eq(gc_inbound_parse(pool, nul, 2, r2, &b), 0);
        res = parse_fail(nul, sizeof(nul) - 1);
        ck_assert_str_eq(res->slug, "malformed_json");
    }
}
END_TEST

START_TEST(parse_wrong_root)
{
    static const char *const bad[] = { "1", "\"x\"", "null", "true", "3.5" };
    size_t i;

    for (i = 0; i < NELTS(bad); i++) {
        gc_result_t *res = parse_fail(bad[i], strlen(bad[i]));
        ck_assert_str_eq(res->slug, "invalid_body");
        ck_assert_str_eq(res->error_type, "invalid_type");
        ck_assert_ptr_nonnull(strstr(res->detail, "envelope"));
        ck_problem_json(res, "invalid_body");
    }
}
END_TEST

/* A body of n copies of one envelope. */
static char *repeat(const char *env, int n, apr_size_t *len)
{
    apr_size_t el = strlen(env), cap = (el + 1) * (apr_size_t)n + 3;
    char *s = apr_palloc(pool, cap), *o = s;
    int i;

    *o++ = '[';
    for (i = 0; i < n; i++) {
        if (i) {
            *o++ = ',';
        }
        memcpy(o, env, el);
        o += el;
    }
    *o++ = ']';
    *o = '\0';
    *len = (apr_size_t)(o - s);
    return s;
}

START_TEST(parse_limit)
{
    apr_size_t len;
    char *body = repeat(HEARTBEAT, GC_INBOUND_MAX_ENVELOPES, &len);
    gc_inbound_batch_t *b = parse_ok(body);
    gc_result_t *res;

    ck_assert_int_eq(b->counts.received, GC_INBOUND_MAX_ENVELOPES);
    ck_assert_int_eq(b->counts.skipped, GC_INBOUND_MAX_ENVELOPES);
    b = parse_ok(repeat(ACTIVITY, GC_INBOUND_MAX_ENVELOPES, &len));
    ck_assert_int_eq(b->events->nelts, GC_INBOUND_MAX_ENVELOPES);

    body = repeat(HEARTBEAT, GC_INBOUND_MAX_ENVELOPES + 1, &len);
    res = parse_fail(body, len);
    ck_assert_str_eq(res->slug, "invalid_body");
    ck_assert_str_eq(res->error_type, "invalid_value");
    ck_assert_msg(strstr(res->detail, "1001") && strstr(res->detail, "1000"), "detail '%s'",
                  res->detail);
    ck_problem_json(res, "invalid_body");
}
END_TEST

START_TEST(parse_bad_envelope_names_index)
{
    static const struct {
        const char *body, *field;
    } t[] = {
        /* an agent envelope of a bad shape in an array */
        { "[" ACTIVITY "," HEARTBEAT ","
          "{\"topicName\":\"v2.users." UID ".activity\",\"eventBody\":{\"id\":\"" UID "\"}}]",
          "body[2]" },
        /* presence of the wrong type */
        { "[" ACTIVITY ",{\"topicName\":\"v2.users." UID ".activity\",\"eventBody\":{\"id\":\"" UID
          "\",\"presence\":\"AVAILABLE\"}}]",
          "body[1]" },
        /* the id is not the topic's user */
        { "[{\"topicName\":\"v2.users.someone-else.activity\",\"eventBody\":"
          "{\"id\":\"" UID
          "\",\"presence\":{\"presenceDefinition\":{\"systemPresence\":\"Away\"}}}}]",
          "body[0]" },
        /* not envelopes at all */
        { "[" ACTIVITY ",42]", "body[1]" },
        { "[" HEARTBEAT ",{\"eventBody\":{}}]", "body[1]" },
        { "[[]]", "body[0]" },
        /* the lone envelope */
        { "{\"topicName\":\"v2.users." UID ".activity\"}", "body" },
        { "{\"version\":\"2\"}", "body" },
    };
    size_t i;

    for (i = 0; i < NELTS(t); i++) {
        gc_result_t *res = parse_fail(t[i].body, strlen(t[i].body));
        json_t *e;
        ck_assert_str_eq(res->slug, "invalid_body");
        ck_assert_str_eq(res->error_type, "invalid_value");
        ck_assert_ptr_nonnull(res->errors);
        ck_assert_int_eq(json_array_size(res->errors), 1);
        e = json_array_get(res->errors, 0);
        ck_assert_msg(!strcmp(json_string_value(json_object_get(e, "field")), t[i].field),
                      "case %zu: field %s", i, json_string_value(json_object_get(e, "field")));
        if (strcmp(t[i].field, "body") != 0) {
            const char *idx = t[i].field + 5; /* "body[" */
            ck_assert_msg(strstr(res->detail, apr_pstrndup(pool, idx, strlen(idx) - 1)),
                          "case %zu: detail '%s'", i, res->detail);
        }
        ck_problem_json(res, "invalid_body");
    }
}
END_TEST

/* The events of the body are the stream's, field by field, for every shape
 * the stream accepts (casings, nulls, missing parts, nested queue ids). */
START_TEST(events_match_stream)
{
    static const char *const envs[] = {
        ACTIVITY,
        ACTIVITY2,
        "{\"topicName\":\"v2.users.a_1.activity\",\"eventBody\":{\"id\":\"a_1\","
        "\"presence\":{\"presenceDefinition\":{\"id\":null,\"systemPresence\":\"on_queue\"},"
        "\"modifiedDate\":\"2026-01-02T03:04:05.678901Z\"},"
        "\"routingStatus\":{\"status\":\"not_responding\",\"startTime\":null},"
        "\"activeQueueIds\":[]},\"metadata\":{\"CorrelationId\":\"c-1\"}}",
        "{\"topicName\":\"v2.users.B-2.activity\",\"version\":\"2\",\"eventBody\":{\"id\":\"B-2\","
        "\"presence\":{\"presenceDefinition\":{\"id\":\"pd\",\"systemPresence\":\"Meal\"}},"
        "\"activeQueueIds\":[1,2]},\"metadata\":{\"CorrelationId\":7}}",
        "{\"topicName\":\"v2.users.c.activity\",\"eventBody\":{\"id\":\"c\",\"name\":\"Cee\","
        "\"routingStatus\":{\"userId\":\"c\",\"status\":\"IDLE\","
        "\"startTime\":\"2026-03-01T00:00:00.999Z\"},"
        "\"presence\":{\"presenceDefinition\":{\"systemPresence\":\"ON_QUEUE\"},"
        "\"modifiedDate\":\"2026-03-01T00:00:00Z\"},\"activeQueueIds\":[\"q\\u00e9\"]}}",
        /* duplicate keys: the last wins, on both paths */
        "{\"topicName\":\"v2.users.d.activity\",\"eventBody\":{\"id\":\"d\","
        "\"presence\":{\"presenceDefinition\":{\"systemPresence\":\"Away\"}},"
        "\"presence\":{\"presenceDefinition\":{\"systemPresence\":\"Busy\"}}}}",
    };
    const char *all = "[";
    gc_inbound_batch_t *b;
    size_t i;

    for (i = 0; i < NELTS(envs); i++) {
        gc_agent_event_t s = stream_event(envs[i]);
        b = parse_ok(envs[i]);
        ck_assert_int_eq(b->events->nelts, 1);
        ck_same_event(event_at(b->events, 0), &s);
        all = apr_pstrcat(pool, all, i ? "," : "", envs[i], NULL);
    }
    b = parse_ok(apr_pstrcat(pool, all, "]", NULL));
    ck_assert_int_eq(b->events->nelts, (int)NELTS(envs));
    for (i = 0; i < NELTS(envs); i++) {
        gc_agent_event_t s = stream_event(envs[i]);
        ck_same_event(event_at(b->events, (int)i), &s);
    }
}
END_TEST

/* gc_notify_parse_json is gc_notify_parse without the text: same kind, same
 * event, same reason, for every kind. */
START_TEST(parse_json_entry_matches_text)
{
    static const char *const msgs[] = {
        ACTIVITY,
        ACTIVITY2,
        ACTIVITY_NO_STATE,
        HEARTBEAT,
        OTHER_TOPIC,
        CLOSING,
        "{\"topicName\":\"channel.metadata\",\"eventBody\":{\"message\":\"pong\"}}",
        "{\"topicName\":\"channel.metadata\",\"eventBody\":{\"message\":\"hello\"}}",
        "{\"topicName\":\"v2.system.no_longer_subscribed.ch1\"}",
        "{\"topicName\":\"v2.system.token_revoked\"}",
        "{\"topicName\":\"v2.users.x.activity\",\"eventBody\":{\"id\":\"y\","
        "\"presence\":{\"presenceDefinition\":{\"systemPresence\":\"Away\"}}}}",
        "{\"topicName\":5}",
        "[]",
        "17",
    };
    size_t i;

    for (i = 0; i < NELTS(msgs); i++) {
        gc_agent_event_t a, b;
        const char *why_a = NULL, *why_b = NULL;
        json_t *j = json_loads(msgs[i], JSON_DECODE_ANY, NULL);
        gc_msg_kind_e ka, kb;

        ck_assert_ptr_nonnull(j);
        ka = gc_notify_parse(pool, msgs[i], strlen(msgs[i]), &a, &why_a);
        kb = gc_notify_parse_json(pool, j, &b, &why_b);
        json_decref(j);
        ck_assert_msg(ka == kb, "message %zu: %d vs %d", i, ka, kb);
        ck_same_event(&a, &b);
        ck_assert_msg(same_str(why_a, why_b), "message %zu: why '%s' vs '%s'", i,
                      why_a ? why_a : "(null)", why_b ? why_b : "(null)");
    }
    /* NULL root; NULL ev and why. */
    {
        gc_agent_event_t e;
        const char *why = NULL;
        ck_assert_int_eq(gc_notify_parse_json(pool, NULL, &e, &why), GC_MSG_MALFORMED);
        ck_assert_ptr_null(e.user_id);
        ck_assert_ptr_nonnull(why);
        ck_assert_int_eq(gc_notify_parse_json(pool, NULL, NULL, NULL), GC_MSG_MALFORMED);
    }
}
END_TEST

/* ----------------------------------------------------------------- filter */

static int monitored_set(void *baton, const char *user_id)
{
    const char *const *ids = baton;

    for (; *ids; ids++) {
        if (!strcmp(*ids, user_id)) {
            return 1;
        }
    }
    return 0;
}

START_TEST(filter_split)
{
    static const char *const only_uid2[] = { UID2, NULL };
    static const char *const none[] = { NULL };
    const char *body = "[" ACTIVITY "," ACTIVITY2 "," HEARTBEAT "," ACTIVITY "]";
    gc_inbound_batch_t *b = parse_ok(body);

    gc_inbound_filter(pool, b, monitored_set, (void *)only_uid2);
    ck_assert_int_eq(b->counts.kept, 1);
    ck_assert_int_eq(b->counts.ignored, 2);
    ck_assert_int_eq(b->kept->nelts, 1);
    ck_assert_int_eq(b->ignored->nelts, 2);
    ck_assert_str_eq(event_at(b->kept, 0)->user_id, UID2);
    ck_assert_str_eq(event_at(b->ignored, 0)->user_id, UID);
    ck_assert_str_eq(event_at(b->ignored, 1)->user_id, UID);
    /* b->events is untouched; the split can be redone. */
    ck_assert_int_eq(b->events->nelts, 3);
    gc_inbound_filter(pool, b, monitored_set, (void *)none);
    ck_assert_int_eq(b->counts.kept, 0);
    ck_assert_int_eq(b->counts.ignored, 3);
    /* NULL predicate keeps everything, in order. */
    gc_inbound_filter(pool, b, NULL, NULL);
    ck_assert_int_eq(b->counts.kept, 3);
    ck_assert_int_eq(b->counts.ignored, 0);
    ck_assert_str_eq(event_at(b->kept, 1)->user_id, UID2);
    ck_assert_int_eq(b->counts.skipped, 1);
}
END_TEST

/* ----------------------------------------------------------------- answer */

static long member(const json_t *doc, const char *key)
{
    json_t *v = json_object_get(doc, key);

    ck_assert_msg(json_is_integer(v), "member %s", key);
    return (long)json_integer_value(v);
}

START_TEST(response_document)
{
    static const char *const only_uid2[] = { UID2, NULL };
    const char *body = "[" ACTIVITY "," ACTIVITY2 "," HEARTBEAT "," ACTIVITY "," OTHER_TOPIC
                       "," ACTIVITY_NO_STATE "]";
    gc_inbound_batch_t *b = parse_ok(body);
    gc_store_batch_result_t w = { .transitions = 1, .refreshed = 0, .duplicates = 0, .stale = 0 };
    gc_result_t *res;
    json_t *doc;

    /* Before the filter everything counts as kept. */
    doc = gc_inbound_response_json(b, NULL);
    ck_assert_int_eq(member(doc, "queued"), 3);
    ck_assert_int_eq(member(doc, "ignored"), 0);
    json_decref(doc);

    gc_inbound_filter(pool, b, monitored_set, (void *)only_uid2);
    doc = gc_inbound_response_json(b, &w);
    ck_assert_int_eq(json_object_size(doc), 8);
    ck_assert_int_eq(member(doc, "received"), 6);
    ck_assert_int_eq(member(doc, "events"), 3);
    ck_assert_int_eq(member(doc, "skipped"), 3);
    ck_assert_int_eq(member(doc, "ignored"), 2);
    ck_assert_int_eq(member(doc, "stored"), 1);
    ck_assert_int_eq(member(doc, "refreshed"), 0);
    ck_assert_int_eq(member(doc, "duplicates"), 0);
    ck_assert_int_eq(member(doc, "stale"), 0);
    ck_assert_ptr_null(json_object_get(doc, "queued"));
    /* The documented sums. */
    ck_assert_int_eq(member(doc, "received"), member(doc, "skipped") + member(doc, "ignored")
                                                  + member(doc, "stored") + member(doc, "refreshed")
                                                  + member(doc, "duplicates")
                                                  + member(doc, "stale"));
    json_decref(doc);

    res = gc_result_make(pool);
    gc_inbound_respond(res, b, &w);
    ck_assert(!gc_result_failed(res));
    ck_assert_int_eq(res->status, 200);
    ck_assert_int_eq(member(res->doc, "stored"), 1);

    res = gc_result_make(pool);
    gc_inbound_respond(res, b, NULL);
    ck_assert_int_eq(res->status, 202);
    ck_assert_int_eq(json_object_size(res->doc), 5);
    ck_assert_int_eq(member(res->doc, "queued"), 1);
    ck_assert_int_eq(member(res->doc, "ignored"), 2);
}
END_TEST

/* ------------------------------------------------- stored beside the stream */

static char db_dir[256];
static char db_path[300];

static void store_setup(void)
{
    const char *tmp = getenv("TMPDIR");

    apr_pool_create(&pool, NULL);
    apr_dbd_init(pool);
    snprintf(db_dir, sizeof(db_dir), "%s/gcmon-inbound-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(db_dir));
    snprintf(db_path, sizeof(db_path), "%s/gcmon.db", db_dir);
}

static void store_teardown(void)
{
    static const char *const files[] = { "gcmon.db", "gcmon.db-wal", "gcmon.db-shm",
                                         "gcmon.db-journal" };
    char path[400];
    size_t i;

    apr_pool_destroy(pool);
    for (i = 0; i < NELTS(files); i++) {
        snprintf(path, sizeof(path), "%s/%s", db_dir, files[i]);
        unlink(path);
    }
    rmdir(db_dir);
}

/* The stream records a message; the relay delivers the same message again
 * with one more: the first is a duplicate, the second is stored, and the
 * answer's members add up. */
START_TEST(store_dedup_against_stream)
{
    gc_store_t *s = NULL;
    const char *err = NULL;
    gc_agent_event_t ev = stream_event(ACTIVITY);
    gc_store_batch_result_t w;
    gc_inbound_batch_t *b;
    gc_result_t *res;
    long rows = -1;

    ck_assert_msg(gc_store_open(pool, "sqlite3", db_path, &s, &err) == APR_SUCCESS, "open: %s",
                  err);
    ck_assert_msg(gc_store_migrate(s, &err) == APR_SUCCESS, "migrate: %s", err);
    memset(&w, 0, sizeof(w));
    ck_assert_msg(gc_store_write_batch(s, pool, &ev, 1, "stream", apr_time_now(), &w, &err)
                      == APR_SUCCESS,
                  "stream write: %s", err);
    ck_assert_int_eq(w.transitions, 1);

    b = parse_ok("[" ACTIVITY "," ACTIVITY2 "," HEARTBEAT "]");
    gc_inbound_filter(pool, b, NULL, NULL);
    memset(&w, 0, sizeof(w));
    ck_assert_msg(gc_store_write_batch(s, pool, (gc_agent_event_t *)b->kept->elts, b->kept->nelts,
                                       GC_INBOUND_SOURCE, apr_time_now(), &w, &err)
                      == APR_SUCCESS,
                  "inbound write: %s", err);
    ck_assert_int_eq(w.duplicates, 1);
    ck_assert_int_eq(w.transitions, 1);
    ck_assert_int_eq(gc_store_history_count(s, UID, &rows), APR_SUCCESS);
    ck_assert_int_eq(rows, 1);
    ck_assert_int_eq(gc_store_history_count(s, UID2, &rows), APR_SUCCESS);
    ck_assert_int_eq(rows, 1);

    res = gc_result_make(pool);
    gc_inbound_respond(res, b, &w);
    ck_assert_int_eq(res->status, 200);
    ck_assert_int_eq(member(res->doc, "received"), 3);
    ck_assert_int_eq(member(res->doc, "stored"), 1);
    ck_assert_int_eq(member(res->doc, "duplicates"), 1);
    ck_assert_int_eq(member(res->doc, "skipped"), 1);
    gc_store_close(s);
}
END_TEST

Suite *inbound_suite(void)
{
    Suite *s = suite_create("inbound");
    TCase *tc = tcase_create("core");
    TCase *st = tcase_create("store");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, verify_good);
    tcase_add_test(tc, verify_wrong);
    tcase_add_test(tc, verify_header_shapes);
    tcase_add_test(tc, verify_empty_secret);
    tcase_add_test(tc, unauthorized_problem);
    tcase_add_test(tc, parse_one_envelope);
    tcase_add_test(tc, parse_array);
    tcase_add_test(tc, parse_empty_array);
    tcase_add_test(tc, parse_skipped_only);
    tcase_add_test(tc, parse_malformed_json);
    tcase_add_test(tc, parse_wrong_root);
    tcase_add_test(tc, parse_limit);
    tcase_add_test(tc, parse_bad_envelope_names_index);
    tcase_add_test(tc, events_match_stream);
    tcase_add_test(tc, parse_json_entry_matches_text);
    tcase_add_test(tc, filter_split);
    tcase_add_test(tc, response_document);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(st, store_setup, store_teardown);
    tcase_add_test(st, store_dedup_against_stream);
    suite_add_tcase(s, st);
    return s;
}
