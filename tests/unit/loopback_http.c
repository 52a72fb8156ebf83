/* Scripted loopback HTTP/1.1 server for the upstream unit tests (see .h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loopback_http.h"

#define LB_MAX_HEAD (64 * 1024)
#define LB_MAX_BODY (4 * 1024 * 1024)
#define LB_MAX_HEADERS 64
#define LB_IO_TIMEOUT_MS 5000

typedef struct lb_route {
    char *prefix;
    lb_response_t *resp;
    int n, cap, next;
} lb_route_t;

struct lb_server {
    int lfd;
    int port;
    char url[64];
    pthread_t thread;
    atomic_int stop;
    pthread_mutex_t mu;
    lb_route_t *routes;
    int nroutes, caproutes;
    pthread_cond_t captured; /* signalled whenever a request is captured */
    lb_request_t **reqs;
    int nreqs, capreqs;
    int tls_attempts;
    pthread_t *conns; /* one thread per connection, joined at stop */
    int nconns, capconns;
};

typedef struct conn_arg {
    lb_server_t *s;
    int fd;
} conn_arg_t;

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p) {
        fprintf(stderr, "loopback_http: out of memory\n");
        abort();
    }
    return p;
}

static void *xrealloc(void *old, size_t n)
{
    void *p = realloc(old, n ? n : 1);

    if (!p) {
        fprintf(stderr, "loopback_http: out of memory\n");
        abort();
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = xmalloc(n + 1);

    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static char *xstrdup_or_null(const char *s)
{
    return s ? xstrndup(s, strlen(s)) : NULL;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is readable, the deadline passes or the server stops.
 * 1 readable, 0 timeout/stop, -1 error. */
static int wait_readable(lb_server_t *s, int fd, long long deadline)
{
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        long long left = deadline - now_ms();
        int rc;

        if (atomic_load(&s->stop) || left <= 0) {
            return 0;
        }
        rc = poll(&pfd, 1, left > 50 ? 50 : (int)left);
        if (rc > 0) {
            return 1;
        }
        if (rc < 0 && errno != EINTR) {
            return -1;
        }
    }
}

static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 409: return "Conflict";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
    }
}

static void free_request(lb_request_t *r)
{
    int i;

    if (!r) {
        return;
    }
    for (i = 0; i < r->nheaders; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    free(r->names);
    free(r->values);
    free(r->method);
    free(r->target);
    free(r->path);
    free(r->body);
    free(r);
}

/* Parse the head in buf[0..head_len) ("\r\n\r\n" excluded). NULL if malformed. */
static lb_request_t *parse_head(const char *buf, size_t head_len)
{
    lb_request_t *r = xmalloc(sizeof(*r));
    const char *end = buf + head_len;
    const char *line = buf, *eol, *sp1, *sp2, *q;

    memset(r, 0, sizeof(*r));
    r->names = xmalloc(sizeof(char *) * LB_MAX_HEADERS);
    r->values = xmalloc(sizeof(char *) * LB_MAX_HEADERS);
    eol = memmem(line, (size_t)(end - line), "\r\n", 2);
    if (!eol) {
        eol = end;
    }
    sp1 = memchr(line, ' ', (size_t)(eol - line));
    sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp1 || !sp2) {
        free_request(r);
        return NULL;
    }
    r->method = xstrndup(line, (size_t)(sp1 - line));
    r->target = xstrndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    q = strchr(r->target, '?');
    r->path = xstrndup(r->target, q ? (size_t)(q - r->target) : strlen(r->target));
    line = eol + 2;
    while (line < end && r->nheaders < LB_MAX_HEADERS) {
        const char *colon, *v;

        eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (!eol) {
            eol = end;
        }
        colon = memchr(line, ':', (size_t)(eol - line));
        if (colon) {
            v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) {
                v++;
            }
            r->names[r->nheaders] = xstrndup(line, (size_t)(colon - line));
            r->values[r->nheaders] = xstrndup(v, (size_t)(eol - v));
            r->nheaders++;
        }
        line = eol + 2;
    }
    return r;
}

