//! The `nan` group of the JAX reference table.

use super::*;

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
