"""The dashboard (htdocs/, SPEC §7) in a real Chromium against Debian's apache2
with both modules and the Genesys Cloud emulator.

One server for the file: the stream monitors two emulator queues, idle alerts
after 3 s in Available (delivered to a stand-in Slack), the dashboard under
`Alias /gcmon <repo>/htdocs`, and Basic auth on /gcmon/api/v1/admin. One
browser (tests/browser/driver.mjs, see browser.py) for the file, with named
pages that the tests reuse: "main" (1280×800, admin credentials, Asia/Kolkata
so local time is visibly not UTC), "wall" (1920×1080 wallboard), "fake" (the
board against a canned API, for the coming delta protocol) and "wrongpw"
(credentials Apache refuses).

After every test: no console error or page error beyond the HTTP errors the
test caused on purpose, no CSP violation, no request to a host other than
127.0.0.1. Screenshots of every view land in build/test-output/dashboard/.
"""
import os
import re
import subprocess
import time
import urllib.parse
from datetime import datetime, timezone

import pytest

import browser as browser_mod
from browser import Browser
from conftest import CLIENT_SECRET
from httpd import REPO, BUILD, Httpd, wait_for
from stream_helpers import stream_conf, wait_connected
from webhook_sink import WebhookSink

pytestmark = pytest.mark.skipif(browser_mod.missing() is not None,
                                reason=str(browser_mod.missing()))

HTDOCS = os.path.join(REPO, "htdocs")
OUT = os.path.join(BUILD, "test-output", "dashboard")
API = "/gcmon/api/v1"
TZ = "Asia/Kolkata"

ADMIN_USER = "supervisor"
ADMIN_PASSWORD = "pw-dashboard-test"

Q1 = "dash-q-sales"
Q2 = "dash-q-support"
UNJOINED = "dash-katherine"        # an Away member of Q1 that is not active on it
AGENTS = [
    # id, name, presence, routing status, queues (member entries)
    ("dash-ada", "Ada Lovelace", "OnQueue", None, [Q1]),
    ("dash-grace", "Grace Hopper", "Busy", None, [Q1]),
    ("dash-alan", "Alan Turing", "Break", None, [Q1]),
    (UNJOINED, "Katherine Johnson", "Away", None, [Q1]),
    ("dash-edsger", "Edsger Dijkstra", "Offline", None, [Q1]),
    ("dash-barbara", "Barbara Liskov", "OnQueue", "INTERACTING", [Q2]),
    ("dash-margaret", "Margaret Hamilton", "Meal", None, [Q2]),
    ("dash-linus", "Linus Torvalds", "Meeting", None, [Q2]),
    ("dash-frances", "Frances Allen", "OnQueue", None, [Q1, Q2]),
    ("dash-annie", "Annie Easley", "Busy", None, [Q2]),
    ("dash-john", "John Backus", "Busy", None, [Q2]),
    ("dash-niklaus", "Niklaus Wirth", "OnQueue", None, [Q2]),
]
IDS = [a[0] for a in AGENTS]
NAMES = {a[0]: a[1] for a in AGENTS}
IDLE_ALERT_S = 3


def csp_header_line():
    """The optional `Header set Content-Security-Policy` of the site snippet
    (conf/gcmon-site.conf), uncommented: the tests serve the dashboard with it, so the
    documented line is the tested one."""
    with open(os.path.join(REPO, "conf", "gcmon-site.conf")) as f:
        for line in f:
            m = re.match(r"\s*#\s*(Header set Content-Security-Policy .*)$", line)
            if m:
                return m.group(1)
    raise AssertionError("conf/gcmon-site.conf shows no Header set Content-Security-Policy line")


CSP_HEADER_LINE = csp_header_line()

