//! Every primitive's derivative rules against finite differences, from one table.

use ferrax::array::ReduceOp;
use ferrax::array::Rng;
use ferrax::array::{ConvGeometry, IndexMode};
use ferrax::core::bind;
use ferrax::linalg;
use ferrax::numeric::{check_grads_with, Mode, Tolerance};
use ferrax::prelude::*;
use ferrax::prims::{
    ConvInputGrad, ConvKernelGrad, ConvOptions, Matmul, Padding, Scan, Softmax, SoftmaxTangent, Standardize,
    StandardizeTangent,
};

mod common;

/// Where a row's random inputs are drawn from, so each primitive is tested
/// on its valid domain and away from its kinks.
#[derive(Clone, Copy)]
enum Domain {
    /// Standard normal.
    Normal,
    /// Uniform in [0.5, 2): for ln, sqrt, pow bases, negative powers.
    Positive,
    /// Uniform in [lo, hi).
    Range(f64, f64),
    /// An integer in [-3, 3] plus the offset plus noise in [-0.1, 0.1): two
    /// inputs with offsets 0 and 0.5 are never within 0.3 of each other, so
    /// rows with kinks where inputs meet (max, comparisons) stay off them
    /// even at f32's larger difference step.
    Lattice(f64),
    /// A random permutation of `0, 0.5, 1, …` plus noise in [-0.05, 0.05):
    /// elements at least 0.4 apart, for rows whose kinks are where elements
    /// of one input meet (sorting, running extremes).
    Distinct,
}

/// What a row asserts.
enum Check {
    /// `check_grads` in every mode to order 2.
    Grads,
    /// The tangent equals this formula of (inputs, input tangents): for
    /// rules that deliberately differ from finite differences (stop_gradient).
    Tangent(fn(&[Tensor], &[Tensor]) -> Tensor),
}

struct Row {
    prim: &'static str,
    inputs: Vec<(Vec<usize>, Domain)>,
    f: fn(&[Tensor]) -> Tensor,
    check: Check,
    /// The inputs' dtype when the row needs one (else the table's).
    dtype: Option<DType>,
}

use Domain::*;

fn row(prim: &'static str, inputs: &[(&[usize], Domain)], f: fn(&[Tensor]) -> Tensor) -> Row {
    Row { prim, inputs: inputs.iter().map(|(s, d)| (s.to_vec(), *d)).collect(), f, check: Check::Grads, dtype: None }
}

/// `x xᵀ + 3I`: symmetric positive definite, well conditioned.
fn spd(x: &Tensor) -> Tensor {
    x.matmul(&x.t()) + Tensor::eye(x.shape()[x.rank() - 1], x.dtype()) * 3.0
}

/// `x + 3I`: far from singular for a standard normal `x`.
fn shifted(x: &Tensor) -> Tensor {
    x + Tensor::eye(x.shape()[x.rank() - 1], x.dtype()) * 3.0
}

/// `0.3 x` plus 3, 2, 1, … on the diagonal: singular values near those,
/// well separated, so the QR and SVD rows are well conditioned in f32 too.
fn graded(x: &Tensor) -> Tensor {
    let (m, n) = (x.shape()[0], x.shape()[1]);
    let d: Vec<f64> = (0..m * n).map(|k| if k / n == k % n { 3.0 - (k / n) as f64 } else { 0.0 }).collect();
    x * 0.3 + Tensor::from_vec(d, &[m, n]).to_dtype(x.dtype())
}

fn idx(v: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape)
}

