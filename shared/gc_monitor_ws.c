/* The holder's WebSockets: callbacks from gc_ws, message handling, the
 * heartbeat watchdog and reconnect scheduling. Callbacks never open or close
 * sockets themselves: they record what to do and the loop does it
 * (gc_mon_channels_connect / gc_mon_socks_reap), outside lws's dispatch. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "gc_monitor_int.h"

#define HEALTHY apr_time_from_sec(1) /* open this long: reconnect at once */
#define MALFORMED_LOG_EVERY apr_time_from_sec(60)

/* Logs above debug name a channel by its label: the id is a credential. */
static const char *ch_name(const mon_channel_t *ch)
{
    return ch && ch->cur.id ? ch->cur.label : "(new)";
}

static void unlink_sock(gc_monitor_t *m, mon_sock_t *s)
{
    mon_sock_t **pp = &m->socks;

    while (*pp && *pp != s) {
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = s->next;
    }
}

static const char *fmt_delay(apr_pool_t *p, apr_interval_time_t d)
{
    return apr_psprintf(p, "%.1f s", (double)d / (double)APR_USEC_PER_SEC);
}

/* The main socket of ch is gone: count it and schedule the next attempt. */
static void main_dropped(gc_monitor_t *m, mon_channel_t *ch, const mon_sock_t *s,
                         const char *reason)
{
    apr_time_t now = apr_time_now();
    apr_interval_time_t delay;
    int healthy = s->open && now - s->opened_at >= HEALTHY;

    ch->sock = NULL;
    ch->ping_at = 0;
    m->snap_dirty = 1;
    if (m->closing || !gc_mon_running(m)) {
        return;
    }
    m->snap.reconnects_total++;
    gc_mon_metric_inc(m, GC_MET_STREAM_RECONNECTS, s->open ? "closed" : "connect_error");
    ch->failures = healthy ? 0 : ch->failures + 1;
    delay =
        gc_worker_backoff(m->worker, m->conf->backoff_min, m->conf->backoff_max, ch->failures, 0);
    ch->next_connect = now + delay;
    if (!s->open) {
        ch->need_head = 1; /* does the channel still exist? */
    }
    m->lease_check = 1; /* never reconnect without still holding the lease */
    if (s->open && healthy) {
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(2200) "channel %s: socket closed (%s); reconnecting", ch_name(ch),
               reason ? reason : "no reason given");
    }
    else if (gc_mon_power_of_two(ch->failures)) {
        gc_mon_error(m, GC_LOG_WARNING,
                     GCMON_LOGNO(2201) "channel %s: %s (%s), attempt %d; "
                                       "retrying in %s",
                     ch_name(ch),
                     s->open ? "socket closed soon after connecting" : "cannot connect",
                     reason ? reason : "no reason given", ch->failures, fmt_delay(m->iter, delay));
    }
    else {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
               GCMON_LOGNO(2202) "channel %s: connect attempt %d failed (%s); retrying in %s",
               ch_name(ch), ch->failures, reason ? reason : "-", fmt_delay(m->iter, delay));
    }
}

static void sock_closed(gc_monitor_t *m, mon_sock_t *s, const char *reason)
{
    mon_channel_t *ch = s->ch;

    unlink_sock(m, s);
    if (reason && strstr(reason, "too big")) {
        gc_mon_metric_inc(m, GC_MET_STREAM_MESSAGES, "oversize");
    }
    if (ch && s == ch->sock) {
        main_dropped(m, ch, s, reason);
    }
    else if (ch && s == ch->spare) {
        ch->spare = NULL;
        if (s->renewal) {
            ch->op_failures++;
            ch->spare_next = apr_time_now()
                             + gc_worker_backoff(m->worker, m->conf->backoff_min,
                                                 m->conf->backoff_max, ch->op_failures, 0);
        }
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(2203) "channel %s: the replacement socket closed before taking "
                                 "over (%s)",
               ch_name(ch), reason ? reason : "no reason given");
    }
    free(s);
}

static void on_open(void *baton, gc_ws_conn_t *c, void *conn_baton)
{
    gc_monitor_t *m = baton;
    mon_sock_t *s = conn_baton;
    mon_channel_t *ch = s->ch;
    apr_time_t now = apr_time_now();

    s->open = 1;
    s->opened_at = now;
    if (!ch || s->role == SOCK_ABANDONED) {
        s->close_pending = 1;
        return;
    }
    if (s == ch->spare) {
        gc_mon_channel_promote(m, ch, s, now);
        return;
    }
    if (s == ch->sock) {
        ch->last_rx = now;
        ch->ping_at = 0;
        m->snap_dirty = 1;
        /* The first connect of a channel is the line that proves the stream is
         * up: notice, shown at Debian's default LogLevel warn (docs/operations.md,
         * "First start"). Reconnects stay at info, with GCM2200. */
        gc_log(GC_LOG_MARK, ch->connected_once ? GC_LOG_INFO : GC_LOG_NOTICE, 0,
               GCMON_LOGNO(2204) "channel %s: connected (%d topic(s))", ch_name(ch), ch->topics);
        ch->connected_once = 1;
        gc_mon_mark_resync(m, ch->idx);
    }
}

