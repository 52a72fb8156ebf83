/* mod_gcmon_api: private declarations shared by its glue files.
 *
 * Calls run one way: mod_gcmon_api_routes.c (the table, the handler) → one
 * file per resource (_health, _read, _board, _status, _audit, _upstream, _weights,
 * _distributions, _traces, _strategies) →
 * the HTTP helpers (_http, _mount, _actor) → the core (shared/). A resource
 * never calls another resource, and the helpers call neither. */
#ifndef MOD_GCMON_API_PRIVATE_H
#define MOD_GCMON_API_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <jansson.h>

#include "gc_api_routes.h"
#include "gc_conf.h"
#include "gc_jsonw.h"
#include "gc_log.h"
#include "gc_presence.h"
#include "gc_query.h"
#include "gc_result.h"
#include "gc_store.h"
#include "gc_store_strategy.h"
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

/* GcmonAdminActor: where the actor of an admin action comes from. */
typedef enum {
    GCMON_ACTOR_USER = 0, /* Apache's authenticated r->user (default) */
    GCMON_ACTOR_HEADER,   /* a header set by a trusted reverse proxy */
    GCMON_ACTOR_ANONYMOUS /* nobody: audited as "-" (explicit, warned) */
} gcmon_actor_mode_e;

/* Server configuration (all gcmon directives are global: one org per httpd). */
typedef struct {
    gc_conn_conf_t conn;
    long max_body;                     /* GcmonMaxBody, -1 = unset */
    int conn_configured;               /* any Connection directive seen */
    apr_array_header_t *transitions;   /* GcmonTransition: gc_transition_t */
    int actor_mode;                    /* GcmonAdminActor: gcmon_actor_mode_e, -1 = unset */
    const char *actor_header;          /* its header name (header mode) */
    apr_interval_time_t deadline;      /* GcmonRequestDeadline, -1 = unset */
    const char *inbound_secret;        /* GcmonInboundSecret, NULL: the receiver is off */
    apr_table_t *weight_skills;        /* GcmonWeightSkill: queue id → skill id */
    apr_interval_time_t trace_timeout; /* GcmonTraceTimeout, -1 = unset */
} gcmon_api_conf_t;

/* Per-process runtime, created in child_init. */
typedef struct {
    gcmon_shared_t shared;
    gc_upstream_t *upstream;        /* NULL when no client credentials are configured */
    gc_presence_cache_t *presences; /* the org's presence definitions */
    struct gc_board_cache *board;   /* this process's copy of the board */
} gcmon_api_runtime_t;

/* ---------------------------------------------------------------- module, config */

extern const command_rec gcmon_api_cmds[];
void *gcmon_api_create_server_conf(apr_pool_t *p, server_rec *s);
gcmon_api_conf_t *gcmon_api_conf(void);
long gcmon_api_max_body(const gcmon_api_conf_t *c);
gcmon_actor_mode_e gcmon_api_actor_mode(const gcmon_api_conf_t *c);
apr_interval_time_t gcmon_api_request_deadline(const gcmon_api_conf_t *c);
/* GcmonTraceTimeout, or its default (10 minutes). */
apr_interval_time_t gcmon_api_trace_timeout(const gcmon_api_conf_t *c);
gcmon_api_runtime_t *gcmon_api_runtime(void);
/* The queue's GcmonWeightSkill, or NULL. */
const char *gcmon_api_weight_skill(const gcmon_api_conf_t *c, const char *queue_id);
/* mod_gcmon_api_dbdir.c: HTTP_INTERNAL_SERVER_ERROR (logged, GCM1010) when
 * gcmon's SQLite database cannot be written by the server's run user (at
 * start-up and under apache2 -t), else OK. */
int gcmon_api_dbdir_check(server_rec *s, apr_pool_t *ptemp);

/* ---------------------------------------------------------------- routes */

/* The handler hook (mod_gcmon_api_routes.c). */
int gcmon_api_handler(request_rec *r);

/* Every endpoint: params are the path's "*" segments; body is the admin
 * write's parsed JSON object (NULL for reads and empty bodies). Returns OK
 * once a response was produced. */
typedef int gcmon_api_endpoint_fn(request_rec *r, const char **params, json_t *body);

