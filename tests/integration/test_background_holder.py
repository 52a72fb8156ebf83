"""The background holder (docs/stream.md "Webhooks when GcmonStream is Off"): with
GcmonStream Off but an outbound webhook configured, every child still starts its
monitor thread and the lease holder runs only the outbox delivery thread — no
WebSockets, channels, members, resync or upstream calls, and no client
credentials needed.

A pending gcmon_outbox row (as mod_gcmon_api will queue for GcmonStatusWebhook)
is written straight into the database and must reach the sink exactly once and
be marked delivered, also after a graceful restart; stop releases the lease.
Without any webhook no monitor thread starts; without mod_dbd httpd starts, says
why nothing can be delivered (GCM2009) and starts no monitor thread either."""
import hashlib
import hmac
import json
import os
import re
import subprocess
import time
import uuid

import pytest

from dbseed import Seeder
from httpd import APACHE2, Httpd, wait_for
from stream_helpers import StreamDB, now_ms, stream_status
from webhook_sink import WebhookSink

STATUS_PATH = "/payroll/hook-" + uuid.uuid4().hex      # the URL is a secret: never logged
HOOK_SECRET = "hook-" + uuid.uuid4().hex
UPSTREAM = re.compile(r"^/api/v2/(notifications|users)")


@pytest.fixture(scope="module")
def sink():
    s = WebhookSink().start()
    yield s
    s.stop()


def background_conf(sink):
    # No GcmonClientID/GcmonClientSecret and no GcmonStream: API-only with a webhook.
    return (f"GcmonStatusWebhook {sink.url(STATUS_PATH)}\n"
            "GcmonWebhookSecret env:GCMON_TEST_HOOK_SECRET\n"
            "GcmonWebhookMaxAge 10m\n")


@pytest.fixture(scope="module")
def httpd(emulator, sink):
    h = Httpd(emulator_url=emulator.url, gcmon_conf=background_conf(sink),
              env={"GCMON_TEST_HOOK_SECRET": HOOK_SECRET}, start_servers=2)
    emulator.clear_requests()
    h.start()
    yield h
    h.cleanup()


@pytest.fixture(scope="module")
def seeder(httpd):
    return Seeder(httpd)


@pytest.fixture(scope="module")
def db(httpd):
    return StreamDB(httpd.db)


def queue_row(seeder, marker, target="status"):
    """A pending outbox row due now, as the admin API queues one."""
    body = json.dumps({"user_id": "bg-agent-1", "target_status": "Break", "marker": marker})
    t = now_ms()
    seeder.execute("INSERT INTO gcmon_outbox (target, body, created_at, next_at) "
                   "VALUES (?, ?, ?, ?)", [(target, body, t, t)])
    return body


def row_status(db, marker):
    rows = db.query("SELECT status FROM gcmon_outbox WHERE body LIKE ?", (f"%{marker}%",))
    return rows[0]["status"] if rows else None


def posts_of(sink, marker):
    return [r for r in sink.requests(STATUS_PATH) if marker.encode() in r.body]


def deliver(httpd, sink, db, seeder):
    """Queue a row and wait until the sink got it and the row is delivered."""
    marker = uuid.uuid4().hex
    body = queue_row(seeder, marker)
    sink.wait_count(1, timeout=20, path_prefix=STATUS_PATH,
                    predicate=lambda r: marker.encode() in r.body)
    wait_for(lambda: row_status(db, marker) == "delivered", timeout=10, interval=0.1,
             what=f"outbox row {marker} delivered")
    return marker, body


def holder_log(httpd):
    return re.findall(r"GCM2114: this process \(([^)]*)\) is now the background holder",
                      httpd.read_log())


def test_background_holder_takes_the_lease(httpd):
    ids = wait_for(lambda: holder_log(httpd), timeout=20, what="GCM2114 in error_log")
    assert len(ids) == 1, ids
    s = wait_for(lambda: (lambda d: d if d["holder"] else None)(stream_status(httpd)),
                 timeout=10, what="holder in /v1/stream")
    # enabled stays false; holder names the process delivering webhooks.
    assert s["enabled"] is False
    assert s["holder"]["id"] == ids[0]
    assert s["holder"]["pid"] in httpd.child_pids()
    assert s["connected"] is False and s["channels"] == [] and s["agents_monitored"] == 0
    log = httpd.read_log()
    assert "GCM2106" not in log and "GCM2204" not in log and "GCM2227" not in log
    auto = httpd.get("/server-status?auto").text
    assert "GcmonStreamEnabled: 0" in auto
    assert f"GcmonStreamHolder: {s['holder']['host']}:{s['holder']['pid']}" in auto


def test_pending_row_delivered_exactly_once(httpd, sink, db, seeder, emulator):
    marker, body = deliver(httpd, sink, db, seeder)
    post = posts_of(sink, marker)[0]
    assert post.method == "POST" and post.body == body.encode()
    assert post.header("X-Gcmon-Signature") == "sha256=" + hmac.new(
        HOOK_SECRET.encode(), post.body, hashlib.sha256).hexdigest()
    # A later row goes out too: the outbox kept polling, and never sent the first again.
    later, _ = deliver(httpd, sink, db, seeder)
    assert len(posts_of(sink, marker)) == 1
    assert len(posts_of(sink, later)) == 1
    rows = db.query("SELECT status, attempts, done_at FROM gcmon_outbox WHERE body LIKE ?",
                    (f"%{marker}%",))
    assert rows[0]["status"] == "delivered" and rows[0]["done_at"]
    m = httpd.metrics()
    assert httpd.metric(m, "gcmon_webhook_deliveries_total", target="status",
                        result="delivered") >= 2
    # Nothing of the stream: no channel or user calls, no socket, no token.
    assert emulator.requests(path=UPSTREAM.pattern) == []
    stats = emulator.stats()
    assert stats["ws_connections"] == 0 and stats["channels_created"] == 0
    assert stats["tokens_issued"] == 0
    assert STATUS_PATH not in httpd.read_log()


