//! `check_grads`: automatic derivatives against central differences.

use std::fmt;

use crate::array::{DType, Rng};
use crate::core::Tensor;
use crate::transforms::{jvp, vjp};
use crate::tree::Tree;

use super::{numerical_jvp, random_like};

/// Which automatic derivatives [`check_grads_with`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `jvp(f, x, v)` against the central difference along `v`.
    Forward,
    /// The adjoint identity `⟨u, J v⟩ = ⟨Jᵀ u, v⟩`: the pullback of a random
    /// output cotangent `u` against the central difference along `v`.
    Reverse,
}

/// How far an automatic derivative may be from the numerical one:
/// `|got - expected| <= atol + rtol · |expected|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute part.
    pub atol: f64,
    /// Relative part, times the magnitude of the expected value.
    pub rtol: f64,
}

impl Tolerance {
    /// The default for a dtype.
    ///
    /// The central difference at the default step `h = ε^(1/3)` is off by
    /// about `ε^(2/3)` times the size of the function's derivatives: 4e-11
    /// in f64, 2.4e-5 in f32. The tolerance leaves room for functions whose
    /// higher derivatives are a few thousand times their value (ln and 1/x
    /// near 0.1, exp of 5) while staying far below the O(1) error of a
    /// wrong rule: 1e-6 for f64; 5e-3 for f32, where f32's own rounding in
    /// the function (ε = 1.2e-7 per operation, amplified by the 1/h of the
    /// difference) adds about 1e-4 on top.
    pub fn for_dtype(dtype: DType) -> Tolerance {
        match dtype {
            DType::F32 => Tolerance { atol: 5e-3, rtol: 5e-3 },
            _ => Tolerance { atol: 1e-6, rtol: 1e-6 },
        }
    }
}

/// An automatic derivative disagreed with the numerical one. Names the
/// worst element (for reverse mode, the inner product of the adjoint
/// identity: leaf 0, index `[]`).
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheckError {
    /// The mode that disagreed.
    pub mode: Mode,
    /// The order of the derivative (1 for first derivatives).
    pub order: usize,
    /// Which output leaf (in flattening order).
    pub leaf: usize,
    /// The element's multi-index within that leaf.
    pub index: Vec<usize>,
    /// The automatic derivative.
    pub got: f64,
    /// The numerical derivative.
    pub expected: f64,
    /// The allowed difference at this element.
    pub tolerance: f64,
}

impl fmt::Display for GradCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::Forward => "forward-mode",
            Mode::Reverse => "reverse-mode",
        };
        write!(
            f,
            "{mode} derivative of order {} disagrees with finite differences at output leaf {}, \
             element {:?}: got {:e}, expected {:e} (difference {:e}, tolerance {:e})",
            self.order,
            self.leaf,
            self.index,
            self.got,
            self.expected,
            (self.got - self.expected).abs(),
            self.tolerance
        )
    }
}

impl std::error::Error for GradCheckError {}

/// Checks the derivatives of `f` at `x` up to `order`, in both modes,
/// against central differences along random directions.
///
/// Forward mode compares `jvp(f, x, v)` with the central difference along
/// `v`, element by element. Reverse mode checks the adjoint identity
/// `⟨u, J v⟩ = ⟨Jᵀ u, v⟩`, with `Jᵀ u` from the pullback. Order 2 checks the
/// derivative functions themselves: `x ↦ jvp(f, x, v)` and
/// `x ↦ vjp(f, x)(u)`, each in both modes.
///
/// ```
/// # use ferrax::prelude::*;
/// let x = Tensor::from_vec(vec![0.5, 1.5], &[2]);
/// check_grads(|x: &Tensor| (x.sin() * x).sum(), &x, 2).unwrap();
/// ```
pub fn check_grads<I: Tree, O: Tree>(f: impl Fn(&I) -> O, x: &I, order: usize) -> Result<(), GradCheckError> {
    check_grads_with(f, x, order, &[Mode::Forward, Mode::Reverse], None)
}

/// [`check_grads`] with chosen modes and tolerance (default: by dtype).
pub fn check_grads_with<I: Tree, O: Tree>(
    f: impl Fn(&I) -> O,
    x: &I,
    order: usize,
    modes: &[Mode],
    tol: Option<Tolerance>,
) -> Result<(), GradCheckError> {
    let mut rng = Rng::new(0x5EED);
    check_rec(&f, x, 1, order, modes, tol, &mut rng)
}

