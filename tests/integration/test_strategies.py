"""Routing strategies through the admin API (SPEC §3.6, §5.6, §9.9): create
(structure, then the live platform), list, get, delete, rebalance, WFM sync,
latency and the audit trail, against a real apache2 and the Genesys Cloud
emulator (scripted observations, members with skills, conversation
aggregates, the asynchronous audit query).

The actor comes from a header set by a "trusted proxy" (GcmonAdminActor
header:X-Test-User), so a request without it shows the 403. A second server
on the same database has no client credentials and no WFM webhook."""
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from conftest import CLIENT_ID, CLIENT_SECRET
from httpd import Httpd, assert_problem, wait_for
from webhook_sink import WebhookSink

API = "/gcmon/api/v1"
STRATS = API + "/admin/strategies"
WFM_PATH = "/wfm/strategies-" + uuid.uuid4().hex
ACTOR = {"X-Test-User": "alice"}
SKILL = "sskill-" + uuid.uuid4().hex[:8]
OTHER_SKILL = "sother-" + uuid.uuid4().hex[:8]
OBS = "/api/v2/analytics/queues/observations/query"


@pytest.fixture(scope="module")
def sink():
    s = WebhookSink().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def httpd(emulator, sink):
    emulator.add_skills([{"id": SKILL, "name": "Strategy " + SKILL},
                         {"id": OTHER_SKILL, "name": "Other " + OTHER_SKILL}])
    # No GcmonStream: the background holder delivers the outbox (the WFM sink).
    h = Httpd(emulator_url=emulator.url, env={"GCMON_TEST_SECRET": CLIENT_SECRET},
              gcmon_conf=(f"GcmonClientID {CLIENT_ID}\n"
                          "GcmonClientSecret env:GCMON_TEST_SECRET\n"
                          "GcmonRequestTimeout 5s\n"
                          "GcmonRequestDeadline 3s\n"
                          "GcmonRateLimit 6000\n"
                          "GcmonAdminActor header:X-Test-User\n"
                          f"GcmonWfmWebhook {sink.url(WFM_PATH)}\n"),
              start_servers=1)
    h.start()
    try:
        yield h
    finally:
        h.cleanup()


@pytest.fixture(scope="module")
def bare(httpd, emulator):
    """The same database, no client credentials, no WFM webhook."""
    h = Httpd(emulator_url=emulator.url, database=httpd.db,
              gcmon_conf="GcmonAdminActor header:X-Test-User\n", start_servers=1)
    h.start()
    try:
        yield h
    finally:
        h.cleanup()


@pytest.fixture(autouse=True)
def clean(emulator):
    emulator.clear_faults()
    emulator.clear_requests()
    yield
    emulator.clear_faults()
    emulator.audit_config(running_polls=1, fail=False)


# ------------------------------------------------------------------ helpers

def admin(h, method, path, body=None, headers=None):
    hd = dict(ACTOR)
    hd.update(headers or {})
    return h.admin(method, path, body=body, headers=hd)


def get(h, path, headers=None):
    hd = dict(ACTOR)
    hd.update(headers or {})
    return h.get(path, headers=hd)


def make_queue(emulator, members=2, skills=(SKILL,), interacting=0):
    """A queue of `members` agents having `skills`, its oInteracting scripted."""
    tag = uuid.uuid4().hex[:8]
    qid = "sq-" + tag
    users = [f"su-{tag}-{i}" for i in range(members)]
    emulator.add_agents([{"id": u, "name": f"Strategy {tag} {i}", "presence": "OnQueue",
                          "skills": [{"id": s, "proficiency": 3} for s in skills]}
                         for i, u in enumerate(users)])
    emulator.add_queues([{"id": qid, "name": "Strategy " + tag, "members": users}])
    emulator.set_queue_observations(qid, interacting=interacting)
    return qid


