//! The network layers: values against PyTorch (literals, each with the
//! snippet that produced it, in f64) and gradients against finite differences.

mod common;

use common::assert_slices_close;
use ferrax::nn::{
    scaled_dot_product_attention, BatchNorm, Conv, Embedding, GroupNorm, LayerNorm, MultiHeadAttention, Pool, RmsNorm,
};
use ferrax::numeric::check_grads;
use ferrax::prelude::*;
use ferrax::prims::{ConvOptions, Padding};

/// `sin(scale · arange(n))` (or cos) in `shape`: the snippets' `wave`.
fn wave(shape: &[usize], scale: f64, cos: bool) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        (0..n).map(|i| if cos { (i as f64 * scale).cos() } else { (i as f64 * scale).sin() }).collect(),
        shape,
    )
}

/// x = wave((2,6,3,2), 0.41) * 3 + 1: an input with a mean away from zero.
fn input() -> Tensor {
    wave(&[2, 6, 3, 2], 0.41, false) * 3.0 + 1.0
}

#[test]
fn normalisation_layers_match_pytorch() {
    let x = input();
    // F.group_norm(x, 3, wave((6,),0.7,True), wave((6,),0.3))
    let gn =
        GroupNorm { gamma: wave(&[6], 0.7, true), beta: wave(&[6], 0.3, false), ..GroupNorm::new(3, 6, DType::F64) };
    let y = gn.forward(&x);
    let want = [-0.3014766645398417, 0.2997941488865944, 0.8013993017506833, 1.1201935493717718, 1.203334081882589];
    assert_slices_close(&y.to_vec::<f64>()[..5], &want, 1e-12);
    assert!((y.sum().item() - 45.3279969247055).abs() < 1e-11);
    // F.layer_norm(x, (3,2), wave((3,2),0.7,True), wave((3,2),0.3))
    let ln = LayerNorm {
        gamma: wave(&[3, 2], 0.7, true),
        beta: wave(&[3, 2], 0.3, false),
        ..LayerNorm::new(&[3, 2], DType::F64)
    };
    let want =
        [-1.8599212660953746, -0.26726906812649354, 0.5989664309547913, 0.38048906331783006, 0.03374686123553713];
    assert_slices_close(&ln.forward(&x).to_vec::<f64>()[..5], &want, 1e-12);
    // r = nn.RMSNorm(2, eps=1e-6); r.weight = wave((2,),0.7,True); r(x)
    let rms = RmsNorm { scale: wave(&[2], 0.7, true), ..RmsNorm::new(2, DType::F64) };
    let want = [0.5861266715723072, 0.9843774006710567, 0.9060072694280376, 0.8305322199169255, 1.0422328907529765];
    assert_slices_close(&rms.forward(&x).to_vec::<f64>()[..5], &want, 1e-12);
}

#[test]
fn batch_norm_trains_and_keeps_running_statistics_as_pytorch() {
    // rm, rv = zeros(6), ones(6)
    // F.batch_norm(x, rm, rv, wave((6,),0.7,True), wave((6,),0.3), training=True, momentum=0.1, eps=1e-5)
    let (bn, stats) = BatchNorm::new(6, DType::F64);
    let bn = BatchNorm { gamma: wave(&[6], 0.7, true), beta: wave(&[6], 0.3, false), ..bn };
    let (y, next) = bn.forward_train(&input(), &stats);
    let want = [-0.48986032436337634, 0.16085410892486998, 0.7037071885885383, 1.0487164814796355, 1.138693814967283];
    assert_slices_close(&y.to_vec::<f64>()[..5], &want, 1e-12);
    let mean = [
        0.1900223898741561,
        -0.004761636737120567,
        0.17268715801455903,
        0.09186826291992982,
        0.039942572725217534,
        0.20140936373418597,
    ];
    let var = [
        1.2684205273727098,
        1.1983025190259877,
        1.3373085363241002,
        1.4647311666040603,
        1.3782545706638178,
        1.2151823423826331,
    ];
    assert_slices_close(&next.mean.to_vec::<f64>(), &mean, 1e-12);
    assert_slices_close(&next.var.to_vec::<f64>(), &var, 1e-12);
    // Evaluation reads the statistics: with a batch's own, it is training's output.
    let own =
        ferrax::nn::BatchStats { mean: input().mean_axes(&[0, 2, 3], false), var: input().var_axes(&[0, 2, 3], false) };
    assert_slices_close(&bn.forward_eval(&input(), &own).to_vec::<f64>(), &y.to_vec::<f64>(), 1e-12);
}

