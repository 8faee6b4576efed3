//! `ferrax explain`: the four ways to differentiate — symbolic, numerical,
//! forward mode, reverse mode — side by side on an expression, with the
//! evaluation, tangent and adjoint traces that show how AD works.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

use ferrax::numeric::{default_step, numerical_jvp_with_step};
use ferrax::prelude::*;
use ferrax::symbolic::{parse, Constant, Expr, Func};
use serde_json::{json, Value};
use unicode_width::UnicodeWidthStr;

use crate::output::{check_svg_name, failed, out, outln, prepare_outputs, usage, Failure};
use crate::plot::{stack, Chart, Series};
use crate::trace::{traces, Traces};

mod program;

/// `ferrax explain`'s options.
#[derive(clap::Args)]
#[command(after_help = expression_help())]
pub struct Args {
    /// The expression, quoted; several comma-separated expressions make a vector function
    expression: String,
    /// The point: NAME=V,NAME=V; NAME=V1,V2,V3 gives a vector (elementwise)
    #[arg(long, default_value = "")]
    at: String,
    /// Also the Hessian (scalar functions of scalars)
    #[arg(long)]
    hessian: bool,
    /// The Jacobian (vector functions)
    #[arg(long)]
    jacobian: bool,
    /// Print everything as JSON
    #[arg(long)]
    json: bool,
    /// Draw the numerical-differentiation error against the step h, with the AD error beside it (an .svg file)
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Instead of the derivatives, the program of the gradient as traced and as jit runs it (simplified, fused)
    #[arg(long)]
    program: bool,
}

/// The expression language, for `--help`: every function and constant the parser accepts.
fn expression_help() -> String {
    let functions: Vec<&str> = Func::ALL.iter().map(|f| f.name()).collect();
    let constants: Vec<String> =
        [Constant::Pi, Constant::E].iter().map(|c| format!("{} = {}", c.name(), c.value())).collect();
    format!(
        "Differentiates an expression four ways — symbolically, by central differences, by forward mode and by \
         reverse mode — and shows the evaluation trace, the forward-mode tangent trace and the reverse-mode \
         adjoint trace that automatic differentiation computes.\n\n\
         Expressions: numbers, variables, + - * / ^ (right-associative), unary minus, parentheses;\n\
         functions: {} (and log, the same as ln);\n\
         constants: {} (so they cannot be variable names).\n\n\
         Example: ferrax explain \"ln(x1) + x1*x2 - sin(x2)\" --at x1=2,x2=5",
        functions.join(", "),
        constants.join(", ")
    )
}

/// An expression and the point to differentiate it at.
struct Problem {
    source: String,
    exprs: Vec<Expr>,
    /// Variables in sorted order with their values (one value: a scalar).
    at: BTreeMap<String, Vec<f64>>,
}

impl Problem {
    fn scalar_vars(&self) -> bool {
        self.at.values().all(|v| v.len() == 1)
    }

    fn is_scalar(&self) -> bool {
        self.exprs.len() == 1 && self.scalar_vars()
    }

    fn names(&self) -> Vec<String> {
        self.at.keys().cloned().collect()
    }

    /// The variables as tensors: 0-d for one value, 1-d for several.
    fn tensors(&self) -> BTreeMap<String, Tensor> {
        self.at
            .iter()
            .map(|(k, v)| {
                (k.clone(), if v.len() == 1 { Tensor::scalar(v[0]) } else { Tensor::from_vec(v.clone(), &[v.len()]) })
            })
            .collect()
    }

    /// The function on a map of variables: one tensor, or the outputs stacked.
    fn eval(&self, vars: &BTreeMap<String, Tensor>) -> Tensor {
        let outs: Vec<Tensor> = self.exprs.iter().map(|e| e.to_tensor(vars).expect("checked in setup")).collect();
        if outs.len() == 1 {
            outs[0].clone()
        } else {
            let shape = outs
                .iter()
                .fold(vec![], |s: Vec<usize>, o| ferrax::array::broadcast_shapes(&s, o.shape()).unwrap_or(s));
            Tensor::stack(&outs.iter().map(|o| o.broadcast_to(&shape)).collect::<Vec<_>>(), 0)
        }
    }

