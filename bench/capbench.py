#!/usr/bin/env python3
"""capstan benchmarks: check the timing goals of bench/README.md against the real binary.

Run through bench/run (which builds a Release binary first):

    bench/run [--quick] [--only http,jobs,sse,recovery,gitops,engine] [--no-git-server] [--keep]

Everything runs on this machine: a private PostgreSQL (tests/integration/harness.py), the
capstan binary (--bin), local bare fleet repositories and a Git server (git http-backend behind
lighttpd, tests/integration/gitserver.py). Load comes from wrk (bench/wrk.lua) for HTTP and from
Python threads for jobs and event streams. The program prints a table per benchmark and one
PASS/FAIL line per goal, and writes bench/results/<date>[-quick].json and .md. It exits 0 when
every goal passed, 1 when one failed, 2 when the benchmark itself could not run.

Only the Python standard library is used.
"""
import argparse
import datetime
import hashlib
import http.client
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))

import gitserver  # noqa: E402
import harness  # noqa: E402

WRK_LUA = os.path.join(HERE, "wrk.lua")
FINAL = ("succeeded", "failed", "cancelled")
TOKEN = harness.ADMIN_TOKEN

# Settings every capstan of the benchmarks gets: no rate limits and no per-address connection
# cap (all load comes from 127.0.0.1), logs at info. Settings an older binary does not know
# are environment variables it ignores.
BASE_ENV = {
    "CAPSTAN_RATE_LIMIT": "0",
    "CAPSTAN_ANON_RATE_LIMIT": "0",
    "CAPSTAN_MAX_CLIENT_CONNECTIONS": "0",
    "CAPSTAN_LOG_LEVEL": "info",
}


# ---------------------------------------------------------------- small helpers

def pct(values, p):
    """The p-th percentile (nearest rank) of values, or None when there are none."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def ms(x):
    return None if x is None else round(x * 1000.0, 2)


def parse_time(s):
    """RFC 3339 (as capstan writes it: 2026-11-26T18:39:41.683Z) -> seconds since the epoch."""
    if s is None:
        return None
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def log(msg):
    print(msg, flush=True)


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        v = ("%.1f" % v) if abs(v) >= 100 else ("%.2f" % v)
    return "%s%s" % (v, unit)


def table(headers, rows):
    """Text table (also valid Markdown)."""
    cells = [[str(h) for h in headers]] + [[fmt(c) if not isinstance(c, str) else c for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for n, r in enumerate(cells):
        out.append("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


class Client:
    """One keep-alive HTTP connection to capstan (not thread safe: one per thread)."""

    def __init__(self, port, timeout=120, idempotency=True):
        self.port = port
        self.timeout = timeout
        self.idempotency = idempotency
        self.conn = None

    def call(self, method, path, body=None, headers=None):
        """(status, decoded JSON body or None). POSTs carry an Idempotency-Key (unless
        idempotency=False), so a request repeated after a dropped keep-alive connection cannot
        make a second job."""
        h = {"Authorization": "Bearer " + TOKEN}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
            if method == "POST" and self.idempotency:
                h["Idempotency-Key"] = uuid.uuid4().hex
        if headers:
            h.update(headers)
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                payload = r.read()
                if (r.getheader("Connection") or "").lower() == "close":
                    self.close()
                js = None
                if payload and "json" in (r.getheader("Content-Type") or ""):
                    js = json.loads(payload)
                return r.status, js
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


def parallel(n_threads, items, fn):
    """Calls fn(client_index, item) for every item from n_threads threads; returns the results
    in item order. The first exception is raised again."""
    results = [None] * len(items)
    lock = threading.Lock()
    nxt = [0]
    errors = []

    def run(k):
        while True:
            with lock:
                if errors or nxt[0] >= len(items):
                    return
                i = nxt[0]
                nxt[0] += 1
            try:
                results[i] = fn(k, items[i])
            except Exception as e:  # noqa: BLE001 (reported below)
                with lock:
                    errors.append(e)
                return
    ts = [threading.Thread(target=run, args=(k,)) for k in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return results


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def proc_threads(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid, children=False):
    """CPU seconds of a process (with children=True also of its waited-for children)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t / TICK


