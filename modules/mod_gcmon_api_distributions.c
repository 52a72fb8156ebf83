/* mod_gcmon_api: GET /v1/admin/distributions[?queue_id=] and
 * /v1/admin/distributions/{id}, the record of weight distributions (SPEC
 * §5.4), paged like the history: the store's page, the glue's envelope. */
#include <string.h>

#include <http_protocol.h>

#include "gc_id.h"
#include "gc_store_distrib.h"
#include "gc_time.h"
#include "mod_gcmon_api_private.h"

static json_t *json_or_null(const char *text)
{
    json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return j ? j : json_null();
}

/* One distribution: its summary, and with `full` its request and result. */
static json_t *distribution_json(request_rec *r, const gc_distrib_rec_t *d, int full)
{
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:o, s:i, s:I}", "id", d->id, "queue_id", d->queue_id,
        "status", d->status, "http_status", d->http_status, "actor", d->actor, "created_at",
        gc_time_format(r->pool, d->at), "members", d->members, "balance_accuracy",
        d->has_accuracy ? json_real(d->balance_accuracy) : json_null(), "upstream_requests",
        d->upstream_requests, "latency_ms", (json_int_t)d->latency_ms);

    if (j && full) {
        json_object_set_new(j, "request", json_or_null(d->request));
        json_object_set_new(j, "result", json_or_null(d->result));
    }
    return j;
}

static json_t *summary_row(request_rec *r, const void *row)
{
    return distribution_json(r, row, 0);
}

int gcmon_api_distributions_get(request_rec *r, const char **params, json_t *body)
{
    gc_query_t q;
    gc_page_t pg;
    struct gc_store *st;
    const char *err = NULL;

    if (gcmon_api_parse_query(r, GC_Q_DISTRIBUTIONS, GC_CURSOR_DISTRIBUTIONS, &q) != OK
        || !(st = gcmon_api_store(r, 1))) {
        return OK;
    }
    if (gc_store_distrib_list(st, r->pool, &q, &pg, &err) != APR_SUCCESS) {
        return gcmon_api_database_error(r, "distributions", err);
    }
    return gcmon_api_send_page(r, &q, &pg, GC_CURSOR_DISTRIBUTIONS, summary_row);
}

/* Distribution ids are "dist-" and hex digits: a Genesys-shaped id. */
int gcmon_api_distribution_get(request_rec *r, const char **params, json_t *body)
{
    gc_distrib_rec_t d;
    struct gc_store *st;
    const char *err = NULL;
    int found = 0;
    json_t *j;

    if (!gc_id_valid(params[0])) {
        return gcmon_api_send_problem(r, HTTP_BAD_REQUEST, "validation_failed", "Invalid request",
                                      "the distribution id must be 1 to 64 letters, digits, "
                                      "'-' or '_'");
    }
    if (!(st = gcmon_api_store(r, 1))) {
        return OK;
    }
    if (gc_store_distrib_get(st, r->pool, params[0], &d, &found, &err) != APR_SUCCESS) {
        return gcmon_api_database_error(r, "distribution", err);
    }
    if (!found) {
        return gcmon_api_send_problem(r, HTTP_NOT_FOUND, "distribution_not_found",
                                      "Unknown distribution", "no weight distribution has this id");
    }
    j = distribution_json(r, &d, 1);
    return gcmon_api_send_json(r, HTTP_OK, j);
}