/* ---------------------------------------------------------------- resources */

gcmon_api_endpoint_fn gcmon_api_health_get; /* mod_gcmon_api_health.c */
gcmon_api_endpoint_fn gcmon_api_metrics_get;
gcmon_api_endpoint_fn gcmon_api_stream_get;
gcmon_api_endpoint_fn gcmon_api_history_get; /* mod_gcmon_api_read.c */
gcmon_api_endpoint_fn gcmon_api_alerts_get;
gcmon_api_endpoint_fn gcmon_api_board_get; /* mod_gcmon_api_board.c */
gcmon_api_endpoint_fn gcmon_api_agent_get;
gcmon_api_endpoint_fn gcmon_api_status_get; /* mod_gcmon_api_status.c */
gcmon_api_endpoint_fn gcmon_api_status_put;
gcmon_api_endpoint_fn gcmon_api_audit_get;      /* mod_gcmon_api_audit.c */
gcmon_api_endpoint_fn gcmon_api_upstream_check; /* mod_gcmon_api_upstream.c */
gcmon_api_endpoint_fn gcmon_api_hooks_genesys;  /* mod_gcmon_api_hooks.c */
gcmon_api_endpoint_fn gcmon_api_weights_post;   /* mod_gcmon_api_weights.c */
gcmon_api_endpoint_fn gcmon_api_weights_get;
gcmon_api_endpoint_fn gcmon_api_distributions_get; /* mod_gcmon_api_distributions.c */
gcmon_api_endpoint_fn gcmon_api_distribution_get;
gcmon_api_endpoint_fn gcmon_api_traces_post; /* mod_gcmon_api_traces.c */
gcmon_api_endpoint_fn gcmon_api_traces_get;
gcmon_api_endpoint_fn gcmon_api_trace_get;
/* mod_gcmon_api_strategies.c (issue 16; declared here ahead of the code) */
gcmon_api_endpoint_fn gcmon_api_strategies_post;
gcmon_api_endpoint_fn gcmon_api_strategies_get;
gcmon_api_endpoint_fn gcmon_api_strategy_get;
gcmon_api_endpoint_fn gcmon_api_strategy_delete;
gcmon_api_endpoint_fn gcmon_api_strategy_rebalance;
gcmon_api_endpoint_fn gcmon_api_strategy_sync;
gcmon_api_endpoint_fn gcmon_api_strategy_latency;
gcmon_api_endpoint_fn gcmon_api_strategy_audit;
/* The strategy document of rec (new reference): GET …/strategies/{id} and
 * the 201 with full 1, a listing's row (summary) with full 0. */
json_t *gcmon_api_strategy_json(request_rec *r, const gc_strategy_rec_t *rec, int full);
gcmon_api_endpoint_fn gcmon_api_strategy_activate; /* mod_gcmon_api_strategy_activate.c */
gcmon_api_endpoint_fn gcmon_api_strategy_route;    /* mod_gcmon_api_route.c */

/* ---------------------------------------------------------------- HTTP helpers */

