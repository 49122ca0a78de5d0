"""A strict reader of the Prometheus text exposition format 0.0.4, for tests.

    fams = parse(text)            # {name: Family}; raises FormatError on anything malformed
    value(fams, "capstan_http_requests_total", route="healthz", method="GET", status="200")
    total(fams, "capstan_http_requests_total", route="healthz")   # sum over the other labels

It checks what a scraper relies on: # HELP / # TYPE lines before the samples of their metric,
one TYPE per name, metric and label names of the allowed characters, label values with only the
escapes \\\\, \\" and \\n, float values (NaN, +Inf, -Inf included), no sample twice, all samples of
a metric together, histogram series with _bucket (le ascending, counts never decreasing, ending
at +Inf), _sum and _count equal to the +Inf bucket. Only the Python standard library is used.
"""
import math
import re

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class FormatError(ValueError):
    pass


class Family:
    def __init__(self, name):
        self.name = name
        self.type = None
        self.help = None
        # (sample name, frozenset of label items) -> float
        self.samples = {}

    def series(self, sample_name=None):
        sample_name = sample_name or self.name
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == sample_name]


def _float(s, where):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    try:
        return float(s)
    except ValueError:
        raise FormatError("%s: %r is not a number" % (where, s))


def _labels(s, i, where):
    """Parses {a="x",...} starting at s[i] == '{'; returns (dict, index after '}')."""
    out = {}
    i += 1
    while True:
        if i < len(s) and s[i] == "}":
            return out, i + 1
        m = LABEL_RE.match(s, i)
        if not m:
            raise FormatError("%s: bad label name at %r" % (where, s[i:i + 20]))
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            raise FormatError("%s: label %s lacks =\"" % (where, name))
        i += 2
        val = []
        while True:
            if i >= len(s):
                raise FormatError("%s: unterminated label value" % where)
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise FormatError("%s: bad escape \\%s in a label value" % (where, nxt))
                val.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise FormatError("%s: raw newline in a label value" % where)
            else:
                val.append(c)
                i += 1
        if name in out:
            raise FormatError("%s: label %s twice" % (where, name))
        out[name] = "".join(val)
        if i < len(s) and s[i] == ",":
            i += 1
            continue
        if i < len(s) and s[i] == "}":
            return out, i + 1
        raise FormatError("%s: expected , or } after label %s" % (where, name))


def _family_of(name, fams):
    """The family a sample name belongs to (histogram/summary suffixes resolved)."""
    if name in fams:
        return fams[name]
    for suf in ("_bucket", "_sum", "_count"):
        if name.endswith(suf):
            base = name[:-len(suf)]
            f = fams.get(base)
            if f and f.type in ("histogram", "summary") and not (suf == "_bucket" and f.type == "summary"):
                return f
    return None


