"""Security review findings (issue 10), as an attacker would try them against a
server configured the way docs/api.md recommends: `<Location /gcmon/api>` with
SetHandler gcmon-api and `<Location /gcmon/api/v1/admin>` behind Basic auth.

- only <mount>/v1/<route> is served: every other shape is a 404 problem and
  reaches neither Genesys nor the audit trail (SPEC §9.13);
- API URLs skip the filesystem walk: long and percent-encoded ids get
  problem+json, never Apache's HTML;
- GcmonAdminActor: user (default), header:<Name>, anonymous (SPEC §9.14);
- request bodies grow as data arrives; member names cut inside UTF-8.

One httpd for the module; the actor modes are graceful restarts of it."""
import base64
import os
import socket
import subprocess
import time

import pytest

from conftest import CLIENT_ID
from httpd import assert_problem, wait_for

API = "/gcmon/api/v1"
USER, PASSWORD = "mallory-admin", "pw-3f9a77"
UID = "sec-agent-1"

BASE_CONF = f"""GcmonClientID {CLIENT_ID}
GcmonClientSecret env:GCMON_TEST_SECRET
GcmonRequestTimeout 5s
GcmonMaxBody 16777216
"""

# Every route of today, and the prefixes of the admin features to come: a
# refused shape of any of them must not be served.
ROUTES = [
    ("GET", "health"), ("GET", "metrics"), ("GET", "stream"),
    ("GET", "agent-status/history"), ("GET", "agents"), ("GET", f"agents/{UID}"),
    ("GET", "alerts"), ("POST", "admin/upstream/check"),
    ("GET", f"admin/agents/{UID}/status"), ("PUT", f"admin/agents/{UID}/status"),
    ("GET", "admin/audit"), ("POST", "admin/queues/q1/weights"),
    ("GET", "admin/distributions"), ("POST", "admin/flows/f1/traces"),
    ("GET", "admin/traces/t1"), ("POST", "admin/strategies"),
    ("POST", "admin/strategies/s1/activate"), ("POST", "hooks/genesys"),
    ("GET", "strategies/s1/route"),
]

# Shapes that are not <mount>/v1/<route>. {r} is the route.
BAD_SHAPES = [
    "/gcmon/api/x/v1/{r}",
    "/gcmon/api/gcmon/api/v1/{r}",
    "/gcmon/api/v1/v1/{r}",
    "/gcmon/api/x/y/v1/{r}",
    "/gcmon/api/v1/{r}/",
    "/gcmon/api/v1/{r}/.",
    "/gcmon/api/%76%31%2F{r}",
    "/gcmon/api/v1%2F{r}",
    "/gcmon/api/v1/{r}%2Fx",
    "/gcmon/api/v1/{r}%00",
]


@pytest.fixture(scope="module")
def httpd(emulator):
    from httpd import Httpd
    from conftest import CLIENT_SECRET
    emulator.add_agents([{"id": UID, "name": "Security Agent", "presence": "Available"}])
    h = Httpd(emulator_url=emulator.url, gcmon_conf=BASE_CONF,
              env={"GCMON_TEST_SECRET": CLIENT_SECRET}, start_servers=2)
    pwfile = os.path.join(h.root, "conf", "htpasswd")
    p = subprocess.run(["htpasswd", "-c", "-b", "-B", pwfile, USER, PASSWORD],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0, p.stdout
    os.chmod(pwfile, 0o644)
    h.pwfile = pwfile
    h.extra_conf = protected(pwfile)
    h.write_config()
    h.start()
    yield h
    h.cleanup()


def protected(pwfile):
    """The recommended admin protection (and encoded slashes left to gcmon)."""
    return f"""AllowEncodedSlashes NoDecode
<Location /gcmon/api/v1/admin>
    AuthType Basic
    AuthName "gcmon admin"
    AuthBasicProvider file
    AuthUserFile {pwfile}
    Require valid-user
</Location>
"""


def reconfigure(h, gcmon_extra="", auth=True, extra=""):
    h.gcmon_conf = BASE_CONF + gcmon_extra
    h.extra_conf = (protected(h.pwfile) if auth else "AllowEncodedSlashes NoDecode\n") + extra
    h.write_config()
    h.graceful()


@pytest.fixture(autouse=True)
def clean_emulator(emulator):
    emulator.clear_faults()
    emulator.clear_requests()
    yield


def creds(user=USER, password=PASSWORD):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode())
            .decode()}


