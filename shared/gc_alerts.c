/* Idle alerts: the holder's timer structure (see gc_alerts.h).
 *
 * One binary min-heap of the agents with a pending timer, ordered by due
 * time; each agent's entry (found through a hash by user id) knows its heap
 * position, so a change is O(log n). An agent's entry is created once and
 * reused for every later observation: user ids are copied once, state names
 * point at the rules' copies (a state without a rule is not kept at all), so
 * the memory is bounded by the number of agents. Forgotten entries stay for
 * reuse until they outnumber the live ones; then the live ones are copied
 * into a fresh pool and the old one is destroyed. */
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "gc_alerts.h"

#define MIN_COMPACT 1024 /* forgotten entries tolerated before compacting */

typedef struct {
    const char *user_id;         /* in the agents pool */
    const gc_alert_rule_t *rule; /* the current state's rule, NULL: none */
    apr_time_t since;            /* start of the current episode */
    apr_time_t due;              /* while in the heap */
    int seq;                     /* the seq due at `due` */
    int pos;                     /* heap index, -1 when not scheduled */
    int known;                   /* 0: forgotten (or never observed) */
} agent_t;

struct gc_alerts {
    apr_pool_t *pool;        /* engine lifetime: rules */
    apr_hash_t *rules;       /* state → gc_alert_rule_t (copies in pool) */
    apr_pool_t *agents_pool; /* entries, ids, the hash and the heap */
    apr_hash_t *agents;      /* user_id → agent_t */
    agent_t **heap;
    int nheap, cap;
    int nforgotten;
    apr_size_t bytes; /* requested from agents_pool (tests) */
};

/* -------------------------------------------------------------- rules */

apr_array_header_t *gc_alert_rules_default(apr_pool_t *p)
{
    apr_array_header_t *rules = apr_array_make(p, 2, sizeof(gc_alert_rule_t));
    gc_alert_rule_t *r;

    r = apr_array_push(rules);
    r->state = "Available";
    r->threshold = apr_time_from_sec(15 * 60);
    r->repeat = 0;
    r = apr_array_push(rules);
    r->state = "IDLE";
    r->threshold = apr_time_from_sec(15 * 60);
    r->repeat = 0;
    return rules;
}

static void rules_copy(gc_alerts_t *a, const apr_array_header_t *rules)
{
    int i;

    a->rules = apr_hash_make(a->pool);
    for (i = 0; rules && i < rules->nelts; i++) {
        const gc_alert_rule_t *in = &APR_ARRAY_IDX(rules, i, gc_alert_rule_t);
        gc_alert_rule_t *r;

        if (!in->state || in->threshold <= 0) {
            continue;
        }
        r = apr_palloc(a->pool, sizeof(*r));
        r->state = apr_pstrdup(a->pool, in->state);
        r->threshold = in->threshold;
        r->repeat = in->repeat > 0 ? in->repeat : 0;
        apr_hash_set(a->rules, r->state, APR_HASH_KEY_STRING, r);
    }
}

/* -------------------------------------------------------------- heap */

static void *agents_alloc(gc_alerts_t *a, apr_size_t n)
{
    a->bytes += APR_ALIGN_DEFAULT(n);
    return apr_palloc(a->agents_pool, n);
}

static void heap_set(gc_alerts_t *a, int i, agent_t *e)
{
    a->heap[i] = e;
    e->pos = i;
}

static void sift_up(gc_alerts_t *a, int i)
{
    agent_t *e = a->heap[i];

    while (i > 0) {
        int parent = (i - 1) / 2;
        if (a->heap[parent]->due <= e->due) {
            break;
        }
        heap_set(a, i, a->heap[parent]);
        i = parent;
    }
    heap_set(a, i, e);
}

static void sift_down(gc_alerts_t *a, int i)
{
    agent_t *e = a->heap[i];

    for (;;) {
        int c = 2 * i + 1;
        if (c >= a->nheap) {
            break;
        }
        if (c + 1 < a->nheap && a->heap[c + 1]->due < a->heap[c]->due) {
            c++;
        }
        if (e->due <= a->heap[c]->due) {
            break;
        }
        heap_set(a, i, a->heap[c]);
        i = c;
    }
    heap_set(a, i, e);
}

