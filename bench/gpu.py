#!/usr/bin/env python3
"""GPU benchmarks of bench/gpu.sh (issue 14 item 7): every kernel against its CPU twin in the
same run, on the same machine, through `dicke run` (whole processes, wall time and peak RSS).

    python3 bench/gpu.py BIN_DIR OUT_DIR        (GPU_BENCH_QUICK=1: tiny sizes, a dry run)

Rows:
  traj100    seed 001 trajectories, N = 100, t to 0.2/Gamma (scenarios/exchange_trajectories.toml),
             f32: trajectories/s; agreement of <Jz>(t) in combined standard errors.
  traj2000   seed 002 irrep-changing trajectories, N = 2000, gamma_s = 2 Gamma
             (emission_squeezing_trajectories.toml), a short window t in [0, T]:
             trajectory-steps/s, and the time 10^4 trajectories to t = 10/Gamma would take at
             that rate (the issue's goal: minutes) — an extrapolation, stated as one.
  master     batched master equation, scan of evolutions (exchange_scan_dynamics.toml), 256
             points at N = 50, f64: points/s; effective bandwidth under the traffic model
             "every Liouvillian application reads rho and writes k once" (16 B per complex
             element each way, Hermitian half), against the device's measured copy bandwidth.
  cumulant   cumulant sweep, seed 002 at N = 2000, 316 x 316 = 99,856 points, 301 saves
             (emission_squeezing_phase_diagram.toml): points/s; agreement max |d xi2_min| (dB).
The CPU twin runs on every core of the device machine; its rows are the same-run baseline.
Writes OUT_DIR/gpu_bench.md (the table BENCHMARKS.md takes) and gpu_bench.json.
"""
import csv
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import run_dicke  # noqa: E402

QUICK = os.environ.get("GPU_BENCH_QUICK") == "1"


def dicke(binary, scenario, backend, sets, timeout=600):
    r = run_dicke(binary, scenario, sets, backend, timeout)
    if "error" in r:
        return r
    res = r["result"]
    return {"s": r["s"], "mib": r["peak_rss_mib"], "stats": res["stats"],
            "backend": res["backend"], "dir": r["dir"]}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def traj100(b):
    ng, nc = (64, 64) if QUICK else (20000, 2000)
    sets = ["task.save_trajectories=0"] + (["N=20"] if QUICK else [])
    g = dicke(b, "scenarios/exchange_trajectories.toml", "gpu", sets + [f"task.ntraj={ng}"])
    c = dicke(b, "scenarios/exchange_trajectories.toml", "cpu", sets + [f"task.ntraj={nc}"])
    row = {"gpu": g, "cpu": c, "unit": "trajectories/s"}
    if "error" not in g and "error" not in c:
        row["gpu_rate"], row["cpu_rate"] = ng / g["s"], nc / c["s"]
        rg, rc = read_csv(f"{g['dir']}/observables.csv"), read_csv(f"{c['dir']}/observables.csv")
        # before the first jump every trajectory is the same (SE = 0): those saves are
        # compared in units of j (rounding), the others in combined standard errors
        se = [(float(a["Jz_se"]) ** 2 + float(k["Jz_se"]) ** 2) ** 0.5 for a, k in zip(rg, rc)]
        dz = [abs(float(a["Jz"]) - float(k["Jz"])) for a, k in zip(rg, rc)]
        z = max((d / s for d, s in zip(dz, se) if s > 0), default=0.0)
        d0 = max((d for d, s in zip(dz, se) if s == 0), default=0.0) / (float(rc[0]["J2"]) ** 0.5)
        row["agreement"] = f"max_t |d<Jz>| = {z:.1f} SE (saves with SE = 0: {d0:.0e} of j)"
    return row


def traj2000(b):
    t_end = 2e-5 if QUICK else 2e-3
    ng, nc = (2, 2) if QUICK else (4096, 32)
    sets = [f"task.t_end={t_end}", "task.n_times=11", "task.save_trajectories=0"] + (["N=200"] if QUICK else [])
    g = dicke(b, "scenarios/emission_squeezing_trajectories.toml", "gpu", sets + [f"task.ntraj={ng}"])
    c = dicke(b, "scenarios/emission_squeezing_trajectories.toml", "cpu", sets + [f"task.ntraj={nc}"])
    row = {"gpu": g, "cpu": c, "unit": "trajectory-steps/s"}
    if "error" not in g and "error" not in c:
        steps = sum(g["stats"]["steps_per_save"])
        row["gpu_rate"], row["cpu_rate"] = ng * steps / g["s"], nc * steps / c["s"]
        goal_steps = 1e4 * steps * 10.0 / t_end
        row["agreement"] = (f"{steps} steps/trajectory to t = {t_end:g}; 10^4 trajectories to "
                            f"t = 10/Gamma at this rate: {goal_steps / row['gpu_rate'] / 60:.0f} min (extrapolated)")
    return row


