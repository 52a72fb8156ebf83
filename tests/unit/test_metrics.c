/* gc_metrics: registry contents, Prometheus text 0.0.4 rendering (checked by a
 * strict line validator), shared-memory concurrency. */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_pools.h>
#include <apr_shm.h>
#include <apr_strings.h>

#include "gc_api_routes.h"
#include "gc_metrics.h"
#include "gc_version.h"
#include "gc_log.h"
#include "gc_metrics_test.h"
#include "unit.h"

static int log_none(void *baton, int level)
{
    return 0;
}

static apr_pool_t *pool;
static void *mem;
static gc_metrics_t *m;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    mem = NULL;
    ck_assert_int_eq(posix_memalign(&mem, 64, gc_metrics_size()), 0);
    memset(mem, 0xa5, gc_metrics_size()); /* init must zero it */
    m = gc_metrics_init(mem);
    ck_assert_ptr_nonnull(m);
}

static void teardown(void)
{
    free(mem);
    apr_pool_destroy(pool);
}

/* ======================================================================== */
/* A strict validator of the text exposition format 0.0.4, as emitted by us:
 * no comments other than HELP/TYPE, no blank lines, no timestamps. */

#define V_MAX_FAMILIES 64
#define V_MAX_SERIES 1024

typedef struct {
    char name[128];
    char type[16];
    int help, typed, samples, closed;
} v_family_t;

typedef struct {
    char key[512]; /* labels without le */
    double last_le;
    double last_cum;
    int buckets, inf, sum, count;
    double inf_value;
} v_series_t;

typedef struct {
    v_family_t fam[V_MAX_FAMILIES];
    int nfam;
    int current; /* family whose lines we are in, -1 none */
    v_series_t series[V_MAX_SERIES];
    int nseries;
    int samples;
    char err[512];
} validator_t;

