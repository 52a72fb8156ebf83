"""The route decision of routing strategies (SPEC §3.6, §5.6, §8, §9.9):
GET /v1/strategies/{id}/route against a real apache2 (2 children), SQLite and the Genesys
Cloud emulator.

Strategies are created and activated through the admin API; the holder's strategies thread
observes their target queues every 5 s, every server reloads its route tables from the
database every 2 s (one child's monitor thread), and the route is answered from those tables
in shared memory: weighted within the preferred tier with spare capacity, else the fallback;
`stale` once the observations are older than 30 s. GcmonStrategyRebalance 3s rebalances each
active strategy on its own (actor gcmon, audited). The weights of the strategies below are
their rebalanced values already (1/(1+occupancy) of the scripted observations), so the
schedule leaves the distribution alone."""
import http.client
import json
import time
import uuid

import pytest

from conftest import CLIENT_ID, CLIENT_SECRET
from httpd import Httpd, assert_problem, wait_for

API = "/gcmon/api/v1"
REBALANCE_S = 3
# A route change shows within the holder's next observation (5 s) plus the next refresh
# of the route tables (2 s); the activation itself takes a second or two.
SETTLE_S = 20


CONF = (f"GcmonClientID {CLIENT_ID}\n"
        "GcmonClientSecret env:GCMON_TEST_SECRET\n"
        "GcmonRequestTimeout 5s\n"
        "GcmonRateLimit 6000\n"
        "GcmonAdminActor anonymous\n"
        f"GcmonStrategyRebalance {REBALANCE_S}s\n")


@pytest.fixture(scope="module")
def httpd(emulator):
    h = Httpd(emulator_url=emulator.url, env={"GCMON_TEST_SECRET": CLIENT_SECRET},
              gcmon_conf=CONF, start_servers=2)
    h.start()
    try:
        yield h
    finally:
        h.cleanup()


@pytest.fixture(autouse=True)
def clean(emulator):
    emulator.clear_faults()
    yield
    emulator.clear_faults()


def queues(emulator, spec):
    """Queues (one IDLE member each) with scripted observations: spec is a list of
    (capacity-independent) oInteracting counts; returns their ids."""
    tag = uuid.uuid4().hex[:8]
    ids = [f"rq-{tag}-{i}" for i in range(len(spec))]
    emulator.add_agents([{"id": f"ru-{tag}-{i}", "name": f"Route {tag} {i}", "presence": "OnQueue",
                          "routing_status": "IDLE"} for i in range(len(spec))])
    emulator.add_queues([{"id": q, "name": f"Route {tag} {i}", "members": [f"ru-{tag}-{i}"]}
                         for i, q in enumerate(ids)])
    for q, interacting in zip(ids, spec):
        emulator.set_queue_observations(q, interacting=interacting, waiting=0, on_queue=1)
    return ids


def fallback_queue(emulator):
    return queues(emulator, [0])[0]


def weight(interacting, capacity):
    return 1 / (1 + interacting / capacity)


def strategy_body(targets, fallback, name="Route test"):
    """targets: (queue_id, priority, weight, capacity)."""
    return {"name": name,
            "targets": [{"queue_id": q, "priority": p, "weight": w, "capacity": c}
                        for q, p, w, c in targets],
            "fallback": {"queue_id": fallback, "priority": 99, "weight": 1}}


def create(h, body):
    r = h.admin("POST", f"{API}/admin/strategies", body=body)
    assert r.status == 201, r
    assert r.json["status"] == "draft"
    return r.json["id"]


def strategy(h, sid):
    r = h.get(f"{API}/admin/strategies/{sid}")
    assert r.status == 200, r
    return r.json


def activate(h, sid):
    r = h.admin("POST", f"{API}/admin/strategies/{sid}/activate")
    assert r.status == 202, r
    wait_for(lambda: strategy(h, sid)["status"] == "active", timeout=SETTLE_S,
             what=f"{sid} active")
    # Routed within the refresh bound; observed at the holder's next look (1 s) — until
    # then the route is the fallback, stale, observed_at null.
    return route_observed(h, sid)


def route(h, sid, conn=None):
    if conn is None:
        return h.get(f"{API}/strategies/{sid}/route")
    conn.request("GET", f"{API}/strategies/{sid}/route")
    r = conn.getresponse()
    return r.status, r.read()


