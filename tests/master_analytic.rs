//! Analytic checks of the collective master-equation solver (PHYSICS.md sections 6 and 9):
//! closed-form steady states, the superradiant burst against the exact population rate
//! equation, free precession, relaxation to the steady state, refusals, and the conservation
//! of trace and Hermiticity. Every reference is computed here, independently of the solver's
//! stencil. Each tolerance says where it comes from.

use dicke::basis::Irrep;
use dicke::c64;
use dicke::error::SolverError;
use dicke::model::Model;
use dicke::solver::master::{Storage, evolve, evolve_with, liouvillian_apply, steady_state};
use dicke::solver::ode::OdeOptions;
use dicke::state::DensityMatrix;

fn zero() -> c64 {
    c64::new(0.0, 0.0)
}

/// <Jz> = sum_k m_k rho_kk.
fn jz(rho: &DensityMatrix) -> f64 {
    let j = (rho.dim - 1) as f64 / 2.0;
    (0..rho.dim).map(|k| (k as f64 - j) * rho.get(k, k).re).sum()
}

/// <J+> = tr(J+ rho) = sum_k jp[k] rho_{k,k+1}.
fn jplus(rho: &DensityMatrix) -> c64 {
    let irr = Irrep::new(rho.dim - 1);
    (0..rho.dim - 1).map(|k| irr.jp[k] * rho.get(k, k + 1)).sum()
}

/// Closed-form steady state of collective decay + drive + exchange (seed 001 eq. 9):
/// rho = C B^dag B with B = (J+ - a)^(-1) = -sum_k J+^k / a^(k+1), a = i Omega/(Gamma - 2 i chi).
/// B is built column by column as B_{c+k, c} = -(1/a) prod_{i=c}^{c+k-1} (jp_i / a): every factor
/// carries its own 1/a, so no power of |a| or of the ladder coefficients is formed on its own
/// (they overflow near N = 150). With `adjoint_first = false` it returns B B^dag instead (the
/// wrong ordering, to show that the comparison discriminates).
fn closed_form(n_atoms: usize, omega: f64, gamma: f64, chi: f64, adjoint_first: bool) -> DensityMatrix {
    let irr = Irrep::symmetric(n_atoms);
    let n = irr.dim();
    let a = c64::new(0.0, omega) / c64::new(gamma, -2.0 * chi);
    let mut b = vec![vec![zero(); n]; n]; // b[row][col], lower triangular
    for c in 0..n {
        let mut t = -1.0 / a;
        b[c][c] = t;
        for k in 1..n - c {
            t *= irr.jp[c + k - 1] / a;
            b[c + k][c] = t;
        }
    }
    let mut rho = DensityMatrix::zeros(n);
    for r in 0..n {
        for c in 0..n {
            rho.data[r * n + c] = if adjoint_first {
                // (B^dag B)_{rc} = sum_k conj(B_{kr}) B_{kc}
                (r.max(c)..n).map(|k| b[k][r].conj() * b[k][c]).sum()
            } else {
                // (B B^dag)_{rc} = sum_k B_{rk} conj(B_{ck})
                (0..=r.min(c)).map(|k| b[r][k] * b[c][k].conj()).sum()
            };
        }
    }
    let tr = rho.trace();
    rho.data.iter_mut().for_each(|x| *x /= tr);
    rho
}

