# ctest: timeout=300
"""Tenant platform repositories (server/cloud) against the GitHub REST API double and a real Git
server.

Drives platform_repo_ensure through tests/integration/drivers/platform_repo_driver.c (one process
per call, as a retried job would be) and checks what capstan relies on:
  github: create from a template with the documented request, reuse on a second call without a
  second POST, the fork path (202 Accepted, then polled until the fork exists), a 422 race that
  ends in reuse, rate limits waited out when short and reported (retryable, with the reset time)
  when beyond the budget, a bad token, a same-named repository not made from the blueprint, a
  fork request answered with an existing fork, TLS with the double's CA;
  git: against git http-backend over https with basic auth and a test CA, and against a local
  path pattern: the new repository holds the blueprint's commits and files, a second call pushes
  nothing, unrelated history or other branches are a conflict, a wrong password, a missing
  repository, a silent server (deadline), credentials kept from another server.
No token or password may appear in any output.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "doubles"))
import github_api  # noqa: E402
import gitserver  # noqa: E402

DRIVER = os.path.join(os.environ.get("CAPSTAN_DRIVER_DIR", os.path.join(HERE, "..", "..", "build", "tests",
                                                                         "integration")), "platform_repo_driver")
CAP_ERROR, CAP_EINVALID, CAP_ENOTFOUND, CAP_ECONFLICT = -1, -2, -4, -5
CAP_EUNAUTHORIZED, CAP_EFORBIDDEN, CAP_ERATELIMIT, CAP_EUNAVAILABLE, CAP_ETIMEOUT = -9, -10, -11, -12, -13

OUTPUTS = []   # every driver's stdout and stderr
SECRETS = []   # values that must never appear in them


def run_driver(args, env=None, timeout=120):
    """Runs the driver once; returns (exit code, [JSON results], stderr)."""
    e = dict(os.environ)
    e.pop("PLATFORM_TOKEN", None)
    e.pop("PLATFORM_PASSWORD", None)
    e["ASAN_OPTIONS"] = "detect_leaks=1:exitcode=66"
    e.update(env or {})
    r = subprocess.run([DRIVER] + args, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out, err = r.stdout.decode(), r.stderr.decode("utf-8", "replace")
    OUTPUTS.append(out + err)
    assert r.returncode in (0, 1), "driver exited with %d: %s" % (r.returncode, err)
    results = [json.loads(line) for line in out.splitlines() if line.strip()]
    return r.returncode, results, err


def tearDownModule():
    text = "\n".join(OUTPUTS)
    for s in SECRETS:
        assert s not in text, "a secret appeared in the driver's output"


# ---- github ------------------------------------------------------------------------------

class GitHubTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = github_api.GitHubApi().start()
        SECRETS.append(cls.api.token)
        cls.api.add_account("acme")
        cls.api.add_account("solo-user", type="User")
        cls.api.add_repo("platform/blueprint", is_template=True, description="the platform blueprint")
        cls.api.add_repo("platform/blueprint-src")
        cls.api.add_repo("platform/blueprint-src2")
        cls.api.add_repo("platform/other-template", is_template=True)

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()

    def setUp(self):
        self.api.clear_faults()
        self.api.set_fork_delay(0, 0)
        self.api.set_single_fork_per_account(False)
        self.api.set_rate_limit()
        self.mark = len(self.api.get_requests())

    def gh(self, tenant, *extra, token=None, fork=False, ca=True, timeout_ms=20000, owner="acme", threads=1,
           fork_src="platform/blueprint-src"):
        args = ["--provider", "github", "--tenant", tenant, "--api-url", self.api.url, "--owner", owner,
                "--timeout-ms", str(timeout_ms), "--log-level", "debug", "--threads", str(threads)]
        args += ["--fork", fork_src] if fork else ["--template", "platform/blueprint"]
        if ca:
            args += ["--ca-file", self.api.ca_file]
        rc, results, err = run_driver(args + list(extra), env={"PLATFORM_TOKEN": token or self.api.token})
        self.assertEqual(len(results), threads, err)
        return rc, (results if threads > 1 else results[0]), err

    def reqs(self):
        return self.api.get_requests(self.mark)

    def assert_ok(self, r, full):
        self.assertNotIn("error", r, r)
        self.assertEqual(r["url"], "https://github.test/%s.git" % full)

    def test_template_create_then_reuse(self):
        rc, r, _ = self.gh("alpha")
        self.assertEqual(rc, 0)
        self.assert_ok(r, "acme/tenant-alpha")
        reqs = self.reqs()
        self.assertEqual([(q["method"], q["path"], q["status"]) for q in reqs],
                         [("GET", "/repos/acme/tenant-alpha", 404),
                          ("POST", "/repos/platform/blueprint/generate", 201)])
        body = reqs[1]["body"]
        self.assertEqual((body["owner"], body["name"], body["private"], body["include_all_branches"]),
                         ("acme", "tenant-alpha", True, False))
        for q in reqs:  # the documented headers, on every call
            self.assertEqual(q["auth"], "ok")
            self.assertEqual(q["accept"], "application/vnd.github+json")
            self.assertEqual(q["apiVersion"], "2022-11-28")
            self.assertTrue(q["userAgent"].startswith("capstan/"), q["userAgent"])
        self.assertTrue(reqs[1]["contentType"].startswith("application/json"))
        repo = self.api.get_repo("acme/tenant-alpha")
        self.assertEqual(repo["template_repository"]["full_name"], "platform/blueprint")
        self.assertTrue(repo["private"])

        # a retried job: the same URL, no second creation
        self.mark = len(self.api.get_requests())
        rc, r, _ = self.gh("alpha")
        self.assert_ok(r, "acme/tenant-alpha")
        self.assertEqual([(q["method"], q["status"]) for q in self.reqs()], [("GET", 200)])

    def test_public_repositories(self):
        rc, r, _ = self.gh("public-one", "--public")
        self.assert_ok(r, "acme/tenant-public-one")
        self.assertFalse(self.reqs()[1]["body"]["private"])
        self.assertFalse(self.api.get_repo("acme/tenant-public-one")["private"])

    def test_name_pattern(self):
        rc, r, _ = self.gh("omega", "--name-pattern", "platform-{tenant}-config")
        self.assert_ok(r, "acme/platform-omega-config")

    def test_fork_accepted_then_polled_until_it_exists(self):
        self.api.set_fork_delay(seconds=0.8, gets=3)
        rc, r, _ = self.gh("beta", fork=True)
        self.assertEqual(rc, 0)
        self.assert_ok(r, "acme/tenant-beta")
        self.assertGreaterEqual(r["ms"], 700)  # it waited for the fork
        reqs = self.reqs()
        self.assertEqual((reqs[0]["method"], reqs[0]["status"]), ("GET", 404))
        self.assertEqual((reqs[1]["method"], reqs[1]["path"], reqs[1]["status"]),
                         ("POST", "/repos/platform/blueprint-src/forks", 202))
        self.assertEqual(reqs[1]["body"], {"organization": "acme", "name": "tenant-beta", "default_branch_only": True})
        polls = reqs[2:]
        self.assertGreaterEqual(len(polls), 3)
        self.assertTrue(all(q["method"] == "GET" and q["path"] == "/repos/acme/tenant-beta" for q in polls))
        self.assertEqual([q["status"] for q in polls], [404] * (len(polls) - 1) + [200])
        self.assertEqual(self.api.get_repo("acme/tenant-beta")["parent"]["full_name"], "platform/blueprint-src")

        self.mark = len(self.api.get_requests())
        rc, r, _ = self.gh("beta", fork=True)
        self.assert_ok(r, "acme/tenant-beta")
        self.assertNotIn("POST", [q["method"] for q in self.reqs()])

    def test_fork_that_never_appears_times_out_then_retry_reuses(self):
        self.api.set_fork_delay(seconds=60)
        rc, r, _ = self.gh("slow-fork", fork=True, timeout_ms=1500)
        self.assertEqual(r["error"], CAP_ETIMEOUT, r)
        self.assertIn("accepted the fork", r["message"])
        self.assertLess(r["ms"], 5000)
        self.api.make_visible()
        self.mark = len(self.api.get_requests())
        rc, r, _ = self.gh("slow-fork", fork=True)
        self.assert_ok(r, "acme/tenant-slow-fork")
        self.assertNotIn("POST", [q["method"] for q in self.reqs()])

    def test_create_race_422_reuses_the_other_repository(self):
        self.api.race_next_create()
        rc, r, _ = self.gh("gamma")
        self.assertEqual(rc, 0, r)
        self.assert_ok(r, "acme/tenant-gamma")
        self.assertEqual([(q["method"], q["status"]) for q in self.reqs()], [("GET", 404), ("POST", 422), ("GET", 200)])
        self.assertEqual(self.api.list_repos().count("acme/tenant-gamma"), 1)

    def test_fork_race_422_reuses(self):
        self.api.race_next_create()
        rc, r, _ = self.gh("gamma-fork", fork=True)
        self.assert_ok(r, "acme/tenant-gamma-fork")
        self.assertEqual([(q["method"], q["status"]) for q in self.reqs()], [("GET", 404), ("POST", 422), ("GET", 200)])

    def test_rate_limit_with_short_reset_is_waited_out(self):
        reset = self.api.exhaust_rate_limit(reset_in=1)
        rc, r, _ = self.gh("delta")
        self.assertEqual(rc, 0, r)
        self.assert_ok(r, "acme/tenant-delta")
        reqs = self.reqs()
        self.assertEqual((reqs[0]["method"], reqs[0]["status"]), ("GET", 403))
        # it did not try again before the reset time
        self.assertGreaterEqual(reqs[1]["time"], reset)
        self.assertEqual([q["status"] for q in reqs[1:]], [404, 201])

    def test_secondary_limit_retry_after_is_honoured(self):
        self.api.secondary_limit(count=1, retry_after=1, status=429, method="POST")
        rc, r, _ = self.gh("epsilon")
        self.assert_ok(r, "acme/tenant-epsilon")
        reqs = self.reqs()
        self.assertEqual([(q["method"], q["status"]) for q in reqs], [("GET", 404), ("POST", 429), ("POST", 201)])
        self.assertGreaterEqual(reqs[2]["time"] - reqs[1]["time"], 0.95)

    def test_rate_limit_beyond_the_budget_is_a_clear_retryable_error(self):
        reset = self.api.exhaust_rate_limit(reset_in=3600)
        rc, r, _ = self.gh("zeta", timeout_ms=5000)
        self.assertEqual(rc, 1)
        self.assertEqual(r["error"], CAP_ERATELIMIT, r)
        self.assertLess(r["ms"], 3000)  # it did not sit out the budget
        when = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(reset + 1))
        self.assertIn(when, r["message"])
        self.assertIn("rate limit", r["message"])
        self.assertEqual(len(self.reqs()), 1)

    def test_secondary_limit_without_headers_beyond_budget(self):
        self.api.secondary_limit(count=1, status=403)
        rc, r, _ = self.gh("eta", timeout_ms=5000)
        self.assertEqual(r["error"], CAP_ERATELIMIT, r)
        self.assertIn("secondary rate limit", r["message"])

    def test_bad_token(self):
        wrong = "ghp_" + "x1y2z3" * 6
        SECRETS.append(wrong)
        rc, r, err = self.gh("theta", token=wrong)
        self.assertEqual(r["error"], CAP_EUNAUTHORIZED, r)
        self.assertIn("rejected the token", r["message"])
        self.assertIn("Bad credentials", r["message"])
        self.assertEqual([(q["method"], q["status"], q["auth"]) for q in self.reqs()], [("GET", 401, "bad")])
        self.assertNotIn(wrong, json.dumps(r) + err)

    def test_same_named_repository_not_from_the_blueprint_is_a_conflict(self):
        self.api.add_repo("acme/tenant-iota")
        rc, r, _ = self.gh("iota")
        self.assertEqual(r["error"], CAP_ECONFLICT, r)
        self.assertIn('"acme/tenant-iota" exists but was not made from the blueprint', r["message"])
        self.api.add_repo("acme/tenant-kappa", template_of="platform/other-template")
        rc, r, _ = self.gh("kappa")
        self.assertEqual(r["error"], CAP_ECONFLICT, r)
        self.assertIn("platform/other-template", r["message"])
        rc, r, _ = self.gh("kappa", fork=True)
        self.assertEqual(r["error"], CAP_ECONFLICT, r)
        self.assertNotIn("POST", [q["method"] for q in self.reqs()])

    def test_fork_answered_with_an_existing_fork_is_a_conflict(self):
        self.api.set_single_fork_per_account(True)
        rc, r, _ = self.gh("lambda-one", fork=True, fork_src="platform/blueprint-src2")
        self.assert_ok(r, "acme/tenant-lambda-one")
        rc, r, _ = self.gh("lambda-two", fork=True, fork_src="platform/blueprint-src2")
        self.assertEqual(r["error"], CAP_ECONFLICT, r)
        self.assertIn('existing fork "acme/tenant-lambda-one"', r["message"])

    def test_fork_into_a_user_account_is_refused(self):
        rc, r, _ = self.gh("mu", fork=True, owner="solo-user")
        self.assertEqual(r["error"], CAP_EINVALID, r)
        self.assertIn("login for a user account", r["message"])

    def test_missing_template(self):
        rc, r, _ = self.gh("nu", "--template", "platform/nope")  # the last --template wins
        self.assertEqual(r["error"], CAP_EINVALID, r)
        self.assertIn('"platform/nope" does not exist or the token cannot read it', r["message"])

    def test_server_error_is_retried(self):
        self.api.inject(502, method="GET", count=1)
        rc, r, _ = self.gh("xi")
        self.assert_ok(r, "acme/tenant-xi")
        self.assertEqual([q["status"] for q in self.reqs()], [502, 404, 201])

    def test_untrusted_certificate(self):
        rc, r, _ = self.gh("omicron", ca=False)
        self.assertEqual(r["error"], CAP_ERROR, r)
        self.assertIn("not trusted", r["message"])
        self.assertEqual(self.reqs(), [])

    def test_concurrent_calls_make_one_repository(self):
        rc, results, _ = self.gh("pi", threads=4)
        self.assertEqual(rc, 0, results)
        self.assertEqual({r["url"] for r in results}, {"https://github.test/acme/tenant-pi.git"})
        created = [q for q in self.reqs() if q["method"] == "POST" and q["status"] == 201]
        self.assertEqual(len(created), 1)

    def test_invalid_options(self):
        base = ["--provider", "github", "--tenant", "rho", "--owner", "acme", "--check"]
        env = {"PLATFORM_TOKEN": self.api.token}
        cases = [
            (["--api-url", "http://api.example.com", "--template", "a/b"], "api_url"),
            (["--api-url", "https://user:pw@api.example.com", "--template", "a/b"], "api_url"),
            (["--template", "a/b", "--fork", "c/d"], "template_repo"),
            ([], "template_repo"),
            (["--template", "not-a-repo"], "template_repo"),
            (["--fork", "a/b/c"], "fork_repo"),
            (["--template", "a/b", "--name-pattern", "fixed-name"], "name_pattern"),
            (["--template", "a/b", "--name-pattern", "tenant {tenant}"], "name_pattern"),
            (["--template", "a/b", "--timeout-ms", "3600001"], "timeout_ms"),
            (["--template", "a/b", "--timeout-ms", "-1"], "timeout_ms"),
        ]
        for extra, field in cases:
            rc, results, err = run_driver(base + extra, env=env)
            self.assertEqual(results[0]["error"], CAP_EINVALID, (extra, results))
            self.assertEqual(results[0]["field"], field, (extra, results))
        rc, results, _ = run_driver(base + ["--template", "a/b"])  # no token
        self.assertEqual(results[0]["field"], "token")
        rc, results, _ = run_driver(["--provider", "github", "--tenant", "Bad_Name", "--owner", "acme",
                                     "--template", "a/b", "--api-url", self.api.url], env=env)
        self.assertEqual((results[0]["error"], results[0]["field"]), (CAP_EINVALID, "tenant"))
        self.assertEqual(self.reqs(), [])


# ---- git ---------------------------------------------------------------------------------

class GitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = gitserver.GitServer(tls=True)
        SECRETS.append(cls.srv.password)
        cls.srv.create_bare("blueprint")
        cls.srv.commit_files("blueprint", {"README.md": "# platform blueprint\n",
                                           "environments/base/kustomization.yaml": "resources: []\n"},
                             message="blueprint: first")
        cls.srv.commit_files("blueprint", {"apps/monitoring.yaml": "kind: HelmRelease\n"},
                             message="blueprint: monitoring")
        cls.tmp = tempfile.mkdtemp(prefix="capstan-platform-")
        cls.cache = os.path.join(cls.tmp, "cache", "nested")
        cls.pattern = cls.srv.url("tenant-x").replace("tenant-x", "tenant-{tenant}")

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def git(self, tenant, *extra, password=None, pattern=None, blueprint=None, ca=True, timeout_ms=20000,
            threads=1, username=True):
        args = ["--provider", "git", "--tenant", tenant, "--blueprint-url", blueprint or self.srv.url("blueprint"),
                "--url-pattern", pattern or self.pattern, "--cache-dir", self.cache,
                "--timeout-ms", str(timeout_ms), "--log-level", "debug", "--threads", str(threads)]
        if username:
            args += ["--username", self.srv.user]
        if ca:
            args += ["--ca-file", self.srv.ca_file]
        env = {"PLATFORM_PASSWORD": password or self.srv.password} if username else {}
        rc, results, err = run_driver(args + list(extra), env=env)
        self.assertEqual(len(results), threads, err)
        return rc, (results if threads > 1 else results[0]), err

    def blueprint_log(self):
        return [c["sha"] for c in self.srv.log("blueprint")]

    def count_pushes(self, repo):
        """Installs a pre-receive hook in the server's repository that records every push
        (git http-backend runs it, before any ref is updated); returns the record's path."""
        log = os.path.join(self.tmp, repo + ".pushes")
        hook = os.path.join(self.srv.path(repo), "hooks", "pre-receive")
        with open(hook, "w") as f:
            f.write("#!/bin/sh\ncat >> '%s'\n" % log)
        os.chmod(hook, 0o755)
        open(log, "w").close()
        return log

    def pushes(self, log):
        with open(log) as f:
            return [line.split() for line in f if line.strip()]

    def test_https_create_then_reuse(self):
        self.srv.create_bare("tenant-one")
        log = self.count_pushes("tenant-one")
        rc, r, _ = self.git("one")
        self.assertEqual(rc, 0, r)
        self.assertEqual(r["url"], self.srv.url("tenant-one"))
        self.assertEqual([c["sha"] for c in self.srv.log("tenant-one")], self.blueprint_log())
        self.assertEqual(self.srv.ls("tenant-one"), self.srv.ls("blueprint"))
        self.assertEqual(self.srv.show("tenant-one", "README.md"), "# platform blueprint\n")
        # a working clone over https checks out the blueprint's files
        work = os.path.join(self.tmp, "clone-one")
        self.srv.clone("tenant-one", work)
        self.assertTrue(os.path.exists(os.path.join(work, "apps", "monitoring.yaml")))

        # one push, creating main at the blueprint's tip
        self.assertEqual(self.pushes(log), [["0" * 40, self.blueprint_log()[0], "refs/heads/main"]])
        rc, r, _ = self.git("one")
        self.assertEqual(r["url"], self.srv.url("tenant-one"))
        self.assertEqual(len(self.pushes(log)), 1)  # nothing pushed the second time
        self.assertEqual([c["sha"] for c in self.srv.log("tenant-one")], self.blueprint_log())
        self.assertEqual([n for n in os.listdir(self.cache) if n.endswith(".git")], [])  # scratch removed

    def test_tenant_commits_on_top_are_kept(self):
        self.srv.create_bare("tenant-two")
        self.git("two")
        tip = self.srv.commit_files("tenant-two", {"apps/own.yaml": "mine\n"}, message="tenant change")
        rc, r, _ = self.git("two")
        self.assertEqual(rc, 0, r)
        self.assertEqual(self.srv.tip("tenant-two"), tip)

    def test_unrelated_history_is_a_conflict(self):
        self.srv.create_bare("tenant-three")
        tip = self.srv.commit_files("tenant-three", {"other.txt": "unrelated\n"}, message="someone else")
        rc, r, _ = self.git("three")
        self.assertEqual(r["error"], CAP_ECONFLICT, r)
        self.assertIn("does not hold the blueprint's history", r["message"])
        self.assertEqual(self.srv.tip("tenant-three"), tip)

    def test_other_branches_without_ours_is_a_conflict(self):
        self.srv.create_bare("tenant-four")
        self.srv.commit_files("tenant-four", {"x": "y\n"}, branch="master")
        rc, r, _ = self.git("four")
        self.assertEqual(r["error"], CAP_ECONFLICT, r)
        self.assertIn("is not empty", r["message"])
        self.assertIsNone(self.srv.tip("tenant-four"))

    def test_missing_remote_repository(self):
        rc, r, _ = self.git("nowhere")
        self.assertEqual(r["error"], CAP_ENOTFOUND, r)
        self.assertIn("create the empty repository first", r["message"])

    def test_wrong_password(self):
        self.srv.create_bare("tenant-five")
        wrong = "pw-wrong-" + "9" * 12
        SECRETS.append(wrong)
        rc, r, err = self.git("five", password=wrong)
        self.assertEqual(r["error"], CAP_EUNAUTHORIZED, r)
        self.assertIn("authentication", r["message"])
        self.assertNotIn(wrong, json.dumps(r) + err)
        self.assertIsNone(self.srv.tip("tenant-five"))

    def test_no_credentials(self):
        self.srv.create_bare("tenant-six")
        rc, r, _ = self.git("six", username=False)
        self.assertEqual(r["error"], CAP_EUNAUTHORIZED, r)
        self.assertIn("no credentials", r["message"])

    def test_untrusted_certificate(self):
        self.srv.create_bare("tenant-seven")
        rc, r, _ = self.git("seven", ca=False)
        self.assertEqual(r["error"], CAP_ERROR, r)
        self.assertIn("not trusted", r["message"])

    def test_missing_blueprint_branch(self):
        self.srv.create_bare("tenant-eight")
        rc, r, _ = self.git("eight", "--blueprint-branch", "release")
        self.assertEqual(r["error"], CAP_EINVALID, r)
        self.assertIn("has no branch release", r["message"])

    def test_silent_server_hits_the_deadline(self):
        hole = gitserver.Blackhole()
        try:
            pattern = "https://127.0.0.1:%d/git/tenant-{tenant}.git" % hole.port
            start = time.time()
            rc, r, _ = self.git("nine", pattern=pattern, blueprint=self.srv.path("blueprint"), timeout_ms=1500)
            self.assertEqual(r["error"], CAP_ETIMEOUT, r)
            self.assertLess(time.time() - start, 10)
        finally:
            hole.close()

    def test_credentials_are_not_sent_to_another_server(self):
        other = gitserver.GitServer(tls=True)
        try:
            other.create_bare("tenant-ten")
            cas = os.path.join(self.tmp, "two-cas.pem")
            with open(cas, "w") as f:
                for ca in (self.srv.ca_file, other.ca_file):
                    with open(ca) as c:
                        f.write(c.read())
            pattern = other.url("tenant-x").replace("tenant-x", "tenant-{tenant}")
            # the blueprint server asks for a password, but the credentials belong to `other`
            rc, r, _ = self.git("ten", "--ca-file", cas, pattern=pattern, password=other.password, ca=False)
            SECRETS.append(other.password)
            self.assertEqual(r["error"], CAP_EUNAUTHORIZED, r)
            self.assertIn(self.srv.url("blueprint"), r["message"])
            self.assertIn("no credentials are configured for it", r["message"])
        finally:
            other.stop()

    def test_local_path_create_reuse_conflict(self):
        root = os.path.join(self.tmp, "local", "repos")
        pattern = os.path.join(root, "tenant-{tenant}.git")
        path = os.path.join(root, "tenant-alpha.git")
        # https blueprint (credentials go to its server, as tenant repositories are local)
        rc, r, _ = self.git("alpha", pattern=pattern)
        self.assertEqual(rc, 0, r)
        self.assertEqual(r["url"], path)
        g = lambda *a: gitserver.git("--git-dir", path, *a).stdout.decode()  # noqa: E731
        self.assertEqual(g("rev-parse", "--is-bare-repository").strip(), "true")
        self.assertEqual(g("symbolic-ref", "HEAD").strip(), "refs/heads/main")
        self.assertEqual(g("rev-list", "main").split(), self.blueprint_log())
        self.assertEqual(g("ls-tree", "-r", "--name-only", "main").split(), self.srv.ls("blueprint"))
        gitserver.git("--git-dir", path, "fsck", "--strict")
        refs = g("for-each-ref")
        rc, r, _ = self.git("alpha", pattern=pattern)
        self.assertEqual((rc, r["url"]), (0, path))
        self.assertEqual(g("for-each-ref"), refs)

        # a local blueprint, no credentials at all
        rc, r, _ = self.git("beta", pattern=pattern, blueprint=self.srv.path("blueprint"), username=False)
        self.assertEqual(rc, 0, r)
        rc, r, _ = self.git("beta", pattern=pattern, blueprint="file://" + self.srv.path("blueprint"),
                            username=False)
        self.assertEqual(rc, 0, r)

        # unrelated history
        other = os.path.join(root, "tenant-gamma.git")
        gitserver.git("init", "-q", "--bare", "-b", "main", other)
        work = os.path.join(self.tmp, "work-gamma")
        gitserver.git("init", "-q", "-b", "main", work)
        with open(os.path.join(work, "f.txt"), "w") as f:
            f.write("unrelated\n")
        gitserver.git("-C", work, "add", "-A")
        gitserver.git("-C", work, "-c", "user.name=x", "-c", "user.email=x@example.com", "commit", "-q", "-m", "x")
        gitserver.git("-C", work, "push", "-q", other, "main")
        rc, r, _ = self.git("gamma", pattern=pattern, blueprint=self.srv.path("blueprint"), username=False)
        self.assertEqual(r["error"], CAP_ECONFLICT, r)

        # a folder that is not a repository
        os.makedirs(os.path.join(root, "tenant-delta.git"))
        with open(os.path.join(root, "tenant-delta.git", "notes.txt"), "w") as f:
            f.write("x\n")
        rc, r, _ = self.git("delta", pattern=pattern, blueprint=self.srv.path("blueprint"), username=False)
        self.assertEqual(r["error"], CAP_ECONFLICT, r)
        self.assertIn("not a git repository", r["message"])

    def test_concurrent_calls(self):
        self.srv.create_bare("tenant-many")
        log = self.count_pushes("tenant-many")
        rc, results, _ = self.git("many", threads=4)
        self.assertEqual(rc, 0, results)
        self.assertEqual(len(self.pushes(log)), 1)
        self.assertEqual({r["url"] for r in results}, {self.srv.url("tenant-many")})
        self.assertEqual([c["sha"] for c in self.srv.log("tenant-many")], self.blueprint_log())
        root = os.path.join(self.tmp, "local-many")
        rc, results, _ = self.git("many", threads=4, pattern=os.path.join(root, "tenant-{tenant}.git"),
                                  blueprint=self.srv.path("blueprint"), username=False)
        self.assertEqual(rc, 0, results)

    def test_replicas_racing_with_their_own_caches(self):
        # several capstan replicas (one cache each) at once: the push is a compare-and-swap from
        # "no branch", so one lands and the others find it and reuse it
        self.srv.create_bare("tenant-race")
        args = ["--provider", "git", "--tenant", "race", "--blueprint-url", self.srv.url("blueprint"),
                "--url-pattern", self.pattern, "--username", self.srv.user, "--ca-file", self.srv.ca_file,
                "--timeout-ms", "30000"]
        env = dict(os.environ, PLATFORM_PASSWORD=self.srv.password)
        procs = [subprocess.Popen([DRIVER] + args + ["--cache-dir", os.path.join(self.tmp, "replica-%d" % i)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(4)]
        created = 0
        for p in procs:
            out, err = p.communicate(timeout=120)
            OUTPUTS.append(out.decode() + err.decode("utf-8", "replace"))
            self.assertEqual(p.returncode, 0, out + err)
            self.assertEqual(json.loads(out)["url"], self.srv.url("tenant-race"))
            created += sum(1 for line in err.decode().splitlines() if "race created:" in json.loads(line)["msg"])
        self.assertEqual(created, 1)  # the others found it
        self.assertEqual([c["sha"] for c in self.srv.log("tenant-race")], self.blueprint_log())

    def test_invalid_options(self):
        base = ["--provider", "git", "--tenant", "x", "--check"]
        ok = ["--blueprint-url", "https://git.example.com/bp.git", "--cache-dir", "/tmp/c"]
        cases = [
            (["--blueprint-url", "http://git.example.com/bp.git", "--url-pattern", "/r/{tenant}.git",
              "--cache-dir", "/tmp/c"], "blueprint_url"),
            (ok + ["--url-pattern", "https://git.example.com/fixed.git"], "url_pattern"),
            (ok + ["--url-pattern", "ssh://git@git.example.com/{tenant}.git"], "url_pattern"),
            (ok + ["--url-pattern", "https://u:p@git.example.com/{tenant}.git"], "url_pattern"),
            (ok + ["--url-pattern", "relative/{tenant}.git"], "url_pattern"),
            (ok + ["--url-pattern", "/srv/../etc/{tenant}.git"], "url_pattern"),
            (ok + ["--url-pattern", "/r/{tenant}.git", "--blueprint-branch", "a..b"], "blueprint_branch"),
            (["--blueprint-url", "/bp.git", "--url-pattern", "/r/{tenant}.git"], "cache_dir"),
        ]
        for extra, field in cases:
            rc, results, _ = run_driver(base + extra)
            self.assertEqual((results[0]["error"], results[0]["field"]), (CAP_EINVALID, field), (extra, results))
        rc, results, _ = run_driver(base + ok + ["--url-pattern", "/r/{tenant}.git"],
                                    env={"PLATFORM_PASSWORD": "secret-pw-123"})
        self.assertEqual(results[0]["field"], "username")
        rc, results, _ = run_driver(base + ok + ["--url-pattern", "/r/{tenant}.git"])
        self.assertEqual(results[0].get("error"), None, results)


class DoubleProcessTest(unittest.TestCase):
    """The GitHub double run as its own process, driven through its control endpoint."""

    def test_double_as_a_process(self):
        import ssl
        import urllib.request
        d = tempfile.mkdtemp(prefix="github-double-proc-")
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "..", "doubles", "github_api.py"), "--dir", d],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            info = json.loads(p.stdout.readline())
            SECRETS.append(info["token"])
            ctx = ssl.create_default_context(cafile=info["ca"])

            def control(method, **kw):
                req = urllib.request.Request(info["url"] + "/_control/" + method, data=json.dumps(kw).encode(),
                                             headers={"X-Control-Token": info["controlToken"]}, method="POST")
                with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                    return json.loads(r.read())["result"]

            control("add_account", login="acme")
            control("add_repo", full_name="platform/blueprint", is_template=True)
            control("exhaust_rate_limit", reset_in=1)
            rc, results, _ = run_driver(["--provider", "github", "--tenant", "proc", "--api-url", info["url"],
                                         "--owner", "acme", "--template", "platform/blueprint", "--ca-file",
                                         info["ca"]], env={"PLATFORM_TOKEN": info["token"]})
            self.assertEqual(results[0]["url"], "https://github.test/acme/tenant-proc.git", results)
            self.assertEqual([(q["method"], q["status"]) for q in control("get_requests")],
                             [("GET", 403), ("GET", 404), ("POST", 201)])
            self.assertEqual(control("get_repo", full_name="acme/tenant-proc")["template_repository"]["full_name"],
                             "platform/blueprint")
        finally:
            p.terminate()
            p.wait(10)
            p.stdout.close()
            p.stderr.close()
            shutil.rmtree(d, ignore_errors=True)


class NoneTest(unittest.TestCase):
    def test_none_provider_does_nothing(self):
        rc, results, _ = run_driver(["--provider", "none", "--tenant", "a"])
        self.assertEqual((rc, results[0]["url"]), (0, ""))


if __name__ == "__main__":
    unittest.main(verbosity=2)
