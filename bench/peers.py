#!/usr/bin/env python3
"""The peers of bench/all.py: each QuTiP/PIQS computation of the comparison table, run in its own
process so that its peak memory is its own (bench/all.py measures it with os.wait4).

    python3 bench/peers.py steadystate N X        qutip.steadystate, seed 001, Omega = X Omega_c
    python3 bench/peers.py mesolve N U T_END NT   qutip.mesolve, seed 001 from the south pole
    python3 bench/peers.py mcsolve N NTRAJ MAP    qutip.mcsolve (MAP = serial | parallel)
    python3 bench/peers.py piqs N X               PIQS block steady state, seed 000

Each prints one JSON object: the solve's own time (`s`, without the Python start-up and
imports), and what the agreement needs (<Jz>, or <Jz>(t)).

Models (PHYSICS.md sec. 1; the engine's D[O] rho = O rho O^dag - {O^dag O, rho}/2):
  seed 001: H = chi J+J- + Omega Jx, Gamma D[J-], Gamma = 1, chi = 1.875/2,
            Omega_c = (N/2) sqrt(Gamma^2 + 4 chi^2); trajectories/mesolve: Omega = U N Gamma/2.
  seed 000: H = Omega Jx, Gamma D[J-] + gamma_F sum_n D[sigma_n^-], Gamma = gamma_1D =
            15.5/(N-1), gamma_F = 1 - gamma_1D, Omega = 2 X 15.5/4.
QuTiP's jmat orders the basis m = +j .. -j: the south pole m = -j is the last basis state.
"""
import json
import sys
import time

import numpy as np

GAMMA, CHI = 1.0, 1.875 / 2


def spin_ops(n):
    import qutip

    j = n / 2
    return [qutip.jmat(j, s) for s in ("+", "-", "x", "z")]


def steadystate(n, x):
    import qutip

    jp, jm, jx, jz = spin_ops(n)
    omega_c = n / 2 * np.sqrt(GAMMA**2 + 4 * CHI**2)
    h = CHI * jp * jm + x * omega_c * jx
    t0 = time.perf_counter()
    rho = qutip.steadystate(h, [np.sqrt(GAMMA) * jm])
    s = time.perf_counter() - t0
    return {"s": s, "Jz": float(qutip.expect(jz, rho))}


def mesolve(n, u, t_end, nt):
    import qutip

    jp, jm, jx, jz = spin_ops(n)
    h = CHI * jp * jm + u * n * GAMMA / 2 * jx
    south = qutip.ket2dm(qutip.basis(n + 1, n))
    tlist = np.linspace(0, t_end, nt)
    t0 = time.perf_counter()
    me = qutip.mesolve(h, south, tlist, [np.sqrt(GAMMA) * jm], e_ops=[jz],
                       options={"atol": 1e-8, "rtol": 1e-6, "store_states": False})
    s = time.perf_counter() - t0
    return {"s": s, "Jz": [float(v) for v in me.expect[0]]}


def mcsolve(n, ntraj, mapping):
    """QuTiP's defaults except norm_t_tol = 1e-9: with its default 1e-6 mcsolve stops with
    "Could not find the collapse time within desired tolerance" (jump rate ~2500 Gamma at
    N = 100: a 1e-6 bracket spans a norm change of 2.5e-3 > norm_tol = 1e-4)."""
    import qutip

    jp, jm, jx, jz = spin_ops(n)
    h = CHI * jp * jm + 1.48 * n * GAMMA / 2 * jx
    south = qutip.basis(n + 1, n)
    tlist = np.linspace(0, 0.2, 201)
    t0 = time.perf_counter()
    mc = qutip.mcsolve(h, south, tlist, [np.sqrt(GAMMA) * jm], e_ops=[jz], ntraj=ntraj,
                       options={"progress_bar": False, "map": mapping, "norm_t_tol": 1e-9})
    s = time.perf_counter() - t0
    return {"s": s, "Jz": [float(v) for v in mc.expect[0]]}


def piqs(n, x):
    """PIQS's Liouvillian restricted to its block elements, one equation replaced by the trace,
    scipy's spsolve (SuperLU, COLAMD: qutip's direct method). qutip.steadystate on the full
    PIQS Liouvillian raises "Matrix is singular" (the coherences between different j blocks only
    precess under H); bench/piqs_compare.py's docstring has the details."""
    import qutip
    import scipy.sparse.linalg
    from qutip import piqs as pq

    g1d = 15.5 / (n - 1)
    t0 = time.perf_counter()
    system = pq.Dicke(N=n, hamiltonian=2 * x * 15.5 / 4 * pq.jspin(n, "x"), emission=1.0 - g1d,
                      collective_emission=g1d)
    liou = system.liouvillian()
    nds = pq.num_dicke_states(n)
    bm = pq.block_matrix(n)
    mask = (bm.toarray() if hasattr(bm, "toarray") else np.asarray(bm)).reshape(nds, nds)
    idx = np.nonzero(mask.T.reshape(-1) != 0)[0]  # qutip vectorises column by column
    a = liou.data.as_scipy().tocsr()[idx][:, idx].tolil()
    diag = [k for k, v in enumerate(idx) if v // nds == v % nds]
    a[diag[0], :] = 0
    for k in diag:
        a[diag[0], k] = 1.0
    b = np.zeros(len(idx), dtype=complex)
    b[diag[0]] = 1.0
    sol = scipy.sparse.linalg.spsolve(a.tocsc(), b)
    s = time.perf_counter() - t0
    vec = np.zeros(nds * nds, dtype=complex)
    vec[idx] = sol
    rho = qutip.Qobj(vec.reshape(nds, nds).T)
    return {"s": s, "Jz": float(np.real((pq.jspin(n, "z") * rho).tr()))}


WORKERS = {
    "steadystate": lambda a: steadystate(int(a[0]), float(a[1])),
    "mesolve": lambda a: mesolve(int(a[0]), float(a[1]), float(a[2]), int(a[3])),
    "mcsolve": lambda a: mcsolve(int(a[0]), int(a[1]), a[2]),
    "piqs": lambda a: piqs(int(a[0]), float(a[1])),
}

if __name__ == "__main__":
    print(json.dumps(WORKERS[sys.argv[1]](sys.argv[2:])))
