/* The route tables in shared memory: slots under seqlocks of their own, a
 * writer lock and a refresh claim that a dead process never keeps (see the
 * header). */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_portable.h>

#include "gc_route_shm.h"

#define ROUTE_MAGIC 0x67635254u /* "gcRT" */
#define READ_TRIES 20000

typedef struct {
    _Atomic uint32_t seq; /* odd while the slot is written */
    uint32_t used;        /* holds a table */
    _Atomic uint64_t key; /* hash of the strategy id; 0: free */
    gc_route_table_t table;
} route_slot_t;

/* magic, lock_pid, version, slots and size keep their offsets in every
 * version (attach reads them). */
struct gc_route_shm {
    uint32_t magic;
    _Atomic int lock_pid;         /* writer lock: owner pid, 0 = free */
    uint32_t version;             /* GC_ROUTE_SHM_VERSION */
    uint32_t slots;               /* GC_ROUTE_SHM_SLOTS */
    uint64_t size;                /* sizeof(gc_route_shm_t) */
    _Atomic int claim_pid;        /* refresh claim: owner pid, 0 = none */
    _Atomic uint32_t tables;      /* slots in use */
    _Atomic int64_t claim_at;     /* when the claim was taken */
    _Atomic int64_t attempted_at; /* the last claim (a refresh attempt) */
    _Atomic int64_t refreshed_at; /* read_at of the last publish */
    _Atomic uint64_t generation;  /* publishes so far */
    route_slot_t slot[GC_ROUTE_SHM_SLOTS];
};

/* The offsets tests/unit/test_route_shm.c forges (a dead writer, a claim). */
_Static_assert(offsetof(struct gc_route_shm, lock_pid) == 4, "route block: lock");
_Static_assert(offsetof(struct gc_route_shm, version) == 8, "route block: version");
_Static_assert(offsetof(struct gc_route_shm, slots) == 12, "route block: slots");
_Static_assert(offsetof(struct gc_route_shm, size) == 16, "route block: size");
_Static_assert(offsetof(struct gc_route_shm, claim_pid) == 24, "route block: claim");
_Static_assert(offsetof(struct gc_route_shm, claim_at) == 32, "route block: claim time");
_Static_assert(offsetof(struct gc_route_shm, attempted_at) == 40, "route block: attempt");
_Static_assert(offsetof(struct gc_route_shm, slot) == 64, "route block: slots");
_Static_assert(sizeof(route_slot_t) == 16 + GC_ROUTE_TABLE_SIZE, "route slot");

apr_size_t gc_route_shm_size(void)
{
    return sizeof(gc_route_shm_t);
}

gc_route_shm_t *gc_route_shm_init(void *mem)
{
    gc_route_shm_t *b = mem;
    int i;

    memset(b, 0, sizeof(*b));
    b->version = GC_ROUTE_SHM_VERSION;
    b->slots = GC_ROUTE_SHM_SLOTS;
    b->size = sizeof(*b);
    atomic_init(&b->lock_pid, 0);
    atomic_init(&b->claim_pid, 0);
    atomic_init(&b->tables, 0);
    atomic_init(&b->claim_at, 0);
    atomic_init(&b->attempted_at, 0);
    atomic_init(&b->refreshed_at, 0);
    atomic_init(&b->generation, 0);
    for (i = 0; i < GC_ROUTE_SHM_SLOTS; i++) {
        atomic_init(&b->slot[i].seq, 0);
        atomic_init(&b->slot[i].key, 0);
    }
    atomic_thread_fence(memory_order_release);
    b->magic = ROUTE_MAGIC;
    return b;
}

gc_route_shm_t *gc_route_shm_attach(void *mem, apr_size_t size)
{
    gc_route_shm_t *b = mem;

    if (!mem || size < sizeof(*b) || ((uintptr_t)mem % _Alignof(gc_route_shm_t)) != 0) {
        return NULL;
    }
    if (b->magic != ROUTE_MAGIC || b->version != GC_ROUTE_SHM_VERSION
        || b->slots != GC_ROUTE_SHM_SLOTS || b->size != sizeof(*b)) {
        return NULL;
    }
    return b;
}

/* ---------------------------------------------------------------- locks */

