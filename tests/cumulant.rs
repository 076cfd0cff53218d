//! The second-order cumulant expansion (`dicke::solver::cumulant`) on the validation ladder of
//! PHYSICS.md sec. 9:
//!
//! 1. brute force: the OPEN right-hand side (exact given first, second and third-order
//!    moments) equals Tr(O L rho) of the full 2^N Lindbladian for random permutation-symmetric
//!    states, N = 3..6, random parameters with every term of the model on;
//! 2. the closure is exact for product states (coherent states), and the closed equations are
//!    exact at N = 2 (no third atom): evolution against the exact block solver;
//! 3. cross-solver: seed 002's model at N = 10, 20, 30 against the exact permutation-invariant
//!    solver over t in [0, 3/Gamma], with the agreement improving with N.

// Index loops over the nine variables read clearest with the index (it names the variable).
#![allow(clippy::needless_range_loop)]

#[path = "common/brute.rs"]
mod brute;

use brute::{Brute, Rng, Sp, brute, embed, random_model};
use dicke::c64;
use dicke::model::Model;
use dicke::observe;
use dicke::solver::blocks;
use dicke::solver::cumulant::{self, NTHIRD, NVAR};
use dicke::solver::ode::OdeOptions;
use dicke::state::{BlockState, DensityMatrix, pure};

/// All permutations of 0..n (Heap's algorithm).
fn permutations(n: usize) -> Vec<Vec<usize>> {
    fn heap(k: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if k <= 1 {
            out.push(a.clone());
            return;
        }
        heap(k - 1, a, out);
        for i in 0..k - 1 {
            if k.is_multiple_of(2) {
                a.swap(i, k - 1);
            } else {
                a.swap(0, k - 1);
            }
            heap(k - 1, a, out);
        }
    }
    let mut a: Vec<usize> = (0..n).collect();
    let mut out = Vec::new();
    heap(n, &mut a, &mut out);
    out
}

/// A random permutation-symmetric density matrix of n atoms: A A^dag / tr with A of rank 3
/// (so that moments and correlations are O(0.1), not the ~2^-N of a near-maximally mixed
/// state), its columns random 2^N vectors plus the embedding of a random symmetric-subspace
/// vector; then averaged over every permutation of the atoms (P rho P^dag), so every irrep
/// and every coherence allowed by the symmetry is populated.
fn random_symmetric_state(n: usize, rng: &mut Rng) -> Vec<c64> {
    let d = 1usize << n;
    const RANK: usize = 3;
    let mut a = vec![c64::new(0.0, 0.0); d * RANK];
    for col in 0..RANK {
        let sym: Vec<c64> = (0..=n)
            .map(|_| c64::new(rng.u(-1.0, 1.0), rng.u(-1.0, 1.0)))
            .collect();
        let e = embed(n, &sym);
        let weight = rng.u(0.2, 1.0);
        for r in 0..d {
            a[r * RANK + col] =
                2.0 * e[r] + weight * c64::new(rng.u(-1.0, 1.0), rng.u(-1.0, 1.0)) / (d as f64).sqrt();
        }
    }
    let mut rho = vec![c64::new(0.0, 0.0); d * d];
    for r in 0..d {
        for c in 0..d {
            let mut s = c64::new(0.0, 0.0);
            for k in 0..RANK {
                s += a[r * RANK + k] * a[c * RANK + k].conj();
            }
            rho[r * d + c] = s;
        }
    }
    let tr: f64 = (0..d).map(|k| rho[k * d + k].re).sum();
    let perms = permutations(n);
    let mut sym = vec![c64::new(0.0, 0.0); d * d];
    let w = 1.0 / (tr * perms.len() as f64);
    for p in &perms {
        let map: Vec<usize> = (0..d)
            .map(|x| (0..n).fold(0, |acc, b| acc | (((x >> b) & 1) << p[b])))
            .collect();
        for r in 0..d {
            for c in 0..d {
                sym[map[r] * d + map[c]] += w * rho[r * d + c];
            }
        }
    }
    sym
}

