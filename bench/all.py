#!/usr/bin/env python3
"""Every performance comparison of issue 14 in one run, one table (BENCHMARKS.md "Summary").

    python3 bench/all.py DICKE_BINARY OUT_DIR [--only a,b,...] [--long]

Each row runs the peer (QuTiP/PIQS from PyPI, bench/peers.py or bench/spectrum_compare.py's
worker) and dicke (`dicke run` of a shipped scenario with --set overrides) one after the other,
each in its own process: wall time and peak RSS of that process (os.wait4). The peer's time is
its solve call (without Python's start-up and imports); dicke's is the whole `dicke run`
process (start-up, solve, outputs). Rows without a peer say why. Agreement is stated per row.

Rows (ids for --only): steady, steady1000, spectrum, piqs, mesolve, mcsolve, cumulant;
with --long also evolve1000 (minutes) and blocks200 (up to 15 minutes).
Writes OUT_DIR/all.json (everything, raw) and OUT_DIR/all.md (the table, with the machine).
"""
import datetime
import json
import os
import platform
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import run_dicke, run_measured  # noqa: E402

PEER_TIMEOUT_S = 1200


def peer(*args):
    r = run_measured([sys.executable, os.path.join(HERE, "peers.py")] + [str(a) for a in args],
                     timeout=PEER_TIMEOUT_S)
    if r.get("timeout"):
        return {"error": f"ran past {PEER_TIMEOUT_S} s"}
    if r["rc"] != 0:
        return {"error": r["stderr"].strip().splitlines()[-1]}
    out = json.loads(r["stdout"].strip().splitlines()[-1])
    out["peak_rss_mib"] = r["peak_rss_mib"]
    return out


def dicke(binary, scenario, sets, backend="cpu", timeout=3600):
    r = run_dicke(binary, scenario, sets, backend, timeout)
    if "error" in r:
        return r
    res = r.pop("result")
    out = dict(r, stats=res.get("stats"), results=res.get("results"))
    obs = os.path.join(r["dir"], "observables.csv")
    if os.path.exists(obs):
        rows = np.genfromtxt(obs, delimiter=",", names=True)
        out["rows"] = {k: np.atleast_1d(rows[k]).tolist() for k in rows.dtype.names}
    return out


# --- rows: (peer result, dicke result, agreement text) ------------------------------------
def row_steady(b, n=400, x=0.938):
    q = peer("steadystate", n, x)
    d = dicke(b, "scenarios/exchange_steady_state.toml", [f"N={n}", f"x={x}"])
    agree = lambda: f"|d<Jz>|/j = {abs(q['Jz'] - d['rows']['Jz'][0]) / (n / 2):.1e}"
    return q, d, agree


def row_steady1000(b):
    d = dicke(b, "scenarios/exchange_steady_state.toml", ["N=1000", "x=0.938"])
    q = {"none": "not run (QuTiP's SuperLU needs ~10 GB and minutes here; the goal is dicke's memory)"}
    return q, d, lambda: f"residual {d['stats'].get('residual', float('nan')):.1e}"


def row_spectrum(b, n=400):
    import spectrum_compare as sc

    q = sc.qutip_solve("collective", n, 0.01)
    q["s"] = q.get("build_s", 0) + q.get("eigs_s", 0)
    d = sc.dicke_solve(b, "collective", n)
    d["s"] = d.get("process_s")
    agree = lambda: f"max |d lambda| = {sc.compare(d['eigenvalues'], q['eigenvalues'])['max_abs_diff']:.1e} (10 eigenvalues)"
    return q, d, agree


def row_piqs(b, n=54, x=0.75):
    q = peer("piqs", n, x)
    d = dicke(b, "scenarios/bistability_steady_state.toml", [f"N={n}", f"x={x}"])
    agree = lambda: f"|d<Jz>| = {abs(q['Jz'] - d['rows']['Jz'][0]):.1e} (PIQS: f32 rates)"
    return q, d, agree


def row_blocks200(b):
    d = dicke(b, "scenarios/bistability_steady_state.toml", ["N=200", "x=0.75"], timeout=3600)
    q = {"none": "not run (PIQS's 1.4e6-element block system: out of reach)"}
    return q, d, lambda: f"residual {d['stats'].get('residual', float('nan')):.1e}"


def evolve_sets(n):
    return [f"N={n}", "u=1.48", "task.t_end=0.05", "task.n_times=51", "task.rtol=1e-6",
            "task.atol=1e-8"]


def row_mesolve(b, n=400):
    q = peer("mesolve", n, 1.48, 0.05, 51)
    d = dicke(b, "scenarios/exchange_dynamics.toml", evolve_sets(n))
    agree = lambda: f"max_t |d<Jz>|/j = {np.max(np.abs(np.array(q['Jz']) - d['rows']['Jz'])) / (n / 2):.1e}"
    return q, d, agree


