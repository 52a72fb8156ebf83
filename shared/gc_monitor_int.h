/* Private to the stream monitor (gc_monitor*.c): the holder's state and the
 * seams between its files. Everything here runs on the monitor thread unless
 * noted; the writer runs on its own thread behind the event queue. */
#ifndef GC_MONITOR_INT_H
#define GC_MONITOR_INT_H

#include <stdatomic.h>

#include <apr_hash.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>

#include "gc_log.h"
#include "gc_metrics.h"
#include "gc_monitor.h"
#include "gc_state.h"
#include "gc_store.h"
#include "gc_stream_status.h"
#include "gc_upstream.h"
#include "gc_ws.h"

#include "gc_evq.h"
#include "gc_jobs.h"
#include "gc_strategy_calls.h"
#include "gc_strategy_watch.h"

/* ------------------------------------------------------------ writer */

typedef struct gc_writer gc_writer_t;

/* Called after every committed batch (bench, tests); may be NULL. */
typedef void gc_writer_commit_fn(void *baton, const gc_evrec_t *list, int n,
                                 apr_time_t committed_at);

/* Start the writer thread (a gc_worker): it opens its own database connection
 * through env->db_open, group-commits what is queued (a transaction as soon as
 * events wait — a push wakes it — at most batch_max events each), retries a
 * failed batch with backoff (never dropping it while memory allows), and
 * prunes history past retention.
 * outbox (may be NULL) is the delivery thread it wakes when an idle alert with
 * a delivery was raised: fixed for the writer's life, so it must outlive the
 * writer — stop the writer before the outbox (gc_mon_workers_stop). */
apr_status_t gc_writer_start(gc_writer_t **out, apr_pool_t *p, const gc_monitor_env_t *env,
                             gc_outbox_t *outbox, gc_writer_commit_fn *on_commit,
                             void *commit_baton);
/* Queue one event (any thread). */
void gc_writer_push(gc_writer_t *w, const gc_agent_event_t *ev, const char *source);
int gc_writer_pending(gc_writer_t *w);
/* Events dropped (queue full) before the last commit with room in the queue
 * again, or 0; resets it. The monitor then resyncs every monitored agent. */
long gc_writer_take_resync(gc_writer_t *w);
/* Flush what is queued (up to `drain`), stop and join. Events still queued are
 * counted as dropped{shutdown} and logged; returns how many. */
int gc_writer_stop(gc_writer_t *w, apr_interval_time_t drain);

/* ------------------------------------------------------------ idle alerts */

/* Idle alerts on the writer thread (gc_monitor_alerter.c). NULL (alerts off)
 * when conf has no rules; every function accepts NULL. */
typedef struct gc_alerter gc_alerter_t;
gc_alerter_t *gc_alerter_create(apr_pool_t *p, const gc_monitor_conf_t *conf, gc_metrics_t *metrics,
                                gc_outbox_t *outbox);
/* Tests only: called on the writer thread right before it wakes the outbox. */
extern void (*gc_alerter_test_before_wake)(void);
/* Follow a committed run of events. */
void gc_alerter_committed(gc_alerter_t *a, const gc_evrec_t *run, int n);
/* Seed from the database on first use, raise what is due, clear ended alerts.
 * Returns when it wants the next tick — the next alert due, a pending clear
 * or a retry of the seed — or 0 for none; scratch from p. */
apr_time_t gc_alerter_tick(gc_alerter_t *a, gc_store_t *s, apr_pool_t *p, apr_time_t now);

/* ------------------------------------------------------------ holder state */

typedef struct mon_channel mon_channel_t;

typedef enum { SOCK_MAIN, SOCK_SPARE, SOCK_ABANDONED } mon_sock_role_e;

/* One WebSocket (malloc'ed: sockets come and go for the life of a term). */
typedef struct mon_sock {
    struct mon_sock *next; /* m->socks */
    mon_channel_t *ch;     /* NULL once abandoned */
    gc_ws_conn_t *conn;
    mon_sock_role_e role;
    int open;
    apr_time_t started_at, opened_at;
    int renewal;       /* spare for the successor channel */
    int close_pending; /* abandoned in a callback: close from the loop */
    int in_connect;    /* inside gc_ws_connect */
    int closed_early;  /* on_close came during gc_ws_connect */
    int close_error;
} mon_sock_t;

/* A notification channel's identity. The id (and the connect URI holding it)
 * is a credential: logs above debug, the status block and therefore
 * /v1/stream and mod_status show only the label. */
typedef struct mon_ident {
    apr_pool_t *pool;
    const char *id, *uri;
    apr_time_t expires;
    apr_interval_time_t margin;        /* renew with this much left (gc_mon_channel_margin) */
    char label[GC_CHANNEL_LABEL_SIZE]; /* gc_channel_label of id; "" when none */
} mon_ident_t;

