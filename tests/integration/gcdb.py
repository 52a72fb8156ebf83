"""gcmon's database as the tests see it, SQLite or PostgreSQL alike.

The suites read gcmon's tables (StreamDB in stream_helpers.py) and seed rows
(dbseed.py) through one small interface, so the same test runs on both:

    db = httpd.db                    # SqliteDb or PgDb, chosen by DB=pgsql
    db.query("SELECT * FROM gcmon_alerts WHERE user_id = ?", (uid,))  # [dict]
    db.execute("INSERT INTO gcmon_outbox (…) VALUES (?, ?)", rows)     # one transaction
    db.rows("SELECT count(*) FROM gcmon_history")                     # [[n]]
    db.tables(), db.columns("gcmon_history"), db.exists(), db.raw_text()

SQL is written once, in the common subset (? placeholders as Python's sqlite3
has them; PgDb quotes the values in). Times are epoch milliseconds either way.

DB=pgsql (environment) switches every Httpd to `DBDriver pgsql` on the
session's PostgreSQL (pgserver.shared()), each server with a fresh database
of its own (dropped in Httpd.cleanup); unset or DB=sqlite3 keeps SQLite, with
exactly the code paths the suites always had.

SQLite: readers open the file read-only (WAL: they never block gcmon); writers
run in a forked child that first drops to the httpd user, as the server's
children run as www-data and keep the database open in WAL mode — a root
process that opened it could leave root-owned -wal/-shm files behind that the
children cannot write.
"""
import json
import os
import pwd
import select
import sqlite3
import time


def driver():
    """"pgsql" or "sqlite3", from the DB environment variable."""
    v = os.environ.get("DB", "").strip().lower()
    if v in ("pgsql", "postgres", "postgresql", "pg"):
        return "pgsql"
    if v in ("", "sqlite", "sqlite3"):
        return "sqlite3"
    raise RuntimeError(f"DB={v!r}: use DB=pgsql or DB=sqlite3")


def is_pgsql():
    return driver() == "pgsql"


# ------------------------------------------------------------------ SQLite

def _drop(user):
    if os.geteuid() == 0 and user:
        pw = pwd.getpwnam(user)
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)


class Bg:
    """A forked worker; join() returns what its function returned (JSON)."""

    def __init__(self, user, fn, *args):
        r, w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # child
            os.close(r)
            code = 0
            try:
                _drop(user)
                out = json.dumps(fn(*args)).encode()
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                out = json.dumps({"error": repr(exc)}).encode()
                code = 1
            with os.fdopen(w, "wb") as f:
                f.write(out)
            os._exit(code)
        os.close(w)
        self._r = r

    def join(self, timeout=120):
        deadline = time.monotonic() + timeout
        chunks = []
        with os.fdopen(self._r, "rb", buffering=0) as f:
            while True:  # drain the pipe first: the child blocks on a full pipe
                left = deadline - time.monotonic()
                ready, _, _ = select.select([f], [], [], max(left, 0))
                if not ready:
                    os.kill(self.pid, 9)
                    os.waitpid(self.pid, 0)
                    raise TimeoutError("database writer did not finish")
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        _, status = os.waitpid(self.pid, 0)
        out = json.loads(b"".join(chunks) or b"null")
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"database writer failed: {out}")
        return out


def _sqlite_connect(path):
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA busy_timeout=30000")
    return db


def _sqlite_execute(path, sql, rows):
    db = _sqlite_connect(path)
    try:
        if rows is None:
            db.executescript("BEGIN IMMEDIATE;\n" + sql + "\nCOMMIT;")
        else:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(sql, rows)
            db.execute("COMMIT")
        return db.total_changes
    finally:
        db.close()


def _sqlite_rows(path, sql, args):
    db = _sqlite_connect(path)
    try:
        return [list(r) for r in db.execute(sql, args).fetchall()]
    finally:
        db.close()


