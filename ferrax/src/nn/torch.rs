//! Exchanging models with PyTorch: parameters by the names and in the
//! layouts of a PyTorch module's `state_dict`.
//!
//! ferrax's [`Linear`] stores its weight as `[in, out]` (`y = x W + b`, as
//! JAX's libraries do) where PyTorch's `nn.Linear` stores `[out, in]`, and
//! the norms call their parameters `gamma`/`beta` or `scale` where PyTorch
//! says `weight`/`bias`. [`TorchModule`] says, for each leaf, PyTorch's
//! name and whether it is stored transposed; [`torch_state_dict`],
//! [`save_torch_safetensors`] and [`load_torch_safetensors`] use that in
//! both directions, so a file from `safetensors.torch.save_file(
//! model.state_dict(), path)` loads into the ferrax model of the same
//! architecture, and a file ferrax writes loads into the PyTorch model with
//! `model.load_state_dict(safetensors.torch.load_file(path))`.
//!
//! Convolution kernels (`[out, in / groups, window..]`) and embedding
//! tables are already in PyTorch's layout.

use std::collections::BTreeMap;
use std::path::Path;

use crate::core::Tensor;
use crate::io::{load_safetensors_with, save_safetensors, IoError, LoadOptions, Loaded};
use crate::tree::Tree;

use super::{BatchNorm, Conv, Embedding, GroupNorm, Layer, LayerNorm, Linear, Mlp, RmsNorm, Sequential};

/// PyTorch's name for one leaf of a module, and its layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorchName {
    /// The `state_dict` key (`0.weight`).
    pub name: String,
    /// PyTorch stores the leaf transposed (a 2-d weight `[out, in]`).
    pub transposed: bool,
}

/// A model whose parameters are those of a PyTorch module.
pub trait TorchModule: Tree {
    /// Appends, for each leaf in flattening order, its `state_dict` name
    /// under `prefix` (which ends with a `.` unless empty) and layout.
    fn torch_names_into(&self, prefix: &str, out: &mut Vec<TorchName>);

    /// The `state_dict` names of the leaves, in flattening order.
    fn torch_names(&self) -> Vec<TorchName> {
        let mut out = Vec::new();
        self.torch_names_into("", &mut out);
        out
    }
}

fn push(out: &mut Vec<TorchName>, prefix: &str, name: &str, transposed: bool) {
    out.push(TorchName { name: format!("{prefix}{name}"), transposed });
}

/// `nn.Linear`: `weight` `[out, in]` (ferrax's `w` transposed) and `bias`.
impl TorchModule for Linear {
    fn torch_names_into(&self, prefix: &str, out: &mut Vec<TorchName>) {
        push(out, prefix, "weight", true);
        push(out, prefix, "bias", false);
    }
}

/// Modules whose two leaves are PyTorch's `weight` and `bias`, in the same
/// layouts: `nn.Conv1d/2d/3d` (kernel, bias), `nn.LayerNorm` and
/// `nn.GroupNorm` (`gamma`, `beta`), and the parameters of
/// `nn.BatchNorm*d` — whose running statistics are a separate
/// [`BatchStats`](super::BatchStats) in ferrax, PyTorch's `running_mean`
/// and `running_var` buffers.
macro_rules! weight_and_bias {
    ($($module:ty),*) => {$(
        impl TorchModule for $module {
            fn torch_names_into(&self, prefix: &str, out: &mut Vec<TorchName>) {
                push(out, prefix, "weight", false);
                push(out, prefix, "bias", false);
            }
        }
    )*};
}
weight_and_bias!(Conv, LayerNorm, GroupNorm, BatchNorm);

/// `nn.RMSNorm`: `weight` (`scale`).
impl TorchModule for RmsNorm {
    fn torch_names_into(&self, prefix: &str, out: &mut Vec<TorchName>) {
        push(out, prefix, "weight", false);
    }
}

/// `nn.Embedding`: `weight` (`table`).
impl TorchModule for Embedding {
    fn torch_names_into(&self, prefix: &str, out: &mut Vec<TorchName>) {
        push(out, prefix, "weight", false);
    }
}

/// The module inside; parameter-free layers (activations, pooling,
/// flattening, dropout) have no entries, as in PyTorch.
impl TorchModule for Layer {
    fn torch_names_into(&self, prefix: &str, out: &mut Vec<TorchName>) {
        match self {
            Layer::Linear(l) => l.torch_names_into(prefix, out),
            Layer::Conv(c) => c.torch_names_into(prefix, out),
            Layer::LayerNorm(l) => l.torch_names_into(prefix, out),
            Layer::RmsNorm(l) => l.torch_names_into(prefix, out),
            Layer::GroupNorm(l) => l.torch_names_into(prefix, out),
            Layer::Pool(_) | Layer::Activation(_) | Layer::Flatten | Layer::Dropout(_) => {}
        }
    }
}

/// `nn.ModuleList`: element `i` under `i.`.
impl<M: TorchModule> TorchModule for Vec<M> {
    fn torch_names_into(&self, prefix: &str, out: &mut Vec<TorchName>) {
        for (i, m) in self.iter().enumerate() {
            m.torch_names_into(&format!("{prefix}{i}."), out);
        }
    }
}

