/* mod_gcmon_api: GET /v1/admin/audit, the audit trail of admin actions
 * (SPEC §5.8), paged like the history: the store's page, the glue's envelope
 * (gcmon_api_page_head). */
#include <stdlib.h>
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

/* One audit row, dumped by jansson like the rest of the admin API's JSON
 * (the request/result objects are re-encoded, non-ASCII escaped). */
static int audit_item(request_rec *r, gc_jw_t *w, const gc_audit_rec_t *a)
{
    json_t *row =
        json_pack("{s:I, s:s, s:s, s:s?, s:s, s:s?, s:o, s:o, s:i, s:I}", "id", (json_int_t)a->id,
                  "at", gc_time_format(r->pool, a->at), "actor", a->actor ? a->actor : "-",
                  "actor_source", a->actor_source, "action", a->action ? a->action : "", "target",
                  a->target, "request", json_or_null(a->request), "result", json_or_null(a->result),
                  "status", a->status, "latency_ms", (json_int_t)a->latency_ms);
    char *text = row ? json_dumps(row, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

    json_decref(row);
    if (!text) {
        return 0;
    }
    gc_jw_raw(w, text, strlen(text));
    free(text);
    return 1;
}

int gcmon_api_audit_get(request_rec *r, const char **params, json_t *body)
{
    gc_query_t q;
    gc_page_t pg;
    gc_store_t *st;
    const char *err = NULL;
    gc_jw_t w;
    int i;

    if (gcmon_api_parse_query(r, GC_Q_AUDIT, GC_CURSOR_AUDIT, &q) != OK
        || !(st = gcmon_api_store(r, 1))) {
        return OK;
    }
    if (gc_store_audit_list(st, r->pool, &q, &pg, &err) != APR_SUCCESS) {
        return gcmon_api_database_error(r, "audit", err);
    }
    gc_jw_init(&w, 512 + (apr_size_t)pg.rows->nelts * 512);
    gcmon_api_page_head(r, &w, &q, &pg, GC_CURSOR_AUDIT);
    for (i = 0; i < pg.rows->nelts; i++) {
        if (i) {
            gc_jw_lit(&w, ",");
        }
        if (!audit_item(r, &w, &APR_ARRAY_IDX(pg.rows, i, gc_audit_rec_t))) {
            gc_jw_free(&w);
            return gcmon_api_send_problem(r, HTTP_INTERNAL_SERVER_ERROR, "internal",
                                          "Internal error", "response could not be encoded");
        }
    }
    gc_jw_lit(&w, "]}");
    return gcmon_api_send_jw(r, &w);
}
