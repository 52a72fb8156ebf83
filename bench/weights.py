#!/usr/bin/env python3
"""A routing-weight distribution under the rate limit (SPEC §8: "a weight distribution over N
members takes at most 1.05 x the time the rate limit alone imposes", and gcmon never causes a
429), called by bench/run.py (`bench/run.py weights` alone).

The Genesys Cloud emulator holds one queue of N joined members (default 500), each with the
weight skill, and enforces the limit itself: client_rate_limit = GcmonRateLimit, i.e. at most
L API requests of the OAuth client (all its tokens) in any 60 s sliding window, beyond that
429 with Retry-After. A real apache2 runs mod_gcmon_api alone (no stream, no webhook: no
background upstream work shares the budget) with GcmonRateLimit L and GcmonRequestDeadline 5m
(the directive's maximum, above the up-front estimate: ceil(n/100) + 1 + 2n + 2 requests at
60/L s each — 101 s for 500 members at 600 a minute). One POST
/gcmon/api/v1/admin/queues/{id}/weights distributes N weights summing to 1.

Figures: members, upstream requests (the response's upstream_requests, and the API requests
in the emulator's log, retries included), wall time of the POST, the time the rate limit
alone imposes, their ratio (target <= 1.05), the 429s the emulator answered (target 0), the
most requests the emulator saw in any 60 s window, and the per-request budget (60/L s).
Fails (run() returns False, bench/run.py exits 1) when the ratio is above 1.05, on any 429,
or when the distribution did not complete with every proficiency written.

Environment: GCMON_BENCH_WEIGHTS_MEMBERS (500), GCMON_BENCH_WEIGHTS_RATE (600),
GCMON_BENCH_WEIGHTS_REQUEST_TIMEOUT (GcmonRequestTimeout, e.g. 61s; unset: gcmon's default),
GCMON_BENCH_DEBUG (print the non-200 upstream requests, the response and the error_log tail).
"""
import bisect
import math
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from emulator.client import Emulator  # noqa: E402
from httpd import Httpd  # noqa: E402

MEMBERS = int(os.environ.get("GCMON_BENCH_WEIGHTS_MEMBERS", "500"))
RATE = int(os.environ.get("GCMON_BENCH_WEIGHTS_RATE", "600"))
# GcmonRequestTimeout: unset (gcmon's default, 10 s) unless given; it also bounds each
# call's wait for a rate-budget slot.
REQUEST_TIMEOUT = os.environ.get("GCMON_BENCH_WEIGHTS_REQUEST_TIMEOUT", "")
DEADLINE_S = 300                      # GcmonRequestDeadline's maximum (5m)
WINDOW_S = 60
TARGET_RATIO = 1.05
CLIENT_ID, CLIENT_SECRET = "gcmon-bench", "bench-secret-5a7e"
SKILL = "bench-weight-skill"
QUEUE = "bench-weights-queue"


def estimate_requests(n):
    """gcmon's up-front estimate (docs/api.md): members pages, observations, a read and a
    write of each member, the queue's GET and PUT."""
    return math.ceil(n / 100) + 1 + 2 * n + 2


def limit_time(requests, limit):
    """The least time the rate limit alone imposes on `requests` requests at `limit` a
    window, starting with an empty window. gcmon's budget (shared/gc_budget.h), like the
    emulator's limiter, is an exact sliding window — at most `limit` requests in any 60 s —
    so the first `limit` may go at once, request limit+1 no earlier than 60 s after the
    first, and so on: (ceil(R/L) - 1) x 60 s. It is computed from the requests actually
    made (the emulator's log, retries included: each attempt takes a slot), not from the
    estimate."""
    return (math.ceil(requests / limit) - 1) * WINDOW_S


