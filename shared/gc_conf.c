#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_env.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_uri.h>

#include "gc_conf.h"
#include "gc_secret.h"

const char *gc_parse_duration(apr_pool_t *p, const char *arg, apr_interval_time_t min,
                              apr_interval_time_t *out)
{
    const char *s = arg;
    char *end;
    apr_int64_t n, unit;

    if (!arg || !*arg) {
        return "a duration is required (e.g. 90s, 15m, 2h, 1d)";
    }
    if (!isdigit((unsigned char)*s)) {
        return apr_psprintf(p, "'%s' is not a duration (use e.g. 90s, 15m, 2h, 1d)", arg);
    }
    errno = 0;
    n = apr_strtoi64(s, &end, 10);
    if (errno || n < 0) {
        return apr_psprintf(p, "'%s' is out of range", arg);
    }
    if (!*end || !strcmp(end, "s")) {
        unit = APR_USEC_PER_SEC;
    }
    else if (!strcmp(end, "ms")) {
        unit = 1000;
    }
    else if (!strcmp(end, "m")) {
        unit = 60 * APR_USEC_PER_SEC;
    }
    else if (!strcmp(end, "h")) {
        unit = 3600 * APR_USEC_PER_SEC;
    }
    else if (!strcmp(end, "d")) {
        unit = 86400 * APR_USEC_PER_SEC;
    }
    else {
        return apr_psprintf(p, "'%s' has an unknown unit (use s, m, h or d)", arg);
    }
    /* 100 years is more than any timer gcmon has; beyond that is a typo. */
    if (n > (apr_int64_t)100 * 365 * 86400 * APR_USEC_PER_SEC / unit) {
        return apr_psprintf(p, "'%s' is out of range", arg);
    }
    if (n * unit < min) {
        return apr_psprintf(p, "'%s' is below the minimum of %s", arg, gc_format_duration(p, min));
    }
    *out = n * unit;
    return NULL;
}

const char *gc_format_duration(apr_pool_t *p, apr_interval_time_t d)
{
    static const struct {
        apr_int64_t usec;
        const char *suffix;
    } units[] = {
        { 86400 * APR_USEC_PER_SEC, "d" },
        { 3600 * APR_USEC_PER_SEC, "h" },
        { 60 * APR_USEC_PER_SEC, "m" },
        { APR_USEC_PER_SEC, "s" },
        { 1000, "ms" },
    };
    size_t i;

    if (d == 0) {
        return "0s"; /* not "0us", which no directive accepts (found by tests/fuzz) */
    }
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (d >= units[i].usec && d % units[i].usec == 0) {
            return apr_psprintf(p, "%" APR_INT64_T_FMT "%s", (apr_int64_t)(d / units[i].usec),
                                units[i].suffix);
        }
    }
    return apr_psprintf(p, "%" APR_INT64_T_FMT "us", (apr_int64_t)d);
}

const char *gc_parse_long(apr_pool_t *p, const char *arg, long min, long max, long *out)
{
    char *end;
    long v;

    if (!arg || !*arg || !(isdigit((unsigned char)*arg) || *arg == '-')) {
        return apr_psprintf(p, "'%s' is not a number", arg ? arg : "");
    }
    errno = 0;
    v = strtol(arg, &end, 10);
    if (*end) {
        return apr_psprintf(p, "'%s' is not a number", arg);
    }
    if (errno || v < min || v > max) {
        return apr_psprintf(p, "'%s' is outside %ld..%ld", arg, min, max);
    }
    *out = v;
    return NULL;
}

const char *gc_parse_http_url(apr_pool_t *p, const char *arg, const char **out)
{
    apr_uri_t uri;
    char *s;
    size_t len;

    if (apr_uri_parse(p, arg, &uri) != APR_SUCCESS || !uri.scheme || !uri.hostname
        || !*uri.hostname) {
        return apr_psprintf(p, "'%s' is not an absolute URL", arg);
    }
    if (strcasecmp(uri.scheme, "http") && strcasecmp(uri.scheme, "https")) {
        return apr_psprintf(p, "'%s': only http and https URLs are allowed", arg);
    }
    if (uri.query || uri.fragment) {
        return apr_psprintf(p, "'%s': a base URL has no query or fragment", arg);
    }
    s = apr_pstrdup(p, arg);
    len = strlen(s);
    while (len > 0 && s[len - 1] == '/') {
        s[--len] = '\0';
    }
    *out = s;
    return NULL;
}

const char *gc_parse_webhook_url(apr_pool_t *p, const char *arg, int secret)
{
    apr_uri_t uri;
    const char *shown = secret ? "the value" : apr_psprintf(p, "'%s'", arg);

    if (apr_uri_parse(p, arg, &uri) != APR_SUCCESS || !uri.scheme || !uri.hostname
        || !*uri.hostname) {
        return apr_psprintf(p, "%s is not an absolute URL", shown);
    }
    if (strcasecmp(uri.scheme, "http") && strcasecmp(uri.scheme, "https")) {
        return apr_psprintf(p, "%s: only http and https URLs are allowed", shown);
    }
    if (uri.fragment) {
        return apr_psprintf(p, "%s: a webhook URL has no fragment", shown);
    }
    return NULL;
}

