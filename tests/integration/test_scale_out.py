"""Scale-out: three Apache "hosts" sharing one PostgreSQL database (docs/scale-out.md).

Three httpd instances — separate ServerRoots, ports and, when we are root, host
names of their own (each runs in a UTS namespace: `unshare --uts`, so no
instance can judge another's holder by a local pid) — run the same gcmon
configuration against one PostgreSQL database, as a deployment on three hosts
would. The Genesys Cloud emulator simulates a contact centre (churn) plus a few
agents the tests drive themselves; the webhook sink stands in for Slack and for
the status webhook's receiver.

Checked: exactly one stream holder (lease row, /v1/stream, GCM2106); the
per-agent status lock across instances (same If-Match on two instances: one 200,
one 412); status-webhook deliveries queued through every instance's admin API
delivered exactly once; idle alerts raised and posted once per episode; every
instance's read API answers the same; SIGKILL of the holder's whole instance
(parent and children) moves the stream to another within 20 s, twice (3 → 2 → 1
instances), with every transition of the churn recorded (stream or resync)
against the emulator's ground truth, none twice, and nothing queued meanwhile
lost or sent twice. Failover times and exactly-once counts go to the pytest
summary (build/test-measurements-pgsql.txt).

/v1/stream and mod_status on an instance that does not hold the stream show the
holder's real state (shared through the lease row); two instances with the same
host name (containers: separate PID namespaces) never run two holders (the node
name in the lease: the host name and a random suffix per instance).

PostgreSQL only: it runs whatever DB= says (make integration-pgsql runs it)."""
import collections
import concurrent.futures
import json
import os
import re
import shutil
import time
import urllib.parse
import uuid

import pytest

import gcdb
import pgserver
from conftest import CLIENT_SECRET
from httpd import Httpd, host_wrapper, wait_for
from stream_helpers import (SIM_QUEUES, StreamDB, duplicate_rows, explain_missing,
                            missing_transitions, stream_conf, stream_status,
                            wait_converged)
from webhook_sink import WebhookSink

NAMESPACES = os.geteuid() == 0 and shutil.which("unshare") is not None
pytestmark = [
    pytest.mark.skipif(pgserver.available() is not None,
                       reason=f"PostgreSQL: {pgserver.available()}"),
    pytest.mark.skipif(not NAMESPACES, reason="needs root and unshare: each instance runs "
                       "in a UTS namespace (a host name of its own)"),
]

API = "/gcmon/api/v1"
AGENTS = 30                        # simulated, in SIM_QUEUES
CHURN = 6.0                        # their state changes per second, all together
ALERT_USERS = [f"so-alert-{i}" for i in range(1, 13)]
AVAILABLE_S = 3                    # GcmonIdleAlert Available 3s
SLACK_PATH = "/services/T000/B000/XXXX" + uuid.uuid4().hex
HOOK_PATH = "/hooks/status"
TRACE_PATH = "/hooks/trace"
TRACES = 20
HOOK_SECRET = "hook-" + uuid.uuid4().hex
HOSTS = ["gcmon-host-a", "gcmon-host-b", "gcmon-host-c"]
FAILOVER_MAX_S = 20


def conf(sink):
    return stream_conf(queues=SIM_QUEUES, users=ALERT_USERS, extra=(
        f"GcmonIdleAlert Available {AVAILABLE_S}s\n"
        "GcmonSlackWebhook env:GCMON_TEST_SLACK\n"
        f"GcmonStatusWebhook {sink.url(HOOK_PATH)}\n"
        f"GcmonTraceWebhook {sink.url(TRACE_PATH)}\n"
        "GcmonTraceTimeout 2m\n"
        "GcmonWebhookSecret env:GCMON_TEST_HOOK_SECRET\n"
        "GcmonWebhookMaxAge 10m\n"
        "GcmonAdminActor anonymous\n"))


