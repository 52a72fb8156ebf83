"""Idle alerts and their Slack delivery through the outbox (SPEC §2 "Idle alerts",
"Outbound sync webhooks", §3.2, §5.2, §6), against a capturing sink
(webhook_sink.py) that stands in for Slack.

An agent who stays in a configured state for the threshold raises one alert
within 1 s of the crossing (the crossing is the agent's transition time — the
emulator's answer to the state change — plus the threshold), once per episode
or every <repeat>, never for an agent who left before, never twice across a
graceful restart, a restart or a SIGKILL of the holder. Each alert is POSTed to
Slack as Block Kit, signed, retried with exponential backoff (Retry-After
honoured) until a 2xx or GcmonWebhookMaxAge, and listed by /v1/alerts with its
delivery ("disabled" without a Slack webhook); the board shows the open alert.
Without GcmonIdleAlert the rules are Available 15m and IDLE 15m (tested with
episodes the emulator back-dates). The webhook URL is a secret: it shows up in
no log, API response or database; apache2 -t refuses bad alert/webhook
directives naming them.

Each test drives its own agents (the main server's all start Busy, which has
no rule); the default-rules, no-Slack and max-age cases run servers of their
own. Thresholds are seconds, so the module runs in about a minute."""
import contextlib
import hashlib
import hmac
import json
import re
import signal
import statistics
import time
import urllib.parse
import uuid

import pytest

from conftest import CLIENT_SECRET
from httpd import Httpd, wait_for
from stream_helpers import StreamDB, ms, stream_conf, stream_status, wait_connected, \
    wait_converged
from webhook_sink import WebhookSink

API = "/gcmon/api/v1"
ALERTS = API + "/alerts"
AGENTS = API + "/agents"

# The Slack URL is a secret; its last path part is the token Slack issues.
TOKEN = "XXXX" + uuid.uuid4().hex
SLACK_PATH = f"/services/T000/B000/{TOKEN}"
AGE_TOKEN = "XXXX" + uuid.uuid4().hex
AGE_PATH = f"/services/T000/B001/{AGE_TOKEN}"
DEF_TOKEN = "XXXX" + uuid.uuid4().hex
DEF_PATH = f"/services/T000/B002/{DEF_TOKEN}"
HOOK_SECRET = "hook-" + uuid.uuid4().hex

AVAILABLE_S = 3                     # GcmonIdleAlert Available 3s
BREAK_S, BREAK_REPEAT_S = 2, 2      # GcmonIdleAlert Break 2s 2s
WITHIN_S = 1.0                      # an alert is raised within 1 s of the crossing
EARLY_S = 0.01                      # event times are kept to the millisecond


def ids(role, n):
    return [f"alerts-{role}-{i}" for i in range(1, n + 1)]


LAT = ids("lat", 3)
LEAVER = "alerts-leaver-1"
REP = "alerts-rep-1"
RETRY = "alerts-retry-1"
RA = "alerts-ra-1"
SIG = "alerts-sig-1"
RESTART = {kind: ids(kind, 2) for kind in ("graceful", "restart", "sigkill")}
USERS = LAT + [LEAVER, REP, RETRY, RA, SIG] + [u for v in RESTART.values() for u in v]
AGE = "alerts-age-1"
NOSLACK = "alerts-noslack-1"
LONGBREAK = "alerts-noslack-2"
DEF = {"avail": "alerts-def-avail", "idle": "alerts-def-idle", "break": "alerts-def-break",
       "young": "alerts-def-young"}
NAMES = {u: "Agent " + u[len("alerts-"):]
         for u in USERS + [AGE, NOSLACK, LONGBREAK] + list(DEF.values())}
NAMES[LAT[0]] = "Zoë \"Z\" O'Brien"     # escaping on the way to Slack

RULES = (f"GcmonIdleAlert Available {AVAILABLE_S}s\n"
         f"GcmonIdleAlert Break {BREAK_S}s {BREAK_REPEAT_S}s\n")


def alert_conf(users, max_age, rules=RULES):
    return stream_conf(users=users, extra=rules +
                       "GcmonSlackWebhook env:GCMON_TEST_SLACK\n"
                       "GcmonWebhookSecret env:GCMON_TEST_HOOK_SECRET\n"
                       f"GcmonWebhookMaxAge {max_age}\n")


GCMON_CONF = alert_conf(USERS, "10m")


