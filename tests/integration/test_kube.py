"""The Kubernetes client (server/kube) against the kube-apiserver double (tests/doubles).

Drives the client through tests/integration/drivers/kube_driver.c, one long-lived client per
driver process, and checks what users of the client rely on: TLS with the test CA (another CA
is refused), bearer token, token file rotation and client certificate authentication, server-side
apply (create, update, no-op, conflicts), merge patch, delete with propagation and finalizers,
404/409/429 handling, watch reconnects, 410 relists and bookmarks, deadlines on a server that
never answers, the in-cluster configuration, and that no credential appears in any output.
"""
import base64
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "doubles"))
import kube_apiserver  # noqa: E402

DRIVER = os.path.join(os.environ.get("CAPSTAN_DRIVER_DIR", os.path.join(HERE, "..", "..", "build", "tests",
                                                                         "integration")), "kube_driver")
CAP_EINVALID, CAP_ENOTFOUND, CAP_ECONFLICT, CAP_EPRECONDITION = -2, -4, -5, -6
CAP_EUNAUTHORIZED, CAP_EFORBIDDEN, CAP_ERATELIMIT, CAP_EUNAVAILABLE, CAP_ETIMEOUT = -9, -10, -11, -12, -13

SRV = None
OUTPUTS = []  # every driver's stdout and stderr, checked for secrets at the end
CLUSTERS = "/apis/cluster.x-k8s.io/v1beta1/namespaces/tenant-a/clusters"
SECRETS = "/api/v1/namespaces/tenant-a/secrets"


def setUpModule():
    global SRV
    SRV = kube_apiserver.KubeApiServer(bookmark_interval=0.3).start()


def tearDownModule():
    SRV.stop()


class Driver:
    """One kube_driver process: one client, commands in, JSON lines out."""

    def __init__(self, args, timeout=30):
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = "detect_leaks=1:exitcode=66"
        self.err = tempfile.TemporaryFile()
        self.p = subprocess.Popen([DRIVER] + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.err, env=env)
        self.buf = b""
        self.lines = []
        self.config = self.read_line(timeout)

    def read_line(self, timeout=30):
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("kube_driver did not answer in %ss" % timeout)
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("kube_driver exited: %s" % self.stderr())
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        text = line.decode()
        self.lines.append(text)
        return json.loads(text)

    def call(self, timeout=60, **cmd):
        """Runs one command; returns (result, events)."""
        self.p.stdin.write((json.dumps(cmd) + "\n").encode())
        self.p.stdin.flush()
        events = []
        while True:
            o = self.read_line(timeout)
            if "event" in o:
                events.append(o)
            else:
                return o, events

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def close(self, expect_rc=0):
        self.p.stdin.close()
        rest = self.p.stdout.read()
        self.p.wait(30)
        self.p.stdout.close()
        err = self.stderr()
        self.err.close()
        OUTPUTS.append("\n".join(self.lines) + rest.decode() + err)
        assert self.p.returncode == expect_rc, "kube_driver exited with %d: %s" % (self.p.returncode, err)
        return err


def driver(test, *args, **kw):
    d = Driver(list(args), **kw)
    test.addCleanup(d.close)
    return d


def cluster(name, ns="tenant-a", spec=None, labels=None):
    return {"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": spec or {"paused": False}}


def requests_since(n, **match):
    out = []
    for r in SRV.get_requests(n):
        if all(r.get(k) == v for k, v in match.items()):
            out.append(r)
    return out


