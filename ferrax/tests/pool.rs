//! The buffer pool seen from the public API: a dropped array's buffer is
//! kept, the next operation of its size class takes it, and `trim` frees
//! what is kept. (Its own test binary: the pool is process-wide.)

use ferrax::array::pool;
use ferrax::prelude::*;

#[test]
fn dropped_arrays_are_reused_and_trimmed() {
    pool::trim();
    let x = Tensor::randn(&[1 << 16], DType::F32, 0); // 256 KiB: pooled
    let y = x.exp();
    assert_eq!(pool::kept_bytes(), 0, "live arrays are not kept");
    drop(y);
    let kept = pool::kept_bytes();
    assert!(kept >= 4 << 16, "the dropped result is kept ({kept} bytes)");
    let z = x.tanh();
    assert_eq!(pool::kept_bytes(), kept - (4 << 16), "the next result of its class reuses it");
    // The reused memory holds the new values, not the old ones.
    let want: Vec<f32> = x.to_vec::<f32>().iter().map(|v| v.tanh()).collect();
    let got = z.to_vec::<f32>();
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 2.0 * f32::EPSILON));
    drop(z);
    let small = Tensor::randn(&[100], DType::F32, 1).exp();
    drop(small);
    assert_eq!(pool::kept_bytes(), kept, "small buffers are not kept");
    assert_eq!(pool::trim(), kept);
    assert_eq!(pool::kept_bytes(), 0);
}
