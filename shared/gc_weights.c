#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <openssl/evp.h>

#include "gc_body.h"
#include "gc_id.h"
#include "gc_log.h"
#include "gc_utf8.h"
#include "gc_weights.h"

#define FIELD_KEY_MAX_BYTES 64
#define METHOD "skillEvaluationMethod"

/* One requested member. */
typedef struct {
    const char *user_id;
    double weight;      /* requested */
    double proficiency; /* to apply: round(5w, 2) */
    int had;            /* the user had the skill before */
    gc_weights_skill_t old;
} target_t;

/* One distribution in flight. */
typedef struct {
    apr_pool_t *p;
    const gc_weights_ops_t *ops;
    const gc_weights_req_t *req;
    gc_result_t *res;
    gc_weights_out_t *out;
    const char *skill;
    double overflow, util, load;
    int has_load;
    target_t *t;
    size_t n;
    int active;
    double capacity;
    json_t *saturation;      /* {active_agents, capacity, projected_load, ratio} */
    const char *orig_method; /* the queue's skillEvaluationMethod before, or NULL */
    int queue_written;
    apr_time_t started;
    int preview;                 /* gc_weights_preview: no distribution */
    apr_array_header_t *members; /* gc_weights_member_t, every page */
} run_t;

static const gc_body_field_t body_fields[] = {
    { "member_weights", GC_BODY_OBJECT, GC_BODY_REQUIRED | GC_BODY_BOUNDED, 1,
      GC_WEIGHTS_MAX_MEMBERS, NULL /* set below: check_weights */ },
    { "overflow_threshold", GC_BODY_NUMBER, GC_BODY_REQUIRED | GC_BODY_BOUNDED, 0, 1, NULL },
    { "utilization_target", GC_BODY_NUMBER, GC_BODY_REQUIRED | GC_BODY_BOUNDED, 0, 1, NULL },
    { "strategy_reference", GC_BODY_STRING, GC_BODY_BOUNDED, 0, GC_WEIGHTS_MAX_REFERENCE, NULL },
    { "skill_id", GC_BODY_STRING, 0, 0, 0, NULL /* check_id */ },
    { "projected_load", GC_BODY_NUMBER, GC_BODY_BOUNDED, 0, GC_WEIGHTS_MAX_LOAD, NULL },
};
#define N_FIELDS (sizeof(body_fields) / sizeof(body_fields[0]))

#define ID_MESSAGE "must be 1 to 64 letters, digits, '-' or '_'"

/* ---------------------------------------------------------------- helpers */

static apr_time_t now(const run_t *r)
{
    return r->ops->now ? r->ops->now(r->ops->baton) : apr_time_now();
}

static double round_to(double x, double scale)
{
    return round(x * scale) / scale;
}

double gc_weights_proficiency(double w)
{
    return round_to(5.0 * w, 100.0);
}

/* A proficiency in weight units, 3 decimals (0.01 / 5 = 0.002). */
static double weight_of(double proficiency)
{
    return round_to(proficiency / 5.0, 1000.0);
}

double gc_weights_balance_accuracy(const double *requested, const double *applied, size_t n)
{
    double sum = 0, diff = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        sum += requested[i];
        diff += fabs(requested[i] - applied[i]);
    }
    if (sum <= 0) {
        return 100.0;
    }
    return round_to(100.0 * (1.0 - diff / sum), 100.0);
}

int gc_weights_estimate_requests(int n_members)
{
    int n = n_members > 0 ? n_members : 0;
    int pages = n / GC_WEIGHTS_MEMBERS_PAGE_SIZE + (n % GC_WEIGHTS_MEMBERS_PAGE_SIZE ? 1 : 0);

    return (pages ? pages : 1) + 1 + n + 2 + n;
}

int gc_weights_max_requests(int n_members)
{
    int n = n_members > 0 ? n_members : 0;

    return gc_weights_estimate_requests(n) + 2 + n + 4;
}

