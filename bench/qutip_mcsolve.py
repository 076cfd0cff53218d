#!/usr/bin/env python3
"""QuTiP 5 mcsolve vs dicke trajectories on the same problem, same run.

Seed 001 model (H = chi J+J- + Omega Jx, Gamma D[J-], Gamma = 1, 2 chi = 1.875,
2 Omega/(N Gamma) = 1.48), N = 100 from the south pole, t in [0, 0.2], 201 save points,
NTRAJ trajectories (default 500).
Usage: python3 bench/qutip_mcsolve.py DICKE_BINARY OUT_JSON [--ntraj K] [--backend cpu|gpu]
"""
import json, os, subprocess, sys, tempfile, time
import numpy as np
import qutip

dicke_bin, out_json = sys.argv[1], sys.argv[2]
arg = lambda k, d: sys.argv[sys.argv.index(k) + 1] if k in sys.argv else d
ntraj = int(arg("--ntraj", 500))
backend = arg("--backend", "cpu")
N, Gamma, chi, u = 100, 1.0, 1.875 / 2, 1.48
j = N / 2
Jp, Jm, Jx, Jz = (qutip.jmat(j, s) for s in ("+", "-", "x", "z"))
south = qutip.basis(N + 1, N)  # jmat orders m = +j..-j
H = chi * Jp * Jm + u * N * Gamma / 2 * Jx
tlist = np.linspace(0, 0.2, 201)
t0 = time.perf_counter()
mc = qutip.mcsolve(H, south, tlist, [np.sqrt(Gamma) * Jm], e_ops=[Jz], ntraj=ntraj,
                   options={"progress_bar": False, "map": "serial"})
t_q = time.perf_counter() - t0
jz_q = np.array(mc.expect[0])

d = tempfile.mkdtemp()
t0 = time.perf_counter()
subprocess.run([dicke_bin, "run", "scenarios/exchange_trajectories.toml", "--out", d,
                "--backend", backend, "--set", f"task.ntraj={ntraj}"], check=True, capture_output=True)
t_d = time.perf_counter() - t0
rows = np.genfromtxt(os.path.join(d, "observables.csv"), delimiter=",", names=True)
res = json.load(open(os.path.join(d, "result.json")))

out = {
    "N": N, "ntraj": ntraj, "qutip_version": qutip.__version__, "backend": res["backend"],
    "qutip_mcsolve_s": t_q, "dicke_process_s": t_d, "dicke_wall_time_s": res["wall_time_s"],
    "speedup": t_q / t_d, "dicke_traj_per_s": ntraj / t_d, "qutip_traj_per_s": ntraj / t_q,
    # both are ensembles of ntraj: their difference has SE ~ sqrt(2) * dicke's SE
    "max_abs_diff_Jz_in_dicke_se": float(np.max(np.abs(jz_q - rows["Jz"]) / (np.sqrt(2) * rows["Jz_se"] + 1e-12))),
}
print(json.dumps(out))
json.dump(out, open(out_json, "w"), indent=2)