def route_ok(h, sid, timeout=SETTLE_S):
    """The first 200 answer (a strategy just activated shows within the refresh bound)."""
    return wait_for(lambda: (lambda r: r.json if r.status == 200 else None)(route(h, sid)),
                    timeout=timeout, what=f"a route for {sid}")


def route_observed(h, sid):
    """The first 200 answer decided from observations (not the fallback of a strategy this
    server's tables hold from before the holder's first observation of it)."""
    return wait_for(lambda: (lambda d: d if d["observed_at"] else None)(route_ok(h, sid)),
                    timeout=SETTLE_S, what=f"{sid} routed from observations")


def active_strategy(h, emulator, observed, capacities=None, priorities=None):
    """An active strategy over fresh queues observed with `observed` interacting each
    (capacity 10 unless given; weights at their rebalanced values), and its fallback queue."""
    ids = queues(emulator, observed)
    fb = fallback_queue(emulator)
    priorities = priorities or [1] * len(ids)
    capacities = capacities or [10] * len(ids)
    sid = create(h, strategy_body([(q, p, weight(o, c), c)
                                   for q, p, o, c in zip(ids, priorities, observed, capacities)],
                                  fb))
    activate(h, sid)
    return sid, ids, fb


# ------------------------------------------------------------------ the decision

def test_route_distribution_follows_the_weights(httpd, emulator):
    # One tier of three targets with spare capacity: occupancy 0, 0.8, 0.25.
    sid, ids, fb = active_strategy(httpd, emulator, [0, 8, 1], capacities=[10, 10, 4])
    weights = [weight(0, 10), weight(8, 10), weight(1, 4)]
    expected = [w / sum(weights) for w in weights]
    counts = dict.fromkeys(ids, 0)
    emulator.clear_requests()
    n = 10000
    conn = http.client.HTTPConnection("127.0.0.1", httpd.port, timeout=30)
    t0 = time.monotonic()
    try:
        for _ in range(n):
            status, body = route(httpd, sid, conn)
            assert status == 200, body
            doc = json.loads(body)
            counts[doc["queue_id"]] += 1
    finally:
        conn.close()
    elapsed = time.monotonic() - t0
    assert doc["strategy_id"] == sid and doc["reason"] == "weighted" and doc["priority"] == 1
    assert doc["stale"] is False and doc["age_ms"] >= 0 and doc["generation"] > 0
    assert doc["observed_at"].endswith("Z")
    for q, share in zip(ids, expected):
        assert abs(counts[q] / n - share) <= 0.03, (counts, expected)
    # No database read and no upstream call per request: only the holder's observations
    # (every 5 s) and scheduled rebalances reached Genesys meanwhile.
    upstream = emulator.requests(path=r"^/api/v2/")
    assert len(upstream) <= 4 * (elapsed / 5 + 2), (len(upstream), elapsed)
    assert all("observations" in e["path"] for e in upstream), upstream[:5]


def test_route_answer_shape(httpd, emulator):
    sid, ids, fb = active_strategy(httpd, emulator, [1])
    r = route(httpd, sid)
    assert r.status == 200
    assert r.header("content-type") == "application/json; charset=utf-8"
    assert r.header("cache-control") == "no-store"
    assert set(r.json) == {"queue_id", "strategy_id", "reason", "priority", "stale",
                           "observed_at", "age_ms", "generation"}
    assert r.json["queue_id"] == ids[0]
    head = httpd.request("HEAD", f"{API}/strategies/{sid}/route")
    assert head.status == 200 and head.body == b""
    assert_problem(httpd.request("POST", f"{API}/strategies/{sid}/route"), 405,
                   "method_not_allowed")


def test_priority_tiers(httpd, emulator):
    # Tier 1: two queues; tier 2: one. All have room at activation.
    sid, ids, fb = active_strategy(httpd, emulator, [0, 0, 0], priorities=[1, 1, 2])
    first = {route(httpd, sid).json["queue_id"] for _ in range(40)}
    assert first <= set(ids[:2]) and first, first
    # Tier 1 saturated (one full, one over capacity): tier 2 takes them.
    emulator.set_queue_observations(ids[0], interacting=10)
    emulator.set_queue_observations(ids[1], interacting=15)
    doc = wait_for(lambda: (lambda d: d if d["queue_id"] == ids[2] else None)(route_ok(httpd, sid)),
                   timeout=SETTLE_S, what="tier 2 chosen")
    assert doc["reason"] == "weighted" and doc["priority"] == 2
    assert {route(httpd, sid).json["queue_id"] for _ in range(20)} == {ids[2]}
    # Room again in tier 1: back to it.
    emulator.set_queue_observations(ids[1], interacting=3)
    wait_for(lambda: route_ok(httpd, sid)["queue_id"] == ids[1], timeout=SETTLE_S,
             what="tier 1 again")


