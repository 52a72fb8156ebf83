/* Agent state model (SPEC §3.1) and Notifications API message parsing
 * (SPEC §4.2): pure functions over jansson, no I/O. */
#ifndef GC_STATE_H
#define GC_STATE_H

#include <apr_pools.h>
#include <apr_hash.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

/* One observation of an agent: from a v2.users.{id}.activity event body or a
 * REST user entity with routingStatus+presence expanded. Strings are from the pool. */
typedef struct gc_agent_event {
    const char *user_id;
    const char *user_name;      /* REST snapshots only; NULL otherwise */
    const char *presence;       /* normalised system presence ("OnQueue"), NULL if absent */
    const char *presence_id;    /* presenceDefinition.id, NULL if absent */
    const char *routing_status; /* "IDLE", …, NULL if absent */
    apr_time_t presence_at;     /* presence.modifiedDate, 0 if absent */
    apr_time_t routing_at;      /* routingStatus.startTime, 0 if absent */
    apr_time_t event_at;        /* later of the two (SPEC §9.1), ms precision */
    const char *state;          /* derived (gc_state_derive), NULL if not derivable */
    const char *queue_ids;      /* activeQueueIds as compact JSON array text, or NULL */
    const char *correlation_id; /* metadata.CorrelationId, NULL if absent */
} gc_agent_event_t;

typedef enum {
    GC_MSG_EVENT,                /* v2.users.{id}.activity with a usable body */
    GC_MSG_HEARTBEAT,            /* channel.metadata "WebSocket Heartbeat" */
    GC_MSG_PONG,                 /* channel.metadata "pong" */
    GC_MSG_SOCKET_CLOSING,       /* v2.system.socket_closing */
    GC_MSG_NO_LONGER_SUBSCRIBED, /* v2.system.no_longer_subscribed.<channel> */
    GC_MSG_TOKEN_REVOKED,        /* v2.system.token_revoked.<channel> */
    GC_MSG_MALFORMED,            /* not JSON, or JSON of the wrong shape */
    GC_MSG_UNKNOWN               /* valid envelope of a topic we don't handle */
} gc_msg_kind_e;

/* Classify and parse one complete WebSocket text message (`len` bytes, need not
 * be NUL-terminated; any bytes are safe). For GC_MSG_EVENT, *ev is filled (its
 * state may be NULL when not derivable); for any other kind *ev is zeroed. ev may
 * be NULL. *why (may be NULL) explains MALFORMED/UNKNOWN for logs — short, valid
 * UTF-8, at most a ~48-byte sanitised excerpt of the input — and is NULL for the
 * other kinds. "v2.system.no_longer_subscribed" and "v2.system.token_revoked"
 * are recognised with or without the ".<channel>" suffix. */
gc_msg_kind_e gc_notify_parse(apr_pool_t *p, const char *text, apr_size_t len, gc_agent_event_t *ev,
                              const char **why);

/* gc_notify_parse over a message already parsed as JSON (any type; NULL or a
 * non-object is MALFORMED): the same classification, the same *ev and *why
 * contract, so an event is field for field what the stream produces from the
 * message's text. root is only read (not stolen); the strings are from p. */
gc_msg_kind_e gc_notify_parse_json(apr_pool_t *p, const json_t *root, gc_agent_event_t *ev,
                                   const char **why);

/* Metrics label of a message kind ("event", "heartbeat", …). */
const char *gc_msg_kind_name(gc_msg_kind_e kind);

/* Fill *ev from an activity eventBody or a REST user entity. 0 on success,
 * -1 when there is no valid user id (1..64 of [A-Za-z0-9-_]), neither a known
 * presence nor a known routing status, a field we use has the wrong JSON type,
 * a timestamp does not parse, or routingStatus.userId differs from id. JSON null
 * counts as absent. ev->correlation_id is left NULL (it is envelope metadata). */
int gc_agent_event_from_json(apr_pool_t *p, const json_t *obj, gc_agent_event_t *ev);

/* The state names of SPEC §3.1, the one list of them: the ten system
 * presences, then the five routing statuses (an OnQueue agent's state). */
