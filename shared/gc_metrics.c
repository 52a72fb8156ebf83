/* Prometheus metrics of gcmon in shared memory (see gc_metrics.h, SPEC §6).
 *
 * A static table describes every family (in gc_metric_id_e order); shared
 * memory holds a small header (base cell index of every family, no pointers)
 * and an array of atomic 64-bit cells:
 *   counter / gauge   1 cell per series
 *   histogram         per series: one cell per bucket (observations with
 *                     le[i-1] < v <= le[i]), one overflow cell (v > last le),
 *                     then the sum in microseconds. _count is the sum of the
 *                     bucket cells, so `le="+Inf"` always equals `_count`.
 * Series of a labelled family are numbered v1 * n2 + v2 over the fixed value
 * lists; a value not in its list counts as "other" (always the last entry). */
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <apr_strings.h>

#include "gc_api_routes.h"
#include "gc_log.h"
#include "gc_version.h"
#include "gc_metrics.h"
#include "gc_metrics_test.h"
#include "gc_state.h"
#include "gc_webhook.h"
#include "gc_webhook_targets.h"

#define GC_METRICS_MAGIC 0x67634d32u /* "gcM2": segments with a layout hash */

typedef enum { MT_COUNTER, MT_GAUGE, MT_HISTOGRAM } metric_type_e;

typedef struct {
    const char *name; /* "gcmon_…" */
    const char *help;
    metric_type_e type;
    int nlabels;
    const char *label[2];
    const char *const *values[2]; /* fixed values, "other" last */
    int nvalues[2];
    const double *buckets; /* histograms: upper bounds, ascending */
    int nbuckets;
} family_t;

#define PREFIX "gcmon_"
#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define VALUES(a) (a), COUNT_OF(a)

static const char *const v_reconnect_reason[] = { "heartbeat_timeout", "pong_timeout",
                                                  "socket_closing",    "no_longer_subscribed",
                                                  "token_revoked",     "channel_expired",
                                                  "connect_error",     "closed",
                                                  "shutdown",          "other" };
static const char *const v_message_kind[] = {
    "event",         "heartbeat", "pong",     "socket_closing", "no_longer_subscribed",
    "token_revoked", "malformed", "oversize", "unknown",        "unmonitored",
    "other"
};
static const char *const v_stored_source[] = { "stream", "resync", "inbound", "other" };
static const char *const v_dropped_reason[] = { "queue_full", "db_error", "malformed", "shutdown",
                                                "other" };
static const char *const v_alert_result[] = { "raised", "cleared", "repeated", "suppressed",
                                              "other" };
/* The target names of gc_webhook_targets.h, "other" last. */
#define WEBHOOK_TARGET_VALUE(name, directive, member, slack, event, label, help) #name,
static const char *const v_webhook_target[] = { GC_WEBHOOK_TARGET_LIST(
    WEBHOOK_TARGET_VALUE) "other" };
#undef WEBHOOK_TARGET_VALUE
static const char *const v_webhook_result[] = { "delivered", "retry", "failed", "other" };
static const char *const v_upstream_op[] = { "oauth_token",
                                             "org_get",
                                             "users_get",
                                             "user_get",
                                             "presence_get",
                                             "presence_patch",
                                             "presence_definitions",
                                             "routingstatus_get",
                                             "routingstatus_put",
                                             "channels_create",
                                             "channels_list",
                                             "channel_head",
                                             "subscriptions_put",
                                             "subscriptions_post",
                                             "subscriptions_delete",
                                             "queue_get",
                                             "queue_put",
                                             "queue_members",
                                             "skills_get",
                                             "skill_put",
                                             "queue_observations",
                                             "conversation_aggregates",
                                             "flow_instances_query",
                                             "flow_jobs_create",
                                             "flow_job_get",
                                             "flow_download",
                                             "audits_query",
                                             "audits_get",
                                             "audits_results",
                                             "webhook",
                                             "other" };
static const char *const v_version[] = { GCMON_VERSION, "other" };
/* Must match gc_metrics_code_label(). */
static const char *const v_code[] = { "200", "201", "202", "204", "304",   "400",  "401", "403",
                                      "404", "405", "409", "412", "413",   "415",  "422", "429",
                                      "500", "502", "503", "504", "error", "other" };
