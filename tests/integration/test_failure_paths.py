"""Failure paths the docs promise but no other suite runs (issue 17), against a real
apache2 and the emulator; each test asserts the behaviour AND its log line:

- queue-member reads answering 5xx remove nobody and are retried (GCM2243,
  docs/stream.md "Who is monitored"); an unknown queue (404) is logged (GCM2242) and
  contributes nobody;
- the per-agent status lock (docs/api.md, PUT /v1/admin/agents/{id}/status): a change
  that finds the lock held past its wait answers 409 `status_change_in_progress`; a
  child SIGKILLed mid-change leaves its lock, which blocks changes until it expires and
  is then taken over (the 5-minute TTL is aged in the database, not waited for);
- the holder steps down after losing its database for 12 s (GCM2103, docs/logging.md)
  and another takes over once it is back (httpd.db.outage(), gcdb.py — SQLite: an
  exclusive lock held by another process; PostgreSQL: the database refuses connections
  and gcmon's are ended). The module runs on both databases (make integration-pgsql)."""
import concurrent.futures
import re
import time
import uuid

import pytest

from conftest import CLIENT_SECRET
from httpd import Httpd, assert_problem, wait_for
from stream_helpers import stream_conf, stream_status, wait_connected

QUEUE = "fp-q1"
MISSING = "fp-missing-q"
MEMBERS = [f"fp-agent-{i}" for i in range(1, 4)]
USER = "fp-user-1"
MEMBERS_PATH = rf"^/api/v2/routing/queues/{QUEUE}/members"
GCMON_CONF = stream_conf(queues=[QUEUE, MISSING], users=[USER], extra=(
    "GcmonMembershipRefresh 2s\n"
    "GcmonAdminActor anonymous\n"
    "GcmonRequestTimeout 2s\n"))          # the status lock waits 5 s (its minimum)
API = "/gcmon/api/v1"


@pytest.fixture(scope="module")
def httpd(emulator):
    emulator.config(heartbeat=1)
    emulator.add_agents([{"id": a, "name": a, "presence": "Available"}
                         for a in MEMBERS + [USER]])
    emulator.add_queues([{"id": QUEUE, "name": "FP Q1", "members": MEMBERS}])
    h = Httpd(emulator_url=emulator.url, gcmon_conf=GCMON_CONF,
              env={"GCMON_TEST_SECRET": CLIENT_SECRET})
    h.start()
    yield h
    h.cleanup()


@pytest.fixture(autouse=True)
def clean(emulator):
    emulator.clear_faults()
    yield
    emulator.clear_faults()


def monitored(httpd):
    return stream_status(httpd)["agents_monitored"]


def log_has(httpd, pattern, since=0):
    return re.search(pattern, httpd.read_log()[since:])


# ------------------------------------------------------------------ queue members

def test_unknown_queue_is_logged_and_contributes_nobody(httpd, emulator):
    wait_connected(httpd, topics=len(MEMBERS) + 1)
    line = wait_for(lambda: log_has(httpd, rf"\[gcmon_stream:warn\].*GCM2242.*{MISSING}.*"),
                    timeout=10, what="GCM2242 naming the missing queue")
    assert "does not exist" in line.group(0)
    assert emulator.requests(path=rf"^/api/v2/routing/queues/{MISSING}/members")
    assert monitored(httpd) == len(MEMBERS) + 1


@pytest.mark.allow_log(r"GCM1\d\d\b")       # the upstream client's own report of the 503s
def test_members_5xx_removes_nobody_and_is_retried(httpd, emulator):
    wait_connected(httpd, topics=len(MEMBERS) + 1)
    mark = len(httpd.read_log())
    emulator.fault(MEMBERS_PATH, status=503, count=1000, method="GET")
    emulator.clear_requests()
    wait_for(lambda: log_has(httpd, rf"\[gcmon_stream:warn\].*GCM2243.*{QUEUE}", mark),
             timeout=15, what="GCM2243 naming the queue")
    failed = len(emulator.requests(path=MEMBERS_PATH))
    assert failed >= 1
    # Nobody left monitoring while the queue cannot be read, over several passes.
    wait_for(lambda: log_has(httpd, r"GCM2243", mark) and
             len(re.findall(r"GCM2243", httpd.read_log()[mark:])) >= 2,
             timeout=15, what="a second failed pass")
    assert monitored(httpd) == len(MEMBERS) + 1
    assert wait_connected(httpd)["agents_monitored"] == len(MEMBERS) + 1
    # Once the queue answers again, the read is retried and succeeds.
    emulator.clear_faults()
    emulator.clear_requests()
    wait_for(lambda: any(r["status"] == 200 for r in emulator.requests(path=MEMBERS_PATH)),
             timeout=15, what="a successful re-read")
    assert monitored(httpd) == len(MEMBERS) + 1


# ------------------------------------------------------------------ status lock

def status_path(uid):
    return f"{API}/admin/agents/{uid}/status"


def new_agent(emulator):
    uid = f"fp-st-{uuid.uuid4().hex[:8]}"
    emulator.add_agents([{"id": uid, "name": uid, "presence": "Available"}])
    return uid


