/* Resync (SPEC §3.1, §4.3): notifications are not durable, so after every
 * (re)connect — and after topics are added — the holder reads the agents of
 * that channel by REST, at most 100 ids per call, one call per loop turn
 * (within the shared rate budget), and records what changed with source
 * "resync". The writer's judge ignores what is already stored. */
#include <string.h>

#include <apr_strings.h>

#include "gc_monitor_int.h"

#define PER_CALL 100

static int channel_ready(const mon_channel_t *ch)
{
    return ch->resync_pending > 0 && ch->sock && ch->sock->open && !ch->need_subscribe
           && !ch->reset_why;
}

static int eligible(gc_monitor_t *m, const mon_user_t *u)
{
    return u->resync && u->chan >= 0 && channel_ready(&m->ch[u->chan]);
}

static int any_ready(gc_monitor_t *m)
{
    int i;

    for (i = 0; i < GC_MAX_CHANNELS; i++) {
        if (channel_ready(&m->ch[i])) {
            return 1;
        }
    }
    return 0;
}

/* Up to PER_CALL eligible users; the request path for them in *path. */
static int pick(gc_monitor_t *m, mon_user_t **chosen, const char **path)
{
    static const char head[] = "/api/v2/users?";
    static const char tail[] = "expand=routingStatus,presence&pageSize=100";
    apr_size_t cap = sizeof(head) + sizeof(tail) + PER_CALL * (3 + 64 + 1), len;
    char *buf = apr_palloc(m->iter, cap);
    apr_hash_index_t *hi;
    int n = 0;

    memcpy(buf, head, sizeof(head) - 1);
    len = sizeof(head) - 1;
    for (hi = apr_hash_first(m->iter, m->users); hi && n < PER_CALL; hi = apr_hash_next(hi)) {
        mon_user_t *u = apr_hash_this_val(hi);
        apr_size_t idlen;
        if (!eligible(m, u)) {
            continue;
        }
        idlen = strlen(u->id); /* gc_id_valid: at most 64, URL-safe */
        chosen[n++] = u;
        memcpy(buf + len, "id=", 3);
        memcpy(buf + len + 3, u->id, idlen);
        buf[len + 3 + idlen] = '&';
        len += 4 + idlen;
    }
    memcpy(buf + len, tail, sizeof(tail));
    *path = buf;
    return n;
}

/* Only agents we monitor: the answer is Genesys's, not our request. */
void gc_mon_resync_record(gc_monitor_t *m, const json_t *doc)
{
    const json_t *ents = doc ? json_object_get(doc, "entities") : NULL;
    size_t i;

    for (i = 0; ents && i < json_array_size(ents); i++) {
        gc_agent_event_t ev;
        memset(&ev, 0, sizeof(ev));
        if (gc_agent_event_from_json(m->iter, json_array_get(ents, i), &ev) != 0 || !ev.state) {
            continue;
        }
        if (!gc_mon_is_monitored(m, ev.user_id)) {
            gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
                   GCMON_LOGNO(2252) "resync: ignored agent %s, who is not monitored", ev.user_id);
            continue;
        }
        if (m->writer) {
            gc_writer_push(m->writer, &ev, "resync");
        }
    }
}

/* The writer dropped events (queue full): what is stored may be behind the
 * platform, so every subscribed agent is read again. */
static void after_drops(gc_monitor_t *m)
{
    long lost = gc_writer_take_resync(m->writer);
    int i;

    if (lost <= 0) {
        return;
    }
    for (i = 0; i < GC_MAX_CHANNELS; i++) {
        gc_mon_mark_resync(m, i);
    }
    gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
           GCMON_LOGNO(2253) "the database keeps up again after %ld dropped agent event(s): "
                             "resyncing %d agent(s)",
           lost, m->resync_pending);
}

int gc_mon_resync_step(gc_monitor_t *m, apr_time_t now)
{
    mon_user_t *chosen[PER_CALL];
    const char *path;
    gc_response_t *resp;
    gc_error_t *err;
    apr_interval_time_t d;
    int n, i;

    after_drops(m);
    if (m->resync_pending <= 0 || now < m->resync_next || !any_ready(m)) {
        return 0;
    }
    n = pick(m, chosen, &path);
    if (n == 0) {
        return 0;
    }
    if (gc_mon_call(m, "users_get", "GET", path, NULL, NULL, &resp, &err) != APR_SUCCESS) {
        m->resync_failures++;
        d = gc_mon_retry_delay(m, m->resync_failures, err);
        m->resync_next = now + d;
        if (gc_mon_power_of_two(m->resync_failures) && !(err && err->kind == GC_ERR_CANCELLED)) {
            gc_mon_error(m, GC_LOG_WARNING,
                         GCMON_LOGNO(2250) "resync of %d agent(s) failed: "
                                           "%s (%s); retrying in %.1f s",
                         n, err && err->message ? err->message : "error",
                         err ? gc_err_kind_name(err->kind) : "?",
                         (double)d / (double)APR_USEC_PER_SEC);
        }
        return 1;
    }
    gc_mon_resync_record(m, resp->json);
    for (i = 0; i < n; i++) {
        chosen[i]->resync = 0;
        m->ch[chosen[i]->chan].resync_pending--;
    }
    m->resync_pending -= n;
    m->resync_failures = 0;
    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
           GCMON_LOGNO(2251) "resync: read %d agent(s), %d still to read", n, m->resync_pending);
    return 1;
}
