/* The directive value parsers (gc_conf, gc_transition_parse, ids and state
 * names; SPEC §2, §9.3): any bytes as one directive's arguments,
 *
 *   <kind> <value>
 *
 * kind duration   GcmonRequestTimeout, GcmonRetention, … (minimum 0 and 1 s)
 *      long       GcmonRateLimit, GcmonTopicsPerChannel, GcmonMaxBody
 *      url        GcmonApiURL, GcmonLoginURL
 *      webhook    GcmonStatusWebhook, … (and as a secret: GcmonSlackWebhook)
 *      domain     GcmonEnvironment
 *      secret     GcmonClientSecret, GcmonWebhookSecret, … ("file:<name>" reads
 *                 a file of a scratch directory the target fills, never
 *                 another path; "env:<NAME>" the environment)
 *      transition GcmonTransition <from> <to>... (blank-separated)
 *      name       GcmonIdleAlert's state, GcmonMonitorQueue's id, a webhook
 *                 target
 *
 * Properties: a value is accepted or refused with a message (no NUL, not
 * empty); an accepted duration lies in [minimum, 100 years] and formats to
 * text that parses back to it; a number lies in its range; a base URL is an
 * http(s) prefix of the value without a trailing slash; a secret webhook
 * URL's message never repeats the value; a domain is dotted labels of
 * letters, digits and '-'; a literal secret is the value, an env: one the
 * variable, a file: one its first line without its line end; a transition
 * rule allows each of its own pairs and every no-change; names are
 * consistent with each other (a presence is a state; an id has a topic). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_strings.h>

#include "fuzz.h"
#include "gc_conf.h"
#include "gc_id.h"
#include "gc_presence.h"
#include "gc_state.h"
#include "gc_webhook.h"

#define HUNDRED_YEARS ((apr_interval_time_t)100 * 365 * 86400 * APR_USEC_PER_SEC)

static char scratch[64]; /* the file: secrets' directory */

static void put_file(const char *name, const char *text, size_t len)
{
    char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", scratch, name);
    f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(text, 1, len, f) == len);
    fclose(f);
}

static void remove_scratch(void)
{
    static const char *const names[] = { "one-line", "crlf",      "empty", "newline-only",
                                         "long",     "two-lines", "nul" };
    char path[128];
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", scratch, names[i]);
        unlink(path);
    }
    rmdir(scratch);
}

static void make_scratch(void)
{
    static char big[9000];

    snprintf(scratch, sizeof(scratch), "/tmp/gcmon-fuzz-conf.XXXXXX");
    FUZZ_CHECK(mkdtemp(scratch) != NULL);
    atexit(remove_scratch);
    put_file("one-line", "s3cret-value\n", 13);
    put_file("crlf", "s3cret-value\r\n", 14);
    put_file("empty", "", 0);
    put_file("newline-only", "\n", 1);
    memset(big, 'k', sizeof(big));
    put_file("long", big, sizeof(big));
    put_file("two-lines", "first\nsecond\n", 13);
    put_file("nul", "ab\0cd\n", 6);
    setenv("GCMON_FUZZ_SECRET", "env-secret-value", 1);
    setenv("GCMON_FUZZ_EMPTY", "", 1);
}

static void check_message(const char *err)
{
    FUZZ_CHECK(err && *err);
}

static void check_duration(apr_pool_t *p, const char *arg)
{
    static const apr_interval_time_t mins[] = { 0, APR_USEC_PER_SEC };
    size_t i;

    for (i = 0; i < 2; i++) {
        apr_interval_time_t d = -1, back = -1;
        const char *err = gc_parse_duration(p, arg, mins[i], &d), *text;
        if (err) {
            check_message(err);
            continue;
        }
        FUZZ_CHECK(d >= mins[i] && d <= HUNDRED_YEARS);
        text = gc_format_duration(p, d);
        FUZZ_CHECK(gc_parse_duration(p, text, 0, &back) == NULL && back == d);
    }
}

static void check_long(apr_pool_t *p, const char *arg)
{
    static const long ranges[][2] = { { 1, GC_MAX_RATE_LIMIT },
                                      { 1, 1000 },
                                      { LONG_MIN, LONG_MAX } };
    size_t i;

    for (i = 0; i < 3; i++) {
        long v = 0;
        const char *err = gc_parse_long(p, arg, ranges[i][0], ranges[i][1], &v);
        if (err) {
            check_message(err);
        }
        else {
            FUZZ_CHECK(v >= ranges[i][0] && v <= ranges[i][1]);
        }
    }
}

static void check_urls(apr_pool_t *p, const char *arg)
{
    const char *out = NULL, *err = gc_parse_http_url(p, arg, &out);

    if (err) {
        check_message(err);
    }
    else {
        size_t n = strlen(out);
        FUZZ_CHECK(n > 0 && out[n - 1] != '/' && strncmp(out, arg, n) == 0);
        FUZZ_CHECK(!strncasecmp(out, "http://", 7) || !strncasecmp(out, "https://", 8));
    }
    if ((err = gc_parse_webhook_url(p, arg, 0))) {
        check_message(err);
    }
    if ((err = gc_parse_webhook_url(p, arg, 1))) {
        check_message(err);
        FUZZ_CHECK(strlen(arg) < 8 || strstr(err, arg) == NULL);
    }
}

