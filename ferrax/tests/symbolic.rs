//! The symbolic module: parser, printer, simplifier, derivative, and the
//! compilation to Tensor operations that lets ferrax's AD check the
//! symbolic derivative (and the other way round).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe, PanicHookInfo};
use std::sync::Arc;

use ferrax::array::Rng;
use ferrax::prelude::*;
use ferrax::symbolic::{
    nested_product, nested_sin, parse, swell_family, Constant, EvalError, Expr, ParseErrorKind, MAX_HEIGHT, MAX_NESTING,
};

type PanicHook = dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static;

fn p(src: &str) -> Expr {
    parse(src).unwrap_or_else(|e| panic!("{src:?} should parse:\n{e}"))
}

fn at(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn tensors(pairs: &BTreeMap<String, f64>) -> BTreeMap<String, Tensor> {
    pairs.iter().map(|(k, v)| (k.clone(), Tensor::scalar(*v))).collect()
}

/// The gradient of `e` by ferrax's reverse mode, through `to_tensor`.
fn ad_grad(e: &Expr, point: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let g = grad(|v: &BTreeMap<String, Tensor>| e.to_tensor(v).unwrap())(&tensors(point));
    g.into_iter().map(|(k, t)| (k, t.item())).collect()
}

// ---------------------------------------------------------------- parsing

#[test]
fn precedence_and_associativity() {
    let (a, b, c, x) = (Expr::var("a"), Expr::var("b"), Expr::var("c"), Expr::var("x"));
    let cases: Vec<(&str, Expr)> = vec![
        ("1 + 2 * 3", 1.0 + Expr::num(2.0) * 3.0),
        ("a - b - c", &a - &b - &c),
        ("a - (b - c)", &a - (&b - &c)),
        ("a / b / c", &a / &b / &c),
        ("a / b * c", &a / &b * &c),
        ("a ^ b ^ c", a.pow(b.pow(&c))),
        ("(a ^ b) ^ c", a.pow(&b).pow(&c)),
        ("-x^2", -x.pow(2.0)),
        ("(-x)^2", (-&x).pow(2.0)),
        ("2^-x", Expr::num(2.0).pow(-&x)),
        ("-a*b", -&a * &b),
        ("a*-b", &a * -&b),
        ("a - -b", &a - -&b),
        ("--x", -(-&x)),
        ("((x))", x.clone()),
        ("log(x) + ln(x)", x.ln() + x.ln()),
        ("pi*e", Expr::constant(Constant::Pi) * Expr::constant(Constant::E)),
        ("sigmoid(x)/tanh(x)^2", x.sigmoid() / x.tanh().pow(2.0)),
        ("sqrt(abs(sign(x)))", x.sign().abs().sqrt()),
        ("x1 + y_2*alpha - _t", Expr::var("x1") + Expr::var("y_2") * Expr::var("alpha") - Expr::var("_t")),
        ("1e-3 + .5 + 2. + 1E2", Expr::num(1e-3) + 0.5 + 2.0 + 100.0),
        ("  sin ( x )\t*\n2 ", x.sin() * 2.0),
    ];
    for (src, want) in cases {
        assert_eq!(p(src), want, "{src}");
    }
}

#[test]
fn parsed_values_follow_the_usual_rules() {
    for (src, want) in [
        ("2^3^2", 512.0),
        ("-2^2", -4.0),
        ("2*3 + 4", 10.0),
        ("(2 + 3)*4", 20.0),
        ("8/4/2", 1.0),
        ("10 - 4 - 3", 3.0),
        ("2^-1", 0.5),
        ("-2*-3", 6.0),
        ("log(e)", 1.0),
        ("cos(pi)", -1.0),
        ("sign(-3) + sign(0) + abs(-4)", 3.0),
    ] {
        assert_eq!(p(src).eval(&BTreeMap::new()), Ok(want), "{src}");
    }
}

#[test]
fn printing_uses_minimal_parentheses() {
    for (src, want) in [
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("a - (b + c)", "a - (b + c)"),
        ("a + (b + c)", "a + (b + c)"),
        ("(a + b)*c", "(a + b)*c"),
        ("a/(b*c)", "a/(b*c)"),
        ("(a*b)/c", "a*b/c"),
        ("a*(b/c)", "a*(b/c)"),
        ("(a^b)^c", "(a^b)^c"),
        ("a^(b^c)", "a^b^c"),
        ("-(x^2)", "-x^2"),
        ("(-x)^2", "(-x)^2"),
        ("-(a*b)", "-(a*b)"),
        ("(-a)*b", "-a*b"),
        ("x - (-y)", "x - -y"),
        ("2^(-x)", "2^-x"),
        ("sin((x + 1))", "sin(x + 1)"),
        ("log(x)", "ln(x)"),
        ("2.0*x", "2*x"),
        ("0.1 + 2.50", "0.1 + 2.5"),
        ("1e300*x + 1.5e-7", "1e300*x + 1.5e-7"),
        ("ln(x1)+x1*x2-sin(x2)", "ln(x1) + x1*x2 - sin(x2)"),
    ] {
        assert_eq!(p(src).to_string(), want, "{src}");
    }
    // Numbers a parser never makes: negative, non-finite.
    let x = Expr::var("x");
    assert_eq!(Expr::num(-2.0).pow(&x).to_string(), "(-2)^x");
    assert_eq!((&x * -2.0).to_string(), "x*-2");
    assert_eq!((&x + f64::INFINITY).to_string(), "x + (1/0)");
    assert_eq!(Expr::num(f64::NAN).to_string(), "(0/0)");
}

/// Random well-formed trees, with the `pos` variant positive on `[0.5, 2]²`.
struct Gen(Rng);

impl Gen {
    fn pick(&mut self, n: usize) -> usize {
        self.0.below(n)
    }

    fn leaf(&mut self) -> Expr {
        match self.pick(5) {
            0 | 1 => Expr::var("x"),
            2 | 3 => Expr::var("y"),
            _ => Expr::num([1.0, 2.0, 3.0, 0.5, 2.25][self.pick(5)]),
        }
    }

    fn any(&mut self, depth: usize) -> Expr {
        if depth == 0 || self.pick(6) == 0 {
            return self.leaf();
        }
        let d = depth - 1;
        match self.pick(17) {
            0 => self.any(d) + self.any(d),
            1 => self.any(d) - self.any(d),
            2 | 3 => self.any(d) * self.any(d),
            4 => self.any(d) / self.pos(d),
            5 => -self.any(d),
            6 => self.any(d).sin(),
            7 => self.any(d).cos(),
            8 => self.any(d).tanh(),
            9 => self.any(d).sigmoid(),
            10 => self.any(d).exp(),
            11 => self.pos(d).ln(),
            12 => self.pos(d).sqrt(),
            // Negative exponents as the parser writes them, with unary minus.
            13 => self
                .any(d)
                .pow([Expr::num(2.0), Expr::num(3.0), -Expr::num(1.0), -Expr::num(2.0)][self.pick(4)].clone()),
            14 => self.pos(d).pow(self.any(d)),
            15 => self.any(d).abs(),
            // sin keeps tan away from its poles.
            _ => self.any(d).sin().tan(),
        }
    }

    fn pos(&mut self, depth: usize) -> Expr {
        match self.pick(5) {
            0 => [Expr::var("x"), Expr::var("y")][self.pick(2)].clone(),
            1 => self.any(depth).pow(2.0) + 0.5,
            2 => self.any(depth).exp(),
            3 => self.any(depth).sigmoid() + 1.0,
            _ => self.pos(depth).pow(0.5) * Expr::num(1.5),
        }
    }
}

#[test]
fn printing_round_trips() {
    let mut g = Gen(Rng::new(7));
    let point = at(&[("x", 1.3), ("y", 0.7)]);
    for _ in 0..500 {
        let e = g.any(5);
        // The generator builds trees the parser could have built, so they come back equal.
        assert_eq!(p(&e.to_string()), e);
        // Simplified trees hold negative numbers, which read back as unary minus: equal values.
        let s = e.simplify();
        let (v, w) = (s.eval(&point).unwrap(), p(&s.to_string()).eval(&point).unwrap());
        assert!(v == w || (v.is_nan() && w.is_nan()), "{s}: {v} vs {w}");
    }
}

// ----------------------------------------------------------------- errors

/// Asserts the message, and that `Display` puts the caret under the column.
fn assert_parse_error(src: &str, message: &str) {
    let err = parse(src).expect_err(src);
    assert_eq!(err.message(), message, "{src:?}");
    let shown = err.to_string();
    let lines: Vec<&str> = shown.split('\n').collect();
    assert_eq!(lines.len(), 3, "{shown}");
    assert_eq!(lines[0], message);
    assert_eq!(lines[1].chars().count(), src.chars().count(), "{shown}");
    assert_eq!(lines[2], format!("{}^", " ".repeat(err.column() - 1)), "{shown}");
    assert!(err.column() <= src.chars().count() + 1);
}

#[test]
fn bad_inputs_give_exact_messages() {
    let corpus = [
        ("ln(x1 + * 2)", "unexpected '*' at column 9"),
        ("", "empty input at column 1"),
        ("   ", "empty input at column 1"),
        ("x +", "unexpected end of input at column 4"),
        ("x ^", "unexpected end of input at column 4"),
        ("(x + 1", "unclosed '(' at column 1"),
        ("sin(x", "unclosed '(' at column 4"),
        ("x + 1)", "unmatched ')' at column 6"),
        ("sqrt(x))", "unmatched ')' at column 8"),
        ("foo(x)", "unknown function 'foo' at column 1"),
        ("pi(2)", "unknown function 'pi' at column 1"),
        ("1.2.3 + x", "bad number '1.2.3' at column 1"),
        ("1..5", "bad number '1..5' at column 1"),
        (".", "bad number '.' at column 1"),
        ("3 * 1e", "bad number '1e' at column 5"),
        ("2e+ 1", "bad number '2e+' at column 1"),
        ("1e999", "number '1e999' is out of range at column 1"),
        ("2x", "missing operator before 'x' at column 2"),
        ("x y", "missing operator before 'y' at column 3"),
        ("2(x + 1)", "missing operator before '(' at column 2"),
        ("cos(x) sin(x)", "missing operator before 'sin' at column 8"),
        ("sin x", "expected '(' after 'sin' at column 5"),
        ("tanh", "expected '(' after 'tanh' at column 5"),
        ("x # y", "invalid character '#' at column 3"),
        ("x + é", "invalid character 'é' at column 5"),
        ("()", "unexpected ')' at column 2"),
        ("sin()", "unexpected ')' at column 5"),
        ("x * / y", "unexpected '/' at column 5"),
        ("x^^2", "unexpected '^' at column 3"),
        ("+x", "unexpected '+' at column 1"),
        ("exp(x, y)", "unexpected ',' at column 6"),
    ];
    assert!(corpus.len() >= 20);
    for (src, message) in corpus {
        assert_parse_error(src, message);
    }
    let err = parse("foo(x)").unwrap_err();
    assert_eq!(err.kind(), &ParseErrorKind::UnknownFunction("foo".into()));
    assert_eq!((err.column(), err.input()), (1, "foo(x)"));
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert!(boxed.to_string().starts_with("unknown function 'foo' at column 1\nfoo(x)\n^"));
}

#[test]
fn the_first_error_from_the_left_is_reported() {
    // The lexer runs on demand, so a bad character later on does not mask an earlier error.
    assert_parse_error("x * * y # z", "unexpected '*' at column 5");
    assert_parse_error("x # y * * z", "invalid character '#' at column 3");
}

#[test]
fn deep_input_is_refused_not_overflowed() {
    // Each of MAX_NESTING levels is one active `unary`; the bare operand is the last.
    let nest = |n: usize| format!("{}x{}", "(".repeat(n), ")".repeat(n));
    assert!(parse(&nest(MAX_NESTING - 1)).is_ok());
    assert_parse_error(&nest(MAX_NESTING), "nesting deeper than 200 levels at column 201");
    assert_parse_error(&format!("{}x", "-".repeat(MAX_NESTING)), "nesting deeper than 200 levels at column 201");
    for hostile in ["(".repeat(100_000), "-".repeat(100_000), "sin(".repeat(50_000), "x^".repeat(50_000)] {
        let err = parse(&hostile).unwrap_err();
        assert_eq!(err.kind(), &ParseErrorKind::TooDeep);
    }
    // A long flat chain nests nothing but builds a tall tree.
    let chain = |n: usize| format!("1{}", "+1".repeat(n));
    assert_parse_error(&chain(MAX_HEIGHT), "expression deeper than 500 levels at column 1000");
    assert_eq!(parse(&chain(100_000)).unwrap_err().kind(), &ParseErrorKind::TooHigh);
}

#[test]
fn the_tallest_accepted_tree_survives_every_operation() {
    // MAX_HEIGHT - 1 products of x: a tree of height MAX_HEIGHT, run on this
    // test thread's default 2 MiB stack.
    let src = format!("x{}", "*x".repeat(MAX_HEIGHT - 1));
    let e = p(&src);
    assert_eq!(e.simplify().to_string(), "x^500");
    assert_eq!(e.diff("x").to_string(), "500*x^499");
    // The lowest `+` has height 3 (its sin(x) has 2), so MAX_HEIGHT - 2 of them reach the limit.
    let sum = p(&format!("x{}", " + sin(x)".repeat(MAX_HEIGHT - 2)));
    assert_eq!(sum.diff("x").to_string(), "498*cos(x) + 1");
    assert_eq!(p(&sum.to_string()), sum);
    let point = at(&[("x", 0.5)]);
    let v = sum.eval(&point).unwrap();
    assert!((v - (0.5 + 498.0 * 0.5f64.sin())).abs() < 1e-9, "{v}");
    assert!((sum.to_tensor(&tensors(&point)).unwrap().item() - v).abs() < 1e-9);
}

#[test]
fn fuzzed_input_never_panics() {
    let pieces = [
        "0", "1", "2", "7", "9", ".", "e", "E", "x", "y", "x1", "_", "a", "z", " ", " ", "+", "-", "-", "*", "/", "^",
        "(", "(", ")", ")", ",", "sin", "cos", "tan", "exp", "ln", "log", "sqrt", "tanh", "sigmoid", "abs", "sign",
        "pi", "#", "é", "1e5", "2.5", "1e-3", "\t",
    ];
    let mut rng = Rng::new(2024);
    let point = at(&[("x", 0.7), ("y", 1.9), ("x1", 3.0), ("a", -1.0), ("z", 0.0)]);
    let (mut parsed, mut panics) = (0, Vec::new());
    // Silence the expected-not-to-happen panics of this thread only; the
    // hook is global and other tests run beside this one.
    let hook: Arc<PanicHook> = std::panic::take_hook().into();
    let me = std::thread::current().id();
    let inner = Arc::clone(&hook);
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != me {
            inner(info)
        }
    }));
    let mut g = Gen(Rng::new(2025));
    for i in 0..25_000 {
        let src: String = if i < 20_000 {
            let len = rng.below(25);
            (0..len).map(|_| pieces[rng.below(pieces.len())]).collect()
        } else {
            // Near-misses: a valid expression with one piece inserted or one character dropped.
            let mut chars: Vec<String> = g.any(4).to_string().chars().map(String::from).collect();
            let at = rng.below(chars.len() + 1);
            if rng.below(2) == 0 || at == chars.len() {
                chars.insert(at, pieces[rng.below(pieces.len())].to_string());
            } else {
                chars.remove(at);
            }
            chars.concat()
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<bool, String> {
            match parse(&src) {
                Ok(e) => {
                    let back = parse(&e.to_string()).map_err(|err| format!("reprint failed: {err}"))?;
                    if back != e {
                        return Err(format!("reprinted as {back:?}"));
                    }
                    let d = e.diff("x");
                    let _ = (d.to_string(), e.simplify(), e.eval(&point), d.eval(&point));
                    let _ = (d.tree_size(), d.dag_size(), e.variables());
                    Ok(true)
                }
                Err(err) => {
                    let caret = err.to_string().lines().nth(2).map(str::len);
                    if err.column() == 0 || err.column() > src.chars().count() + 1 || caret != Some(err.column()) {
                        return Err(format!("bad position in {err}"));
                    }
                    Ok(false)
                }
            }
        }));
        match outcome {
            Ok(Ok(ok)) => parsed += usize::from(ok),
            Ok(Err(why)) => panic!("{src:?}: {why}"),
            Err(_) => panics.push(src),
        }
    }
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| hook(info)));
    assert!(panics.is_empty(), "{} inputs panicked, first {:?}", panics.len(), panics[0]);
    // The alphabet must reach the parser's deep paths, not only its errors.
    assert!(parsed > 2_000, "only {parsed} of 25000 fuzz inputs parsed");
    println!("{parsed} of 25000 fuzz inputs parsed, the rest were refused with a located error");
}

