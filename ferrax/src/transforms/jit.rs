//! `jit`: stage a function once per input signature, simplify the graph,
//! cache it, and run it without tracing.
//!
//! A call of a jitted function is one primitive, [`JitCall`], whose operands
//! are the function's inputs (and the values of enclosing transformations it
//! captured). Its evaluation interprets the cached graph directly on arrays:
//! no tracing, no tree handling and no `bind` per operation. Under `jvp`,
//! `grad` and `vmap` it has rules like `checkpoint`'s, so jit composes with
//! every transformation in both orders; `jit(grad(f))` stages the gradient
//! itself and is the fast form, as in JAX.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::array::{Array, Aval};
use crate::core::{bind_all, Kind, Outs, Param, Params, Primitive, Tensor};
use crate::graph::Graph;
use crate::tree::{Tree, TreeRef};

use super::custom::{
    as_fun, avals_of, batched_avals, bind_batched_first, call_with, checkpoint_tangents, id_of, stage, structure,
    Staged,
};
use super::scalar::ScalarProgram;
use super::vmap::vmap;

/// How often a jitted function was staged and how often a staged program was reused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitStats {
    /// Calls that traced the function (a new input signature, or captured tracers).
    pub traces: usize,
    /// Calls that ran a cached program.
    pub hits: usize,
}

/// What a program is cached by: the input leaves' avals, their paths in the
/// input tree (its structure: a map's keys, a struct's fields) and the static value.
type Key<S> = (Vec<Aval>, Vec<String>, S);

/// A jitted function with its cache: call it, see its program, count its traces.
///
/// [`jit`] returns the same thing as a plain closure.
///
/// ```
/// # use ferrax::prelude::*;
/// use ferrax::transforms::Jit;
/// let f = Jit::new(|x: &Tensor| (x.sin() * x).sum());
/// let x = Tensor::from_vec(vec![0.5, 1.0], &[2]);
/// let y = f.call(&x);
/// assert!((y.item() - (0.5f64.sin() * 0.5 + 1.0f64.sin())).abs() < 1e-15);
/// f.call(&x);
/// assert_eq!((f.stats().traces, f.stats().hits), (1, 1));
/// assert!(f.lower(&x).to_string().contains("reduce_sum"));
/// ```
pub struct Jit<I: ?Sized, O, F, S = ()> {
    f: F,
    cache: Mutex<HashMap<Key<S>, Arc<Compiled<O>>>>,
    traces: AtomicUsize,
    hits: AtomicUsize,
    _input: std::marker::PhantomData<fn(&I)>,
}

impl<I, O, F, S> Jit<I, O, F, S>
where
    I: TreeRef + ?Sized,
    O: Tree,
    S: Hash + Eq + Clone,
{
    fn with_fn(f: F) -> Jit<I, O, F, S> {
        Jit {
            f,
            cache: Mutex::new(HashMap::new()),
            traces: AtomicUsize::new(0),
            hits: AtomicUsize::new(0),
            _input: std::marker::PhantomData,
        }
    }

    /// The staged, simplified program for inputs like `x` and the static
    /// value `s`, from the cache or traced now by `call`.
    fn staged(&self, x: &I, xs: &[Tensor], s: &S, call: impl Fn(&F, &I) -> O) -> Arc<Compiled<O>> {
        let key = (avals_of(xs), structure(x), s.clone());
        if let Some(hit) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return hit.clone();
        }
        self.traces.fetch_add(1, Ordering::Relaxed);
        let traced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            stage(&key.0, |ins| call_with(x, ins, |x: &I| call(&self.f, x)))
        }));
        let mut staged = match traced {
            Ok(s) => s,
            Err(p) => {
                let why = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!(
                    "jit: tracing the function failed. Under jit a tensor stands for every value of its shape \
                     and dtype, so its values cannot be read (item, to_vec, a Rust `if` on a tensor): compute \
                     with tensor operations instead (where_ for a branch), pass what decides the program's \
                     structure as a static argument (Jit::with_static, jit_static), or call the function \
                     without jit. The error was: {why}"
                );
            }
        };
        staged.graph = Arc::new(staged.graph.optimized());
        let call = JitCall::new(staged.graph.clone(), Arc::new(staged.graph.fused()), staged.out_avals());
        let scalar = ScalarProgram::new(&staged.graph);
        let compiled = Arc::new(Compiled { call, scalar, staged });
        // With captured tracers the program belongs to this call's enclosing transformation only.
        if compiled.staged.captured.is_empty() {
            self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, compiled.clone());
        }
        compiled
    }

    fn run(&self, x: &I, s: &S, call: impl Fn(&F, &I) -> O) -> O {
        let xs = x.ref_leaves();
        let compiled = self.staged(x, &xs, s, call);
        let staged = &compiled.staged;
        // A program of scalars on concrete inputs: the compact interpreter.
        let on_host = || xs.iter().all(|x| x.device() == crate::array::Device::Cpu);
        if let (Some(program), true) = (&compiled.scalar, staged.captured.is_empty() && on_host()) {
            if let Some(outs) = program.run(&xs) {
                return staged.out.with_leaves(outs);
            }
        }
        let mut operands = xs;
        operands.extend(staged.captured.iter().cloned());
        let prim = compiled.call.clone();
        staged.out.with_leaves(bind_all(prim, &operands).into_vec())
    }

    /// How many calls traced the function and how many reused a program.
    pub fn stats(&self) -> JitStats {
        JitStats { traces: self.traces.load(Ordering::Relaxed), hits: self.hits.load(Ordering::Relaxed) }
    }
}

