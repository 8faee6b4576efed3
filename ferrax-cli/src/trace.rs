//! The evaluation, tangent and adjoint traces of a staged expression, the
//! way the classic tables of automatic differentiation lay them out —
//! computed by ferrax's own graph, `jvp` and `vjp`.

use ferrax::core::{bind_dyn, label, Param, Primitive};
use ferrax::graph::{Def, Graph};
use ferrax::prelude::*;

/// The traces of a scalar function of scalar inputs.
pub struct Traces {
    /// The label of every graph variable (`v_-1`, `v_0`, `v_1`, … or a literal for a constant).
    pub labels: Vec<String>,
    /// What computes each equation, in the labels of its operands.
    pub ops: Vec<String>,
    /// Each equation's primitive and the values of its operands.
    pub applications: Vec<(&'static str, Vec<f64>)>,
    /// Values of the inputs, then of each equation's output.
    pub values: Vec<f64>,
    /// `tangents[j][i]`: the tangent of variable row `i` along input `j`.
    pub tangents: Vec<Vec<f64>>,
    /// The adjoint of each row: ∂y/∂v.
    pub adjoints: Vec<f64>,
    /// For each row, the rows of the equations that read it (for the adjoint formulas).
    pub consumers: Vec<Vec<usize>>,
    /// The row of the output.
    pub output: usize,
}

/// How an equation reads, from its primitive and operand labels.
fn describe(prim: &dyn Primitive, args: &[String]) -> String {
    let infix = |sym: &str| format!("{} {sym} {}", args[0], args[1]);
    match prim.name() {
        "add" => infix("+"),
        "sub" => infix("-"),
        "mul" => infix("*"),
        "div" => infix("/"),
        "pow" => infix("^"),
        "neg" => format!("-{}", args[0]),
        "powi" => match prim.params().first() {
            Some((_, Param::Int(n))) => format!("{} ^ {n}", args[0]),
            _ => format!("powi {}", args[0]),
        },
        _ => format!("{} {}", label(prim), args.join(" ")),
    }
}

/// The rows of the trace table: inputs first, then equations. Constants are
/// not rows; they appear as literals inside the operations that use them.
fn rows(g: &Graph) -> (Vec<usize>, Vec<Option<usize>>) {
    let mut row_of = vec![None; g.avals.len()];
    let mut vars = Vec::new();
    for &v in g.inputs.iter().chain(g.eqns.iter().flat_map(|e| &e.outs)) {
        row_of[v] = Some(vars.len());
        vars.push(v);
    }
    (vars, row_of)
}

/// The value of every equation, with `deltas[k]` added to equation `k`'s
/// output (the perturbations whose cotangents are the adjoints). Evaluated
/// with `bind`, so jvp and vjp see every operation.
fn eval_rows(g: &Graph, inputs: &[Tensor], deltas: Option<&[Tensor]>) -> Vec<Tensor> {
    let mut env: Vec<Option<Tensor>> = vec![None; g.avals.len()];
    for (&v, x) in g.inputs.iter().zip(inputs) {
        env[v] = Some(x.clone());
    }
    for (v, c) in &g.consts {
        env[*v] = Some(c.clone());
    }
    let mut outs = Vec::with_capacity(g.eqns.len());
    for (k, e) in g.eqns.iter().enumerate() {
        let args: Vec<Tensor> = e.inputs.iter().map(|&v| env[v].clone().expect("defined before use")).collect();
        // Expressions are made of primitives with one output.
        let mut y = bind_dyn(e.prim.clone(), &args).swap_remove(0);
        if let Some(d) = deltas {
            y = y + &d[k];
        }
        env[e.outs[0]] = Some(y.clone());
        outs.push(y);
    }
    outs
}

/// The value of the graph's output from the inputs and the equation values.
fn output_value(g: &Graph, inputs: &[Tensor], eqn_values: &[Tensor]) -> Tensor {
    let v = g.outputs[0];
    match g.defs[v] {
        Def::Input(i) => inputs[i].clone(),
        Def::Const(c) => g.consts[c].1.clone(),
        Def::Eqn(k) => eqn_values[k].clone(),
    }
}

/// The traces of `g` (one scalar output, scalar inputs) at `inputs`.
pub fn traces(g: &Graph, inputs: &[Tensor]) -> Traces {
    let (vars, row_of) = rows(g);
    let n_in = g.inputs.len() as i64;
    let mut labels: Vec<String> = vec![String::new(); g.avals.len()];
    for (r, &v) in vars.iter().enumerate() {
        labels[v] = format!("v_{}", r as i64 - n_in + 1);
    }
    for (v, c) in &g.consts {
        labels[*v] = format!("{}", c.item());
    }
    let ops = g
        .eqns
        .iter()
        .map(|e| {
            let args: Vec<String> = e.inputs.iter().map(|&v| labels[v].clone()).collect();
            describe(&*e.prim, &args)
        })
        .collect();
    let eqn_values = eval_rows(g, inputs, None);
    let values: Vec<f64> = inputs.iter().chain(&eqn_values).map(Tensor::item).collect();
    let value_of = |v: usize| match g.defs[v] {
        Def::Input(i) => inputs[i].item(),
        Def::Const(c) => g.consts[c].1.item(),
        Def::Eqn(k) => eqn_values[k].item(),
    };
    let applications =
        g.eqns.iter().map(|e| (e.prim.name(), e.inputs.iter().map(|&v| value_of(v)).collect())).collect();

    // Forward mode: one jvp per input direction gives the tangent of every row.
    let tangents = (0..inputs.len())
        .map(|j| {
            let dirs: Vec<Tensor> = (0..inputs.len()).map(|i| Tensor::scalar(if i == j { 1.0 } else { 0.0 })).collect();
            let (_, t) = jvp(|xs: &Vec<Tensor>| eval_rows(g, xs, None), &inputs.to_vec(), &dirs);
            dirs.iter().chain(&t).map(Tensor::item).collect()
        })
        .collect();

    // Reverse mode: the adjoint of row v is ∂y/∂δ_v, where δ_v is a zero added to v.
    let deltas: Vec<Tensor> = g.eqns.iter().map(|_| Tensor::scalar(0.0)).collect();
    let f = |p: &(Vec<Tensor>, Vec<Tensor>)| {
        let vals = eval_rows(g, &p.0, Some(&p.1));
        output_value(g, &p.0, &vals)
    };
    let (_, pullback) = vjp(f, &(inputs.to_vec(), deltas));
    let (x_bar, d_bar) = pullback(&Tensor::scalar(1.0));
    let adjoints: Vec<f64> = x_bar.iter().chain(&d_bar).map(Tensor::item).collect();

    let mut consumers = vec![Vec::new(); vars.len()];
    for e in &g.eqns {
        let reader = row_of[e.outs[0]].expect("equations are rows");
        for &v in &e.inputs {
            if let Some(r) = row_of[v] {
                if !consumers[r].contains(&reader) {
                    consumers[r].push(reader);
                }
            }
        }
    }
    let output = row_of[g.outputs[0]].unwrap_or(vars.len().saturating_sub(1));
    Traces {
        labels: vars.iter().map(|&v| labels[v].clone()).collect(),
        ops,
        applications,
        values,
        tangents,
        adjoints,
        consumers,
        output,
    }
}