def row_evolve1000(b):
    d = dicke(b, "scenarios/exchange_dynamics.toml", evolve_sets(1000))
    q = {"none": "not run (QuTiP mesolve at N = 400 already takes minutes)"}
    return q, d, lambda: f"{d['stats'].get('steps')} steps"


def row_mcsolve(b, ntraj=500):
    q = peer("mcsolve", 100, ntraj, "parallel")
    d = dicke(b, "scenarios/exchange_trajectories.toml", [f"task.ntraj={ntraj}"])

    def agree():
        z = np.abs(np.array(q["Jz"]) - d["rows"]["Jz"])[1:] / (np.sqrt(2) * np.array(d["rows"]["Jz_se"])[1:])
        return f"max_t |d<Jz>| = {z.max():.1f} x sqrt(2) SE ({ntraj} trajectories each)"

    return q, d, agree


def row_cumulant(b, side=316):
    sets = ["N=2000", f"task.axes[0].num={side}", f"task.axes[1].num={side}", "task.n_times=301"]
    d = dicke(b, "scenarios/emission_squeezing_phase_diagram.toml", sets)
    q = {"none": "no peer (QuantumCumulants.jl is Julia; not installable here)"}
    return q, d, lambda: f"{side * side} points, N = 2000, 301 saves"


ROWS = {
    "steady": ("steady state, Dicke manifold, N = 400 (QuTiP steadystate)", row_steady),
    "steady1000": ("steady state, Dicke manifold, N = 1000", row_steady1000),
    "spectrum": ("spectrum, 10 eigenvalues nearest 0, N = 400 (scipy eigs on QuTiP's L)", row_spectrum),
    "piqs": ("steady state, blocks, N = 54 (PIQS + spsolve)", row_piqs),
    "blocks200": ("steady state, blocks, N = 200", row_blocks200),
    "mesolve": ("evolution, Dicke manifold, N = 400 (QuTiP mesolve)", row_mesolve),
    "evolve1000": ("evolution, Dicke manifold, N = 1000", row_evolve1000),
    "mcsolve": ("trajectories, N = 100, 500 (QuTiP mcsolve, parallel map)", row_mcsolve),
    "cumulant": ("cumulant sweep, 10^5 points, N = 2000", row_cumulant),
}
LONG = {"evolve1000", "blocks200"}


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    try:
        import qutip
        qv = qutip.__version__
    except ImportError:
        qv = "not installed"
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem / 2**20, 1),
            "commit": commit, "qutip": qv, "load_start": os.getloadavg()}


def fmt_row(title, q, d, agree):
    def t(x):
        return f"{x['s']:.2f} s" if "s" in x and x["s"] is not None else "—"

    def m(x):
        return f"{x['peak_rss_mib']:.0f}" if x.get("peak_rss_mib") else "—"

    if "error" in d:
        return f"| {title} | {t(q)} | {m(q)} | failed: {d['error'][:80]} | | | |"
    ratio = f"**{q['s'] / d['s']:.1f}x**" if "s" in q and q["s"] else q.get("none", q.get("error", "—"))
    try:
        a = agree()
    except (KeyError, TypeError, ValueError) as e:
        a = f"n/a ({type(e).__name__})"
    return f"| {title} | {t(q)} | {m(q)} | {t(d)} | {m(d)} | {ratio} | {a} |"


def main():
    binary, out_dir = sys.argv[1], sys.argv[2]
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    ids = [k for k in ROWS if (only is None and (k not in LONG or "--long" in sys.argv)) or (only and k in only)]
    info = machine()
    results, lines = {"machine": info, "rows": {}}, []
    for k in ids:
        title, fn = ROWS[k]
        print(f"running {k} ...", flush=True)
        q, d, agree = fn(binary)
        line = fmt_row(title, q, d, agree)
        print(line, flush=True)
        lines.append(line)
        results["rows"][k] = {"title": title, "peer": {a: v for a, v in q.items() if a not in ("Jz", "eigenvalues")},
                              "dicke": {a: v for a, v in d.items() if a not in ("rows", "eigenvalues")}, "line": line}
    info["load_end"] = os.getloadavg()
    head = (f"Machine: {info['cpu']}, {info['cores']} cores, {info['mem_gib']} GiB; {info['date']}; "
            f"dicke {info['commit']}; QuTiP {info['qutip']}; load average {info['load_start'][0]:.1f} "
            f"at the start, {info['load_end'][0]:.1f} at the end.\n\n"
            "| comparison | peer time | peer MiB | dicke time | dicke MiB | speed-up | agreement |\n"
            "|---|---|---|---|---|---|---|\n")
    table = head + "\n".join(lines) + "\n"
    os.makedirs(out_dir, exist_ok=True)
    json.dump(results, open(os.path.join(out_dir, "all.json"), "w"), indent=1, default=str)
    open(os.path.join(out_dir, "all.md"), "w").write(table)
    print("\n" + table)


if __name__ == "__main__":
    main()
