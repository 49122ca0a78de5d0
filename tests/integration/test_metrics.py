"""GET /metrics and the logs, black-box: the exposition parses (strict reader in promtext.py),
the metrics move as requests and jobs happen (scrape before and after), labels carry route
names rather than raw paths or tenant names, nothing secret is shown, and the log lines are
JSON with the request and job context (text on a terminal)."""
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import unittest

import harness
import promtext

DB_PASSWORD = "db-pass-not-for-metrics-81f3"
GIT_PASSWORD = "git-pass-not-for-metrics-2c9a"


SEEN = {}  # every metric family any scrape of this module showed: name -> type


def scrape(app):
    r = harness.request(app.port, "GET", "/metrics", token=None)
    assert r.status == 200, r
    assert r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8", r.headers
    text = r.raw.decode("utf-8")
    fams = promtext.parse(text)
    for name, f in fams.items():
        SEEN[name] = f.type
    return text, fams


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = harness.shared_postgres()
        # process A serves the API with no workers, so jobs wait in the queue until B starts
        cls.f = harness.Fleet(cls.pg, env={"CAPSTAN_WORKERS": "0", "CAPSTAN_DB_POOL": "7",
                                           "CAPSTAN_GIT_PASSWORD": GIT_PASSWORD}, start=False)
        # trust authentication ignores the password, but it is part of the configured URL
        url = cls.pg.url(cls.f.db).replace("postgres@", "postgres:%s@" % DB_PASSWORD)
        cls.a = cls.f.app = cls.f.add_app(env={"CAPSTAN_DATABASE_URL": url})
        cls.b = None

    @classmethod
    def tearDownClass(cls):
        codes = cls.f.close()
        assert all(c == 0 for c in codes), codes

    def test_1_format_and_secrets(self):
        self.assertEqual(self.a.request("GET", "/healthz", token=None).status, 200)
        time.sleep(0.1)
        text, fams = scrape(self.a)
        for name in ("capstan_build_info", "capstan_http_requests_total",
                     "capstan_jobs_finished_total", "capstan_jobs_queued",
                     "capstan_jobs_oldest_queued_age_seconds", "capstan_db_pool_connections_in_use",
                     "capstan_db_pool_waiting", "capstan_db_pool_connections_max",
                     "capstan_git_push_duration_seconds", "process_start_time_seconds",
                     "capstan_http_requests_in_flight", "capstan_database_up"):
            self.assertIn(name, fams, "metric %s is missing" % name)
            self.assertTrue(fams[name].help, name)
        version = harness.run_capstan(["version"]).stdout.split()[-1]
        self.assertEqual(promtext.value(fams, "capstan_build_info", version=version), 1)
        self.assertEqual(fams["capstan_http_request_duration_seconds"].type, "histogram")
        self.assertEqual(fams["capstan_http_requests_total"].type, "counter")
        self.assertEqual(fams["capstan_jobs_queued"].type, "gauge")
        self.assertEqual(promtext.value(fams, "capstan_db_pool_connections_max"), 7)
        self.assertEqual(promtext.value(fams, "capstan_database_up"), 1)
        # the scrape itself is in flight while the gauge is read
        self.assertGreaterEqual(promtext.value(fams, "capstan_http_requests_in_flight"), 1)
        start = promtext.value(fams, "process_start_time_seconds")
        self.assertLess(abs(start - time.time()), 600)
        for secret in (harness.ADMIN_TOKEN, DB_PASSWORD, GIT_PASSWORD, "postgresql://"):
            self.assertNotIn(secret, text)

    def test_2_metrics_move(self):
        a = self.a
        _, before = scrape(a)
        # requests: by route name, method and status
        self.assertEqual(a.request("GET", "/api/v1/tenants").status, 200)
        self.assertEqual(a.request("GET", "/api/v1/tenants/metrics-secret-tenant").status, 404)
        self.assertEqual(a.request("GET", "/no/such/raw-path-x1").status, 404)
        self.assertEqual(a.request("GET", "/api/v1/tenants", token="wrong-token-0123456789").status, 401)
        # a job that waits: A has no workers
        r = a.request("POST", "/api/v1/tenants", harness.tenant_body("metrics-tenant-q"))
        self.assertEqual(r.status, 202, r)
        job = r.json["job"]["id"]
        time.sleep(0.6)
        text, mid = scrape(a)

        def delta(fams, sample, **labels):
            return promtext.value(fams, sample, 0, **labels) - promtext.value(before, sample, 0, **labels)
        req = "capstan_http_requests_total"
        self.assertEqual(delta(mid, req, route="tenants.list", method="GET", status="200"), 1)
        self.assertEqual(delta(mid, req, route="tenants.list", method="GET", status="401"), 1)
        self.assertEqual(delta(mid, req, route="tenants.get", method="GET", status="404"), 1)
        self.assertEqual(delta(mid, req, route="unmatched", method="GET", status="404"), 1)
        self.assertEqual(delta(mid, req, route="tenants.create", method="POST", status="202"), 1)
        self.assertEqual(delta(mid, req, route="metrics", method="GET", status="200"), 1)
        self.assertEqual(delta(mid, "capstan_http_request_duration_seconds_count",
                               route="tenants.list", method="GET"), 2)
        self.assertGreater(delta(mid, "capstan_http_request_duration_seconds_sum",
                                 route="tenants.list", method="GET"), 0)
        # the queue: one job, waiting for at least the time we slept
        self.assertEqual(promtext.value(mid, "capstan_jobs_queued"), 1)
        self.assertGreaterEqual(promtext.value(mid, "capstan_jobs_oldest_queued_age_seconds"), 0.5)
        self.assertEqual(promtext.value(mid, "capstan_jobs_running"), 0)
        # no raw paths, names or ids in any label
        for name, label, v in promtext.label_values(mid):
            self.assertNotIn("/", v, (name, label, v))
            self.assertNotIn("metrics-", v, (name, label, v))
            self.assertNotIn(job, v, (name, label, v))
        routes = {v for n, l, v in promtext.label_values(mid) if l == "route"}
        for rname in routes:
            self.assertRegex(rname, r"^([a-z]+(\.[a-z]+)?|unmatched)$")
        self.assertNotIn("metrics-secret-tenant", text)
        self.assertNotIn("raw-path-x1", text)
        self.assertNotIn("wrong-token-0123456789", text)

        # B has workers: it runs the job, then an environment's
        # (B takes the queued job up at once: its counters start at zero with the process, so
        # they are compared with zero rather than with a first scrape that may come too late)
        type(self).b = b = self.f.add_app(env={"CAPSTAN_WORKERS": "2"}, name="workers")
        b0 = {}
        self.f.wait_job(job)
        r = a.request("POST", "/api/v1/tenants/metrics-tenant-q/environments", {"name": "dev"})
        self.assertEqual(r.status, 202, r)
        self.f.wait_job(r.json["job"]["id"])
        _, b1 = scrape(b)

        def bdelta(sample, **labels):
            return promtext.value(b1, sample, 0, **labels) - promtext.value(b0, sample, 0, **labels)
        fin = "capstan_jobs_finished_total"
        self.assertEqual(bdelta(fin, kind="tenant.create", state="succeeded"), 1)
        self.assertEqual(bdelta(fin, kind="environment.create", state="succeeded"), 1)
        self.assertEqual(bdelta(fin, kind="tenant.create", state="failed"), 0)
        steps = "capstan_job_step_duration_seconds_count"
        self.assertGreaterEqual(bdelta(steps, kind="tenant.create", step="render"), 1)
        self.assertGreaterEqual(bdelta(steps, kind="environment.create", step="git-push"), 1)
        pushes = "capstan_git_push_duration_seconds_count"
        self.assertGreaterEqual(bdelta(pushes, outcome="pushed"), 2)
        self.assertGreater(bdelta("capstan_git_push_duration_seconds_sum", outcome="pushed"), 0)
        self.assertGreaterEqual(promtext.value(b1, "capstan_git_commits_total"), 2)
        self.assertGreaterEqual(promtext.value(b1, "capstan_git_changes_total"),
                                promtext.value(b1, "capstan_git_commits_total") - 1)
        # pool gauges: connections were opened; none is lent out between requests
        self.assertGreaterEqual(promtext.value(b1, "capstan_db_pool_connections_open"), 1)
        self.assertGreaterEqual(promtext.value(b1, "capstan_db_pool_connections_in_use"), 0)
        self.assertLessEqual(promtext.value(b1, "capstan_db_pool_connections_in_use"),
                             promtext.value(b1, "capstan_db_pool_connections_max"))
        self.assertEqual(promtext.value(b1, "capstan_db_pool_waiting"), 0)
        _, after = scrape(a)
        self.assertEqual(promtext.value(after, "capstan_jobs_queued"), 0)
        self.assertEqual(promtext.value(after, "capstan_jobs_oldest_queued_age_seconds"), 0)
        # A ran no job: its job counters stayed at zero (they count what this process did)
        self.assertEqual(promtext.total(after, fin), 0)
        self.assertEqual(promtext.value(after, "capstan_metrics_series_dropped_total"), 0)

    def test_3_database_down(self):
        """While the database is unreachable the queue gauges are left out, not stale."""
        pg = harness.Postgres()
        pg.start()
        try:
            db = pg.create_db()
            app = harness.Capstan(pg.url(db), env={"CAPSTAN_WORKERS": "0", "CAPSTAN_DB_TIMEOUT": "500ms"},
                                  name="dbdown").start()
            try:
                _, fams = scrape(app)
                self.assertEqual(promtext.value(fams, "capstan_database_up"), 1)
                self.assertEqual(promtext.value(fams, "capstan_jobs_queued"), 0)
                pg.stop("immediate")
                t0 = time.time()
                _, fams = scrape(app)
                self.assertLess(time.time() - t0, 10)
                self.assertEqual(promtext.value(fams, "capstan_database_up"), 0)
                self.assertIsNone(promtext.value(fams, "capstan_jobs_queued"))
                self.assertIsNone(promtext.value(fams, "capstan_jobs_oldest_queued_age_seconds"))
                pg.start()
                harness.wait_until(lambda: promtext.value(scrape(app)[1], "capstan_database_up") == 1,
                                   30, 0.5, "the database to be seen again")
                self.assertEqual(promtext.value(scrape(app)[1], "capstan_jobs_queued"), 0)
            finally:
                self.assertEqual(app.stop(), 0)
                app.cleanup()
        finally:
            pg.destroy()


