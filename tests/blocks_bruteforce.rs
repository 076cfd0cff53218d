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

use dicke::c64;
use dicke::model::Model;
use dicke::observe;
use dicke::solver::blocks;
use dicke::solver::ode::{self, OdeOptions};
use dicke::state::{BlockState, DensityMatrix, pure};

/// A sparse square operator on 2^N states, stored by rows.
#[derive(Clone)]
struct Sp {
    rows: Vec<Vec<(usize, c64)>>,
}

impl Sp {
    fn zero(d: usize) -> Sp {
        Sp {
            rows: vec![Vec::new(); d],
        }
    }
    fn dim(&self) -> usize {
        self.rows.len()
    }
    /// From a dense matrix (dropping exact zeros).
    fn from_dense(a: &[c64], d: usize) -> Sp {
        let rows = (0..d)
            .map(|r| {
                (0..d)
                    .filter(|&c| a[r * d + c] != c64::new(0.0, 0.0))
                    .map(|c| (c, a[r * d + c]))
                    .collect()
            })
            .collect();
        Sp { rows }
    }
    /// Linear combination sum_k s_k A_k (dense accumulation: d = 64 at most).
    fn lin(terms: &[(c64, &Sp)]) -> Sp {
        let d = terms[0].1.dim();
        let mut a = vec![c64::new(0.0, 0.0); d * d];
        for (s, op) in terms {
            for (r, row) in op.rows.iter().enumerate() {
                for &(c, v) in row {
                    a[r * d + c] += s * v;
                }
            }
        }
        Sp::from_dense(&a, d)
    }
    fn mul(&self, b: &Sp) -> Sp {
        let d = self.dim();
        let mut a = vec![c64::new(0.0, 0.0); d * d];
        for (r, row) in self.rows.iter().enumerate() {
            for &(k, v) in row {
                for &(c, w) in &b.rows[k] {
                    a[r * d + c] += v * w;
                }
            }
        }
        Sp::from_dense(&a, d)
    }
    fn dag(&self) -> Sp {
        let d = self.dim();
        let mut out = Sp::zero(d);
        for (r, row) in self.rows.iter().enumerate() {
            for &(c, v) in row {
                out.rows[c].push((r, v.conj()));
            }
        }
        out
    }
    /// out += s * (A rho) for a dense row-major rho.
    fn left_acc(&self, s: c64, rho: &[c64], out: &mut [c64]) {
        let d = self.dim();
        for (r, row) in self.rows.iter().enumerate() {
            for &(k, v) in row {
                let f = s * v;
                for c in 0..d {
                    out[r * d + c] += f * rho[k * d + c];
                }
            }
        }
    }
    /// out += s * (rho A^dag): (rho A^dag)_{x,y} = sum_z rho_{x,z} conj(A_{y,z}).
    fn right_dag_acc(&self, s: c64, rho: &[c64], out: &mut [c64]) {
        let d = self.dim();
        for (y, row) in self.rows.iter().enumerate() {
            for &(z, v) in row {
                let f = s * v.conj();
                for x in 0..d {
                    out[x * d + y] += f * rho[x * d + z];
                }
            }
        }
    }
    /// tr(A rho).
    fn expect(&self, rho: &[c64]) -> c64 {
        let d = self.dim();
        let mut s = c64::new(0.0, 0.0);
        for (x, row) in self.rows.iter().enumerate() {
            for &(z, v) in row {
                s += v * rho[z * d + x];
            }
        }
        s
    }
}

/// Single-atom operator `o` (2x2, basis |0> = down, |1> = up) on atom `a` of `n`.
fn site(n: usize, a: usize, o: [[c64; 2]; 2]) -> Sp {
    let d = 1usize << n;
    let mut out = Sp::zero(d);
    for x in 0..d {
        let bx = (x >> a) & 1;
        for (by, row) in o.iter().enumerate() {
            let v = row[bx];
            if v != c64::new(0.0, 0.0) {
                let y = (x & !(1 << a)) | (by << a);
                out.rows[y].push((x, v));
            }
        }
    }
    out
}

struct Brute {
    h_eff: Sp,
    jumps: Vec<(f64, Sp)>,
    obs: Vec<Sp>,
}

fn c(re: f64) -> c64 {
    c64::new(re, 0.0)
}

