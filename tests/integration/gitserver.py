"""A real Git server for black-box tests: `git http-backend` behind lighttpd.

    srv = GitServer()                 # starts lighttpd on a free loopback port (basic auth)
    srv.create_bare("fleet")          # an empty bare repository, branch main, push enabled
    url = srv.url("fleet")            # http://127.0.0.1:PORT/git/fleet.git (credentials apart)
    srv.log("fleet")                  # commits of main, newest first, with trailers parsed
    srv.show("fleet", "a/b.yaml")     # a file's content at main (None when absent)
    srv.stop()

GitServer(tls=True) serves https with a throwaway CA (srv.ca_file) and a certificate for
cert_san (default "DNS:localhost,IP:127.0.0.1"). unreachable_url() names a port where nothing listens;
Blackhole() accepts TCP connections and never answers (for timeouts). srv.halt() stops lighttpd
and srv.resume() serves the same repositories on the same port again (an outage); access_log()
lists the requests lighttpd served; set_password() changes a user's password. SshServer() runs a private
sshd on loopback (key authentication only; needs openssh-server and root) serving the same kind of
bare repositories over ssh://, with known_hosts files for its host key.

lighttpd runs mod_cgi + mod_alias + mod_auth (basic, plain user file); http-backend serves every
repository under the root (GIT_HTTP_EXPORT_ALL) and accepts pushes from authenticated users
(http.receivepack is also set in each repository). Only the Python standard library is used.
"""
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

LIGHTTPD = shutil.which("lighttpd") or "/usr/sbin/lighttpd"
HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unreachable_url(name="fleet"):
    """An http URL on a loopback port where nothing listens (connections are refused)."""
    return "http://127.0.0.1:%d/git/%s.git" % (free_port(), name)


class Blackhole:
    """A loopback port that completes TCP handshakes and then never says anything."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def url(self, name="fleet"):
        return "http://127.0.0.1:%d/git/%s.git" % (self.port, name)

    def close(self):
        self.sock.close()


def git(*args, cwd=None, check=True, env=None, input=None):
    e = dict(os.environ)
    e.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    if env:
        e.update(env)
    r = subprocess.run(["git"] + list(args), cwd=cwd, env=e, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        raise RuntimeError("git %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return r


def parse_trailers(message):
    """(key, value) pairs of the message's last paragraph when every line of it is "Key: value"."""
    paras = [p for p in message.strip("\n").split("\n\n") if p.strip()]
    if len(paras) < 2:
        return []
    out = []
    for line in paras[-1].split("\n"):
        k, sep, v = line.partition(": ")
        if not sep or not k or " " in k:
            return []
        out.append((k, v))
    return out


