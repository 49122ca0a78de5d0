# ctest: labels=slow timeout=900
"""Crashes: kill -9 capstan while 100 jobs run, start it again: every job ends succeeded once and
no change is missing or doubled in Git. Two processes on one database share the work, and a
process stopped with SIGTERM gives its running jobs back at once."""
import signal
import time
import unittest
from collections import Counter

import gitserver
import harness


class Crash(unittest.TestCase):
    def test_kill_9_with_100_jobs_running(self):
        pg = harness.shared_postgres()
        with gitserver.GitServer() as gs:
            f = harness.Fleet(pg, git_server=gs, env={"CAPSTAN_WORKERS": "4", "CAPSTAN_JOB_LEASE": "2s"})
            try:
                names = ["c%03d" % i for i in range(100)]
                jobs = [f.request("POST", "/api/v1/tenants", harness.tenant_body(n)).json["job"]["id"] for n in names]
                # let some finish, then kill the process in the middle of the rest
                harness.wait_until(lambda: sum(1 for l in f.app.log_lines() if l.get("msg") == "job succeeded") >= 10,
                                   60, 0.01, what="ten jobs done")
                f.app.proc.send_signal(signal.SIGKILL)
                f.app.proc.wait()
                done_before = sum(1 for l in f.app.log_lines() if l.get("msg") == "job succeeded")
                self.assertLess(done_before, 100, "every job finished before the kill; nothing was tested")
                # two processes take over the work
                a = f.add_app()
                b = f.add_app()
                f.app = a
                for j in jobs:
                    f.wait_job(j, timeout=300)
                trailers = Counter(f.job_trailers())
                for j in jobs:
                    self.assertEqual(trailers[j], 1, "job %s is on the branch %d times" % (j, trailers[j]))
                for n in names:
                    t = f.request("GET", "/api/v1/tenants/" + n).json
                    self.assertEqual((t["state"], t["observedGeneration"]), ("ready", 1), n)
                    self.assertIn('- "%s"' % n, f.show("tenants/kustomization.yaml"))
                # jobs that were running when the process died were taken up again
                retried = [j for j in jobs if f.request("GET", "/api/v1/jobs/" + j).json["attempt"] > 1]
                print("%d jobs done before the kill, %d taken up after it" % (done_before, len(retried)))
                shared = [sum(1 for l in app.log_lines() if l.get("msg") == "job succeeded") for app in (a, b)]
                print("the two new processes ran %s jobs" % shared)
                self.assertTrue(all(n > 0 for n in shared), shared)
            finally:
                f.close()

    def test_sigterm_gives_running_jobs_back(self):
        pg = harness.shared_postgres()
        with gitserver.GitServer() as gs:
            f = harness.Fleet(pg, git_server=gs, env={"CAPSTAN_WORKERS": "2", "CAPSTAN_JOB_LEASE": "60s"})
            try:
                jobs = [f.request("POST", "/api/v1/tenants", harness.tenant_body("s%02d" % i)).json["job"]["id"]
                        for i in range(30)]
                harness.wait_until(lambda: any(l.get("msg", "").startswith("running ") for l in f.app.log_lines()),
                                   30, 0.01, what="a job to start")
                self.assertEqual(f.app.stop(signal.SIGTERM), 0)
                # with a 60 s lease, only a job given back is taken up at once by the next process
                t0 = time.time()
                f.app = f.add_app()
                for j in jobs:
                    f.wait_job(j, timeout=60)
                self.assertLess(time.time() - t0, 45, "jobs waited for their leases to expire")
                trailers = Counter(f.job_trailers())
                self.assertTrue(all(trailers[j] == 1 for j in jobs), trailers)
            finally:
                f.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
