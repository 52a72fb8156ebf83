"""Drive Debian's real /usr/sbin/apache2 with gcmon's modules from the build tree.

Each Httpd owns a private ServerRoot (config, logs, data) in a temp directory,
listens on a free 127.0.0.1 port, and only ever signals processes it started.

Its database is `httpd.db` (gcdb.py): SQLite in the ServerRoot by default; with
DB=pgsql a fresh PostgreSQL database of its own on the session's server
(pgserver.py), dropped by cleanup(). `database="sqlite3"` or `"pgsql"` forces
one; a gcdb.PgDb makes several servers share one database
(tests/integration/test_scale_out.py).
"""
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import gcdb
import openapi_check

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("GCMON_BUILD", os.path.join(REPO, "build"))
APACHE2 = "/usr/sbin/apache2"
MODDIR = "/usr/lib/apache2/modules"

# Lines in error_log (or logs/stdout) that fail a test unless a test says it
# expects them. A sanitizer's report starts "==<pid>==ERROR: <Name>Sanitizer"
# (LeakSanitizer's at a process's exit).
BAD_LINE = re.compile(r"\[(?:[\w_]+:)?(error|crit|alert|emerg)\]|Segmentation fault|"
                      r"possible coredump|(?:Address|Leak|UndefinedBehavior)Sanitizer|"
                      r"==\d+==ERROR|runtime error:|double free|exit signal (?!Killed)")

# The error-log net (docs/testing.md): every Httpd registers itself in LIVE
# until its cleanup() and keeps, per file of LOG_FILES, an offset up to which
# the net has checked it. conftest.py checks every live instance at the end of
# each test (scan_logs: the instance's own allow_log plus the test's marker);
# stop() checks what is left once the processes have exited (shutdown lines,
# sanitizer reports at exit) and, with STRICT on (conftest.py turns it on), puts
# what it finds in PENDING, which fails the test phase it happened in (a module
# fixture's teardown included). CURRENT_ALLOW is the running test's
# allow_log marker (conftest.py sets it).
LOG_FILES = ("logs/error_log", "logs/stdout")
LIVE = []
STRICT = False
CURRENT_ALLOW = ()
PENDING = []


SANITIZER_REPORT = re.compile(r"==\d+==ERROR: \w+Sanitizer")
LEAK_REPORT = re.compile(r"==\d+==ERROR: LeakSanitizer: detected memory leaks")

# Leaks of httpd's own that lsan.supp cannot name (LSan's rules match a function
# or module name in any frame, and the frame that tells these apart has no
# symbol: Debian strips mod_mpm_event.so). A leak block of a LeakSanitizer
# report is httpd's if its stack matches one of these whole; a report all of
# whose blocks are httpd's is not a finding. Each with its reason:
HTTPD_LEAKS = (
    # mod_mpm_event's listener thread (listener_thread(), inlined into the
    # thread's start): the allocator of a connection's transaction pool, made
    # with apr_allocator_create() right in the MPM (frame #2 in
    # mod_mpm_event.so, called from start_thread), left behind when the child
    # exits while the listener holds it (seen at the demo's stop). gcmon's
    # allocators are made in gcmon's own functions (mod_gcmon_*.so frames),
    # and a pool of such an allocator would show as an indirect leak too.
    re.compile(r"^Direct leak of 200 byte\(s\) in 1 object\(s\) allocated from:\n"
               r" +#0 0x\w+ in __interceptor_calloc \S+\n"
               r" +#1 0x\w+ in apr_allocator_create \(\S+/libapr-1\.so\.0\+0x\w+\)\n"
               r" +#2 0x\w+ +\(\S+/mod_mpm_event\.so\+0x\w+\)\n"
               r" +#3 0x\w+ in start_thread \S+\n"
               r" +#4 0x\w+ in clone3? \S+\n?$"),
)


def _httpd_leak_report(lines):
    """lines: a LeakSanitizer report, its header to its SUMMARY. True if every
    leak block in it is one of HTTPD_LEAKS."""
    blocks, cur = [], None
    for line in lines[1:-1]:
        if re.match(r"(Direct|Indirect) leak of ", line):
            cur = [line]
            blocks.append(cur)
        elif cur is not None and line.strip():
            cur.append(line)
        elif line.strip():
            return False
    return bool(blocks) and all(any(k.match("\n".join(b) + "\n") for k in HTTPD_LEAKS)
                                for b in blocks)