def instance(emulator, sink, db, host):
    return Httpd(emulator_url=emulator.url, gcmon_conf=conf(sink), database=db,
                 wrapper=host_wrapper(host),
                 env={"GCMON_TEST_SECRET": CLIENT_SECRET,
                      "GCMON_TEST_SLACK": sink.url(SLACK_PATH),
                      "GCMON_TEST_HOOK_SECRET": HOOK_SECRET})


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def sink():
    s = WebhookSink().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def pgdb():
    """One database for every instance of the module (on the session's server)."""
    srv = pgserver.shared()
    db = gcdb.PgDb(srv, srv.create_database("scale_out"))
    yield db
    db.drop()


class Cluster:
    """The instances, by host name; `alive` are those not killed."""

    def __init__(self, servers):
        self.servers = dict(zip(HOSTS, servers))
        self.killed = set()

    @property
    def alive(self):
        return {h: s for h, s in self.servers.items() if h not in self.killed}

    def any(self):
        return next(iter(self.alive.values()))


@pytest.fixture(scope="module")
def cluster(emulator, sink, pgdb):
    emulator.config(heartbeat=1)
    emulator.simulate(agents=AGENTS, queues=3, churn=0)
    emulator.add_agents([{"id": u, "name": "Alert " + u, "presence": "Busy"}
                         for u in ALERT_USERS])
    servers = []
    try:
        # The first creates the schema; the others start while it already runs.
        for host in HOSTS:
            h = instance(emulator, sink, pgdb, host)
            servers.append(h)
            h.start()
        yield Cluster(servers)
    finally:
        emulator.stop_simulation()
        for h in servers:
            h.cleanup()


@pytest.fixture(scope="module")
def db(pgdb):
    return StreamDB(pgdb)


@pytest.fixture(autouse=True)
def logs_clean(request, cluster):
    """Every live instance's error_log: no unexpected [error]/crash line (the
    killed ones are checked up to their death)."""
    servers = dict(cluster.alive)
    for h in servers.values():
        h.mark_log()
    yield
    marker = request.node.get_closest_marker("allow_log")
    allow = marker.args if marker else ()
    bad = []
    for host, h in servers.items():
        bad += [f"{host}: {line}" for line in h.bad_lines(allow)]
    assert not bad, "unexpected error_log lines:\n" + "\n".join(bad)


@pytest.fixture(autouse=True)
def clean(emulator, sink):
    emulator.clear_faults()
    sink.reset_faults()
    yield
    emulator.clear_faults()
    sink.reset_faults()


# ------------------------------------------------------------------ helpers

def lease(db):
    rows = db.query("SELECT holder, expires_at, acquired_at FROM gcmon_lease "
                    "WHERE name = 'stream'")
    return rows[0] if rows else None


def host_of(holder_id):
    """"node:pid:rand" → host (the node name is the host name and the
    instance's random suffix: GcmonNodeName's default)."""
    return re.sub(r"-[0-9a-f]{8}$", "", holder_id.rsplit(":", 2)[0]) if holder_id else None


def local_holder(h):
    """This instance's /v1/stream when one of its own children holds the stream."""
    s = stream_status(h)
    if s["holder"] and s["holder"]["since"] and s["holder"]["pid"] in h.child_pids():
        return s
    return None


def holder_host(cluster, db, connected=True):
    """The live host (instance) named by the unexpired lease and, with
    connected, whose /v1/stream shows its holder connected; else None."""
    row = lease(db)
    if not row or row["expires_at"] < time.time() * 1000:
        return None
    host = host_of(row["holder"])
    h = cluster.alive.get(host)
    if h is None:
        return None
    if connected:
        s = stream_status(h)
        if not (s["connected"] and s["holder"] and s["holder"]["id"] == row["holder"]):
            return None
    return host


def monitored(emulator):
    """The agents gcmon monitors: the simulation's and the alert agents (the
    other so-* agents are only changed through the admin API)."""
    return {a["id"] for a in emulator.agents(timeline=False)
            if not a["id"].startswith("so-")} | set(ALERT_USERS)


