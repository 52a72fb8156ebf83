"""GcmonRateLimit is one budget shared by every child: gcmon never sends more
than the limit per minute, whichever child makes the calls."""
import concurrent.futures

from conftest import CLIENT_ID

GCMON_CONF = f"""GcmonClientID {CLIENT_ID}
GcmonClientSecret env:GCMON_TEST_SECRET
GcmonRateLimit 4
GcmonRequestTimeout 2s
GcmonAdminActor anonymous
"""
START_SERVERS = 3
CHECK = "/gcmon/api/v1/admin/upstream/check"


def test_budget_shared_by_all_children(httpd, emulator):
    assert len(httpd.child_pids()) >= 2
    emulator.clear_requests()
    # Genesys's own limit, as tight as gcmon's: one call too many would be a 429.
    emulator.config(client_rate_limit=4)
    try:
        with concurrent.futures.ThreadPoolExecutor(10) as ex:
            results = list(ex.map(lambda _: httpd.admin("POST", CHECK, body={}), range(10)))
    finally:
        emulator.config(client_rate_limit=0)
    codes = sorted(r.status for r in results)
    api_calls = emulator.requests(path=r"^/api/v2/")
    # Exactly the budget reached Genesys; the rest were refused by gcmon itself.
    assert len(api_calls) == 4, api_calls
    assert codes.count(200) == 4, codes
    assert codes.count(503) == 6, codes
    for r in results:
        if r.status == 503:
            assert r.json["type"] == "urn:gcmon:problem:upstream_throttled"
            assert 1 <= int(r.header("retry-after")) <= 61   # the 61 s window (GcmonRateLimit)
    assert emulator.stats().get("rate_limited", 0) == 0
