//! The `overflow` group of the JAX reference table.

use super::*;

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