def send(h, method, path, headers=None):
    hd = {"Content-Type": "application/json", "X-Gcmon-Request": "1"}
    hd.update(headers or {})
    body = '{"status":"Offline"}' if method in ("PUT", "POST") else None
    return h.request(method, path, body=body, headers=hd)


def audit_total(h):
    r = h.get(API + "/admin/audit?limit=1", headers=creds())
    assert r.status == 200, r
    return r.json["total"]


# ------------------------------------------------------------------ mount

def test_fixture_protection_applies(httpd):
    reconfigure(httpd)
    r = httpd.get(API + "/admin/audit")
    assert r.status == 401, r
    assert httpd.get(API + "/admin/audit", headers=creds()).status == 200


@pytest.mark.parametrize("method,route", ROUTES)
def test_only_canonical_paths_are_served(httpd, emulator, method, route):
    before = audit_total(httpd)
    emulator.clear_requests()
    for shape in BAD_SHAPES:
        path = shape.format(r=route)
        for headers in ({}, creds()):
            r = send(httpd, method, path, headers)
            if "%00" in path:
                # httpd itself refuses a decoded NUL before any module runs.
                assert r.status in (400, 404), (path, r)
                continue
            if path.startswith(API + "/admin") and not headers:
                assert r.status == 401, (path, r)     # Apache's protection comes first
                continue
            assert r.status == 404, (path, headers, r)
            body = assert_problem(r, 404, "not_found")
            assert body["detail"], (path, body)
    assert emulator.requests() == [], "a refused request reached Genesys"
    assert audit_total(httpd) == before


def test_non_canonical_admin_write_changes_nothing(httpd, emulator):
    """The review's exploit, verbatim, and its variants."""
    before = emulator.agent(UID)
    for path in (f"/gcmon/api/x/v1/admin/agents/{UID}/status",
                 f"/gcmon/api/gcmon/api/v1/admin/agents/{UID}/status",
                 f"/gcmon/api/v1//admin/agents/{UID}/status"):
        r = send(httpd, "PUT", path)
        assert r.status in (401, 404), (path, r)
    for path in ("/gcmon/api/x/v1/admin/audit", "/gcmon/api/x/v1/admin/upstream/check"):
        r = send(httpd, "POST" if path.endswith("check") else "GET", path)
        assert_problem(r, 404, "not_found")
    assert emulator.requests() == []
    assert emulator.agent(UID)["presence"] == before["presence"]


def test_canonical_routes_still_served(httpd):
    assert httpd.get(API + "/health").status == 200
    assert httpd.get(API + "/metrics").status == 200
    assert_problem(httpd.get(API + "/nope"), 404, "not_found")
    assert_problem(httpd.get("/gcmon/api"), 404, "not_found")
    assert_problem(httpd.get("/gcmon/api/"), 404, "not_found")


def test_second_location_is_a_second_mount(httpd):
    """A section of its own mounts the API again (and needs its own protection);
    a <LocationMatch> has no literal path and serves nothing."""
    reconfigure(httpd, extra="""<Location /ops/gcmon>
    SetHandler gcmon-api
</Location>
<LocationMatch "^/rx/gcmon">
    SetHandler gcmon-api
</LocationMatch>
""")
    httpd.mark_log()
    try:
        assert httpd.get("/ops/gcmon/v1/health").status == 200
        assert_problem(httpd.get("/ops/gcmon/x/v1/health"), 404, "not_found")
        assert_problem(httpd.get("/rx/gcmon/v1/health"), 404, "not_found")
        wait_for(lambda: "GCM1004" in httpd.log_since_mark(), timeout=5,
                 what="the unmounted-section warning")
    finally:
        reconfigure(httpd)


# ------------------------------------------------------------------ no filesystem walk

LONG = "a" * 300


@pytest.mark.parametrize("method,route", [
    ("GET", "agents/{id}"), ("GET", "admin/agents/{id}/status"),
    ("PUT", "admin/agents/{id}/status"), ("POST", "admin/queues/{id}/weights"),
    ("GET", "admin/traces/{id}"), ("GET", "strategies/{id}/route"),
])
@pytest.mark.parametrize("ident", [LONG, "%41%42%43", "a%20b", "%C3%A9t%C3%A9", "a%2Fb",
                                   "%FF%FE", "x" * 2000])
