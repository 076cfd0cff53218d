//! Adaptive ODE integrators. (being written)