const char *gc_weights_request_hash(apr_pool_t *p, const char *queue_id, const json_t *body)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    char *text, *out;
    EVP_MD_CTX *ctx;
    int ok;

    text = body ? json_dumps(body, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
    if (!text) {
        return NULL;
    }
    ctx = EVP_MD_CTX_new();
    ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)
         && EVP_DigestUpdate(ctx, queue_id ? queue_id : "", queue_id ? strlen(queue_id) : 0)
         && EVP_DigestUpdate(ctx, "\n", 1) && EVP_DigestUpdate(ctx, text, strlen(text))
         && EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    free(text);
    if (!ok) {
        return NULL;
    }
    out = apr_palloc(p, 2 * mdlen + 1);
    for (i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xF];
    }
    out[2 * mdlen] = '\0';
    return out;
}

const char *gc_weights_new_id(apr_pool_t *p)
{
    return gc_id_random(p, "dist");
}

/* "member_weights.<key>", the key cut to 64 bytes on a character boundary. */
static const char *weight_field(apr_pool_t *p, const char *key)
{
    apr_size_t len = strlen(key), cut = 0;

    while (cut < len) {
        apr_size_t n = gc_utf8_seq((const unsigned char *)key + cut, len - cut);
        if (n == 0 || cut + n > FIELD_KEY_MAX_BYTES) {
            break;
        }
        cut += n;
    }
    return apr_pstrcat(p, "member_weights.", apr_pstrmemdup(p, key, cut), cut == len ? "" : "...",
                       NULL);
}

/* ---------------------------------------------------------------- validation */

static void check_weights(gc_result_t *res, const gc_body_field_t *f, const json_t *value,
                          void *baton)
{
    const char *key;
    json_t *v;
    double sum = 0;

    json_object_foreach((json_t *)value, key, v)
    {
        const char *field = weight_field(res->pool, key);
        double w;

        if (!gc_id_valid(key)) {
            gc_body_error(res, field, "invalid_value", "is not a user id: " ID_MESSAGE);
            continue;
        }
        if (!json_is_number(v)) {
            gc_body_error(res, field, "invalid_type", "must be a number");
            continue;
        }
        w = json_number_value(v);
        if (!(w >= 0 && w <= 1)) {
            gc_body_error(res, field, "invalid_value", "must be between 0 and 1");
            continue;
        }
        sum += w;
    }
    if (sum > 1.0 + GC_WEIGHTS_SUM_EPSILON) {
        gc_body_error(res, f->name, "invalid_value", "must sum to at most 1");
    }
}

static void check_id(gc_result_t *res, const gc_body_field_t *f, const json_t *value, void *baton)
{
    if (!gc_id_valid(json_string_value(value))) {
        gc_body_error(res, f->name, "invalid_value", ID_MESSAGE);
    }
}

int gc_weights_validate(gc_result_t *res, const char *queue_id, const json_t *body,
                        const char *default_skill)
{
    size_t before = res->errors ? json_array_size(res->errors) : 0, i, n;
    gc_body_field_t fields[N_FIELDS];
    const json_t *skill;

    memcpy(fields, body_fields, sizeof(fields));
    for (i = 0; i < N_FIELDS; i++) {
        if (!strcmp(fields[i].name, "member_weights")) {
            fields[i].check = check_weights;
        }
        else if (!strcmp(fields[i].name, "skill_id")) {
            fields[i].check = check_id;
        }
    }
    if (!queue_id || !gc_id_valid(queue_id)) {
        gc_body_error(res, "queue_id", "invalid_value", "in the path " ID_MESSAGE);
    }
    if (body && !json_is_object(body)) {
        gc_body_error(res, "body", "invalid_type", "must be a JSON object");
    }
    else {
        gc_body_validate(res, body, fields, N_FIELDS, NULL);
        skill = body ? json_object_get(body, "skill_id") : NULL;
        if ((!skill || json_is_null(skill)) && (!default_skill || !gc_id_valid(default_skill))) {
            gc_body_error(res, "skill_id", "missing_field",
                          "is required: no valid GcmonWeightSkill is set for this queue");
        }
    }
    n = (res->errors ? json_array_size(res->errors) : 0) - before;
    if (n) {
        gc_body_fail(res, 422);
    }
    return (int)n;
}

