"""Shared memory across graceful restarts. A build with another metrics table (the
layout-test build, `make layout-build`) gets a fresh metrics segment and the parent
unmaps the old one; a changed GcmonRateLimit is set in place in the one budget segment,
which keeps the requests of its window. Old children finish on their old segments."""
import os
import re

import pytest

import promtext
from conftest import CLIENT_ID
from httpd import BUILD, Httpd

LAYOUT_BUILD = os.path.join(BUILD, "layout")
CHECK = "/gcmon/api/v1/admin/upstream/check"


def conf(rate_limit):
    return (f"GcmonClientID {CLIENT_ID}\n"
            "GcmonClientSecret env:GCMON_TEST_SECRET\n"
            "GcmonRequestTimeout 5s\n"
            f"GcmonRateLimit {rate_limit}\n"
            "GcmonAdminActor anonymous\n")


GCMON_CONF = conf(600)


@pytest.fixture(scope="module", autouse=True)
def layout_build():
    so = os.path.join(LAYOUT_BUILD, ".libs", "mod_gcmon_api.so")
    main = os.path.join(BUILD, ".libs", "mod_gcmon_api.so")
    if not os.path.exists(so) or os.path.getmtime(so) < os.path.getmtime(main):
        pytest.fail(f"{so} is missing or older than {main}: run `make layout-build` "
                    "(with the same BUILD and SAN as the modules under test)")
    return LAYOUT_BUILD


def scrape(httpd):
    r = httpd.get("/gcmon/api/v1/metrics")
    assert r.status == 200, r
    return promtext.validate(r.text)


def value(fams, family, name=None, **labels):
    for n, lab, v in fams.get(family, {"samples": []})["samples"]:
        if n == (name or family) and lab == labels:
            return v
    return 0.0


def shared_mappings(pid):
    """The parent's anonymous shared mappings (apr_shm without a file): (start, size)."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[1].endswith("s") and "/dev/zero" in line:
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                out.append((lo, hi - lo))
    return sorted(out)


def switch(httpd, build=None, rate_limit=None):
    httpd.build = build or BUILD
    httpd.write_config(gcmon_conf=conf(rate_limit) if rate_limit else None)
    httpd.graceful()


def segment_lines(httpd, tag):
    return re.findall(rf"{tag}: (.*)", httpd.log_since_mark())


def test_graceful_onto_another_metrics_layout(httpd):
    parent = httpd.proc.pid
    for _ in range(10):
        assert httpd.get("/gcmon/api/v1/stream").status == 200
    before = scrape(httpd)
    assert value(before, "gcmon_api_requests_total", route="stream", code="200") >= 10
    assert "gcmon_test_layout" not in before
    maps = shared_mappings(parent)

    # Upgrade: another metrics table. The segment is replaced, not misread.
    switch(httpd, LAYOUT_BUILD)
    fams = scrape(httpd)                                # parses (promtext is strict)
    assert fams["gcmon_test_layout"]["type"] == "gauge"
    assert value(fams, "gcmon_test_layout") == 0
    assert value(fams, "gcmon_api_requests_total", route="stream", code="200") == 0
    lines = segment_lines(httpd, "GCM1007")
    assert len(lines) == 1 and lines[0].startswith("metrics: ") \
        and "counters restart from zero" in lines[0], lines
    assert not segment_lines(httpd, "GCM2013")         # the status block is unchanged
    assert "[gcmon_api:notice]" in next(x for x in httpd.log_since_mark().splitlines()
                                        if "GCM1007" in x)
    # One segment replaced, none added: the parent unmapped the old metrics segment.
    now = shared_mappings(parent)
    assert len(now) == len(maps) and len(set(now) - set(maps)) == 1, (maps, now)
    assert httpd.get("/gcmon/api/v1/stream").status == 200
    assert value(scrape(httpd), "gcmon_api_requests_total", route="stream", code="200") == 1

    # And back: a new segment again, the test family gone.
    httpd.mark_log()
    switch(httpd, BUILD)
    fams = scrape(httpd)
    assert "gcmon_test_layout" not in fams
    assert value(fams, "gcmon_api_requests_total", route="stream", code="200") == 0
    assert len(segment_lines(httpd, "GCM1007")) == 1
    assert len(shared_mappings(parent)) == len(maps)


def test_graceful_with_another_rate_limit_keeps_the_window(httpd, emulator):
    parent = httpd.proc.pid
    for _ in range(3):
        assert httpd.admin("POST", CHECK, body="{}").status == 200
    before = scrape(httpd)
    used = value(before, "gcmon_upstream_budget_used")
    assert used >= 3
    assert value(before, "gcmon_upstream_budget_limit") == 600
    maps = shared_mappings(parent)

    httpd.mark_log()
    switch(httpd, rate_limit=300)
    fams = scrape(httpd)
    assert value(fams, "gcmon_upstream_budget_limit") == 300
    assert value(fams, "gcmon_upstream_budget_used") == used   # one window, carried over
    lines = segment_lines(httpd, "GCM1008")
    assert lines == [f"rate budget: GcmonRateLimit changed from 600 to 300 per minute in "
                     f"place; {int(used)} request(s) of the current window carried over"], \
        lines
    assert not segment_lines(httpd, "GCM1007")          # no second segment
    assert shared_mappings(parent) == maps

    # The new generation counts on in the same window.
    assert httpd.admin("POST", CHECK, body="{}").status == 200
    assert value(scrape(httpd), "gcmon_upstream_budget_used") > used
    switch(httpd, rate_limit=600)
    assert value(scrape(httpd), "gcmon_upstream_budget_limit") == 600
    assert shared_mappings(parent) == maps
