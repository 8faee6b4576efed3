//! Reading expressions from text: a lexer that makes tokens on demand (so
//! the first error from the left is the one reported) and a recursive
//! descent parser with a depth guard.

use std::fmt;

use super::expr::{BinOp, Constant, Expr, Func, Node};

/// The deepest nesting of parentheses, calls, unary minus and `^` that
/// [`parse`] accepts. Each level costs the parser a few stack frames; the
/// limit keeps hostile input such as ten thousand `(` from overflowing it.
pub const MAX_NESTING: usize = 200;

/// The greatest height of a parsed tree. Long chains such as `1+1+…+1` need
/// no nesting but make a tree as high as they are long, and every later
/// walk (printing, `diff`, `simplify`, `eval`, dropping) recurses that deep.
/// At this height the hungriest of them, `diff` of a 500-factor product
/// (whose raw derivative is twice as high), was measured to need under
/// 300 KiB of stack in a release build: a wide margin on a 2 MiB thread.
pub const MAX_HEIGHT: usize = 500;

/// What went wrong, without the position; see [`ParseError`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Nothing but whitespace.
    Empty,
    /// A character that starts no token.
    InvalidChar(char),
    /// Digits and dots that are not a number, such as `1.2.3` or `1e`.
    BadNumber(String),
    /// A number too large for `f64`.
    NumberOutOfRange(String),
    /// A token where none of its kind can stand.
    Unexpected(String),
    /// The input ended where an operand was needed.
    UnexpectedEnd,
    /// Two operands side by side (implicit multiplication is not supported).
    MissingOperator(String),
    /// A name followed by `(` that is no function.
    UnknownFunction(String),
    /// A function name without its parenthesised argument.
    ExpectedParen(String),
    /// A `(` never closed; the column is the `(`'s.
    Unclosed,
    /// A `)` with no `(` to close.
    Unmatched,
    /// Nesting deeper than [`MAX_NESTING`].
    TooDeep,
    /// A tree higher than [`MAX_HEIGHT`].
    TooHigh,
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseErrorKind::Empty => write!(f, "empty input"),
            ParseErrorKind::InvalidChar(c) => write!(f, "invalid character '{c}'"),
            ParseErrorKind::BadNumber(s) => write!(f, "bad number '{s}'"),
            ParseErrorKind::NumberOutOfRange(s) => write!(f, "number '{s}' is out of range"),
            ParseErrorKind::Unexpected(s) => write!(f, "unexpected '{s}'"),
            ParseErrorKind::UnexpectedEnd => write!(f, "unexpected end of input"),
            ParseErrorKind::MissingOperator(s) => write!(f, "missing operator before '{s}'"),
            ParseErrorKind::UnknownFunction(s) => write!(f, "unknown function '{s}'"),
            ParseErrorKind::ExpectedParen(s) => write!(f, "expected '(' after '{s}'"),
            ParseErrorKind::Unclosed => write!(f, "unclosed '('"),
            ParseErrorKind::Unmatched => write!(f, "unmatched ')'"),
            ParseErrorKind::TooDeep => write!(f, "nesting deeper than {MAX_NESTING} levels"),
            ParseErrorKind::TooHigh => write!(f, "expression deeper than {MAX_HEIGHT} levels"),
        }
    }
}

/// Text that is not an expression: what is wrong and where.
///
/// `Display` writes the message, then the input and a caret under the
/// column (whitespace in the input shown as spaces, so the caret lines up):
///
/// ```
/// let err = ferrax::symbolic::parse("ln(x1 + * 2)").unwrap_err();
/// assert_eq!(err.message(), "unexpected '*' at column 9");
/// assert_eq!(err.to_string(), "unexpected '*' at column 9\nln(x1 + * 2)\n        ^");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    kind: ParseErrorKind,
    column: usize,
    input: String,
}

impl ParseError {
    /// What went wrong.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// The 1-based column, counted in characters; one past the end for errors at the end.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The text that was parsed.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// One line: what went wrong and at which column.
    pub fn message(&self) -> String {
        format!("{} at column {}", self.kind, self.column)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.input.chars().map(|c| if c.is_whitespace() { ' ' } else { c }).collect();
        let pad = " ".repeat(self.column.saturating_sub(1));
        write!(f, "{}\n{shown}\n{pad}^", self.message())
    }
}

impl std::error::Error for ParseError {}

