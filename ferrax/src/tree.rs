//! Nested structures of tensors as inputs and outputs of transformations.
//!
//! A transformation flattens its argument to a list of leaves, works on
//! those, and rebuilds results of the same structure. The structure is taken
//! from a value of the type itself (a template), so a `Vec` rebuilds with
//! the template's length and a map with its keys.

use std::collections::BTreeMap;

use crate::core::Tensor;

/// A structure whose leaves are tensors: `Tensor`, `Vec<T>`, `[T; N]`,
/// tuples up to 6, `Option<T>`, `BTreeMap<String, T>` and `()`, nested
/// freely — and user structs with `#[derive(Tree)]`:
///
/// ```
/// use ferrax::prelude::*;
///
/// #[derive(Tree)]
/// struct Layer {
///     w: Tensor,
///     b: Tensor,
///     #[tree(skip)]
///     name: String,
/// }
///
/// let layer = Layer { w: Tensor::ones(&[2, 2], DType::F64), b: Tensor::zeros(&[2], DType::F64), name: "l1".into() };
/// let g: Layer = grad(|l: &Layer| (l.w.sum() * 2.0 + l.b.sum()))(&layer);
/// assert_eq!(g.w.to_vec::<f64>(), vec![2.0; 4]);
/// assert_eq!(g.name, "l1");
/// assert_eq!(layer.leaf_paths(), vec!["w", "b"]);
/// ```
pub trait Tree: Sized {
    /// Appends the leaves, in a fixed order, to `out`.
    fn flatten_into(&self, out: &mut Vec<Tensor>);

    /// A value of the same structure as `self` whose leaves are taken, in
    /// the order `flatten_into` gives them, from `leaves`.
    ///
    /// # Panics
    /// When `leaves` runs out.
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self;

    /// The leaves in order.
    fn leaves(&self) -> Vec<Tensor> {
        let mut out = Vec::new();
        self.flatten_into(&mut out);
        out
    }

    /// A value of `self`'s structure with these leaves.
    ///
    /// # Panics
    /// When the number of leaves differs from `self`'s.
    #[track_caller]
    fn with_leaves(&self, leaves: Vec<Tensor>) -> Self {
        let n = leaves.len();
        let mut it = leaves.into_iter();
        let out = self.rebuild(&mut it);
        let left = it.count();
        assert!(left == 0, "Tree::with_leaves: the structure has {} leaves but {n} were given", n - left);
        out
    }

    /// Appends a name for each leaf, in flattening order, to `out`: the path
    /// of fields, indices and keys that leads to it, each part followed by a
    /// `.` (`layers.0.w.`; the final dot is dropped by [`Tree::leaf_paths`]).
    /// Checkpoints use these as tensor names. The default numbers the leaves.
    fn paths_into(&self, prefix: &str, out: &mut Vec<String>) {
        for i in 0..self.leaves().len() {
            out.push(format!("{prefix}{i}."));
        }
    }

    /// Appends a description of every value in the tree that is not a leaf
    /// (a derived struct's `#[tree(skip)]` fields: an activation, a flag), in
    /// a fixed order. Staged programs (`jit`, the custom rules) are cached by
    /// the leaves' paths and avals and by these, so that a program traced
    /// with one activation is not reused for another. The default has none.
    fn statics_into(&self, out: &mut Vec<String>) {
        let _ = out;
    }

    /// The name of each leaf (see [`Tree::paths_into`]); a lone tensor is `value`.
    fn leaf_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.paths_into("", &mut out);
        out.into_iter()
            .map(|p| {
                let p = p.trim_end_matches('.');
                if p.is_empty() {
                    "value".to_string()
                } else {
                    p.to_string()
                }
            })
            .collect()
    }

    /// Applies `f` to every leaf, keeping the structure.
    fn map_leaves(&self, mut f: impl FnMut(&Tensor) -> Tensor) -> Self {
        let leaves = self.leaves().iter().map(&mut f).collect();
        self.with_leaves(leaves)
    }
}

/// What user functions given to [`custom_jvp`](crate::custom_jvp),
/// [`custom_vjp`](crate::custom_vjp) and [`checkpoint`](crate::checkpoint)
/// take by reference: any [`Tree`], or a slice of tensors (`&[Tensor]`).
pub trait TreeRef {
    /// An owned value of this structure (`Vec<Tensor>` for a slice).
    type Owned: Tree + std::borrow::Borrow<Self>;

    /// The leaves in order.
    fn ref_leaves(&self) -> Vec<Tensor>;

    /// An owned value of `self`'s structure with these leaves.
    fn with_leaves_owned(&self, leaves: Vec<Tensor>) -> Self::Owned;

    /// The path of each leaf ([`Tree::paths_into`]) and then the
    /// descriptions of the values that are not leaves
    /// ([`Tree::statics_into`]), for the owned form: what identifies the
    /// structure (caches key on it).
    fn ref_leaf_paths(&self) -> Vec<String> {
        let owned = self.with_leaves_owned(self.ref_leaves());
        let mut out = Vec::new();
        owned.paths_into("", &mut out);
        owned.statics_into(&mut out);
        out
    }
}