struct mon_channel {
    int idx;
    int nusers;       /* users assigned to this slot */
    int topics;       /* permitted on the last subscription */
    mon_ident_t cur;  /* cur.id NULL: to be created */
    mon_ident_t next; /* successor while renewing */
    mon_ident_t old;  /* replaced by a renewal: forget it (loop) */
    int save_pending; /* persist cur from the loop */
    int next_subscribed;
    int need_subscribe; /* the wanted topics differ from the server's */
    int need_head;      /* check the channel still exists */
    int connected_once; /* its first connect was logged (notice); later ones are
                         * reconnects (info). Survives a reset, not a retire. */
    mon_sock_t *sock;   /* main socket (connecting or open) */
    mon_sock_t *spare;  /* replacement being opened */
    apr_time_t last_rx; /* last message on the main socket */
    apr_time_t ping_at; /* 0 = no ping outstanding */
    int failures;       /* consecutive failed connects */
    apr_time_t next_connect;
    int op_failures; /* consecutive failed REST operations */
    apr_time_t next_op;
    int resync_pending;    /* its users waiting for a snapshot */
    int want_spare;        /* socket_closing: open a second socket */
    const char *reset_why; /* replace the channel (metrics label) */
    apr_time_t reset_at;
    apr_time_t spare_next; /* renewal socket retry time */
};

typedef struct mon_user {
    const char *id;
    int chan;   /* slot, or -1 when over capacity */
    int resync; /* snapshot pending */
} mon_user_t;

typedef struct mon_members {
    apr_pool_t *pool;          /* this pass: the ids collected */
    apr_hash_t *ids;           /* user id → the JSON array of its queues so far */
    apr_pool_t *recorded_pool; /* what the last pass recorded in the database */
    apr_hash_t *recorded;      /* user id → JSON array of queue ids */
    int active;
    int queue;        /* conf->queues index being read */
    const char *next; /* next page (path), or NULL for the first */
    int pages;
    int failed; /* a queue could not be read this pass */
    apr_time_t due;
} mon_members_t;

struct gc_monitor {
    apr_pool_t *pool;
    gc_monitor_env_t env;
    const gc_monitor_conf_t *conf;
    char holder_id[GC_STATUS_ID_MAX];
    int pid;
    int background; /* outbox only (GcmonStream Off): no sockets,
                                           no upstream client, no writer */

    /* The monitor thread: its stop, waits, own database connection (from
     * gc_worker_store; opened by db_ready), backoff and random numbers. */
    gc_worker_t *worker;
    _Atomic int holder;
    _Atomic(gc_ws_t *) ws;

    gc_upstream_t *up;
    int migrated; /* the schema is current (once per thread) */

    /* holder term */
    apr_pool_t *term;               /* life of a term */
    apr_pool_t *iter;               /* cleared every loop */
    apr_pool_t *msg;                /* cleared every message */
    gc_writer_t *writer;            /* NULL in background mode */
    gc_outbox_t *outbox;            /* webhook deliveries (holder only) */
    gc_jobs_t *jobs;                /* durable background jobs (holder, stream mode) */
    gc_job_kind_t job_kinds[2];     /* traces, strategy activations */
    gc_strategy_watch_t *watch;     /* the strategies' observations (holder, with m->up) */
    gc_strategy_ops_t strategy_ops; /* its Genesys calls over m->up */
    int closing;                    /* term ending: closes are not reconnects */
    mon_channel_t ch[GC_MAX_CHANNELS];
    mon_sock_t *socks;
    apr_pool_t *users_pool;
    apr_hash_t *users; /* id → mon_user_t */
    int unassigned;
    int resync_pending;
    apr_time_t resync_next;
    int resync_failures;
    mon_members_t members;
    apr_time_t lease_renewed_at, lease_next;
    int lease_check;       /* renew before the next connect */
    apr_time_t resumed_at; /* end of the last long blocking call */
    gc_stream_snapshot_t snap;
    int snap_dirty;
    int shared_connected; /* `connected` as last shared (share_doc) */
    apr_time_t snap_at;
    int malformed_logged;
    apr_time_t malformed_window;
    /* route tables (gc_monitor_routes.c): what the last refresh logged */
    int routes_left_out, routes_unreadable, routes_failing;
};

/* gc_monitor_status.c: after every commit of a holder's connection that
 * changed the board, its generation goes to the status block (SPEC §9.17).
 * For gc_worker_db_conf_t.opened (baton: the status block, may be NULL). */
void gc_mon_board_publisher(struct gc_store *s, void *status);

/* gc_monitor.c */
/* The holder's threads (m->term): the outbox, then — unless background — the
 * writer that wakes it. 0 when the term cannot run. */
