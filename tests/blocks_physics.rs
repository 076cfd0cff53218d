//! The block solver (PHYSICS.md sec. 3) against closed forms, the collective solver, and the
//! physics of seed 000 (sec. 5).

use dicke::c64;
use dicke::model::Model;
use dicke::observe;
use dicke::solver::ode::OdeOptions;
use dicke::solver::{blocks, master};
use dicke::state::{BlockState, DensityMatrix, pure};

fn tight() -> OdeOptions {
    OdeOptions {
        rtol: 1e-12,
        atol: 1e-14,
        ..OdeOptions::default()
    }
}

/// gamma_down alone: each atom's excitation decays at gamma independently, so from any Dicke
/// state <Jz + N/2>(t) = (m0 + N/2) e^{-gamma t} exactly. Tolerance 1e-10 relative: the DP5
/// error at rtol = 1e-12 over 3 decay times (the value spans e^{-3}).
#[test]
fn individual_decay_from_a_dicke_state_is_exponential() {
    for (n, m0) in [(20usize, 3.0), (7, 3.5), (9, -0.5)] {
        let gamma = 0.8;
        let model = Model {
            n,
            gamma_down: gamma,
            ..Default::default()
        };
        let psi = pure::dicke(n, m0).unwrap();
        let rho0 = BlockState::from_symmetric(&DensityMatrix::from_pure(&psi));
        let times: Vec<f64> = (0..=12).map(|k| 0.25 * k as f64).collect();
        let mut worst: f64 = 0.0;
        blocks::evolve(&model, &rho0, &times, &tight(), &mut |_, t, s| {
            let got = observe::moments_blocks(s).mean[2] + n as f64 / 2.0;
            let want = (m0 + n as f64 / 2.0) * (-gamma * t).exp();
            worst = worst.max((got / want - 1.0).abs());
            assert!((s.trace().re - 1.0).abs() < 1e-12);
        })
        .unwrap();
        assert!(worst < 1e-10, "N={n} m0={m0}: relative error {worst:e}");
        eprintln!("N={n} m0={m0}: <Jz + N/2> vs e^(-gamma t): worst relative error {worst:e}");
    }
}

