/* Agent state model and notification parsing (shared/gc_state.c, gc_time.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "gc_state.h"
#include "gc_time.h"
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
#define USEC(s) ((apr_time_t)(s)*APR_USEC_PER_SEC)

#define UID "e40f28ea-fa86-493f-a5b8-d559c8533c96"

/* The activity event of SPEC §4.2 / notes §2.4 (real shape). */
static const char real_activity[] =
    "{\"topicName\":\"v2.users." UID ".activity\",\"version\":\"2\","
    "\"eventBody\":{\"id\":\"" UID "\","
    "\"routingStatus\":{\"status\":\"OFF_QUEUE\",\"startTime\":\"2021-05-14T09:03:17.067Z\"},"
    "\"presence\":{\"presenceDefinition\":{\"id\":\"6a3af858-942f-489d-9700-5f9bcdcdae9b\","
    "\"systemPresence\":\"AVAILABLE\"},\"modifiedDate\":\"2021-05-14T09:03:17.047Z\"},"
    "\"outOfOffice\":{\"active\":false,\"modifiedDate\":\"2018-04-02T01:42:52.505Z\"},"
    "\"activeQueueIds\":[\"4750048b-1994-41d4-8410-a5760c49a6cd\","
    " \"d3a783a9-547b-4bb8-88df-4bfb43ecc322\"],"
    "\"dateActiveQueuesChanged\":\"2021-03-25T04:15:44.913Z\"},"
    "\"metadata\":{\"CorrelationId\":\"9e8067c7-8b35-4e54-add9-db24e7d6f086\"}}";

/* A REST user entity (GET /api/v2/users?id=…&expand=routingStatus,presence). */
static const char real_user[] =
    "{\"id\":\"u-42\",\"name\":\"Ada Lovelace\",\"division\":{\"id\":\"d1\"},"
    "\"routingStatus\":{\"userId\":\"u-42\",\"status\":\"INTERACTING\","
    "\"startTime\":\"2026-11-21T19:59:20.500Z\"},"
    "\"presence\":{\"source\":\"PURECLOUD\",\"presenceDefinition\":{\"id\":\"pd-onq\","
    "\"systemPresence\":\"On "
    "Queue\"},\"message\":\"\",\"modifiedDate\":\"2026-11-21T19:59:28.123Z\","
    "\"primary\":true},\"state\":\"active\",\"version\":7}";

/* Valid UTF-8 without control characters (an independent checker). */
static int log_safe(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;

    while (*u) {
        int n, i;
        if (*u < 0x20 || *u == 0x7f) {
            return 0;
        }
        if (*u < 0x80) {
            u++;
            continue;
        }
        n = (*u & 0xe0) == 0xc0 ? 2 : (*u & 0xf0) == 0xe0 ? 3 : (*u & 0xf8) == 0xf0 ? 4 : 0;
        if (!n || (n == 2 && *u < 0xc2) || (n == 4 && *u > 0xf4)) {
            return 0;
        }
        for (i = 1; i < n; i++) {
            if ((u[i] & 0xc0) != 0x80) {
                return 0;
            }
        }
        u += n;
    }
    return 1;
}

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static gc_msg_kind_e parse_str(const char *text, gc_agent_event_t *ev, const char **why)
{
    return gc_notify_parse(pool, text, strlen(text), ev, why);
}

/* ------------------------------------------------------------------------ */

