/* The holder's idle alerts, run on the writer thread (it owns the database
 * connection and sees every committed event first).
 *
 * The alert engine (gc_alerts.c) is seeded from the current-state table when
 * the writer first reaches the database, then follows the committed events:
 * an event whose state differs from the agent's known one starts a new
 * episode at its time, exactly as the store sets `since`. Raising re-checks
 * the agent's row in the same transaction, so an engine that drifted from the
 * database (another writer during a handover) is corrected instead of
 * raising a wrong alert. */
#include <string.h>

#include <apr_strings.h>

#include "gc_alerts.h"
#include "gc_monitor_int.h"
#include "gc_webhook.h"

#define TAKE_MAX 64
#define CLEAR_EVERY (250 * 1000)          /* at most this often after transitions */
#define RELOAD_AFTER apr_time_from_sec(5) /* seeding failed: try again */

typedef struct {
    const char *state; /* points into the rules or a state name */
    apr_time_t since;
    apr_time_t last_at;
} known_t;

struct gc_alerter {
    apr_pool_t *pool;
    const gc_monitor_conf_t *conf;
    gc_metrics_t *metrics;
    gc_alerts_t *engine;
    apr_hash_t *known; /* user_id → known_t */
    apr_pool_t *names; /* interned user ids and states */
    apr_hash_t *interned;
    int seeded;
    apr_time_t seed_at;
    int clear_due;
    apr_time_t cleared_at; /* the last clearing (or failed attempt) */
    gc_outbox_t *outbox;   /* outlives the writer thread, or NULL */
};

void (*gc_alerter_test_before_wake)(void);

gc_alerter_t *gc_alerter_create(apr_pool_t *p, const gc_monitor_conf_t *conf, gc_metrics_t *metrics,
                                gc_outbox_t *outbox)
{
    gc_alerter_t *a;

    if (!conf || !conf->idle_alerts || conf->idle_alerts->nelts == 0) {
        return NULL;
    }
    a = apr_pcalloc(p, sizeof(*a));
    a->pool = p;
    a->conf = conf;
    a->metrics = metrics;
    a->engine = gc_alerts_create(p, conf->idle_alerts);
    a->known = apr_hash_make(p);
    apr_pool_create(&a->names, p);
    a->interned = apr_hash_make(a->names);
    a->outbox = outbox;
    return a;
}

static const char *intern(gc_alerter_t *a, const char *s)
{
    const char *v = apr_hash_get(a->interned, s, APR_HASH_KEY_STRING);

    if (!v) {
        v = apr_pstrdup(a->names, s);
        apr_hash_set(a->interned, v, APR_HASH_KEY_STRING, v);
    }
    return v;
}

/* The agent's state as the store keeps it: a new state starts an episode at
 * the event's time; the same state continues it. */
static void follow(gc_alerter_t *a, const char *user_id, const char *state, apr_time_t at,
                   int force)
{
    known_t *k = apr_hash_get(a->known, user_id, APR_HASH_KEY_STRING);

    if (!k) {
        k = apr_pcalloc(a->names, sizeof(*k));
        user_id = intern(a, user_id);
        apr_hash_set(a->known, user_id, APR_HASH_KEY_STRING, k);
        force = 1;
    }
    else if (!force && (at < k->last_at || !strcmp(k->state, state))) {
        if (at > k->last_at) {
            k->last_at = at;
        }
        return;
    }
    if (force) {
        gc_alerts_forget(a->engine, user_id);
    }
    k->state = intern(a, state);
    k->since = at;
    k->last_at = at;
    gc_alerts_observe(a->engine, user_id, k->state, at);
}

void gc_alerter_committed(gc_alerter_t *a, const gc_evrec_t *run, int n)
{
    const gc_evrec_t *r;
    int i;

    if (!a || !a->seeded) {
        return; /* the seed reads these from the database */
    }
    for (r = run, i = 0; r && i < n; r = r->next, i++) {
        if (r->ev.user_id && r->ev.state && r->ev.event_at > 0) {
            known_t *k = apr_hash_get(a->known, r->ev.user_id, APR_HASH_KEY_STRING);
            if (!k || strcmp(k->state, r->ev.state) != 0) {
                a->clear_due = 1;
            }
            follow(a, r->ev.user_id, r->ev.state, r->ev.event_at, 0);
        }
    }
}

static void seed(gc_alerter_t *a, gc_store_t *s, apr_pool_t *p, apr_time_t now)
{
    apr_array_header_t *agents;
    const char *err = NULL;
    int i;

    if (now < a->seed_at) {
        return;
    }
    if (gc_store_alert_agents(s, p, &agents, &err) != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2320) "idle alerts: cannot read "
                                 "the agents' current states (retrying in 5 s): %s",
               err ? err : "?");
        a->seed_at = now + RELOAD_AFTER;
        return;
    }
    for (i = 0; i < agents->nelts; i++) {
        const gc_alert_agent_t *g = &APR_ARRAY_IDX(agents, i, gc_alert_agent_t);
        follow(a, g->user_id, g->state, g->since, 1);
    }
    a->seeded = 1;
    a->clear_due = 1;
    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
           GCMON_LOGNO(2321) "idle alerts: following %d "
                             "agent(s), %d timer(s) scheduled",
           agents->nelts, gc_alerts_scheduled(a->engine));
}

