//! The final state of an evolution, saved so that a later run can start from it (protocol
//! chaining: `[output] final_state = true` writes it, `[initial] state = { from = "DIR" }`
//! reads it; `docs/scenarios.md`).
//!
//! # Format (version 1)
//!
//! Two files in the output directory, each written atomically ([`super::write_atomic`]) into
//! the run's staging directory and committed with the run's other files:
//!
//! - `final_state.npy`: the numbers, a NumPy `.npy` file (format 1.0), little-endian, C order,
//!   so that `numpy.load` reads it as it is:
//!   - `kind = "manifold"`: rho in j = N/2, complex128 (`<c16`: pairs of little-endian f64,
//!     re then im), shape (N+1, N+1), `rho[k, l]` = <m_k| rho |m_l> with m_k = k - N/2;
//!   - `kind = "blocks"`: the blocks R_j of a permutation-invariant state (PHYSICS.md sec. 3,
//!     [`BlockState`]), complex128, one flat array of sum_j (2j+1)^2 elements: block b
//!     (2j = `two_j[b]` = N, N-2, ..., 1 or 0) row-major from `offsets[b]`;
//!   - `kind = "moments"`: the collective moments of mean field or cumulants, float64 (`<f8`),
//!     shape (9,): <Jx>, <Jy>, <Jz>, then <{Ja, Jb}>/2 for xx, yy, zz, xy, xz, yz (`names`).
//! - `final_state.json`: the self-describing header: `format` = "dicke-final-state" (the
//!   magic), `version` = 1, `kind`, `N`, `t` (the time of the state), `method` (exact,
//!   meanfield, cumulant), `model` (every parameter at time t: a scheduled one at its value
//!   then), `layout` (the sentence above), `data` (`file`, `dtype`, `shape`, `bytes`, and
//!   `fnv1a64`, the FNV-1a 64-bit hash of the data bytes), and per kind `two_j`, `offsets`
//!   (blocks) or `names` (moments).
//!
//! Why two files: NumPy reads the `.npy` file directly (issue 18 wants numpy-readable
//! arrays), and the `.npy` header cannot hold more than dtype, order and shape (numpy
//! refuses other keys), so the metadata sits beside it as JSON, which every language reads.
//! The hash ties the pair together: a data file that is corrupt, truncated or from another
//! run is refused, not read as this one.
//!
//! # Reading
//!
//! [`read_header`] parses the JSON (at most [`MAX_HEADER_BYTES`]) and checks magic, version,
//! kind, N (against the model's, before any size is computed) and the `.npy` file's length
//! against the size the header implies (computed in u128: a hostile N cannot overflow). The
//! caller checks the memory the data need ([`Header::data_bytes`]) against its limit; then
//! [`read_data`] reads exactly that many bytes, checking the hash and that every number is
//! finite. Every failure is an [`InputError`] naming the field (`initial.from`), the
//! directory as written and what was expected.

use super::write_atomic;
use crate::basis::two_js;
use crate::error::{InputError, OutputError};
use crate::observe::Moments;
use crate::state::{BlockState, DensityMatrix};
use num_complex::Complex64 as c64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The header file's name.
pub const HEADER_FILE: &str = "final_state.json";
/// The data file's name.
pub const DATA_FILE: &str = "final_state.npy";
/// The header's `format` (its magic).
pub const FORMAT: &str = "dicke-final-state";
/// The format version this build writes and reads.
pub const VERSION: u64 = 1;
/// Largest header accepted, bytes (a blocks header at N = 10^5 lists 5 10^4 blocks, ~1 MB).
pub const MAX_HEADER_BYTES: u64 = 16 << 20;
/// The names of the nine moments of `kind = "moments"`, in file order.
pub const MOMENT_NAMES: [&str; 9] = ["Jx", "Jy", "Jz", "JxJx", "JyJy", "JzJz", "JxJy", "JxJz", "JyJz"];

/// A state to save (or one read back).
#[derive(Debug, Clone, PartialEq)]
pub enum SavedState {
    /// rho in j = N/2.
    Manifold(DensityMatrix),
    /// The blocks R_j.
    Blocks(BlockState),
    /// The collective moments of an approximate method.
    Moments(Moments),
}

