//! The new shape, indexing, sorting and norm operations of the JAX reference table.

use super::*;

/// Values of shape operations, einsum, norms and sorting.
#[test]
fn new_shapes() {
    run(&[
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
