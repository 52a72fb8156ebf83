"""contrib/: the Prometheus rules and scrape job, and the Grafana dashboard.

promtool (Debian's prometheus package) checks the rules and the scrape job and runs
unit tests of every alert: each fires on the series it is written for and stays
silent on the healthy ones next to it. Every metric the rules and the dashboard name
is one gcmon serves: docs/metrics.md lists them, and test_stream.py::test_metrics
checks that list against a live /metrics page."""
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = os.path.join(REPO, "contrib", "prometheus", "gcmon-rules.yml")
SCRAPE = os.path.join(REPO, "contrib", "prometheus", "scrape.yml")
DASHBOARD = os.path.join(REPO, "contrib", "grafana", "gcmon-dashboard.json")

pytestmark = pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (make deps)")


def documented_metrics():
    with open(os.path.join(REPO, "docs", "metrics.md")) as f:
        return set(re.findall(r"^\| `(gcmon_\w+)` \|", f.read(), re.M))


def named_metrics(text):
    return {re.sub(r"_(bucket|count|sum)$", "", m) for m in re.findall(r"\bgcmon_\w+", text)
            if m not in ("gcmon_api",)}


def promtool(*args, cwd=None):
    p = subprocess.run(["promtool", *args], cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120)
    return p.returncode, p.stdout


def test_rules_are_valid():
    rc, out = promtool("check", "rules", RULES)
    assert rc == 0, out
    assert "SUCCESS" in out


def test_scrape_job_is_valid(tmp_path):
    conf = yaml.safe_load(open(SCRAPE))
    job = conf["scrape_configs"][0]
    assert job["metrics_path"] == "/gcmon/api/v1/metrics"
    (tmp_path / "pw").write_text("secret\n")
    job["basic_auth"]["password_file"] = str(tmp_path / "pw")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(conf))
    rc, out = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert rc == 0, out


def test_rules_and_dashboard_name_only_served_metrics():
    served = documented_metrics()
    assert "gcmon_stream_connected" in served and "gcmon_build_info" in served
    with open(RULES) as f:
        rules = named_metrics(f.read())
    dash = json.load(open(DASHBOARD))
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p.get("targets", []))
    used = rules | named_metrics(exprs)
    assert used, "no metric named"
    assert not used - served, f"not served by gcmon: {sorted(used - served)}"


def test_dashboard_shape():
    dash = json.load(open(DASHBOARD))
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert dash["uid"] == "gcmon"
    for p in dash["panels"]:
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]


# ---------------------------------------------------------------- alert unit tests

def rendered(rule, labels, value):
    """The rule's annotations as Prometheus renders them for an alert with these
    labels and value (the templates used here: $labels.x and $value | humanize)."""
    out = {}
    for k, v in rule.get("annotations", {}).items():
        v = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), v)
        v = v.replace("{{ $value | humanize }}", ("%g" % value))
        out[k] = v
    return out


def rules_by_name():
    doc = yaml.safe_load(open(RULES))
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"]}