def test_odd_ids_get_problem_json(httpd, emulator, method, route, ident):
    r = send(httpd, method, API + "/" + route.format(id=ident), creds())
    assert r.header("content-type") == "application/problem+json" or r.status == 200, r
    assert b"<html" not in r.body.lower() and b"<!doctype" not in r.body.lower(), r
    if r.status != 200:
        assert_problem(r, r.status)
        # A well-formed id with a body that is no weights request: 422 (SPEC §5.4).
        allowed = (400, 404, 405, 422) if route.endswith("/weights") else (400, 404, 405)
        assert r.status in allowed, r
    if len(ident) > 64 or "%2F" in ident or "%20" in ident or "%FF" in ident:
        assert emulator.requests() == [], (ident, emulator.requests())


# ------------------------------------------------------------------ actor

def test_actor_user_mode_refuses_without_user(httpd, emulator):
    reconfigure(httpd, auth=False)
    try:
        for method, path in (("GET", API + "/admin/audit"),
                             ("PUT", f"{API}/admin/agents/{UID}/status"),
                             ("GET", f"{API}/admin/agents/{UID}/status"),
                             ("POST", API + "/admin/upstream/check")):
            r = send(httpd, method, path)
            body = assert_problem(r, 403, "actor_required")
            assert "GcmonAdminActor" in body["detail"], body
        assert emulator.requests() == []
        # the read API is not admin
        assert httpd.get(API + "/agents").status == 200
    finally:
        reconfigure(httpd)


def test_actor_from_basic_auth(httpd, emulator):
    reconfigure(httpd)
    r = send(httpd, "POST", API + "/admin/upstream/check", creds())
    assert r.status == 200, r
    rows = httpd.get(API + "/admin/audit?action=upstream_check&limit=1",
                     headers=creds()).json["data"]
    assert rows[0]["actor"] == USER and rows[0]["actor_source"] == "user", rows


def test_actor_header_mode(httpd, emulator):
    reconfigure(httpd, "GcmonAdminActor header:X-Forwarded-User\n", auth=False)
    try:
        r = send(httpd, "POST", API + "/admin/upstream/check")
        body = assert_problem(r, 403, "actor_required")
        assert "X-Forwarded-User" in body["detail"]
        r = send(httpd, "POST", API + "/admin/upstream/check", {"X-Forwarded-User": ""})
        assert_problem(r, 403, "actor_required")
        assert emulator.requests() == []
        r = send(httpd, "POST", API + "/admin/upstream/check",
                 {"X-Forwarded-User": "carol@example.com"})
        assert r.status == 200, r
        rows = httpd.get(API + "/admin/audit?action=upstream_check&limit=1",
                         headers={"X-Forwarded-User": "auditor"}).json["data"]
        assert rows[0]["actor"] == "carol@example.com", rows
        assert rows[0]["actor_source"] == "header:X-Forwarded-User", rows
    finally:
        reconfigure(httpd)


def test_actor_anonymous_is_explicit_and_warned(httpd, emulator):
    httpd.mark_log()
    reconfigure(httpd, "GcmonAdminActor anonymous\n", auth=False)
    try:
        assert "GCM1005" in httpd.log_since_mark()
        r = send(httpd, "POST", API + "/admin/upstream/check")
        assert r.status == 200, r
        rows = httpd.get(API + "/admin/audit?action=upstream_check&limit=1").json["data"]
        assert rows[0]["actor"] == "-" and rows[0]["actor_source"] == "anonymous", rows
    finally:
        reconfigure(httpd)


@pytest.mark.parametrize("value,ok", [("user", True), ("anonymous", True),
                                      ("header:X-Remote-User", True), ("header:", False),
                                      ("header:Bad Name", False), ("nobody", False)])
def test_actor_directive_values(httpd, value, ok):
    rc, out = httpd.configtest(gcmon_conf=BASE_CONF + f'GcmonAdminActor "{value}"\n')
    assert (rc == 0) == ok, out
    if not ok:
        assert "GcmonAdminActor" in out


# ------------------------------------------------------------------ bodies

