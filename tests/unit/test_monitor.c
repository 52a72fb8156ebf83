/* The stream monitor's pure parts: reconnect backoff, the bounded event
 * queue, the shared-memory status block (seqlock, dead-writer recovery,
 * JSON and mod_status renderings); the writer; the background holder. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <jansson.h>

#include "gc_alerts.h"
#include "gc_backoff.h"
#include "gc_evq.h"
#include "gc_monitor_int.h"
#include "gc_stream_share.h"
#include "gc_stream_status.h"
#include "gc_time.h"
#include "gc_webhook.h"
#include "loopback_http.h"
#include "unit.h"

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}
static void teardown(void)
{
    apr_pool_destroy(pool);
}

#define SEC(n) apr_time_from_sec(n)

START_TEST(backoff_first_attempt_is_immediate)
{
    ck_assert_int_eq(gc_backoff_delay(SEC(1), SEC(60), 0, 0.5), 0);
    ck_assert_int_eq(gc_backoff_delay(SEC(1), SEC(60), -3, 0.5), 0);
}
END_TEST

START_TEST(backoff_doubles_with_jitter_up_to_max)
{
    /* failures 1..6: base 1,2,4,8,16,32 s; up to +25% jitter. */
    apr_interval_time_t base = SEC(1);
    int n;
    for (n = 1; n <= 6; n++, base *= 2) {
        apr_interval_time_t lo = gc_backoff_delay(SEC(1), SEC(60), n, 0.0);
        apr_interval_time_t hi = gc_backoff_delay(SEC(1), SEC(60), n, 0.9999);
        ck_assert_int_eq(lo, base);
        ck_assert_int_ge(hi, base + base / 4 - 1000);
        ck_assert_int_le(hi, base + base / 4);
    }
    /* At the cap: within [0.8 max, max]. */
    for (n = 7; n < 40; n++) {
        apr_interval_time_t d = gc_backoff_delay(SEC(1), SEC(60), n, 0.5);
        ck_assert_int_ge(d, SEC(48));
        ck_assert_int_le(d, SEC(60));
    }
    /* Jitter never exceeds max, even just below the cap. */
    ck_assert_int_le(gc_backoff_delay(SEC(1), SEC(5), 3, 0.9999), SEC(5));
    /* Tests use "1s 2s". */
    ck_assert_int_eq(gc_backoff_delay(SEC(1), SEC(2), 1, 0.0), SEC(1));
    ck_assert_int_le(gc_backoff_delay(SEC(1), SEC(2), 5, 0.9999), SEC(2));
}
END_TEST

static gc_agent_event_t event(const char *uid, const char *state, apr_time_t at)
{
    gc_agent_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.user_id = uid;
    ev.state = state;
    ev.presence = "OnQueue";
    ev.routing_status = state;
    ev.event_at = at;
    ev.queue_ids = "[\"q1\"]";
    return ev;
}

START_TEST(queue_copies_and_keeps_order)
{
    gc_evq_t *q = gc_evq_create(pool, 10);
    gc_evrec_t *list, *r;
    char uid[16];
    int i, n;

    for (i = 0; i < 5; i++) {
        gc_agent_event_t ev;
        apr_snprintf(uid, sizeof(uid), "u%d", i);
        ev = event(uid, "IDLE", i + 1);
        ck_assert_int_eq(gc_evq_push(q, &ev, "stream", 7), 0);
    }
    memset(uid, 'x', sizeof(uid) - 1); /* the queue has its own copies */
    ck_assert_int_eq(gc_evq_count(q), 5);
    n = gc_evq_take(q, &list, 3);
    ck_assert_int_eq(n, 3);
    for (r = list, i = 0; r; r = r->next, i++) {
        char want[8];
        apr_snprintf(want, sizeof(want), "u%d", i);
        ck_assert_str_eq(r->ev.user_id, want);
        ck_assert_str_eq(r->ev.state, "IDLE");
        ck_assert_str_eq(r->ev.queue_ids, "[\"q1\"]");
        ck_assert_ptr_null(r->ev.user_name);
        ck_assert_str_eq(r->source, "stream");
        ck_assert_int_eq(r->received_at, 7);
        ck_assert_int_eq(r->ev.event_at, i + 1);
    }
    ck_assert_int_eq(i, 3);
    gc_evq_free(list);
    ck_assert_int_eq(gc_evq_take(q, &list, 100), 2);
    ck_assert_str_eq(list->ev.user_id, "u3");
    gc_evq_free(list);
    ck_assert_int_eq(gc_evq_take(q, &list, 100), 0);
    ck_assert_ptr_null(list);
}
END_TEST

START_TEST(queue_drops_oldest_when_full)
{
    gc_evq_t *q = gc_evq_create(pool, 3);
    gc_evrec_t *list;
    int i, dropped = 0;

    for (i = 0; i < 5; i++) {
        gc_agent_event_t ev = event(apr_psprintf(pool, "u%d", i), "IDLE", i);
        dropped += gc_evq_push(q, &ev, "resync", 0);
    }
    ck_assert_int_eq(dropped, 2);
    ck_assert_int_eq(gc_evq_count(q), 3);
    ck_assert_int_eq(gc_evq_take(q, &list, 10), 3);
    ck_assert_str_eq(list->ev.user_id, "u2");
    ck_assert_str_eq(list->next->next->ev.user_id, "u4");
    gc_evq_free(list);
}
END_TEST

START_TEST(queue_freed_with_its_pool)
{
    apr_pool_t *sub;
    gc_evq_t *q;
    int i;

    apr_pool_create(&sub, pool);
    q = gc_evq_create(sub, 100);
    for (i = 0; i < 50; i++) {
        gc_agent_event_t ev = event("u", "Break", i);
        gc_evq_push(q, &ev, "stream", 0);
    }
    apr_pool_destroy(sub); /* ASan/LSan: nothing leaks */
}
END_TEST

static gc_stream_status_t *new_status(void)
{
    void *mem = apr_pcalloc(pool, gc_stream_status_size());
    return gc_stream_status_init(mem);
}

static gc_stream_snapshot_t sample(void)
{
    gc_stream_snapshot_t s;
    memset(&s, 0, sizeof(s));
    s.has_holder = 1;
    strcpy(s.holder_id, "web1:4242:abcd");
    strcpy(s.holder_host, "web1");
    s.holder_pid = 4242;
    s.holder_since = apr_time_from_sec(1767225600); /* 2026-01-01 */
    s.connected = 1;
    s.nchannels = 2;
    strcpy(s.channels[0].label, "ch-0123456789");
    s.channels[0].topics = 1000;
    s.channels[0].expires = apr_time_from_sec(1767312000);
    s.channels[0].connected = 1;
    strcpy(s.channels[1].label, "ch-abcdefabcd");
    s.channels[1].topics = 500;
    s.channels[1].connected = 1;
    s.topics = 1500;
    s.agents_monitored = 1500;
    s.last_event_at = apr_time_from_sec(1767225660) + 123000;
    s.events_total = 12345678901ULL;
    s.reconnects_total = 3;
    return s;
}

