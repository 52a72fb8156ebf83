"""mod_gcmon_stream: one holder connects the notification channel, every transition
is stored within 1 s without duplicates, missed ones come back by resync, and the
status is visible on /v1/stream, /metrics and mod_status. No churn here: each test
drives the emulator itself."""
import os
import re
import time

import pytest

from conftest import CLIENT_SECRET
from httpd import REPO, Httpd, wait_for
from stream_helpers import (StreamDB, channel_label, duplicate_rows, emulator_channels,
                            issued_channel_ids, loud_lines_naming, stream_conf,
                            stream_status, truth, wait_connected, wait_converged)

QUEUE = "stream-q1"
MEMBERS = [f"stream-agent-{i}" for i in range(1, 5)]
USERS = ["stream-agent-5", "stream-agent-6"]
OUTSIDER = "stream-agent-7"
STRANGER = "stream-stranger"        # never monitored; only ws_push reaches gcmon with it
MONITORED = MEMBERS + USERS
GCMON_CONF = stream_conf(queues=[QUEUE], users=USERS, extra="GcmonMembershipRefresh 2s\n")

STATES = [("Available", None), ("OnQueue", None), (None, "INTERACTING"), ("Break", None),
          ("Meal", None), ("OnQueue", None), (None, "COMMUNICATING"), ("Away", None)]


@pytest.fixture(scope="module")
def httpd(emulator):
    emulator.config(heartbeat=1)
    emulator.add_agents([{"id": a, "name": f"Agent {a[-1]}", "presence": "Available"}
                         for a in MONITORED + [OUTSIDER, STRANGER]])
    emulator.add_queues([{"id": QUEUE, "name": "Stream Q1", "members": MEMBERS}])
    h = Httpd(emulator_url=emulator.url, gcmon_conf=GCMON_CONF,
              env={"GCMON_TEST_SECRET": CLIENT_SECRET})
    h.start()
    yield h
    h.cleanup()


@pytest.fixture(scope="module")
def db(httpd):
    d = StreamDB(httpd.db)
    wait_for(d.exists, timeout=20, what="database file")
    return d


@pytest.fixture(autouse=True)
def clean(emulator):
    emulator.clear_faults()
    yield
    emulator.clear_faults()


def set_state(emulator, uid, presence=None, routing=None):
    return emulator.set_state(uid, presence=presence, routing_status=routing)


def test_connects_and_reports(httpd, emulator, db):
    s = wait_connected(httpd, topics=len(MONITORED))
    assert s["enabled"] is True
    assert s["holder"]["pid"] in httpd.child_pids()
    assert s["holder"]["host"] and s["holder"]["since"].endswith("Z")
    assert len(s["channels"]) == 1
    ch = s["channels"][0]
    assert ch["topics"] == len(MONITORED) and ch["connected"] is True
    assert ch["expires"].endswith("Z")
    assert s["last_error"] is None, s
    assert re.fullmatch(r"ch-[0-9a-f]{10}", ch["id"]), ch
    chans = emulator_channels(emulator, s)
    assert list(chans) == [ch["id"]], emulator.channels()
    topics = set(chans[ch["id"]]["topics"])
    assert topics == {f"v2.users.{u}.activity" for u in MONITORED}


def test_initial_state_recorded(httpd, emulator, db):
    wait_connected(httpd, topics=len(MONITORED))
    wait_converged(db, emulator, ids=set(MONITORED))
    assert OUTSIDER not in db.current_states()


def test_transition_queryable_within_1s(httpd, emulator, db, report):
    wait_connected(httpd, topics=len(MONITORED))
    wait_converged(db, emulator, ids=set(MONITORED))
    lags = []
    for i, (presence, routing) in enumerate(STATES * 2):
        uid = MONITORED[i % len(MONITORED)]
        before = len(db.history(uid))
        t0 = time.monotonic()
        r = set_state(emulator, uid, presence, routing)
        want = r.get("state") or emulator.agent(uid)["state"]
        if not r.get("changed", True):
            continue
        wait_for(lambda: len(db.history(uid)) > before and db.current_states().get(uid) == want,
                 timeout=5, interval=0.01, what=f"{uid} → {want} stored")
        lags.append(time.monotonic() - t0)
    lags.sort()
    report(f"stream: change → queryable (history + current), {len(lags)} changes: "
           f"max {max(lags) * 1000:.0f} ms, median {lags[len(lags) // 2] * 1000:.0f} ms")
    assert max(lags) < 1.0, lags


