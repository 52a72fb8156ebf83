#ifndef MOD_GCMON_STREAM_PRIVATE_H
#define MOD_GCMON_STREAM_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "gc_log.h"
#include "gc_monitor.h"
#include "gc_route_shm.h"
#include "gc_stream_status.h"
#include "gcmon_glue.h"

/* The main file gets this from AP_DECLARE_MODULE. */
#ifndef GCMON_MODULE_MAIN
APLOG_USE_MODULE(gcmon_stream);
#endif
extern module AP_MODULE_DECLARE_DATA gcmon_stream_module;

typedef struct {
    gc_monitor_conf_t mon;
    const char *node_name; /* GcmonNodeName, or NULL */
} gcmon_stream_conf_t;

extern const command_rec gcmon_stream_cmds[];
void *gcmon_stream_create_server_conf(apr_pool_t *p, server_rec *s);

/* mod_gcmon_stream_status.c: the status block in shared memory (created by
 * the parent, inherited by children), mod_status and /v1/stream. */
int gcmon_stream_status_setup(server_rec *s, int enabled);
gc_stream_status_t *gcmon_stream_status_block(void);
void gcmon_stream_status_register(void);
int gcmon_stream_status_hook(request_rec *r, int flags);

/* mod_gcmon_stream_routes.c: the route tables in shared memory (created by
 * the parent, inherited by children) and the gcmon_stream_route optional
 * function. */
int gcmon_stream_routes_setup(server_rec *s);
gc_route_shm_t *gcmon_stream_routes_block(void);
void gcmon_stream_routes_register(void);

/* mod_gcmon_stream_node.c: this instance's node name (holder ids). */
void gcmon_stream_node_setup(server_rec *s, const char *configured);
const char *gcmon_stream_node(void);
int gcmon_stream_node_name_valid(const char *name);

/* mod_gcmon_stream_thread.c: the monitor thread of each child. */
void gcmon_stream_thread_start(apr_pool_t *pchild, server_rec *s, const gcmon_shared_t *sh,
                               const gcmon_stream_conf_t *c);
void gcmon_stream_child_stopping(apr_pool_t *pchild, int graceful);

#endif