static int v_fail(validator_t *v, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int v_fail(validator_t *v, int line, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(v->err, sizeof(v->err), "line %d: ", line);
    va_start(ap, fmt);
    vsnprintf(v->err + n, sizeof(v->err) - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* (metric) or [a-zA-Z_][a-zA-Z0-9_]* (label). */
static size_t v_name(const char *s, int colon)
{
    size_t i = 0;
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_' || (colon && s[0] == ':'))) {
        return 0;
    }
    for (i = 1; isalnum((unsigned char)s[i]) || s[i] == '_' || (colon && s[i] == ':'); i++) {
    }
    return i;
}

static int v_value(const char *s, double *out)
{
    char *end;
    size_t i;

    if (strcmp(s, "+Inf") == 0) {
        *out = INFINITY;
        return 0;
    }
    if (strcmp(s, "-Inf") == 0) {
        *out = -INFINITY;
        return 0;
    }
    if (strcmp(s, "NaN") == 0) {
        *out = NAN;
        return 0;
    }
    if (*s == '\0') {
        return -1;
    }
    for (i = 0; s[i]; i++) {
        if (!(isdigit((unsigned char)s[i]) || strchr(".eE+-", s[i]))) {
            return -1;
        }
    }
    *out = strtod(s, &end);
    return *end == '\0' ? 0 : -1;
}

static int v_find_family(validator_t *v, const char *name)
{
    int i;
    for (i = 0; i < v->nfam; i++) {
        if (strcmp(v->fam[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

/* HELP / TYPE switch to a family (creating it); the previous one is done. */
static int v_enter_family(validator_t *v, int line, const char *name)
{
    int f = v_find_family(v, name);

    if (f < 0) {
        if (v->nfam == V_MAX_FAMILIES) {
            return v_fail(v, line, "too many families");
        }
        f = v->nfam++;
        memset(&v->fam[f], 0, sizeof(v->fam[f]));
        snprintf(v->fam[f].name, sizeof(v->fam[f].name), "%s", name);
    }
    if (v->fam[f].closed) {
        return v_fail(v, line, "family %s is not contiguous", name);
    }
    if (v->fam[f].samples > 0) {
        return v_fail(v, line, "HELP/TYPE of %s after its samples", name);
    }
    if (v->current >= 0 && v->current != f) {
        v->fam[v->current].closed = 1;
    }
    if (v->current != f) {
        v->nseries = 0;
    }
    v->current = f;
    return f;
}

static int v_finish_family(validator_t *v, int line)
{
    int i;
    v_family_t *f;

    if (v->current < 0) {
        return 0;
    }
    f = &v->fam[v->current];
    if (!f->help || !f->typed) {
        return v_fail(v, line, "family %s lacks HELP or TYPE", f->name);
    }
    if (strcmp(f->type, "histogram") == 0) {
        for (i = 0; i < v->nseries; i++) {
            v_series_t *s = &v->series[i];
            if (!s->inf || !s->sum || !s->count) {
                return v_fail(v, line, "histogram %s{%s} incomplete", f->name, s->key);
            }
        }
    }
    return 0;
}

static int v_help_text(const char *s)
{
    for (; *s; s++) {
        if (*s == '\\') {
            if (s[1] != '\\' && s[1] != 'n') {
                return -1;
            }
            s++;
        }
    }
    return 0;
}

static int v_comment(validator_t *v, int line, const char *s)
{
    int is_help = strncmp(s, "# HELP ", 7) == 0;
    int is_type = strncmp(s, "# TYPE ", 7) == 0;
    char name[128];
    size_t n;
    int f;

    if (!is_help && !is_type) {
        return v_fail(v, line, "unexpected comment");
    }
    s += 7;
    n = v_name(s, 1);
    if (n == 0 || n >= sizeof(name) || s[n] != ' ') {
        return v_fail(v, line, "bad metric name in HELP/TYPE");
    }
    memcpy(name, s, n);
    name[n] = '\0';
    s += n + 1;
    if (v->current >= 0 && strcmp(v->fam[v->current].name, name) != 0
        && v_finish_family(v, line) != 0) {
        return -1;
    }
    f = v_enter_family(v, line, name);
    if (f < 0) {
        return -1;
    }
    if (is_help) {
        if (v->fam[f].help++) {
            return v_fail(v, line, "second HELP for %s", name);
        }
        if (*s == '\0' || v_help_text(s) != 0) {
            return v_fail(v, line, "bad HELP text for %s", name);
        }
    }
    else {
        if (v->fam[f].typed++) {
            return v_fail(v, line, "second TYPE for %s", name);
        }
        if (strcmp(s, "counter") && strcmp(s, "gauge") && strcmp(s, "histogram")
            && strcmp(s, "summary") && strcmp(s, "untyped")) {
            return v_fail(v, line, "bad type '%s'", s);
        }
        snprintf(v->fam[f].type, sizeof(v->fam[f].type), "%s", s);
    }
    return 0;
}

static int v_has_suffix(const char *name, const char *base, const char *suffix)
{
    size_t nb = strlen(base);
    return strncmp(name, base, nb) == 0 && strcmp(name + nb, suffix) == 0;
}

static int v_sample(validator_t *v, int line, const char *s)
{
    char name[128], key[512], le[256], lnames[16][64];
    const char *suffix = "";
    int nl = 0, has_le = 0, i;
    size_t n, klen = 0;
    double val;
    v_family_t *f;

    key[0] = le[0] = '\0';
    n = v_name(s, 1);
    if (n == 0 || n >= sizeof(name)) {
        return v_fail(v, line, "bad metric name");
    }
    memcpy(name, s, n);
    name[n] = '\0';
    s += n;
    if (*s == '{') {
        s++;
        while (*s != '}') {
            char lname[64], lval[256];
            size_t ln = v_name(s, 0), vl = 0;

            if (ln == 0 || ln >= sizeof(lname) || s[ln] != '=' || s[ln + 1] != '"') {
                return v_fail(v, line, "bad label syntax");
            }
            memcpy(lname, s, ln);
            lname[ln] = '\0';
            if (strncmp(lname, "__", 2) == 0) {
                return v_fail(v, line, "reserved label name %s", lname);
            }
            for (i = 0; i < nl; i++) {
                if (strcmp(lnames[i], lname) == 0) {
                    return v_fail(v, line, "duplicate label %s", lname);
                }
            }
            if (nl == 16) {
                return v_fail(v, line, "too many labels");
            }
            snprintf(lnames[nl++], sizeof(lnames[0]), "%s", lname);
            s += ln + 2;
            while (*s != '"') {
                if (*s == '\0') {
                    return v_fail(v, line, "unterminated label value");
                }
                if (*s == '\\') {
                    if (s[1] != '\\' && s[1] != '"' && s[1] != 'n') {
                        return v_fail(v, line, "bad escape in label value");
                    }
                    if (vl + 2 < sizeof(lval)) {
                        lval[vl++] = s[0];
                        lval[vl++] = s[1];
                    }
                    s += 2;
                    continue;
                }
                if (vl + 1 < sizeof(lval)) {
                    lval[vl++] = *s;
                }
                s++;
            }
            lval[vl] = '\0';
            s++;
            if (strcmp(lname, "le") == 0) {
                has_le = 1;
                snprintf(le, sizeof(le), "%s", lval);
            }
            else {
                int w = snprintf(key + klen, sizeof(key) - klen, "%s%s=\"%s\"", klen ? "," : "",
                                 lname, lval);
                if (w < 0 || (size_t)w >= sizeof(key) - klen) {
                    return v_fail(v, line, "labels too long");
                }
                klen += (size_t)w;
            }
            if (*s == ',') {
                s++;
                if (*s == '}') {
                    return v_fail(v, line, "trailing comma in labels");
                }
            }
            else if (*s != '}') {
                return v_fail(v, line, "expected , or } in labels");
            }
        }
        if (nl == 0) {
            return v_fail(v, line, "empty label set");
        }
        s++;
    }
    if (*s != ' ') {
        return v_fail(v, line, "expected a space before the value");
    }
    s++;
    if (strchr(s, ' ') != NULL) {
        return v_fail(v, line, "unexpected timestamp or trailing text");
    }
    if (v_value(s, &val) != 0) {
        return v_fail(v, line, "bad value '%s'", s);
    }
    if (v->current < 0) {
        return v_fail(v, line, "sample %s before any HELP/TYPE", name);
    }
    f = &v->fam[v->current];
    if (!f->help || !f->typed) {
        return v_fail(v, line, "sample %s before HELP and TYPE", name);
    }
    if (strcmp(f->type, "histogram") == 0) {
        if (v_has_suffix(name, f->name, "_bucket")) {
            suffix = "_bucket";
        }
        else if (v_has_suffix(name, f->name, "_sum")) {
            suffix = "_sum";
        }
        else if (v_has_suffix(name, f->name, "_count")) {
            suffix = "_count";
        }
        else {
            return v_fail(v, line, "sample %s is not part of histogram %s", name, f->name);
        }
    }
    else if (strcmp(name, f->name) != 0) {
        if (v_find_family(v, name) >= 0) {
            return v_fail(v, line, "samples of %s not contiguous", name);
        }
        return v_fail(v, line, "sample %s without HELP/TYPE", name);
    }
    f->samples++;
    v->samples++;
    if (strcmp(f->type, "counter") == 0) {
        if (!(val >= 0)) {
            return v_fail(v, line, "negative counter");
        }
        if (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total") != 0) {
            return v_fail(v, line, "counter %s does not end in _total", name);
        }
    }
    if (has_le != (*suffix == '_' && strcmp(suffix, "_bucket") == 0)) {
        return v_fail(v, line, "le label only (and always) on _bucket");
    }
    if (strcmp(f->type, "histogram") == 0) {
        v_series_t *ser = NULL;

        for (i = 0; i < v->nseries; i++) {
            if (strcmp(v->series[i].key, key) == 0) {
                ser = &v->series[i];
                break;
            }
        }
        if (ser == NULL) {
            if (v->nseries == V_MAX_SERIES) {
                return v_fail(v, line, "too many series");
            }
            ser = &v->series[v->nseries++];
            memset(ser, 0, sizeof(*ser));
            snprintf(ser->key, sizeof(ser->key), "%s", key);
            ser->last_le = -INFINITY;
        }
        if (strcmp(suffix, "_bucket") == 0) {
            double lev;
            if (ser->inf || ser->sum || ser->count) {
                return v_fail(v, line, "bucket after +Inf/_sum/_count");
            }
            if (v_value(le, &lev) != 0 || isnan(lev)) {
                return v_fail(v, line, "bad le '%s'", le);
            }
            if (!(lev > ser->last_le)) {
                return v_fail(v, line, "le not ascending");
            }
            if (val < ser->last_cum || val != floor(val)) {
                return v_fail(v, line, "buckets not cumulative counts");
            }
            ser->last_le = lev;
            ser->last_cum = val;
            ser->buckets++;
            if (isinf(lev)) {
                ser->inf = 1;
                ser->inf_value = val;
            }
        }
        else if (strcmp(suffix, "_sum") == 0) {
            if (!ser->inf || ser->sum++) {
                return v_fail(v, line, "_sum before +Inf or repeated");
            }
        }
        else {
            if (!ser->inf || ser->count++) {
                return v_fail(v, line, "_count before +Inf or repeated");
            }
            if (val != ser->inf_value) {
                return v_fail(v, line, "_count %g != +Inf bucket %g", val, ser->inf_value);
            }
        }
    }
    return 0;
}

/* 0 if `text` is valid; else -1 with the reason in v->err. */
static int validate(validator_t *v, const char *text)
{
    const char *p = text;
    int line = 0;

    memset(v, 0, sizeof(*v));
    v->current = -1;
    if (*text == '\0' || text[strlen(text) - 1] != '\n') {
        return v_fail(v, 0, "missing final newline");
    }
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = (size_t)(nl - p);
        char buf[1024];
        int rc;

        line++;
        if (len == 0) {
            return v_fail(v, line, "empty line");
        }
        if (len >= sizeof(buf)) {
            return v_fail(v, line, "line too long");
        }
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (strchr(buf, '\r') || strchr(buf, '\t')) {
            return v_fail(v, line, "CR or TAB");
        }
        rc = buf[0] == '#' ? v_comment(v, line, buf) : v_sample(v, line, buf);
        if (rc < 0) {
            return -1;
        }
        p = nl + 1;
    }
    return v_finish_family(v, line);
}

static void assert_valid(const char *text)
{
    static validator_t v;
    ck_assert_msg(validate(&v, text) == 0, "invalid exposition: %s", v.err);
}

static int count_substr(const char *hay, const char *needle)
{
    int n = 0;
    size_t len = strlen(needle);
    for (hay = strstr(hay, needle); hay; hay = strstr(hay + len, needle)) {
        n++;
    }
    return n;
}

static int has_line(const char *text, const char *line)
{
    size_t len = strlen(line);
    const char *p = text;
    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[len] == '\n') {
            return 1;
        }
        p += len;
    }
    return 0;
}

#define ck_assert_line(text, line) \
    ck_assert_msg(has_line((text), (line)), "missing line: %s", (line))
#define ck_assert_no_line(text, line) \
    ck_assert_msg(!has_line((text), (line)), "unexpected line: %s", (line))

/* ======================================================================== */

START_TEST(validator_rejects_bad_text)
{
    static const char *const bad[] = {
        "",
        "# HELP a_total x\n# TYPE a_total counter\na_total 1",          /* no final \n */
        "# HELP a_total x\n# TYPE a_total counter\n\na_total 1\n",      /* empty line */
        "# HELP a_total x\n# HELP a_total y\n# TYPE a_total counter\n", /* 2 × HELP */
        "# HELP a_total x\n# TYPE a_total counter\n# TYPE a_total counter\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total 1\n# HELP a_total x\n",
        "# HELP a_total x\n# TYPE a_total counter\n# HELP b x\n# TYPE b gauge\n"
        "a_total 1\n",                         /* contiguity */
        "# HELP a x\n# TYPE a counter\na 1\n", /* no _total */
        "# HELP a_total x\n# TYPE a_total counter\na_total -1\n",
        "# HELP a x\n# TYPE a gauge\na{b=\"c\\x\"} 1\n", /* bad escape */
        "# HELP a x\n# TYPE a gauge\na{b=\"c\"\"} 1\n",
        "# HELP a x\n# TYPE a gauge\na{b=\"c\",} 1\n",
        "# HELP a x\n# TYPE a gauge\na{1b=\"c\"} 1\n",
        "# HELP a x\n# TYPE a gauge\na{b=\"c\",b=\"d\"} 1\n",
        "# HELP a x\n# TYPE a gauge\na 1 1234\n", /* timestamp */
        "# HELP a x\n# TYPE a gauge\na 0x10\n",
        "# HELP a x\n# TYPE a gauge\na one\n",
        "# HELP a x\n# TYPE a gauge\n9a 1\n",
        "# HELP a x\n# TYPE a gauge\nb 1\n",
        "# HELP a x\n# TYPE a gauge\na  1\n",
        "# HELP a x\n# TYPE a wibble\n",
        "# HELP a x\\y\n# TYPE a gauge\n",
        "# a comment\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n", /* not cumulative */
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
        "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", /* le order */
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum{le=\"1\"} 1\n"
        "h_count 1\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket 1\n",
    };
    static const char *const good =
        "# HELP a_total x \\\\ \\n y\n# TYPE a_total counter\na_total 1\n"
        "a_total{b=\"c\\\"d\\\\e\\nf\",g=\"\"} 2.5e3\n"
        "# HELP h x\n# TYPE h histogram\nh_bucket{k=\"1\",le=\"0.5\"} 1\n"
        "h_bucket{k=\"1\",le=\"+Inf\"} 3\nh_sum{k=\"1\"} 4.000000\nh_count{k=\"1\"} 3\n"
        "# HELP g y\n# TYPE g gauge\ng -3\ng{x=\"y\"} NaN\n";
    static validator_t v;
    size_t i;

    ck_assert_msg(validate(&v, good) == 0, "good text rejected: %s", v.err);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(validate(&v, bad[i]) != 0, "bad text %zu accepted:\n%s", i, bad[i]);
    }
}
END_TEST

/* ======================================================================== */

typedef struct {
    gc_metric_id_e id;
    const char *name;
    const char *type;
    const char *label[2];
    const char *const *values[2];
    const double *buckets;
} expect_t;

static const char *const e_version[] = { GCMON_VERSION, "other", NULL };
static const char *const e_reconnect[] = { "heartbeat_timeout",
                                           "pong_timeout",
                                           "socket_closing",
                                           "no_longer_subscribed",
                                           "token_revoked",
                                           "channel_expired",
                                           "connect_error",
                                           "closed",
                                           "shutdown",
                                           "other",
                                           NULL };
static const char *const e_kind[] = {
    "event",         "heartbeat", "pong",     "socket_closing", "no_longer_subscribed",
    "token_revoked", "malformed", "oversize", "unknown",        "unmonitored",
    "other",         NULL
};
static const char *const e_source[] = { "stream", "resync", "inbound", "other", NULL };
static const char *const e_dropped[] = { "queue_full", "db_error", "malformed",
                                         "shutdown",   "other",    NULL };
static const char *const e_alert[] = {
    "raised", "cleared", "repeated", "suppressed", "other", NULL
};
static const char *const e_target[] = { "slack", "status", "trace", "wfm", "other", NULL };
static const char *const e_delivery[] = { "delivered", "retry", "failed", "other", NULL };
static const char *const e_op[] = { "oauth_token",
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
                                    "other",
                                    NULL };
static const char *const e_code[] = { "200", "201", "202", "204", "304",   "400",   "401", "403",
                                      "404", "405", "409", "412", "413",   "415",   "422", "429",
                                      "500", "502", "503", "504", "error", "other", NULL };
static const char *const e_status[] = { "Available", "Away",    "Busy",     "Break",
                                        "Meal",      "Meeting", "Training", "Offline",
                                        "Idle",      "OnQueue", "other",    NULL };
static const char *const e_result[] = {
    "success",        "invalid", "not_found", "precondition_failed", "not_allowed", "throttled",
    "upstream_error", "other",   NULL
};
static const char *const e_validation[] = { "malformed_json",
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
                                            "other",
                                            NULL };
/* The route names come from gc_api_routes.h, the one list of them. */
#define E_ROUTE(name) #name,
static const char *const e_route[] = { GC_API_ROUTE_LIST(E_ROUTE) "other", NULL };
#undef E_ROUTE
static const double e_lag[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, -1
};
static const double e_lat[] = { 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, -1 };

static const expect_t expected[GC_MET__COUNT] = {
    { GC_MET_STREAM_CONNECTED, "gcmon_stream_connected", "gauge", { 0 }, { 0 }, NULL },
    { GC_MET_STREAM_CHANNELS, "gcmon_stream_channels", "gauge", { 0 }, { 0 }, NULL },
    { GC_MET_STREAM_TOPICS, "gcmon_stream_topics", "gauge", { 0 }, { 0 }, NULL },
    { GC_MET_STREAM_RECONNECTS,
      "gcmon_stream_reconnects_total",
      "counter",
      { "reason" },
      { e_reconnect },
      NULL },
    { GC_MET_STREAM_MESSAGES,
      "gcmon_stream_messages_total",
      "counter",
      { "kind" },
      { e_kind },
      NULL },
    { GC_MET_EVENTS_STORED,
      "gcmon_events_stored_total",
      "counter",
      { "source" },
      { e_source },
      NULL },
    { GC_MET_EVENTS_DROPPED,
      "gcmon_events_dropped_total",
      "counter",
      { "reason" },
      { e_dropped },
      NULL },
    { GC_MET_EVENT_LAG, "gcmon_event_lag_seconds", "histogram", { 0 }, { 0 }, e_lag },
    { GC_MET_AGENTS_MONITORED, "gcmon_agents_monitored", "gauge", { 0 }, { 0 }, NULL },
    { GC_MET_IDLE_ALERTS, "gcmon_idle_alerts_total", "counter", { "result" }, { e_alert }, NULL },
    { GC_MET_WEBHOOK_DELIVERIES,
      "gcmon_webhook_deliveries_total",
      "counter",
      { "target", "result" },
      { e_target, e_delivery },
      NULL },
    { GC_MET_OUTBOX_PENDING, "gcmon_outbox_pending", "gauge", { 0 }, { 0 }, NULL },
    { GC_MET_UPSTREAM_REQUESTS,
      "gcmon_upstream_requests_total",
      "counter",
      { "op", "code" },
      { e_op, e_code },
      NULL },
    { GC_MET_UPSTREAM_LATENCY, "gcmon_upstream_latency_seconds", "histogram", { 0 }, { 0 }, e_lat },
    { GC_MET_UPSTREAM_THROTTLED, "gcmon_upstream_throttled_total", "counter", { 0 }, { 0 }, NULL },
    { GC_MET_STATE_UPDATE_LATENCY,
      "gcmon_state_update_latency_seconds",
      "histogram",
      { "status", "result" },
      { e_status, e_result },
      e_lat },
    { GC_MET_VALIDATION_ERRORS,
      "gcmon_validation_errors_total",
      "counter",
      { "error_type" },
      { e_validation },
      NULL },
    { GC_MET_API_REQUESTS,
      "gcmon_api_requests_total",
      "counter",
      { "route", "code" },
      { e_route, e_code },
      NULL },
    { GC_MET_BUDGET_USED, "gcmon_upstream_budget_used", "gauge", { 0 }, { 0 }, NULL },
    { GC_MET_BUDGET_LIMIT, "gcmon_upstream_budget_limit", "gauge", { 0 }, { 0 }, NULL },
    { GC_MET_BUILD_INFO, "gcmon_build_info", "gauge", { "version" }, { e_version }, NULL },
    { GC_MET_LAST_EVENT, "gcmon_last_event_timestamp_seconds", "gauge", { 0 }, { 0 }, NULL },
};

START_TEST(registry_matches_spec)
{
    int id, w, i;

    for (id = 0; id < GC_MET__COUNT; id++) {
        const expect_t *e = &expected[id];
        int nl = e->label[1] ? 2 : e->label[0] ? 1 : 0;

        ck_assert_int_eq(e->id, id);
        ck_assert_str_eq(gc_metrics_test_name(e->id), e->name);
        ck_assert_str_eq(gc_metrics_test_type(e->id), e->type);
        ck_assert_int_eq(gc_metrics_test_nlabels(e->id), nl);
        for (w = 0; w < nl; w++) {
            ck_assert_str_eq(gc_metrics_test_label_name(e->id, w), e->label[w]);
            for (i = 0; e->values[w][i]; i++) {
                ck_assert_pstr_eq(gc_metrics_test_value(e->id, w, i), e->values[w][i]);
            }
            ck_assert_int_eq(gc_metrics_test_nvalues(e->id, w), i);
            ck_assert_ptr_null(gc_metrics_test_value(e->id, w, i));
        }
        if (e->buckets) {
            for (i = 0; e->buckets[i] > 0; i++) {
                ck_assert_double_eq(gc_metrics_test_bucket(e->id, i), e->buckets[i]);
            }
            ck_assert_int_eq(gc_metrics_test_nbuckets(e->id), i);
        }
        else {
            ck_assert_int_eq(gc_metrics_test_nbuckets(e->id), 0);
        }
    }
    gc_log_set(log_none, NULL, NULL);
    ck_assert_ptr_null(gc_metrics_init(NULL));
    gc_log_set(NULL, NULL, NULL);
}
END_TEST

START_TEST(code_labels)
{
    static const int codes[] = { 200, 201, 202, 204, 304, 400, 401, 403, 404, 405,
                                 409, 412, 413, 415, 422, 429, 500, 502, 503, 504 };
    size_t i;
    char buf[8];

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        snprintf(buf, sizeof(buf), "%d", codes[i]);
        ck_assert_str_eq(gc_metrics_code_label(codes[i]), buf);
        ck_assert_str_eq(buf, e_code[i]);
    }
    ck_assert_str_eq(gc_metrics_code_label(0), "error");
    ck_assert_str_eq(gc_metrics_code_label(100), "other");
    ck_assert_str_eq(gc_metrics_code_label(302), "other");
    ck_assert_str_eq(gc_metrics_code_label(418), "other");
    ck_assert_str_eq(gc_metrics_code_label(599), "other");
    ck_assert_str_eq(gc_metrics_code_label(-1), "other");
}
END_TEST

START_TEST(empty_registry_renders)
{
    char *text = gc_metrics_render(m, pool);
    int id;

    assert_valid(text);
    ck_assert_int_eq(count_substr(text, "# HELP "), GC_MET__COUNT);
    ck_assert_int_eq(count_substr(text, "# TYPE "), GC_MET__COUNT);
    for (id = 0; id < GC_MET__COUNT; id++) {
        char *help = apr_psprintf(pool, "\n# HELP %s ", gc_metrics_test_name(id));
        char *type =
            apr_psprintf(pool, "# TYPE %s %s", gc_metrics_test_name(id), gc_metrics_test_type(id));
        ck_assert_msg(strstr(text, help) || strncmp(text, help + 1, strlen(help + 1)) == 0,
                      "no HELP for %s", gc_metrics_test_name(id));
        ck_assert_line(text, type);
    }
    /* Unlabelled families with their zeros; labelled ones without series. */
    ck_assert_line(text, "gcmon_stream_connected 0");
    ck_assert_line(text, "gcmon_stream_channels 0");
    ck_assert_line(text, "gcmon_stream_topics 0");
    ck_assert_line(text, "gcmon_agents_monitored 0");
    ck_assert_line(text, "gcmon_outbox_pending 0");
    ck_assert_line(text, "gcmon_last_event_timestamp_seconds 0");
    /* The build is labelled from the start. */
    ck_assert_line(text, "gcmon_build_info{version=\"" GCMON_VERSION "\"} 1");
    ck_assert_line(text, "gcmon_upstream_throttled_total 0");
    ck_assert_line(text, "gcmon_upstream_budget_used 0");
    ck_assert_line(text, "gcmon_upstream_budget_limit 0");
    ck_assert_line(text, "gcmon_event_lag_seconds_bucket{le=\"0.005\"} 0");
    ck_assert_line(text, "gcmon_event_lag_seconds_bucket{le=\"60\"} 0");
    ck_assert_line(text, "gcmon_event_lag_seconds_bucket{le=\"+Inf\"} 0");
    ck_assert_line(text, "gcmon_event_lag_seconds_sum 0.000000");
    ck_assert_line(text, "gcmon_event_lag_seconds_count 0");
    ck_assert_line(text, "gcmon_upstream_latency_seconds_bucket{le=\"+Inf\"} 0");
    ck_assert_line(text, "gcmon_upstream_latency_seconds_count 0");
    ck_assert_ptr_null(strstr(text, "gcmon_stream_reconnects_total{"));
    ck_assert_ptr_null(strstr(text, "gcmon_api_requests_total{"));
    ck_assert_ptr_null(strstr(text, "gcmon_state_update_latency_seconds_bucket"));
    ck_assert_ptr_nonnull(strstr(text, "# TYPE gcmon_state_update_latency_seconds histogram\n"
                                       "# HELP gcmon_validation_errors_total "));
    /* HELP precedes TYPE precedes samples, in enum order. */
    ck_assert_ptr_eq(strstr(text, "# HELP gcmon_stream_connected "), text);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE gcmon_stream_connected gauge\n"
                                       "gcmon_stream_connected 0\n"
                                       "# HELP gcmon_stream_channels "));
    ck_assert_int_eq(text[strlen(text) - 1], '\n');
}
END_TEST

START_TEST(counters_and_labels)
{
    char *text;

    gc_metrics_inc(m, GC_MET_STREAM_RECONNECTS, "heartbeat_timeout", NULL);
    gc_metrics_add(m, GC_MET_STREAM_RECONNECTS, "heartbeat_timeout", NULL, 2);
    gc_metrics_inc(m, GC_MET_STREAM_RECONNECTS, "bogus", NULL);
    gc_metrics_inc(m, GC_MET_STREAM_RECONNECTS, NULL, NULL);
    gc_metrics_inc(m, GC_MET_STREAM_RECONNECTS, "other", NULL);
    gc_metrics_inc(m, GC_MET_STREAM_RECONNECTS, "he said \"hi\"\n\\", NULL);
    gc_metrics_inc(m, GC_MET_STREAM_RECONNECTS, "Heartbeat_Timeout", NULL); /* case matters */
    gc_metrics_add(m, GC_MET_STREAM_RECONNECTS, "closed", NULL, -5);        /* ignored */
    gc_metrics_inc(m, GC_MET_UPSTREAM_REQUESTS, "presence_patch", gc_metrics_code_label(429));
    gc_metrics_inc(m, GC_MET_UPSTREAM_REQUESTS, "presence_patch", gc_metrics_code_label(0));
    gc_metrics_inc(m, GC_MET_UPSTREAM_REQUESTS, "no_such_op", gc_metrics_code_label(418));
    gc_metrics_inc(m, GC_MET_UPSTREAM_REQUESTS, "webhook", NULL);
    gc_metrics_add(m, GC_MET_UPSTREAM_THROTTLED, NULL, NULL, 7);
    gc_metrics_inc(m, GC_MET_UPSTREAM_THROTTLED, "ignored", "labels");

    ck_assert_int_eq(gc_metrics_get(m, GC_MET_STREAM_RECONNECTS, "heartbeat_timeout", NULL), 3);
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_STREAM_RECONNECTS, "other", NULL), 5);
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_STREAM_RECONNECTS, "whatever", NULL), 5);
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_STREAM_RECONNECTS, "closed", NULL), 0);
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_UPSTREAM_REQUESTS, "presence_patch", "429"), 1);
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_UPSTREAM_THROTTLED, NULL, NULL), 8);
    /* Out-of-range ids and a NULL registry are harmless. */
    gc_metrics_inc(m, GC_MET__COUNT, NULL, NULL);
    gc_metrics_inc(NULL, GC_MET_UPSTREAM_THROTTLED, NULL, NULL);
    ck_assert_int_eq(gc_metrics_get(m, GC_MET__COUNT, NULL, NULL), 0);
    ck_assert_int_eq(gc_metrics_get(NULL, GC_MET_UPSTREAM_THROTTLED, NULL, NULL), 0);

    text = gc_metrics_render(m, pool);
    assert_valid(text);
    ck_assert_line(text, "gcmon_stream_reconnects_total{reason=\"heartbeat_timeout\"} 3");
    ck_assert_line(text, "gcmon_stream_reconnects_total{reason=\"other\"} 5");
    ck_assert_no_line(text, "gcmon_stream_reconnects_total{reason=\"closed\"} 0");
    ck_assert_ptr_null(strstr(text, "bogus"));
    ck_assert_ptr_null(strstr(text, "hi\\\""));
    ck_assert_line(text, "gcmon_upstream_requests_total{op=\"presence_patch\",code=\"429\"} 1");
    ck_assert_line(text, "gcmon_upstream_requests_total{op=\"presence_patch\",code=\"error\"} 1");
    ck_assert_line(text, "gcmon_upstream_requests_total{op=\"other\",code=\"other\"} 1");
    ck_assert_line(text, "gcmon_upstream_requests_total{op=\"webhook\",code=\"other\"} 1");
    ck_assert_line(text, "gcmon_upstream_throttled_total 8");
    ck_assert_int_eq(count_substr(text, "gcmon_upstream_requests_total{"), 4);
    ck_assert_int_eq(count_substr(text, "# HELP gcmon_upstream_requests_total "), 1);
    ck_assert_int_eq(count_substr(text, "# TYPE gcmon_upstream_requests_total "), 1);
}
END_TEST

