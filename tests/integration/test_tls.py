"""HTTPS through libmicrohttpd (CAPSTAN_TLS_CERT / CAPSTAN_TLS_KEY): the handshake with a test
certificate (made here with the openssl command), TLS 1.2 and 1.3, an encrypted key with
CAPSTAN_TLS_KEY_PASSWORD, plain HTTP to the TLS port failing cleanly, and bad TLS settings
stopping the start with a message that names them."""
import http.client
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

import harness
import secretscan

PG = None
DIR = None


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def make_cert(name, cn="localhost"):
    key, cert = os.path.join(DIR, name + ".key"), os.path.join(DIR, name + ".crt")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    os.chmod(key, 0o600)
    return cert, key


def setUpModule():
    global PG, DIR
    PG = harness.shared_postgres()
    DIR = tempfile.mkdtemp(prefix="capstan-tls-")


def tearDownModule():
    shutil.rmtree(DIR, ignore_errors=True)


def https(app, cafile, method, path, token=harness.ADMIN_TOKEN, ctx=None):
    ctx = ctx or ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection("127.0.0.1", app.port, context=ctx, timeout=10)
    try:
        conn.connect()
        version = conn.sock.version()
        conn.request(method, path, headers={"Authorization": "Bearer " + token} if token else {})
        r = conn.getresponse()
        return r.status, r.read(), version
    finally:
        conn.close()


class Serving(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cert, cls.key = make_cert("server")
        cls.app = harness.Capstan(PG.url(PG.create_db()), name="tls",
                                  env={"CAPSTAN_TLS_CERT": cls.cert, "CAPSTAN_TLS_KEY": cls.key}).start()

    @classmethod
    def tearDownClass(cls):
        assert cls.app.stop() == 0
        cls.app.cleanup()

    def test_handshake_and_requests(self):
        status, body, version = https(self.app, self.cert, "GET", "/healthz", token=None)
        self.assertEqual(status, 200)
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        status, body, _ = https(self.app, self.cert, "GET", "/api/v1/tenants")
        self.assertEqual(status, 200, body)
        status, _, _ = https(self.app, self.cert, "GET", "/api/v1/tenants", token=None)
        self.assertEqual(status, 401)

    def test_certificate_is_verified_by_the_client(self):
        other, _ = make_cert("stranger")
        with self.assertRaises(ssl.SSLCertVerificationError):
            https(self.app, other, "GET", "/healthz", token=None)

    def test_tls_1_2_and_1_3(self):
        for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            ctx = ssl.create_default_context(cafile=self.cert)
            ctx.minimum_version = ctx.maximum_version = version
            self.assertEqual(https(self.app, self.cert, "GET", "/healthz", token=None, ctx=ctx)[2], name)

    def test_plain_http_to_the_tls_port_fails_cleanly(self):
        s = socket.create_connection(("127.0.0.1", self.app.port), timeout=10)
        got = b""
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
        finally:
            s.close()
        self.assertFalse(got.startswith(b"HTTP/"), got[:100])
        self.assertLess(len(got), 64, "at most a TLS alert comes back")
        # the server goes on serving TLS
        self.assertEqual(https(self.app, self.cert, "GET", "/healthz", token=None)[0], 200)
        self.assertIsNone(self.app.proc.poll())


class Settings(unittest.TestCase):
    def test_encrypted_key_with_password(self):
        cert, key = make_cert("locked")
        password = "pw-" + secrets.token_hex(12)
        secretscan.record(password)
        enc = os.path.join(DIR, "locked.enc.key")
        openssl("pkey", "-in", key, "-out", enc, "-aes256", "-passout", "pass:" + password)
        os.chmod(enc, 0o600)
        pwfile = os.path.join(DIR, "locked.pw")
        with open(pwfile, "w") as f:
            f.write(password + "\n")
        app = harness.Capstan(PG.url(PG.create_db()), name="tls-pw",
                              env={"CAPSTAN_TLS_CERT": cert, "CAPSTAN_TLS_KEY": enc,
                                   "CAPSTAN_TLS_KEY_PASSWORD_FILE": pwfile}).start()
        try:
            self.assertEqual(https(app, cert, "GET", "/healthz", token=None)[0], 200)
        finally:
            self.assertEqual(app.stop(), 0)
            app.cleanup()
        self.assertNotIn(password, app.log())

    def test_bad_settings_stop_the_start(self):
        cert, key = make_cert("good")
        _, other_key = make_cert("other")
        missing = os.path.join(DIR, "missing.key")
        cases = [
            ({"CAPSTAN_TLS_CERT": cert}, "CAPSTAN_TLS_CERT and CAPSTAN_TLS_KEY"),
            ({"CAPSTAN_TLS_CERT": cert, "CAPSTAN_TLS_KEY": missing}, "CAPSTAN_TLS_KEY"),
            ({"CAPSTAN_TLS_CERT": key + ".nope", "CAPSTAN_TLS_KEY": key}, "CAPSTAN_TLS_CERT"),
            ({"CAPSTAN_TLS_CERT": cert, "CAPSTAN_TLS_KEY": cert + ".txt"}, "CAPSTAN_TLS_KEY"),
            ({"CAPSTAN_TLS_CERT": cert, "CAPSTAN_TLS_KEY": other_key}, "TLS certificate and key"),
        ]
        with open(cert + ".txt", "w") as f:
            f.write("not a key\n")
        for env, needle in cases:
            db = PG.create_db()
            env = dict(env)
            env.update({"CAPSTAN_ADMIN_TOKEN": harness.ADMIN_TOKEN, "CAPSTAN_LISTEN": "127.0.0.1:0",
                        "CAPSTAN_DATA_DIR": tempfile.mkdtemp(dir=DIR)})
            r = harness.run_capstan(["serve"], PG.url(db), env=env, timeout=60)
            self.assertNotEqual(r.returncode, 0, env)
            self.assertIn(needle, r.stderr, (env, r.stderr))


if __name__ == "__main__":
    unittest.main(verbosity=2)