def body_of(queues, capacities=None, required=True, name=None, **extra):
    capacities = capacities or [10] * len(queues)
    b = {"name": name or "Strategy " + uuid.uuid4().hex[:6],
         "description": "test",
         "selection_criteria": {"skills": [{"skill_id": SKILL, "required": required}]},
         "targets": [{"queue_id": q, "priority": i + 1, "weight": 1, "capacity": c}
                     for i, (q, c) in enumerate(zip(queues, capacities))],
         "fallback": {"queue_id": "sq-fallback", "priority": 99, "weight": 1}}
    b.update(extra)
    return b


def create(h, emulator, n=2, capacities=None, **kw):
    queues = [make_queue(emulator) for _ in range(n)]
    r = admin(h, "POST", STRATS, body_of(queues, capacities, **kw))
    assert r.status == 201, r
    return r.json, queues


def audit_rows(h, sid, action=None):
    q = f"{API}/admin/audit?target={sid}&limit=100" + (f"&action={action}" if action else "")
    r = get(h, q)
    assert r.status == 200, r
    return r.json["data"]


def wfm_hooks(sink, sid):
    out = [json.loads(x.body) for x in sink.requests(WFM_PATH) if x.ok]
    return [b for b in out if b.get("strategy_id") == sid]


def set_status(h, sid, status):
    """Write a row's status straight into the database (for the listing's
    filter and the sync's body, without waiting for an activation)."""
    assert h.db.execute("UPDATE gcmon_strategy SET status = ? WHERE strategy_id = ?",
                        [(status, sid)]) >= 1


def upstream_requests(emulator):
    return [r for r in emulator.requests() if r["path"].startswith("/api/v2/")]


# ------------------------------------------------------------------ create: structure

VALID_Q = ["sq-a", "sq-b"]
STRUCTURE = [
    ("name", lambda b: b.pop("name")),
    ("name", lambda b: b.update(name="   ")),
    ("targets", lambda b: b.update(targets=[])),
    ("targets[1].queue_id", lambda b: b["targets"].__setitem__(
        1, dict(b["targets"][0]))),
    ("fallback.queue_id", lambda b: b["fallback"].update(queue_id="sq-a")),
    ("targets[0].weight", lambda b: b["targets"][0].update(weight=0)),
    ("targets[1].capacity", lambda b: b["targets"][1].update(capacity=0)),
    ("targets[0].priority", lambda b: b["targets"][0].update(priority=0)),
    ("targets[0].queue_id", lambda b: b["targets"][0].update(queue_id="bad id!")),
    ("selection_criteria.skills[0].required",
     lambda b: b["selection_criteria"]["skills"][0].update(required="yes")),
    ("status", lambda b: b.update(status="draft")),
    ("fallback", lambda b: b.pop("fallback")),
]


@pytest.mark.parametrize("field,mutate", STRUCTURE, ids=[f for f, _ in STRUCTURE])
def test_structure_is_422_naming_the_field(httpd, emulator, field, mutate):
    b = body_of(VALID_Q)
    mutate(b)
    r = admin(httpd, "POST", STRATS, b)
    body = assert_problem(r, 422, "validation_failed")
    assert field in [e["field"] for e in body["errors"]], body
    assert upstream_requests(emulator) == []          # nothing asked upstream
    rows = get(httpd, f"{API}/admin/audit?action=strategy_create&limit=1").json["data"]
    assert rows and rows[0]["status"] == 422 and rows[0]["actor"] == "alice", rows


def test_body_not_an_object_is_400(httpd, emulator):
    r = admin(httpd, "POST", STRATS, "[1]")
    assert r.status == 400, r
    r = admin(httpd, "POST", STRATS, "{")
    assert r.status == 400, r


# ------------------------------------------------------------------ create: live

