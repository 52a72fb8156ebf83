"""TLS to every upstream gcmon talks to: REST, token, WebSocket and webhooks.

A test PKI made per module with openssl (tlscerts.py): the emulator serves its
REST, login and WebSocket endpoints over TLS (--tls, one site per certificate)
and the webhook sink serves https. Trusted through GcmonTLSCAFile everything
works end to end; a certificate from a CA nobody trusts, one for another host
name and an expired one are each refused, with a log line naming the host and
the reason, for the token, a REST call, the notification WebSocket and a
webhook delivery (every webhook target, Slack, status, trace and WFM, goes
through the same outbox → gc_webhook_post, so the status webhook stands for
all). Also: plain http:// to a host that is not loopback warns at start-up.
"""
import os
import re
import ssl
import tempfile

import pytest

from conftest import CLIENT_ID, CLIENT_SECRET
from emulator.client import Emulator
from httpd import Httpd, wait_for
from stream_helpers import FAST_TIMERS, stream_status, wait_connected
from tlscerts import TestPki
from webhook_sink import WebhookSink

AGENT = "tls-agent-1"
HOOK = "/hooks/status/zz-hook-token-zz"
CHECK = "/gcmon/api/v1/admin/upstream/check"

# What each bad certificate is refused for: (curl's words, libwebsockets' words).
BAD = {
    "untrusted": ("unable to get local issuer certificate", "unable to get local issuer certificate"),
    "wronghost": ("no alternative certificate subject name matches target host name '127.0.0.1'",
                  "IP address mismatch"),
    "expired": ("certificate has expired", "certificate has expired"),
}


@pytest.fixture(scope="module")
def pki():
    p = TestPki(tempfile.mkdtemp(prefix="gcmon-pki-"))
    p.certs = {"good": p.leaf("good"),
               "untrusted": p.leaf("untrusted", ca="rogue"),
               "wronghost": p.leaf("wronghost", names="DNS:other.example"),
               "expired": p.leaf("expired", start="20200101000000Z", end="20200201000000Z")}
    return p


def start_emulator(pki, bad):
    """The emulator over TLS: site 0 with the good certificate, site 1 with `bad`;
    channels' connectUri on site 1 (wss)."""
    args = []
    for name in ("good", bad):
        args += ["--tls", ",".join(pki.certs[name])]
    emu = Emulator(tempfile.mkdtemp(prefix="gcmon-emu-"), client_id=CLIENT_ID,
                   client_secret=CLIENT_SECRET, extra_args=args + ["--ws-tls", "1"])
    emu.start()
    emu.config(heartbeat=1)
    emu.add_agents([{"id": AGENT, "name": "TLS Agent", "presence": "Available"}])
    return emu


def start_sink(pki, name):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*pki.certs[name])
    return WebhookSink(ssl_context=ctx).start()


def conf(pki, api, login, hook=None, stream=True):
    lines = [f"GcmonClientID {CLIENT_ID}", "GcmonClientSecret env:GCMON_TEST_SECRET",
             "GcmonAdminActor anonymous", "GcmonRequestTimeout 5s",
             f"GcmonTLSCAFile {pki.ca_pem}", f"GcmonApiURL {api}", f"GcmonLoginURL {login}"]
    if stream:
        lines += ["GcmonStream On", f"GcmonMonitorUser {AGENT}",
                  "GcmonTransition * Available Break"]
    if hook:
        lines += [f"GcmonStatusWebhook {hook}", "GcmonWebhookSecret env:GCMON_TEST_HOOK"]
    return "\n".join(lines) + "\n" + (FAST_TIMERS if stream else "")


class Server:
    def __init__(self, gcmon_conf, allow_log=()):
        self.h = Httpd(gcmon_conf=gcmon_conf, start_servers=1, allow_log=allow_log,
                       env={"GCMON_TEST_SECRET": CLIENT_SECRET, "GCMON_TEST_HOOK": "hook-secret"})

    def __enter__(self):
        self.h.start()
        return self.h

    def __exit__(self, *exc):
        self.h.cleanup()


def log_line(h, pattern, what):
    return wait_for(lambda: re.search(pattern, h.read_log(), re.M), timeout=20, interval=0.1,
                    what=what)


def no_other_errors(h, allow):
    bad = h.bad_lines(allow)
    assert not bad, "unexpected error_log lines:\n" + "\n".join(bad)


def change_status(h):
    return h.admin("PUT", f"/gcmon/api/v1/admin/agents/{AGENT}/status", body={"status": "Break"})


# ------------------------------------------------------------------ trusted

def test_trusted_ca_works_end_to_end(pki):
    emu = start_emulator(pki, "good")
    sink = start_sink(pki, "good")
    try:
        good = f"https://127.0.0.1:{emu.tls_ports[0]}"
        with Server(conf(pki, good, good, hook=sink.url(HOOK))) as h:
            r = h.admin("POST", CHECK, body={"renew_token": True})
            assert r.status == 200, r
            assert r.json["api_url"] == good
            seen = {q["path"] for q in emu.requests()}
            assert "/oauth/token" in seen and "/api/v2/organizations/me" in seen, seen
            # the WebSocket: channel created over https, socket open on wss (site 1)
            wait_connected(h, topics=1, what="stream connected over wss")
            assert all(c["connectUri"].startswith(f"wss://127.0.0.1:{emu.tls_ports[1]}/")
                       for c in emu.channels()), emu.channels()
            # a webhook delivered over https
            r = change_status(h)
            assert r.status == 200, r
            sink.wait_count(1, timeout=20, path_prefix=HOOK)
            assert sink.requests(HOOK)[0].method == "POST"
            no_other_errors(h, (r"GCM1005",))
            assert "TLS verification failed" not in h.read_log()
    finally:
        sink.stop()
        emu.stop()


