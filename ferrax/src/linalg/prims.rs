//! The primitives of `linalg`: Cholesky, triangular solve, LU and the
//! symmetric eigendecomposition, over the last two axes with any leading
//! (batch) axes. Their derivative rules are the published ones, written
//! with Tensor operations (and these primitives), so every order and every
//! transformation follows; the rest of `linalg` is composed of them.

use crate::array::{Aval, DType};
use crate::core::{bind, bind_all, Kind, Lin, Outs, Param, Params, Primitive, SingleOutput, Tensor};
use crate::prims::batching::batch_first;

use super::kernels;
use crate::array::Array;

/// The matrix transpose of the last two axes.
pub(super) fn mt(x: &Tensor) -> Tensor {
    x.t()
}

/// Panics unless `a` is f32 or f64: faer, like LAPACK, factorises those
/// (JAX's CPU linear algebra refuses f16 and bf16 too).
#[track_caller]
fn expect_float(op: &str, a: &Aval) {
    crate::prims::expect_float(op, a);
    if a.dtype.is_half() {
        panic!("{op}: {} matrices are not supported; convert with .to_dtype(DType::F32)", a.dtype);
    }
}

/// Panics unless `a` is a stack of square float matrices.
#[track_caller]
pub(super) fn expect_square(op: &str, a: &Aval) {
    expect_float(op, a);
    match a.shape.as_slice() {
        [.., r, c] if r == c => {}
        s => panic!("{op}: expected square matrices in the last two axes, got shape {s:?}"),
    }
}

/// Every operand with its batch axis first (broadcast where it has none).
fn batched(x: &[Tensor], axes: &[Option<usize>], size: usize) -> Vec<Tensor> {
    x.iter().zip(axes).map(|(v, &a)| batch_first(v, a, size)).collect()
}

/// `op(A)⁻¹ B` for triangular `A` on the left: the lower or upper
/// triangle of `A` (the other is not read), transposed when `transpose`,
/// with ones on the diagonal when `unit`. Linear in `B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TriangularSolve {
    /// `A` is lower triangular (else upper).
    pub lower: bool,
    /// Solve with `Aᵀ`.
    pub transpose: bool,
    /// `A`'s diagonal is taken as ones.
    pub unit: bool,
}

impl TriangularSolve {
    /// The triangle of `x` this solve reads (strictly, with a unit diagonal).
    fn triangle(&self, x: &Tensor) -> Tensor {
        let off = if self.unit { 1 } else { 0 };
        if self.lower {
            x.tril(-off)
        } else {
            x.triu(off)
        }
    }

    fn op(&self, x: &Tensor) -> Tensor {
        if self.transpose {
            mt(x)
        } else {
            x.clone()
        }
    }
}

impl SingleOutput for TriangularSolve {
    fn name(&self) -> &'static str {
        "triangular_solve"
    }
    fn params(&self) -> Params {
        vec![
            ("lower", Param::Bool(self.lower)),
            ("transpose", Param::Bool(self.transpose)),
            ("unit", Param::Bool(self.unit)),
        ]
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let (a, b) = (ins[0], ins[1]);
        expect_square("triangular_solve", a);
        let n = a.shape[a.rank() - 1];
        let ok = b.dtype == a.dtype
            && b.rank() == a.rank()
            && b.shape[..b.rank() - 2] == a.shape[..a.rank() - 2]
            && b.shape[b.rank() - 2] == n;
        assert!(
            ok,
            "triangular_solve: a {} and b {} do not match; b must be [.., {n}, k] with a's dtype and batch axes",
            a, b
        );
        b.clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        kernels::triangular_solve(ins[0], ins[1], self.lower, self.transpose, self.unit)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor> {
        // X = op(A)⁻¹ B, so Ẋ = op(A)⁻¹ (Ḃ − op(Ȧ) X), Ȧ restricted to the triangle read.
        let from_a = t[0].as_ref().map(|ta| -self.op(&self.triangle(ta)).matmul(ans));
        let rhs = crate::prims::add_tangents(t[1].clone(), from_a)?;
        Some(bind(*self, &[x[0].clone(), rhs]))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        (bind(*self, &batched(x, axes, size)), Some(0))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let a = crate::prims::constant("triangular_solve", &ins[0]);
        let back = TriangularSolve { transpose: !self.transpose, ..*self };
        vec![None, ins[1].is_linear().then(|| bind(back, &[a.clone(), ct.clone()]))]
    }
}