START_TEST(label_escaping)
{
    ck_assert_str_eq(gc_metrics_test_escape(pool, "plain"), "plain");
    ck_assert_str_eq(gc_metrics_test_escape(pool, "say \"hi\""), "say \\\"hi\\\"");
    ck_assert_str_eq(gc_metrics_test_escape(pool, "a\\b"), "a\\\\b");
    ck_assert_str_eq(gc_metrics_test_escape(pool, "l1\nl2"), "l1\\nl2");
    ck_assert_str_eq(gc_metrics_test_escape(pool, "\"\\\n"), "\\\"\\\\\\n");
    ck_assert_str_eq(gc_metrics_test_escape(pool, ""), "");
}
END_TEST

START_TEST(gauges_set_and_overwrite)
{
    char *text;

    gc_metrics_set(m, GC_MET_AGENTS_MONITORED, NULL, NULL, 5);
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_AGENTS_MONITORED, NULL, NULL), 5);
    gc_metrics_set(m, GC_MET_AGENTS_MONITORED, NULL, NULL, 2);
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_AGENTS_MONITORED, NULL, NULL), 2);
    gc_metrics_set(m, GC_MET_STREAM_CONNECTED, NULL, NULL, 1);
    gc_metrics_set(m, GC_MET_STREAM_TOPICS, NULL, NULL, 20000);
    gc_metrics_add(m, GC_MET_OUTBOX_PENDING, NULL, NULL, 3);
    gc_metrics_add(m, GC_MET_OUTBOX_PENDING, NULL, NULL, -1); /* gauges go down */
    gc_metrics_set(m, GC_MET_STREAM_CHANNELS, NULL, NULL, -4);
    gc_metrics_set(m, GC_MET_EVENT_LAG, NULL, NULL, 9); /* not a gauge */
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_OUTBOX_PENDING, NULL, NULL), 2);

    text = gc_metrics_render(m, pool);
    assert_valid(text);
    ck_assert_line(text, "gcmon_agents_monitored 2");
    ck_assert_no_line(text, "gcmon_agents_monitored 5");
    ck_assert_line(text, "gcmon_stream_connected 1");
    ck_assert_line(text, "gcmon_stream_topics 20000");
    ck_assert_line(text, "gcmon_outbox_pending 2");
    ck_assert_line(text, "gcmon_stream_channels -4");
    ck_assert_line(text, "gcmon_event_lag_seconds_count 0");

    gc_metrics_set(m, GC_MET_STREAM_CONNECTED, NULL, NULL, 0);
    text = gc_metrics_render(m, pool);
    ck_assert_line(text, "gcmon_stream_connected 0");
}
END_TEST

