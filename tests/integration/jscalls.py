"""The dashboard's API calls, found statically in htdocs/js/*.js.

Every module that imports `request` or `get` from './api.js' calls the API as
`request(PATH, {method, query, headers, body})` or `get(PATH, QUERY, OPTS)`,
PATH relative to `api/v1/` (api.js: apiUrl). For each call this finds the
method, the path templates PATH can take — a literal, a template literal
(`${...}` becomes one `{}` segment), a call of a function of the file (its
`return`s), or a variable (what is assigned to it, and for a function
parameter the arguments of that function's calls) — and the query and header
names written inline. tests/integration/test_openapi.py matches them against
docs/openapi.yaml.
"""
import os
import re

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
JS_DIR = os.path.join(REPO, "htdocs", "js")
REGEX_BEFORE = set("(,=:[!&|?{};+-*%<>~^")


class Call:
    def __init__(self, file, line, fn, args):
        self.file, self.line, self.fn, self.args = file, line, fn, args
        self.method = "GET"
        self.paths = set()
        self.query = set()
        self.headers = set()
        self.unresolved = []

    def __repr__(self):
        return f"{os.path.basename(self.file)}:{self.line} {self.method} {sorted(self.paths)}"


# ---------------------------------------------------------------- lexing

def _skip_string(text, i):
    """Index after the string literal starting at text[i] (' or ")."""
    q = text[i]
    i += 1
    while i < len(text) and text[i] != q:
        i += 2 if text[i] == "\\" else 1
    return i + 1


def _skip_template(text, i):
    """Index after the template literal starting at text[i] (`)."""
    i += 1
    while i < len(text) and text[i] != "`":
        if text[i] == "\\":
            i += 2
        elif text.startswith("${", i):
            i = _skip_balanced(text, i + 1)
        else:
            i += 1
    return i + 1


def _skip_regex(text, i):
    i += 1
    in_class = False
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif c == "/" and not in_class:
            i += 1
            while i < len(text) and text[i].isalpha():
                i += 1
            return i
        elif c == "\n":
            return i
        i += 1
    return i


def _prev_significant(text, i):
    j = i - 1
    while j >= 0 and text[j] in " \t\r\n":
        j -= 1
    return text[j] if j >= 0 else ""


def _skip_balanced(text, i):
    """text[i] is an opening bracket; index after its match."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[text[i]]]
    i += 1
    while i < len(text) and stack:
        i = _step(text, i, stack, pairs)
    return i


def _step(text, i, stack, pairs):
    c = text[i]
    if c in "'\"":
        return _skip_string(text, i)
    if c == "`":
        return _skip_template(text, i)
    if text.startswith("//", i):
        end = text.find("\n", i)
        return len(text) if end < 0 else end
    if text.startswith("/*", i):
        end = text.find("*/", i + 2)
        return len(text) if end < 0 else end + 2
    if c == "/" and (_prev_significant(text, i) in REGEX_BEFORE
                     or re.search(r"\breturn\s*$", text[max(0, i - 8):i])):
        return _skip_regex(text, i)
    if c in pairs:
        stack.append(pairs[c])
    elif stack and c == stack[-1]:
        stack.pop()
    return i + 1


def split_args(text, open_idx):
    """The top-level comma-separated pieces between text[open_idx] ('(' or
    '{') and its match, and the index after the match."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[text[open_idx]]]
    i = open_idx + 1
    start = i
    out = []
    while i < len(text) and stack:
        if len(stack) == 1 and text[i] == ",":
            out.append(text[start:i].strip())
            i += 1
            start = i
            continue
        if len(stack) == 1 and text[i] == stack[0]:
            out.append(text[start:i].strip())
            stack.pop()
            i += 1
            break
        i = _step(text, i, stack, pairs)
    return [a for a in out if a], i


def _expr_end(text, i):
    """End of the expression starting at i (before a top-level ; or newline
    that ends a statement, or a closing bracket)."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = []
    while i < len(text):
        c = text[i]
        if not stack and (c == ";" or c in ")]}"):
            return i
        if not stack and c == "\n" and not re.match(r"\s*[.?:+|&]", text[i + 1:i + 40]):
            return i
        if stack and c == stack[-1]:
            stack.pop()
            i += 1
            continue
        i = _step(text, i, stack, pairs)
    return i


# ---------------------------------------------------------------- resolving

def _template_parts(expr):
    """A template literal's pieces: strings and ('expr', text) for each ${...}."""
    parts, i, cur = [], 1, ""
    while i < len(expr) - 1:
        if expr.startswith("${", i):
            end = _skip_balanced(expr, i + 1)
            parts.append(cur)
            parts.append(("expr", expr[i + 2:end - 1]))
            cur = ""
            i = end
        else:
            cur += expr[i]
            i += 1
    parts.append(cur)
    return parts


