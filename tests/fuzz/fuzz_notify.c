/* The Notifications API message parser (gc_notify_parse, SPEC §4.2): any
 * bytes as one WebSocket text message, exactly as the stream hands them over.
 *
 * Properties: the kind is one of the enum and has a metrics name; *why is set
 * for MALFORMED and UNKNOWN only, as short, valid UTF-8 (it goes to the log);
 * an event has a valid user id whose topic maps back to it, a presence or a
 * routing status that are canonical names, the state gc_state_derive makes of
 * them, an event time floored to the millisecond that formats and parses back
 * (RFC 3339), activeQueueIds as JSON array text, and judges as a duplicate of
 * itself; any other kind leaves the event zeroed; and the parsed-JSON entry
 * point (the inbound receiver's) classifies the same text identically. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gc_id.h"
#include "gc_state.h"
#include "gc_time.h"

#define WHY_MAX 160 /* the longest reason: a prefix and a 48-byte excerpt */

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_event(apr_pool_t *p, const gc_agent_event_t *ev)
{
    gc_agent_current_t cur;
    apr_time_t back = 0, later;
    const char *topic;

    FUZZ_CHECK(ev->user_id && gc_id_valid(ev->user_id));
    topic = gc_topic_for_user(p, ev->user_id);
    FUZZ_CHECK(topic && same(gc_topic_user(p, topic), ev->user_id));
    FUZZ_CHECK(ev->presence || ev->routing_status);
    FUZZ_CHECK(!ev->presence || gc_presence_valid(ev->presence));
    FUZZ_CHECK(!ev->routing_status || gc_state_valid(ev->routing_status));
    FUZZ_CHECK(same(ev->state, gc_state_derive(ev->presence, ev->routing_status)));
    FUZZ_CHECK(!ev->state || gc_state_valid(ev->state));
    FUZZ_CHECK(ev->event_at % 1000 == 0);
    later = ev->presence_at > ev->routing_at ? ev->presence_at : ev->routing_at;
    FUZZ_CHECK(ev->event_at <= later && later - ev->event_at < 1000);
    FUZZ_CHECK(gc_time_parse(gc_time_format(p, ev->event_at), &back) == 0);
    FUZZ_CHECK(back == ev->event_at);
    if (ev->queue_ids) {
        json_t *q = json_loads(ev->queue_ids, 0, NULL);
        FUZZ_CHECK(json_is_array(q));
        json_decref(q);
    }
    cur.state = ev->state;
    cur.event_at = ev->event_at;
    FUZZ_CHECK(gc_event_judge(&cur, ev) == (ev->state ? GC_EV_DUPLICATE : GC_EV_STALE));
    FUZZ_CHECK(gc_event_judge(NULL, ev) == (ev->state ? GC_EV_TRANSITION : GC_EV_STALE));
}

static int zeroed(const gc_agent_event_t *ev)
{
    gc_agent_event_t z;

    memset(&z, 0, sizeof(z));
    return memcmp(&z, ev, sizeof(z)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    gc_agent_event_t ev, ev2;
    const char *why = "unset", *why2 = "unset";
    gc_msg_kind_e kind, kind2;
    json_t *root;
    char *text;

    kind = gc_notify_parse(p, (const char *)data, size, &ev, &why);
    FUZZ_CHECK(kind >= GC_MSG_EVENT && kind <= GC_MSG_UNKNOWN);
    FUZZ_CHECK(gc_msg_kind_name(kind) != NULL);
    if (kind == GC_MSG_MALFORMED || kind == GC_MSG_UNKNOWN) {
        FUZZ_CHECK(why != NULL && fuzz_utf8(why, strlen(why)) && strlen(why) <= WHY_MAX);
    }
    else {
        FUZZ_CHECK(why == NULL);
    }
    if (kind == GC_MSG_EVENT) {
        check_event(p, &ev);
    }
    else {
        FUZZ_CHECK(zeroed(&ev));
    }
    /* No event and no reason wanted: the same kind. */
    FUZZ_CHECK(gc_notify_parse(p, (const char *)data, size, NULL, NULL) == kind);

    root = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!root) {
        FUZZ_CHECK(kind == GC_MSG_MALFORMED);
    }
    else {
        kind2 = gc_notify_parse_json(p, root, &ev2, &why2);
        FUZZ_CHECK(kind2 == kind);
        FUZZ_CHECK(same(why, why2));
        if (kind == GC_MSG_EVENT) {
            FUZZ_CHECK(same(ev.user_id, ev2.user_id) && same(ev.state, ev2.state)
                       && same(ev.presence_id, ev2.presence_id) && same(ev.queue_ids, ev2.queue_ids)
                       && same(ev.correlation_id, ev2.correlation_id)
                       && ev.event_at == ev2.event_at);
        }
        json_decref(root);
    }

    /* The name parsers the message's strings go through, on the raw text. */
    text = fuzz_cstr(data, size);
    FUZZ_CHECK(!gc_presence_normalise(text) || gc_presence_valid(gc_presence_normalise(text)));
    FUZZ_CHECK(!gc_routing_status_normalise(text)
               || gc_state_valid(gc_routing_status_normalise(text)));
    if (gc_topic_user(p, text)) {
        FUZZ_CHECK(same(gc_topic_for_user(p, gc_topic_user(p, text)), text));
    }
    free(text);
    apr_pool_destroy(p);
    return 0;
}