impl<I, O, F> Jit<I, O, F>
where
    I: TreeRef + ?Sized,
    O: Tree,
    F: Fn(&I) -> O,
{
    /// `f`, to be staged at its first call with each input signature.
    pub fn new(f: F) -> Jit<I, O, F> {
        Jit::with_fn(f)
    }

    /// `f(x)`, through the cached program for `x`'s signature.
    pub fn call(&self, x: &I) -> O {
        self.run(x, &(), |f, x| f(x))
    }

    /// The optimised program (simplified, elementwise chains fused) that a
    /// call with inputs like `x` runs, as `jax.jit(f).lower(x)` shows it;
    /// its `Display` prints one equation a line.
    pub fn lower(&self, x: &I) -> Graph {
        let xs = x.ref_leaves();
        (*self.staged(x, &xs, &(), |f, x| f(x)).call.run).clone()
    }
}

impl<I, O, F, S> Jit<I, O, F, S>
where
    I: TreeRef + ?Sized,
    O: Tree,
    S: Hash + Eq + Clone,
    F: Fn(&I, &S) -> O,
{
    /// `f` with a static argument: a value that is not traced but decides
    /// the program's structure (a number of steps, a flag, a shape), as
    /// JAX's `static_argnums`. Programs are cached per input signature and
    /// static value, so each distinct value traces once.
    ///
    /// ```
    /// # use ferrax::prelude::*;
    /// use ferrax::transforms::Jit;
    /// let power = Jit::with_static(|x: &Tensor, n: &u32| (0..*n).fold(Tensor::ones(x.shape(), x.dtype()), |acc, _| acc * x));
    /// let x = Tensor::from_vec(vec![2.0, 3.0], &[2]);
    /// assert_eq!(power.call_static(&x, &3).to_vec::<f64>(), vec![8.0, 27.0]);
    /// assert_eq!(power.call_static(&x, &2).to_vec::<f64>(), vec![4.0, 9.0]);
    /// power.call_static(&x, &3);
    /// assert_eq!((power.stats().traces, power.stats().hits), (2, 1));
    /// ```
    pub fn with_static(f: F) -> Jit<I, O, F, S> {
        Jit::with_fn(f)
    }

    /// `f(x, s)`, through the cached program for `x`'s signature and `s`.
    pub fn call_static(&self, x: &I, s: &S) -> O {
        self.run(x, s, |f, x| f(x, s))
    }

    /// The optimised program of a call with inputs like `x` and static value `s`.
    pub fn lower_static(&self, x: &I, s: &S) -> Graph {
        let xs = x.ref_leaves();
        (*self.staged(x, &xs, s, |f, x| f(x, s)).call.run).clone()
    }
}