def wait_holder(cluster, db, timeout=30, not_host=None):
    def ok():
        host = holder_host(cluster, db)
        return host if host and host != not_host else None
    return wait_for(ok, timeout=timeout, interval=0.1, what="a connected stream holder")


def gcm_lines(h, tag):
    return [x for x in h.read_log().splitlines() if f"{tag}:" in x]


def hooks_for(sink, uid):
    return [r for r in sink.requests(HOOK_PATH)
            if json.loads(r.body.decode("utf-8")).get("user_id") == uid]


def slack_posts(sink, uid):
    return [r for r in sink.requests(SLACK_PATH) if uid.encode() in r.body]


def put_status(h, uid, status, if_match=None):
    hd = {"If-Match": if_match} if if_match else {}
    return h.admin("PUT", f"{API}/admin/agents/{uid}/status", body={"status": status},
                   headers=hd)


def new_agent(emulator, prefix, presence="Available"):
    uid = f"so-{prefix}-{uuid.uuid4().hex[:8]}"
    emulator.add_agents([{"id": uid, "name": "Agent " + uid, "presence": presence}])
    return uid


def enter(emulator, uid, presence):
    r = emulator.set_state(uid, presence=presence)
    assert r["changed"], r
    return r


def outbox_exactly_once(db, sink):
    """Every outbox row delivered, and the multiset of bodies the sink accepted
    (2xx) equal to the multiset of delivered rows' bodies: nothing sent twice,
    nothing sent that was not queued. Returns (rows, accepted posts)."""
    rows = db.query("SELECT id, target, status, body FROM gcmon_outbox ORDER BY id")
    posts = [r for r in sink.requests() if r.ok and r.path in (SLACK_PATH, HOOK_PATH, TRACE_PATH)]
    want = collections.Counter(r["body"] for r in rows if r["status"] == "delivered")
    got = collections.Counter(p.body.decode("utf-8") for p in posts)
    return rows, posts, want, got


def wait_outbox_drained(db, timeout=30):
    wait_for(lambda: db.query("SELECT count(*) AS n FROM gcmon_outbox "
                              "WHERE status <> 'delivered'")[0]["n"] == 0,
             timeout=timeout, interval=0.2, what="every outbox row delivered")


def read_views(h):
    """What one instance's read API answers: history (every row, by cursor),
    the board (without the clock's fields) and the alerts."""
    def walk(path):
        out, cursor = [], None
        while True:
            q = {"limit": 100}
            if cursor:
                q["cursor"] = cursor
            r = h.get(f"{API}/{path}?" + urllib.parse.urlencode(q))
            assert r.status == 200, r
            out += r.json["data"]
            cursor = r.json["next_cursor"]
            if not cursor:
                return out
    r = h.get(f"{API}/agents")
    assert r.status == 200, r
    board = [{k: v for k, v in a.items() if k != "seconds_in_state"} for a in r.json["data"]]
    return {"history": walk("agent-status/history"), "board": board, "board_etag":
            r.header("etag"), "alerts": walk("alerts")}


def churn_for(emulator, n):
    target = emulator.stats()["state_changes"] + n
    wait_for(lambda: emulator.stats()["state_changes"] >= target, timeout=n / CHURN * 4 + 10,
             what=f"{n} more state changes")


# ------------------------------------------------------------------ one holder

def test_exactly_one_holder(cluster, db, report):
    host = wait_holder(cluster, db)
    row = lease(db)
    # Hosts that do not hold it name the same holder, and are not connected.
    for name, h in cluster.alive.items():
        s = stream_status(h)
        assert s["enabled"] is True
        assert s["holder"] and s["holder"]["id"] == row["holder"], (name, s, row)
        if name != host:
            assert not local_holder(h), (name, s)
    # Exactly one process ever took the stream (GCM2106) since the start.
    took = {name: gcm_lines(h, "GCM2106") for name, h in cluster.alive.items()}
    assert sum(len(v) for v in took.values()) == 1, took
    assert took[host] and row["holder"] in took[host][0], (took, row)
    assert local_holder(cluster.servers[host]), host
    report(f"scale-out: {len(cluster.alive)} instances (hosts {', '.join(cluster.alive)}) on "
           f"one PostgreSQL database: one holder ({host})")


