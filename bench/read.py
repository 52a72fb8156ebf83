#!/usr/bin/env python3
"""Read API benchmarks (SPEC §8 "History" and "Board"), called by bench/run.py.

One real apache2 (event MPM) with gcmon from the build tree, SQLite through
mod_dbd, a database of 1,000,000 history rows and 20,000 agents. wrk at 32
connections, in the same run, against:
  - a static file of the same size as the first history page (the baseline),
  - the first page, page 5,000 by offset, and a deep cursor page (row ~990,000),
and sequential GET /v1/agents for the board latency (20,000 agents).

Environment: GCMON_BENCH_ROWS (1000000), GCMON_BENCH_AGENTS (20000),
GCMON_BENCH_DURATION (seconds per wrk run, 10), GCMON_BENCH_BOARD_REQUESTS (40).

run("pgsql") (bench/run.py read-pgsql): the same on PostgreSQL (a throwaway server,
tests/integration/pgserver.py; mod_dbd's pgsql driver), seeded in the server itself.
"""
import base64
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from dbseed import Bg  # noqa: E402
from httpd import Httpd  # noqa: E402

ROWS = int(os.environ.get("GCMON_BENCH_ROWS", "1000000"))
AGENTS = int(os.environ.get("GCMON_BENCH_AGENTS", "20000"))
DURATION = int(os.environ.get("GCMON_BENCH_DURATION", "10"))
BOARD_REQUESTS = int(os.environ.get("GCMON_BENCH_BOARD_REQUESTS", "40"))
SERVERS = int(os.environ.get("GCMON_BENCH_SERVERS", "2"))
THREADS = int(os.environ.get("GCMON_BENCH_THREADS", "32"))
CONNECTIONS = 32
BASE = 1767225600000          # 2026-01-01T00:00:00Z in ms
STATES = ["Available", "Away", "Busy", "IDLE", "INTERACTING", "OFF_QUEUE", "Break", "Meal",
          "COMMUNICATING", "NOT_RESPONDING"]
HISTORY = "/gcmon/api/v1/agent-status/history"


