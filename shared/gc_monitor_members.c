/* Who is monitored: GcmonMonitorUser plus the members of every
 * GcmonMonitorQueue (paged by nextUri, one page per loop turn, re-read every
 * GcmonMembershipRefresh), assigned to channel slots of at most
 * GcmonTopicsPerChannel topics. Users keep their slot while monitored, so a
 * refresh only re-subscribes the channels whose topics changed. */
#include <string.h>

#include <apr_strings.h>

#include "gc_id.h"
#include "gc_monitor_int.h"

#define MAX_PAGES 1000
#define RETRY_AFTER_FAILURE apr_time_from_sec(30)

void gc_mon_users_init(gc_monitor_t *m)
{
    apr_pool_create(&m->users_pool, m->term);
    m->users = apr_hash_make(m->users_pool);
    m->unassigned = 0;
}

void gc_mon_users_add_assigned(gc_monitor_t *m, const char *user_id, int chan)
{
    mon_user_t *u;

    if (apr_hash_get(m->users, user_id, APR_HASH_KEY_STRING)) {
        return;
    }
    if (chan >= 0 && m->ch[chan].nusers >= m->conf->topics_per_channel) {
        chan = -1; /* GcmonTopicsPerChannel shrank: reassign */
    }
    u = apr_pcalloc(m->users_pool, sizeof(*u));
    u->id = apr_pstrdup(m->users_pool, user_id);
    u->chan = chan;
    if (chan >= 0) {
        m->ch[chan].nusers++;
    }
    apr_hash_set(m->users, u->id, APR_HASH_KEY_STRING, u);
}

static int free_slot(gc_monitor_t *m)
{
    int i;

    for (i = 0; i < GC_MAX_CHANNELS; i++) {
        if (m->ch[i].nusers < m->conf->topics_per_channel) {
            return i;
        }
    }
    return -1;
}

void gc_mon_users_assign(gc_monitor_t *m)
{
    apr_hash_index_t *hi;
    int unassigned = 0;

    for (hi = apr_hash_first(m->iter, m->users); hi; hi = apr_hash_next(hi)) {
        mon_user_t *u = apr_hash_this_val(hi);
        int slot;
        if (u->chan >= 0) {
            continue;
        }
        slot = free_slot(m);
        if (slot < 0) {
            unassigned++;
            continue;
        }
        u->chan = slot;
        m->ch[slot].nusers++;
        m->ch[slot].need_subscribe = 1;
    }
    if (unassigned > 0 && unassigned != m->unassigned) {
        gc_mon_error(
            m, GC_LOG_ERR,
            GCMON_LOGNO(2240) "%d agent(s) are NOT monitored: "
                              "Genesys Cloud allows at most %d notification channels of %d topics "
                              "(GcmonTopicsPerChannel) per OAuth client; monitor fewer queues or "
                              "users",
            unassigned, GC_MAX_CHANNELS, m->conf->topics_per_channel);
    }
    m->unassigned = unassigned;
}

int gc_mon_is_monitored(gc_monitor_t *m, const char *user_id)
{
    return user_id && m->users && apr_hash_get(m->users, user_id, APR_HASH_KEY_STRING) != NULL;
}

void gc_mon_mark_resync(gc_monitor_t *m, int chan)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(m->iter, m->users); hi; hi = apr_hash_next(hi)) {
        mon_user_t *u = apr_hash_this_val(hi);
        if (u->chan == chan && !u->resync) {
            u->resync = 1;
            m->resync_pending++;
            m->ch[chan].resync_pending++;
        }
    }
    m->resync_next = 0;
}

/* Replace the monitored set by `want` (plus everyone already monitored when
 * keep_all: a queue could not be read, so nobody is removed this time). */