START_TEST(histograms_observe)
{
    static const char *const lat_buckets[] = {
        "0.01\"} 2", "0.025\"} 2", "0.05\"} 2", "0.1\"} 2", "0.25\"} 3", "0.5\"} 3",
        "1\"} 3",    "2.5\"} 4",   "5\"} 4",    "10\"} 4",  "30\"} 4",   "+Inf\"} 5"
    };
    char *text;
    size_t i;

    gc_metrics_observe(m, GC_MET_UPSTREAM_LATENCY, NULL, NULL, 0.003);
    gc_metrics_observe(m, GC_MET_UPSTREAM_LATENCY, NULL, NULL, 0.01); /* le inclusive */
    gc_metrics_observe(m, GC_MET_UPSTREAM_LATENCY, NULL, NULL, 0.2);
    gc_metrics_observe(m, GC_MET_UPSTREAM_LATENCY, NULL, NULL, 1.5);
    gc_metrics_observe(m, GC_MET_UPSTREAM_LATENCY, NULL, NULL, 100);
    gc_metrics_observe(m, GC_MET_UPSTREAM_LATENCY, NULL, NULL, NAN);   /* ignored */
    gc_metrics_add(m, GC_MET_UPSTREAM_LATENCY, NULL, NULL, 3);         /* ignored */
    gc_metrics_observe(m, GC_MET_UPSTREAM_THROTTLED, NULL, NULL, 1.0); /* not a histo */
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_UPSTREAM_LATENCY, NULL, NULL), 5);
    ck_assert_int_eq(gc_metrics_test_sum_us(m, GC_MET_UPSTREAM_LATENCY, NULL, NULL), 101713000);
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_UPSTREAM_THROTTLED, NULL, NULL), 0);

    gc_metrics_observe(m, GC_MET_EVENT_LAG, NULL, NULL, -2.0);  /* skew → 0 */
    gc_metrics_observe(m, GC_MET_EVENT_LAG, NULL, NULL, 1e300); /* clamped sum */

    gc_metrics_observe(m, GC_MET_STATE_UPDATE_LATENCY, "Available", "success", 0.3);
    gc_metrics_observe(m, GC_MET_STATE_UPDATE_LATENCY, "Available", "success", 0.0001);
    gc_metrics_observe(m, GC_MET_STATE_UPDATE_LATENCY, "Lunch", "success", 0.05);
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_STATE_UPDATE_LATENCY, "Available", "success"), 2);
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_STATE_UPDATE_LATENCY, "other", "success"), 1);
    ck_assert_int_eq(gc_metrics_get(m, GC_MET_STATE_UPDATE_LATENCY, "Away", "success"), 0);

    text = gc_metrics_render(m, pool);
    assert_valid(text);
    for (i = 0; i < sizeof(lat_buckets) / sizeof(lat_buckets[0]); i++) {
        ck_assert_line(text, apr_pstrcat(pool, "gcmon_upstream_latency_seconds_bucket{le=\"",
                                         lat_buckets[i], NULL));
    }
    ck_assert_line(text, "gcmon_upstream_latency_seconds_sum 101.713000");
    ck_assert_line(text, "gcmon_upstream_latency_seconds_count 5");
    ck_assert_line(text, "gcmon_event_lag_seconds_bucket{le=\"0.005\"} 1");
    ck_assert_line(text, "gcmon_event_lag_seconds_bucket{le=\"60\"} 1");
    ck_assert_line(text, "gcmon_event_lag_seconds_bucket{le=\"+Inf\"} 2");
    ck_assert_line(text, "gcmon_event_lag_seconds_count 2");
    ck_assert_line(text, "gcmon_state_update_latency_seconds_bucket"
                         "{status=\"Available\",result=\"success\",le=\"0.01\"} 1");
    ck_assert_line(text, "gcmon_state_update_latency_seconds_bucket"
                         "{status=\"Available\",result=\"success\",le=\"0.25\"} 1");
    ck_assert_line(text, "gcmon_state_update_latency_seconds_bucket"
                         "{status=\"Available\",result=\"success\",le=\"0.5\"} 2");
    ck_assert_line(text, "gcmon_state_update_latency_seconds_bucket"
                         "{status=\"Available\",result=\"success\",le=\"+Inf\"} 2");
    ck_assert_line(text, "gcmon_state_update_latency_seconds_sum"
                         "{status=\"Available\",result=\"success\"} 0.300100");
    ck_assert_line(text, "gcmon_state_update_latency_seconds_count"
                         "{status=\"Available\",result=\"success\"} 2");
    ck_assert_line(text, "gcmon_state_update_latency_seconds_count"
                         "{status=\"other\",result=\"success\"} 1");
    ck_assert_ptr_null(strstr(text, "status=\"Away\""));
    ck_assert_int_eq(count_substr(text, "gcmon_state_update_latency_seconds_count{"), 2);
}
END_TEST

