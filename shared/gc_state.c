/* Agent state model (SPEC §3.1) and Notifications API message parsing
 * (SPEC §4.2, §4.3, §9.1): pure functions over jansson, no I/O, no locale. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "gc_state.h"
#include "gc_time.h"
#include "gc_utf8.h"

/* ------------------------------------------------------------------------ */
/* Names                                                                    */

#define NAME(n) #n,
static const char *const states[] = { GC_PRESENCE_LIST(NAME) GC_ROUTING_STATUS_LIST(NAME) };
static const char *const presences[] = { GC_PRESENCE_LIST(NAME) };
static const char *const routing_statuses[] = { GC_ROUTING_STATUS_LIST(NAME) };
#undef NAME
#define NELTS(a) (sizeof(a) / sizeof((a)[0]))

const char *const *gc_state_names(apr_size_t *n)
{
    *n = NELTS(states);
    return states;
}

static int exact(const char *s, const char *const *names, size_t n)
{
    size_t i;

    for (i = 0; s && i < n; i++) {
        if (!strcmp(s, names[i])) {
            return 1;
        }
    }
    return 0;
}

int gc_presence_valid(const char *s)
{
    return exact(s, presences, NELTS(presences));
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Compare ignoring ASCII case and the separators ' ', '_' and '-'. */
static int folded_equal(const char *a, const char *b)
{
    for (;;) {
        while (*a == ' ' || *a == '_' || *a == '-') {
            a++;
        }
        while (*b == ' ' || *b == '_' || *b == '-') {
            b++;
        }
        if (!*a || !*b) {
            return !*a && !*b;
        }
        if (ascii_lower((unsigned char)*a) != ascii_lower((unsigned char)*b)) {
            return 0;
        }
        a++;
        b++;
    }
}

static const char *lookup_folded(const char *s, const char *const *names, size_t n)
{
    size_t i;

    if (!s) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (folded_equal(s, names[i])) {
            return names[i];
        }
    }
    return NULL;
}

const char *gc_presence_normalise(const char *s)
{
    return lookup_folded(s, presences, NELTS(presences));
}

const char *gc_routing_status_normalise(const char *s)
{
    return lookup_folded(s, routing_statuses, NELTS(routing_statuses));
}

const char *gc_state_derive(const char *presence, const char *routing_status)
{
    const char *pr = gc_presence_normalise(presence);

    if (!pr) {
        return NULL;
    }
    if (strcmp(pr, "OnQueue") != 0) {
        return pr;
    }
    return gc_routing_status_normalise(routing_status);
}

int gc_state_valid(const char *s)
{
    return exact(s, states, NELTS(states));
}

const char *gc_msg_kind_name(gc_msg_kind_e kind)
{
    switch (kind) {
    case GC_MSG_EVENT: return "event";
    case GC_MSG_HEARTBEAT: return "heartbeat";
    case GC_MSG_PONG: return "pong";
    case GC_MSG_SOCKET_CLOSING: return "socket_closing";
    case GC_MSG_NO_LONGER_SUBSCRIBED: return "no_longer_subscribed";
    case GC_MSG_TOKEN_REVOKED: return "token_revoked";
    case GC_MSG_MALFORMED: return "malformed";
    case GC_MSG_UNKNOWN: return "unknown";
    }
    return "unknown";
}

/* ------------------------------------------------------------------------ */
/* Ids and topics                                                           */

#define TOPIC_PREFIX "v2.users."
#define TOPIC_SUFFIX ".activity"

/* 1..64 of [A-Za-z0-9-_] (the same rule as gc_id_valid, ASCII only). */
static int id_valid_n(const char *s, size_t n)
{
    size_t i;

    if (!s || n == 0 || n > 64) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
              || c == '_')) {
            return 0;
        }
    }
    return 1;
}

const char *gc_topic_for_user(apr_pool_t *p, const char *user_id)
{
    if (!user_id || !id_valid_n(user_id, strlen(user_id))) {
        return NULL;
    }
    return apr_pstrcat(p, TOPIC_PREFIX, user_id, TOPIC_SUFFIX, NULL);
}

