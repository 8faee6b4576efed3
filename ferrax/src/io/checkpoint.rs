//! Loading checkpoints made elsewhere: by name into any tree, partially, with
//! a prefix, renamed, converted to the tree's dtypes, and reading from the
//! file only the tensors that are taken.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use safetensors::tensor::{Dtype, Metadata};

use crate::array::{Array, Aval, DType};
use crate::core::Tensor;
use crate::tree::Tree;

use super::safetensors_io::{from_st, to_st};
use super::{from_le_bytes, IoError};

/// The largest header read, as the safetensors crate allows (100 MB).
const MAX_HEADER: u64 = 100_000_000;

/// One tensor of a safetensors file, as its header describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// The tensor's name.
    pub name: String,
    /// The dtype as the format names it (`F32`, `BF16`, `U8`, …).
    pub dtype: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// Where its bytes are, relative to the start of the data section.
    pub offsets: (usize, usize),
}

impl TensorEntry {
    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The number of bytes of data.
    pub fn bytes(&self) -> usize {
        self.offsets.1 - self.offsets.0
    }
}

/// What a safetensors file holds, read from its header alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetensorsHeader {
    /// The tensors, in the order of their data in the file.
    pub tensors: Vec<TensorEntry>,
    /// The string metadata (`__metadata__`).
    pub metadata: BTreeMap<String, String>,
    /// Where the data section starts in the file.
    data_start: u64,
}

impl SafetensorsHeader {
    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Parses a header (the JSON after the 8-byte length), checking that every
/// tensor's bytes lie within `data_len` and match its dtype and shape.
fn parse_header(json: &[u8], data_start: u64, data_len: u64) -> Result<SafetensorsHeader, IoError> {
    let bad = |m: String| IoError::Format(format!("safetensors: {m}"));
    let json = std::str::from_utf8(json).map_err(|e| bad(format!("the header is not UTF-8: {e}")))?;
    let meta: Metadata = serde_json::from_str(json).map_err(|e| bad(format!("the header does not parse: {e}")))?;
    let mut tensors = Vec::new();
    for (name, info) in meta.tensors() {
        let (start, end) = info.data_offsets;
        let elements = info.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let want = elements.and_then(|n| n.checked_mul(info.dtype.bitsize()).map(|b| b.div_ceil(8)));
        if start > end || end as u64 > data_len {
            return Err(bad(format!("tensor '{name}' lies outside the file (bytes {start}..{end} of {data_len})")));
        }
        if want != Some(end - start) {
            return Err(bad(format!(
                "tensor '{name}' is {:?}{:?} but has {} bytes",
                info.dtype,
                info.shape,
                end - start
            )));
        }
        tensors.push(TensorEntry {
            name,
            dtype: format!("{:?}", info.dtype),
            shape: info.shape.clone(),
            offsets: (start, end),
        });
    }
    tensors.sort_by_key(|t| t.offsets);
    let metadata = meta.metadata().clone().map(|m| m.into_iter().collect()).unwrap_or_default();
    Ok(SafetensorsHeader { tensors, metadata, data_start })
}

/// Reads the header of a safetensors file without reading its tensors.
///
/// ```
/// # use ferrax::prelude::*;
/// let path = std::env::temp_dir().join("ferrax-doc-inspect.safetensors");
/// ferrax::io::save_safetensors(&path, &vec![Tensor::zeros(&[2, 3], DType::F32)]).unwrap();
/// let header = ferrax::io::inspect_safetensors(&path).unwrap();
/// assert_eq!((header.tensors[0].name.as_str(), header.tensors[0].shape.as_slice()), ("0", &[2, 3][..]));
/// ```
pub fn inspect_safetensors(path: impl AsRef<Path>) -> Result<SafetensorsHeader, IoError> {
    let mut file = File::open(path)?;
    read_header(&mut file)
}

fn read_header(file: &mut File) -> Result<SafetensorsHeader, IoError> {
    let len = file.metadata()?.len();
    let mut n = [0u8; 8];
    file.read_exact(&mut n)
        .map_err(|_| IoError::Format("safetensors: shorter than its 8-byte header length".into()))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || 8 + n > len {
        return Err(IoError::Format(format!("safetensors: a header of {n} bytes in a file of {len}")));
    }
    let mut json = vec![0u8; n as usize];
    file.read_exact(&mut json)?;
    parse_header(&json, 8 + n, len - 8 - n)
}

/// [`inspect_safetensors`] of a file's bytes in memory.
pub fn inspect_safetensors_bytes(bytes: &[u8]) -> Result<SafetensorsHeader, IoError> {
    let short = || IoError::Format("safetensors: shorter than its header".into());
    let n = u64::from_le_bytes(bytes.get(..8).ok_or_else(short)?.try_into().unwrap());
    if n > MAX_HEADER || 8 + n > bytes.len() as u64 {
        return Err(short());
    }
    let json = &bytes[8..8 + n as usize];
    parse_header(json, 8 + n, bytes.len() as u64 - 8 - n)
}

/// A function from a file tensor's name to a leaf path.
type Renamer = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How [`load_safetensors_with`] matches a file's tensors to a tree's leaves
/// (named by [`Tree::leaf_paths`]). The default is what
/// [`load_safetensors`](super::load_safetensors) does: every leaf from the
/// file, nothing else in it, dtypes equal.
///
/// A file tensor's name is matched to a leaf path in two steps: a name in
/// the renaming map (or one the renaming function changes) is taken as the
/// new name; otherwise, with a prefix set, only names that start with it
/// are considered, without it, and the rest of the file is passed over.
///
/// ```
/// use ferrax::io::LoadOptions;
/// // The model part of a checkpoint that also holds an optimiser's state,
/// // whatever else it has reported instead of refused, bf16 or f64 files
/// // converted to the model's dtypes.
/// let opts = LoadOptions::new().prefix("model.").strict(false).convert_dtypes(true);
/// # let _ = opts;
/// ```
#[derive(Clone)]
pub struct LoadOptions {
    strict: bool,
    prefix: String,
    renames: BTreeMap<String, String>,
    rename_with: Option<Renamer>,
    convert: bool,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions::new()
    }
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("strict", &self.strict)
            .field("prefix", &self.prefix)
            .field("renames", &self.renames)
            .field("rename_with", &self.rename_with.as_ref().map(|_| "<fn>"))
            .field("convert", &self.convert)
            .finish()
    }
}