// -------------------------------------------------------------- simplifier

#[test]
fn simplifier_identities() {
    for (src, want) in [
        ("x*1", "x"),
        ("1*x", "x"),
        ("x*0", "0"),
        ("0*x", "0"),
        ("x + 0", "x"),
        ("0 + x", "x"),
        ("x - 0", "x"),
        ("x - x", "0"),
        ("x/1", "x"),
        ("x^1", "x"),
        ("x^0", "1"),
        ("--x", "x"),
        ("0/x", "0"),
        ("0 - x", "-x"),
        ("2 + 3*4 - 2^3", "6"),
        ("x + x", "2*x"),
        ("2*x + 3*x", "5*x"),
        ("x - 2*x", "-x"),
        ("x/2 + x/2", "x"),
        ("2*x/4", "x/2"),
        ("3*(x + 1) - 3*(x + 1)", "0"),
        ("x*x", "x^2"),
        ("x*x*x", "x^3"),
        ("x^2*x^3", "x^5"),
        ("x/x", "1"),
        ("x*y/x", "y"),
        ("(x^2)^3", "x^6"),
        ("(x^2)^0.5", "(x^2)^0.5"),
        ("-(x - y)", "y - x"),
        ("x + 1 + 2", "x + 3"),
        ("1 - sin(x)", "1 - sin(x)"),
        ("-sin(x) + 1", "1 - sin(x)"),
        ("pi + pi", "2*pi"),
        ("ln(1) + exp(0) + sqrt(4) + sin(0)", "3"),
        ("sqrt(2)", "sqrt(2)"),
        ("ln(exp(x))", "x"),
        ("abs(-x)", "abs(x)"),
        ("x/0", "x/0"),
        ("0/0", "0/0"),
        // Equal only after reordering: left apart, by design.
        ("x*y - y*x", "x*y - y*x"),
    ] {
        assert_eq!(p(src).simplify().to_string(), want, "{src}");
    }
}

