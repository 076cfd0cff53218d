"""Shared helpers of the bench/ scripts: run a child process and measure its own wall time and
peak resident memory (os.wait4's rusage, per child, not the maximum over all children), and run
one `dicke` scenario that way. Standard library only: bench/gpu.py runs it on the device
machine, which has no numpy."""
import json
import os
import subprocess
import tempfile
import time


def run_measured(args, timeout=3600, env=None):
    """Run args; return wall_s, peak_rss_mib, rc, stdout, stderr (tail) — or timeout: True."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as fout, tempfile.TemporaryFile("w+") as ferr:
        p = subprocess.Popen(args, stdout=fout, stderr=ferr, text=True, env=env)
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                p.returncode = -9
                return {"wall_s": time.perf_counter() - t0, "timeout": True}
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fout.seek(0)
        ferr.seek(0)
        return {"wall_s": wall, "peak_rss_mib": ru.ru_maxrss / 1024, "rc": p.returncode,
                "stdout": fout.read(), "stderr": ferr.read()[-2000:]}


def run_dicke(binary, scenario, sets=(), backend=None, timeout=3600):
    """`dicke run scenario --set s ...` into a fresh directory, measured by run_measured.
    Returns {"s", "peak_rss_mib", "result" (result.json), "dir"}, or {"error": stderr's tail}."""
    d = tempfile.mkdtemp(prefix="bench_dicke_")
    args = [binary, "run", scenario, "--out", d]
    if backend:
        args += ["--backend", backend]
    for s in sets:
        args += ["--set", s]
    r = run_measured(args, timeout=timeout)
    if r.get("timeout") or r["rc"] != 0:
        return {"error": (r.get("stderr") or f"ran past {timeout} s").strip()[-300:]}
    with open(os.path.join(d, "result.json")) as f:
        res = json.load(f)
    return {"s": r["wall_s"], "peak_rss_mib": r["peak_rss_mib"], "result": res, "dir": d}


def run_dicke_rows(binary, scenario, sets=()):
    """run_dicke that must succeed: (wall s, result.json, observables.csv as a numpy record
    array), the form the peer comparisons read."""
    import numpy as np

    r = run_dicke(binary, scenario, sets)
    if "error" in r:
        raise RuntimeError(f"dicke run {scenario} failed: {r['error']}")
    obs = os.path.join(r["dir"], "observables.csv")
    return r["s"], r["result"], np.genfromtxt(obs, delimiter=",", names=True)
