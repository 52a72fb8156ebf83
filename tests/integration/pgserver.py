"""A throwaway PostgreSQL 15 for the integration suites, and a tiny client.

PgServer runs Debian's PostgreSQL itself: initdb into a temp directory (as the
`postgres` user when we are root: initdb refuses root), then the postmaster
on 127.0.0.1 and a free port, trust authentication, fsync off. It is stopped
by its pid (the postmaster's), with bounded waits; nothing else is signalled.
The tests connect as the superuser `gcmon_admin`; gcmon connects as `gcmon`,
which owns each test database (create_database / drop_database).

PgConn speaks the PostgreSQL frontend/backend protocol (v3, simple query,
trust authentication only) with the standard library: the suites poll the
database often, and a kept connection answers in well under a millisecond
where spawning psql costs tens. Values are bound by quoting them in Python
(literal()); the tests bind only their own values.

    srv = shared()                       # one server per pytest session
    db = srv.create_database("test_alerts")
    conn = srv.connect(db)               # PgConn
    conn.query("SELECT count(*) AS n FROM gcmon_history")   # [{"n": 0}]
    srv.terminate_backends(db)           # pg_terminate_backend of gcmon's connections
    srv.drop_database(db)
"""
import atexit
import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

PG_BIN = os.environ.get("GCMON_PG_BIN", "/usr/lib/postgresql/15/bin")
ADMIN = "gcmon_admin"               # superuser of the test cluster (the tests)
APP_USER = "gcmon"                  # gcmon's role: owns the test databases
APP_NAME = "gcmon-tests"            # application_name of the tests' own connections


def available():
    """None when PostgreSQL 15 can run here, else why not."""
    for tool in ("initdb", "postgres"):
        if not os.access(os.path.join(PG_BIN, tool), os.X_OK):
            return f"{PG_BIN}/{tool} not found (apt-get install postgresql-15; make deps)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run initdb as"
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ client

class PgError(Exception):
    """An ErrorResponse from the server: .code is the SQLSTATE."""

    def __init__(self, fields):
        self.fields = fields
        self.code = fields.get("C", "")
        super().__init__(f"{fields.get('S', 'ERROR')} {self.code}: {fields.get('M', '')}")


class PgConnectionLost(ConnectionError):
    pass


