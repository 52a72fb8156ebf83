"""Directives: apache2 -t refuses bad values naming the directive, contacts no
upstream, and secrets never leak into logs or mod_info."""
import os
import re
import tempfile

import pytest

from conftest import CLIENT_ID, CLIENT_SECRET
from httpd import Httpd

BASE = f"GcmonClientID {CLIENT_ID}\nGcmonClientSecret env:GCMON_TEST_SECRET\n"


@pytest.fixture(scope="module")
def bare(emulator):
    h = Httpd(emulator_url=emulator.url, env={"GCMON_TEST_SECRET": CLIENT_SECRET})
    yield h
    h.cleanup()


@pytest.mark.parametrize("conf,directive,reason", [
    ("GcmonEnvironment https://mypurecloud.com", "GcmonEnvironment", "region domain"),
    ("GcmonEnvironment localhost", "GcmonEnvironment", "region domain"),
    ("GcmonApiURL ftp://api.example.com", "GcmonApiURL", "only http and https"),
    ("GcmonLoginURL login.example.com", "GcmonLoginURL", "absolute URL"),
    ("GcmonClientSecret env:GCMON_DEFINITELY_UNSET", "GcmonClientSecret",
     "GCMON_DEFINITELY_UNSET is not set"),
    ("GcmonClientSecret file:/nonexistent/secret", "GcmonClientSecret",
     "cannot read secret file"),
    ("GcmonTLSCAFile /nonexistent/ca.pem", "GcmonTLSCAFile", "not a readable file"),
    ("GcmonRequestTimeout -5s", "GcmonRequestTimeout", "not a duration"),
    ("GcmonRequestTimeout 10x", "GcmonRequestTimeout", "unknown unit"),
    ("GcmonRequestTimeout 0", "GcmonRequestTimeout", "minimum"),
    ("GcmonRateLimit 0", "GcmonRateLimit", "outside"),
    ("GcmonRateLimit lots", "GcmonRateLimit", "not a number"),
    ("GcmonMaxBody 0", "GcmonMaxBody", "outside"),
    ("<VirtualHost 127.0.0.1:1>\nGcmonRateLimit 5\n</VirtualHost>", "GcmonRateLimit",
     "cannot occur within"),
    ("GcmonReconnectBackoff 10s 5s", "GcmonReconnectBackoff", "above the maximum"),
    ("GcmonReconnectBackoff 1s", "GcmonReconnectBackoff", "takes two arguments"),
    ("GcmonTopicsPerChannel 1001", "GcmonTopicsPerChannel", "outside 1..1000"),
    ("GcmonTopicsPerChannel 0", "GcmonTopicsPerChannel", "outside 1..1000"),
    ("GcmonEventQueue 99", "GcmonEventQueue", "outside 100..10000000"),
    ("GcmonEventQueue lots", "GcmonEventQueue", "lots"),
    ("GcmonMonitorQueue q1 'bad id'", "GcmonMonitorQueue", "not a Genesys Cloud id"),
    ("GcmonMonitorUser ../etc", "GcmonMonitorUser", "not a Genesys Cloud id"),
    ("GcmonHeartbeatTimeout 0s", "GcmonHeartbeatTimeout", "minimum"),
    ("GcmonPongTimeout -1", "GcmonPongTimeout", "not a duration"),
    ("GcmonMembershipRefresh 5y", "GcmonMembershipRefresh", "unknown unit"),
    ("GcmonRetention soon", "GcmonRetention", "not a duration"),
    ("GcmonAuditRetention never", "GcmonAuditRetention", "not a duration"),
    ("GcmonStream maybe", "GcmonStream", "must be On or Off"),
    ("GcmonNodeName web1:80", "GcmonNodeName", "is not a node name"),
    ("GcmonNodeName " + "n" * 64, "GcmonNodeName", "is not a node name"),
    ("<VirtualHost 127.0.0.1:1>\nGcmonStream On\n</VirtualHost>", "GcmonStream",
     "cannot occur within"),
    ("GcmonIdleAlert Lunch 15m", "GcmonIdleAlert", "'Lunch' is not a state"),
    ("GcmonIdleAlert available 15m", "GcmonIdleAlert", "is not a state"),
    ("GcmonIdleAlert Available soon", "GcmonIdleAlert", "not a duration"),
    ("GcmonIdleAlert Available 0s", "GcmonIdleAlert", "minimum"),
    ("GcmonIdleAlert IDLE 15m 5y", "GcmonIdleAlert", "unknown unit"),
    ("GcmonIdleAlert IDLE", "GcmonIdleAlert", "takes two or three arguments"),
    ("GcmonIdleAlert IDLE 5m\nGcmonIdleAlert IDLE 10m", "GcmonIdleAlert",
     "a rule for state IDLE is already configured"),
    ("GcmonSlackWebhook env:GCMON_DEFINITELY_UNSET", "GcmonSlackWebhook",
     "GCMON_DEFINITELY_UNSET is not set"),
    ("GcmonSlackWebhook ftp://hooks.example.com/T0/B0/zzsecretzz", "GcmonSlackWebhook",
     "the value: only http and https"),
    ("GcmonStatusWebhook payroll.example.com/hook", "GcmonStatusWebhook",
     "the value is not an absolute URL"),
    ("GcmonTraceWebhook https://ops.example.com/h#frag", "GcmonTraceWebhook", "fragment"),
    ("GcmonWfmWebhook gopher://wfm.example.com/", "GcmonWfmWebhook",
     "the value: only http and https"),
    ("GcmonStatusWebhook env:GCMON_DEFINITELY_UNSET", "GcmonStatusWebhook",
     "GCMON_DEFINITELY_UNSET is not set"),
    ("GcmonWebhookSecret file:/nonexistent/secret", "GcmonWebhookSecret",
     "cannot read secret file"),
    ("GcmonWebhookMaxAge -1h", "GcmonWebhookMaxAge", "not a duration"),
    ("<VirtualHost 127.0.0.1:1>\nGcmonIdleAlert IDLE 5m\n</VirtualHost>", "GcmonIdleAlert",
     "cannot occur within"),
])
def test_bad_values_fail_configtest(bare, conf, directive, reason):
    rc, out = bare.configtest(gcmon_conf=BASE + conf)
    assert rc != 0, out
    assert directive in out, out
    assert reason in out, out