static void on_message(void *baton, gc_ws_conn_t *c, void *conn_baton, const char *text,
                       apr_size_t len)
{
    gc_mon_handle_message(baton, conn_baton, text, len);
}

static void on_close(void *baton, gc_ws_conn_t *c, void *conn_baton, int error, const char *reason)
{
    gc_monitor_t *m = baton;
    mon_sock_t *s = conn_baton;

    if (s->in_connect) {
        s->closed_early = 1;
        s->close_error = error;
        return;
    }
    sock_closed(m, s, reason);
}

const gc_ws_callbacks_t gc_mon_ws_callbacks = { on_open, on_message, on_close };

mon_sock_t *gc_mon_sock_open(gc_monitor_t *m, mon_channel_t *ch, const char *uri,
                             mon_sock_role_e role)
{
    mon_sock_t *s = calloc(1, sizeof(*s));
    gc_ws_t *ws = atomic_load(&m->ws);

    if (!s || !ws) {
        free(s);
        return NULL;
    }
    s->ch = ch;
    s->role = role;
    s->started_at = apr_time_now();
    s->next = m->socks;
    m->socks = s;
    if (role == SOCK_MAIN) {
        ch->sock = s;
    }
    else {
        ch->spare = s;
    }
    s->in_connect = 1;
    s->conn = gc_ws_connect(ws, uri, s);
    s->in_connect = 0;
    if (!s->conn || s->closed_early) {
        if (!s->conn) {
            gc_mon_error(m, GC_LOG_ERR,
                         GCMON_LOGNO(2205) "channel %s: cannot use the "
                                           "connect URI returned by Genesys Cloud",
                         ch_name(ch));
        }
        sock_closed(m, s, s->conn ? "connection failed" : "unusable URI");
        return NULL;
    }
    return s;
}

void gc_mon_sock_abandon(gc_monitor_t *m, mon_sock_t *s)
{
    mon_channel_t *ch = s->ch;

    if (ch && ch->sock == s) {
        ch->sock = NULL;
    }
    if (ch && ch->spare == s) {
        ch->spare = NULL;
    }
    s->ch = NULL;
    s->role = SOCK_ABANDONED;
    s->close_pending = 1;
}

void gc_mon_socks_reap(gc_monitor_t *m)
{
    mon_sock_t *s;

    for (s = m->socks; s; s = s->next) {
        if (s->close_pending && s->conn) {
            s->close_pending = 0;
            gc_ws_close(s->conn);
        }
    }
}

void gc_mon_socks_free_all(gc_monitor_t *m)
{
    while (m->socks) {
        mon_sock_t *s = m->socks;
        m->socks = s->next;
        if (s->ch && s->ch->sock == s) {
            s->ch->sock = NULL;
        }
        if (s->ch && s->ch->spare == s) {
            s->ch->spare = NULL;
        }
        free(s);
    }
}

/* Silence → ping; no answer → a new socket on the same channel. */
void gc_mon_watchdog(gc_monitor_t *m, apr_time_t now)
{
    int i;

    for (i = 0; i < GC_MAX_CHANNELS; i++) {
        mon_channel_t *ch = &m->ch[i];
        apr_time_t base;
        if (!ch->sock || !ch->sock->open) {
            continue;
        }
        base = ch->last_rx;
        if (m->resumed_at > base) {
            base = m->resumed_at;
        }
        if (!ch->ping_at) {
            if (now - base > m->conf->heartbeat_timeout
                && gc_ws_send(ch->sock->conn, "{\"message\":\"ping\"}") == 0) {
                ch->ping_at = now;
                gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
                       GCMON_LOGNO(2206) "channel %s: silent for %s; sent a ping", ch_name(ch),
                       fmt_delay(m->iter, now - ch->last_rx));
            }
            continue;
        }
        base = ch->ping_at > m->resumed_at ? ch->ping_at : m->resumed_at;
        if (now - base > m->conf->pong_timeout) {
            gc_mon_error(m, GC_LOG_WARNING,
                         GCMON_LOGNO(2207) "channel %s: no answer to a ping "
                                           "within %s after %s of silence; reconnecting",
                         ch_name(ch), fmt_delay(m->iter, m->conf->pong_timeout),
                         fmt_delay(m->iter, ch->ping_at - ch->last_rx));
            m->snap.reconnects_total++;
            gc_mon_metric_inc(m, GC_MET_STREAM_RECONNECTS, "pong_timeout");
            gc_mon_sock_abandon(m, ch->sock);
            ch->ping_at = 0;
            ch->failures = 0;
            ch->next_connect = now;
            m->lease_check = 1;
            m->snap_dirty = 1;
        }
    }
}

