//! Observables (PHYSICS.md section 8). (being written)
