/* WebSocket client transport on libwebsockets 4.1 (see gc_ws.h).
 *
 * Threading: the lws context is created, serviced and destroyed on one thread
 * (the caller's service thread); every function here except gc_ws_wake and
 * gc_ws_log_init must be called on it. gc_ws_wake is lws_cancel_service, which
 * writes to the context's event pipe; the service thread sees
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED. A wake while the service thread is not in
 * gc_ws_service is not lost: the next gc_ws_service returns at once.
 *
 * One context per process at a time: lws 4.1 takes new process-global OpenSSL
 * ex_data indexes for every context (warmcat/libwebsockets#2044, #2178), so an
 * older context alive next to a newer one leaks its client SSL_CTX at destroy
 * and can fail a TLS handshake that is in flight while the newer one starts.
 *
 * Memory: the gc_ws_t lives in the caller's pool (destroying the pool destroys
 * the context too, if gc_ws_destroy was not called). Connections come and go
 * for the life of the process (reconnects), so each gc_ws_conn_t, its receive
 * buffer and its send queue are malloc'd and freed when the connection is
 * reported closed (or at destroy). lws keeps its own per-wsi state; we detach
 * from a wsi (lws_set_wsi_user(wsi, NULL)) before freeing the conn, so any later
 * callback for that wsi finds no conn and is ignored.
 *
 * Callbacks are made only from inside gc_ws_service, never from the function
 * that caused them (gc_ws_connect, gc_ws_close). on_close comes exactly once per
 * gc_ws_conn_t: error=0 after gc_ws_close or a peer close with 1000/1001;
 * error=1 for connect, DNS and TLS failures, a lost connection, other peer
 * close codes and "message too big". Once gc_ws_destroy starts, no callback of
 * any kind is made: connections still open are dropped without on_close.
 *
 * gc_ws_service(ws, timeout_ms): timeout_ms > 0 waits at most that long, 0
 * only runs what is due, < 0 waits for an event or a wake-up.
 *
 * TLS (wss://): LCCSCF_USE_SSL only, so the chain and the host name are always
 * verified (system store plus ca_file). lws cuts ":port" off the Host value for
 * SNI and the name check; an IP literal is matched against IP SANs. IPv6
 * literals cannot be used with wss:// (lws cuts at their first ':').
 *
 * Log tags GCM500-GCM509. */
#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_uri.h>
#include <apr_time.h>

#include <libwebsockets.h>

#include "gc_log.h"
#include "gc_ws.h"

#define WS_PROTOCOL_NAME "gcmon-ws"
#define WS_FD_LIMIT 64         /* a handful of channels + lws' own fds */
#define WS_RX_KEEP (64 * 1024) /* keep a receive buffer up to this size */
#define WS_CLOSE_GRACE_S 10    /* our close must finish within this */

/* "host[:port]/path" of a connection for log lines, without the query. */
/* host and path: debug lines only (a path may hold a credential, e.g. a
 * notification channel id); lines above debug name the host alone. */
#define WS_LOGNAME(c) (c)->host, (int)strcspn((c)->path, "?"), (c)->path

typedef struct ws_txmsg {
    struct ws_txmsg *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE headroom + len bytes */
} ws_txmsg_t;

typedef enum {
    WS_CONN_PENDING = 0, /* connect scheduled (sul), no wsi yet */
    WS_CONN_CONNECTING,  /* wsi exists, handshake in progress */
    WS_CONN_OPEN,        /* established */
    WS_CONN_DONE         /* on_close reported (or suppressed) */
} ws_conn_state_e;

struct gc_ws_conn {
    gc_ws_t *ws;
    gc_ws_conn_t *prev, *next; /* ws->conns */
    struct lws *wsi;
    void *baton;
    lws_sorted_usec_list_t sul_connect;
    ws_conn_state_e state;

    /* parsed URL (one malloc'd block, freed with the conn) */
    char *address; /* for connect(): host without brackets */
    char *host;    /* Host header: host[:port]; lws cuts the
                                         port off for SNI and the name check */
    char *origin;  /* http(s)://host[:port] */
    char *path;    /* path and query, at least "/" */
    int port;
    int tls;