/* Room for one more: the array doubles (the old one stays in the pool until
 * the next compaction, so at most as much again). */
static void heap_reserve(gc_alerts_t *a)
{
    agent_t **h;
    int cap;

    if (a->nheap < a->cap) {
        return;
    }
    cap = a->cap ? a->cap * 2 : 64;
    h = agents_alloc(a, (apr_size_t)cap * sizeof(*h));
    if (a->nheap) {
        memcpy(h, a->heap, (apr_size_t)a->nheap * sizeof(*h));
    }
    a->heap = h;
    a->cap = cap;
}

/* Insert e, or move it to its new due time. */
static void heap_schedule(gc_alerts_t *a, agent_t *e, apr_time_t due)
{
    apr_time_t old = e->due;

    e->due = due;
    if (e->pos < 0) {
        heap_reserve(a);
        heap_set(a, a->nheap++, e);
        sift_up(a, e->pos);
    }
    else if (due < old) {
        sift_up(a, e->pos);
    }
    else {
        sift_down(a, e->pos);
    }
}

static void heap_remove(gc_alerts_t *a, agent_t *e)
{
    int i = e->pos;
    agent_t *last;

    if (i < 0) {
        return;
    }
    e->pos = -1;
    last = a->heap[--a->nheap];
    if (i == a->nheap) {
        return;
    }
    heap_set(a, i, last);
    sift_up(a, i);
    sift_down(a, last->pos);
}

/* -------------------------------------------------------------- agents */

static void agents_init(gc_alerts_t *a, apr_pool_t *pool)
{
    a->agents_pool = pool;
    a->agents = apr_hash_make(pool);
    a->heap = NULL;
    a->nheap = a->cap = 0;
    a->nforgotten = 0;
    a->bytes = 0;
}

static agent_t *agent_new(gc_alerts_t *a, const char *user_id)
{
    apr_size_t len = strlen(user_id) + 1;
    agent_t *e = agents_alloc(a, sizeof(*e));
    char *id = agents_alloc(a, len);

    memcpy(id, user_id, len);
    memset(e, 0, sizeof(*e));
    e->user_id = id;
    e->pos = -1;
    /* apr_hash: one entry per key, and its bucket array doubling. */
    a->bytes += 5 * sizeof(void *) + 2 * sizeof(void *);
    apr_hash_set(a->agents, e->user_id, APR_HASH_KEY_STRING, e);
    return e;
}

/* Copy the live entries into a fresh pool, keeping their heap positions. */
static void compact(gc_alerts_t *a)
{
    apr_pool_t *old = a->agents_pool, *fresh;
    apr_hash_t *agents = a->agents;
    agent_t **heap = a->heap;
    int nheap = a->nheap, i;
    apr_hash_index_t *hi;

    if (apr_pool_create(&fresh, a->pool) != APR_SUCCESS) {
        return;
    }
    apr_pool_tag(fresh, "gcmon_alerts");
    agents_init(a, fresh);
    for (hi = apr_hash_first(NULL, agents); hi; hi = apr_hash_next(hi)) {
        agent_t *e = apr_hash_this_val(hi), *n;
        const char *id;

        if (!e->known) {
            continue;
        }
        n = agent_new(a, e->user_id);
        id = n->user_id;
        *n = *e;
        n->user_id = id;
        if (n->pos >= 0) {
            heap[n->pos] = n;
        }
    }
    a->cap = nheap > 64 ? nheap : 64;
    a->heap = agents_alloc(a, (apr_size_t)a->cap * sizeof(*a->heap));
    for (i = 0; i < nheap; i++) {
        heap_set(a, i, heap[i]);
    }
    a->nheap = nheap;
    apr_pool_destroy(old);
}

