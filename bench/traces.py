#!/usr/bin/env python3
"""Flow execution traces at 100 at once (issue 15 "Measure"), called by bench/run.py
(`bench/run.py traces` or `make bench-traces` alone).

The Genesys Cloud emulator holds T flows (default 100), each with one scripted instance
whose execution has 20-50 items (some nested) and whose Genesys download job answers
`Success` on its N-th poll (job_polls, default 4). A real apache2 runs gcmon streaming
(`GcmonStream On`, one monitored queue, as tests/integration/test_traces.py) with
`GcmonAdminActor anonymous`, `GcmonTraceTimeout 5m` and `GcmonRateLimit 6000` (no
throttling: a trace makes N + 3 upstream requests). T threads submit one
POST /gcmon/api/v1/admin/flows/{flowId}/traces each at once (trace_depth 1, the flow's
newest execution); the bench then polls the trace listing until every trace has ended.

The poll schedule alone (shared/gc_trace_job.c, again(); shared/gc_backoff.c): a trace's
first step queries the instances and submits the job, then waits the backoff of 1
"failure"; the k-th poll that is not final waits the backoff of k. The backoff of f is
d(f) = gc_backoff_delay(GC_TRACE_POLL_MIN 1 s, GC_TRACE_POLL_MAX 30 s, f, 0): 1 s doubling
(1, 2, 4, 8, 16 s), 24 s once the doubling reaches 30 s (max - max/5 with u01 = 0); with
equal jitter the wait is d/2 + rand * d/2, in [d/2, d]. So for N polls the waits are
d(1), d(1), d(2), ..., d(N-1): for N = 4, 1 + 1 + 2 + 4 = 8 s at most, 4 s at least.
On top of that, nothing wakes the holder's job thread when a trace is submitted (the POST
may run in another process): it looks for due jobs at least once a second (gc_jobs.c,
POLL), so a trace's first step may start up to 1 s late.

Figures: wall time from the first submission to the last completion (the traces'
completed_at; also as the bench saw it), against the schedule's upper and lower bounds;
per-trace retrieval latency (created -> completed); the upstream requests per trace by
path (query, job, polls, downloads) from the emulator's request log, and how fast the job
thread got through the 100 first steps; the holder process's RSS before and after.
Target (run() returns False, bench/run.py exits 1, when missed): all T traces completed,
each with one `trace_complete` audit row (exactly once), and wall / schedule upper bound
<= 1.5.

Environment: GCMON_BENCH_TRACES (100), GCMON_BENCH_TRACE_POLLS (4),
GCMON_BENCH_DEBUG (print the error_log tail).
"""
import os
import random
import re
import sys
import tempfile
import threading
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from emulator.client import Emulator, make_execution  # noqa: E402
from httpd import Httpd, wait_for  # noqa: E402

TRACES = int(os.environ.get("GCMON_BENCH_TRACES", "100"))
POLLS = max(1, int(os.environ.get("GCMON_BENCH_TRACE_POLLS", "4")))
TARGET_RATIO = 1.5
POLL_MIN_S, POLL_MAX_S = 1.0, 30.0     # GC_TRACE_POLL_MIN, GC_TRACE_POLL_MAX
JOBS_LOOK_S = 1.0                      # gc_jobs.c POLL: the job thread looks at least this often
TIMEOUT_S = 300                        # GcmonTraceTimeout, and how long the bench waits
RATE = 6000
CLIENT_ID, CLIENT_SECRET = "gcmon-bench", "bench-secret-71ac"
QUEUE = "3948fe4a-d262-5d71-a7ce-8cd9b0d75930"     # an emulator simulation queue (SIM_QUEUES[0])
API = "/gcmon/api/v1"
QUERY = "/api/v2/flows/instances/query"
JOBS = "/api/v2/flows/instances/jobs"


def backoff(failures):
    """gc_backoff_delay(1 s, 30 s, failures, u01 = 0) in seconds, as again() asks for it."""
    if failures <= 0:
        return 0.0
    base = POLL_MIN_S
    i = 1
    while i < failures and base < POLL_MAX_S:
        base *= 2
        i += 1
    return POLL_MAX_S - POLL_MAX_S / 5 if base >= POLL_MAX_S else base


