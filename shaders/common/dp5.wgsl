// Dormand-Prince 5(4) tableau and step-size controller constants, the twins of those in
// src/solver/ode.rs, shared by the batched integrators (master_batch.wgsl, cumulant_batch.wgsl;
// prepended by the registry, src/backend/gpu/shaders.rs). Abstract constants: folded in f64 by
// the compiler, then rounded once to the working type R where used.
// Stage times c_i (the time-dependent right-hand sides of cumulant_batch's schedules).
const C2 = 1.0 / 5.0;
const C3 = 3.0 / 10.0;
const C4 = 4.0 / 5.0;
const C5 = 8.0 / 9.0;
const A21 = 1.0 / 5.0;
const A31 = 3.0 / 40.0;
const A32 = 9.0 / 40.0;
const A41 = 44.0 / 45.0;
const A42 = -56.0 / 15.0;
const A43 = 32.0 / 9.0;
const A51 = 19372.0 / 6561.0;
const A52 = -25360.0 / 2187.0;
const A53 = 64448.0 / 6561.0;
const A54 = -212.0 / 729.0;
const A61 = 9017.0 / 3168.0;
const A62 = -355.0 / 33.0;
const A63 = 46732.0 / 5247.0;
const A64 = 49.0 / 176.0;
const A65 = -5103.0 / 18656.0;
const A71 = 35.0 / 384.0;
const A73 = 500.0 / 1113.0;
const A74 = 125.0 / 192.0;
const A75 = -2187.0 / 6784.0;
const A76 = 11.0 / 84.0;
const E1 = 71.0 / 57600.0;
const E3 = -71.0 / 16695.0;
const E4 = 71.0 / 1920.0;
const E5 = -17253.0 / 339200.0;
const E6 = 22.0 / 525.0;
const E7 = -1.0 / 40.0;
const SAFE = 0.9;
const FAC_MIN = 0.2;
const FAC_MAX = 10.0;
const BETA = 0.04;

