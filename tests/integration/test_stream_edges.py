"""mod_gcmon_stream at its edges: topics Genesys Cloud rejects, more agents than
20 channels can carry, and history retention. Each test runs its own server."""
import contextlib
import time

import pytest

from conftest import CLIENT_SECRET
from dbseed import Seeder
from httpd import Httpd, wait_for
from stream_helpers import StreamDB, now_ms, stream_conf, stream_status, wait_connected

DAY_MS = 86400000


@contextlib.contextmanager
def server(emulator, conf, allow=()):
    # allow: lines this server is expected to write, up to its stop included.
    h = Httpd(emulator_url=emulator.url, gcmon_conf=conf,
              env={"GCMON_TEST_SECRET": CLIENT_SECRET}, allow_log=allow)
    h.start()
    try:
        yield h
        bad = h.bad_lines(allow)
        assert not bad, "unexpected error_log lines:\n" + "\n".join(bad)
    finally:
        h.cleanup()


def agents(emulator, ids):
    emulator.add_agents([{"id": a, "name": f"Agent {a}", "presence": "Available"}
                         for a in ids])


def test_rejected_topic_is_logged_with_its_reason(emulator):
    agents(emulator, ["edge-known"])
    conf = stream_conf(users=["edge-known", "edge-ghost"])
    with server(emulator, conf, allow=(r"GCM2229",)) as h:
        # The rejected agent is not counted as monitored.
        wait_connected(h, topics=1)
        topic = "v2.users.edge-ghost.activity"
        wait_for(lambda: "GCM2228" in h.read_log(), timeout=10, what="rejection logged")
        line = next(x for x in h.read_log().splitlines() if "GCM2228" in x)
        assert topic in line and "User edge-ghost not found" in line, line
        assert "[gcmon_stream:warn]" in line, line
        s = stream_status(h)
        assert "rejected" in (s["last_error"] or ""), s
        # The known agent is monitored all the same.
        emulator.set_state("edge-known", presence="Meal")
        db = StreamDB(h.db)
        wait_for(lambda: db.current_states().get("edge-known") == "Meal", timeout=5)


def test_more_agents_than_twenty_channels_carry(emulator):
    """Queue members are only known at run time (a static GcmonMonitorUser list
    that cannot fit is refused by apache2 -t: test_stream.py)."""
    ids = [f"edge-many-{i:02d}" for i in range(22)]
    agents(emulator, ids)
    emulator.add_queues([{"id": "edge-big-q", "name": "Big", "members": ids}])
    conf = stream_conf(queues=["edge-big-q"], extra="GcmonTopicsPerChannel 1\n")
    with server(emulator, conf, allow=(r"GCM2240",)) as h:
        def twenty():
            s = stream_status(h)
            return s if s["connected"] and len(s["channels"]) == 20 \
                and all(c["connected"] for c in s["channels"]) else None
        s = wait_for(twenty, timeout=60, what="20 channels connected")
        assert sum(c["topics"] for c in s["channels"]) == 20
        assert "2 agent(s) are NOT monitored" in s["last_error"], s
        log = [x for x in h.read_log().splitlines() if "GCM2240" in x]
        assert log and "[gcmon_stream:error]" in log[0], log
        assert "GcmonTopicsPerChannel" in log[0]


def test_retention_prunes_old_history(emulator):
    agents(emulator, ["edge-ret"])
    conf = stream_conf(users=["edge-ret"], extra="GcmonRetention 2d\n")
    with server(emulator, conf) as h:
        wait_connected(h, topics=1)
        now = now_ms()
        rows = [{"user_id": "edge-old", "state": "Away", "event_at": now - 3 * DAY_MS - i,
                 "ingested_at": now - 3 * DAY_MS, "source": "stream"} for i in range(7)]
        rows += [{"user_id": "edge-old", "state": "Busy", "event_at": now - DAY_MS - i,
                  "ingested_at": now - DAY_MS, "source": "stream"} for i in range(3)]
        seeder = Seeder(h)
        seeder.history(rows)

        def count(where):
            return seeder.query("SELECT count(*) FROM gcmon_history WHERE user_id = "
                                "'edge-old' AND " + where)[0][0]
        assert count("state = 'Away'") == 7
        # A new holder prunes a few seconds after it takes the lead.
        h.graceful()
        wait_for(lambda: count("state = 'Away'") == 0, timeout=30, interval=0.25,
                 what="rows older than the retention pruned")
        assert count("state = 'Busy'") == 3
        assert "pruned 7 history row(s) older than the retention" in h.read_log()
