/* The bounded event queue between the monitor thread and the writer. The
 * writer waits as a gc_worker: a push that finds the queue empty wakes it. */
#include <stdlib.h>
#include <string.h>

#include "gc_evq.h"
#include "gc_monitor.h"

struct gc_evq {
    apr_thread_mutex_t *mutex;
    gc_evrec_t *head, *tail;
    int count, max;
    gc_worker_t *notify; /* woken by a push onto an empty queue */
};

void gc_evq_free(gc_evrec_t *list)
{
    while (list) {
        gc_evrec_t *next = list->next;
        free(list);
        list = next;
    }
}

static apr_status_t evq_cleanup(void *data)
{
    gc_evq_t *q = data;
    gc_evq_free(q->head);
    q->head = q->tail = NULL;
    q->count = 0;
    return APR_SUCCESS;
}

gc_evq_t *gc_evq_create(apr_pool_t *p, int max)
{
    gc_evq_t *q = apr_pcalloc(p, sizeof(*q));

    q->max = max > 0 ? max : GC_WRITER_QUEUE_MAX;
    if (apr_thread_mutex_create(&q->mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        return NULL;
    }
    /* Registered after the mutex, so it runs before it is destroyed. */
    apr_pool_cleanup_register(p, q, evq_cleanup, apr_pool_cleanup_null);
    return q;
}

void gc_evq_notify(gc_evq_t *q, gc_worker_t *w)
{
    q->notify = w;
}

static apr_size_t slen(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static const char *scopy(char **at, const char *s)
{
    apr_size_t n = slen(s);
    char *d = *at;

    if (!s) {
        return NULL;
    }
    memcpy(d, s, n);
    *at += n;
    return d;
}

static gc_evrec_t *record_new(const gc_agent_event_t *ev, const char *source,
                              apr_time_t received_at)
{
    apr_size_t n = slen(ev->user_id) + slen(ev->user_name) + slen(ev->presence)
                   + slen(ev->presence_id) + slen(ev->routing_status) + slen(ev->state)
                   + slen(ev->queue_ids) + slen(ev->correlation_id);
    gc_evrec_t *r = malloc(sizeof(*r) + n);
    char *at;

    if (!r) {
        return NULL;
    }
    at = r->data;
    r->next = NULL;
    r->source = source;
    r->received_at = received_at;
    r->ev = *ev;
    r->ev.user_id = scopy(&at, ev->user_id);
    r->ev.user_name = scopy(&at, ev->user_name);
    r->ev.presence = scopy(&at, ev->presence);
    r->ev.presence_id = scopy(&at, ev->presence_id);
    r->ev.routing_status = scopy(&at, ev->routing_status);
    r->ev.state = scopy(&at, ev->state);
    r->ev.queue_ids = scopy(&at, ev->queue_ids);
    r->ev.correlation_id = scopy(&at, ev->correlation_id);
    return r;
}

int gc_evq_push(gc_evq_t *q, const gc_agent_event_t *ev, const char *source, apr_time_t received_at)
{
    gc_evrec_t *r = record_new(ev, source, received_at), *old = NULL;
    int dropped = 0, first;

    if (!r) {
        return -1;
    }
    apr_thread_mutex_lock(q->mutex);
    if (q->count >= q->max && q->head) {
        old = q->head;
        q->head = old->next;
        if (!q->head) {
            q->tail = NULL;
        }
        q->count--;
        dropped = 1;
    }
    if (q->tail) {
        q->tail->next = r;
    }
    else {
        q->head = r;
    }
    q->tail = r;
    first = q->count++ == 0;
    apr_thread_mutex_unlock(q->mutex);
    /* The writer only ever waits on an empty queue: wake it on the first event. */
    if (first && q->notify) {
        gc_worker_wake(q->notify);
    }
    free(old);
    return dropped;
}

int gc_evq_take(gc_evq_t *q, gc_evrec_t **list, int max)
{
    gc_evrec_t *first, *last;
    int n = 0;

    *list = NULL;
    apr_thread_mutex_lock(q->mutex);
    first = last = q->head;
    while (last && n < max) {
        n++;
        if (n == max || !last->next) {
            break;
        }
        last = last->next;
    }
    if (n > 0) {
        q->head = last->next;
        if (!q->head) {
            q->tail = NULL;
        }
        last->next = NULL;
        q->count -= n;
        *list = first;
    }
    apr_thread_mutex_unlock(q->mutex);
    return n;
}

int gc_evq_count(gc_evq_t *q)
{
    int n;
    apr_thread_mutex_lock(q->mutex);
    n = q->count;
    apr_thread_mutex_unlock(q->mutex);
    return n;
}
