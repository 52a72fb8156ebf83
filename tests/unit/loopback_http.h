/* A scripted HTTP/1.1 server on 127.0.0.1 (ephemeral port) for unit tests of
 * the upstream client. Each connection is served by its own thread and closed
 * after one response (Connection: close). Responses are scripted per path
 * prefix: each request takes the next response of the route with the longest
 * matching prefix; the last response of a route repeats for ever. A request
 * that matches no route gets a 404. Every request is captured (method, target,
 * headers, body) for the test to inspect. */
#ifndef LOOPBACK_HTTP_H
#define LOOPBACK_HTTP_H

#include <stddef.h>

typedef enum {
    LB_RESPOND = 0,  /* send the scripted response */
    LB_DROP,         /* read the request, close without answering */
    LB_RESET,        /* read the request, reset the connection (RST) */
    LB_DROP_MID_BODY /* send the headers and half the body, then close */
} lb_action_e;

typedef struct lb_response {
    lb_action_e action;
    int status;
    const char *headers; /* extra header lines, each ending in "\r\n"; may be NULL */
    const char *body;    /* NULL = empty. Content-Type: application/json is added
                               when the body is not empty and headers name none */
    int delay_ms;        /* wait before acting; cut short when the client goes away */
} lb_response_t;

typedef struct lb_request {
    char *method;
    char *target; /* as sent, with the query string */
    char *path;   /* target without the query string */
    int nheaders;
    char **names;
    char **values;
    char *body; /* NUL-terminated */
    size_t body_len;
} lb_request_t;

typedef struct lb_server lb_server_t;

/* Start listening; aborts the test binary if the socket cannot be set up. */
lb_server_t *lb_start(void);

/* Stop the thread, close every socket, free everything (captured requests too). */
void lb_stop(lb_server_t *s);

int lb_port(const lb_server_t *s);

/* "http://127.0.0.1:<port>" */
const char *lb_url(const lb_server_t *s);

/* Append a response to the script of the route `prefix`. Strings are copied. */
void lb_add(lb_server_t *s, const char *prefix, const lb_response_t *r);
void lb_add_simple(lb_server_t *s, const char *prefix, int status, const char *headers,
                   const char *body);

/* Requests captured so far whose path starts with prefix (NULL: all). */
int lb_count(lb_server_t *s, const char *prefix);

/* The i-th captured request whose path starts with prefix (NULL: any), or NULL.
 * The record stays valid until lb_stop. */
const lb_request_t *lb_request(lb_server_t *s, const char *prefix, int i);

/* Block until at least n requests matching prefix (NULL: all) were captured,
 * or timeout_ms passed (condition variable, no polling). 1 if reached. */
int lb_wait_count(lb_server_t *s, const char *prefix, int n, int timeout_ms);

/* Header value of a captured request (name compared case-insensitively), or NULL. */
const char *lb_header(const lb_request_t *r, const char *name);

/* Connections that opened with a TLS handshake record (and were closed). */
int lb_tls_attempts(lb_server_t *s);

/* A port on 127.0.0.1 where nothing listens (for "connection refused"). */
int lb_closed_port(void);

#endif