def test_no_spare_capacity_is_422(httpd, emulator):
    q1, q2 = make_queue(emulator), make_queue(emulator, interacting=5)
    before = get(httpd, STRATS + "?limit=100").json["total"]
    r = admin(httpd, "POST", STRATS, body_of([q1, q2], capacities=[10, 5]))
    body = assert_problem(r, 422, "validation_failed", field="targets[1]")
    assert q2 in body["errors"][0]["message"], body
    v = body["validation"]
    assert v["ok"] is False, v
    assert v["targets"][0] == {"queue_id": q1, "spare_capacity": 10, "skilled_members": True,
                               "ok": True, "reasons": []}, v
    assert v["targets"][1]["reasons"] == ["no_spare_capacity"], v
    assert v["targets"][1]["spare_capacity"] == 0, v
    assert get(httpd, STRATS + "?limit=100").json["total"] == before     # nothing stored
    obs = emulator.requests(path=OBS)
    assert len(obs) == 1, obs
    assert json.loads(obs[0]["body"])["filter"]["predicates"] == [
        {"dimension": "queueId", "value": q1}, {"dimension": "queueId", "value": q2}]


def test_no_skilled_member_is_422(httpd, emulator):
    q1 = make_queue(emulator)
    q2 = make_queue(emulator, skills=(OTHER_SKILL,))
    r = admin(httpd, "POST", STRATS, body_of([q1, q2]))
    body = assert_problem(r, 422, "validation_failed", field="targets[1]")
    assert body["validation"]["targets"][1]["reasons"] == ["no_skilled_member"], body
    assert body["validation"]["targets"][1]["skilled_members"] is False, body
    probes = emulator.requests(path=f"/api/v2/routing/queues/{q2}/members")
    assert len(probes) == 1 and f"skills={SKILL}" in probes[0]["query"], probes
    assert "pageSize=1" in probes[0]["query"], probes
    # A skill that is only preferred is not checked: the same queues pass.
    r = admin(httpd, "POST", STRATS, body_of([q1, q2], required=False))
    assert r.status == 201, r
    assert r.json["validation"]["ok"] is True, r.json


def test_unknown_queue_is_422(httpd, emulator):
    q1 = make_queue(emulator)
    missing = "sq-missing-" + uuid.uuid4().hex[:6]
    r = admin(httpd, "POST", STRATS, body_of([missing, q1]))
    body = assert_problem(r, 422, "validation_failed", field="targets[0]")
    assert missing in body["errors"][0]["message"], body


def test_upstream_failures_are_502_and_503(httpd, emulator):
    q1 = make_queue(emulator)
    emulator.fault("^" + OBS + "$", status=429, retry_after=120, count=1)
    r = admin(httpd, "POST", STRATS, body_of([q1]))
    assert_problem(r, 503, "upstream_throttled")
    assert int(r.header("retry-after")) >= 1, r
    emulator.clear_faults()
    emulator.fault(f"^/api/v2/routing/queues/{q1}/members$", status=403, count=1)
    r = admin(httpd, "POST", STRATS, body_of([q1]))
    assert_problem(r, 502, "upstream_forbidden")
    rows = get(httpd, f"{API}/admin/audit?action=strategy_create&limit=2").json["data"]
    assert [x["status"] for x in rows] == [502, 503], rows


# ------------------------------------------------------------------ create: success

