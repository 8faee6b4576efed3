//! Fused elementwise programs: several elementwise operations over arrays of
//! one shape run as one pass over tiles of a thousand elements, so that the
//! intermediate values live in a few cache-resident registers and never
//! become arrays (numexpr's approach). Each operation of a tile runs the same
//! vectorised loop as the eager kernel, and the cheap operations after it
//! that alone read its value (adds, products, negations, relu) run as one
//! chain with the value in vector registers ([`chain`]), with the same
//! formulas, so results are bit for bit those of the operations run one at
//! a time (which NaN comes out aside: Rust leaves a NaN result's sign and
//! payload unspecified). A program may end with a reduction over trailing
//! axes ([`FusedReduce`]), taken as the tiles are computed, in the eager
//! reduction's order.

use std::mem::MaybeUninit;

use smallvec::SmallVec;

use super::elementwise::Plan;
use super::parallel::{chunk_len, team, worth_splitting, CHEAP};
use super::simd::{self, vectorized};
use super::{pool, same_shape, Array, BinaryOp, CompareOp, DType, Float, ReduceOp, UnaryOp};

mod chain;
mod reduce;

use chain::{Act, Link};

/// Elements per tile: one register of f64 is 8 KiB, so a program with a
/// handful of live values stays in the L1 and L2 caches, while the loop of
/// each operation is long enough that its dispatch costs little.
const TILE: usize = 1024;

/// One operation of a fused program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FusedOp {
    /// An elementwise function of one operand.
    Unary(UnaryOp),
    /// An elementwise function of two operands.
    Binary(BinaryOp),
    /// A comparison; its result is a bool array.
    Compare(CompareOp),
    /// `cond ? a : b`; the condition is a comparison's result or a bool input.
    Select,
}

/// Where an operation reads an operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// An input of the program: an array of the output's shape or one that
    /// broadcasts to it.
    Input(usize),
    /// The result of an earlier step.
    Step(usize),
}

/// One step: an operation and its operands.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FusedStep {
    /// What it computes.
    pub op: FusedOp,
    /// What it reads.
    pub args: Vec<Operand>,
}

/// A straight-line program of elementwise steps over float arrays of one
/// dtype and shape, with its registers allocated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FusedProgram {
    steps: Vec<FusedStep>,
    /// The step whose value each output is.
    outputs: Vec<usize>,
    /// What runs: the steps, cheap ones as links of the chain before them.
    exec: Vec<Exec>,
    /// The entry of `exec` that computes each output.
    exec_outputs: Vec<usize>,
    /// The reduction, of an entry of `exec`.
    exec_reduce: Option<FusedReduce>,
    /// Where each entry of `exec` writes its value.
    places: Vec<Place>,
    n_regs: usize,
    /// Per-element cost of the whole program, in units of a cheap op.
    cost: usize,
    /// A reduction of one step's values, returned after the outputs.
    reduce: Option<FusedReduce>,
}

/// A reduction of one step's values over the trailing axes of the program's
/// shape, computed tile by tile as the values are, in the order the eager
/// reduction takes (so with its bits): the reduced values are never an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FusedReduce {
    /// Sum, product, maximum or minimum.
    pub op: ReduceOp,
    /// The step whose values are reduced.
    pub step: usize,
    /// How many trailing axes are reduced (all of them: a scalar).
    pub axes: usize,
}

/// The float kernels a fused program runs on contiguous runs of one length.
/// Comparisons give masks in the float type (1 or 0), so a program keeps
/// one register type.
pub(crate) trait FloatRuns: Float + chain::Blocks {
    /// `op` on every element of `x`.
    fn unary(op: UnaryOp, x: &[Self], out: &mut [MaybeUninit<Self>]);
    /// `op` on the elements of `a` and `b`.
    fn binary(op: BinaryOp, a: &[Self], b: &[Self], out: &mut [MaybeUninit<Self>]);
    /// `op(a, b)` as 1 or 0.
    fn compare(op: CompareOp, a: &[Self], b: &[Self], out: &mut [MaybeUninit<Self>]);
    /// `x = op(x)` for a unary link of a chain.
    fn unary_assign(op: UnaryOp, x: &mut [Self]);
    /// `x = op(x, y)`, or `op(y, x)` when `swap`, for a binary link.
    fn binary_assign(op: BinaryOp, swap: bool, x: &mut [Self], y: &[Self]);
}

