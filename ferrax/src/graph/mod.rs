//! The staged program: a graph of primitive applications, as `make_graph`,
//! `linearize` and the tape build it.
//!
//! Every value in a graph is a variable, numbered in order of creation:
//! an input, a constant (a tensor captured while tracing — for a linear
//! graph these are the residuals of the forward pass), or the output of one
//! equation. Equations are in evaluation order.

mod fuse;
mod optimize;
mod parts;
mod print;
mod rebuild;
mod transpose;

use std::collections::HashMap;
use std::sync::Arc;

use crate::array::Aval;
use crate::core::{bind_dyn, small, Outs, Primitive, Tensor};

pub(crate) use fuse::elementwise;
pub use fuse::Fused;
pub use transpose::backward_pass;
pub(crate) use transpose::{backward_pass_each, transpose_linear};

/// A variable of a graph.
pub type Var = usize;

/// One primitive application: `outs… = prim(inputs…)`.
#[derive(Clone, Debug)]
pub struct Eqn {
    /// The primitive, with its parameters.
    pub prim: Arc<dyn Primitive>,
    /// Its operands.
    pub inputs: Vec<Var>,
    /// The variables it defines, one per output of the primitive.
    pub outs: Outs<Var>,
    /// The user rule (`custom_jvp`, …) that applied it, so errors in
    /// transposing it can name the user's code.
    pub origin: Option<&'static str>,
}

/// What defines a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Def {
    /// The `i`-th input of the graph.
    Input(usize),
    /// The `i`-th constant.
    Const(usize),
    /// An output of the `i`-th equation.
    Eqn(usize),
}

/// A staged program.
#[derive(Clone)]
pub struct Graph {
    /// The abstract value of every variable.
    pub avals: Vec<Aval>,
    /// What defines every variable.
    pub defs: Vec<Def>,
    /// The input variables, in order.
    pub inputs: Vec<Var>,
    /// The constant variables and their values, in order.
    pub consts: Vec<(Var, Tensor)>,
    /// The equations, in evaluation order.
    pub eqns: Vec<Eqn>,
    /// The output variables, in order (a variable may appear more than once).
    pub outputs: Vec<Var>,
}

/// A graph's shapes disagree with its primitives' shape rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphError {
    /// Which equation.
    pub eqn: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "equation {}: {}", self.eqn, self.message)
    }
}

impl std::error::Error for GraphError {}