static json_t *audit_weights(const json_t *v)
{
    json_t *out, *w;
    const char *key;

    if (!json_is_object(v) || json_object_size(v) > GC_WEIGHTS_MAX_MEMBERS) {
        return json_string("(invalid)");
    }
    out = json_object();
    json_object_foreach((json_t *)v, key, w)
    {
        if (gc_id_valid(key)) {
            json_object_set_new(out, key, json_is_number(w) ? json_incref(w) : json_null());
        }
    }
    return out;
}

json_t *gc_weights_audit_request(const json_t *body)
{
    json_t *out = json_object(), *v;
    size_t i;

    for (i = 0; i < N_FIELDS; i++) {
        const char *name = body_fields[i].name;
        v = json_is_object(body) ? json_object_get(body, name) : NULL;
        if (!v) {
            continue;
        }
        if (!strcmp(name, "member_weights")) {
            json_object_set_new(out, name, audit_weights(v));
        }
        else if (json_is_number(v) || json_is_null(v)
                 || (json_is_string(v) && gc_body_chars(v) <= GC_WEIGHTS_MAX_REFERENCE)) {
            json_object_set(out, name, v);
        }
        else {
            json_object_set_new(out, name,
                                json_string(json_is_string(v) ? "(too long)" : "(not a scalar)"));
        }
    }
    return out;
}

/* ---------------------------------------------------------------- outcomes */

/* Set the outcome's status; a problem gets the distribution's members. */
static void finish(run_t *r, const char *status)
{
    r->out->status = status;
    if (gc_result_failed(r->res) && r->preview) {
        gc_result_extra(r->res, "upstream_requests", json_integer(r->out->upstream_requests));
    }
    else if (gc_result_failed(r->res)) {
        gc_result_extra(r->res, "id", json_string(r->out->id));
        gc_result_extra(r->res, "queue_id",
                        gc_id_valid(r->req->queue_id) ? json_string(r->req->queue_id) : NULL);
        gc_result_extra(r->res, "status", json_string(status));
        gc_result_extra(r->res, "upstream_requests", json_integer(r->out->upstream_requests));
    }
}

static const gc_error_t *or_unknown(const gc_error_t *e)
{
    static const gc_error_t unknown = { .kind = GC_ERR_PROTOCOL,
                                        .message = "the upstream call failed" };
    return e ? e : &unknown;
}

static const char *err_text(apr_pool_t *p, const gc_error_t *e)
{
    e = or_unknown(e);
    return e->message ? e->message : gc_err_kind_name(e->kind);
}

/* A read before any write failed. */
static void read_failed(run_t *r, const gc_error_t *e, const char *doing, int members)
{
    e = or_unknown(e);
    if (e->deadline_cut || e->kind == GC_ERR_THROTTLED || e->kind == GC_ERR_BUDGET) {
        gc_result_upstream(r->res, e);
    }
    else if (e->kind == GC_ERR_NOT_FOUND && members) {
        gc_result_problem(r->res, 404, "queue_not_found", "Unknown queue",
                          apr_psprintf(r->p, "Genesys Cloud has no queue %s", r->req->queue_id));
    }
    else {
        gc_result_problem(r->res, 502, "projection_failed", "The saturation projection failed",
                          apr_psprintf(r->p, "%s: %s", doing, err_text(r->p, e)));
    }
    finish(r, "projection_failed");
}

/* ---------------------------------------------------------------- the steps */

static int parse_request(run_t *r)
{
    const json_t *b = r->req->body;
    json_t *weights = json_object_get(b, "member_weights"), *v;
    const char *key, *skill = json_string_value(json_object_get(b, "skill_id"));
    size_t i = 0;

    r->skill = skill ? skill : r->req->default_skill;
    r->overflow = json_number_value(json_object_get(b, "overflow_threshold"));
    r->util = json_number_value(json_object_get(b, "utilization_target"));
    v = json_object_get(b, "projected_load");
    r->has_load = json_is_number(v);
    r->load = r->has_load ? json_number_value(v) : 0;
    r->n = json_object_size(weights);
    r->t = apr_pcalloc(r->p, r->n * sizeof(*r->t));
    json_object_foreach(weights, key, v)
    {
        r->t[i].user_id = key;
        r->t[i].weight = json_number_value(v);
        r->t[i].proficiency = gc_weights_proficiency(r->t[i].weight);
        i++;
    }
    return 1;
}

