//! Line charts as SVG, written by hand: axes with ticks, one polyline per
//! series, optional logarithmic axes. Enough for training curves and
//! error-against-step plots without a plotting dependency.

use std::fmt::Write;

/// One line of a chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: &'static str,
    /// Drawn dashed (for reference lines).
    pub dashed: bool,
}

/// A chart: its series and how its axes are labelled and scaled.
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
    /// A line of text under the title (what was left out, and why).
    pub note: Option<String>,
}

const W: f64 = 640.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
/// Room for the title, the note and one row of legend entries above the plot area.
const TOP: f64 = 76.0;
const BOTTOM: f64 = 50.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Tick positions over `[lo, hi]`: powers of ten on a log axis, 1-2-5 steps otherwise.
fn ticks(lo: f64, hi: f64, log: bool) -> Vec<f64> {
    if log {
        // Whole decades, every second or fourth one when there are many.
        let (a, b) = ((lo - 1e-9).ceil() as i32, (hi + 1e-9).floor() as i32);
        let every = ((b - a) / 8 + 1).max(1) as usize;
        return (a..=b).step_by(every).map(f64::from).collect();
    }
    let span = (hi - lo).max(1e-300);
    let raw = span / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    (0..).map(|i| first + i as f64 * step).take_while(|t| *t <= hi + step * 1e-9).collect()
}

fn label(v: f64, log: bool) -> String {
    if log {
        format!("1e{}", v.round() as i32)
    } else if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

impl Chart {
    /// The chart as an SVG document. Points that cannot be shown (non-finite,
    /// or not positive on a log axis) are left out.
    pub fn to_svg(&self) -> String {
        let tx = |v: f64| if self.log_x { v.log10() } else { v };
        let ty = |v: f64| if self.log_y { v.log10() } else { v };
        let visible: Vec<Vec<(f64, f64)>> = self
            .series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .filter(|(x, y)| {
                        x.is_finite() && y.is_finite() && (!self.log_x || *x > 0.0) && (!self.log_y || *y > 0.0)
                    })
                    .map(|&(x, y)| (tx(x), ty(y)))
                    .collect()
            })
            .collect();
        let all: Vec<&(f64, f64)> = visible.iter().flatten().collect();
        let (mut x0, mut x1, mut y0, mut y1) = all
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY), |(a, b, c, d), (x, y)| {
                (a.min(*x), b.max(*x), c.min(*y), d.max(*y))
            });
        if all.is_empty() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 - x0 < 1e-12 {
            (x0, x1) = (x0 - 0.5, x1 + 0.5);
        }
        if y1 - y0 < 1e-12 {
            (y0, y1) = (y0 - 0.5, y1 + 0.5);
        }
        let pad = (y1 - y0) * 0.05;
        let (y0, y1) = (y0 - pad, y1 + pad);
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
        let py = |y: f64| H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
            W / 2.0,
            escape(&self.title)
        );
        for t in ticks(x0, x1, self.log_x) {
            let x = px(t);
            let _ = writeln!(s, r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{}" stroke="#eee"/>"##, H - BOTTOM);
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
                H - BOTTOM + 16.0,
                label(t, self.log_x)
            );
        }
        for t in ticks(y0, y1, self.log_y) {
            let y = py(t);
            let _ = writeln!(s, r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/>"##, W - RIGHT);
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                y + 4.0,
                label(t, self.log_y)
            );
        }
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="black"/>"#,
            W - LEFT - RIGHT,
            H - TOP - BOTTOM
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            H - 12.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
            (TOP + H - BOTTOM) / 2.0,
            (TOP + H - BOTTOM) / 2.0,
            escape(&self.y_label)
        );
        if let Some(note) = &self.note {
            let _ = writeln!(
                s,
                r##"<text x="{}" y="40" text-anchor="middle" fill="#555">{}</text>"##,
                W / 2.0,
                escape(note)
            );
        }
        // The legend: one row above the plot area, so it never covers the data.
        let mut legend_x = LEFT;
        let legend_y = TOP - 14.0;
        for (series, pts) in self.series.iter().zip(&visible) {
            let path: Vec<String> = pts.iter().map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
            let dash = if series.dashed { r#" stroke-dasharray="6 4""# } else { "" };
            if !path.is_empty() {
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                    path.join(" "),
                    series.color
                );
            }
            // Markers where there are few points: a single epoch is one point, which a line cannot show.
            if pts.len() <= 20 && !series.dashed {
                for (x, y) in pts {
                    let _ =
                        writeln!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#, px(*x), py(*y), series.color);
                }
            }
            let _ = writeln!(
                s,
                r#"<line x1="{legend_x}" y1="{legend_y}" x2="{}" y2="{legend_y}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                legend_x + 20.0,
                series.color,
                legend_x + 25.0,
                legend_y + 4.0,
                escape(&series.name)
            );
            // About 7 px a character at this size.
            legend_x += 45.0 + 7.0 * series.name.chars().count() as f64;
        }
        s.push_str("</svg>\n");
        s
    }
}

/// Several charts stacked vertically in one SVG.
pub fn stack(charts: &[Chart]) -> String {
    let mut s = String::new();
    let total = H * charts.len() as f64;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{total}" viewBox="0 0 {W} {total}">"#
    );
    for (i, c) in charts.iter().enumerate() {
        let inner = c.to_svg();
        let _ = writeln!(s, r#"<g transform="translate(0 {})">{inner}</g>"#, H * i as f64);
    }
    s.push_str("</svg>\n");
    s
}