# ------------------------------------------------------------------ the status lock

def test_status_lock_holds_across_instances(cluster, emulator):
    """The same If-Match on two instances at once: the first PATCH takes a
    second, the second PUT arrives while the first instance holds the agent's
    lock (a lease row in the shared database): one 200, one 412."""
    a, b = list(cluster.alive.values())[:2]
    uid = new_agent(emulator, "race")
    r = a.get(f"{API}/admin/agents/{uid}/status")
    assert r.status == 200, r
    etag = r.json["etag"]
    emulator.clear_requests()
    emulator.fault(rf"^/api/v2/users/{uid}/presences/purecloud$", delay=1.0, count=1,
                   method="PATCH")
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        fa = ex.submit(put_status, a, uid, "Break", etag)
        time.sleep(0.2)                 # a's PUT holds the lock (it waits on the PATCH)
        fb = ex.submit(put_status, b, uid, "Meal", etag)
        res = [fa.result(), fb.result()]
    assert sorted(r.status for r in res) == [200, 412], res
    won = next(r for r in res if r.status == 200).json
    assert emulator.agent(uid)["presence"] == won["status"]
    patches = emulator.requests(path=rf"^/api/v2/users/{uid}/presences/purecloud$",
                                method="PATCH")
    assert len(patches) == 1, patches


def test_changes_serialised_across_instances(cluster, emulator):
    """Without If-Match, two changes of one agent through two instances run one
    after the other: the second reads what the first wrote."""
    a, b = list(cluster.alive.values())[:2]
    uid = new_agent(emulator, "serial")
    emulator.clear_requests()
    emulator.fault(rf"^/api/v2/users/{uid}/presences/purecloud$", delay=1.0, count=1,
                   method="PATCH")
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        fa = ex.submit(put_status, a, uid, "Break")
        time.sleep(0.2)
        fb = ex.submit(put_status, b, uid, "Meal")
        res = [fa.result(), fb.result()]
    assert [r.status for r in res] == [200, 200], res
    first, second = sorted((r.json for r in res),
                           key=lambda x: x["previous_status"] != "Available")
    assert first["previous_status"] == "Available", (first, second)
    assert second["previous_status"] == first["status"], (first, second)
    assert emulator.agent(uid)["presence"] == second["status"]


# ------------------------------------------------------------------ exactly once

def test_status_webhooks_exactly_once(cluster, db, sink, emulator, report):
    """Status changes through every instance's admin API: each queued once (by
    the instance that served the PUT), delivered once (by the holder)."""
    uids = []
    for name, h in cluster.alive.items():
        for _ in range(3):
            uid = new_agent(emulator, "hook")
            r = put_status(h, uid, "Break")
            assert r.status == 200, (name, r)
            uids.append(uid)
    wait_for(lambda: all(hooks_for(sink, u) for u in uids), timeout=15,
             what="every status webhook delivered")
    wait_outbox_drained(db)
    time.sleep(1.5)                     # bounded: the outbox looks every second
    counts = {u: len(hooks_for(sink, u)) for u in uids}
    assert set(counts.values()) == {1}, counts
    rows = [r for r in db.query("SELECT body, status FROM gcmon_outbox WHERE target = "
                                "'status'") if json.loads(r["body"])["user_id"] in uids]
    assert len(rows) == len(uids) and {r["status"] for r in rows} == {"delivered"}, rows
    report(f"scale-out: status webhooks queued through {len(cluster.alive)} instances: "
           f"{len(uids)} queued, {sum(counts.values())} delivered")


