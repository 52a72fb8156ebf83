"""2,500 monitored users take 3 channels (1000 + 1000 + 500 topics); a membership
refresh subscribes newcomers and unsubscribes leavers, keeping everyone else on
their channel."""
import pytest

from conftest import CLIENT_SECRET
from httpd import Httpd, wait_for
from stream_helpers import (StreamDB, emulator_channels, stream_conf, stream_status,
                            wait_connected, wait_converged)

QUEUE = "scale-q1"
N = 2500
IDS = [f"scale-{i:05d}" for i in range(N)]
EXTRA = [f"scale-x{i:04d}" for i in range(150)]
GCMON_CONF = stream_conf(queues=[QUEUE], extra="GcmonMembershipRefresh 3s\n",
                         rate_limit=20000)


@pytest.fixture(scope="module")
def httpd(emulator):
    presences = ["Available", "OnQueue", "Break", "Away", "Busy"]
    emulator.config(heartbeat=5)
    emulator.add_agents([{"id": a, "name": f"Scale {a}", "presence": presences[i % 5]}
                         for i, a in enumerate(IDS + EXTRA)])
    emulator.add_queues([{"id": QUEUE, "name": "Scale", "members": IDS}])
    h = Httpd(emulator_url=emulator.url, gcmon_conf=GCMON_CONF,
              env={"GCMON_TEST_SECRET": CLIENT_SECRET})
    h.start()
    yield h
    h.cleanup()


@pytest.fixture(scope="module")
def db(httpd):
    return StreamDB(httpd.db)


def channel_topics(emulator, status):
    return {label: set(c["topics"]) for label, c in emulator_channels(emulator, status).items()}


def topic(u):
    return f"v2.users.{u}.activity"


def test_three_channels(httpd, emulator, db, report):
    s = wait_connected(httpd, topics=N, timeout=90)
    assert len(s["channels"]) == 3, s["channels"]
    assert sorted(c["topics"] for c in s["channels"]) == [500, 1000, 1000]
    assert all(c["connected"] for c in s["channels"])
    chans = channel_topics(emulator, s)
    assert set().union(*chans.values()) == {topic(u) for u in IDS}
    assert sum(len(t) for t in chans.values()) == N      # no topic on two channels
    report(f"stream scale: {N} users on {len(chans)} channels")


def test_everyone_recorded(httpd, emulator, db):
    wait_converged(db, emulator, ids=set(IDS), timeout=60)


def test_membership_refresh(httpd, emulator, db):
    before = stream_status(httpd)
    chans_before = channel_topics(emulator, before)
    leavers, stayers = IDS[:100], IDS[100:]
    emulator.set_members(QUEUE, stayers + EXTRA)
    want = {topic(u) for u in stayers + EXTRA}

    def applied():
        s = stream_status(httpd)
        chans = channel_topics(emulator, s)
        if s["connected"] and chans and set().union(*chans.values()) == want \
                and s["agents_monitored"] == len(want):
            return s, chans
        return None
    s, chans = wait_for(applied, timeout=60, what="subscriptions follow the membership")
    assert s["agents_monitored"] == len(want)
    assert all(len(t) <= 1000 for t in chans.values())
    assert sum(len(t) for t in chans.values()) == len(want)
    # Stayers kept their channel (stable assignment: only changed channels re-subscribed).
    for cid, topics in chans_before.items():
        if cid in chans:
            assert {t for t in topics if t in want} <= chans[cid]
    assert not any(topic(u) in t for u in leavers for t in chans.values())
    wait_converged(db, emulator, ids=set(EXTRA), timeout=60)
    emulator.set_state(EXTRA[0], presence="Meal")
    wait_for(lambda: db.current_states().get(EXTRA[0]) == "Meal", timeout=5)
