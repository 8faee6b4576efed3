//! Parts of a graph: which outputs depend on which inputs, and the graph
//! that computes some of the outputs from some of the inputs. What the
//! control-flow primitives split their bodies with.

use super::rebuild::Rebuild;
use super::{Def, Graph};
use crate::array::Aval;

impl Graph {
    /// The avals of the inputs, in order.
    pub(crate) fn input_avals(&self) -> Vec<Aval> {
        self.inputs.iter().map(|&v| self.avals[v].clone()).collect()
    }

    /// The avals of the outputs, in order.
    pub(crate) fn output_avals(&self) -> Vec<Aval> {
        self.outputs.iter().map(|&v| self.avals[v].clone()).collect()
    }

    /// For each output, whether it depends on an input marked in `from`
    /// (one flag per input).
    pub(crate) fn reaches(&self, from: &[bool]) -> Vec<bool> {
        let mut hit = vec![false; self.avals.len()];
        for (&v, &f) in self.inputs.iter().zip(from) {
            hit[v] = f;
        }
        for e in &self.eqns {
            if e.inputs.iter().any(|&v| hit[v]) {
                for &o in &e.outs {
                    hit[o] = true;
                }
            }
        }
        self.outputs.iter().map(|&v| hit[v]).collect()
    }

    /// The graph whose inputs are this one's inputs numbered `inputs` (in
    /// that order) and whose outputs are its outputs numbered `outputs`,
    /// without the equations and constants those outputs do not need.
    ///
    /// # Panics
    /// When a needed equation reads an input left out.
    pub(crate) fn restricted(&self, inputs: &[usize], outputs: &[usize]) -> Graph {
        let mut live = vec![false; self.avals.len()];
        for &o in outputs {
            live[self.outputs[o]] = true;
        }
        let mut keep = vec![false; self.eqns.len()];
        for (i, e) in self.eqns.iter().enumerate().rev() {
            if e.outs.iter().any(|&o| live[o]) {
                keep[i] = true;
                for &v in &e.inputs {
                    live[v] = true;
                }
            }
        }
        let kept: Vec<usize> = inputs.iter().map(|&k| self.inputs[k]).collect();
        for (v, &d) in self.defs.iter().enumerate() {
            if let (Def::Input(_), true) = (d, live[v]) {
                assert!(kept.contains(&v), "internal error: a restricted graph needs an input it leaves out");
            }
        }
        let mut rb = Rebuild::new(self, &kept);
        for (v, t) in &self.consts {
            if live[*v] {
                rb.constant(*v, t);
            }
        }
        for (i, e) in self.eqns.iter().enumerate() {
            if keep[i] {
                rb.copy(e);
            }
        }
        rb.finish(outputs.iter().map(|&o| self.outputs[o]))
    }
}