class Tls(unittest.TestCase):
    def test_test_ca_accepted_and_other_ca_refused(self):
        ok = driver(self, "--kubeconfig", SRV.kubeconfig(ca="data"))
        r, _ = ok.call(op="get", path=SECRETS + "/nothing")
        self.assertEqual(r["code"], CAP_ENOTFOUND, r)  # got through TLS to the API
        f = driver(self, "--kubeconfig", SRV.kubeconfig(ca="file"))
        self.assertEqual(f.call(op="get", path=SECRETS + "/nothing")[0]["code"], CAP_ENOTFOUND)
        n = len(SRV.tls_failures)
        for ca in ("wrong", "none"):  # another CA, or the system's store
            bad = driver(self, "--kubeconfig", SRV.kubeconfig(ca=ca))
            r, _ = bad.call(op="get", path=SECRETS + "/nothing")
            self.assertFalse(r["ok"])
            self.assertEqual(r["code"], CAP_EUNAVAILABLE, r)
            self.assertIn("TLS failed", r["message"])
            self.assertTrue(r["retryable"])
        deadline = time.time() + 5  # the double notes the failed handshakes in its own threads
        while len(SRV.tls_failures) < n + 2 and time.time() < deadline:
            time.sleep(0.02)
        self.assertGreaterEqual(len(SRV.tls_failures), n + 2)

    def test_insecure_only_when_allowed(self):
        path = SRV.kubeconfig(ca="none", extra_cluster={"insecure-skip-tls-verify": True})
        d = Driver(["--kubeconfig", path])
        self.assertFalse(d.config["ok"])
        self.assertEqual(d.config["code"], CAP_EINVALID)
        self.assertEqual(d.config["field"], "clusters[0].cluster.insecure-skip-tls-verify")
        d.close(expect_rc=1)
        ok = driver(self, "--kubeconfig", path, "--allow-insecure")
        self.assertTrue(ok.config["result"]["insecure"])
        self.assertEqual(ok.call(op="get", path=SECRETS + "/nothing")[0]["code"], CAP_ENOTFOUND)

    def test_exec_plugin_refused(self):
        path = SRV.kubeconfig(auth="none", extra_user={"exec": {"command": "/bin/sh", "args": ["-c", "touch /tmp/pwned"]}})
        d = Driver(["--kubeconfig", path])
        self.assertEqual(d.config["code"], CAP_EINVALID)
        self.assertEqual(d.config["field"], "users[0].user.exec")
        self.assertIn("not run", d.config["message"])
        d.close(expect_rc=1)


class Auth(unittest.TestCase):
    def test_bearer_token_checked_on_every_call(self):
        d = driver(self, "--kubeconfig", SRV.kubeconfig(auth="token"))
        n = len(SRV.get_requests())
        for _ in range(3):
            self.assertEqual(d.call(op="get", path=SECRETS + "/x")[0]["code"], CAP_ENOTFOUND)
        reqs = requests_since(n)
        self.assertEqual([(r["user"], r["auth"]) for r in reqs], [("capstan-sa", "token")] * 3)
        bad = driver(self, "--kubeconfig", SRV.kubeconfig(auth="token", token="not-the-token-123"))
        r, _ = bad.call(op="get", path=SECRETS + "/x")
        self.assertEqual(r["code"], CAP_EUNAUTHORIZED, r)
        self.assertEqual(r["message"], "kubernetes api: Unauthorized")
        none = driver(self, "--kubeconfig", SRV.kubeconfig(auth="none"))
        self.assertEqual(none.call(op="get", path=SECRETS + "/x")[0]["code"], CAP_EUNAUTHORIZED)

    def test_client_certificate(self):
        for auth in ("cert", "certFiles"):
            d = driver(self, "--kubeconfig", SRV.kubeconfig(auth=auth))
            self.assertTrue(d.config["result"]["cert"])
            n = len(SRV.get_requests())
            self.assertEqual(d.call(op="get", path=SECRETS + "/x")[0]["code"], CAP_ENOTFOUND)
            (req,) = requests_since(n)
            self.assertEqual((req["user"], req["auth"]), ("capstan-test", "cert"))

    def test_forbidden(self):
        d = driver(self, "--kubeconfig", SRV.kubeconfig())
        SRV.forbid(verb="delete", resource="secrets", namespace="locked")
        try:
            r, _ = d.call(op="delete", path="/api/v1/namespaces/locked/secrets/s")
        finally:
            SRV.clear_forbidden()
        self.assertEqual(r["code"], CAP_EFORBIDDEN)
        self.assertIn('User "capstan-sa" cannot delete', r["message"])

    def test_token_file_rotation(self):
        old = SRV.token
        path = SRV.kubeconfig(auth="tokenFile")
        d = driver(self, "--kubeconfig", path, "--token-reread-ms", "600000")
        self.assertTrue(d.config["result"]["tokenFile"])
        try:
            self.assertEqual(d.call(op="get", path=SECRETS + "/x")[0]["code"], CAP_ENOTFOUND)
            for _ in range(3):  # the old token stops working, the file is rewritten
                SRV.rotate_token()
                r, _ = d.call(op="get", path=SECRETS + "/x")
                self.assertEqual(r["code"], CAP_ENOTFOUND, r)
            # The accepted token changes before the file does: calls fail until it is
            # rewritten, then work again without a new client.
            new = "tok-late-" + "a" * 20
            SRV.set_tokens([new])
            r, _ = d.call(op="get", path=SECRETS + "/x")
            self.assertEqual(r["code"], CAP_EUNAUTHORIZED, r)
            with open(path + ".token", "w") as f:
                f.write(new + "\n")
            SRV.token = new
            r, _ = d.call(op="get", path=SECRETS + "/x")
            self.assertEqual(r["code"], CAP_ENOTFOUND, r)
        finally:
            SRV.set_tokens([SRV.token])
        self.assertNotEqual(SRV.token, old)