static void note_malformed(gc_monitor_t *m, const char *why, apr_time_t now)
{
    m->malformed_logged++;
    if (now - m->malformed_window >= MALFORMED_LOG_EVERY) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2208) "ignored %d malformed message(s) on the notification stream "
                                 "in the last minute; latest: %s",
               m->malformed_logged, why ? why : "-");
        m->malformed_logged = 0;
        m->malformed_window = now;
    }
}

static void on_event(gc_monitor_t *m, const gc_agent_event_t *ev, apr_time_t now)
{
    m->snap.events_total++;
    m->snap.last_event_at = now;
    m->snap_dirty = 1;
    if (!ev->state || !ev->user_id) {
        gc_mon_metric_inc(m, GC_MET_EVENTS_DROPPED, "malformed");
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
               GCMON_LOGNO(2209) "event for %s has no derivable state; ignored",
               ev->user_id ? ev->user_id : "(no id)");
        return;
    }
    if (m->writer) {
        gc_writer_push(m->writer, ev, "stream");
    }
}

/* no_longer_subscribed / token_revoked: the channel is useless; replace it. */
static void channel_lost(gc_monitor_t *m, mon_channel_t *ch, const char *label)
{
    if (ch->reset_why) {
        return;
    }
    gc_mon_error(m, GC_LOG_WARNING,
                 GCMON_LOGNO(2210) "channel %s: %s; creating a new channel "
                                   "and subscribing again",
                 ch_name(ch), label);
    m->snap.reconnects_total++;
    gc_mon_metric_inc(m, GC_MET_STREAM_RECONNECTS, label);
    if (strcmp(label, "token_revoked") == 0) {
        gc_upstream_invalidate_token(m->up);
    }
    ch->reset_why = label;
}

void gc_mon_handle_message(gc_monitor_t *m, mon_sock_t *s, const char *text, apr_size_t len)
{
    apr_time_t now = apr_time_now();
    mon_channel_t *ch = s->ch;
    gc_agent_event_t ev;
    const char *why = NULL;
    gc_msg_kind_e kind;
    int mine;

    apr_pool_clear(m->msg);
    memset(&ev, 0, sizeof(ev));
    kind = gc_notify_parse(m->msg, text, len, &ev, &why);
    mine = kind != GC_MSG_EVENT || gc_mon_is_monitored(m, ev.user_id);
    gc_mon_metric_inc(m, GC_MET_STREAM_MESSAGES, mine ? gc_msg_kind_name(kind) : "unmonitored");
    if (ch && s == ch->sock) {
        ch->last_rx = now;
        ch->ping_at = 0;
    }
    switch (kind) {
    case GC_MSG_EVENT:
        if (mine) {
            on_event(m, &ev, now);
        }
        else {
            /* Someone else subscribed the channel to this agent: not ours to record. */
            gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
                   GCMON_LOGNO(2213) "channel %s: ignored an event for agent %s, who is not "
                                     "monitored",
                   ch_name(ch), ev.user_id);
        }
        break;
    case GC_MSG_HEARTBEAT:
    case GC_MSG_PONG: break;
    case GC_MSG_SOCKET_CLOSING:
        if (ch && s == ch->sock && !ch->spare && !ch->reset_why) {
            gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
                   GCMON_LOGNO(2211) "channel %s: socket closing for maintenance; opening a "
                                     "new socket on the same channel",
                   ch_name(ch));
            m->snap.reconnects_total++;
            gc_mon_metric_inc(m, GC_MET_STREAM_RECONNECTS, "socket_closing");
            ch->want_spare = 1;
        }
        break;
    case GC_MSG_NO_LONGER_SUBSCRIBED:
        if (ch) {
            channel_lost(m, ch, "no_longer_subscribed");
        }
        break;
    case GC_MSG_TOKEN_REVOKED:
        if (ch) {
            channel_lost(m, ch, "token_revoked");
        }
        break;
    case GC_MSG_MALFORMED: note_malformed(m, why, now); break;
    case GC_MSG_UNKNOWN:
    default:
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0, GCMON_LOGNO(2212) "ignored a notification: %s",
               why ? why : "unknown topic");
        break;
    }
}