/// One pass of a tile: a step, and the chain of cheap steps after it, each
/// the only reader of the value before it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Exec {
    op: FusedOp,
    args: Vec<Operand>,
    /// The links applied to the step's value, each with its other operand.
    links: Vec<(Link, Option<Operand>)>,
}

impl Exec {
    /// Everything the pass reads: the step's operands and its links'.
    fn operands(&self) -> impl Iterator<Item = &Operand> {
        self.args.iter().chain(self.links.iter().filter_map(|(_, a)| a.as_ref()))
    }

    /// The step itself as the first link of its chain, where the pass has
    /// links and the step is a cheap op on an operand: the chain then starts
    /// from that operand, and reads each block of every operand before it
    /// writes the block.
    fn chain_head(&self) -> Option<Link> {
        match self.op {
            _ if self.links.is_empty() => None,
            FusedOp::Unary(op) if Link::takes_unary(op) => Some(Link::Unary(op)),
            FusedOp::Binary(op) if Link::takes_binary(op) => Some(Link::Binary(op, false)),
            _ => None,
        }
    }
}

/// The link that step `s` adds to a chain whose value is step `t`'s, read
/// `uses` times in all: where `s` is a cheap op and the only reader of `t`.
fn link_of(s: &FusedStep, t: usize, uses: usize) -> Option<(Link, Option<Operand>)> {
    let value = Operand::Step(t);
    match (s.op, &s.args[..]) {
        (FusedOp::Unary(op), [a]) if *a == value && uses == 1 && Link::takes_unary(op) => Some((Link::Unary(op), None)),
        // `t · t` is the square's formula.
        (FusedOp::Binary(BinaryOp::Mul), [a, b]) if *a == value && *b == value && uses == 2 => {
            Some((Link::Unary(UnaryOp::PowI(2)), None))
        }
        (FusedOp::Binary(op), [a, b]) if uses == 1 && Link::takes_binary(op) => {
            if *a == value {
                Some((Link::Binary(op, false), Some(*b)))
            } else if *b == value {
                Some((Link::Binary(op, true), Some(*a)))
            } else {
                None
            }
        }
        _ => None,
    }
}

impl FusedProgram {
    /// A program of `steps` returning the values of the steps in `outputs`.
    ///
    /// # Panics
    /// When a step reads a later step, has the wrong number of operands,
    /// or an output names no step.
    pub fn new(steps: Vec<FusedStep>, outputs: Vec<usize>) -> FusedProgram {
        FusedProgram::build(steps, outputs, None)
    }

    /// A program of `steps` returning the values of the steps in `outputs`
    /// and then the reduction `reduce`.
    ///
    /// # Panics
    /// As [`FusedProgram::new`], and when the reduced step is not a step.
    pub fn reducing(steps: Vec<FusedStep>, outputs: Vec<usize>, reduce: FusedReduce) -> FusedProgram {
        FusedProgram::build(steps, outputs, Some(reduce))
    }