def new_server(emulator, sink, users, path, max_age, rules=RULES):
    return Httpd(emulator_url=emulator.url, gcmon_conf=alert_conf(users, max_age, rules),
                 env={"GCMON_TEST_SECRET": CLIENT_SECRET,
                      "GCMON_TEST_SLACK": sink.url(path),
                      "GCMON_TEST_HOOK_SECRET": HOOK_SECRET})


def add_agents(emulator, users):
    emulator.add_agents([{"id": u, "name": NAMES[u], "presence": "Busy"} for u in users])


@pytest.fixture(scope="module")
def sink():
    s = WebhookSink().start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def sink_healthy(sink):
    sink.reset_faults()
    yield
    sink.reset_faults()


@pytest.fixture(scope="module")
def httpd(emulator, sink):
    emulator.config(heartbeat=1)
    add_agents(emulator, USERS)
    h = new_server(emulator, sink, USERS, SLACK_PATH, "10m")
    h.start()
    yield h
    h.cleanup()


@pytest.fixture(scope="module")
def db(httpd):
    d = StreamDB(httpd.db)
    wait_for(d.exists, timeout=20, what="database file")
    return d


@contextlib.contextmanager
def second_server(emulator, sink, users, path, max_age, rules=RULES, allow=()):
    h = new_server(emulator, sink, users, path, max_age, rules)
    h.start()
    try:
        yield h
        bad = h.bad_lines(allow)
        assert not bad, "unexpected error_log lines:\n" + "\n".join(bad)
    finally:
        h.cleanup()


# ------------------------------------------------------------------ helpers

def ready(httpd, db, emulator, users=USERS):
    s = wait_connected(httpd, topics=len(users))
    wait_converged(db, emulator, ids=set(users))
    return s


def enter(emulator, uid, presence):
    """Change the agent's presence; returns the transition time (epoch s) as
    gcmon stores it: the later of presence modifiedDate and routing startTime."""
    r = emulator.set_state(uid, presence=presence)
    assert r["changed"], r
    times = [ms(t) for t in (r.get("presence_modified"), r.get("routing_start")) if t]
    return max(times) / 1000


def pause_until(t):
    """Wait for a point in time that is part of the scenario itself (an agent
    leaving at ~2 s; the end of a bounded negative observation). Never used to
    wait for something that can be polled."""
    d = t - time.time()
    if d > 0:
        time.sleep(d)


def posts(sink, uid, path=SLACK_PATH):
    """Every request the sink got for this agent's alerts (ids are not prefixes
    of one another)."""
    return [r for r in sink.requests(path) if uid.encode() in r.body]


def delivered(sink, uid, path=SLACK_PATH):
    return [r for r in posts(sink, uid, path) if r.ok]


def alerts(h, uid=None, **params):
    if uid:
        params["user_id"] = uid
    params.setdefault("limit", 100)
    r = h.get(ALERTS + "?" + urllib.parse.urlencode(params))
    assert r.status == 200, r
    return r.json["data"]


def board(h):
    r = h.get(AGENTS)
    assert r.status == 200, r
    return {d["user_id"]: d for d in r.json["data"]}


def alert_rows(db, uid):
    return db.query("SELECT * FROM gcmon_alerts WHERE user_id = ? ORDER BY seq, id", (uid,))


def delta(after, before, name, **labels):
    return Httpd.metric(after, name, **labels) - Httpd.metric(before, name, **labels)


def when_delivered(h, uid, n=1):
    """The agent's n alerts, once every one of them shows delivery delivered."""
    def ok():
        a = alerts(h, uid)
        return a if len(a) == n and all(x["delivery"]["status"] == "delivered" for x in a) \
            else None
    return wait_for(ok, timeout=5, what=f"{uid}: {n} alert(s) delivered")


def when_cleared(h, uid):
    """Clearing follows the agent's next stored transition. The bound allows for
    a socket replaced by the watchdog (2 s + 1 s timers) on a loaded machine,
    whose resync then stores the transition."""
    def ok():
        a = alerts(h, uid)
        return a if a and all(x["cleared_at"] for x in a) \
            and board(h)[uid]["alert"] is None else None
    try:
        return wait_for(ok, timeout=15, what=f"{uid}: alerts cleared, board alert null")
    except TimeoutError as e:
        rows = h.get(f"/gcmon/api/v1/agent-status/history?user_id={uid}&limit=5").json
        raise AssertionError(f"{e}: alerts {alerts(h, uid)}; board {board(h).get(uid)}; "
                             f"history {rows.get('data')}; stream {stream_status(h)}\n"
                             "error_log tail:\n"
                             + "\n".join(h.read_log().splitlines()[-60:])) from None