/* Every series of every family touched, then checked line by line. */
START_TEST(fully_exercised_registry_is_valid)
{
    static validator_t v;
    long long expect_samples = 0;
    char *text;
    int id, a, b;

    for (id = 0; id < GC_MET__COUNT; id++) {
        int nl = gc_metrics_test_nlabels(id);
        int na = nl >= 1 ? gc_metrics_test_nvalues(id, 0) : 1;
        int nb = nl >= 2 ? gc_metrics_test_nvalues(id, 1) : 1;
        int hist = strcmp(gc_metrics_test_type(id), "histogram") == 0;
        int k = 0;

        for (a = 0; a < na; a++) {
            for (b = 0; b < nb; b++) {
                const char *l1 = nl >= 1 ? gc_metrics_test_value(id, 0, a) : NULL;
                const char *l2 = nl >= 2 ? gc_metrics_test_value(id, 1, b) : NULL;
                k++;
                if (hist) {
                    gc_metrics_observe(m, id, l1, l2, 0.001 * k);
                    gc_metrics_observe(m, id, l1, l2, 0.7 * k);
                    ck_assert_int_eq(gc_metrics_get(m, id, l1, l2), 2);
                    expect_samples += gc_metrics_test_nbuckets(id) + 3;
                }
                else if (strcmp(gc_metrics_test_type(id), "gauge") == 0) {
                    gc_metrics_set(m, id, l1, l2, k % 2 ? -1234567890123LL : k);
                    expect_samples++;
                }
                else {
                    gc_metrics_add(m, id, l1, l2, k);
                    ck_assert_int_eq(gc_metrics_get(m, id, l1, l2), k);
                    expect_samples++;
                }
            }
        }
    }
    text = gc_metrics_render(m, pool);
    ck_assert_msg(validate(&v, text) == 0, "invalid exposition: %s", v.err);
    ck_assert_int_eq(v.nfam, GC_MET__COUNT);
    ck_assert_int_eq(v.samples, expect_samples);
    for (id = 0; id < v.nfam; id++) {
        ck_assert_str_eq(v.fam[id].name, gc_metrics_test_name(id));
        ck_assert_str_eq(v.fam[id].type, gc_metrics_test_type(id));
        ck_assert_int_eq(strncmp(v.fam[id].name, "gcmon_", 6), 0);
    }
    ck_assert_line(text, "gcmon_api_requests_total{route=\"not_found\",code=\"404\"} 361");
}
END_TEST

