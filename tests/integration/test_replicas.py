# ctest: labels=slow timeout=900
"""Several replicas: three capstan processes on one database and one fleet repository on the
real Git server (git http-backend behind lighttpd), started at the same moment, under a load of
300 jobs (100 tenants, 160 environments, 40 expiries), with one process stopped with SIGTERM in
the middle of the environment jobs and started again (a rolling restart).

What must hold: every job succeeded, exactly once (one "job succeeded" in all the logs, one
Capstan-Job trailer on the branch); each migration was applied by exactly one process; each
expired environment got exactly one environment.expire job although three expiry schedulers
ran; the stopped process exited 0 and the restarted one took part again; the fleet tree is
valid for Flux."""
import concurrent.futures
import glob
import json
import os
import re
import shutil
import tempfile
import threading
import time
import unittest
from collections import Counter

import gitserver
import harness
import promtext

TENANTS = 100
EPHEMERAL = 60  # of the tenants also get an ephemeral environment
EXPIRE = 40     # of those are made to expire


class Replicas(unittest.TestCase):
    def test_three_processes_300_jobs_one_restart(self):
        pg = harness.shared_postgres()
        t_start = time.time()
        with gitserver.GitServer() as gs:
            f = harness.Fleet(pg, git_server=gs, start=False,
                              env={"CAPSTAN_WORKERS": "4", "CAPSTAN_EXPIRY_INTERVAL": "200ms",
                                   "CAPSTAN_SHUTDOWN_TIMEOUT": "20s"})
            apps = []
            try:
                # three processes start at once against an empty database: they race for the
                # migrations (advisory lock) and for the first commit of the fleet repository
                for i in range(3):
                    e = dict(f.env)
                    a = harness.Capstan(pg.url(f.db), env=e, name="replica%d" % i)
                    apps.append(a)
                    f.apps.append(a)
                for a in apps:
                    a.start(wait=False)
                for a in apps:
                    a.wait_listening(60)
                f.app = apps[0]
                self.check_migrations_once(apps)

                down = threading.Event()  # set while replica 1 restarts (a Service routes around it)
                rr = [0]
                lock = threading.Lock()

                def pick():
                    with lock:
                        rr[0] += 1
                        n = rr[0]
                    live = [a for i, a in enumerate(apps) if not (i == 1 and down.is_set())]
                    return live[n % len(live)]

                def post(path, body):
                    for _ in range(50):
                        app = pick()
                        try:
                            r = app.request("POST", path, body)
                        except OSError:  # the replica went away between pick and connect
                            time.sleep(0.05)
                            continue
                        self.assertEqual(r.status, 202, r)
                        return r.json["job"]["id"]
                    self.fail("no replica took POST %s" % path)

                pool = concurrent.futures.ThreadPoolExecutor(12)
                names = ["r%03d" % i for i in range(TENANTS)]
                t0 = time.time()
                tenant_jobs = list(pool.map(lambda n: post("/api/v1/tenants", harness.tenant_body(n)), names))
                for j in tenant_jobs:
                    f.wait_job(j, timeout=300)
                t1 = time.time()

                # environments: 100 permanent + 60 ephemeral; replica 1 restarts meanwhile
                bodies = [(n, {"name": "dev"}) for n in names] + \
                         [(n, {"name": "tmp", "type": "ephemeral", "ttl": "24h"}) for n in names[:EPHEMERAL]]
                futures = [pool.submit(post, "/api/v1/tenants/%s/environments" % n, b) for n, b in bodies]
                harness.wait_until(lambda: sum(1 for l in apps[1].log_lines() if l.get("msg") == "job succeeded") >= 5,
                                   120, 0.05, "replica 1 to be busy with jobs")
                down.set()
                running_before = self.running_jobs(pg, f.db)
                rc = apps[1].stop(timeout=60)
                self.assertEqual(rc, 0, "SIGTERM must end the process cleanly")
                restarted_at = len(apps[1].log())
                apps[1].start(wait=False)
                self.wait_listening_again(apps[1], restarted_at)
                down.clear()
                env_jobs = [fu.result() for fu in futures]
                for j in env_jobs:
                    f.wait_job(j, timeout=300)
                t2 = time.time()

                # expiries: move expiresAt of 40 ephemeral environments into the past; three
                # expiry schedulers see them
                expiring = names[:EXPIRE]
                pg.psql("UPDATE environments SET expires_at = now() - interval '1 minute' "
                        "WHERE name = 'tmp' AND tenant IN (%s)" % ",".join("'%s'" % n for n in expiring), f.db)
                harness.wait_until(lambda: int(pg.psql("SELECT count(*) FROM jobs WHERE kind = 'environment.expire'",
                                                       f.db)) >= EXPIRE, 60, 0.2, "the expiries to be enqueued")
                time.sleep(1.0)  # several more scheduler rounds in every process
                rows = pg.psql("SELECT environment, tenant, id FROM jobs WHERE kind = 'environment.expire'", f.db)
                expire_jobs = [l.split("|") for l in rows.splitlines()]
                self.assertEqual(Counter((t, e) for e, t, _ in expire_jobs),
                                 Counter({(n, "tmp"): 1 for n in expiring}), "one expiry per environment")
                for _, _, j in expire_jobs:
                    f.wait_job(j, timeout=300)
                t3 = time.time()
                expire_ids = [j for _, _, j in expire_jobs]
                enqueued = sum(int(m.group(1)) for a in apps for l in a.log_lines()
                               for m in [re.match(r"enqueued (\d+) environment expir", l.get("msg", ""))] if m)
                self.assertEqual(enqueued, EXPIRE)

                all_jobs = tenant_jobs + env_jobs + expire_ids
                self.assertEqual(len(all_jobs), 300)
                self.assertEqual(len(set(all_jobs)), 300)
                print("replicas: %d tenant jobs in %.1fs, %d environment jobs (with a restart) in %.1fs, "
                      "%d expiries in %.1fs" % (len(tenant_jobs), t1 - t0, len(env_jobs), t2 - t1,
                                                len(expire_ids), t3 - t2))
                print("jobs running when replica 1 got SIGTERM: %d" % running_before)

                # every job succeeded exactly once, wherever it ran
                succeeded = Counter(l.get("jobId") for a in apps for l in a.log_lines()
                                    if l.get("msg") == "job succeeded")
                for j in all_jobs:
                    self.assertEqual(succeeded[j], 1, "job %s succeeded %d times" % (j, succeeded[j]))
                self.assertEqual(sum(succeeded.values()), 300)
                states = pg.psql("SELECT state, count(*) FROM jobs GROUP BY state", f.db)
                self.assertEqual(states.strip(), "succeeded|300", states)
                trailers = Counter(f.job_trailers())
                for j in all_jobs:
                    self.assertEqual(trailers[j], 1, "job %s is on the branch %d times" % (j, trailers[j]))
                self.assertEqual(sum(trailers.values()), 300)
                print("%d commits carry the 300 changes" % len(f.commits()))

                # every replica worked, the restarted one also after its restart
                per_app = [sum(1 for l in a.log_lines() if l.get("msg") == "job succeeded") for a in apps]
                print("jobs per replica: %s" % per_app)
                self.assertTrue(all(n > 0 for n in per_app), per_app)
                after = [json.loads(l) for l in apps[1].log()[restarted_at:].splitlines() if l.startswith("{")]
                self.assertTrue(any(l.get("msg") == "job succeeded" for l in after), "the restarted replica ran no job")
                stop_lines = [json.loads(l) for l in apps[1].log()[:restarted_at].splitlines() if l.startswith("{")]
                self.assertTrue(any(l.get("msg", "").startswith("received SIGTERM") for l in stop_lines))
                self.assertEqual(stop_lines[-1].get("msg"), "stopped")

                # what the replicas report about the pushes (replica 1's counters restarted)
                pushes = Counter()
                for a in apps:
                    fams = promtext.parse(harness.request(a.port, "GET", "/metrics", token=None).raw.decode())
                    for (name, lab), v in fams["capstan_git_push_duration_seconds"].samples.items():
                        if name.endswith("_count"):
                            pushes[dict(lab)["outcome"]] += v
                    pushes["rejections (counter)"] += promtext.value(fams, "capstan_git_push_rejections_total")
                    self.assertEqual(promtext.value(fams, "capstan_jobs_queued"), 0)
                print("pushes: %s" % dict(pushes))
                self.assertEqual(pushes["rejected"], pushes["rejections (counter)"])

                # what the fleet repository holds is what the API says
                files = set(f.files())
                for n in names:
                    self.assertIn("tenants/%s/environments/dev/cluster.yaml" % n, files)
                for n in names[EXPIRE:EPHEMERAL]:
                    self.assertIn("tenants/%s/environments/tmp/cluster.yaml" % n, files)
                for n in expiring:
                    self.assertNotIn("tenants/%s/environments/tmp/cluster.yaml" % n, files)
                work = tempfile.mkdtemp()
                try:
                    gs.clone(f.repo_name, work + "/fleet")
                    rc, out = harness.validate_tree(work + "/fleet")
                    self.assertEqual(rc, 0, out[-3000:])
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                pool.shutdown()
            finally:
                codes = f.close()
                self.assertEqual(codes, [0, 0, 0])
        print("replicas: whole test %.1fs" % (time.time() - t_start))
        self.assertLess(time.time() - t_start, 240, "the test should stay around two minutes")

    def check_migrations_once(self, apps):
        """Each migration was applied by exactly one of the three processes."""
        files = sorted(glob.glob(os.path.join(harness.SOURCE_DIR, "migrations", "*.sql")))
        applied = []
        for a in apps:
            for l in a.log_lines():
                m = re.match(r"database schema is current \((\d+) migrations applied now\)", l.get("msg", ""))
                if m:
                    applied.append(int(m.group(1)))
        self.assertEqual(len(applied), 3, applied)
        self.assertEqual(sum(applied), len(files), "migrations applied per process: %s" % applied)
        self.assertEqual(sorted(applied)[:2], [0, 0])

    def running_jobs(self, pg, db):
        return int(pg.psql("SELECT count(*) FROM jobs WHERE state = 'running'", db))

    def wait_listening_again(self, app, offset, timeout=60):
        """Capstan.wait_listening reads the whole log, where the first run's line still is."""
        def port():
            for line in app.log()[offset:].splitlines():
                if '"listening on port' in line:
                    return json.loads(line)["port"]
            if app.proc.poll() is not None:
                raise RuntimeError("capstan exited: " + app.log()[offset:][-3000:])
            return None
        app.port = harness.wait_until(port, timeout, 0.05, "the restarted replica to listen")


if __name__ == "__main__":
    unittest.main(verbosity=2)
