# ctest: labels=gitops timeout=600
"""Resilience, black-box: the real binary, a real PostgreSQL and a real Git server
(git http-backend behind lighttpd, gitserver.py).

What users depend on (issues 3 and 4):
  * the database restarted in the middle of a run: requests answer 503 with Retry-After
    meanwhile, /healthz stays 200, and afterwards every job ends succeeded exactly once;
  * the Git server down for a while: jobs retry their push with backoff, say clearly that the
    remote was unavailable (never showing a credential) and all finish once it is back;
  * two capstan processes and a plain `git push` writer racing on one branch: every change is
    on the branch exactly once, nothing the other writer pushed is lost, the history is linear,
    `git fsck --strict` is clean and the tree is valid for Flux;
  * a person merging a pull request into the fleet branch (a merge commit) between two jobs:
    capstan builds on the merge, keeps both sides and every job exactly once;
  * wrong credentials: the job fails at git-push with a clear message naming no password, after
    a few attempts spaced by the backoff (no retry storm against the Git server).
Each test takes seconds.

Regressions these tests caught: a worker that could not write a job's progress (the database
went away) left the job `running` while the lease thread kept renewing it, so it never ran
again; libgit2 initialised a second time (the fleet repository could not be opened at start)
freed its user agent twice."""
import datetime
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import unittest
from collections import Counter

import gitserver
import harness
import secretscan
from harness import assert_problem

PG = None


def setUpModule():
    global PG
    PG = harness.shared_postgres()


def new_password():
    """A password of the Git server's shape (secretscan finds it in any captured log)."""
    pw = "pw-" + secrets.token_hex(12)
    secretscan.record(pw)
    return pw


def log_count(app, msg, job=None):
    return sum(1 for l in app.log_lines() if l.get("msg") == msg and (job is None or l.get("jobId") == job))


def events(app, job_id):
    """Every event of a finished job (the SSE stream ends with `end`)."""
    s = harness.SSE(app.port, "/api/v1/jobs/%s/events" % job_id, timeout=30)
    try:
        return list(s.events())
    finally:
        s.close()


def failed_steps(app, job_id):
    """[(step, message)] of every failed step attempt of a job, from its event stream."""
    out = []
    for e in events(app, job_id):
        d = (e.get("json") or {}).get("data") or {}
        if e.get("event") == "step" and d.get("state") == "failed":
            out.append((d.get("step"), d.get("message") or ""))
    return out


def log_time(line):
    t = datetime.datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def attempt_log(app, job_id):
    """[(attempt, started, failed or None)] from the log: seconds since the epoch of each
    "running ... (attempt n of m)" line and of the "step ... failed" line after it."""
    out = []
    for l in app.log_lines():
        if l.get("jobId") != job_id:
            continue
        m = re.match(r"running \S+ \S+ \(attempt (\d+) of \d+\)$", l.get("msg", ""))
        if m:
            out.append([int(m.group(1)), log_time(l), None])
        elif out and re.match(r"step \S+ failed in ", l.get("msg", "")):
            out[-1][2] = log_time(l)
    return [tuple(a) for a in out]


def all_jobs(app, **filters):
    q = "&".join("%s=%s" % kv for kv in filters.items())
    items, cursor = [], None
    while True:
        r = app.request("GET", "/api/v1/jobs?limit=100%s%s" % ("&" + q if q else "",
                                                                "&cursor=" + cursor if cursor else ""))
        assert r.status == 200, r
        items += r.json["items"]
        cursor = r.json.get("nextCursor")
        if not cursor:
            return items


ABANDON = re.compile(r"^cannot (record step|record the failure of step|record the job's success|put the job back)")