static void check_domain(apr_pool_t *p, const char *arg)
{
    const char *err = gc_parse_domain(p, arg), *c;

    if (err) {
        check_message(err);
        return;
    }
    FUZZ_CHECK(*arg && *arg != '.' && *arg != '-' && strchr(arg, '.'));
    for (c = arg; *c; c++) {
        FUZZ_CHECK((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
                   || *c == '-' || (*c == '.' && c[1] && c[1] != '.'));
    }
}

static void check_secret(apr_pool_t *p, char *arg)
{
    const char *value = NULL, *err;
    int literal = -1;
    char *c;

    if (!strncmp(arg, "file:", 5)) { /* only the scratch directory's files */
        for (c = arg + 5; *c; c++) {
            if (!((*c >= 'a' && *c <= 'z') || *c == '-')) {
                *c = '_';
            }
        }
        arg = apr_pstrcat(p, "file:", scratch, "/", arg + 5, NULL);
    }
    err = gc_parse_secret(p, arg, &value, &literal);
    if (err) {
        check_message(err);
        FUZZ_CHECK(literal == 0);
        return;
    }
    FUZZ_CHECK(value && *value);
    if (!strncmp(arg, "file:", 5)) {
        size_t n = strlen(value);
        FUZZ_CHECK(!literal && n < 8192 && value[n - 1] != '\n' && value[n - 1] != '\r');
    }
    else if (!strncmp(arg, "env:", 4)) {
        FUZZ_CHECK(!literal && getenv(arg + 4) && strcmp(value, getenv(arg + 4)) == 0);
    }
    else {
        FUZZ_CHECK(literal == 1 && strcmp(value, arg) == 0);
    }
}

static void check_transition(apr_pool_t *p, char *args)
{
    char *argv[64], *last = NULL, *tok;
    int argc = 0, i;
    gc_transition_t t;
    apr_array_header_t *rules;
    const char *err;

    for (tok = apr_strtok(args, " \t", &last); tok && argc < 64;
         tok = apr_strtok(NULL, " \t", &last)) {
        argv[argc++] = tok;
    }
    memset(&t, 0, sizeof(t));
    if ((err = gc_transition_parse(p, argc, argv, &t))) {
        check_message(err);
        return;
    }
    FUZZ_CHECK(argc >= 2 && strcmp(t.from, argv[0]) == 0 && t.to->nelts == argc - 1);
    rules = apr_array_make(p, 1, sizeof(gc_transition_t));
    APR_ARRAY_PUSH(rules, gc_transition_t) = t;
    for (i = 1; i < argc; i++) {
        FUZZ_CHECK(strcmp(argv[i], "*") == 0 || gc_presence_valid(argv[i]));
        if (strcmp(argv[0], "*") && strcmp(argv[i], "*")) {
            FUZZ_CHECK(gc_transition_allowed(rules, argv[0], argv[i]) == 1);
        }
    }
    FUZZ_CHECK(gc_transition_allowed(rules, "Meeting", "Meeting") == 1);
}

static void check_name(apr_pool_t *p, const char *arg)
{
    const gc_webhook_target_t *t = gc_webhook_target(arg);

    FUZZ_CHECK(!gc_presence_valid(arg) || gc_state_valid(arg));
    FUZZ_CHECK(!gc_state_valid(arg) || gc_state_derive(arg, "IDLE") != NULL
               || gc_routing_status_normalise(arg) != NULL);
    FUZZ_CHECK(gc_id_valid(arg) == (gc_topic_for_user(p, arg) != NULL));
    FUZZ_CHECK(!t || strcmp(t->name, arg) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    char *line = fuzz_cstr(data, size), *sp = strchr(line, ' '), *arg;

    if (!scratch[0]) {
        make_scratch();
    }
    if (!sp) {
        free(line);
        return 0;
    }
    *sp = '\0';
    arg = sp + 1;
    p = fuzz_pool();
    if (strcmp(line, "duration") == 0) {
        check_duration(p, arg);
    }
    else if (strcmp(line, "long") == 0) {
        check_long(p, arg);
    }
    else if (strcmp(line, "url") == 0 || strcmp(line, "webhook") == 0) {
        check_urls(p, arg);
    }
    else if (strcmp(line, "domain") == 0) {
        check_domain(p, arg);
    }
    else if (strcmp(line, "secret") == 0) {
        check_secret(p, arg);
    }
    else if (strcmp(line, "transition") == 0) {
        check_transition(p, arg);
    }
    else if (strcmp(line, "name") == 0) {
        check_name(p, arg);
    }
    apr_pool_destroy(p);
    free(line);
    return 0;
}
