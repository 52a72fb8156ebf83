"""Start/stop the Genesys Cloud emulator as a subprocess and drive its control API.

Used by the pytest suites and `make demo`. Standard library only (urllib), so it works
from any interpreter; the emulator itself always runs under Debian's /usr/bin/python3.

    emu = Emulator(workdir)
    emu.start()
    emu.add_agents([{"name": "Ada Lovelace", "presence": "OnQueue", "queues": ["q1"]}])
    ...
    emu.stop()
"""
import base64
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from typing import NamedTuple, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "emulator.py")
PYTHON = os.environ.get("GCMON_EMULATOR_PYTHON", "/usr/bin/python3")


class EmulatorError(RuntimeError):
    pass


_UNSET = object()
OBSERVATION_METRICS = ("oOnQueueUsers", "oOffQueueUsers", "oActiveUsers", "oMemberUsers",
                       "oInteracting", "oWaiting", "oAlerting")


class Response(NamedTuple):
    status: int
    headers: dict          # lower-cased names
    text: str

    @property
    def json(self):
        return json.loads(self.text) if self.text else None

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())


class Emulator:
    def __init__(self, workdir, client_id="gcmon-test", client_secret="s3cret-value", extra_args=()):
        self.workdir = str(workdir)
        self.client_id, self.client_secret = client_id, client_secret
        self.extra_args = list(extra_args)
        self.port_file = os.path.join(self.workdir, "emulator.port")
        self.log_path = os.path.join(self.workdir, "emulator.log")
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.url: Optional[str] = None
        # --tls CERT,KEY sites (tests/integration/test_tls.py): their ports, in order
        self.tls_port_file = os.path.join(self.workdir, "emulator.tls-ports")
        self.tls_ports: list = []

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout=15):
        os.makedirs(self.workdir, exist_ok=True)
        for stale in (self.port_file, self.tls_port_file):
            if os.path.exists(stale):
                os.unlink(stale)
        extra = list(self.extra_args)
        if any(a.startswith("--tls") for a in extra):
            extra += ["--tls-port-file", self.tls_port_file]
        cmd = [PYTHON, EMULATOR, "--port", "0", "--port-file", self.port_file,
               "--client-id", self.client_id, "--client-secret", self.client_secret, *extra]
        with open(self.log_path, "ab") as logf:
            # Own session: a terminal's Ctrl-C reaches the caller, which stops us in order.
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise EmulatorError(f"emulator exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise EmulatorError(f"emulator did not listen within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        if os.path.exists(self.tls_port_file):
            with open(self.tls_port_file) as f:
                self.tls_ports = [int(line) for line in f.read().split()]
        self.url = f"http://127.0.0.1:{self.port}"
        while True:
            try:
                self.stats()
                return self
            except (OSError, EmulatorError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmulatorError(f"emulator not answering:\n{self.log_tail()}")
                time.sleep(0.05)

    def stop(self, timeout=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log_tail(self, lines=40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # ------------------------------------------------------------------ raw HTTP
    def request(self, method, path, body=None, headers=None, token=None, timeout=10) -> Response:
        """Any request to the emulator (API or control). `body`: dict/list -> JSON,
        str/bytes -> sent as is. Never raises on HTTP error statuses."""
        hdrs = dict(headers or {})
        data = None
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
        elif isinstance(body, bytes):
            data = body
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                                resp.read().decode())
        except urllib.error.HTTPError as e:
            return Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode())

    def token(self, client_id=None, client_secret=None) -> str:
        """A fresh access token via the real OAuth flow."""
        basic = base64.b64encode(f"{client_id or self.client_id}:{client_secret or self.client_secret}"
                                 .encode()).decode()
        r = self.request("POST", "/oauth/token", body="grant_type=client_credentials",
                         headers={"Authorization": f"Basic {basic}",
                                  "Content-Type": "application/x-www-form-urlencoded"})
        if r.status != 200:
            raise EmulatorError(f"token request failed: {r.status} {r.text}")
        return r.json["access_token"]

    def _control(self, method, path, body=None, query=None):
        if query:
            path += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        r = self.request(method, "/__emulator" + path, body=body)
        if r.status >= 400:
            raise EmulatorError(f"{method} /__emulator{path}: {r.status} {r.text}")
        return r.json

    # ------------------------------------------------------------------ control API
    def reset(self):
        return self._control("POST", "/reset")

    def add_agents(self, agents) -> list:
        return self._control("POST", "/agents", agents)

    def set_state(self, user_id, presence=None, routing_status=None, at=None, message=None,
                  force=False) -> dict:
        body = {k: v for k, v in (("presence", presence), ("routing_status", routing_status),
                                  ("at", at), ("message", message)) if v is not None}
        if force:
            body["force"] = True
        return self._control("POST", f"/agents/{user_id}/state", body)

    def agents(self, timeline=True) -> list:
        return self._control("GET", "/agents", query=None if timeline else {"timeline": "0"})

    def agent(self, user_id) -> dict:
        return self._control("GET", f"/agents/{user_id}")

    def add_queues(self, queues) -> list:
        return self._control("POST", "/queues", queues)

    def queues(self) -> list:
        return self._control("GET", "/queues")

    def set_members(self, queue_id, members) -> dict:
        return self._control("PUT", f"/queues/{queue_id}/members", members)

    def add_skills(self, skills) -> list:
        return self._control("POST", "/skills", skills)

    # ---- routing strategies (issue 16): observations, read-back lag, aggregates, audits
    def set_queue_observations(self, queue_id, interacting=None, waiting=None, on_queue=None,
                               clear=False, **metrics) -> dict:
        """Script the queue's observation counts (`oInteracting`, `oWaiting`, `oOnQueueUsers`;
        any other metric by its name in `metrics`). A scripted count wins over the one computed
        from the members; None leaves a metric as it is, except in `metrics`, where None clears
        it; `clear=True` first clears every scripted count. Returns the queue's control view."""
        body = {m: None for m in OBSERVATION_METRICS} if clear else {}
        for metric, value in (("oInteracting", interacting), ("oWaiting", waiting),
                              ("oOnQueueUsers", on_queue)):
            if value is not None:
                body[metric] = value
        body.update(metrics)
        return self._control("POST", f"/queues/{queue_id}/observations", body)

    def queue_readback_lag(self, queue_id, gets=1) -> dict:
        """After each later PUT of the queue, the next `gets` GETs of it still answer the queue as
        it was before that PUT (0: no lag, and a pending PUT reads back at once)."""
        return self._control("POST", f"/queues/{queue_id}/readback_lag", {"gets": gets})

    def set_queue_aggregates(self, queue_id, buckets=None, append=False, at=None, media_type=None,
                             **metrics) -> list:
        """Script the queue's conversation aggregates. Either `buckets` (a list of
        {"metrics","at"?,"media_type"?}) or one bucket from `metrics` (tWait=[ms, ...] or
        {"max","min","count","sum"}; nOffered=<count>), `at` and `media_type`.
        Replaces the queue's buckets unless `append`. Returns the queue's buckets."""
        if buckets is None:
            bucket = {"metrics": metrics}
            if at is not None:
                bucket["at"] = at
            if media_type is not None:
                bucket["media_type"] = media_type
            buckets = [bucket]
        return self._control("POST" if append else "PUT", f"/queues/{queue_id}/aggregates", buckets)

    def aggregates(self) -> dict:
        return self._control("GET", "/aggregates")

    def clear_aggregates(self):
        return self._control("DELETE", "/aggregates")

    def add_audit_entries(self, entries) -> list:
        """Script extra Genesys audit entries (AuditLogMessage fields; see the README)."""
        return self._control("POST", "/audits", entries)

    def audit_entries(self) -> list:
        """Every audit entry: the scripted ones and those recorded for queue PUTs."""
        return self._control("GET", "/audits")

    def clear_audits(self):
        """Forgets the audit entries and the audit queries."""
        return self._control("DELETE", "/audits")

    def audit_queries(self) -> list:
        return self._control("GET", "/audits/queries")

    def audit_config(self, running_polls=None, fail=None, put_user=_UNSET) -> dict:
        """How later audit queries behave: `running_polls` GETs answer Running before the final
        state; `fail` (True or a reason; False to stop) makes them end Failed. `put_user`
        ({"id","name"}, or None for none) is the user recorded on queue PUTs' audit entries."""
        body = {}
        if running_polls is not None:
            body["running_polls"] = running_polls
        if fail is not None:
            body["fail"] = fail
        if put_user is not _UNSET:
            body["put_user"] = put_user
        return self._control("POST", "/audits/config", body)

    def add_flow_instances(self, instances) -> list:
        """Script flow instances for the historical flow execution data API (see README)."""
        return self._control("POST", "/flows/instances", instances)

    def flow_instances(self) -> list:
        return self._control("GET", "/flows/instances")

    def clear_flow_instances(self):
        """Forget every flow instance, job and download link."""
        return self._control("DELETE", "/flows/instances")

    def flow_jobs(self) -> list:
        """Jobs with their `state`, `polls` so far and the download links handed out."""
        return self._control("GET", "/flows/jobs")

    def expire_downloads(self) -> int:
        return self._control("POST", "/flows/downloads/expire")["expired"]

    def fault(self, path, status=None, count=1, method="*", retry_after=None, body=None, delay=None,
              drop=False, skip=0):
        """The next `count` matching requests get the fault, after the first `skip` matching
        ones are let through (skip=N-1: from the Nth matching call on)."""
        spec = {"path": path, "count": count, "method": method, "drop": drop, "skip": skip}
        for key, value in (("status", status), ("retry_after", retry_after), ("body", body),
                           ("delay", delay)):
            if value is not None:
                spec[key] = value
        return self._control("POST", "/faults", spec)

    def clear_faults(self):
        return self._control("DELETE", "/faults")

    def ws_fault(self, action, channel=None, grace=None) -> int:
        body = {"action": action}
        if channel:
            body["channel"] = channel
        if grace is not None:
            body["grace"] = grace
        return self._control("POST", "/ws/faults", body)["sockets"]

    def ws_push(self, user_id, channel=None) -> int:
        """Send the agent's activity event to connected sockets, subscribed or not."""
        body = {"user": user_id}
        if channel:
            body["channel"] = channel
        return self._control("POST", "/ws/push", body)["sockets"]

    def requests(self, path=None, method=None, since=None) -> list:
        return self._control("GET", "/requests", query={"path": path, "method": method, "since": since})

    def clear_requests(self):
        return self._control("DELETE", "/requests")

    def stats(self) -> dict:
        return self._control("GET", "/stats")

    def channels(self) -> list:
        return self._control("GET", "/channels")

    def ws_log(self) -> list:
        """Every WebSocket open/close and channel expiry, oldest first:
        [{"event": "open"|"close"|"expired", "channel", "at", "expires", ...}] (epoch seconds)."""
        return self._control("GET", "/ws/log")

    def revoke_tokens(self):
        return self._control("DELETE", "/tokens")

    def config(self, **kw):
        return self._control("POST", "/config", kw)

    def simulate(self, agents=50, queues=3, churn=2.0) -> dict:
        return self._control("POST", "/simulate", {"agents": agents, "queues": queues, "churn": churn})

    def stop_simulation(self):
        return self._control("DELETE", "/simulate")

    def wait_for(self, predicate, timeout=5.0, interval=0.05, message="condition"):
        """Poll `predicate()` until truthy (returned) or raise after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise EmulatorError(f"timed out after {timeout}s waiting for {message}")
            time.sleep(interval)


# ---------------------------------------------------------------------- flow execution data

FLOW_NS = uuid.UUID("5f0c6c1e-2b1a-4c53-9d1e-6a6d6f6e0002")
DEFAULT_STEPS = (("actionCallData", 250), ("actionDecision", 5), ("actionTransferToAcd", 40))


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def make_execution(steps=DEFAULT_STEPS, start="2026-01-05T10:00:00.000Z", slowest=None,
                   slowest_ms=None, fail_at=None,
                   error="Data action failed: HTTP 500 from the remote endpoint",
                   no_time_at=None, seed="flow", language_tag="en-us", variables=None):
    """A downloaded document's `execution` list, timed as described.

    steps: [(item_type, duration_ms) | (item_type, duration_ms, nested_steps), ...]; the items
      run one after the other from `start` (after a `startedFlow` item), then `endedFlow`.
      nested_steps (same form) become the item's own "execution" list: they start with their
      caller and run one after the other inside it.
    slowest: a step's position — an int (top level, 0-based) or a tuple path ((2, 0): the first
      item the third step called) — made the slowest: `slowest_ms`, by default 10x the longest
      duration given, at least 1000 ms.
    A caller lasts at least as long as its nested items together (lengthened if needed).
    fail_at: a position or a list of them: those items carry
      "error": {"errorCode": "flow.action.failure", "errorMessage": error}.
    no_time_at: a position or a list of them whose items have no "dateTime".
    Ids are stable: actionId/executionId/outputPathId are uuid5(seed, position)."""
    def positions(value):
        if value is None:
            return set()
        if isinstance(value, (int, tuple)):
            value = [value]
        return {(v,) if isinstance(v, int) else tuple(v) for v in value}

    def norm(steps):
        return [(s[0], int(s[1]), norm(s[2]) if len(s) > 2 and s[2] else []) for s in steps]

    tree = norm(steps)
    if slowest is not None:
        where = (slowest,) if isinstance(slowest, int) else tuple(slowest)
        if slowest_ms is None:
            def all_ms(nodes):
                for _, ms, kids in nodes:
                    yield ms
                    yield from all_ms(kids)
            slowest_ms = max(1000, 10 * max(all_ms(tree), default=0))
        nodes = tree
        for k in where[:-1]:
            nodes = nodes[k][2]
        kind, _, kids = nodes[where[-1]]
        nodes[where[-1]] = (kind, int(slowest_ms), kids)

    def cover(nodes):          # a caller lasts at least as long as the items it called
        return [(kind, max(ms, sum(k[1] for k in kids)), kids)
                for kind, ms, kids in ((kind, ms, cover(kids)) for kind, ms, kids in nodes)]
    tree = cover(tree)
    failing, untimed = positions(fail_at), positions(no_time_at)

    def ids(kind, path):
        return str(uuid.uuid5(FLOW_NS, f"{seed}:{kind}:{'.'.join(map(str, path))}"))

    counter = [0]

    def build(nodes, t0, prefix):
        items, t = [], t0
        for k, (kind, ms, kids) in enumerate(nodes):
            path = prefix + (k,)
            counter[0] += 1
            fields = {"actionId": ids("action", path), "actionName": f"{kind} {'.'.join(map(str, path))}",
                      "dateTime": _iso(t), "executionId": ids("execution", path),
                      "outputPathId": ids("output", path), "outputVariables": [],
                      "trackingId": counter[0]}
            if path in untimed:
                del fields["dateTime"]
            if path in failing:
                fields["error"] = {"errorCode": "flow.action.failure", "errorMessage": error}
            if kids:
                fields["execution"] = build(kids, t, path)
            items.append({kind: fields})
            t += timedelta(milliseconds=ms)
        return items

    t0 = _parse(start)
    body = build(tree, t0, ())
    total = sum(ms for _, ms, _ in tree)
    return ([{"startedFlow": {"dateTime": _iso(t0), "languageTag": language_tag,
                              "variables": list(variables or [])}}]
            + body + [{"endedFlow": {"dateTime": _iso(t0 + timedelta(milliseconds=total))}}])
