"""docs/openapi.yaml against the code, so the specification cannot drift.

- The document: OpenAPI 3.1, every $ref resolves, every schema is a valid JSON
  Schema 2020-12, every operation has a unique operationId and its path's
  parameters, info.version is gcmon's version.
- The server's route table (modules/mod_gcmon_api_routes.c) and the spec's
  operations are the same set of (path, method), both ways.
- Every problem type the C code can answer (the slug argument of every
  gc_result_problem / gcmon_api_send_problem / the guard's refuse / the
  inbound receiver's fail call) is documented, and every documented type is
  one the code has.
- Every API call of the dashboard (htdocs/js/*.js, jscalls.py) is an operation
  of the spec, with documented query parameters and headers.
- The checker itself (openapi_check.py) refuses what it must: an undocumented
  member, status, header or media type, a wrong Allow, a 200 where the spec
  has no operation.
- A live round over every operation's simplest answers against a real httpd:
  the harness checks each answer (conftest.py), this test that they came.

Every other suite's answers are checked by the harness (openapi_check.py)."""
import json
import os
import re

import pytest
from jsonschema import Draft202012Validator

import jscalls
import openapi_check
from conftest import CLIENT_ID
from httpd import Response

REPO = openapi_check.REPO
API = "/gcmon/api/v1"
METHODS = openapi_check.METHODS

GCMON_CONF = f"""GcmonClientID {CLIENT_ID}
GcmonClientSecret env:GCMON_TEST_SECRET
GcmonAdminActor anonymous
GcmonRequestTimeout 5s
"""


@pytest.fixture(scope="module")
def spec():
    return openapi_check.Spec(openapi_check.SPEC_PATH)


def operations(doc):
    for template, item in doc["paths"].items():
        for m in METHODS:
            if m in item:
                yield template, m, item[m], item


def c_sources():
    out = {}
    for d in ("shared", "modules"):
        for name in sorted(os.listdir(os.path.join(REPO, d))):
            if name.endswith(".c"):
                with open(os.path.join(REPO, d, name), encoding="utf-8") as f:
                    out[f"{d}/{name}"] = f.read()
    return out


def strip_c_comments(text):
    """C without its comments (string and character literals kept whole)."""
    return re.sub(r'("(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\')|/\*.*?\*/|//[^\n]*',
                  lambda m: m.group(1) or " ", text, flags=re.S)


# ------------------------------------------------------------------ the document

