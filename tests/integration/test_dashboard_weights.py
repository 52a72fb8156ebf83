"""The dashboard's Weights view (htdocs/js/weights.js, issue 14's "Dashboard
screen") in a real Chromium against Debian's apache2 with both modules and the
Genesys Cloud emulator.

One server for the file: the dashboard under `Alias /gcmon <repo>/htdocs`,
Basic auth on /gcmon/api/v1/admin (the supervisor of test_dashboard.py), a
weight skill configured for one queue (GcmonWeightSkill). One browser with
one page ("main", 1280×800, admin credentials).

The view reads the queue's members with their current proficiency (GET
…/admin/queues/{id}/weights), shows the sum of the entered weights and the
saturation projection live, applies with POST (an Idempotency-Key per
attempt), shows a 422's errors next to their fields and the rollback of a
502 in words, and lists the stored distributions with their detail.

After every test: no console error beyond the HTTP errors the test caused on
purpose, no CSP violation, no request to a host other than 127.0.0.1.
Screenshots land in build/test-output/dashboard/.
"""
import json
import os
import re
import subprocess
import uuid

import pytest

import browser as browser_mod
from browser import Browser
from conftest import CLIENT_ID, CLIENT_SECRET
from httpd import REPO, BUILD, Httpd

pytestmark = pytest.mark.skipif(browser_mod.missing() is not None,
                                reason=str(browser_mod.missing()))

HTDOCS = os.path.join(REPO, "htdocs")
OUT = os.path.join(BUILD, "test-output", "dashboard")
API = "/gcmon/api/v1"

ADMIN_USER = "supervisor"
ADMIN_PASSWORD = "pw-weights-test"

