/* WebSocket client transport on libwebsockets 4.1: one lws context owned by
 * one service thread, any number of client connections (one per notification
 * channel). Policy (heartbeat watchdog, reconnect backoff, which channels)
 * belongs to the caller; this file moves complete text messages. */
#ifndef GC_WS_H
#define GC_WS_H

#include <apr_pools.h>

typedef struct gc_ws gc_ws_t;
typedef struct gc_ws_conn gc_ws_conn_t;

typedef struct gc_ws_callbacks {
    /* Handshake done. */
    void (*on_open)(void *baton, gc_ws_conn_t *c, void *conn_baton);
    /* One complete text message (fragments reassembled; never above max_message). */
    void (*on_message)(void *baton, gc_ws_conn_t *c, void *conn_baton, const char *text,
                       apr_size_t len);
    /* The connection is gone (closed by peer, by us, or failed to connect). The
     * gc_ws_conn_t is invalid after this returns. `error` is non-zero for failures. */
    void (*on_close)(void *baton, gc_ws_conn_t *c, void *conn_baton, int error, const char *reason);
} gc_ws_callbacks_t;

/* Create the context on the calling (service) thread. ca_file may be NULL (system
 * store). TLS verification is always on for wss://. A message above max_message
 * bytes closes the connection with 1009 and reports on_close(error=1, "message too big"). */
gc_ws_t *gc_ws_create(apr_pool_t *p, const char *ca_file, apr_size_t max_message,
                      const gc_ws_callbacks_t *cb, void *baton);

/* Start connecting to a ws:// or wss:// URL (service thread only). NULL when the
 * URL is unusable; connection failures are reported later through on_close. */
gc_ws_conn_t *gc_ws_connect(gc_ws_t *ws, const char *url, void *conn_baton);

/* Queue a text message; sent when the socket is writable (service thread only). */
int gc_ws_send(gc_ws_conn_t *c, const char *text);

/* Close politely (1000); on_close follows (service thread only). */
void gc_ws_close(gc_ws_conn_t *c);

/* Run the event loop until an event was handled, a wake-up, or timeout_ms passed
 * (implemented with an lws timer, since lws_service ignores its timeout). */
void gc_ws_service(gc_ws_t *ws, int timeout_ms);

/* Wake the service thread out of gc_ws_service. The only thread-safe call. */
void gc_ws_wake(gc_ws_t *ws);

/* Close all connections and destroy the context (service thread only). No
 * callbacks are made after it returns. */
void gc_ws_destroy(gc_ws_t *ws);

/* Route libwebsockets' own logging into gc_log (ERR/WARN by default). Process-wide. */
void gc_ws_log_init(int verbose);

#endif