class Verbs(unittest.TestCase):
    def setUp(self):
        self.d = driver(self, "--kubeconfig", SRV.kubeconfig())

    def test_apply_create_update_noop(self):
        path = CLUSTERS + "/apply-1"
        n = len(SRV.get_requests())
        r, _ = self.d.call(op="apply", path=path, object=cluster("apply-1", spec={"paused": False}))
        self.assertTrue(r["ok"], r)
        created = r["result"]
        self.assertEqual(created["metadata"]["generation"], 1)
        self.assertEqual(created["metadata"]["managedFields"][0]["manager"], "capstan")
        (req,) = requests_since(n)
        self.assertEqual(req["method"], "PATCH")
        self.assertEqual(req["contentType"], "application/apply-patch+yaml")
        self.assertEqual(req["query"], {"fieldManager": "capstan", "force": "false"})
        self.assertEqual(req["status"], 201)
        yaml = ("apiVersion: cluster.x-k8s.io/v1beta1\nkind: Cluster\nmetadata:\n  name: apply-1\n"
                "  namespace: tenant-a\nspec:\n  paused: true\n  topology: {version: v1.31.0}\n")
        r, _ = self.d.call(op="apply", path=path, yaml=yaml)
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["result"]["metadata"]["generation"], 2)
        self.assertEqual(r["result"]["spec"], {"paused": True, "topology": {"version": "v1.31.0"}})
        rv = r["result"]["metadata"]["resourceVersion"]
        r, _ = self.d.call(op="apply", path=path, yaml=yaml)
        self.assertEqual(r["result"]["metadata"]["resourceVersion"], rv, "a no-op apply changes nothing")
        # Fields capstan stops applying are removed.
        r, _ = self.d.call(op="apply", path=path, object=cluster("apply-1", spec={"paused": True}))
        self.assertEqual(r["result"]["spec"], {"paused": True})
        self.assertEqual(SRV.get("cluster.x-k8s.io/v1beta1", "clusters", "tenant-a", "apply-1")["spec"],
                         {"paused": True})

    def test_apply_conflict_then_force(self):
        path = CLUSTERS + "/conflict-1"
        self.assertTrue(self.d.call(op="apply", path=path, object=cluster("conflict-1"))[0]["ok"])
        code, body = SRV.request("PATCH", path + "?fieldManager=kubectl",
                                 cluster("conflict-1", spec={"paused": True}), "application/apply-patch+yaml")
        self.assertEqual(code, 409, body)  # the double's own conflict, seen from another client
        code, body = SRV.request("PATCH", path + "?fieldManager=kubectl&force=true",
                                 cluster("conflict-1", spec={"paused": True}), "application/apply-patch+yaml")
        self.assertEqual(code, 200, body)
        r, _ = self.d.call(op="apply", path=path, object=cluster("conflict-1", spec={"paused": False}))
        self.assertEqual(r["code"], CAP_ECONFLICT, r)
        self.assertIn('conflict with "kubectl"', r["message"])
        self.assertIn(".spec.paused", r["message"])
        self.assertFalse(r["retryable"])
        r, _ = self.d.call(op="apply", path=path, force=True, object=cluster("conflict-1", spec={"paused": False}))
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["result"]["spec"]["paused"], False)
        # A stale resourceVersion in the applied object is a conflict as well.
        stale = cluster("conflict-1")
        stale["metadata"]["resourceVersion"] = "1"
        self.assertEqual(self.d.call(op="apply", path=path, object=stale)[0]["code"], CAP_ECONFLICT)

    def test_get_list_patch_delete(self):
        for i in range(5):
            SRV.put({"apiVersion": "v1", "kind": "Secret",
                     "metadata": {"name": "s%d" % i, "namespace": "tenant-b", "labels": {"tier": "a" if i % 2 else "b"}},
                     "data": {"value": base64.b64encode(b"v%d" % i).decode()}})
        coll = "/api/v1/namespaces/tenant-b/secrets"
        r, _ = self.d.call(op="get", path=coll + "/s1")
        self.assertEqual(base64.b64decode(r["result"]["data"]["value"]), b"v1")
        r, _ = self.d.call(op="list", path=coll, labelSelector="tier=a")
        self.assertEqual([o["metadata"]["name"] for o in r["result"]["items"]], ["s1", "s3"])
        self.assertEqual(r["result"]["kind"], "SecretList")
        r, _ = self.d.call(op="list", path=coll, labelSelector="tier in (a,b),tier!=b", fieldSelector="metadata.name!=s1")
        self.assertEqual([o["metadata"]["name"] for o in r["result"]["items"]], ["s3"])
        names, cont = [], None
        for _ in range(5):
            r, _ = self.d.call(op="list", path=coll, limit=2, **({"continue": cont} if cont else {}))
            names += [o["metadata"]["name"] for o in r["result"]["items"]]
            cont = r["result"]["metadata"].get("continue")
            if not cont:
                break
        self.assertEqual(names, ["s0", "s1", "s2", "s3", "s4"])
        r, _ = self.d.call(op="list", path=coll, labelSelector="tier=(")
        self.assertEqual(r["code"], -3, r)  # 400 BadRequest
        r, _ = self.d.call(op="patch", path=coll + "/s0",
                           patch={"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "now"}}})
        self.assertEqual(r["result"]["metadata"]["annotations"], {"reconcile.fluxcd.io/requestedAt": "now"})
        self.assertEqual(self.d.call(op="patch", path=coll + "/nope", patch={})[0]["code"], CAP_ENOTFOUND)
        n = len(SRV.get_requests())
        r, _ = self.d.call(op="delete", path=coll + "/s0", propagation="Foreground")
        self.assertTrue(r["ok"], r)
        self.assertEqual(requests_since(n)[0]["query"], {"propagationPolicy": "Foreground"})
        r, _ = self.d.call(op="get", path=coll + "/s0")
        self.assertEqual(r["code"], CAP_ENOTFOUND)
        self.assertEqual(r["message"], 'kubernetes api: secrets "s0" not found')
        self.assertEqual(self.d.call(op="delete", path=coll + "/s0")[0]["code"], CAP_ENOTFOUND)

    def test_rate_limited_retry_after_honoured(self):
        path = SECRETS + "/rl"
        SRV.inject("status", code=429, retry_after=1, method="GET", path="/secrets/rl$", count=1)
        n = len(SRV.get_requests())
        r, _ = self.d.call(op="get", path=path)
        self.assertEqual(r["code"], CAP_ENOTFOUND, r)  # retried after the 429, then answered
        reqs = requests_since(n, path=path)
        self.assertEqual([q["status"] for q in reqs], [429, 404])
        gap = reqs[1]["time"] - reqs[0]["time"]
        self.assertGreaterEqual(gap, 0.95)
        self.assertLess(gap, 3.0)
        # A long Retry-After is bounded by --retry-after-max-ms, and retries end.
        d = driver(self, "--kubeconfig", SRV.kubeconfig(), "--retry-after-max-ms", "300", "--max-retries", "2")
        SRV.inject("status", code=429, retry_after=60, method="GET", path="/secrets/rl$", count=5)
        try:
            n = len(SRV.get_requests())
            r, _ = d.call(op="get", path=path)
        finally:
            SRV.clear_faults()
        self.assertEqual(r["code"], CAP_ERATELIMIT, r)
        self.assertTrue(r["retryable"])
        self.assertEqual(len(requests_since(n, path=path)), 3)
        self.assertLess(r["ms"], 3000)
        self.assertGreaterEqual(r["ms"], 550)
        # A Retry-After past the call's deadline ends the call at once.
        SRV.inject("status", code=429, retry_after=5, method="GET", path="/secrets/rl$", count=1)
        try:
            r, _ = d.call(op="get", path=path, timeoutMs=200)
        finally:
            SRV.clear_faults()
        self.assertIn(r["code"], (CAP_ERATELIMIT, CAP_ETIMEOUT))

    def test_server_errors_are_retryable(self):
        SRV.inject("status", code=503, method="GET", path="/secrets/e5$", count=1)
        r, _ = self.d.call(op="get", path=SECRETS + "/e5")
        self.assertEqual(r["code"], CAP_EUNAVAILABLE)
        self.assertTrue(r["retryable"])
        # (libcurl itself retries once when a reused connection dies, so drop every try.)
        SRV.inject("drop", method="GET", path="/secrets/e6$", count=None)
        try:
            r, _ = self.d.call(op="get", path=SECRETS + "/e6")
        finally:
            SRV.clear_faults()
        self.assertEqual(r["code"], CAP_EUNAVAILABLE, r)
        self.assertIn("unreachable", r["message"])
        self.assertEqual(self.d.call(op="get", path=SECRETS + "/e6")[0]["code"], CAP_ENOTFOUND)

    def test_parallel_calls(self):
        SRV.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "par", "namespace": "tenant-a"}})
        t = time.time()
        r, _ = self.d.call(op="parallel", path=SECRETS + "/par", threads=8, count=25)
        self.assertEqual(r["result"], {"ok": 200, "failed": 0})
        print("200 GETs from 8 threads in %.2fs" % (time.time() - t))