/// Test 1. The steady state of seed 001's model equals the closed form elementwise, for
/// N = 10, 50, 200, below/near/above Omega_c, with and without exchange.
///
/// Tolerance 1e-9: the LU solve with refinement leaves a residual max|L rho| ~ 1e-13 relative
/// to the largest entries of L (~ Gamma N^2/4), and the closed form is summed in f64 with
/// relative rounding ~ N eps ~ 1e-13; 1e-9 leaves room for the conditioning of L (the
/// Liouvillian gap closes near Omega_c) while any error in a coefficient, an ordering or a
/// sign of the stencil gives O(1e-2) or more (the B B^dag ordering is shown to fail below).
#[test]
fn steady_state_matches_closed_form() {
    let gamma: f64 = 1.0;
    for &n_atoms in &[10usize, 50, 200] {
        for &chi in &[0.0f64, 0.9375] {
            let omega_c = n_atoms as f64 / 2.0 * (gamma * gamma + 4.0 * chi * chi).sqrt();
            for &ratio in &[0.5, 0.9, 1.2] {
                let model = Model {
                    n: n_atoms,
                    drive: ratio * omega_c,
                    chi,
                    gamma_coll: gamma,
                    ..Default::default()
                };
                let (rho, stats) = steady_state(&model).unwrap();
                let exact = closed_form(n_atoms, model.drive, gamma, chi, true);
                let diff = rho.max_abs_diff(&exact);
                assert!(
                    diff < 1e-9,
                    "N={n_atoms} chi={chi} Omega/Omega_c={ratio}: max|rho - rho_exact| = {diff:e} ({stats:?})"
                );
                // Trace and Hermiticity to rounding (the trace row is solved exactly, refinement
                // keeps it; the solution is Hermitian by construction).
                assert!(stats.trace_error < 1e-12, "{stats:?}");
                assert!(stats.hermiticity_error < 1e-14, "{stats:?}");
                assert_eq!(stats.unknowns, (n_atoms + 1) * (n_atoms + 1));
                if n_atoms == 10 && ratio == 0.9 {
                    // The other operator ordering is far off: the comparison can fail.
                    let wrong = closed_form(n_atoms, model.drive, gamma, chi, false);
                    assert!(rho.max_abs_diff(&wrong) > 1e-3);
                }
            }
        }
    }
}

/// Test 1b. The drive phase is a gauge: with H = Omega (cos phi Jx + sin phi Jy) the steady
/// state is U rho_0 U^dag, U = exp(-i phi Jz), i.e. rho_rc -> e^{-i phi (m_r - m_c)} rho_rc.
/// Same tolerance as test 1.
#[test]
fn steady_state_with_drive_phase_is_rotated_closed_form() {
    let (n_atoms, gamma, chi, phi): (usize, f64, f64, f64) = (30, 1.0, 0.4, 0.7);
    let omega_c = n_atoms as f64 / 2.0 * (gamma * gamma + 4.0 * chi * chi).sqrt();
    let model = Model {
        n: n_atoms,
        drive: 0.8 * omega_c,
        phi,
        chi,
        gamma_coll: gamma,
        ..Default::default()
    };
    let (rho, _) = steady_state(&model).unwrap();
    let mut exact = closed_form(n_atoms, model.drive, gamma, chi, true);
    let n = exact.dim;
    for r in 0..n {
        for c in 0..n {
            exact.data[r * n + c] *= c64::new(0.0, -phi * (r as f64 - c as f64)).exp();
        }
    }
    let diff = rho.max_abs_diff(&exact);
    assert!(diff < 1e-9, "max diff {diff:e}");
}

/// ln Z, <Jz> = -d lnZ/d beta and Var Jz = d^2 lnZ/d beta^2 for Z = sinh((N+1) beta/2)/sinh(beta/2).
fn thermal_moments(n_atoms: usize, beta: f64) -> (f64, f64) {
    if beta == 0.0 {
        return (0.0, n_atoms as f64 * (n_atoms as f64 + 2.0) / 12.0);
    }
    let np1 = n_atoms as f64 + 1.0;
    let coth = |x: f64| 1.0 / x.tanh();
    let csch2 = |x: f64| 1.0 / (x.sinh() * x.sinh());
    let mean = -(0.5 * np1 * coth(0.5 * np1 * beta) - 0.5 * coth(0.5 * beta));
    let var = -0.25 * np1 * np1 * csch2(0.5 * np1 * beta) + 0.25 * csch2(0.5 * beta);
    (mean, var)
}

