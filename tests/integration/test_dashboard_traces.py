"""The dashboard's Traces view (htdocs/js/traces.js, issue 15's "Dashboard
screen") in a real Chromium against Debian's apache2 with both modules and the
Genesys Cloud emulator's flow execution data API.

One server for the file: the dashboard under `Alias /gcmon <repo>/htdocs`,
Basic auth on /gcmon/api/v1/admin, and `GcmonStream On` (the lease holder runs
the trace jobs). One browser with one page ("main", 1280×800, admin
credentials).

The view starts a trace with POST …/admin/flows/{flowId}/traces (a 422's
errors next to their fields, nothing sent to Genesys), follows it by GETting
its Location about once a second (the status and the last error in words),
draws a completed trace's execution graph as an inline SVG (the bottleneck,
the critical path and the failed nodes marked in colour and in words; every
node focusable, its details on focus or hover), says why a failed one failed,
and lists the traces, newest first.

After every test: no console error beyond the HTTP errors the test caused on
purpose, no CSP violation, no request to a host other than 127.0.0.1.
Screenshots land in build/test-output/dashboard/.
"""
import base64
import json
import os
import re
import subprocess
import uuid

import pytest

import browser as browser_mod
from browser import Browser
from conftest import CLIENT_SECRET
from emulator.client import make_execution
from httpd import REPO, BUILD, Httpd, wait_for
from stream_helpers import stream_conf, wait_connected

pytestmark = pytest.mark.skipif(browser_mod.missing() is not None,
                                reason=str(browser_mod.missing()))

HTDOCS = os.path.join(REPO, "htdocs")
OUT = os.path.join(BUILD, "test-output", "dashboard")
API = "/gcmon/api/v1"

ADMIN_USER = "supervisor"
ADMIN_PASSWORD = "pw-traces-test"

TAG = uuid.uuid4().hex[:8]
AGENT = "tr-agent-" + TAG              # one monitored agent: the stream (and its holder) runs
FLOW = "flow-ui-" + TAG                # two instances: A (the slow one, with a failure) and B
FLOW_SLOW = "flow-slow-" + TAG         # its download job needs many polls
FLOW_NONE = "flow-none-" + TAG         # no instance at all: the trace fails
INST_A = "inst-a-" + TAG
INST_B = "inst-b-" + TAG
CONV_A = "conv-a-" + TAG
INST_SLOW = "inst-slow-" + TAG

# Instance A: startedFlow "1:1", the decision "1:2", the slowest data action
# "1:3" (scripted 2500 ms: the bottleneck), a task "1:4" whose first nested
# data action "1:4.1" fails, then "1:4.2", the transfer "1:5", endedFlow "1:6".
STEPS_A = [("actionDecision", 5),
           ("actionCallData", 250),
           ("actionCallTask", 80, [("actionCallData", 60), ("actionSetParticipantData", 10)]),
           ("actionTransferToAcd", 40)]
SLOWEST_MS = 2500
EXEC_A = make_execution(steps=STEPS_A, start="2026-01-05T10:00:00.000Z", slowest=1,
                        slowest_ms=SLOWEST_MS, fail_at=(2, 0), seed="a-" + TAG,
                        variables=[{"name": "Flow.Customer", "value": "ACME", "type": "String"}])
SLOW_ACTION = EXEC_A[2]["actionCallData"]["actionId"]       # [0] is startedFlow
FAILED_ACTION = EXEC_A[3]["actionCallTask"]["execution"][0]["actionCallData"]["actionId"]
FAIL_MESSAGE = EXEC_A[3]["actionCallTask"]["execution"][0]["actionCallData"]["error"]["errorMessage"]
EXEC_B = make_execution(steps=[("actionCallData", 30), ("actionTransferToAcd", 20)],
                        start="2026-01-05T09:00:00.000Z", seed="b-" + TAG)


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def httpd(emulator):
    emulator.add_agents([{"id": AGENT, "name": "Trace Agent", "presence": "Available"}])
    emulator.add_flow_instances([
        {"id": INST_A, "flow_id": FLOW, "conversation_id": CONV_A, "execution": EXEC_A},
        {"id": INST_B, "flow_id": FLOW, "execution": EXEC_B},
        {"id": INST_SLOW, "flow_id": FLOW_SLOW, "execution": EXEC_B, "job_polls": 4},
    ])
    h = Httpd(emulator_url=emulator.url, env={"GCMON_TEST_SECRET": CLIENT_SECRET},
              gcmon_conf=stream_conf(users=[AGENT]), start_servers=1)
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
        wait_connected(h, topics=1)
        yield h
    finally:
        h.cleanup()