def test_fallback_when_every_target_is_saturated(httpd, emulator):
    sid, ids, fb = active_strategy(httpd, emulator, [0, 0], priorities=[1, 2])
    for q in ids:
        emulator.set_queue_observations(q, interacting=10)
    doc = wait_for(lambda: (lambda d: d if d["reason"] == "fallback" else None)(
        route_ok(httpd, sid)), timeout=SETTLE_S, what="the fallback")
    assert doc["queue_id"] == fb and doc["priority"] == 99 and doc["stale"] is False
    assert {route(httpd, sid).json["queue_id"] for _ in range(20)} == {fb}


def test_stale_when_observations_stop(httpd, emulator):
    sid, ids, fb = active_strategy(httpd, emulator, [0])
    # Genesys stops answering the observations query: observed_at stops moving...
    emulator.fault(r"^/api/v2/analytics/queues/observations/query$", status=503, count=100000,
                   method="POST")
    wait_for(lambda: any(e["status"] == 503 for e in emulator.requests(
        path=r"^/api/v2/analytics/queues/observations/query$")), timeout=SETTLE_S,
        what="a failed observations query")
    wait_for(lambda: "GCM2132" in httpd.log_since_mark(), timeout=SETTLE_S, what="GCM2132")
    # ...and we let 60 s pass at once by ageing the stored observation (no test knob: the
    # route's age comes from the observation time stored with the strategy).
    old = int(time.time() * 1000) - 60000
    httpd.db.execute("UPDATE gcmon_strategy SET observed_at = ? WHERE strategy_id = ?",
                     [(old, sid)])
    doc = wait_for(lambda: (lambda d: d if d["stale"] else None)(route_ok(httpd, sid)),
                   timeout=SETTLE_S, what="a stale route")
    assert doc["age_ms"] >= 60000 and doc["reason"] == "weighted" and doc["queue_id"] == ids[0]
    # While Genesys stays silent, the observation time does not move (over a refresh).
    until = time.monotonic() + 2.5
    while time.monotonic() < until:
        again = route_ok(httpd, sid)
        assert again["stale"] is True and again["observed_at"] == doc["observed_at"], again
        time.sleep(0.2)
    # Genesys answers again: fresh within the next observation and refresh.
    emulator.clear_faults()
    fresh = wait_for(lambda: (lambda d: d if not d["stale"] else None)(route_ok(httpd, sid)),
                     timeout=SETTLE_S, what="a fresh route")
    assert fresh["age_ms"] < 10000
    wait_for(lambda: "GCM2135" in httpd.log_since_mark(), timeout=5, what="GCM2135")


def test_not_active_and_bad_ids(httpd, emulator):
    body = assert_problem(route(httpd, "strat-" + uuid.uuid4().hex), 404, "strategy_not_active")
    assert "within 2 s" in body["detail"]
    # A draft strategy is not routed.
    ids = queues(emulator, [0])
    draft = create(httpd, strategy_body([(ids[0], 1, 1, 10)], fallback_queue(emulator)))
    # A strategy activated after the draft was created is routed: a refresh of the route
    # tables has read the draft too.
    active_strategy(httpd, emulator, [0])
    assert_problem(route(httpd, draft), 404, "strategy_not_active")
    assert_problem(route(httpd, "strat-bad!"), 400, "validation_failed", field="id")
    assert_problem(route(httpd, "x" * 65), 400, "validation_failed", field="id")


# ------------------------------------------------------------------ the schedule

