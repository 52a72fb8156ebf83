/* One outbound webhook delivery (gc_outbox.h): the URL of a target, the
 * X-Gcmon-Signature, the POST itself, and the Slack Block Kit body of an idle
 * alert.
 *
 * Webhook URLs are secrets (a Slack URL embeds its token): no error text or
 * log line made here contains the URL, nor any part of it a receiver or curl
 * echoes (each is hidden before the text is cut, see scrub). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_uri.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gc_log.h"
#include "gc_webhook.h"
#include "gc_secret.h"
#include "gc_upstream.h"
#include "gc_version.h"

#define WEBHOOK_TIMEOUT_DEFAULT apr_time_from_sec(10)
#define RETRY_AFTER_CAP_SECS 86400
#define EXCERPT_MAX 120      /* response body shown in the error text */
#define EXCERPT_CAPTURE 4096 /* response body read for it (redacted, then cut) */

#define TARGET_ROW(name, directive, member, slack, event, label, help) \
    { #name, directive, offsetof(gc_webhook_conf_t, member), slack, event, label, help },
const gc_webhook_target_t gc_webhook_targets[GC_WEBHOOK__COUNT] = { GC_WEBHOOK_TARGET_LIST(
    TARGET_ROW) };
#undef TARGET_ROW

const gc_webhook_target_t *gc_webhook_target(const char *name)
{
    int i;

    for (i = 0; name && i < GC_WEBHOOK__COUNT; i++) {
        if (strcmp(name, gc_webhook_targets[i].name) == 0) {
            return &gc_webhook_targets[i];
        }
    }
    return NULL;
}

const char *gc_webhook_target_url(const gc_webhook_conf_t *c, const gc_webhook_target_t *t)
{
    const char *url;

    if (!c || !t) {
        return NULL;
    }
    url = *(const char *const *)((const char *)c + t->url_offset);
    return url && *url ? url : NULL;
}

int gc_webhook_any(const gc_webhook_conf_t *c)
{
    int i;

    for (i = 0; i < GC_WEBHOOK__COUNT; i++) {
        if (gc_webhook_target_url(c, &gc_webhook_targets[i])) {
            return 1;
        }
    }
    return 0;
}

const char *gc_webhook_event(const char *target)
{
    const gc_webhook_target_t *t = gc_webhook_target(target);

    return t ? t->event : NULL;
}

const char *gc_webhook_url(const gc_webhook_conf_t *c, const char *target)
{
    return gc_webhook_target_url(c, gc_webhook_target(target));
}

const char *gc_webhook_signature(apr_pool_t *p, const char *secret, const char *body,
                                 apr_size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0, i;
    char *out, *o;

    if (!secret) {
        return NULL;
    }
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)(body ? body : ""),
              body ? len : 0, mac, &mlen)) {
        return NULL;
    }
    out = apr_palloc(p, 7 + 2 * (apr_size_t)mlen + 1);
    memcpy(out, "sha256=", 7);
    for (o = out + 7, i = 0; i < mlen; i++) {
        *o++ = hex[mac[i] >> 4];
        *o++ = hex[mac[i] & 0x0f];
    }
    *o = '\0';
    return out;
}

/* ------------------------------------------------------------------ POST */

typedef struct {
    apr_pool_t *pool;
    const char *retry_after; /* raw header value, last one wins */
    char excerpt[EXCERPT_CAPTURE + 1];
    apr_size_t excerpt_len;
    int excerpt_more; /* the body went on beyond the capture */
} exchange_t;

