//! States in the symmetric Dicke basis (index k = m + j, see [`crate::basis`]).
//!
//! A pure state is a `Vec<c64>` of length 2j+1; a density matrix is [`DensityMatrix`], a dense
//! row-major (2j+1) x (2j+1) complex matrix (the collective-only state space). A
//! permutation-invariant state with single-atom processes is a [`BlockState`], one block R_j
//! per irrep ([`blocks`]). A pure state named by its parameters (Dicke m, coherent angles, CRSS)
//! before its amplitudes are built is a [`PureSpec`] ([`spec`]).

use num_complex::Complex64 as c64;

/// Dense row-major density matrix in one irrep: `data[r * dim + c]` = <r| rho |c>.
#[derive(Debug, Clone, PartialEq)]
pub struct DensityMatrix {
    pub dim: usize,
    pub data: Vec<c64>,
}

impl DensityMatrix {
    pub fn zeros(dim: usize) -> Self {
        DensityMatrix {
            dim,
            data: vec![c64::new(0.0, 0.0); dim * dim],
        }
    }

    /// |psi><psi| (psi need not be normalised; it is used as given).
    pub fn from_pure(psi: &[c64]) -> Self {
        let dim = psi.len();
        let mut rho = Self::zeros(dim);
        for r in 0..dim {
            for c in 0..dim {
                rho.data[r * dim + c] = psi[r] * psi[c].conj();
            }
        }
        rho
    }

    #[inline]
    pub fn get(&self, r: usize, c: usize) -> c64 {
        self.data[r * self.dim + c]
    }

    pub fn trace(&self) -> c64 {
        (0..self.dim).map(|k| self.data[k * self.dim + k]).sum()
    }

    /// max |rho - rho^dag| elementwise.
    pub fn hermiticity_error(&self) -> f64 {
        let d = self.dim;
        let mut e = 0.0f64;
        for r in 0..d {
            for c in r..d {
                e = e.max((self.data[r * d + c] - self.data[c * d + r].conj()).norm());
            }
        }
        e
    }

    /// max elementwise |self - other|.
    pub fn max_abs_diff(&self, other: &DensityMatrix) -> f64 {
        assert_eq!(self.dim, other.dim);
        self.data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a - b).norm())
            .fold(0.0, f64::max)
    }
}
pub mod blocks;
pub mod pure;
pub mod spec;

pub use blocks::BlockState;
pub use spec::PureSpec;
