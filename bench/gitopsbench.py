#!/usr/bin/env python3
"""capstan benchmark bench/gitops: tenant onboardings per second through the GitOps engine against
the git command line (see bench/README.md, section "bench/gitops").

Run through bench/gitops (which builds bench/gitops_bench first), or from bench/capbench.py
(`bench/run --only gitops`):

    bench/gitops [--n 1000] [--threads 8] [--goal 20] [--keep] [--out DIR] [--note TEXT]

In one run on this machine, each into a new local bare repository:
  1. bench/gitops_bench commits N tenant onboardings through the engine from W threads (--threads,
     default 8), and writes the changes out (--dump) for the reference;
  2. the same with one thread (W = 1);
  3. bench/gitops_reference.sh makes the same N changes with the git command line, one commit and
     one push per change, sequentially.
Then it checks that the three branches hold the same tree, that every job's Capstan-Job trailer is
on each branch exactly once, and compares the rates: the goal is engine (W threads) >= --goal
times the command line. It prints a table and one PASS/FAIL line, writes
bench/results/<date>-gitops.json (<date>-gitops-n<N>.json for another N), and exits 0 when the
goal passed, 1 when it failed, 2 when the benchmark could not run.

Only the Python standard library is used.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
REFERENCE = os.path.join(HERE, "gitops_reference.sh")
AUTHOR = ("capstan", "capstan@localhost")
GOAL_RATIO = 20.0


def log(msg):
    print(msg, flush=True)


def machine_busy():
    """CPU seconds the whole machine spent not idle since boot."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / tick


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def git(gitdir, *args):
    r = subprocess.run(["git", "--git-dir", gitdir] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError("git %s in %s: %s" % (" ".join(args), gitdir, r.stderr.strip()))
    return r.stdout


def bare(path):
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", path], check=True)
    return path


def run_json(cmd, what, env=None):
    """Runs cmd, returns (its last stdout line as JSON, machine cores used by others meanwhile).
    Raises with its output when it fails."""
    m0, c0, w0 = machine_busy(), children_cpu(), time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wall = max(1e-6, time.time() - w0)
    other = ((machine_busy() - m0) - (children_cpu() - c0)) / wall
    lines = [x for x in r.stdout.splitlines() if x.strip()]
    if r.returncode != 0 or not lines:
        raise RuntimeError("%s failed (exit %d): %s %s" % (what, r.returncode, r.stdout[-2000:],
                                                          r.stderr[-2000:]))
    res = json.loads(lines[-1])
    res["other_load_cores"] = round(other, 2)
    return res


def trailers(gitdir):
    """{job id: times a Capstan-Job trailer names it on main}."""
    ids = {}
    for line in git(gitdir, "log", "--format=%B", "main").splitlines():
        if line.startswith("Capstan-Job: "):
            j = line.split(": ", 1)[1].strip()
            ids[j] = ids.get(j, 0) + 1
    return ids


def check_trailers(gitdir, jobs):
    """Problems (strings) with the trailers of gitdir's main against the job ids jobs."""
    tr = trailers(gitdir)
    missing = [j for j in jobs if tr.get(j, 0) == 0]
    doubled = [j for j in jobs if tr.get(j, 0) > 1]
    foreign = [j for j in tr if j not in set(jobs)]
    out = []
    if missing:
        out.append("%d jobs have no Capstan-Job trailer (e.g. %s)" % (len(missing), missing[0]))
    if doubled:
        out.append("%d jobs are on the branch more than once (e.g. %s)" % (len(doubled), doubled[0]))
    if foreign:
        out.append("%d trailers name no job of the run (e.g. %s)" % (len(foreign), foreign[0]))
    return out


def check_tree(gitdir, ref_gitdir, n):
    """Problems with gitdir's main tree against the reference's; also that it holds n tenants."""
    out = []
    a, b = git(gitdir, "ls-tree", "-r", "main"), git(ref_gitdir, "ls-tree", "-r", "main")
    if a != b:
        la, lb = set(a.splitlines()), set(b.splitlines())
        only_a, only_b = sorted(la - lb), sorted(lb - la)
        out.append("tree differs from the command line's: %d entries only here (e.g. %s), %d only "
                   "there (e.g. %s)" % (len(only_a), only_a[:1], len(only_b), only_b[:1]))
    tenants = [x for x in git(gitdir, "ls-tree", "-d", "--name-only", "main", "tenants/").splitlines() if x]
    if len(tenants) != n:
        out.append("%d tenant folders on the branch, expected %d" % (len(tenants), n))
    return out


def run(bench_bin, n=1000, threads=8, goal=GOAL_RATIO, keep=False, tmp_parent=None):
    """Runs the three sides and the checks. Returns the result dictionary (see main()); raises
    RuntimeError when a side could not run."""
    tmp = tempfile.mkdtemp(prefix="capstan-bench-gitops-", dir=tmp_parent)
    env = dict(os.environ, GIT_AUTHOR_NAME=AUTHOR[0], GIT_AUTHOR_EMAIL=AUTHOR[1])
    try:
        dump = os.path.join(tmp, "dump")
        sides = {}
        jobs = {}
        configs = [("engine", threads)] + ([("engine_1", 1)] if threads != 1 else [])
        for name, w in configs:
            repo = bare(os.path.join(tmp, name + ".git"))
            jobs_file = os.path.join(tmp, name + ".jobs")
            cmd = [bench_bin, "--url", repo, "--cache", os.path.join(tmp, name + "-cache"),
                   "--n", str(n), "--threads", str(w), "--jobs", jobs_file,
                   "--author-name", AUTHOR[0], "--author-email", AUTHOR[1]]
            if name == "engine":
                cmd += ["--dump", dump]
            log("  engine, %d thread%s: %d tenant onboardings ..." % (w, "" if w == 1 else "s", n))
            sides[name] = run_json(cmd, "gitops_bench --threads %d" % w)
            sides[name]["repo"] = repo
            with open(jobs_file) as f:
                jobs[name] = [x.strip() for x in f if x.strip()]
        ref_repo = bare(os.path.join(tmp, "reference.git"))
        log("  git command line: %d tenant onboardings, one commit and push each ..." % n)
        sides["reference"] = run_json(["bash", REFERENCE, dump, ref_repo, os.path.join(tmp, "work")],
                                      "gitops_reference.sh", env=env)
        sides["reference"]["repo"] = ref_repo

        problems = []
        for name, _ in configs:
            s = sides[name]
            p = []
            if s.get("failed") or s.get("unchanged"):
                p.append("%s changes failed, %s made no commit (first error: %s)" % (
                    s.get("failed"), s.get("unchanged"), s.get("first_error")))
            p += check_tree(s["repo"], ref_repo, n)
            p += check_trailers(s["repo"], jobs[name])
            s["commits_on_branch"] = int(git(s["repo"], "rev-list", "--count", "main"))
            problems += ["%s: %s" % (name, x) for x in p]
        # the reference carries the engine run's job ids (its messages come from the dump)
        problems += ["reference: %s" % x for x in check_trailers(ref_repo, jobs["engine"])]
        if sides["reference"]["commits"] != n:
            problems.append("reference: %d commits for %d changes" % (sides["reference"]["commits"], n))
        for s in sides.values():
            s.pop("repo", None)
            s["cpu_ms_per_change"] = round(1000.0 * s["cpu_seconds"] / n, 2) if s.get("cpu_seconds") is not None else None

        ref_rate = sides["reference"]["changes_per_s"]
        ratio = sides["engine"]["changes_per_s"] / ref_rate if ref_rate else None
        ratio_1 = sides["engine_1"]["changes_per_s"] / ref_rate if ref_rate and "engine_1" in sides else None
        cpu_ratio = (sides["reference"]["cpu_seconds"] / sides["engine"]["cpu_seconds"]
                     if sides["engine"].get("cpu_seconds") else None)
        return {"n": n, "threads": threads, "goal_ratio": goal, "sides": sides,
                "ratio": round(ratio, 2) if ratio else None,
                "ratio_1_thread": round(ratio_1, 2) if ratio_1 else None,
                "cpu_ratio": round(cpu_ratio, 2) if cpu_ratio else None,
                "same_tree_and_trailers": not problems, "problems": problems,
                "pass": bool(ratio is not None and ratio >= goal and not problems)}
    finally:
        if keep:
            log("  kept the repositories in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def rows(res):
    """Table rows: one per side."""
    s = res["sides"]
    out = []
    labels = [("engine", "engine, %d threads (gitops_submit each)" % res["threads"]),
              ("engine_1", "engine, 1 thread"),
              ("reference", "git command line (commit + push each)")]
    ref = s["reference"]["changes_per_s"]
    for key, label in labels:
        if key not in s:
            continue
        x = s[key]
        out.append([label, round(x["changes_per_s"], 1), round(x["seconds"], 2),
                    round(x["changes_per_s"] / ref, 2) if ref else None, x["commits"],
                    x.get("push_attempts", x["commits"]),
                    round(x.get("changes_per_s_first_tenth", 0), 1),
                    round(x.get("changes_per_s_last_tenth", 0), 1),
                    x["cpu_ms_per_change"], x["other_load_cores"]])
    return out


HEADERS = ["", "changes/s", "seconds", "× command line", "commits", "push attempts",
           "changes/s first 10 %", "changes/s last 10 %", "CPU ms/change", "other load (cores)"]


def table(headers, body):
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in body]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for k, r in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |")
        if k == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.environ.get("GITOPS_BENCH_BIN",
                                                    os.path.join(SOURCE_DIR, "build-bench", "bench", "gitops_bench")),
                    help="the gitops_bench program")
    ap.add_argument("--n", type=int, default=1000, help="tenant onboardings per side (default 1000)")
    ap.add_argument("--threads", type=int, default=8, help="engine threads (default 8, like CAPSTAN_WORKERS)")
    ap.add_argument("--goal", type=float, default=GOAL_RATIO, help="goal: engine / command line (default 20)")
    ap.add_argument("--keep", action="store_true", help="keep the repositories (path printed)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="folder for the results file")
    ap.add_argument("--note", default="", help="a line about this run for the results")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit("gitops_bench %s not found (run bench/gitops, which builds it)" % args.bin)
    if args.n < 10 or args.n > 100000 or args.threads < 1 or args.threads > 256:
        sys.exit("--n must be 10..100000 and --threads 1..256")

    def srcgit(*a):
        r = subprocess.run(["git", "-C", SOURCE_DIR] + list(a), stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        return r.stdout.strip()
    m0, w0 = machine_busy(), time.time()
    time.sleep(2)
    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "commit": srcgit("rev-parse", "HEAD"),
            "dirty": bool(srcgit("status", "--porcelain", "--untracked-files=no")),
            "binary": args.bin, "cpus": os.cpu_count(), "kernel": platform.release(),
            "git": subprocess.run(["git", "--version"], stdout=subprocess.PIPE, text=True).stdout.strip(),
            "background_load_cores": round((machine_busy() - m0) / (time.time() - w0), 2),
            "note": args.note}
    log("bench/gitops: %d tenant onboardings, engine with %d threads and 1 thread against the git "
        "command line; %s%s, %d CPUs" % (args.n, args.threads, meta["commit"][:12],
                                         " (dirty tree)" if meta["dirty"] else "", meta["cpus"]))
    if meta["background_load_cores"] > 0.3:
        log("WARNING: other processes use %.2f of %d cores before the start; rates will suffer "
            "(see \"other load\")" % (meta["background_load_cores"], meta["cpus"]))
    t0 = time.time()
    try:
        res = run(args.bin, n=args.n, threads=args.threads, goal=args.goal, keep=args.keep)
    except (RuntimeError, OSError, subprocess.CalledProcessError, ValueError) as e:
        log("ERROR: %s" % e)
        sys.exit(2)
    meta["seconds"] = round(time.time() - t0, 1)
    log("\n" + table(HEADERS, rows(res)) + "\n")
    for p in res["problems"]:
        log("  PROBLEM: %s" % p)
    log("  same tree on all branches, every job's trailer exactly once: %s" %
        ("yes" if res["same_tree_and_trailers"] else "NO"))
    log("  engine CPU per change: %.1f × less than the command line's" % (res["cpu_ratio"] or 0))
    log("%s  engine (%d threads) / command line: %.1f × (%.1f vs %.1f changes/s; goal >= %g ×); "
        "1 thread: %.1f ×" % ("PASS" if res["pass"] else "FAIL", args.threads, res["ratio"] or 0,
                              res["sides"]["engine"]["changes_per_s"],
                              res["sides"]["reference"]["changes_per_s"], args.goal,
                              res["ratio_1_thread"] or 0))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, datetime.date.today().isoformat() + "-gitops" +
                        ("" if args.n == 1000 else "-n%d" % args.n) + ".json")
    with open(path, "w") as f:
        json.dump({"meta": meta, "result": res}, f, indent=1, sort_keys=True)
        f.write("\n")
    log("wrote %s" % path)
    sys.exit(0 if res["pass"] else 1)


if __name__ == "__main__":
    main()
