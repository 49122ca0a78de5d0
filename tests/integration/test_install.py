# ctest: timeout=900
"""The container image without a container engine: runs the build stage's cmake commands of
deploy/Dockerfile natively (a fresh Release build, `cmake --install` into a staging folder), then
checks that the runtime stage's COPY lines take exactly what that install produced, that the
runtime stage's Debian packages provide every library the binary links against, and that the
installed binary, laid out as the runtime stage lays it out, starts against a real database and
passes the image's HEALTHCHECK (/healthz). The Kubernetes manifests: test_deploy.py."""
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest

import harness
from deployfiles import DOCKERFILE, SRC, apt_packages, copy_args, dockerfile_stages


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stages = dockerfile_stages(DOCKERFILE)
        cls.build = [s for s in cls.stages if s["name"] == "build"][0]
        cls.runtime = cls.stages[-1]
        cls.tmp = tempfile.mkdtemp(prefix="capstan-install-")
        cls.paths = {"/src": SRC, "/build": os.path.join(cls.tmp, "build"),
                     "/staging": os.path.join(cls.tmp, "staging")}
        # the build stage's commands, with the image's folders mapped to temporary ones
        cls.commands = []
        for kw, args in cls.build["instructions"]:
            if kw == "RUN" and re.match(r"^(\w+=\S+\s+)*cmake\s", args):
                cmd = args
                for k, v in cls.paths.items():
                    cmd = re.sub(re.escape(k) + r"(?=[/\s]|$)", v, cmd)
                cmd = cmd.replace('"$(nproc)"', "2").replace("$(nproc)", "2")
                cls.commands.append(cmd)
        for cmd in cls.commands:
            r = subprocess.run(["bash", "-ec", cmd], cwd=cls.tmp, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            if r.returncode != 0:
                raise RuntimeError("build step failed: %s\n%s" % (cmd, r.stdout[-4000:]))
        cls.staged = set()
        for root, dirs, files in os.walk(cls.paths["/staging"]):
            for f in files:
                cls.staged.add("/" + os.path.relpath(os.path.join(root, f), cls.paths["/staging"]))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def runtime_env(self):
        env = {}
        for kw, args in self.runtime["instructions"]:
            if kw == "ENV":
                for part in shlex.split(args):
                    k, _, v = part.partition("=")
                    env[k] = v
        return env

    def test_stages(self):
        self.assertEqual(self.build["base"], "debian:bookworm")
        self.assertRegex(self.runtime["base"], r"^debian:bookworm(-slim)?$")
        self.assertEqual(len(self.commands), 3, self.commands)
        self.assertIn("cmake --install", self.commands[-1])
        self.assertIn("-DBUILD_TESTING=OFF", self.commands[0])
        # the build stage's packages are the ones this machine built with
        build_pkgs = [p for kw, a in self.build["instructions"] if kw == "RUN" for p in apt_packages(a)]
        self.assertIn("libgit2-dev", build_pkgs)
        for pkg in build_pkgs:
            r = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", pkg], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
            self.assertIn("install ok installed", r.stdout, pkg)
        kws = [kw for kw, _ in self.runtime["instructions"]]
        user = [a for kw, a in self.runtime["instructions"] if kw == "USER"]
        self.assertEqual(len(user), 1)
        uid = user[0].split(":")[0]
        self.assertTrue(uid.isdigit() and int(uid) > 0, "the runtime user must be a numeric non-root uid")
        self.assertLess(kws.index("COPY"), kws.index("USER"))
        hc = [a for kw, a in self.runtime["instructions"] if kw == "HEALTHCHECK"]
        self.assertEqual(len(hc), 1)
        self.assertIn("/healthz", hc[0])
        env = self.runtime_env()
        port = env["CAPSTAN_LISTEN"].rsplit(":", 1)[1]
        self.assertIn(["EXPOSE", port], [[kw, a] for kw, a in self.runtime["instructions"]])
        self.assertIn(":%s/healthz" % port, hc[0])
        self.assertEqual(env["CAPSTAN_DATA_DIR"], [a for kw, a in self.runtime["instructions"] if kw == "WORKDIR"][0])
        ep = json.loads([a for kw, a in self.runtime["instructions"] if kw == "ENTRYPOINT"][0])
        self.assertIn(ep[0], self.staged)
        # every build-stage COPY source exists and is let through by the .dockerignore
        with open(DOCKERFILE + ".dockerignore") as f:
            rules = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        self.assertEqual(rules[0], "*")
        allowed = [r[1:].rstrip("/") for r in rules[1:] if r.startswith("!")]
        for kw, args in self.build["instructions"]:
            if kw == "COPY":
                _, srcs, _ = copy_args(args)
                for s in srcs:
                    self.assertTrue(os.path.exists(os.path.join(SRC, s)), s)
                    self.assertIn(s.rstrip("/"), allowed, "%s is excluded from the build context" % s)

    def runtime_layout(self):
        """{path in the image: path in staging} of the runtime stage's COPY --from=build lines."""
        layout = {}
        for kw, args in self.runtime["instructions"]:
            if kw != "COPY":
                continue
            frm, srcs, dest = copy_args(args)
            self.assertEqual(frm, "build", "the runtime stage copies only from the build stage: %s" % args)
            for s in srcs:
                self.assertTrue(s.startswith("/staging/"), s)
                inside = s[len("/staging"):]
                if s.endswith("/"):
                    matched = [p for p in self.staged if p.startswith(inside)]
                    self.assertTrue(matched, "COPY %s takes nothing" % s)
                    for p in matched:
                        target = dest.rstrip("/") + "/" + p[len(inside):]
                        self.assertNotIn(target, layout, "%s copied twice" % target)
                        layout[target] = p
                else:
                    self.assertIn(inside, self.staged, "COPY %s: the install made no such file" % s)
                    target = dest if not dest.endswith("/") else dest + os.path.basename(inside)
                    self.assertNotIn(target, layout)
                    layout[target] = inside
        return layout

    def test_runtime_copies_exactly_the_install(self):
        layout = self.runtime_layout()
        self.assertEqual(set(layout.values()), self.staged,
                         "installed but not copied: %s" % sorted(self.staged - set(layout.values())))
        for target, staged in layout.items():
            self.assertEqual(target, staged, "the image puts %s at %s" % (staged, target))
        for must in ("/usr/bin/capstan", "/usr/share/capstan/openapi.yaml"):
            self.assertIn(must, layout)
        for folder in ("migrations", "templates"):
            want = sorted(os.listdir(os.path.join(SRC, folder)))
            got = sorted(p.rsplit("/", 1)[1] for p in layout if p.startswith("/usr/share/capstan/%s/" % folder))
            self.assertEqual(got, want, folder)
            for name in want:
                with open(os.path.join(SRC, folder, name), "rb") as a, \
                        open(self.paths["/staging"] + "/usr/share/capstan/%s/%s" % (folder, name), "rb") as b:
                    self.assertEqual(a.read(), b.read(), name)

    def test_runtime_packages_provide_the_libraries(self):
        binary = self.paths["/staging"] + "/usr/bin/capstan"
        out = subprocess.run(["readelf", "-d", binary], stdout=subprocess.PIPE, text=True, check=True).stdout
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
        self.assertTrue(needed, out)
        ldd = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, text=True, check=True).stdout
        where = dict(re.findall(r"^\s*(\S+) => (/\S+)", ldd, re.M))
        pkgs = [p for kw, a in self.runtime["instructions"] if kw == "RUN" for p in apt_packages(a)]
        self.assertIn("ca-certificates", pkgs)
        used = set()
        for so in needed:
            path = os.path.realpath(where[so])
            owner = None
            for cand in (path, "/usr" + path if not path.startswith("/usr/") else path[4:]):
                r = subprocess.run(["dpkg", "-S", cand], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                if r.returncode == 0:
                    owner = r.stdout.split(":")[0]
                    break
            self.assertIsNotNone(owner, "no Debian package owns %s" % path)
            if owner == "libc6":
                continue  # in every Debian image
            self.assertIn(owner, pkgs, "%s (%s) is not installed by the runtime stage" % (so, owner))
            used.add(owner)
        stale = [p for p in pkgs if p.startswith("lib") and p not in used]
        self.assertEqual(stale, [], "runtime packages no library of the binary comes from")

    def test_installed_binary_serves(self):
        layout = self.runtime_layout()
        root = os.path.join(self.tmp, "root")
        for target, staged in layout.items():
            dst = root + target
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(self.paths["/staging"] + staged, dst)
        binary = root + "/usr/bin/capstan"
        v = subprocess.run([binary, "version"], stdout=subprocess.PIPE, text=True, check=True).stdout
        with open(os.path.join(SRC, "CMakeLists.txt")) as f:
            version = re.search(r"project\(capstan VERSION ([0-9.]+)", f.read()).group(1)
        self.assertEqual(v.strip(), "capstan " + version)

        pg = harness.shared_postgres()
        db = pg.create_db()
        data = os.path.join(self.tmp, "emptydir")  # what the pod's emptyDir is
        os.makedirs(data)
        port = harness.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAPSTAN_")}
        env.update(self.runtime_env())
        env.update({"CAPSTAN_LISTEN": "127.0.0.1:%d" % port, "CAPSTAN_DATA_DIR": data,
                    "CAPSTAN_DATABASE_URL": pg.url(db), "CAPSTAN_ADMIN_TOKEN": harness.ADMIN_TOKEN})
        log = open(os.path.join(self.tmp, "capstan.log"), "wb")
        # from an unrelated folder: nothing is read from the source or build tree
        p = subprocess.Popen([binary] + json.loads([a for kw, a in self.runtime["instructions"] if kw == "CMD"][0]),
                             env=env, cwd=data, stdout=log, stderr=subprocess.STDOUT)
        try:
            hc = [a for kw, a in self.runtime["instructions"] if kw == "HEALTHCHECK"][0]
            cmd = json.loads(hc[hc.index("CMD") + 3:].strip())
            cmd = [c.replace("127.0.0.1:8080", "127.0.0.1:%d" % port) for c in cmd]
            harness.wait_until(lambda: subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0,
                               60, 0.2, "the image's health check to pass")
            r = harness.request(port, "GET", "/readyz", token=None)
            self.assertEqual(r.status, 200, r)  # migrations applied from the embedded copies
            r = harness.request(port, "GET", "/metrics", token=None)
            self.assertIn('capstan_build_info{version="%s"} 1' % version, r.raw.decode())
        finally:
            p.terminate()
            rc = p.wait(30)
            log.close()
        self.assertEqual(rc, 0)
        with open(os.path.join(self.tmp, "capstan.log")) as f:
            lines = f.read().splitlines()
        self.assertTrue(all(l.startswith("{") for l in lines), lines[:3])  # CAPSTAN_LOG_FORMAT=json


if __name__ == "__main__":
    unittest.main(verbosity=2)
