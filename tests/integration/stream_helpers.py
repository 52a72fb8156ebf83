"""Helpers of the stream suites (test_stream*.py): configuration, reading gcmon's
SQLite database, the emulator's ground truth, and bounded polling."""
import hashlib
import hmac
import os
import re
import time
from datetime import datetime, timezone

from conftest import CLIENT_ID, CLIENT_SECRET
from gcdb import SqliteDb
from httpd import wait_for

# The emulator's simulation queues (stable ids, see tests/emulator/README.md).
SIM_QUEUES = ["3948fe4a-d262-5d71-a7ce-8cd9b0d75930",
              "ca79dbd2-1405-57b6-b4de-c460b9562124",
              "b25ceacc-eb03-504a-8309-0ef840c450fc"]

FAST_TIMERS = ("GcmonHeartbeatTimeout 2s\n"
               "GcmonPongTimeout 1s\n"
               "GcmonReconnectBackoff 1s 2s\n")


def stream_conf(queues=(), users=(), extra="", rate_limit=6000):
    lines = [f"GcmonClientID {CLIENT_ID}",
             "GcmonClientSecret env:GCMON_TEST_SECRET",
             f"GcmonRateLimit {rate_limit}",
             "GcmonRequestTimeout 5s",
             "GcmonStream On"]
    lines += [f"GcmonMonitorQueue {q}" for q in queues]
    lines += [f"GcmonMonitorUser {u}" for u in users]
    return "\n".join(lines) + "\n" + FAST_TIMERS + extra


def channel_label(channel_id, secret=CLIENT_SECRET):
    """The opaque label gcmon shows for a notification channel (its id is a credential):
    "ch-" + 10 hex digits of HMAC-SHA256 keyed with the client secret."""
    return "ch-" + hmac.new(secret.encode(), channel_id.encode(), hashlib.sha256).hexdigest()[:10]


def emulator_channels(emulator, status):
    """The emulator's view of the channels /v1/stream lists, by label."""
    mine = {c["id"] for c in status["channels"]}
    return {channel_label(c["id"]): c for c in emulator.channels()
            if channel_label(c["id"]) in mine}


def issued_channel_ids(emulator):
    """Every channel id the emulator handed out so far: live channels, and those named in
    the request log (subscriptions, HEADs, WebSocket upgrades) since the last clear."""
    ids = {c["id"] for c in emulator.channels()}
    for r in emulator.requests(path=r"channels/"):
        m = re.search(r"/channels/([^/?]+)", r["path"])
        if m:
            ids.add(m.group(1))
    return ids


def loud_lines_naming(httpd, ids):
    """error_log lines above debug that contain one of ids (channel ids are credentials:
    only debug lines may show them)."""
    return [line for line in httpd.read_log().splitlines()
            if not re.search(r"\[gcmon_(stream|api):(debug|trace\d)\]", line)
            and any(i in line for i in ids)]


def ms(iso):
    """RFC 3339 (…Z) → epoch milliseconds."""
    return int(round(datetime.fromisoformat(iso.replace("Z", "+00:00"))
                     .timestamp() * 1000))


def now_ms():
    return int(time.time() * 1000)


class StreamDB:
    """Read-only view of gcmon's tables (gcdb.py: SQLite or PostgreSQL). Takes
    httpd.db, an Httpd, or the path of a SQLite file."""

    def __init__(self, db):
        if isinstance(db, str):
            db = SqliteDb(db)
        self.db = getattr(db, "db", db)
        self._schema = None

    @property
    def path(self):
        return getattr(self.db, "path", None)

    def exists(self):
        return self.db.exists()

    def query(self, sql, args=()):
        return self.db.query(sql, args)

    def tables(self):
        return self.db.tables()

    def schema(self):
        """Find the history / current / lease / channel tables and their time columns."""
        if self._schema:
            return self._schema
        tables = self.tables()

        def pick(pattern):
            names = [n for n in tables if re.search(pattern, n)]
            assert names, f"no table like {pattern!r} in {sorted(tables)}"
            return min(names, key=len)

        cols = self.db.columns
        history = pick(r"histor")
        current = pick(r"current|agents?$|agent_state")
        lease = pick(r"lease")
        channels = pick(r"channel")
        hcols = cols(history)
        event_col = next(c for c in ("event_at", "event_timestamp", "event_time", "event_ms")
                         if c in hcols)
        ccols = cols(current)
        cur_time = next((c for c in ("event_at", "since", "event_timestamp") if c in ccols),
                        None)
        self._schema = dict(history=history, current=current, lease=lease,
                            channels=channels, event_col=event_col, cur_time=cur_time,
                            hcols=hcols, ccols=ccols, lcols=cols(lease))
        return self._schema

    @staticmethod
    def to_ms(v):
        """Stored times are epoch ms or µs integers, or RFC 3339 text."""
        if v is None:
            return None
        if isinstance(v, str):
            return ms(v)
        return v // 1000 if v > 10 ** 14 else v

    def history(self, user_id=None):
        s = self.schema()
        sql = f"SELECT * FROM {s['history']}"
        args = ()
        if user_id:
            sql += " WHERE user_id = ?"
            args = (user_id,)
        rows = self.query(sql + f" ORDER BY user_id, {s['event_col']}", args)
        for r in rows:
            r["_ms"] = self.to_ms(r[s["event_col"]])
        return rows

    def current(self):
        s = self.schema()
        return {r["user_id"]: r for r in self.query(f"SELECT * FROM {s['current']}")}

    def current_states(self):
        return {u: r["state"] for u, r in self.current().items()}