static int is_active(const gc_weights_member_t *m)
{
    return m->joined && (!m->routing_status || strcmp(m->routing_status, "OFF_QUEUE"));
}

/* Every page of the members into r->members, and the active count. */
static int list_members(run_t *r)
{
    int page, more = 1;

    r->members = apr_array_make(r->p, 16, sizeof(gc_weights_member_t));

    for (page = 1; more; page++) {
        apr_array_header_t *list = NULL;
        gc_error_t *err = NULL;
        int j;

        if (page > GC_WEIGHTS_MAX_MEMBER_PAGES) {
            gc_error_t e = { .kind = GC_ERR_PROTOCOL, .message = "the listing did not end" };
            read_failed(r, &e, "reading the queue's members", 0);
            return 0;
        }
        more = 0;
        r->out->upstream_requests++;
        if (r->ops->members_page(r->ops->baton, r->p, r->req->queue_id, page, &list, &more, &err)
            != APR_SUCCESS) {
            read_failed(r, err, "reading the queue's members", 1);
            return 0;
        }
        for (j = 0; list && j < list->nelts; j++) {
            const gc_weights_member_t *m = &APR_ARRAY_IDX(list, j, gc_weights_member_t);
            gc_weights_member_t *copy;

            if (!m->user_id) {
                continue;
            }
            copy = apr_array_push(r->members);
            copy->user_id = apr_pstrdup(r->p, m->user_id);
            copy->joined = m->joined;
            copy->routing_status = m->routing_status ? apr_pstrdup(r->p, m->routing_status) : NULL;
            copy->name = m->name ? apr_pstrdup(r->p, m->name) : NULL;
            r->active += is_active(m);
        }
    }
    return 1;
}

/* Every page of the members: each requested user a member, the active count. */
static int read_members(run_t *r)
{
    apr_hash_t *members = apr_hash_make(r->p);
    int bad = 0, j;
    size_t i;

    if (!list_members(r)) {
        return 0;
    }
    for (j = 0; j < r->members->nelts; j++) {
        apr_hash_set(members, APR_ARRAY_IDX(r->members, j, gc_weights_member_t).user_id,
                     APR_HASH_KEY_STRING, "");
    }
    for (i = 0; i < r->n; i++) {
        if (!apr_hash_get(members, r->t[i].user_id, APR_HASH_KEY_STRING)) {
            gc_body_error(r->res, weight_field(r->p, r->t[i].user_id), "not_a_member",
                          "is not a member of the queue");
            bad++;
        }
    }
    if (bad) {
        gc_body_fail(r->res, 422);
        finish(r, "validation_failed");
        return 0;
    }
    return 1;
}

/* SPEC §3.4's saturation projection: 409 when above the threshold. */
static int project(run_t *r)
{
    double ratio = 0;
    int blocked;

    if (!r->has_load) {
        double interacting = 0, waiting = 0;
        gc_error_t *err = NULL;

        r->out->upstream_requests++;
        if (r->ops->observations(r->ops->baton, r->p, r->req->queue_id, &interacting, &waiting,
                                 &err)
            != APR_SUCCESS) {
            read_failed(r, err, "reading the queue's observations", 0);
            return 0;
        }
        r->load = interacting + waiting;
    }
    r->capacity = r->active * r->util;
    blocked = !(r->capacity > 0);
    if (!blocked) {
        ratio = r->load / r->capacity;
        blocked = ratio > r->overflow;
    }
    r->saturation = json_pack("{s:i, s:f, s:f, s:o}", "active_agents", r->active, "capacity",
                              r->capacity, "projected_load", r->load, "ratio",
                              blocked && !(r->capacity > 0) ? json_null() : json_real(ratio));
    if (!blocked) {
        return 1;
    }
    gc_result_problem(
        r->res, 409, "saturation_blocked", "The queue would be saturated",
        r->capacity > 0
            ? apr_psprintf(r->p,
                           "the projected load %g over the capacity %g (%d active agents at "
                           "utilization %g) is %g, above the overflow threshold %g; nothing "
                           "was changed",
                           r->load, r->capacity, r->active, r->util, ratio, r->overflow)
            : apr_psprintf(r->p,
                           "the queue has no capacity (%d active agents at utilization %g); "
                           "nothing was changed",
                           r->active, r->util));
    gc_result_extra(r->res, "saturation", json_incref(r->saturation));
    gc_result_error_type(r->res, "saturation_blocked");
    finish(r, "saturation_blocked");
    return 0;
}

