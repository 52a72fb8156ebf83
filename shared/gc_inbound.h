/* The inbound Genesys event receiver, POST /gcmon/api/v1/hooks/genesys
 * (SPEC §5.7), without httpd: the signature check, the body's notification
 * envelopes turned into agent events exactly as the stream turns them
 * (gc_notify_parse_json), the split into monitored and ignored agents, and the
 * answer. The glue reads the body (bounded by GcmonMaxBody: 413 above it),
 * calls these in order and renders the gc_result_t they set:
 *
 *   gc_inbound_verify        401 (gc_inbound_unauthorized) unless it holds
 *   gc_inbound_parse         400 problem, nothing stored, when it fails
 *   gc_inbound_filter        with the glue's "is this agent monitored?"
 *   gc_store_write_batch     b->kept, source GC_INBOUND_SOURCE
 *   gc_inbound_respond       200 with the store's counts (202 when queued)
 *
 * Events are stored exactly like stream events, so one that the stream (or
 * another delivery of the same relay) has already recorded is a duplicate:
 * same user, same event time (history's UNIQUE(user_id, event_at) and
 * gc_event_judge). Nothing here logs, and nothing keeps the secret or the
 * digest it expects. */
#ifndef GC_INBOUND_H
#define GC_INBOUND_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

#include "gc_result.h"
#include "gc_state.h"
#include "gc_store.h"

/* The request header that carries the signature, and its scheme. */
#define GC_INBOUND_SIGNATURE_HEADER "X-Gcmon-Signature"
#define GC_INBOUND_SIGNATURE_PREFIX "sha256="

/* The `source` of the events (gc_evq, gc_store_write_batch, history rows). */
#define GC_INBOUND_SOURCE "inbound"

/* At most this many envelopes in one body (an array longer than that is a
 * 400, nothing stored); the body's size is bounded by the glue. */
#define GC_INBOUND_MAX_ENVELOPES 1000

/* ---------------------------------------------------------------- signature */

/* 1 when `header` is exactly "sha256=" followed by the 64 lowercase hex
 * digits of HMAC-SHA256(secret, the len bytes of body), compared in constant
 * time (CRYPTO_memcmp); else 0. Refused (0): a NULL or empty secret, a NULL
 * header, another prefix or case ("SHA256="), a digest that is not 64
 * characters, hex in upper case or anything not hex, surrounding blanks, and
 * body NULL with len > 0 (NULL with len 0 is the empty body). The digest it
 * computes lives on the stack only and is wiped before returning. Without a
 * GcmonInboundSecret the endpoint is off (the glue answers before calling
 * this); should it call anyway, every request is refused. */
int gc_inbound_verify(const char *secret, const char *body, apr_size_t len, const char *header);

/* The 401 problem (slug "invalid_signature"). Its detail says whether the
 * header was missing, malformed or did not match; never anything of the
 * secret or the expected digest. `header` is the value received (NULL when
 * absent); it is not quoted. */
void gc_inbound_unauthorized(gc_result_t *res, const char *header);

/* ------------------------------------------------------------------- body */

typedef struct {
    int received; /* envelopes in the body (1 for a lone envelope) */
    int events;   /* agent-state events with a derivable state (b->events) */
    int no_state; /* agent-state events whose state is not derivable (the
                     stream drops these too); counted in `skipped` */
    int skipped;  /* envelopes not recorded: every other kind, plus no_state */
    int kept;     /* gc_inbound_filter: events of monitored agents */
    int ignored;  /* gc_inbound_filter: events of agents not monitored */
    /* Envelopes by gc_notify_parse_json kind (index gc_msg_kind_e; the
     * MALFORMED slot stays 0: a malformed envelope fails the whole body). */
    int by_kind[GC_MSG_UNKNOWN + 1];
} gc_inbound_counts_t;