def test_no_duplicates(httpd, emulator, db):
    uid = MEMBERS[0]
    wait_connected(httpd, topics=len(MONITORED))
    set_state(emulator, uid, "Training")
    wait_for(lambda: db.current_states().get(uid) == "Training", timeout=5)
    before = len(db.history(uid))
    # Same presence re-emitted with a new timestamp: a refresh, not a transition.
    emulator.set_state(uid, presence="Training", force=True)
    set_state(emulator, uid, "Meeting")
    wait_for(lambda: db.current_states().get(uid) == "Meeting", timeout=5)
    assert len(db.history(uid)) == before + 1
    assert duplicate_rows(db) == []


@pytest.mark.allow_log(r"GCM2201")
def test_missed_transition_recorded_by_resync(httpd, emulator, db):
    uid = MEMBERS[1]
    wait_connected(httpd, topics=len(MONITORED))
    wait_converged(db, emulator, ids=set(MONITORED))
    # Upgrades fail while we change the agent: the event is lost upstream.
    emulator.fault(r"^/channels/", status=503, count=10000)
    emulator.ws_fault("drop")
    wait_for(lambda: not stream_status(httpd)["connected"], timeout=10, what="disconnected")
    set_state(emulator, uid, "Busy")
    assert db.current_states().get(uid) != "Busy"
    emulator.clear_faults()
    wait_connected(httpd, topics=len(MONITORED), timeout=20)
    wait_for(lambda: db.current_states().get(uid) == "Busy", timeout=5,
             what="resync of the missed change")
    rows = [r for r in db.history(uid) if r["state"] == "Busy"]
    assert rows and rows[-1]["source"] == "resync", rows
    assert duplicate_rows(db) == []


def test_unmonitored_agent_event_ignored(httpd, emulator, db):
    """A well-formed event of someone gcmon does not monitor (another subscriber of the
    channel added the topic) is counted and dropped before the writer."""
    wait_connected(httpd, topics=len(MONITORED))
    g = Httpd.metric
    before = g(httpd.metrics(), "gcmon_stream_messages_total", kind="unmonitored")
    set_state(emulator, STRANGER, "Break")
    assert emulator.ws_push(STRANGER) == 1
    wait_for(lambda: g(httpd.metrics(), "gcmon_stream_messages_total", kind="unmonitored")
             == before + 1, timeout=5, what="the stranger's event counted")
    # A monitored change sent after it on the same socket is stored: the writer has
    # seen everything that came before.
    uid = USERS[1]
    set_state(emulator, uid, "Meal" if emulator.agent(uid)["state"] != "Meal" else "Away")
    want = emulator.agent(uid)["state"]
    wait_for(lambda: db.current_states().get(uid) == want, timeout=5)
    assert httpd.get(f"/gcmon/api/v1/agents/{STRANGER}").status == 404
    assert db.history(STRANGER) == []
    assert STRANGER not in db.current_states()
    assert re.search(r"\[gcmon_stream:debug\].*GCM2213: .*" + STRANGER, httpd.log_since_mark())


def test_metrics(httpd, emulator):
    wait_connected(httpd, topics=len(MONITORED))
    # An event of its own, so the test stands alone (not after others that made some).
    uid = MONITORED[0]
    set_state(emulator, uid, "Meal" if emulator.agent(uid)["state"] != "Meal" else "Away")
    want = emulator.agent(uid)["state"]
    wait_for(lambda: httpd.get(f"/gcmon/api/v1/agents/{uid}").json.get("state") == want,
             timeout=5, what="the event stored")
    g = Httpd.metric
    # And a dropped socket of its own, replaced.
    closed = g(httpd.metrics(), "gcmon_stream_reconnects_total", reason="closed")
    emulator.ws_fault("drop")
    wait_for(lambda: g(httpd.metrics(), "gcmon_stream_reconnects_total", reason="closed") > closed,
             timeout=10, what="the reconnect counted")
    wait_connected(httpd, topics=len(MONITORED), timeout=20)
    m = wait_for(lambda: (lambda x: x if g(x, "gcmon_stream_messages_total", kind="heartbeat")
                          else None)(httpd.metrics()), timeout=5, what="a heartbeat")
    assert g(m, "gcmon_stream_connected") == 1
    assert g(m, "gcmon_stream_channels") == 1
    assert g(m, "gcmon_stream_topics") == len(MONITORED)
    assert g(m, "gcmon_agents_monitored") == len(MONITORED)
    assert g(m, "gcmon_stream_messages_total", kind="event") > 0
    assert g(m, "gcmon_events_stored_total", source="stream") > 0
    assert g(m, "gcmon_events_stored_total", source="resync") > 0
    assert g(m, "gcmon_event_lag_seconds_count") > 0
    assert abs(g(m, "gcmon_last_event_timestamp_seconds") - time.time()) < 60
    assert g(m, "gcmon_build_info", version=httpd.get("/gcmon/api/v1/health").json["version"]) == 1
    assert g(m, "gcmon_stream_reconnects_total", reason="closed") > closed
    assert g(m, "gcmon_upstream_requests_total", op="channels_create", code="200") >= 1
    assert g(m, "gcmon_upstream_requests_total", op="subscriptions_put", code="200") >= 1
    assert g(m, "gcmon_upstream_requests_total", op="users_get", code="200") >= 1
    assert g(m, "gcmon_upstream_requests_total", op="queue_members", code="200") >= 1
    # docs/metrics.md lists exactly the families served (contrib/'s rules and dashboard
    # are checked against that list in test_monitoring.py).
    served = set(re.findall(r"^# TYPE (gcmon_\w+) ", httpd.get("/gcmon/api/v1/metrics").text,
                            re.M))
    with open(os.path.join(REPO, "docs", "metrics.md")) as f:
        documented = set(re.findall(r"^\| `(gcmon_\w+)` \|", f.read(), re.M))
    assert served == documented, (served ^ documented)