def shows_duration(text, seconds):
    """Some human rendering of a whole number of seconds: 3s, 3 s, 3 sec,
    3 seconds, 0:03, 00:00:03, 0m 3s; 15m, 15 min, 15:00, …"""
    if re.search(rf"(?<![\d.:]){seconds}\s*(s|sec|secs|second|seconds)\b", text) or \
            re.search(rf"(?<![\d.]){seconds // 60}:{seconds % 60:02d}(?![\d.])", text):
        return True
    return seconds % 60 == 0 and bool(
        re.search(rf"(?<![\d.:]){seconds // 60}\s*(m|min|mins|minute|minutes)\b", text))


def check_slack_body(r, uid, name, state, threshold_s):
    assert r.method == "POST", r
    ctype = (r.header("content-type") or "").split(";")[0].strip().lower()
    assert ctype == "application/json", r.headers
    b = json.loads(r.body.decode("utf-8"))
    assert isinstance(b.get("text"), str) and b["text"].strip(), b
    assert name in b["text"] or uid in b["text"], b["text"]
    blocks = b.get("blocks")
    assert isinstance(blocks, list), b
    header = [x for x in blocks if x.get("type") == "header"]
    section = [x for x in blocks if x.get("type") == "section" and x.get("fields")]
    assert len(header) == 1 and len(section) >= 1, blocks
    assert header[0]["text"]["type"] == "plain_text", header
    assert header[0]["text"]["text"].strip() and len(header[0]["text"]["text"]) <= 150, header
    fields = section[0]["fields"]
    assert 1 <= len(fields) <= 10, fields                 # Slack's limit per section
    assert all(f.get("type") in ("mrkdwn", "plain_text") and isinstance(f.get("text"), str)
               for f in fields), fields
    text = "\n".join(f["text"] for f in fields)
    for want in (name, uid, state):
        assert want in text, (want, text)
    assert shows_duration(text, threshold_s), f"threshold {threshold_s}s not shown: {text!r}"
    return b


def signature(body):
    return "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


def explain(h, sink, users):
    """What the server and the sink saw (for failure messages)."""
    out = []
    for u in users:
        seen = [(round(r.at, 3), r.status) for r in posts(sink, u)]
        out.append(f"{u}: alerts {alerts(h, u)}; sink {seen}")
    out.append(f"stream {stream_status(h)}")
    out.append("error_log tail:\n" + "\n".join(h.read_log().splitlines()[-40:]))
    return "\n".join(out)


def ms_list(values):
    return f"max {max(values) * 1000:.0f} ms, median {statistics.median(values) * 1000:.0f} ms"


# ------------------------------------------------------------------ raising and clearing