def test_graceful_restart_hands_over(httpd, sink, db, seeder, emulator):
    before = stream_status(httpd)["holder"]
    assert before, "no background holder before the restart"
    n = len(holder_log(httpd))
    earlier = [r.body for r in sink.requests(STATUS_PATH)]
    httpd.graceful()

    def new_holder():
        s = stream_status(httpd)
        ids = holder_log(httpd)
        if len(ids) > n and s["holder"] and s["holder"]["id"] == ids[-1] \
                and s["holder"]["id"] != before["id"]:
            return s
        return None
    s = wait_for(new_holder, timeout=20, what="a new-generation background holder")
    assert s["enabled"] is False
    assert re.search(r"GCM2115: this process \(" + re.escape(before["id"]) +
                     r"\) stopped being the background holder", httpd.read_log())
    marker, _ = deliver(httpd, sink, db, seeder)
    assert len(posts_of(sink, marker)) == 1
    # Nothing delivered before the restart was sent again.
    assert sorted(earlier) == sorted(r.body for r in sink.requests(STATUS_PATH)
                                     if marker.encode() not in r.body)
    assert emulator.requests(path=UPSTREAM.pattern) == []
    assert emulator.stats()["ws_connections"] == 0


def test_stop_releases_the_lease(httpd, db):
    holder = wait_for(lambda: stream_status(httpd)["holder"], timeout=10, what="holder")
    t0 = time.monotonic()
    httpd.stop(timeout=15)          # asserts no process is left behind
    assert time.monotonic() - t0 < 10
    log = httpd.read_log()
    assert "GCM2010" not in log
    assert re.search(r"GCM2115: this process \(" + re.escape(holder["id"]) +
                     r"\) stopped being the background holder: stopping", log)
    lease = db.query("SELECT holder, expires_at FROM gcmon_lease WHERE name = 'stream'")
    assert len(lease) == 1 and lease[0]["expires_at"] == 0
    # Another child whose stop signal came a moment later may take the
    # released lease and hand it back in turn; whoever held it last released it.
    if lease[0]["holder"] != holder["id"]:
        assert re.search(r"GCM2115: this process \(" + re.escape(lease[0]["holder"]) +
                         r"\) stopped being the background holder: stopping", log)


def assert_clean(h):
    bad = h.bad_lines()
    assert not bad, "unexpected error_log lines:\n" + "\n".join(bad)


def test_no_webhook_no_monitor_thread(emulator):
    """GcmonStream Off without any webhook: no monitor thread, nothing delivered."""
    h = Httpd(emulator_url=emulator.url, gcmon_conf="", start_servers=2)
    try:
        h.start()
        # The read API creates the schema; then a pending row nobody may touch.
        assert h.get("/gcmon/api/v1/alerts").status == 200
        db = StreamDB(h.db)
        marker = uuid.uuid4().hex
        queue_row(Seeder(h), marker)
        # A holder would take it within about a second (and fail it: no URL).
        with pytest.raises(TimeoutError):
            wait_for(lambda: row_status(db, marker) != "pending", timeout=3,
                     what="the row left alone")
        s = stream_status(h)
        assert s["enabled"] is False and s["holder"] is None
        log = h.read_log()
        for tag in ("GCM2109", "GCM2114", "GCM2106", "GCM2009"):
            assert tag not in log, tag
        assert db.query("SELECT COUNT(*) AS n FROM gcmon_lease")[0]["n"] == 0
        assert_clean(h)
    finally:
        h.cleanup()


def without_dbd(text):
    return "\n".join(line for line in text.splitlines()
                     if not re.match(r"\s*(LoadModule dbd_module|DBDriver|DBDParams)\b", line))


def test_without_mod_dbd_warns_and_starts_no_thread(emulator, sink):
    h = Httpd(emulator_url=emulator.url, gcmon_conf=background_conf(sink),
              env={"GCMON_TEST_HOOK_SECRET": HOOK_SECRET})
    try:
        text = without_dbd(h.config_text())
        assert "dbd_module" not in text
        path = os.path.join(h.root, "conf", "nodbd.conf")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([APACHE2, "-d", h.root, "-f", path, "-t"], env=h.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        out = p.stdout.decode("utf-8", "replace")
        assert p.returncode == 0 and "Syntax OK" in out, out
        assert "GCM2009" in out and "GcmonStatusWebhook" in out and "a2enmod dbd" in out, out
        assert STATUS_PATH not in out
        with open(h.conf_path, "w") as f:
            f.write(text)
        h.start()
        wait_for(lambda: "GCM2009" in h.read_log(), timeout=10, what="GCM2009")
        assert h.get("/gcmon/api/v1/health").status == 200
        log = h.read_log()
        assert "GCM2109" not in log and "GCM2114" not in log and "GCM2011" not in log
        assert STATUS_PATH not in log
        assert stream_status(h)["holder"] is None
        assert_clean(h)
    finally:
        h.cleanup()
