"""Every directive in the modules' command tables is documented in
docs/directives.md and present in the reference conf/gcmon.conf, each with a
comment block (syntax, meaning, default) and its line, commented with the
default value unless the reference wants it active; the URL space is in the site
snippet conf/gcmon-site.conf, not in the module's configuration."""
import glob
import os
import re

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def directives():
    names = set()
    for path in glob.glob(os.path.join(REPO, "modules", "*.c")):
        with open(path) as f:
            names.update(re.findall(r'AP_INIT_[A-Z0-9_]+\(\s*"(Gcmon\w+)"', f.read()))
    # The webhook URL directives come from one list (mod_gcmon_stream_config.c
    # expands it into its command table).
    with open(os.path.join(REPO, "shared", "gc_webhook_targets.h")) as f:
        names.update(re.findall(r'^\s*X\(\s*\w+,\s*"(Gcmon\w+)"', f.read(), re.M))
    return names


def test_table_is_not_empty():
    assert "GcmonClientID" in directives()


def test_every_directive_documented():
    with open(os.path.join(REPO, "docs", "directives.md")) as f:
        doc = f.read()
    headings = set(re.findall(r"^## (Gcmon\w+)", doc, re.M))
    missing = directives() - headings
    assert not missing, f"undocumented in docs/directives.md: {sorted(missing)}"
    for name in directives():
        section = doc.split(f"## {name}", 1)[1].split("\n## ", 1)[0]
        for field in ("Syntax:", "Default:", "Context:", "Description", "Example"):
            assert field in section, f"{name} lacks {field}"


def test_every_directive_in_reference_conf():
    with open(os.path.join(REPO, "conf", "gcmon.conf")) as f:
        conf = f.read()
    missing = {d for d in directives() if not re.search(rf"^\s*#?\s*{d}\b", conf, re.M)}
    assert not missing, f"missing from conf/gcmon.conf: {sorted(missing)}"


def conf_lines(name):
    with open(os.path.join(REPO, "conf", name)) as f:
        return f.read().splitlines()


def documented():
    """Each directive's syntax and default forms from docs/directives.md: the
    default forms are the `GcmonX value` items of its Default cell (none when the
    default is a description: "none", "the system CA store", …)."""
    with open(os.path.join(REPO, "docs", "directives.md")) as f:
        doc = f.read()
    out = {}
    for section in doc.split("\n## ")[1:]:
        name = section.split("\n", 1)[0].strip()
        if not name.startswith("Gcmon"):
            continue
        syntax = re.search(r"^\| Syntax: \| `([^`]*)`", section, re.M).group(1).replace("\\|", "|")
        default = re.search(r"^\| Default: \| (.*) \|$", section, re.M).group(1)
        forms = [f[len(name) + 1:] for f in re.findall(r"`([^`]*)`", default)
                 if f.startswith(name + " ")]
        out[name] = (syntax, forms)
    return out


def test_reference_conf_documents_every_directive():
    """mod_auth_openidc's reference conf is the model: for every directive, a block
    of comments that starts with its syntax and states its default, then the line
    itself — commented with the default value ("#GcmonRetention 90d") unless the
    reference sets it."""
    lines = conf_lines("gcmon.conf")
    docs = documented()
    for name in sorted(directives()):
        syntax, forms = docs[name]
        at = [i for i, line in enumerate(lines) if re.match(rf"\s*#?{name}(\s|$)", line)]
        assert at, f"no {name} line in conf/gcmon.conf"
        block = []
        for line in reversed(lines[:at[0]]):
            if not line.strip().startswith("#"):
                break
            block.insert(0, line.strip())
        assert block and block[0] == f"# {syntax}", (name, block[:1], syntax)
        default = [b for b in block if re.match(r"#\s+Default: \S", b)]
        assert len(default) == 1, f"{name}: no (single) Default: line in its comment block"
        shown = [lines[i].strip() for i in at]
        for form in forms:
            assert form.split()[0] in default[0], (name, form, default[0])
            assert f"{name} {form}" in shown or f"#{name} {form}" in shown, \
                f"{name}: its default {form!r} is not its (commented) line: {shown}"
        # A commented line that is not an example of a directive without default
        # shows the default, never another value.
        for line in shown:
            if line.startswith("#") and forms:
                assert line[len(name) + 2:] in forms, (name, line, forms)


