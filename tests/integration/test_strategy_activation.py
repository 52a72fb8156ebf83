"""Routing-strategy activation (SPEC §3.6, §5.6): POST /v1/admin/strategies/{id}/activate
queues a durable job; the holder re-validates the strategy live, saves each target queue,
applies `skillEvaluationMethod` ALL by read-modify-write PUT (everything else intact),
polls each queue until the change reads back, then sets the strategy active — or restores
the saved queue bodies and sets it failed. Audited (activate + completion, with the
actor), announced to GcmonWfmWebhook, and it survives a SIGKILL of the holder."""
import json
import uuid

import pytest

from conftest import CLIENT_ID, CLIENT_SECRET
from httpd import Httpd, assert_problem, wait_for
from stream_helpers import stream_status
from webhook_sink import WebhookSink

API = "/gcmon/api/v1"
STRATEGIES = API + "/admin/strategies"
HOOK_PATH = "/wfm-" + uuid.uuid4().hex
SKILL = "sskill-" + uuid.uuid4().hex[:8]
QUEUE_PATH = r"^/api/v2/routing/queues/[^/]+$"
# Genesys's own bookkeeping fields, which a PUT moves on.
MOVING = ("version", "dateModified", "modifiedBy")


@pytest.fixture(scope="module")
def sink():
    s = WebhookSink().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def httpd(emulator, sink):
    emulator.add_skills([{"id": SKILL, "name": "Strategy " + SKILL}])
    # GcmonStream Off with credentials: a background holder runs the jobs (and
    # the outbox); two children so a SIGKILLed holder is replaced at once.
    h = Httpd(emulator_url=emulator.url, env={"GCMON_TEST_SECRET": CLIENT_SECRET},
              gcmon_conf=(f"GcmonClientID {CLIENT_ID}\n"
                          "GcmonClientSecret env:GCMON_TEST_SECRET\n"
                          "GcmonRequestTimeout 5s\n"
                          "GcmonRateLimit 6000\n"
                          "GcmonAdminActor header:X-Test-User\n"
                          f"GcmonWfmWebhook {sink.url(HOOK_PATH)}\n"),
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


ACTOR = {"X-Test-User": "ada"}


def admin(h, method, path, body=None):
    return h.admin(method, path, body=body, headers=ACTOR)


def make_queues(emulator, n, method="BEST", skilled=True):
    """n fresh queues (skillEvaluationMethod `method`), each with two members having
    the strategy's skill (or none), 2 interacting of a capacity of 10; and a fallback."""
    tag = uuid.uuid4().hex[:8]
    qids = [f"sq-{tag}-{i}" for i in range(n)]
    fb = f"sq-{tag}-fb"
    users = [f"su-{tag}-{i}" for i in range(2)]
    emulator.add_agents([{"id": u, "name": f"Strategy {tag} {i}", "presence": "OnQueue",
                          "routing_status": "IDLE",
                          "skills": [{"id": SKILL, "proficiency": 3}] if skilled else []}
                         for i, u in enumerate(users)])
    emulator.add_queues([{"id": q, "name": f"Strategy {tag} {i}", "members": users,
                          "skill_evaluation_method": method}
                         for i, q in enumerate(qids + [fb])])
    for q in qids:
        emulator.set_queue_observations(q, interacting=2)
    return qids, fb


def create(h, qids, fb, required=True):
    body = {"name": "Strategy " + uuid.uuid4().hex[:6],
            "selection_criteria": {"skills": [{"skill_id": SKILL, "required": required}]},
            "targets": [{"queue_id": q, "priority": 1, "weight": 1, "capacity": 10}
                        for q in qids],
            "fallback": {"queue_id": fb, "priority": 99, "weight": 0.1}}
    r = admin(h, "POST", STRATEGIES, body)
    assert r.status == 201, r
    assert r.json["status"] == "draft", r.json
    return r.json["id"]


def strategy(h, sid):
    r = admin(h, "GET", f"{STRATEGIES}/{sid}")
    assert r.status == 200, r
    return r.json


def activate(h, sid):
    r = admin(h, "POST", f"{STRATEGIES}/{sid}/activate", {})
    assert r.status == 202, r
    assert r.json["id"] == sid and r.json["status"] == "activating", r.json
    assert r.json["job_id"].startswith("sact-"), r.json
    assert r.header("location") == f"{STRATEGIES}/{sid}", r.header("location")
    return r.json["job_id"]


def wait_settled(h, sid, timeout=60):
    """The strategy settled and its activation job ended: the job settles the strategy
    first and ends in its next step (phase `settle` meanwhile, docs/api.md)."""
    def done():
        s = strategy(h, sid)
        ended = (s.get("activation") or {}).get("state") in ("completed", "failed")
        return s if s["status"] in ("active", "failed") and ended else None
    return wait_for(done, timeout=timeout, what=f"strategy {sid} settled")


def queue_now(emulator, qid):
    """The queue as it really is (lag or not: the control view's version)."""
    r = emulator.request("GET", f"/api/v2/routing/queues/{qid}", token=emulator.token())
    assert r.status == 200, r
    return r.json


def control_view(emulator, qid):
    return next(q for q in emulator.queues() if q["id"] == qid)


def without(body, keys=MOVING):
    return {k: v for k, v in body.items() if k not in keys}


def puts(emulator, qid=None):
    return [x for x in emulator.requests(method="PUT", path=QUEUE_PATH)
            if qid is None or x["path"].endswith("/" + qid)]


def hooks_for(sink, sid):
    out = [json.loads(x.body) for x in sink.requests(HOOK_PATH) if x.ok]
    return [b for b in out if b.get("strategy_id") == sid]


def audit(h, sid):
    r = admin(h, "GET", f"{API}/admin/audit?target={sid}&limit=100")
    assert r.status == 200, r
    return r.json["data"]


# ------------------------------------------------------------------ success

def test_activation_applies_confirms_and_audits(httpd, emulator, sink):
    """PUTs carrying every previous field and ALL; activating until the lagging queue reads
    back; then active, audited twice with the actor, the WFM body delivered once."""
    qids, fb = make_queues(emulator, 2)
    before = {q: queue_now(emulator, q) for q in qids}
    emulator.queue_readback_lag(qids[1], gets=1000)
    sid = create(httpd, qids, fb)
    emulator.clear_requests()
    job = activate(httpd, sid)
    # the second queue's PUT went through, but its GETs still show the old queue
    wait_for(lambda: puts(emulator, qids[1]), timeout=15, what="the second queue's PUT")
    wait_for(lambda: control_view(emulator, qids[1])["readback_pending"] < 998, timeout=15,
             what="confirm polls of the lagging queue")
    s = strategy(httpd, sid)
    assert s["status"] == "activating", s
    a = s["activation"]
    assert a["job_id"] == job and a["state"] == "running" and a["phase"] == "confirm", a
    assert {q["queue_id"]: q["state"] for q in a["queues"]} == \
        {qids[0]: "confirmed", qids[1]: "applied"}, a
    assert admin(httpd, "POST", f"{STRATEGIES}/{sid}/activate", {}).status == 409
    emulator.queue_readback_lag(qids[1], gets=0)          # reads back now
    s = wait_settled(httpd, sid)
    assert s["status"] == "active", s
    assert s["error_message"] is None, s
    assert s["activation"]["state"] == "completed" and s["activation"]["phase"] == "done", s
    assert all(q["state"] == "confirmed" for q in s["activation"]["queues"]), s
    # one PUT per queue: the saved body with ALL, everything else as it was read
    for q in qids:
        (p,) = puts(emulator, q)
        sent = json.loads(p["body"])
        assert sent["skillEvaluationMethod"] == "ALL", sent
        assert sent["version"] == before[q]["version"], sent
        assert without(sent, ("skillEvaluationMethod",)) == \
            without(before[q], ("skillEvaluationMethod",)), sent
        assert control_view(emulator, q)["skill_evaluation_method"] == "ALL"
    # audited: the request and the completion, both with the actor
    rows = audit(httpd, sid)
    assert sorted((x["action"], x["status"]) for x in rows) == \
        [("strategy_activate", 202), ("strategy_activate", 409),    # the refusal while activating
         ("strategy_activation_complete", 200), ("strategy_create", 201)], rows
    assert all(x["actor"] == "ada" for x in rows), rows
    done = next(x for x in rows if x["action"] == "strategy_activation_complete")
    assert done["actor_source"] == "job", done
    # the WFM body at the end, once
    hooks = wait_for(lambda: [b for b in hooks_for(sink, sid) if b["status"] == "active"],
                     timeout=20, what="the WFM delivery")
    assert len(hooks) == 1, hooks
    assert list(hooks[0]) == ["strategy_id", "name", "status", "targets", "timestamp"], hooks
    assert [t["queue_id"] for t in hooks[0]["targets"]] == qids, hooks
    # active: not again
    r = admin(httpd, "POST", f"{STRATEGIES}/{sid}/activate", {})
    assert_problem(r, 409, "strategy_not_activatable")
    assert "active" in r.json["detail"] and r.json["strategy_status"] == "active", r.json


def test_refusals(httpd, emulator):
    emulator.clear_requests()
    assert_problem(admin(httpd, "POST", f"{STRATEGIES}/{'x' * 65}/activate", {}), 400,
                   "validation_failed")
    assert_problem(admin(httpd, "POST", f"{STRATEGIES}/strat-nope/activate", {}), 404,
                   "strategy_not_found")
    qids, fb = make_queues(emulator, 1)
    sid = create(httpd, qids, fb)
    emulator.clear_requests()
    r = admin(httpd, "POST", f"{STRATEGIES}/{sid}/activate", {"force": True})
    assert_problem(r, 422, "validation_failed", field="force")
    assert strategy(httpd, sid)["status"] == "draft"
    assert strategy(httpd, sid)["activation"] is None
    assert emulator.requests(path=r"^/api/v2/routing/") == []
    refused = [x for x in audit(httpd, sid) if x["action"] == "strategy_activate"]
    assert [x["status"] for x in refused] == [422], refused


def test_no_required_skill_leaves_the_method(httpd, emulator):
    """Without a required skill nothing is written: every queue unchanged, active."""
    qids, fb = make_queues(emulator, 2)
    sid = create(httpd, qids, fb, required=False)
    emulator.clear_requests()
    activate(httpd, sid)
    s = wait_settled(httpd, sid)
    assert s["status"] == "active", s
    assert [q["state"] for q in s["activation"]["queues"]] == ["unchanged", "unchanged"], s
    assert puts(emulator) == []
    assert all(control_view(emulator, q)["skill_evaluation_method"] == "BEST" for q in qids)


# ------------------------------------------------------------------ failures

def test_second_queue_failing_restores_the_first(httpd, emulator, sink):
    qids, fb = make_queues(emulator, 3)
    before = {q: queue_now(emulator, q) for q in qids}
    sid = create(httpd, qids, fb)
    emulator.clear_requests()
    emulator.fault(rf"^/api/v2/routing/queues/{qids[1]}$", status=400, method="PUT")
    activate(httpd, sid)
    s = wait_settled(httpd, sid)
    assert s["status"] == "failed", s
    msg = s["error_message"]
    assert f"updating queue {qids[1]}" in msg and f"restored queue(s) {qids[0]}" in msg, msg
    assert s["activation"]["state"] == "failed" and s["activation"]["phase"] == "apply", s
    assert {q["queue_id"]: q["state"] for q in s["activation"]["queues"]} == \
        {qids[0]: "restored", qids[1]: "saved", qids[2]: "saved"}, s
    # the first queue is exactly what it was (but Genesys's version bookkeeping)
    assert without(queue_now(emulator, qids[0])) == without(before[qids[0]])
    assert len(puts(emulator, qids[0])) == 2          # applied, restored
    assert puts(emulator, qids[2]) == []              # never touched
    assert queue_now(emulator, qids[2]) == before[qids[2]]
    rows = audit(httpd, sid)
    done = [x for x in rows if x["action"] == "strategy_activation_complete"]
    assert len(done) == 1 and done[0]["status"] == 502 and done[0]["actor"] == "ada", rows
    assert done[0]["result"]["status"] == "failed", done
    assert done[0]["result"]["restored"] == [qids[0]], done
    assert done[0]["result"]["restore_failed"] == [], done
    hooks = wait_for(lambda: [b for b in hooks_for(sink, sid) if b["status"] == "failed"],
                     timeout=20, what="the WFM delivery of the failure")
    assert len(hooks) == 1, hooks
    # failed: may be activated again, and then succeeds
    emulator.clear_requests()
    activate(httpd, sid)
    s = wait_settled(httpd, sid)
    assert s["status"] == "active" and s["error_message"] is None, s
    assert len(puts(emulator)) == 3


def test_version_conflict_is_retried_once(httpd, emulator):
    qids, fb = make_queues(emulator, 1)
    sid = create(httpd, qids, fb)
    emulator.clear_requests()
    emulator.fault(rf"^/api/v2/routing/queues/{qids[0]}$", status=409, method="PUT")
    activate(httpd, sid)
    s = wait_settled(httpd, sid)
    assert s["status"] == "active", s
    seq = [(x["method"]) for x in emulator.requests(path=rf"^/api/v2/routing/queues/{qids[0]}$")]
    assert seq[:4] == ["GET", "PUT", "GET", "PUT"], seq     # save, 409, re-read, PUT
    assert [x["status"] for x in puts(emulator)] == [409, 200]
    # two conflicts: rolled back (nothing had landed), failed
    qids, fb = make_queues(emulator, 1)
    sid = create(httpd, qids, fb)
    emulator.fault(rf"^/api/v2/routing/queues/{qids[0]}$", status=409, method="PUT", count=2)
    activate(httpd, sid)
    s = wait_settled(httpd, sid)
    assert s["status"] == "failed", s
    assert "a second version conflict" in s["error_message"], s
    assert control_view(emulator, qids[0])["skill_evaluation_method"] == "BEST"


def test_live_validation_failure_puts_nothing(httpd, emulator):
    qids, fb = make_queues(emulator, 2)
    sid = create(httpd, qids, fb)
    emulator.set_queue_observations(qids[1], interacting=10)      # saturated since
    emulator.clear_requests()
    activate(httpd, sid)
    s = wait_settled(httpd, sid)
    assert s["status"] == "failed", s
    assert "live validation failed" in s["error_message"], s
    assert f"(queue {qids[1]}) has no spare capacity" in s["error_message"], s
    assert s["activation"]["phase"] == "validate", s
    assert s["validation"]["ok"] is False, s["validation"]
    assert emulator.requests(method="PUT") == []
    assert emulator.requests(path=QUEUE_PATH) == []


# ------------------------------------------------------------------ failover

def test_sigkill_of_the_holder_mid_activation(httpd, emulator, report):
    """The holder dies while the second queue's PUT is in flight (a slow Genesys): the next
    holder resumes the job — the second queue possibly applied, re-read and PUT again — and
    the strategy ends active with every queue confirmed (or failed with every queue
    restored), the end audited once."""
    qids, fb = make_queues(emulator, 3)
    before = {q: queue_now(emulator, q) for q in qids}
    sid = create(httpd, qids, fb)
    emulator.clear_requests()
    emulator.fault(rf"^/api/v2/routing/queues/{qids[1]}$", method="PUT", delay=4)
    old = stream_status(httpd)["holder"]
    activate(httpd, sid)
    # the request log has the PUT from its start: no status while it is delayed
    wait_for(lambda: [x for x in puts(emulator, qids[1]) if x["status"] is None], timeout=20,
             what="the second queue's PUT in flight")
    assert len(puts(emulator, qids[0])) == 1
    httpd.kill_child(old["pid"])
    wait_for(lambda: (lambda s: s["holder"] and s["holder"]["id"] != old["id"])(
        stream_status(httpd)), timeout=30, what="a new holder")
    s = wait_settled(httpd, sid, timeout=90)
    report(f"strategy activation across a SIGKILL of the holder: {s['status']}, "
           f"{len(puts(emulator))} queue PUTs")
    states = {q["queue_id"]: q["state"] for q in s["activation"]["queues"]}
    # the new holder treated the in-flight PUT as possibly applied: re-read, PUT again
    seq = [x["method"] for x in emulator.requests(path=rf"^/api/v2/routing/queues/{qids[1]}$")]
    assert seq[:4] == ["GET", "PUT", "GET", "PUT"], seq
    if s["status"] == "active":
        assert set(states.values()) == {"confirmed"}, s
        for q in qids:
            now = queue_now(emulator, q)
            assert now["skillEvaluationMethod"] == "ALL", now
            assert without(now, MOVING + ("skillEvaluationMethod",)) == \
                without(before[q], MOVING + ("skillEvaluationMethod",))
    else:
        assert set(states.values()) <= {"restored", "saved"}, s
        for q in qids:
            assert without(queue_now(emulator, q)) == without(before[q])
    done = [x for x in audit(httpd, sid) if x["action"] == "strategy_activation_complete"]
    assert len(done) == 1, done
