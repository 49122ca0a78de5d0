"""The database goes away under a running server and comes back: requests that need it get
503 with Retry-After, /readyz says 503, /healthz stays 200, and capstan recovers by itself."""
import unittest

import harness
from harness import assert_problem


class DatabaseOutage(unittest.TestCase):
    def setUp(self):
        self.pg = harness.Postgres()
        self.pg.start()
        self.app = None

    def tearDown(self):
        if self.app:
            self.app.cleanup()
        self.pg.destroy()

    def test_outage_and_recovery(self):
        db = self.pg.create_db()
        self.app = harness.Capstan(self.pg.url(db), env={"CAPSTAN_DB_TIMEOUT": "1s"}).start()
        self.assertEqual(self.app.request("GET", "/readyz", token=None).status, 200)

        self.pg.stop("fast")
        r = self.app.request("GET", "/readyz", token=None)
        p = assert_problem(r, 503)
        self.assertTrue(r.header("retry-after"), r.headers)
        self.assertNotRegex(p["detail"], r"(?i)select|sqlstate|postgresql://|password")
        self.assertEqual(self.app.request("GET", "/healthz", token=None).status, 200)

        self.pg.start()
        harness.wait_until(lambda: self.app.request("GET", "/readyz", token=None).status == 200, 30,
                           what="readyz 200 after the database came back")
        self.assertEqual(self.app.stop(), 0)

    def test_server_starts_while_database_is_down_and_waits(self):
        db = self.pg.create_db()
        self.pg.stop("fast")
        self.app = harness.Capstan(self.pg.url(db)).start(wait=False)
        harness.wait_until(lambda: "waiting for the database" in self.app.log(), 30, what="waiting log line")
        self.pg.start()
        self.app.wait_listening(60)
        self.assertEqual(self.app.request("GET", "/readyz", token=None).status, 200)
        self.assertEqual(self.app.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