fn table() -> Vec<Row> {
    let n = Normal;
    let p = Positive;
    let (l0, l1) = (Lattice(0.0), Lattice(0.5));
    let d = Distinct;
    vec![
        row("neg", &[(&[2, 3], n)], |x| -&x[0]),
        row("sin", &[(&[], n)], |x| x[0].sin()),
        row("sin", &[(&[2, 3], n)], |x| x[0].sin()),
        row("cos", &[(&[4], n)], |x| x[0].cos()),
        row("exp", &[(&[2, 3], n)], |x| x[0].exp()),
        row("ln", &[(&[5], p)], |x| x[0].ln()),
        row("ln_1p", &[(&[2, 2], Range(-0.5, 2.0))], |x| x[0].ln_1p()),
        row("exp_m1", &[(&[3], n)], |x| x[0].exp_m1()),
        row("tanh", &[(&[2, 3], n)], |x| x[0].tanh()),
        row("sqrt", &[(&[3], p)], |x| x[0].sqrt()),
        row("sinh", &[(&[2, 3], n)], |x| x[0].sinh()),
        row("cosh", &[(&[2, 3], n)], |x| x[0].cosh()),
        row("tan", &[(&[4], Range(-1.2, 1.2))], |x| x[0].tan()),
        row("atan", &[(&[4], n)], |x| x[0].atan()),
        row("asin", &[(&[4], Range(-0.9, 0.9))], |x| x[0].asin()),
        row("acos", &[(&[4], Range(-0.9, 0.9))], |x| x[0].acos()),
        row("asinh", &[(&[4], n)], |x| x[0].asinh()),
        row("acosh", &[(&[4], Range(1.2, 3.0))], |x| x[0].acosh()),
        row("atanh", &[(&[4], Range(-0.9, 0.9))], |x| x[0].atanh()),
        row("erf", &[(&[2, 3], n)], |x| x[0].erf()),
        row("erfc", &[(&[2, 3], n)], |x| x[0].erfc()),
        row("erfinv", &[(&[4], Range(-0.9, 0.9))], |x| x[0].erfinv()),
        row("log2", &[(&[4], p)], |x| x[0].log2()),
        row("log10", &[(&[4], p)], |x| x[0].log10()),
        row("exp2", &[(&[4], n)], |x| x[0].exp2()),
        // The rounding functions are piecewise constant: times x, the derivative is their value.
        row("floor", &[(&[5], l1)], |x| x[0].floor() * &x[0]),
        row("ceil", &[(&[5], l1)], |x| x[0].ceil() * &x[0]),
        row("round", &[(&[5], l0)], |x| x[0].round() * &x[0]),
        row("trunc", &[(&[5], l1)], |x| x[0].trunc() * &x[0]),
        row("relu", &[(&[2, 3], l1)], |x| x[0].relu()),
        row("abs", &[(&[7], l1)], |x| x[0].abs()),
        row("signum", &[(&[5], l1)], |x| x[0].signum() * &x[0]),
        row("logistic", &[(&[2, 3], n)], |x| x[0].logistic()),
        row("powi", &[(&[4], n)], |x| x[0].powi(3)),
        row("powi", &[(&[4], p)], |x| x[0].powi(-2)),
        row("powi", &[(&[2], n)], |x| x[0].powi(0) + x[0].powi(1)),
        row("add", &[(&[2, 3], n), (&[2, 3], n)], |x| &x[0] + &x[1]),
        row("add", &[(&[2, 3], n), (&[3], n)], |x| &x[0] + &x[1]),
        row("add", &[(&[3, 1], n), (&[1, 4], n)], |x| &x[0] + &x[1]),
        row("sub", &[(&[2, 3], n), (&[2, 1], n)], |x| &x[0] - &x[1]),
        row("sub", &[(&[], n), (&[3], n)], |x| &x[0] - &x[1]),
        row("mul", &[(&[2, 3], n), (&[2, 3], n)], |x| &x[0] * &x[1]),
        row("mul", &[(&[4, 1], n), (&[3], n)], |x| &x[0] * &x[1]),
        row("div", &[(&[2, 3], n), (&[2, 3], p)], |x| &x[0] / &x[1]),
        row("div", &[(&[3], n), (&[2, 1], p)], |x| &x[0] / &x[1]),
        row("max", &[(&[2, 3], l0), (&[2, 3], l1)], |x| x[0].maximum(&x[1])),
        row("max", &[(&[2, 3], l1), (&[3], l0)], |x| x[0].maximum(&x[1])),
        row("min", &[(&[2, 3], l0), (&[1, 3], l1)], |x| x[0].minimum(&x[1])),
        // x / y stays within (2.07, 2.69) (or its negative): away from the jumps of trunc and floor.
        row("rem", &[(&[3], Range(3.1, 3.5)), (&[3], Range(1.3, 1.5))], |x| x[0].rem(&x[1])),
        row("rem", &[(&[2, 3], Range(-3.5, -3.1)), (&[3], Range(1.3, 1.5))], |x| &x[0] % &x[1]),
        row("floor_div", &[(&[3], Range(3.1, 3.5)), (&[3], Range(1.3, 1.5))], |x| x[0].floor_div(&x[1]) * &x[0]),
        row("atan2", &[(&[2, 3], n), (&[2, 3], p)], |x| x[0].atan2(&x[1])),
        row("atan2", &[(&[3], Range(0.5, 2.0)), (&[2, 1], n)], |x| x[0].atan2(&x[1])),
        row("pow", &[(&[2, 3], p), (&[2, 3], n)], |x| x[0].pow(&x[1])),
        row("pow", &[(&[3], p), (&[2, 1], n)], |x| x[0].pow(&x[1])),
        row("compare", &[(&[2, 3], l0), (&[3], l1)], |x| x[0].gt(&x[1]).to_dtype(x[0].dtype()) * &x[0]),
        row("select", &[(&[2, 3], l1), (&[3], n), (&[2, 1], n)], |x| {
            x[0].gt(&x[0].zeros_scalar()).select(&x[1].sin(), &(&x[2] * &x[2]))
        }),
        row("reduce_sum", &[(&[2, 3, 4], n)], |x| x[0].reduce_sum(&[1])),
        row("reduce_sum", &[(&[2, 3, 4], n)], |x| x[0].reduce_sum(&[0, 2])),
        row("reduce_sum", &[(&[5], n)], |x| x[0].reduce_sum(&[0])),
        row("reduce_max", &[(&[3, 4], d)], |x| x[0].reduce_max(&[1])),
        row("reduce_max", &[(&[2, 3, 4], d)], |x| x[0].reduce_max(&[0, 2])),
        row("reduce_min", &[(&[3, 4], d)], |x| x[0].reduce_min(&[0])),
        row("reduce_prod", &[(&[2, 3, 4], n)], |x| x[0].reduce_prod(&[1])),
        row("reduce_prod", &[(&[2, 3, 5], n)], |x| x[0].reduce_prod(&[0, 2])),
        row("argmax", &[(&[3, 4], d)], |x| &x[0] * x[0].argmax(1).to_dtype(x[0].dtype()).expand_dims(1)),
        row("argmin", &[(&[3, 4], d)], |x| &x[0] * x[0].argmin(0).to_dtype(x[0].dtype())),
        row("argsort", &[(&[3, 4], d)], |x| &x[0] * x[0].argsort(1).to_dtype(x[0].dtype())),
        row("argsort", &[(&[5], d)], |x| &x[0] * x[0].argsort_descending(0).to_dtype(x[0].dtype())),
        row("sort", &[(&[3, 4], d)], |x| x[0].sort(1)),
        row("sort", &[(&[5, 2], d)], |x| {
            let (v, i) = x[0].sort_descending_with_indices(0);
            v * i.to_dtype(x[0].dtype())
        }),
        row("cumsum", &[(&[3, 4], n)], |x| x[0].cumsum(0)),
        row("cumsum", &[(&[3, 4], n)], |x| x[0].cumsum(1)),
        row("cumprod", &[(&[5, 2], n)], |x| x[0].cumprod(0)),
        row("cumprod", &[(&[2, 4], n)], |x| bind(Scan { op: ReduceOp::Prod, axis: 1, reverse: true }, &x[..1])),
        row("cummax", &[(&[6, 2], d)], |x| x[0].cummax(0)),
        row("cummax", &[(&[2, 3], d)], |x| bind(Scan { op: ReduceOp::Max, axis: 1, reverse: true }, &x[..1])),
        row("cummin", &[(&[2, 7], d)], |x| x[0].cummin(1)),
        row("broadcast", &[(&[3], n)], |x| x[0].broadcast_to(&[2, 3])),
        row("broadcast", &[(&[2, 1], n)], |x| x[0].broadcast_to(&[4, 2, 3])),
        row("reshape", &[(&[2, 3], n)], |x| x[0].reshape(&[3, 2])),
        row("permute", &[(&[2, 3, 4], n)], |x| x[0].permute(&[2, 0, 1])),
        row("slice", &[(&[4, 5], n)], |x| x[0].slice(1, 1, 4)),
        row("pad", &[(&[2, 3], n)], |x| x[0].pad(&[1, 0], &[2, 1])),
        row("rev", &[(&[2, 3, 4], n)], |x| x[0].flip(&[0, 2])),
        row("concat", &[(&[2, 1], n), (&[2, 3], n), (&[2, 2], n)], |x| Tensor::concat(x, 1)),
        row("gather", &[(&[5, 3], n)], |x| x[0].index_select(0, &idx(&[2, 0, 4, 2], &[2, 2]))),
        row("scatter_add", &[(&[5, 3], n), (&[4, 3], n)], |x| x[0].scatter_add(0, &idx(&[1, 3, 1, 0], &[4]), &x[1])),
        row("convert", &[(&[3], l1)], |x| x[0].to_dtype(DType::I64).to_dtype(x[0].dtype()) * &x[0]),
        // f32 to f64: its derivative is checked at f32's step and tolerance in both tables.
        Row { dtype: Some(DType::F32), ..row("convert", &[(&[3], n)], |x| x[0].to_dtype(DType::F64).sin()) },
        row("device_put", &[(&[2, 3], n)], |x| x[0].to_device(Device::Cpu).sin()),
        Row {
            prim: "stop_gradient",
            inputs: vec![(vec![3], n)],
            f: |x| x[0].sin() * x[0].stop_gradient(),
            check: Check::Tangent(|x, t| &t[0] * x[0].cos() * &x[0]),
            dtype: None,
        },
        row("matmul", &[(&[2, 3], n), (&[3, 4], n)], |x| x[0].matmul(&x[1])),
        row("matmul", &[(&[2, 2, 3], n), (&[3, 4], n)], |x| x[0].matmul(&x[1])),
        row("matmul", &[(&[2, 1, 2, 3], n), (&[3, 3, 2], n)], |x| x[0].matmul(&x[1])),
        row("conv", &[(&[2, 2, 5], n), (&[3, 2, 2], n)], |x| x[0].conv(&x[1], &ConvOptions::new())),
        row("conv", &[(&[1, 2, 5, 5], n), (&[2, 2, 3, 3], n)], |x| {
            x[0].conv(&x[1], &ConvOptions::new().stride(&[2]).padding(Padding::Same))
        }),
        row("conv", &[(&[2, 4, 5, 4], n), (&[4, 2, 2, 2], n)], |x| {
            let opts = ConvOptions::new().groups(2).dilation(&[2, 1]).padding(Padding::Explicit(vec![(1, 0)]));
            x[0].conv(&x[1], &opts)
        }),
        row("conv", &[(&[1, 1, 4, 4], n), (&[2, 1, 3, 2], n)], |x| {
            let opts =
                ConvOptions::new().input_dilation(&[2]).stride(&[1, 2]).padding(Padding::Explicit(vec![(-1, 1)]));
            x[0].conv(&x[1], &opts)
        }),
        row("conv", &[(&[1, 3, 4, 4], n), (&[3, 1, 2, 2], n)], |x| x[0].conv(&x[1], &ConvOptions::new().groups(3))),
        row("conv", &[(&[1, 1, 3, 3, 3], n), (&[2, 1, 2, 2, 2], n)], |x| x[0].conv(&x[1], &ConvOptions::new())),
        row("conv_input_grad", &[(&[1, 4, 3, 3], n), (&[4, 1, 3, 2], n)], |x| {
            x[0].conv_transpose(&x[1], &ConvOptions::new().stride(&[2]).groups(2).padding(Padding::symmetric(1)), &[1])
        }),
        // The kernel's gradient of a strided, padded, dilated, grouped convolution:
        // x [2, 4, 5, 6], a kernel [4, 2, 2, 3] -> output [2, 4, 3, 2].
        row("conv_kernel_grad", &[(&[2, 4, 5, 6], n), (&[2, 4, 3, 2], n)], |x| {
            let geometry = ConvGeometry {
                strides: vec![2, 2],
                padding: vec![(1, 0), (0, 1)],
                lhs_dilation: vec![1, 1],
                rhs_dilation: vec![1, 2],
            };
            bind(ConvKernelGrad { geometry, groups: 2, window: vec![2, 3] }, &[x[0].clone(), x[1].clone()])
        }),
        // The input's gradient of the same convolution (strided: the col2im path), and of a unit-stride one.
        row("conv_input_grad", &[(&[2, 4, 3, 2], n), (&[4, 2, 2, 3], n)], |x| {
            let geometry = ConvGeometry {
                strides: vec![2, 2],
                padding: vec![(1, 0), (0, 1)],
                lhs_dilation: vec![1, 1],
                rhs_dilation: vec![1, 2],
            };
            bind(ConvInputGrad { geometry, groups: 2, input: vec![5, 6] }, &[x[0].clone(), x[1].clone()])
        }),
        row("conv_input_grad", &[(&[1, 2, 4, 4], n), (&[2, 3, 3, 3], n)], |x| {
            let geometry = ConvGeometry { padding: vec![(1, 1); 2], ..ConvGeometry::unit(2) };
            bind(ConvInputGrad { geometry, groups: 1, input: vec![4, 4] }, &[x[0].clone(), x[1].clone()])
        }),
        row("window_argmax", &[(&[1, 2, 4, 5], d)], |x| x[0].max_pool(&[2, 2], &[], &Padding::Valid)),
        row("window_argmax", &[(&[2, 5], d)], |x| x[0].max_pool(&[3], &[2], &Padding::Same)),
        row("window_argmin", &[(&[3, 4], d)], |x| {
            x[0].reduce_window(ReduceOp::Min, &[2, 2], &[1], &Padding::symmetric(1))
        }),
        row("conv", &[(&[2, 5, 5], n)], |x| x[0].avg_pool(&[2, 3], &[2, 1], &Padding::symmetric(1), false)),
        row("matmul", &[(&[2, 3, 7], n)], |x| x[0].adaptive_avg_pool(&[2, 3])),
        row("matmul", &[(&[3], n), (&[3, 4], n)], |x| x[0].matmul(&x[1])),
        row("matmul", &[(&[2, 3], n), (&[3], n)], |x| x[0].matmul(&x[1])),
        row("matmul", &[(&[2, 3, 2], n), (&[2, 4, 3], n)], |x| {
            bind(Matmul { ta: true, tb: true }, &[x[0].clone(), x[1].clone()])
        }),
        // Linear algebra, on inputs made well conditioned: x xᵀ + 3I is SPD, x + 3I far from singular.
        row("cholesky", &[(&[3, 3], n)], |x| linalg::cholesky(&spd(&x[0]))),
        row("triangular_solve", &[(&[3, 3], n), (&[3, 2], n)], |x| {
            let how = linalg::Triangular { lower: false, transpose_a: true, ..Default::default() };
            linalg::triangular_solve(&shifted(&x[0]), &x[1], how)
        }),
        row("lu", &[(&[3, 3], n)], |x| linalg::lu(&shifted(&x[0])).0),
        row("lu_solve", &[(&[3, 3], n), (&[3], n)], |x| linalg::solve(&shifted(&x[0]), &x[1])),
        row("eigh", &[(&[3, 3], n)], |x| linalg::eigh(&(&x[0] + x[0].t())).0),
        // The eigenvectors' squares: free of their signs.
        row("eigh", &[(&[3, 3], n)], |x| linalg::eigh(&(&x[0] + x[0].t())).1.square()),
        row("qr", &[(&[4, 3], n)], |x| {
            let (q, r) = linalg::qr(&graded(&x[0]), false);
            q.sum_axes(&[1], false) + r.sum_axes(&[0], false).sum()
        }),
        row("svd", &[(&[4, 3], n)], |x| linalg::svd(&graded(&x[0]), false).1),
        row("svd", &[(&[4, 3], n)], |x| linalg::svd(&graded(&x[0]), false).0.square()),
        // A wide matrix (V's correction term) in f64: in f32 the second
        // difference of the iterative SVD's vectors (converged to about ε_f32,
        // divided by h² ≈ 2.4e-5) sits at the 5e-3 tolerance.
        Row {
            dtype: Some(DType::F64),
            ..row("svd", &[(&[3, 4], n)], |x| linalg::svd(&graded(&x[0]), false).0.square())
        },
        // Appended, so that the rows above keep their seeds.
        row("gelu", &[(&[6], n)], |x| x[0].gelu()),
        row("gelu_grad", &[(&[6], n)], |x| x[0].gelu_grad()),
        row("standardize", &[(&[3, 4], n)], |x| Standardize { axes: 1, eps: 1e-5 }.apply(&x[0])),
        row("standardize", &[(&[2, 3, 2], n)], |x| Standardize { axes: 2, eps: 0.1 }.apply(&x[0])),
        // Both operands differentiated: the second order runs the rule along
        // the point. Its second derivative scales with r³ (r = 1/√(var +
        // eps)); eps = 0.5 keeps r ≤ √2, where with eps = 1e-5 one f32 seed's
        // second difference sat at the tolerance (f64 passes either way).
        row("standardize_tangent", &[(&[3, 5], n), (&[3, 5], n)], |x| {
            bind(StandardizeTangent { axes: 1, eps: 0.5 }, &[x[0].clone(), x[1].clone()])
        }),
        row("softmax", &[(&[3, 5], n)], |x| Softmax { axes: 1 }.apply(&x[0])),
        row("softmax", &[(&[2, 2, 3], n)], |x| Softmax { axes: 2 }.apply(&x[0])),
        // Any point, not only a softmax: the map is a polynomial in both operands.
        row("softmax_tangent", &[(&[3, 4], n), (&[3, 4], n)], |x| {
            bind(SoftmaxTangent { axes: 1 }, &[x[0].clone(), x[1].clone()])
        }),
        // Later primitives at the end, so that each row keeps its random draw.
        row("gelu_tanh", &[(&[6], n)], |x| x[0].gelu_tanh()),
        row("gelu_tanh_grad", &[(&[6], n)], |x| x[0].gelu_tanh_grad()),
        row("softplus", &[(&[2, 3], n)], |x| x[0].softplus()),
    ]
}