/* Keeps the first bytes of the response body (the error text's excerpt). */
static size_t on_body(char *data, size_t size, size_t n, void *baton)
{
    exchange_t *x = baton;
    size_t len = size * n, room = EXCERPT_CAPTURE - x->excerpt_len;

    if (room < len) {
        x->excerpt_more = 1;
    }
    else {
        room = len;
    }
    memcpy(x->excerpt + x->excerpt_len, data, room);
    x->excerpt_len += room;
    x->excerpt[x->excerpt_len] = '\0';
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *baton)
{
    exchange_t *x = baton;
    size_t len = size * n, skip = sizeof("retry-after:") - 1;
    const char *v;

    if (len > skip && strncasecmp(data, "retry-after:", skip) == 0) {
        v = data + skip;
        len -= skip;
        while (len > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            len--;
        }
        while (len > 0 && apr_isspace(v[len - 1])) {
            len--;
        }
        x->retry_after = apr_pstrmemdup(x->pool, v, len);
    }
    return size * n;
}

/* Retry-After as the upstream client reads it, capped at a day; 0 when
 * absent, unparseable or past. */
static apr_interval_time_t retry_after_of(const char *v)
{
    apr_interval_time_t d = 0;

    if (!gc_retry_after_parse(v, &d) || d <= 0) {
        return 0;
    }
    return d < apr_time_from_sec(RETRY_AFTER_CAP_SECS) ? d
                                                       : apr_time_from_sec(RETRY_AFTER_CAP_SECS);
}

/* s (n bytes) percent-decoded ('+' as a space too when plus), or NULL when
 * decoding changes nothing. A '%' not followed by two hex digits stays. */
static const char *percent_decoded(apr_pool_t *p, const char *s, apr_size_t n, int plus)
{
    char *out = apr_palloc(p, n + 1), *o = out;
    apr_size_t i;
    int changed = 0;

    for (i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && apr_isxdigit(s[i + 1]) && apr_isxdigit(s[i + 2])) {
            char hex[3] = { s[i + 1], s[i + 2], '\0' };

            *o++ = (char)strtol(hex, NULL, 16);
            i += 2;
            changed = 1;
        }
        else if (plus && s[i] == '+') {
            *o++ = ' ';
            changed = 1;
        }
        else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return changed ? out : NULL;
}

/* Add the n bytes at s to the needles, and their decoded form when it differs. */
static void add_needle(apr_array_header_t *a, const char *s, apr_size_t n, int plus)
{
    const char *d;

    if (n < GC_REDACT_MIN) {
        return;
    }
    APR_ARRAY_PUSH(a, const char *) = apr_pstrmemdup(a->pool, s, n);
    if ((d = percent_decoded(a->pool, s, n, plus)) != NULL) {
        APR_ARRAY_PUSH(a, const char *) = d;
    }
}

/* Add each part of s (n bytes) between separators (and, with pair, the name
 * and the value of each "name=value" part). */
static void add_parts(apr_array_header_t *a, const char *s, apr_size_t n, const char *seps,
                      int pair, int plus)
{
    const char *end = s + n;

    while (s < end) {
        apr_size_t len = strcspn(s, seps);
        const char *eq;

        if (len > (apr_size_t)(end - s)) {
            len = (apr_size_t)(end - s);
        }
        add_needle(a, s, len, plus);
        if (pair && (eq = memchr(s, '=', len)) != NULL) {
            add_needle(a, s, (apr_size_t)(eq - s), plus);
            add_needle(a, eq + 1, len - (apr_size_t)(eq + 1 - s), plus);
        }
        s += len + (s + len < end);
    }
}

/* Every part of a webhook URL that may carry its secret and that a receiver
 * might echo (Slack echoes a segment or two of its path): the URL with and
 * without its scheme, the user info and its parts, the path with and without
 * the query and the leading '/', each path segment, the query, each query
 * pair, name and value. Each also percent-decoded when that differs (a
 * receiver may echo either form). Parts under GC_REDACT_MIN bytes are left
 * out: they cannot carry a secret and would mangle the text. */
