/* mod_gcmon_api: GET /v1/admin/audit, the audit trail of admin actions
 * (SPEC §5.8), paged like the history. */
#include <string.h>

#include <http_protocol.h>

#include "gc_audit.h"
#include "gc_state.h"
#include "gc_store.h"
#include "mod_gcmon_api_private.h"

static json_t *json_or_null(const char *text)
{
    json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return j ? j : json_null();
}

int gcmon_api_audit_get(request_rec *r, const char **params, json_t *body)
{
    gc_query_t q;
    gc_audit_filter_t f;
    apr_array_header_t *rows;
    gc_store_t *st;
    const char *err = NULL;
    json_t *data, *doc;
    long total = 0;
    int has_more = 0, i;

    if (gcmon_api_parse_query(r, GC_Q_AUDIT, GC_CURSOR_AUDIT, &q) != OK
        || !(st = gcmon_api_store(r, 1))) {
        return OK;
    }
    memset(&f, 0, sizeof(f));
    f.actor = q.actor;
    f.action = q.action;
    f.target = q.target;
    f.limit = q.limit;
    f.offset = q.has_cursor ? 0 : q.offset;
    f.before_id = q.has_cursor ? q.cursor.id : 0;
    if (gc_store_audit_list(st, r->pool, &f, &rows, &total, &has_more, &err) != APR_SUCCESS) {
        return gcmon_api_database_error(r, "audit", err);
    }
    data = json_array();
    for (i = 0; i < rows->nelts; i++) {
        const gc_audit_rec_t *a = &APR_ARRAY_IDX(rows, i, gc_audit_rec_t);
        json_array_append_new(data, json_pack(
            "{s:I, s:s, s:s, s:s?, s:s, s:s?, s:o, s:o, s:i, s:I}", "id", (json_int_t)a->id,
            "at", gc_time_format(r->pool, a->at), "actor", a->actor ? a->actor : "-",
            "actor_source", a->actor_source,
            "action", a->action ? a->action : "", "target", a->target,
            "request", json_or_null(a->request), "result", json_or_null(a->result),
            "status", a->status, "latency_ms", (json_int_t)a->latency_ms));
    }
    doc = json_pack("{s:I, s:i, s:o, s:o, s:o}", "total", (json_int_t)total, "limit", q.limit,
                    "offset", q.has_cursor ? json_null() : json_integer(q.offset),
                    "next_cursor", has_more && rows->nelts
                        ? json_string(gc_cursor_encode(r->pool, GC_CURSOR_AUDIT,
                              APR_ARRAY_IDX(rows, rows->nelts - 1, gc_audit_rec_t).at,
                              APR_ARRAY_IDX(rows, rows->nelts - 1, gc_audit_rec_t).id))
                        : json_null(),
                    "data", data);
    return gcmon_api_send_json(r, HTTP_OK, doc);
}