/// Test 2. Collective decay + collective pumping (seed 004): the steady state is thermal,
/// exp(-beta Jz)/Z with beta = -ln(w/Gamma), below, at and above criticality; <Jz> and Var Jz
/// equal the partition-function formulas.
///
/// Tolerances: elements to 1e-13 absolute, and every population to 1e-12 relative, including
/// the ~1e-5 ones at the far end of the ladder (the populations are a birth-death chain whose
/// componentwise condition is ~N eps, provided the solver keeps probability conservation exact;
/// a rounding-level flux imbalance showed up here as a 4e-10 relative error at m = -j);
/// moments to 1e-10 as required (they sum N+1 populations times m ~ N/2, m^2 ~ N^2/4: rounding
/// at 1e-15 gives ~1e-12; the closed forms are evaluated with relative error ~1e-15).
#[test]
fn pumping_steady_state_is_thermal() {
    let n_atoms = 100;
    for &w in &[0.9, 1.0, 1.1] {
        let model = Model {
            n: n_atoms,
            gamma_coll: 1.0,
            pump_coll: w,
            ..Default::default()
        };
        let (rho, stats) = steady_state(&model).unwrap();
        let beta = -(w / 1.0f64).ln();
        let n = n_atoms + 1;
        let j = n_atoms as f64 / 2.0;
        // Boltzmann weights relative to the most populated end, to avoid overflow.
        let ms: Vec<f64> = (0..n).map(|k| k as f64 - j).collect();
        let emin = ms.iter().map(|m| beta * m).fold(f64::INFINITY, f64::min);
        let wts: Vec<f64> = ms.iter().map(|m| (-(beta * m - emin)).exp()).collect();
        let z: f64 = wts.iter().sum();
        let mut worst: f64 = 0.0;
        let mut worst_rel: f64 = 0.0;
        for (r, wr) in wts.iter().enumerate() {
            for c in 0..n {
                let expect = if r == c { wr / z } else { 0.0 };
                worst = worst.max((rho.get(r, c) - expect).norm());
            }
            worst_rel = worst_rel.max((rho.get(r, r).re * z / wr - 1.0).abs());
        }
        assert!(
            worst < 1e-13,
            "w={w}: max elementwise error {worst:e} ({stats:?})"
        );
        assert!(
            worst_rel < 1e-12,
            "w={w}: max relative population error {worst_rel:e} ({stats:?})"
        );
        let mean = jz(&rho);
        let var = (0..n).map(|k| ms[k] * ms[k] * rho.get(k, k).re).sum::<f64>() - mean * mean;
        let (mean_x, var_x) = thermal_moments(n_atoms, beta);
        assert!((mean - mean_x).abs() < 1e-10, "w={w}: <Jz> {mean} vs {mean_x}");
        assert!((var - var_x).abs() < 1e-10, "w={w}: Var Jz {var} vs {var_x}");
        if w == 1.0 {
            assert!((var_x - (n_atoms * (n_atoms + 2)) as f64 / 12.0).abs() < 1e-12);
        }
    }
}

/// Reference for the superradiant burst: the exact population rate equation
/// dP_m/dt = Gamma [c(m+1) P_{m+1} - c(m) P_m], c(m) = (j+m)(j-m+1), integrated with classical
/// RK4 at a fixed step h with h * max c(m) Gamma <= 2.5e-3, where the RK4 local error
/// (h lambda)^5/120 ~ 1e-15: the reference is exact to rounding at the scale of the test.
fn burst_reference(n_atoms: usize, gamma: f64, times: &[f64]) -> Vec<f64> {
    let j = n_atoms as f64 / 2.0;
    let n = n_atoms + 1;
    let cm: Vec<f64> = (0..n)
        .map(|k| {
            let m = k as f64 - j;
            gamma * (j + m) * (j - m + 1.0)
        })
        .collect();
    let cmax = cm.iter().cloned().fold(0.0, f64::max);
    let f = |p: &[f64], out: &mut [f64]| {
        for k in 0..n {
            let inflow = if k + 1 < n { cm[k + 1] * p[k + 1] } else { 0.0 };
            out[k] = inflow - cm[k] * p[k];
        }
    };
    let mut p = vec![0.0; n];
    p[n - 1] = 1.0;
    let (mut k1, mut k2, mut k3, mut k4, mut tmp) = (
        vec![0.0; n],
        vec![0.0; n],
        vec![0.0; n],
        vec![0.0; n],
        vec![0.0; n],
    );
    let mut t = times[0];
    let mut out = Vec::new();
    for &ts in times {
        let steps = ((ts - t) * cmax / 2.5e-3).ceil().max(0.0) as usize;
        if steps > 0 {
            let h = (ts - t) / steps as f64;
            for _ in 0..steps {
                f(&p, &mut k1);
                (0..n).for_each(|i| tmp[i] = p[i] + 0.5 * h * k1[i]);
                f(&tmp, &mut k2);
                (0..n).for_each(|i| tmp[i] = p[i] + 0.5 * h * k2[i]);
                f(&tmp, &mut k3);
                (0..n).for_each(|i| tmp[i] = p[i] + h * k3[i]);
                f(&tmp, &mut k4);
                (0..n).for_each(|i| p[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]));
            }
        }
        t = ts;
        out.push((0..n).map(|k| (k as f64 - j) * p[k]).sum());
    }
    out
}

