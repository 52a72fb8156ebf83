/* gcmon store: persisted notification channels, so that a new stream holder
 * reuses the channels (and their subscriptions) of the previous one. */
#include <apr_strings.h>

#include "gc_log.h"
#include "gc_store_int.h"

static const gc_stmt_t channel_save = {
    "channel.save",
    "INSERT INTO gcmon_channels (id, connect_uri, expires_at, topics, updated_at) "
    "VALUES (%s, %s, %lld, %s, %lld) ON CONFLICT (id) DO UPDATE SET "
    "connect_uri = excluded.connect_uri, expires_at = excluded.expires_at, "
    "topics = excluded.topics, updated_at = excluded.updated_at",
    NULL, 0
};

static const gc_stmt_t channel_load = {
    "channel.load",
    "SELECT id, connect_uri, expires_at, topics FROM gcmon_channels ORDER BY id LIMIT 256", NULL, 0
};

static const gc_stmt_t channel_delete = { "channel.delete",
                                          "DELETE FROM gcmon_channels WHERE id = %s", NULL, 0 };

apr_status_t gc_store_channels_load(gc_store_t *s, apr_pool_t *p, apr_array_header_t **out)
{
    apr_pool_t *tp;
    gc_rows_t r;
    apr_status_t rv;
    const char *err = NULL;

    *out = apr_array_make(p, 4, sizeof(gc_channel_rec_t));
    if (apr_pool_create(&tp, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    rv = gc_store__select(s, tp, &channel_load, NULL, &r, &err);
    if (rv == APR_SUCCESS) {
        while (gc_store__next(&r)) {
            gc_channel_rec_t *c = apr_array_push(*out);
            c->id = gc_store__text(&r, p, 0);
            c->connect_uri = gc_store__text(&r, p, 1);
            c->expires_at = GC_FROM_MS(gc_store__int(&r, 2));
            c->topics = gc_store__text(&r, p, 3);
        }
    }
    else {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, rv, GCMON_LOGNO(411) "store: loading channels: %s", err);
    }
    apr_pool_destroy(tp);
    return rv;
}

apr_status_t gc_store_channel_save(gc_store_t *s, const gc_channel_rec_t *c)
{
    apr_pool_t *tp;
    apr_status_t rv;
    const char *err = NULL;
    apr_int64_t expires, now = GC_MS(apr_time_now());
    const void *args[5];

    if (!c || !c->id || !c->connect_uri) {
        return APR_EINVAL;
    }
    if (apr_pool_create(&tp, s->pool) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    expires = GC_MS(c->expires_at);
    args[0] = c->id;
    args[1] = c->connect_uri;
    args[2] = &expires;
    args[3] = c->topics ? c->topics : "[]";
    args[4] = &now;
    rv = gc_store__exec(s, tp, &channel_save, args, NULL, &err);
    if (rv != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, rv, GCMON_LOGNO(412) "store: saving channel %s: %s",
               c->id, err);
    }
    apr_pool_destroy(tp);
    return rv;
}

apr_status_t gc_store_channel_delete(gc_store_t *s, const char *id)
{
    apr_pool_t *tp;
    apr_status_t rv;
    const char *err = NULL;
    const void *args[1];

    if (!id) {
        return APR_EINVAL;
    }
    if (apr_pool_create(&tp, s->pool) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    args[0] = id;
    rv = gc_store__exec(s, tp, &channel_delete, args, NULL, &err);
    if (rv != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, rv, GCMON_LOGNO(413) "store: deleting channel %s: %s", id,
               err);
    }
    apr_pool_destroy(tp);
    return rv;
}
