/* The inbound event receiver's body parser (gc_inbound, SPEC §5.7): any bytes
 * as the body of POST /v1/hooks/genesys, signed or not.
 *
 * Properties: the signature gc_webhook_signature makes for the body verifies
 * and a one-character change of it does not; the body's own first line as a
 * header never verifies unless it is that signature; the 401 problem is
 * well-formed. gc_inbound_parse either fails with a well-formed 400 problem
 * and no batch, or returns a batch whose counts add up (received = the
 * envelopes by kind = skipped + events, the MALFORMED slot 0, events = the
 * events array, every event with a state), whose filter splits the events
 * into kept + ignored in order, and whose answer (queued, and after a store
 * that judges the kept events as gc_store_write_batch does) satisfies the
 * identities gc_inbound.h promises. */
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "fuzz.h"
#include "gc_inbound.h"
#include "gc_webhook.h"

#define SECRET "fuzz-inbound-secret"

static int monitored(void *baton, const char *user_id)
{
    return (user_id[0] & 1) == 0;
}

static void check_signature(apr_pool_t *p, const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    char *sig = apr_pstrdup(p, gc_webhook_signature(p, SECRET, body, size));
    char *line;
    const uint8_t *rest;
    size_t rest_len;
    gc_result_t *res = gc_result_make(p);

    FUZZ_CHECK(gc_inbound_verify(SECRET, body, size, sig) == 1);
    FUZZ_CHECK(gc_inbound_verify("other", body, size, sig) == 0);
    FUZZ_CHECK(gc_inbound_verify(NULL, body, size, sig) == 0);
    sig[strlen(sig) - 1] = sig[strlen(sig) - 1] == '0' ? '1' : '0';
    FUZZ_CHECK(gc_inbound_verify(SECRET, body, size, sig) == 0);
    fuzz_split_line(data, size, &line, &rest, &rest_len);
    FUZZ_CHECK(
        gc_inbound_verify(SECRET, (const char *)rest, rest_len, line)
        == (strcmp(line, gc_webhook_signature(p, SECRET, (const char *)rest, rest_len)) == 0));
    gc_inbound_unauthorized(res, line);
    FUZZ_CHECK(res->status == 401);
    fuzz_check_result(res);
    free(line);
}

/* What gc_store_write_batch would count of the kept events on an empty
 * store (gc_event_judge against the last state stored per user). */
static void judge(apr_pool_t *p, const apr_array_header_t *kept, gc_store_batch_result_t *w)
{
    apr_hash_t *cur = apr_hash_make(p);
    int i;

    memset(w, 0, sizeof(*w));
    for (i = 0; i < kept->nelts; i++) {
        const gc_agent_event_t *ev = &APR_ARRAY_IDX(kept, i, gc_agent_event_t);
        gc_agent_current_t *c = apr_hash_get(cur, ev->user_id, APR_HASH_KEY_STRING);

        switch (gc_event_judge(c, ev)) {
        case GC_EV_TRANSITION: w->transitions++; break;
        case GC_EV_REFRESH: w->refreshed++; break;
        case GC_EV_DUPLICATE: w->duplicates++; continue;
        case GC_EV_STALE: w->stale++; continue;
        }
        if (!c) {
            c = apr_pcalloc(p, sizeof(*c));
            apr_hash_set(cur, ev->user_id, APR_HASH_KEY_STRING, c);
        }
        c->state = ev->state;
        c->event_at = ev->event_at;
    }
}

static int member(const json_t *doc, const char *key)
{
    const json_t *v = json_object_get(doc, key);

    FUZZ_CHECK(json_is_integer(v));
    return (int)json_integer_value(v);
}

static void check_batch(apr_pool_t *p, gc_inbound_batch_t *b)
{
    const gc_inbound_counts_t *c = &b->counts;
    gc_store_batch_result_t w;
    gc_result_t *res;
    json_t *doc;
    int i, sum = 0, k = 0, g = 0;

    FUZZ_CHECK(c->by_kind[GC_MSG_MALFORMED] == 0);
    for (i = 0; i <= GC_MSG_UNKNOWN; i++) {
        FUZZ_CHECK(c->by_kind[i] >= 0);
        sum += c->by_kind[i];
    }
    FUZZ_CHECK(sum == c->received);
    FUZZ_CHECK(c->received == c->skipped + c->events);
    FUZZ_CHECK(c->received <= GC_INBOUND_MAX_ENVELOPES);
    FUZZ_CHECK(c->by_kind[GC_MSG_EVENT] == c->events + c->no_state);
    FUZZ_CHECK(b->events && b->events->nelts == c->events);
    for (i = 0; i < b->events->nelts; i++) {
        FUZZ_CHECK(APR_ARRAY_IDX(b->events, i, gc_agent_event_t).state != NULL);
    }

    res = gc_result_make(p);
    gc_inbound_respond(res, b, NULL); /* before the filter: every event is kept */
    FUZZ_CHECK(res->status == 202);
    FUZZ_CHECK(member(res->doc, "queued") == c->events);

    gc_inbound_filter(p, b, monitored, NULL);
    FUZZ_CHECK(c->kept == b->kept->nelts && c->ignored == b->ignored->nelts);
    FUZZ_CHECK(c->kept + c->ignored == c->events);
    for (i = 0; i < b->events->nelts; i++) { /* order kept within each part */
        const gc_agent_event_t *ev = &APR_ARRAY_IDX(b->events, i, gc_agent_event_t);
        const apr_array_header_t *part = monitored(NULL, ev->user_id) ? b->kept : b->ignored;
        int *at = part == b->kept ? &k : &g;
        FUZZ_CHECK(APR_ARRAY_IDX(part, *at, gc_agent_event_t).user_id == ev->user_id);
        (*at)++;
    }

    judge(p, b->kept, &w);
    res = gc_result_make(p);
    gc_inbound_respond(res, b, &w);
    FUZZ_CHECK(res->status == 200);
    fuzz_check_result(res);
    doc = res->doc;
    FUZZ_CHECK(member(doc, "received")
               == member(doc, "skipped") + member(doc, "ignored") + member(doc, "stored")
                      + member(doc, "refreshed") + member(doc, "duplicates")
                      + member(doc, "stale"));
    FUZZ_CHECK(member(doc, "events")
               == member(doc, "ignored") + member(doc, "stored") + member(doc, "refreshed")
                      + member(doc, "duplicates") + member(doc, "stale"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    gc_result_t *res = gc_result_make(p);
    gc_inbound_batch_t *b = (gc_inbound_batch_t *)1;

    check_signature(p, data, size);
    if (gc_inbound_parse(p, (const char *)data, size, res, &b) != 0) {
        FUZZ_CHECK(b == NULL);
        FUZZ_CHECK(res->status == 400);
        fuzz_check_result(res);
    }
    else {
        FUZZ_CHECK(b != NULL && !gc_result_failed(res));
        check_batch(p, b);
    }
    apr_pool_destroy(p);
    return 0;
}
