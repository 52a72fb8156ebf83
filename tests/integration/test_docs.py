"""Every directive in the modules' command tables is documented in
docs/directives.md and present in the reference conf/gcmon.conf."""
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
