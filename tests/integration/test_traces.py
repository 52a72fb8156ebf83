"""Flow execution traces (SPEC §3.5, §5.5): POST /v1/admin/flows/{flowId}/traces
queues a durable job; the stream holder finds the flow's instances, submits a
Genesys download job, polls it with backoff, downloads each document from its
pre-signed link without the bearer token, builds the execution graph, and
delivers the completion to GcmonTraceWebhook — once, also across a graceful
restart and a SIGKILL of the holder in the middle of the polls."""
import json
import re
import uuid

import pytest

from conftest import CLIENT_SECRET
from emulator.client import make_execution
from httpd import Httpd, assert_problem, wait_for
from stream_helpers import SIM_QUEUES, stream_conf, stream_status
from webhook_sink import WebhookSink

API = "/gcmon/api/v1"
HOOK_PATH = "/ops/trace-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def sink():
    s = WebhookSink().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def httpd(emulator, sink):
    h = Httpd(emulator_url=emulator.url, env={"GCMON_TEST_SECRET": CLIENT_SECRET},
              gcmon_conf=stream_conf(queues=SIM_QUEUES[:1],
                                     extra=("GcmonAdminActor anonymous\n"
                                            "GcmonTraceTimeout 180s\n"
                                            f"GcmonTraceWebhook {sink.url(HOOK_PATH)}\n")),
              start_servers=2)
    h.start()
    try:
        wait_for(lambda: stream_status(h)["holder"], timeout=20, what="a holder")
        yield h
    finally:
        h.cleanup()


@pytest.fixture(autouse=True)
def clean(emulator):
    emulator.clear_faults()
    yield
    emulator.clear_faults()


def flow(emulator, polls=2, **kw):
    """One scripted instance of a new flow: a data action that is the slowest
    step (1:3) and a failing decision (1:4)."""
    fid = "flow-" + uuid.uuid4().hex[:12]
    conv = "conv-" + uuid.uuid4().hex[:12]
    execution = make_execution(steps=[("actionCallBot", 200), ("actionCallData", 300),
                                      ("actionDecision", 100)],
                               slowest=1, slowest_ms=4000, fail_at=2, seed=fid)
    inst = {"flow_id": fid, "conversation_id": conv, "execution": execution, "job_polls": polls}
    inst.update(kw)
    emulator.add_flow_instances([inst])
    return fid, conv


def submit(h, fid, body):
    return h.admin("POST", f"{API}/admin/flows/{fid}/traces", body=body)


def body_for(conv, **kw):
    b = {"conversation_id": conv, "trace_depth": 1, "action_invocation_id": "inv-7",
         "context_directives": {"capture_data": True}}
    b.update(kw)
    return b


def wait_done(h, tid, timeout=60):
    def done():
        r = h.get(f"{API}/admin/traces/{tid}")
        assert r.status == 200, r
        return r.json if r.json["status"] in ("completed", "failed") else None
    return wait_for(done, timeout=timeout, what=f"trace {tid} ended")


def hooks_for(sink, fid):
    """The trace webhook's bodies for flow fid that the sink accepted."""
    out = [json.loads(x.body) for x in sink.requests(HOOK_PATH) if x.ok]
    return [b for b in out if b.get("flowId") == fid]