/// The exact nine variables, seven third-order moments (atoms 0, 1, 2) and Tr(O L rho) of the
/// nine variables' operators, plus the imaginary parts that the symmetry makes zero.
struct Exact {
    y: [f64; NVAR],
    t3: [f64; NTHIRD],
    dy: [f64; NVAR],
    imag_of_real: f64,
}

fn exact(b: &Brute, rho: &[c64]) -> Exact {
    let d = b.sm[0].dim();
    let mut lrho = vec![c64::new(0.0, 0.0); d * d];
    let mut tmp = vec![c64::new(0.0, 0.0); d * d];
    b.apply(rho, &mut lrho, &mut tmp);
    let (sp, sm, sz) = (&b.sp, &b.sm, &b.sz);
    let ops: [Sp; 6] = [
        sp[0].clone(),
        sz[0].clone(),
        sp[0].mul(&sm[1]),
        sp[0].mul(&sp[1]),
        sz[0].mul(&sp[1]),
        sz[0].mul(&sz[1]),
    ];
    let pack = |v: &[c64; 6]| -> [f64; NVAR] {
        [
            v[0].re, v[0].im, v[1].re, v[2].re, v[3].re, v[3].im, v[4].re, v[4].im, v[5].re,
        ]
    };
    let ev: [c64; 6] = std::array::from_fn(|k| ops[k].expect(rho));
    let dv: [c64; 6] = std::array::from_fn(|k| ops[k].expect(&lrho));
    let mut imag_of_real: f64 = 0.0;
    for k in [1, 2, 5] {
        imag_of_real = imag_of_real.max(ev[k].im.abs()).max(dv[k].im.abs());
    }
    let mut t3 = [0.0; NTHIRD];
    if b.sm.len() >= 3 {
        let t1 = sp[0].mul(&sm[1]).mul(&sz[2]).expect(rho);
        let t2 = sp[0].mul(&sp[1]).mul(&sz[2]).expect(rho);
        let t3c = sp[0].mul(&sp[1]).mul(&sm[2]).expect(rho);
        let t4 = sz[0].mul(&sz[1]).mul(&sp[2]).expect(rho);
        imag_of_real = imag_of_real.max(t1.im.abs());
        t3 = [t1.re, t2.re, t2.im, t3c.re, t3c.im, t4.re, t4.im];
    }
    Exact {
        y: pack(&ev),
        t3,
        dy: pack(&dv),
        imag_of_real,
    }
}

const VARS: [&str; NVAR] = ["Re s", "Im s", "z", "p", "Re q", "Im q", "Re u", "Im u", "v"];

/// Rung 2: the open right-hand side is exact. Tolerance 1e-12 of the derivative's scale: both
/// sides are sums of O(10) terms of size <= (rates ~ 1) x N x (moments <= 1) computed in f64,
/// so rounding is ~1e-14; a wrong coefficient or sign anywhere shows up at O(0.01) or more
/// (the random rates are >= 0.05 and the moments of a random mixed state are O(0.01 - 0.1)).
#[test]
fn open_rhs_matches_the_2n_lindbladian_for_random_symmetric_states() {
    let mut rng = Rng(0xC0FF_EE12_3456_789B);
    let mut worst: f64 = 0.0;
    for n in 3..=6usize {
        for rep in 0..2 {
            let model = random_model(n, &mut rng);
            let b = brute(&model);
            let rho = random_symmetric_state(n, &mut rng);
            let ex = exact(&b, &rho);
            assert!(
                ex.imag_of_real < 1e-14,
                "N={n}: p, z, v or T1 not real ({:e})",
                ex.imag_of_real
            );
            let mut dy = [0.0; NVAR];
            cumulant::open_rhs(&cumulant::params(&model), &ex.y, &ex.t3, &mut dy);
            let scale = ex.dy.iter().fold(1.0f64, |a, x| a.max(x.abs()));
            for k in 0..NVAR {
                let diff = (dy[k] - ex.dy[k]).abs();
                worst = worst.max(diff / scale);
                assert!(
                    diff <= 1e-12 * scale,
                    "N={n} rep {rep} d<{}>/dt: open RHS {} vs Tr(O L rho) {} (diff {diff:e})",
                    VARS[k],
                    dy[k],
                    ex.dy[k]
                );
            }
            // The state is generic: its two-atom moments are not those of a product state, so
            // the test is not passing through a special case.
            let s2 = ex.y[0] * ex.y[0] + ex.y[1] * ex.y[1];
            assert!((ex.y[3] - s2).abs() > 1e-4, "N={n}: p = |s|^2 (special state)");
        }
    }
    eprintln!("open RHS vs 2^N Lindbladian: worst relative difference {worst:e}");
}