def _literal(expr, sub=None):
    """The path templates of a string or template literal (a set), else None.
    In a template, each ${...} is one `{}` segment, or what sub(expr) resolves
    it to (a set of templates) when it is itself a path."""
    expr = expr.strip()
    if len(expr) >= 2 and expr[0] in "'\"" and expr[-1] == expr[0]:
        return {expr[1:-1]}
    if len(expr) >= 2 and expr[0] == "`" and _skip_template(expr, 0) == len(expr):
        out = {""}
        for part in _template_parts(expr):
            if isinstance(part, str):
                out = {o + part for o in out}
                continue
            alts = sub(part[1]) if sub else set()
            alts = {a for a in alts if "/" in a} or {"{}"}
            out = {o + a for o in out for a in alts}
            if len(out) > 64:
                break
        return out
    return None


def _function_body(text, name):
    """(parameters, body) of a function of the file: a declaration
    (`function f(...) {...}`) or an arrow (`const f = (...) => ...`), whose
    expression body becomes `{ return ...; }`; (None, None) when not found."""
    m = re.search(r"\bfunction\s+" + re.escape(name) + r"\s*\(", text)
    if m:
        params, after = split_args(text, m.end() - 1)
        brace = text.find("{", after)
        end = _skip_balanced(text, brace)
        return [re.split(r"\s*=", p)[0].strip() for p in params], text[brace:end]
    m = re.search(r"\b(?:const|let|var)\s+" + re.escape(name)
                  + r"\s*=\s*(?:async\s+)?(?:\(|([\w$]+)\s*=>)", text)
    if not m:
        return None, None
    if m.group(1):
        params, after = [m.group(1)], m.end()
    else:
        params, after = split_args(text, m.end() - 1)
        arrow = re.match(r"\s*=>\s*", text[after:])
        if not arrow:
            return None, None
        after += arrow.end()
    params = [re.split(r"\s*=", p)[0].strip() for p in params]
    if text[after] == "{":
        return params, text[after:_skip_balanced(text, after)]
    return params, "{ return " + text[after:_expr_end(text, after)] + "; }"


def _enclosing_params(text):
    """{param name: [(function name, position)]} of the file's functions."""
    out = {}
    for m in re.finditer(r"\bfunction\s+([\w$]+)\s*\(", text):
        params, _ = split_args(text, m.end() - 1)
        for pos, p in enumerate(params):
            out.setdefault(re.split(r"\s*=", p)[0].strip(), []).append((m.group(1), pos))
    return out


def resolve(text, expr, seen=None, depth=0):
    """(set of templates, list of unresolvable expressions) of expr."""
    seen = set() if seen is None else seen
    expr = expr.strip()
    if depth > 6 or expr in seen:
        return set(), []
    lit = _literal(expr, lambda e: resolve(text, e, set(seen) | {expr}, depth + 1)[0])
    if lit is not None:
        return lit, []
    seen.add(expr)
    m = re.fullmatch(r"([\w$]+)\s*\((.*)\)", expr, re.S)
    if m:
        _, body = _function_body(text, m.group(1))
        if body is None:
            return set(), [expr]
        found, bad = set(), []
        for r in re.finditer(r"\breturn\b", body):
            e = body[r.end():_expr_end(body, r.end())].strip()
            f, b = resolve(text, e, seen, depth + 1)
            found |= f
            bad += b
        return (found, []) if found else (found, bad or [expr])
    if re.fullmatch(r"[\w$]+", expr):
        found, bad = set(), []
        for e in _assignments(text, expr):
            f, b = resolve(text, e, seen, depth + 1)
            found |= f
            bad += b
        for fn, pos in _enclosing_params(text).get(expr, []):
            for c in re.finditer(r"(?<![\w$.])" + re.escape(fn) + r"\s*\(", text):
                if re.search(r"\bfunction\s+$", text[max(0, c.start() - 12):c.start()]):
                    continue
                args, _ = split_args(text, c.end() - 1)
                if pos < len(args):
                    f, b = resolve(text, args[pos], seen, depth + 1)
                    found |= f
                    bad += b
        return (found, []) if found else (found, bad or [expr])
    return set(), [expr]


