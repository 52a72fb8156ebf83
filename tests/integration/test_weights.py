"""Routing-weight distribution through the admin API (SPEC §3.4, §5.4, §9.7):
POST /v1/admin/queues/{queueId}/weights against a real apache2 and the
Genesys Cloud emulator.

gcmon validates the body (422, nothing upstream), reads the queue's members,
projects the saturation (409, nothing written), reads every member's current
proficiency of the weight skill, sets the queue to skillEvaluationMethod BEST
(read-modify-write), writes each member's proficiency round(5*w, 2), and on a
member failure restores everything (502 member_update_failed). Every outcome
is audited (action weights_distribute, target the queue id)."""
import json
import uuid

import pytest

from conftest import CLIENT_ID, CLIENT_SECRET
from httpd import Httpd, assert_problem

API = "/gcmon/api/v1"
AUDIT = API + "/admin/audit"
SKILL = "wskill-" + uuid.uuid4().hex[:8]
CONF_QUEUE = "wq-conf-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def httpd(emulator):
    emulator.add_skills([{"id": SKILL, "name": "Weight " + SKILL}])
    h = Httpd(emulator_url=emulator.url, env={"GCMON_TEST_SECRET": CLIENT_SECRET},
              gcmon_conf=(f"GcmonClientID {CLIENT_ID}\n"
                          "GcmonClientSecret env:GCMON_TEST_SECRET\n"
                          "GcmonRequestTimeout 5s\n"
                          "GcmonRateLimit 6000\n"
                          "GcmonAdminActor anonymous\n"
                          f"GcmonWeightSkill {CONF_QUEUE} {SKILL}\n"
                          # the stream is off: deliveries stay queued, for the test to read
                          "GcmonWfmWebhook http://127.0.0.1:9/wfm\n"),
              start_servers=1)
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


def weights_path(qid):
    return f"{API}/admin/queues/{qid}/weights"


def post(h, qid, body, headers=None):
    return h.admin("POST", weights_path(qid), body=body, headers=headers)


def make_queue(emulator, n, proficiency=1.0, routing="IDLE", qid=None, without=(), **queue):
    """A queue of n fresh members, each with the weight skill at `proficiency`
    (but those whose index is in `without`)."""
    tag = uuid.uuid4().hex[:8]
    qid = qid or "wq-" + tag
    users = [f"wu-{tag}-{i}" for i in range(n)]
    emulator.add_agents([{"id": u, "name": f"Weights {tag} {i}", "presence": "OnQueue",
                          "routing_status": routing,
                          "skills": [] if i in without else
                          [{"id": SKILL, "proficiency": proficiency}]}
                         for i, u in enumerate(users)])
    emulator.add_queues([{"id": qid, "name": "Weights " + tag,
                          "skill_evaluation_method": "NONE", "members": users, **queue}])
    return qid, users


def writes(emulator):
    return [r for r in emulator.requests() if r["method"] in ("PUT", "DELETE", "PATCH")]


def skill_of(emulator, uid):
    r = emulator.request("GET", f"/api/v2/users/{uid}/routingskills?pageSize=100",
                         token=emulator.token())
    assert r.status == 200, r
    for s in r.json["entities"]:
        if s["id"] == SKILL:
            return s
    return None


def queue_of(emulator, qid):
    r = emulator.request("GET", f"/api/v2/routing/queues/{qid}", token=emulator.token())
    assert r.status == 200, r
    return r.json


def last_audit(h, qid):
    r = h.get(f"{AUDIT}?action=weights_distribute&target={qid}&limit=1")
    assert r.status == 200, r
    assert r.json["data"], r.json
    return r.json["data"][0]


def body_of(users, weights, **extra):
    b = {"member_weights": dict(zip(users, weights)), "overflow_threshold": 0.85,
         "utilization_target": 0.8, "projected_load": 0, "skill_id": SKILL}
    b.update(extra)
    return b


# ------------------------------------------------------------------ refusals

def test_validation_error_is_422_and_writes_nothing(httpd, emulator):
    qid, users = make_queue(emulator, 2)
    emulator.clear_requests()
    r = post(httpd, qid, body_of(users, [0.7, 0.6]))          # sum 1.3 > 1
    assert r.status == 422, r
    assert r.json["type"].endswith("validation_failed"), r.json
    assert any(e["field"] == "member_weights" for e in r.json["errors"]), r.json
    assert writes(emulator) == []
    r = post(httpd, qid, body_of(users, [1.5, -0.1]))
    assert r.status == 422, r
    fields = {e["field"] for e in r.json["errors"]}
    assert {f"member_weights.{users[0]}", f"member_weights.{users[1]}"} <= fields, r.json
    assert emulator.requests() == []
    a = last_audit(httpd, qid)
    assert a["status"] == 422 and a["action"] == "weights_distribute", a


