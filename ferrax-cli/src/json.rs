//! A minimal JSON writer for `--json` output.

use std::fmt::Write;

/// A JSON value.
pub enum Json {
    Null,
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An object from key-value pairs.
    pub fn obj(pairs: Vec<(&str, Json)>) -> Json {
        Json::Obj(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    /// An array of numbers.
    pub fn nums(v: &[f64]) -> Json {
        Json::Arr(v.iter().map(|&x| Json::Num(x)).collect())
    }

    /// The text, indented by two spaces per level.
    pub fn pretty(&self) -> String {
        let mut s = String::new();
        self.write(&mut s, 0);
        s
    }

    fn write(&self, s: &mut String, depth: usize) {
        let pad = |d: usize| "  ".repeat(d);
        match self {
            Json::Null => s.push_str("null"),
            // JSON has no NaN or infinity: those become null.
            Json::Num(x) if !x.is_finite() => s.push_str("null"),
            Json::Num(x) => {
                let _ = write!(s, "{x:?}");
            }
            Json::Str(t) => {
                s.push('"');
                for c in t.chars() {
                    match c {
                        '"' => s.push_str("\\\""),
                        '\\' => s.push_str("\\\\"),
                        '\n' => s.push_str("\\n"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(s, "\\u{:04x}", c as u32);
                        }
                        c => s.push(c),
                    }
                }
                s.push('"');
            }
            Json::Arr(items) if items.iter().all(|i| matches!(i, Json::Num(_) | Json::Null)) => {
                s.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    item.write(s, depth);
                }
                s.push(']');
            }
            Json::Arr(items) => {
                s.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    s.push_str(&pad(depth + 1));
                    item.write(s, depth + 1);
                    s.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                s.push_str(&pad(depth));
                s.push(']');
            }
            Json::Obj(pairs) => {
                s.push_str("{\n");
                for (i, (k, v)) in pairs.iter().enumerate() {
                    s.push_str(&pad(depth + 1));
                    Json::Str(k.clone()).write(s, depth + 1);
                    s.push_str(": ");
                    v.write(s, depth + 1);
                    s.push_str(if i + 1 < pairs.len() { ",\n" } else { "\n" });
                }
                s.push_str(&pad(depth));
                s.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Json;

    #[test]
    fn writes_valid_json() {
        let j = Json::obj(vec![
            ("a", Json::nums(&[1.0, 0.5, f64::NAN])),
            ("s", Json::Str("q\"\\\n".into())),
            ("o", Json::obj(vec![("t", Json::Num(2.0)), ("n", Json::Null)])),
        ]);
        assert_eq!(
            j.pretty(),
            "{\n  \"a\": [1.0, 0.5, null],\n  \"s\": \"q\\\"\\\\\\n\",\n  \"o\": {\n    \"t\": 2.0,\n    \"n\": null\n  }\n}"
        );
    }
}
