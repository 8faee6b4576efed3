//! Closed-form expressions: a parser, a symbolic derivative, a simplifier,
//! printing, evaluation in `f64`, and compilation to Tensor operations.
//!
//! ```
//! use std::collections::BTreeMap;
//! use ferrax::symbolic::parse;
//!
//! let f = parse("ln(x1) + x1*x2 - sin(x2)").unwrap();
//! let df = f.diff("x2");
//! assert_eq!(df.to_string(), "x1 - cos(x2)");
//!
//! let at = BTreeMap::from([("x1".to_string(), 2.0), ("x2".to_string(), 5.0)]);
//! assert!((df.eval(&at).unwrap() - (2.0 - 5f64.cos())).abs() < 1e-15);
//! ```
//!
//! The symbolic derivative is a second, independent route to the numbers
//! ferrax's AD computes: [`Expr::to_tensor`] turns the same expression into
//! Tensor operations for [`grad`](crate::grad), and the tests hold the two
//! to each other. It also measures what AD avoids: written out as a tree
//! ([`Expr::tree_size`]) a derivative can grow far faster than the
//! computation with repeated subexpressions shared ([`Expr::dag_size`]);
//! see [`swell_family`].

#![warn(missing_docs)]

mod compile;
mod diff;
mod eval;
mod expr;
mod parse;
mod print;
mod simplify;
mod swell;

pub use eval::EvalError;
pub use expr::{BinOp, Constant, Expr, Func, Node};
pub use parse::{parse, ParseError, ParseErrorKind, MAX_HEIGHT, MAX_NESTING};
pub use swell::{nested_product, nested_sin, swell_family};
