"""The dashboard's Strategies view (htdocs/js/strategies.js, issue 16's
"Dashboard screen") in a real Chromium against Debian's apache2 with both
modules and the Genesys Cloud emulator's routing strategy features (scripted
queue observations, members filtered by skill).

One server for the file: the dashboard under `Alias /gcmon <repo>/htdocs`,
Basic auth on /gcmon/api/v1/admin, client credentials without the stream (a
background holder runs the activation jobs and keeps the route tables'
observations fresh). One browser with one page ("main", 1280×800, admin
credentials).

The view creates a strategy (POST …/admin/strategies: a 422's structural
errors next to their fields, a live failure next to its target), lists the
strategies, opens one (targets, fallback, validation, status), activates it
(POST …/activate, then GET the strategy about once a second while it is
activating), rebalances it (old → new weights), deletes a draft, and runs a
route test (GET …/strategies/{id}/route N times: the answers per queue
against each target's weight share in its tier, the fallback counted).

After every test: no console error beyond the HTTP errors the test caused on
purpose, no CSP violation, no request to a host other than 127.0.0.1.
Screenshots land in build/test-output/dashboard/.
"""
import base64
import os
import re
import subprocess
import uuid

import pytest

import browser as browser_mod
from browser import Browser
from conftest import CLIENT_ID, CLIENT_SECRET
from httpd import REPO, BUILD, Httpd, wait_for
from stream_helpers import stream_status

pytestmark = pytest.mark.skipif(browser_mod.missing() is not None,
                                reason=str(browser_mod.missing()))

HTDOCS = os.path.join(REPO, "htdocs")
OUT = os.path.join(BUILD, "test-output", "dashboard")
API = "/gcmon/api/v1"

ADMIN_USER = "supervisor"
ADMIN_PASSWORD = "pw-strategies-test"