fn check_rec<I: Tree, O: Tree>(
    f: &dyn Fn(&I) -> O,
    x: &I,
    level: usize,
    order: usize,
    modes: &[Mode],
    tol: Option<Tolerance>,
    rng: &mut Rng,
) -> Result<(), GradCheckError> {
    if level > order {
        return Ok(());
    }
    let v = random_like(x, rng);
    for &mode in modes {
        match mode {
            Mode::Forward => {
                let (_, got) = jvp(f, x, &v);
                let expected = numerical_jvp(f, x, &v);
                compare(&got.leaves(), &expected.leaves(), &x.leaves(), mode, level, tol)?;
                let derivative = |x: &I| jvp(f, x, &v).1;
                check_rec(&derivative, x, level + 1, order, modes, tol, rng)?;
            }
            Mode::Reverse => {
                let (y, pullback) = vjp(f, x);
                let u = random_like(&y, rng);
                let jv = numerical_jvp(f, x, &v);
                let expected = inner(&u.leaves(), &jv.leaves());
                let got = inner(&pullback(&u).leaves(), &v.leaves());
                let t = tol.unwrap_or_else(|| default_tolerance(&x.leaves(), &y.leaves()));
                // Each product u_i (Jv)_i may be off by its own elementwise tolerance.
                let abs_u: f64 = u.leaves().iter().flat_map(|t| t.to_vec::<f64>()).map(f64::abs).sum();
                let allowed = t.atol * abs_u + t.rtol * expected.1;
                let within = (got.0 - expected.0).abs() <= allowed; // false for NaN
                if !within {
                    return Err(GradCheckError {
                        mode,
                        order: level,
                        leaf: 0,
                        index: vec![],
                        got: got.0,
                        expected: expected.0,
                        tolerance: allowed,
                    });
                }
                let derivative = |x: &I| vjp(f, x).1(&u);
                check_rec(&derivative, x, level + 1, order, modes, tol, rng)?;
            }
        }
    }
    Ok(())
}

/// The tolerance of the narrowest float dtype among these tensors.
fn default_tolerance(a: &[Tensor], b: &[Tensor]) -> Tolerance {
    let narrow = a.iter().chain(b).any(|t| t.dtype() == DType::F32);
    Tolerance::for_dtype(if narrow { DType::F32 } else { DType::F64 })
}

/// `(Σ a_i b_i, Σ |a_i b_i|)` over the float leaves.
fn inner(a: &[Tensor], b: &[Tensor]) -> (f64, f64) {
    let mut sum = 0.0;
    let mut abs = 0.0;
    for (x, y) in a.iter().zip(b) {
        if !x.dtype().is_float() {
            continue;
        }
        for (p, q) in x.to_vec::<f64>().into_iter().zip(y.to_vec::<f64>()) {
            sum += p * q;
            abs += (p * q).abs();
        }
    }
    (sum, abs)
}

fn compare(
    got: &[Tensor],
    expected: &[Tensor],
    inputs: &[Tensor],
    mode: Mode,
    order: usize,
    tol: Option<Tolerance>,
) -> Result<(), GradCheckError> {
    let tol = tol.unwrap_or_else(|| default_tolerance(inputs, got));
    let mut worst: Option<(f64, GradCheckError)> = None;
    for (leaf, (g, e)) in got.iter().zip(expected).enumerate() {
        if !g.dtype().is_float() {
            continue;
        }
        let shape = g.shape().to_vec();
        for (i, (a, b)) in g.to_vec::<f64>().into_iter().zip(e.to_vec::<f64>()).enumerate() {
            let allowed = tol.atol + tol.rtol * b.abs();
            let both_nan = a.is_nan() && b.is_nan();
            let same_inf = a.is_infinite() && a == b;
            let ratio = if both_nan || same_inf { 0.0 } else { (a - b).abs() / allowed };
            let ratio = if ratio.is_nan() { f64::INFINITY } else { ratio };
            if ratio > 1.0 && worst.as_ref().is_none_or(|(r, _)| ratio > *r) {
                let index = unravel(i, &shape);
                worst =
                    Some((ratio, GradCheckError { mode, order, leaf, index, got: a, expected: b, tolerance: allowed }));
            }
        }
    }
    match worst {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// The multi-index of flat index `i` in `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d].max(1);
        i /= shape[d].max(1);
    }
    idx
}
