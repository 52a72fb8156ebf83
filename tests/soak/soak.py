#!/usr/bin/python3
"""The soak (issue 17): one real apache2 with both modules, the Genesys Cloud emulator,
and mixed load for SOAK_SECONDS (default 600):

- reads: 32 threads, each on its own keep-alive connection, asking the read endpoints
  (history with filters and cursor pages, the board, one agent, alerts, stream, health,
  metrics);
- admin writes: one thread, 2 a second: GET the agent's status, PUT a new one with that
  ETag in If-Match (JSON, X-Gcmon-Request, Sec-Fetch-Site: same-origin, anonymous actor),
  each status change also POSTed to a status webhook sink;
- event churn: the emulator's simulation at 200 state changes a second over 200 agents in
  4 queues (gcmon monitors the queues); the emulator's per-agent timeline is the truth;
- `apache2 -k graceful` every 60 s (a third of the run when shorter than 5 minutes) and one
  SIGKILL of the stream holder half-way between two of them, around the middle.

Every 5 s it samples VmRSS and the fd count of the apache2 parent and of every child, and
marks the holder. Then it judges (docs/testing.md, "The soak", states the rules and why):
(a) no growth trend, (b) no error lines, (c) no lost transition against the emulator's
truth, (d) every request got a valid answer and none hung. Exit status 1 with the reasons
when one fails. Output: build/soak/samples.csv, build/soak/summary.txt (the figures),
build/soak/error_log (the server's).

    /usr/bin/python3 tests/soak/soak.py [--seconds N] [--db sqlite3|pgsql]   (make soak)
"""
import argparse
import csv
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
REPO = os.path.dirname(TESTS)
sys.path.insert(0, TESTS)
sys.path.insert(0, os.path.join(TESTS, "integration"))

AGENTS = 200
QUEUES = 4
CHURN = 200.0               # state changes a second, in the emulator
READERS = 32
ADMIN_RATE = 2.0            # admin status changes a second
SAMPLE_EVERY = 5.0
GRACEFUL_EVERY = 60.0
API = "/gcmon/api/v1"
HOOK_PATH = "/hooks/status"
STATUSES = ["Available", "Away", "Busy", "Break", "Meal", "Meeting", "Training", "OnQueue"]
STATES = ["Available", "Away", "Busy", "Break", "Meal", "Meeting", "Training", "Offline",
          "IDLE", "INTERACTING", "COMMUNICATING", "NOT_RESPONDING"]

# Verdict (a): ceilings of the least-squares slopes over the second half of the run.
RSS_CEILING_KIB_MIN = 1024          # 1 MiB/min: parent, holder and children per generation
FD_CEILING_MIN = 1.0                # fds other than the client connections
LIFE_RSS_CEILING_KIB_MIN = 4096     # within a child's life after its warm-up
CHILD_WARMUP = 30.0                 # a child's first seconds (thread stacks, caches)
FULL_CYCLE = 45.0                   # a child that lived (nearly) a whole graceful cycle
SEED_ROWS = 100000                  # history rows older than the run, before the load
# Verdict (c): events the closing side may have had in flight when it closed a socket on
# a graceful restart, or the holder's unflushed writer queue at a SIGKILL (seconds).
CLOSE_MARGIN = 0.5
KILL_MARGIN = 1.0
# Verdict (d): an answer slower than this is a hang.
HANG_SECONDS = 30


def log(msg):
    sys.stdout.write(time.strftime("%H:%M:%S ") + msg + "\n")
    sys.stdout.flush()


def slope_per_min(points):
    """Least-squares slope of [(t_seconds, value)] per minute; None for < 3 points."""
    if len(points) < 3:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx * 60.0


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def proc_rss_kib(pid):
    """{"VmRSS", "RssAnon", "RssFile", "RssShmem"} in KiB, or None."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[key] = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return out if "VmRSS" in out else None


def proc_fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def client_socket_inodes(port):
    """Inodes of the TCP connections accepted on the server's port (not the listener)."""
    out = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f_ = line.split()
            if int(f_[1].rsplit(":", 1)[1], 16) == port and f_[3] != "0A":
                out.add(f_[9])
    return out


def proc_client_fds(pid, inodes):
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                n += 1
    except OSError:
        pass
    return n


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = {}           # endpoint -> [seconds]
        self.status = {}            # (endpoint, status) -> count
        self.errors = []            # text
        self.keepalive_retries = 0  # a reused connection the server had closed (graceful)
        self.disrupted_retries = 0  # a connection broken by a graceful restart or the SIGKILL
        self.windows = []           # [start, end] (time.time()) of each restart or kill
        self.admin = {}             # outcome -> count

    def disrupted(self, at, kill_only=False):
        """A graceful restart's or the SIGKILL's window (from the signal until 5 s after
        the new holder connected)."""
        with self.lock:
            return any(w0 <= at <= w1 for w0, w1, kind in self.windows
                       if kind == "kill" or not kill_only)

    def ok(self, endpoint, status, seconds):
        with self.lock:
            self.latency.setdefault(endpoint, []).append(seconds)
            self.status[(endpoint, status)] = self.status.get((endpoint, status), 0) + 1

    def error(self, text):
        with self.lock:
            if len(self.errors) < 200:
                self.errors.append(time.strftime("%H:%M:%S ") + text)
            else:
                self.errors.append("…")
                del self.errors[-1]


