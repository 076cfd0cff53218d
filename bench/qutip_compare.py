#!/usr/bin/env python3
"""Times QuTiP 5 (installed from PyPI into target/bench-venv by bench/qutip_compare.sh) and
`dicke` on the same physics in the same run, and compares their results.

Problems (seed 001 model: H = chi J+J- + Omega Jx, Gamma D[J-], Gamma = 1, 2 chi = 1.875):
  mesolve:     N = 400 from the south pole, 2 Omega/(N Gamma) = 1.48, t in [0, 0.05], 51 points
  steadystate: N = 400, Omega = 0.938 Omega_c
Usage: python3 bench/qutip_compare.py DICKE_BINARY OUT_JSON [--n N]
"""
import json, os, sys, time
import numpy as np
import qutip

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import run_dicke_rows  # noqa: E402

dicke_bin, out_json = sys.argv[1], sys.argv[2]
N = int(sys.argv[sys.argv.index("--n") + 1]) if "--n" in sys.argv else 400
Gamma, chi = 1.0, 1.875 / 2
j = N / 2
Jp, Jm, Jx, Jz = qutip.jmat(j, "+"), qutip.jmat(j, "-"), qutip.jmat(j, "x"), qutip.jmat(j, "z")
dim = N + 1
# qutip.jmat orders states m = +j .. -j: the south pole m = -j is the LAST basis state.
south = qutip.basis(dim, dim - 1)
results = {"N": N, "qutip_version": qutip.__version__, "numpy": np.__version__}


def run_dicke(scenario, sets):
    return run_dicke_rows(dicke_bin, scenario, sets)


# --- mesolve ---------------------------------------------------------------------------
u = 1.48
Omega = u * N * Gamma / 2
H = chi * Jp * Jm + Omega * Jx
tlist = np.linspace(0, 0.05, 51)
t0 = time.perf_counter()
me = qutip.mesolve(H, qutip.ket2dm(south), tlist, [np.sqrt(Gamma) * Jm], e_ops=[Jz],
                   options={"atol": 1e-8, "rtol": 1e-6, "store_states": False})
t_qutip_me = time.perf_counter() - t0
jz_q = np.array(me.expect[0])
wall, res, rows = run_dicke("scenarios/exchange_dynamics.toml",
                            [f"N={N}", "u=1.48", "task.t_end=0.05", "task.n_times=51",
                             "task.rtol=1e-6", "task.atol=1e-8"])
jz_d = rows["Jz"]
results["mesolve"] = {
    "qutip_s": t_qutip_me, "dicke_process_s": wall, "dicke_wall_time_s": res["wall_time_s"],
    "speedup": t_qutip_me / wall,
    "max_abs_diff_Jz": float(np.max(np.abs(jz_q - jz_d))),
    "max_abs_diff_Jz_over_j": float(np.max(np.abs(jz_q - jz_d)) / j),
}
print(json.dumps(results["mesolve"]), flush=True)

# --- steadystate -----------------------------------------------------------------------
x = 0.938
Omega_c = N / 2 * np.sqrt(Gamma**2 + 4 * chi**2)
H = chi * Jp * Jm + x * Omega_c * Jx
t0 = time.perf_counter()
rho_q = qutip.steadystate(H, [np.sqrt(Gamma) * Jm])
t_qutip_ss = time.perf_counter() - t0
jz_qs = qutip.expect(Jz, rho_q)
wall, res, rows = run_dicke("scenarios/exchange_steady_state.toml", [f"N={N}", f"x={x}"])
results["steadystate"] = {
    "qutip_s": t_qutip_ss, "dicke_process_s": wall, "dicke_wall_time_s": res["wall_time_s"],
    "speedup": t_qutip_ss / wall,
    "Jz_qutip": float(jz_qs), "Jz_dicke": float(rows["Jz"]),
    "abs_diff_Jz": float(abs(jz_qs - rows["Jz"])),
}
print(json.dumps(results["steadystate"]), flush=True)
json.dump(results, open(out_json, "w"), indent=2)