def test_create_is_a_draft_with_its_report_and_wfm_delivery(httpd, emulator, sink):
    q1, q2 = make_queue(emulator, interacting=3), make_queue(emulator)
    b = body_of([q1, q2], capacities=[10, 4], name="Sales tiers")
    r = admin(httpd, "POST", STRATS, b)
    assert r.status == 201, r
    doc = r.json
    sid = doc["id"]
    assert sid.startswith("strat-") and len(sid) == 6 + 32, sid
    assert r.header("location") == f"{STRATS}/{sid}", r.headers
    assert doc["status"] == "draft" and doc["name"] == "Sales tiers", doc
    assert doc["description"] == "test", doc
    assert doc["selection_criteria"] == {"skills": [{"skill_id": SKILL, "required": True}]}, doc
    assert [t["queue_id"] for t in doc["targets"]] == [q1, q2], doc
    assert doc["targets"][0] == {"queue_id": q1, "priority": 1, "weight": 1.0,
                                 "capacity": 10}, doc
    assert doc["fallback"] == {"queue_id": "sq-fallback", "priority": 99, "weight": 1.0}, doc
    assert doc["validation"]["ok"] is True, doc
    assert doc["validation"]["targets"][0]["spare_capacity"] == 7, doc
    assert doc["error_message"] is None and doc["job_id"] is None, doc
    assert doc["activation"] is None, doc
    assert doc["created_by"] == "alice", doc
    assert doc["created_at"].endswith("Z") and doc["created_at"] == doc["updated_at"], doc
    assert doc["activated_at"] is None and doc["rebalanced_at"] is None, doc
    assert doc["observed_at"] is None and doc["revision"] == 1, doc
    assert set(doc) == {"id", "name", "description", "status", "selection_criteria", "targets",
                        "fallback", "validation", "error_message", "job_id", "activation",
                        "created_by", "created_at", "updated_at", "activated_at",
                        "rebalanced_at", "observed_at", "revision"}, doc
    g = get(httpd, f"{STRATS}/{sid}")
    assert g.status == 200 and g.json == doc, g
    rows = audit_rows(httpd, sid, "strategy_create")
    assert len(rows) == 1 and rows[0]["status"] == 201 and rows[0]["actor"] == "alice", rows
    assert rows[0]["request"]["name"] == "Sales tiers", rows
    hooks = wait_for(lambda: wfm_hooks(sink, sid), timeout=20, what="the WFM delivery")
    assert len(hooks) == 1, hooks
    assert set(hooks[0]) == {"strategy_id", "name", "status", "targets", "timestamp"}, hooks
    assert hooks[0]["status"] == "draft" and hooks[0]["name"] == "Sales tiers", hooks
    assert hooks[0]["targets"] == doc["targets"], hooks


# ------------------------------------------------------------------ list, get

def test_list_filter_and_pages(httpd, emulator):
    made = [create(httpd, emulator, n=1)[0]["id"] for _ in range(3)]
    r = get(httpd, STRATS + "?limit=2")
    assert r.status == 200, r
    page = r.json
    assert page["total"] >= 3 and page["limit"] == 2 and page["offset"] == 0, page
    assert [x["id"] for x in page["data"]] == made[::-1][:2], page
    row = page["data"][0]
    assert set(row) == {"id", "name", "status", "targets", "error_message", "job_id",
                        "created_by", "created_at", "updated_at", "activated_at",
                        "rebalanced_at", "revision"}, row
    assert page["next_cursor"], page
    r = get(httpd, STRATS + "?limit=2&cursor=" + page["next_cursor"])
    assert r.status == 200 and r.json["data"][0]["id"] == made[0], r.json
    r = get(httpd, STRATS + "?limit=1&offset=1")
    assert r.json["data"][0]["id"] == made[1], r.json

    set_status(httpd, made[1], "failed")
    r = get(httpd, STRATS + "?status=failed&limit=100")
    assert made[1] in [x["id"] for x in r.json["data"]], r.json
    assert all(x["status"] == "failed" for x in r.json["data"]), r.json
    assert r.json["total"] == len(r.json["data"]), r.json

    assert_problem(get(httpd, STRATS + "?status=paused"), 400, "validation_failed",
                   field="status")
    assert_problem(get(httpd, STRATS + "?limit=0"), 400, "validation_failed", field="limit")
    assert_problem(get(httpd, STRATS + "?cursor=abc"), 400, "validation_failed", field="cursor")


def test_get_bad_id_and_unknown(httpd):
    assert_problem(get(httpd, f"{STRATS}/{'x' * 65}"), 400, "validation_failed")
    assert_problem(get(httpd, f"{STRATS}/strat-nope"), 404, "strategy_not_found")


# ------------------------------------------------------------------ delete

