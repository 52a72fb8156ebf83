"""make demo: the Genesys Cloud emulator simulating a contact centre, and Debian's
apache2 with both gcmon modules on http://127.0.0.1:8080/gcmon/. Ctrl-C stops all."""
import os
import signal
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "integration"))

from emulator.client import Emulator  # noqa: E402
from httpd import Httpd  # noqa: E402

PORT = int(os.environ.get("GCMON_DEMO_PORT", "8080"))
AGENTS = int(os.environ.get("GCMON_DEMO_AGENTS", "50"))
QUEUES = int(os.environ.get("GCMON_DEMO_QUEUES", "3"))
CLIENT_ID, CLIENT_SECRET = "gcmon-demo", "demo-secret-not-for-production"


def main():
    emu = Emulator(tempfile.mkdtemp(prefix="gcmon-demo-emu-"), client_id=CLIENT_ID,
                   client_secret=CLIENT_SECRET)
    emu.start()
    emu.simulate(agents=AGENTS, queues=QUEUES)
    htdocs = os.path.join(os.path.dirname(HERE), "htdocs")
    h = Httpd(emulator_url=emu.url, port=PORT, keep_root=True,
              env={"GCMON_DEMO_SECRET": CLIENT_SECRET},
              gcmon_conf=f"GcmonClientID {CLIENT_ID}\n"
                         f"GcmonClientSecret env:GCMON_DEMO_SECRET\n",
              extra_conf=f'Alias /gcmon/ "{htdocs}/"\n'
                         f'<Directory "{htdocs}">\n    Require all granted\n</Directory>\n')
    try:
        h.start()
        print(f"gcmon demo: http://127.0.0.1:{PORT}/gcmon/  (API: /gcmon/api/v1/health, "
              f"metrics: /gcmon/api/v1/metrics)")
        print(f"emulator: {emu.url} simulating {AGENTS} agents in {QUEUES} queues")
        print(f"error log: {h.error_log}   — Ctrl-C stops everything")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping…")
        h.stop()
        emu.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    main()
