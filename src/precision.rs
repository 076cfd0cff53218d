//! The working precision of the GPU kernels and their CPU twins (a bottom-layer type: solvers,
//! backends and the scenario format all name it).

use serde::Serialize;

/// Working precision of a kernel and of its CPU twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    F64,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }

    /// Bytes of one real number in this precision (4 or 8).
    pub fn real_bytes(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes() {
        assert_eq!(Precision::default(), Precision::F32);
        assert_eq!(Precision::F64.name(), "f64");
        assert_eq!(Precision::F32.real_bytes(), std::mem::size_of::<f32>() as u64);
        assert_eq!(Precision::F64.real_bytes(), std::mem::size_of::<f64>() as u64);
        assert_eq!(serde_json::to_string(&Precision::F64).unwrap(), "\"f64\"");
    }
}