def test_slack_webhook_never_echoed(bare):
    """The Slack URL carries a token: not in apache2 -t's error, not in mod_info."""
    rc, out = bare.configtest(gcmon_conf=BASE + "GcmonSlackWebhook "
                              "mailto:zzsecretzz@example.com\n")
    assert rc != 0 and "GcmonSlackWebhook" in out, out
    assert "zzsecretzz" not in out, out


def test_client_id_without_secret_fails(bare):
    rc, out = bare.configtest(gcmon_conf=f"GcmonClientID {CLIENT_ID}\n")
    assert rc != 0
    assert "GCM1001" in out and "GcmonClientSecret" in out, out


def test_stream_without_api_fails(bare):
    # apache2 -t doesn't run post_config; a real start must refuse.
    h = Httpd(modules=("gcmon_stream",), gcmon_conf="")
    try:
        with pytest.raises(RuntimeError):
            h.start(timeout=5)
        assert "GCM2001" in h.read_log() + h._read("logs/stdout")
    finally:
        h.cleanup()


def test_good_config_contacts_no_upstream(bare, emulator):
    emulator.clear_requests()
    rc, out = bare.configtest(gcmon_conf=BASE + "GcmonRateLimit 120\nGcmonRequestTimeout 90s\n")
    assert rc == 0, out
    assert "Syntax OK" in out
    assert emulator.requests() == []
    assert CLIENT_SECRET not in out


def hidden_in_mod_info(html, directive):
    """mod_info shows `directive` with its argument replaced by [hidden]."""
    text = re.sub(r"<[^>]+>", "", html).replace("&nbsp;", " ")
    return re.search(rf"^\s*(?:\d+:)?\s*{directive}\s+\[hidden\]\s*$", text, re.M) is not None


def test_secret_forms_and_hiding(emulator):
    fd, path = tempfile.mkstemp(prefix="gcmon-secret-")
    os.write(fd, (CLIENT_SECRET + "\n").encode())
    os.close(fd)
    os.chmod(path, 0o600)  # read as root at config time, before children drop privileges
    try:
        for secret, literal in ((f"file:{path}", False), (CLIENT_SECRET, True)):
            h = Httpd(emulator_url=emulator.url,
                      gcmon_conf=f"GcmonClientID {CLIENT_ID}\nGcmonClientSecret {secret}\n"
                                 "GcmonAdminActor anonymous\n")
            try:
                h.start()
                r = h.admin("POST", "/gcmon/api/v1/admin/upstream/check", body={})
                assert r.status == 200, r
                info = h.get("/server-info?config")
                assert info.status == 200
                assert hidden_in_mod_info(info.text, "GcmonClientSecret"), info.text
                assert CLIENT_SECRET not in info.text
                log = h.read_log()
                assert CLIENT_SECRET not in log
                assert ("GCM10: GcmonClientSecret is given as a literal value" in log) == literal
            finally:
                h.cleanup()
    finally:
        os.unlink(path)


def test_webhook_secrets_hidden_from_mod_info(emulator):
    slack = "https://hooks.example.com/services/T000/B000/zzslacktokenzz"
    h = Httpd(emulator_url=emulator.url,
              gcmon_conf=BASE + f"GcmonSlackWebhook {slack}\n"
              "GcmonWebhookSecret env:GCMON_TEST_HOOK_SECRET\n"
              "GcmonStatusWebhook https://payroll.example.com/zzpayrolltokenzz/hook\n"
              "GcmonTraceWebhook https://ops.example.com/hook?key=zztracekeyzz\n"
              "GcmonWfmWebhook env:GCMON_TEST_WFM\n",
              env={"GCMON_TEST_SECRET": CLIENT_SECRET,
                   "GCMON_TEST_HOOK_SECRET": "zzhmackeyzz",
                   "GCMON_TEST_WFM": "https://wfm.example.com/zzwfmtokenzz"})
    try:
        h.start()
        info = h.get("/server-info?config").text
        secrets = ("zzslacktokenzz", "zzhmackeyzz", "zzpayrolltokenzz", "zztracekeyzz",
                   "zzwfmtokenzz", "payroll.example.com", "wfm.example.com")
        assert not [s for s in secrets if s in info], info
        for d in ("GcmonClientSecret", "GcmonSlackWebhook", "GcmonWebhookSecret",
                  "GcmonStatusWebhook", "GcmonTraceWebhook", "GcmonWfmWebhook"):
            assert hidden_in_mod_info(info, d), (d, info)
        log = h.read_log()
        assert not [s for s in secrets if s in log]
        assert "GCM10: GcmonSlackWebhook is given as a literal value" in log
        # every webhook URL is confidential, but only Slack's is a credential by design
        assert "GCM10: GcmonStatusWebhook" not in log
    finally:
        h.cleanup()
