"""Every answer of the gcmon API that the integration suites get is checked
against docs/openapi.yaml, so the specification cannot drift from the server.

httpd.Httpd.request() hands each response here (observe()) once conftest.py
has called enable(). Which responses are checked:

- A path below one of the server's mounts (the literal `<Location P>` sections
  with `SetHandler gcmon-api` in the configuration that server runs) is an API
  path. Its path is normalised as httpd does before a handler runs (unreserved
  percent-encodings decoded, slashes merged, dot segments removed, the other
  percent-encodings decoded except %2F and %00).
- `MOUNT/v1/...` matching a path template of the spec, with a method of that
  path item (HEAD counts as GET): the operation's response for the status must
  exist; its media type must be documented; a JSON body must match the schema
  (problem+json also: `status` = the HTTP status); every required header must
  be there and match its schema; ETag, Location, Retry-After and Allow must not
  appear where the response does not document them.
- A template path with a method the path item does not have: the spec's
  `#/components/responses/MethodNotAllowed`, with `Allow` listing exactly the
  path item's methods (HEAD with GET) — or an Apache HTML page (401/403) that
  the path's operations document.
- Any other shape below a mount (extra or empty segments, a trailing slash,
  a still-encoded character, an unknown route): `#/components/responses/NotFound`
  (the generic 404 problem), or Apache's own HTML refusal (400, 401, 403, 404),
  which httpd sends before gcmon runs for some URLs (docs/api.md).
- Paths outside every mount (the dashboard's static files, server-status,
  server-info) are not the API: not checked.

A mismatch is recorded (not raised: requests run inside wait_for loops and
threads that would swallow an exception) and fails the test that made the
request, from conftest.py's autouse fixture, with what was asked, what came
back and which rule it broke. Validators are compiled once per (operation,
status, media type) and cached; a spec is loaded once per process.
"""
import json
import os
import re
import threading

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC_PATH = os.path.join(REPO, "docs", "openapi.yaml")
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
# Headers gcmon sets on purpose: present only where a response documents them.
MEANINGFUL_HEADERS = ("etag", "location", "retry-after", "allow")
JSON_TYPES = ("application/json", "application/problem+json")
APACHE_PAGE_STATUSES = (400, 401, 403, 404)
UNRESERVED = re.compile(r"%(2[dDeE]|5[fF]|7[eE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA])")

_enabled = False
_lock = threading.Lock()
_violations = []
_spec = None
# How many answers were checked (API paths) and by which rule: the suite's
# summary prints it, so a check that silently stopped running shows.
STATS = {"operation": 0, "method_not_allowed": 0, "no_operation": 0}
# (operationId, status) of every documented response an answer matched.
SEEN = set()


class Violation(str):
    """One broken rule, as text for the failure message."""


def enable(on=True):
    global _enabled
    _enabled = on


def take():
    """The violations recorded so far (cleared)."""
    with _lock:
        out = list(_violations)
        del _violations[:]
    return out


def spec():
    global _spec
    if _spec is None:
        _spec = Spec(SPEC_PATH)
    return _spec


# ---------------------------------------------------------------- the spec

class Spec:
    def __init__(self, path):
        # Imported here: httpd.py (the demo, the benchmarks) needs neither until a check runs.
        import yaml
        from jsonschema import Draft202012Validator, RefResolver
        self._validator_class = Draft202012Validator
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)
        self.resolver = RefResolver.from_schema(self.doc)
        self._validators = {}
        self.templates = []          # (segments, template, path item)
        for template, item in self.doc.get("paths", {}).items():
            self.templates.append((template.strip("/").split("/"), template, item))

    # ---- references
    def deref(self, obj):
        """A Response, Parameter or Header object, following $ref."""
        seen = 0
        while isinstance(obj, dict) and "$ref" in obj and seen < 10:
            _, target = self.resolver.resolve(obj["$ref"])
            obj = target
            seen += 1
        return obj

    def validator(self, key, schema):
        v = self._validators.get(key)
        if v is None:
            v = self._validator_class(schema, resolver=self.resolver)
            self._validators[key] = v
        return v

    # ---- lookup
    def match(self, segments):
        """(template, path item, params) for a canonical list of segments."""
        for segs, template, item in self.templates:
            if len(segs) != len(segments):
                continue
            params = {}
            for want, got in zip(segs, segments):
                if want.startswith("{") and want.endswith("}"):
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                return template, item, params
        return None

    @staticmethod
    def methods_of(item):
        return [m for m in METHODS if m in item]


# ---------------------------------------------------------------- paths

