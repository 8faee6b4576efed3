//! Numerical differentiation by central differences, and `check_grads`,
//! which compares automatic derivatives against it.
//!
//! A central difference `(f(x + h v) - f(x - h v)) / 2h` has truncation
//! error about `h² |f'''| / 6` and round-off error about `ε |f| / h`; the two
//! balance at `h ≈ ε^(1/3)` (relative to the size of `x`). That is the
//! default step: about 6e-6 for f64 and 5e-3 for f32.

mod check;

pub use check::{check_grads, check_grads_with, GradCheckError, Mode, Tolerance};

use crate::array::{Array, DType, Rng};
use crate::core::Tensor;
use crate::tree::Tree;

/// The default central-difference step for inputs of `dtype` whose largest
/// magnitude is `scale`: `ε^(1/3) · max(1, scale)`.
pub fn default_step(dtype: DType, scale: f64) -> f64 {
    let eps = match dtype {
        DType::F32 => f32::EPSILON as f64,
        _ => f64::EPSILON,
    };
    eps.cbrt() * scale.max(1.0)
}

/// The step [`numerical_jvp`] uses at `x`: by the narrowest float dtype
/// among the leaves and the largest magnitude.
fn step_for(xs: &[Tensor]) -> f64 {
    let dtype = if xs.iter().any(|x| x.dtype() == DType::F32) { DType::F32 } else { DType::F64 };
    let scale = xs.iter().filter(|x| x.dtype().is_float()).flat_map(|x| x.to_vec::<f64>()).fold(0.0f64, |m, v| {
        if v.is_finite() {
            m.max(v.abs())
        } else {
            m
        }
    });
    default_step(dtype, scale)
}

/// `x + s v` leafwise (integer leaves unchanged).
fn axpy(x: &[Tensor], s: f64, v: &[Tensor]) -> Vec<Tensor> {
    x.iter().zip(v).map(|(x, v)| if x.dtype().is_float() { x + &(v * s) } else { x.clone() }).collect()
}

/// The central difference `(f(x + h v) - f(x - h v)) / 2h` with the default
/// step, with the structure of `f`'s output (float leaves in f64 arithmetic,
/// cast back to each output's dtype).
///
/// ```
/// # use ferrax::prelude::*;
/// let d = numerical_jvp(|x: &Tensor| x.exp(), &Tensor::scalar(0.0), &Tensor::scalar(1.0));
/// assert!((d.item() - 1.0).abs() < 1e-9);
/// ```
pub fn numerical_jvp<I: Tree, O: Tree>(f: impl Fn(&I) -> O, x: &I, v: &I) -> O {
    let h = step_for(&x.leaves());
    numerical_jvp_with_step(f, x, v, h)
}

/// [`numerical_jvp`] with an explicit step `h`.
pub fn numerical_jvp_with_step<I: Tree, O: Tree>(f: impl Fn(&I) -> O, x: &I, v: &I, h: f64) -> O {
    let (xs, vs) = (x.leaves(), v.leaves());
    let plus = f(&x.with_leaves(axpy(&xs, h, &vs)));
    let minus = f(&x.with_leaves(axpy(&xs, -h, &vs)));
    let diffs = plus
        .leaves()
        .iter()
        .zip(minus.leaves())
        .map(|(p, m)| {
            let (pa, ma) = (p.to_array(), m.to_array());
            let d: Vec<f64> =
                pa.to_vec::<f64>().iter().zip(ma.to_vec::<f64>()).map(|(a, b)| (a - b) / (2.0 * h)).collect();
            let dtype = if p.dtype().is_float() { p.dtype() } else { DType::F64 };
            Tensor::from_array(Array::from_vec(d, p.shape()).to_dtype(dtype))
        })
        .collect();
    plus.with_leaves(diffs)
}

/// The gradient of a scalar function by central differences, one element at a time.
///
/// # Panics
/// When `f` does not return a single element.
pub fn numerical_grad(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    let j = numerical_jacobian(f, x);
    j.reshape(x.shape())
}

/// The Jacobian `J[i.., j..] = ∂f(x)[i..] / ∂x[j..]` by central differences:
/// shape `f(x).shape ++ x.shape`.
pub fn numerical_jacobian(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    let n = x.size();
    let h = step_for(std::slice::from_ref(x));
    let mut cols: Vec<Vec<f64>> = Vec::with_capacity(n);
    let mut out_shape = None;
    for j in 0..n {
        let e = Tensor::from_array(Array::from_f64_fn(x.shape(), x.dtype(), |i| if i == j { 1.0 } else { 0.0 }));
        let d = numerical_jvp_with_step(&f, x, &e, h);
        out_shape.get_or_insert_with(|| d.shape().to_vec());
        cols.push(d.to_vec::<f64>());
    }
    let out_shape = out_shape.unwrap_or_else(|| f(x).shape().to_vec());
    let m: usize = out_shape.iter().product();
    let mut data = vec![0.0; m * n];
    for (j, col) in cols.iter().enumerate() {
        for (i, &v) in col.iter().enumerate() {
            data[i * n + j] = v;
        }
    }
    let shape: Vec<usize> = out_shape.iter().chain(x.shape()).copied().collect();
    let dtype = if x.dtype().is_float() { x.dtype() } else { DType::F64 };
    Tensor::from_array(Array::from_vec(data, &shape).to_dtype(dtype))
}

/// Random normal directions with the structure of `x` (zeros for integer leaves).
pub(crate) fn random_like<I: Tree>(x: &I, rng: &mut Rng) -> I {
    x.map_leaves(|l| {
        if l.dtype().is_float() {
            Tensor::from_array(Array::from_f64_fn(l.shape(), l.dtype(), |_| rng.normal()))
        } else {
            l.zeros_like()
        }
    })
}