impl SavedState {
    /// The header's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            SavedState::Manifold(_) => "manifold",
            SavedState::Blocks(_) => "blocks",
            SavedState::Moments(_) => "moments",
        }
    }
}

/// What is saved besides the numbers.
#[derive(Debug, Clone)]
pub struct Provenance<'a> {
    /// The time of the state.
    pub t: f64,
    /// The method that produced it (`exact`, `meanfield`, `cumulant`).
    pub method: &'a str,
    /// Every model parameter at time `t`.
    pub model: Vec<(&'static str, f64)>,
}

/// `data` of the header.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataInfo {
    pub file: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub bytes: u64,
    pub fnv1a64: String,
}

/// `final_state.json` (module doc).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub version: u64,
    pub kind: String,
    #[serde(rename = "N")]
    pub n: u64,
    pub t: f64,
    pub method: String,
    pub model: BTreeMap<String, f64>,
    pub layout: String,
    pub data: DataInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub two_j: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
}

impl Header {
    /// Bytes of the data (checked against the file by [`read_header`]).
    pub fn data_bytes(&self) -> u64 {
        self.data.bytes
    }
}

/// FNV-1a, 64 bits, over a byte stream (the data file's hash; not cryptographic: it detects
/// corruption and mismatched files, not tampering).
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    fn new() -> Fnv {
        Fnv(Self::OFFSET)
    }
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
    }
    fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// Number of complex elements of the blocks of N atoms, sum over 2j = N, N-2, .. of (2j+1)^2,
/// in closed form (no allocation, no overflow for any u64 N): the sum of the squares of the
/// numbers of N+1's parity from N+1 down.
fn block_elements_u128(n: u64) -> u128 {
    let top = u128::from(n) + 1;
    if top % 2 == 0 {
        let m = top / 2; // 2^2 + 4^2 + .. + (2m)^2
        4 * m * (m + 1) * (2 * m + 1) / 6
    } else {
        let m = top / 2; // 1^2 + 3^2 + .. + (2m+1)^2
        (m + 1) * (2 * m + 1) * (2 * m + 3) / 3
    }
}

/// dtype, shape and element count (complex or real) of a kind at N; None for an unknown kind.
fn layout_of(kind: &str, n: u64) -> Option<(&'static str, Vec<u128>, u128)> {
    let d = u128::from(n) + 1;
    match kind {
        "manifold" => Some(("<c16", vec![d, d], d * d)),
        "blocks" => {
            let e = block_elements_u128(n);
            Some(("<c16", vec![e], e))
        }
        "moments" => Some(("<f8", vec![9], 9)),
        _ => None,
    }
}

fn layout_sentence(kind: &str) -> &'static str {
    match kind {
        "manifold" => {
            "rho in j = N/2: complex128, shape (N+1, N+1), rho[k, l] = <m_k|rho|m_l>, m_k = k - N/2"
        }
        "blocks" => {
            "blocks R_j (PHYSICS.md sec. 3): complex128, one flat array; block b (2j = two_j[b]) \
             is (2j+1) x (2j+1), row-major from offsets[b]; <A> = sum_j tr(R_j A^(j))"
        }
        _ => "float64, shape (9,): <Jx>, <Jy>, <Jz>, then <{Ja, Jb}>/2 for xx, yy, zz, xy, xz, yz",
    }
}