impl<T: Tree> TreeRef for T {
    type Owned = T;
    fn ref_leaves(&self) -> Vec<Tensor> {
        self.leaves()
    }
    fn with_leaves_owned(&self, leaves: Vec<Tensor>) -> T {
        self.with_leaves(leaves)
    }
    fn ref_leaf_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.paths_into("", &mut out);
        self.statics_into(&mut out);
        out
    }
}

impl TreeRef for [Tensor] {
    type Owned = Vec<Tensor>;
    fn ref_leaves(&self) -> Vec<Tensor> {
        self.to_vec()
    }
    fn with_leaves_owned(&self, leaves: Vec<Tensor>) -> Vec<Tensor> {
        leaves
    }
}

#[track_caller]
fn next_leaf(leaves: &mut dyn Iterator<Item = Tensor>) -> Tensor {
    match leaves.next() {
        Some(leaf) => leaf,
        None => panic!("Tree::rebuild: ran out of leaves; the structure has more"),
    }
}

impl Tree for Tensor {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        out.push(self.clone());
    }
    fn paths_into(&self, prefix: &str, out: &mut Vec<String>) {
        out.push(prefix.to_string());
    }
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        next_leaf(leaves)
    }
}

impl Tree for () {
    fn flatten_into(&self, _out: &mut Vec<Tensor>) {}
    fn paths_into(&self, _prefix: &str, _out: &mut Vec<String>) {}
    fn rebuild(&self, _leaves: &mut dyn Iterator<Item = Tensor>) -> Self {}
}

impl<T: Tree> Tree for Vec<T> {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        for x in self {
            x.flatten_into(out);
        }
    }
    fn paths_into(&self, prefix: &str, out: &mut Vec<String>) {
        for (i, x) in self.iter().enumerate() {
            x.paths_into(&format!("{prefix}{i}."), out);
        }
    }
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        self.iter().map(|x| x.rebuild(leaves)).collect()
    }
    fn statics_into(&self, out: &mut Vec<String>) {
        for x in self {
            x.statics_into(out);
        }
    }
}

impl<T: Tree, const N: usize> Tree for [T; N] {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        for x in self {
            x.flatten_into(out);
        }
    }
    fn paths_into(&self, prefix: &str, out: &mut Vec<String>) {
        for (i, x) in self.iter().enumerate() {
            x.paths_into(&format!("{prefix}{i}."), out);
        }
    }
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        std::array::from_fn(|i| self[i].rebuild(leaves))
    }
    fn statics_into(&self, out: &mut Vec<String>) {
        for x in self {
            x.statics_into(out);
        }
    }
}

impl<T: Tree> Tree for Option<T> {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        if let Some(x) = self {
            x.flatten_into(out);
        }
    }
    fn paths_into(&self, prefix: &str, out: &mut Vec<String>) {
        if let Some(x) = self {
            x.paths_into(prefix, out);
        }
    }
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        self.as_ref().map(|x| x.rebuild(leaves))
    }
    fn statics_into(&self, out: &mut Vec<String>) {
        match self {
            Some(x) => x.statics_into(out),
            None => out.push("None".into()), // a Some without leaves differs
        }
    }
}

impl<T: Tree> Tree for BTreeMap<String, T> {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        for v in self.values() {
            v.flatten_into(out);
        }
    }
    fn paths_into(&self, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in self {
            v.paths_into(&format!("{prefix}{k}."), out);
        }
    }
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        self.iter().map(|(k, v)| (k.clone(), v.rebuild(leaves))).collect()
    }
    fn statics_into(&self, out: &mut Vec<String>) {
        for v in self.values() {
            v.statics_into(out);
        }
    }
}

impl<T: Tree> Tree for Box<T> {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        (**self).flatten_into(out);
    }
    fn paths_into(&self, prefix: &str, out: &mut Vec<String>) {
        (**self).paths_into(prefix, out);
    }
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        Box::new((**self).rebuild(leaves))
    }
    fn statics_into(&self, out: &mut Vec<String>) {
        (**self).statics_into(out);
    }
}

macro_rules! tuple_tree {
    ($($T:ident $i:tt),+) => {
        impl<$($T: Tree),+> Tree for ($($T,)+) {
            fn flatten_into(&self, out: &mut Vec<Tensor>) {
                $(self.$i.flatten_into(out);)+
            }
            fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
                ($(self.$i.rebuild(leaves),)+)
            }
            fn paths_into(&self, prefix: &str, out: &mut Vec<String>) {
                $(self.$i.paths_into(&format!("{prefix}{}.", $i), out);)+
            }
            fn statics_into(&self, out: &mut Vec<String>) {
                $(self.$i.statics_into(out);)+
            }
        }
    };
}

