# ctest: labels=lint timeout=600
"""openapi/openapi.yaml: lint-clean with Redocly CLI, and true to the API contract (API.md).

1. Installs the pinned @redocly/cli (openapi/package-lock.json) with `npm ci` into a cache
   folder under $CAPSTAN_BUILD_DIR (the source tree stays clean; the install is skipped while
   package.json and package-lock.json are unchanged) and runs `redocly lint` with
   openapi/redocly.yaml: no error, no warning, nothing ignored. A deliberately broken copy must
   fail the same lint, so a lint that checks nothing cannot pass.
2. Parses the YAML and checks what clients depend on: every route of API.md with its methods,
   auth, the problem responses and headers of every operation, lists, dry runs, concurrency
   and idempotency headers, and the fields (always sent or optional), enums, nullability and
   closedness of the resource schemas. Problem types and titles are checked against the
   server's own table (server/http/status.c). tests/integration/test_api.py (OpenAPIConformance)
   checks real answers of the server against the same schemas.
Needs node (>= 20.19), npm and the npm registry (first run only), and python3-yaml."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

SOURCE_DIR = os.environ.get(
    "CAPSTAN_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
)
BUILD_DIR = os.environ.get("CAPSTAN_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
OPENAPI_DIR = os.path.join(SOURCE_DIR, "openapi")
SPEC = os.path.join(OPENAPI_DIR, "openapi.yaml")
CONFIG = os.path.join(OPENAPI_DIR, "redocly.yaml")
CACHE = os.path.join(BUILD_DIR, "openapi-lint")
API_MD = os.path.join(SOURCE_DIR, "..", "shared", "design", "API.md")
STATUS_C = os.path.join(SOURCE_DIR, "server", "http", "status.c")

TOOL_ENV = dict(
    os.environ,
    REDOCLY_TELEMETRY="off",
    REDOCLY_SUPPRESS_UPDATE_NOTICE="true",
    npm_config_update_notifier="false",
    npm_config_fund="false",
    npm_config_audit="false",
)

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# The routes of API.md (without the Open Service Broker part under /v2) and their methods.
ROUTES = {
    "/api/v1/tenants": {"post", "get"},
    "/api/v1/tenants/{tenant}": {"get", "patch", "delete"},
    "/api/v1/tenants/{tenant}/environments": {"post", "get"},
    "/api/v1/tenants/{tenant}/environments/{env}": {"get", "patch", "delete"},
    "/api/v1/tenants/{tenant}/environments/{env}/extend": {"post"},
    "/api/v1/tenants/{tenant}/environments/{env}/kubeconfig": {"get"},
    "/api/v1/jobs": {"get"},
    "/api/v1/jobs/{id}": {"get"},
    "/api/v1/jobs/{id}/events": {"get"},
    "/api/v1/jobs/{id}/cancel": {"post"},
    "/api/v1/jobs/{id}/retry": {"post"},
    "/api/v1/tokens": {"post", "get"},
    "/api/v1/tokens/{id}": {"delete"},
    "/api/v1/audit": {"get"},
    "/healthz": {"get"},
    "/readyz": {"get"},
    "/metrics": {"get"},
    "/openapi.json": {"get"},
}
PUBLIC = {"/healthz", "/readyz", "/metrics", "/openapi.json"}

# Writes of tenants and environments that start a job: (path, method) -> body key besides "job".
JOB_WRITES = {
    ("/api/v1/tenants", "post"): "tenant",
    ("/api/v1/tenants/{tenant}", "patch"): "tenant",
    ("/api/v1/tenants/{tenant}", "delete"): "tenant",
    ("/api/v1/tenants/{tenant}/environments", "post"): "environment",
    ("/api/v1/tenants/{tenant}/environments/{env}", "patch"): "environment",
    ("/api/v1/tenants/{tenant}/environments/{env}", "delete"): "environment",
}

LIST_FILTERS = {
    "/api/v1/tenants": {"state", "label"},
    "/api/v1/tenants/{tenant}/environments": {"state"},
    "/api/v1/jobs": {"tenant", "state", "kind"},
    "/api/v1/audit": {"tenant", "actor"},
    "/api/v1/tokens": set(),
}


def sha256_of(*paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
        h.update(b"\0")
    return h.hexdigest()


def run(args, cwd, timeout):
    return subprocess.run(args, cwd=cwd, env=TOOL_ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


def install_redocly():
    """npm ci of openapi/package-lock.json into CACHE, unless already done for the same files."""
    node = run(["node", "--version"], cwd=OPENAPI_DIR, timeout=30)
    m = re.match(r"v(\d+)\.(\d+)", node.stdout.strip())
    assert m, "cannot run node: %s" % node.stderr
    major, minor = int(m.group(1)), int(m.group(2))
    assert major > 20 or (major == 20 and minor >= 19), (
        "@redocly/cli needs Node.js 20.19 or newer (22.12+ from 2026); this is %s" % node.stdout.strip()
    )
    sources = [os.path.join(OPENAPI_DIR, n) for n in ("package.json", "package-lock.json")]
    stamp_path = os.path.join(CACHE, ".installed")
    stamp = sha256_of(*sources)
    bin_path = os.path.join(CACHE, "node_modules", ".bin", "redocly")
    try:
        with open(stamp_path) as f:
            if f.read().strip() == stamp and os.path.exists(bin_path):
                return
    except FileNotFoundError:
        pass
    os.makedirs(CACHE, exist_ok=True)
    if os.path.exists(stamp_path):
        os.unlink(stamp_path)
    for s in sources:
        shutil.copyfile(s, os.path.join(CACHE, os.path.basename(s)))
    r = run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=CACHE, timeout=480)
    assert r.returncode == 0, "npm ci failed (%d):\n%s\n%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    assert os.path.exists(bin_path), "npm ci did not install the redocly command"
    with open(stamp_path, "w") as f:
        f.write(stamp + "\n")


def redocly_lint(spec):
    """Runs `npx redocly lint` on spec with openapi/redocly.yaml; returns (exit code, report)."""
    r = run(["npx", "--no", "--", "redocly", "lint", spec, "--config", CONFIG, "--format=json"],
            cwd=CACHE, timeout=180)
    try:
        report = json.loads(r.stdout)
    except ValueError:
        raise AssertionError("redocly lint printed no JSON report (exit %d):\n%s\n%s"
                             % (r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    return r.returncode, report


def describe_problems(report):
    lines = []
    for p in report.get("problems", []):
        loc = (p.get("location") or [{}])[0]
        start = loc.get("start") or {}
        lines.append("%s:%s %s %s: %s (%s)" % (
            start.get("line", "?"), start.get("col", "?"), p.get("severity"), p.get("ruleId"),
            p.get("message"), loc.get("pointer", "")))
    return "\n".join(lines)


class Lint(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        install_redocly()

    def test_lint_is_clean(self):
        rc, report = redocly_lint(SPEC)
        totals = report["totals"]
        msg = "redocly lint of openapi/openapi.yaml:\n" + describe_problems(report)
        self.assertEqual(totals["errors"], 0, msg)
        self.assertEqual(totals["warnings"], 0, msg)
        self.assertEqual(totals["ignored"], 0, msg)
        self.assertEqual(report["problems"], [], msg)
        self.assertEqual(rc, 0, msg)

    def test_lint_catches_a_broken_copy(self):
        with open(SPEC) as f:
            text = f.read()
        # an operation without a summary (error), and an example that breaks its schema
        broken = text.replace("      summary: Get a job\n", "", 1)
        broken = broken.replace("        kind: environment.create\n", "        kind: environment.explode\n", 1)
        self.assertNotEqual(broken, text)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "openapi.yaml")
            with open(path, "w") as f:
                f.write(broken)
            rc, report = redocly_lint(path)
        rules = {p["ruleId"] for p in report["problems"]}
        self.assertNotEqual(rc, 0)
        self.assertIn("operation-summary", rules, describe_problems(report))
        self.assertIn("no-invalid-schema-examples", rules, describe_problems(report))


class Structure(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(SPEC) as f:
            cls.doc = yaml.safe_load(f)
        cls.schemas = cls.doc["components"]["schemas"]

    # ---- helpers ----
    def resolve(self, node):
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            self.assertTrue(ref.startswith("#/"), "external $ref %s" % ref)
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            seen += 1
            self.assertLess(seen, 20, "$ref loop at %s" % ref)
        return node

    def operations(self):
        for path, item in self.doc["paths"].items():
            for method in METHODS:
                if method in item:
                    yield path, method, item[method], item

    def params(self, item, op):
        out = {}
        for p in item.get("parameters", []) + op.get("parameters", []):
            p = self.resolve(p)
            out[(p["in"], p["name"])] = p
        return out

    def schema(self, name):
        self.assertIn(name, self.schemas)
        return self.schemas[name]

    def types_of(self, node):
        """The JSON types a schema allows (following $ref, allOf, oneOf, anyOf)."""
        node = self.resolve(node)
        types = set()
        t = node.get("type")
        if isinstance(t, list):
            types.update(t)
        elif t:
            types.add(t)
        if "const" in node and node["const"] is None:
            types.add("null")
        for key in ("oneOf", "anyOf"):
            for sub in node.get(key, []):
                types |= self.types_of(sub)
        for sub in node.get("allOf", []):
            types |= self.types_of(sub)
        return types

    def enum_of(self, node):
        node = self.resolve(node)
        if "enum" in node:
            return set(node["enum"])
        for key in ("allOf", "oneOf", "anyOf"):
            for sub in node.get(key, []):
                e = self.enum_of(sub)
                if e:
                    return e
        return set()

    def assert_fields(self, name, fields, optional=()):
        """name has exactly fields; all are always sent but the optional ones; no others."""
        s = self.schema(name)
        self.assertEqual(set(s["properties"]), set(fields), name)
        self.assertEqual(set(s.get("required", [])), set(fields) - set(optional),
                         "%s: every field but %s is always sent" % (name, sorted(optional)))
        self.assertIs(s.get("additionalProperties"), False, "%s sends no other field" % name)

    def assert_nullable(self, name, field, nullable=True):
        types = self.types_of(self.schema(name)["properties"][field])
        self.assertEqual("null" in types, nullable, "%s.%s types %s" % (name, field, types))

    # ---- routes ----
    def test_every_route_with_its_methods(self):
        got = {p: {m for m in METHODS if m in item} for p, item in self.doc["paths"].items()}
        for path, methods in ROUTES.items():
            self.assertIn(path, got)
            self.assertEqual(got[path], methods, path)
        self.assertEqual(set(got), set(ROUTES), "routes that API.md does not have")

    def test_routes_named_in_api_md_are_described(self):
        if not os.path.exists(API_MD):
            self.skipTest("API.md is not beside the source tree")
        with open(API_MD) as f:
            text = f.read()
        last = ""
        found = []
        for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) ((?:/|\.\.\./)[^`\s]*)`", text):
            if path.startswith(".../"):
                rest = path[3:]
                idx = last.find("/" + rest.split("/")[1])
                self.assertGreaterEqual(idx, 0, "cannot expand %s after %s" % (path, last))
                path = last[:idx] + rest
            else:
                last = path
            if path.startswith("/v2"):
                continue
            found.append((method.lower(), path))
        self.assertGreater(len(found), 15)
        for method, path in found:
            self.assertIn(path, self.doc["paths"], "API.md names %s %s" % (method.upper(), path))
            self.assertIn(method, self.doc["paths"][path], "API.md names %s %s" % (method.upper(), path))

    def test_operations_are_named_tagged_and_summarized(self):
        ids = []
        tags = {t["name"] for t in self.doc["tags"]}
        for path, method, op, _ in self.operations():
            ids.append(op["operationId"])
            self.assertRegex(op["operationId"], r"^[a-z][A-Za-z]+$")
            self.assertTrue(op.get("summary"), (path, method))
            self.assertTrue(op.get("description"), (path, method))
            self.assertTrue(op.get("tags") and set(op["tags"]) <= tags, (path, method))
        self.assertEqual(len(ids), len(set(ids)))

    # ---- auth ----
    def test_bearer_auth_everywhere_but_the_public_routes(self):
        scheme = self.doc["components"]["securitySchemes"]["bearerAuth"]
        self.assertEqual((scheme["type"], scheme["scheme"]), ("http", "bearer"))
        self.assertEqual(self.doc["security"], [{"bearerAuth": []}])
        for path, method, op, _ in self.operations():
            if path in PUBLIC:
                self.assertEqual(op.get("security"), [], path)
                self.assertNotIn("401", op["responses"], path)
            else:
                self.assertTrue(path.startswith("/api/v1/"), path)
                self.assertNotIn("security", op, "%s %s overrides the global bearer auth" % (method, path))
                self.assertIn("401", op["responses"], (path, method))
                roles = op.get("x-capstan-roles")
                self.assertTrue(roles and set(roles) <= {"admin", "tenant-admin", "tenant-viewer"}, (path, method))
                self.assertIn("admin", roles)
                if set(roles) != {"admin", "tenant-admin", "tenant-viewer"}:
                    self.assertIn("403", op["responses"], "%s %s refuses some roles" % (method, path))
                if method != "get":
                    self.assertNotIn("tenant-viewer", roles, "a tenant-viewer only reads: %s %s" % (method, path))

    def test_admin_only_operations(self):
        admin_only = {("/api/v1/tenants", "post"), ("/api/v1/tokens", "post"), ("/api/v1/tokens", "get"),
                      ("/api/v1/tokens/{id}", "delete"), ("/api/v1/audit", "get")}
        for path, method in admin_only:
            self.assertEqual(self.doc["paths"][path][method]["x-capstan-roles"], ["admin"], (path, method))
        kube = self.doc["paths"]["/api/v1/tenants/{tenant}/environments/{env}/kubeconfig"]["get"]
        self.assertNotIn("tenant-viewer", kube["x-capstan-roles"])
        env_create = self.doc["paths"]["/api/v1/tenants/{tenant}/environments"]["post"]
        self.assertEqual(set(env_create["x-capstan-roles"]), {"admin", "tenant-admin"})

    # ---- responses and headers ----
    def test_every_response_has_the_common_headers(self):
        for path, method, op, _ in self.operations():
            for status, resp in op["responses"].items():
                resp = self.resolve(resp)
                where = "%s %s %s" % (method, path, status)
                headers = resp.get("headers", {})
                for name in ("X-Request-Id", "Cache-Control", "X-Content-Type-Options"):
                    self.assertIn(name, headers, where)
                    self.assertTrue(self.resolve(headers[name]).get("required"), (where, name))
                hdr = self.resolve(headers["X-Request-Id"])
                rid = self.resolve(hdr["schema"])
                self.assertEqual((rid["minLength"], rid["maxLength"], rid["pattern"]), (1, 64, "^[A-Za-z0-9._:-]+$"))
                self.assertEqual(self.resolve(headers["Cache-Control"])["schema"]["const"], "no-store")
                self.assertEqual(self.resolve(headers["X-Content-Type-Options"])["schema"]["const"], "nosniff")

    def test_request_id_accepted_on_every_operation(self):
        for path, method, op, item in self.operations():
            p = self.params(item, op).get(("header", "X-Request-Id"))
            self.assertIsNotNone(p, (path, method))

    def test_errors_are_problems(self):
        status_table = self.server_problem_table()
        for path, method, op, _ in self.operations():
            codes = set(op["responses"])
            self.assertTrue(any(c.startswith("4") for c in codes), (path, method))
            if path in PUBLIC:
                # they read no query, header or body: the only 4xx is a Content-Length over the limit
                self.assertEqual({c for c in codes if c.startswith("4")}, {"413"}, path)
            self.assertIn("500", codes, (path, method))
            if path.startswith("/api/v1/"):
                self.assertTrue({"400", "401", "429", "503"} <= codes, (path, method, codes))
            for code, resp in op["responses"].items():
                if code[0] not in "45":
                    continue
                self.assertIn(int(code), status_table, "status %s is not one the server answers" % code)
                self.assertIn("$ref", resp, "%s %s %s: use the shared components/responses" % (method, path, code))
                resp = self.resolve(resp)
                self.assertEqual(list(resp["content"]), ["application/problem+json"], (path, method, code))
                media = resp["content"]["application/problem+json"]
                self.assertEqual(media["schema"], {"$ref": "#/components/schemas/Problem"})
                ex = media["example"]
                slug, title = status_table[int(code)]
                self.assertEqual(ex["type"], "urn:capstan:problem:" + slug, code)
                self.assertEqual(ex["title"], title, code)
                self.assertEqual(ex["status"], int(code))
                headers = resp["headers"]
                if code == "401":
                    self.assertIn("WWW-Authenticate", headers)
                if code in ("429", "503"):
                    self.assertIn("Retry-After", headers, (path, method, code))

    def server_problem_table(self):
        with open(STATUS_C) as f:
            rows = re.findall(r'\{CAP_\w+, (\d+), "([a-z-]+)", "([^"]+)"\}', f.read())
        self.assertGreaterEqual(len(rows), 12)
        table = {}
        for status, slug, title in rows:
            table.setdefault(int(status), (slug, title))
        return table

    def test_problem_schema(self):
        p = self.schema("Problem")
        self.assertEqual(set(p["properties"]), {"type", "title", "status", "detail", "instance", "requestId", "errors"})
        self.assertEqual(set(p["required"]), {"type", "title", "status", "detail", "instance", "requestId"})
        self.assertEqual(p["properties"]["type"]["format"], "uri")
        self.assertEqual(p["properties"]["status"]["type"], "integer")
        fe = self.resolve(p["properties"]["errors"]["items"])
        self.assertEqual(set(fe["properties"]), {"field", "message"})
        # every problem type the server can answer is named in the description
        for slug, _ in self.server_problem_table().values():
            self.assertIn("`%s`" % slug, p["properties"]["type"]["description"])
            self.assertIn("urn:capstan:problem:" + slug, self.doc["info"]["description"])

    def test_bodies_content_types_and_their_errors(self):
        for path, method, op, _ in self.operations():
            codes = set(op["responses"])
            body = op.get("requestBody")
            if body is None:
                self.assertNotIn("415", codes, (path, method))
                continue
            # cancel and retry take no body, but one sent anyway must be JSON
            self.assertEqual(body["required"], not path.startswith("/api/v1/jobs/"), (path, method))
            want = "application/merge-patch+json" if method == "patch" else "application/json"
            self.assertEqual(list(body["content"]), [want], (path, method))
            self.assertTrue({"413", "415", "422"} <= codes, (path, method, codes))
        for path, method, op, _ in self.operations():
            if method == "patch":
                self.assertIn("requestBody", op, path)

    def test_not_found_on_every_route_with_a_name_or_id(self):
        for path, method, op, _ in self.operations():
            if "{" in path:
                self.assertIn("404", op["responses"], (path, method))

    def test_writes_that_start_work(self):
        for (path, method), key in JOB_WRITES.items():
            op = self.doc["paths"][path][method]
            item = self.doc["paths"][path]
            accepted = self.resolve(op["responses"]["202"])
            self.assertIn("Location", accepted["headers"], (path, method))
            body = self.resolve(accepted["content"]["application/json"]["schema"])
            self.assertEqual(set(body["properties"]), {key, "job"})
            self.assertEqual(set(body["required"]), {key, "job"})
            self.assertEqual(self.resolve(body["properties"]["job"]), self.schema("Job"))
            # dry run: 200 with the files it would write and delete
            params = self.params(item, op)
            dry = params.get(("query", "dryRun"))
            self.assertIsNotNone(dry, (path, method))
            self.assertEqual(self.resolve(dry["schema"]), {"type": "boolean", "default": False})
            ok = self.resolve(op["responses"]["200"])
            result = self.resolve(ok["content"]["application/json"]["schema"])
            self.assertEqual(set(result["required"]), {"files", "deleted"})
            f = self.resolve(result["properties"]["files"]["items"])
            self.assertEqual(set(f["required"]), {"path", "content"})
            self.assertEqual(result["properties"]["deleted"]["items"]["type"], "string")
            self.assertIn("409", op["responses"], (path, method))
        # only those (and no other operation) take dryRun
        # ... and extend, which changes an environment without a job (its dry run writes nothing)
        extend = ("/api/v1/tenants/{tenant}/environments/{env}/extend", "post")
        for path, method, op, item in self.operations():
            if (path, method) not in JOB_WRITES and (path, method) != extend:
                self.assertNotIn(("query", "dryRun"), self.params(item, op), (path, method))
        self.assertIn(("query", "dryRun"), self.params(self.doc["paths"][extend[0]], self.doc["paths"][extend[0]]["post"]))

    def test_tenant_create_and_delete(self):
        create = self.doc["paths"]["/api/v1/tenants"]["post"]
        self.assertEqual(create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
                         "#/components/schemas/TenantCreate")
        delete = self.doc["paths"]["/api/v1/tenants/{tenant}"]["delete"]
        cascade = self.params(self.doc["paths"]["/api/v1/tenants/{tenant}"], delete)[("query", "cascade")]
        self.assertEqual(cascade["schema"], {"type": "boolean", "default": False})

    def test_job_actions(self):
        for action in ("cancel", "retry"):
            op = self.doc["paths"]["/api/v1/jobs/{id}/" + action]["post"]
            resp = self.resolve(op["responses"]["202"])
            self.assertIn("Location", resp["headers"])
            body = self.resolve(resp["content"]["application/json"]["schema"])
            self.assertEqual(set(body["required"]), {"job"})
            self.assertIn("409", op["responses"])
        extend = self.doc["paths"]["/api/v1/tenants/{tenant}/environments/{env}/extend"]["post"]
        one_of = self.resolve(extend["responses"]["200"])["content"]["application/json"]["schema"]["oneOf"]
        body, dry = [self.resolve(s) for s in one_of]
        self.assertEqual(set(body["required"]), {"environment"})
        self.assertEqual(set(dry["required"]), {"files", "deleted"})
        ext = self.resolve(extend["requestBody"]["content"]["application/json"]["schema"])
        self.assertEqual(ext["required"], ["ttl"])

    def test_etag_and_if_match(self):
        for path in ("/api/v1/tenants/{tenant}", "/api/v1/tenants/{tenant}/environments/{env}"):
            item = self.doc["paths"][path]
            ok = self.resolve(item["get"]["responses"]["200"])
            self.assertIn("ETag", ok["headers"], path)
            for method in ("patch", "delete"):
                self.assertIn(("header", "If-Match"), self.params(item, item[method]), (path, method))
                self.assertIn("412", item[method]["responses"], (path, method))
        for path, method, op, item in self.operations():
            if "412" in op["responses"]:
                self.assertIn(("header", "If-Match"), self.params(item, op), (path, method))

    def test_idempotency_key(self):
        key = self.resolve({"$ref": "#/components/parameters/IdempotencyKey"})
        self.assertEqual((key["in"], key["name"]), ("header", "Idempotency-Key"))
        s = key["schema"]
        self.assertEqual((s["minLength"], s["maxLength"]), (1, 255))
        self.assertTrue(re.fullmatch(s["pattern"], "a-Key/with~symbols!"))
        for bad in ("with space", "tab\there", "caf\u00e9"):
            self.assertFalse(re.fullmatch(s["pattern"], bad), bad)
        # every POST but token creation, and the PATCH and DELETE of tenants and environments
        changes = {(p, m) for (p, m) in JOB_WRITES if m != "post"}
        for path, method, op, item in self.operations():
            has = ("header", "Idempotency-Key") in self.params(item, op)
            want = (method == "post" and path != "/api/v1/tokens") or (path, method) in changes
            self.assertEqual(has, want, (path, method))
            if not has:
                continue
            # a key reused for another request is 422; one still in use, 503
            self.assertTrue({"400", "422", "503"} <= set(op["responses"]), (path, method))
            for status, resp in op["responses"].items():
                if status.startswith("2") and resp.get("$ref") != "#/components/responses/DryRun":
                    self.assertIn("Idempotent-Replayed", self.resolve(resp)["headers"], (path, method, status))

    def test_lists(self):
        for path, filters in LIST_FILTERS.items():
            item = self.doc["paths"][path]
            params = self.params(item, item["get"])
            limit = self.resolve(params[("query", "limit")]["schema"])
            self.assertEqual((limit["type"], limit["minimum"], limit["maximum"], limit["default"]),
                             ("integer", 1, 500, 50))
            self.assertEqual(self.resolve(params[("query", "cursor")]["schema"])["type"], "string")
            got = {name for (where, name) in params if where == "query"} - {"limit", "cursor"}
            self.assertEqual(got, filters, path)
            body = self.resolve(self.resolve(item["get"]["responses"]["200"])["content"]["application/json"]["schema"])
            self.assertEqual(set(body["required"]), {"items", "nextCursor"})
            self.assertEqual(body["properties"]["items"]["type"], "array")
            self.assertEqual(self.types_of(body["properties"]["nextCursor"]), {"string", "null"})
        label = self.params(self.doc["paths"]["/api/v1/tenants"], self.doc["paths"]["/api/v1/tenants"]["get"])[("query", "label")]
        self.assertEqual((label["schema"]["type"], label["explode"]), ("array", True))
        jobs = self.doc["paths"]["/api/v1/jobs"]
        jp = self.params(jobs, jobs["get"])
        self.assertEqual(self.enum_of(jp[("query", "kind")]["schema"]), self.enum_of(self.schema("JobKind")))
        self.assertEqual(self.enum_of(jp[("query", "state")]["schema"]), self.enum_of(self.schema("JobState")))

    def test_media_types_of_special_routes(self):
        p = self.doc["paths"]
        kube = p["/api/v1/tenants/{tenant}/environments/{env}/kubeconfig"]["get"]["responses"]["200"]
        self.assertEqual(list(kube["content"]), ["application/yaml"])
        self.assertIn("409", p["/api/v1/tenants/{tenant}/environments/{env}/kubeconfig"]["get"]["responses"])
        events = p["/api/v1/jobs/{id}/events"]["get"]
        self.assertEqual(list(events["responses"]["200"]["content"]), ["text/event-stream"])
        self.assertIn(("header", "Last-Event-ID"), self.params(p["/api/v1/jobs/{id}/events"], events))
        for word in ("`step`", "`log`", "`state`", "`end`", "`id:`", "Last-Event-ID"):
            self.assertIn(word, events["description"])
        self.assertEqual(list(p["/metrics"]["get"]["responses"]["200"]["content"]), ["text/plain"])
        self.assertEqual(list(p["/openapi.json"]["get"]["responses"]["200"]["content"]), ["application/json"])
        self.assertIn("503", p["/readyz"]["get"]["responses"])
        revoke = p["/api/v1/tokens/{id}"]["delete"]["responses"]
        self.assertIn("204", revoke)
        self.assertNotIn("content", revoke["204"])
        self.assertIn("201", p["/api/v1/tokens"]["post"]["responses"])

    # ---- schemas ----
    def test_tenant_schema(self):
        self.assert_fields("Tenant", ["name", "displayName", "owners", "isolation", "provider", "region", "quota",
                                      "labels", "state", "platformRepository", "generation", "observedGeneration",
                                      "createdAt", "updatedAt"], optional=["region"])
        t = self.schema("Tenant")["properties"]
        self.assertEqual(self.enum_of(t["state"]), {"pending", "provisioning", "ready", "failed", "deleting", "deleted"})
        self.assertEqual(self.enum_of(t["isolation"]), {"vcluster", "dedicated"})
        self.assertEqual(self.enum_of(t["provider"]), {"vcluster", "gcp", "aws"})
        for f in ("state", "generation", "observedGeneration", "createdAt", "updatedAt", "platformRepository"):
            self.assertTrue(t[f].get("readOnly"), "Tenant.%s is set by the server" % f)
        self.assert_nullable("Tenant", "platformRepository")
        self.assert_nullable("Tenant", "name", False)
        self.assert_nullable("Tenant", "region", False)  # absent for vcluster tenants, never null
        region = self.resolve(t["region"]["allOf"][0])
        self.assertEqual((region["maxLength"], region["pattern"]), (40, "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))
        self.assertEqual(self.resolve(t["displayName"])["maxLength"], 100)
        name = self.resolve(t["name"])
        self.assertEqual((name["minLength"], name["maxLength"], name["pattern"]), (1, 30, "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))
        quota = self.resolve(t["quota"])
        self.assertEqual(set(quota["properties"]), {"cpu", "memory", "environments"})
        self.assertEqual(quota["properties"]["environments"]["type"], "integer")
        self.assertEqual((quota["properties"]["environments"]["minimum"], quota["properties"]["environments"]["maximum"]),
                         (0, 1000))

    def test_tenant_create_and_patch_schemas(self):
        c = self.schema("TenantCreate")
        self.assertEqual(set(c["required"]), {"name", "displayName", "owners", "quota"})
        self.assertEqual(set(c["properties"]), {"name", "displayName", "owners", "isolation", "provider", "region",
                                                "quota", "labels"})
        self.assertEqual(c["properties"]["isolation"]["default"], "vcluster")
        owners = self.resolve(c["properties"]["owners"])
        self.assertEqual((owners["minItems"], owners["maxItems"]), (1, 20))
        self.assertEqual(self.resolve(owners["items"])["format"], "email")
        self.assertIn("region", c["description"])
        labels = self.resolve(c["properties"]["labels"]["allOf"][0])
        key = re.compile(labels["propertyNames"]["pattern"])
        for ok in ("cost-center", "example.com/team", "a", "A_b.c"):
            self.assertTrue(key.fullmatch(ok), ok)
        for bad in ("-x", "x-", "Example.com/x", "a/b/c", ""):
            self.assertFalse(key.fullmatch(bad), bad)
        value = re.compile(self.resolve(labels["additionalProperties"])["pattern"])
        for ok in ("", "4711", "a.b-c_d"):
            self.assertTrue(value.fullmatch(ok), ok)
        for bad in ("-a", "a b", "a-"):
            self.assertFalse(value.fullmatch(bad), bad)
        p = self.schema("TenantPatch")
        self.assertEqual(set(p["properties"]), {"displayName", "owners", "quota", "labels"})
        self.assertIs(p["additionalProperties"], False)

    def test_environment_schema(self):
        # ttl only for ephemeral environments, controlPlane and workers only for dedicated tenants
        self.assert_fields("Environment", ["name", "tenant", "type", "ttl", "expiresAt", "kubernetesVersion",
                                           "controlPlane", "workers", "state", "cluster", "gitCommit", "generation",
                                           "observedGeneration", "createdAt", "updatedAt"],
                           optional=["ttl", "controlPlane", "workers"])
        e = self.schema("Environment")["properties"]
        self.assertEqual(self.enum_of(e["state"]),
                         {"pending", "provisioning", "ready", "failed", "deleting", "deleted", "expired"})
        self.assertEqual(self.enum_of(e["type"]), {"permanent", "ephemeral"})
        for f in ("state", "generation", "observedGeneration", "createdAt", "updatedAt", "cluster", "gitCommit",
                  "expiresAt"):
            self.assertTrue(e[f].get("readOnly"), "Environment.%s is set by the server" % f)
        for f in ("expiresAt", "gitCommit"):
            self.assert_nullable("Environment", f)
        for f in ("ttl", "controlPlane", "workers"):
            self.assert_nullable("Environment", f, False)
        self.assertEqual(self.resolve(e["controlPlane"]["allOf"][0]), self.schema("ControlPlane"))
        self.assertEqual(self.resolve(e["workers"]["allOf"][0]), self.schema("Workers"))
        for name in ("ControlPlane", "Workers", "Cluster"):
            self.assertEqual(set(self.schema(name)["required"]), set(self.schema(name)["properties"]), name)
            self.assertIs(self.schema(name)["additionalProperties"], False, name)
        cluster = self.resolve(e["cluster"]["allOf"][0])
        self.assertEqual(set(cluster["properties"]), {"name", "namespace", "phase"})
        self.assertEqual(self.types_of(cluster["properties"]["phase"]), {"string", "null"})
        name = self.resolve(e["name"])
        self.assertEqual((name["minLength"], name["maxLength"]), (1, 20))
        commit = re.compile(self.resolve(self.schema("GitCommit"))["pattern"])
        self.assertTrue(commit.fullmatch("a" * 40))
        self.assertFalse(commit.fullmatch("a" * 39))

    def test_environment_create_patch_extend_schemas(self):
        c = self.schema("EnvironmentCreate")
        self.assertEqual(set(c["properties"]), {"name", "type", "ttl", "kubernetesVersion", "controlPlane", "workers"})
        self.assertEqual(c["required"], ["name"])
        self.assertEqual(c["properties"]["type"]["default"], "permanent")
        version = re.compile(self.resolve(self.schema("KubernetesVersion"))["pattern"])
        self.assertTrue(version.fullmatch("v1.30.4"))
        for bad in ("1.30.4", "v1.30", "v1.30.4-rc.1"):
            self.assertFalse(version.fullmatch(bad), bad)
        for bad in ("v2.0.0", "v1.030.4", "v1.1000.0"):
            self.assertFalse(version.fullmatch(bad), bad)
        # the server's durations: numbers with h, m, s or ms, in any order; a bare number at the end is seconds
        duration = self.resolve(self.schema("Duration"))
        for ok in ("72h", "1h", "720h", "1h30m", "90m", "7200", "30m1h", "3600000ms"):
            self.assertTrue(re.fullmatch(duration["pattern"], ok) and len(ok) >= duration["minLength"], ok)
        for bad in ("h", "3d", "-1h", "1.5h", "", "1 h", "1hh"):
            self.assertFalse(re.fullmatch(duration["pattern"], bad) and len(bad) >= duration["minLength"], bad)
        cp = self.resolve(self.schema("ControlPlane"))
        self.assertEqual(set(self.resolve(cp["properties"]["replicas"])["enum"]), {1, 3, 5})
        w = self.resolve(self.schema("Workers"))
        replicas = self.resolve(w["properties"]["replicas"])
        self.assertEqual((replicas["minimum"], replicas["maximum"]), (0, 100))
        # dedicated environments may leave out the pools and their fields: defaults per provider
        for name, key, default in (("ControlPlaneSpec", "controlPlane", 1), ("WorkersSpec", "workers", 2)):
            spec = self.schema(name)
            self.assertEqual(c["properties"][key], {"$ref": "#/components/schemas/" + name})
            self.assertNotIn("required", spec, name)
            self.assertEqual(spec["properties"]["replicas"]["default"], default, name)
        self.assertIn("e2-standard-2", self.schema("ControlPlaneSpec")["description"])
        self.assertIn("t3.large", self.schema("ControlPlaneSpec")["description"])
        self.assertIn("e2-standard-4", self.schema("WorkersSpec")["description"])
        self.assertIn("t3.xlarge", self.schema("WorkersSpec")["description"])
        self.assertEqual(set(self.schema("EnvironmentPatch")["properties"]), {"workers", "kubernetesVersion"})
        self.assertEqual(set(self.schema("EnvironmentExtend")["properties"]), {"ttl"})
        patch = self.doc["paths"]["/api/v1/tenants/{tenant}/environments/{env}"]["patch"]["description"]
        self.assertIn("one minor", patch)

    def test_job_schema(self):
        self.assert_fields("Job", ["id", "kind", "tenant", "environment", "state", "attempt", "maxAttempts",
                                   "runAfter", "steps", "error", "result", "requestedBy", "createdAt", "startedAt",
                                   "finishedAt"])
        j = self.schema("Job")["properties"]
        self.assertEqual(j["id"]["format"], "uuid")
        self.assertEqual(self.enum_of(j["kind"]), {
            "tenant.create", "tenant.update", "tenant.delete", "environment.create", "environment.update",
            "environment.delete", "environment.expire"})
        self.assertEqual(self.enum_of(j["state"]), {"queued", "running", "succeeded", "failed", "cancelled"})
        for f in ("environment", "error", "result", "startedAt", "finishedAt"):
            self.assert_nullable("Job", f)
        for f in ("id", "kind", "tenant", "state", "steps", "createdAt"):
            self.assert_nullable("Job", f, False)
        step = self.resolve(j["steps"]["items"])
        self.assertEqual(set(step["properties"]), {"name", "state", "startedAt", "finishedAt", "message"})
        self.assertEqual(self.enum_of(step["properties"]["state"]),
                         {"pending", "running", "succeeded", "failed", "skipped", "cancelled"})
        self.assertEqual(self.enum_of(step["properties"]["name"]), {
            "platform-repository", "render", "git-push", "flux-reconcile", "wait-applied", "wait-cluster",
            "wait-cluster-gone", "wait-clusters-gone"})
        self.assertIs(step["additionalProperties"], False)
        error = self.resolve(j["error"]["oneOf"][0])
        self.assertEqual(set(error["properties"]), {"step", "message"})
        result = self.resolve(j["result"]["oneOf"][0])
        self.assertEqual(set(result["properties"]), {"commit", "platformRepository"})
        self.assertIs(result["additionalProperties"], False)

    def test_job_event_schemas(self):
        events = self.doc["paths"]["/api/v1/jobs/{id}/events"]["get"]
        stream = events["responses"]["200"]["content"]["text/event-stream"]["schema"]
        self.assertEqual(stream["contentSchema"], {"$ref": "#/components/schemas/JobEvent"})
        for word in ("retry: 2000", ": keep-alive", "`seq`", "`time`", "`data`"):
            self.assertIn(word, events["description"])
        variants = {}
        for ref in self.schema("JobEvent")["oneOf"]:
            v = self.resolve(ref)
            self.assertEqual(set(v["required"]), {"seq", "type", "time", "data"})
            self.assertIs(v["additionalProperties"], False)
            variants[v["properties"]["type"]["const"]] = v["properties"]["data"]
        self.assertEqual(set(variants), {"state", "step", "log"})
        self.assertEqual(set(variants["state"]["properties"]),
                         {"state", "attempt", "maxAttempts", "reason", "message", "step", "commit"})
        self.assertEqual(variants["state"]["required"], ["state"])
        self.assertEqual(set(variants["step"]["required"]), {"step", "state"})
        self.assertEqual(set(variants["step"]["properties"]["state"]["enum"]),
                         {"running", "succeeded", "failed", "skipped", "waiting"})
        self.assertEqual(set(variants["log"]["required"]), {"level", "message"})
        last = self.params(self.doc["paths"]["/api/v1/jobs/{id}/events"], events)[("header", "Last-Event-ID")]
        self.assertEqual((last["schema"]["minimum"], last["schema"]["maximum"]), (0, 1 << 31))

    def test_token_schemas(self):
        c = self.schema("TokenCreate")
        self.assertEqual(set(c["properties"]), {"name", "role", "tenant", "expiresAt"})
        self.assertEqual(set(c["required"]), {"name", "role"})
        name = self.resolve(c["properties"]["name"])
        self.assertEqual((name["minLength"], name["maxLength"]), (1, 64))
        self.assertEqual(self.enum_of(c["properties"]["role"]), {"admin", "tenant-admin", "tenant-viewer"})
        fields = ["id", "name", "role", "tenant", "createdAt", "expiresAt", "revokedAt", "lastUsedAt"]
        self.assert_fields("Token", fields)
        for f in ("tenant", "expiresAt", "revokedAt", "lastUsedAt"):
            self.assert_nullable("Token", f)
        # the answer of a create: the same fields (none revoked or used yet) and the token, once
        self.assert_fields("TokenCreated", fields + ["token"])
        self.assertEqual(self.types_of(self.schema("TokenCreated")["properties"]["revokedAt"]), {"null"})
        self.assertTrue(re.fullmatch(self.schema("TokenCreated")["properties"]["token"]["pattern"], "cap_" + "A" * 43))
        listed = self.resolve(self.resolve(self.doc["paths"]["/api/v1/tokens"]["get"]["responses"]["200"])
                              ["content"]["application/json"]["schema"])
        self.assertNotIn("token", self.resolve(listed["properties"]["items"]["items"])["properties"])

    def test_audit_entry_schema(self):
        self.assert_fields("AuditEntry", ["id", "time", "actor", "tokenId", "role", "tenant", "action", "target",
                                          "method", "path", "status", "result", "requestId", "remote"])
        a = self.schema("AuditEntry")["properties"]
        self.assertEqual(set(a["result"]["enum"]), {"allowed", "denied", "failed"})
        self.assertEqual(a["status"]["type"], "integer")
        for f in ("actor", "tokenId", "role", "tenant"):
            self.assert_nullable("AuditEntry", f)
        # the actions are the names of the routes that need credentials (server/api/routes.c)
        with open(os.path.join(SOURCE_DIR, "server", "api", "routes.c")) as f:
            routes = re.findall(r'\{"(?:GET|POST|PATCH|DELETE)",(.*?)"([a-z.]+)"\},', f.read(), re.S)
        self.assertGreater(len(routes), 20)
        self.assertEqual(set(a["action"]["enum"]), {name for rest, name in routes if "ROUTE_PUBLIC" not in rest})

    def test_metrics_and_resources_are_described(self):
        metrics = self.doc["paths"]["/metrics"]["get"]
        self.assertIn("process_", metrics["description"])
        self.assertIn("capstan_", metrics["description"])
        for name in ("Tenant", "Environment", "Job", "JobStep", "Token", "TokenCreated", "AuditEntry", "Problem",
                     "FieldError", "DryRunResult", "TenantList", "EnvironmentList", "JobList", "TokenList",
                     "AuditEntryList", "TenantAccepted", "EnvironmentAccepted", "JobAccepted", "Health", "Readiness"):
            self.assertIs(self.schema(name)["additionalProperties"], False, name)
        ts = self.schema("Timestamp")
        self.assertTrue(re.fullmatch(ts["pattern"], "2025-06-02T09:15:04.120Z"))
        self.assertFalse(re.fullmatch(ts["pattern"], "2025-06-02T09:15:04Z"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