TAG = uuid.uuid4().hex[:8]
SKILL = "sk-ui-" + TAG
AGENTS = [f"sa-{TAG}-{i}" for i in range(4)]        # 0..2 have SKILL, 3 has none
Q1 = "sq1-" + TAG            # tier 1
Q2 = "sq2-" + TAG            # tier 1
Q3 = "sq3-" + TAG            # tier 2
QFB = "sqfb-" + TAG          # the fallback
QFULL = "sqfull-" + TAG      # no spare capacity: the live check fails
QNOSKILL = "sqns-" + TAG     # no member has SKILL
CAPACITY = 10
# oInteracting scripted per queue (capacity 10 each): occupancy 0.2 and 0.5
INTERACTING = {Q1: 2, Q2: 5, Q3: 0, QFB: 0, QFULL: CAPACITY, QNOSKILL: 0}


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def httpd(emulator):
    emulator.add_skills([{"id": SKILL, "name": "Strategy skill " + TAG}])
    emulator.add_agents([{"id": u, "name": f"Strategy Agent {i}", "presence": "OnQueue",
                          "skills": [{"id": SKILL, "proficiency": 3}] if i < 3 else []}
                         for i, u in enumerate(AGENTS)])
    # routing by best skill: activating a strategy that requires a skill writes ALL
    emulator.add_queues([{**q, "skill_evaluation_method": "BEST"} for q in (
        {"id": Q1, "name": "Strategy Q1 " + TAG, "members": AGENTS[:2]},
        {"id": Q2, "name": "Strategy Q2 " + TAG, "members": AGENTS[1:3]},
        {"id": Q3, "name": "Strategy Q3 " + TAG, "members": AGENTS[:1]},
        {"id": QFB, "name": "Strategy fallback " + TAG, "members": AGENTS},
        {"id": QFULL, "name": "Strategy full " + TAG, "members": AGENTS[:3]},
        {"id": QNOSKILL, "name": "Strategy no skill " + TAG, "members": AGENTS[3:]})])
    for q, n in INTERACTING.items():
        emulator.set_queue_observations(q, interacting=n)
    h = Httpd(emulator_url=emulator.url, env={"GCMON_TEST_SECRET": CLIENT_SECRET},
              gcmon_conf=(f"GcmonClientID {CLIENT_ID}\n"
                          "GcmonClientSecret env:GCMON_TEST_SECRET\n"
                          "GcmonRequestTimeout 5s\n"
                          "GcmonRateLimit 6000\n"),
              start_servers=1)
    pwfile = os.path.join(h.root, "conf", "htpasswd")
    p = subprocess.run(["htpasswd", "-c", "-b", "-B", pwfile, ADMIN_USER, ADMIN_PASSWORD],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0, p.stdout
    os.chmod(pwfile, 0o644)
    h.extra_conf = f"""Alias /gcmon "{HTDOCS}"
<Directory "{HTDOCS}">
    Require all granted
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
        wait_for(lambda: stream_status(h)["holder"], timeout=20, what="a holder")
        yield h
    finally:
        h.cleanup()


@pytest.fixture(scope="module")
def base(httpd):
    return f"http://127.0.0.1:{httpd.port}/gcmon/"


@pytest.fixture(scope="module")
def br(httpd, base):
    os.makedirs(OUT, exist_ok=True)
    b = Browser().start(stderr_path=os.path.join(OUT, "driver-strategies.log"))
    try:
        b.new_context("admin", credentials={"username": ADMIN_USER, "password": ADMIN_PASSWORD},
                      viewport={"width": 1280, "height": 800})
        b.new_page("main", "admin")
        yield b
    finally:
        b.stop()


ALLOWED_CONSOLE = []


def allow_console(*patterns):
    """Console errors the current test causes on purpose (HTTP errors it provokes)."""
    ALLOWED_CONSOLE.extend(patterns)


@pytest.fixture(autouse=True)
def browser_clean(request, httpd, emulator):
    emulator.clear_faults()
    if "br" not in request.fixturenames:
        yield
        return
    b = request.getfixturevalue("br")
    ALLOWED_CONSOLE.clear()
    b.call("clear_console")
    yield
    emulator.clear_faults()
    logs = b.console()
    bad = [f"{page}: {m['type']}: {m['text']} ({m.get('location', '')})"
           for page, msgs in logs.items() for m in msgs
           if m["type"] in ("error", "pageerror", "warning")
           and not any(re.search(p, m["text"]) for p in ALLOWED_CONSOLE)]
    assert not bad, "console errors:\n" + "\n".join(bad)
    away = [r for r in b.requests() if r.get("blocked")]
    assert not away, f"requests that left 127.0.0.1: {away}"
    v = b.eval("main", "return window.__cspViolations || []")
    assert not v, f"CSP violations: {v}"


# ------------------------------------------------------------------ helpers

def basic():
    return "Basic " + base64.b64encode(f"{ADMIN_USER}:{ADMIN_PASSWORD}".encode()).decode()


def api_get(httpd, path):
    r = httpd.get(API + path, headers={"Authorization": basic()})
    assert r.status == 200, r
    return r.json


def api_create(httpd, name, targets, fallback=QFB, skills=()):
    body = {"name": name,
            "selection_criteria": {"skills": [{"skill_id": s, "required": True} for s in skills]},
            "targets": [{"queue_id": q, "priority": p, "weight": w, "capacity": CAPACITY}
                        for q, p, w in targets],
            "fallback": {"queue_id": fallback, "priority": 99, "weight": 1}}
    r = httpd.admin("POST", API + "/admin/strategies", body=body, headers={"Authorization": basic()})
    assert r.status == 201, r
    return r.json


def strategy_requests(emulator):
    """What gcmon asked Genesys for a strategy: observations, members, queue reads/writes."""
    return [r for r in emulator.requests()
            if r["path"].startswith("/api/v2/analytics/queues/observations")
            or r["path"].startswith("/api/v2/routing/queues")]


def shot(b, name):
    return b.screenshot("main", os.path.join(OUT, name), full_page=True)


def open_view(b, base, query=""):
    b.goto("main", "about:blank")           # a fresh page: nothing kept from the last test
    b.goto("main", base + "#/strategies" + query)
    b.wait_for("main", "#sg-new")


def new_form(b):
    b.click("main", "#sg-new")
    b.wait_for("main", "#sg-form")
    assert b.focused("main") == "sg-name"


def fill_target(b, i, queue, priority="1", weight="1", capacity=str(CAPACITY)):
    while b.count("main", f"#sg-target-{i}-queue_id") == 0:
        b.click("main", "#sg-add-target")
    b.fill("main", f"#sg-target-{i}-queue_id", queue)
    b.fill("main", f"#sg-target-{i}-priority", priority)
    b.fill("main", f"#sg-target-{i}-weight", weight)
    b.fill("main", f"#sg-target-{i}-capacity", capacity)


def fill_form(b, name, targets, fallback=QFB, skills=()):
    b.fill("main", "#sg-name", name)
    for i, s in enumerate(skills):
        b.click("main", "#sg-add-skill")
        b.fill("main", f"#sg-skill-{i}-skill_id", s)
    for i, t in enumerate(targets):
        fill_target(b, i, *t)
    b.fill("main", "#sg-fallback-queue_id", fallback)


def wait_status(b, status, timeout=30000):
    b.wait_fn("main", "const e = document.getElementById('sg-status-badge');"
                      "return e && e.textContent === arg", arg=status, timeout=timeout)


def shown_id(b):
    return b.text("main", "#sg-id")


def list_total(httpd):
    return api_get(httpd, "/admin/strategies?limit=100")["total"]


def wait_route(httpd, sid, reason, timeout=60):
    """Poll the read API until the strategy's route answers with `reason`."""
    def ok():
        r = httpd.get(f"{API}/strategies/{sid}/route")
        return r.status == 200 and r.json["reason"] == reason
    wait_for(ok, timeout=timeout, interval=0.5, what=f"route of {sid} answers {reason}")


# ------------------------------------------------------------------ tests

def test_view_in_nav_and_form(httpd, br, base):
    br.goto("main", base + "#/board")
    br.wait_for("main", "#nav a[data-view=strategies]")
    br.click("main", "#nav a[data-view=strategies]")
    br.wait_fn("main", "return document.body.dataset.view === 'strategies' && "
                       "document.activeElement && document.activeElement.id === 'h-strategies'")
    assert br.eval("main", "return document.title") == "gcmon — Strategies"
    # the form opens on "New strategy", the keyboard in its first field
    assert br.count("main", "#sg-form:not([hidden])") == 0
    assert br.attr("main", "#sg-new", "aria-expanded") == "false"
    new_form(br)
    assert br.attr("main", "#sg-new", "aria-expanded") == "true"
    br.click("main", "#sg-add-skill")
    br.click("main", "#sg-add-target")
    unlabelled = br.eval("main", """
        return Array.from(document.querySelectorAll(
            '#view-strategies input, #view-strategies select, #view-strategies textarea'))
          .filter(i => !i.labels.length && !i.getAttribute('aria-label')).map(i => i.id);""")
    assert unlabelled == []
    # the defaults: one target of priority 1 and weight 1 (and the added one), the fallback at 99
    assert br.eval("main", "return document.getElementById('sg-target-0-priority').value") == "1"
    assert br.eval("main", "return document.getElementById('sg-target-0-weight').value") == "1"
    assert br.eval("main", "return document.getElementById('sg-fallback-priority').value") == "99"
    # adding a row puts the keyboard in it; removing one renumbers the rest
    assert br.focused("main") == "sg-target-1-queue_id"
    br.fill("main", "#sg-target-1-queue_id", "second")
    br.click("main", "#sg-target-0-remove")
    assert br.eval("main", "return document.getElementById('sg-target-0-queue_id').value") == "second"
    assert br.count("main", "#sg-target-1-queue_id") == 0
    assert br.focused("main") == "sg-target-0-remove"
    br.click("main", "#sg-cancel")
    assert br.count("main", "#sg-form:not([hidden])") == 0
    assert br.focused("main") == "sg-new"


def test_structural_error_next_to_its_field(httpd, br, base, emulator):
    allow_console(r"status of 422")
    before = list_total(httpd)
    open_view(br, base)
    new_form(br)
    fill_form(br, "Bad weights " + TAG, [(Q1, "1", "1"), (Q2, "1", "0")], fallback=Q1)
    emulator.clear_requests()
    br.call("clear_requests")
    br.click("main", "#sg-create")
    br.wait_for("main", "#sg-target-1-weight-error")
    # the messages sit next to the inputs they concern, which are marked invalid
    assert br.text("main", "#sg-target-1-weight-error").strip()
    assert br.attr("main", "#sg-target-1-weight", "aria-invalid") == "true"
    assert br.attr("main", "#sg-target-1-weight", "aria-describedby") == "sg-target-1-weight-error"
    assert br.count("main", "#sg-fallback-queue_id-error") == 1        # the fallback is a target
    assert br.attr("main", "#sg-fallback-queue_id", "aria-invalid") == "true"
    assert br.count("main", "#sg-target-0-weight-error") == 0
    assert br.count("main", "#sg-target-0-live:not([hidden])") == 0
    assert br.focused("main") == "sg-target-1-weight"
    assert "nothing was stored" in br.text("main", "#sg-form-error")
    posts = [r for r in br.requests(page="main", match=r"/admin/strategies$") if r["method"] == "POST"]
    assert len(posts) == 1 and posts[0]["status"] == 422, posts
    hd = posts[0]["headers"]
    assert hd["content-type"] == "application/json" and hd["x-gcmon-request"] == "1", hd
    assert strategy_requests(emulator) == []             # refused before asking Genesys
    assert list_total(httpd) == before
    shot(br, "strategies-422-fields.png")
    # no name at all: the message next to the name
    br.fill("main", "#sg-name", "")
    br.fill("main", "#sg-target-1-weight", "0.5")
    br.fill("main", "#sg-fallback-queue_id", QFB)
    br.click("main", "#sg-create")
    br.wait_for("main", "#sg-name-error")
    assert br.count("main", "#sg-target-1-weight-error") == 0
    assert br.focused("main") == "sg-name"
    assert list_total(httpd) == before


def test_live_failure_next_to_its_target(httpd, br, base, emulator):
    allow_console(r"status of 422")
    before = list_total(httpd)
    open_view(br, base)
    new_form(br)
    fill_form(br, "Live fail " + TAG, [(Q1, "1", "1"), (QFULL, "1", "1"), (QNOSKILL, "2", "1")],
              skills=[SKILL])
    br.click("main", "#sg-create")
    br.wait_for("main", "#sg-target-1-live.bad")
    full = br.text("main", "#sg-target-1-live")
    assert "failed" in full and re.search(r"spare capacity 0\b", full), full
    noskill = br.text("main", "#sg-target-2-live")
    assert "failed" in noskill and "skilled members no" in noskill, noskill
    ok = br.text("main", "#sg-target-0-live")
    assert "passed" in ok and "spare capacity 8" in ok, ok            # 10 − 2
    assert br.attr("main", "#sg-target-1-queue_id", "aria-invalid") == "true"
    assert br.attr("main", "#sg-target-1-queue_id", "aria-describedby") == "sg-target-1-live"
    assert br.attr("main", "#sg-target-0-queue_id", "aria-invalid") is None
    assert br.focused("main") == "sg-target-1-queue_id"
    assert "live check" in br.text("main", "#sg-form-error")
    assert list_total(httpd) == before
    shot(br, "strategies-422-live.png")


def test_create_ok_appears_in_list(httpd, br, base):
    name = "Sales split " + TAG
    open_view(br, base)
    new_form(br)
    fill_form(br, name, [(Q1, "1", "2"), (Q2, "1", "1"), (Q3, "2", "1")], skills=[SKILL])
    br.fill("main", "#sg-description", "Two tiers, the fallback last")
    br.call("clear_requests")
    br.click("main", "#sg-create")
    br.wait_for("main", "#sg-status-badge")
    posts = [r for r in br.requests(page="main", match=r"/admin/strategies$") if r["method"] == "POST"]
    assert len(posts) == 1 and posts[0]["status"] == 201, posts
    assert br.focused("main") == "sg-detail"
    assert br.text("main", "#sg-status-badge") == "draft"
    sid = shown_id(br)
    st = api_get(httpd, f"/admin/strategies/{sid}")
    assert st["name"] == name and st["status"] == "draft"
    assert "id=" + sid in br.call("url", page="main")
    # the targets by tier with weights, shares and capacity; the fallback; the validation
    rows = br.eval("main", """return Array.from(document.querySelectorAll('#sg-targets-table tbody tr'))
        .map(tr => Array.from(tr.children).map(c => c.textContent))""")
    assert rows == [[Q1, "1", "2", "66.7 %", str(CAPACITY)], [Q2, "1", "1", "33.3 %", str(CAPACITY)],
                    [Q3, "2", "1", "100 %", str(CAPACITY)]], rows
    assert QFB in br.text("main", "#sg-fallback")
    assert SKILL in br.text("main", "#sg-skills-list") and "required" in br.text("main", "#sg-skills-list")
    val = br.eval("main", """return Array.from(document.querySelectorAll('#sg-validation-table tbody tr'))
        .map(tr => [tr.dataset.queue, tr.children[1].textContent])""")
    assert val == [[Q1, "8"], [Q2, "5"], [Q3, "10"]], val
    # a draft can be activated and deleted
    assert br.count("main", "#sg-activate") == 1 and br.count("main", "#sg-delete") == 1
    # it is in the list, newest first, marked as the one shown
    br.wait_fn("main", "const r = document.querySelector('#sgl-table tbody tr');"
                       "return r && r.dataset.id === arg", arg=sid)
    assert br.attr("main", f'#sgl-table tr[data-id="{sid}"]', "aria-current") == "true"
    row = br.eval("main", "return Array.from(document.querySelector('#sgl-table tbody tr').children)"
                          ".map(c => c.textContent)")
    assert row[0] == name and row[1] == "draft" and row[2] == "3" and row[3] == "2", row   # 3 targets, 2 tiers
    shot(br, "strategies-draft.png")


def test_activate_reaches_active(httpd, br, base, emulator):
    st = api_create(httpd, "Activate me " + TAG, [(Q1, 1, 1), (Q2, 1, 1)], skills=[SKILL])
    sid = st["id"]
    open_view(br, base, "?id=" + sid)
    wait_status(br, "draft")
    assert {q["id"]: q["skill_evaluation_method"] for q in emulator.queues()
            if q["id"] in (Q1, Q2)} == {Q1: "BEST", Q2: "BEST"}
    br.call("clear_requests")
    br.click("main", "#sg-activate")
    posts = wait_for(lambda: [r for r in br.requests(page="main", match=r"/activate$")
                              if r["method"] == "POST" and r.get("status")],
                     what="the activate POST's answer")
    assert posts[0]["status"] == 202, posts
    assert posts[0]["headers"]["x-gcmon-request"] == "1"
    assert br.focused("main") == "sg-status"
    wait_status(br, "active", timeout=45000)
    # the page polled the strategy while it was activating, then stopped
    gets = [r for r in br.requests(page="main", match=r"/admin/strategies/" + sid + "$")
            if r["method"] == "GET"]
    assert gets, gets
    assert "Active" in br.text("main", "#sg-status-text")
    assert br.text("main", "#sg-activated") not in ("", "—")
    doc = api_get(httpd, f"/admin/strategies/{sid}")
    if doc.get("activation"):         # the job's progress per queue, as the server reports it
        shown = br.eval("main", "return Array.from(document.querySelectorAll('#sg-activation-queues li'))"
                                ".map(li => [li.dataset.queue, li.dataset.state])")
        assert shown == [[q["queue_id"], q["state"]] for q in doc["activation"]["queues"]], shown
    # the selection criteria reached the target queues (a required skill: ALL)
    queues = {q["id"]: q for q in emulator.queues()}
    assert queues[Q1]["skill_evaluation_method"] == "ALL", queues[Q1]
    assert queues[Q2]["skill_evaluation_method"] == "ALL", queues[Q2]
    # an active strategy cannot be deleted or activated again
    assert br.count("main", "#sg-delete") == 0 and br.count("main", "#sg-activate") == 0
    n = len(gets)
    br.eval("main", "return new Promise(r => setTimeout(r, 1500))")   # bounded negative check
    gets = [r for r in br.requests(page="main", match=r"/admin/strategies/" + sid + "$")
            if r["method"] == "GET"]
    assert len(gets) == n, gets
    # the list says so too
    br.wait_fn("main", "const r = document.querySelector(`#sgl-table tr[data-id=\"${arg}\"]`);"
                       "return r && r.dataset.status === 'active'", arg=sid)
    shot(br, "strategies-active.png")
    # the audit: gcmon's rows, and with Genesys Cloud's the activation's queue writes
    br.click("main", "#sg-audit-upstream")
    br.click("main", "#sg-audit-show")
    br.wait_for("main", "#sg-audit-table")
    assert br.focused("main") == "sg-audit-result"
    rows = br.eval("main", """return Array.from(document.querySelectorAll('#sg-audit-table tbody tr'))
        .map(tr => ({source: tr.dataset.source, text: Array.from(tr.children).map(c => c.textContent)}))""")
    ours = [r["text"] for r in rows if r["source"] == "gcmon"]
    assert any(t[2] == ADMIN_USER and t[3] == "strategy_activate" for t in ours), ours
    theirs = [r["text"] for r in rows if r["source"] == "genesys"]
    assert any("skillEvaluationMethod" in t[5] and "→ ALL" in t[5] for t in theirs), theirs


def test_leaving_the_view_stops_polling(httpd, br, base, emulator):
    """The activation's members probe answers slowly: the strategy stays activating for a
    few seconds; away from the view the page asks nothing, back on it the page follows it
    again until it is active."""
    st = api_create(httpd, "Slow activation " + TAG, [(Q3, 1, 1)], skills=[SKILL])
    sid = st["id"]
    open_view(br, base, "?id=" + sid)
    wait_status(br, "draft")
    emulator.fault(r"^/api/v2/routing/queues/[^/]+/members$", method="GET", delay=3, count=1)
    br.click("main", "#sg-activate")
    wait_status(br, "activating")
    br.click("main", "#nav a[data-view=board]")
    br.wait_fn("main", "return document.body.dataset.view === 'board'")
    br.call("clear_requests")
    br.eval("main", "return new Promise(r => setTimeout(r, 2000))")   # bounded negative check
    assert br.requests(page="main", match=r"/admin/strategies/" + sid) == []
    assert api_get(httpd, f"/admin/strategies/{sid}")["status"] == "activating"
    br.click("main", "#nav a[data-view=strategies]")
    wait_status(br, "active", timeout=45000)
    gets = [r for r in br.requests(page="main", match=r"/admin/strategies/" + sid + "$")
            if r["method"] == "GET"]
    assert gets, gets


def test_rebalance_shows_new_weights(httpd, br, base, emulator):
    st = api_create(httpd, "Rebalance me " + TAG, [(Q1, 1, 1), (Q2, 1, 1), (Q3, 2, 1)])
    sid = st["id"]
    open_view(br, base, "?id=" + sid)
    wait_status(br, "draft")
    br.click("main", "#sg-rebalance")
    br.wait_for("main", "#sg-rebalance-table")
    assert br.focused("main") == "sg-result"
    got = br.eval("main", """return Array.from(document.querySelectorAll('#sg-rebalance-table tbody tr'))
        .map(tr => [tr.dataset.queue, tr.querySelector('.old-weight').textContent,
                    tr.querySelector('.new-weight').textContent.replace('→', '').trim()])""")
    want = [[q, "1", f"{round(1 / (1 + INTERACTING[q] / CAPACITY), 4):g}"] for q in (Q1, Q2, Q3)]
    assert got == want, got
    # the strategy's weights changed: the targets table shows the new ones
    br.wait_fn("main", "const c = document.querySelector(`#sg-targets-table tr[data-queue=\"${arg}\"] td.weight`);"
                       "return c && c.textContent === '0.6667'", arg=Q2)
    stored = {t["queue_id"]: t["weight"] for t in api_get(httpd, f"/admin/strategies/{sid}")["targets"]}
    assert abs(stored[Q1] - 1 / 1.2) < 1e-9 and abs(stored[Q2] - 1 / 1.5) < 1e-9, stored
    shot(br, "strategies-rebalanced.png")
    # the latency panel: Genesys Cloud's conversation aggregates per target (the last 24 h)
    emulator.set_queue_aggregates(Q1, tWait=[1000, 3000], tAnswered=[500], nOffered=2)
    try:
        br.click("main", "#sg-lat-show")
        br.wait_for("main", "#sg-lat-table")
        cells = br.eval("main", """const t = document.getElementById('sg-lat-table');
            const heads = Array.from(t.querySelectorAll('thead th')).map(th => th.textContent);
            const out = {};
            for (const tr of t.querySelectorAll('tbody tr'))
                out[tr.dataset.queue] = Object.fromEntries(Array.from(tr.children).map((c, i) => [heads[i], c.textContent]));
            return out;""")
        assert set(cells) == {Q1, Q2, Q3}, cells
        assert cells[Q1]["Offered"] == "2" and cells[Q1]["Answered"] == "1", cells[Q1]
        assert cells[Q1]["Wait, average (ms)"] == "2000" and cells[Q1]["Wait, longest (ms)"] == "3000", cells[Q1]
        assert cells[Q2]["Offered"] == "0" and cells[Q2]["Wait, average (ms)"] == "—", cells[Q2]
    finally:
        emulator.clear_aggregates()


def test_route_test_distribution_and_fallback(httpd, br, base, emulator):
    st = api_create(httpd, "Route me " + TAG, [(Q1, 1, 3), (Q2, 1, 1), (Q3, 2, 1)])
    sid = st["id"]
    r = httpd.admin("POST", f"{API}/admin/strategies/{sid}/activate", body={},
                    headers={"Authorization": basic()})
    assert r.status == 202, r
    wait_for(lambda: api_get(httpd, f"/admin/strategies/{sid}")["status"] == "active", timeout=45,
             what="the strategy active")
    wait_route(httpd, sid, "weighted")
    open_view(br, base, "?id=" + sid)
    wait_status(br, "active")
    br.fill("main", "#sg-route-n", "200")
    br.call("clear_requests")
    br.press("main", "Enter", selector="#sg-route-n")
    br.wait_for("main", "#sg-route-table", timeout=30000)
    assert br.focused("main") == "sg-route-result"
    routes = br.requests(page="main", match=r"/strategies/" + sid + "/route$")
    assert len(routes) == 200 and all(x["status"] == 200 for x in routes), len(routes)
    rows = br.eval("main", """return Array.from(document.querySelectorAll('#sg-route-table tbody tr'))
        .map(tr => ({q: tr.dataset.queue, kind: tr.dataset.kind,
                     n: Number(tr.querySelector('.answers').textContent)}))""")
    by_q = {x["q"]: x for x in rows}
    # every answer went to a tier-1 target (both have spare capacity): Q3 (tier 2) and the
    # fallback got none, and no queue outside the strategy appeared
    assert set(by_q) == {Q1, Q2, Q3, QFB}, rows
    assert all(x["kind"] in ("target", "fallback") for x in rows), rows
    assert by_q[Q1]["n"] + by_q[Q2]["n"] == 200, rows
    assert by_q[Q3]["n"] == 0 and by_q[QFB]["n"] == 0, rows
    # weights 3:1 inside the tier: Q1 about 75 % (200 draws: well within 60..90 %)
    assert 120 <= by_q[Q1]["n"] <= 180, rows
    assert br.text("main", f'#sg-route-table tr[data-queue="{Q1}"] .expected') == "75 %"
    assert br.text("main", "#sg-route-fallback") == "0"
    assert br.text("main", "#sg-route-answers").startswith("200 of 200")
    shot(br, "strategies-route.png")

    # every target saturated: the fallback answers
    for q in (Q1, Q2, Q3):
        emulator.set_queue_observations(q, interacting=CAPACITY)
    try:
        wait_route(httpd, sid, "fallback", timeout=90)
        br.click("main", "#sg-route-run")
        br.wait_fn("main", "const e = document.getElementById('sg-route-fallback');"
                           "return e && /^200 /.test(e.textContent)", timeout=30000)
        assert "saturated" in br.text("main", "#sg-route-fallback")
        n_fb = br.text("main", f'#sg-route-table tr[data-queue="{QFB}"] .answers')
        assert n_fb == "200"
        shot(br, "strategies-route-fallback.png")
    finally:
        for q in (Q1, Q2, Q3):
            emulator.set_queue_observations(q, interacting=INTERACTING[q])


def test_route_test_of_a_draft_says_why(httpd, br, base):
    allow_console(r"status of 404")
    st = api_create(httpd, "Not active " + TAG, [(Q1, 1, 1)])
    open_view(br, base, "?id=" + st["id"])
    wait_status(br, "draft")
    br.fill("main", "#sg-route-n", "5")
    br.click("main", "#sg-route-run")
    br.wait_for("main", "#sg-route-error")
    assert "active" in br.text("main", "#sg-route-error")
    # a bad N is refused in the page, next to the input
    br.fill("main", "#sg-route-n", "0")
    br.call("clear_requests")
    br.click("main", "#sg-route-run")
    br.wait_for("main", "#sg-route-n-error")
    assert br.focused("main") == "sg-route-n"
    assert br.requests(page="main", match=r"/route$") == []


def test_delete_draft(httpd, br, base):
    st = api_create(httpd, "Delete me " + TAG, [(Q1, 1, 1)])
    sid = st["id"]
    open_view(br, base, "?id=" + sid)
    wait_status(br, "draft")
    br.wait_fn("main", "return !!document.querySelector(`#sgl-table tr[data-id=\"${arg}\"]`)", arg=sid)
    br.click("main", "#sg-delete")
    br.wait_for("main", "#sg-delete-yes")
    assert br.focused("main") == "sg-delete-no"          # the safe choice first
    br.call("clear_requests")
    br.click("main", "#sg-delete-yes")
    br.wait_fn("main", "return document.getElementById('sg-detail').hidden")
    dels = [r for r in br.requests(page="main", match=r"/admin/strategies/" + sid + "$")
            if r["method"] == "DELETE"]
    assert len(dels) == 1 and dels[0]["status"] == 204, dels
    assert "deleted" in br.text("main", "#sg-notice")
    assert br.focused("main") == "sgl-head"
    br.wait_fn("main", "return !document.querySelector(`#sgl-table tr[data-id=\"${arg}\"]`)", arg=sid)
    r = httpd.get(f"{API}/admin/strategies/{sid}", headers={"Authorization": basic()})
    assert r.status == 404, r


def test_keyboard_only_create(httpd, br, base):
    name = "Keyboard " + TAG
    open_view(br, base)
    br.call("focus", page="main", selector="#sg-new")
    br.press("main", "Enter")
    assert br.focused("main") == "sg-name"
    br.type("main", name)
    br.press("main", "Tab")                              # description
    assert br.focused("main") == "sg-description"
    br.press("main", "Tab")                              # "Add skill"
    assert br.focused("main") == "sg-add-skill"
    br.press("main", "Enter")                            # a skill row, the keyboard in it
    assert br.focused("main") == "sg-skill-0-skill_id"
    br.type("main", SKILL)
    for want in ("sg-skill-0-required", "sg-skill-0-remove", "sg-add-skill", "sg-target-0-queue_id"):
        br.press("main", "Tab")
        assert br.focused("main") == want
    br.type("main", Q1)
    br.press("main", "Tab")
    br.press("main", "Tab")                              # weight
    br.press("main", "Control+a")
    br.type("main", "2")
    br.press("main", "Tab")                              # capacity
    br.type("main", str(CAPACITY))
    br.press("main", "Tab")                              # remove
    br.press("main", "Tab")                              # "Add target"
    assert br.focused("main") == "sg-add-target"
    br.press("main", "Enter")
    assert br.focused("main") == "sg-target-1-queue_id"
    br.type("main", Q2)
    for _ in range(3):
        br.press("main", "Tab")
    assert br.focused("main") == "sg-target-1-capacity"
    br.type("main", str(CAPACITY))
    for want in ("sg-target-1-remove", "sg-add-target", "sg-fallback-queue_id"):
        br.press("main", "Tab")
        assert br.focused("main") == want
    br.type("main", QFB)
    br.press("main", "Enter")                            # Enter submits the form
    br.wait_for("main", "#sg-status-badge")
    assert br.focused("main") == "sg-detail"
    sid = shown_id(br)
    st = api_get(httpd, f"/admin/strategies/{sid}")
    assert st["name"] == name
    assert [(t["queue_id"], t["weight"], t["capacity"]) for t in st["targets"]] == \
        [(Q1, 2, CAPACITY), (Q2, 1, CAPACITY)]
    assert st["selection_criteria"]["skills"] == [{"skill_id": SKILL, "required": True}]
    assert st["fallback"]["queue_id"] == QFB and st["fallback"]["priority"] == 99


def test_list_filter_by_status(httpd, br, base):
    listing = api_get(httpd, "/admin/strategies?status=active&limit=100")
    assert listing["total"] >= 1, listing
    open_view(br, base)
    br.wait_fn("main", "return document.querySelectorAll('#sgl-table tbody tr').length > 0")
    br.select("main", "#sgl-status", "active")
    br.click("main", "#sgl-show")
    br.wait_fn("main", "const rows = Array.from(document.querySelectorAll('#sgl-table tbody tr'));"
                       "return rows.length === arg && rows.every(r => r.dataset.status === 'active')",
               arg=min(listing["total"], 20))
    ids = br.eval("main", "return Array.from(document.querySelectorAll('#sgl-table tbody tr'))"
                          ".map(tr => tr.dataset.id)")
    assert ids == [d["id"] for d in listing["data"][:20]]
    assert "status=active" in br.call("url", page="main")
    # open one from the keyboard
    br.call("focus", page="main", selector=f'#sgl-table tr[data-id="{ids[0]}"] button.link')
    br.press("main", "Enter")
    br.wait_fn("main", "const e = document.getElementById('sg-id'); return e && e.textContent === arg",
               arg=ids[0])
    assert br.focused("main") == "sg-detail"
