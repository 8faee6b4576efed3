//! numpy's `.npy` format (versions 1.0–3.0, C order, little-endian), for single arrays.

use std::path::Path;

use crate::array::DType;
use crate::core::Tensor;

use super::{from_le_bytes, to_le_bytes, write_atomically, IoError};

const MAGIC: &[u8] = b"\x93NUMPY";

/// numpy's name of a dtype; numpy has no bfloat16.
fn descr(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::F16 => "<f2",
        DType::BF16 => return None,
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::I64 => "<i8",
        DType::Bool => "|b1",
    })
}

/// The `.npy` bytes of a tensor (format version 1.0). A value traced by
/// `jvp`, `grad` or a tape is saved as its value.
///
/// # Panics
/// For a value traced by `vmap` or a staging transformation (`make_graph`,
/// `linearize`'s tangents), which stands for no single array; for a bf16
/// tensor, which numpy cannot hold.
#[track_caller]
pub fn npy_to_bytes(t: &Tensor) -> Vec<u8> {
    let a = t.to_array();
    let Some(descr) = descr(a.dtype()) else {
        panic!("save_npy: numpy has no bf16; convert with .to_dtype(DType::F32) first, or save as safetensors")
    };
    let shape = match a.shape() {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        s => format!("({})", s.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad with spaces so the data starts on a 64-byte boundary, ending in a newline.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + a.size() * a.dtype().size_of());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&to_le_bytes(&a));
    out
}

/// Saves one tensor as a `.npy` file (written atomically).
///
/// # Errors
/// [`IoError::UnsupportedDtype`] for a bf16 tensor (numpy has no bf16), and
/// the file system's errors.
pub fn save_npy(path: impl AsRef<Path>, t: &Tensor) -> Result<(), IoError> {
    if descr(t.dtype()).is_none() {
        return Err(IoError::UnsupportedDtype { name: "array".into(), dtype: t.dtype().to_string() });
    }
    write_atomically(path.as_ref(), &npy_to_bytes(t))
}

/// Loads a `.npy` file holding f2, f4, f8, i8 or b1 data in C order.
pub fn load_npy(path: impl AsRef<Path>) -> Result<Tensor, IoError> {
    npy_from_bytes(&std::fs::read(path)?)
}

/// The value of `'key': value` in a numpy header dict (the text up to the next top-level comma).
fn field<'a>(header: &'a str, key: &str) -> Result<&'a str, IoError> {
    let pat = format!("'{key}':");
    let at = header.find(&pat).ok_or_else(|| IoError::Format(format!("npy header has no '{key}'")))?;
    let rest = header[at + pat.len()..].trim_start();
    let end = if rest.starts_with('(') { rest.find(')').map(|i| i + 1) } else { rest.find([',', '}']) };
    Ok(rest[..end.ok_or_else(|| IoError::Format(format!("npy header: unterminated '{key}'")))?].trim())
}

/// [`load_npy`] from bytes in memory.
pub fn npy_from_bytes(bytes: &[u8]) -> Result<Tensor, IoError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(IoError::Format("not an npy file (bad magic)".into()));
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() < 12 => {
            return Err(IoError::Format("npy file is truncated: its header length is cut off".into()))
        }
        2 | 3 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(IoError::Format(format!("npy version {v} is not supported (1, 2 and 3 are)"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| IoError::Format("npy header runs past the end of the file".into()))?;
    let header =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| IoError::Format("npy header is not text".into()))?;
    let dtype = match field(header, "descr")?.trim_matches(['\'', '"']) {
        "<f2" => DType::F16,
        "<f4" => DType::F32,
        "<f8" => DType::F64,
        "<i8" => DType::I64,
        "|b1" => DType::Bool,
        other => return Err(IoError::UnsupportedDtype { name: "array".into(), dtype: other.to_string() }),
    };
    if field(header, "fortran_order")? != "False" {
        return Err(IoError::Format("Fortran-order npy arrays are not supported".into()));
    }
    let shape_text = field(header, "shape")?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| IoError::Format(format!("npy shape {shape_text} is not a tuple")))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>().map_err(|_| IoError::Format(format!("npy shape {shape_text} is not a tuple of sizes")))
        })
        .collect::<Result<Vec<usize>, _>>()?;
    Ok(Tensor::from_array(from_le_bytes("array", dtype, &shape, &bytes[end..])?))
}