const char *gc_topic_user(apr_pool_t *p, const char *topic)
{
    size_t n, pre = sizeof(TOPIC_PREFIX) - 1, suf = sizeof(TOPIC_SUFFIX) - 1;

    if (!topic) {
        return NULL;
    }
    n = strlen(topic);
    if (n <= pre + suf || strncmp(topic, TOPIC_PREFIX, pre) != 0
        || strcmp(topic + n - suf, TOPIC_SUFFIX) != 0 || !id_valid_n(topic + pre, n - pre - suf)) {
        return NULL;
    }
    return apr_pstrmemdup(p, topic + pre, n - pre - suf);
}

/* ------------------------------------------------------------------------ */
/* Sharding                                                                 */

int gc_topics_shard_get(apr_hash_t *current, const char *user_id)
{
    intptr_t v;

    if (!current || !user_id) {
        return -1;
    }
    v = (intptr_t)apr_hash_get(current, user_id, APR_HASH_KEY_STRING);
    return v > 0 && v <= INT32_MAX ? (int)(v - 1) : -1;
}

void gc_topics_shard_set(apr_hash_t *current, const char *user_id, int index)
{
    if (!current || !user_id) {
        return;
    }
    apr_hash_set(current, user_id, APR_HASH_KEY_STRING,
                 index >= 0 && index < INT32_MAX ? (void *)((intptr_t)index + 1) : NULL);
}

apr_hash_t *gc_topics_shard_map(apr_pool_t *p, const apr_array_header_t *shards)
{
    apr_hash_t *h = apr_hash_make(p);
    int i, j;

    for (i = 0; shards && i < shards->nelts; i++) {
        const apr_array_header_t *s = APR_ARRAY_IDX(shards, i, const apr_array_header_t *);
        for (j = 0; s && j < s->nelts; j++) {
            gc_topics_shard_set(h, APR_ARRAY_IDX(s, j, const char *), i);
        }
    }
    return h;
}

/* Make sure shards[idx] exists (growing with empty shards). */
static apr_array_header_t *shard_at(apr_pool_t *p, apr_array_header_t *shards, int idx)
{
    while (shards->nelts <= idx) {
        APR_ARRAY_PUSH(shards, apr_array_header_t *) = apr_array_make(p, 16, sizeof(const char *));
    }
    return APR_ARRAY_IDX(shards, idx, apr_array_header_t *);
}

apr_array_header_t *gc_topics_shard(apr_pool_t *p, const apr_array_header_t *users,
                                    apr_hash_t *current, int per_channel)
{
    apr_array_header_t *shards = apr_array_make(p, 4, sizeof(apr_array_header_t *));
    apr_array_header_t *fresh;
    apr_hash_t *seen;
    int i, n = users ? users->nelts : 0, next = 0, limit;

    if (per_channel < 1) {
        per_channel = 1;
    }
    if (n == 0) {
        return shards;
    }
    /* An index far past what these users need is not from a previous run over
     * (roughly) these users: treat the user as new rather than allocate a long
     * run of empty shards. The slack is the channel cap (GC_MAX_CHANNELS). */
    limit = n / per_channel + 21;
    fresh = apr_array_make(p, 16, sizeof(const char *));
    seen = apr_hash_make(p);
    /* Pass 1: users who have a shard keep it while it has room. */
    for (i = 0; i < n; i++) {
        const char *u = APR_ARRAY_IDX(users, i, const char *);
        int idx;

        if (!u || !*u || apr_hash_get(seen, u, APR_HASH_KEY_STRING)) {
            continue;
        }
        apr_hash_set(seen, u, APR_HASH_KEY_STRING, u);
        idx = gc_topics_shard_get(current, u);
        if (idx >= 0 && idx < limit) {
            apr_array_header_t *s = shard_at(p, shards, idx);
            if (s->nelts < per_channel) {
                APR_ARRAY_PUSH(s, const char *) = u;
                continue;
            }
        }
        APR_ARRAY_PUSH(fresh, const char *) = u;
    }
    /* Pass 2: new users fill the first shards with room, then new shards. */
    for (i = 0; i < fresh->nelts; i++) {
        apr_array_header_t *s;

        for (;; next++) {
            s = shard_at(p, shards, next);
            if (s->nelts < per_channel) {
                break;
            }
        }
        APR_ARRAY_PUSH(s, const char *) = APR_ARRAY_IDX(fresh, i, const char *);
    }
    /* Every shard created last got a user, so the result never ends with an
     * empty shard; empty ones in the middle keep later indexes stable. */
    return shards;
}

