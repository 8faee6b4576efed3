//! Training tools: schedules (against PyTorch's), clipping, weight-decay
//! masks, parameter averages, gradient accumulation and the data loader.

mod common;

use common::assert_slices_close;
use ferrax::data::{Dataset, Loader};
use ferrax::nn::{Activation, Mlp};
use ferrax::optim::{clip_grad_norm, clip_grad_value, decay_mask, decay_weights, ema_update, Accumulator, Schedule};
use ferrax::prelude::*;

#[test]
fn one_cycle_follows_pytorch() {
    // o = SGD([zeros(1)], lr=1); s = OneCycleLR(o, max_lr=1.0, total_steps=10); the lr of each step
    let want = [
        0.040000000000000036,
        0.52,
        1.0,
        0.9504846320134737,
        0.8117456539497631,
        0.6112620219362893,
        0.38874197806371075,
        0.18825834605023697,
        0.049519367986526286,
        4e-06,
    ];
    let s = Schedule::one_cycle(1.0, 10);
    let got: Vec<f64> = (0..10).map(|i| s.at(i)).collect();
    assert_slices_close(&got, &want, 1e-12);
}

#[test]
fn step_and_cosine_schedules() {
    let s = Schedule::Step { lr: 0.1, every: 3, gamma: 0.5 };
    assert_eq!([s.at(0), s.at(2), s.at(3), s.at(7)], [0.1, 0.1, 0.05, 0.025]);
    let c = Schedule::Cosine { peak: 2.0, warmup: 4, total: 14, floor: 0.2 };
    assert_eq!([c.at(0), c.at(2), c.at(4)], [0.0, 1.0, 2.0]);
    assert!((c.at(9) - 1.1).abs() < 1e-12 && (c.at(14) - 0.2).abs() < 1e-12 && c.at(100) == 0.2);
    assert_eq!(Schedule::Constant(0.3).at(1000), 0.3);
}

#[test]
fn clipping_by_global_norm_and_by_value() {
    let g = (Tensor::from_vec(vec![3.0, 4.0], &[2]), Tensor::from_vec(vec![12.0], &[1]));
    let (clipped, norm) = clip_grad_norm(&g, 1.0);
    assert_eq!(norm, 13.0);
    let scale = 1.0 / (13.0 + 1e-6); // PyTorch's clip_grad_norm_ divides by norm + 1e-6
    assert_slices_close(&clipped.0.to_vec::<f64>(), &[3.0 * scale, 4.0 * scale], 1e-15);
    let (kept, _) = clip_grad_norm(&g, 20.0);
    assert_eq!(kept.1.to_vec::<f64>(), vec![12.0]);
    assert_eq!(clip_grad_value(&g, 3.5).0.to_vec::<f64>(), vec![3.0, 3.5]);
}

#[test]
fn weight_decay_skips_biases() {
    let m = Mlp::new(&[3, 4, 2], Activation::Relu, DType::F64, 0);
    let mask = decay_mask(&m);
    assert_eq!(mask, vec![true, false, true, false], "{:?}", m.leaf_paths());
    let decayed = decay_weights(&m, 0.1, 0.5, &mask);
    assert_slices_close(&decayed.layers[0].w.to_vec::<f64>(), &(&m.layers[0].w * 0.95).to_vec::<f64>(), 1e-15);
    assert_eq!(decayed.layers[0].b.to_vec::<f64>(), m.layers[0].b.to_vec::<f64>());
}

#[test]
fn an_average_of_parameters_moves_towards_them() {
    let avg = Tensor::zeros(&[2], DType::F64);
    let p = Tensor::from_vec(vec![1.0, -2.0], &[2]);
    let a = ema_update(&ema_update(&avg, &p, 0.9), &p, 0.9);
    assert_slices_close(&a.to_vec::<f64>(), &[0.19, -0.38], 1e-15);
}

#[test]
fn accumulated_micro_batches_give_the_full_batch_gradient() {
    let m = Mlp::new(&[3, 5, 2], Activation::Tanh, DType::F64, 1);
    let x = Tensor::randn(&[8, 3], DType::F64, 2);
    let y = Tensor::randn(&[8, 2], DType::F64, 3);
    let loss = |m: &Mlp, x: &Tensor, y: &Tensor| (m.forward(x) - y).square().mean();
    let full = grad(|m: &Mlp| loss(m, &x, &y))(&m);
    let mut acc = Accumulator::new();
    for i in 0..4 {
        let (xb, yb) = (x.slice(0, 2 * i, 2 * i + 2), y.slice(0, 2 * i, 2 * i + 2));
        acc.add(&grad(|m: &Mlp| loss(m, &xb, &yb))(&m));
    }
    assert_eq!(acc.count(), 4);
    let mean = acc.mean().unwrap();
    for (a, b) in mean.leaves().iter().zip(full.leaves()) {
        assert_slices_close(&a.to_vec::<f64>(), &b.to_vec::<f64>(), 1e-14);
    }
    assert!(acc.mean().is_none(), "mean starts a new accumulation");
}

#[test]
fn the_loader_visits_every_example_once_per_epoch_in_a_new_order() {
    let data = Dataset { x: Tensor::arange(10, DType::F64).reshape(&[10, 1]), y: Tensor::arange(10, DType::I64) };
    let loader = Loader::new(data.clone(), 3).shuffle(5);
    assert_eq!(loader.batches_per_epoch(), 4);
    let order = |e: usize| -> Vec<i64> { loader.epoch(e).flat_map(|b| b.y.to_vec::<i64>()).collect() };
    let (a, b) = (order(0), order(1));
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..10).collect::<Vec<i64>>());
    assert_ne!(a, b, "each epoch has its own order");
    assert_eq!(a, order(0), "and the same epoch the same order");
    // x and y stay paired.
    for batch in loader.epoch(2) {
        assert_eq!(batch.x.reshape(&[batch.len()]).to_vec::<f64>(), batch.y.to_vec::<f64>());
    }
    let dropped = Loader::new(data.clone(), 3).drop_last(true);
    assert_eq!(dropped.epoch(0).map(|b| b.len()).collect::<Vec<_>>(), vec![3, 3, 3]);
    // Stopping after one batch does not hang on the prefetching thread.
    let first = Loader::new(data, 1).epoch(0).next().unwrap();
    assert_eq!(first.y.to_vec::<i64>(), vec![0]);
}
