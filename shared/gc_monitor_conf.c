#include <ctype.h>
#include <string.h>

#include "gc_monitor.h"

void gc_monitor_conf_defaults(gc_monitor_conf_t *c)
{
    if (c->enabled < 0) {
        c->enabled = 0;
    }
    if (c->membership_refresh <= 0) {
        c->membership_refresh = apr_time_from_sec(300);
    }
    if (c->topics_per_channel <= 0) {
        c->topics_per_channel = GC_MAX_TOPICS_PER_CHANNEL;
    }
    if (c->event_queue <= 0) {
        c->event_queue = GC_WRITER_QUEUE_MAX;
    }
    if (c->heartbeat_timeout <= 0) {
        c->heartbeat_timeout = apr_time_from_sec(60);
    }
    if (c->pong_timeout <= 0) {
        c->pong_timeout = apr_time_from_sec(10);
    }
    if (c->backoff_min <= 0) {
        c->backoff_min = apr_time_from_sec(1);
        c->backoff_max = apr_time_from_sec(60);
    }
    if (c->retention <= 0) {
        c->retention = apr_time_from_sec(90 * 86400);
    }
    if (c->audit_retention == 0) {
        c->audit_retention = apr_time_from_sec(365 * 86400);
    }
    if (c->webhooks.max_age <= 0) {
        c->webhooks.max_age = GC_WEBHOOK_MAX_AGE_DEFAULT;
    }
}
