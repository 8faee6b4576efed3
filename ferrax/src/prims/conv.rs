//! Convolution, and the window search that max pooling gathers through.
//!
//! `conv` is bilinear, so its jvp is two convolutions and its transpose with
//! respect to either operand is again a convolution (the forms of JAX's
//! `conv_general_dilated`): the input's cotangent convolves the output's
//! cotangent with the flipped kernel over an input dilated by the strides
//! (a transposed convolution), and the kernel's convolves the input with
//! the output's cotangent, the batch axis becoming the contracted one.

use crate::array::{backend_of, dilate, Array, Aval, ConvGeometry, DType, ReduceOp};
use crate::core::{bind, Kind, Lin, Param, Params, SingleOutput, Tensor};

use super::{add_tangents, batching, constant, expect_float, expect_same_dtype, if_linear};

/// The `conv` primitive: `lhs [N, C, S..]` cross-correlated with `rhs
/// [O, C / groups, K..]` (PyTorch's NCHW and OIHW layouts) into `[N, O, P..]`,
/// with the window placed by `geometry`. Channels split into `groups`
/// independent groups (`groups == C`: depthwise).
#[derive(Clone, Debug)]
pub struct Conv {
    /// Strides, padding and dilations along the spatial axes.
    pub geometry: ConvGeometry,
    /// The number of feature groups.
    pub groups: usize,
}

impl SingleOutput for Conv {
    fn name(&self) -> &'static str {
        "conv"
    }
    fn params(&self) -> Params {
        let g = &self.geometry;
        vec![
            ("strides", Param::List(g.strides.clone())),
            ("padding", Param::Ints(g.padding.iter().flat_map(|&(lo, hi)| [lo, hi]).collect())),
            ("lhs_dilation", Param::List(g.lhs_dilation.clone())),
            ("rhs_dilation", Param::List(g.rhs_dilation.clone())),
            ("groups", Param::Usize(self.groups)),
        ]
    }
    fn kind(&self) -> Kind {
        Kind::Contraction
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let (x, w) = (ins[0], ins[1]);
        expect_same_dtype("conv", x, w);
        expect_float("conv", x);
        let g = &self.geometry;
        let d = g.rank();
        if d == 0 || x.rank() != d + 2 || w.rank() != d + 2 {
            panic!(
                "conv: expected an input [N, C, spatial..] and a kernel [O, C/groups, window..] with {d} spatial \
                 axes each (at least one), got {:?} and {:?}",
                x.shape, w.shape
            );
        }
        let lists = [&g.lhs_dilation, &g.rhs_dilation, &g.strides];
        if g.padding.len() != d || lists.iter().any(|l| l.len() != d || l.contains(&0)) {
            panic!("conv: strides, padding and dilations need one entry per spatial axis ({d}), strides and dilations >= 1, got {g:?}");
        }
        let (c, o, groups) = (x.shape[1], w.shape[0], self.groups);
        if groups == 0 || c % groups != 0 || o % groups != 0 || w.shape[1] * groups != c {
            panic!(
                "conv: with {groups} group(s), the input's {c} channels and the kernel's {o} output channels must \
                 divide by the groups and the kernel's axis 1 must be C / groups = {}; got input {:?}, kernel {:?}",
                c.checked_div(groups).unwrap_or(0),
                x.shape,
                w.shape
            );
        }
        let mut shape = vec![x.shape[0], o];
        shape.extend(g.out_shape(&x.shape[2..], &w.shape[2..]));
        Aval { dtype: x.dtype, shape }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).conv(ins[0], ins[1], &self.geometry, self.groups)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        let dx = t[0].as_ref().map(|t| self.apply(t, &x[1]));
        let dw = t[1].as_ref().map(|t| self.apply(&x[0], t));
        add_tangents(dx, dw)
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let ct_x = if_linear(&ins[0], |x| self.transpose_lhs(ct, &x.shape, constant("conv", &ins[1])));
        let ct_w = if_linear(&ins[1], |w| {
            let kernel_grad =
                ConvKernelGrad { geometry: self.geometry.clone(), groups: self.groups, window: w.shape[2..].to_vec() };
            bind(kernel_grad, &[constant("conv", &ins[0]).clone(), ct.clone()])
        });
        vec![ct_x, ct_w]
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        let (lhs, rhs) = (&x[0], &x[1]);
        let groups = self.groups;
        match (axes[0], axes[1]) {
            // A batch of inputs: one bigger batch of images.
            (Some(bd), None) => {
                let l = batching::move_axis(lhs, bd, 0);
                let mut merged = l.shape()[1..].to_vec();
                merged[0] *= size;
                let out = self.apply(&l.reshape(&merged), rhs);
                (split_axis(&out, 0, size, l.shape()[1]), Some(0))
            }
            // A batch of kernels: more output channels, ordered so each group keeps its own.
            (None, Some(bd)) => {
                let r = batching::move_axis(rhs, bd, 0); // [B, O, Cg, K..]
                let (o, rest) = (r.shape()[1], r.shape()[2..].to_vec());
                let og = o / groups;
                let r = r.reshape(&[&[size, groups, og][..], &rest].concat());
                let mut perm: Vec<usize> = (0..r.rank()).collect();
                perm.swap(0, 1);
                let r = r.permute(&perm).reshape(&[&[groups * size * og][..], &rest].concat());
                let out = self.apply(lhs, &r); // [N, G·B·Og, P..]
                let (n, p) = (out.shape()[0], out.shape()[2..].to_vec());
                let out = out.reshape(&[&[n, groups, size, og][..], &p].concat());
                let mut perm: Vec<usize> = (0..out.rank()).collect();
                perm.swap(1, 2);
                (out.permute(&perm).reshape(&[&[n, size, o][..], &p].concat()), Some(1))
            }
            // Both: each member is its own set of groups.
            _ => {
                let l = batching::batch_first(lhs, axes[0], size); // [B, N, C, S..]
                let r = batching::batch_first(rhs, axes[1], size); // [B, O, Cg, K..]
                let (n, s) = (l.shape()[1], l.shape()[3..].to_vec());
                let (o, cg, k) = (r.shape()[1], r.shape()[2], r.shape()[3..].to_vec());
                let conv = Conv { geometry: self.geometry.clone(), groups: groups * size };
                if size == 0 {
                    let mut shape = vec![n, 0, o];
                    shape.extend(self.geometry.out_shape(&s, &k));
                    return (Tensor::zeros(&shape, lhs.dtype()), Some(1));
                }
                let l = members_as_channels(&l);
                let r = r.reshape(&[&[size * o, cg][..], &k].concat());
                let out = conv.apply(&l, &r);
                (split_axis(&out, 1, size, o), Some(1))
            }
        }
    }
}