#[test]
fn simplify_keeps_values_and_is_idempotent() {
    let mut g = Gen(Rng::new(11));
    let mut rng = Rng::new(12);
    for _ in 0..1000 {
        let e = g.any(5);
        let s = e.simplify();
        assert_eq!(s.simplify(), s, "simplify is not idempotent on {e}");
        let point = at(&[("x", rng.uniform_in(0.5, 2.0)), ("y", rng.uniform_in(0.5, 2.0))]);
        let (v, w) = (e.eval(&point).unwrap(), s.eval(&point).unwrap());
        if v.is_finite() && w.is_finite() {
            // Reassociation rounds differently; 1e-9 of the magnitude is far above that.
            assert!((v - w).abs() <= 1e-9 * v.abs().max(1.0), "{e} = {v} but {s} = {w}");
        }
    }
}

// --------------------------------------------------- derivative against AD

#[test]
fn worked_example_by_diff_and_by_grad() {
    let f = p("ln(x1) + x1*x2 - sin(x2)");
    let point = at(&[("x1", 2.0), ("x2", 5.0)]);
    assert!((f.eval(&point).unwrap() - 11.652071455).abs() < 1e-9);
    let (d1, d2) = (f.diff("x1"), f.diff("x2"));
    assert_eq!((d1.to_string(), d2.to_string()), ("1/x1 + x2".to_string(), "x1 - cos(x2)".to_string()));
    assert_eq!(d1.eval(&point), Ok(5.5));
    assert!((d2.eval(&point).unwrap() - 1.716337815).abs() < 1e-9);
    assert_eq!(d2.eval(&point), Ok(2.0 - 5f64.cos()));
    let g = ad_grad(&f, &point);
    assert_eq!(g["x1"], 5.5);
    assert_eq!(g["x2"], 2.0 - 5f64.cos());
    assert_eq!(f.diff("y").to_string(), "0");
    // Second order: d²f/dx1² = -1/x1², symbolically and by nested grad.
    assert_eq!(d1.diff("x1").to_string(), "-1/x1^2");
    let dd = grad(|v: &BTreeMap<String, Tensor>| {
        grad(|w: &BTreeMap<String, Tensor>| f.to_tensor(w).unwrap())(v)["x1"].clone()
    })(&tensors(&point));
    assert_eq!(dd["x1"].item(), d1.diff("x1").eval(&point).unwrap());
    assert_eq!(dd["x2"].item(), d1.diff("x2").eval(&point).unwrap());
}