/// The `.npy` 1.0 header for `dtype` and `shape` byte for byte as numpy's `format.py` writes
/// it (sorted keys, the spare spaces for growing the first axis, then spaces and a newline up
/// to a multiple of 64 bytes), so that `numpy.save(numpy.load(f))` gives the same bytes.
fn npy_header(dtype: &str, shape: &[u128]) -> Vec<u8> {
    let first = shape.first().copied().unwrap_or(0);
    let shape = match shape {
        [a] => format!("({a},)"),
        s => format!(
            "({})",
            s.iter().map(u128::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}");
    // numpy's spare spaces for growing the first axis in place (GROWTH_AXIS_MAX_DIGITS = 21).
    let digits = first.to_string().len();
    dict.extend(std::iter::repeat_n(' ', 21usize.saturating_sub(digits)));
    // numpy's padding: 64 - (unpadded mod 64) spaces, a whole 64 when already aligned.
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded + (64 - unpadded % 64);
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(total - 1, b' ');
    h.push(b'\n');
    h
}

/// The numbers of a state as little-endian f64, in file order.
fn numbers(state: &SavedState) -> Vec<f64> {
    let complex = |z: &[c64]| z.iter().flat_map(|z| [z.re, z.im]).collect::<Vec<f64>>();
    match state {
        SavedState::Manifold(rho) => complex(&rho.data),
        SavedState::Blocks(s) => complex(&s.data),
        SavedState::Moments(m) => {
            let s = m.second;
            vec![
                m.mean[0], m.mean[1], m.mean[2], s[0][0], s[1][1], s[2][2], s[0][1], s[0][2], s[1][2],
            ]
        }
    }
}

/// Write `final_state.npy` then `final_state.json` into `dir` (each atomically); returns
/// their names for the run's file list.
pub fn write(dir: &Path, state: &SavedState, about: &Provenance) -> Result<Vec<String>, OutputError> {
    let n = match state {
        SavedState::Manifold(rho) => rho.dim.saturating_sub(1),
        SavedState::Blocks(s) => s.n,
        SavedState::Moments(m) => m.n,
    } as u64;
    let kind = state.kind();
    let (dtype, shape, _) = layout_of(kind, n).unwrap_or(("<f8", vec![0], 0));
    let values = numbers(state);
    let mut hash = Fnv::new();
    let head = npy_header(dtype, &shape);
    write_atomic(&dir.join(DATA_FILE), |w| {
        w.write_all(&head)?;
        let mut buf = Vec::with_capacity(1 << 16);
        for chunk in values.chunks(8192) {
            buf.clear();
            chunk.iter().for_each(|v| buf.extend_from_slice(&v.to_le_bytes()));
            hash.update(&buf);
            w.write_all(&buf)?;
        }
        Ok(())
    })?;
    let (two_j, offsets) = match state {
        SavedState::Blocks(s) => (
            Some(s.two_j.iter().map(|&t| t as u64).collect()),
            Some(s.offsets.iter().map(|&o| o as u64).collect()),
        ),
        _ => (None, None),
    };
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        kind: kind.into(),
        n,
        t: about.t,
        method: about.method.into(),
        model: about.model.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        layout: layout_sentence(kind).into(),
        data: DataInfo {
            file: DATA_FILE.into(),
            dtype: dtype.into(),
            shape: shape.iter().map(|&s| s as u64).collect(),
            bytes: 8 * values.len() as u64,
            fnv1a64: hash.hex(),
        },
        two_j,
        offsets,
        names: matches!(state, SavedState::Moments(_)).then(|| MOMENT_NAMES.map(String::from).to_vec()),
    };
    // The struct itself (not a `Value`, whose keys serde_json sorts): `format` and `version`
    // lead, as a reader looks for them.
    write_atomic(&dir.join(HEADER_FILE), |w| {
        serde_json::to_writer_pretty(&mut *w, &header).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })?;
    Ok(vec![DATA_FILE.into(), HEADER_FILE.into()])
}

/// Where the errors of one `from` directory point: the field and the directory as written.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// The field, e.g. `initial.from`.
    pub field: &'a str,
    /// The directory as written in the scenario.
    pub dir: &'a str,
    /// The directory as opened (relative to the current directory).
    pub path: PathBuf,
}

impl Source<'_> {
    /// An error naming the field, the directory and what was expected.
    pub fn error(&self, expected: impl Into<String>) -> InputError {
        InputError::invalid(self.field, format!("\"{}\"", self.dir), expected.into())
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// Read and check `final_state.json` of `src` for a model of `n` atoms (module doc).
pub fn read_header(src: &Source, n: usize) -> Result<Header, InputError> {
    if !src.path.is_dir() {
        return Err(src.error(format!(
            "the output directory of an earlier run (with [output] final_state = true); `{}` is \
             not a directory (a relative path is taken from the current directory)",
            src.path.display()
        )));
    }
    let path = src.file(HEADER_FILE);
    let text = read_bounded(&path, MAX_HEADER_BYTES).map_err(|e| {
        src.error(format!(
            "a directory holding {HEADER_FILE} and {DATA_FILE} (written by a run with [output] \
             final_state = true): `{}`: {e}",
            path.display()
        ))
    })?;
    let garbage = |why: String| src.error(format!("a {HEADER_FILE} written by dicke ({FORMAT}); {why}"));
    let doc: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| garbage(format!("it is not JSON: {e}")))?;
    if doc.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(garbage(format!(
            "its `format` is {}, not \"{FORMAT}\"",
            doc.get("format").map_or("missing".into(), |f| f.to_string())
        )));
    }
    if doc.get("version").and_then(|v| v.as_u64()) != Some(VERSION) {
        return Err(src.error(format!(
            "{HEADER_FILE} of format version {VERSION} (the version this dicke reads); it has \
             version {} (written by another version of dicke)",
            doc.get("version").map_or("(missing)".into(), |v| v.to_string())
        )));
    }
    let header: Header =
        serde_json::from_value(doc).map_err(|e| garbage(format!("its fields do not parse: {e}")))?;
    check_header(src, &header, n)?;
    Ok(header)
}

