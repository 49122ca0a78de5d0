"""Two ends of issue 5, black-box:

  * the whole life of a DEDICATED tenant with a GCP environment against the kube-apiserver
    double: create -> Provisioned -> kubeconfig (byte for byte the Secret's content) -> scale
    the workers -> delete, with the committed cluster.yaml holding the Cluster API GCP objects;
  * GitOps only (no CAPSTAN_KUBECONFIG): tenants and environments are created, changed and
    deleted end to end, and every job says in each of its cluster steps that it was skipped
    because capstan runs GitOps only.

Flux and Cluster API are played by test_kube_flow.FakeControllers, extended here so that "Flux"
also applies every object of each committed cluster.yaml (kind, name, namespace and
spec.replicas: enough to see that a change of the workers reaches the cluster's
MachineDeployment) and prunes those whose file is gone."""
import base64
import os
import re
import shutil
import tempfile
import unittest

import harness
import secretscan
from harness import assert_problem
from test_kube_flow import CAPI, FakeControllers, kube_apiserver

PG = None
GCP_PROJECT = "capstan-test-project"
KUBECONFIG_BYTES = None  # set in setUpModule


def setUpModule():
    global PG, KUBECONFIG_BYTES
    PG = harness.shared_postgres()
    # a kubeconfig with a long CA, a token, a UTF-8 comment, CRLF line ends and no final
    # newline: served unchanged or not at all
    ca = base64.b64encode(os.urandom(3000)).decode()
    token = "tok-" + os.urandom(16).hex()
    secretscan.record(token)
    KUBECONFIG_BYTES = ("apiVersion: v1\r\nkind: Config\r\n# cluster gcp-team-prod \u00e9t\u00e9 \u2713\r\nclusters:\r\n"
                        "- name: gcp-team-prod\r\n  cluster:\r\n    server: https://34.76.0.1:6443\r\n"
                        "    certificate-authority-data: %s\r\nusers:\r\n- name: admin\r\n  user:\r\n"
                        "    token: %s" % (ca, token)).encode()


def documents(text):
    """[(apiVersion, kind, name, namespace, spec.replicas or None)] of a rendered multi-document
    YAML file, read with patterns (the rendering's layout: two-space indent, quoted values)."""
    out = []
    for doc in re.split(r"(?m)^---\s*$", text):
        av = re.search(r"(?m)^apiVersion: (\S+)$", doc)
        kind = re.search(r"(?m)^kind: (\S+)$", doc)
        md = re.search(r"(?ms)^metadata:\n((?:  .*\n?)*)", doc)
        spec = re.search(r"(?ms)^spec:\n((?:  .*\n?)*)", doc)
        if not (av and kind and md):
            continue
        name = re.search(r"(?m)^  name: \"?([^\"\n]+)\"?$", md.group(1))
        ns = re.search(r"(?m)^  namespace: \"?([^\"\n]+)\"?$", md.group(1))
        rep = re.search(r"(?m)^  replicas: (\d+)$", spec.group(1)) if spec else None
        out.append((av.group(1), kind.group(1), name and name.group(1), ns and ns.group(1),
                    int(rep.group(1)) if rep else None))
    return out


