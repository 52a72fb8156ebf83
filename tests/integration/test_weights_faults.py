"""Upstream faults during a routing-weight distribution (issue 14; SPEC §3.4, §9.7):
POST /v1/admin/queues/{queueId}/weights against a real apache2 and the emulator's
fault injection (tests/emulator/README.md: status / Retry-After / drop, `skip` for the
Nth matching call, `delay`).

  - 429 with Retry-After on some member PUTs: honoured, retried, 200 completed;
  - a connection drop on the Nth member PUT: retried (PUT is idempotent), 200 completed;
  - the queue PUT answering 409 once (injected, and a real concurrent edit): the queue
    is read again and the PUT retried once with every other field as read, 200;
  - the queue PUT failing for good (500, or 409 twice): 502 queue_update_failed and no
    member PUT at all;
  - a member PUT dropped on every attempt: 502 member_update_failed and the rollback
    (restoring PUTs observed, every proficiency back, the queue back to its method).

Assertions read the emulator's request log (every attempt, in arrival order, with its
status; a dropped one has status None) and its state; waits poll conditions."""
import json
import threading
import uuid

import pytest

from conftest import CLIENT_ID, CLIENT_SECRET
from httpd import Httpd, assert_problem, wait_for

API = "/gcmon/api/v1"
SKILL = "wfskill-" + uuid.uuid4().hex[:8]
OLD = 4.5                          # every member's proficiency before a distribution
# gcmon's attempts of one upstream call on a connection error (GC_UP_DEFAULT_ATTEMPTS).
ATTEMPTS = 4