/* The n users' entries of the skill, in one batch; the first failure (in
 * the users' order) answers. */
static gc_weights_read_t *fetch_skills(run_t *r, const char *const *users, size_t n)
{
    gc_weights_read_t *items = apr_pcalloc(r->p, (n ? n : 1) * sizeof(*items));
    size_t i;

    for (i = 0; i < n; i++) {
        items[i].user_id = users[i];
        items[i].rv = APR_EGENERAL; /* a read the glue leaves unset failed */
    }
    r->out->upstream_requests += (int)n;
    if (n) {
        r->ops->get_skills(r->ops->baton, r->p, r->skill, items, n);
    }
    for (i = 0; i < n; i++) {
        if (items[i].rv != APR_SUCCESS) {
            read_failed(r, items[i].err,
                        apr_psprintf(r->p, "reading the skills of %s", items[i].user_id), 0);
            return NULL;
        }
        if (items[i].present && items[i].skill.state) {
            items[i].skill.state = apr_pstrdup(r->p, items[i].skill.state);
        }
    }
    return items;
}

static int read_skills(run_t *r)
{
    const char **users = apr_pcalloc(r->p, (r->n ? r->n : 1) * sizeof(*users));
    gc_weights_read_t *items;
    size_t i;

    for (i = 0; i < r->n; i++) {
        users[i] = r->t[i].user_id;
    }
    if (!(items = fetch_skills(r, users, r->n))) {
        return 0;
    }
    for (i = 0; i < r->n; i++) {
        r->t[i].had = items[i].present;
        r->t[i].old = items[i].skill;
    }
    return 1;
}

static int same_method(const json_t *queue, const char *method)
{
    const char *cur = json_string_value(json_object_get(queue, METHOD));

    return method ? cur && !strcmp(cur, method) : !json_object_get(queue, METHOD);
}

/* Read-modify-write of the queue's skillEvaluationMethod (NULL: remove it),
 * every other member as read (version included); one retry on 409. *first
 * (when given) gets the first read. *wrote 1 when a PUT succeeded. */
static apr_status_t set_method(run_t *r, const char *method, json_t **first, int *wrote,
                               gc_error_t **err)
{
    int attempt;

    *wrote = 0;
    for (attempt = 0; attempt < 2; attempt++) {
        json_t *q = NULL, *body;
        apr_status_t rv;

        r->out->upstream_requests++;
        if (r->ops->get_queue(r->ops->baton, r->p, r->req->queue_id, &q, err) != APR_SUCCESS) {
            json_decref(q);
            return APR_EGENERAL;
        }
        if (!json_is_object(q)) {
            static gc_error_t bad = { .kind = GC_ERR_PROTOCOL,
                                      .message = "the queue is not a JSON object" };
            json_decref(q);
            *err = &bad;
            return APR_EGENERAL;
        }
        if (first && !*first) {
            *first = json_incref(q);
        }
        if (same_method(q, method)) {
            json_decref(q);
            return APR_SUCCESS;
        }
        body = json_deep_copy(q);
        json_decref(q);
        if (method) {
            json_object_set_new(body, METHOD, json_string(method));
        }
        else {
            json_object_del(body, METHOD);
        }
        r->out->upstream_requests++;
        r->out->writes++;
        *err = NULL;
        rv = r->ops->put_queue(r->ops->baton, r->p, r->req->queue_id, body, err);
        json_decref(body);
        if (rv == APR_SUCCESS) {
            *wrote = 1;
            return APR_SUCCESS;
        }
        if (!*err || (*err)->status != 409) {
            return rv;
        }
    }
    return APR_EGENERAL;
}