GCMON_CONF = stream_conf(queues=[Q1, Q2], extra=(
    f"GcmonIdleAlert Available {IDLE_ALERT_S}s\n"
    "GcmonSlackWebhook env:GCMON_TEST_SLACK\n"
    "GcmonMembershipRefresh 2s\n"))


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def sink():
    s = WebhookSink().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def httpd(emulator, sink):
    emulator.config(heartbeat=1)
    emulator.add_agents([{"id": a, "name": n, "presence": p,
                          **({"routing_status": r} if r else {})} for a, n, p, r, _ in AGENTS])
    emulator.add_queues([
        {"id": Q1, "name": "Sales", "members": [
            {"id": a[0], "joined": a[0] != UNJOINED} for a in AGENTS if Q1 in a[4]]},
        {"id": Q2, "name": "Support", "members": [a[0] for a in AGENTS if Q2 in a[4]]},
    ])
    h = Httpd(emulator_url=emulator.url, gcmon_conf=GCMON_CONF,
              env={"GCMON_TEST_SECRET": CLIENT_SECRET,
                   "GCMON_TEST_SLACK": sink.url("/services/T0/B0/dashboard")})
    pwfile = os.path.join(h.root, "conf", "htpasswd")
    p = subprocess.run(["htpasswd", "-c", "-b", "-B", pwfile, ADMIN_USER, ADMIN_PASSWORD],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0, p.stdout
    os.chmod(pwfile, 0o644)
    h.extra_conf = f"""LoadModule headers_module /usr/lib/apache2/modules/mod_headers.so
Alias /gcmon "{HTDOCS}"
<Directory "{HTDOCS}">
    Require all granted
    {CSP_HEADER_LINE}
</Directory>
<Location /gcmon/api/v1/admin>
    AuthType Basic
    AuthName "gcmon admin"
    AuthBasicProvider file
    AuthUserFile {pwfile}
    Require valid-user
</Location>
"""
    h.write_config()
    h.start()
    try:
        wait_connected(h, topics=len(AGENTS))
        wait_for(lambda: set(IDS) <= {a["user_id"] for a in board(h)}, timeout=20,
                 what="every seeded agent on the board")
        yield h
    finally:
        h.cleanup()


@pytest.fixture(scope="module")
def base(httpd):
    return f"http://127.0.0.1:{httpd.port}/gcmon/"


@pytest.fixture(scope="module")
def br(httpd, base):
    os.makedirs(OUT, exist_ok=True)
    b = Browser().start(stderr_path=os.path.join(OUT, "driver.log"))
    try:
        b.new_context("admin", credentials={"username": ADMIN_USER, "password": ADMIN_PASSWORD},
                      timezone=TZ, viewport={"width": 1280, "height": 800})
        b.new_context("wall", credentials={"username": ADMIN_USER, "password": ADMIN_PASSWORD},
                      timezone=TZ, viewport={"width": 1920, "height": 1080})
        b.new_context("wrongpw", credentials={"username": ADMIN_USER, "password": "not-it"},
                      timezone=TZ)
        b.new_page("main", "admin")
        b.new_page("wall", "wall")
        b.new_page("fake", "admin")
        b.new_page("wrongpw", "wrongpw")
        b.goto("main", base)
        wait_tiles(b, "main", len(AGENTS))
        yield b
    finally:
        b.stop()


ALLOWED_CONSOLE = []


def allow_console(*patterns):
    """Console errors the current test causes on purpose (HTTP errors it provokes)."""
    ALLOWED_CONSOLE.extend(patterns)


@pytest.fixture(autouse=True)
def browser_clean(request, httpd):
    if "br" not in request.fixturenames:
        yield
        return
    b = request.getfixturevalue("br")
    ALLOWED_CONSOLE.clear()
    b.call("clear_console")
    yield
    logs = b.console()
    bad = [f"{page}: {m['type']}: {m['text']} ({m.get('location', '')})"
           for page, msgs in logs.items() for m in msgs
           if m["type"] in ("error", "pageerror", "warning")
           and not any(re.search(p, m["text"]) for p in ALLOWED_CONSOLE)]
    assert not bad, "console errors:\n" + "\n".join(bad)
    away = [r for r in b.requests() if r.get("blocked")]
    assert not away, f"requests that left 127.0.0.1: {away}"
    for page in ("main", "wall", "fake", "wrongpw"):
        v = b.eval(page, "return window.__cspViolations || []")
        assert not v, f"CSP violations on {page}: {v}"


# ------------------------------------------------------------------ helpers

def board(h, **query):
    r = h.get(API + "/agents" + ("?" + urllib.parse.urlencode(query) if query else ""))
    assert r.status == 200, r
    return r.json["data"]


def board_by_id(h):
    return {a["user_id"]: a for a in board(h)}


def wait_tiles(b, page, n, timeout=15000):
    b.wait_fn(page, "return document.querySelectorAll('#tiles .tile').length >= arg", arg=n,
              timeout=timeout)


def visible_ids(b, page="main"):
    return b.eval(page, "return Array.from(document.querySelectorAll('#tiles .tile'))"
                        ".filter(t => !t.hidden).map(t => t.dataset.id)")


def tile(b, uid, page="main"):
    """{state, label, name, clock, badge} of one tile as the page shows it."""
    return b.eval(page, """
        const t = document.querySelector(`#tiles .tile[data-id="${arg}"]`);
        if (!t) return null;
        const badge = t.querySelector('.alert-badge');
        return {state: t.dataset.state, label: t.querySelector('.state').textContent,
                name: t.querySelector('.name').textContent,
                clock: t.querySelector('.clock').textContent, hidden: t.hidden,
                cls: t.className, badge: badge.hidden ? null : badge.textContent};
    """, arg=uid)


def shot(b, page, name, full_page=False):
    return b.screenshot(page, os.path.join(OUT, name), full_page=full_page)


def go(b, base, hash_, page="main"):
    b.goto(page, base + hash_)


def local_text(iso):
    """What Intl.DateTimeFormat(en-GB) shows in TZ for iso, roughly: 'HH:MM:SS'."""
    from zoneinfo import ZoneInfo
    d = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(TZ))
    return d.strftime("%H:%M:%S")


LABELS = {"IDLE": "Idle", "INTERACTING": "Interacting", "COMMUNICATING": "Communicating",
          "NOT_RESPONDING": "Not responding", "OnQueue": "On queue", "OFF_QUEUE": "Off queue",
          "Idle": "Idle presence"}


def label_of(state):
    return LABELS.get(state, state)


# ------------------------------------------------------------------ serving

