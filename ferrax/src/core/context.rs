//! Thread-local context that rules and traces consult: whose code is
//! running (a user's derivative rule, or the primal computation of an inner
//! JVP), so errors can name the user's rule and custom rules can do what
//! JAX does in each case.

use std::cell::Cell;

thread_local! {
    /// The user rule whose operations are being traced, if any.
    static USER_RULE: Cell<Option<&'static str>> = const { Cell::new(None) };
    /// The user rule an equation being transposed came from, if any.
    static TRANSPOSING: Cell<Option<&'static str>> = const { Cell::new(None) };
    /// How many JVP frames are computing the primal of an operation of a
    /// higher JVP frame, below this point of the stack.
    static INNER_PRIMAL: Cell<usize> = const { Cell::new(0) };
}

/// Restores a thread-local cell's previous value when dropped, also on panic.
pub struct Restore<T: Copy + 'static> {
    key: &'static std::thread::LocalKey<Cell<T>>,
    prev: T,
}

impl<T: Copy + 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        self.key.with(|c| c.set(self.prev));
    }
}

fn set<T: Copy + 'static>(key: &'static std::thread::LocalKey<Cell<T>>, value: T) -> Restore<T> {
    let prev = key.with(|c| c.replace(value));
    Restore { key, prev }
}

/// Marks the operations traced until the guard drops as coming from the
/// user rule `who` (e.g. "custom_jvp").
pub fn in_user_rule(who: &'static str) -> Restore<Option<&'static str>> {
    set(&USER_RULE, Some(who))
}

/// The user rule whose operations are being traced now.
pub fn user_rule() -> Option<&'static str> {
    USER_RULE.with(Cell::get)
}

/// Marks a transpose rule call as transposing an equation of user rule `who`.
pub fn transposing(who: Option<&'static str>) -> Restore<Option<&'static str>> {
    set(&TRANSPOSING, who)
}

/// Marks the operations until the guard drops as the primal computation of
/// an operation of a higher JVP frame.
pub fn computing_inner_primal() -> Restore<usize> {
    let depth = INNER_PRIMAL.with(Cell::get);
    set(&INNER_PRIMAL, depth + 1)
}

/// Whether a JVP frame is computing a primal for a higher one: a custom
/// vjp met here is differentiated through its forward function, as JAX
/// does, since only the higher frame's tangents are transposed.
pub fn is_inner_primal() -> bool {
    INNER_PRIMAL.with(Cell::get) > 0
}

/// The panic message of a transpose rule asked of a nonlinear primitive:
/// the user's rule is named when the equation came from one.
pub(crate) fn nonlinear_message(prim: &str) -> String {
    match TRANSPOSING.with(Cell::get) {
        Some(who) => format!(
            "{who}: your derivative rule is not linear in its tangent: it applies `{prim}` to a value that \
             depends on the tangent. Reverse mode transposes the rule, so it may only add tangents, multiply \
             them by values computed from the primal inputs, and reshape, slice or sum them; compute anything \
             else from the primals"
        ),
        None => format!(
            "{prim} is not linear, so it has no transpose rule; a jvp rule applied it to a tangent \
             (an internal error: jvp rules must be linear in their tangents)"
        ),
    }
}
