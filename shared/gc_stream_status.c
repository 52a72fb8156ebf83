#include <errno.h>
#include <signal.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <apr_strings.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gc_state.h"
#include "gc_stream_status.h"
#include "gc_time.h"

#define STATUS_MAGIC 0x67635332u /* "gcS2": blocks with a version and size */
#define READ_TRIES 20000

/* magic, lock_pid and seq keep their offsets in every version. */
struct gc_stream_status {
    apr_uint32_t magic;
    _Atomic int lock_pid; /* writer lock: owner pid, 0 = free */
    _Atomic unsigned seq; /* seqlock: odd while a write is in progress */
    apr_uint32_t version; /* GC_STREAM_STATUS_VERSION */
    apr_uint64_t size;    /* sizeof(gc_stream_status_t) */
    gc_stream_snapshot_t data;
    /* the board generation, published after every commit (under the seqlock) */
    apr_int64_t board_id, board_gen;
    int board_pid;
};

void gc_channel_label(char out[GC_CHANNEL_LABEL_SIZE], const char *key, const char *channel_id)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int i;

    if (!key) {
        key = "";
    }
    if (!channel_id) {
        channel_id = "";
    }
    memcpy(out, "ch-", 3);
    if (!HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)channel_id,
              strlen(channel_id), mac, &len)
        || len < 5) {
        memcpy(out + 3, "0000000000", 10); /* never the id, even then */
        out[13] = '\0';
        return;
    }
    for (i = 0; i < 5; i++) {
        out[3 + 2 * i] = hex[mac[i] >> 4];
        out[4 + 2 * i] = hex[mac[i] & 0xf];
    }
    out[13] = '\0';
}

apr_size_t gc_stream_status_size(void)
{
    return sizeof(gc_stream_status_t);
}

gc_stream_status_t *gc_stream_status_init(void *mem)
{
    gc_stream_status_t *st = mem;

    memset(st, 0, sizeof(*st));
    st->version = GC_STREAM_STATUS_VERSION;
    st->size = sizeof(*st);
    st->magic = STATUS_MAGIC;
    atomic_init(&st->lock_pid, 0);
    atomic_init(&st->seq, 0);
    return st;
}

gc_stream_status_t *gc_stream_status_attach(void *mem, apr_size_t size)
{
    gc_stream_status_t *st = mem;

    if (!mem || size < sizeof(*st) || ((uintptr_t)mem % _Alignof(gc_stream_status_t)) != 0) {
        return NULL;
    }
    if (st->magic != STATUS_MAGIC || st->version != GC_STREAM_STATUS_VERSION
        || st->size != sizeof(*st)) {
        return NULL;
    }
    return st;
}