#[test]
fn hessian_of_the_compiled_expression_is_the_symbolic_second_derivative() {
    let f = p("x1^2*sin(x2) + exp(x1*x2)/x2");
    let point = at(&[("x1", 0.7), ("x2", 1.3)]);
    let v = Tensor::from_vec(vec![0.7, 1.3], &[2]);
    // The expression's variables as the two entries of one vector, as hessian wants.
    let h = hessian(|v: &Tensor| {
        let vars = BTreeMap::from([
            ("x1".to_string(), v.slice(0, 0, 1).reshape(&[])),
            ("x2".to_string(), v.slice(0, 1, 2).reshape(&[])),
        ]);
        f.to_tensor(&vars).unwrap()
    })(&v)
    .to_vec::<f64>();
    let names = ["x1", "x2"];
    for (i, a) in names.iter().enumerate() {
        for (j, b) in names.iter().enumerate() {
            let symbolic = f.diff(a).diff(b).eval(&point).unwrap();
            // Exact formulas in f64, evaluated in different orders.
            assert!((h[2 * i + j] - symbolic).abs() <= 1e-12 * symbolic.abs().max(1.0), "d²f/d{a}d{b}");
        }
    }
}

#[test]
fn to_tensor_stages_the_same_graph_as_the_closure() {
    let f = p("ln(x1) + x1*x2 - sin(x2)");
    let point = tensors(&at(&[("x1", 2.0), ("x2", 5.0)]));
    let staged = make_graph(|v: &BTreeMap<String, Tensor>| f.to_tensor(v).unwrap(), &point);
    let closure = make_graph(|v: &(Tensor, Tensor)| v.0.ln() + &v.0 * &v.1 - v.1.sin(), &(2.0.into(), 5.0.into()));
    assert_eq!(staged.to_string(), closure.to_string());
    // Constant exponents pick powi or powf; a variable exponent takes pow.
    let g = |src: &str| make_graph(|v: &BTreeMap<String, Tensor>| p(src).to_tensor(v).unwrap(), &point).to_string();
    assert!(g("x1^3").contains("powi"), "{}", g("x1^3"));
    assert!(g("x1^-2").contains("powi"), "{}", g("x1^-2"));
    assert!(!g("x1^(1/2)").contains("powi") && g("x1^(1/2)").contains("pow"), "{}", g("x1^(1/2)"));
    assert!(g("x1^x2").contains("pow"), "{}", g("x1^x2"));
}