# (alert, input series, eval time, [(labels of each expected alert, its value)])
CASES = [
    ("GcmonStreamDisconnected",
     [('gcmon_stream_connected{instance="a",job="gcmon"}', "0x15"),
      ('gcmon_stream_connected{instance="b",job="gcmon"}', "0x15")],
     "10m", [({}, 0)]),
    ("GcmonStreamDisconnected",  # another host holds the stream
     [('gcmon_stream_connected{instance="a",job="gcmon"}', "0x15"),
      ('gcmon_stream_connected{instance="b",job="gcmon"}', "1x15")],
     "10m", []),
    ("GcmonNoHeartbeats",
     [('gcmon_stream_connected{instance="a",job="gcmon"}', "1x15"),
      ('gcmon_stream_messages_total{instance="a",job="gcmon",kind="heartbeat"}', "5x15")],
     "10m", [({}, 0)]),
    ("GcmonNoHeartbeats",  # one every 30 s
     [('gcmon_stream_connected{instance="a",job="gcmon"}', "1x15"),
      ('gcmon_stream_messages_total{instance="a",job="gcmon",kind="heartbeat"}', "0+2x15")],
     "10m", []),
    ("GcmonNoHeartbeats",  # the heartbeat series never appeared (a labelled series)
     [('gcmon_stream_connected{instance="a",job="gcmon"}', "1x15")],
     "10m", [({}, 0)]),
    ("GcmonEventsDropped",
     [('gcmon_events_dropped_total{instance="a",job="gcmon",reason="queue_full"}', "0 0 0 5 5 5")],
     "5m", [({"reason": "queue_full"}, 5)]),
    ("GcmonEventsDropped",
     [('gcmon_events_dropped_total{instance="a",job="gcmon",reason="queue_full"}', "5x15")],
     "15m", []),
    ("GcmonWebhookDeliveriesFailing",
     [('gcmon_webhook_deliveries_total{instance="a",job="gcmon",target="slack",result="failed"}',
       "0 0 1 1 1")],
     "4m", [({"target": "slack"}, 1)]),
    ("GcmonOutboxGrowing",
     [('gcmon_outbox_pending{instance="a",job="gcmon"}', "100+5x80")],
     "70m", [({}, 450)]),
    ("GcmonOutboxGrowing",  # large but draining
     [('gcmon_outbox_pending{instance="a",job="gcmon"}', "500-5x80")],
     "70m", []),
    ("GcmonUpstreamUnauthorized",
     [('gcmon_upstream_requests_total{instance="a",job="gcmon",op="users_get",code="401"}',
       "0+2x15")],
     "10m", [({"instance": "a"}, 20)]),
    ("GcmonUpstreamUnauthorized",  # one token renewal
     [('gcmon_upstream_requests_total{instance="a",job="gcmon",op="users_get",code="401"}',
       "0 1x15")],
     "10m", []),
    ("GcmonUpstreamForbidden",
     [('gcmon_upstream_requests_total{instance="a",job="gcmon",op="queue_put",code="403"}',
       "0 0 1 1")],
     "3m", [({"op": "queue_put"}, 1)]),
    ("GcmonUpstreamThrottled",
     [('gcmon_upstream_requests_total{instance="a",job="gcmon",op="users_get",code="429"}',
       "0 0 3 3")],
     "3m", [({"instance": "a"}, 3)]),
    ("GcmonNoRecentEvents",
     [('gcmon_last_event_timestamp_seconds{instance="a",job="gcmon"}', "60x130")],
     "2h", [({}, 7140)]),
    ("GcmonNoRecentEvents",  # none since start: not an alert by itself
     [('gcmon_last_event_timestamp_seconds{instance="a",job="gcmon"}', "0x130")],
     "2h", []),
]


def test_every_alert_has_a_firing_case():
    assert set(rules_by_name()) - {"GcmonDown", "GcmonWebhookRetrying"} \
        <= {c[0] for c in CASES if c[3]}


def test_alerts_fire_as_written(tmp_path):
    rules = rules_by_name()
    tests = []
    for alert, series, at, expected in CASES:
        rule = rules[alert]
        exp = []
        for labels, value in expected:
            lab = dict(rule.get("labels", {}), **labels)
            exp.append({"exp_labels": lab, "exp_annotations": rendered(rule, labels, value)})
        tests.append({"interval": "1m",
                      "input_series": [{"series": s, "values": v} for s, v in series],
                      "alert_rule_test": [{"eval_time": at, "alertname": alert,
                                           "exp_alerts": exp}]})
    shutil.copy(RULES, tmp_path / "gcmon-rules.yml")
    (tmp_path / "t.yml").write_text(yaml.safe_dump(
        {"rule_files": ["gcmon-rules.yml"], "evaluation_interval": "1m", "tests": tests}))
    rc, out = promtool("test", "rules", "t.yml", cwd=tmp_path)
    assert rc == 0, out
