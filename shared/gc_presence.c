/* Presence definitions, the presence ETag, If-Match and transition rules
 * (gc_presence.h). */
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <openssl/evp.h>

#include "gc_log.h"
#include "gc_presence.h"
#include "gc_state.h"
#include "gc_time.h"

#define UNKNOWN_REFRESH apr_time_from_sec(30)

/* ------------------------------------------------------------ definitions */

static const char *str_member(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

apr_array_header_t *gc_presence_defs_parse(apr_pool_t *p, const json_t *listing)
{
    const json_t *ents = json_object_get(listing, "entities");
    apr_array_header_t *defs = apr_array_make(p, 16, sizeof(gc_presence_def_t));
    size_t i;

    for (i = 0; json_is_array(ents) && i < json_array_size(ents); i++) {
        const json_t *e = json_array_get(ents, i);
        const char *id = str_member(e, "id"), *type = str_member(e, "type");
        const char *sys = gc_presence_normalise(str_member(e, "systemPresence"));
        const char *label = str_member(json_object_get(e, "languageLabels"), "en_US");
        gc_presence_def_t *d;

        if (!id || !*id || !sys || json_is_true(json_object_get(e, "deactivated"))) {
            continue;
        }
        d = apr_array_push(defs);
        d->id = apr_pstrdup(p, id);
        d->system = sys;
        d->label = label ? apr_pstrdup(p, label) : NULL;
        d->user_defined = type && strcasecmp(type, "User") == 0;
    }
    return defs;
}

const gc_presence_def_t *gc_presence_find(const apr_array_header_t *defs, const char *name)
{
    const char *sys = name ? gc_presence_normalise(name) : NULL;
    int i, pass;

    if (!defs || !name || !*name) {
        return NULL;
    }
    for (i = 0; i < defs->nelts; i++) {
        const gc_presence_def_t *d = &APR_ARRAY_IDX(defs, i, gc_presence_def_t);
        if (strcmp(d->id, name) == 0) {
            return d;
        }
    }
    /* System presence: System definitions first; then labels the same way. */
    for (pass = 0; pass < 4; pass++) {
        int user = pass & 1, by_label = pass >= 2;
        for (i = 0; i < defs->nelts; i++) {
            const gc_presence_def_t *d = &APR_ARRAY_IDX(defs, i, gc_presence_def_t);
            if (d->user_defined != user) {
                continue;
            }
            if (by_label ? (d->label && strcasecmp(d->label, name) == 0)
                         : (sys && strcmp(d->system, sys) == 0)) {
                return d;
            }
        }
    }
    return NULL;
}

struct gc_presence_cache {
    apr_pool_t *pool;
    apr_thread_mutex_t *mutex;
    apr_interval_time_t ttl;
    apr_pool_t *defs_pool; /* parent-less, replaced on each refresh */
    apr_array_header_t *defs;
    apr_time_t fetched_at;
};

static apr_status_t cache_cleanup(void *data)
{
    gc_presence_cache_t *c = data;

    if (c->defs_pool) {
        apr_pool_destroy(c->defs_pool);
        c->defs_pool = NULL;
        c->defs = NULL;
    }
    return APR_SUCCESS;
}

gc_presence_cache_t *gc_presence_cache_create(apr_pool_t *p, apr_interval_time_t ttl)
{
    gc_presence_cache_t *c = apr_pcalloc(p, sizeof(*c));

    c->pool = p;
    c->ttl = ttl > 0 ? ttl : apr_time_from_sec(300);
    if (apr_thread_mutex_create(&c->mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        return NULL;
    }
    apr_pool_cleanup_register(p, c, cache_cleanup, apr_pool_cleanup_null);
    return c;
}

void gc_presence_cache_clear(gc_presence_cache_t *c)
{
    apr_thread_mutex_lock(c->mutex);
    cache_cleanup(c);
    c->fetched_at = 0;
    apr_thread_mutex_unlock(c->mutex);
}

/* Fetch outside the lock (a slow upstream must not hold other threads), swap in. */
static apr_status_t refresh(gc_presence_cache_t *c, gc_upstream_t *u, apr_pool_t *p,
                            apr_time_t deadline, gc_error_t **err)
{
    gc_request_t req;
    gc_response_t *resp = NULL;
    apr_pool_t *np;
    apr_array_header_t *defs;
    apr_status_t rv;

    memset(&req, 0, sizeof(req));
    req.op = "presence_definitions";
    req.method = "GET";
    req.path = "/api/v2/presence/definitions?deactivated=false";
    req.deadline = deadline;
    if ((rv = gc_upstream_call(u, p, &req, &resp, err)) != APR_SUCCESS) {
        return rv;
    }
    if (!resp->json || !json_is_array(json_object_get(resp->json, "entities"))) {
        *err = apr_pcalloc(p, sizeof(**err));
        (*err)->kind = GC_ERR_PROTOCOL;
        (*err)->status = resp->status;
        (*err)->message = "the presence definitions listing has no entities";
        return APR_EGENERAL;
    }
    if (apr_pool_create(&np, NULL) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    defs = gc_presence_defs_parse(np, resp->json);
    apr_thread_mutex_lock(c->mutex);
    cache_cleanup(c);
    c->defs_pool = np;
    c->defs = defs;
    c->fetched_at = apr_time_now();
    apr_thread_mutex_unlock(c->mutex);
    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
           GCMON_LOGNO(800) "presence definitions refreshed: "
                            "%d active",
           defs->nelts);
    return APR_SUCCESS;
}

/* Look up under the lock, copying into p. -1: nothing cached or stale. */
static int lookup(gc_presence_cache_t *c, apr_pool_t *p, const char *name, apr_time_t now,
                  apr_interval_time_t max_age, gc_presence_def_t *out)
{
    const gc_presence_def_t *d;
    int rc = -1;

    apr_thread_mutex_lock(c->mutex);
    if (c->defs && now - c->fetched_at < max_age) {
        rc = 0;
        if ((d = gc_presence_find(c->defs, name))) {
            out->id = apr_pstrdup(p, d->id);
            out->system = d->system;
            out->label = d->label ? apr_pstrdup(p, d->label) : NULL;
            out->user_defined = d->user_defined;
            rc = 1;
        }
    }
    apr_thread_mutex_unlock(c->mutex);
    return rc;
}

apr_status_t gc_presence_resolve(gc_presence_cache_t *c, gc_upstream_t *u, apr_pool_t *p,
                                 const char *name, apr_time_t deadline, gc_presence_def_t *out,
                                 int *found, gc_error_t **err)
{
    apr_time_t now = apr_time_now();
    apr_status_t rv;
    int rc = lookup(c, p, name, now, c->ttl, out);

    *found = 0;
    if (rc == 0) {
        /* Unknown in a cache that is not fresh: a definition may just have been added. */
        rc = lookup(c, p, name, now, UNKNOWN_REFRESH, out);
    }
    if (rc < 0) {
        if ((rv = refresh(c, u, p, deadline, err)) != APR_SUCCESS) {
            return rv;
        }
        rc = lookup(c, p, name, apr_time_now(), c->ttl, out);
    }
    *found = rc == 1;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------ one user's presence */

int gc_user_presence_parse(apr_pool_t *p, const json_t *body, gc_user_presence_t *out)
{
    const json_t *def = json_object_get(body, "presenceDefinition");
    const char *id = str_member(def, "id"), *mod = str_member(body, "modifiedDate");
    const char *msg = str_member(body, "message");
    apr_time_t t;

    memset(out, 0, sizeof(*out));
    if (!id || !*id || !mod || gc_time_parse(mod, &t) != 0) {
        return -1;
    }
    t = apr_time_from_msec(apr_time_as_msec(t));
    out->definition_id = apr_pstrdup(p, id);
    out->system = gc_presence_normalise(str_member(def, "systemPresence"));
    out->message = msg ? apr_pstrdup(p, msg) : NULL;
    out->modified = t;
    out->etag = gc_presence_etag(p, id, t);
    return 0;
}

const char *gc_presence_etag(apr_pool_t *p, const char *definition_id, apr_time_t modified)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    const char *text = apr_psprintf(p, "%s\n%" APR_INT64_T_FMT, definition_id,
                                    (apr_int64_t)apr_time_as_msec(modified));
    char *out = apr_palloc(p, 35), *o = out;
    static const char hex[] = "0123456789abcdef";
    unsigned int i;

    if (!EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL) || mdlen < 16) {
        return NULL;
    }
    *o++ = '"';
    for (i = 0; i < 16; i++) {
        *o++ = hex[md[i] >> 4];
        *o++ = hex[md[i] & 15];
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

/* ------------------------------------------------------------ transitions */

static const char *check_name(apr_pool_t *p, const char *s)
{
    if (strcmp(s, "*") == 0 || gc_presence_valid(s)) {
        return NULL;
    }
    if (gc_state_valid(s)) {
        return apr_psprintf(p,
                            "'%s' is a routing status; status changes set presences, so "
                            "rules name presences: Available, Away, Busy, Break, Meal, "
                            "Meeting, Training, Offline, Idle, OnQueue (or *)",
                            s);
    }
    return apr_psprintf(p,
                        "unknown state '%s'; use a presence: Available, Away, Busy, "
                        "Break, Meal, Meeting, Training, Offline, Idle, OnQueue (exact "
                        "case), or *",
                        s);
}

const char *gc_transition_parse(apr_pool_t *p, int argc, char *const argv[], gc_transition_t *out)
{
    const char *e;
    int i;

    if (argc < 2) {
        return "needs a from state and at least one to state: GcmonTransition <from> <to>...";
    }
    for (i = 0; i < argc; i++) {
        if ((e = check_name(p, argv[i]))) {
            return e;
        }
    }
    out->from = apr_pstrdup(p, argv[0]);
    out->to = apr_array_make(p, argc - 1, sizeof(const char *));
    for (i = 1; i < argc; i++) {
        APR_ARRAY_PUSH(out->to, const char *) = apr_pstrdup(p, argv[i]);
    }
    return NULL;
}

int gc_transition_allowed(const apr_array_header_t *rules, const char *from, const char *to)
{
    int i, j;

    if (!rules || rules->nelts == 0 || (from && to && strcmp(from, to) == 0)) {
        return 1;
    }
    for (i = 0; i < rules->nelts; i++) {
        const gc_transition_t *r = &APR_ARRAY_IDX(rules, i, gc_transition_t);
        if (strcmp(r->from, "*") && (!from || strcmp(r->from, from))) {
            continue;
        }
        for (j = 0; j < r->to->nelts; j++) {
            const char *t = APR_ARRAY_IDX(r->to, j, const char *);
            if (strcmp(t, "*") == 0 || (to && strcmp(t, to) == 0)) {
                return 1;
            }
        }
    }
    return 0;
}
