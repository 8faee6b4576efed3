//! The `promotion` group of the JAX reference table.

use super::*;

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
