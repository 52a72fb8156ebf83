#!/usr/bin/env python3
"""`make bench`: run the benchmarks (SPEC §8) and print one line per figure.

Ingest (bench/ingest.c, built as build/bench_ingest): the raw apr_dbd batched-insert
rate on SQLite, gcmon's WebSocket → database ingest rate from a fast local replay
source, and the event → queryable lag at 5,000 events/s, all in the same run.
Environment: GCMON_BENCH_EVENTS (default 200000), GCMON_BENCH_RATE (5000),
GCMON_BENCH_SECONDS (10).

History and board (bench/read.py): requests/s at 32 connections on 1,000,000 rows (first
page, page 5,000 by offset, a deep cursor page) against a static file of the same size,
and GET /v1/agents latency with 20,000 agents; see read.py for its environment.

Idle alerts (bench/alerts.c, built as build/bench_alerts; `make bench-alerts` alone):
crossing -> committed alert latency with 20,000 agents crossing within 10 s, the idle CPU
with 20,000 timers scheduled, and RSS. Environment: GCMON_BENCH_ALERT_AGENTS (20000).

The real holder (bench/holder.py; `bench/run.py holder` alone): apache2 + the emulator
with 20,000 monitored agents crossing an idle threshold: alert latency, the holder
process's RSS and its CPU while idle.

PostgreSQL (`bench/run.py pgsql`, or ingest-pgsql / read-pgsql alone): the ingest
figures with a raw batched insert into PostgreSQL as the ceiling, and the history
first page on PostgreSQL against the static file (a throwaway server started by
tests/integration/pgserver.py, as in the integration suites).

Status changes (bench/status.py; `bench/run.py status` alone): PUT /v1/admin/agents/{id}/status
through gcmon against the same GET + PATCH made directly to the emulator, and concurrent
changes of different agents.

Weight distribution (bench/weights.py; `bench/run.py weights` or `make bench-weights` alone):
POST /v1/admin/queues/{id}/weights over 500 members with GcmonRateLimit 600, the emulator
enforcing the same limit: wall time against the time the rate limit alone imposes (target
<= 1.05x) and the 429s caused (target 0). A miss of either makes the run exit 1.

Flow traces (bench/traces.py; `bench/run.py traces` or `make bench-traces` alone): 100
POST /v1/admin/flows/{flowId}/traces at once against the emulator, each Genesys job final on
its 4th poll: wall time to all completed against the poll schedule alone (target <= 1.5x its
upper bound), upstream requests per trace, exactly one trace_complete audit row per trace, the
holder's RSS. A miss makes the run exit 1.

Route decisions (bench/route.py; `bench/run.py route` or `make bench-route` alone): GET
/v1/strategies/{id}/route for an active strategy of 5 targets against a static file of the
same size, wrk at 32 connections, in the same run (target >= 80%). A miss makes the run exit 1.
"""
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("GCMON_BUILD", os.path.join(REPO, "build"))


def pg_server():
    """The throwaway PostgreSQL of the integration tests (pgserver.py)."""
    sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
    import pgserver  # noqa: E402
    why = pgserver.available()
    if why:
        raise RuntimeError(f"PostgreSQL: {why}")
    return pgserver, pgserver.shared()


def run_ingest(driver="sqlite3"):
    events = os.environ.get("GCMON_BENCH_EVENTS", "200000")
    rate = os.environ.get("GCMON_BENCH_RATE", "5000")
    seconds = os.environ.get("GCMON_BENCH_SECONDS", "10")
    env = dict(os.environ, GCMON_BENCH_DRIVER=driver)
    work = tempfile.mkdtemp(prefix="gcmon-bench-")
    where, db = work, "SQLite"
    if driver == "pgsql":
        pgserver, srv = pg_server()
        for label in ("raw", "ingest", "lag"):
            srv.admin(f"DROP DATABASE IF EXISTS gcmon_bench_{label} WITH (FORCE)")
            srv.admin(f"CREATE DATABASE gcmon_bench_{label} OWNER {pgserver.APP_USER}")
        where = srv.dbd_params("x").rsplit(" dbname=", 1)[0]
        db = "PostgreSQL"
    try:
        out = subprocess.run([os.path.join(BUILD, "bench_ingest"), where, events, rate, seconds],
                             check=True, stdout=subprocess.PIPE, timeout=1800,
                             env=env).stdout.decode()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if driver == "pgsql":
            for label in ("raw", "ingest", "lag"):
                srv.admin(f"DROP DATABASE IF EXISTS gcmon_bench_{label} WITH (FORCE)")
    fig = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    raw = float(fig["raw_insert_rows_per_s"])
    ingest = float(fig["ingest_events_per_s"])
    ratio = float(fig["ingest_ratio"])
    p99 = float(fig["lag_p99_ms"])
    label = "ingest" if driver == "sqlite3" else "ingest (PostgreSQL)"
    print(f"{label}: raw apr_dbd batched insert ({db}, 500 rows/transaction): {raw:,.0f} rows/s")
    print(f"{label}: WebSocket -> database, {int(events):,} events: {ingest:,.0f} events/s "
          f"= {ratio:.0%} of raw (target >= 50%) {'OK' if ratio >= 0.5 else 'BELOW TARGET'}")
    print(f"{label}: event -> queryable at {int(fig['lag_rate_events_per_s']):,} events/s: "
          f"p50 {float(fig['lag_p50_ms']):.1f} ms, p99 {p99:.1f} ms (target <= 250 ms) "
          f"{'OK' if p99 <= 250 else 'ABOVE TARGET'}")


