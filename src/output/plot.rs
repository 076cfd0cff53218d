//! Plots. (being written)
