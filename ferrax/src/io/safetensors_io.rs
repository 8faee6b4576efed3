//! Trees of tensors as safetensors files, named by their leaf paths.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::array::{Aval, DType};
use crate::core::Tensor;
use crate::tree::Tree;

use super::{from_le_bytes, to_le_bytes, write_atomically, IoError};

pub(super) fn to_st(d: DType) -> Dtype {
    match d {
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::I64 => Dtype::I64,
        DType::Bool => Dtype::BOOL,
    }
}

pub(super) fn from_st(name: &str, d: Dtype) -> Result<DType, IoError> {
    match d {
        Dtype::F16 => Ok(DType::F16),
        Dtype::BF16 => Ok(DType::BF16),
        Dtype::F32 => Ok(DType::F32),
        Dtype::F64 => Ok(DType::F64),
        Dtype::I64 => Ok(DType::I64),
        Dtype::BOOL => Ok(DType::Bool),
        other => Err(IoError::UnsupportedDtype { name: name.to_string(), dtype: format!("{other:?}") }),
    }
}

/// The safetensors bytes of a tree: one tensor per leaf, named by its path
/// (`layers.0.w`, see [`Tree::leaf_paths`]). A leaf traced by `jvp`, `grad`
/// or a tape is saved as its value.
///
/// # Panics
/// When two leaves have the same path (a custom `Tree` impl naming badly),
/// or a leaf is traced by `vmap` or a staging transformation (`make_graph`,
/// `linearize`'s tangents), where it stands for no single array.
#[track_caller]
pub fn to_safetensors_bytes<T: Tree>(tree: &T) -> Vec<u8> {
    to_safetensors_bytes_with_metadata(tree, &BTreeMap::new())
}

/// [`to_safetensors_bytes`] with string metadata in the header (the
/// format's `__metadata__`: what a checkpoint needs beside its tensors).
///
/// # Panics
/// As [`to_safetensors_bytes`].
#[track_caller]
pub fn to_safetensors_bytes_with_metadata<T: Tree>(tree: &T, metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let names = tree.leaf_paths();
    let arrays: Vec<_> = tree.leaves().iter().map(Tensor::to_array).collect();
    let bytes: Vec<Vec<u8>> = arrays.iter().map(to_le_bytes).collect();
    let mut seen = BTreeSet::new();
    let mut views = Vec::with_capacity(names.len());
    for ((name, a), data) in names.iter().zip(&arrays).zip(&bytes) {
        if !seen.insert(name.clone()) {
            panic!("save_safetensors: two leaves are both named '{name}'");
        }
        let view = TensorView::new(to_st(a.dtype()), a.shape().to_vec(), data).expect("a consistent view");
        views.push((name.clone(), view));
    }
    let metadata = (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
    safetensors::tensor::serialize(views, metadata).expect("serialising tensors in memory")
}

/// Saves a tree of tensors as a safetensors file (written atomically).
///
/// ```
/// # use ferrax::prelude::*;
/// let params = vec![Tensor::ones(&[2, 2], DType::F32), Tensor::zeros(&[2], DType::F32)];
/// let path = std::env::temp_dir().join("ferrax-doc-params.safetensors");
/// ferrax::io::save_safetensors(&path, &params).unwrap();
/// let back = ferrax::io::load_safetensors(&path, &params).unwrap();
/// assert_eq!(back[0].to_vec::<f32>(), vec![1.0; 4]);
/// ```
pub fn save_safetensors<T: Tree>(path: impl AsRef<Path>, tree: &T) -> Result<(), IoError> {
    write_atomically(path.as_ref(), &to_safetensors_bytes(tree))
}

/// [`save_safetensors`] with string metadata in the header.
pub fn save_safetensors_with_metadata<T: Tree>(
    path: impl AsRef<Path>,
    tree: &T,
    metadata: &BTreeMap<String, String>,
) -> Result<(), IoError> {
    write_atomically(path.as_ref(), &to_safetensors_bytes_with_metadata(tree, metadata))
}

/// The string metadata of a safetensors file's header (empty when it has none).
pub fn load_safetensors_metadata(path: impl AsRef<Path>) -> Result<BTreeMap<String, String>, IoError> {
    safetensors_metadata_bytes(&std::fs::read(path)?)
}

/// [`load_safetensors_metadata`] from bytes in memory.
pub fn safetensors_metadata_bytes(bytes: &[u8]) -> Result<BTreeMap<String, String>, IoError> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| IoError::Format(format!("safetensors: {e}")))?;
    Ok(meta.metadata().clone().map(|m| m.into_iter().collect()).unwrap_or_default())
}

/// Loads a safetensors file into a tree shaped like `template`: every leaf
/// path must be in the file with the template leaf's dtype and shape, and
/// the file must hold nothing else.
pub fn load_safetensors<T: Tree>(path: impl AsRef<Path>, template: &T) -> Result<T, IoError> {
    load_safetensors_bytes(&std::fs::read(path)?, template)
}

/// [`load_safetensors`] from bytes in memory.
pub fn load_safetensors_bytes<T: Tree>(bytes: &[u8], template: &T) -> Result<T, IoError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| IoError::Format(format!("safetensors: {e}")))?;
    let names = template.leaf_paths();
    let expected_leaves = template.leaves();
    let mut leaves = Vec::with_capacity(names.len());
    for (name, want) in names.iter().zip(&expected_leaves) {
        let view = st.tensor(name).map_err(|_| IoError::Missing { name: name.clone() })?;
        let dtype = from_st(name, view.dtype())?;
        let found = Aval::new(dtype, view.shape());
        if &found != want.aval() {
            return Err(IoError::Mismatch { name: name.clone(), expected: want.aval().clone(), found });
        }
        leaves.push(Tensor::from_array(from_le_bytes(name, dtype, view.shape(), view.data())?));
    }
    let known: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let mut extra: Vec<String> = st.names().into_iter().filter(|n| !known.contains(n)).map(str::to_string).collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(IoError::Unexpected { names: extra });
    }
    Ok(template.with_leaves(leaves))
}