def test_mod_status(httpd):
    wait_connected(httpd, topics=len(MONITORED))
    auto = httpd.get("/server-status?auto").text
    assert "GcmonStreamEnabled: 1" in auto
    assert "GcmonStreamConnected: 1" in auto
    assert re.search(r"^GcmonStreamHolder: [^:\s]+:\d+$", auto, re.M), auto
    assert f"GcmonStreamAgentsMonitored: {len(MONITORED)}" in auto
    assert re.search(r"^GcmonStreamEventsTotal: [1-9]\d*$", auto, re.M), auto
    assert re.search(r"^GcmonStreamLastEventAge: \d+$", auto, re.M), auto
    html = httpd.get("/server-status").text
    label = stream_status(httpd)["channels"][0]["id"]
    assert "gcmon stream" in html and f"<td>{label}</td>" in html
    assert "streaming-0-" not in html


def test_membership_refresh(httpd, emulator, db):
    wait_connected(httpd, topics=len(MONITORED))
    newcomer = OUTSIDER
    emulator.set_members(QUEUE, MEMBERS[1:] + [newcomer])
    now = MEMBERS[1:] + USERS + [newcomer]

    def topics():
        s = stream_status(httpd)
        ch = list(emulator_channels(emulator, s).values())
        return set(ch[0]["topics"]) if ch and s["connected"] else set()
    want = {f"v2.users.{u}.activity" for u in now}
    wait_for(lambda: topics() == want, timeout=15, what="subscriptions follow membership")
    wait_connected(httpd, topics=len(now))
    wait_converged(db, emulator, ids={newcomer})
    set_state(emulator, newcomer, "Break")
    wait_for(lambda: db.current_states().get(newcomer) == "Break", timeout=5)
    # Back as it was, for the tests that follow.
    emulator.set_members(QUEUE, MEMBERS)
    want = {f"v2.users.{u}.activity" for u in MONITORED}
    wait_for(lambda: topics() == want, timeout=15, what="subscriptions restored")
    wait_connected(httpd, topics=len(MONITORED), timeout=15)


def test_watchdog_pings_then_reconnects(httpd, emulator, report):
    wait_connected(httpd, topics=len(MONITORED))
    g = Httpd.metric
    before = httpd.metrics()
    # Silence (no heartbeats, no events): gcmon pings and the pong keeps the socket.
    emulator.ws_fault("stop_heartbeats")
    wait_for(lambda: g(httpd.metrics(), "gcmon_stream_messages_total", kind="pong")
             > g(before, "gcmon_stream_messages_total", kind="pong"), timeout=10,
             what="a pong")
    assert g(httpd.metrics(), "gcmon_stream_reconnects_total", reason="pong_timeout") == \
        g(before, "gcmon_stream_reconnects_total", reason="pong_timeout")
    # No pong either: a new socket (with heartbeats again) within timeout + pong timeout.
    t0 = time.monotonic()
    emulator.ws_fault("ignore_pings")
    wait_for(lambda: g(httpd.metrics(), "gcmon_stream_reconnects_total", reason="pong_timeout")
             > g(before, "gcmon_stream_reconnects_total", reason="pong_timeout"), timeout=10,
             what="reconnect after the missing pong")
    wait_connected(httpd, topics=len(MONITORED))
    report(f"stream recovery, silent socket (no heartbeat, no pong; timeouts 2s + 1s): "
           f"{time.monotonic() - t0:.2f} s")