def test_delete(httpd, emulator):
    sid = create(httpd, emulator, n=1)[0]["id"]
    r = admin(httpd, "DELETE", f"{STRATS}/{sid}")
    assert r.status == 204 and r.body == b"", r
    assert_problem(get(httpd, f"{STRATS}/{sid}"), 404, "strategy_not_found")
    rows = audit_rows(httpd, sid, "strategy_delete")
    assert len(rows) == 1 and rows[0]["status"] == 204, rows
    assert_problem(admin(httpd, "DELETE", f"{STRATS}/{sid}"), 404, "strategy_not_found")
    assert [x["status"] for x in audit_rows(httpd, sid, "strategy_delete")] == [404, 204]

    assert_problem(admin(httpd, "DELETE", f"{STRATS}/{'y' * 65}"), 400, "validation_failed")


def wait_status(h, sid, status, timeout=30):
    return wait_for(lambda: get(h, f"{STRATS}/{sid}").json["status"] == status,
                    timeout=timeout, what=f"strategy {sid} {status}")


def test_delete_and_rebalance_refused_while_activating_and_active(httpd, emulator):
    """Through the real activation (POST …/activate, the holder's job): while
    its validation waits on a delayed observations query the strategy is
    activating; then active. Neither may be deleted; an activating one is not
    rebalanced."""
    sid = create(httpd, emulator, n=1)[0]["id"]
    emulator.fault("^" + OBS + "$", delay=2.5, count=1)
    r = admin(httpd, "POST", f"{STRATS}/{sid}/activate", {})
    assert r.status == 202, r
    body = assert_problem(admin(httpd, "DELETE", f"{STRATS}/{sid}"), 409,
                          "strategy_not_deletable")
    assert body["strategy_status"] == "activating" and "activating" in body["detail"], body
    assert_problem(admin(httpd, "POST", f"{STRATS}/{sid}/rebalance", {}), 409,
                   "strategy_activating")
    assert audit_rows(httpd, sid, "strategy_rebalance")[0]["status"] == 409
    wait_status(httpd, sid, "active")
    body = assert_problem(admin(httpd, "DELETE", f"{STRATS}/{sid}"), 409,
                          "strategy_not_deletable")
    assert body["strategy_status"] == "active", body
    assert get(httpd, f"{STRATS}/{sid}").status == 200
    assert [x["status"] for x in audit_rows(httpd, sid, "strategy_delete")] == [409, 409]
    # an active strategy is rebalanced in place
    assert admin(httpd, "POST", f"{STRATS}/{sid}/rebalance", {}).status == 200
    assert get(httpd, f"{STRATS}/{sid}").json["status"] == "active"


def test_delete_failed(httpd, emulator):
    """A failed activation (its validation finds no spare capacity) leaves a
    failed strategy, which may be deleted."""
    doc, (q1,) = create(httpd, emulator, n=1)
    sid = doc["id"]
    emulator.set_queue_observations(q1, interacting=10)
    assert admin(httpd, "POST", f"{STRATS}/{sid}/activate", {}).status == 202
    wait_status(httpd, sid, "failed")
    assert get(httpd, f"{STRATS}/{sid}").json["error_message"], sid
    assert admin(httpd, "DELETE", f"{STRATS}/{sid}").status == 204
    assert_problem(get(httpd, f"{STRATS}/{sid}"), 404, "strategy_not_found")


# ------------------------------------------------------------------ rebalance

