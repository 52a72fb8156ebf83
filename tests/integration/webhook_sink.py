"""A capturing HTTP sink for gcmon's outbound webhooks (Slack idle alerts, …).

An aiohttp server on 127.0.0.1 (a free port) running in a background thread
with its own event loop. It records every request it receives and answers as
the test tells it:

    sink = WebhookSink().start()
    url = sink.url("/services/T000/B000/XXXXsecrettoken")
    sink.fail_next(3, status=500, retry_after=None)   # the next 3 requests get 500
    sink.fail_next(1, status=429, retry_after=3, body_contains=b"agent-7")
                                                       # … only a request whose body has it
    sink.set_down(True)                                # every request gets 503 …
    sink.set_down(False)                               # … until healthy again
    sink.wait_count(2, timeout=5, path_prefix="/services/")
    for r in sink.requests("/services/"): r.at, r.method, r.path, r.headers, r.body, r.status
    sink.clear()
    sink.stop()

"Down" is modelled as 503 Service Unavailable to everything, not as a refused
connection: the sink keeps listening on the same port (nothing can take it in
between) and still records each attempt, so a test can count the attempts a
client makes while the target is down (e.g. "no further attempts after giving
up"). Requests answered while down have `down=True` and `status=503`.

Otherwise a request gets 200 `ok` (text/plain, as Slack answers), unless a
fail_next() budget remains: then it gets that status (with `Retry-After` when
given) and the budget shrinks by one. A fault given with body_contains applies
only to requests whose raw body contains those bytes (so two deliveries in
flight at once can fail differently); faults are used oldest first. While
down, the fail_next budget is not consumed.

Only the standard library and aiohttp (Debian's python3-aiohttp); run the
tests with /usr/bin/python3.
"""
import asyncio
import socket
import threading
import time
from typing import NamedTuple, Optional

from aiohttp import web


class Captured(NamedTuple):
    at: float              # time.time() when the request (head) arrived
    method: str
    path: str              # path only (no query)
    query: str             # raw query string
    headers: dict          # lower-cased names → value (last one wins)
    body: bytes            # raw body bytes
    status: int            # what the sink answered
    down: bool             # answered while set_down(True)

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class WebhookSink:
    def __init__(self, host="127.0.0.1", ssl_context=None):
        self.host = host
        self.ssl_context = ssl_context   # serve https:// with it (tests/integration/test_tls.py)
        self.port = None
        self._lock = threading.Condition()
        self._records = []
        self._fail = []             # [status, retry_after, body_contains], one per request
        self._down = False
        self._loop = None
        self._thread = None
        self._runner = None
        self._started = threading.Event()
        self._error = None

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout=10):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, args=(sock,), name="webhook-sink",
                                        daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) or self._error:
            raise RuntimeError(f"webhook sink did not start: {self._error!r}")
        return self

    def _run(self, sock):
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            app = web.Application(client_max_size=16 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            loop.run_until_complete(self._runner.setup())
            site = web.SockSite(self._runner, sock, shutdown_timeout=1.0,
                                ssl_context=self.ssl_context)
            loop.run_until_complete(site.start())
        except Exception as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    def stop(self, timeout=10):
        if not self._thread:
            return
        if self._loop and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("webhook sink thread did not stop")
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def url(self, path="/"):
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}{path}"

    # ------------------------------------------------------------ serving
    async def _handle(self, request):
        at = time.time()
        body = await request.read()
        with self._lock:
            down = self._down
            retry_after = None
            if down:
                status = 503
            else:
                status = 200
                for i, (st, ra, needle) in enumerate(self._fail):
                    if needle is None or needle in body:
                        status, retry_after = st, ra
                        del self._fail[i]
                        break
            rec = Captured(at=at, method=request.method, path=request.path,
                           query=request.query_string,
                           headers={k.lower(): v for k, v in request.headers.items()},
                           body=body, status=status, down=down)
            self._records.append(rec)
            self._lock.notify_all()
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        text = "ok" if status < 300 else ("service unavailable" if down else "failure")
        return web.Response(status=status, text=text, headers=headers)

    # ------------------------------------------------------------ control
    def fail_next(self, n, status=500, retry_after=None, body_contains=None):
        """The next n requests (not answered while down; with body_contains, only
        requests whose raw body contains those bytes) get `status`, with a
        `Retry-After: <retry_after>` header when given. Adds to any pending budget."""
        if isinstance(body_contains, str):
            body_contains = body_contains.encode()
        with self._lock:
            self._fail.extend([(status, retry_after, body_contains)] * n)

    def pending_faults(self):
        with self._lock:
            return len(self._fail)

    def set_down(self, down=True):
        """While down, every request is answered 503 (and recorded)."""
        with self._lock:
            self._down = bool(down)

    def reset_faults(self):
        with self._lock:
            self._fail.clear()
            self._down = False

    def requests(self, path_prefix=None):
        """Every request so far (oldest first), optionally only those whose path
        starts with path_prefix."""
        with self._lock:
            recs = list(self._records)
        if path_prefix is not None:
            recs = [r for r in recs if r.path.startswith(path_prefix)]
        return recs

    def clear(self):
        """Forget the recorded requests (faults stay as they are)."""
        with self._lock:
            self._records.clear()

    def wait_count(self, n, timeout=10.0, path_prefix=None, predicate=None):
        """Block until at least n recorded requests (matching path_prefix and
        predicate(Captured) when given); returns them. Bounded: raises
        TimeoutError with what was seen."""
        deadline = time.monotonic() + timeout

        def matching():
            recs = self._records
            if path_prefix is not None:
                recs = [r for r in recs if r.path.startswith(path_prefix)]
            if predicate is not None:
                recs = [r for r in recs if predicate(r)]
            return recs
        with self._lock:
            while True:
                recs = matching()
                if len(recs) >= n:
                    return list(recs)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"webhook sink: {len(recs)} of {n} request(s) after "
                                       f"{timeout}s (prefix {path_prefix!r}); all seen: "
                                       f"{[(r.method, r.path, r.status) for r in self._records]}")
                self._lock.wait(min(left, 0.5))