class DatabaseRestart(unittest.TestCase):
    """A capstan with a PostgreSQL of its own (CAPSTAN_JOB_LEASE=3s), stopped for two seconds
    while 30 jobs run and started again."""

    N = 30
    DOWN_S = 2.0  # shorter than the lease: no lease may expire on its own meanwhile

    def setUp(self):
        self.pg = harness.Postgres()
        self.pg.start()
        self.f = None

    def tearDown(self):
        try:
            if self.f:
                self.f.close()
        finally:
            self.pg.destroy()

    def outage(self):
        """Enqueues N tenants, stops PostgreSQL while they run and starts it again after DOWN_S
        seconds, checking the API meanwhile. Returns (names, jobs, done_before, t_up)."""
        self.f = f = harness.Fleet(self.pg, env={"CAPSTAN_JOB_LEASE": "3s", "CAPSTAN_WORKERS": "2",
                                                 "CAPSTAN_DB_TIMEOUT": "1s"})
        names = ["db%02d" % i for i in range(self.N)]
        jobs = []
        for name in names:
            r = f.request("POST", "/api/v1/tenants", harness.tenant_body(name))
            self.assertEqual(r.status, 202, r)
            jobs.append(r.json["job"]["id"])
        # stop PostgreSQL while the jobs run: a few are done, most are not
        harness.wait_until(lambda: log_count(f.app, "job succeeded") >= 3, 60, 0.005, what="three jobs done")
        t_down = time.time()
        self.pg.stop("fast")
        done_before = log_count(f.app, "job succeeded")
        self.assertLess(done_before, self.N, "every job finished before the database stopped; nothing was tested")

        # meanwhile: the API says 503 with Retry-After, the process itself is healthy
        r = f.request("POST", "/api/v1/tenants", harness.tenant_body("during-outage"))
        p = assert_problem(r, 503)
        self.assertTrue(r.header("retry-after"), r.headers)
        self.assertNotRegex(p["detail"], r"(?i)sqlstate|postgresql://|select ")
        r = f.request("GET", "/api/v1/jobs/" + jobs[-1])
        assert_problem(r, 503)
        self.assertTrue(r.header("retry-after"), r.headers)
        self.assertEqual(f.request("GET", "/healthz", token=None).status, 200)
        self.assertEqual(f.request("GET", "/readyz", token=None).status, 503)
        while time.time() - t_down < self.DOWN_S:
            self.assertEqual(f.request("GET", "/healthz", token=None).status, 200)
            time.sleep(0.1)
        self.assertIsNone(f.app.proc.poll(), "capstan exited while the database was down")
        self.pg.start()
        return names, jobs, done_before, time.time()

    def abandoned(self):
        """Jobs whose worker could not write their progress while the database was down."""
        return sorted(set(l["jobId"] for l in self.f.app.log_lines() if "jobId" in l and ABANDON.match(l.get("msg", ""))))

    def test_api_during_the_outage_and_after(self):
        names, jobs, done_before, t_up = self.outage()
        f = self.f
        harness.wait_until(lambda: f.request("GET", "/readyz", token=None).status == 200, 30, what="readyz 200")
        # what the 503 refused was not recorded; new requests are served and carried out
        self.assertEqual(f.request("GET", "/api/v1/tenants/during-outage").status, 404)
        f.create_tenant("after-outage")
        # the jobs no worker was holding when the database went away all finish, once each
        stuck = set(self.abandoned())
        for j in jobs:
            if j not in stuck:
                f.wait_job(j, timeout=30)
        trailers = Counter(f.job_trailers())
        for j in jobs:
            if j not in stuck:
                self.assertEqual(trailers[j], 1, "job %s is on the branch %d times" % (j, trailers[j]))
        self.assertEqual([j["id"] for j in all_jobs(f.app, state="failed")], [])
        self.assertEqual(max(trailers.values()), 1)
        f, self.f = self.f, None
        self.assertEqual(f.close(), [0], "capstan did not exit cleanly")

    def test_every_job_succeeds_exactly_once(self):
        names, jobs, done_before, t_up = self.outage()
        f = self.f
        stuck = self.abandoned()
        if not stuck:
            self.skipTest("no worker was writing when the database stopped; nothing to show")
        deadline = time.time() + 12  # the lease is 3 s: an abandoned job is due again within that
        while time.time() < deadline:
            left = [j for j in jobs if f.request("GET", "/api/v1/jobs/" + j).json["state"] not in ("succeeded", "failed")]
            if not left:
                break
            time.sleep(0.1)
        if left:
            rows = self.pg.psql("SELECT tenant, state, step_names, lease_owner, lease_expires_at > now() FROM "
                                "(SELECT tenant, state, lease_owner, lease_expires_at, seq, (SELECT string_agg("
                                "s->>'name' || '=' || (s->>'state'), ',') FROM jsonb_array_elements(steps) s) "
                                "AS step_names FROM jobs WHERE state IN ('queued', 'running')) x ORDER BY seq",
                                db=f.db)
            self.fail("%d jobs did not finish within 12 s of the database coming back (%d abandoned by their "
                      "worker: %s); unfinished jobs (tenant|state|steps|lease owner|lease still valid):\n%s"
                      % (len(left), len(stuck), stuck, rows))
        took = time.time() - t_up

        # every job succeeded exactly once, and no change is missing or doubled in Git
        trailers = Counter(f.job_trailers())
        for j in jobs:
            self.assertEqual(f.request("GET", "/api/v1/jobs/" + j).json["state"], "succeeded", j)
            self.assertEqual(trailers[j], 1, "job %s is on the branch %d times" % (j, trailers[j]))
            self.assertEqual(log_count(f.app, "job succeeded", j), 1, "job %s succeeded more than once" % j)
        self.assertEqual([j["id"] for j in all_jobs(f.app, state="failed")], [])
        self.assertEqual(len(all_jobs(f.app, state="succeeded")), self.N)
        for name in names:
            t = f.request("GET", "/api/v1/tenants/" + name).json
            self.assertEqual((t["state"], t["observedGeneration"]), ("ready", 1), t)
            self.assertIn('- "%s"' % name, f.show("tenants/kustomization.yaml"))
        print("database down %.1f s with %d of %d jobs done and %d abandoned by their worker; all finished "
              "%.1f s after it came back" % (self.DOWN_S, done_before, self.N, len(stuck), took))
        f, self.f = self.f, None
        self.assertEqual(f.close(), [0], "capstan did not exit cleanly")


