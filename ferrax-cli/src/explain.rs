//! `ferrax explain`: the four ways to differentiate — symbolic, numerical,
//! forward mode, reverse mode — side by side on an expression, with the
//! evaluation, tangent and adjoint traces that show how AD works.

use std::collections::BTreeMap;
use std::fmt::Write;

use ferrax::numeric::{default_step, numerical_jvp_with_step};
use ferrax::prelude::*;
use ferrax::symbolic::{parse, Expr};

use crate::args::Args;
use crate::json::Json;
use crate::plot::{stack, Chart, Series};
use crate::trace::{traces, Traces};

pub const USAGE: &str = "\
ferrax explain \"<expression>\" --at x1=2,x2=5 [options]
  Differentiates an expression four ways — symbolically, by central
  differences, by forward mode and by reverse mode — and shows the
  evaluation trace, the forward-mode tangent trace and the reverse-mode
  adjoint trace that automatic differentiation computes.

  Expressions: numbers, variables, + - * / ^, unary minus, parentheses,
  sin cos tan exp ln log sqrt tanh sigmoid abs, the constants pi and e.
  Several comma-separated expressions make a vector function.

  --at NAME=V,NAME=V  the point; NAME=V1,V2,V3 gives a vector (elementwise)
  --hessian           also the Hessian (scalar functions of scalars)
  --jacobian          the Jacobian (vector functions)
  --json              print everything as JSON
  --plot FILE.svg     numerical-differentiation error against the step h,
                      with the AD error beside it";

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
            // Report the column in the whole input, with the caret under it.
            let col = offset + e.column();
            format!("{} at column {col}\n  {source}\n  {}^", e.kind(), " ".repeat(col - 1))
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
    Report { value: value.item(), traces, names, symbolic, numerical, forward, reverse, hessian, swell }
}