/// `[B, N, C, S..]` as `[N, B·C, S..]`: each batch member's channels become
/// groups of their own, member-major, as the batch rules fold a batch.
fn members_as_channels(x: &Tensor) -> Tensor {
    let mut perm: Vec<usize> = (0..x.rank()).collect();
    perm.swap(0, 1);
    let mut shape = x.shape()[1..].to_vec();
    shape[1] *= x.shape()[0];
    x.permute(&perm).reshape(&shape)
}

/// `x` with axis `axis` (of length `size · m`) split into `[size, m]`.
fn split_axis(x: &Tensor, axis: usize, size: usize, m: usize) -> Tensor {
    let mut shape = x.shape().to_vec();
    shape[axis] = m;
    shape.insert(axis, size);
    if size == 0 {
        return Tensor::zeros(&shape, x.dtype());
    }
    x.reshape(&shape)
}

impl Conv {
    fn apply(&self, x: &Tensor, w: &Tensor) -> Tensor {
        bind(self.clone(), &[x.clone(), w.clone()])
    }

    /// The input's cotangent: a transposed convolution of `ct` with the kernel.
    fn transpose_lhs(&self, ct: &Tensor, x_shape: &[usize], w: &Tensor) -> Tensor {
        let prim = ConvInputGrad { geometry: self.geometry.clone(), groups: self.groups, input: x_shape[2..].to_vec() };
        bind(prim, &[ct.clone(), w.clone()])
    }
}

/// The `conv_input_grad` primitive: the cotangent of [`Conv`]'s input,
/// `[N, C, input..]`, from the output's cotangent `[N, O, P..]` (operand 0)
/// and the kernel `[O, C / groups, K..]` (operand 1) — the transposed
/// convolution. JAX writes it as a convolution over the cotangent dilated
/// by the strides; as its own primitive a strided convolution's gradient
/// adds columns back (col2im) instead of multiplying the dilation's zeros.
/// Its transposes are the forward convolution (to the cotangent) and
/// [`ConvKernelGrad`] (to the kernel).
#[derive(Clone, Debug)]
pub struct ConvInputGrad {
    /// The forward convolution's geometry.
    pub geometry: ConvGeometry,
    /// The forward convolution's feature groups.
    pub groups: usize,
    /// The input's spatial shape (several map to one output shape when strided).
    pub input: Vec<usize>,
}

