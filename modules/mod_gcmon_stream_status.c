/* mod_gcmon_stream: the stream status block (anonymous shared memory of the
 * httpd parent, so it survives graceful restarts and every child reads the
 * holder's view), its mod_status section and the `gcmon_stream_status_json`
 * optional function behind GET /gcmon/api/v1/stream (SPEC §5.2). */
#include <apr_optional.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <mod_status.h>

#include "gc_state.h"
#include "gc_time.h"
#include "mod_gcmon_stream_private.h"

#define SHM_STATUS_KEY "gcmon_stream_shm_status"

static gc_stream_status_t *status_block;

gc_stream_status_t *gcmon_stream_status_block(void)
{
    return status_block;
}

int gcmon_stream_status_setup(server_rec *s, int enabled)
{
    apr_pool_t *pp = s->process->pool;
    apr_size_t size = gc_stream_status_size();
    apr_shm_t *shm = NULL, *old = NULL;
    apr_status_t rv;

    /* Only the apr_shm_t is kept across generations (the process pool's
     * userdata): each build checks the block's version and size first. */
    apr_pool_userdata_get((void **)&old, SHM_STATUS_KEY, pp);
    status_block =
        old ? gc_stream_status_attach(apr_shm_baseaddr_get(old), apr_shm_size_get(old)) : NULL;
    if (!status_block) {
        rv = apr_shm_create(&shm, size, NULL, pp);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                         GCMON_LOGNO(2006) "cannot create %" APR_SIZE_T_FMT " bytes of "
                                           "anonymous shared memory for the stream status",
                         size);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        apr_pool_userdata_set(shm, SHM_STATUS_KEY, NULL, pp);
        status_block = gc_stream_status_init(apr_shm_baseaddr_get(shm));
        if (old) {
            /* Unmaps it here only: the old generation's children keep theirs. */
            ap_log_error(
                APLOG_MARK, APLOG_NOTICE, 0, s,
                GCMON_LOGNO(
                    2013) "stream status: the shared memory block of the "
                          "previous generation has another layout (another build of gcmon); "
                          "using a new segment (counters restart from zero)");
            apr_shm_destroy(old);
        }
    }
    gc_stream_status_set_enabled(status_block, enabled);
    return OK;
}

static int snapshot(gc_stream_snapshot_t *snap)
{
    if (!status_block) {
        return 0;
    }
    gc_stream_status_read(status_block, snap);
    gc_stream_snapshot_check_alive(snap, gcmon_stream_node());
    return 1;
}

/* The optional function's name is its registration key. */
static char *gcmon_stream_status_json(apr_pool_t *p)
{
    gc_stream_snapshot_t snap;

    return snapshot(&snap) ? gc_stream_status_json(p, &snap) : NULL;
}

/* The optional function's name is its registration key. The generation counts
 * only while the process that published it is this server's live holder. */
static int gcmon_stream_board_gen(apr_int64_t *board_id, apr_int64_t *gen)
{
    gc_stream_snapshot_t snap;
    int pid = 0;

    return status_block && snapshot(&snap) && snap.has_holder
           && gc_stream_status_board_read(status_block, board_id, gen, &pid)
           && pid == snap.holder_pid;
}

static void gcmon_stream_board_changed(apr_int64_t board_id, apr_int64_t gen)
{
    if (status_block) {
        gc_stream_status_board(status_block, board_id, gen);
    }
}

void gcmon_stream_status_register(void)
{
    APR_REGISTER_OPTIONAL_FN(gcmon_stream_status_json);
    APR_REGISTER_OPTIONAL_FN(gcmon_stream_board_gen);
    APR_REGISTER_OPTIONAL_FN(gcmon_stream_board_changed);
}

static const char *html_time(request_rec *r, apr_time_t t)
{
    return t > 0 ? gc_time_format(r->pool, t) : "-";
}

static void status_html(request_rec *r, const gc_stream_snapshot_t *s, apr_time_t now)
{
    int i, live = s->has_holder;

    ap_rputs("<hr />\n<h2><a name=\"gcmon\">gcmon stream</a></h2>\n<table rules=\"all\" "
             "cellpadding=\"1%\">\n",
             r);
    ap_rprintf(r, "<tr><th>Enabled</th><td>%s</td></tr>\n", s->enabled ? "yes" : "no");
    ap_rprintf(
        r, "<tr><th>Holder</th><td>%s</td></tr>\n",
        live ? ap_escape_html(r->pool, apr_psprintf(r->pool, "%s pid %d since %s", s->holder_host,
                                                    s->holder_pid, html_time(r, s->holder_since)))
             : (s->lease_holder[0] ? ap_escape_html(r->pool, s->lease_holder) : "none"));
    ap_rprintf(r, "<tr><th>Connected</th><td>%s</td></tr>\n", live && s->connected ? "yes" : "no");
    ap_rprintf(r, "<tr><th>Agents monitored</th><td>%d</td></tr>\n",
               live ? s->agents_monitored : 0);
    ap_rprintf(r, "<tr><th>Events received</th><td>%" APR_UINT64_T_FMT "</td></tr>\n",
               s->events_total);
    ap_rprintf(r, "<tr><th>Last event</th><td>%s%s</td></tr>\n", html_time(r, s->last_event_at),
               s->last_event_at > 0
                   ? apr_psprintf(r->pool, " (%" APR_INT64_T_FMT " s ago)",
                                  (apr_int64_t)apr_time_sec(now - s->last_event_at))
                   : "");
    ap_rprintf(r, "<tr><th>Reconnects</th><td>%" APR_UINT64_T_FMT "</td></tr>\n",
               s->reconnects_total);
    ap_rprintf(r, "<tr><th>Last error</th><td>%s%s</td></tr>\n</table>\n",
               s->last_error[0] ? ap_escape_html(r->pool, s->last_error) : "none",
               s->last_error[0] ? apr_psprintf(r->pool, " (%s)", html_time(r, s->last_error_at))
                                : "");
    if (!live || s->nchannels == 0) {
        return;
    }
    ap_rputs("<table rules=\"all\" cellpadding=\"1%\">\n<tr><th>Channel</th><th>Topics</th>"
             "<th>Expires</th><th>Connected</th></tr>\n",
             r);
    for (i = 0; i < s->nchannels && i < GC_MAX_CHANNELS; i++) {
        const gc_stream_channel_info_t *c = &s->channels[i];
        ap_rprintf(r, "<tr><td>%s</td><td>%d</td><td>%s</td><td>%s</td></tr>\n",
                   ap_escape_html(r->pool, c->label), c->topics, html_time(r, c->expires),
                   c->connected ? "yes" : "no");
    }
    ap_rputs("</table>\n", r);
}

int gcmon_stream_status_hook(request_rec *r, int flags)
{
    gc_stream_snapshot_t snap;

    if (!snapshot(&snap)) {
        return DECLINED;
    }
    if (flags & AP_STATUS_SHORT) {
        ap_rputs(gc_stream_status_auto(r->pool, &snap, apr_time_now()), r);
    }
    else {
        status_html(r, &snap, apr_time_now());
    }
    return OK;
}