/* clang-format off */
#define GC_PRESENCE_LIST(X) \
    X(Available) X(Away) X(Busy) X(Break) X(Meal) X(Meeting) X(Training) X(Offline) \
    X(Idle) X(OnQueue)
/* clang-format on */
/* clang-format off */
#define GC_ROUTING_STATUS_LIST(X) \
    X(IDLE) X(INTERACTING) X(COMMUNICATING) X(NOT_RESPONDING) X(OFF_QUEUE)
/* clang-format on */

/* The 15 state names in that order; *n gets their number. */
const char *const *gc_state_names(apr_size_t *n);

/* Is `s` one of the ten system presences, exactly ("Available" … "OnQueue")? */
int gc_presence_valid(const char *s);

/* "AVAILABLE", "available", "On Queue", "ON_QUEUE", "onqueue" → canonical
 * ("Available", "OnQueue"); NULL when not a system presence. */
const char *gc_presence_normalise(const char *s);

/* Canonical routing status ("IDLE", "INTERACTING", "COMMUNICATING",
 * "NOT_RESPONDING", "OFF_QUEUE") from any casing; NULL when unknown. */
const char *gc_routing_status_normalise(const char *s);

/* SPEC §3.1: the presence, unless it is OnQueue, then the routing status.
 * Inputs in any casing (normalised here); the result is a canonical static
 * string. NULL when not derivable (no or unknown presence; OnQueue without a
 * known routing status). */
const char *gc_state_derive(const char *presence, const char *routing_status);

/* Is `s` one of the 15 state names, exactly (case-sensitive: "Idle" is a
 * presence, "IDLE" a routing status)? */
int gc_state_valid(const char *s);

/* What is stored for an agent, to judge a new observation against. */
typedef struct gc_agent_current {
    const char *state;
    apr_time_t event_at;
} gc_agent_current_t;

typedef enum {
    GC_EV_TRANSITION, /* new state: record history + current */
    GC_EV_REFRESH,    /* same state, newer times: update current only */
    GC_EV_DUPLICATE,  /* same state and time: ignore */
    GC_EV_STALE       /* older than stored: ignore */
} gc_ev_verdict_e;

/* cur may be NULL (agent never seen) → TRANSITION. An observation without a
 * derivable state (ev->state NULL) → STALE: there is nothing to record. */
gc_ev_verdict_e gc_event_judge(const gc_agent_current_t *cur, const gc_agent_event_t *ev);

/* Topics: "v2.users.<id>.activity" and back (NULL when not that shape, or the
 * id is not 1..64 of [A-Za-z0-9-_]). */
const char *gc_topic_for_user(apr_pool_t *p, const char *user_id);
const char *gc_topic_user(apr_pool_t *p, const char *topic);

/* Split user ids (const char *) into shards of at most per_channel, keeping
 * the existing assignment stable: users already on a channel stay there while it
 * has room (`current` maps user id → shard index, may be NULL). New users fill
 * the first shards with room, then new shards. Duplicates and NULL/empty ids are
 * dropped. Returns an array of apr_array_header_t * (each of const char *), in
 * a deterministic order (input order within a shard, staying users first). A
 * shard emptied by removals stays, empty, in place so later indexes don't move;
 * the result never ends with an empty shard. A stored index far beyond what the
 * users need (> users/per_channel + 20) is ignored. per_channel < 1 counts as 1.
 *
 * `current` values are (void *)(intptr_t)(index + 1) — apr_hash cannot hold a
 * NULL value, so index 0 cannot be stored raw. Use gc_topics_shard_set/_get, or
 * gc_topics_shard_map to build the map from a previous result. */
apr_array_header_t *gc_topics_shard(apr_pool_t *p, const apr_array_header_t *users,
                                    apr_hash_t *current, int per_channel);
/* Shard index of user_id in `current`, -1 when absent (or current is NULL). */
int gc_topics_shard_get(apr_hash_t *current, const char *user_id);
/* Record user_id → index (index < 0 removes). The key is not copied. */
void gc_topics_shard_set(apr_hash_t *current, const char *user_id, int index);
/* user id → index map of a gc_topics_shard result (keys point into it). */
apr_hash_t *gc_topics_shard_map(apr_pool_t *p, const apr_array_header_t *shards);

#endif
