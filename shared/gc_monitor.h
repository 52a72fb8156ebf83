/* The stream monitor (SPEC §3.1): the holder's loop that keeps notification
 * channels subscribed to every monitored agent, reads their WebSockets, resyncs
 * by REST after every (re)connect and records transitions in the database. */
#ifndef GC_MONITOR_H
#define GC_MONITOR_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "gc_dbconn.h"
#include "gc_outbox.h"
#include "gc_webhook.h"
#include "gc_worker.h"

/* Stream directives (SPEC §2 "Stream", "Idle alerts", "Outbound sync webhooks"). */
typedef struct gc_monitor_conf {
    int enabled;                /* GcmonStream */
    apr_array_header_t *queues; /* GcmonMonitorQueue: const char * */
    apr_array_header_t *users;  /* GcmonMonitorUser: const char * */
    apr_interval_time_t membership_refresh;
    int topics_per_channel;
    int event_queue; /* GcmonEventQueue: events waiting for the database, at most */
    apr_interval_time_t heartbeat_timeout;
    apr_interval_time_t pong_timeout;
    apr_interval_time_t backoff_min, backoff_max;
    apr_interval_time_t retention;       /* history and cleared alerts */
    apr_interval_time_t audit_retention; /* GcmonAuditRetention; < 0: off (kept for ever) */
    apr_array_header_t *idle_alerts;     /* GcmonIdleAlert: gc_alert_rule_t; empty = defaults */
    gc_webhook_conf_t webhooks;          /* GcmonSlackWebhook, GcmonWebhookSecret, … */
    int jobs; /* background jobs (traces, activations) can be queued: client credentials and
                 mod_dbd are there (set by the glue) */
    apr_interval_time_t strategy_rebalance; /* GcmonStrategyRebalance; 0: off */
} gc_monitor_conf_t;

#define GC_MAX_CHANNELS 20
#define GC_MAX_TOPICS_PER_CHANNEL 1000
#define GC_EVENT_QUEUE_MIN 100
#define GC_EVENT_QUEUE_MAX 10000000

/* Defaults for fields left unset (0 / -1). */
void gc_monitor_conf_defaults(gc_monitor_conf_t *c);

/* What each child's monitor thread does for a configuration (docs/stream.md):
 * - GC_MONITOR_STREAM: GcmonStream On, the full stream holder;
 * - GC_MONITOR_BACKGROUND: GcmonStream Off (or unset) but an outbound webhook
 *   is configured, or jobs can be queued (conf->jobs): the holder runs only
 *   the outbox delivery thread and, with jobs, the job thread;
 * - GC_MONITOR_OFF: neither; no monitor thread is started. */
typedef enum { GC_MONITOR_OFF = 0, GC_MONITOR_STREAM, GC_MONITOR_BACKGROUND } gc_monitor_mode_e;

gc_monitor_mode_e gc_monitor_mode(const gc_monitor_conf_t *c);

/* ------------------------------------------------------------------ monitor */

struct gc_store;
struct gc_budget;
struct gc_metrics;
struct gc_conn_conf;
struct gc_stream_status;
struct gc_route_shm;

/* What the module glue gives the monitor. Callbacks get `baton`. */
typedef struct gc_monitor_env {
    const gc_monitor_conf_t *conf;
    const struct gc_conn_conf *conn;
    struct gc_budget *budget;        /* may be NULL (tests, bench) */
    struct gc_metrics *metrics;      /* may be NULL */
    struct gc_stream_status *status; /* may be NULL */
    /* This host's route tables (may be NULL): the monitor thread of every
     * child refreshes them from the database when they are older than
     * GC_ROUTE_REFRESH and it takes their refresh claim (one child at a time). */
    struct gc_route_shm *routes;
    const char *host; /* this host's name, for the holder id */
    void *baton;

    /* Open a database connection for the calling thread (kept for long; the
     * glue uses mod_dbd's ap_dbd_open + gc_store_wrap). *handle is passed back
     * to db_close. APR_SUCCESS or an error with *err. */
    gc_db_open_fn *db_open;
    gc_db_close_fn *db_close;

    /* May this process lead right now? False while its configuration
     * generation is not the running one (graceful restart), or when stopping. */
    int (*may_lead)(void *baton);
    /* The process is stopping (in addition to gc_monitor_stop). May be NULL. */
    int (*cancelled)(void *baton);

    /* Timings; 0 = the defaults below. */
    apr_interval_time_t lease_ttl;   /* 15 s */
    apr_interval_time_t lease_renew; /* 3 s */
    apr_interval_time_t lease_poll;  /* 2 s */
    int queue_max;                   /* events waiting for the writer: 100000 */
    int batch_max;                   /* events per transaction: 500 */
} gc_monitor_env_t;

#define GC_LEASE_NAME "stream"
#define GC_LEASE_TTL apr_time_from_sec(15)
#define GC_LEASE_RENEW apr_time_from_sec(3)
#define GC_LEASE_POLL apr_time_from_sec(2)
#define GC_WRITER_QUEUE_MAX 100000
#define GC_WRITER_BATCH_MAX 500
/* Channels are renewed (and reused by a new holder only) with this much left:
 * an hour of the platform's 24 h channels. A channel whose life (expires minus
 * creation) is shorter is renewed with a quarter of its life left instead, so
 * the emulator's short channel lives exercise renewal (see
 * gc_mon_channel_margin). */
#define GC_CHANNEL_RENEW_MARGIN apr_time_from_sec(3600)

typedef struct gc_monitor gc_monitor_t;

/* Create in the pool the thread will use (the thread's own allocator); NULL
 * when out of resources. The env is copied; the strings and objects it points
 * to must outlive the monitor.
 * Unless gc_monitor_mode(env->conf) is GC_MONITOR_STREAM the monitor is a
 * background holder: the same lease and lifecycle, but while holder it runs
 * only the outbox delivery thread and, with conf->jobs, the job thread and
 * the upstream client it needs (no WebSockets, channels, resync or writer
 * thread); without conf->jobs env->conn and budget are not used. */
gc_monitor_t *gc_monitor_create(apr_pool_t *pool, const gc_monitor_env_t *env);

/* The thread body: wait for the lease, hold the stream while holder, return
 * once stopped (after closing sockets, flushing the writer and releasing the
 * lease). gc_monitor_run runs it on the calling thread; gc_monitor_start on a
 * thread of its own made by create (the glue passes httpd's ap_thread_create;
 * NULL: apr_thread_create). */
void gc_monitor_run(gc_monitor_t *m);
apr_status_t gc_monitor_start(gc_monitor_t *m, gc_thread_create_fn *create);

/* Ask the thread to stop. Async-signal-safe (an atomic store and a write(2)),
 * callable from any thread and from child_stopping: its waits end at once,
 * the holder's WebSocket loop notices within 100 ms. */
void gc_monitor_stop(gc_monitor_t *m);

/* Wait up to patience (< 0: as long as it takes) for the thread of
 * gc_monitor_start to end, and join it: APR_SUCCESS, or APR_TIMEUP while it
 * still runs (call again). */
apr_status_t gc_monitor_join(gc_monitor_t *m, apr_interval_time_t patience);

/* Is this monitor the stream holder right now (tests, status)? */
int gc_monitor_is_holder(gc_monitor_t *m);

/* The holder id ("host:pid:random"). */
const char *gc_monitor_holder_id(gc_monitor_t *m);

#endif