def test_no_skill_is_422(httpd, emulator):
    qid, users = make_queue(emulator, 1)
    b = body_of(users, [0.5])
    del b["skill_id"]
    r = post(httpd, qid, b)
    assert r.status == 422, r
    assert any(e["field"] == "skill_id" for e in r.json["errors"]), r.json
    assert writes(emulator) == []


def test_non_member_is_422(httpd, emulator):
    qid, users = make_queue(emulator, 2)
    _, others = make_queue(emulator, 1)
    emulator.clear_requests()
    r = post(httpd, qid, body_of([users[0], others[0]], [0.3, 0.3]))
    assert r.status == 422, r
    assert writes(emulator) == []


def test_saturation_is_409_and_writes_nothing(httpd, emulator):
    qid, users = make_queue(emulator, 2)
    emulator.clear_requests()
    # capacity 2 * 0.5 = 1; load 5 → ratio 5 > 0.85
    r = post(httpd, qid, body_of(users, [0.5, 0.5], projected_load=5, utilization_target=0.5))
    assert r.status == 409, r
    assert r.json["type"].endswith("saturation_blocked"), r.json
    assert writes(emulator) == []
    assert skill_of(emulator, users[0])["proficiency"] == 1.0


# ------------------------------------------------------------------ success

def test_happy_path(httpd, emulator):
    qid, users = make_queue(emulator, 3)
    weights = [0.1234, 0.333, 0.5]
    emulator.clear_requests()
    b = body_of(users, weights)
    del b["projected_load"]                    # from the observations query: 0 here
    r = post(httpd, qid, b)
    assert r.status == 200, r
    doc = r.json
    assert doc["status"] == "completed" and doc["queue_id"] == qid, doc
    assert doc["upstream_requests"] >= 3 + 2 + 3, doc
    assert doc["saturation"]["active_agents"] == 3, doc
    obs = [x for x in emulator.requests(path="/api/v2/analytics/queues/observations/query")]
    assert len(obs) == 1, obs
    assert json.loads(obs[0]["body"])["filter"]["predicates"] == [
        {"dimension": "queueId", "value": qid}], obs
    puts = [x for x in writes(emulator) if "/routingskills/" in x["path"]]
    assert len(puts) == 3, puts
    for u, w in zip(users, weights):
        mine = [x for x in puts if x["path"] == f"/api/v2/users/{u}/routingskills/{SKILL}"]
        assert len(mine) == 1 and mine[0]["method"] == "PUT", puts
        sent = json.loads(mine[0]["body"])
        assert sent == {"id": SKILL, "proficiency": round(5 * w, 2), "state": "active"}, sent
        assert skill_of(emulator, u)["proficiency"] == round(5 * w, 2)
    assert queue_of(emulator, qid)["skillEvaluationMethod"] == "BEST"
    qputs = [x for x in writes(emulator) if x["path"] == f"/api/v2/routing/queues/{qid}"]
    assert len(qputs) == 1
    assert writes(emulator).index(qputs[0]) == 0          # the queue before any member
    a = last_audit(httpd, qid)
    assert a["status"] == 200 and a["target"] == qid, a
    hooks = [json.loads(row["body"]) for row in
             httpd.db.query("SELECT body FROM gcmon_outbox WHERE target = ?", ("wfm",))]
    mine = [x for x in hooks if x["distribution"]["queue_id"] == qid]
    assert len(mine) == 1, hooks
    assert mine[0]["event"] == "weights_distributed" and mine[0]["actor"] == "-", mine
    assert mine[0]["distribution"] == doc


def test_configured_skill(httpd, emulator):
    qid, users = make_queue(emulator, 1, qid=CONF_QUEUE)
    b = body_of(users, [0.4])
    del b["skill_id"]
    r = post(httpd, qid, b)
    assert r.status == 200, r
    assert skill_of(emulator, users[0])["proficiency"] == 2.0
    # the editor's preview needs no skill_id either
    r = httpd.get(weights_path(qid))
    assert r.status == 200, r
    assert r.json["skill_id"] == SKILL and r.json["members"][0]["proficiency"] == 2.0, r.json