def test_graceful_restart_reuses_channel(httpd, emulator, db, report):
    s = wait_connected(httpd, topics=len(MONITORED))
    channel, pid = s["channels"][0]["id"], s["holder"]["pid"]
    created = emulator.stats()["channels_created"]
    t0 = time.monotonic()
    httpd.graceful()
    s = wait_for(lambda: (lambda x: x if x["connected"] and x["holder"]
                          and x["holder"]["pid"] != pid else None)(stream_status(httpd)),
                 timeout=20, interval=0.05, what="new holder connected")
    report(f"stream: graceful restart → new holder connected: {time.monotonic() - t0:.2f} s")
    assert s["channels"][0]["id"] == channel
    assert emulator.stats()["channels_created"] == created
    uid = USERS[0]
    set_state(emulator, uid, "Meeting")
    wait_for(lambda: db.current_states().get(uid) == "Meeting", timeout=5)
    assert duplicate_rows(db) == []


def test_channel_ids_never_published(httpd, emulator):
    """SPEC §9.15: a channel id is a credential. /v1/stream, mod_status, /metrics and the
    error log above debug show only its opaque label (this runs after the module's
    reconnects, channel replacements and graceful restart, so their lines are covered)."""
    s = wait_connected(httpd, topics=len(MONITORED))
    ids = issued_channel_ids(emulator)
    assert ids and all(i.startswith("streaming-") for i in ids), ids
    labels = [c["id"] for c in s["channels"]]
    assert labels and all(re.fullmatch(r"ch-[0-9a-f]{10}", x) for x in labels), s
    live = {channel_label(c["id"]) for c in emulator.channels() if c["connected"]}
    assert set(labels) <= live, (labels, live)
    pages = {path: httpd.get(path).text
             for path in ("/gcmon/api/v1/stream", "/server-status", "/server-status?auto",
                          "/gcmon/api/v1/metrics")}
    for path, text in pages.items():
        leaked = [i for i in ids if i in text]
        assert not leaked, f"{path} shows channel ids {leaked}"
    for label in labels:
        assert f"<td>{label}</td>" in pages["/server-status"]
    leaked = loud_lines_naming(httpd, ids)
    assert not leaked, "channel ids above debug:\n" + "\n".join(leaked[:5])
    # One debug line maps each label to its channel, for support.
    log = httpd.read_log()
    for label in labels:
        assert re.search(r"\[gcmon_stream:debug\].*GCM2234: channel " + label
                         + r" is notification channel streaming-", log), label


def test_configtest_contacts_no_upstream(httpd, emulator):
    emulator.clear_requests()
    rc, out = httpd.configtest(gcmon_conf=GCMON_CONF)
    assert rc == 0, out
    assert emulator.requests() == []


@pytest.mark.parametrize("conf,tag", [
    (stream_conf(), "GCM2002"),
    (stream_conf(users=[f"u{i}" for i in range(21)], extra="GcmonTopicsPerChannel 1\n"),
     "GCM2005"),
])
def test_configtest_refuses(httpd, conf, tag):
    rc, out = httpd.configtest(gcmon_conf=conf)
    assert rc != 0 and tag in out, out


def test_configtest_refuses_without_mod_dbd(httpd):
    text = httpd.config_text(gcmon_conf=stream_conf(users=USERS))
    text = "\n".join(line for line in text.splitlines()
                     if not re.match(r"\s*(LoadModule dbd_module|DBDriver|DBDParams)", line))
    path = httpd.root + "/conf/nodbd.conf"
    with open(path, "w") as f:
        f.write(text)
    import subprocess
    p = subprocess.run(["/usr/sbin/apache2", "-d", httpd.root, "-f", path, "-t"],
                       env=httpd.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    out = p.stdout.decode()
    assert p.returncode != 0 and "GCM2003" in out, out


def test_start_refused_without_credentials(emulator):
    conf = "\n".join(line for line in stream_conf(users=USERS).splitlines()
                     if not line.startswith("GcmonClient"))
    # The refusal this test provokes.
    h = Httpd(emulator_url=emulator.url, gcmon_conf=conf,
              allow_log=(r"\[gcmon_stream:crit\] .*GCM2004: GcmonStream On needs the Genesys "
                         r"Cloud client credentials",))
    try:
        with pytest.raises(RuntimeError):
            h.start(timeout=5)
        assert "GCM2004" in h.read_log()
    finally:
        h.cleanup()


def test_ground_truth_at_end(httpd, emulator, db):
    wait_connected(httpd, topics=len(MONITORED))
    wait_converged(db, emulator, ids=set(MONITORED))
    assert set(truth(emulator)) >= set(MONITORED)