def parse(text):
    if text and not text.endswith("\n"):
        raise FormatError("the exposition does not end with a newline")
    fams = {}
    order = []
    finished = set()
    current = None
    for no, line in enumerate(text.split("\n")[:-1] if text else [], 1):
        where = "line %d" % no
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME_RE.fullmatch(name):
                    raise FormatError("%s: bad metric name %r" % (where, name))
                f = fams.get(name)
                if f is None:
                    if name in finished:
                        raise FormatError("%s: %s appears again after other metrics" % (where, name))
                    f = fams[name] = Family(name)
                    order.append(name)
                if f.samples:
                    raise FormatError("%s: %s %s after its samples" % (where, parts[1], name))
                if parts[1] == "TYPE":
                    if f.type is not None:
                        raise FormatError("%s: second TYPE for %s" % (where, name))
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise FormatError("%s: bad TYPE line %r" % (where, line))
                    f.type = parts[3]
                else:
                    if f.help is not None:
                        raise FormatError("%s: second HELP for %s" % (where, name))
                    h = parts[3] if len(parts) == 4 else ""
                    if re.search(r"\\[^\\n]", h.replace("\\\\", "")):
                        raise FormatError("%s: bad escape in HELP" % where)
                    f.help = h.replace("\\n", "\n").replace("\\\\", "\\")
                if current is not None and current is not f:
                    finished.add(current.name)
                current = f
            continue
        m = NAME_RE.match(line)
        if not m:
            raise FormatError("%s: bad sample line %r" % (where, line))
        sname = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = _labels(line, i, where)
        if i >= len(line) or line[i] != " ":
            raise FormatError("%s: expected a space before the value in %r" % (where, line))
        rest = line[i + 1:].split(" ")
        if not 1 <= len(rest) <= 2:
            raise FormatError("%s: bad value part %r" % (where, line[i + 1:]))
        val = _float(rest[0], where)
        if len(rest) == 2 and not re.fullmatch(r"-?[0-9]+", rest[1]):
            raise FormatError("%s: bad timestamp %r" % (where, rest[1]))
        f = _family_of(sname, fams)
        if f is None:
            f = fams[sname] = Family(sname)
            f.type = "untyped"
            order.append(sname)
        if f.type == "histogram" and sname == f.name:
            raise FormatError("%s: a histogram sample must be _bucket, _sum or _count" % where)
        if f.type == "histogram" and sname.endswith("_bucket") and "le" not in labels:
            raise FormatError("%s: a bucket without le" % where)
        if current is not None and current is not f:
            finished.add(current.name)
        if f.name in finished:
            raise FormatError("%s: samples of %s are not together" % (where, f.name))
        current = f
        key = (sname, frozenset(labels.items()))
        if key in f.samples:
            raise FormatError("%s: sample %s%r twice" % (where, sname, labels))
        f.samples[key] = val
    for f in fams.values():
        if f.type == "histogram":
            _check_histogram(f)
        if f.type == "counter":
            for (_, lab), v in f.samples.items():
                if v < 0 or math.isnan(v):
                    raise FormatError("counter %s%r is %r" % (f.name, dict(lab), v))
    return fams


def _check_histogram(f):
    groups = {}
    for (sname, lab), v in f.samples.items():
        d = dict(lab)
        le = d.pop("le", None)
        g = groups.setdefault(frozenset(d.items()), {"buckets": [], "sum": None, "count": None})
        if sname.endswith("_bucket"):
            g["buckets"].append((_float(le, f.name), v))
        elif sname.endswith("_sum"):
            g["sum"] = v
        else:
            g["count"] = v
    for lab, g in groups.items():
        b = sorted(g["buckets"])
        if not b or b[-1][0] != math.inf:
            raise FormatError("histogram %s%r lacks the +Inf bucket" % (f.name, dict(lab)))
        if g["sum"] is None or g["count"] is None:
            raise FormatError("histogram %s%r lacks _sum or _count" % (f.name, dict(lab)))
        for (_, a), (_, c) in zip(b, b[1:]):
            if c < a:
                raise FormatError("histogram %s%r buckets are not cumulative" % (f.name, dict(lab)))
        if b[-1][1] != g["count"]:
            raise FormatError("histogram %s%r: +Inf bucket %r != count %r" % (f.name, dict(lab), b[-1][1], g["count"]))


def value(fams, sample, default=None, **labels):
    """The value of the one sample named `sample` with exactly these labels."""
    f = _family_of(sample, fams)
    if f is None:
        return default
    return f.samples.get((sample, frozenset(labels.items())), default)


def total(fams, sample, **labels):
    """Sum of every sample named `sample` whose labels include these."""
    f = _family_of(sample, fams)
    if f is None:
        return 0.0
    s = 0.0
    for (name, lab), v in f.samples.items():
        d = dict(lab)
        if name == sample and all(d.get(k) == v2 for k, v2 in labels.items()):
            s += v
    return s


def label_values(fams):
    """Every (metric, label, value) in the exposition (le excluded)."""
    out = []
    for f in fams.values():
        for (name, lab) in f.samples:
            for k, v in lab:
                if k != "le":
                    out.append((name, k, v))
    return out
