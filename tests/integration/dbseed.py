"""Write rows straight into gcmon's database (SQLite or PostgreSQL: gcdb.py).

On SQLite every write runs as the httpd user in a forked child (see gcdb.py);
on PostgreSQL on the tests' own connection. Times are epoch milliseconds, as
gcmon stores them.
"""
from gcdb import Bg  # noqa: F401 - bench/read.py forks its load with it

HISTORY_COLS = ("user_id", "user_name", "state", "previous_state", "presence",
                "routing_status", "event_at", "ingested_at", "source")

INSERT_HISTORY = (f"INSERT INTO gcmon_history ({', '.join(HISTORY_COLS)}) "
                  f"VALUES ({', '.join('?' * len(HISTORY_COLS))})")


class Seeder:
    def __init__(self, httpd_or_db):
        self.db = getattr(httpd_or_db, "db", httpd_or_db)

    def execute(self, sql, rows=None):
        return self.db.execute(sql, rows)

    def clear(self, *tables):
        self.execute(";\n".join(f"DELETE FROM {t}" for t in tables) + ";")

    def history(self, rows):
        """rows: dicts with HISTORY_COLS keys (missing → NULL)."""
        return self.execute(INSERT_HISTORY, [[r.get(c) for c in HISTORY_COLS] for r in rows])

    def history_trickle(self, rows, pause=0.0, stop_file=None):
        """Start inserting rows one per transaction in the background; returns a
        Bg whose join() gives the number inserted."""
        return self.db.trickle(INSERT_HISTORY, [[r.get(c) for c in HISTORY_COLS] for r in rows],
                               pause, stop_file)

    def query(self, sql, args=()):
        """Rows as lists (a read-write connection: sees the latest commit)."""
        return self.db.rows(sql, args)
