#ifndef MOD_GCMON_STREAM_PRIVATE_H
#define MOD_GCMON_STREAM_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "gc_log.h"
#include "gc_monitor.h"
#include "gcmon_glue.h"

/* The main file gets this from AP_DECLARE_MODULE. */
#ifndef GCMON_MODULE_MAIN
APLOG_USE_MODULE(gcmon_stream);
#endif
extern module AP_MODULE_DECLARE_DATA gcmon_stream_module;

typedef struct {
    gc_monitor_conf_t mon;
} gcmon_stream_conf_t;

extern const command_rec gcmon_stream_cmds[];
void *gcmon_stream_create_server_conf(apr_pool_t *p, server_rec *s);

#endif
