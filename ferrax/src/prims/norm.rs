//! Standardisation over trailing axes — layer normalisation's core,
//! `(x - mean) / √(var + eps)` — as one primitive, and its tangent map as
//! another.
//!
//! The tangent at `x` in direction `t` is `r (t - mean(t) - y mean(y t))`
//! (row by row, `y` the standardised row and `r` its reciprocal standard
//! deviation). That map is linear in `t` and symmetric, so the transpose of
//! [`StandardizeTangent`] is itself: the backward pass of a layer
//! normalisation is one kernel, as the forward pass is, where the
//! composite definition took about fifteen passes over its rows. Its own
//! derivative with respect to `x` (second order and up) is written with
//! ordinary operations.
//!
//! Softmax over trailing axes is built the same way: [`Softmax`], and its
//! tangent `y (t - Σ y t)` at the output `y`, [`SoftmaxTangent`], which is
//! symmetric too. Composed of reductions and elementwise operations, the
//! attention scores' softmax and its backward pass took about ten passes
//! over the scores.

use crate::array::{backend_of, Array, Aval};
use crate::core::{bind, Kind, Lin, Param, Params, SingleOutput, Tensor};

use super::{add_tangents, batching, expect_float, expect_same_dtype};

/// `x` standardised over its last `axes` axes: `(x - mean) / √(var + eps)`
/// with the mean and the biased variance of each run of those axes, as
/// PyTorch's `layer_norm` without its affine part.
#[derive(Clone, Debug)]
pub struct Standardize {
    /// How many trailing axes each run spans.
    pub axes: usize,
    /// Added to the variance.
    pub eps: f64,
}

/// The tangent map of [`Standardize`] at `x` (operand 1) applied to `t`
/// (operand 0, the same shape): linear in `t`, and its own transpose.
#[derive(Clone, Debug)]
pub struct StandardizeTangent {
    /// How many trailing axes each run spans.
    pub axes: usize,
    /// Added to the variance.
    pub eps: f64,
}

/// The length of the runs of `axes` trailing axes of `shape`, checked.
#[track_caller]
fn run_length(op: &str, shape: &[usize], axes: usize) -> usize {
    if axes == 0 || axes > shape.len() {
        panic!("{op}: standardises over 1 to {} trailing axes of {shape:?}, got {axes}", shape.len());
    }
    shape[shape.len() - axes..].iter().product()
}

fn params(axes: usize, eps: f64) -> Params {
    vec![("axes", Param::Usize(axes)), ("eps", Param::Float(eps.to_bits()))]
}

/// The shape rule of a tangent map `(t, p)` over runs of `axes` trailing
/// axes: the tangent and the point `p` (named `what` in messages) of one
/// float dtype and one shape, which the result has.
#[track_caller]
fn tangent_shape(op: &str, what: &str, ins: &[&Aval], axes: usize) -> Aval {
    let (t, p) = (ins[0], ins[1]);
    expect_same_dtype(op, t, p);
    expect_float(op, p);
    if t.shape != p.shape {
        panic!("{op}: the tangent {:?} and the {what} {:?} must have one shape", t.shape, p.shape);
    }
    run_length(op, &p.shape, axes);
    p.clone()
}

/// The transpose of a tangent map `(t, p)` that is symmetric in `t`: the
/// same map at the same (constant) point, applied to the cotangent.
fn symmetric_transpose<P: SingleOutput + Clone>(map: &P, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
    let p = super::constant(map.name(), &ins[1]);
    let ct_t = super::if_linear(&ins[0], |_| bind(map.clone(), &[ct.clone(), p.clone()]));
    vec![ct_t, None]
}

/// The batch rule of a map over runs of trailing axes: every operand's
/// batch axis leading (an unbatched operand broadcast), which the runs
/// leave alone.
fn batch_leading<P: SingleOutput + Clone>(
    map: &P,
    x: &[Tensor],
    axes: &[Option<usize>],
    size: usize,
) -> (Tensor, Option<usize>) {
    let args: Vec<Tensor> = x.iter().zip(axes).map(|(v, &a)| batching::batch_first(v, a, size)).collect();
    (bind(map.clone(), &args), Some(0))
}

impl Standardize {
    /// `x` standardised by this primitive.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        bind(self.clone(), std::slice::from_ref(x))
    }

    /// The reciprocal standard deviation of each run, its axes kept (size 1), by ordinary operations.
    fn rstd(&self, x: &Tensor) -> Tensor {
        let axes: Vec<usize> = (x.rank() - self.axes..x.rank()).collect();
        let centered = x - x.mean_axes(&axes, true);
        (centered.square().mean_axes(&axes, true) + self.eps).sqrt().recip()
    }
}

