/* Stream status in shared memory (SPEC §5.2 `/v1/stream`, mod_status): written
 * by the stream holder, readable from any child of the server. A seqlock lets
 * readers take a consistent copy without blocking the writer; writers (the
 * holder, and non-holders noting who holds the lease) serialise on a lock word
 * holding the owner's pid, stolen when that process is gone (a SIGKILLed
 * holder never wedges the block). The block lives in an anonymous segment of
 * the httpd parent, so it survives graceful restarts. */
#ifndef GC_STREAM_STATUS_H
#define GC_STREAM_STATUS_H

#include <apr_pools.h>
#include <apr_time.h>

#include "gc_monitor.h"

#define GC_STATUS_HOST_MAX 64
#define GC_STATUS_ID_MAX 96
#define GC_STATUS_ERR_MAX 256

/* "ch-" + 10 hex digits + NUL. */
#define GC_CHANNEL_LABEL_SIZE 14

/* The opaque label shown for a notification channel instead of its id, which
 * is a credential (SPEC §9.15: whoever knows it can read the channel's events
 * and displace gcmon's socket): "ch-" and the first 10 hex digits of
 * HMAC-SHA256 keyed with `key` (the OAuth client secret; NULL = "") over the
 * id. Stable across restarts and hosts, not reversible. */
void gc_channel_label(char out[GC_CHANNEL_LABEL_SIZE], const char *key, const char *channel_id);

typedef struct gc_stream_status gc_stream_status_t;

typedef struct gc_stream_channel_info {
    char label[GC_CHANNEL_LABEL_SIZE]; /* gc_channel_label; never the id */
    int topics;
    apr_time_t expires;
    int connected;
} gc_stream_channel_info_t;

/* What the holder publishes (and readers get back). */
typedef struct gc_stream_snapshot {
    int enabled;                      /* GcmonStream On in the running config */
    int has_holder;                   /* a holder is (or was last) active */
    char holder_id[GC_STATUS_ID_MAX]; /* "host:pid:random" */
    char holder_host[GC_STATUS_HOST_MAX];
    int holder_pid;
    apr_time_t holder_since;
    int connected; /* every channel has an open socket */
    int nchannels;
    gc_stream_channel_info_t channels[GC_MAX_CHANNELS];
    int topics; /* permitted topics across channels */
    int agents_monitored;
    apr_time_t last_event_at;           /* 0 = none yet */
    apr_uint64_t events_total;          /* agent events received, all holders */
    apr_uint64_t reconnects_total;      /* socket reconnects, all holders */
    char last_error[GC_STATUS_ERR_MAX]; /* "" = none */
    apr_time_t last_error_at;
    char lease_holder[GC_STATUS_ID_MAX]; /* lease holder as last seen by any child */
} gc_stream_snapshot_t;

/* Bytes of shared memory for the block. */
apr_size_t gc_stream_status_size(void);

/* Zero and initialise in `mem` (parent, once per segment). */
gc_stream_status_t *gc_stream_status_init(void *mem);

/* Bump whenever the block's layout changes (with its size, checked by attach). */
#define GC_STREAM_STATUS_VERSION 3

/* The block in `mem` (size bytes, e.g. a segment kept across a graceful
 * restart) if this build's layout (version and size) initialised it, else
 * NULL: then make a new segment. */
gc_stream_status_t *gc_stream_status_attach(void *mem, apr_size_t size);

/* The running configuration's GcmonStream (parent, every generation). */
void gc_stream_status_set_enabled(gc_stream_status_t *st, int enabled);

/* Consistent copy. 0 on success; -1 when a writer stayed inside its critical
 * section for the whole bounded wait (the copy may then be torn). */
int gc_stream_status_read(gc_stream_status_t *st, gc_stream_snapshot_t *out);

/* Holder: publish everything but `enabled` and the last error (counters
 * included: the holder starts from what it read, so totals continue across
 * holders). Errors go through gc_stream_status_error. */
void gc_stream_status_publish(gc_stream_status_t *st, const gc_stream_snapshot_t *s);

/* A standby on another node: show the holder's snapshot `s` (read from the
 * database, gc_stream_share.h) as this block's holder. Like publish, but the
 * last error is whichever of the two is newer. */
void gc_stream_status_mirror(gc_stream_status_t *st, const gc_stream_snapshot_t *s);

/* Holder `holder_id` stepping down: no holder, nothing connected; counters
 * and the last error are kept. Nothing happens when another holder has
 * published since (holder_id NULL: clear regardless). */
void gc_stream_status_clear_holder(gc_stream_status_t *st, const char *holder_id);

/* The holder, after a commit that changed the board: the database's board_id
 * and the new generation (SPEC §9.17), with this process's pid. A generation
 * never goes backwards for one board_id. */
void gc_stream_status_board(gc_stream_status_t *st, apr_int64_t board_id, apr_int64_t gen);

/* The last board generation published and the pid that published it: 1, or
 * 0 when none was. */
int gc_stream_status_board_read(gc_stream_status_t *st, apr_int64_t *board_id, apr_int64_t *gen,
                                int *pid);

/* Any child: who holds the lease (when it changed). */
void gc_stream_status_note_lease(gc_stream_status_t *st, const char *holder_id);

/* Any thread: record an error message (one line, truncated). */
void gc_stream_status_error(gc_stream_status_t *st, apr_time_t at, const char *msg);

/* Is the stream vacant as far as this host can tell: no holder published and
 * no lease holder noted, or the published holder ran on `local_host` and its
 * process is gone (SIGKILL)? Then *dead_id (size n) names the dead holder, or
 * is "" when there is none. Lets standbys take over without waiting for the
 * lease to expire. */
int gc_stream_status_vacant(gc_stream_status_t *st, const char *local_host, char *dead_id,
                            apr_size_t n);

/* Reader side: when the recorded holder runs on `local_host` and its process is
 * gone (SIGKILL), show it as no holder / disconnected. */
void gc_stream_snapshot_check_alive(gc_stream_snapshot_t *s, const char *local_host);

/* SPEC §5.2 JSON document (compact) from pool p. */
char *gc_stream_status_json(apr_pool_t *p, const gc_stream_snapshot_t *s);

/* mod_status `?auto` lines ("GcmonStreamConnected: 1\n" …) from pool p. */
char *gc_stream_status_auto(apr_pool_t *p, const gc_stream_snapshot_t *s, apr_time_t now);

/* Copy src into dst (size n) as one printable line: control characters become
 * spaces, always NUL-terminated, truncated on a UTF-8 boundary. */
void gc_status_copy_line(char *dst, apr_size_t n, const char *src);

#endif