/// Reads an expression written in ordinary math notation.
///
/// Numbers (`2`, `0.5`, `.5`, `1e-3`), variables (a letter or `_`, then
/// letters, digits or `_`), the constants `pi` and `e`, `+ - * / ^`, unary
/// minus, parentheses and the functions `sin cos tan exp ln log sqrt tanh
/// sigmoid abs sign` (`log` is the natural logarithm). `^` binds tighter
/// than unary minus and groups to the right: `-x^2` is `-(x^2)`, `2^3^2` is
/// `2^(3^2)`. Implicit multiplication (`2x`) is not supported. The tree is
/// exactly what was written; nothing is simplified.
///
/// ```
/// use ferrax::symbolic::parse;
/// let e = parse("-x^2 + 2^3^2").unwrap();
/// assert_eq!(e.to_string(), "-x^2 + 2^3^2");
/// assert_eq!(parse("ln(x1 + * 2)").unwrap_err().message(), "unexpected '*' at column 9");
/// ```
///
/// # Errors
/// A [`ParseError`] with the column of the first problem from the left,
/// including nesting beyond [`MAX_NESTING`] and trees beyond [`MAX_HEIGHT`].
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser { lex: Lexer { chars: src.chars().collect(), pos: 0 }, cur: Token::end(1), depth: 0, src };
    p.advance()?;
    if p.cur.tok == Tok::End {
        return Err(p.error(ParseErrorKind::Empty, 1));
    }
    let (e, _) = p.expr()?;
    match p.cur.tok {
        Tok::End => Ok(e),
        Tok::Op(')') => Err(p.error(ParseErrorKind::Unmatched, p.cur.col)),
        _ => Err(p.misplaced()),
    }
}

impl std::str::FromStr for Expr {
    type Err = ParseError;

    /// As [`parse`].
    fn from_str(s: &str) -> Result<Expr, ParseError> {
        parse(s)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    /// One of `+ - * / ^ ( ) ,`.
    Op(char),
    End,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    /// 1-based column of the first character.
    col: usize,
    text: String,
}

impl Token {
    fn end(col: usize) -> Token {
        Token { tok: Tok::End, col, text: String::new() }
    }
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    fn peek_at(&self, i: usize) -> Option<char> {
        self.chars.get(i).copied()
    }

    fn next(&mut self) -> Result<Token, (ParseErrorKind, usize)> {
        while self.peek_at(self.pos).is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
        let start = self.pos;
        let col = start + 1;
        let Some(c) = self.peek_at(start) else { return Ok(Token::end(col)) };
        if c.is_ascii_digit() || c == '.' {
            return self.number();
        }
        if c.is_ascii_alphabetic() || c == '_' {
            while self.peek_at(self.pos).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.pos += 1;
            }
            let text: String = self.chars[start..self.pos].iter().collect();
            return Ok(Token { tok: Tok::Ident(text.clone()), col, text });
        }
        if "+-*/^(),".contains(c) {
            self.pos += 1;
            return Ok(Token { tok: Tok::Op(c), col, text: c.to_string() });
        }
        Err((ParseErrorKind::InvalidChar(c), col))
    }

    /// Digits and dots, then an exponent `e`/`E` with an optional sign. A
    /// letter right after the digits other than such an exponent is left for
    /// the next token, so `2x` reads as a missing operator.
    fn number(&mut self) -> Result<Token, (ParseErrorKind, usize)> {
        let start = self.pos;
        while self.peek_at(self.pos).is_some_and(|c| c.is_ascii_digit() || c == '.') {
            self.pos += 1;
        }
        if matches!(self.peek_at(self.pos), Some('e' | 'E')) {
            let mut i = self.pos + 1;
            if matches!(self.peek_at(i), Some('+' | '-')) {
                i += 1;
            }
            let digits = self.peek_at(i).is_some_and(|c| c.is_ascii_digit());
            let letter_follows = self.peek_at(self.pos + 1).is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if digits {
                self.pos = i;
                while self.peek_at(self.pos).is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
            } else if !letter_follows {
                // `1e`, `1e+`, `1e)`: an exponent begun and not finished.
                self.pos = i;
                let text: String = self.chars[start..self.pos].iter().collect();
                return Err((ParseErrorKind::BadNumber(text), start + 1));
            }
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Token { tok: Tok::Num(v), col: start + 1, text }),
            Ok(_) => Err((ParseErrorKind::NumberOutOfRange(text), start + 1)),
            Err(_) => Err((ParseErrorKind::BadNumber(text), start + 1)),
        }
    }
}

struct Parser<'a> {
    lex: Lexer,
    /// The lookahead token.
    cur: Token,
    /// How many `unary` calls are active: every nesting construct passes through one.
    depth: usize,
    src: &'a str,
}

/// A parsed subtree and its height, tracked so that over-high trees are refused.
type Parsed = (Expr, usize);

