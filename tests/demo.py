"""make demo: the Genesys Cloud emulator simulating a contact centre, and Debian's
apache2 with both gcmon modules on http://127.0.0.1:8080/gcmon/. Ctrl-C stops all."""
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "integration"))

from emulator.client import Emulator  # noqa: E402
from httpd import Httpd  # noqa: E402
from webhook_sink import WebhookSink  # noqa: E402

PORT = int(os.environ.get("GCMON_DEMO_PORT", "8080"))
AGENTS = int(os.environ.get("GCMON_DEMO_AGENTS", "50"))
QUEUES = int(os.environ.get("GCMON_DEMO_QUEUES", "3"))
IDLE = os.environ.get("GCMON_DEMO_IDLE", "2m")
CLIENT_ID, CLIENT_SECRET = "gcmon-demo", "demo-secret-not-for-production"
# The admin API (status changes, audit trail) is behind Basic auth, as it must be
# on a real site: a user of the demo's own, with a password made for each run
# (or GCMON_DEMO_PASSWORD).
ADMIN_USER = "demo-admin"


def protect_admin(h, password):
    """Basic auth on /gcmon/api/v1/admin with an htpasswd file in the server root."""
    pwfile = os.path.join(h.root, "conf", "htpasswd")
    subprocess.run(["htpasswd", "-c", "-b", "-B", pwfile, ADMIN_USER, password], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    os.chmod(pwfile, 0o644)
    return (f'<Location /gcmon/api/v1/admin>\n    AuthType Basic\n'
            f'    AuthName "gcmon demo admin"\n    AuthBasicProvider file\n'
            f'    AuthUserFile {pwfile}\n    Require valid-user\n</Location>\n')


def show_webhook_posts(sink, stop):
    """Print each idle alert the stand-in Slack receives, and each status change
    the stand-in payroll system (GcmonStatusWebhook) receives."""
    seen = 0
    while not stop.wait(1.0):
        posts = sink.requests()
        for r in posts[seen:]:
            try:
                body = json.loads(r.body)
                if r.path.startswith("/payroll"):
                    text = (f"payroll: {body['user_id']} {body['previous_status']} -> "
                            f"{body['target_status']} by {body['actor']}")
                else:
                    text = "slack: " + body["text"]
            except (ValueError, KeyError):
                text = f"webhook {r.path}: {r.body[:120]}"
            print(text, flush=True)
        seen = len(posts)


def main():
    emu = Emulator(tempfile.mkdtemp(prefix="gcmon-demo-emu-"), client_id=CLIENT_ID,
                   client_secret=CLIENT_SECRET)
    emu.start()
    sim = emu.simulate(agents=AGENTS, queues=QUEUES)
    sink = WebhookSink().start()
    stop = threading.Event()
    htdocs = os.path.join(os.path.dirname(HERE), "htdocs")
    queues = "".join(f"GcmonMonitorQueue {q['id']}\n" for q in sim["queues"])
    h = Httpd(emulator_url=emu.url, port=PORT, keep_root=True,
              env={"GCMON_DEMO_SECRET": CLIENT_SECRET,
                   "GCMON_DEMO_SLACK": sink.url("/services/T000/B000/demo")},
              gcmon_conf=f"GcmonClientID {CLIENT_ID}\n"
                         f"GcmonClientSecret env:GCMON_DEMO_SECRET\n"
                         f"GcmonStream On\n{queues}"
                         f"GcmonIdleAlert Available {IDLE}\nGcmonIdleAlert IDLE {IDLE}\n"
                         f"GcmonSlackWebhook env:GCMON_DEMO_SLACK\n"
                         f"GcmonStatusWebhook {sink.url('/payroll/status')}\n",
              extra_conf=f'Alias /gcmon "{htdocs}"\n'
                         f'<Directory "{htdocs}">\n    Require all granted\n</Directory>\n')
    password = os.environ.get("GCMON_DEMO_PASSWORD") or secrets.token_urlsafe(12)
    h.extra_conf += protect_admin(h, password)
    h.write_config()
    try:
        h.start()
        print(f"gcmon dashboard: http://127.0.0.1:{PORT}/gcmon/", flush=True)
        print(f"admin views (Status change, Audit trail) and /gcmon/api/v1/admin: "
              f"user {ADMIN_USER}, password {password}")
        print("API: /gcmon/api/v1/health, metrics: /gcmon/api/v1/metrics")
        print(f"emulator: {emu.url} simulating {AGENTS} agents in {QUEUES} queues")
        print(f"idle alerts after {IDLE} in Available or IDLE go to a stand-in Slack "
              f"(printed here) and /gcmon/api/v1/alerts")
        agent = (sim.get("agent_ids") or ["<userId>"])[0]
        print("change an agent's status (the stand-in payroll system prints it):\n"
              f"  curl -u {ADMIN_USER}:{password} -X PUT -H 'Content-Type: application/json' "
              f"-H 'X-Gcmon-Request: 1' "
              f"-d '{{\"status\":\"Break\",\"reason\":\"demo\"}}' "
              f"http://127.0.0.1:{PORT}/gcmon/api/v1/admin/agents/{agent}/status")
        print(f"error log: {h.error_log}   — Ctrl-C stops everything")
        threading.Thread(target=show_webhook_posts, args=(sink, stop), daemon=True).start()
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping…")
        stop.set()
        h.stop()
        sink.stop()
        emu.stop()


def on_signal(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    # Handlers, not a blocked signal mask: children (apache2, the emulator)
    # would inherit the mask, and `apache2 -k stop` (SIGTERM) would never land.
    signal.signal(signal.SIGTERM, on_signal)
    main()