impl ConvInputGrad {
    fn conv(&self) -> Conv {
        Conv { geometry: self.geometry.clone(), groups: self.groups }
    }
}

impl SingleOutput for ConvInputGrad {
    fn name(&self) -> &'static str {
        "conv_input_grad"
    }
    fn params(&self) -> Params {
        let mut p = SingleOutput::params(&self.conv());
        p.push(("input", Param::List(self.input.clone())));
        p
    }
    fn kind(&self) -> Kind {
        Kind::Contraction
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let (ct, w) = (ins[0], ins[1]);
        let d = self.geometry.rank();
        if ct.rank() != d + 2 || w.rank() != d + 2 || self.input.len() != d {
            panic!(
                "conv_input_grad: expected a cotangent and a kernel with {d} spatial axes, got {:?} and {:?}",
                ct.shape, w.shape
            );
        }
        let input =
            Aval { dtype: w.dtype, shape: [&[ct.shape[0], w.shape[1] * self.groups.max(1)][..], &self.input].concat() };
        let out = SingleOutput::shape(&self.conv(), &[&input, w]);
        if out.shape != ct.shape || ct.dtype != w.dtype {
            panic!(
                "conv_input_grad: the cotangent {:?} ({}) is not the shape of the convolution's output {:?} ({})",
                ct.shape, ct.dtype, out.shape, w.dtype
            );
        }
        input
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).conv_input_grad(ins[0], ins[1], &self.geometry, self.groups, &self.input)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        let da = t[0].as_ref().map(|t| bind(self.clone(), &[t.clone(), x[1].clone()]));
        let db = t[1].as_ref().map(|t| bind(self.clone(), &[x[0].clone(), t.clone()]));
        add_tangents(da, db)
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        // `ct` here is the cotangent of an input-shaped value.
        let to_out = if_linear(&ins[0], |_| self.conv().apply(ct, constant("conv_input_grad", &ins[1])));
        let to_w = if_linear(&ins[1], |w| {
            let prim =
                ConvKernelGrad { geometry: self.geometry.clone(), groups: self.groups, window: w.shape[2..].to_vec() };
            bind(prim, &[ct.clone(), constant("conv_input_grad", &ins[0]).clone()])
        });
        vec![to_out, to_w]
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        // Each member is its own set of groups, as in Conv's rule.
        let c = batching::batch_first(&x[0], axes[0], size); // [B, N, O, P..]
        let w = batching::batch_first(&x[1], axes[1], size); // [B, O, Cg, K..]
        let (n, o) = (c.shape()[1], c.shape()[2]);
        let (cg, k) = (w.shape()[2], w.shape()[3..].to_vec());
        let ch = cg * self.groups;
        if size == 0 {
            let shape = [&[n, 0, ch][..], &self.input].concat();
            return (Tensor::zeros(&shape, c.dtype()), Some(1));
        }
        let c = members_as_channels(&c);
        let w = w.reshape(&[&[size * o, cg][..], &k].concat());
        let prim = ConvInputGrad { groups: self.groups * size, ..self.clone() };
        let out = bind(prim, &[c, w]); // [N, B·C, input..]
        (split_axis(&out, 1, size, ch), Some(1))
    }
}

/// The `conv_kernel_grad` primitive: the cotangent of [`Conv`]'s kernel,
/// `[O, C / groups, window..]`, from the input `[N, C, S..]` (operand 0)
/// and the output's cotangent `[N, O, P..]` (operand 1). It is the same
/// bilinear map as the convolution JAX writes for it, computed as one
/// product per image and group over the forward pass's columns, which a
/// convolution over the batch cannot do. Its transposes are the forward
/// convolution (to the cotangent) and the input's transposed convolution
/// (to the input), so every derivative order stays in these primitives.
#[derive(Clone, Debug)]
pub struct ConvKernelGrad {
    /// The forward convolution's geometry.
    pub geometry: ConvGeometry,
    /// The forward convolution's feature groups.
    pub groups: usize,
    /// The kernel's spatial shape.
    pub window: Vec<usize>,
}