def test_alert_within_1s_once_per_episode_then_cleared(httpd, emulator, db, sink, report):
    ready(httpd, db, emulator)
    m0 = httpd.metrics()
    since = {u: enter(emulator, u, "Available") for u in LAT + [LEAVER]}
    # The leaver leaves at ~2 s, before the 3 s threshold.
    pause_until(since[LEAVER] + 2.0)
    left = enter(emulator, LEAVER, "Busy")
    assert left - since[LEAVER] < AVAILABLE_S - 0.5, "the test machine was too slow to leave"
    for u in LAT:
        wait_for(lambda u=u: posts(sink, u), timeout=AVAILABLE_S + 5, what=f"Slack post for {u}")
    # Negative check, bounded: every alert due here (and the leaver's, had it
    # been raised) is due at since + 3 s and must be posted within 1 s of that;
    # half a second more covers the sink's clock. Waiting longer would only
    # slow the suite down: a late duplicate is what the restart tests look for.
    pause_until(max(since.values()) + AVAILABLE_S + WITHIN_S + 0.5)
    assert posts(sink, LEAVER) == [], "an alert for an agent who left before the threshold"
    assert alerts(httpd, LEAVER) == []
    lags = []
    for u in LAT:
        p = posts(sink, u)
        assert len(p) == 1, [(r.at, r.status) for r in p]
        r = p[0]
        crossing = since[u] + AVAILABLE_S
        lags.append(r.at - crossing)
        assert -EARLY_S <= r.at - crossing < WITHIN_S, (u, r.at - crossing)
        assert r.ok
        check_slack_body(r, u, NAMES[u], "Available", AVAILABLE_S)
        (a,) = when_delivered(httpd, u)
        assert a["user_id"] == u and a["user_name"] == NAMES[u], a
        assert a["state"] == "Available" and a["threshold_seconds"] == AVAILABLE_S, a
        assert a["cleared_at"] is None, a
        assert crossing - EARLY_S <= ms(a["raised_at"]) / 1000 <= r.at + EARLY_S, \
            (a, crossing, r.at)
        assert a["delivery"] == {"status": "delivered", "attempts": 1, "last_error": None}, a
        assert board(httpd)[u]["alert"] == {"id": a["id"], "raised_at": a["raised_at"],
                                             "threshold_seconds": AVAILABLE_S}
        rows = alert_rows(db, u)
        assert [(x["seq"], x["episode_at"]) for x in rows] == [(0, round(since[u] * 1000))], rows
    assert board(httpd)[LEAVER]["alert"] is None
    # Leaving the state clears the alert (and the board's field).
    gone = {u: enter(emulator, u, "Busy") for u in LAT}
    for u in LAT:
        (a,) = when_cleared(httpd, u)
        assert ms(a["cleared_at"]) / 1000 >= gone[u] - EARLY_S, (a, gone[u])
    m1 = wait_for(lambda: (lambda m: m if delta(m, m0, "gcmon_idle_alerts_total",
                                                result="cleared") >= len(LAT) else None)(
        httpd.metrics()), timeout=5, what="cleared alerts counted")
    assert delta(m1, m0, "gcmon_idle_alerts_total", result="raised") == len(LAT)
    assert delta(m1, m0, "gcmon_idle_alerts_total", result="cleared") == len(LAT)
    assert delta(m1, m0, "gcmon_webhook_deliveries_total", target="slack",
                 result="delivered") == len(LAT)
    assert delta(m1, m0, "gcmon_webhook_deliveries_total", target="slack", result="retry") == 0
    assert Httpd.metric(m1, "gcmon_outbox_pending") == 0
    report(f"idle alert: crossing → Slack post: {ms_list(lags)} over {len(lags)} alerts")


def test_repeat_realerts_every_interval_until_left(httpd, emulator, db, sink, report):
    ready(httpd, db, emulator)
    m0 = httpd.metrics()
    since = enter(emulator, REP, "Break")
    wait_for(lambda: len(posts(sink, REP)) >= 2, timeout=BREAK_S + BREAK_REPEAT_S + 4,
             what="the first alert and one repeat")
    left = enter(emulator, REP, "Busy")
    due = [since + BREAK_S + k * BREAK_REPEAT_S for k in range(20)]
    # Due long enough before leaving (1 s) → must have been raised; due after
    # leaving → must not; in between either.
    least = sum(1 for d in due if d <= left - WITHIN_S)
    most = sum(1 for d in due if d <= left + EARLY_S)
    # Negative check, bounded: the next repeat would have been due at most
    # BREAK_REPEAT_S after leaving, and posted within 1 s of that.
    pause_until(left + BREAK_REPEAT_S + WITHIN_S + 0.5)
    p = posts(sink, REP)
    assert least <= len(p) <= most, ([r.at - since for r in p], left - since)
    lags = [r.at - due[k] for k, r in enumerate(p)]
    assert all(-EARLY_S <= x < WITHIN_S for x in lags), lags
    assert all(r.ok for r in p)
    for r in p:
        check_slack_body(r, REP, NAMES[REP], "Break", BREAK_S)
    assert len({r.body for r in p}) == len(p), "the repeats carry the same body"
    rows = alert_rows(db, REP)
    assert [x["seq"] for x in rows] == list(range(len(p))), rows
    assert {x["episode_at"] for x in rows} == {round(since * 1000)}, rows
    listed = when_cleared(httpd, REP)
    assert len(listed) == len(p)
    assert [x["raised_at"] for x in listed] == sorted((x["raised_at"] for x in listed),
                                                      reverse=True)   # newest first
    assert all(x["state"] == "Break" and x["threshold_seconds"] == BREAK_S for x in listed)
    assert all(ms(x["cleared_at"]) / 1000 >= left - EARLY_S for x in listed), listed
    assert len(alerts(httpd, REP, state="Break")) == len(p)
    assert alerts(httpd, REP, state="Available") == []
    when_delivered(httpd, REP, len(p))
    m1 = httpd.metrics()
    assert delta(m1, m0, "gcmon_idle_alerts_total", result="raised") == 1
    assert delta(m1, m0, "gcmon_idle_alerts_total", result="repeated") == len(p) - 1
    report(f"idle alert: repeat every {BREAK_REPEAT_S}s: {len(p)} posts, due → post "
           f"{ms_list(lags)}")