TAG = uuid.uuid4().hex[:8]
SKILL = "wskill-ui-" + TAG
QUEUE = "wq-ui-" + TAG               # has GcmonWeightSkill QUEUE SKILL
# id, name, routing status, joined, proficiency of SKILL (None: no such skill)
MEMBERS = [
    (f"wu-{TAG}-ada", "Ada Lovelace", "IDLE", True, 2.5),
    (f"wu-{TAG}-grace", "Grace Hopper", "INTERACTING", True, 1.0),
    (f"wu-{TAG}-alan", "Alan Turing", "IDLE", True, None),
    (f"wu-{TAG}-kate", "Katherine Johnson", "IDLE", False, 4.0),
]
IDS = [m[0] for m in MEMBERS]
ACTIVE = sum(1 for m in MEMBERS if m[3])           # joined and not OFF_QUEUE
WAITING = 1
LOAD = WAITING + 1                                 # + Grace, interacting


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def httpd(emulator):
    emulator.add_skills([{"id": SKILL, "name": "Weight " + SKILL}])
    emulator.add_agents([{"id": u, "name": n, "presence": "OnQueue", "routing_status": rs,
                          "skills": [] if p is None else [{"id": SKILL, "proficiency": p}]}
                         for u, n, rs, _, p in MEMBERS])
    emulator.add_queues([{"id": QUEUE, "name": "Weights UI " + TAG,
                          "skill_evaluation_method": "NONE", "waiting": WAITING,
                          "members": [{"id": u, "joined": j} for u, _, _, j, _ in MEMBERS]}])
    h = Httpd(emulator_url=emulator.url, env={"GCMON_TEST_SECRET": CLIENT_SECRET},
              gcmon_conf=(f"GcmonClientID {CLIENT_ID}\n"
                          "GcmonClientSecret env:GCMON_TEST_SECRET\n"
                          "GcmonRequestTimeout 5s\n"
                          "GcmonRateLimit 6000\n"
                          f"GcmonWeightSkill {QUEUE} {SKILL}\n"),
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
        yield h
    finally:
        h.cleanup()


@pytest.fixture(scope="module")
def base(httpd):
    return f"http://127.0.0.1:{httpd.port}/gcmon/"


@pytest.fixture(scope="module")
def br(httpd, base):
    os.makedirs(OUT, exist_ok=True)
    b = Browser().start(stderr_path=os.path.join(OUT, "driver-weights.log"))
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

def writes(emulator):
    return [r for r in emulator.requests() if r["method"] in ("PUT", "DELETE", "PATCH")]


def skill_of(emulator, uid):
    r = emulator.request("GET", f"/api/v2/users/{uid}/routingskills?pageSize=100",
                         token=emulator.token())
    assert r.status == 200, r
    for s in r.json["entities"]:
        if s["id"] == SKILL:
            return s
    return None


def set_skill(emulator, uid, proficiency):
    r = emulator.request("PUT", f"/api/v2/users/{uid}/routingskills/{SKILL}",
                         body={"id": SKILL, "proficiency": proficiency, "state": "active"},
                         token=emulator.token())
    assert r.status == 200, r


def reset_skills(emulator):
    """Every member back to the seeded proficiency (a test may have applied weights)."""
    for u, _, _, _, p in MEMBERS:
        if p is not None:
            set_skill(emulator, u, p)
        elif skill_of(emulator, u) is not None:
            r = emulator.request("DELETE", f"/api/v2/users/{u}/routingskills/{SKILL}",
                                 token=emulator.token())
            assert r.status in (200, 204), r


def shot(b, name):
    return b.screenshot("main", os.path.join(OUT, name), full_page=True)


def open_editor(b, base, queue=QUEUE):
    """The Weights view with `queue` loaded by keyboard (type the id, Enter)."""
    b.goto("main", "about:blank")           # a fresh page: no input kept from the last test
    b.goto("main", base + "#/weights")
    b.wait_for("main", "#w-queue")
    b.fill("main", "#w-queue", queue)
    b.fill("main", "#w-skill", "")
    b.press("main", "Enter", selector="#w-queue")
    b.wait_fn("main", "return document.querySelectorAll('#w-members-table tbody tr').length === arg",
              arg=len(MEMBERS))


def member_row(b, uid):
    return b.eval("main", """
        const tr = document.querySelector(`#w-members-table tr[data-user="${arg}"]`);
        if (!tr) return null;
        const c = Array.from(tr.children).map(td => td.textContent.trim());
        return {name: c[0], user: c[1], routing: c[2], joined: c[3], active: c[4],
                proficiency: c[5], weight: c[6], input: tr.querySelector('input.weight').id};
    """, arg=uid)


def weight_input(b, uid):
    return "#" + member_row(b, uid)["input"]


def set_weights(b, weights):
    """weights: {uid: "0.4"}; the others are emptied."""
    for uid in IDS:
        b.fill("main", weight_input(b, uid), weights.get(uid, ""))


def sum_shown(b):
    return b.text("main", "#w-sum-value")


# ------------------------------------------------------------------ tests

def test_view_in_nav_and_keyboard_load(httpd, br, base, emulator):
    reset_skills(emulator)
    br.goto("main", base + "#/board")
    br.wait_for("main", "#nav a[data-view=weights]")
    br.click("main", "#nav a[data-view=weights]")
    br.wait_fn("main", "return document.body.dataset.view === 'weights' && "
                       "document.activeElement && document.activeElement.id === 'h-weights'")
    assert br.eval("main", "return document.title") == "gcmon — Weights"
    # every input of the queue picker has a label
    unlabelled = br.eval("main", """
        return Array.from(document.querySelectorAll('#view-weights input'))
          .filter(i => !i.labels.length && !i.getAttribute('aria-label')).map(i => i.id);""")
    assert unlabelled == []
    # nothing entered: the message is next to the queue input, in words
    br.click("main", "#w-load")
    br.wait_fn("main", "const e = document.getElementById('w-queue-error');"
                       "return e && /queue id/i.test(e.textContent)")
    assert br.attr("main", "#w-queue", "aria-invalid") == "true"
    assert br.focused("main") == "w-queue"
    # type the id and press Enter: the members, the focus on the first weight
    br.fill("main", "#w-queue", QUEUE)
    br.press("main", "Enter", selector="#w-queue")
    br.wait_fn("main", "return document.querySelectorAll('#w-members-table tbody tr').length === arg",
               arg=len(MEMBERS))
    assert br.focused("main") == "w-wt-0"
    assert "queue_id=" + QUEUE in br.call("url", page="main")
    assert br.count("main", "#w-queue-error") == 0


def test_members_with_current_proficiency(httpd, br, base, emulator):
    reset_skills(emulator)
    open_editor(br, base)
    ada = member_row(br, IDS[0])
    assert ada["name"] == "Ada Lovelace" and ada["user"] == IDS[0], ada
    assert ada["routing"] == "IDLE" and ada["joined"] == "yes" and ada["active"] == "yes", ada
    assert ada["proficiency"] == "2.5" and ada["weight"] == "0.5", ada
    grace = member_row(br, IDS[1])
    assert grace["routing"] == "INTERACTING" and grace["proficiency"] == "1" and grace["weight"] == "0.2", grace
    alan = member_row(br, IDS[2])
    assert alan["proficiency"] == "no skill" and alan["weight"] == "—", alan
    kate = member_row(br, IDS[3])
    assert kate["joined"] == "no" and kate["active"] == "no" and kate["proficiency"] == "4", kate
    # the inputs start empty; "Use current weights" fills in proficiency / 5
    assert br.eval("main", "return Array.from(document.querySelectorAll('input.weight'))"
                           ".every(i => i.value === '')")
    br.click("main", "#w-use-current")
    assert br.eval("main", f"return document.querySelector('{weight_input(br, IDS[0])}').value") == "0.5"
    assert br.eval("main", f"return document.querySelector('{weight_input(br, IDS[2])}').value") == ""
    br.wait_fn("main", "return document.getElementById('w-sum-value').textContent === '1.5'")
    shot(br, "weights-editor.png")


def test_live_sum(httpd, br, base):
    open_editor(br, base)
    assert sum_shown(br) == "0"
    br.fill("main", weight_input(br, IDS[0]), "0.3")
    br.wait_fn("main", "return document.getElementById('w-sum-value').textContent === '0.3'")
    br.fill("main", weight_input(br, IDS[1]), "0.45")
    br.wait_fn("main", "return document.getElementById('w-sum-value').textContent === '0.75'")
    assert not br.eval("main", "return document.getElementById('w-sum').classList.contains('over')")
    # typing key by key updates it as well
    br.call("focus", page="main", selector=weight_input(br, IDS[2]))
    br.type("main", "0.4")
    br.wait_fn("main", "return document.getElementById('w-sum-value').textContent === '1.15'")
    assert br.eval("main", "return document.getElementById('w-sum').classList.contains('over')")
    assert "over 1" in br.text("main", "#w-sum")
    br.click("main", "#w-clear")
    br.wait_fn("main", "return document.getElementById('w-sum-value').textContent === '0'")


def test_saturation_shown_before_applying(httpd, br, base, emulator):
    open_editor(br, base)
    emulator.clear_requests()
    assert br.text("main", "#w-sat-active") == str(ACTIVE)
    # capacity = 3 × 0.8 = 2.4; load = 1 interacting + 1 waiting (the queue's observations)
    assert br.text("main", "#w-sat-capacity") == "2.4 (3 × 0.8)"
    assert br.text("main", "#w-sat-load") == "2 (now: 1 interacting + 1 waiting)"
    assert br.text("main", "#w-sat-ratio") == "0.8333"
    assert "accept" in br.text("main", "#w-sat-verdict")
    br.fill("main", "#w-overflow", "0.8")      # 0.8333 > 0.8
    br.wait_fn("main", "return /409/.test(document.getElementById('w-sat-verdict').textContent)")
    br.fill("main", "#w-overflow", "0.85")
    br.wait_fn("main", "return /accept/.test(document.getElementById('w-sat-verdict').textContent)")
    br.fill("main", "#w-projected", "3")
    br.wait_fn("main", "return document.getElementById('w-sat-ratio').textContent === '1.25'")
    verdict = br.text("main", "#w-sat-verdict")
    assert "409" in verdict and "above the overflow threshold 0.85" in verdict, verdict
    assert br.eval("main", "return document.getElementById('w-sat-verdict').classList.contains('sat-warn')")
    br.fill("main", "#w-util", "0.5")          # capacity 1.5 → ratio 2
    br.wait_fn("main", "return document.getElementById('w-sat-ratio').textContent === '2'")
    br.fill("main", "#w-util", "0")            # capacity 0 → blocked
    br.wait_fn("main", "return /blocked/.test(document.getElementById('w-sat-ratio').textContent)")
    assert "no capacity" in br.text("main", "#w-sat-verdict")
    shot(br, "weights-saturation.png")
    # nothing was sent for any of this
    assert writes(emulator) == []


def test_over_one_is_422_next_to_the_field(httpd, br, base, emulator):
    allow_console(r"status of 422")
    reset_skills(emulator)
    open_editor(br, base)
    set_weights(br, {IDS[0]: "0.7", IDS[1]: "0.6"})
    br.wait_fn("main", "return document.getElementById('w-sum-value').textContent === '1.3'")
    emulator.clear_requests()
    br.click("main", "#w-apply")
    br.wait_for("main", "#w-sum-error")
    assert br.text("main", "#w-sum-error").strip(), "the sum's message is empty"
    assert br.attr("main", "#w-sum", "aria-invalid") == "true"
    assert "nothing was changed" in br.text("main", "#w-result")
    assert writes(emulator) == []
    assert skill_of(emulator, IDS[0])["proficiency"] == 2.5
    shot(br, "weights-422-sum.png")

    # one weight above 1: the message next to that member's input, the focus there
    set_weights(br, {IDS[0]: "1.5"})
    emulator.clear_requests()
    br.click("main", "#w-apply")
    inp = weight_input(br, IDS[0])
    br.wait_for("main", inp + "-error")
    assert br.attr("main", inp, "aria-invalid") == "true"
    assert br.focused("main") == inp[1:]
    assert writes(emulator) == []

    # a bad threshold goes next to its input
    set_weights(br, {IDS[0]: "0.2"})
    br.fill("main", "#w-overflow", "7")
    br.click("main", "#w-apply")
    br.wait_for("main", "#w-overflow-error")
    assert br.attr("main", "#w-overflow", "aria-invalid") == "true"
    assert br.count("main", inp + "-error") == 0
    assert writes(emulator) == []


def test_server_saturation_refusal_in_words(httpd, br, base, emulator):
    allow_console(r"status of 409")
    reset_skills(emulator)
    open_editor(br, base)
    set_weights(br, {IDS[0]: "0.5"})
    br.fill("main", "#w-projected", "10")
    br.wait_fn("main", "return /409/.test(document.getElementById('w-sat-verdict').textContent)")
    emulator.clear_requests()
    br.click("main", "#w-apply")
    br.wait_fn("main", "const r = document.getElementById('w-result');"
                       "return r && !r.hidden && r.classList.contains('conflict')")
    text = br.text("main", "#w-result")
    assert "saturated" in text and "Nothing was changed" in text, text
    assert "Active agents" in text and "Ratio" in text, text
    assert writes(emulator) == []


def test_apply_shows_result_and_changes_skills(httpd, br, base, emulator):
    reset_skills(emulator)
    open_editor(br, base)
    set_weights(br, {IDS[0]: "0.4", IDS[1]: "0.3", IDS[2]: "0.1"})
    br.fill("main", "#w-strategy", "ui-test-" + TAG)
    br.wait_fn("main", "return document.getElementById('w-sum-value').textContent === '0.8'")
    br.call("clear_requests")
    emulator.clear_requests()
    br.click("main", "#w-apply")
    br.wait_fn("main", "const r = document.getElementById('w-result');"
                       "return r && !r.hidden && r.classList.contains('ok')", timeout=20000)
    assert br.text("main", "#w-result .r-status") == "completed"
    assert br.text("main", "#w-result .r-accuracy") == "100 %"
    applied = br.eval("main", """
        return Object.fromEntries(Array.from(document.querySelectorAll('#w-result table.applied tbody tr'))
          .map(tr => [tr.dataset.user, Array.from(tr.children).map(c => c.textContent)]));""")
    assert applied[IDS[0]] == ["Ada Lovelace", "0.4", "0.4", "2"], applied
    assert applied[IDS[2]][1:] == ["0.1", "0.1", "0.5"], applied
    assert IDS[3] not in applied
    # Genesys has the new proficiencies
    assert skill_of(emulator, IDS[0])["proficiency"] == 2.0
    assert skill_of(emulator, IDS[1])["proficiency"] == 1.5
    assert skill_of(emulator, IDS[2])["proficiency"] == 0.5
    assert skill_of(emulator, IDS[3])["proficiency"] == 4.0
    # the request went the way admin writes go, with an Idempotency-Key
    posts = [r for r in br.requests(page="main", match=r"/admin/queues/.*/weights")
             if r["method"] == "POST"]
    assert len(posts) == 1, posts
    hd = posts[0]["headers"]
    assert hd["content-type"] == "application/json" and hd["x-gcmon-request"] == "1", hd
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        hd["idempotency-key"]), hd
    shot(br, "weights-applied.png")

    # the distribution is listed first, and its detail opens from the keyboard
    br.wait_fn("main", "const r = document.querySelector('#dist-table tbody tr');"
                       "return r && r.textContent.includes(arg) && /completed/.test(r.textContent)",
               arg=QUEUE)
    br.call("focus", page="main", selector="#dist-table tbody tr:first-child button.link")
    br.press("main", "Enter")
    br.wait_fn("main", "const d = document.getElementById('d-detail');"
                       "return d && !d.hidden && document.getElementById('d-result') !== null")
    detail = br.text("main", "#d-detail")
    assert "ui-test-" + TAG in detail, detail          # the request's strategy reference
    assert "Ada Lovelace" in detail and "completed" in br.text("main", "#d-status"), detail
    assert br.text("main", "#d-result .r-accuracy") == "100 %"
    assert br.focused("main") == "d-detail"
    shot(br, "weights-distribution-detail.png")