def test_served_static_with_csp(httpd):
    r = httpd.get("/gcmon/")
    assert r.status == 200, r
    # The header of conf/gcmon-site.conf (served here) and the meta element agree.
    header = r.header("content-security-policy")
    assert header and "frame-ancestors 'none'" in header, r.headers
    html = r.text
    meta = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html).group(1)
    assert header == meta + "; frame-ancestors 'none'", (header, meta)
    assert re.search(r'<meta http-equiv="Content-Security-Policy" content="[^"]*'
                     r"default-src 'self'; script-src 'self'; style-src 'self'", html), html
    # Nothing that a self-only CSP would block: no inline script, no style or
    # on* attribute, nothing from another host.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\sstyle=|\son[a-z]+=", html)
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    for path in ("js/app.js", "js/board.js", "css/gcmon.css", "favicon.svg"):
        s = httpd.get("/gcmon/" + path)
        assert s.status == 200, (path, s)
    assert "javascript" in httpd.get("/gcmon/js/app.js").header("content-type")
    # Every module is plain relative ES-module code: no absolute /gcmon URL, no CDN
    # (the SVG namespace name, which is never fetched, aside).
    for name in os.listdir(os.path.join(HTDOCS, "js")):
        with open(os.path.join(HTDOCS, "js", name)) as f:
            src = f.read()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg['\"])|fetch\(\s*['\"`]/|\bimport\b[^;]*['\"]/", src), name
        assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|eval\(", src), name
    r = httpd.get("/gcmon")
    assert r.status == 301 and r.header("location").endswith("/gcmon/"), r


# ------------------------------------------------------------------ board

def test_board_shows_seeded_agents(httpd, br, base):
    b = br
    go(b, base, "#/board")
    wait_tiles(b, "main", len(AGENTS))
    server = board_by_id(httpd)
    for uid in IDS:
        t = b.wait_fn("main", """
            const t = document.querySelector(`#tiles .tile[data-id="${arg.id}"]`);
            return t && t.dataset.state === arg.state && t;""",
                      arg={"id": uid, "state": server[uid]["state"]}) and tile(b, uid)
        a = server[uid]
        assert t["name"] == NAMES[uid]
        # Colour and words: the state label is on the tile, not only its colour.
        assert t["label"] == label_of(a["state"]), (uid, t, a["state"])
        assert re.fullmatch(r"\d+:\d\d(:\d\d)?", t["clock"]), t
        assert (t["badge"] is not None) == (a["alert"] is not None), (t, a)
    # Counts per state at the top equal the server's.
    counts = b.eval("main", "return Object.fromEntries(Array.from(document.querySelectorAll("
                            "'.counts .count[data-state]')).map(c => [c.dataset.state, "
                            "Number(c.querySelector('.n').textContent)]))")
    want = {}
    for a in server.values():
        want[a["state"]] = want.get(a["state"], 0) + 1
    assert counts == want, (counts, want)
    assert b.text("main", ".counts .c-all .n") == str(len(server))
    # The clock runs (from `since`, without a new poll).
    before = tile(b, "dash-alan")["clock"]
    b.wait_fn("main", "return document.querySelector('#tiles .tile[data-id=\"dash-alan\"] .clock')"
                      ".textContent !== arg", arg=before, timeout=3000)
    shot(b, "main", "board.png", full_page=True)


def test_polls_with_if_none_match(httpd, br, base):
    b = br
    b.call("clear_requests")
    time.sleep(3.4)             # two or three polls
    polls = b.requests("main", match=r"/gcmon/api/v1/agents")
    assert len(polls) >= 2, polls
    assert all(p["headers"].get("if-none-match") for p in polls), polls
    # A quiet board answers 304 (or 200 when an agent changed in between).
    assert all(p.get("status") in (200, 304) for p in polls if "status" in p), polls
    assert any(p.get("status") == 304 for p in polls), polls
    # Today's server sends no generation, so the board polls in full (no since=).
    if "generation" not in httpd.get(API + "/agents").json:
        assert not any("since=" in p["url"] for p in polls), polls


def test_state_change_shows_within_2s(httpd, br, base, emulator, report):
    b = br
    go(b, base, "#/board")
    wait_tiles(b, "main", len(AGENTS))
    uid = "dash-ada"
    lags = []
    for presence, routing, state in (("Break", None, "Break"), ("OnQueue", None, "IDLE"),
                                     (None, "INTERACTING", "INTERACTING")):
        t0 = time.monotonic()
        emulator.set_state(uid, presence=presence, routing_status=routing)
        b.wait_fn("main", """
            const t = document.querySelector(`#tiles .tile[data-id="${arg.id}"]`);
            return t && t.dataset.state === arg.state
                && t.querySelector('.state').textContent === arg.label;""",
                  arg={"id": uid, "state": state, "label": label_of(state)}, timeout=5000)
        lags.append(time.monotonic() - t0)
        # The clock restarts with the new state.
        assert tile(b, uid)["clock"] in ("0:00", "0:01", "0:02"), tile(b, uid)
    report(f"dashboard: emulator change → tile shows it: max {max(lags) * 1000:.0f} ms, "
           f"{', '.join(f'{x * 1000:.0f}' for x in lags)} ms")
    assert max(lags) < 2.0, lags


def test_alert_badge_after_threshold(httpd, br, base, emulator):
    b = br
    go(b, base, "#/board")
    wait_tiles(b, "main", len(AGENTS))
    uid = "dash-grace"
    emulator.set_state(uid, presence="Available")
    t0 = time.monotonic()
    b.wait_fn("main", "const t = document.querySelector(`#tiles .tile[data-id=\"${arg}\"]`);"
                      "return t && t.dataset.state === 'Available'", arg=uid, timeout=4000)
    assert tile(b, uid)["badge"] is None        # not before the threshold
    b.wait_fn("main", "const t = document.querySelector(`#tiles .tile[data-id=\"${arg}\"]`);"
                      "return t && !t.querySelector('.alert-badge').hidden", arg=uid,
              timeout=(IDLE_ALERT_S + 4) * 1000)
    took = time.monotonic() - t0
    assert took >= IDLE_ALERT_S - 0.5, took
    t = tile(b, uid)
    assert t["badge"].startswith("Alert: over 3 s"), t
    assert "has-alert" in t["cls"]
    assert board_by_id(httpd)[uid]["alert"]["threshold_seconds"] == IDLE_ALERT_S
    # "Only agents with an alert" shows exactly the agents the server says have one.
    b.click("main", "#f-alerts")
    want = sorted(a["user_id"] for a in board(httpd) if a["alert"])
    b.wait_fn("main", "return arg.includes(location.hash) || location.hash.includes('alerts=1')",
              arg="alerts=1")
    assert sorted(visible_ids(b)) == want
    shot(b, "main", "board-alerts.png")
    b.click("main", "#f-alerts")


def test_filters_search_sort(httpd, br, base):
    b = br
    go(b, base, "#/board")
    wait_tiles(b, "main", len(AGENTS))
    server = board(httpd)
    # State filter (the count buttons set it too).
    b.select("main", "#f-state", "Meal")
    assert visible_ids(b) == sorted(a["user_id"] for a in server if a["state"] == "Meal")
    assert "state=Meal" in b.call("url", page="main")
    b.click("main", ".counts .count[data-state='Break']")
    assert b.eval("main", "return document.querySelector('#f-state').value") == "Break"
    assert set(visible_ids(b)) == {a["user_id"] for a in server if a["state"] == "Break"}
    b.click("main", "#f-clear")
    # Search by name, case-insensitive.
    b.fill("main", "#f-q", "lov")
    assert visible_ids(b) == ["dash-ada"]
    b.fill("main", "#f-q", "")
    # Sort by time in state: longest first = oldest `since` first.
    b.select("main", "#f-sort", "longest")
    server = board(httpd)
    shown = visible_ids(b)
    since = {a["user_id"]: a["since"] for a in server}
    assert [since[i] for i in shown] == sorted(since[i] for i in shown), shown
    b.select("main", "#f-sort", "name")
    names = b.texts("main", "#tiles .tile:not([hidden]) .name")
    assert names == sorted(names, key=lambda n: n.lower()), names
    # Filters live in the address: a reload keeps them.
    go(b, base, "#/board?state=OnQueue&q=fran")
    wait_tiles(b, "main", len(AGENTS))
    b.wait_fn("main", "return document.querySelector('#f-q').value === 'fran'")
    assert visible_ids(b) == (["dash-frances"] if board_by_id(httpd)["dash-frances"]["state"]
                              == "OnQueue" else [])
    go(b, base, "#/board")


def test_queue_filter_and_activity(httpd, br, base, emulator):
    b = br
    go(b, base, "#/board")
    wait_tiles(b, "main", len(AGENTS))
    # Today's server learns an agent's queues from its events (activeQueueIds):
    # make some happen.
    emulator.set_state("dash-frances", routing_status="INTERACTING")
    emulator.set_state("dash-barbara", routing_status="IDLE")
    emulator.set_state("dash-margaret", presence="Break")
    wait_for(lambda: all(Q2 in (board_by_id(httpd)[u]["queue_ids"] or [])
                         for u in ("dash-frances", "dash-barbara", "dash-margaret")),
             timeout=10, what="queue ids on the board")
    time.sleep(1.6)         # one poll
    server = board(httpd)
    # The Queue Activity table counts what the server says, per queue.
    row = b.wait_fn("main", """
        const tr = document.querySelector(`table.queues tr[data-queue="${arg.q}"]`);
        const row = tr && Object.fromEntries(Array.from(tr.querySelectorAll('td'))
            .map((td, i) => [td.dataset.col || 'members', Number(td.textContent)]));
        return row && row.members === arg.n && row;""",
                    arg={"q": Q2, "n": sum(Q2 in (a["queue_ids"] or []) for a in server)})
    members = [a for a in server if Q2 in (a["queue_ids"] or [])]
    on_queue = {"IDLE", "INTERACTING", "COMMUNICATING", "NOT_RESPONDING", "OnQueue"}
    assert row["members"] == len(members), row
    assert row["on_queue"] == sum(a["state"] in on_queue for a in members), row
    assert row["interacting"] == sum(a["state"] == "INTERACTING" for a in members), row
    assert row["meal"] == sum(a["state"] == "Meal" for a in members), row
    assert row["off_queue"] == sum(a["state"] not in on_queue and a["state"] != "Offline"
                                   for a in members), row
    # The queue filter shows exactly the agents whose queue_ids hold the queue.
    b.select("main", "#f-queue", Q1)
    server = board(httpd)
    shown = set(visible_ids(b))
    assert shown == {a["user_id"] for a in server if Q1 in (a["queue_ids"] or [])}, shown
    shot(b, "main", "board-queue.png")
    b.click("main", "#f-clear")
    # Members of Q1 that are Away or Offline (one not even active on it) belong under
    # its filter: queue_ids are monitored-queue membership (SPEC §9.17).
    q1_members = {a[0] for a in AGENTS if Q1 in a[4]}
    assert q1_members <= shown, sorted(q1_members - shown)


def test_wallboard_kiosk_1920(httpd, br, base):
    b = br
    b.goto("wall", base + "?kiosk=1")
    wait_tiles(b, "wall", len(AGENTS))
    info = b.eval("wall", """
        const cs = (s) => getComputedStyle(document.querySelector(s));
        return {kiosk: document.body.classList.contains('kiosk'),
                nav: document.querySelector('#nav').hidden,
                filters: cs('#view-board .filters').display,
                name: parseFloat(cs('#tiles .tile .name').fontSize),
                clock: parseFloat(cs('#tiles .tile .in-state').fontSize),
                hscroll: document.scrollingElement.scrollWidth > innerWidth};""")
    assert info["kiosk"] and info["nav"], info
    assert info["filters"] == "none", info
    assert info["name"] >= 20 and info["clock"] >= 24, info
    assert not info["hscroll"], info
    # No admin control anywhere on the wallboard, dialog included.
    b.click("wall", "#tiles .tile-btn")
    b.wait_for("wall", "dialog[open]")
    assert b.count("wall", "dialog[open] a[href*='admin']") == 0
    b.press("wall", "Escape")
    b.wait_for("wall", "dialog[open]", state="detached")
    shot(b, "wall", "board-kiosk-1920.png")
    # Escape (no dialog open) leaves the wallboard; the toggle enters it again.
    b.press("wall", "Escape")
    b.wait_fn("wall", "return !document.body.classList.contains('kiosk')")
    assert not b.eval("wall", "return document.querySelector('#nav').hidden")
    b.click("wall", "#kiosk-on")
    b.wait_fn("wall", "return document.body.classList.contains('kiosk') && "
                      "location.hash.includes('kiosk=1')")


def test_layout_1280x800(httpd, br, base):
    b = br
    go(b, base, "#/board")
    wait_tiles(b, "main", len(AGENTS))
    info = b.eval("main", """
        const tiles = Array.from(document.querySelectorAll('#tiles .tile-btn'));
        const r = document.querySelector('#tiles .tile-btn').getBoundingClientRect();
        const over = tiles.filter(t => t.scrollWidth > t.clientWidth + 1).length;
        return {w: innerWidth, h: innerHeight, hscroll: document.scrollingElement.scrollWidth > innerWidth,
                tileW: r.width, overflowing: over,
                font: parseFloat(getComputedStyle(document.querySelector('#tiles .name')).fontSize)};""")
    assert info["w"] == 1280 and info["h"] == 800, info
    assert not info["hscroll"], info
    assert info["tileW"] >= 160 and info["font"] >= 13, info
    assert info["overflowing"] == 0, info
    shot(b, "main", "board-1280x800.png")


def test_board_delta_protocol(httpd, br, base):
    """The coming API (SPEC §9.17): ?since=<generation> answers what changed; the
    page merges it. A canned API stands in for the server until it ships."""
    b = br

    def agent(uid, name, state, since="2026-12-01T10:00:00.000Z"):
        return {"user_id": uid, "user_name": name, "state": state, "presence": "Available",
                "routing_status": None, "since": since, "seconds_in_state": 5,
                "queue_ids": ["q-x"], "active_queue_ids": [], "alert": None}

    def ok(body, etag):
        return {"status": 200, "headers": {"Content-Type": "application/json", "ETag": etag},
                "body": dict(body, generated_at="2026-12-01T10:00:05.000Z")}

    responses = [
        ok({"total": 2, "generation": "g1", "full": True,
            "data": [agent("u-a", "Anna A", "Available"), agent("u-b", "Bert B", "IDLE")]}, '"e1"'),
        ok({"total": 1, "generation": "g2", "full": False,
            "data": [agent("u-b", "Bert B", "INTERACTING")], "removed": ["u-a"]}, '"e2"'),
        {"status": 304, "headers": {"ETag": '"e2"'}},
        ok({"total": 2, "generation": "g3", "full": True,
            "data": [agent("u-c", "Cleo C", "Break"), agent("u-b", "Bert B", "INTERACTING")]},
           '"e3"'),
        {"status": 304, "headers": {"ETag": '"e3"'}},
    ]
    pattern = r"/gcmon/api/v1/agents(\?|$)"
    b.call("fake", page="fake", pattern=pattern, responses=responses)
    b.goto("fake", base + "#/board")
    b.wait_fn("fake", "return document.querySelectorAll('#tiles .tile').length === 2 && "
                      "document.querySelector('#tiles .tile[data-id=\"u-a\"]')")
    b.wait_fn("fake", "const t = document.querySelector('#tiles .tile[data-id=\"u-b\"]');"
                      "return t && t.dataset.state === 'INTERACTING' && "
                      "!document.querySelector('#tiles .tile[data-id=\"u-a\"]')", timeout=6000)
    b.wait_fn("fake", "return document.querySelector('#tiles .tile[data-id=\"u-c\"]') && "
                      "document.querySelectorAll('#tiles .tile').length === 2", timeout=8000)
    # One more poll after the full board: it asks since the new generation.
    wait_for(lambda: len(b.call("fake_seen", page="fake", pattern=pattern)) >= 5, timeout=4,
             what="a poll after the full board")
    seen = b.call("fake_seen", page="fake", pattern=pattern)
    q = [urllib.parse.parse_qs(urllib.parse.urlsplit(s["url"]).query) for s in seen]
    assert q[0] == {}, seen[0]
    assert q[1] == {"since": ["g1"]} and seen[1]["headers"]["if-none-match"] == '"e1"', seen[1]
    assert q[2] == {"since": ["g2"]} and seen[2]["headers"]["if-none-match"] == '"e2"', seen[2]
    assert q[3] == {"since": ["g2"]}, seen[3]          # a 304 keeps the generation
    assert q[4] == {"since": ["g3"]} and seen[4]["headers"]["if-none-match"] == '"e3"', seen[4]
    assert b.text("fake", "#board-shown") == "2 agents"
    # Without a generation (today's server) the page polls the full board.
    responses = [
        ok({"total": 1, "data": [agent("u-d", "Dora D", "Meal")]}, '"f1"'),
        ok({"total": 1, "data": [agent("u-e", "Emil E", "Away")]}, '"f2"'),
    ]
    b.goto("fake", "about:blank")
    b.call("unfake", page="fake")
    b.call("fake", page="fake", pattern=pattern, responses=responses)
    b.goto("fake", base + "#/board")
    b.wait_fn("fake", "return document.querySelector('#tiles .tile[data-id=\"u-e\"]') && "
                      "document.querySelectorAll('#tiles .tile').length === 1", timeout=6000)
    seen = b.call("fake_seen", page="fake", pattern=pattern)
    assert all("since=" not in s["url"] for s in seen), seen
    assert seen[1]["headers"].get("if-none-match") == '"f1"', seen[1]
    # A server that refuses the generation (400) gets a full poll next.
    allow_console(r"status of 400")
    responses = [
        ok({"total": 1, "generation": "g9", "full": True, "data": [agent("u-f", "Finn F", "Meal")]},
           '"h1"'),
        {"status": 400, "headers": {"Content-Type": "application/problem+json"},
         "body": {"type": "urn:gcmon:problem:validation_failed", "title": "Invalid query parameter",
                  "status": 400, "detail": "query parameter since is not a generation of this board",
                  "errors": [{"field": "since", "message": "unknown generation"}]}},
        ok({"total": 1, "generation": "g10", "full": True, "data": [agent("u-g", "Gus G", "Busy")]},
           '"h2"'),
    ]
    b.goto("fake", "about:blank")
    b.call("unfake", page="fake")
    b.call("fake", page="fake", pattern=pattern, responses=responses)
    b.goto("fake", base + "#/board")
    b.wait_fn("fake", "return document.querySelector('#tiles .tile[data-id=\"u-g\"]') && "
                      "document.querySelector('#view-board .error').hidden", timeout=8000)
    seen = b.call("fake_seen", page="fake", pattern=pattern)
    assert "since=g9" in seen[1]["url"], seen[1]
    assert "since=" not in seen[2]["url"] and "if-none-match" not in seen[2]["headers"], seen[2]
    b.goto("fake", "about:blank")
    b.call("unfake", page="fake")


def test_board_error_in_words(httpd, br, base):
    """An API failure while polling is shown in words (the problem's detail), and
    the board recovers by itself when the API answers again."""
    b = br
    allow_console(r"status of 503")
    detail = "gcmon could not open a database connection (mod_dbd); see the error log (GCM1201)"
    pattern = r"/gcmon/api/v1/agents(\?|$)"
    b.call("fake", page="fake", pattern=pattern, responses=[
        {"status": 503, "headers": {"Content-Type": "application/problem+json"},
         "body": {"type": "urn:gcmon:problem:database_unavailable", "title": "Database unavailable",
                  "status": 503, "detail": detail}},
        {"status": 503, "headers": {"Content-Type": "application/problem+json"},
         "body": {"type": "urn:gcmon:problem:database_unavailable", "title": "Database unavailable",
                  "status": 503, "detail": detail}},
        {"status": 200, "headers": {"Content-Type": "application/json", "ETag": '"x1"'},
         "body": {"total": 0, "generated_at": "2026-12-01T10:00:00.000Z", "data": []}}])
    b.goto("fake", base + "#/board")
    b.wait_for("fake", "#view-board .error")
    assert b.text("fake", "#view-board .error") == f"The board is not updating: {detail}"
    assert b.text("fake", "#conn") == f"Not updating: {detail}"
    b.wait_for("fake", "#view-board .error", state="hidden", timeout=6000)
    assert b.text("fake", "#conn").startswith("Live · updated")
    assert "No agents yet" in b.text("fake", "#board-empty")
    b.goto("fake", "about:blank")
    b.call("unfake", page="fake")


def test_agent_dialog_keyboard(httpd, br, base):
    b = br
    go(b, base, "#/board")
    wait_tiles(b, "main", len(AGENTS))
    b.call("focus", page="main", selector="#tiles .tile[data-id='dash-margaret'] .tile-btn")
    b.press("main", "Enter")
    b.wait_for("main", "dialog[open]")
    assert b.text("main", "dialog[open] h3") == "Margaret Hamilton"
    assert b.eval("main", "return document.querySelector('dialog[open]').contains(document.activeElement)")
    shot(b, "main", "board-dialog.png")
    b.press("main", "Escape")
    b.wait_for("main", "dialog[open]", state="detached")
    assert b.eval("main", "return document.activeElement.closest('.tile').dataset.id") == \
        "dash-margaret"


# ------------------------------------------------------------------ history

def history(h, **q):
    r = h.get(API + "/agent-status/history?" + urllib.parse.urlencode(q))
    assert r.status == 200, r
    return r.json


def test_history_paging_and_timeline(httpd, br, base, emulator):
    b = br
    uid = "dash-niklaus"
    steps = [("Break", None), ("OnQueue", None), (None, "INTERACTING"), (None, "IDLE"),
             ("Meal", None), ("OnQueue", None), (None, "COMMUNICATING"), (None, "IDLE"),
             ("Away", None), ("Available", None), ("Busy", None), ("OnQueue", None)]
    before = history(httpd, user_id=uid, limit=1)["total"]
    for presence, routing in steps:
        emulator.set_state(uid, presence=presence, routing_status=routing)
        time.sleep(0.05)
    wait_for(lambda: history(httpd, user_id=uid, limit=1)["total"] >= before + len(steps),
             timeout=10, what="the transitions recorded")
    page1 = history(httpd, user_id=uid, limit=10)
    page2 = history(httpd, user_id=uid, limit=10, cursor=page1["next_cursor"])
    assert page1["total"] > 10

    go(b, base, f"#/history?user_id={uid}&limit=10")
    b.wait_for("main", "#history-table")
    rows = b.eval("main", "return Array.from(document.querySelectorAll('#history-table tbody tr'))"
                          ".map(r => Number(r.dataset.id))")
    assert rows == [r["id"] for r in page1["data"]], rows
    # Times in the browser's zone, UTC on hover.
    first = page1["data"][0]
    t = b.eval("main", "const t = document.querySelector('#history-table tbody time');"
                       "return {text: t.textContent, title: t.title, dt: t.getAttribute('datetime')}")
    assert t["dt"] == first["event_timestamp"] and first["event_timestamp"] in t["title"], t
    assert "UTC" in t["title"]
    assert local_text(first["event_timestamp"]) in t["text"], (t, first)
    assert b.text("main", ".pager .page-info") == f"1–10 of {page1['total']}"
    b.call("clear_requests")
    b.click("main", "text=Older →")
    b.wait_fn("main", "return document.querySelector('#history-table tbody tr').dataset.id == arg",
              arg=str(page2["data"][0]["id"]))
    rows = b.eval("main", "return Array.from(document.querySelectorAll('#history-table tbody tr'))"
                          ".map(r => Number(r.dataset.id))")
    assert rows == [r["id"] for r in page2["data"]], rows
    asked = [r["url"] for r in b.requests("main", match=r"agent-status/history")]
    assert any(urllib.parse.parse_qs(urllib.parse.urlsplit(u).query).get("cursor") ==
               [page1["next_cursor"]] for u in asked), asked
    assert b.text("main", ".pager .page-info").startswith("11–")
    b.click("main", "text=← Newer")
    b.wait_fn("main", "return document.querySelector('#history-table tbody tr').dataset.id == arg",
              arg=str(page1["data"][0]["id"]))
    # The timeline of the agent over the last hour: one segment per state run.
    b.wait_for("main", "#timeline-bar .seg")
    segs = b.eval("main", "return Array.from(document.querySelectorAll('#timeline-bar .seg'))"
                          ".map(s => s.dataset.state)")
    recent = [r["state"] for r in reversed(history(httpd, user_id=uid, limit=100)["data"])]
    assert segs[-len(steps):] == recent[-len(steps):], (segs, recent)
    assert b.count("main", ".legend li") >= 5
    shot(b, "main", "history.png", full_page=True)


def test_history_errors_in_words(httpd, br, base):
    b = br
    allow_console(r"status of 400")
    go(b, base, "#/history")
    b.wait_for("main", "#history-form")
    b.wait_fn("main", "return document.querySelectorAll('#h-user option').length > 1")
    b.fill("main", "#h-from", "2026-11-20T12:00")
    b.fill("main", "#h-to", "2026-11-20T11:00")
    b.press("main", "Enter", selector="#h-to")
    b.wait_for("main", "#view-history .error")
    text = b.text("main", "#view-history .error")
    assert "to must not be earlier than from" in text, text
    # The field message sits next to its field, marked invalid.
    assert b.attr("main", "#h-to", "aria-invalid") == "true"
    assert b.text("main", "#h-to-error") == "to must not be earlier than from"
    shot(b, "main", "history-error.png")


# ------------------------------------------------------------------ alerts and stream

def test_alerts_view(httpd, br, base, sink):
    b = br
    r = httpd.get(API + "/alerts?limit=20")
    wait_for(lambda: any(a["delivery"]["status"] == "delivered"
                         for a in httpd.get(API + "/alerts?limit=20").json["data"]),
             timeout=15, what="an alert delivered to the stand-in Slack")
    r = httpd.get(API + "/alerts?limit=20").json
    go(b, base, "#/alerts")
    b.wait_for("main", "#alerts-table")
    rows = b.eval("main", "return Array.from(document.querySelectorAll('#alerts-table tbody tr'))"
                          ".map(r => ({id: Number(r.dataset.id), text: r.textContent}))")
    assert [x["id"] for x in rows] == [a["id"] for a in r["data"]], rows
    words = {"delivered": "Delivered", "pending": "Pending", "failed": "Failed",
             "disabled": "Not sent"}
    for row, a in zip(rows, r["data"]):
        assert words[a["delivery"]["status"]] in row["text"], (row, a)
        assert a["user_name"] in row["text"]
        assert ("Open" in row["text"]) == (a["cleared_at"] is None), (row, a)
    shot(b, "main", "alerts.png", full_page=True)


def test_stream_health_view(httpd, br, base):
    b = br
    s = httpd.get(API + "/stream").json
    go(b, base, "#/stream")
    b.wait_for("main", "#stream-facts")
    facts = b.eval("main", "return Object.fromEntries(Array.from(document.querySelectorAll("
                           "'#stream-facts dd')).map(d => [d.dataset.fact, d.textContent]))")
    assert facts["Connected"] == "Connected"
    assert facts["Holder"] == f"{s['holder']['host']}, process {s['holder']['pid']}", facts
    assert facts["Agents monitored"] == str(len(AGENTS))
    assert facts["Reconnects"] == str(s["reconnects_total"])
    assert "ago" in facts["Last event"], facts
    chans = b.texts("main", "#channels-table tbody td.mono")
    assert chans == [c["id"] for c in s["channels"]], chans
    shot(b, "main", "stream.png", full_page=True)


# ------------------------------------------------------------------ admin

def admin_status(h, uid):
    import base64
    auth = "Basic " + base64.b64encode(f"{ADMIN_USER}:{ADMIN_PASSWORD}".encode()).decode()
    r = h.get(f"{API}/admin/agents/{uid}/status", headers={"Authorization": auth})
    assert r.status == 200, r
    return r.json


def open_status(b, base, uid):
    go(b, base, f"#/admin?user_id={uid}")
    b.wait_fn("main", "return document.querySelector('#s-cur-etag') && "
                      "!document.querySelector('#s-fieldset').disabled")


def test_status_change_200(httpd, br, base, emulator):
    b = br
    uid = "dash-annie"
    open_status(b, base, uid)
    cur = admin_status(httpd, uid)
    assert b.text("main", "#s-cur-etag") == cur["etag"]
    assert b.text("main", "#s-cur-status") == cur["status"] == "Busy"
    b.call("clear_requests")
    b.fill("main", "#s-status", "Break")
    b.fill("main", "#s-reason", "coffee")
    b.fill("main", "#s-wrapup", "WU-7")
    b.click("main", "#s-submit")
    b.wait_for("main", "#s-result.ok")
    assert b.text("main", "#s-result") == "Done: Annie Easley is now Break (was Busy)."
    assert emulator.agent(uid)["presence"] == "Break"
    (put,) = [r for r in b.requests("main", match=r"/admin/agents/") if r["method"] == "PUT"]
    assert put["headers"]["if-match"] == cur["etag"], put
    assert put["headers"]["content-type"] == "application/json"
    assert put["headers"]["x-gcmon-request"] == "1"
    assert put.get("status") == 200
    # The page now shows the new status and its ETag (the PUT's read-back).
    assert b.text("main", "#s-cur-etag") == admin_status(httpd, uid)["etag"]
    shot(b, "main", "admin-status.png")


def test_status_change_412_flow(httpd, br, base, emulator):
    b = br
    allow_console(r"status of 412")
    uid = "dash-annie"
    open_status(b, base, uid)
    loaded = b.text("main", "#s-cur-status")
    # Someone changes the agent in Genesys between our read and our write.
    emulator.set_state(uid, presence="Meal")
    b.fill("main", "#s-status", "Away")
    b.press("main", "Enter", selector="#s-status")
    b.wait_for("main", "#s-result.conflict")
    text = b.text("main", "#s-result")
    assert "Someone else changed this agent’s status" in text, text
    assert f"it was {loaded}" in text and "it is now Meal" in text, text
    assert "Nothing was changed" in text
    assert emulator.agent(uid)["presence"] == "Meal"
    assert b.focused("main") == "s-refresh"
    shot(b, "main", "admin-412.png")
    b.press("main", "Enter")                 # Refresh current status
    b.wait_fn("main", "return document.querySelector('#s-cur-status') && "
                      "document.querySelector('#s-cur-status').textContent === 'Meal'")
    assert b.text("main", "#s-cur-etag") == admin_status(httpd, uid)["etag"]
    assert b.focused("main") == "s-status"
    assert b.eval("main", "return document.querySelector('#s-status').value") == "Away"
    b.press("main", "Enter")                 # the same choice, now deliberately
    b.wait_for("main", "#s-result.ok")
    assert emulator.agent(uid)["presence"] == "Away"


def test_status_form_keyboard_only(httpd, br, base, emulator):
    b = br
    uid = "dash-john"
    b.goto("main", "about:blank")           # a fresh load: focus starts at the top
    go(b, base, "#/admin")
    b.wait_fn("main", "return document.querySelectorAll('#s-user option').length > 5")
    order = []
    for _ in range(14):
        b.press("main", "Tab")
        f = b.focused("main")
        order.append(f)
        if f == "s-user":
            break
    # Skip link, the views' links in order, then the form.
    assert order[0].startswith("a.skip"), order
    assert [o.split(":", 1)[1] for o in order[1:-1]] == [
        "Board", "History", "Alerts", "Stream health", "Status change", "Weights", "Traces",
        "Strategies", "Audit trail"], order
    assert order[-1] == "s-user", order
    # Visible focus: a real outline on the focused control.
    ring = b.eval("main", "const s = getComputedStyle(document.activeElement);"
                          "return [s.outlineStyle, parseFloat(s.outlineWidth)]")
    assert ring[0] != "none" and ring[1] >= 2, ring
    b.type("main", "John B")                 # type-ahead on the focused select
    assert b.eval("main", "return document.querySelector('#s-user').value") == uid
    b.press("main", "Tab")
    assert b.focused("main") == "s-load"
    b.press("main", "Enter")
    b.wait_fn("main", "return !document.querySelector('#s-fieldset').disabled && "
                      "document.activeElement.id === 's-status'")
    b.type("main", "Training")
    b.press("main", "Tab")
    assert b.focused("main") == "s-reason"
    b.type("main", "by keyboard")
    b.press("main", "Tab")
    assert b.focused("main") == "s-wrapup"
    b.press("main", "Tab")
    assert b.focused("main") == "s-submit"
    ring = b.eval("main", "const s = getComputedStyle(document.activeElement);"
                          "return [s.outlineStyle, parseFloat(s.outlineWidth)]")
    assert ring[0] != "none" and ring[1] >= 2, ring
    b.press("main", "Shift+Tab")
    b.press("main", "Enter")                 # Enter in a text field submits the form
    b.wait_for("main", "#s-result.ok")
    assert emulator.agent(uid)["presence"] == "Training"
    assert emulator.agent(uid)["presence_message"] == "by keyboard"


def test_status_errors_next_to_fields(httpd, br, base):
    b = br
    allow_console(r"status of 422")
    open_status(b, base, "dash-john")
    b.fill("main", "#s-status", "Lunch Break Nap")
    b.press("main", "Enter", selector="#s-status")
    b.wait_for("main", "#s-result.bad")
    assert "no active presence named 'Lunch Break Nap'" in b.text("main", "#s-result")
    assert b.attr("main", "#s-status", "aria-invalid") == "true"
    assert b.text("main", "#s-status-error").strip()
    assert b.focused("main") == "s-status"


@pytest.mark.allow_log(r"AH01617: user supervisor: authentication failure")
def test_admin_401_in_words(httpd, br, base):
    b = br
    allow_console(r"status of 401")
    b.goto("wrongpw", base + "#/audit")
    b.wait_for("wrongpw", "#view-audit .error")
    text = b.text("wrongpw", "#view-audit .error")
    assert "not signed in" in text and "401" in text, text
    b.goto("wrongpw", base + "#/admin?user_id=dash-john")
    b.wait_for("wrongpw", "#s-error")
    assert "not signed in" in b.text("wrongpw", "#s-error")
    assert b.eval("wrongpw", "return document.querySelector('#s-fieldset').disabled")
    # The read API needs no admin account: the board works for this user.
    b.goto("wrongpw", base + "#/board")
    wait_tiles(b, "wrongpw", len(AGENTS))
    shot(b, "wrongpw", "admin-401.png")
    b.goto("wrongpw", "about:blank")


def test_admin_403_problem_in_words(httpd, br, base):
    """The coming GcmonAdminActor refusal (a 403 problem naming the directive) is
    explained, with what the Apache admin has to do."""
    b = br
    allow_console(r"status of 403")
    detail = ("admin requests need an authenticated user (GcmonAdminActor user): "
              "no REMOTE_USER")
    b.call("fake", page="fake", pattern=r"/gcmon/api/v1/admin/audit", responses=[{
        "status": 403, "headers": {"Content-Type": "application/problem+json"},
        "body": {"type": "urn:gcmon:problem:no_actor", "title": "No authenticated user",
                 "status": 403, "detail": detail}}])
    b.goto("fake", base + "#/audit")
    b.wait_for("fake", "#view-audit .error")
    text = b.text("fake", "#view-audit .error")
    assert detail in text and "authentication" in text, text
    b.goto("fake", "about:blank")
    b.call("unfake", page="fake")


def test_audit_trail_paged(httpd, br, base):
    b = br
    import base64
    auth = "Basic " + base64.b64encode(f"{ADMIN_USER}:{ADMIN_PASSWORD}".encode()).decode()
    for i, status in enumerate(["Busy", "Meeting"] * 6):
        r = httpd.admin("PUT", f"{API}/admin/agents/dash-linus/status",
                        body={"status": status, "reason": f"audit {i}"},
                        headers={"Authorization": auth})
        assert r.status == 200, r
    api = httpd.get(API + "/admin/audit?limit=10", headers={"Authorization": auth}).json
    assert api["total"] > 10
    page2 = httpd.get(API + "/admin/audit?limit=10&cursor=" + api["next_cursor"],
                      headers={"Authorization": auth}).json
    go(b, base, "#/audit?limit=10")
    b.wait_for("main", "#audit-table")
    ids = b.eval("main", "return Array.from(document.querySelectorAll('#audit-table tbody tr'))"
                         ".map(r => Number(r.dataset.id))")
    assert ids == [r["id"] for r in api["data"]], ids
    first = b.eval("main", "return document.querySelector('#audit-table tbody tr').textContent")
    assert ADMIN_USER in first and "Agent status change" in first and "Linus Torvalds" in first
    shot(b, "main", "audit.png", full_page=True)
    b.click("main", "text=Older →")
    b.wait_fn("main", "return document.querySelector('#audit-table tbody tr').dataset.id == arg",
              arg=str(page2["data"][0]["id"]))


# ------------------------------------------------------------------ whole file

def test_every_view_screenshotted_and_local_only(httpd, br, base):
    b = br
    for name in ("board.png", "board-1280x800.png", "board-kiosk-1920.png", "board-dialog.png",
                 "history.png", "alerts.png", "stream.png", "admin-status.png", "admin-412.png",
                 "audit.png"):
        path = os.path.join(OUT, name)
        assert os.path.getsize(path) > 5000, path
    reqs = b.requests()
    assert reqs
    hosts = {urllib.parse.urlsplit(r["url"]).hostname for r in reqs
             if urllib.parse.urlsplit(r["url"]).scheme in ("http", "https")}
    assert hosts == {"127.0.0.1"}, hosts
