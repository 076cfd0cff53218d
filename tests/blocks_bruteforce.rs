//! Brute force (PHYSICS.md sec. 9 rung 2, the arbiter of the coefficients of sec. 3): for
//! N = 2..6 the full 2^N Lindbladian of sec. 1 with every term switched on at random rates,
//! built from tensor products of single-atom operators (no Dicke-basis formula enters it),
//! against the block solver, from permutation-symmetric initial states (a coherent state and
//! a Dicke state), comparing <Jx>, <Jy>, <Jz>, <Jz^2>, <J+J->, <J^2> over time to 1e-10.
//!
//! The 2^N side integrates the 2^N x 2^N rho ODE directly (no superoperator: at N = 6 that
//! would be 4096^2 complex numbers), with sparse operators, through the crate's DP5 at
//! rtol = 1e-13, atol = 1e-15; the block side likewise. Both integrations then carry errors
//! ~1e-12 relative over t <= 1, well inside 1e-10 on observables of size <= N^2/4 = 9, so a
//! wrong coefficient (any change of a weight shows up at 1e-3 or more) cannot pass.

#[path = "common/brute.rs"]
mod brute;

use brute::{Rng, brute, embed, random_model};
use dicke::c64;
use dicke::model::Model;
use dicke::observe;
use dicke::solver::blocks;
use dicke::solver::ode::{self, OdeOptions};
use dicke::state::{BlockState, DensityMatrix, pure};

/// <Jx>, <Jy>, <Jz>, <Jz^2>, <J+J->, <J^2> of the brute-force state at every time.
fn run_brute(model: &Model, psi: &[c64], times: &[f64], opts: &OdeOptions) -> Vec<[f64; 6]> {
    let b = brute(model);
    let v = embed(model.n, psi);
    let d = v.len();
    let rho0: Vec<c64> = (0..d * d).map(|i| v[i / d] * v[i % d].conj()).collect();
    let mut tmp = vec![c64::new(0.0, 0.0); d * d];
    let mut out = Vec::new();
    ode::integrate(
        |_t, y: &[c64], dy: &mut [c64]| b.apply(y, dy, &mut tmp),
        &rho0,
        times,
        opts,
        |_k, _t, y| {
            let mut r = [0.0; 6];
            for (a, o) in b.obs.iter().enumerate() {
                r[a] = o.expect(y).re;
            }
            out.push(r);
        },
    )
    .expect("brute-force integration");
    out
}

fn run_blocks(model: &Model, psi: &[c64], times: &[f64], opts: &OdeOptions) -> Vec<[f64; 6]> {
    let rho0 = BlockState::from_symmetric(&DensityMatrix::from_pure(psi));
    let mut out = Vec::new();
    blocks::evolve(model, &rho0, times, opts, &mut |_k, _t, s| {
        let m = observe::moments_blocks(s);
        let jpjm = m.second[0][0] + m.second[1][1] + m.mean[2];
        out.push([
            m.mean[0],
            m.mean[1],
            m.mean[2],
            m.second[2][2],
            jpjm,
            observe::j2_blocks(s),
        ]);
    })
    .expect("block integration");
    out
}

const NAMES: [&str; 6] = ["Jx", "Jy", "Jz", "Jz^2", "J+J-", "J^2"];

#[test]
fn blocks_match_the_2n_lindbladian_with_every_term_on() {
    let opts = OdeOptions {
        rtol: 1e-13,
        atol: 1e-15,
        ..OdeOptions::default()
    };
    let times: Vec<f64> = (0..=5).map(|k| 0.25 * k as f64).collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut worst: f64 = 0.0;
    for n in 2..=6usize {
        let model = random_model(n, &mut rng);
        let states = [
            ("coherent", pure::coherent(n, 1.1, 0.3)),
            (
                "dicke",
                pure::dicke(n, (n / 2) as f64 - n as f64 / 2.0 + 1.0).expect("valid m"),
            ),
        ];
        for (name, psi) in &states {
            let a = run_brute(&model, psi, &times, &opts);
            let b = run_blocks(&model, psi, &times, &opts);
            assert_eq!(a.len(), times.len());
            assert_eq!(b.len(), times.len());
            for (k, (ra, rb)) in a.iter().zip(&b).enumerate() {
                for q in 0..6 {
                    let d = (ra[q] - rb[q]).abs();
                    worst = worst.max(d);
                    assert!(
                        d < 1e-10,
                        "N={n} {name} t={} <{}>: 2^N {} vs blocks {} (diff {d:e})",
                        times[k],
                        NAMES[q],
                        ra[q],
                        rb[q]
                    );
                }
            }
            // The dynamics must have moved the state out of j = N/2 (otherwise the block
            // coefficients would not be tested): <J^2> falls below its j = N/2 value.
            let j = n as f64 / 2.0;
            assert!(
                a[times.len() - 1][5] < j * (j + 1.0) - 1e-2,
                "N={n} {name}: J^2 did not change"
            );
        }
    }
    eprintln!("blocks vs 2^N brute force: worst difference {worst:e}");
}
