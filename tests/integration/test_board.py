"""The live board with a real stream holder (SPEC §9.17): queue_ids are the
monitored queues an agent is a member of (Away and Offline members stay in
their queue), active_queue_ids the event's; the board's generation moves with
every change the holder commits — state, membership, alert — and a delta poll
(?since=) returns exactly what changed; If-None-Match on the generation is a
304 from every child."""
import pytest

from conftest import CLIENT_SECRET
from httpd import Httpd, assert_problem, wait_for
from stream_helpers import stream_conf, wait_connected

QA, QB = "board-qa", "board-qb"
A = [f"board-agent-{i}" for i in range(1, 6)]
AGENTS = "/gcmon/api/v1/agents"
GCMON_CONF = stream_conf(queues=[QA, QB], extra="GcmonMembershipRefresh 2s\n"
                         "GcmonIdleAlert Meal 2s\n")


@pytest.fixture(scope="module")
def httpd(emulator):
    emulator.config(heartbeat=1)
    emulator.add_agents([
        {"id": A[0], "name": "Ada", "presence": "Available"},
        {"id": A[1], "name": "Bob", "presence": "Away"},
        {"id": A[2], "name": "Cy", "presence": "OnQueue", "routing_status": "IDLE"},
        {"id": A[3], "name": "Di", "presence": "Offline"},
        {"id": A[4], "name": "Ed", "presence": "Available"},
    ])
    emulator.add_queues([{"id": QA, "name": "Board A", "members": A[:4]},
                         {"id": QB, "name": "Board B",
                          "members": [A[2], {"id": A[4], "joined": False}]}])
    h = Httpd(emulator_url=emulator.url, gcmon_conf=GCMON_CONF,
              env={"GCMON_TEST_SECRET": CLIENT_SECRET})
    h.start()
    wait_connected(h, topics=len(A))
    yield h
    h.cleanup()


def board(httpd, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    r = httpd.get(AGENTS + ("?" + query if query else ""))
    assert r.status == 200, r
    return r


def by_id(body):
    return {d["user_id"]: d for d in body["data"]}


def test_queue_means_membership(httpd, emulator):
    """Every member of a monitored queue is under its filter, whatever its state."""
    def members_of(q):
        return sorted(d["user_id"] for d in board(httpd, queue_id=q).json["data"])
    wait_for(lambda: members_of(QA) == sorted(A[:4]) and members_of(QB) == [A[2], A[4]],
             timeout=20, what="membership on the board")
    agents = by_id(board(httpd).json)
    assert agents[A[1]]["state"] == "Away" and agents[A[1]]["queue_ids"] == [QA]
    assert agents[A[1]]["active_queue_ids"] == []            # Away: active nowhere
    assert agents[A[3]]["state"] == "Offline" and agents[A[3]]["queue_ids"] == [QA]
    assert agents[A[2]]["queue_ids"] == [QA, QB]
    assert agents[A[4]]["queue_ids"] == [QB]                 # a member, though not joined


def test_delta_follows_the_holder(httpd, emulator):
    wait_for(lambda: len(board(httpd).json["data"]) == len(A), timeout=20, what="board")
    full = board(httpd).json
    g0 = full["generation"]
    emulator.set_state(A[0], presence="Break")

    def delta():
        # (a change committed while a delta is read comes with the older generation,
        # and again in the next delta: poll until the generation moved too)
        d = board(httpd, since=g0).json
        return d if d["generation"] != g0 and any(
            x["user_id"] == A[0] and x["state"] == "Break" for x in d["data"]) else None
    d = wait_for(delta, timeout=5, what="the change in a delta")
    assert d["full"] is False and d["removed"] == []
    assert d["total"] == len(A)
    assert len(d["data"]) < len(A), d                        # not the whole board
    # nothing since the new generation
    again = board(httpd, since=d["generation"]).json
    assert again["data"] == [] and again["full"] is False


def test_not_modified_from_every_child(httpd, emulator):
    r = board(httpd)
    etag = r.header("etag")
    assert etag == '"' + r.json["generation"] + '"'
    not_modified = 0
    for _ in range(12):
        r = httpd.get(AGENTS, headers={"If-None-Match": etag})
        if r.status == 200:                  # the board moved on meanwhile: try again
            etag = r.header("etag")
            continue
        assert r.status == 304 and r.body == b"" and r.header("etag") == etag
        not_modified += 1
    assert not_modified, "no 304 at all"
    emulator.set_state(A[4], presence="Busy")
    wait_for(lambda: httpd.get(AGENTS, headers={"If-None-Match": etag}).status == 200,
             timeout=5, what="a new generation after a change")


def test_membership_change_is_a_board_change(httpd, emulator):
    g = board(httpd).json["generation"]
    emulator.set_members(QB, [A[4]])                         # A[2] leaves QB

    def left():
        d = board(httpd, since=g).json
        a = by_id(d).get(A[2])
        return d if a and a["queue_ids"] == [QA] else None
    d = wait_for(left, timeout=15, what="A[2] out of QB in a delta")
    assert d["full"] is False
    d = board(httpd, since=g, queue_id=QB).json
    assert A[2] in d["removed"]                              # it left that filter


def test_alert_is_a_board_change(httpd, emulator):
    g = board(httpd).json["generation"]
    emulator.set_state(A[1], presence="Meal")

    def alerted():
        a = by_id(board(httpd, since=g).json).get(A[1])
        return a if a and a["state"] == "Meal" and a["alert"] else None
    a = wait_for(alerted, timeout=10, what="the Meal alert in a delta")
    assert a["alert"]["threshold_seconds"] == 2


def test_since_is_validated(httpd):
    assert_problem(httpd.get(AGENTS + "?since=garbage"), 400, "validation_failed", "since")
    g = board(httpd).json["generation"]
    other = f"{int(g.split('-')[0], 16) ^ 1:x}-1"
    d = board(httpd, since=other).json
    assert d["full"] is True and d["total"] == len(d["data"]) == len(A)
