//! The `kinks` group of the JAX reference table.

use super::*;

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
