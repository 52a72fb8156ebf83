"""`make install` honours DESTDIR and PREFIX: the two modules in apxs's
LIBEXECDIR, gcmon.load + gcmon.conf in the a2enmod layout (pointing at the
installed paths), and the dashboard below $(PREFIX)/share/gcmon/htdocs."""
import filecmp
import os
import subprocess

from httpd import BUILD, REPO


def libexecdir():
    return subprocess.run(["apxs", "-q", "LIBEXECDIR"], stdout=subprocess.PIPE, check=True,
                          text=True).stdout.strip()


def make_install(tmp_path, *args):
    build = os.path.relpath(BUILD, REPO)
    p = subprocess.run(["make", "-s", "install", f"DESTDIR={tmp_path}", f"BUILD={build}", *args],
                       cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout
    return p.stdout


def installed_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


def htdocs_files():
    top = os.path.join(REPO, "htdocs")
    return sorted(os.path.relpath(os.path.join(d, f), top)
                  for d, _, files in os.walk(top) for f in files)


def test_install_destdir_default_prefix(tmp_path):
    make_install(tmp_path)
    lib = libexecdir().lstrip("/")
    want = {f"{lib}/mod_gcmon_api.so", f"{lib}/mod_gcmon_stream.so",
            "etc/apache2/mods-available/gcmon.load", "etc/apache2/mods-available/gcmon.conf"}
    want |= {f"usr/share/gcmon/htdocs/{f}" for f in htdocs_files()}
    assert set(installed_files(tmp_path)) == want
    assert "js/app.js" in htdocs_files() and "index.html" in htdocs_files()
    for f in htdocs_files():
        dst = tmp_path / "usr/share/gcmon/htdocs" / f
        assert filecmp.cmp(os.path.join(REPO, "htdocs", f), dst, shallow=False), f
        assert oct(dst.stat().st_mode & 0o777) == "0o644", f
    assert filecmp.cmp(os.path.join(BUILD, ".libs", "mod_gcmon_api.so"),
                       tmp_path / lib / "mod_gcmon_api.so", shallow=False)
    load = (tmp_path / "etc/apache2/mods-available/gcmon.load").read_text()
    assert f"LoadModule gcmon_api_module /{lib}/mod_gcmon_api.so" in load
    conf = (tmp_path / "etc/apache2/mods-available/gcmon.conf").read_text()
    assert "Alias /gcmon /usr/share/gcmon/htdocs" in conf


def test_install_prefix(tmp_path):
    make_install(tmp_path, "PREFIX=/opt/gcmon")
    files = installed_files(tmp_path)
    assert "opt/gcmon/share/gcmon/htdocs/index.html" in files
    assert not any(f.startswith("usr/share/") for f in files), files
    conf = (tmp_path / "etc/apache2/mods-available/gcmon.conf").read_text()
    assert "Alias /gcmon /opt/gcmon/share/gcmon/htdocs" in conf
    assert "<Directory /opt/gcmon/share/gcmon/htdocs>" in conf
    assert "/usr/share/gcmon" not in conf