START_TEST(status_publish_read_json)
{
    gc_stream_status_t *st = new_status();
    gc_stream_snapshot_t in = sample(), out;
    json_t *doc, *ch;
    json_error_t jerr;
    char *text;

    gc_stream_status_set_enabled(st, 1);
    gc_stream_status_publish(st, &in);
    gc_stream_status_error(st, apr_time_from_sec(1767225700), "channel x:\tcannot\nconnect");
    ck_assert_int_eq(gc_stream_status_read(st, &out), 0);
    ck_assert_int_eq(out.enabled, 1);
    ck_assert_str_eq(out.last_error, "channel x: cannot connect");
    text = gc_stream_status_json(pool, &out);
    ck_assert_ptr_nonnull(text);
    doc = json_loads(text, 0, &jerr);
    ck_assert_ptr_nonnull(doc);
    ck_assert(json_is_true(json_object_get(doc, "enabled")));
    ck_assert(json_is_true(json_object_get(doc, "connected")));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "holder"), "host")),
                     "web1");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(doc, "holder"), "pid")),
                     4242);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "holder"), "since")),
                     "2026-01-01T00:00:00.000Z");
    ck_assert_int_eq(json_array_size(json_object_get(doc, "channels")), 2);
    ch = json_array_get(json_object_get(doc, "channels"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(ch, "id")), "ch-0123456789");
    ck_assert_int_eq(json_integer_value(json_object_get(ch, "topics")), 1000);
    ck_assert_str_eq(json_string_value(json_object_get(ch, "expires")), "2026-01-02T00:00:00.000Z");
    ck_assert(json_is_null(
        json_object_get(json_array_get(json_object_get(doc, "channels"), 1), "expires")));
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "agents_monitored")), 1500);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "last_event_at")),
                     "2026-01-01T00:01:00.123Z");
    ck_assert(json_integer_value(json_object_get(doc, "events_total")) == 12345678901LL);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "reconnects_total")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "last_error")),
                     "channel x: cannot connect");
    json_decref(doc);
}
END_TEST

START_TEST(status_publish_keeps_enabled_and_error)
{
    gc_stream_status_t *st = new_status();
    gc_stream_snapshot_t in = sample(), out;

    gc_stream_status_set_enabled(st, 1);
    gc_stream_status_error(st, 5, "db down");
    in.enabled = 0;
    strcpy(in.last_error, "stale local copy");
    gc_stream_status_publish(st, &in);
    gc_stream_status_read(st, &out);
    ck_assert_int_eq(out.enabled, 1);
    ck_assert_str_eq(out.last_error, "db down");
    ck_assert_int_eq(out.last_error_at, 5);
}
END_TEST

START_TEST(status_clear_only_own_holder)
{
    gc_stream_status_t *st = new_status();
    gc_stream_snapshot_t in = sample(), out;

    gc_stream_status_publish(st, &in);
    gc_stream_status_clear_holder(st, "other:1:ffff");
    gc_stream_status_read(st, &out);
    ck_assert_int_eq(out.has_holder, 1);
    gc_stream_status_clear_holder(st, "web1:4242:abcd");
    gc_stream_status_read(st, &out);
    ck_assert_int_eq(out.has_holder, 0);
    ck_assert_int_eq(out.connected, 0);
    ck_assert_int_eq(out.nchannels, 0);
    ck_assert(out.events_total == 12345678901ULL); /* counters survive */
}
END_TEST

START_TEST(status_json_without_holder)
{
    gc_stream_snapshot_t s;
    json_t *doc;

    memset(&s, 0, sizeof(s));
    doc = json_loads(gc_stream_status_json(pool, &s), 0, NULL);
    ck_assert_ptr_nonnull(doc);
    ck_assert(json_is_false(json_object_get(doc, "enabled")));
    ck_assert(json_is_null(json_object_get(doc, "holder")));
    ck_assert(json_is_false(json_object_get(doc, "connected")));
    ck_assert_int_eq(json_array_size(json_object_get(doc, "channels")), 0);
    ck_assert(json_is_null(json_object_get(doc, "last_event_at")));
    ck_assert(json_is_null(json_object_get(doc, "last_error")));
    json_decref(doc);

    /* Held on another host: holder from the lease, not connected here. */
    strcpy(s.lease_holder, "web2:77:0a0b");
    doc = json_loads(gc_stream_status_json(pool, &s), 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "holder"), "host")),
                     "web2");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(doc, "holder"), "pid")),
                     77);
    json_decref(doc);
}
END_TEST

