/* Unit tests of the WebSocket client transport (gc_ws.c). The peer is a
 * libwebsockets *server* context serviced by its own thread on 127.0.0.1 (an
 * ephemeral port); what it does is chosen by the request path:
 *   /hello?X  send "hello X"           /frag    send "frag"+"ment"+"ed!" as 3 frames
 *   /big?N    send N bytes (a..z)      /close   close with 1000 "bye"
 *   /binary   a binary message, then "text"      /echo    echo every message back
 *   /silent   nothing
 * The server records what it saw (URI, Host, Origin, messages, close codes)
 * under a mutex and broadcasts a condition variable on every change. The TLS
 * tests run the same server with a test certificate in a child process (see
 * tls_peer_start); a raw TCP listener stands in for peers that never answer.
 * No test sleeps to synchronise: the client's service loop is driven until a
 * condition holds, with a deadline. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <libwebsockets.h>

#include "gc_log.h"
#include "gc_ws.h"
#include "unit.h"

/* Self-signed test certificates (RSA 2048, valid until 2126, CA:TRUE).
 * A: CN=localhost, SAN DNS:localhost + IP:127.0.0.1.  B: SAN DNS:other.invalid. */
static const char cert_a[] = "-----BEGIN CERTIFICATE-----\n"
                             "MIIDNzCCAh+gAwIBAgIUHcWomrHCUwe4gf2ChbhoxMesfF8wDQYJKoZIhvcNAQEL\n"
                             "BQAwFDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMTIwMTUzOVoYDzIxMjYx\n"
                             "MDI4MjAxNTM5WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwggEiMA0GCSqGSIb3DQEB\n"
                             "AQUAA4IBDwAwggEKAoIBAQCcHPPbzLrkb9EpFqN9FdPaB12IJHuLW9geczNbD+TH\n"
                             "zOXQgPn0lniaZaCqJ0XddQebNpPo3LNCHfDLUe8xTf+rn81he9S/nN9cvP/hu9jJ\n"
                             "V/n06ZxVTW++yqbLIhgyQngqul0VhrQHNviTbW6NWLMdrhnYj1XkxBsp7zrFXZ/X\n"
                             "WMJwcebJfyFf8Ha0I+B1EY4TcbIfvCOQGn5GL8BphUYhZZZPtG5ZAfKpMvtRFaWv\n"
                             "5Uf4eFvceX1AqJHPQ4uPMqBm0+gZ5flLIyUl/ZkBH02ruOBd5WTLtkDVg8XyFgOp\n"
                             "OrnBx3F/4FvCfiTlZXVJtvKZHCfEuHPQVkLvRlaJq1ZLAgMBAAGjfzB9MB0GA1Ud\n"
                             "DgQWBBRB2/Hwpd8UiAoPmE/Dx6ckXrTHpTAfBgNVHSMEGDAWgBRB2/Hwpd8UiAoP\n"
                             "mE/Dx6ckXrTHpTAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwDwYDVR0TAQH/\n"
                             "BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAoQwDQYJKoZIhvcNAQELBQADggEBAGCp9rjM\n"
                             "jGTew5E4Q7nlCIyVg666QUaF1oDYNev2evXALpnyz+uXQA+/7Ltc3OB1wq4f9W/J\n"
                             "TEep+eB0Cfk5ED/XiXhHSiPCD+3wYpL0iP73nqmbOcQAFb2xpQMmy+g7EY+/4G1C\n"
                             "aYYlvjJeA7DUWfmyHNyn7ndBkNZXQ3LnuDdGu63i2AptpCJEbesXvm8oOa8kHgoA\n"
                             "KkKs0/wWvWVF7d1NsnSDLulWWGB0jX62o26K9HeIqR6IrPzwYhVZTZbQK7fOdatv\n"
                             "e5z6a/l2eYolsEZ0zs/081RzW524PFRjQhFh4h94wsgtLTiGB3l+LdFX1XkfsMBi\n"
                             "oc7eLtPP2TVA3Ns=\n"
                             "-----END CERTIFICATE-----\n";
static const char key_a[] = "-----BEGIN PRIVATE KEY-----\n"
                            "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCcHPPbzLrkb9Ep\n"
                            "FqN9FdPaB12IJHuLW9geczNbD+THzOXQgPn0lniaZaCqJ0XddQebNpPo3LNCHfDL\n"
                            "Ue8xTf+rn81he9S/nN9cvP/hu9jJV/n06ZxVTW++yqbLIhgyQngqul0VhrQHNviT\n"
                            "bW6NWLMdrhnYj1XkxBsp7zrFXZ/XWMJwcebJfyFf8Ha0I+B1EY4TcbIfvCOQGn5G\n"
                            "L8BphUYhZZZPtG5ZAfKpMvtRFaWv5Uf4eFvceX1AqJHPQ4uPMqBm0+gZ5flLIyUl\n"
                            "/ZkBH02ruOBd5WTLtkDVg8XyFgOpOrnBx3F/4FvCfiTlZXVJtvKZHCfEuHPQVkLv\n"
                            "RlaJq1ZLAgMBAAECggEAKbUefXmb8M3i3oxaz19Wgyh2l5nPm/LEsZXrgYekgrC+\n"
                            "MU9T+EF/JRjDrNHjO4A5sQEK0SqthZuEKn3QXqbNCKgf8cxokWyyzA7+eet6xogH\n"
                            "kqQbDTssAJgZqamJN1xEyH2Twt2DGW5ZSOHyqDarW+GYrB/XPdAaxcBRPkt+GcUF\n"
                            "E4+mprh4V6Uxo6zLxSakvcVmUaci7R86zNu9pMAQ8porG/3fGhYyQQwBoWcmxs93\n"
                            "aqsEs3ef/ajg02V/Pga0ki10uBuXRRlFqroT5RptrER8Eb6gB6MpcSSp+Yl65qLD\n"
                            "dAUdm19xLHub2dp8ccdkhSCSw29kBKhDsiYxroHamQKBgQDIoPa7XCxcgxAQPauc\n"
                            "xFNJl41CsFsZ2igpxt8B63vAPd9YJ/bxjUZFBtxRyqWNB9iD3eJ9e+CMfRveQHFw\n"
                            "6EQ/DEaSozltIzkiS0DE5tMV9cDxzofjzuJTREE0Sd5umYqKCJKjN5bHa2TeI3Yu\n"
                            "VIVNTBnO4WX3o7c+eZw2+JQqTwKBgQDHMtIPN7TF4nQ3BPXPEtvrq2xdq3NGyzBP\n"
                            "Ufe1jTuTRZnH3lt+7l20KotgNY6yD6Lvf0Y1MKZ1UGzkvTVmpQf81fBR40ZPwsl3\n"
                            "1mYd2UIw26UGjMCnCti8tsptEoFphKHfAPkC2j+ojDDib44Dek5uIMO2VLxGv48A\n"
                            "kHstdgxhRQKBgCf7C7AimiSFaboS0BQZe496yAe2JTFtq/tHSkGTr8GLkup6bFeO\n"
                            "k6ZFy7nw7DTCj38XxH7FJOZaOCd+KB0b7B20UIwAQv1gu439+RZD+WSy6JRHWAUp\n"
                            "wSheva+x2MWpi1YehzpHZaCv4hXycyagaUASHkJ/4FYNJgMpMNwzhTM5AoGAQddc\n"
                            "c0c4a0gEncL39LAJHQaWVQe8nKPAnhc7xzidfno88EFhAL2NH2YIl45cUiK0+nCZ\n"
                            "Ji+kdZZVx+16XykhUMLuIkL7FJYPvZqSOj97j2aqT1Xqv8voA8hvdEnvmI8MageK\n"
                            "RxUYgX+FEPNKf3/HuML/rZ6odMIQZGFdNZOVV/kCgYBtY3t6dbVYycF+tZeN+rHN\n"
                            "5gv2PUkWK8+E+mUj1MnBAJhw5qd7YLAGtxz69kRTAQl5oQeR966/kXQAfelPY+rS\n"
                            "Hw1SWivc+q2TwFvByqoaiFEuTAz+DE+F1vhvFRR4SbZYKHR0pkQlv82o+HLhTKmU\n"
                            "CEvU5pDNa+v/7m1/KuMA8A==\n"
                            "-----END PRIVATE KEY-----\n";