#define STATE_VALUE(name) #name,
static const char *const v_state_status[] = { GC_PRESENCE_LIST(STATE_VALUE) "other" };
#undef STATE_VALUE
static const char *const v_state_result[] = { "success",        "invalid",
                                              "not_found",      "precondition_failed",
                                              "not_allowed",    "throttled",
                                              "upstream_error", "other" };
static const char *const v_validation_error[] = { "malformed_json",
                                                  "missing_field",
                                                  "invalid_type",
                                                  "invalid_value",
                                                  "unknown_status",
                                                  "transition_not_allowed",
                                                  "precondition_failed",
                                                  "body_too_large",
                                                  "unsupported_media_type",
                                                  "csrf_rejected",
                                                  "duplicate_key",
                                                  "actor_missing",
                                                  "other" };
/* The route names of gc_api_routes.h, "other" last. */
#define API_ROUTE_VALUE(name) #name,
static const char *const v_api_route[] = { GC_API_ROUTE_LIST(API_ROUTE_VALUE) "other" };
#undef API_ROUTE_VALUE

static const double b_event_lag[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                      1,     2.5,  5,     10,   30,  60 };
static const double b_latency[] = { 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };

/* render_family() snapshots at most MAX_BUCKETS + 1 bucket cells. */
#define MAX_BUCKETS 31
_Static_assert(COUNT_OF(b_event_lag) <= MAX_BUCKETS, "too many buckets");
_Static_assert(COUNT_OF(b_latency) <= MAX_BUCKETS, "too many buckets");

#define GAUGE(n, h)                                                                 \
    {                                                                               \
        PREFIX n, h, MT_GAUGE, 0, { NULL, NULL }, { NULL, NULL }, { 0, 0 }, NULL, 0 \
    }
#define GAUGE1(n, h, l, v)                                                              \
    {                                                                                   \
        PREFIX n, h, MT_GAUGE, 1, { l, NULL }, { v, NULL }, { COUNT_OF(v), 0 }, NULL, 0 \
    }
#define COUNTER0(n, h)                                                                \
    {                                                                                 \
        PREFIX n, h, MT_COUNTER, 0, { NULL, NULL }, { NULL, NULL }, { 0, 0 }, NULL, 0 \
    }
#define COUNTER1(n, h, l, v)                                                              \
    {                                                                                     \
        PREFIX n, h, MT_COUNTER, 1, { l, NULL }, { v, NULL }, { COUNT_OF(v), 0 }, NULL, 0 \
    }
#define COUNTER2(n, h, la, va, lb, vb)                                                            \
    {                                                                                             \
        PREFIX n, h, MT_COUNTER, 2, { la, lb }, { va, vb }, { COUNT_OF(va), COUNT_OF(vb) }, NULL, \
            0                                                                                     \
    }
#define HISTO0(n, h, b)                                                                        \
    {                                                                                          \
        PREFIX n, h, MT_HISTOGRAM, 0, { NULL, NULL }, { NULL, NULL }, { 0, 0 }, b, COUNT_OF(b) \
    }
#define HISTO2(n, h, la, va, lb, vb, b)                                                          \
    {                                                                                            \
        PREFIX n, h, MT_HISTOGRAM, 2, { la, lb }, { va, vb }, { COUNT_OF(va), COUNT_OF(vb) }, b, \
            COUNT_OF(b)                                                                          \
    }

