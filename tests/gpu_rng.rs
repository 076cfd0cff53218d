//! Philox4x32-10 on CPU (`dicke::rng`) and GPU (`shaders/common/philox.wgsl`): Random123's
//! known-answer vectors on both, and bit-identical streams for every (seed, trajectory) whatever
//! the batch size or the split of the ensemble into dispatches.
//!
//! GPU tests use `backend::gpu::test_context`: without an adapter they print
//! `SKIPPED: no GPU adapter ...` to stderr and return; with `DICKE_REQUIRE_GPU=1` (CI, with
//! Mesa's lavapipe installed) a missing adapter fails them. Software adapters are allowed here.
#![cfg(feature = "gpu")] // GPU kernels only exist in builds with the `gpu` feature

use dicke::backend::gpu::{report_skip, test_context};
use dicke::rng::{self, PhiloxStream};

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

/// A KAT counter and key read back through the stream layout: (seed, traj, draw).
fn as_stream_coords(ctr: [u32; 4], key: [u32; 2]) -> (u64, u64, u64) {
    let w = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    (w(key[0], key[1]), w(ctr[2], ctr[3]), w(ctr[0], ctr[1]))
}

/// CPU twin of `philox_fill_at`: trajectory-major blocks.
fn cpu_fill(seed: u64, first_traj: u64, ntraj: u32, first_draw: u64, draws: u32) -> Vec<[u32; 4]> {
    (0..u64::from(ntraj))
        .flat_map(|i| {
            let mut s = PhiloxStream::at(seed, first_traj.wrapping_add(i), first_draw);
            (0..draws).map(move |_| s.next_u32x4())
        })
        .collect()
}

#[test]
fn cpu_known_answers() {
    for (ctr, key, want) in KAT {
        assert_eq!(
            rng::philox4x32_10(ctr, key),
            want,
            "ctr {ctr:08x?} key {key:08x?}"
        );
        let (seed, traj, draw) = as_stream_coords(ctr, key);
        assert_eq!(PhiloxStream::at(seed, traj, draw).next_u32x4(), want);
        assert_eq!(rng::block(seed, traj, draw), want);
    }
}

#[test]
fn gpu_known_answers() {
    let Some(gpu) = test_context("gpu_known_answers") else {
        return;
    };
    eprintln!("gpu_known_answers on {:?}", gpu.info());
    for (ctr, key, want) in KAT {
        let (seed, traj, draw) = as_stream_coords(ctr, key);
        let got = gpu
            .philox_fill_at(seed, traj, 1, draw, 1)
            .expect("philox_fill_at");
        assert_eq!(got, vec![want], "ctr {ctr:08x?} key {key:08x?}");
    }
}

#[test]
fn gpu_stream_equals_cpu_stream() {
    let Some(gpu) = test_context("gpu_stream_equals_cpu_stream") else {
        return;
    };
    let cases: [(u64, u64, u32, u64, u32); 7] = [
        // (seed, first_traj, ntraj, first_draw, draws)
        (0, 0, 1, 0, 1),
        (1, 0, 257, 0, 7),
        (42, 1_000_000, 100, 0, 33),
        (0xdead_beef_0000_0001, 5, 64, 0, 16),
        (u64::MAX, 0, 3, 0, 5),
        // Trajectory index crossing 2^32, and draw index crossing 2^32 (carry into the high word).
        (7, (1 << 32) - 5, 10, 0, 3),
        (7, 3, 4, (1 << 32) - 2, 5),
    ];
    for (seed, first_traj, ntraj, first_draw, draws) in cases {
        let got = gpu
            .philox_fill_at(seed, first_traj, ntraj, first_draw, draws)
            .expect("philox_fill_at");
        let want = cpu_fill(seed, first_traj, ntraj, first_draw, draws);
        assert_eq!(got.len(), want.len());
        if let Some(k) = (0..got.len()).find(|&k| got[k] != want[k]) {
            panic!(
                "seed {seed:#x} first_traj {first_traj} first_draw {first_draw}: trajectory +{} draw {}: \
                 GPU {:08x?} CPU {:08x?}",
                k / draws as usize,
                k % draws as usize,
                got[k],
                want[k]
            );
        }
    }
}

