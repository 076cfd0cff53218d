//! The scenario file as written: serde structs of the TOML tables, unknown keys rejected
//! (`deny_unknown_fields`), numbers still as [`Num`] definitions. Validation turns them into a
//! [`Scenario`](super::Scenario) (`validate.rs`).

use super::Num;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub(super) title: Option<String>,
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) variables: BTreeMap<String, Num>,
    pub(super) model: BTreeMap<String, super::schedule::ParamDef>,
    pub(super) initial: Option<RawState>,
    pub(super) task: RawTask,
    #[serde(default)]
    pub(super) observables: RawObservables,
    #[serde(default)]
    pub(super) output: RawOutput,
    pub(super) analysis: Option<RawAnalysis>,
}

/// `[analysis]`: statistics over a task's results.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnalysis {
    pub(super) switching: Option<RawSwitching>,
    pub(super) hysteresis: Option<RawHysteresis>,
}

/// `[analysis.hysteresis]` (kind = "evolve" with a scheduled parameter).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHysteresis {
    pub(super) observable: Option<String>,
    pub(super) level: Option<Num>,
    pub(super) parameter: Option<String>,
}

/// `[analysis.switching]` (kind = "trajectories").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSwitching {
    pub(super) observable: Option<String>,
    pub(super) window: Option<Num>,
    pub(super) thresholds: Option<Vec<Num>>,
    pub(super) max_events: Option<Num>,
    pub(super) t_burn: Option<Num>,
}

/// A state table. Not `deny_unknown_fields`: `state = "steady_state"` takes model-parameter
/// overrides as further keys (`rest`), which `initial::state_spec` checks by name.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct RawState {
    pub(super) state: RawStateName,
    pub(super) m: Option<Num>,
    pub(super) theta: Option<Num>,
    pub(super) phi: Option<Num>,
    pub(super) beta: Option<Num>,
    #[serde(flatten)]
    pub(super) rest: BTreeMap<String, Num>,
}

/// A state table's `state`: a name (`"dicke"`, ...) or `{ from = "DIR" }`, the final state a
/// previous run saved. Deserialised by hand so that a wrong shape names both forms.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RawStateName {
    Name(String),
    From(String),
}

impl std::fmt::Display for RawStateName {
    /// As written in the file: `"dicke"` or `{ from = "DIR" }`.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            RawStateName::Name(s) => write!(f, "\"{s}\""),
            RawStateName::From(d) => write!(f, "{{ from = \"{d}\" }}"),
        }
    }
}

impl<'de> Deserialize<'de> for RawStateName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawStateName, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawStateName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a state name (e.g. \"dicke\") or a table { from = \"DIR\" }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawStateName, E> {
                Ok(RawStateName::Name(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawStateName, A::Error> {
                let mut from = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "from" || from.is_some() {
                        return Err(serde::de::Error::unknown_field(&key, &["from"]));
                    }
                    from = Some(map.next_value::<String>()?);
                }
                from.map(RawStateName::From)
                    .ok_or_else(|| serde::de::Error::missing_field("from"))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTask {
    pub(super) kind: String,
    // evolve
    pub(super) t_start: Option<Num>,
    pub(super) t_end: Option<Num>,
    pub(super) n_times: Option<Num>,
    pub(super) times: Option<Vec<Num>>,
    pub(super) rtol: Option<Num>,
    pub(super) atol: Option<Num>,
    pub(super) max_steps: Option<Num>,
    pub(super) decay_fit: Option<String>,
    // trajectories
    pub(super) ntraj: Option<Num>,
    pub(super) seed: Option<Num>,
    pub(super) save_trajectories: Option<Num>,
    pub(super) precision: Option<String>,
    pub(super) dt: Option<Num>,
    pub(super) cfl: Option<Num>,
    pub(super) level_window: Option<toml::Value>,
    // scan
    pub(super) mode: Option<String>,
    pub(super) variable: Option<String>,
    pub(super) values: Option<Vec<Num>>,
    pub(super) start: Option<Num>,
    pub(super) stop: Option<Num>,
    pub(super) num: Option<Num>,
    // fixed_points
    pub(super) factorisation: Option<String>,
    pub(super) boundary_tol: Option<Num>,
    pub(super) collective_set: Option<Vec<String>>,
    // sweep
    pub(super) method: Option<String>,
    pub(super) layout: Option<String>,
    pub(super) axes: Option<Vec<RawAxis>>,
    pub(super) t_min: Option<Num>,
    pub(super) t_late: Option<Num>,
    pub(super) heatmap: Option<String>,
    // spectrum
    pub(super) k: Option<Num>,
    pub(super) target: Option<Num>,
    pub(super) target_im: Option<Num>,
    pub(super) sector: Option<Num>,
    // scan of spectra: gap minimised over a second variable at each point, scaling fit
    pub(super) minimize: Option<RawMinimize>,
    pub(super) fit: Option<String>,
    // correlation
    pub(super) a: Option<String>,
    pub(super) b: Option<String>,
    pub(super) tau_end: Option<Num>,
    pub(super) n_tau: Option<Num>,
    pub(super) taus: Option<Vec<Num>>,
    pub(super) at: Option<Num>,
    pub(super) spectrum: Option<toml::Value>,
    pub(super) omega_max: Option<Num>,
    pub(super) n_omega: Option<Num>,
    // fisher
    pub(super) parameter: Option<String>,
    pub(super) observable: Option<String>,
    pub(super) step: Option<Num>,
    pub(super) qfi: Option<toml::Value>,
}

/// `[task.minimize]` of a scan with `mode = "spectrum"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMinimize {
    pub(super) variable: Option<String>,
    pub(super) bracket: Option<Vec<Num>>,
    pub(super) tol: Option<Num>,
}

/// One axis of a `kind = "sweep"` task (`[[task.axes]]`): the scan's value fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAxis {
    pub(super) variable: Option<String>,
    pub(super) values: Option<Vec<Num>>,
    pub(super) start: Option<Num>,
    pub(super) stop: Option<Num>,
    pub(super) num: Option<Num>,
    /// `"linear"` (default) or `"log"`: `num` values from `start` to `stop`, evenly spaced or
    /// in geometric progression.
    pub(super) spacing: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawObservables {
    #[serde(default)]
    pub(super) columns: Vec<String>,
    #[serde(default)]
    pub(super) pm: bool,
    pub(super) husimi: Option<RawHusimi>,
    pub(super) fidelity: Option<RawState>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHusimi {
    pub(super) n_theta: Option<Num>,
    pub(super) n_phi: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutput {
    #[serde(default = "yes")]
    pub(super) plot: bool,
    /// Write `final_state.json` / `final_state.npy` (kind = "evolve"; [`crate::output::final_state`]).
    #[serde(default)]
    pub(super) final_state: bool,
}

impl Default for RawOutput {
    fn default() -> Self {
        RawOutput {
            plot: true,
            final_state: false,
        }
    }
}

fn yes() -> bool {
    true
}
