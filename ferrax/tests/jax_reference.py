#!/usr/bin/env python3
"""Expected values for tests/jax_reference.rs, computed by JAX.

Run with a Python that has JAX (the table was made with JAX 0.10.2 on CPU):

    python tests/jax_reference.py

For every case of the Rust table this prints its group, name and JAX snippet,
then the result's shape, dtype and values as Rust f64 literals (`repr`, so
exact to the last bit). JAX runs in 64-bit mode, as ferrax always has 64-bit
types. Each snippet is a Python expression over the names imported below;
the Rust file repeats it above the case.
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.scipy.special as jss  # noqa: E402, F401 -- used by the snippets
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402, F401 -- used by the snippets

# (group, [(name, snippet), ...]) in the order of the Rust tests.
CASES = [
    (
        "nan",
        [
            ("relu_nan", "jax.nn.relu(jnp.array([jnp.nan, -1.0, 0.0, 2.0]))"),
            ("grad_relu_nan", "jax.grad(jax.nn.relu)(jnp.nan)"),
            ("grad_maximum_nan_first", "jnp.stack(jax.grad(jnp.maximum, (0, 1))(jnp.nan, 1.0))"),
            ("grad_maximum_nan_second", "jnp.stack(jax.grad(jnp.maximum, (0, 1))(1.0, jnp.nan))"),
            ("grad_minimum_nan_first", "jnp.stack(jax.grad(jnp.minimum, (0, 1))(jnp.nan, 1.0))"),
            ("grad_minimum_nan_second", "jnp.stack(jax.grad(jnp.minimum, (0, 1))(1.0, jnp.nan))"),
            ("grad_abs_nan", "jax.grad(jnp.abs)(jnp.nan)"),
            ("max_nan", "jnp.max(jnp.array([1.0, jnp.nan, 3.0]))"),
            ("min_nan", "jnp.min(jnp.array([1.0, jnp.nan, -3.0]))"),
            ("max_axes_nan", "jnp.max(jnp.array([[1.0, jnp.nan], [2.0, 3.0]]), axis=1)"),
            ("min_axes_nan", "jnp.min(jnp.array([[1.0, jnp.nan], [2.0, 3.0]]), axis=0)"),
            ("argmax_nan", "jnp.argmax(jnp.array([1.0, jnp.nan, 3.0, jnp.nan]))"),
            ("argmin_nan", "jnp.argmin(jnp.array([1.0, -jnp.inf, jnp.nan, jnp.nan]))"),
            ("sort_nan", "jnp.sort(jnp.array([3.0, jnp.nan, -jnp.inf, 1.0, jnp.nan, 0.0]))"),
            ("argsort_nan", "jnp.argsort(jnp.array([3.0, jnp.nan, -jnp.inf, 1.0, jnp.nan, 0.0]))"),
            ("cummax_nan", "lax.cummax(jnp.array([3.0, 1.0, jnp.nan, 4.0]), axis=0)"),
            ("cummin_nan", "lax.cummin(jnp.array([3.0, 1.0, 2.0, jnp.nan, 0.0]), axis=0)"),
            ("clip_nan", "jnp.clip(jnp.array([jnp.nan, -5.0, 5.0, 0.5]), -1.0, 1.0)"),
            (
                "clip_nan_bounds",
                "jnp.clip(jnp.array([0.5, 0.5]), jnp.array([jnp.nan, 0.0]), jnp.array([1.0, jnp.nan]))",
            ),
            ("grad_clip_nan", "jax.grad(lambda x: jnp.clip(x, -1.0, 1.0))(jnp.nan)"),
            ("softplus_nan", "jax.nn.softplus(jnp.array([jnp.nan, -jnp.inf, jnp.inf]))"),
            ("sigmoid_nan", "jax.nn.sigmoid(jnp.array([jnp.nan, -jnp.inf, jnp.inf]))"),
            (
                "logaddexp_nan",
                "jnp.logaddexp(jnp.array([jnp.nan, 1.0, jnp.nan, jnp.nan]), "
                "jnp.array([1.0, jnp.nan, jnp.inf, -jnp.inf]))",
            ),
            ("grad_softplus_nan", "jax.grad(jax.nn.softplus)(jnp.nan)"),
            ("grad_sigmoid_nan", "jax.grad(jax.nn.sigmoid)(jnp.nan)"),
            ("grad_logaddexp_nan", "jnp.stack(jax.grad(jnp.logaddexp, (0, 1))(jnp.nan, 1.0))"),
            (
                "softmax_neg_inf",
                "jax.nn.softmax(jnp.array([[-jnp.inf, 0.0, 0.0], [-jnp.inf, -jnp.inf, -jnp.inf]]), axis=1)",
            ),
            (
                "logsumexp_infs",
                "jax.nn.logsumexp(jnp.array([[-jnp.inf, -jnp.inf], [jnp.inf, 1.0], [jnp.inf, jnp.inf], "
                "[jnp.nan, jnp.inf]]), axis=1)",
            ),
        ],
    ),
    (
        "overflow",
        [
            ("sinh_f64", "jnp.sinh(jnp.array([709.9, -709.9, 710.0, -710.0, 710.4, -710.4, 711.0]))"),
            ("cosh_f64", "jnp.cosh(jnp.array([709.9, -709.9, 710.0, -710.0, 710.4, -710.4, 711.0]))"),
            ("grad_cosh_710", "jax.grad(lambda x: jnp.cosh(x).sum())(jnp.array([-710.0, 710.0]))"),
            # ferrax differs on purpose in these three (see the Rust file): it gives the correctly
            # rounded f32 sinh/cosh where JAX is 1.4e-6 high, and the true derivative 0 where
            # JAX's logaddexp rule gives e.
            ("sinh_f32", "jnp.sinh(jnp.array([89.0, -89.0, 89.4, 89.5], dtype=jnp.float32))"),
            ("cosh_f32", "jnp.cosh(jnp.array([89.0, -89.0, 89.4, 89.5], dtype=jnp.float32))"),
            ("softplus_800", "jax.nn.softplus(jnp.array([-800.0, 800.0]))"),
            ("grad_softplus_800", "jax.grad(lambda x: jax.nn.softplus(x).sum())(jnp.array([-800.0, 800.0]))"),
            ("log_sigmoid_800", "jax.nn.log_sigmoid(jnp.array([-800.0, 800.0]))"),
            ("grad_log_sigmoid_800", "jax.grad(lambda x: jax.nn.log_sigmoid(x).sum())(jnp.array([-800.0, 800.0]))"),
            ("sigmoid_800", "jax.nn.sigmoid(jnp.array([-800.0, 800.0]))"),
            ("grad_sigmoid_800", "jax.grad(lambda x: jax.nn.sigmoid(x).sum())(jnp.array([-800.0, 800.0]))"),
            ("grad_tanh_800", "jax.grad(lambda x: jnp.tanh(x).sum())(jnp.array([-800.0, 800.0]))"),
            ("logsumexp_800", "jax.nn.logsumexp(jnp.array([[800.0, 800.0], [-800.0, -800.0]]), axis=1)"),
            (
                "grad_logsumexp_800",
                "jax.grad(lambda x: jax.nn.logsumexp(x, axis=1).sum())(jnp.array([[800.0, 800.0], [-800.0, -800.0]]))",
            ),
            ("log_softmax_800", "jax.nn.log_softmax(jnp.array([800.0, -800.0, 0.0]))"),
            ("grad_log_softmax_800", "jax.grad(lambda x: jax.nn.log_softmax(x)[0])(jnp.array([800.0, -800.0, 0.0]))"),
            ("softmax_800", "jax.nn.softmax(jnp.array([800.0, -800.0, 0.0]))"),
            ("exp_f32", "jnp.exp(jnp.array([88.7, 89.0, 104.0, -104.0], dtype=jnp.float32))"),
            ("softplus_f32", "jax.nn.softplus(jnp.array([88.7, 89.0, 104.0, -104.0], dtype=jnp.float32))"),
            (
                "grad_softplus_f32",
                "jax.grad(lambda x: jax.nn.softplus(x).sum())(jnp.array([89.0, -104.0], dtype=jnp.float32))",
            ),
            ("sigmoid_f32", "jax.nn.sigmoid(jnp.array([88.7, 89.0, 104.0, -104.0], dtype=jnp.float32))"),
            ("log_sigmoid_f32", "jax.nn.log_sigmoid(jnp.array([88.7, 89.0, 104.0, -104.0], dtype=jnp.float32))"),
            (
                "logsumexp_f32",
                "jax.nn.logsumexp(jnp.array([[88.7, 89.0], [104.0, "
                "104.0], [-104.0, -104.0]], dtype=jnp.float32), axis=1)",
            ),
            (
                "logaddexp_large",
                "jnp.logaddexp(jnp.array([jnp.inf, -jnp.inf, jnp.inf, 800.0, -800.0, 1000.0]), "
                "jnp.array([1.0, 1.0, -jnp.inf, 800.0, -800.0, -1000.0]))",
            ),
            ("grad_logaddexp_large", "jnp.stack(jax.grad(jnp.logaddexp, (0, 1))(800.0, -800.0))"),
            ("grad_logaddexp_inf", "jnp.stack(jax.grad(jnp.logaddexp, (0, 1))(jnp.inf, 1.0))"),
        ],
    ),
    (
        "promotion",
        [
            ("f32_times_weak_float", "jnp.array([1.5, -2.0], dtype=jnp.float32) * 2.0"),
            ("f32_plus_weak_float_rounds_in_f32", "jnp.array([1.0], dtype=jnp.float32) + 0.1"),
            ("i64_times_weak_float", "jnp.array([3, -4]) * 2.0"),
            ("i64_times_weak_int", "jnp.array([3, -4]) * 2"),
            ("i64_plus_f32", "jnp.array([3, -4]) + jnp.array([0.5, 0.25], dtype=jnp.float32)"),
            ("bool_plus_weak_int", "jnp.array([True, False]) + 1"),
            ("bool_plus_weak_float", "jnp.array([True, False]) + 1.5"),
            ("f32_plus_f64", "jnp.array([1.5], dtype=jnp.float32) + jnp.array([0.1])"),
            ("i64_true_div", "jnp.array([7, -7]) / 2"),
            ("i64_true_div_by_zero", "jnp.array([1, -1, 0]) / jnp.array([3, 0, 0])"),
            ("int_floor_div", "jnp.array([7, -7, 7, -7, 0, 5, -5]) // jnp.array([2, 2, -2, -2, 0, 0, 0])"),
            ("int_floor_div_min_by_minus_one", "jnp.array([jnp.iinfo(jnp.int64).min]) // -1"),
            ("int_rem", "lax.rem(jnp.array([7, -7, 7, -7, 0, 5, -5]), jnp.array([2, 2, -2, -2, 0, 0, 0]))"),
            ("int_rem_min_by_minus_one", "lax.rem(jnp.array([jnp.iinfo(jnp.int64).min]), jnp.array([-1]))"),
            ("float_floor_div", "jnp.array([1.0, 5.0, -7.5, -5.0, 0.0]) // jnp.array([0.1, 0.0, 2.0, 0.0, 0.0])"),
            (
                "float_rem",
                "lax.rem(jnp.array([5.5, -5.5, 5.5, 1.0, 5.0, jnp.inf]), jnp.array([2.0, 2.0, -2.0, 0.1, 0.0, 2.0]))",
            ),
            ("sum_bool", "jnp.sum(jnp.array([True, False, True]))"),
            ("mean_int", "jnp.mean(jnp.array([1, 2, 4]))"),
            ("sin_int", "jnp.sin(jnp.array([0, 1, 2]))"),
            (
                "grad_f32_through_f64",
                "jax.grad(lambda x: (x * jnp.float64(2.0)).sum())(jnp.array([1.0, 2.0], dtype=jnp.float32))",
            ),
        ],
    ),
    (
        "indices",
        [
            ("take_fill_f64", "jnp.take(jnp.array([10.0, 20.0, 30.0, 40.0, 50.0]), jnp.array([-1, 5, -6, 2]))"),
            ("take_fill_i64", "jnp.take(jnp.array([10, 20, 30, 40, 50]), jnp.array([-1, 5, -6, 2]))"),
            (
                "take_clip",
                # ferrax counts a negative index from the end before clamping (as x[i] indexing
                # does); jnp.take's own clip mode would clamp -1 to 0.
                'jnp.take(jnp.array([10.0, 20.0, 30.0, 40.0, 50.0]), jnp.array([4, 5, -1, 2]), mode="clip")',
            ),
            (
                "take_axis1_fill",
                "jnp.take(jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), jnp.array([2, -4, -3]), axis=1)",
            ),
            ("scatter_add_drops", "jnp.zeros(5).at[jnp.array([-1, 5, -6, 2, 2])].add(1.0)"),
            (
                "grad_take_fill",
                "jax.grad(lambda x: jnp.take(x, jnp.array([-1, 5, -6, "
                "2])).sum())(jnp.array([10.0, 20.0, 30.0, 40.0, 50.0]))",
            ),
            (
                "grad_take_clip",
                'jax.grad(lambda x: jnp.take(x, jnp.array([4, 5, -1, 2]), mode="clip").sum())'
                "(jnp.array([10.0, 20.0, 30.0, 40.0, 50.0]))",
            ),
            (
                "take_along_axis_fill",
                "jnp.take_along_axis(jnp.array([[1.0, 2.0, 3.0], [4.0, "
                "5.0, 6.0]]), jnp.array([[0, 3], [-1, 1]]), axis=1)",
            ),
            (
                "grad_take_along_axis_fill",
                "jax.grad(lambda x: jnp.take_along_axis(x, jnp.array([[0, 3], [-1, 1]]), axis=1).sum())"
                "(jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))",
            ),
            (
                "vmap_take_batched_indices",
                "jax.vmap(jnp.take)(jnp.array([[1.0, 2.0, 3.0], [4.0, "
                "5.0, 6.0]]), jnp.array([[3, -1, -4], [3, 0, -3]]))",
            ),
            (
                "vmap_take_shared_indices",
                "jax.vmap(lambda x: jnp.take(x, jnp.array([3, -1, "
                "-4])))(jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))",
            ),
            (
                "vmap_take_i64",
                "jax.vmap(jnp.take)(jnp.array([[1, 2, 3], [4, 5, 6]]), jnp.array([[3, -1, -4], [3, 0, -3]]))",
            ),
            (
                "vmap_scatter_add_drops",
                "jax.vmap(lambda i: jnp.zeros(3).at[i].add(1.0))(jnp.array([[3, -1], [-4, 0]]))",
            ),
            ("one_hot_out_of_range", "jax.nn.one_hot(jnp.array([0, 2, -1, 3]), 3)"),
        ],
    ),
    (
        "kinks",
        [
            ("grad_abs_zero", "jnp.stack([jax.grad(jnp.abs)(0.0), jax.grad(jnp.abs)(-0.0)])"),
            ("grad_relu_zero", "jax.grad(jax.nn.relu)(0.0)"),
            ("grad_maximum_tie", "jnp.stack(jax.grad(jnp.maximum, (0, 1))(1.0, 1.0))"),
            ("grad_minimum_tie", "jnp.stack(jax.grad(jnp.minimum, (0, 1))(1.0, 1.0))"),
            ("grad_max_tie", "jax.grad(jnp.max)(jnp.array([1.0, 3.0, 3.0]))"),
            ("grad_min_tie", "jax.grad(jnp.min)(jnp.array([-1.0, 3.0, -1.0, -1.0]))"),
            ("grad_power_0_0", "jnp.stack(jax.grad(jnp.power, (0, 1))(0.0, 0.0))"),
            ("grad_power_0_2", "jnp.stack(jax.grad(jnp.power, (0, 1))(0.0, 2.0))"),
            ("grad_power_0_half", "jnp.stack(jax.grad(jnp.power, (0, 1))(0.0, 0.5))"),
            ("grad_power_neg2_3", "jnp.stack(jax.grad(jnp.power, (0, 1))(-2.0, 3.0))"),
            ("grad_powf_at_zero", "jnp.stack([jax.grad(lambda x: x ** p)(0.0) for p in (0.0, 0.5, 1.0, 2.0)])"),
            ("grad_powi_at_zero", "jnp.stack([jax.grad(lambda x: x ** n)(0.0) for n in (0, 1, 2, -1)])"),
            ("grad_arctan2_origin", "jnp.stack(jax.grad(jnp.arctan2, (0, 1))(0.0, 0.0))"),
            ("grad_sqrt_zero", "jax.grad(jnp.sqrt)(0.0)"),
            ("grad_where_sqrt_zero", "jax.grad(lambda x: jnp.where(x > 0.0, jnp.sqrt(x), 0.0))(0.0)"),
            (
                "grad_step_functions",
                "jnp.stack([jax.grad(f)(1.5) for f in (jnp.round, jnp.floor, jnp.ceil, jnp.trunc, jnp.sign)])",
            ),
            ("grad_sign_zero", "jax.grad(jnp.sign)(0.0)"),
            ("grad_norm1_kink", "jax.grad(lambda x: jnp.linalg.vector_norm(x, ord=1))(jnp.array([0.0, 1.0, -2.0]))"),
            (
                "grad_norm_inf_ties",
                "jax.grad(lambda x: jnp.linalg.vector_norm(x, ord=jnp.inf))(jnp.array([2.0, 1.0, -2.0]))",
            ),
            (
                "grad_norm_neg_inf_ties",
                "jax.grad(lambda x: jnp.linalg.vector_norm(x, ord=-jnp.inf))(jnp.array([1.0, -1.0, 2.0]))",
            ),
            # ferrax deliberately differs here: its norm has derivative 0 at the zero vector.
            ("grad_norm2_zero", "jax.grad(jnp.linalg.norm)(jnp.zeros(3))"),
            (
                "grad_clip_bounds",
                "jax.grad(lambda x: jnp.clip(x, -1.0, 1.0).sum())(jnp.array([-1.0, 1.0, 0.0, 2.0, -2.0]))",
            ),
            ("grad_sort_ties", "jax.grad(lambda x: jnp.sort(x)[0])(jnp.array([2.0, 1.0, 1.0]))"),
            ("grad_cummax_ties", "jax.grad(lambda x: lax.cummax(x, axis=0).sum())(jnp.array([1.0, 1.0, 1.0, 0.0]))"),
            ("grad_cumprod_zero", "jax.grad(lambda x: jnp.cumprod(x).sum())(jnp.array([1.0, 0.0, 2.0, 3.0]))"),
            ("grad_prod_one_zero", "jax.grad(jnp.prod)(jnp.array([0.0, 2.0, 3.0]))"),
            ("grad_prod_two_zeros", "jax.grad(jnp.prod)(jnp.array([0.0, 0.0, 3.0]))"),
            ("grad_logaddexp_tie", "jnp.stack(jax.grad(jnp.logaddexp, (0, 1))(1.0, 1.0))"),
            ("grad_logaddexp_neg_inf_tie", "jnp.stack(jax.grad(jnp.logaddexp, (0, 1))(-jnp.inf, -jnp.inf))"),
            ("grad_std_constant", "jax.grad(jnp.std)(jnp.array([2.0, 2.0, 2.0]))"),
            ("grad_var_constant", "jax.grad(jnp.var)(jnp.array([2.0, 2.0, 2.0]))"),
        ],
    ),
    (
        "new_operations",
        [
            (
                "erf",
                "jss.erf(jnp.array([-jnp.inf, -3.0, -1.0, -0.5, 0.0, 1e-10, 0.5, 1.0, 3.0, 6.0, jnp.inf, jnp.nan]))",
            ),
            ("erfc", "jss.erfc(jnp.array([-jnp.inf, -1.0, 0.0, 0.5, 1.0, 3.0, 10.0, 27.0, jnp.inf, jnp.nan]))"),
            (
                "erfinv",
                "jss.erfinv(jnp.array([-1.0, -0.5, 0.0, 1e-10, 0.5, 0.9, 0.999, 1.0, 1.5, -2.0, jnp.nan]))",
            ),
            ("arcsin", "jnp.arcsin(jnp.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, jnp.nan]))"),
            ("arccos", "jnp.arccos(jnp.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, jnp.nan]))"),
            ("arctan", "jnp.arctan(jnp.array([-jnp.inf, -1.0, 0.0, 1.0, 1e300, jnp.inf, jnp.nan]))"),
            ("arcsinh", "jnp.arcsinh(jnp.array([-1e300, -1.0, 1e-300, 0.0, 1.0, 1e300, jnp.inf]))"),
            ("arccosh", "jnp.arccosh(jnp.array([0.5, 1.0, 2.0, 1e300, jnp.inf]))"),
            ("arctanh", "jnp.arctanh(jnp.array([-2.0, -1.0, -0.5, 0.0, 1e-10, 0.5, 1.0, 2.0]))"),
            (
                "round_half_even",
                "jnp.round(jnp.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999999999999996, 4503599627370497.0]))",
            ),
            ("round_half_even_f32", "jnp.round(jnp.array([0.5, 1.5, 2.5, -2.5], dtype=jnp.float32))"),
            ("floor", "jnp.floor(jnp.array([-1.5, -0.5, -0.0, 0.5, 1.5, -2.0]))"),
            ("ceil", "jnp.ceil(jnp.array([-1.5, -0.5, -0.0, 0.5, 1.5, -2.0]))"),
            ("trunc", "jnp.trunc(jnp.array([-1.5, -0.5, -0.0, 0.5, 1.5, -2.0]))"),
            ("sign", "jnp.sign(jnp.array([-2.0, -0.0, 0.0, 3.0, jnp.nan]))"),
            (
                "gelu_exact",
                "jax.nn.gelu(jnp.array([-6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0]), approximate=False)",
            ),
            ("gelu_tanh", "jax.nn.gelu(jnp.array([-6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0]))"),
            ("log2_powers_of_two", "jnp.log2(jnp.array([8.0, 1024.0, 0.5, 1.0]))"),
            ("log10_powers_of_ten", "jnp.log10(jnp.array([1000.0, 1e-3, 100.0, 1.0]))"),
            ("exp2_integers", "jnp.exp2(jnp.array([3.0, -1.0, 10.0, 0.0]))"),
            ("log2_log10_exp2", "jnp.array([jnp.log2(10.0), jnp.log10(2.0), jnp.exp2(0.5), jnp.exp2(-0.5)])"),
            (
                "expm1_log1p",
                "jnp.array([jnp.expm1(1e-10), jnp.expm1(-1e-10), jnp.log1p(1e-10), jnp.log1p(-1.0), jnp.log1p(-2.0)])",
            ),
            (
                "arctan2_quadrants",
                "jnp.arctan2(jnp.array([1.0, 1.0, -1.0, -1.0, 0.0, -0.0, 0.0, 1.0, jnp.inf]), "
                "jnp.array([1.0, -1.0, -1.0, 1.0, -1.0, -1.0, 0.0, 0.0, jnp.inf]))",
            ),
            (
                "power",
                "jnp.power(jnp.array([-2.0, 0.0, 2.0, -8.0, 0.0]), jnp.array([3.0, -1.0, 0.5, 1.0 / 3.0, 0.0]))",
            ),
            ("integer_power_negative", "jnp.array([-2.0, 0.0, 4.0]) ** -2"),
            ("einsum_matmul", 'jnp.einsum("ij,jk->ik", jnp.arange(6.0).reshape(2, 3), jnp.arange(6.0).reshape(3, 2))'),
            ("einsum_diagonal", 'jnp.einsum("ii->i", jnp.arange(9.0).reshape(3, 3))'),
            ("einsum_trace", 'jnp.einsum("ii", jnp.arange(9.0).reshape(3, 3))'),
            (
                "einsum_batch_matmul",
                'jnp.einsum("bij,bjk->bik", jnp.arange(12.0).reshape(2, 2, 3), jnp.arange(12.0).reshape(2, 3, 2))',
            ),
            ("einsum_outer", 'jnp.einsum("i,j->ij", jnp.arange(3.0), jnp.arange(2.0) + 1.0)'),
            (
                "einsum_ellipsis",
                'jnp.einsum("...ij,...jk", jnp.arange(12.0).reshape(2, 2, 3), jnp.arange(6.0).reshape(3, 2))',
            ),
            ("einsum_transpose", 'jnp.einsum("ij->ji", jnp.arange(6.0).reshape(2, 3))'),
            ("einsum_implicit_sorted", 'jnp.einsum("ji", jnp.arange(6.0).reshape(2, 3))'),
            ("einsum_repeated_then_sum", 'jnp.einsum("iij->j", jnp.arange(12.0).reshape(2, 2, 3))'),
            ("diagonal_above", "jnp.diagonal(jnp.arange(12.0).reshape(3, 4), 1)"),
            ("diagonal_below", "jnp.diagonal(jnp.arange(12.0).reshape(3, 4), -1)"),
            ("diagonal_outside", "jnp.diagonal(jnp.arange(12.0).reshape(3, 4), 4)"),
            ("diagonal_batched", "jnp.diagonal(jnp.arange(18.0).reshape(2, 3, 3), 1, axis1=-2, axis2=-1)"),
            ("trace_above", "jnp.trace(jnp.arange(12.0).reshape(3, 4), 1)"),
            ("trace_batched_below", "jnp.trace(jnp.arange(18.0).reshape(2, 3, 3), -1, axis1=-2, axis2=-1)"),
            ("tril_below", "jnp.tril(jnp.arange(12.0).reshape(3, 4), -1)"),
            ("triu_above", "jnp.triu(jnp.arange(12.0).reshape(3, 4), 1)"),
            ("triu_batched", "jnp.triu(jnp.arange(18.0).reshape(2, 3, 3), 1)"),
            ("diag_vector_above", "jnp.diag(jnp.array([1.0, 2.0]), 1)"),
            ("diag_vector_below", "jnp.diag(jnp.array([1.0, 2.0]), -2)"),
            ("diag_matrix", "jnp.diag(jnp.arange(12.0).reshape(3, 4), 2)"),
            ("roll_negative", "jnp.roll(jnp.arange(5.0), -2)"),
            ("roll_large", "jnp.roll(jnp.arange(5.0), 12)"),
            ("roll_large_negative", "jnp.roll(jnp.arange(5.0), -12)"),
            ("roll_axis1", "jnp.roll(jnp.arange(6.0).reshape(2, 3), 1, axis=1)"),
            ("tile", "jnp.tile(jnp.array([[1.0, 2.0]]), (2, 3))"),
            ("tile_fewer_reps", "jnp.tile(jnp.array([[1.0, 2.0]]), (2,))"),
            ("tile_more_reps", "jnp.tile(jnp.array([1.0, 2.0]), (2, 2))"),
            ("repeat_axis1", "jnp.repeat(jnp.array([[1.0, 2.0], [3.0, 4.0]]), 2, axis=1)"),
            ("repeat_counts", "jnp.repeat(jnp.array([1.0, 2.0, 3.0]), jnp.array([2, 0, 1]))"),
            ("split_sizes", "jnp.array([p.shape[0] for p in jnp.split(jnp.arange(6.0), 3)])"),
            ("split_at_indices_sizes", "jnp.array([p.shape[0] for p in jnp.split(jnp.arange(6.0), [1, 4])])"),
            ("split_at_ends_sizes", "jnp.array([p.shape[0] for p in jnp.split(jnp.arange(6.0), [0, 6])])"),
            ("split_at_indices_axis1", "jnp.split(jnp.arange(6.0).reshape(2, 3), [1], axis=1)[1]"),
            ("top_k_ties_values", "lax.top_k(jnp.array([1.0, 3.0, 3.0, 2.0, 3.0]), 2)[0]"),
            ("top_k_ties_indices", "lax.top_k(jnp.array([1.0, 3.0, 3.0, 2.0, 3.0]), 2)[1]"),
            ("top_k_nan_values", "lax.top_k(jnp.array([1.0, jnp.nan, 3.0]), 2)[0]"),
            ("top_k_nan_indices", "lax.top_k(jnp.array([1.0, jnp.nan, 3.0]), 2)[1]"),
            ("argsort_descending_ties", "jnp.argsort(jnp.array([1.0, 3.0, 3.0, 2.0]), descending=True)"),
            (
                "vector_norm_ords",
                "jnp.stack([jnp.linalg.vector_norm(jnp.array([3.0, -4.0, 0.0, 1.0]), ord=o) "
                "for o in (0, 1, 2, 3, jnp.inf, -jnp.inf)])",
            ),
            (
                "vector_norm_other_ords",
                "jnp.stack([jnp.linalg.vector_norm(jnp.array([3.0, -4.0, 1.0]), ord=o) for o in (-1, -2, 0.5)])",
            ),
            (
                "vector_norm_axis_keepdims",
                "jnp.linalg.vector_norm(jnp.array([[3.0, -4.0], [0.0, 1.0]]), ord=1, axis=1, keepdims=True)",
            ),
            (
                "matrix_norms",
                "jnp.stack([jnp.linalg.matrix_norm(jnp.array([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]]), ord=o) "
                'for o in ("fro", 1, jnp.inf, -1, -jnp.inf)])',
            ),
            (
                "matrix_norm_batched_keepdims",
                "jnp.linalg.matrix_norm(jnp.arange(12.0).reshape(3, 2, 2) - 5.0, ord=1, keepdims=True)",
            ),
            ("var_ddof1", "jnp.var(jnp.array([1.0, 2.0, 4.0, 7.0]), ddof=1)"),
            ("std_ddof1_axis0", "jnp.std(jnp.array([[1.0, 2.0], [4.0, 7.0]]), axis=0, ddof=1)"),
            ("var_ddof_n", "jnp.var(jnp.array([1.0, 2.0, 4.0, 7.0]), ddof=4)"),
            (
                "logaddexp_values",
                "jnp.logaddexp(jnp.array([jnp.inf, -jnp.inf, 1000.0, 0.0, -jnp.inf, 1.0]), "
                "jnp.array([jnp.inf, -jnp.inf, 1000.0, 0.0, 5.0, 2.0]))",
            ),
        ],
    ),
    (
        "empty_shapes",
        [
            ("sum_empty", "jnp.sum(jnp.zeros((0,)))"),
            ("sum_axis_empty", "jnp.sum(jnp.zeros((0, 3)), axis=0)"),
            ("sum_axis_of_empty_rows", "jnp.sum(jnp.zeros((0, 3)), axis=1)"),
            ("prod_empty", "jnp.prod(jnp.zeros((0,)))"),
            ("mean_empty", "jnp.mean(jnp.zeros((0,)))"),
            ("mean_axis_empty", "jnp.mean(jnp.zeros((2, 0)), axis=1)"),
            ("var_empty", "jnp.var(jnp.zeros((0,)))"),
            ("max_axis_of_empty_rows", "jnp.max(jnp.zeros((0, 3)), axis=1)"),
            ("logsumexp_empty", "jax.nn.logsumexp(jnp.zeros((0,)))"),
            ("norm_empty", "jnp.linalg.norm(jnp.zeros((0,)))"),
            ("cumsum_empty", "jnp.cumsum(jnp.zeros((0,)))"),
            ("cumsum_empty_axis", "jnp.cumsum(jnp.zeros((2, 0)), axis=1)"),
            ("softmax_empty", "jax.nn.softmax(jnp.zeros((0,)))"),
            ("sort_empty", "jnp.sort(jnp.zeros((0,)))"),
            ("matmul_empty_inner", "jnp.zeros((2, 0)) @ jnp.zeros((0, 3))"),
            ("einsum_empty_inner", 'jnp.einsum("ij,jk->ik", jnp.zeros((2, 0)), jnp.zeros((0, 3)))'),
            ("concat_with_empty", "jnp.concatenate([jnp.zeros((0, 2)), jnp.ones((1, 2))])"),
            ("vmap_matmul_empty_batch", "jax.vmap(lambda a: a @ jnp.ones((3, 2)))(jnp.zeros((0, 4, 3)))"),
            ("vmap_sum_empty_batch", "jax.vmap(jnp.sum)(jnp.zeros((0, 3)))"),
            ("grad_sum_empty", "jax.grad(jnp.sum)(jnp.zeros((0,)))"),
            ("jacrev_empty_output", "jax.jacrev(lambda x: x[:0] * 2.0)(jnp.ones(3))"),
            ("jacfwd_empty_input", "jax.jacfwd(lambda x: jnp.stack([x.sum(), (x**2).sum()]))(jnp.zeros((0,)))"),
        ],
    ),
]

# Snippets where JAX raises; ferrax is checked to panic too.
RAISES = [
    ("empty_shapes", "argmax_empty", "jnp.argmax(jnp.zeros((0,)))"),
]

# Cases the Rust table does not assert JAX's value for (printed for reference).
NOT_ASSERTED = {
    "grad_norm2_zero": "ferrax's norm has derivative 0 at the zero vector (documented on Tensor::norm); JAX gives NaN",
}

DTYPES = {"float32": "F32", "float64": "F64", "int64": "I64", "int32": "I64 (JAX: int32)", "bool": "Bool"}


def rust_f64(v):
    """A Rust f64 literal that parses to exactly `v`."""
    v = float(v)
    if np.isnan(v):
        return "f64::NAN"
    if np.isinf(v):
        return "f64::INFINITY" if v > 0 else "f64::NEG_INFINITY"
    return repr(v).replace("e+", "e")


def evaluate(snippet):
    return np.asarray(eval(snippet))  # noqa: S307 -- the snippets are this file's own


def main():
    print(f"# JAX {jax.__version__}, jax_enable_x64 = {jax.config.jax_enable_x64}")
    for group, cases in CASES:
        for name, snippet in cases:
            out = evaluate(snippet)
            values = ", ".join(rust_f64(v) for v in out.reshape(-1).astype(np.float64))
            print(f"[{group}] {name}")
            print(f"  jax:   {snippet}")
            print(f"  shape: {list(out.shape)}  dtype: {DTYPES[str(out.dtype)]}")
            print(f"  want:  &[{values}]")
            if name in NOT_ASSERTED:
                print(f"  note:  not asserted: {NOT_ASSERTED[name]}")
    for group, name, snippet in RAISES:
        try:
            evaluate(snippet)
            outcome = "no error (update the Rust test)"
        except Exception as e:  # noqa: BLE001 -- any error is the expected outcome
            outcome = f"{type(e).__name__}: {e}".splitlines()[0]
        print(f"[{group}] {name}")
        print(f"  jax:   {snippet}")
        print(f"  raises {outcome}")


if __name__ == "__main__":
    main()