class Timeouts(unittest.TestCase):
    def test_server_that_never_answers(self):
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(8)
        self.addCleanup(lsock.close)
        path = SRV.kubeconfig(server="https://127.0.0.1:%d" % lsock.getsockname()[1])
        d = driver(self, "--kubeconfig", path, "--timeout-ms", "800")
        t = time.time()
        r, _ = d.call(op="get", path=SECRETS + "/x")
        self.assertEqual(r["code"], CAP_ETIMEOUT, r)
        self.assertTrue(0.7 <= time.time() - t < 3, time.time() - t)
        self.assertTrue(r["retryable"])
        # After the TLS handshake, no answer: the per-call deadline ends it.
        d2 = driver(self, "--kubeconfig", SRV.kubeconfig())
        SRV.inject("hang", method="GET", path="/secrets/hang$", count=1)
        r, _ = d2.call(op="get", path=SECRETS + "/hang", timeoutMs=700)
        SRV.release_hangs()
        self.assertEqual(r["code"], CAP_ETIMEOUT, r)
        self.assertTrue(650 <= r["ms"] < 2500, r["ms"])


class Watch(unittest.TestCase):
    def setUp(self):
        self.d = driver(self, "--kubeconfig", SRV.kubeconfig())

    def later(self, fn, delay=0.0):
        def run():
            time.sleep(delay)
            fn()
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.addCleanup(t.join, 10)

    def wait_watch_requests(self, n0, count, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = requests_since(n0, verb="watch", status=200)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError("fewer than %d watch requests" % count)

    def test_until_provisioned_with_reconnect(self):
        SRV.put(cluster("w1"))
        n0 = len(SRV.get_requests())

        def script():
            self.wait_watch_requests(n0, 1)
            SRV.set_status("cluster.x-k8s.io/v1beta1", "clusters", "tenant-a", "w1", {"phase": "Provisioning"})
            time.sleep(0.2)
            SRV.drop_watches()  # the apiserver restarts
            self.wait_watch_requests(n0, 2)
            SRV.set_status("cluster.x-k8s.io/v1beta1", "clusters", "tenant-a", "w1", {"phase": "Provisioned"})
        self.later(script)
        r, events = self.d.call(op="watch", path=CLUSTERS, timeoutMs=15000,
                                until={"name": "w1", "field": "status.phase", "equals": "Provisioned"})
        self.assertTrue(r["ok"], r)
        self.assertEqual(events[0]["event"], "LIST")
        self.assertIn("w1", events[0]["items"])
        phases = [e.get("value") for e in events if e["event"] == "MODIFIED"]
        self.assertEqual(phases, ["Provisioning", "Provisioned"])
        self.assertGreaterEqual(r["result"]["connects"], 2)
        self.assertEqual(r["result"]["relists"], 0)
        watches = requests_since(n0, verb="watch")
        # The reconnect resumed from the last version seen, not from scratch.
        self.assertTrue(all(w["query"].get("resourceVersion") for w in watches))
        self.assertEqual(watches[0]["query"]["allowWatchBookmarks"], "true")
        self.assertGreater(int(watches[1]["query"]["resourceVersion"]), int(watches[0]["query"]["resourceVersion"]))

    def test_drop_in_the_middle_of_a_stream(self):
        SRV.put(cluster("w2"))
        n0 = len(SRV.get_requests())
        SRV.inject("watch_drop", path="/clusters$", after=1, count=1)

        def script():
            self.wait_watch_requests(n0, 1)
            SRV.set_status("cluster.x-k8s.io/v1beta1", "clusters", "tenant-a", "w2", {"phase": "Provisioning"})
            self.wait_watch_requests(n0, 2)
            SRV.set_status("cluster.x-k8s.io/v1beta1", "clusters", "tenant-a", "w2", {"phase": "Provisioned"})
        self.later(script)
        r, events = self.d.call(op="watch", path=CLUSTERS, timeoutMs=15000,
                                until={"name": "w2", "field": "status.phase", "equals": "Provisioned"})
        self.assertTrue(r["ok"], r)
        self.assertEqual([e.get("value") for e in events if e["event"] == "MODIFIED"], ["Provisioning", "Provisioned"])
        self.assertEqual(r["result"]["relists"], 0)

    def _relist(self, mode):
        SRV.set_options(gone_mode=mode)
        self.addCleanup(SRV.set_options, gone_mode="event")
        SRV.put(cluster("g-" + mode))
        old_rv = SRV.current_rv()
        SRV.set_status("cluster.x-k8s.io/v1beta1", "clusters", "tenant-a", "g-" + mode, {"phase": "Provisioned"})
        SRV.compact()  # old_rv is now too old
        n0 = len(SRV.get_requests())
        r, events = self.d.call(op="watch", path=CLUSTERS, resourceVersion=old_rv, timeoutMs=10000,
                                until={"name": "g-" + mode, "field": "status.phase", "equals": "Provisioned"})
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["result"]["relists"], 1)
        self.assertEqual(events[0]["event"], "LIST")  # the state came from the relist
        self.assertEqual([q["verb"] for q in requests_since(n0)][:2], ["watch", "list"])
        return r

    def test_gone_as_error_event_relists(self):
        self._relist("event")

    def test_gone_as_http_status_relists(self):
        self._relist("http")

    def test_gone_while_watching_relists(self):
        SRV.put(cluster("g3"))
        n0 = len(SRV.get_requests())

        def script():
            self.wait_watch_requests(n0, 1)
            SRV.inject("gone", path="/clusters$", count=1)
            SRV.drop_watches()
            time.sleep(0.3)
            SRV.set_status("cluster.x-k8s.io/v1beta1", "clusters", "tenant-a", "g3", {"phase": "Provisioned"})
        self.later(script)
        r, events = self.d.call(op="watch", path=CLUSTERS, timeoutMs=10000,
                                until={"name": "g3", "field": "status.phase", "equals": "Provisioned"})
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["result"]["relists"], 1)
        self.assertEqual([e["event"] for e in events].count("LIST"), 2)

    def test_bookmarks_advance_resource_version(self):
        n0 = len(SRV.get_requests())

        def script():
            self.wait_watch_requests(n0, 1)
            for i in range(3):  # changes elsewhere move the store's version on
                SRV.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c%d" % i, "namespace": "other"}})
            time.sleep(0.8)
            SRV.drop_watches()
        self.later(script)
        r, events = self.d.call(op="watch", path="/api/v1/namespaces/quiet/configmaps", timeoutMs=2500, until={})
        self.assertEqual(r["code"], CAP_ETIMEOUT, r)  # nothing happened in "quiet"
        self.assertGreaterEqual(r["stats"]["bookmarks"], 2)
        self.assertEqual(r["stats"]["resourceVersion"], SRV.current_rv())
        watches = requests_since(n0, verb="watch")
        self.assertGreaterEqual(len(watches), 2)
        # The reconnect used the version the bookmarks carried.
        self.assertGreater(int(watches[1]["query"]["resourceVersion"]), int(watches[0]["query"]["resourceVersion"]))
        self.assertNotIn("ADDED", [e["event"] for e in events])

    def test_until_deleted_with_finalizer(self):
        obj = cluster("fin")
        obj["metadata"]["finalizers"] = ["cluster.cluster.x-k8s.io"]
        SRV.put(obj)
        r, _ = self.d.call(op="delete", path=CLUSTERS + "/fin", propagation="Foreground")
        self.assertTrue(r["result"]["metadata"].get("deletionTimestamp"), r)
        self.assertTrue(self.d.call(op="get", path=CLUSTERS + "/fin")[0]["ok"])  # still there
        self.later(lambda: SRV.remove_finalizers("cluster.x-k8s.io/v1beta1", "clusters", "tenant-a", "fin"), 0.5)
        r, events = self.d.call(op="watch", path=CLUSTERS, timeoutMs=10000, until={"name": "fin", "deleted": True})
        self.assertTrue(r["ok"], r)
        self.assertEqual(events[-1]["event"], "DELETED")
        self.assertEqual(self.d.call(op="get", path=CLUSTERS + "/fin")[0]["code"], CAP_ENOTFOUND)

    def test_watch_deadline(self):
        t = time.time()
        r, _ = self.d.call(op="watch", path="/api/v1/namespaces/nothing/secrets", timeoutMs=700, until={})
        self.assertEqual(r["code"], CAP_ETIMEOUT)
        self.assertTrue(0.6 < time.time() - t < 3)


    def test_stop_flag(self):
        t = time.time()
        r, _ = self.d.call(op="watch", path="/api/v1/namespaces/nothing/secrets", timeoutMs=20000, until={},
                           stopAfterMs=400)
        self.assertEqual(r["code"], -15, r)  # CAP_ERETRY: stopped, not failed
        self.assertTrue(0.35 < time.time() - t < 2.5, time.time() - t)


