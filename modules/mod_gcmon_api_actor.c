/* mod_gcmon_api: who performs an admin action (GcmonAdminActor, SPEC §9.14).
 * Secure by default: an admin request without an actor is refused before
 * anything is read, written or sent upstream. */
#include <string.h>

#include <apr_strings.h>

#include "gc_utf8.h"
#include "mod_gcmon_api_private.h"

#define ACTOR_MAX 256

/* A header value usable as an actor: 1..ACTOR_MAX bytes of printable UTF-8. */
static int actor_value_ok(const char *v)
{
    size_t n = v ? strlen(v) : 0, i;

    if (n == 0 || n > ACTOR_MAX || !gc_utf8_valid(v, n)) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

static int refuse(gc_result_t *res, const char *detail)
{
    gc_result_problem(res, HTTP_FORBIDDEN, "actor_required",
                      "The admin API needs to know who is acting", detail);
    gc_result_error_type(res, "actor_missing");
    return DONE;
}

int gcmon_api_actor_establish(request_rec *r, gc_result_t *res)
{
    const gcmon_api_conf_t *c = gcmon_api_conf();
    gcmon_api_req_t *n = gcmon_api_req(r);
    const char *v;

    switch (gcmon_api_actor_mode(c)) {
    case GCMON_ACTOR_ANONYMOUS:
        n->actor = "-";
        n->actor_source = "anonymous";
        return OK;
    case GCMON_ACTOR_HEADER:
        v = apr_table_get(r->headers_in, c->actor_header);
        if (!actor_value_ok(v)) {
            return refuse(res, apr_psprintf(r->pool,
                                            "GcmonAdminActor header:%s takes the actor "
                                            "from the %s header set by the site's reverse "
                                            "proxy, and this request has %s",
                                            c->actor_header, c->actor_header,
                                            v && *v ? "an unusable value in it" : "none"));
        }
        n->actor = apr_pstrdup(r->pool, v);
        n->actor_source = apr_pstrcat(r->pool, "header:", c->actor_header, NULL);
        return OK;
    default:
        if (!r->user || !*r->user) {
            return refuse(res, "GcmonAdminActor user requires an authenticated user: protect "
                               "the admin location with Apache's authentication (Require "
                               "valid-user), or set GcmonAdminActor to header:<Name> behind an "
                               "authenticating reverse proxy");
        }
        n->actor = r->user;
        n->actor_source = "user";
        return OK;
    }
}

const char *gcmon_api_actor(request_rec *r)
{
    const char *a = gcmon_api_req(r)->actor;
    return a ? a : "-";
}

const char *gcmon_api_actor_source(request_rec *r)
{
    const char *s = gcmon_api_req(r)->actor_source;
    return s ? s : "-";
}
