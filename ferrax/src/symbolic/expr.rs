//! The expression tree, its building blocks and its structural measures.

use std::ops;
use std::sync::Arc;

/// A mathematical constant that keeps its name in an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Constant {
    /// π, written `pi`.
    Pi,
    /// Euler's number, written `e`.
    E,
}

impl Constant {
    /// The name the parser reads and the printer writes.
    pub fn name(self) -> &'static str {
        match self {
            Constant::Pi => "pi",
            Constant::E => "e",
        }
    }

    /// The value in `f64`.
    pub fn value(self) -> f64 {
        match self {
            Constant::Pi => std::f64::consts::PI,
            Constant::E => std::f64::consts::E,
        }
    }

    /// The constant called `name`, if any.
    pub fn from_name(name: &str) -> Option<Constant> {
        match name {
            "pi" => Some(Constant::Pi),
            "e" => Some(Constant::E),
            _ => None,
        }
    }
}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `a ^ b`, right-associative.
    Pow,
}

impl BinOp {
    /// The operator's character.
    pub fn symbol(self) -> char {
        match self {
            BinOp::Add => '+',
            BinOp::Sub => '-',
            BinOp::Mul => '*',
            BinOp::Div => '/',
            BinOp::Pow => '^',
        }
    }

    /// The operator applied to two numbers.
    pub fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            BinOp::Pow => a.powf(b),
        }
    }
}

/// A function of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    /// Sine.
    Sin,
    /// Cosine.
    Cos,
    /// Tangent.
    Tan,
    /// `e^x`.
    Exp,
    /// Natural logarithm; the parser reads `log` as a synonym.
    Ln,
    /// Square root.
    Sqrt,
    /// Hyperbolic tangent.
    Tanh,
    /// The logistic function `1 / (1 + e^-x)`.
    Sigmoid,
    /// Absolute value.
    Abs,
    /// -1, 0 or 1 by the sign of the argument (0 at 0, as numpy and
    /// [`Tensor::signum`](crate::core::Tensor::signum)); it is the derivative of `abs`.
    Sign,
}

impl Func {
    /// Every function, in declaration order.
    pub const ALL: [Func; 10] = [
        Func::Sin,
        Func::Cos,
        Func::Tan,
        Func::Exp,
        Func::Ln,
        Func::Sqrt,
        Func::Tanh,
        Func::Sigmoid,
        Func::Abs,
        Func::Sign,
    ];

    /// The name the printer writes.
    pub fn name(self) -> &'static str {
        match self {
            Func::Sin => "sin",
            Func::Cos => "cos",
            Func::Tan => "tan",
            Func::Exp => "exp",
            Func::Ln => "ln",
            Func::Sqrt => "sqrt",
            Func::Tanh => "tanh",
            Func::Sigmoid => "sigmoid",
            Func::Abs => "abs",
            Func::Sign => "sign",
        }
    }

    /// The function called `name`; `log` is `ln`.
    pub fn from_name(name: &str) -> Option<Func> {
        if name == "log" {
            return Some(Func::Ln);
        }
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The function applied to a number.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Func::Sin => x.sin(),
            Func::Cos => x.cos(),
            Func::Tan => x.tan(),
            Func::Exp => x.exp(),
            Func::Ln => x.ln(),
            Func::Sqrt => x.sqrt(),
            Func::Tanh => x.tanh(),
            // The two branches keep e^-x from overflowing, as the tensor kernel does.
            Func::Sigmoid if x >= 0.0 => 1.0 / (1.0 + (-x).exp()),
            Func::Sigmoid => x.exp() / (1.0 + x.exp()),
            Func::Abs => x.abs(),
            // f64::signum gives 1 at 0; the sign of 0 is 0 here, as Tensor::signum.
            Func::Sign if x == 0.0 => 0.0,
            Func::Sign => x.signum(),
        }
    }
}

/// One node of an expression.
#[derive(Clone, Debug)]
pub enum Node {
    /// A number.
    Num(f64),
    /// A variable, by name.
    Var(String),
    /// `pi` or `e`.
    Const(Constant),
    /// `-a`
    Neg(Expr),
    /// `a op b`
    Binary(BinOp, Expr, Expr),
    /// `f(a)`
    Call(Func, Expr),
}

/// A closed-form expression: an immutable tree whose children are shared
/// handles, so cloning is cheap and one subexpression can sit in many
/// places (a derivative reuses the subtrees of its function).
///
/// The operators `+ - * /` and unary `-` build nodes as written, without
/// simplifying; [`Expr::simplify`] normalises.
///
/// ```
/// use ferrax::symbolic::Expr;
/// let x = Expr::var("x");
/// let e = x.sin() * (&x + 1.0);
/// assert_eq!(e.to_string(), "sin(x)*(x + 1)");
/// ```
///
/// Every operation walks the tree recursively, so its height is bounded by
/// the stack; [`parse`](fn@super::parse) refuses trees higher than
/// [`MAX_HEIGHT`](super::MAX_HEIGHT), which every operation handles on a
/// default 2 MiB thread stack. Trees built in code have no such guard.
#[derive(Clone)]
pub struct Expr(Arc<Node>);

/// Whether `name` can be a variable: an identifier that is neither a
/// function nor a constant, so that printing it reads back as a variable.
pub(crate) fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    starts_well
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && Func::from_name(name).is_none()
        && Constant::from_name(name).is_none()
}