def max_in_window(times, window=WINDOW_S):
    """The most requests whose arrival times fall in any half-open window of that length."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def weights_for(n):
    """n equal weights summing to 1 (within the validator's 1e-9); for 500 members each is
    0.002, proficiency 0.01, away from the seeded 3.0."""
    return [1 / n] * n


def run():
    n, limit = MEMBERS, RATE
    emu = Emulator(tempfile.mkdtemp(prefix="gcmon-bench-emu-"), client_id=CLIENT_ID,
                   client_secret=CLIENT_SECRET)
    emu.start()
    h = None
    try:
        users = [f"bench-w-{i:04d}" for i in range(n)]
        emu.add_skills([{"id": SKILL, "name": "Bench weight"}])
        emu.add_agents([{"id": u, "name": f"Bench Weights {i:04d}", "presence": "OnQueue",
                         "routing_status": "IDLE", "skills": [{"id": SKILL, "proficiency": 3.0}]}
                        for i, u in enumerate(users)])
        emu.add_queues([{"id": QUEUE, "name": "Bench weights", "skill_evaluation_method": "NONE",
                         "members": users}])
        h = Httpd(emulator_url=emu.url, start_servers=1, modules=("gcmon_api",),
                  env={"GCMON_BENCH_SECRET": CLIENT_SECRET},
                  gcmon_conf=f"GcmonClientID {CLIENT_ID}\n"
                             "GcmonClientSecret env:GCMON_BENCH_SECRET\n"
                             f"GcmonRateLimit {limit}\n"
                             f"GcmonRequestDeadline {DEADLINE_S}s\n"
                             + (f"GcmonRequestTimeout {REQUEST_TIMEOUT}\n" if REQUEST_TIMEOUT
                                else "") +
                             "GcmonAdminActor anonymous\n")
        h.start()
        emu.config(client_rate_limit=limit)   # from here on the emulator enforces the limit
        emu.clear_requests()
        rate_limited_before = emu.stats()["rate_limited"]
        weights = weights_for(n)
        body = {"member_weights": dict(zip(users, weights)), "overflow_threshold": 0.85,
                "utilization_target": 0.8, "projected_load": 0, "skill_id": SKILL}

        t0 = time.monotonic()
        r = h.admin("POST", f"/gcmon/api/v1/admin/queues/{QUEUE}/weights", body=body,
                    timeout=DEADLINE_S + 60)
        wall = time.monotonic() - t0

        api = emu.requests(path=r"^/api/v2/")        # the token requests do not count
        made = len(api)
        answered_429 = sum(1 for e in api if e["status"] == 429)
        rate_limited = emu.stats()["rate_limited"] - rate_limited_before
        busiest = max_in_window([e["at"] for e in api])
        span = (max(e["at"] for e in api) - min(e["at"] for e in api)) if api else 0.0
        doc = r.json if r.body else {}
        reported = doc.get("upstream_requests")
        skills = {a["id"]: {s["id"]: s for s in a["skills"]} for a in emu.agents(timeline=False)}
        wrong = [u for u, w in zip(users, weights)
                 if skills[u].get(SKILL, {}).get("proficiency") != round(5 * w, 2)]
        imposed = limit_time(made, limit)
        ratio = wall / imposed if imposed else None
        est = estimate_requests(n)

        ok = (r.status == 200 and doc.get("status") == "completed" and not wrong
              and answered_429 == 0 and rate_limited == 0
              and (ratio is None or ratio <= TARGET_RATIO))
        print(f"weights: {n} members, GcmonRateLimit {limit}"
              + (f", GcmonRequestTimeout {REQUEST_TIMEOUT}" if REQUEST_TIMEOUT else "")
              + f": HTTP {r.status} {doc.get('status') if r.status == 200 else doc.get('type')}; "
              f"{n - len(wrong)} of {n} proficiencies at their new value")
        print(f"weights: upstream requests: {reported} (response's upstream_requests), {made} "
              f"(emulator's log, retries included); estimate {est}")
        print(f"weights: wall time {wall:.2f} s (first to last upstream request {span:.2f} s); "
              f"the rate limit alone imposes (ceil({made}/{limit}) - 1) x 60 s = {imposed} s; "
              + (f"ratio {ratio:.3f} (target <= {TARGET_RATIO}) "
                 f"{'OK' if ratio <= TARGET_RATIO else 'ABOVE TARGET'}"
                 + ("" if r.status == 200 else " (of a distribution that did not complete)")
                 if ratio is not None
                 else "ratio n/a (the requests fit one window)"))
        first = min((e["at"] for e in api), default=0.0)
        when = [e["at"] - first for e in api if e["status"] == 429]
        print(f"weights: 429s answered by the emulator: {answered_429} (limiter count "
              f"{rate_limited}; target 0) {'OK' if answered_429 == rate_limited == 0 else 'FAILED'}"
              + (f", at +{min(when):.3f} .. +{max(when):.3f} s after the first upstream request"
                 if when else "")
              + f"; most requests arriving in any 60 s: {busiest}, refused ones included (limit {limit})")
        print(f"weights: per-request budget {60 / limit * 1000:.0f} ms (60 s / {limit}); up-front "
              f"estimate {est} requests = {math.ceil(est * 60 / limit)} s of budget, deadline "
              f"{DEADLINE_S} s (GcmonRequestDeadline)")
        if os.environ.get("GCMON_BENCH_DEBUG"):
            for e in api:
                if e["status"] != 200 or e is api[0] or e is api[-1]:
                    print(f"  +{e['at'] - first:8.3f} s {e['method']} {e['path']} -> {e['status']}",
                          file=sys.stderr)
            print(r.text[-3000:], file=sys.stderr)
            print(h.read_log()[-5000:], file=sys.stderr)
        if not ok:
            why = []
            if r.status != 200 or doc.get("status") != "completed":
                why.append(f"HTTP {r.status}: {doc.get('detail') or r.text[:300]}")
            if wrong:
                why.append(f"{len(wrong)} proficiencies not at their new value")
            if answered_429 or rate_limited:
                why.append(f"{max(answered_429, rate_limited)} upstream 429s")
            if ratio is not None and ratio > TARGET_RATIO:
                why.append(f"ratio {ratio:.3f} > {TARGET_RATIO}")
            print("weights: FAILED: " + "; ".join(why), file=sys.stderr)
        return ok
    finally:
        if h:
            h.cleanup()
        emu.stop()


if __name__ == "__main__":
    sys.exit(0 if run() else 1)