static const char cert_b[] = "-----BEGIN CERTIFICATE-----\n"
                             "MIIDPTCCAiWgAwIBAgIUWPbcTw6Xl6AqPhEVxhq4BA3ZGp0wDQYJKoZIhvcNAQEL\n"
                             "BQAwGDEWMBQGA1UEAwwNb3RoZXIuaW52YWxpZDAgFw0yNjExMjEyMDE1MzlaGA8y\n"
                             "MTI2MTAyODIwMTUzOVowGDEWMBQGA1UEAwwNb3RoZXIuaW52YWxpZDCCASIwDQYJ\n"
                             "KoZIhvcNAQEBBQADggEPADCCAQoCggEBAMgAd+iSVf1L7eZ6NSUlSNnPKHXazAMe\n"
                             "t1Qj/Rh6URtr9HofzWoDK8woyPmR3UgRFGx6cy5LHd4G/duwquKzYKIAUAeARzHU\n"
                             "G/Y8u7PZxAy5iw5bpsKTXBb7CyEZF7PlNfchKB0Tfn7yvNPyuujzfL9VN2gCR2Xm\n"
                             "llMfeUpE1nvAJqvX5NUTUSStGUyZetXIaqB6ULlEzobkOLki9GKux5iDfbCM6DZS\n"
                             "Qd/mVPi833RqxSJn8V28W5i4M4vuGy6Gl9xtT7AtlOlO29c+Qk3Pr3UsOjowatf3\n"
                             "P+v0GFB6pkAZPkLv+f49WckKmQcRQ9h8XelXKYQnnG5fA0tDb+ejpKsCAwEAAaN9\n"
                             "MHswHQYDVR0OBBYEFKRvY5KMnysE2PdellaPjoNQ0zWsMB8GA1UdIwQYMBaAFKRv\n"
                             "Y5KMnysE2PdellaPjoNQ0zWsMBgGA1UdEQQRMA+CDW90aGVyLmludmFsaWQwDwYD\n"
                             "VR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAoQwDQYJKoZIhvcNAQELBQADggEB\n"
                             "AFBTbKu+GF0VoYEeDXz+ry9ManuWOcgqPCm1hKweIJnkMjmX/cRpM/lUhT3fk0XW\n"
                             "Xhvn61+kFHfYlSv11nBLls0XpX4t7hGmVjGk1pGGYykaogH2w4K3vazzmn0siUiC\n"
                             "6NbErMZj3Loefthb2QvK0VsZWAnA8O6x19aDmEPpEpP4bJLq/z+59jfW+MF8GVA6\n"
                             "j5Pu80f8VAZy5ZQOFgzgDSt4sNpFn6hL0+Y+6521emwnAXVgECUljT2Hp2CnHamc\n"
                             "Kyz/b4ge7iRUySAqmXwsykTYLxv+5q8oQ+l7kGbs6u4vAY6NdRCyUMSQ3iGK8tnn\n"
                             "0DI1sLETOUzodA4raT4kBJU=\n"
                             "-----END CERTIFICATE-----\n";
static const char key_b[] = "-----BEGIN PRIVATE KEY-----\n"
                            "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDIAHfoklX9S+3m\n"
                            "ejUlJUjZzyh12swDHrdUI/0YelEba/R6H81qAyvMKMj5kd1IERRsenMuSx3eBv3b\n"
                            "sKris2CiAFAHgEcx1Bv2PLuz2cQMuYsOW6bCk1wW+wshGRez5TX3ISgdE35+8rzT\n"
                            "8rro83y/VTdoAkdl5pZTH3lKRNZ7wCar1+TVE1EkrRlMmXrVyGqgelC5RM6G5Di5\n"
                            "IvRirseYg32wjOg2UkHf5lT4vN90asUiZ/FdvFuYuDOL7hsuhpfcbU+wLZTpTtvX\n"
                            "PkJNz691LDo6MGrX9z/r9BhQeqZAGT5C7/n+PVnJCpkHEUPYfF3pVymEJ5xuXwNL\n"
                            "Q2/no6SrAgMBAAECggEADRiOwXSEW4O5x6vJe0dJazQX3T1SIRz4elkPudpK7kwJ\n"
                            "PZsdS1HhPJfDe45tpv1LUSqxcqup5uYEgGEKLeVhMF2erLPdglzcgEKlmpcc5PJo\n"
                            "5KwWq5eUYgLWzZ63GrX2OY2uJgoNPRXHsuv3CWLlw7q6Poq+2+RkUOJ3Ac7atoHJ\n"
                            "84iAGfN2Vae6o+HWSH7LF9/7oSoMcqNmgW5terZOjEOmM3KYD25Rm59d8gyCHyuM\n"
                            "FgF6Wob9z0sawOXHk3rmV/Owt0iJXw9hCXyxy1jlmqmMUWS2KaCcZ0WUEKegKlqL\n"
                            "Whloouh8iwnpB0WViU37Wz29gopShKd5oztZOaS1lQKBgQDpzpJ6A9P5HX1U5P4s\n"
                            "emoIgPSRTvwBSVJH62Y09eyXZD34NGmHz0WNPdOwVebL2jX7ZIeeg5wucYPI1A7E\n"
                            "KdOC3HU2ul1l8eqsXkpRP94jVfBUA28WafE1gZ3c5YtyXkh1V6MQP3ZXPu/MAVg7\n"
                            "ra4XpUS4zAQJNIRc/I8uf7JA9wKBgQDa/HGvg4Af7UrSQAbLquEJIX4U6q0qYa0+\n"
                            "DL5Yi+G2cuj8WtUxBchO41ZoZRn3ZHz62l0sWyJYe12yG6Nw+haXk6+u+kjEm0xL\n"
                            "JhJOswXjB9uZM7eK/pIWF0wfzqAZILdAfX0ha7exelu/9v451k1zWKQ3tSX2u5+P\n"
                            "r4UeQ26A7QKBgC5mTm9kfxa7IXpNj5uoF47keKS1thFTSb74Gmp8O523yQyO6jqH\n"
                            "idgD4xTll03xWjEvvDJbEA2vfWXHn76SRmV79s8LoSlwHxBiDgGd2SnODkm9/LfI\n"
                            "ApSJyphh/ZCO4XZYFAZPcd7SoKgtxCLjzt7mb4L1CgABqhsCDDBAK1H1AoGBAIm1\n"
                            "qNRj0KXDNoMjSmK3sc5pJn2G2qDFTgmwP981EBsJBiT0Bg9PAJlDc2ow8fRWWBX0\n"
                            "ThV/tgiIg/JmWRDJ5H0rnZZexHYG5yJ27ZpaEECmB12/XRPmZP3JZtC1wo4qubKv\n"
                            "d4oV0C2msZ31eAftEUWRH6v8mcQgVwYnrYHLi+k9AoGBAL/Z8jwP4BnlrY/5ChdC\n"
                            "v+sSYGaL1Dpj188EtYp1RPZmfgtc+xN5TWylvnvl9tNU3WQomlM2pUmaSVtww7c2\n"
                            "dsCi8PlAvVJCQ+SMSisKMrnkWuq1JfI6nIkx4f7Ldyay7ppJ8ZrA/l0cQYq2vTP7\n"
                            "y0hg46kzv+SGwciQjGxb3qkt\n"
                            "-----END PRIVATE KEY-----\n";

