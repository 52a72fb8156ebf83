"""POST /gcmon/api/v1/hooks/genesys (SPEC §5.7): notification envelopes relayed
durably (EventBridge, Process Automation) and signed with GcmonInboundSecret are
stored like stream events (source "inbound"), deduplicated against them, only
for monitored agents; a bad or missing signature is a 401, a malformed body a
400, and neither stores anything."""
import hashlib
import hmac
import json
import time
from datetime import datetime, timezone

import pytest

from conftest import CLIENT_SECRET
from httpd import Httpd, wait_for
from stream_helpers import StreamDB, stream_conf, wait_connected

SECRET = "inbound-relay-key-1"
QUEUE = "inbound-q1"
MEMBER = "inbound-agent-1"          # monitored through the queue
USER = "inbound-agent-2"            # monitored as a GcmonMonitorUser
RELAYED = "inbound-agent-3"         # monitored (queue member); only the relay reports it
OUTSIDER = "inbound-outsider"       # not monitored
HOOK = "/gcmon/api/v1/hooks/genesys"
T0 = 0  # set by the httpd fixture: relayed events come just after the stream's own


@pytest.fixture(scope="module")
def httpd(emulator):
    emulator.add_agents([{"id": a, "name": a, "presence": "Available"}
                         for a in (MEMBER, USER, RELAYED, OUTSIDER)])
    emulator.add_queues([{"id": QUEUE, "name": "Inbound Q1", "members": [MEMBER, RELAYED]}])
    conf = stream_conf(queues=[QUEUE], users=[USER],
                       extra="GcmonInboundSecret env:GCMON_INBOUND_SECRET\nGcmonMaxBody 65536\n")
    h = Httpd(emulator_url=emulator.url, gcmon_conf=conf,
              env={"GCMON_TEST_SECRET": CLIENT_SECRET, "GCMON_INBOUND_SECRET": SECRET})
    h.start()
    wait_connected(h, topics=3)
    global T0
    T0 = int(time.time()) + 5
    yield h
    h.cleanup()


@pytest.fixture(scope="module")
def db(httpd):
    d = StreamDB(httpd.db)
    wait_for(d.exists, timeout=20, what="database")
    # The holder has recorded the queue's members (the receiver's monitored set).
    wait_for(lambda: d.query("SELECT COUNT(*) AS n FROM gcmon_membership "
                             "WHERE queue_ids <> '[]'")[0]["n"] >= 2,
             timeout=20, what="membership recorded")
    return d