/* In gc_metric_id_e order (checked at run time in gc_metrics_init). */
static const family_t families[GC_MET__COUNT] = {
    [GC_MET_STREAM_CONNECTED] = GAUGE(
        "stream_connected", "1 while this server holds a connected notification stream, else 0."),
    [GC_MET_STREAM_CHANNELS] = GAUGE("stream_channels", "Notification channels currently open."),
    [GC_MET_STREAM_TOPICS] =
        GAUGE("stream_topics", "Topics currently subscribed across all channels."),
    [GC_MET_STREAM_RECONNECTS] =
        COUNTER1("stream_reconnects_total", "Notification stream reconnects by reason.", "reason",
                 v_reconnect_reason),
    [GC_MET_STREAM_MESSAGES] =
        COUNTER1("stream_messages_total", "Messages received on the notification stream by kind.",
                 "kind", v_message_kind),
    [GC_MET_EVENTS_STORED] =
        COUNTER1("events_stored_total", "Agent status events written to the database by source.",
                 "source", v_stored_source),
    [GC_MET_EVENTS_DROPPED] =
        COUNTER1("events_dropped_total", "Agent status events not stored, by reason.", "reason",
                 v_dropped_reason),
    [GC_MET_EVENT_LAG] =
        HISTO0("event_lag_seconds", "Delay from an event's time to it being stored, in seconds.",
               b_event_lag),
    [GC_MET_AGENTS_MONITORED] = GAUGE("agents_monitored", "Agents currently monitored."),
    [GC_MET_IDLE_ALERTS] = COUNTER1("idle_alerts_total", "Idle alert transitions by result.",
                                    "result", v_alert_result),
    [GC_MET_WEBHOOK_DELIVERIES] = COUNTER2(
        "webhook_deliveries_total", "Outbound webhook delivery attempts by target and result.",
        "target", v_webhook_target, "result", v_webhook_result),
    [GC_MET_OUTBOX_PENDING] =
        GAUGE("outbox_pending", "Outbound webhook deliveries waiting in the outbox."),
    [GC_MET_UPSTREAM_REQUESTS] =
        COUNTER2("upstream_requests_total",
                 "Requests to the Genesys Cloud API by operation and HTTP status.", "op",
                 v_upstream_op, "code", v_code),
    [GC_MET_UPSTREAM_LATENCY] =
        HISTO0("upstream_latency_seconds", "Latency of Genesys Cloud API requests, in seconds.",
               b_latency),
    [GC_MET_UPSTREAM_THROTTLED] =
        COUNTER0("upstream_throttled_total",
                 "Genesys Cloud API requests answered 429 or held back by the request budget."),
    [GC_MET_STATE_UPDATE_LATENCY] =
        HISTO2("state_update_latency_seconds",
               "Duration of agent status changes through the API, in seconds.", "status",
               v_state_status, "result", v_state_result, b_latency),
    [GC_MET_VALIDATION_ERRORS] =
        COUNTER1("validation_errors_total", "API requests rejected by validation, by error type.",
                 "error_type", v_validation_error),
    [GC_MET_API_REQUESTS] =
        COUNTER2("api_requests_total", "Requests to the gcmon API by route and HTTP status.",
                 "route", v_api_route, "code", v_code),
    [GC_MET_BUDGET_USED] =
        GAUGE("upstream_budget_used",
              "Genesys Cloud API requests counted in the current window of GcmonRateLimit."),
    [GC_MET_BUDGET_LIMIT] = GAUGE(
        "upstream_budget_limit", "Genesys Cloud API requests allowed per window (GcmonRateLimit)."),
    [GC_MET_BUILD_INFO] =
        GAUGE1("build_info", "1, labelled with the gcmon version serving.", "version", v_version),
    [GC_MET_LAST_EVENT] =
        GAUGE("last_event_timestamp_seconds",
              "When the last agent status event was stored (Unix time; 0: none since start)."),
#ifdef GCMON_TEST_METRICS_LAYOUT
    [GC_MET_TEST_LAYOUT] = GAUGE(
        "test_layout", "Only in the GCMON_TEST_METRICS_LAYOUT build (tests of the layout check)."),
#endif
};

/* The header's first three fields keep their place in every layout. */
struct gc_metrics {
    uint32_t magic;
    uint32_t ncells;
    uint64_t layout;              /* gc_metrics_layout() of the initialising build */
    uint32_t base[GC_MET__COUNT]; /* first cell of every family */
    _Atomic long long cells[];
};

static int series_count(const family_t *f)
{
    int n = 1, i;
    for (i = 0; i < f->nlabels; i++) {
        n *= f->nvalues[i];
    }
    return n;
}

/* Cells per series. */
static int series_width(const family_t *f)
{
    return f->type == MT_HISTOGRAM ? f->nbuckets + 2 : 1;
}

static uint32_t total_cells(void)
{
    uint32_t n = 0;
    int id;
    for (id = 0; id < GC_MET__COUNT; id++) {
        n += (uint32_t)(series_count(&families[id]) * series_width(&families[id]));
    }
    return n;
}