#define MAX_REC 16

/* ======================================================================== */
/* the peer: an lws server in its own thread */

typedef struct frame {
    struct frame *next;
    int flags; /* LWS_WRITE_* */
    size_t len;
    unsigned char buf[]; /* LWS_PRE + len */
} frame_t;

typedef struct {
    frame_t *head, *tail;
    int close_after; /* close (1000 "bye") once frames are out */
    int echo;
    char *rx;
    size_t rx_len;
} sess_t;

typedef struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int stop;
    int ready, failed;
    const char *cert, *key; /* file paths for TLS, or NULL */
    int notify_fd;          /* TLS peer process: report events here */
    struct lws_context *ctx;
    struct lws_protocols protocols[2];
    int port;
    /* recorded (under mu) */
    int established, closed;
    char uri[MAX_REC][256];
    char host[MAX_REC][128];
    char origin[MAX_REC][128];
    char *msgs[MAX_REC];
    int nmsgs;
    int close_codes[MAX_REC];
    int nclose_codes;
} srv_t;

static void srv_changed(srv_t *s)
{
    pthread_cond_broadcast(&s->cv);
}

static void sess_queue(sess_t *ss, int flags, const void *data, size_t len)
{
    frame_t *f = malloc(sizeof(*f) + LWS_PRE + len);

    ck_assert_ptr_nonnull(f);
    f->next = NULL;
    f->flags = flags;
    f->len = len;
    memcpy(f->buf + LWS_PRE, data, len);
    if (ss->tail) {
        ss->tail->next = f;
    }
    else {
        ss->head = f;
    }
    ss->tail = f;
}

static void sess_free(sess_t *ss)
{
    frame_t *f, *n;

    for (f = ss->head; f; f = n) {
        n = f->next;
        free(f);
    }
    ss->head = ss->tail = NULL;
    free(ss->rx);
    ss->rx = NULL;
}

static void srv_established(srv_t *s, sess_t *ss, struct lws *wsi)
{
    char uri[200] = "", args[200] = "", full[sizeof(uri) + sizeof(args) + 1];
    int i, an, af;

    memset(ss, 0, sizeof(*ss));
    lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    /* query arguments are kept as separate (URL-decoded) fragments */
    for (af = 0, an = 0; an < (int)sizeof(args) - 2; af++) {
        int k = lws_hdr_copy_fragment(wsi, args + an + (an ? 1 : 0), (int)sizeof(args) - an - 1,
                                      WSI_TOKEN_HTTP_URI_ARGS, af);

        if (k < 0) {
            break;
        }
        if (an) {
            args[an] = '&';
            an++;
        }
        an += k;
    }
    snprintf(full, sizeof(full), "%s%s%s", uri, args[0] ? "?" : "", args);
    pthread_mutex_lock(&s->mu);
    i = s->established < MAX_REC ? s->established : MAX_REC - 1;
    apr_cpystrn(s->uri[i], full, sizeof(s->uri[i]));
    lws_hdr_copy(wsi, s->host[i], sizeof(s->host[i]), WSI_TOKEN_HOST);
    lws_hdr_copy(wsi, s->origin[i], sizeof(s->origin[i]), WSI_TOKEN_ORIGIN);
    s->established++;
    srv_changed(s);
    pthread_mutex_unlock(&s->mu);
    if (s->notify_fd >= 0 && write(s->notify_fd, "E", 1) != 1) {
        s->notify_fd = -1;
    }

    if (strcmp(uri, "/hello") == 0) {
        char msg[256];
        int n = snprintf(msg, sizeof(msg), "hello %s", args);

        sess_queue(ss, LWS_WRITE_TEXT, msg, (size_t)n);
    }
    else if (strcmp(uri, "/frag") == 0) {
        sess_queue(ss, LWS_WRITE_TEXT | LWS_WRITE_NO_FIN, "frag", 4);
        sess_queue(ss, LWS_WRITE_CONTINUATION | LWS_WRITE_NO_FIN, "ment", 4);
        sess_queue(ss, LWS_WRITE_CONTINUATION, "ed!", 3);
    }
    else if (strcmp(uri, "/big") == 0) {
        size_t n = (size_t)strtoul(args, NULL, 10), k;
        char *big = malloc(n ? n : 1);

        ck_assert_ptr_nonnull(big);
        for (k = 0; k < n; k++) {
            big[k] = (char)('a' + k % 26);
        }
        sess_queue(ss, LWS_WRITE_TEXT, big, n);
        free(big);
        sess_queue(ss, LWS_WRITE_TEXT, "after", 5);
    }
    else if (strcmp(uri, "/close") == 0) {
        ss->close_after = 1;
    }
    else if (strcmp(uri, "/binary") == 0) {
        static const unsigned char bin[] = { 0x00, 0xff, 0x10, 0x80 };

        sess_queue(ss, LWS_WRITE_BINARY, bin, sizeof(bin));
        sess_queue(ss, LWS_WRITE_TEXT, "text", 4);
    }
    else if (strcmp(uri, "/echo") == 0) {
        ss->echo = 1;
    }
    if (ss->head || ss->close_after) {
        lws_callback_on_writable(wsi);
    }
}

static int srv_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    srv_t *s = lws_context_user(lws_get_context(wsi));
    sess_t *ss = user;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: srv_established(s, ss, wsi); return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (ss->head) {
            frame_t *f = ss->head;
            int n = lws_write(wsi, f->buf + LWS_PRE, f->len, (enum lws_write_protocol)f->flags);

            if (n < (int)f->len) {
                return -1;
            }
            ss->head = f->next;
            if (!ss->head) {
                ss->tail = NULL;
            }
            free(f);
            if (ss->head || ss->close_after) {
                lws_callback_on_writable(wsi);
            }
            return 0;
        }
        if (ss->close_after) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"bye", 3);
            return -1;
        }
        return 0;

    case LWS_CALLBACK_RECEIVE: {
        char *n = realloc(ss->rx, ss->rx_len + len + 1);

        ck_assert_ptr_nonnull(n);
        ss->rx = n;
        memcpy(ss->rx + ss->rx_len, in, len);
        ss->rx_len += len;
        ss->rx[ss->rx_len] = '\0';
        if (!lws_is_final_fragment(wsi)) {
            return 0;
        }
        pthread_mutex_lock(&s->mu);
        if (s->nmsgs < MAX_REC) {
            s->msgs[s->nmsgs++] = strdup(ss->rx);
        }
        srv_changed(s);
        pthread_mutex_unlock(&s->mu);
        if (ss->echo) {
            sess_queue(ss, LWS_WRITE_TEXT, ss->rx, ss->rx_len);
            lws_callback_on_writable(wsi);
        }
        ss->rx_len = 0;
        return 0;
    }

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        pthread_mutex_lock(&s->mu);
        if (s->nclose_codes < MAX_REC) {
            s->close_codes[s->nclose_codes++] =
                len >= 2 ? (((const unsigned char *)in)[0] << 8) | ((const unsigned char *)in)[1]
                         : 0;
        }
        srv_changed(s);
        pthread_mutex_unlock(&s->mu);
        return 0;

    case LWS_CALLBACK_CLOSED:
        sess_free(ss);
        pthread_mutex_lock(&s->mu);
        s->closed++;
        srv_changed(s);
        pthread_mutex_unlock(&s->mu);
        return 0;

    default: return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static void *srv_main(void *arg)
{
    srv_t *s = arg;
    struct lws_context_creation_info info;
    struct lws_vhost *vh;

    memset(&info, 0, sizeof(info));
    s->protocols[0].name = "test-server";
    s->protocols[0].callback = srv_callback;
    s->protocols[0].per_session_data_size = sizeof(sess_t);
    info.port = 0;
    info.iface = "127.0.0.1";
    info.protocols = s->protocols;
    info.uid = -1;
    info.gid = -1;
    info.fd_limit_per_thread = 64;
    info.user = s;
    if (s->cert) {
        info.options |=
            LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
        info.ssl_cert_filepath = s->cert;
        info.ssl_private_key_filepath = s->key;
    }
    s->ctx = lws_create_context(&info);
    vh = s->ctx ? lws_get_vhost_by_name(s->ctx, "default") : NULL;
    pthread_mutex_lock(&s->mu);
    s->port = vh ? lws_get_vhost_listen_port(vh) : -1;
    s->failed = s->port <= 0;
    s->ready = 1;
    srv_changed(s);
    pthread_mutex_unlock(&s->mu);
    if (s->notify_fd >= 0 && write(s->notify_fd, &s->port, sizeof(s->port)) != sizeof(s->port)) {
        s->notify_fd = -1;
    }
    while (s->ctx && !atomic_load(&s->stop)) {
        if (lws_service(s->ctx, 0) < 0) {
            break;
        }
    }
    if (s->ctx) {
        lws_context_destroy(s->ctx);
    }
    return NULL;
}