impl LoadOptions {
    /// Strict, no prefix, no renaming, no dtype conversion.
    pub fn new() -> LoadOptions {
        LoadOptions { strict: true, prefix: String::new(), renames: BTreeMap::new(), rename_with: None, convert: false }
    }

    /// Strict (the default): a leaf missing from the file, or a file tensor
    /// (under the prefix) that no leaf takes, is an error. Not strict: the
    /// missing leaves keep the template's values and both lists are
    /// reported in [`Loaded`] (PyTorch's `load_state_dict(strict=False)`).
    pub fn strict(mut self, strict: bool) -> LoadOptions {
        self.strict = strict;
        self
    }

    /// Takes only the file's tensors whose names start with `prefix`, and
    /// matches them without it (`model.` selects `model.layers.0.w` for the
    /// leaf `layers.0.w`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> LoadOptions {
        self.prefix = prefix.into();
        self
    }

    /// Loads the file's tensor `file_name` into the leaf `leaf_path`.
    pub fn rename(mut self, file_name: impl Into<String>, leaf_path: impl Into<String>) -> LoadOptions {
        self.renames.insert(file_name.into(), leaf_path.into());
        self
    }

    /// Renames by a function of the file's name: `Some(leaf path)`, or `None`
    /// to leave the name to the prefix. The map of [`LoadOptions::rename`]
    /// is asked first.
    pub fn rename_with(mut self, f: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> LoadOptions {
        self.rename_with = Some(Arc::new(f));
        self
    }

    /// Converts a float tensor of another float dtype (f16, bf16, f32,
    /// f64) to the leaf's dtype, rounding to nearest, instead of failing.
    /// Integer and bool tensors are never converted.
    pub fn convert_dtypes(mut self, convert: bool) -> LoadOptions {
        self.convert = convert;
        self
    }

    /// The leaf path a file tensor goes to, or `None` when it is outside the selection.
    fn leaf_for(&self, file_name: &str) -> Option<String> {
        if let Some(to) = self.renames.get(file_name) {
            return Some(to.clone());
        }
        if let Some(to) = self.rename_with.as_ref().and_then(|f| f(file_name)) {
            return Some(to);
        }
        file_name.strip_prefix(self.prefix.as_str()).map(str::to_string)
    }
}

