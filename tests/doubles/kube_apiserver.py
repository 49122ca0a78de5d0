"""A test double for kube-apiserver (the Kubernetes API server), standard library only.

What it stands in for: the HTTPS REST API of a Kubernetes control plane as a client such as
capstan's server/kube sees it, for any resource (core Secrets and Namespaces, Cluster API
Clusters, Flux Kustomizations and GitRepositories, or anything else), without a cluster.

Documented behaviours it follows (Kubernetes "API Concepts", "Server-Side Apply",
"Authenticating" and the Status type of apimachinery):
  * URL paths: /api/v1/[namespaces/<ns>/]<resource>[/<name>[/status]] and
    /apis/<group>/<version>/[namespaces/<ns>/]<resource>[/<name>[/status]]; verbs get, list,
    watch (GET with ?watch=1|true), create (POST), update (PUT), patch (PATCH), delete,
    deletecollection; JSON bodies (application/json); objects carry apiVersion, kind and
    metadata (uid, creationTimestamp, resourceVersion, generation, managedFields).
  * resourceVersion on every object and list; one counter for the whole store, like etcd.
  * LIST: labelSelector (=, ==, !=, in, notin, exists, !exists), fieldSelector
    (metadata.name, metadata.namespace and other dotted paths with =, ==, !=), limit and
    continue; an expired continue token answers 410 Expired.
  * WATCH: one JSON object per line, {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR,
    "object": ...}; without resourceVersion (or "0") the current objects come first as ADDED;
    BOOKMARK events (only metadata.resourceVersion) when allowWatchBookmarks=true; objects
    leaving or entering a label selector come as DELETED or ADDED; timeoutSeconds ends the
    stream; a resourceVersion older than the kept history answers an ERROR event holding a
    Status with code 410 reason Expired (or, with gone_mode="http", an HTTP 410).
  * Server-side apply: PATCH with Content-Type application/apply-patch+yaml (a JSON body, which
    is YAML), fieldManager required (400), force=true|false; creates or updates; tracks which
    manager owns which field; a field owned by another manager with a different value gives
    409 Conflict with FieldManagerConflict causes unless force=true; fields a manager stops
    applying are removed. Merge patch (application/merge-patch+json, RFC 7386; the strategic
    merge patch type is treated the same way). Other patch types answer 415.
  * Status bodies for errors: {"kind":"Status","apiVersion":"v1","metadata":{},
    "status":"Failure","message":...,"reason":...,"details":{...},"code":...}; 404 NotFound,
    409 AlreadyExists / Conflict, 410 Expired, 401 Unauthorized, 403 Forbidden,
    415 UnsupportedMediaType, 422 Invalid, 429 TooManyRequests with Retry-After and
    details.retryAfterSeconds, 500 InternalError.
  * Authentication on every request: a bearer token (Authorization: Bearer) from the accepted
    set, or a client certificate signed by the test CA (user = CN, groups = O); else 401.
  * DELETE with propagationPolicy (Foreground, Background, Orphan; others 400); an object
    with finalizers gets a deletionTimestamp and stays until its finalizers are removed.
  * Secrets: stringData is folded into data (base64) on write.
  * Resources with a status subresource (Clusters, Kustomizations, GitRepositories... see
    KNOWN) ignore status on writes to the main resource; /status writes change only status.

Simplifications (said so that no test relies on them): one version per group/resource is
stored as written (no conversion); lists are served from the current state (continue tokens
do not give a snapshot); no admission, defaulting, schema validation, garbage collection of
dependents or ownerReferences; the apply merge treats lists as atomic; JSON bodies only.

TLS: make_pki() makes a test CA, a server certificate for 127.0.0.1 and localhost, a client
certificate (CN=capstan-test, O=system:masters) and a second, unrelated CA, with the
`openssl` command.

Use from Python (in the same process, threads):
    srv = KubeApiServer().start()            # makes its PKI in a temporary folder
    path = srv.kubeconfig(auth="token")      # or auth="cert", auth="tokenFile", ca="wrong"
    srv.put({...})                           # seed (create or replace) an object
    srv.set_status("cluster.x-k8s.io/v1beta1", "clusters", "ns", "name", {"phase": ...})
    srv.rotate_token()                       # new accepted token (token files rewritten)
    srv.inject("status", code=429, retry_after=1, method="GET", path=r"/secrets/")
    srv.inject("drop", ...) / srv.inject("hang", ...) / srv.inject("watch_drop", after=2)
    srv.inject("gone", ...)                  # the next matching watch gets 410
    srv.compact()                            # older resourceVersions now give 410
    srv.requests                             # the request log (method, path, query, user...)
    srv.stop()
Use from another process: `python3 kube_apiserver.py --dir D` writes the PKI and
kubeconfigs into D and prints one JSON line {"port", "url", "dir", "token", "controlToken",
"kubeconfig": {...}}; then POST https://127.0.0.1:<port>/_control/<method> with header
X-Control-Token and a JSON object of keyword arguments calls any method in CONTROL_METHODS
and answers {"result": ...}.
"""
import base64
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
import urllib.parse
import uuid

# (group, resource) -> (kind, namespaced, has status subresource)
KNOWN = {
    ("", "namespaces"): ("Namespace", False, True),
    ("", "secrets"): ("Secret", True, False),
    ("", "configmaps"): ("ConfigMap", True, False),
    ("", "serviceaccounts"): ("ServiceAccount", True, False),
    ("", "pods"): ("Pod", True, True),
    ("", "services"): ("Service", True, True),
    ("apps", "deployments"): ("Deployment", True, True),
    ("cluster.x-k8s.io", "clusters"): ("Cluster", True, True),
    ("cluster.x-k8s.io", "machines"): ("Machine", True, True),
    ("kustomize.toolkit.fluxcd.io", "kustomizations"): ("Kustomization", True, True),
    ("source.toolkit.fluxcd.io", "gitrepositories"): ("GitRepository", True, True),
    ("infrastructure.cluster.x-k8s.io", "vclusters"): ("VCluster", True, True),
    ("controlplane.cluster.x-k8s.io", "vclustercontrolplanes"): ("VClusterControlPlane", True, True),
}