class FluxAppliesEverything(FakeControllers):
    """FakeControllers, plus: Flux applies every object of each cluster.yaml (besides the
    Cluster, which FakeControllers makes and drives) and prunes those that went away; the
    kubeconfig Secrets hold KUBECONFIG_BYTES."""

    def __init__(self, api, repo):
        self.pinned = None
        super().__init__(api, repo)
        self.owned = set()  # (apiVersion, resource, namespace, name) applied from Git

        self.pinned = None  # the tip one tick works on

    def git(self, *args):
        if self.pinned is not None and args[:1] == ("rev-parse",):
            return self.pinned + "\n"
        return super().git(*args)

    def tick(self):
        # one tip for the whole tick: the objects applied are those of the revision that the
        # Kustomization then reports, even when capstan pushes in between
        tip = (self.git("rev-parse", "-q", "--verify", "refs/heads/main") or "").strip()
        self.pinned = tip
        try:
            if tip and tip != self.applied and not self.paused:
                self.apply_objects(tip)  # before the Kustomization says the revision is applied
            super().tick()
        finally:
            self.pinned = None

    def kubeconfig(self, name):
        return KUBECONFIG_BYTES.decode()

    def apply_objects(self, tip):
        now = set()
        for path in (self.git("ls-tree", "-r", "--name-only", tip) or "").split():
            if not path.endswith("/cluster.yaml"):
                continue
            for av, kind, name, ns, replicas in documents(self.git("show", "%s:%s" % (tip, path)) or ""):
                if kind == "Cluster":
                    continue
                resource = kube_apiserver.resource_for_kind(kube_apiserver.group_of(av), kind)
                obj = {"apiVersion": av, "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": {}}
                if replicas is not None:
                    obj["spec"]["replicas"] = replicas
                cur = self.api.get(av, resource, ns, name)
                if not cur or cur.get("spec") != obj["spec"]:
                    self.api.put(obj, resource=resource)
                now.add((av, resource, ns, name))
        for av, resource, ns, name in self.owned - now:
            self.api.delete_object(av, resource, ns, name)
        self.owned = now