gc_alerts_t *gc_alerts_create(apr_pool_t *p, const apr_array_header_t *rules)
{
    gc_alerts_t *a;
    apr_pool_t *pool, *agents;

    if (apr_pool_create(&pool, p) != APR_SUCCESS || apr_pool_create(&agents, pool) != APR_SUCCESS) {
        return NULL;
    }
    apr_pool_tag(pool, "gcmon_alerts");
    apr_pool_tag(agents, "gcmon_alerts");
    a = apr_pcalloc(pool, sizeof(*a));
    a->pool = pool;
    rules_copy(a, rules);
    agents_init(a, agents);
    return a;
}

void gc_alerts_observe(gc_alerts_t *a, const char *user_id, const char *state, apr_time_t since)
{
    agent_t *e;
    const gc_alert_rule_t *rule;

    if (!a || !user_id || !state) {
        return;
    }
    rule = apr_hash_get(a->rules, state, APR_HASH_KEY_STRING);
    e = apr_hash_get(a->agents, user_id, APR_HASH_KEY_STRING);
    if (!e) {
        e = agent_new(a, user_id);
    }
    else if (e->known) {
        if (since < e->since || (since == e->since && rule == e->rule)) {
            return;
        }
    }
    else {
        a->nforgotten--;
    }
    e->known = 1;
    e->since = since;
    e->rule = rule;
    e->seq = 0;
    if (rule) {
        heap_schedule(a, e, since + rule->threshold);
    }
    else {
        heap_remove(a, e);
    }
}

void gc_alerts_forget(gc_alerts_t *a, const char *user_id)
{
    agent_t *e;
    int live;

    if (!a || !user_id) {
        return;
    }
    e = apr_hash_get(a->agents, user_id, APR_HASH_KEY_STRING);
    if (!e || !e->known) {
        return;
    }
    heap_remove(a, e);
    e->known = 0;
    e->rule = NULL;
    a->nforgotten++;
    live = (int)apr_hash_count(a->agents) - a->nforgotten;
    if (a->nforgotten > MIN_COMPACT && a->nforgotten > live) {
        compact(a);
    }
}

apr_time_t gc_alerts_next_due(const gc_alerts_t *a)
{
    return a && a->nheap > 0 ? a->heap[0]->due : 0;
}

/* The latest seq of e's episode due at `now` (≥ the scheduled one). */
static int latest_seq(const agent_t *e, apr_time_t now)
{
    const gc_alert_rule_t *r = e->rule;
    apr_int64_t n;

    if (r->repeat <= 0 || now < e->due) {
        return e->seq;
    }
    n = (now - e->since - r->threshold) / r->repeat;
    if (n > 0x7fffffff) {
        n = 0x7fffffff;
    }
    return (int)n > e->seq ? (int)n : e->seq;
}

int gc_alerts_take_due(gc_alerts_t *a, apr_time_t now, gc_alert_due_t *out, int max)
{
    int n = 0;

    while (a && n < max && a->nheap > 0 && a->heap[0]->due <= now) {
        agent_t *e = a->heap[0];
        const gc_alert_rule_t *r = e->rule;
        gc_alert_due_t *d = &out[n++];

        e->seq = latest_seq(e, now);
        d->user_id = e->user_id;
        d->state = r->state;
        d->episode_at = e->since;
        d->seq = e->seq;
        d->threshold = r->threshold;
        d->due_at = e->since + r->threshold + (apr_interval_time_t)e->seq * r->repeat;
        if (r->repeat > 0 && e->seq < 0x7fffffff) {
            e->seq++;
            heap_schedule(a, e, d->due_at + r->repeat);
        }
        else {
            heap_remove(a, e);
        }
    }
    return n;
}

int gc_alerts_scheduled(const gc_alerts_t *a)
{
    return a ? a->nheap : 0;
}

/* Tests only: bytes the engine has taken for its agents (entries, ids, hash,
 * heap) since its last compaction. */
apr_size_t gc_alerts_test_bytes(const gc_alerts_t *a);
apr_size_t gc_alerts_test_bytes(const gc_alerts_t *a)
{
    return a ? a->bytes : 0;
}