def machine_busy():
    """CPU seconds the whole machine spent not idle since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TICK


class CpuMeter:
    """Where the CPU time of a benchmark went: capstan processes, the PostgreSQL server, the Git
    server, this program with its wrk and psql children, and everything else on the machine
    (other work that disturbs the measurement)."""

    def __init__(self, bench, apps):
        self.bench = bench
        self.apps = apps
        self.t0 = None

    def snap(self):
        pg = self.bench.pg
        pm = None
        try:
            with open(os.path.join(pg.data, "postmaster.pid")) as f:
                pm = int(f.readline())
        except (OSError, ValueError):
            pass
        pg_cpu = 0.0
        if pm:
            pg_cpu = proc_cpu(pm, children=True)
            for d in os.listdir("/proc"):
                if d.isdigit():
                    try:
                        with open("/proc/%s/stat" % d) as f:
                            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    except (OSError, IndexError, ValueError):
                        continue
                    if ppid == pm:
                        pg_cpu += proc_cpu(int(d))
        gs = self.bench.gs
        t = os.times()
        return {"wall": time.time(), "machine": machine_busy(),
                "capstan": sum(proc_cpu(a.proc.pid) for a in self.apps if a.proc and a.proc.poll() is None),
                "postgres": pg_cpu,
                "gitserver": proc_cpu(gs.proc.pid, children=True) if gs and gs.proc else 0.0,
                "bench": t.user + t.system + t.children_user + t.children_system}

    def start(self):
        self.t0 = self.snap()
        return self

    def stop(self):
        """Cores used on average since start(), per part."""
        t1 = self.snap()
        wall = max(1e-6, t1["wall"] - self.t0["wall"])
        out = {k: round((t1[k] - self.t0[k]) / wall, 2) for k in t1 if k != "wall"}
        out["other"] = round(out["machine"] - sum(out[k] for k in ("capstan", "postgres", "gitserver", "bench")), 2)
        out["seconds"] = round(wall, 2)
        return out


# ---------------------------------------------------------------- the set-up

class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.tmp = tempfile.mkdtemp(prefix="capstan-bench-")
        harness.LOG_DIR = os.path.join(self.tmp, "logs")
        # run a private copy: a build into the same folder during the run must not change the
        # binary half way through
        self.bin = os.path.join(self.tmp, "capstan")
        shutil.copy2(args.bin, self.bin)
        harness.CAPSTAN_BIN = self.bin
        self.pg = None
        self.gs = None
        self.apps = []
        self.results = {}
        self.goals = []
        self.reports = []

    # --- processes ---

    def start(self):
        self.pg = harness.Postgres()  # its own temporary folder, removed by destroy()
        self.pg.start()
        if not self.args.no_git_server:
            self.gs = gitserver.GitServer()

    def close(self):
        for app in self.apps:
            try:
                app.kill()
                app.cleanup()
            except Exception:  # noqa: BLE001
                pass
        if self.gs:
            self.gs.stop()
        if self.pg:
            self.pg.destroy()
        if self.args.keep:
            log("kept logs in %s" % harness.LOG_DIR)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def fleet_repo(self, kind, name):
        """(url, env) of a new empty fleet repository: a local bare one or one on the Git server."""
        if kind == "git":
            self.gs.create_bare(name)
            return self.gs.url(name), {"CAPSTAN_GIT_USERNAME": self.gs.user,
                                       "CAPSTAN_GIT_PASSWORD": self.gs.password}
        path = os.path.join(self.tmp, "repos", name + ".git")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", path], check=True)
        return path, {}

    def repo_git(self, kind, name, *args):
        gd = self.gs.path(name) if kind == "git" else os.path.join(self.tmp, "repos", name + ".git")
        r = subprocess.run(["git", "--git-dir", gd] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        return r.stdout if r.returncode == 0 else ""

    def commit_count(self, kind, name):
        out = self.repo_git(kind, name, "rev-list", "--count", "main").strip()
        return int(out) if out else 0

    def trailers(self, kind, name):
        out = self.repo_git(kind, name, "log", "--format=%B", "main")
        ids = {}
        for line in out.splitlines():
            if line.startswith("Capstan-Job: "):
                j = line.split(": ", 1)[1].strip()
                ids[j] = ids.get(j, 0) + 1
        return ids

    def capstan(self, db, env, name):
        e = dict(BASE_ENV)
        e.update(env)
        app = harness.Capstan(self.pg.url(db), env=e, name=name)
        app.start()
        self.apps.append(app)
        return app

    def stop(self, app):
        try:
            app.stop()
        finally:
            app.cleanup()

    def drop_db(self, db):
        """Drops a finished benchmark's database, so that autovacuum on it does not run during the
        next benchmark."""
        try:
            self.pg.psql('DROP DATABASE "%s"' % db)
        except RuntimeError as e:
            log("  could not drop database %s: %s" % (db, e))

    # --- goals and reports ---

    def goal(self, bench, text, value, op, limit, unit=""):
        ok = value is not None and ((value < limit) if op == "<" else (value <= limit) if op == "<=" else
                                    (value >= limit) if op == ">=" else (value == limit))
        g = {"benchmark": bench, "goal": text, "value": value, "op": op, "limit": limit, "unit": unit,
             "pass": bool(ok)}
        self.goals.append(g)
        log("  %s  %s: %s %s (limit %s %s%s)" % ("PASS" if ok else "FAIL", text, fmt(value), unit, op,
                                                 fmt(limit), unit))
        return ok

    def report(self, title, headers, rows):
        t = "### %s\n\n%s\n" % (title, table(headers, rows))
        self.reports.append(t)
        log("\n" + t)

    # --- wrk ---

    def wrk(self, port, path, conns, seconds, method="GET", body=None, prefix="w", rng=1):
        env = dict(os.environ)
        env.update({"BENCH_METHOD": method, "BENCH_PATH": path, "BENCH_RANGE": str(rng),
                    "BENCH_PREFIX": prefix})
        if body is not None:
            env["BENCH_BODY"] = json.dumps(body)
        else:
            env.pop("BENCH_BODY", None)
        cmd = ["wrk", "-t%d" % min(2, conns), "-c%d" % conns, "-d%ds" % seconds, "--timeout", "10s",
               "-s", WRK_LUA, "-H", "Authorization: Bearer " + TOKEN]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json"]
        cmd.append("http://127.0.0.1:%d" % port)
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=seconds + 60)
        for line in r.stdout.splitlines():
            if line.startswith("BENCHJSON "):
                res = json.loads(line[len("BENCHJSON "):])
                res["rps"] = res["requests"] / (res["duration_us"] / 1e6) if res["duration_us"] else 0
                res["errors_total"] = sum(res["errors"].values())
                return res
        raise RuntimeError("wrk gave no result (rc %d): %s %s" % (r.returncode, r.stdout[-500:], r.stderr[-500:]))

    # ------------------------------------------------------------ 1. HTTP

    def bench_http(self):
        log("\n== 1. HTTP latency and throughput (wrk; API only: CAPSTAN_WORKERS=0)")
        secs = 3 if self.quick else 10
        n_tenants = 1000
        db = self.pg.create_db()
        app = self.capstan(db, {"CAPSTAN_WORKERS": "0"}, "http")
        t0 = time.time()

        def seed(k, i):
            st, js = clients[k].call("POST", "/api/v1/tenants", harness.tenant_body("s%04d" % i))
            if st != 202:
                raise RuntimeError("seeding tenant %d: %d %r" % (i, st, js))
        clients = [Client(app.port) for _ in range(8)]
        parallel(8, list(range(n_tenants)), seed)
        for c in clients:
            c.close()
        log("seeded %d tenants in %.1fs" % (n_tenants, time.time() - t0))
        body = harness.tenant_body("dry-run")
        cases = [
            ("GET /healthz", "GET", "/healthz", None, 1),
            ("GET /api/v1/tenants/{t}", "GET", "/api/v1/tenants/s%04d", None, n_tenants),
            ("GET /api/v1/tenants?limit=50", "GET", "/api/v1/tenants?limit=50", None, 1),
            ("POST /api/v1/tenants?dryRun=true", "POST", "/api/v1/tenants?dryRun=true", body, 1),
            ("POST /api/v1/tenants (202)", "POST", "/api/v1/tenants", harness.tenant_body("%s"), 1),
        ]
        # a short warm-up (connections, caches, the database's plans)
        self.wrk(app.port, "/api/v1/tenants/s%04d", 2, 1, rng=n_tenants)
        rows, res = [], {}
        for label, method, path, b, rng in cases:
            for conns in (2, 32):
                meter = CpuMeter(self, [app]).start()
                r = self.wrk(app.port, path, conns, secs, method=method, body=b, prefix="p%dt" % conns, rng=rng)
                r["cpu_cores"] = meter.stop()
                r["capstan_cpu_us_per_request"] = round(r["cpu_cores"]["capstan"] * r["cpu_cores"]["seconds"] * 1e6 / max(1, r["requests"]), 1)
                res["%s @%d" % (label, conns)] = r
                lp = r["latency_us"]["p"]
                rows.append([label, conns, round(r["rps"]), lp["50"] / 1000.0, lp["90"] / 1000.0,
                             lp["99"] / 1000.0, lp["99.9"] / 1000.0, r["latency_us"]["max"] / 1000.0,
                             r["errors_total"], r["capstan_cpu_us_per_request"], r["cpu_cores"]["other"]])
        written = int(self.pg.psql("SELECT count(*) FROM tenants", db)) - n_tenants
        self.stop(app)
        self.drop_db(db)
        self.results["http"] = {"seconds_per_run": secs, "tenants": n_tenants, "runs": res,
                                "tenants_written": written}
        self.report("1. HTTP (wrk, %d s per run, %d tenants, API only)" % (secs, n_tenants),
                    ["request", "conns", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors",
                     "capstan CPU us/req", "other load (cores)"],
                    rows)

        def p99(label, c):
            return res["%s @%d" % (label, c)]["latency_us"]["p"]["99"] / 1000.0

        def rps(label, c):
            return res["%s @%d" % (label, c)]["rps"]
        b = "http"
        self.goal(b, "GET /healthz p99 at 2 connections", p99("GET /healthz", 2), "<", 5, " ms")
        self.goal(b, "GET /healthz throughput at 32 connections", rps("GET /healthz", 32), ">=", 10000, " req/s")
        self.goal(b, "GET tenant p99 at 2 connections", p99("GET /api/v1/tenants/{t}", 2), "<", 10, " ms")
        self.goal(b, "GET tenant p99 at 32 connections", p99("GET /api/v1/tenants/{t}", 32), "<", 50, " ms")
        self.goal(b, "GET tenant throughput at 32 connections", rps("GET /api/v1/tenants/{t}", 32), ">=", 2000, " req/s")
        self.goal(b, "list 50 of 1000 tenants p99 at 2 connections", p99("GET /api/v1/tenants?limit=50", 2), "<", 25, " ms")
        self.goal(b, "list 50 of 1000 tenants p99 at 32 connections", p99("GET /api/v1/tenants?limit=50", 32), "<", 100, " ms")
        self.goal(b, "dry run (render) p99 at 2 connections", p99("POST /api/v1/tenants?dryRun=true", 2), "<", 25, " ms")
        self.goal(b, "dry run (render) p99 at 32 connections", p99("POST /api/v1/tenants?dryRun=true", 32), "<", 100, " ms")
        self.goal(b, "tenant create 202 p99 at 2 connections", p99("POST /api/v1/tenants (202)", 2), "<", 25, " ms")
        self.goal(b, "tenant create 202 p99 at 32 connections", p99("POST /api/v1/tenants (202)", 32), "<", 100, " ms")
        self.goal(b, "tenant create throughput at 32 connections", rps("POST /api/v1/tenants (202)", 32), ">=", 500, " req/s")
        self.goal(b, "HTTP errors (non-2xx, socket errors, timeouts) in all runs",
                  sum(r["errors_total"] for r in res.values()), "==", 0)

    # ------------------------------------------------------------ 2. jobs

    def wait_jobs_final(self, db, app, timeout):
        """Waits until no job of db is queued or running. Asks capstan (two cheap list calls) every
        0.2 s, and the database once at the end: a psql per poll would start a backend each time
        and add its CPU to PostgreSQL's share."""
        deadline = time.time() + timeout
        c = Client(app.port)
        try:
            while time.time() < deadline:
                busy = False
                for state in ("queued", "running"):
                    st, js = c.call("GET", "/api/v1/jobs?limit=1&state=" + state)
                    if st != 200 or js["items"]:
                        busy = True
                        break
                if not busy and int(self.pg.psql(
                        "SELECT count(*) FROM jobs WHERE state NOT IN ('succeeded','failed','cancelled')", db)) == 0:
                    return True
                time.sleep(0.2)
            return False
        finally:
            c.close()

    def list_jobs(self, client, kind="tenant.create"):
        out, cursor = {}, None
        while True:
            path = "/api/v1/jobs?limit=500&kind=" + kind + ("&cursor=" + cursor if cursor else "")
            st, js = client.call("GET", path)
            if st != 200:
                raise RuntimeError("GET %s: %d %r" % (path, st, js))
            for j in js["items"]:
                out[j["id"]] = j
            cursor = js.get("nextCursor")
            if not cursor:
                return out

    def job_run(self, kind, workers, n, idle_n):
        name = "fleet-%s-w%d" % (kind, workers)
        db = self.pg.create_db()
        url, env = self.fleet_repo(kind, name)
        env.update({"CAPSTAN_FLEET_REPO": url, "CAPSTAN_WORKERS": str(workers)})
        app = self.capstan(db, env, name)
        c = Client(app.port)
        # one job at a time: what a user sees when capstan is idle
        idle = []
        for i in range(idle_n):
            t_send = time.time()
            st, js = c.call("POST", "/api/v1/tenants", harness.tenant_body("idle%02d" % i))
            if st != 202:
                raise RuntimeError("POST: %d %r" % (st, js))
            jid = js["job"]["id"]
            deadline = time.time() + 60
            while True:
                st, j = c.call("GET", "/api/v1/jobs/" + jid)
                if j["state"] in FINAL or time.time() > deadline:
                    break
                time.sleep(0.01)
            if j["state"] != "succeeded":
                raise RuntimeError("idle job %s ended %s: %r" % (jid, j["state"], j.get("error")))
            idle.append(parse_time(j["finishedAt"]) - t_send)
        commits_before = self.commit_count(kind, name)
        # a burst of n tenant creations from 8 client threads
        clients = [Client(app.port) for _ in range(8)]

        def post(k, i):
            t_send = time.time()
            st, js = clients[k].call("POST", "/api/v1/tenants", harness.tenant_body("b%04d" % i))
            t_202 = time.time()
            if st != 202:
                raise RuntimeError("POST: %d %r" % (st, js))
            return (js["job"]["id"], t_send, t_202)
        meter = CpuMeter(self, [app]).start()
        t0 = time.time()
        sent = parallel(8, list(range(n)), post)
        t_accepted = time.time()
        ok = self.wait_jobs_final(db, app, 600)
        cpu = meter.stop()
        jobs = self.list_jobs(c)
        for cl in clients + [c]:
            cl.close()
        self.stop(app)
        self.drop_db(db)
        if not ok:
            raise RuntimeError("jobs of %s did not finish within 600 s" % name)
        done, wait, failed, retried = [], [], 0, 0
        steps = {}
        last = t0
        for jid, t_send, t_202 in sent:
            j = jobs[jid]
            if j["state"] != "succeeded":
                failed += 1
                continue
            if j["attempt"] > 1:
                retried += 1
            fin = parse_time(j["finishedAt"])
            last = max(last, fin)
            done.append(fin - t_send)
            wait.append(parse_time(j["startedAt"]) - parse_time(j["createdAt"]))
            for st in j["steps"]:
                if st.get("startedAt") and st.get("finishedAt"):
                    steps.setdefault(st["name"], []).append(parse_time(st["finishedAt"]) - parse_time(st["startedAt"]))
            steps.setdefault("(whole run)", []).append(parse_time(j["finishedAt"]) - parse_time(j["startedAt"]))
        commits = self.commit_count(kind, name) - commits_before
        tr = self.trailers(kind, name)
        not_once = sum(1 for jid, _, _ in sent if tr.get(jid, 0) != 1)
        accept = [t2 - t1 for _, t1, t2 in sent]
        makespan = last - t0
        return {"repo": kind, "workers": workers, "jobs": n, "failed": failed, "retried": retried,
                "not_exactly_once_on_branch": not_once,
                "idle_done_p50_ms": ms(pct(idle, 50)), "idle_done_p99_ms": ms(pct(idle, 99)),
                "idle_done_max_ms": ms(max(idle) if idle else None),
                "submit_s": round(t_accepted - t0, 3), "accept_p50_ms": ms(pct(accept, 50)),
                "accept_p99_ms": ms(pct(accept, 99)), "makespan_s": round(makespan, 3),
                "jobs_per_s": round(n / makespan, 2) if makespan > 0 else None,
                "done_p50_ms": ms(pct(done, 50)), "done_p99_ms": ms(pct(done, 99)),
                "done_max_ms": ms(max(done) if done else None),
                "queue_wait_p50_ms": ms(pct(wait, 50)), "commits": commits,
                "commits_per_job": round(commits / n, 3), "jobs_per_commit": round(n / commits, 2) if commits else None,
                "step_ms": {k: {"p50": ms(pct(v, 50)), "p99": ms(pct(v, 99))} for k, v in steps.items()},
                "cpu_cores": cpu,
                "capstan_cpu_ms_per_job": round(cpu["capstan"] * cpu["seconds"] * 1000 / n, 2),
                "postgres_cpu_ms_per_job": round(cpu["postgres"] * cpu["seconds"] * 1000 / n, 2)}

    def bench_jobs(self):
        n = 200 if self.quick else 500
        idle_n = 5 if self.quick else 20
        log("\n== 2. Jobs end to end: %d sequential jobs, then a burst of %d tenant creations" % (idle_n, n))
        kinds = ["local"] + ([] if self.gs is None else ["git"])
        runs = []
        for kind in kinds:
            for workers in (1, 8):
                t = time.time()
                r = self.job_run(kind, workers, n, idle_n)
                runs.append(r)
                log("  %s repository, %d worker(s): %.1f jobs/s, p99 done %.0f ms, %d commits (%.1fs)" % (
                    kind, workers, r["jobs_per_s"] or 0, r["done_p99_ms"] or 0, r["commits"], time.time() - t))
        self.results["jobs"] = runs
        self.report("2. Jobs (%d idle one at a time, then a burst of %d tenant creations from 8 clients)" % (idle_n, n),
                    ["repository", "workers", "idle done p50 ms", "idle done p99 ms", "202 p99 ms", "jobs/s",
                     "done p50 ms", "done p99 ms", "queue wait p50 ms", "git-push p50 ms", "commits", "jobs/commit",
                     "failed", "retried", "capstan CPU ms/job", "PG CPU ms/job", "other load (cores)"],
                    [[r["repo"], r["workers"], r["idle_done_p50_ms"], r["idle_done_p99_ms"], r["accept_p99_ms"],
                      r["jobs_per_s"], r["done_p50_ms"], r["done_p99_ms"], r["queue_wait_p50_ms"],
                      r["step_ms"].get("git-push", {}).get("p50"), r["commits"], r["jobs_per_commit"], r["failed"],
                      r["retried"], r["capstan_cpu_ms_per_job"], r["postgres_cpu_ms_per_job"], r["cpu_cores"]["other"]]
                     for r in runs])
        by = {(r["repo"], r["workers"]): r for r in runs}
        b = "jobs"
        self.goal(b, "idle tenant job done after its request, p99, local repository, 8 workers",
                  by[("local", 8)]["idle_done_p99_ms"], "<", 1000, " ms")
        self.goal(b, "burst throughput, local repository, 8 workers", by[("local", 8)]["jobs_per_s"], ">=", 25, " jobs/s")
        self.goal(b, "burst commits per job, local repository, 8 workers (group commit)",
                  by[("local", 8)]["commits_per_job"], "<=", 0.5)
        if ("git", 8) in by:
            self.goal(b, "idle tenant job done after its request, p99, Git server, 8 workers",
                      by[("git", 8)]["idle_done_p99_ms"], "<", 2000, " ms")
            self.goal(b, "burst throughput, Git server, 8 workers", by[("git", 8)]["jobs_per_s"], ">=", 10, " jobs/s")
            self.goal(b, "burst commits per job, Git server, 8 workers (group commit)",
                      by[("git", 8)]["commits_per_job"], "<=", 0.5)
            g1 = by[("git", 1)]["jobs_per_s"] or 0
            self.goal(b, "8 workers over 1 worker, Git server (speed-up)",
                      round(by[("git", 8)]["jobs_per_s"] / g1, 2) if g1 else None, ">=", 2)
        self.goal(b, "jobs failed or not exactly once on the branch (all runs)",
                  sum(r["failed"] + r["not_exactly_once_on_branch"] for r in runs), "==", 0)

    # ------------------------------------------------------------ 3. event streams

    def bench_sse(self):
        n_streams = 200
        secs = 10 if self.quick else 30
        log("\n== 3. %d open event streams on running jobs: API latency meanwhile" % n_streams)
        db = self.pg.create_db()
        url, env = self.fleet_repo("local", "fleet-sse")
        env.update({"CAPSTAN_FLEET_REPO": url})  # default workers, HTTP threads and pool
        app = self.capstan(db, env, "sse")
        c = Client(app.port)
        st, js = c.call("POST", "/api/v1/tenants", harness.tenant_body("probe"))
        probe_job = js["job"]["id"]
        self.wait_jobs_final(db, app, 60)
        mix = "/api/v1/tenants/probe|/api/v1/jobs/%s|/api/v1/jobs?limit=20|/api/v1/tenants?limit=20" % probe_job
        threads0 = proc_threads(app.proc.pid)

        stop = threading.Event()
        lock = threading.Lock()
        # mode "poll": a holder follows its job by GET every second (jobs run, no streams);
        # mode "stream": it follows the job's event stream to `end`
        state = {"mode": "poll", "open": 0, "started": 0, "ended": 0, "bad_end": 0, "events": 0, "errors": 0,
                 "done": 0}
        err_samples = []

        def follow_poll(cl, jid):
            while True:
                st, j = cl.call("GET", "/api/v1/jobs/" + jid)
                if st != 200:
                    raise RuntimeError("GET job %d" % st)
                if j["state"] in FINAL:
                    return
                time.sleep(1)

        def follow_stream(jid):
            s = harness.SSE(app.port, "/api/v1/jobs/%s/events" % jid, timeout=300)
            if s.status != 200:
                s.close()
                raise RuntimeError("events: %d" % s.status)
            with lock:
                state["open"] += 1
                state["started"] += 1
            got_end = False
            try:
                for ev in s.events():
                    with lock:
                        state["events"] += 1
                    if ev.get("event") == "end":
                        got_end = True
                        break
            finally:
                s.close()
                with lock:
                    state["open"] -= 1
                    state["ended"] += 1
                    if not got_end:
                        state["bad_end"] += 1

        def holder(i):
            cl = Client(app.port)
            k = 0
            while not stop.is_set():
                k += 1
                try:
                    st, js = cl.call("POST", "/api/v1/tenants", harness.tenant_body("e%03d-%d" % (i, k)))
                    if st != 202:
                        raise RuntimeError("POST %d %r" % (st, js))
                    if state["mode"] == "stream":
                        follow_stream(js["job"]["id"])
                    else:
                        follow_poll(cl, js["job"]["id"])
                    with lock:
                        state["done"] += 1
                except Exception as e:  # noqa: BLE001 (counted and reported)
                    with lock:
                        state["errors"] += 1
                        if len(err_samples) < 5:
                            err_samples.append(repr(e))
                    time.sleep(0.5)
            cl.close()

        samples = []

        def window(label):
            """wrk on the mix for secs seconds, sampling capstan meanwhile."""
            sampling = threading.Event()
            mine = []

            def sampler():
                while not sampling.is_set():
                    try:
                        conns = int(self.pg.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'" % db))
                    except RuntimeError:
                        conns = None
                    with lock:
                        o = state["open"]
                    mine.append({"window": label, "open": o, "threads": proc_threads(app.proc.pid),
                                 "fds": proc_fds(app.proc.pid), "db_connections": conns})
                    sampling.wait(0.5)
            sp = threading.Thread(target=sampler)
            sp.start()
            ev0, done0 = state["events"], state["done"]
            meter = CpuMeter(self, [app]).start()
            t = time.time()
            r = self.wrk(app.port, mix, 4, secs)
            t = time.time() - t
            r["cpu_cores"] = meter.stop()
            r["events_per_s"] = round((state["events"] - ev0) / t, 1)
            r["jobs_per_s"] = round((state["done"] - done0) / t, 2)
            sampling.set()
            sp.join()
            samples.extend(mine)
            r["open_min"] = min(x["open"] for x in mine) if mine else 0
            r["open_max"] = max(x["open"] for x in mine) if mine else 0
            r["threads_max"] = max((x["threads"] or 0) for x in mine) if mine else None
            r["fds_max"] = max((x["fds"] or 0) for x in mine) if mine else None
            r["db_connections_max"] = max((x["db_connections"] or 0) for x in mine) if mine else None
            return r

        base = window("idle")
        log("  no jobs, no streams: p99 %.1f ms, %.0f req/s" % (base["latency_us"]["p"]["99"] / 1000.0, base["rps"]))
        old_stack = threading.stack_size(256 * 1024)
        holders = [threading.Thread(target=holder, args=(i,), daemon=True) for i in range(n_streams)]
        for t in holders:
            t.start()
        threading.stack_size(old_stack)
        time.sleep(2)
        polled = window("poll")
        log("  jobs running, %d clients polling: p99 %.1f ms, %.0f req/s" % (
            n_streams, polled["latency_us"]["p"]["99"] / 1000.0, polled["rps"]))
        state["mode"] = "stream"
        deadline = time.time() + 120
        while time.time() < deadline and state["open"] < n_streams * 0.95:
            time.sleep(0.1)
        log("  %d streams open after %.1fs" % (state["open"], 120 - (deadline - time.time())))
        loaded = window("stream")
        stop.set()
        # the holders finish the job they follow, then stop
        drain = time.time() + 300
        for t in holders:
            t.join(max(0.1, drain - time.time()))
        alive = sum(1 for t in holders if t.is_alive())
        self.wait_jobs_final(db, app, 120)
        c.close()
        self.stop(app)
        self.drop_db(db)
        res = {"streams": n_streams, "seconds": secs, "idle": base, "jobs_polling": polled, "with_streams": loaded,
               "threads_before": threads0, "streams_started": state["started"],
               "streams_without_end": state["bad_end"], "holder_errors": state["errors"],
               "holder_error_samples": err_samples, "holders_still_running": alive, "samples": samples}
        self.results["sse"] = res
        rows = []
        for label, r, opened in (("no jobs, no streams", base, "0"),
                                 ("jobs running, %d clients polling each job every 1 s" % n_streams, polled, "0"),
                                 ("jobs running, %d streams" % n_streams, loaded, "%d..%d" % (loaded["open_min"], loaded["open_max"]))):
            lt = r["latency_us"]
            rows.append([label, opened, round(r["rps"]), lt["p"]["50"] / 1000.0, lt["p"]["99"] / 1000.0,
                         lt["p"]["99.9"] / 1000.0, lt["max"] / 1000.0, r["errors_total"], r["threads_max"],
                         r["db_connections_max"], r["jobs_per_s"], r["events_per_s"], r["cpu_cores"]["capstan"],
                         r["cpu_cores"]["other"]])
        self.report("3. Event streams (%d clients: create a tenant, follow its job, repeat; wrk: a mix of 4 GETs on 4 connections, %d s per row)" % (n_streams, secs),
                    ["", "open streams", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors",
                     "capstan threads", "DB connections", "jobs done/s", "events/s", "capstan cores", "other load (cores)"],
                    rows)
        if err_samples:
            log("  client errors (%d), e.g. %s" % (state["errors"], err_samples[0]))
        ll = loaded["latency_us"]
        b = "sse"
        self.goal(b, "streams open during the whole window (min of samples)", loaded["open_min"], ">=", int(n_streams * 0.95))
        self.goal(b, "API p99 while %d streams are open and jobs run" % n_streams, ll["p"]["99"] / 1000.0, "<", 50, " ms")
        self.goal(b, "API errors while streams are open", loaded["errors_total"], "==", 0)
        self.goal(b, "capstan threads added by %d streams" % n_streams,
                  (loaded["threads_max"] - threads0) if threads0 and loaded["threads_max"] else None, "<=", 4)
        self.goal(b, "database connections while streams are open (pool 16 + listener)", loaded["db_connections_max"], "<=", 17)
        self.goal(b, "jobs keep running while streams are open", loaded["jobs_per_s"], ">=", 5, " jobs/s")
        self.goal(b, "streams that ended without `end`, or failed to open; client errors",
                  state["bad_end"] + state["errors"] + alive, "==", 0)

    # ------------------------------------------------------------ 4. recovery

    def bench_recovery(self):
        n = 100 if self.quick else 300
        lease = 5
        kind = "local" if self.gs is None else "git"
        log("\n== 4. Recovery: kill -9 with jobs running, a second process takes over (lease %ds, %s repository)" % (lease, kind))
        db = self.pg.create_db()
        url, env = self.fleet_repo(kind, "fleet-recovery")
        env.update({"CAPSTAN_FLEET_REPO": url, "CAPSTAN_WORKERS": "4", "CAPSTAN_JOB_LEASE": "%ds" % lease})
        a = self.capstan(db, env, "recovery-a")
        clients = [Client(a.port) for _ in range(8)]
        sent = parallel(8, list(range(n)), lambda k, i: clients[k].call(
            "POST", "/api/v1/tenants", harness.tenant_body("r%03d" % i))[1]["job"]["id"])
        for cl in clients:
            cl.close()

        def progress():
            out = self.pg.psql("SELECT count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state = 'running') FROM jobs", db)
            s, r = out.split("|")
            return int(s), int(r)
        deadline = time.time() + 120
        while time.time() < deadline:
            s, r = progress()
            if s >= n // 10 and r > 0:
                break
            time.sleep(0.05)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        t_kill = time.time()
        interrupted = [x for x in self.pg.psql("SELECT id FROM jobs WHERE state = 'running'", db).split() if x]
        done_before = int(self.pg.psql("SELECT count(*) FROM jobs WHERE state = 'succeeded'", db))
        b_app = self.capstan(db, env, "recovery-b")
        t_listen = time.time() - t_kill
        ok = self.wait_jobs_final(db, b_app, 300)
        cb = Client(b_app.port)
        jobs = self.list_jobs(cb)
        cb.close()
        self.stop(b_app)
        self.drop_db(db)
        if not ok:
            raise RuntimeError("recovery: jobs did not finish within 300 s")
        fin_int = [parse_time(jobs[j]["finishedAt"]) - t_kill for j in interrupted if jobs[j]["state"] == "succeeded"]
        # when the second process took an interrupted job up: the first step start after the kill
        start_int = []
        for j in interrupted:
            after = [parse_time(st["startedAt"]) - t_kill for st in jobs[j]["steps"]
                     if st.get("startedAt") and parse_time(st["startedAt"]) > t_kill]
            if after:
                start_int.append(min(after))
        fin_all = [parse_time(j["finishedAt"]) - t_kill for j in jobs.values() if j["finishedAt"]]
        failed = sum(1 for j in sent if jobs[j]["state"] != "succeeded")
        tr = self.trailers(kind, "fleet-recovery")
        not_once = sum(1 for j in sent if tr.get(j, 0) != 1)
        res = {"jobs": n, "lease_s": lease, "repo": kind, "done_before_kill": done_before,
               "interrupted": len(interrupted), "second_process_listening_s": round(t_listen, 3),
               "interrupted_first_restart_s": round(min(start_int), 3) if start_int else None,
               "interrupted_all_done_s": round(max(fin_int), 3) if fin_int and len(fin_int) == len(interrupted) else None,
               "all_done_s": round(max(fin_all), 3) if fin_all else None, "failed": failed,
               "not_exactly_once_on_branch": not_once}
        self.results["recovery"] = res
        self.report("4. Recovery (%d tenant jobs, 4 workers, kill -9 after %d done, CAPSTAN_JOB_LEASE=%ds, %s repository)" % (
            n, done_before, lease, kind),
            ["interrupted jobs", "2nd process listening s", "first interrupted job taken up s",
             "all interrupted done s", "all jobs done s", "failed", "not once on branch"],
            [[len(interrupted), res["second_process_listening_s"], res["interrupted_first_restart_s"],
              res["interrupted_all_done_s"], res["all_done_s"], failed, not_once]])
        b = "recovery"
        self.goal(b, "jobs running at the kill (the benchmark measured something)", len(interrupted), ">=", 1)
        self.goal(b, "every interrupted job done after kill -9 (lease %d s)" % lease, res["interrupted_all_done_s"],
                  "<", lease + 5, " s")
        self.goal(b, "jobs failed or not exactly once on the branch", failed + not_once, "==", 0)

    # ------------------------------------------------------------ the job engine (bench/jobs)

    def bench_engine(self):
        import jobs_bench  # bench/jobs_bench.py: no-op jobs against pgbench, memory (bench/jobs)
        jobs_bench.run(self)

    # ------------------------------------------------------------ the GitOps engine (bench/gitops)

    def bench_gitops(self):
        """bench/gitopsbench.py: the engine against the git command line (bench/gitops)."""
        import gitopsbench
        n = 200 if self.quick else 1000
        log("\n== GitOps engine against the git command line (%d tenant onboardings each, local bare "
            "repositories)" % n)
        if not os.access(self.args.gitops_bin, os.X_OK):
            log("  skipped: %s not found (bench/run builds it; with CAPSTAN_BIN set, build the target "
                "gitops_bench or pass --gitops-bin)" % self.args.gitops_bin)
            self.results["gitops"] = {"skipped": "gitops_bench not found"}
            return
        res = gitopsbench.run(self.args.gitops_bin, n=n, threads=8, tmp_parent=self.tmp)
        self.results["gitops"] = res
        self.report("GitOps engine against the git command line (%d tenant onboardings each; engine: one "
                    "gitops_submit per change from 8 threads, and from 1; command line: one commit and "
                    "push per change)" % n, gitopsbench.HEADERS, gitopsbench.rows(res))
        for p in res["problems"]:
            log("  PROBLEM: %s" % p)
        self.goal("gitops", "engine (8 threads) changes/s over the git command line's", res["ratio"], ">=",
                  res["goal_ratio"], " x")
        self.goal("gitops", "branches differing from the command line's tree, or jobs not once on them",
                  len(res["problems"]), "==", 0)

    # ------------------------------------------------------------ main

    def meta(self):
        def git(*a):
            r = subprocess.run(["git", "-C", SOURCE_DIR] + list(a), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            return r.stdout.strip()
        v = subprocess.run([self.bin, "version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "mode": "quick" if self.quick else "full", "commit": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
                "capstan_version": v.stdout.strip(), "binary": self.args.bin,
                "binary_built": datetime.datetime.fromtimestamp(os.stat(self.args.bin).st_mtime).astimezone().isoformat(timespec="seconds"),
                "binary_sha256": sha256_file(self.bin)[:16], "cpus": os.cpu_count(),
                "kernel": platform.release(), "loadavg_at_start": load,
                "wrk": subprocess.run(["wrk", "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True).stdout.split("\n")[0] if shutil.which("wrk") else None,
                "postgres": "PostgreSQL %s, fsync=off, synchronous_commit=off (tests/integration/harness.py)" % os.path.basename(os.path.dirname(harness.pg_bindir()))}


def run_one(bench, name, fn):
    """Runs the benchmark fn(); an exception is printed and becomes a failed goal. Returns 0, or
    2 when it raised (the other benchmarks still run)."""
    try:
        fn()
        return 0
    except Exception as e:  # noqa: BLE001 (reported)
        traceback.print_exc()
        bench.results.setdefault("errors", []).append({"benchmark": name, "error": repr(e)})
        bench.goal(name, "benchmark ran to the end", 0, "==", 1)
        return 2


def begin(bench, meta, note, title):
    """Starts a benchmark program: adds the note and the load of other processes over 2 s to
    meta and logs the headline (with a warning on a busy machine). Returns meta."""
    meta["note"] = note
    m0, w0 = machine_busy(), time.time()
    time.sleep(2)
    meta["background_load_cores"] = round((machine_busy() - m0) / (time.time() - w0), 2)
    log("%s (%s mode): %s, %s, %d CPUs, load average %s" % (
        title, meta["mode"], meta["capstan_version"], meta["commit"][:12] + (" (dirty tree)" if meta["dirty"] else ""),
        meta["cpus"], " ".join(meta["loadavg_at_start"])))
    if meta["background_load_cores"] > 0.3:
        log("WARNING: other processes use %.2f of %d cores before the benchmarks start; latency tails and "
            "throughput will suffer (see the \"other load\" columns)" % (meta["background_load_cores"], meta["cpus"]))
    return meta


def finish(bench, meta, t0, status, stem, title, with_benchmark=True, command=None):
    """Ends a benchmark program: prints the goals, writes stem.json and stem.md and exits with 0
    when every goal passed, 1 when one failed, status when it is not 0 (a benchmark could not
    run). Shared by bench/run (capbench.py) and bench/jobs (jobs_bench.py)."""
    meta["seconds"] = round(time.time() - t0, 1)
    with open("/proc/loadavg") as f:
        meta["loadavg_at_end"] = f.read().split()[:3]
    failed = [g for g in bench.goals if not g["pass"]]
    rows = [([g["benchmark"]] if with_benchmark else []) +
            [g["goal"], fmt(g["value"]) + g["unit"], "%s %s%s" % (g["op"], fmt(g["limit"]), g["unit"]),
             "PASS" if g["pass"] else "FAIL"] for g in bench.goals]
    summary = table((["benchmark"] if with_benchmark else []) + ["goal", "value", "limit", "result"], rows)
    log("\n### Goals\n\n" + summary)
    log("\n%d of %d goals passed in %.0f s" % (len(bench.goals) - len(failed), len(bench.goals), meta["seconds"]))
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "results": bench.results, "goals": bench.goals}, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(stem + ".md", "w") as f:
        f.write("# %s, %s (%s mode)\n\n" % (title, meta["date"], meta["mode"]))
        f.write("%s%s (binary built %s; the tree was at %s%s); %d CPUs; other processes used %.2f cores before the "
                "start (load average %s at the start, %s at the end); %s; %.0f s.\n\n" % (
                    "`%s`: " % command if command else "", meta["capstan_version"], meta["binary_built"],
                    meta["commit"][:12], " with uncommitted changes" if meta["dirty"] else "",
                    meta["cpus"], meta["background_load_cores"], " ".join(meta["loadavg_at_start"]),
                    " ".join(meta["loadavg_at_end"]), meta["postgres"], meta["seconds"]))
        if meta["note"]:
            f.write("Note: %s\n\n" % meta["note"])
        f.write("\n".join(bench.reports))
        f.write("\n### Goals\n\n" + summary + "\n")
    log("wrote %s.json and %s.md" % (stem, stem))
    if status == 0 and failed:
        status = 1
    sys.exit(status)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs and fewer jobs (about 3 minutes)")
    ap.add_argument("--only", default="http,jobs,sse,recovery,gitops,engine", help="comma-separated benchmarks to run")
    ap.add_argument("--bin", default=os.environ.get("CAPSTAN_BIN", os.path.join(SOURCE_DIR, "build-bench", "capstan")))
    ap.add_argument("--gitops-bin", default=os.environ.get("GITOPS_BENCH_BIN", os.path.join(SOURCE_DIR, "build-bench", "bench", "gitops_bench")),
                    help="the gitops_bench program of the benchmark gitops")
    ap.add_argument("--no-git-server", action="store_true", help="local bare repositories only")
    ap.add_argument("--keep", action="store_true", help="keep capstan logs (path printed at the end)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="folder for the results files")
    ap.add_argument("--note", default="", help="a line about this run for the results (where the binary came from, ...)")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit("capstan binary %s not found (build it, or use bench/run)" % args.bin)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    if not args.no_git_server and not os.path.exists(gitserver.LIGHTTPD):
        sys.exit("lighttpd is not installed (apt-get install lighttpd), or pass --no-git-server")
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    # SIGTERM ends the run like Ctrl-C does: every process started is stopped, folders removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(args)
    meta = begin(bench, bench.meta(), args.note, "capstan benchmarks")
    t0 = time.time()
    status = 0
    try:
        bench.start()
        for name in only:
            fn = getattr(bench, "bench_" + name, None)
            if fn is None:
                sys.exit("unknown benchmark %r" % name)
            status = max(status, run_one(bench, name, fn))
    finally:
        bench.close()
    finish(bench, meta, t0, status, os.path.join(args.out, datetime.date.today().isoformat() + ("-quick" if args.quick else "")),
           "capstan benchmarks")


if __name__ == "__main__":
    main()
