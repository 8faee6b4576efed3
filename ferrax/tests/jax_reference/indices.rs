//! The `indices` group of the JAX reference table.

use super::*;

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