/// The closure `<ABC> = <AB><C> + <AC><B> + <BC><A> - 2<A><B><C>` is exact for product states
/// (spin coherent states, all of whose connected correlations vanish), and the variables of
/// `from_pure` equal the brute-force single- and two-atom moments for coherent, Dicke and CRSS
/// states (every third-order moment and the nine variables to 1e-13).
#[test]
fn closure_is_exact_for_coherent_states_and_from_pure_matches_brute_force() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for n in 3..=5usize {
        let model = random_model(n, &mut rng);
        let b = brute(&model);
        let psi = pure::coherent(n, 1.3, -0.7);
        let v = embed(n, &psi);
        let d = v.len();
        let rho: Vec<c64> = (0..d * d).map(|i| v[i / d] * v[i % d].conj()).collect();
        let ex = exact(&b, &rho);
        let y = cumulant::from_pure(&psi);
        for k in 0..NVAR {
            assert!(
                (y[k] - ex.y[k]).abs() < 1e-13,
                "N={n} {}: {} vs {}",
                VARS[k],
                y[k],
                ex.y[k]
            );
        }
        let mut t3 = [0.0; NTHIRD];
        cumulant::close_third(&ex.y, &mut t3);
        for k in 0..NTHIRD {
            assert!(
                (t3[k] - ex.t3[k]).abs() < 1e-13,
                "N={n} T[{k}]: closure {} vs exact {}",
                t3[k],
                ex.t3[k]
            );
        }
        // A Dicke state and a CRSS are not products: from_pure still gives their exact
        // moments; the closure is then an approximation (T1 differs for the Dicke state).
        let dk = pure::dicke(n, 0.5 * n as f64 - 1.0).expect("valid m");
        let crss = pure::crss(n, 0.8 * n as f64, 1.0);
        for (name, psi) in [("dicke", &dk), ("crss", &crss)] {
            let v = embed(n, psi);
            let rho: Vec<c64> = (0..d * d).map(|i| v[i / d] * v[i % d].conj()).collect();
            let ex = exact(&b, &rho);
            let y = cumulant::from_pure(psi);
            for k in 0..NVAR {
                assert!(
                    (y[k] - ex.y[k]).abs() < 1e-13,
                    "N={n} {name} {}: {} vs {}",
                    VARS[k],
                    y[k],
                    ex.y[k]
                );
            }
            if name == "dicke" {
                cumulant::close_third(&ex.y, &mut t3);
                assert!(
                    (t3[0] - ex.t3[0]).abs() > 1e-3,
                    "N={n}: closure exact for a Dicke state?"
                );
            }
        }
    }
}

/// <Jx>, <Jy>, <Jz>, <Jx^2>, <Jy^2>, <Jz^2>, <{Jx,Jy}>/2, <{Jx,Jz}>/2, <{Jy,Jz}>/2.
fn flat(m: &observe::Moments) -> [f64; 9] {
    [
        m.mean[0],
        m.mean[1],
        m.mean[2],
        m.second[0][0],
        m.second[1][1],
        m.second[2][2],
        m.second[0][1],
        m.second[0][2],
        m.second[1][2],
    ]
}