    /* receive */
    char *rx;
    size_t rx_len, rx_cap;
    int rx_in_message; /* a message has started, not yet final */
    int rx_binary;     /* the current message is binary: skip it */

    /* send queue */
    ws_txmsg_t *tx_head, *tx_tail;

    int close_requested; /* gc_ws_close was called */
    int in_connect;      /* inside lws_client_connect_via_info */
    int failed;          /* close code of a failure we decided (1009) */
    int peer_code;       /* close code the peer sent, 0 = none */
    char peer_reason[64];
    char reason[192];
    char *strings;
};

/* The last certificate verification failure lws logged on this thread (lws
 * logs it, then reports only "SSL err 1" to the connection error callback,
 * which runs on the same service thread): read and cleared there. */
static _Thread_local char ws_tls_error[128];

struct gc_ws {
    apr_pool_t *pool;
    struct lws_context *ctx;
    apr_thread_mutex_t *wake_mutex; /* orders gc_ws_wake against destroy */
    gc_ws_callbacks_t cb;
    void *baton;
    apr_size_t max_message;
    const char *ca_file;
    struct lws_protocols protocols[2];
    lws_sorted_usec_list_t sul_timeout;
    gc_ws_conn_t *conns;
    int destroying;
    /* gc_ws_service state */
    int activity, woken, timed_out;
};

/* lws' own PING after 5 idle minutes (any healthy peer answers with a PONG),
 * hang-up only after 15 minutes without a PONG or a complete message. The
 * caller runs the application-level watchdog; this is only a backstop. The
 * retry table is unused (the caller owns reconnects) but lws wants one. */
static const uint32_t ws_retry_table[] = { 1000 };
static const lws_retry_bo_t ws_retry = {
    .retry_ms_table = ws_retry_table,
    .retry_ms_table_count = 1,
    .conceal_count = 1,
    .secs_since_valid_ping = 300,
    .secs_since_valid_hangup = 900,
    .jitter_percent = 0,
};

/* ------------------------------------------------------------------------ */
/* connection bookkeeping */

static void conn_free(gc_ws_conn_t *c)
{
    gc_ws_t *ws = c->ws;
    ws_txmsg_t *m, *next;

    if (c->prev) {
        c->prev->next = c->next;
    }
    else if (ws->conns == c) {
        ws->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    for (m = c->tx_head; m; m = next) {
        next = m->next;
        free(m);
    }
    free(c->rx);
    free(c->strings);
    free(c);
}

/* Report the end of a connection once, detach it from its wsi and free it
 * (unless lws_client_connect_via_info is still running for it: then the
 * connect sul frees it when that returns). */
static void conn_finish(gc_ws_conn_t *c, int error, const char *reason)
{
    gc_ws_t *ws = c->ws;

    if (c->state == WS_CONN_DONE) {
        return;
    }
    c->state = WS_CONN_DONE;
    if (c->wsi) {
        lws_set_wsi_user(c->wsi, NULL);
        c->wsi = NULL;
    }
    if (!ws->destroying) {
        if (reason != c->reason) {
            apr_cpystrn(c->reason, reason, sizeof(c->reason));
        }
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0, GCMON_LOGNO(505) "ws %s%.*s: closed (%s): %s",
               WS_LOGNAME(c), error ? "error" : "ok", c->reason);
        ws->activity = 1;
        if (ws->cb.on_close) {
            ws->cb.on_close(ws->baton, c, c->baton, error, c->reason);
        }
    }
    if (!c->in_connect) {
        conn_free(c);
    }
}

/* ------------------------------------------------------------------------ */
/* URL parsing */

/* A port given in the URL: digits only, 1..65535 (apr_uri_parse takes an
 * empty port as the scheme's default and truncates one beyond 65535). */
static int url_port(const char *s, int *port)
{
    long v = 0;

    if (!*s || strlen(s) > 5) {
        return 0;
    }
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s)) {
            return 0;
        }
        v = v * 10 + (*s - '0');
    }
    *port = (int)v;
    return v >= 1 && v <= 65535;
}

/* A host lws can use: a name or IPv4 address, or an IPv6 literal (given in
 * brackets, which apr_uri_parse strips: only hex digits, ':' and '.' remain
 * unless something followed the ']'). */