def test_traces_run_once_across_instances(cluster, db, sink, emulator, report):
    """20 traces queued through every instance: the holder's job thread runs
    each exactly once (one Genesys download job, one completion audit row, one
    webhook); every instance serves the same result."""
    from emulator.client import make_execution
    flows = []
    for i in range(TRACES):
        fid = f"so-flow-{uuid.uuid4().hex[:10]}"
        emulator.add_flow_instances([{"flow_id": fid, "job_polls": 1,
                                      "execution": make_execution(seed=fid)}])
        flows.append(fid)
    hosts = list(cluster.alive.values())
    body = {"trace_depth": 1, "context_directives": {"capture_data": True}}
    ids = {}
    for i, fid in enumerate(flows):
        r = hosts[i % len(hosts)].request("POST", f"{API}/admin/flows/{fid}/traces", body=body,
                                          headers={"Content-Type": "application/json",
                                                   "X-Gcmon-Request": "1"})
        assert r.status == 202, r
        ids[fid] = r.json["id"]

    def done():
        got = {}
        for fid, tid in ids.items():
            r = hosts[0].get(f"{API}/admin/traces/{tid}")
            if r.json["status"] not in ("completed", "failed"):
                return None
            got[fid] = r.json
        return got
    results = wait_for(done, timeout=90, what="every trace ended")
    assert {t["status"] for t in results.values()} == {"completed"}, results
    for fid, tid in ids.items():          # the same on every instance
        for h in hosts[1:]:
            assert h.get(f"{API}/admin/traces/{tid}").json["bottleneck"] == \
                results[fid]["bottleneck"]
    jobs = collections.Counter(
        json.loads(x["body"])["ids"][0] for x in emulator.requests(method="POST")
        if x["path"] == "/api/v2/flows/instances/jobs")
    inst = {i["id"]: i["flow_id"] for i in emulator.flow_instances()}
    per_flow = collections.Counter(inst[i] for i in jobs.elements() if i in inst)
    assert all(per_flow[f] == 1 for f in flows), per_flow
    audits = db.query("SELECT target FROM gcmon_audit WHERE action = 'trace_complete'")
    per_audit = collections.Counter(r["target"] for r in audits)
    assert all(per_audit[f] == 1 for f in flows), per_audit
    wait_for(lambda: len([x for x in sink.requests(TRACE_PATH) if x.ok]) >= TRACES, timeout=30,
             what="every trace webhook")
    hooks = collections.Counter(json.loads(x.body)["flowId"] for x in sink.requests(TRACE_PATH)
                                if x.ok)
    assert all(hooks[f] == 1 for f in flows), hooks
    report(f"scale-out: {TRACES} traces queued through {len(hosts)} instances: each run once "
           f"(download jobs {sum(per_flow.values())}, completions audited "
           f"{sum(per_audit[f] for f in flows)}, webhooks {sum(hooks[f] for f in flows)})")


def test_idle_alerts_once_per_episode(cluster, db, sink, emulator, report):
    users = ALERT_USERS[:3]
    for u in users:
        enter(emulator, u, "Available")
    wait_for(lambda: all(any(p.ok for p in slack_posts(sink, u)) for u in users),
             timeout=AVAILABLE_S + 10, what="one Slack post per agent")
    time.sleep(2.0)                     # bounded: a second raise would follow quickly
    for u in users:
        posts = slack_posts(sink, u)
        assert len(posts) == 1 and posts[0].ok, [(p.at, p.status) for p in posts]
        rows = db.query("SELECT seq, episode_at FROM gcmon_alerts WHERE user_id = ?", (u,))
        assert len(rows) == 1, rows
    for u in users:
        enter(emulator, u, "Busy")
    report(f"scale-out: idle alerts in steady state: {len(users)} episodes, "
           f"{sum(len(slack_posts(sink, u)) for u in users)} Slack posts")


# ------------------------------------------------------------------ the same answers