const char *lb_header(const lb_request_t *r, const char *name)
{
    int i;

    for (i = 0; r && i < r->nheaders; i++) {
        if (strcasecmp(r->names[i], name) == 0) {
            return r->values[i];
        }
    }
    return NULL;
}

/* Read one request from fd. NULL on EOF/timeout/garbage; *tls set when the
 * first byte was a TLS handshake record. */
static lb_request_t *read_request(lb_server_t *s, int fd, int *tls)
{
    char *buf = xmalloc(LB_MAX_HEAD + 1);
    size_t len = 0, head_len = 0, want;
    long long deadline = now_ms() + LB_IO_TIMEOUT_MS;
    lb_request_t *r = NULL;
    const char *cl, *hdr_end = NULL;
    long body_len = 0;

    *tls = 0;
    while (!hdr_end) {
        ssize_t n;

        if (len >= LB_MAX_HEAD || wait_readable(s, fd, deadline) != 1) {
            goto out;
        }
        n = recv(fd, buf + len, LB_MAX_HEAD - len, 0);
        if (n <= 0) {
            goto out;
        }
        if (len == 0 && (unsigned char)buf[0] == 0x16) {
            *tls = 1;
            goto out;
        }
        len += (size_t)n;
        buf[len] = '\0';
        hdr_end = memmem(buf, len, "\r\n\r\n", 4);
    }
    head_len = (size_t)(hdr_end - buf);
    r = parse_head(buf, head_len);
    if (!r) {
        goto out;
    }
    cl = lb_header(r, "Content-Length");
    if (cl) {
        body_len = strtol(cl, NULL, 10);
    }
    if (body_len < 0 || body_len > LB_MAX_BODY) {
        free_request(r);
        r = NULL;
        goto out;
    }
    want = (size_t)body_len;
    r->body = xmalloc(want + 1);
    r->body_len = len - head_len - 4;
    if (r->body_len > want) {
        r->body_len = want;
    }
    memcpy(r->body, buf + head_len + 4, r->body_len);
    while (r->body_len < want) {
        ssize_t n;

        if (wait_readable(s, fd, deadline) != 1) {
            break;
        }
        n = recv(fd, r->body + r->body_len, want - r->body_len, 0);
        if (n <= 0) {
            break;
        }
        r->body_len += (size_t)n;
    }
    r->body[r->body_len] = '\0';
out:
    free(buf);
    return r;
}

/* Next response for path (copied: the strings stay owned by the route). */
static lb_response_t pick_response(lb_server_t *s, const char *path)
{
    lb_response_t none = { LB_RESPOND, 404, NULL, "{\"message\":\"no scripted response\"}", 0 };
    lb_route_t *best = NULL;
    size_t best_len = 0;
    int i;

    for (i = 0; i < s->nroutes; i++) {
        size_t pl = strlen(s->routes[i].prefix);

        if (strncmp(path, s->routes[i].prefix, pl) == 0 && (!best || pl > best_len)
            && s->routes[i].n > 0) {
            best = &s->routes[i];
            best_len = pl;
        }
    }
    if (!best) {
        return none;
    }
    if (best->next < best->n - 1) {
        return best->resp[best->next++];
    }
    return best->resp[best->n - 1];
}

/* Sleep up to ms, returning early when the peer closes or the server stops. */
static void delay(lb_server_t *s, int fd, int ms)
{
    long long deadline = now_ms() + ms;

    while (now_ms() < deadline && !atomic_load(&s->stop)) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        char c;

        if (poll(&pfd, 1, 10) > 0) {
            if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) {
                return; /* client gone */
            }
            /* unexpected extra bytes: ignore, keep waiting */
            (void)recv(fd, &c, 1, MSG_DONTWAIT);
        }
    }
}