START_TEST(notify_kinds_table)
{
    static const struct {
        const char *in;
        gc_msg_kind_e kind;
        const char *user, *state;
    } t[] = {
        /* control messages (notes §2.3) */
        { "{\"topicName\":\"channel.metadata\",\"eventBody\":{\"message\":\"WebSocket "
          "Heartbeat\"}}",
          GC_MSG_HEARTBEAT, NULL, NULL },
        { "{\"topicName\":\"channel.metadata\",\"eventBody\":{\"message\":\"pong\"}}", GC_MSG_PONG,
          NULL, NULL },
        { " {\"eventBody\":{\"message\":\"pong\"} , \"topicName\":\"channel.metadata\"}\n",
          GC_MSG_PONG, NULL, NULL },
        { "{\"topicName\":\"v2.system.socket_closing\",\"eventBody\":{\"message\":\"maintenance\"}"
          "}",
          GC_MSG_SOCKET_CLOSING, NULL, NULL },
        { "{\"topicName\":\"v2.system.socket_closing\"}", GC_MSG_SOCKET_CLOSING, NULL, NULL },
        { "{\"topicName\":\"v2.system.no_longer_subscribed.streaming-0-abc\",\"eventBody\":"
          "{\"channelId\":\"streaming-0-abc\",\"systemTopicType\":\"no_longer_subscribed\","
          "\"reason\":\"another_channel_subscribed\"}}",
          GC_MSG_NO_LONGER_SUBSCRIBED, NULL, NULL },
        { "{\"topicName\":\"v2.system.token_revoked.streaming-0-abc\",\"eventBody\":"
          "{\"systemTopicType\":\"token_revoked\",\"reason\":\"user_tokens_revoked\"}}",
          GC_MSG_TOKEN_REVOKED, NULL, NULL },
        /* activity events */
        { real_activity, GC_MSG_EVENT, UID, "Available" },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\","
          "\"routingStatus\":{\"status\":\"IDLE\",\"startTime\":\"2026-11-21T19:59:28.123Z\"},"
          "\"presence\":{\"presenceDefinition\":{\"id\":\"x\",\"systemPresence\":\"ON_QUEUE\"},"
          "\"modifiedDate\":\"2026-11-21T19:00:00Z\"}}}",
          GC_MSG_EVENT, "u1", "IDLE" },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\","
          "\"presence\":{\"presenceDefinition\":{\"systemPresence\":\"meal\"}}}}",
          GC_MSG_EVENT, "u1", "Meal" },
        /* routing status only: an event, but no derivable state */
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\","
          "\"routingStatus\":{\"status\":\"IDLE\"},\"presence\":null}}",
          GC_MSG_EVENT, "u1", NULL },
        /* OnQueue without routing status: an event without a state */
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\","
          "\"presence\":{\"presenceDefinition\":{\"systemPresence\":\"OnQueue\"}}}}",
          GC_MSG_EVENT, "u1", NULL },
        /* unknown: valid envelopes we don't handle */
        { "{\"topicName\":\"channel.metadata\",\"eventBody\":{\"message\":\"hello\"}}",
          GC_MSG_UNKNOWN, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.presence\",\"eventBody\":{\"presenceDefinition\":"
          "{\"systemPresence\":\"ON_QUEUE\"}}}",
          GC_MSG_UNKNOWN, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.routingStatus\",\"eventBody\":{\"id\":\"u1\"}}",
          GC_MSG_UNKNOWN, NULL, NULL },
        { "{\"topicName\":\"v2.routing.queues.q1.users\",\"eventBody\":{}}", GC_MSG_UNKNOWN, NULL,
          NULL },
        { "{\"topicName\":\"v2.users.a.b.activity\",\"eventBody\":{\"id\":\"a.b\"}}",
          GC_MSG_UNKNOWN, NULL, NULL },
        { "{\"topicName\":\"v2.system.socket_closing_soon\"}", GC_MSG_UNKNOWN, NULL, NULL },
        { "{\"topicName\":\"v2.system.token_revokedX\"}", GC_MSG_UNKNOWN, NULL, NULL },
        { "{\"topicName\":\"\"}", GC_MSG_UNKNOWN, NULL, NULL },
        { "{\"result\":\"404\",\"topicName\":\"x\"}", GC_MSG_UNKNOWN, NULL, NULL },
        /* malformed: not JSON / wrong shape */
        { "", GC_MSG_MALFORMED, NULL, NULL },
        { "not json", GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"channel.metadata\"", GC_MSG_MALFORMED, NULL, NULL },
        { "[1,2]", GC_MSG_MALFORMED, NULL, NULL },
        { "42", GC_MSG_MALFORMED, NULL, NULL },
        { "null", GC_MSG_MALFORMED, NULL, NULL },
        { "\"channel.metadata\"", GC_MSG_MALFORMED, NULL, NULL },
        { "{}", GC_MSG_MALFORMED, NULL, NULL },
        { "{\"result\":\"200\",\"status\":\"subscribed\"}", GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":5}", GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":null}", GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":[\"channel.metadata\"]}", GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"chan\\u0000nel.metadata\"}", GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"channel.metadata\"}", GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"channel.metadata\",\"eventBody\":\"WebSocket Heartbeat\"}",
          GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"channel.metadata\",\"eventBody\":{\"message\":1}}", GC_MSG_MALFORMED,
          NULL, NULL },
        { "{\"topicName\":\"channel.metadata\",\"eventBody\":{}}", GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.activity\"}", GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":[]}", GC_MSG_MALFORMED, NULL,
          NULL },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\"}}",
          GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"routingStatus\":"
          "{\"status\":\"IDLE\"}}}",
          GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u2\","
          "\"routingStatus\":{\"status\":\"IDLE\"}}}",
          GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":7,"
          "\"routingStatus\":{\"status\":\"IDLE\"}}}",
          GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\","
          "\"routingStatus\":\"IDLE\"}}",
          GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\","
          "\"routingStatus\":{\"status\":\"IDLE\",\"startTime\":1700000000}}}",
          GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\","
          "\"routingStatus\":{\"status\":\"IDLE\",\"startTime\":\"yesterday\"}}}",
          GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\","
          "\"routingStatus\":{\"status\":\"SLEEPING\"},\"presence\":{\"presenceDefinition\":"
          "{\"systemPresence\":\"Napping\"}}}}",
          GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\","
          "\"presence\":{\"presenceDefinition\":\"AVAILABLE\"}}}",
          GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\","
          "\"presence\":{\"presenceDefinition\":{\"systemPresence\":true}}}}",
          GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\","
          "\"routingStatus\":{\"status\":\"IDLE\"},\"activeQueueIds\":\"q1\"}}",
          GC_MSG_MALFORMED, NULL, NULL },
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\","
          "\"routingStatus\":{\"status\":\"IDLE\"}}} trailing",
          GC_MSG_MALFORMED, NULL, NULL },
        /* fails after name and presence were read: nothing of it may leak into ev */
        { "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\","
          "\"name\":\"N\",\"presence\":{\"presenceDefinition\":{\"id\":\"p\","
          "\"systemPresence\":\"AVAILABLE\"},\"modifiedDate\":\"2026-02-30T00:00:00Z\"}}}",
          GC_MSG_MALFORMED, NULL, NULL },
    };
    size_t i;

    for (i = 0; i < NELTS(t); i++) {
        gc_agent_event_t ev;
        const char *why = "unset";
        gc_msg_kind_e k;

        memset(&ev, 0xa5, sizeof(ev));
        k = parse_str(t[i].in, &ev, &why);
        ck_assert_msg(k == t[i].kind, "#%zu: %s → %s, want %s (%s)", i, t[i].in,
                      gc_msg_kind_name(k), gc_msg_kind_name(t[i].kind), why ? why : "-");
        if (k == GC_MSG_MALFORMED || k == GC_MSG_UNKNOWN) {
            ck_assert_msg(why && *why && log_safe(why) && strlen(why) < 160, "#%zu why", i);
        }
        else {
            ck_assert_msg(why == NULL, "#%zu: why set for %s", i, gc_msg_kind_name(k));
        }
        if (k == GC_MSG_EVENT) {
            ck_assert_str_eq(ev.user_id, t[i].user);
            ck_assert_msg(str_eq(ev.state, t[i].state), "#%zu: state %s, want %s", i,
                          ev.state ? ev.state : "NULL", t[i].state ? t[i].state : "NULL");
        }
        else {
            gc_agent_event_t zero;
            memset(&zero, 0, sizeof(zero));
            ck_assert_msg(!memcmp(&ev, &zero, sizeof(ev)), "#%zu: ev not zeroed", i);
        }
        /* ev and why are optional */
        ck_assert_int_eq(gc_notify_parse(pool, t[i].in, strlen(t[i].in), NULL, NULL), k);
    }
}
END_TEST

START_TEST(notify_real_activity_fields)
{
    gc_agent_event_t ev;
    apr_time_t rt, pt;

    ck_assert_int_eq(parse_str(real_activity, &ev, NULL), GC_MSG_EVENT);
    ck_assert_int_eq(gc_time_parse("2021-05-14T09:03:17.067Z", &rt), 0);
    ck_assert_int_eq(gc_time_parse("2021-05-14T09:03:17.047Z", &pt), 0);
    ck_assert_str_eq(ev.user_id, UID);
    ck_assert_ptr_null(ev.user_name);
    ck_assert_str_eq(ev.presence, "Available");
    ck_assert_str_eq(ev.presence_id, "6a3af858-942f-489d-9700-5f9bcdcdae9b");
    ck_assert_str_eq(ev.routing_status, "OFF_QUEUE");
    ck_assert_int_eq(ev.routing_at, USEC(1620982997) + 67000);
    ck_assert_int_eq(ev.routing_at, rt);
    ck_assert_int_eq(ev.presence_at, pt);
    ck_assert_int_eq(ev.event_at, rt); /* the later of the two */
    ck_assert_str_eq(ev.state, "Available");
    ck_assert_str_eq(ev.queue_ids, "[\"4750048b-1994-41d4-8410-a5760c49a6cd\","
                                   "\"d3a783a9-547b-4bb8-88df-4bfb43ecc322\"]");
    ck_assert_str_eq(ev.correlation_id, "9e8067c7-8b35-4e54-add9-db24e7d6f086");
}
END_TEST

START_TEST(notify_not_nul_terminated)
{
    /* The buffer holds exactly the message: no terminator, and a second
     * message right after it must not be read. */
    const char *two = "{\"topicName\":\"channel.metadata\",\"eventBody\":{\"message\":\"pong\"}}"
                      "{\"topicName\":\"v2.system.socket_closing\"}";
    size_t first =
        strlen("{\"topicName\":\"channel.metadata\",\"eventBody\":{\"message\":\"pong\"}}");
    char *exact = malloc(first);

    memcpy(exact, two, first);
    ck_assert_int_eq(gc_notify_parse(pool, exact, first, NULL, NULL), GC_MSG_PONG);
    ck_assert_int_eq(gc_notify_parse(pool, exact, first - 1, NULL, NULL), GC_MSG_MALFORMED);
    ck_assert_int_eq(gc_notify_parse(pool, two, strlen(two), NULL, NULL), GC_MSG_MALFORMED);
    ck_assert_int_eq(gc_notify_parse(pool, exact, 0, NULL, NULL), GC_MSG_MALFORMED);
    ck_assert_int_eq(gc_notify_parse(pool, NULL, 0, NULL, NULL), GC_MSG_MALFORMED);
    ck_assert_int_eq(gc_notify_parse(pool, NULL, 10, NULL, NULL), GC_MSG_MALFORMED);
    free(exact);
    /* an embedded NUL byte is not JSON */
    ck_assert_int_eq(
        gc_notify_parse(pool, "{\"topicName\":\"channel.metadata\"\0}", 33, NULL, NULL),
        GC_MSG_MALFORMED);
}
END_TEST