def test_read_api_same_on_every_instance(cluster, db, emulator):
    """Churn, stop, and every instance serves the same history, board and alerts
    (eventually: an alert may still come due right after the churn stops)."""
    emulator.simulate(agents=AGENTS, queues=3, churn=CHURN)
    try:
        churn_for(emulator, 20)
    finally:
        emulator.stop_simulation()
    wait_converged(db, emulator, ids=monitored(emulator), timeout=30)
    last = {}

    def same():
        nonlocal last
        last = {name: read_views(h) for name, h in cluster.alive.items()}
        first = next(iter(last.values()))
        return all(v == first for v in last.values())
    try:
        wait_for(same, timeout=15, interval=0.5, what="the same answers everywhere")
    except TimeoutError:
        keys = ("history", "board", "alerts", "board_etag")
        diff = {k: {n: (len(v[k]) if isinstance(v[k], list) else v[k])
                    for n, v in last.items()} for k in keys}
        raise AssertionError(f"instances disagree: {diff}") from None
    views = next(iter(last.values()))
    assert views["history"] and views["board"], views
    assert len(views["board"]) >= AGENTS


# ------------------------------------------------------------------ the holder elsewhere

def test_non_holder_shows_holders_state(cluster, db, emulator):
    host = wait_holder(cluster, db)
    uid = ALERT_USERS[-1]               # an event, so that there is a last one
    enter(emulator, uid, "Meeting")
    wait_for(lambda: db.current_states().get(uid) == "Meeting", timeout=10,
             what="the event stored")
    enter(emulator, uid, "Busy")
    ref = wait_for(lambda: (lambda s: s if s["last_event_at"] else None)(
        stream_status(cluster.servers[host])), timeout=5, what="the holder's last event")
    assert ref["connected"] and ref["channels"], ref
    auto_ref = cluster.servers[host].get("/server-status?auto").text
    keys = ("GcmonStreamHolder", "GcmonStreamConnected", "GcmonStreamChannels",
            "GcmonStreamChannelsConnected", "GcmonStreamAgentsMonitored")

    def shows_holder(h):
        """None until h shows the holder's state (shared at each lease renewal,
        every 3 s, read at each standby look, every 2 s); else the problems."""
        s = stream_status(h)
        auto = h.get("/server-status?auto").text
        wrong = [k for k, ok in (
            ("holder", (s["holder"] or {}).get("id") == ref["holder"]["id"]),
            ("since", (s["holder"] or {}).get("since") == ref["holder"]["since"]),
            ("connected", s["connected"] is True),
            ("channels", [c["id"] for c in s["channels"]] == [c["id"] for c in ref["channels"]]),
            ("agents_monitored", s["agents_monitored"] == ref["agents_monitored"]),
            ("last_event_at", bool(s["last_event_at"])),
            ("LastEventAge", re.search(r"^GcmonStreamLastEventAge: \d+$", auto, re.M)),
        ) if not ok]
        for key in keys:
            want = re.search(rf"^{key}: (.*)$", auto_ref, re.M)
            got = re.search(rf"^{key}: (.*)$", auto, re.M)
            if not (want and got and got.group(1) == want.group(1)):
                wrong.append(key)
        return wrong or None

    for name, h in cluster.alive.items():
        if name == host:
            continue
        last = [None]

        def converged():
            last[0] = shows_holder(h)
            return last[0] is None
        try:
            wait_for(converged, timeout=10, interval=0.2, what=f"{name} showing the holder")
        except TimeoutError:
            raise AssertionError((name, last[0], stream_status(h), ref)) from None


# ------------------------------------------------------------------ removing and adding a host