#[test]
fn attention_matches_pytorch() {
    // q = wave((2,3,5,4),0.37); k = wave((2,3,6,4),0.53,True); v = wave((2,3,6,4),0.29)
    let q = wave(&[2, 3, 5, 4], 0.37, false);
    let k = wave(&[2, 3, 6, 4], 0.53, true);
    let v = wave(&[2, 3, 6, 4], 0.29, false);
    // F.scaled_dot_product_attention(q, k, v, is_causal=True)
    let y = scaled_dot_product_attention(&q, &k, &v, None, true);
    let want =
        [0.0, 0.28595222510483553, 0.5480239367918736, 0.764328937025505, 0.07591969068144795, 0.3444784868746955];
    assert_slices_close(&y.to_vec::<f64>()[..6], &want, 1e-12);
    assert!((y.sum().item() - 7.1473769168717585).abs() < 1e-11);
    // m = (arange(6) < 4).reshape(1,1,1,6); F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    let m = Tensor::from_vec(vec![true, true, true, true, false, false], &[1, 1, 1, 6]);
    let y = scaled_dot_product_attention(&q, &k, &v, Some(&m), false);
    let want = [
        0.26433323172395706,
        0.19970602388429257,
        0.11840091685627449,
        0.027207882980933604,
        0.03562363291922276,
        0.018142004104116743,
    ];
    assert_slices_close(&y.to_vec::<f64>()[..6], &want, 1e-12);
}

#[test]
fn attention_is_stable_and_a_fully_masked_query_is_not_nan() {
    let q = Tensor::full(&[1, 2, 3], 1e4, DType::F32);
    let y = scaled_dot_product_attention(&q, &q, &q, Some(&Tensor::from_vec(vec![false; 2], &[1, 1, 2])), false);
    assert!(y.to_vec::<f32>().iter().all(|v| v.is_finite()), "{:?}", y.to_vec::<f32>());
}

#[test]
fn layers_pass_gradient_checks() {
    let x = Tensor::randn(&[2, 4, 5, 5], DType::F64, 1);
    let conv = Conv::new(4, 3, &[3, 3], ConvOptions::new().padding(Padding::Same).stride(&[2]), DType::F64, 2);
    check_grads(|c: &Conv| c.forward(&x).tanh().sum(), &conv, 2).unwrap();
    check_grads(|x: &Tensor| Pool::max(&[2, 2]).forward(&conv.forward(x)).sum(), &x, 2).unwrap();
    let gn = GroupNorm::new(2, 4, DType::F64);
    check_grads(|p: &(GroupNorm, Tensor)| p.0.forward(&p.1).sin().sum(), &(gn, x.clone()), 2).unwrap();
    let (bn, stats) = BatchNorm::new(4, DType::F64);
    check_grads(|p: &(BatchNorm, Tensor)| p.0.forward_train(&p.1, &stats).0.sin().sum(), &(bn, x.clone()), 2).unwrap();
    let seq = Tensor::randn(&[2, 5, 8], DType::F64, 3);
    let ln = LayerNorm::new(&[8], DType::F64);
    check_grads(|p: &(LayerNorm, Tensor)| p.0.forward(&p.1).sin().sum(), &(ln, seq.clone()), 2).unwrap();
    let rms = RmsNorm::new(8, DType::F64);
    check_grads(|p: &(RmsNorm, Tensor)| p.0.forward(&p.1).sin().sum(), &(rms, seq.clone()), 2).unwrap();
    let mha = MultiHeadAttention::new(8, 2, DType::F64, 4);
    check_grads(|m: &MultiHeadAttention| m.forward(&seq, &seq, None, true).sin().sum(), &mha, 1).unwrap();
    check_grads(|s: &Tensor| mha.forward(s, s, None, true).sin().sum(), &seq, 2).unwrap();
    let emb = Embedding::new(10, 4, DType::F64, 5);
    let ids = Tensor::from_vec(vec![3i64, 7, 3, 0], &[2, 2]);
    check_grads(|e: &Embedding| e.forward(&ids).sin().sum(), &emb, 2).unwrap();
}

