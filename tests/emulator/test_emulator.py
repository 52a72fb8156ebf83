"""Tests of the Genesys Cloud emulator itself: a real subprocess started through client.py.

Run: /usr/bin/python3 -m pytest -q tests/emulator
"""
import asyncio
import base64
import json
import os
import re
import sys
import time
import urllib.error

import aiohttp
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from emulator.client import Emulator, EmulatorError, make_execution  # noqa: E402

CLIENT_ID, CLIENT_SECRET = "emu-test-client", "emu-test-secret"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ERROR_KEYS = {"message", "code", "status", "messageParams", "contextId", "details", "errors"}


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    e = Emulator(tmp_path_factory.mktemp("emu"), client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    e.start()
    yield e
    e.stop()


@pytest.fixture(autouse=True)
def fresh(emu):
    emu.reset()
    yield


@pytest.fixture
def token(emu):
    return emu.token()


def basic(client_id=CLIENT_ID, secret=CLIENT_SECRET):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def token_request(emu, auth=None, grant="client_credentials"):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth:
        headers["Authorization"] = auth
    return emu.request("POST", "/oauth/token", body=f"grant_type={grant}", headers=headers)


def add_agents(emu, n, prefix="Agent", **common):
    return emu.add_agents([{"name": f"{prefix} {i:03d}", **common} for i in range(n)])


def assert_genesys_error(r, status, code):
    assert r.status == status, r
    body = r.json
    assert ERROR_KEYS <= set(body), body
    assert body["status"] == status and body["code"] == code
    assert body["contextId"] == r.header("ININ-Correlation-ID")


def run(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ------------------------------------------------------------------------ OAuth

def test_token_good_credentials(emu):
    r = token_request(emu, basic())
    assert r.status == 200
    body = r.json
    assert body["token_type"] == "bearer" and body["expires_in"] == 86400
    assert len(body["access_token"]) >= 32
    assert r.header("ININ-Correlation-ID")
    assert emu.stats()["tokens_issued"] == 1


@pytest.mark.parametrize("auth", [None, basic(secret="wrong"), basic(client_id="other"), "Basic !!!"])
def test_token_bad_credentials(emu, auth):
    r = token_request(emu, auth)
    assert r.status == 401
    assert r.json["error"] == "invalid_client"
    assert {"description", "error_description"} <= set(r.json)


def test_token_unsupported_grant(emu):
    r = token_request(emu, basic(), grant="password")
    assert r.status == 400 and r.json["error"] == "unsupported_grant_type"


def test_token_expiry_is_honoured(emu):
    emu.config(token_expires=1)
    r = token_request(emu, basic())
    assert r.json["expires_in"] == 1
    tok = r.json["access_token"]
    assert emu.request("GET", "/api/v2/organizations/me", token=tok).status == 200
    emu.wait_for(lambda: emu.request("GET", "/api/v2/organizations/me", token=tok).status == 401,
                 timeout=4, message="token expiry")
    assert_genesys_error(emu.request("GET", "/api/v2/organizations/me", token=tok), 401, "bad.credentials")


def test_api_requires_bearer(emu):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": basic()}):
        r = emu.request("GET", "/api/v2/organizations/me", headers=headers)
        assert_genesys_error(r, 401, "bad.credentials")


def test_revoked_tokens_get_401(emu, token):
    emu.revoke_tokens()
    assert emu.request("GET", "/api/v2/organizations/me", token=token).status == 401


def test_organization_and_unknown_route(emu, token):
    r = emu.request("GET", "/api/v2/organizations/me", token=token)
    assert r.status == 200
    assert {"id", "name", "defaultSiteId", "thirdPartyOrgName", "domain", "version"} <= set(r.json)
    assert r.json["state"] == "active"
    assert_genesys_error(emu.request("GET", "/api/v2/no/such/thing", token=token), 404, "not.found")


# ------------------------------------------------------------------------ users & presence

def test_users_snapshot_shapes(emu, token):
    a, b, c = add_agents(emu, 3, presence="OnQueue", routing_status="INTERACTING")
    r = emu.request("GET", f"/api/v2/users?id={a['id']}&id={b['id']}&expand=routingStatus,presence"
                           "&pageSize=100", token=token)
    assert r.status == 200
    body = r.json
    assert {"pageSize", "pageNumber", "total", "pageCount"} <= set(body)
    assert body["total"] == 2 and [u["id"] for u in body["entities"]] == [a["id"], b["id"]]
    user = body["entities"][0]
    assert user["name"] == a["name"] and user["state"] == "active" and "@" in user["email"]
    assert user["routingStatus"]["userId"] == a["id"]
    assert user["routingStatus"]["status"] == "INTERACTING"
    assert ISO_MS.match(user["routingStatus"]["startTime"])
    presence = user["presence"]
    assert presence["source"] == "PURECLOUD"
    assert presence["presenceDefinition"]["systemPresence"] == "On Queue"   # REST user-presence casing
    assert ISO_MS.match(presence["modifiedDate"]) and "message" in presence
    # expansions only when asked
    plain = emu.request("GET", f"/api/v2/users?id={c['id']}", token=token).json["entities"][0]
    assert "routingStatus" not in plain and "presence" not in plain


def test_users_id_limit_and_paging(emu, token):
    agents = add_agents(emu, 30)
    ids = "&".join(f"id=u{i}" for i in range(101))
    assert_genesys_error(emu.request("GET", f"/api/v2/users?{ids}", token=token), 400, "bad.request")
    ok = "&".join(f"id={a['id']}" for a in agents[:100])
    assert emu.request("GET", f"/api/v2/users?{ok}&pageSize=100", token=token).json["total"] == 30
    page2 = emu.request("GET", "/api/v2/users?pageSize=20&pageNumber=2", token=token).json
    assert len(page2["entities"]) == 10 and page2["total"] == 30 and page2["pageCount"] == 2


def test_single_user(emu, token):
    (a,) = add_agents(emu, 1)
    r = emu.request("GET", f"/api/v2/users/{a['id']}?expand=presence", token=token)
    assert r.status == 200 and r.json["presence"]["presenceDefinition"]["systemPresence"] == "Available"
    assert_genesys_error(emu.request("GET", "/api/v2/users/nobody", token=token), 404, "not.found")


def test_presence_definitions(emu, token):
    r = emu.request("GET", "/api/v2/presence/definitions", token=token)
    assert r.status == 200
    defs = r.json["entities"]
    system = {d["systemPresence"] for d in defs if d["type"] == "System"}
    assert system == {"Available", "Away", "Busy", "Break", "Meal", "Meeting", "Training", "Offline",
                      "Idle", "OnQueue"}
    (secondary,) = [d for d in defs if d["type"] == "User"]
    assert secondary["languageLabels"]["en_US"] == "Lunch Walk" and secondary["systemPresence"] == "Meal"
    assert not secondary["primary"] and all(d["deactivated"] is False for d in defs)


def definition_id(emu, token, label):
    defs = emu.request("GET", "/api/v2/presence/definitions", token=token).json["entities"]
    return next(d["id"] for d in defs if d["languageLabels"]["en_US"] == label)


def test_presence_patch_updates_state_and_timeline(emu, token):
    (a,) = add_agents(emu, 1)
    path = f"/api/v2/users/{a['id']}/presences/purecloud"
    before = emu.request("GET", path, token=token).json
    assert before["presenceDefinition"]["systemPresence"] == "Available"
    on_queue = definition_id(emu, token, "On Queue")
    r = emu.request("PATCH", path, body={"presenceDefinition": {"id": on_queue}, "message": "hi"},
                    token=token)
    assert r.status == 200
    assert r.json["presenceDefinition"] == {"id": on_queue, "systemPresence": "On Queue",
                                            "selfUri": f"/api/v2/presencedefinitions/{on_queue}"}
    assert r.json["message"] == "hi" and ISO_MS.match(r.json["modifiedDate"])
    assert r.json["modifiedDate"] >= before["modifiedDate"]
    agent = emu.agent(a["id"])
    assert agent["presence"] == "OnQueue" and agent["routing_status"] == "IDLE"   # going on queue
    last = agent["timeline"][-1]
    assert last["presence"] == "OnQueue" and last["routing_status"] == "IDLE" and last["state"] == "IDLE"
    assert last["at"] == r.json["modifiedDate"] and last["source"] == "api"
    # the org-defined secondary presence
    walk = definition_id(emu, token, "Lunch Walk")
    r = emu.request("PATCH", path, body={"presenceDefinition": {"id": walk}}, token=token)
    assert r.json["presenceDefinition"]["systemPresence"] == "Meal"
    assert emu.agent(a["id"])["routing_status"] == "OFF_QUEUE"
    assert_genesys_error(emu.request("PATCH", path, body={"presenceDefinition": {"id": "bogus"}},
                                     token=token), 400, "bad.request")


def test_routing_status_get_put(emu, token):
    (a,) = add_agents(emu, 1)
    path = f"/api/v2/users/{a['id']}/routingstatus"
    r = emu.request("GET", path, token=token)
    assert r.json["status"] == "OFF_QUEUE" and r.json["userId"] == a["id"]
    r = emu.request("PUT", path, body={"status": "IDLE"}, token=token)
    assert r.status == 200 and r.json["status"] == "IDLE" and ISO_MS.match(r.json["startTime"])
    agent = emu.agent(a["id"])
    assert agent["presence"] == "OnQueue" and agent["timeline"][-1]["state"] == "IDLE"
    r = emu.request("PUT", path, body={"status": "DANCING"}, token=token)
    assert_genesys_error(r, 400, "bad.request")


def test_control_state_any_casing_and_at(emu):
    (a,) = add_agents(emu, 1)
    for name in ("ON_QUEUE", "on queue", "OnQueue"):
        emu.set_state(a["id"], presence="Available")
        assert emu.set_state(a["id"], presence=name)["presence"] == "OnQueue"
    r = emu.set_state(a["id"], routing_status="interacting", at="2024-01-15T10:30:00.123Z")
    assert r["routing_status"] == "INTERACTING" and r["routing_start"] == "2024-01-15T10:30:00.123Z"
    assert r["state"] == "INTERACTING"
    assert emu.set_state(a["id"], routing_status="INTERACTING")["changed"] is False
    assert emu.set_state(a["id"], routing_status="INTERACTING", force=True)["changed"] is True
    with pytest.raises(EmulatorError):
        emu.set_state(a["id"], presence="Sleeping")


# ------------------------------------------------------------------------ routing

def test_queue_get_put_version(emu, token):
    add_agents(emu, 2, queues=["q1"])
    path = "/api/v2/routing/queues/q1"
    queue = emu.request("GET", path, token=token).json
    assert queue["memberCount"] == 2 and queue["version"] == 1
    assert {"acwSettings", "mediaSettings", "skillEvaluationMethod", "bullseye"} <= set(queue)
    queue["skillEvaluationMethod"] = "BEST"
    r = emu.request("PUT", path, body=queue, token=token)
    assert r.status == 200 and r.json["version"] == 2 and r.json["skillEvaluationMethod"] == "BEST"
    assert emu.request("GET", path, token=token).json["skillEvaluationMethod"] == "BEST"
    assert_genesys_error(emu.request("PUT", path, body=queue, token=token), 409, "general.conflict")
    assert_genesys_error(emu.request("GET", "/api/v2/routing/queues/nope", token=token), 404, "not.found")


def test_members_paging_by_next_uri(emu, token):
    agents = add_agents(emu, 250, queues=["big"],
                        skills=[{"id": "sk-sales", "name": "Sales", "proficiency": 2.5}])
    emu.add_agents([{"name": "Zed Unskilled", "queues": ["big"]}])
    uri, pages, seen = "/api/v2/routing/queues/big/members?pageSize=100&skills=sk-sales", 0, []
    while uri:
        r = emu.request("GET", uri, token=token)
        assert r.status == 200
        body = r.json
        assert "total" not in body and "pageCount" not in body
        assert body["firstUri"].startswith("/api/v2/routing/queues/big/members?")
        seen += body["entities"]
        pages += 1
        uri = body.get("nextUri")
        assert uri is None or uri.startswith("/api/v2/") and "skills=sk-sales" in uri
    assert pages == 3 and len(seen) == 250
    assert {m["id"] for m in seen} == {a["id"] for a in agents}
    member = seen[0]
    assert member["memberBy"] == "user" and member["joined"] is True and member["ringNumber"] == 1
    assert member["user"]["id"] == member["id"] and member["routingStatus"]["status"] == "OFF_QUEUE"
    total = emu.request("GET", "/api/v2/routing/queues/big/members?pageSize=100&pageNumber=3", token=token)
    assert len(total.json["entities"]) == 51 and "nextUri" not in total.json
    assert_genesys_error(emu.request("GET", "/api/v2/routing/queues/big/members?pageSize=101",
                                     token=token), 400, "bad.request")


def test_control_queues_and_members(emu, token):
    a, b = add_agents(emu, 2)
    (q,) = emu.add_queues([{"id": "q9", "name": "Nine", "members": [a["id"]], "waiting": 4}])
    assert q["members"] == [{"id": a["id"], "ring_number": 1, "joined": True}]
    emu.set_members("q9", [{"id": b["id"], "ring_number": 2, "joined": False}])
    members = emu.request("GET", "/api/v2/routing/queues/q9/members", token=token).json["entities"]
    assert [(m["id"], m["ringNumber"], m["joined"]) for m in members] == [(b["id"], 2, False)]


def test_routing_skills(emu, token):
    (a,) = emu.add_agents([{"name": "Skilled", "skills": [{"id": "s1", "name": "Sales", "proficiency": 1},
                                                         {"id": "s2", "name": "Support", "proficiency": 4}]}])
    path = f"/api/v2/users/{a['id']}/routingskills"
    listing = emu.request("GET", path, token=token).json
    assert [(s["id"], s["name"], s["proficiency"], s["state"]) for s in listing["entities"]] == \
        [("s1", "Sales", 1.0, "active"), ("s2", "Support", 4.0, "active")]
    r = emu.request("PUT", f"{path}/s1", body={"id": "s1", "proficiency": 3.25, "state": "active"},
                    token=token)
    assert r.status == 200 and r.json["proficiency"] == 3.25
    assert emu.request("GET", path, token=token).json["entities"][0]["proficiency"] == 3.25
    assert emu.request("PUT", f"{path}/s1", body={"proficiency": 7}, token=token).status == 400
    assert emu.request("PUT", f"{path}/nope", body={"proficiency": 1}, token=token).status == 404


def test_queue_observations(emu, token):
    specs = [("OnQueue", "IDLE"), ("OnQueue", "INTERACTING"), ("OnQueue", "COMMUNICATING"),
             ("Break", None)]
    emu.add_agents([{"name": f"A{i}", "presence": p, **({"routing_status": r} if r else {}),
                     "queues": ["q1"]} for i, (p, r) in enumerate(specs)])
    emu.add_queues([{"id": "q1", "waiting": 7}])
    body = {"filter": {"type": "or", "predicates": [{"dimension": "queueId", "value": "q1"}]},
            "metrics": ["oOnQueueUsers", "oInteracting", "oWaiting"]}
    r = emu.request("POST", "/api/v2/analytics/queues/observations/query", body=body, token=token)
    assert r.status == 200
    (result,) = r.json["results"]
    assert result["group"] == {"queueId": "q1"}
    assert {d["metric"]: d["stats"]["count"] for d in result["data"]} == \
        {"oOnQueueUsers": 3, "oInteracting": 2, "oWaiting": 7}


# ------------------------------------------------------------------------ faults

ORG = "/api/v2/organizations/me"


def test_fault_429_with_retry_after_then_normal(emu, token):
    emu.fault(ORG, status=429, count=2, method="GET", retry_after=3)
    for _ in range(2):
        r = emu.request("GET", ORG, token=token)
        assert_genesys_error(r, 429, "too.many.requests")
        assert r.header("Retry-After") == "3"
    assert emu.request("GET", ORG, token=token).status == 200
    stats = emu.stats()
    assert stats["faults_injected"] == 2 and stats["rate_limited"] == 0


def test_fault_503_custom_body_and_method_filter(emu, token):
    emu.fault(r"^/api/v2/org", status=503, method="POST")
    assert emu.request("GET", ORG, token=token).status == 200          # method does not match
    emu.fault(ORG, status=503)
    assert_genesys_error(emu.request("GET", ORG, token=token), 503, "service.unavailable")
    emu.fault(r"^/oauth/token$", status=401, body={"error": "invalid_client", "description": "x",
                                                   "error_description": "x"})
    r = token_request(emu, basic())
    assert r.status == 401 and r.json["error"] == "invalid_client"
    assert token_request(emu, basic()).status == 200


def test_fault_delay(emu, token):
    emu.fault(ORG, delay=0.6)
    t0 = time.monotonic()
    assert emu.request("GET", ORG, token=token).status == 200
    assert time.monotonic() - t0 >= 0.55


def test_fault_drop_and_clear(emu, token):
    emu.fault(ORG, drop=True)
    with pytest.raises((ConnectionError, urllib.error.URLError, OSError)):
        emu.request("GET", ORG, token=token)
    assert emu.request("GET", ORG, token=token).status == 200
    emu.fault(ORG, status=500, count=5)
    emu.clear_faults()
    assert emu.request("GET", ORG, token=token).status == 200


def test_fault_skip_hits_the_nth_call(emu, token):
    """skip=N-1: the first N-1 matching calls pass, the next `count` get the fault; each
    fault counts the matching calls on its own (faults on the 2nd and 4th call)."""
    emu.fault(ORG, status=429, retry_after=1, method="GET", skip=1)
    emu.fault(ORG, status=503, method="GET", skip=3)
    emu.fault(ORG, status=500, method="POST", skip=0)                  # does not match: GET
    statuses = [emu.request("GET", ORG, token=token).status for _ in range(6)]
    assert statuses == [200, 429, 200, 503, 200, 200]
    assert [(f["method"], f["skip"]) for f in emu._control("GET", "/faults")] == [("POST", 0)]
    emu.clear_faults()
    emu.fault(ORG, drop=True, skip=2, count=2)
    assert [emu.request("GET", ORG, token=token).status for _ in range(2)] == [200, 200]
    for _ in range(2):
        with pytest.raises((ConnectionError, urllib.error.URLError, OSError)):
            emu.request("GET", ORG, token=token)
    assert emu.request("GET", ORG, token=token).status == 200
    assert [e["status"] for e in emu.requests(path=ORG)][-5:] == [200, 200, None, None, 200]
    with pytest.raises(EmulatorError):
        emu.fault(ORG, status=500, skip=-1)


# ------------------------------------------------------------------------ flow execution data

FLOW_QUERY = "/api/v2/flows/instances/query"
FLOW_JOBS = "/api/v2/flows/instances/jobs"


def criteria(key, *values, operator="equal"):
    return {"criteria": {"key": key, "values": list(values), "operator": operator}}


def flow_query(emu, token, *groups, query=""):
    return emu.request("POST", FLOW_QUERY + query, {"query": list(groups)}, token=token)


def scripted_instances(emu):
    return emu.add_flow_instances([
        {"id": "inst-a1", "flow_id": "flow-a", "conversation_id": "conv-1", "flow_name": "Main IVR",
         "execution": make_execution(start="2026-01-05T10:00:00.000Z")},
        {"id": "inst-a2", "flow_id": "flow-a", "conversation_id": "conv-2", "flow_name": "Main IVR",
         "execution": make_execution(start="2026-01-05T11:00:00.000Z"), "error_reason": "DATA_ACTION"},
        {"id": "inst-b1", "flow_id": "flow-b", "conversation_id": "conv-1", "flow_name": "Billing",
         "start": "2026-01-05T09:00:00.000Z", "end": "2026-01-05T09:01:00.000Z"},
    ])


def test_flow_query_by_flow_and_by_conversation(emu, token):
    scripted_instances(emu)
    r = flow_query(emu, token, criteria("flowId", "flow-a"))
    assert r.status == 200 and r.header("ININ-Correlation-ID")
    body = r.json
    assert [e["id"] for e in body["entities"]] == ["inst-a2", "inst-a1"]        # newest first
    assert (body["total"], body["pageCount"], body["pageNumber"]) == (2, 1, 1)
    a2 = body["entities"][0]
    assert a2 == {"id": "inst-a2", "flowId": "flow-a", "flowName": "Main IVR", "flowType": "inboundcall",
                  "flowVersion": "1.0", "conversationId": "conv-2",
                  "startDateTime": "2026-01-05T11:00:00.000Z", "endDateTime": "2026-01-05T11:00:00.295Z",
                  "flowErrorReason": "DATA_ACTION"}
    by_conv = flow_query(emu, token, criteria("conversationId", "conv-1")).json
    assert [e["id"] for e in by_conv["entities"]] == ["inst-a1", "inst-b1"]
    # two groups (all must hold), an "and" group, several values, paging, indexOnly
    both = flow_query(emu, token, criteria("flowId", "flow-a"), criteria("conversationId", "conv-1")).json
    assert [e["id"] for e in both["entities"]] == ["inst-a1"]
    anded = flow_query(emu, token, {"and": [criteria("flowId", "flow-b"),
                                            criteria("conversationId", "conv-1")]}).json
    assert [e["id"] for e in anded["entities"]] == ["inst-b1"]
    paged = flow_query(emu, token, criteria("flowId", "flow-a", "flow-b"), query="?pageSize=2&pageNumber=2")
    assert [e["id"] for e in paged.json["entities"]] == ["inst-b1"] and paged.json["total"] == 3
    index = flow_query(emu, token, criteria("flowId", "flow-b"), query="?indexOnly=true").json
    assert index["entities"] == [{"id": "inst-b1"}]
    assert flow_query(emu, token, criteria("flowId", "nope")).json["entities"] == []
    # errors, and the bearer token
    assert_genesys_error(flow_query(emu, token, criteria("flowId", "flow-a"), query="?pageSize=201"),
                         400, "bad.request")
    assert_genesys_error(flow_query(emu, token, criteria("colour", "red")), 400, "invalid.value")
    assert_genesys_error(emu.request("POST", FLOW_QUERY, {"query": []}, token=token), 400, "bad.request")
    assert_genesys_error(emu.request("POST", FLOW_QUERY, {"query": [criteria("flowId", "flow-a")]}),
                         401, "bad.credentials")
    assert emu.stats()["flow_queries"] == 7


def poll(emu, token, job_id):
    r = emu.request("GET", f"{FLOW_JOBS}/{job_id}", token=token)
    assert r.status == 200, r
    return r.json


def test_flow_job_lifecycle_over_scripted_polls(emu, token):
    scripted_instances(emu)
    emu.add_flow_instances([{"id": "inst-slow", "flow_id": "flow-c", "job_polls": 4,
                             "execution": make_execution()}])
    emu.clear_requests()
    r = emu.request("POST", FLOW_JOBS, {"ids": ["inst-a1", "inst-a2", "unknown-id"]}, token=token)
    assert r.status == 200
    job = r.json
    assert job["jobState"] == "Registered" and job["entities"] == [] and job["id"]
    assert job["selfUri"] == f"{FLOW_JOBS}/{job['id']}"
    assert poll(emu, token, job["id"])["jobState"] == "Running"              # default: 2 polls
    done = poll(emu, token, job["id"])
    assert done["jobState"] == "Success"
    good = [e for e in done["entities"] if not e["failed"]]
    assert [e["id"] for e in good] == ["inst-a1", "inst-a2"]
    assert all(e["statusCode"] == "200" and re.fullmatch(rf"http://127\.0\.0\.1:{emu.port}/downloads/[\w-]+",
                                                          e["downloadUri"]) for e in good)
    assert done["entities"][2] == {"id": "unknown-id", "failed": True, "statusCode": "404"}
    again = poll(emu, token, job["id"])                                      # stays final
    assert again["jobState"] == "Success" and len(again["entities"]) == 3
    polls = emu.requests(path=rf"^{FLOW_JOBS}/{job['id']}$", method="GET")
    assert len(polls) == 3 and all(p["status"] == 200 for p in polls)
    jobs = emu.flow_jobs()
    assert jobs[0]["polls"] == 3 and jobs[0]["state"] == "Success" and len(jobs[0]["downloads"]) == 4
    # the slowest instance sets the pace of a job; 0 polls: final at once
    slow = emu.request("POST", FLOW_JOBS, {"ids": ["inst-slow", "inst-a1"]}, token=token).json
    assert [poll(emu, token, slow["id"])["jobState"] for _ in range(4)] == ["Running"] * 3 + ["Success"]
    emu.add_flow_instances([{"id": "inst-now", "flow_id": "flow-c", "job_polls": 0}])
    now_job = emu.request("POST", FLOW_JOBS, {"ids": ["inst-now"]}, token=token).json
    assert now_job["jobState"] == "Success" and now_job["entities"][0]["downloadUri"]
    # the single-instance shortcut starts a job too
    single = emu.request("GET", "/api/v2/flows/instances/inst-a1", token=token).json
    assert single["jobState"] == "Registered" and poll(emu, token, single["id"])["jobState"] == "Running"
    # errors
    assert_genesys_error(emu.request("GET", f"{FLOW_JOBS}/nope", token=token), 404, "not.found")
    for bad in ({}, {"ids": []}, {"ids": "inst-a1"}, {"ids": [1]}):
        assert_genesys_error(emu.request("POST", FLOW_JOBS, bad, token=token), 400, "bad.request")
    assert_genesys_error(emu.request("GET", f"{FLOW_JOBS}/{job['id']}"), 401, "bad.credentials")


def test_flow_job_failed_and_failed_entities(emu, token):
    emu.add_flow_instances([
        {"id": "i-fail", "flow_id": "f", "job_fails": "Execution data unavailable", "job_polls": 1},
        {"id": "i-ok", "flow_id": "f", "job_polls": 1},
        {"id": "i-default", "flow_id": "f", "job_fails": True, "job_polls": 1},
        {"id": "i-403", "flow_id": "f", "entity_fails": "403", "job_polls": 1},
    ])
    job = emu.request("POST", FLOW_JOBS, {"ids": ["i-ok", "i-fail"]}, token=token).json
    failed = poll(emu, token, job["id"])
    assert failed["jobState"] == "Failed" and failed["entities"] == []
    assert failed["errorMessage"] == "Execution data unavailable"
    job = emu.request("POST", FLOW_JOBS, {"ids": ["i-default"]}, token=token).json
    assert poll(emu, token, job["id"])["errorMessage"] == "Execution data retrieval failed"
    job = emu.request("POST", FLOW_JOBS, {"ids": ["i-403", "i-ok"]}, token=token).json
    entities = poll(emu, token, job["id"])["entities"]
    assert entities[0] == {"id": "i-403", "failed": True, "statusCode": "403"}
    assert entities[1]["failed"] is False


def download(emu, uri, headers=None):
    assert uri.startswith(emu.url + "/downloads/")
    return emu.request("GET", uri[len(emu.url):], headers=headers)


def finished_job(emu, token, ids):
    job = emu.request("POST", FLOW_JOBS, {"ids": ids}, token=token).json
    while job["jobState"] not in ("Success", "Failed"):
        job = poll(emu, token, job["id"])
    return job


def test_flow_download_without_auth_returns_the_document(emu, token):
    called = [("actionCallData", 400), ("actionDecision", 3)]
    execution = make_execution(steps=[("actionCallData", 120), ("actionCallTask", 50, called),
                                      ("actionTransferToAcd", 30)],
                               start="2026-02-01T08:00:00.000Z", fail_at=(1, 0), no_time_at=2)
    emu.add_flow_instances([{"id": "i1", "flow_id": "flow-x", "conversation_id": "conv-x",
                             "execution": execution, "truncated": True, "reported_items": 12}])
    uri = finished_job(emu, token, ["i1"])["entities"][0]["downloadUri"]
    r = download(emu, uri)
    assert r.status == 200 and r.header("Content-Type").startswith("application/json")
    flow = r.json["flow"]
    assert (flow["flowId"], flow["conversationId"]) == ("flow-x", "conv-x")
    assert list(flow["division"]) == ["id"] and flow["division"]["id"]
    assert flow["startDateTime"] == "2026-02-01T08:00:00.000Z"
    assert flow["endDateTime"] == "2026-02-01T08:00:00.553Z"          # 120 + max(50, 403) + 30
    assert flow["execution"] == execution
    assert flow["executionItemsTruncated"] is True and flow["executionItemCount"] == 12
    kinds = [next(iter(item)) for item in flow["execution"]]
    assert kinds == ["startedFlow", "actionCallData", "actionCallTask", "actionTransferToAcd", "endedFlow"]
    task = flow["execution"][2]["actionCallTask"]
    nested = task["execution"]
    assert nested[0]["actionCallData"]["error"]["errorMessage"]
    assert nested[0]["actionCallData"]["dateTime"] == task["dateTime"] == "2026-02-01T08:00:00.120Z"
    assert nested[1]["actionDecision"]["dateTime"] == "2026-02-01T08:00:00.520Z"
    assert "dateTime" not in flow["execution"][3]["actionTransferToAcd"]
    assert download(emu, uri).status == 200                            # reusable until it expires
    # with an Authorization header: the storage service's 400 (S3-style XML)
    r = download(emu, uri, headers={"Authorization": f"Bearer {token}"})
    assert r.status == 400 and r.header("Content-Type").startswith("application/xml")
    assert "<Code>InvalidArgument</Code>" in r.text
    # no timestamps given, no execution dates: left out; flags left out unless scripted
    emu.add_flow_instances([{"id": "i2", "flow_id": "flow-x", "start": None, "end": None,
                             "execution": [{"startedFlow": {"languageTag": "en-us"}}]}])
    doc = download(emu, finished_job(emu, token, ["i2"])["entities"][0]["downloadUri"]).json["flow"]
    assert not {"startDateTime", "endDateTime", "executionItemsTruncated", "executionItemCount"} & set(doc)
    stats = emu.stats()
    assert stats["flow_downloads"] == 3 and stats["flow_instances"] == 2


def test_flow_download_unknown_and_expired(emu, token):
    r = emu.request("GET", "/downloads/no-such-token")
    assert r.status == 404 and "<Code>NoSuchKey</Code>" in r.text
    emu.add_flow_instances([{"id": "i1", "flow_id": "f", "job_polls": 0}])
    uri = finished_job(emu, token, ["i1"])["entities"][0]["downloadUri"]
    assert emu.expire_downloads() == 1
    r = download(emu, uri)
    assert r.status == 403 and "<Code>AccessDenied</Code>" in r.text
    emu.config(download_ttl=1.0)
    uri = finished_job(emu, token, ["i1"])["entities"][0]["downloadUri"]
    assert download(emu, uri).status == 200
    time.sleep(1.1)
    assert download(emu, uri).status == 403
    emu.config(download_ttl=600)
    uri = finished_job(emu, token, ["i1"])["entities"][0]["downloadUri"]
    emu.clear_flow_instances()                                         # links go with it
    assert download(emu, uri).status == 404 and emu.flow_instances() == [] and emu.flow_jobs() == []


def test_flow_job_poll_faults(emu, token):
    emu.add_flow_instances([{"id": "i1", "flow_id": "f"}])
    job = emu.request("POST", FLOW_JOBS, {"ids": ["i1"]}, token=token).json
    path = rf"^{FLOW_JOBS}/{job['id']}$"
    emu.fault(path, status=429, retry_after=2, method="GET", skip=1)    # the 2nd poll
    assert poll(emu, token, job["id"])["jobState"] == "Running"
    r = emu.request("GET", f"{FLOW_JOBS}/{job['id']}", token=token)
    assert_genesys_error(r, 429, "too.many.requests")
    assert r.header("Retry-After") == "2"
    assert poll(emu, token, job["id"])["jobState"] == "Success"         # a faulted poll does not count
    assert [e["status"] for e in emu.requests(path=path)] == [200, 429, 200]
    assert emu.flow_jobs()[0]["polls"] == 2
    # 5xx on the submit, a dropped download
    emu.fault(f"^{FLOW_JOBS}$", status=503, method="POST")
    assert_genesys_error(emu.request("POST", FLOW_JOBS, {"ids": ["i1"]}, token=token), 503,
                         "service.unavailable")
    uri = poll(emu, token, job["id"])["entities"][0]["downloadUri"]
    emu.fault(r"^/downloads/", drop=True)
    with pytest.raises((ConnectionError, urllib.error.URLError, OSError)):
        download(emu, uri)
    assert download(emu, uri).status == 200


def test_control_flow_instances_validation(emu):
    for bad in ({"id": "x"}, {"flow_id": "f", "job_polls": -1}, {"flow_id": "f", "execution": {}},
                {"flow_id": "f", "start": "yesterday"}, {"flow_id": "f", "reported_items": "3"},
                {"flow_id": "f", "truncated": "yes"}):
        with pytest.raises(EmulatorError):
            emu.add_flow_instances([bad])
    view = emu.add_flow_instances({"flow_id": "f"})[0]                # one object is accepted too
    assert view["start"] == view["end"] and ISO_MS.match(view["start"]) and view["job_polls"] == 2
    emu.reset()
    assert emu.flow_instances() == []


# ------------------------------------------------------------------------ request log, rate limit

def test_request_log(emu):
    emu.clear_requests()
    tok = emu.token()
    emu.request("GET", f"{ORG}?x=1&x=2", token=tok)
    emu.stats()                                      # control requests are not logged
    log = emu.requests()
    assert [(e["method"], e["path"]) for e in log] == [("POST", "/oauth/token"), ("GET", ORG)]
    oauth, org = log
    assert oauth["headers"]["Authorization"] == basic() and oauth["body"] == "grant_type=client_credentials"
    assert org["headers"]["Authorization"] == f"Bearer {tok}" and org["status"] == 200
    assert org["query"] == "x=1&x=2" and org["params"] == {"x": ["1", "2"]}
    assert isinstance(org["at"], float) and org["at"] >= oauth["at"]
    assert emu.requests(path=r"^/oauth/") == [oauth]
    assert emu.requests(method="GET") == [org]
    assert emu.requests(since=oauth["seq"]) == [org]
    emu.clear_requests()
    assert emu.requests() == []
    assert emu.stats()["requests_by_route"]["GET /api/v2/organizations/me"] == 1


def test_rate_limit(emu, token):
    emu.config(rate_limit=3)
    assert [emu.request("GET", ORG, token=token).status for _ in range(3)] == [200] * 3
    r = emu.request("GET", ORG, token=token)
    assert_genesys_error(r, 429, "too.many.requests")
    assert 1 <= int(r.header("Retry-After")) <= 60
    assert emu.request("GET", ORG, token=emu.token()).status == 200     # per token
    assert emu.stats()["rate_limited"] == 1


def test_client_rate_limit_counts_every_token(emu):
    """client_rate_limit: one sliding window for all the client's tokens; a refused request
    takes no slot; off (0) by default."""
    assert emu._control("GET", "/config")["client_rate_limit"] == 0
    emu.config(client_rate_limit=3)
    tokens = [emu.token(), emu.token(), emu.token()]
    assert [emu.request("GET", ORG, token=t).status for t in tokens] == [200] * 3
    for t in (tokens[0], emu.token()):
        r = emu.request("GET", ORG, token=t)
        assert_genesys_error(r, 429, "too.many.requests")
        assert 55 <= int(r.header("Retry-After")) <= 60
    assert emu.stats()["rate_limited"] == 2
    emu.config(client_rate_limit=0)
    assert emu.request("GET", ORG, token=tokens[1]).status == 200


# ------------------------------------------------------------------------ notifications (REST)

def create_channel(emu, token):
    r = emu.request("POST", "/api/v2/notifications/channels", token=token)
    assert r.status == 200, r
    return r.json


def test_channel_create_list_head(emu, token):
    ch = create_channel(emu, token)
    assert ch["id"].startswith("streaming-")
    assert ch["connectUri"] == f"ws://127.0.0.1:{emu.port}/channels/{ch['id']}"
    assert ISO_MS.match(ch["expires"])
    listed = emu.request("GET", "/api/v2/notifications/channels", token=token).json["entities"]
    assert [c["id"] for c in listed] == [ch["id"]]
    assert emu.request("HEAD", f"/api/v2/notifications/channels/{ch['id']}", token=token).status == 200
    assert emu.request("HEAD", "/api/v2/notifications/channels/streaming-0-nope", token=token).status == 404


def test_channel_limit_removes_the_oldest_unconnected(emu, token):
    made = [create_channel(emu, token) for _ in range(20)]

    async def scenario():
        async with aiohttp.ClientSession() as s, s.ws_connect(made[0]["connectUri"]):
            wait_connected(emu, made[0]["id"])          # connected: removed last
            r = emu.request("POST", "/api/v2/notifications/channels", token=emu.token())
            assert r.status == 200
            live = {c["id"] for c in emu.channels()}
            assert len(live) == 20 and r.json["id"] in live
            assert made[0]["id"] in live and made[1]["id"] not in live
            assert emu.stats()["channels_removed"] == 1
    run(scenario())


def test_subscriptions(emu, token):
    a, b = add_agents(emu, 2)
    ch = create_channel(emu, token)
    path = f"/api/v2/notifications/channels/{ch['id']}/subscriptions"
    topics = [f"v2.users.{a['id']}.activity", "v2.users.ghost.activity", f"v2.users.{a['id']}.weather"]
    r = emu.request("PUT", path, body=[{"id": t} for t in topics], token=token)
    assert r.status == 200
    states = {e["id"]: e for e in r.json["entities"]}
    assert states[topics[0]]["state"] == "Permitted"
    assert states[topics[1]]["state"] == "Rejected" and "ghost" in states[topics[1]]["rejectionReason"]
    assert states[topics[2]]["state"] == "Rejected" and states[topics[2]]["rejectionReason"]
    r = emu.request("POST", path, body=[{"id": f"v2.users.{b['id']}.activity"}], token=token)
    assert [e["id"] for e in r.json["entities"]] == [topics[0], f"v2.users.{b['id']}.activity"]
    assert len(emu.request("GET", path, token=token).json["entities"]) == 2
    assert emu.request("DELETE", path, token=token).status in (200, 204)
    assert emu.request("GET", path, token=token).json["entities"] == []
    assert emu.request("GET", "/api/v2/notifications/channels/streaming-0-nope/subscriptions",
                       token=token).status == 404


def test_subscription_topic_limit(emu, token):
    agents = add_agents(emu, 1001)
    ch = create_channel(emu, token)
    path = f"/api/v2/notifications/channels/{ch['id']}/subscriptions"
    topics = [{"id": f"v2.users.{a['id']}.activity"} for a in agents]
    assert_genesys_error(emu.request("PUT", path, body=topics, token=token), 400, "bad.request")
    assert emu.request("PUT", path, body=topics[:1000], token=token).status == 200
    assert_genesys_error(emu.request("POST", path, body=topics[1000:], token=token), 400, "bad.request")


# ------------------------------------------------------------------------ notifications (WebSocket)

async def receive(ws, timeout=3.0, skip=("channel.metadata",)):
    """Next JSON message whose topicName is not in `skip`."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if msg.type != aiohttp.WSMsgType.TEXT:
            return msg
        data = json.loads(msg.data)
        if data.get("topicName") not in skip:
            return data


def subscribed_channel(emu, token, agent_ids, kind="activity"):
    ch = create_channel(emu, token)
    r = emu.request("PUT", f"/api/v2/notifications/channels/{ch['id']}/subscriptions",
                    body=[{"id": f"v2.users.{u}.{kind}"} for u in agent_ids], token=token)
    assert all(e["state"] == "Permitted" for e in r.json["entities"])
    return ch


def wait_connected(emu, channel_id):
    emu.wait_for(lambda: any(c["id"] == channel_id and c["connected"] for c in emu.channels()),
                 timeout=3, message="socket attached")


def test_websocket_activity_event(emu, token):
    (a,) = add_agents(emu, 1, queues=["q1"])
    ch = subscribed_channel(emu, token, [a["id"]])

    async def scenario():
        async with aiohttp.ClientSession() as s, s.ws_connect(ch["connectUri"]) as ws:
            wait_connected(emu, ch["id"])
            state = emu.set_state(a["id"], presence="On Queue")
            event = await receive(ws)
            assert event["topicName"] == f"v2.users.{a['id']}.activity" and event["version"] == "2"
            body = event["eventBody"]
            assert body["id"] == a["id"] and body["activeQueueIds"] == ["q1"]
            assert body["routingStatus"] == {"status": "IDLE", "startTime": state["routing_start"]}
            assert body["presence"]["presenceDefinition"]["systemPresence"] == "ON_QUEUE"
            assert body["presence"]["modifiedDate"] == state["presence_modified"]
            assert event["metadata"]["CorrelationId"]
            emu.set_state(a["id"], routing_status="INTERACTING")
            assert (await receive(ws))["eventBody"]["routingStatus"]["status"] == "INTERACTING"
            emu.set_state(a["id"], presence="Break")
            event = await receive(ws)
            assert event["eventBody"]["presence"]["presenceDefinition"]["systemPresence"] == "BREAK"
            assert event["eventBody"]["routingStatus"]["status"] == "OFF_QUEUE"
    run(scenario())
    assert emu.stats()["notifications_sent"] == 3


def test_ws_push_sends_unsubscribed_activity(emu, token):
    a, stranger = add_agents(emu, 2)
    ch = subscribed_channel(emu, token, [a["id"]])

    async def scenario():
        async with aiohttp.ClientSession() as s, s.ws_connect(ch["connectUri"]) as ws:
            wait_connected(emu, ch["id"])
            assert emu.ws_push(stranger["id"], channel=ch["id"]) == 1
            event = await receive(ws)
            assert event["topicName"] == f"v2.users.{stranger['id']}.activity"
            assert event["eventBody"]["id"] == stranger["id"]
            assert event["eventBody"]["routingStatus"]["status"]
    run(scenario())
    assert emu.ws_push(stranger["id"]) == 0             # nobody connected any more
    with pytest.raises(EmulatorError):
        emu.ws_push("no-such-agent")


def test_websocket_presence_and_routing_topics(emu, token):
    (a,) = add_agents(emu, 1)
    ch = create_channel(emu, token)
    emu.request("PUT", f"/api/v2/notifications/channels/{ch['id']}/subscriptions", token=token,
                body=[{"id": f"v2.users.{a['id']}.presence"}, {"id": f"v2.users.{a['id']}.routingStatus"}])

    async def scenario():
        async with aiohttp.ClientSession() as s, s.ws_connect(ch["connectUri"]) as ws:
            wait_connected(emu, ch["id"])
            emu.set_state(a["id"], presence="OnQueue")
            events = {(await receive(ws))["topicName"].rsplit(".", 1)[1] for _ in range(2)}
            assert events == {"presence", "routingStatus"}
    run(scenario())


def test_websocket_unknown_channel(emu):
    async def scenario():
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await s.ws_connect(f"{emu.url.replace('http', 'ws')}/channels/streaming-0-nope")
            assert exc.value.status == 404
    run(scenario())


def test_heartbeats_and_ping(emu, token):
    emu.config(heartbeat=1)
    ch = create_channel(emu, token)

    async def scenario():
        async with aiohttp.ClientSession() as s, s.ws_connect(ch["connectUri"]) as ws:
            beats = []
            while len(beats) < 3:
                msg = await receive(ws, timeout=2.5, skip=())
                assert msg == {"topicName": "channel.metadata",
                               "eventBody": {"message": "WebSocket Heartbeat"}}
                beats.append(time.monotonic())
            gaps = [b - a for a, b in zip(beats, beats[1:])]
            assert all(0.7 <= g <= 1.4 for g in gaps), gaps
            await ws.send_str(json.dumps({"message": "ping"}))
            pong = await receive(ws, skip=(), timeout=2)
            while pong["eventBody"]["message"] != "pong":      # a heartbeat may come first
                pong = await receive(ws, skip=(), timeout=2)
            assert pong == {"topicName": "channel.metadata", "eventBody": {"message": "pong"}}
    run(scenario())


def test_ws_faults_stop_heartbeats_and_ignore_pings(emu, token):
    emu.config(heartbeat=0.3)
    ch = create_channel(emu, token)

    async def scenario():
        async with aiohttp.ClientSession() as s, s.ws_connect(ch["connectUri"]) as ws:
            await receive(ws, skip=())                          # heartbeats flow
            wait_connected(emu, ch["id"])
            assert emu.ws_fault("stop_heartbeats") == 1
            assert emu.ws_fault("ignore_pings", channel=ch["id"]) == 1
            await ws.send_str(json.dumps({"message": "ping"}))
            # a heartbeat already queued may still arrive; after that, silence
            with pytest.raises(asyncio.TimeoutError):
                while True:
                    await receive(ws, skip=(), timeout=1.0)
    run(scenario())


def test_second_socket_displaces_first(emu, token):
    (a,) = add_agents(emu, 1)
    ch = subscribed_channel(emu, token, [a["id"]])

    async def scenario():
        async with aiohttp.ClientSession() as s:
            first = await s.ws_connect(ch["connectUri"])
            wait_connected(emu, ch["id"])
            second = await s.ws_connect(ch["connectUri"])
            msg = await first.receive(timeout=3)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            emu.wait_for(lambda: emu.stats()["active_sockets"] == 1, timeout=3, message="one socket")
            emu.set_state(a["id"], presence="Away")
            assert (await receive(second))["eventBody"]["id"] == a["id"]
            await second.close()
    run(scenario())
    assert emu.stats()["ws_displaced"] == 1


def test_ws_fault_socket_closing_and_no_longer_subscribed(emu, token):
    (a,) = add_agents(emu, 1)
    ch = subscribed_channel(emu, token, [a["id"]])

    async def scenario():
        async with aiohttp.ClientSession() as s, s.ws_connect(ch["connectUri"]) as ws:
            wait_connected(emu, ch["id"])
            assert emu.ws_fault("socket_closing", grace=0.5) == 1
            assert (await receive(ws))["topicName"] == "v2.system.socket_closing"
            msg = await ws.receive(timeout=3)                  # closed after the grace period
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        async with aiohttp.ClientSession() as s, s.ws_connect(ch["connectUri"]) as ws:
            wait_connected(emu, ch["id"])
            emu.ws_fault("no_longer_subscribed", channel=ch["id"])
            event = await receive(ws)
            assert event["topicName"] == f"v2.system.no_longer_subscribed.{ch['id']}"
            assert event["eventBody"]["systemTopicType"] == "no_longer_subscribed"
            subs = emu.request("GET", f"/api/v2/notifications/channels/{ch['id']}/subscriptions", token=token)
            assert subs.json["entities"] == []
    run(scenario())


def test_ws_fault_token_revoked_malformed_and_drop(emu, token):
    ch = create_channel(emu, token)

    async def scenario():
        async with aiohttp.ClientSession() as s, s.ws_connect(ch["connectUri"]) as ws:
            wait_connected(emu, ch["id"])
            emu.ws_fault("malformed")
            first = await ws.receive(timeout=3)
            with pytest.raises(ValueError):
                json.loads(first.data)
            assert "topicName" not in json.loads((await ws.receive(timeout=3)).data)
            emu.ws_fault("token_revoked")
            assert (await receive(ws))["topicName"] == f"v2.system.token_revoked.{ch['id']}"
            assert emu.request("GET", ORG, token=token).status == 401
            emu.ws_fault("drop")
            msg = await ws.receive(timeout=3)
            assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
    run(scenario())
    emu.wait_for(lambda: emu.stats()["active_sockets"] == 0, timeout=3, message="socket gone")


# ------------------------------------------------------------------------ simulation, reset

def test_simulation_churns_and_records_ground_truth(emu, token):
    info = emu.simulate(agents=12, queues=2, churn=200)
    assert len(info["agent_ids"]) == 12 and len(info["queues"]) == 2
    emu.wait_for(lambda: emu.stats()["state_changes"] >= 40, timeout=5, message="churn")
    emu.stop_simulation()
    agents = emu.agents()
    assert len(agents) == 12 and all(" " in a["name"] for a in agents)
    assert sum(len(a["timeline"]) for a in agents) >= 40 + 12
    for agent in agents:
        # the timeline ends in the agent's current state, which the REST API also shows
        assert agent["timeline"][-1]["state"] == agent["state"]
    qid = info["queues"][0]["id"]
    members = emu.request("GET", f"/api/v2/routing/queues/{qid}/members?pageSize=100", token=token).json
    assert members["entities"]
    # stable ids: a second simulation reuses the same agents and queues
    emu.reset()
    again = emu.simulate(agents=12, queues=2, churn=0)
    assert again["agent_ids"] == info["agent_ids"] and again["queues"] == info["queues"]


def test_reset_clears_everything(emu, token):
    add_agents(emu, 2, queues=["q1"])
    emu.fault(ORG, status=500, count=3)
    emu.config(rate_limit=1)
    create_channel(emu, token)
    emu.reset()
    stats = emu.stats()
    assert (stats["agents"], stats["queues"], stats["channels"], stats["faults_pending"]) == (0, 0, 0, 0)
    assert emu.requests() == []
    assert emu.request("GET", ORG, token=token).status == 401          # tokens are gone too
    tok = emu.token()
    assert [emu.request("GET", ORG, token=tok).status for _ in range(2)] == [200, 200]


# ------------------------------------------------------------------------ routing strategies (issue 16)

MEMBERS = "/api/v2/routing/queues/{}/members"
OBSERVATIONS = "/api/v2/analytics/queues/observations/query"
AGGREGATES = "/api/v2/analytics/conversations/aggregates/query"
AUDITS = "/api/v2/audits/query"
DAY = "2026-01-05T00:00:00.000Z/2026-01-06T00:00:00.000Z"


def member_ids(emu, token, queue_id, query):
    ids, uri = [], MEMBERS.format(queue_id) + "?" + query
    while uri:
        r = emu.request("GET", uri, token=token)
        assert r.status == 200, r
        ids += [m["id"] for m in r.json["entities"]]
        uri = r.json.get("nextUri")
    return ids


def test_members_skills_filter_needs_every_skill(emu, token):
    emu.add_skills([{"id": "s-en", "name": "English"}, {"id": "s-fr", "name": "French"},
                    {"id": "s-de", "name": "German"}])
    both = [{"id": "s-en", "proficiency": 3}, {"id": "s-fr", "proficiency": 1}]
    emu.add_agents([{"id": "u-both", "name": "A Both", "skills": both},
                    {"id": "u-en", "name": "B English", "skills": [{"id": "s-en", "proficiency": 5}]},
                    {"id": "u-fr", "name": "C French", "skills": [{"id": "s-fr", "proficiency": 2}]},
                    {"id": "u-none", "name": "D None"},
                    {"id": "u-out", "name": "E Both Unjoined", "skills": both}])
    emu.add_queues([{"id": "qs", "name": "Skills", "members": [
        "u-both", "u-en", "u-fr", "u-none", {"id": "u-out", "joined": False}]}])
    assert member_ids(emu, token, "qs", "skills=s-en") == ["u-both", "u-en", "u-out"]
    assert member_ids(emu, token, "qs", "skills=s-en,s-fr") == ["u-both", "u-out"]
    assert member_ids(emu, token, "qs", "skills=s-en&skills=s-fr") == ["u-both", "u-out"]
    assert member_ids(emu, token, "qs", "skills=English,French") == ["u-both", "u-out"]   # names too
    assert member_ids(emu, token, "qs", "skills=s-en,s-fr,s-de") == []
    assert member_ids(emu, token, "qs", "skills=s-en,s-fr&joined=true") == ["u-both"]
    assert member_ids(emu, token, "qs", "joined=false") == ["u-out"]
    assert member_ids(emu, token, "qs", "skills=s-fr&pageSize=1") == ["u-both", "u-fr", "u-out"]
    # the filter reads the agents' routing skills as they are now: an inactive skill does not count
    r = emu.request("PUT", "/api/v2/users/u-both/routingskills/s-fr",
                    body={"id": "s-fr", "proficiency": 1, "state": "inactive"}, token=token)
    assert r.status == 200
    assert member_ids(emu, token, "qs", "skills=s-en,s-fr&joined=true") == []
    emu.request("PUT", "/api/v2/users/u-en/routingskills/s-fr", body={"proficiency": 4}, token=token)
    assert member_ids(emu, token, "qs", "skills=s-en,s-fr&joined=true") == ["u-en"]


def observe(emu, token, *queue_ids, metrics=("oOnQueueUsers", "oInteracting", "oWaiting")):
    body = {"filter": {"type": "or", "predicates": [{"dimension": "queueId", "value": q}
                                                    for q in queue_ids]}, "metrics": list(metrics)}
    r = emu.request("POST", OBSERVATIONS, body=body, token=token)
    assert r.status == 200, r
    return {res["group"]["queueId"]: {d["metric"]: d["stats"]["count"] for d in res["data"]}
            for res in r.json["results"]}


def test_scripted_queue_observations(emu, token):
    emu.add_agents([{"name": "On1", "presence": "OnQueue", "routing_status": "INTERACTING",
                     "queues": ["qa"]}, {"name": "On2", "presence": "OnQueue", "queues": ["qa", "qb"]}])
    emu.add_queues([{"id": "qa", "waiting": 3}])
    assert observe(emu, token, "qa", "qb") == {
        "qa": {"oOnQueueUsers": 2, "oInteracting": 1, "oWaiting": 3},
        "qb": {"oOnQueueUsers": 1, "oInteracting": 0, "oWaiting": 0}}
    view = emu.set_queue_observations("qa", interacting=9, waiting=12, on_queue=10)
    assert view["observations"] == {"oInteracting": 9, "oWaiting": 12, "oOnQueueUsers": 10}
    emu.set_queue_observations("qb", oMemberUsers=40)
    assert observe(emu, token, "qa", "qb", metrics=("oOnQueueUsers", "oInteracting", "oWaiting",
                                                    "oMemberUsers")) == {
        "qa": {"oOnQueueUsers": 10, "oInteracting": 9, "oWaiting": 12, "oMemberUsers": 2},
        "qb": {"oOnQueueUsers": 1, "oInteracting": 0, "oWaiting": 0, "oMemberUsers": 40}}
    emu.set_queue_observations("qa", oInteracting=None)                  # back to the computed count
    assert observe(emu, token, "qa")["qa"] == {"oOnQueueUsers": 10, "oInteracting": 1, "oWaiting": 12}
    emu.set_queue_observations("qa", clear=True, interacting=0)
    assert observe(emu, token, "qa")["qa"] == {"oOnQueueUsers": 2, "oInteracting": 0, "oWaiting": 3}
    for bad in ({"oBogus": 1}, {"oWaiting": -1}, {"oWaiting": 1.5}, {"oWaiting": True}):
        r = emu.request("POST", "/__emulator/queues/qa/observations", body=bad)
        assert r.status == 400 and "error" in r.json
    assert emu.request("POST", "/__emulator/queues/nope/observations", body={}).status == 404


def test_queue_put_reads_back_after_scripted_lag(emu, token):
    emu.add_queues([{"id": "ql", "name": "Lagging"}])
    path = "/api/v2/routing/queues/ql"
    assert emu.queue_readback_lag("ql", gets=2)["readback_lag"] == 2
    queue = emu.request("GET", path, token=token).json                   # no PUT yet: no lag
    assert (queue["version"], queue["skillEvaluationMethod"]) == (1, "ALL")
    queue.update(skillEvaluationMethod="BEST", scoringMethod="PriorityOnly")
    r = emu.request("PUT", path, body=queue, token=token)
    assert r.status == 200 and (r.json["version"], r.json["skillEvaluationMethod"]) == (2, "BEST")
    assert emu.queues()[0]["readback_pending"] == 2
    listing = emu.request("GET", "/api/v2/routing/queues", token=token).json["entities"]
    assert listing[0]["version"] == 1                                    # lists stale, uses no GET
    emu.fault(rf"^{path}$", status=429, retry_after=1, method="GET")
    assert emu.request("GET", path, token=token).status == 429           # a faulted GET uses none
    seen = [emu.request("GET", path, token=token).json for _ in range(3)]
    assert [(q["version"], q["skillEvaluationMethod"], q["scoringMethod"]) for q in seen] == \
        [(1, "ALL", "TimestampAndPriority"), (1, "ALL", "TimestampAndPriority"), (2, "BEST", "PriorityOnly")]
    assert emu.queues()[0]["readback_pending"] == 0
    # a PUT built on a stale read conflicts (the real version moved on)
    emu.request("PUT", path, body={**seen[2], "skillEvaluationMethod": "NONE"}, token=token)
    assert emu.request("GET", path, token=token).json["version"] == 2
    assert_genesys_error(emu.request("PUT", path, body=seen[0], token=token), 409, "general.conflict")
    emu.queue_readback_lag("ql", gets=0)                                 # flushes the pending PUT
    assert emu.request("GET", path, token=token).json["skillEvaluationMethod"] == "NONE"
    assert emu.stats()["queue_stale_reads"] == 3
    for bad in ({"gets": -1}, {"gets": "2"}, {"gets": 1001}, {}):
        assert emu.request("POST", "/__emulator/queues/ql/readback_lag", body=bad).status == 400
    assert emu.request("POST", "/__emulator/queues/nope/readback_lag", body={"gets": 1}).status == 404


def aggregates(emu, token, body):
    r = emu.request("POST", AGGREGATES, body=body, token=token)
    assert r.status == 200, r
    return r.json


def test_conversation_aggregates_per_queue(emu, token):
    emu.set_queue_aggregates("q1", tWait=[1000, 4000, 2500], tAnswered=[900, 3000], nOffered=3)
    emu.set_queue_aggregates("q1", append=True, tWait=[9000], nOffered=1, at="2026-01-05T10:00:00Z")
    emu.set_queue_aggregates("q2", tWait={"max": 60000, "min": 100, "count": 20, "sum": 300000},
                             nOffered={"count": 25}, media_type="chat")
    emu.set_queue_aggregates("q3", tWait=[5], at="2026-02-01T00:00:00Z")   # outside the interval
    query = {"interval": DAY, "groupBy": ["queueId"],
             "filter": {"type": "or", "predicates": [{"type": "dimension", "dimension": "queueId",
                                                      "operator": "matches", "value": q}
                                                     for q in ("q1", "q2", "q3", "q4")]},
             "metrics": ["tWait", "tAnswered", "nOffered"]}
    body = aggregates(emu, token, query)
    assert [res["group"] for res in body["results"]] == [{"queueId": "q1"}, {"queueId": "q2"}]
    q1, q2 = body["results"]
    assert [d["interval"] for d in q1["data"]] == [DAY]
    assert q1["data"][0]["metrics"] == [
        {"metric": "tWait", "stats": {"max": 9000, "min": 1000, "count": 4, "sum": 16500}},
        {"metric": "tAnswered", "stats": {"max": 3000, "min": 900, "count": 2, "sum": 3900}},
        {"metric": "nOffered", "stats": {"count": 4}}]
    assert q2["data"][0]["metrics"] == [                                  # no tAnswered data: left out
        {"metric": "tWait", "stats": {"max": 60000, "min": 100, "count": 20, "sum": 300000}},
        {"metric": "nOffered", "stats": {"count": 25}}]
    # an interval without the timed bucket; groupBy mediaType; a mediaType filter
    other = aggregates(emu, token, {**query, "interval": "2026-01-06T00:00:00Z/2026-01-07T00:00:00Z",
                                    "groupBy": ["queueId", "mediaType"], "metrics": ["tWait"]})
    assert [(r["group"], r["data"][0]["metrics"][0]["stats"]["count"]) for r in other["results"]] == \
        [({"queueId": "q1", "mediaType": "voice"}, 3), ({"queueId": "q2", "mediaType": "chat"}, 20)]
    assert other["results"][0]["data"][0]["interval"] == \
        "2026-01-06T00:00:00.000Z/2026-01-07T00:00:00.000Z"
    chat = aggregates(emu, token, {"interval": DAY, "groupBy": ["queueId"], "metrics": ["nOffered"],
                                   "filter": {"type": "and", "predicates": [
                                       {"dimension": "mediaType", "value": "chat"}]}})
    assert chat == {"results": [{"group": {"queueId": "q2"}, "data": [
        {"interval": DAY, "metrics": [{"metric": "nOffered", "stats": {"count": 25}}]}]}]}
    # no data at all: an empty object, as upstream
    assert aggregates(emu, token, {**query, "filter": {"type": "or", "predicates": [
        {"dimension": "queueId", "value": "q4"}]}}) == {}
    for bad in ({**query, "interval": "yesterday"}, {**query, "interval": DAY.split("/")[0]},
                {**query, "interval": "2026-01-06T00:00:00Z/2026-01-05T00:00:00Z"},
                {**query, "metrics": ["tBogus"]}, {**query, "groupBy": ["userId"]},
                {**query, "granularity": "PT1H"}, {**query, "filter": {"predicates": []}}):
        assert_genesys_error(emu.request("POST", AGGREGATES, body=bad, token=token), 400, "bad.request")
    assert emu.stats()["aggregate_queries"] == 11
    # control validation is all or nothing
    for bad in ({"metrics": {"tWait": []}}, {"metrics": {"tWait": [-1]}}, {"metrics": {"nOffered": 1.5}},
                {"metrics": {"tBogus": [1]}}, {"metrics": {}}, {"metrics": {"tWait": [1]}, "at": "x"},
                {"metrics": {"tWait": {"max": 1, "min": 2, "count": 1, "sum": 1}}}):
        r = emu.request("POST", "/__emulator/queues/q1/aggregates", body=[{"metrics": {"nOffered": 1}}, bad])
        assert r.status == 400, bad
    assert len(emu.aggregates()["q1"]) == 2
    emu.clear_aggregates()
    assert emu.aggregates() == {}


def audit_query(emu, token, filters, interval=None, service="Routing", sort=None):
    body = {"interval": interval or "2020-01-01T00:00:00Z/2030-01-01T00:00:00Z",
            "serviceName": service, "filters": filters}
    if sort:
        body["sort"] = sort
    r = emu.request("POST", AUDITS, body=body, token=token)
    assert r.status == 200, r
    return r.json


def audit_poll(emu, token, query_id):
    r = emu.request("GET", f"{AUDITS}/{query_id}", token=token)
    assert r.status == 200, r
    return r.json


def audit_results(emu, token, query_id, page_size=None, expand=None):
    entities, cursor, pages = [], None, 0
    while True:
        params = {k: v for k, v in (("cursor", cursor), ("pageSize", page_size), ("expand", expand)) if v}
        r = emu.request("GET", f"{AUDITS}/{query_id}/results"
                        + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""),
                        token=token)
        assert r.status == 200, r
        assert r.json["id"] == query_id and r.json["pageSize"] == (page_size or 25)
        entities += r.json["entities"]
        pages += 1
        cursor = r.json.get("cursor")
        if not cursor:
            return entities, pages


def test_audit_query_sees_queue_puts(emu, token):
    emu.add_queues([{"id": "qa", "name": "Audited"}, {"id": "qz", "name": "Other"}])
    path = "/api/v2/routing/queues/qa"
    queue = emu.request("GET", path, token=token).json
    r = emu.request("PUT", path, body={**queue, "skillEvaluationMethod": "BEST"}, token=token)
    assert r.status == 200
    emu.audit_config(put_user={"id": "u-admin", "name": "Ada Admin"})
    emu.request("PUT", path, body={**r.json, "skillEvaluationMethod": "ALL", "name": "Audited 2"},
                token=token)
    other = emu.request("GET", "/api/v2/routing/queues/qz", token=token).json
    emu.request("PUT", "/api/v2/routing/queues/qz", body=other, token=token)
    assert len(emu.audit_entries()) == 3
    status = audit_query(emu, token, [{"property": "EntityId", "value": "qa"}],
                         sort=[{"name": "Timestamp", "sortOrder": "ascending"}])
    assert status["state"] == "Running" and status["serviceName"] == "Routing"
    assert status["filters"] == [{"property": "EntityId", "value": "qa"}] and ISO_MS.match(status["startDate"])
    assert_genesys_error(emu.request("GET", f"{AUDITS}/{status['id']}/results", token=token), 400,
                         "bad.request")                                  # not complete yet
    assert audit_poll(emu, token, status["id"])["state"] == "Running"
    assert audit_poll(emu, token, status["id"])["state"] == "Succeeded"
    entries, pages = audit_results(emu, token, status["id"])
    assert pages == 1 and len(entries) == 2
    first, second = entries
    assert (first["action"], first["entityType"], first["serviceName"]) == ("Update", "Queue", "Routing")
    assert first["entity"]["id"] == "qa" and first["entity"]["name"] == "Audited"
    assert first["client"]["id"] == CLIENT_ID and "user" not in first        # client credentials
    assert ISO_MS.match(first["eventDate"]) and first["level"] == "USER" and first["status"] == "SUCCESS"
    assert first["propertyChanges"] == [{"property": "skillEvaluationMethod", "oldValues": ["ALL"],
                                         "newValues": ["BEST"]}]
    assert second["user"] == {"id": "u-admin"}                           # the name needs expand=user
    assert {c["property"] for c in second["propertyChanges"]} == {"name", "skillEvaluationMethod"}
    expanded, _ = audit_results(emu, token, status["id"], expand="user")
    assert expanded[1]["user"] == {"id": "u-admin", "name": "Ada Admin"}
    # filters: the same property ORs, different ones AND; serviceName and interval must match
    both = audit_query(emu, token, [{"property": "EntityId", "value": "qa"},
                                    {"property": "EntityId", "value": "qz"},
                                    {"property": "UserId", "value": "u-admin"}])
    audit_poll(emu, token, both["id"]), audit_poll(emu, token, both["id"])
    assert [e["entity"]["id"] for e in audit_results(emu, token, both["id"])[0]] == ["qz", "qa"]  # newest first
    for filters, service, interval in (([], "Presence", None),
                                       ([], "Routing", "2020-01-01T00:00:00Z/2020-01-02T00:00:00Z"),
                                       ([{"property": "Action", "value": "Delete"}], "Routing", None)):
        q = audit_query(emu, token, filters, interval=interval, service=service)
        audit_poll(emu, token, q["id"]), audit_poll(emu, token, q["id"])
        assert audit_results(emu, token, q["id"]) == ([], 1)


def test_audit_query_paging_scripted_entries_and_faults(emu, token):
    emu.add_audit_entries([{"entity": {"id": "q7", "name": "Seven"}, "user": {"id": f"u{i}", "name": f"U {i}"},
                            "eventDate": f"2026-01-05T10:{i:02d}:00.000Z",
                            "propertyChanges": [{"property": "name", "oldValues": ["a"], "newValues": ["b"]}]}
                           for i in range(30)])
    emu.add_audit_entries([{"entity": {"id": "f1", "name": "Flow"}, "entityType": "Flow",
                            "serviceName": "Architect", "action": "Publish"}])
    emu.audit_config(running_polls=3)
    status = audit_query(emu, token, [{"property": "EntityType", "value": "Queue"}], interval=DAY,
                         sort=[{"name": "Timestamp", "sortOrder": "descending"}])
    qid = status["id"]
    poll_path = rf"^{AUDITS}/{qid}$"
    emu.fault(poll_path, status=429, retry_after=2, method="GET", skip=1)   # the 2nd poll
    assert audit_poll(emu, token, qid)["state"] == "Running"
    r = emu.request("GET", f"{AUDITS}/{qid}", token=token)
    assert_genesys_error(r, 429, "too.many.requests")
    assert r.header("Retry-After") == "2"
    assert [audit_poll(emu, token, qid)["state"] for _ in range(3)] == ["Running", "Running", "Succeeded"]
    assert [e["status"] for e in emu.requests(path=poll_path)] == [200, 429, 200, 200, 200]
    assert emu.audit_queries()[0]["polls"] == 4                          # the faulted poll did not count
    entries, pages = audit_results(emu, token, qid)
    assert pages == 2 and len(entries) == 30
    assert [e["user"]["id"] for e in entries] == [f"u{i}" for i in reversed(range(30))]
    entries7, pages7 = audit_results(emu, token, qid, page_size=7)
    assert pages7 == 5 and entries7 == entries
    assert_genesys_error(emu.request("GET", f"{AUDITS}/{qid}/results?pageSize=501", token=token),
                         400, "bad.request")
    assert_genesys_error(emu.request("GET", f"{AUDITS}/{qid}/results?cursor=bogus", token=token),
                         400, "bad.request")
    assert_genesys_error(emu.request("GET", f"{AUDITS}/nope", token=token), 404, "not.found")
    assert_genesys_error(emu.request("GET", f"{AUDITS}/nope/results", token=token), 404, "not.found")
    flows = audit_query(emu, token, [{"property": "EntityType", "value": "Flow"}], service="Architect")
    for _ in range(4):
        audit_poll(emu, token, flows["id"])
    (flow,) = audit_results(emu, token, flows["id"])[0]
    assert flow["action"] == "Publish" and flow["entity"] == {"id": "f1", "name": "Flow"}
    # a failing query; bad requests
    emu.audit_config(running_polls=0, fail=True)
    failed = audit_query(emu, token, [])
    assert audit_poll(emu, token, failed["id"])["state"] == "Failed"
    assert_genesys_error(emu.request("GET", f"{AUDITS}/{failed['id']}/results", token=token), 400,
                         "bad.request")
    for bad in ({"serviceName": "Routing"}, {"interval": DAY}, {"interval": DAY, "serviceName": ""},
                {"interval": DAY, "serviceName": "Routing", "filters": [{"property": "Bogus", "value": "x"}]},
                {"interval": DAY, "serviceName": "Routing", "filters": [{"property": "UserId"}]},
                {"interval": DAY, "serviceName": "Routing", "sort": [{"name": "Nope"}]}):
        assert_genesys_error(emu.request("POST", AUDITS, body=bad, token=token), 400, "bad.request")
    stats = emu.stats()
    assert stats["audit_queries"] == 3 and stats["audit_entries"] == 31
    for bad in ({"entity": {}}, {"entity": {"id": "x"}, "eventDate": "soon"}, {"entity": {"id": "x"}, "user": {}}):
        assert emu.request("POST", "/__emulator/audits", body=[{"entity": {"id": "ok"}}, bad]).status == 400
    assert len(emu.audit_entries()) == 31                                # all or nothing
    assert emu.request("POST", "/__emulator/audits/config", body={"running_polls": -1}).status == 400
    assert emu.request("POST", "/__emulator/audits/config", body={"bogus": 1}).status == 400
    emu.clear_audits()
    assert emu.audit_entries() == [] and emu.audit_queries() == []


def test_reset_clears_strategy_scripts(emu, token):
    emu.add_queues([{"id": "qr", "name": "R"}])
    emu.set_queue_observations("qr", waiting=5)
    emu.set_queue_aggregates("qr", nOffered=2)
    emu.add_audit_entries([{"entity": {"id": "qr"}}])
    emu.audit_config(running_polls=5, fail="no")
    audit_query(emu, token, [])
    emu.reset()
    assert emu.aggregates() == {} and emu.audit_entries() == [] and emu.audit_queries() == []
    assert emu.request("GET", "/__emulator/audits/config").json == \
        {"running_polls": 1, "fail": None, "put_user": None}
