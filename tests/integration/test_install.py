"""Installation (docs/install.md).

- `make install DESTDIR=… [PREFIX=…]`: the two modules, gcmon.load (with
  `# Depends: dbd`) and gcmon.conf in the a2enmod layout and the site snippet
  gcmon/site.conf, pointing at the installed paths, the dashboard, the
  documentation; `make uninstall` removes exactly that.
- An installed tree run as an administrator would: a2enmod gcmon (which enables
  mod_dbd), Debian's apache2 with the installed files, the installed reference
  gcmon.conf plus the site's lines (test credentials for the emulator, a temp
  database directory), and the installed site.conf Included in the (test, plain
  HTTP) virtual host as install.md says for the HTTPS one: the stream connects,
  the dashboard loads, the admin API refuses an unauthenticated request (Basic
  auth, 401) and serves a user of the htpasswd file.
- The SQLite database directory check: apache2 -t and a start refuse, naming the
  path, when the run user (www-data) cannot write where SQLite needs to.
- The Debian package (make deb, dpkg -i, apache2 -t, remove, purge): only with
  GCMON_TEST_DEB=1 (`make test-deb`, run once by `make test`), as building the
  package takes about a minute.
"""
import base64
import filecmp
import glob
import os
import pwd
import re
import shutil
import subprocess

import pytest

from conftest import CLIENT_ID, CLIENT_SECRET
from httpd import BUILD, REPO, Httpd, wait_for
from stream_helpers import stream_status

SYSTEM_MODS = "/etc/apache2/mods-available"
# What Debian's apache2 package enables by itself (its postinst), so the
# installed gcmon runs next to the modules a default Debian server has.
DEBIAN_DEFAULT_MODS = ["mpm_event", "authz_core", "authz_host", "authz_user", "authn_core",
                       "authn_file", "auth_basic", "access_compat", "alias", "dir", "mime",
                       "env", "filter", "deflate", "setenvif", "negotiation", "reqtimeout",
                       "autoindex", "status"]
QUEUE = "install-q1"
AGENTS = [f"install-agent-{i}" for i in range(1, 4)]


def libexecdir():
    return subprocess.run(["apxs", "-q", "LIBEXECDIR"], stdout=subprocess.PIPE, check=True,
                          text=True).stdout.strip()


