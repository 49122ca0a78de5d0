"""The authorization table: every route x every role x own/other tenant x missing, malformed,
unknown, expired and revoked credentials, asserting the exact status. This table is the
security specification of the API: when a route is added to server/api/routes.c, add its row
here (test_table_covers_every_route fails until then).

One capstan, two ready tenants ("own" and "other") with an environment and a finished job each.
Writes use ?dryRun=true or bodies that fail validation after authorization, so nothing here
changes state; a refused request must be refused whatever its body (authorization comes before
validation), which every refused write checks again with a malformed body."""
import datetime
import json
import os
import re
import shutil
import time
import unittest
import uuid

import harness
import secretscan
from harness import assert_problem, tenant_body

PG = F = None
TOK = {}   # principal -> token
JOBS = {}  # tenant -> a finished job of it
OWN, OTHER = "own", "other"
ALLOWED = "allowed"  # the handler's own answer: anything but 401/403/404/429

# principals: (name, role, bound tenant)
PRINCIPALS = [("admin", "admin", None), ("admin-token", "admin", None),
              ("tenant-admin", "tenant-admin", OWN), ("tenant-viewer", "tenant-viewer", OWN)]
BAD_CREDENTIALS = ["none", "basic", "empty", "garbage", "unknown", "expired", "revoked"]

E = "/api/v1/tenants/{tenant}/environments"


def envs(t):
    return "/api/v1/tenants/%s/environments" % t


def row(method, pattern, path, body=None, admin=200, tadmin=403, tviewer=403, scoped=True):
    """A route's expectations. path(t, job) builds the request path for tenant t; `scoped`: the
    route is about one tenant (another tenant's is 404 for tenant roles)."""
    return {"method": method, "pattern": pattern, "path": path, "body": body,
            "expect": {"admin": admin, "tenant-admin": tadmin, "tenant-viewer": tviewer},
            "scoped": scoped}


