/* Directive value parsing shared by both modules (no httpd types).
 * Every parser returns NULL on success or an error message (from pool p)
 * that the glue prefixes with the directive name. */
#ifndef GC_CONF_H
#define GC_CONF_H

#include <apr_pools.h>
#include <apr_time.h>

/* Connection to one Genesys Cloud org (SPEC §2 "Connection"). */
typedef struct gc_conn_conf {
    const char *environment; /* region domain, e.g. mypurecloud.com */
    const char *api_url;     /* https://api.<domain>, no trailing slash */
    const char *login_url;   /* https://login.<domain>, no trailing slash */
    const char *client_id;
    const char *client_secret; /* resolved value, never logged */
    const char *ca_file;       /* extra CA bundle, or NULL for system CAs */
    apr_interval_time_t request_timeout;
    int rate_limit; /* upstream requests per minute, all children */
} gc_conn_conf_t;

#define GC_DEFAULT_ENVIRONMENT "mypurecloud.com"
#define GC_DEFAULT_REQUEST_TIMEOUT apr_time_from_sec(10)
#define GC_DEFAULT_RATE_LIMIT 300
#define GC_MAX_RATE_LIMIT 100000

/* "90", "90s", "15m", "2h", "1d" (also "500ms"); at least min, which may be 0. */
const char *gc_parse_duration(apr_pool_t *p, const char *arg, apr_interval_time_t min,
                              apr_interval_time_t *out);

/* Decimal integer in [min, max], nothing else on the line. */
const char *gc_parse_long(apr_pool_t *p, const char *arg, long min, long max, long *out);

/* An absolute http(s) URL with a host; *out has no trailing slash. */
const char *gc_parse_http_url(apr_pool_t *p, const char *arg, const char **out);

/* A region domain such as "mypurecloud.com" or "mypurecloud.de". */
/* An outbound webhook URL: absolute http(s), query allowed. With secret != 0
 * the error does not repeat the value (Slack URLs embed a token). */
const char *gc_parse_webhook_url(apr_pool_t *p, const char *arg, int secret);

/* 1 when url (already parsed as http(s)) is plain http:// to a host that is
 * not loopback (127.0.0.0/8, ::1, localhost): what it carries travels in
 * clear over a network. 0 for https://, loopback, or an unparsable URL. */
int gc_url_in_clear(apr_pool_t *p, const char *url);

const char *gc_parse_domain(apr_pool_t *p, const char *arg);

/* Secret syntax: "file:/path" (first line), "env:NAME", or a literal.
 * *is_literal tells the caller to warn. The value never appears in the message.
 * *value lives in p and is overwritten with zeros when p is cleared or
 * destroyed (so is the buffer a file: secret was read into). */
const char *gc_parse_secret(apr_pool_t *p, const char *arg, const char **value, int *is_literal);

/* Fill derived URLs and defaults of a connection config after all directives. */
void gc_conn_conf_finish(apr_pool_t *p, gc_conn_conf_t *c);

/* Human-readable duration for logs and docs ("15m", "90s"). */
const char *gc_format_duration(apr_pool_t *p, apr_interval_time_t d);

#endif
