/* mod_gcmon_api: GET /v1/admin/audit, the audit trail of admin actions
 * (SPEC §5.8), paged like the history: the store's page, the glue's envelope
 * (gcmon_api_page_head). */
#include <string.h>

#include <http_protocol.h>

#include "gc_audit.h"
#include "gc_state.h"
#include "gc_store.h"
#include "gc_time.h"
#include "mod_gcmon_api_private.h"

static json_t *json_or_null(const char *text)
{
    json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return j ? j : json_null();
}

/* One audit row (the request/result objects re-encoded, non-ASCII escaped
 * like the rest of the admin API's JSON). */
static json_t *audit_row(request_rec *r, const void *row)
{
    const gc_audit_rec_t *a = row;

    return json_pack("{s:I, s:s, s:s, s:s?, s:s, s:s?, s:o, s:o, s:i, s:I}", "id",
                     (json_int_t)a->id, "at", gc_time_format(r->pool, a->at), "actor",
                     a->actor ? a->actor : "-", "actor_source", a->actor_source, "action",
                     a->action ? a->action : "", "target", a->target, "request",
                     json_or_null(a->request), "result", json_or_null(a->result), "status",
                     a->status, "latency_ms", (json_int_t)a->latency_ms);
}

int gcmon_api_audit_get(request_rec *r, const char **params, json_t *body)
{
    gc_query_t q;
    gc_page_t pg;
    gc_store_t *st;
    const char *err = NULL;

    if (gcmon_api_parse_query(r, GC_Q_AUDIT, GC_CURSOR_AUDIT, &q) != OK
        || !(st = gcmon_api_store(r, 1))) {
        return OK;
    }
    if (gc_store_audit_list(st, r->pool, &q, &pg, &err) != APR_SUCCESS) {
        return gcmon_api_database_error(r, "audit", err);
    }
    return gcmon_api_send_page(r, &q, &pg, GC_CURSOR_AUDIT, audit_row);
}
