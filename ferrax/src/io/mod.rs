//! Saving and loading tensors: any [`Tree`](crate::Tree) as **safetensors** (the format
//! PyTorch, candle and the Hugging Face ecosystem share), single arrays as
//! numpy's **.npy**.
//!
//! Files come from outside the program, so every failure is a typed
//! [`IoError`] naming what is wrong — never a panic, never a half-loaded
//! value: loading builds every leaf before it returns anything. Writes go
//! through [`write_atomically`], so neither a crash nor a second writer
//! ever leaves a truncated or mixed file behind.

mod checkpoint;
mod npy;
mod safetensors_io;

use std::fmt;
use std::path::Path;

use crate::array::{Aval, DType};

pub use checkpoint::{
    inspect_safetensors, inspect_safetensors_bytes, load_safetensors_bytes_with, load_safetensors_with, LoadOptions,
    Loaded, SafetensorsHeader, TensorEntry,
};
pub use npy::{load_npy, npy_from_bytes, npy_to_bytes, save_npy};
pub use safetensors_io::{
    load_safetensors, load_safetensors_bytes, load_safetensors_metadata, safetensors_metadata_bytes, save_safetensors,
    save_safetensors_with_metadata, to_safetensors_bytes, to_safetensors_bytes_with_metadata,
};

/// Why reading or writing tensors failed.
#[derive(Debug)]
pub enum IoError {
    /// The file could not be read or written.
    Io(std::io::Error),
    /// The bytes are not a valid file of the expected format (bad magic,
    /// header, truncated data, …).
    Format(String),
    /// The file holds a dtype ferrax cannot represent (u8, i32, …), or a
    /// format cannot hold the tensor's dtype (bf16 in `.npy`).
    UnsupportedDtype {
        /// The tensor's name.
        name: String,
        /// The dtype as the file names it.
        dtype: String,
    },
    /// A tensor the structure needs is not in the file.
    Missing {
        /// The tensor's name.
        name: String,
    },
    /// The file has tensors the structure does not (a checkpoint of another model).
    Unexpected {
        /// Their names, sorted.
        names: Vec<String>,
    },
    /// A tensor's dtype or shape differs from the structure's.
    Mismatch {
        /// The tensor's name.
        name: String,
        /// What the structure holds.
        expected: Aval,
        /// What the file holds.
        found: Aval,
    },
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::Io(e) => write!(f, "i/o error: {e}"),
            IoError::Format(m) => write!(f, "not a valid file: {m}"),
            IoError::UnsupportedDtype { name, dtype } => {
                write!(
                    f,
                    "tensor '{name}' has dtype {dtype}, which ferrax does not support (f16, bf16, f32, f64, i64, bool)"
                )
            }
            IoError::Missing { name } => write!(f, "tensor '{name}' is missing from the file"),
            IoError::Unexpected { names } => {
                write!(f, "the file has tensors the structure does not: {}", names.join(", "))
            }
            IoError::Mismatch { name, expected, found } => {
                write!(f, "tensor '{name}' is {found} in the file but the structure expects {expected}")
            }
        }
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IoError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for IoError {
    fn from(e: std::io::Error) -> Self {
        IoError::Io(e)
    }
}

/// Writes `bytes` to `path` so that readers, and the file system after a
/// crash or power loss, see either the old file or the new one, whole:
/// the bytes go to a temporary file of a unique name in the target's
/// directory, which is flushed to disk and then renamed over the target,
/// and the directory is flushed so the rename itself is durable. Two
/// writers at once never share a temporary file; the last rename wins.
///
/// ```
/// let path = std::env::temp_dir().join("ferrax-doc-atomic.txt");
/// ferrax::io::write_atomically(&path, b"whole").unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"whole");
/// ```
pub fn write_atomically(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), IoError> {
    use std::io::Write;
    let path = path.as_ref();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        IoError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{} names no file", path.display())))
    })?;
    let (tmp, mut file) = create_temporary(&dir, name)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    sync_directory(&dir)?;
    Ok(())
}

/// A new file `.{name}.{unique}.tmp` in `dir`, created exclusively.
fn create_temporary(dir: &Path, name: &std::ffi::OsStr) -> Result<(std::path::PathBuf, std::fs::File), IoError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    loop {
        let unique = format!("{}.{}.{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{unique}.tmp"));
        let tmp = dir.join(tmp_name);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Flushes a directory's entries (the rename) to disk, where the platform allows.
fn sync_directory(dir: &Path) -> Result<(), IoError> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Little-endian bytes of an array's elements.
fn to_le_bytes(a: &crate::array::Array) -> Vec<u8> {
    use crate::array::Buffer;
    match a.buffer() {
        Buffer::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Buffer::BF16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Buffer::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Buffer::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Buffer::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Buffer::Bool(v) => v.iter().map(|&b| b as u8).collect(),
    }
}

/// An array of `dtype` and `shape` from little-endian bytes, checked for length and (for bool) values.
fn from_le_bytes(name: &str, dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<crate::array::Array, IoError> {
    use crate::array::Array;
    let n: usize = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| IoError::Format(format!("tensor '{name}': shape {shape:?} is too large")))?;
    let want =
        n.checked_mul(dtype.size_of()).ok_or_else(|| IoError::Format(format!("tensor '{name}' is too large")))?;
    if bytes.len() != want {
        return Err(IoError::Format(format!(
            "tensor '{name}': {dtype}{shape:?} needs {want} bytes but {} are present",
            bytes.len()
        )));
    }
    Ok(match dtype {
        DType::F16 => Array::from_vec(
            bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes(c.try_into().unwrap())).collect(),
            shape,
        ),
        DType::BF16 => Array::from_vec(
            bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes(c.try_into().unwrap())).collect(),
            shape,
        ),
        DType::F32 => {
            Array::from_vec(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(), shape)
        }
        DType::F64 => {
            Array::from_vec(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(), shape)
        }
        DType::I64 => {
            Array::from_vec(bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(), shape)
        }
        DType::Bool => {
            if let Some(b) = bytes.iter().find(|&&b| b > 1) {
                return Err(IoError::Format(format!("tensor '{name}': bool byte {b} is neither 0 nor 1")));
            }
            Array::from_vec(bytes.iter().map(|&b| b == 1).collect(), shape)
        }
    })
}
