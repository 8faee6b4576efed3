//! Printing a graph as text, one equation a line (in the spirit of a
//! jaxpr), and as Graphviz DOT.

use std::fmt::{self, Write};

use super::{Def, Graph};
use crate::core::label;

/// Variable names as jaxprs have them: a, b, …, z, ba, bb, …
fn var_name(mut v: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'a' + (v % 26) as u8);
        v /= 26;
        if v == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).expect("ascii")
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let typed = |v: usize| format!("{}:{}", var_name(v), self.avals[v]);
        let ins: Vec<String> = self.inputs.iter().map(|&v| typed(v)).collect();
        writeln!(f, "{{ lambda {} .", ins.join(" "))?;
        for (v, t) in &self.consts {
            let value = match t.array() {
                Some(a) if a.size() <= 4 => format!(" = {a}"),
                _ => String::new(),
            };
            writeln!(f, "    {} = const{value}", typed(*v))?;
        }
        for e in &self.eqns {
            let args: Vec<String> = e.inputs.iter().map(|&v| var_name(v)).collect();
            let outs: Vec<String> = e.outs.iter().map(|&v| typed(v)).collect();
            writeln!(f, "    {} = {} {}", outs.join(" "), label(&*e.prim), args.join(" "))?;
            if let Some(body) = e.prim.subgraph() {
                for line in body.to_string().lines() {
                    writeln!(f, "        {line}")?;
                }
            }
        }
        let outs: Vec<String> = self.outputs.iter().map(|&v| var_name(v)).collect();
        write!(f, "  in ({}) }}", outs.join(", "))
    }
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Graph {
    /// The graph in Graphviz DOT: inputs as ellipses, constants as boxes,
    /// one node per equation, edges along the data flow; outputs doubled.
    pub fn to_dot(&self) -> String {
        let mut s = String::from("digraph ferrax {\n  rankdir=TB;\n  node [fontname=\"monospace\"];\n");
        for (v, def) in self.defs.iter().enumerate() {
            let (label, shape) = match def {
                Def::Input(i) => (format!("in{i} {}\\n{}", var_name(v), self.avals[v]), "ellipse"),
                Def::Const(_) => (format!("{}\\n{}", var_name(v), self.avals[v]), "box"),
                Def::Eqn(e) => (format!("{}\\n{}", label(&*self.eqns[*e].prim), self.avals[v]), "ellipse"),
            };
            let periph = if self.outputs.contains(&v) { 2 } else { 1 };
            let _ = writeln!(s, "  v{v} [label=\"{}\", shape={shape}, peripheries={periph}];", label.replace('"', "'"));
        }
        for e in &self.eqns {
            for &i in &e.inputs {
                for &o in &e.outs {
                    let _ = writeln!(s, "  v{i} -> v{o};");
                }
            }
        }
        s.push_str("}\n");
        s
    }
}
