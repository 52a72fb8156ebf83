"""Channel renewal and token lifetime end to end (issue 17), in a real httpd against the
emulator with short lives: channels of CHANNEL_TTL s (gcmon renews a channel with a quarter
of a short life left: gc_mon_channel_margin) and tokens of TOKEN_LIFE s (renewed at
max(expires_in - 60 s, expires_in / 2)). For RUN s the test changes agents' states in the
emulator and makes admin status changes through a child, then checks, from the emulator's
socket log, request log and ground truth:

- every channel is renewed before it expires, at least 3 times, and the new channel's socket
  opens before the old one closes (no gap);
- no transition is lost: every state episode of the run is in the database;
- tokens are renewed before they expire, in the holder and on the request path: the emulator
  answers no 401 and issued a token per lifetime, every admin change succeeds;
- gcmon sends every body with the Content-Type the real API wants (no 415)."""
import time

import pytest

from conftest import CLIENT_SECRET
from httpd import Httpd
from stream_helpers import (StreamDB, explain_missing, missing_transitions, stream_conf,
                            wait_connected, wait_converged)

USERS = [f"rn-agent-{i}" for i in range(1, 7)]
ADMIN_USER = "rn-admin"              # changed through the admin API only (not monitored)
CHANNEL_TTL = 16                     # s: renewed with 4 s left, so every ~12 s
TOKEN_LIFE = 8                       # s: renewed after 4 s
RUN = 45                             # s: >= 3 channel renewals, >= 5 token lifetimes
STEP = 0.5                           # s between two state changes (each agent every 3 s)
PRESENCES = ["Available", "Break", "Busy", "Meeting"]
GCMON_CONF = stream_conf(users=USERS, extra="GcmonAdminActor anonymous\n")


@pytest.fixture(scope="module")
def run(emulator):
    emulator.config(heartbeat=1, channel_ttl=CHANNEL_TTL, token_expires=TOKEN_LIFE)
    emulator.add_agents([{"id": a, "name": a, "presence": "Available"} for a in USERS + [ADMIN_USER]])
    h = Httpd(emulator_url=emulator.url, gcmon_conf=GCMON_CONF,
              env={"GCMON_TEST_SECRET": CLIENT_SECRET}, start_servers=2)
    h.start()
    h.mark_log()
    try:
        wait_connected(h, topics=len(USERS))
        since = emulator.stats()["last_seq"]
        tokens_before = emulator.stats()["tokens_issued"]
        t_start = time.time()
        admin = []
        i = 0
        while time.time() - t_start < RUN:
            uid = USERS[i % len(USERS)]
            emulator.set_state(uid, presence=PRESENCES[(i // len(USERS) + 1) % len(PRESENCES)])
            if i % 4 == 0:
                target = "Break" if (i // 4) % 2 == 0 else "Available"
                r = h.admin("PUT", f"/gcmon/api/v1/admin/agents/{ADMIN_USER}/status",
                            body={"status": target})
                admin.append((round(time.time() - t_start, 1), target, r.status))
            i += 1
            time.sleep(STEP)         # the pace of the load, not a synchronisation
        t_end = time.time()
        db = StreamDB(h.db)
        wait_converged(db, emulator, ids=set(USERS))
        yield {"httpd": h, "db": db, "since": since, "t_start": t_start, "t_end": t_end,
               "admin": admin, "tokens": emulator.stats()["tokens_issued"] - tokens_before}
    finally:
        h.cleanup()


def gcmon_channels(log, t_start, t_end):
    """[(channel, opened_at, closed_at or None, expires)] of the sockets in the window, in
    opening order."""
    out = {}
    for e in log:
        if e["event"] == "open":
            out.setdefault(e["channel"], [e["at"], None, e["expires"]])
        elif e["event"] == "close" and e["channel"] in out:
            out[e["channel"]][1] = e["at"]
            out[e["channel"]][2] = e["expires"]
    rows = sorted(((c, o, cl, ex) for c, (o, cl, ex) in out.items()), key=lambda r: r[1])
    return [r for r in rows if r[2] is None or r[2] >= t_start]


def test_channels_renewed_before_expiry_without_gap(run, emulator, report):
    log = emulator.ws_log()
    rows = gcmon_channels(log, run["t_start"], run["t_end"])
    renewals = len(rows) - 1
    assert renewals >= 3, rows
    for (old, _, closed, expires), (new, opened, _, _) in zip(rows, rows[1:]):
        assert closed is not None, (old, rows)
        assert opened <= closed, f"gap: {new} opened {opened - closed:.3f} s after {old} closed"
        assert closed < expires, f"{old} closed {closed - expires:.3f} s after it expired"
    # never did a channel expire under a connected socket
    assert [e for e in log if e["event"] == "expired" and e["connected"]] == []
    overlaps = [round(closed - opened, 3) for (_, _, closed, _), (_, opened, _, _) in zip(rows, rows[1:])]
    report(f"renewal: {renewals} channel renewals in {RUN} s (life {CHANNEL_TTL} s), "
           f"socket overlap {min(overlaps)}..{max(overlaps)} s")


def test_no_transition_lost_across_renewals(run, emulator):
    agents = [a for a in emulator.agents() if a["id"] in USERS]
    changes = sum(len(a["timeline"]) for a in agents)
    assert changes >= RUN / STEP * 0.8, changes
    missing = missing_transitions(run["db"], agents, run["t_start"], run["t_end"], min_duration=2.0)
    assert missing == [], explain_missing(run["db"], agents, missing)


def test_tokens_renewed_before_expiry(run, emulator, report):
    answered = emulator.requests(since=run["since"])
    assert answered, "the emulator logged no request"
    unauthorized = [(e["method"], e["path"], e["status"]) for e in answered if e["status"] == 401]
    assert unauthorized == []
    # Tokens are fetched when a call needs one: each bearer token is used only within its
    # life, and the run needed several of them (the holder's and the children's).
    used = {}
    for e in answered:
        scheme, _, value = e["headers"].get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            used.setdefault(value, []).append(e["at"])
    assert len(used) >= 3 and run["tokens"] >= 3, (len(used), run["tokens"])
    spans = [max(ts) - min(ts) for ts in used.values()]
    assert max(spans) < TOKEN_LIFE, spans
    assert len(run["admin"]) >= RUN / STEP / 4 - 1
    assert [a for a in run["admin"] if a[2] != 200] == [], run["admin"]
    report(f"renewal: {run['tokens']} tokens of {TOKEN_LIFE} s in {RUN} s, {len(used)} used, "
           f"longest use {max(spans):.1f} s, {len(answered)} API requests, no 401")


def test_error_log_clean(run):
    """Renewals and token fetches are routine: no warning or error line in the whole run."""
    bad = run["httpd"].bad_lines(())
    assert not bad, "unexpected error_log lines:\n" + "\n".join(bad)


def test_bodies_sent_with_the_right_content_type(run, emulator):
    assert emulator.stats()["unsupported_media_type"] == 0
    answered = emulator.requests(since=run["since"])
    assert [e for e in answered if e["status"] == 415] == []
    tokens = [e for e in answered if e["path"] == "/oauth/token"]
    assert tokens and all(e["headers"].get("Content-Type", "").startswith(
        "application/x-www-form-urlencoded") for e in tokens)
