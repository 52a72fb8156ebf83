/* Notification channels (SPEC §4.2): create, subscribe (replace), check,
 * renew before expiry, persist so the next holder reuses them, and replace
 * when Genesys says they are gone. One blocking REST call per loop turn. */
#include <string.h>

#include <apr_strings.h>

#include "gc_id.h"
#include "gc_monitor_int.h"
#include "gc_time.h"

#define CHANNELS_PATH "/api/v2/notifications/channels"
#define RESET_QUIET apr_time_from_sec(10)
#define REJECTED_LOG_MAX 10

/* Logs above debug name a channel by its label: the id is a credential. */
static const char *ch_name(const mon_channel_t *ch)
{
    return ch->cur.id ? ch->cur.label : "(new)";
}

static void ident_set(gc_monitor_t *m, mon_ident_t *d, const char *id, const char *uri,
                      apr_time_t expires)
{
    if (d->pool) {
        apr_pool_destroy(d->pool);
    }
    apr_pool_create(&d->pool, m->term);
    d->id = apr_pstrdup(d->pool, id);
    d->uri = apr_pstrdup(d->pool, uri);
    d->expires = expires;
    d->margin = GC_CHANNEL_RENEW_MARGIN;
    gc_mon_channel_label(m, id, d->label);
}

apr_interval_time_t gc_mon_channel_margin(apr_interval_time_t life)
{
    apr_interval_time_t quarter = life / 4;

    if (life <= 0 || quarter >= GC_CHANNEL_RENEW_MARGIN) {
        return GC_CHANNEL_RENEW_MARGIN;
    }
    return quarter < apr_time_from_sec(1) ? apr_time_from_sec(1) : quarter;
}

/* The one place the id appears in the log (debug): to map a label to it. */
static void log_label(const mon_ident_t *d, const char *how)
{
    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
           GCMON_LOGNO(2234) "channel %s is notification channel %s (%s)", d->label, d->id, how);
}

static void ident_clear(mon_ident_t *d)
{
    if (d->pool) {
        apr_pool_destroy(d->pool);
    }
    memset(d, 0, sizeof(*d));
}

static void row_delete(gc_monitor_t *m, const char *id)
{
    char label[GC_CHANNEL_LABEL_SIZE];
    gc_store_t *s = gc_worker_store(m->worker);

    if (id && s && gc_store_channel_delete(s, id) != APR_SUCCESS) {
        gc_mon_channel_label(m, id, label);
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2220) "could not forget notification channel %s in the database", label);
    }
}

/* Topic names of the users assigned to slot idx, as a JSON array of strings
 * (names = 1) or of {"id": topic} objects (names = 0). */
static json_t *topics_of(gc_monitor_t *m, int idx, int names)
{
    json_t *a = json_array();
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(m->iter, m->users); hi; hi = apr_hash_next(hi)) {
        const mon_user_t *u = apr_hash_this_val(hi);
        const char *t;
        if (u->chan != idx) {
            continue;
        }
        t = gc_topic_for_user(m->iter, u->id);
        json_array_append_new(a, names ? json_string(t) : json_pack("{s:s}", "id", t));
    }
    return a;
}

static const char *json_text_owned(apr_pool_t *p, json_t *j)
{
    const char *t = gc_json_text(p, j);
    json_decref(j);
    return t;
}

void gc_mon_channel_save(gc_monitor_t *m, mon_channel_t *ch)
{
    gc_channel_rec_t rec;

    ch->save_pending = 0;
    if (!ch->cur.id || !gc_worker_store(m->worker)) {
        return;
    }
    rec.id = ch->cur.id;
    rec.connect_uri = ch->cur.uri;
    rec.expires_at = ch->cur.expires;
    rec.topics = json_text_owned(m->iter, topics_of(m, ch->idx, 1));
    if (!rec.topics || gc_store_channel_save(gc_worker_store(m->worker), &rec) != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2221) "could not record notification channel %s in the database; "
                                 "a new holder will create its own channels",
               ch->cur.label);
    }
}

static void abandon_sockets(gc_monitor_t *m, mon_channel_t *ch)
{
    if (ch->sock) {
        gc_mon_sock_abandon(m, ch->sock);
    }
    if (ch->spare) {
        gc_mon_sock_abandon(m, ch->spare);
    }
}