class DoubleProcess(unittest.TestCase):
    """The double run as its own process and driven through its control endpoint, as tests
    in other languages or other processes use it."""

    def test_control_endpoint(self):
        import http.client
        import ssl
        d = tempfile.mkdtemp(prefix="kube-double-proc-")
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "..", "doubles", "kube_apiserver.py"), "--dir", d],
                             stdout=subprocess.PIPE, text=True)
        try:
            info = json.loads(p.stdout.readline())
            ctx = ssl.create_default_context(cafile=info["ca"])

            def control(method, **kw):
                conn = http.client.HTTPSConnection("127.0.0.1", info["port"], context=ctx, timeout=10)
                conn.request("POST", "/_control/" + method, body=json.dumps(kw),
                             headers={"X-Control-Token": info["controlToken"], "Content-Type": "application/json"})
                r = conn.getresponse()
                body = json.loads(r.read())
                conn.close()
                return r.status, body
            code, body = control("put", obj=cluster("proc-1"))
            self.assertEqual(code, 200, body)
            dr = driver(self, "--kubeconfig", info["kubeconfig"]["tokenFile"])
            r, _ = dr.call(op="get", path=CLUSTERS + "/proc-1")
            self.assertTrue(r["ok"], r)
            code, body = control("set_status", api_version="cluster.x-k8s.io/v1beta1", resource="clusters",
                                 namespace="tenant-a", name="proc-1", status={"phase": "Provisioned"})
            self.assertEqual(body["result"]["status"], {"phase": "Provisioned"})
            code, body = control("rotate_token")
            self.assertEqual(code, 200)
            r, _ = dr.call(op="get", path=CLUSTERS + "/proc-1")  # the token file was rewritten
            self.assertEqual(r["result"]["status"]["phase"], "Provisioned")
            code, body = control("get_requests")
            self.assertEqual([q["verb"] for q in body["result"]], ["get", "get"])
            self.assertEqual(control("nope")[0], 404)
            conn = http.client.HTTPSConnection("127.0.0.1", info["port"], context=ctx, timeout=10)
            conn.request("POST", "/_control/compact", body="{}", headers={"X-Control-Token": "wrong"})
            self.assertEqual(conn.getresponse().status, 403)
            conn.close()
        finally:
            p.terminate()
            p.wait(10)
            p.stdout.close()
            shutil.rmtree(d, ignore_errors=True)