def test_rebalance_on_schedule(httpd, emulator):
    ids = queues(emulator, [5, 0])
    fb = fallback_queue(emulator)
    # Created with weights 3 and 1: rebalanced to 1/(1+0.5) and 1/(1+0).
    sid = create(httpd, strategy_body([(ids[0], 1, 3, 10), (ids[1], 1, 1, 10)], fb))
    activate(httpd, sid)

    def weights():
        return [t["weight"] for t in strategy(httpd, sid)["targets"]]

    got = wait_for(lambda: (lambda w: w if abs(w[0] - weight(5, 10)) < 1e-9 else None)(weights()),
                   timeout=REBALANCE_S + SETTLE_S, what="the scheduled rebalance")
    assert abs(got[1] - 1.0) < 1e-9
    audit = httpd.get(f"{API}/admin/audit?actor=gcmon&action=strategy_rebalance&target={sid}")
    assert audit.status == 200, audit
    rows = audit.json["data"]
    assert rows and all(r["actor"] == "gcmon" and r["status"] == 200 for r in rows), rows
    # The route follows the new weights (the first target now 0.4 of the decisions) once a
    # refresh after the rebalance published them: a later generation of the table.
    n, first = 2000, 0
    gen0 = route_ok(httpd, sid)["generation"]
    wait_for(lambda: route_ok(httpd, sid)["generation"] > gen0, timeout=SETTLE_S,
             what="a table published after the rebalance")
    for _ in range(n):
        first += route(httpd, sid).json["queue_id"] == ids[0]
    share = weight(5, 10) / (weight(5, 10) + 1)
    assert abs(first / n - share) <= 0.05, (first, share)


# ------------------------------------------------------------------ lifecycle

def test_route_survives_a_graceful_restart(httpd, emulator):
    sid, ids, fb = active_strategy(httpd, emulator, [0])
    before = route_ok(httpd, sid)
    httpd.graceful()
    # The first answers of the new generation come from the kept block: no 503 while the
    # new children have not refreshed anything yet.
    for _ in range(20):
        r = route(httpd, sid)
        assert r.status == 200, r
        assert r.json["queue_id"] == ids[0]
    assert r.json["generation"] >= before["generation"]


def test_every_server_routes_from_the_database(httpd, emulator):
    """A second server on the same database (another host of a scale-out) loads its own
    route tables: strategies activated through either are routed by both, from the same
    observations, whichever server holds the stream."""
    other = Httpd(emulator_url=emulator.url, database=httpd.db,
                  env={"GCMON_TEST_SECRET": CLIENT_SECRET}, gcmon_conf=CONF, start_servers=1)
    try:
        other.start()
        sid, ids, fb = active_strategy(httpd, emulator, [0, 0], priorities=[1, 2])
        doc = route_observed(other, sid)
        assert doc["queue_id"] == ids[0] and doc["strategy_id"] == sid
        # One new observation (tier 1 full) reaches both servers' tables.
        emulator.set_queue_observations(ids[0], interacting=10)
        for h in (httpd, other):
            wait_for(lambda: route_ok(h, sid)["queue_id"] == ids[1], timeout=SETTLE_S,
                     what="tier 2 on both servers")
        # And the other way round: activated through the second server.
        sid2, ids2, fb2 = active_strategy(other, emulator, [0])
        assert route_observed(httpd, sid2)["queue_id"] == ids2[0]
    finally:
        other.cleanup()


def test_without_the_stream_module(emulator):
    h = Httpd(emulator_url=emulator.url, modules=("gcmon_api",), start_servers=1)
    try:
        h.start()
        r = h.get(f"{API}/strategies/strat-{uuid.uuid4().hex}/route")
        body = assert_problem(r, 503, "route_unavailable")
        assert "mod_gcmon_stream" in body["detail"]
        assert r.header("retry-after") == "60"
    finally:
        h.cleanup()


def test_rebalance_directive_is_validated(httpd):
    for ok in ("Off", "off", "1s", "15m", "24h"):
        rc, out = httpd.configtest(gcmon_conf=f"GcmonStrategyRebalance {ok}\n")
        assert rc == 0, (ok, out)
    for bad in ("25h", "0s", "-5s", "soon", "5x"):
        rc, out = httpd.configtest(gcmon_conf=f"GcmonStrategyRebalance {bad}\n")
        assert rc != 0 and "GcmonStrategyRebalance" in out, (bad, out)


def test_no_monitor_thread_no_tables(emulator):
    """Both modules, but nothing that runs a monitor thread (no credentials, no stream, no
    webhook): the route tables are never loaded, so 503 rather than a wrong 404."""
    h = Httpd(emulator_url=emulator.url, gcmon_conf="", start_servers=1)
    try:
        h.start()
        r = h.get(f"{API}/strategies/strat-{uuid.uuid4().hex}/route")
        body = assert_problem(r, 503, "route_unavailable")
        assert "not been loaded" in body["detail"]
        assert r.header("retry-after") == "2"
    finally:
        h.cleanup()