def schedule(polls):
    """The waits of one trace answering Success on poll `polls` (>= 1): after the submit
    step the backoff of 1, after the k-th poll (k < polls) the backoff of k; each wait
    jittered into [d/2, d]. Returns (lower bound, upper bound) in seconds."""
    waits = [backoff(1)] + [backoff(k) for k in range(1, polls)]
    return sum(w / 2 for w in waits), sum(waits)


def count_items(execution):
    """Execution items, nested ones included (each is a graph node)."""
    n = 0
    for item in execution:
        n += 1
        (fields,) = item.values()
        n += count_items(fields.get("execution") or [])
    return n


def execution_for(i, rng):
    """20-50 items: a started and an ended item around top-level steps, every fifth one an
    actionCallTask calling two data actions; one slowest step."""
    target = rng.randint(20, 50)
    steps, n = [], 2
    kinds = ("actionCallData", "actionDecision", "actionCallBot", "actionSetParticipantData")
    while n < target:
        k = len(steps)
        if k % 5 == 4 and target - n >= 3:
            steps.append(("actionCallTask", 50, [("actionCallData", 120), ("actionCallData", 80)]))
            n += 3
        else:
            steps.append((kinds[k % len(kinds)], 20 + rng.randint(0, 200)))
            n += 1
    return make_execution(steps=steps, slowest=rng.randrange(len(steps)), seed=f"bench-{i}")