class InCluster(unittest.TestCase):
    def test_service_account(self):
        sa = tempfile.mkdtemp(prefix="sa-")
        with open(os.path.join(sa, "token"), "w") as f:
            f.write(SRV.token)
        with open(SRV.pki["ca_crt"]) as src, open(os.path.join(sa, "ca.crt"), "w") as dst:
            dst.write(src.read())
        with open(os.path.join(sa, "namespace"), "w") as f:
            f.write("tenant-a")
        d = driver(self, "--in-cluster", "--sa-dir", sa, "--host", "127.0.0.1", "--port", str(SRV.port))
        self.assertEqual(d.config["result"]["namespace"], "tenant-a")
        self.assertEqual(d.config["result"]["server"], SRV.url)
        self.assertEqual(d.call(op="get", path=SECRETS + "/x")[0]["code"], CAP_ENOTFOUND)
        new = SRV.rotate_token()  # the kubelet rewrites the projected token
        with open(os.path.join(sa, "token.tmp"), "w") as f:
            f.write(new)
        os.replace(os.path.join(sa, "token.tmp"), os.path.join(sa, "token"))
        self.assertEqual(d.call(op="get", path=SECRETS + "/x")[0]["code"], CAP_ENOTFOUND)


class ZNoSecrets(unittest.TestCase):
    """Runs last (unittest sorts classes by name): nothing any driver printed holds a credential."""

    def test_outputs_hold_no_credentials(self):
        self.assertTrue(OUTPUTS, "no driver output was collected")
        with open(SRV.pki["client_key"]) as f:
            key_lines = [line for line in f.read().splitlines() if line and not line.startswith("-----")]
        with open(SRV.pki["client_key"], "rb") as f:
            key_b64 = base64.b64encode(f.read()).decode()
        text = "\n".join(OUTPUTS)
        for secret in [SRV.token, "tok-late-" + "a" * 20, "not-the-token-123", key_b64[:40]] + key_lines:
            self.assertNotIn(secret, text)
        self.assertNotIn("tok-", text.replace("tokenFile", ""))


if __name__ == "__main__":
    unittest.main(verbosity=2)
