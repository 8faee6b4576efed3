//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses its own subset

use ferrax::prelude::*;

pub mod gpu;

/// The message of the panic `f` raises (without printing it).
pub fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let err = std::panic::catch_unwind(f).expect_err("expected a panic");
    std::panic::set_hook(prev);
    err.downcast_ref::<String>().cloned().or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string())).unwrap()
}

/// Same shape, and every element within `tol · (1 + |expected|)` (NaN matches NaN).
#[track_caller]
pub fn assert_close(got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{got:?} vs {want:?}");
    assert_slices_close(&got.to_vec::<f64>(), &want.to_vec::<f64>(), tol);
}

/// [`assert_close`] for plain numbers.
#[track_caller]
pub fn assert_slices_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (x, y) in got.iter().zip(want) {
        let ok = (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= tol * (1.0 + y.abs());
        assert!(ok, "{got:?} vs {want:?}");
    }
}