    fn build(steps: Vec<FusedStep>, outputs: Vec<usize>, reduce: Option<FusedReduce>) -> FusedProgram {
        let mut uses = vec![0usize; steps.len()];
        for (i, s) in steps.iter().enumerate() {
            let arity = match s.op {
                FusedOp::Unary(_) => 1,
                FusedOp::Binary(_) | FusedOp::Compare(_) => 2,
                FusedOp::Select => 3,
            };
            assert_eq!(s.args.len(), arity, "fused program: step {i} ({:?}) takes {arity} operands", s.op);
            for a in &s.args {
                if let Operand::Step(j) = *a {
                    assert!(j < i, "fused program: step {i} reads step {j}, which is not computed before it");
                    uses[j] += 1;
                }
            }
        }
        for &o in &outputs {
            assert!(o < steps.len(), "fused program: output step {o} of {}", steps.len());
            uses[o] += 1;
        }
        if let Some(r) = reduce {
            assert!(r.step < steps.len(), "fused program: reduced step {} of {}", r.step, steps.len());
            uses[r.step] += 1;
        }
        // A cheap step that alone reads the value of a pass joins its
        // chain, where its other operand is computed before that pass (not
        // a comparison's pass: its value is a mask). `tail[e]`: the step
        // whose value pass `e` ends with.
        let (mut exec, mut at, mut tail): (Vec<Exec>, Vec<usize>, Vec<usize>) =
            (Vec::new(), vec![0; steps.len()], Vec::new());
        let remap = |a: Operand, at: &[usize]| if let Operand::Step(j) = a { Operand::Step(at[j]) } else { a };
        for (i, s) in steps.iter().enumerate() {
            let joins = s.args.iter().find_map(|a| match *a {
                Operand::Step(j) if tail[at[j]] == j && !matches!(exec[at[j]].op, FusedOp::Compare(_)) => {
                    let (link, arg) = link_of(s, j, uses[j])?;
                    let ready = match arg {
                        Some(Operand::Step(k)) => at[k] < at[j],
                        _ => true,
                    };
                    ready.then_some((at[j], link, arg))
                }
                _ => None,
            });
            if let Some((e, link, arg)) = joins {
                let arg = arg.map(|a| remap(a, &at));
                exec[e].links.push((link, arg));
                (at[i], tail[e]) = (e, i);
                continue;
            }
            let args = s.args.iter().map(|&a| remap(a, &at)).collect();
            exec.push(Exec { op: s.op, args, links: Vec::new() });
            at[i] = exec.len() - 1;
            tail.push(i);
        }
        let exec_outputs: Vec<usize> = outputs.iter().map(|&o| at[o]).collect();
        let exec_reduce = reduce.map(|r| FusedReduce { step: at[r.step], ..r });
        let mut last_use: Vec<usize> = (0..exec.len()).collect();
        for (i, e) in exec.iter().enumerate() {
            for a in e.operands() {
                if let Operand::Step(j) = *a {
                    last_use[j] = i;
                }
            }
        }
        for &o in exec_outputs.iter().chain(exec_reduce.as_ref().map(|r| &r.step)) {
            last_use[o] = usize::MAX; // read after the tile's last step
        }
        // An output is computed straight into its array, which later steps
        // read; other steps take a register. A step's register is taken
        // before its operands' are freed, so no step writes what it reads.
        // A comparison's output is a register too, stored as bools after
        // each tile: its array is of bools, not of the program's floats.
        let (mut places, mut free, mut n_regs) = (Vec::with_capacity(exec.len()), Vec::new(), 0);
        for (i, e) in exec.iter().enumerate() {
            let mask = matches!(e.op, FusedOp::Compare(_));
            let place = match exec_outputs.iter().position(|&o| o == i) {
                Some(k) if !mask => Place::Out(k),
                _ => Place::Reg(free.pop().unwrap_or_else(|| {
                    n_regs += 1;
                    n_regs - 1
                })),
            };
            places.push(place);
            for a in e.operands() {
                if let Operand::Step(j) = *a {
                    if let Place::Reg(r) = places[j] {
                        if last_use[j] == i && !free.contains(&r) {
                            free.push(r);
                        }
                    }
                }
            }
        }
        let cost = steps
            .iter()
            .map(|s| match s.op {
                FusedOp::Unary(op) => op.cost(),
                _ => CHEAP,
            })
            .sum();
        FusedProgram { steps, outputs, exec, exec_outputs, exec_reduce, places, n_regs, cost, reduce }
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[FusedStep] {
        &self.steps
    }

    /// The steps whose values are returned.
    pub fn outputs(&self) -> &[usize] {
        &self.outputs
    }

    /// The reduction, if the program ends with one.
    pub fn reduction(&self) -> Option<FusedReduce> {
        self.reduce
    }

    /// The dtype of each output: bool for comparisons, else `dtype` (the
    /// reduction's too).
    pub fn output_dtypes(&self, dtype: DType) -> Vec<DType> {
        self.outputs
            .iter()
            .map(|&o| if matches!(self.steps[o].op, FusedOp::Compare(_)) { DType::Bool } else { dtype })
            .chain(self.reduce.map(|_| dtype))
            .collect()
    }

    /// Runs the program on `ins` (arrays of `dtype`, or bool where a select
    /// reads a condition), each of `shape` or broadcasting to it.
    pub fn run(&self, ins: &[&Array], dtype: DType, shape: &[usize]) -> Vec<Array> {
        self.run_owned(ins.iter().map(|&a| a.clone()).collect(), dtype, shape)
    }

    /// [`FusedProgram::run`] on inputs given up: an output is written over an
    /// input of its shape and dtype whose buffer no one else holds, when no
    /// step reads that input once the output's step has run (in place, as
    /// XLA's buffer donation).
    pub fn run_owned(&self, ins: Vec<Array>, dtype: DType, shape: &[usize]) -> Vec<Array> {
        match dtype {
            DType::F32 => self.run_typed::<f32>(ins, shape),
            DType::F64 => self.run_typed::<f64>(ins, shape),
            // In f32, each output rounded once: the steps inside the group
            // keep f32's precision, as XLA's fusions do by default
            // (`xla_allow_excess_precision`), where eager rounds every step.
            DType::F16 | DType::BF16 => {
                let wide =
                    ins.into_iter().map(|a| if a.dtype() == dtype { a.to_dtype(DType::F32) } else { a }).collect();
                let outs = self.run_typed::<f32>(wide, shape);
                outs.into_iter().map(|y| if y.dtype() == DType::F32 { y.to_dtype(dtype) } else { y }).collect()
            }
            d => panic!("fused program: expected float operands, got {d}"),
        }
    }

    /// Whether output `k` is a comparison's, an array of bools.
    fn mask_output(&self, k: usize) -> bool {
        matches!(self.exec[self.exec_outputs[k]].op, FusedOp::Compare(_))
    }

    /// Whether output `k` may be written over input `j`: no pass after the
    /// output's reads the input, and the output's own pass either does not
    /// or is a chain from its first step on, which reads each block of its
    /// operands before it writes the block ([`chain::run`]); so each tile of
    /// the input is read before the output overwrites it.
    fn may_overwrite(&self, k: usize, j: usize) -> bool {
        let o = self.exec_outputs[k];
        let reads = |e: &Exec| e.operands().any(|&a| a == Operand::Input(j));
        let chain = self.exec[o].chain_head().is_some();
        self.places[o] == Place::Out(k) && (chain || !reads(&self.exec[o])) && !self.exec[o + 1..].iter().any(reads)
    }

    fn run_typed<T: FloatRuns>(&self, ins: Vec<Array>, shape: &[usize]) -> Vec<Array> {
        let n: usize = shape.iter().product();
        let mut ins: Small<Option<Array>> = ins.into_iter().map(Some).collect();
        // Outputs written over inputs that die here, where that is safe.
        let (mut outs, mut donated): (Small<Vec<T>>, Small<(usize, usize)>) = Default::default();
        for k in 0..self.outputs.len() {
            let donor = (0..ins.len()).find(|&j| {
                ins[j].as_ref().is_some_and(|a| a.dtype() == T::DTYPE && same_shape(a.shape(), shape))
                    && self.may_overwrite(k, j)
            });
            let taken = donor.and_then(|j| match ins[j].take().map(Array::into_unique_vec::<T>) {
                Some(Ok(v)) => Some((j, v)),
                Some(Err(a)) => {
                    ins[j] = Some(a);
                    None
                }
                None => None,
            });
            outs.push(match taken {
                Some((j, v)) => {
                    // The input reads the output's buffer until it is overwritten.
                    ins[j] = Some(Array::from_vec(Vec::<T>::new(), &[0]));
                    donated.push((k, j));
                    v
                }
                None => pool::with_capacity(n),
            });
        }
        // A comparison's outputs: bools, written from its register.
        let mut masks: Small<Vec<bool>> = (0..self.outputs.len())
            .map(|k| if self.mask_output(k) { pool::with_capacity(n) } else { Vec::new() })
            .collect();
        let mask_dests: Small<SendPtr<bool>> = masks.iter_mut().map(|m| SendPtr(m.as_mut_ptr())).collect();
        // Conditions computed outside the program arrive as bools: as masks here.
        let converted: Small<Option<Array>> =
            ins.iter().map(|a| a.as_ref().filter(|a| a.dtype() != T::DTYPE).map(|a| a.to_dtype(T::DTYPE))).collect();
        let dests: Small<SendPtr<T>> = outs.iter_mut().map(|o| SendPtr(o.as_mut_ptr())).collect();
        let sources: Small<Source<T>> = ins
            .iter()
            .zip(&converted)
            .enumerate()
            .map(|(j, (a, c))| {
                if let Some(&(k, _)) = donated.iter().find(|&&(_, d)| d == j) {
                    return Source::Full(SendPtr(dests[k].0));
                }
                let a = c.as_ref().or(a.as_ref()).expect("every input is present");
                let d = a.as_slice::<T>();
                if d.len() == n {
                    Source::Full(SendPtr(d.as_ptr().cast_mut()))
                } else if d.len() == 1 {
                    Source::Splat(d[0])
                } else {
                    Source::Gather(d, Plan::new(shape, [a.shape()]))
                }
            })
            .collect();
        let pass = Pass { program: self, sources: &sources, dest: &dests, masks: &mask_dests };
        // Chunks are disjoint ranges of `0..n`, within every output's capacity.
        let chunk = |start: usize, len: usize| pass.run_chunk(start, len);
        let reduced = match self.exec_reduce {
            Some(r) => Some(pass.run_reducing(r, shape)),
            None if worth_splitting(n, self.cost) => {
                let c = chunk_len(n, self.cost);
                let pieces = n.div_ceil(c);
                team::run(pieces, &|i| chunk(i * c, c.min(n - i * c)));
                None
            }
            None => {
                chunk(0, n);
                None
            }
        };
        outs.into_iter()
            .zip(masks)
            .enumerate()
            .map(|(k, (mut v, mut m))| {
                // SAFETY: `run_chunk` wrote every element of every chunk (a
                // donated buffer already has length `n`), into the mask for
                // a comparison.
                if self.mask_output(k) {
                    unsafe { m.set_len(n) };
                    Array::from_vec(m, shape)
                } else {
                    unsafe { v.set_len(n) };
                    Array::from_vec(v, shape)
                }
            })
            .chain(reduced)
            .collect()
    }
}

/// One run of a program: its inputs as the tiles read them, and its output
/// arrays' first elements, each valid for every element of the shape.
struct Pass<'a, T> {
    program: &'a FusedProgram,
    sources: &'a [Source<'a, T>],
    dest: &'a [SendPtr<T>],
    /// Each comparison output's first bool (the others' are unused).
    masks: &'a [SendPtr<bool>],
}