static srv_t *srv_new(void)
{
    srv_t *s = calloc(1, sizeof(*s));

    ck_assert_ptr_nonnull(s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->notify_fd = -1;
    return s;
}

static srv_t *srv_start(void)
{
    srv_t *s = srv_new();

    ck_assert_int_eq(pthread_create(&s->thread, NULL, srv_main, s), 0);
    pthread_mutex_lock(&s->mu);
    while (!s->ready) {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    ck_assert_msg(!s->failed, "test server did not start");
    return s;
}

static void srv_stop(srv_t *s)
{
    int i;

    if (!s) {
        return;
    }
    atomic_store(&s->stop, 1);
    if (s->ctx) {
        lws_cancel_service(s->ctx);
    }
    pthread_join(s->thread, NULL);
    for (i = 0; i < s->nmsgs; i++) {
        free(s->msgs[i]);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Read one recorded counter under the lock. */
static int srv_get(srv_t *s, const int *field)
{
    int v;

    pthread_mutex_lock(&s->mu);
    v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* Wait (no client service) until *field >= want or ms pass. */
static int srv_wait(srv_t *s, const int *field, int want, int ms)
{
    struct timespec ts;
    int ok;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (*field < want) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0) {
            break;
        }
    }
    ok = *field >= want;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* ======================================================================== */
/* the client side: recorded callbacks */

typedef struct {
    int opens, messages, closes, close_error;
    char close_reason[256];
    char *msgs[MAX_REC];
    size_t lens[MAX_REC];
    gc_ws_conn_t *conn;
    int close_on_open; /* call gc_ws_close from on_open */
} rec_t;

typedef struct {
    int opens, messages, closes; /* over all connections */
} totals_t;

static apr_pool_t *pool;
static srv_t *srv;
static totals_t totals;
static char tmpdir[64];

/* log capture */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_lines[64][600];
static int log_levels[64];
static int nlog;
static int log_max_level = GC_LOG_WARNING;

static int cap_is_level(void *baton, int level)
{
    return level <= log_max_level;
}

static void cap_print(void *baton, const char *file, int line, int level, apr_status_t rv,
                      const char *msg)
{
    pthread_mutex_lock(&log_mu);
    if (nlog < 64) {
        apr_cpystrn(log_lines[nlog], msg, sizeof(log_lines[nlog]));
        log_levels[nlog] = level;
        nlog++;
    }
    pthread_mutex_unlock(&log_mu);
}

static void log_reset(void)
{
    pthread_mutex_lock(&log_mu);
    nlog = 0;
    pthread_mutex_unlock(&log_mu);
}

/* Lines captured that contain needle. */
static int log_count(const char *needle)
{
    int i, n = 0;

    pthread_mutex_lock(&log_mu);
    for (i = 0; i < nlog; i++) {
        if (strstr(log_lines[i], needle)) {
            n++;
        }
    }
    pthread_mutex_unlock(&log_mu);
    return n;
}

static void cb_open(void *baton, gc_ws_conn_t *c, void *conn_baton)
{
    rec_t *r = conn_baton;

    ((totals_t *)baton)->opens++;
    r->opens++;
    ck_assert_ptr_eq(c, r->conn);
    if (r->close_on_open) {
        gc_ws_close(c);
    }
}

static void cb_message(void *baton, gc_ws_conn_t *c, void *conn_baton, const char *text,
                       apr_size_t len)
{
    rec_t *r = conn_baton;

    ((totals_t *)baton)->messages++;
    ck_assert_ptr_eq(c, r->conn);
    ck_assert_int_eq(text[len], '\0');
    if (r->messages < MAX_REC) {
        r->msgs[r->messages] = malloc(len + 1);
        ck_assert_ptr_nonnull(r->msgs[r->messages]);
        memcpy(r->msgs[r->messages], text, len + 1);
        r->lens[r->messages] = len;
    }
    r->messages++;
}

static void cb_close(void *baton, gc_ws_conn_t *c, void *conn_baton, int error, const char *reason)
{
    rec_t *r = conn_baton;

    ((totals_t *)baton)->closes++;
    ck_assert_ptr_eq(c, r->conn);
    r->closes++;
    r->close_error = error;
    apr_cpystrn(r->close_reason, reason ? reason : "(null)", sizeof(r->close_reason));
}

static const gc_ws_callbacks_t cbs = { cb_open, cb_message, cb_close };

static void rec_free(rec_t *r)
{
    int i;

    for (i = 0; i < MAX_REC && i < r->messages; i++) {
        free(r->msgs[i]);
        r->msgs[i] = NULL;
    }
}

static gc_ws_t *client(apr_size_t max_message, const char *ca_file)
{
    gc_ws_t *ws = gc_ws_create(pool, ca_file, max_message, &cbs, &totals);

    ck_assert_ptr_nonnull(ws);
    return ws;
}

static const char *url(srv_t *s, const char *scheme, const char *path)
{
    return apr_psprintf(pool, "%s://127.0.0.1:%d%s", scheme, s->port, path);
}

static gc_ws_conn_t *connect_rec(gc_ws_t *ws, const char *u, rec_t *r)
{
    r->conn = gc_ws_connect(ws, u, r);
    ck_assert_ptr_nonnull(r->conn);
    return r->conn;
}

typedef int cond_fn(void *arg);

/* Service the client until cond holds or ms pass; returns cond. */
static int drive(gc_ws_t *ws, cond_fn *cond, void *arg, int ms)
{
    apr_time_t end = apr_time_now() + apr_time_from_msec(ms);

    while (!cond(arg)) {
        apr_time_t now = apr_time_now();

        if (now >= end) {
            return cond(arg);
        }
        gc_ws_service(ws, 20);
    }
    return 1;
}

static int c_opened(void *arg)
{
    return ((rec_t *)arg)->opens > 0;
}

static int c_closed(void *arg)
{
    return ((rec_t *)arg)->closes > 0;
}

static int c_message(void *arg)
{
    return ((rec_t *)arg)->messages > 0;
}

static int c_two_messages(void *arg)
{
    return ((rec_t *)arg)->messages >= 2;
}

static int c_three_messages(void *arg)
{
    return ((rec_t *)arg)->messages >= 3;
}

static int c_never(void *arg)
{
    return 0;
}

static int c_srv_three(void *arg)
{
    return srv_get(arg, &((srv_t *)arg)->nmsgs) >= 3;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

static const char *tmp_path(const char *name)
{
    return apr_pstrcat(pool, tmpdir, "/", name, NULL);
}

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
    memset(&totals, 0, sizeof(totals));
    log_max_level = GC_LOG_WARNING;
    log_reset();
    gc_log_set(cap_is_level, cap_print, NULL);
    gc_ws_log_init(0);
    srv = srv_start();
}

static void teardown(void)
{
    srv_stop(srv);
    srv = NULL;
    apr_pool_destroy(pool); /* destroys a client not destroyed by the test */
    pool = NULL;
    gc_log_set(NULL, NULL, NULL);
}

/* ======================================================================== */
/* tests */

START_TEST(test_connect_open)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };

    connect_rec(ws, url(srv, "ws", "/silent/p?a=1&b=two"), &r);
    ck_assert_int_eq(r.opens, 0); /* never from inside gc_ws_connect */
    ck_assert(drive(ws, c_opened, &r, 3000));
    ck_assert_int_eq(r.opens, 1);
    ck_assert_int_eq(r.closes, 0);
    /* the server runs ESTABLISHED after sending its 101: wait for it */
    ck_assert(srv_wait(srv, &srv->established, 1, 2000));
    pthread_mutex_lock(&srv->mu);
    ck_assert_int_eq(srv->established, 1);
    ck_assert_str_eq(srv->uri[0], "/silent/p?a=1&b=two");
    ck_assert_str_eq(srv->host[0], apr_psprintf(pool, "127.0.0.1:%d", srv->port));
    ck_assert_str_eq(srv->origin[0], apr_psprintf(pool, "http://127.0.0.1:%d", srv->port));
    pthread_mutex_unlock(&srv->mu);
    gc_ws_destroy(ws);
    ck_assert_int_eq(r.closes, 0); /* no callbacks during destroy */
}
END_TEST

START_TEST(test_url_forms)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r1 = { 0 }, r2 = { 0 };
    static const char *const bad[] = {
        "http://127.0.0.1/", "wss:/x",         "ws://",        "ws:///path", "ws://host:0/",
        "ws://host:65536/",  "ws://host:12a/", "ws://host:/",  "ws://[::1/", "ws://[::1]x/",
        "ws://user@host/",   "ws://ho st/",    "ws://host/\n", "",           "ws:host",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(gc_ws_connect(ws, bad[i], NULL) == NULL, "accepted %s", bad[i]);
    }
    ck_assert_ptr_null(gc_ws_connect(ws, NULL, NULL));
    /* scheme in any case, no path, query without a path, fragment dropped */
    connect_rec(ws, apr_psprintf(pool, "WS://127.0.0.1:%d", srv->port), &r1);
    connect_rec(ws, apr_psprintf(pool, "ws://127.0.0.1:%d?x=1#frag", srv->port), &r2);
    ck_assert(drive(ws, c_opened, &r1, 3000));
    ck_assert(drive(ws, c_opened, &r2, 3000));
    ck_assert(srv_wait(srv, &srv->established, 2, 2000));
    pthread_mutex_lock(&srv->mu);
    ck_assert_int_eq(srv->established, 2);
    ck_assert((strcmp(srv->uri[0], "/") == 0 && strcmp(srv->uri[1], "/?x=1") == 0)
              || (strcmp(srv->uri[1], "/") == 0 && strcmp(srv->uri[0], "/?x=1") == 0));
    pthread_mutex_unlock(&srv->mu);
    gc_ws_destroy(ws);
}
END_TEST

START_TEST(test_message_exact)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };

    connect_rec(ws, url(srv, "ws", "/hello?w%C3%B6rld-42"), &r);
    ck_assert(drive(ws, c_message, &r, 3000));
    ck_assert_int_eq(r.opens, 1);
    ck_assert_int_eq(r.messages, 1);
    /* the server URL-decodes the query: UTF-8 bytes */
    ck_assert_uint_eq(r.lens[0], strlen("hello w\xc3\xb6rld-42"));
    ck_assert_mem_eq(r.msgs[0], "hello w\xc3\xb6rld-42", r.lens[0]);
    rec_free(&r);
}
END_TEST