def run_alerts():
    agents = os.environ.get("GCMON_BENCH_ALERT_AGENTS", "20000")
    work = tempfile.mkdtemp(prefix="gcmon-bench-")
    try:
        # 20,000 agents crossing a 3 s threshold spread over 10 s; then 5 s idle.
        out = subprocess.run([os.path.join(BUILD, "bench_alerts"), work, agents, "10", "3", "5"],
                             check=True, stdout=subprocess.PIPE, timeout=600).stdout.decode()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fig = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    n = int(fig["alerts_agents"])
    p99 = float(fig["alerts_latency_p99_ms"])
    worst = float(fig["alerts_latency_max_ms"])
    rss_mb = int(fig["alerts_rss_kb"]) / 1024
    p50 = float(fig["alerts_latency_p50_ms"])
    print(f"alerts: {int(fig['alerts_raised']):,} of {n:,} agents crossing within 10 s, "
          f"crossing -> committed alert + outbox row: p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms, max {worst:.1f} ms (target <= 1000 ms) "
          f"{'OK' if worst <= 1000 and int(fig['alerts_raised']) == n else 'ABOVE TARGET'}")
    print(f"alerts: seeding {n:,} agents from the database: {float(fig['alerts_seed_ms']):.0f} ms")
    print(f"alerts: idle with {int(fig['alerts_idle_timers']):,} timers scheduled: "
          f"{float(fig['alerts_idle_cpu_pct']):.2f}% of one CPU")
    print(f"alerts: engine memory for {n:,} agents: {int(fig['alerts_engine_kb']):,} KB; "
          f"benchmark process RSS {rss_mb:.1f} MB (peak {int(fig['alerts_hwm_kb']) / 1024:.1f} MB; "
          f"leader target <= 64 MB) {'OK' if rss_mb <= 64 else 'ABOVE TARGET'}")


def bench_module(name):
    """A bench part of its own module (bench/<name>.py); it reads GCMON_BUILD
    when imported, so that is set first."""
    import importlib
    os.environ.setdefault("GCMON_BUILD", BUILD)
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module(name)


def run_pgsql(part="pgsql"):
    """The PostgreSQL figures (SPEC §8 on the scale-out database): ingest against a
    raw batched insert into PostgreSQL, and the history first page against the
    static file, with mod_dbd's pgsql driver."""
    os.environ.setdefault("GCMON_BUILD", BUILD)
    pgserver = None
    try:
        if part in ("pgsql", "ingest-pgsql"):
            pgserver, _ = pg_server()
            run_ingest("pgsql")
        if part in ("pgsql", "read-pgsql"):
            pgserver, _ = pg_server()
            bench_module("read").run("pgsql")
    finally:
        if pgserver:
            pgserver.stop_shared()


def part(name):
    """Run the bench part bench/<name>.py: its run() result (None counts as passed)."""
    return bench_module(name).run() is not False


# The parts run alone by name; no name runs them all.
MODULE_PARTS = ("read", "holder", "status", "weights", "traces", "route")


# GCMON_BENCH_QUICK=1 (`make bench QUICK=1`, a step of `make test`): every part on a
# small scale, so the bench code and binaries cannot rot unnoticed. The figures mean
# nothing at these sizes: a part that misses its target does not fail the smoke run,
# one that breaks (an exception, a crash, a non-zero exit of a binary) does.
QUICK_SIZES = {
    "GCMON_BENCH_EVENTS": "5000", "GCMON_BENCH_RATE": "1000", "GCMON_BENCH_SECONDS": "2",
    "GCMON_BENCH_ALERT_AGENTS": "500",
    "GCMON_BENCH_ROWS": "20000", "GCMON_BENCH_AGENTS": "300", "GCMON_BENCH_DURATION": "2",
    "GCMON_BENCH_BOARD_REQUESTS": "5",
    "GCMON_BENCH_HOLDER_AGENTS": "300", "GCMON_BENCH_HOLDER_WINDOW": "5",
    "GCMON_BENCH_HOLDER_IDLE": "2",
    "GCMON_BENCH_STATUS_CHANGES": "20",
    "GCMON_BENCH_WEIGHTS_MEMBERS": "20",
    "GCMON_BENCH_TRACES": "5", "GCMON_BENCH_TRACE_POLLS": "2",
}


def quick():
    return os.environ.get("GCMON_BENCH_QUICK", "") not in ("", "0")


def main():
    args = sys.argv[1:]
    if quick():
        for k, v in QUICK_SIZES.items():
            os.environ.setdefault(k, v)
    if args == ["alerts"]:
        run_alerts()
        return 0
    if args in (["pgsql"], ["ingest-pgsql"], ["read-pgsql"]):
        run_pgsql(args[0])
        return 0
    if len(args) == 1 and args[0] in MODULE_PARTS:
        return 0 if part(args[0]) else 1
    run_ingest()
    run_alerts()
    ok = all([part(name) for name in MODULE_PARTS])
    run_pgsql()
    if quick():
        print("bench: QUICK=1 smoke run: every part ran (figures at toy sizes, targets not judged)")
        return 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