def iso_ago(seconds):
    t = time.time() - seconds
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def test_default_rules_available_and_idle_15m(emulator, sink, report):
    """No GcmonIdleAlert: Available 15m and IDLE 15m. The agents' episodes began
    before the server started (the emulator back-dates them), so a new holder
    must raise the overdue ones at once, once, and nothing for other states or
    for an episode not yet 15 minutes old."""
    emulator.add_agents([
        {"id": DEF["avail"], "name": NAMES[DEF["avail"]], "presence": "Available",
         "at": iso_ago(16 * 60)},
        {"id": DEF["idle"], "name": NAMES[DEF["idle"]], "presence": "OnQueue",
         "routing_status": "IDLE", "at": iso_ago(16 * 60)},
        {"id": DEF["break"], "name": NAMES[DEF["break"]], "presence": "Break",
         "at": iso_ago(60 * 60)},
        {"id": DEF["young"], "name": NAMES[DEF["young"]], "presence": "Available",
         "at": iso_ago(14 * 60)}])
    users = list(DEF.values())
    with second_server(emulator, sink, users, DEF_PATH, "10m", rules="") as h:
        s = wait_connected(h, topics=len(users))
        t_holder = ms(s["holder"]["since"]) / 1000
        for k, state in (("avail", "Available"), ("idle", "IDLE")):
            u = DEF[k]
            wait_for(lambda u=u: delivered(sink, u, DEF_PATH), timeout=10,
                     what=f"default-rule alert for {u}")
            (a,) = when_delivered(h, u)
            assert a["state"] == state and a["threshold_seconds"] == 900, a
            check_slack_body(posts(sink, u, DEF_PATH)[0], u, NAMES[u], state, 900)
        late = max(posts(sink, DEF[k], DEF_PATH)[0].at for k in ("avail", "idle")) - t_holder
        # Negative check, bounded: overdue episodes are raised as the holder
        # starts; a second raise or one for Break/the young episode would
        # follow within a second or two.
        time.sleep(2.0)
        for k in ("avail", "idle"):
            assert len(posts(sink, DEF[k], DEF_PATH)) == 1
        for k in ("break", "young"):
            assert posts(sink, DEF[k], DEF_PATH) == [] and alerts(h, DEF[k]) == []
        assert board(h)[DEF["avail"]]["alert"]["threshold_seconds"] == 900
        report(f"idle alert: default rules, episodes already overdue: posted {late:.2f} s "
               f"after the holder took the lead")


def test_without_slack_webhook_delivery_is_disabled(emulator, sink):
    """Alerts without GcmonSlackWebhook: stored and listed with delivery
    "disabled", nothing queued or sent. And a repeating rule whose episode
    began long before the holder started raises the latest repeat only, not
    every one it missed."""
    emulator.add_agents([{"id": NOSLACK, "name": NAMES[NOSLACK], "presence": "Available",
                          "at": iso_ago(60)},
                         {"id": LONGBREAK, "name": NAMES[LONGBREAK], "presence": "Break",
                          "at": iso_ago(61)}])
    h = Httpd(emulator_url=emulator.url,
              gcmon_conf=stream_conf(users=[NOSLACK, LONGBREAK], extra=RULES),
              env={"GCMON_TEST_SECRET": CLIENT_SECRET})
    h.start()
    try:
        wait_connected(h, topics=2)
        wait_for(lambda: alerts(h, LONGBREAK), timeout=5, what="the overdue repeat")
        rows = StreamDB(h.db).query(
            "SELECT seq FROM gcmon_alerts WHERE user_id = ? ORDER BY seq", (LONGBREAK,))
        # 61 s in Break with 2s + every 2s: seq 29 was due last; one more may
        # have come due while we looked.
        assert 1 <= len(rows) <= 2 and rows[0]["seq"] >= 28, rows
        (a,) = wait_for(lambda: alerts(h, NOSLACK), timeout=5, what="the overdue alert")
        assert a["delivery"] == {"status": "disabled", "attempts": 0, "last_error": None}, a
        assert board(h)[NOSLACK]["alert"]["id"] == a["id"]
        db = StreamDB(h.db)
        assert db.query("SELECT count(*) AS n FROM gcmon_outbox")[0]["n"] == 0
        assert Httpd.metric(h.metrics(), "gcmon_outbox_pending") == 0
        assert posts(sink, NOSLACK, "/") == []
        bad = h.bad_lines()
        assert not bad, "unexpected error_log lines:\n" + "\n".join(bad)
    finally:
        h.cleanup()