/// H, the jump operators with their rates, and the observables, from single-atom operators.
fn brute(model: &Model) -> Brute {
    let n = model.n;
    let z = c(0.0);
    let one = c(1.0);
    let sm = [[z, one], [z, z]]; // sigma^- |1> = |0>: row = out, col = in
    let sp = [[z, z], [one, z]];
    let sz = [[c(-1.0), z], [z, one]];
    let sms: Vec<Sp> = (0..n).map(|a| site(n, a, sm)).collect();
    let sps: Vec<Sp> = (0..n).map(|a| site(n, a, sp)).collect();
    let szs: Vec<Sp> = (0..n).map(|a| site(n, a, sz)).collect();
    let sum = |v: &[Sp], s: f64| Sp::lin(&v.iter().map(|o| (c(s), o)).collect::<Vec<_>>());
    let jm = sum(&sms, 1.0);
    let jp = sum(&sps, 1.0);
    let jz = sum(&szs, 0.5);
    let i = c64::new(0.0, 1.0);
    let jx = Sp::lin(&[(c(0.5), &jp), (c(0.5), &jm)]);
    let jy = Sp::lin(&[(-0.5 * i, &jp), (0.5 * i, &jm)]);
    let jpjm = jp.mul(&jm);
    let jz2 = jz.mul(&jz);
    let h = Sp::lin(&[
        (c(model.omega0), &jz),
        (c(model.drive * model.phi.cos()), &jx),
        (c(model.drive * model.phi.sin()), &jy),
        (c(model.chi), &jpjm),
        (c(model.chi_z), &jz2),
    ]);
    let mut jumps = vec![
        (model.gamma_coll, jm.clone()),
        (model.pump_coll, jp.clone()),
        (model.dephase_coll, jz.clone()),
    ];
    for a in 0..n {
        jumps.push((model.gamma_down, sms[a].clone()));
        jumps.push((model.gamma_up, sps[a].clone()));
        jumps.push((model.gamma_phi, szs[a].clone()));
    }
    let mut terms: Vec<(c64, Sp)> = vec![(one, h)];
    for (g, o) in &jumps {
        terms.push((-0.5 * i * g, o.dag().mul(o)));
    }
    let h_eff = Sp::lin(&terms.iter().map(|(s, o)| (*s, o)).collect::<Vec<_>>());
    let j2 = Sp::lin(&[(one, &jx.mul(&jx)), (one, &jy.mul(&jy)), (one, &jz2)]);
    let obs = vec![jx, jy, jz, jz2.clone(), jpjm, j2];
    Brute { h_eff, jumps, obs }
}

fn binom(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// The 2^N vector of a symmetric-subspace state: psi_k / sqrt(C(N, k)) on every basis state
/// with k atoms up.
fn embed(n: usize, psi: &[c64]) -> Vec<c64> {
    (0..1usize << n)
        .map(|x| {
            let k = x.count_ones() as usize;
            psi[k] / binom(n, k).sqrt()
        })
        .collect()
}

/// <Jx>, <Jy>, <Jz>, <Jz^2>, <J+J->, <J^2> of the brute-force state at every time.
fn run_brute(model: &Model, psi: &[c64], times: &[f64], opts: &OdeOptions) -> Vec<[f64; 6]> {
    let b = brute(model);
    let v = embed(model.n, psi);
    let d = v.len();
    let rho0: Vec<c64> = (0..d * d).map(|i| v[i / d] * v[i % d].conj()).collect();
    let i = c64::new(0.0, 1.0);
    let mut tmp = vec![c64::new(0.0, 0.0); d * d];
    let mut out = Vec::new();
    ode::integrate(
        |_t, y: &[c64], dy: &mut [c64]| {
            dy.iter_mut().for_each(|x| *x = c64::new(0.0, 0.0));
            // -i H_eff rho + i rho H_eff^dag
            b.h_eff.left_acc(-i, y, dy);
            b.h_eff.right_dag_acc(i, y, dy);
            for (g, o) in &b.jumps {
                if *g == 0.0 {
                    continue;
                }
                tmp.iter_mut().for_each(|x| *x = c64::new(0.0, 0.0));
                o.left_acc(c(*g), y, &mut tmp);
                o.right_dag_acc(c(1.0), &tmp, dy);
            }
        },
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

/// xorshift64* in [lo, hi).
struct Rng(u64);
impl Rng {
    fn u(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = (self.0.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * x
    }
}

fn random_model(n: usize, rng: &mut Rng) -> Model {
    Model {
        n,
        omega0: rng.u(-1.0, 1.0),
        drive: rng.u(0.3, 1.5),
        phi: rng.u(-3.0, 3.0),
        chi: rng.u(-0.5, 0.5),
        chi_z: rng.u(-0.5, 0.5),
        gamma_coll: rng.u(0.1, 0.8),
        pump_coll: rng.u(0.05, 0.4),
        dephase_coll: rng.u(0.05, 0.5),
        gamma_down: rng.u(0.1, 1.0),
        gamma_up: rng.u(0.05, 0.6),
        gamma_phi: rng.u(0.05, 0.6),
    }
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