int gc_mon_workers_start(gc_monitor_t *m);
/* Stop them in the reverse order: the writer (flushing for up to 1 s) is
 * joined before the outbox is destroyed, so no wake can reach a freed outbox.
 * Returns the events the writer could not store (its database unavailable). */
int gc_mon_workers_stop(gc_monitor_t *m);
int gc_mon_running(gc_monitor_t *m);
/* The monitor thread's own database connection, open and its schema current:
 * 0 while unavailable (backing off after a failure, which it logged). */
int gc_mon_db_ready(gc_monitor_t *m);
void gc_mon_error(gc_monitor_t *m, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gc_mon_metric_inc(gc_monitor_t *m, gc_metric_id_e id, const char *label);
int gc_mon_cancel(void *baton);
/* One upstream call. channel_id: the notification channel id inside path (or
 * NULL), which the client's logs above debug show as its label. */
apr_status_t gc_mon_call(gc_monitor_t *m, const char *op, const char *method, const char *path,
                         const char *channel_id, const char *body, gc_response_t **resp,
                         gc_error_t **err);
/* The channel's label (gc_channel_label keyed with the client secret). */
void gc_mon_channel_label(gc_monitor_t *m, const char *channel_id, char out[GC_CHANNEL_LABEL_SIZE]);
/* How long before expiry a channel of this life (expires minus creation) is
 * renewed: GC_CHANNEL_RENEW_MARGIN, or a quarter of a shorter life (at least
 * 1 s); GC_CHANNEL_RENEW_MARGIN when the life is unknown (<= 0). */
apr_interval_time_t gc_mon_channel_margin(apr_interval_time_t life);
/* Delay before retrying after `failures` failed calls, honouring Retry-After. */
apr_interval_time_t gc_mon_retry_delay(gc_monitor_t *m, int failures, const gc_error_t *err);
int gc_mon_power_of_two(int n);

/* gc_monitor_channels.c */
void gc_mon_channels_reuse(gc_monitor_t *m, apr_time_t now);
int gc_mon_channels_step(gc_monitor_t *m, apr_time_t now);
void gc_mon_channels_connect(gc_monitor_t *m, apr_time_t now);
void gc_mon_channel_reset(gc_monitor_t *m, mon_channel_t *ch, const char *why);
void gc_mon_channel_retire(gc_monitor_t *m, mon_channel_t *ch);
void gc_mon_channel_save(gc_monitor_t *m, mon_channel_t *ch);
void gc_mon_channel_promote(gc_monitor_t *m, mon_channel_t *ch, mon_sock_t *s, apr_time_t now);

/* gc_monitor_ws.c */
extern const gc_ws_callbacks_t gc_mon_ws_callbacks;
mon_sock_t *gc_mon_sock_open(gc_monitor_t *m, mon_channel_t *ch, const char *uri,
                             mon_sock_role_e role);
void gc_mon_sock_abandon(gc_monitor_t *m, mon_sock_t *s);
void gc_mon_socks_reap(gc_monitor_t *m);
void gc_mon_socks_free_all(gc_monitor_t *m);
void gc_mon_watchdog(gc_monitor_t *m, apr_time_t now);
void gc_mon_handle_message(gc_monitor_t *m, mon_sock_t *s, const char *text, apr_size_t len);

/* gc_monitor_members.c */
void gc_mon_users_init(gc_monitor_t *m);
void gc_mon_users_add_assigned(gc_monitor_t *m, const char *user_id, int chan);
void gc_mon_users_assign(gc_monitor_t *m);
int gc_mon_members_step(gc_monitor_t *m, apr_time_t now);
void gc_mon_mark_resync(gc_monitor_t *m, int chan);
/* Is user_id in the monitored set (GcmonMonitorUser, the queues' members and,
 * until a new holder's first membership pass, the agents of the channels it
 * reused)? Events of anyone else are ignored. */
int gc_mon_is_monitored(gc_monitor_t *m, const char *user_id);

/* gc_monitor_resync.c */
int gc_mon_resync_step(gc_monitor_t *m, apr_time_t now);
/* Queue the monitored agents of a GET /api/v2/users answer for the writer. */
void gc_mon_resync_record(gc_monitor_t *m, const json_t *doc);

/* gc_monitor_routes.c: refresh this host's route tables from the database
 * when they are older than GC_ROUTE_REFRESH and this thread takes their
 * refresh claim (any child's monitor thread: standby or holder). */
void gc_mon_routes_tick(gc_monitor_t *m, apr_time_t now);

/* gc_monitor_status.c */
void gc_mon_status_begin(gc_monitor_t *m, apr_time_t now);
void gc_mon_status_tick(gc_monitor_t *m, apr_time_t now, int force);
void gc_mon_status_end(gc_monitor_t *m);

#endif