/// With only single-atom terms (drive, detuning and all three individual channels), the atoms
/// are independent and the steady state is the product rho1^(x)N of the single-atom Bloch
/// steady state (solved here from its 2x2 Lindblad equation). This fixes every moment, and
/// the spectrum of the full 2^N state: purity = p1^N, lambda_max = lmax1^N, which needs the
/// degeneracies d_N(j) of every block, and the fidelity with the coherent state along the
/// Bloch vector, lmax1^N, which reads only R_{N/2}. Tolerance 1e-10 on moments of size <= N^2/4 = 36 and
/// 1e-10 relative on purity/lambda_max: the LU solution after refinement sits at rounding.
#[test]
fn independent_atoms_reach_the_product_steady_state() {
    let n = 12;
    let model = Model {
        n,
        omega0: 0.37,
        drive: 1.3,
        phi: 0.6,
        gamma_down: 0.9,
        gamma_up: 0.25,
        gamma_phi: 0.4,
        ..Default::default()
    };
    // Single atom: H = (omega0/2) sz + (Omega/2)(cos phi sx + sin phi sy), Bloch vector
    // (x, y, z) = <sigma>. Lindblad equations for the Bloch vector (gamma_down, gamma_up
    // relax z to (gu - gd)/(gu + gd) at rate gd + gu; transverse decay (gd + gu)/2 + 2 gphi):
    let (w0, om, ph) = (model.omega0, model.drive, model.phi);
    let (gd, gu, gp) = (model.gamma_down, model.gamma_up, model.gamma_phi);
    let (hx, hy, hz) = (om * ph.cos(), om * ph.sin(), w0);
    let t2 = 0.5 * (gd + gu) + 2.0 * gp;
    let t1 = gd + gu;
    // d<sigma>/dt = h x <sigma> - relaxation; solve the 3x3 linear system A v = b.
    let a = [[-t2, -hz, hy], [hz, -t2, -hx], [-hy, hx, -t1]];
    let b = [0.0, 0.0, -(gu - gd)];
    let v = solve3(a, b);
    let (sx, sy, sz) = (v[0], v[1], v[2]);
    let half = n as f64 / 2.0;
    let (s, st) = blocks::steady_state(&model).unwrap();
    let mom = observe::moments_blocks(&s);
    let nf = n as f64;
    let want_mean = [half * sx, half * sy, half * sz];
    // <Ja Jb>_sym = N/4 delta_ab + N(N-1)/4 s_a s_b for a product state.
    let sv = [sx, sy, sz];
    for q in 0..3 {
        assert!(
            (mom.mean[q] - want_mean[q]).abs() < 1e-10,
            "<J{q}> {} vs {}",
            mom.mean[q],
            want_mean[q]
        );
        for r in 0..3 {
            let want = if q == r { nf / 4.0 } else { 0.0 } + nf * (nf - 1.0) / 4.0 * sv[q] * sv[r];
            assert!(
                (mom.second[q][r] - want).abs() < 1e-10,
                "second[{q}][{r}] {} vs {want}",
                mom.second[q][r]
            );
        }
    }
    let s2 = sx * sx + sy * sy + sz * sz;
    let j2 = 3.0 * nf / 4.0 + nf * (nf - 1.0) / 4.0 * s2;
    assert!((observe::j2_blocks(&s) - j2).abs() < 1e-10);
    let p1 = 0.5 * (1.0 + s2);
    let l1 = 0.5 * (1.0 + s2.sqrt());
    let pur = observe::purity_blocks(&s);
    let lmax = observe::largest_eigenvalue_blocks(&s);
    assert!(
        (pur / p1.powi(n as i32) - 1.0).abs() < 1e-10,
        "purity {pur} vs {}",
        p1.powi(n as i32)
    );
    assert!(
        (lmax / l1.powi(n as i32) - 1.0).abs() < 1e-10,
        "lambda_max {lmax} vs {}",
        l1.powi(n as i32)
    );
    // Fidelity with the spin coherent state along the Bloch vector (a state of j = N/2, so
    // only R_{N/2} enters): <n|rho1|n>^N = lmax1^N.
    let (theta, phi) = ((sz / s2.sqrt()).acos(), sy.atan2(sx));
    let f = observe::fidelity_blocks(&s, &pure::coherent(n, theta, phi));
    assert!(
        (f / l1.powi(n as i32) - 1.0).abs() < 1e-10,
        "fidelity {f} vs {}",
        l1.powi(n as i32)
    );
    assert!(st.trace_error < 1e-13, "trace error {}", st.trace_error);
    assert!(st.residual < 1e-12, "residual {}", st.residual);
    eprintln!(
        "independent atoms N={n}: residual {:e}, purity {pur} vs {}",
        st.residual,
        p1.powi(n as i32)
    );
}

fn solve3(a: [[f64; 3]; 3], b: [f64; 3]) -> [f64; 3] {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(a);
    let mut x = [0.0; 3];
    for (k, xk) in x.iter_mut().enumerate() {
        let mut m = a;
        for r in 0..3 {
            m[r][k] = b[r];
        }
        *xk = det(m) / d;
    }
    x
}

/// Collective-only models: the block solver from a symmetric state keeps every other block at
/// exactly 0 and reproduces master::evolve. Same integrator and tolerances, different
/// operation order: agreement to 1e-10 on entries of the density matrix (elements <= 1).
#[test]
fn collective_models_match_the_collective_solver() {
    let n = 16;
    let model = Model {
        n,
        omega0: 0.3,
        drive: 2.1,
        phi: 0.7,
        chi: 0.4,
        chi_z: -0.2,
        gamma_coll: 0.9,
        pump_coll: 0.3,
        dephase_coll: 0.5,
        ..Default::default()
    };
    let psi = pure::coherent(n, 2.0, 0.4);
    let rho0 = DensityMatrix::from_pure(&psi);
    let times = [0.0, 0.1, 0.3, 0.6];
    let mut want = Vec::new();
    master::evolve(&model, &rho0, &times, &tight(), &mut |_, _, r| {
        want.push(r.clone())
    })
    .unwrap();
    let mut k = 0;
    blocks::evolve(
        &model,
        &BlockState::from_symmetric(&rho0),
        &times,
        &tight(),
        &mut |_, _, s| {
            let d = s.block_matrix(0).max_abs_diff(&want[k]);
            assert!(d < 1e-10, "t index {k}: max |R_N/2 - rho| = {d:e}");
            for b in 1..s.num_blocks() {
                assert!(
                    s.block(b).iter().all(|z| *z == c64::new(0.0, 0.0)),
                    "block {b} filled"
                );
            }
            k += 1;
        },
    )
    .unwrap();
    assert_eq!(k, times.len());
}

