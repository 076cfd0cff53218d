//! Philox4x32-10 counter-based random numbers (Salmon, Moraes, Dror & Shaw, "Parallel random
//! numbers: as easy as 1, 2, 3", SC11, 2011), bit-identical to `shaders/common/philox.wgsl`.
//!
//! PHYSICS.md sec. 4: every trajectory draws from its own stream keyed by (seed, trajectory
//! index), so a trajectory's numbers do not depend on the backend, the batch size, the order in
//! which trajectories run, or how the ensemble is split across dispatches or machines.
//!
//! # The generator
//!
//! `philox4x32_10(ctr, key)` is a pure function of a 128-bit counter and a 64-bit key: ten
//! rounds of
//!
//! ```text
//! (hi0, lo0) = mulhilo(M0, c0);  (hi1, lo1) = mulhilo(M1, c2)
//! c = [hi1 ^ c1 ^ k0,  lo1,  hi0 ^ c3 ^ k1,  lo0]
//! k = [k0 + W0, k1 + W1]            (wrapping; between rounds, not after the last)
//! ```
//!
//! with M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85, exactly as in
//! Random123's `philox4x32_R(10, ..)`; checked against its published known-answer vectors.
//!
//! # Stream layout (the same on CPU and GPU)
//!
//! ```text
//! key     = [seed as u32, (seed >> 32) as u32]                      (seed: u64)
//! counter = [draw as u32, (draw >> 32) as u32, traj as u32, (traj >> 32) as u32]
//! ```
//!
//! `draw` is the 64-bit index of the 128-bit block within the trajectory's stream, starting at 0
//! and incremented by one per [`PhiloxStream::next_u32x4`]; `traj` is the trajectory's global
//! index in the ensemble (not its slot in a batch). Block `draw` of trajectory `traj` is therefore
//! `philox4x32_10(counter, key)` whatever else runs. A kernel that wants several independent
//! sub-streams per trajectory may reserve high bits of `draw` for a tag.
//!
//! # Conversions to floating point (identical formulas on CPU and GPU)
//!
//! ```text
//! f32:  u = (f32(x >> 9) + 0.5) * 2^-23                  in [2^-24, 1 - 2^-24]
//! f64:  u = (f64(hi) * 2^20 + f64(lo >> 12) + 0.5) * 2^-52  in [2^-53, 1 - 2^-53]
//! ```
//!
//! Both lie in the open interval (0, 1), so `ln(u)` and `ln(1 - u)` are finite, and both are
//! symmetric about 1/2. Every step is exact in the target precision (integers below 2^23 resp.
//! 2^52 plus one half, times a power of two), so the results are bit-identical on every device
//! whether or not the compiler fuses multiply-adds. A block of four words gives four f32
//! uniforms (one per word) or two f64 uniforms (from words (0, 1) and (2, 3), the second word of
//! each pair being the high half).

/// Philox4x32 round multipliers.
pub const PHILOX_M0: u32 = 0xD251_1F53;
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
/// Weyl key increments (golden ratio and sqrt(3) - 1).
pub const PHILOX_W0: u32 = 0x9E37_79B9;
pub const PHILOX_W1: u32 = 0xBB67_AE85;

/// `(hi, lo)` words of the 64-bit product `a * b`.
#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = u64::from(a) * u64::from(b);
    ((p >> 32) as u32, p as u32)
}

#[inline(always)]
fn round(c: [u32; 4], k: [u32; 2]) -> [u32; 4] {
    let (hi0, lo0) = mulhilo(PHILOX_M0, c[0]);
    let (hi1, lo1) = mulhilo(PHILOX_M1, c[2]);
    [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0]
}

/// Philox4x32 with 10 rounds: the block for counter `ctr` under `key`.
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    c = round(c, k);
    for _ in 1..10 {
        k = [k[0].wrapping_add(PHILOX_W0), k[1].wrapping_add(PHILOX_W1)];
        c = round(c, k);
    }
    c
}