impl ConvKernelGrad {
    fn conv(&self) -> Conv {
        Conv { geometry: self.geometry.clone(), groups: self.groups }
    }
}

impl SingleOutput for ConvKernelGrad {
    fn name(&self) -> &'static str {
        "conv_kernel_grad"
    }
    fn params(&self) -> Params {
        let mut p = SingleOutput::params(&self.conv());
        p.push(("window", Param::List(self.window.clone())));
        p
    }
    fn kind(&self) -> Kind {
        Kind::Contraction
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let (x, ct) = (ins[0], ins[1]);
        let d = self.geometry.rank();
        if x.rank() != d + 2 || self.window.len() != d {
            panic!("conv_kernel_grad: expected an input with {d} spatial axes, got {:?}", x.shape);
        }
        let groups = self.groups.max(1);
        let o = ct.shape.get(1).copied().unwrap_or(0);
        let kernel = Aval { dtype: x.dtype, shape: [&[o, x.shape[1] / groups][..], &self.window].concat() };
        let out = SingleOutput::shape(&self.conv(), &[x, &kernel]);
        if out.shape != ct.shape || ct.dtype != x.dtype {
            panic!(
                "conv_kernel_grad: the cotangent {:?} ({}) is not the shape of the convolution's output {:?} ({})",
                ct.shape, ct.dtype, out.shape, x.dtype
            );
        }
        kernel
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).conv_kernel_grad(ins[0], ins[1], &self.window, &self.geometry, self.groups)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        let da = t[0].as_ref().map(|t| bind(self.clone(), &[t.clone(), x[1].clone()]));
        let db = t[1].as_ref().map(|t| bind(self.clone(), &[x[0].clone(), t.clone()]));
        add_tangents(da, db)
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let ct_x =
            if_linear(&ins[0], |x| self.conv().transpose_lhs(constant("conv_kernel_grad", &ins[1]), &x.shape, ct));
        let ct_out = if_linear(&ins[1], |_| self.conv().apply(constant("conv_kernel_grad", &ins[0]), ct));
        vec![ct_x, ct_out]
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        // Each member is its own set of groups, as in Conv's rule.
        let l = batching::batch_first(&x[0], axes[0], size); // [B, N, C, S..]
        let c = batching::batch_first(&x[1], axes[1], size); // [B, N, O, P..]
        let (ch, o) = (l.shape()[2], c.shape()[2]);
        if size == 0 {
            let shape = [&[0, o, ch / self.groups][..], &self.window].concat();
            return (Tensor::zeros(&shape, l.dtype()), Some(0));
        }
        let (l, c) = (members_as_channels(&l), members_as_channels(&c));
        let prim = ConvKernelGrad { groups: self.groups * size, ..self.clone() };
        let out = bind(prim, &[l, c]); // [B·O, Cg, K..]
        (split_axis(&out, 0, size, o), Some(0))
    }
}

/// The `window_argmax` / `window_argmin` primitive: for each window over
/// the input (one window extent, stride and padding per axis), the i64 flat
/// index of its first largest (smallest) element. Max pooling is a gather
/// at these indices, so its gradient is a scatter-add to them — the
/// select-and-scatter of other frameworks — and every higher derivative
/// follows from gather's rules. The result is piecewise constant: its
/// derivative is zero.
#[derive(Clone, Debug)]
pub struct WindowArgExtreme {
    /// `Max` or `Min`.
    pub op: ReduceOp,
    /// The window's extent along each axis.
    pub window: Vec<usize>,
    /// The step between windows along each axis.
    pub strides: Vec<usize>,
    /// Positions outside the input before and after each axis, which no
    /// window selects.
    pub padding: Vec<(usize, usize)>,
}

