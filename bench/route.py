#!/usr/bin/env python3
"""The route decision (SPEC §8: `GET /v1/strategies/{id}/route` at >= 80 % of the requests/s
of a static file), called by bench/run.py (`bench/run.py route` or `make bench-route` alone).

One real apache2 (event MPM, 2 children of 32 threads, as bench/read.py) with both modules,
SQLite through mod_dbd, and the Genesys Cloud emulator behind it. A strategy of 5 targets (two
priority tiers, every queue with spare capacity) is created and activated through the admin
API, then its route answered from the route tables in shared memory. wrk at 32 connections, in
the same run, alternately against:
  - a static file of the same size as a route answer (the baseline),
  - GET /gcmon/api/v1/strategies/{id}/route,
twice each; the better run of each counts. Prints both requests/s and their ratio; run()
returns False (bench/run.py exits 1) below 0.80, or when any route answer was not a 200.

Environment: GCMON_BENCH_DURATION (seconds per wrk run, 10), GCMON_BENCH_SERVERS (2),
GCMON_BENCH_THREADS (32).
"""
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from emulator.client import Emulator  # noqa: E402
from httpd import Httpd, wait_for  # noqa: E402
from read import wrk  # noqa: E402

SERVERS = int(os.environ.get("GCMON_BENCH_SERVERS", "2"))
THREADS = int(os.environ.get("GCMON_BENCH_THREADS", "32"))
TARGET_RATIO = 0.80
CLIENT_ID, CLIENT_SECRET = "gcmon-bench", "bench-secret-5a7e"
API = "/gcmon/api/v1"


def strategy(emu):
    """Five target queues (a member each, spare capacity) in two tiers, and the fallback."""
    queues = [f"bench-route-q{i}" for i in range(5)] + ["bench-route-fallback"]
    emu.add_agents([{"id": f"bench-route-u{i}", "name": f"Bench Route {i}", "presence": "OnQueue",
                     "routing_status": "IDLE"} for i in range(len(queues))])
    emu.add_queues([{"id": q, "name": f"Bench route {i}", "members": [f"bench-route-u{i}"]}
                    for i, q in enumerate(queues)])
    for i, q in enumerate(queues[:5]):
        emu.set_queue_observations(q, interacting=i, waiting=0, on_queue=1)
    return {"name": "Bench route",
            "targets": [{"queue_id": q, "priority": 1 if i < 3 else 2, "weight": 1 + i,
                         "capacity": 20} for i, q in enumerate(queues[:5])],
            "fallback": {"queue_id": queues[5], "priority": 99, "weight": 1}}


def activate(h, body):
    r = h.admin("POST", f"{API}/admin/strategies", body=body)
    assert r.status == 201, r
    sid = r.json["id"]
    r = h.admin("POST", f"{API}/admin/strategies/{sid}/activate")
    assert r.status == 202, r
    wait_for(lambda: h.get(f"{API}/admin/strategies/{sid}").json["status"] == "active",
             timeout=60, what="the strategy active")
    route = f"{API}/strategies/{sid}/route"
    # Routed from the holder's observations (not the fallback of a strategy never observed).
    first = wait_for(lambda: (lambda x: x if x.status == 200 and x.json["observed_at"] else None)(
        h.get(route)), timeout=30, what="the route answered from observations")
    return route, first


def run():
    if not shutil.which("wrk"):
        print("route: SKIPPED (wrk is not installed: apt-get install wrk)")
        return None
    emu = Emulator(tempfile.mkdtemp(prefix="gcmon-bench-emu-"), client_id=CLIENT_ID,
                   client_secret=CLIENT_SECRET)
    emu.start()
    h = None
    try:
        h = Httpd(emulator_url=emu.url, threads_per_child=THREADS, start_servers=SERVERS,
                  env={"GCMON_BENCH_SECRET": CLIENT_SECRET},
                  gcmon_conf=f"GcmonClientID {CLIENT_ID}\n"
                             "GcmonClientSecret env:GCMON_BENCH_SECRET\n"
                             "GcmonRateLimit 6000\n"
                             "GcmonAdminActor anonymous\n")
        h.start()
        route, first = activate(h, strategy(emu))
        doc = first.json
        static = os.path.join(h.root, "htdocs", "route.json")
        with open(static, "wb") as f:
            f.write(first.body)
        os.chmod(static, 0o644)
        base = f"http://127.0.0.1:{h.port}"
        assert h.get("/route.json").body == first.body
        runs = {"static": [], "route": []}
        for _ in range(2):
            runs["static"].append(wrk(base + "/route.json")[0])
            runs["route"].append(wrk(base + route)[0])
            time.sleep(0.5)
        static_rps, route_rps = max(runs["static"]), max(runs["route"])
        ratio = route_rps / static_rps if static_rps else 0.0
        ok = ratio >= TARGET_RATIO
        print(f"route: answer {len(first.body)} bytes ({doc['reason']} to {doc['queue_id']}, "
              f"5 targets in 2 tiers), wrk 32 connections, "
              f"{SERVERS} children x {THREADS} threads")
        print(f"route: static file {static_rps:,.0f} req/s; GET /v1/strategies/{{id}}/route "
              f"{route_rps:,.0f} req/s = {ratio:.0%} of static (target >= 80%) "
              f"{'OK' if ok else 'BELOW TARGET'}")
        return ok
    finally:
        if h:
            h.cleanup()
        emu.stop()


if __name__ == "__main__":
    sys.exit(0 if run() is not False else 1)
