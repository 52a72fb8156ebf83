"""Agent status changes through the admin API (SPEC §3.3, §5.3, §5.8, §6, §9.2):
PUT/GET /v1/admin/agents/{userId}/status and GET /v1/admin/audit, against a
real apache2 and the Genesys Cloud emulator.

gcmon resolves the status against the org's presence definitions, takes a
per-agent lock, reads the presence (GET), checks If-Match against its own
strong ETag (412) and the GcmonTransition rules (422), PATCHes the presence
(whose answer is the read-back), audits every PUT that passed the admin guard,
and queues one GcmonStatusWebhook delivery per successful change (delivered
by the stream holder's outbox thread, so the main server runs the stream).

Servers (module scope): `httpd` — the stream on, a status webhook pointing at
a capturing sink (signed), GcmonTransition rules that allow everything except
entering OnQueue from anything but Available, GcmonMaxBody 1024; `auth_srv` —
Basic auth on /gcmon/api/v1/admin (htpasswd); `nocreds_srv` — no client
credentials. Every test drives agents of its own."""
import base64
import concurrent.futures
import hashlib
import hmac
import json
import os
import re
import subprocess
import time
import urllib.parse
import uuid

import pytest

from conftest import CLIENT_ID, CLIENT_SECRET
from httpd import Httpd, assert_problem, wait_for
from stream_helpers import StreamDB, ms, stream_conf, wait_connected
from webhook_sink import WebhookSink

API = "/gcmon/api/v1"
AUDIT = API + "/admin/audit"
CHECK = API + "/admin/upstream/check"
HOOK_PATH = "/hooks/status"
HOOK_SECRET = "hook-" + uuid.uuid4().hex
MONITORED = "st-monitor-1"

SYSTEM = ["Available", "Away", "Busy", "Break", "Meal", "Meeting", "Training", "Offline",
          "Idle", "OnQueue"]
# Everything is allowed except entering OnQueue from another state than Available
# (staying in OnQueue is always allowed).
TRANSITIONS = ("GcmonTransition * " + " ".join(s for s in SYSTEM if s != "OnQueue") + "\n"
               "GcmonTransition Available OnQueue\n")

ETAG = re.compile(r'^"[0-9a-f]{32}"$')
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
PUT_KEYS = {"user_id", "status", "previous_status", "reason", "wrapup_code", "etag",
            "updated_at", "presence_definition_id"}
GET_KEYS = {"user_id", "status", "presence_definition_id", "message", "modified_date", "etag"}
AUDIT_KEYS = {"id", "at", "actor", "actor_source", "action", "target", "request", "result",
              "status", "latency_ms"}
HOOK_KEYS = {"user_id", "target_status", "previous_status", "reason", "wrapup_code", "etag",
             "timestamp", "actor"}

AUTH_USER = "alice"
AUTH_PASSWORD = "pw-" + uuid.uuid4().hex[:16]

UPSTREAM_LOG = r"GCM1\d\d\b|GCM1302\b"     # upstream failures the tests cause (not GCM1310)


# ------------------------------------------------------------------ servers

def main_conf(sink_url):
    return stream_conf(users=[MONITORED], extra=(
        "GcmonMaxBody 1024\n"
        "GcmonAdminActor anonymous\n"
        f"GcmonStatusWebhook {sink_url}\n"
        "GcmonWebhookSecret env:GCMON_TEST_HOOK_SECRET\n" + TRANSITIONS))


EXTRA_SERVERS = []          # servers besides `httpd` whose error_log every test checks


@pytest.fixture(scope="module")
def sink():
    s = WebhookSink().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def defs(emulator):
    """The emulator's presence definitions: {"Break": id, …, "Lunch Walk": id}."""
    r = emulator.request("GET", "/api/v2/presence/definitions", token=emulator.token())
    assert r.status == 200, r
    out = {}
    for d in r.json["entities"]:
        out[d["systemPresence"] if d["type"] == "System" else d["name"]] = d["id"]
    assert set(SYSTEM) <= set(out) and "Lunch Walk" in out, out
    return out


@pytest.fixture(scope="module")
def httpd(emulator, sink):
    emulator.config(heartbeat=1)
    emulator.add_agents([{"id": MONITORED, "name": "Monitored", "presence": "Busy"}])
    h = Httpd(emulator_url=emulator.url, gcmon_conf=main_conf(sink.url(HOOK_PATH)),
              env={"GCMON_TEST_SECRET": CLIENT_SECRET,
                   "GCMON_TEST_HOOK_SECRET": HOOK_SECRET})
    h.start()
    try:
        wait_connected(h, topics=1)       # a stream holder runs the outbox thread
        yield h
    finally:
        h.cleanup()


@pytest.fixture(scope="module")
def db(httpd):
    d = StreamDB(httpd.db)
    wait_for(d.exists, timeout=20, what="database file")
    return d