# ------------------------------------------------------------------ refused

@pytest.mark.parametrize("bad", sorted(BAD))
def test_bad_certificate_is_refused_everywhere(pki, bad):
    curl_why, lws_why = BAD[bad]
    emu = start_emulator(pki, bad)
    sink = start_sink(pki, bad)
    try:
        good = f"https://127.0.0.1:{emu.tls_ports[0]}"
        evil_port = emu.tls_ports[1]
        evil = f"https://127.0.0.1:{evil_port}"
        refused = re.escape(f"TLS verification failed for 127.0.0.1:{evil_port}: ")
        allow = (r"GCM1005", r"GCM103\b", r"GCM1101", r"GCM2226", r"GCM2201", r"GCM507")

        # token: the login service on the bad certificate
        with Server(conf(pki, good, evil, stream=False)) as h:
            r = h.admin("POST", CHECK, body={})
            assert r.status == 502, r
            assert re.search(refused + r".*" + re.escape(curl_why), r.json["detail"]), r.json
            log_line(h, r"GCM103: upstream POST " + re.escape(evil) + r"/oauth/token failed .*"
                     + refused + r".*" + re.escape(curl_why), "token refusal logged")
            assert not [q for q in emu.requests() if q["path"] == "/api/v2/organizations/me"]
            no_other_errors(h, allow)

        # REST: the API on the bad certificate, the login service fine
        emu.clear_requests()
        with Server(conf(pki, evil, good, stream=False)) as h:
            r = h.admin("POST", CHECK, body={})
            assert r.status == 502, r
            assert re.search(refused + r".*" + re.escape(curl_why), r.json["detail"]), r.json
            log_line(h, r"GCM103: upstream GET /api/v2/organizations/me failed .*" + refused
                     + r".*" + re.escape(curl_why), "REST refusal logged")
            assert "/oauth/token" in {q["path"] for q in emu.requests()}
            no_other_errors(h, allow)

        # WebSocket and webhook: REST and login fine, the socket (connectUri on
        # the bad site) and the webhook sink on the bad certificate. The
        # WebSocket client retries until the server stops: the same refusal
        # again after the last check, at the stop.
        with Server(conf(pki, good, good, hook=sink.url(HOOK)),
                    allow_log=(r"\[gcmon_stream:error\] .*GCM507: lws: SSL error: "
                               + re.escape(lws_why) + r" \(preverify_ok=0;",)) as h:
            log_line(h, r"GCM2201: channel \S+: cannot connect \(" + refused
                     + re.escape(lws_why) + r"\)", "WebSocket refusal logged")
            assert not stream_status(h)["connected"]
            r = change_status(h)
            assert r.status == 200, r
            sink_refused = re.escape(f"TLS verification failed for 127.0.0.1:{sink.port}: ")
            log_line(h, r"GCM701: outbox: delivery to the status webhook failed .*" + sink_refused
                     + r".*" + re.escape(curl_why), "webhook refusal logged")
            assert sink.requests() == []       # nothing reached the sink's handler
            assert HOOK not in h.read_log()    # the URL (its token) is never logged
            no_other_errors(h, allow)
    finally:
        sink.stop()
        emu.stop()


# ------------------------------------------------------------------ cleartext warning

WARN_API = r"GCM1020: {d} http://{host}(:\d+)? \(.*\) is plain http:// to a host that is not loopback"
WARN_HOOK = r"GCM2026: {d} \(.*\) is plain http:// to a host that is not loopback"


@pytest.fixture(scope="module")
def cfg():
    h = Httpd(gcmon_conf="", env={"GCMON_TEST_SECRET": CLIENT_SECRET})
    yield h
    h.cleanup()


def base_conf(api, login, hooks=""):
    return (f"GcmonClientID {CLIENT_ID}\nGcmonClientSecret env:GCMON_TEST_SECRET\n"
            f"GcmonApiURL {api}\nGcmonLoginURL {login}\n{hooks}")


def test_cleartext_to_a_remote_host_warns(cfg):
    hooks = "".join(f"{d} http://hooks.example.com/zz-{d}-token-zz\n"
                    for d in ("GcmonSlackWebhook", "GcmonStatusWebhook", "GcmonTraceWebhook",
                              "GcmonWfmWebhook"))
    rc, out = cfg.configtest(gcmon_conf=base_conf("http://api.example.com",
                                                  "http://10.1.2.3:8080", hooks))
    assert rc == 0, out
    assert re.search(WARN_API.format(d="GcmonApiURL", host=r"api\.example\.com"), out), out
    assert re.search(WARN_API.format(d="GcmonLoginURL", host=r"10\.1\.2\.3"), out), out
    for d in ("GcmonSlackWebhook", "GcmonStatusWebhook", "GcmonTraceWebhook", "GcmonWfmWebhook"):
        assert re.search(WARN_HOOK.format(d=d), out), (d, out)
    assert "token-zz" not in out          # webhook URLs are secrets: named by directive only


@pytest.mark.parametrize("api,login,hook", [
    ("http://127.0.0.1:8099", "http://localhost:8098", "http://127.0.0.2:9000/h"),
    ("http://[::1]:8099", "https://login.example.com", "https://hooks.example.com/h"),
])
def test_loopback_and_https_stay_silent(cfg, api, login, hook):
    rc, out = cfg.configtest(gcmon_conf=base_conf(api, login, f"GcmonStatusWebhook {hook}\n"))
    assert rc == 0, out
    assert "GCM1020" not in out and "GCM2026" not in out, out