class WithGitServer(unittest.TestCase):
    """A Git server per test, and the capstan fleet self.f on it (closed after the test)."""

    def setUp(self):
        self.gs = gitserver.GitServer()
        secretscan.record(self.gs.password)
        self.f = None

    def tearDown(self):
        try:
            if self.f:
                self.f.close()
        finally:
            self.gs.stop()

    def close(self):
        f, self.f = self.f, None
        codes = f.close()
        self.assertEqual(codes, [0] * len(codes), "capstan did not exit cleanly")


class GitServerOutage(WithGitServer):
    """The Git server stops answering for a few seconds while jobs want to push."""

    def start(self, halted=False):
        """A capstan on the Git server; halted: the server is down when capstan starts."""
        self.f = harness.Fleet(PG, git_server=self.gs, start=False, env={
            "CAPSTAN_JOB_BACKOFF": "200ms", "CAPSTAN_JOB_BACKOFF_MAX": "2s", "CAPSTAN_JOB_MAX_ATTEMPTS": "10",
            "CAPSTAN_WORKERS": "4"})
        secretscan.record(self.gs.password)
        if halted:
            self.gs.halt()
        self.f.app = self.f.add_app()
        return self.f

    def outage(self, f, n, down_s=3.0):
        """Requests n tenants while the server is down, keeps it down down_s seconds (and until
        every job has failed at least once), starts it again; returns (names, jobs)."""
        names = ["out%02d" % i for i in range(n)]
        jobs = []
        for name in names:
            r = f.request("POST", "/api/v1/tenants", harness.tenant_body(name))
            self.assertEqual(r.status, 202, r)
            jobs.append(r.json["job"]["id"])
        t0 = time.time()
        harness.wait_until(lambda: all(f.request("GET", "/api/v1/jobs/" + j).json["attempt"] >= 2 for j in jobs),
                           30, 0.1, what="every job to fail once")
        time.sleep(max(0.0, down_s - (time.time() - t0)))
        self.assertIsNone(f.app.proc.poll(), "capstan exited while the Git server was down")
        self.assertTrue(all(f.request("GET", "/api/v1/jobs/" + j).json["state"] in ("queued", "running")
                            for j in jobs), "a job gave up while the Git server was down")
        self.gs.resume()
        return names, jobs

    def check_outcome(self, f, names, jobs):
        url = self.gs.url(f.repo_name)
        for j in jobs:
            f.wait_job(j, timeout=60)
        trailers = Counter(f.job_trailers())
        for j in jobs:
            self.assertEqual(trailers[j], 1, "job %s is on the branch %d times" % (j, trailers[j]))
        for name in names:
            t = f.request("GET", "/api/v1/tenants/" + name).json
            self.assertEqual((t["state"], t["observedGeneration"]), ("ready", 1), t)
        # each failed attempt said, at git-push, that the remote was unavailable; no credential
        for j in jobs:
            fails = failed_steps(f.app, j)
            self.assertTrue(fails, "job %s never failed while the server was down" % j)
            for step, msg in fails:
                self.assertEqual(step, "git-push", (j, fails))
                self.assertRegex(msg, r"^(pushing to|opening) the fleet repository: git remote %s is unavailable "
                                 r"while " % re.escape(url), (j, msg))
                self.assertNotIn(self.gs.password, msg)
            self.assertEqual(f.request("GET", "/api/v1/jobs/" + j).json["attempt"], len(fails) + 1, j)
        for app in f.apps:
            self.assertNotIn(self.gs.password, app.log())

    def test_server_down_for_a_while_then_back(self):
        f = self.start()
        f.create_tenant("before")  # capstan has its clone, the server worked
        self.gs.halt()
        t0 = time.time()
        names, jobs = self.outage(f, 20)
        down = time.time() - t0
        t1 = time.time()
        self.check_outcome(f, names, jobs)
        print("Git server down %.1f s; all 20 jobs finished %.1f s after it came back" % (down, time.time() - t1))
        self.close()

    def test_server_down_when_capstan_starts(self):
        # capstan cannot open (clone) the fleet repository at start; its jobs must open it later
        f = self.start(halted=True)
        names, jobs = self.outage(f, 5, down_s=1.0)
        self.check_outcome(f, names, jobs)
        self.close()