static int url_host(const char *h)
{
    size_t n = strlen(h);

    if (n == 0 || n > 253) {
        return 0;
    }
    return strchr(h, ':') ? strspn(h, "0123456789abcdefABCDEF:.") == n : strcspn(h, "[]") == n;
}

/* address\0 host\0 origin\0 path\0 into c->strings (malloc'd: a conn
 * outlives pools). Host carries the port when it is not the default. */
static int conn_set_strings(gc_ws_conn_t *c, const char *host, int default_port, const char *path,
                            const char *query)
{
    size_t hlen = strlen(host), plen = strlen(path) + (query ? strlen(query) + 1 : 0);
    char *s = c->strings = malloc((hlen + 1) + (hlen + 9) + (hlen + 17) + (plen + 2));

    if (!s) {
        return -1;
    }
    c->address = s;
    s += sprintf(s, "%s", host) + 1;
    c->host = s;
    s += sprintf(s, strchr(host, ':') ? "[%s]" : "%s", host);
    if (c->port != default_port) {
        s += sprintf(s, ":%d", c->port);
    }
    s++;
    c->origin = s;
    s += sprintf(s, "%s://%s", c->tls ? "https" : "http", c->host) + 1;
    c->path = s;
    sprintf(s, "%s%s%s", path, query ? "?" : "", query ? query : "");
    return 0;
}

/* Parse ws:// or wss://host[:port][/path][?query] into c (allocating
 * c->strings; a #fragment is dropped). 0 on success. */
static int conn_parse_url(gc_ws_conn_t *c, const char *url)
{
    apr_pool_t *tp;
    apr_uri_t u;
    const char *p;
    int default_port, rv = -1;

    for (p = url; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            return -1;
        }
    }
    /* Its own pool: this may run on any thread's service loop. */
    if (apr_pool_create(&tp, NULL) != APR_SUCCESS) {
        return -1;
    }
    if (apr_uri_parse(tp, url, &u) == APR_SUCCESS && u.scheme && u.hostname && !u.user
        && !u.password && url_host(u.hostname)
        && (!strcasecmp(u.scheme, "ws") || !strcasecmp(u.scheme, "wss"))) {
        c->tls = !strcasecmp(u.scheme, "wss");
        default_port = c->tls ? 443 : 80;
        c->port = default_port;
        if (!u.port_str || url_port(u.port_str, &c->port)) {
            rv = conn_set_strings(c, u.hostname, default_port, u.path && *u.path ? u.path : "/",
                                  u.query);
        }
    }
    apr_pool_destroy(tp);
    return rv;
}

/* ------------------------------------------------------------------------ */
/* lws callback */

/* The live conn of a callback, or NULL. Finished conns are detached from
 * their wsi (user NULL), so a non-NULL user is always a conn in ws->conns. */
static gc_ws_conn_t *conn_of(struct lws *wsi, void *user)
{
    gc_ws_conn_t *c = user;

    if (!c || c->state == WS_CONN_DONE) {
        return NULL;
    }
    c->wsi = wsi;
    return c;
}