/// The lower Cholesky factor `L` of symmetric positive definite matrices
/// (`A = L Lᵀ`), from their lower triangles; NaNs where `A` is not
/// positive definite.
#[derive(Clone, Copy, Debug)]
pub struct Cholesky;

impl SingleOutput for Cholesky {
    fn name(&self) -> &'static str {
        "cholesky"
    }
    fn params(&self) -> Params {
        Vec::new()
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    fn shape(&self, ins: &[&Aval]) -> Aval {
        expect_square("cholesky", ins[0]);
        ins[0].clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        kernels::cholesky(ins[0])
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], l: &Tensor) -> Option<Tensor> {
        // L̇ = L Φ(L⁻¹ Ȧ L⁻ᵀ), Φ taking the lower triangle with the diagonal
        // halved (Murray 2016; JAX's rule), for symmetric Ȧ.
        let ta = t[0].as_ref()?;
        let lower = TriangularSolve { lower: true, transpose: false, unit: false };
        let y = bind(lower, &[l.clone(), ta.clone()]);
        let z = bind(lower, &[l.clone(), mt(&y)]);
        // One select and one product by constant weights (1 below the
        // diagonal, ½ on it) where the sum of the two halves took five ops
        // each way.
        let n = l.shape()[l.rank() - 1];
        let weights = 1.0 - Tensor::eye(n, l.dtype()) * 0.5;
        let phi = z.tril(0) * weights;
        Some(l.matmul(&phi))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        (bind(*self, &batched(x, axes, size)), Some(0))
    }
}

/// LU factorisation with partial pivoting of square matrices: `[lu,
/// pivots, perm]`, with `L` (unit diagonal, below it) and `U` packed in
/// `lu`, LAPACK's row swaps in `pivots`, and `P A = L U` where
/// `(P A)[i] = A[perm[i]]`. As `jax.lax.linalg.lu`.
#[derive(Clone, Copy, Debug)]
pub struct Lu;

impl Primitive for Lu {
    fn name(&self) -> &'static str {
        "lu"
    }
    fn params(&self) -> Params {
        Vec::new()
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    fn shape(&self, ins: &[&Aval]) -> Outs<Aval> {
        expect_square("lu", ins[0]);
        let index = Aval::new(DType::I64, &ins[0].shape[..ins[0].rank() - 1]);
        smallvec::smallvec![ins[0].clone(), index.clone(), index]
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        let (lu, pivots, perm) = kernels::lu(ins[0]);
        smallvec::smallvec![lu, pivots, perm]
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], ans: &[Tensor]) -> Outs<Option<Tensor>> {
        // With F = L⁻¹ P Ȧ U⁻¹: L̇ = L·tril(F, −1) and U̇ = triu(F)·U, packed as lu is.
        let Some(ta) = &t[0] else { return smallvec::smallvec![None, None, None] };
        let (lu, perm) = (&ans[0], &ans[2]);
        let n = lu.shape()[lu.rank() - 1];
        let p = perm.one_hot(n, lu.dtype());
        let l = lu.tril(-1) + Tensor::eye(n, lu.dtype());
        let u = lu.triu(0);
        let x = bind(TriangularSolve { lower: true, transpose: false, unit: true }, &[lu.clone(), p.matmul(ta)]);
        // F = X U⁻¹ = (U⁻ᵀ Xᵀ)ᵀ.
        let f = mt(&bind(TriangularSolve { lower: false, transpose: true, unit: false }, &[lu.clone(), mt(&x)]));
        let dot = l.matmul(&f.tril(-1)) + f.triu(0).matmul(&u);
        smallvec::smallvec![Some(dot), None, None]
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        (bind_all(*self, &batched(x, axes, size)), smallvec::smallvec![Some(0); 3])
    }
}