typedef struct {
    /* gc_agent_event_t (by value, contiguous: pass (gc_agent_event_t *)
     * a->elts, a->nelts to gc_store_write_batch), in body order. */
    apr_array_header_t *events; /* every agent event with a derivable state */
    apr_array_header_t *kept;   /* after gc_inbound_filter; NULL before */
    apr_array_header_t *ignored;
    gc_inbound_counts_t counts;
} gc_inbound_batch_t;

/* Parse the body (len bytes, need not be NUL-terminated): one notification
 * envelope (SPEC §4.2, {"topicName","version","eventBody",…}) or a JSON array
 * of at most GC_INBOUND_MAX_ENVELOPES of them (an empty array is fine: nothing
 * to do). Each envelope is classified by gc_notify_parse_json, so an agent
 * event is field for field the one the stream makes of the same text:
 *   - an agent-state event (v2.users.<id>.activity) with a derivable state
 *     goes to b->events; one without (see gc_state_derive) is counted in
 *     no_state and skipped, as the stream drops it;
 *   - heartbeats, pongs, system topics and other topics are counted (by
 *     kind) and skipped — a relay may forward them, they are not errors;
 *   - a malformed envelope — not an object, no topicName, an activity whose
 *     eventBody has no valid id, presence or routing status or a field of
 *     the wrong type, an id that is not the topic's user — fails the whole
 *     body, naming the array index: nothing of the body is stored, so the
 *     relay (which keeps the body) can retry it whole once fixed, and half a
 *     batch is never silently recorded.
 * Duplicate JSON keys are accepted (the last wins), as on the stream.
 * Returns 0 with *out (from p); on failure -1, *out NULL, and res holds a 400
 * problem: malformed_json (not JSON, or empty), invalid_body (neither an object
 * nor an array; too many envelopes; a malformed envelope — its field error
 * names "body" or "body[<index>]"). */
int gc_inbound_parse(apr_pool_t *p, const char *body, apr_size_t len, gc_result_t *res,
                     gc_inbound_batch_t **out);

/* Is user_id one of the monitored agents? Nonzero: yes. */
typedef int gc_inbound_monitored_fn(void *baton, const char *user_id);

/* Split b->events into b->kept (monitored) and b->ignored (not), keeping
 * order, and set counts.kept / counts.ignored. monitored NULL keeps every
 * event. Calling it again redoes the split. Arrays from p. */
void gc_inbound_filter(apr_pool_t *p, gc_inbound_batch_t *b, gc_inbound_monitored_fn *monitored,
                       void *baton);

/* ----------------------------------------------------------------- answer */

/* The answer document (a new reference). With the store's result `w` (the
 * kept events were written synchronously):
 *   {"received":n,"events":e,"skipped":s,"ignored":i,
 *    "stored":t,"refreshed":r,"duplicates":d,"stale":o}
 *   received    envelopes in the body
 *   events      agent-state events among them (with a derivable state)
 *   skipped     envelopes not recorded for their kind: heartbeats, other
 *               topics, agent events without a derivable state
 *   ignored     agent events of agents that are not monitored (not stored)
 *   stored      history rows written (state transitions; w->transitions)
 *   refreshed   current rows updated without a new history row
 *   duplicates  already stored — by the stream or an earlier delivery
 *   stale       older than what is stored (not recorded)
 * so that received = skipped + ignored + stored + refreshed + duplicates +
 * stale, and events = ignored + stored + refreshed + duplicates + stale.
 * Without w (NULL: the kept events were handed to the writer's queue and
 * their outcome is not known yet) the four store members are replaced by
 * "queued": the number of kept events. NULL when out of memory. */
json_t *gc_inbound_response_json(const gc_inbound_batch_t *b, const gc_store_batch_result_t *w);

/* res := 200 with that document when w is given, 202 without. */
void gc_inbound_respond(gc_result_t *res, const gc_inbound_batch_t *b,
                        const gc_store_batch_result_t *w);

#endif