static void rx_reset(gc_ws_conn_t *c)
{
    c->rx_len = 0;
    c->rx_in_message = 0;
    c->rx_binary = 0;
    if (c->rx_cap > WS_RX_KEEP) {
        free(c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
    }
}

/* Append len bytes of the current message; 0 ok, -1 over max_message or OOM. */
static int rx_append(gc_ws_conn_t *c, const void *in, size_t len)
{
    size_t max = c->ws->max_message;

    if (len > max - c->rx_len) {
        return -1;
    }
    if (c->rx_len + len + 1 > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 4096;
        char *n;

        while (cap < c->rx_len + len + 1) {
            cap *= 2;
        }
        if (cap > max + 1) {
            cap = max + 1;
        }
        n = realloc(c->rx, cap);
        if (!n) {
            return -1;
        }
        c->rx = n;
        c->rx_cap = cap;
    }
    if (len) {
        memcpy(c->rx + c->rx_len, in, len);
    }
    c->rx_len += len;
    c->rx[c->rx_len] = '\0';
    return 0;
}

/* Fail the connection from a receive callback. lws 4.1 must not be told to
 * close by returning non-zero from CLIENT_RECEIVE: its parser then keeps
 * appending the rest of the read buffer to a receive buffer it no longer
 * resets (a heap overflow, seen under valgrind). So: remember the failure,
 * drop further data, and close from CLIENT_WRITEABLE with the close code. */
static void conn_fail(gc_ws_conn_t *c, struct lws *wsi, int code, const char *reason)
{
    ws_txmsg_t *m, *next;

    c->failed = code;
    apr_cpystrn(c->reason, reason, sizeof(c->reason));
    rx_reset(c);
    for (m = c->tx_head; m; m = next) { /* nothing more goes out */
        next = m->next;
        free(m);
    }
    c->tx_head = c->tx_tail = NULL;
    lws_callback_on_writable(wsi);
}

static int on_receive(gc_ws_t *ws, gc_ws_conn_t *c, struct lws *wsi, void *in, size_t len)
{
    if (c->failed) {
        return 0; /* closing: see conn_fail */
    }
    if (!c->rx_in_message) {
        c->rx_in_message = 1;
        c->rx_binary = lws_frame_is_binary(wsi);
        c->rx_len = 0;
    }
    if (c->rx_binary) {
        c->rx_len += len; /* counted, not kept */
    }
    else if (rx_append(c, in, len) != 0) {
        gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
               GCMON_LOGNO(504) "ws %s: message above %" APR_SIZE_T_FMT " bytes, closing (1009)",
               c->host, ws->max_message);
        conn_fail(c, wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big");
        return 0;
    }
    if (!lws_is_final_fragment(wsi)) {
        return 0;
    }
    /* A complete message is proof the connection works. */
    lws_validity_confirmed(wsi);
    ws->activity = 1;
    if (c->rx_binary) {
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
               GCMON_LOGNO(503) "ws %s%.*s: ignoring a binary message of %" APR_SIZE_T_FMT " bytes",
               WS_LOGNAME(c), (apr_size_t)c->rx_len);
    }
    else if (!c->close_requested && ws->cb.on_message) {
        /* rx_reset after the callback: it may call gc_ws_send/gc_ws_close. */
        c->rx_in_message = 0;
        ws->cb.on_message(ws->baton, c, c->baton, c->rx ? c->rx : "", c->rx_len);
    }
    rx_reset(c);
    return 0;
}

static int on_writeable(gc_ws_conn_t *c, struct lws *wsi)
{
    ws_txmsg_t *m = c->tx_head;

    if (c->failed) {
        lws_close_reason(wsi, (enum lws_close_status)c->failed, (unsigned char *)c->reason,
                         strlen(c->reason));
        return -1;
    }
    if (m) {
        int n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);

        if (n < (int)m->len) {
            c->failed = LWS_CLOSE_STATUS_ABNORMAL_CLOSE;
            apr_cpystrn(c->reason, "write failed", sizeof(c->reason));
            return -1;
        }
        c->tx_head = m->next;
        if (!c->tx_head) {
            c->tx_tail = NULL;
        }
        free(m);
        c->ws->activity = 1;
        if (c->tx_head || c->close_requested) {
            lws_callback_on_writable(wsi);
        }
        return 0;
    }
    if (c->close_requested) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    return 0; /* nothing queued: e.g. lws' own ping */
}

static void on_closed(gc_ws_conn_t *c)
{
    if (c->failed) {
        conn_finish(c, 1, c->reason);
    }
    else if (c->close_requested) {
        conn_finish(c, 0, "closed");
    }
    else if (c->peer_code) {
        apr_snprintf(c->reason, sizeof(c->reason), "closed by peer (%d%s%s)", c->peer_code,
                     c->peer_reason[0] ? " " : "", c->peer_reason);
        conn_finish(c,
                    c->peer_code != LWS_CLOSE_STATUS_NORMAL
                        && c->peer_code != LWS_CLOSE_STATUS_GOINGAWAY,
                    c->reason);
    }
    else {
        conn_finish(c, 1, "connection lost");
    }
}