def bad_lines_in(text, allow=()):
    """The lines of text BAD_LINE flags that no regex of allow matches; after
    a sanitizer report's first line, the report itself (its stacks, up to its
    SUMMARY line, at most 80 lines), so the failure shows where it came from.
    A LeakSanitizer report of httpd's own leaks only (HTTPD_LEAKS) is skipped."""
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not BAD_LINE.search(line) or any(re.search(a, line) for a in allow):
            continue
        out.append(line)
        if not SANITIZER_REPORT.search(line):
            continue
        report = [line]
        while i < len(lines) and len(report) < 80:
            report.append(lines[i])
            i += 1
            if report[-1].startswith("SUMMARY:"):
                break
        if LEAK_REPORT.search(line) and report[-1].startswith("SUMMARY:") \
                and _httpd_leak_report(report):
            out.pop()
            continue
        out += ["    " + x for x in report[1:-1]]
        if report[-1].startswith("SUMMARY:"):
            out.append(report[-1])
        else:
            out.append("    " + report[-1])
    return out

LSAN_SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsan.supp")

SYSTEM_MODULES = ["mpm_event", "authn_core", "authn_file", "authz_core", "authz_user",
                  "authz_host", "auth_basic", "mime", "alias", "dir", "status", "info",
                  "dbd"]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _test_module():
    """The running test's module name (labels its PostgreSQL database)."""
    cur = os.environ.get("PYTEST_CURRENT_TEST", "")
    base = os.path.basename(cur.split("::", 1)[0]) if cur else "gcmon"
    return base[:-3] if base.endswith(".py") else base


def host_wrapper(hostname, pid_namespace=False):
    """A command prefix that runs apache2 as if on a host of its own: its own
    UTS namespace (host name), optionally its own PID namespace (a container:
    its pids mean nothing to the other instances). Needs root."""
    cmd = ["unshare", "--uts"]
    if pid_namespace:
        cmd += ["--pid", "--fork"]
    return cmd + ["sh", "-c", 'hostname "$0" && exec "$@"', hostname]


def wait_for(predicate, timeout=15.0, interval=0.05, what="condition"):
    """Poll predicate() until it returns a truthy value; bounded."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - report the last one on timeout
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                       + (f" (last error: {last_exc!r})" if last_exc else ""))


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def _alive(pid):
    """pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return f"<Response {self.status} {self.body[:200]!r}>"


