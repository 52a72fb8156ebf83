"""Read API (SPEC §5.1, §5.2): state history, the live board, one agent, the
alerts list and the metrics — strict validation, paging (offset and keyset
cursor), ETag/304, and the Prometheus text format. Rows are written straight
into the database (tests/integration/dbseed.py); the stream is off."""
import concurrent.futures
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse

import pytest

from dbseed import Seeder
from httpd import assert_problem as httpd_assert_problem, wait_for
import promtext

GCMON_CONF = ""        # no Genesys connection needed: the read API is database only

API = "/gcmon/api/v1"
HISTORY = API + "/agent-status/history"
AGENTS = API + "/agents"
ALERTS = API + "/alerts"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# Epoch milliseconds of 2026-01-01T00:00:00Z; each test owns a window of time
# and a user-id prefix so that tests never disturb each other's rows.
BASE = 1767225600000
DAY = 86400000
STATES = ["Available", "Away", "Busy", "IDLE", "INTERACTING", "OFF_QUEUE", "Break",
          "Meal", "COMMUNICATING"]


def iso(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % (ms % 1000)


def q(path, **params):
    return path + ("?" + urllib.parse.urlencode(params) if params else "")


def assert_json(r, status=200):
    assert r.status == status, r
    assert r.header("content-type") == "application/json; charset=utf-8"
    assert r.header("cache-control") == "no-store"
    return r.json


def assert_problem(r, status, slug=None, field=None):
    """Read API problems always say why: a detail as well."""
    body = httpd_assert_problem(r, status, slug, field)
    assert body["detail"]
    return body


@pytest.fixture(scope="module")
def db(httpd):
    # Any database request creates the schema (migration on first use).
    assert httpd.get(AGENTS).status == 200
    return Seeder(httpd)


def seed_history(db, prefix, n, day, users=10, null_names=True):
    """n rows in day `day` (from BASE), pairs of rows sharing a timestamp (ties
    broken by id), users prefix-00.., states cycling. Returns the rows as the
    database holds them, newest first: (id, user_id, event_at, state)."""
    rows = []
    prev = {}
    for i in range(n):
        user = f"{prefix}-{i % users:02d}"
        state = STATES[(i * 7 + i // users) % len(STATES)]
        at = BASE + day * DAY + (i // 2) * 1000
        rows.append({"user_id": user,
                     "user_name": None if (null_names and i % users == users - 1)
                     else f"Agent {user}",
                     "state": state, "previous_state": prev.get(user),
                     "presence": "OnQueue" if state.isupper() else state,
                     "routing_status": state if state.isupper() else None,
                     "event_at": at, "ingested_at": at + 250, "source": "stream"})
        prev[user] = state
    db.history(rows)
    got = db.query("SELECT id, user_id, event_at, state FROM gcmon_history "
                   "WHERE user_id LIKE ? ORDER BY event_at DESC, id DESC", (prefix + "-%",))
    assert len(got) == n
    return [tuple(r) for r in got]


def walk(httpd, params, limit, between=None):
    """Follow next_cursor to the end; returns (ids, pages). between(pages), if
    given, runs after each page but the last."""
    ids, pages, cursor = [], 0, None
    while True:
        if between and pages:
            between(pages)
        p = dict(params, limit=limit)
        if cursor:
            p["cursor"] = cursor
        body = assert_json(httpd.get(q(HISTORY, **p)))
        ids += [d["id"] for d in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages
        assert pages < 100000


# ------------------------------------------------------------------ history

def test_history_empty_window(httpd, db):
    body = assert_json(httpd.get(q(HISTORY, **{"from": iso(BASE - DAY), "to": iso(BASE)})))
    assert body == {"total": 0, "limit": 20, "offset": 0, "next_cursor": None, "data": []}


def test_history_rows_shape_and_order(httpd, db):
    rows = seed_history(db, "shape", 30, day=1)
    body = assert_json(httpd.get(q(HISTORY, user_id="shape-09")))
    assert body["total"] == 3 and body["limit"] == 20 and body["offset"] == 0
    assert body["next_cursor"] is None
    for d in body["data"]:
        assert list(d) == ["id", "user_id", "user_name", "state", "previous_state", "presence",
                           "routing_status", "event_timestamp", "ingested_at", "source"]
        assert d["user_id"] == "shape-09"
        assert d["user_name"] is None          # missing → null, never ""
        assert TS.match(d["event_timestamp"]) and TS.match(d["ingested_at"])
        assert d["source"] == "stream"
        assert isinstance(d["id"], int)
    assert [d["id"] for d in body["data"]] == [r[0] for r in rows if r[1] == "shape-09"]
    first = [r for r in rows if r[1] == "shape-09"][-1]
    oldest = body["data"][-1]
    assert oldest["previous_state"] is None
    assert oldest["event_timestamp"] == iso(first[2])
    assert body["data"][0]["previous_state"] == body["data"][1]["state"]
    # Newest first across ties: (event_at DESC, id DESC).
    body = assert_json(httpd.get(q(HISTORY, **{"from": iso(BASE + DAY), "to": iso(BASE + 2 * DAY),
                                                "limit": 100})))
    assert [d["id"] for d in body["data"]] == [r[0] for r in rows]
    assert body["total"] == 30


def test_history_totals_and_filters(httpd, db):
    rows = seed_history(db, "filt", 200, day=2)
    day = {"from": iso(BASE + 2 * DAY), "to": iso(BASE + 3 * DAY)}
    cases = [
        ({}, rows),
        ({"user_id": "filt-03"}, [r for r in rows if r[1] == "filt-03"]),
        ({"state": "IDLE"}, [r for r in rows if r[3] == "IDLE"]),
        ({"user_id": "filt-04", "state": "Away"},
         [r for r in rows if r[1] == "filt-04" and r[3] == "Away"]),
        # from inclusive, to exclusive, to the millisecond
        ({"from": iso(BASE + 2 * DAY + 10000), "to": iso(BASE + 2 * DAY + 20000)},
         [r for r in rows if BASE + 2 * DAY + 10000 <= r[2] < BASE + 2 * DAY + 20000]),
        ({"from": iso(BASE + 2 * DAY + 10001), "to": iso(BASE + 2 * DAY + 20001)},
         [r for r in rows if BASE + 2 * DAY + 10001 <= r[2] < BASE + 2 * DAY + 20001]),
    ]
    for params, want in cases:
        p = dict(day)
        p.update(params)
        body = assert_json(httpd.get(q(HISTORY, limit=100, **p)))
        assert body["total"] == len(want), params
        assert [d["id"] for d in body["data"]] == [r[0] for r in want][:100], params
    # A timezone offset means the same instant.
    body = assert_json(httpd.get(q(HISTORY, **{"from": "2026-01-03T01:00:10+01:00",
                                                "to": iso(BASE + 2 * DAY + 20000)})))
    assert body["total"] == 20
    # Unknown values are no error: an empty 200.
    for params in ({"user_id": "nobody"}, {"state": "NOT_RESPONDING"}):
        p = dict(day)
        p.update(params)
        body = assert_json(httpd.get(q(HISTORY, **p)))
        assert body["total"] == 0 and body["data"] == [] and body["next_cursor"] is None


def test_history_offset_paging_boundaries(httpd, db):
    rows = seed_history(db, "page", 250, day=3)
    day = {"from": iso(BASE + 3 * DAY), "to": iso(BASE + 4 * DAY)}
    ids = [r[0] for r in rows]
    for limit, offset in [(100, 0), (100, 100), (100, 200), (100, 150), (1, 249), (20, 240),
                          (100, 250), (1, 250), (7, 1000), (100, 2147483647)]:
        body = assert_json(httpd.get(q(HISTORY, limit=limit, offset=offset, **day)))
        assert body["total"] == 250
        assert body["limit"] == limit and body["offset"] == offset
        assert [d["id"] for d in body["data"]] == ids[offset:offset + limit], (limit, offset)
        more = offset + limit < 250
        assert (body["next_cursor"] is not None) == more, (limit, offset)
        if more:
            # The cursor continues exactly where the offset page ended.
            nxt = assert_json(httpd.get(q(HISTORY, limit=limit, cursor=body["next_cursor"],
                                          **day)))
            assert nxt["offset"] is None
            assert [d["id"] for d in nxt["data"]] == ids[offset + limit:offset + 2 * limit]
    # Default limit is 20; the last page has no next_cursor.
    body = assert_json(httpd.get(q(HISTORY, **day)))
    assert len(body["data"]) == 20 and body["next_cursor"]


def test_history_cursor_walk_with_filters(httpd, db):
    rows = seed_history(db, "walkf", 300, day=4, users=7)
    day = {"from": iso(BASE + 4 * DAY), "to": iso(BASE + 5 * DAY)}
    for params in ({}, {"user_id": "walkf-02"}, {"state": "Busy"},
                   {"state": "Busy", "user_id": "walkf-05"}):
        p = dict(day, **params)
        want = [r[0] for r in rows
                if r[1] == params.get("user_id", r[1]) and r[3] == params.get("state", r[3])]
        for limit in (1, 7, 100):
            ids, pages = walk(httpd, p, limit)
            assert ids == want, (params, limit)
            assert pages == max(1, -(-len(want) // limit))


def test_history_cursor_walk_10000_under_inserts(httpd, db, tmp_path):
    """Keyset paging returns every row exactly once while rows are inserted,
    newer ones (the stream) and older ones in the middle (a resync)."""
    day = 10
    t0 = BASE + day * DAY
    rows = []
    for i in range(10000):
        rows.append({"user_id": f"w-{i % 50:02d}", "state": STATES[i % 9],
                     "event_at": t0 + i * 100, "ingested_at": t0 + i * 100, "source": "stream"})
    db.history(rows)
    window = {"from": iso(t0), "to": iso(t0 + DAY)}
    seeded = {r[0] for r in db.query(
        "SELECT id FROM gcmon_history WHERE event_at >= ? AND event_at < ?", (t0, t0 + DAY))}
    assert len(seeded) == 10000
    late = []
    for i in range(4000):
        if i % 2:
            at = t0 + 10000 * 100 + i * 100          # newer than all: the stream
        else:
            at = t0 + (i // 2) * 100 * 5 + 37        # among the old ones: a resync
        late.append({"user_id": f"w-late-{i % 50:02d}", "state": "Away", "event_at": at,
                     "ingested_at": at, "source": "resync" if i % 2 == 0 else "stream"})
    stop = str(tmp_path / "stop")
    writer = db.history_trickle(late, pause=0.0005, stop_file=stop)
    try:
        wait_for(lambda: assert_json(httpd.get(q(HISTORY, limit=1, **window)))["total"] > 10000,
                 timeout=20, what="the writer to start")
        ids, pages = walk(httpd, window, 100)
        inserted_during = assert_json(httpd.get(q(HISTORY, limit=1, **window)))["total"]
    finally:
        open(stop, "w").close()
        writer.join()
    assert inserted_during > 10000 + 50, "no rows were inserted while walking"
    assert len(ids) == len(set(ids)), "a row was returned twice"
    missing = seeded - set(ids)
    assert not missing, f"{len(missing)} rows were skipped"
    assert pages >= 100


def test_history_offset_past_the_end_and_deep_cursor(httpd, db):
    rows = seed_history(db, "deep", 120, day=5)
    day = {"from": iso(BASE + 5 * DAY), "to": iso(BASE + 6 * DAY)}
    body = assert_json(httpd.get(q(HISTORY, limit=10, offset=500, **day)))
    assert body["total"] == 120 and body["data"] == [] and body["next_cursor"] is None
    # A cursor at the oldest row: an empty page, no next cursor.
    ids, _ = walk(httpd, day, 100)
    assert len(ids) == 120
    body = assert_json(httpd.get(q(HISTORY, limit=100, **day)))
    body = assert_json(httpd.get(q(HISTORY, limit=100, cursor=body["next_cursor"], **day)))
    assert len(body["data"]) == 20 and body["next_cursor"] is None
    assert [d["id"] for d in body["data"]] == [r[0] for r in rows][100:]


def test_history_totals_follow_inserts(httpd, db):
    """Totals are never stale: every child sees new rows at once."""
    window = {"from": iso(BASE + 6 * DAY), "to": iso(BASE + 7 * DAY)}
    for round_ in range(3):
        seed = [{"user_id": f"tot-{round_}", "state": "Away", "event_at": BASE + 6 * DAY + round_
                 * 1000 + i, "ingested_at": BASE, "source": "inbound"} for i in range(5)]
        db.history(seed)
        # Many requests so that every child and connection answers at least once.
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            totals = set(ex.map(lambda _: assert_json(httpd.get(q(HISTORY, **window)))["total"],
                                range(24)))
        assert totals == {5 * (round_ + 1)}
        totals = set(assert_json(httpd.get(q(HISTORY, state="Away", **window)))["total"]
                     for _ in range(8))
        assert totals == {5 * (round_ + 1)}


# ------------------------------------------------------------------ validation

LONG = "a" * 4096
BAD = [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=-1", "limit"), ("limit=abc", "limit"),
    ("limit=1e3", "limit"), ("limit=99999999999999999999999999999", "limit"),
    ("limit=", "limit"), ("limit=5&limit=6", "limit"), ("limit=2.5", "limit"),
    ("limit=%2B5", "limit"), ("limit=" + "9" * 4096, "limit"),
    ("offset=-5", "offset"), ("offset=2147483648", "offset"), ("offset=1e2", "offset"),
    ("offset=99999999999999999999999999999", "offset"),
    ("from=yesterday", "from"), ("from=2026-02-30T00:00:00Z", "from"),
    ("from=2026-01-01", "from"), ("to=2026-01-01T25:00:00Z", "to"),
    ("from=2026-01-01T00:00:00+00:00", "from"),     # an unencoded '+' is a space
    ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
    ("state=Foo", "state"), ("state=available", "state"), ("state=" + LONG, "state"),
    ("user_id=%27%20OR%20%271%27%3D%271", "user_id"),
    ("user_id=x%27%3B%20DROP%20TABLE%20gcmon_history%3B%20--", "user_id"),
    ("state=IDLE%27%20OR%201%3D1--", "state"),
    ("user_id=%FF%FE", "user_id"), ("user_id=%C3%28", "user_id"), ("user_id=%ED%A0%80", "user_id"),
    ("user_id=%00", "user_id"), ("user_id=%zz", "user_id"), ("user_id=" + LONG, "user_id"),
    ("cursor=garbage", "cursor"), ("cursor=" + LONG, "cursor"),
    ("cursor=AQhAAAAAAAAAAAAAAAAAAAAA", "cursor"),
]


@pytest.mark.parametrize("query,field", BAD)
def test_history_validation(httpd, db, query, field):
    body = assert_problem(httpd.get(HISTORY + "?" + query), 400, "validation_failed", field)
    assert LONG not in body["detail"] and len(body["detail"]) < 300


def test_validation_reports_every_field_and_keeps_the_table(httpd, db):
    before = db.query("SELECT count(*) FROM gcmon_history")[0][0]
    body = assert_problem(httpd.get(HISTORY + "?limit=0&offset=-1&state=x&user_id=%27&junk=1"),
                          400, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["user_id", "state", "limit", "offset"]
    assert db.query("SELECT count(*) FROM gcmon_history")[0][0] == before
    assert httpd.get(API + "/health").status == 200


def test_cursor_with_offset_is_refused(httpd, db):
    seed_history(db, "cof", 30, day=7)
    day = {"from": iso(BASE + 7 * DAY), "to": iso(BASE + 8 * DAY)}
    cur = assert_json(httpd.get(q(HISTORY, limit=5, **day)))["next_cursor"]
    assert cur
    for off in ("0", "5"):
        assert_problem(httpd.get(q(HISTORY, cursor=cur, offset=off, **day)), 400,
                       "validation_failed", "cursor")
    # A history cursor is not an alerts cursor.
    assert_problem(httpd.get(q(ALERTS, cursor=cur)), 400, "validation_failed", "cursor")
    # Tampering with any character is caught or lands on a valid position.
    for i in (0, 1, 2):
        bad = cur[:i] + ("B" if cur[i] != "B" else "C") + cur[i + 1:]
        assert_problem(httpd.get(q(HISTORY, cursor=bad)), 400, "validation_failed", "cursor")


def test_unknown_parameters_are_ignored(httpd, db):
    body = assert_json(httpd.get(HISTORY + "?foo=bar&" + "x" * 20 + "=" + LONG + "&limit=3"))
    assert body["limit"] == 3


def test_raw_invalid_utf8_in_request_line(httpd, db):
    """Bytes that are not UTF-8 and not percent-encoded: httpd or gcmon answers
    400; the server stays up either way."""
    s = socket.create_connection(("127.0.0.1", httpd.port), timeout=10)
    try:
        s.sendall(b"GET " + HISTORY.encode() + b"?user_id=\xff\xfe\xc3 HTTP/1.1\r\n"
                  b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
    assert httpd.get(API + "/health").status == 200


def test_validation_storm_keeps_server_up(httpd, db):
    """Concurrent bad requests: all 400; a crashed child would show in error_log
    ("exit signal", checked after every test) and fail this test."""
    queries = [b for b, _ in BAD] * 4
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        codes = list(ex.map(lambda qs: httpd.get(HISTORY + "?" + qs).status, queries))
    assert set(codes) == {400}
    assert httpd.get(API + "/health").status == 200


# ------------------------------------------------------------------ methods

@pytest.mark.parametrize("path", [HISTORY, AGENTS, AGENTS + "/someone", ALERTS])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_read_routes_are_get_only(httpd, db, path, method):
    r = httpd.request(method, path, body="{}", headers={"Content-Type": "application/json"})
    assert_problem(r, 405, "method_not_allowed")
    assert r.header("allow") == "GET, HEAD"


def test_head_has_headers_and_no_body(httpd, db):
    r = httpd.request("HEAD", q(HISTORY, limit=1))
    assert r.status == 200 and r.body == b""
    assert r.header("content-type") == "application/json; charset=utf-8"


# ------------------------------------------------------------------ board

AGENT_COLS = ("user_id", "user_name", "state", "presence", "presence_id", "routing_status",
              "queue_ids", "since", "event_at", "updated_at", "gen")


def put_agents(db, agents, members=True):
    """As the holder writes them: one generation for the change, the agent rows
    (queue_ids: the event's active queues) and their queue membership. Upserts
    both SQLite and PostgreSQL speak (no INSERT OR REPLACE)."""
    db.execute("UPDATE gcmon_meta SET value = value + 1 WHERE name = 'write_epoch';")
    gen = db.query("SELECT value FROM gcmon_meta WHERE name = 'write_epoch'")[0][0]
    rows = [dict(a, gen=gen) for a in agents]
    db.execute(f"INSERT INTO gcmon_agents ({', '.join(AGENT_COLS)}) "
               f"VALUES ({', '.join('?' * len(AGENT_COLS))}) ON CONFLICT (user_id) DO UPDATE "
               "SET " + ", ".join(f"{c} = excluded.{c}" for c in AGENT_COLS[1:]),
               [[a.get(c) for c in AGENT_COLS] for a in rows])
    if members:
        db.execute("INSERT INTO gcmon_membership (user_id, queue_ids, gen) VALUES (?, ?, ?) "
                   "ON CONFLICT (user_id) DO UPDATE SET queue_ids = excluded.queue_ids, "
                   "gen = excluded.gen",
                   [[a["user_id"], a["queue_ids"], gen] for a in rows])
    return gen


def stamp(db, user_ids):
    """A board change made behind the store's back, announced as the store does:
    a new generation stamped on the agents it touched."""
    db.execute("UPDATE gcmon_meta SET value = value + 1 WHERE name = 'write_epoch';")
    gen = db.query("SELECT value FROM gcmon_meta WHERE name = 'write_epoch'")[0][0]
    db.execute("UPDATE gcmon_agents SET gen = ? WHERE user_id = ?", [[gen, u] for u in user_ids])


def agent(uid, state, since, queues=("q1",), name="auto"):
    return {"user_id": uid, "user_name": f"Agent {uid}" if name == "auto" else name,
            "state": state, "presence": "OnQueue" if state.isupper() else state,
            "presence_id": "pid-" + state, "routing_status": state if state.isupper() else None,
            "queue_ids": "[" + ",".join(f'"{x}"' for x in queues) + "]",
            "since": since, "event_at": since, "updated_at": since}


@pytest.fixture(scope="module")
def board(db):
    now = int(time.time() * 1000)
    agents = [agent(f"b-{i:03d}", STATES[i % 9], now - i * 60000,
                    queues=("qa",) if i % 3 == 0 else ("qa", "qb") if i % 3 == 1 else (),
                    name=None if i == 6 else "auto")
              for i in range(40)]
    put_agents(db, agents)
    return agents


def test_board_shape(httpd, db, board):
    r = httpd.get(AGENTS)
    body = assert_json(r)
    assert list(body) == ["total", "generated_at", "generation", "full", "removed", "data"]
    assert body["full"] is True and body["removed"] == []
    assert GEN.match(body["generation"])
    assert TS.match(body["generated_at"])
    mine = [d for d in body["data"] if d["user_id"].startswith("b-")]
    assert [d["user_id"] for d in mine] == sorted(a["user_id"] for a in board)
    assert body["total"] == len(body["data"])
    d = next(x for x in mine if x["user_id"] == "b-003")
    assert list(d) == ["user_id", "user_name", "state", "presence", "routing_status", "since",
                       "seconds_in_state", "queue_ids", "active_queue_ids", "alert"]
    assert d["state"] == "IDLE" and d["presence"] == "OnQueue" and d["routing_status"] == "IDLE"
    assert d["queue_ids"] == ["qa"] and d["active_queue_ids"] == ["qa"] and d["alert"] is None
    assert 180 - 5 <= d["seconds_in_state"] <= 180 + 120
    assert TS.match(d["since"])
    d6 = next(x for x in mine if x["user_id"] == "b-006")
    assert d6["user_name"] is None and d6["routing_status"] is None and d6["state"] == "Break"
    assert next(x for x in mine if x["user_id"] == "b-002")["queue_ids"] == []
    etag = r.header("etag")
    assert etag == '"' + body["generation"] + '"'      # the generation is the validator


def test_board_filters(httpd, db, board):
    body = assert_json(httpd.get(q(AGENTS, state="Busy")))
    assert {d["user_id"] for d in body["data"] if d["user_id"].startswith("b-")} == \
        {a["user_id"] for a in board if a["state"] == "Busy"}
    assert all(d["state"] == "Busy" for d in body["data"])
    body = assert_json(httpd.get(q(AGENTS, queue_id="qb")))
    assert {d["user_id"] for d in body["data"]} == \
        {a["user_id"] for a in board if '"qb"' in a["queue_ids"]}
    body = assert_json(httpd.get(q(AGENTS, queue_id="qb", state="Away")))
    assert {d["user_id"] for d in body["data"]} == \
        {a["user_id"] for a in board if '"qb"' in a["queue_ids"] and a["state"] == "Away"}
    # "q" is a prefix of "qa": no partial matches.
    assert assert_json(httpd.get(q(AGENTS, queue_id="q")))["data"] == []
    assert assert_json(httpd.get(q(AGENTS, queue_id="nope")))["total"] == 0
    assert_problem(httpd.get(q(AGENTS, state="Nope")), 400, "validation_failed", "state")
    assert_problem(httpd.get(AGENTS + "?queue_id=%27%20OR%201%3D1"), 400, "validation_failed",
                   "queue_id")
    assert_problem(httpd.get(q(AGENTS, queue_id="")), 400, "validation_failed", "queue_id")


def test_board_etag_round_trip(httpd, db, board):
    r1 = httpd.get(AGENTS)
    etag = r1.header("etag")
    # Same rows → same ETag from every child, though generated_at moves on.
    for _ in range(6):
        r = httpd.get(AGENTS)
        assert r.header("etag") == etag
    for inm in (etag, "W/" + etag, f'"nope", {etag}', "*", f'  {etag}  '):
        r = httpd.get(AGENTS, headers={"If-None-Match": inm})
        assert r.status == 304, inm
        assert r.body == b""
        assert r.header("etag") == etag
        assert r.header("cache-control") == "no-store"
    for inm in ('"nope"', etag[:-2] + '"', "garbage"):
        assert httpd.get(AGENTS, headers={"If-None-Match": inm}).status == 200
    # Another filter is another representation.
    fe = httpd.get(q(AGENTS, state="Busy")).header("etag")
    assert fe != etag and fe.startswith(etag[:-1] + ".")
    assert httpd.get(q(AGENTS, state="Busy"), headers={"If-None-Match": fe}).status == 304
    # A change → a new ETag, and the old one no longer matches.
    put_agents(db, [agent("b-000", "Meal", int(time.time() * 1000))])
    r2 = httpd.get(AGENTS, headers={"If-None-Match": etag})
    assert r2.status == 200 and r2.header("etag") != etag
    assert next(d for d in r2.json["data"] if d["user_id"] == "b-000")["state"] == "Meal"
    assert httpd.get(AGENTS, headers={"If-None-Match": r2.header("etag")}).status == 304


GEN = re.compile(r"^[0-9a-f]{1,16}-\d+$")


def test_board_delta(httpd, db, board):
    """?since=<generation>: only what changed, with the new generation; the
    changes that leave a filter come as `removed`."""
    full = assert_json(httpd.get(AGENTS))
    g0 = full["generation"]
    r = httpd.get(q(AGENTS, since=g0))
    d = assert_json(r)
    assert d["full"] is False and d["data"] == [] and d["removed"] == []
    assert d["generation"] == g0 and d["total"] == full["total"]
    assert httpd.get(q(AGENTS, since=g0), headers={"If-None-Match": r.header("etag")}) \
        .status == 304
    now = int(time.time() * 1000)
    put_agents(db, [agent("b-001", "Meal", now, queues=("qa", "qb")),
                    agent("b-041", "Available", now, queues=("qb",))])
    d = assert_json(httpd.get(q(AGENTS, since=g0)))
    assert d["full"] is False and d["generation"] != g0
    assert [x["user_id"] for x in d["data"]] == ["b-001", "b-041"]
    assert d["data"][0]["state"] == "Meal"
    assert d["total"] == full["total"] + 1
    # the same delta through a filter: b-001 (Meal) left Busy-only views
    d = assert_json(httpd.get(q(AGENTS, since=g0, state="Available")))
    assert [x["user_id"] for x in d["data"]] == ["b-041"] and d["removed"] == ["b-001"]
    assert d["total"] == len(assert_json(httpd.get(q(AGENTS, state="Available")))["data"])
    # an unknown generation (another database, or from the future) → the full board
    board_id, gen = g0.split("-")
    for other in (f"{int(board_id, 16) ^ 1:x}-{gen}", f"{board_id}-{int(gen) + 10 ** 6}"):
        d = assert_json(httpd.get(q(AGENTS, since=other)))
        assert d["full"] is True and d["total"] == len(d["data"]) == full["total"] + 1
    for bad in ("x", "1", "-1", "12-", "0x1-2", "AB-1", "1-01", "1--2", "1-99999999999999999999"):
        assert_problem(httpd.get(q(AGENTS, since=bad)), 400, "validation_failed", "since")


def test_one_agent(httpd, db, board):
    r = httpd.get(AGENTS + "/b-007")
    d = assert_json(r)
    assert d["user_id"] == "b-007" and d["state"] == STATES[7]
    assert "generated_at" not in d
    etag = r.header("etag")
    assert etag
    r = httpd.get(AGENTS + "/b-007", headers={"If-None-Match": etag})
    assert r.status == 304 and r.body == b""
    assert_problem(httpd.get(AGENTS + "/nobody"), 404, "agent_not_found")
    assert_problem(httpd.get(AGENTS + "/" + "x" * 300), 404, "agent_not_found")
    assert_problem(httpd.get(AGENTS + "/%27%20OR%201%3D1"), 404, "agent_not_found")


def test_board_alert_field(httpd, db, board):
    now = int(time.time() * 1000)
    db.execute("INSERT INTO gcmon_alerts (user_id, user_name, state, threshold_seconds, "
               "episode_at, seq, raised_at, cleared_at, delivery_status, delivery_attempts) "
               "VALUES (?,?,?,?,?,?,?,?,?,?)",
               [["b-010", "Agent b-010", "Available", 900, now - 1000000, 0, now - 5000,
                 None, "pending", 0],
                ["b-011", "Agent b-011", "Available", 900, now - 1000000, 0, now - 5000,
                 now - 1000, "delivered", 1]])
    stamp(db, ["b-010", "b-011"])               # as the store does with every alert change
    body = assert_json(httpd.get(AGENTS))
    by = {d["user_id"]: d for d in body["data"]}
    a = by["b-010"]["alert"]
    assert a and isinstance(a["id"], int) and a["threshold_seconds"] == 900
    assert a["raised_at"] == iso(now - 5000)
    assert by["b-011"]["alert"] is None        # cleared alerts are not on the board


# ------------------------------------------------------------------ alerts

def test_alerts_paging(httpd, db):
    t0 = BASE + 20 * DAY
    rows = [["al-%d" % (i % 4), None if i % 4 == 0 else "Agent", "Available" if i % 2 else "IDLE",
             900, t0 + i * 1000, 0, t0 + i * 1000 + 900000, None if i % 3 else t0 + i * 2000,
             ["pending", "delivered", "failed", "disabled"][i % 4], i % 5,
             "HTTP 500" if i % 4 == 2 else None] for i in range(45)]
    db.execute("INSERT INTO gcmon_alerts (user_id, user_name, state, threshold_seconds, "
               "episode_at, seq, raised_at, cleared_at, delivery_status, delivery_attempts, "
               "delivery_last_error) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    window = {"from": iso(t0), "to": iso(t0 + DAY)}
    body = assert_json(httpd.get(q(ALERTS, limit=10, **window)))
    assert body["total"] == 45 and len(body["data"]) == 10 and body["next_cursor"]
    first = body["data"][0]
    assert list(first) == ["id", "user_id", "user_name", "state", "threshold_seconds",
                           "raised_at", "cleared_at", "delivery"]
    assert list(first["delivery"]) == ["status", "attempts", "last_error"]
    assert first["raised_at"] == iso(t0 + 44 * 1000 + 900000)
    ids, cursor, pages = [], None, 0
    while True:
        p = dict(window, limit=10)
        if cursor:
            p["cursor"] = cursor
        b = assert_json(httpd.get(q(ALERTS, **p)))
        ids += [d["id"] for d in b["data"]]
        pages += 1
        cursor = b["next_cursor"]
        if not cursor:
            break
    assert len(ids) == 45 == len(set(ids)) and pages == 5
    b = assert_json(httpd.get(q(ALERTS, user_id="al-0", state="IDLE", offset=2, **window)))
    assert b["total"] == 12 and len(b["data"]) == 10 and b["offset"] == 2
    assert all(d["user_name"] is None and d["delivery"]["status"] == "pending"
               for d in b["data"])
    assert any(d["cleared_at"] is None for d in b["data"])
    assert any(d["cleared_at"] and TS.match(d["cleared_at"]) for d in b["data"])
    failed = assert_json(httpd.get(q(ALERTS, user_id="al-2", **window)))["data"]
    assert all(d["delivery"]["last_error"] == "HTTP 500" for d in failed)
    assert assert_json(httpd.get(q(ALERTS, user_id="nobody")))["data"] == []
    assert_problem(httpd.get(q(ALERTS, limit=0)), 400, "validation_failed", "limit")
    assert_problem(httpd.get(q(ALERTS, state="idle")), 400, "validation_failed", "state")


# ------------------------------------------------------------------ metrics

SPEC_FAMILIES = [
    "gcmon_stream_connected", "gcmon_stream_channels", "gcmon_stream_topics",
    "gcmon_stream_reconnects_total", "gcmon_stream_messages_total", "gcmon_events_stored_total",
    "gcmon_events_dropped_total", "gcmon_event_lag_seconds", "gcmon_agents_monitored",
    "gcmon_idle_alerts_total", "gcmon_webhook_deliveries_total", "gcmon_outbox_pending",
    "gcmon_upstream_requests_total", "gcmon_upstream_latency_seconds",
    "gcmon_upstream_throttled_total", "gcmon_state_update_latency_seconds",
    "gcmon_validation_errors_total", "gcmon_api_requests_total",
]


def test_metrics_format_is_strict_prometheus(httpd, db):
    # Put something into a histogram and a few labelled counters first.
    httpd.get(HISTORY + "?limit=0")
    httpd.get(AGENTS)
    r = httpd.get(API + "/metrics")
    assert r.status == 200
    assert r.header("content-type").startswith("text/plain; version=0.0.4")
    assert r.header("cache-control") == "no-store"
    fams = promtext.validate(r.text)
    missing = [f for f in SPEC_FAMILIES if f not in fams]
    assert not missing, missing
    assert all(f.startswith("gcmon_") for f in fams)
    routes = {s[1]["route"] for s in fams["gcmon_api_requests_total"]["samples"]}
    assert {"history", "agents"} <= routes
    # Bounded label values: no user ids, paths or query strings in labels.
    for fam in fams.values():
        for _, labels, _ in fam["samples"]:
            for v in labels.values():
                assert len(v) <= 32 and re.match(r"^[A-Za-z0-9_.+-]*$|^\+Inf$", v), v


def test_metrics_promtool(httpd, db):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    text = httpd.get(API + "/metrics").body
    with tempfile.NamedTemporaryFile(suffix=".prom") as f:
        f.write(text)
        f.flush()
        with open(f.name, "rb") as fin:
            p = subprocess.run([promtool, "check", "metrics"], stdin=fin,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert p.returncode == 0, p.stdout.decode()
    assert p.stdout.decode().strip() == "", p.stdout.decode()


def test_read_routes_are_counted_exactly(httpd, db):
    m = httpd.metric
    before = httpd.metrics()
    n = 13
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        list(ex.map(lambda _: httpd.get(HISTORY + "?limit=abc"), range(n)))
        list(ex.map(lambda _: httpd.get(q(HISTORY, limit=1)), range(n)))
        list(ex.map(lambda _: httpd.get(ALERTS), range(n)))
        list(ex.map(lambda _: httpd.get(AGENTS + "/nobody-here"), range(n)))
    after = httpd.metrics()
    for route, code in (("history", "400"), ("history", "200"), ("alerts", "200"),
                        ("agent", "404")):
        assert m(after, "gcmon_api_requests_total", route=route, code=code) == \
            m(before, "gcmon_api_requests_total", route=route, code=code) + n, (route, code)
    assert m(after, "gcmon_validation_errors_total", error_type="invalid_value") == \
        m(before, "gcmon_validation_errors_total", error_type="invalid_value") + n
    etag = httpd.get(AGENTS).header("etag")
    b304 = m(httpd.metrics(), "gcmon_api_requests_total", route="agents", code="304")
    assert httpd.get(AGENTS, headers={"If-None-Match": etag}).status == 304
    assert m(httpd.metrics(), "gcmon_api_requests_total", route="agents", code="304") == b304 + 1


# ------------------------------------------------------------------ no database

def test_database_unavailable_is_503():
    """mod_dbd cannot open the database: every read endpoint answers 503
    problem+json (not a crash, not an HTML error page), health stays 200.
    (A directory where the database file should be: start-up's check of the
    database directory passes, SQLite cannot open it; a libpq conninfo that
    does not parse, on PostgreSQL.)"""
    from httpd import Httpd, BAD_LINE
    # What this test provokes: mod_dbd failing to connect (in child init and on
    # each request), and gcmon's 503 report of it.
    h = Httpd(start_servers=1,
              allow_log=(r"\[dbd:(error|crit)\] .*AH006(29|33|36): ",
                         r"\[gcmon_api:error\] .*GCM1200: no database connection: "))
    try:
        bad = os.path.join(h.data_dir, "not-a-file")
        os.mkdir(bad)
        if h._user:
            shutil.chown(bad, h._user, h._user)
        h.extra_conf = f"DBDParams {bad}\n"
        h.write_config()
        h.start()
        for path in (HISTORY, AGENTS, AGENTS + "/someone", ALERTS):
            assert_problem(h.get(path), 503, "database_unavailable")
        assert h.get(API + "/health").status == 200
        log = h.read_log()
        assert "GCM1200" in log
        expected = re.compile(r"\[dbd:(error|crit)\]|\[gcmon_api:error\]")
        crashes = [line for line in log.splitlines()
                   if BAD_LINE.search(line) and not expected.search(line)]
        assert not crashes, crashes
    finally:
        h.cleanup()
