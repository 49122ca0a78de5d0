"""Jobs against the management cluster: capstan asks Flux to reconcile, waits until Flux has
applied its commit and the environment's Cluster is Provisioned, serves the kubeconfig, and
waits until clusters are gone on deletion.

There is no kube-apiserver, Flux or Cluster API to run here, so the test uses the kube-apiserver
double (tests/doubles/kube_apiserver.py) and plays Flux and Cluster API itself with a small
controller thread (FakeControllers below): it reads the fleet repository like Flux would, sets
the Kustomization's lastAppliedRevision, creates the Cluster objects of the committed
cluster.yaml files (Provisioning, then Provisioned with its control plane ready), writes the
<cluster>-kubeconfig Secret, and prunes clusters whose folders are gone."""
import base64
import os
import subprocess
import sys
import threading
import time
import unittest

import harness
from harness import assert_problem

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "tests", "doubles"))
import kube_apiserver  # noqa: E402

PG = None
CAPI = "cluster.x-k8s.io/v1beta2"


class FakeControllers(threading.Thread):
    """Flux (kustomize-controller) and Cluster API, reduced to what capstan observes."""

    def __init__(self, api, repo):
        super().__init__(daemon=True)
        self.api, self.repo = api, repo
        self.stop_flag = threading.Event()
        self.never_ready = set()  # cluster names that stay Provisioning
        self.paused = False       # Flux applies nothing while paused
        self.applied = None
        self.ticks = {}
        api.put({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                 "metadata": {"name": "flux-system", "namespace": "flux-system"}, "spec": {"url": "x"}})
        api.put({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                 "metadata": {"name": "tenants", "namespace": "flux-system"}, "spec": {"path": "./tenants"}})

    def git(self, *args):
        r = subprocess.run(["git", "--git-dir", self.repo] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        return r.stdout if r.returncode == 0 else None

    def run(self):
        while not self.stop_flag.is_set():
            try:
                self.tick()
            except Exception as e:  # keep playing; the test sees the effects
                print("fake controllers:", e)
            time.sleep(0.1)

    def tick(self):
        tip = (self.git("rev-parse", "-q", "--verify", "refs/heads/main") or "").strip()
        if tip and tip != self.applied and not self.paused:
            files = (self.git("ls-tree", "-r", "--name-only", tip) or "").split()
            want = set()
            for f in files:
                p = f.split("/")
                if len(p) == 5 and p[0] == "tenants" and p[2] == "environments" and p[4] == "cluster.yaml":
                    want.add((p[1], p[3]))
            for t, e in want:
                ns, name = "tenant-" + t, "%s-%s" % (t, e)
                if not self.api.get(CAPI, "clusters", ns, name):
                    self.api.put({"apiVersion": CAPI, "kind": "Cluster", "metadata": {
                        "name": name, "namespace": ns, "labels": {"capstan.io/tenant": t}}, "spec": {}})
                    self.api.set_status(CAPI, "clusters", ns, name, {"phase": "Provisioning"})
                    self.ticks[name] = 0
            for obj in self.api.list_objects(CAPI, "clusters"):
                md = obj["metadata"]
                t = md["namespace"][len("tenant-"):]
                e = md["name"][len(t) + 1:]
                if (t, e) not in want:
                    self.api.delete_object(CAPI, "clusters", md["namespace"], md["name"])
            self.api.set_status("kustomize.toolkit.fluxcd.io/v1", "kustomizations", "flux-system", "tenants", {
                "lastAppliedRevision": "main@sha1:" + tip,
                "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                                "message": "Applied revision: main@sha1:" + tip}]})
            self.applied = tip
        for obj in self.api.list_objects(CAPI, "clusters"):
            md, name = obj["metadata"], obj["metadata"]["name"]
            if obj.get("status", {}).get("phase") == "Provisioned" or name in self.never_ready:
                continue
            self.ticks[name] = self.ticks.get(name, 0) + 1
            if self.ticks[name] >= 15:  # about 1.5 s: long enough to be seen waiting
                self.api.put({"apiVersion": "v1", "kind": "Secret", "metadata": {
                    "name": name + "-kubeconfig", "namespace": md["namespace"]},
                    "data": {"value": base64.b64encode(self.kubeconfig(name).encode()).decode()}})
                self.api.set_status(CAPI, "clusters", md["namespace"], name, {
                    "phase": "Provisioned", "initialization": {"controlPlaneInitialized": True},
                    "conditions": [{"type": "ControlPlaneAvailable", "status": "True"}]})

    def kubeconfig(self, name):
        """What Cluster API writes into the <name>-kubeconfig Secret (a subclass may change it)."""
        return kubeconfig_of(name)

    def stop(self):
        self.stop_flag.set()
        self.join()


def kubeconfig_of(name):
    return ("apiVersion: v1\nkind: Config\nclusters:\n- name: %s\n  cluster:\n    server: https://%s.example:6443\n"
            "users:\n- name: admin\n  user:\n    token: secret-token-of-%s\n" % (name, name, name))


def setUpModule():
    global PG
    PG = harness.shared_postgres()


class KubeFlow(unittest.TestCase):
    def setUp(self):
        self.api = kube_apiserver.KubeApiServer().start()
        self.env = {"CAPSTAN_KUBECONFIG": self.api.kubeconfig(auth="token"), "CAPSTAN_READY_POLL": "200ms",
                    "CAPSTAN_READY_TIMEOUT": "60s"}
        self.fleet = None
        self.ctl = None

    def start(self, **env):
        e = dict(self.env)
        e.update(env)
        self.fleet = harness.Fleet(PG, env=e)
        self.ctl = FakeControllers(self.api, self.fleet.repo_url)
        self.ctl.start()
        return self.fleet

    def tearDown(self):
        if self.ctl:
            self.ctl.stop()
        if self.fleet:
            codes = self.fleet.close()
            self.assertEqual(codes, [0] * len(codes))
        self.api.stop()

    def test_whole_life_of_a_tenant_and_environment(self):
        f = self.start()
        r = f.create_tenant("life")
        j = f.request("GET", "/api/v1/jobs/" + r.json["job"]["id"]).json
        steps = {s["name"]: s for s in j["steps"]}
        self.assertEqual(steps["flux-reconcile"]["state"], "succeeded")
        self.assertEqual(steps["wait-applied"]["state"], "succeeded")
        # capstan asked Flux to fetch at once
        gr = self.api.get("source.toolkit.fluxcd.io/v1", "gitrepositories", "flux-system", "flux-system")
        self.assertIn("reconcile.fluxcd.io/requestedAt", gr["metadata"].get("annotations", {}))

        r = f.request("POST", "/api/v1/tenants/life/environments", {"name": "dev"})
        self.assertEqual(r.status, 202, r)
        jid = r.json["job"]["id"]
        # before the cluster is ready, the kubeconfig is a 409
        assert_problem(f.request("GET", "/api/v1/tenants/life/environments/dev/kubeconfig"), 409)
        s = harness.SSE(f.app.port, "/api/v1/jobs/%s/events" % jid, timeout=60)
        evs = list(s.events())
        s.close()
        self.assertEqual(evs[-1]["json"]["state"], "succeeded", evs[-3:])
        waits = [e["json"]["data"]["message"] for e in evs if e["event"] == "step"
                 and e["json"]["data"].get("state") == "waiting"]
        self.assertTrue(any("Provisioned" in m for m in waits), waits)
        e = f.request("GET", "/api/v1/tenants/life/environments/dev").json
        self.assertEqual(e["state"], "ready")
        self.assertEqual(e["cluster"]["phase"], "Provisioned")
        r = f.request("GET", "/api/v1/tenants/life/environments/dev/kubeconfig")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("content-type"), "application/yaml")
        self.assertEqual(r.raw.decode(), kubeconfig_of("life-dev"))
        self.assertNotIn("secret-token-of-life-dev", f.app.log())

        r = f.request("DELETE", "/api/v1/tenants/life/environments/dev")
        j = f.wait_job(r.json["job"]["id"], timeout=60)
        self.assertIn("gone", [s for s in j["steps"] if s["name"] == "wait-cluster-gone"][0]["message"])
        self.assertIsNone(self.api.get(CAPI, "clusters", "tenant-life", "life-dev"))
        e = f.request("GET", "/api/v1/tenants/life/environments/dev").json
        self.assertEqual((e["state"], e["cluster"]["phase"]), ("deleted", None))

        f.create_env("life", "qa", timeout=60) if False else f.wait_job(
            f.request("POST", "/api/v1/tenants/life/environments", {"name": "qa"}).json["job"]["id"], timeout=60)
        r = f.request("DELETE", "/api/v1/tenants/life?cascade=true")
        j = f.wait_job(r.json["job"]["id"], timeout=60)
        self.assertEqual([s["state"] for s in j["steps"]][-1], "succeeded")
        self.assertEqual(self.api.list_objects(CAPI, "clusters", "tenant-life"), [])

    def test_cluster_that_never_becomes_ready_fails_then_retry_works(self):
        f = self.start(CAPSTAN_READY_TIMEOUT="3s")
        f.create_tenant("slow")
        self.ctl.never_ready.add("slow-dev")
        r = f.request("POST", "/api/v1/tenants/slow/environments", {"name": "dev"})
        j = f.wait_job(r.json["job"]["id"], states=("failed",), timeout=60)
        self.assertEqual(j["error"]["step"], "wait-cluster")
        self.assertIn("slow-dev", j["error"]["message"])
        self.assertIn("Provisioning", j["error"]["message"])
        self.assertEqual(j["attempt"], 1)  # a timed-out wait is not retried by itself
        e = f.request("GET", "/api/v1/tenants/slow/environments/dev").json
        self.assertEqual((e["state"], e["cluster"]["phase"]), ("failed", "Provisioning"))
        self.ctl.never_ready.discard("slow-dev")
        r = f.request("POST", "/api/v1/jobs/%s/retry" % j["id"], raw=b"")
        self.assertEqual(r.status, 202)
        j = f.wait_job(j["id"], timeout=60)
        self.assertEqual(f.request("GET", "/api/v1/tenants/slow/environments/dev").json["state"], "ready")
        self.assertEqual(f.job_trailers().count(j["id"]), 1)

    def test_a_waiting_job_does_not_hold_back_the_tenant_or_the_workers(self):
        f = self.start(CAPSTAN_WORKERS="1")
        f.create_tenant("busy")
        self.ctl.never_ready.add("busy-one")
        r1 = f.request("POST", "/api/v1/tenants/busy/environments", {"name": "one"})
        r2 = f.request("POST", "/api/v1/tenants/busy/environments", {"name": "two"})
        r3 = f.create_tenant("other", wait=False)
        # with one worker, the second environment and another tenant finish while the first waits
        f.wait_job(r2.json["job"]["id"], timeout=60)
        f.wait_job(r3.json["job"]["id"], timeout=60)
        j1 = f.request("GET", "/api/v1/jobs/" + r1.json["job"]["id"]).json
        self.assertIn(j1["state"], ("queued", "running"))
        self.assertEqual([s["state"] for s in j1["steps"] if s["name"] == "wait-cluster"], ["running"])
        self.ctl.never_ready.discard("busy-one")
        f.wait_job(r1.json["job"]["id"], timeout=60)

    def test_flux_not_applying_is_visible_and_kubeconfig_needs_kube(self):
        f = self.start(CAPSTAN_READY_TIMEOUT="2s")
        self.ctl.paused = True
        r = f.request("POST", "/api/v1/tenants", harness.tenant_body("stuck"))
        j = f.wait_job(r.json["job"]["id"], states=("failed",), timeout=60)
        self.assertEqual(j["error"]["step"], "wait-applied")
        self.assertIn("waiting for Flux to apply commit", j["error"]["message"])
        self.ctl.paused = False
        # GitOps-only capstan cannot serve kubeconfigs
        g = harness.Fleet(PG)
        try:
            g.create_tenant("plain")
            g.create_env("plain", "dev")
            p = assert_problem(g.request("GET", "/api/v1/tenants/plain/environments/dev/kubeconfig"), 409)
            self.assertIn("GitOps only", p["detail"])
        finally:
            g.close()

    def test_wrong_ca_is_refused_at_start(self):
        bad = self.api.kubeconfig(auth="token", ca="wrong")
        f = harness.Fleet(PG, env={"CAPSTAN_KUBECONFIG": bad, "CAPSTAN_READY_TIMEOUT": "2s"})
        try:
            r = f.request("POST", "/api/v1/tenants", harness.tenant_body("tls"))
            j = f.wait_job(r.json["job"]["id"], states=("failed", "queued", "running"), timeout=3) \
                if False else None
            # the flux-reconcile step cannot talk to a server whose certificate it does not trust
            def failed_step():
                j = f.request("GET", "/api/v1/jobs/" + r.json["job"]["id"]).json
                s = [x for x in j["steps"] if x["name"] == "flux-reconcile"][0]
                return s if s["state"] == "failed" else None
            s = harness.wait_until(failed_step, 30, what="flux-reconcile to fail")
            self.assertRegex(s["message"], "(?i)certificate|tls|ssl")
        finally:
            f.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