    /// The function of one flat vector holding every variable's values, output flattened.
    fn flat(&self, x: &Tensor) -> Tensor {
        let mut vars = BTreeMap::new();
        let mut at = 0;
        for (k, v) in &self.at {
            let piece = x.slice(0, at, at + v.len());
            vars.insert(k.clone(), if v.len() == 1 { piece.reshape(&[]) } else { piece });
            at += v.len();
        }
        let y = self.eval(&vars);
        let n = y.size();
        y.reshape(&[n])
    }

    fn flat_point(&self) -> Tensor {
        let all: Vec<f64> = self.at.values().flatten().copied().collect();
        let n = all.len();
        Tensor::from_vec(all, &[n])
    }
}

/// Splits at commas outside parentheses, keeping each piece's starting column.
fn split_outputs(src: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in src.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push((start, &src[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push((start, &src[start..]));
    out
}

/// `x1=2,x2=5` or `x=1,2,3,y=4`: a value without a name extends the previous variable.
fn parse_at(s: &str) -> Result<BTreeMap<String, Vec<f64>>, String> {
    let mut at: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => {
                let n = n.trim().to_string();
                if let Some(c) = Constant::from_name(&n) {
                    return Err(format!(
                        "--at: '{n}' is the constant {n} = {}, not a variable; give your variable another name",
                        c.value()
                    ));
                }
                if at.contains_key(&n) {
                    return Err(format!("--at: '{n}' is given twice"));
                }
                current = Some(n.clone());
                (n, v.trim())
            }
            None => (
                current.clone().ok_or_else(|| format!("--at: '{part}' has no variable name (write NAME=VALUE)"))?,
                part,
            ),
        };
        let v: f64 = value.parse().map_err(|_| format!("--at: '{value}' is not a number"))?;
        at.entry(name).or_default().push(v);
    }
    Ok(at)
}

fn setup(source: &str, at: &str) -> Result<Problem, String> {
    let mut exprs = Vec::new();
    for (offset, piece) in split_outputs(source) {
        let e = parse(piece).map_err(|e| {
            // The column in the whole input, in characters; the caret placed
            // by display width, so it lines up under wide characters too.
            let col = source[..offset].chars().count() + e.column();
            let before: String = source.chars().take(col - 1).collect();
            format!("{} at column {col}\n  {source}\n  {}^", e.kind(), " ".repeat(before.width()))
        })?;
        exprs.push(e);
    }
    let at = parse_at(at)?;
    let mut used: Vec<String> = exprs.iter().flat_map(|e| e.variables()).collect();
    used.sort();
    used.dedup();
    let missing: Vec<&String> = used.iter().filter(|v| !at.contains_key(*v)).collect();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return Err(format!("--at gives no value for {} (e.g. --at {}=1)", names.join(", "), names[0]));
    }
    let unused: Vec<&String> = at.keys().filter(|k| !used.contains(k)).collect();
    if !unused.is_empty() {
        return Err(format!("--at names variables the expression does not use: {unused:?}"));
    }
    let lens: Vec<usize> = at.values().map(Vec::len).filter(|&n| n > 1).collect();
    if lens.windows(2).any(|w| w[0] != w[1]) {
        return Err("--at: vector variables must all have the same length".into());
    }
    Ok(Problem { source: source.to_string(), exprs, at })
}