/// The eigenvalues (ascending) and eigenvectors (the columns) of symmetric
/// matrices, from their lower triangles: `[w, v]` with `A = V diag(w) Vᵀ`.
#[derive(Clone, Copy, Debug)]
pub struct Eigh;

impl Primitive for Eigh {
    fn name(&self) -> &'static str {
        "eigh"
    }
    fn params(&self) -> Params {
        Vec::new()
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    fn shape(&self, ins: &[&Aval]) -> Outs<Aval> {
        expect_square("eigh", ins[0]);
        let a = ins[0];
        smallvec::smallvec![Aval::new(a.dtype, &a.shape[..a.rank() - 1]), a.clone()]
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        let (w, v) = kernels::eigh(ins[0]);
        smallvec::smallvec![w, v]
    }
    fn jvp(&self, _x: &[Tensor], t: &[Option<Tensor>], ans: &[Tensor]) -> Outs<Option<Tensor>> {
        // With M = Vᵀ Ȧ V: ẇ = diag(M), V̇ = V (F ∘ M), F_ij = 1 / (w_j − w_i)
        // off the diagonal and 0 on it — infinite where eigenvalues repeat,
        // as in JAX (the eigenvectors are not unique there).
        let Some(ta) = &t[0] else { return smallvec::smallvec![None, None] };
        let (w, v) = (&ans[0], &ans[1]);
        let n = w.shape()[w.rank() - 1];
        let m = mt(v).matmul(ta).matmul(v);
        let eye = Tensor::eye(n, w.dtype());
        let gaps = w.expand_dims(w.rank() - 1) - w.expand_dims(w.rank());
        let f = (&eye + gaps).recip() - &eye;
        smallvec::smallvec![Some(m.diagonal(0)), Some(v.matmul(&(f * m)))]
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        (bind_all(*self, &batched(x, axes, size)), smallvec::smallvec![Some(0); 2])
    }
}

/// Panics unless `a` is a stack of float matrices (empty ones included).
#[track_caller]
fn expect_matrix(op: &str, a: &Aval) {
    expect_float(op, a);
    if a.rank() < 2 {
        panic!("{op}: expected matrices in the last two axes, got shape {:?}; add an axis with expand_dims", a.shape);
    }
}

/// The QR factorisation `A = Q R`: `[q, r]`, reduced (`Q` `[m, k]`, `R`
/// `[k, n]`, `k = min(m, n)`) or, when `full`, complete (`Q` `[m, m]`).
/// Differentiable where `m ≥ n` (reduced) or `m = n`, as in JAX.
#[derive(Clone, Copy, Debug)]
pub struct Qr {
    /// The complete factorisation.
    pub full: bool,
}