/// `nn.Sequential` of the same layers: layer `i` under `i.` (an activation
/// or pooling layer takes an index, as its module does in PyTorch).
impl TorchModule for Sequential {
    fn torch_names_into(&self, prefix: &str, out: &mut Vec<TorchName>) {
        self.layers.torch_names_into(prefix, out);
    }
}

/// `nn.Sequential(nn.Linear, activation, nn.Linear, …)`: linear layer `i`
/// under `2i.`, the activations between them taking the odd indices.
impl TorchModule for Mlp {
    fn torch_names_into(&self, prefix: &str, out: &mut Vec<TorchName>) {
        for (i, l) in self.layers.iter().enumerate() {
            l.torch_names_into(&format!("{prefix}{}.", 2 * i), out);
        }
    }
}

/// A model's parameters as PyTorch's `state_dict` of the same
/// architecture: by PyTorch's names, in its layouts.
///
/// ```
/// # use ferrax::prelude::*;
/// use ferrax::nn::{torch_state_dict, Activation, Mlp};
/// let mlp = Mlp::new(&[3, 4, 2], Activation::Relu, DType::F32, 0);
/// let state = torch_state_dict(&mlp);
/// // nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
/// assert_eq!(state.keys().collect::<Vec<_>>(), ["0.bias", "0.weight", "2.bias", "2.weight"]);
/// assert_eq!(state["0.weight"].shape(), &[4, 3]);
/// ```
///
/// # Panics
/// When two leaves have the same PyTorch name (a `TorchModule` impl naming badly).
#[track_caller]
pub fn torch_state_dict<M: TorchModule>(model: &M) -> BTreeMap<String, Tensor> {
    let mut state = BTreeMap::new();
    for (n, t) in model.torch_names().into_iter().zip(model.leaves()) {
        let t = if n.transposed { t.t() } else { t };
        if state.insert(n.name.clone(), t).is_some() {
            panic!("torch_state_dict: two leaves are both named '{}'", n.name);
        }
    }
    state
}

/// A model of `template`'s architecture with the parameters of a PyTorch
/// `state_dict`, each checked for shape and dtype.
///
/// # Errors
/// [`IoError::Missing`] for a parameter not in `state`,
/// [`IoError::Unexpected`] for entries the model does not have, and
/// [`IoError::Mismatch`] for a shape or dtype that differs.
pub fn from_torch_state_dict<M: TorchModule>(template: &M, state: &BTreeMap<String, Tensor>) -> Result<M, IoError> {
    let names = template.torch_names();
    let mut leaves = Vec::with_capacity(names.len());
    for (n, want) in names.iter().zip(template.leaves()) {
        let t = state.get(&n.name).ok_or_else(|| IoError::Missing { name: n.name.clone() })?;
        let t = if n.transposed { t.t() } else { t.clone() };
        if t.aval() != want.aval() {
            let as_stored = |t: &Tensor| if n.transposed { t.t().aval().clone() } else { t.aval().clone() };
            return Err(IoError::Mismatch { name: n.name.clone(), expected: as_stored(&want), found: as_stored(&t) });
        }
        leaves.push(t);
    }
    let mut extra: Vec<String> = state.keys().filter(|k| !names.iter().any(|n| &n.name == *k)).cloned().collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(IoError::Unexpected { names: extra });
    }
    Ok(template.with_leaves(leaves))
}

/// Saves a model as PyTorch's `state_dict` of the same architecture would
/// be saved by `safetensors.torch.save_file` (written atomically).
pub fn save_torch_safetensors<M: TorchModule>(path: impl AsRef<Path>, model: &M) -> Result<(), IoError> {
    save_safetensors(path, &torch_state_dict(model))
}

/// Loads a file of a PyTorch model's `state_dict` (as
/// `safetensors.torch.save_file` writes it) into a model of `template`'s
/// architecture: strict, dtypes equal.
pub fn load_torch_safetensors<M: TorchModule>(path: impl AsRef<Path>, template: &M) -> Result<M, IoError> {
    Ok(load_torch_safetensors_with(path, template, &LoadOptions::new())?.value)
}

/// [`load_torch_safetensors`] with [`LoadOptions`]: partly, under a
/// prefix, renamed, and with dtypes converted (a bf16 file into an f32
/// model). Names in the options and in the report are PyTorch's.
pub fn load_torch_safetensors_with<M: TorchModule>(
    path: impl AsRef<Path>,
    template: &M,
    opts: &LoadOptions,
) -> Result<Loaded<M>, IoError> {
    let loaded = load_safetensors_with(path, &torch_state_dict(template), opts)?;
    let mut state = loaded.value;
    let leaves = template
        .torch_names()
        .into_iter()
        .map(|n| {
            let t = state.remove(&n.name).expect("the state has every name of the template");
            if n.transposed {
                t.t()
            } else {
                t
            }
        })
        .collect();
    Ok(Loaded {
        value: template.with_leaves(leaves),
        missing: loaded.missing,
        unexpected: loaded.unexpected,
        converted: loaded.converted,
    })
}
