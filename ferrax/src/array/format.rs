//! numpy-style printing: aligned columns, shared float format, and `...`
//! for large arrays.

use std::fmt;

use super::{Array, Buffer};

/// Arrays with more elements than this print abbreviated, as numpy's default.
const THRESHOLD: usize = 1000;
/// Elements shown at each end of an abbreviated axis.
const EDGE: usize = 3;
/// Fraction digits at most, as numpy's default precision.
const PRECISION: usize = 8;

/// How every float of one array is written, so columns line up.
enum FloatStyle {
    /// `1.5`, `-0.25`, `3.`: at most `PRECISION` fraction digits, trailing zeros dropped.
    Positional { frac: usize },
    /// `1.5e+03` with `digits` mantissa fraction digits.
    Scientific { digits: usize },
}

fn positional(v: f64, max_frac: usize) -> String {
    let s = format!("{v:.max_frac$}");
    let s = if s.contains('.') { s.trim_end_matches('0').to_string() } else { s + "." };
    if s.ends_with('.') || s.contains('.') {
        s
    } else {
        s + "."
    }
}

fn scientific(v: f64, digits: usize) -> String {
    let s = format!("{v:.digits$e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let mant = if mant.contains('.') { mant.to_string() } else { format!("{mant}.") };
    let (sign, num) = match exp.strip_prefix('-') {
        Some(n) => ('-', n),
        None => ('+', exp),
    };
    format!("{mant}e{sign}{num:0>2}")
}

fn nonfinite(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("nan")
    } else if v.is_infinite() {
        Some(if v > 0.0 { "inf" } else { "-inf" })
    } else {
        None
    }
}

fn float_style(vals: &[f64]) -> FloatStyle {
    let abs: Vec<f64> = vals.iter().filter(|v| v.is_finite() && **v != 0.0).map(|v| v.abs()).collect();
    let (lo, hi) = abs.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if !abs.is_empty() && (hi >= 1e8 || lo < 1e-4 || hi / lo > 1e3) {
        let digits = vals
            .iter()
            .filter(|v| v.is_finite())
            .map(|&v| {
                let s = scientific(v, PRECISION);
                let mant = s.split('e').next().unwrap_or("");
                mant.split('.').nth(1).map_or(0, |f| f.trim_end_matches('0').len())
            })
            .max()
            .unwrap_or(0);
        FloatStyle::Scientific { digits }
    } else {
        let frac = vals
            .iter()
            .filter(|v| v.is_finite())
            .map(|&v| positional(v, PRECISION).split('.').nth(1).map_or(0, str::len))
            .max()
            .unwrap_or(0);
        FloatStyle::Positional { frac }
    }
}

/// The value of the shortest decimal (in significant digits) that rounds
/// to the same `dtype` value as `v`.
fn shortest_round_trip(v: f64, dtype: super::DType) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    let same = |w: f64| super::Array::scalar(w).to_dtype(dtype).get_f64(0) == v;
    (1..=9).map(|digits| format!("{v:.*e}", digits - 1).parse::<f64>().unwrap_or(v)).find(|&w| same(w)).unwrap_or(v)
}

/// The element strings of `x` (all of them, or only the shown ones when
/// abbreviated), before alignment.
fn element_strings(x: &Array, shown: &[usize]) -> Vec<String> {
    match x.buffer() {
        Buffer::F16(_) | Buffer::BF16(_) | Buffer::F32(_) | Buffer::F64(_) => {
            let mut vals: Vec<f64> = shown.iter().map(|&i| x.get_f64(i)).collect();
            if x.dtype().is_half() {
                // As numpy prints float16: the fewest digits that read back
                // as the same 16-bit value (0.01892, not 0.0189209).
                for v in &mut vals {
                    *v = shortest_round_trip(*v, x.dtype());
                }
            }
            match float_style(&vals) {
                FloatStyle::Positional { frac } => vals
                    .iter()
                    .map(|&v| {
                        nonfinite(v).map(str::to_string).unwrap_or_else(|| {
                            let s = positional(v, PRECISION);
                            let have = s.split('.').nth(1).map_or(0, str::len);
                            format!("{s}{}", " ".repeat(frac - have))
                        })
                    })
                    .collect(),
                FloatStyle::Scientific { digits } => vals
                    .iter()
                    .map(|&v| nonfinite(v).map(str::to_string).unwrap_or_else(|| scientific(v, digits)))
                    .collect(),
            }
        }
        Buffer::I64(v) => shown.iter().map(|&i| v[i].to_string()).collect(),
        Buffer::Bool(v) => shown.iter().map(|&i| v[i].to_string()).collect(),
    }
}

/// Indices shown along an axis of length `n`: all, or the two ends.
fn shown_along(n: usize, abbreviate: bool) -> Vec<Option<usize>> {
    if abbreviate && n > 2 * EDGE {
        (0..EDGE).map(Some).chain([None]).chain((n - EDGE..n).map(Some)).collect()
    } else {
        (0..n).map(Some).collect()
    }
}

/// Writes `x` as numpy's `str()` does.
pub fn write_array(x: &Array, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let shape = x.shape();
    let abbreviate = x.size() > THRESHOLD;
    // Collect the flat indices of the shown elements in print order.
    let mut flat = Vec::new();
    collect(shape, 0, 0, abbreviate, &mut flat);
    let strings = element_strings(x, &flat);
    let width = strings.iter().map(String::len).max().unwrap_or(0);
    let mut it = strings.into_iter();
    if shape.is_empty() {
        return f.write_str(it.next().as_deref().unwrap_or("").trim_end());
    }
    write_level(f, shape, 0, abbreviate, width, &mut it)
}

fn collect(shape: &[usize], dim: usize, base: usize, abbreviate: bool, out: &mut Vec<usize>) {
    if dim == shape.len() {
        out.push(base);
        return;
    }
    let stride: usize = shape[dim + 1..].iter().product();
    for i in shown_along(shape[dim], abbreviate).into_iter().flatten() {
        collect(shape, dim + 1, base + i * stride, abbreviate, out);
    }
}

fn write_level(
    f: &mut fmt::Formatter<'_>,
    shape: &[usize],
    dim: usize,
    abbreviate: bool,
    width: usize,
    it: &mut impl Iterator<Item = String>,
) -> fmt::Result {
    f.write_str("[")?;
    let last = dim + 1 == shape.len();
    let rows = shown_along(shape[dim], abbreviate);
    for (j, slot) in rows.iter().enumerate() {
        if j > 0 {
            if last {
                f.write_str(" ")?;
            } else {
                // One newline per level below, as numpy separates blocks.
                let newlines = shape.len() - dim - 1;
                f.write_str(&"\n".repeat(newlines))?;
                f.write_str(&" ".repeat(dim + 1))?;
            }
        }
        match slot {
            None => f.write_str("...")?,
            Some(_) if last => {
                let s = it.next().unwrap_or_default();
                write!(f, "{s:>width$}")?;
            }
            Some(_) => write_level(f, shape, dim + 1, abbreviate, width, it)?,
        }
    }
    f.write_str("]")
}

impl fmt::Display for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_array(self, f)
    }
}

impl fmt::Debug for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Array({}, ", self.aval())?;
        write_array(self, f)?;
        f.write_str(")")
    }
}