START_TEST(test_fragments_reassembled)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };

    connect_rec(ws, url(srv, "ws", "/frag"), &r);
    ck_assert(drive(ws, c_message, &r, 3000));
    /* give stray pieces a chance to show up as extra messages */
    drive(ws, c_never, NULL, 100);
    ck_assert_int_eq(r.messages, 1);
    ck_assert_uint_eq(r.lens[0], 11);
    ck_assert_str_eq(r.msgs[0], "fragmented!");
    rec_free(&r);
}
END_TEST

START_TEST(test_big_message_intact)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };
    size_t k, n = 256 * 1024;

    connect_rec(ws, url(srv, "ws", apr_psprintf(pool, "/big?%lu", (unsigned long)n)), &r);
    ck_assert(drive(ws, c_two_messages, &r, 5000));
    ck_assert_int_eq(r.messages, 2);
    ck_assert_uint_eq(r.lens[0], n);
    for (k = 0; k < n; k++) {
        if (r.msgs[0][k] != (char)('a' + k % 26)) {
            ck_abort_msg("byte %lu differs", (unsigned long)k);
        }
    }
    ck_assert_str_eq(r.msgs[1], "after");
    ck_assert_int_eq(r.closes, 0);
    rec_free(&r);
}
END_TEST

START_TEST(test_message_at_limit)
{
    gc_ws_t *ws = client(4096, NULL);
    rec_t r = { 0 };

    connect_rec(ws, url(srv, "ws", "/big?4096"), &r);
    ck_assert(drive(ws, c_two_messages, &r, 3000));
    ck_assert_uint_eq(r.lens[0], 4096);
    ck_assert_int_eq(r.closes, 0);
    rec_free(&r);
}
END_TEST

START_TEST(test_message_too_big)
{
    gc_ws_t *ws = client(4095, NULL);
    rec_t r = { 0 };

    connect_rec(ws, url(srv, "ws", "/big?4096"), &r);
    ck_assert(drive(ws, c_closed, &r, 5000));
    ck_assert_int_eq(r.closes, 1);
    ck_assert_int_eq(r.close_error, 1);
    ck_assert_str_eq(r.close_reason, "message too big");
    ck_assert_int_eq(r.messages, 0); /* neither the big one nor "after" */
    ck_assert(srv_wait(srv, &srv->nclose_codes, 1, 2000));
    ck_assert_int_eq(srv_get(srv, &srv->close_codes[0]), 1009);
    ck_assert_int_ge(log_count("GCM504"), 1);
    drive(ws, c_never, NULL, 100);
    ck_assert_int_eq(r.closes, 1);
}
END_TEST

START_TEST(test_binary_ignored)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };

    connect_rec(ws, url(srv, "ws", "/binary"), &r);
    ck_assert(drive(ws, c_message, &r, 3000));
    ck_assert_int_eq(r.messages, 1);
    ck_assert_str_eq(r.msgs[0], "text");
    ck_assert_int_eq(r.closes, 0);
    rec_free(&r);
}
END_TEST

START_TEST(test_send_in_order)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };

    connect_rec(ws, url(srv, "ws", "/echo"), &r);
    ck_assert(drive(ws, c_opened, &r, 3000));
    ck_assert_int_eq(gc_ws_send(r.conn, "{\"message\":\"one\"}"), 0);
    ck_assert_int_eq(gc_ws_send(r.conn, "two"), 0);
    ck_assert_int_eq(gc_ws_send(r.conn, ""), 0);
    ck_assert(drive(ws, c_srv_three, srv, 3000));
    pthread_mutex_lock(&srv->mu);
    ck_assert_int_eq(srv->nmsgs, 3);
    ck_assert_str_eq(srv->msgs[0], "{\"message\":\"one\"}");
    ck_assert_str_eq(srv->msgs[1], "two");
    ck_assert_str_eq(srv->msgs[2], "");
    pthread_mutex_unlock(&srv->mu);
    ck_assert(drive(ws, c_three_messages, &r, 3000));
    ck_assert_str_eq(r.msgs[0], "{\"message\":\"one\"}");
    ck_assert_str_eq(r.msgs[1], "two");
    ck_assert_uint_eq(r.lens[2], 0);
    rec_free(&r);
}
END_TEST