/// Test 3. Superradiant burst: Gamma only, from |j, m = j>, <Jz>(t) of `evolve` equals the
/// exact rate equation for N = 20 and 100 through the whole burst (delay ~ ln N/(N Gamma)).
///
/// Tolerance: the integrator runs at rtol = 1e-10, atol = 1e-12 per element; over the ~500
/// steps of the burst the global error of the populations stays within ~100 x rtol (error
/// per unit step <= tolerance, partly cancelling, and damped by the decay), and <Jz> weights
/// them by |m| <= N/2: |error| <= 100 * 1e-10 * N/2 = 1e-8 N/2 (measured: 6e-11 at N = 20,
/// 4e-10 at N = 100). A wrong tableau coefficient or rate gives errors of 1e-4 or more.
#[test]
fn superradiant_burst_matches_rate_equation() {
    for &n_atoms in &[20usize, 100] {
        let n = n_atoms + 1;
        let model = Model {
            n: n_atoms,
            gamma_coll: 1.0,
            ..Default::default()
        };
        let mut psi = vec![zero(); n];
        psi[n - 1] = c64::new(1.0, 0.0);
        let rho0 = DensityMatrix::from_pure(&psi);
        let t_end = 6.0 * (n_atoms as f64).ln() / n_atoms as f64;
        let times: Vec<f64> = (0..=40).map(|i| t_end * i as f64 / 40.0).collect();
        let opts = OdeOptions {
            rtol: 1e-10,
            atol: 1e-12,
            ..Default::default()
        };
        let mut got = vec![f64::NAN; times.len()];
        let stats = evolve(&model, &rho0, &times, &opts, &mut |i, _t, rho| got[i] = jz(rho)).unwrap();
        let expect = burst_reference(n_atoms, 1.0, &times);
        let tol = 1e-8 * n_atoms as f64 / 2.0;
        for i in 0..times.len() {
            assert!(
                (got[i] - expect[i]).abs() < tol,
                "N={n_atoms} t={}: <Jz> {} vs {} (tol {tol:e}, {stats:?})",
                times[i],
                got[i],
                expect[i]
            );
        }
        // The burst really happened: <Jz> went from +N/2 to near -N/2.
        assert!(expect[0] == n_atoms as f64 / 2.0 && *expect.last().unwrap() < -0.4 * n_atoms as f64);
        assert!(stats.hermitian_storage && stats.max_trace_error < 1e-12);
    }
}

/// Amplitudes of the coherent spin state |theta, varphi> (k = m + j excitations above the
/// ground state): c_k = sqrt(binom(N, k)) cos(theta/2)^(N-k) sin(theta/2)^k e^{i k varphi}.
fn coherent_state(n_atoms: usize, theta: f64, varphi: f64) -> Vec<c64> {
    let ln_binom = |k: usize| -> f64 {
        (1..=n_atoms).map(|i| (i as f64).ln()).sum::<f64>()
            - (1..=k).map(|i| (i as f64).ln()).sum::<f64>()
            - (1..=n_atoms - k).map(|i| (i as f64).ln()).sum::<f64>()
    };
    let (cs, sn) = ((theta / 2.0).cos(), (theta / 2.0).sin());
    (0..=n_atoms)
        .map(|k| {
            let mag = (0.5 * ln_binom(k) + (n_atoms - k) as f64 * cs.ln() + k as f64 * sn.ln()).exp();
            c64::new(0.0, k as f64 * varphi).exp() * mag
        })
        .collect()
}