static int update_queue(run_t *r)
{
    json_t *first = NULL;
    gc_error_t *err = NULL;
    const char *m;

    if (set_method(r, "BEST", &first, &r->queue_written, &err) != APR_SUCCESS) {
        json_decref(first);
        gc_result_problem(r->res, 502, "queue_update_failed",
                          "The queue's skill evaluation could not be set",
                          apr_psprintf(r->p,
                                       "setting skillEvaluationMethod BEST on the queue failed "
                                       "(%s); no member was changed",
                                       err_text(r->p, err)));
        if (err && err->retry_after > 0) {
            r->res->retry_after = err->retry_after;
        }
        finish(r, "queue_update_failed");
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(1402) "weight distribution %s on queue %s failed: queue update: %s",
               r->out->id, r->req->queue_id, err_text(r->p, err));
        return 0;
    }
    m = json_string_value(json_object_get(first, METHOD));
    r->orig_method = m ? apr_pstrdup(r->p, m) : NULL;
    json_decref(first);
    return 1;
}

/* A failed write that may still have landed upstream. */
static int ambiguous(const gc_error_t *e)
{
    if (!e) {
        return 1;
    }
    switch (e->kind) {
    case GC_ERR_CONNECT:
    case GC_ERR_TIMEOUT:
    case GC_ERR_SERVER:
    case GC_ERR_CANCELLED:
    case GC_ERR_PROTOCOL: return 1;
    default: return 0;
    }
}

static void success(run_t *r)
{
    json_t *applied = json_object(), *doc;
    double *req = apr_palloc(r->p, (r->n ? r->n : 1) * sizeof(double));
    double *app = apr_palloc(r->p, (r->n ? r->n : 1) * sizeof(double));
    size_t i;

    for (i = 0; i < r->n; i++) {
        req[i] = r->t[i].weight;
        app[i] = weight_of(r->t[i].proficiency);
        json_object_set_new(applied, r->t[i].user_id, json_real(app[i]));
    }
    doc = json_pack("{s:s, s:s, s:s, s:o, s:o, s:f, s:f, s:O, s:f, s:I, s:i}", "id", r->out->id,
                    "queue_id", r->req->queue_id, "status", "completed", "requested_weights",
                    json_deep_copy(json_object_get(r->req->body, "member_weights")),
                    "applied_weights", applied, "overflow_threshold", r->overflow,
                    "utilization_target", r->util, "saturation", r->saturation, "balance_accuracy",
                    gc_weights_balance_accuracy(req, app, r->n), "latency_ms",
                    (json_int_t)((now(r) - r->started) / 1000), "upstream_requests",
                    r->out->upstream_requests);
    gc_result_ok(r->res, 200, doc);
    finish(r, "completed");
    gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
           GCMON_LOGNO(1401) "weight distribution %s on queue %s: %d members, skill %s, "
                             "%d upstream requests",
           r->out->id, r->req->queue_id, (int)r->n, r->skill, r->out->upstream_requests);
}