START_TEST(test_send_before_open_queued)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };

    connect_rec(ws, url(srv, "ws", "/echo"), &r);
    ck_assert_int_eq(gc_ws_send(r.conn, "a"), 0);
    ck_assert_int_eq(gc_ws_send(r.conn, "b"), 0);
    ck_assert_int_eq(gc_ws_send(r.conn, "c"), 0);
    ck_assert(drive(ws, c_three_messages, &r, 3000));
    ck_assert_str_eq(r.msgs[0], "a");
    ck_assert_str_eq(r.msgs[1], "b");
    ck_assert_str_eq(r.msgs[2], "c");
    rec_free(&r);
}
END_TEST

START_TEST(test_server_close)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };

    connect_rec(ws, url(srv, "ws", "/close"), &r);
    ck_assert(drive(ws, c_closed, &r, 3000));
    ck_assert_int_eq(r.opens, 1);
    ck_assert_int_eq(r.closes, 1);
    ck_assert_int_eq(r.close_error, 0);
    ck_assert_ptr_nonnull(strstr(r.close_reason, "1000"));
    ck_assert_ptr_nonnull(strstr(r.close_reason, "bye"));
    drive(ws, c_never, NULL, 300);
    ck_assert_int_eq(r.closes, 1);
    ck_assert_int_eq(totals.closes, 1);
}
END_TEST

START_TEST(test_client_close)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };

    connect_rec(ws, url(srv, "ws", "/echo"), &r);
    ck_assert(drive(ws, c_opened, &r, 3000));
    ck_assert_int_eq(gc_ws_send(r.conn, "last"), 0);
    gc_ws_close(r.conn);
    ck_assert_int_eq(gc_ws_send(r.conn, "too late"), -1);
    gc_ws_close(r.conn);           /* twice is harmless */
    ck_assert_int_eq(r.closes, 0); /* on_close follows, not from inside */
    ck_assert(drive(ws, c_closed, &r, 3000));
    ck_assert_int_eq(r.close_error, 0);
    ck_assert(srv_wait(srv, &srv->nclose_codes, 1, 2000));
    ck_assert_int_eq(srv_get(srv, &srv->close_codes[0]), 1000);
    ck_assert_int_eq(srv_get(srv, &srv->nmsgs), 1); /* flushed before closing */
    drive(ws, c_never, NULL, 200);
    ck_assert_int_eq(r.closes, 1);
}
END_TEST

START_TEST(test_close_before_connect)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 }, r2 = { 0 };

    connect_rec(ws, url(srv, "ws", "/silent"), &r);
    gc_ws_close(r.conn);
    ck_assert(drive(ws, c_closed, &r, 2000));
    ck_assert_int_eq(r.close_error, 0);
    ck_assert_int_eq(r.opens, 0);
    /* closed from on_open, i.e. while still inside the handshake's callback */
    r2.close_on_open = 1;
    connect_rec(ws, url(srv, "ws", "/silent"), &r2);
    ck_assert(drive(ws, c_closed, &r2, 3000));
    ck_assert_int_eq(r2.opens, 1);
    ck_assert_int_eq(r2.close_error, 0);
    drive(ws, c_never, NULL, 200);
    ck_assert_int_eq(r.closes, 1);
    ck_assert_int_eq(r2.closes, 1);
}
END_TEST

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    port = ntohs(sa.sin_port);
    close(fd); /* bound, never listening: refused */
    return port;
}

START_TEST(test_connection_refused)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };
    apr_time_t t0;

    connect_rec(ws, apr_psprintf(pool, "ws://127.0.0.1:%d/", free_port()), &r);
    t0 = apr_time_now();
    ck_assert(drive(ws, c_closed, &r, 3000));
    ck_assert_int_lt(apr_time_as_msec(apr_time_now() - t0), 1000);
    ck_assert_int_eq(r.close_error, 1);
    ck_assert_int_eq(r.opens, 0);
    ck_assert_ptr_nonnull(strstr(r.close_reason, "connect"));
    drive(ws, c_never, NULL, 300); /* not retried, not reported twice */
    ck_assert_int_eq(r.closes, 1);
}
END_TEST

typedef struct {
    gc_ws_t *ws;
    apr_time_t woke_at;
} waker_t;

static void *waker_main(void *arg)
{
    waker_t *w = arg;
    struct timespec ts = { 0, 150 * 1000000L };

    nanosleep(&ts, NULL); /* the stimulus, not synchronisation */
    w->woke_at = apr_time_now();
    gc_ws_wake(w->ws);
    return NULL;
}

START_TEST(test_wake_from_other_thread)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };
    waker_t w = { ws, 0 };
    pthread_t th;
    apr_time_t t0, t1;

    connect_rec(ws, url(srv, "ws", "/silent"), &r);
    ck_assert(drive(ws, c_opened, &r, 3000));
    ck_assert_int_eq(pthread_create(&th, NULL, waker_main, &w), 0);
    t0 = apr_time_now();
    gc_ws_service(ws, 5000);
    t1 = apr_time_now();
    pthread_join(th, NULL);
    ck_assert_int_ne(w.woke_at, 0);
    /* returned because of the wake (not before it), promptly after it */
    ck_assert_int_ge(t1, w.woke_at);
    ck_assert_int_lt(apr_time_as_msec(t1 - w.woke_at), 200);
    ck_assert_int_lt(apr_time_as_msec(t1 - t0), 1000);
    ck_assert_int_eq(r.closes, 0);
}
END_TEST

START_TEST(test_wake_before_service_not_lost)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    apr_time_t t0;

    gc_ws_service(ws, 0); /* settle start-up work */
    gc_ws_wake(ws);
    t0 = apr_time_now();
    gc_ws_service(ws, 5000);
    ck_assert_int_lt(apr_time_as_msec(apr_time_now() - t0), 200);
}
END_TEST

START_TEST(test_service_timeout)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };
    apr_time_t t0;
    long ms;
    int i;

    connect_rec(ws, url(srv, "ws", "/silent"), &r);
    ck_assert(drive(ws, c_opened, &r, 3000));
    for (i = 0; i < 3; i++) {
        t0 = apr_time_now();
        gc_ws_service(ws, 100);
        ms = (long)apr_time_as_msec(apr_time_now() - t0);
        ck_assert_int_ge(ms, 99);
        ck_assert_int_lt(ms, 300);
    }
    /* and with no connection at all */
    gc_ws_destroy(ws);
    ws = client(1 << 20, NULL);
    t0 = apr_time_now();
    gc_ws_service(ws, 100);
    ms = (long)apr_time_as_msec(apr_time_now() - t0);
    ck_assert_int_ge(ms, 99);
    ck_assert_int_lt(ms, 300);
}
END_TEST

START_TEST(test_two_connections)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t a = { 0 }, b = { 0 };

    connect_rec(ws, url(srv, "ws", "/hello?A"), &a);
    connect_rec(ws, url(srv, "ws", "/hello?B"), &b);
    ck_assert(drive(ws, c_message, &a, 3000));
    ck_assert(drive(ws, c_message, &b, 3000));
    drive(ws, c_never, NULL, 100);
    ck_assert_int_eq(a.messages, 1);
    ck_assert_int_eq(b.messages, 1);
    ck_assert_str_eq(a.msgs[0], "hello A");
    ck_assert_str_eq(b.msgs[0], "hello B");
    ck_assert_int_eq(totals.opens, 2);
    ck_assert_int_eq(totals.messages, 2);
    rec_free(&a);
    rec_free(&b);
}
END_TEST