/* ======================================================================== */
/* 4 processes × 4 threads × 10,000 increments on one shared segment. */

#define C_PROCS 4
#define C_THREADS 4
#define C_INCS 10000
#define C_OBS 1000

static void *hammer(void *arg)
{
    gc_metrics_t *shm = arg;
    int i;
    for (i = 0; i < C_INCS; i++) {
        gc_metrics_inc(shm, GC_MET_API_REQUESTS, "agents", gc_metrics_code_label(200));
        gc_metrics_inc(shm, GC_MET_UPSTREAM_THROTTLED, NULL, NULL);
        if (i < C_OBS) {
            gc_metrics_observe(shm, GC_MET_STATE_UPDATE_LATENCY, "Busy", "throttled",
                               i % 2 ? 0.002 : 3.0);
        }
    }
    return NULL;
}

START_TEST(concurrent_processes_and_threads)
{
    size_t size = gc_metrics_size();
    void *shmem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    gc_metrics_t *shm;
    pid_t pids[C_PROCS];
    long long total = (long long)C_PROCS * C_THREADS * C_INCS;
    long long nobs = (long long)C_PROCS * C_THREADS * C_OBS;
    static validator_t v;
    int i, running, renders = 0;
    char *text;

    ck_assert_ptr_ne(shmem, MAP_FAILED);
    shm = gc_metrics_init(shmem);
    ck_assert_ptr_nonnull(shm);
    for (i = 0; i < C_PROCS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            pthread_t th[C_THREADS];
            int t, rc = 0;
            for (t = 0; t < C_THREADS; t++) {
                rc |= pthread_create(&th[t], NULL, hammer, shm);
            }
            for (t = 0; t < C_THREADS; t++) {
                rc |= pthread_join(th[t], NULL);
            }
            _exit(rc ? 1 : 0);
        }
    }
    /* Render while they write: always valid (+Inf == _count etc.). */
    do {
        apr_pool_t *sub;
        apr_pool_create(&sub, pool);
        text = gc_metrics_render(shm, sub);
        ck_assert_msg(validate(&v, text) == 0, "invalid exposition: %s", v.err);
        apr_pool_destroy(sub);
        renders++;
        running = 0;
        for (i = 0; i < C_PROCS; i++) {
            if (pids[i] > 0) {
                int st = 0;
                pid_t r = waitpid(pids[i], &st, WNOHANG);
                if (r == 0) {
                    running++;
                }
                else {
                    ck_assert_int_eq(r, pids[i]);
                    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
                    pids[i] = 0;
                }
            }
        }
    } while (running > 0);
    ck_assert_int_gt(renders, 0);

    ck_assert_int_eq(gc_metrics_get(shm, GC_MET_API_REQUESTS, "agents", "200"), total);
    ck_assert_int_eq(gc_metrics_get(shm, GC_MET_UPSTREAM_THROTTLED, NULL, NULL), total);
    ck_assert_int_eq(gc_metrics_get(shm, GC_MET_STATE_UPDATE_LATENCY, "Busy", "throttled"), nobs);
    ck_assert_int_eq(gc_metrics_test_sum_us(shm, GC_MET_STATE_UPDATE_LATENCY, "Busy", "throttled"),
                     nobs / 2 * 2000 + nobs / 2 * 3000000);
    text = gc_metrics_render(shm, pool);
    assert_valid(text);
    ck_assert_line(text, apr_psprintf(pool,
                                      "gcmon_api_requests_total"
                                      "{route=\"agents\",code=\"200\"} %d",
                                      (int)total));
    ck_assert_line(text, apr_psprintf(pool,
                                      "gcmon_state_update_latency_seconds_bucket"
                                      "{status=\"Busy\",result=\"throttled\",le=\"0.01\"} %d",
                                      (int)(nobs / 2)));
    ck_assert_line(
        text, apr_psprintf(pool,
                           "gcmon_state_update_latency_seconds_sum"
                           "{status=\"Busy\",result=\"throttled\"} %" APR_INT64_T_FMT ".000000",
                           (apr_int64_t)((nobs / 2 * 2000 + nobs / 2 * 3000000) / 1000000)));
    munmap(shmem, size);
}
END_TEST