@pytest.fixture(scope="module")
def httpd(emulator):
    emulator.add_skills([{"id": SKILL, "name": "Weight " + SKILL}])
    h = Httpd(emulator_url=emulator.url, env={"GCMON_TEST_SECRET": CLIENT_SECRET},
              gcmon_conf=(f"GcmonClientID {CLIENT_ID}\n"
                          "GcmonClientSecret env:GCMON_TEST_SECRET\n"
                          "GcmonRequestTimeout 5s\n"
                          "GcmonRateLimit 6000\n"
                          "GcmonAdminActor anonymous\n"),
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


def make_queue(emulator, n):
    tag = uuid.uuid4().hex[:8]
    qid = "wfq-" + tag
    users = [f"wfu-{tag}-{i}" for i in range(n)]
    emulator.add_agents([{"id": u, "name": f"Weights faults {tag} {i}", "presence": "OnQueue",
                          "routing_status": "IDLE", "skills": [{"id": SKILL, "proficiency": OLD}]}
                         for i, u in enumerate(users)])
    emulator.add_queues([{"id": qid, "name": "Weights faults " + tag,
                          "skill_evaluation_method": "NONE", "members": users}])
    return qid, users


WEIGHTS = [0.1, 0.15, 0.2, 0.25, 0.3]


def new_value(i):
    return round(5 * WEIGHTS[i], 2)


def post(h, qid, users):
    body = {"member_weights": dict(zip(users, WEIGHTS)), "overflow_threshold": 0.85,
            "utilization_target": 0.8, "projected_load": 0, "skill_id": SKILL}
    return h.admin("POST", f"{API}/admin/queues/{qid}/weights", body=body, timeout=60)


def skill_path(uid):
    return f"/api/v2/users/{uid}/routingskills/{SKILL}"


MEMBER_PUT = rf"^/api/v2/users/[^/]+/routingskills/{SKILL}$"


def member_puts(emulator):
    return [e for e in emulator.requests(path=MEMBER_PUT) if e["method"] == "PUT"]


def queue_calls(emulator, qid):
    return [(e["method"], e["status"]) for e in
            emulator.requests(path=f"^/api/v2/routing/queues/{qid}$")]


def proficiencies(emulator, users):
    agents = {a["id"]: a for a in emulator.agents(timeline=False)}
    return [next(s["proficiency"] for s in agents[u]["skills"] if s["id"] == SKILL)
            for u in users]


def queue_of(emulator, qid):
    r = emulator.request("GET", f"/api/v2/routing/queues/{qid}", token=emulator.token())
    assert r.status == 200, r
    return r.json


def assert_completed(r, emulator, users):
    assert r.status == 200, r
    assert r.json["status"] == "completed", r.json
    assert proficiencies(emulator, users) == [new_value(i) for i in range(len(users))]


# ------------------------------------------------------------------ member PUTs: 429, drop

def test_member_429s_are_honoured_and_completed(httpd, emulator):
    """The 2nd and the 4th member PUT get 429 with Retry-After: 1; gcmon waits and retries
    each (the emulator's log shows the retried PUTs, each at least ~1 s after its 429)."""
    qid, users = make_queue(emulator, 5)
    emulator.fault(MEMBER_PUT, status=429, retry_after=1, method="PUT", skip=1)
    emulator.fault(MEMBER_PUT, status=429, retry_after=1, method="PUT", skip=3)
    r = post(httpd, qid, users)
    assert_completed(r, emulator, users)
    puts = member_puts(emulator)
    throttled = [e for e in puts if e["status"] == 429]
    assert len(throttled) == 2, [(e["path"], e["status"]) for e in puts]
    assert len(puts) == len(users) + 2, [(e["path"], e["status"]) for e in puts]
    for t in throttled:
        again = [e for e in puts if e["path"] == t["path"] and e["seq"] > t["seq"]]
        assert [e["status"] for e in again] == [200], again
        assert json.loads(again[0]["body"]) == json.loads(t["body"])     # the same write
        assert again[0]["at"] - t["at"] >= 0.9, (t, again[0])             # Retry-After: 1
    # every member written once with 200
    assert sorted(e["path"] for e in puts if e["status"] == 200) == \
        sorted(skill_path(u) for u in users)
    assert queue_of(emulator, qid)["skillEvaluationMethod"] == "BEST"


def test_member_drop_on_the_nth_call_is_retried(httpd, emulator):
    """A connection drop on the 3rd member PUT: PUT is idempotent, so gcmon sends it again."""
    qid, users = make_queue(emulator, 5)
    emulator.fault(MEMBER_PUT, drop=True, method="PUT", skip=2)
    r = post(httpd, qid, users)
    assert_completed(r, emulator, users)
    puts = member_puts(emulator)
    dropped = [e for e in puts if e["status"] is None]
    assert len(dropped) == 1 and puts.index(dropped[0]) == 2, [(e["path"], e["status"])
                                                               for e in puts]
    again = [e for e in puts if e["path"] == dropped[0]["path"] and e["seq"] > dropped[0]["seq"]]
    assert [e["status"] for e in again] == [200], again
    assert emulator.stats()["faults_pending"] == 0


def test_member_drop_on_every_attempt_rolls_back(httpd, emulator):
    """The 3rd member's PUT is dropped on every attempt: 502 member_update_failed; every
    member written gets its old proficiency back (restoring PUTs in the log), the dropped
    one too (its write may have landed), and the queue its skill evaluation NONE."""
    qid, users = make_queue(emulator, 5)
    emulator.fault(f"^{skill_path(users[2])}$", drop=True, method="PUT", count=ATTEMPTS)
    r = post(httpd, qid, users)
    body = assert_problem(r, 502, "member_update_failed")
    assert body["failed"] == [users[2]], body
    assert body["rollback_failed"] == [] and body["queue_restored"] is True, body
    assert sorted(body["rolled_back"]) == sorted(users), body
    puts = member_puts(emulator)
    dropped = [e for e in puts if e["status"] is None]
    assert [e["path"] for e in dropped] == [skill_path(users[2])] * ATTEMPTS, \
        [(e["path"], e["status"]) for e in puts]
    restoring = [e for e in puts if json.loads(e["body"])["proficiency"] == OLD]
    assert sorted(e["path"] for e in restoring) == sorted(skill_path(u) for u in users), restoring
    assert all(e["status"] == 200 for e in restoring), restoring
    last_forward = max(e["seq"] for e in puts if json.loads(e["body"])["proficiency"] != OLD)
    assert all(e["seq"] > last_forward for e in restoring)      # after every forward write
    # the queue: BEST before the members, then read again and put back (NONE)
    assert queue_calls(emulator, qid) == [("GET", 200), ("PUT", 200), ("GET", 200), ("PUT", 200)]
    qputs = [json.loads(e["body"]) for e in emulator.requests(path=f"^/api/v2/routing/queues/{qid}$")
             if e["method"] == "PUT"]
    assert [x["skillEvaluationMethod"] for x in qputs] == ["BEST", "NONE"], qputs
    assert proficiencies(emulator, users) == [OLD] * len(users)
    q = queue_of(emulator, qid)
    assert q["skillEvaluationMethod"] == "NONE", q


# ------------------------------------------------------------------ the queue PUT

def test_queue_409_once_rereads_and_retries(httpd, emulator):
    qid, users = make_queue(emulator, 3)
    before = queue_of(emulator, qid)
    emulator.clear_requests()
    emulator.fault(f"^/api/v2/routing/queues/{qid}$", status=409, method="PUT")
    r = post(httpd, qid, users[:3])
    assert_completed(r, emulator, users[:3])
    assert queue_calls(emulator, qid) == [("GET", 200), ("PUT", 409), ("GET", 200), ("PUT", 200)]
    puts = [e for e in emulator.requests(path=f"^/api/v2/routing/queues/{qid}$")
            if e["method"] == "PUT"]
    for put in puts:          # the whole queue as read, only the skill evaluation changed
        assert json.loads(put["body"]) == {**before, "skillEvaluationMethod": "BEST"}, put["body"]
    first_member = min(e["seq"] for e in member_puts(emulator))
    assert all(e["seq"] < first_member for e in puts)      # the queue before any member
    after = queue_of(emulator, qid)
    assert after["skillEvaluationMethod"] == "BEST" and after["version"] == before["version"] + 1
    assert {k: v for k, v in after.items() if k not in ("skillEvaluationMethod", "version",
                                                         "dateModified")} == \
        {k: v for k, v in before.items() if k not in ("skillEvaluationMethod", "version",
                                                      "dateModified")}


def test_queue_conflict_with_a_concurrent_edit(httpd, emulator):
    """A real version conflict: someone edits the queue while gcmon's PUT is on its way
    (the emulator holds that PUT 3 s). gcmon re-reads the queue and puts back the new
    version with the other editor's change kept."""
    qid, users = make_queue(emulator, 3)
    path = f"^/api/v2/routing/queues/{qid}$"
    emulator.fault(path, delay=3, method="PUT")
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", post(httpd, qid, users)))
    t.start()
    try:
        wait_for(lambda: [e for e in emulator.requests(path=path) if e["method"] == "PUT"],
                 timeout=10, what="gcmon's queue PUT")
        token = emulator.token()
        mine = queue_of(emulator, qid)
        mine["description"] = "edited meanwhile"
        edit = emulator.request("PUT", f"/api/v2/routing/queues/{qid}", body=mine, token=token)
        assert edit.status == 200, edit
    finally:
        t.join(60)
    assert_completed(result["r"], emulator, users)
    calls = emulator.requests(path=path)
    ours = calls[0]["headers"]["Authorization"]                 # gcmon's first GET
    gcmon = [e for e in calls if e["headers"].get("Authorization") == ours]
    assert [(e["method"], e["status"]) for e in gcmon] == \
        [("GET", 200), ("PUT", 409), ("GET", 200), ("PUT", 200)], gcmon
    first, second = (json.loads(e["body"]) for e in gcmon if e["method"] == "PUT")
    assert first["version"] == mine["version"] and first.get("description") == ""
    assert second["version"] == mine["version"] + 1, second
    assert second["description"] == "edited meanwhile", second
    q = queue_of(emulator, qid)
    assert q["skillEvaluationMethod"] == "BEST" and q["description"] == "edited meanwhile", q


@pytest.mark.parametrize("fault", ["500", "409-twice"])
def test_queue_put_failing_for_good(httpd, emulator, fault):
    """The queue PUT fails on every attempt (500), or conflicts twice (409, 409): 502
    queue_update_failed, and no member was written at all."""
    qid, users = make_queue(emulator, 3)
    path = f"^/api/v2/routing/queues/{qid}$"
    if fault == "500":
        emulator.fault(path, status=500, method="PUT", count=10)
    else:
        emulator.fault(path, status=409, method="PUT", count=2)
    r = post(httpd, qid, users)
    body = assert_problem(r, 502, "queue_update_failed")
    assert "no member was changed" in body["detail"], body
    assert member_puts(emulator) == []
    assert [e for e in emulator.requests() if e["method"] in ("PUT", "DELETE", "PATCH")
            and "/routing/queues/" not in e["path"]] == []
    calls = queue_calls(emulator, qid)
    if fault == "409-twice":
        assert calls == [("GET", 200), ("PUT", 409), ("GET", 200), ("PUT", 409)], calls
    else:
        assert calls[0] == ("GET", 200) and calls[1:] and \
            all(c == ("PUT", 500) for c in calls[1:]), calls
    assert proficiencies(emulator, users) == [OLD] * len(users)
    assert queue_of(emulator, qid)["skillEvaluationMethod"] == "NONE"
