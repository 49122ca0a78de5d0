"""Secrets the tests used must never appear in what capstan wrote.

Two halves:
  * record(secret): tests call it with every token and password they make or send; the values
    go to $CAPSTAN_BUILD_DIR/test-secrets/<test>.txt (one per line).
  * `python3 secretscan.py BUILD_DIR`: reads every recorded secret, adds the fixed ones (the
    harness's bootstrap admin token) and every string of a known secret shape (capstan API
    tokens "cap_" + 43 base64url characters, the test Git server's "pw-" passwords, the
    Kubernetes double's "tok-" tokens), then searches every captured capstan log under
    BUILD_DIR/test-logs for each. Any find is printed (file, line number, which secret, with
    the secret itself masked) and the exit status is 1. scripts/test runs it after the tests.
    `--self-test` checks that a planted secret is found and a clean log passes.
Only the Python standard library is used.
"""
import os
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# shapes of secrets that only ever exist as secrets
SHAPES = [
    re.compile(r"cap_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"),
    re.compile(r"\bpw-[0-9a-f]{24}\b"),
    re.compile(r"\btok-[0-9a-f]{32}\b"),
]


def _build_dir():
    return os.environ.get("CAPSTAN_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))


def record(secret, build_dir=None):
    """Remembers secret (a token or password a test used) for the scan after the tests."""
    if not secret or len(secret) < 8:
        return
    d = os.path.join(build_dir or _build_dir(), "test-secrets")
    os.makedirs(d, exist_ok=True)
    name = os.path.basename(sys.argv[0]).replace(".py", "") or "python"
    with open(os.path.join(d, name + ".txt"), "a") as f:
        f.write(secret + "\n")


def known_secrets(build_dir):
    out = set()
    d = os.path.join(build_dir, "test-secrets")
    if os.path.isdir(d):
        for fn in os.listdir(d):
            with open(os.path.join(d, fn), errors="replace") as f:
                out.update(line.rstrip("\n") for line in f if len(line.strip()) >= 8)
    sys.path.insert(0, HERE)
    try:
        import harness
        out.add(harness.ADMIN_TOKEN)
    except Exception:  # the scan still works without the harness
        pass
    return out


def mask(s):
    return s[:6] + "..." if len(s) > 10 else "..."


def scan(build_dir):
    """[(file, line number, masked secret, how found)] for every secret in the captured logs."""
    secrets = known_secrets(build_dir)
    finds = []
    logs = os.path.join(build_dir, "test-logs")
    if not os.path.isdir(logs):
        return finds, 0, len(secrets)
    files = sorted(os.listdir(logs))
    for fn in files:
        path = os.path.join(logs, fn)
        with open(path, errors="replace") as f:
            for n, line in enumerate(f, 1):
                for s in secrets:
                    if s in line:
                        finds.append((path, n, mask(s), "recorded"))
                for rx in SHAPES:
                    for m in rx.finditer(line):
                        finds.append((path, n, mask(m.group(0)), "shape " + rx.pattern[:12]))
    return finds, len(files), len(secrets)


def self_test():
    d = tempfile.mkdtemp(prefix="secretscan-")
    os.makedirs(os.path.join(d, "test-logs"))
    planted = "cap_" + "A" * 43
    with open(os.path.join(d, "test-logs", "clean.log"), "w") as f:
        f.write('{"msg":"request","path":"/api/v1/tokens","status":201}\n')
    finds, _, _ = scan(d)
    assert finds == [], finds
    record("pw-planted-password-1234", build_dir=d)
    with open(os.path.join(d, "test-logs", "leak.log"), "w") as f:
        f.write('{"msg":"oops %s"}\n{"msg":"and pw-planted-password-1234"}\n' % planted)
    finds, _, _ = scan(d)
    assert len(finds) == 2 and {x[1] for x in finds} == {1, 2}, finds
    print("secretscan self-test passed")


def main():
    if "--self-test" in sys.argv:
        self_test()
        return 0
    build_dir = sys.argv[1] if len(sys.argv) > 1 else _build_dir()
    finds, nfiles, nsecrets = scan(build_dir)
    for path, n, s, how in finds[:50]:
        print("SECRET IN LOG: %s:%d: %s (%s)" % (path, n, s, how))
    print("scanned %d captured logs for %d recorded secrets and %d secret shapes: %d finds"
          % (nfiles, nsecrets, len(SHAPES), len(finds)))
    return 1 if finds else 0


if __name__ == "__main__":
    sys.exit(main())