#[test]
fn to_tensor_works_elementwise_in_every_float_dtype() {
    let e = p("x^2*sigmoid(y) - tan(x)/3 + abs(y) + pi");
    let xs = [0.5, 1.0, -1.5];
    let ys = [2.0, -0.25, 0.75];
    let vars = BTreeMap::from([
        ("x".to_string(), Tensor::from_vec(xs.to_vec(), &[3])),
        ("y".to_string(), Tensor::from_vec(ys.to_vec(), &[3])),
    ]);
    let out = e.to_tensor(&vars).unwrap();
    assert_eq!((out.shape(), out.dtype()), (&[3usize][..], DType::F64));
    for (i, v) in out.to_vec::<f64>().into_iter().enumerate() {
        let want = e.eval(&at(&[("x", xs[i]), ("y", ys[i])])).unwrap();
        assert!((v - want).abs() <= 1e-14 * want.abs().max(1.0), "{v} vs {want}");
    }
    let f32_vars: BTreeMap<String, Tensor> = vars.iter().map(|(k, t)| (k.clone(), t.to_dtype(DType::F32))).collect();
    let out32 = e.to_tensor(&f32_vars).unwrap();
    assert_eq!(out32.dtype(), DType::F32);
    // f32 carries about 7 digits.
    for (a, b) in out32.to_vec::<f32>().into_iter().zip(out.to_vec::<f64>()) {
        assert!((f64::from(a) - b).abs() <= 1e-5 * b.abs().max(1.0));
    }
    assert_eq!(p("2*pi").to_tensor(&BTreeMap::new()).unwrap().item(), 2.0 * std::f64::consts::PI);
}