/// The steady state solves L rho = 0 (residual at the rounding floor of |L| ~ Gamma N^2),
/// has unit trace, and is where the evolution goes: from the south pole, at t = 40 (many
/// times the slowest relaxation time here, gap ~ 0.5) the evolved blocks agree with it.
#[test]
fn steady_state_is_the_long_time_limit() {
    let model = Model {
        n: 10,
        drive: 3.0,
        phi: 0.3,
        chi: 0.2,
        gamma_coll: 0.7,
        gamma_down: 0.6,
        gamma_up: 0.1,
        gamma_phi: 0.2,
        ..Default::default()
    };
    let (ss, st) = blocks::steady_state(&model).unwrap();
    assert!(
        st.trace_error < 1e-13 && st.residual < 1e-11 && st.hermiticity_error < 1e-14,
        "{st:?}"
    );
    let psi = pure::dicke(10, -5.0).unwrap();
    let rho0 = BlockState::from_symmetric(&DensityMatrix::from_pure(&psi));
    let mut last = rho0.clone();
    blocks::evolve(&model, &rho0, &[0.0, 40.0], &tight(), &mut |_, _, s| {
        last = s.clone()
    })
    .unwrap();
    let d = last
        .data
        .iter()
        .zip(&ss.data)
        .map(|(a, b)| (a - b).norm())
        .fold(0.0, f64::max);
    assert!(d < 1e-8, "evolved vs steady state: {d:e}");
}

/// Bad input: a collective-only model has no unique block steady state; a state of the wrong
/// size is refused; neither panics.
#[test]
fn bad_input_is_an_error() {
    let model = Model {
        n: 6,
        drive: 1.0,
        gamma_coll: 1.0,
        ..Default::default()
    };
    let e = blocks::steady_state(&model).unwrap_err().to_string();
    assert!(e.contains("not unique") && e.contains("master"), "{e}");
    let model = Model {
        gamma_down: 1.0,
        ..model
    };
    let wrong = BlockState::zeros(5);
    let e = blocks::evolve(&model, &wrong, &[0.0, 1.0], &tight(), &mut |_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("N = 5") && e.contains("N = 6"), "{e}");
    let mut out = BlockState::zeros(6);
    assert!(blocks::liouvillian_apply(&model, &wrong, &mut out).is_err());
    // Far above the memory limit: refused before allocating, with the estimate named.
    let big = Model {
        n: 400,
        drive: 1.0,
        gamma_coll: 0.1,
        gamma_down: 1.0,
        ..Default::default()
    };
    let e = blocks::steady_state(&big).unwrap_err().to_string();
    assert!(e.contains("MiB") && e.contains("N = 400"), "{e}");
    // Only dephasing and no drive: populations are conserved, no unique steady state.
    let model = Model {
        n: 4,
        gamma_phi: 1.0,
        ..Default::default()
    };
    assert!(blocks::steady_state(&model).is_err());
}

// ---------------------------------------------------------------------------------------------
// Seed 000: Gamma_MF / gamma = 15.5, gamma = 1.

/// The seed 000 model at N with Omega = x Omega_c (PHYSICS.md sec. 1 mapping).
fn seed000(n: usize, x: f64) -> Model {
    let g1d = 15.5 / (n as f64 - 1.0);
    let omega_c_paper = 15.5 / 4.0;
    Model {
        n,
        drive: 2.0 * x * omega_c_paper,
        gamma_coll: g1d,
        gamma_down: 1.0 - g1d,
        ..Default::default()
    }
}