def cursor(at_ms, row_id):
    """gcmon's opaque history cursor (see shared/gc_query.c)."""
    raw = bytes([1, ord("h")]) + at_ms.to_bytes(8, "big") + row_id.to_bytes(8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Rows written behind gcmon's back are stamped like a writer's commit: a new
# write epoch, carried by every agent and membership row, so the board's
# generation moves and every process's board copy takes them in.
BUMP_EPOCH = "UPDATE gcmon_meta SET value = value + 1 WHERE name = 'write_epoch'"
STAMP_AGENTS = ("UPDATE gcmon_agents SET gen = (SELECT value FROM gcmon_meta "
                "WHERE name = 'write_epoch')")
STAMP_MEMBERSHIP = ("UPDATE gcmon_membership SET gen = (SELECT value FROM gcmon_meta "
                    "WHERE name = 'write_epoch')")


def _seed(path, rows, agents):
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    db.execute("PRAGMA busy_timeout=60000")
    db.execute("BEGIN IMMEDIATE")
    users = max(agents, 1)

    def hist():
        prev = {}
        for i in range(rows):
            u = i % users
            st = STATES[(i * 7 + i // users) % len(STATES)]
            at = BASE + i * 50
            yield (f"user-{u:05d}", f"Agent Number {u}", st, prev.get(u),
                   "OnQueue" if st.isupper() else st, st if st.isupper() else None,
                   at, at + 120, "stream")
            prev[u] = st
    db.executemany("INSERT INTO gcmon_history (user_id, user_name, state, previous_state, "
                   "presence, routing_status, event_at, ingested_at, source) "
                   "VALUES (?,?,?,?,?,?,?,?,?)", hist())
    now = int(time.time() * 1000)
    db.executemany("INSERT OR REPLACE INTO gcmon_agents (user_id, user_name, state, presence, "
                   "presence_id, routing_status, queue_ids, since, event_at, updated_at) "
                   "VALUES (?,?,?,?,?,?,?,?,?,?)",
                   ((f"user-{u:05d}", f"Agent Number {u}", STATES[u % 10],
                     "OnQueue" if STATES[u % 10].isupper() else STATES[u % 10],
                     "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                     STATES[u % 10] if STATES[u % 10].isupper() else None,
                     '["7b1e8f2a-0c3d-4e5f-9a8b-1c2d3e4f5a6b"]', now - u * 1000,
                     now - u * 1000, now) for u in range(agents)))
    db.executemany("INSERT OR REPLACE INTO gcmon_membership (user_id, queue_ids, gen) "
                   "VALUES (?, ?, 1)",
                   ((f"user-{u:05d}", '["7b1e8f2a-0c3d-4e5f-9a8b-1c2d3e4f5a6b"]')
                    for u in range(agents)))
    db.execute(BUMP_EPOCH)
    db.execute(STAMP_AGENTS)
    db.execute(STAMP_MEMBERSHIP)
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    deep = db.execute("SELECT event_at, id FROM gcmon_history ORDER BY event_at DESC, id DESC "
                      "LIMIT 1 OFFSET ?", (max(rows - 10000, 0),)).fetchone()
    db.close()
    return list(deep) if deep else None


def _seed_pg(db, rows, agents):
    """The same rows as _seed, generated inside PostgreSQL (generate_series)."""
    users = max(agents, 1)
    states = "ARRAY[" + ",".join(f"'{x}'" for x in STATES) + "]"
    n = len(STATES)
    st = f"({states})[((i * 7 + i / {users}) % {n}) + 1]"
    prev = (f"CASE WHEN i >= {users} THEN ({states})[(((i - {users}) * 7 + "
            f"(i - {users}) / {users}) % {n}) + 1] END")
    db.execute(f"""
        INSERT INTO gcmon_history (user_id, user_name, state, previous_state, presence,
                                   routing_status, event_at, ingested_at, source)
        SELECT 'user-' || lpad((i % {users})::text, 5, '0'), 'Agent Number ' || (i % {users}),
               s, {prev}, CASE WHEN upper(s) = s THEN 'OnQueue' ELSE s END,
               CASE WHEN upper(s) = s THEN s END, {BASE} + i * 50, {BASE} + i * 50 + 120,
               'stream'
        FROM (SELECT i, {st} AS s FROM generate_series(0, {rows - 1}) AS i) AS g""")
    now = int(time.time() * 1000)
    ast = f"({states})[(u % {n}) + 1]"
    db.execute(f"""
        INSERT INTO gcmon_agents (user_id, user_name, state, presence, presence_id,
                                  routing_status, queue_ids, since, event_at, updated_at)
        SELECT 'user-' || lpad(u::text, 5, '0'), 'Agent Number ' || u, s,
               CASE WHEN upper(s) = s THEN 'OnQueue' ELSE s END,
               '3fa85f64-5717-4562-b3fc-2c963f66afa6', CASE WHEN upper(s) = s THEN s END,
               '["7b1e8f2a-0c3d-4e5f-9a8b-1c2d3e4f5a6b"]', {now} - u * 1000, {now} - u * 1000,
               {now}
        FROM (SELECT u, {ast} AS s FROM generate_series(0, {agents - 1}) AS u) AS g
        ON CONFLICT (user_id) DO NOTHING""")
    db.execute(f"""
        INSERT INTO gcmon_membership (user_id, queue_ids, gen)
        SELECT 'user-' || lpad(u::text, 5, '0'), '["7b1e8f2a-0c3d-4e5f-9a8b-1c2d3e4f5a6b"]', 1
        FROM generate_series(0, {agents - 1}) AS u ON CONFLICT (user_id) DO NOTHING""")
    db.execute(";\n".join((BUMP_EPOCH, STAMP_AGENTS, STAMP_MEMBERSHIP)))
    db.execute("ANALYZE")
    deep = db.rows("SELECT event_at, id FROM gcmon_history ORDER BY event_at DESC, id DESC "
                   f"LIMIT 1 OFFSET {max(rows - 10000, 0)}")
    return [int(v) for v in deep[0]] if deep else None


def wrk(url, duration=DURATION):
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", url],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=True,
                         timeout=duration + 60).stdout.decode()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError(f"{url}: {bad.group(1)} error responses\n{out}")
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return rps, float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")


def board_latency(h, headers=None):
    times = []
    size = 0
    for _ in range(BOARD_REQUESTS):
        t0 = time.perf_counter()
        r = h.get("/gcmon/api/v1/agents", headers=headers or {})
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status in (200, 304), r
        size = len(r.body)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], size


def run(database="sqlite3"):
    if not shutil.which("wrk"):
        print("history: SKIPPED (wrk is not installed: apt-get install wrk)")
        return
    label = "history" if database == "sqlite3" else "history (PostgreSQL)"
    board_label = "board" if database == "sqlite3" else "board (PostgreSQL)"
    # As docs/api.md advises: one database connection per request thread.
    h = Httpd(gcmon_conf="", threads_per_child=THREADS, start_servers=SERVERS,
              extra_conf=f"DBDMin 0\nDBDKeep {THREADS}\nDBDMax {THREADS}\n",
              database=database)
    try:
        h.start()
        assert h.get("/gcmon/api/v1/agents").status == 200      # creates the schema
        t0 = time.monotonic()
        if database == "pgsql":
            deep = _seed_pg(h.db, ROWS, AGENTS)
        else:
            deep = Bg(h._user, _seed, os.path.join(h.data_dir, "gcmon.db"), ROWS,
                      AGENTS).join(timeout=1800)
        seeded = time.monotonic() - t0
        base = f"http://127.0.0.1:{h.port}"
        first = h.get(HISTORY)
        assert first.status == 200 and first.json["total"] == ROWS, first
        static = os.path.join(h.root, "htdocs", "page.json")
        with open(static, "wb") as f:
            f.write(first.body)
        os.chmod(static, 0o644)
        # Page 5,000 (offset 99,980), or the middle page of a smaller database (QUICK=1).
        page = min(5000, max(ROWS // 40, 1))
        offset_url = f"{HISTORY}?offset={(page - 1) * 20}"
        deep_url = f"{HISTORY}?cursor={cursor(*deep)}"
        for u in (offset_url, deep_url):
            r = h.get(u)
            assert r.status == 200 and len(r.json["data"]) == 20, r
        # Warm every connection (prepared statements, totals) before measuring.
        wrk(base + HISTORY, duration=2)
        print(f"{label}: database {ROWS:,} rows + {AGENTS:,} agents (seeded in {seeded:.0f} s); "
              f"page {len(first.body):,} bytes; wrk -t2 -c{CONNECTIONS} -d{DURATION}s")
        s_rps, s_p99 = wrk(base + "/page.json")
        print(f"{label}: static file of the same size: {s_rps:,.0f} req/s (p99 {s_p99:.1f} ms)")
        hlabel = label
        for what, url, target in (("first page", HISTORY, True),
                                   (f"page {page:,} by offset", offset_url, False),
                                   ("deep cursor page (row ~%s)" % f"{max(ROWS - 10000, 0):,}",
                                    deep_url, True)):
            rps, p99 = wrk(base + url)
            ratio = rps / s_rps
            verdict = ""
            if target:
                verdict = " (target >= 50%) " + ("OK" if ratio >= 0.5 else "BELOW TARGET")
            print(f"{hlabel}: {what}: {rps:,.0f} req/s = {ratio:.0%} of static "
                  f"(p99 {p99:.1f} ms){verdict}")
        p50, p95, size = board_latency(h)
        print(f"{board_label}: GET /v1/agents, {AGENTS:,} agents ({size / 1e6:.1f} MB): p50 {p50:.1f} ms, "
              f"p95 {p95:.1f} ms (target <= 50 ms) {'OK' if p95 <= 50 else 'ABOVE TARGET'}")
        etag = h.get("/gcmon/api/v1/agents").header("etag")
        p50, p95, _ = board_latency(h, {"If-None-Match": etag})
        print(f"{board_label}: GET /v1/agents answered 304 (If-None-Match) with no holder on this "
              f"server (the generation is one row read): p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    finally:
        h.cleanup()


if __name__ == "__main__":
    run()
