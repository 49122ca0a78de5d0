"""The audit log (GET /api/v1/audit): every change and every refused request leaves an entry
with actor, role, tenant, action, target, result, request id, remote address and time; reads
that succeed leave none; no entry holds a token or a request body. Entries made while the
database is down are stored once it is back."""
import datetime
import json
import time
import unittest
import uuid

import harness
import secretscan
from harness import assert_problem, tenant_body

PG = F = None
TOK = {}


def make_token(name, role, tenant=None):
    body = {"name": name, "role": role}
    if tenant:
        body["tenant"] = tenant
    r = F.request("POST", "/api/v1/tokens", body)
    assert r.status == 201, r
    secretscan.record(r.json["token"])
    return r.json


def setUpModule():
    global PG, F
    PG = harness.shared_postgres()
    F = harness.Fleet(PG)
    F.create_tenant("acme")
    F.create_tenant("rival")
    TOK["ta"] = make_token("acme-ci", "tenant-admin", "acme")
    TOK["tv"] = make_token("acme-viewer", "tenant-viewer", "acme")


def tearDownModule():
    codes = F.close()
    assert codes == [0], codes


def entry(request_id, app=None, timeout=10):
    """The audit entry of a request id (waits for the background writer)."""
    app = app or F.app

    def find():
        r = app.request("GET", "/api/v1/audit?limit=500")
        if r.status == 503:  # the database is coming back
            return None
        assert r.status == 200, r
        return [e for e in r.json["items"] if e["requestId"] == request_id]
    found = harness.wait_until(find, timeout, 0.05, what="audit entry of " + request_id)
    assert len(found) == 1, found
    return found[0]


def rid():
    return "t-" + uuid.uuid4().hex


class Entries(unittest.TestCase):
    def test_allowed_change_by_admin(self):
        i = rid()
        t0 = datetime.datetime.now(datetime.timezone.utc)
        r = F.request("POST", "/api/v1/tenants", tenant_body("newco", displayName="Confidential Name"),
                      headers={"X-Request-Id": i})
        self.assertEqual(r.status, 202, r)
        e = entry(i)
        self.assertEqual({k: e[k] for k in ("actor", "tokenId", "role", "tenant", "action", "target", "method",
                                            "path", "status", "result", "remote")},
                         {"actor": "admin", "tokenId": "bootstrap", "role": "admin", "tenant": "newco",
                          "action": "tenants.create", "target": "tenants/newco", "method": "POST",
                          "path": "/api/v1/tenants", "status": 202, "result": "allowed", "remote": "127.0.0.1"})
        when = datetime.datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
        self.assertLess(abs((when - t0).total_seconds()), 30)
        self.assertNotIn("Confidential Name", json.dumps(e), "no request bodies in the audit log")

    def test_allowed_change_by_tenant_token(self):
        i = rid()
        r = F.request("POST", "/api/v1/tenants/acme/environments", {"name": "dev"}, token=TOK["ta"]["token"],
                      headers={"X-Request-Id": i})
        self.assertEqual(r.status, 202, r)
        e = entry(i)
        self.assertEqual((e["actor"], e["tokenId"], e["role"], e["tenant"], e["action"], e["target"], e["result"]),
                         ("acme-ci", TOK["ta"]["id"], "tenant-admin", "acme", "environments.create",
                          "tenants/acme/environments/dev", "allowed"))
        F.wait_job(r.json["job"]["id"])
        # a job action records the job's tenant
        i = rid()
        r = F.request("POST", "/api/v1/jobs/%s/cancel" % r.json["job"]["id"], token=TOK["ta"]["token"],
                      headers={"X-Request-Id": i})
        assert_problem(r, 409)
        e = entry(i)
        self.assertEqual((e["tenant"], e["action"], e["status"], e["result"]), ("acme", "jobs.cancel", 409, "failed"))

    def test_denied_requests(self):
        cases = [
            # (method, path, body, token, status, actor, role)
            ("POST", "/api/v1/tenants/acme/environments", {"name": "x"}, TOK["tv"], 403, "acme-viewer", "tenant-viewer"),
            ("DELETE", "/api/v1/tenants/acme", None, TOK["ta"], 403, "acme-ci", "tenant-admin"),
            # reads are recorded when refused, also the 404 that hides another tenant
            ("GET", "/api/v1/tenants/rival", None, TOK["ta"], 404, "acme-ci", "tenant-admin"),
            ("GET", "/api/v1/audit", None, TOK["ta"], 403, "acme-ci", "tenant-admin"),
            ("GET", "/api/v1/tenants", None, None, 401, None, None),
            ("PATCH", "/api/v1/tenants/acme", {"displayName": "x"}, {"token": "cap_" + "z" * 43}, 401, None, None),
        ]
        for method, path, body, tok, status, actor, role in cases:
            i = rid()
            r = F.request(method, path, body, token=tok["token"] if tok else None, headers={"X-Request-Id": i})
            assert_problem(r, status)
            e = entry(i)
            self.assertEqual((e["method"], e["path"], e["status"], e["result"], e["actor"], e["role"]),
                             (method, path, status, "denied", actor, role), e)
        # the hidden tenant's name is what was asked for: the audit names it for the operators
        i = rid()
        F.request("GET", "/api/v1/tenants/rival/environments", token=TOK["tv"]["token"], headers={"X-Request-Id": i})
        self.assertEqual(entry(i)["result"], "denied")

    def test_failed_and_unrecorded(self):
        i = rid()
        assert_problem(F.request("POST", "/api/v1/tenants", {"name": "Bad Name"}, headers={"X-Request-Id": i}), 422)
        e = entry(i)
        self.assertEqual((e["result"], e["status"], e["target"]), ("failed", 422, "tenants"))
        # successful reads and refused-by-method requests leave no entry
        quiet = [rid(), rid(), rid()]
        self.assertEqual(F.request("GET", "/api/v1/tenants/acme", headers={"X-Request-Id": quiet[0]}).status, 200)
        self.assertEqual(F.request("GET", "/api/v1/tenants/acme", token=TOK["tv"]["token"],
                                   headers={"X-Request-Id": quiet[1]}).status, 200)
        self.assertEqual(F.request("PUT", "/api/v1/tenants/acme", {}, headers={"X-Request-Id": quiet[2]}).status, 405)
        marker = rid()
        F.request("DELETE", "/api/v1/tenants/nobody", headers={"X-Request-Id": marker})
        entry(marker)  # written after the quiet ones: they would be stored by now
        items = F.request("GET", "/api/v1/audit?limit=500").json["items"]
        self.assertFalse([e for e in items if e["requestId"] in quiet])

    def test_tokens_are_audited_without_secrets(self):
        i = rid()
        t = F.request("POST", "/api/v1/tokens", {"name": "audited", "role": "tenant-viewer", "tenant": "acme"},
                      headers={"X-Request-Id": i})
        self.assertEqual(t.status, 201)
        secretscan.record(t.json["token"])
        e = entry(i)
        self.assertEqual((e["action"], e["tenant"], e["result"], e["status"]), ("tokens.create", "acme", "allowed", 201))
        i = rid()
        self.assertEqual(F.request("DELETE", "/api/v1/tokens/" + t.json["id"], headers={"X-Request-Id": i}).status, 204)
        e = entry(i)
        self.assertEqual((e["action"], e["target"]), ("tokens.revoke", "tokens/" + t.json["id"]))
        everything = json.dumps(F.request("GET", "/api/v1/audit?limit=500").json)
        for secret in (t.json["token"], TOK["ta"]["token"], TOK["tv"]["token"], harness.ADMIN_TOKEN):
            self.assertNotIn(secret, everything)