START_TEST(notify_why_is_short_and_safe)
{
    const char *why = NULL;
    char *big, *topic;
    size_t i;

    /* a 10 000-character topic is echoed only as a short excerpt */
    topic = apr_palloc(pool, 10001);
    for (i = 0; i < 10000; i++) {
        topic[i] = (char)('a' + i % 26);
    }
    topic[10000] = '\0';
    big = apr_psprintf(pool, "{\"topicName\":\"%s\"}", topic);
    ck_assert_int_eq(parse_str(big, NULL, &why), GC_MSG_UNKNOWN);
    ck_assert_ptr_nonnull(why);
    ck_assert_msg(strlen(why) <= 100, "why is %zu bytes", strlen(why));
    ck_assert_ptr_nonnull(strstr(why, "abcdefghij"));
    ck_assert_ptr_null(strstr(why, topic + 60));

    /* control characters, quotes and multibyte text: still valid UTF-8, no controls */
    ck_assert_int_eq(parse_str("{\"topicName\":\"x\\n\\u0001\\u001b[31m\\\"'\\\\\\u00e9\\u20ac"
                               "\\ud83d\\ude00\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
                               "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
                               "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}",
                               NULL, &why),
                     GC_MSG_UNKNOWN);
    ck_assert_msg(log_safe(why), "unsafe why: %s", why);
    ck_assert_ptr_nonnull(strstr(why, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80")); /* é€😀 kept */
    ck_assert_ptr_null(strchr(why, '\x1b'));

    /* invalid UTF-8 in the input: jansson's error must not leak raw bytes */
    ck_assert_int_eq(parse_str("{\"topicName\":\"\xff\xfe\xc3(\"}", NULL, &why), GC_MSG_MALFORMED);
    ck_assert_msg(log_safe(why), "unsafe why: %s", why);
    ck_assert_int_eq(parse_str("\xe2\x82", NULL, &why), GC_MSG_MALFORMED);
    ck_assert_msg(log_safe(why), "unsafe why: %s", why);
    big = apr_psprintf(pool, "{\"topicName\":%s}", topic); /* a 10 000-byte bad token */
    ck_assert_int_eq(parse_str(big, NULL, &why), GC_MSG_MALFORMED);
    ck_assert_msg(log_safe(why) && strlen(why) <= 120, "why: %s", why);
}
END_TEST

START_TEST(notify_hostile_shapes)
{
    static const char *const hostile[] = {
        "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\",\"routingStatus\":"
        "{\"status\":\"IDLE\",\"startTime\":\"2026-11-21T19:59:28.123Z\"},\"n\":1e999999}}",
        "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\",\"routingStatus\":"
        "{\"status\":\"IDLE\"},\"n\":123456789012345678901234567890}}",
        "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\",\"routingStatus\":"
        "{\"status\":\"IDLE\"},\"n\":-1e-999999}}",
        "{\"topicName\":\"v2.users.u1.activity\",\"topicName\":\"channel.metadata\"}",
        "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\",\"routingStatus\":"
        "{\"status\":\"IDLE\",\"startTime\":\"9999-12-31T23:59:59.999999999-23:59\"}}}",
        "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\",\"routingStatus\":"
        "{\"status\":\"IDLE\",\"startTime\":\"0000-01-01T00:00:00+23:59\"}}}",
    };
    size_t i, depth;

    for (i = 0; i < NELTS(hostile); i++) {
        gc_agent_event_t ev;
        gc_msg_kind_e k = parse_str(hostile[i], &ev, NULL);
        ck_assert_msg(k >= GC_MSG_EVENT && k <= GC_MSG_UNKNOWN, "#%zu", i);
    }
    /* deep nesting, at top level and inside the body */
    for (depth = 10; depth <= 200000; depth *= 20) {
        char *s = malloc(depth * 2 + 200), *q = s;
        gc_agent_event_t ev;

        q += sprintf(q, "{\"topicName\":\"v2.users.u1.activity\",\"eventBody\":{\"id\":\"u1\","
                        "\"routingStatus\":{\"status\":\"IDLE\"},\"x\":");
        memset(q, '[', depth);
        memset(q + depth, ']', depth);
        strcpy(q + 2 * depth, "}}");
        ck_assert_int_eq(parse_str(s, &ev, NULL), depth < 2000 ? GC_MSG_EVENT : GC_MSG_MALFORMED);
        memset(s, '[', depth * 2);
        ck_assert_int_eq(gc_notify_parse(pool, s, depth * 2, &ev, NULL), GC_MSG_MALFORMED);
        free(s);
    }
}
END_TEST

START_TEST(event_from_rest_user)
{
    json_t *j = json_loads(real_user, 0, NULL), *k;
    gc_agent_event_t ev;
    apr_time_t pt;

    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(gc_agent_event_from_json(pool, j, &ev), 0);
    ck_assert_str_eq(ev.user_id, "u-42");
    ck_assert_str_eq(ev.user_name, "Ada Lovelace");
    ck_assert_str_eq(ev.presence, "OnQueue");
    ck_assert_str_eq(ev.presence_id, "pd-onq");
    ck_assert_str_eq(ev.routing_status, "INTERACTING");
    ck_assert_str_eq(ev.state, "INTERACTING");
    ck_assert_int_eq(gc_time_parse("2026-11-21T19:59:28.123Z", &pt), 0);
    ck_assert_int_eq(ev.presence_at, pt);
    ck_assert_int_eq(ev.routing_at, USEC(1795291160) + 500000);
    ck_assert_int_eq(ev.event_at, pt); /* presence is the later here */
    ck_assert_ptr_null(ev.queue_ids);
    ck_assert_ptr_null(ev.correlation_id);

    /* routingStatus.userId must be the user's */
    k = json_deep_copy(j);
    json_object_set_new(json_object_get(k, "routingStatus"), "userId", json_string("u-43"));
    ck_assert_int_eq(gc_agent_event_from_json(pool, k, &ev), -1);
    json_decref(k);

    /* event_at is cut to the millisecond */
    k = json_deep_copy(j);
    json_object_set_new(json_object_get(k, "routingStatus"), "startTime",
                        json_string("2030-01-01T00:00:00.123456Z"));
    ck_assert_int_eq(gc_agent_event_from_json(pool, k, &ev), 0);
    ck_assert_int_eq(ev.routing_at % 1000000, 123456);
    ck_assert_int_eq(ev.event_at, ev.routing_at - 456);
    json_decref(k);

    /* no id / bad id / not an object / NULL */
    k = json_deep_copy(j);
    json_object_del(k, "id");
    ck_assert_int_eq(gc_agent_event_from_json(pool, k, &ev), -1);
    json_object_set_new(k, "id", json_string(""));
    ck_assert_int_eq(gc_agent_event_from_json(pool, k, &ev), -1);
    json_object_set_new(k, "id", json_string("u 42"));
    ck_assert_int_eq(gc_agent_event_from_json(pool, k, &ev), -1);
    json_object_set_new(k, "id", json_string("u-42"));
    json_object_set_new(k, "name", json_integer(5));
    ck_assert_int_eq(gc_agent_event_from_json(pool, k, &ev), -1);
    json_decref(k);
    ck_assert_int_eq(gc_agent_event_from_json(pool, json_object_get(j, "name"), &ev), -1);
    ck_assert_int_eq(gc_agent_event_from_json(pool, NULL, &ev), -1);
    ck_assert_int_eq(gc_agent_event_from_json(pool, j, NULL), -1);
    json_decref(j);
}
END_TEST

START_TEST(event_queue_ids)
{
    static const struct {
        const char *body;
        const char *want;
    } t[] = {
        { "{\"id\":\"u\",\"routingStatus\":{\"status\":\"IDLE\"},\"activeQueueIds\":[]}", "[]" },
        { "{\"id\":\"u\",\"routingStatus\":{\"status\":\"IDLE\"},\"activeQueueIds\":[ \"a\" , "
          "\"b\" ]}",
          "[\"a\",\"b\"]" },
        { "{\"id\":\"u\",\"routingStatus\":{\"status\":\"IDLE\"},\"activeQueueIds\":[1,{}]}",
          NULL },
        { "{\"id\":\"u\",\"routingStatus\":{\"status\":\"IDLE\"},\"activeQueueIds\":null}", NULL },
        { "{\"id\":\"u\",\"routingStatus\":{\"status\":\"IDLE\"}}", NULL },
    };
    size_t i;

    for (i = 0; i < NELTS(t); i++) {
        json_t *j = json_loads(t[i].body, 0, NULL);
        gc_agent_event_t ev;
        ck_assert_int_eq(gc_agent_event_from_json(pool, j, &ev), 0);
        ck_assert_msg(str_eq(ev.queue_ids, t[i].want), "#%zu: %s", i, ev.queue_ids);
        json_decref(j);
    }
}
END_TEST

START_TEST(normalise_presence_casings)
{
    static const struct {
        const char *in, *want;
    } t[] = {
        { "Available", "Available" },
        { "AVAILABLE", "Available" },
        { "available", "Available" },
        { "Away", "Away" },
        { "AWAY", "Away" },
        { "Busy", "Busy" },
        { "BUSY", "Busy" },
        { "Break", "Break" },
        { "BREAK", "Break" },
        { "Meal", "Meal" },
        { "MEAL", "Meal" },
        { "Meeting", "Meeting" },
        { "MEETING", "Meeting" },
        { "Training", "Training" },
        { "TRAINING", "Training" },
        { "Offline", "Offline" },
        { "OFFLINE", "Offline" },
        { "Idle", "Idle" },
        { "IDLE", "Idle" },
        { "idle", "Idle" },
        { "OnQueue", "OnQueue" },
        { "ON_QUEUE", "OnQueue" },
        { "On Queue", "OnQueue" },
        { "onqueue", "OnQueue" },
        { "on_queue", "OnQueue" },
        { " On  Queue ", "OnQueue" },
        { "on-queue", "OnQueue" },
        { "", NULL },
        { " ", NULL },
        { "_", NULL },
        { "Unavailable", NULL },
        { "OnQueues", NULL },
        { "On", NULL },
        { "Availabl", NULL },
        { "INTERACTING", NULL },
        { "OFF_QUEUE", NULL },
        { "Ävailable", NULL },
        { "Available\n", NULL },
    };
    size_t i;

    for (i = 0; i < NELTS(t); i++) {
        const char *got = gc_presence_normalise(t[i].in);
        ck_assert_msg(str_eq(got, t[i].want), "'%s' → %s", t[i].in, got ? got : "NULL");
        if (got) {
            ck_assert(got == gc_presence_normalise(t[i].want)); /* one static string */
        }
    }
    ck_assert_ptr_null(gc_presence_normalise(NULL));
}
END_TEST

START_TEST(normalise_routing_casings)
{
    static const struct {
        const char *in, *want;
    } t[] = {
        { "IDLE", "IDLE" },
        { "idle", "IDLE" },
        { "Idle", "IDLE" },
        { "INTERACTING", "INTERACTING" },
        { "interacting", "INTERACTING" },
        { "COMMUNICATING", "COMMUNICATING" },
        { "Communicating", "COMMUNICATING" },
        { "NOT_RESPONDING", "NOT_RESPONDING" },
        { "not_responding", "NOT_RESPONDING" },
        { "Not Responding", "NOT_RESPONDING" },
        { "NotResponding", "NOT_RESPONDING" },
        { "OFF_QUEUE", "OFF_QUEUE" },
        { "off_queue", "OFF_QUEUE" },
        { "OffQueue", "OFF_QUEUE" },
        { "", NULL },
        { "OFFLINE", NULL },
        { "__EMPTY__", NULL },
        { "ON_QUEUE", NULL },
        { "Available", NULL },
        { "IDLER", NULL },
    };
    size_t i;

    for (i = 0; i < NELTS(t); i++) {
        const char *got = gc_routing_status_normalise(t[i].in);
        ck_assert_msg(str_eq(got, t[i].want), "'%s' → %s", t[i].in, got ? got : "NULL");
    }
    ck_assert_ptr_null(gc_routing_status_normalise(NULL));
}
END_TEST

START_TEST(derive_table)
{
    static const char *const pres[] = { "Available", "Away",     "Busy",    "Break", "Meal",
                                        "Meeting",   "Training", "Offline", "Idle",  "OnQueue" };
    static const char *const upper[] = { "AVAILABLE", "AWAY",     "BUSY",    "BREAK", "MEAL",
                                         "MEETING",   "TRAINING", "OFFLINE", "IDLE",  "ON_QUEUE" };
    static const char *const rs[] = { "IDLE",           "INTERACTING", "COMMUNICATING",
                                      "NOT_RESPONDING", "OFF_QUEUE",   NULL };
    size_t i, j;
    int cells = 0;

    for (i = 0; i < NELTS(pres); i++) {
        for (j = 0; j < NELTS(rs); j++) {
            const char *want = i == 9 ? rs[j] : pres[i];
            const char *got = gc_state_derive(pres[i], rs[j]);
            ck_assert_msg(str_eq(got, want), "%s × %s → %s", pres[i], rs[j] ? rs[j] : "NULL",
                          got ? got : "NULL");
            ck_assert_msg(str_eq(gc_state_derive(upper[i], rs[j]), want), "%s", upper[i]);
            if (got) {
                ck_assert(gc_state_valid(got));
            }
            cells++;
        }
    }
    ck_assert_int_eq(cells, 60);
    ck_assert_str_eq(gc_state_derive("On Queue", "not_responding"), "NOT_RESPONDING");
    ck_assert_ptr_null(gc_state_derive("OnQueue", "bogus"));
    ck_assert_ptr_null(gc_state_derive(NULL, "IDLE"));
    ck_assert_ptr_null(gc_state_derive("Napping", "IDLE"));
    ck_assert_ptr_null(gc_state_derive(NULL, NULL));
}
END_TEST

START_TEST(state_names_exact)
{
    static const char *const ok[] = { "Available",     "Away",           "Busy",     "Break",
                                      "Meal",          "Meeting",        "Training", "Offline",
                                      "Idle",          "OnQueue",        "IDLE",     "INTERACTING",
                                      "COMMUNICATING", "NOT_RESPONDING", "OFF_QUEUE" };
    static const char *const bad[] = { "",           "idle",     "available", "AVAILABLE",
                                       "ON_QUEUE",   "On Queue", "Off_Queue", "Interacting",
                                       "Available ", "OFFLINE" };
    size_t i;

    for (i = 0; i < NELTS(ok); i++) {
        ck_assert_msg(gc_state_valid(ok[i]), "%s", ok[i]);
    }
    for (i = 0; i < NELTS(bad); i++) {
        ck_assert_msg(!gc_state_valid(bad[i]), "%s", bad[i]);
    }
    ck_assert(!gc_state_valid(NULL));
}
END_TEST

START_TEST(judge_table)
{
    static const struct {
        int has_cur;
        const char *cur_state;
        apr_time_t cur_at;
        const char *ev_state;
        apr_time_t ev_at;
        gc_ev_verdict_e want;
    } t[] = {
        { 0, NULL, 0, "IDLE", 100, GC_EV_TRANSITION },
        { 0, NULL, 0, "Available", 0, GC_EV_TRANSITION },
        { 1, "IDLE", 100, "IDLE", 100, GC_EV_DUPLICATE },
        { 1, "IDLE", 100, "IDLE", 101, GC_EV_REFRESH },
        { 1, "IDLE", 100, "IDLE", 99, GC_EV_STALE },
        { 1, "IDLE", 100, "INTERACTING", 99, GC_EV_STALE },
        { 1, "IDLE", 100, "INTERACTING", 100, GC_EV_TRANSITION },
        { 1, "IDLE", 100, "INTERACTING", 5000, GC_EV_TRANSITION },
        { 1, "Idle", 100, "IDLE", 100, GC_EV_TRANSITION }, /* presence ≠ routing status */
        { 1, NULL, 100, "IDLE", 100, GC_EV_TRANSITION },
        { 1, "IDLE", 100, NULL, 200, GC_EV_STALE }, /* nothing to record */
        { 0, NULL, 0, NULL, 200, GC_EV_STALE },
        { 1, "Away", -5, "Away", -5, GC_EV_DUPLICATE },
    };
    size_t i;

    for (i = 0; i < NELTS(t); i++) {
        gc_agent_current_t cur = { t[i].cur_state, t[i].cur_at };
        gc_agent_event_t ev;
        memset(&ev, 0, sizeof(ev));
        ev.user_id = "u";
        ev.state = t[i].ev_state;
        ev.event_at = t[i].ev_at;
        ck_assert_msg(gc_event_judge(t[i].has_cur ? &cur : NULL, &ev) == t[i].want,
                      "row %zu: got %d", i, gc_event_judge(t[i].has_cur ? &cur : NULL, &ev));
    }
}
END_TEST

START_TEST(judge_parsed_sequence)
{
    /* Out-of-order and replayed notifications, judged as the store would. */
    static const struct {
        const char *sp, *rs, *at;
        gc_ev_verdict_e want;
    } seq[] = {
        { "ON_QUEUE", "IDLE", "2026-11-21T10:00:00.000Z", GC_EV_TRANSITION },
        { "ON_QUEUE", "IDLE", "2026-11-21T10:00:00.000Z", GC_EV_DUPLICATE },
        { "ON_QUEUE", "INTERACTING", "2026-11-21T10:05:00.000Z", GC_EV_TRANSITION },
        { "ON_QUEUE", "IDLE", "2026-11-21T10:04:00.000Z", GC_EV_STALE },
        { "ON_QUEUE", "INTERACTING", "2026-11-21T10:06:00.000+00:00", GC_EV_REFRESH },
        { "BREAK", "OFF_QUEUE", "2026-11-21T12:06:01.000+02:00", GC_EV_TRANSITION },
    };
    gc_agent_current_t cur = { NULL, 0 };
    int have = 0;
    size_t i;

    for (i = 0; i < NELTS(seq); i++) {
        const char *msg = apr_psprintf(
            pool,
            "{\"topicName\":\"v2.users.u9.activity\",\"eventBody\":{\"id\":\"u9\","
            "\"routingStatus\":{\"status\":\"%s\",\"startTime\":\"%s\"},"
            "\"presence\":{\"presenceDefinition\":{\"id\":\"p\",\"systemPresence\":\"%s\"},"
            "\"modifiedDate\":\"2026-11-21T09:00:00Z\"}}}",
            seq[i].rs, seq[i].at, seq[i].sp);
        gc_agent_event_t ev;
        gc_ev_verdict_e v;

        ck_assert_int_eq(parse_str(msg, &ev, NULL), GC_MSG_EVENT);
        v = gc_event_judge(have ? &cur : NULL, &ev);
        ck_assert_msg(v == seq[i].want, "step %zu: %d", i, v);
        if (v == GC_EV_TRANSITION || v == GC_EV_REFRESH) {
            cur.state = ev.state;
            cur.event_at = ev.event_at;
            have = 1;
        }
    }
    ck_assert_str_eq(cur.state, "Break");
}
END_TEST

START_TEST(topics_round_trip)
{
    static const char *const bad_topics[] = {
        "v2.users..activity",    "v2.users.activity",
        "v2.users.u1.presence",  "v2.users.u1.activity.x",
        "V2.users.u1.activity",  "v2.users.u 1.activity",
        "v2.users.a.b.activity", "",
        "v2.users.u1.activit",   "xv2.users.u1.activity",
    };
    size_t i;

    ck_assert_str_eq(gc_topic_for_user(pool, UID), "v2.users." UID ".activity");
    ck_assert_str_eq(gc_topic_user(pool, "v2.users." UID ".activity"), UID);
    ck_assert_str_eq(gc_topic_user(pool, gc_topic_for_user(pool, "a_b-C9")), "a_b-C9");
    ck_assert_str_eq(gc_topic_user(pool, "v2.users.activity.activity"), "activity");
    for (i = 0; i < NELTS(bad_topics); i++) {
        ck_assert_msg(gc_topic_user(pool, bad_topics[i]) == NULL, "%s", bad_topics[i]);
    }
    ck_assert_ptr_null(gc_topic_user(pool, NULL));
    ck_assert_ptr_null(gc_topic_for_user(pool, NULL));
    ck_assert_ptr_null(gc_topic_for_user(pool, ""));
    ck_assert_ptr_null(gc_topic_for_user(pool, "a.b"));
    ck_assert_ptr_null(gc_topic_for_user(pool, "a\"b"));
    ck_assert_ptr_null(gc_topic_for_user(pool, apr_psprintf(pool, "%065d", 1)));
    ck_assert_ptr_nonnull(gc_topic_for_user(pool, apr_psprintf(pool, "%064d", 1)));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Sharding                                                                 */

static apr_array_header_t *make_users(int from, int to)
{
    apr_array_header_t *a = apr_array_make(pool, to - from, sizeof(const char *));
    int i;

    for (i = from; i < to; i++) {
        APR_ARRAY_PUSH(a, const char *) = apr_psprintf(pool, "user-%05d", i);
    }
    return a;
}

static int shard_size(const apr_array_header_t *shards, int i)
{
    return APR_ARRAY_IDX(shards, i, const apr_array_header_t *)->nelts;
}

/* Every input user exactly once, no shard over the limit. */
static void check_partition(const apr_array_header_t *users, const apr_array_header_t *shards,
                            int per)
{
    apr_hash_t *seen = apr_hash_make(pool);
    int i, j, total = 0;

    for (i = 0; i < shards->nelts; i++) {
        const apr_array_header_t *s = APR_ARRAY_IDX(shards, i, const apr_array_header_t *);
        ck_assert_int_le(s->nelts, per);
        for (j = 0; j < s->nelts; j++) {
            const char *u = APR_ARRAY_IDX(s, j, const char *);
            ck_assert_msg(!apr_hash_get(seen, u, APR_HASH_KEY_STRING), "%s twice", u);
            apr_hash_set(seen, u, APR_HASH_KEY_STRING, u);
            total++;
        }
    }
    for (i = 0; i < users->nelts; i++) {
        ck_assert(apr_hash_get(seen, APR_ARRAY_IDX(users, i, const char *), APR_HASH_KEY_STRING));
    }
    ck_assert_int_eq(total, (int)apr_hash_count(seen));
}

START_TEST(shard_fresh_2500)
{
    apr_array_header_t *users = make_users(0, 2500), *shards, *again;
    int i, j;

    shards = gc_topics_shard(pool, users, NULL, 1000);
    ck_assert_int_eq(shards->nelts, 3);
    ck_assert_int_eq(shard_size(shards, 0), 1000);
    ck_assert_int_eq(shard_size(shards, 1), 1000);
    ck_assert_int_eq(shard_size(shards, 2), 500);
    check_partition(users, shards, 1000);
    /* deterministic: input order, same result twice */
    ck_assert_str_eq(APR_ARRAY_IDX(APR_ARRAY_IDX(shards, 2, apr_array_header_t *), 0, const char *),
                     "user-02000");
    again = gc_topics_shard(pool, users, apr_hash_make(pool), 1000);
    for (i = 0; i < 3; i++) {
        const apr_array_header_t *a = APR_ARRAY_IDX(shards, i, apr_array_header_t *);
        const apr_array_header_t *b = APR_ARRAY_IDX(again, i, apr_array_header_t *);
        ck_assert_int_eq(a->nelts, b->nelts);
        for (j = 0; j < a->nelts; j++) {
            ck_assert_str_eq(APR_ARRAY_IDX(a, j, const char *), APR_ARRAY_IDX(b, j, const char *));
        }
    }
    /* edge sizes */
    ck_assert_int_eq(gc_topics_shard(pool, make_users(0, 1000), NULL, 1000)->nelts, 1);
    ck_assert_int_eq(gc_topics_shard(pool, make_users(0, 1001), NULL, 1000)->nelts, 2);
    ck_assert_int_eq(gc_topics_shard(pool, make_users(0, 0), NULL, 1000)->nelts, 0);
    ck_assert_int_eq(gc_topics_shard(pool, NULL, NULL, 1000)->nelts, 0);
    ck_assert_int_eq(gc_topics_shard(pool, make_users(0, 5), NULL, 0)->nelts, 5);
    ck_assert_int_eq(gc_topics_shard(pool, make_users(0, 5), NULL, -3)->nelts, 5);
}
END_TEST

START_TEST(shard_stable_add_remove)
{
    apr_array_header_t *users = make_users(0, 2500), *shards, *next, *kept;
    apr_hash_t *cur, *now;
    int i;

    shards = gc_topics_shard(pool, users, NULL, 1000);
    cur = gc_topics_shard_map(pool, shards);
    ck_assert_int_eq(apr_hash_count(cur), 2500);
    ck_assert_int_eq(gc_topics_shard_get(cur, "user-00000"), 0);
    ck_assert_int_eq(gc_topics_shard_get(cur, "user-01999"), 1);
    ck_assert_int_eq(gc_topics_shard_get(cur, "user-02499"), 2);
    ck_assert_int_eq(gc_topics_shard_get(cur, "user-09999"), -1);

    /* Remove 100 users of shard 0 and 50 of shard 1; add 300 new users, listed
     * first so input order alone would move everybody. */
    kept = make_users(2500, 2800);
    for (i = 0; i < 2500; i++) {
        if ((i < 1000 && i % 10 == 3) || (i >= 1000 && i < 2000 && i % 20 == 7)) {
            continue;
        }
        APR_ARRAY_PUSH(kept, const char *) = APR_ARRAY_IDX(users, i, const char *);
    }
    ck_assert_int_eq(kept->nelts, 2650);
    next = gc_topics_shard(pool, kept, cur, 1000);
    check_partition(kept, next, 1000);
    ck_assert_int_eq(next->nelts, 3);
    ck_assert_int_eq(shard_size(next, 0), 1000); /* 900 stayed + 100 new */
    ck_assert_int_eq(shard_size(next, 1), 1000); /* 950 stayed + 50 new */
    ck_assert_int_eq(shard_size(next, 2), 650);  /* 500 stayed + 150 new */
    now = gc_topics_shard_map(pool, next);
    for (i = 300; i < kept->nelts; i++) { /* nobody old moved */
        const char *u = APR_ARRAY_IDX(kept, i, const char *);
        ck_assert_int_eq(gc_topics_shard_get(now, u), gc_topics_shard_get(cur, u));
    }
    ck_assert_int_eq(gc_topics_shard_get(now, "user-02500"), 0); /* first new fills shard 0 */
    ck_assert_int_eq(gc_topics_shard_get(now, "user-02799"), 2);

    /* Empty shard 1 entirely: it stays (empty) so shard 2 keeps its index. */
    kept = apr_array_make(pool, 10, sizeof(const char *));
    APR_ARRAY_PUSH(kept, const char *) = "user-00000";
    APR_ARRAY_PUSH(kept, const char *) = "user-02499";
    next = gc_topics_shard(pool, kept, cur, 1000);
    ck_assert_int_eq(next->nelts, 3);
    ck_assert_int_eq(shard_size(next, 0), 1);
    ck_assert_int_eq(shard_size(next, 1), 0);
    ck_assert_int_eq(shard_size(next, 2), 1);
    /* ...and trailing empties are dropped */
    kept->nelts = 1;
    ck_assert_int_eq(gc_topics_shard(pool, kept, cur, 1000)->nelts, 1);
}
END_TEST

START_TEST(shard_edge_maps)
{
    apr_array_header_t *users = make_users(0, 10), *shards;
    apr_hash_t *cur = apr_hash_make(pool);

    /* duplicates and NULL/empty ids are dropped */
    APR_ARRAY_PUSH(users, const char *) = "user-00003";
    APR_ARRAY_PUSH(users, const char *) = NULL;
    APR_ARRAY_PUSH(users, const char *) = "";
    shards = gc_topics_shard(pool, users, NULL, 4);
    ck_assert_int_eq(shards->nelts, 3);
    ck_assert_int_eq(shard_size(shards, 0) + shard_size(shards, 1) + shard_size(shards, 2), 10);

    /* shard index 0 must survive the map (a raw 0 would be NULL = absent) */
    gc_topics_shard_set(cur, "user-00009", 0);
    ck_assert_int_eq(gc_topics_shard_get(cur, "user-00009"), 0);
    /* a bogus far-away index is not honoured with thousands of empty shards */
    gc_topics_shard_set(cur, "user-00008", 1000000);
    shards = gc_topics_shard(pool, make_users(0, 10), cur, 4);
    ck_assert_int_eq(shards->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(APR_ARRAY_IDX(shards, 0, apr_array_header_t *), 0, const char *),
                     "user-00009");
    /* a full shard (per_channel shrank) overflows into the first with room */
    cur = gc_topics_shard_map(pool, gc_topics_shard(pool, make_users(0, 2500), NULL, 1000));
    shards = gc_topics_shard(pool, make_users(0, 2500), cur, 500);
    ck_assert_int_eq(shards->nelts, 5);
    ck_assert_int_eq(gc_topics_shard_get(gc_topics_shard_map(pool, shards), "user-00499"), 0);
    ck_assert_int_eq(gc_topics_shard_get(gc_topics_shard_map(pool, shards), "user-01000"), 1);
    /* set with a negative index removes */
    gc_topics_shard_set(cur, "user-00000", -1);
    ck_assert_int_eq(gc_topics_shard_get(cur, "user-00000"), -1);
    ck_assert_int_eq(gc_topics_shard_get(NULL, "user-00000"), -1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Time                                                                     */

START_TEST(time_parse_accepts)
{
    static const struct {
        const char *in;
        apr_time_t want;
    } t[] = {
        { "2026-11-21T19:59:28.123Z", USEC(1795291168) + 123000 },
        { "2026-11-21T19:59:28Z", USEC(1795291168) },
        { "2026-11-21T19:59:28.1Z", USEC(1795291168) + 100000 },
        { "2026-11-21T19:59:28.123456Z", USEC(1795291168) + 123456 },
        { "2026-11-21T19:59:28.1234567899Z", USEC(1795291168) + 123456 },
        { "2026-11-21T19:59:28.000001Z", USEC(1795291168) + 1 },
        { "2026-11-21T19:59:28.123+00:00", USEC(1795291168) + 123000 },
        { "2026-11-21T21:59:28.123+02:00", USEC(1795291168) + 123000 },
        { "2026-11-21T14:29:28-05:30", USEC(1795291168) },
        { "2026-11-21t19:59:28z", USEC(1795291168) },
        { "1970-01-01T00:00:00Z", 0 },
        { "1969-12-31T23:59:59.5Z", -500000 },
        { "2000-01-01T00:00:00Z", USEC(946684800) },
        { "2024-02-29T23:59:59Z", USEC(1709251199) },
        { "2000-02-29T00:00:00Z", USEC(951782400) },
        { "9999-12-31T23:59:59Z", USEC(253402300799LL) },
        { "0001-01-01T00:00:00Z", USEC(-62135596800LL) },
    };
    size_t i;

    for (i = 0; i < NELTS(t); i++) {
        apr_time_t got = 42;
        ck_assert_msg(gc_time_parse(t[i].in, &got) == 0, "%s rejected", t[i].in);
        ck_assert_msg(got == t[i].want, "%s → %" APR_INT64_T_FMT ", want %" APR_INT64_T_FMT,
                      t[i].in, got, t[i].want);
    }
}
END_TEST

START_TEST(time_parse_rejects)
{
    static const char *const bad[] = {
        "",
        "garbage",
        "2026",
        "2026-11-21",
        "2026-11-21T19:59",
        "2026-11-21T19:59:28",
        "2026-11-21 19:59:28Z",
        "2026-11-21T19:59:28.Z",
        "2026-11-21T19:59:28.123",
        "2026-11-21T19:59:28.123ZZ",
        "2026-11-21T19:59:28.123Z ",
        " 2026-11-21T19:59:28Z",
        "2026-11-21T19:59:28.12a3Z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-11-00T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2026-11-21T24:00:00Z",
        "2026-11-21T23:60:00Z",
        "2026-11-21T23:59:60Z",
        "2026-11-21T19:59:28+24:00",
        "2026-11-21T19:59:28+02:60",
        "2026-11-21T19:59:28+0200",
        "2026-11-21T19:59:28+2:00",
        "2026-11-21T19:59:28+02",
        "+2026-11-21T19:59:28Z",
        "20261-11-21T19:59:28Z",
        "2026-1-21T19:59:28Z",
        "2026-11-21T1:59:28Z",
        "-026-11-21T19:59:28Z",
        "2026-11-21T19:59:28.123Z\n",
        "2026/11/21T19:59:28Z",
        "2026-11-21T19:59:28UTC",
        "2026-11-21T19:59:28GMT",
        "2026-11-21T19:59:28.123Zjunk",
        "٢٠٢٦-11-21T19:59:28Z",
    };
    size_t i;

    for (i = 0; i < NELTS(bad); i++) {
        apr_time_t got = 42;
        ck_assert_msg(gc_time_parse(bad[i], &got) != 0, "'%s' accepted", bad[i]);
        ck_assert_int_eq(got, 42);
    }
    ck_assert_int_ne(gc_time_parse(NULL, &(apr_time_t){ 0 }), 0);
    ck_assert_int_ne(gc_time_parse("2026-11-21T19:59:28Z", NULL), 0);
}
END_TEST

START_TEST(time_format_round_trip)
{
    static const char *const ms[] = {
        "2026-11-21T19:59:28.123Z", "1970-01-01T00:00:00.000Z", "1969-12-31T23:59:59.999Z",
        "2000-02-29T12:00:00.001Z", "2100-03-01T00:00:00.000Z", "0001-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z", "2024-12-31T23:59:59.500Z",
    };
    apr_uint64_t x = 0x9e3779b97f4a7c15ULL;
    const char *saved_tz = getenv("TZ");
    char *tz = saved_tz ? strdup(saved_tz) : NULL;
    size_t i;
    int r;

    /* TZ must not matter */
    setenv("TZ", "Asia/Kolkata", 1);
    tzset();
    for (i = 0; i < NELTS(ms); i++) {
        apr_time_t t;
        ck_assert_int_eq(gc_time_parse(ms[i], &t), 0);
        ck_assert_str_eq(gc_time_format(pool, t), ms[i]);
    }
    ck_assert_str_eq(gc_time_format(pool, 0), "1970-01-01T00:00:00.000Z");
    ck_assert_str_eq(gc_time_format(pool, USEC(1795291168) + 123999), "2026-11-21T19:59:28.123Z");
    ck_assert_str_eq(gc_time_format(pool, -1), "1969-12-31T23:59:59.999Z");
    ck_assert_str_eq(gc_time_format(pool, USEC(1709251199) + 999999), "2024-02-29T23:59:59.999Z");
    /* offsets come out in UTC */
    {
        apr_time_t t;
        ck_assert_int_eq(gc_time_parse("2026-11-22T01:29:28.5+05:30", &t), 0);
        ck_assert_str_eq(gc_time_format(pool, t), "2026-11-21T19:59:28.500Z");
    }
    /* random instants over years 1..9999 round-trip to the millisecond */
    for (r = 0; r < 20000; r++) {
        apr_time_t t, back;
        const char *s;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t = (apr_time_t)(x % (apr_uint64_t)(USEC(253402300800LL) + USEC(62135596800LL)))
            - USEC(62135596800LL);
        s = gc_time_format(pool, t);
        ck_assert_msg(gc_time_parse(s, &back) == 0, "%s", s);
        ck_assert_int_eq(back, t - (((t % 1000) + 1000) % 1000));
    }
    /* extremes never crash */
    ck_assert_ptr_nonnull(gc_time_format(pool, INT64_MIN));
    ck_assert_ptr_nonnull(gc_time_format(pool, INT64_MAX));
    if (tz) {
        setenv("TZ", tz, 1);
        free(tz);
    }
    else {
        unsetenv("TZ");
    }
    tzset();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Fuzz                                                                     */

static apr_uint64_t rng_state;

static apr_uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const char *const corpus[] = {
    real_activity,
    real_user,
    "{\"topicName\":\"channel.metadata\",\"eventBody\":{\"message\":\"WebSocket Heartbeat\"}}",
    "{\"topicName\":\"channel.metadata\",\"eventBody\":{\"message\":\"pong\"}}",
    "{\"topicName\":\"v2.system.socket_closing\",\"eventBody\":{\"message\":\"bye\"}}",
    "{\"topicName\":\"v2.system.no_longer_subscribed.streaming-0-x\",\"eventBody\":{}}",
    "{\"topicName\":\"v2.system.token_revoked.streaming-0-x\",\"eventBody\":{}}",
    "{\"topicName\":\"v2.users.u-42.activity\",\"eventBody\":{\"id\":\"u-42\","
    "\"routingStatus\":{\"status\":\"NOT_RESPONDING\",\"startTime\":\"2026-11-21T19:59:28.1+01:"
    "00\"},"
    "\"presence\":{\"presenceDefinition\":{\"id\":\"p\",\"systemPresence\":\"On Queue\"},"
    "\"modifiedDate\":\"2026-11-21T19:59:28.123456Z\"},\"activeQueueIds\":[\"q\"]},"
    "\"metadata\":{\"CorrelationId\":\"c\"}}",
};

static const char interesting[] = { '\0', '"', '\\',       '{',        '}',        '[',
                                    ']',  ':', ',',        '.',        '-',        '9',
                                    'e',  'u', (char)0xff, (char)0xc3, (char)0x80, ' ' };

/* One mutated input; *len gets its size. */
static char *mutate(char *buf, size_t cap, size_t *len)
{
    const char *seed = corpus[rnd() % NELTS(corpus)];
    size_t n = strlen(seed), i, k;
    int op = (int)(rnd() % 8);

    memcpy(buf, seed, n);
    switch (op) {
    case 0: /* bit flips */
        for (k = 1 + rnd() % 4; k > 0; k--) {
            buf[rnd() % n] ^= (char)(1u << (rnd() % 8));
        }
        break;
    case 1: /* interesting bytes */
        for (k = 1 + rnd() % 3; k > 0; k--) {
            buf[rnd() % n] = interesting[rnd() % sizeof(interesting)];
        }
        break;
    case 2: /* truncation */ n = rnd() % n; break;
    case 3: /* random bytes */
        n = rnd() % 256;
        for (i = 0; i < n; i++) {
            buf[i] = (char)rnd();
        }
        break;
    case 4: { /* splice another seed in */
        const char *other = corpus[rnd() % NELTS(corpus)];
        size_t at = rnd() % n, on = strlen(other), from = rnd() % on, take = rnd() % (on - from);
        memcpy(buf + at, other + from, take);
        n = at + take > n ? at + take : n;
        break;
    }
    case 5: { /* delete a range */
        size_t at = rnd() % n, cut = rnd() % (n - at);
        memmove(buf + at, buf + at + cut, n - at - cut);
        n -= cut;
        break;
    }
    case 6: { /* insert a hostile token */
        static const char *const toks[] = { "1e999999",    "-99999999999999999999999",
                                            "[[[[[[[[",    "\\u0000",
                                            "\\ud800",     "null",
                                            "\"\"",        "{}",
                                            "0.",          "\"2026-02-30T00:00:00Z\"",
                                            "\"ON_QUEUE\"" };
        const char *tok = toks[rnd() % NELTS(toks)];
        size_t at = rnd() % n, tl = strlen(tok);
        if (n + tl < cap) {
            memmove(buf + at + tl, buf + at, n - at);
            memcpy(buf + at, tok, tl);
            n += tl;
        }
        break;
    }
    default: /* random printable ASCII runs */
        for (k = 1 + rnd() % 8; k > 0; k--) {
            buf[rnd() % n] = (char)(0x20 + rnd() % 95);
        }
        break;
    }
    *len = n;
    return buf;
}

START_TEST(fuzz_notify_parse)
{
    char buf[4096];
    apr_pool_t *sub;
    int i, counts[GC_MSG_UNKNOWN + 1] = { 0 };

    rng_state = 0x243f6a8885a308d3ULL;
    apr_pool_create(&sub, pool);
    for (i = 0; i < 25000; i++) {
        size_t n;
        char *exact;
        const char *why = NULL;
        gc_agent_event_t ev;
        gc_msg_kind_e k;

        mutate(buf, sizeof(buf), &n);
        exact = malloc(n ? n : 1); /* exactly n bytes: ASan sees overreads */
        memcpy(exact, buf, n);
        k = gc_notify_parse(sub, exact, n, &ev, &why);
        free(exact);
        ck_assert_msg(k >= GC_MSG_EVENT && k <= GC_MSG_UNKNOWN, "iteration %d: kind %d", i, k);
        counts[k]++;
        if (k == GC_MSG_MALFORMED || k == GC_MSG_UNKNOWN) {
            ck_assert_msg(why && log_safe(why) && strlen(why) < 200, "iteration %d: why", i);
        }
        else {
            ck_assert_ptr_null(why);
        }
        if (k == GC_MSG_EVENT) {
            ck_assert_ptr_nonnull(ev.user_id);
            ck_assert_ptr_nonnull(gc_topic_for_user(sub, ev.user_id));
            ck_assert(ev.presence || ev.routing_status);
            ck_assert(!ev.state || gc_state_valid(ev.state));
            ck_assert(!ev.presence || gc_state_valid(ev.presence));
            ck_assert(ev.event_at >= ev.presence_at - 999 && ev.event_at >= ev.routing_at - 999);
            ck_assert_int_eq(ev.event_at % 1000, 0);
        }
        if (i % 256 == 255) {
            apr_pool_clear(sub);
        }
    }
    apr_pool_destroy(sub);
    /* the corpus and mutations reach every outcome the seeds can */
    ck_assert_int_gt(counts[GC_MSG_EVENT], 100);
    ck_assert_int_gt(counts[GC_MSG_MALFORMED], 1000);
    ck_assert_int_gt(counts[GC_MSG_UNKNOWN], 10);
    ck_assert_int_gt(counts[GC_MSG_HEARTBEAT], 10);
    ck_assert_int_gt(counts[GC_MSG_PONG], 10);
    ck_assert_int_gt(counts[GC_MSG_SOCKET_CLOSING], 10);
    ck_assert_int_gt(counts[GC_MSG_NO_LONGER_SUBSCRIBED], 10);
    ck_assert_int_gt(counts[GC_MSG_TOKEN_REVOKED], 10);
}
END_TEST

START_TEST(fuzz_time_parse)
{
    static const char *const seeds[] = { "2026-11-21T19:59:28.123Z", "2026-11-21T21:59:28+02:00",
                                         "2024-02-29T00:00:00.123456789Z" };
    char buf[64];
    int i, ok = 0;

    rng_state = 0x13198a2e03707344ULL;
    for (i = 0; i < 20000; i++) {
        const char *s = seeds[rnd() % NELTS(seeds)];
        size_t n = strlen(s), k;
        apr_time_t t = 7;

        memcpy(buf, s, n + 1);
        for (k = 1 + rnd() % 3; k > 0; k--) {
            buf[rnd() % n] = (char)(rnd() % 3 ? '0' + rnd() % 10 : (int)(rnd() % 256));
        }
        if (rnd() % 4 == 0) {
            buf[rnd() % n] = '\0';
        }
        if (gc_time_parse(buf, &t) == 0) {
            ok++;
            /* anything accepted formats back to a valid timestamp */
            ck_assert_int_eq(gc_time_parse(gc_time_format(pool, t), &t), 0);
        }
        else {
            ck_assert_int_eq(t, 7);
        }
    }
    ck_assert_int_gt(ok, 100);
}
END_TEST

START_TEST(kind_names)
{
    static const char *const want[] = {
        "event",         "heartbeat", "pong",   "socket_closing", "no_longer_subscribed",
        "token_revoked", "malformed", "unknown"
    };
    int k;

    for (k = GC_MSG_EVENT; k <= GC_MSG_UNKNOWN; k++) {
        ck_assert_str_eq(gc_msg_kind_name((gc_msg_kind_e)k), want[k]);
    }
}
END_TEST

Suite *state_suite(void)
{
    Suite *s = suite_create("state");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, notify_kinds_table);
    tcase_add_test(tc, notify_real_activity_fields);
    tcase_add_test(tc, notify_not_nul_terminated);
    tcase_add_test(tc, notify_why_is_short_and_safe);
    tcase_add_test(tc, notify_hostile_shapes);
    tcase_add_test(tc, event_from_rest_user);
    tcase_add_test(tc, event_queue_ids);
    tcase_add_test(tc, normalise_presence_casings);
    tcase_add_test(tc, normalise_routing_casings);
    tcase_add_test(tc, derive_table);
    tcase_add_test(tc, state_names_exact);
    tcase_add_test(tc, judge_table);
    tcase_add_test(tc, judge_parsed_sequence);
    tcase_add_test(tc, topics_round_trip);
    tcase_add_test(tc, shard_fresh_2500);
    tcase_add_test(tc, shard_stable_add_remove);
    tcase_add_test(tc, shard_edge_maps);
    tcase_add_test(tc, time_parse_accepts);
    tcase_add_test(tc, time_parse_rejects);
    tcase_add_test(tc, time_format_round_trip);
    tcase_add_test(tc, fuzz_notify_parse);
    tcase_add_test(tc, fuzz_time_parse);
    tcase_add_test(tc, kind_names);
    suite_add_tcase(s, tc);
    return s;
}