static void on_peer_close(gc_ws_conn_t *c, const unsigned char *in, size_t len)
{
    size_t i, n = 0;

    if (len < 2) {
        c->peer_code = LWS_CLOSE_STATUS_NO_STATUS;
        return;
    }
    c->peer_code = (in[0] << 8) | in[1];
    for (i = 2; i < len && n + 1 < sizeof(c->peer_reason); i++) {
        c->peer_reason[n++] = (in[i] >= 0x20 && in[i] < 0x7f) ? (char)in[i] : '?';
    }
    c->peer_reason[n] = '\0';
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    gc_ws_t *ws = ctx ? lws_context_user(ctx) : NULL;
    gc_ws_conn_t *c;

    if (!ws) {
        return 0;
    }
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: ws->woken = 1; return 0;

    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!(c = conn_of(wsi, user))) {
            return 0;
        }
        c->state = WS_CONN_OPEN;
        ws->activity = 1;
        if (c->close_requested || c->tx_head) {
            lws_callback_on_writable(wsi);
        }
        if (!ws->destroying && !c->close_requested && ws->cb.on_open) {
            ws->cb.on_open(ws->baton, c, c->baton);
        }
        return 0;

    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!(c = conn_of(wsi, user)) || ws->destroying) {
            return 0;
        }
        return on_receive(ws, c, wsi, in, len);

    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (!(c = conn_of(wsi, user)) || ws->destroying) {
            return 0;
        }
        return on_writeable(c, wsi);

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if ((c = conn_of(wsi, user))) {
            on_peer_close(c, in, len);
        }
        return 0;

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (!(c = conn_of(wsi, user))) {
            return 0;
        }
        if (c->close_requested) {
            conn_finish(c, 0, "closed");
        }
        else {
            /* in: lws' description (a C string), len its length. lws says
             * little about a refused certificate ("SSL err 1"): its own log
             * line just before told why (ws_tls_error), so name the host and
             * that reason. */
            if (c->tls && ws_tls_error[0]) {
                apr_snprintf(c->reason, sizeof(c->reason), "TLS verification failed for %s: %s",
                             c->host, ws_tls_error);
            }
            else {
                apr_snprintf(c->reason, sizeof(c->reason), "connect to %s failed: %.*s", c->host,
                             in ? (int)strnlen(in, len && len < 120 ? len : 120) : 7,
                             in ? (const char *)in : "unknown");
            }
            ws_tls_error[0] = '\0';
            conn_finish(c, 1, c->reason);
        }
        return 0;

    case LWS_CALLBACK_CLIENT_CLOSED:
        if ((c = conn_of(wsi, user))) {
            on_closed(c);
        }
        return 0;

    case LWS_CALLBACK_WSI_DESTROY:
        /* Last word on a wsi: if it never reached one of the above (it should),
         * still report the connection gone. */
        if ((c = conn_of(wsi, user))) {
            if (c->state == WS_CONN_OPEN) {
                on_closed(c);
            }
            else {
                conn_finish(c, !c->close_requested,
                            c->close_requested ? "closed" : "connect failed");
            }
        }
        return 0;

    default: return 0;
    }
}

/* ------------------------------------------------------------------------ */
/* public API */

static apr_status_t ws_pool_cleanup(void *data)
{
    gc_ws_destroy(data);
    return APR_SUCCESS;
}