START_TEST(status_auto_lines)
{
    gc_stream_snapshot_t s = sample();
    char *text;

    s.enabled = 1;
    s.channels[1].connected = 0;
    s.connected = 0;
    strcpy(s.last_error, "boom");
    text = gc_stream_status_auto(pool, &s, s.last_event_at + SEC(12));
    ck_assert_ptr_nonnull(strstr(text, "GcmonStreamEnabled: 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "GcmonStreamHolder: web1:4242\n"));
    ck_assert_ptr_nonnull(strstr(text, "GcmonStreamConnected: 0\n"));
    ck_assert_ptr_nonnull(strstr(text, "GcmonStreamChannels: 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "GcmonStreamChannelsConnected: 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "GcmonStreamTopics: 1500\n"));
    ck_assert_ptr_nonnull(strstr(text, "GcmonStreamAgentsMonitored: 1500\n"));
    ck_assert_ptr_nonnull(strstr(text, "GcmonStreamEventsTotal: 12345678901\n"));
    ck_assert_ptr_nonnull(strstr(text, "GcmonStreamReconnectsTotal: 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "GcmonStreamLastEventAge: 12\n"));
    ck_assert_ptr_nonnull(strstr(text, "GcmonStreamLastError: boom\n"));
}
END_TEST

START_TEST(status_dead_holder_shown_gone)
{
    gc_stream_snapshot_t s = sample();
    pid_t pid = fork();

    if (pid == 0) {
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    s.holder_pid = (int)pid;
    apr_snprintf(s.lease_holder, sizeof(s.lease_holder), "web1:%d:abcd", (int)pid);
    gc_stream_snapshot_check_alive(&s, "web2"); /* other host: unknown */
    ck_assert_int_eq(s.has_holder, 1);
    gc_stream_snapshot_check_alive(&s, "web1");
    ck_assert_int_eq(s.has_holder, 0);
    ck_assert_int_eq(s.connected, 0);
    ck_assert_int_eq(s.channels[0].connected, 0);
    ck_assert_str_eq(s.lease_holder, "");

    s = sample();
    s.holder_pid = (int)getpid();
    gc_stream_snapshot_check_alive(&s, "web1");
    ck_assert_int_eq(s.has_holder, 1);
}
END_TEST

/* A writer SIGKILLed inside its critical section leaves the lock taken and the
 * sequence odd: readers give up after a bounded wait, the next writer steals
 * the lock and repairs the sequence. */
START_TEST(status_survives_killed_writer)
{
    void *mem = apr_pcalloc(pool, gc_stream_status_size());
    gc_stream_status_t *st = gc_stream_status_init(mem);
    gc_stream_snapshot_t in = sample(), out;
    unsigned *seq;
    int *lock;
    pid_t pid = fork();

    if (pid == 0) {
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    /* Forge the dead writer's state (layout: magic, lock, seq). */
    lock = (int *)((char *)mem + sizeof(apr_uint32_t));
    seq = (unsigned *)((char *)mem + sizeof(apr_uint32_t) + sizeof(int));
    *lock = (int)pid;
    *seq = 7;
    ck_assert_int_eq(gc_stream_status_read(st, &out), -1);
    gc_stream_status_publish(st, &in);
    ck_assert_int_eq(*lock, 0);
    ck_assert_int_eq(*seq % 2, 0);
    ck_assert_int_eq(gc_stream_status_read(st, &out), 0);
    ck_assert_int_eq(out.holder_pid, 4242);
}
END_TEST

/* A block kept across a graceful restart is reused only by a build of its
 * layout (magic, version at offset 12, size at offset 16). */
START_TEST(status_attach_checks_version_and_size)
{
    apr_size_t size = gc_stream_status_size();
    unsigned char *mem = apr_pcalloc(pool, size + 64);
    gc_stream_status_t *st = gc_stream_status_init(mem);
    gc_stream_snapshot_t in = sample(), out;

    gc_stream_status_publish(st, &in);
    ck_assert_ptr_eq(gc_stream_status_attach(mem, size), st);
    ck_assert_ptr_eq(gc_stream_status_attach(mem, size + 64), st);
    ck_assert_int_eq(gc_stream_status_read(gc_stream_status_attach(mem, size), &out), 0);
    ck_assert_str_eq(out.holder_id, "web1:4242:abcd");
    ck_assert_ptr_null(gc_stream_status_attach(mem, size - 1));
    ck_assert_ptr_null(gc_stream_status_attach(NULL, size));
    mem[12] ^= 1;
    ck_assert_ptr_null(gc_stream_status_attach(mem, size));
    mem[12] ^= 1;
    mem[16] ^= 8;
    ck_assert_ptr_null(gc_stream_status_attach(mem, size));
    mem[16] ^= 8;
    ck_assert_ptr_eq(gc_stream_status_attach(mem, size), st);
    memcpy(mem, "sscg", 4); /* the earlier format */
    ck_assert_ptr_null(gc_stream_status_attach(mem, size));
    memset(mem, 0, size);
    ck_assert_ptr_null(gc_stream_status_attach(mem, size));
}
END_TEST

START_TEST(copy_line_sanitises_and_truncates)
{
    char buf[8];

    gc_status_copy_line(buf, sizeof(buf),
                        "a\r\nb\x7f"
                        "c");
    ck_assert_str_eq(buf, "a  b c");
    gc_status_copy_line(buf, sizeof(buf), "abcdefghij");
    ck_assert_str_eq(buf, "abcdefg");
    /* "abcde" + "é" (2 bytes) + "x": the 7-byte limit would split nothing;
     * "abcdef" + "é" would split it. */
    gc_status_copy_line(buf, sizeof(buf), "abcdef\xc3\xa9xyz");
    ck_assert_str_eq(buf, "abcdef");
    gc_status_copy_line(buf, sizeof(buf), NULL);
    ck_assert_str_eq(buf, "");
}
END_TEST

/* ------------------------------------------------------------ channel labels */

#define CHANNEL_ID "streaming-0-abcdefghijklmnopqrstuvwxyz"

START_TEST(channel_margin_scales_with_short_lives)
{
    /* the platform's 24 h channel, and anything longer than 4 h: one hour */
    ck_assert_int_eq(gc_mon_channel_margin(apr_time_from_sec(86400)), GC_CHANNEL_RENEW_MARGIN);
    ck_assert_int_eq(gc_mon_channel_margin(apr_time_from_sec(4 * 3600)), GC_CHANNEL_RENEW_MARGIN);
    /* unknown life (a reused channel): one hour */
    ck_assert_int_eq(gc_mon_channel_margin(0), GC_CHANNEL_RENEW_MARGIN);
    ck_assert_int_eq(gc_mon_channel_margin(-apr_time_from_sec(5)), GC_CHANNEL_RENEW_MARGIN);
    /* shorter lives: a quarter, at least a second */
    ck_assert_int_eq(gc_mon_channel_margin(apr_time_from_sec(3600)), apr_time_from_sec(900));
    ck_assert_int_eq(gc_mon_channel_margin(apr_time_from_sec(24)), apr_time_from_sec(6));
    ck_assert_int_eq(gc_mon_channel_margin(apr_time_from_sec(2)), apr_time_from_sec(1));
}
END_TEST

START_TEST(channel_label_is_a_keyed_digest)
{
    char a[GC_CHANNEL_LABEL_SIZE], b[GC_CHANNEL_LABEL_SIZE];

    /* HMAC-SHA256 test vectors computed independently (Python hmac). */
    gc_channel_label(a, "s3cret-value-7f1c", CHANNEL_ID);
    ck_assert_str_eq(a, "ch-d8390dac93");
    gc_channel_label(b, NULL, CHANNEL_ID);
    ck_assert_str_eq(b, "ch-b6467ead90");
    gc_channel_label(b, "other", CHANNEL_ID);
    ck_assert_str_eq(b, "ch-3866b3afa2");
    gc_channel_label(b, "s3cret-value-7f1c", CHANNEL_ID); /* stable */
    ck_assert_str_eq(a, b);
    gc_channel_label(b, "s3cret-value-7f1c", "streaming-0-abcdefghijklmnopqrstuvwxyZ");
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(strlen(b), GC_CHANNEL_LABEL_SIZE - 1);
}
END_TEST

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char *log_text;

static int log_all(void *baton, int level)
{
    return 1;
}

static void log_capture(void *baton, const char *file, int line, int level, apr_status_t rv,
                        const char *msg)
{
    size_t old, add = strlen(msg);

    pthread_mutex_lock(&log_mu);
    old = log_text ? strlen(log_text) : 0;
    log_text = realloc(log_text, old + add + 2);
    memcpy(log_text + old, msg, add);
    log_text[old + add] = '\n';
    log_text[old + add + 1] = '\0';
    pthread_mutex_unlock(&log_mu);
}

/* Messages of the monitor (logged, and the status block's last error) quote
 * Genesys, which may name a channel: they show its label instead. An id that
 * is part of its own label ("c" in "ch-…") must not loop. */
START_TEST(monitor_messages_hide_channel_ids)
{
    gc_monitor_conf_t conf;
    gc_conn_conf_t conn;
    gc_monitor_env_t env;
    gc_stream_status_t *st = new_status();
    gc_stream_snapshot_t snap;
    char label[GC_CHANNEL_LABEL_SIZE], tiny[GC_CHANNEL_LABEL_SIZE];
    gc_monitor_t *m;

    memset(&conf, 0, sizeof(conf));
    memset(&conn, 0, sizeof(conn));
    memset(&env, 0, sizeof(env));
    conf.enabled = 1;
    conn.client_secret = "s3cret-value-7f1c";
    env.conf = &conf;
    env.conn = &conn;
    env.status = st;
    m = gc_monitor_create(pool, &env);
    m->ch[0].cur.id = CHANNEL_ID;
    gc_mon_channel_label(m, CHANNEL_ID, m->ch[0].cur.label);
    ck_assert_str_eq(m->ch[0].cur.label, "ch-d8390dac93");
    m->ch[3].next.id = "c";
    gc_mon_channel_label(m, "c", m->ch[3].next.label);
    memcpy(label, m->ch[0].cur.label, sizeof(label));
    memcpy(tiny, m->ch[3].next.label, sizeof(tiny));

    m->ch[3].next.id = NULL;
    log_text = NULL;
    gc_log_set(log_all, log_capture, NULL);
    gc_mon_error(m, GC_LOG_WARNING,
                 "GCM9999: cannot subscribe: channel %s not found "
                 "(%s)",
                 CHANNEL_ID, CHANNEL_ID);
    ck_assert_ptr_nonnull(log_text);
    ck_assert_ptr_null(strstr(log_text, CHANNEL_ID));
    ck_assert_ptr_nonnull(
        strstr(log_text, apr_psprintf(pool, "channel %s not found (%s)", label, label)));
    ck_assert_int_eq(gc_stream_status_read(st, &snap), 0);
    ck_assert_ptr_null(strstr(snap.last_error, CHANNEL_ID));
    ck_assert_ptr_nonnull(strstr(snap.last_error, label));
    /* Every "c" becomes the label, which contains "c": done once, no loop. */
    m->ch[3].next.id = "c";
    gc_mon_error(m, GC_LOG_WARNING, "c-c");
    gc_log_set(NULL, NULL, NULL);
    ck_assert_ptr_nonnull(strstr(log_text, apr_psprintf(pool, "%s-%s\n", tiny, tiny)));
    free(log_text);
    log_text = NULL;
}
END_TEST

/* ------------------------------------------------------------ writer */

typedef struct {
    const char *path;
    int fail_opens; /* refuse this many opens, -1 = always */
    int opens;
} fake_db_t;

static apr_status_t fake_open(void *baton, apr_pool_t *p, gc_store_t **store, void **handle,
                              const char **err)
{
    fake_db_t *f = baton;
    f->opens++;
    if (f->fail_opens < 0 || f->opens <= f->fail_opens) {
        *err = "injected failure";
        return APR_EGENERAL;
    }
    *handle = NULL;
    return gc_store_open(p, "sqlite3", f->path, store, err);
}

static void fake_close(void *baton, void *handle)
{
}

static char *temp_db(void)
{
    char *path = apr_pstrdup(pool, "/tmp/gcmon-writer-XXXXXX");
    int fd = mkstemp(path);
    gc_store_t *s;
    const char *err = NULL;

    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(gc_store_open(pool, "sqlite3", path, &s, &err), APR_SUCCESS);
    ck_assert_int_eq(gc_store_migrate(s, &err), APR_SUCCESS);
    return path;
}

static void drop_db(const char *path)
{
    unlink(path);
    unlink(apr_pstrcat(pool, path, "-wal", NULL));
    unlink(apr_pstrcat(pool, path, "-shm", NULL));
}

static gc_metrics_t *metrics_new(void)
{
    return gc_metrics_init(apr_pcalloc(pool, gc_metrics_size()));
}

static gc_monitor_env_t writer_env(gc_monitor_conf_t *conf, fake_db_t *f, gc_metrics_t *met)
{
    gc_monitor_env_t env;

    memset(conf, 0, sizeof(*conf));
    conf->queues = apr_array_make(pool, 1, sizeof(const char *));
    conf->users = apr_array_make(pool, 1, sizeof(const char *));
    gc_monitor_conf_defaults(conf);
    memset(&env, 0, sizeof(env));
    env.conf = conf;
    env.metrics = met;
    env.baton = f;
    env.db_open = fake_open;
    env.db_close = fake_close;
    env.queue_max = 100000;
    env.batch_max = 100;
    return env;
}

static const char *const STATES5[] = { "IDLE", "INTERACTING", "Break", "Available", "Meal" };

static void push_events(gc_writer_t *w, int users, int per_user, apr_time_t base)
{
    int u, k;
    for (k = 0; k < per_user; k++) {
        for (u = 0; u < users; u++) {
            gc_agent_event_t ev;
            const char *st = STATES5[k % 5];
            int on_queue = k % 5 < 2;
            memset(&ev, 0, sizeof(ev));
            ev.user_id = apr_psprintf(pool, "user-%d", u);
            ev.state = st;
            ev.presence = on_queue ? "OnQueue" : st;
            ev.routing_status = on_queue ? st : "OFF_QUEUE";
            ev.event_at = base + apr_time_from_msec(1000 * k + u);
            ev.presence_at = ev.routing_at = ev.event_at;
            gc_writer_push(w, &ev, "stream");
        }
    }
}

START_TEST(writer_stores_everything_once)
{
    char *path = temp_db();
    fake_db_t f = { path, 0, 0 };
    gc_monitor_conf_t conf;
    gc_metrics_t *met = metrics_new();
    gc_monitor_env_t env = writer_env(&conf, &f, met);
    gc_writer_t *w;
    gc_store_t *s;
    const char *err = NULL;
    long n = 0;
    apr_time_t base = apr_time_now() - apr_time_from_sec(10);

    ck_assert_int_eq(gc_writer_start(&w, pool, &env, NULL, NULL, NULL), APR_SUCCESS);
    push_events(w, 50, 5, base);
    /* The same events again (an overlapping holder): nothing more is stored. */
    push_events(w, 50, 5, base);
    gc_writer_stop(w, apr_time_from_sec(10));
    ck_assert_int_eq(gc_store_open(pool, "sqlite3", path, &s, &err), APR_SUCCESS);
    ck_assert_int_eq(gc_store_history_count(s, NULL, &n), APR_SUCCESS);
    ck_assert_int_eq(n, 250);
    ck_assert_int_eq(gc_metrics_get(met, GC_MET_EVENTS_STORED, "stream", NULL), 250);
    ck_assert_int_eq(gc_metrics_get(met, GC_MET_EVENT_LAG, NULL, NULL), 500);
    ck_assert_int_eq(gc_metrics_get(met, GC_MET_EVENTS_DROPPED, "shutdown", NULL), 0);
    drop_db(path);
}
END_TEST

START_TEST(writer_retries_until_the_database_is_back)
{
    char *path = temp_db();
    fake_db_t f = { path, 3, 0 };
    gc_monitor_conf_t conf;
    gc_metrics_t *met = metrics_new();
    gc_monitor_env_t env = writer_env(&conf, &f, met);
    gc_writer_t *w;
    gc_store_t *s;
    const char *err = NULL;
    long n = 0;

    ck_assert_int_eq(gc_writer_start(&w, pool, &env, NULL, NULL, NULL), APR_SUCCESS);
    push_events(w, 10, 3, apr_time_now() - apr_time_from_sec(10));
    gc_writer_stop(w, apr_time_from_sec(10));
    ck_assert_int_ge(f.opens, 4);
    ck_assert_int_eq(gc_store_open(pool, "sqlite3", path, &s, &err), APR_SUCCESS);
    ck_assert_int_eq(gc_store_history_count(s, NULL, &n), APR_SUCCESS);
    ck_assert_int_eq(n, 30);
    ck_assert_int_eq(gc_metrics_get(met, GC_MET_EVENTS_DROPPED, "shutdown", NULL), 0);
    drop_db(path);
}
END_TEST

START_TEST(writer_counts_what_it_cannot_flush)
{
    fake_db_t f = { "/nonexistent/dir/x.db", -1, 0 };
    gc_monitor_conf_t conf;
    gc_metrics_t *met = metrics_new();
    gc_monitor_env_t env = writer_env(&conf, &f, met);
    gc_writer_t *w;
    apr_time_t t0;

    env.queue_max = 40;
    ck_assert_int_eq(gc_writer_start(&w, pool, &env, NULL, NULL, NULL), APR_SUCCESS);
    push_events(w, 10, 1, apr_time_now()); /* the writer holds these */
    t0 = apr_time_now();
    while (f.opens < 1 && apr_time_now() - t0 < apr_time_from_sec(5)) {
        apr_sleep(1000);
    }
    push_events(w, 10, 6, apr_time_now()); /* 60 more, queue of 40 */
    t0 = apr_time_now();
    gc_writer_stop(w, apr_time_from_msec(300));
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_sec(3));
    ck_assert_int_ge(gc_metrics_get(met, GC_MET_EVENTS_DROPPED, "queue_full", NULL), 20);
    ck_assert_int_eq(gc_metrics_get(met, GC_MET_EVENTS_DROPPED, "queue_full", NULL)
                         + gc_metrics_get(met, GC_MET_EVENTS_DROPPED, "shutdown", NULL),
                     70);
}
END_TEST

/* Drops leave the stored state behind: once a commit succeeds with room in the
 * queue again, the writer asks the monitor for a resync, once, for all of them. */
START_TEST(writer_asks_for_a_resync_after_drops)
{
    char *path = temp_db();
    fake_db_t f = { path, 2, 0 };
    gc_monitor_conf_t conf;
    gc_metrics_t *met = metrics_new();
    gc_monitor_env_t env = writer_env(&conf, &f, met);
    gc_writer_t *w;
    apr_time_t t0;
    long asked = 0;

    env.queue_max = 40;
    ck_assert_int_eq(gc_writer_start(&w, pool, &env, NULL, NULL, NULL), APR_SUCCESS);
    ck_assert_int_eq(gc_writer_take_resync(w), 0);
    push_events(w, 10, 1, apr_time_now() - SEC(60)); /* the writer holds these, failing */
    t0 = apr_time_now();
    while (f.opens < 1 && apr_time_now() - t0 < SEC(5)) {
        apr_sleep(1000);
    }
    push_events(w, 10, 6, apr_time_now() - SEC(50)); /* 60 more, queue of 40 */
    t0 = apr_time_now();
    while (asked == 0 && apr_time_now() - t0 < SEC(5)) {
        asked = gc_writer_take_resync(w);
        apr_sleep(1000);
    }
    ck_assert_int_ge(asked, 20);
    ck_assert_int_eq(asked, gc_metrics_get(met, GC_MET_EVENTS_DROPPED, "queue_full", NULL));
    ck_assert_int_eq(gc_writer_take_resync(w), 0);
    ck_assert_int_eq(gc_writer_take_resync(NULL), 0);
    gc_writer_stop(w, SEC(5));
    ck_assert_int_eq(gc_metrics_get(met, GC_MET_EVENTS_DROPPED, "shutdown", NULL), 0);
    drop_db(path);
}
END_TEST

/* ------------------------------------------------------------ idle alerts (writer) */

/* First column of the first row of sql on the database at path, as text ("" when none). */
static const char *db_text(const char *path, const char *sql)
{
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *out = "";

    ck_assert_int_eq(apr_dbd_get_driver(pool, "sqlite3", &drv), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_open(drv, pool, path, &h), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_select(drv, pool, h, &res, sql, 0), 0);
    if (apr_dbd_get_row(drv, pool, res, &row, -1) == 0) {
        const char *v = apr_dbd_get_entry(drv, row, 0);
        out = apr_pstrdup(pool, v ? v : "NULL");
        while (apr_dbd_get_row(drv, pool, res, &row, -1) == 0) {
        }
    }
    apr_dbd_close(drv, h);
    return out;
}

static long db_long(const char *path, const char *sql)
{
    return atol(db_text(path, sql));
}

/* Poll (10 ms) until sql gives want, at most 5 s. */
static int db_wait(const char *path, const char *sql, long want)
{
    apr_time_t until = apr_time_now() + SEC(5);
    while (apr_time_now() < until) {
        if (db_long(path, sql) == want) {
            return 1;
        }
        apr_sleep(10 * 1000);
    }
    return 0;
}

static void push_state(gc_writer_t *w, const char *user, const char *state, apr_time_t at)
{
    gc_agent_event_t ev;

    memset(&ev, 0, sizeof(ev));
    ev.user_id = user;
    ev.state = state;
    ev.presence = state;
    ev.event_at = ev.presence_at = at;
    gc_writer_push(w, &ev, "stream");
}

static gc_monitor_env_t alerts_env(gc_monitor_conf_t *conf, fake_db_t *f, gc_metrics_t *met)
{
    gc_monitor_env_t env = writer_env(conf, f, met);
    gc_alert_rule_t *rule;

    conf->idle_alerts = apr_array_make(pool, 1, sizeof(gc_alert_rule_t));
    rule = apr_array_push(conf->idle_alerts);
    rule->state = "Available";
    rule->threshold = SEC(1);
    rule->repeat = 0;
    conf->webhooks.slack_url = "http://127.0.0.1:9/services/T/B/token";
    return env;
}

#define OPEN_ALERTS(u)                                           \
    "SELECT COUNT(*) FROM gcmon_alerts WHERE user_id = '" u "' " \
    "AND cleared_at IS NULL"
#define ALL_ALERTS(u) "SELECT COUNT(*) FROM gcmon_alerts WHERE user_id = '" u "'"

/* The writer raises an alert about a second after the crossing, with its
 * Slack delivery in the outbox, never for an agent who left before the
 * threshold, and clears it when the agent leaves. */
START_TEST(writer_raises_and_clears_idle_alerts)
{
    char *path = temp_db();
    fake_db_t f = { path, 0, 0 };
    gc_monitor_conf_t conf;
    gc_metrics_t *met = metrics_new();
    gc_monitor_env_t env = alerts_env(&conf, &f, met);
    apr_time_t t0 = apr_time_now();
    gc_writer_t *w;
    long raised_ms, due_ms = apr_time_as_msec(t0) + 1000;

    ck_assert_int_eq(gc_writer_start(&w, pool, &env, NULL, NULL, NULL), APR_SUCCESS);
    push_state(w, "stays", "Available", t0);
    push_state(w, "leaves", "Available", t0);
    push_state(w, "leaves", "Break", t0 + apr_time_from_msec(500));
    ck_assert(db_wait(path, ALL_ALERTS("stays"), 1));
    raised_ms = db_long(path, "SELECT raised_at FROM gcmon_alerts WHERE user_id = 'stays'");
    ck_assert_int_ge(raised_ms, due_ms);
    ck_assert_int_lt(raised_ms, due_ms + 1000);
    /* "stays" crossed at the same time "leaves" would have: nothing for "leaves". */
    ck_assert_int_eq(db_long(path, ALL_ALERTS("leaves")), 0);
    ck_assert_str_eq(db_text(path, "SELECT target || '|' || status || '|' || "
                                   "(alert_id = (SELECT id FROM gcmon_alerts)) "
                                   "FROM gcmon_outbox"),
                     "slack|pending|1");
    ck_assert_str_eq(db_text(path, "SELECT delivery_status FROM gcmon_alerts"), "pending");
    ck_assert_int_eq(gc_metrics_get(met, GC_MET_IDLE_ALERTS, "raised", NULL), 1);

    push_state(w, "stays", "Meal", apr_time_now());
    ck_assert(db_wait(path, OPEN_ALERTS("stays"), 0));
    ck_assert_int_eq(db_long(path, ALL_ALERTS("stays")), 1);
    ck_assert_int_eq(gc_metrics_get(met, GC_MET_IDLE_ALERTS, "cleared", NULL), 1);
    gc_writer_stop(w, SEC(2));
    drop_db(path);
}
END_TEST

/* A new writer (restart, failover) seeds from the database: an alert that was
 * raised is not raised again; one that came due while nobody led is. */
START_TEST(writer_seeds_alerts_without_duplicates)
{
    char *path = temp_db();
    fake_db_t f = { path, 0, 0 };
    gc_monitor_conf_t conf;
    gc_metrics_t *met = metrics_new(), *met2 = metrics_new();
    gc_monitor_env_t env = alerts_env(&conf, &f, met);
    apr_time_t t0 = apr_time_now();
    gc_writer_t *w;

    ck_assert_int_eq(gc_writer_start(&w, pool, &env, NULL, NULL, NULL), APR_SUCCESS);
    push_state(w, "early", "Available", t0 - SEC(5));
    push_state(w, "late", "Available", t0 + SEC(1));
    ck_assert(db_wait(path, ALL_ALERTS("early"), 1));
    gc_writer_stop(w, SEC(2));
    ck_assert_int_eq(db_long(path, ALL_ALERTS("late")), 0);

    env.metrics = met2;
    ck_assert_int_eq(gc_writer_start(&w, pool, &env, NULL, NULL, NULL), APR_SUCCESS);
    ck_assert(db_wait(path, ALL_ALERTS("late"), 1));
    ck_assert_int_eq(db_long(path, ALL_ALERTS("early")), 1);
    ck_assert_int_eq(gc_metrics_get(met2, GC_MET_IDLE_ALERTS, "suppressed", NULL), 1);
    ck_assert_int_eq(gc_metrics_get(met2, GC_MET_IDLE_ALERTS, "raised", NULL), 1);
    gc_writer_stop(w, SEC(2));
    ck_assert_int_eq(db_long(path, "SELECT COUNT(*) FROM gcmon_outbox"), 2);
    drop_db(path);
}
END_TEST

/* ------------------------------------------------------------ who is monitored */

/* A holder's term without sockets: users, pools and a writer on the database
 * at path. */
static gc_monitor_t *term_monitor(gc_monitor_conf_t *conf, fake_db_t *f, gc_metrics_t *met)
{
    gc_monitor_env_t env = writer_env(conf, f, met);
    gc_monitor_t *m;

    conf->enabled = 1;
    m = gc_monitor_create(pool, &env);
    apr_pool_create(&m->term, pool);
    apr_pool_create(&m->msg, m->term);
    apr_pool_create(&m->iter, m->term);
    gc_mon_users_init(m);
    ck_assert_int_eq(gc_writer_start(&m->writer, m->term, &m->env, NULL, NULL, NULL), APR_SUCCESS);
    return m;
}

static const char *activity(const char *topic_user, const char *body_user, const char *status)
{
    const char *at = gc_time_format(pool, apr_time_now() - SEC(5));

    return apr_psprintf(pool,
                        "{\"topicName\":\"v2.users.%s.activity\",\"version\":\"2\","
                        "\"eventBody\":{\"id\":\"%s\",\"routingStatus\":{\"status\":"
                        "\"%s\",\"startTime\":\"%s\"},\"presence\":{\"presenceDefinition\":"
                        "{\"id\":\"p1\",\"systemPresence\":\"ON_QUEUE\"},\"modifiedDate\":"
                        "\"%s\"}}}",
                        topic_user, body_user, status, at, at);
}

static json_t *users_answer(const char *const *ids, int n)
{
    const char *at = gc_time_format(pool, apr_time_now() - SEC(5));
    json_t *ents = json_array();
    int i;

    for (i = 0; i < n; i++) {
        json_array_append_new(ents, json_pack("{s:s,s:{s:s,s:s},s:{s:{s:s,s:s},s:s}}", "id", ids[i],
                                              "routingStatus", "status", "IDLE", "startTime", at,
                                              "presence", "presenceDefinition", "id", "p1",
                                              "systemPresence", "On Queue", "modifiedDate", at));
    }
    return json_pack("{s:o}", "entities", ents);
}

static long history_of(const char *path, const char *user)
{
    return db_long(path, apr_psprintf(pool,
                                      "SELECT COUNT(*) FROM gcmon_history WHERE "
                                      "user_id = '%s'",
                                      user));
}

/* An event or a resync entity of someone outside the monitored set (a topic
 * another subscriber of the channel added, or a stray entity) is counted as
 * kind="unmonitored" and never reaches the writer: no history, no board. */
START_TEST(events_of_unmonitored_agents_are_ignored)
{
    char *path = temp_db();
    fake_db_t f = { path, 0, 0 };
    gc_monitor_conf_t conf;
    gc_metrics_t *met = metrics_new();
    gc_monitor_t *m = term_monitor(&conf, &f, met);
    static const char *const answer[] = { "queue-member", "stranger-2" };
    mon_sock_t sock;
    const char *msg;
    json_t *doc;

    memset(&sock, 0, sizeof(sock));
    sock.ch = &m->ch[0];
    gc_mon_users_add_assigned(m, "listed-user", 0);
    gc_mon_users_add_assigned(m, "queue-member", 0);
    ck_assert(gc_mon_is_monitored(m, "listed-user"));
    ck_assert(!gc_mon_is_monitored(m, "stranger"));
    ck_assert(!gc_mon_is_monitored(m, NULL));

    msg = activity("listed-user", "listed-user", "IDLE");
    gc_mon_handle_message(m, &sock, msg, strlen(msg));
    msg = activity("stranger", "stranger", "IDLE");
    gc_mon_handle_message(m, &sock, msg, strlen(msg));
    msg = activity("stranger", "stranger", "INTERACTING");
    gc_mon_handle_message(m, &sock, msg, strlen(msg));
    doc = users_answer(answer, 2);
    gc_mon_resync_record(m, doc);
    json_decref(doc);
    gc_writer_stop(m->writer, SEC(5));

    ck_assert_int_eq(gc_metrics_get(met, GC_MET_STREAM_MESSAGES, "event", NULL), 1);
    ck_assert_int_eq(gc_metrics_get(met, GC_MET_STREAM_MESSAGES, "unmonitored", NULL), 2);
    ck_assert_int_eq(m->snap.events_total, 1);
    ck_assert_int_eq(history_of(path, "listed-user"), 1);
    ck_assert_int_eq(history_of(path, "queue-member"), 1);
    ck_assert_int_eq(history_of(path, "stranger"), 0);
    ck_assert_int_eq(history_of(path, "stranger-2"), 0);
    ck_assert_int_eq(db_long(path, "SELECT COUNT(*) FROM gcmon_agents WHERE user_id LIKE "
                                   "'stranger%'"),
                     0);
    ck_assert_int_eq(gc_metrics_get(met, GC_MET_EVENTS_STORED, "stream", NULL), 1);
    ck_assert_int_eq(gc_metrics_get(met, GC_MET_EVENTS_STORED, "resync", NULL), 1);
    apr_pool_destroy(m->term);
    drop_db(path);
}
END_TEST

/* The writer wakes the outbox after raising an alert with a delivery, while
 * holder shutdown stops both. Here the wake is held back (test hook) until
 * shutdown has begun: the outbox must still exist when it lands. With the
 * outbox stopped first (the old order) the writer woke a freed outbox
 * (ASan: heap-use-after-free in gc_outbox_wake). */
static _Atomic int wake_entered;

static void slow_wake(void)
{
    atomic_store(&wake_entered, 1);
    apr_sleep(apr_time_from_msec(300));
}

START_TEST(shutdown_never_wakes_a_freed_outbox)
{
    char *path = temp_db();
    fake_db_t f = { path, 0, 0 };
    gc_monitor_conf_t conf;
    gc_metrics_t *met = metrics_new();
    gc_monitor_env_t env = alerts_env(&conf, &f, met);
    gc_monitor_t *m;
    apr_time_t until;

    conf.enabled = 1;
    m = gc_monitor_create(pool, &env);
    apr_pool_create(&m->term, pool);
    atomic_store(&wake_entered, 0);
    gc_alerter_test_before_wake = slow_wake;
    ck_assert(gc_mon_workers_start(m));
    ck_assert_ptr_nonnull(m->writer);
    ck_assert_ptr_nonnull(m->outbox);
    push_state(m->writer, "idle", "Available", apr_time_now() - SEC(10));
    until = apr_time_now() + SEC(5);
    while (!atomic_load(&wake_entered) && apr_time_now() < until) {
        apr_sleep(1000);
    }
    ck_assert(atomic_load(&wake_entered));
    gc_mon_workers_stop(m); /* the wake is still to come */
    gc_alerter_test_before_wake = NULL;
    ck_assert_ptr_null(m->writer);
    ck_assert_ptr_null(m->outbox);
    ck_assert_int_eq(db_long(path, ALL_ALERTS("idle")), 1);
    ck_assert_int_eq(gc_metrics_get(met, GC_MET_IDLE_ALERTS, "raised", NULL), 1);
    apr_pool_destroy(m->term);
    drop_db(path);
}
END_TEST

/* ------------------------------------------------------------ background holder */

START_TEST(mode_follows_stream_and_webhooks)
{
    gc_monitor_conf_t c;
    const char **urls[4];
    int i;

    memset(&c, 0, sizeof(c));
    urls[0] = &c.webhooks.slack_url;
    urls[1] = &c.webhooks.status_url;
    urls[2] = &c.webhooks.trace_url;
    urls[3] = &c.webhooks.wfm_url;
    ck_assert_int_eq(gc_monitor_mode(NULL), GC_MONITOR_OFF);
    c.enabled = -1; /* GcmonStream unset */
    ck_assert_int_eq(gc_monitor_mode(&c), GC_MONITOR_OFF);
    c.enabled = 0;
    c.webhooks.secret = "k"; /* a secret alone sends nothing */
    c.webhooks.max_age = SEC(60);
    ck_assert_int_eq(gc_monitor_mode(&c), GC_MONITOR_OFF);
    for (i = 0; i < 4; i++) {
        *urls[i] = "http://127.0.0.1:9/hook";
        c.enabled = i % 2 ? -1 : 0;
        ck_assert_int_eq(gc_monitor_mode(&c), GC_MONITOR_BACKGROUND);
        c.enabled = 1;
        ck_assert_int_eq(gc_monitor_mode(&c), GC_MONITOR_STREAM);
        *urls[i] = NULL;
    }
    ck_assert_int_eq(gc_monitor_mode(&c), GC_MONITOR_STREAM); /* On without webhooks */
}
END_TEST

static int log_count(const char *needle)
{
    const char *at;
    int n = 0;

    pthread_mutex_lock(&log_mu);
    for (at = log_text; at && (at = strstr(at, needle)) != NULL; at += strlen(needle)) {
        n++;
    }
    pthread_mutex_unlock(&log_mu);
    return n;
}

static void *APR_THREAD_FUNC monitor_main(apr_thread_t *t, void *data)
{
    gc_monitor_run(data);
    return NULL;
}

/* GcmonStream Off with a webhook: the holder takes the lease, publishes itself
 * with no channels, delivers pending outbox rows (also rows added while it
 * holds), and on stop releases the lease and clears the status block. It never
 * makes an upstream client or a WebSocket context: env.conn is NULL, which
 * either would dereference. */
START_TEST(background_holder_runs_only_the_outbox)
{
    char *path = temp_db();
    fake_db_t f = { path, 0, 0 };
    gc_monitor_conf_t conf;
    gc_metrics_t *met = metrics_new();
    gc_monitor_env_t env = writer_env(&conf, &f, met);
    gc_stream_status_t *st = gc_stream_status_init(apr_pcalloc(pool, gc_stream_status_size()));
    lb_server_t *lb = lb_start();
    gc_stream_snapshot_t snap;
    apr_pool_t *mp;
    apr_thread_t *t;
    apr_status_t rv;
    apr_time_t t0;
    gc_monitor_t *m;
    gc_store_t *s;
    const char *err = NULL, *id;

    gc_log_set(log_all, log_capture, NULL);
    lb_add_simple(lb, "/status/", 200, NULL, "ok");
    conf.webhooks.status_url = apr_pstrcat(pool, lb_url(lb), "/status/hook", NULL);
    conf.webhooks.timeout = SEC(5);
    ck_assert_int_eq(gc_monitor_mode(&conf), GC_MONITOR_BACKGROUND);
    env.conn = NULL;
    env.status = st;
    env.host = "unit-host";
    ck_assert_int_eq(gc_store_open(pool, "sqlite3", path, &s, &err), APR_SUCCESS);
    ck_assert_int_eq(
        gc_store_outbox_add(s, pool, GC_TARGET_STATUS, NULL, "{\"row\":1}", apr_time_now(), &err),
        APR_SUCCESS);

    /* The monitor's own pool: only its thread touches it. */
    ck_assert_int_eq(apr_pool_create(&mp, NULL), APR_SUCCESS);
    m = gc_monitor_create(mp, &env);
    id = apr_pstrdup(pool, gc_monitor_holder_id(m));
    ck_assert_int_eq(apr_thread_create(&t, NULL, monitor_main, m, pool), APR_SUCCESS);

    ck_assert(lb_wait_count(lb, "/status/", 1, 10000));
    ck_assert(db_wait(path, "SELECT COUNT(*) FROM gcmon_outbox WHERE status = 'delivered'", 1));
    ck_assert_str_eq(lb_request(lb, "/status/", 0)->body, "{\"row\":1}");
    ck_assert(gc_monitor_is_holder(m));
    ck_assert_str_eq(db_text(path, "SELECT holder FROM gcmon_lease WHERE name = 'stream'"), id);
    ck_assert_int_eq(log_count("GCM2114"), 1);
    ck_assert_int_eq(log_count("GCM2106"), 0);
    ck_assert_int_eq(gc_stream_status_read(st, &snap), 0);
    ck_assert_int_eq(snap.has_holder, 1);
    ck_assert_str_eq(snap.holder_id, id);
    ck_assert_int_eq(snap.enabled, 0);
    ck_assert_int_eq(snap.connected, 0);
    ck_assert_int_eq(snap.nchannels, 0);

    /* A row queued while it holds (the admin API's) goes out too, once. */
    ck_assert_int_eq(
        gc_store_outbox_add(s, pool, GC_TARGET_STATUS, NULL, "{\"row\":2}", apr_time_now(), &err),
        APR_SUCCESS);
    ck_assert(db_wait(path, "SELECT COUNT(*) FROM gcmon_outbox WHERE status = 'delivered'", 2));
    ck_assert_int_eq(lb_count(lb, "/status/"), 2);
    ck_assert_int_eq(gc_metrics_get(met, GC_MET_WEBHOOK_DELIVERIES, "status", "delivered"), 2);
    /* Nothing of the stream: no history written, no channel persisted. */
    ck_assert_int_eq(db_long(path, "SELECT COUNT(*) FROM gcmon_history"), 0);
    ck_assert_int_eq(db_long(path, "SELECT COUNT(*) FROM gcmon_channels"), 0);

    /* Orderly end: prompt, lease released (expires_at 0), status cleared. */
    t0 = apr_time_now();
    gc_monitor_stop(m);
    ck_assert_int_eq(apr_thread_join(&rv, t), APR_SUCCESS);
    ck_assert_int_lt(apr_time_now() - t0, SEC(2));
    ck_assert(!gc_monitor_is_holder(m));
    ck_assert_int_eq(db_long(path, "SELECT expires_at FROM gcmon_lease WHERE name = 'stream'"), 0);
    ck_assert_int_eq(gc_stream_status_read(st, &snap), 0);
    ck_assert_int_eq(snap.has_holder, 0);
    ck_assert_int_eq(log_count("GCM2115"), 1);
    ck_assert_int_eq(lb_count(lb, "/status/"), 2);
    ck_assert_int_eq(lb_count(lb, NULL), 2); /* nothing else was called */

    gc_log_set(NULL, NULL, NULL);
    apr_pool_destroy(mp);
    gc_store_close(s);
    lb_stop(lb);
    free(log_text);
    log_text = NULL;
    drop_db(path);
}
END_TEST

/* A standby on another node shows the holder's snapshot as shared through the
 * lease row: everything but enabled, and the newer of the two last errors. */
START_TEST(status_shared_and_mirrored)
{
    gc_stream_status_t *st = new_status();
    gc_stream_snapshot_t in = sample(), got, out;
    char *doc;

    strcpy(in.last_error, "old remote error");
    in.last_error_at = 10;
    doc = gc_stream_share_json(pool, &in);
    ck_assert_ptr_nonnull(doc);
    ck_assert_ptr_null(strstr(doc, "enabled"));
    ck_assert_int_eq(gc_stream_share_parse(doc, "web1:4242:abcd", &got), 1);
    ck_assert_int_eq(gc_stream_share_parse(doc, "web2:1:abcd", &got), 0);
    ck_assert_int_eq(got.has_holder, 0);
    ck_assert_int_eq(gc_stream_share_parse("{\"v\":1}", "web1:4242:abcd", &got), 0);
    ck_assert_int_eq(gc_stream_share_parse("not json", "web1:4242:abcd", &got), 0);
    ck_assert_int_eq(gc_stream_share_parse("", "web1:4242:abcd", &got), 0);
    ck_assert_int_eq(gc_stream_share_parse(doc, "web1:4242:abcd", &got), 1);
    ck_assert_int_eq(got.has_holder, 1);
    ck_assert_str_eq(got.holder_id, in.holder_id);
    ck_assert_str_eq(got.holder_host, "web1");
    ck_assert_int_eq(got.holder_pid, 4242);
    ck_assert(got.holder_since == in.holder_since);
    ck_assert_int_eq(got.nchannels, 2);
    ck_assert_str_eq(got.channels[1].label, "ch-abcdefabcd");
    ck_assert_int_eq(got.channels[0].topics, 1000);
    ck_assert(got.channels[0].expires == in.channels[0].expires);
    ck_assert(got.last_event_at == in.last_event_at);
    ck_assert(got.events_total == 12345678901ULL);
    ck_assert_str_eq(got.lease_holder, "web1:4242:abcd");

    gc_stream_status_set_enabled(st, 0);
    gc_stream_status_error(st, 20, "local error, newer");
    gc_stream_status_mirror(st, &got);
    gc_stream_status_read(st, &out);
    ck_assert_int_eq(out.enabled, 0);
    ck_assert_int_eq(out.connected, 1);
    ck_assert_str_eq(out.last_error, "local error, newer");
    got.last_error_at = 30;
    gc_stream_status_mirror(st, &got);
    gc_stream_status_read(st, &out);
    ck_assert_str_eq(out.last_error, "old remote error");

    ck_assert_int_eq(gc_stream_share_same_node("web1:4242:abcd", "web1"), 1);
    ck_assert_int_eq(gc_stream_share_same_node("web1:4242:abcd", "web"), 0);
    ck_assert_int_eq(gc_stream_share_same_node("web1-x:4242:abcd", "web1"), 0);
    ck_assert_int_eq(gc_stream_share_same_node("garbage", "web1"), 0);
}
END_TEST

Suite *monitor_suite(void)
{
    Suite *s = suite_create("monitor");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, backoff_first_attempt_is_immediate);
    tcase_add_test(tc, backoff_doubles_with_jitter_up_to_max);
    tcase_add_test(tc, queue_copies_and_keeps_order);
    tcase_add_test(tc, queue_drops_oldest_when_full);
    tcase_add_test(tc, queue_freed_with_its_pool);
    tcase_add_test(tc, status_publish_read_json);
    tcase_add_test(tc, status_publish_keeps_enabled_and_error);
    tcase_add_test(tc, status_clear_only_own_holder);
    tcase_add_test(tc, status_json_without_holder);
    tcase_add_test(tc, status_auto_lines);
    tcase_add_test(tc, status_dead_holder_shown_gone);
    tcase_add_test(tc, status_survives_killed_writer);
    tcase_add_test(tc, status_shared_and_mirrored);
    tcase_add_test(tc, copy_line_sanitises_and_truncates);
    tcase_add_test(tc, status_attach_checks_version_and_size);
    tcase_add_test(tc, channel_margin_scales_with_short_lives);
    tcase_add_test(tc, channel_label_is_a_keyed_digest);
    tcase_add_test(tc, monitor_messages_hide_channel_ids);
    suite_add_tcase(s, tc);
    tc = tcase_create("writer");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, writer_stores_everything_once);
    tcase_add_test(tc, writer_retries_until_the_database_is_back);
    tcase_add_test(tc, writer_counts_what_it_cannot_flush);
    tcase_add_test(tc, writer_asks_for_a_resync_after_drops);
    tcase_add_test(tc, writer_raises_and_clears_idle_alerts);
    tcase_add_test(tc, writer_seeds_alerts_without_duplicates);
    tcase_add_test(tc, shutdown_never_wakes_a_freed_outbox);
    tcase_add_test(tc, events_of_unmonitored_agents_are_ignored);
    suite_add_tcase(s, tc);
    tc = tcase_create("background");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, mode_follows_stream_and_webhooks);
    tcase_add_test(tc, background_holder_runs_only_the_outbox);
    suite_add_tcase(s, tc);
    return s;
}