def test_remove_the_holders_host_then_add_it_back(cluster, db, emulator, report):
    """An orderly stop of the holder's host (apache2 -k stop) releases the lease:
    another host takes over at its next look (every 2 s), not after the 15 s
    expiry. Started again, the host joins as a standby; the holder stays."""
    old = wait_holder(cluster, db)
    h = cluster.servers[old]
    holder_id = lease(db)["holder"]
    t0 = time.monotonic()
    h.stop()
    cluster.killed.add(old)
    assert re.search(r"GCM2107: this process \(" + re.escape(holder_id)
                     + r"\) stopped holding the stream: stopping", h.read_log()), \
        h.read_log()[-2000:]
    new = wait_holder(cluster, db, timeout=FAILOVER_MAX_S, not_host=old)
    took = time.monotonic() - t0
    h.mark_log()
    h.start()
    cluster.killed.discard(old)
    time.sleep(4.0)                     # two of its standby looks (every 2 s)
    assert holder_host(cluster, db) == new
    assert "GCM2106" not in h.log_since_mark(), "the host added back took the stream"
    assert stream_status(h)["holder"]["id"] == lease(db)["holder"]
    wait_converged(db, emulator, ids=monitored(emulator), timeout=30)
    report(f"scale-out: orderly stop of the holder's host {old}: {new} connected as holder "
           f"after {took:.2f} s (including the stop); {old} started again as a standby")
    assert took < 10, took


# ------------------------------------------------------------------ failover

def failover_round(cluster, db, sink, emulator, report, n):
    """Churn; make the sink refuse (so no delivery is in flight at the kill: a 2xx
    received at the instant of a SIGKILL may be repeated — at least once); put
    alert agents into Available (due during the outage); SIGKILL the holder's
    whole instance; queue status changes through the survivors meanwhile; wait
    for another instance to connect as holder; then check everything."""
    old = wait_holder(cluster, db)
    alert_users = ALERT_USERS[3 + 4 * (n - 1): 3 + 4 * n]
    t_start = time.time()
    emulator.simulate(agents=AGENTS, queues=3, churn=CHURN)
    try:
        churn_for(emulator, 12)
        sink.set_down(True)
        time.sleep(0.5)                  # a delivery already sent is answered meanwhile
        for u in alert_users:
            enter(emulator, u, "Available")
        time.sleep(0.5)                  # stored by the holder before it dies
        w0, t0 = time.time(), time.monotonic()
        cluster.servers[old].kill_instance()
        cluster.killed.add(old)
        hooks = []
        for name, h in cluster.alive.items():
            uid = new_agent(emulator, f"fo{n}")
            r = put_status(h, uid, "Meeting")
            assert r.status == 200, (name, r)
            hooks.append(uid)
        moved = wait_for(lambda: holder_host(cluster, db, connected=False),
                         timeout=FAILOVER_MAX_S + 10, interval=0.1, what="the lease taken over")
        t_lease = time.monotonic() - t0
        new = wait_holder(cluster, db, timeout=FAILOVER_MAX_S + 10, not_host=old)
        t_conn, w1 = time.monotonic() - t0, time.time()
        churn_for(emulator, 18)
    finally:
        emulator.stop_simulation()
    t_end = time.time()
    sink.set_down(False)
    assert new in cluster.alive and new != old, (new, old, moved)
    wait_converged(db, emulator, ids=monitored(emulator), timeout=30)
    agents = [a for a in emulator.agents() if not a["id"].startswith("so-")]
    missing = missing_transitions(db, agents, t_start, t_end, min_duration=2.0,
                                  blackout=(w0, w1))
    lost_in_outage = len(missing_transitions(db, agents, t_start, t_end,
                                             min_duration=2.0)) - len(missing)
    changes = sum(1 for a in agents for e in a["timeline"] if t_start <= e["ts"] <= t_end)
    # Everything queued before and during the outage, delivered exactly once.
    wait_for(lambda: all(hooks_for(sink, u) for u in hooks), timeout=30,
             what="status webhooks queued during the failover delivered")
    wait_for(lambda: all(any(p.ok for p in slack_posts(sink, u)) for u in alert_users),
             timeout=30, what="alerts due during the failover posted")
    wait_outbox_drained(db)
    time.sleep(2.0)                      # bounded: a duplicate would follow within seconds
    rows, posts, want, got = outbox_exactly_once(db, sink)
    report(f"scale-out failover {n} ({old} SIGKILLed, {len(cluster.alive)} left): lease "
           f"taken by {new} after {t_lease:.2f} s, stream connected after {t_conn:.2f} s; "
           f"{changes} emulator changes in the window, missing {len(missing)}, "
           f"{lost_in_outage} state(s) ≥ 2 s began and ended inside the outage; outbox "
           f"{len(rows)} rows, {sum(got.values())} accepted posts")
    assert not missing, (f"states ≥ 2 s missing from history: {missing}; kill at {w0:.3f}, "
                         f"recovered at {w1:.3f}\n" + explain_missing(db, agents, missing))
    assert duplicate_rows(db) == []
    assert want == got, {"sent but not queued or sent twice": got - want,
                         "queued, delivered, not received": want - got}
    for u in hooks:
        assert len([p for p in hooks_for(sink, u) if p.ok]) == 1, u
    for u in alert_users:
        assert len([p for p in slack_posts(sink, u) if p.ok]) == 1, u
        assert len(db.query("SELECT id FROM gcmon_alerts WHERE user_id = ?", (u,))) == 1
    for u in alert_users:
        enter(emulator, u, "Busy")
    assert t_conn <= FAILOVER_MAX_S, f"stream moved after {t_conn:.2f} s"
    return t_lease, t_conn


