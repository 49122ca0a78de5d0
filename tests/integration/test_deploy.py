"""The Kubernetes deployment without a cluster: deploy/kubernetes and deploy/flux pass
../shared/tools/validate-manifests --kustomize (with deploy/schemas added for the kinds
../shared/schemas lacks: Deployment, Service, PodDisruptionBudget), and the rendered manifests
keep the promises README.md makes: two replicas with /readyz and /healthz probes, a hardened
security context with the data folder on an emptyDir, secrets by reference only, and RBAC
limited to the calls capstan makes."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness
from deployfiles import (DOCKERFILE, EXTRA_SCHEMAS, FLUX_DIR, KUBE_DIR, SRC, capstan_settings,
                         dockerfile_stages, yaml_docs)


class Manifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="capstan-manifests-")
        # ../shared/schemas plus deploy/schemas (the kinds the shared set lacks)
        cls.schemas = os.path.join(cls.tmp, "schemas")
        shutil.copytree(os.path.join(os.path.dirname(os.path.dirname(harness.validator())), "schemas"), cls.schemas)
        for root, dirs, files in os.walk(cls.schemas):  # the shared copy is read-only
            os.chmod(root, 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o644)
        with open(os.path.join(cls.schemas, "index.json")) as f:
            index = json.load(f)
        with open(os.path.join(EXTRA_SCHEMAS, "index.json")) as f:
            cls.extra = json.load(f)
        for av, kinds in cls.extra["kinds"].items():
            for kind, ent in kinds.items():
                assert kind not in index["kinds"].get(av, {}), "../shared/schemas has %s %s now" % (av, kind)
                dst = os.path.join(cls.schemas, ent["file"])
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy(os.path.join(EXTRA_SCHEMAS, ent["file"]), dst)
                index["kinds"].setdefault(av, {})[kind] = ent
        with open(os.path.join(cls.schemas, "index.json"), "w") as f:
            json.dump(index, f)
        r = subprocess.run(["kubectl", "kustomize", KUBE_DIR], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert r.returncode == 0, r.stderr
        cls.objs = yaml_docs(r.stdout)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def validate(self, *args):
        r = subprocess.run(["/usr/bin/python3", harness.validator()] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, cwd=SRC)
        return r.returncode, r.stdout

    def test_validator_with_the_shared_schemas(self):
        """The plain command: everything the shared schemas know passes; what remains are only
        the kinds they lack, which deploy/schemas adds (next test)."""
        rc, out = self.validate("--kustomize", "deploy/flux")
        self.assertEqual(rc, 0, out)
        rc, out = self.validate("--kustomize", "deploy/kubernetes")
        problems = [l for l in out.splitlines() if ": " in l and not re.match(r"^\d+ objects checked", l)]
        lacking = {(av, k) for av, kinds in self.extra["kinds"].items() for k in kinds}
        for p in problems:
            m = re.search(r": (\S+)/(\w+) \S+: unknown kind: no schema", p)
            self.assertTrue(m, "a real problem: " + p)
            self.assertIn((m.group(1), m.group(2)), lacking, p)

    def test_validator_with_the_deploy_schemas(self):
        rc, out = self.validate("--kustomize", "--schemas", self.schemas, "deploy/kubernetes", "deploy/flux")
        self.assertEqual(rc, 0, out)
        self.assertIn("0 problems", out)
        # and the schemas do catch mistakes in those kinds
        bad = os.path.join(self.tmp, "bad")
        shutil.copytree(KUBE_DIR, bad)
        with open(os.path.join(bad, "deployment.yaml")) as f:
            text = f.read()
        with open(os.path.join(bad, "deployment.yaml"), "w") as f:
            f.write(text.replace("readinessProbe:", "readinesProbe:"))
        rc, out = self.validate("--schemas", self.schemas, bad)
        self.assertEqual(rc, 1, out)
        self.assertIn('unknown field "readinesProbe"', out)

    def one(self, kind, name=None):
        found = [o for o in self.objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
        self.assertEqual(len(found), 1, "%s %s" % (kind, name))
        return found[0]

    def test_deployment(self):
        d = self.one("Deployment")
        self.assertEqual(d["spec"]["replicas"], 2)
        self.assertEqual(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)
        pod = d["spec"]["template"]["spec"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(all(labels.get(k) == v for k, v in d["spec"]["selector"]["matchLabels"].items()))
        c = pod["containers"][0]
        self.assertEqual(c["image"], "registry.example.com/platform/capstan:0.1.0")
        env = {e["name"]: e for e in c.get("env", [])}
        port = int(env["CAPSTAN_LISTEN"]["value"].rsplit(":", 1)[1])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports["http"], port)
        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            self.assertIn(c[probe]["httpGet"]["port"], ("http", port))
        for k in ("requests", "limits"):
            self.assertIn("cpu", c["resources"][k])
            self.assertIn("memory", c["resources"][k])
        psc, csc = pod["securityContext"], c["securityContext"]
        self.assertTrue(psc["runAsNonRoot"])
        self.assertEqual(psc["seccompProfile"]["type"], "RuntimeDefault")
        self.assertTrue(csc["readOnlyRootFilesystem"])
        self.assertFalse(csc["allowPrivilegeEscalation"])
        self.assertEqual(csc["capabilities"]["drop"], ["ALL"])
        # the uid of the image's USER
        user = [a for kw, a in dockerfile_stages(DOCKERFILE)[-1]["instructions"] if kw == "USER"][0]
        self.assertEqual(str(psc["runAsUser"]), user.split(":")[0])
        # the data folder is an emptyDir (the root file system is read-only)
        vols = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        self.assertIn("emptyDir", vols[mounts[env["CAPSTAN_DATA_DIR"]["value"]]])
        # terminationGracePeriod covers the preStop pause plus the shutdown (HTTP, then jobs)
        cm = self.one("ConfigMap", "capstan")["data"]
        shutdown = int(cm["CAPSTAN_SHUTDOWN_TIMEOUT"].rstrip("s"))
        self.assertGreater(pod["terminationGracePeriodSeconds"],
                           c["lifecycle"]["preStop"]["sleep"]["seconds"] + 2 * shutdown)

    def test_secrets_by_reference_only(self):
        settings = capstan_settings()
        d = self.one("Deployment")
        c = d["spec"]["template"]["spec"]["containers"][0]
        cm = self.one("ConfigMap", "capstan")["data"]
        for k in cm:
            self.assertIn(k, settings, "the ConfigMap sets an unknown setting %s" % k)
            self.assertFalse(settings[k], "secret setting %s in the ConfigMap" % k)
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        secret_dirs = {mounts[n] for n, v in vols.items() if "secret" in v and n in mounts}
        for e in c.get("env", []):
            name = e["name"]
            base = name[:-5] if name.endswith("_FILE") else name
            self.assertIn(base, settings, "unknown setting %s" % name)
            if settings[base]:
                self.assertTrue(name.endswith("_FILE") or "valueFrom" in e, "secret %s given by value" % name)
                if name.endswith("_FILE"):
                    self.assertIn(os.path.dirname(e["value"]), secret_dirs)
            else:
                self.assertFalse(name.endswith("_FILE"), name)
        for name in ("CAPSTAN_DATABASE_URL", "CAPSTAN_ADMIN_TOKEN"):
            self.assertIn(name + "_FILE", {e["name"] for e in c["env"]})
        self.assertFalse([o for o in self.objs if o["kind"] == "Secret"], "a Secret with values in the manifests")

    def test_service_and_budget(self):
        d = self.one("Deployment")
        labels = d["spec"]["template"]["metadata"]["labels"]
        svc = self.one("Service")
        self.assertTrue(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()))
        self.assertEqual(svc["spec"]["ports"][0]["targetPort"], "http")
        pdb = self.one("PodDisruptionBudget")
        self.assertTrue(all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items()))
        self.assertLess(pdb["spec"]["minAvailable"], d["spec"]["replicas"])
        for o in self.objs:
            if o["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding") and o["kind"] != "Role" \
                    and o["kind"] != "RoleBinding":
                self.assertEqual(o["metadata"]["namespace"], "capstan-system", o["kind"])

    def test_rbac_only_what_capstan_calls(self):
        allowed = {  # (apiGroup, resource): verbs, from server/jobs/cluster.c
            ("cluster.x-k8s.io", "clusters"): {"get", "list"},
            ("source.toolkit.fluxcd.io", "gitrepositories"): {"get", "patch"},
            ("kustomize.toolkit.fluxcd.io", "kustomizations"): {"get", "patch"},
            ("", "secrets"): {"get"},
        }
        roles = {(o["kind"], o["metadata"]["name"]): o for o in self.objs if o["kind"] in ("Role", "ClusterRole")}
        for (kind, name), role in roles.items():
            for rule in role["rules"]:
                for g in rule["apiGroups"]:
                    for res in rule["resources"]:
                        self.assertIn((g, res), allowed, "%s %s grants %s/%s" % (kind, name, g, res))
                        self.assertTrue(set(rule["verbs"]) <= allowed[(g, res)], "%s %s: %s" % (kind, name, rule))
                        if g in ("source.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io"):
                            self.assertEqual(kind, "Role")
                            self.assertEqual(role["metadata"]["namespace"], "flux-system")
                            self.assertTrue(rule.get("resourceNames"), "Flux objects by name only")
        for o in self.objs:
            if o["kind"] in ("RoleBinding", "ClusterRoleBinding"):
                self.assertEqual(o["subjects"], [{"kind": "ServiceAccount", "name": "capstan",
                                                  "namespace": "capstan-system"}])
                role = roles[(o["roleRef"]["kind"], o["roleRef"]["name"])]
                if o["kind"] == "ClusterRoleBinding":
                    # never a cluster-wide grant on Secrets
                    self.assertNotIn("secrets", [r for rule in role["rules"] for r in rule["resources"]])
        self.one("ServiceAccount", "capstan")
        self.assertEqual(self.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"], "capstan")
        self.assertEqual(self.one("ConfigMap", "capstan")["data"]["CAPSTAN_KUBE_IN_CLUSTER"], "true")

    def test_flux_deploys_capstan(self):
        r = subprocess.run(["kubectl", "kustomize", FLUX_DIR], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        objs = yaml_docs(r.stdout)
        repo = [o for o in objs if o["kind"] == "GitRepository"][0]
        ks = [o for o in objs if o["kind"] == "Kustomization"][0]
        self.assertEqual(ks["spec"]["sourceRef"], {"kind": "GitRepository", "name": repo["metadata"]["name"]})
        self.assertEqual(ks["metadata"]["namespace"], repo["metadata"]["namespace"])
        self.assertTrue(os.path.isfile(os.path.join(SRC, ks["spec"]["path"], "kustomization.yaml")))
        self.assertTrue(ks["spec"]["prune"])
        self.assertIn({"apiVersion": "apps/v1", "kind": "Deployment", "name": "capstan",
                       "namespace": "capstan-system"}, ks["spec"]["healthChecks"])
        # the image override names the image the base sets
        self.assertEqual(ks["spec"]["images"][0]["name"], "registry.example.com/platform/capstan")


if __name__ == "__main__":
    unittest.main(verbosity=2)