/// The header's own consistency, its N against the model's, and the data file's length.
fn check_header(src: &Source, h: &Header, n: usize) -> Result<(), InputError> {
    let Some((dtype, shape, count)) = layout_of(&h.kind, h.n) else {
        return Err(src.error(format!(
            "a {HEADER_FILE} of kind \"manifold\", \"blocks\" or \"moments\"; it has kind \"{}\"",
            h.kind
        )));
    };
    if h.n != n as u64 {
        return Err(src.error(format!(
            "a final state of N = {n} atoms (the model's N); {HEADER_FILE} holds N = {}",
            h.n
        )));
    }
    let item: u128 = if dtype == "<c16" { 16 } else { 8 };
    let bytes = count * item;
    let shape_ok = h.data.shape.len() == shape.len()
        && h.data.shape.iter().zip(&shape).all(|(&a, &b)| u128::from(a) == b);
    if !h.t.is_finite()
        || h.data.file != DATA_FILE
        || h.data.dtype != dtype
        || !shape_ok
        || u128::from(h.data.bytes) != bytes
    {
        return Err(src.error(format!(
            "a {HEADER_FILE} whose `data` describe kind \"{}\" at N = {} (file {DATA_FILE}, dtype \
             {dtype}, shape {shape:?}, {bytes} bytes) and a finite `t`; it says {:?}, t = {}",
            h.kind, h.n, h.data, h.t
        )));
    }
    let path = src.file(DATA_FILE);
    let len = std::fs::metadata(&path)
        .map_err(|e| {
            src.error(format!(
                "{DATA_FILE} beside {HEADER_FILE}: `{}`: {e}",
                path.display()
            ))
        })?
        .len();
    let head = npy_header(dtype, &shape).len() as u128;
    if u128::from(len) != head + bytes {
        return Err(src.error(format!(
            "{DATA_FILE} of {} bytes ({head} of npy header and {bytes} of data, as \
             {HEADER_FILE} says); it has {len} bytes (truncated, or not the file of this header)",
            head + bytes
        )));
    }
    if h.kind == "blocks" && !block_lists_ok(h, n) {
        return Err(src.error(format!(
            "a blocks header listing two_j = N, N-2, .. and their offsets for N = {n}; its \
             `two_j` or `offsets` differ"
        )));
    }
    Ok(())
}

/// The blocks header's `two_j` and `offsets` are those of N atoms (compared entry by entry:
/// nothing is allocated for an N the header claims).
fn block_lists_ok(h: &Header, n: usize) -> bool {
    let nb = n / 2 + 1;
    let (Some(two_j), Some(offsets)) = (&h.two_j, &h.offsets) else {
        return false;
    };
    two_j.len() == nb
        && offsets.len() == nb + 1
        && offsets[0] == 0
        && two_j.iter().enumerate().all(|(b, &t)| {
            t == (n - 2 * b) as u64 && offsets[b + 1].checked_sub(offsets[b]) == Some((t + 1) * (t + 1))
        })
}

/// The offsets of the blocks of N atoms, as [`BlockState::zeros`] lays them out (the total
/// last).
fn block_offsets(n: usize) -> Vec<usize> {
    let mut v = vec![0];
    for t in two_js(n) {
        v.push(v[v.len() - 1] + (t + 1) * (t + 1));
    }
    v
}

/// The whole file at `path` if it has at most `max` bytes.
fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(bytes)
}