def lock_row(httpd, uid):
    rows = httpd.db.query("SELECT holder, expires_at FROM gcmon_lease WHERE name = ?",
                          ("agent-status:" + uid,))
    return rows[0] if rows else None


def test_lock_held_too_long_is_409(httpd, emulator):
    uid = new_agent(emulator)
    far = int(time.time() * 1000) + 600_000
    httpd.db.execute("INSERT INTO gcmon_lease (name, holder, expires_at, acquired_at) "
                     "VALUES (?, ?, ?, ?)",
                     [("agent-status:" + uid, "api:1:1:000000000000", far,
                       int(time.time() * 1000))])
    t0 = time.monotonic()
    r = httpd.admin("PUT", status_path(uid), body={"status": "Break"})
    waited = time.monotonic() - t0
    assert_problem(r, 409, "status_change_in_progress")
    assert 4.5 <= waited < 15, waited               # waited 5 s (its minimum), no more
    assert emulator.agent(uid)["presence"] == "Available"
    assert not emulator.requests(path=rf"/users/{uid}/presences", method="PATCH")


def test_crashed_childs_lock_is_taken_over(httpd, emulator):
    uid = new_agent(emulator)
    assert httpd.get(status_path(uid)).status == 200       # presence definitions cached
    emulator.fault(rf"^/api/v2/users/{uid}/presences/purecloud$", method="PATCH", delay=30,
                   count=1)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    fut = pool.submit(lambda: httpd.admin("PUT", status_path(uid), body={"status": "Break"},
                                          timeout=60))
    row = wait_for(lambda: lock_row(httpd, uid), timeout=10, what="the change's lock")
    holder_pid = int(row["holder"].split(":")[1])
    assert holder_pid in httpd.child_pids()
    wait_for(lambda: emulator.requests(path=rf"/users/{uid}/presences", method="PATCH"),
             timeout=10, what="the PATCH under way")
    httpd.kill_child(holder_pid)
    with pytest.raises(Exception):
        fut.result(timeout=30)                  # the connection died with the child
    pool.shutdown()
    # The dead child's lock stays: a change now waits and answers 409.
    assert lock_row(httpd, uid)["holder"] == row["holder"]
    assert lock_row(httpd, uid)["expires_at"] > int(time.time() * 1000) + 200_000
    wait_for(lambda: httpd.get(f"{API}/health").status == 200, timeout=10)
    r = httpd.admin("PUT", status_path(uid), body={"status": "Meal"})
    assert_problem(r, 409, "status_change_in_progress")
    # Five minutes later (aged here) the lock has expired: the next change takes it over.
    httpd.db.execute("UPDATE gcmon_lease SET expires_at = ? WHERE name = ?",
                     [(int(time.time() * 1000) - 1, "agent-status:" + uid)])
    r = httpd.admin("PUT", status_path(uid), body={"status": "Meal"})
    assert r.status == 200, r
    assert r.json["status"] == "Meal"
    assert emulator.agent(uid)["presence"] == "Meal"
    # ...and releases it when done.
    wait_for(lambda: (lock_row(httpd, uid) or {"expires_at": 0})["expires_at"] == 0,
             timeout=5, what="the lock released")


# ------------------------------------------------------------------ holder loses its db

# mod_dbd's own lines while PostgreSQL refuses connections (AH00629/AH00639/AH02655).
@pytest.mark.allow_log(r"GCM2103\b", r"GCM(2\d\d\d|4\d\d)\b.*(database|lock|busy|timeout)",
                       r"\[dbd:error\].*(not currently accepting connections|"
                       r"AH02655: Failed to acquire DBD connection)")
def test_holder_steps_down_without_database_and_another_takes_over(httpd, report):
    before = wait_connected(httpd)["holder"]
    mark = len(httpd.read_log())
    with httpd.db.outage():
        line = wait_for(lambda: log_has(httpd, r"\[gcmon_stream:error\].*GCM2103.*", mark),
                        timeout=30, what="GCM2103: the holder steps down")
        seen = []

        def stepped_down():
            s = stream_status(httpd)
            seen.append((s["connected"], s["holder"]))
            return not s["connected"] or (s["holder"] or {}).get("id") != before["id"]
        try:
            wait_for(stepped_down, timeout=10, what="no holder while the database is gone")
        except TimeoutError:
            raise AssertionError(f"{before} {seen[-3:]}\n" + httpd.read_log()[mark:][-4000:])
    back = time.monotonic()
    assert line

    def new_holder():
        s = stream_status(httpd)
        return s["connected"] and s["holder"] and s["holder"]["id"] != before["id"] and s
    try:
        after = wait_for(new_holder, timeout=30, what="a new holder after the database is back")
    except TimeoutError:
        raise AssertionError(str(stream_status(httpd)) + httpd.read_log()[mark:][-8000:])
    assert after["agents_monitored"] == len(MEMBERS) + 1
    report(f"failure paths: a new holder {time.monotonic() - back:.1f} s after the database "
           f"came back (the monitors retry it at most 10 s apart)")