def iso_epoch(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def proc_mem_kb(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def holder_pid(h):
    r = h.get(f"{API}/stream")
    holder = r.json.get("holder") if r.status == 200 else None
    if not holder:
        return None
    m = re.search(r":(\d+):", holder["id"])
    return int(m.group(1)) if m else None


def listing(h):
    """Every trace in the listing (paged by cursor)."""
    rows, cursor = [], None
    while True:
        r = h.get(f"{API}/admin/traces?limit=100" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status == 200, r
        rows += r.json["data"]
        cursor = r.json.get("next_cursor")
        if not cursor:
            return rows


def audit_rows(h, action):
    rows, cursor = [], None
    while True:
        r = h.get(f"{API}/admin/audit?action={action}&limit=100"
                  + (f"&cursor={cursor}" if cursor else ""))
        assert r.status == 200, r
        rows += r.json["data"]
        cursor = r.json.get("next_cursor")
        if not cursor:
            return rows


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else float("nan")


def run():
    n, polls = TRACES, POLLS
    lower, upper = schedule(polls)
    rng = random.Random(15)
    emu = Emulator(tempfile.mkdtemp(prefix="gcmon-bench-emu-"), client_id=CLIENT_ID,
                   client_secret=CLIENT_SECRET)
    emu.start()
    h = None
    try:
        flows, items = [], {}
        for i in range(n):
            fid = f"bench-flow-{i:04d}"
            execution = execution_for(i, rng)
            flows.append(fid)
            items[fid] = count_items(execution)
            emu.add_flow_instances([{"flow_id": fid, "conversation_id": f"bench-conv-{i:04d}",
                                     "execution": execution, "job_polls": polls}])
        h = Httpd(emulator_url=emu.url, start_servers=2,
                  env={"GCMON_BENCH_SECRET": CLIENT_SECRET},
                  # tests/integration/stream_helpers.py stream_conf, with the bench's client
                  gcmon_conf=f"GcmonClientID {CLIENT_ID}\n"
                             "GcmonClientSecret env:GCMON_BENCH_SECRET\n"
                             f"GcmonRateLimit {RATE}\n"
                             "GcmonRequestTimeout 5s\n"
                             "GcmonStream On\n"
                             f"GcmonMonitorQueue {QUEUE}\n"
                             "GcmonAdminActor anonymous\n"
                             f"GcmonTraceTimeout {TIMEOUT_S}s\n")
        h.start()
        pid = wait_for(lambda: holder_pid(h), timeout=30, what="a stream holder")
        time.sleep(2)                       # the holder's start-up (snapshot, socket) settles
        mem_before = proc_mem_kb(pid)
        emu.clear_requests()

        # T threads, released together; each submits one trace.
        results = [None] * n
        gate = threading.Barrier(n + 1)

        def submit(i):
            gate.wait()
            body = {"trace_depth": 1, "context_directives": {"capture_data": True},
                    "action_invocation_id": f"bench-inv-{i:04d}"}
            results[i] = h.admin("POST", f"{API}/admin/flows/{flows[i]}/traces", body=body,
                                 timeout=60)

        threads = [threading.Thread(target=submit, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        t0 = time.time()
        gate.wait()
        for t in threads:
            t.join()
        submitted = time.time() - t0
        refused = [(flows[i], r.status) for i, r in enumerate(results) if r.status != 202]
        ids = {r.json["id"]: flows[i] for i, r in enumerate(results) if r.status == 202}

        # Wait for every trace to end (the listing: one request a look).
        def ended():
            rows = [x for x in listing(h) if x["id"] in ids]
            return rows if len(rows) == len(ids) and all(
                x["status"] in ("completed", "failed") for x in rows) else None
        try:
            rows = wait_for(ended, timeout=TIMEOUT_S + 30, interval=0.1, what="every trace ended")
        except Exception as e:  # noqa: BLE001 - reported below as a failed target
            print(f"traces: not every trace ended: {e}", file=sys.stderr)
            rows = [x for x in listing(h) if x["id"] in ids]
        seen = time.time() - t0
        mem_after = proc_mem_kb(pid)
        pid_after = holder_pid(h)

        completed = [x for x in rows if x["status"] == "completed"]
        failed = [x for x in rows if x["status"] == "failed"]
        done_at = [iso_epoch(x["completed_at"]) for x in rows if x.get("completed_at")]
        wall = (max(done_at) - t0) if done_at else float("nan")
        ratio = wall / upper

        # Every trace's document: attempts (steps claimed), graph nodes, retrieval latency.
        docs = [h.get(f"{API}/admin/traces/{tid}").json for tid in ids]
        attempts = [d.get("attempts", 0) for d in docs]
        latency = [d.get("retrieval_latency_ms", 0) / 1000 for d in docs
                   if d["status"] == "completed"]
        wrong_nodes = [d["flow_id"] for d in docs if d["status"] == "completed"
                       and len(d["graph"]["nodes"]) != items[d["flow_id"]]]

        # Exactly once: one trace_complete audit row per flow (one trace each).
        audit = audit_rows(h, "trace_complete")
        per_flow = {}
        for a in audit:
            per_flow[a["target"]] = per_flow.get(a["target"], 0) + 1
        twice = sorted(f for f, c in per_flow.items() if c > 1)
        missing = sorted(f for f in ids.values() if f not in per_flow)
        once = not twice and not missing and len(audit) == len(ids)

        # Upstream requests by path (the request log holds the stream's own calls too).
        log = emu.requests()
        q = [e for e in log if e["path"] == QUERY]
        jobs = [e for e in log if e["path"] == JOBS and e["method"] == "POST"]
        pl = [e for e in log if e["path"].startswith(JOBS + "/") and e["method"] == "GET"]
        dl = [e for e in log if e["path"].startswith("/downloads/")]
        bad = [e for e in q + jobs + pl + dl if e["status"] != 200]
        per_job = {}
        for e in pl:
            per_job[e["path"]] = per_job.get(e["path"], 0) + 1
        total = len(q) + len(jobs) + len(pl) + len(dl)
        # The job thread's pace at its busiest: the first steps (query + job POST) of all
        # traces are due at once and run one after the other.
        first_span = (max(e["at"] for e in jobs) - min(e["at"] for e in q)) if jobs and q else 0.0
        first_start = (min(e["at"] for e in q) - t0) if q else float("nan")
        last_step = max((e["at"] for e in q + jobs + pl + dl), default=t0) - t0

        ok = (len(completed) == n and not refused and once and not wrong_nodes
              and ratio <= TARGET_RATIO)
        print(f"traces: {n} traces submitted at once ({submitted:.2f} s for the {n} POSTs"
              + (f", {len(refused)} refused: {refused[:3]}" if refused else ", all 202")
              + f"), each one instance of {min(items.values())}-{max(items.values())} items, "
              f"Genesys job Success on poll {polls}: {len(completed)} completed, {len(failed)} "
              f"failed; graphs with every scripted item: {len(completed) - len(wrong_nodes)}")
        print(f"traces: exactly once: {len(audit)} trace_complete audit rows for {len(ids)} "
              f"traces, {len(twice)} flows twice, {len(missing)} missing "
              f"{'OK' if once else 'FAILED'}; steps per trace (attempts) "
              f"{min(attempts)}-{max(attempts)} (find+submit, then one per poll: {polls + 1})")
        print(f"traces: the poll schedule alone ({polls} polls; waits 1 s doubling, equal "
              f"jitter): {lower:.1f}-{upper:.1f} s; plus up to {JOBS_LOOK_S:.0f} s before the job "
              f"thread sees a new trace")
        # The ratio: 1.0 would mean 100 traces finish as fast as one trace's slowest possible
        # schedule, i.e. the single job thread (one step at a time, over all traces) costs
        # nothing beyond the backoff waits; what is above 1 is the job thread's pick-up delay
        # and the traces' steps queueing behind each other on that one thread (upstream calls,
        # the SQLite step writes), plus any wait longer than the upper bound.
        print(f"traces: wall time first submission -> last completion {wall:.2f} s (seen by "
              f"the bench {seen:.2f} s); / schedule upper bound {upper:.1f} s = {ratio:.2f} "
              f"(target <= {TARGET_RATIO}) {'OK' if ratio <= TARGET_RATIO else 'ABOVE TARGET'}; "
              f"/ lower bound {lower:.1f} s = {wall / lower:.2f}")
        print(f"traces: retrieval latency per trace (created -> completed): p50 "
              f"{pct(latency, 0.5):.2f} s, p90 {pct(latency, 0.9):.2f} s, max "
              f"{max(latency, default=float('nan')):.2f} s")
        print(f"traces: upstream requests {total} = {total / max(1, len(ids)):.2f} per trace: "
              f"query {len(q)}, job {len(jobs)}, polls {len(pl)} "
              f"({min(per_job.values(), default=0)}-{max(per_job.values(), default=0)} per job), "
              f"downloads {len(dl)}; not 200: {len(bad)} (expected {polls + 3} per trace)")
        print(f"traces: job thread: first step of the first trace at +{first_start:.2f} s; the "
              f"{len(jobs)} first steps (query + job) in {first_span:.2f} s = "
              f"{first_span / max(1, len(jobs) - 1) * 1000:.0f} ms a step; last upstream "
              f"request at +{last_step:.2f} s")
        print(f"traces: holder (pid {pid}{'' if pid_after == pid else f', now {pid_after}'}) "
              f"RSS {mem_before.get('VmRSS', 0) / 1024:.1f} MB before, "
              f"{mem_after.get('VmRSS', 0) / 1024:.1f} MB after (peak "
              f"{mem_after.get('VmHWM', 0) / 1024:.1f} MB)")
        if os.environ.get("GCMON_BENCH_DEBUG"):
            print(h.read_log()[-5000:], file=sys.stderr)
        if not ok:
            why = []
            if len(completed) != n or refused:
                why.append(f"{len(completed)} of {n} completed ({len(refused)} refused, "
                           f"{len(failed)} failed: {[x.get('error') for x in failed][:3]})")
            if not once:
                why.append(f"audit rows: {len(audit)} for {len(ids)} traces")
            if wrong_nodes:
                why.append(f"{len(wrong_nodes)} graphs miss items")
            if ratio > TARGET_RATIO:
                why.append(f"ratio {ratio:.2f} > {TARGET_RATIO}")
            print("traces: FAILED: " + "; ".join(why), file=sys.stderr)
        return ok
    finally:
        if h:
            h.cleanup()
        emu.stop()


if __name__ == "__main__":
    sys.exit(0 if run() else 1)