void gc_mon_channel_reset(gc_monitor_t *m, mon_channel_t *ch, const char *why)
{
    apr_time_t now = apr_time_now();

    abandon_sockets(m, ch);
    row_delete(m, ch->cur.id);
    ident_clear(&ch->cur);
    ident_clear(&ch->next);
    row_delete(m, ch->old.id);
    ident_clear(&ch->old);
    ch->topics = 0;
    ch->next_subscribed = 0;
    ch->need_subscribe = 1;
    ch->need_head = 0;
    ch->failures = 0;
    ch->ping_at = 0;
    ch->next_connect = 0;
    ch->want_spare = 0;
    ch->reset_why = NULL;
    ch->save_pending = 0;
    /* A channel lost again right after being replaced: don't spin. */
    ch->next_op = now - ch->reset_at < RESET_QUIET ? now + m->conf->backoff_min : 0;
    ch->reset_at = now;
    m->snap_dirty = 1;
    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
           GCMON_LOGNO(2222) "channel slot %d: replacing the channel (%s)", ch->idx,
           why ? why : "-");
}

void gc_mon_channel_retire(gc_monitor_t *m, mon_channel_t *ch)
{
    int idx = ch->idx;

    gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
           GCMON_LOGNO(2223) "channel %s: no agents left on it; closing it", ch_name(ch));
    abandon_sockets(m, ch);
    row_delete(m, ch->cur.id);
    row_delete(m, ch->old.id);
    ident_clear(&ch->cur);
    ident_clear(&ch->next);
    ident_clear(&ch->old);
    memset(ch, 0, sizeof(*ch));
    ch->idx = idx;
    m->snap_dirty = 1;
}

/* on_open of a spare socket (callback: pointers only; the loop persists). */
void gc_mon_channel_promote(gc_monitor_t *m, mon_channel_t *ch, mon_sock_t *s, apr_time_t now)
{
    mon_sock_t *old = ch->sock;

    ch->spare = NULL;
    ch->sock = s;
    s->role = SOCK_MAIN;
    ch->last_rx = now;
    ch->ping_at = 0;
    ch->failures = 0;
    if (old) {
        gc_mon_sock_abandon(m, old);
        ch->sock = s;
    }
    if (s->renewal) {
        ch->old = ch->cur;
        ch->cur = ch->next;
        memset(&ch->next, 0, sizeof(ch->next));
        ch->next_subscribed = 0;
        ch->op_failures = 0;
        ch->save_pending = 1;
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(2224) "channel %s replaced %s before its expiry", ch->cur.label,
               ch->old.id ? ch->old.label : "-");
    }
    else {
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0, GCMON_LOGNO(2225) "channel %s: new socket took over",
               ch_name(ch));
    }
    m->snap_dirty = 1;
    gc_mon_mark_resync(m, ch->idx);
}

static void op_failed(gc_monitor_t *m, mon_channel_t *ch, const char *what, const gc_error_t *err)
{
    apr_interval_time_t d;

    ch->op_failures++;
    d = gc_mon_retry_delay(m, ch->op_failures, err);
    ch->next_op = apr_time_now() + d;
    if (gc_mon_power_of_two(ch->op_failures)) {
        gc_mon_error(m, GC_LOG_WARNING,
                     GCMON_LOGNO(2226) "cannot %s for channel %s: %s "
                                       "(%s%s%s), attempt %d; retrying in %.1f s",
                     what, ch_name(ch), err && err->message ? err->message : "error",
                     err ? gc_err_kind_name(err->kind) : "?",
                     err && err->correlation_id ? ", correlation " : "",
                     err && err->correlation_id ? err->correlation_id : "", ch->op_failures,
                     (double)d / (double)APR_USEC_PER_SEC);
    }
}

/* The connect URI must be a WebSocket URL; wss:// when the API is https. */
static int uri_ok(gc_monitor_t *m, const char *uri)
{
    int secure_api = strncmp(m->env.conn->api_url, "https:", 6) == 0;

    if (!uri) {
        return 0;
    }
    if (strncmp(uri, "wss://", 6) == 0) {
        return 1;
    }
    return !secure_api && strncmp(uri, "ws://", 5) == 0;
}

static int create(gc_monitor_t *m, mon_channel_t *ch, mon_ident_t *into)
{
    gc_response_t *resp;
    gc_error_t *err;
    const char *id, *uri, *exp;
    apr_time_t expires, asked = apr_time_now();

    if (gc_mon_call(m, "channels_create", "POST", CHANNELS_PATH, NULL, NULL, &resp, &err)
        != APR_SUCCESS) {
        op_failed(m, ch, "create a notification channel", err);
        return 1;
    }
    id = resp->json ? json_string_value(json_object_get(resp->json, "id")) : NULL;
    uri = resp->json ? json_string_value(json_object_get(resp->json, "connectUri")) : NULL;
    exp = resp->json ? json_string_value(json_object_get(resp->json, "expires")) : NULL;
    if (!gc_id_valid(id) || !uri_ok(m, uri)) {
        gc_error_t e;
        memset(&e, 0, sizeof(e));
        e.kind = GC_ERR_PROTOCOL;
        e.message = "the answer has no usable id or connectUri";
        op_failed(m, ch, "create a notification channel", &e);
        return 1;
    }
    if (!exp || gc_time_parse(exp, &expires) != 0) {
        expires = apr_time_now() + apr_time_from_sec(86400);
    }
    ident_set(m, into, id, uri, expires);
    into->margin = gc_mon_channel_margin(expires - asked);
    ch->op_failures = 0;
    if (into == &ch->cur) {
        ch->need_subscribe = 1;
        ch->failures = 0;
        ch->next_connect = 0;
        gc_mon_channel_save(m, ch);
    }
    log_label(into, "created");
    gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
           GCMON_LOGNO(2227) "created notification channel %s (expires %s)%s%s", into->label,
           gc_time_format(m->iter, expires), into == &ch->next ? " to renew " : "",
           into == &ch->next ? ch_name(ch) : "");
    m->snap_dirty = 1;
    return 1;
}