#[test]
fn evaluation_errors_name_the_variable() {
    let e = p("x + y*z");
    let err = e.eval(&at(&[("x", 1.0), ("z", 2.0)])).unwrap_err();
    assert_eq!(err, EvalError::UnknownVariable("y".into()));
    assert_eq!(err.to_string(), "unknown variable 'y'; give it a value");
    let err = e.to_tensor(&tensors(&at(&[("x", 1.0), ("y", 2.0)]))).unwrap_err();
    assert_eq!(err, EvalError::UnknownVariable("z".into()));
    let mut mixed = tensors(&at(&[("x", 1.0), ("y", 2.0), ("z", 3.0)]));
    mixed.insert("y".into(), Tensor::scalar(2.0f32));
    assert_eq!(
        e.to_tensor(&mixed).unwrap_err().to_string(),
        "variable 'x' is f64 but 'y' is f32; give every variable one float dtype"
    );
    mixed.insert("y".into(), Tensor::scalar(2i64));
    assert_eq!(
        e.to_tensor(&mixed).unwrap_err().to_string(),
        "variable 'y' is i64; expressions compute in floats, convert it with .to_dtype"
    );
    assert_eq!(p("x*y + pi - e + x + ln(alpha)").variables(), ["alpha", "x", "y"]);
}

