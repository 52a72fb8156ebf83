/* The holder's view published to the status block and the stream gauges. */
#include <string.h>

#include "gc_monitor_int.h"

#define PUBLISH_MIN (50 * 1000)          /* at most every 50 ms when something changed */
#define PUBLISH_MAX apr_time_from_sec(1) /* at least every second */

static void set_gauge(gc_monitor_t *m, gc_metric_id_e id, long long v)
{
    if (m->env.metrics) {
        gc_metrics_set(m->env.metrics, id, NULL, NULL, v);
    }
}

void gc_mon_status_begin(gc_monitor_t *m, apr_time_t now)
{
    gc_stream_snapshot_t *s = &m->snap;

    memset(s, 0, sizeof(*s));
    if (m->env.status) {
        gc_stream_status_read(m->env.status, s);
    }
    s->has_holder = 1;
    gc_status_copy_line(s->holder_id, sizeof(s->holder_id), m->holder_id);
    gc_status_copy_line(s->holder_host, sizeof(s->holder_host),
                        m->env.host ? m->env.host : "localhost");
    s->holder_pid = m->pid;
    s->holder_since = now;
    s->connected = 0;
    s->nchannels = 0;
    s->topics = 0;
    s->agents_monitored = 0;
    gc_status_copy_line(s->lease_holder, sizeof(s->lease_holder), m->holder_id);
    gc_mon_status_tick(m, now, 1);
}

void gc_mon_status_tick(gc_monitor_t *m, apr_time_t now, int force)
{
    gc_stream_snapshot_t *s = &m->snap;
    int i, n = 0, open = 0, topics = 0;

    if (!force && now - m->snap_at < (m->snap_dirty ? PUBLISH_MIN : PUBLISH_MAX)) {
        return;
    }
    for (i = 0; i < GC_MAX_CHANNELS; i++) {
        const mon_channel_t *ch = &m->ch[i];
        gc_stream_channel_info_t *info;
        if (ch->nusers == 0 || !ch->cur.id) {
            continue;
        }
        info = &s->channels[n++];
        memcpy(info->label, ch->cur.label, sizeof(info->label));
        info->topics = ch->topics;
        info->expires = ch->cur.expires;
        info->connected = ch->sock && ch->sock->open;
        open += info->connected;
        topics += ch->topics;
    }
    s->nchannels = n;
    s->connected = n > 0 && open == n;
    s->topics = topics;
    s->agents_monitored = topics;
    if (m->env.status) {
        gc_stream_status_publish(m->env.status, s);
    }
    if (s->connected != m->shared_connected) {
        m->lease_check = 1; /* share it with the other hosts now */
    }
    set_gauge(m, GC_MET_STREAM_CONNECTED, s->connected);
    set_gauge(m, GC_MET_STREAM_CHANNELS, open);
    set_gauge(m, GC_MET_STREAM_TOPICS, topics);
    set_gauge(m, GC_MET_AGENTS_MONITORED, topics);
    m->snap_dirty = 0;
    m->snap_at = now;
}

void gc_mon_status_end(gc_monitor_t *m)
{
    if (m->env.status) {
        gc_stream_status_clear_holder(m->env.status, m->holder_id);
    }
    set_gauge(m, GC_MET_STREAM_CONNECTED, 0);
    set_gauge(m, GC_MET_STREAM_CHANNELS, 0);
    set_gauge(m, GC_MET_STREAM_TOPICS, 0);
    set_gauge(m, GC_MET_AGENTS_MONITORED, 0);
}

static void board_changed(void *baton, apr_int64_t board_id, apr_int64_t gen)
{
    gc_stream_status_board(baton, board_id, gen);
}

void gc_mon_board_publisher(struct gc_store *s, void *status)
{
    if (status) {
        gc_store_on_board_change(s, board_changed, status);
    }
}