impl SingleOutput for WindowArgExtreme {
    fn name(&self) -> &'static str {
        match self.op {
            ReduceOp::Min => "window_argmin",
            _ => "window_argmax",
        }
    }
    fn params(&self) -> Params {
        vec![
            ("window", Param::List(self.window.clone())),
            ("strides", Param::List(self.strides.clone())),
            ("padding", Param::List(self.padding.iter().flat_map(|&(lo, hi)| [lo, hi]).collect())),
        ]
    }
    fn kind(&self) -> Kind {
        Kind::Index
    }
    #[track_caller]
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let x = ins[0];
        let name = SingleOutput::name(self);
        expect_float(name, x);
        let r = x.rank();
        if self.window.len() != r || self.strides.len() != r || self.padding.len() != r {
            panic!(
                "{name}: window, strides and padding need one entry per axis of the input {:?}, got {:?}, {:?}, {:?}",
                x.shape, self.window, self.strides, self.padding
            );
        }
        let mut shape = Vec::with_capacity(r);
        // An empty input has no windows to search: any axis may be short.
        let empty = x.shape.contains(&0);
        for i in 0..r {
            let (k, s, (lo, hi)) = (self.window[i], self.strides[i], self.padding[i]);
            if empty && k > 0 && s > 0 && x.shape[i] + lo + hi < k {
                shape.push(0);
                continue;
            }
            if k == 0 || s == 0 || lo >= k || hi >= k || x.shape[i] + lo + hi < k {
                panic!(
                    "{name}: axis {i} of {:?}: the window {k} must be >= 1 and fit the padded axis, the stride {s} \
                     >= 1, and the padding ({lo}, {hi}) smaller than the window so every window holds an element",
                    x.shape
                );
            }
            shape.push((x.shape[i] + lo + hi - k) / s + 1);
        }
        Aval { dtype: DType::I64, shape }
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        backend_of(ins).window_arg_extreme(ins[0], self.op, &self.window, &self.strides, &self.padding)
    }
    fn jvp(&self, _x: &[Tensor], _t: &[Option<Tensor>], _ans: &Tensor) -> Option<Tensor> {
        None
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        // The batch is one more axis the windows do not span; the indices,
        // flat in the batched array, are made relative to each member.
        let front = batching::move_axis(&x[0], axes[0].expect("the only operand is batched"), 0);
        let member: usize = front.shape()[1..].iter().product();
        let prim = WindowArgExtreme {
            op: self.op,
            window: [&[1][..], &self.window].concat(),
            strides: [&[1][..], &self.strides].concat(),
            padding: [&[(0, 0)][..], &self.padding].concat(),
        };
        let idx = bind(prim, &[front]);
        let mut offset_shape = vec![1; idx.rank()];
        offset_shape[0] = size;
        let offsets: Vec<i64> = (0..size).map(|b| (b * member) as i64).collect();
        (idx - Tensor::from_vec(offsets, &offset_shape), Some(0))
    }
}

/// Padding of the spatial axes of a convolution or a pooling window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Padding {
    /// None: windows lie inside the input (PyTorch's `padding=0`).
    #[default]
    Valid,
    /// As JAX's `"SAME"`: `ceil(size / stride)` outputs per axis, the
    /// padding split evenly with the extra element after.
    Same,
    /// `(before, after)` per spatial axis; negative crops. One pair stands
    /// for every axis.
    Explicit(Vec<(i64, i64)>),
}

impl Padding {
    /// The same padding `p` before and after every axis (PyTorch's `padding=p`).
    pub fn symmetric(p: usize) -> Padding {
        Padding::Explicit(vec![(p as i64, p as i64)])
    }

    /// The pairs for axes of (dilated) sizes `input`, windows spanning
    /// `span` and `strides` (a stride of 0, which the shape rules refuse
    /// with their own message, counts as 1 here).
    #[track_caller]
    pub(crate) fn pairs(&self, op: &str, input: &[usize], span: &[usize], strides: &[usize]) -> Vec<(i64, i64)> {
        let d = input.len();
        match self {
            Padding::Valid => vec![(0, 0); d],
            Padding::Same => (0..d)
                .map(|i| {
                    let out = input[i].div_ceil(strides[i].max(1));
                    let total = ((out.max(1) - 1) * strides[i] + span[i]).saturating_sub(input[i]) as i64;
                    (total / 2, total - total / 2)
                })
                .collect(),
            Padding::Explicit(p) if p.len() == 1 => vec![p[0]; d],
            Padding::Explicit(p) if p.len() == d => p.clone(),
            Padding::Explicit(p) => {
                panic!("{op}: padding has {} pairs for {d} spatial axes; give one pair, or one per axis", p.len())
            }
        }
    }
}

