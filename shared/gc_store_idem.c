/* gcmon store: stored answers of Idempotency-Key requests (gc_store_idem.h). */
#include <string.h>

#include "gc_store_idem.h"
#include "gc_store_int.h"

static const gc_stmt_t idem_get = {
    "idem.get",
    "SELECT request_hash, status, content_type, body FROM gcmon_idempotency "
    "WHERE scope = %s AND idem_key = %s AND expires_at > %lld LIMIT 1",
    NULL, 0
};

static const gc_stmt_t idem_expire = {
    "idem.expire",
    "DELETE FROM gcmon_idempotency WHERE scope = %s AND idem_key = %s AND expires_at <= %lld", NULL,
    0
};

static const gc_stmt_t idem_insert = {
    "idem.insert",
    "INSERT INTO gcmon_idempotency (scope, idem_key, request_hash, status, content_type, body, "
    "created_at, expires_at) VALUES (%s, %s, %s, %d, %s, %s, %lld, %lld) "
    "ON CONFLICT (scope, idem_key) DO NOTHING",
    NULL, 0
};

static const gc_stmt_t idem_finish = {
    "idem.finish",
    "UPDATE gcmon_idempotency SET status = %d, content_type = %s, body = %s, expires_at = %lld "
    "WHERE scope = %s AND idem_key = %s AND status = 0",
    NULL, 0
};

static const gc_stmt_t idem_release = {
    "idem.release",
    "DELETE FROM gcmon_idempotency WHERE scope = %s AND idem_key = %s AND status = 0", NULL, 0
};

int gc_store_idem_key_valid(const char *key)
{
    size_t n = 0;

    if (!key || !*key) {
        return 0;
    }
    for (; *key; key++, n++) {
        if (*key <= 0x20 || *key >= 0x7f || n >= GC_IDEM_MAX_KEY) {
            return 0;
        }
    }
    return 1;
}

apr_status_t gc_store_idem_get(gc_store_t *s, apr_pool_t *p, const char *scope, const char *key,
                               apr_time_t now, gc_store_idem_rec_t *out, int *found,
                               const char **err)
{
    apr_int64_t now_ms = GC_MS(now);
    const void *args[3];
    gc_rows_t rows;
    apr_status_t rv;

    *found = 0;
    memset(out, 0, sizeof(*out));
    args[0] = scope;
    args[1] = key;
    args[2] = &now_ms;
    if ((rv = gc_store__select(s, p, &idem_get, args, &rows, err)) != APR_SUCCESS) {
        return rv;
    }
    while (gc_store__next(&rows)) {
        if (!*found) {
            *found = 1;
            out->request_hash = gc_store__text(&rows, p, 0);
            out->status = (int)gc_store__int(&rows, 1);
            out->content_type = gc_store__text(&rows, p, 2);
            out->body = gc_store__text(&rows, p, 3);
        }
    }
    return APR_SUCCESS;
}

typedef struct {
    const char *scope, *key;
    const gc_store_idem_rec_t *rec;
    apr_int64_t now_ms, expires_ms;
    int stored;
} put_ctx_t;

static apr_status_t put_tx(gc_store_t *s, apr_pool_t *p, void *baton, const char **err)
{
    put_ctx_t *c = baton;
    const void *args[8];
    apr_status_t rv;
    int n = 0;

    args[0] = c->scope;
    args[1] = c->key;
    args[2] = &c->now_ms;
    if ((rv = gc_store__exec(s, p, &idem_expire, args, NULL, err)) != APR_SUCCESS) {
        return rv;
    }
    args[2] = c->rec->request_hash;
    args[3] = &c->rec->status;
    args[4] = c->rec->content_type;
    args[5] = c->rec->body;
    args[6] = &c->now_ms;
    args[7] = &c->expires_ms;
    if ((rv = gc_store__exec(s, p, &idem_insert, args, &n, err)) != APR_SUCCESS) {
        return rv;
    }
    c->stored = n > 0;
    return APR_SUCCESS;
}

apr_status_t gc_store_idem_put(gc_store_t *s, apr_pool_t *p, const char *scope, const char *key,
                               const gc_store_idem_rec_t *rec, apr_time_t now,
                               apr_interval_time_t ttl, int *stored, const char **err)
{
    put_ctx_t c;
    apr_status_t rv;

    memset(&c, 0, sizeof(c));
    c.scope = scope;
    c.key = key;
    c.rec = rec;
    c.now_ms = GC_MS(now);
    c.expires_ms = GC_MS(now + ttl);
    rv = gc_store__tx(s, p, put_tx, &c, err);
    if (stored) {
        *stored = rv == APR_SUCCESS && c.stored;
    }
    return rv;
}

apr_status_t gc_store_idem_claim(gc_store_t *s, apr_pool_t *p, const char *scope, const char *key,
                                 const char *request_hash, apr_time_t now, apr_interval_time_t hold,
                                 int *claimed, const char **err)
{
    gc_store_idem_rec_t running;
    int stored = 0;
    apr_status_t rv;

    memset(&running, 0, sizeof(running));
    running.request_hash = request_hash;
    running.status = GC_IDEM_RUNNING;
    running.content_type = "";
    running.body = "";
    rv = gc_store_idem_put(s, p, scope, key, &running, now, hold, &stored, err);
    *claimed = rv == APR_SUCCESS && stored;
    return rv;
}

apr_status_t gc_store_idem_finish(gc_store_t *s, apr_pool_t *p, const char *scope, const char *key,
                                  const gc_store_idem_rec_t *rec, apr_time_t now,
                                  apr_interval_time_t ttl, const char **err)
{
    apr_int64_t expires_ms = GC_MS(now + ttl);
    const void *args[6];

    args[0] = &rec->status;
    args[1] = rec->content_type;
    args[2] = rec->body;
    args[3] = &expires_ms;
    args[4] = scope;
    args[5] = key;
    return gc_store__exec(s, p, &idem_finish, args, NULL, err);
}

apr_status_t gc_store_idem_release(gc_store_t *s, apr_pool_t *p, const char *scope, const char *key,
                                   const char **err)
{
    const void *args[2];

    args[0] = scope;
    args[1] = key;
    return gc_store__exec(s, p, &idem_release, args, NULL, err);
}