/* ======================================================================== */
/* The segment header: a registry is reused only by a build of its layout.  */

START_TEST(attach_checks_the_layout)
{
    size_t size = gc_metrics_size();
    unsigned char *raw = mem;
    apr_uint64_t layout = gc_metrics_layout();

    ck_assert(layout != 0);
    ck_assert(layout == gc_metrics_layout());
    gc_metrics_inc(m, GC_MET_UPSTREAM_THROTTLED, NULL, NULL);
    ck_assert_ptr_eq(gc_metrics_attach(mem, size), m);
    ck_assert_ptr_eq(gc_metrics_attach(mem, size + 4096), m);
    ck_assert_int_eq(
        gc_metrics_get(gc_metrics_attach(mem, size), GC_MET_UPSTREAM_THROTTLED, NULL, NULL),
        1);                                               /* counts carry over */
    ck_assert_ptr_null(gc_metrics_attach(mem, size - 8)); /* a smaller segment */
    ck_assert_ptr_null(gc_metrics_attach(NULL, size));
    ck_assert_ptr_null(gc_metrics_attach(raw + 1, size - 1)); /* misaligned */

    /* Another build's table (layout word at offset 8), or another count of cells. */
    raw[8] ^= 0x01;
    ck_assert_ptr_null(gc_metrics_attach(mem, size));
    raw[8] ^= 0x01;
    raw[4] ^= 0x01;
    ck_assert_ptr_null(gc_metrics_attach(mem, size));
    raw[4] ^= 0x01;
    ck_assert_ptr_eq(gc_metrics_attach(mem, size), m);
    /* A segment of the earlier format (magic "gcME", no layout word), or zeros. */
    memcpy(raw, "EMcg", 4);
    ck_assert_ptr_null(gc_metrics_attach(mem, size));
    memset(mem, 0, size);
    ck_assert_ptr_null(gc_metrics_attach(mem, size));
}
END_TEST

