"""A test double for the GitHub REST API v3 (api.github.com), standard library only.

What it stands in for: the HTTPS REST API of GitHub (or GitHub Enterprise Server under
/api/v3) as capstan's tenant platform repository provider (server/cloud/github.c) uses it, for
exactly three endpoints: get a repository, create a repository from a template, create a fork.

Documented behaviours it follows (docs.github.com: "REST API endpoints for repositories",
"REST API endpoints for forks", "Rate limits for the REST API", "Authenticating to the REST
API", "Getting started with the REST API", API version 2022-11-28):
  * GET /repos/{owner}/{repo} -> 200 with the full repository object (id, node_id, name,
    full_name, owner, private, visibility, html_url, url, clone_url, ssh_url, git_url, fork,
    default_branch, is_template, created_at..., and template_repository for repositories
    generated from a template, parent and source for forks), or 404
    {"message": "Not Found", "documentation_url": ..., "status": "404"}. Owner and name are
    case-insensitive.
  * POST /repos/{template_owner}/{template_repo}/generate with {"owner", "name" (required),
    "description", "private", "include_all_branches"} -> 201 Created with the new repository
    (and a Location header); 404 when the template does not exist; 422 when it is not a
    template repository or the body is invalid; 422 {"message": "Repository creation failed.",
    "errors": [{"resource": "Repository", "code": "custom", "field": "name", "message": "name
    already exists on this account"}]} when the owner already has a repository of that name.
  * POST /repos/{owner}/{repo}/forks with an optional {"organization", "name",
    "default_branch_only"} -> 202 Accepted with the fork's repository object (fork: true,
    parent, source); forking happens asynchronously, so the fork is visible to GET only after a
    configurable delay or number of GETs. Without "organization" the fork goes to the
    authenticated user; "organization" naming a user account answers 422. The name taken by
    another repository answers the 422 above. With single_fork_per_account set, an account that
    already holds a fork of the repository gets that existing fork back (202), whatever name was
    asked for (GitHub's behaviour for user accounts).
  * Authentication on EVERY request: "Authorization: Bearer <token>" (or "token <token>") with
    the current token, else 401 {"message": "Bad credentials"} (or "Requires authentication"
    when absent). A request without User-Agent is refused with 403. An unsupported
    X-GitHub-Api-Version answers 400; X-GitHub-Api-Version-Selected is sent back.
  * Primary rate limit: every answer to an authenticated request carries x-ratelimit-limit,
    -remaining, -reset (UTC epoch seconds), -used and -resource ("core"); each such request
    uses one; at 0 remaining the API answers 403 {"message": "API rate limit exceeded for user
    ID ...", "documentation_url": ...} with x-ratelimit-remaining: 0 until the reset time, when
    the window starts again. exhaust_rate_limit() empties the window.
  * Secondary rate limits (injected): 403 or 429 {"message": "You have exceeded a secondary
    rate limit..."} with retry-after (seconds), or without it.
  * Errors are application/json; charset=utf-8 with "message" and "documentation_url".

Simplifications (said so that no test relies on them): anonymous requests are refused (GitHub
would serve public repositories); no Git transport behind clone_url; repositories have no
content; no permissions model beyond the token (any account can be written); no pagination,
ETags, conditional requests or GraphQL; one token, one user.

Use from Python (same process, threads):
    api = GitHubApi().start()                 # https://127.0.0.1:PORT, api.ca_file, api.token
    api.add_account("acme")                   # an organization ("User" with type="User")
    api.add_repo("platform/blueprint", is_template=True)
    api.set_fork_delay(seconds=0.5, gets=3)   # a fork becomes visible after both are reached
    api.exhaust_rate_limit(reset_in=2)        # 403 + x-ratelimit-remaining 0 until the reset
    api.secondary_limit(count=1, retry_after=1, status=429)
    api.inject(status=502, method="GET", path=r"^/repos/", count=1)
    api.race_next_create()                    # the next create finds the name just taken
    api.get_requests()                        # the request log (method, path, status, body...)
    api.stop()
Use from another process: `python3 github_api.py --dir D` prints one JSON line {"port", "url",
"ca", "token", "controlToken"}; then POST https://127.0.0.1:<port>/_control/<method> with header
X-Control-Token and a JSON object of keyword arguments calls any method in CONTROL_METHODS and
answers {"result": ...}.
"""
import copy
import datetime
import http.server
import json
import os
import re
import secrets
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time

