"""Black-box test harness for capstan.

Starts real processes and talks to them over the network, like a user would:
  * Postgres: a private PostgreSQL server (initdb into a temporary folder, its own port,
    run as an unprivileged user when the tests run as root, removed afterwards). Tests share
    one server started by the ctest fixture `pg` (see pg_fixture.py) and each makes its own
    database; a test that must stop the database starts a server of its own.
  * Capstan: the real binary (CAPSTAN_BIN) on a free port, its log captured to a file.
  * request(): one HTTP call, returning status, headers and the decoded body.
Only the Python standard library is used.
"""
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import http.client

SOURCE_DIR = os.environ.get("CAPSTAN_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_DIR = os.environ.get("CAPSTAN_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
CAPSTAN_BIN = os.environ.get("CAPSTAN_BIN", os.path.join(BUILD_DIR, "capstan"))
ADMIN_TOKEN = "test-admin-token-" + "0123456789abcdef"
STATE_FILE = os.path.join(BUILD_DIR, "test-pg.json")
LOG_DIR = os.path.join(BUILD_DIR, "test-logs")


def pg_bindir():
    for base in sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: int(v) if v.isdigit() else 0, reverse=True):
        d = os.path.join("/usr/lib/postgresql", base, "bin")
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unprivileged_user():
    """The user to run PostgreSQL as when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user to run PostgreSQL as")


class Postgres:
    """A private PostgreSQL server. start() runs initdb on first use."""

    def __init__(self, root=None, port=None):
        self.root = root or tempfile.mkdtemp(prefix="capstan-pg-")
        self.own_root = root is None
        self.data = os.path.join(self.root, "data")
        self.port = port or free_port()
        self.bindir = pg_bindir()
        self.user = unprivileged_user()

    def _run(self, args, check=True, **kw):
        if self.user is not None:
            args = ["runuser", "-u", self.user.pw_name, "--"] + args
        return subprocess.run(args, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)

    def init(self):
        if os.path.exists(os.path.join(self.data, "PG_VERSION")):
            return
        os.makedirs(self.root, exist_ok=True)
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        os.chmod(self.root, 0o700)
        r = self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres", "-A", "trust",
                       "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], check=False)
        if r.returncode != 0:
            raise RuntimeError("initdb failed: " + r.stdout)

    def start(self):
        self.init()
        opts = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off " \
               "-c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB" % (self.port, self.root)
        r = self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-o", opts, "-l",
                       os.path.join(self.root, "server.log"), "-w", "-t", "60", "start"], check=False)
        if r.returncode != 0:
            log = ""
            try:
                with open(os.path.join(self.root, "server.log")) as f:
                    log = f.read()[-2000:]
            except OSError:
                pass
            raise RuntimeError("pg_ctl start failed: " + r.stdout + log)

    def stop(self, mode="fast"):
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop"], check=False)

    def destroy(self):
        self.stop("immediate")
        if self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db="postgres"):
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, db)

    def psql(self, sql, db="postgres"):
        r = subprocess.run([os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-d", self.url(db), "-c", sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError("psql failed: " + r.stderr)
        return r.stdout.strip()

    def create_db(self, name=None):
        name = name or "t_" + uuid.uuid4().hex[:12]
        self.psql('CREATE DATABASE "%s"' % name)
        return name


def shared_postgres():
    """The server of the ctest fixture, or (run alone) a private one removed at exit."""
    try:
        with open(STATE_FILE) as f:
            st = json.load(f)
        pg = Postgres(root=st["root"], port=st["port"])
        pg.psql("SELECT 1")
        return pg
    except (OSError, ValueError, KeyError, RuntimeError):
        pg = Postgres()
        pg.start()
        import atexit
        atexit.register(pg.destroy)
        return pg


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        ctype = headers.get("content-type", "")
        self.json = None
        if body and ("json" in ctype):
            self.json = json.loads(body)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "<Response %d %s>" % (self.status, self.raw[:500])


def request(port, method, path, body=None, headers=None, token=ADMIN_TOKEN, raw=None, timeout=30, host="127.0.0.1"):
    h = {}
    if token:
        h["Authorization"] = "Bearer " + token
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/merge-patch+json" if method == "PATCH" else "application/json"
    if headers:
        h.update(headers)
    h = {k: v for k, v in h.items() if v is not None}
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        payload = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, payload)
    finally:
        conn.close()


class Capstan:
    """The real capstan binary, serving on a free port."""

    def __init__(self, database_url, env=None, name="capstan", args=None):
        self.database_url = database_url
        self.extra_env = env or {}
        self.args = args or []
        os.makedirs(LOG_DIR, exist_ok=True)
        self.log_path = os.path.join(LOG_DIR, "%s-%s-%s.log" % (os.path.basename(sys.argv[0]).replace(".py", ""), name, uuid.uuid4().hex[:6]))
        self.proc = None
        self.logf = None
        self.port = None
        self.data_dir = tempfile.mkdtemp(prefix="capstan-data-")

    def env(self):
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("CAPSTAN_") and k not in ("CAPSTAN_BIN", "CAPSTAN_SOURCE_DIR", "CAPSTAN_BUILD_DIR"):
                del e[k]
        e.update({
            "CAPSTAN_DATABASE_URL": self.database_url,
            "CAPSTAN_LISTEN": "127.0.0.1:0",
            "CAPSTAN_ADMIN_TOKEN": ADMIN_TOKEN,
            "CAPSTAN_LOG_FORMAT": "json",
            "CAPSTAN_LOG_LEVEL": "info",
            "CAPSTAN_DATA_DIR": self.data_dir,
            # tests poll quickly with one token; test_limits.py checks the rate limits
            "CAPSTAN_RATE_LIMIT": "0",
            "CAPSTAN_ANON_RATE_LIMIT": "0",
            "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=66",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=67",
        })
        e.update(self.extra_env)
        return e

    def start(self, wait=True, timeout=60):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([CAPSTAN_BIN, "serve"] + self.args, env=self.env(), stdout=self.logf, stderr=subprocess.STDOUT)
        if wait:
            self.wait_listening(timeout)
        return self

    def wait_listening(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("capstan exited with %d:\n%s" % (self.proc.returncode, self.log()[-3000:]))
            for line in self.log().splitlines():
                if '"listening on port' in line:
                    self.port = json.loads(line)["port"]
                    return
            time.sleep(0.05)
        raise RuntimeError("capstan did not start listening:\n" + self.log()[-3000:])

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_lines(self):
        out = []
        for line in self.log().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def request(self, method, path, body=None, **kw):
        return request(self.port, method, path, body, **kw)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if not self.proc or self.proc.poll() is not None:
            self._close_log()
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("capstan did not stop within %ds" % timeout)
        finally:
            self._close_log()
        return self.proc.returncode

    def _close_log(self):
        if self.logf:
            self.logf.close()
            self.logf = None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def run_capstan(args, database_url=None, env=None, timeout=120):
    """Runs a capstan subcommand to completion; returns the CompletedProcess."""
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("CAPSTAN_") and k not in ("CAPSTAN_BIN", "CAPSTAN_SOURCE_DIR", "CAPSTAN_BUILD_DIR"):
            del e[k]
    if database_url:
        e["CAPSTAN_DATABASE_URL"] = database_url
    e["CAPSTAN_LOG_FORMAT"] = "json"
    e["ASAN_OPTIONS"] = "detect_leaks=1:exitcode=66"
    if env:
        e.update(env)
    return subprocess.run([CAPSTAN_BIN] + args, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)


def wait_until(fn, timeout=30, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def assert_problem(r, status, detail_re=None):
    """Asserts r is an RFC 9457 problem with status, as API.md describes."""
    assert r.status == status, "want %d, got %r" % (status, r)
    assert r.header("content-type") == "application/problem+json", r.headers
    assert r.header("x-request-id"), r.headers
    p = r.json
    for k in ("type", "title", "status", "detail", "instance", "requestId"):
        assert k in p, "problem lacks %s: %r" % (k, p)
    assert p["status"] == status, p
    assert p["requestId"] == r.header("x-request-id"), p
    if detail_re:
        assert re.search(detail_re, p["detail"]), "detail %r does not match %r" % (p["detail"], detail_re)
    return p


# ---- a whole capstan set-up: database, fleet repository, server ----

def tenant_body(name, **kw):
    b = {"name": name, "displayName": "Team " + name, "owners": ["%s@example.com" % name],
         "quota": {"cpu": "16", "memory": "64Gi", "environments": 5}}
    b.update(kw)
    return b


class Fleet:
    """A capstan with its own database and a fleet repository: a local bare repository by
    default, or a repository on a GitServer (pass git_server)."""

    def __init__(self, pg, env=None, git_server=None, name="fleet", start=True):
        self.pg = pg
        self.db = pg.create_db()
        self.git_server = git_server
        self.repo_name = name
        self.tmp = tempfile.mkdtemp(prefix="capstan-fleet-")
        if git_server:
            git_server.create_bare(name)
            self.repo_url = git_server.url(name)
            creds = {"CAPSTAN_GIT_USERNAME": git_server.user, "CAPSTAN_GIT_PASSWORD": git_server.password}
        else:
            self.repo_url = os.path.join(self.tmp, "fleet.git")
            subprocess.run(["git", "init", "-q", "--bare", "-b", "main", self.repo_url], check=True)
            creds = {}
        self.env = {"CAPSTAN_FLEET_REPO": self.repo_url, "CAPSTAN_JOB_POLL": "500ms",
                    "CAPSTAN_JOB_BACKOFF": "100ms"}
        self.env.update(creds)
        self.env.update(env or {})
        self.apps = []
        self.app = self.add_app() if start else None

    def add_app(self, env=None, name=None):
        e = dict(self.env)
        e.update(env or {})
        app = Capstan(self.pg.url(self.db), env=e, name=name or "capstan%d" % len(self.apps))
        app.start()
        self.apps.append(app)
        return app

    def request(self, *a, **kw):
        return self.app.request(*a, **kw)

    def wait_job(self, job_id, states=("succeeded",), timeout=60):
        final = ("succeeded", "failed", "cancelled")

        def done():
            r = self.app.request("GET", "/api/v1/jobs/" + job_id)
            return r.json if r.status == 200 and r.json["state"] in final else None
        j = wait_until(done, timeout, 0.05, what="job %s to finish" % job_id)
        assert j["state"] in states, "job ended %s, wanted %s: %r" % (j["state"], states, j)
        return j

    def create_tenant(self, name, wait=True, **kw):
        r = self.request("POST", "/api/v1/tenants", tenant_body(name, **kw))
        assert r.status == 202, r
        if wait:
            self.wait_job(r.json["job"]["id"])
        return r

    def create_env(self, tenant, name, wait=True, **kw):
        body = {"name": name}
        body.update(kw)
        r = self.request("POST", "/api/v1/tenants/%s/environments" % tenant, body)
        assert r.status == 202, r
        if wait:
            self.wait_job(r.json["job"]["id"])
        return r

    def git(self, *args):
        gd = self.git_server.path(self.repo_name) if self.git_server else self.repo_url
        r = subprocess.run(["git", "--git-dir", gd] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return r.stdout if r.returncode == 0 else None

    def commits(self):
        """[(sha, message)] of main, newest first."""
        out = self.git("log", "--format=%H%x00%B%x01", "main")
        if not out:
            return []
        res = []
        for rec in out.split("\x01"):
            rec = rec.strip("\n")
            if rec:
                sha, _, msg = rec.partition("\x00")
                res.append((sha, msg))
        return res

    def job_trailers(self):
        """Every Capstan-Job trailer value in the history (with repeats)."""
        out = []
        for _, msg in self.commits():
            out += re.findall(r"^Capstan-Job: (\S+)$", msg, re.M)
        return out

    def show(self, path):
        return self.git("show", "main:" + path)

    def files(self):
        out = self.git("ls-tree", "-r", "--name-only", "main")
        return sorted(out.split()) if out else []

    def checkout(self, dest):
        subprocess.run(["git", "clone", "-q", "-b", "main", self.git_server.url(self.repo_name, with_credentials=True) if self.git_server else self.repo_url, dest],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return dest

    def close(self):
        codes = []
        for a in self.apps:
            codes.append(a.stop())
            a.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return codes


def validator():
    """Path of ../shared/tools/validate-manifests next to the checkout."""
    for cand in (os.path.join(SOURCE_DIR, "..", "shared", "tools", "validate-manifests"),
                 "/work/shared/tools/validate-manifests"):
        if os.path.exists(cand):
            return os.path.abspath(cand)
    raise RuntimeError("validate-manifests not found next to the checkout")


def validate_tree(path):
    r = subprocess.run(["/usr/bin/python3", validator(), "--kustomize", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return r.returncode, r.stdout


class SSE:
    """A server-sent events reader over one HTTP connection."""

    def __init__(self, port, path, token=ADMIN_TOKEN, last_event_id=None, timeout=30):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        h = {"Authorization": "Bearer " + token, "Accept": "text/event-stream"}
        if last_event_id is not None:
            h["Last-Event-ID"] = str(last_event_id)
        self.conn.request("GET", path, headers=h)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}

    def events(self):
        """Yields dicts {id, event, data} until the stream ends."""
        ev = {}
        while True:
            line = self.resp.readline()
            if not line:
                return
            line = line.decode().rstrip("\r\n")
            if line == "":
                if "event" in ev or "data" in ev:
                    if "data" in ev:
                        try:
                            ev["json"] = json.loads(ev["data"])
                        except ValueError:
                            pass
                    yield ev
                ev = {}
                continue
            if line.startswith(":"):
                continue
            k, _, v = line.partition(":")
            v = v[1:] if v.startswith(" ") else v
            if k == "data" and "data" in ev:
                ev["data"] += "\n" + v
            else:
                ev[k] = v

    def close(self):
        self.conn.close()