/* The agent's row moved away from the engine's view: take the row's. */
static void resync_agent(gc_alerter_t *a, gc_store_t *s, apr_pool_t *p, const char *user_id)
{
    gc_agent_row_t *row = NULL;

    if (gc_store_agent_get(s, p, user_id, &row) == APR_SUCCESS && row && row->state) {
        follow(a, user_id, row->state, row->since, 1);
    }
}

static void raise_one(gc_alerter_t *a, gc_store_t *s, apr_pool_t *p, const gc_alert_due_t *d,
                      apr_time_t now)
{
    gc_agent_row_t *row = NULL;
    const char *body = NULL, *err = NULL, *name = NULL;
    gc_alert_result_e result = GC_ALERT_MOVED;
    apr_int64_t id = 0;

    if (gc_store_agent_get(s, p, d->user_id, &row) == APR_SUCCESS && row) {
        name = row->user_name;
    }
    if (gc_webhook_url(&a->conf->webhooks, GC_TARGET_SLACK)) {
        body =
            gc_slack_alert_body(p, d->user_id, name, d->state, now - d->episode_at, d->threshold);
    }
    if (gc_store_alert_raise(s, p, d, name, body, now, &result, &id, &err) != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2322) "idle alerts: cannot raise "
                                 "the alert for agent %s (%s): %s; trying again",
               d->user_id, d->state, err ? err : "?");
        /* Due again shortly: the engine already moved it on. */
        follow(a, d->user_id, d->state, d->episode_at, 1);
        return;
    }
    switch (result) {
    case GC_ALERT_RAISED:
        gc_log(GC_LOG_MARK, GC_LOG_INFO, 0,
               GCMON_LOGNO(2323) "idle alert %" APR_INT64_T_FMT ": agent %s%s%s%s in %s for %s%s",
               id, name ? name : d->user_id, name ? " (" : "", name ? d->user_id : "",
               name ? ")" : "", d->state,
               gc_format_duration(p, apr_time_from_sec(apr_time_sec(now - d->episode_at))),
               d->seq > 0 ? apr_psprintf(p, " (repeat %d)", d->seq) : "");
        if (a->metrics) {
            gc_metrics_add(a->metrics, GC_MET_IDLE_ALERTS, d->seq > 0 ? "repeated" : "raised", NULL,
                           1);
        }
        if (body && a->outbox) {
            if (gc_alerter_test_before_wake) {
                gc_alerter_test_before_wake();
            }
            gc_outbox_wake(a->outbox);
        }
        break;
    case GC_ALERT_EXISTS:
        if (a->metrics) {
            gc_metrics_add(a->metrics, GC_MET_IDLE_ALERTS, "suppressed", NULL, 1);
        }
        break;
    case GC_ALERT_MOVED: resync_agent(a, s, p, d->user_id); break;
    }
}

static void clear(gc_alerter_t *a, gc_store_t *s, apr_pool_t *p, apr_time_t now)
{
    const char *err = NULL;
    int cleared = 0;

    a->cleared_at = now; /* a failure is tried again CLEAR_EVERY later */
    if (gc_store_alerts_clear(s, p, now, &cleared, &err) != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(2324) "idle alerts: cannot clear "
                                 "ended alerts: %s",
               err ? err : "?");
        return;
    }
    a->clear_due = 0;
    if (cleared > 0) {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
               GCMON_LOGNO(2325) "idle alerts: %d alert(s) "
                                 "cleared",
               cleared);
        if (a->metrics) {
            gc_metrics_add(a->metrics, GC_MET_IDLE_ALERTS, "cleared", NULL, cleared);
        }
    }
}

apr_time_t gc_alerter_tick(gc_alerter_t *a, gc_store_t *s, apr_pool_t *p, apr_time_t now)
{
    gc_alert_due_t due[TAKE_MAX];
    apr_time_t next;
    int n, i;

    if (!a || !s) {
        return 0;
    }
    if (!a->seeded) {
        seed(a, s, p, now);
        if (!a->seeded) {
            return a->seed_at;
        }
    }
    do {
        n = gc_alerts_take_due(a->engine, now, due, TAKE_MAX);
        /* raise_one may call the engine again: keep the strings. */
        for (i = 0; i < n; i++) {
            due[i].user_id = apr_pstrdup(p, due[i].user_id);
            due[i].state = intern(a, due[i].state);
        }
        for (i = 0; i < n; i++) {
            raise_one(a, s, p, &due[i], now);
        }
    } while (n == TAKE_MAX);
    if (a->clear_due && now - a->cleared_at >= CLEAR_EVERY) {
        clear(a, s, p, now);
    }
    next = gc_alerts_next_due(a->engine);
    if (a->clear_due && (next <= 0 || a->cleared_at + CLEAR_EVERY < next)) {
        next = a->cleared_at + CLEAR_EVERY;
    }
    return next;
}
