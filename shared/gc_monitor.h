/* The stream monitor (SPEC §3.1): the holder's loop that keeps notification
 * channels subscribed to every monitored agent, reads their WebSockets, resyncs
 * by REST after every (re)connect and records transitions in the database. */
#ifndef GC_MONITOR_H
#define GC_MONITOR_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/* Stream directives (SPEC §2 "Stream"). */
typedef struct gc_monitor_conf {
    int enabled;                        /* GcmonStream */
    apr_array_header_t *queues;         /* GcmonMonitorQueue: const char * */
    apr_array_header_t *users;          /* GcmonMonitorUser: const char * */
    apr_interval_time_t membership_refresh;
    int topics_per_channel;
    apr_interval_time_t heartbeat_timeout;
    apr_interval_time_t pong_timeout;
    apr_interval_time_t backoff_min, backoff_max;
    apr_interval_time_t retention;
} gc_monitor_conf_t;

#define GC_MAX_CHANNELS 20
#define GC_MAX_TOPICS_PER_CHANNEL 1000

/* Defaults for fields left unset (0 / -1). */
void gc_monitor_conf_defaults(gc_monitor_conf_t *c);

/* A Genesys object id as gcmon accepts it in directives and URLs:
 * 1..64 of [A-Za-z0-9-_]. */
int gc_id_valid(const char *s);

#endif