fn run_blocks(model: &Model, psi: &[c64], times: &[f64], opts: &OdeOptions) -> Vec<observe::Moments> {
    let rho0 = BlockState::from_symmetric(&DensityMatrix::from_pure(psi));
    let mut out = Vec::new();
    blocks::evolve(model, &rho0, times, opts, &mut |_k, _t, s| {
        out.push(observe::moments_blocks(s))
    })
    .expect("block integration");
    out
}

fn run_cumulant(model: &Model, psi: &[c64], times: &[f64], opts: &OdeOptions) -> Vec<observe::Moments> {
    let mut out = Vec::new();
    cumulant::evolve(model, &cumulant::from_pure(psi), times, opts, &mut |_k, _t, y| {
        out.push(cumulant::to_moments(model.n, y))
    })
    .expect("cumulant integration");
    out
}

/// At N = 2 there is no third atom: the closed equations are the exact ones. Every term on at
/// random rates, from a coherent and a Dicke state, against the exact block solver over
/// t in [0, 2]: both integrate at rtol 1e-12, so the moments (size <= 1) agree to ~1e-11;
/// 1e-9 leaves room for error accumulation and nothing for a wrong term (O(0.1) effects).
#[test]
fn closed_equations_are_exact_at_two_atoms() {
    let opts = OdeOptions {
        rtol: 1e-12,
        atol: 1e-14,
        ..OdeOptions::default()
    };
    let times: Vec<f64> = (0..=8).map(|k| 0.25 * k as f64).collect();
    let mut rng = Rng(0xDEAD_BEEF_0000_0002);
    let mut worst: f64 = 0.0;
    for rep in 0..3 {
        let model = random_model(2, &mut rng);
        for psi in [pure::coherent(2, 2.2, 0.9), pure::dicke(2, 0.0).expect("m = 0")] {
            let a = run_blocks(&model, &psi, &times, &opts);
            let b = run_cumulant(&model, &psi, &times, &opts);
            for (k, (ma, mb)) in a.iter().zip(&b).enumerate() {
                let (fa, fb) = (flat(ma), flat(mb));
                for q in 0..9 {
                    let d = (fa[q] - fb[q]).abs();
                    worst = worst.max(d);
                    assert!(
                        d < 1e-9,
                        "rep {rep} t={} moment {q}: exact {} vs cumulant {} ({d:e})",
                        times[k],
                        fa[q],
                        fb[q]
                    );
                }
            }
        }
    }
    eprintln!("N = 2 cumulant vs exact: worst moment difference {worst:e}");
}

/// Seed 002's model: H = chi J+J- + Omega Jx, Gamma D[J-], gamma_s sum D[sigma^-], chi = Gamma,
/// Upsilon = 2 Omega/N = 0.9 Upsilon_c, Upsilon_c = sqrt(Gamma^2 + 4 chi^2), gamma_s = 2 Gamma,
/// all spins along -x (theta = pi/2, phi = pi).
fn seed002(n: usize, gamma_s: f64) -> Model {
    let upsilon_c = 5.0f64.sqrt();
    Model {
        n,
        drive: 0.9 * upsilon_c * n as f64 / 2.0,
        chi: 1.0,
        gamma_coll: 1.0,
        gamma_down: gamma_s,
        ..Model::default()
    }
}

