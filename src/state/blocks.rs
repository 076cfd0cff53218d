//! The permutation-invariant density matrix as blocks R_j (PHYSICS.md section 3).
//!
//! For N atoms, rho = sum_j R_j (x) 1_{d_N(j)} / d_N(j), one (2j+1) x (2j+1) block per irrep
//! 2j = N, N-2, ..., 1 or 0 (largest first, [`crate::basis::two_js`]), normalised so that
//! sum_j tr R_j = 1 and <A> = sum_j tr(R_j A^(j)) for a collective operator A. The blocks
//! are stored row-major one after the other in one flat vector (`offsets[b]` is where block b
//! starts); sum_j (2j+1)^2 ~ N^3/6 elements (N = 54: 29,260; N = 100: 176,851).

use crate::basis::two_js;
use crate::state::DensityMatrix;
use num_complex::Complex64 as c64;

/// The blocks R_j of a permutation-invariant state of N atoms (module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockState {
    /// Number of atoms N.
    pub n: usize,
    /// 2j of block b (N, N-2, ...).
    pub two_j: Vec<usize>,
    /// Start of block b in `data`; `offsets[num_blocks]` = `data.len()`.
    pub offsets: Vec<usize>,
    /// All blocks, row-major each: block b's element (r, c) is `data[offsets[b] + r * dim + c]`.
    pub data: Vec<c64>,
}

/// Number of complex elements of all blocks of N atoms, sum_j (2j+1)^2.
pub fn block_elements(n: usize) -> usize {
    two_js(n).iter().map(|&t| (t + 1) * (t + 1)).sum()
}

impl BlockState {
    /// All blocks zero.
    pub fn zeros(n: usize) -> BlockState {
        let two_j = two_js(n);
        let mut offsets = Vec::with_capacity(two_j.len() + 1);
        let mut len = 0;
        for &t in &two_j {
            offsets.push(len);
            len += (t + 1) * (t + 1);
        }
        offsets.push(len);
        BlockState {
            n,
            two_j,
            offsets,
            data: vec![c64::new(0.0, 0.0); len],
        }
    }

    /// The state whose j = N/2 block is `rho` ((N+1) x (N+1), N = rho.dim - 1) and every other
    /// block zero: a state of the symmetric subspace (e.g. |psi><psi| of a Dicke, coherent or
    /// CRSS state).
    pub fn from_symmetric(rho: &DensityMatrix) -> BlockState {
        let n = rho.dim.saturating_sub(1);
        let mut s = BlockState::zeros(n);
        s.data[..rho.data.len()].copy_from_slice(&rho.data);
        s
    }

    /// Number of blocks (N/2 + 1 for even N, (N+1)/2 for odd N).
    pub fn num_blocks(&self) -> usize {
        self.two_j.len()
    }

    /// Dimension 2j + 1 of block b.
    pub fn dim(&self, b: usize) -> usize {
        self.two_j[b] + 1
    }

    /// Block b, row-major.
    pub fn block(&self, b: usize) -> &[c64] {
        &self.data[self.offsets[b]..self.offsets[b + 1]]
    }

    /// Block b as a dense matrix (a copy).
    pub fn block_matrix(&self, b: usize) -> DensityMatrix {
        DensityMatrix {
            dim: self.dim(b),
            data: self.block(b).to_vec(),
        }
    }

    /// sum_j tr R_j (1 for a normalised state).
    pub fn trace(&self) -> c64 {
        (0..self.num_blocks()).map(|b| self.block_trace(b)).sum()
    }

    /// tr R_j of block b: the probability of total spin j.
    pub fn block_trace(&self, b: usize) -> c64 {
        let d = self.dim(b);
        let blk = self.block(b);
        (0..d).map(|k| blk[k * d + k]).sum()
    }

    /// max over the blocks of max |R - R^dag| elementwise.
    pub fn hermiticity_error(&self) -> f64 {
        (0..self.num_blocks())
            .map(|b| self.block_matrix(b).hermiticity_error())
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_counts_match_physics_md() {
        assert_eq!(block_elements(54), 29_260);
        assert_eq!(block_elements(100), 176_851);
        let s = BlockState::zeros(5);
        assert_eq!(s.two_j, vec![5, 3, 1]);
        assert_eq!(s.offsets, vec![0, 36, 52, 56]);
        assert_eq!(s.data.len(), block_elements(5));
    }

    #[test]
    fn from_symmetric_fills_the_top_block() {
        let mut rho = DensityMatrix::zeros(5);
        rho.data[0] = c64::new(0.25, 0.0);
        rho.data[24] = c64::new(0.75, 0.0);
        let s = BlockState::from_symmetric(&rho);
        assert_eq!(s.n, 4);
        assert_eq!(s.block_matrix(0), rho);
        assert!((s.trace() - 1.0).norm() < 1e-15);
        assert_eq!(s.block_trace(1), c64::new(0.0, 0.0));
    }
}