impl<T: FloatRuns> Pass<'_, T> {
    /// The program over output elements `start..start + len`, tile by tile.
    fn run_chunk(&self, start: usize, len: usize) {
        // A tile costs its setup (each step's operands found, each chain's
        // links listed: about 30 ns); a program whose values all go
        // straight to its outputs keeps nothing per element between steps,
        // so it takes longer tiles (eight cheap steps on 2^20 f32, one
        // thread: 196 → 163 µs).
        let wide = if self.program.n_regs == 0 { 8 * TILE } else { TILE };
        let mut ws = self.workspace(wide.min(len));
        // The first tile ends where the first output reaches a cache line,
        // so that the vectors of the others start on one: a vector that
        // straddles two lines is two loads, and a chain loads an operand
        // vector per link (four products by an input over 2^20 f32 took
        // 158 µs against 110 µs aligned, on an AMD EPYC (Zen 4)). Arrays
        // from the allocator share their offset from a line (16 bytes past
        // one, from glibc), so the inputs mostly align with the output.
        let mut done = self.dest.first().map_or(0, |d| simd::to_line(d.0.wrapping_add(start)).min(len));
        if done > 0 {
            self.tile(&mut ws, start, done);
        }
        while done < len {
            let m = ws.width.min(len - done);
            self.tile(&mut ws, start + done, m);
            done += m;
        }
    }

    /// Registers and input tiles for tiles of up to `width` elements.
    fn workspace(&self, width: usize) -> Workspace<T> {
        // Inputs that are not contiguous runs of the output's elements get a tile of their own.
        let tiles = self
            .sources
            .iter()
            .map(|s| match s {
                Source::Full(_) => Vec::new(),
                Source::Splat(v) => vec![*v; width],
                Source::Gather(..) => vec![T::ZERO; width],
            })
            .collect();
        // A line to spare where the registers leave the stack (see `reg0`).
        let len = width * self.program.n_regs;
        let spare = if len > REGS_INLINE { simd::line_len::<T>() } else { 0 };
        Workspace { width, regs: smallvec::smallvec![T::ZERO; len + spare], tiles }
    }

    /// Every step over elements `s..s + m` (`m` at most the workspace's
    /// width), outputs written through `dest`.
    fn tile(&self, ws: &mut Workspace<T>, s: usize, m: usize) {
        let (program, sources, dest) = (self.program, self.sources, self.dest);
        for (src, tile) in sources.iter().zip(&mut ws.tiles) {
            if let Source::Gather(d, plan) = src {
                gather(d, plan, s, &mut tile[..m]);
            }
        }
        let (width, tiles, reg0) = (ws.width, &ws.tiles, ws.reg0());
        let regs = ws.regs.as_mut_ptr().wrapping_add(reg0);
        // Where a step's value is in this tile: register `r` is `width`
        // elements at `reg0 + r * width`; an output, its array from `s`.
        let place = |p: Place| match p {
            Place::Reg(r) => regs.wrapping_add(r * width),
            Place::Out(k) => dest[k].0.wrapping_add(s),
        };
        // Where an operand's elements start: a chain reads them through the
        // pointer, without a slice, since its output may be the input it reads.
        let at = |a: Operand| -> *const T {
            match a {
                Operand::Input(j) => match &sources[j] {
                    Source::Full(p) => p.0.wrapping_add(s),
                    _ => tiles[j].as_ptr(),
                },
                Operand::Step(j) => place(program.places[j]),
            }
        };
        // A constant operand's value.
        let splat = |a: Operand| match a {
            Operand::Input(j) => match sources[j] {
                Source::Splat(v) => Some(v),
                _ => None,
            },
            Operand::Step(_) => None,
        };
        // SAFETY: every operand has these `m` elements: an input all of
        // the shape's, a step's those it wrote in this tile. No step writes
        // the register it reads or an output another step reads as it
        // runs, and a donated input is not written until no step reads it
        // as a slice (`may_overwrite`).
        let operand = |a: Operand| -> &[T] { unsafe { std::slice::from_raw_parts(at(a), m) } };
        for (i, step) in program.exec.iter().enumerate() {
            let arg = |k: usize| operand(step.args[k]);
            let out = place(program.places[i]);
            // SAFETY: `out` is valid for these `m` writes, and a step run
            // as one kernel reads other buffers (`may_overwrite`).
            let o = || unsafe { std::slice::from_raw_parts_mut(out.cast::<MaybeUninit<T>>(), m) };
            let head = step.chain_head();
            if head.is_none() {
                match step.op {
                    FusedOp::Unary(op) => T::unary(op, arg(0), o()),
                    FusedOp::Binary(op) => T::binary(op, arg(0), arg(1), o()),
                    FusedOp::Compare(op) => T::compare(op, arg(0), arg(1), o()),
                    FusedOp::Select => select(arg(0), arg(1), arg(2), o()),
                }
                if step.links.is_empty() {
                    continue;
                }
            }
            // The chain: from the step's first operand when the step is
            // itself a link, else from the value it wrote.
            let mut acts: SmallVec<[Act<T>; 16]> = SmallVec::new();
            let start = match head {
                Some(link) => {
                    let arg = step.args.get(1).copied();
                    acts.push(Act { link, arg: arg.map_or(std::ptr::null(), at), splat: arg.and_then(splat) });
                    at(step.args[0])
                }
                None => out.cast_const(),
            };
            acts.extend(step.links.iter().map(|&(link, a)| Act {
                link,
                arg: a.map_or(std::ptr::null(), at),
                splat: a.and_then(splat),
            }));
            // SAFETY: every operand has these `m` elements, and one that is
            // `out` (an input the output overwrites) is read block by block
            // before the block is written (`chain::run`).
            unsafe { chain::run(start, &acts, out, m) };
        }
        // An output named twice is computed once, into its first array.
        for (k, &o) in program.exec_outputs.iter().enumerate() {
            if let (Place::Reg(_), true) = (program.places[o], program.mask_output(k)) {
                // SAFETY: the mask holds every element of the shape, and
                // this tile's are written by this thread alone.
                let mask = unsafe { std::slice::from_raw_parts_mut(self.masks[k].0.add(s), m) };
                vectorized(|| mask.iter_mut().zip(operand(Operand::Step(o))).for_each(|(b, &v)| *b = v != T::ZERO));
                continue;
            }
            if let Place::Out(first) = program.places[o] {
                if first != k {
                    // SAFETY: distinct outputs are distinct arrays, each valid for these elements.
                    unsafe { std::ptr::copy_nonoverlapping(dest[first].0.add(s), dest[k].0.add(s), m) };
                }
            }
        }
    }
}