class Listing(unittest.TestCase):
    def test_filters_order_and_pages(self):
        ids = [rid() for _ in range(5)]
        for i in ids:
            F.request("DELETE", "/api/v1/tenants/rival?dryRun=true", headers={"X-Request-Id": i})
        entry(ids[-1])
        r = F.request("GET", "/api/v1/audit?tenant=rival&limit=2")
        self.assertEqual(r.status, 200)
        got, cursor = list(r.json["items"]), r.json["nextCursor"]
        self.assertEqual(len(got), 2)
        while cursor:
            r = F.request("GET", "/api/v1/audit?tenant=rival&limit=2&cursor=" + cursor)
            got += r.json["items"]
            cursor = r.json["nextCursor"]
        self.assertTrue(all(e["tenant"] == "rival" for e in got))
        mine = [e["requestId"] for e in got if e["requestId"] in ids]
        self.assertEqual(mine, list(reversed(ids)), "newest first, no repeats across pages")
        self.assertEqual([int(e["id"]) for e in got], sorted((int(e["id"]) for e in got), reverse=True))
        r = F.request("GET", "/api/v1/audit?actor=acme-viewer")
        self.assertTrue(r.json["items"])
        self.assertTrue(all(e["actor"] == "acme-viewer" for e in r.json["items"]))
        for q in ("tenant=Bad_Name", "limit=0", "cursor=zzz", "color=red", "actor="):
            assert_problem(F.request("GET", "/api/v1/audit?" + q), 400)


class DatabaseDown(unittest.TestCase):
    def test_entries_wait_for_the_database(self):
        pg = harness.Postgres()
        pg.start()
        app = None
        try:
            db = pg.create_db()
            app = harness.Capstan(pg.url(db), env={"CAPSTAN_DB_TIMEOUT": "500ms"}, name="dbdown").start()
            pg.stop()
            i = rid()
            r = app.request("POST", "/api/v1/tenants", tenant_body("while-down"), headers={"X-Request-Id": i})
            assert_problem(r, 503)
            time.sleep(0.5)
            pg.start()
            e = entry(i, app=app, timeout=40)
            self.assertEqual((e["status"], e["result"], e["action"]), (503, "failed", "tenants.create"))
        finally:
            if app:
                self.assertEqual(app.stop(), 0)
                app.cleanup()
            pg.destroy()


if __name__ == "__main__":
    unittest.main(verbosity=2)