def test_rebalance_weights_are_one_over_one_plus_occupancy(httpd, emulator, sink):
    doc, (q1, q2, q3) = create(httpd, emulator, n=3, capacities=[10, 4, 8])
    sid = doc["id"]
    emulator.set_queue_observations(q1, interacting=3)        # 0.3
    emulator.set_queue_observations(q2, interacting=6)        # 1.5 (over capacity: kept)
    emulator.set_queue_observations(q3, interacting=0)        # 0
    emulator.clear_requests()
    r = admin(httpd, "POST", f"{STRATS}/{sid}/rebalance", {})
    assert r.status == 200, r
    out = r.json
    assert out["strategy_id"] == sid and out["rebalanced"] == 3 and out["kept"] == 0, out
    assert out["revision"] == 2, out
    want = [1 / (1 + 3 / 10), 1 / (1 + 6 / 4), 1.0]
    assert [t["weight"] for t in out["targets"]] == want, out
    assert [t["previous_weight"] for t in out["targets"]] == [1.0, 1.0, 1.0], out
    assert out["targets"][1]["occupancy"] == 1.5 and out["targets"][1]["interacting"] == 6, out
    # observations only: no member probe, no queue write
    assert [x["path"] for x in upstream_requests(emulator)] == [OBS], upstream_requests(emulator)
    g = get(httpd, f"{STRATS}/{sid}").json
    assert [t["weight"] for t in g["targets"]] == want, g
    assert g["revision"] == 2 and g["rebalanced_at"] == out["rebalanced_at"], g
    assert g["fallback"]["weight"] == 1.0, g
    rows = audit_rows(httpd, sid, "strategy_rebalance")
    assert len(rows) == 1 and rows[0]["status"] == 200 and rows[0]["actor"] == "alice", rows
    hooks = wait_for(lambda: [h for h in wfm_hooks(sink, sid)
                              if h["targets"][0]["weight"] != 1.0],
                     timeout=20, what="the rebalance's WFM delivery")
    assert [t["weight"] for t in hooks[0]["targets"]] == want, hooks

    # Empty body works too; any member is refused.
    assert admin(httpd, "POST", f"{STRATS}/{sid}/rebalance").status == 200
    body = assert_problem(admin(httpd, "POST", f"{STRATS}/{sid}/rebalance", {"force": True}),
                          422, "validation_failed", field="force")
    assert body["status"] == 422

    assert_problem(admin(httpd, "POST", f"{STRATS}/strat-nope/rebalance", {}), 404,
                   "strategy_not_found")


def test_rebalance_upstream_failure_writes_nothing(httpd, emulator):
    doc, _ = create(httpd, emulator, n=1)
    sid = doc["id"]
    emulator.fault("^" + OBS + "$", status=503, count=20)
    r = admin(httpd, "POST", f"{STRATS}/{sid}/rebalance", {})
    assert r.status in (502, 503), r
    assert r.json["type"].startswith("urn:gcmon:problem:upstream"), r.json
    assert get(httpd, f"{STRATS}/{sid}").json["revision"] == 1


# ------------------------------------------------------------------ sync

def test_sync_queues_one_wfm_delivery(httpd, emulator, sink):
    sid = create(httpd, emulator, n=1)[0]["id"]
    wait_for(lambda: wfm_hooks(sink, sid), timeout=20, what="the create's WFM delivery")
    set_status(httpd, sid, "active")
    r = admin(httpd, "POST", f"{STRATS}/{sid}/sync", {})
    assert r.status == 202, r
    assert r.json == {"strategy_id": sid, "queued": True}, r.json
    hooks = wait_for(lambda: [h for h in wfm_hooks(sink, sid) if h["status"] == "active"],
                     timeout=20, what="the sync's WFM delivery")
    assert len(hooks) == 1, hooks
    rows = audit_rows(httpd, sid, "strategy_sync")
    assert len(rows) == 1 and rows[0]["status"] == 202, rows
    assert_problem(admin(httpd, "POST", f"{STRATS}/strat-nope/sync", {}), 404,
                   "strategy_not_found")


def test_without_credentials_or_wfm(httpd, bare, emulator):
    sid = create(httpd, emulator, n=1)[0]["id"]
    body = assert_problem(admin(bare, "POST", f"{STRATS}/{sid}/sync", {}), 409,
                          "wfm_not_configured")
    assert "GcmonWfmWebhook" in body["detail"], body
    q1 = make_queue(emulator)
    emulator.clear_requests()
    assert_problem(admin(bare, "POST", STRATS, body_of([q1])), 503, "upstream_not_configured")
    assert_problem(admin(bare, "POST", f"{STRATS}/{sid}/rebalance", {}), 503,
                   "upstream_not_configured")
    assert upstream_requests(emulator) == []
    # reads need no upstream
    assert get(bare, f"{STRATS}/{sid}").json["id"] == sid