/// Just-in-time staging: `jit(f)` computes what `f` does, but traces `f` only
/// once per input signature (the input's structure and the shapes and
/// dtypes of its leaves),
/// simplifies the program (constants, identities, shared subexpressions,
/// dead code), fuses its chains of elementwise operations into single passes
/// over tiles of the data ([`Graph::fused`]) and runs it from then on
/// without tracing (a program of scalars, such as a value and its partials,
/// as flat instructions over registers). Every transformation applies to it, in
/// either order; `jit(grad(f))` is the fast form of a gradient. The
/// function is `Send + Sync`, and its cache is shared by the threads
/// that call it.
///
/// Under jit a tensor stands for all values of its shape and dtype: reading
/// values (`item`, `to_vec`, a Rust `if` on a tensor) panics while tracing,
/// with a message that says so, and leaves the cache as it was. Tensors the
/// function captures are constants of the program. Results are bit for bit
/// those of the function run eagerly: nothing is reordered, and a fused
/// chain runs each operation's eager arithmetic.
///
/// The signature holds the tree's structure, its tensors' avals and the
/// `Debug` text of a derived struct's `#[tree(skip)]` fields (a layer's
/// activation; see [`Tree::statics_into`]):
/// a field type without `Debug` is told apart only by its type, so give it one.
///
/// Use [`Jit`] to see the program or count traces, and [`jit_static`] for
/// arguments that decide the program's structure.
///
/// ```
/// # use ferrax::prelude::*;
/// let loss = |w: &Tensor| (w.tanh() * w).sum();
/// let fast_grad = jit(grad(loss));
/// let w = Tensor::from_vec(vec![0.1, -0.4, 2.0], &[3]);
/// assert_eq!(fast_grad(&w).to_vec::<f64>(), grad(loss)(&w).to_vec::<f64>());
/// ```
pub fn jit<I, O>(f: impl Fn(&I) -> O + Send + Sync) -> impl Fn(&I) -> O + Send + Sync
where
    I: TreeRef + ?Sized,
    O: Tree + Send + Sync,
{
    let jitted = Jit::new(f);
    move |x: &I| jitted.call(x)
}

/// [`jit`] with a static argument `s`: not traced, part of the cache key,
/// free to steer Rust control flow (see [`Jit::with_static`]).
///
/// ```
/// # use ferrax::prelude::*;
/// use ferrax::transforms::jit_static;
/// let smooth = jit_static(|x: &Tensor, relu: &bool| if *relu { x.relu() } else { x.softplus() });
/// let x = Tensor::from_vec(vec![-1.0, 2.0], &[2]);
/// assert_eq!(smooth(&x, &true).to_vec::<f64>(), vec![0.0, 2.0]);
/// ```
pub fn jit_static<I, S, O>(f: impl Fn(&I, &S) -> O + Send + Sync) -> impl Fn(&I, &S) -> O + Send + Sync
where
    I: TreeRef + ?Sized,
    S: Hash + Eq + Clone + Send + Sync,
    O: Tree + Send + Sync,
{
    let jitted = Jit::with_static(f);
    move |x: &I, s: &S| jitted.call_static(x, s)
}

/// The primitive of one call of a jitted function: its operands are the
/// function's inputs and then what it captured.
#[derive(Clone)]
struct JitCall {
    /// The simplified program, which the rules transform.
    graph: Arc<Graph>,
    /// The same program with its elementwise chains fused: what runs.
    run: Arc<Graph>,
    /// The equation that reads each variable of `run` last.
    last_use: Arc<Vec<Option<usize>>>,
    outs: Arc<Vec<Aval>>,
    /// The program mapped over a leading axis of every operand (simplified, fused), by batch size.
    batched: Arc<Mutex<HashMap<usize, Programs>>>,
}

/// A simplified program and its fused form.
type Programs = (Arc<Graph>, Arc<Graph>);