/* ------------------------------------------------------------------------ */
/* Events                                                                   */

gc_ev_verdict_e gc_event_judge(const gc_agent_current_t *cur, const gc_agent_event_t *ev)
{
    if (!ev || !ev->state) {
        return GC_EV_STALE; /* nothing that could be recorded */
    }
    if (!cur) {
        return GC_EV_TRANSITION;
    }
    if (ev->event_at < cur->event_at) {
        return GC_EV_STALE;
    }
    if (cur->state && !strcmp(cur->state, ev->state)) {
        return ev->event_at == cur->event_at ? GC_EV_DUPLICATE : GC_EV_REFRESH;
    }
    return GC_EV_TRANSITION;
}

/* Field lookup: 1 = found with the wanted type, 0 = absent or JSON null,
 * -1 = present with another type. */
static int get_typed(const json_t *obj, const char *key, json_type type, json_t **out)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (json_typeof(v) != type) {
        return -1;
    }
    *out = v;
    return 1;
}

/* An optional timestamp field: 0 when absent, -1 on a wrong type or bad value. */
static int get_time(const json_t *obj, const char *key, apr_time_t *out)
{
    json_t *v;
    int rc = get_typed(obj, key, JSON_STRING, &v);

    *out = 0;
    if (rc <= 0) {
        return rc;
    }
    return gc_time_parse(json_string_value(v), out) == 0 ? 1 : -1;
}

static apr_time_t floor_ms(apr_time_t t)
{
    apr_time_t q = t / 1000;

    return (t % 1000 < 0 ? q - 1 : q) * 1000;
}

/* activeQueueIds: compact JSON text when it is an array of strings, else NULL. */
static const char *queue_ids_text(apr_pool_t *p, const json_t *arr)
{
    size_t i;
    char *txt;
    const char *res;

    for (i = 0; i < json_array_size(arr); i++) {
        if (!json_is_string(json_array_get(arr, i))) {
            return NULL;
        }
    }
    txt = json_dumps(arr, JSON_COMPACT);
    if (!txt) {
        return NULL;
    }
    res = apr_pstrdup(p, txt);
    free(txt);
    return res;
}