impl Primitive for Qr {
    fn name(&self) -> &'static str {
        "qr"
    }
    fn params(&self) -> Params {
        vec![("full", Param::Bool(self.full))]
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    fn shape(&self, ins: &[&Aval]) -> Outs<Aval> {
        expect_matrix("qr", ins[0]);
        let a = ins[0];
        let (m, n) = (a.shape[a.rank() - 2], a.shape[a.rank() - 1]);
        let k = if self.full { m } else { m.min(n) };
        let lead = &a.shape[..a.rank() - 2];
        let shape = |r: usize, c: usize| [lead, &[r, c]].concat();
        smallvec::smallvec![Aval::new(a.dtype, &shape(m, k)), Aval::new(a.dtype, &shape(k, n))]
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        let (q, r) = kernels::qr(ins[0], self.full);
        smallvec::smallvec![q, r]
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &[Tensor]) -> Outs<Option<Tensor>> {
        // For m ≥ n (JAX's rule): with C = Qᵀ Ȧ R⁻¹ and Ω = tril(C, −1) − tril(C, −1)ᵀ,
        // Q̇ = Q (Ω − C) + Ȧ R⁻¹ and Ṙ = (C − Ω) R.
        let Some(ta) = &t[0] else { return smallvec::smallvec![None, None] };
        let (m, n) = (x[0].shape()[x[0].rank() - 2], x[0].shape()[x[0].rank() - 1]);
        if m == 0 || n == 0 {
            // Q is fixed (empty or the identity) and R has no elements to vary.
            return smallvec::smallvec![Some(ans[0].zeros_like()), Some(ans[1].zeros_like())];
        }
        assert!(
            m >= n && (!self.full || m == n),
            "qr: the derivative is defined for m >= n (reduced) or square matrices (complete), as in JAX; got \
             {m}x{n}{}",
            if self.full { " complete" } else { "" }
        );
        let (q, r) = (&ans[0], &ans[1]);
        // Ȧ R⁻¹ = (R⁻ᵀ Ȧᵀ)ᵀ.
        let da_rinv = mt(&bind(TriangularSolve { lower: false, transpose: true, unit: false }, &[r.clone(), mt(ta)]));
        let c = mt(q).matmul(&da_rinv);
        let low = c.tril(-1);
        let omega = &low - mt(&low);
        let dq = q.matmul(&(&omega - &c)) + da_rinv;
        let dr = (c - omega).matmul(r);
        smallvec::smallvec![Some(dq), Some(dr)]
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        (bind_all(*self, &batched(x, axes, size)), smallvec::smallvec![Some(0); 2])
    }
}

/// The singular value decomposition `A = U diag(s) Vᵀ`: `[u, s, vt]`,
/// singular values descending; reduced (`k = min(m, n)` columns of `U` and
/// rows of `Vᵀ`) or, when `full`, complete. Differentiable (reduced, or
/// complete and square) away from repeated and zero singular values, as in JAX.
#[derive(Clone, Copy, Debug)]
pub struct Svd {
    /// The complete factorisation.
    pub full: bool,
}

impl Primitive for Svd {
    fn name(&self) -> &'static str {
        "svd"
    }
    fn params(&self) -> Params {
        vec![("full", Param::Bool(self.full))]
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    fn shape(&self, ins: &[&Aval]) -> Outs<Aval> {
        expect_matrix("svd", ins[0]);
        let a = ins[0];
        let (m, n) = (a.shape[a.rank() - 2], a.shape[a.rank() - 1]);
        let k = m.min(n);
        let (ku, kv) = if self.full { (m, n) } else { (k, k) };
        let lead = &a.shape[..a.rank() - 2];
        let shape = |d: &[usize]| [lead, d].concat();
        smallvec::smallvec![
            Aval::new(a.dtype, &shape(&[m, ku])),
            Aval::new(a.dtype, &shape(&[k])),
            Aval::new(a.dtype, &shape(&[kv, n]))
        ]
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        let (u, s, vt) = kernels::svd(ins[0], self.full);
        smallvec::smallvec![u, s, vt]
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &[Tensor]) -> Outs<Option<Tensor>> {
        // JAX's rule: with S' = Uᵀ Ȧ V, ṡ = diag(S'); F_ij = 1 / (s_j² − s_i²)
        // off the diagonal; U̇ = U (F ∘ (S' diag(s) + diag(s) S'ᵀ)) and
        // V̇ = V (F ∘ (diag(s) S' + S'ᵀ diag(s))), plus the parts outside the
        // span of U (m > n) or of V (n > m).
        let Some(ta) = &t[0] else { return smallvec::smallvec![None, None, None] };
        let (m, n) = (x[0].shape()[x[0].rank() - 2], x[0].shape()[x[0].rank() - 1]);
        if m == 0 || n == 0 {
            // No singular values; the factors are fixed (empty or identities).
            return ans.iter().map(|y| Some(y.zeros_like())).collect();
        }
        assert!(
            !self.full || m == n,
            "svd: the derivative of the complete factorisation is defined for square matrices only, as in JAX; \
             got {m}x{n}: use the reduced one"
        );
        let (u, s, vt) = (&ans[0], &ans[1], &ans[2]);
        let v = mt(vt);
        let k = s.shape()[s.rank() - 1];
        let row = s.expand_dims(s.rank() - 1); // [.., 1, k]: s_j
        let col = mt(&row); // [.., k, 1]: s_i
        let ds = mt(u).matmul(ta).matmul(&v);
        let eye = Tensor::eye(k, s.dtype());
        let diffs = (&row + &col) * (&row - &col);
        let f = (&diffs + &eye).recip() - &eye;
        let dss = &ds * &row;
        let sds = &col * &ds;
        let mut du = u.matmul(&(&f * (&dss + mt(&dss))));
        let mut dv = v.matmul(&(&f * (&sds + mt(&sds))));
        if m > n {
            let dav = ta.matmul(&v);
            du = du + (&dav - u.matmul(&mt(u).matmul(&dav))) / &row;
        }
        if n > m {
            let dahu = mt(ta).matmul(u);
            dv = dv + (&dahu - v.matmul(&vt.matmul(&dahu))) / &row;
        }
        smallvec::smallvec![Some(du), Some(ds.diagonal(0)), Some(mt(&dv))]
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        (bind_all(*self, &batched(x, axes, size)), smallvec::smallvec![Some(0); 3])
    }
}