def _sqlite_trickle(path, sql, rows, pause, stop_file):
    """Insert rows one transaction each, until done or stop_file appears."""
    db = _sqlite_connect(path)
    n = 0
    try:
        for row in rows:
            if stop_file and os.path.exists(stop_file):
                break
            db.execute("BEGIN IMMEDIATE")
            db.execute(sql, row)
            db.execute("COMMIT")
            n += 1
            if pause:
                time.sleep(pause)
    finally:
        db.close()
    return n


def _sqlite_hold_exclusive(path, held_file, stop_file, max_seconds):
    """Hold an exclusive lock (nobody else reads or writes) until stop_file
    appears or max_seconds pass; held_file says it is held."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    open(held_file, "w").close()
    deadline = time.monotonic() + max_seconds
    while not os.path.exists(stop_file) and time.monotonic() < deadline:
        time.sleep(0.02)
    db.execute("COMMIT")
    db.close()
    return True


class SqliteLock:
    """The database taken away from the httpd: an exclusive lock held by another
    process (as the httpd user) from start() until release(); bounded."""

    def __init__(self, db, max_seconds=60):
        self.db = db
        self.max_seconds = max_seconds
        self.held = db.path + ".test-held"
        self.stop = db.path + ".test-release"
        self.bg = None

    def start(self):
        for f in (self.held, self.stop):
            if os.path.exists(f):
                os.unlink(f)
        self.bg = Bg(self.db.user, _sqlite_hold_exclusive, self.db.path, self.held, self.stop,
                     self.max_seconds)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.held):
            if time.monotonic() > deadline:
                raise TimeoutError("the exclusive lock was not taken within 30 s")
            time.sleep(0.02)
        return self

    def release(self):
        if self.bg is None:
            return
        open(self.stop, "w").close()
        bg, self.bg = self.bg, None
        assert bg.join(timeout=30) is True

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.release()


class PgOutage:
    def __init__(self, db):
        self.db = db

    def _allow(self, on):
        self.db.server._admin.run(f'ALTER DATABASE "{self.db.name}" ALLOW_CONNECTIONS '
                                  + ("true" if on else "false"))

    def __enter__(self):
        self._allow(False)
        self.db.terminate_backends()
        return self

    def __exit__(self, *exc):
        self._allow(True)


class SqliteDb:
    dialect = "sqlite3"

    def __init__(self, path, user=None):
        self.path = path
        self.user = user            # writes run as this user (the httpd's)

    def dbd_conf(self):
        return f"DBDriver sqlite3\nDBDParams {self.path}\n"

    def exists(self):
        return os.path.exists(self.path)

    def _ro(self):
        c = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        c.row_factory = sqlite3.Row
        return c

    def query(self, sql, args=()):
        """Rows as dicts, on a read-only connection."""
        c = self._ro()
        try:
            return [dict(r) for r in c.execute(sql, args).fetchall()]
        finally:
            c.close()

    def rows(self, sql, args=()):
        """Rows as lists, on a read-write connection as the httpd user."""
        return Bg(self.user, _sqlite_rows, self.path, sql, list(args)).join()

    def execute(self, sql, rows=None):
        """sql once (a script; rows None) or once per row, in one transaction,
        as the httpd user; the number of rows changed."""
        return Bg(self.user, _sqlite_execute, self.path, sql,
                  None if rows is None else [list(r) for r in rows]).join()

    def trickle(self, sql, rows, pause=0.0, stop_file=None):
        """Start inserting rows one per transaction in the background; returns a
        Bg whose join() gives the number inserted."""
        return Bg(self.user, _sqlite_trickle, self.path, sql, [list(r) for r in rows], pause,
                  stop_file)

    def lock(self, max_seconds=60):
        """A SqliteLock: `with db.lock(): …` runs … while nobody else may write."""
        return SqliteLock(self, max_seconds)

    def outage(self):
        """The database taken away (PgDb.outage's counterpart): an exclusive lock."""
        return SqliteLock(self)

    def tables(self):
        return {r["name"] for r in
                self.query("SELECT name FROM sqlite_master WHERE type='table'")}

    def columns(self, table):
        return [r["name"] for r in self.query(f"PRAGMA table_info({table})")]

    def raw_text(self):
        """Everything stored, as text, to look for secrets: the database file
        with its WAL and shared-memory files (latin-1, byte for byte)."""
        blob = b""
        for suffix in ("", "-wal", "-shm"):
            try:
                with open(self.path + suffix, "rb") as f:
                    blob += f.read()
            except FileNotFoundError:
                pass
        return blob.decode("latin-1")

    def drop(self):
        pass                        # the file goes with the ServerRoot


# ------------------------------------------------------------------ PostgreSQL

def _pg_trickle(params, sql, rows, pause, stop_file):
    import pgserver
    c = pgserver.PgConn(**params)
    n = 0
    try:
        for row in rows:
            if stop_file and os.path.exists(stop_file):
                break
            c.run(sql, row)
            n += 1
            if pause:
                time.sleep(pause)
    finally:
        c.close()
    return n


class PgDb:
    """One database of a pgserver.PgServer. The tests connect as the cluster's
    superuser (trust authentication); gcmon as its own role."""
    dialect = "pgsql"

    def __init__(self, server, name, owned=True):
        self.server = server
        self.name = name
        self.owned = owned          # drop() drops it
        self._conn = server.connect(name)

    def dbd_conf(self):
        return f'DBDriver pgsql\nDBDParams "{self.server.dbd_params(self.name)}"\n'

    def exists(self):
        """The database is always there; true once gcmon migrated its schema."""
        return self._conn.scalar("SELECT to_regclass('public.gcmon_schema') IS NOT NULL")

    def query(self, sql, args=()):
        return self._conn.query(sql, args)

    def rows(self, sql, args=()):
        return [list(r) for r in self._conn.run(sql, args).rows]

    def scalar(self, sql, args=()):
        return self._conn.scalar(sql, args)

    def execute(self, sql, rows=None):
        if rows is None:
            return self._conn.run("BEGIN;\n" + sql + "\n;COMMIT;").rowcount
        import pgserver
        stmts = [pgserver.bind(sql, list(r)) for r in rows]
        if not stmts:
            return 0
        return self._conn.run("BEGIN;\n" + ";\n".join(stmts) + ";\nCOMMIT;").rowcount

    def trickle(self, sql, rows, pause=0.0, stop_file=None):
        p = self._conn.params
        return Bg(None, _pg_trickle, dict(host=p["host"], port=p["port"], user=p["user"],
                                          dbname=p["dbname"]),
                  sql, [list(r) for r in rows], pause, stop_file)

    def tables(self):
        return {r["table_name"] for r in self.query(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")}

    def columns(self, table):
        return [r["column_name"] for r in self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "'public' AND table_name = ? ORDER BY ordinal_position", (table,))]

    def raw_text(self):
        """Everything stored, as text: every row of every table."""
        out = []
        for t in sorted(self.tables()):
            out += [r["t"] for r in self.query(f'SELECT "{t}"::text AS t FROM "{t}"')]
        return "\n".join(out)

    def backends(self):
        return self.server.backends(self.name)

    def terminate_backends(self):
        """pg_terminate_backend of every gcmon connection to this database."""
        return self.server.terminate_backends(self.name)

    def outage(self):
        """The database taken away from the httpd: `with db.outage(): …` refuses
        every new connection to it and ends gcmon's open ones (the tests' own
        connection stays)."""
        return PgOutage(self)

    def close(self):
        self._conn.close()

    def drop(self):
        self._conn.close()
        if self.owned:
            self.server.drop_database(self.name)


def new_pg(label):
    """A fresh database on the session's PostgreSQL."""
    import pgserver
    srv = pgserver.shared()
    return PgDb(srv, srv.create_database(label))
