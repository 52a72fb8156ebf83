"""A real Chromium for the dashboard tests: tests/browser/driver.mjs (node +
playwright-core driving Debian's /usr/bin/chromium) as a subprocess speaking
JSON lines. One Browser per test module; pages are named and reused.

    b = Browser().start()
    b.new_context("admin", credentials={"username": "u", "password": "p"})
    b.new_page("main", context="admin")
    b.goto("main", url)
    b.wait_fn("main", "return document.querySelectorAll('.tile').length > 3")
    b.stop()
"""
import json
import os
import queue
import shutil
import subprocess
import threading

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DRIVER_DIR = os.path.join(REPO, "tests", "browser")
DRIVER = os.path.join(DRIVER_DIR, "driver.mjs")
CHROMIUM = os.environ.get("GCMON_CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node") or "/usr/bin/node"


def missing():
    """Why the browser tests cannot run here, or None."""
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install chromium; make deps does)"
    if not os.path.exists(NODE):
        return "node is missing (make deps installs nodejs)"
    if not os.path.isdir(os.path.join(DRIVER_DIR, "node_modules", "playwright-core")):
        return "playwright-core is missing (make deps runs npm ci in tests/browser)"
    return None


class BrowserError(RuntimeError):
    pass


class Browser:
    def __init__(self, timeout=30):
        self.timeout = timeout
        self.proc = None
        self._id = 0
        self._lines = queue.Queue()
        self.stderr_path = None

    def start(self, stderr_path=None):
        self.stderr_path = stderr_path
        err = open(stderr_path, "ab") if stderr_path else subprocess.DEVNULL
        env = dict(os.environ, GCMON_CHROMIUM=CHROMIUM)
        self.proc = subprocess.Popen([NODE, DRIVER], cwd=DRIVER_DIR, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=err, env=env,
                                     start_new_session=True)
        if stderr_path:
            err.close()
        threading.Thread(target=self._reader, daemon=True).start()
        self.call("launch", _timeout=60)
        return self

    def _reader(self):
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def call(self, cmd, _timeout=None, **args):
        """One command; _timeout (s) bounds the wait for its answer."""
        timeout = _timeout
        self._id += 1
        msg = dict(args, id=self._id, cmd=cmd)
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise BrowserError(f"the driver exited ({self._stderr_tail()})") from None
        while True:
            try:
                line = self._lines.get(timeout=timeout or self.timeout)
            except queue.Empty:
                raise BrowserError(f"driver gave no answer to {cmd} within "
                                   f"{timeout or self.timeout}s") from None
            if line is None:
                raise BrowserError(f"the driver exited during {cmd} ({self._stderr_tail()})")
            reply = json.loads(line)
            if reply.get("id") != self._id:
                continue
            if not reply["ok"]:
                raise BrowserError(f"{cmd} {args}: {reply['error']}")
            return reply["result"]

    def _stderr_tail(self):
        if not self.stderr_path:
            return "no stderr kept"
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return "no stderr"

    def stop(self):
        if not self.proc:
            return
        try:
            if self.proc.poll() is None:
                try:
                    self.call("quit", _timeout=15)
                except BrowserError:
                    pass
                self.proc.stdin.close()
                self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)
        self.proc = None

    # ------------------------------------------------------------ shorthands
    def new_context(self, name, **kw):
        return self.call("new_context", name=name, **kw)

    def new_page(self, name, context):
        return self.call("new_page", name=name, context=context)

    def goto(self, page, url):
        return self.call("goto", page=page, url=url)

    def click(self, page, selector, **kw):
        return self.call("click", page=page, selector=selector, **kw)

    def fill(self, page, selector, value):
        return self.call("fill", page=page, selector=selector, value=value)

    def select(self, page, selector, value):
        return self.call("select", page=page, selector=selector, value=value)

    def press(self, page, key, selector=None):
        return self.call("press", page=page, key=key, selector=selector)

    def type(self, page, text):
        return self.call("type", page=page, text=text)

    def wait_for(self, page, selector, state="visible", timeout=10000):
        return self.call("wait_for", page=page, selector=selector, state=state, timeout=timeout,
                         _timeout=timeout / 1000 + 10)

    def wait_fn(self, page, expression, arg=None, timeout=10000):
        return self.call("wait_fn", page=page, expression=expression, arg=arg, timeout=timeout,
                         _timeout=timeout / 1000 + 10)

    def text(self, page, selector):
        return self.call("text", page=page, selector=selector)

    def texts(self, page, selector):
        return self.call("texts", page=page, selector=selector)

    def count(self, page, selector):
        return self.call("count", page=page, selector=selector)

    def attr(self, page, selector, name):
        return self.call("attr", page=page, selector=selector, name=name)

    def eval(self, page, expression, arg=None):
        return self.call("eval", page=page, expression=expression, arg=arg)

    def screenshot(self, page, path, full_page=False):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return self.call("screenshot", page=page, path=path, full_page=full_page)

    def console(self, page=None):
        return self.call("console", page=page)

    def requests(self, page=None, match=None):
        return self.call("requests", page=page, match=match)

    def focused(self, page):
        """id (or tag.class) of the focused element."""
        return self.eval(page, "const e = document.activeElement; "
                               "return e ? (e.id || (e.tagName.toLowerCase() + "
                               "(e.className ? '.' + String(e.className).split(' ')[0] : '') + "
                               "(e.textContent ? ':' + e.textContent.trim().slice(0, 30) : ''))) : null")
