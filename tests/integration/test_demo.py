"""`make demo` (tests/demo.py): it prints the dashboard's URL first and serves it,
serves the API with the stream connected, keeps the admin API behind Basic auth
with the credentials it prints, shows idle alerts as its stand-in Slack receives
them, relays an admin status change to its stand-in payroll system, and stops
everything it started on SIGTERM or Ctrl-C."""
import base64
import os
import shutil
import signal
import subprocess
import sys
import time
import json
import re
import urllib.error
import urllib.request

import pytest

from httpd import LOG_FILES, bad_lines_in, free_port, wait_for

DEMO = os.path.join(os.path.dirname(__file__), "..", "demo.py")


def get_json(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return json.loads(r.read())
    except OSError:
        return None


def apache_of(root_marker):
    out = subprocess.run(["ps", "-eo", "pid,args"], stdout=subprocess.PIPE).stdout.decode()
    return [line for line in out.splitlines() if "apache2" in line and root_marker in line]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_demo_runs_and_stops(tmp_path, sig):
    port = free_port()
    log = open(tmp_path / "demo.log", "w+")
    env = dict(os.environ, GCMON_DEMO_PORT=str(port), GCMON_DEMO_IDLE="3s",
               GCMON_DEMO_AGENTS="12", PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, DEMO], stdout=log, stderr=subprocess.STDOUT,
                         env=env, start_new_session=True)
    try:
        s = wait_for(lambda: (get_json(port, "/gcmon/api/v1/stream") or {}).get("connected")
                     and get_json(port, "/gcmon/api/v1/stream"), timeout=40,
                     what="the demo's stream connected")
        assert s["agents_monitored"] == 12
        lines = (tmp_path / "demo.log").read_text().splitlines()
        # The dashboard's address comes first, and it answers.
        assert lines[0] == f"gcmon dashboard: http://127.0.0.1:{port}/gcmon/", lines[:3]
        with urllib.request.urlopen(lines[0].split()[-1], timeout=5) as r:
            assert r.status == 200 and b"<title>gcmon" in r.read()
        # The admin API wants the printed credentials.
        user, password = re.search(r"user (\S+), password (\S+)$",
                                   next(x for x in lines if "password" in x)).groups()
        audit = f"http://127.0.0.1:{port}/gcmon/api/v1/admin/audit"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(audit, timeout=5)
        assert e.value.code == 401
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        with urllib.request.urlopen(urllib.request.Request(
                audit, headers={"Authorization": auth}), timeout=5) as r:
            assert r.status == 200 and "data" in json.loads(r.read())
        wait_for(lambda: "slack: Idle alert:" in (tmp_path / "demo.log").read_text(),
                 timeout=40, interval=0.2, what="an idle alert printed")
        # The status change the demo suggests reaches its stand-in payroll system.
        url = next(line.split()[-1] for line in (tmp_path / "demo.log").read_text().splitlines()
                   if line.strip().startswith("curl "))
        curl = next(line for line in (tmp_path / "demo.log").read_text().splitlines()
                    if line.strip().startswith("curl "))
        assert f"-u {user}:{password} " in curl, curl
        req = urllib.request.Request(url, method="PUT", data=b'{"status":"Break"}', headers={
            "Content-Type": "application/json", "X-Gcmon-Request": "1"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)
        assert e.value.code == 401
        req.add_header("Authorization", auth)
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
        wait_for(lambda: f"-> Break by {user}" in (tmp_path / "demo.log").read_text(),
                 timeout=20, interval=0.2, what="the payroll webhook printed")
        root = next(line.split("error log: ")[1].split("/logs/")[0]
                    for line in (tmp_path / "demo.log").read_text().splitlines()
                    if line.startswith("error log: "))
        assert apache_of(root)
        p.send_signal(sig)
        p.wait(timeout=40)
        assert apache_of(root) == []
        # The error-log net for the demo's server (another process: the harness
        # in this one cannot see it): all of its logs, the stop's lines included.
        bad = []
        for rel in LOG_FILES:
            path = os.path.join(root, rel)
            assert os.path.exists(path), path
            with open(path, encoding="utf-8", errors="replace") as f:
                bad += [f"{rel}: {line}" for line in bad_lines_in(f.read())]
        shutil.rmtree(root, ignore_errors=True)     # the demo keeps it for its user
        assert not bad, "unexpected lines in the demo's logs:\n" + "\n".join(bad)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        log.close()
    text = (tmp_path / "demo.log").read_text()
    assert "stopping" in text
    assert "Traceback" not in text, text