#[test]
fn symbolic_derivative_matches_ad_on_random_expressions() {
    let mut g = Gen(Rng::new(1));
    let mut rng = Rng::new(2);
    let (mut checked, mut skipped) = (0, 0);
    let mut worst = 0.0f64;
    while checked < 400 {
        let e = g.any(4);
        let point = at(&[("x", rng.uniform_in(0.5, 2.0)), ("y", rng.uniform_in(0.5, 2.0))]);
        let value = e.eval(&point).unwrap();
        let symbolic: Vec<f64> = ["x", "y"].iter().map(|v| e.diff(v).eval(&point).unwrap()).collect();
        let ad = ad_grad(&e, &point);
        let ad = [ad["x"], ad["y"]];
        let finite = |v: f64| v.is_finite() && v.abs() < 1e12;
        if !finite(value) || !symbolic.iter().chain(&ad).all(|v| finite(*v)) {
            skipped += 1;
            continue;
        }
        // Tensor tan is sin/cos, f64::tan is not: the values agree to rounding.
        let compiled = e.to_tensor(&tensors(&point)).unwrap().item();
        assert!((compiled - value).abs() <= 1e-12 * value.abs().max(1.0), "{e}: {compiled} vs {value}");
        // Both sides are exact formulas evaluated in f64; they differ only in
        // the order of operations (the simplifier reassociates and merges
        // terms, AD multiplies the chain from the other end), each step
        // costing ~1e-16 relative. Trees of depth 4 take a few dozen steps,
        // so 1e-9 of the magnitude (never less than 1e-9 absolute, for
        // derivatives that cancel to near zero) leaves a wide margin while
        // catching any wrong rule, which is off by O(1).
        for (s, a) in symbolic.iter().zip(ad) {
            let err = (s - a).abs() / s.abs().max(a.abs()).max(1.0);
            worst = worst.max(err);
            assert!(err <= 1e-9, "{e} at {point:?}: symbolic {s} vs AD {a}; d/dx = {}", e.diff("x"));
        }
        checked += 1;
    }
    assert!(skipped < checked, "{skipped} skipped");
    println!("{checked} expressions agree to {worst:.1e} relative; {skipped} points skipped as not finite");
}