/// A tree loaded by [`load_safetensors_with`], and what did not match.
#[derive(Clone, Debug)]
pub struct Loaded<T> {
    /// The tree: the file's tensors where it had them, the template's elsewhere.
    pub value: T,
    /// Leaf paths the file did not provide (empty when strict).
    pub missing: Vec<String>,
    /// File tensors, by their names in the file, that no leaf took (empty when strict).
    pub unexpected: Vec<String>,
    /// Leaf paths whose tensors were converted from another dtype, with that dtype.
    pub converted: Vec<(String, String)>,
}

/// Where the bytes of a tensor come from.
trait Source {
    fn read(&mut self, header: &SafetensorsHeader, entry: &TensorEntry) -> Result<Vec<u8>, IoError>;
}

impl Source for File {
    fn read(&mut self, header: &SafetensorsHeader, entry: &TensorEntry) -> Result<Vec<u8>, IoError> {
        self.seek(SeekFrom::Start(header.data_start + entry.offsets.0 as u64))?;
        let mut out = vec![0u8; entry.bytes()];
        self.read_exact(&mut out)?;
        Ok(out)
    }
}

impl Source for &[u8] {
    fn read(&mut self, header: &SafetensorsHeader, entry: &TensorEntry) -> Result<Vec<u8>, IoError> {
        let start = header.data_start as usize + entry.offsets.0;
        Ok(self[start..start + entry.bytes()].to_vec())
    }
}

/// Loads a safetensors file into a tree shaped like `template`, matched by
/// name as `opts` says.
///
/// Only the header and the tensors that are taken are read, each straight
/// into its array, so loading part of a multi-gigabyte checkpoint reads
/// that part. (Positional reads rather than a memory map: a file truncated
/// by another process under a map kills the reader with SIGBUS, where a
/// read returns an error.)
///
/// # Errors
/// [`IoError`] when the file cannot be read or is malformed; when strict,
/// for a missing leaf or an unexpected tensor; for a shape that differs
/// from the leaf's, always; for a dtype that differs, unless converting
/// floats.
///
/// ```
/// # use ferrax::prelude::*;
/// use ferrax::io::{load_safetensors_with, save_safetensors, LoadOptions};
/// use ferrax::nn::{Init, Linear};
/// // A checkpoint of a model and its optimiser's state.
/// let model = Linear::new(3, 2, Init::GlorotUniform, DType::F32, 0);
/// let path = std::env::temp_dir().join("ferrax-doc-partial.safetensors");
/// save_safetensors(&path, &(model.clone(), vec![Tensor::scalar(7.0)])).unwrap();
/// // The tuple's leaves are named "0.w", "0.b" and "1.0".
/// let template = Linear::new(3, 2, Init::GlorotUniform, DType::F32, 1);
/// let loaded = load_safetensors_with(&path, &template, &LoadOptions::new().prefix("0.").strict(false)).unwrap();
/// assert_eq!(loaded.value.w.to_vec::<f32>(), model.w.to_vec::<f32>());
/// assert!(loaded.missing.is_empty() && loaded.unexpected.is_empty());
/// ```
pub fn load_safetensors_with<T: Tree>(
    path: impl AsRef<Path>,
    template: &T,
    opts: &LoadOptions,
) -> Result<Loaded<T>, IoError> {
    let mut file = File::open(path)?;
    let header = read_header(&mut file)?;
    load_from(&header, &mut file, template, opts)
}

/// [`load_safetensors_with`] from a file's bytes in memory.
pub fn load_safetensors_bytes_with<T: Tree>(
    bytes: &[u8],
    template: &T,
    opts: &LoadOptions,
) -> Result<Loaded<T>, IoError> {
    let header = inspect_safetensors_bytes(bytes)?;
    load_from(&header, &mut { bytes }, template, opts)
}