def test_reference_conf_active_lines():
    """Active in gcmon.conf: the database with the Debian path, the connection
    sizing, the per-module LogLevel — and no URL space (that is the site snippet's);
    credentials stay commented (a file: that does not exist fails apache2 -t)."""
    active = [line.strip() for line in conf_lines("gcmon.conf")
              if line.strip() and not line.strip().startswith("#")]
    for want in ("DBDriver sqlite3", "DBDParams /var/lib/gcmon/gcmon.db", "DBDKeep 25",
                 "LogLevel gcmon_stream:notice gcmon_api:notice"):
        assert want in active, want
    for line in active:
        assert not re.match(r"<(Location|Directory|VirtualHost)|Alias|SetHandler|Require|Auth",
                            line), line
        assert not re.match(r"Gcmon(ClientID|ClientSecret|InboundSecret|\w+Webhook)\b", line), line
    # The DBDMax figure is docs/stream.md's (ThreadsPerChild + gcmon's own threads),
    # with Debian's ThreadsPerChild.
    with open(os.path.join(REPO, "docs", "stream.md")) as f:
        own = {int(n) for n in re.findall(r"`ThreadsPerChild` \+ (\d+)", f.read())}
    assert len(own) == 1, own
    with open("/etc/apache2/mods-available/mpm_event.conf") as f:
        tpc = int(re.search(r"^\s*ThreadsPerChild\s+(\d+)", f.read(), re.M).group(1))
    assert f"DBDMax {tpc + own.pop()}" in active


def test_site_snippet_holds_the_url_space():
    """The site snippet: the API's handler, the admin location with Basic auth active,
    metrics restricted, the dashboard; no gcmon directive (server config only: one
    inside a <VirtualHost> fails apache2 -t)."""
    text = "\n".join(conf_lines("gcmon-site.conf"))
    active = "\n".join(line for line in text.splitlines() if not line.strip().startswith("#"))
    assert re.search(r"<Location /gcmon/api>\s*SetHandler gcmon-api", active)
    admin = re.search(r"<Location /gcmon/api/v1/admin>(.*?)</Location>", active, re.S).group(1)
    for want in ("AuthType Basic", "AuthUserFile /etc/apache2/gcmon.htpasswd", "Require valid-user"):
        assert want in admin, want
    metrics = re.search(r"<Location /gcmon/api/v1/metrics>(.*?)</Location>", active, re.S).group(1)
    assert [r.strip() for r in re.findall(r"^[ \t]*Require .*$", metrics, re.M)] == \
        ["Require local"], metrics
    assert "Alias /gcmon /usr/share/gcmon/htdocs" in active
    assert not re.search(r"^\s*Gcmon", active, re.M)
    # The alternatives are shown: LDAP, OpenID Connect, the reverse proxy's header.
    for shown in ("#    AuthBasicProvider ldap", "#    AuthType openid-connect",
                  "GcmonAdminActor header:X-Remote-User", "#    Require ip 192.0.2.10"):
        assert shown in text, shown
    # The general section comes first: a later <Location> replaces an earlier one's Require.
    order = [m.group(1) for m in re.finditer(r"^<Location ([^>]+)>", active, re.M)]
    assert order[0] == "/gcmon/api" and len(order) == len(set(order)), order


def test_recommended_pg_params_are_what_the_suites_run():
    """docs/scale-out.md's DBDParams bounds are the ones every PostgreSQL run of the
    suites uses (pgserver.RECOMMENDED), and conf/gcmon.conf names the same ones."""
    import pgserver
    with open(os.path.join(REPO, "docs", "scale-out.md")) as f:
        doc = f.read()
    m = re.search(r'^DBDParams "host=db\.example\.com user=gcmon dbname=gcmon '
                  r'sslmode=verify-full (.*)"$', doc, re.M)
    assert m, "the DBDParams example of docs/scale-out.md"
    assert m.group(1) == pgserver.RECOMMENDED
    with open(os.path.join(REPO, "conf", "gcmon.conf")) as f:
        conf = " ".join(line.strip("# \n") for line in f if line.startswith("    #     "))
    assert " ".join(pgserver.RECOMMENDED.split()) in " ".join(conf.split())
