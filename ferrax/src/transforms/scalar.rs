//! `jit`'s compact interpreter for programs of scalars (W1's shape: a value
//! and its partials): a flat list of instructions over registers of one
//! float type, run on the caller's concrete inputs without `bind`, arrays
//! for intermediates or the fused kernels' tiling. Each instruction calls the
//! per-element kernel the eager operation runs ([`FloatRuns`]) on a
//! one-element run, so every value has the eager bits.

use std::mem::MaybeUninit;

use smallvec::SmallVec;

use crate::array::fused::{FloatRuns, FusedOp};
use crate::array::{Array, DType};
use crate::core::Tensor;
use crate::graph::{elementwise, Graph};

/// One operation: what it computes, the registers it reads and the one it writes.
struct Instr {
    op: FusedOp,
    args: SmallVec<[usize; 3]>,
    out: usize,
}

/// A program whose every value is a scalar of one float dtype (or a bool
/// condition), as registers: one per variable of the graph.
pub(super) struct ScalarProgram {
    dtype: DType,
    n_regs: usize,
    /// The register of each input.
    inputs: Vec<usize>,
    /// Registers known before the program runs: constants, as f64 (exact
    /// for f32 values) with bools as 1 or 0.
    consts: Vec<(usize, f64)>,
    instrs: Vec<Instr>,
    /// The register of each output, and whether it is a bool.
    outputs: Vec<(usize, bool)>,
}

impl ScalarProgram {
    /// The program of `graph`, if every variable is a scalar of one float
    /// dtype (bools allowed for comparisons and conditions) and every
    /// equation an elementwise operation.
    pub(super) fn new(graph: &Graph) -> Option<ScalarProgram> {
        let dtype = graph.avals.iter().map(|a| a.dtype).find(|d| d.is_float())?;
        let scalar = |v: usize| {
            let a = &graph.avals[v];
            a.shape.is_empty() && (a.dtype == dtype || a.dtype == DType::Bool)
        };
        if !(0..graph.avals.len()).all(scalar) {
            return None;
        }
        let mut instrs = Vec::with_capacity(graph.eqns.len());
        for e in &graph.eqns {
            let op = elementwise(&e.prim.kind())?;
            // Bools only where a comparison writes one or a select reads one.
            let bool_ok = |k: usize, v: usize| graph.avals[v].dtype != DType::Bool || (op == FusedOp::Select && k == 0);
            let out_ok = (graph.avals[e.outs[0]].dtype == DType::Bool) == matches!(op, FusedOp::Compare(_));
            if e.outs.len() != 1 || !out_ok || !e.inputs.iter().enumerate().all(|(k, &v)| bool_ok(k, v)) {
                return None;
            }
            instrs.push(Instr { op, args: e.inputs.iter().copied().collect(), out: e.outs[0] });
        }
        let mut consts = Vec::with_capacity(graph.consts.len());
        for (v, t) in &graph.consts {
            consts.push((*v, t.array()?.get_f64(0)));
        }
        Some(ScalarProgram {
            dtype,
            n_regs: graph.avals.len(),
            inputs: graph.inputs.clone(),
            consts,
            instrs,
            outputs: graph.outputs.iter().map(|&v| (v, graph.avals[v].dtype == DType::Bool)).collect(),
        })
    }

    /// The outputs for these inputs, or `None` when one is not a concrete
    /// array of the program's dtypes (a tracer: then `bind` must see the call).
    pub(super) fn run(&self, ins: &[Tensor]) -> Option<Vec<Tensor>> {
        match self.dtype {
            DType::F32 => self.run_typed::<f32>(ins),
            DType::F64 => self.run_typed::<f64>(ins),
            _ => None,
        }
    }

    fn run_typed<T: FloatRuns>(&self, ins: &[Tensor]) -> Option<Vec<Tensor>> {
        let mut r: SmallVec<[T; 32]> = smallvec::smallvec![T::ZERO; self.n_regs];
        for (&reg, x) in self.inputs.iter().zip(ins) {
            let a = x.array()?;
            r[reg] = match a.dtype() {
                DType::Bool => T::from_f64(a.get_f64(0)),
                d if d == T::DTYPE => a.as_slice::<T>()[0],
                _ => return None,
            };
        }
        for &(reg, v) in &self.consts {
            r[reg] = T::from_f64(v);
        }
        for i in &self.instrs {
            let a = |k: usize| std::slice::from_ref(&r[i.args[k]]);
            let mut out = [MaybeUninit::<T>::uninit()];
            match i.op {
                FusedOp::Unary(op) => T::unary(op, a(0), &mut out),
                FusedOp::Binary(op) => T::binary(op, a(0), a(1), &mut out),
                FusedOp::Compare(op) => T::compare(op, a(0), a(1), &mut out),
                FusedOp::Select => {
                    out[0].write(if r[i.args[0]] != T::ZERO { r[i.args[1]] } else { r[i.args[2]] });
                }
            }
            // SAFETY: every arm wrote the one element.
            r[i.out] = unsafe { out[0].assume_init() };
        }
        let value = |&(reg, is_bool): &(usize, bool)| {
            Tensor::from_array(if is_bool {
                Array::from_vec(vec![r[reg] != T::ZERO], &[])
            } else {
                Array::from_vec(vec![r[reg]], &[])
            })
        };
        Some(self.outputs.iter().map(value).collect())
    }
}