class Reader(threading.Thread):
    """One keep-alive connection asking read endpoints until stopped."""

    def __init__(self, n, port, agent_ids, stats, stop):
        super().__init__(daemon=True, name=f"reader-{n}")
        self.port, self.ids, self.stats, self.stop = port, agent_ids, stats, stop
        self.rng = random.Random(n)
        self.conn = None
        self.used = False
        self.cursor = None

    def connect(self):
        if self.conn:
            self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HANG_SECONDS)
        self.used = False

    def pick(self):
        r, ids = self.rng.random(), self.ids
        if self.cursor and r < 0.15:
            path, self.cursor = f"{API}/agent-status/history?limit=50&cursor={self.cursor}", None
            return "history(cursor)", path
        if r < 0.35:
            q = {"limit": self.rng.choice([20, 50, 100])}
            if self.rng.random() < 0.5:
                q["user_id"] = self.rng.choice(ids)
            if self.rng.random() < 0.3:
                q["state"] = self.rng.choice(STATES)
            if self.rng.random() < 0.3:
                q["from"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
            return "history", f"{API}/agent-status/history?" + urllib.parse.urlencode(q)
        if r < 0.55:
            return "board", f"{API}/agents"
        if r < 0.70:
            return "agent", f"{API}/agents/{self.rng.choice(ids)}"
        if r < 0.80:
            return "alerts", f"{API}/alerts?limit=20"
        if r < 0.88:
            return "stream", f"{API}/stream"
        if r < 0.95:
            return "health", f"{API}/health"
        return "metrics", f"{API}/metrics"

    def one(self, endpoint, path):
        """(status, body, seconds); raises on a transport failure."""
        t0 = time.monotonic()
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        body = resp.read()
        self.used = True
        if (resp.getheader("Connection") or "").lower() == "close":
            self.connect()
        return resp.status, resp.getheader("Content-Type") or "", body, time.monotonic() - t0

    def run(self):
        self.connect()
        while not self.stop.is_set():
            endpoint, path = self.pick()
            reused = self.used
            try:
                status, ctype, body, secs = self.one(endpoint, path)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                # Closed or reset before any answer: the server closed an idle keep-alive
                # connection (any HTTP client reconnects and retries), or a graceful restart
                # or the SIGKILL broke it; a GET is retried once on a fresh connection. Any
                # other such failure is an error.
                if reused:
                    kind = "keepalive_retries"
                elif self.stats.disrupted(time.time()):
                    kind = "disrupted_retries"
                else:
                    self.stats.error(f"{endpoint}: fresh connection failed: {e!r}")
                    self.connect()
                    continue
                with self.stats.lock:
                    setattr(self.stats, kind, getattr(self.stats, kind) + 1)
                self.connect()
                try:
                    status, ctype, body, secs = self.one(endpoint, path)
                except Exception as e2:  # noqa: BLE001
                    self.stats.error(f"{endpoint}: retry on a fresh connection failed: {e2!r}")
                    self.connect()
                    continue
            except Exception as e:  # noqa: BLE001 - timeouts (hangs) and the rest
                self.stats.error(f"{endpoint} {path}: {e!r}")
                self.connect()
                continue
            if status != 200:
                self.stats.error(f"{endpoint} {path}: HTTP {status} {body[:200]!r}")
                continue
            try:
                if endpoint == "metrics":
                    assert ctype.startswith("text/plain") and b"gcmon_" in body
                else:
                    assert ctype.startswith("application/json"), ctype
                    doc = json.loads(body)
                    if endpoint.startswith("history"):
                        assert isinstance(doc["data"], list)
                        if doc.get("next_cursor") and self.rng.random() < 0.5:
                            self.cursor = doc["next_cursor"]
            except (AssertionError, ValueError, KeyError) as e:
                self.stats.error(f"{endpoint} {path}: invalid answer {e!r}: {body[:200]!r}")
                continue
            self.stats.ok(endpoint, status, secs)
        self.conn.close()


class AdminWriter(threading.Thread):
    """Agent status changes through the admin API: GET (the ETag), PUT with If-Match.
    A fresh connection per request (a PUT is never replayed)."""

    ALLOWED = {200, 409, 412, 503}

    def __init__(self, port, agent_ids, stats, stop):
        super().__init__(daemon=True, name="admin")
        self.port, self.ids, self.stats, self.stop = port, agent_ids, stats, stop
        self.rng = random.Random(17)
        self.changed = 0

    def call(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HANG_SECONDS)
        try:
            t0 = time.monotonic()
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, r.getheader("Content-Type") or "", data, time.monotonic() - t0
        finally:
            conn.close()

    def count(self, outcome):
        with self.stats.lock:
            self.stats.admin[outcome] = self.stats.admin.get(outcome, 0) + 1

    def run(self):
        next_at = time.monotonic()
        while not self.stop.is_set():
            next_at += 1.0 / ADMIN_RATE
            self.stop.wait(max(0.0, next_at - time.monotonic()))
            if self.stop.is_set():
                break
            uid = self.rng.choice(self.ids)
            path = f"{API}/admin/agents/{uid}/status"
            try:
                st, ctype, data, secs = self.call("GET", path)
                if st != 200:
                    self.stats.error(f"admin GET {uid}: HTTP {st} {data[:200]!r}")
                    continue
                self.stats.ok("admin GET", st, secs)
                etag = json.loads(data)["etag"]
                body = json.dumps({"status": self.rng.choice(STATUSES),
                                   "reason": "soak", "wrapup_code": None})
                st, ctype, data, secs = self.call("PUT", path, body, {
                    "Content-Type": "application/json", "X-Gcmon-Request": "1",
                    "Sec-Fetch-Site": "same-origin", "If-Match": etag})
            except (http.client.RemoteDisconnected, ConnectionResetError) as e:
                # The child serving it was the SIGKILLed holder: no answer can come. Only
                # then (a graceful restart lets requests finish): any other is an error.
                if self.stats.disrupted(time.time(), kill_only=True):
                    self.count("broken by the SIGKILL")
                else:
                    self.stats.error(f"admin {uid}: {e!r}")
                continue
            except Exception as e:  # noqa: BLE001
                self.stats.error(f"admin {uid}: {e!r}")
                continue
            if st not in self.ALLOWED:
                self.stats.error(f"admin PUT {uid}: HTTP {st} {data[:300]!r}")
                continue
            if st != 200:
                # 409 status_change_in_progress, 412 precondition_failed (the simulation
                # moved the agent since our GET), 503 upstream: documented problems.
                try:
                    doc = json.loads(data)
                    assert ctype == "application/problem+json", ctype
                    assert doc["status"] == st and doc["type"].startswith("urn:gcmon:problem:")
                except (AssertionError, ValueError, KeyError) as e:
                    self.stats.error(f"admin PUT {uid}: {st} not a problem: {e!r} {data[:200]!r}")
                    continue
                self.count(f"{st} {doc['type'].rsplit(':', 1)[1]}")
            else:
                self.changed += 1
                self.count("200")
            self.stats.ok("admin PUT", st, secs)


# --------------------------------------------------------------------------- the run

def gcmon_conf(queues, sink_url, client_id):
    return "\n".join([
        f"GcmonClientID {client_id}",
        "GcmonClientSecret env:GCMON_TEST_SECRET",
        "GcmonRateLimit 6000",
        "GcmonRequestTimeout 5s",
        "GcmonStream On",
        *[f"GcmonMonitorQueue {q}" for q in queues],
        "GcmonAdminActor anonymous",
        f"GcmonStatusWebhook {sink_url}",
        "GcmonWebhookSecret env:GCMON_TEST_HOOK_SECRET",
        "GcmonIdleAlert Available 10s",
        "GcmonIdleAlert IDLE 10s",
        "DBDMax 32",
    ]) + "\n"


def stream_status(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", f"{API}/stream")
        r = conn.getresponse()
        data = r.read()
        return json.loads(data) if r.status == 200 else None
    finally:
        conn.close()


def holder_connected(port, agents, not_pid=None):
    def ok():
        s = stream_status(port)
        if s and s["connected"] and s["holder"] and s["holder"]["pid"] != not_pid \
                and s["agents_monitored"] == agents:
            return s
        return None
    return ok


class Sampler:
    """RSS and fds of the parent and every child every SAMPLE_EVERY seconds."""

    def __init__(self, httpd, t0):
        self.httpd, self.t0 = httpd, t0
        self.rows = []              # dicts
        self.first_seen = {}        # pid -> (t, generation)
        self.generation = 0         # graceful restarts done

    def sample(self, holder_pid):
        t = round(time.time() - self.t0, 1)
        parent = self.httpd.proc.pid
        pids = [(parent, "parent")] + [(p, "child") for p in self.httpd.child_pids()]
        inodes = client_socket_inodes(self.httpd.port)
        for pid, role in pids:
            mem, fds = proc_rss_kib(pid), proc_fd_count(pid)
            if mem is None or fds is None:
                continue
            rss = mem["VmRSS"]
            clients = proc_client_fds(pid, inodes)
            if pid not in self.first_seen:
                self.first_seen[pid] = (t, self.generation if role == "child" else 0)
            born, gen = self.first_seen[pid]
            self.rows.append({"t": t, "pid": pid, "role": role, "holder": int(pid == holder_pid),
                              "generation": gen, "age": round(t - born, 1),
                              "rss_kib": rss, "anon_kib": mem.get("RssAnon"),
                              "file_kib": mem.get("RssFile"), "shmem_kib": mem.get("RssShmem"),
                              "fds": fds, "client_fds": clients, "own_fds": fds - clients,
                              "phase": self.phase})
        return t

    phase = "steady"


def gaps_from_ws_log(ws_log, kill_at):
    """Windows [(start, end, why)] when a channel had no current socket (epoch s). The
    first close after the SIGKILL is the killed holder's: its window starts KILL_MARGIN
    before the kill; every other one CLOSE_MARGIN before the close."""
    gaps, down = [], {}
    kill_close = None
    for e in ws_log:
        ch = e["channel"]
        if e["event"] == "close" and e.get("current"):
            down[ch] = e["at"]
            if kill_at and kill_close is None and e["at"] >= kill_at:
                kill_close = (ch, e["at"])
        elif e["event"] == "open" and ch in down:
            start = down.pop(ch)
            if kill_close == (ch, start):
                gaps.append((kill_at - KILL_MARGIN, e["at"], "holder SIGKILL"))
            else:
                gaps.append((start - CLOSE_MARGIN, e["at"], "graceful hand-over"))
        elif e["event"] == "expired":
            down[ch] = e["at"]
    for ch, start in down.items():
        gaps.append((start, float("inf"), "never reopened"))
    return gaps


def resync_reads(requests):
    """[(at, set(ids))] of the holder's GET /api/v2/users?id=… (resync) calls."""
    out = []
    for r in requests:
        if r["method"] != "GET" or r["path"] != "/api/v2/users":
            continue
        ids = set()
        for v in r["params"].get("id", []):
            ids.update(x for x in v.split(",") if x)
        out.append((r["at"], ids))
    return sorted(out, key=lambda x: x[0])


def episodes_of(agent):
    """[(state, [ms of every timeline entry of the episode])]: an episode is a maximal run
    of one state; entries after the first (a presence set again, its message changed)
    carry the same state with a newer time."""
    from stream_helpers import ms
    out = []
    for e in agent["timeline"]:
        t = ms(e["at"])
        if out and out[-1][0] == e["state"]:
            out[-1][1].append(t)
        else:
            out.append((e["state"], [t]))
    return out


def judge_transitions(agents, history, t_from, gaps, resyncs):
    """Every truth transition from t_from on against the history rows (docs/testing.md,
    "The soak", verdict (c)).

    An episode (a maximal run of one state in the emulator's timeline) is *lost in a gap*
    when it began while no socket was open (`gaps`) and ended before the resync read that
    agent: nothing can recover it. gcmon's expected view is the timeline without those
    episodes, where neighbours of the same state merge (A, B lost, A reads as one A). Every
    episode of that view that began at or after t_from must have a history row of its agent
    and state at the time of one of its timeline entries: its first (the transition), or a
    later one (a presence set again) when the first event was lost — gcmon stamps an event
    with the later of the routing status' start and the presence's modifiedDate."""
    rows = {}
    for r in history:
        rows.setdefault((r["user_id"], r["state"]), set()).add(r["_ms"])
    entries = set()
    result = {"truth": 0, "found": 0, "found_later": 0, "same_ms": 0, "in_gap_superseded": 0,
              "merged": 0, "lost": [], "gap_found": 0}
    lo = t_from * 1000
    for a in agents:
        eps = episodes_of(a)
        for state, times in eps:
            entries.update((a["id"], state, t) for t in times)
        view = []               # [state, times, judged]
        for i, (state, times) in enumerate(eps):
            t_ms = times[0]
            judged = t_ms >= lo and i > 0
            got = rows.get((a["id"], state), set())
            if judged:
                result["truth"] += 1
                if not got.intersection(times):
                    if eps[i - 1][1][-1] == t_ms:
                        result["same_ms"] += 1       # same ms as the previous state's
                        continue
                    nxt = eps[i + 1][1][0] if i + 1 < len(eps) else None
                    lost_in_gap = False
                    for g0, g1, why in gaps:
                        if g0 * 1000 <= t_ms <= g1 * 1000:
                            # the first resync read of this agent after the socket reopened
                            r_at = next((at for at, ids in resyncs
                                         if at >= g1 and a["id"] in ids), None)
                            if nxt is not None and r_at is not None and nxt <= r_at * 1000:
                                lost_in_gap = True
                    if lost_in_gap:
                        result["in_gap_superseded"] += 1
                        continue
            if view and view[-1][0] == state:
                view[-1][1].extend(times)
                if judged:
                    result["merged"] += 1
                continue
            view.append([state, list(times), judged])
        for state, times, judged in view:
            if not judged:
                continue
            got = rows.get((a["id"], state), set())
            if times[0] in got:
                result["found"] += 1
                result["gap_found"] += any(g0 * 1000 <= times[0] <= g1 * 1000
                                           for g0, g1, _ in gaps)
            elif got.intersection(times):
                result["found_later"] += 1
            else:
                result["lost"].append((a["id"], state, times[0]))
    result["phantoms"] = [r for r in history if r["_ms"] >= lo
                          and (r["user_id"], r["state"], r["_ms"]) not in entries]
    return result


def seed_history(httpd, agent_ids, n):
    """n history rows of the soak's agents spread over the 30 days before the last hour."""
    from dbseed import Seeder
    rng = random.Random(5)
    now = int(time.time() * 1000)
    start = now - 30 * 86400 * 1000
    step = (30 * 86400 * 1000 - 3600 * 1000) // max(n, 1)
    rows = []
    for i in range(n):
        uid = agent_ids[i % len(agent_ids)]
        at = start + i * step
        state = rng.choice(STATES)
        rows.append({"user_id": uid, "user_name": None, "state": state,
                     "previous_state": None, "presence": None, "routing_status": None,
                     "event_at": at, "ingested_at": at, "source": "stream"})
    seeder = Seeder(httpd)
    for k in range(0, n, 20000):
        seeder.history(rows[k:k + 20000])


def explain_lost(lost, agents, history, resyncs, path):
    """Timeline, history and resync reads around each lost transition (build/soak/lost.txt)."""
    from stream_helpers import ms
    by_id = {a["id"]: a for a in agents}
    out = []
    for uid, state, t_ms in lost[:30]:
        out.append(f"--- {uid} {state} at {t_ms / 1000:.3f}")
        for e in by_id[uid]["timeline"]:
            if abs(ms(e["at"]) - t_ms) < 5000:
                out.append(f"  emu {ms(e['at']) / 1000:.3f} {e['state']:<14} "
                           f"{e['presence']}/{e['routing_status']} ({e['source']})")
        for r in history:
            if r["user_id"] == uid and abs(r["_ms"] - t_ms) < 5000:
                out.append(f"  db  {r['_ms'] / 1000:.3f} {r['state']:<14} {r['source']}")
        for at, ids in resyncs:
            if uid in ids and abs(at * 1000 - t_ms) < 5000:
                out.append(f"  resync read at {at:.3f}")
    out.append("resync reads: " + ", ".join(f"{at:.3f} ({len(ids)} ids)" for at, ids in resyncs))
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float,
                    default=float(os.environ.get("SOAK_SECONDS", "600")))
    ap.add_argument("--db", default=os.environ.get("SOAK_DB", "sqlite3"))
    ap.add_argument("--seed-rows", type=int, default=SEED_ROWS)
    ap.add_argument("--out", default=os.path.join(os.environ.get(
        "GCMON_BUILD", os.path.join(REPO, "build")), "soak"))
    args = ap.parse_args()
    os.environ["DB"] = args.db
    import gcdb
    import pgserver
    from conftest import CLIENT_ID, CLIENT_SECRET
    from emulator.client import Emulator
    from httpd import BAD_LINE, Httpd, wait_for
    from stream_helpers import StreamDB, converged
    from webhook_sink import WebhookSink
    gcdb.driver()
    os.makedirs(args.out, exist_ok=True)

    duration = args.seconds
    graceful_every = GRACEFUL_EVERY if duration >= 300 else duration / 3
    gracefuls = [graceful_every * k for k in range(1, int(duration / graceful_every) + 1)
                 if graceful_every * k < duration - 5]
    kill_at_rel = (int(duration / 2 / graceful_every) + 0.5) * graceful_every
    log(f"soak: {duration:.0f} s on {gcdb.driver()}, {AGENTS} agents in {QUEUES} queues, "
        f"churn {CHURN:.0f}/s, {READERS} readers, admin {ADMIN_RATE}/s, graceful at "
        f"{[round(g) for g in gracefuls]} s, holder SIGKILL at {kill_at_rel:.0f} s")

    failures = []
    workdir = tempfile.mkdtemp(prefix="gcmon-soak-")
    emu = Emulator(os.path.join(workdir, "emu"), client_id=CLIENT_ID,
                   client_secret=CLIENT_SECRET, extra_args=["--seed", "17"])
    sink = WebhookSink()
    httpd = None
    stop = threading.Event()
    threads = []
    try:
        emu.start()
        sink.start()
        sim = emu.simulate(agents=AGENTS, queues=QUEUES, churn=0)
        agent_ids = sim["agent_ids"]
        queues = [q["id"] for q in sim["queues"]]
        httpd = Httpd(emulator_url=emu.url, gcmon_conf=gcmon_conf(queues, sink.url(HOOK_PATH),
                                                                   CLIENT_ID),
                      env={"GCMON_TEST_SECRET": CLIENT_SECRET,
                           "GCMON_TEST_HOOK_SECRET": "soak-hook-secret"},
                      start_servers=2)
        httpd.start()
        port = httpd.port
        s = wait_for(holder_connected(port, AGENTS), timeout=60, interval=0.2,
                     what=f"holder connected with {AGENTS} agents")
        db = StreamDB(httpd.db)
        wait_for(lambda: not converged(db, emu), timeout=60, interval=0.5,
                 what="initial resync")
        # A database already larger than SQLite's page caches (2000 KiB per connection), as
        # in production: otherwise every generation's caches hold more of a growing
        # database than the last, and the children's RSS grows with it (docs/testing.md).
        seed_history(httpd, agent_ids, args.seed_rows)
        log(f"holder pid {s['holder']['pid']} connected, {AGENTS} agents, {args.seed_rows} "
            f"older history rows; starting the load")

        stats = Stats()
        t0 = time.time()
        sampler = Sampler(httpd, t0)
        emu.simulate(agents=AGENTS, queues=QUEUES, churn=CHURN)
        steps0 = emu.stats()["state_changes"]
        # The simulation sleeps an exponential time between steps; under load each sleep
        # overruns, so the soak measures the rate every sample and asks for more (or less).
        churn_asked, rate_at, rate_steps = CHURN, time.monotonic(), steps0
        threads = [Reader(i, port, agent_ids, stats, stop) for i in range(READERS)]
        admin = AdminWriter(port, agent_ids, stats, stop)
        threads.append(admin)
        for th in threads:
            th.start()

        holder_pid = s["holder"]["pid"]
        takeovers = []          # (kind, seconds)
        kill_at = None
        killed_pid = None
        next_sample = time.monotonic()
        pending = list(gracefuls)
        end = time.monotonic() + duration
        while time.monotonic() < end:
            rel = time.time() - t0
            if pending and rel >= pending[0]:
                pending.pop(0)
                old = holder_pid
                sampler.phase = "pre-graceful"
                sampler.sample(holder_pid)
                sampler.phase = "steady"
                g0 = time.monotonic()
                window = [time.time(), float("inf"), "graceful"]
                with stats.lock:
                    stats.windows.append(window)
                httpd.graceful(timeout=60)
                sampler.generation += 1
                st = wait_for(holder_connected(port, AGENTS, not_pid=old), timeout=60,
                              interval=0.05, what="holder after a graceful restart")
                holder_pid = st["holder"]["pid"]
                takeovers.append(("graceful", time.monotonic() - g0))
                window[1] = time.time() + 5
                log(f"graceful {sampler.generation}: holder {old} -> {holder_pid} in "
                    f"{takeovers[-1][1]:.2f} s")
            elif kill_at is None and rel >= kill_at_rel:
                st = stream_status(port)
                killed_pid = st["holder"]["pid"]
                g0 = time.monotonic()
                kill_at = time.time()
                window = [kill_at, float("inf"), "kill"]
                with stats.lock:
                    stats.windows.append(window)
                os.kill(killed_pid, signal.SIGKILL)
                st = wait_for(holder_connected(port, AGENTS, not_pid=killed_pid), timeout=60,
                              interval=0.05, what="a new holder after the SIGKILL")
                holder_pid = st["holder"]["pid"]
                takeovers.append(("SIGKILL", time.monotonic() - g0))
                window[1] = time.time() + 5
                log(f"SIGKILL of holder {killed_pid}: new holder {holder_pid} in "
                    f"{takeovers[-1][1]:.2f} s")
            if time.monotonic() >= next_sample:
                try:
                    st = stream_status(port)
                    if st and st["holder"]:
                        holder_pid = st["holder"]["pid"]
                except OSError:
                    pass
                sampler.sample(holder_pid)
                next_sample += SAMPLE_EVERY
                now_steps, now_at = emu.stats()["state_changes"], time.monotonic()
                rate = (now_steps - rate_steps) / (now_at - rate_at)
                rate_steps, rate_at = now_steps, now_at
                want = min(CHURN * 3, max(CHURN, churn_asked * CHURN / max(rate, 1.0)))
                if abs(want - churn_asked) > 0.05 * churn_asked:
                    churn_asked = want
                    emu.simulate(agents=AGENTS, queues=QUEUES, churn=churn_asked)
            time.sleep(0.1)
        sampler.phase = "end"
        sampler.sample(holder_pid)
        run_seconds = time.time() - t0

        # ---- stop the load
        stop.set()
        emu.stop_simulation()
        for th in threads:
            th.join(timeout=HANG_SECONDS + 5)
            if th.is_alive():
                failures.append(f"(d) {th.name} still waiting for an answer after "
                                f"{HANG_SECONDS + 5} s")
        steps = emu.stats()["state_changes"] - steps0

        # ---- (c) no lost transition
        try:
            wait_for(lambda: not converged(db, emu), timeout=60, interval=0.5,
                     what="current state = the emulator's")
        except TimeoutError:
            diff = converged(db, emu)
            failures.append(f"(c) {len(diff)} agents' current state differs from the "
                            f"emulator's after 60 s: {dict(list(diff.items())[:5])}")
        # Status webhooks: one delivery per successful change (at least once).
        try:
            sink.wait_count(admin.changed, timeout=60, path_prefix=HOOK_PATH)
        except TimeoutError as e:
            failures.append(f"status webhooks: {e}"[:500])
        hooks = len(sink.requests(HOOK_PATH))
        agents = emu.agents()
        history = db.history()
        ws_log = emu.ws_log()
        resyncs = resync_reads(emu.requests(path="^/api/v2/users$", method="GET"))
        gaps = gaps_from_ws_log(ws_log, kill_at)
        tr = judge_transitions(agents, history, t0, gaps, resyncs)
        if tr["lost"]:
            explain_lost(tr["lost"], agents, history, resyncs,
                         os.path.join(args.out, "lost.txt"))
            failures.append(f"(c) {len(tr['lost'])} of {tr['truth']} transitions missing from "
                            f"the history (first: {tr['lost'][:5]}); gaps {gaps}")
        if tr["phantoms"]:
            failures.append(f"(c) {len(tr['phantoms'])} history rows that match no transition "
                            f"of the emulator: {[(r['user_id'], r['state'], r['_ms'], r['source']) for r in tr['phantoms'][:5]]}")
        if tr["truth"] == 0:
            failures.append("(c) the emulator applied no transition at all")

        # ---- stop the server; (b) error lines, in error_log and logs/stdout
        httpd.stop(timeout=30)
        shutil.copy(httpd.error_log, os.path.join(args.out, "error_log"))
        bad = []
        for rel_path in ("logs/error_log", "logs/stdout"):
            for line in httpd._read(rel_path).splitlines():
                if not BAD_LINE.search(line):
                    continue
                bad.append(f"{rel_path}: {line}")
        if bad:
            failures.append(f"(b) {len(bad)} error line(s):\n  " + "\n  ".join(bad[:20]))
        killed_lines = [ln for ln in httpd.read_log().splitlines()
                        if killed_pid and f"pid {killed_pid} exit signal Killed" in ln]

        # ---- (a) growth
        rows = sampler.rows
        with open(os.path.join(args.out, "samples.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["t", "pid", "role", "holder", "generation", "age",
                                              "rss_kib", "anon_kib", "file_kib", "shmem_kib", "fds",
                                              "client_fds", "own_fds", "phase"])
            w.writeheader()
            w.writerows(rows)
        half = run_seconds / 2
        # The server total (parent + every child) at the same phase of each graceful cycle:
        # the sample just before each graceful, and the last one.
        phase_pts = []
        for t in sorted({r["t"] for r in rows if r["phase"] in ("pre-graceful", "end")}):
            at = [r for r in rows if r["t"] == t]
            phase_pts.append((t, sum(r["rss_kib"] for r in at), sum(r["fds"] for r in at)))
        parent = [r for r in rows if r["role"] == "parent"]
        parent_phase = [(r["t"], r["rss_kib"], r["fds"]) for r in parent
                        if r["phase"] in ("pre-graceful", "end")]
        growth = {}
        # Per generation, after its warm-up: at each phase point (just before a graceful,
        # and the end) the holder, and the mean of the other children that lived the whole
        # cycle (age >= FULL_CYCLE); the number of children varies (the MPM starts one
        # more under load), so sums would jump. The parent lives the whole run.
        gen_pts = {"holder rss": [], "children rss": [], "holder fds": [], "children fds": []}
        for t, _, _ in phase_pts:
            at = [r for r in rows if r["t"] == t and r["role"] == "child"]
            hold = [r for r in at if r["holder"]]
            full = [r for r in at if not r["holder"] and r["age"] >= FULL_CYCLE]
            if hold and hold[0]["age"] >= FULL_CYCLE:
                gen_pts["holder rss"].append((t, hold[0]["rss_kib"]))
                gen_pts["holder fds"].append((t, hold[0]["own_fds"]))
            if full:
                gen_pts["children rss"].append((t, statistics.fmean(r["rss_kib"] for r in full)))
                gen_pts["children fds"].append((t, statistics.fmean(r["own_fds"] for r in full)))
        for name, pts in gen_pts.items():
            growth[name] = slope_per_min([p for p in pts if p[0] >= half])
        psec = [(r["t"], r["rss_kib"], r["fds"]) for r in parent if r["t"] >= half]
        growth["parent rss"] = slope_per_min([(t, v) for t, v, _ in psec])
        growth["parent fds"] = slope_per_min([(t, v) for t, _, v in psec])
        for name in ("holder rss", "children rss", "parent rss", "holder fds", "children fds"):
            ceiling = FD_CEILING_MIN if name.endswith("fds") else RSS_CEILING_KIB_MIN
            if growth[name] is not None and growth[name] > ceiling:
                failures.append(f"(a) {name} grows {growth[name]:.1f}/min over the second half, "
                                f"generation after generation at the same phase (ceiling "
                                f"{ceiling}/min): {[(t, round(v)) for t, v in gen_pts.get(name, [])]}")
        pfds = sorted({f for t, _, f in parent_phase if t >= half})
        if len(pfds) > 1 or growth["parent rss"] is not None \
                and growth["parent rss"] > RSS_CEILING_KIB_MIN:
            failures.append(f"(a) the parent grows between graceful cycles (rss KiB, fds): "
                            f"{[(t, r_, f) for t, r_, f in parent_phase]}")
        # Within a child's life after its first 30 s: what a child leaks per request or per
        # event (a fresh child each generation: the phase points above cannot see it).
        per_child = {}
        for r in rows:
            if r["role"] == "child" and r["age"] >= CHILD_WARMUP:
                per_child.setdefault(r["pid"], []).append(r)
        life = {"rss": [], "fds": []}
        for rs in per_child.values():
            v = slope_per_min([(r["t"], r["rss_kib"]) for r in rs])
            if v is not None:
                life["rss"].append(v)
            # fds: a leaked descriptor never closes, a transient one (an upstream call, a
            # database connection being opened) does: the least of the last three samples
            # against the least of the first three.
            if len(rs) >= 4:
                life["fds"].append(min(r["own_fds"] for r in rs[-3:])
                                   - min(r["own_fds"] for r in rs[:3]))
        if life["rss"]:
            med = statistics.median(life["rss"])
            growth["within a child's life rss (median)"] = med
            if med > LIFE_RSS_CEILING_KIB_MIN:
                failures.append(f"(a) a child's RSS grows {med:.0f} KiB/min after its first "
                                f"{CHILD_WARMUP:.0f} s (median over {len(life['rss'])} "
                                f"children; ceiling {LIFE_RSS_CEILING_KIB_MIN})")
        if life["fds"]:
            med = statistics.median(life["fds"])
            growth["within a child's life fds, floor change (median)"] = med
            if med > 0:
                failures.append(f"(a) a child's fds (their floor) grow by {med} after its first "
                                f"{CHILD_WARMUP:.0f} s (median over {len(life['fds'])} "
                                f"children): {sorted(life['fds'])}")

        # ---- (d) requests
        if stats.errors:
            failures.append(f"(d) {len(stats.errors)} request(s) without a valid answer:\n  "
                            + "\n  ".join(stats.errors[:20]))
        served = sum(len(v) for v in stats.latency.values())

        # ---- figures
        def role_rows(pred):
            return [r for r in rows if pred(r)]
        lines = []
        lines.append(f"gcmon soak: {run_seconds:.0f} s, {gcdb.driver()}, {AGENTS} agents / "
                     f"{QUEUES} queues, {READERS} reader connections, admin {ADMIN_RATE}/s, "
                     f"{len(gracefuls)} graceful restarts, 1 holder SIGKILL")
        lines.append("")
        lines.append("| role | samples | RSS start | RSS end | RSS max | fds start | fds end | "
                     "fds max |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for name, pred in (("parent", lambda r: r["role"] == "parent"),
                           ("children (each)", lambda r: r["role"] == "child"),
                           ("holder", lambda r: r["holder"] == 1)):
            rs = role_rows(pred)
            if not rs:
                continue
            first_t, last_t = rs[0]["t"], rs[-1]["t"]
            start = [r for r in rs if r["t"] == first_t]
            endr = [r for r in rs if r["t"] == last_t]
            lines.append(f"| {name} | {len(rs)} | {max(r['rss_kib'] for r in start) / 1024:.1f} "
                         f"MiB | {max(r['rss_kib'] for r in endr) / 1024:.1f} MiB | "
                         f"{max(r['rss_kib'] for r in rs) / 1024:.1f} MiB | "
                         f"{max(r['fds'] for r in start)} | {max(r['fds'] for r in endr)} | "
                         f"{max(r['fds'] for r in rs)} |")
        if phase_pts:
            lines.append(f"| server total (pre-graceful) | {len(phase_pts)} | "
                         f"{phase_pts[0][1] / 1024:.1f} MiB | {phase_pts[-1][1] / 1024:.1f} MiB | "
                         f"{max(p[1] for p in phase_pts) / 1024:.1f} MiB | {phase_pts[0][2]} | "
                         f"{phase_pts[-1][2]} | {max(p[2] for p in phase_pts)} |")
        lines.append("")
        lines.append("Slopes (per minute, RSS in KiB; per generation and parent over the second half): " + ", ".join(
            f"{k} {v:+.1f}" if v is not None else f"{k} n/a" for k, v in growth.items()))
        lines.append("")
        all_lat = [x for v in stats.latency.values() for x in v]
        lines.append(f"Requests: {served} answered ({served / run_seconds:.0f}/s), "
                     f"p50 {pct(all_lat, 50) * 1000:.1f} ms, p99 {pct(all_lat, 99) * 1000:.1f} ms,"
                     f" max {max(all_lat) * 1000 if all_lat else 0:.0f} ms; "
                     f"{len(stats.errors)} without a valid answer; "
                     f"{stats.keepalive_retries} idle keep-alive connections closed by the server and "
                     f"{stats.disrupted_retries} fresh ones broken by a restart or the "
                     f"SIGKILL, retried once")
        for ep in sorted(stats.latency):
            v = stats.latency[ep]
            lines.append(f"  {ep:<16} {len(v):>8}  p50 {pct(v, 50) * 1000:7.1f} ms  "
                         f"p99 {pct(v, 99) * 1000:7.1f} ms")
        lines.append(f"Admin PUTs: {dict(sorted(stats.admin.items()))}; status webhooks "
                     f"received {hooks} for {admin.changed} changes")
        lines.append(f"Events: {steps} state changes applied by the emulator ({steps / run_seconds:.0f}/s; "
                     f"the simulation asked for {churn_asked:.0f}/s at the end), "
                     f"{tr['truth']} state transitions in the emulator's truth, "
                     f"{tr['found']} in gcmon's history at their time (agent, state, ms), "
                     f"{tr['found_later']} at a later event of the same episode, "
                     f"{tr['in_gap_superseded']} lost in a socket gap (superseded before the resync), "
                     f"{tr['merged']} merged into the same state before such a lost one, "
                     f"{tr['same_ms']} in the same ms as the agent's previous one, "
                     f"{len(tr['lost'])} lost, {len(tr['phantoms'])} phantom rows")
        lines.append("Socket gaps (s): " + ", ".join(
            f"{why} {g1 - g0:.2f}" for g0, g1, why in gaps) + f"; {tr['gap_found']} "
            f"transitions inside gaps recovered")
        lines.append("Takeovers (s): " + ", ".join(f"{k} {v:.2f}" for k, v in takeovers))
        lines.append(f"History rows: {len(history)}; the SIGKILL logged: "
                     f"{killed_lines[0].split('] ', 2)[-1] if killed_lines else 'nothing'}")
        lines.append("")
        lines.append("VERDICT: " + ("PASS" if not failures else "FAIL"))
        for f_ in failures:
            lines.append("  " + f_)
        text = "\n".join(lines) + "\n"
        with open(os.path.join(args.out, "summary.txt"), "w") as f:
            f.write(text)
        sys.stdout.write("\n" + text)
        log(f"samples: {os.path.join(args.out, 'samples.csv')}")
        return 1 if failures else 0
    finally:
        stop.set()
        if httpd is not None:
            try:
                httpd.cleanup()
            except Exception as e:  # noqa: BLE001
                log(f"cleanup: {e!r}")
        sink.stop()
        emu.stop()
        pgserver.stop_shared()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