@pytest.fixture(scope="module")
def base(httpd):
    return f"http://127.0.0.1:{httpd.port}/gcmon/"


@pytest.fixture(scope="module")
def br(httpd, base):
    os.makedirs(OUT, exist_ok=True)
    b = Browser().start(stderr_path=os.path.join(OUT, "driver-traces.log"))
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


def flow_requests(emulator):
    """What gcmon asked Genesys about flow execution data (query, jobs, downloads)."""
    return [r for r in emulator.requests()
            if r["path"].startswith("/api/v2/flows") or r["path"].startswith("/downloads/")]


def shot(b, name):
    return b.screenshot("main", os.path.join(OUT, name), full_page=True)


def open_view(b, base):
    b.goto("main", "about:blank")           # a fresh page: nothing kept from the last test
    b.goto("main", base + "#/traces")
    b.wait_for("main", "#t-flow")


def fill_form(b, flow, by="latest", target="", depth="5", context=True, data=True, action=""):
    b.fill("main", "#t-flow", flow)
    b.click("main", f"#t-by-{by}")
    if by in ("instance", "conversation"):
        b.fill("main", f"#t-{by}", target)
    b.fill("main", "#t-action", action)
    b.fill("main", "#t-depth", depth)
    for box, on in (("#t-capture-context", context), ("#t-capture-data", data)):
        if b.eval("main", f"return document.querySelector('{box}').checked") != on:
            b.click("main", box)


def wait_status(b, status, timeout=30000):
    b.wait_fn("main", "const e = document.getElementById('t-status-badge');"
                      "return e && e.textContent === arg", arg=status, timeout=timeout)


def trace_id_shown(b):
    head = b.text("main", "#t-current-head")
    return head.split(" ", 1)[1]


# ------------------------------------------------------------------ tests

def test_view_in_nav_and_form(httpd, br, base):
    br.goto("main", base + "#/board")
    br.wait_for("main", "#nav a[data-view=traces]")
    br.click("main", "#nav a[data-view=traces]")
    br.wait_fn("main", "return document.body.dataset.view === 'traces' && "
                       "document.activeElement && document.activeElement.id === 'h-traces'")
    assert br.eval("main", "return document.title") == "gcmon — Traces"
    unlabelled = br.eval("main", """
        return Array.from(document.querySelectorAll('#view-traces input, #view-traces select'))
          .filter(i => !i.labels.length && !i.getAttribute('aria-label')).map(i => i.id);""")
    assert unlabelled == []
    # the defaults: depth 5, both captures, the newest executions (no id input enabled)
    assert br.eval("main", "return document.getElementById('t-depth').value") == "5"
    assert br.eval("main", "return document.getElementById('t-capture-context').checked && "
                           "document.getElementById('t-capture-data').checked")
    assert br.eval("main", "return document.getElementById('t-instance').disabled && "
                           "document.getElementById('t-conversation').disabled")
    # instance id or conversation id, never both: the radio enables one input
    br.click("main", "#t-by-instance")
    assert br.eval("main", "return [document.getElementById('t-instance').disabled, "
                           "document.getElementById('t-conversation').disabled]") == [False, True]
    br.press("main", "ArrowDown", selector="#t-by-instance")       # the radio group by keyboard
    assert br.eval("main", "return [document.getElementById('t-instance').disabled, "
                           "document.getElementById('t-conversation').disabled]") == [True, False]
    # nothing entered: the message next to the flow id, in words, and no request
    br.call("clear_requests")
    br.click("main", "#t-submit")
    br.wait_fn("main", "const e = document.getElementById('t-flow-error');"
                       "return e && /flow id/i.test(e.textContent)")
    assert br.attr("main", "#t-flow", "aria-invalid") == "true"
    assert br.focused("main") == "t-flow"
    assert [r for r in br.requests(page="main", match=r"/traces") if r["method"] == "POST"] == []