impl Expr {
    /// An expression from a node.
    pub fn new(node: Node) -> Expr {
        Expr(Arc::new(node))
    }

    /// A number.
    pub fn num(v: f64) -> Expr {
        Expr::new(Node::Num(v))
    }

    /// A variable.
    ///
    /// # Panics
    /// When `name` is not an ASCII identifier (`x`, `x1`, `y_2`, `alpha`) or
    /// is a function or constant name, which would print as something else.
    #[track_caller]
    pub fn var(name: &str) -> Expr {
        assert!(
            is_variable_name(name),
            "Expr::var: {name:?} is not a variable name; use a letter or '_' followed by letters, digits or '_', \
             other than a function name or pi/e"
        );
        Expr::new(Node::Var(name.to_string()))
    }

    /// `pi` or `e`.
    pub fn constant(c: Constant) -> Expr {
        Expr::new(Node::Const(c))
    }

    /// `a op b`.
    pub fn binary(op: BinOp, a: impl Into<Expr>, b: impl Into<Expr>) -> Expr {
        Expr::new(Node::Binary(op, a.into(), b.into()))
    }

    /// `f(a)`.
    pub fn call(f: Func, a: impl Into<Expr>) -> Expr {
        Expr::new(Node::Call(f, a.into()))
    }

    /// `self ^ exponent`.
    pub fn pow(&self, exponent: impl Into<Expr>) -> Expr {
        Expr::binary(BinOp::Pow, self, exponent)
    }

    /// The root node, for matching.
    pub fn node(&self) -> &Node {
        &self.0
    }

    /// Whether both handles point to the same node (not just equal ones).
    pub fn ptr_eq(&self, other: &Expr) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The node's address: the key of the per-walk memo tables.
    pub(crate) fn key(&self) -> *const Node {
        Arc::as_ptr(&self.0)
    }

    /// Whether another handle holds this node; only such nodes can be met
    /// twice in one walk, so only they are worth a memo entry.
    pub(crate) fn is_shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }

    /// The number, when the root is one.
    pub fn as_num(&self) -> Option<f64> {
        match self.node() {
            Node::Num(v) => Some(*v),
            _ => None,
        }
    }
}

/// Structural equality; numbers compare as `f64` (so `0 == -0`, `NaN != NaN`).
impl PartialEq for Expr {
    fn eq(&self, other: &Expr) -> bool {
        if self.ptr_eq(other) {
            return true;
        }
        match (self.node(), other.node()) {
            (Node::Num(a), Node::Num(b)) => a == b,
            (Node::Var(a), Node::Var(b)) => a == b,
            (Node::Const(a), Node::Const(b)) => a == b,
            (Node::Neg(a), Node::Neg(b)) => a == b,
            (Node::Binary(o, a, b), Node::Binary(p, c, d)) => o == p && a == c && b == d,
            (Node::Call(f, a), Node::Call(g, b)) => f == g && a == b,
            _ => false,
        }
    }
}

/// Shows the printed form, which is far easier to read in a failed assertion
/// than the nested nodes.
impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.to_string())
    }
}

impl From<f64> for Expr {
    fn from(v: f64) -> Expr {
        Expr::num(v)
    }
}

impl From<&Expr> for Expr {
    fn from(e: &Expr) -> Expr {
        e.clone()
    }
}

impl From<Constant> for Expr {
    fn from(c: Constant) -> Expr {
        Expr::constant(c)
    }
}

macro_rules! operator {
    ($Trait:ident, $method:ident, $Op:ident) => {
        impl<R: Into<Expr>> ops::$Trait<R> for Expr {
            type Output = Expr;
            fn $method(self, rhs: R) -> Expr {
                Expr::binary(BinOp::$Op, self, rhs)
            }
        }
        impl<R: Into<Expr>> ops::$Trait<R> for &Expr {
            type Output = Expr;
            fn $method(self, rhs: R) -> Expr {
                Expr::binary(BinOp::$Op, self, rhs)
            }
        }
        impl ops::$Trait<Expr> for f64 {
            type Output = Expr;
            fn $method(self, rhs: Expr) -> Expr {
                Expr::binary(BinOp::$Op, self, rhs)
            }
        }
        impl ops::$Trait<&Expr> for f64 {
            type Output = Expr;
            fn $method(self, rhs: &Expr) -> Expr {
                Expr::binary(BinOp::$Op, self, rhs)
            }
        }
    };
}

operator!(Add, add, Add);
operator!(Sub, sub, Sub);
operator!(Mul, mul, Mul);
operator!(Div, div, Div);

impl ops::Neg for Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        Expr::new(Node::Neg(self))
    }
}

impl ops::Neg for &Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        Expr::new(Node::Neg(self.clone()))
    }
}

macro_rules! call_methods {
    ($($method:ident => $F:ident),* $(,)?) => {
        impl Expr {
            $(
                #[doc = concat!("`", stringify!($method), "(self)`, unsimplified.")]
                pub fn $method(&self) -> Expr {
                    Expr::call(Func::$F, self)
                }
            )*
        }
    };
}

call_methods!(
    sin => Sin, cos => Cos, tan => Tan, exp => Exp, ln => Ln, sqrt => Sqrt,
    tanh => Tanh, sigmoid => Sigmoid, abs => Abs, sign => Sign,
);