/* Undo: the members written (and those that may have been), then the queue. */
static void rollback(run_t *r, const gc_weights_write_result_t *results, const char *why)
{
    gc_weights_write_t *items = apr_pcalloc(r->p, r->n * sizeof(*items));
    gc_weights_write_result_t *rr = apr_pcalloc(r->p, r->n * sizeof(*rr));
    size_t *which = apr_pcalloc(r->p, r->n * sizeof(*which));
    json_t *applied = json_array(), *failed = json_array(), *rolled = json_array(),
           *rb_failed = json_array();
    size_t i, m = 0;
    int restored = 1;

    for (i = 0; i < r->n; i++) {
        int ok = results[i].rv == APR_SUCCESS;
        json_array_append_new(ok ? applied : failed, json_string(r->t[i].user_id));
        if (ok || ambiguous(results[i].err)) {
            items[m].user_id = r->t[i].user_id;
            items[m].skill_id = r->skill;
            items[m].remove = !r->t[i].had;
            items[m].proficiency = r->t[i].had ? r->t[i].old.proficiency : 0;
            items[m].state = r->t[i].had && r->t[i].old.state ? r->t[i].old.state : "active";
            rr[m].rv = APR_EGENERAL;
            which[m++] = i;
        }
    }
    if (m) {
        r->out->upstream_requests += (int)m;
        r->out->writes += (int)m;
        r->ops->put_skills(r->ops->baton, r->p, items, m, rr);
    }
    for (i = 0; i < m; i++) {
        json_array_append_new(rr[i].rv == APR_SUCCESS ? rolled : rb_failed,
                              json_string(r->t[which[i]].user_id));
    }
    if (r->queue_written) {
        gc_error_t *err = NULL;
        int wrote = 0;
        restored = set_method(r, r->orig_method, NULL, &wrote, &err) == APR_SUCCESS;
        if (!restored) {
            gc_log(GC_LOG_MARK, GC_LOG_ERR, 0,
                   GCMON_LOGNO(1403) "weight distribution %s: restoring queue %s's "
                                     "skillEvaluationMethod to %s failed: %s",
                   r->out->id, r->req->queue_id, r->orig_method ? r->orig_method : "(none)",
                   err_text(r->p, err));
        }
    }
    if (json_array_size(rb_failed)) {
        gc_log(GC_LOG_MARK, GC_LOG_ERR, 0,
               GCMON_LOGNO(1404) "weight distribution %s on queue %s: %d members could not be "
                                 "restored to their previous proficiency of skill %s",
               r->out->id, r->req->queue_id, (int)json_array_size(rb_failed), r->skill);
    }
    gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
           GCMON_LOGNO(1402) "weight distribution %s on queue %s failed: member update: %s",
           r->out->id, r->req->queue_id, why);
    gc_result_problem(
        r->res, 502, "member_update_failed", "A member's proficiency could not be set",
        apr_psprintf(r->p, "%d of %d member updates failed (first: %s); %s",
                     (int)json_array_size(failed), (int)r->n, why,
                     json_array_size(rb_failed) || !restored
                         ? "the rollback was incomplete (see rollback_failed, queue_restored)"
                         : "every change was rolled back"));
    gc_result_extra(r->res, "applied", applied);
    gc_result_extra(r->res, "failed", failed);
    gc_result_extra(r->res, "rolled_back", rolled);
    gc_result_extra(r->res, "rollback_failed", rb_failed);
    gc_result_extra(r->res, "queue_restored", json_boolean(restored));
    finish(r, "member_update_failed");
}

static void apply_members(run_t *r)
{
    gc_weights_write_t *items = apr_pcalloc(r->p, r->n * sizeof(*items));
    gc_weights_write_result_t *results = apr_pcalloc(r->p, r->n * sizeof(*results));
    const char *why = NULL;
    size_t i;

    for (i = 0; i < r->n; i++) {
        items[i].user_id = r->t[i].user_id;
        items[i].skill_id = r->skill;
        items[i].proficiency = r->t[i].proficiency;
        items[i].state = r->t[i].had && r->t[i].old.state ? r->t[i].old.state : "active";
        results[i].rv = APR_EGENERAL; /* a result the glue leaves unset is a failure */
    }
    r->out->upstream_requests += (int)r->n;
    r->out->writes += (int)r->n;
    r->ops->put_skills(r->ops->baton, r->p, items, r->n, results);
    for (i = 0; i < r->n && !why; i++) {
        if (results[i].rv != APR_SUCCESS) {
            why = apr_psprintf(r->p, "%s: %s", r->t[i].user_id, err_text(r->p, results[i].err));
        }
    }
    if (why) {
        rollback(r, results, why);
    }
    else {
        success(r);
    }
}

void gc_weights_distribute(apr_pool_t *p, const gc_weights_ops_t *ops, const gc_weights_req_t *req,
                           gc_result_t *res, gc_weights_out_t *out)
{
    run_t r;

    memset(&r, 0, sizeof(r));
    memset(out, 0, sizeof(*out));
    r.p = p;
    r.ops = ops;
    r.req = req;
    r.res = res;
    r.out = out;
    r.started = now(&r);
    out->id = req->id ? req->id : gc_weights_new_id(p);
    if (gc_weights_validate(res, req->queue_id, req->body, req->default_skill)) {
        finish(&r, "validation_failed");
        return;
    }
    if (parse_request(&r) && read_members(&r) && project(&r) && read_skills(&r)
        && update_queue(&r)) {
        apply_members(&r);
    }
    json_decref(r.saturation);
}

/* ---------------------------------------------------------------- preview */

