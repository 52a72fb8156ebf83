/* The stream holder's strategy thread (SPEC §3.6, §9.9): keeps the `live`
 * observations of every active strategy fresh for the route tables, and
 * rebalances them on a schedule (GcmonStrategyRebalance).
 *
 * Every GC_ROUTE_OBSERVE it reads the active strategies
 * (gc_store_strategy_active; it looks at them every GC_STRATEGY_WATCH_LOOK,
 * and a strategy never observed — just activated — is observed at once,
 * unless the last observation failed), asks Genesys for the observations of
 * all their target queues at once (one POST …/observations/query per
 * GC_STRATEGY_OBSERVE_CHUNK distinct queues: one for up to 100 queues) and
 * stores each strategy's figures with the time of the answer
 * (gc_store_strategy_set_live). Every host compiles its route tables from
 * these rows (gc_route_load), so a route decision uses occupancy at most
 * GC_ROUTE_OBSERVE + GC_ROUTE_REFRESH old while Genesys answers; when it does
 * not, observed_at stops moving and the route says `stale` past
 * GC_STRATEGY_MAX_AGE (30 s). No active strategy: no upstream call.
 *
 * With a rebalance interval it also rebalances each active strategy whose
 * last rebalance (or activation) is that old, through the rebalance callback
 * (the stored strategy's own rebalance: new weights, audit row with actor
 * "gcmon", WFM delivery). The schedule is kept in the database
 * (rebalanced_at), so a new holder neither repeats nor skips one. A failed
 * rebalance of a strategy is tried again after min(interval, 60 s); the
 * others go on meanwhile.
 *
 * The thread is a gc_worker ("strategies") with its own database connection;
 * the holder starts it with the job thread (gc_mon_workers_start) when it has
 * an upstream client, and stops it before the outbox. */
#ifndef GC_STRATEGY_WATCH_H
#define GC_STRATEGY_WATCH_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "gc_dbconn.h"
#include "gc_store_strategy.h"
#include "gc_strategy_calls.h"

#define GC_ROUTE_OBSERVE apr_time_from_sec(5)
#define GC_STRATEGY_WATCH_LOOK apr_time_from_sec(1)
#define GC_STRATEGY_OBSERVE_CHUNK 100
#define GC_STRATEGY_MAX_REBALANCE apr_time_from_sec(24 * 3600)
#define GC_STRATEGY_REBALANCE_RETRY apr_time_from_sec(60)
/* Who a scheduled rebalance is audited as. */
#define GC_STRATEGY_WATCH_ACTOR "gcmon"
#define GC_STRATEGY_WATCH_ACTOR_SOURCE "schedule"

struct gc_store;

/* Rebalance the active strategy r as gcmon (actor "gcmon"): APR_SUCCESS, or
 * an error with *err (logged by the thread, tried again later). */
typedef apr_status_t gc_strategy_watch_rebalance_fn(void *baton, apr_pool_t *p, struct gc_store *s,
                                                    const gc_strategy_rec_t *r, const char **err);

/* What one observation pass did. */
typedef struct {
    int strategies; /* active strategies read (those whose body reads) */
    int queues;     /* distinct target queues */
    int queries;    /* observation queries sent */
    int stored;     /* strategies whose `live` was written */
} gc_strategy_watch_report_t;

/* One observation pass over the store s with the Genesys calls ops (scratch
 * from p): the active strategies (active: as read with
 * gc_store_strategy_active; NULL: read here), their queues' observations,
 * each `live` stored with observed_at = now() after the answer (now NULL:
 * apr_time_now). APR_SUCCESS; or a database error (*db_err set) or an
 * upstream one (*up_err set): then no strategy's `live` was written in this
 * pass (all or nothing, so one observed_at covers one answer). */
apr_status_t gc_strategy_watch_observe(struct gc_store *s, apr_pool_t *p,
                                       const gc_strategy_ops_t *ops, apr_time_t (*now)(void),
                                       const apr_array_header_t *active,
                                       gc_strategy_watch_report_t *rep, const char **db_err,
                                       gc_error_t **up_err);

/* Is one of the active strategies never observed (no `live` yet)? */
int gc_strategy_watch_unobserved(const apr_array_header_t *active);

/* Is the active strategy r due for a scheduled rebalance at now (its last
 * rebalance, or else its activation, every or more ago)? */
int gc_strategy_watch_rebalance_due(const gc_strategy_rec_t *r, apr_interval_time_t every,
                                    apr_time_t now);

typedef struct {
    const gc_strategy_ops_t *ops;              /* Genesys calls (the holder's upstream client) */
    apr_interval_time_t observe_every;         /* 0: GC_ROUTE_OBSERVE */
    apr_interval_time_t look_every;            /* 0: GC_STRATEGY_WATCH_LOOK */
    apr_interval_time_t rebalance_every;       /* GcmonStrategyRebalance; 0: off */
    gc_strategy_watch_rebalance_fn *rebalance; /* needed when rebalance_every > 0 */
    void *rebalance_baton;
    gc_db_open_fn *db_open; /* the thread's own connection */
    gc_db_close_fn *db_close;
    void *db_baton;
    apr_interval_time_t db_retry_min, db_retry_max; /* reconnect backoff; 0: 2 s, 60 s */
} gc_strategy_watch_env_t;

typedef struct gc_strategy_watch gc_strategy_watch_t;

/* Start the thread (pool p: its parent). The env is copied; what it points
 * to must outlive the thread. */
apr_status_t gc_strategy_watch_start(gc_strategy_watch_t **out, apr_pool_t *p,
                                     const gc_strategy_watch_env_t *env);

/* Stop and join it (an upstream call in flight ends within its timeout, or at
 * once when the upstream client's cancel says so). NULL is fine. */
void gc_strategy_watch_stop(gc_strategy_watch_t *w);

/* Tests: observation passes done (successful or not). */
int gc_strategy_watch_passes(gc_strategy_watch_t *w);

#endif
