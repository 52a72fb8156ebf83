"""Moving a deployment from SQLite to PostgreSQL with tools/gcmon-migrate-db.

A SQLite deployment is built the way gcmon builds one: the stream over a
churning contact centre, idle alerts posted to Slack (some delivered, some left
pending while the receiver is down), status changes through the admin API
(audit rows, pending status webhooks), plus a few thousand older history rows
(dbseed). It is stopped, its read API answers are taken (history, board and
its ETag, alerts, audit, every page), and the tool copies it into PostgreSQL:
a fresh database (the tool creates gcmon's schema) and one gcmon migrated
itself (the two schemas must be identical). httpd on PostgreSQL then answers
exactly the same; the first holder there delivers every pending outbox row
exactly once and nothing delivered before, reuses the migrated notification
channel, and new rows get ids past every old one. The tool refuses a target
that already holds gcmon data, and --dry-run writes nothing.

And the backups docs/scale-out.md describes: pg_dump/pg_restore of the
PostgreSQL database and sqlite3's online .backup give databases httpd answers
the same from.

PostgreSQL only: it runs whatever DB= says (make integration-pgsql runs it)."""
import collections
import os
import subprocess
import time
import urllib.parse
import uuid

import pytest

import gcdb
import pgserver
from conftest import CLIENT_SECRET
from dbseed import Seeder
from httpd import REPO, Httpd, wait_for
from stream_helpers import SIM_QUEUES, StreamDB, stream_conf, wait_connected, wait_converged
from webhook_sink import WebhookSink

pytestmark = pytest.mark.skipif(pgserver.available() is not None,
                                reason=f"PostgreSQL: {pgserver.available()}")

TOOL = os.path.join(REPO, "tools", "gcmon-migrate-db")
API = "/gcmon/api/v1"
AGENTS = 12
ALERT_USERS = [f"mig-alert-{i}" for i in range(1, 5)]
SLACK_PATH = "/services/T000/B000/XXXX" + uuid.uuid4().hex
HOOK_PATH = "/hooks/status"
OLD_ROWS = 3000
DAY_MS = 86400000


def full_conf(sink):
    return stream_conf(queues=SIM_QUEUES, users=ALERT_USERS, extra=(
        "GcmonIdleAlert Available 2s\n"
        "GcmonSlackWebhook env:GCMON_TEST_SLACK\n"
        f"GcmonStatusWebhook {sink.url(HOOK_PATH)}\n"
        "GcmonWebhookSecret env:GCMON_TEST_HOOK_SECRET\n"
        "GcmonWebhookMaxAge 1h\n"
        "GcmonAdminActor anonymous\n"))


# Read-only: no stream, no webhook, so no holder touches anything.
READ_ONLY = "GcmonAdminActor anonymous\n"


def server(emulator, sink, database, conf):
    return Httpd(emulator_url=emulator.url, gcmon_conf=conf, database=database,
                 env={"GCMON_TEST_SECRET": CLIENT_SECRET,
                      "GCMON_TEST_SLACK": sink.url(SLACK_PATH),
                      "GCMON_TEST_HOOK_SECRET": "hook-migrate"})


def walk(h, path):
    out, cursor = [], None
    while True:
        q = {"limit": 100}
        if cursor:
            q["cursor"] = cursor
        r = h.get(f"{API}/{path}?" + urllib.parse.urlencode(q))
        assert r.status == 200, (path, r)
        out += r.json["data"]
        cursor = r.json["next_cursor"]
        if not cursor:
            return out


def views(h):
    """Everything the read API shows of the database (the clock's fields aside)."""
    r = h.get(f"{API}/agents")
    assert r.status == 200, r
    board = [{k: v for k, v in a.items() if k != "seconds_in_state"} for a in r.json["data"]]
    return {"history": walk(h, "agent-status/history"), "board": board,
            "board_etag": r.header("etag"), "alerts": walk(h, "alerts"),
            "audit": walk(h, "admin/audit"),
            "history_total": h.get(f"{API}/agent-status/history?limit=1").json["total"]}