API_VERSIONS = {"2022-11-28", "2026-03-10"}
DOCS = "https://docs.github.com/rest"
MAX_BODY = 1024 * 1024

CONTROL_METHODS = {
    "add_account", "add_repo", "get_repo", "list_repos", "set_fork_delay", "set_single_fork_per_account",
    "exhaust_rate_limit", "set_rate_limit", "secondary_limit", "inject", "clear_faults", "race_next_create",
    "set_token", "get_requests", "clear_requests", "make_visible",
}


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_pki(d):
    """Makes ca.crt/ca.key and server.crt/server.key (127.0.0.1, localhost) in d with openssl."""
    def run(args):
        r = subprocess.run(["openssl"] + args, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj",
                                 "/CN=github-double-ca", "-addext", "basicConstraints=critical,CA:TRUE",
                                 "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                "keyUsage=critical,digitalSignature\n")
    run(["req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=api.github.test"])
    run(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial",
         str(int.from_bytes(os.urandom(8), "big")), "-days", "2", "-extfile", "server.ext", "-out", "server.crt"])
    return os.path.join(d, "ca.crt"), os.path.join(d, "server.crt"), os.path.join(d, "server.key")


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, handler, api):
        self.api = api
        http.server.HTTPServer.__init__(self, addr, handler)

    def process_request_thread(self, request, client_address):
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request.settimeout(10)
            tls = self.api.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.api.tls_failures.append(str(e))
            try:
                request.close()
            except OSError:
                pass
            return
        tls.settimeout(30)
        socketserver.ThreadingMixIn.process_request_thread(self, tls, client_address)

    def handle_error(self, request, client_address):
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "github-api-double"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.server.api._dispatch(self, "GET")

    def do_POST(self):
        self.server.api._dispatch(self, "POST")

    def do_PATCH(self):
        self.server.api._dispatch(self, "PATCH")

    def do_PUT(self):
        self.server.api._dispatch(self, "PUT")

    def do_DELETE(self):
        self.server.api._dispatch(self, "DELETE")


