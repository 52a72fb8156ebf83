"""pytest fixtures: a real apache2 with gcmon and the Genesys Cloud emulator.

A test module sets GCMON_CONF (extra gcmon directives) and optionally
HTTPD_ENV / START_SERVERS; the `httpd` fixture starts one server per module.
The error-log net: every Httpd a test or fixture builds is checked, error_log
and logs/stdout, at the end of every test while it lives and once more after
its processes exit (httpd.py, scan_logs/scan_after_exit); a test fails when one
gains unexpected [error]/[crit] or crash or sanitizer lines. A test lists lines
it expects with @pytest.mark.allow_log(regex, ...); a server, lines it writes
whatever the test, with Httpd(allow_log=(regex, ...)).

DB=pgsql runs every server on PostgreSQL instead of SQLite (gcdb.py, pgserver.py):
one throwaway PostgreSQL 15 per session, a fresh database per server.
"""
import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from emulator.client import Emulator  # noqa: E402
import httpd as httpd_harness  # noqa: E402
from httpd import Httpd  # noqa: E402
import gcdb  # noqa: E402
import openapi_check  # noqa: E402
import pgserver  # noqa: E402

CLIENT_ID = "gcmon-test"
CLIENT_SECRET = "s3cret-value-7f1c"
TOKEN_LIFE = 120            # seconds: gcmon renews a token at the latest halfway


def pytest_configure(config):
    config.addinivalue_line("markers", "allow_log(*regex): error_log lines a test expects")
    httpd_harness.STRICT = True
    gcdb.driver()       # refuse an unknown DB= value before anything starts
    # Every API answer the suites get is checked against docs/openapi.yaml.
    openapi_check.enable(os.environ.get("GCMON_OPENAPI_CHECK", "1") != "0")


def pytest_report_header(config):
    return f"gcmon database: {gcdb.driver()} (DB={os.environ.get('DB', '')!r})"


def allow_of(item):
    """The regexes of every allow_log marker of a test (its own, its class's,
    its module's)."""
    return tuple(a for m in item.iter_markers("allow_log") for a in m.args)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    # The test whose setup, call and teardown (module fixtures' teardown after a
    # module's last test included) run now: its marker applies to what a server
    # stopped meanwhile writes.
    httpd_harness.CURRENT_ALLOW = allow_of(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A server stopped during this phase (the test's own, or a fixture's at its
    teardown) whose logs gained unexpected lines fails the phase."""
    outcome = yield
    if not httpd_harness.PENDING:
        return
    text = "\n".join(httpd_harness.PENDING)
    httpd_harness.PENDING.clear()
    rep = outcome.get_result()
    if rep.passed:
        rep.outcome = "failed"
        rep.longrepr = "unexpected log lines:\n" + text
    else:
        rep.sections.append(("unexpected log lines", text))


def pytest_sessionfinish(session, exitstatus):
    pgserver.stop_shared()
    # Servers never cleaned up, and lines found after the last test's report.
    for h in list(httpd_harness.LIVE):
        bad = h.scan_logs(final=h.proc is None or h.proc.poll() is not None)
        if bad:
            httpd_harness.PENDING.append(f"httpd {h.root}:\n" + "\n".join(bad))
    if httpd_harness.PENDING:
        sys.stderr.write("\nunexpected log lines (outside any test):\n"
                         + "\n".join(httpd_harness.PENDING) + "\n")
        session.exitstatus = 1
    # Answers after the last test's check (module fixtures' teardown) still count.
    late = openapi_check.take()
    if late:
        sys.stderr.write("\nAPI answers that do not match docs/openapi.yaml (outside any "
                         "test):\n" + "\n".join(late) + "\n")
        session.exitstatus = 1


@pytest.fixture(scope="module")
def emulator():
    workdir = tempfile.mkdtemp(prefix="gcmon-emu-")
    # Tokens that really expire (the platform's last 24 h): every module that runs
    # over a minute renews them, on the request path and in the holder (a reset
    # keeps the launch value).
    emu = Emulator(workdir, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                   extra_args=("--token-expires", str(TOKEN_LIFE)))
    emu.start()
    yield emu
    emu.stop()


def default_conf():
    return (f"GcmonClientID {CLIENT_ID}\n"
            f"GcmonClientSecret env:GCMON_TEST_SECRET\n")


@pytest.fixture(scope="module")
def httpd(request, emulator):
    conf = getattr(request.module, "GCMON_CONF", default_conf())
    env = {"GCMON_TEST_SECRET": CLIENT_SECRET}
    env.update(getattr(request.module, "HTTPD_ENV", {}))
    h = Httpd(emulator_url=emulator.url, gcmon_conf=conf, env=env,
              start_servers=getattr(request.module, "START_SERVERS", 2))
    h.start()
    yield h
    h.cleanup()


@pytest.fixture(autouse=True)
def error_log_clean(request):
    """The net at the end of each test: every server alive (built and not yet
    cleaned up), whoever started it, error_log and logs/stdout since the last
    check (its start-up included), with the test's markers and the server's own
    allow_log."""
    yield
    allow = allow_of(request.node)
    bad = []
    for h in list(httpd_harness.LIVE):
        bad += [f"{h.root}/{line}" for line in h.scan_logs(allow)]
    assert not bad, "unexpected log lines:\n" + "\n".join(bad)


@pytest.fixture(autouse=True)
def openapi_conformance():
    """Fails the test whose requests got an API answer that docs/openapi.yaml does
    not describe (openapi_check.py: the operation, status, headers and body). An
    answer to a module fixture's request (before the module's first test) is
    reported by that first test."""
    yield
    found = openapi_check.take()
    if found:
        pytest.fail(f"{len(found)} API answer(s) do not match docs/openapi.yaml:\n"
                    + "\n".join(found), pytrace=False)


# Measurements a test reports (recovery times, latencies): printed in the pytest
# summary and kept in build/test-measurements.txt (-pgsql.txt for DB=pgsql runs).
MEASUREMENTS = []


@pytest.fixture
def report():
    def add(line):
        MEASUREMENTS.append(line)
    return add


def pytest_terminal_summary(terminalreporter):
    st = openapi_check.STATS
    if sum(st.values()):
        terminalreporter.write_line(
            f"docs/openapi.yaml: {sum(st.values())} API answers checked ({st['operation']} "
            f"of operations, {st['method_not_allowed']} 405s, {st['no_operation']} at "
            f"paths without an operation); %d of its %d documented responses seen"
            % openapi_check.coverage())
    if not MEASUREMENTS:
        return
    terminalreporter.section("gcmon measurements")
    for line in MEASUREMENTS:
        terminalreporter.write_line(line)
    build = os.environ.get("GCMON_BUILD", os.path.join(os.path.dirname(__file__), "..", "..",
                                                        "build"))
    try:
        name = "test-measurements-pgsql.txt" if gcdb.is_pgsql() else "test-measurements.txt"
        with open(os.path.join(build, name), "w") as f:
            f.write("\n".join(MEASUREMENTS) + "\n")
    except OSError:
        pass