def migrate(src, db, *args):
    return subprocess.run(["/usr/bin/python3", TOOL, "--from", src, "--to",
                           db.server.dbd_params(db.name), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=300)


def counts(q):
    return {t: q(f"SELECT count(*) AS n FROM {t}")[0]["n"]
            for t in ("gcmon_history", "gcmon_agents", "gcmon_channels", "gcmon_alerts",
                      "gcmon_outbox", "gcmon_audit", "gcmon_lease")}


def schema_of(db):
    """Tables, columns, indexes and constraints of a database, comparable."""
    cols = db.query("SELECT table_name, column_name, data_type, is_nullable, column_default "
                    "FROM information_schema.columns WHERE table_schema = 'public' "
                    "ORDER BY table_name, column_name")
    idx = db.query("SELECT tablename, indexname, indexdef FROM pg_indexes "
                   "WHERE schemaname = 'public' ORDER BY indexname")
    cons = db.query("SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) "
                    "AS def FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
                    "ORDER BY conname")
    vers = db.query("SELECT version FROM gcmon_schema ORDER BY version")
    return {"columns": cols, "indexes": idx, "constraints": cons, "versions": vers}


class Deployment:
    pass


@pytest.fixture(scope="module")
def sink():
    s = WebhookSink().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def sqlite_deployment(emulator, sink):
    """A stopped SQLite deployment and what its read API answered."""
    emulator.config(heartbeat=1)
    emulator.simulate(agents=AGENTS, queues=3, churn=0)
    emulator.add_agents([{"id": u, "name": "Alert " + u, "presence": "Busy"}
                         for u in ALERT_USERS])
    h = server(emulator, sink, "sqlite3", full_conf(sink))
    d = Deployment()
    d.h = h
    d.path = h.db.path
    try:
        h.start()
        wait_connected(h, topics=AGENTS + len(ALERT_USERS))
        db = StreamDB(h.db)
        emulator.simulate(agents=AGENTS, queues=3, churn=4.0)
        # Two alerts delivered, then the receiver goes down: two alerts and three
        # status webhooks stay pending.
        for u in ALERT_USERS[:2]:
            emulator.set_state(u, presence="Available")
        wait_for(lambda: len([r for r in sink.requests(SLACK_PATH) if r.ok]) >= 2, timeout=15,
                 what="two alerts delivered")
        sink.set_down(True)
        for u in ALERT_USERS[2:]:
            emulator.set_state(u, presence="Available")
        d.status_users = []
        for i in range(3):
            uid = f"mig-status-{i}-{uuid.uuid4().hex[:6]}"
            emulator.add_agents([{"id": uid, "name": "Status " + uid, "presence": "Available"}])
            r = h.admin("PUT", f"{API}/admin/agents/{uid}/status", body={"status": "Break"})
            assert r.status == 200, r
            d.status_users.append(uid)
        assert h.admin("PUT", f"{API}/admin/agents/mig-nobody/status",
                       body={"status": "Nope"}).status in (404, 422)
        wait_for(lambda: len(db.query("SELECT id FROM gcmon_alerts")) >= len(ALERT_USERS)
                 and db.query("SELECT count(*) AS n FROM gcmon_outbox WHERE status = 'pending' "
                              "AND attempts > 0")[0]["n"] >= 5,
                 timeout=20, what="alerts raised, deliveries pending after a failed attempt")
        time.sleep(2.0)
        emulator.stop_simulation()
        wait_converged(db, emulator, ids={a["id"] for a in emulator.agents(timeline=False)
                                          if not a["id"].startswith("mig-status")})
        now = int(time.time() * 1000)
        Seeder(h).history([{"user_id": f"mig-old-{i % 25}", "user_name": f"Old {i % 25}",
                            "state": ("Away", "Busy", "Meal")[i % 3],
                            "event_at": now - 30 * DAY_MS + i * 1000,
                            "ingested_at": now - 30 * DAY_MS + i * 1000, "source": "stream"}
                           for i in range(OLD_ROWS)])
        h.stop()
        # Frozen: the same files, read-only configuration.
        h.gcmon_conf = READ_ONLY
        h.write_config()
        h.start()
        d.views = views(h)
        h.stop()
        d.counts = counts(h.db.query)
        d.outbox = h.db.query("SELECT id, status, body FROM gcmon_outbox ORDER BY id")
        d.max_ids = {t: h.db.query(f"SELECT max(id) AS m FROM {t}")[0]["m"]
                     for t in ("gcmon_history", "gcmon_alerts", "gcmon_outbox", "gcmon_audit")}
        d.channels_created = emulator.stats()["channels_created"]
        yield d
    finally:
        emulator.stop_simulation()
        sink.set_down(False)
        h.cleanup()


@pytest.fixture(scope="module")
def migrated(sqlite_deployment):
    """A fresh PostgreSQL database the tool filled (and created the schema of)."""
    db = gcdb.new_pg("migrate_fresh")
    p = migrate(sqlite_deployment.path, db)
    assert p.returncode == 0, p.stdout + p.stderr
    yield db, p
    db.drop()


def test_deployment_has_everything(sqlite_deployment):
    c = sqlite_deployment.counts
    assert c["gcmon_history"] > OLD_ROWS and c["gcmon_agents"] >= AGENTS
    assert c["gcmon_channels"] >= 1 and c["gcmon_alerts"] >= len(ALERT_USERS)
    assert c["gcmon_audit"] >= 4 and c["gcmon_lease"] >= 1
    pending = [r for r in sqlite_deployment.outbox if r["status"] == "pending"]
    delivered = [r for r in sqlite_deployment.outbox if r["status"] == "delivered"]
    assert len(pending) >= 5 and len(delivered) >= 2, sqlite_deployment.outbox


def test_tool_copies_into_a_fresh_database(sqlite_deployment, migrated, report):
    db, p = migrated
    out = p.stdout
    assert "no schema yet (created here)" in out, out
    assert "pending outbox row(s) will be delivered" in out, out
    c = counts(db.query)
    want = dict(sqlite_deployment.counts, gcmon_lease=0)    # leases are not copied
    assert c == want, (c, want)
    # Ids kept, sequences past them: the next id of each table is the old max + 1.
    for t, m in sqlite_deployment.max_ids.items():
        assert db.query(f"SELECT max(id) AS m FROM {t}")[0]["m"] == m
        nxt = db.query(f"SELECT nextval(pg_get_serial_sequence('{t}', 'id')) AS n")[0]["n"]
        assert nxt > m, (t, nxt, m)
    report(f"migrate: {sum(n for t, n in sqlite_deployment.counts.items() if t != 'gcmon_lease')} "
           "SQLite rows → PostgreSQL: "
           + out.strip().splitlines()[-1].replace("gcmon-migrate-db: ", ""))


def test_same_answers_on_postgresql(emulator, sink, sqlite_deployment, migrated):
    db, _ = migrated
    h = server(emulator, sink, db, READ_ONLY)
    try:
        h.start()
        after = views(h)
        before = sqlite_deployment.views
        for k in before:
            if k == "board_etag":
                continue
            assert after[k] == before[k], (k, str(after[k])[:600], str(before[k])[:600])
        # The board's generation carries over, its id does not: a dashboard
        # open across the move reloads the board in full (META_KEPT).
        (bid0, gen0), (bid1, gen1) = (e.strip('"').split("-") for e in
                                      (before["board_etag"], after["board_etag"]))
        assert gen1 == gen0 and bid1 != bid0, (before["board_etag"], after["board_etag"])
        bad = h.bad_lines()
        assert not bad, bad
    finally:
        h.cleanup()


def test_new_holder_delivers_pending_once_and_continues(emulator, sink, sqlite_deployment,
                                                        migrated, report):
    db, _ = migrated
    d = sqlite_deployment
    pending = [r for r in d.outbox if r["status"] == "pending"]
    sink.set_down(False)
    before = collections.Counter(r.body.decode() for r in sink.requests() if r.ok)
    h = server(emulator, sink, db, full_conf(sink))
    try:
        h.start()
        wait_connected(h, topics=AGENTS + len(ALERT_USERS))
        wait_for(lambda: db.query("SELECT count(*) AS n FROM gcmon_outbox WHERE status = "
                                  "'pending'")[0]["n"] == 0, timeout=30, interval=0.2,
                 what="the migrated pending rows delivered")
        time.sleep(1.5)                 # bounded: the outbox looks every second
        now = collections.Counter(r.body.decode() for r in sink.requests() if r.ok)
        sent = now - before
        for r in pending:
            assert sent[r["body"]] == 1, (r["id"], sent[r["body"]])
        for r in d.outbox:
            if r["status"] == "delivered":
                assert sent[r["body"]] == 0, ("delivered again", r["id"])
        # The migrated channel is reused, not replaced.
        assert emulator.stats()["channels_created"] == d.channels_created
        # New rows continue past the old ids.
        uid = f"mig-after-{uuid.uuid4().hex[:6]}"
        emulator.add_agents([{"id": uid, "name": "After", "presence": "Available"}])
        assert h.admin("PUT", f"{API}/admin/agents/{uid}/status",
                       body={"status": "Meal"}).status == 200
        row = db.query("SELECT max(id) AS m FROM gcmon_audit")[0]["m"]
        assert row > d.max_ids["gcmon_audit"], row
        ob = wait_for(lambda: db.query("SELECT id FROM gcmon_outbox WHERE body LIKE ?",
                                       (f"%{uid}%",)), timeout=5, what="the new outbox row")
        assert ob[0]["id"] > d.max_ids["gcmon_outbox"], ob
        lease = db.query("SELECT holder FROM gcmon_lease WHERE name = 'stream'")
        assert lease and lease[0]["holder"] == wait_connected(h)["holder"]["id"]
        bad = h.bad_lines()
        assert not bad, bad
        report(f"migrate: {len(pending)} pending outbox row(s) delivered once each by the "
               f"first PostgreSQL holder; channel reused")
    finally:
        h.cleanup()


def test_refuses_a_target_with_gcmon_data(sqlite_deployment, migrated):
    db, _ = migrated
    before = counts(db.query)
    p = migrate(sqlite_deployment.path, db)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "already holds gcmon data" in p.stderr, p.stderr
    assert counts(db.query) == before


def test_into_a_schema_gcmon_made(emulator, sink, sqlite_deployment, migrated):
    """gcmon started once against the empty database (it creates the schema);
    the tool fills it; the schema is the one the tool would have made."""
    db = gcdb.new_pg("migrate_gcmon_schema")
    try:
        h = server(emulator, sink, db, READ_ONLY)
        try:
            h.start()
            assert h.get(f"{API}/alerts").status == 200          # migrates the schema
        finally:
            h.cleanup()
        assert schema_of(db) == schema_of(migrated[0])
        p = migrate(sqlite_deployment.path, db)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "schema version" in p.stdout and "created here" not in p.stdout, p.stdout
        assert counts(db.query) == dict(sqlite_deployment.counts, gcmon_lease=0)
    finally:
        db.drop()


def test_dry_run_writes_nothing(sqlite_deployment):
    db = gcdb.new_pg("migrate_dry")
    try:
        p = migrate(sqlite_deployment.path, db, "--dry-run")
        assert p.returncode == 0, p.stdout + p.stderr
        assert "dry run: nothing written" in p.stdout
        assert f"gcmon_history: {sqlite_deployment.counts['gcmon_history']} row(s)" in p.stdout
        assert db.tables() == set()
    finally:
        db.drop()


def test_refuses_what_is_not_a_gcmon_database(tmp_path):
    db = gcdb.new_pg("migrate_bad")
    try:
        p = migrate(str(tmp_path / "missing.db"), db)
        assert p.returncode == 1 and "no such file" in p.stderr, p.stderr
        other = tmp_path / "other.db"
        import sqlite3
        c = sqlite3.connect(other)
        c.execute("CREATE TABLE t (x)")
        c.commit()
        c.close()
        p = migrate(str(other), db)
        assert p.returncode == 1 and "not a gcmon database" in p.stderr, p.stderr
        assert db.tables() == set()
    finally:
        db.drop()


# ------------------------------------------------------------------ backup and restore

def test_pg_dump_and_restore(emulator, sink, sqlite_deployment, migrated):
    """docs/scale-out.md's backup: pg_dump -Fc of the live database, pg_restore into
    an empty one owned by gcmon's role; httpd on it answers as on the original."""
    src, _ = migrated
    dump = os.path.join(sqlite_deployment.h.root, "gcmon.dump")
    p = subprocess.run([os.path.join(pgserver.PG_BIN, "pg_dump"), "--format=custom",
                        f"--file={dump}", src.server.dbd_params(src.name)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert p.returncode == 0, p.stdout
    dst = gcdb.new_pg("migrate_restored")
    try:
        p = subprocess.run([os.path.join(pgserver.PG_BIN, "pg_restore"), "--no-owner",
                            "--single-transaction", "--exit-on-error",
                            f"--dbname={dst.server.dbd_params(dst.name)}", dump],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stdout
        assert counts(dst.query) == counts(src.query)
        assert schema_of(dst) == schema_of(src)
        h = server(emulator, sink, dst, READ_ONLY)
        try:
            h.start()
            a = views(h)
        finally:
            h.cleanup()
        h = server(emulator, sink, src, READ_ONLY)
        try:
            h.start()
            b = views(h)
        finally:
            h.cleanup()
        assert a == b
    finally:
        dst.drop()


def test_sqlite_online_backup(emulator, sink, sqlite_deployment):
    """docs/scale-out.md's SQLite backup: sqlite3's .backup (the online backup
    API); httpd on the copy answers as on the original."""
    d = sqlite_deployment
    h = server(emulator, sink, "sqlite3", READ_ONLY)
    try:
        p = subprocess.run(["sqlite3", d.path, f".backup '{h.db.path}'"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stdout
        if h._user:
            import pwd
            pw = pwd.getpwnam(h._user)
            os.chown(h.db.path, pw.pw_uid, pw.pw_gid)
        h.start()
        assert views(h) == d.views
    finally:
        h.cleanup()