apr_size_t gc_metrics_size(void)
{
    return offsetof(struct gc_metrics, cells) + (apr_size_t)total_cells() * sizeof(long long);
}

/* FNV-1a, 64 bit. */
static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    return fnv(h, s ? s : "", (s ? strlen(s) : 0) + 1);
}

static uint64_t fnv_u64(uint64_t h, uint64_t v)
{
    return fnv(h, &v, sizeof(v));
}

/* Everything that decides where a series' cells are, and what they mean. */
static uint64_t family_hash(uint64_t h, const family_t *f)
{
    int i, j;

    h = fnv_str(h, f->name);
    h = fnv_u64(h, (uint64_t)f->type);
    h = fnv_u64(h, (uint64_t)f->nlabels);
    for (i = 0; i < f->nlabels; i++) {
        h = fnv_str(h, f->label[i]);
        h = fnv_u64(h, (uint64_t)f->nvalues[i]);
        for (j = 0; j < f->nvalues[i]; j++) {
            h = fnv_str(h, f->values[i][j]);
        }
    }
    h = fnv_u64(h, (uint64_t)f->nbuckets);
    for (i = 0; i < f->nbuckets; i++) {
        uint64_t bits;
        memcpy(&bits, &f->buckets[i], sizeof(bits));
        h = fnv_u64(h, bits);
    }
    return h;
}

apr_uint64_t gc_metrics_layout(void)
{
    uint64_t h = UINT64_C(14695981039346656037);
    int id;

    h = fnv_u64(h, offsetof(struct gc_metrics, cells));
    h = fnv_u64(h, sizeof(long long));
    h = fnv_u64(h, (uint64_t)GC_MET__COUNT);
    for (id = 0; id < GC_MET__COUNT; id++) {
        h = family_hash(h, &families[id]);
    }
    return h;
}

gc_metrics_t *gc_metrics_attach(void *mem, apr_size_t size)
{
    gc_metrics_t *m = mem;

    if (mem == NULL || size < offsetof(struct gc_metrics, base)
        || ((uintptr_t)mem % _Alignof(struct gc_metrics)) != 0) {
        return NULL;
    }
    if (m->magic != GC_METRICS_MAGIC || m->layout != gc_metrics_layout()
        || m->ncells != total_cells() || size < gc_metrics_size()) {
        return NULL;
    }
    return m;
}

gc_metrics_t *gc_metrics_init(void *mem)
{
    gc_metrics_t *m = mem;
    uint32_t n = 0, i;
    int id;

    if (mem == NULL || ((uintptr_t)mem % _Alignof(struct gc_metrics)) != 0) {
        gc_log(GC_LOG_MARK, GC_LOG_ERR, APR_EINVAL,
               GCMON_LOGNO(260) "metrics: no (aligned) shared memory to initialise");
        return NULL;
    }
    for (id = 0; id < GC_MET__COUNT; id++) {
        if (families[id].name == NULL) {
            gc_log(GC_LOG_MARK, GC_LOG_CRIT, APR_EGENERAL,
                   GCMON_LOGNO(261) "metrics: family %d has no definition", id);
            return NULL;
        }
        m->base[id] = n;
        n += (uint32_t)(series_count(&families[id]) * series_width(&families[id]));
    }
    m->ncells = n;
    m->layout = gc_metrics_layout();
    for (i = 0; i < n; i++) {
        atomic_init(&m->cells[i], 0);
    }
    m->magic = GC_METRICS_MAGIC;
    atomic_thread_fence(memory_order_seq_cst);
    gc_metrics_set(m, GC_MET_BUILD_INFO, GCMON_VERSION, NULL, 1);
    return m;
}

static int value_index(const family_t *f, int which, const char *v)
{
    int i, n = f->nvalues[which];

    if (v != NULL) {
        for (i = 0; i < n - 1; i++) {
            if (strcmp(f->values[which][i], v) == 0) {
                return i;
            }
        }
    }
    return n - 1; /* "other" */
}