def _assignments(text, name):
    """The expressions assigned to a variable of the file (declarations too)."""
    out = []
    for a in re.finditer(r"(?<![\w$.])" + re.escape(name) + r"\s*=(?![=>])", text):
        e = text[a.end():_expr_end(text, a.end())].strip()
        if e not in ("null", "undefined", "''", '""'):
            out.append(e)
    return out


KEYWORDS = {"null", "undefined", "true", "false", "this", "await", "new", "typeof"}


def keys_of(text, expr, seen=None, depth=0):
    """The literal keys of the object(s) an expression can be: object literals
    (through ternaries and spreads) and what variables are assigned."""
    seen = set() if seen is None else seen
    expr = expr.strip()
    if depth > 6 or expr in seen:
        return set()
    seen.add(expr)
    if re.fullmatch(r"[\w$]+", expr):
        keys = set()
        for e in _assignments(text, expr):
            keys |= keys_of(text, e, seen, depth + 1)
        return keys
    keys, i = set(), 0
    while i < len(expr):
        c = expr[i]
        if c == "{":
            end = _skip_balanced(expr, i)
            for p in split_args(expr[i:end], 0)[0]:
                if p.startswith("..."):
                    keys |= keys_of(text, p[3:], seen, depth + 1)
                    continue
                m = re.match(r"""(?:'([^']+)'|"([^"]+)"|([\w$]+))\s*(?::|$)""", p)
                if m:
                    keys.add(next(g for g in m.groups() if g))
            i = end
        elif c in "([":
            i = _skip_balanced(expr, i)
        elif c in "'\"":
            i = _skip_string(expr, i)
        elif c == "`":
            i = _skip_template(expr, i)
        else:
            m = re.match(r"[\w$.]+", expr[i:])
            if not m:
                i += 1
                continue
            tok = m.group(0)
            rest = expr[i + len(tok):].lstrip()
            if (re.fullmatch(r"[\w$]+", tok) and tok not in KEYWORDS
                    and not rest.startswith(("?", "(", "."))):
                keys |= keys_of(text, tok, seen, depth + 1)
            i += len(tok)
    return keys


def _option(opts, name):
    """The value of option `name` in an options object literal (shorthand too)."""
    if not opts.strip().startswith("{"):
        return None
    for p in split_args(opts.strip(), 0)[0]:
        if p == name:
            return name
        m = re.match(re.escape(name) + r"\s*:\s*(.*)$", p, re.S)
        if m:
            return m.group(1).strip()
    return None


def calls_in(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    imp = re.search(r"import\s*\{([^}]*)\}\s*from\s*['\"]\./api\.js['\"]", text)
    if not imp:
        return []
    names = [n.strip().split(" as ")[-1].strip() for n in imp.group(1).split(",")]
    names = [n for n in names if n in ("request", "get")]
    out = []
    for m in re.finditer(r"(?<![\w$.])(" + "|".join(names) + r")\s*\(", text) if names else ():
        if re.search(r"\bfunction\s+$", text[max(0, m.start() - 12):m.start()]):
            continue
        args, _ = split_args(text, m.end() - 1)
        if not args:
            continue
        call = Call(path, text.count("\n", 0, m.start()) + 1, m.group(1), args)
        paths, bad = resolve(text, args[0])
        call.paths = paths
        call.unresolved = bad
        opts = args[1] if call.fn == "request" and len(args) > 1 else (
            args[2] if len(args) > 2 else "")
        if call.fn == "request" and opts:
            meth = _option(opts, "method")
            if meth:
                lit = _literal(meth)
                call.method = next(iter(lit)).upper() if lit and len(lit) == 1 else "?" + meth
            q = _option(opts, "query")
            if q:
                call.query = keys_of(text, q)
        elif call.fn == "get" and len(args) > 1:
            call.query = keys_of(text, args[1])
        h = _option(opts, "headers") if opts else None
        if h:
            call.headers = keys_of(text, h)
        out.append(call)
    return out


def dashboard_calls(js_dir=JS_DIR):
    out = []
    for name in sorted(os.listdir(js_dir)):
        if name.endswith(".js") and name != "api.js":
            out += calls_in(os.path.join(js_dir, name))
    return out
