/* The inbound Genesys event receiver without httpd (SPEC §5.7): signature,
 * body, filter, answer. See gc_inbound.h. */
#include <string.h>

#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gc_inbound.h"
#include "gc_secret.h"

#define PREFIX_LEN (sizeof(GC_INBOUND_SIGNATURE_PREFIX) - 1)
#define DIGEST_LEN 32 /* SHA-256 */
#define HEX_LEN (2 * DIGEST_LEN)

/* How much of jansson's error text a 400 quotes (it may quote the body). */
#define JSON_ERROR_MAX 120

/* ---------------------------------------------------------------- signature */

/* "sha256=" and 64 lowercase hex digits, nothing else. Looks only at the
 * header (what the client sent), never at the secret. */
static int signature_shaped(const char *header)
{
    size_t i;

    if (!header || strncmp(header, GC_INBOUND_SIGNATURE_PREFIX, PREFIX_LEN) != 0) {
        return 0;
    }
    for (i = 0; i < HEX_LEN; i++) {
        char c = header[PREFIX_LEN + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0; /* also the NUL of a short digest */
        }
    }
    return header[PREFIX_LEN + HEX_LEN] == '\0';
}

int gc_inbound_verify(const char *secret, const char *body, apr_size_t len, const char *header)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    char want[HEX_LEN];
    unsigned int mlen = 0, i;
    int ok = 0;

    if (!secret || !*secret || (!body && len > 0) || !signature_shaped(header)) {
        return 0;
    }
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)(body ? body : ""),
             body ? len : 0, mac, &mlen)
        && mlen == DIGEST_LEN) {
        for (i = 0; i < mlen; i++) {
            want[2 * i] = hex[mac[i] >> 4];
            want[2 * i + 1] = hex[mac[i] & 0x0f];
        }
        ok = CRYPTO_memcmp(want, header + PREFIX_LEN, HEX_LEN) == 0;
    }
    gc_wipe(mac, sizeof(mac));
    gc_wipe(want, sizeof(want));
    return ok;
}

void gc_inbound_unauthorized(gc_result_t *res, const char *header)
{
    const char *detail;

    if (!header) {
        detail = "the request carries no " GC_INBOUND_SIGNATURE_HEADER " header";
    }
    else if (!signature_shaped(header)) {
        detail = GC_INBOUND_SIGNATURE_HEADER " must be " GC_INBOUND_SIGNATURE_PREFIX
                                             "<HMAC-SHA256 of the body, 64 lowercase hex digits>";
    }
    else {
        detail = GC_INBOUND_SIGNATURE_HEADER " does not match the body";
    }
    gc_result_problem(res, 401, "invalid_signature", "Invalid or missing signature", detail);
}

/* ------------------------------------------------------------------- body */

static int fail(gc_result_t *res, const char *slug, const char *title, const char *type,
                const char *field, const char *detail)
{
    if (field) {
        gc_result_field(res, field, detail);
    }
    gc_result_problem(res, 400, slug, title, detail);
    gc_result_error_type(res, type);
    return -1;
}

/* One envelope into b. 0, or -1 with the 400 in res. index < 0: the lone
 * envelope of the body. */
static int take(apr_pool_t *p, gc_inbound_batch_t *b, const json_t *env, int index,
                gc_result_t *res)
{
    gc_agent_event_t ev;
    const char *why = NULL;
    gc_msg_kind_e kind = gc_notify_parse_json(p, env, &ev, &why);

    b->counts.received++;
    if (kind == GC_MSG_MALFORMED) {
        return fail(res, "invalid_body", "Invalid body", "invalid_value",
                    index < 0 ? "body" : apr_psprintf(p, "body[%d]", index),
                    index < 0 ? apr_pstrcat(p, "the envelope is malformed: ", why, NULL)
                              : apr_psprintf(p, "envelope %d is malformed: %s", index, why));
    }
    b->counts.by_kind[kind]++;
    if (kind != GC_MSG_EVENT) {
        b->counts.skipped++;
    }
    else if (!ev.state) {
        b->counts.no_state++;
        b->counts.skipped++;
    }
    else {
        APR_ARRAY_PUSH(b->events, gc_agent_event_t) = ev;
        b->counts.events++;
    }
    return 0;
}