/* Count permitted topics; log rejected ones with their reason. */
static int count_permitted(gc_monitor_t *m, const mon_channel_t *ch, const json_t *doc)
{
    const json_t *ents = doc ? json_object_get(doc, "entities") : NULL;
    size_t i;
    int permitted = 0, rejected = 0;

    for (i = 0; ents && i < json_array_size(ents); i++) {
        const json_t *e = json_array_get(ents, i);
        const char *state = json_string_value(json_object_get(e, "state"));
        if (!state || strcmp(state, "Rejected") != 0) {
            permitted++;
            continue;
        }
        if (++rejected <= REJECTED_LOG_MAX) {
            gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
                   GCMON_LOGNO(2228) "channel %s: topic %s rejected: %s", ch_name(ch),
                   json_string_value(json_object_get(e, "id"))
                       ? json_string_value(json_object_get(e, "id"))
                       : "?",
                   json_string_value(json_object_get(e, "rejectionReason"))
                       ? json_string_value(json_object_get(e, "rejectionReason"))
                       : "no reason given");
        }
    }
    if (rejected > 0) {
        gc_mon_error(m, GC_LOG_WARNING,
                     GCMON_LOGNO(2229) "channel %s: %d topic(s) rejected "
                                       "by Genesys Cloud (those agents are not monitored)",
                     ch_name(ch), rejected);
    }
    return permitted;
}

static int subscribe(gc_monitor_t *m, mon_channel_t *ch, mon_ident_t *id)
{
    const char *path = apr_pstrcat(m->iter, CHANNELS_PATH "/", id->id, "/subscriptions", NULL);
    const char *body = json_text_owned(m->iter, topics_of(m, ch->idx, 0));
    gc_response_t *resp;
    gc_error_t *err;
    int permitted;

    if (gc_mon_call(m, "subscriptions_put", "PUT", path, id->id, body, &resp, &err)
        != APR_SUCCESS) {
        if (err && err->kind == GC_ERR_NOT_FOUND) {
            if (id == &ch->cur) {
                ch->reset_why = "channel_expired";
            }
            else {
                ident_clear(&ch->next);
            }
            return 1;
        }
        op_failed(m, ch, "subscribe the topics", err);
        return 1;
    }
    permitted = count_permitted(m, ch, resp->json);
    ch->op_failures = 0;
    if (id == &ch->next) {
        ch->next_subscribed = 1;
        return 1;
    }
    ch->topics = permitted;
    ch->need_subscribe = 0;
    gc_mon_channel_save(m, ch);
    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0, GCMON_LOGNO(2230) "channel %s: %d topic(s) subscribed",
           ch_name(ch), permitted);
    if (ch->sock && ch->sock->open) {
        gc_mon_mark_resync(m, ch->idx);
    }
    m->snap_dirty = 1;
    return 1;
}

/* After a failed connect: is the channel still there? */
static int head(gc_monitor_t *m, mon_channel_t *ch)
{
    const char *path = apr_pstrcat(m->iter, CHANNELS_PATH "/", ch->cur.id, NULL);
    gc_response_t *resp;
    gc_error_t *err;

    ch->need_head = 0;
    if (gc_mon_call(m, "channel_head", "HEAD", path, ch->cur.id, NULL, &resp, &err)
        == APR_SUCCESS) {
        return 1;
    }
    if (err && err->kind == GC_ERR_NOT_FOUND) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2231) "channel %s no longer exists; creating a new one", ch_name(ch));
        m->snap.reconnects_total++;
        gc_mon_metric_inc(m, GC_MET_STREAM_RECONNECTS, "channel_expired");
        ch->reset_why = "channel_expired";
    }
    return 1;
}

