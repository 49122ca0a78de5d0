"""`capstan render`: the real binary writes the fleet repository tree of a tenant and its
environments for every flavour; every tree passes ../shared/tools/validate-manifests --kustomize
(schemas of the served API versions plus `kubectl kustomize`), the output is byte-identical across
runs, hostile free text stays inside its quoted values, and operator templates replace flavours.

Needs python3-yaml (also needed by the validator); no database, no network."""
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import harness

import yaml

VALIDATOR = os.path.normpath(os.path.join(harness.SOURCE_DIR, "..", "shared", "tools",
                                          "validate-manifests"))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

TENANT = {
    "name": "team-a", "displayName": "Team A", "owners": ["alice@example.com", "bob@example.com"],
    "isolation": "vcluster", "provider": "vcluster",
    "quota": {"cpu": "16", "memory": "64Gi", "environments": 5},
    "labels": {"cost-center": "4711"},
    "platformRepository": "https://git.example.com/platform/tenant-team-a.git",
    "state": "ready", "generation": 2, "createdAt": "2026-01-02T03:04:05.678Z",
}
ENV_EPHEMERAL = {"name": "dev", "tenant": "team-a", "type": "ephemeral", "ttl": "72h",
                 "kubernetesVersion": "v1.30.4"}
ENV_PERMANENT = {"name": "prod", "tenant": "team-a", "type": "permanent",
                 "kubernetesVersion": "v1.31.2"}
MACHINES = {
    "gcp": {"controlPlane": {"replicas": 3, "machineType": "e2-standard-2"},
            "workers": {"replicas": 2, "machineType": "e2-standard-4"}},
    "aws": {"controlPlane": {"replicas": 1, "machineType": "t3.large"},
            "workers": {"replicas": 0, "machineType": "t3.xlarge"}},
}
REGION = {"gcp": "europe-west1", "aws": "eu-central-1"}
PROVIDER_ENV = {"CAPSTAN_GCP_PROJECT": "capstan-test-project", "CAPSTAN_AWS_SSH_KEY_NAME": "ops"}

HOSTILE = [
    'x\nkind: Secret',
    'a: b',
    '{x: y}',
    '"quoted" and \'single\'',
    '"}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: stolen',
    '# not a comment',
    'back\\slash \\n',
    '[1, 2] & *alias !tag %x @y `z`',
    'line\u2028sep\ttab\r\x01\x1b',
    '\u00c9quipe \u65e5\u672c \U0001F680',
    '',
]


def tenant_for(flavour, platform=True, **extra):
    t = copy.deepcopy(TENANT)
    if flavour != "vcluster":
        t["isolation"] = "dedicated"
        t["provider"] = flavour
        t["region"] = REGION[flavour]
    if not platform:
        t["platformRepository"] = None
    t.update(extra)
    return t


def env_for(flavour, base):
    e = copy.deepcopy(base)
    if flavour != "vcluster":
        e.update(copy.deepcopy(MACHINES[flavour]))
    return e


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def tree_files(root):
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for fn in filenames:
            p = os.path.join(dirpath, fn)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