def stream_status(httpd):
    r = httpd.get("/gcmon/api/v1/stream")
    assert r.status == 200, r
    return r.json


def wait_connected(httpd, topics=None, timeout=30, what="stream connected"):
    def ok():
        s = stream_status(httpd)
        if not s["connected"] or not s["holder"]:
            return None
        if topics is not None and s["agents_monitored"] != topics:
            return None
        return s
    return wait_for(ok, timeout=timeout, interval=0.1, what=what)


def episodes(timeline, until_ts):
    """[(state, start_s, end_s)] of one agent: maximal runs of one state."""
    out = []
    for entry in timeline:
        if out and out[-1][0] == entry["state"]:
            continue
        if out:
            out[-1][2] = entry["ts"]
        out.append([entry["state"], entry["ts"], None])
    if out:
        out[-1][2] = until_ts
    return [tuple(e) for e in out]


def missing_transitions(db, agents, window_start, window_end, min_duration=2.0,
                        blackout=None):
    """State episodes of at least min_duration, lying inside the window, that the
    history does not reflect: no history row of that state inside the episode
    (stream or resync), and the history's state just before the episode ended is
    another one. (When a short episode B in A→B→A was lost in an outage, the
    resync rightly sees "still A", and the history's A covers the second A.)
    Episodes that began and ended inside `blackout` (start, end) — while no
    socket was subscribed — are skipped: notifications are not durable and a
    resync only sees the present, so nothing can recover them."""
    rows = {}
    for r in db.history():
        rows.setdefault(r["user_id"], []).append(r)
    missing = []
    for a in agents:
        mine = rows.get(a["id"], [])
        for state, start, end in episodes(a["timeline"], window_end):
            if start < window_start or end > window_end or end - start < min_duration:
                continue
            if blackout and start >= blackout[0] and end <= blackout[1]:
                continue
            lo, hi = int(start * 1000) - 1, int(end * 1000)
            if any(r["state"] == state and lo <= r["_ms"] < hi for r in mine):
                continue
            before = [r for r in mine if r["_ms"] < hi]
            if before and before[-1]["state"] == state:
                continue
            missing.append((a["id"], state, round(start, 3), round(end - start, 3)))
    return missing


def explain_missing(db, agents, missing, around=8.0):
    """Timeline and history of the agents of `missing`, near each episode (for failures)."""
    by_id = {a["id"]: a for a in agents}
    out = []
    for uid, state, start, dur in missing[:3]:
        out.append(f"--- {uid} {state} at {start} for {dur}s")
        for e in by_id[uid]["timeline"]:
            if abs(e["ts"] - start) < around:
                out.append(f"  emu {e['ts']:.3f} {e['state']:<14} {e['presence']}/"
                           f"{e['routing_status']} ({e['source']})")
        for r in db.history(uid):
            if abs(r["_ms"] / 1000 - start) < around:
                out.append(f"  db  {r['_ms'] / 1000:.3f} {r['state']:<14} {r['source']} "
                           f"ingested {StreamDB.to_ms(r.get('ingested_at')) / 1000:.3f}")
    return "\n".join(out)


def duplicate_rows(db):
    """History rows that repeat the previous row's state, or its time."""
    dups = []
    last = {}
    for r in db.history():
        prev = last.get(r["user_id"])
        if prev and (prev["state"] == r["state"] or prev["_ms"] == r["_ms"]):
            dups.append((r["user_id"], prev["state"], r["state"], prev["_ms"], r["_ms"]))
        last[r["user_id"]] = r
    return dups


def truth(emulator):
    return {a["id"]: a["state"] for a in emulator.agents(timeline=False)}


def converged(db, emulator, ids=None):
    want = truth(emulator)
    if ids is not None:
        want = {k: v for k, v in want.items() if k in ids}
    got = db.current_states()
    diff = {k: (v, got.get(k)) for k, v in want.items() if got.get(k) != v}
    return diff


def wait_converged(db, emulator, ids=None, timeout=30):
    last = {}

    def ok():
        nonlocal last
        last = converged(db, emulator, ids)
        return not last
    try:
        wait_for(ok, timeout=timeout, interval=0.2, what="current state = ground truth")
    except TimeoutError as e:
        raise AssertionError(f"{e}; differences (want, got): "
                             f"{dict(list(last.items())[:10])}") from None


def proc_threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return None


def proc_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, PermissionError):
        return None