/* Reuse the channels a previous holder persisted (HEAD 200, not expiring). */
void gc_mon_channels_reuse(gc_monitor_t *m, apr_time_t now)
{
    apr_array_header_t *rows = NULL;
    gc_store_t *s = gc_worker_store(m->worker);
    int i, slot = 0;

    if (!s || gc_store_channels_load(s, m->iter, &rows) != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2232) "could not read the persisted notification channels; "
                                 "creating new ones");
        return;
    }
    for (i = 0; i < rows->nelts && gc_mon_running(m); i++) {
        const gc_channel_rec_t *r = &APR_ARRAY_IDX(rows, i, gc_channel_rec_t);
        const char *path = apr_pstrcat(m->iter, CHANNELS_PATH "/", r->id, NULL);
        gc_response_t *resp;
        gc_error_t *err;
        json_t *topics;
        mon_channel_t *ch;
        size_t k;

        if (slot >= GC_MAX_CHANNELS || !gc_id_valid(r->id) || !uri_ok(m, r->connect_uri)
            || r->expires_at - now <= GC_CHANNEL_RENEW_MARGIN
            || gc_mon_call(m, "channel_head", "HEAD", path, r->id, NULL, &resp, &err)
                   != APR_SUCCESS) {
            row_delete(m, r->id);
            continue;
        }
        ch = &m->ch[slot++];
        ident_set(m, &ch->cur, r->id, r->connect_uri, r->expires_at);
        ch->need_subscribe = 1;
        topics = r->topics ? json_loads(r->topics, 0, NULL) : NULL;
        for (k = 0; topics && k < json_array_size(topics); k++) {
            const char *u = gc_topic_user(m->iter, json_string_value(json_array_get(topics, k)));
            if (gc_id_valid(u)) {
                gc_mon_users_add_assigned(m, u, ch->idx);
            }
        }
        json_decref(topics);
        log_label(&ch->cur, "reused");
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(2233) "reusing notification channel %s (%d agent(s), expires %s)",
               ch->cur.label, ch->nusers, gc_time_format(m->iter, r->expires_at));
    }
}

static int renewal_due(const mon_channel_t *ch, apr_time_t now)
{
    return ch->cur.id && ch->sock && ch->sock->open && !ch->spare && !ch->need_subscribe
           && ch->cur.expires - now < ch->cur.margin;
}

/* Deferred work that needs no upstream call. */
static void housekeeping(gc_monitor_t *m, mon_channel_t *ch)
{
    if (ch->reset_why) {
        gc_mon_channel_reset(m, ch, ch->reset_why);
    }
    if (ch->nusers == 0 && (ch->cur.id || ch->sock || ch->spare || ch->next.id)) {
        gc_mon_channel_retire(m, ch);
        return;
    }
    if (ch->old.id) {
        row_delete(m, ch->old.id);
        ident_clear(&ch->old);
    }
    if (ch->save_pending) {
        gc_mon_channel_save(m, ch);
    }
}

int gc_mon_channels_step(gc_monitor_t *m, apr_time_t now)
{
    int i;

    for (i = 0; i < GC_MAX_CHANNELS; i++) {
        housekeeping(m, &m->ch[i]);
    }
    for (i = 0; i < GC_MAX_CHANNELS; i++) {
        mon_channel_t *ch = &m->ch[i];
        if (ch->nusers == 0 || now < ch->next_op) {
            continue;
        }
        if (!ch->cur.id) {
            return create(m, ch, &ch->cur);
        }
        if (ch->need_head && !ch->sock) {
            return head(m, ch);
        }
        if (ch->need_subscribe) {
            return subscribe(m, ch, &ch->cur);
        }
        if (renewal_due(ch, now)) {
            if (!ch->next.id) {
                return create(m, ch, &ch->next);
            }
            if (!ch->next_subscribed) {
                return subscribe(m, ch, &ch->next);
            }
        }
    }
    return 0;
}

void gc_mon_channels_connect(gc_monitor_t *m, apr_time_t now)
{
    int i;

    gc_mon_socks_reap(m);
    if (m->lease_check) {
        return; /* the loop renews the lease first */
    }
    for (i = 0; i < GC_MAX_CHANNELS; i++) {
        mon_channel_t *ch = &m->ch[i];
        if (ch->nusers == 0 || ch->reset_why) {
            continue;
        }
        if (ch->want_spare) {
            ch->want_spare = 0;
            if (ch->sock && !ch->spare) {
                gc_mon_sock_open(m, ch, ch->cur.uri, SOCK_SPARE);
            }
        }
        if (ch->cur.id && !ch->sock && !ch->need_head && now >= ch->next_connect) {
            gc_mon_sock_open(m, ch, ch->cur.uri, SOCK_MAIN);
        }
        if (ch->next.id && ch->next_subscribed && !ch->spare && ch->sock && now >= ch->spare_next) {
            mon_sock_t *s = gc_mon_sock_open(m, ch, ch->next.uri, SOCK_SPARE);
            if (s) {
                s->renewal = 1;
            }
        }
    }
    gc_mon_socks_reap(m);
}