class DedicatedGcp(unittest.TestCase):
    def setUp(self):
        self.api = kube_apiserver.KubeApiServer().start()
        self.fleet = harness.Fleet(PG, env={
            "CAPSTAN_KUBECONFIG": self.api.kubeconfig(auth="token"), "CAPSTAN_READY_POLL": "200ms",
            "CAPSTAN_READY_TIMEOUT": "60s", "CAPSTAN_GCP_PROJECT": GCP_PROJECT})
        self.ctl = FluxAppliesEverything(self.api, self.fleet.repo_url)
        self.ctl.start()

    def tearDown(self):
        try:
            self.ctl.stop()
            if self.fleet:
                self.fleet.close()
        finally:
            self.api.stop()

    def job(self, r, timeout=60):
        self.assertEqual(r.status, 202, r)
        j = self.fleet.wait_job(r.json["job"]["id"], timeout=timeout)
        for s in j["steps"]:
            self.assertIn(s["state"], ("succeeded", "skipped"), j)
            if s["name"].startswith(("flux-", "wait-")):
                self.assertEqual(s["state"], "succeeded", j)  # the cluster steps really ran
        return j

    def machine_deployment(self):
        return self.api.get(CAPI, "machinedeployments", "tenant-gcp-team", "gcp-team-prod-md-0")

    def test_whole_life_of_a_dedicated_gcp_environment(self):
        f = self.fleet
        r = f.request("POST", "/api/v1/tenants", harness.tenant_body(
            "gcp-team", isolation="dedicated", provider="gcp", region="europe-west1"))
        t = r.json["tenant"]
        self.assertEqual((t["isolation"], t["provider"], t["region"]), ("dedicated", "gcp", "europe-west1"))
        self.job(r)

        r = f.request("POST", "/api/v1/tenants/gcp-team/environments",
                      {"name": "prod", "kubernetesVersion": "v1.30.4", "workers": {"replicas": 2}})
        self.assertEqual(r.status, 202, r)
        e = r.json["environment"]
        self.assertEqual(e["controlPlane"], {"replicas": 1, "machineType": "e2-standard-2"})
        self.assertEqual(e["workers"], {"replicas": 2, "machineType": "e2-standard-4"})
        self.assertEqual(e["cluster"]["name"], "gcp-team-prod")
        self.assertEqual(e["cluster"]["namespace"], "tenant-gcp-team")
        # before the cluster is ready there is no kubeconfig to serve
        assert_problem(f.request("GET", "/api/v1/tenants/gcp-team/environments/prod/kubeconfig"), 409)
        j = self.job(r)
        self.assertIn("Provisioned", [s for s in j["steps"] if s["name"] == "wait-cluster"][0]["message"])
        e = f.request("GET", "/api/v1/tenants/gcp-team/environments/prod").json
        self.assertEqual((e["state"], e["cluster"]["phase"], e["gitCommit"]), ("ready", "Provisioned", j["result"]["commit"]))

        # the committed cluster: Cluster API objects of the GCP provider, with the request's values
        text = f.show("tenants/gcp-team/environments/prod/cluster.yaml")
        docs = documents(text)
        kinds = {kind: (av, name, ns, rep) for av, kind, name, ns, rep in docs}
        for kind in ("Cluster", "GCPCluster", "KubeadmControlPlane", "GCPMachineTemplate", "MachineDeployment",
                     "KubeadmConfigTemplate"):
            self.assertIn(kind, kinds, text)
        self.assertNotIn("VCluster", text)
        self.assertTrue(all(ns == "tenant-gcp-team" for _, _, _, ns, _ in docs), docs)
        self.assertEqual(kinds["GCPCluster"][0], "infrastructure.cluster.x-k8s.io/v1beta1")
        self.assertEqual(kinds["KubeadmControlPlane"][3], 1)
        self.assertEqual(kinds["MachineDeployment"][3], 2)
        self.assertRegex(text, r'(?m)^  project: "?%s"?$' % GCP_PROJECT)
        self.assertRegex(text, r'(?m)^  region: "?europe-west1"?$')
        self.assertRegex(text, r'(?m)^      instanceType: "?e2-standard-4"?$')
        self.assertRegex(text, r'(?m)^  version: "?v1\.30\.4"?$')
        self.assertEqual(self.machine_deployment()["spec"]["replicas"], 2)  # what Flux applied
        dest = tempfile.mkdtemp(prefix="capstan-gcp-")
        try:
            rc, out = harness.validate_tree(f.checkout(os.path.join(dest, "clone")))
            self.assertEqual(rc, 0, out)
        finally:
            shutil.rmtree(dest, ignore_errors=True)

        # the kubeconfig: exactly the Secret's bytes, never in the log
        secret = self.api.get("v1", "secrets", "tenant-gcp-team", "gcp-team-prod-kubeconfig")
        r = f.request("GET", "/api/v1/tenants/gcp-team/environments/prod/kubeconfig")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("content-type"), "application/yaml")
        self.assertEqual(r.raw, base64.b64decode(secret["data"]["value"]))
        self.assertEqual(r.raw, KUBECONFIG_BYTES)
        token = KUBECONFIG_BYTES.decode().rsplit("token: ", 1)[1]
        self.assertNotIn(token, f.app.log())

        # scale the workers: a new generation, committed and applied to the MachineDeployment
        r = f.request("PATCH", "/api/v1/tenants/gcp-team/environments/prod", {"workers": {"replicas": 5}})
        self.assertEqual(r.json["job"]["kind"], "environment.update")
        j = self.job(r)
        e = f.request("GET", "/api/v1/tenants/gcp-team/environments/prod").json
        self.assertEqual((e["workers"]["replicas"], e["generation"], e["observedGeneration"], e["state"]),
                         (5, 2, 2, "ready"))
        self.assertEqual(e["gitCommit"], j["result"]["commit"])
        docs = {kind: rep for _, kind, _, _, rep in documents(f.show("tenants/gcp-team/environments/prod/cluster.yaml"))}
        self.assertEqual((docs["MachineDeployment"], docs["KubeadmControlPlane"]), (5, 1))
        self.assertEqual(self.machine_deployment()["spec"]["replicas"], 5)
        self.assertEqual(f.request("GET", "/api/v1/tenants/gcp-team/environments/prod/kubeconfig").raw,
                         KUBECONFIG_BYTES)

        # delete: the folder leaves Git, the cluster and its objects leave the management cluster
        j = self.job(f.request("DELETE", "/api/v1/tenants/gcp-team/environments/prod"))
        self.assertIn("gone", [s for s in j["steps"] if s["name"] == "wait-cluster-gone"][0]["message"])
        self.assertIsNone(f.show("tenants/gcp-team/environments/prod/cluster.yaml"))
        self.assertIsNone(self.api.get(CAPI, "clusters", "tenant-gcp-team", "gcp-team-prod"))
        self.assertIsNone(self.machine_deployment())
        e = f.request("GET", "/api/v1/tenants/gcp-team/environments/prod").json
        self.assertEqual((e["state"], e["cluster"]["phase"]), ("deleted", None))
        j = self.job(f.request("DELETE", "/api/v1/tenants/gcp-team"))
        self.assertEqual(j["kind"], "tenant.delete")
        self.assertEqual([x for x in f.files() if x.startswith("tenants/gcp-team/")], [])
        self.assertEqual(len(f.job_trailers()), len(set(f.job_trailers())))
        fleet, self.fleet = self.fleet, None
        self.assertEqual(fleet.close(), [0])


