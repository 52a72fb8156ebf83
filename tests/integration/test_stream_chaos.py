"""Chaos: while the emulator's simulated contact centre churns, inject one fault per
test (WebSocket faults, throttled/failing channel and subscription calls, a graceful
restart, SIGKILL of the holder child). Each time the stream must recover, the stored
current state of every agent must equal the emulator's ground truth, and every state
that lasted at least 2 s inside the test's window must be in the history (from the
stream or from the resync). Recovery times are reported in the pytest summary."""
import signal
import time

import pytest

from conftest import CLIENT_SECRET
from httpd import Httpd, wait_for
from stream_helpers import (SIM_QUEUES, StreamDB, duplicate_rows, explain_missing,
                            issued_channel_ids, loud_lines_naming, missing_transitions,
                            stream_conf, stream_status, wait_connected, wait_converged)

AGENTS = 40
CHURN = 8.0               # state changes per second, all agents together
GCMON_CONF = stream_conf(queues=SIM_QUEUES)


@pytest.fixture(scope="module")
def httpd(emulator):
    emulator.config(heartbeat=1, socket_closing_grace=3)
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


def changes(emulator):
    return emulator.stats()["state_changes"]


def churn_for(emulator, n):
    """Let the simulation make n more changes (bounded wait)."""
    target = changes(emulator) + n
    wait_for(lambda: changes(emulator) >= target, timeout=n / CHURN * 4 + 10,
             what=f"{n} more state changes")


def connected_since(httpd, emulator, sockets_before, channel_change=None):
    """Connected, with a socket newer than before the fault (and a new channel)."""
    def ok():
        s = stream_status(httpd)
        if not s["connected"] or s["agents_monitored"] != AGENTS:
            return None
        if emulator.stats().get("ws_connections", 0) <= sockets_before:
            return None
        if channel_change and s["channels"][0]["id"] == channel_change:
            return None
        return s
    return ok


def window(httpd, emulator, db, report, name, inject, recovered):
    """Churn, inject, wait for recovery, churn, stop; then check everything.
    Episodes that began and ended between the fault and the recovery (no socket
    subscribed) cannot be recovered by anyone and are only counted."""
    wait_connected(httpd, topics=AGENTS)
    t_start = time.time()
    emulator.simulate(agents=AGENTS, queues=3, churn=CHURN)
    try:
        churn_for(emulator, 16)
        t0, w0 = time.monotonic(), time.time()
        ctx = inject()
        wait_for(lambda: recovered(ctx), timeout=40, interval=0.05, what=f"recovery ({name})")
        recovery, w1 = time.monotonic() - t0, time.time()
        churn_for(emulator, 24)
    finally:
        emulator.stop_simulation()
    t_end = time.time()
    wait_converged(db, emulator, timeout=30)
    agents = emulator.agents()
    missing = missing_transitions(db, agents, t_start, t_end, min_duration=2.0,
                                  blackout=(w0, w1))
    unrecoverable = len(missing_transitions(db, agents, t_start, t_end, min_duration=2.0)) \
        - len(missing)
    report(f"stream chaos: {name}: recovered in {recovery:.2f} s"
           + (f" ({unrecoverable} state(s) ≥ 2 s began and ended inside the outage)"
              if unrecoverable else ""))
    assert not missing, (f"{name}: states ≥ 2 s missing from history: {missing}; fault at "
                         f"{w0:.3f}, recovered at {w1:.3f}\n"
                         + explain_missing(db, agents, missing))
    assert duplicate_rows(db) == []
    return recovery


def ws_count(emulator):
    return emulator.stats().get("ws_connections", 0)


def test_drop_sockets(httpd, emulator, db, report):
    def inject():
        n = ws_count(emulator)
        emulator.ws_fault("drop")
        return n
    window(httpd, emulator, db, report, "sockets dropped", inject,
           lambda n: connected_since(httpd, emulator, n)())


@pytest.mark.parametrize("action", ["stop_heartbeats", "ignore_pings", "malformed"])
def test_socket_keeps_working(httpd, emulator, db, report, action):
    """Faults that leave events flowing: nothing to recover, nothing lost."""
    window(httpd, emulator, db, report, action, lambda: emulator.ws_fault(action),
           lambda _: stream_status(httpd)["connected"])


