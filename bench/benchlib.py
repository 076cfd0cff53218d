"""Shared helpers of the bench/ scripts: run a child process and measure its own wall time and
peak resident memory (os.wait4's rusage, per child, not the maximum over all children)."""
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