def test_rollback_report(httpd, br, base, emulator):
    allow_console(r"status of 502")
    reset_skills(emulator)
    open_editor(br, base)
    emulator.fault(f"^/api/v2/users/{IDS[1]}/routingskills/{SKILL}$", status=400,
                   method="PUT", count=1)
    set_weights(br, {IDS[0]: "0.2", IDS[1]: "0.2"})
    br.click("main", "#w-apply")
    br.wait_for("main", "#w-rollback", timeout=20000)
    text = br.text("main", "#w-result")
    assert "undid" in text and "Rollback complete" in text, text
    assert "Grace Hopper" in br.text("main", "#w-rb-failed")
    assert "Ada Lovelace" in br.text("main", "#w-rb-restored")
    assert skill_of(emulator, IDS[0])["proficiency"] == 2.5
    assert skill_of(emulator, IDS[1])["proficiency"] == 1.0


def test_distributions_list_filter_and_more(httpd, br, base, emulator):
    reset_skills(emulator)
    # more distributions through the API, so that the list has more than 10 rows
    for w in (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11):
        r = httpd.admin("POST", f"{API}/admin/queues/{QUEUE}/weights",
                        body={"member_weights": {IDS[0]: w}, "overflow_threshold": 0.85,
                              "utilization_target": 0.8},
                        headers={"Authorization": basic()})
        assert r.status == 200, r
    r = httpd.get(f"{API}/admin/distributions?queue_id={QUEUE}",
                  headers={"Authorization": basic()})
    assert r.status == 200, r
    total = r.json["total"]
    assert total > 10, r.json
    newest = r.json["data"][0]["id"]
    br.goto("main", base + "#/weights")
    br.wait_fn("main", "return document.querySelectorAll('#dist-table tbody tr').length > 0")
    # filter by an unknown queue: nothing
    br.fill("main", "#d-queue", "no-such-" + TAG)
    br.press("main", "Enter", selector="#d-queue")
    br.wait_fn("main", "return /No distribution for queue/.test(document.getElementById('d-list').textContent)")
    # by the queue: newest first
    br.fill("main", "#d-queue", QUEUE)
    br.press("main", "Enter", selector="#d-queue")
    br.wait_fn("main", "const r = document.querySelector('#dist-table tbody tr');"
                       "return r && r.dataset.id === arg", arg=newest)
    # a click on the row (not on its button) opens the detail
    br.click("main", "#dist-table tbody tr:first-child td:nth-child(2)")
    br.wait_fn("main", "const d = document.getElementById('d-detail');"
                       "return d && !d.hidden && d.textContent.includes(arg) && "
                       "document.getElementById('d-result') !== null", arg=newest)
    br.click("main", "#d-close")
    assert br.eval("main", "return document.getElementById('d-detail').hidden")
    # 10 at a time: "More" follows next_cursor and adds the older ones below
    br.select("main", "#d-limit", "10")
    br.press("main", "Enter", selector="#d-queue")
    br.wait_fn("main", "return document.querySelectorAll('#dist-table tbody tr').length === 10 && "
                       "!document.getElementById('d-more').hidden")
    first_page = br.eval("main", "return Array.from(document.querySelectorAll('#dist-table tbody tr'))"
                                 ".map(tr => tr.dataset.id)")
    assert first_page == [d["id"] for d in r.json["data"][:10]]
    br.click("main", "#d-more")
    br.wait_fn("main", "return document.querySelectorAll('#dist-table tbody tr').length === arg",
               arg=min(total, 20))
    ids = br.eval("main", "return Array.from(document.querySelectorAll('#dist-table tbody tr'))"
                          ".map(tr => tr.dataset.id)")
    assert ids[:10] == first_page and len(set(ids)) == len(ids), ids
    assert ids[10] == r.json["data"][10]["id"]
    # the focus moved to the first of the added rows
    assert br.eval("main", "return document.activeElement.closest('tr').dataset.id") == ids[10]