impl SingleOutput for Standardize {
    fn name(&self) -> &'static str {
        "standardize"
    }
    fn params(&self) -> Params {
        params(self.axes, self.eps)
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        expect_float("standardize", ins[0]);
        run_length("standardize", &ins[0].shape, self.axes);
        ins[0].clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        let n = run_length("standardize", ins[0].shape(), self.axes);
        backend_of(ins).standardize(ins[0], n, self.eps)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        let tangent = StandardizeTangent { axes: self.axes, eps: self.eps };
        t[0].as_ref().map(|t| bind(tangent, &[t.clone(), x[0].clone()]))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        batch_leading(self, x, axes, size)
    }
}

impl SingleOutput for StandardizeTangent {
    fn name(&self) -> &'static str {
        "standardize_tangent"
    }
    fn params(&self) -> Params {
        params(self.axes, self.eps)
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        tangent_shape("standardize_tangent", "point", ins, self.axes)
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        let n = run_length("standardize_tangent", ins[1].shape(), self.axes);
        backend_of(ins).standardize_tangent(ins[0], ins[1], n, self.eps)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        let (tv, xv) = (&x[0], &x[1]);
        // Linear in the tangent operand.
        let along_t = t[0].as_ref().map(|dt| bind(self.clone(), &[dt.clone(), xv.clone()]));
        // Along x: with a = mean(y t) and u the tangent of y along dx,
        // d[r (t - mean t - y a)] = dr (t - mean t - y a) - r (u a + y mean(u t)),
        // where dr = -r² mean(y dx).
        let along_x = t[1].as_ref().map(|dx| {
            let axes: Vec<usize> = (xv.rank() - self.axes..xv.rank()).collect();
            let forward = Standardize { axes: self.axes, eps: self.eps };
            let (y, r) = (forward.apply(xv), forward.rstd(xv));
            let u = bind(self.clone(), &[dx.clone(), xv.clone()]);
            let a = (&y * tv).mean_axes(&axes, true);
            let dr = -(&r * &r) * (&y * dx).mean_axes(&axes, true);
            let base = tv - tv.mean_axes(&axes, true) - &y * &a;
            dr * base - &r * (&u * &a + &y * (&u * tv).mean_axes(&axes, true))
        });
        add_tangents(along_t, along_x)
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        symmetric_transpose(self, ct, ins)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        batch_leading(self, x, axes, size)
    }
}

/// Softmax over the last `axes` axes of `x`: `e / Σe` with `e = exp(x -
/// max x)` per run, as one primitive (`Tensor::softmax` along the last axis
/// binds it). Its tangent is [`SoftmaxTangent`] at its output.
#[derive(Clone, Debug)]
pub struct Softmax {
    /// How many trailing axes each run spans.
    pub axes: usize,
}

/// The tangent map of [`Softmax`] at the point whose softmax is `y`
/// (operand 1), applied to `t` (operand 0): `y (t - Σ y t)` per run. Linear
/// in `t`, and its own transpose (the Jacobian `diag(y) - y yᵀ` is symmetric).
#[derive(Clone, Debug)]
pub struct SoftmaxTangent {
    /// How many trailing axes each run spans.
    pub axes: usize,
}

impl Softmax {
    /// The softmax of `x` by this primitive.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        bind(self.clone(), std::slice::from_ref(x))
    }
}

impl SingleOutput for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }
    fn params(&self) -> Params {
        vec![("axes", Param::Usize(self.axes))]
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        expect_float("softmax", ins[0]);
        run_length("softmax", &ins[0].shape, self.axes);
        ins[0].clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        let n = run_length("softmax", ins[0].shape(), self.axes);
        backend_of(ins).softmax(ins[0], n)
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor> {
        let tangent = SoftmaxTangent { axes: self.axes };
        t[0].as_ref().map(|t| bind(tangent, &[t.clone(), ans.clone()]))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        batch_leading(self, x, axes, size)
    }
}

impl SingleOutput for SoftmaxTangent {
    fn name(&self) -> &'static str {
        "softmax_tangent"
    }
    fn params(&self) -> Params {
        vec![("axes", Param::Usize(self.axes))]
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        tangent_shape("softmax_tangent", "softmax", ins, self.axes)
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        let n = run_length("softmax_tangent", ins[1].shape(), self.axes);
        backend_of(ins).softmax_tangent(ins[0], ins[1], n)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        let (tv, y) = (&x[0], &x[1]);
        // Linear in the tangent operand.
        let along_t = t[0].as_ref().map(|dt| bind(self.clone(), &[dt.clone(), y.clone()]));
        // Along y: d[y (t - Σ y t)] = dy (t - Σ y t) - y Σ dy t.
        let along_y = t[1].as_ref().map(|dy| {
            let axes: Vec<usize> = (y.rank() - self.axes..y.rank()).collect();
            let s = (y * tv).sum_axes(&axes, true);
            dy * (tv - s) - y * (dy * tv).sum_axes(&axes, true)
        });
        add_tangents(along_t, along_y)
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        symmetric_transpose(self, ct, ins)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        batch_leading(self, x, axes, size)
    }
}