# ------------------------------------------------------------------ latency

def test_latency_from_the_aggregates(httpd, emulator):
    doc, (q1, q2) = create(httpd, emulator, n=2)
    sid = doc["id"]
    emulator.set_queue_aggregates(q1, tWait=[1000, 4000, 2500, 9000], tAnswered=[300, 500],
                                  nOffered=4, at="2026-01-05T10:00:00Z")
    emulator.set_queue_aggregates(q1, append=True, at="2026-02-05T10:00:00Z", nOffered=50)
    interval = "2026-01-05T00:00:00Z/2026-01-06T00:00:00Z"
    r = get(httpd, f"{STRATS}/{sid}/latency?interval={interval}")
    assert r.status == 200, r
    out = r.json
    assert out["strategy_id"] == sid, out
    assert out["interval"] == "2026-01-05T00:00:00.000Z/2026-01-06T00:00:00.000Z", out
    t1, t2 = out["targets"]
    assert t1 == {"queue_id": q1, "offered": 4, "answered": 2,
                  "wait_ms": {"avg": 4125.0, "max": 9000, "count": 4},
                  "answer_ms": {"avg": 400.0, "max": 500, "count": 2}}, t1
    assert t2 == {"queue_id": q2, "offered": 0, "answered": 0,
                  "wait_ms": {"avg": None, "max": None, "count": 0},
                  "answer_ms": {"avg": None, "max": None, "count": 0}}, t2
    sent = json.loads(emulator.requests(
        path="/api/v2/analytics/conversations/aggregates/query")[-1]["body"])
    assert sent["groupBy"] == ["queueId"], sent
    assert sorted(sent["metrics"]) == ["nOffered", "tAnswered", "tWait"], sent
    assert [p["value"] for p in sent["filter"]["predicates"]] == [q1, q2], sent

    for bad in ("", "2026-01-05T00:00:00Z", "2026-01-05T00:00:00Z/P1D",
                "2026-01-06T00:00:00Z/2026-01-05T00:00:00Z",
                "2026-01-01T00:00:00Z/2026-02-01T00:00:01Z", "x/y"):
        r = get(httpd, f"{STRATS}/{sid}/latency?interval={bad}")
        assert_problem(r, 400, "validation_failed", field="interval")
    assert_problem(get(httpd, f"{STRATS}/{sid}/latency"), 400, "validation_failed",
                   field="interval")
    assert_problem(get(httpd, f"{STRATS}/{sid}/latency?interval={interval}&interval={interval}"),
                   400, "validation_failed", field="interval")
    assert_problem(get(httpd, f"{STRATS}/strat-nope/latency?interval={interval}"), 404,
                   "strategy_not_found")


# ------------------------------------------------------------------ audit