/// How [`Tensor::conv`] places its window: every list has one entry per
/// spatial axis, or a single entry for all of them; an empty list means 1.
///
/// ```
/// # use ferrax::prelude::*;
/// # use ferrax::prims::{ConvOptions, Padding};
/// let x = Tensor::randn(&[2, 3, 8, 8], DType::F32, 0); // N, C, H, W
/// let w = Tensor::randn(&[4, 3, 3, 3], DType::F32, 1); // O, C, kH, kW
/// let y = x.conv(&w, &ConvOptions::new().stride(&[2]).padding(Padding::Same));
/// assert_eq!(y.shape(), &[2, 4, 4, 4]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConvOptions {
    /// Step between windows.
    pub stride: Vec<usize>,
    /// Padding of the input.
    pub padding: Padding,
    /// Spacing between the kernel's taps (atrous convolution).
    pub dilation: Vec<usize>,
    /// Spacing between the input's points (a fractionally strided convolution).
    pub input_dilation: Vec<usize>,
    /// Feature groups (0 or 1: one group; the input channels: depthwise).
    pub groups: usize,
}

impl ConvOptions {
    /// Stride 1, no padding, no dilation, one group.
    pub fn new() -> ConvOptions {
        ConvOptions::default()
    }
    /// With this stride.
    pub fn stride(mut self, s: &[usize]) -> ConvOptions {
        self.stride = s.to_vec();
        self
    }
    /// With this padding.
    pub fn padding(mut self, p: Padding) -> ConvOptions {
        self.padding = p;
        self
    }
    /// With this kernel dilation.
    pub fn dilation(mut self, d: &[usize]) -> ConvOptions {
        self.dilation = d.to_vec();
        self
    }
    /// With this input dilation.
    pub fn input_dilation(mut self, d: &[usize]) -> ConvOptions {
        self.input_dilation = d.to_vec();
        self
    }
    /// With this many feature groups.
    pub fn groups(mut self, g: usize) -> ConvOptions {
        self.groups = g;
        self
    }
}

/// A per-axis list from a user's: empty means 1, one entry means all axes.
#[track_caller]
fn per_axis(op: &str, what: &str, v: &[usize], d: usize) -> Vec<usize> {
    match v.len() {
        0 => vec![1; d],
        1 => vec![v[0]; d],
        n if n == d => v.to_vec(),
        n => panic!("{op}: {what} has {n} entries for {d} spatial axes; give one, or one per axis"),
    }
}

impl Tensor {
    /// N-d convolution (cross-correlation, as in PyTorch and JAX) of an
    /// input `[N, C, spatial..]` with a kernel `[O, C / groups, window..]`:
    /// 1-d, 2-d or 3-d by the kernel's rank. The result is `[N, O, out..]`.
    /// Differentiable in both operands to any order; the input's gradient
    /// is a transposed convolution ([`Tensor::conv_transpose`]).
    ///
    /// # Panics
    /// When the ranks, channels or groups do not fit (the message names
    /// the shapes), or the operands are not floats of one dtype.
    #[track_caller]
    pub fn conv(&self, kernel: &Tensor, opts: &ConvOptions) -> Tensor {
        let d = kernel.rank().saturating_sub(2);
        if d == 0 || self.rank() != kernel.rank() {
            panic!(
                "conv: expected an input [N, C, spatial..] and a kernel [O, C/groups, window..] of one rank >= 3, \
                 got {:?} and {:?}",
                self.shape(),
                kernel.shape()
            );
        }
        let strides = per_axis("conv", "stride", &opts.stride, d);
        let rhs_dilation = per_axis("conv", "dilation", &opts.dilation, d);
        let lhs_dilation = per_axis("conv", "input_dilation", &opts.input_dilation, d);
        let input: Vec<usize> = (0..d).map(|i| dilate(self.shape()[2 + i], lhs_dilation[i])).collect();
        let span: Vec<usize> = (0..d).map(|i| dilate(kernel.shape()[2 + i], rhs_dilation[i])).collect();
        let padding = opts.padding.pairs("conv", &input, &span, &strides);
        let geometry = ConvGeometry { strides, padding, lhs_dilation, rhs_dilation };
        self.conv_general(kernel, &geometry, opts.groups.max(1))
    }