/* What gcmon learns about one request (its request_config slot). */
typedef struct {
    int mount_resolved;
    const char *mount;
    const char *actor; /* NULL until established */
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
 * established (then gcmon_api_actor/_source answer); else DONE with the 403
 * problem in res. */
int gcmon_api_actor_establish(request_rec *r, gc_result_t *res);
/* The established actor, or "-". */
const char *gcmon_api_actor(request_rec *r);
/* How it was established: "user", "header:<Name>", "anonymous", or "-". */
const char *gcmon_api_actor_source(request_rec *r);

/* Responses (mod_gcmon_api_http.c). Each sets r->status, Cache-Control:
 * no-store and X-Content-Type-Options: nosniff, and returns OK. */
void gcmon_api_common_headers(request_rec *r);
int gcmon_api_send_text(request_rec *r, int status, const char *ctype, const char *text,
                        apr_size_t len);
/* A JSON document (reference stolen), application/json; charset=utf-8. */
int gcmon_api_send_json(request_rec *r, int status, json_t *doc);
/* A streamed JSON document (the writer's buffer is handed to httpd). */
int gcmon_api_send_jw(request_rec *r, gc_jw_t *w);
/* RFC 9457 problem without field errors. */
int gcmon_api_send_problem(request_rec *r, int status, const char *slug, const char *title,
                           const char *detail);
/* A core result: its document or problem, ETag, Retry-After, and the
 * validation-error metric. */
int gcmon_api_send_result(request_rec *r, gc_result_t *res);
/* 304 with the validator and no body. */
int gcmon_api_not_modified(request_rec *r, const char *etag);
/* gcmon_validation_errors_total{error_type} += 1 */
void gcmon_api_count_validation(const char *type);

/* The admin-write guard (SPEC §5): cross-site refusal, X-Gcmon-Request, JSON
 * only, GcmonMaxBody, one strict JSON object. OK with *body (new reference,
 * NULL for an empty body), or DONE after the refusal was sent. */
int gcmon_api_admin_guard(request_rec *r, json_t **body);

/* A signed webhook's raw body (JSON only, at most GcmonMaxBody): OK, or DONE
 * after the 400/413/415 problem. */
int gcmon_api_raw_body(request_rec *r, const char **buf, apr_size_t *len);

/* Parse the query string for `fields` (gc_query.h); DONE after a 400 was sent. */
int gcmon_api_parse_query(request_rec *r, unsigned fields, char kind, gc_query_t *q);

/* The envelope of a paged listing (SPEC §5.1): {"total","limit","offset",
 * "next_cursor","data":[ — the caller writes the rows and "]}". */
void gcmon_api_page_head(request_rec *r, gc_jw_t *w, const gc_query_t *q, const gc_page_t *pg,
                         char kind);

/* One row of a listing as JSON (a new reference, NULL on failure). */
typedef json_t *gcmon_api_row_fn(request_rec *r, const void *row);

/* Send a whole page: the envelope, then each of pg's rows (elements of
 * row_size bytes) as row() renders it; 500 when one cannot be encoded. */
int gcmon_api_send_page(request_rec *r, const gc_query_t *q, const gc_page_t *pg, char kind,
                        gcmon_api_row_fn *row);

/* This request's database connection (mod_dbd) with the schema checked: a
 * store (writes and reads) that lives as long as the connection. NULL after a
 * 503 was sent (when send_problem). */
struct gc_store *gcmon_api_store(request_rec *r, int send_problem);
/* 500 database_error for a failed query, logged with `what`. */
int gcmon_api_database_error(request_rec *r, const char *what, const char *err);

/* When the upstream work of this request must end (SPEC §9.16): the request's
 * start + GcmonRequestDeadline; for gc_request_t.deadline. */
apr_time_t gcmon_api_deadline(request_rec *r);

/* Upstream client and presence cache are configured; else a 503 problem in res. */
int gcmon_api_upstream_ready(gc_result_t *res);

/* Record an admin action in the audit trail (and, when outbox_target is not
 * NULL, queue its webhook delivery in the same transaction), with the
 * request's actor. A failure is logged with the whole record, never lost
 * silently. */
apr_status_t gcmon_api_audit(request_rec *r, const char *action, const char *target,
                             const json_t *request, const json_t *result, int status,
                             apr_time_t started, const char *outbox_target,
                             const char *outbox_body);

struct gc_audit_rec;

/* A resource's own row and the audit row *a (with its outbox delivery) in
 * one transaction (e.g. gc_store_distrib_add). */
typedef apr_status_t gcmon_api_audit_store_fn(struct gc_store *st, apr_pool_t *p,
                                              struct gc_audit_rec *a, const char *outbox_target,
                                              const char *outbox_body, void *baton,
                                              const char **err);

/* gcmon_api_audit with the rows written by store (NULL: the audit row alone). */
apr_status_t gcmon_api_audit_with(request_rec *r, const char *action, const char *target,
                                  const json_t *request, const json_t *result, int status,
                                  apr_time_t started, const char *outbox_target,
                                  const char *outbox_body, gcmon_api_audit_store_fn *store,
                                  void *baton);

/* Is the outbound webhook `target` configured (mod_gcmon_stream)? */
int gcmon_api_webhook_configured(const char *target);

#endif