CONTROL_METHODS = {
    "put", "get", "delete_object", "set_status", "patch_object", "remove_finalizers",
    "list_objects", "rotate_token", "set_tokens", "inject", "clear_faults", "release_hangs",
    "compact", "drop_watches", "get_requests", "clear_requests", "register_resource", "forbid",
    "clear_forbidden", "set_options", "current_rv", "request",
}

MAX_BODY = 3 * 1024 * 1024


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_openssl(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr))


def make_pki(d, hosts=("127.0.0.1", "localhost"), client_cn="capstan-test", client_org="system:masters"):
    """Makes ca.crt/ca.key, server.crt/server.key, client.crt/client.key and wrong-ca.crt in d
    (EC P-256, valid 2 days). Returns a dict of the paths."""
    os.makedirs(d, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "wrong-ca"):
        run_openssl(["req", "-x509"] + ec + ["-keyout", ca + ".key", "-out", ca + ".crt", "-days", "2",
                     "-subj", "/CN=capstan-test-%s" % ca, "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    sans = ",".join(("IP:" if re.match(r"^[0-9.]+$|:", h) else "DNS:") + h for h in hosts)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n" % sans)
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n")
    for name, subj in (("server", "/CN=kube-apiserver"), ("client", "/O=%s/CN=%s" % (client_org, client_cn))):
        run_openssl(["req"] + ec + ["-keyout", name + ".key", "-out", name + ".csr", "-subj", subj], d)
        run_openssl(["x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                     "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2",
                     "-extfile", name + ".ext", "-out", name + ".crt"], d)
    return {k: os.path.join(d, k.replace("_", ".").replace("wrong.ca", "wrong-ca")) for k in
            ("ca_crt", "ca_key", "server_crt", "server_key", "client_crt", "client_key", "wrong-ca_crt")}


def status_body(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        Exception.__init__(self, message)
        self.code = code
        self.body = status_body(code, reason, message, details)
        self.headers = headers or {}


def kind_for(group, resource):
    k = KNOWN.get((group, resource))
    if k:
        return k[0]
    base = resource[:-3] + "y" if resource.endswith("ies") else resource[:-1] if resource.endswith("s") else resource
    return base[:1].upper() + base[1:]


def group_of(api_version):
    return api_version.split("/")[0] if "/" in api_version else ""


def resource_for_kind(group, kind):
    for (g, r), v in KNOWN.items():
        if g == group and v[0] == kind:
            return r
    low = kind.lower()
    if low.endswith("y"):
        return low[:-1] + "ies"
    if low.endswith("s"):
        return low + "es"
    return low + "s"


# ---- selectors --------------------------------------------------------------------------

_KEY = r"[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?"


def split_terms(s):
    terms, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t.strip() for t in terms if t.strip()]


def parse_label_selector(s):
    reqs = []
    for t in split_terms(s or ""):
        m = re.match(r"^(!)?\s*(%s)$" % _KEY, t)
        if m:
            reqs.append((m.group(2), "!exists" if m.group(1) else "exists", None))
            continue
        m = re.match(r"^(%s)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)$" % _KEY, t)
        if m:
            reqs.append((m.group(1), "!=" if m.group(3) == "!=" else "=", m.group(4)))
            continue
        m = re.match(r"^(%s)\s+(in|notin)\s*\(([^()]*)\)$" % _KEY, t)
        if m:
            vals = set(v.strip() for v in m.group(4).split(",") if v.strip())
            reqs.append((m.group(1), m.group(3), vals))
            continue
        raise ApiError(400, "BadRequest", "unable to parse requirement: found '%s'" % t)
    return reqs


def labels_match(reqs, labels):
    labels = labels or {}
    for key, op, val in reqs:
        have = key in labels
        v = labels.get(key)
        if op == "exists" and not have:
            return False
        if op == "!exists" and have:
            return False
        if op == "=" and v != val:
            return False
        if op == "!=" and v == val:
            return False
        if op == "in" and v not in val:
            return False
        if op == "notin" and have and v in val:
            return False
    return True


def parse_field_selector(s):
    reqs = []
    for t in split_terms(s or ""):
        m = re.match(r"^([A-Za-z0-9._]+)\s*(==|=|!=)\s*(.*)$", t)
        if not m:
            raise ApiError(400, "BadRequest", "invalid selector: '%s'; can't understand '%s'" % (s, t))
        reqs.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return reqs


def fields_match(reqs, obj):
    for path, eq, val in reqs:
        cur = obj
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        have = "" if cur is None else (str(cur).lower() if isinstance(cur, bool) else str(cur))
        if (have == val) != eq:
            return False
    return True


# ---- merge and field ownership ----------------------------------------------------------

def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


SYSTEM_META = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
               "managedFields", "deletionTimestamp", "selfLink"}


def leaf_paths(obj, prefix=()):
    """Field paths an applied configuration sets: map members recursively, lists atomic."""
    out = set()
    for k, v in obj.items():
        if not prefix and k in ("apiVersion", "kind"):
            continue
        if prefix == ("metadata",) and k in SYSTEM_META:
            continue
        p = prefix + (k,)
        if isinstance(v, dict) and v:
            out |= leaf_paths(v, p)
        else:
            out.add(p)
    return out


def get_path(obj, path):
    cur = obj
    for k in path:
        if not isinstance(cur, dict) or k not in cur:
            return (False, None)
        cur = cur[k]
    return (True, cur)


def remove_path(obj, path):
    cur = obj
    parents = []
    for k in path[:-1]:
        if not isinstance(cur, dict) or k not in cur:
            return
        parents.append((cur, k))
        cur = cur[k]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)
    for parent, k in reversed(parents):  # drop maps left empty
        if isinstance(parent[k], dict) and not parent[k]:
            del parent[k]
        else:
            break


def overlaps(a, b):
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def fields_v1(paths):
    root = {}
    for p in sorted(paths):
        cur = root
        for k in p:
            cur = cur.setdefault("f:" + k, {})
    return root


# ---- the store ----------------------------------------------------------------------------