fn print_scalar(p: &Problem, r: &Report) -> String {
    let mut s = String::new();
    let at: Vec<String> = r.names.iter().zip(&r.traces.values).map(|(n, v)| format!("{n} = {}", num(*v))).collect();
    let _ = writeln!(s, "f({}) = {}   at {}\n", r.names.join(", "), p.source, at.join(", "));
    let t = &r.traces;
    let n_in = r.names.len();
    let width = t.ops.iter().map(String::len).chain(r.names.iter().map(String::len)).max().unwrap_or(4).max(8);
    let _ = writeln!(s, "evaluation trace (the primal computation, as ferrax stages it)");
    for (i, label) in t.labels.iter().enumerate() {
        let what = if i < n_in { r.names[i].clone() } else { t.ops[i - n_in].clone() };
        let _ = writeln!(s, "  {label:>5} = {what:<width$} = {:>14}", num(t.values[i]));
    }
    let _ = writeln!(s, "  {:>5} = {:<width$} = {:>14}\n", "y", t.labels[t.output], num(t.values[t.output]));

    let _ = writeln!(s, "forward mode (tangent trace: one pass per input direction)");
    let header: String = r.names.iter().map(|n| format!("{:>14}", format!("d/d{n}"))).collect();
    let _ = writeln!(s, "  {:>5}   {header}", "");
    for (i, label) in t.labels.iter().enumerate() {
        let row: String = t.tangents.iter().map(|tj| format!("{:>14}", num(tj[i]))).collect();
        let _ = writeln!(s, "  {:>5}'  {row}", label);
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "reverse mode (adjoint trace: one backward pass for all inputs; v̄ = ∂y/∂v)");
    for i in (0..t.labels.len()).rev() {
        let formula = if i == t.output {
            "ȳ (seed)".to_string()
        } else {
            t.consumers[i]
                .iter()
                .map(|&k| format!("v̄{}·∂{}/∂{}", &t.labels[k][1..], t.labels[k], t.labels[i]))
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let formula = if formula.is_empty() { "0 (y does not depend on it)".to_string() } else { formula };
        let _ = writeln!(s, "  v̄{:<4} = {:<40} = {:>14}", &t.labels[i][1..], formula, num(t.adjoints[i]));
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
        let _ = writeln!(s, "    symbolic     {sym_text}  =  {sym}");
        let _ = writeln!(
            s,
            "    numerical    {numv}   (central difference, h = {h:.1e}; error {:.1e})",
            (numv - sym).abs()
        );
        let _ = writeln!(s, "    forward      {}   (jvp along {n})", r.forward[j]);
        let _ = writeln!(s, "    reverse      {}   (grad)", r.reverse[j]);
    }
    let max_diff = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let syms: Vec<f64> = r.symbolic.iter().map(|x| x.1).collect();
    let nums: Vec<f64> = r.numerical.iter().map(|x| x.0).collect();
    let _ = writeln!(
        s,
        "  agreement: forward vs reverse {:.1e}, AD vs symbolic {:.1e}, numerical vs symbolic {:.1e}",
        max_diff(&r.forward, &r.reverse),
        max_diff(&r.reverse, &syms),
        max_diff(&nums, &syms)
    );
    if let Some((ad, sym)) = &r.hessian {
        let _ = writeln!(s, "\nHessian (AD: jacfwd of jacrev; symbolic: each partial differentiated again)");
        for (a, b) in ad.iter().zip(sym) {
            let row: String = a.iter().map(|v| format!("{:>14}", num(*v))).collect();
            let srow: String = b.iter().map(|v| format!("{:>14}", num(*v))).collect();
            let _ = writeln!(s, "  AD {row}    symbolic {srow}");
        }
        let worst = ad.iter().flatten().zip(sym.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        let _ = writeln!(s, "  agreement: {worst:.1e}");
    }
    let (ft, fd, gt, gd, ad) = r.swell;
    let _ = writeln!(
        s,
        "\nexpression swell: f has {ft} nodes as a tree ({fd} shared as a DAG); its symbolic partials have {gt} ({gd}); \
         the AD graph of the whole gradient has {ad} equations"
    );
    s
}

fn json_scalar(p: &Problem, r: &Report) -> Json {
    let t = &r.traces;
    let n_in = r.names.len();
    let rows = |f: &dyn Fn(usize) -> Json| Json::Arr((0..t.labels.len()).map(f).collect());
    let per_var =
        |f: &dyn Fn(usize) -> Json| Json::Obj(r.names.iter().enumerate().map(|(j, n)| (n.clone(), f(j))).collect());
    Json::obj(vec![
        ("expression", Json::Str(p.source.clone())),
        ("at", Json::Obj(r.names.iter().zip(&t.values).map(|(n, v)| (n.clone(), Json::Num(*v))).collect())),
        ("value", Json::Num(r.value)),
        (
            "trace",
            rows(&|i| {
                let op = if i < n_in { r.names[i].clone() } else { t.ops[i - n_in].clone() };
                Json::obj(vec![
                    ("v", Json::Str(t.labels[i].clone())),
                    ("op", Json::Str(op)),
                    ("value", Json::Num(t.values[i])),
                    (
                        "tangents",
                        Json::Obj(
                            r.names.iter().enumerate().map(|(j, n)| (n.clone(), Json::Num(t.tangents[j][i]))).collect(),
                        ),
                    ),
                    ("adjoint", Json::Num(t.adjoints[i])),
                ])
            }),
        ),
        ("output", Json::Str(t.labels[t.output].clone())),
        (
            "gradient",
            per_var(&|j| {
                Json::obj(vec![
                    ("symbolic", Json::Str(r.symbolic[j].0.clone())),
                    ("symbolic_value", Json::Num(r.symbolic[j].1)),
                    ("numerical", Json::Num(r.numerical[j].0)),
                    ("numerical_step", Json::Num(r.numerical[j].1)),
                    ("forward", Json::Num(r.forward[j])),
                    ("reverse", Json::Num(r.reverse[j])),
                ])
            }),
        ),
        (
            "hessian",
            match &r.hessian {
                None => Json::Null,
                Some((ad, sym)) => Json::obj(vec![
                    ("ad", Json::Arr(ad.iter().map(|r| Json::nums(r)).collect())),
                    ("symbolic", Json::Arr(sym.iter().map(|r| Json::nums(r)).collect())),
                ]),
            },
        ),
        (
            "swell",
            Json::obj(vec![
                ("f_tree", Json::Num(r.swell.0 as f64)),
                ("f_dag", Json::Num(r.swell.1 as f64)),
                ("gradient_tree", Json::Num(r.swell.2 as f64)),
                ("gradient_dag", Json::Num(r.swell.3 as f64)),
                ("ad_graph_equations", Json::Num(r.swell.4 as f64)),
            ]),
        ),
    ])
}

/// The error of central and forward differences against the symbolic
/// derivative over steps 1e-16 … 1, beside the AD error, one chart per variable.
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
            let series = |name: &str, color, f: &dyn Fn(f64) -> f64| Series {
                name: name.into(),
                points: hs.iter().map(|&h| (h, floor((f(h) - exact).abs(), exact))).collect(),
                color,
                dashed: false,
            };
            let ad_error = (r.reverse[j] - exact).abs();
            let ad = floor(ad_error, exact);
            let ad_name = if ad_error == 0.0 {
                "automatic differentiation (error 0, drawn at ε/100)".to_string()
            } else {
                format!("automatic differentiation (error {ad_error:.1e})")
            };
            Chart {
                title: format!("error of ∂f/∂{n} against the step h"),
                x_label: "step h".into(),
                y_label: "absolute error".into(),
                log_x: true,
                log_y: true,
                series: vec![
                    series("forward difference", "#ff7f0e", &|h| forward_difference(p, &x, n, h)),
                    series("central difference", "#1f77b4", &|h| central_difference(p, &x, n, h)),
                    Series {
                        name: ad_name,
                        points: vec![(hs[0], ad), (hs[hs.len() - 1], ad)],
                        color: "#2ca02c",
                        dashed: true,
                    },
                ],
            }
        })
        .collect();
    stack(&charts)
}