static int parse_root(apr_pool_t *p, const json_t *root, gc_result_t *res, gc_inbound_batch_t *b)
{
    size_t i, n;

    if (json_is_object(root)) {
        b->events = apr_array_make(p, 1, sizeof(gc_agent_event_t));
        return take(p, b, root, -1, res);
    }
    if (!json_is_array(root)) {
        return fail(res, "invalid_body", "Invalid body", "invalid_type", NULL,
                    "the body must be a notification envelope (a JSON object) or a JSON array "
                    "of them");
    }
    n = json_array_size(root);
    if (n > GC_INBOUND_MAX_ENVELOPES) {
        return fail(res, "invalid_body", "Invalid body", "invalid_value", "body",
                    apr_psprintf(p,
                                 "the body holds %" APR_SIZE_T_FMT " envelopes; at most %d are "
                                 "accepted in one request",
                                 n, GC_INBOUND_MAX_ENVELOPES));
    }
    b->events = apr_array_make(p, n ? (int)n : 1, sizeof(gc_agent_event_t));
    for (i = 0; i < n; i++) {
        if (take(p, b, json_array_get(root, i), (int)i, res) != 0) {
            return -1;
        }
    }
    return 0;
}

int gc_inbound_parse(apr_pool_t *p, const char *body, apr_size_t len, gc_result_t *res,
                     gc_inbound_batch_t **out)
{
    gc_inbound_batch_t *b;
    json_error_t err;
    json_t *root;
    int rc;

    *out = NULL;
    if (!body || len == 0) {
        return fail(res, "malformed_json", "Malformed JSON body", "malformed_json", NULL,
                    "the body is empty");
    }
    root = json_loadb(body, len, JSON_DECODE_ANY, &err);
    if (!root) {
        return fail(res, "malformed_json", "Malformed JSON body", "malformed_json", NULL,
                    apr_psprintf(p, "line %d, column %d: %s", err.line, err.column,
                                 gc_redact_line(p, err.text, strnlen(err.text, sizeof(err.text)),
                                                NULL, 0, 0, JSON_ERROR_MAX)));
    }
    b = apr_pcalloc(p, sizeof(*b));
    rc = parse_root(p, root, res, b);
    json_decref(root);
    if (rc != 0) {
        return -1;
    }
    *out = b;
    return 0;
}

void gc_inbound_filter(apr_pool_t *p, gc_inbound_batch_t *b, gc_inbound_monitored_fn *monitored,
                       void *baton)
{
    int i, n = b->events ? b->events->nelts : 0;

    b->kept = apr_array_make(p, n ? n : 1, sizeof(gc_agent_event_t));
    b->ignored = apr_array_make(p, 1, sizeof(gc_agent_event_t));
    for (i = 0; i < n; i++) {
        const gc_agent_event_t *ev = &APR_ARRAY_IDX(b->events, i, gc_agent_event_t);
        if (!monitored || monitored(baton, ev->user_id)) {
            APR_ARRAY_PUSH(b->kept, gc_agent_event_t) = *ev;
        }
        else {
            APR_ARRAY_PUSH(b->ignored, gc_agent_event_t) = *ev;
        }
    }
    b->counts.kept = b->kept->nelts;
    b->counts.ignored = b->ignored->nelts;
}

/* ----------------------------------------------------------------- answer */

json_t *gc_inbound_response_json(const gc_inbound_batch_t *b, const gc_store_batch_result_t *w)
{
    const gc_inbound_counts_t *c = &b->counts;
    /* Before gc_inbound_filter every event counts as kept. */
    int kept = b->kept ? c->kept : c->events, ignored = b->kept ? c->ignored : 0;

    if (w) {
        return json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "received", c->received,
                         "events", c->events, "skipped", c->skipped, "ignored", ignored, "stored",
                         w->transitions, "refreshed", w->refreshed, "duplicates", w->duplicates,
                         "stale", w->stale);
    }
    return json_pack("{s:i, s:i, s:i, s:i, s:i}", "received", c->received, "events", c->events,
                     "skipped", c->skipped, "ignored", ignored, "queued", kept);
}

void gc_inbound_respond(gc_result_t *res, const gc_inbound_batch_t *b,
                        const gc_store_batch_result_t *w)
{
    json_t *doc = gc_inbound_response_json(b, w);

    if (!doc) {
        gc_result_problem(res, 500, "internal", "Internal error", "out of memory");
        return;
    }
    gc_result_ok(res, w ? 200 : 202, doc);
}
