/* The holder's stream snapshot as a document in the lease row (see header). */
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "gc_stream_share.h"

#define SHARE_VERSION 1

char *gc_stream_share_json(apr_pool_t *p, const gc_stream_snapshot_t *s)
{
    json_t *doc, *channels = json_array();
    char *text, *out;
    int i;

    for (i = 0; i < s->nchannels && i < GC_MAX_CHANNELS; i++) {
        const gc_stream_channel_info_t *c = &s->channels[i];
        json_array_append_new(channels, json_pack("[s,i,I,b]", c->label, c->topics,
                                                  (json_int_t)c->expires, c->connected));
    }
    doc = json_pack("{s:i,s:s,s:s,s:i,s:I,s:b,s:o,s:i,s:i,s:I,s:I,s:I,s:s,s:I}", "v", SHARE_VERSION,
                    "id", s->holder_id, "host", s->holder_host, "pid", s->holder_pid, "since",
                    (json_int_t)s->holder_since, "connected", s->connected, "channels", channels,
                    "topics", s->topics, "agents", s->agents_monitored, "last_event_at",
                    (json_int_t)s->last_event_at, "events", (json_int_t)s->events_total,
                    "reconnects", (json_int_t)s->reconnects_total, "error", s->last_error,
                    "error_at", (json_int_t)s->last_error_at);
    if (!doc) {
        return NULL;
    }
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    out = text ? apr_pstrdup(p, text) : NULL;
    free(text);
    return out;
}

static int channels_parse(json_t *arr, gc_stream_snapshot_t *out)
{
    size_t i;
    json_t *c;

    if (!json_is_array(arr) || json_array_size(arr) > GC_MAX_CHANNELS) {
        return 0;
    }
    json_array_foreach(arr, i, c)
    {
        gc_stream_channel_info_t *info = &out->channels[i];
        const char *label;
        json_int_t expires;
        int topics, connected;
        if (json_unpack(c, "[s,i,I,b]", &label, &topics, &expires, &connected) != 0) {
            return 0;
        }
        gc_status_copy_line(info->label, sizeof(info->label), label);
        info->topics = topics;
        info->expires = (apr_time_t)expires;
        info->connected = connected;
    }
    out->nchannels = (int)json_array_size(arr);
    return 1;
}

int gc_stream_share_parse(const char *doc, const char *holder_id, gc_stream_snapshot_t *out)
{
    json_t *root, *channels;
    const char *id, *host, *error;
    json_int_t since, last, events, reconnects, error_at;
    int v, ok;

    memset(out, 0, sizeof(*out));
    if (!doc || !*doc || !holder_id || !(root = json_loads(doc, 0, NULL))) {
        return 0;
    }
    ok = json_unpack(root, "{s:i,s:s,s:s,s:i,s:I,s:b,s:o,s:i,s:i,s:I,s:I,s:I,s:s,s:I}", "v", &v,
                     "id", &id, "host", &host, "pid", &out->holder_pid, "since", &since,
                     "connected", &out->connected, "channels", &channels, "topics", &out->topics,
                     "agents", &out->agents_monitored, "last_event_at", &last, "events", &events,
                     "reconnects", &reconnects, "error", &error, "error_at", &error_at)
             == 0
         && v == SHARE_VERSION && strcmp(id, holder_id) == 0 && channels_parse(channels, out);
    if (ok) {
        out->has_holder = 1;
        gc_status_copy_line(out->holder_id, sizeof(out->holder_id), id);
        gc_status_copy_line(out->holder_host, sizeof(out->holder_host), host);
        gc_status_copy_line(out->lease_holder, sizeof(out->lease_holder), id);
        out->holder_since = (apr_time_t)since;
        out->last_event_at = (apr_time_t)last;
        out->events_total = (apr_uint64_t)events;
        out->reconnects_total = (apr_uint64_t)reconnects;
        gc_status_copy_line(out->last_error, sizeof(out->last_error), error);
        out->last_error_at = (apr_time_t)error_at;
    }
    else {
        memset(out, 0, sizeof(*out));
    }
    json_decref(root);
    return ok;
}

int gc_stream_share_same_node(const char *holder_id, const char *node)
{
    const char *colon = holder_id ? strchr(holder_id, ':') : NULL;
    size_t n = node ? strlen(node) : 0;

    return colon && (size_t)(colon - holder_id) == n && strncmp(holder_id, node, n) == 0;
}
