"""Limits that keep one client from taking the server: per-token and per-address rate limits
(429 with Retry-After), body size (413), header size (431), idle connections (closed after
CAPSTAN_REQUEST_TIMEOUT) and connections per client address."""
import http.client
import socket
import time
import unittest

import harness
import secretscan
from harness import assert_problem

PG = None


def setUpModule():
    global PG
    PG = harness.shared_postgres()


def raw_exchange(port, data, timeout=5):
    """Sends data on a new connection; returns what came back until the server closed or the
    head of an answer arrived ('' when the server closed without a word)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = b""
    try:
        s.sendall(data)
        while b"\r\n\r\n" not in got:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return got


class RateLimits(unittest.TestCase):
    RATE, BURST, ANON = 4, 8, 2  # the anonymous burst is twice its rate

    @classmethod
    def setUpClass(cls):
        cls.app = harness.Capstan(PG.url(PG.create_db()), name="rate",
                                  env={"CAPSTAN_RATE_LIMIT": str(cls.RATE), "CAPSTAN_RATE_BURST": str(cls.BURST),
                                       "CAPSTAN_ANON_RATE_LIMIT": str(cls.ANON)}).start()
        cls.tokens = []
        for i in range(3):
            r = cls.app.request("POST", "/api/v1/tokens", {"name": "t%d" % i, "role": "admin"})
            assert r.status == 201, r
            secretscan.record(r.json["token"])
            cls.tokens.append(r.json["token"])

    @classmethod
    def tearDownClass(cls):
        assert cls.app.stop() == 0
        cls.app.cleanup()

    def get(self, path="/api/v1/tenants", token=None, source="127.0.0.1"):
        """One request from a loopback source address of our choice (each has its own bucket)."""
        h = {"Authorization": "Bearer " + token} if token else {}
        conn = http.client.HTTPConnection("127.0.0.1", self.app.port, timeout=30, source_address=(source, 0))
        try:
            conn.request("GET", path, headers=h)
            r = conn.getresponse()
            return harness.Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def until_refused(self, rate, burst, least=None, **kw):
        """Requests until the first 429; checks that the bucket let through what it should."""
        t0 = time.monotonic()
        ok = 0
        while True:
            r = self.get(**kw)
            if r.status == 429:
                break
            ok += 1
            self.assertLess(ok, burst + 100, "never limited")
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(ok, burst if least is None else least)
        self.assertLessEqual(ok, burst + int(elapsed * rate) + 1, "more than the bucket holds")
        return r, ok

    def test_per_token_bucket_with_retry_after(self):
        first, second = self.tokens[:2]
        r, _ = self.until_refused(self.RATE, self.BURST, token=first)
        assert_problem(r, 429)
        retry = r.header("retry-after")
        self.assertRegex(retry, r"^[1-9][0-9]*$", "Retry-After in whole seconds")
        self.assertLessEqual(int(retry), 1)
        # another token has its own bucket
        self.assertEqual(self.get(token=second).status, 200)
        # after Retry-After the token works again
        time.sleep(int(retry))
        self.assertEqual(self.get(token=first).status, 200)
        # the bootstrap admin token is limited too
        r, _ = self.until_refused(self.RATE, self.BURST, least=0, token=harness.ADMIN_TOKEN)
        assert_problem(r, 429)

    def test_without_credentials_per_address(self):
        r, ok = self.until_refused(self.ANON, 2 * self.ANON, source="127.0.0.2")
        assert_problem(r, 429)
        self.assertRegex(r.header("retry-after"), r"^[1-9][0-9]*$")
        # wrong tokens count against the address too
        self.assertIn(429, [self.get(token="cap_" + "x" * 43, source="127.0.0.2").status for _ in range(3)])
        # valid credentials from that address are not held back by its bucket
        self.assertEqual(self.get(token=self.tokens[2], source="127.0.0.2").status, 200)
        # another address has its own bucket
        self.assertEqual(self.get(source="127.0.0.4").status, 401)
        # public routes are never limited (probes must not fail)
        self.assertEqual({self.get("/healthz", source="127.0.0.2").status for _ in range(30)}, {200})

    def test_429s_are_logged_but_not_audited(self):
        for _ in range(2 * self.ANON + 3):
            self.get(source="127.0.0.3")
        lines = [l for l in self.app.log_lines()
                 if l.get("msg") == "request" and l.get("status") == 429 and l.get("remote") == "127.0.0.3"]
        self.assertTrue(lines)

        def audit():
            items = self.get("/api/v1/audit?limit=500", token=self.tokens[2]).json["items"]
            mine = [e["status"] for e in items if e["remote"] == "127.0.0.3"]
            return mine if len(mine) >= 2 * self.ANON else None
        statuses = harness.wait_until(audit, 10, 0.1, what="audit entries of the refused requests")
        self.assertEqual(set(statuses), {401}, "401s are audited, 429s are not")


class Sizes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app = harness.Capstan(PG.url(PG.create_db()), name="sizes",
                                  env={"CAPSTAN_MAX_BODY": "2KiB", "CAPSTAN_MAX_HEADERS": "8KiB",
                                       "CAPSTAN_REQUEST_TIMEOUT": "1s",
                                       "CAPSTAN_MAX_CLIENT_CONNECTIONS": "4"}).start()

    @classmethod
    def tearDownClass(cls):
        assert cls.app.stop() == 0
        cls.app.cleanup()

    def test_body_over_the_limit_is_413(self):
        body = {"name": "big", "displayName": "x" * 3000, "owners": ["a@example.com"]}
        assert_problem(self.app.request("POST", "/api/v1/tenants", body), 413)
        # under the limit it is read and judged on its content
        assert_problem(self.app.request("POST", "/api/v1/tenants", {"name": "Bad Name"}), 422)
        # a body over the limit without credentials is refused for the credentials first
        assert_problem(self.app.request("POST", "/api/v1/tenants", body, token=None), 401)

    def test_headers_over_the_limit_are_431(self):
        ok = raw_exchange(self.app.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 3000 + b"\r\n\r\n")
        self.assertTrue(ok.startswith(b"HTTP/1.1 200"), ok[:100])
        big = raw_exchange(self.app.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n")
        self.assertTrue(big.startswith(b"HTTP/1.1 431"), big[:100])

    def test_idle_connection_is_closed(self):
        for partial in (b"GET /healthz HTTP/1.1\r\nHo",  # a head that never ends
                        b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na"
                        % harness.ADMIN_TOKEN.encode()):  # a body that stops coming
            t0 = time.monotonic()
            got = raw_exchange(self.app.port, partial, timeout=10)
            took = time.monotonic() - t0
            self.assertFalse(got.startswith(b"HTTP/1.1 2"), got[:100])
            self.assertLess(took, 4, "the server kept an idle connection for %.1fs" % took)
            self.assertGreater(took, 0.8)

    def test_connections_per_client(self):
        held = []
        try:
            while len(held) < 4:
                # connections of earlier tests may still be closing: the server counts them a
                # little longer, so a refused one is tried again
                for _ in range(50):
                    s = socket.create_connection(("127.0.0.1", self.app.port), timeout=5)
                    try:
                        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                        if s.recv(4096).startswith(b"HTTP/1.1 200"):  # kept alive, held open
                            held.append(s)
                            break
                    except OSError:
                        pass
                    s.close()
                    time.sleep(0.1)
                else:
                    self.fail("cannot hold %d connections" % (len(held) + 1))
            fifth = raw_exchange(self.app.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(fifth, b"", "a fifth connection from one address is closed at once")
        finally:
            for s in held:
                s.close()

        def answers():
            try:
                return self.app.request("GET", "/healthz", token=None).status == 200
            except OSError:
                return False
        harness.wait_until(answers, 5, what="a connection after the others closed")


if __name__ == "__main__":
    unittest.main(verbosity=2)
