//! What the GPU tests share: whether a GPU is here, and comparing a GPU's
//! results with the CPU's.

use ferrax::prelude::*;

/// Whether the environment variable `var` is set to `1`.
pub fn require(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// The first GPU; `None` (the test skips, saying why) where there is none,
/// and a panic instead when `FERRAX_REQUIRE_GPU=1`.
#[cfg(feature = "cuda")]
pub fn gpu_or_skip() -> Option<Device> {
    match ferrax::cuda::device_count() {
        Ok(n) if n > 0 => Some(Device::Cuda(0)),
        result => {
            let why = match result {
                Err(e) => e.to_string(),
                Ok(_) => "the driver reports no GPU".to_string(),
            };
            assert!(!require("FERRAX_REQUIRE_GPU"), "FERRAX_REQUIRE_GPU=1 but no GPU can be used: {why}");
            eprintln!("skipped: no GPU ({why})");
            None
        }
    }
}

/// Without the `cuda` feature there is never a GPU; with
/// `FERRAX_REQUIRE_GPU=1` that is a failure.
#[cfg(not(feature = "cuda"))]
pub fn gpu_or_skip() -> Option<Device> {
    assert!(!require("FERRAX_REQUIRE_GPU"), "FERRAX_REQUIRE_GPU=1 but ferrax was built without the cuda feature");
    None
}

/// Same shape and dtype, and every element within `rtol · (|want| + mean |want|)`
/// (NaN matching NaN), or a panic naming `what` and the first difference.
#[track_caller]
pub fn assert_close(got: &Tensor, want: &Tensor, rtol: f64, what: &str) {
    assert_eq!((got.shape(), got.dtype()), (want.shape(), want.dtype()), "{what}: shape or dtype differs");
    let (a, b) = (got.to_dtype(DType::F64).to_vec::<f64>(), want.to_dtype(DType::F64).to_vec::<f64>());
    let scale = b.iter().map(|v| v.abs()).sum::<f64>() / b.len().max(1) as f64;
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let ok = (x - y).abs() <= rtol * (y.abs() + scale) || (x.is_nan() && y.is_nan()) || x == y;
        assert!(ok, "{what}: element {i} is {x} on the GPU and {y} on the CPU (rtol {rtol:e})");
    }
}
