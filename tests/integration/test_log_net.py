"""The error-log net itself (httpd.py scan_logs/scan_after_exit, conftest.py):
each way a server's bad line can appear fails the right test, and only a
declaration that matches it lets it pass. An inner pytest session with this
directory's conftest.py as its plugin runs real servers and plants lines."""
import os
import re
import subprocess
import sys

import httpd as harness
from httpd import Httpd

HERE = os.path.dirname(os.path.abspath(__file__))
LINE = "[Thu Dec 03 00:00:00.000000 2026] [core:error] [pid 1:tid 1] planted {}\n"

INNER = '''
import os
import signal

import pytest
from httpd import Httpd, wait_for

LINE = {line!r}


def plant(h, what, rel="logs/error_log"):
    with open(os.path.join(h.root, rel), "a") as f:
        f.write(LINE.format(what))


@pytest.fixture(scope="module")
def srv():
    h = Httpd(gcmon_conf="", start_servers=1)
    h.start()
    plant(h, "at start-up")           # before the first test: that test's
    yield h
    h.stop()
    plant(h, "after the last stop")   # after the exit: the last test's teardown
    h.cleanup()


def test_startup_line(srv):
    pass


@pytest.mark.allow_log(r"planted while the test runs$")
def test_declared(srv):
    plant(srv, "while the test runs")


def test_undeclared(srv):
    plant(srv, "while the test runs")


def test_stdout(srv):
    plant(srv, "in stdout", "logs/stdout")


@pytest.mark.allow_log(r"planted while the test runs$")
def test_declared_other_line(srv):
    plant(srv, "something else")


def test_partial_line_waits(srv):
    with open(srv.error_log, "a") as f:
        f.write("[x] [core:error] half a line")      # no newline yet: not taken


def test_rest_of_line(srv):
    with open(srv.error_log, "a") as f:
        f.write(" and its end\\n")


def test_crash_at_stop():
    # A child that dies of SIGSEGV: the parent's "exit signal Segmentation
    # fault" line, checked once the server has stopped (the call fails).
    h = Httpd(gcmon_conf="", start_servers=1)
    try:
        h.start()
        h.kill_child(sig=signal.SIGSEGV)
        wait_for(lambda: "exit signal Segmentation fault" in h.read_log(), timeout=20)
        h.stop()
        assert h.proc.poll() is not None
    finally:
        h.cleanup()


def test_crash_declared_by_the_server():
    h = Httpd(gcmon_conf="", start_servers=1,
              allow_log=(r"AH00052: child pid \\d+ exit signal Segmentation fault",))
    try:
        h.start()
        h.kill_child(sig=signal.SIGSEGV)
        wait_for(lambda: "exit signal Segmentation fault" in h.read_log(), timeout=20)
    finally:
        h.cleanup()


@pytest.mark.allow_log(r"planted while the test runs$")
def test_last(srv):
    pass
'''

EXPECTED = {
    # test: PASSED, FAILED (its call) or ERROR (its teardown: the net's check)
    "test_startup_line": "ERROR",           # the start-up line
    "test_declared": "PASSED",
    "test_undeclared": "ERROR",
    "test_stdout": "ERROR",
    "test_declared_other_line": "ERROR",
    "test_partial_line_waits": "PASSED",
    "test_rest_of_line": "ERROR",
    "test_crash_at_stop": "FAILED",
    "test_crash_declared_by_the_server": "PASSED",
    "test_last": "ERROR",                   # the module fixture's stop
}


def test_net_fails_the_right_tests(tmp_path):
    (tmp_path / "test_inner.py").write_text(INNER.format(line=LINE))
    env = dict(os.environ, PYTHONPATH=HERE, GCMON_OPENAPI_CHECK="0")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-p", "conftest", "-rA", "test_inner.py"], cwd=tmp_path, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    out = p.stdout
    seen = {}
    for m in re.finditer(r"^(PASSED|FAILED|ERROR) test_inner\.py::(\w+)", out, re.M):
        # A test that passed and then failed its teardown is listed twice.
        seen[m.group(2)] = "ERROR" if m.group(1) == "ERROR" else seen.get(m.group(2), m.group(1))
    assert seen == EXPECTED, out
    # Each failure names the line that caused it, and the declared ones are not named.
    for what in ("at start-up", "after the last stop", "in stdout", "something else",
                 "while the test runs"):
        assert f"planted {what}" in out, (what, out)
    assert "[core:error] half a line and its end" in out, out
    assert "logs/stdout: " in out
    assert re.search(r"after its processes exited:\n.*exit signal Segmentation fault", out), out
    assert p.returncode == 1


def test_scan_takes_whole_lines_and_advances():
    h = Httpd(gcmon_conf="", allow_log=(r"planted by the server's own list$",))
    try:
        with open(h.error_log, "a") as f:
            f.write(LINE.format("one") + LINE.format("by the server's own list")
                    + "[x] [core:crit] partial")
        assert [x.split("planted ")[1] for x in h.scan_logs()] == ["one"]
        assert h.scan_logs() == []                      # advanced
        with open(h.error_log, "a") as f:
            f.write(" now whole\n[x] [core:error] tail")
        assert h.scan_logs() == ["logs/error_log: [x] [core:crit] partial now whole"]
        assert h.scan_logs(allow=(r"tail$",), final=True) == []
        assert h.scan_logs(final=True) == []
        assert harness.bad_lines_in("==12==ERROR: LeakSanitizer: detected memory leaks")
    finally:
        h.cleanup()
    assert h not in harness.LIVE