/// The Philox key for `seed`: low word first.
#[inline]
pub fn key_for_seed(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// The counter of block `draw` of trajectory `traj`: `[draw_lo, draw_hi, traj_lo, traj_hi]`.
#[inline]
pub fn counter_for(traj: u64, draw: u64) -> [u32; 4] {
    [draw as u32, (draw >> 32) as u32, traj as u32, (traj >> 32) as u32]
}

/// Block `draw` of trajectory `traj` under `seed`, without a stream object.
#[inline]
pub fn block(seed: u64, traj: u64, draw: u64) -> [u32; 4] {
    philox4x32_10(counter_for(traj, draw), key_for_seed(seed))
}

/// `(f32(x >> 9) + 0.5) * 2^-23`: uniform in [2^-24, 1 - 2^-24], never 0 or 1. Twin of WGSL
/// `philox_uniform_f32`.
#[inline]
pub fn uniform_f32(x: u32) -> f32 {
    const SCALE: f32 = 1.0 / 8_388_608.0; // 2^-23
    ((x >> 9) as f32 + 0.5) * SCALE
}

/// `(hi * 2^20 + (lo >> 12) + 0.5) * 2^-52`: uniform in [2^-53, 1 - 2^-53], never 0 or 1, with
/// 52 random bits. Twin of WGSL `philox_uniform_f64` (in `shaders/common/philox_f64.wgsl`).
#[inline]
pub fn uniform_f64(lo: u32, hi: u32) -> f64 {
    const TWO_20: f64 = 1_048_576.0;
    const SCALE: f64 = 1.0 / 4_503_599_627_370_496.0; // 2^-52
    (f64::from(hi) * TWO_20 + f64::from(lo >> 12) + 0.5) * SCALE
}

/// The random stream of one trajectory: blocks `draw = start, start + 1, ...` of
/// `(seed, traj)`. Cheap to create (no state beyond the counter); twin of WGSL `PhiloxStream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhiloxStream {
    key: [u32; 2],
    traj: u64,
    draw: u64,
}

impl PhiloxStream {
    /// The stream of trajectory `traj` (its global index in the ensemble) under `seed`.
    pub fn new(seed: u64, traj: u64) -> Self {
        Self::at(seed, traj, 0)
    }

    /// The same stream, positioned at block `draw` (to resume or skip ahead in O(1)).
    pub fn at(seed: u64, traj: u64, draw: u64) -> Self {
        Self {
            key: key_for_seed(seed),
            traj,
            draw,
        }
    }

    /// The trajectory index this stream belongs to.
    pub fn traj(&self) -> u64 {
        self.traj
    }

    /// Index of the next block to be drawn (the number drawn so far, for a stream from `new`).
    pub fn draw_index(&self) -> u64 {
        self.draw
    }

    /// The next 128-bit block.
    #[inline]
    pub fn next_u32x4(&mut self) -> [u32; 4] {
        let out = philox4x32_10(counter_for(self.traj, self.draw), self.key);
        self.draw = self.draw.wrapping_add(1);
        out
    }

    /// Four f32 uniforms in (0, 1) from the next block, word by word ([`uniform_f32`]).
    #[inline]
    pub fn next_uniform_f32x4(&mut self) -> [f32; 4] {
        self.next_u32x4().map(uniform_f32)
    }

