//! The new elementwise operations of the JAX reference table.

use super::*;

/// Values of the new elementwise functions: special functions, rounding, GELU, logarithms.
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
    ]);
}
