//! The full 2^N Lindbladian of PHYSICS.md sec. 1 built from tensor products of single-atom
//! operators (no Dicke-basis formula enters it): the brute-force arbiter (sec. 9 rung 2)
//! shared by `tests/blocks_bruteforce.rs`, `tests/cumulant.rs`, `tests/spectrum.rs` and
//! `tests/metastable.rs` (each includes this file with `#[path = "common/brute.rs"] mod brute;`).
#![allow(dead_code)]

use dicke::c64;
use dicke::model::Model;

/// A sparse square operator on 2^N states, stored by rows.
#[derive(Clone)]
pub struct Sp {
    pub rows: Vec<Vec<(usize, c64)>>,
}

impl Sp {
    pub fn zero(d: usize) -> Sp {
        Sp {
            rows: vec![Vec::new(); d],
        }
    }
    pub fn dim(&self) -> usize {
        self.rows.len()
    }
    /// From a dense matrix (dropping exact zeros).
    pub fn from_dense(a: &[c64], d: usize) -> Sp {
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
    pub fn lin(terms: &[(c64, &Sp)]) -> Sp {
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
    pub fn mul(&self, b: &Sp) -> Sp {
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
    pub fn dag(&self) -> Sp {
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
    pub fn left_acc(&self, s: c64, rho: &[c64], out: &mut [c64]) {
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
    pub fn right_dag_acc(&self, s: c64, rho: &[c64], out: &mut [c64]) {
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
    pub fn expect(&self, rho: &[c64]) -> c64 {
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
pub fn site(n: usize, a: usize, o: [[c64; 2]; 2]) -> Sp {
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

pub struct Brute {
    /// H - (i/2) sum_k g_k L_k^dag L_k.
    pub h_eff: Sp,
    /// (rate, jump operator) for every channel, collective and per atom.
    pub jumps: Vec<(f64, Sp)>,
    /// Jx, Jy, Jz, Jz^2, J+J-, J^2.
    pub obs: Vec<Sp>,
    /// sigma^-, sigma^+, sigma^z of each atom.
    pub sm: Vec<Sp>,
    pub sp: Vec<Sp>,
    pub sz: Vec<Sp>,
}

impl Brute {
    /// out = L rho for a dense row-major rho (`tmp`: workspace of the same size).
    pub fn apply(&self, y: &[c64], out: &mut [c64], tmp: &mut [c64]) {
        let i = c64::new(0.0, 1.0);
        out.iter_mut().for_each(|x| *x = c64::new(0.0, 0.0));
        // -i H_eff rho + i rho H_eff^dag
        self.h_eff.left_acc(-i, y, out);
        self.h_eff.right_dag_acc(i, y, out);
        for (g, o) in &self.jumps {
            if *g == 0.0 {
                continue;
            }
            tmp.iter_mut().for_each(|x| *x = c64::new(0.0, 0.0));
            o.left_acc(c(*g), y, tmp);
            o.right_dag_acc(c(1.0), tmp, out);
        }
    }
}

pub fn c(re: f64) -> c64 {
    c64::new(re, 0.0)
}

/// H, the jump operators with their rates, and the observables, from single-atom operators.
pub fn brute(model: &Model) -> Brute {
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
    Brute {
        h_eff,
        jumps,
        obs,
        sm: sms,
        sp: sps,
        sz: szs,
    }
}

pub fn binom(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// The 2^N vector of a symmetric-subspace state: psi_k / sqrt(C(N, k)) on every basis state
/// with k atoms up.
pub fn embed(n: usize, psi: &[c64]) -> Vec<c64> {
    (0..1usize << n)
        .map(|x| {
            let k = x.count_ones() as usize;
            psi[k] / binom(n, k).sqrt()
        })
        .collect()
}

/// xorshift64* in [lo, hi).
pub struct Rng(pub u64);
impl Rng {
    pub fn u(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = (self.0.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * x
    }
}

pub fn random_model(n: usize, rng: &mut Rng) -> Model {
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

/// The dense 4^N x 4^N Lindbladian of `model` (column e_ab -> L(|a><b|), row-major rho).
pub fn matrix(model: &Model) -> faer::Mat<c64> {
    let b = brute(model);
    let dd = 1usize << (2 * model.n);
    let mut a = faer::Mat::<c64>::zeros(dd, dd);
    let (mut e, mut out, mut tmp) = (
        vec![c64::new(0.0, 0.0); dd],
        vec![c64::new(0.0, 0.0); dd],
        vec![c64::new(0.0, 0.0); dd],
    );
    for col in 0..dd {
        e[col] = c64::new(1.0, 0.0);
        b.apply(&e, &mut out, &mut tmp);
        e[col] = c64::new(0.0, 0.0);
        for (row, v) in out.iter().enumerate() {
            a[(row, col)] = *v;
        }
    }
    a
}