ROWS = [
    row("POST", "/api/v1/tenants", lambda t, j: "/api/v1/tenants?dryRun=true",
        tenant_body("fresh"), scoped=False),
    row("GET", "/api/v1/tenants", lambda t, j: "/api/v1/tenants", tadmin=200, tviewer=200, scoped=False),
    row("GET", "/api/v1/tenants/{tenant}", lambda t, j: "/api/v1/tenants/" + t, tadmin=200, tviewer=200),
    row("PATCH", "/api/v1/tenants/{tenant}", lambda t, j: "/api/v1/tenants/%s?dryRun=true" % t,
        {"displayName": "Renamed"}),
    row("DELETE", "/api/v1/tenants/{tenant}", lambda t, j: "/api/v1/tenants/%s?dryRun=true&cascade=true" % t),
    row("POST", E, lambda t, j: envs(t) + "?dryRun=true", {"name": "fresh"}, tadmin=200),
    row("GET", E, lambda t, j: envs(t), tadmin=200, tviewer=200),
    row("GET", E + "/{env}", lambda t, j: envs(t) + "/dev", tadmin=200, tviewer=200),
    row("PATCH", E + "/{env}", lambda t, j: envs(t) + "/dev?dryRun=true", {"kubernetesVersion": "v1.31.0"},
        tadmin=200),
    row("DELETE", E + "/{env}", lambda t, j: envs(t) + "/dev?dryRun=true", tadmin=200),
    # a permanent environment cannot be extended, and "bogus" is no duration: 422 after authorization
    row("POST", E + "/{env}/extend", lambda t, j: envs(t) + "/dev/extend", {"ttl": "bogus"},
        admin=422, tadmin=422),
    # without a management cluster the handler answers for itself; tenant-viewer may not ask
    row("GET", E + "/{env}/kubeconfig", lambda t, j: envs(t) + "/dev/kubeconfig", admin=ALLOWED,
        tadmin=ALLOWED),
    row("GET", "/api/v1/jobs", lambda t, j: "/api/v1/jobs", tadmin=200, tviewer=200, scoped=False),
    row("GET", "/api/v1/jobs/{id}", lambda t, j: "/api/v1/jobs/" + j, tadmin=200, tviewer=200),
    row("GET", "/api/v1/jobs/{id}/events", lambda t, j: "/api/v1/jobs/%s/events" % j, tadmin=200,
        tviewer=200),
    # the jobs succeeded: cancelling or retrying them is a conflict, after authorization
    row("POST", "/api/v1/jobs/{id}/cancel", lambda t, j: "/api/v1/jobs/%s/cancel" % j, admin=409, tadmin=409),
    row("POST", "/api/v1/jobs/{id}/retry", lambda t, j: "/api/v1/jobs/%s/retry" % j, admin=409, tadmin=409),
    row("POST", "/api/v1/tokens", lambda t, j: "/api/v1/tokens", {"name": "", "role": "nobody"}, admin=422,
        scoped=False),
    row("GET", "/api/v1/tokens", lambda t, j: "/api/v1/tokens", scoped=False),
    row("DELETE", "/api/v1/tokens/{id}", lambda t, j: "/api/v1/tokens/" + str(uuid.uuid4()), admin=404,
        scoped=False),
    row("GET", "/api/v1/audit", lambda t, j: "/api/v1/audit", scoped=False),
]
PUBLIC = [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/openapi.json"), ("GET", "/metrics")]


def route_table_from_source():
    """{(method, pattern)} of server/api/routes.c, with its #define'd prefixes expanded."""
    with open(os.path.join(harness.SOURCE_DIR, "server", "api", "routes.c")) as f:
        src = f.read()
    macros = dict(re.findall(r'#define\s+(\w+)\s+"([^"]*)"', src))
    out = set()
    for m in re.finditer(r'\{\s*"([A-Z]+)"\s*,\s*((?:\w+\s*|"[^"]*"\s*)+),', src):
        parts = re.findall(r'"([^"]*)"|(\w+)', m.group(2))
        out.add((m.group(1), "".join(lit if lit else macros[name] for lit, name in parts)))
    return out


def req(method, path, token, body=None, raw=None, headers=None):
    h = dict(headers or {})
    if raw is not None:
        h.setdefault("Content-Type", "application/merge-patch+json" if method == "PATCH" else "application/json")
    return F.request(method, path, body, token=token, raw=raw, headers=h)


def make_token(name, role, tenant=None, **kw):
    body = {"name": name, "role": role}
    if tenant:
        body["tenant"] = tenant
    body.update(kw)
    r = F.request("POST", "/api/v1/tokens", body)
    assert r.status == 201, r
    secretscan.record(r.json["token"])
    return r.json


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def setUpModule():
    global PG, F
    PG = harness.shared_postgres()
    F = harness.Fleet(PG)
    secretscan.record(harness.ADMIN_TOKEN)
    for t in (OWN, OTHER):
        F.create_tenant(t)
        r = F.create_env(t, "dev")
        JOBS[t] = r.json["job"]["id"]
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
    TOK["expired"] = make_token("short-lived", "tenant-admin", OWN, expiresAt=iso(soon))["token"]
    TOK["admin"] = harness.ADMIN_TOKEN
    TOK["admin-token"] = make_token("ops", "admin")["token"]
    TOK["tenant-admin"] = make_token("own-ci", "tenant-admin", OWN)["token"]
    TOK["tenant-viewer"] = make_token("own-dashboard", "tenant-viewer", OWN)["token"]
    revoked = make_token("leaked", "admin")
    TOK["revoked"] = revoked["token"]
    # both work before they are expired or revoked ...
    for k in ("expired", "revoked"):
        assert F.request("GET", "/api/v1/tenants/" + OWN, token=TOK[k]).status == 200, k
    r = F.request("DELETE", "/api/v1/tokens/" + revoked["id"])
    assert r.status == 204, r
    # ... and not afterwards (the expired one is checked once its time has come)
    while datetime.datetime.now(datetime.timezone.utc) < soon + datetime.timedelta(milliseconds=50):
        time.sleep(0.05)
    TOK["unknown"] = "cap_" + "Q" * 43
    secretscan.record(TOK["unknown"])


def tearDownModule():
    codes = F.close()
    assert codes == [0], codes


def headers_for(kind):
    """The Authorization header of a bad-credentials kind."""
    return {"none": {}, "basic": {"Authorization": "Basic b3duOnNlY3JldA=="},
            "empty": {"Authorization": "Bearer "}, "garbage": {"Authorization": "Bearer cap_short!"},
            "unknown": {"Authorization": "Bearer " + TOK.get("unknown", "")},
            "expired": {"Authorization": "Bearer " + TOK.get("expired", "")},
            "revoked": {"Authorization": "Bearer " + TOK.get("revoked", "")}}[kind]


class Table(unittest.TestCase):
    def check(self, r, want, what):
        if want == ALLOWED:
            self.assertNotIn(r.status, (401, 403, 404, 429), "%s: %r" % (what, r))
        else:
            self.assertEqual(r.status, want, "%s: %r" % (what, r))
            if want >= 400:
                assert_problem(r, want)

    def test_table_covers_every_route(self):
        served = route_table_from_source()
        mine = {(x["method"], x["pattern"]) for x in ROWS} | set(PUBLIC)
        self.assertEqual(served - mine, set(), "routes without a row in the authorization table")
        self.assertEqual(mine - served, set(), "rows for routes that do not exist")

    def test_roles_on_own_and_other_tenant(self):
        n = 0
        for x in ROWS:
            tenants = (OWN, OTHER) if x["scoped"] else (OWN,)
            for name, role, bound in PRINCIPALS:
                for t in tenants:
                    path = x["path"](t, JOBS[t])
                    want = x["expect"][role]
                    if role != "admin" and t != bound:
                        want = 404  # another tenant's resource does not exist for them
                    what = "%s %s as %s (%s tenant)" % (x["method"], path, name, "own" if t == bound else "other")
                    r = req(x["method"], path, TOK[name], body=x["body"])
                    self.check(r, want, what)
                    n += 1
                    if want in (403, 404) and x["method"] != "GET":
                        # refused before the body is read: a malformed body changes nothing
                        r = req(x["method"], path, TOK[name], raw=b'{"unterminated')
                        self.check(r, want, what + " with a malformed body")
                        r = req(x["method"], path, TOK[name], raw=b"x", headers={"Content-Type": "text/plain"})
                        self.check(r, want, what + " with a wrong content type")
                        n += 2
        print("%d authorization cases" % n)

    def test_bad_credentials_everywhere(self):
        for x in ROWS:
            path = x["path"](OWN, JOBS[OWN])
            for kind in BAD_CREDENTIALS:
                r = req(x["method"], path, None, body=x["body"], headers=headers_for(kind))
                p = assert_problem(r, 401)
                self.assertEqual(r.header("www-authenticate"), 'Bearer realm="capstan"', (kind, path))
                for secret in (TOK["expired"], TOK["revoked"], TOK["unknown"]):
                    self.assertNotIn(secret, json.dumps(p))
                if x["method"] != "GET":
                    r = req(x["method"], path, None, raw=b"{", headers=headers_for(kind))
                    assert_problem(r, 401)

    def test_public_routes_need_no_credentials(self):
        for method, path in PUBLIC:
            if (method, path) not in route_table_from_source():
                continue
            for kind in BAD_CREDENTIALS:
                r = req(method, path, None, headers=headers_for(kind))
                self.assertEqual(r.status, 200, (path, kind, r))

    def test_roles_match_the_openapi_description(self):
        doc = F.request("GET", "/openapi.json", token=None).json
        for x in ROWS:
            op = doc["paths"].get(x["pattern"], {}).get(x["method"].lower())
            self.assertIsNotNone(op, "openapi.yaml lacks %s %s" % (x["method"], x["pattern"]))
            allowed = {role for role, want in x["expect"].items() if want not in (401, 403)}
            self.assertEqual(set(op.get("x-capstan-roles", [])), allowed, (x["method"], x["pattern"]))


class Lists(unittest.TestCase):
    def test_tenant_roles_list_only_their_tenant(self):
        for name in ("tenant-admin", "tenant-viewer"):
            r = F.request("GET", "/api/v1/tenants", token=TOK[name])
            self.assertEqual([t["name"] for t in r.json["items"]], [OWN], r)
            self.assertIsNone(r.json["nextCursor"])
            r = F.request("GET", "/api/v1/tenants?state=deleted", token=TOK[name])
            self.assertEqual(r.json["items"], [])
            r = F.request("GET", "/api/v1/jobs?limit=500", token=TOK[name])
            self.assertTrue(r.json["items"])
            self.assertEqual({j["tenant"] for j in r.json["items"]}, {OWN})
            r = F.request("GET", "/api/v1/jobs?tenant=" + OTHER, token=TOK[name])
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json["items"], [], "another tenant's jobs are not listed")
            r = F.request("GET", "/api/v1/jobs?tenant=" + OWN, token=TOK[name])
            self.assertEqual({j["tenant"] for j in r.json["items"]}, {OWN})
        r = F.request("GET", "/api/v1/tenants")
        self.assertEqual({t["name"] for t in r.json["items"]}, {OWN, OTHER})
        r = F.request("GET", "/api/v1/jobs?limit=500")
        self.assertEqual({j["tenant"] for j in r.json["items"]}, {OWN, OTHER})

    def test_other_tenant_404_is_indistinguishable_from_a_missing_one(self):
        a = F.request("GET", "/api/v1/tenants/" + OTHER, token=TOK["tenant-admin"])
        b = F.request("GET", "/api/v1/tenants/no-such-tenant", token=TOK["tenant-admin"])
        pa, pb = assert_problem(a, 404), assert_problem(b, 404)
        self.assertEqual(pa["detail"].replace(OTHER, "X"), pb["detail"].replace("no-such-tenant", "X"))
        a = F.request("GET", "/api/v1/jobs/" + JOBS[OTHER], token=TOK["tenant-viewer"])
        b = F.request("GET", "/api/v1/jobs/" + str(uuid.uuid4()), token=TOK["tenant-viewer"])
        pa, pb = assert_problem(a, 404), assert_problem(b, 404)
        self.assertEqual(re.sub(r'"[^"]+"', "X", pa["detail"]), re.sub(r'"[^"]+"', "X", pb["detail"]))