def test_member_failure_rolls_back(httpd, emulator):
    qid, users = make_queue(emulator, 4, proficiency=1.25)
    emulator.fault(f"^/api/v2/users/{users[2]}/routingskills/{SKILL}$", status=400,
                   method="PUT", count=1)
    emulator.clear_requests()
    r = post(httpd, qid, body_of(users, [0.1, 0.2, 0.3, 0.4]))
    assert r.status == 502, r
    assert r.json["type"].endswith("member_update_failed"), r.json
    assert users[2] in r.json["failed"], r.json
    for u in users:
        s = skill_of(emulator, u)
        assert s["proficiency"] == 1.25 and s["state"] == "active", (u, s)
    assert queue_of(emulator, qid)["skillEvaluationMethod"] == "NONE"
    a = last_audit(httpd, qid)
    assert a["status"] == 502, a
    hooks = [json.loads(row["body"]) for row in
             httpd.db.query("SELECT body FROM gcmon_outbox WHERE target = ?", ("wfm",))]
    assert not [x for x in hooks if x["distribution"]["queue_id"] == qid], hooks


def test_rollback_removes_a_new_skill(httpd, emulator):
    """A member who had no weight skill gets it removed again (DELETE) on rollback."""
    qid, users = make_queue(emulator, 3, proficiency=2.5, without=(0,))
    emulator.fault(f"^/api/v2/users/{users[2]}/routingskills/{SKILL}$", status=400,
                   method="PUT", count=1)
    emulator.clear_requests()
    r = post(httpd, qid, body_of(users, [0.2, 0.2, 0.2]))
    assert_problem(r, 502, "member_update_failed")
    deletes = [x for x in writes(emulator) if x["method"] == "DELETE"]
    assert [x["path"] for x in deletes] == [f"/api/v2/users/{users[0]}/routingskills/{SKILL}"]
    assert skill_of(emulator, users[0]) is None
    assert skill_of(emulator, users[1])["proficiency"] == 2.5
    assert skill_of(emulator, users[2])["proficiency"] == 2.5


def test_budget_refusal(emulator):
    """A distribution the rate budget cannot fit before the deadline: 503 up front."""
    h = Httpd(emulator_url=emulator.url, env={"GCMON_TEST_SECRET": CLIENT_SECRET},
              gcmon_conf=(f"GcmonClientID {CLIENT_ID}\n"
                          "GcmonClientSecret env:GCMON_TEST_SECRET\n"
                          "GcmonRateLimit 60\n"
                          "GcmonRequestDeadline 5s\n"
                          "GcmonAdminActor anonymous\n"),
              start_servers=1)
    h.start()
    try:
        qid, users = make_queue(emulator, 5)
        emulator.clear_requests()
        r = post(h, qid, body_of(users, [0.1] * 5))
        assert r.status == 503, r
        # 14 requests at 60 a 61 s window (GcmonRateLimit): 14.2 s, rounded up
        assert int(r.header("Retry-After")) >= 15, r
        assert "14 Genesys Cloud requests, about 15 s" in r.json["detail"], r.json
        assert emulator.requests() == []
    finally:
        h.cleanup()