class KubeCalls(unittest.TestCase):
    """capstan_kube_requests_total agrees with what the kube-apiserver double saw, verb by verb
    and status by status (server-side apply counts as a patch there)."""

    def test_counts_match_the_api_server(self):
        sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "tests", "doubles"))
        import kube_apiserver
        api = kube_apiserver.KubeApiServer().start()
        f = None
        try:
            api.put({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                     "metadata": {"name": "flux-system", "namespace": "flux-system"}, "spec": {"url": "x"}})
            api.put({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                     "metadata": {"name": "tenants", "namespace": "flux-system"}, "spec": {"path": "./tenants"}})
            api.inject("status", code=500, method="PATCH", count=1)
            f = harness.Fleet(harness.shared_postgres(), env={
                "CAPSTAN_KUBECONFIG": api.kubeconfig(auth="token"), "CAPSTAN_READY_POLL": "100ms",
                "CAPSTAN_READY_TIMEOUT": "60s"})
            f.create_tenant("kube-metrics", wait=False)  # nobody plays Flux: it waits

            def seen():
                reqs = [q for q in api.get_requests() if q.get("verb") and isinstance(q.get("status"), int)]
                return reqs if (any(q["status"] == 500 for q in reqs) and
                                sum(1 for q in reqs if q["verb"] == "get") >= 3) else None
            harness.wait_until(seen, 30, 0.1, "capstan to call the API server")

            def counts(reqs):
                c = {}
                for q in reqs:
                    if q.get("verb") and q["verb"] != "watch" and isinstance(q.get("status"), int):
                        k = (q["verb"], str(q["status"]))
                        c[k] = c.get(k, 0) + 1
                return c
            lo = counts(api.get_requests())
            _, fams = scrape(f.app)
            hi = counts(api.get_requests())
            got = {}
            for (name, lab), v in fams["capstan_kube_requests_total"].samples.items():
                d = dict(lab)
                verb = "patch" if d["verb"] == "apply" else d["verb"]
                if verb != "watch":
                    got[(verb, d["code"])] = got.get((verb, d["code"]), 0) + v
            self.assertIn(("patch", "500"), got)
            self.assertIn(("get", "200"), got)
            for k in set(lo) | set(hi) | set(got):
                self.assertTrue(lo.get(k, 0) <= got.get(k, 0) <= hi.get(k, 0),
                                "%s: capstan counted %s, the API server saw %s..%s" %
                                (k, got.get(k, 0), lo.get(k, 0), hi.get(k, 0)))
        finally:
            if f:
                self.assertEqual(f.close(), [0])
            api.stop()