static apr_array_header_t *url_needles(apr_pool_t *p, const char *url)
{
    apr_array_header_t *a = apr_array_make(p, 16, sizeof(const char *));
    const char *rest, *path, *at, *query;
    apr_size_t plen;

    rest = strstr(url, "://");
    rest = rest ? rest + 3 : url;
    path = rest + strcspn(rest, "/?#");
    add_needle(a, url, strcspn(url, "#"), 0);
    add_needle(a, rest, strcspn(rest, "#"), 0);
    if ((at = memchr(rest, '@', (apr_size_t)(path - rest))) != NULL) {
        add_needle(a, rest, (apr_size_t)(at - rest), 0);
        add_parts(a, rest, (apr_size_t)(at - rest), ":", 0, 0);
    }
    add_needle(a, path, strcspn(path, "#"), 0);
    if (*path == '/') {
        add_needle(a, path + 1, strcspn(path + 1, "#"), 0);
    }
    plen = strcspn(path, "?#");
    add_needle(a, path, plen, 0);
    add_parts(a, path, plen, "/", 0, 0);
    if (path[plen] == '?') {
        query = path + plen + 1;
        add_needle(a, query, strcspn(query, "#"), 1);
        add_parts(a, query, strcspn(query, "#"), "&;", 1, 1);
    }
    return a;
}

/* Text that came from the network or curl (len bytes; more: only the start
 * of a longer text), made safe for an error message: every part of the URL
 * that may carry its secret hidden first, then one printable line of at most
 * max bytes (gc_redact_line). NULL when nothing is left. */
static const char *scrub(apr_pool_t *p, const char *text, apr_size_t len, int more, const char *url,
                         apr_size_t max)
{
    apr_array_header_t *needles;
    const char *out;

    if (!text || !len) {
        return NULL;
    }
    needles = url_needles(p, url);
    out =
        gc_redact_line(p, text, len, (const char *const *)needles->elts, needles->nelts, more, max);
    return *out ? out : NULL;
}

static long ms_of(apr_interval_time_t t)
{
    long ms = (long)apr_time_as_msec(t);

    return ms > 0 ? ms : 1;
}

/* The request's headers; NULL when out of memory. */
static struct curl_slist *request_headers(apr_pool_t *p, const gc_webhook_conf_t *conf,
                                          const char *target, const char *body)
{
    struct curl_slist *hl = NULL, *n;
    const char *lines[5];
    const char *event = gc_webhook_event(target);
    int i, nl = 0;

    lines[nl++] = "Content-Type: application/json";
    if (event) {
        lines[nl++] = apr_pstrcat(p, "X-Genesys-Event: ", event, NULL);
    }
    lines[nl++] = "Accept:";
    lines[nl++] = "Expect:";
    if (conf->secret && *conf->secret) {
        const char *sig = gc_webhook_signature(p, conf->secret, body, strlen(body));
        if (!sig) {
            return NULL;
        }
        lines[nl++] = apr_pstrcat(p, "X-Gcmon-Signature: ", sig, NULL);
    }
    for (i = 0; i < nl; i++) {
        if (!(n = curl_slist_append(hl, lines[i]))) {
            curl_slist_free_all(hl);
            return NULL;
        }
        hl = n;
    }
    return hl;
}

/* CURLOPT_PROTOCOLS_STR arrived in curl 7.85 (Debian 12 has 7.88). */
#if LIBCURL_VERSION_NUM >= 0x075500
#define SET_PROTOCOLS(h) curl_easy_setopt((h), CURLOPT_PROTOCOLS_STR, "http,https")
#else
#define SET_PROTOCOLS(h) \
    curl_easy_setopt((h), CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS))
#endif

/* Security-relevant options are checked: a libcurl refusing them is not used. */
static CURLcode setup(CURL *h, const gc_webhook_conf_t *conf, const char *url, const char *body,
                      struct curl_slist *hl, exchange_t *x, char *errbuf)
{
    apr_interval_time_t timeout = conf->timeout > 0 ? conf->timeout : WEBHOOK_TIMEOUT_DEFAULT;
    CURLcode sc;

