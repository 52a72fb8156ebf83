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
from typing import NamedTuple, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "emulator.py")
PYTHON = os.environ.get("GCMON_EMULATOR_PYTHON", "/usr/bin/python3")


class EmulatorError(RuntimeError):
    pass


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

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout=15):
        os.makedirs(self.workdir, exist_ok=True)
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        cmd = [PYTHON, EMULATOR, "--port", "0", "--port-file", self.port_file,
               "--client-id", self.client_id, "--client-secret", self.client_secret, *self.extra_args]
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
