#!/usr/bin/env python3
"""QuTiP 5 mcsolve vs dicke trajectories on the same problem, in one run.

Seed 001 model (H = chi J+J- + Omega Jx, Gamma D[J-], Gamma = 1, 2 chi = 1.875,
2 Omega/(N Gamma) = 1.48), N = 100 from the south pole, t in [0, 0.2], 201 save points,
NTRAJ trajectories (default 500): scenarios/exchange_trajectories.toml.

Times QuTiP's mcsolve with its serial map and with its parallel map on every core, and the
dicke process on each requested backend (cpu: the CPU twin on every core; gpu: the WGSL
kernel on whatever adapter `--backend gpu` finds, lavapipe on a machine without a GPU).
Speed-ups are against the faster of the two QuTiP runs. Agreement: both are ensembles of
NTRAJ, so <Jz>_qutip - <Jz>_dicke has a standard error of about sqrt(2) x dicke's SE.

QuTiP options: its defaults except norm_t_tol = 1e-9 (default 1e-6). With the default, mcsolve
stops with "Could not find the collapse time within desired tolerance": the jump rate here is
~2500 Gamma, so in a 1e-6 time bracket the norm still changes by ~2.5e-3, far more than its
norm_tol of 1e-4 (PHYSICS.md sec. 4 on the stiffness).

Usage: python3 bench/qutip_mcsolve.py DICKE_BINARY OUT_JSON [--ntraj K] [--backends cpu,gpu]
"""
import json, os, subprocess, sys, tempfile, time
import numpy as np
import qutip

dicke_bin, out_json = sys.argv[1], sys.argv[2]
arg = lambda k, d: sys.argv[sys.argv.index(k) + 1] if k in sys.argv else d
ntraj = int(arg("--ntraj", 500))
backends = arg("--backends", "cpu,gpu").split(",")
N, Gamma, chi, u = 100, 1.0, 1.875 / 2, 1.48
j = N / 2
Jp, Jm, Jx, Jz = (qutip.jmat(j, s) for s in ("+", "-", "x", "z"))
south = qutip.basis(N + 1, N)  # jmat orders m = +j..-j
H = chi * Jp * Jm + u * N * Gamma / 2 * Jx
tlist = np.linspace(0, 0.2, 201)

out = {"N": N, "ntraj": ntraj, "qutip_version": qutip.__version__, "cores": os.cpu_count(), "qutip": {}, "dicke": {}}
jz_q = None
for mapping in ("serial", "parallel"):
    t0 = time.perf_counter()
    mc = qutip.mcsolve(H, south, tlist, [np.sqrt(Gamma) * Jm], e_ops=[Jz], ntraj=ntraj,
                       options={"progress_bar": False, "map": mapping, "norm_t_tol": 1e-9})
    t = time.perf_counter() - t0
    out["qutip"][mapping] = {"s": t, "traj_per_s": ntraj / t}
    jz_q = np.array(mc.expect[0])
    print(f"qutip mcsolve ({mapping}): {t:.2f} s", flush=True)
t_q = min(v["s"] for v in out["qutip"].values())

for backend in backends:
    d = tempfile.mkdtemp()
    t0 = time.perf_counter()
    r = subprocess.run([dicke_bin, "run", "scenarios/exchange_trajectories.toml", "--out", d,
                        "--backend", backend, "--set", f"task.ntraj={ntraj}"], capture_output=True, text=True)
    t_d = time.perf_counter() - t0
    if r.returncode != 0:
        out["dicke"][backend] = {"error": r.stderr.strip()[-400:]}
        print(f"dicke {backend}: not run ({r.stderr.strip()[-200:]})", flush=True)
        continue
    rows = np.genfromtxt(os.path.join(d, "observables.csv"), delimiter=",", names=True)
    res = json.load(open(os.path.join(d, "result.json")))
    z = np.abs(jz_q - rows["Jz"])[1:] / (np.sqrt(2) * rows["Jz_se"][1:])
    out["dicke"][backend] = {
        "backend": res["backend"], "process_s": t_d, "wall_time_s": res["wall_time_s"],
        "traj_per_s": ntraj / t_d, "speedup_vs_best_qutip": t_q / t_d,
        "max_abs_diff_Jz_in_se": float(np.max(z)),
    }
    print(f"dicke {backend} ({res['backend'].get('device', '')}): {t_d:.2f} s, {t_q / t_d:.1f}x the faster QuTiP", flush=True)

print(json.dumps(out, indent=2))
json.dump(out, open(out_json, "w"), indent=2)