/// A staged function, simplified, and the primitive that runs it: built
/// once per signature, so its batched programs are cached across calls too.
struct Compiled<O> {
    staged: Staged<O>,
    call: JitCall,
    /// The same program as flat scalar instructions, when it is one of scalars.
    scalar: Option<ScalarProgram>,
}

impl JitCall {
    fn new(graph: Arc<Graph>, run: Arc<Graph>, outs: Vec<Aval>) -> JitCall {
        let last_use = Arc::new(run.last_uses());
        JitCall { graph, run, last_use, outs: Arc::new(outs), batched: Default::default() }
    }
}

impl fmt::Debug for JitCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JitCall({} equations)", self.graph.eqns.len())
    }
}

impl Primitive for JitCall {
    fn name(&self) -> &'static str {
        "jit"
    }
    fn params(&self) -> Params {
        vec![("program", Param::Id(id_of(&self.graph)))]
    }
    fn kind(&self) -> Kind {
        Kind::Call
    }
    fn shape(&self, _ins: &[&Aval]) -> Outs<Aval> {
        self.outs.iter().cloned().collect()
    }
    fn eval(&self, ins: &[&Array]) -> Outs<Array> {
        self.eval_owned(ins.iter().map(|a| (*a).clone()).collect())
    }
    fn eval_owned(&self, ins: Vec<Array>) -> Outs<Array> {
        interpret(&self.run, &self.last_use, ins)
    }
    fn programs(&self) -> Option<Vec<&Graph>> {
        Some(vec![&self.run])
    }
    fn jvp(&self, x: &[Tensor], t: &[Option<Tensor>], _ans: &[Tensor]) -> Outs<Option<Tensor>> {
        // As checkpoint: the tangent is a function of the inputs and their
        // tangents, linear in the latter, transposed through a vjp of the program.
        checkpoint_tangents(as_fun(&self.graph), &self.outs, x, t)
    }
    fn batch(&self, x: &[Tensor], axes: &[Option<usize>], size: usize) -> (Outs<Tensor>, Outs<Option<usize>>) {
        let (graph, run) = self
            .batched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(size)
            .or_insert_with(|| {
                let in_avals = self.graph.input_avals();
                let f = as_fun(&self.graph);
                let staged = stage(&batched_avals(&in_avals, size), |ins| vmap(|xs: &Vec<Tensor>| f(xs))(&ins));
                let graph = staged.graph.optimized();
                (Arc::new(graph.clone()), Arc::new(graph.fused()))
            })
            .clone();
        bind_batched_first(JitCall::new(graph, run, batched_avals(&self.outs, size)), x, axes, size)
    }
}

/// Runs `graph` on concrete inputs, each equation's primitive evaluated
/// directly. An intermediate is handed to its last reader, which may write
/// over it (a fused chain does); a large buffer freed goes back to the
/// pool, which gives it to the next value of its size class.
pub(super) fn interpret(graph: &Graph, last_use: &[Option<usize>], ins: Vec<Array>) -> Outs<Array> {
    let mut env: Vec<Option<Array>> = vec![None; graph.avals.len()];
    for (&v, a) in graph.inputs.iter().zip(ins) {
        env[v] = Some(a);
    }
    for (v, t) in &graph.consts {
        env[*v] =
            Some(t.array().cloned().expect("jit: a program's constants are concrete (captured tracers are operands)"));
    }
    for (i, e) in graph.eqns.iter().enumerate() {
        let args: Vec<Array> = e
            .inputs
            .iter()
            .enumerate()
            .map(|(k, &v)| {
                // The operand's last use, and its last mention in this equation: taken.
                let dies = last_use[v] == Some(i) && !e.inputs[k + 1..].contains(&v);
                let value = if dies { env[v].take() } else { env[v].clone() };
                value.expect("defined before use")
            })
            .collect();
        let device = args.iter().map(Array::device).find(|d| *d != crate::array::Device::Cpu).unwrap_or_default();
        for (&v, y) in e.outs.iter().zip(e.prim.eval_owned(args)) {
            env[v] = Some(crate::array::placed(e.prim.name(), y, device));
        }
    }
    graph.outputs.iter().map(|&v| env[v].clone().expect("outputs are defined")).collect()
}
