/* The monitor thread of every child keeps this host's route tables fresh
 * (SPEC §9.9, docs/scale-out.md): each loop turn it asks the block whether a
 * refresh is due (older than GC_ROUTE_REFRESH: a few atomic loads), and the
 * one thread that takes the refresh claim reads the active strategies through
 * its own database connection, compiles and publishes them (gc_route_load).
 * So one child per host reads the database every 2 s, whichever it is —
 * standby or holder — and a dead or stuck one is replaced by the next. */
#include "gc_monitor_int.h"
#include "gc_route_load.h"
#include "gc_route_shm.h"

void gc_mon_routes_tick(gc_monitor_t *m, apr_time_t now)
{
    gc_route_shm_t *b = m->env.routes;
    gc_route_load_report_t rep;
    const char *err = NULL;

    if (!b || !gc_route_shm_claim(b, now, GC_ROUTE_REFRESH)) {
        return;
    }
    if (!gc_mon_db_ready(m)) {
        gc_route_shm_release(b); /* logged there; retried a bound later */
        return;
    }
    if (gc_route_load(b, gc_worker_store(m->worker), m->iter, now, &rep, &err) != APR_SUCCESS) {
        gc_route_shm_release(b);
        m->routes_failing = 1;
        if (gc_worker_db_failed(m->worker)) {
            gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
                   GCMON_LOGNO(2126) "route tables: cannot read the active strategies from the "
                                     "database: %s (the tables in shared memory stay as they "
                                     "are and keep answering; retried within %d s)",
                   err ? err : "unknown error", (int)apr_time_sec(GC_ROUTE_REFRESH));
        }
        return;
    }
    if (m->routes_failing) {
        m->routes_failing = 0;
        gc_log(GC_LOG_MARK, GC_LOG_NOTICE, 0,
               GCMON_LOGNO(2129) "route tables: the active strategies are read from the "
                                 "database again");
    }
    if (rep.left_out != m->routes_left_out) {
        m->routes_left_out = rep.left_out;
        if (rep.left_out > 0) {
            gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
                   GCMON_LOGNO(2127) "route tables: %d active strategies, %d of them not "
                                     "routed: a server holds the route tables of at most %d "
                                     "(their route answers 404 strategy_not_active)",
                   rep.active, rep.left_out, GC_ROUTE_SHM_SLOTS);
        }
    }
    if (rep.unreadable != m->routes_unreadable) {
        m->routes_unreadable = rep.unreadable;
        if (rep.unreadable > 0) {
            gc_log(GC_LOG_MARK, GC_LOG_WARNING, 0,
                   GCMON_LOGNO(2128) "route tables: %d active strategies (e.g. %s) have a "
                                     "stored body that does not validate: not routed (written "
                                     "by another version of gcmon, or edited by hand?)",
                   rep.unreadable, rep.unreadable_id ? rep.unreadable_id : "-");
        }
    }
    gc_log(GC_LOG_MARK, GC_LOG_TRACE1, 0,
           "route tables refreshed: %d active, %d routed, generation %" APR_UINT64_T_FMT "%s",
           rep.active, rep.routed, rep.generation, rep.dropped ? " (a newer refresh won)" : "");
}