def normalise(raw):
    """The request path as httpd hands it to a handler (see the module doc)."""
    path = UNRESERVED.sub(lambda m: chr(int(m.group(1), 16)), raw)
    path = re.sub(r"/{2,}", "/", path)
    segs = path.split("/")[1:]
    out = []
    for i, seg in enumerate(segs):
        if seg in (".", ".."):
            if seg == ".." and out:
                out.pop()
            if i == len(segs) - 1:
                out.append("")
            continue
        out.append(seg)
    data = b""
    for part in re.split(r"(%[0-9A-Fa-f]{2})", "/" + "/".join(out)):
        if re.fullmatch(r"%[0-9A-Fa-f]{2}", part) and part[1:].upper() not in ("2F", "00"):
            data += bytes([int(part[1:], 16)])
        else:
            data += part.encode("utf-8")
    return data.decode("utf-8", "replace")


def segment_ok(seg):
    return (seg not in ("", ".", "..") and "%" not in seg and "\\" not in seg
            and not any(ord(c) < 0x20 or ord(c) == 0x7f for c in seg))


_mount_cache = {}


def mounts_of(conf_path):
    """The literal <Location> paths with SetHandler gcmon-api in a config file."""
    try:
        st = os.stat(conf_path)
    except OSError:
        return ["/gcmon/api"]
    key = (conf_path, st.st_mtime_ns, st.st_size)
    if key not in _mount_cache:
        with open(conf_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        found = []
        for m in re.finditer(r"<Location\s+\"?([^\">\s]+)\"?\s*>(.*?)</Location>", text,
                             re.S | re.I):
            if re.search(r"^\s*SetHandler\s+gcmon-api\s*$", m.group(2), re.M | re.I):
                if "*" not in m.group(1) and "?" not in m.group(1):
                    found.append(m.group(1).rstrip("/"))
        _mount_cache.clear()
        _mount_cache[key] = found
    return _mount_cache[key]


# ---------------------------------------------------------------- checking

def _base(ctype):
    return (ctype or "").split(";", 1)[0].strip().lower()


def _fmt_errors(errors, limit=4):
    lines = []
    for e in sorted(errors, key=lambda e: list(e.absolute_path))[:limit]:
        where = "$" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]"
                              for p in e.absolute_path)
        lines.append(f"{where}: {e.message[:300]}")
    if len(errors) > limit:
        lines.append(f"... and {len(errors) - limit} more")
    return lines


def _is_apache_page(resp):
    return _base(resp.headers.get("content-type")) == "text/html"