    /// [`Tensor::conv`] with the operands and the result in other layouts,
    /// named as JAX's dimension numbers: `(lhs, rhs, out)` such as
    /// `("NHWC", "HWIO", "NHWC")` (TensorFlow's and JAX's image layout),
    /// where `N`/`C` name the batch and feature axes of the input and
    /// output, `O`/`I` the kernel's output and input features, and the
    /// other letters the spatial axes, matched by letter. The options'
    /// per-axis lists follow the spatial axes in the input's order.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// # use ferrax::prims::ConvOptions;
    /// let x = Tensor::randn(&[2, 9, 9, 3], DType::F32, 0); // NHWC
    /// let w = Tensor::randn(&[3, 3, 3, 8], DType::F32, 1); // HWIO
    /// let y = x.conv_with_layout(&w, &ConvOptions::new(), ("NHWC", "HWIO", "NHWC"));
    /// assert_eq!(y.shape(), &[2, 7, 7, 8]);
    /// ```
    ///
    /// # Panics
    /// When a layout does not name every axis once, or as [`Tensor::conv`].
    #[track_caller]
    pub fn conv_with_layout(&self, kernel: &Tensor, opts: &ConvOptions, layout: (&str, &str, &str)) -> Tensor {
        let (lhs, rhs, out) = layout;
        let r = self.rank();
        let bad = |why: &str| -> ! {
            panic!(
                "conv_with_layout: the layout {layout:?} {why}; each spec names every axis once (an input {:?}, a \
                 kernel {:?}), like (\"NHWC\", \"HWIO\", \"NHWC\")",
                self.shape(),
                kernel.shape()
            )
        };
        if [lhs, rhs, out].iter().any(|s| s.chars().count() != r) || kernel.rank() != r {
            bad("does not have one letter per axis");
        }
        let spatial: Vec<char> = lhs.chars().filter(|&c| c != 'N' && c != 'C').collect();
        let find = |spec: &str, c: char| spec.chars().position(|x| x == c);
        let order = |spec: &str, first: [char; 2]| -> Vec<usize> {
            let mut perm = Vec::with_capacity(r);
            for c in first.into_iter().chain(spatial.iter().copied()) {
                match find(spec, c) {
                    Some(i) if !perm.contains(&i) => perm.push(i),
                    _ => bad(&format!("has no single '{c}' in {spec:?}")),
                }
            }
            perm
        };
        let (lp, rp, op) = (order(lhs, ['N', 'C']), order(rhs, ['O', 'I']), order(out, ['N', 'C']));
        let y = self.permute(&lp).conv(&kernel.permute(&rp), opts);
        // `op[j]` is where canonical axis j goes: invert it.
        let mut back = vec![0; r];
        for (j, &i) in op.iter().enumerate() {
            back[i] = j;
        }
        y.permute(&back)
    }

    /// [`Tensor::conv`] with the geometry given in full, as JAX's
    /// `conv_general_dilated` (NCHW / OIHW layouts).
    ///
    /// # Panics
    /// As [`Tensor::conv`].
    #[track_caller]
    pub fn conv_general(&self, kernel: &Tensor, geometry: &ConvGeometry, groups: usize) -> Tensor {
        let (x, w) = super::promote::promote_pair(self, kernel);
        bind(Conv { geometry: geometry.clone(), groups }, &[x, w])
    }