def make(target, *args):
    build = os.path.relpath(BUILD, REPO)
    p = subprocess.run(["make", "-s", target, f"BUILD={build}", *args], cwd=REPO,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert p.returncode == 0, p.stdout
    return p.stdout


def make_install(tmp_path, *args):
    return make("install", f"DESTDIR={tmp_path}", *args)


def installed_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


def tree(root):
    """Every file and directory below root (relative)."""
    out = set()
    for d, dirs, files in os.walk(root):
        out |= {os.path.relpath(os.path.join(d, x), root) for x in dirs + files}
    return out


def repo_files(top):
    top = os.path.join(REPO, top)
    return sorted(os.path.relpath(os.path.join(d, f), top)
                  for d, _, files in os.walk(top) for f in files)


def doc_files():
    return (["README.md", "CHANGELOG.md", "SECURITY.md", "LICENSE"]
            + [os.path.relpath(f, REPO) for f in glob.glob(os.path.join(REPO, "docs", "*.md"))]
            + [os.path.relpath(f, REPO) for f in glob.glob(os.path.join(REPO, "docs", "*.yaml"))]
            + [os.path.relpath(f, REPO) for f in glob.glob(os.path.join(REPO, "docs", "img", "*"))]
            + [os.path.join("contrib", f) for f in repo_files("contrib")])


# ------------------------------------------------------------------ make install / uninstall

def test_install_destdir_default_prefix(tmp_path):
    make_install(tmp_path)
    lib = libexecdir().lstrip("/")
    want = {f"{lib}/mod_gcmon_api.so", f"{lib}/mod_gcmon_stream.so",
            "etc/apache2/mods-available/gcmon.load", "etc/apache2/mods-available/gcmon.conf",
            "etc/apache2/gcmon/site.conf"}
    want |= {f"usr/share/gcmon/htdocs/{f}" for f in repo_files("htdocs")}
    want |= {f"usr/share/doc/gcmon/{f}" for f in doc_files()}
    assert set(installed_files(tmp_path)) == want
    assert "js/app.js" in repo_files("htdocs") and "index.html" in repo_files("htdocs")
    assert "docs/install.md" in doc_files() and "docs/img/dashboard-board.png" in doc_files()
    assert "docs/openapi.yaml" in doc_files()
    assert "contrib/prometheus/gcmon-rules.yml" in doc_files()
    for f in repo_files("htdocs"):
        dst = tmp_path / "usr/share/gcmon/htdocs" / f
        assert filecmp.cmp(os.path.join(REPO, "htdocs", f), dst, shallow=False), f
        assert oct(dst.stat().st_mode & 0o777) == "0o644", f
    for f in doc_files():
        assert filecmp.cmp(os.path.join(REPO, f), tmp_path / "usr/share/doc/gcmon" / f,
                           shallow=False), f
    assert filecmp.cmp(os.path.join(BUILD, ".libs", "mod_gcmon_api.so"),
                       tmp_path / lib / "mod_gcmon_api.so", shallow=False)
    load = (tmp_path / "etc/apache2/mods-available/gcmon.load").read_text()
    assert f"LoadModule gcmon_api_module /{lib}/mod_gcmon_api.so" in load
    # a2enmod reads "# Depends:" among the comments before the first directive.
    head = load.split("<", 1)[0]
    assert re.search(r"^# Depends: dbd$", head, re.M), load
    assert load.index("gcmon_api_module") < load.index("gcmon_stream_module")
    conf = (tmp_path / "etc/apache2/mods-available/gcmon.conf").read_text()
    assert "\n    DBDParams /var/lib/gcmon/gcmon.db\n" in conf
    assert "#    Include /etc/apache2/gcmon/site.conf\n" in conf
    site = (tmp_path / "etc/apache2/gcmon/site.conf").read_text()
    assert "Alias /gcmon /usr/share/gcmon/htdocs" in site
    assert "AuthUserFile /etc/apache2/gcmon.htpasswd" in site
    with open(os.path.join(REPO, "conf", "gcmon-site.conf")) as f:
        assert site == f.read()          # the Debian paths: nothing to rewrite


def test_install_prefix(tmp_path):
    make_install(tmp_path, "PREFIX=/opt/gcmon")
    files = installed_files(tmp_path)
    assert "opt/gcmon/share/gcmon/htdocs/index.html" in files
    assert "opt/gcmon/share/doc/gcmon/docs/install.md" in files
    assert "opt/gcmon/lib/apache2/modules/mod_gcmon_api.so" in files
    assert not any(f.startswith("usr/") for f in files), files
    site = (tmp_path / "etc/apache2/gcmon/site.conf").read_text()
    assert "Alias /gcmon /opt/gcmon/share/gcmon/htdocs" in site
    assert "<Directory /opt/gcmon/share/gcmon/htdocs>" in site
    assert "/usr/share/gcmon" not in site
    load = (tmp_path / "etc/apache2/mods-available/gcmon.load").read_text()
    assert "LoadModule gcmon_api_module /opt/gcmon/lib/apache2/modules/mod_gcmon_api.so" in load
    assert "/usr/lib/apache2" not in load


def test_install_confdir(tmp_path):
    """APACHE_CONFDIR moves the configuration, and the paths in it: the snippet's
    Include line, the password files."""
    make_install(tmp_path, "APACHE_CONFDIR=/etc/gcmon-apache")
    conf = (tmp_path / "etc/gcmon-apache/mods-available/gcmon.conf").read_text()
    site = (tmp_path / "etc/gcmon-apache/gcmon/site.conf").read_text()
    assert "#    Include /etc/gcmon-apache/gcmon/site.conf\n" in conf
    assert "AuthUserFile /etc/gcmon-apache/gcmon.htpasswd" in site
    assert "/etc/apache2" not in conf + site
    assert not (tmp_path / "etc/apache2").exists()


def test_uninstall_removes_exactly_what_install_put(tmp_path):
    """Other packages' files in the same directories stay, and so do the shared
    directories; gcmon's own directories go."""
    lib = libexecdir().lstrip("/")
    foreign = [f"{lib}/mod_other.so", "etc/apache2/mods-available/dbd.load",
               "usr/share/doc/other/README"]
    for f in foreign:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("not gcmon's\n")
    before = tree(tmp_path)
    for args in ((), ("PREFIX=/opt/gcmon", "APACHE_CONFDIR=/etc/gcmon-apache")):
        make_install(tmp_path, *args)
        assert len(tree(tmp_path)) > len(before) + 40
        out = make("uninstall", f"DESTDIR={tmp_path}", *args)
        assert "still enabled" not in out
        leftover = tree(tmp_path) - before
        # No file stays; directories install made for everyone's use (a
        # modules directory, another mods-available) may stay, empty; gcmon's
        # own go.
        assert all(os.path.isdir(tmp_path / x) for x in leftover), leftover
        assert not [x for x in leftover if re.search(r"share/(doc/)?gcmon(/|$)", x)], leftover
        assert not [x for x in leftover if re.search(r"etc/(apache2|gcmon-apache)/gcmon$", x)], leftover
    for f in foreign:
        assert (tmp_path / f).read_text() == "not gcmon's\n"


def test_uninstall_says_when_still_enabled(tmp_path):
    make_install(tmp_path)
    enabled = tmp_path / "etc/apache2/mods-enabled"
    enabled.mkdir()
    os.symlink("../mods-available/gcmon.load", enabled / "gcmon.load")
    out = make("uninstall", f"DESTDIR={tmp_path}")
    assert "gcmon is still enabled" in out and "a2dismod gcmon" in out
    assert not (tmp_path / "etc/apache2/mods-available/gcmon.load").exists()


@pytest.mark.parametrize("rel", ["mods-available/gcmon.conf", "gcmon/site.conf"])
def test_install_keeps_an_edited_conf(tmp_path, rel):
    make_install(tmp_path)
    conf = tmp_path / "etc/apache2" / rel
    new = tmp_path / "etc/apache2" / (rel + ".new")
    fresh = conf.read_text()
    conf.write_text(fresh + "# edited\n")
    out = make_install(tmp_path)
    assert f"kept your /etc/apache2/{rel}" in out
    assert out.count("kept your") == 1, out            # the other one is as installed
    assert conf.read_text() == fresh + "# edited\n"
    assert new.read_text() == fresh
    # An unchanged one is simply replaced (no .new).
    conf.write_text(fresh)
    new.unlink()
    assert "kept your" not in make_install(tmp_path)
    assert not new.exists()
    # uninstall removes the .new too
    conf.write_text(fresh + "# edited\n")
    make_install(tmp_path)
    assert new.exists()
    make("uninstall", f"DESTDIR={tmp_path}")
    assert not conf.exists() and not new.exists()


def test_runtime_dependencies_documented():
    """The runtime list of apxs/deps.sh (kept apart from the build and test
    lists) is the one docs/install.md gives."""
    with open(os.path.join(REPO, "apxs", "deps.sh")) as f:
        deps = f.read()
    runtime = re.search(r'^RUNTIME="([^"]*)"', deps, re.M).group(1).split()
    test_only = re.search(r'^TEST="([^"]*)"', deps, re.M).group(1).split()
    assert "libaprutil1-dbd-sqlite3" in runtime and "apache2-dev" not in runtime
    assert not set(runtime) & set(test_only)
    with open(os.path.join(REPO, "docs", "install.md")) as f:
        doc = f.read()
    section = doc.split("## Runtime dependencies", 1)[1].split("\n## ", 1)[0]
    for p in runtime:
        assert f"`{p}`" in section, p
    for p in ("python3-pytest", "chromium", "check", "postgresql-15"):
        assert f"`{p}`" not in section, p


# ------------------------------------------------------------------ an installed tree, running

class InstalledHttpd(Httpd):
    """Debian's apache2 on an installed tree below its ServerRoot, laid out as
    /etc/apache2 is: the modules a default Debian server enables and gcmon, all
    enabled by a2enmod in <root>/inst/etc/apache2; apache2.conf's includes of
    mods-enabled/*.load and *.conf; then the site's own lines: the database
    (in db_dir, the ServerRoot's data/ by default) and gcmon_conf; and the
    virtual host of the test port, which Includes the installed site snippet
    (site_conf; the one make install put in the tree by default)."""

    def __init__(self, gcmon_conf="", db_dir=None, site_conf=None, **kw):
        self.db_dir = db_dir
        self.site_conf = site_conf
        super().__init__(database="sqlite3", gcmon_conf=gcmon_conf, **kw)
        self.inst = os.path.join(self.root, "inst")
        self.confdir = os.path.join(self.inst, "etc", "apache2")

    def install(self, enable=("gcmon",)):
        """make install into <root>/inst, Debian's other module files next to
        gcmon's, a2enmod; returns a2enmod's output."""
        make("install", f"PREFIX={self.inst}/usr", f"APACHE_CONFDIR={self.confdir}")
        self.copy_system_mods(skip_gcmon=True)
        return self.a2enmod(*DEBIAN_DEFAULT_MODS, *enable)

    def copy_system_mods(self, skip_gcmon):
        avail = os.path.join(self.confdir, "mods-available")
        os.makedirs(avail, exist_ok=True)
        os.makedirs(os.path.join(self.confdir, "mods-enabled"), exist_ok=True)
        for f in os.listdir(SYSTEM_MODS):
            if not (skip_gcmon and f.startswith("gcmon.")):
                shutil.copy(os.path.join(SYSTEM_MODS, f), avail)

    def a2enmod(self, *mods):
        p = subprocess.run(["a2enmod", *mods], env=a2enmod_env(self.confdir),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        assert p.returncode == 0, p.stdout
        return p.stdout

    def config_text(self, gcmon_conf=None, modules=None):
        confdir = os.path.join(self.root, "inst", "etc", "apache2")
        user = f"User {self._user}\nGroup {self._user}\n" if self._user else ""
        gcmon_conf = self.gcmon_conf if gcmon_conf is None else gcmon_conf
        return f"""# generated by tests/integration/test_install.py (Debian's apache2.conf layout)
ServerRoot "{self.root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile {self.root}/run/httpd.pid
DefaultRuntimeDir {self.root}/run
Mutex file:{self.root}/run default
ErrorLog {self.root}/logs/error_log
LogLevel warn
{user}IncludeOptional {confdir}/mods-enabled/*.load
IncludeOptional {confdir}/mods-enabled/*.conf
StartServers 1
ThreadsPerChild 8
MaxRequestWorkers 16
DocumentRoot "{self.root}/htdocs"
DBDriver sqlite3
DBDParams {self.db_dir or self.data_dir}/gcmon.db
{gcmon_conf}
# gcmon's URLs on this virtual host only, as docs/install.md says for the HTTPS one.
<VirtualHost 127.0.0.1:{self.port}>
    ServerName 127.0.0.1
    Include {self.site_conf or os.path.join(confdir, "gcmon", "site.conf")}
</VirtualHost>
"""


def a2enmod_env(confdir):
    return dict(os.environ, APACHE_CONFDIR=confdir, APACHE_ENVVARS="/dev/null",
                APACHE_STATE_DIRECTORY=os.path.join(os.path.dirname(os.path.dirname(confdir)),
                                                    "state"))


def site_conf(emulator):
    """The site's lines after the installed gcmon.conf: the emulator as Genesys
    Cloud, the test client, the stream on."""
    return (f"GcmonApiURL {emulator.url}\nGcmonLoginURL {emulator.url}\n"
            f"GcmonClientID {CLIENT_ID}\nGcmonClientSecret env:GCMON_TEST_SECRET\n"
            f"GcmonStream On\nGcmonMonitorQueue {QUEUE}\n")


@pytest.fixture(scope="module")
def seeded(emulator):
    emulator.config(heartbeat=1)
    emulator.add_agents([{"id": a, "name": f"Agent {a[-1]}", "presence": "Available"}
                         for a in AGENTS])
    emulator.add_queues([{"id": QUEUE, "name": "Install Q1", "members": AGENTS}])
    return emulator


def connected(h):
    s = stream_status(h)
    return s if s["connected"] and s["holder"] and s["agents_monitored"] == len(AGENTS) else None


def check_running(h, emulator):
    """The stream connects to the emulator, the dashboard loads, the admin API
    refuses an unauthenticated request (Apache's Basic auth of site.conf: 401, nothing
    asked upstream)."""
    wait_for(lambda: connected(h), timeout=30, what="stream connected")
    index = h.get("/gcmon/")
    assert index.status == 200, index
    assert index.header("content-type").startswith("text/html")
    assert "js/app.js" in index.text
    js = h.get("/gcmon/js/app.js")
    assert js.status == 200, js
    assert "javascript" in js.header("content-type")
    with open(os.path.join(REPO, "htdocs", "js", "app.js"), "rb") as f:
        assert js.body == f.read()
    emulator.clear_requests()
    audit = h.get("/gcmon/api/v1/admin/audit")
    assert audit.status == 401 and audit.header("www-authenticate").startswith("Basic"), audit
    check = h.request("POST", "/gcmon/api/v1/admin/upstream/check",
                      headers={"Content-Type": "application/json"}, body=b"{}")
    assert check.status == 401, check
    assert emulator.requests(path=r"^/api/v2/organizations/me$") == []


def test_installed_tree_runs(seeded):
    h = InstalledHttpd(site_conf(seeded), env={"GCMON_TEST_SECRET": CLIENT_SECRET})
    try:
        out = h.install()
        # a2enmod enabled mod_dbd for gcmon (its "# Depends: dbd").
        assert "Considering dependency dbd for gcmon" in out, out
        enabled = os.path.join(h.confdir, "mods-enabled")
        for f in ("dbd.load", "gcmon.load", "gcmon.conf"):
            assert os.path.islink(os.path.join(enabled, f)), f
        assert os.readlink(os.path.join(enabled, "gcmon.load")) == "../mods-available/gcmon.load"
        with open(os.path.join(h.confdir, "mods-available", "gcmon.load")) as f:
            assert f"{h.inst}/usr/lib/apache2/modules/mod_gcmon_api.so" in f.read()
        # The admin password file, as site.conf and install.md say.
        htpasswd = os.path.join(h.confdir, "gcmon.htpasswd")
        subprocess.run(["htpasswd", "-c", "-B", "-b", htpasswd, "alice", "pw-of-alice"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rc, out = h.configtest()
        assert rc == 0 and "Syntax OK" in out, out
        h.start()
        check_running(h, seeded)
        auth = {"Authorization": "Basic " + base64.b64encode(b"alice:pw-of-alice").decode()}
        audit = h.get("/gcmon/api/v1/admin/audit", headers=auth)
        assert audit.status == 200 and audit.json["data"] == [], audit
        metrics = h.get("/gcmon/api/v1/metrics")    # site.conf: Require local
        assert metrics.status == 200, metrics
        status = h.get("/server-status?auto")      # Debian's status.conf: local only
        assert status.status == 200 and "GcmonStreamConnected: 1" in status.text, status
        assert not h.bad_lines(), h.bad_lines()
    finally:
        h.cleanup()


def test_installed_tree_without_dbd_is_refused_by_a2enmod(seeded):
    """Depends: dbd is real: with mod_dbd's .load missing, a2enmod gcmon fails."""
    h = InstalledHttpd("", env={"GCMON_TEST_SECRET": CLIENT_SECRET})
    try:
        make("install", f"PREFIX={h.inst}/usr", f"APACHE_CONFDIR={h.confdir}")
        os.makedirs(os.path.join(h.confdir, "mods-enabled"))
        p = subprocess.run(["a2enmod", "gcmon"], env=a2enmod_env(h.confdir), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        assert p.returncode != 0, p.stdout
        assert "Could not enable dependency dbd for gcmon" in p.stdout, p.stdout
        assert not os.listdir(os.path.join(h.confdir, "mods-enabled"))
    finally:
        h.cleanup()


# ------------------------------------------------------------------ the database directory check

@pytest.fixture
def bare():
    h = Httpd(database="sqlite3")
    yield h
    h.cleanup()


def www():
    pw = pwd.getpwnam("www-data")
    return pw.pw_uid, pw.pw_gid


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the run user differs only as root")


def test_dbdir_writable_passes(bare):
    rc, out = bare.configtest(gcmon_conf="")
    assert rc == 0 and "Syntax OK" in out, out
    assert "GCM1010" not in out


@root_only
def test_dbdir_not_writable_fails_configtest(bare):
    d = os.path.join(bare.root, "rootonly")
    os.mkdir(d, 0o755)
    rc, out = bare.configtest(gcmon_conf=f"DBDParams {d}/gcmon.db\n")
    assert rc != 0, out
    assert "GCM1010" in out and "refusing to start" in out, out
    assert f"the directory {d} of gcmon's SQLite database {d}/gcmon.db is not writable by " \
           "www-data" in out, out
    assert f"chown www-data:www-data {d}" in out, out
    assert "configtest.conf:" in out            # where DBDParams is


def test_dbdir_missing_fails_configtest(bare):
    d = os.path.join(bare.root, "no-such-dir")
    rc, out = bare.configtest(gcmon_conf=f"DBDParams {d}/gcmon.db\n")
    assert rc != 0, out
    assert f"the directory {d} of gcmon's SQLite database {d}/gcmon.db does not exist" in out
    assert f"install -d -o www-data -g www-data -m 0750 {d}" in out or os.geteuid() != 0, out


@root_only
def test_db_file_and_wal_not_writable_fail_configtest(bare):
    db = os.path.join(bare.data_dir, "gcmon.db")
    with open(db, "w"):
        pass                    # root's, 0644: www-data could only read it
    rc, out = bare.configtest(gcmon_conf="")
    assert rc != 0 and f"{db} (gcmon's SQLite database) is not readable and writable" in out, out
    os.chown(db, *www())
    with open(db + "-wal", "w"):
        pass
    rc, out = bare.configtest(gcmon_conf="")
    assert rc != 0 and f"{db}-wal (a file SQLite keeps next to it)" in out, out
    os.chown(db + "-wal", *www())
    rc, out = bare.configtest(gcmon_conf="")
    assert rc == 0, out


@root_only
def test_dbdir_of_a_virtual_host_checked(bare):
    d = os.path.join(bare.root, "rootonly")
    os.mkdir(d, 0o755)
    vhost = f"<VirtualHost 127.0.0.1:{bare.port}>\n    DBDParams {d}/vhost.db\n</VirtualHost>\n"
    rc, out = bare.configtest(gcmon_conf=vhost)
    assert rc != 0 and f"{d}/vhost.db" in out, out
    # A file: URI (SQLite's URI names) is followed to the same file.
    rc, out = bare.configtest(gcmon_conf=f"DBDParams file://{d}/uri.db?cache=shared\n")
    assert rc != 0, out
    assert f"the directory {d} of gcmon's SQLite database {d}/uri.db is not writable" in out, out


def raw_configtest(h, body):
    """apache2 -t on a minimal config of gcmon's modules and mod_dbd, the main
    server's database in the (writable) data directory, then body."""
    user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
    mods = "/usr/lib/apache2/modules"
    path = os.path.join(h.root, "conf", "raw.conf")
    with open(path, "w") as f:
        f.write(f"""ServerRoot "{h.root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{h.port}
PidFile {h.root}/run/httpd.pid
DefaultRuntimeDir {h.root}/run
ErrorLog {h.root}/logs/error_log
{user}LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule dbd_module {mods}/mod_dbd.so
LoadModule gcmon_api_module {h.build}/.libs/mod_gcmon_api.so
LoadModule gcmon_stream_module {h.build}/.libs/mod_gcmon_stream.so
DBDriver sqlite3
DBDParams {h.data_dir}/gcmon.db
{body}
""")
    p = subprocess.run(["/usr/sbin/apache2", "-d", h.root, "-f", path, "-t"], env=h.env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    return p.returncode, p.stdout


@root_only
def test_dbdir_of_a_host_without_the_api_not_checked(bare):
    """A virtual host's own database is gcmon's only where the API can be served
    there: another module's (say mod_authn_dbd's, read-only) is left alone."""
    d = os.path.join(bare.root, "rootonly")
    os.mkdir(d, 0o755)
    vhost = ("<VirtualHost 127.0.0.1:{port}>\n    DBDParams {d}/users.db\n{inner}"
             "</VirtualHost>\n")
    api = "    <Location /gcmon/api>\n        SetHandler gcmon-api\n    </Location>\n"
    rc, out = raw_configtest(bare, vhost.format(port=bare.port, d=d, inner=""))
    assert rc == 0 and "Syntax OK" in out, out
    rc, out = raw_configtest(bare, vhost.format(port=bare.port, d=d, inner=api))
    assert rc != 0 and f"{d}/users.db" in out, out
    main_api = "<Location /gcmon/api>\n    SetHandler gcmon-api\n</Location>\n"
    rc, out = raw_configtest(bare, main_api + vhost.format(port=bare.port, d=d, inner=""))
    assert rc != 0 and f"{d}/users.db" in out, out
    # The main server's database is always checked (the stream's, the holder's).
    rc, out = raw_configtest(bare, f"DBDParams {d}/main.db\n")
    assert rc != 0 and f"{d}/main.db" in out, out


def test_dbdir_not_checked_for_pgsql_or_memory(bare):
    for conf in ('DBDriver pgsql\nDBDParams "host=127.0.0.1 port=1 dbname=x"\n',
                 "DBDParams :memory:\n"):
        rc, out = bare.configtest(gcmon_conf=conf)
        assert rc == 0 and "GCM1010" not in out, (conf, out)


@root_only
def test_dbdir_not_writable_refuses_a_real_start():
    # The refusal this test provokes.
    h = Httpd(database="sqlite3",
              allow_log=(r"\[gcmon_api:crit\] .*GCM1010: refusing to start: the directory ",))
    try:
        os.chown(h.data_dir, 0, 0)
        with pytest.raises(RuntimeError) as exc:
            h.start(timeout=5)
        assert "GCM1010" in str(exc.value) and h.data_dir in str(exc.value), str(exc.value)
        assert not h.db.exists()
    finally:
        h.cleanup()


# ------------------------------------------------------------------ the Debian package

DEB = "libapache2-mod-gcmon"
deb_only = pytest.mark.skipif(os.environ.get("GCMON_TEST_DEB") != "1",
                              reason="builds the Debian package: GCMON_TEST_DEB=1 (make test-deb)")


def dpkg(*args, check=True):
    p = subprocess.run(["dpkg", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=300, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    assert not check or p.returncode == 0, p.stdout
    return p.stdout


def installed(pkg):
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return "install ok installed" in p.stdout


@deb_only
def test_deb_package(seeded):
    deb_dir = os.path.join(BUILD, "deb")
    out = make("deb", f"DEB_DIR={deb_dir}")
    assert "E: " not in out and "W: " not in out, out        # lintian: clean but for overrides
    debs = glob.glob(os.path.join(deb_dir, f"{DEB}_*.deb"))
    assert len(debs) == 1, debs
    deb = debs[0]
    depends = dpkg("-f", deb, "Depends")
    for dep in ("apache2-api-20120211", "libcurl4", "libjansson4", "libwebsockets17",
                "libaprutil1-dbd-sqlite3 | libaprutil1-dbd-pgsql"):
        assert dep in depends, depends
    contents = dpkg("-c", deb)
    for f in ("./usr/lib/apache2/modules/mod_gcmon_api.so",
              "./usr/lib/apache2/modules/mod_gcmon_stream.so",
              "./etc/apache2/mods-available/gcmon.load", "./etc/apache2/mods-available/gcmon.conf",
              "./etc/apache2/gcmon/site.conf",
              "./usr/share/gcmon/htdocs/index.html", "./usr/share/gcmon/htdocs/js/app.js",
              "./usr/share/doc/gcmon/README.md", "./usr/share/doc/gcmon/docs/install.md",
              f"./usr/share/doc/{DEB}/copyright"):
        assert f in contents, f
    assert "./var/lib/gcmon" not in contents        # made by postinst (www-data's)
    conffiles = dpkg("-I", deb, "conffiles").split()
    assert sorted(conffiles) == ["/etc/apache2/gcmon/site.conf",
                                 "/etc/apache2/mods-available/gcmon.conf",
                                 "/etc/apache2/mods-available/gcmon.load"], conffiles
    if os.geteuid() != 0 or installed(DEB) or os.path.exists("/var/lib/gcmon"):
        pytest.skip("installing for real needs root and no gcmon package or /var/lib/gcmon")

    enabled = "/etc/apache2/mods-enabled/gcmon.load"
    try:
        out = dpkg("-i", deb)
        assert "a2enmod gcmon" in out, out                  # the hint
        assert not os.path.lexists(enabled)                # nothing enabled by itself
        st = os.stat("/var/lib/gcmon")
        assert (st.st_uid, st.st_gid) == www() and oct(st.st_mode & 0o777) == "0o750"

        # Enabled in a private copy of /etc/apache2 (the machine's own stays as it
        # is), with the package's real files; the reference database path.
        h = InstalledHttpd(site_conf(seeded), db_dir="/var/lib/gcmon",
                           site_conf="/etc/apache2/gcmon/site.conf",
                           env={"GCMON_TEST_SECRET": CLIENT_SECRET})
        try:
            h.copy_system_mods(skip_gcmon=False)
            h.a2enmod(*DEBIAN_DEFAULT_MODS, "gcmon")
            rc, out = h.configtest()
            assert rc == 0 and "Syntax OK" in out, out
            h.start()
            check_running(h, seeded)
            h.stop()
            assert os.path.exists("/var/lib/gcmon/gcmon.db")

            out = dpkg("-r", DEB)                           # remove: data and conffiles stay
            assert "a2dismod gcmon" not in out              # not enabled in /etc/apache2
            assert os.path.exists("/var/lib/gcmon/gcmon.db")
            assert not os.path.exists("/usr/lib/apache2/modules/mod_gcmon_api.so")
            assert os.path.exists("/etc/apache2/mods-available/gcmon.load")
            assert os.path.exists("/etc/apache2/gcmon/site.conf")
            # Still enabled, modules gone: Apache still starts (gcmon.load's <IfFile>).
            rc, out = h.configtest(gcmon_conf="")
            assert rc == 0 and "Syntax OK" in out, out
        finally:
            h.cleanup()
        dpkg("-P", DEB)                                     # purge: the data goes
        assert not os.path.exists("/var/lib/gcmon")
        assert not os.path.exists("/etc/apache2/mods-available/gcmon.load")
        assert not os.path.exists("/etc/apache2/gcmon")
    finally:
        if installed(DEB) or os.path.exists("/etc/apache2/mods-available/gcmon.load"):
            dpkg("-P", DEB, check=False)
