"""The reference configuration on Debian's layout (docs/install.md, docs/operations.md
"First start").

A private copy of the machine's /etc/apache2 (Debian's apache2.conf, ports.conf, the
modules and sites Debian enables), gcmon installed into it with `make install`, enabled
with a2enmod, and the site snippet Included in an HTTPS virtual host made from the
example at the end of the installed gcmon.conf (a self-signed certificate instead of
the snakeoil one). /var/lib/gcmon, the reference database directory, is a tmpfs in a
mount namespace of apache2's own, made for www-data as the package makes it.

- `apache2 -t` passes on the reference configuration as installed, and fails naming
  /var/lib/gcmon when that directory is missing; the alternatives site.conf shows for
  the admin location (LDAP, the reverse proxy's header, OpenID Connect when
  mod_auth_openidc is installed) pass it too.
- Started with the changes install.md asks for (the region's URLs — the emulator's
  here —, the OAuth client with its secret in a file:, the stream on, an htpasswd
  file): the HTTPS virtual host serves the API and the dashboard, the admin API
  refuses an anonymous request (401) and serves an authenticated one; the plain-HTTP
  virtual host and the main server do not serve gcmon at all (Apache's 404).
- Debian's LogLevel warn plus the reference's per-module LogLevel: the holder's
  GCM2106 and the channel's first GCM2204 are in error.log at notice; a reconnect
  (GCM2200, GCM2204 again) is not, nor core's info lines: the server stays at warn.

Needs root (www-data as the run user, the mount namespace).
"""
import base64
import os
import re
import shutil
import ssl
import subprocess
import http.client

import pytest

from conftest import CLIENT_ID, CLIENT_SECRET
from httpd import APACHE2, BUILD, REPO, Httpd, Response, free_port, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="runs apache2 as www-data in a mount namespace: root")

SYSTEM_CONFDIR = "/etc/apache2"
AGENTS = ["refconf-agent-1", "refconf-agent-2"]
ADMIN, PASSWORD = "alice", "correct horse battery staple"
# /var/lib as the package leaves it, for apache2 only: a tmpfs with gcmon's
# directory www-data's (mode 0750), in a mount namespace of its own.
VARLIB = ("mount -t tmpfs -o mode=0755 tmpfs /var/lib && "
          "install -d -o www-data -g www-data -m 0750 /var/lib/gcmon && ")
NO_VARLIB = "mount -t tmpfs -o mode=0755 tmpfs /var/lib && "


def namespace(setup):
    return ["unshare", "--mount", "sh", "-c", setup + 'exec "$@"', "sh"]