int gc_url_in_clear(apr_pool_t *p, const char *url)
{
    apr_uri_t uri;
    const char *h;

    if (!url || apr_uri_parse(p, url, &uri) != APR_SUCCESS || !uri.scheme || !uri.hostname
        || strcasecmp(uri.scheme, "http") != 0) {
        return 0;
    }
    h = uri.hostname;
    if (strcasecmp(h, "localhost") == 0 || strcasecmp(h, "localhost.") == 0
        || strcmp(h, "::1") == 0) {
        return 0;
    }
    if (strncmp(h, "127.", 4) == 0) {
        /* 127.0.0.0/8 only as a dotted quad of digits */
        const char *c = h + 4;
        int dots = 0;
        for (; *c; c++) {
            if (*c == '.') {
                dots++;
            }
            else if (!isdigit((unsigned char)*c)) {
                return 1;
            }
        }
        return dots == 2 ? 0 : 1;
    }
    return 1;
}

const char *gc_parse_domain(apr_pool_t *p, const char *arg)
{
    const char *c;
    int dots = 0;

    if (!arg || !*arg || *arg == '.' || *arg == '-') {
        return apr_psprintf(p, "'%s' is not a region domain (e.g. mypurecloud.com)",
                            arg ? arg : "");
    }
    for (c = arg; *c; c++) {
        if (*c == '.') {
            dots++;
            if (c[1] == '.' || c[1] == '\0') {
                return apr_psprintf(p, "'%s' is not a region domain", arg);
            }
        }
        else if (!isalnum((unsigned char)*c) && *c != '-') {
            return apr_psprintf(p, "'%s' is not a region domain (e.g. mypurecloud.com)", arg);
        }
    }
    if (dots == 0) {
        return apr_psprintf(p, "'%s' is not a region domain (e.g. mypurecloud.com)", arg);
    }
    return NULL;
}

#define SECRET_LINE_MAX 8192

/* The first line of a secret file. It is read straight into pool memory that
 * is wiped when p goes, and that buffer is the value: no other copy is made
 * (the file is opened unbuffered, so APR keeps none either). On errors the
 * buffer is wiped at once. */
static const char *secret_from_file(apr_pool_t *p, const char *path, const char **value)
{
    apr_file_t *f;
    char *line;
    apr_status_t rv;
    size_t len;

    if (!*path) {
        return "file: needs a path";
    }
    rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        char err[128];
        return apr_psprintf(p, "cannot read secret file '%s': %s", path,
                            apr_strerror(rv, err, sizeof(err)));
    }
    line = apr_palloc(p, SECRET_LINE_MAX);
    gc_wipe_on_cleanup(p, line, SECRET_LINE_MAX);
    rv = apr_file_gets(line, SECRET_LINE_MAX, f);
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        gc_wipe(line, SECRET_LINE_MAX);
        return apr_psprintf(p, "cannot read secret file '%s'", path);
    }
    if (rv == APR_EOF) {
        line[0] = '\0';
    }
    len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
        line[--len] = '\0';
    }
    if (!len) {
        gc_wipe(line, SECRET_LINE_MAX);
        return apr_psprintf(p, "secret file '%s' is empty", path);
    }
    *value = line;
    return NULL;
}

/* Every form of the value lives in p and is wiped when p goes. */
const char *gc_parse_secret(apr_pool_t *p, const char *arg, const char **value, int *is_literal)
{
    *is_literal = 0;
    if (!arg || !*arg) {
        return "a secret is required (file:/path, env:NAME or a literal value)";
    }
    if (!strncmp(arg, "file:", 5)) {
        return secret_from_file(p, arg + 5, value);
    }
    if (!strncmp(arg, "env:", 4)) {
        char *v = NULL;
        if (!arg[4]) {
            return "env: needs a variable name";
        }
        if (apr_env_get(&v, arg + 4, p) != APR_SUCCESS || !v || !*v) {
            return apr_psprintf(p, "environment variable %s is not set", arg + 4);
        }
        /* apr_env_get hands out environ's own string: copy it, never wipe that */
        *value = gc_secret_pstrdup(p, v);
        return NULL;
    }
    *is_literal = 1;
    *value = gc_secret_pstrdup(p, arg);
    return NULL;
}

void gc_conn_conf_finish(apr_pool_t *p, gc_conn_conf_t *c)
{
    if (!c->environment) {
        c->environment = GC_DEFAULT_ENVIRONMENT;
    }
    if (!c->api_url) {
        c->api_url = apr_pstrcat(p, "https://api.", c->environment, NULL);
    }
    if (!c->login_url) {
        c->login_url = apr_pstrcat(p, "https://login.", c->environment, NULL);
    }
    if (c->request_timeout <= 0) {
        c->request_timeout = GC_DEFAULT_REQUEST_TIMEOUT;
    }
    if (c->rate_limit <= 0) {
        c->rate_limit = GC_DEFAULT_RATE_LIMIT;
    }
}