#[test]
fn a_padding_mask_hides_keys_in_multi_head_attention() {
    let mha = MultiHeadAttention::new(8, 2, DType::F64, 4);
    let x = Tensor::randn(&[1, 5, 8], DType::F64, 6);
    // Keys 3 and 4 are padding: changing them must not change any output.
    let mask = Tensor::from_vec(vec![true, true, true, false, false], &[1, 1, 1, 5]);
    let other = Tensor::concat(&[x.slice(1, 0, 3), Tensor::randn(&[1, 2, 8], DType::F64, 7)], 1);
    let a = mha.forward(&x, &x, Some(&mask), false).slice(1, 0, 3);
    let b = mha.forward(&other, &other, Some(&mask), false).slice(1, 0, 3);
    assert_slices_close(&a.to_vec::<f64>(), &b.to_vec::<f64>(), 1e-12);
}

#[test]
fn sequential_composes_layers_and_jit_tells_networks_apart() {
    use ferrax::nn::{Activation, Init, Layer, Linear, Sequential};
    let conv = Conv::new(2, 3, &[3, 3], ConvOptions::new().padding(Padding::Same), DType::F64, 1);
    let head = Linear::new(3 * 2 * 2, 4, Init::GlorotUniform, DType::F64, 2);
    let net = |a: Activation| {
        Sequential::new(vec![
            Layer::Conv(conv.clone()),
            Layer::GroupNorm(GroupNorm::new(3, 3, DType::F64)),
            Layer::Activation(a),
            Layer::Pool(Pool::max(&[2, 2])),
            Layer::Flatten,
            Layer::Linear(head.clone()),
        ])
    };
    let x = Tensor::randn(&[2, 2, 4, 4], DType::F64, 3);
    let by_hand = {
        let h = GroupNorm::new(3, 3, DType::F64).forward(&conv.forward(&x)).tanh();
        head.forward(&Pool::max(&[2, 2]).forward(&h).reshape(&[2, 12]))
    };
    assert_slices_close(&net(Activation::Tanh).forward(&x).to_vec::<f64>(), &by_hand.to_vec::<f64>(), 1e-14);
    // One jitted function, two networks that differ only in a layer without parameters.
    let f = jit(|(n, x): &(Sequential, Tensor)| n.forward(x).sum());
    let (tanh, relu) = (net(Activation::Tanh), net(Activation::Relu));
    assert!((f(&(tanh.clone(), x.clone())).item() - tanh.forward(&x).sum().item()).abs() < 1e-12);
    assert!((f(&(relu.clone(), x.clone())).item() - relu.forward(&x).sum().item()).abs() < 1e-12);
    check_grads(|n: &Sequential| n.forward(&x).sin().sum(), &tanh, 2).unwrap();
}

#[test]
fn dropout_in_a_sequential_acts_only_while_training() {
    use ferrax::nn::{Init, Layer, Linear, Sequential};
    let net = Sequential::new(vec![
        Layer::Linear(Linear::new(4, 64, Init::GlorotUniform, DType::F64, 1)),
        Layer::Dropout(0.5),
        Layer::Linear(Linear::new(64, 2, Init::GlorotUniform, DType::F64, 2)),
    ]);
    let x = Tensor::randn(&[3, 4], DType::F64, 3);
    let eval = net.forward(&x);
    let (a, b) = (net.forward_train(&x, 7), net.forward_train(&x, 8));
    assert_ne!(a.to_vec::<f64>(), eval.to_vec::<f64>(), "training drops units");
    assert_ne!(a.to_vec::<f64>(), b.to_vec::<f64>(), "each seed its own mask");
    assert_eq!(a.to_vec::<f64>(), net.forward_train(&x, 7).to_vec::<f64>(), "the same seed the same mask");
    // Gradients flow through the kept units only.
    check_grads(|n: &Sequential| n.forward_train(&x, 7).sin().sum(), &net, 2).unwrap();
}