# ------------------------------------------------------------------ delivery failures

def test_failed_deliveries_retry_with_backoff(httpd, emulator, db, sink, report):
    """Two alerts at once: one meets 500 three times (backoff 1–1.25 s, 2–2.5 s,
    4–5 s), the other one 503 with Retry-After: 3 (which beats the 1 s step)."""
    ready(httpd, db, emulator)
    m0 = httpd.metrics()
    sink.fail_next(3, status=500, body_contains=RETRY)
    sink.fail_next(1, status=503, retry_after=3, body_contains=RA)
    since = {u: enter(emulator, u, "Available") for u in (RETRY, RA)}

    def pending():
        a = alerts(httpd, RETRY)
        return a if a and a[0]["delivery"]["status"] == "pending" \
            and a[0]["delivery"]["attempts"] >= 1 and a[0]["delivery"]["last_error"] else None
    (a,) = wait_for(pending, timeout=AVAILABLE_S + 4, interval=0.05,
                    what="a pending delivery after a failed attempt")
    assert "500" in a["delivery"]["last_error"], a
    assert TOKEN not in json.dumps(a), a
    wait_for(lambda: Httpd.metric(httpd.metrics(), "gcmon_outbox_pending") >= 1, timeout=2,
             what="gcmon_outbox_pending counts the delivery being retried")
    # Slowest legal schedule: 1.25 + 2.5 + 5 s, plus slack.
    wait_for(lambda: delivered(sink, RETRY) and delivered(sink, RA), timeout=12,
             interval=0.1, what="both delivered after their retries")
    p = posts(sink, RETRY)
    assert [r.status for r in p] == [500, 500, 500, 200], [(r.at, r.status) for r in p]
    assert -EARLY_S <= p[0].at - (since[RETRY] + AVAILABLE_S) < WITHIN_S
    gaps = [b.at - a.at for a, b in zip(p, p[1:])]
    # Lower bounds are the backoff's own (an attempt never comes early); the
    # upper bounds allow the jitter (+25 %) and up to 1 s of outbox polling.
    for gap, step in zip(gaps, (1, 2, 4)):
        assert step - 0.05 <= gap <= step * 1.25 + 1.0, gaps
    assert len({r.body for r in p}) == 1, "a retry must send the stored body unchanged"
    assert {r.header("x-gcmon-signature") for r in p} == {signature(p[0].body)}
    q = posts(sink, RA)
    assert [r.status for r in q] == [503, 200], [(r.at, r.status) for r in q]
    assert 3 - 0.05 <= q[1].at - q[0].at <= 3 * 1.25 + 1.0, q[1].at - q[0].at
    (a,) = when_delivered(httpd, RETRY)
    assert a["delivery"]["attempts"] == 4, a
    (b,) = when_delivered(httpd, RA)
    assert b["delivery"]["attempts"] == 2, b
    # A 2xx is final. Bounded: the outbox looks at least every second.
    time.sleep(1.5)
    assert len(posts(sink, RETRY)) == 4 and len(posts(sink, RA)) == 2
    m1 = httpd.metrics()
    assert delta(m1, m0, "gcmon_webhook_deliveries_total", target="slack", result="retry") == 4
    assert delta(m1, m0, "gcmon_webhook_deliveries_total", target="slack",
                 result="delivered") == 2
    assert delta(m1, m0, "gcmon_webhook_deliveries_total", target="slack", result="failed") == 0
    assert Httpd.metric(m1, "gcmon_outbox_pending") == 0
    for u in (RETRY, RA):
        enter(emulator, u, "Busy")
    for u in (RETRY, RA):
        when_cleared(httpd, u)
    report("webhook: 500 ×3 → gaps " + ", ".join(f"{g:.2f}" for g in gaps) +
           f" s; 503 + Retry-After: 3 → gap {q[1].at - q[0].at:.2f} s")


