#!/usr/bin/env python3
"""Time-dependent protocols: QuTiP 5 mesolve (installed from PyPI into target/bench-venv by
bench/qutip_schedule.sh) and `dicke` on the same ramps in the same run, times and results.

Problems (both shipped scenarios, run unchanged by dicke; QuTiP gets the same model, the same
initial steady state and the same save grid):
  pump ramp   scenarios/pumping_hysteresis.toml (seed 004 Fig. 3b): Gamma D[J-] + w(t) D[J+],
              N = 100, w a triangle 0.8 -> 1.2 -> 0.8 Gamma over 2T, T = 0.4 N/(2 r Gamma),
              r = 16, from the steady state at w = 0.8; 801 saves. QuTiP's collapse operator
              is [J+, sqrt(w(t))] (a QobjEvo: the rate enters squared).
  drive ramp  scenarios/exchange_drive_ramp.toml (seed 001 model): H = chi J+J- + Omega(t) Jx,
              Gamma D[J-], N = 100, Omega 0.5 -> 1.5 -> 0.5 Omega_c over 8/Gamma, from the
              steady state at 0.5 Omega_c; 401 saves.
Both sides run at rtol 1e-10, atol 1e-12 (set on dicke's scenarios with --set). At rtol 1e-7
QuTiP's pump ramp drifts from the converged answer by 1.6e-3 in <Jz> (dicke's DP5 at 1e-7 is
within 5e-12 of its own 1e-10 run), so the comparison is made where both are converged.
QuTiP's adaptive integrator does not know the ramp's kink and steps across it; dicke lands
on it.
Reported: wall time of each, max |<Jz>_qutip - <Jz>_dicke| over the saves, and for the pump
ramp the hysteresis width from each (crossings of <Jz> = 0 on each leg, linear
interpolation between saves, as dicke's analysis does).
Usage: python3 bench/qutip_schedule.py DICKE_BINARY OUT_JSON
"""
import json, os, sys, time
import numpy as np
import qutip

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import run_dicke_rows  # noqa: E402

dicke_bin, out_json = sys.argv[1], sys.argv[2]
results = {"qutip_version": qutip.__version__, "numpy": np.__version__}
TOL = ["task.rtol=1e-10", "task.atol=1e-12"]
OPTS = {"atol": 1e-12, "rtol": 1e-10, "store_states": False, "nsteps": 10**7}


def run_dicke(scenario, sets):
    return run_dicke_rows(dicke_bin, scenario, list(sets) + ["output.plot=false"])


def triangle(lo, hi, T):
    """Piecewise linear lo -> hi over [0, T], back to lo over [T, 2T]."""
    return lambda t: lo + (hi - lo) * (t / T if t <= T else max(0.0, 2.0 - t / T))


def width(t, par, y, level, T):
    """Loop width |par(up crossing) - par(down crossing)| of y at `level`."""
    def cross(mask):
        tt, pp, yy = t[mask], par[mask], y[mask] - level
        k = np.nonzero(np.sign(yy[:-1]) != np.sign(yy[1:]))[0][0]
        f = yy[k] / (yy[k] - yy[k + 1])
        return pp[k] + f * (pp[k + 1] - pp[k])
    return abs(cross(t <= T) - cross(t >= T))


def spin(N):
    j = N / 2
    return [qutip.jmat(j, s) for s in ("+", "-", "x", "z")]


def pump_ramp():
    N, Gamma, r, lo, hi = 100, 1.0, 16.0, 0.8, 1.2
    T = (hi - lo) * N / (2 * r * Gamma)
    Jp, Jm, Jx, Jz = spin(N)
    tlist = np.linspace(0, 2 * T, 801)
    w = triangle(lo * Gamma, hi * Gamma, T)
    t0 = time.perf_counter()
    rho0 = qutip.steadystate(0 * Jz, [np.sqrt(Gamma) * Jm, np.sqrt(lo * Gamma) * Jp])
    c_ops = [np.sqrt(Gamma) * Jm, qutip.QobjEvo([Jp, lambda t: np.sqrt(w(t))])]
    me = qutip.mesolve(0 * Jz, rho0, tlist, c_ops, e_ops=[Jz], options=OPTS)
    t_q = time.perf_counter() - t0
    jz_q = np.real(np.array(me.expect[0]))
    wall, res, rows = run_dicke("scenarios/pumping_hysteresis.toml", TOL)
    par = np.array([w(t) for t in tlist])
    return {
        "N": N, "saves": len(tlist),
        "qutip_s": t_q, "dicke_process_s": wall, "dicke_wall_time_s": res["wall_time_s"],
        "speedup": t_q / wall,
        "max_abs_diff_Jz": float(np.max(np.abs(jz_q - rows["Jz"]))),
        "width_qutip": width(tlist, par, jz_q, 0.0, T),
        "width_dicke": res["results"]["hysteresis"]["width"],
    }


def drive_ramp():
    N, Gamma, chi = 100, 1.0, 1.875 / 2
    Omega_c = N / 2 * np.sqrt(Gamma**2 + 4 * chi**2)
    T = 4 / Gamma
    Jp, Jm, Jx, Jz = spin(N)
    tlist = np.linspace(0, 2 * T, 401)
    Om = triangle(0.5 * Omega_c, 1.5 * Omega_c, T)
    t0 = time.perf_counter()
    rho0 = qutip.steadystate(chi * Jp * Jm + 0.5 * Omega_c * Jx, [np.sqrt(Gamma) * Jm])
    H = [chi * Jp * Jm, [Jx, lambda t: Om(t)]]
    me = qutip.mesolve(H, rho0, tlist, [np.sqrt(Gamma) * Jm], e_ops=[Jz], options=OPTS)
    t_q = time.perf_counter() - t0
    jz_q = np.real(np.array(me.expect[0]))
    wall, res, rows = run_dicke("scenarios/exchange_drive_ramp.toml", TOL)
    return {
        "N": N, "saves": len(tlist),
        "qutip_s": t_q, "dicke_process_s": wall, "dicke_wall_time_s": res["wall_time_s"],
        "speedup": t_q / wall,
        "max_abs_diff_Jz": float(np.max(np.abs(jz_q - rows["Jz"]))),
    }


for name, f in (("pump_ramp", pump_ramp), ("drive_ramp", drive_ramp)):
    results[name] = f()
    print(name, json.dumps(results[name]), flush=True)
json.dump(results, open(out_json, "w"), indent=1)