def test_422_next_to_its_field_nothing_sent_upstream(httpd, br, base, emulator):
    allow_console(r"status of 422")
    open_view(br, base)
    fill_form(br, FLOW, depth="0")
    emulator.clear_requests()
    br.call("clear_requests")
    br.press("main", "Enter", selector="#t-depth")
    br.wait_for("main", "#t-depth-error")
    msg = br.text("main", "#t-depth-error")
    assert msg.strip() and re.search(r"1|50|depth", msg), msg
    assert br.attr("main", "#t-depth", "aria-invalid") == "true"
    assert br.focused("main") == "t-depth"
    assert "nothing was sent" in br.text("main", "#t-form-error")
    posts = [r for r in br.requests(page="main", match=r"/admin/flows/.*/traces$") if r["method"] == "POST"]
    assert len(posts) == 1 and posts[0]["status"] == 422, posts
    assert flow_requests(emulator) == []
    assert br.count("main", "#t-current:not([hidden])") == 0
    shot(br, "traces-422.png")

    # no capture at all: the message next to the two boxes
    fill_form(br, FLOW, depth="5", context=False, data=False)
    br.click("main", "#t-submit")
    br.wait_for("main", "#t-capture-error")
    assert br.attr("main", "#t-capture", "aria-invalid") == "true"
    assert br.count("main", "#t-depth-error") == 0
    assert flow_requests(emulator) == []