def test_gives_up_after_max_age(emulator, sink, report):
    """A server of its own with GcmonWebhookMaxAge 3s, and the sink down."""
    add_agents(emulator, [AGE])
    with second_server(emulator, sink, [AGE], AGE_PATH, "3s") as h:
        wait_connected(h, topics=1)
        db = StreamDB(h.db)
        wait_converged(db, emulator, ids={AGE})
        h.mark_log()
        sink.set_down(True)
        m0 = h.metrics()
        enter(emulator, AGE, "Available")

        def failed():
            a = alerts(h, AGE)
            return a if a and a[0]["delivery"]["status"] == "failed" else None
        # Attempts at about 0, 1, 3 (and at worst 7) s after the alert; max age 3 s.
        (a,) = wait_for(failed, timeout=AVAILABLE_S + 3 + 5 + 3, interval=0.1,
                        what="the delivery given up")
        t_failed = time.time()
        tries = posts(sink, AGE, AGE_PATH)
        assert tries and all(r.status == 503 for r in tries), tries
        raised = ms(a["raised_at"]) / 1000
        assert t_failed - raised <= 3 + 5 + 1.5, "gave up late"
        assert all(r.at <= raised + 3 + 1.5 for r in tries), \
            ("an attempt past the max age", [r.at - raised for r in tries])
        assert a["delivery"]["attempts"] == len(tries), (a, len(tries))
        assert a["delivery"]["last_error"] and AGE_TOKEN not in a["delivery"]["last_error"], a
        line = wait_for(lambda: [x for x in h.log_since_mark().splitlines()
                                 if re.search(r":warn\]", x)
                                 and re.search(r"slack|webhook|deliver", x, re.I)],
                        timeout=5, what="a warning about the failed delivery")
        assert all(AGE_TOKEN not in x for x in line), line
        # Negative check, bounded: had it not given up, the next attempt would
        # come after the next backoff step (at most 1.25 · 2^(n-1) s after the
        # n-th attempt); watch that long and a second more.
        watch = min(1.25 * 2 ** (len(tries) - 1) + 1.0, 8.0)
        time.sleep(watch)
        assert len(posts(sink, AGE, AGE_PATH)) == len(tries), "attempts after giving up"
        m1 = h.metrics()
        assert delta(m1, m0, "gcmon_webhook_deliveries_total", target="slack",
                     result="failed") == 1
        assert delta(m1, m0, "gcmon_webhook_deliveries_total", target="slack",
                     result="delivered") == 0
        assert Httpd.metric(m1, "gcmon_outbox_pending") == 0
        sink.set_down(False)
        assert AGE_TOKEN not in h.read_log()
        report(f"webhook: max age 3s, target down: {len(tries)} attempt(s), failed "
               f"{t_failed - raised:.2f} s after the alert")
        # Last, so that the checks above report first: a delivery is given up
        # once it is older than GcmonWebhookMaxAge — not earlier, because the
        # next backoff step would land past it (the target may be back within
        # the max age; the last attempt belongs at the max age).
        assert t_failed - raised >= 3 - 0.1, (
            f"gave up {t_failed - raised:.2f} s after the alert, before GcmonWebhookMaxAge 3s; "
            f"attempts at {[round(r.at - raised, 2) for r in tries]} s; {line}")


# ------------------------------------------------------------------ holder changes

def change_holder(httpd, kind, pid):
    if kind == "graceful":
        httpd.graceful()
    elif kind == "restart":
        httpd.restart()
    else:
        httpd.kill_child(pid, signal.SIGKILL)


@pytest.mark.parametrize("kind", ["graceful", "restart", "sigkill"])
def test_pending_alerts_delivered_once_across_holder_change(httpd, emulator, db, sink, report,
                                                           kind):
    users = RESTART[kind]
    s = ready(httpd, db, emulator)
    pid = s["holder"]["pid"]
    sink.set_down(True)
    for u in users:
        enter(emulator, u, "Available")
    # Raised, and tried at least once while the sink is down. (Not a latency
    # check: the time allows for a stream reconnect on a loaded machine.)
    try:
        wait_for(lambda: all(len(alerts(httpd, u)) == 1 and posts(sink, u) for u in users),
                 timeout=AVAILABLE_S + 10, what="alerts raised and tried")
    except TimeoutError as e:
        raise AssertionError(f"{e}: {explain(httpd, sink, users)}") from None
    before = {u: alerts(httpd, u)[0]["id"] for u in users}
    change_holder(httpd, kind, pid)
    wait_for(lambda: (lambda x: x["connected"] and x["holder"] and x["holder"]["pid"] != pid)(
        stream_status(httpd)), timeout=25, what="a new holder connected")
    t_up = time.time()
    sink.set_down(False)
    # The next backoff step (≤ 5 s) or the new holder's first look.
    wait_for(lambda: all(delivered(sink, u) for u in users), timeout=12, interval=0.1,
             what="pending alerts delivered after the holder change")
    took = max(delivered(sink, u)[0].at for u in users) - t_up
    # Negative check, bounded: a duplicate comes from two holders sending one
    # row or from the new holder raising the alert again as it starts; both
    # would show within its first seconds (the outbox looks every second).
    time.sleep(2.0)
    for u in users:
        p = posts(sink, u)
        assert len(delivered(sink, u)) == 1, [(r.at, r.status) for r in p]
        assert len({r.body for r in p}) == 1, "more than one alert body for one episode"
        (a,) = when_delivered(httpd, u)
        assert a["id"] == before[u], (a, before[u])
        assert len(alert_rows(db, u)) == 1
    for u in users:
        enter(emulator, u, "Busy")
    for u in users:
        when_cleared(httpd, u)
    report(f"idle alert: {kind} with deliveries pending: delivered {took:.2f} s after the "
           f"target came back")


