"""A strict validator of the Prometheus text exposition format 0.0.4.

Stricter than Prometheus's own parser where the format leaves room for sloppy
output: every family has exactly one HELP and one TYPE, both before its
samples; a family's samples are contiguous; histogram buckets ascend, are
cumulative, end in le="+Inf" equal to _count, and come with _sum; counters
end in _total; no series appears twice; the text ends with a newline.
validate(text) returns {family: {"type", "help", "samples": [(name, labels, value)]}}
and raises ValueError naming the line on the first violation.
"""
import math
import re

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
VALUE = r"(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)"
SAMPLE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? ({VALUE})(?: (-?\d+))?$")
LABEL_PAIR = re.compile(rf'({LABEL})="((?:[^"\\\n]|\\[\\"n])*)"')
HELP = re.compile(rf"^# HELP ({NAME}) ((?:[^\\\n]|\\[\\n])*)$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")


def _labels(text, lineno):
    if text is None or text == "":
        return ()
    out, pos = [], 0
    while pos < len(text):
        m = LABEL_PAIR.match(text, pos)
        if not m:
            raise ValueError(f"line {lineno}: malformed labels {text!r}")
        out.append((m.group(1), m.group(2)))
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise ValueError(f"line {lineno}: expected ',' in labels {text!r}")
            pos += 1
            if pos == len(text):
                break  # a trailing comma is allowed by the format
    names = [k for k, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"line {lineno}: repeated label name in {text!r}")
    return tuple(out)


def _family_of(name, families):
    if name in families:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in families \
                and families[name[: -len(suffix)]]["type"] == "histogram":
            return name[: -len(suffix)]
    return None


def _value(v):
    return float(v.replace("Inf", "inf"))


def validate(text):
    if not text.endswith("\n"):
        raise ValueError("the text does not end with a newline")
    if "\r" in text:
        raise ValueError("carriage return in the text")
    families = {}
    closed = set()
    current = None
    seen_series = set()
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            continue
        if line.startswith("#"):
            m = HELP.match(line) or TYPE.match(line)
            if not m:
                if line.startswith("# HELP") or line.startswith("# TYPE"):
                    raise ValueError(f"line {lineno}: malformed {line!r}")
                continue  # a plain comment
            name = m.group(1)
            fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
            if name in closed or fam["samples"]:
                raise ValueError(f"line {lineno}: {name} metadata after its samples")
            key = "help" if line.startswith("# HELP") else "type"
            if fam[key] is not None:
                raise ValueError(f"line {lineno}: second # {key.upper()} for {name}")
            fam[key] = m.group(2)
            if current is not None and current != name:
                closed.add(current)
            current = name
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError(f"line {lineno}: malformed sample {line!r}")
        name, labels = m.group(1), _labels(m.group(2), lineno)
        fname = _family_of(name, families)
        if fname is None:
            raise ValueError(f"line {lineno}: sample {name} has no # TYPE before it")
        if fname in closed:
            raise ValueError(f"line {lineno}: samples of {fname} are not contiguous")
        if current is not None and current != fname:
            closed.add(current)
        current = fname
        fam = families[fname]
        if fam["help"] is None or fam["type"] is None:
            raise ValueError(f"line {lineno}: {fname} lacks HELP or TYPE")
        key = (name, frozenset(labels))
        if key in seen_series:
            raise ValueError(f"line {lineno}: series repeated: {line!r}")
        seen_series.add(key)
        value = _value(m.group(3))
        if fam["type"] == "counter":
            if not name.endswith("_total"):
                raise ValueError(f"line {lineno}: counter {name} does not end in _total")
            if value < 0 or math.isnan(value):
                raise ValueError(f"line {lineno}: counter {name} is {value}")
        if fam["type"] == "histogram" and name == fname:
            raise ValueError(f"line {lineno}: bare sample of histogram {fname}")
        if fam["type"] != "histogram" and any(k == "le" for k, _ in labels):
            raise ValueError(f"line {lineno}: le label outside a histogram")
        fam["samples"].append((name, dict(labels), value))
    for fname, fam in families.items():
        if fam["type"] is None or fam["help"] is None:
            raise ValueError(f"{fname}: HELP without TYPE or TYPE without HELP")
        if fam["type"] == "histogram":
            _check_histogram(fname, fam["samples"])
    return families


def _check_histogram(fname, samples):
    series = {}
    for name, labels, value in samples:
        base = frozenset((k, v) for k, v in labels.items() if k != "le")
        s = series.setdefault(base, {"buckets": [], "sum": None, "count": None})
        if name == fname + "_bucket":
            if "le" not in labels:
                raise ValueError(f"{fname}: bucket without le")
            s["buckets"].append((_value(labels["le"]), value))
        elif name == fname + "_sum":
            s["sum"] = value
        elif name == fname + "_count":
            s["count"] = value
    for base, s in series.items():
        b = s["buckets"]
        if not b or b[-1][0] != math.inf:
            raise ValueError(f"{fname}{dict(base)}: last bucket is not le=\"+Inf\"")
        if any(b[i][0] >= b[i + 1][0] for i in range(len(b) - 1)):
            raise ValueError(f"{fname}{dict(base)}: bucket bounds do not ascend")
        if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            raise ValueError(f"{fname}{dict(base)}: buckets are not cumulative")
        if s["count"] is None or s["sum"] is None:
            raise ValueError(f"{fname}{dict(base)}: _count or _sum missing")
        if b[-1][1] != s["count"]:
            raise ValueError(f"{fname}{dict(base)}: +Inf bucket {b[-1][1]} != _count "
                             f"{s['count']}")