@pytest.mark.allow_log(r"GCM2(102|201|2\d\d)\b")
def test_failover_after_sigkill_of_the_holders_instance(cluster, db, sink, emulator, report):
    t1 = failover_round(cluster, db, sink, emulator, report, 1)
    t2 = failover_round(cluster, db, sink, emulator, report, 2)
    report(f"scale-out: failover times (SIGKILL → connected): {t1[1]:.2f} s, {t2[1]:.2f} s")


def test_one_holder_after_failovers(cluster, db, emulator):
    host = wait_holder(cluster, db)
    assert list(cluster.alive) == [host]
    wait_converged(db, emulator, ids=monitored(emulator), timeout=30)
    assert duplicate_rows(db) == []


# ------------------------------------------------------------------ node identity

def test_same_host_name_never_two_holders(emulator, sink):
    """Two instances with one host name, the second in a PID namespace of its own
    (two containers named alike): the second must not judge the first's holder
    dead because it cannot see its pid, so the first keeps the stream."""
    srv = pgserver.shared()
    db = gcdb.PgDb(srv, srv.create_database("twins"))
    users = ALERT_USERS[:2]
    conf_ = stream_conf(users=users)
    env = {"GCMON_TEST_SECRET": CLIENT_SECRET}
    a = Httpd(emulator_url=emulator.url, gcmon_conf=conf_, env=env, database=db,
              wrapper=host_wrapper("gcmon-twin"))
    b = Httpd(emulator_url=emulator.url, gcmon_conf=conf_, env=env, database=db,
              wrapper=host_wrapper("gcmon-twin", pid_namespace=True))
    try:
        a.start()
        first = wait_for(lambda: (lambda row: row["holder"] if row else None)(lease(StreamDB(db))),
                         timeout=20, what="a holder on the first instance")
        b.start()
        holders = set()
        deadline = time.monotonic() + 12        # 4 renewals of the first holder
        while time.monotonic() < deadline:
            row = lease(StreamDB(db))
            if row:
                holders.add(row["holder"])
            time.sleep(0.1)
        took = gcm_lines(a, "GCM2106") + gcm_lines(b, "GCM2106")
        stolen = gcm_lines(b, "GCM2112") + gcm_lines(a, "GCM2112")
        assert not stolen, "a live holder's lease released as dead:\n" + "\n".join(stolen)
        assert holders == {first}, holders
        assert len(took) == 1, took
    finally:
        for h in (a, b):
            h.cleanup()
        db.drop()
