"""The self-service API of tenants, environments and jobs (API.md), black-box: the real binary,
a real PostgreSQL and a real fleet repository (a local bare repository here; the concurrency
tests use the Git server). Every 4xx of API.md is exercised."""
import json
import os
import subprocess
import threading
import time
import unittest

import harness
from harness import assert_problem, tenant_body

PG = None
F = None  # one set-up shared by the read-mostly tests


def setUpModule():
    global PG, F
    PG = harness.shared_postgres()
    F = harness.Fleet(PG)


def tearDownModule():
    codes = F.close()
    assert codes == [0], codes


def unique(prefix):
    unique.n += 1
    return "%s-%d" % (prefix, unique.n)


unique.n = 0


def post_chunked_over_limit(path):
    """POSTs a chunked body over the 1 MiB limit; the server reads on, then answers."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", F.app.port, timeout=30)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Authorization", "Bearer " + harness.ADMIN_TOKEN)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        chunk = b"x" * 65536
        try:
            for _ in range(20):
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        except OSError:
            pass
        r = conn.getresponse()
        return harness.Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


class Tenants(unittest.TestCase):
    def test_create_answers_202_with_location_tenant_and_job(self):
        r = F.request("POST", "/api/v1/tenants", tenant_body("acme", labels={"cost-center": "4711"}))
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.header("location"), "/api/v1/tenants/acme")
        t, j = r.json["tenant"], r.json["job"]
        self.assertEqual(t["name"], "acme")
        self.assertEqual(t["isolation"], "vcluster")
        self.assertEqual(t["provider"], "vcluster")
        self.assertEqual(t["state"], "pending")
        self.assertEqual(t["generation"], 1)
        self.assertEqual(t["labels"], {"cost-center": "4711"})
        self.assertIsNone(t["platformRepository"])
        self.assertEqual(j["kind"], "tenant.create")
        self.assertEqual(j["state"], "queued")
        self.assertEqual(j["tenant"], "acme")
        self.assertIsNone(j["environment"])
        self.assertEqual([s["name"] for s in j["steps"]],
                         ["platform-repository", "render", "git-push", "flux-reconcile", "wait-applied"])
        self.assertEqual(j["requestedBy"], "admin")
        done = F.wait_job(j["id"])
        self.assertRegex(done["result"]["commit"], r"^[0-9a-f]{40}$")
        states = {s["name"]: s["state"] for s in done["steps"]}
        self.assertEqual(states["render"], "succeeded")
        self.assertEqual(states["git-push"], "succeeded")
        # GitOps only (no Kubernetes API, no platform provider): the rest is skipped, saying so
        for name in ("platform-repository", "flux-reconcile", "wait-applied"):
            self.assertEqual(states[name], "skipped")
        self.assertIn("GitOps only", [s for s in done["steps"] if s["name"] == "flux-reconcile"][0]["message"])
        g = F.request("GET", "/api/v1/tenants/acme")
        self.assertEqual(g.status, 200)
        self.assertEqual(g.header("etag"), '"1"')
        self.assertEqual(g.json["state"], "ready")
        self.assertEqual(g.json["observedGeneration"], 1)
        self.assertIn("tenants/acme/namespace.yaml", F.files())
        self.assertIn('- "acme"', F.show("tenants/kustomization.yaml"))
        self.assertIn(done["result"]["commit"], [c for c, _ in F.commits()])

    def test_duplicate_name_is_409(self):
        F.create_tenant("dup")
        assert_problem(F.request("POST", "/api/v1/tenants", tenant_body("dup")), 409, "already exists")

    def test_validation_lists_every_bad_field(self):
        body = {"name": "Bad_Name", "displayName": "", "owners": ["not-an-email", "ok@example.com", "ok@example.com"],
                "isolation": "shared", "quota": {"cpu": "lots", "memory": "0", "environments": -1},
                "labels": {"bad key!": "x", "ok": "bad value!"}, "state": "ready", "extra": 1}
        r = F.request("POST", "/api/v1/tenants", body)
        p = assert_problem(r, 422)
        fields = {e["field"] for e in p["errors"]}
        for f in ("name", "displayName", "owners[0]", "owners[2]", "isolation", "quota.cpu", "quota.memory",
                  "quota.environments", "labels.bad key!", "labels.ok", "state", "extra"):
            self.assertIn(f, fields, p["errors"])
        self.assertTrue(all(e["message"] for e in p["errors"]))

    def test_provider_rules(self):
        cases = [
            ({"isolation": "dedicated"}, "provider"),
            ({"isolation": "dedicated", "provider": "gcp"}, "region"),
            ({"isolation": "vcluster", "provider": "aws", "region": "eu-west-1"}, "provider"),
            ({"provider": "vcluster", "region": "europe-west1"}, "region"),
            ({"isolation": "dedicated", "provider": "vcluster"}, "provider"),
        ]
        for extra, field in cases:
            r = F.request("POST", "/api/v1/tenants", tenant_body(unique("prov"), **extra))
            p = assert_problem(r, 422)
            self.assertIn(field, [e["field"] for e in p["errors"]], (extra, p))
        r = F.request("POST", "/api/v1/tenants", tenant_body("gcp-team", isolation="dedicated", provider="gcp",
                                                              region="europe-west1"))
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["tenant"]["region"], "europe-west1")

    def test_name_lengths(self):
        self.assertEqual(F.request("POST", "/api/v1/tenants", tenant_body("a" * 30)).status, 202)
        assert_problem(F.request("POST", "/api/v1/tenants", tenant_body("a" * 31)), 422)

    def test_malformed_json_is_400(self):
        for raw in (b"{", b"[1,2]", b"\"x\"", b"{\"a\":1,\"a\":2}", b"\xff\xfe"):
            r = F.request("POST", "/api/v1/tenants", raw=raw, headers={"Content-Type": "application/json"})
            assert_problem(r, 400)

    def test_empty_body_is_400(self):
        assert_problem(F.request("POST", "/api/v1/tenants", raw=b"", headers={"Content-Type": "application/json"}), 400)

    def test_wrong_content_type_is_415(self):
        for ct in ("text/plain", "application/x-www-form-urlencoded", None):
            r = F.request("POST", "/api/v1/tenants", raw=json.dumps(tenant_body("x1")).encode(),
                          headers={"Content-Type": ct} if ct else {})
            assert_problem(r, 415)
        r = F.request("PATCH", "/api/v1/tenants/acme", raw=b'{"displayName": "x"}',
                      headers={"Content-Type": "application/json"})
        assert_problem(r, 415, "merge-patch")

    def test_body_over_limit_is_413(self):
        # the answer comes from the headers alone, before any of the body is sent
        import socket
        s = socket.create_connection(("127.0.0.1", F.app.port), timeout=30)
        s.sendall(("POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                   % (harness.ADMIN_TOKEN, (1 << 20) + 1)).encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 413"), data[:200])
        self.assertIn(b"application/problem+json", data)
        # a body just under the limit is read (and judged on its content)
        body = json.dumps(tenant_body("big", displayName="x" * 1000)).encode()
        body += b" " * ((1 << 20) - len(body))
        r = F.request("POST", "/api/v1/tenants", raw=body, headers={"Content-Type": "application/json"})
        assert_problem(r, 422)

    def test_chunked_body_over_limit_is_413(self):
        assert_problem(post_chunked_over_limit("/api/v1/tenants"), 413)

    def test_auth_is_required(self):
        for token in (None, "wrong-token-wrong-token"):
            r = F.request("GET", "/api/v1/tenants", token=token)
            assert_problem(r, 401)
            self.assertTrue(r.header("www-authenticate").startswith("Bearer"))
        r = F.request("GET", "/api/v1/tenants", token=None, headers={"Authorization": "Basic Zm9vOmJhcg=="})
        assert_problem(r, 401)

    def test_unknown_tenant_is_404(self):
        for path in ("/api/v1/tenants/nobody", "/api/v1/tenants/NOT-A-NAME", "/api/v1/tenants/nobody/environments",
                     "/api/v1/tenants/nobody/environments/dev"):
            assert_problem(F.request("GET", path), 404)
        assert_problem(F.request("PATCH", "/api/v1/tenants/nobody", {"displayName": "x"}), 404)
        assert_problem(F.request("DELETE", "/api/v1/tenants/nobody"), 404)

    def test_405_lists_methods(self):
        r = F.request("PUT", "/api/v1/tenants/acme", {"x": 1})
        assert_problem(r, 405)
        self.assertEqual(r.header("allow"), "GET, HEAD, PATCH, DELETE")

    def test_patch_bumps_generation_and_commits(self):
        F.create_tenant("patchy")
        r = F.request("PATCH", "/api/v1/tenants/patchy", {"displayName": "Patchy Team", "labels": {"tier": "gold"}},
                      headers={"If-Match": '"1"'})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["tenant"]["generation"], 2)
        self.assertEqual(r.json["tenant"]["displayName"], "Patchy Team")
        self.assertEqual(r.json["job"]["kind"], "tenant.update")
        F.wait_job(r.json["job"]["id"])
        g = F.request("GET", "/api/v1/tenants/patchy")
        self.assertEqual(g.header("etag"), '"2"')
        self.assertEqual(g.json["observedGeneration"], 2)
        self.assertIn("Patchy Team", F.show("tenants/patchy/namespace.yaml"))
        # merge patch: null removes a label
        r = F.request("PATCH", "/api/v1/tenants/patchy", {"labels": {"tier": None}})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["tenant"]["labels"], {})

    def test_patch_if_match_mismatch_is_412(self):
        F.create_tenant("guarded")
        assert_problem(F.request("PATCH", "/api/v1/tenants/guarded", {"displayName": "x"}, headers={"If-Match": '"7"'}), 412)
        assert_problem(F.request("DELETE", "/api/v1/tenants/guarded", headers={"If-Match": '"7"'}), 412)
        assert_problem(F.request("PATCH", "/api/v1/tenants/guarded", {"displayName": "x"}, headers={"If-Match": 'W/"1"'}), 412)
        self.assertEqual(F.request("GET", "/api/v1/tenants/guarded").json["generation"], 1)

    def test_patch_immutable_fields_are_422(self):
        F.create_tenant("fixed")
        for patch, field in (({"name": "other"}, "name"), ({"isolation": "dedicated"}, "isolation"),
                             ({"provider": "gcp"}, "provider"), ({"region": "x"}, "region"),
                             ({"state": "ready"}, "state"), ({"owners": []}, "owners")):
            p = assert_problem(F.request("PATCH", "/api/v1/tenants/fixed", patch), 422)
            self.assertIn(field, [e["field"] for e in p["errors"]], (patch, p))

    def test_list_filters_and_pages(self):
        names = ["lst-%d" % i for i in range(5)]
        for i, n in enumerate(names):
            F.create_tenant(n, wait=False, labels={"group": "lst", "parity": str(i % 2)})
        seen, cursor = [], None
        while True:
            q = "/api/v1/tenants?label=group=lst&limit=2" + ("&cursor=" + cursor if cursor else "")
            r = F.request("GET", q)
            self.assertEqual(r.status, 200, r)
            self.assertLessEqual(len(r.json["items"]), 2)
            seen += [t["name"] for t in r.json["items"]]
            cursor = r.json["nextCursor"]
            if not cursor:
                break
        self.assertEqual(seen, list(reversed(names)))  # newest first
        r = F.request("GET", "/api/v1/tenants?label=group=lst&label=parity=1")
        self.assertEqual(sorted(t["name"] for t in r.json["items"]), ["lst-1", "lst-3"])
        r = F.request("GET", "/api/v1/tenants?state=deleted&label=group=lst")
        self.assertEqual(r.json["items"], [])

    def test_list_is_stable_under_concurrent_inserts(self):
        for i in range(4):
            F.create_tenant("stb-%d" % i, wait=False, labels={"group": "stb"})
        r1 = F.request("GET", "/api/v1/tenants?label=group=stb&limit=2")
        F.create_tenant("stb-new", wait=False, labels={"group": "stb"})
        r2 = F.request("GET", "/api/v1/tenants?label=group=stb&limit=10&cursor=" + r1.json["nextCursor"])
        names = [t["name"] for t in r1.json["items"] + r2.json["items"]]
        self.assertEqual(names, ["stb-3", "stb-2", "stb-1", "stb-0"])

    def test_bad_queries_are_400(self):
        for q in ("limit=0", "limit=501", "limit=x", "cursor=garbage!", "state=happy", "label=novalue",
                  "bogus=1", "cursor=ZTox"):
            assert_problem(F.request("GET", "/api/v1/tenants?" + q), 400)
        assert_problem(F.request("POST", "/api/v1/tenants?dryRun=maybe", tenant_body("dr")), 400)

    def test_dry_run_stores_and_commits_nothing(self):
        before = F.commits()[0][0] if F.commits() else None
        r = F.request("POST", "/api/v1/tenants?dryRun=true", tenant_body("dry-team", displayName='Dry" kind: Secret #'))
        self.assertEqual(r.status, 200, r)
        paths = [f["path"] for f in r.json["files"]]
        self.assertIn("tenants/dry-team/namespace.yaml", paths)
        self.assertIn("tenants/dry-team/kustomization.yaml", paths)
        self.assertEqual(r.json["deleted"], [])
        assert_problem(F.request("GET", "/api/v1/tenants/dry-team"), 404)
        self.assertEqual(F.commits()[0][0] if F.commits() else None, before)
        # invalid input is still a 422 in a dry run
        assert_problem(F.request("POST", "/api/v1/tenants?dryRun=true", tenant_body("Bad!")), 422)

    def test_delete_needs_cascade_with_environments(self):
        F.create_tenant("withenv")
        F.create_env("withenv", "dev")
        p = assert_problem(F.request("DELETE", "/api/v1/tenants/withenv"), 409, "cascade")
        r = F.request("DELETE", "/api/v1/tenants/withenv?dryRun=true&cascade=true")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["deleted"], ["tenants/withenv"])
        r = F.request("DELETE", "/api/v1/tenants/withenv?cascade=true")
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["tenant"]["state"], "deleting")
        F.wait_job(r.json["job"]["id"])
        self.assertEqual(F.request("GET", "/api/v1/tenants/withenv").json["state"], "deleted")
        self.assertEqual(F.request("GET", "/api/v1/tenants/withenv/environments/dev").json["state"], "deleted")
        self.assertFalse(any(f.startswith("tenants/withenv/") for f in F.files()))
        self.assertNotIn("withenv", F.show("tenants/kustomization.yaml"))
        # the name stays taken for 7 days
        assert_problem(F.request("POST", "/api/v1/tenants", tenant_body("withenv")), 409, "deleted")
        assert_problem(F.request("DELETE", "/api/v1/tenants/withenv"), 409)


class Idempotency(unittest.TestCase):
    def test_same_key_same_body_returns_first_answer(self):
        h = {"Idempotency-Key": "key-one"}
        r1 = F.request("POST", "/api/v1/tenants", tenant_body("idem"), headers=h)
        r2 = F.request("POST", "/api/v1/tenants", tenant_body("idem"), headers=h)
        self.assertEqual(r1.status, 202)
        self.assertEqual(r2.status, 202)
        self.assertEqual(r1.json["job"]["id"], r2.json["job"]["id"])
        self.assertEqual(r2.header("location"), "/api/v1/tenants/idem")
        self.assertEqual(r2.header("idempotent-replayed"), "true")
        jobs = F.request("GET", "/api/v1/jobs?tenant=idem").json["items"]
        self.assertEqual(len(jobs), 1)

    def test_same_key_other_body_is_422(self):
        h = {"Idempotency-Key": "key-two"}
        self.assertEqual(F.request("POST", "/api/v1/tenants", tenant_body("idem2"), headers=h).status, 202)
        p = assert_problem(F.request("POST", "/api/v1/tenants", tenant_body("idem3"), headers=h), 422)
        self.assertIn("Idempotency-Key", [e["field"] for e in p["errors"]])

    def test_same_key_at_once_makes_one_job(self):
        h = {"Idempotency-Key": "key-race"}
        results = []

        def go():
            results.append(F.request("POST", "/api/v1/tenants", tenant_body("race"), headers=h))
        ts = [threading.Thread(target=go) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertTrue(all(r.status == 202 for r in results), results)
        self.assertEqual(len({r.json["job"]["id"] for r in results}), 1)
        self.assertEqual(len(F.request("GET", "/api/v1/jobs?tenant=race").json["items"]), 1)

    def test_bad_key_is_400(self):
        assert_problem(F.request("POST", "/api/v1/tenants", tenant_body("idem4"), headers={"Idempotency-Key": "has space"}), 400)
        assert_problem(F.request("POST", "/api/v1/tenants", tenant_body("idem4"), headers={"Idempotency-Key": "k" * 256}), 400)


class Environments(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        F.create_tenant("envs", quota={"cpu": "8", "memory": "16Gi", "environments": 2})
        F.create_tenant("dedi", isolation="dedicated", provider="aws", region="eu-central-1",
                        quota={"cpu": "64", "memory": "256Gi", "environments": 10})

    def test_create_and_read(self):
        r = F.create_env("envs", "dev", wait=False, kubernetesVersion="v1.31.2")
        self.assertEqual(r.header("location"), "/api/v1/tenants/envs/environments/dev")
        e = r.json["environment"]
        self.assertEqual(e["tenant"], "envs")
        self.assertEqual(e["type"], "permanent")
        self.assertEqual(e["cluster"], {"name": "envs-dev", "namespace": "tenant-envs", "phase": None})
        self.assertIsNone(e["expiresAt"])
        j = F.wait_job(r.json["job"]["id"])
        g = F.request("GET", "/api/v1/tenants/envs/environments/dev")
        self.assertEqual(g.json["state"], "ready")
        self.assertEqual(g.json["gitCommit"], j["result"]["commit"])
        self.assertEqual(g.header("etag"), '"1"')
        self.assertIn("tenants/envs/environments/dev/cluster.yaml", F.files())
        self.assertIn("environments/dev", F.show("tenants/envs/kustomization.yaml"))
        assert_problem(F.request("POST", "/api/v1/tenants/envs/environments", {"name": "dev"}), 409, "exists")

    def test_quota_of_environments(self):
        F.create_tenant("tiny", quota={"cpu": "1", "memory": "1Gi", "environments": 1})
        F.create_env("tiny", "one", wait=False)
        assert_problem(F.request("POST", "/api/v1/tenants/tiny/environments", {"name": "two"}), 409, "quota")

    def test_tenant_must_be_ready(self):
        r = F.request("POST", "/api/v1/tenants", tenant_body("notyet"))
        e = F.request("POST", "/api/v1/tenants/notyet/environments", {"name": "dev"})
        if e.status != 202:  # the tenant job may already have finished on a fast machine
            assert_problem(e, 409, "ready")
        F.wait_job(r.json["job"]["id"])

    def test_validation(self):
        cases = [
            ({"name": "Dev"}, "name"),
            ({"name": "a" * 21}, "name"),
            ({"name": "x", "type": "sometimes"}, "type"),
            ({"name": "x", "type": "ephemeral"}, "ttl"),
            ({"name": "x", "type": "ephemeral", "ttl": "30m"}, "ttl"),
            ({"name": "x", "type": "ephemeral", "ttl": "721h"}, "ttl"),
            ({"name": "x", "ttl": "24h"}, "ttl"),
            ({"name": "x", "kubernetesVersion": "1.30"}, "kubernetesVersion"),
            ({"name": "x", "workers": {"replicas": 3}}, "workers"),
            ({"name": "x", "controlPlane": {"replicas": 1}}, "controlPlane"),
            ({"name": "x", "state": "ready"}, "state"),
        ]
        for body, field in cases:
            p = assert_problem(F.request("POST", "/api/v1/tenants/envs/environments", body), 422)
            self.assertIn(field, [e["field"] for e in p["errors"]], (body, p))
        for body, field in (({"name": "x", "controlPlane": {"replicas": 2}}, "controlPlane.replicas"),
                            ({"name": "x", "workers": {"replicas": 101}}, "workers.replicas"),
                            ({"name": "x", "workers": {"machineType": "Big Box"}}, "workers.machineType")):
            p = assert_problem(F.request("POST", "/api/v1/tenants/dedi/environments", body), 422)
            self.assertIn(field, [e["field"] for e in p["errors"]], (body, p))

    def test_dedicated_defaults_scale_and_upgrade(self):
        r = F.create_env("dedi", "prod", kubernetesVersion="v1.30.4", workers={"replicas": 3})
        e = r.json["environment"]
        self.assertEqual(e["controlPlane"], {"replicas": 1, "machineType": "t3.large"})
        self.assertEqual(e["workers"], {"replicas": 3, "machineType": "t3.xlarge"})
        r = F.request("PATCH", "/api/v1/tenants/dedi/environments/prod", {"workers": {"replicas": 5}})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["job"]["kind"], "environment.update")
        F.wait_job(r.json["job"]["id"])
        g = F.request("GET", "/api/v1/tenants/dedi/environments/prod").json
        self.assertEqual(g["workers"]["replicas"], 5)
        self.assertEqual(g["observedGeneration"], 2)
        self.assertIn("replicas: 5", F.show("tenants/dedi/environments/prod/cluster.yaml"))
        p = assert_problem(F.request("PATCH", "/api/v1/tenants/dedi/environments/prod", {"kubernetesVersion": "v1.29.9"}), 422)
        self.assertIn("upgrade", p["errors"][0]["message"])
        assert_problem(F.request("PATCH", "/api/v1/tenants/dedi/environments/prod", {"kubernetesVersion": "v1.33.0"}), 422)
        r = F.request("PATCH", "/api/v1/tenants/dedi/environments/prod", {"kubernetesVersion": "v1.31.1"})
        self.assertEqual(r.status, 202, r)
        assert_problem(F.request("PATCH", "/api/v1/tenants/dedi/environments/prod", {"type": "ephemeral"}), 422)
        assert_problem(F.request("PATCH", "/api/v1/tenants/dedi/environments/prod", {"name": "x"}), 422)

    def test_ephemeral_extend(self):
        r = F.create_env("dedi", "pr-1", type="ephemeral", ttl="24h")
        exp0 = r.json["environment"]["expiresAt"]
        self.assertIsNotNone(exp0)
        r = F.request("POST", "/api/v1/tenants/dedi/environments/pr-1/extend", {"ttl": "48h"})
        self.assertEqual(r.status, 200, r)
        exp1 = r.json["environment"]["expiresAt"]
        self.assertGreater(exp1, exp0)
        assert_problem(F.request("POST", "/api/v1/tenants/dedi/environments/pr-1/extend", {"ttl": "700h"}), 422)
        assert_problem(F.request("POST", "/api/v1/tenants/dedi/environments/pr-1/extend", {"ttl": "soon"}), 422)
        assert_problem(F.request("POST", "/api/v1/tenants/dedi/environments/pr-1/extend", {}), 422)
        F.create_env("dedi", "perm")
        assert_problem(F.request("POST", "/api/v1/tenants/dedi/environments/perm/extend", {"ttl": "1h"}), 409, "permanent")

    def test_delete(self):
        F.create_env("dedi", "gone")
        r = F.request("DELETE", "/api/v1/tenants/dedi/environments/gone?dryRun=true")
        self.assertEqual(r.json, {"files": [], "deleted": ["tenants/dedi/environments/gone"]})
        r = F.request("DELETE", "/api/v1/tenants/dedi/environments/gone")
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["environment"]["state"], "deleting")
        # while it is being deleted: 409; once the job finished (it may be that fast): 404
        for again in (F.request("DELETE", "/api/v1/tenants/dedi/environments/gone"),
                      F.request("PATCH", "/api/v1/tenants/dedi/environments/gone", {"workers": {"replicas": 1}})):
            assert_problem(again, again.status)
            self.assertIn(again.status, (409, 404), again)
            if again.status == 404:
                self.assertEqual(F.request("GET", "/api/v1/tenants/dedi/environments/gone").json["state"], "deleted")
        F.wait_job(r.json["job"]["id"])
        self.assertEqual(F.request("GET", "/api/v1/tenants/dedi/environments/gone").json["state"], "deleted")
        self.assertFalse(any(f.startswith("tenants/dedi/environments/gone/") for f in F.files()))
        # the name can be used again
        F.create_env("dedi", "gone")

    def test_dry_run_env(self):
        r = F.request("POST", "/api/v1/tenants/dedi/environments?dryRun=true", {"name": "preview"})
        self.assertEqual(r.status, 200, r)
        paths = sorted(f["path"] for f in r.json["files"])
        self.assertIn("tenants/dedi/environments/preview/cluster.yaml", paths)
        assert_problem(F.request("GET", "/api/v1/tenants/dedi/environments/preview"), 404)

    def test_list(self):
        F.create_env("dedi", "lst-a", wait=False)
        F.create_env("dedi", "lst-b", wait=False)
        r = F.request("GET", "/api/v1/tenants/dedi/environments?limit=1")
        self.assertEqual(len(r.json["items"]), 1)
        self.assertIsNotNone(r.json["nextCursor"])
        r = F.request("GET", "/api/v1/tenants/dedi/environments?limit=500")
        names = [e["name"] for e in r.json["items"]]
        self.assertLess(names.index("lst-b"), names.index("lst-a"))
        assert_problem(F.request("GET", "/api/v1/tenants/dedi/environments?state=nope"), 400)
        # a cursor of another collection is not accepted
        tc = F.request("GET", "/api/v1/tenants?limit=1").json["nextCursor"]
        assert_problem(F.request("GET", "/api/v1/tenants/dedi/environments?cursor=" + tc), 400)


class Jobs(unittest.TestCase):
    def test_get_list_and_404(self):
        r = F.create_tenant("jobby")
        jid = r.json["job"]["id"]
        j = F.request("GET", "/api/v1/jobs/" + jid).json
        self.assertEqual(j["id"], jid)
        for k in ("kind", "tenant", "environment", "state", "attempt", "maxAttempts", "runAfter", "steps", "error",
                  "result", "requestedBy", "createdAt", "startedAt", "finishedAt"):
            self.assertIn(k, j)
        items = F.request("GET", "/api/v1/jobs?tenant=jobby&kind=tenant.create&state=succeeded").json["items"]
        self.assertEqual([i["id"] for i in items], [jid])
        assert_problem(F.request("GET", "/api/v1/jobs/00000000-0000-4000-8000-000000000000"), 404)
        assert_problem(F.request("GET", "/api/v1/jobs/not-a-uuid"), 404)
        assert_problem(F.request("GET", "/api/v1/jobs?kind=tenant.explode"), 400)
        assert_problem(F.request("POST", "/api/v1/jobs/%s/cancel" % jid, raw=b""), 409, "already")
        assert_problem(F.request("POST", "/api/v1/jobs/%s/retry" % jid, raw=b""), 409, "failed")

    def test_events_stream_until_end(self):
        r = F.request("POST", "/api/v1/tenants", tenant_body("streamy"))
        jid = r.json["job"]["id"]
        s = harness.SSE(F.app.port, "/api/v1/jobs/%s/events" % jid)
        self.assertEqual(s.status, 200)
        self.assertTrue(s.headers["content-type"].startswith("text/event-stream"))
        evs = list(s.events())
        s.close()
        self.assertEqual(evs[-1]["event"], "end")
        self.assertEqual(evs[-1]["json"]["state"], "succeeded")
        ids = [int(e["id"]) for e in evs[:-1]]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(ids, list(range(1, len(ids) + 1)))
        steps = [(e["json"]["data"]["step"], e["json"]["data"]["state"]) for e in evs if e["event"] == "step"]
        self.assertIn(("render", "running"), steps)
        self.assertIn(("git-push", "succeeded"), steps)
        states = [e["json"]["data"]["state"] for e in evs if e["event"] == "state"]
        self.assertEqual(states[0], "queued")
        self.assertEqual(states[-1], "succeeded")
        # resume after an id: only later events
        s = harness.SSE(F.app.port, "/api/v1/jobs/%s/events" % jid, last_event_id=ids[-2])
        later = list(s.events())
        s.close()
        self.assertEqual([int(e["id"]) for e in later if e["event"] != "end"], [ids[-1]])
        assert_problem(F.request("GET", "/api/v1/jobs/%s/events" % jid, headers={"Last-Event-ID": "x"}), 400)
        assert_problem(F.request("GET", "/api/v1/jobs/00000000-0000-4000-8000-000000000000/events"), 404)

    def test_many_streams_do_not_block_the_api(self):
        # more open streams than HTTP threads and database connections
        F.create_tenant("blocker")
        ids = []
        for i in range(3):
            r = F.request("PATCH", "/api/v1/tenants/blocker", {"displayName": "B%d" % i})
            ids.append(r.json["job"]["id"])
        F.wait_job(ids[-1])
        streams = [harness.SSE(F.app.port, "/api/v1/jobs/%s/events" % ids[0]) for _ in range(24)]
        # a stream of a finished job ends by itself; open ones on a long job would stay: check the API answers
        self.assertEqual(F.request("GET", "/api/v1/tenants/blocker").status, 200)
        for s in streams:
            evs = list(s.events())
            self.assertEqual(evs[-1]["event"], "end")
            s.close()


class OpenAPI(unittest.TestCase):
    ROUTES = [("post", "/api/v1/tenants"), ("get", "/api/v1/tenants"), ("get", "/api/v1/tenants/{tenant}"),
              ("patch", "/api/v1/tenants/{tenant}"), ("delete", "/api/v1/tenants/{tenant}"),
              ("post", "/api/v1/tenants/{tenant}/environments"), ("get", "/api/v1/tenants/{tenant}/environments"),
              ("get", "/api/v1/tenants/{tenant}/environments/{env}"),
              ("patch", "/api/v1/tenants/{tenant}/environments/{env}"),
              ("delete", "/api/v1/tenants/{tenant}/environments/{env}"),
              ("post", "/api/v1/tenants/{tenant}/environments/{env}/extend"),
              ("get", "/api/v1/jobs"), ("get", "/api/v1/jobs/{id}"), ("get", "/api/v1/jobs/{id}/events"),
              ("post", "/api/v1/jobs/{id}/cancel"), ("post", "/api/v1/jobs/{id}/retry"),
              ("get", "/healthz"), ("get", "/readyz"), ("get", "/openapi.json")]

    def test_served_without_credentials_and_describes_the_routes(self):
        r = F.request("GET", "/openapi.json", token=None)
        self.assertEqual(r.status, 200, r)
        doc = r.json
        self.assertTrue(doc["openapi"].startswith("3.1"))
        for method, path in self.ROUTES:
            self.assertIn(method, doc["paths"].get(path, {}), (method, path))
        with open(os.path.join(harness.SOURCE_DIR, "openapi", "openapi.yaml")) as f:
            self.assertIn(doc["info"]["version"], f.read())


class Lifecycle(unittest.TestCase):
    """Failure, retry and cancel, with a fleet repository that goes away and comes back."""

    def test_failed_job_retry_resumes_at_failed_step(self):
        f = harness.Fleet(PG, env={"CAPSTAN_JOB_MAX_ATTEMPTS": "2", "CAPSTAN_JOB_BACKOFF": "50ms"})
        try:
            f.create_tenant("ok")
            hidden = f.repo_url + ".away"
            os.rename(f.repo_url, hidden)
            r = f.request("PATCH", "/api/v1/tenants/ok", {"displayName": "Changed"})
            j = f.wait_job(r.json["job"]["id"], states=("failed",))
            self.assertEqual(j["error"]["step"], "git-push")
            self.assertTrue(j["error"]["message"])
            self.assertEqual(j["attempt"], 2)
            self.assertEqual(j["steps"][0]["state"], "succeeded")
            self.assertEqual(j["steps"][1]["state"], "failed")
            self.assertEqual(f.request("GET", "/api/v1/tenants/ok").json["state"], "failed")
            render_started = j["steps"][0]["startedAt"]
            os.rename(hidden, f.repo_url)
            r = f.request("POST", "/api/v1/jobs/%s/retry" % j["id"], raw=b"")
            self.assertEqual(r.status, 202, r)
            self.assertEqual(r.json["job"]["state"], "queued")
            j = f.wait_job(j["id"])
            self.assertEqual(j["steps"][0]["startedAt"], render_started)  # not run again
            self.assertIsNone(j["error"])
            t = f.request("GET", "/api/v1/tenants/ok").json
            self.assertEqual(t["state"], "ready")
            self.assertEqual(t["observedGeneration"], 2)
            self.assertEqual(f.job_trailers().count(j["id"]), 1)
        finally:
            f.close()

    def test_cancel_queued_job(self):
        # no workers: jobs stay queued
        f = harness.Fleet(PG, env={"CAPSTAN_WORKERS": "0"})
        try:
            r = f.request("POST", "/api/v1/tenants", tenant_body("later"))
            jid = r.json["job"]["id"]
            r = f.request("POST", "/api/v1/jobs/%s/cancel" % jid, raw=b"")
            self.assertEqual(r.status, 202, r)
            self.assertEqual(r.json["job"]["state"], "cancelled")
            self.assertTrue(all(s["state"] == "cancelled" for s in r.json["job"]["steps"]))
            self.assertEqual(f.request("GET", "/api/v1/tenants/later").json["state"], "failed")
            assert_problem(f.request("POST", "/api/v1/jobs/%s/cancel" % jid, raw=b""), 409)
        finally:
            f.close()

    def test_jobs_of_one_tenant_run_in_order(self):
        f = harness.Fleet(PG, env={"CAPSTAN_WORKERS": "4"})
        try:
            f.create_tenant("order")
            ids = []
            for i in range(6):
                r = f.request("PATCH", "/api/v1/tenants/order", {"displayName": "Order %d" % i})
                ids.append(r.json["job"]["id"])
            jobs = [f.wait_job(i) for i in ids]
            starts = [j["startedAt"] for j in jobs]
            ends = [j["finishedAt"] for j in jobs]
            for a in range(len(jobs) - 1):
                self.assertLessEqual(ends[a], starts[a + 1], "job %d started before %d ended" % (a + 1, a))
            self.assertIn("Order 5", f.show("tenants/order/namespace.yaml"))
            self.assertEqual(f.request("GET", "/api/v1/tenants/order").json["observedGeneration"], 7)
        finally:
            f.close()

    def test_expiry_enqueues_one_job_with_two_processes(self):
        f = harness.Fleet(PG, env={"CAPSTAN_EXPIRY_INTERVAL": "200ms"})
        try:
            f.add_app()
            f.create_tenant("exp")
            f.create_env("exp", "pr-9", type="ephemeral", ttl="1h")
            PG.psql("UPDATE environments SET expires_at = now() - interval '1 second' WHERE name = 'pr-9'", f.db)

            def expired():
                e = f.request("GET", "/api/v1/tenants/exp/environments/pr-9").json
                return e if e["state"] == "expired" else None
            harness.wait_until(expired, 30, what="the environment to expire")
            jobs = f.request("GET", "/api/v1/jobs?tenant=exp&kind=environment.expire").json["items"]
            self.assertEqual(len(jobs), 1)
            self.assertEqual(jobs[0]["state"], "succeeded")
            self.assertEqual(jobs[0]["requestedBy"], "capstan (expiry)")
            self.assertFalse(any(p.startswith("tenants/exp/environments/pr-9/") for p in f.files()))
            time.sleep(1)
            self.assertEqual(len(f.request("GET", "/api/v1/jobs?tenant=exp&kind=environment.expire").json["items"]), 1)
        finally:
            f.close()


class OpenAPIConformance(unittest.TestCase):
    """Real answers of the server against its own description (GET /openapi.json): for every
    answer, its status must be one the operation lists, the headers the description requires
    must be there and valid, and the JSON body must be valid against the schema, checked by a
    small JSON Schema validator (the subset openapi.yaml uses; a schema keyword it does not know
    fails the test rather than being skipped). The resource schemas are closed
    (additionalProperties: false), so a field that is missing, extra or of the wrong type fails."""

    KNOWN = {"$ref", "allOf", "oneOf", "anyOf", "type", "const", "enum", "minLength", "maxLength", "pattern",
             "format", "minimum", "maximum", "items", "minItems", "maxItems", "uniqueItems", "required",
             "properties", "additionalProperties", "propertyNames", "minProperties", "maxProperties"}
    ANNOTATIONS = {"description", "example", "examples", "readOnly", "writeOnly", "default", "title",
                   "contentSchema", "contentMediaType", "deprecated"}
    FORMATS = {"uuid": r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
               "date-time": r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$"}

    @classmethod
    def setUpClass(cls):
        r = F.request("GET", "/openapi.json", token=None)
        assert r.status == 200, r
        cls.doc = r.json

    # ---- a small JSON Schema validator ----
    def ref(self, node):
        while isinstance(node, dict) and "$ref" in node:
            self.assertTrue(node["$ref"].startswith("#/"), node)
            target = self.doc
            for part in node["$ref"][2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    @staticmethod
    def type_ok(value, t):
        return {"null": value is None,
                "boolean": isinstance(value, bool),
                "integer": isinstance(value, int) and not isinstance(value, bool),
                "number": isinstance(value, (int, float)) and not isinstance(value, bool),
                "string": isinstance(value, str),
                "array": isinstance(value, list),
                "object": isinstance(value, dict)}[t]

    def errors_of(self, value, schema, where="$"):
        """Every way value breaks schema, as messages with JSON paths; [] when it is valid."""
        import re
        unknown = set(schema) - self.KNOWN - self.ANNOTATIONS
        self.assertFalse(unknown, "the validator does not know %s (at %s)" % (unknown, where))
        errs = []
        if "$ref" in schema:
            errs += self.errors_of(value, self.ref(schema), where)
        for sub in schema.get("allOf", []):
            errs += self.errors_of(value, sub, where)
        if "oneOf" in schema:
            n = sum(1 for sub in schema["oneOf"] if not self.errors_of(value, sub, where))
            if n != 1:
                errs.append("%s: %r matches %d of its oneOf schemas, not 1" % (where, value, n))
        if "anyOf" in schema and all(self.errors_of(value, sub, where) for sub in schema["anyOf"]):
            errs.append("%s: %r matches none of its anyOf schemas" % (where, value))
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(self.type_ok(value, t) for t in types):
                return errs + ["%s: %r is not of type %s" % (where, value, " or ".join(types))]
        if "const" in schema and (value != schema["const"] or type(value) is not type(schema["const"])):
            errs.append("%s: %r is not %r" % (where, value, schema["const"]))
        if "enum" in schema and not any(value == e and type(value) is type(e) for e in schema["enum"]):
            errs.append("%s: %r is not one of %s" % (where, value, schema["enum"]))
        if isinstance(value, str):
            if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
                errs.append("%s: %r has a length out of range" % (where, value))
            if "pattern" in schema and (not re.search(schema["pattern"], value) or
                                        (schema["pattern"].endswith("$") and value.endswith("\n"))):
                errs.append("%s: %r does not match %s" % (where, value, schema["pattern"]))
            fmt = self.FORMATS.get(schema.get("format"))
            if fmt and not re.match(fmt, value):
                errs.append("%s: %r is not a %s" % (where, value, schema["format"]))
        if self.type_ok(value, "number"):
            if value < schema.get("minimum", value) or value > schema.get("maximum", value):
                errs.append("%s: %r is out of range" % (where, value))
        if isinstance(value, list):
            if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
                errs.append("%s: %d items is out of range" % (where, len(value)))
            if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
                errs.append("%s: items repeat" % where)
            for i, v in enumerate(value):
                if "items" in schema:
                    errs += self.errors_of(v, schema["items"], "%s[%d]" % (where, i))
        if isinstance(value, dict):
            for k in schema.get("required", []):
                if k not in value:
                    errs.append("%s: lacks %s" % (where, k))
            if len(value) < schema.get("minProperties", 0) or len(value) > schema.get("maxProperties", len(value)):
                errs.append("%s: %d members is out of range" % (where, len(value)))
            props = schema.get("properties", {})
            extra = schema.get("additionalProperties", True)
            for k, v in value.items():
                if "propertyNames" in schema:
                    errs += self.errors_of(k, schema["propertyNames"], "%s{%s}" % (where, k))
                if k in props:
                    errs += self.errors_of(v, props[k], "%s.%s" % (where, k))
                elif extra is False:
                    errs.append("%s: has %s, which the description does not have" % (where, k))
                elif isinstance(extra, dict):
                    errs += self.errors_of(v, extra, "%s.%s" % (where, k))
        return errs

    def assert_valid(self, value, schema, what):
        errs = self.errors_of(value, schema)
        self.assertEqual(errs, [], "%s is not as described:\n  %s\n%s" % (what, "\n  ".join(errs[:20]),
                                                                         json.dumps(value)[:2000]))

    def schema(self, name):
        return {"$ref": "#/components/schemas/" + name}

    def check(self, method, template, r):
        """Asserts r is an answer that the description of `method template` documents (status,
        required headers, content type, body) and returns its JSON."""
        op = self.doc["paths"][template][method.lower()]
        what = "%s %s -> %d" % (method, template, r.status)
        self.assertIn(str(r.status), op["responses"], "%s: a status the description does not list (%r)" % (what, r))
        resp = self.ref(op["responses"][str(r.status)])
        for name, h in resp.get("headers", {}).items():
            h = self.ref(h)
            got = r.header(name)
            if h.get("required"):
                self.assertIsNotNone(got, "%s: no %s header" % (what, name))
            if got is not None:
                value = int(got) if self.ref(h["schema"]).get("type") == "integer" else got
                self.assert_valid(value, h["schema"], "%s: header %s" % (what, name))
        content = resp.get("content")
        if not content:
            self.assertEqual(r.raw, b"", what)
            return None
        ctype = r.header("content-type").split(";")[0].strip()
        self.assertIn(ctype, content, what)
        if ctype.endswith("json"):
            self.assert_valid(r.json, content[ctype]["schema"], what)
        return r.json

    # ---- the validator itself must catch mistakes ----
    def test_validator_catches_missing_extra_and_mistyped_fields(self):
        F.create_tenant("oas-check")
        t = F.request("GET", "/api/v1/tenants/oas-check").json
        job = F.request("GET", "/api/v1/jobs?tenant=oas-check").json["items"][0]
        self.assert_valid(t, self.schema("Tenant"), "a tenant")
        self.assert_valid(job, self.schema("Job"), "a job")
        broken = []
        for field in ("name", "state", "platformRepository", "labels"):
            broken.append({k: v for k, v in t.items() if k != field})          # missing
        broken.append(dict(t, ttl="72h"))                                      # extra
        broken.append(dict(t, generation="1"))                                 # mistyped
        broken.append(dict(t, displayName=None))                               # null where not allowed
        broken.append(dict(t, state="sleeping"))                               # not in the enum
        broken.append(dict(t, region="Europe West"))                           # pattern
        broken.append(dict(t, quota=dict(t["quota"], environments=1.5)))      # nested
        broken.append(dict(t, createdAt="2025-06-02T09:15:04Z"))               # no milliseconds
        for b in broken:
            self.assertNotEqual(self.errors_of(b, self.schema("Tenant")), [], b)
        step = {k: v for k, v in job["steps"][0].items() if k != "message"}
        self.assertNotEqual(self.errors_of(dict(job, steps=[step]), self.schema("Job")), [])
        self.assertNotEqual(self.errors_of(dict(job, error={"step": "render"}), self.schema("Job")), [])
        self.assertNotEqual(self.errors_of(dict(job, environment=7), self.schema("Job")), [])

    # ---- tenants ----
    def test_tenant_answers(self):
        r = F.request("POST", "/api/v1/tenants", tenant_body("oas-t", labels={"team": "a"}),
                      headers={"Idempotency-Key": "oas-t-create"})
        body = self.check("POST", "/api/v1/tenants", r)
        self.assertEqual(r.status, 202)
        self.assertNotIn("region", body["tenant"])
        F.wait_job(body["job"]["id"])
        again = F.request("POST", "/api/v1/tenants", tenant_body("oas-t", labels={"team": "a"}),
                          headers={"Idempotency-Key": "oas-t-create"})
        self.check("POST", "/api/v1/tenants", again)
        self.assertEqual(again.header("idempotent-replayed"), "true")
        r = F.request("POST", "/api/v1/tenants", tenant_body("oas-gcp", isolation="dedicated", provider="gcp",
                                                              region="europe-west1"))
        self.assertEqual(self.check("POST", "/api/v1/tenants", r)["tenant"]["region"], "europe-west1")
        F.wait_job(r.json["job"]["id"])
        for name in ("oas-t", "oas-gcp"):
            r = F.request("GET", "/api/v1/tenants/" + name)
            self.assertEqual(r.status, 200)
            self.check("GET", "/api/v1/tenants/{tenant}", r)
        # every page of the list, with whatever the other tests made meanwhile
        cursor, pages = "", 0
        while cursor is not None and pages < 100:
            r = F.request("GET", "/api/v1/tenants?limit=2" + ("&cursor=" + cursor if cursor else ""))
            cursor = self.check("GET", "/api/v1/tenants", r)["nextCursor"]
            pages += 1
        self.assertGreater(pages, 1)
        self.check("GET", "/api/v1/tenants", F.request("GET", "/api/v1/tenants?label=team=a&state=ready"))
        r = F.request("PATCH", "/api/v1/tenants/oas-t", {"labels": {"team": None}, "quota": {"cpu": "20"}},
                      headers={"If-Match": F.request("GET", "/api/v1/tenants/oas-t").header("etag")})
        self.assertEqual(self.check("PATCH", "/api/v1/tenants/{tenant}", r)["tenant"]["labels"], {})
        self.check("POST", "/api/v1/tenants", F.request("POST", "/api/v1/tenants?dryRun=true", tenant_body("oas-dry")))
        self.check("PATCH", "/api/v1/tenants/{tenant}",
                   F.request("PATCH", "/api/v1/tenants/oas-t?dryRun=true", {"displayName": "Dry"}))
        self.check("DELETE", "/api/v1/tenants/{tenant}", F.request("DELETE", "/api/v1/tenants/oas-gcp?dryRun=true"))
        r = F.request("DELETE", "/api/v1/tenants/oas-gcp")
        self.assertEqual(self.check("DELETE", "/api/v1/tenants/{tenant}", r)["tenant"]["state"], "deleting")
        F.wait_job(r.json["job"]["id"])
        self.assertEqual(self.check("GET", "/api/v1/tenants/{tenant}", F.request("GET", "/api/v1/tenants/oas-gcp"))["state"],
                         "deleted")

    # ---- environments ----
    def test_environment_answers(self):
        F.create_tenant("oas-e")
        F.create_tenant("oas-aws", isolation="dedicated", provider="aws", region="eu-central-1")
        E = "/api/v1/tenants/{tenant}/environments"
        r = F.request("POST", "/api/v1/tenants/oas-e/environments", {"name": "pr-7", "type": "ephemeral", "ttl": "2h"})
        e = self.check("POST", E, r)["environment"]
        self.assertEqual(e["ttl"], "2h")
        self.assertNotIn("workers", e)
        F.wait_job(r.json["job"]["id"])
        r = F.request("POST", "/api/v1/tenants/oas-e/environments", {"name": "dev"})
        self.assertNotIn("ttl", self.check("POST", E, r)["environment"])
        F.wait_job(r.json["job"]["id"])
        r = F.request("POST", "/api/v1/tenants/oas-aws/environments", {"name": "prod"})
        e = self.check("POST", E, r)["environment"]
        self.assertEqual((e["controlPlane"], e["workers"]), ({"replicas": 1, "machineType": "t3.large"},
                                                             {"replicas": 2, "machineType": "t3.xlarge"}))
        F.wait_job(r.json["job"]["id"])
        for name in ("pr-7", "dev"):
            self.check("GET", E + "/{env}", F.request("GET", "/api/v1/tenants/oas-e/environments/" + name))
        self.check("GET", E + "/{env}", F.request("GET", "/api/v1/tenants/oas-aws/environments/prod"))
        self.check("GET", E, F.request("GET", "/api/v1/tenants/oas-e/environments?limit=1"))
        self.check("GET", E, F.request("GET", "/api/v1/tenants/oas-e/environments?state=ready"))
        self.check("POST", E, F.request("POST", "/api/v1/tenants/oas-e/environments?dryRun=true", {"name": "dry"}))
        r = F.request("POST", "/api/v1/tenants/oas-e/environments/pr-7/extend", {"ttl": "1h"})
        self.assertEqual(r.status, 200)
        self.check("POST", E + "/{env}/extend", r)
        r = F.request("PATCH", "/api/v1/tenants/oas-aws/environments/prod", {"workers": {"replicas": 4}},
                      headers={"Idempotency-Key": "oas-scale"})
        self.assertEqual(self.check("PATCH", E + "/{env}", r)["environment"]["workers"]["replicas"], 4)
        self.check("PATCH", E + "/{env}", F.request("PATCH", "/api/v1/tenants/oas-aws/environments/prod",
                                                    {"workers": {"replicas": 4}}, headers={"Idempotency-Key": "oas-scale"}))
        self.check("PATCH", E + "/{env}", F.request("PATCH", "/api/v1/tenants/oas-e/environments/dev?dryRun=true",
                                                    {"kubernetesVersion": "v1.31.0"}))
        self.check("DELETE", E + "/{env}", F.request("DELETE", "/api/v1/tenants/oas-e/environments/dev?dryRun=true"))
        r = F.request("DELETE", "/api/v1/tenants/oas-e/environments/dev")
        self.check("DELETE", E + "/{env}", r)
        F.wait_job(r.json["job"]["id"])
        self.check("GET", E + "/{env}", F.request("GET", "/api/v1/tenants/oas-e/environments/dev"))
        # GitOps only: no kubeconfig to read
        self.check("GET", E + "/{env}/kubeconfig", F.request("GET", "/api/v1/tenants/oas-e/environments/pr-7/kubeconfig"))

    # ---- jobs and their events ----
    def test_job_answers_and_events(self):
        r = F.create_tenant("oas-j")
        jid = r.json["job"]["id"]
        j = self.check("GET", "/api/v1/jobs/{id}", F.request("GET", "/api/v1/jobs/" + jid))
        self.assertEqual(set(j["result"]), {"commit"})
        self.check("GET", "/api/v1/jobs", F.request("GET", "/api/v1/jobs?tenant=oas-j&kind=tenant.create"))
        self.check("GET", "/api/v1/jobs", F.request("GET", "/api/v1/jobs?limit=5&state=succeeded"))
        self.check("POST", "/api/v1/jobs/{id}/cancel", F.request("POST", "/api/v1/jobs/%s/cancel" % jid, raw=b""))
        self.check("POST", "/api/v1/jobs/{id}/retry", F.request("POST", "/api/v1/jobs/%s/retry" % jid, {}))
        self.check_events(jid, "succeeded")

    def check_events(self, jid, final, fleet=None):
        fleet = fleet or F
        s = harness.SSE(fleet.app.port, "/api/v1/jobs/%s/events" % jid)
        try:
            self.assertEqual(s.status, 200)
            self.assertTrue(s.headers["content-type"].startswith("text/event-stream"))
            for h in ("x-request-id", "cache-control", "x-content-type-options"):
                self.assertIn(h, s.headers)
            events = list(s.events())
        finally:
            s.close()
        self.assertEqual(events[-1]["event"], "end")
        self.assertEqual(events[-1]["json"], {"state": final})
        for ev in events[:-1]:
            self.assert_valid(ev["json"], self.schema("JobEvent"), "event %s" % ev["data"])
            self.assertEqual((ev["json"]["seq"], ev["json"]["type"]), (int(ev["id"]), ev["event"]))
        self.assertEqual(events[-1]["id"], events[-2]["id"])
        return [e["json"] for e in events[:-1]]

    def test_failed_job_and_retry(self):
        f = harness.Fleet(PG, env={"CAPSTAN_JOB_MAX_ATTEMPTS": "1"})
        try:
            f.create_tenant("oas-fail")
            os.rename(f.repo_url, f.repo_url + ".away")
            r = f.request("POST", "/api/v1/tenants/oas-fail/environments", {"name": "dev"})
            j = f.wait_job(r.json["job"]["id"], states=("failed",))
            self.assertEqual(j["error"]["step"], "git-push")
            self.check("GET", "/api/v1/jobs/{id}", f.request("GET", "/api/v1/jobs/" + j["id"]))
            events = self.check_events(j["id"], "failed", f)
            self.assertIn(("step", "git-push", "failed"),
                          [(e["type"], e["data"].get("step"), e["data"]["state"]) for e in events if "state" in e["data"]])
            self.check("GET", "/api/v1/tenants/{tenant}/environments/{env}",
                       f.request("GET", "/api/v1/tenants/oas-fail/environments/dev"))
            os.rename(f.repo_url + ".away", f.repo_url)
            r = f.request("POST", "/api/v1/jobs/%s/retry" % j["id"], raw=b"")
            self.assertEqual(self.check("POST", "/api/v1/jobs/{id}/retry", r)["job"]["state"], "queued")
            f.wait_job(j["id"])
        finally:
            f.close()

    # ---- problems ----
    def test_problem_answers(self):
        F.create_tenant("oas-p")
        checks = [
            ("GET", "/api/v1/tenants", F.request("GET", "/api/v1/tenants?limit=0"), 400),
            ("GET", "/api/v1/tenants", F.request("GET", "/api/v1/tenants?limt=1"), 400),
            ("POST", "/api/v1/tenants", F.request("POST", "/api/v1/tenants", raw=b"{", headers={"Content-Type": "application/json"}), 400),
            ("GET", "/api/v1/jobs", F.request("GET", "/api/v1/jobs", token=None), 401),
            ("GET", "/api/v1/jobs", F.request("GET", "/api/v1/jobs", token="cap_" + "x" * 43), 401),
            ("GET", "/api/v1/tenants/{tenant}", F.request("GET", "/api/v1/tenants/oas-none"), 404),
            ("GET", "/api/v1/jobs/{id}", F.request("GET", "/api/v1/jobs/00000000-0000-4000-8000-000000000000"), 404),
            ("POST", "/api/v1/tenants", F.request("POST", "/api/v1/tenants", tenant_body("oas-p")), 409),
            ("PATCH", "/api/v1/tenants/{tenant}", F.request("PATCH", "/api/v1/tenants/oas-p", {"displayName": "X"},
                                                             headers={"If-Match": '"999"'}), 412),
            ("POST", "/api/v1/tenants", post_chunked_over_limit("/api/v1/tenants"), 413),
            ("PATCH", "/api/v1/tenants/{tenant}", F.request("PATCH", "/api/v1/tenants/oas-p", raw=b"{}",
                                                             headers={"Content-Type": "application/json"}), 415),
            ("POST", "/api/v1/tenants", F.request("POST", "/api/v1/tenants", {"name": "Bad Name", "owners": ["x"]}), 422),
            ("POST", "/api/v1/tokens", F.request("POST", "/api/v1/tokens", {"name": "n", "role": "admin"},
                                                 headers={"Idempotency-Key": "k"}), 400),
        ]
        for method, template, r, status in checks:
            self.assertEqual(r.status, status, (method, template, r))
            p = self.check(method, template, r)
            self.assertEqual(p["requestId"], r.header("x-request-id"))
            self.assertEqual("errors" in p, status in (400, 422), p)
        # 405 is not listed per operation; its body is a problem all the same, with Allow
        r = F.request("PUT", "/api/v1/tenants/oas-p", {"displayName": "X"})
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("allow"), "GET, HEAD, PATCH, DELETE")
        self.assert_valid(r.json, self.schema("Problem"), "a 405")

    # ---- tokens, roles and the audit log ----
    def test_token_role_and_audit_answers(self):
        F.create_tenant("oas-a")
        r = F.request("POST", "/api/v1/tokens", {"name": "oas-viewer", "role": "tenant-viewer", "tenant": "oas-a"})
        created = self.check("POST", "/api/v1/tokens", r)
        self.assertEqual(r.status, 201)
        viewer = created["token"]
        r = F.request("POST", "/api/v1/tokens", {"name": "oas-ci", "role": "admin", "expiresAt": "2099-01-01T00:00:00+02:00"})
        self.assertEqual(self.check("POST", "/api/v1/tokens", r)["expiresAt"], "2098-12-31T22:00:00.000Z")
        # what a tenant-viewer sees and may not do
        self.check("GET", "/api/v1/tenants", F.request("GET", "/api/v1/tenants", token=viewer))
        self.check("GET", "/api/v1/tenants/{tenant}", F.request("GET", "/api/v1/tenants/oas-a", token=viewer))
        hidden = F.request("GET", "/api/v1/tenants/oas-p-other", token=viewer)
        self.check("GET", "/api/v1/tenants/{tenant}", hidden)
        denied = F.request("POST", "/api/v1/tenants/oas-a/environments", {"name": "x"}, token=viewer,
                           headers={"X-Request-Id": "oas-viewer-403"})
        self.assertEqual(denied.status, 403)
        self.check("POST", "/api/v1/tenants/{tenant}/environments", denied)
        self.check("GET", "/api/v1/tenants/{tenant}/environments/{env}/kubeconfig",
                   F.request("GET", "/api/v1/tenants/oas-a/environments/x/kubeconfig", token=viewer))
        anon = F.request("DELETE", "/api/v1/tenants/oas-a", token=None, headers={"X-Request-Id": "oas-anon-401"})
        self.check("DELETE", "/api/v1/tenants/{tenant}", anon)
        self.check("GET", "/api/v1/tokens", F.request("GET", "/api/v1/tokens?limit=2"))
        r = F.request("DELETE", "/api/v1/tokens/" + created["id"])
        self.assertEqual(r.status, 204)
        self.check("DELETE", "/api/v1/tokens/{id}", r)
        self.check("GET", "/api/v1/tokens", F.request("GET", "/api/v1/tokens"))
        self.check("DELETE", "/api/v1/tokens/{id}", F.request("DELETE", "/api/v1/tokens/bootstrap"))

        def entries():
            items = F.request("GET", "/api/v1/audit?limit=200").json["items"]
            ids = {e["requestId"]: e for e in items}
            return ids if {"oas-viewer-403", "oas-anon-401"} <= set(ids) else None
        got = harness.wait_until(entries, 10, what="the audit entries")
        self.assertEqual((got["oas-anon-401"]["actor"], got["oas-anon-401"]["tokenId"], got["oas-anon-401"]["result"]),
                         (None, None, "denied"))
        self.assertEqual((got["oas-viewer-403"]["tokenId"], got["oas-viewer-403"]["action"]),
                         (created["id"], "environments.create"))
        for q in ("?limit=200", "?limit=2", "?tenant=oas-a", "?actor=oas-viewer"):
            self.check("GET", "/api/v1/audit", F.request("GET", "/api/v1/audit" + q))

    # ---- the public routes ----
    def test_operations_answers(self):
        for path in ("/healthz", "/readyz", "/openapi.json", "/metrics"):
            r = F.request("GET", path, token=None)
            self.assertEqual(r.status, 200, path)
            self.check("GET", path, r)
        self.assertEqual(F.request("GET", "/metrics", token=None).header("content-type"),
                         "text/plain; version=0.0.4; charset=utf-8")


if __name__ == "__main__":
    unittest.main(verbosity=2)