def master(b, copy_gbs):
    pts, n = (8, 10) if QUICK else (256, 50)
    sets = [f"task.num={pts}", f"N={n}"]
    g = dicke(b, "scenarios/exchange_scan_dynamics.toml", "gpu", sets)
    c = dicke(b, "scenarios/exchange_scan_dynamics.toml", "cpu", sets)
    row = {"gpu": g, "cpu": c, "unit": "points/s"}
    if "error" not in g and "error" not in c:
        row["gpu_rate"], row["cpu_rate"] = pts / g["s"], pts / c["s"]
        evals = sum(p["rhs_evals"] for p in g["stats"]["points"])
        elems = (n + 1) * (n + 2) / 2
        gbs = evals * elems * 32 / g["stats"]["batch_wall_s"] / 1e9
        frac = f", {100 * gbs / copy_gbs:.0f} % of the measured copy bandwidth" if copy_gbs else ""
        row["agreement"] = f"effective {gbs:.3g} GB/s (traffic model in bench/gpu.py){frac}"
    return row


def cumulant(b):
    side = 8 if QUICK else 316
    sets = ["N=2000", f"task.axes[0].num={side}", f"task.axes[1].num={side}", "task.n_times=301"]
    g = dicke(b, "scenarios/emission_squeezing_phase_diagram.toml", "gpu", sets)
    c = dicke(b, "scenarios/emission_squeezing_phase_diagram.toml", "cpu", sets)
    row = {"gpu": g, "cpu": c, "unit": "points/s"}
    if "error" not in g and "error" not in c:
        row["gpu_rate"], row["cpu_rate"] = side * side / g["s"], side * side / c["s"]
        rg, rc = read_csv(f"{g['dir']}/sweep.csv"), read_csv(f"{c['dir']}/sweep.csv")
        d = max(abs(float(a["xi2_min_dB"]) - float(k["xi2_min_dB"])) for a, k in zip(rg, rc)
                if a["xi2_min_dB"] not in ("", "NaN", "nan") and k["xi2_min_dB"] not in ("", "NaN", "nan"))
        row["agreement"] = f"{side * side} points; max |d xi2_min| = {d:.1e} dB"
    return row


def copy_bandwidth():
    """Device-to-device copy through PyTorch (present on the device image), GB/s counting bytes
    read and written; None where there is no torch or no CUDA device."""
    code = ("import torch,time\nx=torch.empty(2**30,dtype=torch.uint8,device='cuda');y=torch.empty_like(x)\n"
            "for _ in range(3): y.copy_(x)\ntorch.cuda.synchronize();t=time.perf_counter()\n"
            "for _ in range(20): y.copy_(x)\ntorch.cuda.synchronize();print(2*20*2**30/(time.perf_counter()-t)/1e9)")
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        return float(r.stdout.strip()) if r.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def line(name, row):
    def cell(x, rate):
        return f"{x['s']:.2f} s, {x['mib']:.0f} MiB, {rate:.3g}" if "s" in x else f"failed: {x['error'][:60]}"

    g, c = row["gpu"], row["cpu"]
    ratio = f"{row['gpu_rate'] / row['cpu_rate']:.1f}x" if "gpu_rate" in row else "—"
    return (f"| {name} | {row['unit']} | {cell(g, row.get('gpu_rate', 0))} | {cell(c, row.get('cpu_rate', 0))} "
            f"| {ratio} | {row.get('agreement', '')} |")


def main():
    bindir, out = sys.argv[1], sys.argv[2]
    b = os.path.join(bindir, "dicke")
    copy_gbs = copy_bandwidth()
    rows = {}
    plan = [("trajectories, N = 100 (f32)", lambda: traj100(b)),
            ("irrep-changing trajectories, N = 2000 (f32)", lambda: traj2000(b)),
            ("batched master equation, 256 points, N = 50 (f64)", lambda: master(b, copy_gbs)),
            ("cumulant sweep, 10^5 points, N = 2000 (f64)", lambda: cumulant(b))]
    lines = []
    for name, fn in plan:
        print(f"running: {name}", flush=True)
        rows[name] = fn()
        lines.append(line(name, rows[name]))
        print(lines[-1], flush=True)
    dev = next((r["gpu"]["backend"].get("device") for r in rows.values() if "backend" in r["gpu"]), "no GPU run")
    head = (f"Device: {dev}; measured copy bandwidth: "
            f"{f'{copy_gbs:.0f} GB/s' if copy_gbs else 'not measured (no torch/CUDA)'}; "
            f"CPU twin on {os.cpu_count()} cores of the same machine"
            f"{'; GPU_BENCH_QUICK=1 (dry run: sizes shrunk, not a speed figure)' if QUICK else ''}.\n\n"
            "| benchmark | unit | GPU (process, peak RSS, rate) | CPU twin (process, peak RSS, rate) | GPU/CPU | agreement / note |\n"
            "|---|---|---|---|---|---|\n")
    table = head + "\n".join(lines) + "\n"
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "gpu_bench.md"), "w").write(table)
    json.dump({"copy_gbs": copy_gbs, "rows": rows}, open(os.path.join(out, "gpu_bench.json"), "w"),
              indent=1, default=str)
    print("\n" + table)


if __name__ == "__main__":
    main()