/// Formats a number compactly: up to 10 significant digits, no trailing zeros.
fn num(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() >= 1e10 || v.abs() < 1e-5 {
        return format!("{v:.6e}");
    }
    let digits = (10 - (v.abs().log10().floor() as i32 + 1)).clamp(0, 12) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Every digit of an `f64` (the shortest text that reads back as the same
/// number), in scientific notation when it is huge or tiny.
fn full(v: f64) -> String {
    if v != 0.0 && v.is_finite() && (v.abs() >= 1e16 || v.abs() < 1e-5) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// `s` padded with spaces to `width` columns of display width.
fn pad(s: &str, width: usize) -> String {
    format!("{s}{}", " ".repeat(width.saturating_sub(s.width())))
}

/// How far apart two derivatives are, relative to their size; NaN (and one
/// side infinite) is disagreement, never agreement.
fn relative_difference(a: f64, b: f64) -> f64 {
    if a == b {
        return 0.0; // equal, infinities of one sign included
    }
    if !a.is_finite() || !b.is_finite() {
        return f64::INFINITY;
    }
    (a - b).abs() / a.abs().max(b.abs()).max(f64::MIN_POSITIVE)
}

/// The largest relative difference between two lists, as text.
fn agreement(a: &[f64], b: &[f64]) -> String {
    let worst = a.iter().zip(b).map(|(x, y)| relative_difference(*x, *y)).fold(0.0, f64::max);
    if worst.is_infinite() {
        "disagree (NaN or infinite)".to_string()
    } else {
        format!("{worst:.1e}")
    }
}

/// Rows of numbers.
type Matrix = Vec<Vec<f64>>;

/// Everything `explain` reports about a scalar function of scalars.
struct Report {
    value: f64,
    traces: Traces,
    names: Vec<String>,
    symbolic: Vec<(String, f64)>,
    numerical: Vec<(f64, f64)>, // (value, step)
    forward: Vec<f64>,
    reverse: Vec<f64>,
    /// (by AD, symbolically), when asked for.
    hessian: Option<(Matrix, Matrix)>,
    swell: (usize, usize, usize, usize, usize), // f tree, f dag, grad tree, grad dag, AD graph equations
    /// What a reader must know to trust the numbers: a point outside a
    /// function's domain, a non-finite input, a kink.
    notes: Vec<String>,
}

/// Notes on the evaluation: inputs that are not finite, the first
/// operation that left its domain (or overflowed), and kinks where AD and
/// the symbolic engine take different one-sided derivatives.
fn evaluation_notes(names: &[String], t: &Traces) -> Vec<String> {
    let mut notes = Vec::new();
    for (n, v) in names.iter().zip(&t.values) {
        if !v.is_finite() {
            notes.push(format!("{n} is {v}: every value computed from it is meaningless"));
        }
    }
    let n_in = names.len();
    let left = t
        .applications
        .iter()
        .enumerate()
        .find(|(k, (_, args))| !t.values[n_in + k].is_finite() && args.iter().all(|a| a.is_finite()));
    if let Some((k, (name, args))) = left {
        let result = t.values[n_in + k];
        let a = |i: usize| num(args[i]);
        let what = match (*name, args.len()) {
            ("ln", _) | ("sqrt", _) | ("tan", _) => format!("{name} at {}", a(0)),
            ("div", 2) if args[1] == 0.0 => format!("{}/0", a(0)),
            ("div", 2) => format!("{}/{} (it overflows)", a(0), a(1)),
            ("pow", 2) => format!("{}^{}", a(0), a(1)),
            ("powi", 1) => format!("{}^n", a(0)),
            ("exp", _) => format!("exp at {} (it overflows)", a(0)),
            _ => format!("{name} at {}", args.iter().map(|v| num(*v)).collect::<Vec<_>>().join(", ")),
        };
        notes.push(format!(
            "the point is outside the domain: {what} is {result} (in {}); the derivatives below are not meaningful \
             there",
            t.labels[n_in + k]
        ));
    }
    for (k, (name, args)) in t.applications.iter().enumerate() {
        if *name == "abs" && args[0] == 0.0 {
            notes.push(format!(
                "abs at 0 (in {}) is a kink: AD takes the right-hand derivative 1 there (abs'(0) = 1, as JAX), the \
                 symbolic derivative sign(x) takes 0; both are subgradients, and they differ below",
                t.labels[n_in + k]
            ));
        }
    }
    notes
}

fn central_difference(p: &Problem, x: &BTreeMap<String, Tensor>, name: &str, h: f64) -> f64 {
    let along: BTreeMap<String, Tensor> =
        x.keys().map(|k| (k.clone(), Tensor::scalar(if k == name { 1.0 } else { 0.0 }))).collect();
    numerical_jvp_with_step(|v: &BTreeMap<String, Tensor>| p.eval(v), x, &along, h).item()
}

fn forward_difference(p: &Problem, x: &BTreeMap<String, Tensor>, name: &str, h: f64) -> f64 {
    let mut v = x.clone();
    let moved = &v[name] + h;
    v.insert(name.to_string(), moved);
    (p.eval(&v).item() - p.eval(x).item()) / h
}

fn scalar_report(p: &Problem, want_hessian: bool) -> Report {
    let x = p.tensors();
    let names = p.names();
    let f = |v: &BTreeMap<String, Tensor>| p.eval(v);
    let graph = make_graph(f, &x);
    let inputs: Vec<Tensor> = x.values().cloned().collect();
    let traces = traces(&graph, &inputs);
    let e = &p.exprs[0];
    let point: BTreeMap<String, f64> = p.at.iter().map(|(k, v)| (k.clone(), v[0])).collect();
    let symbolic: Vec<(String, f64)> = names
        .iter()
        .map(|n| {
            let d = e.diff(n);
            let v = d.eval(&point).unwrap_or(f64::NAN);
            (d.to_string(), v)
        })
        .collect();
    let numerical = names
        .iter()
        .map(|n| {
            let h = default_step(DType::F64, point[n].abs());
            (central_difference(p, &x, n, h), h)
        })
        .collect();
    let forward = names
        .iter()
        .map(|n| {
            let dir: BTreeMap<String, Tensor> =
                names.iter().map(|m| (m.clone(), Tensor::scalar(if m == n { 1.0 } else { 0.0 }))).collect();
            jvp(f, &x, &dir).1.item()
        })
        .collect();
    let (value, g) = value_and_grad(f)(&x);
    let reverse = g.values().map(Tensor::item).collect();
    let hessian = want_hessian.then(|| {
        let h = hessian(|v: &Tensor| p.flat(v).reshape(&[]))(&p.flat_point());
        let n = names.len();
        let hv = h.to_vec::<f64>();
        let ad = (0..n).map(|i| hv[i * n..(i + 1) * n].to_vec()).collect();
        let sym = names
            .iter()
            .map(|a| names.iter().map(|b| e.diff(a).diff(b).eval(&point).unwrap_or(f64::NAN)).collect())
            .collect();
        (ad, sym)
    });
    let grads: Vec<Expr> = names.iter().map(|n| e.diff(n)).collect();
    let swell = (
        e.tree_size(),
        e.dag_size(),
        grads.iter().map(Expr::tree_size).sum(),
        grads.iter().map(Expr::dag_size).sum(),
        make_graph(grad(f), &x).eqns.len(),
    );
    let notes = evaluation_notes(&names, &traces);
    Report { value: value.item(), traces, names, symbolic, numerical, forward, reverse, hessian, swell, notes }
}

/// A label for the output row that is not also a variable's name.
fn output_label(names: &[String]) -> &'static str {
    ["y", "f", "out", "result"].into_iter().find(|l| !names.iter().any(|n| n == l)).unwrap_or("output")
}

fn print_scalar(p: &Problem, r: &Report) -> String {
    let mut s = String::new();
    let at: Vec<String> = r.names.iter().zip(&r.traces.values).map(|(n, v)| format!("{n} = {}", num(*v))).collect();
    let _ = writeln!(s, "f({}) = {}   at {}\n", r.names.join(", "), p.source, at.join(", "));
    let t = &r.traces;
    let n_in = r.names.len();
    let y = output_label(&r.names);
    let width = t.ops.iter().map(|o| o.width()).chain(r.names.iter().map(|n| n.width())).max().unwrap_or(4).max(8);
    let _ = writeln!(s, "evaluation trace (the primal computation, as ferrax stages it)");
    for (i, label) in t.labels.iter().enumerate() {
        let what = if i < n_in { r.names[i].clone() } else { t.ops[i - n_in].clone() };
        let _ = writeln!(s, "  {label:>5} = {} = {:>14}", pad(&what, width), num(t.values[i]));
    }
    let _ = writeln!(s, "  {y:>5} = {} = {:>14}\n", pad(&t.labels[t.output], width), num(t.values[t.output]));

    let _ = writeln!(s, "forward mode (tangent trace: one pass per input direction)");
    let header: String = r.names.iter().map(|n| format!("{:>14}", format!("d/d{n}"))).collect();
    let _ = writeln!(s, "  {:>5}   {header}", "");
    for (i, label) in t.labels.iter().enumerate() {
        let row: String = t.tangents.iter().map(|tj| format!("{:>14}", num(tj[i]))).collect();
        let _ = writeln!(s, "  {:>5}'  {row}", label);
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "reverse mode (adjoint trace: one backward pass for all inputs; v̄ = ∂{y}/∂v)");
    let formulas: Vec<String> = (0..t.labels.len())
        .map(|i| {
            let formula = if i == t.output {
                format!("{y}̄ (seed)")
            } else {
                t.consumers[i]
                    .iter()
                    .map(|&k| format!("v̄{}·∂{}/∂{}", &t.labels[k][1..], t.labels[k], t.labels[i]))
                    .collect::<Vec<_>>()
                    .join(" + ")
            };
            if formula.is_empty() {
                format!("0 ({y} does not depend on it)")
            } else {
                formula
            }
        })
        .collect();
    // Display widths, not character counts: v̄ is two characters in one column.
    let formula_width = formulas.iter().map(|f| f.width()).max().unwrap_or(0).max(40);
    for i in (0..t.labels.len()).rev() {
        let label = format!("v̄{}", &t.labels[i][1..]);
        let _ = writeln!(s, "  {} = {} = {:>14}", pad(&label, 6), pad(&formulas[i], formula_width), num(t.adjoints[i]));
    }
    let xs: Vec<String> = r.names.iter().zip(&t.adjoints).map(|(n, a)| format!("∂f/∂{n} = {}", num(*a))).collect();
    let _ = writeln!(s, "  so {}\n", xs.join(", "));

    let _ = writeln!(s, "four ways to the gradient");
    let _ = writeln!(s, "  value f = {}", num(r.value));
    for (j, n) in r.names.iter().enumerate() {
        let (sym_text, sym) = &r.symbolic[j];
        let (numv, h) = r.numerical[j];
        let _ = writeln!(s, "  ∂f/∂{n}");
        // Every digit of each f64, so the numerical error is visible and AD's absence of one is too.
        let _ = writeln!(s, "    symbolic     {sym_text}  =  {}", full(*sym));
        let _ = writeln!(
            s,
            "    numerical    {}   (central difference, h = {h:.1e}; error {:.1e})",
            full(numv),
            (numv - sym).abs()
        );
        let _ = writeln!(s, "    forward      {}   (jvp along {n})", full(r.forward[j]));
        let _ = writeln!(s, "    reverse      {}   (grad)", full(r.reverse[j]));
    }
    for note in &r.notes {
        let _ = writeln!(s, "  note: {note}");
    }
    let syms: Vec<f64> = r.symbolic.iter().map(|x| x.1).collect();
    let nums: Vec<f64> = r.numerical.iter().map(|x| x.0).collect();
    let _ = writeln!(
        s,
        "  agreement (largest relative difference): forward vs reverse {}, AD vs symbolic {}, numerical vs symbolic {}",
        agreement(&r.forward, &r.reverse),
        agreement(&r.reverse, &syms),
        agreement(&nums, &syms)
    );
    if let Some((ad, sym)) = &r.hessian {
        let _ = writeln!(s, "\nHessian (AD: jacfwd of jacrev; symbolic: each partial differentiated again)");
        for (a, b) in ad.iter().zip(sym) {
            let row: String = a.iter().map(|v| format!("{:>14}", num(*v))).collect();
            let srow: String = b.iter().map(|v| format!("{:>14}", num(*v))).collect();
            let _ = writeln!(s, "  AD {row}    symbolic {srow}");
        }
        let (flat_ad, flat_sym): (Vec<f64>, Vec<f64>) = ad.iter().flatten().zip(sym.iter().flatten()).unzip();
        let _ = writeln!(s, "  agreement (largest relative difference): {}", agreement(&flat_ad, &flat_sym));
    }
    let (ft, fd, gt, gd, ad) = r.swell;
    let _ = writeln!(
        s,
        "\nexpression swell: f has {ft} nodes as a tree ({fd} shared as a DAG); its symbolic partials have {gt} ({gd}); \
         the AD graph of the whole gradient has {ad} equations"
    );
    s
}

fn json_scalar(p: &Problem, r: &Report) -> Value {
    let t = &r.traces;
    let n_in = r.names.len();
    let per_var = |f: &dyn Fn(usize) -> Value| -> Value {
        Value::Object(r.names.iter().enumerate().map(|(j, n)| (n.clone(), f(j))).collect())
    };
    let trace: Vec<Value> = (0..t.labels.len())
        .map(|i| {
            let op = if i < n_in { r.names[i].clone() } else { t.ops[i - n_in].clone() };
            json!({
                "v": t.labels[i],
                "op": op,
                "value": t.values[i],
                "tangents": per_var(&|j| json!(t.tangents[j][i])),
                "adjoint": t.adjoints[i],
            })
        })
        .collect();
    json!({
        "expression": p.source,
        "at": per_var(&|j| json!(t.values[j])),
        "value": r.value,
        "trace": trace,
        "output": t.labels[t.output],
        "gradient": per_var(&|j| json!({
            "symbolic": r.symbolic[j].0,
            "symbolic_value": r.symbolic[j].1,
            "numerical": r.numerical[j].0,
            "numerical_step": r.numerical[j].1,
            "forward": r.forward[j],
            "reverse": r.reverse[j],
        })),
        "hessian": r.hessian.as_ref().map(|(ad, sym)| json!({"ad": ad, "symbolic": sym})),
        "notes": r.notes,
        "swell": {
            "f_tree": r.swell.0,
            "f_dag": r.swell.1,
            "gradient_tree": r.swell.2,
            "gradient_dag": r.swell.3,
            "ad_graph_equations": r.swell.4,
        },
    })
}

/// The error of central and forward differences against the symbolic
/// derivative over steps 1e-16 … 1, beside the AD error, one chart per
/// variable. Steps whose difference quotient is not finite are left out,
/// and the chart says how many.
fn error_plot(p: &Problem, r: &Report) -> String {
    let x = p.tensors();
    let hs: Vec<f64> = (0..=64).map(|k| 10f64.powf(-16.0 + 0.25 * k as f64)).collect();
    // A zero error cannot sit on a log axis: show it at the smallest representable relative size.
    let floor = |e: f64, scale: f64| e.max(f64::EPSILON * 0.01 * scale.abs().max(1e-300));
    let charts: Vec<Chart> = r
        .names
        .iter()
        .enumerate()
        .map(|(j, n)| {
            let exact = r.symbolic[j].1;
            let mut left_out = 0;
            let mut series = |name: &str, color, f: &dyn Fn(f64) -> f64| {
                let points: Vec<(f64, f64)> = hs.iter().map(|&h| (h, floor((f(h) - exact).abs(), exact))).collect();
                left_out += points.iter().filter(|(_, e)| !e.is_finite()).count();
                Series { name: name.into(), points, color, dashed: false }
            };
            let forward = series("forward difference", "#ff7f0e", &|h| forward_difference(p, &x, n, h));
            let central = series("central difference", "#1f77b4", &|h| central_difference(p, &x, n, h));
            let ad_error = (r.reverse[j] - exact).abs();
            let ad = floor(ad_error, exact);
            let ad_name = if ad_error == 0.0 {
                "AD (error 0, drawn at ε/100)".to_string()
            } else {
                format!("AD (error {ad_error:.1e})")
            };
            let note = if !exact.is_finite() {
                Some(format!("∂f/∂{n} is {exact} at this point: there is no error to draw"))
            } else if left_out > 0 {
                Some(format!(
                    "{left_out} of {} steps give a NaN or infinite difference quotient; left out",
                    2 * hs.len()
                ))
            } else {
                None
            };
            Chart {
                title: format!("error of ∂f/∂{n} against the step h"),
                x_label: "step h".into(),
                y_label: "absolute error".into(),
                log_x: true,
                log_y: true,
                series: vec![
                    forward,
                    central,
                    Series {
                        name: ad_name,
                        points: vec![(hs[0], ad), (hs[hs.len() - 1], ad)],
                        color: "#2ca02c",
                        dashed: true,
                    },
                ],
                note,
            }
        })
        .collect();
    stack(&charts)
}

/// The Jacobian of a vector function by jacfwd, jacrev, central differences and (for scalar variables) symbolically.
fn vector_report(p: &Problem, want_jacobian: bool, as_json: bool) -> String {
    let x = p.tensors();
    let y = p.eval(&x);
    let mut s = String::new();
    let at: Vec<String> =
        p.at.iter()
            .map(|(k, v)| format!("{k} = {}", v.iter().map(|x| num(*x)).collect::<Vec<_>>().join(",")))
            .collect();
    let _ = writeln!(s, "f = ({})   at {}\n", p.source, at.join(", "));
    let _ = writeln!(s, "value {} = {y}", y.aval());
    let graph = make_graph(|v: &BTreeMap<String, Tensor>| p.eval(v), &x);
    let _ = writeln!(s, "\nthe staged computation:\n{graph}");
    let mut json = serde_json::Map::new();
    json.insert("expression".into(), json!(p.source));
    json.insert("value".into(), json!(y.to_vec::<f64>()));
    if want_jacobian {
        let xf = p.flat_point();
        let jf = jacfwd(|v: &Tensor| p.flat(v))(&xf);
        let jr = jacrev(|v: &Tensor| p.flat(v))(&xf);
        let jn = numerical_jacobian(|v: &Tensor| p.flat(v), &xf);
        let diff = |a: &Tensor, b: &Tensor| agreement(&a.to_vec::<f64>(), &b.to_vec::<f64>());
        let _ = writeln!(s, "\nJacobian [outputs × inputs], by jacfwd (vmap of jvp):\n{jf}");
        let _ = writeln!(
            s,
            "by jacrev (vmap of vjp) it differs by {} (relative); by central differences by {}",
            diff(&jf, &jr),
            diff(&jf, &jn)
        );
        let rows: Vec<Vec<f64>> = (0..jf.shape()[0]).map(|i| jf.slice(0, i, i + 1).to_vec::<f64>()).collect();
        let largest = |a: &Tensor, b: &Tensor| {
            let (a, b) = (a.to_vec::<f64>(), b.to_vec::<f64>());
            a.iter().zip(&b).map(|(x, y)| relative_difference(*x, *y)).fold(0.0, f64::max)
        };
        json.insert("jacobian_forward".into(), json!(rows));
        json.insert("jacobian_reverse_max_difference".into(), json!(largest(&jf, &jr)));
        json.insert("jacobian_numerical_max_difference".into(), json!(largest(&jf, &jn)));
        if p.scalar_vars() {
            let point: BTreeMap<String, f64> = p.at.iter().map(|(k, v)| (k.clone(), v[0])).collect();
            let _ = writeln!(s, "symbolically:");
            let mut symbolic = Vec::new();
            for e in &p.exprs {
                let cells: Vec<(String, f64)> = p
                    .names()
                    .iter()
                    .map(|n| e.diff(n))
                    .map(|d| (d.to_string(), d.eval(&point).unwrap_or(f64::NAN)))
                    .collect();
                let _ = writeln!(
                    s,
                    "  [{}]",
                    cells.iter().map(|(t, v)| format!("{t} = {}", num(*v))).collect::<Vec<_>>().join(",  ")
                );
                symbolic.push(cells.into_iter().map(|(t, _)| t).collect::<Vec<_>>());
            }
            json.insert("jacobian_symbolic".into(), json!(symbolic));
        }
    } else {
        let _ = writeln!(s, "(pass --jacobian for the Jacobian)");
    }
    if as_json {
        serde_json::to_string_pretty(&Value::Object(json)).expect("JSON values serialise")
    } else {
        s
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    // Refuse what can be refused before computing anything.
    if let Some(path) = &args.plot {
        check_svg_name("--plot", path)?;
    }
    let problem = setup(&args.expression, &args.at).map_err(usage)?;
    if args.program {
        if args.hessian || args.jacobian || args.plot.is_some() {
            return Err(usage("--program shows the gradient's program; leave out --hessian, --jacobian and --plot"));
        }
        if problem.at.is_empty() {
            return Err(usage("--program needs a point (--at) for the shapes of the program's inputs"));
        }
        out!("{}", program::report(&problem, args.json));
        return Ok(());
    }
    if !problem.is_scalar() || problem.at.is_empty() {
        if args.hessian || args.plot.is_some() {
            return Err(usage("--hessian and --plot are for a scalar function of scalar variables"));
        }
        let want_jacobian = args.jacobian || !problem.at.is_empty() && problem.exprs.len() > 1;
        out!("{}\n", vector_report(&problem, want_jacobian, args.json));
        return Ok(());
    }
    if let Some(path) = &args.plot {
        prepare_outputs(&[("--plot", path)])?;
    }
    let report = scalar_report(&problem, args.hessian);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&json_scalar(&problem, &report)).expect("JSON values serialise"));
    } else {
        if args.jacobian {
            outln!(
                "(--jacobian: f is a scalar function of scalars, so its Jacobian is the gradient, shown four ways \
                 below; the option is for vector functions)\n"
            );
        }
        out!("{}", print_scalar(&problem, &report));
    }
    if let Some(path) = &args.plot {
        ferrax::io::write_atomically(path, error_plot(&problem, &report).as_bytes())
            .map_err(|e| failed(format!("--plot {}: {e}", path.display())))?;
        if !args.json {
            outln!("wrote the error-against-step plot to {}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_lists_scalars_and_vectors() {
        let at = parse_at("x1=2, x2=5").unwrap();
        assert_eq!(at["x1"], vec![2.0]);
        let at = parse_at("x=1,2,3,y=-4").unwrap();
        assert_eq!((at["x"].clone(), at["y"].clone()), (vec![1.0, 2.0, 3.0], vec![-4.0]));
        assert_eq!(parse_at("3").unwrap_err(), "--at: '3' has no variable name (write NAME=VALUE)");
        assert_eq!(parse_at("x=a").unwrap_err(), "--at: 'a' is not a number");
    }

    #[test]
    fn outputs_split_at_top_level_commas_only() {
        let parts: Vec<&str> = split_outputs("sin(x), x*(y+1), y").into_iter().map(|p| p.1).collect();
        assert_eq!(parts, vec!["sin(x)", " x*(y+1)", " y"]);
    }

    #[test]
    fn numbers_print_compactly() {
        assert_eq!(num(5.5), "5.5");
        assert_eq!(num(11.6520714554), "11.65207146");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-0.958924275), "-0.958924275");
    }
}
