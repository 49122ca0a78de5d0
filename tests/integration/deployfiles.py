"""Readers of capstan's deployment files for the tests (test_install.py, test_deploy.py): the
Dockerfile's stages and instructions, YAML documents, and the settings table. Only the Python
standard library is used here; YAML goes through the system's python3-yaml in a separate
interpreter (validate-manifests needs it anyway)."""
import json
import os
import re
import shlex
import subprocess

import harness

SRC = harness.SOURCE_DIR
DOCKERFILE = os.path.join(SRC, "deploy", "Dockerfile")
KUBE_DIR = os.path.join(SRC, "deploy", "kubernetes")
FLUX_DIR = os.path.join(SRC, "deploy", "flux")
EXTRA_SCHEMAS = os.path.join(SRC, "deploy", "schemas")


# ---- a small Dockerfile reader ----

def dockerfile_stages(path):
    """[{"name", "base", "instructions": [(KEYWORD, args)]}] with continuation lines joined."""
    with open(path) as f:
        lines = f.read().split("\n")
    logical, cur = [], ""
    for line in lines:
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        logical.append(cur)
        cur = ""
    stages = []
    for l in logical:
        kw, _, args = l.partition(" ")
        kw = kw.upper()
        if kw == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.I)
            stages.append({"base": m.group(1), "name": m.group(2), "instructions": []})
        else:
            stages[-1]["instructions"].append((kw, args.strip()))
    return stages


def copy_args(args):
    """(from_stage or None, [sources], dest) of a COPY line."""
    parts = shlex.split(args)
    frm = None
    while parts and parts[0].startswith("--"):
        p = parts.pop(0)
        if p.startswith("--from="):
            frm = p[len("--from="):]
    return frm, parts[:-1], parts[-1]


def apt_packages(run_args):
    pkgs = []
    for m in re.finditer(r"apt-get install ((?:\s*-\S+)*)\s+([^&|;]+)", run_args):
        pkgs += m.group(2).split()
    return pkgs


def yaml_docs(text):
    """YAML documents as Python objects, through the system's python3-yaml (the validator needs
    it anyway) in a separate interpreter, so this test stays on the standard library."""
    r = subprocess.run(["/usr/bin/python3", "-c",
                        "import sys, json, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)"],
                       input=text, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError("cannot read YAML: " + r.stderr)
    return json.loads(r.stdout)


def capstan_settings():
    """{variable: secret?} from `capstan config`, the one settings table."""
    out = harness.run_capstan(["config"]).stdout
    settings = {}
    for line in out.splitlines():
        m = re.match(r"\| `(CAPSTAN_[A-Z0-9_]+)`( \(secret)?", line)
        if m:
            settings[m.group(1)] = bool(m.group(2))
    assert settings, out
    return settings