fn load_from<T: Tree>(
    header: &SafetensorsHeader,
    source: &mut impl Source,
    template: &T,
    opts: &LoadOptions,
) -> Result<Loaded<T>, IoError> {
    let paths = template.leaf_paths();
    let index: BTreeMap<&str, usize> = paths.iter().enumerate().map(|(i, p)| (p.as_str(), i)).collect();
    let mut taken: Vec<Option<&TensorEntry>> = vec![None; paths.len()];
    let mut unexpected = Vec::new();
    for entry in &header.tensors {
        let Some(leaf) = opts.leaf_for(&entry.name) else { continue };
        match index.get(leaf.as_str()) {
            Some(&i) if taken[i].is_none() => taken[i] = Some(entry),
            Some(_) => {
                return Err(IoError::Format(format!(
                    "two tensors of the file, '{}' and '{}', both go to the leaf '{leaf}'",
                    taken[index[leaf.as_str()]].unwrap().name,
                    entry.name
                )))
            }
            None => unexpected.push(entry.name.clone()),
        }
    }
    let missing: Vec<String> = paths.iter().zip(&taken).filter(|(_, t)| t.is_none()).map(|(p, _)| p.clone()).collect();
    if opts.strict {
        if let Some(name) = missing.first() {
            return Err(IoError::Missing { name: name.clone() });
        }
        if !unexpected.is_empty() {
            unexpected.sort();
            return Err(IoError::Unexpected { names: unexpected });
        }
    }
    let mut leaves = template.leaves();
    let mut converted = Vec::new();
    for ((path, leaf), entry) in paths.iter().zip(leaves.iter_mut()).zip(&taken) {
        let Some(entry) = entry else { continue };
        let want = leaf.aval().clone();
        let bytes = source.read(header, entry)?;
        let array = decode(entry, &bytes, want.dtype, opts.convert).map_err(|e| match e {
            Decode::Io(e) => e,
            Decode::Dtype(found) => {
                IoError::Mismatch { name: path.clone(), expected: want.clone(), found: Aval::new(found, &entry.shape) }
            }
        })?;
        if array.shape() != want.shape.as_slice() {
            return Err(IoError::Mismatch {
                name: path.clone(),
                expected: want,
                found: Aval::new(array.dtype(), array.shape()),
            });
        }
        if entry.dtype != format!("{:?}", to_st(want.dtype)) {
            converted.push((path.clone(), entry.dtype.clone()));
        }
        *leaf = Tensor::from_array(if array.dtype() == want.dtype { array } else { array.to_dtype(want.dtype) });
    }
    unexpected.sort();
    Ok(Loaded { value: template.with_leaves(leaves), missing, unexpected, converted })
}

enum Decode {
    Io(IoError),
    /// The file's dtype, which differs from the leaf's and is not converted.
    Dtype(DType),
}

/// The array of a file tensor in its own dtype, which must be the leaf's
/// unless both are floats and `convert` is on.
fn decode(entry: &TensorEntry, bytes: &[u8], want: DType, convert: bool) -> Result<Array, Decode> {
    let dtype = from_st_name(&entry.name, &entry.dtype).map_err(Decode::Io)?;
    if dtype != want && !(convert && dtype.is_float() && want.is_float()) {
        return Err(Decode::Dtype(dtype));
    }
    from_le_bytes(&entry.name, dtype, &entry.shape, bytes).map_err(Decode::Io)
}

/// The ferrax dtype of a dtype named as the safetensors crate prints it.
fn from_st_name(name: &str, dtype: &str) -> Result<DType, IoError> {
    let st = match dtype {
        "F16" => Dtype::F16,
        "BF16" => Dtype::BF16,
        "F32" => Dtype::F32,
        "F64" => Dtype::F64,
        "I64" => Dtype::I64,
        "BOOL" => Dtype::BOOL,
        _ => return Err(IoError::UnsupportedDtype { name: name.to_string(), dtype: dtype.to_string() }),
    };
    from_st(name, st)
}