/* mod_gcmon_api replaces a segment of another layout and destroys the parent's
 * mapping of the old one (apr_shm_destroy of an anonymous segment): that only
 * unmaps it in the calling process. A child forked before — a child of the
 * previous generation — keeps its mapping and keeps counting in it. */
START_TEST(destroying_anonymous_shm_keeps_child_mappings)
{
    apr_shm_t *shm = NULL;
    gc_metrics_t *old;
    char *base, line[256];
    int go[2], st = 0, mapped = 0;
    pid_t pid;
    FILE *maps;

    ck_assert_int_eq(apr_shm_create(&shm, gc_metrics_size(), NULL, pool), APR_SUCCESS);
    base = apr_shm_baseaddr_get(shm);
    old = gc_metrics_init(base);
    gc_metrics_inc(old, GC_MET_UPSTREAM_THROTTLED, NULL, NULL);
    ck_assert_int_eq(pipe(go), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1) {
            _exit(2);
        }
        /* The parent has destroyed the segment by now. */
        gc_metrics_inc(old, GC_MET_UPSTREAM_THROTTLED, NULL, NULL);
        _exit(gc_metrics_get(old, GC_MET_UPSTREAM_THROTTLED, NULL, NULL) == 2 ? 0 : 3);
    }
    close(go[0]);
    ck_assert_int_eq(apr_shm_destroy(shm), APR_SUCCESS);
    maps = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(maps);
    while (fgets(line, sizeof(line), maps)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (unsigned long)base >= lo
            && (unsigned long)base < hi) {
            mapped = 1;
        }
    }
    fclose(maps);
    ck_assert_msg(!mapped, "the parent still maps the destroyed segment");
    ck_assert_int_eq(write(go[1], "x", 1), 1);
    close(go[1]);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
}
END_TEST

Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("render");
    TCase *tv = tcase_create("validator");
    TCase *tp = tcase_create("concurrency");

    tcase_add_test(tv, validator_rejects_bad_text);
    suite_add_tcase(s, tv);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, registry_matches_spec);
    tcase_add_test(tc, code_labels);
    tcase_add_test(tc, empty_registry_renders);
    tcase_add_test(tc, counters_and_labels);
    tcase_add_test(tc, label_escaping);
    tcase_add_test(tc, gauges_set_and_overwrite);
    tcase_add_test(tc, histograms_observe);
    tcase_add_test(tc, fully_exercised_registry_is_valid);
    tcase_add_test(tc, attach_checks_the_layout);
    tcase_add_test(tc, destroying_anonymous_shm_keeps_child_mappings);
    suite_add_tcase(s, tc);

    tcase_set_timeout(tp, 60);
    tcase_add_checked_fixture(tp, setup, teardown);
    tcase_add_test(tp, concurrent_processes_and_threads);
    suite_add_tcase(s, tp);
    return s;
}