# ------------------------------------------------------------------ signing and secrets

def test_signed_and_url_never_shown(httpd, emulator, db, sink):
    ready(httpd, db, emulator)
    enter(emulator, SIG, "Break")
    wait_for(lambda: delivered(sink, SIG), timeout=BREAK_S + 4, what="an alert for SIG")
    enter(emulator, SIG, "Busy")
    reqs = sink.requests(SLACK_PATH)
    assert reqs
    for r in reqs:
        assert r.header("x-gcmon-signature") == signature(r.body), (r.headers, r.body[:200])
    assert sink.requests() == sink.requests("/services/T000/B00"), "requests to other paths"
    secrets = {"token": TOKEN, "url path": SLACK_PATH, "url": sink.url(SLACK_PATH),
               "hmac secret": HOOK_SECRET}
    sources = {"error_log": httpd.read_log()}
    for path in (ALERTS + "?limit=100", AGENTS, f"{AGENTS}/{SIG}", API + "/stream",
                 API + "/metrics", API + "/health", "/server-status?auto", "/server-status",
                 "/server-info", "/server-info?config"):
        r = httpd.get(path)
        sources[path] = f"{r.status} {r.headers} {r.text}"
    page, cursor = 0, None
    while True:
        r = httpd.get(ALERTS + "?limit=100" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status == 200, r
        sources[f"alerts page {page}"] = r.text
        cursor, page = r.json["next_cursor"], page + 1
        if not cursor:
            break
    sources["database"] = httpd.db.raw_text()
    leaks = [(what, where) for what, s in secrets.items() for where, text in sources.items()
             if s in text]
    assert not leaks, leaks


# ------------------------------------------------------------------ configuration

@pytest.mark.parametrize("line,directive", [
    ("GcmonIdleAlert Foo 3s", "GcmonIdleAlert"),
    ("GcmonIdleAlert Available soon", "GcmonIdleAlert"),
    ("GcmonIdleAlert Available 3s often", "GcmonIdleAlert"),
    ("GcmonIdleAlert Available -3s", "GcmonIdleAlert"),
    ("GcmonIdleAlert Available", "GcmonIdleAlert"),
    ("GcmonSlackWebhook env:GCMON_TEST_UNSET_SLACK_URL", "GcmonSlackWebhook"),
    ("GcmonSlackWebhook ftp://hooks.example.invalid/services/T0/B0/ftpsecrettoken",
     "GcmonSlackWebhook"),
    ("GcmonWebhookMaxAge soon", "GcmonWebhookMaxAge"),
    ("GcmonWebhookSecret env:GCMON_TEST_UNSET_HOOK_SECRET", "GcmonWebhookSecret"),
])
def test_configtest_refuses(httpd, line, directive):
    rc, out = httpd.configtest(gcmon_conf=stream_conf(users=["alerts-x"], extra=line + "\n"))
    assert rc != 0 and directive in out, out
    if " Foo " in line:
        assert "Foo" in out, out
    assert "ftpsecrettoken" not in out, "a secret in apache2 -t's output"


def test_configtest_accepts(httpd):
    rc, out = httpd.configtest(gcmon_conf=GCMON_CONF)
    assert rc == 0, out
    rc, out = httpd.configtest(gcmon_conf=stream_conf(users=["alerts-x"]))   # the defaults
    assert rc == 0, out
    assert TOKEN not in out and HOOK_SECRET not in out