/// The real roots in [-1, 1] of the mean-field cubic (1 + sz)(gamma - G sz)^2 + 8 sz Om^2 = 0
/// (PHYSICS.md sec. 5; gamma = 1, G = Gamma_MF = 15.5, Om = x G/4 the paper's Omega), by
/// bisection on a fine grid.
fn mean_field_roots(x: f64) -> Vec<f64> {
    let (g, big) = (1.0, 15.5);
    let om = x * big / 4.0;
    let f = |s: f64| (1.0 + s) * (g - big * s).powi(2) + 8.0 * s * om * om;
    let mut roots = Vec::new();
    let k = 20_000;
    for i in 0..k {
        let (mut a, mut b) = (
            -1.0 + 2.0 * i as f64 / k as f64,
            -1.0 + 2.0 * (i + 1) as f64 / k as f64,
        );
        if f(a) == 0.0 {
            roots.push(a);
            continue;
        }
        if f(a) * f(b) < 0.0 {
            for _ in 0..60 {
                let m = 0.5 * (a + b);
                if f(a) * f(m) <= 0.0 {
                    b = m;
                } else {
                    a = m;
                }
            }
            roots.push(0.5 * (a + b));
        }
    }
    roots
}

#[test]
fn mean_field_roots_match_physics_md() {
    let r = mean_field_roots(0.75);
    assert_eq!(r.len(), 3);
    assert!(
        (r[0] + 0.635).abs() < 5e-4 && (r[2] + 0.032).abs() < 5e-4,
        "{r:?}"
    );
    assert_eq!(mean_field_roots(0.6).len(), 1);
    assert_eq!(mean_field_roots(0.9).len(), 1);
}

/// Seed 000 Fig. 2: at N = 54 and Omega = 0.75 Omega_c the steady-state P_m is bimodal, with
/// its two peaks near m = N sz/2 for the two stable mean-field roots (sz = -0.635, -0.032);
/// outside the bistable window [0.69, 0.81] Omega_c, <Jz>/(N/2) follows the single stable
/// mean-field root within 10%.
#[test]
fn seed000_bistability_at_n54() {
    let n = 54;
    let half = n as f64 / 2.0;
    let (s, st) = blocks::steady_state(&seed000(n, 0.75)).unwrap();
    assert!(st.residual < 1e-9 && st.trace_error < 1e-12, "{st:?}");
    let p = observe::pm_blocks(&s);
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    // Local maxima of P_m (index k = m + N/2), the two largest.
    let mut peaks: Vec<(f64, f64)> = (1..n)
        .filter(|&k| p[k] > p[k - 1] && p[k] >= p[k + 1])
        .map(|k| (k as f64 - half, p[k]))
        .collect();
    peaks.sort_by(|a, b| b.1.total_cmp(&a.1));
    eprintln!(
        "N=54, 0.75 Omega_c: P_m peaks (m, P) {:?}",
        &peaks[..peaks.len().min(4)]
    );
    assert!(peaks.len() >= 2, "P_m is not bimodal: {p:?}");
    let mut two = [peaks[0].0, peaks[1].0];
    two.sort_by(f64::total_cmp);
    let roots = mean_field_roots(0.75);
    let (lo, hi) = (half * roots[0], half * roots[2]);
    // "Near": within 3 of N sz/2 = -17.1 and -0.86, i.e. 10% of the range of m (2 sqrt(N)
    // ~ 15 is the width of one peak's quantum spread).
    assert!(
        (two[0] - lo).abs() <= 3.0,
        "lower peak at m = {} vs N sz/2 = {lo}",
        two[0]
    );
    assert!(
        (two[1] - hi).abs() <= 3.0,
        "upper peak at m = {} vs N sz/2 = {hi}",
        two[1]
    );
    // Between the peaks P_m dips well below both (a real valley, not a shoulder).
    let (ka, kb) = ((two[0] + half) as usize, (two[1] + half) as usize);
    let valley = p[ka..=kb].iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(
        valley < 0.5 * p[ka].min(p[kb]),
        "valley {valley} vs peaks {} {}",
        p[ka],
        p[kb]
    );

    // "Within 10%" is taken relative on the lower branch (|sz| > 0.5). On the upper branch
    // the mean-field sz is -0.016 (0.9 Omega_c) and -0.009 (1.1 Omega_c): 10% of that
    // (~0.002) is the size of the 1/N corrections at N = 54, so there the test asks for
    // |<Jz>/(N/2) - sz| < 0.01, 1% of the full range of sz (measured values: printout).
    for x in [0.5, 0.65, 0.9, 1.1] {
        let (s, _) = blocks::steady_state(&seed000(n, x)).unwrap();
        let sz = observe::moments_blocks(&s).mean[2] / half;
        let r = mean_field_roots(x);
        assert_eq!(r.len(), 1, "x = {x}: {r:?}");
        let (abs, rel) = ((sz - r[0]).abs(), (sz / r[0] - 1.0).abs());
        eprintln!(
            "N=54, Omega = {x} Omega_c: <Jz>/(N/2) = {sz:.5}, mean field {:.5}, |diff| {abs:.4}, relative {rel:.3}",
            r[0]
        );
        if r[0] < -0.5 {
            assert!(rel < 0.1, "x = {x}: <Jz>/(N/2) = {sz} vs mean field {}", r[0]);
        } else {
            assert!(abs < 0.01, "x = {x}: <Jz>/(N/2) = {sz} vs mean field {}", r[0]);
        }
    }
}

