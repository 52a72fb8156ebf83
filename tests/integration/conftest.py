"""pytest fixtures: a real apache2 with gcmon and the Genesys Cloud emulator.

A test module sets GCMON_CONF (extra gcmon directives) and optionally
HTTPD_ENV / START_SERVERS; the `httpd` fixture starts one server per module.
Every test fails when error_log gains unexpected [error]/[crit] or crash
lines; a test lists lines it expects with @pytest.mark.allow_log(regex, ...).

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
from httpd import Httpd  # noqa: E402
import gcdb  # noqa: E402
import openapi_check  # noqa: E402
import pgserver  # noqa: E402

CLIENT_ID = "gcmon-test"
CLIENT_SECRET = "s3cret-value-7f1c"
TOKEN_LIFE = 120            # seconds: gcmon renews a token at the latest halfway


def pytest_configure(config):
    config.addinivalue_line("markers", "allow_log(*regex): error_log lines a test expects")
    gcdb.driver()       # refuse an unknown DB= value before anything starts
    # Every API answer the suites get is checked against docs/openapi.yaml.
    openapi_check.enable(os.environ.get("GCMON_OPENAPI_CHECK", "1") != "0")


def pytest_report_header(config):
    return f"gcmon database: {gcdb.driver()} (DB={os.environ.get('DB', '')!r})"


def pytest_sessionfinish(session, exitstatus):
    pgserver.stop_shared()
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
    if "httpd" not in request.fixturenames:
        yield
        return
    h = request.getfixturevalue("httpd")
    h.mark_log()
    yield
    marker = request.node.get_closest_marker("allow_log")
    allow = marker.args if marker else ()
    bad = h.bad_lines(allow)
    assert not bad, "unexpected error_log lines:\n" + "\n".join(bad)


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