def test_trace_completes_and_draws_graph(httpd, br, base, emulator):
    open_view(br, base)
    fill_form(br, FLOW, depth="5", action="invocation-" + TAG)
    br.call("clear_requests")
    br.press("main", "Enter", selector="#t-flow")
    br.wait_for("main", "#t-current")
    tid = trace_id_shown(br)
    # the POST went the way admin writes go; then the Location was followed
    posts = [r for r in br.requests(page="main", match=r"/admin/flows/.*/traces$") if r["method"] == "POST"]
    assert len(posts) == 1 and posts[0]["status"] == 202, posts
    hd = posts[0]["headers"]
    assert hd["content-type"] == "application/json" and hd["x-gcmon-request"] == "1", hd
    assert br.focused("main") == "t-current"
    assert "id=" + tid in br.call("url", page="main")
    wait_status(br, "completed")
    gets = [r for r in br.requests(page="main", match=r"/admin/traces/") if r["method"] == "GET"]
    assert gets and all(r["url"].endswith("/gcmon/api/v1/admin/traces/" + tid) for r in gets), gets

    t = api_get(httpd, f"/admin/traces/{tid}")
    nodes = {n["id"]: n for n in t["graph"]["nodes"]}
    slow = [n for n in nodes.values() if n["action_id"] == SLOW_ACTION]
    assert len(slow) == 1 and t["bottleneck"]["node_id"] == slow[0]["id"], t["bottleneck"]
    bn = slow[0]["id"]
    failed = [n["id"] for n in nodes.values() if n["action_id"] == FAILED_ACTION]
    assert t["failed_nodes"] == failed, t["failed_nodes"]

    # the summary, in words
    assert br.text("main", "#t-sum-status") == "completed"
    bottleneck = br.text("main", "#t-sum-bottleneck")
    assert bn in bottleneck and f"{SLOWEST_MS} ms" in bottleneck, bottleneck
    assert br.text("main", "#t-sum-critical") == \
        f"{len(t['critical_path'])} nodes, {round(t['critical_path_ms'])} ms"
    assert br.text("main", "#t-sum-failed").startswith(f"{len(failed)}: ")
    assert br.text("main", "#t-sum-accuracy").startswith(f"{round(t['accuracy_rate'] * 1000) / 10:g} %")
    assert br.text("main", "#t-sum-retrieval") == f"{round(t['retrieval_latency_ms'])} ms"

    # the SVG: one node per graph node, in execution order
    drawn = br.eval("main", """
        return Array.from(document.querySelectorAll('#t-graph g.tnode')).map(g => ({
            id: g.dataset.node, cls: g.getAttribute('class'), tabindex: g.getAttribute('tabindex'),
            role: g.getAttribute('role'), label: g.getAttribute('aria-label'),
            text: g.textContent}));""")
    assert [d["id"] for d in drawn] == [n["id"] for n in t["graph"]["nodes"]]
    assert all(d["tabindex"] == "0" and d["role"] and d["label"] for d in drawn), drawn
    by_id = {d["id"]: d for d in drawn}
    # the bottleneck: highlighted (class) and said (text, label)
    bottlenecks = [d["id"] for d in drawn if "bottleneck" in d["cls"].split()]
    assert bottlenecks == [bn], bottlenecks
    assert "BOTTLENECK" in by_id[bn]["text"] and "bottleneck" in by_id[bn]["label"]
    assert "actionCallData" in by_id[bn]["label"] and f"{SLOWEST_MS} ms" in by_id[bn]["label"]
    # the critical path: its nodes and the edges between consecutive ones
    crit = [d["id"] for d in drawn if "critical" in d["cls"].split()]
    assert crit and set(crit) == set(t["critical_path"]), (crit, t["critical_path"])
    assert bn in crit and not any(i.startswith("2:") for i in crit), crit
    crit_edges = br.eval("main", "return Array.from(document.querySelectorAll('#t-graph path.tedge.critical'))"
                                 ".map(p => [p.dataset.from, p.dataset.to])")
    cp = t["critical_path"]
    assert sorted(crit_edges) == sorted([[a, b] for a, b in zip(cp, cp[1:])]), crit_edges
    # edges of each kind, drawn distinctly
    kinds = br.eval("main", """
        const out = {};
        for (const p of document.querySelectorAll('#t-graph path.tedge')) {
            const s = getComputedStyle(p);
            out[p.dataset.kind] = s.strokeDasharray;
        }
        return out;""")
    assert set(kinds) == {"call", "sequence", "return"}, kinds
    assert len(set(kinds.values())) == 3, kinds
    assert br.count("main", "#t-graph path.tedge") == len(t["graph"]["edges"])
    # the failed node: its own colour AND words
    for f in failed:
        assert "failed" in by_id[f]["cls"].split() and "FAILED" in by_id[f]["text"], by_id[f]
        assert "failed" in by_id[f]["label"], by_id[f]
    colours = br.eval("main", """
        const box = (sel) => getComputedStyle(document.querySelector(sel + ' rect.box')).stroke;
        return {failed: box('#t-graph g.tnode.failed'), ok: box('#t-graph g.tnode:not(.failed):not(.critical)'),
                bottleneck: box('#t-graph g.tnode.bottleneck'), critical: box('#t-graph g.tnode.critical:not(.bottleneck)')};""")
    assert len(set(colours.values())) == 4, colours

    # details on keyboard focus: Tab from the trace panel reaches the first node
    br.call("focus", page="main", selector="#t-current")
    br.press("main", "Tab")
    assert br.focused("main") == "t-node-0"
    br.wait_fn("main", "return document.getElementById('t-node-details-head').textContent === arg",
               arg="Node " + drawn[0]["id"])
    assert br.text("main", "#t-nd-type") == nodes[drawn[0]["id"]]["type"]
    assert "Flow.Customer" in br.text("main", "#t-nd-variables")       # capture_data: variables kept
    # the arrow keys walk the execution order; the bottleneck's details
    idx_bn = [d["id"] for d in drawn].index(bn)
    for _ in range(idx_bn):
        br.press("main", "ArrowDown")
    assert br.focused("main") == f"t-node-{idx_bn}"
    br.wait_fn("main", "return document.getElementById('t-node-details-head').textContent === arg",
               arg="Node " + bn)
    assert br.text("main", "#t-nd-duration") == f"{SLOWEST_MS} ms"
    assert br.text("main", "#t-nd-action") == SLOW_ACTION
    assert "bottleneck" in br.text("main", "#t-nd-marks")
    assert br.text("main", "#t-nd-start") not in ("", "—")
    shot(br, "traces-completed.png")
    # Tab on to the failed node: its error in the details
    idx_f = [d["id"] for d in drawn].index(failed[0])
    for _ in range(idx_f - idx_bn):
        br.press("main", "Tab")
    assert br.focused("main") == f"t-node-{idx_f}"
    br.wait_fn("main", "return document.getElementById('t-node-details-head').textContent === arg",
               arg="Node " + failed[0])
    assert "failed" in br.text("main", "#t-nd-status")
    assert FAIL_MESSAGE in br.text("main", "#t-nd-error")
    assert br.text("main", "#t-nd-parent") == nodes[failed[0]]["parent"]
    shot(br, "traces-failed-node.png")
    # pointing at a node shows it; leaving the graph goes back to the focused one
    br.call("hover", page="main", selector="#t-node-1")
    br.wait_fn("main", "return document.getElementById('t-node-details-head').textContent === arg",
               arg="Node " + drawn[1]["id"])
    assert br.focused("main") == f"t-node-{idx_f}"
    br.call("hover", page="main", selector="#t-legend")
    br.wait_fn("main", "return document.getElementById('t-node-details-head').textContent === arg",
               arg="Node " + failed[0])