    if ((sc = curl_easy_setopt(h, CURLOPT_URL, url)) != CURLE_OK
        || (sc = SET_PROTOCOLS(h)) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L)) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L)) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L)) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms_of(timeout))) != CURLE_OK
        || (sc = curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms_of(timeout))) != CURLE_OK
        || (conf->ca_file
            && (sc = curl_easy_setopt(h, CURLOPT_CAINFO, conf->ca_file)) != CURLE_OK)) {
        return sc;
    }
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_USERAGENT, GCMON_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    return CURLE_OK;
}

/* curl's verdicts on a server certificate gcmon does not trust. */
static int tls_trust_error(CURLcode cc)
{
    switch (cc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: return 1;
    default: return 0;
    }
}

/* Fill res from a finished exchange. */
static apr_status_t verdict(apr_pool_t *p, const char *target, const char *url, CURLcode cc,
                            long status, const exchange_t *x, const char *errbuf,
                            gc_webhook_result_t *res)
{
    const char *why;

    if (cc != CURLE_OK) {
        why = scrub(p, errbuf, strlen(errbuf), 0, url, CURL_ERROR_SIZE);
        res->status = 0;
        why = why ? why : curl_easy_strerror(cc);
        if (tls_trust_error(cc)) {
            /* the host is named (not the URL: its path or query may hold a token) */
            apr_uri_t uri;
            int ok = apr_uri_parse(p, url, &uri) == APR_SUCCESS && uri.hostname;
            res->error = apr_psprintf(p, "TLS verification failed for %s%s%s: %s",
                                      ok ? uri.hostname : "the host", ok && uri.port_str ? ":" : "",
                                      ok && uri.port_str ? uri.port_str : "", why);
        }
        else {
            res->error = apr_psprintf(p, "connection failed: %s", why);
        }
        return APR_EGENERAL;
    }
    res->status = (int)status;
    if (status >= 200 && status < 300) {
        return APR_SUCCESS;
    }
    if (status == 429 || status == 503) {
        res->retry_after = retry_after_of(x->retry_after);
    }
    why = scrub(p, x->excerpt, x->excerpt_len, x->excerpt_more, url, EXCERPT_MAX);
    res->error = apr_psprintf(p, "HTTP %ld from the %s webhook%s%s", status, target,
                              why ? ": " : "", why ? why : "");
    return APR_EGENERAL;
}

apr_status_t gc_webhook_post(apr_pool_t *p, const gc_webhook_conf_t *conf, const char *target,
                             const char *url, const char *body, gc_webhook_result_t *res)
{
    char errbuf[CURL_ERROR_SIZE];
    struct curl_slist *hl;
    exchange_t x;
    CURL *h;
    CURLcode cc;
    long status = 0;
    apr_status_t rv;

    memset(res, 0, sizeof(*res));
    memset(&x, 0, sizeof(x));
    x.pool = p;
    errbuf[0] = '\0';
    if (!conf || !url || !*url) {
        res->error = "no webhook URL";
        return APR_EINVAL;
    }
    body = body ? body : "";
    if (!(h = curl_easy_init())) {
        res->error = "connection failed: out of memory";
        return APR_ENOMEM;
    }
    if (!(hl = request_headers(p, conf, target, body))) {
        curl_easy_cleanup(h);
        res->error = "connection failed: out of memory";
        return APR_ENOMEM;
    }
    cc = setup(h, conf, url, body, hl, &x, errbuf);
    if (cc == CURLE_OK) {
        cc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    }
    target = target ? target : "outbound";
    rv = verdict(p, target, url, cc, status, &x, errbuf, res);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
           GCMON_LOGNO(720) "webhook: POST of %" APR_SIZE_T_FMT " byte(s) to the %s webhook: %s",
           strlen(body), target, res->error ? res->error : "delivered");
    return rv;
}

/* ------------------------------------------------------------------ Slack */