def vm_data_kb(pids):
    """Private writable memory of these processes (VmData): what a buffer
    allocated up front costs, whether glibc maps it apart or grows an arena."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmData:"):
                    total += int(line.split()[1])
    return total


def scoreboard(h):
    for line in h.get("/server-status?auto").text.splitlines():
        if line.startswith("Scoreboard:"):
            return line
    raise AssertionError("no Scoreboard line in /server-status?auto")


def test_body_buffer_grows_with_data(httpd):
    """A client announcing GcmonMaxBody (16 MB) and sending 2 bytes must not make
    gcmon reserve 16 MB per request."""
    reconfigure(httpd, "GcmonAdminActor anonymous\n", auth=False)
    socks = []
    try:
        pids = wait_for(lambda: len(httpd.child_pids()) == 2 and httpd.child_pids(),
                        timeout=10, what="both children of the new generation")
        # every worker thread started (their stacks count in VmData)
        wait_for(lambda: sum(c not in ".G" for c in scoreboard(httpd)[11:]) >=
                 httpd.start_servers * httpd.threads_per_child, timeout=10,
                 what="all worker threads of the new generation")
        base = vm_data_kb(pids)
        for _ in range(12):
            s = socket.create_connection(("127.0.0.1", httpd.port), timeout=10)
            s.sendall((f"PUT {API}/admin/agents/{UID}/status HTTP/1.1\r\n"
                       "Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       "X-Gcmon-Request: 1\r\nContent-Length: 16000000\r\n\r\n{\"").encode())
            socks.append(s)
        # every request is inside gcmon, blocked reading its body
        wait_for(lambda: scoreboard(httpd).count("W") >= 13, timeout=10,
                 what="12 requests reading their bodies")
        grown = vm_data_kb(pids) - base
        assert grown < 32 * 1024, f"children grew by {grown} kB for 12 stalled 2-byte bodies"
    finally:
        for s in socks:
            s.close()
        reconfigure(httpd)


def test_member_name_cut_inside_utf8_is_still_refused(httpd, emulator):
    reconfigure(httpd, "GcmonAdminActor anonymous\n", auth=False)
    try:
        name = "x" * 63 + "\u00e9" + "tail"       # the 64-byte cut falls inside é
        r = httpd.admin("PUT", f"{API}/admin/agents/{UID}/status",
                        body={"status": "Available", name: 1})
        body = assert_problem(r, 400, "validation_failed")
        assert body["errors"][0]["field"].startswith("x" * 63), body
        assert emulator.requests(path=r"presences") == []
    finally:
        reconfigure(httpd)


# ------------------------------------------------------------------ request deadline

def test_request_deadline_vs_holder_retries(httpd, emulator, report):
    """Genesys throttles with Retry-After beyond GcmonRequestDeadline: an API
    request answers 503 at once instead of holding its thread; the stream
    holder (background work) sits its Retry-After out and carries on."""
    from stream_helpers import FAST_TIMERS, wait_connected
    emulator.fault(r"^/api/v2/notifications/channels$", status=429, retry_after=4,
                   method="POST", count=1)
    reconfigure(httpd, "GcmonAdminActor anonymous\nGcmonRequestDeadline 2s\n"
                f"GcmonStream On\nGcmonMonitorUser {UID}\n" + FAST_TIMERS, auth=False)
    try:
        for retry_after in (120, 4):
            emulator.fault(rf"^/api/v2/users/{UID}/presences/purecloud$", status=429,
                           retry_after=retry_after, method="GET", count=1)
            t0 = time.monotonic()
            r = httpd.admin("PUT", f"{API}/admin/agents/{UID}/status",
                            body={"status": "Available"})
            took = time.monotonic() - t0
            assert_problem(r, 503, "upstream_throttled")
            assert r.header("retry-after") == str(retry_after), r.headers
            assert took < 2.0, f"the request held its thread {took:.2f} s"
            report(f"deadline: 429 Retry-After {retry_after} s -> 503 in {took * 1000:.0f} ms")
            # (faults are not cleared here: the holder's own 429 may still be due)
        # the holder waited out its own 429 and connected
        wait_connected(httpd, timeout=30)
        posts = emulator.requests(path=r"^/api/v2/notifications/channels$", method="POST")
        assert len(posts) >= 2, [(q["method"], q["path"], q.get("status"), q["at"])
                                 for q in emulator.requests()]
        gap = posts[1]["at"] - posts[0]["at"]
        assert gap >= 3.9, f"the holder retried after {gap:.2f} s, not after Retry-After 4 s"
        report(f"deadline: the holder retried its throttled channel request after {gap:.2f} s")
    finally:
        emulator.clear_faults()
        reconfigure(httpd)