def test_one_conversation_without_data(httpd, br, base):
    """By conversation id, context only: one instance; no variables anywhere."""
    open_view(br, base)
    fill_form(br, FLOW, by="conversation", target=CONV_A, depth="3", context=True, data=False)
    br.click("main", "#t-submit")
    br.wait_for("main", "#t-current")
    wait_status(br, "completed")
    tid = trace_id_shown(br)
    t = api_get(httpd, f"/admin/traces/{tid}")
    assert len(t["instances"]) == 1 and t["instances"][0]["instance_id"] == INST_A, t["instances"]
    assert br.text("main", "#t-sum-instances").startswith("1")
    assert br.count("main", "#t-graph g.tnode") == len(t["graph"]["nodes"])
    # one instance runs sequentially: every node is on the critical path
    assert br.count("main", "#t-graph g.tnode.critical") == len(t["graph"]["nodes"])
    br.call("focus", page="main", selector="#t-node-0")
    br.wait_for("main", "#t-nd-type")
    assert br.count("main", "#t-nd-variables") == 0


def test_running_shows_last_error_then_completes(httpd, br, base, emulator):
    """The download job's polls are throttled for a while: the page says so while
    it polls, and draws the graph once the job is through."""
    emulator.fault(r"^/api/v2/flows/instances/jobs/", method="GET", status=429, retry_after=1, count=12)
    open_view(br, base)
    fill_form(br, FLOW_SLOW, depth="1")
    br.call("clear_requests")
    br.click("main", "#t-submit")
    br.wait_for("main", "#t-current")
    br.wait_fn("main", "const e = document.getElementById('t-status-text');"
                       "return e && /^Running — polling the download job/.test(e.textContent)",
               timeout=30000)
    words = br.text("main", "#t-status-text")
    assert re.search(r"429|throttl|rate", words, re.I), words
    shot(br, "traces-running.png")
    emulator.clear_faults()
    wait_status(br, "completed", timeout=60000)
    # the page polled about once a second, not faster
    gets = [r for r in br.requests(page="main", match=r"/admin/traces/[^?]+$") if r["method"] == "GET"]
    assert len(gets) >= 2
    assert br.count("main", "#t-graph g.tnode") > 0
    # done: no more polling
    n = len(gets)
    br.eval("main", "return new Promise(r => setTimeout(r, 1500))")   # bounded negative check
    gets = [r for r in br.requests(page="main", match=r"/admin/traces/[^?]+$") if r["method"] == "GET"]
    assert len(gets) == n, gets


def test_failed_trace_in_words(httpd, br, base):
    open_view(br, base)
    fill_form(br, FLOW_NONE, depth="2")
    br.click("main", "#t-submit")
    br.wait_for("main", "#t-current")
    wait_status(br, "failed")
    text = br.text("main", "#t-failure")
    assert "The trace failed" in text and "no execution of flow " + FLOW_NONE in text, text
    assert FLOW_NONE in br.text("main", "#t-status-text")
    assert br.count("main", "#t-graph") == 0
    shot(br, "traces-failed.png")


def test_leaving_the_view_stops_polling(httpd, br, base, emulator):
    emulator.fault(r"^/api/v2/flows/instances/jobs/", method="GET", status=429, retry_after=1, count=100)
    open_view(br, base)
    fill_form(br, FLOW_SLOW, depth="1")
    br.click("main", "#t-submit")
    br.wait_for("main", "#t-current")
    tid = trace_id_shown(br)
    br.wait_fn("main", "return /running|queued/.test(document.getElementById('t-status-badge').textContent)")
    br.click("main", "#nav a[data-view=board]")
    br.wait_fn("main", "return document.body.dataset.view === 'board'")
    br.call("clear_requests")
    br.eval("main", "return new Promise(r => setTimeout(r, 2500))")   # bounded negative check
    assert br.requests(page="main", match=r"/admin/traces/" + tid) == []
    # back: it polls again (the address keeps the trace)
    emulator.clear_faults()
    br.goto("main", base + "#/traces?id=" + tid)
    wait_status(br, "completed", timeout=60000)