/* "1h 2m 3s", omitting zero parts ("15m"); "0s" for nothing. */
static const char *duration_text(apr_pool_t *p, apr_interval_time_t d)
{
    apr_int64_t secs = d > 0 ? apr_time_sec(d) : 0;
    apr_int64_t parts[4];
    static const char units[] = "dhms";
    const char *out = "";
    int i;

    parts[0] = secs / 86400;
    parts[1] = secs / 3600 % 24;
    parts[2] = secs / 60 % 60;
    parts[3] = secs % 60;
    for (i = 0; i < 4; i++) {
        if (parts[i]) {
            out = apr_psprintf(p, "%s%s%" APR_INT64_T_FMT "%c", out, *out ? " " : "", parts[i],
                               units[i]);
        }
    }
    return *out ? out : "0s";
}

/* Slack mrkdwn needs &, < and > escaped. */
static const char *mrkdwn_escape(apr_pool_t *p, const char *s)
{
    apr_size_t n = 0;
    const char *c;
    char *out, *o;

    for (c = s; *c; c++) {
        n += *c == '&' ? 5 : (*c == '<' || *c == '>') ? 4 : 1;
    }
    o = out = apr_palloc(p, n + 1);
    for (c = s; *c; c++) {
        const char *rep = *c == '&' ? "&amp;" : *c == '<' ? "&lt;" : *c == '>' ? "&gt;" : NULL;
        if (rep) {
            memcpy(o, rep, strlen(rep));
            o += strlen(rep);
        }
        else {
            *o++ = *c;
        }
    }
    *o = '\0';
    return out;
}

/* At most max bytes, cut on a UTF-8 character boundary (header text ≤ 150). */
static const char *utf8_cut(apr_pool_t *p, const char *s, apr_size_t max)
{
    apr_size_t len = strlen(s);

    if (len <= max) {
        return s;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80) {
        max--;
    }
    return apr_pstrmemdup(p, s, max);
}

static int add_field(json_t *fields, const char *text)
{
    return json_array_append_new(fields, json_pack("{s:s, s:s}", "type", "mrkdwn", "text", text));
}

const char *gc_slack_alert_body(apr_pool_t *p, const char *user_id, const char *user_name,
                                const char *state, apr_interval_time_t in_state,
                                apr_interval_time_t threshold)
{
    const char *id = user_id ? user_id : "?", *st = state ? state : "?";
    const char *who = user_name && *user_name ? user_name : id;
    const char *agent, *fallback, *title, *out = NULL, *since = duration_text(p, in_state);
    const char *limit = duration_text(p, threshold);
    json_t *root, *fields;
    char *text;
    int bad = 0;

    agent = user_name && *user_name
                ? apr_psprintf(p, "%s (%s)", mrkdwn_escape(p, user_name), mrkdwn_escape(p, id))
                : mrkdwn_escape(p, id);
    fallback = apr_psprintf(p, "Idle alert: %s has been %s for %s (threshold %s)", agent,
                            mrkdwn_escape(p, st), since, limit);
    title = utf8_cut(p, apr_psprintf(p, "Idle alert: %s in %s", who, st), 150);
    fields = json_array();
    bad |= add_field(fields, apr_pstrcat(p, "*Agent*\n", agent, NULL));
    bad |= add_field(fields, apr_pstrcat(p, "*State*\n", mrkdwn_escape(p, st), NULL));
    bad |= add_field(fields, apr_pstrcat(p, "*Time in state*\n", since, NULL));
    bad |= add_field(fields, apr_pstrcat(p, "*Threshold*\n", limit, NULL));
    root = json_pack("{s:s, s:[{s:s, s:{s:s, s:s, s:b}}, {s:s, s:o}]}", "text", fallback, "blocks",
                     "type", "header", "text", "type", "plain_text", "text", title, "emoji", 1,
                     "type", "section", "fields", fields);
    if (root && !bad && (text = json_dumps(root, JSON_COMPACT)) != NULL) {
        out = apr_pstrdup(p, text);
        free(text);
    }
    json_decref(root);
    return out;
}