static int pid_gone(int pid)
{
    return pid > 0 && kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

/* Take the writer lock; steal it from a dead owner. Held only while tables
 * are copied in (no database call inside). */
static void lock(gc_route_shm_t *b)
{
    int me = (int)getpid();
    unsigned spins = 0;

    for (;;) {
        int owner = 0;
        if (atomic_compare_exchange_weak(&b->lock_pid, &owner, me)) {
            return;
        }
        if (owner != 0 && owner != me && pid_gone(owner)
            && atomic_compare_exchange_strong(&b->lock_pid, &owner, me)) {
            return;
        }
        if (++spins % 64 == 0) {
            sched_yield();
        }
    }
}

static void unlock(gc_route_shm_t *b)
{
    atomic_store(&b->lock_pid, 0);
}

/* Is the block fresh at now: its last refresh or attempt less than bound
 * away (either way: a clock set back by more than bound makes it due)? */
static int fresh(gc_route_shm_t *b, apr_time_t now, apr_interval_time_t bound)
{
    apr_time_t refreshed = atomic_load(&b->refreshed_at);
    apr_time_t attempted = atomic_load(&b->attempted_at);
    apr_time_t last = refreshed > attempted ? refreshed : attempted;

    return last > 0 && now - last < bound && last - now < bound;
}

int gc_route_shm_claim(gc_route_shm_t *b, apr_time_t now, apr_interval_time_t bound)
{
    int me = (int)getpid();
    int owner;

    if (fresh(b, now, bound)) {
        return 0;
    }
    owner = atomic_load(&b->claim_pid);
    if (owner != 0 && owner != me) {
        apr_time_t at = atomic_load(&b->claim_at);
        if (!pid_gone(owner) && now - at < GC_ROUTE_CLAIM_TTL && at - now < GC_ROUTE_CLAIM_TTL) {
            return 0; /* a live process is refreshing */
        }
    }
    if (!atomic_compare_exchange_strong(&b->claim_pid, &owner, me)) {
        return 0;
    }
    atomic_store(&b->claim_at, now);
    /* Someone may have refreshed between the look and the claim. */
    if (fresh(b, now, bound)) {
        gc_route_shm_release(b);
        return 0;
    }
    atomic_store(&b->attempted_at, now);
    return 1;
}

void gc_route_shm_release(gc_route_shm_t *b)
{
    int me = (int)getpid();

    atomic_compare_exchange_strong(&b->claim_pid, &me, 0);
}

/* ---------------------------------------------------------------- slots */

/* FNV-1a over the id; never 0 (a free slot's key). */
static uint64_t id_key(const char *id)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i;

    for (i = 0; id[i] && i < GC_STRATEGY_ID_SIZE; i++) {
        h ^= (unsigned char)id[i];
        h *= 0x100000001b3ull;
    }
    return h ? h : 1;
}

static int same_id(const char *a, const char *b)
{
    return strncmp(a, b, GC_STRATEGY_ID_SIZE) == 0;
}

static void slot_write_begin(route_slot_t *s)
{
    uint32_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);

    /* A writer that died inside left it odd: make it even first. */
    if (q & 1u) {
        q++;
    }
    atomic_store_explicit(&s->seq, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void slot_write_end(route_slot_t *s)
{
    uint32_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);

    atomic_store_explicit(&s->seq, q + 1, memory_order_release);
}

/* The used slot holding id (writer side, lock held), or -1. */
static int slot_of(gc_route_shm_t *b, uint64_t key, const char *id)
{
    int i;

    for (i = 0; i < GC_ROUTE_SHM_SLOTS; i++) {
        route_slot_t *s = &b->slot[i];
        if (s->used && atomic_load_explicit(&s->key, memory_order_relaxed) == key
            && same_id(s->table.strategy_id, id)) {
            return i;
        }
    }
    return -1;
}

/* Put t into slot i unless it holds the same table already (generation
 * aside); a rewritten table gets the publish's generation. */
static void slot_put(route_slot_t *s, const gc_route_table_t *t, uint64_t key, uint64_t gen)
{
    if (s->used && s->table.version) {
        uint64_t kept = s->table.generation;
        int same;
        s->table.generation = t->generation;
        same = memcmp(&s->table, t, sizeof(*t)) == 0;
        s->table.generation = kept;
        if (same) {
            return;
        }
    }
    slot_write_begin(s);
    memcpy(&s->table, t, sizeof(*t));
    s->table.generation = gen;
    s->used = 1;
    atomic_store_explicit(&s->key, key, memory_order_relaxed);
    slot_write_end(s);
}

static void slot_clear(route_slot_t *s)
{
    slot_write_begin(s);
    s->used = 0;
    atomic_store_explicit(&s->key, 0, memory_order_relaxed);
    s->table.version = 0;
    s->table.strategy_id[0] = '\0';
    slot_write_end(s);
}

static int compiled(const gc_route_table_t *t)
{
    return t->version == GC_ROUTE_TABLE_VERSION && t->strategy_id[0]
           && memchr(t->strategy_id, '\0', GC_STRATEGY_ID_SIZE) != NULL;
}