START_TEST(test_destroy_with_open_connections)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t a = { 0 }, b = { 0 }, c = { 0 };
    apr_time_t t0;

    connect_rec(ws, url(srv, "ws", "/echo"), &a);
    connect_rec(ws, url(srv, "ws", "/silent"), &b);
    ck_assert(drive(ws, c_opened, &a, 3000));
    ck_assert(drive(ws, c_opened, &b, 3000));
    ck_assert_int_eq(gc_ws_send(a.conn, "queued, maybe never sent"), 0);
    connect_rec(ws, url(srv, "ws", "/silent"), &c); /* still pending */
    t0 = apr_time_now();
    gc_ws_destroy(ws);
    ck_assert_int_lt(apr_time_as_msec(apr_time_now() - t0), 500);
    ck_assert_int_eq(totals.closes, 0);
    ck_assert_int_eq(a.closes + b.closes + c.closes, 0);
    /* the sockets are really gone: the server sees both close */
    ck_assert(srv_wait(srv, &srv->closed, 2, 3000));
    gc_ws_destroy(ws);     /* idempotent */
    gc_ws_service(ws, 10); /* harmless no-op after destroy */
    gc_ws_wake(ws);
    ck_assert_int_eq(totals.opens + totals.closes + totals.messages, 2);
}
END_TEST

START_TEST(test_wss_to_plain_server_fails)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };

    connect_rec(ws, url(srv, "wss", "/hello?x"), &r);
    ck_assert(drive(ws, c_closed, &r, 5000));
    ck_assert_int_eq(r.close_error, 1);
    ck_assert_int_eq(r.opens, 0);
    ck_assert_int_eq(r.messages, 0);
    ck_assert_int_eq(srv_get(srv, &srv->established), 0);
}
END_TEST

/* A raw TCP listener for one connection: it records the first byte the client
 * sends, then (hold) keeps the connection open, never answering, until the
 * client closes it. */
typedef struct {
    int lfd;
    int port;
    int hold;
    pthread_t thread;
    atomic_int accepted;
    int first_byte;    /* -1: none */
    int client_closed; /* saw EOF from the client */
} raw_t;

static void *raw_main(void *arg)
{
    raw_t *rw = arg;
    struct pollfd pfd = { rw->lfd, POLLIN, 0 };
    unsigned char buf[512];
    apr_time_t end = apr_time_now() + apr_time_from_sec(8);
    int fd;

    if (poll(&pfd, 1, 5000) != 1 || (fd = accept(rw->lfd, NULL, NULL)) < 0) {
        return NULL;
    }
    atomic_store(&rw->accepted, 1);
    pfd.fd = fd;
    while (apr_time_now() < end && poll(&pfd, 1, 100) >= 0) {
        ssize_t n;

        if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
            continue;
        }
        n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            rw->client_closed = 1;
            break;
        }
        if (rw->first_byte < 0) {
            rw->first_byte = buf[0];
        }
        if (!rw->hold) {
            break;
        }
    }
    close(fd);
    return NULL;
}

static void raw_start(raw_t *rw, int hold)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);

    memset(rw, 0, sizeof(*rw));
    rw->first_byte = -1;
    rw->hold = hold;
    rw->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(rw->lfd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(rw->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(rw->lfd, 4), 0);
    ck_assert_int_eq(getsockname(rw->lfd, (struct sockaddr *)&sa, &sl), 0);
    rw->port = ntohs(sa.sin_port);
    ck_assert_int_eq(pthread_create(&rw->thread, NULL, raw_main, rw), 0);
}

static void raw_join(raw_t *rw)
{
    pthread_join(rw->thread, NULL);
    close(rw->lfd);
}

static int c_raw_accepted(void *arg)
{
    return atomic_load(&((raw_t *)arg)->accepted);
}

START_TEST(test_close_while_handshaking)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };
    raw_t rw;

    raw_start(&rw, 1);
    connect_rec(ws, apr_psprintf(pool, "ws://127.0.0.1:%d/", rw.port), &r);
    ck_assert(drive(ws, c_raw_accepted, &rw, 3000));
    gc_ws_close(r.conn); /* the upgrade request is unanswered */
    ck_assert(drive(ws, c_closed, &r, 2000));
    ck_assert_int_eq(r.close_error, 0);
    ck_assert_int_eq(r.opens, 0);
    raw_join(&rw);
    ck_assert_int_eq(rw.first_byte, 'G'); /* GET /, i.e. plain HTTP upgrade */
    ck_assert_int_eq(rw.client_closed, 1);
    drive(ws, c_never, NULL, 100);
    ck_assert_int_eq(r.closes, 1);
}
END_TEST

START_TEST(test_dns_failure)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };

    connect_rec(ws, "wss://gcmon-unit-test.invalid/", &r); /* RFC 6761: never resolves */
    ck_assert_int_eq(r.closes, 0);
    ck_assert(drive(ws, c_closed, &r, 10000));
    ck_assert_int_eq(r.close_error, 1);
    ck_assert_int_eq(r.opens, 0);
    drive(ws, c_never, NULL, 100);
    ck_assert_int_eq(r.closes, 1);
}
END_TEST

START_TEST(test_wss_really_speaks_tls)
{
    gc_ws_t *ws = client(1 << 20, NULL);
    rec_t r = { 0 };
    raw_t rw;

    raw_start(&rw, 0);
    connect_rec(ws, apr_psprintf(pool, "wss://127.0.0.1:%d/", rw.port), &r);
    ck_assert(drive(ws, c_closed, &r, 8000));
    raw_join(&rw);
    ck_assert_int_eq(rw.first_byte, 0x16); /* a TLS handshake record */
    ck_assert_int_eq(r.close_error, 1);
    ck_assert_int_eq(r.opens, 0);
}
END_TEST

/* TLS against a server with a self-signed certificate: refused without the CA,
 * accepted with it as ca_file, refused when the name does not match.
 *
 * The TLS peer runs in a child process. libwebsockets 4.1 takes new OpenSSL
 * ex_data indexes (process-global) in every context created with
 * DO_SSL_GLOBAL_INIT, so of two such contexts alive in one process the older
 * one can no longer find its client SSL_CTX bookkeeping and leaks it at
 * destroy (warmcat/libwebsockets#2044, #2178). In its own process the peer
 * leaves our client's context alone (and the child is simply killed). */
typedef struct {
    pid_t pid;
    int port;
    int rfd; /* 'E' per established connection */
    int established;
} tls_peer_t;

