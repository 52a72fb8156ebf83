#!/usr/bin/env python3
"""Agent status changes through gcmon (SPEC §3.3), called by bench/run.py.

A real apache2 with gcmon from GCMON_BUILD and the Genesys Cloud emulator. The same
status changes are made two ways in one run:
  - direct: the bench itself does what a bare client would — GET the presence, then
    PATCH it — against the emulator (keep-alive connection);
  - gcmon: PUT /gcmon/api/v1/admin/agents/{id}/status with If-Match (gcmon adds its
    per-agent lock, the If-Match and transition checks, the audit row and the status
    webhook's outbox row, all on SQLite).
Figures: p50/p99 of each, gcmon's added latency, and the throughput of concurrent
changes of different agents. The emulator is the same for both, so the difference is
gcmon's own cost.

Environment: GCMON_BENCH_STATUS_CHANGES (400), GCMON_BENCH_STATUS_THREADS (8).
"""
import concurrent.futures
import http.client
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from emulator.client import Emulator  # noqa: E402
from httpd import Httpd  # noqa: E402

CHANGES = int(os.environ.get("GCMON_BENCH_STATUS_CHANGES", "400"))
THREADS = int(os.environ.get("GCMON_BENCH_STATUS_THREADS", "8"))
CLIENT_ID, CLIENT_SECRET = "gcmon-bench", "bench-secret-5a7e"
TARGETS = ("Break", "Available")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None, headers=None):
        self.c.request(method, path, body=json.dumps(body) if body is not None else None,
                       headers=headers or {})
        r = self.c.getresponse()
        data = r.read()
        return r.status, r.getheader("ETag"), json.loads(data) if data else None


def direct_changes(emu, token, agents, n):
    c = Conn(emu.port)
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    defs = c.call("GET", "/api/v2/presence/definitions", headers=auth)[2]["entities"]
    ids = {d["systemPresence"]: d["id"] for d in defs if d.get("type") == "System"}
    lat = []
    for i in range(n):
        uid = agents[i % len(agents)]
        t0 = time.perf_counter()
        st, _, _ = c.call("GET", f"/api/v2/users/{uid}/presences/purecloud", headers=auth)
        assert st == 200
        st, _, _ = c.call("PATCH", f"/api/v2/users/{uid}/presences/purecloud",
                          {"presenceDefinition": {"id": ids[TARGETS[i % 2]]}}, headers=auth)
        assert st == 200
        lat.append(time.perf_counter() - t0)
    return lat


def gcmon_changes(h, agents, n, etags):
    c = Conn(h.port)
    hdr = {"Content-Type": "application/json", "X-Gcmon-Request": "1"}
    lat = []
    for i in range(n):
        uid = agents[i % len(agents)]
        t0 = time.perf_counter()
        st, etag, body = c.call("PUT", f"/gcmon/api/v1/admin/agents/{uid}/status",
                                {"status": TARGETS[i % 2], "reason": "bench"},
                                {**hdr, "If-Match": etags[uid]})
        lat.append(time.perf_counter() - t0)
        assert st == 200, body
        etags[uid] = etag
    return lat


def run():
    emu = Emulator(tempfile.mkdtemp(prefix="gcmon-bench-emu-"), client_id=CLIENT_ID,
                   client_secret=CLIENT_SECRET)
    emu.start()
    h = None
    try:
        emu.add_agents([{"name": f"Agent {i}", "presence": "Available"} for i in range(64)])
        agents = [a["id"] for a in emu.agents()]
        sink = "http://127.0.0.1:9/unused"     # deliveries need a holder; only queued here
        h = Httpd(emulator_url=emu.url, start_servers=2,
                  env={"GCMON_BENCH_SECRET": CLIENT_SECRET},
                  gcmon_conf=f"GcmonClientID {CLIENT_ID}\n"
                             f"GcmonClientSecret env:GCMON_BENCH_SECRET\n"
                             f"GcmonRateLimit 100000\nGcmonStatusWebhook {sink}\n"
                             "GcmonAdminActor anonymous\n")
        h.start()
        token = emu.token()
        etags = {}

        def read_etags():                        # the direct changes move every ETag
            for uid in agents:
                etags[uid] = h.get(f"/gcmon/api/v1/admin/agents/{uid}/status").json["etag"]

        read_etags()                             # warm: tokens, definitions, connections
        gcmon_changes(h, agents, 20, etags)
        direct_changes(emu, token, agents, 20)

        direct = direct_changes(emu, token, agents, CHANGES)
        read_etags()
        gcmon = gcmon_changes(h, agents, CHANGES, etags)

        per = CHANGES // THREADS
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(THREADS) as ex:
            futs = [ex.submit(gcmon_changes, h, agents[k::THREADS], per, etags)
                    for k in range(THREADS)]
            for f in futs:
                f.result()
        conc = per * THREADS / (time.perf_counter() - t0)

        d50, d99 = pct(direct, 0.5) * 1000, pct(direct, 0.99) * 1000
        g50, g99 = pct(gcmon, 0.5) * 1000, pct(gcmon, 0.99) * 1000
        print(f"status: direct GET+PATCH to the emulator, {CHANGES} changes: p50 {d50:.1f} ms, "
              f"p99 {d99:.1f} ms")
        print(f"status: through gcmon (lock, If-Match, rules, audit + outbox row on SQLite): "
              f"p50 {g50:.1f} ms, p99 {g99:.1f} ms; gcmon adds {g50 - d50:.1f} ms at p50 "
              f"({g50 / d50:.2f}x), mean {statistics.mean(gcmon) * 1000:.1f} ms")
        print(f"status: {THREADS} clients changing different agents: {conc:,.0f} changes/s")
    except BaseException:
        if h and os.environ.get("GCMON_BENCH_DEBUG"):     # where is a stuck child?
            import subprocess
            for pid in h.child_pids():
                print(subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex",
                                      "thread apply all bt 12"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT).stdout.decode()[-20000:],
                      file=sys.stderr)
        raise
    finally:
        if h:
            h.cleanup()
        emu.stop()


if __name__ == "__main__":
    run()