int gc_route_shm_publish(gc_route_shm_t *b, const gc_route_table_t *tables, int n,
                         apr_time_t read_at)
{
    unsigned char keep[GC_ROUTE_SHM_SLOTS];
    uint64_t gen;
    uint32_t used = 0;
    int i, j, left = 0;

    lock(b);
    if (read_at < atomic_load(&b->refreshed_at)) {
        unlock(b);
        gc_route_shm_release(b);
        return -1; /* a newer publish came first */
    }
    gen = atomic_load(&b->generation) + 1;
    memset(keep, 0, sizeof(keep));
    /* Strategies that have a slot keep it (readers find them there all
     * along), rewritten when their table changed. */
    for (i = 0; i < n; i++) {
        if (compiled(&tables[i])) {
            uint64_t key = id_key(tables[i].strategy_id);
            int at = slot_of(b, key, tables[i].strategy_id);
            if (at >= 0) {
                keep[at] = 1;
                slot_put(&b->slot[at], &tables[i], key, gen);
            }
        }
    }
    /* Strategies no longer active. */
    for (j = 0; j < GC_ROUTE_SHM_SLOTS; j++) {
        if (b->slot[j].used && !keep[j]) {
            slot_clear(&b->slot[j]);
        }
    }
    /* New ones take free slots. */
    for (i = 0, j = 0; i < n; i++) {
        uint64_t key;
        if (!compiled(&tables[i])) {
            left++;
            continue;
        }
        key = id_key(tables[i].strategy_id);
        if (slot_of(b, key, tables[i].strategy_id) >= 0) {
            continue;
        }
        while (j < GC_ROUTE_SHM_SLOTS && b->slot[j].used) {
            j++;
        }
        if (j == GC_ROUTE_SHM_SLOTS) {
            left++;
            continue;
        }
        slot_put(&b->slot[j], &tables[i], key, gen);
    }
    for (j = 0; j < GC_ROUTE_SHM_SLOTS; j++) {
        used += b->slot[j].used ? 1u : 0u;
    }
    atomic_store(&b->tables, used);
    atomic_store(&b->generation, gen);
    atomic_store(&b->refreshed_at, read_at);
    unlock(b);
    gc_route_shm_release(b);
    return left;
}

/* ---------------------------------------------------------------- read */

void gc_route_shm_info(gc_route_shm_t *b, gc_route_shm_info_t *out)
{
    out->generation = atomic_load(&b->generation);
    out->refreshed_at = atomic_load(&b->refreshed_at);
    out->tables = (int)atomic_load(&b->tables);
}

/* A consistent copy of slot s: 0, or -1 when a writer stayed inside. */
static int slot_read(route_slot_t *s, gc_route_table_t *t)
{
    int i;

    for (i = 0; i < READ_TRIES; i++) {
        uint32_t s1 = atomic_load_explicit(&s->seq, memory_order_acquire), s2;
        if (s1 & 1u) {
            if (i % 64 == 63) {
                sched_yield();
            }
            continue;
        }
        memcpy(t, &s->table, sizeof(*t));
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&s->seq, memory_order_relaxed);
        if (s1 == s2) {
            return 0;
        }
    }
    return -1;
}

gc_route_shm_e gc_route_shm_lookup(gc_route_shm_t *b, const char *strategy_id, gc_route_table_t *t)
{
    uint64_t key;
    int i, busy = 0;

    if (!b || atomic_load_explicit(&b->refreshed_at, memory_order_acquire) == 0) {
        return GC_ROUTE_NOT_LOADED;
    }
    if (!strategy_id || !*strategy_id) {
        return GC_ROUTE_UNKNOWN;
    }
    key = id_key(strategy_id);
    for (i = 0; i < GC_ROUTE_SHM_SLOTS; i++) {
        route_slot_t *s = &b->slot[i];
        if (atomic_load_explicit(&s->key, memory_order_relaxed) != key) {
            continue;
        }
        if (slot_read(s, t) != 0) {
            busy = 1;
            continue;
        }
        if (t->version && same_id(t->strategy_id, strategy_id)) {
            return GC_ROUTE_OK;
        }
    }
    return busy ? GC_ROUTE_BUSY : GC_ROUTE_UNKNOWN;
}

gc_route_shm_e gc_route_shm_decide(gc_route_shm_t *b, const char *strategy_id, double rand01,
                                   apr_time_t now, gc_route_decision_t *out)
{
    gc_route_table_t t;
    gc_route_shm_e rc = gc_route_shm_lookup(b, strategy_id, &t);

    memset(out, 0, sizeof(*out));
    if (rc != GC_ROUTE_OK) {
        return rc;
    }
    if (gc_strategy_route(&t, rand01, now, GC_STRATEGY_MAX_AGE, &out->route) != 0) {
        return GC_ROUTE_UNKNOWN; /* not a table this build can read */
    }
    out->observed_at = t.observed_at;
    return GC_ROUTE_OK;
}

/* ---------------------------------------------------------------- random */

static _Thread_local uint64_t rng[4];
static _Thread_local int rng_seeded;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(void)
{
    uint64_t x;
    int i;

    if (apr_generate_random_bytes((unsigned char *)rng, sizeof(rng)) != APR_SUCCESS
        || (rng[0] | rng[1] | rng[2] | rng[3]) == 0) {
        x = (uint64_t)apr_time_now() ^ ((uint64_t)getpid() << 32)
            ^ (uint64_t)(uintptr_t)apr_os_thread_current();
        for (i = 0; i < 4; i++) {
            rng[i] = splitmix64(&x);
        }
    }
    rng_seeded = 1;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

double gc_route_shm_rand(void)
{
    uint64_t r, t;

    if (!rng_seeded) {
        rng_seed();
    }
    r = rng[0] + rng[3];
    t = rng[1] << 17;
    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl(rng[3], 45);
    return (double)(r >> 11) * 0x1.0p-53;
}