class Render(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="capstan-render-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_json(self, name, obj):
        p = os.path.join(self.tmp, name)
        with open(p, "w", encoding="utf-8") as f:
            json.dump(obj, f)
        return p

    def render(self, tenant, envs=(), out=None, args=(), env=None, expect=0):
        """Runs capstan render; returns (out dir, completed process)."""
        tp = self.write_json("tenant-%d.json" % len(os.listdir(self.tmp)), tenant)
        cmd = ["render", "--tenant", tp]
        for i, e in enumerate(envs):
            cmd += ["--environment", self.write_json("env-%d-%d.json" % (len(os.listdir(self.tmp)), i), e)]
        out = out or os.path.join(self.tmp, "out-%d" % len(os.listdir(self.tmp)))
        cmd += ["--out", out] + list(args)
        e = dict(PROVIDER_ENV)
        e.update(env or {})
        r = harness.run_capstan(cmd, env=e)
        self.assertEqual(r.returncode, expect, "capstan %s\nstdout: %s\nstderr: %s" % (" ".join(cmd), r.stdout, r.stderr))
        return out, r

    def validate(self, root):
        r = subprocess.run([PYTHON, VALIDATOR, "--kustomize", root], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, "validate-manifests found problems:\n%s%s" % (r.stdout, r.stderr))
        self.assertRegex(r.stdout, r"\d+ objects checked, 0 problems")
        return int(r.stdout.strip().splitlines()[-1].split()[0])

    # --- every flavour, with and without environments and platform repository ---------------

    def test_flavours_validate(self):
        cases = []
        for flavour in ("vcluster", "gcp", "aws"):
            cases.append((flavour, True, []))
            cases.append((flavour, False, [ENV_PERMANENT]))
            cases.append((flavour, True, [ENV_EPHEMERAL, ENV_PERMANENT]))
        for flavour, platform, envs in cases:
            with self.subTest(flavour=flavour, platform=platform, envs=[e["name"] for e in envs]):
                t = tenant_for(flavour, platform)
                out, _ = self.render(t, [env_for(flavour, e) for e in envs])
                files = sorted(tree_files(out))
                want = ["clusters/mgmt/tenants.yaml", "tenants/kustomization.yaml",
                        "tenants/team-a/kustomization.yaml", "tenants/team-a/namespace.yaml",
                        "tenants/team-a/network-policy.yaml", "tenants/team-a/quota.yaml",
                        "tenants/team-a/rbac.yaml"]
                if platform:
                    want.append("tenants/team-a/platform-source.yaml")
                for e in envs:
                    d = "tenants/team-a/environments/%s/" % e["name"]
                    want += [d + "cluster.yaml", d + "kustomization.yaml"]
                    if platform:
                        want.append(d + "platform-sync.yaml")
                self.assertEqual(files, sorted(want))
                n = self.validate(out)
                self.assertGreaterEqual(n, 7 + len(envs) * 2)
                self.check_tree(out, flavour, platform, envs)

    def check_tree(self, out, flavour, platform, envs):
        tdir = os.path.join(out, "tenants", "team-a")
        kust = load_all(os.path.join(tdir, "kustomization.yaml"))[0]
        files = sorted(fn for fn in os.listdir(tdir) if fn.endswith(".yaml") and fn != "kustomization.yaml")
        self.assertEqual(kust["resources"],
                         files + ["environments/%s" % n for n in sorted(x["name"] for x in envs)])
        idx = load_all(os.path.join(out, "tenants", "kustomization.yaml"))[0]
        self.assertEqual(idx["resources"], ["team-a"])
        entry = load_all(os.path.join(out, "clusters", "mgmt", "tenants.yaml"))[0]
        self.assertEqual((entry["kind"], entry["spec"]["path"], entry["spec"]["prune"]),
                         ("Kustomization", "./tenants", True))
        for dirpath, _, filenames in os.walk(tdir):
            for fn in filenames:
                if fn == "kustomization.yaml":
                    continue
                for doc in load_all(os.path.join(dirpath, fn)):
                    labels = doc["metadata"]["labels"]
                    self.assertEqual(labels["app.kubernetes.io/managed-by"], "capstan")
                    self.assertEqual(labels["capstan.io/tenant"], "team-a")
                    if doc["kind"] != "Namespace":
                        self.assertEqual(doc["metadata"]["namespace"], "tenant-team-a")
                    if "/environments/" in dirpath:
                        self.assertEqual(labels["capstan.io/environment"], os.path.basename(dirpath))
        for e in envs:
            edir = os.path.join(tdir, "environments", e["name"])
            docs = load_all(os.path.join(edir, "cluster.yaml"))
            kinds = sorted(d["kind"] for d in docs)
            cluster = [d for d in docs if d["kind"] == "Cluster"][0]
            self.assertEqual(cluster["apiVersion"], "cluster.x-k8s.io/v1beta2")
            self.assertEqual(cluster["metadata"]["name"], "team-a-" + e["name"])
            self.assertEqual(cluster["metadata"]["labels"]["capstan.io/environment-type"], e["type"])
            if flavour == "vcluster":
                self.assertEqual(kinds, ["Cluster", "VCluster"])
                vc = [d for d in docs if d["kind"] == "VCluster"][0]
                self.assertEqual(vc["spec"]["helmRelease"]["valuesObject"]["controlPlane"]["distro"]["k8s"]["version"],
                                 e["kubernetesVersion"])
                self.assertEqual(cluster["spec"]["controlPlaneRef"]["kind"], "VCluster")
            else:
                prefix = "GCP" if flavour == "gcp" else "AWS"
                self.assertEqual(kinds, sorted(["Cluster", prefix + "Cluster", "KubeadmControlPlane",
                                                prefix + "MachineTemplate", prefix + "MachineTemplate",
                                                "MachineDeployment", "KubeadmConfigTemplate"]))
                kcp = [d for d in docs if d["kind"] == "KubeadmControlPlane"][0]
                md = [d for d in docs if d["kind"] == "MachineDeployment"][0]
                self.assertEqual(kcp["spec"]["replicas"], MACHINES[flavour]["controlPlane"]["replicas"])
                self.assertEqual(kcp["spec"]["version"], e["kubernetesVersion"])
                self.assertEqual(md["spec"]["replicas"], MACHINES[flavour]["workers"]["replicas"])
                infra = [d for d in docs if d["kind"] == prefix + "Cluster"][0]
                self.assertEqual(infra["spec"]["region"], REGION[flavour])
                if flavour == "gcp":
                    self.assertEqual(infra["spec"]["project"], "capstan-test-project")
                else:
                    self.assertEqual(infra["spec"]["sshKeyName"], "ops")
            sync = os.path.join(edir, "platform-sync.yaml")
            self.assertEqual(os.path.exists(sync), platform)
            if platform:
                ks = load_all(sync)[0]
                self.assertEqual(ks["metadata"]["namespace"], "tenant-team-a")
                self.assertEqual(ks["spec"]["kubeConfig"]["secretRef"],
                                 {"name": "team-a-%s-kubeconfig" % e["name"], "key": "value"})
                self.assertEqual(ks["spec"]["path"], "./environments/" + e["name"])
                self.assertIs(ks["spec"]["prune"], True)

    # --- determinism ---------------------------------------------------------------------------

    def test_byte_identical(self):
        for flavour in ("vcluster", "gcp", "aws"):
            with self.subTest(flavour=flavour):
                t = tenant_for(flavour)
                envs = [env_for(flavour, ENV_EPHEMERAL), env_for(flavour, ENV_PERMANENT)]
                a, _ = self.render(t, envs)
                b, _ = self.render(t, list(reversed(envs)))
                fa, fb = tree_files(a), tree_files(b)
                self.assertEqual(sorted(fa), sorted(fb))
                for p in fa:
                    self.assertEqual(fa[p], fb[p], p)

    # --- hostile input -------------------------------------------------------------------------

    def test_hostile_text_stays_in_values(self):
        for i, s in enumerate(HOSTILE):
            with self.subTest(i=i, text=s):
                owner = s or "x"  # an owner must not be empty
                t = tenant_for("vcluster", displayName=s, owners=[owner, "alice@example.com"],
                               labels={"team": s})
                out, _ = self.render(t, [ENV_EPHEMERAL])
                tdir = os.path.join(out, "tenants", "team-a")
                ns = load_all(os.path.join(tdir, "namespace.yaml"))
                self.assertEqual(len(ns), 1)
                self.assertEqual(ns[0], {
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "tenant-team-a",
                                 "labels": {"app.kubernetes.io/managed-by": "capstan",
                                            "capstan.io/tenant": "team-a", "team": s},
                                 "annotations": {"capstan.io/display-name": s}}})
                rbs = load_all(os.path.join(tdir, "rbac.yaml"))
                self.assertEqual(len(rbs), 2)
                subjects = sorted(rb["subjects"][0]["name"] for rb in rbs)
                self.assertEqual(subjects, sorted([owner, "alice@example.com"]))
                for rb in rbs:
                    self.assertEqual(sorted(rb), ["apiVersion", "kind", "metadata", "roleRef", "subjects"])
                    self.assertEqual(rb["kind"], "RoleBinding")
                    self.assertRegex(rb["metadata"]["name"], r"^owner-[0-9a-f]{16}$")
                    self.assertEqual(sorted(rb["metadata"]), ["annotations", "labels", "name", "namespace"])
                    self.assertEqual(rb["roleRef"], {"apiGroup": "rbac.authorization.k8s.io",
                                                     "kind": "ClusterRole", "name": "admin"})
                    self.assertEqual(len(rb["subjects"]), 1)
                    self.assertEqual(sorted(rb["subjects"][0]), ["apiGroup", "kind", "name"])
                    self.assertEqual(rb["subjects"][0]["kind"], "User")
                    self.assertEqual(rb["metadata"]["annotations"], {"capstan.io/owner": rb["subjects"][0]["name"]})
                # the hostile text is found nowhere but in those values
                for dirpath, _, filenames in os.walk(out):
                    for fn in filenames:
                        for doc in load_all(os.path.join(dirpath, fn)):
                            self.assertNotIn("Secret", json.dumps(doc.get("kind")))
                            for key in walk_keys(doc):
                                if s:
                                    self.assertNotEqual(key, s)
                # displayName/owner only in quoted values: the tree with a valid label still
                # validates when the label value is a plain one
                t2 = tenant_for("vcluster", displayName=s, owners=[owner])
                out2, _ = self.render(t2, [ENV_EPHEMERAL])
                self.validate(out2)

    # --- operator templates --------------------------------------------------------------------

    def test_templates_dir(self):
        tdir = os.path.join(self.tmp, "templates")
        os.mkdir(tdir)
        src = os.path.join(harness.SOURCE_DIR, "templates", "cluster-vcluster.yaml")
        with open(src, encoding="utf-8") as f:
            text = f.read()
        custom = text.replace("capstan.io/environment-type: ${ENVIRONMENT_TYPE}",
                              "capstan.io/environment-type: ${ENVIRONMENT_TYPE}\n    example.com/operator: replaced")
        self.assertNotEqual(custom, text)
        with open(os.path.join(tdir, "cluster-vcluster.yaml"), "w", encoding="utf-8") as f:
            f.write(custom)
        # by flag
        out, _ = self.render(tenant_for("vcluster"), [ENV_EPHEMERAL], args=["--templates-dir", tdir])
        docs = load_all(os.path.join(out, "tenants/team-a/environments/dev/cluster.yaml"))
        self.assertEqual(docs[0]["metadata"]["labels"]["example.com/operator"], "replaced")
        self.validate(out)
        # by environment variable, and flavours missing from the folder use the built-in ones
        out, _ = self.render(tenant_for("gcp"), [env_for("gcp", ENV_PERMANENT)],
                             env={"CAPSTAN_TEMPLATES_DIR": tdir})
        docs = load_all(os.path.join(out, "tenants/team-a/environments/prod/cluster.yaml"))
        self.assertIn("GCPCluster", [d["kind"] for d in docs])
        out, _ = self.render(tenant_for("vcluster"), [ENV_EPHEMERAL], env={"CAPSTAN_TEMPLATES_DIR": tdir})
        docs = load_all(os.path.join(out, "tenants/team-a/environments/dev/cluster.yaml"))
        self.assertEqual(docs[0]["metadata"]["labels"]["example.com/operator"], "replaced")

        # a template with an unknown variable fails, naming it and the template
        with open(os.path.join(tdir, "cluster-vcluster.yaml"), "w", encoding="utf-8") as f:
            f.write(text.replace("version: ${KUBERNETES_VERSION}", "version: ${K8S_VERSION_TYPO}"))
        out, r = self.render(tenant_for("vcluster"), [ENV_EPHEMERAL], args=["--templates-dir", tdir], expect=1)
        self.assertIn("${K8S_VERSION_TYPO}", r.stderr)
        self.assertIn("cluster-vcluster.yaml", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertFalse(os.path.exists(out))
        # a variable used as a key is refused
        with open(os.path.join(tdir, "cluster-vcluster.yaml"), "w", encoding="utf-8") as f:
            f.write(text.replace("enabled: true", "${TENANT}: true"))
        _, r = self.render(tenant_for("vcluster"), [ENV_EPHEMERAL], args=["--templates-dir", tdir], expect=1)
        self.assertIn("${TENANT}", r.stderr)
        self.assertIn("key", r.stderr)

    # --- errors ----------------------------------------------------------------------------------

    def test_invalid_input(self):
        cases = [
            (dict(TENANT, name="../escape"), [], "name"),
            (dict(TENANT, owners="alice"), [], "owners"),
            (dict(TENANT, provider="gcp"), [], "provider"),
            (tenant_for("gcp"), [ENV_PERMANENT], "controlPlane"),
            (TENANT, [dict(ENV_EPHEMERAL, type="forever")], "type"),
            (TENANT, [ENV_EPHEMERAL, ENV_EPHEMERAL], "twice"),
            (dict(TENANT, labels={"capstan.io/tenant": "x"}), [], "reserved"),
            # characters kustomize cannot write back would block Flux for the whole tenant
            (dict(TENANT, displayName="del\x7f"), [], "U+007F"),
        ]
        for tenant, envs, word in cases:
            with self.subTest(word=word):
                out, r = self.render(tenant, envs, expect=1)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertTrue(r.stderr.startswith("capstan render: "), r.stderr)
                self.assertIn(word, r.stderr)
                self.assertFalse(os.path.exists(out))
        # gcp without a project names the setting
        tp = self.write_json("t-gcp.json", tenant_for("gcp"))
        ep = self.write_json("e-gcp.json", env_for("gcp", ENV_PERMANENT))
        r = harness.run_capstan(["render", "--tenant", tp, "--environment", ep, "--out",
                                 os.path.join(self.tmp, "o")])
        self.assertEqual(r.returncode, 1)
        self.assertIn("CAPSTAN_GCP_PROJECT", r.stderr)
        # not JSON
        bad = os.path.join(self.tmp, "bad.json")
        with open(bad, "w") as f:
            f.write("{not json")
        r = harness.run_capstan(["render", "--tenant", bad, "--out", os.path.join(self.tmp, "o")])
        self.assertEqual(r.returncode, 1)
        self.assertIn("not valid JSON", r.stderr)

    def test_usage(self):
        tp = self.write_json("t.json", TENANT)
        for args in (["render"], ["render", "--tenant", tp], ["render", "--out", self.tmp],
                     ["render", "--tenant", tp, "--out", self.tmp, "--bogus", "1"],
                     ["render", "--tenant", tp, "--out", self.tmp, "stray"],
                     ["render", "--tenant"]):
            with self.subTest(args=args):
                r = harness.run_capstan(args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertTrue(r.stderr.strip())
        r = harness.run_capstan(["render", "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("--tenant", r.stdout)
        self.assertIn("--templates-dir", r.stdout)
        r = harness.run_capstan(["--help"])
        self.assertIn("render", r.stdout)
        self.assertIn("CAPSTAN_TEMPLATES_DIR", r.stdout)

    def test_kubeconfig_reader_binding(self):
        out, _ = self.render(TENANT, [], args=["--kubeconfig-reader", "capstan-system/capstan"])
        docs = load_all(os.path.join(out, "tenants/team-a/rbac.yaml"))
        rb = [d for d in docs if d["metadata"]["name"] == "capstan-kubeconfigs"]
        self.assertEqual(len(rb), 1)
        self.assertEqual(rb[0]["roleRef"], {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                            "name": "capstan-kubeconfigs"})
        self.assertEqual(rb[0]["subjects"], [{"kind": "ServiceAccount", "name": "capstan",
                                              "namespace": "capstan-system"}])
        self.validate(out)
        out, _ = self.render(TENANT, [])
        self.assertFalse(any(d["metadata"]["name"] == "capstan-kubeconfigs"
                             for d in load_all(os.path.join(out, "tenants/team-a/rbac.yaml"))))

    def test_network_policy_allows_named_namespaces(self):
        out, _ = self.render(TENANT, [], args=["--network-policy-allow", "flux-system,capi-system"])
        docs = load_all(os.path.join(out, "tenants/team-a/network-policy.yaml"))
        froms = docs[0]["spec"]["ingress"][0]["from"]
        self.assertEqual(froms[0], {"podSelector": {}})
        self.assertEqual([f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for f in froms[1:]],
                         ["flux-system", "capi-system"])
        self.validate(out)
        # by default: the tenant's own namespace only (GITOPS.md)
        out, _ = self.render(TENANT, [])
        docs = load_all(os.path.join(out, "tenants/team-a/network-policy.yaml"))
        self.assertEqual(docs[0]["spec"]["ingress"], [{"from": [{"podSelector": {}}]}])
        _, r = self.render(TENANT, [], args=["--network-policy-allow", "Bad!"], expect=2)
        self.assertIn("--network-policy-allow", r.stderr)

    def test_mgmt_cluster(self):
        out, _ = self.render(TENANT, [ENV_EPHEMERAL], args=["--mgmt-cluster", "hub-1"])
        self.assertTrue(os.path.exists(os.path.join(out, "clusters", "hub-1", "tenants.yaml")))
        self.assertFalse(os.path.exists(os.path.join(out, "clusters", "mgmt")))
        out, _ = self.render(TENANT, [], env={"CAPSTAN_MGMT_CLUSTER": "hub-2"})
        self.assertTrue(os.path.exists(os.path.join(out, "clusters", "hub-2", "tenants.yaml")))
        self.validate(out)
        # a bad setting is a usage error naming the flag, as for capstan serve
        _, r = self.render(TENANT, [], args=["--mgmt-cluster", "Bad/Name"], expect=2)
        self.assertIn("--mgmt-cluster", r.stderr)


def walk_keys(v):
    if isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from walk_keys(x)
    elif isinstance(v, list):
        for x in v:
            yield from walk_keys(x)


if __name__ == "__main__":
    unittest.main(verbosity=2)