class GitOpsOnly(unittest.TestCase):
    """No CAPSTAN_KUBECONFIG: everything works, and every job says its cluster steps were
    skipped because capstan runs GitOps only."""

    def test_end_to_end_and_each_job_says_gitops_only(self):
        f = harness.Fleet(PG, env={"CAPSTAN_GCP_PROJECT": GCP_PROJECT})
        try:
            f.create_tenant("plain")
            f.create_env("plain", "dev")
            f.create_env("plain", "pr-7", type="ephemeral", ttl="24h")
            f.create_tenant("dedi", isolation="dedicated", provider="gcp", region="europe-west1")
            f.create_env("dedi", "prod", workers={"replicas": 2})
            r = f.request("PATCH", "/api/v1/tenants/dedi/environments/prod", {"workers": {"replicas": 3}})
            self.assertEqual(r.status, 202, r)
            f.wait_job(r.json["job"]["id"])
            self.assertIn("replicas: 3", f.show("tenants/dedi/environments/prod/cluster.yaml"))
            self.assertIsNotNone(f.show("tenants/plain/environments/dev/cluster.yaml"))
            self.assertIsNotNone(f.show("tenants/dedi/environments/prod/cluster.yaml"))
            e = f.request("GET", "/api/v1/tenants/plain/environments/dev").json
            self.assertEqual((e["state"], e["cluster"]["phase"]), ("ready", None))
            p = assert_problem(f.request("GET", "/api/v1/tenants/plain/environments/dev/kubeconfig"), 409)
            self.assertIn("GitOps only", p["detail"])
            for method, path, body in (("PATCH", "/api/v1/tenants/plain", {"displayName": "Plain team"}),
                                       ("DELETE", "/api/v1/tenants/plain/environments/pr-7", None),
                                       ("DELETE", "/api/v1/tenants/plain?cascade=true", None),
                                       ("DELETE", "/api/v1/tenants/dedi/environments/prod", None),
                                       ("DELETE", "/api/v1/tenants/dedi", None)):
                r = f.request(method, path, body)
                self.assertEqual(r.status, 202, r)
                f.wait_job(r.json["job"]["id"])
            self.assertEqual([x for x in f.files() if x.startswith("tenants/plain/") or x.startswith("tenants/dedi/")], [])

            jobs = f.request("GET", "/api/v1/jobs?limit=100").json["items"]
            kinds = sorted(set(j["kind"] for j in jobs))
            self.assertEqual(kinds, ["environment.create", "environment.delete", "environment.update",
                                     "tenant.create", "tenant.delete", "tenant.update"])
            self.assertEqual(len(jobs), 11)
            cluster_steps = 0
            for j in jobs:
                self.assertEqual(j["state"], "succeeded", j)
                self.assertIsNone(j["error"], j)
                self.assertRegex(j["result"]["commit"], "^[0-9a-f]{40}$")
                for s in j["steps"]:
                    if s["name"] == "flux-reconcile" or s["name"].startswith("wait-"):
                        cluster_steps += 1
                        self.assertEqual(s["state"], "skipped", (j["kind"], s))
                        self.assertIn("GitOps only", s["message"], (j["kind"], s))
                    elif s["name"] == "platform-repository":
                        self.assertEqual(s["state"], "skipped", (j["kind"], s))
                    else:
                        self.assertEqual(s["state"], "succeeded", (j["kind"], s))
                names = [s["name"] for s in j["steps"]]
                self.assertIn("flux-reconcile", names, j)
                self.assertTrue(any(n.startswith("wait-") for n in names), j)
            self.assertEqual(cluster_steps, 2 * len(jobs))
        finally:
            codes = f.close()
        self.assertEqual(codes, [0])


if __name__ == "__main__":
    unittest.main(verbosity=2)