    /// Transposed convolution ("deconvolution", PyTorch's
    /// `conv_transpose2d`): the gradient of [`Tensor::conv`] with respect to
    /// its input, as a function. The input is `[N, C_in, spatial..]`, the
    /// kernel `[C_in, C_out / groups, window..]` (PyTorch's layout), and each
    /// spatial size becomes `(S - 1)·stride - before - after + dilation·(K - 1)
    /// + output_padding + 1`, where `Padding::Explicit` gives the
    /// `(before, after)` cropped (PyTorch's `padding=p` is `(p, p)`),
    /// `Valid` crops nothing and `Same` gives `S·stride` (JAX's
    /// `conv_transpose` with `"SAME"`). `opts.input_dilation` must be empty.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// # use ferrax::prims::ConvOptions;
    /// let x = Tensor::randn(&[1, 4, 5, 5], DType::F64, 0);
    /// let w = Tensor::randn(&[4, 2, 3, 3], DType::F64, 1);
    /// let y = x.conv_transpose(&w, &ConvOptions::new().stride(&[2]), &[]);
    /// assert_eq!(y.shape(), &[1, 2, 11, 11]);
    /// ```
    ///
    /// # Panics
    /// As [`Tensor::conv`], and when `output_padding` is not smaller than
    /// the stride or the dilation.
    #[track_caller]
    pub fn conv_transpose(&self, kernel: &Tensor, opts: &ConvOptions, output_padding: &[usize]) -> Tensor {
        let d = kernel.rank().saturating_sub(2);
        if d == 0 || self.rank() != kernel.rank() || !opts.input_dilation.is_empty() {
            panic!(
                "conv_transpose: expected an input [N, C_in, spatial..] and a kernel [C_in, C_out/groups, window..] \
                 of one rank >= 3 and no input_dilation, got {:?} and {:?}",
                self.shape(),
                kernel.shape()
            );
        }
        let groups = opts.groups.max(1);
        let strides = per_axis("conv_transpose", "stride", &opts.stride, d);
        let dilation = per_axis("conv_transpose", "dilation", &opts.dilation, d);
        let extra = if output_padding.is_empty() { vec![0; d] } else { per_axis("", "", output_padding, d) };
        let (cin, cog, k) = (kernel.shape()[0], kernel.shape()[1], kernel.shape()[2..].to_vec());
        if groups == 0 || cin % groups != 0 || self.shape()[1] != cin {
            panic!(
                "conv_transpose: the input's channels ({}) must equal the kernel's axis 0 ({cin}) and divide by \
                 the {groups} group(s); input {:?}, kernel {:?}",
                self.shape()[1],
                self.shape(),
                kernel.shape()
            );
        }
        // Loops rather than closures here, so that a panic names the caller's line.
        for i in 0..d {
            if extra[i] >= strides[i].max(dilation[i]) {
                panic!("conv_transpose: output_padding {extra:?} must be smaller than the stride or the dilation");
            }
        }
        let spans: Vec<i64> = (0..d).map(|i| dilate(k[i], dilation[i]) as i64).collect();
        if opts.padding != Padding::Same && (0..d).all(|i| extra[i] < strides[i]) {
            // The input's gradient of the convolution this one transposes:
            // strided, it adds columns back rather than multiplying zeros.
            let crop = opts.padding.pairs("conv_transpose", &vec![0; d], &vec![0; d], &strides);
            let mut input = Vec::with_capacity(d);
            for i in 0..d {
                let size = (self.shape()[2 + i] as i64 - 1) * strides[i] as i64 - crop[i].0 - crop[i].1
                    + spans[i]
                    + extra[i] as i64;
                match usize::try_from(size) {
                    Ok(s) if self.shape()[2 + i] > 0 => input.push(s),
                    _ => panic!(
                        "conv_transpose: the padding {crop:?} crops more than the output along spatial axis {i} of {:?}",
                        self.shape()
                    ),
                }
            }
            let geometry = ConvGeometry { strides, padding: crop, lhs_dilation: vec![1; d], rhs_dilation: dilation };
            let (x, w) = super::promote::promote_pair(self, kernel);
            return bind(ConvInputGrad { geometry, groups, input }, &[x, w]);
        }
        let explicit = opts.padding.pairs("conv_transpose", &vec![0; d], &vec![0; d], &strides);
        let padding: Vec<(i64, i64)> = (0..d)
            .map(|i| {
                let span = spans[i];
                if opts.padding == Padding::Same {
                    // JAX's conv_transpose "SAME": S·stride outputs.
                    let (s, total) = (strides[i] as i64, span + strides[i] as i64 - 2);
                    let before = if s > span - 1 { span - 1 } else { (total + 1) / 2 };
                    return (before, total - before);
                }
                let (lo, hi) = explicit[i];
                (span - 1 - lo, span - 1 - hi + extra[i] as i64)
            })
            .collect();
        // [C_in, C_out/G, K..] -> [G, C_in/G, C_out/G, K..] -> [C_out, C_in/G, K..], flipped in space.
        let cig = cin / groups;
        let w = kernel.reshape(&[&[groups, cig, cog][..], &k].concat());
        let mut perm: Vec<usize> = (0..w.rank()).collect();
        perm.swap(1, 2);
        let spatial: Vec<usize> = (2..2 + d).collect();
        let w = w.permute(&perm).reshape(&[&[groups * cog, cig][..], &k].concat()).flip(&spatial);
        let geometry = ConvGeometry { strides: vec![1; d], padding, lhs_dilation: strides, rhs_dilation: dilation };
        self.conv_general(&w, &geometry, groups)
    }
}