/* First cell of the series, or NULL if the call cannot be honoured. */
static _Atomic long long *series_cells(gc_metrics_t *m, gc_metric_id_e id, const char *l1,
                                       const char *l2, const family_t **fp)
{
    const family_t *f;
    int s = 0;

    if (m == NULL || (unsigned)id >= (unsigned)GC_MET__COUNT || m->magic != GC_METRICS_MAGIC) {
        return NULL;
    }
    f = &families[id];
    if (f->nlabels >= 1) {
        s = value_index(f, 0, l1);
    }
    if (f->nlabels >= 2) {
        s = s * f->nvalues[1] + value_index(f, 1, l2);
    }
    *fp = f;
    return &m->cells[m->base[id] + (uint32_t)(s * series_width(f))];
}

void gc_metrics_add(gc_metrics_t *m, gc_metric_id_e id, const char *l1, const char *l2,
                    long long by)
{
    const family_t *f = NULL;
    _Atomic long long *c = series_cells(m, id, l1, l2, &f);

    if (c == NULL) {
        return;
    }
    if (f->type == MT_HISTOGRAM || (f->type == MT_COUNTER && by < 0)) {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, APR_EINVAL,
               GCMON_LOGNO(262) "metrics: add %lld to %s ignored", by, f->name);
        return;
    }
    atomic_fetch_add_explicit(c, by, memory_order_relaxed);
}

void gc_metrics_set(gc_metrics_t *m, gc_metric_id_e id, const char *l1, const char *l2,
                    long long value)
{
    const family_t *f = NULL;
    _Atomic long long *c = series_cells(m, id, l1, l2, &f);

    if (c == NULL) {
        return;
    }
    if (f->type == MT_HISTOGRAM) {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, APR_EINVAL,
               GCMON_LOGNO(263) "metrics: set on histogram %s ignored", f->name);
        return;
    }
    atomic_store_explicit(c, value, memory_order_relaxed);
}

/* Largest observation kept in the sum (about 31 years): no overflow. */
#define MAX_OBSERVATION_S 1e9

void gc_metrics_observe(gc_metrics_t *m, gc_metric_id_e id, const char *l1, const char *l2,
                        double seconds)
{
    const family_t *f = NULL;
    _Atomic long long *c = series_cells(m, id, l1, l2, &f);
    int i;

    if (c == NULL) {
        return;
    }
    if (f->type != MT_HISTOGRAM || isnan(seconds)) {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, APR_EINVAL,
               GCMON_LOGNO(264) "metrics: observation for %s ignored", f->name);
        return;
    }
    if (seconds < 0) {
        seconds = 0; /* e.g. clock skew on event lag: counts as "no delay" */
    }
    for (i = 0; i < f->nbuckets && seconds > f->buckets[i]; i++) {
    }
    atomic_fetch_add_explicit(&c[i], 1, memory_order_relaxed);
    if (seconds > MAX_OBSERVATION_S) {
        seconds = MAX_OBSERVATION_S;
    }
    atomic_fetch_add_explicit(&c[f->nbuckets + 1], llround(seconds * 1e6), memory_order_relaxed);
}

static long long histogram_count(const family_t *f, _Atomic long long *c)
{
    long long n = 0;
    int i;
    for (i = 0; i <= f->nbuckets; i++) {
        n += atomic_load_explicit(&c[i], memory_order_relaxed);
    }
    return n;
}

long long gc_metrics_get(gc_metrics_t *m, gc_metric_id_e id, const char *l1, const char *l2)
{
    const family_t *f = NULL;
    _Atomic long long *c = series_cells(m, id, l1, l2, &f);

    if (c == NULL) {
        return 0;
    }
    if (f->type == MT_HISTOGRAM) {
        return histogram_count(f, c);
    }
    return atomic_load_explicit(c, memory_order_relaxed);
}

const char *gc_metrics_code_label(int status)
{
    switch (status) {
    case 0: return "error";
    case 200: return "200";
    case 201: return "201";
    case 202: return "202";
    case 204: return "204";
    case 304: return "304";
    case 400: return "400";
    case 401: return "401";
    case 403: return "403";
    case 404: return "404";
    case 405: return "405";
    case 409: return "409";
    case 412: return "412";
    case 413: return "413";
    case 415: return "415";
    case 422: return "422";
    case 429: return "429";
    case 500: return "500";
    case 502: return "502";
    case 503: return "503";
    case 504: return "504";
    default: return "other";
    }
}

