"""The emulator against the recorded Genesys Cloud contract.

Two things the emulator must do as the real Platform API does, so that gcmon and the emulator
cannot misread the contract the same way unnoticed:

- request `Content-Type`s: JSON bodies need `application/json` (415 `unsupported.media.type`
  otherwise), the token request must be `application/x-www-form-urlencoded`;
- response shapes: every answer has the same member names and JSON types, at every level, as
  the fixture recorded from the public API reference (`fixtures/*.json`, each with its
  `_source`). Members listed in a fixture's `_optional` may be absent from the emulator's answer;
  no other member may be missing, and the emulator may add none.

Run: /usr/bin/python3 -m pytest -q tests/emulator/test_contract.py
"""
import base64
import glob
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from emulator.client import Emulator  # noqa: E402

CLIENT_ID, CLIENT_SECRET = "contract-client", "contract-secret"
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
FORM = "application/x-www-form-urlencoded"


def load_fixture(name):
    with open(os.path.join(FIXTURES, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def json_type(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string", type(None): "null"}[type(value)]


def shape_diff(expected, actual, optional, path=""):
    """Every difference in member names and types between `expected` (the fixture) and `actual`,
    as readable strings. An array's elements are compared with the fixture's first element; an
    empty fixture array only fixes the type."""
    where = path or "(root)"
    if json_type(expected) != json_type(actual):
        return [f"{where}: {json_type(actual)}, the contract has {json_type(expected)}"]
    diffs = []
    if isinstance(expected, dict):
        for key in expected:
            sub = f"{path}.{key}" if path else key
            if key in actual:
                diffs += shape_diff(expected[key], actual[key], optional, sub)
            elif sub not in optional:
                diffs.append(f"{sub}: missing")
        diffs += [f"{path + '.' if path else ''}{key}: not in the contract" for key in actual if key not in expected]
    elif isinstance(expected, list) and expected:
        for item in actual:
            diffs += shape_diff(expected[0], item, optional, path + "[]")
    return diffs


def test_shape_diff_catches_drift():
    """The comparison itself can fail: a renamed, a retyped, an extra and a nested missing member."""
    fixture = {"a": 1, "b": {"c": "x", "d": [{"e": True}]}, "o": None}
    assert shape_diff(fixture, {"a": 2, "b": {"c": "y", "d": [{"e": False}]}}, {"o"}) == []
    assert shape_diff(fixture, {"a": "2", "b": {"c": "y", "d": []}}, {"o"}) == [
        "a: string, the contract has number"]
    assert shape_diff(fixture, {"a": 1, "b": {"c": "y", "d": [{"e": 1}], "z": 0}}, {"o"}) == [
        "b.d[].e: number, the contract has boolean", "b.z: not in the contract"]
    assert shape_diff(fixture, {"a": 1, "b": {"d": [{}]}}, set()) == [
        "b.c: missing", "b.d[].e: missing", "o: missing"]


def test_every_fixture_names_its_source():
    files = sorted(glob.glob(os.path.join(FIXTURES, "*.json")))
    assert len(files) >= 8
    for path in files:
        with open(path, encoding="utf-8") as f:
            fixture = json.load(f)
        assert set(fixture) == {"_source", "_request", "_optional", "body"}, path
        assert fixture["_source"].strip() and fixture["_request"].strip(), path
        assert isinstance(fixture["body"], dict) and fixture["body"], path


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    e = Emulator(tmp_path_factory.mktemp("emu"), client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    e.start()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def world(emu):
    """Two agents in one queue (so every listing has a next page), a token and a channel."""
    emu.reset()
    agents = emu.add_agents([{"name": "Ada"}, {"name": "Bob"}])
    queue = emu.add_queues([{"name": "Sales"}])[0]
    emu.set_members(queue["id"], [a["id"] for a in agents])
    token = emu.token()
    channel = emu.request("POST", "/api/v2/notifications/channels", token=token)
    assert channel.status == 200, channel
    return {"token": token, "user": agents[0]["id"], "queue": queue["id"], "channel": channel.json}


def basic(client_id=CLIENT_ID, secret=CLIENT_SECRET):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def answer(emu, world, name):
    """The emulator's answer to the request the fixture `name` records."""
    t, uid, qid, cid = world["token"], world["user"], world["queue"], world["channel"]["id"]
    if name == "oauth_token":
        return emu.request("POST", "/oauth/token", body="grant_type=client_credentials",
                           headers={"Authorization": basic(), "Content-Type": FORM}), 200
    if name == "oauth_error":
        return emu.request("POST", "/oauth/token", body="grant_type=client_credentials",
                           headers={"Authorization": basic(secret="wrong"), "Content-Type": FORM}), 401
    if name == "channel_create":
        return emu.request("POST", "/api/v2/notifications/channels", token=t), 200
    if name == "subscriptions":
        body = [{"id": f"v2.users.{uid}.presence"}, {"id": "v2.users.no-such-user.presence"}]
        return emu.request("PUT", f"/api/v2/notifications/channels/{cid}/subscriptions", body=body, token=t), 200
    if name == "users_page":
        return emu.request("GET", "/api/v2/users?expand=routingStatus,presence&pageSize=1", token=t), 200
    if name == "queue_members_page":
        return emu.request("GET", f"/api/v2/routing/queues/{qid}/members?pageSize=1", token=t), 200
    if name == "queue_observations":
        body = {"filter": {"type": "or", "predicates": [{"dimension": "queueId", "value": qid}]},
                "metrics": ["oOnQueueUsers", "oWaiting"]}
        return emu.request("POST", "/api/v2/analytics/queues/observations/query", body=body, token=t), 200
    if name == "error_body":
        return emu.request("GET", "/api/v2/users/no-such-user", token=t), 404
    raise AssertionError(f"no request for fixture {name}")


FIXTURE_NAMES = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(FIXTURES, "*.json")))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_emulator_answer_has_the_contract_shape(emu, world, name):
    fixture = load_fixture(name)
    r, status = answer(emu, world, name)
    assert r.status == status, r
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json
    if isinstance(body.get("entities"), list):
        assert body["entities"], f"{name}: an empty listing proves nothing about its elements"
    assert shape_diff(fixture["body"], body, set(fixture["_optional"])) == [], (name, body)


def test_json_body_with_another_content_type_is_415(emu, world):
    t, cid, qid = world["token"], world["channel"]["id"], world["queue"]
    before = emu.stats()["unsupported_media_type"]
    topics = json.dumps([{"id": f"v2.users.{world['user']}.routingStatus"}])
    for ctype in ("text/plain", FORM, None):
        headers = {"Content-Type": ctype} if ctype else {}
        r = emu.request("PUT", f"/api/v2/notifications/channels/{cid}/subscriptions", body=topics.encode(),
                        headers=headers, token=t)
        assert r.status == 415, (ctype, r)
        assert r.json["code"] == "unsupported.media.type" and r.json["status"] == 415
    # refused before it changed anything: the channel still has its earlier topics only
    subs = emu.request("GET", f"/api/v2/notifications/channels/{cid}/subscriptions", token=t).json["entities"]
    assert f"v2.users.{world['user']}.routingStatus" not in [s["id"] for s in subs]
    # parameters are fine, as is any case
    r = emu.request("PUT", f"/api/v2/notifications/channels/{cid}/subscriptions", body=topics.encode(),
                    headers={"Content-Type": "Application/JSON; charset=utf-8"}, token=t)
    assert r.status == 200, r
    r = emu.request("POST", "/api/v2/analytics/queues/observations/query", body=b'{"metrics":["oWaiting"]}',
                    headers={"Content-Type": "text/json"}, token=t)
    assert r.status == 415, r
    assert emu.stats()["unsupported_media_type"] == before + 4


def test_token_request_must_be_form_encoded(emu):
    before = emu.stats()["tokens_issued"]
    for ctype in ("application/json", "text/plain"):
        r = emu.request("POST", "/oauth/token", body="grant_type=client_credentials",
                        headers={"Authorization": basic(), "Content-Type": ctype})
        assert r.status == 415, (ctype, r)
        assert r.json["error"] == "invalid_request"
        assert set(r.json) == {"error", "description", "error_description"}
    assert emu.stats()["tokens_issued"] == before
    r = emu.request("POST", "/oauth/token", body="grant_type=client_credentials",
                    headers={"Authorization": basic(), "Content-Type": FORM + "; charset=UTF-8"})
    assert r.status == 200 and r.json["token_type"] == "bearer", r


def test_bodiless_requests_need_no_content_type(emu, world):
    """POST channels and GETs carry no body, as gcmon sends them (no Content-Type at all)."""
    r = emu.request("POST", "/api/v2/notifications/channels", token=world["token"])
    assert r.status == 200, r