class Store:
    def __init__(self, history_limit=None):
        self.cond = threading.Condition()
        self.rv = 1
        self.objects = {}      # (group, resource, ns, name) -> object
        self.owners = {}       # key -> {manager: {"op":..., "apiVersion":..., "time":..., "fields": set}}
        self.events = []       # (rv, type, group, resource, ns, obj, prev)
        self.compacted = 0     # events with rv <= compacted are gone
        self.history_limit = history_limit
        self.extra = {}        # (group, resource) -> (kind, namespaced, status_sub)

    def info(self, group, resource):
        return self.extra.get((group, resource)) or KNOWN.get((group, resource))

    def has_status_sub(self, group, resource):
        i = self.info(group, resource)
        return bool(i and i[2])

    def next_rv(self):
        self.rv += 1
        return self.rv

    def emit(self, etype, key, obj, prev=None):
        group, resource, ns, _ = key
        self.events.append((int(obj["metadata"]["resourceVersion"]), etype, group, resource, ns,
                            copy.deepcopy(obj), copy.deepcopy(prev) if prev is not None else None))
        if self.history_limit is not None and len(self.events) > self.history_limit:
            drop = len(self.events) - self.history_limit
            self.compacted = self.events[drop - 1][0]
            del self.events[:drop]
        self.cond.notify_all()

    def render_managed(self, key, obj):
        owners = self.owners.get(key) or {}
        mf = []
        for m, e in sorted(owners.items()):
            if e["fields"]:
                mf.append({"manager": m, "operation": e["op"], "apiVersion": e["apiVersion"],
                           "time": e["time"], "fieldsType": "FieldsV1", "fieldsV1": fields_v1(e["fields"])})
        if mf:
            obj["metadata"]["managedFields"] = mf
        else:
            obj["metadata"].pop("managedFields", None)

    def write(self, key, new, prev, etype=None):
        """Stores new (already merged) for key with a new resourceVersion and emits its event."""
        meta = new.setdefault("metadata", {})
        group, resource, ns, name = key
        meta["name"] = name
        if ns:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if new.get("kind") == "Secret" and isinstance(new.get("stringData"), dict):
            data = new.setdefault("data", {})
            for k, v in new.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        if prev is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
        else:
            for k in ("uid", "creationTimestamp", "deletionTimestamp"):
                if k in prev["metadata"]:
                    meta[k] = prev["metadata"][k]
            strip = lambda o: {k: v for k, v in o.items() if k not in ("metadata", "status")}
            gen = prev["metadata"].get("generation", 1)
            meta["generation"] = gen + 1 if strip(new) != strip(prev) else gen
        meta.pop("managedFields", None)
        meta["resourceVersion"] = str(self.next_rv())
        self.render_managed(key, new)
        # An object being deleted goes once its last finalizer is removed.
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.objects.pop(key, None)
            self.owners.pop(key, None)
            self.emit("DELETED", key, new, prev)
            return new
        self.objects[key] = new
        self.emit(etype or ("ADDED" if prev is None else "MODIFIED"), key, new, prev)
        return new

    def delete(self, key):
        obj = self.objects.get(key)
        if obj is None:
            return None
        if obj["metadata"].get("finalizers"):
            if obj["metadata"].get("deletionTimestamp"):
                return obj
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            return self.write(key, new, obj)
        del self.objects[key]
        self.owners.pop(key, None)
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self.next_rv())
        self.emit("DELETED", key, gone, obj)
        return gone