/// Rung 3: cumulants vs the exact permutation-invariant solver on seed 002's model
/// (gamma_s = 2 Gamma), N = 10, 20, 30, over t in [0, 3/Gamma] (61 saves): the largest
/// deviation of <J>/(N/2) and of xi^2 over the window.
///
/// Measured (this test prints them; rtol 1e-9 on both sides, so these are the approximation's
/// deviations, not integration error):
///
/// ```text
/// N = 10: max |d<J>|/(N/2) = 0.031, max |d xi^2| = 0.19
/// N = 20: max |d<J>|/(N/2) = 0.074, max |d xi^2| = 2.5
/// N = 30: max |d<J>|/(N/2) = 0.120, max |d xi^2| = 4.8
/// ```
///
/// The agreement does NOT improve with N at fixed Gamma t in this range: the deviation
/// grows. Measured with gamma_s/Gamma = 0 - 20 and N = 10 - 40 (the ignored diagnostic
/// `diag_windows`): the window [0, 3/Gamma] is 3N collective times 1/(N Gamma),
/// the closure error accumulates per collective time, and what makes the closure good is
/// single-atom decoherence relative to the collective rate, gamma_s/(N Gamma), which falls
/// with N at fixed gamma_s (at gamma_s = 20 Gamma the deviations are 5e-5 (N = 10) to
/// 2e-3 (N = 40); at gamma_s = 0.5, 0.02 - 0.15). On a window fixed in collective time
/// (N Gamma t <= 10) the <J> deviation does fall with N from N = 20 on:
/// `cumulant_agreement_improves_with_n_in_collective_time` (N = 20, 40, 80). The xi^2
/// deviations at N >= 20 here are largest late, where
/// |<J>| is small and xi^2 >> 1 (no squeezing on either side). The minimum of xi^2 over the
/// window agrees to 1.6 - 2.3 %: 0.792 / 0.805, 0.642 / 0.657, 0.566 / 0.577 (exact / cumulant).
///
/// Asserted: the measured bounds with a 1.5x margin (a regression guard on the approximation's
/// behaviour; the N = 2 and open-RHS tests pin every term exactly), and that
/// both sides see the early squeezing (xi^2 < 0.9 near N Gamma t ~ 2 - 6).
#[test]
fn cumulants_vs_exact_solver_seed002() {
    let opts = OdeOptions {
        rtol: 1e-9,
        atol: 1e-11,
        ..OdeOptions::default()
    };
    let times: Vec<f64> = (0..=60).map(|k| 0.05 * k as f64).collect();
    let bounds = [(10usize, 0.031, 0.19), (20, 0.074, 2.5), (30, 0.120, 4.8)];
    for (n, bj, bx) in bounds {
        let model = seed002(n, 2.0);
        let psi = pure::coherent(n, std::f64::consts::FRAC_PI_2, std::f64::consts::PI);
        let t0 = std::time::Instant::now();
        let a = run_blocks(&model, &psi, &times, &opts);
        let tb = t0.elapsed().as_secs_f64();
        let b = run_cumulant(&model, &psi, &times, &opts);
        let (mut ej, mut ex): (f64, f64) = (0.0, 0.0);
        let (mut min_a, mut min_b) = (f64::INFINITY, f64::INFINITY);
        for (ma, mb) in a.iter().zip(&b) {
            for q in 0..3 {
                ej = ej.max((ma.mean[q] - mb.mean[q]).abs() / (n as f64 / 2.0));
            }
            let (xa, xb) = (ma.xi2(), mb.xi2());
            ex = ex.max((xa - xb).abs());
            min_a = min_a.min(xa);
            min_b = min_b.min(xb);
        }
        eprintln!(
            "N = {n}: max |d<J>|/(N/2) = {ej:.4e}, max |d xi^2| = {ex:.4e}, min xi^2 exact {min_a:.3} cumulant {min_b:.3} (blocks {tb:.2} s)"
        );
        assert!(
            ej < 1.5 * bj,
            "N = {n}: <J> deviation {ej:e} above the measured {bj}"
        );
        assert!(
            ex < 1.5 * bx,
            "N = {n}: xi^2 deviation {ex:e} above the measured {bx}"
        );
        assert!(
            min_a < 0.9 && min_b < 0.9,
            "N = {n}: no early squeezing ({min_a}, {min_b})"
        );
    }
}