def basic():
    import base64
    return "Basic " + base64.b64encode(f"{ADMIN_USER}:{ADMIN_PASSWORD}".encode()).decode()


def test_retry_after_503_reuses_the_idempotency_key(httpd, br, base, emulator):
    """A 503 (nothing kept under the key): its Retry-After in words; pressing Apply
    again with the same weights sends the same key, other weights a new one."""
    allow_console(r"status of 503")
    reset_skills(emulator)
    open_editor(br, base)
    set_weights(br, {IDS[0]: "0.3"})
    # the next POST (and only POSTs: the preview is already loaded) answers 503
    pattern = f"/admin/queues/{QUEUE}/weights$"
    br.call("fake", page="main", pattern=pattern, responses=[
        {"status": 503, "headers": {"Content-Type": "application/problem+json", "Retry-After": "7"},
         "body": {"type": "urn:gcmon:problem:upstream_unavailable", "title": "Busy", "status": 503,
                  "detail": "Genesys Cloud is throttling gcmon"}}])
    try:
        br.click("main", "#w-apply")
        br.wait_fn("main", "const r = document.getElementById('w-result');"
                           "return r && !r.hidden && /Try again in 7 s/.test(r.textContent)")
        assert "throttling" in br.text("main", "#w-result")
        seen = br.call("fake_seen", page="main", pattern=pattern)
        assert len(seen) == 1, seen
        key = seen[0]["headers"]["idempotency-key"]
    finally:
        br.call("unfake", page="main")
    assert skill_of(emulator, IDS[0])["proficiency"] == 2.5
    br.call("clear_requests")
    br.click("main", "#w-apply")
    br.wait_fn("main", "const r = document.getElementById('w-result');"
                       "return r && !r.hidden && r.classList.contains('ok')", timeout=20000)
    assert skill_of(emulator, IDS[0])["proficiency"] == 1.5
    posts = [r for r in br.requests(page="main", match=pattern) if r["method"] == "POST"]
    assert [p["headers"]["idempotency-key"] for p in posts] == [key]
    # another request: another key
    set_weights(br, {IDS[0]: "0.35"})
    br.call("clear_requests")
    br.click("main", "#w-apply")
    br.wait_fn("main", "const t = document.querySelector('#w-result table.applied');"
                       "return t && /0\\.35/.test(t.textContent)", timeout=20000)
    posts = [r for r in br.requests(page="main", match=pattern) if r["method"] == "POST"]
    assert len(posts) == 1 and posts[0]["headers"]["idempotency-key"] != key, posts