def test_document_is_openapi_31_and_every_ref_resolves(spec):
    doc = spec.doc
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"]), doc["openapi"]
    refs = []

    def walk(x):
        if isinstance(x, dict):
            if isinstance(x.get("$ref"), str):
                refs.append(x["$ref"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(doc)
    assert len(refs) > 100, len(refs)
    for ref in sorted(set(refs)):
        assert ref.startswith("#/components/"), ref
        spec.resolver.resolve(ref)          # raises on a dangling reference
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
    used = {r.rsplit("/", 1)[1] for r in refs if r.startswith("#/components/schemas/")}
    unused = set(doc["components"]["schemas"]) - used
    assert not unused, f"schemas nothing refers to: {sorted(unused)}"


def test_operations_are_complete(spec):
    ids = []
    for template, method, op, item in operations(spec.doc):
        ids.append(op.get("operationId"))
        assert op.get("summary"), (method, template)
        assert op.get("responses"), (method, template)
        params = [spec.deref(p) for p in item.get("parameters", []) + op.get("parameters", [])]
        declared = {p["name"] for p in params if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", template)), (method, template, declared)
        for status, r in op["responses"].items():
            r = spec.deref(r)
            assert r.get("description"), (method, template, status)
            assert re.fullmatch(r"[1-5][0-9][0-9]", status), (method, template, status)
        if template.startswith("/v1/admin/"):
            assert op.get("security"), f"{method} {template}: admin without security"
            assert "403" in op["responses"], (method, template)
            assert "401" in op["responses"], (method, template)
    assert all(ids) and len(ids) == len(set(ids)), ids


def test_version_is_gcmons(spec):
    with open(os.path.join(REPO, "shared", "gc_version.h"), encoding="utf-8") as f:
        version = re.search(r'#define GCMON_VERSION "([^"]+)"', f.read()).group(1)
    assert spec.doc["info"]["version"] == version


# ------------------------------------------------------------------ the route table

def route_table():
    """(path template, method) of every row of the server's route tables."""
    rows = set()
    for name, text in c_sources().items():
        if not name.startswith("modules/mod_gcmon_api"):
            continue
        for m in re.finditer(r'\{\s*GC_ROUTE_\w+\s*,\s*"(v1/[^"]*)"\s*,\s*M_(\w+)\s*,',
                             strip_c_comments(text)):
            segs = m.group(1).split("/")
            rows.add(("/" + "/".join("*" if s == "*" else s for s in segs), m.group(2).lower()))
    return rows


def test_spec_has_exactly_the_route_table(spec):
    rows = route_table()
    assert len(rows) >= 29, rows
    documented = set()
    for template, method, _op, _item in operations(spec.doc):
        documented.add((re.sub(r"\{\w+\}", "*", template), method))
    missing = sorted(rows - documented)
    stale = sorted(documented - rows)
    assert not missing, f"routes of the server without an operation in docs/openapi.yaml: {missing}"
    assert not stale, f"operations in docs/openapi.yaml the server does not route: {stale}"


# ------------------------------------------------------------------ problem types

# Where a problem's slug is in a call: the argument position, per function.
SLUG_ARG = {"gc_result_problem": 2, "gcmon_api_send_problem": 2}
# Helpers of one file that take the slug: (file, function) -> position.
FILE_SLUG_ARG = {("modules/mod_gcmon_api_http.c", "refuse"): 3,
                 ("shared/gc_inbound.c", "fail"): 1}


def emitted_problem_types():
    """{slug: [where]} of every problem the C code can answer."""
    found = {}
    for name, text in c_sources().items():
        code = strip_c_comments(text)
        funcs = dict(SLUG_ARG)
        funcs.update({f: pos for (file, f), pos in FILE_SLUG_ARG.items() if file == name})
        for fn, pos in funcs.items():
            for m in re.finditer(r"(?<![\w])" + fn + r"\s*\(", code):
                # (a definition has no literal in that position: nothing found)
                args, _ = jscalls.split_args(code, m.end() - 1)
                if pos >= len(args):
                    continue
                line = code.count("\n", 0, m.start()) + 1
                for slug in re.findall(r'"([a-z_]+)"', args[pos]):
                    found.setdefault(slug, []).append(f"{name}:{line}")
    return found


def documented_problem_types(doc):
    text = json.dumps(doc)
    return set(re.findall(r"urn:gcmon:problem:([a-z_]+)", text))


def test_every_problem_type_is_documented(spec):
    emitted = emitted_problem_types()
    # the calls above are where the types come from: a sample that must be found
    for slug in ("not_found", "method_not_allowed", "validation_failed", "upstream_throttled",
                 "duplicate_key", "invalid_signature", "precondition_failed",
                 "member_update_failed"):
        assert slug in emitted, (slug, sorted(emitted))
    documented = documented_problem_types(spec.doc)
    missing = {s: w for s, w in emitted.items() if s not in documented}
    assert not missing, f"problem types the server answers, not in docs/openapi.yaml: {missing}"
    code = "\n".join(c_sources().values())
    stale = sorted(s for s in documented if f'"{s}"' not in code)
    assert not stale, f"problem types in docs/openapi.yaml the code never answers: {stale}"


def test_every_actor_source_is_documented(spec):
    """The audit rows' actor_source values the code writes match the spec's pattern."""
    schema = spec.doc["components"]["schemas"]["AuditRowFields"]["properties"]["actor_source"]
    pattern = next(s["pattern"] for s in schema["oneOf"] if s.get("type") == "string")
    code = "\n".join(c_sources().values())
    headers = ""
    for name in sorted(os.listdir(os.path.join(REPO, "shared"))):
        if name.endswith(".h"):
            with open(os.path.join(REPO, "shared", name), encoding="utf-8") as f:
                headers += f.read()
    values = set(re.findall(r'actor_source\s*=\s*"([^"]+)"', code))
    values |= set(re.findall(r'ACTOR_SOURCE\s+"([^"]+)"', headers))
    values.add("header:X-Forwarded-User")
    assert {"user", "anonymous", "job", "schedule"} <= values, values
    bad = sorted(v for v in values if not re.fullmatch(pattern, v))
    assert not bad, f"actor_source values docs/openapi.yaml does not allow: {bad}"


# ------------------------------------------------------------------ the dashboard

def match_call(spec, template):
    """The spec's (template, path item) for a dashboard path template."""
    segs = template.split("?", 1)[0].split("/")
    placeholder = "x-placeholder-1"
    return spec.match(["v1"] + [placeholder if s == "{}" else s for s in segs])


def dashboard_problems(spec, calls):
    problems = []
    for c in calls:
        where = f"{os.path.relpath(c.file, REPO)}:{c.line}"
        if c.unresolved or not c.paths:
            problems.append(f"{where}: the URL of {c.fn}({c.args[0]}) cannot be read "
                            f"statically ({c.unresolved}): write it as a literal, a template "
                            f"literal or a path function of the file")
            continue
        for t in sorted(c.paths):
            found = match_call(spec, t)
            if not found:
                problems.append(f"{where}: {c.method} api/v1/{t}: no such path in the spec")
                continue
            template, item, _ = found
            op = item.get(c.method.lower())
            if not op:
                problems.append(f"{where}: {c.method} api/v1/{t}: {template} has no "
                                f"{c.method} in the spec")
                continue
            params = [spec.deref(p) for p in item.get("parameters", []) + op.get("parameters", [])]
            query = {p["name"] for p in params if p["in"] == "query"}
            headers = {p["name"].lower() for p in params if p["in"] == "header"}
            for q in sorted(c.query - query):
                problems.append(f"{where}: {c.method} {template}: query parameter {q!r} "
                                f"is not documented")
            for h in sorted(x for x in c.headers if x.lower() not in headers
                            and x.lower() not in ("accept", "content-type")):
                problems.append(f"{where}: {c.method} {template}: header {h!r} is not "
                                f"documented")
    return problems


def test_every_dashboard_call_is_an_operation(spec):
    calls = jscalls.dashboard_calls()
    # Every module of the dashboard that uses the API is seen.
    files = {os.path.basename(c.file) for c in calls}
    for name in ("admin.js", "alerts.js", "audit.js", "boardmodel.js", "history.js",
                 "stream.js", "traces.js", "weights.js", "strategies.js"):
        assert name in files, (name, files)
    assert len(calls) >= 28, calls
    problems = dashboard_problems(spec, calls)
    assert not problems, "dashboard calls docs/openapi.yaml does not have:\n" + "\n".join(problems)
    print(f"{len(calls)} dashboard API calls, all operations of docs/openapi.yaml")


def test_dashboard_check_catches_drift(spec, tmp_path):
    """The same check refuses a call the spec does not have."""
    (tmp_path / "x.js").write_text(
        "import { request, get } from './api.js';\n"
        "function p(id) { return `admin/agents/${id}/statuz`; }\n"
        "export function a(id) { return request(p(id), { method: 'PUT' }); }\n"
        "export function b() { return get('alerts', { user_id: 'u', colour: 'red' }); }\n"
        "export function c(id) { return request(`agents/${id}`, { method: 'DELETE' }); }\n"
        "export function d(where) { return request(where); }\n")
    calls = jscalls.dashboard_calls(str(tmp_path))
    text = "\n".join(dashboard_problems(spec, calls))
    assert "admin/agents/{}/statuz: no such path" in text, text
    assert "'colour' is not documented" in text, text
    assert "/v1/agents/{userId} has no DELETE" in text, text
    assert "cannot be read statically" in text, text


# ------------------------------------------------------------------ the checker

def answer(status, body, ctype="application/json; charset=utf-8", **headers):
    h = {"content-type": ctype, "cache-control": "no-store", "x-content-type-options": "nosniff"}
    h.update({k.replace("_", "-").lower(): v for k, v in headers.items()})
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(status, h, data)


def problem(http_status, slug, headers=None, **members):
    doc = {"type": "urn:gcmon:problem:" + slug, "title": "t", "status": http_status,
           "detail": "d"}
    doc.update(members)
    return answer(http_status, doc, "application/problem+json", **(headers or {}))


MOUNTS = ["/gcmon/api"]


def one(method, path, resp, mounts=MOUNTS):
    return openapi_check.check(method, path, resp, mounts)


def test_checker_accepts_conforming_answers():
    assert one("GET", API + "/health", answer(200, {"status": "ok", "version": "0.1.0"})) == []
    assert one("HEAD", API + "/health", answer(200, b"")) == []
    assert one("PATCH", API + "/health", problem(405, "method_not_allowed"), ) != []  # no Allow
    r = problem(405, "method_not_allowed")
    r.headers["allow"] = "GET, HEAD"
    assert one("PATCH", API + "/health", r) == []
    assert one("GET", "/gcmon/api/x/v1/health", problem(404, "not_found")) == []
    assert one("GET", API + "/health/", problem(404, "not_found")) == []
    assert one("GET", API + "/agents/a%2Fb", answer(404, b"<html>", "text/html")) == []
    assert one("GET", API + "/admin/audit", answer(401, b"<html>", "text/html",
                                                     www_authenticate="Basic")) == []
    assert one("GET", "/gcmon/index.html", answer(200, b"<html>", "text/html")) is None
    assert one("GET", "/ops/gcmon/v1/health", answer(200, {"status": "ok", "version": "1"}),
               ["/gcmon/api", "/ops/gcmon"]) == []


@pytest.mark.parametrize("method,path,resp,rule", [
    ("GET", API + "/health", answer(200, {"status": "ok", "version": "0.1.0", "new": 1}),
     "'new' was unexpected"),
    ("GET", API + "/health", answer(201, {"status": "ok", "version": "0.1.0"}),
     "status 201 is not documented"),
    ("GET", API + "/health", answer(200, b"ok", "text/plain"), "Content-Type 'text/plain'"),
    ("GET", API + "/agents/u1", answer(200, {}), "header etag is required"),
    ("GET", API + "/health", answer(200, {"status": "ok", "version": "1"}, etag='"x"'),
     "header etag"),
    ("GET", API + "/alerts", problem(400, "not_found"), "validation_failed' was expected"),
    ("GET", API + "/alerts", problem(400, "validation_failed", status=422),
     "not the HTTP status"),
    ("GET", API + "/alerts", problem(400, "validation_failed", errors=[{"field": "x"}]),
     "'message' is a required property"),
    ("PATCH", API + "/health", problem(405, "method_not_allowed", ), "Allow"),
    ("GET", "/gcmon/api/x/v1/health", answer(200, {"status": "ok"}),
     "no operation at this path"),
    ("GET", API + "/health", answer(401, b"<html>", "text/html"), "status 401"),
    ("PUT", API + "/admin/agents/u1/status",
     problem(503, "upstream_throttled", {"retry_after": "soon"}), "retry-after"),
    ("PUT", API + "/admin/agents/u1/status",
     problem(412, "precondition_failed", current_status="Break", etag='"1"'),
     "header etag is required"),
])
def test_checker_refuses_drift(method, path, resp, rule):
    found = one(method, path, resp)
    assert found, (method, path, resp)
    assert rule.lower() in found[0].lower(), found[0]


def test_mounts_come_from_the_configuration(tmp_path):
    conf = tmp_path / "httpd.conf"
    conf.write_text('<Location /gcmon/api>\n    SetHandler gcmon-api\n</Location>\n'
                    '<Location "/ops/gcmon/">\n  SetHandler gcmon-api\n</Location>\n'
                    '<LocationMatch "^/rx">\n SetHandler gcmon-api\n</LocationMatch>\n'
                    '<Location /server-status>\n SetHandler server-status\n</Location>\n')
    assert sorted(openapi_check.mounts_of(str(conf))) == ["/gcmon/api", "/ops/gcmon"]


# ------------------------------------------------------------------ live

def test_every_operation_answers_as_documented(httpd, emulator):
    """The simplest answer of each operation, checked by the harness."""
    emulator.add_agents([{"id": "oa-agent-1", "name": "Open Api", "presence": "Available"}])
    seen = []

    def go(method, path, want, **kw):
        r = httpd.admin(method, path, **kw) if method in ("PUT", "POST", "DELETE") else \
            httpd.request(method, path, headers=kw.get("headers"))
        assert r.status == want, (method, path, r)
        seen.append((method, path, r.status))
        return r

    go("GET", API + "/health", 200)
    go("HEAD", API + "/health", 200)
    go("GET", API + "/metrics", 200)
    go("GET", API + "/stream", 200)
    go("GET", API + "/agent-status/history?limit=5", 200)
    go("GET", API + "/agent-status/history?limit=0", 400)
    board = go("GET", API + "/agents", 200)
    go("GET", API + "/agents", 304, headers={"If-None-Match": board.header("etag")})
    go("GET", API + "/agents?since=zz", 400)
    go("GET", API + "/agents/oa-nobody", 404)
    go("GET", API + "/alerts", 200)
    go("POST", API + "/admin/upstream/check", 200, body={})
    go("POST", API + "/admin/upstream/check", 400, body={"renew_token": 1})
    st = go("GET", API + "/admin/agents/oa-agent-1/status", 200)
    go("PUT", API + "/admin/agents/oa-agent-1/status", 412, body={"status": "Break"},
       headers={"If-Match": '"00000000000000000000000000000000"'})
    go("PUT", API + "/admin/agents/oa-agent-1/status", 200, body={"status": "Break"},
       headers={"If-Match": st.header("etag")})
    go("PUT", API + "/admin/agents/oa-agent-1/status", 422, body={"status": "Lunch-Nope"})
    go("PUT", API + "/admin/agents/oa-agent-1/status", 400, body="{", )
    r = httpd.request("PUT", API + "/admin/agents/oa-agent-1/status", body="{}",
                      headers={"Content-Type": "application/json"})
    assert r.status == 403, r
    go("GET", API + "/admin/audit?limit=3", 200)
    go("GET", API + "/admin/queues/oa-q/weights?skill_id=!", 400)
    go("POST", API + "/admin/queues/oa-q/weights", 422, body={"member_weights": {}})
    go("GET", API + "/admin/distributions", 200)
    go("GET", API + "/admin/distributions/dist-0", 404)
    go("POST", API + "/admin/flows/oa-flow/traces", 422, body={"trace_depth": 0})
    t = go("POST", API + "/admin/flows/oa-flow/traces", 202,
           body={"trace_depth": 1, "context_directives": {"capture_context": True}})
    go("GET", t.header("location"), 200)
    go("GET", API + "/admin/traces?limit=2", 200)
    go("GET", API + "/admin/traces/trace-0", 404)
    go("GET", API + "/admin/strategies?status=draft", 200)
    go("GET", API + "/admin/strategies?status=nope", 400)
    go("POST", API + "/admin/strategies", 422, body={"name": "", "targets": []})
    go("GET", API + "/admin/strategies/strat-0", 404)
    go("DELETE", API + "/admin/strategies/strat-0", 404, body="")
    go("POST", API + "/admin/strategies/strat-0/rebalance", 422, body={"x": 1})
    go("POST", API + "/admin/strategies/strat-0/sync", 404, body={})
    go("POST", API + "/admin/strategies/strat-0/activate", 404, body={})
    go("GET", API + "/admin/strategies/strat-0/latency", 400)
    go("GET", API + "/admin/strategies/strat-0/audit?upstream=maybe", 400)
    r = httpd.get(API + "/strategies/strat-0/route")
    assert r.status in (404, 503), r          # 503 until the route tables are first loaded
    go("GET", API + "/strategies/bad%20id/route", 400)
    go("POST", API + "/hooks/genesys", 404, body=[])
    go("DELETE", API + "/health", 405)
    go("GET", API + "/nope", 404)
    go("GET", "/gcmon/api/x/v1/health", 404)
    assert len(seen) >= 30
    assert openapi_check.STATS["operation"] > 0
    # (any answer that does not match fails this test from conftest.py)