    /// Two f64 uniforms in (0, 1) from the next block, from words (0, 1) and (2, 3)
    /// ([`uniform_f64`], second word high).
    #[inline]
    pub fn next_uniform_f64x2(&mut self) -> [f64; 2] {
        let w = self.next_u32x4();
        [uniform_f64(w[0], w[1]), uniform_f64(w[2], w[3])]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123 `kat_vectors`, philox4x32 with 10 rounds: (counter, key, expected).
    const KAT: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        ([0; 4], [0; 2], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]),
        (
            [0xffffffff; 4],
            [0xffffffff; 2],
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
        ),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];

    #[test]
    fn philox_known_answers() {
        for (ctr, key, want) in KAT {
            assert_eq!(philox4x32_10(ctr, key), want, "ctr {ctr:08x?} key {key:08x?}");
        }
    }

    /// The 16-bit-halves `mulhi` that `philox.wgsl` uses (WGSL has no 64-bit product), checked
    /// against the 64-bit product here so the GPU algorithm is tested on any machine.
    fn mulhi_halves(a: u32, b: u32) -> u32 {
        let (al, ah) = (a & 0xffff, a >> 16);
        let (bl, bh) = (b & 0xffff, b >> 16);
        let ll = al * bl;
        let lh = al * bh;
        let hl = ah * bl;
        let hh = ah * bh;
        let cross = (ll >> 16) + (lh & 0xffff) + (hl & 0xffff);
        hh + (lh >> 16) + (hl >> 16) + (cross >> 16)
    }

    #[test]
    fn mulhi_by_halves_matches_u64_product() {
        let edge = [
            0u32,
            1,
            2,
            0xffff,
            0x10000,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_fffe,
            0xffff_ffff,
        ];
        for &a in edge.iter().chain(&[PHILOX_M0, PHILOX_M1]) {
            for &b in &edge {
                assert_eq!(mulhi_halves(a, b), mulhilo(a, b).0, "{a:#x} * {b:#x}");
            }
        }
        let mut s = PhiloxStream::new(7, 0);
        for _ in 0..20_000 {
            let w = s.next_u32x4();
            assert_eq!(mulhi_halves(w[0], w[1]), mulhilo(w[0], w[1]).0);
            assert_eq!(mulhi_halves(w[2], w[3]), mulhilo(w[2], w[3]).0);
        }
    }

    #[test]
    fn stream_layout_is_documented_counter_and_key() {
        let seed = 0x0123_4567_89ab_cdef_u64;
        let traj = 0xfedc_ba98_7654_3210_u64;
        let mut s = PhiloxStream::new(seed, traj);
        for draw in 0..5u64 {
            let ctr = [draw as u32, 0, 0x7654_3210, 0xfedc_ba98];
            assert_eq!(s.next_u32x4(), philox4x32_10(ctr, [0x89ab_cdef, 0x0123_4567]));
        }
        assert_eq!(s.draw_index(), 5);
        // Carry from the low to the high draw word.
        let mut s = PhiloxStream::at(seed, traj, 0xffff_ffff);
        s.next_u32x4();
        assert_eq!(
            s.next_u32x4(),
            philox4x32_10([0, 1, 0x7654_3210, 0xfedc_ba98], key_for_seed(seed))
        );
        assert_eq!(PhiloxStream::at(seed, traj, 3).next_u32x4(), block(seed, traj, 3));
    }

    #[test]
    fn streams_differ_by_seed_and_trajectory() {
        let a = block(1, 0, 0);
        assert_ne!(a, block(2, 0, 0));
        assert_ne!(a, block(1, 1, 0));
        assert_ne!(a, block(1, 0, 1));
        assert_ne!(block(1 << 32, 0, 0), block(0, 0, 0));
        assert_ne!(block(0, 1 << 32, 0), block(0, 0, 0));
    }

    #[test]
    fn uniform_f32_is_in_the_open_interval_and_exact() {
        assert_eq!(uniform_f32(0), 2f32.powi(-24));
        assert_eq!(uniform_f32(u32::MAX), 1.0 - 2f32.powi(-24));
        assert!(uniform_f32(u32::MAX) < 1.0);
        assert!(uniform_f32(0).ln().is_finite() && (1.0 - uniform_f32(u32::MAX)).ln().is_finite());
        // Symmetric about 1/2: u(x) + u(!x) = 1 exactly.
        for x in [0u32, 1 << 9, 12345 << 9, 0x8000_0000, u32::MAX] {
            assert_eq!(uniform_f32(x) + uniform_f32(!x), 1.0);
            // Exact: the f64 evaluation of the same formula agrees.
            assert_eq!(f64::from(uniform_f32(x)), ((x >> 9) as f64 + 0.5) / 8_388_608.0);
        }
    }

    #[test]
    fn uniform_f64_is_in_the_open_interval_and_exact() {
        assert_eq!(uniform_f64(0, 0), 2f64.powi(-53));
        assert_eq!(uniform_f64(u32::MAX, u32::MAX), 1.0 - 2f64.powi(-53));
        assert!(uniform_f64(u32::MAX, u32::MAX) < 1.0);
        for (lo, hi) in [
            (0u32, 0u32),
            (0x1234_5678, 0x9abc_def0),
            (u32::MAX, 0),
            (0, u32::MAX),
        ] {
            let bits = ((u64::from(hi) << 32) | u64::from(lo)) >> 12;
            assert_eq!(uniform_f64(lo, hi), (bits as f64 + 0.5) * 2f64.powi(-52));
            assert_eq!(uniform_f64(lo, hi) + uniform_f64(!lo, !hi), 1.0);
        }
    }

    #[test]
    fn uniforms_have_the_right_mean_and_variance() {
        // 4e5 f32 draws: mean 1/2 and variance 1/12 within 5 standard errors.
        let mut s = PhiloxStream::new(2024, 3);
        let n = 100_000;
        let (mut sum, mut sum2) = (0.0f64, 0.0f64);
        for _ in 0..n {
            for u in s.next_uniform_f32x4() {
                let u = f64::from(u);
                sum += u;
                sum2 += u * u;
            }
        }
        let m = (4 * n) as f64;
        let mean = sum / m;
        let var = sum2 / m - mean * mean;
        assert!(
            (mean - 0.5).abs() < 5.0 * (1.0f64 / 12.0 / m).sqrt(),
            "mean {mean}"
        );
        assert!(
            (var - 1.0 / 12.0).abs() < 5.0 * (1.0f64 / 180.0 / m).sqrt(),
            "var {var}"
        );
        let mut s = PhiloxStream::new(2024, 4);
        let mean64 = (0..n).flat_map(|_| s.next_uniform_f64x2()).sum::<f64>() / (2 * n) as f64;
        assert!((mean64 - 0.5).abs() < 5.0 * (1.0f64 / 12.0 / (2 * n) as f64).sqrt());
    }
}
