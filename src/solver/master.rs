//! Exact collective master equation. (being written)