#[test]
fn every_function_rule_matches_ad() {
    // Each rule once, alone, so that a wrong rule is named by the failure.
    let point = at(&[("x", 0.8)]);
    for src in [
        "sin(x)",
        "cos(x)",
        "tan(x)",
        "exp(x)",
        "ln(x)",
        "log(x)",
        "sqrt(x)",
        "tanh(x)",
        "sigmoid(x)",
        "abs(x)",
        "abs(-x)",
        "sign(x)",
        "x^3",
        "x^0.5",
        "2^x",
        "x^x",
        "1/x",
        "-x",
        "x - 2",
        "pi*e*x",
    ] {
        let e = p(src);
        let symbolic = e.diff("x").eval(&point).unwrap();
        let ad = ad_grad(&e, &point)["x"];
        assert!((symbolic - ad).abs() <= 1e-14 * ad.abs().max(1.0), "{src}: {symbolic} vs {ad}");
    }
}

// --------------------------------------------------------------- swelling

#[test]
fn expressions_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Expr>();
    let e = p("x^2");
    let d = std::thread::spawn(move || e.diff("x")).join().unwrap();
    assert_eq!(d.to_string(), "2*x");
}

#[test]
fn sizes_count_trees_and_shared_structure() {
    let x = Expr::var("x");
    let s = x.sin();
    // One handle used twice: two occurrences in the tree, one node in the DAG.
    let e = &s * &s;
    assert_eq!((e.tree_size(), e.dag_size()), (5, 3));
    // Built separately but equal: counted once by structure too.
    let e2 = x.sin() * x.sin();
    assert_eq!((e2.tree_size(), e2.dag_size()), (5, 3));
    let f = p("ln(x1) + x1*x2 - sin(x2)");
    // Sub, Add, ln, x1, Mul, x1, x2, sin, x2; x1 and x2 once each in the DAG.
    assert_eq!((f.tree_size(), f.dag_size()), (9, 7));
    assert_eq!((f.diff("x1").tree_size(), f.diff("x1").dag_size()), (5, 5));
    assert_eq!((f.diff("x2").tree_size(), f.diff("x2").dag_size()), (4, 4));
}

#[test]
fn derivative_of_the_swell_family_grows_quadratically_as_a_tree_and_linearly_as_a_dag() {
    let sizes: Vec<(usize, usize)> = (1..=40)
        .map(|n| {
            let d = swell_family(n).diff("x");
            (d.tree_size(), d.dag_size())
        })
        .collect();
    for (n, (t, d)) in sizes.iter().enumerate().take(8) {
        println!("nested_sin({}): derivative tree_size {t}, dag_size {d}", n + 1);
    }
    // d/dx sinⁿ(x) = cos(sinⁿ⁻¹ x)·…·cos(x): the n cosines hold chains of
    // 1..n nodes, so the tree has n(n+3)/2 + n - 1 nodes...
    for (i, &(t, _)) in sizes.iter().enumerate() {
        let n = i + 1;
        assert_eq!(t, n * (n + 3) / 2 + n - 1, "n = {n}");
    }
    // ...while the chains nest inside each other: 3n - 1 distinct subtrees.
    for (i, &(_, d)) in sizes.iter().enumerate() {
        let n = i + 1;
        assert_eq!(d, 3 * n - 1, "n = {n}");
    }
    let (t40, d40) = sizes[39];
    assert!(t40 > 7 * d40, "{t40} vs {d40}");
    // The other family: the rising factorial, whose derivative repeats every
    // partial product: 2n² − 3 nodes as a tree, 5n − 5 as a DAG.
    for n in 2..=40 {
        let d = nested_product(n).diff("x");
        if n <= 8 {
            println!("nested_product({n}): derivative tree_size {}, dag_size {}", d.tree_size(), d.dag_size());
        }
        assert_eq!((d.tree_size(), d.dag_size()), (2 * n * n - 3, 5 * n - 5), "n = {n}");
    }
    assert_eq!(nested_sin(3).to_string(), "sin(sin(sin(x)))");
    assert_eq!(nested_product(3).to_string(), "x*(x + 1)*(x + 2)");
}