static json_t *preview_member(const gc_weights_member_t *m, const gc_weights_read_t *sk)
{
    return json_pack("{s:s, s:s?, s:b, s:s?, s:b, s:o, s:s?, s:o}", "user_id", m->user_id, "name",
                     m->name, "joined", m->joined, "routing_status", m->routing_status, "active",
                     is_active(m), "proficiency",
                     sk->present ? json_real(sk->skill.proficiency) : json_null(), "state",
                     sk->present ? sk->skill.state : NULL, "weight",
                     sk->present ? json_real(weight_of(sk->skill.proficiency)) : json_null());
}

/* The preview's checks before any read: 1 when the ids are good. */
static int preview_valid(run_t *r, const char *queue_id, const char *skill_id)
{
    if (!queue_id || !gc_id_valid(queue_id)) {
        gc_body_error(r->res, "queue_id", "invalid_value", "in the path " ID_MESSAGE);
        gc_body_fail(r->res, 400);
        return 0;
    }
    if (skill_id && !gc_id_valid(skill_id)) {
        gc_body_error(r->res, "skill_id", "invalid_value", ID_MESSAGE);
    }
    else if (!r->skill || !gc_id_valid(r->skill)) {
        gc_body_error(r->res, "skill_id", "missing_field",
                      "is required: no valid GcmonWeightSkill is set for this queue");
    }
    if (r->res->errors && json_array_size(r->res->errors)) {
        gc_body_fail(r->res, 422);
        return 0;
    }
    return 1;
}

/* The members (read) with their skills, the load: the 200 document. */
static void preview_read(run_t *r)
{
    const char **users = apr_pcalloc(r->p, (r->members->nelts + 1) * sizeof(*users));
    double interacting = 0, waiting = 0;
    gc_weights_read_t *skills;
    gc_error_t *err = NULL;
    json_t *members;
    int i;

    r->out->upstream_requests++;
    if (r->ops->observations(r->ops->baton, r->p, r->req->queue_id, &interacting, &waiting, &err)
        != APR_SUCCESS) {
        read_failed(r, err, "reading the queue's observations", 0);
        return;
    }
    for (i = 0; i < r->members->nelts; i++) {
        users[i] = APR_ARRAY_IDX(r->members, i, gc_weights_member_t).user_id;
    }
    if (!(skills = fetch_skills(r, users, (size_t)r->members->nelts))) {
        return;
    }
    members = json_array();
    for (i = 0; i < r->members->nelts; i++) {
        json_array_append_new(
            members,
            preview_member(&APR_ARRAY_IDX(r->members, i, gc_weights_member_t), &skills[i]));
    }
    gc_result_ok(r->res, 200,
                 json_pack("{s:s, s:s, s:o, s:{s:i, s:f, s:f, s:f}, s:i}", "queue_id",
                           r->req->queue_id, "skill_id", r->skill, "members", members, "saturation",
                           "active_agents", r->active, "interacting", interacting, "waiting",
                           waiting, "projected_load", interacting + waiting, "upstream_requests",
                           r->out->upstream_requests));
}

void gc_weights_preview(apr_pool_t *p, const gc_weights_ops_t *ops, const char *queue_id,
                        const char *skill_id, const char *default_skill, gc_result_t *res,
                        int *upstream_requests)
{
    gc_weights_req_t req;
    gc_weights_out_t out;
    run_t r;

    memset(&r, 0, sizeof(r));
    memset(&req, 0, sizeof(req));
    memset(&out, 0, sizeof(out));
    req.queue_id = queue_id;
    r.p = p;
    r.ops = ops;
    r.req = &req;
    r.res = res;
    r.out = &out;
    r.preview = 1;
    r.skill = skill_id ? skill_id : default_skill;
    if (preview_valid(&r, queue_id, skill_id) && list_members(&r)) {
        if (r.members->nelts > GC_WEIGHTS_MAX_MEMBERS) {
            gc_body_error(res, "queue_id", "too_many_members",
                          apr_psprintf(p,
                                       "has %d members; gcmon distributes weights over at most %d",
                                       r.members->nelts, GC_WEIGHTS_MAX_MEMBERS));
            gc_body_fail(res, 422);
            finish(&r, "validation_failed");
        }
        else {
            preview_read(&r);
        }
    }
    if (upstream_requests) {
        *upstream_requests = out.upstream_requests;
    }
}