class Logs(unittest.TestCase):
    def test_json_lines(self):
        pg = harness.shared_postgres()
        f = harness.Fleet(pg, env={"CAPSTAN_WORKERS": "1"})
        try:
            r = f.request("POST", "/api/v1/tenants", harness.tenant_body("logs-tenant"),
                          headers={"X-Request-Id": "req-logs-0001"})
            self.assertEqual(r.status, 202, r)
            job = r.json["job"]["id"]
            f.wait_job(job)
            for _ in range(20):
                f.request("GET", "/healthz", token=None)
        finally:
            self.assertEqual(f.close(), [0])
        lines = f.apps[0].log().splitlines()
        objs = [json.loads(l) for l in lines]  # every line is one JSON object
        for o in objs:
            for k in ("time", "level", "msg"):
                self.assertIn(k, o)
            self.assertRegex(o["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(o["level"], ("debug", "info", "warn", "error"))
        access = [o for o in objs if o["msg"] == "request"]
        post = [o for o in access if o.get("requestId") == "req-logs-0001"]
        self.assertEqual(len(post), 1, access[:3])
        self.assertEqual(post[0]["route"], "tenants.create")
        self.assertEqual(post[0]["status"], 202)
        self.assertEqual(post[0]["path"], "/api/v1/tenants")
        health = [o for o in access if o.get("route") == "healthz"]
        self.assertGreaterEqual(len(health), 20)
        # durations come from a fine clock: sub-millisecond, not whole milliseconds
        self.assertTrue(any(0 < o["durationMs"] < 1 for o in health), [o["durationMs"] for o in health])
        self.assertTrue(any(o["durationMs"] != int(o["durationMs"]) for o in access))
        # job lines carry the job id and the tenant
        done = [o for o in objs if o["msg"] == "job succeeded"]
        self.assertEqual(len(done), 1)
        self.assertEqual(done[0]["jobId"], job)
        self.assertEqual(done[0]["tenant"], "logs-tenant")
        # no secret in the log
        text = "\n".join(lines)
        self.assertNotIn(harness.ADMIN_TOKEN, text)

    def test_text_on_a_terminal(self):
        """CAPSTAN_LOG_FORMAT=auto writes text lines when stderr is a terminal."""
        pg = harness.shared_postgres()
        db = pg.create_db()
        env = harness.Capstan(pg.url(db)).env()
        env.update({"CAPSTAN_LOG_FORMAT": "auto", "CAPSTAN_WORKERS": "0"})
        master, slave = pty.openpty()
        p = subprocess.Popen([harness.CAPSTAN_BIN, "serve"], env=env, stdout=slave, stderr=slave,
                             stdin=subprocess.DEVNULL)
        os.close(slave)
        out = b""
        try:
            deadline = time.time() + 30
            while b"listening on port" not in out and time.time() < deadline:
                rd, _, _ = select.select([master], [], [], 0.5)
                if rd:
                    try:
                        out += os.read(master, 4096)
                    except OSError:
                        break
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(30)
            os.close(master)
        text = out.decode(errors="replace")
        line = [l for l in text.splitlines() if "listening on port" in l]
        self.assertTrue(line, text[-2000:])
        self.assertRegex(line[0], r"^\d{4}-\d\d-\d\dT[0-9:.]+Z info  listening on port \d+ ")
        self.assertFalse(line[0].startswith("{"))


class ZReadme(unittest.TestCase):
    """Runs last: README.md's list of metrics is exactly what the scrapes above showed."""

    def test_metric_list(self):
        with open(os.path.join(harness.SOURCE_DIR, "README.md")) as f:
            text = f.read()
        m = re.search(r"<!-- metrics:begin.*?-->(.*?)<!-- metrics:end -->", text, re.S)
        self.assertTrue(m, "README.md lacks the metrics markers")
        listed = dict(re.findall(r"^\| `([a-z_:]+)` \| (counter|gauge|histogram) \|", m.group(1), re.M))
        self.assertTrue(listed)
        self.assertGreater(len(SEEN), 20, "run the whole module: the other tests scrape first")
        self.assertEqual(listed, SEEN)


if __name__ == "__main__":
    unittest.main(verbosity=2)
