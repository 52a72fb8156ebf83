"""The capturing webhook sink (webhook_sink.py) on its own: no apache2, no emulator."""
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from webhook_sink import WebhookSink


def post(url, body=b"{}", headers=None, timeout=5):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture
def sink():
    s = WebhookSink().start()
    yield s
    s.stop()


def test_records_every_request(sink):
    t0 = time.time()
    body = b'{"text":"hello \xc3\xa9"}'
    status, _, answer = post(sink.url("/services/T/B/tok?x=1"), body,
                             {"X-Gcmon-Signature": "sha256=ab"})
    assert status == 200 and answer == b"ok"
    (r,) = sink.requests()
    assert t0 <= r.at <= time.time()
    assert r.method == "POST" and r.path == "/services/T/B/tok" and r.query == "x=1"
    assert r.body == body and r.status == 200 and r.ok and not r.down
    assert r.header("content-type") == "application/json"
    assert r.header("X-Gcmon-Signature") == "sha256=ab"
    req = urllib.request.Request(sink.url("/other"), method="GET")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
    assert [x.path for x in sink.requests()] == ["/services/T/B/tok", "/other"]
    assert [x.path for x in sink.requests("/services/")] == ["/services/T/B/tok"]
    sink.clear()
    assert sink.requests() == []


def test_fail_next_then_ok(sink):
    sink.fail_next(2, status=500)
    sink.fail_next(1, status=429, retry_after=3)
    got = [post(sink.url("/h")) for _ in range(4)]
    assert [g[0] for g in got] == [500, 500, 429, 200]
    assert got[2][1].get("Retry-After") == "3"
    assert "Retry-After" not in got[0][1]
    assert [r.status for r in sink.requests()] == [500, 500, 429, 200]


def test_fail_next_for_matching_bodies_only(sink):
    sink.fail_next(2, status=503, body_contains=b"agent-b")
    sink.fail_next(1, status=429, retry_after=2, body_contains="agent-a")
    assert post(sink.url("/h"), b'{"u":"agent-c"}')[0] == 200
    assert post(sink.url("/h"), b'{"u":"agent-b"}')[0] == 503
    st, hdrs, _ = post(sink.url("/h"), b'{"u":"agent-a"}')
    assert st == 429 and hdrs.get("Retry-After") == "2"
    assert post(sink.url("/h"), b'{"u":"agent-a"}')[0] == 200
    assert sink.pending_faults() == 1
    assert post(sink.url("/h"), b'{"u":"agent-b"}')[0] == 503
    assert post(sink.url("/h"), b'{"u":"agent-b"}')[0] == 200
    assert sink.pending_faults() == 0


def test_down_answers_503_and_keeps_fail_budget(sink):
    sink.fail_next(1, status=502)
    sink.set_down(True)
    assert [post(sink.url("/h"))[0] for _ in range(3)] == [503, 503, 503]
    assert all(r.down and r.status == 503 for r in sink.requests())
    sink.set_down(False)
    assert post(sink.url("/h"))[0] == 502       # the budget was not used while down
    assert post(sink.url("/h"))[0] == 200
    sink.fail_next(5)
    sink.reset_faults()
    assert post(sink.url("/h"))[0] == 200


def test_wait_count_wakes_and_times_out(sink):
    def later():
        time.sleep(0.3)
        post(sink.url("/a/1"))
        post(sink.url("/b/1"))
    t = threading.Thread(target=later)
    t.start()
    t0 = time.monotonic()
    recs = sink.wait_count(1, timeout=5, path_prefix="/b/")
    t.join()
    assert [r.path for r in recs] == ["/b/1"]
    assert time.monotonic() - t0 < 3
    assert len(sink.wait_count(2, timeout=1, predicate=lambda r: r.ok)) == 2
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="1 of 2"):
        sink.wait_count(2, timeout=0.5, path_prefix="/a/")
    assert 0.4 < time.monotonic() - t0 < 2


def test_stop_releases_the_port():
    s = WebhookSink().start()
    port = s.port
    assert post(s.url("/x"))[0] == 200
    s.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert not any(t.name == "webhook-sink" and t.is_alive() for t in threading.enumerate())
    s.stop()                                     # idempotent
