/* The bounded event queue between the monitor thread and the writer. */
#ifndef GC_EVQ_H
#define GC_EVQ_H

#include <apr_pools.h>
#include <apr_time.h>

#include "gc_state.h"
#include "gc_worker.h"

/* One event waiting for the writer: a single malloc holding the strings. */
typedef struct gc_evrec {
    struct gc_evrec *next;
    const char *source; /* static: "stream", "resync", "inbound" */
    apr_time_t received_at;
    gc_agent_event_t ev;
    char data[];
} gc_evrec_t;

typedef struct gc_evq gc_evq_t;

/* Bounded FIFO between the monitor and the writer. Freed with its pool. */
gc_evq_t *gc_evq_create(apr_pool_t *p, int max);
/* Copy ev in. Returns how many old events were dropped to make room (0 or 1),
 * or -1 when out of memory (the new event is dropped). */
int gc_evq_push(gc_evq_t *q, const gc_agent_event_t *ev, const char *source,
                apr_time_t received_at);
/* Detach up to max events (oldest first), without waiting. Returns the
 * count; *list is a chain to free with gc_evq_free. */
int gc_evq_take(gc_evq_t *q, gc_evrec_t **list, int max);
int gc_evq_count(gc_evq_t *q);
/* Wake w (gc_worker_wake) whenever a push finds the queue empty (NULL: none):
 * its consumer waits only on an empty queue. Set before pushes begin. */
void gc_evq_notify(gc_evq_t *q, gc_worker_t *w);
void gc_evq_free(gc_evrec_t *list);

#endif
