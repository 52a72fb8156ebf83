"""The holder's thread across the server's life: 20 graceful restarts leak neither
threads nor file descriptors (every new holder looks like the first, the parent's
descriptors stay put, old children all exit), and stop is prompt."""
import os
import re
import socket
import time

import pytest

from conftest import CLIENT_SECRET
from httpd import Httpd, wait_for
from stream_helpers import (StreamDB, proc_fds, proc_threads, stream_conf, stream_status,
                            wait_connected, wait_converged)

USERS = [f"life-agent-{i}" for i in range(1, 9)]
GCMON_CONF = stream_conf(users=USERS)
RESTARTS = 20


@pytest.fixture(scope="module")
def httpd(emulator):
    # Tokens that last (conftest's expire in 120 s): this module compares a holder's
    # descriptors across re-elections, and a token renewal leaves libcurl a kept-alive
    # connection to the login host for a while (not a leak; test_renewal.py runs them).
    emulator.config(heartbeat=1, token_expires=86400)
    emulator.add_agents([{"id": a, "name": a, "presence": "Available"} for a in USERS])
    h = Httpd(emulator_url=emulator.url, gcmon_conf=GCMON_CONF,
              env={"GCMON_TEST_SECRET": CLIENT_SECRET}, start_servers=2)
    h.start()
    yield h
    h.cleanup()


def holder_connected(httpd, not_pid=None):
    def ok():
        s = stream_status(httpd)
        if s["connected"] and s["holder"] and s["holder"]["pid"] != not_pid \
                and s["agents_monitored"] == len(USERS):
            return s
        return None
    return ok


def settled(pid, samples=5):
    """Threads and fds of a holder: the least over a few samples 50 ms apart, so a
    request of ours being served by that child at that instant does not count."""
    seen = []
    for _ in range(samples):
        seen.append((proc_threads(pid), proc_fds(pid)))
        time.sleep(0.05)
    return min(t for t, _ in seen), min(f for _, f in seen)


def test_graceful_restarts_leak_nothing(httpd, emulator, report):
    s = wait_connected(httpd, topics=len(USERS))
    parent = httpd.proc.pid
    parent_fds = proc_fds(parent)
    seen = []
    times = []
    pid = s["holder"]["pid"]
    for i in range(RESTARTS):
        t0 = time.monotonic()
        httpd.graceful()
        s = wait_for(holder_connected(httpd, not_pid=pid), timeout=20, interval=0.05,
                     what=f"holder after restart {i + 1}")
        times.append(time.monotonic() - t0)
        pid = s["holder"]["pid"]
        # Every child of the old generations is gone before the next restart.
        wait_for(lambda: len(httpd.child_pids()) <= 2, timeout=20,
                 what="old generation exited")
        emulator.set_state(USERS[i % len(USERS)], presence="Break" if i % 2 else "Available")
        seen.append(settled(pid))
    threads = [t for t, _ in seen if t is not None]
    fds = [f for _, f in seen if f is not None]
    report(f"stream: {RESTARTS} graceful restarts: holder threads {min(threads)}..{max(threads)}"
           f", fds {min(fds) if fds else '?'}..{max(fds) if fds else '?'}, parent fds "
           f"{parent_fds} → {proc_fds(parent)}, takeover {min(times):.2f}..{max(times):.2f} s")
    assert max(threads) - min(threads) <= 1, seen
    if fds:
        assert max(fds) - min(fds) <= 2, seen
    assert proc_fds(parent) == parent_fds


def test_reelections_in_one_process_leak_nothing(httpd, emulator, report):
    """Take the lease away from the holder (another 'host' holds it for 3.5 s, longer
    than the renewal interval, so the holder cannot simply re-take it), again
    and again: with two children, each process becomes holder several times; each
    time it must look exactly as the first time (threads, descriptors)."""
    per_pid = {}
    rounds = 5
    for i in range(rounds):
        s = wait_for(holder_connected(httpd), timeout=30, what=f"holder, round {i + 1}")
        pid, hid = s["holder"]["pid"], s["holder"]["id"]
        per_pid.setdefault(pid, []).append(settled(pid))
        httpd.db.execute("UPDATE gcmon_lease SET holder = ?, expires_at = ? WHERE name = ?",
                         [(f"elsewhere:1:{i:04x}", int(time.time() * 1000) + 3500, "stream")])
        wait_for(lambda: (stream_status(httpd)["holder"] or {}).get("id") != hid, timeout=10,
                 what="the holder steps down")
    wait_for(holder_connected(httpd), timeout=30, what="final holder")
    repeated = {p: v for p, v in per_pid.items() if len(v) > 1}
    report(f"stream: {rounds} forced re-elections: " + ", ".join(
        f"pid {p}: {len(v)}× threads {sorted({t for t, _ in v})} fds {sorted({f for _, f in v})}"
        for p, v in per_pid.items()))
    assert repeated, per_pid
    for p, v in repeated.items():
        assert len({t for t, _ in v}) == 1 and len({f for _, f in v}) == 1, (p, v)
    assert "GCM2102" in httpd.read_log()


def test_state_still_correct(httpd, emulator):
    db = StreamDB(httpd.db)
    wait_connected(httpd, topics=len(USERS))
    wait_converged(db, emulator, ids=set(USERS))


def test_stop_is_prompt(httpd, report):
    wait_connected(httpd, topics=len(USERS))
    t0 = time.monotonic()
    httpd.stop(timeout=15)          # asserts no process is left behind
    elapsed = time.monotonic() - t0
    report(f"stream: apache2 -k stop with a connected holder: {elapsed:.2f} s")
    assert elapsed < 10
    assert "GCM2010" not in httpd.read_log()


def test_node_name_kept_across_restarts(httpd):
    """The holder id's node part is this instance's node name: the host name and
    a random suffix, kept in the runtime directory, so the same after a full
    stop and start; GcmonNodeName replaces it."""
    path = os.path.join(httpd.root, "run", "gcmon-node")
    with open(path) as f:
        node = f.read().strip()
    assert re.fullmatch(re.escape(socket.gethostname()[:54].replace(":", "_"))
                        + r"-[0-9a-f]{8}", node), node
    httpd.start()
    try:
        s = wait_for(holder_connected(httpd), timeout=20, what="a holder after the start")
        assert s["holder"]["id"].startswith(node + ":"), (node, s["holder"])
        assert s["holder"]["host"] == node, s["holder"]
    finally:
        httpd.stop(timeout=15)
    httpd.write_config(gcmon_conf=GCMON_CONF + "GcmonNodeName web1.cc.example\n")
    httpd.start()
    s = wait_for(holder_connected(httpd), timeout=20, what="a holder with GcmonNodeName")
    assert s["holder"]["id"].startswith("web1.cc.example:"), s["holder"]
    with open(path) as f:
        assert f.read().strip() == node             # the kept name is left alone