def test_list_shows_traces_and_opens_one(httpd, br, base):
    listing = api_get(httpd, "/admin/traces?limit=100")
    assert listing["data"], listing
    newest = listing["data"][0]
    open_view(br, base)
    br.wait_fn("main", "return document.querySelectorAll('#traces-table tbody tr').length > 0")
    ids = br.eval("main", "return Array.from(document.querySelectorAll('#traces-table tbody tr'))"
                          ".map(tr => tr.dataset.id)")
    assert ids == [d["id"] for d in listing["data"][:20]], ids
    assert ids[0] == newest["id"]
    # filter by flow: only FLOW's traces
    ours = [d for d in listing["data"] if d["flow_id"] == FLOW]
    assert len(ours) >= 2, ours
    br.fill("main", "#tl-flow", FLOW)
    br.press("main", "Enter", selector="#tl-flow")
    br.wait_fn("main", "const rows = Array.from(document.querySelectorAll('#traces-table tbody tr'));"
                       "return rows.length === arg[1] && rows[0].dataset.id === arg[0]",
               arg=[ours[0]["id"], len(ours)])
    row = br.eval("main", "return Array.from(document.querySelector('#traces-table tbody tr').children)"
                          ".map(c => c.textContent)")
    assert row[1] == FLOW and row[2] == "completed", row
    if ours[0]["bottleneck"]:
        assert ours[0]["bottleneck"]["node_id"] in row[3], row
    # open the oldest of them from the keyboard: its graph
    oldest = ours[-1]["id"]
    br.call("focus", page="main", selector=f'#traces-table tr[data-id="{oldest}"] button.link')
    br.press("main", "Enter")
    br.wait_fn("main", "const h = document.getElementById('t-current-head');"
                       "return h && h.textContent === 'Trace ' + arg && "
                       "document.querySelectorAll('#t-graph g.tnode').length > 0", arg=oldest)
    assert br.focused("main") == "t-current"
    assert br.attr("main", f'#traces-table tr[data-id="{oldest}"]', "aria-current") == "true"
    # a failed one shows its reason
    failed = [d for d in listing["data"] if d["status"] == "failed"]
    assert failed
    br.fill("main", "#tl-flow", FLOW_NONE)
    br.press("main", "Enter", selector="#tl-flow")
    br.wait_fn("main", "const r = document.querySelector('#traces-table tbody tr');"
                       "return r && r.dataset.id === arg", arg=failed[0]["id"])
    assert "no execution of flow" in br.text("main", "#traces-table tbody tr")
    # a click anywhere on the row opens it
    br.click("main", "#traces-table tbody tr:first-child td:nth-child(2)")
    br.wait_for("main", "#t-failure")


def test_list_pages_by_cursor(httpd, br, base):
    # enough traces of one flow for two pages of 10 (by API: they fail fast, no instance)
    flow = "flow-page-" + TAG
    for _ in range(11):
        r = httpd.admin("POST", f"{API}/admin/flows/{flow}/traces",
                        body={"trace_depth": 1, "context_directives": {"capture_data": True}},
                        headers={"Authorization": basic()})
        assert r.status == 202, r
    full = api_get(httpd, f"/admin/traces?flow_id={flow}&limit=100")
    assert full["total"] == 11, full
    open_view(br, base)
    br.fill("main", "#tl-flow", flow)
    br.select("main", "#tl-limit", "10")
    br.press("main", "Enter", selector="#tl-flow")
    br.wait_fn("main", "return document.querySelectorAll('#traces-table tbody tr').length === 10")
    first = br.eval("main", "return Array.from(document.querySelectorAll('#traces-table tbody tr'))"
                            ".map(tr => tr.dataset.id)")
    assert first == [d["id"] for d in full["data"][:10]]
    br.click("main", "#view-traces .pager button:last-child")        # "Older →"
    br.wait_fn("main", "const r = document.querySelectorAll('#traces-table tbody tr');"
                       "return r.length === 1 && r[0].dataset.id === arg", arg=full["data"][10]["id"])
    assert "11–11 of 11" in br.text("main", "#view-traces .page-info")