def test_bad_queue_id_is_400(httpd, emulator):
    r = post(httpd, "a" * 65, body_of(["u1"], [0.5]))
    body = assert_problem(r, 400, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["queue_id"], body
    assert emulator.requests() == []


def test_missing_member_weights_is_422(httpd, emulator):
    qid, _ = make_queue(emulator, 1)
    emulator.clear_requests()
    r = post(httpd, qid, {"skill_id": SKILL})
    body = assert_problem(r, 422, "validation_failed")
    assert any(e["field"].startswith("member_weights") for e in body["errors"]), body
    assert emulator.requests() == []


def test_unknown_queue_is_404(httpd, emulator):
    _, users = make_queue(emulator, 1)
    emulator.clear_requests()
    r = post(httpd, "wq-missing-" + uuid.uuid4().hex[:8], body_of(users, [0.5]))
    assert_problem(r, 404, "queue_not_found")
    assert writes(emulator) == []


# ------------------------------------------------------------------ Idempotency-Key

def test_idempotency_key_replays_byte_identical(httpd, emulator):
    qid, users = make_queue(emulator, 2)
    key = "k-" + uuid.uuid4().hex
    emulator.clear_requests()
    first = post(httpd, qid, body_of(users, [0.2, 0.3]), headers={"Idempotency-Key": key})
    assert first.status == 200, first
    assert emulator.requests() != []
    emulator.clear_requests()
    # the same request, members in another order: the same canonical hash
    b = body_of(users, [0.2, 0.3])
    b["member_weights"] = dict(reversed(list(b["member_weights"].items())))
    again = post(httpd, qid, b, headers={"Idempotency-Key": key})
    assert again.status == 200, again
    assert again.body == first.body
    assert again.header("content-type") == first.header("content-type")
    assert emulator.requests() == []
    a = last_audit(httpd, qid)
    assert a["result"].get("replayed") is True, a


def test_idempotency_key_with_another_body_is_422(httpd, emulator):
    qid, users = make_queue(emulator, 2)
    key = "k-" + uuid.uuid4().hex
    r = post(httpd, qid, body_of(users, [0.2, 0.3]), headers={"Idempotency-Key": key})
    assert r.status == 200, r
    emulator.clear_requests()
    r = post(httpd, qid, body_of(users, [0.3, 0.3]), headers={"Idempotency-Key": key})
    assert_problem(r, 422, "idempotency_key_reused")
    assert emulator.requests() == []


def test_idempotency_key_replays_a_refusal(httpd, emulator):
    qid, users = make_queue(emulator, 2)
    key = "k-" + uuid.uuid4().hex
    b = body_of(users, [0.5, 0.5], projected_load=5, utilization_target=0.5)
    first = post(httpd, qid, b, headers={"Idempotency-Key": key})
    assert first.status == 409, first
    emulator.clear_requests()
    again = post(httpd, qid, b, headers={"Idempotency-Key": key})
    assert (again.status, again.body) == (409, first.body)
    assert emulator.requests() == []


def test_bad_idempotency_key_is_400(httpd, emulator):
    qid, users = make_queue(emulator, 1)
    emulator.clear_requests()
    r = post(httpd, qid, body_of(users, [0.5]), headers={"Idempotency-Key": "x" * 256})
    body = assert_problem(r, 400, "validation_failed")
    assert body["errors"][0]["field"] == "Idempotency-Key", body
    assert emulator.requests() == []


def test_idempotency_key_while_running_is_409(httpd, emulator):
    """A replay while the first request still runs: 409, nothing sent; once
    the first finishes, the same key replays its answer."""
    import threading

    from httpd import wait_for
    qid, users = make_queue(emulator, 2)
    key = "k-" + uuid.uuid4().hex
    b = body_of(users, [0.2, 0.3])
    # the first request's members read waits in the emulator
    emulator.fault(f"/api/v2/routing/queues/{qid}/members", delay=3, count=1, method="GET")
    first = {}
    t = threading.Thread(target=lambda: first.update(r=post(httpd, qid, b,
                                                         headers={"Idempotency-Key": key})))
    t.start()
    try:
        wait_for(lambda: httpd.db.query(
            "SELECT status FROM gcmon_idempotency WHERE idem_key = ?", (key,)) == [{"status": 0}],
            timeout=10, what="the first request's claim")
        emulator.clear_requests()
        r = post(httpd, qid, b, headers={"Idempotency-Key": key})
        assert_problem(r, 409, "idempotency_in_progress")
        assert r.header("retry-after") == "1"
        assert emulator.requests() == []
    finally:
        t.join(30)
    assert first["r"].status == 200, first["r"]
    emulator.clear_requests()
    again = post(httpd, qid, b, headers={"Idempotency-Key": key})
    assert (again.status, again.body) == (200, first["r"].body)
    assert emulator.requests() == []


def test_idempotency_key_of_a_transient_failure_runs_again(httpd, emulator):
    """A 503 (budget, throttling) is not kept: the same key runs again."""
    qid, users = make_queue(emulator, 1)
    key = "k-" + uuid.uuid4().hex
    emulator.fault(f"/api/v2/routing/queues/{qid}/members", status=429, retry_after=600,
                   count=1, method="GET")
    r = post(httpd, qid, body_of(users, [0.5]), headers={"Idempotency-Key": key})
    assert r.status == 503, r
    assert httpd.db.query("SELECT COUNT(*) AS n FROM gcmon_idempotency WHERE idem_key = ?",
                          (key,)) == [{"n": 0}]
    r = post(httpd, qid, body_of(users, [0.5]), headers={"Idempotency-Key": key})
    assert r.status == 200, r


# ------------------------------------------------------------------ the record

DIST = API + "/admin/distributions"


def test_distribution_is_recorded_and_listed(httpd, emulator):
    qid, users = make_queue(emulator, 2)
    r = post(httpd, qid, body_of(users, [0.2, 0.3]))
    assert r.status == 200, r
    doc = r.json
    one = httpd.get(f"{DIST}/{doc['id']}")
    assert one.status == 200, one
    d = one.json
    assert d["id"] == doc["id"] and d["queue_id"] == qid and d["status"] == "completed", d
    assert d["http_status"] == 200 and d["members"] == 2 and d["actor"] == "-", d
    assert d["balance_accuracy"] == doc["balance_accuracy"], d
    assert d["upstream_requests"] == doc["upstream_requests"], d
    assert d["result"] == doc, d
    assert d["request"]["member_weights"] == dict(zip(users, [0.2, 0.3])), d
    # a refused body is a validation_failed distribution; the same queue's listing
    bad = post(httpd, qid, body_of(users, [0.9, 0.3]))
    assert bad.status == 422, bad
    r = httpd.get(f"{DIST}?queue_id={qid}")
    assert r.status == 200, r
    assert r.json["total"] == 2, r.json
    assert [x["status"] for x in r.json["data"]] == ["validation_failed", "completed"], r.json
    assert r.json["data"][0]["balance_accuracy"] is None
    assert "result" not in r.json["data"][0]
    # paged by cursor, newest first
    p1 = httpd.get(f"{DIST}?queue_id={qid}&limit=1")
    assert p1.json["next_cursor"], p1.json
    p2 = httpd.get(f"{DIST}?queue_id={qid}&limit=1&cursor={p1.json['next_cursor']}")
    assert [x["id"] for x in p2.json["data"]] == [doc["id"]], p2.json
    assert p2.json["next_cursor"] is None
    # its audit row names it
    assert last_audit(httpd, qid)["result"]["distribution_id"] == r.json["data"][0]["id"]


def test_distribution_listing_refusals(httpd, emulator):
    assert_problem(httpd.get(f"{DIST}/dist-{uuid.uuid4().hex}"), 404, "distribution_not_found")
    assert_problem(httpd.get(f"{DIST}/bad%20id"), 400, "validation_failed")
    assert_problem(httpd.get(f"{DIST}?limit=0"), 400, "validation_failed")
    assert_problem(httpd.get(f"{DIST}?queue_id=a%20b"), 400, "validation_failed")
    # a path refusal (not a distribution) is audited, not recorded
    before = httpd.get(DIST).json["total"]
    assert post(httpd, "bad%20q", {}).status in (400, 404)
    assert httpd.get(DIST).json["total"] == before


# ------------------------------------------------------------------ the editor's preview

def test_preview_lists_members_with_proficiency(httpd, emulator):
    qid, users = make_queue(emulator, 3, proficiency=2.5, without=(2,))
    emulator.clear_requests()
    r = httpd.get(f"{weights_path(qid)}?skill_id={SKILL}")
    assert r.status == 200, r
    doc = r.json
    assert doc["queue_id"] == qid and doc["skill_id"] == SKILL, doc
    got = {m["user_id"]: m for m in doc["members"]}
    assert set(got) == set(users), doc
    assert got[users[0]]["proficiency"] == 2.5 and got[users[0]]["weight"] == 0.5, got
    assert got[users[0]]["name"].startswith("Weights "), got
    assert got[users[2]]["proficiency"] is None and got[users[2]]["weight"] is None, got
    assert doc["saturation"]["active_agents"] == 3, doc
    assert writes(emulator) == []
    skill_reads = emulator.requests(path="/routingskills")
    assert len(skill_reads) >= 3, skill_reads


def test_preview_refusals(httpd, emulator):
    qid, users = make_queue(emulator, 1)
    body = assert_problem(httpd.get(weights_path(qid)), 422, "validation_failed")
    assert body["errors"][0]["field"] == "skill_id", body
    assert_problem(httpd.get(f"{weights_path('no-such-queue')}?skill_id={SKILL}"), 404,
                   "queue_not_found")
    assert_problem(httpd.get(f"{weights_path(qid)}?skill_id=a%20b"), 400, "validation_failed")