def literal(v):
    """A Python value as an SQL literal (standard_conforming_strings is on)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, bytes):
        return "'\\x" + v.hex() + "'::bytea"
    s = str(v)
    if "\0" in s:
        raise ValueError("NUL in an SQL string")
    return "'" + s.replace("'", "''") + "'"


_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\?|[^'\"?-]+|-")


def bind(sql, args=()):
    """Replace each ? outside quotes and comments with the next argument as a
    literal (the qmark style of Python's sqlite3, so tests read the same)."""
    args = list(args)
    out, i = [], 0
    for tok in _TOKENS.findall(sql):
        if tok == "?":
            if i >= len(args):
                raise ValueError(f"too few arguments for {sql!r}")
            out.append(literal(args[i]))
            i += 1
        else:
            out.append(tok)
    if i != len(args):
        raise ValueError(f"{len(args)} arguments for {i} placeholders in {sql!r}")
    return "".join(out)


_INT_OIDS = {20, 21, 23, 26, 28}     # int8 int2 int4 oid xid
_FLOAT_OIDS = {700, 701}


def _convert(oid, raw):
    if raw is None:
        return None
    s = raw.decode("utf-8")
    if oid in _INT_OIDS:
        return int(s)
    if oid == 16:
        return s == "t"
    if oid in _FLOAT_OIDS:
        return float(s)
    if oid == 1700:                  # numeric: sum() of bigints and the like
        return int(s) if re.fullmatch(r"-?\d+", s) else float(s)
    return s


class Result:
    def __init__(self):
        self.columns = []
        self.rows = []               # tuples
        self.tags = []               # CommandComplete tags, one per statement

    @property
    def rowcount(self):
        """Rows inserted, updated or deleted by every statement together."""
        n = 0
        for t in self.tags:
            parts = t.split()
            if parts and parts[0] in ("INSERT", "UPDATE", "DELETE", "MERGE", "COPY") \
                    and parts[-1].isdigit():
                n += int(parts[-1])
        return n

    def dicts(self):
        return [dict(zip(self.columns, r)) for r in self.rows]


class PgConn:
    """One connection; thread-safe (a lock around each query); reconnects once
    when the server closed it (pg_terminate_backend, a restart). Not shared
    across fork(): a child process opens its own."""

    def __init__(self, host, port, user, dbname, timeout=60):
        self.params = dict(host=host, port=port, user=user, dbname=dbname)
        self.timeout = timeout
        self._sock = None
        self._pid = None
        self._lock = threading.Lock()
        self.backend_pid = None
        self.tx_status = "I"

    # -- wire
    def _send(self, kind, payload=b""):
        self._sock.sendall(kind + struct.pack("!i", len(payload) + 4) + payload)

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise PgConnectionLost("the server closed the connection")
            buf += chunk
        return buf

    def _recv(self):
        head = self._recv_exact(5)
        kind, length = head[:1], struct.unpack("!i", head[1:])[0]
        return kind, self._recv_exact(length - 4)

    @staticmethod
    def _fields(payload):
        out = {}
        for part in payload.split(b"\0"):
            if part:
                out[chr(part[0])] = part[1:].decode("utf-8", "replace")
        return out

    def _connect(self):
        self.close()
        s = socket.create_connection((self.params["host"], self.params["port"]),
                                     timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = s
        self._pid = os.getpid()
        body = struct.pack("!i", 196608)
        for k, v in (("user", self.params["user"]), ("database", self.params["dbname"]),
                     ("application_name", APP_NAME), ("client_encoding", "UTF8")):
            body += k.encode() + b"\0" + str(v).encode() + b"\0"
        body += b"\0"
        s.sendall(struct.pack("!i", len(body) + 4) + body)
        while True:
            kind, payload = self._recv()
            if kind == b"R":
                code = struct.unpack("!i", payload[:4])[0]
                if code != 0:
                    raise PgError({"M": f"authentication method {code} is not supported "
                                        "(the test cluster uses trust)"})
            elif kind == b"K":
                self.backend_pid = struct.unpack("!i", payload[:4])[0]
            elif kind == b"E":
                fields = self._fields(payload)
                self.close()
                raise PgError(fields)
            elif kind == b"Z":
                return

    def close(self):
        if self._sock is not None:
            try:
                if self._pid == os.getpid():
                    self._send(b"X")
            except OSError:
                pass
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None

    def _run(self, sql):
        self._send(b"Q", sql.encode("utf-8") + b"\0")
        res, err, oids = Result(), None, []
        while True:
            kind, payload = self._recv()
            if kind == b"T":
                n = struct.unpack("!h", payload[:2])[0]
                pos, cols, oids = 2, [], []
                for _ in range(n):
                    end = payload.index(b"\0", pos)
                    cols.append(payload[pos:end].decode("utf-8"))
                    pos = end + 1
                    _tab, _att, oid, _len, _mod, _fmt = struct.unpack("!ihihih",
                                                                     payload[pos:pos + 18])
                    oids.append(oid)
                    pos += 18
                res.columns, res.rows = cols, []
            elif kind == b"D":
                n = struct.unpack("!h", payload[:2])[0]
                pos, row = 2, []
                for i in range(n):
                    ln = struct.unpack("!i", payload[pos:pos + 4])[0]
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(_convert(oids[i], payload[pos:pos + ln]))
                        pos += ln
                res.rows.append(tuple(row))
            elif kind == b"C":
                res.tags.append(payload.rstrip(b"\0").decode())
            elif kind == b"E":
                err = PgError(self._fields(payload))
            elif kind == b"Z":
                self.tx_status = payload[:1].decode()
                if err:
                    raise err
                return res
            # N (notice), S (parameter status), I (empty query), A: ignored

    def run(self, sql, args=()):
        """Run sql (several statements allowed; no ? then unless args bind them);
        the last statement's rows come back as a Result."""
        text = bind(sql, args) if args else sql
        with self._lock:
            for attempt in (0, 1):
                if self._sock is None or self._pid != os.getpid():
                    self._sock = None
                    self._connect()
                try:
                    return self._run(text)
                except (PgConnectionLost, ConnectionResetError, BrokenPipeError) as exc:
                    self.close()
                    if attempt:
                        raise PgConnectionLost(str(exc)) from exc
                except PgError as exc:
                    # 57P01 admin_shutdown: our backend was terminated; the query
                    # did not run. Anything else is the caller's.
                    if exc.code in ("57P01", "57P02", "57P03") and not attempt:
                        self.close()
                        continue
                    if self.tx_status in ("T", "E"):    # a failed BEGIN … COMMIT
                        self._run("ROLLBACK")
                    raise
                except BaseException:
                    self.close()                        # out of step with the server
                    raise

    def query(self, sql, args=()):
        return self.run(sql, args).dicts()

    def scalar(self, sql, args=()):
        rows = self.run(sql, args).rows
        return rows[0][0] if rows else None


# ------------------------------------------------------------------ server

def _demote(user):
    """Popen arguments running a command as user (when we are root)."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam(user)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _die_with_parent():
    # The postmaster gets SIGQUIT (immediate shutdown) should pytest die without
    # cleaning up; set after the uid change, which would clear it.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGQUIT)        # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort
        pass


class PgServer:
    def __init__(self, max_connections=300, keep=False):
        self.max_connections = max_connections
        self.keep = keep
        self.root = None
        self.port = None
        self.proc = None
        self._admin = None
        self._seq = 0
        self._lock = threading.Lock()

    @property
    def host(self):
        return "127.0.0.1"

    @property
    def log_path(self):
        return os.path.join(self.root, "server.log")

    def read_log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def start(self, timeout=60):
        why = available()
        if why:
            raise RuntimeError(why)
        self.root = tempfile.mkdtemp(prefix="gcmon-pg-")
        os.chmod(self.root, 0o755)
        demote = _demote("postgres")
        if demote:
            os.chown(self.root, demote["user"], demote["group"])
        data = os.path.join(self.root, "data")
        p = subprocess.run([os.path.join(PG_BIN, "initdb"), "-D", data, "-A", "trust",
                            "-U", ADMIN, "-E", "UTF8", "--locale=C", "--no-sync",
                            "--no-instructions"],
                           cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, **demote)
        if p.returncode != 0:
            raise RuntimeError("initdb failed:\n" + p.stdout.decode("utf-8", "replace"))
        self.port = free_port()
        log = open(self.log_path, "ab")
        if demote:
            os.chown(self.log_path, demote["user"], demote["group"])
        try:
            self.proc = subprocess.Popen(
                [os.path.join(PG_BIN, "postgres"), "-D", data,
                 "-c", "listen_addresses=127.0.0.1", "-p", str(self.port),
                 "-c", f"unix_socket_directories={self.root}",
                 "-c", "fsync=off", "-c", "full_page_writes=off",
                 "-c", "synchronous_commit=off",
                 "-c", f"max_connections={self.max_connections}",
                 "-c", "shared_buffers=64MB", "-c", "log_min_messages=warning",
                 "-c", "log_line_prefix=%m [%p] %d %a: "],
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent, **demote)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited (rc={self.proc.returncode}):\n"
                                   + self.read_log()[-3000:])
            try:
                self._admin = PgConn(self.host, self.port, ADMIN, "postgres")
                self._admin.run("SELECT 1")
                break
            except (OSError, PgError) as exc:   # starting up: refused, 57P03
                last = exc
                self._admin = None
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"postgres did not accept connections within {timeout}s "
                               f"({last!r}):\n{self.read_log()[-3000:]}")
        self._admin.run(f"CREATE ROLE {APP_USER} LOGIN")
        atexit.register(self.stop)
        return self

    def stop(self, timeout=30):
        """Fast shutdown (SIGINT) of the postmaster, then immediate (SIGQUIT),
        then SIGKILL: each a bounded wait. Only our postmaster is signalled;
        it ends its own backends."""
        if self._admin:
            self._admin.close()
            self._admin = None
        if self.proc and self.proc.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 10),
                              (signal.SIGKILL, 10)):
                try:
                    os.kill(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.root and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    # -- databases
    def admin(self, sql, args=()):
        return self._admin.query(sql, args)

    def create_database(self, label="gcmon"):
        with self._lock:
            self._seq += 1
            seq = self._seq
        name = re.sub(r"[^a-z0-9_]", "_", label.lower())[:40]
        name = f"gc_{name}_{os.getpid()}_{seq}"
        self._admin.run(f'CREATE DATABASE "{name}" OWNER {APP_USER}')
        return name

    def drop_database(self, name):
        if self._admin is None:
            return
        self._admin.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def dbd_params(self, dbname):
        """mod_dbd's DBDParams for gcmon (libpq conninfo), with the bounds on every
        wait that docs/scale-out.md recommends, so every PostgreSQL run uses them."""
        return (f"host={self.host} port={self.port} user={APP_USER} dbname={dbname} "
                f"{RECOMMENDED}")

    def connect(self, dbname, user=ADMIN):
        return PgConn(self.host, self.port, user, dbname)

    def backends(self, dbname):
        """gcmon's connections to dbname (not the tests' own)."""
        return self.admin("SELECT pid, usename, application_name, state, query "
                          "FROM pg_stat_activity WHERE datname = ? AND backend_type = "
                          "'client backend' AND application_name <> ?", (dbname, APP_NAME))

    def terminate_backends(self, dbname):
        """pg_terminate_backend of every connection of gcmon's to dbname; how many."""
        rows = self.admin("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n "
                          "FROM pg_stat_activity WHERE datname = ? AND backend_type = "
                          "'client backend' AND application_name <> ? "
                          "AND pid <> pg_backend_pid()", (dbname, APP_NAME))
        return rows[0]["n"]


# docs/scale-out.md "Bound every wait on the database" (test_docs.py checks they agree).
RECOMMENDED = ("connect_timeout=5 keepalives_idle=10 keepalives_interval=5 keepalives_count=3 "
               "tcp_user_timeout=15000 options='-c lock_timeout=10s'")

_SHARED = None
_SHARED_LOCK = threading.Lock()


def shared():
    """The session's PostgreSQL, started on first use, stopped at exit."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = PgServer().start()
        return _SHARED


def stop_shared():
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is not None:
            _SHARED.stop()
            _SHARED = None