class Races(unittest.TestCase):
    """Other writers on the fleet branch: two capstan processes (each with its own cache) on one
    database and one fleet repository and a third writer pushing with plain git from its own
    clone, all at the same time; a person merging a pull request between two jobs."""

    def test_two_processes_and_a_plain_git_writer(self):
        n = 60
        with gitserver.GitServer() as gs:
            f = harness.Fleet(PG, git_server=gs, env={"CAPSTAN_WORKERS": "3"})
            secretscan.record(gs.password)
            b = f.add_app()
            try:
                f.create_tenant("seed")
                stop = threading.Event()
                pushed, rejected, errors = [], [0], []
                work = tempfile.mkdtemp(prefix="capstan-writer-")

                def writer():
                    """A person with a clone: commit, push; rejected: pull --rebase, push again."""
                    g = lambda *a: gitserver.git("-C", work, "-c", "user.name=Other", "-c",
                                                 "user.email=other@example.com", *a, check=False)
                    i = 0
                    while not stop.is_set():
                        path, text = "notes/external-%03d.txt" % i, "external change %d\n" % i
                        with open(os.path.join(work, path), "w") as fh:
                            fh.write(text)
                        if g("add", path).returncode or g("commit", "-q", "-m", "external change %d" % i).returncode:
                            errors.append("cannot commit %s" % path)
                            return
                        while g("push", "-q", "origin", "HEAD:refs/heads/main").returncode != 0:
                            rejected[0] += 1  # someone got there first
                            r = g("pull", "-q", "--rebase", "origin", "main")
                            if r.returncode != 0:
                                errors.append(r.stderr.decode(errors="replace"))
                                return
                        pushed.append((g("rev-parse", "HEAD").stdout.decode().strip(), path, text))
                        i += 1
                        stop.wait(0.2)  # a busy colleague, not a flood

                gitserver.git("clone", "-q", gs.url(f.repo_name, with_credentials=True), work)
                os.makedirs(os.path.join(work, "notes"))

                w = threading.Thread(target=writer, daemon=True)
                w.start()
                harness.wait_until(lambda: pushed or errors, 30, 0.02, what="the first external push")
                names = ["race%02d" % i for i in range(n)]
                before = len(pushed)
                jobs = []
                t0 = time.time()
                for i, name in enumerate(names):
                    if i and i % 10 == 0:  # the writer gets a push in between each ten requests
                        mark = len(pushed)
                        harness.wait_until(lambda: len(pushed) > mark or errors, 60, 0.02,
                                           what="the plain git writer to push while capstan pushes")
                    app = f.app if i % 2 == 0 else b
                    r = app.request("POST", "/api/v1/tenants", harness.tenant_body(name))
                    self.assertEqual(r.status, 202, r)
                    jobs.append(r.json["job"]["id"])
                for j in jobs:
                    f.wait_job(j, timeout=120)
                took = time.time() - t0
                during = len(pushed) - before
                stop.set()
                w.join(60)
                shutil.rmtree(work, ignore_errors=True)
                self.assertEqual(errors, [])
                self.assertGreaterEqual(during, n // 10 - 1, "the plain git writer pushed too little while the jobs ran")

                # every job's change is on the branch exactly once
                trailers = Counter(f.job_trailers())
                for j in jobs:
                    self.assertEqual(trailers[j], 1, "job %s is on the branch %d times" % (j, trailers[j]))
                kust = f.show("tenants/kustomization.yaml")
                for name in names:
                    self.assertEqual(kust.count('- "%s"\n' % name), 1, name)
                    self.assertIsNotNone(f.show("tenants/%s/namespace.yaml" % name), name)
                # nothing the other writer pushed is lost
                for sha, path, text in pushed:
                    r = gitserver.git("--git-dir", gs.path(f.repo_name), "merge-base", "--is-ancestor", sha, "main",
                                      check=False)
                    self.assertEqual(r.returncode, 0, "external commit %s is not on main" % sha)
                    self.assertEqual(gs.show(f.repo_name, path), text, path)
                # a clean repository with a linear history
                r = gitserver.git("--git-dir", gs.path(f.repo_name), "fsck", "--strict", "--no-dangling",
                                  "--no-progress", check=False)
                self.assertEqual(r.returncode, 0, r.stderr.decode() + r.stdout.decode())
                self.assertEqual(r.stderr.decode().strip(), "")
                log = gs.log(f.repo_name)
                merges = [c["sha"] for c in log if len(c["parents"]) > 1]
                self.assertEqual(merges, [], "merge commits on main")
                self.assertEqual(len([c for c in log if not c["parents"]]), 1, "more than one root commit")
                # the tree Flux would apply is valid
                dest = tempfile.mkdtemp(prefix="capstan-race-")
                try:
                    f.checkout(os.path.join(dest, "clone"))
                    rc, out = harness.validate_tree(os.path.join(dest, "clone"))
                    self.assertEqual(rc, 0, out)
                finally:
                    shutil.rmtree(dest, ignore_errors=True)
                # both processes did part of the work and the writers really raced
                shares = [log_count(a, "job succeeded") for a in (f.app, b)]
                retried = sum(1 for j in jobs if f.request("GET", "/api/v1/jobs/" + j).json["attempt"] > 1)
                capstan_rejections = sum(1 for a in (f.app, b) for l in a.log_lines()
                                         if l.get("msg", "").startswith("gitops: push to main rejected"))
                self.assertTrue(all(s > 0 for s in shares), shares)
                self.assertGreater(capstan_rejections + rejected[0], 0, "no push was ever rejected: no race")
                print("%d jobs in %.1f s shared %s by two processes (%d needed a second attempt), %d external "
                      "commits (%d while the jobs ran); rejected pushes: capstan %d, plain git %d; %d commits on main"
                      % (n, took, shares, retried, len(pushed), during, capstan_rejections, rejected[0], len(log)))
            finally:
                codes = f.close()
                self.assertEqual(codes, [0, 0])

    def test_a_person_merges_a_pull_request_between_jobs(self):
        """A platform engineer merges a branch into the fleet (a merge commit, as a pull request
        merge makes) while capstan runs: capstan's next job builds on the merge, both sides and
        every job stay on the branch exactly once, and the repository stays clean. (The same
        capstan process saw the tip before the merge: its record of the jobs on the branch must
        follow a history that is no longer a line, and its local push must copy onto a merge.)"""
        f = harness.Fleet(PG)
        work = tempfile.mkdtemp(prefix="capstan-merge-")
        try:
            jobs = [f.create_tenant("before").json["job"]["id"]]
            g = lambda *a: gitserver.git("-C", work, "-c", "user.name=Person", "-c",
                                         "user.email=person@example.com", *a).stdout.decode().strip()
            gitserver.git("clone", "-q", f.repo_url, work)
            g("checkout", "-q", "-b", "docs")
            os.makedirs(os.path.join(work, "docs"))
            with open(os.path.join(work, "docs", "README.md"), "w") as fh:
                fh.write("How we run the fleet.\n")
            g("add", "docs/README.md")
            g("commit", "-q", "-m", "docs: how we run the fleet")
            jobs.append(f.create_tenant("during").json["job"]["id"])  # main moves on meanwhile
            g("fetch", "-q", "origin")
            g("checkout", "-q", "-B", "main", "origin/main")
            g("merge", "-q", "--no-ff", "-m", "Merge pull request #1 from docs", "docs")
            g("push", "-q", "origin", "main")
            merge = g("rev-parse", "HEAD")
            jobs.append(f.create_tenant("after").json["job"]["id"])

            log = [line.split() for line in gitserver.git("--git-dir", f.repo_url, "log", "--format=%H %P",
                                                          "main").stdout.decode().splitlines()]
            self.assertEqual(log[0][1:], [merge], "capstan's commit does not sit on the merge")
            self.assertEqual(len(dict((c[0], c) for c in log)[merge]) - 1, 2, "the merge lost a parent")
            trailers = Counter(f.job_trailers())
            for j in jobs:
                self.assertEqual(trailers[j], 1, "job %s is on the branch %d times" % (j, trailers[j]))
            self.assertEqual(sum(trailers.values()), len(jobs))
            self.assertEqual(f.show("docs/README.md"), "How we run the fleet.\n")
            kust = f.show("tenants/kustomization.yaml")
            for name in ("before", "during", "after"):
                self.assertEqual(kust.count('- "%s"\n' % name), 1, kust)
            r = gitserver.git("--git-dir", f.repo_url, "fsck", "--strict", "--no-dangling", "--no-progress",
                              check=False)
            self.assertEqual(r.returncode, 0, r.stderr.decode() + r.stdout.decode())
            self.assertEqual(r.stderr.decode().strip(), "")
            dest = os.path.join(work, "check")
            f.checkout(dest)
            rc, out = harness.validate_tree(dest)
            self.assertEqual(rc, 0, out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            self.assertEqual(f.close(), [0])


class WrongCredentials(WithGitServer):
    """The Git server refuses capstan's password: the job fails at git-push, clearly, after a
    few attempts spaced by the backoff."""

    BACKOFF_MS = 300
    ATTEMPTS = 4

    def fleet(self, password):
        self.f = harness.Fleet(PG, git_server=self.gs, env={
            "CAPSTAN_GIT_PASSWORD": password, "CAPSTAN_JOB_BACKOFF": "%dms" % self.BACKOFF_MS,
            "CAPSTAN_JOB_BACKOFF_MAX": "10s", "CAPSTAN_JOB_MAX_ATTEMPTS": str(self.ATTEMPTS)})
        return self.f

    def check_refused(self, f, name, secrets_):
        seen = len(self.gs.access_log())
        r = f.request("POST", "/api/v1/tenants", harness.tenant_body(name))
        self.assertEqual(r.status, 202, r)
        jid = r.json["job"]["id"]
        j = f.wait_job(jid, states=("failed",), timeout=60)
        self.assertIsNone(f.app.proc.poll(), "capstan exited")
        url = self.gs.url(f.repo_name)
        # a clear message at the git-push step, naming the remote and no password
        self.assertEqual(j["error"]["step"], "git-push", j)
        self.assertRegex(j["error"]["message"], r"^(pushing to|opening) the fleet repository: authentication to "
                         r"git remote %s failed: check the configured credentials$" % re.escape(url))
        self.assertEqual([s["state"] for s in j["steps"]], ["skipped", "succeeded", "failed", "pending", "pending"])
        t = f.request("GET", "/api/v1/tenants/" + name).json
        self.assertEqual(t["state"], "failed", t)
        fails = failed_steps(f.app, jid)
        self.assertEqual(len(fails), j["attempt"], fails)
        for text in [m for _, m in fails] + [f.app.log()]:
            for s in secrets_:
                self.assertNotIn(s, text)
        # no retry storm: few attempts, each after the backoff, few requests to the Git server
        tries = attempt_log(f.app, jid)
        self.assertEqual([a for a, _, _ in tries], list(range(1, j["attempt"] + 1)), tries)
        self.assertTrue(all(failed for _, _, failed in tries), tries)
        self.assertLessEqual(j["attempt"], self.ATTEMPTS)
        gaps = [nxt[1] - cur[2] for cur, nxt in zip(tries, tries[1:])]  # failure to the next try
        for k, gap in enumerate(gaps, start=1):
            least = self.BACKOFF_MS * 2 ** (k - 1) / 2 / 1000.0  # jitter: half to all of the backoff
            self.assertGreaterEqual(gap, least - 0.005, "attempt %d came %.3f s after the failure" % (k + 1, gap))
        reqs = self.gs.access_log()[seen:]
        self.assertTrue(reqs and all(q["status"] == 401 for q in reqs), reqs)
        self.assertLessEqual(len(reqs), 3 * j["attempt"], reqs)
        self.assertEqual(Counter(f.job_trailers())[jid], 0)
        print("wrong password: %d attempts of %.1f s each, %d requests to the Git server, waits between "
              "them %s s" % (j["attempt"], max(t[2] - t[1] for t in tries), len(reqs), ["%.2f" % g for g in gaps]))
        return j

    def test_password_refused_while_running(self):
        f = self.fleet(self.gs.password)
        f.create_tenant("before")
        old = self.gs.password
        self.gs.set_password(self.gs.user, new_password())  # the server no longer takes capstan's
        self.check_refused(f, "after", [old, self.gs.password])
        self.assertEqual(f.request("GET", "/api/v1/tenants/before").json["state"], "ready")
        self.close()

    def test_wrong_password_from_the_start(self):
        wrong = new_password()
        f = self.fleet(wrong)
        self.check_refused(f, "wrong", [wrong, self.gs.password])
        self.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