gc_ws_t *gc_ws_create(apr_pool_t *p, const char *ca_file, apr_size_t max_message,
                      const gc_ws_callbacks_t *cb, void *baton)
{
    struct lws_context_creation_info info;
    gc_ws_t *ws = apr_pcalloc(p, sizeof(*ws));
    apr_file_t *f;
    apr_status_t rv;

    /* lws 4.1 only logs an unreadable CA file and then fails every wss://
     * connection: refuse here, once, with the reason. */
    if (ca_file && (rv = apr_file_open(&f, ca_file, APR_FOPEN_READ, 0, p)) != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_ERR, rv, GCMON_LOGNO(509) "ws: cannot read the CA file %s",
               ca_file);
        return NULL;
    }
    if (ca_file) {
        apr_file_close(f);
    }
    ws->pool = p;
    if (cb) {
        ws->cb = *cb;
    }
    ws->baton = baton;
    ws->max_message = max_message ? max_message : 1;
    if (ws->max_message > (apr_size_t)INT_MAX - 1) {
        ws->max_message = (apr_size_t)INT_MAX - 1;
    }
    ws->ca_file = ca_file ? apr_pstrdup(p, ca_file) : NULL;

    ws->protocols[0].name = WS_PROTOCOL_NAME;
    ws->protocols[0].callback = ws_callback;
    ws->protocols[0].per_session_data_size = 0;
    ws->protocols[0].rx_buffer_size = 0;

    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = ws->protocols;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN;
    info.uid = -1;
    info.gid = -1;
    info.fd_limit_per_thread = WS_FD_LIMIT;
    info.client_ssl_ca_filepath = ws->ca_file;
    info.retry_and_idle_policy = &ws_retry;
    info.user = ws;

    if (apr_thread_mutex_create(&ws->wake_mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        gc_log(GC_LOG_MARK, GC_LOG_ERR, 0, GCMON_LOGNO(508) "ws: cannot create a mutex");
        return NULL;
    }
    ws->ctx = lws_create_context(&info);
    if (!ws->ctx) {
        gc_log(GC_LOG_MARK, GC_LOG_ERR, 0,
               GCMON_LOGNO(500) "ws: cannot create the libwebsockets context (CA file: %s)",
               ca_file ? ca_file : "system store only");
        return NULL;
    }
    apr_pool_cleanup_register(p, ws, ws_pool_cleanup, apr_pool_cleanup_null);
    /* lws signals its own event pipe while starting: absorb that here, so the
     * caller's first gc_ws_service does not return for nothing. */
    gc_ws_service(ws, 0);
    return ws;
}