class _Answer(Exception):
    def __init__(self, status, body, headers=None):
        Exception.__init__(self, "%d" % status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def error(status, message, doc=DOCS, **extra):
    body = {"message": message, "documentation_url": doc, "status": str(status)}
    body.update(extra)
    return _Answer(status, body)


def name_taken():
    return _Answer(422, {"message": "Repository creation failed.",
                         "errors": [{"resource": "Repository", "code": "custom", "field": "name",
                                     "message": "name already exists on this account"}],
                         "documentation_url": "https://docs.github.com/rest/repos/repos", "status": "422"})


_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_OWNER = re.compile(r"^[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}$")


class GitHubApi:
    """A GitHub REST API double on 127.0.0.1 over HTTPS (see the module's comment)."""

    def __init__(self, directory=None, port=0, token=None, user="capstan-bot", git_host="github.test",
                 control_token=None, rate_limit=5000):
        self.own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="github-double-")
        os.makedirs(self.dir, exist_ok=True)
        self.ca_file, cert, key = make_pki(self.dir)
        self.token = token or ("ghp_" + secrets.token_hex(18))
        self.user = user
        self.git_host = git_host
        self.control_token = control_token
        self.lock = threading.RLock()
        self.accounts = {}
        self.repos = {}      # lower full name -> stored repository (dict)
        self.pending = {}    # lower full name -> {"ready_at": t, "gets_left": n}
        self.requests = []
        self.faults = []
        self.tls_failures = []
        self.next_id = 1000
        self.fork_delay = 0.0
        self.fork_gets = 0
        self.single_fork = False
        self.races = 0
        self.rate = {"limit": rate_limit, "remaining": rate_limit, "reset": int(time.time()) + 3600, "used": 0}
        self.add_account(user, type="User")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        self.ssl_context = ctx
        self.httpd = _Server(("127.0.0.1", port), _Handler, self)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.thread = None

    # -- life -------------------------------------------------------------------------------

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    # -- control ----------------------------------------------------------------------------

    def add_account(self, login, type="Organization"):
        with self.lock:
            acc = {"login": login, "id": self._id(), "type": type}
            self.accounts.setdefault(login.lower(), acc)
            return self.accounts[login.lower()]["login"]

    def add_repo(self, full_name, private=False, is_template=False, template_of=None, fork_of=None,
                 default_branch="main", description=None):
        """Adds a repository as if made earlier; template_of / fork_of name its origin."""
        owner, name = full_name.split("/")
        with self.lock:
            self.add_account(owner, type="Organization" if owner.lower() != self.user.lower() else "User")
            origin = None
            if template_of or fork_of:
                origin = self.repos.get((template_of or fork_of).lower())
                if origin is None:
                    raise ValueError("no repository %s" % (template_of or fork_of))
            repo = self._new_repo(owner, name, private, description, default_branch, is_template)
            if template_of:
                repo["template_repository"] = origin["full_name"]
            if fork_of:
                repo["fork"] = True
                repo["parent"] = origin["full_name"]
                repo["source"] = origin.get("source") or origin["full_name"]
            self.repos[full_name.lower()] = repo
            return self._render(repo)

    def get_repo(self, full_name):
        with self.lock:
            r = self.repos.get(full_name.lower())
            return self._render(r) if r else None

    def list_repos(self):
        with self.lock:
            return sorted(r["full_name"] for r in self.repos.values())

    def make_visible(self, full_name=None):
        """Ends the wait of pending forks (all, or one)."""
        with self.lock:
            for k in list(self.pending):
                if full_name is None or k == full_name.lower():
                    del self.pending[k]

    def set_fork_delay(self, seconds=0.0, gets=0):
        """New forks are visible to GET only after `seconds` and after `gets` GETs of them."""
        with self.lock:
            self.fork_delay = float(seconds)
            self.fork_gets = int(gets)

    def set_single_fork_per_account(self, flag=True):
        with self.lock:
            self.single_fork = bool(flag)

    def exhaust_rate_limit(self, reset_in=60):
        """The primary window is used up until now + reset_in seconds."""
        with self.lock:
            self.rate["remaining"] = 0
            self.rate["used"] = self.rate["limit"]
            self.rate["reset"] = int(time.time() + reset_in + 0.999)
            return self.rate["reset"]

    def set_rate_limit(self, limit=5000, remaining=None, reset_in=3600):
        with self.lock:
            self.rate = {"limit": limit, "remaining": limit if remaining is None else remaining,
                         "reset": int(time.time() + reset_in), "used": 0 if remaining is None else limit - remaining}

    def secondary_limit(self, count=1, retry_after=None, status=403, method=None, path=None):
        """The next `count` matching requests hit a secondary rate limit (403 or 429), with a
        retry-after header when retry_after is not None."""
        self.inject(status=status, count=count, method=method, path=path, secondary=True,
                    retry_after=retry_after)

    def inject(self, status, method=None, path=None, count=1, body=None, secondary=False, retry_after=None):
        """The next `count` requests matching method and path (a regular expression) get status."""
        with self.lock:
            self.faults.append({"status": status, "method": method, "path": path, "count": count,
                                "body": body, "secondary": secondary, "retry_after": retry_after})

    def clear_faults(self):
        with self.lock:
            self.faults = []
            self.races = 0

    def race_next_create(self, count=1):
        """The next `count` create requests (generate or fork) find that another client made the
        same repository from the same origin just before, and answer 422 name already exists."""
        with self.lock:
            self.races += count

    def set_token(self, token):
        with self.lock:
            self.token = token

    def get_requests(self, since=0):
        with self.lock:
            return copy.deepcopy(self.requests[since:])

    def clear_requests(self):
        with self.lock:
            self.requests = []

    # -- repositories -----------------------------------------------------------------------

    def _id(self):
        self.next_id += 1
        return self.next_id

    def _new_repo(self, owner, name, private, description, default_branch, is_template=False):
        acc = self.accounts[owner.lower()]
        return {"id": self._id(), "name": name, "owner": acc["login"], "full_name": "%s/%s" % (acc["login"], name),
                "private": bool(private), "description": description, "default_branch": default_branch,
                "is_template": bool(is_template), "fork": False, "template_repository": None, "parent": None,
                "source": None, "created_at": now_iso()}

    def _render(self, r, nested=False):
        acc = self.accounts[r["owner"].lower()]
        api = "https://api.%s/repos/%s" % (self.git_host, r["full_name"])
        out = {
            "id": r["id"], "node_id": "R_%d" % r["id"], "name": r["name"], "full_name": r["full_name"],
            "private": r["private"], "visibility": "private" if r["private"] else "public",
            "owner": {"login": acc["login"], "id": acc["id"], "node_id": "O_%d" % acc["id"], "type": acc["type"],
                      "site_admin": False, "url": "https://api.%s/users/%s" % (self.git_host, acc["login"]),
                      "html_url": "https://%s/%s" % (self.git_host, acc["login"])},
            "html_url": "https://%s/%s" % (self.git_host, r["full_name"]),
            "description": r["description"], "fork": r["fork"], "url": api,
            "forks_url": api + "/forks", "git_url": "git://%s/%s.git" % (self.git_host, r["full_name"]),
            "ssh_url": "git@%s:%s.git" % (self.git_host, r["full_name"]),
            "clone_url": "https://%s/%s.git" % (self.git_host, r["full_name"]),
            "svn_url": "https://%s/%s" % (self.git_host, r["full_name"]), "homepage": None, "size": 0,
            "default_branch": r["default_branch"], "is_template": r["is_template"], "archived": False,
            "disabled": False, "has_issues": True, "forks_count": 0, "stargazers_count": 0,
            "watchers_count": 0, "open_issues_count": 0, "topics": [],
            "created_at": r["created_at"], "updated_at": r["created_at"], "pushed_at": r["created_at"],
            "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
        }
        if nested:
            return out
        for key in ("template_repository", "parent", "source"):
            origin = self.repos.get(r[key].lower()) if r[key] else None
            if origin is not None:
                out[key] = self._render(origin, nested=True)
            elif key == "template_repository":
                out[key] = None
        return out

    def _visible(self, key, count_get):
        p = self.pending.get(key)
        if p is None:
            return key in self.repos
        if count_get and p["gets_left"] > 0:
            p["gets_left"] -= 1
        if time.time() >= p["ready_at"] and p["gets_left"] <= 0:
            del self.pending[key]
            return True
        return False

    # -- HTTP -------------------------------------------------------------------------------

    def _dispatch(self, h, method):
        path = h.path.split("?", 1)[0]
        body = b""
        length = h.headers.get("Content-Length")
        try:
            n = int(length) if length else 0
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            return self._send(h, 413, {"message": "Payload too large"}, {})
        if n:
            body = h.rfile.read(n)
        if path.startswith("/_control/"):
            return self._control(h, path[len("/_control/"):], body)
        entry = {"method": method, "path": path, "time": time.time(),
                 "accept": h.headers.get("Accept"), "apiVersion": h.headers.get("X-GitHub-Api-Version"),
                 "userAgent": h.headers.get("User-Agent"), "contentType": h.headers.get("Content-Type"),
                 "body": None, "auth": "missing"}
        try:
            entry["body"] = json.loads(body.decode()) if body else None
        except (ValueError, UnicodeDecodeError):
            entry["body"] = body.decode("utf-8", "replace")
        headers = {}
        try:
            with self.lock:
                status, out, headers = self._serve(h, method, path, entry, body, headers)
        except _Answer as a:
            status, out = a.status, a.body
            headers.update(a.headers)
        entry["status"] = status
        with self.lock:
            self.requests.append(entry)
        self._send(h, status, out, headers)

    def _send(self, h, status, body, headers):
        if isinstance(body, (dict, list)):
            data = json.dumps(body, indent=2).encode()
            ctype = "application/json; charset=utf-8"
        else:
            data = (body or "").encode()
            ctype = "text/plain; charset=utf-8"
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.send_header("X-GitHub-Media-Type", "github.v3; format=json")
        h.send_header("X-GitHub-Request-Id", "%08X" % secrets.randbits(32))
        for k, v in headers.items():
            h.send_header(k, str(v))
        h.end_headers()
        h.wfile.write(data)

    def _rate_headers(self):
        r = self.rate
        return {"x-ratelimit-limit": r["limit"], "x-ratelimit-remaining": r["remaining"],
                "x-ratelimit-reset": r["reset"], "x-ratelimit-used": r["used"], "x-ratelimit-resource": "core"}

    def _serve(self, h, method, path, entry, raw, headers):
        if not h.headers.get("User-Agent"):
            raise _Answer(403, "Request forbidden by administrative rules. Please make sure your request has a "
                               "User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api"
                               "#user-agent-required). Check https://developer.github.com for other possible causes.")
        auth = h.headers.get("Authorization") or ""
        scheme, _, cred = auth.partition(" ")
        if not auth:
            raise error(401, "Requires authentication")
        if scheme.lower() not in ("bearer", "token") or not secrets.compare_digest(cred.strip(), self.token):
            entry["auth"] = "bad"
            raise error(401, "Bad credentials")
        entry["auth"] = "ok"
        version = h.headers.get("X-GitHub-Api-Version")
        if version is not None and version not in API_VERSIONS:
            raise error(400, "Unsupported 'X-GitHub-Api-Version' header: %s. Supported versions are: %s" % (
                version, ", ".join(sorted(API_VERSIONS))), "https://docs.github.com/rest/overview/api-versions")
        headers["X-GitHub-Api-Version-Selected"] = version or "2022-11-28"
        # primary rate limit: a new window at the reset time; each authenticated request uses one
        now = time.time()
        if now >= self.rate["reset"]:
            self.rate.update(remaining=self.rate["limit"], used=0, reset=int(now) + 3600)
        if self.rate["remaining"] <= 0:
            headers.update(self._rate_headers())
            raise error(403, "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, "
                             "please include the request ID.",
                        "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api")
        self.rate["remaining"] -= 1
        self.rate["used"] += 1
        headers.update(self._rate_headers())
        for f in self.faults:
            if f["count"] <= 0 or (f["method"] and f["method"] != method) or (f["path"] and not re.search(f["path"], path)):
                continue
            f["count"] -= 1
            if f["secondary"]:
                if f["retry_after"] is not None:
                    headers["retry-after"] = str(f["retry_after"])
                raise error(f["status"], "You have exceeded a secondary rate limit. Please wait a few minutes "
                                         "before you try again. If you reach out to GitHub Support for help, please "
                                         "include the request ID.",
                            "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                            "#about-secondary-rate-limits")
            raise _Answer(f["status"], f["body"] if f["body"] is not None else
                          {"message": "Server Error" if f["status"] >= 500 else "Injected", "status": str(f["status"])})

        m = re.match(r"^/repos/([^/]+)/([^/]+)(/generate|/forks)?/?$", path)
        if not m:
            raise error(404, "Not Found")
        owner, name, action = m.group(1), m.group(2), m.group(3)
        key = ("%s/%s" % (owner, name)).lower()
        if action is None and method == "GET":
            if key not in self.repos or not self._visible(key, True):
                raise error(404, "Not Found", "https://docs.github.com/rest/repos/repos#get-a-repository")
            return 200, self._render(self.repos[key]), headers
        if action == "/generate" and method == "POST":
            return self._generate(key, entry, raw, headers)
        if action == "/forks" and method == "POST":
            return self._fork(key, entry, raw, headers)
        raise error(404, "Not Found")

    def _json_body(self, raw, required):
        if not raw:
            if required:
                raise error(400, "Problems parsing JSON")
            return {}
        try:
            b = json.loads(raw.decode())
        except (ValueError, UnicodeDecodeError):
            raise error(400, "Problems parsing JSON")
        if not isinstance(b, dict):
            raise error(400, "Problems parsing JSON")
        return b

    def _taken(self, owner, name, origin_key, kind):
        """Checks the name; when a race is armed, makes the repository as another client would."""
        key = ("%s/%s" % (owner, name)).lower()
        if self.races > 0 and key not in self.repos:
            self.races -= 1
            if kind == "generate":
                self.add_repo("%s/%s" % (owner, name), private=True, template_of=origin_key)
            else:
                self.add_repo("%s/%s" % (owner, name), fork_of=origin_key)
        if key in self.repos:
            raise name_taken()

    def _generate(self, tkey, entry, raw, headers):
        tmpl = self.repos.get(tkey)
        if tmpl is None or not self._visible(tkey, False):
            raise error(404, "Not Found", "https://docs.github.com/rest/repos/repos#create-a-repository-using-a-template")
        b = self._json_body(raw, True)
        name = b.get("name")
        owner = b.get("owner", self.user)
        if not isinstance(name, str) or not name:
            raise error(422, "Invalid request.\n\n\"name\" wasn't supplied.")
        if not isinstance(owner, str) or not _OWNER.match(owner) or not _NAME.match(name) or name in (".", ".."):
            raise error(422, "Invalid request.\n\nInvalid owner or name.")
        for k, t in (("private", bool), ("include_all_branches", bool), ("description", str)):
            if k in b and b[k] is not None and not isinstance(b[k], t):
                raise error(422, "Invalid request.\n\nFor '%s', %s is not a %s." % (k, json.dumps(b[k]), t.__name__))
        if owner.lower() not in self.accounts:
            raise error(422, "Repository creation failed.", errors=[
                {"resource": "Repository", "code": "custom", "field": "owner", "message": "owner does not exist"}])
        if not tmpl["is_template"]:
            raise error(422, "Repository %s is not a template repository." % tmpl["full_name"])
        self._taken(owner, name, tkey, "generate")
        repo = self._new_repo(owner, name, b.get("private", False), b.get("description"), tmpl["default_branch"])
        repo["template_repository"] = tmpl["full_name"]
        self.repos[repo["full_name"].lower()] = repo
        headers["Location"] = "https://api.%s/repos/%s" % (self.git_host, repo["full_name"])
        return 201, self._render(repo), headers

    def _fork(self, skey, entry, raw, headers):
        src = self.repos.get(skey)
        if src is None or not self._visible(skey, False):
            raise error(404, "Not Found", "https://docs.github.com/rest/repos/forks#create-a-fork")
        b = self._json_body(raw, False)
        org = b.get("organization")
        name = b.get("name", src["name"])
        if "default_branch_only" in b and not isinstance(b["default_branch_only"], bool):
            raise error(422, "Invalid request.\n\nFor 'default_branch_only', %s is not a boolean." %
                        json.dumps(b["default_branch_only"]))
        if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
            raise error(422, "Invalid request.\n\nInvalid name.")
        if org is not None:
            acc = self.accounts.get(str(org).lower())
            if acc is None:
                raise error(404, "Not Found", "https://docs.github.com/rest/repos/forks#create-a-fork")
            if acc["type"] != "Organization":
                raise error(422, "'%s' is the login for a user account. You must pass the login for an "
                                 "organization account." % acc["login"])
            owner = acc["login"]
        else:
            owner = self.user
        root = src["source"] or src["full_name"]
        if self.single_fork:
            for r in self.repos.values():
                if r["owner"].lower() == owner.lower() and r["fork"] and (r["source"] or "").lower() == root.lower():
                    return 202, self._render(r), headers
        self._taken(owner, name, skey, "fork")
        repo = self._new_repo(owner, name, src["private"], src["description"], src["default_branch"])
        repo["fork"] = True
        repo["parent"] = src["full_name"]
        repo["source"] = root
        k = repo["full_name"].lower()
        self.repos[k] = repo
        if self.fork_delay > 0 or self.fork_gets > 0:
            self.pending[k] = {"ready_at": time.time() + self.fork_delay, "gets_left": self.fork_gets}
        return 202, self._render(repo), headers

    def _control(self, h, method, body):
        if not self.control_token or h.headers.get("X-Control-Token") != self.control_token:
            return self._send(h, 403, {"error": "bad control token"}, {})
        if method not in CONTROL_METHODS:
            return self._send(h, 404, {"error": "no control method %s" % method}, {})
        try:
            kwargs = json.loads(body.decode()) if body else {}
            result = getattr(self, method)(**kwargs)
            self._send(h, 200, {"result": result}, {})
        except Exception as e:  # the caller sees what went wrong
            self._send(h, 400, {"error": "%s: %s" % (type(e).__name__, e)}, {})


def main(argv):
    import argparse
    import signal
    ap = argparse.ArgumentParser(description="GitHub REST API test double")
    ap.add_argument("--dir", required=True, help="folder for the test CA and server certificate")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default=None)
    args = ap.parse_args(argv)
    api = GitHubApi(directory=args.dir, port=args.port, token=args.token,
                    control_token="ctl-" + secrets.token_hex(16)).start()
    print(json.dumps({"port": api.port, "url": api.url, "ca": api.ca_file, "token": api.token,
                      "controlToken": api.control_token}), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    done.wait()
    api.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