fn inputs(row: &Row, dtype: DType, seed: u64) -> Vec<Tensor> {
    let mut rng = Rng::new(seed);
    row.inputs
        .iter()
        .map(|(shape, dom)| {
            let n: usize = shape.iter().product();
            let mut ranks: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                ranks.swap(i, rng.below(i + 1));
            }
            let v: Vec<f64> = (0..n)
                .map(|i| match dom {
                    Distinct => ranks[i] as f64 * 0.5 + rng.uniform_in(-0.05, 0.05),
                    Normal => rng.normal(),
                    Positive => rng.uniform_in(0.5, 2.0),
                    Range(lo, hi) => rng.uniform_in(*lo, *hi),
                    Lattice(offset) => rng.below(7) as f64 - 3.0 + offset + rng.uniform_in(-0.1, 0.1),
                })
                .collect();
            Tensor::from_vec(v, shape).to_dtype(dtype)
        })
        .collect()
}

fn run_table(dtype: DType, modes: &[Mode], device: Device) {
    let mut failures = Vec::new();
    for (i, row) in table().iter().enumerate() {
        for seed in 0..3 {
            let dtype = row.dtype.unwrap_or(dtype);
            let x: Vec<Tensor> =
                inputs(row, dtype, 1000 * i as u64 + seed).iter().map(|t| t.to_device(device)).collect();
            let f = |xs: &Vec<Tensor>| (row.f)(xs);
            let result = match &row.check {
                Check::Grads => check_grads_with(f, &x, 2, modes, None).map_err(|e| e.to_string()),
                Check::Tangent(expected) => {
                    let t = inputs(row, dtype, 7 + seed);
                    let (_, got) = jvp(f, &x, &t);
                    let want = expected(&x, &t);
                    let ok = got.to_vec::<f64>().iter().zip(want.to_vec::<f64>()).all(|(a, b)| (a - b).abs() < 1e-12);
                    if ok {
                        Ok(())
                    } else {
                        Err(format!("tangent {got} != {want}"))
                    }
                }
            };
            if let Err(e) = result {
                failures.push(format!(
                    "row {i} ({}, inputs {:?}, seed {seed}): {e}",
                    row.prim,
                    row.inputs.iter().map(|r| &r.0).collect::<Vec<_>>()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_primitive_passes_check_grads_in_f64() {
    run_table(DType::F64, &[Mode::Forward, Mode::Reverse], Device::Cpu);
}

/// The same table in f32. The default f32 tolerance (5e-3) is justified in
/// `Tolerance::for_dtype`: the central difference's round-off is about
/// ε_f32 / h ≈ 2.4e-5 relative at h = ε^(1/3), plus f32 rounding inside the
/// function itself; 5e-3 leaves two decades of room.
#[test]
fn every_primitive_passes_check_grads_in_f32() {
    run_table(DType::F32, &[Mode::Forward, Mode::Reverse], Device::Cpu);
}

/// The gradient-check table with every input on the GPU (skipped without one).
#[test]
fn every_primitive_passes_check_grads_on_the_gpu() {
    let Some(gpu) = common::gpu::gpu_or_skip() else { return };
    run_table(DType::F64, &[Mode::Forward, Mode::Reverse], gpu);
    run_table(DType::F32, &[Mode::Forward, Mode::Reverse], gpu);
}

/// Every row's value, forward-mode tangent and reverse-mode cotangents on
/// the GPU against the CPU's on the same inputs, and the results left on
/// the GPU. The two differ by the math libraries' last bits (CUDA's
/// functions are within 4 ulp of the exact result, Rust's within 1) and by
/// the order of summation in reductions and matrix products, carried
/// through well-conditioned rows: far below 1e-9 in f64 and 2e-4 in f32,
/// while any wrong formula or index is off by far more.
#[test]
fn every_primitive_on_the_gpu_agrees_with_the_cpu() {
    let Some(gpu) = common::gpu::gpu_or_skip() else { return };
    let mut failures = Vec::new();
    for (dtype, rtol) in [(DType::F64, 1e-9), (DType::F32, 2e-4), (DType::BF16, 0.05)] {
        for (i, row) in table().iter().enumerate() {
            if dtype.is_half() && (row.dtype.is_some() || FULL_PRECISION_ONLY.contains(&row.prim)) {
                continue;
            }
            let d = row.dtype.unwrap_or(dtype);
            let f = |xs: &Vec<Tensor>| (row.f)(xs);
            let x = inputs(row, d, 300 + i as u64);
            let t = inputs(row, d, 600 + i as u64);
            let on = |v: &[Tensor]| -> Vec<Tensor> { v.iter().map(|a| a.to_device(gpu)).collect() };
            let (y, jt) = jvp(f, &x, &t);
            let (yg, jtg) = jvp(f, &on(&x), &on(&t));
            let ct = Tensor::randn(y.shape(), y.dtype(), 9 + i as u64);
            let back = vjp(f, &x).1(&ct);
            let back_g = vjp(f, &on(&x)).1(&ct.to_device(gpu));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for (what, g, c) in [("value", &yg, &y), ("tangent", &jtg, &jt)] {
                    assert_eq!(g.device(), gpu, "the {what} left the GPU");
                    common::gpu::assert_close(g, c, rtol, what);
                }
                for (g, c) in back_g.iter().zip(&back) {
                    assert_eq!(g.device(), gpu, "a cotangent left the GPU");
                    common::gpu::assert_close(g, c, rtol, "cotangent");
                }
            }));
            if let Err(e) = result {
                let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
                failures.push(format!("row {i} ({}) in {d}: {msg}", row.prim));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// The linear-algebra primitives, which refuse f16 and bf16 (as LAPACK and
/// JAX's CPU linear algebra do).
const FULL_PRECISION_ONLY: [&str; 7] = ["cholesky", "triangular_solve", "lu", "lu_solve", "eigh", "qr", "svd"];

/// `|a - b| ≤ rtol (|b| + mean |b|)` elementwise, or a message.
fn close(what: &str, a: &Tensor, b: &Tensor, rtol: f64) -> Result<(), String> {
    let (a, b) = (a.to_dtype(DType::F64).to_vec::<f64>(), b.to_dtype(DType::F64).to_vec::<f64>());
    let scale = b.iter().map(|v| v.abs()).sum::<f64>() / b.len().max(1) as f64;
    // A NaN where f32 has none (or the reverse) fails the comparison.
    let agree = |x: f64, y: f64| (x - y).abs() <= rtol * (y.abs() + scale) || (x.is_nan() && y.is_nan());
    match a.iter().zip(&b).find(|(x, y)| !agree(**x, **y)) {
        None => Ok(()),
        Some((x, y)) => Err(format!("{what}: {x} against f32's {y} (tolerance {rtol:e} relative)")),
    }
}

/// The table in a 16-bit float against f32 on the same inputs (rounded to
/// the 16-bit type, so both see the same values): the value, a tangent by
/// forward mode and a cotangent by reverse mode. The 16-bit run computes
/// each operation in f32 and rounds its result, so it differs from the f32
/// run by a rounding (relative 2⁻⁹ for bf16, 2⁻¹² for f16) per operation on
/// the way, carried through functions that are well conditioned on the
/// rows' domains; the tolerance allows 32 of them.
fn run_half_table(half: DType, unit_roundoff: f64) {
    let rtol = 32.0 * unit_roundoff;
    let mut failures = Vec::new();
    for (i, row) in table().iter().enumerate() {
        if row.dtype.is_some() || !matches!(row.check, Check::Grads) || FULL_PRECISION_ONLY.contains(&row.prim) {
            continue;
        }
        let f = |xs: &Vec<Tensor>| (row.f)(xs);
        let rounded = |xs: Vec<Tensor>| -> (Vec<Tensor>, Vec<Tensor>) {
            let h: Vec<Tensor> = xs.iter().map(|x| x.to_dtype(half)).collect();
            let w = h.iter().map(|x| x.to_dtype(DType::F32)).collect();
            (h, w)
        };
        let (xh, xw) = rounded(inputs(row, DType::F32, 500 + i as u64));
        let (th, tw) = rounded(inputs(row, DType::F32, 900 + i as u64));
        let (yh, jh) = jvp(f, &xh, &th);
        let (yw, jw) = jvp(f, &xw, &tw);
        let ct = Tensor::randn(yw.shape(), DType::F32, 7).to_dtype(half);
        let (_, back_h) = vjp(f, &xh);
        let (_, back_w) = vjp(f, &xw);
        let (gh, gw) = (back_h(&ct), back_w(&ct.to_dtype(DType::F32)));
        let dtypes_kept = yh.dtype() == half && jh.dtype() == half && gh.iter().all(|g| g.dtype() == half);
        let result = close("value", &yh, &yw, rtol)
            .and_then(|()| close("tangent", &jh, &jw, rtol))
            .and_then(|()| gh.iter().zip(&gw).try_for_each(|(a, b)| close("cotangent", a, b, rtol)))
            .and_then(|()| if dtypes_kept { Ok(()) } else { Err(format!("a result left {half}")) });
        if let Err(e) = result {
            failures.push(format!("row {i} ({}): {e}", row.prim));
        }
    }
    assert!(failures.is_empty(), "{} failures in {half}:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_primitive_in_bf16_and_f16_agrees_with_f32() {
    run_half_table(DType::BF16, 2f64.powi(-9));
    run_half_table(DType::F16, 2f64.powi(-12));
}

#[test]
fn every_primitive_has_a_row_in_the_table() {
    let mut names: Vec<&str> = ferrax::prims::all().iter().map(|p| p.name()).collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 60, "the registry lists only {} primitives: {names:?}", names.len());
    let rows: Vec<&str> = table().iter().map(|r| r.prim).collect();
    let missing: Vec<&&str> = names.iter().filter(|n| !rows.contains(n)).collect();
    assert!(missing.is_empty(), "primitives without a gradient-check row: {missing:?}");
    let unknown: Vec<&&str> = rows.iter().filter(|r| !names.contains(r)).collect();
    assert!(unknown.is_empty(), "table rows naming no primitive: {unknown:?}");
}

#[test]
fn every_row_applies_the_primitive_it_names() {
    for (i, row) in table().iter().enumerate() {
        let x = inputs(row, row.dtype.unwrap_or(DType::F64), 0);
        let graph = make_graph(|xs: &Vec<Tensor>| (row.f)(xs), &x);
        graph.check().unwrap();
        assert!(
            graph.eqns.iter().any(|e| e.prim.name() == row.prim),
            "row {i} is filed under {} but its graph does not use it:\n{graph}",
            row.prim
        );
    }
}

#[test]
fn a_wrong_derivative_is_caught_and_named() {
    // sin with the derivative of cos would be a wrong rule; emulate it with stop_gradient.
    let f = |x: &Tensor| x.sin().stop_gradient() + x.cos();
    let x = Tensor::from_vec(vec![0.3, 1.1], &[2]);
    let err = check_grads_with(f, &x, 1, &[Mode::Forward], Some(Tolerance { atol: 1e-6, rtol: 1e-6 })).unwrap_err();
    assert_eq!(err.order, 1);
    let msg = err.to_string();
    assert!(msg.contains("forward-mode derivative of order 1 disagrees"), "{msg}");
    assert!(msg.contains("got") && msg.contains("expected") && msg.contains("tolerance"), "{msg}");
}

/// Every way of batching a row's operands: for each operand, the batch axis
/// first, last, or absent (but not absent from all).
fn axis_choices(n: usize) -> Vec<Vec<Option<isize>>> {
    let mut out = vec![vec![]];
    for _ in 0..n {
        out = out
            .into_iter()
            .flat_map(|c: Vec<Option<isize>>| [Some(0), Some(-1), None].map(|a| [c.clone(), vec![a]].concat()))
            .collect();
    }
    out.retain(|c| c.iter().any(Option::is_some));
    out
}

/// `x` with a batch of `size` distinct copies inserted at `axis` (negative: from the end).
fn batched_input(x: &Tensor, axis: isize, size: usize, seed: u64) -> Tensor {
    let at = if axis < 0 { (x.rank() as isize + 1 + axis) as usize } else { axis as usize };
    if size == 0 {
        let mut shape = x.shape().to_vec();
        shape.insert(at, 0);
        return Tensor::zeros(&shape, x.dtype());
    }
    let members: Vec<Tensor> =
        (0..size).map(|b| x + Tensor::randn(x.shape(), x.dtype(), seed + b as u64) * 0.1).collect();
    Tensor::stack(&members, at)
}

#[test]
fn every_primitive_batches_like_a_loop() {
    batches_like_a_loop(DType::F64, 1e-12, Device::Cpu);
}

/// The batching table on the GPU (skipped without one).
#[test]
fn every_primitive_batches_like_a_loop_on_the_gpu() {
    let Some(gpu) = common::gpu::gpu_or_skip() else { return };
    batches_like_a_loop(DType::F64, 1e-12, gpu);
}

/// In bf16 too, bit for bit: each batched kernel computes every member's
/// f32 result as the looped one does and rounds it once.
#[test]
fn every_primitive_batches_like_a_loop_in_bf16() {
    batches_like_a_loop(DType::BF16, 0.0, Device::Cpu);
}

fn batches_like_a_loop(table_dtype: DType, rtol: f64, device: Device) {
    let mut failures = Vec::new();
    for (i, row) in table().iter().enumerate() {
        if table_dtype.is_half() && (row.dtype.is_some() || FULL_PRECISION_ONLY.contains(&row.prim)) {
            continue;
        }
        let dtype = row.dtype.unwrap_or(table_dtype);
        let x: Vec<Tensor> = inputs(row, dtype, 77 + i as u64).iter().map(|t| t.to_device(device)).collect();
        let one = (row.f)(&x);
        // Batches of 3, of 1, and empty ones: the batch rules must handle a size-0 axis.
        for size in [3, 1, 0] {
            for in_axes in axis_choices(x.len()) {
                let batched: Vec<Tensor> = x
                    .iter()
                    .zip(&in_axes)
                    .enumerate()
                    .map(|(k, (v, a))| match a {
                        Some(a) => batched_input(v, *a, size, 100 * k as u64).to_device(device),
                        None => v.clone(),
                    })
                    .collect();
                let got = vmap_axes(|xs: &Vec<Tensor>| (row.f)(xs), &in_axes, &[0])(&batched);
                let members: Vec<Tensor> = (0..size)
                    .map(|b| {
                        let xs: Vec<Tensor> = batched
                            .iter()
                            .zip(&in_axes)
                            .map(|(v, a)| match a {
                                Some(a) => {
                                    let ax = if *a < 0 { (v.rank() as isize + a) as usize } else { *a as usize };
                                    v.slice(ax, b, b + 1).squeeze(ax)
                                }
                                None => v.clone(),
                            })
                            .collect();
                        (row.f)(&xs)
                    })
                    .collect();
                let want = if size == 0 {
                    let mut shape = vec![0];
                    shape.extend_from_slice(one.shape());
                    Tensor::zeros(&shape, one.dtype())
                } else {
                    Tensor::stack(&members, 0)
                };
                let wide = |t: &Tensor| t.to_dtype(DType::F64).to_vec::<f64>();
                let ok = got.shape() == want.shape()
                    && got.dtype() == want.dtype()
                    && wide(&got).iter().zip(wide(&want)).all(|(a, b)| (a - b).abs() <= rtol * (1.0 + b.abs()));
                if !ok {
                    failures.push(format!(
                        "row {i} ({}) with batch {size}, in_axes {in_axes:?}: got {got:?}, want {want:?}",
                        row.prim
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// An eager backward pass scatters a gather's cotangent straight onto
/// zeros; under `jit` the transpose runs as operations. Both give the same
/// bits: repeated, negative and out-of-range indices in every mode, along
/// an axis with elements after it and along the last.
#[test]
fn a_gathers_eager_transpose_has_the_bits_of_the_traced_one() {
    let x = Tensor::randn(&[3, 5, 4], DType::F32, 7);
    let ix = idx(&[4, -1, 0, 4, 9, -7, 2, 4], &[2, 4]);
    for mode in [IndexMode::Fill, IndexMode::FillZero, IndexMode::Clip] {
        for axis in [1, 2] {
            // Weights of several magnitudes, so that the order in which
            // repeated indices add up shows in the bits; the cotangent
            // depends on x, so that under jit it is traced. (The fill values
            // a `Fill` gather reads make the loss NaN, but their cotangents
            // are dropped.)
            let w = Tensor::randn(x.index_select_with(axis, &ix, mode).shape(), DType::F32, 9).exp();
            let f = |x: &Tensor| (x.index_select_with(axis, &ix, mode).square() * &w).sum();
            let eager = grad(f)(&x);
            let traced = jit(grad(f))(&x);
            assert!(eager.to_array().bit_eq(&traced.to_array()), "mode {mode:?}, axis {axis}");
            assert!(eager.abs().sum().item() > 0.0);
        }
    }
}

/// Under `jit` a large gather's transpose scatters onto zeros the program
/// makes as a broadcast of one zero, which the scatter then writes over,
/// rather than carrying (and copying) a constant array of zeros: the same
/// bits as the eager transpose.
#[test]
fn a_large_gathers_traced_transpose_scatters_onto_a_broadcast_of_zeros() {
    let x = Tensor::randn(&[4, 20000], DType::F32, 11);
    let ix = idx(&[19999, 0, 7, 7, 123, 20000, -1, 5000], &[8]);
    let f = |x: &Tensor| (x.index_select_with(1, &ix, IndexMode::FillZero).square()).sum();
    let eager = grad(f)(&x);
    let traced = jit(grad(f))(&x);
    assert!(eager.to_array().bit_eq(&traced.to_array()));
    let g = make_graph(grad(f), &x).optimized();
    let largest = g.consts.iter().map(|(_, t)| t.size()).max().unwrap_or(0);
    assert!(largest < x.size(), "a constant of {largest} elements is left in\n{g}");
    let zeros = g.eqns.iter().find(|e| e.prim.name() == "scatter_add").map(|e| e.inputs[0]);
    let made = g.eqns.iter().find(|e| Some(e.outs[0]) == zeros).map(|e| e.prim.name());
    assert_eq!(made, Some("broadcast"), "{g}");
}