impl Parser<'_> {
    fn error(&self, kind: ParseErrorKind, column: usize) -> ParseError {
        ParseError { kind, column, input: self.src.to_string() }
    }

    fn advance(&mut self) -> Result<(), ParseError> {
        match self.lex.next() {
            Ok(t) => {
                self.cur = t;
                Ok(())
            }
            Err((kind, col)) => Err(self.error(kind, col)),
        }
    }

    fn at_op(&self, c: char) -> bool {
        self.cur.tok == Tok::Op(c)
    }

    /// The error for the current token where an operator or the end was due.
    fn misplaced(&self) -> ParseError {
        let kind = match &self.cur.tok {
            Tok::End => ParseErrorKind::UnexpectedEnd,
            Tok::Num(_) | Tok::Ident(_) | Tok::Op('(') => ParseErrorKind::MissingOperator(self.cur.text.clone()),
            Tok::Op(_) => ParseErrorKind::Unexpected(self.cur.text.clone()),
        };
        self.error(kind, self.cur.col)
    }

    /// A node over children of height `h`, refused when it would be too high.
    fn node(&self, node: Node, h: usize, col: usize) -> Result<Parsed, ParseError> {
        if h + 1 > MAX_HEIGHT {
            return Err(self.error(ParseErrorKind::TooHigh, col));
        }
        Ok((Expr::new(node), h + 1))
    }

    /// `term (('+' | '-') term)*`
    fn expr(&mut self) -> Result<Parsed, ParseError> {
        let (mut lhs, mut h) = self.term()?;
        while let Tok::Op(c @ ('+' | '-')) = self.cur.tok {
            let col = self.cur.col;
            self.advance()?;
            let (rhs, h2) = self.term()?;
            let op = if c == '+' { BinOp::Add } else { BinOp::Sub };
            (lhs, h) = self.node(Node::Binary(op, lhs, rhs), h.max(h2), col)?;
        }
        Ok((lhs, h))
    }

    /// `unary (('*' | '/') unary)*`
    fn term(&mut self) -> Result<Parsed, ParseError> {
        let (mut lhs, mut h) = self.unary()?;
        while let Tok::Op(c @ ('*' | '/')) = self.cur.tok {
            let col = self.cur.col;
            self.advance()?;
            let (rhs, h2) = self.unary()?;
            let op = if c == '*' { BinOp::Mul } else { BinOp::Div };
            (lhs, h) = self.node(Node::Binary(op, lhs, rhs), h.max(h2), col)?;
        }
        Ok((lhs, h))
    }

    /// `'-' unary | power`
    fn unary(&mut self) -> Result<Parsed, ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error(ParseErrorKind::TooDeep, self.cur.col));
        }
        let out = if self.at_op('-') {
            let col = self.cur.col;
            self.advance()?;
            let (a, h) = self.unary()?;
            self.node(Node::Neg(a), h, col)
        } else {
            self.power()
        };
        self.depth -= 1;
        out
    }

    /// `primary ('^' unary)?`: the exponent may carry its own minus and `^`,
    /// which makes `^` right-associative.
    fn power(&mut self) -> Result<Parsed, ParseError> {
        let (base, h) = self.primary()?;
        if !self.at_op('^') {
            return Ok((base, h));
        }
        let col = self.cur.col;
        self.advance()?;
        let (exponent, h2) = self.unary()?;
        self.node(Node::Binary(BinOp::Pow, base, exponent), h.max(h2), col)
    }

    /// A number, a constant, a variable, a call or a parenthesised expression.
    fn primary(&mut self) -> Result<Parsed, ParseError> {
        let col = self.cur.col;
        match self.cur.tok.clone() {
            Tok::Num(v) => {
                self.advance()?;
                Ok((Expr::num(v), 1))
            }
            Tok::Ident(name) => {
                self.advance()?;
                if self.at_op('(') {
                    let Some(f) = Func::from_name(&name) else {
                        return Err(self.error(ParseErrorKind::UnknownFunction(name), col));
                    };
                    let (arg, h) = self.parenthesised()?;
                    self.node(Node::Call(f, arg), h, col)
                } else if let Some(c) = Constant::from_name(&name) {
                    Ok((Expr::constant(c), 1))
                } else if Func::from_name(&name).is_some() {
                    Err(self.error(ParseErrorKind::ExpectedParen(name), self.cur.col))
                } else {
                    Ok((Expr::new(Node::Var(name)), 1))
                }
            }
            Tok::Op('(') => self.parenthesised(),
            Tok::End => Err(self.error(ParseErrorKind::UnexpectedEnd, col)),
            Tok::Op(_) => Err(self.error(ParseErrorKind::Unexpected(self.cur.text.clone()), col)),
        }
    }

    /// `'(' expr ')'`, with the lookahead on the `(`.
    fn parenthesised(&mut self) -> Result<Parsed, ParseError> {
        let open = self.cur.col;
        self.advance()?;
        let inner = self.expr()?;
        match self.cur.tok {
            Tok::Op(')') => {
                self.advance()?;
                Ok(inner)
            }
            Tok::End => Err(self.error(ParseErrorKind::Unclosed, open)),
            _ => Err(self.misplaced()),
        }
    }
}
