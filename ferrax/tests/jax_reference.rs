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

/// NaN in, NaN out — and JAX's derivatives there.
#[test]
fn nan() {
    run(&[
        // JAX: jax.nn.relu(jnp.array([jnp.nan, -1.0, 0.0, 2.0]))
        Case {
            name: "relu_nan",
            got: || v(&[f64::NAN, -1.0, 0.0, 2.0]).relu(),
            shape: &[4],
            dtype: F64,
            want: &[f64::NAN, 0.0, 0.0, 2.0],
            tol: EXACT,
        },
        // JAX: jax.grad(jax.nn.relu)(jnp.nan)
        Case {
            name: "grad_relu_nan",
            got: || grad(|x: &Tensor| x.relu())(&s(f64::NAN)),
            shape: &[],
            dtype: F64,
            want: &[0.0],
            tol: EXACT,
        },
        // JAX: jnp.stack(jax.grad(jnp.maximum, (0, 1))(jnp.nan, 1.0))
        Case {
            name: "grad_maximum_nan_first",
            got: || grad2(|a, b| a.maximum(b), f64::NAN, 1.0),
            shape: &[2],
            dtype: F64,
            want: &[0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jnp.stack(jax.grad(jnp.maximum, (0, 1))(1.0, jnp.nan))
        Case {
            name: "grad_maximum_nan_second",
            got: || grad2(|a, b| a.maximum(b), 1.0, f64::NAN),
            shape: &[2],
            dtype: F64,
            want: &[0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jnp.stack(jax.grad(jnp.minimum, (0, 1))(jnp.nan, 1.0))
        Case {
            name: "grad_minimum_nan_first",
            got: || grad2(|a, b| a.minimum(b), f64::NAN, 1.0),
            shape: &[2],
            dtype: F64,
            want: &[0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jnp.stack(jax.grad(jnp.minimum, (0, 1))(1.0, jnp.nan))
        Case {
            name: "grad_minimum_nan_second",
            got: || grad2(|a, b| a.minimum(b), 1.0, f64::NAN),
            shape: &[2],
            dtype: F64,
            want: &[0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jax.grad(jnp.abs)(jnp.nan)
        // JAX's rule is select(x >= 0, 1, -1), so NaN gets -1.
        Case {
            name: "grad_abs_nan",
            got: || grad(|x: &Tensor| x.abs())(&s(f64::NAN)),
            shape: &[],
            dtype: F64,
            want: &[-1.0],
            tol: EXACT,
        },
        // JAX: jnp.max(jnp.array([1.0, jnp.nan, 3.0]))
        Case {
            name: "max_nan",
            got: || v(&[1.0, f64::NAN, 3.0]).max(),
            shape: &[],
            dtype: F64,
            want: &[f64::NAN],
            tol: EXACT,
        },
        // JAX: jnp.min(jnp.array([1.0, jnp.nan, -3.0]))
        Case {
            name: "min_nan",
            got: || v(&[1.0, f64::NAN, -3.0]).min(),
            shape: &[],
            dtype: F64,
            want: &[f64::NAN],
            tol: EXACT,
        },
        // JAX: jnp.max(jnp.array([[1.0, jnp.nan], [2.0, 3.0]]), axis=1)
        Case {
            name: "max_axes_nan",
            got: || mat(&[[1.0, f64::NAN], [2.0, 3.0]]).max_axes(&[1], false),
            shape: &[2],
            dtype: F64,
            want: &[f64::NAN, 3.0],
            tol: EXACT,
        },
        // JAX: jnp.min(jnp.array([[1.0, jnp.nan], [2.0, 3.0]]), axis=0)
        Case {
            name: "min_axes_nan",
            got: || mat(&[[1.0, f64::NAN], [2.0, 3.0]]).min_axes(&[0], false),
            shape: &[2],
            dtype: F64,
            want: &[1.0, f64::NAN],
            tol: EXACT,
        },
        // JAX: jnp.argmax(jnp.array([1.0, jnp.nan, 3.0, jnp.nan]))
        Case {
            name: "argmax_nan",
            got: || v(&[1.0, f64::NAN, 3.0, f64::NAN]).argmax(0),
            shape: &[],
            dtype: I64,
            want: &[1.0],
            tol: EXACT,
        },
        // JAX: jnp.argmin(jnp.array([1.0, -jnp.inf, jnp.nan, jnp.nan]))
        Case {
            name: "argmin_nan",
            got: || v(&[1.0, f64::NEG_INFINITY, f64::NAN, f64::NAN]).argmin(0),
            shape: &[],
            dtype: I64,
            want: &[2.0],
            tol: EXACT,
        },
        // JAX: jnp.sort(jnp.array([3.0, jnp.nan, -jnp.inf, 1.0, jnp.nan, 0.0]))
        Case {
            name: "sort_nan",
            got: || v(&[3.0, f64::NAN, f64::NEG_INFINITY, 1.0, f64::NAN, 0.0]).sort(0),
            shape: &[6],
            dtype: F64,
            want: &[f64::NEG_INFINITY, 0.0, 1.0, 3.0, f64::NAN, f64::NAN],
            tol: EXACT,
        },
        // JAX: jnp.argsort(jnp.array([3.0, jnp.nan, -jnp.inf, 1.0, jnp.nan, 0.0]))
        Case {
            name: "argsort_nan",
            got: || v(&[3.0, f64::NAN, f64::NEG_INFINITY, 1.0, f64::NAN, 0.0]).argsort(0),
            shape: &[6],
            dtype: I64,
            want: &[2.0, 5.0, 3.0, 0.0, 1.0, 4.0],
            tol: EXACT,
        },
        // JAX: lax.cummax(jnp.array([3.0, 1.0, jnp.nan, 4.0]), axis=0)
        Case {
            name: "cummax_nan",
            got: || v(&[3.0, 1.0, f64::NAN, 4.0]).cummax(0),
            shape: &[4],
            dtype: F64,
            want: &[3.0, 3.0, f64::NAN, f64::NAN],
            tol: EXACT,
        },
        // JAX: lax.cummin(jnp.array([3.0, 1.0, 2.0, jnp.nan, 0.0]), axis=0)
        Case {
            name: "cummin_nan",
            got: || v(&[3.0, 1.0, 2.0, f64::NAN, 0.0]).cummin(0),
            shape: &[5],
            dtype: F64,
            want: &[3.0, 1.0, 1.0, f64::NAN, f64::NAN],
            tol: EXACT,
        },
        // JAX: jnp.clip(jnp.array([jnp.nan, -5.0, 5.0, 0.5]), -1.0, 1.0)
        Case {
            name: "clip_nan",
            got: || v(&[f64::NAN, -5.0, 5.0, 0.5]).clamp(-1.0, 1.0),
            shape: &[4],
            dtype: F64,
            want: &[f64::NAN, -1.0, 1.0, 0.5],
            tol: EXACT,
        },
        // JAX: jnp.clip(jnp.array([0.5, 0.5]), jnp.array([jnp.nan, 0.0]), jnp.array([1.0, jnp.nan]))
        Case {
            name: "clip_nan_bounds",
            got: || v(&[0.5, 0.5]).clip(&v(&[f64::NAN, 0.0]), &v(&[1.0, f64::NAN])),
            shape: &[2],
            dtype: F64,
            want: &[f64::NAN, f64::NAN],
            tol: EXACT,
        },
        // JAX: jax.grad(lambda x: jnp.clip(x, -1.0, 1.0))(jnp.nan)
        Case {
            name: "grad_clip_nan",
            got: || grad(|x: &Tensor| x.clamp(-1.0, 1.0))(&s(f64::NAN)),
            shape: &[],
            dtype: F64,
            want: &[0.0],
            tol: EXACT,
        },
        // JAX: jax.nn.softplus(jnp.array([jnp.nan, -jnp.inf, jnp.inf]))
        Case {
            name: "softplus_nan",
            got: || v(&[f64::NAN, f64::NEG_INFINITY, f64::INFINITY]).softplus(),
            shape: &[3],
            dtype: F64,
            want: &[f64::NAN, 0.0, f64::INFINITY],
            tol: EXACT,
        },
        // JAX: jax.nn.sigmoid(jnp.array([jnp.nan, -jnp.inf, jnp.inf]))
        Case {
            name: "sigmoid_nan",
            got: || v(&[f64::NAN, f64::NEG_INFINITY, f64::INFINITY]).sigmoid(),
            shape: &[3],
            dtype: F64,
            want: &[f64::NAN, 0.0, 1.0],
            tol: EXACT,
        },
        // JAX: jnp.logaddexp(jnp.array([jnp.nan, 1.0, jnp.nan, jnp.nan]), jnp.array([1.0, jnp.nan, jnp.inf, -jnp.inf]))
        Case {
            name: "logaddexp_nan",
            got: || {
                let a = v(&[f64::NAN, 1.0, f64::NAN, f64::NAN]);
                a.logaddexp(&v(&[1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY]))
            },
            shape: &[4],
            dtype: F64,
            want: &[f64::NAN, f64::NAN, f64::NAN, f64::NAN],
            tol: EXACT,
        },
        // JAX: jax.grad(jax.nn.softplus)(jnp.nan)
        Case {
            name: "grad_softplus_nan",
            got: || grad(|x: &Tensor| x.softplus())(&s(f64::NAN)),
            shape: &[],
            dtype: F64,
            want: &[f64::NAN],
            tol: EXACT,
        },
        // JAX: jax.grad(jax.nn.sigmoid)(jnp.nan)
        Case {
            name: "grad_sigmoid_nan",
            got: || grad(|x: &Tensor| x.sigmoid())(&s(f64::NAN)),
            shape: &[],
            dtype: F64,
            want: &[f64::NAN],
            tol: EXACT,
        },
        // JAX: jnp.stack(jax.grad(jnp.logaddexp, (0, 1))(jnp.nan, 1.0))
        Case {
            name: "grad_logaddexp_nan",
            got: || grad2(|a, b| a.logaddexp(b), f64::NAN, 1.0),
            shape: &[2],
            dtype: F64,
            want: &[f64::NAN, f64::NAN],
            tol: EXACT,
        },
        // JAX: jax.nn.softmax(jnp.array([[-jnp.inf, 0.0, 0.0], [-jnp.inf, -jnp.inf, -jnp.inf]]), axis=1)
        Case {
            name: "softmax_neg_inf",
            got: || mat(&[[f64::NEG_INFINITY, 0.0, 0.0], [f64::NEG_INFINITY; 3]]).softmax(1),
            shape: &[2, 3],
            dtype: F64,
            want: &[0.0, 0.5, 0.5, f64::NAN, f64::NAN, f64::NAN],
            tol: EXACT,
        },
        // JAX: jax.nn.logsumexp(jnp.array([[-jnp.inf, -jnp.inf], [jnp.inf, 1.0], [jnp.inf, jnp.inf], [jnp.nan,
        //     jnp.inf]]), axis=1)
        Case {
            name: "logsumexp_infs",
            got: || {
                let rows = [
                    [f64::NEG_INFINITY, f64::NEG_INFINITY],
                    [f64::INFINITY, 1.0],
                    [f64::INFINITY, f64::INFINITY],
                    [f64::NAN, f64::INFINITY],
                ];
                mat(&rows).logsumexp_axes(&[1], false)
            },
            shape: &[4],
            dtype: F64,
            want: &[f64::NEG_INFINITY, f64::INFINITY, f64::INFINITY, f64::NAN],
            tol: EXACT,
        },
    ]);
}

/// Results that are finite (or 0, or 1) although a naive formula overflows.
#[test]
fn overflow() {
    run(&[
        // JAX: jnp.sinh(jnp.array([709.9, -709.9, 710.0, -710.0, 710.4, -710.4, 711.0]))
        // XLA computes e^(|x| + ln(1/2)): rounding that sum near 710 (an ulp is 1.1e-13) leaves JAX about 5.5e-14 from
        // the exact value, hence 1e-13.
        Case {
            name: "sinh_f64",
            got: || v(&[709.9, -709.9, 710.0, -710.0, 710.4, -710.4, 711.0]).sinh(),
            shape: &[7],
            dtype: F64,
            want: &[
                1.0107010280598375e308,
                -1.0107010280598375e308,
                1.116997383080917e308,
                -1.116997383080917e308,
                1.6663642832807412e308,
                -1.6663642832807412e308,
                f64::INFINITY,
            ],
            tol: 1e-13,
        },
        // JAX: jnp.cosh(jnp.array([709.9, -709.9, 710.0, -710.0, 710.4, -710.4, 711.0]))
        // The tolerance of sinh_f64, for the same reason.
        Case {
            name: "cosh_f64",
            got: || v(&[709.9, -709.9, 710.0, -710.0, 710.4, -710.4, 711.0]).cosh(),
            shape: &[7],
            dtype: F64,
            want: &[
                1.0107010280598375e308,
                1.0107010280598375e308,
                1.116997383080917e308,
                1.116997383080917e308,
                1.6663642832807412e308,
                1.6663642832807412e308,
                f64::INFINITY,
            ],
            tol: 1e-13,
        },
        // JAX: jax.grad(lambda x: jnp.cosh(x).sum())(jnp.array([-710.0, 710.0]))
        // The tolerance of sinh_f64, for the same reason.
        Case {
            name: "grad_cosh_710",
            got: || grad_sum(|x| x.cosh(), v(&[-710.0, 710.0])),
            shape: &[2],
            dtype: F64,
            want: &[-1.116997383080917e308, 1.116997383080917e308],
            tol: 1e-13,
        },
        // JAX: jnp.sinh(jnp.array([89.0, -89.0, 89.4, 89.5], dtype=jnp.float32)) gives 2.2448096e38 and
        // 3.3488668e38: it computes e^(|x| + ln ½) in f32, 1.4e-6 (about 15 ulps) above the true values.
        // ferrax gives the correctly rounded ones, from mpmath at 200 bits:
        // [float(np.float32(mpmath.sinh(x))) for x in (89.0, 89.4)] (89.4 as the f32 nearest it).
        Case {
            name: "sinh_f32",
            got: || v32(&[89.0, -89.0, 89.4, 89.5]).sinh(),
            shape: &[4],
            dtype: F32,
            want: &[2.2448063889081578e38, -2.2448063889081578e38, 3.3488627241070614e38, f64::INFINITY],
            tol: EXACT,
        },
        // JAX: jnp.cosh of the same, with the same 1.4e-6 excess; correctly rounded here, as sinh.
        Case {
            name: "cosh_f32",
            got: || v32(&[89.0, -89.0, 89.4, 89.5]).cosh(),
            shape: &[4],
            dtype: F32,
            want: &[2.2448063889081578e38, 2.2448063889081578e38, 3.3488627241070614e38, f64::INFINITY],
            tol: EXACT,
        },
        // JAX: jax.nn.softplus(jnp.array([-800.0, 800.0]))
        Case {
            name: "softplus_800",
            got: || v(&[-800.0, 800.0]).softplus(),
            shape: &[2],
            dtype: F64,
            want: &[0.0, 800.0],
            tol: ULPS,
        },
        // JAX: jax.grad(lambda x: jax.nn.softplus(x).sum())(jnp.array([-800.0, 800.0]))
        Case {
            name: "grad_softplus_800",
            got: || grad_sum(|x| x.softplus(), v(&[-800.0, 800.0])),
            shape: &[2],
            dtype: F64,
            want: &[0.0, 1.0],
            tol: ULPS,
        },
        // JAX: jax.nn.log_sigmoid(jnp.array([-800.0, 800.0]))
        Case {
            name: "log_sigmoid_800",
            got: || v(&[-800.0, 800.0]).log_sigmoid(),
            shape: &[2],
            dtype: F64,
            want: &[-800.0, -0.0],
            tol: ULPS,
        },
        // JAX: jax.grad(lambda x: jax.nn.log_sigmoid(x).sum())(jnp.array([-800.0, 800.0]))
        Case {
            name: "grad_log_sigmoid_800",
            got: || grad_sum(|x| x.log_sigmoid(), v(&[-800.0, 800.0])),
            shape: &[2],
            dtype: F64,
            want: &[1.0, 0.0],
            tol: ULPS,
        },
        // JAX: jax.nn.sigmoid(jnp.array([-800.0, 800.0]))
        Case {
            name: "sigmoid_800",
            got: || v(&[-800.0, 800.0]).sigmoid(),
            shape: &[2],
            dtype: F64,
            want: &[0.0, 1.0],
            tol: ULPS,
        },
        // JAX: jax.grad(lambda x: jax.nn.sigmoid(x).sum())(jnp.array([-800.0, 800.0]))
        Case {
            name: "grad_sigmoid_800",
            got: || grad_sum(|x| x.sigmoid(), v(&[-800.0, 800.0])),
            shape: &[2],
            dtype: F64,
            want: &[0.0, 0.0],
            tol: ULPS,
        },
        // JAX: jax.grad(lambda x: jnp.tanh(x).sum())(jnp.array([-800.0, 800.0]))
        Case {
            name: "grad_tanh_800",
            got: || grad_sum(|x| x.tanh(), v(&[-800.0, 800.0])),
            shape: &[2],
            dtype: F64,
            want: &[0.0, 0.0],
            tol: ULPS,
        },
        // JAX: jax.nn.logsumexp(jnp.array([[800.0, 800.0], [-800.0, -800.0]]), axis=1)
        Case {
            name: "logsumexp_800",
            got: || mat(&[[800.0, 800.0], [-800.0, -800.0]]).logsumexp_axes(&[1], false),
            shape: &[2],
            dtype: F64,
            want: &[800.6931471805599, -799.3068528194401],
            tol: ULPS,
        },
        // JAX: jax.grad(lambda x: jax.nn.logsumexp(x, axis=1).sum())(jnp.array([[800.0, 800.0], [-800.0, -800.0]]))
        Case {
            name: "grad_logsumexp_800",
            got: || grad_sum(|x| x.logsumexp_axes(&[1], false), mat(&[[800.0, 800.0], [-800.0, -800.0]])),
            shape: &[2, 2],
            dtype: F64,
            want: &[0.5, 0.5, 0.5, 0.5],
            tol: ULPS,
        },
        // JAX: jax.nn.log_softmax(jnp.array([800.0, -800.0, 0.0]))
        Case {
            name: "log_softmax_800",
            got: || v(&[800.0, -800.0, 0.0]).log_softmax(0),
            shape: &[3],
            dtype: F64,
            want: &[0.0, -1600.0, -800.0],
            tol: ULPS,
        },
        // JAX: jax.grad(lambda x: jax.nn.log_softmax(x)[0])(jnp.array([800.0, -800.0, 0.0]))
        Case {
            name: "grad_log_softmax_800",
            got: || grad(|x: &Tensor| x.log_softmax(0).slice(0, 0, 1).sum())(&v(&[800.0, -800.0, 0.0])),
            shape: &[3],
            dtype: F64,
            want: &[0.0, 0.0, 0.0],
            tol: ULPS,
        },
        // JAX: jax.nn.softmax(jnp.array([800.0, -800.0, 0.0]))
        Case {
            name: "softmax_800",
            got: || v(&[800.0, -800.0, 0.0]).softmax(0),
            shape: &[3],
            dtype: F64,
            want: &[1.0, 0.0, 0.0],
            tol: ULPS,
        },
        // JAX: jnp.exp(jnp.array([88.7, 89.0, 104.0, -104.0], dtype=jnp.float32))
        Case {
            name: "exp_f32",
            got: || v32(&[88.7, 89.0, 104.0, -104.0]).exp(),
            shape: &[4],
            dtype: F32,
            want: &[3.325976053110301e38, f64::INFINITY, f64::INFINITY, 0.0],
            tol: ULPS_F32,
        },
        // JAX: jax.nn.softplus(jnp.array([88.7, 89.0, 104.0, -104.0], dtype=jnp.float32))
        Case {
            name: "softplus_f32",
            got: || v32(&[88.7, 89.0, 104.0, -104.0]).softplus(),
            shape: &[4],
            dtype: F32,
            want: &[88.69999694824219, 89.0, 104.0, 0.0],
            tol: ULPS_F32,
        },
        // JAX: jax.grad(lambda x: jax.nn.softplus(x).sum())(jnp.array([89.0, -104.0], dtype=jnp.float32))
        Case {
            name: "grad_softplus_f32",
            got: || grad_sum(|x| x.softplus(), v32(&[89.0, -104.0])),
            shape: &[2],
            dtype: F32,
            want: &[1.0, 0.0],
            tol: ULPS_F32,
        },
        // JAX: jax.nn.sigmoid(jnp.array([88.7, 89.0, 104.0, -104.0], dtype=jnp.float32))
        Case {
            name: "sigmoid_f32",
            got: || v32(&[88.7, 89.0, 104.0, -104.0]).sigmoid(),
            shape: &[4],
            dtype: F32,
            want: &[1.0, 1.0, 1.0, 0.0],
            tol: ULPS_F32,
        },
        // JAX: jax.nn.log_sigmoid(jnp.array([88.7, 89.0, 104.0, -104.0], dtype=jnp.float32))
        // The exact values at 88.7 and 89 are about -3e-39, below f32's normal range; JAX gives -0.
        Case {
            name: "log_sigmoid_f32",
            got: || v32(&[88.7, 89.0, 104.0, -104.0]).log_sigmoid(),
            shape: &[4],
            dtype: F32,
            want: &[-0.0, -0.0, -0.0, -104.0],
            tol: ULPS_F32,
        },
        // JAX: jax.nn.logsumexp(jnp.array([[88.7, 89.0], [104.0, 104.0], [-104.0, -104.0]], dtype=jnp.float32), axis=1)
        Case {
            name: "logsumexp_f32",
            got: || mat(&[[88.7, 89.0], [104.0, 104.0], [-104.0, -104.0]]).to_dtype(F32).logsumexp_axes(&[1], false),
            shape: &[3],
            dtype: F32,
            want: &[89.55435180664062, 104.69314575195312, -103.30685424804688],
            tol: ULPS_F32,
        },
        // JAX: jnp.logaddexp(jnp.array([jnp.inf, -jnp.inf, jnp.inf, 800.0, -800.0, 1000.0]), jnp.array([1.0, 1.0,
        //     -jnp.inf, 800.0, -800.0, -1000.0]))
        Case {
            name: "logaddexp_large",
            got: || {
                let a = v(&[f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, 800.0, -800.0, 1000.0]);
                a.logaddexp(&v(&[1.0, 1.0, f64::NEG_INFINITY, 800.0, -800.0, -1000.0]))
            },
            shape: &[6],
            dtype: F64,
            want: &[f64::INFINITY, 1.0, f64::INFINITY, 800.6931471805599, -799.3068528194401, 1000.0],
            tol: ULPS,
        },
        // JAX: jnp.stack(jax.grad(jnp.logaddexp, (0, 1))(800.0, -800.0))
        Case {
            name: "grad_logaddexp_large",
            got: || grad2(|a, b| a.logaddexp(b), 800.0, -800.0),
            shape: &[2],
            dtype: F64,
            want: &[1.0, 0.0],
            tol: ULPS,
        },
        // JAX: jnp.stack(jax.grad(jnp.logaddexp, (0, 1))(jnp.inf, 1.0)) gives [1, e]: its rule replaces
        // the infinite output by 0 before exp(b - out). A deliberate difference: ferrax gives the
        // derivative, 0 (logaddexp(inf, b) does not depend on b).
        Case {
            name: "grad_logaddexp_inf",
            got: || grad2(|a, b| a.logaddexp(b), f64::INFINITY, 1.0),
            shape: &[2],
            dtype: F64,
            want: &[1.0, 0.0],
            tol: ULPS,
        },
    ]);
}

/// Result dtypes and values of mixed-type arithmetic.
#[test]
fn promotion() {
    run(&[
        // JAX: jnp.array([1.5, -2.0], dtype=jnp.float32) * 2.0
        Case {
            name: "f32_times_weak_float",
            got: || v32(&[1.5, -2.0]) * 2.0,
            shape: &[2],
            dtype: F32,
            want: &[3.0, -4.0],
            tol: EXACT,
        },
        // JAX: jnp.array([1.0], dtype=jnp.float32) + 0.1
        // The weak 0.1 becomes f32 before the sum, so the result is 1.1f32, not 1.1.
        Case {
            name: "f32_plus_weak_float_rounds_in_f32",
            got: || v32(&[1.0]) + 0.1,
            shape: &[1],
            dtype: F32,
            want: &[1.100000023841858],
            tol: EXACT,
        },
        // JAX: jnp.array([3, -4]) * 2.0
        Case {
            name: "i64_times_weak_float",
            got: || vi(&[3, -4]) * 2.0,
            shape: &[2],
            dtype: F64,
            want: &[6.0, -8.0],
            tol: EXACT,
        },
        // JAX: jnp.array([3, -4]) * 2
        Case {
            name: "i64_times_weak_int",
            got: || vi(&[3, -4]) * 2,
            shape: &[2],
            dtype: I64,
            want: &[6.0, -8.0],
            tol: EXACT,
        },
        // JAX: jnp.array([3, -4]) + jnp.array([0.5, 0.25], dtype=jnp.float32)
        Case {
            name: "i64_plus_f32",
            got: || vi(&[3, -4]) + v32(&[0.5, 0.25]),
            shape: &[2],
            dtype: F32,
            want: &[3.5, -3.75],
            tol: EXACT,
        },
        // JAX: jnp.array([True, False]) + 1
        Case {
            name: "bool_plus_weak_int",
            got: || vb(&[true, false]) + 1,
            shape: &[2],
            dtype: I64,
            want: &[2.0, 1.0],
            tol: EXACT,
        },
        // JAX: jnp.array([True, False]) + 1.5
        Case {
            name: "bool_plus_weak_float",
            got: || vb(&[true, false]) + 1.5,
            shape: &[2],
            dtype: F64,
            want: &[2.5, 1.5],
            tol: EXACT,
        },
        // JAX: jnp.array([1.5], dtype=jnp.float32) + jnp.array([0.1])
        Case {
            name: "f32_plus_f64",
            got: || v32(&[1.5]) + v(&[0.1]),
            shape: &[1],
            dtype: F64,
            want: &[1.6],
            tol: EXACT,
        },
        // JAX: jnp.array([7, -7]) / 2
        Case {
            name: "i64_true_div",
            got: || vi(&[7, -7]) / 2,
            shape: &[2],
            dtype: F64,
            want: &[3.5, -3.5],
            tol: EXACT,
        },
        // JAX: jnp.array([1, -1, 0]) / jnp.array([3, 0, 0])
        Case {
            name: "i64_true_div_by_zero",
            got: || vi(&[1, -1, 0]) / vi(&[3, 0, 0]),
            shape: &[3],
            dtype: F64,
            want: &[0.3333333333333333, f64::NEG_INFINITY, f64::NAN],
            tol: EXACT,
        },
        // JAX: jnp.array([7, -7, 7, -7, 0, 5, -5]) // jnp.array([2, 2, -2, -2, 0, 0, 0])
        // By zero: XLA's x / 0 is -1, and floor division subtracts 1 more where the remainder (x) is nonzero.
        Case {
            name: "int_floor_div",
            got: || vi(&[7, -7, 7, -7, 0, 5, -5]).floor_div(&vi(&[2, 2, -2, -2, 0, 0, 0])),
            shape: &[7],
            dtype: I64,
            want: &[3.0, -4.0, -4.0, 3.0, -1.0, -2.0, -2.0],
            tol: EXACT,
        },
        // JAX: jnp.array([jnp.iinfo(jnp.int64).min]) // -1
        // Wraps around to i64::MIN.
        Case {
            name: "int_floor_div_min_by_minus_one",
            got: || vi(&[i64::MIN]).floor_div(&vi(&[-1])),
            shape: &[1],
            dtype: I64,
            want: &[-9.223372036854776e18],
            tol: EXACT,
        },
        // JAX: lax.rem(jnp.array([7, -7, 7, -7, 0, 5, -5]), jnp.array([2, 2, -2, -2, 0, 0, 0]))
        Case {
            name: "int_rem",
            got: || vi(&[7, -7, 7, -7, 0, 5, -5]) % vi(&[2, 2, -2, -2, 0, 0, 0]),
            shape: &[7],
            dtype: I64,
            want: &[1.0, -1.0, 1.0, -1.0, 0.0, 5.0, -5.0],
            tol: EXACT,
        },
        // JAX: lax.rem(jnp.array([jnp.iinfo(jnp.int64).min]), jnp.array([-1]))
        Case {
            name: "int_rem_min_by_minus_one",
            got: || vi(&[i64::MIN]) % vi(&[-1]),
            shape: &[1],
            dtype: I64,
            want: &[0.0],
            tol: EXACT,
        },
        // JAX: jnp.array([1.0, 5.0, -7.5, -5.0, 0.0]) // jnp.array([0.1, 0.0, 2.0, 0.0, 0.0])
        Case {
            name: "float_floor_div",
            got: || v(&[1.0, 5.0, -7.5, -5.0, 0.0]).floor_div(&v(&[0.1, 0.0, 2.0, 0.0, 0.0])),
            shape: &[5],
            dtype: F64,
            want: &[9.0, f64::INFINITY, -4.0, f64::NEG_INFINITY, f64::NAN],
            tol: EXACT,
        },
        // JAX: lax.rem(jnp.array([5.5, -5.5, 5.5, 1.0, 5.0, jnp.inf]), jnp.array([2.0, 2.0, -2.0, 0.1, 0.0, 2.0]))
        Case {
            name: "float_rem",
            got: || v(&[5.5, -5.5, 5.5, 1.0, 5.0, f64::INFINITY]) % v(&[2.0, 2.0, -2.0, 0.1, 0.0, 2.0]),
            shape: &[6],
            dtype: F64,
            want: &[1.5, -1.5, 1.5, 0.09999999999999995, f64::NAN, f64::NAN],
            tol: EXACT,
        },
        // JAX: jnp.sum(jnp.array([True, False, True]))
        Case {
            name: "sum_bool",
            got: || vb(&[true, false, true]).sum(),
            shape: &[],
            dtype: I64,
            want: &[2.0],
            tol: EXACT,
        },
        // JAX: jnp.mean(jnp.array([1, 2, 4]))
        // XLA turns the division by the constant 3 into a product with 1/3: one ulp below 7/3 = 2.3333333333333335.
        Case {
            name: "mean_int",
            got: || vi(&[1, 2, 4]).mean(),
            shape: &[],
            dtype: F64,
            want: &[2.333333333333333],
            tol: ULPS,
        },
        // JAX: jnp.sin(jnp.array([0, 1, 2]))
        Case {
            name: "sin_int",
            got: || vi(&[0, 1, 2]).sin(),
            shape: &[3],
            dtype: F64,
            want: &[0.0, 0.8414709848078965, 0.9092974268256817],
            tol: ULPS,
        },
        // JAX: jax.grad(lambda x: (x * jnp.float64(2.0)).sum())(jnp.array([1.0, 2.0], dtype=jnp.float32))
        // The product is f64; the gradient has the input's dtype, f32.
        Case {
            name: "grad_f32_through_f64",
            got: || grad(|x: &Tensor| (x * &Tensor::scalar(2.0f64)).sum())(&v32(&[1.0, 2.0])),
            shape: &[2],
            dtype: F32,
            want: &[2.0, 2.0],
            tol: EXACT,
        },
    ]);
}

/// Negative and out-of-range indices: eagerly, under grad and under vmap.
#[test]
fn indices() {
    run(&[
        // JAX: jnp.take(jnp.array([10.0, 20.0, 30.0, 40.0, 50.0]), jnp.array([-1, 5, -6, 2]))
        Case {
            name: "take_fill_f64",
            got: || v(&[10.0, 20.0, 30.0, 40.0, 50.0]).index_select(0, &vi(&[-1, 5, -6, 2])),
            shape: &[4],
            dtype: F64,
            want: &[50.0, f64::NAN, f64::NAN, 30.0],
            tol: EXACT,
        },
        // JAX: jnp.take(jnp.array([10, 20, 30, 40, 50]), jnp.array([-1, 5, -6, 2]))
        Case {
            name: "take_fill_i64",
            got: || vi(&[10, 20, 30, 40, 50]).index_select(0, &vi(&[-1, 5, -6, 2])),
            shape: &[4],
            dtype: I64,
            want: &[50.0, -9.223372036854776e18, -9.223372036854776e18, 30.0],
            tol: EXACT,
        },
        // JAX: jnp.take(jnp.array([10.0, 20.0, 30.0, 40.0, 50.0]), jnp.array([4, 5, -1, 2]), mode="clip")
        // ferrax's Clip counts a negative index from the end first (as JAX's x[i] does), so its
        // [-1, 5, -6, 2] are JAX's [4, 5, -1, 2]; jnp.take's own clip mode would clamp -1 to 0.
        Case {
            name: "take_clip",
            got: || v(&[10.0, 20.0, 30.0, 40.0, 50.0]).index_select_with(0, &vi(&[-1, 5, -6, 2]), IndexMode::Clip),
            shape: &[4],
            dtype: F64,
            want: &[50.0, 50.0, 10.0, 30.0],
            tol: EXACT,
        },
        // JAX: jnp.take(jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), jnp.array([2, -4, -3]), axis=1)
        Case {
            name: "take_axis1_fill",
            got: || mat(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).index_select(1, &vi(&[2, -4, -3])),
            shape: &[2, 3],
            dtype: F64,
            want: &[3.0, f64::NAN, 1.0, 6.0, f64::NAN, 4.0],
            tol: EXACT,
        },
        // JAX: jnp.zeros(5).at[jnp.array([-1, 5, -6, 2, 2])].add(1.0)
        Case {
            name: "scatter_add_drops",
            got: || zeros(&[5]).scatter_add(0, &vi(&[-1, 5, -6, 2, 2]), &Tensor::ones(&[5], F64)),
            shape: &[5],
            dtype: F64,
            want: &[0.0, 0.0, 2.0, 0.0, 1.0],
            tol: EXACT,
        },
        // JAX: jax.grad(lambda x: jnp.take(x, jnp.array([-1, 5, -6, 2])).sum())(jnp.array([10.0, 20.0, 30.0, 40.0,
        //     50.0]))
        Case {
            name: "grad_take_fill",
            got: || {
                grad(|x: &Tensor| x.index_select(0, &vi(&[-1, 5, -6, 2])).sum())(&v(&[10.0, 20.0, 30.0, 40.0, 50.0]))
            },
            shape: &[5],
            dtype: F64,
            want: &[0.0, 0.0, 1.0, 0.0, 1.0],
            tol: EXACT,
        },
        // JAX: jax.grad(lambda x: jnp.take(x, jnp.array([4, 5, -1, 2]), mode="clip").sum())(jnp.array([10.0, 20.0,
        //     30.0, 40.0, 50.0]))  (the indices as above)
        Case {
            name: "grad_take_clip",
            got: || {
                let take = |x: &Tensor| x.index_select_with(0, &vi(&[-1, 5, -6, 2]), IndexMode::Clip).sum();
                grad(take)(&v(&[10.0, 20.0, 30.0, 40.0, 50.0]))
            },
            shape: &[5],
            dtype: F64,
            want: &[1.0, 0.0, 1.0, 0.0, 2.0],
            tol: EXACT,
        },
        // JAX: jnp.take_along_axis(jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), jnp.array([[0, 3], [-1, 1]]), axis=1)
        Case {
            name: "take_along_axis_fill",
            got: || mat(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).take_along_axis(&mati(&[[0, 3], [-1, 1]]), 1),
            shape: &[2, 2],
            dtype: F64,
            want: &[1.0, f64::NAN, 6.0, 5.0],
            tol: EXACT,
        },
        // JAX: jax.grad(lambda x: jnp.take_along_axis(x, jnp.array([[0, 3], [-1, 1]]), axis=1).sum())(jnp.array([[1.0,
        //     2.0, 3.0], [4.0, 5.0, 6.0]]))
        Case {
            name: "grad_take_along_axis_fill",
            got: || {
                let take = |x: &Tensor| x.take_along_axis(&mati(&[[0, 3], [-1, 1]]), 1).sum();
                grad(take)(&mat(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
            },
            shape: &[2, 3],
            dtype: F64,
            want: &[1.0, 0.0, 0.0, 0.0, 1.0, 1.0],
            tol: EXACT,
        },
        // JAX: jax.vmap(jnp.take)(jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), jnp.array([[3, -1, -4], [3, 0, -3]]))
        // Each member reads only its own row: index 3 of row 0 is not row 1's first element.
        Case {
            name: "vmap_take_batched_indices",
            got: || {
                let batch = (mat(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), mati(&[[3, -1, -4], [3, 0, -3]]));
                vmap(|p: &(Tensor, Tensor)| p.0.index_select(0, &p.1))(&batch)
            },
            shape: &[2, 3],
            dtype: F64,
            want: &[f64::NAN, 3.0, f64::NAN, f64::NAN, 4.0, 4.0],
            tol: EXACT,
        },
        // JAX: jax.vmap(lambda x: jnp.take(x, jnp.array([3, -1, -4])))(jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
        Case {
            name: "vmap_take_shared_indices",
            got: || vmap(|x: &Tensor| x.index_select(0, &vi(&[3, -1, -4])))(&mat(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])),
            shape: &[2, 3],
            dtype: F64,
            want: &[f64::NAN, 3.0, f64::NAN, f64::NAN, 6.0, f64::NAN],
            tol: EXACT,
        },
        // JAX: jax.vmap(jnp.take)(jnp.array([[1, 2, 3], [4, 5, 6]]), jnp.array([[3, -1, -4], [3, 0, -3]]))
        Case {
            name: "vmap_take_i64",
            got: || {
                let batch = (mati(&[[1, 2, 3], [4, 5, 6]]), mati(&[[3, -1, -4], [3, 0, -3]]));
                vmap(|p: &(Tensor, Tensor)| p.0.index_select(0, &p.1))(&batch)
            },
            shape: &[2, 3],
            dtype: I64,
            want: &[-9.223372036854776e18, 3.0, -9.223372036854776e18, -9.223372036854776e18, 4.0, 4.0],
            tol: EXACT,
        },
        // JAX: jax.vmap(lambda i: jnp.zeros(3).at[i].add(1.0))(jnp.array([[3, -1], [-4, 0]]))
        // Member 0's index 3 must not land in member 1's row.
        Case {
            name: "vmap_scatter_add_drops",
            got: || {
                vmap(|i: &Tensor| zeros(&[3]).scatter_add(0, i, &Tensor::ones(&[2], F64)))(&mati(&[[3, -1], [-4, 0]]))
            },
            shape: &[2, 3],
            dtype: F64,
            want: &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jax.nn.one_hot(jnp.array([0, 2, -1, 3]), 3)
        // A negative class is a row of zeros, as an out-of-range one: it does not count from the end.
        Case {
            name: "one_hot_out_of_range",
            got: || vi(&[0, 2, -1, 3]).one_hot(3, F64),
            shape: &[4, 3],
            dtype: F64,
            want: &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            tol: EXACT,
        },
    ]);
}

/// Derivatives where the function has a kink, a tie or a zero.
#[test]
fn kinks() {
    run(&[
        // JAX: jnp.stack([jax.grad(jnp.abs)(0.0), jax.grad(jnp.abs)(-0.0)])
        Case {
            name: "grad_abs_zero",
            got: || Tensor::stack(&[0.0, -0.0].map(|at| grad(|x: &Tensor| x.abs())(&s(at))), 0),
            shape: &[2],
            dtype: F64,
            want: &[1.0, 1.0],
            tol: EXACT,
        },
        // JAX: jax.grad(jax.nn.relu)(0.0)
        Case {
            name: "grad_relu_zero",
            got: || grad(|x: &Tensor| x.relu())(&s(0.0)),
            shape: &[],
            dtype: F64,
            want: &[0.0],
            tol: EXACT,
        },
        // JAX: jnp.stack(jax.grad(jnp.maximum, (0, 1))(1.0, 1.0))
        Case {
            name: "grad_maximum_tie",
            got: || grad2(|a, b| a.maximum(b), 1.0, 1.0),
            shape: &[2],
            dtype: F64,
            want: &[0.5, 0.5],
            tol: EXACT,
        },
        // JAX: jnp.stack(jax.grad(jnp.minimum, (0, 1))(1.0, 1.0))
        Case {
            name: "grad_minimum_tie",
            got: || grad2(|a, b| a.minimum(b), 1.0, 1.0),
            shape: &[2],
            dtype: F64,
            want: &[0.5, 0.5],
            tol: EXACT,
        },
        // JAX: jax.grad(jnp.max)(jnp.array([1.0, 3.0, 3.0]))
        Case {
            name: "grad_max_tie",
            got: || grad(|x: &Tensor| x.max())(&v(&[1.0, 3.0, 3.0])),
            shape: &[3],
            dtype: F64,
            want: &[0.0, 0.5, 0.5],
            tol: EXACT,
        },
        // JAX: jax.grad(jnp.min)(jnp.array([-1.0, 3.0, -1.0, -1.0]))
        Case {
            name: "grad_min_tie",
            got: || grad(|x: &Tensor| x.min())(&v(&[-1.0, 3.0, -1.0, -1.0])),
            shape: &[4],
            dtype: F64,
            want: &[0.3333333333333333, 0.0, 0.3333333333333333, 0.3333333333333333],
            tol: ULPS,
        },
        // JAX: jnp.stack(jax.grad(jnp.power, (0, 1))(0.0, 0.0))
        Case {
            name: "grad_power_0_0",
            got: || grad2(|x, y| x.pow(y), 0.0, 0.0),
            shape: &[2],
            dtype: F64,
            want: &[f64::NAN, 0.0],
            tol: ULPS,
        },
        // JAX: jnp.stack(jax.grad(jnp.power, (0, 1))(0.0, 2.0))
        Case {
            name: "grad_power_0_2",
            got: || grad2(|x, y| x.pow(y), 0.0, 2.0),
            shape: &[2],
            dtype: F64,
            want: &[0.0, 0.0],
            tol: ULPS,
        },
        // JAX: jnp.stack(jax.grad(jnp.power, (0, 1))(0.0, 0.5))
        Case {
            name: "grad_power_0_half",
            got: || grad2(|x, y| x.pow(y), 0.0, 0.5),
            shape: &[2],
            dtype: F64,
            want: &[f64::INFINITY, 0.0],
            tol: ULPS,
        },
        // JAX: jnp.stack(jax.grad(jnp.power, (0, 1))(-2.0, 3.0))
        Case {
            name: "grad_power_neg2_3",
            got: || grad2(|x, y| x.pow(y), -2.0, 3.0),
            shape: &[2],
            dtype: F64,
            want: &[12.0, f64::NAN],
            tol: ULPS,
        },
        // JAX: jnp.stack([jax.grad(lambda x: x ** p)(0.0) for p in (0.0, 0.5, 1.0, 2.0)])
        // A float exponent 0 gives 0 · 0^-1 = NaN in JAX (an integer one gives 0, below).
        Case {
            name: "grad_powf_at_zero",
            got: || Tensor::stack(&[0.0, 0.5, 1.0, 2.0].map(|p| grad(move |x: &Tensor| x.powf(p))(&s(0.0))), 0),
            shape: &[4],
            dtype: F64,
            want: &[f64::NAN, f64::INFINITY, 1.0, 0.0],
            tol: ULPS,
        },
        // JAX: jnp.stack([jax.grad(lambda x: x ** n)(0.0) for n in (0, 1, 2, -1)])
        Case {
            name: "grad_powi_at_zero",
            got: || Tensor::stack(&[0, 1, 2, -1].map(|n| grad(move |x: &Tensor| x.powi(n))(&s(0.0))), 0),
            shape: &[4],
            dtype: F64,
            want: &[0.0, 1.0, 0.0, f64::NEG_INFINITY],
            tol: ULPS,
        },
        // JAX: jnp.stack(jax.grad(jnp.arctan2, (0, 1))(0.0, 0.0))
        Case {
            name: "grad_arctan2_origin",
            got: || grad2(|y, x| y.atan2(x), 0.0, 0.0),
            shape: &[2],
            dtype: F64,
            want: &[f64::NAN, f64::NAN],
            tol: EXACT,
        },
        // JAX: jax.grad(jnp.sqrt)(0.0)
        Case {
            name: "grad_sqrt_zero",
            got: || grad(|x: &Tensor| x.sqrt())(&s(0.0)),
            shape: &[],
            dtype: F64,
            want: &[f64::INFINITY],
            tol: EXACT,
        },
        // JAX: jax.grad(lambda x: jnp.where(x > 0.0, jnp.sqrt(x), 0.0))(0.0)
        // The untaken branch's infinite derivative times its zero cotangent is NaN.
        Case {
            name: "grad_where_sqrt_zero",
            got: || grad(|x: &Tensor| x.gt(&s(0.0)).select(&x.sqrt(), &s(0.0)))(&s(0.0)),
            shape: &[],
            dtype: F64,
            want: &[f64::NAN],
            tol: EXACT,
        },
        // JAX: jnp.stack([jax.grad(f)(1.5) for f in (jnp.round, jnp.floor, jnp.ceil, jnp.trunc, jnp.sign)])
        Case {
            name: "grad_step_functions",
            got: || {
                let fs: [fn(&Tensor) -> Tensor; 5] =
                    [Tensor::round, Tensor::floor, Tensor::ceil, Tensor::trunc, Tensor::signum];
                Tensor::stack(&fs.map(|f| grad(f)(&s(1.5))), 0)
            },
            shape: &[5],
            dtype: F64,
            want: &[0.0, 0.0, 0.0, 0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jax.grad(jnp.sign)(0.0)
        Case {
            name: "grad_sign_zero",
            got: || grad(|x: &Tensor| x.signum())(&s(0.0)),
            shape: &[],
            dtype: F64,
            want: &[0.0],
            tol: EXACT,
        },
        // JAX: jax.grad(lambda x: jnp.linalg.vector_norm(x, ord=1))(jnp.array([0.0, 1.0, -2.0]))
        Case {
            name: "grad_norm1_kink",
            got: || grad(|x: &Tensor| x.vector_norm(1.0, &[0], false))(&v(&[0.0, 1.0, -2.0])),
            shape: &[3],
            dtype: F64,
            want: &[1.0, 1.0, -1.0],
            tol: EXACT,
        },
        // JAX: jax.grad(lambda x: jnp.linalg.vector_norm(x, ord=jnp.inf))(jnp.array([2.0, 1.0, -2.0]))
        Case {
            name: "grad_norm_inf_ties",
            got: || grad(|x: &Tensor| x.vector_norm(f64::INFINITY, &[0], false))(&v(&[2.0, 1.0, -2.0])),
            shape: &[3],
            dtype: F64,
            want: &[0.5, 0.0, -0.5],
            tol: EXACT,
        },
        // JAX: jax.grad(lambda x: jnp.linalg.vector_norm(x, ord=-jnp.inf))(jnp.array([1.0, -1.0, 2.0]))
        Case {
            name: "grad_norm_neg_inf_ties",
            got: || grad(|x: &Tensor| x.vector_norm(f64::NEG_INFINITY, &[0], false))(&v(&[1.0, -1.0, 2.0])),
            shape: &[3],
            dtype: F64,
            want: &[0.5, -0.5, 0.0],
            tol: EXACT,
        },
        // JAX: jax.grad(jnp.linalg.norm)(jnp.zeros(3))
        // JAX's value is [nan, nan, nan]. A deliberate difference, so ferrax's value is asserted: its norm has
        // derivative 0 at the zero vector (documented on Tensor::norm).
        Case {
            name: "grad_norm2_zero",
            got: || grad(|x: &Tensor| x.norm())(&zeros(&[3])),
            shape: &[3],
            dtype: F64,
            want: &[0.0, 0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jax.grad(lambda x: jnp.clip(x, -1.0, 1.0).sum())(jnp.array([-1.0, 1.0, 0.0, 2.0, -2.0]))
        Case {
            name: "grad_clip_bounds",
            got: || grad_sum(|x| x.clamp(-1.0, 1.0), v(&[-1.0, 1.0, 0.0, 2.0, -2.0])),
            shape: &[5],
            dtype: F64,
            want: &[0.5, 0.5, 1.0, 0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jax.grad(lambda x: jnp.sort(x)[0])(jnp.array([2.0, 1.0, 1.0]))
        Case {
            name: "grad_sort_ties",
            got: || grad(|x: &Tensor| x.sort(0).slice(0, 0, 1).sum())(&v(&[2.0, 1.0, 1.0])),
            shape: &[3],
            dtype: F64,
            want: &[0.0, 1.0, 0.0],
            tol: EXACT,
        },
        // JAX: jax.grad(lambda x: lax.cummax(x, axis=0).sum())(jnp.array([1.0, 1.0, 1.0, 0.0]))
        // JAX's split of tied running maxima, from the order of its scan; not an even share.
        Case {
            name: "grad_cummax_ties",
            got: || grad_sum(|x| x.cummax(0), v(&[1.0, 1.0, 1.0, 0.0])),
            shape: &[4],
            dtype: F64,
            want: &[2.0, 1.0, 1.0, 0.0],
            tol: EXACT,
        },
        // JAX: jax.grad(lambda x: jnp.cumprod(x).sum())(jnp.array([1.0, 0.0, 2.0, 3.0]))
        Case {
            name: "grad_cumprod_zero",
            got: || grad_sum(|x| x.cumprod(0), v(&[1.0, 0.0, 2.0, 3.0])),
            shape: &[4],
            dtype: F64,
            want: &[1.0, 9.0, 0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jax.grad(jnp.prod)(jnp.array([0.0, 2.0, 3.0]))
        Case {
            name: "grad_prod_one_zero",
            got: || grad(|x: &Tensor| x.prod())(&v(&[0.0, 2.0, 3.0])),
            shape: &[3],
            dtype: F64,
            want: &[6.0, 0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jax.grad(jnp.prod)(jnp.array([0.0, 0.0, 3.0]))
        Case {
            name: "grad_prod_two_zeros",
            got: || grad(|x: &Tensor| x.prod())(&v(&[0.0, 0.0, 3.0])),
            shape: &[3],
            dtype: F64,
            want: &[0.0, 0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jnp.stack(jax.grad(jnp.logaddexp, (0, 1))(1.0, 1.0))
        // JAX is one ulp below 0.5.
        Case {
            name: "grad_logaddexp_tie",
            got: || grad2(|a, b| a.logaddexp(b), 1.0, 1.0),
            shape: &[2],
            dtype: F64,
            want: &[0.49999999999999994, 0.49999999999999994],
            tol: ULPS,
        },
        // JAX: jnp.stack(jax.grad(jnp.logaddexp, (0, 1))(-jnp.inf, -jnp.inf))
        Case {
            name: "grad_logaddexp_neg_inf_tie",
            got: || grad2(|a, b| a.logaddexp(b), f64::NEG_INFINITY, f64::NEG_INFINITY),
            shape: &[2],
            dtype: F64,
            want: &[f64::NAN, f64::NAN],
            tol: EXACT,
        },
        // JAX: jax.grad(jnp.std)(jnp.array([2.0, 2.0, 2.0]))
        Case {
            name: "grad_std_constant",
            got: || grad(|x: &Tensor| x.std())(&v(&[2.0, 2.0, 2.0])),
            shape: &[3],
            dtype: F64,
            want: &[f64::NAN, f64::NAN, f64::NAN],
            tol: EXACT,
        },
        // JAX: jax.grad(jnp.var)(jnp.array([2.0, 2.0, 2.0]))
        Case {
            name: "grad_var_constant",
            got: || grad(|x: &Tensor| x.var())(&v(&[2.0, 2.0, 2.0])),
            shape: &[3],
            dtype: F64,
            want: &[0.0, 0.0, 0.0],
            tol: EXACT,
        },
    ]);
}

/// Values of the special functions, shape operations, einsum, norms and sorting.
#[test]
fn new_operations() {
    run(&[
        // JAX: jss.erf(jnp.array([-jnp.inf, -3.0, -1.0, -0.5, 0.0, 1e-10, 0.5, 1.0, 3.0, 6.0, jnp.inf, jnp.nan]))
        Case {
            name: "erf",
            got: || {
                let x =
                    v(&[f64::NEG_INFINITY, -3.0, -1.0, -0.5, 0.0, 1e-10, 0.5, 1.0, 3.0, 6.0, f64::INFINITY, f64::NAN]);
                x.erf()
            },
            shape: &[12],
            dtype: F64,
            want: &[
                -1.0,
                -0.9999779095030014,
                -0.8427007929497149,
                -0.5204998778130465,
                0.0,
                1.1283791670955126e-10,
                0.5204998778130465,
                0.8427007929497149,
                0.9999779095030014,
                1.0,
                1.0,
                f64::NAN,
            ],
            tol: ULPS,
        },
        // JAX: jss.erfc(jnp.array([-jnp.inf, -1.0, 0.0, 0.5, 1.0, 3.0, 10.0, 27.0, jnp.inf, jnp.nan]))
        // erfc(27) is 5.2e-319, a subnormal; JAX gives 0. The tolerance is absolute there.
        Case {
            name: "erfc",
            got: || v(&[f64::NEG_INFINITY, -1.0, 0.0, 0.5, 1.0, 3.0, 10.0, 27.0, f64::INFINITY, f64::NAN]).erfc(),
            shape: &[10],
            dtype: F64,
            want: &[
                2.0,
                1.8427007929497148,
                1.0,
                0.4795001221869535,
                0.15729920705028513,
                2.2090496998585445e-5,
                2.0884875837625443e-45,
                0.0,
                0.0,
                f64::NAN,
            ],
            tol: ULPS,
        },
        // JAX: jss.erfinv(jnp.array([-1.0, -0.5, 0.0, 1e-10, 0.5, 0.9, 0.999, 1.0, 1.5, -2.0, jnp.nan]))
        Case {
            name: "erfinv",
            got: || v(&[-1.0, -0.5, 0.0, 1e-10, 0.5, 0.9, 0.999, 1.0, 1.5, -2.0, f64::NAN]).erfinv(),
            shape: &[11],
            dtype: F64,
            want: &[
                f64::NEG_INFINITY,
                -0.47693627620446977,
                0.0,
                8.862269254527581e-11,
                0.47693627620446977,
                1.163087153676674,
                2.3267537655135273,
                f64::INFINITY,
                f64::NAN,
                f64::NAN,
                f64::NAN,
            ],
            tol: ULPS,
        },
        // JAX: jnp.arcsin(jnp.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, jnp.nan]))
        Case {
            name: "arcsin",
            got: || v(&[-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, f64::NAN]).asin(),
            shape: &[7],
            dtype: F64,
            want: &[
                -1.5707963267948966,
                -0.5235987755982989,
                0.0,
                0.5235987755982989,
                1.5707963267948966,
                f64::NAN,
                f64::NAN,
            ],
            tol: ULPS,
        },
        // JAX: jnp.arccos(jnp.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, jnp.nan]))
        Case {
            name: "arccos",
            got: || v(&[-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, f64::NAN]).acos(),
            shape: &[7],
            dtype: F64,
            want: &[
                3.141592653589793,
                2.0943951023931957,
                1.5707963267948966,
                1.0471975511965976,
                0.0,
                f64::NAN,
                f64::NAN,
            ],
            tol: ULPS,
        },
        // JAX: jnp.arctan(jnp.array([-jnp.inf, -1.0, 0.0, 1.0, 1e300, jnp.inf, jnp.nan]))
        Case {
            name: "arctan",
            got: || v(&[f64::NEG_INFINITY, -1.0, 0.0, 1.0, 1e300, f64::INFINITY, f64::NAN]).atan(),
            shape: &[7],
            dtype: F64,
            want: &[
                -1.5707963267948966,
                -0.7853981633974484,
                0.0,
                0.7853981633974484,
                1.5707963267948966,
                1.5707963267948966,
                f64::NAN,
            ],
            tol: ULPS,
        },
        // JAX: jnp.arcsinh(jnp.array([-1e300, -1.0, 1e-300, 0.0, 1.0, 1e300, jnp.inf]))
        Case {
            name: "arcsinh",
            got: || v(&[-1e300, -1.0, 1e-300, 0.0, 1.0, 1e300, f64::INFINITY]).asinh(),
            shape: &[7],
            dtype: F64,
            want: &[
                -691.4686750787736,
                -0.8813735870195429,
                1e-300,
                0.0,
                0.8813735870195429,
                691.4686750787736,
                f64::INFINITY,
            ],
            tol: ULPS,
        },
        // JAX: jnp.arccosh(jnp.array([0.5, 1.0, 2.0, 1e300, jnp.inf]))
        Case {
            name: "arccosh",
            got: || v(&[0.5, 1.0, 2.0, 1e300, f64::INFINITY]).acosh(),
            shape: &[5],
            dtype: F64,
            want: &[f64::NAN, 0.0, 1.3169578969248166, 691.4686750787737, f64::INFINITY],
            tol: ULPS,
        },
        // JAX: jnp.arctanh(jnp.array([-2.0, -1.0, -0.5, 0.0, 1e-10, 0.5, 1.0, 2.0]))
        Case {
            name: "arctanh",
            got: || v(&[-2.0, -1.0, -0.5, 0.0, 1e-10, 0.5, 1.0, 2.0]).atanh(),
            shape: &[8],
            dtype: F64,
            want: &[
                f64::NAN,
                f64::NEG_INFINITY,
                -0.5493061443340548,
                0.0,
                1e-10,
                0.5493061443340548,
                f64::INFINITY,
                f64::NAN,
            ],
            tol: ULPS,
        },
        // JAX: jnp.round(jnp.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999999999999996, 4503599627370497.0]))
        Case {
            name: "round_half_even",
            got: || v(&[0.5, 1.5, 2.5, -0.5, -1.5, 2.4999999999999996, 4503599627370497.0]).round(),
            shape: &[7],
            dtype: F64,
            want: &[0.0, 2.0, 2.0, -0.0, -2.0, 2.0, 4503599627370497.0],
            tol: EXACT,
        },
        // JAX: jnp.round(jnp.array([0.5, 1.5, 2.5, -2.5], dtype=jnp.float32))
        Case {
            name: "round_half_even_f32",
            got: || v32(&[0.5, 1.5, 2.5, -2.5]).round(),
            shape: &[4],
            dtype: F32,
            want: &[0.0, 2.0, 2.0, -2.0],
            tol: EXACT,
        },
        // JAX: jnp.floor(jnp.array([-1.5, -0.5, -0.0, 0.5, 1.5, -2.0]))
        Case {
            name: "floor",
            got: || v(&[-1.5, -0.5, -0.0, 0.5, 1.5, -2.0]).floor(),
            shape: &[6],
            dtype: F64,
            want: &[-2.0, -1.0, -0.0, 0.0, 1.0, -2.0],
            tol: EXACT,
        },
        // JAX: jnp.ceil(jnp.array([-1.5, -0.5, -0.0, 0.5, 1.5, -2.0]))
        Case {
            name: "ceil",
            got: || v(&[-1.5, -0.5, -0.0, 0.5, 1.5, -2.0]).ceil(),
            shape: &[6],
            dtype: F64,
            want: &[-1.0, -0.0, -0.0, 1.0, 2.0, -2.0],
            tol: EXACT,
        },
        // JAX: jnp.trunc(jnp.array([-1.5, -0.5, -0.0, 0.5, 1.5, -2.0]))
        Case {
            name: "trunc",
            got: || v(&[-1.5, -0.5, -0.0, 0.5, 1.5, -2.0]).trunc(),
            shape: &[6],
            dtype: F64,
            want: &[-1.0, -0.0, -0.0, 0.0, 1.0, -2.0],
            tol: EXACT,
        },
        // JAX: jnp.sign(jnp.array([-2.0, -0.0, 0.0, 3.0, jnp.nan]))
        Case {
            name: "sign",
            got: || v(&[-2.0, -0.0, 0.0, 3.0, f64::NAN]).signum(),
            shape: &[5],
            dtype: F64,
            want: &[-1.0, -0.0, 0.0, 1.0, f64::NAN],
            tol: EXACT,
        },
        // JAX: jax.nn.gelu(jnp.array([-6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0]), approximate=False)
        Case {
            name: "gelu_exact",
            got: || v(&[-6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0]).gelu(),
            shape: &[8],
            dtype: F64,
            want: &[
                -5.919525870226166e-9,
                -0.004049694094890279,
                -0.15865525393145707,
                -0.15426876936299344,
                0.0,
                0.34573123063700656,
                0.8413447460685429,
                2.99595030590511,
            ],
            tol: ULPS,
        },
        // JAX: jax.nn.gelu(jnp.array([-6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0]))
        Case {
            name: "gelu_tanh",
            got: || v(&[-6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0]).gelu_tanh(),
            shape: &[8],
            dtype: F64,
            want: &[
                -8.439682286365269e-11,
                -0.003637392081773161,
                -0.1588080093917233,
                -0.15428599017485609,
                0.0,
                0.3457140098251439,
                0.8411919906082768,
                2.996362607918227,
            ],
            tol: ULPS,
        },
        // JAX: jnp.log2(jnp.array([8.0, 1024.0, 0.5, 1.0]))
        // Not EXACT: JAX (XLA on CPU) gives log2(8) = 2.9999999999999996, one ulp below 3.
        Case {
            name: "log2_powers_of_two",
            got: || v(&[8.0, 1024.0, 0.5, 1.0]).log2(),
            shape: &[4],
            dtype: F64,
            want: &[2.9999999999999996, 10.0, -1.0, 0.0],
            tol: ULPS,
        },
        // JAX: jnp.log10(jnp.array([1000.0, 1e-3, 100.0, 1.0]))
        Case {
            name: "log10_powers_of_ten",
            got: || v(&[1000.0, 1e-3, 100.0, 1.0]).log10(),
            shape: &[4],
            dtype: F64,
            want: &[3.0, -3.0, 2.0, 0.0],
            tol: EXACT,
        },
        // JAX: jnp.exp2(jnp.array([3.0, -1.0, 10.0, 0.0]))
        // Not EXACT: JAX (XLA on CPU) gives exp2(3) = 7.999999999999998, two ulps below 8.
        Case {
            name: "exp2_integers",
            got: || v(&[3.0, -1.0, 10.0, 0.0]).exp2(),
            shape: &[4],
            dtype: F64,
            want: &[7.999999999999998, 0.5, 1024.0, 1.0],
            tol: ULPS,
        },
        // JAX: jnp.array([jnp.log2(10.0), jnp.log10(2.0), jnp.exp2(0.5), jnp.exp2(-0.5)])
        Case {
            name: "log2_log10_exp2",
            got: || Tensor::stack(&[s(10.0).log2(), s(2.0).log10(), s(0.5).exp2(), s(-0.5).exp2()], 0),
            shape: &[4],
            dtype: F64,
            want: &[3.3219280948873626, 0.3010299956639812, 1.4142135623730951, 0.7071067811865476],
            tol: ULPS,
        },
        // JAX: jnp.array([jnp.expm1(1e-10), jnp.expm1(-1e-10), jnp.log1p(1e-10), jnp.log1p(-1.0), jnp.log1p(-2.0)])
        Case {
            name: "expm1_log1p",
            got: || {
                Tensor::stack(
                    &[s(1e-10).exp_m1(), s(-1e-10).exp_m1(), s(1e-10).ln_1p(), s(-1.0).ln_1p(), s(-2.0).ln_1p()],
                    0,
                )
            },
            shape: &[5],
            dtype: F64,
            want: &[1.00000000005e-10, -9.999999999500001e-11, 9.999999999500001e-11, f64::NEG_INFINITY, f64::NAN],
            tol: ULPS,
        },
        // JAX: jnp.arctan2(jnp.array([1.0, 1.0, -1.0, -1.0, 0.0, -0.0, 0.0, 1.0, jnp.inf]), jnp.array([1.0, -1.0, -1.0,
        //     1.0, -1.0, -1.0, 0.0, 0.0, jnp.inf]))
        Case {
            name: "arctan2_quadrants",
            got: || {
                let y = v(&[1.0, 1.0, -1.0, -1.0, 0.0, -0.0, 0.0, 1.0, f64::INFINITY]);
                y.atan2(&v(&[1.0, -1.0, -1.0, 1.0, -1.0, -1.0, 0.0, 0.0, f64::INFINITY]))
            },
            shape: &[9],
            dtype: F64,
            want: &[
                0.7853981633974483,
                2.356194490192345,
                -2.356194490192345,
                -0.7853981633974483,
                3.141592653589793,
                -3.141592653589793,
                0.0,
                1.5707963267948966,
                0.7853981633974483,
            ],
            tol: ULPS,
        },
        // JAX: jnp.power(jnp.array([-2.0, 0.0, 2.0, -8.0, 0.0]), jnp.array([3.0, -1.0, 0.5, 1.0 / 3.0, 0.0]))
        Case {
            name: "power",
            got: || v(&[-2.0, 0.0, 2.0, -8.0, 0.0]).pow(&v(&[3.0, -1.0, 0.5, 1.0 / 3.0, 0.0])),
            shape: &[5],
            dtype: F64,
            want: &[-8.0, f64::INFINITY, 1.4142135623730951, f64::NAN, 1.0],
            tol: ULPS,
        },
        // JAX: jnp.array([-2.0, 0.0, 4.0]) ** -2
        Case {
            name: "integer_power_negative",
            got: || v(&[-2.0, 0.0, 4.0]).powi(-2),
            shape: &[3],
            dtype: F64,
            want: &[0.25, f64::INFINITY, 0.0625],
            tol: ULPS,
        },
        // JAX: jnp.einsum("ij,jk->ik", jnp.arange(6.0).reshape(2, 3), jnp.arange(6.0).reshape(3, 2))
        Case {
            name: "einsum_matmul",
            got: || einsum("ij,jk->ik", &[ar(&[2, 3]), ar(&[3, 2])]),
            shape: &[2, 2],
            dtype: F64,
            want: &[10.0, 13.0, 28.0, 40.0],
            tol: EXACT,
        },
        // JAX: jnp.einsum("ii->i", jnp.arange(9.0).reshape(3, 3))
        Case {
            name: "einsum_diagonal",
            got: || einsum("ii->i", &[ar(&[3, 3])]),
            shape: &[3],
            dtype: F64,
            want: &[0.0, 4.0, 8.0],
            tol: EXACT,
        },
        // JAX: jnp.einsum("ii", jnp.arange(9.0).reshape(3, 3))
        Case {
            name: "einsum_trace",
            got: || einsum("ii", &[ar(&[3, 3])]),
            shape: &[],
            dtype: F64,
            want: &[12.0],
            tol: EXACT,
        },
        // JAX: jnp.einsum("bij,bjk->bik", jnp.arange(12.0).reshape(2, 2, 3), jnp.arange(12.0).reshape(2, 3, 2))
        Case {
            name: "einsum_batch_matmul",
            got: || einsum("bij,bjk->bik", &[ar(&[2, 2, 3]), ar(&[2, 3, 2])]),
            shape: &[2, 2, 2],
            dtype: F64,
            want: &[10.0, 13.0, 28.0, 40.0, 172.0, 193.0, 244.0, 274.0],
            tol: EXACT,
        },
        // JAX: jnp.einsum("i,j->ij", jnp.arange(3.0), jnp.arange(2.0) + 1.0)
        Case {
            name: "einsum_outer",
            got: || einsum("i,j->ij", &[ar(&[3]), ar(&[2]) + 1.0]),
            shape: &[3, 2],
            dtype: F64,
            want: &[0.0, 0.0, 1.0, 2.0, 2.0, 4.0],
            tol: EXACT,
        },
        // JAX: jnp.einsum("...ij,...jk", jnp.arange(12.0).reshape(2, 2, 3), jnp.arange(6.0).reshape(3, 2))
        Case {
            name: "einsum_ellipsis",
            got: || einsum("...ij,...jk", &[ar(&[2, 2, 3]), ar(&[3, 2])]),
            shape: &[2, 2, 2],
            dtype: F64,
            want: &[10.0, 13.0, 28.0, 40.0, 46.0, 67.0, 64.0, 94.0],
            tol: EXACT,
        },
        // JAX: jnp.einsum("ij->ji", jnp.arange(6.0).reshape(2, 3))
        Case {
            name: "einsum_transpose",
            got: || einsum("ij->ji", &[ar(&[2, 3])]),
            shape: &[3, 2],
            dtype: F64,
            want: &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0],
            tol: EXACT,
        },
        // JAX: jnp.einsum("ji", jnp.arange(6.0).reshape(2, 3))
        // The implicit output orders the labels alphabetically: "ji" transposes.
        Case {
            name: "einsum_implicit_sorted",
            got: || einsum("ji", &[ar(&[2, 3])]),
            shape: &[3, 2],
            dtype: F64,
            want: &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0],
            tol: EXACT,
        },
        // JAX: jnp.einsum("iij->j", jnp.arange(12.0).reshape(2, 2, 3))
        Case {
            name: "einsum_repeated_then_sum",
            got: || einsum("iij->j", &[ar(&[2, 2, 3])]),
            shape: &[3],
            dtype: F64,
            want: &[9.0, 11.0, 13.0],
            tol: EXACT,
        },
        // JAX: jnp.diagonal(jnp.arange(12.0).reshape(3, 4), 1)
        Case {
            name: "diagonal_above",
            got: || ar(&[3, 4]).diagonal(1),
            shape: &[3],
            dtype: F64,
            want: &[1.0, 6.0, 11.0],
            tol: EXACT,
        },
        // JAX: jnp.diagonal(jnp.arange(12.0).reshape(3, 4), -1)
        Case {
            name: "diagonal_below",
            got: || ar(&[3, 4]).diagonal(-1),
            shape: &[2],
            dtype: F64,
            want: &[4.0, 9.0],
            tol: EXACT,
        },
        // JAX: jnp.diagonal(jnp.arange(12.0).reshape(3, 4), 4)
        Case {
            name: "diagonal_outside",
            got: || ar(&[3, 4]).diagonal(4),
            shape: &[0],
            dtype: F64,
            want: &[],
            tol: EXACT,
        },
        // JAX: jnp.diagonal(jnp.arange(18.0).reshape(2, 3, 3), 1, axis1=-2, axis2=-1)
        Case {
            name: "diagonal_batched",
            got: || ar(&[2, 3, 3]).diagonal(1),
            shape: &[2, 2],
            dtype: F64,
            want: &[1.0, 5.0, 10.0, 14.0],
            tol: EXACT,
        },
        // JAX: jnp.trace(jnp.arange(12.0).reshape(3, 4), 1)
        Case { name: "trace_above", got: || ar(&[3, 4]).trace(1), shape: &[], dtype: F64, want: &[18.0], tol: EXACT },
        // JAX: jnp.trace(jnp.arange(18.0).reshape(2, 3, 3), -1, axis1=-2, axis2=-1)
        Case {
            name: "trace_batched_below",
            got: || ar(&[2, 3, 3]).trace(-1),
            shape: &[2],
            dtype: F64,
            want: &[10.0, 28.0],
            tol: EXACT,
        },
        // JAX: jnp.tril(jnp.arange(12.0).reshape(3, 4), -1)
        Case {
            name: "tril_below",
            got: || ar(&[3, 4]).tril(-1),
            shape: &[3, 4],
            dtype: F64,
            want: &[0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 8.0, 9.0, 0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jnp.triu(jnp.arange(12.0).reshape(3, 4), 1)
        Case {
            name: "triu_above",
            got: || ar(&[3, 4]).triu(1),
            shape: &[3, 4],
            dtype: F64,
            want: &[0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 6.0, 7.0, 0.0, 0.0, 0.0, 11.0],
            tol: EXACT,
        },
        // JAX: jnp.triu(jnp.arange(18.0).reshape(2, 3, 3), 1)
        Case {
            name: "triu_batched",
            got: || ar(&[2, 3, 3]).triu(1),
            shape: &[2, 3, 3],
            dtype: F64,
            want: &[0.0, 1.0, 2.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 10.0, 11.0, 0.0, 0.0, 14.0, 0.0, 0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jnp.diag(jnp.array([1.0, 2.0]), 1)
        Case {
            name: "diag_vector_above",
            got: || v(&[1.0, 2.0]).diag(1),
            shape: &[3, 3],
            dtype: F64,
            want: &[0.0, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jnp.diag(jnp.array([1.0, 2.0]), -2)
        Case {
            name: "diag_vector_below",
            got: || v(&[1.0, 2.0]).diag(-2),
            shape: &[4, 4],
            dtype: F64,
            want: &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jnp.diag(jnp.arange(12.0).reshape(3, 4), 2)
        Case {
            name: "diag_matrix",
            got: || ar(&[3, 4]).diag(2),
            shape: &[2],
            dtype: F64,
            want: &[2.0, 7.0],
            tol: EXACT,
        },
        // JAX: jnp.roll(jnp.arange(5.0), -2)
        Case {
            name: "roll_negative",
            got: || ar(&[5]).roll(-2, 0),
            shape: &[5],
            dtype: F64,
            want: &[2.0, 3.0, 4.0, 0.0, 1.0],
            tol: EXACT,
        },
        // JAX: jnp.roll(jnp.arange(5.0), 12)
        Case {
            name: "roll_large",
            got: || ar(&[5]).roll(12, 0),
            shape: &[5],
            dtype: F64,
            want: &[3.0, 4.0, 0.0, 1.0, 2.0],
            tol: EXACT,
        },
        // JAX: jnp.roll(jnp.arange(5.0), -12)
        Case {
            name: "roll_large_negative",
            got: || ar(&[5]).roll(-12, 0),
            shape: &[5],
            dtype: F64,
            want: &[2.0, 3.0, 4.0, 0.0, 1.0],
            tol: EXACT,
        },
        // JAX: jnp.roll(jnp.arange(6.0).reshape(2, 3), 1, axis=1)
        Case {
            name: "roll_axis1",
            got: || ar(&[2, 3]).roll(1, 1),
            shape: &[2, 3],
            dtype: F64,
            want: &[2.0, 0.0, 1.0, 5.0, 3.0, 4.0],
            tol: EXACT,
        },
        // JAX: jnp.tile(jnp.array([[1.0, 2.0]]), (2, 3))
        Case {
            name: "tile",
            got: || mat(&[[1.0, 2.0]]).tile(&[2, 3]),
            shape: &[2, 6],
            dtype: F64,
            want: &[1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0],
            tol: EXACT,
        },
        // JAX: jnp.tile(jnp.array([[1.0, 2.0]]), (2,))
        Case {
            name: "tile_fewer_reps",
            got: || mat(&[[1.0, 2.0]]).tile(&[2]),
            shape: &[1, 4],
            dtype: F64,
            want: &[1.0, 2.0, 1.0, 2.0],
            tol: EXACT,
        },
        // JAX: jnp.tile(jnp.array([1.0, 2.0]), (2, 2))
        Case {
            name: "tile_more_reps",
            got: || v(&[1.0, 2.0]).tile(&[2, 2]),
            shape: &[2, 4],
            dtype: F64,
            want: &[1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0],
            tol: EXACT,
        },
        // JAX: jnp.repeat(jnp.array([[1.0, 2.0], [3.0, 4.0]]), 2, axis=1)
        Case {
            name: "repeat_axis1",
            got: || mat(&[[1.0, 2.0], [3.0, 4.0]]).repeat(2, 1),
            shape: &[2, 4],
            dtype: F64,
            want: &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0],
            tol: EXACT,
        },
        // JAX: jnp.repeat(jnp.array([1.0, 2.0, 3.0]), jnp.array([2, 0, 1]))
        Case {
            name: "repeat_counts",
            got: || v(&[1.0, 2.0, 3.0]).repeat_each(&[2, 0, 1], 0),
            shape: &[3],
            dtype: F64,
            want: &[1.0, 1.0, 3.0],
            tol: EXACT,
        },
        // JAX: jnp.array([p.shape[0] for p in jnp.split(jnp.arange(6.0), 3)])
        Case {
            name: "split_sizes",
            got: || lengths(&ar(&[6]).split(3, 0)),
            shape: &[3],
            dtype: I64,
            want: &[2.0, 2.0, 2.0],
            tol: EXACT,
        },
        // JAX: jnp.array([p.shape[0] for p in jnp.split(jnp.arange(6.0), [1, 4])])
        Case {
            name: "split_at_indices_sizes",
            got: || lengths(&ar(&[6]).split_at_indices(&[1, 4], 0)),
            shape: &[3],
            dtype: I64,
            want: &[1.0, 3.0, 2.0],
            tol: EXACT,
        },
        // JAX: jnp.array([p.shape[0] for p in jnp.split(jnp.arange(6.0), [0, 6])])
        Case {
            name: "split_at_ends_sizes",
            got: || lengths(&ar(&[6]).split_at_indices(&[0, 6], 0)),
            shape: &[3],
            dtype: I64,
            want: &[0.0, 6.0, 0.0],
            tol: EXACT,
        },
        // JAX: jnp.split(jnp.arange(6.0).reshape(2, 3), [1], axis=1)[1]
        Case {
            name: "split_at_indices_axis1",
            got: || ar(&[2, 3]).split_at_indices(&[1], 1).remove(1),
            shape: &[2, 2],
            dtype: F64,
            want: &[1.0, 2.0, 4.0, 5.0],
            tol: EXACT,
        },
        // JAX: lax.top_k(jnp.array([1.0, 3.0, 3.0, 2.0, 3.0]), 2)[0]
        Case {
            name: "top_k_ties_values",
            got: || v(&[1.0, 3.0, 3.0, 2.0, 3.0]).top_k(2).0,
            shape: &[2],
            dtype: F64,
            want: &[3.0, 3.0],
            tol: EXACT,
        },
        // JAX: lax.top_k(jnp.array([1.0, 3.0, 3.0, 2.0, 3.0]), 2)[1]
        // JAX's top_k indices are int32; ferrax has no int32 and returns i64.
        Case {
            name: "top_k_ties_indices",
            got: || v(&[1.0, 3.0, 3.0, 2.0, 3.0]).top_k(2).1,
            shape: &[2],
            dtype: I64,
            want: &[1.0, 2.0],
            tol: EXACT,
        },
        // JAX: lax.top_k(jnp.array([1.0, jnp.nan, 3.0]), 2)[0]
        Case {
            name: "top_k_nan_values",
            got: || v(&[1.0, f64::NAN, 3.0]).top_k(2).0,
            shape: &[2],
            dtype: F64,
            want: &[f64::NAN, 3.0],
            tol: EXACT,
        },
        // JAX: lax.top_k(jnp.array([1.0, jnp.nan, 3.0]), 2)[1]
        // JAX's top_k indices are int32; ferrax has no int32 and returns i64.
        Case {
            name: "top_k_nan_indices",
            got: || v(&[1.0, f64::NAN, 3.0]).top_k(2).1,
            shape: &[2],
            dtype: I64,
            want: &[1.0, 2.0],
            tol: EXACT,
        },
        // JAX: jnp.argsort(jnp.array([1.0, 3.0, 3.0, 2.0]), descending=True)
        Case {
            name: "argsort_descending_ties",
            got: || v(&[1.0, 3.0, 3.0, 2.0]).argsort_descending(0),
            shape: &[4],
            dtype: I64,
            want: &[1.0, 2.0, 3.0, 0.0],
            tol: EXACT,
        },
        // JAX: jnp.stack([jnp.linalg.vector_norm(jnp.array([3.0, -4.0, 0.0, 1.0]), ord=o) for o in (0, 1, 2, 3,
        //     jnp.inf, -jnp.inf)])
        Case {
            name: "vector_norm_ords",
            got: || {
                let x = v(&[3.0, -4.0, 0.0, 1.0]);
                Tensor::stack(
                    &[0.0, 1.0, 2.0, 3.0, f64::INFINITY, f64::NEG_INFINITY].map(|o| x.vector_norm(o, &[0], false)),
                    0,
                )
            },
            shape: &[6],
            dtype: F64,
            want: &[3.0, 8.0, 5.0990195135927845, 4.514357435474001, 4.0, 0.0],
            tol: ULPS,
        },
        // JAX: jnp.stack([jnp.linalg.vector_norm(jnp.array([3.0, -4.0, 1.0]), ord=o) for o in (-1, -2, 0.5)])
        Case {
            name: "vector_norm_other_ords",
            got: || {
                let x = v(&[3.0, -4.0, 1.0]);
                Tensor::stack(&[-1.0, -2.0, 0.5].map(|o| x.vector_norm(o, &[0], false)), 0)
            },
            shape: &[3],
            dtype: F64,
            want: &[0.6315789473684211, 0.923076923076923, 22.392304845413257],
            tol: ULPS,
        },
        // JAX: jnp.linalg.vector_norm(jnp.array([[3.0, -4.0], [0.0, 1.0]]), ord=1, axis=1, keepdims=True)
        Case {
            name: "vector_norm_axis_keepdims",
            got: || mat(&[[3.0, -4.0], [0.0, 1.0]]).vector_norm(1.0, &[1], true),
            shape: &[2, 1],
            dtype: F64,
            want: &[7.0, 1.0],
            tol: EXACT,
        },
        // JAX: jnp.stack([jnp.linalg.matrix_norm(jnp.array([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]]), ord=o) for o in
        //     ("fro", 1, jnp.inf, -1, -jnp.inf)])
        // In JAX's order: 'fro', 1, inf, -1, -inf.
        Case {
            name: "matrix_norms",
            got: || {
                let m = mat(&[[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]]);
                let ords = [
                    MatrixNorm::Fro,
                    MatrixNorm::MaxColumnSum,
                    MatrixNorm::MaxRowSum,
                    MatrixNorm::MinColumnSum,
                    MatrixNorm::MinRowSum,
                ];
                Tensor::stack(&ords.map(|o| m.matrix_norm(o, false)), 0)
            },
            shape: &[5],
            dtype: F64,
            want: &[9.539392014169456, 9.0, 15.0, 5.0, 6.0],
            tol: ULPS,
        },
        // JAX: jnp.linalg.matrix_norm(jnp.arange(12.0).reshape(3, 2, 2) - 5.0, ord=1, keepdims=True)
        Case {
            name: "matrix_norm_batched_keepdims",
            got: || (ar(&[3, 2, 2]) - 5.0).matrix_norm(MatrixNorm::MaxColumnSum, true),
            shape: &[3, 1, 1],
            dtype: F64,
            want: &[8.0, 2.0, 10.0],
            tol: EXACT,
        },
        // JAX: jnp.var(jnp.array([1.0, 2.0, 4.0, 7.0]), ddof=1)
        Case {
            name: "var_ddof1",
            got: || v(&[1.0, 2.0, 4.0, 7.0]).var_axes_ddof(&[0], 1, false),
            shape: &[],
            dtype: F64,
            want: &[7.0],
            tol: EXACT,
        },
        // JAX: jnp.std(jnp.array([[1.0, 2.0], [4.0, 7.0]]), axis=0, ddof=1)
        Case {
            name: "std_ddof1_axis0",
            got: || mat(&[[1.0, 2.0], [4.0, 7.0]]).std_axes_ddof(&[0], 1, false),
            shape: &[2],
            dtype: F64,
            want: &[2.1213203435596424, 3.5355339059327378],
            tol: ULPS,
        },
        // JAX: jnp.var(jnp.array([1.0, 2.0, 4.0, 7.0]), ddof=4)
        // NaN, not numpy's inf: JAX gives NaN when ddof leaves no degrees of freedom.
        Case {
            name: "var_ddof_n",
            got: || v(&[1.0, 2.0, 4.0, 7.0]).var_axes_ddof(&[0], 4, false),
            shape: &[],
            dtype: F64,
            want: &[f64::NAN],
            tol: EXACT,
        },
        // JAX: jnp.logaddexp(jnp.array([jnp.inf, -jnp.inf, 1000.0, 0.0, -jnp.inf, 1.0]), jnp.array([jnp.inf, -jnp.inf,
        //     1000.0, 0.0, 5.0, 2.0]))
        Case {
            name: "logaddexp_values",
            got: || {
                let a = v(&[f64::INFINITY, f64::NEG_INFINITY, 1000.0, 0.0, f64::NEG_INFINITY, 1.0]);
                a.logaddexp(&v(&[f64::INFINITY, f64::NEG_INFINITY, 1000.0, 0.0, 5.0, 2.0]))
            },
            shape: &[6],
            dtype: F64,
            want: &[f64::INFINITY, f64::NEG_INFINITY, 1000.6931471805599, 0.6931471805599453, 5.0, 2.3132616875182226],
            tol: ULPS,
        },
    ]);
}

/// Size-0 axes, batched or not.
#[test]
fn empty_shapes() {
    run(&[
        // JAX: jnp.sum(jnp.zeros((0,)))
        Case { name: "sum_empty", got: || zeros(&[0]).sum(), shape: &[], dtype: F64, want: &[0.0], tol: EXACT },
        // JAX: jnp.sum(jnp.zeros((0, 3)), axis=0)
        Case {
            name: "sum_axis_empty",
            got: || zeros(&[0, 3]).sum_axes(&[0], false),
            shape: &[3],
            dtype: F64,
            want: &[0.0, 0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jnp.sum(jnp.zeros((0, 3)), axis=1)
        Case {
            name: "sum_axis_of_empty_rows",
            got: || zeros(&[0, 3]).sum_axes(&[1], false),
            shape: &[0],
            dtype: F64,
            want: &[],
            tol: EXACT,
        },
        // JAX: jnp.prod(jnp.zeros((0,)))
        Case { name: "prod_empty", got: || zeros(&[0]).prod(), shape: &[], dtype: F64, want: &[1.0], tol: EXACT },
        // JAX: jnp.mean(jnp.zeros((0,)))
        Case { name: "mean_empty", got: || zeros(&[0]).mean(), shape: &[], dtype: F64, want: &[f64::NAN], tol: EXACT },
        // JAX: jnp.mean(jnp.zeros((2, 0)), axis=1)
        Case {
            name: "mean_axis_empty",
            got: || zeros(&[2, 0]).mean_axes(&[1], false),
            shape: &[2],
            dtype: F64,
            want: &[f64::NAN, f64::NAN],
            tol: EXACT,
        },
        // JAX: jnp.var(jnp.zeros((0,)))
        Case { name: "var_empty", got: || zeros(&[0]).var(), shape: &[], dtype: F64, want: &[f64::NAN], tol: EXACT },
        // JAX: jnp.max(jnp.zeros((0, 3)), axis=1)
        Case {
            name: "max_axis_of_empty_rows",
            got: || zeros(&[0, 3]).max_axes(&[1], false),
            shape: &[0],
            dtype: F64,
            want: &[],
            tol: EXACT,
        },
        // JAX: jax.nn.logsumexp(jnp.zeros((0,)))
        Case {
            name: "logsumexp_empty",
            got: || zeros(&[0]).logsumexp(),
            shape: &[],
            dtype: F64,
            want: &[f64::NEG_INFINITY],
            tol: EXACT,
        },
        // JAX: jnp.linalg.norm(jnp.zeros((0,)))
        Case { name: "norm_empty", got: || zeros(&[0]).norm(), shape: &[], dtype: F64, want: &[0.0], tol: EXACT },
        // JAX: jnp.cumsum(jnp.zeros((0,)))
        Case { name: "cumsum_empty", got: || zeros(&[0]).cumsum(0), shape: &[0], dtype: F64, want: &[], tol: EXACT },
        // JAX: jnp.cumsum(jnp.zeros((2, 0)), axis=1)
        Case {
            name: "cumsum_empty_axis",
            got: || zeros(&[2, 0]).cumsum(1),
            shape: &[2, 0],
            dtype: F64,
            want: &[],
            tol: EXACT,
        },
        // JAX: jax.nn.softmax(jnp.zeros((0,)))
        Case { name: "softmax_empty", got: || zeros(&[0]).softmax(0), shape: &[0], dtype: F64, want: &[], tol: EXACT },
        // JAX: jnp.sort(jnp.zeros((0,)))
        Case { name: "sort_empty", got: || zeros(&[0]).sort(0), shape: &[0], dtype: F64, want: &[], tol: EXACT },
        // JAX: jnp.zeros((2, 0)) @ jnp.zeros((0, 3))
        Case {
            name: "matmul_empty_inner",
            got: || zeros(&[2, 0]).matmul(&zeros(&[0, 3])),
            shape: &[2, 3],
            dtype: F64,
            want: &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jnp.einsum("ij,jk->ik", jnp.zeros((2, 0)), jnp.zeros((0, 3)))
        Case {
            name: "einsum_empty_inner",
            got: || einsum("ij,jk->ik", &[zeros(&[2, 0]), zeros(&[0, 3])]),
            shape: &[2, 3],
            dtype: F64,
            want: &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            tol: EXACT,
        },
        // JAX: jnp.concatenate([jnp.zeros((0, 2)), jnp.ones((1, 2))])
        Case {
            name: "concat_with_empty",
            got: || Tensor::concat(&[zeros(&[0, 2]), Tensor::ones(&[1, 2], F64)], 0),
            shape: &[1, 2],
            dtype: F64,
            want: &[1.0, 1.0],
            tol: EXACT,
        },
        // JAX: jax.vmap(lambda a: a @ jnp.ones((3, 2)))(jnp.zeros((0, 4, 3)))
        Case {
            name: "vmap_matmul_empty_batch",
            got: || vmap(|a: &Tensor| a.matmul(&Tensor::ones(&[3, 2], F64)))(&zeros(&[0, 4, 3])),
            shape: &[0, 4, 2],
            dtype: F64,
            want: &[],
            tol: EXACT,
        },
        // JAX: jax.vmap(jnp.sum)(jnp.zeros((0, 3)))
        Case {
            name: "vmap_sum_empty_batch",
            got: || vmap(|x: &Tensor| x.sum())(&zeros(&[0, 3])),
            shape: &[0],
            dtype: F64,
            want: &[],
            tol: EXACT,
        },
        // JAX: jax.grad(jnp.sum)(jnp.zeros((0,)))
        Case {
            name: "grad_sum_empty",
            got: || grad(|x: &Tensor| x.sum())(&zeros(&[0])),
            shape: &[0],
            dtype: F64,
            want: &[],
            tol: EXACT,
        },
        // JAX: jax.jacrev(lambda x: x[:0] * 2.0)(jnp.ones(3))
        Case {
            name: "jacrev_empty_output",
            got: || jacrev(|x: &Tensor| x.slice(0, 0, 0) * 2.0)(&Tensor::ones(&[3], F64)),
            shape: &[0, 3],
            dtype: F64,
            want: &[],
            tol: EXACT,
        },
        // JAX: jax.jacfwd(lambda x: jnp.stack([x.sum(), (x**2).sum()]))(jnp.zeros((0,)))
        Case {
            name: "jacfwd_empty_input",
            got: || jacfwd(|x: &Tensor| Tensor::stack(&[x.sum(), x.square().sum()], 0))(&zeros(&[0])),
            shape: &[2, 0],
            dtype: F64,
            want: &[],
            tol: EXACT,
        },
    ]);
    // JAX: jnp.argmax(jnp.zeros((0,))) raises "attempt to get argmax of an empty sequence".
    let msg = panic_message(|| drop(zeros(&[0]).argmax(0)));
    assert!(msg.contains("empty"), "{msg}");
}