static void apply(gc_monitor_t *m, apr_hash_t *want, int keep_all)
{
    apr_pool_t *np, *old = m->users_pool;
    apr_hash_t *nh, *oh = m->users;
    apr_hash_index_t *hi;
    int added = 0, removed = 0, i;

    apr_pool_create(&np, m->term);
    nh = apr_hash_make(np);
    m->resync_pending = 0;
    for (i = 0; i < GC_MAX_CHANNELS; i++) {
        m->ch[i].resync_pending = 0;
    }
    for (hi = apr_hash_first(m->iter, oh); hi; hi = apr_hash_next(hi)) {
        const mon_user_t *u = apr_hash_this_val(hi);
        mon_user_t *c;
        if (!keep_all && !apr_hash_get(want, u->id, APR_HASH_KEY_STRING)) {
            if (u->chan >= 0) {
                m->ch[u->chan].nusers--;
                m->ch[u->chan].need_subscribe = 1;
            }
            removed++;
            continue;
        }
        c = apr_pmemdup(np, u, sizeof(*u));
        c->id = apr_pstrdup(np, u->id);
        if (c->resync && c->chan >= 0) {
            m->resync_pending++;
            m->ch[c->chan].resync_pending++;
        }
        apr_hash_set(nh, c->id, APR_HASH_KEY_STRING, c);
    }
    for (hi = apr_hash_first(m->iter, want); hi; hi = apr_hash_next(hi)) {
        const char *id = apr_hash_this_key(hi);
        mon_user_t *c;
        if (apr_hash_get(nh, id, APR_HASH_KEY_STRING)) {
            continue;
        }
        c = apr_pcalloc(np, sizeof(*c));
        c->id = apr_pstrdup(np, id);
        c->chan = -1;
        apr_hash_set(nh, c->id, APR_HASH_KEY_STRING, c);
        added++;
    }
    m->users_pool = np;
    m->users = nh;
    apr_pool_destroy(old);
    gc_mon_users_assign(m);
    if (added || removed) {
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(2241) "monitoring %u agent(s): %d added, %d removed",
               apr_hash_count(m->users), added, removed);
    }
    m->snap_dirty = 1;
}

/* Monitor `id`; a member of queue `qid` (NULL: GcmonMonitorUser). Its value in
 * mb->ids is the JSON array of its monitored queues, in GcmonMonitorQueue
 * order (ids are [A-Za-z0-9-_]: no escaping needed). */
static void want_id(mon_members_t *mb, const char *id, const char *qid)
{
    const char *queues;

    if (!gc_id_valid(id)) {
        return;
    }
    queues = apr_hash_get(mb->ids, id, APR_HASH_KEY_STRING);
    if (!queues) {
        id = apr_pstrdup(mb->pool, id);
        queues = "[]";
    }
    if (qid && !strstr(queues, apr_pstrcat(mb->pool, "\"", qid, "\"", NULL))) {
        queues = apr_pstrcat(mb->pool, apr_pstrmemdup(mb->pool, queues, strlen(queues) - 1),
                             queues[1] == ']' ? "" : ",", "\"", qid, "\"]", NULL);
    }
    apr_hash_set(mb->ids, id, APR_HASH_KEY_STRING, queues);
}

/* Record the memberships that changed since the last pass (all of them after
 * taking the lead): the board's queue filter and queue_ids (SPEC §9.17). A
 * failed write is tried again after the next pass. */
static void record_membership(gc_monitor_t *m)
{
    mon_members_t *mb = &m->members;
    apr_array_header_t *changed = apr_array_make(mb->pool, 64, sizeof(gc_membership_t));
    apr_hash_index_t *hi;
    gc_store_t *s = gc_worker_store(m->worker);
    const char *err = NULL;
    apr_pool_t *np;

    for (hi = apr_hash_first(mb->pool, mb->ids); hi; hi = apr_hash_next(hi)) {
        const char *id = apr_hash_this_key(hi), *queues = apr_hash_this_val(hi);
        const char *was = mb->recorded ? apr_hash_get(mb->recorded, id, APR_HASH_KEY_STRING) : NULL;
        if (!was || strcmp(was, queues)) {
            gc_membership_t *e = apr_array_push(changed);
            e->user_id = id;
            e->queue_ids = queues;
        }
    }
    for (hi = mb->recorded ? apr_hash_first(mb->pool, mb->recorded) : NULL; hi;
         hi = apr_hash_next(hi)) {
        const char *id = apr_hash_this_key(hi);
        if (!apr_hash_get(mb->ids, id, APR_HASH_KEY_STRING)
            && strcmp(apr_hash_this_val(hi), "[]")) {
            gc_membership_t *e = apr_array_push(changed);
            e->user_id = id;
            e->queue_ids = "[]"; /* no longer monitored: in no monitored queue */
        }
    }
    if (changed->nelts == 0) {
        return;
    }
    if (!s
        || gc_store_membership_set(s, mb->pool, (const gc_membership_t *)changed->elts,
                                   changed->nelts, &err)
               != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(
                   2244) "could not record the queue membership of %d agent(s): %s; "
                         "the board's queue filter shows the previous memberships until the next "
                         "pass",
               changed->nelts, err ? err : "no database connection");
        return;
    }
    apr_pool_create(&np, m->term);
    mb->recorded = apr_hash_make(np);
    for (hi = apr_hash_first(mb->pool, mb->ids); hi; hi = apr_hash_next(hi)) {
        apr_hash_set(mb->recorded, apr_pstrdup(np, apr_hash_this_key(hi)), APR_HASH_KEY_STRING,
                     apr_pstrdup(np, apr_hash_this_val(hi)));
    }
    if (mb->recorded_pool) {
        apr_pool_destroy(mb->recorded_pool);
    }
    mb->recorded_pool = np;
    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
           GCMON_LOGNO(2245) "recorded the queue membership of %d agent(s)", changed->nelts);
}

