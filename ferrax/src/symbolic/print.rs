//! Printing with as few parentheses as the grammar allows.
//!
//! An operand gets parentheses exactly when the parser would otherwise
//! group it differently, so a parsed expression prints back to text that
//! parses to the same tree. `+` and `-` are spaced, the tighter operators
//! are not: `ln(x1) + x1*x2 - sin(x2)`.

use std::fmt;

use super::expr::{BinOp, Expr, Node};

/// Binding strengths, loosest first.
const SUM: u8 = 1;
const PRODUCT: u8 = 2;
const PREFIX: u8 = 3;
const POWER: u8 = 4;
const ATOM: u8 = 5;

fn precedence(e: &Expr) -> u8 {
    match e.node() {
        Node::Binary(BinOp::Add | BinOp::Sub, ..) => SUM,
        Node::Binary(BinOp::Mul | BinOp::Div, ..) => PRODUCT,
        Node::Binary(BinOp::Pow, ..) => POWER,
        Node::Neg(_) => PREFIX,
        // A negative number prints with its minus, so it groups like unary minus.
        Node::Num(v) if v.is_sign_negative() && !v.is_nan() => PREFIX,
        Node::Num(_) | Node::Var(_) | Node::Const(_) | Node::Call(..) => ATOM,
    }
}

/// `e`, in parentheses when `parens`.
fn operand(f: &mut fmt::Formatter<'_>, e: &Expr, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({e})")
    } else {
        write!(f, "{e}")
    }
}

fn number(f: &mut fmt::Formatter<'_>, v: f64) -> fmt::Result {
    if v.is_nan() {
        // Not a token, but an expression with the same value.
        f.write_str("(0/0)")
    } else if v.is_infinite() {
        f.write_str(if v > 0.0 { "(1/0)" } else { "(-1/0)" })
    } else if v.fract() == 0.0 && v.abs() < 1e16 {
        // `{}` of an integral f64 has no fraction: 2, not 2.0.
        write!(f, "{v}")
    } else {
        // `{:?}` is the shortest text that reads back to the same f64, with
        // an exponent for very large and very small values (1e300, 1.5e-7).
        write!(f, "{v:?}")
    }
}

/// Minimal parentheses: `a - (b - c)` keeps them, `(a - b) - c` does not;
/// `a/(b*c)` keeps them; `(a^b)^c` keeps them, `a^(b^c)` does not.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node() {
            Node::Num(v) => number(f, *v),
            Node::Var(name) => f.write_str(name),
            Node::Const(c) => f.write_str(c.name()),
            Node::Neg(a) => {
                f.write_str("-")?;
                operand(f, a, precedence(a) < PREFIX)
            }
            Node::Call(func, a) => write!(f, "{}({a})", func.name()),
            Node::Binary(BinOp::Pow, a, b) => {
                // Right-associative, and the exponent is read as a unary
                // expression, so `x^-y` needs no parentheses.
                operand(f, a, precedence(a) <= POWER)?;
                f.write_str("^")?;
                operand(f, b, precedence(b) < PREFIX)
            }
            Node::Binary(op, a, b) => {
                let p = precedence(self);
                operand(f, a, precedence(a) < p)?;
                match op {
                    BinOp::Add => f.write_str(" + ")?,
                    BinOp::Sub => f.write_str(" - ")?,
                    _ => write!(f, "{}", op.symbol())?,
                }
                // Left-associative: an equal-precedence right operand was grouped on purpose.
                operand(f, b, precedence(b) <= p)
            }
        }
    }
}