/// Read the data file of a checked `header` (the caller has checked the memory it needs):
/// its npy header, then exactly `data.bytes` bytes, hashed and checked finite.
pub fn read_data(src: &Source, header: &Header, n: usize) -> Result<SavedState, InputError> {
    let (dtype, shape, _) = layout_of(&header.kind, header.n).ok_or_else(|| src.error("a known kind"))?;
    let path = src.file(DATA_FILE);
    let io = |e: std::io::Error| src.error(format!("a readable {DATA_FILE}: `{}`: {e}", path.display()));
    let mut file = std::io::BufReader::new(std::fs::File::open(&path).map_err(io)?);
    let want = npy_header(dtype, &shape);
    let mut head = vec![0u8; want.len()];
    file.read_exact(&mut head).map_err(io)?;
    if head != want {
        return Err(src.error(format!(
            "{DATA_FILE} with the npy header {:?}; it has {:?}",
            String::from_utf8_lossy(&want[10..]).trim_end(),
            String::from_utf8_lossy(&head).trim_end()
        )));
    }
    let count = (header.data.bytes / 8) as usize;
    let mut values = Vec::with_capacity(count);
    let mut hash = Fnv::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut left = count * 8;
    while left > 0 {
        let chunk = left.min(buf.len());
        file.read_exact(&mut buf[..chunk]).map_err(io)?;
        hash.update(&buf[..chunk]);
        values.extend(
            buf[..chunk]
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
        );
        left -= chunk;
    }
    if hash.hex() != header.data.fnv1a64 {
        return Err(src.error(format!(
            "{DATA_FILE} whose FNV-1a hash is the {HEADER_FILE}'s {}; the data hash to {} (the \
             file is corrupt, or not the one this header was written with)",
            header.data.fnv1a64,
            hash.hex()
        )));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(src.error(format!(
            "finite numbers in {DATA_FILE}; number {i} is {}",
            values[i]
        )));
    }
    Ok(state_of(&header.kind, n, values))
}

/// The state of `kind` from its numbers in file order (sizes checked by the caller).
fn state_of(kind: &str, n: usize, v: Vec<f64>) -> SavedState {
    let complex = |v: Vec<f64>| -> Vec<c64> { v.chunks_exact(2).map(|p| c64::new(p[0], p[1])).collect() };
    match kind {
        "manifold" => SavedState::Manifold(DensityMatrix {
            dim: n + 1,
            data: complex(v),
        }),
        "blocks" => SavedState::Blocks(BlockState {
            n,
            two_j: two_js(n),
            offsets: block_offsets(n),
            data: complex(v),
        }),
        _ => {
            let mut m = Moments::zero(n);
            m.mean = [v[0], v[1], v[2]];
            let (xx, yy, zz, xy, xz, yz) = (v[3], v[4], v[5], v[6], v[7], v[8]);
            m.second = [[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]];
            SavedState::Moments(m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_element_count_in_closed_form() {
        for n in 0..60usize {
            assert_eq!(
                block_elements_u128(n as u64),
                crate::state::blocks::block_elements(n) as u128,
                "N = {n}"
            );
        }
        // No overflow at the largest N a header can claim.
        assert!(block_elements_u128(u64::MAX) > 0);
    }

    /// numpy's layout: magic, version 1.0, a header padded to a multiple of 64 bytes ending in
    /// a newline, the dict in numpy's key order.
    #[test]
    fn npy_header_is_numpys() {
        let h = npy_header("<c16", &[11, 11]);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize, h.len() - 10);
        assert_eq!(*h.last().unwrap(), b'\n');
        let text = String::from_utf8_lossy(&h[10..]);
        assert!(
            text.starts_with("{'descr': '<c16', 'fortran_order': False, 'shape': (11, 11), }"),
            "{text}"
        );
        let h = npy_header("<f8", &[9]);
        assert!(String::from_utf8_lossy(&h).contains("'shape': (9,), }"));
    }

    #[test]
    fn fnv_reference_values() {
        // Published FNV-1a 64 test vectors: "" and "a".
        assert_eq!(Fnv::new().hex(), "cbf29ce484222325");
        let mut f = Fnv::new();
        f.update(b"a");
        assert_eq!(f.hex(), "af63dc4c8601ec8c");
    }
}