def test_audit_trail_gcmon_and_genesys(httpd, emulator):
    doc, (q1, q2) = create(httpd, emulator, n=2)
    sid = doc["id"]
    assert admin(httpd, "POST", f"{STRATS}/{sid}/rebalance", {}).status == 200
    r = get(httpd, f"{STRATS}/{sid}/audit")
    assert r.status == 200, r
    out = r.json
    assert out["strategy_id"] == sid and out["upstream"] is False, out
    assert [e["action"] for e in out["entries"]] == ["strategy_rebalance", "strategy_create"], out
    assert all(e["source"] == "gcmon" and e["target"] == sid for e in out["entries"]), out
    assert out["entries"][1]["actor"] == "alice" and out["entries"][1]["status"] == 201, out
    assert emulator.requests(path="/api/v2/audits/") == []

    now = datetime.now(timezone.utc)
    iso = lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
    emulator.add_audit_entries([
        {"entity": {"id": q1, "name": "Q1"}, "user": {"id": "u-ada", "name": "Ada"},
         "eventDate": iso(now - timedelta(seconds=30)),
         "propertyChanges": [{"property": "skillEvaluationMethod", "oldValues": ["BEST"],
                              "newValues": ["ALL"]}]},
        {"entity": {"id": q2}, "client": "client-x", "eventDate": iso(now - timedelta(days=2))},
        {"entity": {"id": "sq-unrelated"}, "eventDate": iso(now - timedelta(seconds=5))}])
    emulator.audit_config(running_polls=2)
    r = get(httpd, f"{STRATS}/{sid}/audit?upstream=true")
    assert r.status == 200, r
    out = r.json
    assert out["upstream"] is True, out
    sources = [e["source"] for e in out["entries"]]
    assert sources.count("genesys") == 1 and sources.count("gcmon") == 2, out
    g = [e for e in out["entries"] if e["source"] == "genesys"][0]
    assert g["actor"] == "Ada" and g["action"] == "Update", g
    assert g["entity"] == {"id": q1, "type": "Queue", "name": "Q1"}, g
    assert g["changes"] == [{"property": "skillEvaluationMethod", "old": ["BEST"],
                             "new": ["ALL"]}], g
    ats = [e["at"] for e in out["entries"]]
    assert ats == sorted(ats, reverse=True), ats
    qs = emulator.audit_queries()
    mine = [q for q in qs if {"property": "EntityId", "value": q1} in q["filters"]]
    assert len(mine) == 1 and mine[0]["serviceName"] == "Routing", qs
    assert mine[0]["polls"] == 3 and mine[0]["state"] == "Succeeded", mine
    assert {"property": "EntityId", "value": q2} in mine[0]["filters"], mine

    assert_problem(get(httpd, f"{STRATS}/{sid}/audit?upstream=yes"), 400, "validation_failed",
                   field="upstream")
    assert_problem(get(httpd, f"{STRATS}/strat-nope/audit"), 404, "strategy_not_found")


def test_audit_upstream_failures(httpd, emulator):
    sid = create(httpd, emulator, n=1)[0]["id"]
    emulator.audit_config(fail=True)
    assert_problem(get(httpd, f"{STRATS}/{sid}/audit?upstream=true"), 502,
                   "upstream_audit_failed")
    # Still running when the request's deadline (3 s) would pass: 503 at once.
    emulator.audit_config(fail=False, running_polls=100)
    t0 = time.monotonic()
    r = get(httpd, f"{STRATS}/{sid}/audit?upstream=true")
    assert_problem(r, 503, "upstream_deadline")
    assert int(r.header("retry-after")) >= 1, r
    assert time.monotonic() - t0 < 3.0, "waited past the deadline"


# ------------------------------------------------------------------ access

def test_actor_and_admin_write_guard(httpd, emulator):
    assert_problem(httpd.get(STRATS), 403)
    assert_problem(httpd.admin("POST", STRATS, body=body_of(VALID_Q)), 403)
    assert_problem(httpd.get(f"{STRATS}/strat-x/audit"), 403)
    r = httpd.request("POST", STRATS, body=json.dumps(body_of(VALID_Q)),
                      headers={"Content-Type": "application/json", **ACTOR})
    assert_problem(r, 403, "missing_request_header")
    r = admin(httpd, "POST", STRATS, body_of(VALID_Q), headers={"Sec-Fetch-Site": "cross-site"})
    assert_problem(r, 403, "cross_site_request")
    r = httpd.request("POST", STRATS, body=json.dumps(body_of(VALID_Q)),
                      headers={"Content-Type": "text/plain", "X-Gcmon-Request": "1", **ACTOR})
    assert_problem(r, 415)
    r = httpd.request("DELETE", f"{STRATS}/strat-x", headers=ACTOR)
    assert_problem(r, 403, "missing_request_header")
    r = admin(httpd, "PUT", STRATS, {})
    assert_problem(r, 405)
    assert "GET" in r.header("allow") and "POST" in r.header("allow"), r.headers
    assert upstream_requests(emulator) == []