/// The full complex storage (taken for a non-Hermitian initial operator, e.g. J- rho for a
/// two-time correlation) and the packed Hermitian storage agree through linearity:
/// X = |a><b| evolves into H1(t) + i H2(t) with H1 = (X + X^dag)/2, H2 = (X - X^dag)/(2i),
/// both Hermitian. All terms on; tolerance 1e-10 (two integrations at rtol 1e-12 of
/// elements <= 1).
#[test]
fn full_and_packed_storage_agree() {
    let n = 5;
    let model = Model {
        n,
        omega0: 0.3,
        drive: 1.4,
        phi: 0.5,
        chi: 0.2,
        chi_z: 0.1,
        gamma_coll: 0.6,
        pump_coll: 0.1,
        dephase_coll: 0.2,
        gamma_down: 0.4,
        gamma_up: 0.2,
        gamma_phi: 0.3,
    };
    let a = pure::coherent(n, 1.0, 0.2);
    let b = pure::dicke(n, 0.5).unwrap();
    let dim = n + 1;
    let x = DensityMatrix {
        dim,
        data: a
            .iter()
            .flat_map(|ar| b.iter().map(move |bc| ar * bc.conj()))
            .collect(),
    };
    let i = c64::new(0.0, 1.0);
    let mut h1 = x.clone();
    let mut h2 = x.clone();
    for r in 0..dim {
        for c in 0..dim {
            let (v, w) = (x.data[r * dim + c], x.data[c * dim + r].conj());
            h1.data[r * dim + c] = 0.5 * (v + w);
            h2.data[r * dim + c] = (v - w) / (2.0 * i);
        }
    }
    let times = [0.0, 0.2, 0.7];
    let run = |rho: &DensityMatrix| {
        let mut v = Vec::new();
        let st = blocks::evolve(
            &model,
            &BlockState::from_symmetric(rho),
            &times,
            &tight(),
            &mut |_, _, s| v.push(s.clone()),
        )
        .unwrap();
        (v, st.hermitian_storage)
    };
    let (vx, hx) = run(&x);
    let (v1, p1) = run(&h1);
    let (v2, p2) = run(&h2);
    assert!(!hx && p1 && p2, "storage choice: {hx} {p1} {p2}");
    for k in 0..times.len() {
        let d = vx[k]
            .data
            .iter()
            .zip(v1[k].data.iter().zip(&v2[k].data))
            .map(|(z, (u, w))| (z - (u + i * w)).norm())
            .fold(0.0, f64::max);
        assert!(d < 1e-10, "t = {}: full vs packed {d:e}", times[k]);
    }
    // The non-Hermitian evolution did leave j = N/2 (the test covers the inflow).
    assert!(vx[2].block(1).iter().any(|z| z.norm() > 1e-3));
}