class GitServer:
    def __init__(self, user="capstan", password=None, tls=False, cert_san="DNS:localhost,IP:127.0.0.1"):
        if not os.path.exists(LIGHTTPD):
            raise RuntimeError("lighttpd is not installed (apt-get install lighttpd)")
        self.root = tempfile.mkdtemp(prefix="capstan-git-")
        self.repos = os.path.join(self.root, "repos")
        self.www = os.path.join(self.root, "www")
        self.tmp = os.path.join(self.root, "tmp")
        for d in (self.repos, self.www, self.tmp):
            os.makedirs(d)
        self.user = user
        self.password = password or "pw-" + secrets.token_hex(12)
        self.tls = tls
        self.cert_san = cert_san
        self.ca_file = None
        self.port = free_port()
        self.proc = None
        with open(os.path.join(self.root, "users"), "w") as f:
            f.write("%s:%s\n" % (self.user, self.password))
        os.chmod(os.path.join(self.root, "users"), 0o600)
        if tls:
            self._make_certs()
        self._write_config()
        self.start()

    # --- set-up ---

    def _make_certs(self):
        d = self.root
        def run(*a):
            r = subprocess.run(["openssl"] + list(a), cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if r.returncode != 0:
                raise RuntimeError("openssl %s failed: %s" % (a[0], r.stderr.decode()))
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=capstan test CA",
            "-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % self.cert_san +
                    "basicConstraints=CA:FALSE\n")
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
            "-out", "server.csr")
        run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")
        self.ca_file = os.path.join(d, "ca.pem")

    def _write_config(self):
        modules = ["mod_alias", "mod_setenv", "mod_auth", "mod_authn_file", "mod_cgi", "mod_accesslog"]
        if self.tls:
            modules.append("mod_openssl")
        conf = """
server.modules = ( %(modules)s )
server.document-root = "%(www)s"
server.bind = "127.0.0.1"
server.port = %(port)d
server.errorlog = "%(root)s/error.log"
accesslog.filename = "%(root)s/access.log"
server.upload-dirs = ( "%(tmp)s" )
server.max-request-size = 262144
server.max-connections = 256
alias.url = ( "/git" => "%(backend)s" )
$HTTP["url"] =~ "^/git" {
    cgi.assign = ( "" => "" )
    setenv.set-environment = (
        "GIT_PROJECT_ROOT" => "%(repos)s",
        "GIT_HTTP_EXPORT_ALL" => "1",
        "GIT_CONFIG_NOSYSTEM" => "1",
        "HOME" => "%(root)s"
    )
}
auth.backend = "plain"
auth.backend.plain.userfile = "%(root)s/users"
auth.require = ( "/git" => ( "method" => "basic", "realm" => "git", "require" => "valid-user" ) )
""" % {"modules": ", ".join('"%s"' % m for m in modules), "www": self.www, "port": self.port,
       "root": self.root, "tmp": self.tmp, "backend": HTTP_BACKEND, "repos": self.repos}
        if self.tls:
            conf += 'ssl.engine = "enable"\nssl.pemfile = "%s/server.pem"\nssl.privkey = "%s/server.key"\n' % (
                self.root, self.root)
        self.conf = os.path.join(self.root, "lighttpd.conf")
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self, timeout=15):
        with open(os.path.join(self.root, "stderr.log"), "ab") as err:
            self.proc = subprocess.Popen([LIGHTTPD, "-D", "-f", self.conf], stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("lighttpd exited with %d: %s" % (self.proc.returncode, self.errors()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("lighttpd did not start listening: " + self.errors())

    def errors(self):
        out = ""
        for name in ("stderr.log", "error.log"):
            try:
                with open(os.path.join(self.root, name), errors="replace") as f:
                    out += f.read()[-3000:]
            except OSError:
                pass
        return out

    def add_user(self, user, password):
        """Adds a basic-auth user (lighttpd rereads the plain user file on each request)."""
        with open(os.path.join(self.root, "users"), "a") as f:
            f.write("%s:%s\n" % (user, password))

    def set_password(self, user, password):
        """Gives user a new password (the old one is refused from the next request on)."""
        path = os.path.join(self.root, "users")
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if l and l.split(":", 1)[0] != user]
        lines.append("%s:%s" % (user, password))
        with open(path + ".new", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path + ".new", 0o600)
        os.replace(path + ".new", path)
        if user == self.user:
            self.password = password

    def halt(self):
        """Stops lighttpd (connections to the port are then refused) and keeps the repositories
        and logs; resume() serves them again on the same port."""
        self._terminate()
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                time.sleep(0.05)
            except OSError:
                return

    def resume(self, timeout=15):
        """Starts lighttpd again after halt(), on the same port with the same repositories."""
        return self.start(timeout)

    def access_log(self):
        """The requests lighttpd served, oldest first: dicts user, time (a string with a second's
        precision), method, path, status (lighttpd's default access log format). lighttpd
        buffers its access log; a running server is asked to write it out first (SIGHUP)."""
        out = []
        path = os.path.join(self.root, "access.log")
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)
            size, deadline = -1, time.time() + 3
            while time.time() < deadline:  # until the file stops growing
                time.sleep(0.1)
                now = os.path.getsize(path) if os.path.exists(path) else 0
                if now == size:
                    break
                size = now
        try:
            with open(path, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return out
        for line in lines:
            # HOST VHOST USER [TIME] "METHOD PATH PROTO" STATUS BYTES ...
            m = re.match(r'^\S+ \S+ (\S+) \[([^\]]*)\] "(\S+) (\S+)[^"]*" (\d{3}) ', line)
            if m:
                out.append({"user": m.group(1), "time": m.group(2), "method": m.group(3),
                            "path": m.group(4), "status": int(m.group(5))})
        return out

    def _terminate(self):
        """Stops lighttpd: SIGTERM, then SIGKILL after 10 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self):
        self._terminate()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # --- repositories ---

    def path(self, name):
        return os.path.join(self.repos, name + ".git")

    def create_bare(self, name, branch="main"):
        p = self.path(name)
        git("init", "-q", "--bare", "-b", branch, p)
        git("--git-dir", p, "config", "http.receivepack", "true")
        return p

    def url(self, name, with_credentials=False, host="127.0.0.1"):
        scheme = "https" if self.tls else "http"
        auth = ""
        if with_credentials:
            auth = "%s:%s@" % (urllib.parse.quote(self.user, safe=""), urllib.parse.quote(self.password, safe=""))
        return "%s://%s%s:%d/git/%s.git" % (scheme, auth, host, self.port, name)

    def git(self, name, *args, check=True):
        """Runs git on the bare repository itself (no network); returns stdout as text."""
        return git("--git-dir", self.path(name), *args, check=check).stdout.decode(errors="replace")

    def tip(self, name, branch="main"):
        r = git("--git-dir", self.path(name), "rev-parse", "-q", "--verify", "refs/heads/" + branch, check=False)
        return r.stdout.decode().strip() if r.returncode == 0 else None

    def log(self, name, branch="main"):
        """Commits of branch, newest first: dicts sha, parents, author, email, committer, message,
        subject, trailers ([(key, value)])."""
        if not self.tip(name, branch):
            return []
        out = self.git(name, "log", "--format=%H%x00%P%x00%an%x00%ae%x00%cn%x00%B%x1e", "refs/heads/" + branch)
        commits = []
        for rec in out.split("\x1e"):
            rec = rec.lstrip("\n")
            if not rec:
                continue
            sha, parents, an, ae, cn, msg = rec.split("\x00", 5)
            commits.append({"sha": sha, "parents": parents.split(), "author": an, "email": ae,
                            "committer": cn, "message": msg, "subject": msg.split("\n", 1)[0],
                            "trailers": parse_trailers(msg)})
        return commits

    def show(self, name, path, ref="main"):
        r = git("--git-dir", self.path(name), "show", "%s:%s" % (ref, path), check=False)
        return r.stdout.decode(errors="replace") if r.returncode == 0 else None

    def ls(self, name, ref="main"):
        if not self.tip(name, ref):
            return []
        return [p for p in self.git(name, "ls-tree", "-r", "--name-only", ref).split("\n") if p]

    def clone(self, name, dest):
        """A working clone over HTTP (exercises the server as an ordinary git client would)."""
        git("clone", "-q", self.url(name, with_credentials=True), dest,
            env={"GIT_SSL_CAINFO": self.ca_file} if self.ca_file else None)
        return dest

    def commit_files(self, name, files, message="external change", branch="main"):
        """Pushes a commit writing files ({path: text}) through HTTP as another writer would."""
        work = tempfile.mkdtemp(prefix="capstan-git-work-")
        try:
            env = {"GIT_SSL_CAINFO": self.ca_file} if self.ca_file else None
            git("clone", "-q", self.url(name, with_credentials=True), work, env=env)
            for p, text in files.items():
                full = os.path.join(work, p)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "w") as f:
                    f.write(text)
            git("-C", work, "add", "-A")
            git("-C", work, "-c", "user.name=Other", "-c", "user.email=other@example.com", "commit", "-q",
                "-m", message)
            git("-C", work, "push", "-q", "origin", "HEAD:refs/heads/" + branch, env=env)
            return git("-C", work, "rev-parse", "HEAD").stdout.decode().strip()
        finally:
            shutil.rmtree(work, ignore_errors=True)


SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def ssh_available():
    return os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None and os.geteuid() == 0


class SshServer:
    """A private sshd on a free loopback port. The current user logs in with self.key (an ECDSA
    key in PEM form, which libssh2 reads); repositories live under self.repos."""

    def __init__(self, key_passphrase=""):
        if not ssh_available():
            raise RuntimeError("sshd is not installed or we are not root")
        self.root = tempfile.mkdtemp(prefix="capstan-ssh-")
        self.repos = os.path.join(self.root, "repos")
        os.makedirs(self.repos)
        self.port = free_port()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.host_key = os.path.join(self.root, "host_ed25519")
        self.key = os.path.join(self.root, "client_ecdsa")
        self.other_key = os.path.join(self.root, "other_ecdsa")
        self.passphrase = key_passphrase
        self._keygen("-t", "ed25519", "-f", self.host_key, "-N", "")
        self._keygen("-t", "ecdsa", "-b", "256", "-m", "PEM", "-f", self.key, "-N", key_passphrase)
        self._keygen("-t", "ecdsa", "-b", "256", "-m", "PEM", "-f", self.other_key, "-N", "")
        shutil.copy(self.key + ".pub", os.path.join(self.root, "authorized_keys"))
        with open(self.host_key + ".pub") as f:
            kind, blob = f.read().split()[:2]
        self.known_hosts = os.path.join(self.root, "known_hosts")
        with open(self.known_hosts, "w") as f:
            f.write("# capstan test\n[127.0.0.1]:%d %s %s\n" % (self.port, kind, blob))
        self.hashed_known_hosts = os.path.join(self.root, "known_hosts_hashed")
        shutil.copy(self.known_hosts, self.hashed_known_hosts)
        self._keygen("-H", "-f", self.hashed_known_hosts)
        wrong = os.path.join(self.root, "wrong_host")
        self._keygen("-t", "ed25519", "-f", wrong, "-N", "")
        with open(wrong + ".pub") as f:
            kind, blob = f.read().split()[:2]
        self.wrong_known_hosts = os.path.join(self.root, "known_hosts_wrong")
        with open(self.wrong_known_hosts, "w") as f:
            f.write("[127.0.0.1]:%d %s %s\n" % (self.port, kind, blob))
        conf = os.path.join(self.root, "sshd_config")
        with open(conf, "w") as f:
            f.write("""Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s/sshd.pid
AuthorizedKeysFile %s/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
LogLevel VERBOSE
""" % (self.port, self.host_key, self.root, self.root))
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation folder
        self.log = os.path.join(self.root, "sshd.log")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", conf], stdout=log, stderr=log)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sshd exited: " + open(self.log, errors="replace").read()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def _keygen(self, *args):
        r = subprocess.run(["ssh-keygen", "-q"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError("ssh-keygen failed: " + r.stderr.decode())

    def create_bare(self, name, branch="main"):
        p = os.path.join(self.repos, name + ".git")
        git("init", "-q", "--bare", "-b", branch, p)
        return p

    def url(self, name, scp=False):
        p = os.path.join(self.repos, name + ".git")
        return "ssh://%s@127.0.0.1:%d%s" % (self.user, self.port, p)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
