# ctest: labels=slow timeout=900
"""Many requests at once, two capstan processes, a real Git server (git http-backend behind
lighttpd, basic auth): 200 tenants and 200 environments requested concurrently. Every job
succeeds, every change is on the branch exactly once, and the tree passes the validator."""
import concurrent.futures
import shutil
import tempfile
import time
import unittest
from collections import Counter

import gitserver
import harness


class Scale(unittest.TestCase):
    def test_200_tenants_and_200_environments(self):
        pg = harness.shared_postgres()
        with gitserver.GitServer() as gs:
            f = harness.Fleet(pg, git_server=gs, env={"CAPSTAN_WORKERS": "8"})
            try:
                f.add_app()  # a second process: another cache, racing pushes
                pool = concurrent.futures.ThreadPoolExecutor(16)
                names = ["t%03d" % i for i in range(200)]
                t0 = time.time()

                def post(path, body, app):
                    r = app.request("POST", path, body)
                    self.assertEqual(r.status, 202, r)
                    return r.json["job"]["id"]
                jobs = list(pool.map(lambda i: post("/api/v1/tenants", harness.tenant_body(names[i]),
                                                    f.apps[i % 2]), range(200)))
                for j in jobs:
                    f.wait_job(j, timeout=300)
                t1 = time.time()
                env_jobs = list(pool.map(lambda i: post("/api/v1/tenants/%s/environments" % names[i],
                                                        {"name": "dev", "type": "ephemeral" if i % 2 else "permanent",
                                                         **({"ttl": "24h"} if i % 2 else {})},
                                                        f.apps[(i + 1) % 2]), range(200)))
                for j in env_jobs:
                    f.wait_job(j, timeout=300)
                t2 = time.time()
                print("200 tenant jobs in %.1fs, 200 environment jobs in %.1fs" % (t1 - t0, t2 - t1))

                trailers = Counter(f.job_trailers())
                for j in jobs + env_jobs:
                    self.assertEqual(trailers[j], 1, "job %s is on the branch %d times" % (j, trailers[j]))
                self.assertEqual(sum(trailers.values()), 400)
                commits = f.commits()
                print("%d commits carry the 400 changes" % len(commits))
                files = set(f.files())
                for n in names:
                    self.assertIn("tenants/%s/environments/dev/cluster.yaml" % n, files)
                index = f.show("tenants/kustomization.yaml")
                self.assertEqual(sum(1 for n in names if '- "%s"' % n in index), 200)
                work = tempfile.mkdtemp()
                try:
                    gs.clone(f.repo_name, work + "/fleet")
                    rc, out = harness.validate_tree(work + "/fleet")
                    self.assertEqual(rc, 0, out[-3000:])
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                for app in f.apps:
                    done = sum(1 for l in app.log_lines() if l.get("msg") == "job succeeded")
                    self.assertGreater(done, 0, "a process did no job")
            finally:
                self.assertEqual(f.close(), [0, 0])


if __name__ == "__main__":
    unittest.main(verbosity=2)