impl Graph {
    /// A graph with no variables.
    fn empty() -> Graph {
        Graph {
            avals: Vec::new(),
            defs: Vec::new(),
            inputs: Vec::new(),
            consts: Vec::new(),
            eqns: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// Checks every equation against its primitive's shape rule and the
    /// variable numbering (each operand defined before use). Run after every
    /// graph is built in debug builds; tests call it directly.
    pub fn check(&self) -> Result<(), GraphError> {
        let mut defined = vec![false; self.avals.len()];
        for &v in self.inputs.iter().chain(self.consts.iter().map(|(v, _)| v)) {
            defined[v] = true;
        }
        for (i, (v, t)) in self.consts.iter().enumerate() {
            if t.aval() != &self.avals[*v] {
                return Err(GraphError {
                    eqn: i,
                    message: format!("constant {v} is {} but declared {}", t.aval(), self.avals[*v]),
                });
            }
        }
        for (i, e) in self.eqns.iter().enumerate() {
            if let Some(&v) = e.inputs.iter().find(|&&v| v >= defined.len() || !defined[v]) {
                return Err(GraphError {
                    eqn: i,
                    message: format!("{} uses variable {v} before it is defined", e.prim.name()),
                });
            }
            let ins: Vec<&Aval> = e.inputs.iter().map(|&v| &self.avals[v]).collect();
            let shape_rule = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.prim.shape(&ins)));
            let declared: Vec<&Aval> = e.outs.iter().map(|&v| &self.avals[v]).collect();
            match shape_rule {
                Ok(avals) if avals.iter().collect::<Vec<_>>() == declared => {
                    for &v in &e.outs {
                        defined[v] = true;
                    }
                }
                Ok(avals) => {
                    let show = |a: Vec<&Aval>| match a.as_slice() {
                        [one] => one.to_string(),
                        many => format!("({})", many.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")),
                    };
                    let (got, want) = (show(avals.iter().collect()), show(declared));
                    let what = if e.outs.len() == 1 { "its output is" } else { "its outputs are" };
                    return Err(GraphError {
                        eqn: i,
                        message: format!("{} gives {got} but {what} declared {want}", e.prim.name()),
                    });
                }
                Err(p) => {
                    let why = p.downcast_ref::<String>().cloned().unwrap_or_else(|| "shape rule panicked".into());
                    return Err(GraphError { eqn: i, message: why });
                }
            }
        }
        if let Some(&v) = self.outputs.iter().find(|&&v| !defined[v]) {
            return Err(GraphError { eqn: self.eqns.len(), message: format!("output variable {v} is never defined") });
        }
        Ok(())
    }

    /// Evaluates the graph on `inputs` with ordinary `bind` calls, so an
    /// enclosing transformation traces the evaluation.
    ///
    /// # Panics
    /// When the inputs do not match the graph's input avals.
    #[track_caller]
    pub fn eval(&self, inputs: &[Tensor]) -> Vec<Tensor> {
        assert!(
            inputs.len() == self.inputs.len(),
            "graph: expected {} inputs, got {}",
            self.inputs.len(),
            inputs.len()
        );
        let mut env: Vec<Option<Tensor>> = vec![None; self.avals.len()];
        for (i, (&v, x)) in self.inputs.iter().zip(inputs).enumerate() {
            assert!(
                x.aval() == &self.avals[v],
                "graph: input {i} is {} but the graph expects {}",
                x.aval(),
                self.avals[v]
            );
            env[v] = Some(x.clone());
        }
        for (v, t) in &self.consts {
            env[*v] = Some(t.clone());
        }
        // Free each intermediate after its last use, so evaluation holds no more than it must.
        let last_use = self.last_uses();
        for (i, e) in self.eqns.iter().enumerate() {
            let args: Vec<Tensor> = e.inputs.iter().map(|&v| env[v].clone().expect("defined before use")).collect();
            for (&v, y) in e.outs.iter().zip(bind_dyn(e.prim.clone(), &args)) {
                env[v] = Some(y);
            }
            for &v in &e.inputs {
                if last_use[v] == Some(i) && matches!(self.defs[v], Def::Eqn(_)) {
                    env[v] = None;
                }
            }
        }
        self.outputs.iter().map(|&v| env[v].clone().expect("outputs are defined")).collect()
    }

    /// The graph with every constant that is a tracer (a value of an
    /// enclosing transformation, captured by the staged function) turned
    /// into an extra input after the others, and those tracers in order —
    /// JAX's closure conversion: the caller passes them back in explicitly,
    /// so enclosing transformations see them as operands.
    pub fn hoist_traced_consts(mut self) -> (Graph, Vec<Tensor>) {
        let mut hoisted = Vec::new();
        let mut consts = Vec::new();
        for (v, t) in std::mem::take(&mut self.consts) {
            if t.is_tracer() {
                self.defs[v] = Def::Input(self.inputs.len());
                self.inputs.push(v);
                hoisted.push(t);
            } else {
                self.defs[v] = Def::Const(consts.len());
                consts.push((v, t));
            }
        }
        self.consts = consts;
        (self, hoisted)
    }

    /// The index of the last equation reading each variable (`None`: none
    /// does, or an output reads it).
    pub(crate) fn last_uses(&self) -> Vec<Option<usize>> {
        let mut last = vec![None; self.avals.len()];
        for (i, e) in self.eqns.iter().enumerate() {
            for &v in &e.inputs {
                last[v] = Some(i);
            }
        }
        for &v in &self.outputs {
            last[v] = None;
        }
        last
    }
}

/// Builds a [`Graph`] one variable at a time.
pub struct GraphBuilder {
    graph: Graph,
    /// Constants already captured, by the address of their shared value, so
    /// one tensor used many times becomes one constant.
    const_ids: HashMap<usize, Var>,
}

impl Default for GraphBuilder {
    fn default() -> Self {
        GraphBuilder::new()
    }
}

impl GraphBuilder {
    /// An empty graph.
    pub fn new() -> GraphBuilder {
        GraphBuilder { graph: Graph::empty(), const_ids: HashMap::new() }
    }

    fn new_var(&mut self, aval: Aval, def: Def) -> Var {
        self.graph.avals.push(aval);
        self.graph.defs.push(def);
        self.graph.avals.len() - 1
    }

    /// A new input variable.
    pub fn add_input(&mut self, aval: Aval) -> Var {
        let v = self.new_var(aval, Def::Input(self.graph.inputs.len()));
        self.graph.inputs.push(v);
        v
    }

    /// The variable holding constant `t` (one per distinct tensor).
    pub fn add_const(&mut self, t: &Tensor) -> Var {
        let key = t.addr();
        if let Some(&v) = self.const_ids.get(&key) {
            return v;
        }
        let v = self.new_var(t.aval().clone(), Def::Const(self.graph.consts.len()));
        self.graph.consts.push((v, t.clone()));
        self.const_ids.insert(key, v);
        v
    }

    /// A new equation `prim(inputs)` whose outputs are `avals`; their variables.
    pub fn add_eqn(&mut self, prim: Arc<dyn Primitive>, inputs: Vec<Var>, avals: &[Aval]) -> Outs<Var> {
        let k = self.graph.eqns.len();
        let outs: Outs<Var> = small(avals.iter().map(|a| self.new_var(a.clone(), Def::Eqn(k))));
        let origin = crate::core::context::user_rule();
        self.graph.eqns.push(Eqn { prim, inputs, outs: outs.clone(), origin });
        outs
    }

    /// The graph built so far with these outputs, leaving the builder open.
    pub fn snapshot(&self, outputs: Vec<Var>) -> Graph {
        Graph { outputs, ..self.graph.clone() }
    }

    /// The finished graph with these outputs.
    pub fn finish(mut self, outputs: Vec<Var>) -> Graph {
        self.graph.outputs = outputs;
        debug_assert!(self.graph.check().is_ok(), "staged graph fails its check: {:?}", self.graph.check());
        self.graph
    }
}