static int pid_gone(int pid)
{
    return pid > 0 && kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

/* Take the writer lock; steal it from a dead owner. */
static void lock(gc_stream_status_t *st)
{
    int me = (int)getpid();
    unsigned spins = 0;

    for (;;) {
        int owner = 0;
        if (atomic_compare_exchange_weak(&st->lock_pid, &owner, me)) {
            return;
        }
        if (owner != 0 && owner != me && pid_gone(owner)
            && atomic_compare_exchange_strong(&st->lock_pid, &owner, me)) {
            return;
        }
        if (++spins % 64 == 0) {
            sched_yield();
        }
    }
}

static void unlock(gc_stream_status_t *st)
{
    atomic_store(&st->lock_pid, 0);
}

/* Enter the seqlock's write side (lock held). A writer that died inside left
 * the counter odd: make it even before starting again. */
static void write_begin(gc_stream_status_t *st)
{
    unsigned s;

    lock(st);
    s = atomic_load_explicit(&st->seq, memory_order_relaxed);
    if (s & 1u) {
        s++;
    }
    atomic_store_explicit(&st->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void write_end(gc_stream_status_t *st)
{
    unsigned s = atomic_load_explicit(&st->seq, memory_order_relaxed);
    atomic_store_explicit(&st->seq, s + 1, memory_order_release);
    unlock(st);
}

void gc_stream_status_board(gc_stream_status_t *st, apr_int64_t board_id, apr_int64_t gen)
{
    write_begin(st);
    if (st->board_id != board_id || gen > st->board_gen) {
        st->board_id = board_id;
        st->board_gen = gen;
    }
    st->board_pid = (int)getpid();
    write_end(st);
}

int gc_stream_status_board_read(gc_stream_status_t *st, apr_int64_t *board_id, apr_int64_t *gen,
                                int *pid)
{
    int i;

    for (i = 0; i < READ_TRIES; i++) {
        unsigned s1 = atomic_load_explicit(&st->seq, memory_order_acquire), s2;
        if (s1 & 1u) {
            continue;
        }
        *board_id = st->board_id;
        *gen = st->board_gen;
        *pid = st->board_pid;
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&st->seq, memory_order_relaxed);
        if (s1 == s2) {
            return *board_id != 0 && *pid != 0;
        }
    }
    return 0;
}

void gc_stream_status_set_enabled(gc_stream_status_t *st, int enabled)
{
    write_begin(st);
    st->data.enabled = enabled ? 1 : 0;
    write_end(st);
}

int gc_stream_status_read(gc_stream_status_t *st, gc_stream_snapshot_t *out)
{
    int i;

    for (i = 0; i < READ_TRIES; i++) {
        unsigned s1 = atomic_load_explicit(&st->seq, memory_order_acquire);
        unsigned s2;
        if (s1 & 1u) {
            if (i % 64 == 63) {
                sched_yield();
            }
            continue;
        }
        memcpy(out, &st->data, sizeof(*out));
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&st->seq, memory_order_relaxed);
        if (s1 == s2) {
            return 0;
        }
    }
    memcpy(out, &st->data, sizeof(*out));
    out->last_error[sizeof(out->last_error) - 1] = '\0';
    out->holder_id[sizeof(out->holder_id) - 1] = '\0';
    out->holder_host[sizeof(out->holder_host) - 1] = '\0';
    out->lease_holder[sizeof(out->lease_holder) - 1] = '\0';
    if (out->nchannels < 0 || out->nchannels > GC_MAX_CHANNELS) {
        out->nchannels = 0;
    }
    for (i = 0; i < GC_MAX_CHANNELS; i++) {
        out->channels[i].label[GC_CHANNEL_LABEL_SIZE - 1] = '\0';
    }
    return -1;
}

/* The snapshot replaces the shared one, but for `enabled` (the config's) and
 * the last error: kept, or (newer_error_wins) kept unless the snapshot's is
 * newer. */
static void replace(gc_stream_status_t *st, const gc_stream_snapshot_t *s, int newer_error_wins)
{
    char err[GC_STATUS_ERR_MAX];
    apr_time_t err_at;
    int enabled;

    write_begin(st);
    enabled = st->data.enabled;
    err_at = st->data.last_error_at;
    memcpy(err, st->data.last_error, sizeof(err));
    memcpy(&st->data, s, sizeof(*s));
    st->data.enabled = enabled;
    if (!newer_error_wins || err_at > s->last_error_at) {
        st->data.last_error_at = err_at;
        memcpy(st->data.last_error, err, sizeof(err));
    }
    write_end(st);
}

void gc_stream_status_publish(gc_stream_status_t *st, const gc_stream_snapshot_t *s)
{
    replace(st, s, 0);
}

void gc_stream_status_mirror(gc_stream_status_t *st, const gc_stream_snapshot_t *s)
{
    replace(st, s, 1);
}

void gc_stream_status_clear_holder(gc_stream_status_t *st, const char *holder_id)
{
    int i;

    write_begin(st);
    if (holder_id && strcmp(st->data.holder_id, holder_id) != 0) {
        write_end(st); /* another holder has published since */
        return;
    }
    st->data.has_holder = 0;
    st->data.holder_id[0] = '\0';
    st->data.holder_host[0] = '\0';
    st->data.holder_pid = 0;
    st->data.holder_since = 0;
    st->data.connected = 0;
    for (i = 0; i < st->data.nchannels; i++) {
        st->data.channels[i].connected = 0;
    }
    st->data.nchannels = 0;
    st->data.topics = 0;
    st->data.agents_monitored = 0;
    st->data.lease_holder[0] = '\0';
    write_end(st);
}

void gc_stream_status_note_lease(gc_stream_status_t *st, const char *holder_id)
{
    char buf[GC_STATUS_ID_MAX];

    gc_status_copy_line(buf, sizeof(buf), holder_id ? holder_id : "");
    if (strcmp(buf, st->data.lease_holder) == 0) {
        return; /* unchanged: racy peek is fine, the write is locked */
    }
    write_begin(st);
    memcpy(st->data.lease_holder, buf, sizeof(buf));
    write_end(st);
}

void gc_stream_status_error(gc_stream_status_t *st, apr_time_t at, const char *msg)
{
    write_begin(st);
    gc_status_copy_line(st->data.last_error, sizeof(st->data.last_error), msg ? msg : "");
    st->data.last_error_at = at;
    write_end(st);
}

void gc_status_copy_line(char *dst, apr_size_t n, const char *src)
{
    apr_size_t i = 0;

    if (n == 0) {
        return;
    }
    for (; src && src[i] && i + 1 < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    /* Don't leave half a UTF-8 sequence when truncated. */
    if (src && src[i]) {
        while (i > 0 && ((unsigned char)dst[i - 1] & 0xC0u) == 0x80u) {
            i--;
        }
        if (i > 0 && ((unsigned char)dst[i - 1] & 0x80u)) {
            i--;
        }
    }
    dst[i] = '\0';
}

/* "host:pid:rand" → host and pid; 0 when not that shape. */
static int split_holder_id(const char *id, char *host, apr_size_t hn, int *pid)
{
    const char *c1 = strchr(id, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    char *end;
    long v;

    if (!c1 || !c2 || c1 == id || (apr_size_t)(c1 - id) >= hn) {
        return 0;
    }
    v = strtol(c1 + 1, &end, 10);
    if (end != c2 || v <= 0 || v > 0x7fffffffL) {
        return 0;
    }
    memcpy(host, id, (apr_size_t)(c1 - id));
    host[c1 - id] = '\0';
    *pid = (int)v;
    return 1;
}

void gc_stream_snapshot_check_alive(gc_stream_snapshot_t *s, const char *local_host)
{
    char host[GC_STATUS_HOST_MAX];
    int pid, i;

    if (s->has_holder && local_host && strcmp(s->holder_host, local_host) == 0
        && pid_gone(s->holder_pid)) {
        s->has_holder = 0;
        s->connected = 0;
        for (i = 0; i < s->nchannels; i++) {
            s->channels[i].connected = 0;
        }
    }
    if (s->lease_holder[0] && local_host
        && split_holder_id(s->lease_holder, host, sizeof(host), &pid)
        && strcmp(host, local_host) == 0 && pid_gone(pid)) {
        s->lease_holder[0] = '\0';
    }
}

int gc_stream_status_vacant(gc_stream_status_t *st, const char *local_host, char *dead_id,
                            apr_size_t n)
{
    gc_stream_snapshot_t s;
    char host[GC_STATUS_HOST_MAX];
    int pid;

    dead_id[0] = '\0';
    gc_stream_status_read(st, &s);
    if (s.has_holder) {
        if (local_host && strcmp(s.holder_host, local_host) == 0 && pid_gone(s.holder_pid)) {
            gc_status_copy_line(dead_id, n, s.holder_id);
            return 1;
        }
        return 0;
    }
    if (!s.lease_holder[0]) {
        return 1;
    }
    if (local_host && split_holder_id(s.lease_holder, host, sizeof(host), &pid)
        && strcmp(host, local_host) == 0 && pid_gone(pid)) {
        gc_status_copy_line(dead_id, n, s.lease_holder);
        return 1;
    }
    return 0;
}

static json_t *time_or_null(apr_pool_t *p, apr_time_t t)
{
    return t > 0 ? json_string(gc_time_format(p, t)) : json_null();
}

static json_t *holder_json(apr_pool_t *p, const gc_stream_snapshot_t *s)
{
    char host[GC_STATUS_HOST_MAX];
    int pid;

    if (s->has_holder) {
        return json_pack("{s:s,s:i,s:o,s:s}", "host", s->holder_host, "pid", s->holder_pid, "since",
                         time_or_null(p, s->holder_since), "id", s->holder_id);
    }
    if (s->lease_holder[0] && split_holder_id(s->lease_holder, host, sizeof(host), &pid)) {
        /* Held elsewhere (another host sharing the database). */
        return json_pack("{s:s,s:i,s:n,s:s}", "host", host, "pid", pid, "since", "id",
                         s->lease_holder);
    }
    return json_null();
}

char *gc_stream_status_json(apr_pool_t *p, const gc_stream_snapshot_t *s)
{
    json_t *doc, *channels = json_array();
    char *text, *out;
    int i;

    for (i = 0; s->has_holder && i < s->nchannels && i < GC_MAX_CHANNELS; i++) {
        const gc_stream_channel_info_t *c = &s->channels[i];
        json_array_append_new(channels, json_pack("{s:s,s:i,s:o,s:b}", "id", c->label, "topics",
                                                  c->topics, "expires", time_or_null(p, c->expires),
                                                  "connected", c->connected));
    }
    doc = json_pack("{s:b,s:o,s:b,s:o,s:i,s:o,s:I,s:I,s:o,s:o}", "enabled", s->enabled, "holder",
                    holder_json(p, s), "connected", s->has_holder && s->connected, "channels",
                    channels, "agents_monitored", s->has_holder ? s->agents_monitored : 0,
                    "last_event_at", time_or_null(p, s->last_event_at), "events_total",
                    (json_int_t)s->events_total, "reconnects_total",
                    (json_int_t)s->reconnects_total, "last_error",
                    s->last_error[0] ? json_string(s->last_error) : json_null(), "last_error_at",
                    s->last_error[0] ? time_or_null(p, s->last_error_at) : json_null());
    if (!doc) {
        return NULL;
    }
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text) {
        return NULL;
    }
    out = apr_pstrdup(p, text);
    free(text);
    return out;
}

char *gc_stream_status_auto(apr_pool_t *p, const gc_stream_snapshot_t *s, apr_time_t now)
{
    int i, open = 0, live = s->has_holder;
    char *out;

    for (i = 0; live && i < s->nchannels && i < GC_MAX_CHANNELS; i++) {
        open += s->channels[i].connected ? 1 : 0;
    }
    out = apr_psprintf(p,
                       "GcmonStreamEnabled: %d\n"
                       "GcmonStreamHolder: %s\n"
                       "GcmonStreamConnected: %d\n"
                       "GcmonStreamChannels: %d\n"
                       "GcmonStreamChannelsConnected: %d\n"
                       "GcmonStreamTopics: %d\n"
                       "GcmonStreamAgentsMonitored: %d\n"
                       "GcmonStreamEventsTotal: %" APR_UINT64_T_FMT "\n"
                       "GcmonStreamReconnectsTotal: %" APR_UINT64_T_FMT "\n",
                       s->enabled,
                       live ? apr_psprintf(p, "%s:%d", s->holder_host, s->holder_pid)
                            : (s->lease_holder[0] ? s->lease_holder : "-"),
                       live && s->connected, live ? s->nchannels : 0, open, live ? s->topics : 0,
                       live ? s->agents_monitored : 0, s->events_total, s->reconnects_total);
    if (s->last_event_at > 0) {
        out = apr_psprintf(
            p, "%sGcmonStreamLastEventAge: %" APR_INT64_T_FMT "\n", out,
            (apr_int64_t)apr_time_sec(now > s->last_event_at ? now - s->last_event_at : 0));
    }
    if (s->last_error[0]) {
        out = apr_psprintf(p, "%sGcmonStreamLastError: %s\n", out, s->last_error);
    }
    return out;
}