static void tls_peer_start(tls_peer_t *tp, const char *which)
{
    const char *crt = tmp_path(apr_pstrcat(pool, which, ".crt", NULL));
    const char *key = tmp_path(apr_pstrcat(pool, which, ".key", NULL));
    struct pollfd pfd;
    int fds[2];

    write_file(crt, which[0] == 'a' ? cert_a : cert_b);
    write_file(key, which[0] == 'a' ? key_a : key_b);
    ck_assert_int_eq(pipe(fds), 0);
    tp->pid = fork();
    ck_assert_int_ge(tp->pid, 0);
    if (tp->pid == 0) {
        srv_t *s = srv_new();

        close(fds[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        s->cert = crt;
        s->key = key;
        s->notify_fd = fds[1];
        srv_main(s); /* reports its port, serves until killed */
        _exit(0);
    }
    close(fds[1]);
    tp->rfd = fds[0];
    tp->established = 0;
    pfd.fd = tp->rfd;
    pfd.events = POLLIN;
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    ck_assert_int_eq(read(tp->rfd, &tp->port, sizeof(tp->port)), (ssize_t)sizeof(tp->port));
    ck_assert_int_gt(tp->port, 0);
}

/* Connections the peer established so far. */
static int tls_peer_established(tls_peer_t *tp)
{
    struct pollfd pfd = { tp->rfd, POLLIN, 0 };
    char c;

    while (poll(&pfd, 1, 0) == 1 && read(tp->rfd, &c, 1) == 1) {
        tp->established++;
    }
    return tp->established;
}

static void tls_peer_stop(tls_peer_t *tp)
{
    kill(tp->pid, SIGKILL);
    waitpid(tp->pid, NULL, 0);
    close(tp->rfd);
}

static const char *tls_url(tls_peer_t *tp, const char *host, const char *path)
{
    return apr_psprintf(pool, "wss://%s:%d%s", host, tp->port, path);
}

START_TEST(test_tls_untrusted_refused)
{
    tls_peer_t tp;
    gc_ws_t *ws;
    rec_t r = { 0 };

    tls_peer_start(&tp, "a"); /* writes the certificate files */
    ws = client(1 << 20, NULL);
    connect_rec(ws, tls_url(&tp, "127.0.0.1", "/hello?1"), &r);
    ck_assert(drive(ws, c_closed, &r, 5000));
    ck_assert_int_eq(r.close_error, 1);
    ck_assert_int_eq(r.opens, 0);
    /* lws' own error line, routed through gc_log, names the cause */
    ck_assert_int_eq(log_count("self-signed certificate"), 1);
    /* and the connection's reason names the host and that cause (not lws'
     * bare "SSL err 1") */
    ck_assert_msg(strstr(r.close_reason, "TLS verification failed for 127.0.0.1:") != NULL
                      && strstr(r.close_reason, "self-signed certificate") != NULL,
                  "reason: %s", r.close_reason);
    ck_assert_int_eq(tls_peer_established(&tp), 0);
    tls_peer_stop(&tp);
}
END_TEST

START_TEST(test_tls_trusted_ok)
{
    tls_peer_t tp;
    gc_ws_t *ws;
    rec_t r = { 0 }, r2 = { 0 };

    tls_peer_start(&tp, "a"); /* writes the certificate files */
    ws = client(1 << 20, tmp_path("a.crt"));
    /* the IP SAN matches; the Host header carries the port, lws strips it
     * for the name check */
    connect_rec(ws, tls_url(&tp, "127.0.0.1", "/hello?2"), &r);
    ck_assert(drive(ws, c_message, &r, 5000));
    ck_assert_str_eq(r.msgs[0], "hello 2");
    ck_assert_int_eq(r.closes, 0);
    ck_assert_int_eq(tls_peer_established(&tp), 1);
    /* a DNS name (SAN DNS:localhost) with a port in the Host header */
    connect_rec(ws, tls_url(&tp, "localhost", "/hello?3"), &r2);
    ck_assert(drive(ws, c_message, &r2, 5000));
    ck_assert_str_eq(r2.msgs[0], "hello 3");
    ck_assert_int_eq(log_count("SSL error"), 0);
    tls_peer_stop(&tp);
    rec_free(&r);
    rec_free(&r2);
}
END_TEST

START_TEST(test_tls_name_mismatch_refused)
{
    tls_peer_t tp;
    gc_ws_t *ws;
    rec_t r = { 0 };

    /* trusted, but issued for other.invalid */
    tls_peer_start(&tp, "b"); /* writes the certificate files */
    ws = client(1 << 20, tmp_path("b.crt"));
    connect_rec(ws, tls_url(&tp, "127.0.0.1", "/hello?4"), &r);
    ck_assert(drive(ws, c_closed, &r, 5000));
    ck_assert_int_eq(r.close_error, 1);
    ck_assert_int_eq(r.opens, 0);
    ck_assert_int_eq(log_count("IP address mismatch"), 1);
    ck_assert_int_eq(tls_peer_established(&tp), 0);
    tls_peer_stop(&tp);
}
END_TEST

START_TEST(test_unreadable_ca_file)
{
    ck_assert_ptr_null(gc_ws_create(pool, "/nonexistent/gcmon-ca.pem", 1024, &cbs, &totals));
    ck_assert_int_eq(log_count("GCM509"), 1);
}
END_TEST

START_TEST(test_lws_log_routed_and_rate_limited)
{
    int i;

    log_max_level = GC_LOG_DEBUG;
    gc_ws_log_init(0);
    log_reset();
    for (i = 0; i < 10; i++) {
        lwsl_err("unit-test: connect to 10.0.0.%d failed (wsi %p)\n", i, (void *)&i);
    }
    ck_assert_int_eq(log_count("unit-test: connect"), 1);
    ck_assert_int_eq(log_count("GCM507"), 1);
    pthread_mutex_lock(&log_mu);
    ck_assert_int_eq(log_levels[0], GC_LOG_ERR);
    ck_assert_msg(log_lines[0][strlen(log_lines[0]) - 1] != '\n', "newline kept");
    ck_assert_ptr_nonnull(strstr(log_lines[0], "10.0.0.0"));
    pthread_mutex_unlock(&log_mu);
    lwsl_warn("unit-test: another message\n");
    ck_assert_int_eq(log_count("unit-test: another"), 1);
    lwsl_notice("unit-test: notice hidden\n");
    ck_assert_int_eq(log_count("notice hidden"), 0);
    gc_ws_log_init(1);
    lwsl_notice("unit-test: notice shown\n");
    ck_assert_int_eq(log_count("notice shown"), 1);
    pthread_mutex_lock(&log_mu);
    ck_assert_int_eq(log_levels[nlog - 1], GC_LOG_DEBUG);
    pthread_mutex_unlock(&log_mu);
    gc_ws_log_init(0);
}
END_TEST

static void tls_setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
    memset(&totals, 0, sizeof(totals));
    log_max_level = GC_LOG_WARNING;
    log_reset();
    gc_log_set(cap_is_level, cap_print, NULL);
    gc_ws_log_init(0);
    apr_cpystrn(tmpdir, "/tmp/gcmon-ws-XXXXXX", sizeof(tmpdir));
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tls_teardown(void)
{
    const char *names[] = { "a.crt", "a.key", "b.crt", "b.key" };
    size_t i;

    for (i = 0; i < 4; i++) {
        unlink(apr_pstrcat(pool, tmpdir, "/", names[i], NULL));
    }
    rmdir(tmpdir);
    teardown();
}

Suite *ws_suite(void)
{
    Suite *s = suite_create("ws");
    TCase *tc = tcase_create("transport");
    TCase *tls = tcase_create("tls");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_connect_open);
    tcase_add_test(tc, test_url_forms);
    tcase_add_test(tc, test_message_exact);
    tcase_add_test(tc, test_fragments_reassembled);
    tcase_add_test(tc, test_big_message_intact);
    tcase_add_test(tc, test_message_at_limit);
    tcase_add_test(tc, test_message_too_big);
    tcase_add_test(tc, test_binary_ignored);
    tcase_add_test(tc, test_send_in_order);
    tcase_add_test(tc, test_send_before_open_queued);
    tcase_add_test(tc, test_server_close);
    tcase_add_test(tc, test_client_close);
    tcase_add_test(tc, test_close_before_connect);
    tcase_add_test(tc, test_connection_refused);
    tcase_add_test(tc, test_dns_failure);
    tcase_add_test(tc, test_close_while_handshaking);
    tcase_add_test(tc, test_wake_from_other_thread);
    tcase_add_test(tc, test_wake_before_service_not_lost);
    tcase_add_test(tc, test_service_timeout);
    tcase_add_test(tc, test_two_connections);
    tcase_add_test(tc, test_destroy_with_open_connections);
    tcase_add_test(tc, test_wss_to_plain_server_fails);
    tcase_add_test(tc, test_wss_really_speaks_tls);
    tcase_add_test(tc, test_lws_log_routed_and_rate_limited);
    tcase_add_test(tc, test_unreadable_ca_file);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(tls, tls_setup, tls_teardown);
    tcase_set_timeout(tls, 30);
    tcase_add_test(tls, test_tls_untrusted_refused);
    tcase_add_test(tls, test_tls_trusted_ok);
    tcase_add_test(tls, test_tls_name_mismatch_refused);
    suite_add_tcase(s, tls);
    return s;
}