/// Test 4. Free precession under H = omega0 Jz: d<J+>/dt = i omega0 <J+> (from i[H, J+] =
/// i omega0 J+), so <J+>(t) = e^{+i omega0 t} <J+>(0), and <Jz> is constant.
///
/// Tolerance 1e-8 (required): |<J+>| ~ N/2 sin(theta) = 13; the integrator at rtol = 1e-12
/// follows the phase of each coherence e^{i omega0 t} with relative error ~1e-10 over 100
/// steps.
#[test]
fn free_precession_rotates_jplus() {
    let (n_atoms, omega0) = (30usize, 2.0);
    let model = Model {
        n: n_atoms,
        omega0,
        ..Default::default()
    };
    let rho0 = DensityMatrix::from_pure(&coherent_state(n_atoms, 1.1, 0.3));
    assert!((rho0.trace().re - 1.0).abs() < 1e-13);
    let jp0 = jplus(&rho0);
    let jz0 = jz(&rho0);
    // Coherent state: <J+> = (N/2) sin(theta) e^{-i varphi} in this phase convention.
    let css = c64::new(0.0, -0.3).exp() * (n_atoms as f64 / 2.0 * 1.1f64.sin());
    assert!((jp0 - css).norm() < 1e-12, "{jp0} vs {css}");
    let times: Vec<f64> = (0..=25).map(|i| 0.2 * i as f64).collect();
    let opts = OdeOptions {
        rtol: 1e-12,
        atol: 1e-14,
        ..Default::default()
    };
    let mut worst: f64 = 0.0;
    evolve(&model, &rho0, &times, &opts, &mut |_, t, rho| {
        let expect = c64::new(0.0, omega0 * t).exp() * jp0;
        worst = worst.max((jplus(rho) - expect).norm());
        worst = worst.max((jz(rho) - jz0).abs());
    })
    .unwrap();
    assert!(worst < 1e-8, "max error {worst:e}");
}

/// Test 5a. A long evolution of a driven, decaying, exchanging, dephasing model reaches the
/// state that `steady_state` returns.
///
/// Tolerance 1e-8: after t = 40 the slowest mode (Liouvillian gap >~ 0.5 Gamma here: checked
/// by the approach itself, the distance at t = 20 is already < 1e-6) has decayed below
/// 1e-8; the integrator's global error at rtol = 1e-10 is ~1e-9.
#[test]
fn evolution_relaxes_to_steady_state() {
    let n_atoms = 12;
    let omega_c = n_atoms as f64 / 2.0 * (1.0f64 + 4.0 * 0.25).sqrt();
    let model = Model {
        n: n_atoms,
        drive: 0.7 * omega_c,
        phi: 0.3,
        chi: 0.5,
        omega0: 0.2,
        gamma_coll: 1.0,
        dephase_coll: 0.1,
        ..Default::default()
    };
    let (rho_ss, _) = steady_state(&model).unwrap();
    let mut psi = vec![zero(); n_atoms + 1];
    psi[n_atoms] = c64::new(1.0, 0.0); // fully excited: far from the steady state
    let rho0 = DensityMatrix::from_pure(&psi);
    let opts = OdeOptions {
        rtol: 1e-10,
        atol: 1e-12,
        ..Default::default()
    };
    let mut dist = Vec::new();
    evolve(&model, &rho0, &[0.0, 20.0, 40.0], &opts, &mut |_, _, rho| {
        dist.push(rho.max_abs_diff(&rho_ss))
    })
    .unwrap();
    assert!(dist[0] > 0.1, "{dist:?}");
    assert!(dist[1] < 1e-6, "{dist:?}");
    assert!(dist[2] < 1e-8, "{dist:?}");
}

/// Test 5b. Models with individual rates are refused by name, by both solvers.
#[test]
fn individual_rates_are_refused() {
    let model = Model {
        n: 4,
        gamma_coll: 1.0,
        gamma_down: 0.1,
        ..Default::default()
    };
    let rho0 = DensityMatrix::from_pure(&[zero(), zero(), zero(), zero(), c64::new(1.0, 0.0)]);
    let err = evolve(
        &model,
        &rho0,
        &[0.0, 1.0],
        &OdeOptions::default(),
        &mut |_, _, _| {},
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SolverError::Unsupported { .. }), "{msg}");
    assert!(msg.contains("gamma_down") && msg.contains("block"), "{msg}");
    let model2 = Model {
        gamma_down: 0.0,
        gamma_phi: 0.2,
        ..model
    };
    let msg = steady_state(&model2).unwrap_err().to_string();
    assert!(msg.contains("gamma_phi") && !msg.contains("gamma_down"), "{msg}");
}