/// One thread's registers and input tiles.
struct Workspace<T> {
    /// Elements per tile.
    width: usize,
    /// The registers, one after another from [`Workspace::reg0`] (a scalar
    /// program's on the stack).
    regs: SmallVec<[T; REGS_INLINE]>,
    /// A tile per input that is not read in place (splatted or gathered).
    tiles: Small<Vec<T>>,
}

/// Register elements kept on the stack.
const REGS_INLINE: usize = 16;

impl<T> Workspace<T> {
    /// Where the first register starts in `regs`: on the heap, at its first
    /// 64-byte boundary (the buffer has a line to spare), so that the
    /// vectors every step loads and stores do not straddle cache lines.
    fn reg0(&self) -> usize {
        if self.regs.spilled() {
            simd::to_line(self.regs.as_ptr())
        } else {
            0
        }
    }
}

/// A few items (inputs, outputs) without an allocation.
type Small<T> = SmallVec<[T; 4]>;

/// Where a step's value lives while a tile runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Place {
    /// A register of one tile.
    Reg(usize),
    /// The program's output array of this index.
    Out(usize),
}

/// How a program input is read.
enum Source<'a, T> {
    /// Contiguous, of the output's shape: its first element (a pointer,
    /// since a donated input is the buffer an output overwrites).
    Full(SendPtr<T>),
    /// One value for every element.
    Splat(T),
    /// Broadcast along some axes: gathered per tile.
    Gather(&'a [T], Plan<1>),
}

struct SendPtr<T>(*mut T);
// SAFETY: the pointer is only used to write disjoint chunks from the threads of one call.
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SendPtr<T> {}

/// The elements `start..start + out.len()` of `d` broadcast by `plan`.
fn gather<T: Copy>(d: &[T], plan: &Plan<1>, start: usize, out: &mut [T]) {
    plan.segments(start, start + out.len(), |pos, [off], len, [stride]| {
        let out = &mut out[pos - start..pos - start + len];
        match stride {
            0 => out.fill(d[off]),
            1 => out.copy_from_slice(&d[off..off + len]),
            _ => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = d[off + i * stride];
                }
            }
        }
    });
}

/// `c != 0 ? a : b` elementwise.
fn select<T: Float>(c: &[T], a: &[T], b: &[T], out: &mut [MaybeUninit<T>]) {
    vectorized(|| {
        for (((o, &c), &a), &b) in out.iter_mut().zip(c).zip(a).zip(b) {
            o.write(if c != T::ZERO { a } else { b });
        }
    })
}

#[cfg(test)]
mod tests;