def make(*args):
    p = subprocess.run(["make", "-s", *args, f"BUILD={os.path.relpath(BUILD, REPO)}"], cwd=REPO,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert p.returncode == 0, p.stdout
    return p.stdout


def set_directive(text, name, value):
    """What an administrator does to gcmon.conf: the directive's one line, commented
    or not, set to value."""
    pattern = re.compile(rf"^(\s*)#?{name}(\s.*)?$", re.M)
    assert len(pattern.findall(text)) == 1, f"{name}: not exactly one line to edit"
    return pattern.sub(lambda m: f"{m.group(1)}{name} {value}", text)


def uncommented(text, first, last, nth=0):
    """The nth commented block of text from a line `#<first>` to a line `#<last>`,
    uncommented (the examples of the reference files)."""
    blocks = re.findall(rf"^[ \t]*#({re.escape(first)}.*?^[ \t]*#{re.escape(last)})$", text,
                        re.M | re.S)
    assert len(blocks) > nth, (first, len(blocks))
    return re.sub(r"^[ \t]*#", "", "#" + blocks[nth], flags=re.M) + "\n"


class DebianApache(Httpd):
    """Debian's apache2 on a copy of /etc/apache2 below its root, started as
    `apache2 -d <confdir>` with envvars' variables pointing into the root; requests go
    to the HTTPS virtual host unless a port is given."""

    def __init__(self):
        super().__init__(database="sqlite3")
        self.confdir = os.path.join(self.root, "etc", "apache2")
        self.https_port, self.http_port = free_port(), free_port()
        self.error_log = os.path.join(self.root, "logs", "error.log")
        for d in ("run", "lock", "logs"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        self.env.update(APACHE_CONFDIR=self.confdir, APACHE_RUN_USER="www-data",
                        APACHE_RUN_GROUP="www-data",
                        APACHE_PID_FILE=os.path.join(self.root, "run", "apache2.pid"),
                        APACHE_RUN_DIR=os.path.join(self.root, "run"),
                        APACHE_LOCK_DIR=os.path.join(self.root, "lock"),
                        APACHE_LOG_DIR=os.path.join(self.root, "logs"), LANG="C")
        self.wrapper = namespace(VARLIB)

    # ------------------------------------------------------------ the install
    def install(self):
        """make install into the root, Debian's configuration next to it, a2enmod
        gcmon and ssl; our ports instead of 80 and 443 (the main server alone on
        self.port)."""
        shutil.rmtree(self.confdir, ignore_errors=True)
        shutil.copytree(SYSTEM_CONFDIR, self.confdir, symlinks=True,
                        ignore=lambda d, names: [n for n in names if n.startswith("gcmon")])
        make("install", f"PREFIX={self.root}/usr", f"APACHE_CONFDIR={self.confdir}")
        out = self.a2("a2enmod", "ssl", "gcmon")
        assert "Considering dependency dbd for gcmon" in out, out
        self.edit("ports.conf", lambda t: t.replace(
            "Listen 80\n", f"Listen 127.0.0.1:{self.http_port}\nListen 127.0.0.1:{self.port}\n")
            .replace("Listen 443\n", f"Listen 127.0.0.1:{self.https_port}\n"))
        self.edit("sites-available/000-default.conf",
                  lambda t: t.replace("<VirtualHost *:80>", f"<VirtualHost *:{self.http_port}>"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-addext", "basicConstraints=critical,CA:FALSE",
                        "-keyout", self.path("cert.key"), "-out", self.path("cert.pem")],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The HTTPS virtual host of the example in gcmon.conf, uncommented.
        vhost = uncommented(self.read("mods-available/gcmon.conf"), "<VirtualHost *:443>",
                            "</VirtualHost>")
        assert f"Include {self.confdir}/gcmon/site.conf" in vhost, vhost
        vhost = (vhost.replace("*:443", f"*:{self.https_port}")
                 .replace("/etc/ssl/certs/ssl-cert-snakeoil.pem", self.path("cert.pem"))
                 .replace("/etc/ssl/private/ssl-cert-snakeoil.key", self.path("cert.key")))
        with open(self.path("sites-available/gcmon-ssl.conf"), "w") as f:
            f.write(vhost)
        self.a2("a2ensite", "gcmon-ssl")

    def path(self, rel):
        return os.path.join(self.confdir, rel)

    def read(self, rel):
        with open(self.path(rel)) as f:
            return f.read()

    def edit(self, rel, change):
        text = self.read(rel)
        new = change(text)
        assert new != text, f"{rel} unchanged"
        with open(self.path(rel), "w") as f:
            f.write(new)

    def a2(self, tool, *args):
        env = dict(os.environ, APACHE_CONFDIR=self.confdir, APACHE_ENVVARS="/dev/null",
                   APACHE_STATE_DIRECTORY=os.path.join(self.root, "state"))
        p = subprocess.run([tool, *args], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        assert p.returncode == 0, p.stdout
        return p.stdout

    # ------------------------------------------------------------ the harness
    def _cmd(self, *args):
        return [APACHE2, "-d", self.confdir, *args]

    def configtest(self, setup=VARLIB):
        p = subprocess.run(namespace(setup) + self._cmd("-t"), env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        return p.returncode, p.stdout

    def read_log(self):
        try:
            with open(self.error_log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def request(self, method, path, body=None, headers=None, timeout=30, port=None):
        if port is None:
            ctx = ssl.create_default_context(cafile=self.path("cert.pem"))
            conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=timeout,
                                               context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def debian():
    h = DebianApache()
    try:
        h.install()
        yield h
    finally:
        h.cleanup()


def admin_section(site, alternative):
    """site.conf with its active admin <Location> replaced by one of the commented
    alternatives (as site.conf tells the administrator to do)."""
    active = re.search(r"^<Location /gcmon/api/v1/admin>.*?^</Location>\n", site, re.M | re.S)
    return site[:active.start()] + alternative + site[active.end():]


# ------------------------------------------------------------------ apache2 -t

def test_reference_configuration_passes_configtest(debian):
    """As installed, enabled and Included in the HTTPS virtual host, before any edit:
    Syntax OK once /var/lib/gcmon is there for www-data; named when it is not."""
    rc, out = debian.configtest()
    assert rc == 0 and "Syntax OK" in out, out
    rc, out = debian.configtest(setup=NO_VARLIB)
    assert rc != 0, out
    assert "GCM1010" in out and "the directory /var/lib/gcmon of gcmon's SQLite database " \
        "/var/lib/gcmon/gcmon.db does not exist" in out, out
    # The database lines are the reference's own, active (not the test's).
    assert f"(DBDParams at {debian.confdir}/mods-enabled/gcmon.conf:" in out, out


def test_admin_alternatives_pass_configtest(debian):
    """The LDAP section and the reverse-proxy header mode (GcmonAdminActor
    header:X-Remote-User in gcmon.conf, Require ip here), uncommented in place of the
    Basic section, pass apache2 -t; so does OpenID Connect where mod_auth_openidc is
    installed."""
    site_path = os.path.join("gcmon", "site.conf")
    site = debian.read(site_path)
    ldap = uncommented(site, "<Location /gcmon/api/v1/admin>", "</Location>", 0)
    assert "AuthBasicProvider ldap" in ldap
    proxy = uncommented(site, "<Location /gcmon/api/v1/admin>", "</Location>", 2)
    assert "Require ip 192.0.2.10" in proxy
    conf = debian.read("mods-available/gcmon.conf")

    debian.a2("a2enmod", "authnz_ldap")
    subprocess.run(["install", "-m", "0600", "/dev/null", debian.path("gcmon-ldap-password")],
                   check=True)
    with open(debian.path("gcmon-ldap-password"), "w") as f:
        f.write("bind-password\n")
    with open(debian.path(site_path), "w") as f:
        f.write(admin_section(site, ldap))
    rc, out = debian.configtest()
    assert rc == 0 and "Syntax OK" in out, out

    with open(debian.path(site_path), "w") as f:
        f.write(admin_section(site, proxy))
    debian.edit("mods-available/gcmon.conf",
                lambda t: set_directive(t, "GcmonAdminActor", "header:X-Remote-User"))
    rc, out = debian.configtest()
    assert rc == 0 and "Syntax OK" in out, out
    with open(debian.path("mods-available/gcmon.conf"), "w") as f:
        f.write(conf)

    if not os.path.exists("/usr/lib/apache2/modules/mod_auth_openidc.so"):
        return                  # not a dependency of gcmon's suites
    oidc = "".join(re.sub(r"^#", "", line) + "\n" for line in site.splitlines()
                   if re.match(r"#OIDC\w+ ", line))
    oidc += uncommented(site, '<LocationMatch "^/gcmon/', "</LocationMatch>", 0)
    oidc += uncommented(site, "<Location /gcmon/api/v1/admin>", "</Location>", 1)
    assert "AuthType openid-connect" in oidc and "OIDCProviderMetadataURL" in oidc
    debian.a2("a2enmod", "auth_openidc")
    with open(debian.path(site_path), "w") as f:
        f.write(admin_section(site, oidc))
    rc, out = debian.configtest()
    assert rc == 0 and "Syntax OK" in out, out


# ------------------------------------------------------------------ running

def configure_as_install_md_says(h, emulator):
    """docs/install.md's edits: the region (here the emulator's URLs), the OAuth
    client with its secret in a root-only file, the stream on and who to monitor;
    the admin password file."""
    secret = h.path("gcmon-client-secret")
    subprocess.run(["install", "-m", "0600", "/dev/null", secret], check=True)
    with open(secret, "w") as f:
        f.write(CLIENT_SECRET + "\n")

    def edit(text):
        for name, value in (("GcmonApiURL", emulator.url), ("GcmonLoginURL", emulator.url),
                            ("GcmonClientID", CLIENT_ID), ("GcmonClientSecret", f"file:{secret}"),
                            ("GcmonStream", "On"), ("GcmonMonitorUser", " ".join(AGENTS))):
            text = set_directive(text, name, value)
        return text
    h.edit("mods-available/gcmon.conf", edit)
    htpasswd = h.path("gcmon.htpasswd")
    subprocess.run(["htpasswd", "-c", "-B", "-b", htpasswd, ADMIN, PASSWORD], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["chown", "root:www-data", htpasswd], check=True)
    os.chmod(htpasswd, 0o640)


def apache_404(r):
    """Apache's own 404 page: gcmon did not answer."""
    return r.status == 404 and r.header("content-type").startswith("text/html")


def gcm_lines(h, tag):
    return [line for line in h.read_log().splitlines() if f"{tag}:" in line]


def test_served_on_the_https_host_only_and_logged_at_warn(debian, emulator):
    emulator.config(heartbeat=1)
    emulator.add_agents([{"id": a, "name": a, "presence": "Available"} for a in AGENTS])
    configure_as_install_md_says(debian, emulator)
    rc, out = debian.configtest()
    assert rc == 0 and "Syntax OK" in out, out
    debian.start()

    # The stream connects (docs/operations.md, "First start", step 3).
    def connected():
        s = debian.get("/gcmon/api/v1/stream").json
        return s if s["connected"] and s["agents_monitored"] == len(AGENTS) else None
    wait_for(connected, timeout=30, what="stream connected")

    # The HTTPS virtual host: the API, the dashboard, gcmon's own 404 problem.
    health = debian.get("/gcmon/api/v1/health")
    assert health.status == 200 and health.json["status"] == "ok", health
    index = debian.get("/gcmon/")
    assert index.status == 200 and "js/app.js" in index.text, index
    nope = debian.get("/gcmon/api/v1/nope")
    assert nope.status == 404 and nope.header("content-type") == "application/problem+json"
    # The admin API: Apache's 401 without credentials, gcmon's answer with them.
    anon = debian.get("/gcmon/api/v1/admin/audit")
    assert anon.status == 401 and anon.header("www-authenticate").startswith("Basic"), anon
    assert "problem+json" not in anon.header("content-type")
    wrong = debian.get("/gcmon/api/v1/admin/audit", headers=basic(ADMIN, "wrong"))
    assert wrong.status == 401, wrong
    audit = debian.get("/gcmon/api/v1/admin/audit", headers=basic(ADMIN, PASSWORD))
    assert audit.status == 200 and audit.json["data"] == [], audit
    metrics = debian.get("/gcmon/api/v1/metrics")          # Require local: this host
    assert metrics.status == 200 and "gcmon_build_info" in metrics.text, metrics

    # Debian's plain-HTTP 000-default and the main server: no gcmon at all.
    for port in (debian.http_port, debian.port):
        for path in ("/gcmon/api/v1/health", "/gcmon/api/v1/admin/audit", "/gcmon/",
                     "/gcmon/js/app.js"):
            r = debian.get(path, port=port)
            assert apache_404(r), (port, path, r)

    # Logging at Debian's default level (LogLevel warn, then the reference's
    # LogLevel gcmon_stream:notice gcmon_api:notice).
    holder = gcm_lines(debian, "GCM2106")
    assert len(holder) == 1 and "[gcmon_stream:notice]" in holder[0], holder
    first = gcm_lines(debian, "GCM2204")
    assert len(first) == 1 and "[gcmon_stream:notice]" in first[0], first
    assert "connected (2 topic(s))" in first[0], first
    before = debian.get("/gcmon/api/v1/stream").json["reconnects_total"]
    upgrades = len(emulator.requests(path=r"^/channels/"))
    assert emulator.ws_fault("drop") == 1
    wait_for(lambda: connected() and len(emulator.requests(path=r"^/channels/")) > upgrades
             and debian.get("/gcmon/api/v1/stream").json["reconnects_total"] > before,
             timeout=30, what="the channel reconnected")
    assert len(gcm_lines(debian, "GCM2204")) == 1, gcm_lines(debian, "GCM2204")   # info: hidden
    assert gcm_lines(debian, "GCM2200") == []                                      # info: hidden
    assert gcm_lines(debian, "GCM1011") == []             # gcmon_api's info (the dbdir check)
    # The server's own level is still warn: core's info line for a missing file is not logged.
    missing = debian.get("/no-such-file.html")
    assert missing.status == 404
    assert "AH00128" not in debian.read_log(), "core logged at info"
    # Nothing above warn but the wrong password's line (AH01617).
    bad = debian.bad_lines(allow=(r"AH01617: user alice: authentication failure",))
    assert not bad, bad