static void respond(int fd, const lb_request_t *req, const lb_response_t *r)
{
    const char *body = r->body ? r->body : "";
    size_t blen = strlen(body), hlen;
    const char *extra = r->headers ? r->headers : "";
    int add_ct = blen > 0 && !strcasestr(extra, "content-type:");
    char *head;

    hlen = strlen(extra) + 256;
    head = xmalloc(hlen);
    snprintf(head, hlen, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s%s\r\n",
             r->status, reason(r->status), blen, add_ct ? "Content-Type: application/json\r\n" : "",
             extra);
    if (send_all(fd, head, strlen(head)) == 0 && strcmp(req->method, "HEAD") != 0) {
        if (r->action == LB_DROP_MID_BODY) {
            (void)send_all(fd, body, blen / 2);
        }
        else {
            (void)send_all(fd, body, blen);
        }
    }
    free(head);
}

static void serve(lb_server_t *s, int fd)
{
    int tls = 0;
    lb_request_t *req = read_request(s, fd, &tls);
    lb_response_t r;

    if (!req) {
        if (tls) {
            pthread_mutex_lock(&s->mu);
            s->tls_attempts++;
            pthread_mutex_unlock(&s->mu);
        }
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (s->nreqs == s->capreqs) {
        s->capreqs = s->capreqs ? s->capreqs * 2 : 16;
        s->reqs = xrealloc(s->reqs, sizeof(*s->reqs) * (size_t)s->capreqs);
    }
    s->reqs[s->nreqs++] = req;
    r = pick_response(s, req->path);
    pthread_cond_broadcast(&s->captured);
    pthread_mutex_unlock(&s->mu);

    if (r.delay_ms > 0) {
        delay(s, fd, r.delay_ms);
    }
    switch (r.action) {
    case LB_DROP: shutdown(fd, SHUT_RDWR); break;
    case LB_RESET: {
        struct linger lg = { 1, 0 };

        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        break;
    }
    case LB_RESPOND:
    case LB_DROP_MID_BODY:
        respond(fd, req, &r);
        shutdown(fd, SHUT_WR);
        break;
    }
}

static void *conn_main(void *arg)
{
    conn_arg_t *c = arg;

    serve(c->s, c->fd);
    close(c->fd);
    free(c);
    return NULL;
}

static void *server_main(void *arg)
{
    lb_server_t *s = arg;

    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = { .fd = s->lfd, .events = POLLIN };
        conn_arg_t *c;
        int fd;

        if (poll(&pfd, 1, 50) <= 0) {
            continue;
        }
        fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        c = xmalloc(sizeof(*c));
        c->s = s;
        c->fd = fd;
        pthread_mutex_lock(&s->mu);
        if (s->nconns == s->capconns) {
            s->capconns = s->capconns ? s->capconns * 2 : 16;
            s->conns = xrealloc(s->conns, sizeof(*s->conns) * (size_t)s->capconns);
        }
        if (pthread_create(&s->conns[s->nconns], NULL, conn_main, c) == 0) {
            s->nconns++;
        }
        else {
            close(fd);
            free(c);
        }
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

lb_server_t *lb_start(void)
{
    lb_server_t *s = xmalloc(sizeof(*s));
    struct sockaddr_in sa;
    socklen_t slen = sizeof(sa);
    int one = 1;

    memset(s, 0, sizeof(*s));
    atomic_init(&s->stop, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->captured, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0) {
        perror("loopback_http: socket");
        abort();
    }
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(s->lfd, 128) != 0
        || getsockname(s->lfd, (struct sockaddr *)&sa, &slen) != 0) {
        perror("loopback_http: bind/listen");
        abort();
    }
    s->port = ntohs(sa.sin_port);
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
    if (pthread_create(&s->thread, NULL, server_main, s) != 0) {
        fprintf(stderr, "loopback_http: pthread_create failed\n");
        abort();
    }
    return s;
}

void lb_stop(lb_server_t *s)
{
    int i, j;

    if (!s) {
        return;
    }
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    for (i = 0; i < s->nconns; i++) {
        pthread_join(s->conns[i], NULL);
    }
    free(s->conns);
    close(s->lfd);
    for (i = 0; i < s->nreqs; i++) {
        free_request(s->reqs[i]);
    }
    free(s->reqs);
    for (i = 0; i < s->nroutes; i++) {
        for (j = 0; j < s->routes[i].n; j++) {
            free((char *)s->routes[i].resp[j].headers);
            free((char *)s->routes[i].resp[j].body);
        }
        free(s->routes[i].resp);
        free(s->routes[i].prefix);
    }
    free(s->routes);
    pthread_cond_destroy(&s->captured);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int lb_port(const lb_server_t *s)
{
    return s->port;
}

const char *lb_url(const lb_server_t *s)
{
    return s->url;
}

void lb_add(lb_server_t *s, const char *prefix, const lb_response_t *r)
{
    lb_route_t *route = NULL;
    int i;

    pthread_mutex_lock(&s->mu);
    for (i = 0; i < s->nroutes; i++) {
        if (strcmp(s->routes[i].prefix, prefix) == 0) {
            route = &s->routes[i];
            break;
        }
    }
    if (!route) {
        if (s->nroutes == s->caproutes) {
            s->caproutes = s->caproutes ? s->caproutes * 2 : 8;
            s->routes = xrealloc(s->routes, sizeof(*s->routes) * (size_t)s->caproutes);
        }
        route = &s->routes[s->nroutes++];
        memset(route, 0, sizeof(*route));
        route->prefix = xstrndup(prefix, strlen(prefix));
    }
    if (route->n == route->cap) {
        route->cap = route->cap ? route->cap * 2 : 4;
        route->resp = xrealloc(route->resp, sizeof(*route->resp) * (size_t)route->cap);
    }
    route->resp[route->n] = *r;
    route->resp[route->n].headers = xstrdup_or_null(r->headers);
    route->resp[route->n].body = xstrdup_or_null(r->body);
    route->n++;
    pthread_mutex_unlock(&s->mu);
}

void lb_add_simple(lb_server_t *s, const char *prefix, int status, const char *headers,
                   const char *body)
{
    lb_response_t r = { LB_RESPOND, status, headers, body, 0 };

    lb_add(s, prefix, &r);
}

int lb_count(lb_server_t *s, const char *prefix)
{
    int i, n = 0;

    pthread_mutex_lock(&s->mu);
    for (i = 0; i < s->nreqs; i++) {
        if (!prefix || strncmp(s->reqs[i]->path, prefix, strlen(prefix)) == 0) {
            n++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

const lb_request_t *lb_request(lb_server_t *s, const char *prefix, int idx)
{
    const lb_request_t *found = NULL;
    int i, n = 0;

    pthread_mutex_lock(&s->mu);
    for (i = 0; i < s->nreqs; i++) {
        if (!prefix || strncmp(s->reqs[i]->path, prefix, strlen(prefix)) == 0) {
            if (n++ == idx) {
                found = s->reqs[i];
                break;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

int lb_wait_count(lb_server_t *s, const char *prefix, int n, int timeout_ms)
{
    struct timespec until;
    int have;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    for (;;) {
        int i;

        pthread_mutex_lock(&s->mu);
        for (have = 0, i = 0; i < s->nreqs; i++) {
            if (!prefix || strncmp(s->reqs[i]->path, prefix, strlen(prefix)) == 0) {
                have++;
            }
        }
        if (have >= n || pthread_cond_timedwait(&s->captured, &s->mu, &until) != 0) {
            pthread_mutex_unlock(&s->mu);
            return have >= n;
        }
        pthread_mutex_unlock(&s->mu);
    }
}

int lb_tls_attempts(lb_server_t *s)
{
    int n;

    pthread_mutex_lock(&s->mu);
    n = s->tls_attempts;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int lb_closed_port(void)
{
    struct sockaddr_in sa;
    socklen_t slen = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    if (fd < 0) {
        perror("loopback_http: socket");
        abort();
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0
        || getsockname(fd, (struct sockaddr *)&sa, &slen) != 0) {
        perror("loopback_http: bind");
        abort();
    }
    port = ntohs(sa.sin_port);
    close(fd); /* bound but never listening: connects are refused */
    return port;
}