class Check:
    def __init__(self, sp, method, raw_path, resp):
        self.sp = sp
        self.method = method.upper()
        self.raw_path = raw_path
        self.resp = resp
        self.problems = []
        self.where = ""

    def fail(self, msg):
        self.problems.append(msg)

    def check_response(self, key, robj, status_key):
        """resp against one Response object (already dereferenced)."""
        resp, sp = self.resp, self.sp
        headers = resp.headers
        documented = {n.lower(): sp.deref(h) for n, h in (robj.get("headers") or {}).items()}
        for name, h in documented.items():
            value = headers.get(name)
            if value is None:
                if h.get("required"):
                    self.fail(f"header {name} is required by the response {status_key} "
                              f"and missing")
                continue
            schema = h.get("schema")
            if schema is not None:
                val = value
                if schema.get("type") == "integer" and re.fullmatch(r"-?[0-9]+", value):
                    val = int(value)
                errs = list(sp.validator(key + ("header", name), schema).iter_errors(val))
                if errs:
                    self.fail(f"header {name}: {value!r}: " + "; ".join(_fmt_errors(errs, 2)))
        for name in MEANINGFUL_HEADERS:
            if name in headers and name not in documented:
                self.fail(f"header {name} ({headers[name]!r}) is not documented for the "
                          f"response {status_key}")
        content = robj.get("content") or {}
        body = resp.body
        if self.method == "HEAD" or resp.status == 304:
            if content and resp.status == 304:
                self.fail("a 304 is documented with content")
            return
        if not content:
            if body:
                self.fail(f"the response {status_key} documents no body, and one came "
                          f"({len(body)} bytes)")
            return
        ctype = headers.get("content-type")
        media = None
        for mt in content:
            if _base(mt) == _base(ctype):
                media = mt
                break
        if media is None:
            self.fail(f"Content-Type {ctype!r} is not documented for the response "
                      f"{status_key} (documented: {', '.join(content)})")
            return
        schema = (content[media] or {}).get("schema")
        if _base(media) not in JSON_TYPES:
            return
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            self.fail(f"the body is not JSON: {e}")
            return
        if schema is not None:
            errs = list(sp.validator(key + (media,), schema).iter_errors(doc))
            if errs:
                self.fail("the body does not match the schema:\n      "
                          + "\n      ".join(_fmt_errors(errs)))
        if _base(media) == "application/problem+json" and isinstance(doc, dict) \
                and doc.get("status") != resp.status:
            self.fail(f"the problem's status {doc.get('status')!r} is not the HTTP status")

    def generic(self, name):
        robj = self.sp.deref({"$ref": f"#/components/responses/{name}"})
        self.check_response(("components", name), robj, name)

    def run(self, mounts):
        path = self.raw_path.split("?", 1)[0].split("#", 1)[0]
        norm = normalise(path)
        mount = None
        for m in sorted(mounts, key=len, reverse=True):
            if norm == m or norm.startswith(m + "/"):
                mount = m
                break
        if mount is None:
            return None
        rel = norm[len(mount):]
        segments = rel[1:].split("/") if rel.startswith("/") else None
        found = None
        if segments and all(segment_ok(s) for s in segments):
            found = self.sp.match(segments)
        resp = self.resp
        if found is None:
            STATS["no_operation"] += 1
            self.where = f"no operation (mount {mount}): the generic 404 problem"
            if _is_apache_page(resp) and resp.status in APACHE_PAGE_STATUSES:
                return self.problems
            if resp.status != 404:
                self.fail(f"the spec has no operation at this path, and the answer is "
                          f"{resp.status}, not the generic 404 not_found problem")
                return self.problems
            self.generic("NotFound")
            return self.problems
        template, item, _params = found
        method = "get" if self.method == "HEAD" else self.method.lower()
        ops = self.sp.methods_of(item)
        if method not in ops:
            STATS["method_not_allowed"] += 1
            self.where = f"{template} has no {self.method} (405 expected)"
            if _is_apache_page(resp) and any(
                    "text/html" in (self.sp.deref(o.get("responses", {}).get(str(resp.status)))
                                    or {}).get("content", {})
                    for o in (item[m] for m in ops)):
                return self.problems
            if resp.status != 405:
                self.fail(f"{self.method} is not an operation of {template} in the spec, and "
                          f"the answer is {resp.status}, not 405")
                return self.problems
            self.generic("MethodNotAllowed")
            allow = {a.strip().upper() for a in (resp.headers.get("allow") or "").split(",")
                     if a.strip()}
            want = {m.upper() for m in ops} | ({"HEAD"} if "get" in ops else set())
            if allow != want:
                self.fail(f"Allow {sorted(allow)} is not the path's operations {sorted(want)}")
            return self.problems
        STATS["operation"] += 1
        op = item[method]
        opid = op.get("operationId", f"{method} {template}")
        self.where = f"operation {opid} ({method.upper()} {template})"
        responses = op.get("responses", {})
        status_key = str(resp.status)
        robj = responses.get(status_key)
        if robj is None:
            robj = responses.get(f"{status_key[0]}XX") or responses.get("default")
        if robj is None:
            self.fail(f"status {resp.status} is not documented for {opid} "
                      f"(documented: {', '.join(sorted(responses))})")
            return self.problems
        self.check_response(("op", template, method, status_key), self.sp.deref(robj),
                            status_key)
        if not self.problems:
            SEEN.add((opid, status_key))
        return self.problems


def coverage():
    """(documented responses an answer matched, documented responses)."""
    total = 0
    for item in spec().doc.get("paths", {}).values():
        for m in METHODS:
            if m in item:
                total += len(item[m].get("responses", {}))
    return len(SEEN), total


def check(method, path, resp, mounts):
    """The broken rules of one response (a list; empty when it conforms), or
    None when the path is not below a mount (not the API)."""
    c = Check(spec(), method, path, resp)
    problems = c.run(mounts)
    if problems is None:
        return None
    if problems:
        body = resp.body[:400].decode("utf-8", "replace")
        return [Violation(
            f"{method} {path} -> {resp.status} {resp.headers.get('content-type', '')}\n"
            f"    against docs/openapi.yaml, {c.where}:\n"
            + "".join(f"    - {p}\n" for p in problems)
            + f"    body: {body}")]
    return []


def observe(httpd, method, path, resp):
    """Httpd.request's hook: check, and record any violation."""
    if not _enabled:
        return
    try:
        found = check(method, path, resp, mounts_of(httpd.conf_path))
    except Exception as e:  # noqa: BLE001 - a checker bug must not pass silently
        found = [Violation(f"{method} {path} -> {resp.status}: the OpenAPI check itself "
                           f"failed: {e!r}")]
    if found:
        with _lock:
            _violations.extend(found)