/// Test 5c. A steady state whose factorisation would exceed the memory limit is refused
/// before anything is allocated.
#[test]
fn huge_steady_state_is_refused() {
    let model = Model {
        n: 5000,
        gamma_coll: 1.0,
        drive: 10.0,
        ..Default::default()
    };
    let err = steady_state(&model).unwrap_err();
    assert!(matches!(err, SolverError::TooLarge { .. }), "{err}");
}

/// Test 6. Trace and Hermiticity are preserved by the dynamics, with every collective term on
/// (phi != 0): on the full-matrix path (where Hermiticity is not built in) to rounding, and the
/// Hermitian-storage path agrees with the full path.
///
/// Tolerances: L is exactly trace preserving and Hermiticity preserving, and each RK stage is a
/// real linear combination of L applications, so both hold up to rounding accumulated over the
/// steps (~1e-15 per step, ~10^3 steps: 1e-12). The two storages take different step
/// sequences (their error norms differ), so they agree only to the integration error, bounded
/// by ~rtol = 1e-10 times |rho| <= 1 (measured 2e-13).
#[test]
fn trace_and_hermiticity_are_preserved() {
    let n_atoms = 16;
    let model = Model {
        n: n_atoms,
        omega0: 0.3,
        drive: 5.0,
        phi: 1.1,
        chi: 0.4,
        chi_z: 0.2,
        gamma_coll: 1.0,
        pump_coll: 0.3,
        dephase_coll: 0.2,
        ..Default::default()
    };
    let rho0 = DensityMatrix::from_pure(&coherent_state(n_atoms, 2.0, -0.5));
    let times: Vec<f64> = (0..=10).map(|i| 0.1 * i as f64).collect();
    let opts = OdeOptions {
        rtol: 1e-10,
        atol: 1e-12,
        ..Default::default()
    };
    let mut full = Vec::new();
    let sf = evolve_with(&model, &rho0, &times, &opts, Storage::Full, &mut |_, _, r| {
        full.push(r.clone())
    })
    .unwrap();
    assert!(!sf.hermitian_storage);
    assert!(sf.max_trace_error < 1e-12, "{sf:?}");
    assert!(sf.max_hermiticity_error < 1e-12, "{sf:?}");
    let mut packed = Vec::new();
    let sp = evolve(&model, &rho0, &times, &opts, &mut |_, _, r| {
        packed.push(r.clone())
    })
    .unwrap();
    assert!(sp.hermitian_storage);
    assert!(sp.max_trace_error < 1e-12, "{sp:?}");
    assert_eq!(sp.max_hermiticity_error, 0.0);
    for (a, b) in full.iter().zip(&packed) {
        assert!(a.max_abs_diff(b) < 1e-10, "{}", a.max_abs_diff(b));
    }
    // The dynamics did something: the state moved far from rho0.
    assert!(full.last().unwrap().max_abs_diff(&rho0) > 0.1);
}

/// The public stencil obeys tr(L rho) = 0 and L(rho^dag) = L(rho)^dag for a non-Hermitian
/// rho (to rounding, 1e-12 relative to entries ~ N^2).
#[test]
fn liouvillian_is_trace_and_adjoint_preserving() {
    let n_atoms = 9;
    let irr = Irrep::symmetric(n_atoms);
    let n = irr.dim();
    let model = Model {
        n: n_atoms,
        omega0: 0.3,
        drive: 2.0,
        phi: 0.4,
        chi: 0.7,
        chi_z: -0.2,
        gamma_coll: 1.3,
        pump_coll: 0.5,
        dephase_coll: 0.4,
        ..Default::default()
    };
    let rho: Vec<c64> = (0..n * n)
        .map(|i| c64::new((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos()))
        .collect();
    let rho_dag: Vec<c64> = (0..n * n).map(|i| rho[(i % n) * n + i / n].conj()).collect();
    let (mut l, mut ld) = (vec![zero(); n * n], vec![zero(); n * n]);
    liouvillian_apply(&model, &irr, &rho, &mut l);
    liouvillian_apply(&model, &irr, &rho_dag, &mut ld);
    let tr: c64 = (0..n).map(|k| l[k * n + k]).sum();
    assert!(tr.norm() < 1e-12, "tr L rho = {tr}");
    for r in 0..n {
        for c in 0..n {
            assert!((ld[r * n + c] - l[c * n + r].conj()).norm() < 1e-12);
        }
    }
}