# ---- HTTP ---------------------------------------------------------------------------------

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
            self.api._note_tls_failure(str(e))
            try:
                request.close()
            except OSError:
                pass
            return
        tls.settimeout(None)
        socketserver.ThreadingMixIn.process_request_thread(self, tls, client_address)

    def handle_error(self, request, client_address):
        pass  # broken connections are part of the tests


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-double"
    timeout = 60

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.server.api._dispatch(self, "GET")

    def do_POST(self):
        self.server.api._dispatch(self, "POST")

    def do_PUT(self):
        self.server.api._dispatch(self, "PUT")

    def do_PATCH(self):
        self.server.api._dispatch(self, "PATCH")

    def do_DELETE(self):
        self.server.api._dispatch(self, "DELETE")

    def send_json(self, code, body, headers=None):
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def abort(self):
        """Drops the connection without an answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class KubeApiServer:
    """A kube-apiserver double on 127.0.0.1 (see the module's comment)."""

    def __init__(self, directory=None, port=0, token=None, bookmark_interval=1.0, history_limit=None,
                 gone_mode="event", watch_max_seconds=300, control_token=None):
        self.own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="kube-double-")
        self.pki = make_pki(self.dir)
        self.store = Store(history_limit)
        self.tokens = {}  # token -> user
        self.token = token or ("tok-" + secrets.token_hex(16))
        self.tokens[self.token] = "capstan-sa"
        self.token_files = []  # files rewritten by rotate_token
        self.bookmark_interval = bookmark_interval
        self.gone_mode = gone_mode
        self.watch_max_seconds = watch_max_seconds
        self.control_token = control_token
        self.faults = []
        self.forbidden = []
        self.requests = []
        self.tls_failures = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.stopping = threading.Event()
        self.watch_gen = 0  # drop_watches() bumps it
        self.active_watches = 0
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.pki["server_crt"], self.pki["server_key"])
        ctx.load_verify_locations(self.pki["ca_crt"])
        ctx.verify_mode = ssl.CERT_OPTIONAL
        self.ssl_context = ctx
        self.httpd = _Server(("127.0.0.1", port), _Handler, self)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.thread = None

    # -- life ---------------------------------------------------------------------------

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.release.set()
        self.release_hangs()
        with self.store.cond:
            self.store.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    # -- kubeconfigs ----------------------------------------------------------------------

    def kubeconfig(self, path=None, auth="token", ca="data", token=None, namespace="default",
                   server=None, extra_cluster=None, extra_user=None):
        """Writes a kubeconfig (JSON, which is YAML) and returns its path.
        auth: "token" (the current token inline), "tokenFile" (a file rotate_token rewrites),
        "cert" (the client certificate and key as -data), "certFiles" (as file paths), "none".
        ca: "data" (certificate-authority-data), "file", "wrong" (an unrelated CA), "none"."""
        path = path or os.path.join(self.dir, "kubeconfig-%s-%s-%s" % (auth, ca, secrets.token_hex(3)))
        def b64(p):
            with open(p, "rb") as f:
                return base64.b64encode(f.read()).decode()
        cluster = {"server": server or self.url}
        if ca == "data":
            cluster["certificate-authority-data"] = b64(self.pki["ca_crt"])
        elif ca == "file":
            cluster["certificate-authority"] = self.pki["ca_crt"]
        elif ca == "wrong":
            cluster["certificate-authority-data"] = b64(self.pki["wrong-ca_crt"])
        cluster.update(extra_cluster or {})
        user = {}
        if auth == "token":
            user["token"] = token or self.token
        elif auth == "tokenFile":
            tf = path + ".token"
            with open(tf, "w") as f:
                f.write((token or self.token) + "\n")
            self.token_files.append(tf)
            user["tokenFile"] = tf
        elif auth == "cert":
            user["client-certificate-data"] = b64(self.pki["client_crt"])
            user["client-key-data"] = b64(self.pki["client_key"])
        elif auth == "certFiles":
            user["client-certificate"] = self.pki["client_crt"]
            user["client-key"] = self.pki["client_key"]
        user.update(extra_user or {})
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "test",
               "clusters": [{"name": "double", "cluster": cluster}],
               "users": [{"name": "capstan", "user": user}],
               "contexts": [{"name": "test", "context": {"cluster": "double", "user": "capstan",
                                                          "namespace": namespace}}]}
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        return path

    # -- control (Python API; the same methods over /_control) -----------------------------

    def set_options(self, bookmark_interval=None, gone_mode=None, history_limit=None, watch_max_seconds=None):
        if bookmark_interval is not None:
            self.bookmark_interval = float(bookmark_interval)
        if gone_mode is not None:
            self.gone_mode = gone_mode
        if history_limit is not None:
            self.store.history_limit = int(history_limit)
        if watch_max_seconds is not None:
            self.watch_max_seconds = float(watch_max_seconds)

    def register_resource(self, api_version, resource, kind, namespaced=True, status_subresource=False):
        self.store.extra[(group_of(api_version), resource)] = (kind, namespaced, status_subresource)

    def rotate_token(self, new=None, keep_old=False):
        """Accepts a new token (returned) instead of the current one and rewrites every token
        file made by kubeconfig(auth="tokenFile") (write to a temporary file, then rename, as
        the kubelet does)."""
        new = new or ("tok-" + secrets.token_hex(16))
        with self.lock:
            if not keep_old:
                self.tokens.pop(self.token, None)
            self.token = new
            self.tokens[new] = "capstan-sa"
        for tf in self.token_files:
            tmp = tf + ".tmp"
            with open(tmp, "w") as f:
                f.write(new + "\n")
            os.replace(tmp, tf)
        return new

    def set_tokens(self, tokens):
        """Replaces the accepted tokens: a list of tokens or a {token: user} object."""
        with self.lock:
            self.tokens = dict(tokens) if isinstance(tokens, dict) else {t: "capstan-sa" for t in tokens}

    def forbid(self, user=None, verb=None, resource=None, namespace=None):
        """Answers 403 to matching requests (None matches anything)."""
        with self.lock:
            self.forbidden.append({"user": user, "verb": verb, "resource": resource, "namespace": namespace})

    def clear_forbidden(self):
        with self.lock:
            self.forbidden = []

    def inject(self, action, method=None, path=None, verb=None, count=1, **params):
        """Adds a fault for the next `count` matching requests (count=None: until cleared).
        path is a regular expression searched in the URL path; verb is get, list, watch...
        Actions: "status" (code, reason, message, retry_after: answer that Status), "drop"
        (close the connection without an answer), "hang" (answer nothing until
        release_hangs() or stop(); seconds= to give up and close), "gone" (a watch gets
        410 as gone_mode says), "watch_drop" (a watch is cut after `after` events, default 0,
        without the closing chunk). Returns the fault's id."""
        f = {"id": secrets.token_hex(4), "action": action, "method": method, "path": path, "verb": verb,
             "count": count, "params": params, "hits": 0}
        with self.lock:
            self.faults.append(f)
        return f["id"]

    def clear_faults(self):
        with self.lock:
            self.faults = []

    def release_hangs(self):
        """Ends every request held by a "hang" fault (their connections are closed)."""
        old, self.release = self.release, threading.Event()
        old.set()

    def compact(self):
        """Forgets the event history: every resourceVersion before now answers 410 to watches
        and continue tokens."""
        with self.store.cond:
            self.store.compacted = self.store.rv
            self.store.events = []
        return str(self.store.rv)

    def drop_watches(self):
        """Cuts every open watch stream (as a restarting apiserver would)."""
        with self.store.cond:
            self.watch_gen += 1
            self.store.cond.notify_all()

    def current_rv(self):
        return str(self.store.rv)

    def get_requests(self, since=0):
        with self.lock:
            return copy.deepcopy(self.requests[since:])

    def clear_requests(self):
        with self.lock:
            self.requests = []

    def _key(self, api_version, resource, namespace, name):
        return (group_of(api_version), resource, namespace or "", name)

    def put(self, obj, resource=None):
        """Creates or replaces obj (apiVersion, kind, metadata.name[, namespace]) as a seed, with
        no field manager; emits ADDED or MODIFIED. Returns the stored object."""
        obj = copy.deepcopy(obj)
        group = group_of(obj["apiVersion"])
        resource = resource or resource_for_kind(group, obj["kind"])
        key = (group, resource, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        with self.store.cond:
            prev = self.store.objects.get(key)
            return copy.deepcopy(self.store.write(key, obj, prev))

    def get(self, api_version, resource, namespace, name):
        with self.store.cond:
            o = self.store.objects.get(self._key(api_version, resource, namespace, name))
            return copy.deepcopy(o)

    def list_objects(self, api_version, resource, namespace=None):
        group = group_of(api_version)
        with self.store.cond:
            return [copy.deepcopy(o) for (g, r, ns, _), o in sorted(self.store.objects.items())
                    if g == group and r == resource and (namespace is None or ns == namespace)]

    def patch_object(self, api_version, resource, namespace, name, patch):
        """Merge-patches an object as a controller would (no field manager). Returns it."""
        key = self._key(api_version, resource, namespace, name)
        with self.store.cond:
            prev = self.store.objects.get(key)
            if prev is None:
                raise KeyError("no such object")
            return copy.deepcopy(self.store.write(key, merge_patch(prev, patch), prev))

    def set_status(self, api_version, resource, namespace, name, status, replace=False):
        """Changes an object's status (merged, or replaced) as its controller would."""
        key = self._key(api_version, resource, namespace, name)
        with self.store.cond:
            prev = self.store.objects.get(key)
            if prev is None:
                raise KeyError("no such object")
            new = copy.deepcopy(prev)
            new["status"] = copy.deepcopy(status) if replace else merge_patch(prev.get("status") or {}, status)
            return copy.deepcopy(self.store.write(key, new, prev))

    def remove_finalizers(self, api_version, resource, namespace, name):
        """Removes every finalizer (an object being deleted then goes)."""
        return self.patch_object(api_version, resource, namespace, name, {"metadata": {"finalizers": None}})

    def delete_object(self, api_version, resource, namespace, name):
        with self.store.cond:
            return copy.deepcopy(self.store.delete(self._key(api_version, resource, namespace, name)))

    def request(self, method, path, body=None, content_type="application/json", token=None, cert=False):
        """Makes one HTTPS request to this server as another client would (with the current
        token, another token, or the client certificate when cert=True). Returns
        (status, decoded JSON body or text)."""
        import http.client
        ctx = ssl.create_default_context(cafile=self.pki["ca_crt"])
        if cert:
            ctx.load_cert_chain(self.pki["client_crt"], self.pki["client_key"])
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=30)
        headers = {}
        if not cert:
            headers["Authorization"] = "Bearer " + (token or self.token)
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            headers["Content-Type"] = content_type
        try:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw)
            except ValueError:
                return r.status, raw.decode("utf-8", "replace")
        finally:
            conn.close()

    # -- request handling -----------------------------------------------------------------

    def _note_tls_failure(self, what):
        with self.lock:
            self.tls_failures.append(what)

    def _log(self, entry):
        with self.lock:
            self.requests.append(entry)

    def _authenticate(self, h):
        auth = h.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            with self.lock:
                user = self.tokens.get(auth[7:].strip())
            if user:
                return user, "token"
            return None, "token"
        try:
            cert = h.connection.getpeercert()
        except (AttributeError, ValueError):
            cert = None
        if cert:
            cn = [v for rdn in cert.get("subject", ()) for (k, v) in rdn if k == "commonName"]
            if cn:
                return cn[0], "cert"
        return None, "none"

    def _match_fault(self, method, path, verb):
        with self.lock:
            for f in self.faults:
                if f["count"] is not None and f["hits"] >= f["count"]:
                    continue
                if f["method"] and f["method"] != method:
                    continue
                if f["verb"] and f["verb"] != verb:
                    continue
                if f["path"] and not re.search(f["path"], path):
                    continue
                if f["action"] in ("gone", "watch_drop") and verb != "watch":
                    continue
                f["hits"] += 1
                return f
        return None

    def _parse_path(self, path):
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3 or not all(rest):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resource = rest[0]
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if sub not in (None, "status"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        info = self.store.info(group, resource)
        if info and info[1] is False and ns:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if info and info[1] is True and not ns and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return group, version, resource, ns, name, sub

    def _dispatch(self, h, method):
        t0 = time.time()
        parsed = urllib.parse.urlsplit(h.path)
        path = parsed.path
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        entry = {"time": t0, "method": method, "path": path, "query": query,
                 "contentType": h.headers.get("Content-Type"), "accept": h.headers.get("Accept"),
                 "userAgent": h.headers.get("User-Agent"), "user": None, "auth": None, "status": None}
        length = int(h.headers.get("Content-Length") or 0)
        body = b""
        if length > MAX_BODY:
            h.close_connection = True
            entry["status"] = 413
            self._log(entry)
            h.send_json(413, status_body(413, "RequestEntityTooLarge", "request is too large"))
            return
        if length:
            body = h.rfile.read(length)
        if path.startswith("/_control/"):
            return self._control(h, path[len("/_control/"):], body)
        try:
            user, how = self._authenticate(h)
            entry["user"], entry["auth"] = user, how
            if user is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if path in ("/healthz", "/readyz", "/livez"):
                data = b"ok"
                h.send_response(200)
                h.send_header("Content-Type", "text/plain; charset=utf-8")
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data)
                entry["status"] = 200
                return
            if path == "/version":
                entry["status"] = 200
                h.send_json(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-double"})
                return
            group, version, resource, ns, name, sub = self._parse_path(path)
            watch = query.get("watch") in ("1", "true")
            verb = {"GET": "watch" if watch else ("get" if name else "list"), "POST": "create",
                    "PUT": "update", "PATCH": "patch",
                    "DELETE": "delete" if name else "deletecollection"}[method]
            entry["verb"] = verb
            fault = self._match_fault(method, path, verb)
            if fault and fault["action"] == "status":
                p = fault["params"]
                code = int(p.get("code", 500))
                reason = p.get("reason") or {429: "TooManyRequests", 500: "InternalError",
                                             503: "ServiceUnavailable", 504: "Timeout"}.get(code, "InternalError")
                details, headers = None, {}
                if p.get("retry_after") is not None:
                    details = {"retryAfterSeconds": int(p["retry_after"])}
                    headers["Retry-After"] = str(int(p["retry_after"]))
                raise ApiError(code, reason, p.get("message") or {
                    429: "Too many requests, please try again later."}.get(code, "an injected failure"),
                    details, headers)
            if fault and fault["action"] == "drop":
                entry["status"] = "dropped"
                self._log(entry)
                h.abort()
                return
            if fault and fault["action"] == "hang":
                entry["status"] = "hung"
                self._log(entry)
                release = self.release
                release.wait(float(fault["params"].get("seconds", 3600)))
                h.abort()
                return
            self._authorize(user, verb, group, resource, ns, name)
            if verb == "watch":
                return self._watch(h, group, version, resource, ns, query, fault, entry)
            code, out = self._serve(method, verb, group, version, resource, ns, name, sub, query, h, body)
            entry["status"] = code
            self._log(entry)
            h.send_json(code, out)
        except ApiError as e:
            entry["status"] = e.code
            entry["reason"] = e.body["reason"]
            self._log(entry)
            h.send_json(e.code, e.body, e.headers)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            h.close_connection = True

    def _authorize(self, user, verb, group, resource, ns, name):
        with self.lock:
            rules = list(self.forbidden)
        for r in rules:
            if ((r["user"] in (None, user)) and (r["verb"] in (None, verb)) and
                    (r["resource"] in (None, resource)) and (r["namespace"] in (None, ns))):
                gr = resource + ("." + group if group else "")
                what = ('%s "%s"' % (gr, name)) if name else gr
                msg = '%s is forbidden: User "%s" cannot %s resource "%s" in API group "%s"' % (
                    what, user, verb, resource, group)
                if ns:
                    msg += ' in the namespace "%s"' % ns
                raise ApiError(403, "Forbidden", msg, {"name": name or "", "group": group, "kind": resource})

    def _not_found(self, group, resource, name):
        gr = resource + ("." + group if group else "")
        return ApiError(404, "NotFound", '%s "%s" not found' % (gr, name),
                        {"name": name, "group": group, "kind": resource})

    def _read_json(self, h, body):
        try:
            obj = json.loads(body.decode("utf-8")) if body else None
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format - "
                           "accepted media types include: application/json (the double reads JSON only: %s)" % e)
        return obj

    def _serve(self, method, verb, group, version, resource, ns, name, sub, query, h, body):
        st = self.store
        kind = kind_for(group, resource)
        api_version = group + "/" + version if group else version
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        with st.cond:
            if verb == "get":
                obj = st.objects.get((group, resource, ns, name))
                if obj is None:
                    raise self._not_found(group, resource, name)
                return 200, obj
            if verb == "list":
                return 200, self._list(group, api_version, kind, resource, ns, query)
            if verb in ("create", "update"):
                if ctype != "application/json":
                    raise ApiError(415, "UnsupportedMediaType", 'the body of the request was in an unknown '
                                   'format - accepted media types include: application/json')
                obj = self._read_json(h, body)
                self._check_object(obj, api_version, kind, ns, name if verb == "update" else None)
                oname = obj["metadata"].get("name")
                if not oname:
                    raise ApiError(422, "Invalid", "%s \"\" is invalid: metadata.name: Required value: name or "
                                   "generateName is required" % kind, {"kind": kind})
                key = (group, resource, ns, oname)
                prev = st.objects.get(key)
                if verb == "create":
                    if prev is not None:
                        raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (
                            resource + ("." + group if group else ""), oname),
                            {"name": oname, "group": group, "kind": resource})
                    self._set_owner(key, query.get("fieldManager") or "unknown", "Update", api_version,
                                    leaf_paths(obj), steal=True)
                    return 201, st.write(key, obj, None)
                if prev is None:
                    raise self._not_found(group, resource, name)
                want = obj["metadata"].get("resourceVersion")
                if want and want != prev["metadata"]["resourceVersion"]:
                    raise self._conflict_rv(group, resource, name)
                new = self._only_status(group, resource, sub, prev, obj)
                self._set_owner(key, query.get("fieldManager") or "unknown", "Update", api_version,
                                leaf_paths(obj), steal=True)
                return 200, st.write(key, new, prev)
            if verb == "patch":
                return self._patch(h, group, api_version, kind, resource, ns, name, sub, query, ctype, body)
            if verb == "delete":
                return 200, self._delete(group, resource, ns, name, query, h, body)
            if verb == "deletecollection":
                reqs = parse_label_selector(query.get("labelSelector"))
                keys = [k for k, o in st.objects.items() if k[0] == group and k[1] == resource and
                        (not ns or k[2] == ns) and labels_match(reqs, o["metadata"].get("labels"))]
                items = [st.delete(k) for k in keys]
                return 200, {"kind": kind + "List", "apiVersion": api_version,
                             "metadata": {"resourceVersion": str(st.rv)}, "items": items}
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _conflict_rv(self, group, resource, name):
        gr = resource + ("." + group if group else "")
        return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been modified; '
                        'please apply your changes to the latest version and try again' % (gr, name),
                        {"name": name, "group": group, "kind": resource})

    def _check_object(self, obj, api_version, kind, ns, name):
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise ApiError(400, "BadRequest", "the object must be a JSON object")
        obj.setdefault("metadata", {})
        if obj.get("apiVersion") not in (None, api_version) or obj.get("kind") not in (None, kind):
            raise ApiError(400, "BadRequest", "the API version in the data (%s) does not match the expected "
                           "API version (%s) or kind" % (obj.get("apiVersion"), api_version))
        obj["apiVersion"], obj["kind"] = api_version, kind
        ons = obj["metadata"].get("namespace")
        if ons and ons != ns:
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                           "namespace sent on the request")
        if name is not None and obj["metadata"].get("name") not in (None, name):
            raise ApiError(400, "BadRequest", "the name of the object (%s) does not match the name on the "
                           "URL (%s)" % (obj["metadata"].get("name"), name))

    def _only_status(self, group, resource, sub, prev, obj):
        """Applies the status-subresource rule to a new full object."""
        if sub == "status":
            new = copy.deepcopy(prev)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            return new
        if self.store.has_status_sub(group, resource):
            obj = copy.deepcopy(obj)
            if prev is not None and "status" in prev:
                obj["status"] = copy.deepcopy(prev["status"])
            else:
                obj.pop("status", None)
        return obj

    def _set_owner(self, key, manager, op, api_version, paths, steal):
        owners = self.store.owners.setdefault(key, {})
        if steal:
            for m, e in owners.items():
                if m != manager:
                    e["fields"] = {f for f in e["fields"] if not any(overlaps(f, p) for p in paths)}
        e = owners.get(manager)
        if op == "Update" and e is not None and e["op"] == "Update":
            paths = set(paths) | e["fields"]
        owners[manager] = {"op": op, "apiVersion": api_version, "time": now_rfc3339(), "fields": set(paths)}

    def _patch(self, h, group, api_version, kind, resource, ns, name, sub, query, ctype, body):
        st = self.store
        key = (group, resource, ns, name)
        prev = st.objects.get(key)
        patch = self._read_json(h, body)
        if not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "the patch must be a JSON object")
        if ctype == "application/apply-patch+yaml":
            manager = query.get("fieldManager")
            if not manager:
                raise ApiError(400, "BadRequest", "fieldManager is required for apply requests")
            force = query.get("force") == "true"
            if query.get("force") not in (None, "true", "false"):
                raise ApiError(400, "BadRequest", "Invalid value for force: %s" % query.get("force"))
            if not patch.get("apiVersion") or not patch.get("kind"):
                raise ApiError(400, "BadRequest", "apiVersion and kind are required in an apply configuration")
            self._check_object(patch, api_version, kind, ns, name)
            want = patch["metadata"].get("resourceVersion")
            if prev is not None and want and want != prev["metadata"]["resourceVersion"]:
                raise self._conflict_rv(group, resource, name)
            new_fields = leaf_paths(patch)
            if sub == "status" or (st.has_status_sub(group, resource) and sub is None):
                new_fields = {p for p in new_fields if (p[0] == "status") == (sub == "status")}
            owners = st.owners.setdefault(key, {})
            current = prev or {}

            def differs(f):
                return any(overlaps(f, p) and get_path(current, f) != get_path(patch, f) and
                           get_path(current, p) != get_path(patch, p) for p in new_fields)
            conflicts = [(m, e["apiVersion"], f) for m, e in owners.items() if m != manager
                         for f in e["fields"] if differs(f)]
            if conflicts and not force:
                conflicts = sorted(set(conflicts))
                msg = "Apply failed with %d conflict%s: " % (len(conflicts), "" if len(conflicts) == 1 else "s")
                msg += "; ".join('conflict with "%s" using %s: .%s' % (m, v, ".".join(f)) for m, v, f in conflicts)
                causes = [{"type": "FieldManagerConflict", "message": 'conflict with "%s" using %s' % (m, v),
                           "field": "." + ".".join(f)} for m, v, f in conflicts]
                raise ApiError(409, "Conflict", msg, {"causes": causes})
            base = copy.deepcopy(prev) if prev is not None else {"apiVersion": api_version, "kind": kind,
                                                                  "metadata": {}}
            old = owners.get(manager, {"fields": set()})["fields"]
            others = set()
            for m, e in owners.items():
                if m != manager:
                    others |= e["fields"]
            for f in old - new_fields:  # fields this manager stopped applying
                if f not in others:
                    remove_path(base, f)
            applied = copy.deepcopy(patch)
            for k in SYSTEM_META:
                applied["metadata"].pop(k, None)
            if sub is None and st.has_status_sub(group, resource):
                applied.pop("status", None)
            if sub == "status":
                applied = {"status": applied.get("status", {})}
            new = merge_patch(base, applied)
            for m in list(owners):  # forced: the others lose what they disagreed on
                if m != manager:
                    owners[m]["fields"] = {f for f in owners[m]["fields"] if not differs(f)}
            unchanged = prev is not None and old == new_fields and \
                {k: v for k, v in new.items() if k != "metadata"} == \
                {k: v for k, v in prev.items() if k != "metadata"} and \
                {k: v for k, v in new["metadata"].items() if k != "managedFields"} == \
                {k: v for k, v in prev["metadata"].items() if k != "managedFields"}
            owners[manager] = {"op": "Apply", "apiVersion": api_version, "time": now_rfc3339(),
                               "fields": set(new_fields)}
            if unchanged:  # a no-op apply writes nothing, like the real apiserver
                return 200, prev
            return (201 if prev is None else 200), st.write(key, new, prev)
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if prev is None:
                raise self._not_found(group, resource, name)
            if sub == "status":
                new = copy.deepcopy(prev)
                new["status"] = merge_patch(prev.get("status") or {}, patch.get("status") or {})
            else:
                new = merge_patch(prev, patch)
                if st.has_status_sub(group, resource):
                    new = self._only_status(group, resource, None, prev, new)
            rv = (patch.get("metadata") or {}).get("resourceVersion")
            if rv and rv != prev["metadata"]["resourceVersion"]:
                raise self._conflict_rv(group, resource, name)
            self._set_owner(key, query.get("fieldManager") or "unknown", "Update", api_version,
                            leaf_paths({k: v for k, v in patch.items() if v is not None}), steal=True)
            return 200, st.write(key, new, prev)
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted "
                       "media types include: application/json-patch+json, application/merge-patch+json, "
                       "application/apply-patch+yaml")

    def _delete(self, group, resource, ns, name, query, h, body):
        policy = query.get("propagationPolicy")
        if body:
            opts = self._read_json(h, body) or {}
            policy = opts.get("propagationPolicy", policy)
        if policy not in (None, "Foreground", "Background", "Orphan"):
            raise ApiError(400, "BadRequest", "propagationPolicy: Unsupported value: \"%s\": supported values: "
                           "\"Foreground\", \"Background\", \"Orphan\"" % policy)
        out = self.store.delete((group, resource, ns, name))
        if out is None:
            raise self._not_found(group, resource, name)
        return out

    def _list(self, group, api_version, kind, resource, ns, query):
        st = self.store
        lreqs = parse_label_selector(query.get("labelSelector"))
        freqs = parse_field_selector(query.get("fieldSelector"))
        limit = int(query.get("limit") or 0)
        start = ""
        rv = st.rv
        if query.get("continue"):
            try:
                tok = json.loads(base64.b64decode(query["continue"]).decode())
                start, rv = tok["start"], int(tok["rv"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "BadRequest", "continue key is not valid")
            if rv < st.compacted:
                raise ApiError(410, "Expired", "The provided continue parameter is too old to display a "
                               "consistent list result. You can start a new list without the continue "
                               "parameter.")
        items = []
        for (g, r, ons, oname), o in sorted(st.objects.items()):
            if g != group or r != resource or (ns and ons != ns):
                continue
            if (ons + "/" + oname) <= start:
                continue
            if labels_match(lreqs, o["metadata"].get("labels")) and fields_match(freqs, o):
                items.append(o)
        meta = {"resourceVersion": str(rv)}
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = base64.b64encode(json.dumps(
                {"rv": rv, "start": last.get("namespace", "") + "/" + last["name"]}).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {"kind": kind + "List", "apiVersion": api_version, "metadata": meta, "items": items}

    # -- watch ------------------------------------------------------------------------------

    def _watch(self, h, group, version, resource, ns, query, fault, entry):
        st = self.store
        api_version = group + "/" + version if group else version
        kind = kind_for(group, resource)
        lreqs = parse_label_selector(query.get("labelSelector"))
        freqs = parse_field_selector(query.get("fieldSelector"))
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout = min(float(query.get("timeoutSeconds") or self.watch_max_seconds), self.watch_max_seconds)
        rv_param = query.get("resourceVersion") or ""
        end = time.time() + timeout
        cut_after = int(fault["params"].get("after", 0)) if fault and fault["action"] == "watch_drop" else None

        def matches(o, o_ns):
            return (not ns or o_ns == ns) and labels_match(lreqs, o["metadata"].get("labels")) and \
                fields_match(freqs, o)

        initial = []
        with st.cond:
            gen = self.watch_gen
            gone = fault is not None and fault["action"] == "gone"
            if rv_param in ("", "0"):
                since = st.rv
                initial = [copy.deepcopy(o) for (g, r, ons, _), o in sorted(st.objects.items())
                           if g == group and r == resource and matches(o, ons)]
            else:
                try:
                    since = int(rv_param)
                except ValueError:
                    gone = False
                    since = None
                if since is not None and since < st.compacted:
                    gone = True
            if since is None:
                raise ApiError(400, "BadRequest", 'resourceVersion: Invalid value: "%s": must be a number' % rv_param)
            if gone:
                msg = "too old resource version: %s (%d)" % (rv_param, st.compacted + 1)
                if self.gone_mode == "http":
                    raise ApiError(410, "Expired", msg)
                gone_event = {"type": "ERROR", "object": status_body(410, "Expired", msg)}
        entry["status"] = 200
        entry["watchFrom"] = rv_param
        self._log(entry)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Cache-Control", "no-cache, private")
        h.end_headers()
        sent = 0

        def chunk(ev):
            data = (json.dumps(ev, separators=(",", ":")) + "\n").encode()
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()

        def finish():
            try:
                h.wfile.write(b"0\r\n\r\n")
                h.wfile.flush()
            except OSError:
                pass
            h.close_connection = True

        with self.lock:
            self.active_watches += 1
        try:
            if gone:
                chunk(gone_event)
                return finish()
            for o in initial:
                if cut_after is not None and sent >= cut_after:
                    return h.abort()
                chunk({"type": "ADDED", "object": o})
                sent += 1
            last_bookmark = time.time()
            while True:
                if cut_after is not None and sent >= cut_after:
                    return h.abort()
                out = []
                with st.cond:
                    if self.watch_gen != gen or self.stopping.is_set():
                        dropped = True
                    else:
                        dropped = False
                        if since < st.compacted:
                            out.append({"type": "ERROR", "object": status_body(
                                410, "Expired", "too old resource version: %d (%d)" % (since, st.compacted + 1))})
                        for (erv, etype, g, r, ens, obj, prev) in st.events:
                            if erv <= since or g != group or r != resource:
                                continue
                            now_in = matches(obj, ens)
                            was_in = prev is not None and matches(prev, ens)
                            if etype == "MODIFIED" and now_in and not was_in:
                                etype = "ADDED"
                            elif etype == "MODIFIED" and was_in and not now_in:
                                etype = "DELETED"
                            elif not now_in and not (etype == "DELETED" and was_in):
                                continue
                            out.append({"type": etype, "object": obj})
                        since = st.rv
                        if not out:
                            wait = min(0.2, max(0.0, end - time.time()))
                            st.cond.wait(wait)
                if dropped:
                    return h.abort()
                for ev in out:
                    if cut_after is not None and sent >= cut_after:
                        return h.abort()
                    chunk(ev)
                    sent += 1
                    if ev["type"] == "ERROR":
                        return finish()
                if time.time() >= end:
                    return finish()
                if bookmarks and time.time() - last_bookmark >= self.bookmark_interval:
                    with st.cond:
                        brv = str(max(since, 1))
                    chunk({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version,
                                                          "metadata": {"resourceVersion": brv}}})
                    last_bookmark = time.time()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            h.close_connection = True
        finally:
            with self.lock:
                self.active_watches -= 1

    # -- control endpoint ---------------------------------------------------------------

    def _control(self, h, method, body):
        if not self.control_token or h.headers.get("X-Control-Token") != self.control_token:
            return h.send_json(403, {"error": "bad control token"})
        if method not in CONTROL_METHODS:
            return h.send_json(404, {"error": "no control method %s" % method})
        try:
            kwargs = json.loads(body.decode()) if body else {}
            result = getattr(self, method)(**kwargs)
            h.send_json(200, {"result": result})
        except Exception as e:  # the caller sees what went wrong
            h.send_json(400, {"error": "%s: %s" % (type(e).__name__, e)})


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="kube-apiserver test double")
    ap.add_argument("--dir", required=True, help="folder for the PKI and kubeconfigs")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bookmark-interval", type=float, default=1.0)
    ap.add_argument("--gone-mode", choices=("event", "http"), default="event")
    args = ap.parse_args(argv)
    srv = KubeApiServer(directory=args.dir, port=args.port, bookmark_interval=args.bookmark_interval,
                        gone_mode=args.gone_mode, control_token="ctl-" + secrets.token_hex(16)).start()
    kc = {a: srv.kubeconfig(os.path.join(args.dir, "kubeconfig-" + a), auth=a)
          for a in ("token", "tokenFile", "cert")}
    print(json.dumps({"port": srv.port, "url": srv.url, "dir": srv.dir, "token": srv.token,
                      "controlToken": srv.control_token, "ca": srv.pki["ca_crt"], "kubeconfig": kc}), flush=True)
    import signal
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    done.wait()
    srv.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