/// How `#[derive(Tree)]` describes a `#[tree(skip)]` field for
/// [`Tree::statics_into`]: by its `Debug` text where the type has one, else
/// by its type's name (then values of that type are not told apart; derive
/// or implement `Debug` for them). Not for direct use.
#[doc(hidden)]
pub struct Static<'a, T>(pub &'a T);

/// The `Debug` description ([`Static`]); chosen first by method resolution.
#[doc(hidden)]
pub trait DescribeByDebug {
    fn describe(&self, out: &mut Vec<String>);
}

impl<T: std::fmt::Debug> DescribeByDebug for Static<'_, T> {
    fn describe(&self, out: &mut Vec<String>) {
        out.push(format!("{:?}", self.0));
    }
}

/// The fallback description by type name ([`Static`]).
#[doc(hidden)]
pub trait DescribeByType {
    fn describe(&self, out: &mut Vec<String>);
}

impl<T> DescribeByType for &Static<'_, T> {
    fn describe(&self, out: &mut Vec<String>) {
        out.push(std::any::type_name::<T>().to_string());
    }
}

tuple_tree!(A 0);
tuple_tree!(A 0, B 1);
tuple_tree!(A 0, B 1, C 2);
tuple_tree!(A 0, B 1, C 2, D 3);
tuple_tree!(A 0, B 1, C 2, D 3, E 4);
tuple_tree!(A 0, B 1, C 2, D 3, E 4, F 5);

/// Leafwise transposition of a list of trees: for each leaf position, that
/// leaf of every tree, in order. Panics (naming `op`) when the trees do not
/// all have as many leaves as the first.
#[track_caller]
fn leafwise<T: Tree>(op: &str, trees: &[T]) -> Vec<Vec<Tensor>> {
    let Some(first) = trees.first() else {
        panic!("tree::{op}: needs at least one tree");
    };
    let n = first.leaves().len();
    let mut columns: Vec<Vec<Tensor>> = vec![Vec::with_capacity(trees.len()); n];
    for (i, t) in trees.iter().enumerate() {
        let leaves = t.leaves();
        if leaves.len() != n {
            panic!(
                "tree::{op}: tree {i} has {} leaves but tree 0 has {n}; the trees must share one structure",
                leaves.len()
            );
        }
        for (column, leaf) in columns.iter_mut().zip(leaves) {
            column.push(leaf);
        }
    }
    columns
}

/// The trees, of one structure, stacked leaf by leaf along a new axis at
/// `axis` (JAX's `jax.tree.map(lambda *xs: jnp.stack(xs, axis), *trees)`):
/// a list of per-example parameter structures becomes one structure of batches.
///
/// ```
/// # use ferrax::prelude::*;
/// let a = (Tensor::scalar(1.0), Tensor::ones(&[2], DType::F64));
/// let b = (Tensor::scalar(2.0), Tensor::zeros(&[2], DType::F64));
/// let s = ferrax::tree::stack(&[a, b], 0);
/// assert_eq!(s.0.to_vec::<f64>(), vec![1.0, 2.0]);
/// assert_eq!(s.1.shape(), &[2, 2]);
/// ```
///
/// # Panics
/// When `trees` is empty, the structures differ, or a leaf's shapes differ.
#[track_caller]
pub fn stack<T: Tree>(trees: &[T], axis: usize) -> T {
    let columns = leafwise("stack", trees);
    trees[0].with_leaves(columns.iter().map(|c| Tensor::stack(c, axis)).collect())
}

/// The trees, of one structure, joined leaf by leaf along the existing axis `axis`.
///
/// # Panics
/// When `trees` is empty, the structures differ, or a leaf's other dimensions differ.
#[track_caller]
pub fn concatenate<T: Tree>(trees: &[T], axis: usize) -> T {
    let columns = leafwise("concatenate", trees);
    trees[0].with_leaves(columns.iter().map(|c| Tensor::concat(c, axis)).collect())
}

/// Every leaf of `tree` on `device` (JAX's `device_put`): a computation
/// runs on the device of its inputs, so this is how data is placed. A leaf
/// already there is shared, not copied; a traced leaf is moved by a
/// primitive that differentiates as the identity.
///
/// Unlike JAX, a leaf put on the CPU is not "committed": host arrays always
/// follow a GPU computation they meet (JAX refuses to mix an array committed
/// to the CPU with one on a GPU). ferrax's host arrays are where constants
/// and values made outside any device live, so they cannot refuse to move.
///
/// ```
/// # use ferrax::prelude::*;
/// let params = (Tensor::ones(&[2], DType::F32), Tensor::scalar(1.0));
/// let placed = device_put(&params, Device::Cpu);
/// assert_eq!(placed.0.device(), Device::Cpu);
/// ```
#[track_caller]
pub fn device_put<T: Tree>(tree: &T, device: crate::array::Device) -> T {
    tree.map_leaves(|l| l.to_device(device))
}