#[test]
fn gpu_split_of_the_ensemble_does_not_change_the_numbers() {
    let Some(gpu) = test_context("gpu_split_of_the_ensemble_does_not_change_the_numbers") else {
        return;
    };
    let (seed, draws) = (2024, 8u32);
    let whole = gpu.philox_fill(seed, 0, 1000, draws).expect("0..1000");
    let mut split = gpu.philox_fill(seed, 0, 300, draws).expect("0..300");
    split.extend(gpu.philox_fill(seed, 300, 700, draws).expect("300..1000"));
    assert_eq!(whole, split, "0..1000 vs 0..300 + 300..1000");
    // One trajectory alone equals its slot in the batch, and the CPU stream.
    for t in [0u64, 1, 299, 300, 999] {
        let alone = gpu.philox_fill(seed, t, 1, draws).expect("one trajectory");
        let slot = &whole[t as usize * draws as usize..][..draws as usize];
        assert_eq!(alone, slot, "trajectory {t}");
    }
    assert_eq!(whole, cpu_fill(seed, 0, 1000, 0, draws));
    // Fewer draws per call is a prefix of the same stream.
    let short = gpu.philox_fill(seed, 0, 1000, 3).expect("3 draws");
    for t in 0..1000usize {
        assert_eq!(short[3 * t..3 * t + 3], whole[8 * t..8 * t + 3], "trajectory {t}");
    }
}

#[test]
fn gpu_large_request_is_split_into_dispatches_without_changing_the_numbers() {
    let Some(gpu) = test_context("gpu_large_request_is_split_into_dispatches_without_changing_the_numbers")
    else {
        return;
    };
    // 70_000 x 64 blocks x 16 B = 71.7 MB: more than one 64 MiB dispatch.
    let (seed, ntraj, draws) = (99, 70_000u32, 64u32);
    let got = gpu.philox_fill(seed, 11, ntraj, draws).expect("large fill");
    assert_eq!(got, cpu_fill(seed, 11, ntraj, 0, draws));
}

#[test]
fn gpu_uniform_f32_is_bit_identical_to_cpu() {
    let Some(gpu) = test_context("gpu_uniform_f32_is_bit_identical_to_cpu") else {
        return;
    };
    let (seed, ntraj, draws) = (31_415, 500u32, 20u32);
    let got = gpu
        .philox_fill_uniform_f32(seed, 17, ntraj, draws)
        .expect("uniform f32");
    let want: Vec<[f32; 4]> = cpu_fill(seed, 17, ntraj, 0, draws)
        .into_iter()
        .map(|b| b.map(rng::uniform_f32))
        .collect();
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g.map(f32::to_bits),
            w.map(f32::to_bits),
            "element {k}: GPU {g:?} CPU {w:?}"
        );
        assert!(g.iter().all(|&u| u > 0.0 && u < 1.0));
    }
    // The extremes of the formula, through raw words chosen on the CPU side.
    assert_eq!(rng::uniform_f32(0), 2f32.powi(-24));
    assert_eq!(rng::uniform_f32(u32::MAX), 1.0 - 2f32.powi(-24));
}

#[test]
fn gpu_uniform_f64_is_bit_identical_to_cpu() {
    let Some(gpu) = test_context("gpu_uniform_f64_is_bit_identical_to_cpu") else {
        return;
    };
    if !gpu.info().has_f64 {
        report_skip(&format!(
            "SKIPPED: adapter `{}` has no SHADER_F64: gpu_uniform_f64_is_bit_identical_to_cpu",
            gpu.info().name
        ));
        return;
    }
    let (seed, ntraj, draws) = (27_182, 300u32, 10u32);
    let got = gpu
        .philox_fill_uniform_f64(seed, 0, ntraj, draws)
        .expect("uniform f64");
    let want: Vec<[f64; 2]> = cpu_fill(seed, 0, ntraj, 0, draws)
        .into_iter()
        .map(|w| [rng::uniform_f64(w[0], w[1]), rng::uniform_f64(w[2], w[3])])
        .collect();
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g.map(f64::to_bits),
            w.map(f64::to_bits),
            "element {k}: GPU {g:?} CPU {w:?}"
        );
    }
}

#[test]
fn gpu_empty_request_is_empty() {
    let Some(gpu) = test_context("gpu_empty_request_is_empty") else {
        return;
    };
    assert!(gpu.philox_fill(1, 0, 0, 5).expect("no trajectories").is_empty());
    assert!(gpu.philox_fill(1, 0, 5, 0).expect("no draws").is_empty());
}
