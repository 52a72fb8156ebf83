/* mod_gcmon_api: private declarations shared by its glue files. */
#ifndef MOD_GCMON_API_PRIVATE_H
#define MOD_GCMON_API_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <jansson.h>

#include "gc_conf.h"
#include "gc_log.h"
#include "gc_presence.h"
#include "gc_query.h"
#include "gc_upstream.h"
#include "gcmon_glue.h"

/* The main file gets this from AP_DECLARE_MODULE. */
#ifndef GCMON_MODULE_MAIN
APLOG_USE_MODULE(gcmon_api);
#endif
extern module AP_MODULE_DECLARE_DATA gcmon_api_module;

#define GCMON_DEFAULT_MAX_BODY 65536
#define GCMON_MAX_MAX_BODY (16L * 1024 * 1024)
#define GCMON_PRESENCE_CACHE_TTL apr_time_from_sec(300)

/* Server configuration (all gcmon directives are global: one org per httpd). */
typedef struct {
    gc_conn_conf_t conn;
    long max_body;                  /* GcmonMaxBody, -1 = unset */
    int conn_configured;            /* any Connection directive seen */
    apr_array_header_t *transitions;/* GcmonTransition: gc_transition_t */
    int actor_mode;                 /* GcmonAdminActor: gcmon_actor_mode_e, -1 = unset */
    const char *actor_header;       /* its header name (header mode) */
} gcmon_api_conf_t;

/* GcmonAdminActor: where the actor of an admin action comes from. */
typedef enum {
    GCMON_ACTOR_USER = 0,           /* Apache's authenticated r->user (default) */
    GCMON_ACTOR_HEADER,             /* a header set by a trusted reverse proxy */
    GCMON_ACTOR_ANONYMOUS           /* nobody: audited as "-" (explicit, warned) */
} gcmon_actor_mode_e;

/* Per-process runtime, created in child_init. */
typedef struct {
    gcmon_shared_t shared;
    gc_upstream_t *upstream;        /* NULL when no client credentials are configured */
    gc_presence_cache_t *presences; /* the org's presence definitions */
} gcmon_api_runtime_t;

extern const command_rec gcmon_api_cmds[];
void *gcmon_api_create_server_conf(apr_pool_t *p, server_rec *s);
gcmon_api_conf_t *gcmon_api_conf(void);
long gcmon_api_max_body(const gcmon_api_conf_t *c);

gcmon_api_runtime_t *gcmon_api_runtime(void);

int gcmon_api_handler(request_rec *r);

/* What gcmon learns about one request (its request_config slot). */
typedef struct {
    int mount_resolved;
    const char *mount;
    const char *actor;              /* NULL until established */
    const char *actor_source;
} gcmon_api_req_t;
gcmon_api_req_t *gcmon_api_req(request_rec *r);

/* Mount point (mod_gcmon_api_mount.c, SPEC §9.13): the literal path of the
 * <Location> whose SetHandler gcmon-api applies to r, or NULL. */
const char *gcmon_api_mount(request_rec *r);
/* The path below the mount split into at most max segments; -1 when r has no
 * mount or the path is not canonical (empty, ".", "..", still-encoded or
 * control characters in a segment; nothing after the mount). */
int gcmon_api_route_segments(request_rec *r, const char **seg, int max);
/* map_to_storage hook: API requests skip the filesystem walk. */
int gcmon_api_map_to_storage(request_rec *r);

/* The actor of an admin request (mod_gcmon_api_actor.c, SPEC §9.14). OK once
 * established (then gcmon_api_actor/_source answer), or DONE after a 403. */
int gcmon_api_actor_establish(request_rec *r);
/* The established actor, or "-". */
const char *gcmon_api_actor(request_rec *r);
/* How it was established: "user", "header:<Name>", "anonymous", or "-". */
const char *gcmon_api_actor_source(request_rec *r);
gcmon_actor_mode_e gcmon_api_actor_mode(const gcmon_api_conf_t *c);

/* Responses (mod_gcmon_api_handler.c). Each sets r->status, Cache-Control:
 * no-store and X-Content-Type-Options: nosniff, and returns OK. */
void gcmon_api_common_headers(request_rec *r);
int gcmon_api_send_text(request_rec *r, int status, const char *ctype, const char *text,
                        apr_size_t len);
/* A JSON document (reference stolen), application/json; charset=utf-8. */
int gcmon_api_send_json(request_rec *r, int status, json_t *doc);
/* RFC 9457 problem; `errors` (stolen, may be NULL) lists {field,message}. */
int gcmon_api_send_problem(request_rec *r, int status, const char *slug, const char *title,
                           const char *detail, json_t *errors);
/* [{"field": field, "message": message}] */
json_t *gcmon_api_field_error(const char *field, const char *message);
/* gcmon_validation_errors_total{error_type} += 1 */
void gcmon_api_count_validation(const char *type);

/* Map an upstream failure to 502/503 (with Retry-After) problem+json. */
int gcmon_api_send_upstream_error(request_rec *r, const gc_error_t *e);

/* The database connection of this request (mod_dbd), schema checked. NULL
 * when there is none (after a 503 problem was sent, if send_problem). */
struct gc_store *gcmon_api_request_store(request_rec *r, int send_problem);

/* Parse the query string for `fields` (gc_query.h); DONE after a 400 was sent. */
int gcmon_api_parse_query(request_rec *r, unsigned fields, char kind, gc_query_t *q);

/* send_problem with extra top-level members (object, stolen, may be NULL). */
int gcmon_api_send_problem_ex(request_rec *r, int status, const char *slug, const char *title,
                              const char *detail, json_t *errors, json_t *extra);

/* Retry-After: e's retry_after in whole seconds, at least 1. */
void gcmon_api_set_retry_after(request_rec *r, const gc_error_t *e);

/* What gcmon_api_send_upstream_error answers for e. */
void gcmon_api_upstream_problem(const gc_error_t *e, int *status, const char **slug,
                                const char **title);

/* Record an admin action in the audit trail (and, when outbox_target is not
 * NULL, queue its webhook delivery in the same transaction). request/result
 * are borrowed. Failures are logged with the whole record (never lost
 * silently); returns APR_SUCCESS or the store's error. */
apr_status_t gcmon_api_audit(request_rec *r, const char *action, const char *target,
                             const json_t *request, const json_t *result, int status,
                             apr_time_t started, const char *outbox_target,
                             const char *outbox_body);

/* Admin endpoints (mod_gcmon_api_admin.c). */
int gcmon_api_status_get(request_rec *r, const char **params);
int gcmon_api_status_put(request_rec *r, const char **params, json_t *body);
int gcmon_api_audit_list(request_rec *r, const char **params);

/* Read endpoints (mod_gcmon_api_read.c); params are the path's "*" segments. */
int gcmon_api_read_history(request_rec *r, const char **params);
int gcmon_api_read_agents(request_rec *r, const char **params);
int gcmon_api_read_agent(request_rec *r, const char **params);
int gcmon_api_read_alerts(request_rec *r, const char **params);

#endif
