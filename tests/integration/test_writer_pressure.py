"""The writer's two loss paths in the real server (issue 17; docs/stream.md "Nothing
lost", docs/logging.md GCM2305/GCM2304/GCM2253), against a real apache2, the emulator
and a SQLite database that the test takes away with an exclusive lock from another
process (SQLite only: the lock is how a database that stops keeping up is made; the
PostgreSQL outage is test_failure_paths.py's and test_pg_errors.py's):

- back-pressure: with `GcmonEventQueue 100`, 250 agents change state while the
  database is locked; the queue keeps the newest 100, drops the oldest (GCM2305, the
  `gcmon_events_dropped_total{reason="queue_full"}` counter) and, once writes work
  again (GCM2301), the holder resyncs every agent (GCM2253) so the stored current state
  equals the platform's again, without a change of holder;
- the shutdown flush: events still waiting for a locked database when httpd stops
  are counted and logged (GCM2304, `reason="shutdown"`), the stop is bounded (the
  writer's 2 s drain, inside httpd's first patience: no "still did not exit"), and the next start's resync restores every agent's state."""
import re
import time

import pytest

from conftest import CLIENT_SECRET
from gcdb import is_pgsql
from httpd import Httpd, wait_for
from stream_helpers import (SIM_QUEUES, StreamDB, stream_conf, stream_status, truth,
                            wait_connected, wait_converged)

AGENTS = 250
QUEUE_MAX = 100
GCMON_CONF = stream_conf(queues=SIM_QUEUES, extra=f"GcmonEventQueue {QUEUE_MAX}\n")
# What a locked database makes the holder's threads say (each a [warn] or lower,
# except mod_dbd's own complaint about a busy database on a pooled connection).
LOCKED = (r"database is locked|SQLITE_BUSY|busy",)

pytestmark = pytest.mark.skipif(is_pgsql(), reason="SQLite only: the database is taken "
                                "away with an exclusive lock")


@pytest.fixture(scope="module")
def httpd(emulator):
    emulator.config(heartbeat=1)
    emulator.simulate(agents=AGENTS, queues=3, churn=0)
    h = Httpd(emulator_url=emulator.url, gcmon_conf=GCMON_CONF,
              env={"GCMON_TEST_SECRET": CLIENT_SECRET}, start_servers=2)
    h.start()
    yield h
    h.cleanup()


@pytest.fixture(scope="module")
def db(httpd, emulator):
    d = StreamDB(httpd.db)
    wait_connected(httpd, topics=AGENTS)
    wait_converged(d, emulator)
    return d


def flip_everyone(emulator, ids=None):
    """Every agent (or ids) to another presence; returns how many changed."""
    now = truth(emulator)
    n = 0
    for uid, state in sorted(now.items()):
        if ids is not None and uid not in ids:
            continue
        emulator.set_state(uid, presence="Available" if state == "Away" else "Away")
        n += 1
    return n


def dropped(httpd, reason):
    return Httpd.metric(httpd.metrics(), "gcmon_events_dropped_total", reason=reason)


def lock_after_lease_renewal(httpd):
    """The database locked right after the holder renewed its lease. The thread that
    renews it every 3 s also reads the notification sockets, and a renewal waits for
    the lock: until the next one the holder reads on while its writer waits."""
    q = "SELECT expires_at FROM gcmon_lease WHERE name = 'stream'"
    first = httpd.db.query(q)[0]["expires_at"]
    wait_for(lambda: httpd.db.query(q)[0]["expires_at"] != first, timeout=10, interval=0.01,
             what="a lease renewal")
    return httpd.db.lock().start(), time.monotonic()


def received(httpd):
    return Httpd.metric(httpd.metrics(), "gcmon_stream_messages_total", kind="event")


def logged(httpd, pattern, since):
    return re.findall(pattern, httpd.read_log()[since:])


@pytest.mark.allow_log(*LOCKED)
def test_queue_full_drops_oldest_then_resyncs(httpd, db, emulator, report):
    holder = stream_status(httpd)["holder"]["id"]
    before = dropped(httpd, "queue_full")
    events = received(httpd)
    mark = len(httpd.read_log())
    lock, t0 = lock_after_lease_renewal(httpd)
    try:
        changed = flip_everyone(emulator)
        # Every change read by the holder (so queued or dropped: the count is final)
        # and the first drop logged. Released before the next renewal whatever
        # happens (t0 + 2.5 s).
        wait_for(lambda: received(httpd) - events >= changed
                 and logged(httpd, r"GCM2305: .*dropped (\d+) agent", mark),
                 timeout=max(0.1, 2.5 - (time.monotonic() - t0)),
                 what="every change read and GCM2305")
    finally:
        held = time.monotonic() - t0
        lock.release()
    lost = dropped(httpd, "queue_full") - before
    # The writer holds one batch while it retries; the queue keeps the newest 100.
    assert changed - QUEUE_MAX - 50 <= lost <= changed - QUEUE_MAX, (changed, lost)
    line = wait_for(lambda: logged(httpd, r"GCM2253: .*after (\d+) dropped agent event\(s\): "
                                          r"resyncing (\d+) agent", mark),
                    timeout=20, what="GCM2253: the resync after drops")
    assert int(line[0][0]) == lost, (line, lost)
    assert int(line[0][1]) == AGENTS, line
    wait_converged(db, emulator, timeout=30)
    # The same holder all along: the resync came from the drops, not from a takeover.
    after = stream_status(httpd)
    assert after["connected"] and after["holder"]["id"] == holder, after
    assert not logged(httpd, r"GCM2103", mark)
    report(f"writer back-pressure: {changed} changes with the database locked {held:.1f} s, "
           f"queue {QUEUE_MAX}: {lost:.0f} dropped (oldest first), resync of {AGENTS} agents "
           f"restored the current state")


@pytest.mark.allow_log(*LOCKED)
def test_stop_with_events_waiting_counts_them_and_the_next_start_resyncs(httpd, db, emulator,
                                                                          report):
    ids = sorted(truth(emulator))[:20]
    mark = len(httpd.read_log())
    events = received(httpd)
    lock, t0 = lock_after_lease_renewal(httpd)
    try:
        changed = flip_everyone(emulator, set(ids))
        # The holder has read them (and queued them for its writer, which waits
        # for the database).
        wait_for(lambda: received(httpd) - events >= changed,
                 timeout=max(0.1, 2.5 - (time.monotonic() - t0)),
                 what="the holder received the events")
        t0 = time.monotonic()
        httpd.stop(timeout=30)
        took = time.monotonic() - t0
    finally:
        lock.release()
    lines = logged(httpd, r"GCM2304: stopping with (\d+) agent event\(s\) not stored", mark)
    assert lines, httpd.read_log()[mark:][-3000:]
    assert sum(int(n) for n in lines) == changed, (lines, changed)
    assert not logged(httpd, r"still did not exit|SIGKILL", mark), httpd.read_log()[mark:][-6000:]
    httpd.start()
    wait_connected(httpd, topics=AGENTS)
    wait_converged(db, emulator, ids=set(ids), timeout=30)
    report(f"writer shutdown with the database locked: {changed} events counted lost "
           f"(GCM2304), stop took {took:.1f} s, the next start's resync restored them")
