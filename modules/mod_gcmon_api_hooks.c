/* mod_gcmon_api: POST /v1/hooks/genesys, the inbound Genesys event receiver
 * (SPEC §5.7; the protocol is gc_inbound.h's). Authenticated by the body's
 * HMAC (GcmonInboundSecret), not by an actor: a relay is not a person. The
 * events are written like the stream's (source "inbound"), in this request,
 * so the answer says what was stored and what was a duplicate. */
#include <apr_optional.h>
#include <apr_strings.h>
#include <http_protocol.h>

#include "gc_inbound.h"
#include "gc_store.h"
#include "mod_gcmon_api_private.h"

typedef struct {
    request_rec *r;
    gc_store_t *store;
    APR_OPTIONAL_FN_TYPE(gcmon_stream_monitors_user) * configured;
    apr_hash_t *seen; /* user id → "1"/"0": one lookup per agent per body */
    const char *db_error;
} monitored_ctx_t;

/* A GcmonMonitorUser, or a member of a GcmonMonitorQueue as the holder last
 * recorded the queues (gcmon_membership). */
static int monitored(void *baton, const char *user_id)
{
    monitored_ctx_t *c = baton;
    const char *known = apr_hash_get(c->seen, user_id, APR_HASH_KEY_STRING);
    const char *err = NULL;
    int yes = 0;

    if (known) {
        return *known == '1';
    }
    if (c->configured && c->configured(user_id)) {
        yes = 1;
    }
    else if (gc_store_membership_has(c->store, c->r->pool, user_id, &yes, &err) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, c->r,
                      GCMON_LOGNO(1411) "inbound: cannot read the queue membership of %s: %s; "
                                        "its events are ignored",
                      user_id, err ? err : "database error");
    }
    apr_hash_set(c->seen, user_id, APR_HASH_KEY_STRING, yes ? "1" : "0");
    return yes;
}

/* The board changed outside the holder: its 304 shortcut must not hide it. */
static void board_changed(void *baton, apr_int64_t board_id, apr_int64_t gen)
{
    APR_OPTIONAL_FN_TYPE(gcmon_stream_board_changed) *fn =
        APR_RETRIEVE_OPTIONAL_FN(gcmon_stream_board_changed);

    if (fn) {
        fn(board_id, gen);
    }
}

static int store_events(request_rec *r, gc_store_t *st, gc_inbound_batch_t *b, gc_result_t *res)
{
    gc_store_batch_result_t w;
    const char *err = NULL;

    memset(&w, 0, sizeof(w));
    if (b->kept->nelts > 0) {
        gc_store_on_board_change(st, board_changed, NULL);
        if (gc_store_write_batch(st, r->pool, (const gc_agent_event_t *)b->kept->elts,
                                 b->kept->nelts, GC_INBOUND_SOURCE, apr_time_now(), &w, &err)
            != APR_SUCCESS) {
            return gcmon_api_database_error(r, "inbound events", err);
        }
    }
    gc_inbound_respond(res, b, &w);
    ap_log_rerror(
        APLOG_MARK, APLOG_DEBUG, 0, r,
        GCMON_LOGNO(1410) "inbound: %d envelope(s): %d stored, %d duplicate(s), "
                          "%d stale, %d refreshed, %d ignored (not monitored), %d skipped",
        b->counts.received, w.transitions, w.duplicates, w.stale, w.refreshed, b->counts.ignored,
        b->counts.skipped);
    return gcmon_api_send_result(r, res);
}

int gcmon_api_hooks_genesys(request_rec *r, const char **params, json_t *body)
{
    const char *secret = gcmon_api_conf()->inbound_secret;
    const char *sig = apr_table_get(r->headers_in, GC_INBOUND_SIGNATURE_HEADER);
    gc_result_t *res = gc_result_make(r->pool);
    monitored_ctx_t ctx;
    gc_inbound_batch_t *b = NULL;
    const char *buf = NULL;
    apr_size_t len = 0;

    if (!secret) {
        ap_discard_request_body(r);
        return gcmon_api_send_problem(r, HTTP_NOT_FOUND, "not_found", "Not found",
                                      "the inbound event receiver is off on this server "
                                      "(GcmonInboundSecret is not set)");
    }
    if (gcmon_api_raw_body(r, &buf, &len) != OK) {
        return OK;
    }
    if (!gc_inbound_verify(secret, buf, len, sig)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      GCMON_LOGNO(1412) "inbound: refused a body without a valid %s "
                                        "(%s)",
                      GC_INBOUND_SIGNATURE_HEADER, sig ? "signature does not match" : "absent");
        gc_inbound_unauthorized(res, sig);
        return gcmon_api_send_result(r, res);
    }
    if (gc_inbound_parse(r->pool, buf, len, res, &b) != 0) {
        return gcmon_api_send_result(r, res);
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.r = r;
    ctx.seen = apr_hash_make(r->pool);
    ctx.configured = APR_RETRIEVE_OPTIONAL_FN(gcmon_stream_monitors_user);
    if (b->events->nelts > 0 && !(ctx.store = gcmon_api_store(r, 1))) {
        return OK;
    }
    gc_inbound_filter(r->pool, b, ctx.store ? monitored : NULL, &ctx);
    if (ctx.db_error) {
        return gcmon_api_database_error(r, "inbound membership", ctx.db_error);
    }
    return store_events(r, ctx.store, b, res);
}