int gc_agent_event_from_json(apr_pool_t *p, const json_t *obj, gc_agent_event_t *ev)
{
    json_t *v, *rs, *pres, *def;
    const char *id;
    int rc;

    if (!ev) {
        return -1;
    }
    memset(ev, 0, sizeof(*ev));
    if (!json_is_object(obj)) {
        return -1;
    }
    if (get_typed(obj, "id", JSON_STRING, &v) <= 0) {
        return -1;
    }
    id = json_string_value(v);
    if (!id_valid_n(id, json_string_length(v))) {
        return -1;
    }
    if ((rc = get_typed(obj, "name", JSON_STRING, &v)) < 0) {
        return -1;
    }
    ev->user_name = rc ? apr_pstrdup(p, json_string_value(v)) : NULL;

    /* routingStatus {status, startTime[, userId]} */
    if ((rc = get_typed(obj, "routingStatus", JSON_OBJECT, &rs)) < 0) {
        return -1;
    }
    if (rc) {
        if ((rc = get_typed(rs, "userId", JSON_STRING, &v)) < 0
            || (rc && strcmp(json_string_value(v), id) != 0)) {
            return -1;
        }
        if ((rc = get_typed(rs, "status", JSON_STRING, &v)) < 0) {
            return -1;
        }
        ev->routing_status = rc ? gc_routing_status_normalise(json_string_value(v)) : NULL;
        if (get_time(rs, "startTime", &ev->routing_at) < 0) {
            return -1;
        }
    }

    /* presence {presenceDefinition {id, systemPresence}, modifiedDate} */
    if ((rc = get_typed(obj, "presence", JSON_OBJECT, &pres)) < 0) {
        return -1;
    }
    if (rc) {
        if ((rc = get_typed(pres, "presenceDefinition", JSON_OBJECT, &def)) < 0) {
            return -1;
        }
        if (rc) {
            if ((rc = get_typed(def, "id", JSON_STRING, &v)) < 0) {
                return -1;
            }
            ev->presence_id = rc ? apr_pstrdup(p, json_string_value(v)) : NULL;
            if ((rc = get_typed(def, "systemPresence", JSON_STRING, &v)) < 0) {
                return -1;
            }
            ev->presence = rc ? gc_presence_normalise(json_string_value(v)) : NULL;
        }
        if (get_time(pres, "modifiedDate", &ev->presence_at) < 0) {
            return -1;
        }
    }
    if (!ev->presence && !ev->routing_status) {
        return -1;
    }

    if ((rc = get_typed(obj, "activeQueueIds", JSON_ARRAY, &v)) < 0) {
        return -1;
    }
    ev->queue_ids = rc ? queue_ids_text(p, v) : NULL;

    ev->user_id = apr_pstrdup(p, id);
    ev->event_at = floor_ms(ev->presence_at > ev->routing_at ? ev->presence_at : ev->routing_at);
    ev->state = gc_state_derive(ev->presence, ev->routing_status);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Notification messages                                                    */

#define WHY_EXCERPT 48

/* A log-safe excerpt of at most WHY_EXCERPT bytes of s: valid UTF-8, control
 * characters, quotes and backslashes replaced by '?', "..." when cut. */
static const char *excerpt(apr_pool_t *p, const char *s, size_t len)
{
    char *out = apr_palloc(p, WHY_EXCERPT + 4);
    size_t i = 0, o = 0, n;

    while (i < len) {
        const unsigned char *c = (const unsigned char *)s + i;

        n = gc_utf8_seq(c, len - i);
        if (n == 0
            || (n == 1 && (*c < 0x20 || *c == 0x7f || *c == '\'' || *c == '"' || *c == '\\'))) {
            n = n ? n : 1;
            if (o + 1 > WHY_EXCERPT) {
                break;
            }
            out[o++] = '?';
        }
        else {
            if (o + n > WHY_EXCERPT) {
                break;
            }
            memcpy(out + o, c, n);
            o += n;
        }
        i += n;
    }
    if (i < len) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

static int has_topic_prefix(const char *topic, const char *name)
{
    size_t n = strlen(name);

    return !strncmp(topic, name, n) && (topic[n] == '\0' || topic[n] == '.');
}

static gc_msg_kind_e classify(apr_pool_t *p, const json_t *root, gc_agent_event_t *ev,
                              const char **why)
{
    json_t *topic_v, *body, *v, *meta;
    const char *topic, *uid;
    int rc;

    if (!json_is_object(root)) {
        *why = "not a JSON object";
        return GC_MSG_MALFORMED;
    }
    rc = get_typed(root, "topicName", JSON_STRING, &topic_v);
    if (rc <= 0) {
        *why = rc ? "topicName is not a string" : "no topicName";
        return GC_MSG_MALFORMED;
    }
    topic = json_string_value(topic_v);
    if (strlen(topic) != json_string_length(topic_v)) {
        *why = "topicName contains NUL";
        return GC_MSG_MALFORMED;
    }
    if ((rc = get_typed(root, "eventBody", JSON_OBJECT, &body)) < 0) {
        *why = "eventBody is not an object";
        return GC_MSG_MALFORMED;
    }

    if (!strcmp(topic, "channel.metadata")) {
        if (!body) {
            *why = "channel.metadata without eventBody";
            return GC_MSG_MALFORMED;
        }
        if ((rc = get_typed(body, "message", JSON_STRING, &v)) <= 0) {
            *why = rc ? "channel.metadata message is not a string"
                      : "channel.metadata without message";
            return GC_MSG_MALFORMED;
        }
        if (!strcmp(json_string_value(v), "WebSocket Heartbeat")) {
            return GC_MSG_HEARTBEAT;
        }
        if (!strcmp(json_string_value(v), "pong")) {
            return GC_MSG_PONG;
        }
        *why = apr_pstrcat(p, "unhandled channel.metadata message '",
                           excerpt(p, json_string_value(v), json_string_length(v)), "'", NULL);
        return GC_MSG_UNKNOWN;
    }
    if (!strcmp(topic, "v2.system.socket_closing")) {
        return GC_MSG_SOCKET_CLOSING;
    }
    if (has_topic_prefix(topic, "v2.system.no_longer_subscribed")) {
        return GC_MSG_NO_LONGER_SUBSCRIBED;
    }
    if (has_topic_prefix(topic, "v2.system.token_revoked")) {
        return GC_MSG_TOKEN_REVOKED;
    }
    if ((uid = gc_topic_user(p, topic)) != NULL) {
        if (!body) {
            *why = "activity without eventBody";
            return GC_MSG_MALFORMED;
        }
        if (gc_agent_event_from_json(p, body, ev) != 0) {
            *why = "activity eventBody without a valid id, presence or routing status";
            return GC_MSG_MALFORMED;
        }
        if (strcmp(ev->user_id, uid) != 0) {
            memset(ev, 0, sizeof(*ev));
            *why = "activity eventBody id differs from the topic's user";
            return GC_MSG_MALFORMED;
        }
        if (json_is_object(meta = json_object_get(root, "metadata"))
            && json_is_string(v = json_object_get(meta, "CorrelationId"))) {
            ev->correlation_id = apr_pstrdup(p, json_string_value(v));
        }
        return GC_MSG_EVENT;
    }
    *why = apr_pstrcat(p, "unhandled topic '", excerpt(p, topic, strlen(topic)), "'", NULL);
    return GC_MSG_UNKNOWN;
}

gc_msg_kind_e gc_notify_parse_json(apr_pool_t *p, const json_t *root, gc_agent_event_t *ev,
                                   const char **why)
{
    gc_agent_event_t scratch;
    const char *reason = NULL;
    gc_msg_kind_e kind;

    if (!ev) {
        ev = &scratch;
    }
    memset(ev, 0, sizeof(*ev));
    if (!root) {
        kind = GC_MSG_MALFORMED;
        reason = "no message";
    }
    else {
        kind = classify(p, root, ev, &reason);
    }
    if (kind != GC_MSG_EVENT) {
        memset(ev, 0, sizeof(*ev));
    }
    if (why) {
        *why = (kind == GC_MSG_MALFORMED || kind == GC_MSG_UNKNOWN) ? reason : NULL;
    }
    return kind;
}

gc_msg_kind_e gc_notify_parse(apr_pool_t *p, const char *text, apr_size_t len, gc_agent_event_t *ev,
                              const char **why)
{
    json_error_t err;
    json_t *root;
    gc_msg_kind_e kind;

    if (text && (root = json_loadb(text, len, JSON_DECODE_ANY, &err)) != NULL) {
        kind = gc_notify_parse_json(p, root, ev, why);
        json_decref(root);
        return kind;
    }
    if (ev) {
        memset(ev, 0, sizeof(*ev));
    }
    if (why) {
        *why = !text ? "no message"
                     : apr_psprintf(p, "invalid JSON at byte %d: %s", err.position,
                                    excerpt(p, err.text, strnlen(err.text, sizeof(err.text))));
    }
    return GC_MSG_MALFORMED;
}