@pytest.fixture(scope="module")
def auth_srv(emulator):
    h = Httpd(emulator_url=emulator.url, env={"GCMON_TEST_SECRET": CLIENT_SECRET},
              gcmon_conf=(f"GcmonClientID {CLIENT_ID}\n"
                          "GcmonClientSecret env:GCMON_TEST_SECRET\n"
                          "GcmonRequestTimeout 5s\n"),
              start_servers=1)
    pwfile = os.path.join(h.root, "conf", "htpasswd")
    p = subprocess.run(["htpasswd", "-c", "-b", "-B", pwfile, AUTH_USER, AUTH_PASSWORD],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0, p.stdout
    os.chmod(pwfile, 0o644)
    # Loaded by httpd.py already: authn_core, authn_file, authz_core, authz_user,
    # auth_basic.
    h.extra_conf = f"""<Location /gcmon/api/v1/admin>
    AuthType Basic
    AuthName "gcmon admin"
    AuthBasicProvider file
    AuthUserFile {pwfile}
    Require valid-user
</Location>
"""
    h.write_config()
    h.start()
    EXTRA_SERVERS.append(h)
    try:
        yield h
    finally:
        EXTRA_SERVERS.remove(h)
        h.cleanup()


@pytest.fixture(scope="module")
def nocreds_srv(emulator):
    h = Httpd(emulator_url=emulator.url, gcmon_conf="GcmonAdminActor anonymous\n",
              start_servers=1)
    h.start()
    EXTRA_SERVERS.append(h)
    try:
        yield h
    finally:
        EXTRA_SERVERS.remove(h)
        h.cleanup()


@pytest.fixture(autouse=True)
def clean(request, emulator, sink):
    emulator.clear_faults()
    emulator.clear_requests()
    sink.reset_faults()
    servers = list(EXTRA_SERVERS)
    for h in servers:
        h.mark_log()
    yield
    emulator.clear_faults()
    marker = request.node.get_closest_marker("allow_log")
    allow = marker.args if marker else ()
    for h in servers:
        bad = h.bad_lines(allow)
        assert not bad, "unexpected error_log lines:\n" + "\n".join(bad)


# ------------------------------------------------------------------ helpers

def status_path(uid):
    return f"{API}/admin/agents/{uid}/status"


def basic(user=AUTH_USER, password=AUTH_PASSWORD):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def put_status(h, uid, body, if_match=None, headers=None, auth=None):
    hd = {}
    if if_match is not None:
        hd["If-Match"] = if_match
    if auth:
        hd["Authorization"] = auth
    hd.update(headers or {})
    return h.admin("PUT", status_path(uid), body=body, headers=hd)


def get_status(h, uid, auth=None):
    return h.get(status_path(uid), headers={"Authorization": auth} if auth else None)


def current_etag(h, uid, auth=None):
    r = get_status(h, uid, auth)
    assert r.status == 200, r
    assert ETAG.match(r.json["etag"]), r.json
    return r.json["etag"]


def new_agent(emulator, uid, presence="Available", message=None):
    spec = {"id": uid, "name": "Agent " + uid, "presence": presence}
    if message is not None:
        spec["message"] = message
    emulator.add_agents([spec])
    return uid


def uid_of(prefix):
    return f"st-{prefix}-{uuid.uuid4().hex[:8]}"


def presence_requests(emulator, uid, method=None):
    return emulator.requests(path=rf"^/api/v2/users/{re.escape(uid)}/presences/purecloud$",
                             method=method)


def patches(emulator, uid):
    return presence_requests(emulator, uid, "PATCH")


def audit(h, auth=None, **params):
    r = h.get(AUDIT + ("?" + urllib.parse.urlencode(params) if params else ""),
              headers={"Authorization": auth} if auth else None)
    assert r.status == 200, r
    return r.json


def delta(after, before, name, **labels):
    return Httpd.metric(after, name, **labels) - Httpd.metric(before, name, **labels)


def epoch_ms(text):
    assert TS.match(text), text
    return ms(text)


def now_ms():
    return int(time.time() * 1000)


def signature(body):
    return "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


def hooks_for(sink, uid):
    return [r for r in sink.requests(HOOK_PATH)
            if json.loads(r.body.decode("utf-8")).get("user_id") == uid]


def status_outbox(db, uid):
    return [r for r in db.query("SELECT * FROM gcmon_outbox WHERE target = 'status' "
                                "ORDER BY id")
            if json.loads(r["body"]).get("user_id") == uid]


# ------------------------------------------------------------------ happy path

def test_change_reads_once_patches_once(httpd, emulator, defs):
    uid = new_agent(emulator, uid_of("happy"))
    before = current_etag(httpd, uid)
    emulator.clear_requests()
    t0 = now_ms()
    r = put_status(httpd, uid, {"status": "Break", "reason": "coffee", "wrapup_code": "WU-1"})
    assert r.status == 200, r
    assert r.header("content-type").startswith("application/json"), r.headers
    assert r.header("cache-control") == "no-store"
    b = r.json
    assert set(b) == PUT_KEYS, b               # a System definition: no presence_label
    assert b["user_id"] == uid
    assert b["status"] == "Break" and b["previous_status"] == "Available", b
    assert b["reason"] == "coffee" and b["wrapup_code"] == "WU-1", b
    assert b["presence_definition_id"] == defs["Break"], b
    assert ETAG.match(b["etag"]), b
    assert r.header("etag") == b["etag"]
    assert b["etag"] != before, "the ETag did not change with the presence"
    assert t0 - 5000 <= epoch_ms(b["updated_at"]) <= now_ms() + 5000, b
    # Exactly one read and one write upstream; the PATCH names the definition.
    gets = presence_requests(emulator, uid, "GET")
    pats = patches(emulator, uid)
    assert len(gets) == 1 and len(pats) == 1, (gets, pats)
    assert gets[0]["seq"] < pats[0]["seq"]
    sent = json.loads(pats[0]["body"])
    assert sent == {"presenceDefinition": {"id": defs["Break"]}, "message": "coffee"}, sent
    assert emulator.agent(uid)["presence"] == "Break"
    # Read-after-write: the PATCH's answer is the read-back, so a fresh read
    # gives the same ETag.
    g = get_status(httpd, uid)
    assert g.status == 200 and g.json["etag"] == b["etag"], (g.json, b)


def test_change_without_reason_sends_no_message(httpd, emulator, defs):
    uid = new_agent(emulator, uid_of("noreason"), presence="Busy", message="before")
    r = put_status(httpd, uid, {"status": "Away"})
    assert r.status == 200, r
    b = r.json
    assert b["reason"] is None and b["wrapup_code"] is None, b
    assert b["status"] == "Away" and b["previous_status"] == "Busy", b
    (p,) = patches(emulator, uid)
    assert json.loads(p["body"]) == {"presenceDefinition": {"id": defs["Away"]}}, p["body"]
    # Explicit nulls are accepted too.
    r = put_status(httpd, uid, {"status": "Busy", "reason": None, "wrapup_code": None})
    assert r.status == 200, r
    assert r.json["reason"] is None and r.json["wrapup_code"] is None


def test_get_status(httpd, emulator, defs):
    uid = new_agent(emulator, uid_of("get"), presence="OnQueue", message="hello")
    r = get_status(httpd, uid)          # a read: no X-Gcmon-Request needed
    assert r.status == 200, r
    b = r.json
    assert set(b) == GET_KEYS, b
    assert b["user_id"] == uid
    assert b["status"] == "OnQueue", b              # Genesys REST says "On Queue"
    assert b["presence_definition_id"] == defs["OnQueue"]
    assert b["message"] == "hello"
    truth = emulator.agent(uid)
    assert epoch_ms(b["modified_date"]) == ms(truth["presence_modified"]), (b, truth)
    assert ETAG.match(b["etag"]) and r.header("etag") == b["etag"], (b, r.headers)
    assert get_status(httpd, uid).json["etag"] == b["etag"], "the ETag is not stable"
    # The ETag covers modifiedDate, not only the definition: the same presence
    # set again in Genesys gives a new ETag.
    wait_for(lambda: emulator.set_state(uid, presence="OnQueue", force=True)
             ["presence_modified"] != truth["presence_modified"], timeout=5,
             what="a new modifiedDate")
    again = get_status(httpd, uid).json
    assert again["status"] == "OnQueue" and again["etag"] != b["etag"], (again, b)


def test_get_status_unknown_user_404(httpd, emulator):
    assert_problem(get_status(httpd, uid_of("nobody")), 404, "user_not_found")


def test_wrong_method_405(httpd, emulator):
    uid = new_agent(emulator, uid_of("405"))
    r = httpd.admin("DELETE", status_path(uid), body="{}")
    assert_problem(r, 405, "method_not_allowed")
    allow = {m.strip() for m in r.header("allow").split(",")}
    assert {"GET", "PUT"} <= allow, allow
    assert patches(emulator, uid) == []


# ------------------------------------------------------------------ If-Match

def test_if_match_current_etag(httpd, emulator):
    uid = new_agent(emulator, uid_of("ifm"))
    e = current_etag(httpd, uid)
    r = put_status(httpd, uid, {"status": "Meeting"}, if_match=e)
    assert r.status == 200, r
    assert r.json["status"] == "Meeting" and r.json["etag"] != e
    # A list of entity tags matches when one of them does.
    e2 = r.json["etag"]
    r = put_status(httpd, uid, {"status": "Training"},
                   if_match='"' + "0" * 32 + '", ' + e2)
    assert r.status == 200, r
    assert emulator.agent(uid)["presence"] == "Training"


def test_if_match_stale_is_412(httpd, emulator, defs):
    uid = new_agent(emulator, uid_of("stale"))
    stale = current_etag(httpd, uid)
    r = put_status(httpd, uid, {"status": "Break"})
    assert r.status == 200, r
    now_etag = r.json["etag"]
    emulator.clear_requests()
    r = put_status(httpd, uid, {"status": "Away"}, if_match=stale)
    body = assert_problem(r, 412, "precondition_failed")
    assert body["current_status"] == "Break", body
    assert body["etag"] == now_etag, body
    assert len(presence_requests(emulator, uid, "GET")) == 1   # the fresh read
    assert patches(emulator, uid) == []
    assert emulator.agent(uid)["presence"] == "Break"


def test_if_match_changed_in_genesys_is_412(httpd, emulator):
    """A change made in Genesys itself (not through gcmon) moves the ETag."""
    uid = new_agent(emulator, uid_of("ext"))
    e = current_etag(httpd, uid)
    emulator.set_state(uid, presence="Meal")
    body = assert_problem(put_status(httpd, uid, {"status": "Away"}, if_match=e), 412,
                          "precondition_failed")
    assert body["current_status"] == "Meal"
    assert body["etag"] == current_etag(httpd, uid)
    assert patches(emulator, uid) == []


def test_if_match_star(httpd, emulator):
    uid = new_agent(emulator, uid_of("star"))
    r = put_status(httpd, uid, {"status": "Busy"}, if_match="*")
    assert r.status == 200, r
    assert emulator.agent(uid)["presence"] == "Busy"


def test_if_match_weak_never_matches(httpd, emulator):
    uid = new_agent(emulator, uid_of("weak"))
    e = current_etag(httpd, uid)
    body = assert_problem(put_status(httpd, uid, {"status": "Busy"}, if_match="W/" + e), 412,
                          "precondition_failed")
    assert body["etag"] == e and body["current_status"] == "Available"
    assert patches(emulator, uid) == []


# ------------------------------------------------------------------ transitions

def test_transition_refused_422(httpd, emulator):
    uid = new_agent(emulator, uid_of("trans"), presence="Busy")
    body = assert_problem(put_status(httpd, uid, {"status": "OnQueue"}), 422,
                          "transition_not_allowed")
    assert body["from"] == "Busy" and body["to"] == "OnQueue", body
    assert "Busy" in body["detail"] and "OnQueue" in body["detail"], body["detail"]
    assert patches(emulator, uid) == []
    assert emulator.agent(uid)["presence"] == "Busy"


def test_transition_allowed_by_rules(httpd, emulator):
    uid = new_agent(emulator, uid_of("allow"))
    r = put_status(httpd, uid, {"status": "on queue"})        # Available → OnQueue: a rule
    assert r.status == 200, r
    assert (r.json["previous_status"], r.json["status"]) == ("Available", "OnQueue")
    # Staying in the current state is always allowed (no rule OnQueue → OnQueue).
    r = put_status(httpd, uid, {"status": "OnQueue", "reason": "still here"})
    assert r.status == 200, r
    assert (r.json["previous_status"], r.json["status"]) == ("OnQueue", "OnQueue")
    assert len(patches(emulator, uid)) == 2
    # OnQueue → Break by the "*" rule.
    r = put_status(httpd, uid, {"status": "Break"})
    assert r.status == 200, r


# ------------------------------------------------------------------ status names

@pytest.mark.parametrize("name,system,definition,label", [
    ("break", "Break", "Break", None),
    ("BREAK", "Break", "Break", None),
    ("Lunch Walk", "Meal", "Lunch Walk", "Lunch Walk"),
    ("lunch walk", "Meal", "Lunch Walk", "Lunch Walk"),
    ("meal", "Meal", "Meal", None),            # the primary System definition first
    ("@Training", "Training", "Training", None),      # by definition id
])
def test_status_names(httpd, emulator, defs, name, system, definition, label):
    uid = new_agent(emulator, uid_of("name"))
    if name.startswith("@"):
        name = defs[name[1:]]
    r = put_status(httpd, uid, {"status": name})
    assert r.status == 200, r
    b = r.json
    assert b["status"] == system and b["presence_definition_id"] == defs[definition], b
    if label:
        assert set(b) == PUT_KEYS | {"presence_label"} and b["presence_label"] == label, b
    else:
        assert set(b) == PUT_KEYS, b
    (p,) = patches(emulator, uid)
    assert json.loads(p["body"])["presenceDefinition"] == {"id": defs[definition]}
    assert emulator.agent(uid)["presence_id"] == defs[definition]


@pytest.mark.parametrize("name", ["Lunch", "INTERACTING", "On-Queue-ish", "x" * 100])
def test_unknown_status_422(httpd, emulator, name):
    uid = new_agent(emulator, uid_of("unknown"))
    body = assert_problem(put_status(httpd, uid, {"status": name}), 422, "unknown_status")
    assert [e["field"] for e in body["errors"]] == ["status"], body
    assert presence_requests(emulator, uid) == []     # resolved before any read
    assert emulator.agent(uid)["presence"] == "Available"


def test_unknown_user_404(httpd, emulator):
    uid = uid_of("ghost")
    assert_problem(put_status(httpd, uid, {"status": "Break"}), 404, "user_not_found")
    assert patches(emulator, uid) == []


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("body,field", [
    ({}, "status"),
    ({"reason": "x"}, "status"),
    ({"status": None}, "status"),
    ({"status": 5}, "status"),
    ({"status": ["Break"]}, "status"),
    ({"status": ""}, "status"),
    ({"status": "x" * 101}, "status"),
    ({"status": "Break", "reason": 7}, "reason"),
    ({"status": "Break", "reason": "r" * 501}, "reason"),
    ({"status": "Break", "wrapup_code": True}, "wrapup_code"),
    ({"status": "Break", "wrapup_code": "w" * 101}, "wrapup_code"),
    ({"status": "Break", "color": "red"}, "color"),
    ("", "status"),                                           # an empty body is {}
])
def test_body_validation_400(httpd, emulator, body, field):
    uid = new_agent(emulator, uid_of("val"))
    r = put_status(httpd, uid, body)
    b = assert_problem(r, 400, "validation_failed")
    assert isinstance(b["errors"], list) and b["errors"], b
    assert all(set(e) == {"field", "message"} and e["message"] for e in b["errors"]), b
    assert {e["field"] for e in b["errors"]} == {field}, b
    assert presence_requests(emulator, uid) == []
    assert emulator.agent(uid)["presence"] == "Available"


def test_limits_are_inclusive(httpd, emulator):
    uid = new_agent(emulator, uid_of("limits"))
    r = put_status(httpd, uid, {"status": "Break", "reason": "r" * 500, "wrapup_code": "w" * 100})
    assert r.status == 200, r
    assert r.json["reason"] == "r" * 500 and r.json["wrapup_code"] == "w" * 100


def test_limits_count_characters(httpd, emulator):
    """The limits are in characters: 300 two-byte characters are a valid reason."""
    uid = new_agent(emulator, uid_of("chars"))
    raw = json.dumps({"status": "Break", "reason": "\u00e9" * 300, "wrapup_code": "\u00fc" * 100},
                     ensure_ascii=False).encode("utf-8")
    r = httpd.admin("PUT", status_path(uid), body=raw)
    assert r.status == 200, r
    assert r.json["reason"] == "\u00e9" * 300 and r.json["wrapup_code"] == "\u00fc" * 100
    raw = json.dumps({"status": "\u00e9" * 100}, ensure_ascii=False).encode("utf-8")
    assert_problem(httpd.admin("PUT", status_path(uid), body=raw), 422, "unknown_status")


@pytest.mark.parametrize("bad_id", ["bad.id", "a" * 65, "x~y", "%C3%A9t%C3%A9"])
def test_bad_user_id_400(httpd, emulator, bad_id):
    r = put_status(httpd, bad_id, {"status": "Break"})
    b = assert_problem(r, 400, "validation_failed")
    assert "user_id" in {e["field"] for e in b["errors"]}, b
    assert emulator.requests(path=r"^/api/v2/users/[^/]+/presences") == []


def test_longest_user_id_is_fine(httpd, emulator):
    uid = new_agent(emulator, "s" * 60 + "-_A9")          # 64 characters
    r = put_status(httpd, uid, {"status": "Break"})
    assert r.status == 200, r
    assert r.json["user_id"] == uid


# ------------------------------------------------------------------ admin guard

GUARD_BODY = {"status": "Break"}


@pytest.mark.parametrize("headers,body,status,slug,error_type", [
    ({"Content-Type": "text/plain"}, GUARD_BODY, 415, "unsupported_media_type",
     "unsupported_media_type"),
    ({"X-Gcmon-Request": None}, GUARD_BODY, 403, "missing_request_header", "csrf_rejected"),
    ({"X-Gcmon-Request": "0"}, GUARD_BODY, 403, "missing_request_header", "csrf_rejected"),
    ({"Sec-Fetch-Site": "cross-site"}, GUARD_BODY, 403, "cross_site_request", "csrf_rejected"),
    ({}, '{"status":"Break","reason":"' + "x" * 2000 + '"}', 413, "body_too_large",
     "body_too_large"),
    ({}, '{"status":"Break"', 400, "malformed_json", "malformed_json"),
    ({}, '{"status":"Break","status":"Away"}', 400, "duplicate_key", "duplicate_key"),
    ({}, '["Break"]', 400, "invalid_body", None),
    ({}, '"Break"', 400, "invalid_body", None),
])
def test_admin_guard(httpd, emulator, headers, body, status, slug, error_type):
    uid = new_agent(emulator, uid_of("guard"))
    h = {"Content-Type": "application/json", "X-Gcmon-Request": "1"}
    h.update(headers)
    h = {k: v for k, v in h.items() if v is not None}
    before = httpd.metrics()
    r = httpd.request("PUT", status_path(uid), body=body, headers=h)
    assert_problem(r, status, slug)
    assert presence_requests(emulator, uid) == []
    assert emulator.agent(uid)["presence"] == "Available"
    if error_type:
        assert delta(httpd.metrics(), before, "gcmon_validation_errors_total",
                     error_type=error_type) == 1
    # A request refused by the guard is not an admin action: not audited.
    assert audit(httpd, target=uid)["total"] == 0


# ------------------------------------------------------------------ audit

def test_audit_records_every_outcome(httpd, emulator):
    uid = new_agent(emulator, uid_of("audit"))
    e = current_etag(httpd, uid)
    ok = put_status(httpd, uid, {"status": "Break", "reason": "r1", "wrapup_code": "w1"},
                    if_match=e)
    assert ok.status == 200, ok
    assert put_status(httpd, uid, {"status": "Away"}, if_match=e).status == 412
    assert put_status(httpd, uid, {"status": "Nope"}).status == 422
    assert put_status(httpd, uid, {"status": "Away", "color": "red"}).status == 400
    listing = audit(httpd, target=uid)
    assert listing["total"] == 4, listing
    rows = listing["data"]
    assert [x["status"] for x in rows] == [400, 422, 412, 200], rows       # newest first
    ids = [x["id"] for x in rows]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4, ids
    for x in rows:
        assert set(x) == AUDIT_KEYS, x
        assert x["actor"] == "-" and x["action"] == "agent_status_change", x
        assert x["target"] == uid, x
        assert isinstance(x["latency_ms"], int) and x["latency_ms"] >= 0, x
        assert isinstance(x["status"], int), x
        assert TS.match(x["at"]), x
    bad, unknown, stale, good = rows
    assert good["request"] == {"status": "Break", "reason": "r1", "wrapup_code": "w1",
                               "if_match": e}, good
    assert good["result"] == ok.json, good
    assert stale["request"] == {"status": "Away", "if_match": e}, stale
    assert stale["result"]["error"] == "precondition_failed", stale
    assert isinstance(stale["result"]["detail"], str), stale
    assert unknown["request"] == {"status": "Nope"}, unknown
    assert unknown["result"]["error"] == "unknown_status", unknown
    # Only the body's known members are recorded.
    assert bad["request"] == {"status": "Away"}, bad
    assert bad["result"]["error"] == "validation_failed", bad
    assert epoch_ms(good["at"]) <= epoch_ms(bad["at"])


def test_audit_filters(httpd, emulator):
    uid = new_agent(emulator, uid_of("filt"))
    assert put_status(httpd, uid, {"status": "Busy"}).status == 200
    assert httpd.admin("POST", CHECK, body={}).status == 200
    checks = audit(httpd, action="upstream_check", limit=100)
    assert checks["total"] >= 1 and checks["data"], checks
    assert {x["action"] for x in checks["data"]} == {"upstream_check"}, checks
    assert checks["data"][0]["status"] == 200 and checks["data"][0]["actor"] == "-"
    changes = audit(httpd, action="agent_status_change", limit=100)
    assert changes["total"] >= 1
    assert {x["action"] for x in changes["data"]} == {"agent_status_change"}
    mine = audit(httpd, actor="-", action="agent_status_change", target=uid)
    assert mine["total"] == 1 and mine["data"][0]["target"] == uid, mine
    assert audit(httpd, actor="somebody-else", target=uid)["total"] == 0
    assert audit(httpd, action="no_such_action")["total"] == 0     # unknown, not malformed
    assert audit(httpd, target=uid_of("never"))["total"] == 0


def test_audit_paging(httpd, emulator):
    uid = new_agent(emulator, uid_of("page"))
    for _ in range(3):
        assert put_status(httpd, uid, {}).status == 400         # audited, cheap
    full = audit(httpd, target=uid)
    assert full["total"] == 3 and full["limit"] == 20 and full["offset"] == 0, full
    assert full["next_cursor"] is None
    want = [x["id"] for x in full["data"]]
    p1 = audit(httpd, target=uid, limit=2)
    assert p1["total"] == 3 and p1["limit"] == 2 and len(p1["data"]) == 2, p1
    assert isinstance(p1["next_cursor"], str) and p1["next_cursor"], p1
    p2 = audit(httpd, target=uid, limit=2, cursor=p1["next_cursor"])
    assert len(p2["data"]) == 1 and p2["next_cursor"] is None, p2
    assert p2["offset"] is None, p2
    assert [x["id"] for x in p1["data"] + p2["data"]] == want
    p3 = audit(httpd, target=uid, limit=2, offset=2)
    assert [x["id"] for x in p3["data"]] == want[2:], p3
    assert audit(httpd, target=uid, offset=3)["data"] == []


@pytest.mark.parametrize("query,field", [
    ("action=Agent-Status", "action"), ("target=bad.id", "target"),
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"), ("limit=-1", "limit"),
    ("offset=-1", "offset"), ("offset=x", "offset"), ("cursor=!!garbage!!", "cursor"),
])
def test_audit_bad_params_400(httpd, query, field):
    b = assert_problem(httpd.get(AUDIT + "?" + query), 400, "validation_failed")
    assert field in {e["field"] for e in b["errors"]}, b


def test_audit_cursor_with_offset_400(httpd, emulator):
    uid = new_agent(emulator, uid_of("curoff"))
    for _ in range(2):
        assert put_status(httpd, uid, {}).status == 400
    cur = audit(httpd, target=uid, limit=1)["next_cursor"]
    assert cur
    r = httpd.get(AUDIT + "?" + urllib.parse.urlencode({"target": uid, "cursor": cur,
                                                         "offset": 0}))
    assert_problem(r, 400, "validation_failed")


# ------------------------------------------------------------------ webhook

def outbox_drained(db):
    return db.query("SELECT count(*) AS n FROM gcmon_outbox WHERE status = 'pending'")[0]["n"] \
        == 0


def test_webhook_delivered_once_signed(httpd, emulator, db, sink):
    uid = new_agent(emulator, uid_of("hook"))
    # Earlier tests' deliveries first, so the delivery counter counts only this one.
    wait_for(lambda: outbox_drained(db), timeout=20, what="earlier deliveries done")
    m0 = httpd.metrics()
    r = put_status(httpd, uid, {"status": "Break", "reason": "payroll", "wrapup_code": "PB-7"})
    assert r.status == 200, r
    b = r.json
    wait_for(lambda: hooks_for(sink, uid), timeout=10, what="the status webhook")
    # Exactly once: once the outbox row is delivered, nothing else follows.
    (row,) = wait_for(lambda: (lambda rows: rows if rows and rows[0]["status"] == "delivered"
                               else None)(status_outbox(db, uid)), timeout=10,
                      what="the outbox row delivered")
    (hook,) = hooks_for(sink, uid)
    assert hook.method == "POST" and hook.ok
    assert hook.header("x-genesys-event") == "state_change", hook.headers
    assert hook.header("content-type").split(";")[0].strip() == "application/json"
    assert hook.header("x-gcmon-signature") == signature(hook.body), hook.headers
    sent = json.loads(hook.body.decode("utf-8"))
    assert set(sent) == HOOK_KEYS, sent
    assert sent == {"user_id": uid, "target_status": "Break", "previous_status": "Available",
                    "reason": "payroll", "wrapup_code": "PB-7", "etag": b["etag"],
                    "timestamp": b["updated_at"], "actor": "-"}, (sent, b)
    assert row["body"].encode() == hook.body
    m1 = wait_for(lambda: (lambda m: m if delta(m, m0, "gcmon_webhook_deliveries_total",
                                                target="status", result="delivered") >= 1
                           else None)(httpd.metrics()), timeout=5, what="delivery counted")
    assert delta(m1, m0, "gcmon_webhook_deliveries_total", target="status",
                 result="delivered") == 1


def test_webhook_retried_after_sink_failure(httpd, emulator, db, sink):
    uid = new_agent(emulator, uid_of("hookretry"))
    sink.fail_next(1, status=500, body_contains=uid)
    assert put_status(httpd, uid, {"status": "Meeting"}).status == 200
    wait_for(lambda: [x for x in hooks_for(sink, uid) if x.ok], timeout=15,
             what="the delivery after one failure")
    (row,) = wait_for(lambda: (lambda rows: rows if rows and rows[0]["status"] == "delivered"
                               else None)(status_outbox(db, uid)), timeout=10,
                      what="the outbox row delivered")
    p = hooks_for(sink, uid)
    assert [x.status for x in p] == [500, 200], [(x.at, x.status) for x in p]
    assert p[0].body == p[1].body


# ------------------------------------------------------------------ upstream faults

def test_429_retry_after_then_success(httpd, emulator):
    uid = new_agent(emulator, uid_of("429"))
    emulator.fault(rf"^/api/v2/users/{uid}/presences/purecloud$", status=429, retry_after=1,
                   count=1, method="PATCH")
    t0 = time.monotonic()
    r = put_status(httpd, uid, {"status": "Break"})
    assert r.status == 200, r
    assert time.monotonic() - t0 >= 0.95
    p = patches(emulator, uid)
    assert [x["status"] for x in p] == [429, 200], p
    assert p[1]["at"] - p[0]["at"] >= 0.95
    assert emulator.agent(uid)["presence"] == "Break"


@pytest.mark.allow_log(UPSTREAM_LOG)
def test_throttled_beyond_budget_503(httpd, emulator, db):
    uid = new_agent(emulator, uid_of("thr"))
    m0 = httpd.metrics()
    emulator.fault(rf"^/api/v2/users/{uid}/presences/purecloud$", status=429, retry_after=500,
                   count=1, method="GET")
    t0 = time.monotonic()
    r = put_status(httpd, uid, {"status": "Break"})
    assert time.monotonic() - t0 < 5
    assert_problem(r, 503, "upstream_throttled")
    assert r.header("retry-after") == "500", r.headers
    assert patches(emulator, uid) == []
    (row,) = audit(httpd, target=uid)["data"]
    assert row["status"] == 503 and row["result"]["error"] == "upstream_throttled", row
    assert status_outbox(db, uid) == []
    assert delta(httpd.metrics(), m0, "gcmon_state_update_latency_seconds_count",
                 status="Break", result="throttled") == 1


@pytest.mark.allow_log(UPSTREAM_LOG)
def test_5xx_exhausted_is_502_and_nothing_recorded(httpd, emulator, db, sink):
    uid = new_agent(emulator, uid_of("5xx"))
    m0 = httpd.metrics()
    emulator.fault(rf"^/api/v2/users/{uid}/presences/purecloud$", status=502, count=20,
                   method="PATCH")
    r = put_status(httpd, uid, {"status": "Break", "reason": "r"})
    assert_problem(r, 502, "upstream_error")
    assert 2 <= len(patches(emulator, uid)) <= 6, patches(emulator, uid)     # bounded retries
    emulator.clear_faults()
    assert emulator.agent(uid)["presence"] == "Available"
    (row,) = audit(httpd, target=uid)["data"]
    assert row["status"] == 502 and row["result"]["error"] == "upstream_error", row
    assert row["request"] == {"status": "Break", "reason": "r"}, row
    assert status_outbox(db, uid) == []
    assert delta(httpd.metrics(), m0, "gcmon_state_update_latency_seconds_count",
                 status="Break", result="upstream_error") == 1
    # The sink works: a later successful change of another agent arrives, and
    # the failed one never did.
    other = new_agent(emulator, uid_of("5xx-ok"))
    assert put_status(httpd, other, {"status": "Break"}).status == 200
    wait_for(lambda: hooks_for(sink, other), timeout=10, what="the other agent's webhook")
    wait_for(lambda: all(x["status"] == "delivered" for x in status_outbox(db, other)),
             timeout=10, what="the outbox drained")
    assert hooks_for(sink, uid) == []
    assert status_outbox(db, uid) == []


# ------------------------------------------------------------------ concurrency

def test_concurrent_same_if_match_one_wins(httpd, emulator):
    uid = new_agent(emulator, uid_of("race"))
    e = current_etag(httpd, uid)
    emulator.clear_requests()
    # The first PATCH takes a second, so the second PUT arrives while the
    # first holds the agent's lock.
    emulator.fault(rf"^/api/v2/users/{uid}/presences/purecloud$", delay=1.0, count=1,
                   method="PATCH")
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        futs = [ex.submit(put_status, httpd, uid, {"status": s}, e) for s in ("Break", "Meal")]
        res = [f.result() for f in futs]
    assert sorted(r.status for r in res) == [200, 412], res
    won = next(r for r in res if r.status == 200).json
    lost = assert_problem(next(r for r in res if r.status == 412), 412, "precondition_failed")
    assert lost["current_status"] == won["status"] and lost["etag"] == won["etag"], (lost, won)
    assert len(patches(emulator, uid)) == 1
    assert emulator.agent(uid)["presence"] == won["status"]


def test_concurrent_changes_are_serialised(httpd, emulator):
    uid = new_agent(emulator, uid_of("serial"))
    current_etag(httpd, uid)
    emulator.clear_requests()
    emulator.fault(rf"^/api/v2/users/{uid}/presences/purecloud$", delay=1.0, count=1,
                   method="PATCH")
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        futs = [ex.submit(put_status, httpd, uid, {"status": s}) for s in ("Break", "Meal")]
        res = [f.result() for f in futs]
    assert [r.status for r in res] == [200, 200], res
    a, b = sorted((r.json for r in res), key=lambda x: x["previous_status"] != "Available")
    assert a["previous_status"] == "Available", (a, b)
    assert b["previous_status"] == a["status"], (a, b)     # read after the first write
    log = presence_requests(emulator, uid)
    assert [x["method"] for x in log] == ["GET", "PATCH", "GET", "PATCH"], log
    assert log[2]["at"] - log[1]["at"] >= 0.9, "the second read did not wait for the first write"
    assert emulator.agent(uid)["presence"] == b["status"]


# ------------------------------------------------------------------ metrics

def test_metrics(httpd, emulator):
    m0 = httpd.metrics()
    ok = new_agent(emulator, uid_of("m-ok"))
    assert put_status(httpd, ok, {"status": "Training"}).status == 200
    stale = new_agent(emulator, uid_of("m-412"))
    assert put_status(httpd, stale, {"status": "Busy"}, if_match='"' + "f" * 32 + '"') \
        .status == 412
    busy = new_agent(emulator, uid_of("m-422"), presence="Busy")
    assert put_status(httpd, busy, {"status": "OnQueue"}).status == 422
    assert put_status(httpd, uid_of("m-404"), {"status": "Away"}).status == 404
    assert put_status(httpd, ok, {"status": "Nope"}).status == 422
    assert put_status(httpd, ok, {}).status == 400
    assert put_status(httpd, ok, {"status": 5}).status == 400
    assert put_status(httpd, ok, {"status": "Break", "reason": "r" * 501}).status == 400
    m1 = httpd.metrics()
    hist = "gcmon_state_update_latency_seconds_count"
    assert delta(m1, m0, hist, status="Training", result="success") == 1
    assert delta(m1, m0, hist, status="Busy", result="precondition_failed") == 1
    assert delta(m1, m0, hist, status="OnQueue", result="not_allowed") == 1
    assert delta(m1, m0, hist, status="Away", result="not_found") == 1
    assert delta(m1, m0, hist, status="other", result="invalid") >= 1      # "Nope"
    assert delta(m1, m0, "gcmon_state_update_latency_seconds_bucket", status="Training",
                 result="success", le="+Inf") == 1
    v = "gcmon_validation_errors_total"
    assert delta(m1, m0, v, error_type="precondition_failed") == 1
    assert delta(m1, m0, v, error_type="transition_not_allowed") == 1
    assert delta(m1, m0, v, error_type="unknown_status") == 1
    assert delta(m1, m0, v, error_type="missing_field") == 1
    assert delta(m1, m0, v, error_type="invalid_type") == 1
    assert delta(m1, m0, v, error_type="invalid_value") == 1
    assert delta(m1, m0, "gcmon_api_requests_total", route="admin_status", code="200") >= 1


# ------------------------------------------------------------------ Basic auth

@pytest.mark.allow_log(r"AH0161[78]")
def test_basic_auth_required(auth_srv, emulator):
    uid = new_agent(emulator, uid_of("auth401"))
    for r in (put_status(auth_srv, uid, {"status": "Break"}),
              put_status(auth_srv, uid, {"status": "Break"}, auth=basic(password="wrong")),
              auth_srv.get(AUDIT),
              get_status(auth_srv, uid)):
        assert r.status == 401, r
        assert (r.header("www-authenticate") or "").startswith("Basic"), r.headers
    assert presence_requests(emulator, uid) == []
    assert emulator.agent(uid)["presence"] == "Available"
    assert auth_srv.get(API + "/health").status == 200       # only /v1/admin is protected


def test_basic_auth_actor_and_password_never_stored(auth_srv, emulator):
    uid = new_agent(emulator, uid_of("actor"))
    auth = basic()
    r = put_status(auth_srv, uid, {"status": "Break", "reason": "with auth"}, auth=auth)
    assert r.status == 200, r
    assert put_status(auth_srv, uid, {"status": "Nope"}, auth=auth).status == 422
    page = auth_srv.get(AUDIT + "?" + urllib.parse.urlencode({"actor": AUTH_USER,
                                                              "target": uid}),
                        headers={"Authorization": auth})
    assert page.status == 200, page
    rows = page.json["data"]
    assert [x["status"] for x in rows] == [422, 200], rows
    assert all(x["actor"] == AUTH_USER for x in rows), rows
    assert rows[1]["request"] == {"status": "Break", "reason": "with auth"}, rows[1]
    assert audit(auth_srv, auth=auth, actor="-", target=uid)["total"] == 0
    token = auth.split(" ", 1)[1]
    everything = audit(auth_srv, auth=auth, limit=100)
    text = json.dumps(everything) + page.text
    for secret in (AUTH_PASSWORD, token):
        assert secret not in text, "a credential in the audit listing"
    assert "authorization" not in text.lower()
    blob = auth_srv.db.raw_text()      # SQLite: the files byte for byte; PostgreSQL: every row
    assert blob, "no database file"
    assert uid in blob, "the audit row is not in the database"
    for secret in (AUTH_PASSWORD, token, CLIENT_SECRET):
        assert secret not in blob, "a credential in the database"
    assert AUTH_PASSWORD not in auth_srv.read_log()


# ------------------------------------------------------------------ no credentials

@pytest.mark.allow_log(UPSTREAM_LOG)
def test_without_credentials_503(nocreds_srv, emulator):
    uid = new_agent(emulator, uid_of("nocreds"))
    assert_problem(put_status(nocreds_srv, uid, {"status": "Break"}), 503,
                   "upstream_not_configured")
    assert_problem(get_status(nocreds_srv, uid), 503, "upstream_not_configured")
    assert presence_requests(emulator, uid) == []
    (row,) = audit(nocreds_srv, target=uid)["data"]
    assert row["status"] == 503 and row["result"]["error"] == "upstream_not_configured", row


# ------------------------------------------------------------------ configuration

@pytest.mark.parametrize("line,needle", [
    ("GcmonTransition Foo Break", r"\bFoo\b"),
    ("GcmonTransition Available Lunch", r"\bLunch\b"),
    ("GcmonTransition available Break", r"\bavailable\b"),  # exact names only
    ("GcmonTransition Available IDLE", r"(?i)presence"),     # a routing status
    ("GcmonTransition OFF_QUEUE Available", r"(?i)presence"),
    ("GcmonTransition Available", None),                      # no target
    ("GcmonTransition", None),
])
def test_configtest_refuses_transition(httpd, line, needle):
    rc, out = httpd.configtest(gcmon_conf=f"GcmonClientID {CLIENT_ID}\n"
                                          "GcmonClientSecret env:GCMON_TEST_SECRET\n"
                                          + line + "\n")
    assert rc != 0 and "GcmonTransition" in out, out
    if needle:
        assert re.search(needle, out), out


def test_configtest_accepts_transitions(httpd):
    conf = (f"GcmonClientID {CLIENT_ID}\nGcmonClientSecret env:GCMON_TEST_SECRET\n"
            "GcmonTransition * *\n"
            "GcmonTransition OnQueue Break Meal Away\n"
            "GcmonTransition Idle *\n"
            "GcmonTransition * Offline\n")
    rc, out = httpd.configtest(gcmon_conf=conf)
    assert rc == 0, out