/// The Jacobian of a vector function by jacfwd, jacrev, central differences and (for scalar variables) symbolically.
fn vector_report(p: &Problem, want_jacobian: bool, as_json: bool) -> Result<String, String> {
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
    let mut json = vec![("expression", Json::Str(p.source.clone())), ("value", Json::nums(&y.to_vec::<f64>()))];
    if want_jacobian {
        let xf = p.flat_point();
        let jf = jacfwd(|v: &Tensor| p.flat(v))(&xf);
        let jr = jacrev(|v: &Tensor| p.flat(v))(&xf);
        let jn = numerical_jacobian(|v: &Tensor| p.flat(v), &xf);
        let diff = |a: &Tensor, b: &Tensor| (a - b).abs().max().item();
        let _ = writeln!(s, "\nJacobian [outputs × inputs], by jacfwd (vmap of jvp):\n{jf}");
        let _ = writeln!(
            s,
            "by jacrev (vmap of vjp) it differs by {:.1e}; by central differences by {:.1e}",
            diff(&jf, &jr),
            diff(&jf, &jn)
        );
        json.push((
            "jacobian_forward",
            Json::Arr((0..jf.shape()[0]).map(|i| Json::nums(&jf.slice(0, i, i + 1).to_vec::<f64>())).collect()),
        ));
        json.push(("jacobian_reverse_max_difference", Json::Num(diff(&jf, &jr))));
        json.push(("jacobian_numerical_max_difference", Json::Num(diff(&jf, &jn))));
        if p.scalar_vars() {
            let point: BTreeMap<String, f64> = p.at.iter().map(|(k, v)| (k.clone(), v[0])).collect();
            let _ = writeln!(s, "symbolically:");
            let mut rows = Vec::new();
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
                rows.push(Json::Arr(cells.into_iter().map(|(t, _)| Json::Str(t)).collect()));
            }
            json.push(("jacobian_symbolic", Json::Arr(rows)));
        }
    } else {
        let _ = writeln!(s, "(pass --jacobian for the Jacobian)");
    }
    Ok(if as_json { Json::obj(json).pretty() } else { s })
}

pub fn run(argv: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse(argv, &["at", "plot"], &["hessian", "jacobian", "json"])?;
    let source = match args.positional.as_slice() {
        [e] => e.clone(),
        [] => return Err(format!("explain needs an expression\n\n{USAGE}").into()),
        more => return Err(format!("explain takes one expression (quote it), got {}", more.len()).into()),
    };
    let problem = setup(&source, args.value("at").unwrap_or(""))?;
    if !problem.is_scalar() || problem.at.is_empty() {
        if args.switch("hessian") || args.value("plot").is_some() {
            return Err("--hessian and --plot are for a scalar function of scalar variables".into());
        }
        println!(
            "{}",
            vector_report(
                &problem,
                args.switch("jacobian") || !problem.at.is_empty() && problem.exprs.len() > 1,
                args.switch("json")
            )?
        );
        return Ok(());
    }
    let report = scalar_report(&problem, args.switch("hessian"));
    if args.switch("json") {
        println!("{}", json_scalar(&problem, &report).pretty());
    } else {
        print!("{}", print_scalar(&problem, &report));
    }
    if let Some(path) = args.value("plot") {
        if !path.ends_with(".svg") {
            return Err(format!("--plot {path}: ferrax draws SVG; give a file name ending in .svg").into());
        }
        std::fs::write(path, error_plot(&problem, &report)).map_err(|e| format!("--plot {path}: {e}"))?;
        if !args.switch("json") {
            println!("wrote the error-against-step plot to {path}");
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
