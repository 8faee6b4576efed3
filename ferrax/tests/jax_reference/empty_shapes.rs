//! The `empty_shapes` group of the JAX reference table.

use super::*;

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