/// Where the agreement does improve with N: on a window fixed in collective time,
/// N Gamma t <= 10 (the first collective transient with its squeezing minimum), the largest
/// <J>/(N/2) deviation on seed 002's model (gamma_s = 2 Gamma) falls from N = 20 to 40 to 80.
/// Measured: 3.3e-2, 2.9e-2, 1.2e-2 (late half of the window dominates; the first half alone:
/// 3.5e-3, 1.8e-3, 6.4e-4, roughly 1/N). N = 10 is left out: it is better than N = 20 (2.4e-2),
/// the small-N side of the crossover described in `cumulants_vs_exact_solver_seed002`.
/// Asserted: strictly decreasing, and the N = 80 deviation below half of N = 20's.
#[test]
fn cumulant_agreement_improves_with_n_in_collective_time() {
    let opts = OdeOptions {
        rtol: 1e-9,
        atol: 1e-11,
        ..OdeOptions::default()
    };
    let mut errs = Vec::new();
    for n in [20usize, 40, 80] {
        let times: Vec<f64> = (0..=100).map(|k| 0.1 * k as f64 / n as f64).collect();
        let model = seed002(n, 2.0);
        let psi = pure::coherent(n, std::f64::consts::FRAC_PI_2, std::f64::consts::PI);
        let a = run_blocks(&model, &psi, &times, &opts);
        let b = run_cumulant(&model, &psi, &times, &opts);
        let mut e: f64 = 0.0;
        for (ma, mb) in a.iter().zip(&b) {
            for q in 0..3 {
                e = e.max((ma.mean[q] - mb.mean[q]).abs() / (n as f64 / 2.0));
            }
        }
        eprintln!("N = {n}: max |d<J>|/(N/2) for N Gamma t <= 10: {e:.3e}");
        errs.push(e);
    }
    assert!(errs[1] < errs[0] && errs[2] < errs[1], "not decreasing: {errs:?}");
    assert!(
        errs[2] < 0.5 * errs[0],
        "N = 80 not below half of N = 20: {errs:?}"
    );
}

/// Diagnostic behind the doc of `cumulants_vs_exact_solver_seed002` (not run by default):
/// deviations in windows of collective time N Gamma t for several gamma_s and N = 10 - 40.
#[test]
#[ignore = "diagnostic table behind a doc comment; run with --ignored --nocapture"]
fn diag_windows() {
    let opts = OdeOptions {
        rtol: 1e-9,
        atol: 1e-11,
        ..OdeOptions::default()
    };
    for gs in [0.0, 0.5, 2.0, 20.0] {
        for n in [10usize, 20, 30, 40] {
            let times: Vec<f64> = (0..=30 * n).map(|k| 0.1 * k as f64 / n as f64).collect();
            let model = seed002(n, gs);
            let psi = pure::coherent(n, std::f64::consts::FRAC_PI_2, std::f64::consts::PI);
            let a = run_blocks(&model, &psi, &times, &opts);
            let b = run_cumulant(&model, &psi, &times, &opts);
            let mut e = [0.0f64; 4];
            for (k, (ma, mb)) in a.iter().zip(&b).enumerate() {
                let w = if times[k] * n as f64 <= 5.0 { 0 } else { 2 };
                for q in 0..3 {
                    e[w] = e[w].max((ma.mean[q] - mb.mean[q]).abs() / (n as f64 / 2.0));
                }
                e[w + 1] = e[w + 1].max((ma.xi2() - mb.xi2()).abs());
            }
            eprintln!(
                "gamma_s = {gs} N = {n}: N Gamma t <= 5: d<J> {:.2e} d xi2 {:.2e}; Gamma t in (5/N, 3]: d<J> {:.2e} d xi2 {:.2e}",
                e[0], e[1], e[2], e[3]
            );
        }
    }
}
