"""Write rows straight into gcmon's SQLite database, as the httpd user.

The server's children run as www-data and keep the database open in WAL mode;
a root process that opened it could leave root-owned -wal/-shm files behind
that the children cannot write. So every write runs in a forked child that
first drops to the httpd user (when we are root).

Times are epoch milliseconds, as gcmon stores them.
"""
import json
import os
import pwd
import select
import sqlite3
import time

HISTORY_COLS = ("user_id", "user_name", "state", "previous_state", "presence",
                "routing_status", "event_at", "ingested_at", "source")


def _drop(user):
    if os.geteuid() == 0 and user:
        pw = pwd.getpwnam(user)
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)


class Bg:
    """A forked writer; join() returns what its function returned (JSON)."""

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


def _connect(path):
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA busy_timeout=30000")
    return db


def _execute(path, sql, rows):
    db = _connect(path)
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


def _query(path, sql, args):
    db = _connect(path)
    try:
        return [list(r) for r in db.execute(sql, args).fetchall()]
    finally:
        db.close()


def _trickle(path, sql, rows, pause, stop_file):
    """Insert rows one transaction each, until done or stop_file appears."""
    db = _connect(path)
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


class Seeder:
    def __init__(self, httpd):
        self.path = os.path.join(httpd.data_dir, "gcmon.db")
        self.user = getattr(httpd, "_user", None)

    def execute(self, sql, rows=None):
        return Bg(self.user, _execute, self.path, sql,
                  None if rows is None else [list(r) for r in rows]).join()

    def clear(self, *tables):
        self.execute(";\n".join(f"DELETE FROM {t}" for t in tables) + ";")

    def history(self, rows):
        """rows: dicts with HISTORY_COLS keys (missing → NULL)."""
        sql = (f"INSERT INTO gcmon_history ({', '.join(HISTORY_COLS)}) "
               f"VALUES ({', '.join('?' * len(HISTORY_COLS))})")
        return self.execute(sql, [[r.get(c) for c in HISTORY_COLS] for r in rows])

    def history_trickle(self, rows, pause=0.0, stop_file=None):
        """Start inserting rows one per transaction in the background; returns a
        Bg whose join() gives the number inserted."""
        sql = (f"INSERT INTO gcmon_history ({', '.join(HISTORY_COLS)}) "
               f"VALUES ({', '.join('?' * len(HISTORY_COLS))})")
        return Bg(self.user, _trickle, self.path, sql,
                  [[r.get(c) for c in HISTORY_COLS] for r in rows], pause, stop_file)

    def query(self, sql, args=()):
        return Bg(self.user, _query, self.path, sql, list(args)).join()