/// `op(A)⁻¹ B` from `A`'s LU factors, JAX's `custom_linear_solve` for
/// `solve`: operands `[lu, perm, a, b]`, where the factors (of `A` with its
/// gradient stopped) do the solving and `a` carries the derivative:
/// `Ẋ = op(A)⁻¹ (Ḃ − op(Ȧ) X)`, solved with the same factors, so a
/// gradient costs two more triangular solves rather than a factorisation's
/// derivative. Linear in `b`; its transpose solves with `op(A)ᵀ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LuSolve {
    /// Solve with `Aᵀ`.
    pub transpose: bool,
}

impl SingleOutput for LuSolve {
    fn name(&self) -> &'static str {
        "lu_solve"
    }
    fn params(&self) -> Params {
        vec![("transpose", Param::Bool(self.transpose))]
    }
    fn kind(&self) -> Kind {
        Kind::Opaque
    }
    fn shape(&self, ins: &[&Aval]) -> Aval {
        let (lu, perm, a, b) = (ins[0], ins[1], ins[2], ins[3]);
        expect_square("solve", lu);
        let n = lu.shape[lu.rank() - 1];
        let batch = &lu.shape[..lu.rank() - 2];
        let ok = a == lu
            && perm.dtype == DType::I64
            && perm.shape[..] == lu.shape[..lu.rank() - 1]
            && b.dtype == lu.dtype
            && b.rank() == lu.rank()
            && &b.shape[..b.rank() - 2] == batch
            && b.shape[b.rank() - 2] == n;
        assert!(ok, "lu_solve: factors {lu}, permutation {perm}, matrix {a} and right-hand side {b} do not match");
        b.clone()
    }
    fn eval(&self, ins: &[&Array]) -> Array {
        kernels::lu_solve(ins[0], ins[1], ins[3], self.transpose)
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], ans: &Tensor) -> Option<Tensor> {
        let op = |m: &Tensor| if self.transpose { mt(m) } else { m.clone() };
        let from_a = t[2].as_ref().map(|ta| -op(ta).matmul(ans));
        let rhs = crate::prims::add_tangents(t[3].clone(), from_a)?;
        Some(bind(*self, &[x[0].clone(), x[1].clone(), x[2].clone(), rhs]))
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Tensor, Option<usize>) {
        (bind(*self, &batched(x, axes, size)), Some(0))
    }
    fn transpose(&self, ct: &Tensor, ins: &[Lin]) -> Vec<Option<Tensor>> {
        let fixed: Vec<Tensor> = ins[..3].iter().map(|l| crate::prims::constant("lu_solve", l).clone()).collect();
        let back = LuSolve { transpose: !self.transpose };
        let args = [fixed[0].clone(), fixed[1].clone(), fixed[2].clone(), ct.clone()];
        vec![None, None, None, ins[3].is_linear().then(|| bind(back, &args))]
    }
}