static void conn_connect_cb(lws_sorted_usec_list_t *sul)
{
    gc_ws_conn_t *c = lws_container_of(sul, gc_ws_conn_t, sul_connect);
    gc_ws_t *ws = c->ws;
    struct lws_client_connect_info ci;
    struct lws *wsi;

    if (c->close_requested) {
        conn_finish(c, 0, "closed");
        return;
    }
    memset(&ci, 0, sizeof(ci));
    ci.context = ws->ctx;
    ci.address = c->address;
    ci.port = c->port;
    ci.path = c->path;
    ci.host = c->host;
    ci.origin = c->origin;
    ci.ssl_connection = c->tls ? LCCSCF_USE_SSL : 0;
    ci.alpn = "http/1.1";
    ci.protocol = NULL; /* no Sec-WebSocket-Protocol */
    ci.local_protocol_name = WS_PROTOCOL_NAME;
    ci.ietf_version_or_minus_one = -1;
    ci.userdata = c; /* no pwsi: c->wsi is set from callbacks */
    ci.retry_and_idle_policy = &ws_retry;

    c->state = WS_CONN_CONNECTING;
    c->in_connect = 1;
    wsi = lws_client_connect_via_info(&ci);
    c->in_connect = 0;
    if (c->state == WS_CONN_DONE) { /* failed (and reported) inside */
        conn_free(c);
        return;
    }
    if (!wsi) {
        c->wsi = NULL;
        conn_finish(c, !c->close_requested, c->close_requested ? "closed" : "connect failed");
        return;
    }
    c->wsi = wsi;
    if (c->close_requested) {
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

gc_ws_conn_t *gc_ws_connect(gc_ws_t *ws, const char *url, void *conn_baton)
{
    gc_ws_conn_t *c;

    if (!ws || !ws->ctx || ws->destroying || !url) {
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        return NULL;
    }
    c->ws = ws;
    c->baton = conn_baton;
    if (conn_parse_url(c, url) != 0) {
        /* the caller reports it; this says what we expect */
        gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0,
               GCMON_LOGNO(501) "ws: unusable URL (need ws:// or wss://host[:port][/path])");
        free(c->strings);
        free(c);
        return NULL;
    }
    c->next = ws->conns;
    if (ws->conns) {
        ws->conns->prev = c;
    }
    ws->conns = c;
    c->state = WS_CONN_PENDING;
    gc_log(GC_LOG_MARK, GC_LOG_DEBUG, 0, GCMON_LOGNO(502) "ws: connecting to %s://%s%.*s",
           c->tls ? "wss" : "ws", WS_LOGNAME(c));
    /* Connect from the event loop, so that every outcome (even an immediate
     * failure) reaches the caller through on_close, never from in here. */
    lws_sul_schedule(ws->ctx, 0, &c->sul_connect, conn_connect_cb, 1);
    return c;
}

int gc_ws_send(gc_ws_conn_t *c, const char *text)
{
    ws_txmsg_t *m;
    size_t len;

    if (!c || !text || c->state == WS_CONN_DONE || c->close_requested || c->failed
        || c->ws->destroying) {
        return -1;
    }
    len = strlen(text);
    m = malloc(sizeof(*m) + LWS_PRE + len);
    if (!m) {
        gc_log(GC_LOG_MARK, GC_LOG_ERR, APR_ENOMEM,
               GCMON_LOGNO(506) "ws %s: out of memory queueing %" APR_SIZE_T_FMT " bytes", c->host,
               (apr_size_t)len);
        return -1;
    }
    m->next = NULL;
    m->len = len;
    memcpy(m->buf + LWS_PRE, text, len);
    if (c->tx_tail) {
        c->tx_tail->next = m;
    }
    else {
        c->tx_head = m;
    }
    c->tx_tail = m;
    if (c->state == WS_CONN_OPEN && c->wsi) {
        lws_callback_on_writable(c->wsi);
    }
    return 0;
}

void gc_ws_close(gc_ws_conn_t *c)
{
    if (!c || c->state == WS_CONN_DONE || c->close_requested || c->ws->destroying) {
        return;
    }
    c->close_requested = 1;
    switch (c->state) {
    case WS_CONN_PENDING:
        /* conn_connect_cb reports on_close */
        break;
    case WS_CONN_CONNECTING:
        if (c->wsi && !c->in_connect) {
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
        break;
    case WS_CONN_OPEN:
        /* Flush what is queued, then send close(1000); lws replaces this
         * timeout with its own (5 s) once the close frame is on its way. */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, WS_CLOSE_GRACE_S);
        lws_callback_on_writable(c->wsi);
        break;
    case WS_CONN_DONE: break;
    }
}

static void ws_timeout_cb(lws_sorted_usec_list_t *sul)
{
    gc_ws_t *ws = lws_container_of(sul, gc_ws_t, sul_timeout);

    ws->timed_out = 1;
    /* lws 4.1 runs ripe timers *before* it polls, then sleeps until the next
     * timer of its own (up to ~30 s): make that poll return at once. */
    lws_cancel_service(ws->ctx);
}

/* Returns after one of our callbacks ran (open, message, close, a write), a
 * wake-up, or the timeout. */
void gc_ws_service(gc_ws_t *ws, int timeout_ms)
{
    if (!ws || !ws->ctx || ws->destroying) {
        return;
    }
    ws->activity = ws->woken = ws->timed_out = 0;
    if (timeout_ms >= 0) {
        lws_sul_schedule(ws->ctx, 0, &ws->sul_timeout, ws_timeout_cb,
                         timeout_ms ? (lws_usec_t)timeout_ms * LWS_US_PER_MS : 1);
    }
    /* One lws_service call is one poll() plus the work it found; lws also
     * wakes for its own timers, so loop until something of ours happened. */
    while (!ws->activity && !ws->woken && !ws->timed_out) {
        if (lws_service(ws->ctx, 0) < 0) {
            break;
        }
    }
    lws_sul_cancel(&ws->sul_timeout);
}

void gc_ws_wake(gc_ws_t *ws)
{
    if (!ws || !ws->wake_mutex) {
        return;
    }
    apr_thread_mutex_lock(ws->wake_mutex);
    if (ws->ctx) {
        lws_cancel_service(ws->ctx);
    }
    apr_thread_mutex_unlock(ws->wake_mutex);
}

void gc_ws_destroy(gc_ws_t *ws)
{
    struct lws_context *ctx;
    gc_ws_conn_t *c;

    if (!ws || !ws->ctx) {
        return;
    }
    /* From here on no callback reaches the caller: lws_context_destroy closes
     * every wsi and fires CLIENT_CLOSED/CONNECTION_ERROR; conn_finish only
     * frees the conns then. */
    ws->destroying = 1;
    ctx = ws->ctx;
    apr_thread_mutex_lock(ws->wake_mutex);
    ws->ctx = NULL; /* gc_ws_wake is a no-op from here on */
    apr_thread_mutex_unlock(ws->wake_mutex);
    lws_context_destroy(ctx);
    while ((c = ws->conns) != NULL) {
        c->state = WS_CONN_DONE; /* e.g. still waiting for its connect sul */
        conn_free(c);
    }
    apr_pool_cleanup_kill(ws->pool, ws, ws_pool_cleanup);
}

/* ------------------------------------------------------------------------ */
/* lws logging */

#define WS_LOG_SLOTS 32
#define WS_LOG_KEYLEN 48

typedef struct {
    char key[WS_LOG_KEYLEN + 1];
    apr_time_t last;
    unsigned suppressed;
} ws_log_slot_t;

static pthread_mutex_t ws_log_mutex = PTHREAD_MUTEX_INITIALIZER;
static ws_log_slot_t ws_log_slots[WS_LOG_SLOTS];
static unsigned ws_log_next;

/* The key of a line: its first characters with numbers and 0x... pointers
 * left out, so "connect to 10.0.0.1:443 failed (wsi 0x55d1...)" repeats. */
static void ws_log_key(const char *line, char *key)
{
    size_t n = 0;
    const char *p = line;

    while (*p && n < WS_LOG_KEYLEN) {
        if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
            p += 2;
            while (isxdigit((unsigned char)*p)) {
                p++;
            }
            continue;
        }
        if (!isdigit((unsigned char)*p)) {
            key[n++] = *p;
        }
        p++;
    }
    key[n] = '\0';
}