static void pass_start(gc_monitor_t *m)
{
    mon_members_t *mb = &m->members;
    int i;

    apr_pool_create(&mb->pool, m->term);
    mb->ids = apr_hash_make(mb->pool);
    mb->active = 1;
    mb->queue = 0;
    mb->next = NULL;
    mb->pages = 0;
    mb->failed = 0;
    for (i = 0; i < m->conf->users->nelts; i++) {
        want_id(mb, APR_ARRAY_IDX(m->conf->users, i, const char *), NULL);
    }
}

static void pass_end(gc_monitor_t *m, apr_time_t now)
{
    mon_members_t *mb = &m->members;
    apr_interval_time_t again = m->conf->membership_refresh;

    apply(m, mb->ids, mb->failed);
    if (!mb->failed) {
        record_membership(m);
    }
    apr_pool_destroy(mb->pool);
    mb->pool = NULL;
    mb->ids = NULL;
    mb->active = 0;
    if (mb->failed && again > RETRY_AFTER_FAILURE) {
        again = RETRY_AFTER_FAILURE;
    }
    mb->due = now + again;
}

static void next_queue(mon_members_t *mb)
{
    mb->queue++;
    mb->next = NULL;
    mb->pages = 0;
}

/* A nextUri we follow: a path below the API (or an absolute URL on it). */
static const char *next_path(gc_monitor_t *m, const char *uri)
{
    apr_size_t n = strlen(m->env.conn->api_url);

    if (!uri || !*uri) {
        return NULL;
    }
    if (strncmp(uri, m->env.conn->api_url, n) == 0) {
        uri += n;
    }
    return strncmp(uri, "/api/v2/routing/queues/", 23) == 0 ? uri : NULL;
}

static void read_page(gc_monitor_t *m)
{
    mon_members_t *mb = &m->members;
    const char *qid = APR_ARRAY_IDX(m->conf->queues, mb->queue, const char *);
    const char *path = mb->next ? mb->next
                                : apr_psprintf(m->iter,
                                               "/api/v2/routing/queues/%s/members"
                                               "?pageSize=100",
                                               qid);
    gc_response_t *resp;
    gc_error_t *err;
    const json_t *ents;
    const char *nxt;
    size_t i;

    if (gc_mon_call(m, "queue_members", "GET", path, NULL, NULL, &resp, &err) != APR_SUCCESS) {
        if (err && err->kind == GC_ERR_NOT_FOUND) {
            gc_mon_error(m, GC_LOG_WARNING,
                         GCMON_LOGNO(2242) "queue %s (GcmonMonitorQueue) "
                                           "does not exist; none of its members are monitored",
                         qid);
        }
        else if (err && err->kind != GC_ERR_CANCELLED) {
            gc_mon_error(
                m, GC_LOG_WARNING,
                GCMON_LOGNO(
                    2243) "cannot read the members of "
                          "queue %s: %s (%s); keeping the agents already monitored and trying "
                          "again soon",
                qid, err->message ? err->message : "error", gc_err_kind_name(err->kind));
            mb->failed = 1;
        }
        else {
            mb->failed = 1;
        }
        next_queue(mb);
        return;
    }
    ents = resp->json ? json_object_get(resp->json, "entities") : NULL;
    for (i = 0; ents && i < json_array_size(ents); i++) {
        want_id(mb, json_string_value(json_object_get(json_array_get(ents, i), "id")), qid);
    }
    nxt = resp->json ? json_string_value(json_object_get(resp->json, "nextUri")) : NULL;
    nxt = next_path(m, nxt);
    if (nxt && json_array_size(ents) > 0 && ++mb->pages < MAX_PAGES) {
        mb->next = apr_pstrdup(mb->pool, nxt);
        return;
    }
    next_queue(mb);
}

int gc_mon_members_step(gc_monitor_t *m, apr_time_t now)
{
    mon_members_t *mb = &m->members;

    if (!mb->active) {
        if (now < mb->due) {
            return 0;
        }
        pass_start(m);
    }
    if (mb->queue >= m->conf->queues->nelts) {
        pass_end(m, now);
        return 0;
    }
    read_page(m);
    return 1;
}
