#!/usr/bin/env python3
"""bench/jobs: the job engine alone, against the bare SQL a job costs (issue 4).

Run through bench/jobs (which builds a Release binary first), or from bench/run as the
benchmark `engine`:

    bench/jobs [--n 20000] [--quick] [--clients 8] [--unsat-fraction 0.3] [--unsat-seconds 20]

What it does, all on this machine, in one run:

1. a private PostgreSQL (tests/integration/harness.py: fsync=off, synchronous_commit=off) with
   pg_stat_statements loaded, and one capstan (`capstan serve`, Release) with
   CAPSTAN_JOB_EXECUTOR=noop (every step succeeds at once and does nothing), 8 workers, no rate
   limits, a local bare fleet repository (never touched: the steps do nothing);
2. saturated: N tenant creations (each is a tenant.create job of 5 steps) through
   POST /api/v1/tenants from --clients threads on keep-alive connections, as fast as capstan
   answers, until every job is `succeeded`. Reported: jobs/s end to end (first request sent to
   last job finished) and the engine's rate (first job started to last finished), the time
   from request to `running` (jobs.started_at - jobs.created_at) p50/p99, the 202 time, the
   peak RSS (VmHWM) of capstan, CPU per job of capstan and PostgreSQL, and the statements per
   job (pg_stat_statements: calls, including BEGIN and COMMIT, i.e. round trips);
3. unsaturated: a steady open-loop rate of --unsat-fraction of the measured rate for
   --unsat-seconds: request-to-running p50/p99 (the goal "p99 under 50 ms when the queue is
   not saturated");
4. at rest: with at least 10,000 tenants in the database (the run's own, topped up by SQL when
   --n is smaller), a few list and get requests, then capstan's RSS (VmRSS); the same for a
   freshly started capstan on that database (for comparison, no goal);
5. first of all, pgbench on the same PostgreSQL server, in a database of its own migrated by
   `capstan migrate` (the real `jobs` table; dropped afterwards): a script of the bare SQL one
   job costs (insert a job; claim the oldest queued one with FOR UPDATE SKIP LOCKED; mark it
   succeeded), one transaction each, with as many clients as capstan has workers; 3 s of
   warm-up and VACUUM ANALYZE first, so that the baseline does not depend on stale statistics.
   ratio = capstan jobs/s (end to end) / pgbench tps, goal >= 0.5.

Only the Python standard library is used. Results: bench/results/<date>-jobs[-quick].json/.md
(standalone) or the results of bench/run (as `engine`).
"""
import argparse
import datetime
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import capbench  # noqa: E402  (bench/capbench.py: helpers, Bench, CpuMeter; also imports harness)
from capbench import harness, log, ms, pct, fmt  # noqa: E402

# the sources of the binary: statement names and the claim statement are read from there
SOURCE = capbench.SOURCE_DIR
NAME = "engine"  # the name of this benchmark in bench/run --only and in the results
WORKERS = 8
MIB = 1024.0 * 1024.0
REST_TENANTS = 10000
SLOW_MS = 1000  # auto_explain logs the plans of statements slower than this
OBSERVER = "bench_observer"  # the role of this program's own queries (left out of the counts)
PGBENCH_ROLE = "bench_pgbench"

# The bare SQL of one job, for pgbench: insert it, claim the oldest queued job with SKIP LOCKED
# (the walk of capstan's claim: the jobs_active index, ORDER BY seq LIMIT 1), finish it under
# the lease fence. Three transactions, as a minimal engine would run them. A claim that finds
# nothing (every queued row locked by other clients) returns 0 and the finish is skipped.
PGBENCH_SCRIPT = """\\set tid random(1, 1000000000)
INSERT INTO jobs (id, kind, tenant_id, tenant, params, steps, requested_by) VALUES (gen_random_uuid(), 'tenant.create', :tid, 'pgbench', '{"generation": 1}', '[]', 'pgbench') RETURNING seq AS jseq \\gset
WITH c AS (SELECT id FROM jobs WHERE state IN ('queued', 'running') AND state = 'queued' AND run_after <= now() ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED), u AS (UPDATE jobs SET state = 'running', attempt = jobs.attempt + 1, lease_owner = '00000000-0000-4000-8000-000000000001'::uuid, lease_expires_at = now() + interval '30 seconds', started_at = coalesce(jobs.started_at, now()) FROM c WHERE jobs.id = c.id RETURNING jobs.seq) SELECT coalesce(max(seq), 0) AS cseq FROM u \\gset
\\if :cseq > 0
UPDATE jobs SET state = 'succeeded', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL WHERE seq = :cseq AND lease_owner = '00000000-0000-4000-8000-000000000001'::uuid AND state = 'running';
\\endif
"""


# ---------------------------------------------------------------- helpers

