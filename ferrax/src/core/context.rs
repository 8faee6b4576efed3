//! Thread-local context that rules and traces consult: whose code is
//! running (a user's derivative rule, or the primal computation of an inner
//! JVP), so errors can name the user's rule and custom rules can do what
//! JAX does in each case.

use std::cell::{Cell, RefCell};

thread_local! {
    /// The user rule whose operations are being traced, if any.
    static USER_RULE: Cell<Option<&'static str>> = const { Cell::new(None) };
    /// The user rule an equation being transposed came from, if any.
    static TRANSPOSING: Cell<Option<&'static str>> = const { Cell::new(None) };
    /// The levels of the JVP frames that are computing the primal of one of
    /// their operations, innermost last.
    static INNER_PRIMAL: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// The level of the JVP frame whose rule is being applied.
    static RULE_LEVEL: Cell<Option<usize>> = const { Cell::new(None) };
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
/// an operation of the JVP frame at `level`.
pub fn computing_primal_of(level: usize) -> PrimalGuard {
    INNER_PRIMAL.with(|s| s.borrow_mut().push(level));
    PrimalGuard(())
}

/// Ends a [`computing_primal_of`] scope when dropped, also on panic.
pub struct PrimalGuard(());

impl Drop for PrimalGuard {
    fn drop(&mut self) {
        INNER_PRIMAL.with(|s| s.borrow_mut().pop());
    }
}

/// Marks the JVP rule applied until the guard drops as applied by the frame at `level`.
pub fn applying_rule_at(level: usize) -> Restore<Option<usize>> {
    set(&RULE_LEVEL, Some(level))
}

/// Whether the JVP frame applying the current rule is computing a primal
/// for a higher JVP frame — forward over reverse (`hessian`, `hvp`, grad of
/// grad). A custom vjp met there is differentiated through its forward
/// function, as JAX does, since only the higher frame's tangents are
/// transposed. Frames started inside that computation (a `jvp` a rule
/// calls) sit above it and are not affected.
pub fn is_inner_primal() -> bool {
    let Some(rule) = RULE_LEVEL.with(Cell::get) else { return false };
    INNER_PRIMAL.with(|s| s.borrow().iter().any(|&level| level > rule))
}

/// The panic message of a transpose rule that finds the tangent where a
/// constant must be (`x * t` with both depending on the tangent, `c / t`):
/// the user's rule is named when the equation came from one.
pub fn not_linear_in_operand(prim: &str, what: &str) -> String {
    match TRANSPOSING.with(Cell::get) {
        Some(who) => format!(
            "{who}: your derivative rule is not linear in its tangent: it applies `{prim}` with {what} \
             depending on the tangent. Reverse mode transposes the rule, so it may only add tangents, multiply \
             them by values computed from the primal inputs, and reshape, slice or sum them"
        ),
        None => format!(
            "{prim}: {what} depends on the tangent, so the program being transposed is not linear (an internal error)"
        ),
    }
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
