//! One scan point as a unit of the run's checkpoint ([`crate::task::checkpoint`]): what the
//! scan's files need of the point, exactly, whichever path (CPU, GPU batch, steady state)
//! computed it. The files are written from these payloads in point order, so a resumed or
//! merged scan writes the files of an uninterrupted one byte for byte.

use crate::c64;
use crate::error::Error;
use crate::output::checkpoint::corrupt;
use crate::state::DensityMatrix;
use crate::task::checkpoint::{CHECKPOINT_DIR, Dec, Enc};

/// A scan point's results.
#[derive(Debug, Default)]
pub struct PointUnit {
    /// Observable columns: one row per save (evolve; the last is the final time), or one row
    /// per steady state (one, or a mean-field branch each).
    pub rows: Vec<Vec<f64>>,
    /// P_m of the final / steady state (an exact state, pm.csv asked for).
    pub pm: Option<Vec<f64>>,
    /// The point's statistics in result.json, as JSON text.
    pub stats: String,
    /// The matrix the Husimi grid reads (the last point only, when a grid is asked for).
    pub husimi: Option<DensityMatrix>,
}

impl PointUnit {
    /// The payload: rows, optional P_m, statistics, optional Husimi matrix (dim, then re/im).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.u64(self.rows.len() as u64);
        for r in &self.rows {
            e.f64s(r);
        }
        match &self.pm {
            Some(pm) => e.u64(1).f64s(pm),
            None => e.u64(0),
        };
        e.str(&self.stats);
        match &self.husimi {
            Some(m) => {
                let flat: Vec<f64> = m.data.iter().flat_map(|z| [z.re, z.im]).collect();
                e.u64(1).u64(m.dim as u64).f64s(&flat)
            }
            None => e.u64(0),
        };
        e.0
    }

    /// The mirror of [`PointUnit::encode`].
    pub fn decode(payload: &[u8]) -> Result<PointUnit, Error> {
        let mut d = Dec(payload);
        let n = d.u64()? as usize;
        let rows = (0..n.min(payload.len()))
            .map(|_| d.f64s())
            .collect::<Result<Vec<_>, _>>()?;
        let pm = match d.u64()? {
            0 => None,
            _ => Some(d.f64s()?),
        };
        let stats = d.str()?;
        let husimi = match d.u64()? {
            0 => None,
            _ => {
                let dim = d.u64()? as usize;
                let flat = d.f64s()?;
                if flat.len() != 2 * dim * dim {
                    let path = std::path::Path::new(CHECKPOINT_DIR);
                    return Err(corrupt(path, "a scan point's Husimi matrix of the wrong size").into());
                }
                let data = flat.chunks_exact(2).map(|c| c64::new(c[0], c[1])).collect();
                Some(DensityMatrix { dim, data })
            }
        };
        Ok(PointUnit {
            rows,
            pm,
            stats,
            husimi,
        })
    }

    /// The statistics as JSON (Null if unreadable: they are not results).
    pub fn stats_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stats).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_round_trips_exactly() {
        let m = DensityMatrix {
            dim: 2,
            data: vec![
                c64::new(0.25, 0.0),
                c64::new(0.1, -0.3),
                c64::new(0.1, 0.3),
                c64::new(0.75, -0.0),
            ],
        };
        let unit = PointUnit {
            rows: vec![vec![1.0, f64::NAN, 1e-300], vec![], vec![-0.0]],
            pm: Some(vec![0.5, 0.5]),
            stats: r#"{"x":0.1}"#.into(),
            husimi: Some(m.clone()),
        };
        let back = PointUnit::decode(&unit.encode()).unwrap();
        let bits = |r: &[Vec<f64>]| -> Vec<Vec<u64>> {
            r.iter()
                .map(|v| v.iter().map(|x| x.to_bits()).collect())
                .collect()
        };
        assert_eq!(bits(&back.rows), bits(&unit.rows));
        assert_eq!(back.pm, unit.pm);
        assert_eq!(back.stats, unit.stats);
        assert_eq!(back.husimi.as_ref().map(|h| &h.data), Some(&m.data));
        let bare = PointUnit::default();
        let back = PointUnit::decode(&bare.encode()).unwrap();
        assert!(back.rows.is_empty() && back.pm.is_none() && back.husimi.is_none());
        let bytes = unit.encode();
        assert!(PointUnit::decode(&bytes[..bytes.len() - 5]).is_err());
    }
}
