//! ferrax against values JAX computed, at the corners: NaN, overflow, type
//! promotion, out-of-range indices, kinks, the newer operations and size-0
//! shapes.
//!
//! Each case names the JAX snippet that produced its expected values, run by
//! `tests/jax_reference.py` (JAX 0.10.2 on CPU, `jax_enable_x64`, with
//! `import jax, jax.numpy as jnp, jax.scipy.special as jss; from jax import lax`);
//! rerun that script to regenerate them. ferrax's result must have JAX's
//! shape and dtype, and values within the case's tolerance of JAX's (NaN
//! matches NaN, infinities match exactly). Where JAX's own value is a rounding
//! or two off the exact one, JAX is still the reference and the tolerance says
//! so. Left out: reductions of an empty axis without an identity (JAX raises;
//! ferrax's `max` gives -inf, and `argmax` panics as checked below) and
//! `jnp.split` at indices past the end (JAX raises; ferrax clamps, as numpy).

// The expected values are JAX's literals; some are within an ulp of π/2, ln 2, e, ….
#![allow(clippy::approx_constant)]

#[path = "../common/mod.rs"]
mod common;

use common::{assert_slices_close, panic_message};
use ferrax::prelude::DType::{F32, F64, I64};
use ferrax::prelude::*;

/// Exact: integers, selections, sorting and indexing, single correctly rounded
/// operations, infinities and NaN.
const EXACT: f64 = 0.0;
/// f64 elementary and special functions: implementations differ by a few ulps
/// (1e-15 is about 4.5 ulps of 1).
const ULPS: f64 = 1e-15;
/// f32 results compared in f64: about 8 ulps of f32 (its epsilon is 1.2e-7).
const ULPS_F32: f64 = 1e-6;

/// One row of the table.
struct Case {
    name: &'static str,
    /// ferrax's computation.
    got: fn() -> Tensor,
    /// JAX's result: shape, dtype and elements in row-major order.
    shape: &'static [usize],
    dtype: DType,
    want: &'static [f64],
    /// Allowed difference, relative to `1 + |want|` (see `assert_slices_close`).
    tol: f64,
}

impl Case {
    fn check(&self) -> Result<(), String> {
        let got = catch(self.got)?;
        if got.shape() != self.shape {
            return Err(format!("shape {:?}, JAX {:?}", got.shape(), self.shape));
        }
        if got.dtype() != self.dtype {
            return Err(format!("dtype {:?}, JAX {:?}", got.dtype(), self.dtype));
        }
        catch(|| assert_slices_close(&got.to_vec::<f64>(), self.want, self.tol))
    }
}

/// Runs `f`, turning a panic into its message.
fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// Checks every case, then fails once, naming each case that differs.
fn run(cases: &[Case]) {
    let failures: Vec<String> =
        cases.iter().filter_map(|c| c.check().err().map(|e| format!("{}: {e}", c.name))).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from JAX:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn s(x: f64) -> Tensor {
    Tensor::scalar(x)
}

fn v(xs: &[f64]) -> Tensor {
    Tensor::from_vec(xs.to_vec(), &[xs.len()])
}

fn v32(xs: &[f32]) -> Tensor {
    Tensor::from_vec(xs.to_vec(), &[xs.len()])
}

fn vi(xs: &[i64]) -> Tensor {
    Tensor::from_vec(xs.to_vec(), &[xs.len()])
}

fn vb(xs: &[bool]) -> Tensor {
    Tensor::from_vec(xs.to_vec(), &[xs.len()])
}

fn mat<const C: usize>(rows: &[[f64; C]]) -> Tensor {
    Tensor::from_vec(rows.concat(), &[rows.len(), C])
}

fn mati<const C: usize>(rows: &[[i64; C]]) -> Tensor {
    Tensor::from_vec(rows.concat(), &[rows.len(), C])
}

fn zeros(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, F64)
}

/// `jnp.arange(n, dtype=float).reshape(shape)`.
fn ar(shape: &[usize]) -> Tensor {
    Tensor::arange(shape.iter().product(), F64).reshape(shape)
}

/// `jnp.stack(jax.grad(f, (0, 1))(a, b))`.
fn grad2(f: fn(&Tensor, &Tensor) -> Tensor, a: f64, b: f64) -> Tensor {
    let (da, db) = grad(|p: &(Tensor, Tensor)| f(&p.0, &p.1))(&(s(a), s(b)));
    Tensor::stack(&[da, db], 0)
}

/// `jax.grad(lambda x: f(x).sum())(x)`.
fn grad_sum(f: fn(&Tensor) -> Tensor, x: Tensor) -> Tensor {
    grad(|x: &Tensor| f(x).sum())(&x)
}

/// The lengths of `parts` along axis 0, as i64.
fn lengths(parts: &[Tensor]) -> Tensor {
    Tensor::from_vec(parts.iter().map(|p| p.shape()[0] as i64).collect(), &[parts.len()])
}

mod empty_shapes;
mod indices;
mod kinks;
mod nan;
mod new_operations;
mod new_shapes;
mod overflow;
mod promotion;