def test_socket_closing(httpd, emulator, db, report):
    def inject():
        n = ws_count(emulator)
        displaced = emulator.stats().get("ws_displaced", 0)
        # Genesys gives a minute; 10 s keeps the test short while leaving room
        # for a holder slowed by a sanitizer build on a loaded 2-core machine
        # (3 s was missed there once, which turns the handover into a reconnect).
        emulator.ws_fault("socket_closing", grace=10)
        return n, displaced
    window(httpd, emulator, db, report, "socket_closing (second socket, then the old one "
           "closes)", inject,
           lambda c: connected_since(httpd, emulator, c[0])()
           and emulator.stats().get("ws_displaced", 0) > c[1])


@pytest.mark.allow_log(r"GCM22(10|26|28|29)")
@pytest.mark.parametrize("action", ["no_longer_subscribed", "token_revoked"])
def test_channel_lost(httpd, emulator, db, report, action):
    def inject():
        s = stream_status(httpd)
        n = ws_count(emulator)
        emulator.ws_fault(action)
        return n, s["channels"][0]["id"]
    window(httpd, emulator, db, report, f"{action} (new channel)", inject,
           lambda c: connected_since(httpd, emulator, c[0], channel_change=c[1])())


@pytest.mark.allow_log(r"GCM22(10|26)")
@pytest.mark.parametrize("name,path,method,status,count", [
    ("429 on channel creation", r"^/api/v2/notifications/channels$", "POST", 429, 2),
    ("503 on subscriptions", r"^/api/v2/notifications/channels/[^/]+/subscriptions$", "PUT",
     503, 3),
    ("502 on channel creation, beyond the client's retries",
     r"^/api/v2/notifications/channels$", "POST", 502, 6),
])
def test_upstream_errors_on_channel_calls(httpd, emulator, db, report, name, path, method,
                                          status, count):
    def inject():
        s = stream_status(httpd)
        n = ws_count(emulator)
        emulator.fault(path, status=status, count=count, method=method,
                       retry_after=1 if status == 429 else None)
        emulator.ws_fault("no_longer_subscribed")
        return n, s["channels"][0]["id"]
    window(httpd, emulator, db, report, f"{name} (×{count}) + no_longer_subscribed", inject,
           lambda c: connected_since(httpd, emulator, c[0], channel_change=c[1])())
    emulator.clear_faults()


def test_graceful_restart(httpd, emulator, db, report):
    def inject():
        pid = stream_status(httpd)["holder"]["pid"]
        httpd.signal_k("graceful")
        return pid

    def recovered(pid):
        s = stream_status(httpd)
        return s["connected"] and s["holder"] and s["holder"]["pid"] != pid \
            and s["agents_monitored"] == AGENTS
    window(httpd, emulator, db, report, "graceful restart (new generation takes over)",
           inject, recovered)


def test_sigkill_holder(httpd, emulator, db, report):
    def inject():
        pid = stream_status(httpd)["holder"]["pid"]
        httpd.kill_child(pid, signal.SIGKILL)
        return pid

    def recovered(pid):
        s = stream_status(httpd)
        return s["connected"] and s["holder"] and s["holder"]["pid"] != pid \
            and s["agents_monitored"] == AGENTS
    recovery = window(httpd, emulator, db, report, "SIGKILL of the holder child (failover)",
                      inject, recovered)
    assert recovery <= 20


def test_ground_truth_after_all(httpd, emulator, db):
    wait_connected(httpd, topics=AGENTS)
    wait_converged(db, emulator)
    assert duplicate_rows(db) == []


def test_no_channel_id_above_debug(httpd, emulator):
    """After every fault above (429/5xx on channel calls, lost and replaced channels,
    failover): no log line above debug names a channel by its id (a credential)."""
    ids = issued_channel_ids(emulator)
    assert len(ids) >= 2, ids
    leaked = loud_lines_naming(httpd, ids)
    assert not leaked, "channel ids above debug:\n" + "\n".join(leaked[:5])
