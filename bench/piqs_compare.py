#!/usr/bin/env python3
"""Times QuTiP's PIQS (qutip.piqs, installed from PyPI by bench/piqs_compare.sh) and `dicke`
on the steady state of the same permutation-invariant model, in the same run, and compares
<Jz>.

Model (seed 000, PHYSICS.md sec. 1): H = Omega Jx, Gamma D[J-] + gamma_down sum_n D[sigma_n^-],
gamma_1D = 15.5/(N-1) = Gamma, gamma_F = 1 - gamma_1D = gamma_down, Omega = 2 x Gamma_MF/4 with
x = 0.75 (the bistable point of Fig. 2). PIQS: Dicke(N, emission=gamma_F,
collective_emission=gamma_1D, hamiltonian=Omega jspin(N, "x")) (PIQS rates multiply D[.] as
here), .liouvillian(), then a sparse direct solve on its block elements with the trace
constraint (qutip.steadystate itself fails on it: see the comment at the solve).
dicke: `dicke run scenarios/bistability_steady_state.toml --set N=.. --set x=0.75` (process
wall time, including start-up and writing the outputs; and its own solve time from
result.json).
Usage: python3 bench/piqs_compare.py DICKE_BINARY OUT_JSON [N ...] (default 18 30 54; dicke
alone at N = 100 is always added)
"""
import json, os, platform, resource, sys, time
import numpy as np
import scipy.sparse.linalg
import qutip
from qutip import piqs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import run_dicke_rows  # noqa: E402

dicke_bin, out_json = sys.argv[1], sys.argv[2]
sizes = [int(a) for a in sys.argv[3:]] or [18, 30, 54]
x = 0.75
results = {"qutip_version": qutip.__version__, "numpy": np.__version__,
           "machine": platform.processor() or platform.machine(), "x": x, "runs": []}


def run_dicke(n):
    wall, res, rows = run_dicke_rows(dicke_bin, "scenarios/bistability_steady_state.toml",
                                     [f"N={n}", f"x={x}"])
    return wall, res, float(np.atleast_1d(rows["Jz"])[0])


for n in sizes:
    g1d = 15.5 / (n - 1)
    gF = 1.0 - g1d
    omega = 2 * x * 15.5 / 4
    t0 = time.perf_counter()
    system = piqs.Dicke(N=n, hamiltonian=omega * piqs.jspin(n, "x"), emission=gF,
                        collective_emission=g1d)
    liou = system.liouvillian()
    t_liou = time.perf_counter() - t0
    # qutip.steadystate(liou) fails here ("Matrix is singular"): PIQS's Liouvillian acts on
    # all nds^2 elements of the block-diagonal Dicke-basis matrix, and the coherences between
    # different j blocks (not part of the physical state) only precess under H, with zero
    # eigenvalues wherever two blocks share an energy. So the solve is done on the block
    # elements alone (piqs.block_matrix marks them; L maps them among themselves), with one
    # equation replaced by the trace, by scipy's spsolve (SuperLU, COLAMD: qutip's direct
    # method) in complex arithmetic.
    t0 = time.perf_counter()
    nds = piqs.num_dicke_states(n)
    bm = piqs.block_matrix(n)
    mask = (bm.toarray() if hasattr(bm, "toarray") else np.asarray(bm)).reshape(nds, nds)
    idx = np.nonzero(mask.T.reshape(-1) != 0)[0]  # qutip vectorises column by column
    L0 = liou.data.as_scipy().tocsr()[idx][:, idx].tocsr()
    diag = [k for k, v in enumerate(idx) if v // nds == v % nds]
    L = L0.tolil()
    L[diag[0], :] = 0
    for k in diag:
        L[diag[0], k] = 1.0
    A = L.tocsc()
    b = np.zeros(len(idx), dtype=complex)
    b[diag[0]] = 1.0
    t_setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    x_sol = scipy.sparse.linalg.spsolve(A, b)
    t_ss = time.perf_counter() - t0
    rho_vec = np.zeros(nds * nds, dtype=complex)
    rho_vec[idx] = x_sol
    rho = qutip.Qobj(rho_vec.reshape(nds, nds).T)
    jz_piqs = float(np.real((piqs.jspin(n, "z") * rho).tr()))
    # PIQS's Liouvillian is trace preserving only to ~1e-6 (its column sums over the
    # diagonal equations, ~10 x 2^-23: single-precision rates), which bounds the agreement.
    trace_defect = float(np.abs(np.asarray(L0[diag].sum(axis=0))).max())
    wall, res, jz_dicke = run_dicke(n)
    r = {"N": n, "piqs_liouvillian_s": t_liou, "piqs_setup_s": t_setup, "piqs_spsolve_s": t_ss,
         "piqs_total_s": t_liou + t_setup + t_ss, "dicke_process_s": wall,
         "dicke_wall_time_s": res["wall_time_s"], "Jz_piqs": jz_piqs, "Jz_dicke": jz_dicke,
         "Jz_diff": abs(jz_piqs - jz_dicke), "piqs_trace_defect": trace_defect, "speedup": (t_liou + t_setup + t_ss) / wall,
         "dicke_unknowns": res["stats"]["unknowns"], "dicke_residual": res["stats"]["residual"]}
    print(json.dumps(r), flush=True)
    results["runs"].append(r)

# dicke alone at N = 100 (PIQS would need a 176,851-dimensional Liouvillian solve).
before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
wall, res, jz = run_dicke(100)
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
r = {"N": 100, "dicke_process_s": wall, "dicke_wall_time_s": res["wall_time_s"], "Jz_dicke": jz,
     "dicke_peak_rss_mb": peak_kb / 1024 if peak_kb > before else None,
     "dicke_unknowns": res["stats"]["unknowns"], "dicke_residual": res["stats"]["residual"]}
print(json.dumps(r), flush=True)
results["runs"].append(r)
json.dump(results, open(out_json, "w"), indent=1)