/* --- rendering ----------------------------------------------------------- */

typedef struct {
    apr_pool_t *p;
    char *buf;
    apr_size_t len, cap;
} strbuf_t;

static void sb_reserve(strbuf_t *sb, apr_size_t more)
{
    if (sb->len + more + 1 > sb->cap) {
        apr_size_t cap = sb->cap ? sb->cap : 4096;
        char *nb;
        while (sb->len + more + 1 > cap) {
            cap *= 2;
        }
        nb = apr_palloc(sb->p, cap);
        if (sb->len) {
            memcpy(nb, sb->buf, sb->len);
        }
        sb->buf = nb;
        sb->cap = cap;
    }
}

static void sb_add(strbuf_t *sb, const char *s, apr_size_t n)
{
    sb_reserve(sb, n);
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

static void sb_str(strbuf_t *sb, const char *s)
{
    sb_add(sb, s, strlen(s));
}

static void sb_printf(strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf_t *sb, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((apr_size_t)n < sizeof(tmp)) {
        sb_add(sb, tmp, (apr_size_t)n);
        return;
    }
    sb_reserve(sb, (apr_size_t)n);
    va_start(ap, fmt);
    vsnprintf(sb->buf + sb->len, (apr_size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (apr_size_t)n;
}

/* Label values escape \\ \" and newline; HELP text escapes \\ and newline. */
static void sb_escaped(strbuf_t *sb, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\') {
            sb_add(sb, "\\\\", 2);
        }
        else if (*s == '\n') {
            sb_add(sb, "\\n", 2);
        }
        else if (quote && *s == '"') {
            sb_add(sb, "\\\"", 2);
        }
        else {
            sb_add(sb, s, 1);
        }
    }
}

static const char *type_name(metric_type_e t)
{
    return t == MT_COUNTER ? "counter" : t == MT_GAUGE ? "gauge" : "histogram";
}

/* `name{l1="v1",l2="v2"[,le="x"]} ` (no braces when there are no labels). */
static void sb_series(strbuf_t *sb, const family_t *f, const char *suffix, const int *vi,
                      const char *le)
{
    int i;

    sb_str(sb, f->name);
    sb_str(sb, suffix);
    if (f->nlabels > 0 || le != NULL) {
        sb_add(sb, "{", 1);
        for (i = 0; i < f->nlabels; i++) {
            if (i > 0) {
                sb_add(sb, ",", 1);
            }
            sb_str(sb, f->label[i]);
            sb_add(sb, "=\"", 2);
            sb_escaped(sb, f->values[i][vi[i]], 1);
            sb_add(sb, "\"", 1);
        }
        if (le != NULL) {
            sb_str(sb, f->nlabels > 0 ? ",le=\"" : "le=\"");
            sb_str(sb, le);
            sb_add(sb, "\"", 1);
        }
        sb_add(sb, "}", 1);
    }
    sb_add(sb, " ", 1);
}

static void render_family(strbuf_t *sb, gc_metrics_t *m, int id)
{
    const family_t *f = &families[id];
    int nseries = series_count(f), width = series_width(f), s;

    sb_printf(sb, "# HELP %s ", f->name);
    sb_escaped(sb, f->help, 0);
    sb_printf(sb, "\n# TYPE %s %s\n", f->name, type_name(f->type));

    for (s = 0; s < nseries; s++) {
        _Atomic long long *c = &m->cells[m->base[id] + (uint32_t)(s * width)];
        int vi[2] = { 0, 0 };

        if (f->nlabels == 1) {
            vi[0] = s;
        }
        else if (f->nlabels == 2) {
            vi[0] = s / f->nvalues[1];
            vi[1] = s % f->nvalues[1];
        }
        if (f->type != MT_HISTOGRAM) {
            long long v = atomic_load_explicit(c, memory_order_relaxed);
            if (f->nlabels > 0 && v == 0) {
                continue;
            }
            sb_series(sb, f, "", vi, NULL);
            sb_printf(sb, "%lld\n", v);
        }
        else {
            long long b[MAX_BUCKETS + 1], cum = 0, sum_us;
            int i;

            /* One snapshot of the buckets, so +Inf == _count even while
             * other threads observe. */
            for (i = 0; i <= f->nbuckets; i++) {
                b[i] = atomic_load_explicit(&c[i], memory_order_relaxed);
                cum += b[i];
            }
            sum_us = atomic_load_explicit(&c[f->nbuckets + 1], memory_order_relaxed);
            if (f->nlabels > 0 && cum == 0) {
                continue;
            }
            cum = 0;
            for (i = 0; i < f->nbuckets; i++) {
                char le[32];
                cum += b[i];
                snprintf(le, sizeof(le), "%g", f->buckets[i]);
                sb_series(sb, f, "_bucket", vi, le);
                sb_printf(sb, "%lld\n", cum);
            }
            cum += b[f->nbuckets];
            sb_series(sb, f, "_bucket", vi, "+Inf");
            sb_printf(sb, "%lld\n", cum);
            sb_series(sb, f, "_sum", vi, NULL);
            sb_printf(sb, "%lld.%06lld\n", sum_us / 1000000, sum_us % 1000000);
            sb_series(sb, f, "_count", vi, NULL);
            sb_printf(sb, "%lld\n", cum);
        }
    }
}

char *gc_metrics_render(gc_metrics_t *m, apr_pool_t *p)
{
    strbuf_t sb = { p, NULL, 0, 0 };
    int id;

    sb_reserve(&sb, 16384);
    sb.buf[0] = '\0';
    if (m == NULL || m->magic != GC_METRICS_MAGIC) {
        return sb.buf;
    }
    for (id = 0; id < GC_MET__COUNT; id++) {
        render_family(&sb, m, id);
    }
    return sb.buf;
}

/* --- test-only introspection (gc_metrics_test.h) -------------------------- */

static const family_t *family(gc_metric_id_e id)
{
    return (unsigned)id < (unsigned)GC_MET__COUNT ? &families[id] : NULL;
}

const char *gc_metrics_test_name(gc_metric_id_e id)
{
    const family_t *f = family(id);
    return f ? f->name : NULL;
}

const char *gc_metrics_test_type(gc_metric_id_e id)
{
    const family_t *f = family(id);
    return f ? type_name(f->type) : NULL;
}

int gc_metrics_test_nlabels(gc_metric_id_e id)
{
    const family_t *f = family(id);
    return f ? f->nlabels : 0;
}

const char *gc_metrics_test_label_name(gc_metric_id_e id, int which)
{
    const family_t *f = family(id);
    return (f && which >= 0 && which < f->nlabels) ? f->label[which] : NULL;
}

int gc_metrics_test_nvalues(gc_metric_id_e id, int which)
{
    const family_t *f = family(id);
    return (f && which >= 0 && which < f->nlabels) ? f->nvalues[which] : 0;
}

const char *gc_metrics_test_value(gc_metric_id_e id, int which, int idx)
{
    int n = gc_metrics_test_nvalues(id, which);
    return (idx >= 0 && idx < n) ? families[id].values[which][idx] : NULL;
}

int gc_metrics_test_nbuckets(gc_metric_id_e id)
{
    const family_t *f = family(id);
    return f ? f->nbuckets : 0;
}

double gc_metrics_test_bucket(gc_metric_id_e id, int idx)
{
    const family_t *f = family(id);
    return (f && idx >= 0 && idx < f->nbuckets) ? f->buckets[idx] : NAN;
}

char *gc_metrics_test_escape(apr_pool_t *p, const char *value)
{
    strbuf_t sb = { p, NULL, 0, 0 };
    sb_reserve(&sb, strlen(value) * 2);
    sb.buf[0] = '\0';
    sb_escaped(&sb, value, 1);
    return sb.buf;
}

long long gc_metrics_test_sum_us(gc_metrics_t *m, gc_metric_id_e id, const char *l1, const char *l2)
{
    const family_t *f = NULL;
    _Atomic long long *c = series_cells(m, id, l1, l2, &f);

    if (c == NULL || f->type != MT_HISTOGRAM) {
        return 0;
    }
    return atomic_load_explicit(&c[f->nbuckets + 1], memory_order_relaxed);
}