class Tokens(unittest.TestCase):
    def test_created_token_shape_and_listing(self):
        before = datetime.datetime.now(datetime.timezone.utc)
        t = make_token("team-ci", "tenant-viewer", OWN)
        self.assertRegex(t["token"], r"^cap_[A-Za-z0-9_-]{43}$")
        self.assertRegex(t["id"], r"^[0-9a-f-]{36}$")
        self.assertEqual((t["name"], t["role"], t["tenant"]), ("team-ci", "tenant-viewer", OWN))
        self.assertIsNone(t["expiresAt"])
        self.assertIsNone(t["revokedAt"])
        self.assertIsNone(t["lastUsedAt"])
        created = datetime.datetime.strptime(t["createdAt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc)
        self.assertLess(abs((created - before).total_seconds()), 30)
        # used once: lastUsedAt is set; the token is never shown again
        self.assertEqual(F.request("GET", "/api/v1/tenants/" + OWN, token=t["token"]).status, 200)
        items, cursor = [], None
        while True:
            r = F.request("GET", "/api/v1/tokens?limit=2" + ("&cursor=" + cursor if cursor else ""))
            self.assertEqual(r.status, 200, r)
            items += r.json["items"]
            cursor = r.json["nextCursor"]
            if not cursor:
                break
        mine = [i for i in items if i["id"] == t["id"]]
        self.assertEqual(len(mine), 1)
        self.assertIsNotNone(mine[0]["lastUsedAt"])
        self.assertNotIn("token", mine[0])
        self.assertNotIn(t["token"], json.dumps(items))
        self.assertEqual(len({i["id"] for i in items}), len(items), "pages overlap")
        self.assertEqual(items[0]["id"], max(items, key=lambda i: i["createdAt"])["id"], "newest first")
        revoked = [i for i in items if i["name"] == "leaked"]
        self.assertTrue(revoked and revoked[0]["revokedAt"])

    def test_validation(self):
        future = iso(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1))
        cases = [
            ({}, {"name", "role"}),
            ({"name": "x" * 65, "role": "admin"}, {"name"}),
            ({"name": "tab\there", "role": "admin"}, {"name"}),
            ({"name": "x", "role": "root"}, {"role"}),
            ({"name": "x", "role": "admin", "tenant": OWN}, {"tenant"}),
            ({"name": "x", "role": "tenant-admin"}, {"tenant"}),
            ({"name": "x", "role": "tenant-viewer", "tenant": "Not_A_Name"}, {"tenant"}),
            ({"name": "x", "role": "tenant-admin", "tenant": "no-such-tenant"}, {"tenant"}),
            ({"name": "x", "role": "admin", "expiresAt": "2001-01-01T00:00:00Z"}, {"expiresAt"}),
            ({"name": "x", "role": "admin", "expiresAt": "tomorrow"}, {"expiresAt"}),
            ({"name": "x", "role": "admin", "expiresAt": future[:10]}, {"expiresAt"}),
            ({"name": "x", "role": "admin", "expiresAt": "2999-02-30T00:00:00Z"}, {"expiresAt"}),
            ({"name": "x", "role": "admin", "token": "cap_chosen"}, {"token"}),
        ]
        for body, fields in cases:
            p = assert_problem(F.request("POST", "/api/v1/tokens", body), 422)
            self.assertEqual({e["field"] for e in p["errors"]}, fields, (body, p))
        ok = make_token("x" * 64, "admin", expiresAt=future.replace("Z", "+02:00"))
        self.assertIsNotNone(ok["expiresAt"])
        ok = make_token("Équipe CI ✓", "admin")
        self.assertEqual(ok["name"], "Équipe CI ✓")

    def test_idempotency_key_is_refused(self):
        r = F.request("POST", "/api/v1/tokens", {"name": "x", "role": "admin"}, headers={"Idempotency-Key": "k1"})
        p = assert_problem(r, 400, "Idempotency-Key")
        self.assertNotIn("token", r.json)
        self.assertEqual(p["errors"][0]["field"], "Idempotency-Key")

    def test_revocation_is_immediate_in_every_process(self):
        second = F.add_app(name="second")
        try:
            t = make_token("two-places", "tenant-admin", OWN)
            for app in (F.app, second):
                self.assertEqual(app.request("GET", "/api/v1/tenants/" + OWN, token=t["token"]).status, 200)
            self.assertEqual(F.request("DELETE", "/api/v1/tokens/" + t["id"]).status, 204)
            for app in (second, F.app):
                assert_problem(app.request("GET", "/api/v1/tenants/" + OWN, token=t["token"]), 401)
            # revoking again changes nothing; an unknown id is 404; the bootstrap token is configuration
            self.assertEqual(F.request("DELETE", "/api/v1/tokens/" + t["id"]).status, 204)
            assert_problem(F.request("DELETE", "/api/v1/tokens/" + str(uuid.uuid4())), 404)
            assert_problem(F.request("DELETE", "/api/v1/tokens/not-a-uuid"), 404)
            assert_problem(F.request("DELETE", "/api/v1/tokens/bootstrap"), 404, "configuration")
        finally:
            second.stop()
            F.apps.remove(second)
            second.cleanup()

    def test_requested_by_is_the_token_name(self):
        r = F.request("POST", envs(OWN), {"name": "by-token", "type": "ephemeral", "ttl": "2h"},
                      token=TOK["tenant-admin"])
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["job"]["requestedBy"], "own-ci")
        job = r.json["job"]["id"]
        F.wait_job(job)
        # tokens appear in no job, no event and no metric
        seen = F.request("GET", "/api/v1/jobs/%s/events" % job, token=TOK["tenant-admin"]).raw.decode()
        seen += F.request("GET", "/api/v1/jobs/" + job).raw.decode()
        self.assertIn("own-ci", seen)
        if ("GET", "/metrics") in route_table_from_source():
            m = F.request("GET", "/metrics", token=None)
            self.assertEqual(m.status, 200)
            seen += m.raw.decode()
        for secret in TOK.values():
            self.assertNotIn(secret, seen)
        r = F.request("POST", envs(OWN) + "/by-token/extend", {"ttl": "1h"}, token=TOK["tenant-admin"])
        self.assertEqual(r.status, 200, r)
        assert_problem(F.request("POST", envs(OWN) + "/by-token/extend", {"ttl": "1h"},
                                 token=TOK["tenant-viewer"]), 403)

    def test_tokens_of_a_purged_tenant_stop_working(self):
        F.create_tenant("short")
        t = make_token("short-ci", "tenant-admin", "short")
        self.assertEqual(F.request("GET", "/api/v1/tenants/short", token=t["token"]).status, 200)
        # the tenant row goes (as it does 7 days after deletion): so do its tokens
        PG.psql("DELETE FROM environments WHERE tenant = 'short'; DELETE FROM tenants WHERE name = 'short'", F.db)
        assert_problem(F.request("GET", "/api/v1/tenants/short", token=t["token"]), 401)