class Httpd:
    def __init__(self, emulator_url=None, gcmon_conf="", extra_conf="", env=None,
                 modules=("gcmon_api", "gcmon_stream"), start_servers=2,
                 threads_per_child=16, port=None, keep_root=False, build=None, database=None,
                 wrapper=(), allow_log=()):
        self.build = build or BUILD     # where LoadModule finds gcmon's DSOs
        # Regexes of error_log/stdout lines this server is expected to write
        # whatever the test (its own shutdown lines, say): the net's allow list.
        self.allow_log = tuple(allow_log)
        self._checked = {rel: 0 for rel in LOG_FILES}
        self.root = tempfile.mkdtemp(prefix="gcmon-httpd-")
        os.chmod(self.root, 0o755)
        for d in ("conf", "logs", "run", "data", "htdocs"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        self.port = port or free_port()
        self.keep_root = keep_root
        self.emulator_url = emulator_url
        self.gcmon_conf = gcmon_conf
        self.extra_conf = extra_conf
        self.env = dict(os.environ)
        self.env.update(env or {})
        # Sanitizer runs: GCMON_BUILD=build/asan GCMON_HTTPD_LD_PRELOAD=$(gcc
        # -print-file-name=libasan.so) preloads the runtime into apache2 only,
        # with LeakSanitizer on: each process (parent and children) checks for
        # leaks when it exits and writes its report to its stderr, which is
        # error_log (logs/stdout before httpd opens its logs), where the net
        # finds it. It works in children after they drop root: LSan makes the
        # process dumpable itself while it stops the threads (ptrace).
        # fast_unwind_on_malloc=0: APR and the other libraries have no frame
        # pointers, so the fast unwinder's stacks stop at their first frame,
        # too short to tell httpd's allocation from ours. lsan.supp lists the
        # allocations of httpd's and the libraries' own that are no leak of
        # ours, each with its reason.
        self.sanitized = bool(os.environ.get("GCMON_HTTPD_LD_PRELOAD"))
        if self.sanitized:
            self.env["LD_PRELOAD"] = os.environ["GCMON_HTTPD_LD_PRELOAD"]
            self.env.setdefault("ASAN_OPTIONS",
                                "detect_leaks=1:abort_on_error=0:fast_unwind_on_malloc=0:"
                                "malloc_context_size=16")
            self.env.setdefault("LSAN_OPTIONS", f"suppressions={LSAN_SUPP}:print_suppressions=0")
        self.modules = modules
        self.start_servers = start_servers
        self.threads_per_child = threads_per_child
        self.proc = None
        self.conf_path = os.path.join(self.root, "conf", "httpd.conf")
        self.error_log = os.path.join(self.root, "logs", "error_log")
        self.data_dir = os.path.join(self.root, "data")
        self._log_mark = 0
        self._user = "www-data" if os.geteuid() == 0 else None
        if self._user:
            pw = pwd.getpwnam(self._user)
            os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        # A command apache2 runs under (e.g. unshare for a host of its own); the
        # harness then signals the apache2 parent by its pid, not with -k.
        self.wrapper = list(wrapper)
        # database: None (DB= decides), "sqlite3" or "pgsql" (a database of its
        # own either way), or a gcdb database to share (not dropped by cleanup).
        self._own_db = database is None or isinstance(database, str)
        kind = gcdb.driver() if database is None else database
        if not isinstance(kind, str):
            self.db = database
        elif kind == "pgsql":
            self.db = gcdb.new_pg(_test_module())
        elif kind == "sqlite3":
            self.db = gcdb.SqliteDb(os.path.join(self.data_dir, "gcmon.db"), self._user)
        else:
            raise ValueError(f"database={database!r}")
        self.write_config()
        LIVE.append(self)

    # ------------------------------------------------------------ configuration
    def config_text(self, gcmon_conf=None, modules=None):
        gcmon_conf = self.gcmon_conf if gcmon_conf is None else gcmon_conf
        modules = self.modules if modules is None else modules
        loads = "\n".join(f"LoadModule {m}_module {MODDIR}/mod_{m}.so"
                          for m in SYSTEM_MODULES)
        ours = "\n".join(f"LoadModule {m}_module {self.build}/.libs/mod_{m}.so" for m in modules)
        user = f"User {self._user}\nGroup {self._user}\n" if self._user else ""
        upstream = ""
        if self.emulator_url:
            upstream = (f"GcmonApiURL {self.emulator_url}\n"
                        f"GcmonLoginURL {self.emulator_url}\n")
        return f"""# generated by tests/integration/httpd.py
ServerRoot "{self.root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile {self.root}/run/httpd.pid
DefaultRuntimeDir {self.root}/run
Mutex file:{self.root}/run default
ErrorLog {self.root}/logs/error_log
LogLevel warn {" ".join(m + ":debug" for m in modules)}
LogFormat "%h %u \\"%r\\" %>s %b %D" gcmon
CustomLog {self.root}/logs/access_log gcmon
{user}{loads}
{ours}
StartServers {self.start_servers}
ServerLimit {self.start_servers * 4}
ThreadsPerChild {self.threads_per_child}
MaxRequestWorkers {self.start_servers * self.threads_per_child * 2}
MinSpareThreads {self.threads_per_child}
MaxSpareThreads {self.start_servers * self.threads_per_child * 2}
GracefulShutdownTimeout 10
TypesConfig /etc/mime.types
DocumentRoot "{self.root}/htdocs"
<Directory "{self.root}/htdocs">
    Require all granted
</Directory>
{self.db.dbd_conf()}<Location /gcmon/api>
    SetHandler gcmon-api
</Location>
<Location /server-status>
    SetHandler server-status
</Location>
<Location /server-info>
    SetHandler server-info
</Location>
ExtendedStatus On
{upstream}{gcmon_conf}
{self.extra_conf}
"""

    def write_config(self, **kw):
        with open(self.conf_path, "w") as f:
            f.write(self.config_text(**kw))

    # ------------------------------------------------------------ lifecycle
    def _cmd(self, *args):
        return [APACHE2, "-d", self.root, "-f", self.conf_path, *args]

    def configtest(self, gcmon_conf=None, modules=None):
        """apache2 -t on a config; returns (returncode, combined output)."""
        path = os.path.join(self.root, "conf", "configtest.conf")
        with open(path, "w") as f:
            f.write(self.config_text(gcmon_conf=gcmon_conf, modules=modules))
        p = subprocess.run([APACHE2, "-d", self.root, "-f", path, "-t"], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def start(self, timeout=20):
        self._stdout = open(os.path.join(self.root, "logs", "stdout"), "ab")
        self.proc = subprocess.Popen(self.wrapper + self._cmd("-D", "FOREGROUND"), env=self.env,
                                     stdout=self._stdout, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            wait_for(lambda: self.proc.poll() is None and self.get("/gcmon/api/v1/health")
                     .status == 200, timeout=timeout, what="httpd health")
        except TimeoutError:
            rc = self.proc.poll()
            raise RuntimeError(f"httpd did not start (rc={rc}):\n{self.read_log()[-3000:]}"
                               f"\n{self._read('logs/stdout')[-2000:]}")
        return self

    def _read(self, rel):
        try:
            with open(os.path.join(self.root, rel), encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def read_log(self):
        return self._read("logs/error_log")

    def _resumes(self):
        return self.read_log().count("resuming normal operations")

    def signal_k(self, what):
        before = self._resumes()
        if self.wrapper:        # the pid file may hold a pid of another namespace
            os.kill(self.apache_pid(), {"graceful": signal.SIGUSR1, "restart": signal.SIGHUP,
                                        "stop": signal.SIGTERM}[what])
            return before
        p = subprocess.run(self._cmd("-k", what), env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        assert p.returncode == 0, p.stdout
        return before

    def graceful(self, timeout=20):
        before = self.signal_k("graceful")
        wait_for(lambda: self._resumes() > before, timeout=timeout, what="graceful restart")
        wait_for(lambda: self.get("/gcmon/api/v1/health").status == 200, timeout=timeout)

    def restart(self, timeout=20):
        before = self.signal_k("restart")
        wait_for(lambda: self._resumes() > before, timeout=timeout, what="restart")
        wait_for(lambda: self.get("/gcmon/api/v1/health").status == 200, timeout=timeout)

    def stop(self, timeout=20):
        """-k stop (SIGTERM to the parent with a wrapper), wait for every process
        to exit, then the net checks what the logs gained (scan_after_exit)."""
        if not self.proc:
            return
        try:
            self._stop(timeout)
        finally:
            if self.proc.poll() is not None:
                self.scan_after_exit()

    def _stop(self, timeout):
        if self.proc.poll() is not None:
            return
        if self.wrapper:
            try:
                os.kill(self.apache_pid(), signal.SIGTERM)
            except (ProcessLookupError, RuntimeError):
                pass
        else:
            subprocess.run(self._cmd("-k", "stop"), env=self.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_all()
            raise RuntimeError("httpd did not stop within %ss" % timeout)
        finally:
            self._stdout.close()
        # No process of ours may outlive the parent.
        wait_for(lambda: not self._descendants(self.proc.pid), timeout=10,
                 what="children to exit")

    def _kill_all(self):
        for pid in [self.proc.pid] + self._tree(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)

    def kill_instance(self):
        """SIGKILL of the whole server at once (a host that dies): the apache2
        parent first (it would start new children), then every process below
        it; waits until all are gone. Returns the pids killed."""
        top = self.apache_pid()
        pids = [top] + self._tree(top)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        wait_for(lambda: not any(os.path.exists(f"/proc/{p}") and _alive(p) for p in pids),
                 timeout=10, what="killed processes gone")
        self._stdout.close()
        return pids

    def apache_pid(self):
        """The apache2 parent's pid (below the wrapper, if any)."""
        pid = self.proc.pid
        for _ in range(4):
            if _comm(pid) == "apache2":
                return pid
            kids = self._descendants(pid)
            if not kids:
                break
            pid = kids[0]
        raise RuntimeError("no apache2 parent process")

    @classmethod
    def _tree(cls, pid):
        out = []
        for kid in cls._descendants(pid):
            out += [kid] + cls._tree(kid)
        return out

    @staticmethod
    def _descendants(ppid):
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if int(fields[1]) == ppid and fields[0] != "Z":
                out.append(int(entry))
        return out

    def child_pids(self):
        return sorted(self._descendants(self.apache_pid() if self.wrapper else self.proc.pid))

    def kill_child(self, pid=None, sig=signal.SIGKILL):
        pid = pid or self.child_pids()[0]
        os.kill(pid, sig)
        return pid

    def cleanup(self):
        try:
            self.stop()
        finally:
            if self in LIVE:
                LIVE.remove(self)
            if self._own_db:
                self.db.drop()
            if not self.keep_root:
                shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------ error log
    def scan_logs(self, allow=(), final=False):
        """The net: BAD_LINE lines of error_log and logs/stdout since the last
        scan that neither self.allow_log nor allow matches, each prefixed with
        its file; advances the offsets. While the server runs only whole lines
        are taken (a partial one waits for the next scan); final takes all."""
        allow = self.allow_log + tuple(allow)
        bad = []
        for rel in LOG_FILES:
            try:
                with open(os.path.join(self.root, rel), "rb") as f:
                    f.seek(self._checked[rel])
                    data = f.read()
            except FileNotFoundError:
                continue
            if not final:
                data = data[:data.rfind(b"\n") + 1]
            self._checked[rel] += len(data)
            bad += [f"{rel}: {line}" for line in
                    bad_lines_in(data.decode("utf-8", "replace"), allow)]
        return bad

    def scan_after_exit(self):
        """Once every process has exited: the rest of the logs, with this
        server's allow_log and the running test's marker; what is found goes to
        PENDING (STRICT) and fails the current test phase."""
        if not STRICT:
            return
        bad = self.scan_logs(CURRENT_ALLOW, final=True)
        if bad:
            PENDING.append(f"httpd {self.root} after its processes exited:\n" + "\n".join(bad))

    def mark_log(self):
        self._log_mark = len(self.read_log())

    def log_since_mark(self):
        return self.read_log()[self._log_mark:]

    def bad_lines(self, allow=()):
        return bad_lines_in(self.log_since_mark(), allow)

    # ------------------------------------------------------------ HTTP
    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            elif isinstance(body, str):
                body = body.encode()
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            resp = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()
        # An answer of the API must be what docs/openapi.yaml says (openapi_check.py).
        openapi_check.observe(self, method, path, resp)
        return resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def admin(self, method, path, body=None, headers=None, **kw):
        """An admin write the way the dashboard sends it."""
        h = {"Content-Type": "application/json", "X-Gcmon-Request": "1"}
        h.update(headers or {})
        return self.request(method, path, body=body, headers=h, **kw)

    def metrics(self):
        """Parse /metrics into {(name, frozenset(labels)): value}."""
        r = self.get("/gcmon/api/v1/metrics")
        assert r.status == 200, r
        out = {}
        for line in r.text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
            assert m, line
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
        return out

    @staticmethod
    def metric(metrics, name, **labels):
        return metrics.get((name, frozenset(labels.items())), 0.0)


def assert_problem(r, status, slug=None, field=None):
    """r is an RFC 9457 problem of gcmon's: status, type urn:gcmon:problem:<slug>,
    a title, no-store; with field, `errors` names exactly that field. The body."""
    assert r.status == status, r
    assert r.header("content-type") == "application/problem+json", r
    assert r.header("cache-control") == "no-store"
    body = r.json
    assert body["status"] == status
    assert body["type"].startswith("urn:gcmon:problem:")
    assert body["title"]
    if slug:
        assert body["type"] == "urn:gcmon:problem:" + slug, body
    if field:
        assert [e["field"] for e in body["errors"]] == [field], body
        assert all(e["message"] for e in body["errors"])
    return body