/* 1: log it now (with *suppressed similar lines dropped before); 0: drop. */
static int ws_log_allow(const char *line, unsigned *suppressed)
{
    char key[WS_LOG_KEYLEN + 1];
    apr_time_t now = apr_time_now();
    ws_log_slot_t *s = NULL;
    unsigned i;
    int allow = 1;

    ws_log_key(line, key);
    *suppressed = 0;
    pthread_mutex_lock(&ws_log_mutex);
    for (i = 0; i < WS_LOG_SLOTS; i++) {
        if (ws_log_slots[i].last && strcmp(ws_log_slots[i].key, key) == 0) {
            s = &ws_log_slots[i];
            break;
        }
    }
    if (s && now - s->last < apr_time_from_sec(1) && now >= s->last) {
        s->suppressed++;
        allow = 0;
    }
    else {
        if (!s) {
            s = &ws_log_slots[ws_log_next++ % WS_LOG_SLOTS];
            memcpy(s->key, key, sizeof(s->key));
            s->suppressed = 0;
        }
        *suppressed = s->suppressed;
        s->suppressed = 0;
        s->last = now;
    }
    pthread_mutex_unlock(&ws_log_mutex);
    return allow;
}

static void ws_log_emit(int level, const char *line)
{
    char buf[512];
    const char *tls;
    size_t n;
    unsigned suppressed;
    int gl;

    apr_cpystrn(buf, line ? line : "", sizeof(buf));
    n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) {
        buf[--n] = '\0';
    }
    if (!n) {
        return;
    }
    if ((tls = strstr(buf, "SSL error: ")) != NULL) {
        /* "SSL error: certificate has expired (preverify_ok=0;err=10;depth=0)":
         * kept for the connection error that follows on this thread */
        const char *end = strstr(tls, " (preverify");
        size_t len = end ? (size_t)(end - tls) - 11 : strlen(tls + 11);
        apr_cpystrn(ws_tls_error, tls + 11,
                    len + 1 < sizeof(ws_tls_error) ? len + 1 : sizeof(ws_tls_error));
    }
    gl = (level & LLL_ERR) ? GC_LOG_ERR : (level & LLL_WARN) ? GC_LOG_WARNING : GC_LOG_DEBUG;
    if (!gc_log_is_level(gl) || !ws_log_allow(buf, &suppressed)) {
        return;
    }
    if (suppressed) {
        gc_log(GC_LOG_MARK, gl, 0, GCMON_LOGNO(507) "lws: %s (%u similar suppressed)", buf,
               suppressed);
    }
    else {
        gc_log(GC_LOG_MARK, gl, 0, GCMON_LOGNO(507) "lws: %s", buf);
    }
}

void gc_ws_log_init(int verbose)
{
    lws_set_log_level(LLL_ERR | LLL_WARN | (verbose ? LLL_NOTICE : 0), ws_log_emit);
}
