//! Output. (being written)
pub mod plot;