class PgssPostgres(harness.Postgres):
    """harness.Postgres with pg_stat_statements loaded (set with ALTER SYSTEM, then a restart),
    and psql as any role."""

    def start(self):
        super().start()
        self.psql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements', 'auto_explain'")
        self.stop()
        super().start()
        # the plan of every statement that takes over a second goes to the server's log (plans
        # only: no EXPLAIN ANALYZE instrumentation of every statement)
        self.psql("ALTER SYSTEM SET auto_explain.log_min_duration = '%dms'" % SLOW_MS)
        self.psql("SELECT pg_reload_conf()")
        for role in (OBSERVER, PGBENCH_ROLE):
            self.psql("CREATE ROLE %s LOGIN SUPERUSER" % role)

    def log_size(self):
        try:
            return os.path.getsize(os.path.join(self.root, "server.log"))
        except OSError:
            return 0

    def slow_statements(self, since):
        """[{ms, label, query, plan}] of the statements auto_explain logged after offset since."""
        try:
            with open(os.path.join(self.root, "server.log"), errors="replace") as f:
                f.seek(since)
                text = f.read()
        except OSError:
            return []
        out = []
        for m in re.finditer(r"duration: ([0-9.]+) ms  plan:\n\tQuery Text: (.*?)\n((?:\t.*\n?)*)", text):
            q = m.group(2)
            out.append({"ms": float(m.group(1)), "label": statement_label(q), "query": q[:2000],
                        "plan": "\n".join(line[1:] for line in m.group(3).splitlines())})
        return out

    def url_as(self, db, user):
        return "postgresql://%s@127.0.0.1:%d/%s" % (user, self.port, db)

    def query(self, sql, db, user=OBSERVER):
        """Rows of sql (lists of strings; NULL is ''), as the observer role."""
        r = subprocess.run([os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-F", "\x1f", "-R", "\x1e", "-d", self.url_as(db, user), "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError("psql failed: " + r.stderr)
        out = r.stdout.rstrip("\n")
        return [rec.split("\x1f") for rec in out.split("\x1e") if rec.strip("\n")]

    def value(self, sql, db):
        return self.query(sql, db)[0][0]


def Client(port):
    """One keep-alive HTTP connection to capstan (one per thread). No Idempotency-Key: every
    POST creates a tenant of a new name, so a repeated one could only fail with 409."""
    return capbench.Client(port, idempotency=False)


def proc_mem(pid):
    """{VmRSS, VmHWM, RssAnon, RssFile} in bytes from /proc/<pid>/status (empty when gone)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k = line.split(":", 1)[0]
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[k] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def mib(b):
    return None if b is None else round(b / MIB, 1)


class MemSampler(threading.Thread):
    """Samples capstan's VmRSS every 0.2 s (the peak is also VmHWM, which the kernel keeps)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.stop_ev = threading.Event()
        self.max_rss = 0

    def run(self):
        while not self.stop_ev.is_set():
            self.max_rss = max(self.max_rss, proc_mem(self.pid).get("VmRSS", 0))
            self.stop_ev.wait(0.2)

    def stop(self):
        self.stop_ev.set()
        self.join()
        return self.max_rss


def pgss_reset(pg, db):
    pg.query("SELECT pg_stat_statements_reset()", db)


def pgss_read(pg, db, role):
    """[{calls, exec_ms, rows, query}] of role's statements in db since the last reset."""
    rows = pg.query(
        "SELECT s.calls, round(s.total_exec_time::numeric, 3), s.rows, s.shared_blks_hit + s.shared_blks_read, "
        "regexp_replace(s.query, '\\s+', ' ', 'g') FROM pg_stat_statements s "
        "JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid "
        "WHERE r.rolname = '%s' AND d.datname = '%s' ORDER BY s.calls DESC, s.total_exec_time DESC" % (role, db), db)
    return [{"calls": int(r[0]), "exec_ms": float(r[1]), "rows": int(r[2]), "buffers": int(r[3]), "query": r[4]}
            for r in rows]


_SHAPE_RE = re.compile(r"'(?:[^']|'')*'|\$\d+|\b\d+(?:\.\d+)?\b|\b(?:null|true|false)\b")


def sql_shape(q):
    """q with every constant and parameter as ?, lower case, single spaces: the same for the
    statement in the C source and for its text in pg_stat_statements (which shows constants as
    $n)."""
    return " ".join(_SHAPE_RE.sub("?", q.lower()).split())


_STATEMENTS = None
_SQL = {}  # name -> SQL of the store_stmt statements


def store_statements():
    """{shape: name} of every `struct store_stmt` of server/*/*.c, read through the C
    preprocessor (the SQL is built from macros such as SQL_JOB_JSON). Empty when cc is missing."""
    global _STATEMENTS
    if _STATEMENTS is not None:
        return _STATEMENTS
    _STATEMENTS = {}
    server = os.path.join(SOURCE, "server")
    for sub in sorted(os.listdir(server)):
        d = os.path.join(server, sub)
        if not os.path.isdir(d):
            continue
        for fn in sorted(os.listdir(d)):
            if not fn.endswith(".c"):
                continue
            path = os.path.join(d, fn)
            with open(path, errors="replace") as f:
                if "struct store_stmt st_" not in f.read():
                    continue
            try:
                r = subprocess.run(["cc", "-E", "-P", "-D_GNU_SOURCE", "-DCAPSTAN_VERSION=\"bench\"", "-I", server,
                                    "-isystem", "/usr/include/postgresql", path],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                continue
            for m in re.finditer(r"struct store_stmt st_\w+\s*=\s*\{\s*\"([\w.-]+)\"\s*,(.*?),\s*\d+\s*\}\s*;",
                                 r.stdout, re.S):
                lits = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))
                sql = "".join(lits).replace('\\"', '"').replace("\\\\", "\\")
                _SQL[m.group(1)] = sql
                shape = sql_shape(sql)
                # statements of the same shape (SELECT pg_notify(...)) get both names
                old = _STATEMENTS.get(shape)
                _STATEMENTS[shape] = m.group(1) if not old or old == m.group(1) else old + "/" + m.group(1)
    return _STATEMENTS


def statement_label(q):
    """The name of a statement: capstan's own name for it (the store_stmt of server/store/*.c
    whose SQL has the same shape), begin/commit/..., the part of the pgbench script, or its
    first 70 characters."""
    ql = " ".join(q.lower().split())
    if ql in ("begin", "commit", "rollback", "start transaction"):
        return ql
    name = store_statements().get(sql_shape(q))
    if name:
        return name
    if ql.startswith("listen "):
        return "listen"
    if "pgbench" in ql or "coalesce(max(seq)" in ql or "where seq =" in ql:
        return "pgbench " + ("claim" if "skip locked" in ql else "insert" if ql.startswith("insert") else "finish")
    if ql.startswith("insert into jobs") and "pg_notify" not in ql:
        return "pgbench insert"
    return q[:70]


def summarize_statements(stmts, n_jobs):
    """Statements per job and database execution time per job, grouped by label."""
    groups = {}
    for s in stmts:
        g = groups.setdefault(statement_label(s["query"]), {"calls": 0, "exec_ms": 0.0, "buffers": 0,
                                                            "query": s["query"][:300]})
        g["calls"] += s["calls"]
        g["exec_ms"] += s["exec_ms"]
        g["buffers"] += s["buffers"]
    out = []
    for label, g in groups.items():
        out.append({"statement": label, "calls": g["calls"], "per_job": round(g["calls"] / n_jobs, 2),
                    "exec_ms_per_job": round(g["exec_ms"] / n_jobs, 4),
                    "mean_exec_ms": round(g["exec_ms"] / g["calls"], 4) if g["calls"] else None,
                    "buffers_per_call": round(g["buffers"] / g["calls"], 1) if g["calls"] else None,
                    "query": g["query"]})
    out.sort(key=lambda x: (-x["calls"], x["statement"]))
    total_calls = sum(g["calls"] for g in groups.values())
    total_ms = sum(g["exec_ms"] for g in groups.values())
    claims = sum(g["calls"] for k, g in groups.items() if k in ("jobq_claim", "pgbench claim"))
    names = set(n for v in store_statements().values() for n in v.split("/")) | set(store_statements().values())
    unknown = [k for k in groups if k not in names and k not in (
        "begin", "commit", "rollback", "start transaction", "listen") and not k.startswith("pgbench ")]
    return {"statements_per_job": round(total_calls / n_jobs, 2), "exec_ms_per_job": round(total_ms / n_jobs, 4),
            "claims_per_job": round(claims / n_jobs, 2), "unnamed_statements": unknown,
            "by_statement": out}


def summarize_slow(slow):
    """{label: {count, max_ms, plan of the slowest}} of auto_explain's entries."""
    out = {}
    for x in slow:
        g = out.setdefault(x["label"], {"count": 0, "max_ms": 0.0, "total_ms": 0.0, "plan": None, "query": None})
        g["count"] += 1
        g["total_ms"] = round(g["total_ms"] + x["ms"], 1)
        if x["ms"] > g["max_ms"]:
            g["max_ms"], g["plan"], g["query"] = x["ms"], x["plan"], x["query"]
    return out


# ---------------------------------------------------------------- the benchmark

class EngineBench:
    def __init__(self, bench, n=None, clients=8, unsat_fraction=0.3, unsat_seconds=None, pgbench_seconds=None):
        self.b = bench
        quick = bench.quick
        self.n = n or (5000 if quick else 20000)
        self.clients = clients
        self.unsat_fraction = unsat_fraction
        self.unsat_seconds = unsat_seconds or (10 if quick else 20)
        self.pgbench_seconds = pgbench_seconds or (10 if quick else 20)
        self.pg = None
        self.app = None
        self.db = None
        self.res = {"n": self.n, "workers": WORKERS, "clients": self.clients}

    # --- processes ---

    def start_capstan(self, name):
        repo = os.path.join(self.b.tmp, "repos", "fleet-engine.git")
        if not os.path.exists(repo):
            os.makedirs(os.path.dirname(repo), exist_ok=True)
            subprocess.run(["git", "init", "-q", "--bare", "-b", "main", repo], check=True)
        env = dict(capbench.BASE_ENV)
        env.update({"CAPSTAN_JOB_EXECUTOR": "noop", "CAPSTAN_WORKERS": str(WORKERS), "CAPSTAN_FLEET_REPO": repo})
        app = harness.Capstan(self.pg.url(self.db), env=env, name=name)
        app.start()
        self.b.apps.append(app)
        return app

    def cpu_meter(self):
        shim = types.SimpleNamespace(pg=self.pg, gs=None)
        return capbench.CpuMeter(shim, [self.app] if self.app else [])

    def table_stats(self):
        """PostgreSQL's counters of the jobs table (dead rows, HOT updates, autovacuum runs)."""
        r = self.pg.query("SELECT n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd, autovacuum_count, "
                          "autoanalyze_count, pg_table_size('jobs'), pg_indexes_size('jobs') "
                          "FROM pg_stat_user_tables WHERE relname = 'jobs'", self.db)[0]
        out = dict(zip(("live", "dead", "updates", "hot_updates", "autovacuums", "autoanalyzes"), map(int, r)))
        out["table_mib"] = mib(int(r[6]))
        out["indexes_mib"] = mib(int(r[7]))
        return out

    def explain_claim(self, what):
        """EXPLAIN (ANALYZE, BUFFERS) of capstan's claim statement (prepared, as capstan runs it)
        in a transaction that is rolled back: the plan PostgreSQL picks at this moment, its
        buffers and time. None when the statement cannot be found in the source."""
        store_statements()
        sql = _SQL.get("jobq_claim")
        if not sql or "$1" not in sql or "$2" not in sql or "$3" in sql:
            return None
        # what capstan runs before the claim in its transaction (planner settings), if anything
        pre = ["-c", _SQL["jobq_claim_plan"]] if "jobq_claim_plan" in _SQL and "$1" not in _SQL["jobq_claim_plan"] else []
        queued = self.job_counts("%").get("queued", 0)
        r = subprocess.run([os.path.join(self.pg.bindir, "psql"), "-X", "-q", "-d", self.pg.url_as(self.db, OBSERVER),
                            "-c", "BEGIN"] + pre + ["-c", "PREPARE bench_claim(uuid, bigint) AS " + sql,
                            "-c", "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_claim("
                                  "'00000000-0000-4000-8000-0000000000be', 30000)", "-c", "ROLLBACK"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        plan = r.stdout
        t = re.search(r"Execution Time: ([0-9.]+) ms", plan)
        bufs = re.search(r"Buffers: shared hit=(\d+)(?: read=(\d+))?", plan)
        scans = re.findall(r"((?:Bitmap Heap Scan|Index Scan|Seq Scan|Bitmap Index Scan|Index Only Scan) "
                           r"(?:using \w+ )?on \w+)", plan)
        out = {"when": what, "queued": queued, "execution_ms": float(t.group(1)) if t else None,
               "buffers": (int(bufs.group(1)) + int(bufs.group(2) or 0)) if bufs else None,
               "sort": "Sort Key" in plan, "scans": scans, "plan": plan}
        log("  the claim %s (%d queued): %s ms, %s buffers, %s%s" % (
            what, queued, fmt(out["execution_ms"]), out["buffers"], ", ".join(dict.fromkeys(scans)),
            " + sort of every candidate" if out["sort"] else ""))
        return out

    def autovacuum_times(self):
        r = self.pg.query("SELECT coalesce(extract(epoch FROM last_autoanalyze), 0), "
                          "coalesce(extract(epoch FROM last_autovacuum), 0) FROM pg_stat_user_tables "
                          "WHERE relname = 'jobs'", self.db)[0]
        return float(r[0]) or None, float(r[1]) or None

    def job_counts(self, like):
        """{state: count} of the jobs of tenants LIKE like, and under "_longest_ms" the age of the
        oldest statement capstan is running (a claim that runs for minutes holds back vacuum)."""
        rows = self.pg.query(
            "SELECT state, count(*) FROM jobs WHERE tenant LIKE '%s' GROUP BY state UNION ALL "
            "SELECT '_longest_ms', coalesce(max(extract(epoch FROM now() - query_start) * 1000), 0)::bigint "
            "FROM pg_stat_activity WHERE datname = current_database() AND usename = 'postgres' "
            "AND state = 'active'" % like, self.db)
        return {r[0]: int(r[1]) for r in rows}

    def wait_done(self, like, total, timeout):
        """Waits until total jobs of tenants LIKE like are final; returns {state: count} and the
        largest queue seen (queued jobs). psql twice a second (as the observer role)."""
        deadline = time.time() + timeout
        max_queued = 0
        self.longest_ms = 0
        self.long_statements = None
        while True:
            c = self.job_counts(like)
            max_queued = max(max_queued, c.get("queued", 0))
            longest = c.pop("_longest_ms", 0)
            self.longest_ms = max(self.longest_ms, longest)
            if longest > 5000 and self.long_statements is None:
                self.long_statements = self.activity()
                log("  a statement of capstan has been running for %.1f s:" % (longest / 1000.0))
                for a in self.long_statements[:3]:
                    log("    %s s, %s, %s: %s" % (a["seconds"], a["wait"] or "on CPU", a["label"], a["query"][:100]))
            final = sum(c.get(s, 0) for s in capbench.FINAL)
            if final >= total or time.time() > deadline:
                return c, max_queued
            time.sleep(0.5)

    def activity(self):
        """capstan's statements running now, oldest first (when one runs for seconds)."""
        rows = self.pg.query(
            "SELECT round(extract(epoch FROM now() - query_start)::numeric, 1), "
            "round(extract(epoch FROM now() - xact_start)::numeric, 1), "
            "coalesce(wait_event_type || '/' || wait_event, ''), backend_xmin, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND usename = 'postgres' AND state <> 'idle' "
            "ORDER BY query_start", self.db)
        return [{"seconds": float(r[0] or 0), "transaction_seconds": float(r[1] or 0), "wait": r[2],
                 "backend_xmin": r[3], "label": statement_label(r[4]), "query": " ".join(r[4].split())[:2000]}
                for r in rows]

    def job_times(self, like):
        """[(created, started, finished)] in seconds since the epoch, of the jobs of tenants LIKE
        like that succeeded."""
        rows = self.pg.query(
            "SELECT tenant, extract(epoch FROM created_at), extract(epoch FROM started_at), "
            "extract(epoch FROM finished_at) FROM jobs WHERE tenant LIKE '%s' AND state = 'succeeded'" % like, self.db)
        return {r[0]: (float(r[1]), float(r[2]), float(r[3])) for r in rows}

    # --- 2. saturated ---

    def saturated(self):
        n, k = self.n, self.clients
        log("  saturated: %d tenant creations from %d client threads, 8 workers" % (n, k))
        pgss_reset(self.pg, self.db)
        log0 = self.pg.log_size()
        sampler = MemSampler(self.app.proc.pid)
        sampler.start()
        meter = self.cpu_meter().start()
        clients = [Client(self.app.port) for _ in range(k)]
        lock = threading.Lock()
        nxt = [0]
        sent = [None] * n
        errors = []

        def post(c):
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= n or len(errors) > 10:
                    return
                t_send = time.time()
                try:
                    st, js = clients[c].call("POST", "/api/v1/tenants", harness.tenant_body("sat-%05d" % i))
                except Exception as e:  # noqa: BLE001 (counted)
                    st, js = None, repr(e)
                t_202 = time.time()
                if st != 202:
                    with lock:
                        errors.append("%s %r" % (st, js))
                    continue
                sent[i] = (t_send, t_202)
        t0 = time.time()
        ts = [threading.Thread(target=post, args=(c,)) for c in range(k)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        t_enqueued = time.time()
        for c in clients:
            c.close()
        accepted = sum(1 for s in sent if s)
        log("  %d accepted in %.1f s (%.0f req/s), %d errors" % (accepted, t_enqueued - t0, accepted / max(1e-6, t_enqueued - t0), len(errors)))
        explain = self.explain_claim("after the last request")
        counts, max_queued = self.wait_done("sat-%", accepted, max(600, n / 5))
        cpu = meter.stop()
        peak_sampled = sampler.stop()
        mem = proc_mem(self.app.proc.pid)
        stmts = pgss_read(self.pg, self.db, "postgres")
        times = self.job_times("sat-%")
        succeeded = len(times)
        if succeeded == 0:
            raise RuntimeError("saturated run: no job succeeded (%r; errors %r)" % (counts, errors[:3]))
        first_start = min(t[1] for t in times.values())
        last_finish = max(t[2] for t in times.values())
        to_running = [t[1] - t[0] for t in times.values()]
        run_time = [t[2] - t[1] for t in times.values()]
        accept = [s[1] - s[0] for s in sent if s]
        e2e_s = last_finish - t0
        engine_s = last_finish - first_start
        analyzed, vacuumed = self.autovacuum_times()
        # jobs finished per second in each tenth of the run (by jobs.finished_at; the first tenth
        # counts from the first request)
        fins = sorted(t[2] for t in times.values())
        marks = [t0] + [fins[min(len(fins) - 1, (len(fins) * k) // 10 - 1)] for k in range(1, 11)]
        tenths = [round((len(fins) / 10.0) / (marks[k] - marks[k - 1]), 1) if marks[k] > marks[k - 1] else None
                  for k in range(1, 11)]
        r = {"jobs": n, "accepted": accepted, "succeeded": succeeded, "api_errors": len(errors),
             "api_error_samples": errors[:5], "states": counts, "enqueue_s": round(t_enqueued - t0, 3),
             "enqueue_per_s": round(accepted / max(1e-6, t_enqueued - t0), 1),
             "accept_p50_ms": ms(pct(accept, 50)), "accept_p99_ms": ms(pct(accept, 99)),
             "end_to_end_s": round(e2e_s, 3), "jobs_per_s": round(succeeded / e2e_s, 1),
             "engine_s": round(engine_s, 3), "engine_jobs_per_s": round(succeeded / engine_s, 1),
             "max_queued_seen": max_queued, "longest_statement_ms": self.longest_ms,
             "long_statements": self.long_statements,
             "to_running_p50_ms": ms(pct(to_running, 50)), "to_running_p99_ms": ms(pct(to_running, 99)),
             "to_running_max_ms": ms(max(to_running)),
             "run_time_p50_ms": ms(pct(run_time, 50)), "run_time_p99_ms": ms(pct(run_time, 99)),
             "peak_rss_mib": mib(mem.get("VmHWM")), "peak_rss_sampled_mib": mib(peak_sampled),
             "rss_after_mib": mib(mem.get("VmRSS")), "cpu_cores": cpu,
             "capstan_cpu_ms_per_job": round(cpu["capstan"] * cpu["seconds"] * 1000 / succeeded, 3),
             "postgres_cpu_ms_per_job": round(cpu["postgres"] * cpu["seconds"] * 1000 / succeeded, 3),
             "bench_cpu_ms_per_job": round(cpu["bench"] * cpu["seconds"] * 1000 / succeeded, 3),
             "sql": summarize_statements(stmts, succeeded), "jobs_table": self.table_stats(),
             "slow_statements": summarize_slow(self.pg.slow_statements(log0)),
             "claim_explain": explain, "rate_by_tenth": tenths,
             "last_autoanalyze_s": round(analyzed - t0, 1) if analyzed else None,
             "last_autovacuum_s": round(vacuumed - t0, 1) if vacuumed else None}
        log("  jobs/s in each tenth of the run: %s; last autoanalyze of jobs %s s after the first request" % (
            " ".join(fmt(x) for x in tenths), fmt(r["last_autoanalyze_s"])))
        log("  %d succeeded: %.0f jobs/s end to end, %.0f jobs/s engine; to running p50 %.0f ms p99 %.0f ms; "
            "peak RSS %.1f MiB; %.1f statements/job" % (succeeded, r["jobs_per_s"], r["engine_jobs_per_s"],
                                                      r["to_running_p50_ms"], r["to_running_p99_ms"], r["peak_rss_mib"],
                                                      r["sql"]["statements_per_job"]))
        return r

    # --- 3. unsaturated ---

    def unsaturated(self, rate):
        secs = self.unsat_seconds
        total = max(1, int(rate * secs))
        senders = 8
        log("  unsaturated: %.1f req/s for %d s (%d tenant creations, open loop)" % (rate, secs, total))
        time.sleep(2)  # let the database settle after the burst (autovacuum of the jobs table)
        pgss_reset(self.pg, self.db)
        log0 = self.pg.log_size()
        meter = self.cpu_meter().start()
        sent = {}
        errors = []
        lock = threading.Lock()
        t0 = time.time() + 0.2

        def run(k):
            c = Client(self.app.port)
            for i in range(k, total, senders):
                due = t0 + i / rate
                d = due - time.time()
                if d > 0:
                    time.sleep(d)
                name = "uns-%05d" % i
                t_send = time.time()
                try:
                    st, js = c.call("POST", "/api/v1/tenants", harness.tenant_body(name))
                except Exception as e:  # noqa: BLE001 (counted)
                    st, js = None, repr(e)
                t_202 = time.time()
                with lock:
                    if st == 202:
                        sent[name] = (due, t_send, t_202)
                    else:
                        errors.append("%s %r" % (st, js))
            c.close()
        ts = [threading.Thread(target=run, args=(k,)) for k in range(senders)]
        for t in ts:
            t.start()
        time.sleep(secs / 2.0)
        explain = self.explain_claim("in the middle of the window")
        for t in ts:
            t.join()
        t_end = time.time()
        counts, max_queued = self.wait_done("uns-%", len(sent), 120)
        cpu = meter.stop()
        stmts = pgss_read(self.pg, self.db, "postgres")
        times = self.job_times("uns-%")
        to_running = [t[1] - t[0] for t in times.values()]
        send_to_running = [times[nm][1] - s[1] for nm, s in sent.items() if nm in times]
        run_time = [t[2] - t[1] for t in times.values()]
        lag = [s[1] - s[0] for s in sent.values()]
        accept = [s[2] - s[1] for s in sent.values()]
        r = {"target_per_s": round(rate, 1), "seconds": secs, "sent": len(sent) + len(errors),
             "achieved_per_s": round(len(sent) / max(1e-6, t_end - t0), 1), "api_errors": len(errors),
             "api_error_samples": errors[:5], "succeeded": len(times), "states": counts, "max_queued_seen": max_queued,
             "longest_statement_ms": self.longest_ms, "long_statements": self.long_statements,
             "send_lag_p99_ms": ms(pct(lag, 99)), "accept_p50_ms": ms(pct(accept, 50)), "accept_p99_ms": ms(pct(accept, 99)),
             "to_running_p50_ms": ms(pct(to_running, 50)), "to_running_p99_ms": ms(pct(to_running, 99)),
             "to_running_max_ms": ms(max(to_running) if to_running else None),
             "send_to_running_p50_ms": ms(pct(send_to_running, 50)), "send_to_running_p99_ms": ms(pct(send_to_running, 99)),
             "run_time_p50_ms": ms(pct(run_time, 50)), "run_time_p99_ms": ms(pct(run_time, 99)),
             "cpu_cores": cpu, "sql": summarize_statements(stmts, max(1, len(times))), "jobs_table": self.table_stats(),
             "slow_statements": summarize_slow(self.pg.slow_statements(log0)),
             "claim_explain": explain,
             "capstan_cpu_ms_per_job": round(cpu["capstan"] * cpu["seconds"] * 1000 / max(1, len(times)), 3),
             "postgres_cpu_ms_per_job": round(cpu["postgres"] * cpu["seconds"] * 1000 / max(1, len(times)), 3)}
        log("  %d succeeded: to running p50 %s ms p99 %s ms (from sending: p99 %s ms); a job runs %s ms (p50)" % (
            len(times), fmt(r["to_running_p50_ms"]), fmt(r["to_running_p99_ms"]), fmt(r["send_to_running_p99_ms"]),
            fmt(r["run_time_p50_ms"])))
        return r

    # --- 4. memory at rest ---

    def top_up_tenants(self):
        """Makes sure at least REST_TENANTS tenants exist: the run's own, plus copies made by SQL
        (same spec as a tenant of the run, state ready) when --n was smaller."""
        have = int(self.pg.value("SELECT count(*) FROM tenants", self.db))
        if have < REST_TENANTS:
            self.pg.query(
                "INSERT INTO tenants (name, spec, state, observed_generation) SELECT 'seed-' || g, "
                "(SELECT spec FROM tenants ORDER BY id LIMIT 1) || jsonb_build_object('displayName', 'Seed ' || g), "
                "'ready', 1 FROM generate_series(1, %d) g" % (REST_TENANTS - have), self.db)
        return int(self.pg.value("SELECT count(*) FROM tenants", self.db))

    def rest_requests(self, app):
        """A few list and get requests (what a portal does), then 3 s of rest."""
        c = Client(app.port)
        try:
            cursor = None
            for _ in range(5):
                st, js = c.call("GET", "/api/v1/tenants?limit=50" + ("&cursor=" + cursor if cursor else ""))
                if st != 200:
                    raise RuntimeError("list tenants: %d %r" % (st, js))
                cursor = js.get("nextCursor")
            names = [t["name"] for t in js["items"][:5]]
            for nm in names + ["sat-00000", "sat-%05d" % (self.n // 2)]:
                st, js = c.call("GET", "/api/v1/tenants/" + nm)
                if st not in (200, 404):
                    raise RuntimeError("get tenant: %d %r" % (st, js))
            st, js = c.call("GET", "/api/v1/jobs?limit=50")
            if st != 200:
                raise RuntimeError("list jobs: %d %r" % (st, js))
        finally:
            c.close()
        time.sleep(3)
        return proc_mem(app.proc.pid)

    # --- 5. pgbench ---

    def pgbench(self):
        """pgbench of PGBENCH_SCRIPT in a database of its own on the same server, migrated by
        `capstan migrate` (the real jobs table, empty), dropped afterwards so that its autovacuum
        does not run during capstan's runs."""
        secs = self.pgbench_seconds
        db = self.pg.create_db("engine_pgbench")
        self.pg.psql("CREATE EXTENSION pg_stat_statements", db)
        r = harness.run_capstan(["migrate"], database_url=self.pg.url(db))
        if r.returncode != 0:
            raise RuntimeError("capstan migrate failed (%d): %s" % (r.returncode, (r.stdout + r.stderr)[-1500:]))
        script = os.path.join(self.b.tmp, "job.pgbench")
        with open(script, "w") as f:
            f.write(PGBENCH_SCRIPT)
        log("  pgbench: the bare SQL of a job (insert, claim with SKIP LOCKED, finish), %d clients, %d s, "
            "a new database migrated by capstan migrate" % (WORKERS, secs))

        def pgbench(t):
            cmd = [os.path.join(self.pg.bindir, "pgbench"), "-n", "-M", "prepared", "-c", str(WORKERS), "-j", "2",
                   "-T", str(t), "-f", script, "-d", self.pg.url_as(db, PGBENCH_ROLE)]
            return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=t + 120)
        # a warm-up, then VACUUM ANALYZE: the baseline is the bare SQL on a table with fresh
        # statistics (on a table never analyzed its claim plan differs from run to run)
        pgbench(3)
        self.pg.query("VACUUM ANALYZE jobs", db)
        done0 = int(self.pg.value("SELECT count(*) FROM jobs WHERE state = 'succeeded'", db))
        pgss_reset(self.pg, db)
        meter = self.cpu_meter().start()
        r = pgbench(secs)
        cpu = meter.stop()
        if r.returncode != 0:
            raise RuntimeError("pgbench failed (%d): %s %s" % (r.returncode, r.stdout[-1500:], r.stderr[-1500:]))
        m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", r.stdout)
        if not m:
            raise RuntimeError("pgbench printed no tps: " + r.stdout[-1500:])
        tps = float(m.group(1))
        txns = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
        lat = re.search(r"latency average = ([0-9.]+) ms", r.stdout)
        done = int(self.pg.value("SELECT count(*) FROM jobs WHERE state = 'succeeded'", db)) - done0
        left = int(self.pg.value("SELECT count(*) FROM jobs WHERE state <> 'succeeded'", db))
        n_txn = int(txns.group(1)) if txns else None
        stmts = pgss_read(self.pg, db, PGBENCH_ROLE)
        self.pg.psql('DROP DATABASE "%s"' % db)
        res = {"clients": WORKERS, "seconds": secs, "tps": round(tps, 1), "transactions": n_txn,
               "latency_avg_ms": float(lat.group(1)) if lat else None,
               "jobs_finished": done, "jobs_finished_per_s": round(done / (cpu["seconds"] or secs), 1),
               "jobs_left_queued": left, "cpu_cores": cpu,
               "postgres_cpu_ms_per_job": round(cpu["postgres"] * cpu["seconds"] * 1000 / max(1, n_txn or 1), 3),
               "sql": summarize_statements(stmts, max(1, n_txn or 1)), "script": PGBENCH_SCRIPT}
        log("  pgbench: %.0f tps (%d jobs finished, %d claims found nothing), PostgreSQL %.2f cores" % (
            tps, done, left, cpu["postgres"]))
        return res

    # --- the whole run ---

    def run(self):
        b = self.b
        log("\n== %s: the job engine with no-op steps (N=%d, %d workers) against pgbench of the bare SQL" % (
            NAME, self.n, WORKERS))
        t_start = time.time()
        self.pg = PgssPostgres()  # its own temporary folder (PostgreSQL runs as another user)
        try:
            self.pg.start()
            pgb = self.pgbench()
            self.res["pgbench"] = pgb
            self.db = self.pg.create_db("engine")
            self.pg.psql("CREATE EXTENSION pg_stat_statements", self.db)
            self.app = self.start_capstan("engine")
            self.res["rss_start_mib"] = mib(proc_mem(self.app.proc.pid).get("VmRSS"))
            sat = self.saturated()
            self.res["saturated"] = sat
            rate = max(1.0, self.unsat_fraction * sat["jobs_per_s"])
            uns = self.unsaturated(rate)
            self.res["unsaturated"] = uns
            tenants = self.top_up_tenants()
            mem = self.rest_requests(self.app)
            rest = {"tenants": tenants, "rss_mib": mib(mem.get("VmRSS")), "rss_anon_mib": mib(mem.get("RssAnon")),
                    "rss_file_mib": mib(mem.get("RssFile")), "hwm_mib": mib(mem.get("VmHWM"))}
            log("  at rest after the run, %d tenants: RSS %.1f MiB (anonymous %.1f, file %.1f)" % (
                tenants, rest["rss_mib"], rest["rss_anon_mib"], rest["rss_file_mib"]))
            b.stop(self.app)
            self.app = self.start_capstan("engine-fresh")
            mem = self.rest_requests(self.app)
            rest["fresh_rss_mib"] = mib(mem.get("VmRSS"))
            rest["fresh_rss_anon_mib"] = mib(mem.get("RssAnon"))
            log("  a fresh capstan on that database: RSS %.1f MiB after the same requests" % rest["fresh_rss_mib"])
            b.stop(self.app)
            self.app = None
            self.res["rest"] = rest
            self.res["ratio"] = round(sat["jobs_per_s"] / pgb["tps"], 3) if pgb["tps"] else None
            self.res["engine_ratio"] = round(sat["engine_jobs_per_s"] / pgb["tps"], 3) if pgb["tps"] else None
        finally:
            if self.app:
                self.app.kill()
            self.pg.destroy()
        self.res["seconds"] = round(time.time() - t_start, 1)
        b.results[NAME] = self.res
        self.report()
        return self.res

    def report(self):
        b, r = self.b, self.res
        sat, uns, rest, pgb = r["saturated"], r["unsaturated"], r["rest"], r["pgbench"]
        b.report("%s: job engine, no-op steps, %d workers (saturated: %d tenant creations from %d clients; "
                 "unsaturated: %.0f req/s for %d s)" % (NAME, WORKERS, r["n"], r["clients"], uns["target_per_s"], uns["seconds"]),
                 ["run", "jobs", "jobs/s end to end", "jobs/s engine", "to running p50 ms", "to running p99 ms",
                  "202 p99 ms", "job runs p50 ms", "statements/job", "claims/job", "DB exec ms/job", "capstan CPU ms/job",
                  "PG CPU ms/job", "other load (cores)"],
                 [["saturated", sat["succeeded"], sat["jobs_per_s"], sat["engine_jobs_per_s"], sat["to_running_p50_ms"],
                   sat["to_running_p99_ms"], sat["accept_p99_ms"], sat["run_time_p50_ms"], sat["sql"]["statements_per_job"], sat["sql"]["claims_per_job"],
                   sat["sql"]["exec_ms_per_job"], sat["capstan_cpu_ms_per_job"], sat["postgres_cpu_ms_per_job"],
                   sat["cpu_cores"]["other"]],
                  ["unsaturated", uns["succeeded"], uns["achieved_per_s"], "-", uns["to_running_p50_ms"],
                   uns["to_running_p99_ms"], uns["accept_p99_ms"], uns["run_time_p50_ms"], uns["sql"]["statements_per_job"], uns["sql"]["claims_per_job"],
                   uns["sql"]["exec_ms_per_job"], uns["capstan_cpu_ms_per_job"], uns["postgres_cpu_ms_per_job"],
                   uns["cpu_cores"]["other"]],
                  ["pgbench (bare SQL)", pgb["jobs_finished"], pgb["tps"], "-", "-", "-", "-", pgb["latency_avg_ms"],
                   pgb["sql"]["statements_per_job"], pgb["sql"]["claims_per_job"], pgb["sql"]["exec_ms_per_job"], "-", pgb["postgres_cpu_ms_per_job"],
                   pgb["cpu_cores"]["other"]]])
        b.report("%s: CPU of each part (cores, averaged over each run; 2 cores in all)" % NAME,
                 ["run", "seconds", "capstan", "PostgreSQL", "clients or pgbench", "other load"],
                 [[run, x["cpu_cores"]["seconds"], x["cpu_cores"]["capstan"], x["cpu_cores"]["postgres"],
                   x["cpu_cores"]["bench"], x["cpu_cores"]["other"]]
                  for run, x in (("saturated", sat), ("unsaturated", uns), ("pgbench", pgb))])
        if sat.get("rate_by_tenth"):
            b.report("%s: jobs/s in each tenth of the saturated run (last autoanalyze of jobs %s s after the first "
                     "request, last autovacuum %s s; longest capstan statement seen %s ms; jobs table %s MiB and "
                     "its indexes %s MiB after the run)" % (
                         NAME, fmt(sat.get("last_autoanalyze_s")), fmt(sat.get("last_autovacuum_s")),
                         fmt(sat.get("longest_statement_ms")), fmt(sat["jobs_table"].get("table_mib")),
                         fmt(sat["jobs_table"].get("indexes_mib"))),
                     ["%d" % (10 * (i + 1)) + " %" for i in range(len(sat["rate_by_tenth"]))], [sat["rate_by_tenth"]])
        b.report("%s: memory of capstan serve" % NAME,
                 ["at start", "peak during the saturated run (VmHWM)", "at rest after the run",
                  "tenants in the database", "fresh process, same requests"],
                 [["%s MiB" % fmt(r["rss_start_mib"]), "%s MiB" % fmt(sat["peak_rss_mib"]), "%s MiB" % fmt(rest["rss_mib"]),
                   rest["tenants"], "%s MiB" % fmt(rest["fresh_rss_mib"])]])
        uns_by = {x["statement"]: x for x in uns["sql"]["by_statement"]}
        rows = []
        for x in sat["sql"]["by_statement"]:
            u = uns_by.get(x["statement"], {})
            if x["per_job"] >= 0.01 or u.get("per_job", 0) >= 0.01:
                rows.append([x["statement"], x["per_job"], x["mean_exec_ms"], x["buffers_per_call"], x["exec_ms_per_job"],
                             u.get("per_job"), u.get("mean_exec_ms"), u.get("buffers_per_call")])
        b.report("%s: SQL per job (pg_stat_statements, capstan's statements; a call is a round trip)" % NAME,
                 ["statement", "saturated calls/job", "mean exec ms", "buffers/call", "exec ms/job",
                  "unsaturated calls/job", "mean exec ms", "buffers/call"], rows)
        ex = [x for x in (sat.get("claim_explain"), uns.get("claim_explain")) if x]
        if ex:
            b.report("%s: capstan's claim statement, EXPLAIN (ANALYZE, BUFFERS) during the runs" % NAME,
                     ["run", "when", "queued jobs", "execution ms", "buffers", "plan"],
                     [[run, x["when"], x["queued"], x["execution_ms"], x["buffers"],
                       ", ".join(dict.fromkeys(x["scans"])) + (", sort" if x["sort"] else "")]
                      for run, x in zip(("saturated", "unsaturated"), (sat.get("claim_explain"), uns.get("claim_explain"))) if x])
        rows = []
        for run, x in (("saturated", sat), ("unsaturated", uns)):
            for label, v in sorted((x.get("slow_statements") or {}).items(), key=lambda kv: -kv[1]["max_ms"]):
                rows.append([run, label, v["count"], round(v["max_ms"] / 1000.0, 2), round(v["total_ms"] / 1000.0, 1)])
        if rows:
            b.report("%s: statements of capstan slower than %d ms (auto_explain)" % (NAME, SLOW_MS),
                     ["run", "statement", "count", "slowest s", "total s"], rows)
            worst = max(((run, label, v) for run, x in (("saturated", sat), ("unsaturated", uns))
                         for label, v in (x.get("slow_statements") or {}).items()), key=lambda t: t[2]["max_ms"])
            text = ("The plan of the slowest (%s run, %s, %.1f s), as auto_explain logged it:\n\n```\n%s\n```\n" % (
                worst[0], worst[1], worst[2]["max_ms"] / 1000.0, worst[2]["plan"]))
            b.reports.append(text)
            log(text)
        g = NAME
        b.goal(g, "jobs succeeded of %d (no API error)" % r["n"], sat["succeeded"] - sat["api_errors"], "==", r["n"])
        b.goal(g, "capstan jobs/s end to end / pgbench tps of the bare SQL", r["ratio"], ">=", 0.5)
        b.goal(g, "request to running p99, unsaturated (%.0f req/s)" % uns["target_per_s"], uns["to_running_p99_ms"], "<", 50, " ms")
        b.goal(g, "peak RSS of capstan serve during the saturated run", sat["peak_rss_mib"], "<", 150, " MiB")
        b.goal(g, "RSS of capstan serve at rest after the run, >= %d tenants" % REST_TENANTS, rest["rss_mib"], "<", 50, " MiB")


def run(bench):
    """Entry point for bench/capbench.py (--only engine): uses bench.quick and bench.args.n."""
    a = bench.args
    return EngineBench(bench, n=getattr(a, "n", None), clients=getattr(a, "clients", 8),
                       unsat_fraction=getattr(a, "unsat_fraction", 0.3),
                       unsat_seconds=getattr(a, "unsat_seconds", None),
                       pgbench_seconds=getattr(a, "pgbench_seconds", None)).run()


# ---------------------------------------------------------------- standalone (bench/jobs)

def meta(bench, args):
    m = bench.meta()
    m.pop("wrk", None)
    m.update(command=" ".join(shlex.quote(a) for a in ["bench/jobs"] + sys.argv[1:]), source=SOURCE,
             postgres="PostgreSQL %s, fsync=off, synchronous_commit=off, pg_stat_statements "
                      "(tests/integration/harness.py)" % os.path.basename(os.path.dirname(harness.pg_bindir())))
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=None, help="jobs of the saturated run (default 20000; 5000 with --quick)")
    ap.add_argument("--quick", action="store_true", help="5000 jobs, 10 s windows (about 1 minute)")
    ap.add_argument("--clients", type=int, default=8, help="client threads of the saturated run (default 8)")
    ap.add_argument("--unsat-fraction", type=float, default=0.3,
                    help="rate of the unsaturated run as a fraction of the saturated jobs/s (default 0.3)")
    ap.add_argument("--unsat-seconds", type=int, default=None, help="length of the unsaturated run (20; 10 with --quick)")
    ap.add_argument("--pgbench-seconds", type=int, default=None, help="length of the pgbench run (20; 10 with --quick)")
    ap.add_argument("--bin", default=os.environ.get("CAPSTAN_BIN", os.path.join(capbench.SOURCE_DIR, "build-bench", "capstan")))
    ap.add_argument("--source", default=capbench.SOURCE_DIR,
                    help="the source tree of --bin (for the names of its SQL statements; default this tree)")
    ap.add_argument("--keep", action="store_true", help="keep capstan logs (path printed at the end)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="folder for the results files")
    ap.add_argument("--note", default="", help="a line about this run for the results")
    args = ap.parse_args()
    args.no_git_server = True
    global SOURCE
    SOURCE = os.path.abspath(args.source)
    if not os.access(args.bin, os.X_OK):
        sys.exit("capstan binary %s not found (build it, or use bench/jobs)" % args.bin)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = capbench.Bench(args)
    m = capbench.begin(bench, meta(bench, args), args.note, "bench/jobs")
    t0 = time.time()
    try:
        status = capbench.run_one(bench, NAME, lambda: run(bench))
    finally:
        bench.close()
    capbench.finish(bench, m, t0, status,
                    os.path.join(args.out, datetime.date.today().isoformat() + "-jobs" + ("-quick" if args.quick else "")),
                    "bench/jobs", with_benchmark=False, command=m["command"])


if __name__ == "__main__":
    main()