def test_trace_completes_with_the_bottleneck(httpd, emulator, sink):
    fid, conv = flow(emulator)
    emulator.clear_requests()
    r = submit(httpd, fid, body_for(conv))
    assert r.status == 202, r
    assert r.json["status"] == "queued", r.json
    tid = r.json["id"]
    assert r.header("location") == f"/gcmon/api/v1/admin/traces/{tid}"
    t = wait_done(httpd, tid)
    assert t["status"] == "completed", t
    assert t["flow_id"] == fid and t["error"] is None, t
    assert t["bottleneck"] == {"node_id": "1:3", "latency_ms": 4000}, t["bottleneck"]
    assert t["failed_nodes"] == ["1:4"], t
    assert t["accuracy_rate"] == 1, t
    assert t["retrieval_latency_ms"] >= 0 and t["completed_at"], t
    types = [n["type"] for n in t["graph"]["nodes"]]
    assert types[:2] == ["startedFlow", "actionCallBot"], types
    assert t["critical_path"][0] == "1:1", t
    # the Genesys calls: query, job, polls, the download without a token
    paths = [(x["method"], x["path"]) for x in emulator.requests()]
    assert ("POST", "/api/v2/flows/instances/query") in paths, paths
    assert ("POST", "/api/v2/flows/instances/jobs") in paths, paths
    polls = [p for p in paths if p[0] == "GET" and p[1].startswith("/api/v2/flows/instances/jobs/")]
    assert len(polls) >= 2, paths
    downloads = [x for x in emulator.requests() if x["path"].startswith("/downloads/")]
    assert len(downloads) == 1 and downloads[0]["status"] == 200, downloads
    # the webhook, once, the tutorial's body
    hooks = wait_for(lambda: hooks_for(sink, fid), timeout=20, what="the trace webhook")
    assert len(hooks) == 1, hooks
    h = hooks[0]
    assert list(h) == ["flowId", "actionInvocationId", "status", "bottleneckNode",
                       "bottleneckLatencyMs", "retrievalLatencyMs", "traceAccuracyRate",
                       "timestamp"], h
    assert (h["flowId"], h["actionInvocationId"], h["status"], h["bottleneckNode"],
            h["bottleneckLatencyMs"], h["traceAccuracyRate"]) == \
        (fid, "inv-7", "completed", "1:3", 4000, 1), h
    # audited: the submission and the completion
    a = httpd.get(f"{API}/admin/audit?target={fid}").json["data"]
    assert sorted(x["action"] for x in a) == ["trace_complete", "trace_submit"], a
    # listed
    r = httpd.get(f"{API}/admin/traces?flow_id={fid}")
    assert [x["id"] for x in r.json["data"]] == [tid], r.json
    assert r.json["data"][0]["bottleneck"]["node_id"] == "1:3"


def test_failed_genesys_job_fails_the_trace(httpd, emulator, sink):
    fid, conv = flow(emulator, polls=1, job_fails="execution data storage is disabled")
    r = submit(httpd, fid, body_for(conv))
    assert r.status == 202, r
    t = wait_done(httpd, r.json["id"])
    assert t["status"] == "failed", t
    assert "execution data storage is disabled" in t["error"], t
    hooks = wait_for(lambda: hooks_for(sink, fid), timeout=20, what="the trace webhook")
    assert hooks[0]["status"] == "failed" and hooks[0]["bottleneckNode"] is None, hooks


def test_throttled_poll_is_honoured(httpd, emulator):
    fid, conv = flow(emulator, polls=3)
    emulator.clear_requests()
    emulator.fault(r"^/api/v2/flows/instances/jobs/[^/]+$", status=429, retry_after=2, count=1,
                   method="GET")
    r = submit(httpd, fid, body_for(conv))
    t = wait_done(httpd, r.json["id"])
    assert t["status"] == "completed", t
    polls = [x for x in emulator.requests(method="GET")
             if x["path"].startswith("/api/v2/flows/instances/jobs/")]
    thr = [i for i, x in enumerate(polls) if x["status"] == 429]
    assert thr, polls
    i = thr[0]
    assert polls[i + 1]["at"] - polls[i]["at"] >= 1.9, polls     # Retry-After: 2 honoured


def test_bad_requests_queue_nothing(httpd, emulator):
    fid = "flow-" + uuid.uuid4().hex[:8]
    emulator.clear_requests()
    cases = [({"trace_depth": 0, "context_directives": {"capture_data": True}}, "trace_depth"),
             ({"trace_depth": 51, "context_directives": {"capture_data": True}}, "trace_depth"),
             ({"trace_depth": 1, "context_directives": {"capture_data": False}},
              "context_directives"),
             ({"trace_depth": 1, "instance_id": "i-1", "conversation_id": "c-1",
               "context_directives": {"capture_data": True}}, "instance_id"),
             ({"trace_depth": 1, "context_directives": {"capture_data": True}, "depth": 3},
              "depth")]
    for body, field in cases:
        p = assert_problem(submit(httpd, fid, body), 422, "validation_failed")
        assert field in [e["field"] for e in p["errors"]], (body, p)
    assert_problem(submit(httpd, "bad%20flow", {}), 400, "validation_failed")
    assert_problem(httpd.get(f"{API}/admin/traces/trace-{uuid.uuid4().hex}"), 404,
                   "trace_not_found")
    assert httpd.get(f"{API}/admin/traces?flow_id={fid}").json["total"] == 0
    assert [x for x in emulator.requests() if "/flows/" in x["path"]] == []