def at_s(k):
    """An event time k seconds after T0, as the API writes it."""
    return datetime.fromtimestamp(T0 + k, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def ms(k):
    return (T0 + k) * 1000


def envelope(uid, system="BREAK", presence_id="brk", at=None, routing="OFF_QUEUE"):
    at = at or at_s(0)
    return {"topicName": f"v2.users.{uid}.activity", "version": "2",
            "eventBody": {"id": uid,
                          "routingStatus": {"status": routing, "startTime": at},
                          "presence": {"presenceDefinition": {"id": presence_id,
                                                              "systemPresence": system},
                                       "presenceMessage": "", "modifiedDate": at},
                          "activeQueueIds": [], "dateActiveQueuesChanged": at}}


def sign(body, key=SECRET):
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def post(httpd, doc, signature=True, raw=None, ctype="application/json", headers=None):
    body = raw if raw is not None else json.dumps(doc).encode()
    h = {"Content-Type": ctype}
    if signature is True:
        h["X-Gcmon-Signature"] = sign(body)
    elif signature:
        h["X-Gcmon-Signature"] = signature
    h.update(headers or {})
    return httpd.request("POST", HOOK, body=body, headers=h)


def rows(db, uid):
    return db.query("SELECT state, source, event_at FROM gcmon_history WHERE user_id = ? "
                    "ORDER BY event_at", (uid,))


def test_relayed_event_is_stored_as_inbound(httpd, db):
    at = at_s(60)
    r = post(httpd, envelope(RELAYED, at=at))
    assert r.status == 200, r.text
    assert r.header("content-type").startswith("application/json")
    assert r.json["stored"] == 1 and r.json["received"] == 1, r.json
    got = [x for x in rows(db, RELAYED) if x["source"] == "inbound"]
    assert len(got) == 1 and got[0]["state"] == "Break", got
    # The same body again (a relay's retry): a duplicate, nothing new.
    again = post(httpd, envelope(RELAYED, at=at))
    assert again.status == 200 and again.json["stored"] == 0, again.json
    assert again.json["duplicates"] + again.json["refreshed"] + again.json["stale"] == 1
    assert len([x for x in rows(db, RELAYED) if x["source"] == "inbound"]) == 1
    # The board shows it (the generation moved past any 304 the holder could give).
    board = httpd.get(f"/gcmon/api/v1/agents/{RELAYED}")
    assert board.status == 200 and board.json["state"] == "Break", board.text


def test_stream_event_relayed_too_is_stored_once(httpd, emulator, db):
    """The stream delivers a change; the relay then delivers the same
    notification: one history row (the stream's), the relay's a duplicate."""
    emulator.set_state(MEMBER, presence="Meal")
    wait_for(lambda: any(x["state"] == "Meal" for x in rows(db, MEMBER)), timeout=10,
             what="the stream's row")
    a = emulator.agent(MEMBER)
    env = envelope(MEMBER, system="MEAL", presence_id=a["presence_id"],
                   at=a["presence_modified"], routing=a["routing_status"])
    env["eventBody"]["routingStatus"]["startTime"] = a["routing_start"]
    before = rows(db, MEMBER)
    r = post(httpd, [env])
    assert r.status == 200, r.text
    assert r.json["stored"] == 0, (r.json, before)
    assert rows(db, MEMBER) == before
    assert [x["source"] for x in before if x["state"] == "Meal"] == ["stream"]


def test_configured_user_stored_outsider_ignored(httpd, db):
    r = post(httpd, [envelope(USER, at=at_s(120)),
                     envelope(OUTSIDER, at=at_s(120)),
                     {"topicName": "channel.metadata", "eventBody": {"message": "WebSocket Heartbeat"}}])
    assert r.status == 200, r.text
    assert r.json["received"] == 3 and r.json["stored"] == 1, r.json
    assert r.json["ignored"] == 1 and r.json["skipped"] == 1, r.json
    assert [x["source"] for x in rows(db, USER) if x["source"] == "inbound"] == ["inbound"]
    assert rows(db, OUTSIDER) == []
    assert httpd.get(f"/gcmon/api/v1/agents/{OUTSIDER}").status == 404


@pytest.mark.parametrize("signature", [None, "", "sha256=" + "0" * 64, "sha1=abc",
                                       "SHA256=" + "0" * 64, "wrong-key"])
def test_bad_or_missing_signature_is_401(httpd, db, signature):
    doc = envelope(RELAYED, at=at_s(180))
    body = json.dumps(doc).encode()
    sig = sign(body, "another-key") if signature == "wrong-key" else signature
    r = post(httpd, doc, signature=sig if sig is not None else False)
    assert r.status == 401, r.text
    assert r.header("content-type").startswith("application/problem+json")
    assert SECRET not in r.text
    assert not [x for x in rows(db, RELAYED) if x["event_at"] == ms(180)]


def test_tampered_body_is_401(httpd, db):
    body = json.dumps(envelope(RELAYED, at=at_s(240))).encode()
    sig = sign(body)
    r = post(httpd, None, signature=sig, raw=body.replace(b"BREAK", b"MEAL "))
    assert r.status == 401, r.text


@pytest.mark.parametrize("raw,why", [(b"{not json", "malformed_json"), (b"42", "invalid_body"),
                                     (b'[{"topicName": 7}]', "invalid_body")])
def test_malformed_is_400_and_stores_nothing(httpd, db, raw, why):
    count = db.query("SELECT COUNT(*) AS n FROM gcmon_history")[0]["n"]
    r = post(httpd, None, raw=raw)
    assert r.status == 400, r.text
    assert r.header("content-type").startswith("application/problem+json")
    assert why in r.json["type"], r.json
    assert db.query("SELECT COUNT(*) AS n FROM gcmon_history")[0]["n"] == count


def test_a_bad_envelope_fails_the_whole_body(httpd, db):
    good = envelope(RELAYED, at=at_s(300))
    bad = envelope(USER, at=at_s(300))
    bad["eventBody"]["id"] = "someone-else"
    r = post(httpd, [good, bad])
    assert r.status == 400, r.text
    assert "body[1]" in r.text, r.text
    assert not [x for x in rows(db, RELAYED) if x["event_at"] == ms(300)]


def test_json_only_and_bounded(httpd):
    r = post(httpd, envelope(RELAYED), ctype="text/plain")
    assert r.status == 415, r.text
    big = json.dumps([envelope(RELAYED)] * 400).encode()
    assert len(big) > 65536
    r = post(httpd, None, raw=big)
    assert r.status == 413, r.text
    r = httpd.request("GET", HOOK)
    assert r.status == 405 and "POST" in r.header("allow"), r.text


def test_no_actor_or_csrf_header_needed_but_canonical_only(httpd):
    """A relay authenticates with the signature; the path rules of every route
    still hold."""
    doc = envelope(RELAYED, at=at_s(360))
    body = json.dumps(doc).encode()
    for path in ("/gcmon/api/x/v1/hooks/genesys", "/gcmon/api/v1/hooks/genesys/",
                 "/gcmon/api/v1/v1/hooks/genesys"):
        r = httpd.request("POST", path, body=body,
                          headers={"Content-Type": "application/json",
                                   "X-Gcmon-Signature": sign(body)})
        assert r.status == 404, (path, r.text)


def test_receiver_off_without_secret(emulator):
    h = Httpd(emulator_url=emulator.url, gcmon_conf=stream_conf(users=[USER]),
              env={"GCMON_TEST_SECRET": CLIENT_SECRET})
    try:
        h.start()
        body = json.dumps(envelope(USER)).encode()
        r = h.request("POST", HOOK, body=body, headers={"Content-Type": "application/json",
                                                          "X-Gcmon-Signature": sign(body)})
        assert r.status == 404, r.text
        assert "GcmonInboundSecret" in r.json["detail"]
    finally:
        h.cleanup()


def test_secret_hidden_from_mod_info(httpd):
    r = httpd.get("/server-info?config")
    if r.status == 404:
        pytest.skip("mod_info not configured")
    assert SECRET not in r.text
    assert SECRET not in httpd.read_log()


def test_metrics_count_the_route(httpd):
    text = httpd.get("/gcmon/api/v1/metrics").text
    assert 'route="hooks_genesys"' in text