class Bootstrap(unittest.TestCase):
    """Without CAPSTAN_ADMIN_TOKEN the first start makes a token file readable only by its
    owner and logs its path (never the token); later starts use the same file."""

    def test_generated_admin_token(self):
        db = PG.create_db()
        app = harness.Capstan(PG.url(db), env={"CAPSTAN_ADMIN_TOKEN": ""}, name="bootstrap").start()
        path = os.path.join(app.data_dir, "admin-token")
        try:
            st = os.stat(path)
            self.assertEqual(st.st_mode & 0o777, 0o600)
            with open(path) as f:
                token = f.read().strip()
            secretscan.record(token)
            self.assertRegex(token, r"^cap_[A-Za-z0-9_-]{43}$")
            self.assertIn(path, app.log())
            self.assertNotIn(token, app.log())
            assert_problem(app.request("GET", "/api/v1/tenants"), 401)  # the test token is not configured
            self.assertEqual(app.request("GET", "/api/v1/tenants", token=token).status, 200)
            self.assertEqual(app.stop(), 0)
            # the next start uses the same token
            again = harness.Capstan(PG.url(db), env={"CAPSTAN_ADMIN_TOKEN": ""}, name="bootstrap2")
            shutil.rmtree(again.data_dir)
            again.data_dir = app.data_dir
            again.start()
            self.assertEqual(again.request("GET", "/api/v1/tenants", token=token).status, 200)
            self.assertEqual(again.stop(), 0)
            self.assertNotIn(token, again.log())
            # a token file that others may read is refused
            os.chmod(path, 0o644)
            r = harness.run_capstan(["serve"], PG.url(db), env={"CAPSTAN_DATA_DIR": app.data_dir,
                                                               "CAPSTAN_LISTEN": "127.0.0.1:0"})
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("chmod 600", r.stderr)
            self.assertNotIn(token, r.stderr + r.stdout)
        finally:
            app.stop()
            app.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