def holder_pid(h):
    s = stream_status(h)
    m = re.search(r":(\d+):", s["holder"]["id"])
    return int(m.group(1))


def test_trace_survives_graceful_restart_and_sigkill(httpd, emulator, sink):
    """Mid-poll: a graceful restart, then a SIGKILL of the holder; the trace
    completes once (one completion audit row, one webhook)."""
    fid, conv = flow(emulator, polls=6)   # backoff 1+1+2+4+8+16 s at most
    emulator.clear_requests()
    r = submit(httpd, fid, body_for(conv))
    tid = r.json["id"]

    def polls():
        return [x for x in emulator.requests(method="GET")
                if x["path"].startswith("/api/v2/flows/instances/jobs/")]
    wait_for(lambda: len(polls()) >= 1, timeout=20, what="the first poll")
    httpd.graceful()
    wait_for(lambda: stream_status(httpd)["holder"], timeout=30, what="a holder after graceful")
    seen = len(polls())
    wait_for(lambda: len(polls()) > seen, timeout=30, what="polls resumed after graceful")
    assert httpd.get(f"{API}/admin/traces/{tid}").json["status"] == "running"   # mid-poll
    httpd.kill_child(holder_pid(httpd))
    t = wait_done(httpd, tid, timeout=90)
    assert t["status"] == "completed", t
    jobs = [x for x in emulator.requests(method="POST")
            if x["path"] == "/api/v2/flows/instances/jobs"]
    assert len(jobs) == 1, jobs            # the Genesys job was not submitted again
    hooks = wait_for(lambda: hooks_for(sink, fid), timeout=20, what="the trace webhook")
    assert len(hooks) == 1, hooks
    a = httpd.get(f"{API}/admin/audit?target={fid}&action=trace_complete").json["data"]
    assert len(a) == 1, a


def test_background_holder_runs_traces(emulator):
    """GcmonStream Off, client credentials set: no stream, but a background
    holder runs the queued trace (GCM2114 says "outbox and jobs")."""
    from conftest import CLIENT_ID
    h = Httpd(emulator_url=emulator.url, env={"GCMON_TEST_SECRET": CLIENT_SECRET},
              gcmon_conf=(f"GcmonClientID {CLIENT_ID}\n"
                          "GcmonClientSecret env:GCMON_TEST_SECRET\n"
                          "GcmonAdminActor anonymous\n"),
              start_servers=1)
    h.start()
    try:
        fid, conv = flow(emulator, polls=1)
        r = submit(h, fid, body_for(conv))
        assert r.status == 202, r
        t = wait_done(h, r.json["id"])
        assert t["status"] == "completed", t
        assert t["bottleneck"]["node_id"] == "1:3", t
        s = stream_status(h)
        assert s["enabled"] is False and s["connected"] is False, s
        log = h.read_log()
        assert re.search(r"GCM2114: this process \(\S+\) is now the background holder "
                         r"\(outbox and jobs; GcmonStream Off\)", log), log[-2000:]
    finally:
        h.cleanup()


def test_no_credentials_is_503(emulator):
    """Without client credentials no holder could run a trace: refused, nothing queued."""
    h = Httpd(emulator_url=emulator.url, gcmon_conf="GcmonAdminActor anonymous\n",
              start_servers=1)
    h.start()
    try:
        body = {"trace_depth": 1, "context_directives": {"capture_data": True}}
        assert_problem(submit(h, "flow-x", body), 503, "upstream_not_configured")
        assert h.get(f"{API}/admin/traces").json["total"] == 0
    finally:
        h.cleanup()
