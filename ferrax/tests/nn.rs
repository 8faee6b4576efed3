//! Layers, losses, initialisers, optimisers, checkpoints and the digits
//! data: each against a hand-computed or numerical reference.

mod common;
use common::{assert_slices_close, panic_message};
use ferrax::data::{accuracy, parse_digits_csv, Standardizer};
use ferrax::io::{self, IoError};
use ferrax::nn::{self, binary_cross_entropy_with_logits, mse, softmax_cross_entropy, Activation, Init, Linear, Mlp};
use ferrax::optim::{Adam, Optimizer, Sgd};
use ferrax::prelude::*;

fn digits() -> ferrax::data::Dataset {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/digits.csv")).unwrap();
    parse_digits_csv(&text).unwrap()
}

#[test]
fn linear_and_mlp_forward() {
    let layer = Linear {
        w: Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]),
        b: Tensor::from_vec(vec![0.5, -0.5], &[2]),
    };
    let x = Tensor::from_vec(vec![1.0, 0.0, -1.0], &[1, 3]);
    // [1, 0, -1] · W = [1 - 5, 2 - 6] = [-4, -4], plus b
    assert_eq!(layer.forward(&x).to_vec::<f64>(), vec![-3.5, -4.5]);
    let m = Mlp::new(&[3, 5, 4, 2], Activation::Tanh, DType::F64, 7);
    assert_eq!(m.parameter_count(), 3 * 5 + 5 + 5 * 4 + 4 + 4 * 2 + 2);
    let x = Tensor::randn(&[6, 3], DType::F64, 1);
    let manual = m.layers[2].forward(&m.layers[1].forward(&m.layers[0].forward(&x).tanh()).tanh());
    assert_slices_close(&m.forward(&x).to_vec::<f64>(), &manual.to_vec::<f64>(), 0.0);
    assert_eq!(
        m.leaf_paths(),
        vec!["layers.0.w", "layers.0.b", "layers.1.w", "layers.1.b", "layers.2.w", "layers.2.b"]
    );
}

#[test]
fn activations_match_their_formulas() {
    let x = Tensor::from_vec(vec![-3.0, -0.5, 0.0, 0.7, 4.0], &[5]);
    let xs = x.to_vec::<f64>();
    let gelu_tanh: Vec<f64> = xs
        .iter()
        .map(|&v| 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh()))
        .collect();
    assert_slices_close(&Activation::GeluTanh.apply(&x).to_vec::<f64>(), &gelu_tanh, 1e-15);
    // Exact GELU, x Φ(x): Python's `0.5 * v * (1 + math.erf(v / math.sqrt(2)))`.
    let gelu = [-0.00404969409489031, -0.15426876936299344, 0.0, 0.5306254434438489, 3.9998733150326675];
    assert_slices_close(&Activation::Gelu.apply(&x).to_vec::<f64>(), &gelu, 1e-15);
    assert_slices_close(&Activation::Relu.apply(&x).to_vec::<f64>(), &[0.0, 0.0, 0.0, 0.7, 4.0], 0.0);
    let sig: Vec<f64> = xs.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
    assert_slices_close(&Activation::Sigmoid.apply(&x).to_vec::<f64>(), &sig, 1e-15);
    let sp: Vec<f64> = xs.iter().map(|v| (1.0 + v.exp()).ln()).collect();
    assert_slices_close(&Activation::Softplus.apply(&x).to_vec::<f64>(), &sp, 1e-15);
    assert_eq!(Activation::parse("tanh"), Some(Activation::Tanh));
    assert_eq!(Activation::parse("swish"), None);
    check_grads(|x: &Tensor| x.gelu(), &x, 2).unwrap();
    check_grads(|x: &Tensor| x.gelu_tanh(), &x, 2).unwrap();
}

#[test]
fn losses_match_naive_formulas_and_stay_finite() {
    let logits = Tensor::from_vec(vec![1.0, 2.0, 0.5, -1.0, 0.0, 3.0], &[2, 3]);
    let labels = Tensor::from_vec(vec![1i64, 2], &[2]);
    let l = logits.to_vec::<f64>();
    let row = |r: &[f64], k: usize| -(r[k].exp() / r.iter().map(|v| v.exp()).sum::<f64>()).ln();
    let want = (row(&l[..3], 1) + row(&l[3..], 2)) / 2.0;
    assert_slices_close(&[softmax_cross_entropy(&logits, &labels).item()], &[want], 1e-15);
    // huge logits: a naive softmax overflows, the stable one does not
    // rows [1000, 2000, 500] and [-1000, 0, 3000] with labels 0 and 1: losses 1000 and 3000
    let big = &logits * 1000.0;
    let v = softmax_cross_entropy(&big, &Tensor::from_vec(vec![0i64, 1], &[2])).item();
    assert!(v.is_finite() && (v - 2000.0).abs() < 1e-9, "{v}");
    check_grads(|z: &Tensor| softmax_cross_entropy(z, &labels), &logits, 2).unwrap();
    // A label out of range reads no logit: NaN, never a neighbouring row's logit.
    assert!(softmax_cross_entropy(&logits, &Tensor::from_vec(vec![0i64, 3], &[2])).item().is_nan());
    // A negative label counts from the end, as an index does.
    let last = softmax_cross_entropy(&logits, &Tensor::from_vec(vec![-2i64, -1], &[2])).item();
    assert_slices_close(&[last], &[want], 1e-15);

    let z = Tensor::from_vec(vec![-2.0, 0.0, 3.0], &[3]);
    let y = Tensor::from_vec(vec![0.0, 1.0, 1.0], &[3]);
    let naive: f64 = z
        .to_vec::<f64>()
        .iter()
        .zip(y.to_vec::<f64>())
        .map(|(z, y)| {
            let s = 1.0 / (1.0 + (-z).exp());
            -(y * s.ln() + (1.0 - y) * (1.0 - s).ln())
        })
        .sum::<f64>()
        / 3.0;
    assert_slices_close(&[binary_cross_entropy_with_logits(&z, &y).item()], &[naive], 1e-14);
    let extreme = binary_cross_entropy_with_logits(
        &Tensor::from_vec(vec![-800.0, 800.0], &[2]),
        &Tensor::from_vec(vec![1.0, 0.0], &[2]),
    );
    assert_slices_close(&[extreme.item()], &[800.0], 1e-15);
    assert_slices_close(&[mse(&z, &y).item()], &[(4.0 + 1.0 + 4.0) / 3.0], 1e-15);
}

#[test]
fn initialisers_have_their_scales_and_are_seeded() {
    let n = 400;
    let w = Init::GlorotUniform.sample(n, n, DType::F64, 3).to_vec::<f64>();
    let r = (6.0 / (2 * n) as f64).sqrt();
    assert!(w.iter().all(|v| v.abs() <= r));
    let var = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64;
    // uniform(±r) has variance r²/3; 160,000 draws pin it within about 1%
    assert!((var(&w) / (r * r / 3.0) - 1.0).abs() < 0.02);
    let he = Init::HeNormal.sample(n, n, DType::F64, 4).to_vec::<f64>();
    assert!((var(&he) / (2.0 / n as f64) - 1.0).abs() < 0.02);
    assert_eq!(
        Init::HeNormal.sample(3, 2, DType::F32, 9).to_vec::<f32>(),
        Init::HeNormal.sample(3, 2, DType::F32, 9).to_vec::<f32>()
    );
}

#[test]
fn dropout_keeps_the_expectation() {
    let x = Tensor::ones(&[100_000], DType::F64);
    let y = nn::dropout(&x, 0.3, 5).to_vec::<f64>();
    let kept = y.iter().filter(|v| **v != 0.0).count() as f64 / 1e5;
    assert!((kept - 0.7).abs() < 0.01, "{kept}");
    assert!(y.iter().all(|v| *v == 0.0 || (*v - 1.0 / 0.7).abs() < 1e-15));
    let mean = y.iter().sum::<f64>() / 1e5;
    assert!((mean - 1.0).abs() < 0.015);
    assert_eq!(nn::dropout(&x, 0.0, 1).to_vec::<f64>(), x.to_vec::<f64>());
    let msg = panic_message(|| drop(nn::dropout(&x, 1.0, 1)));
    assert!(msg.contains("dropout: the rate must be in [0, 1), got 1"), "{msg}");
}

#[test]
fn sgd_steps_match_closed_form() {
    let p = Tensor::from_vec(vec![1.0, -2.0], &[2]);
    let g = Tensor::from_vec(vec![0.5, 0.25], &[2]);
    let opt = Sgd::new(0.1).momentum(0.9).weight_decay(0.01);
    let s0 = opt.init(&p);
    let (p1, s1) = opt.update(&p, &g, &s0);
    // g' = g + 0.01 p; v = g'; p = p - 0.1 v
    let g1 = [0.5 + 0.01, 0.25 - 0.02];
    assert_slices_close(&p1.to_vec::<f64>(), &[1.0 - 0.1 * g1[0], -2.0 - 0.1 * g1[1]], 1e-15);
    let (p2, _) = opt.update(&p1, &g, &s1);
    let pv = p1.to_vec::<f64>();
    let g2 = [0.5 + 0.01 * pv[0], 0.25 + 0.01 * pv[1]];
    let v2 = [0.9 * g1[0] + g2[0], 0.9 * g1[1] + g2[1]];
    assert_slices_close(&p2.to_vec::<f64>(), &[pv[0] - 0.1 * v2[0], pv[1] - 0.1 * v2[1]], 1e-15);
    let nesterov = Sgd { nesterov: true, ..Sgd::new(0.1).momentum(0.5) };
    let (q, _) = nesterov.update(&p, &g, &nesterov.init(&p));
    // v = g; step = g + 0.5 v = 1.5 g
    assert_slices_close(&q.to_vec::<f64>(), &[1.0 - 0.15 * 0.5, -2.0 - 0.15 * 0.25], 1e-15);
}

#[test]
fn adam_and_adamw_steps_match_closed_form() {
    let p0 = [1.0f64, -2.0];
    let grads = [[0.5f64, -0.1], [0.2, 0.3], [-0.4, 0.05]];
    for decoupled in [false, true] {
        let opt = Adam { weight_decay: 0.1, decoupled, ..Adam::new(0.01) };
        let mut p = Tensor::from_vec(p0.to_vec(), &[2]);
        let mut st = opt.init(&p);
        let (mut rp, mut m, mut v) = (p0, [0.0; 2], [0.0; 2]);
        for (t, g) in grads.iter().enumerate() {
            (p, st) = opt.update(&p, &Tensor::from_vec(g.to_vec(), &[2]), &st);
            let t = t as f64 + 1.0;
            for i in 0..2 {
                let mut gi = g[i];
                if decoupled {
                    rp[i] *= 1.0 - 0.01 * 0.1;
                } else {
                    gi += 0.1 * rp[i];
                }
                m[i] = 0.9 * m[i] + 0.1 * gi;
                v[i] = 0.999 * v[i] + 0.001 * gi * gi;
                let (mh, vh) = (m[i] / (1.0 - 0.9f64.powf(t)), v[i] / (1.0 - 0.999f64.powf(t)));
                rp[i] -= 0.01 * mh / (vh.sqrt() + 1e-8);
            }
            assert_slices_close(&p.to_vec::<f64>(), &rp, 1e-14);
        }
        assert_eq!(st.step.item(), 3.0);
        assert_eq!(st.step.dtype(), DType::I64);
    }
}

/// On concrete parameters Adam updates each in one pass; its bits must be
/// those of the same formula op by op, as it runs on traced ones.
#[test]
fn adam_fused_update_has_the_bits_of_the_op_by_op_formula() {
    for dtype in [DType::F32, DType::F64] {
        for (wd, decoupled) in [(0.0, false), (0.05, false), (0.05, true)] {
            let opt = Adam { weight_decay: wd, decoupled, ..Adam::new(3e-3) };
            let mut p = Tensor::randn(&[37, 5], dtype, 1);
            let mut st = opt.init(&p);
            let (mut rp, mut m, mut v) = (p.clone(), st.m.clone(), st.v.clone());
            for t in 1..=3 {
                let g = Tensor::randn(&[37, 5], dtype, 10 + t);
                (p, st) = opt.update(&p, &g, &st);
                let (c1, c2) = (1.0 - opt.beta1.powf(t as f64), 1.0 - opt.beta2.powf(t as f64));
                let (q, gq) = match (wd != 0.0, decoupled) {
                    (true, true) => (&rp * (1.0 - opt.lr * wd), g.clone()),
                    (true, false) => (rp.clone(), &g + &rp * wd),
                    (false, _) => (rp.clone(), g.clone()),
                };
                m = &m * opt.beta1 + &gq * (1.0 - opt.beta1);
                v = &v * opt.beta2 + gq.square() * (1.0 - opt.beta2);
                rp = q - (&m / c1) / ((&v / c2).sqrt() + opt.eps) * opt.lr;
                let bits = |x: &Tensor| x.to_dtype(DType::F64).to_vec::<f64>();
                let what = format!("{dtype} step {t}, weight decay {wd}, decoupled {decoupled}");
                assert_eq!(bits(&p), bits(&rp), "parameters, {what}");
                assert_eq!(bits(&st.m), bits(&m), "first moments, {what}");
                assert_eq!(bits(&st.v), bits(&v), "second moments, {what}");
            }
        }
    }
}

fn sample_tree() -> (Mlp, Vec<Tensor>) {
    let m = Mlp::new(&[3, 4, 2], Activation::Relu, DType::F32, 1);
    let specials = vec![
        Tensor::from_vec(vec![f64::NAN, -0.0, f64::INFINITY, 1e-310, f64::MIN_POSITIVE], &[5]),
        Tensor::from_vec(vec![i64::MIN, -1, 0, i64::MAX], &[2, 2]),
        Tensor::from_vec(vec![true, false, true], &[3]),
        Tensor::scalar(2.5f32),
    ];
    (m, specials)
}

fn bit_equal(a: &impl Tree, b: &impl Tree) -> bool {
    a.leaves().iter().zip(b.leaves()).all(|(x, y)| x.to_array().bit_eq(&y.to_array()))
}

#[test]
fn safetensors_round_trip_is_bit_exact_and_readable_by_the_reference_reader() {
    let tree = sample_tree();
    let dir = std::env::temp_dir().join(format!("ferrax-nn-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tree.safetensors");
    io::save_safetensors(&path, &tree).unwrap();
    let back = io::load_safetensors(&path, &tree).unwrap();
    assert!(bit_equal(&back, &tree));
    // The safetensors crate reads it unchanged: names, dtypes, shapes and bytes.
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let w = st.tensor("0.layers.0.w").unwrap();
    assert_eq!(w.dtype(), safetensors::Dtype::F32);
    assert_eq!(w.shape(), &[3, 4]);
    let want: Vec<u8> = tree.0.layers[0].w.to_vec::<f32>().iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(w.data(), &want[..]);
    assert_eq!(st.tensor("1.2").unwrap().dtype(), safetensors::Dtype::BOOL);
    assert_eq!(st.names().len(), tree.leaves().len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupted_and_mismatched_checkpoints_are_typed_errors() {
    let tree = sample_tree();
    let good = io::to_safetensors_bytes(&tree);
    for cut in [0, 4, 8, 20, good.len() / 2, good.len() - 1] {
        let err = io::load_safetensors_bytes(&good[..cut], &tree).unwrap_err();
        assert!(matches!(err, IoError::Format(_)), "cut at {cut}: {err}");
    }
    let mut garbled = good.clone();
    garbled[8] = b'!'; // the header's opening brace
    assert!(matches!(io::load_safetensors_bytes(&garbled, &tree), Err(IoError::Format(_))));
    // another model: shapes differ
    let other = (Mlp::new(&[3, 5, 2], Activation::Relu, DType::F32, 1), tree.1.clone());
    match io::load_safetensors_bytes(&good, &other).unwrap_err() {
        IoError::Mismatch { name, expected, found } => {
            assert_eq!(name, "0.layers.0.w");
            assert_eq!((expected.shape, found.shape), (vec![3, 5], vec![3, 4]));
        }
        e => panic!("{e}"),
    }
    // dtype differs
    let f64_model = (Mlp::new(&[3, 4, 2], Activation::Relu, DType::F64, 1), tree.1.clone());
    assert!(matches!(io::load_safetensors_bytes(&good, &f64_model), Err(IoError::Mismatch { .. })));
    // a tensor the structure needs is missing; one the structure lacks is present
    let mut bigger = tree.1.clone();
    bigger.push(Tensor::scalar(1.0));
    let err = io::load_safetensors_bytes(&good, &(tree.0.clone(), bigger)).unwrap_err();
    assert_eq!(err.to_string(), "tensor '1.4' is missing from the file");
    let err = io::load_safetensors_bytes(&good, &(tree.0.clone(), tree.1[..3].to_vec())).unwrap_err();
    assert_eq!(err.to_string(), "the file has tensors the structure does not: 1.3");
    // a dtype ferrax does not have
    let int32 = [1u8, 0, 0, 0];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![1], &int32).unwrap();
    let bytes = safetensors::tensor::serialize([("value", view)], None).unwrap();
    let err = io::load_safetensors_bytes(&bytes, &Tensor::scalar(0.0f32).reshape(&[1])).unwrap_err();
    assert!(matches!(err, IoError::UnsupportedDtype { .. }), "{err}");
    // a missing file
    assert!(matches!(io::load_safetensors("/nonexistent/x.safetensors", &tree), Err(IoError::Io(_))));
}

#[test]
fn npy_round_trip_and_errors() {
    for t in sample_tree().1 {
        let bytes = io::npy_to_bytes(&t);
        assert_eq!(&bytes[..6], b"\x93NUMPY");
        assert_eq!((10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64, 0, "data is 64-byte aligned");
        let back = io::npy_from_bytes(&bytes).unwrap();
        assert!(back.to_array().bit_eq(&t.to_array()));
    }
    let header = String::from_utf8_lossy(&io::npy_to_bytes(&Tensor::zeros(&[2, 3], DType::F64))[10..80]).into_owned();
    assert!(header.starts_with("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"), "{header}");
    let good = io::npy_to_bytes(&Tensor::ones(&[4], DType::F32));
    assert!(matches!(io::npy_from_bytes(b"not npy"), Err(IoError::Format(_))));
    assert!(matches!(io::npy_from_bytes(&good[..good.len() - 2]), Err(IoError::Format(_))));
    let fortran = String::from_utf8_lossy(&good).replace("False", "True ");
    assert!(matches!(io::npy_from_bytes(fortran.as_bytes()), Err(IoError::Format(_))));
}

#[test]
fn digits_parse_split_and_standardise() {
    let d = digits();
    assert_eq!((d.x.shape(), d.y.shape()), (&[1797, 64][..], &[1797][..]));
    let counts: Vec<usize> = (0..10).map(|k| d.y.to_vec::<i64>().iter().filter(|&&l| l == k).count()).collect();
    assert!(counts.iter().all(|&c| (170..=190).contains(&c)), "{counts:?}");
    let (train, test) = d.split(0.2, 0);
    assert_eq!((train.len(), test.len()), (1438, 359));
    let (train2, _) = d.split(0.2, 0);
    assert_eq!(train.y.to_vec::<i64>(), train2.y.to_vec::<i64>(), "seeded");
    let s = Standardizer::fit(&train.x);
    let z = s.apply(&train.x);
    assert!(z.mean_axes(&[0], false).abs().max().item() < 1e-5);
    let sd = z.var_axes(&[0], false).sqrt().to_vec::<f32>();
    assert!(sd.iter().all(|v| (v - 1.0).abs() < 1e-4 || *v == 0.0), "{sd:?}");
    for (bad, why) in [
        ("1,2,3", "line 1: expected 65 comma-separated values, found 3"),
        (&format!("{}17,0", "0,".repeat(63)), "line 1: pixel value 17 is outside 0..=16"),
        (&format!("{}x", "0,".repeat(64)), "line 1: label 'x' is not a number"),
    ] {
        assert_eq!(parse_digits_csv(bad).unwrap_err().to_string(), why);
    }
}

#[test]
fn a_short_training_run_on_digits_reaches_95_percent() {
    let (train, test) = digits().split(0.2, 0);
    let s = Standardizer::fit(&train.x);
    let (xtr, xte) = (s.apply(&train.x), s.apply(&test.x));
    let train = ferrax::data::Dataset { x: xtr, y: train.y };
    let mut model = Mlp::new(&[64, 64, 10], Activation::Relu, DType::F32, 0);
    let opt = Adam::new(3e-3);
    let mut state = opt.init(&model);
    for epoch in 0..8 {
        for b in train.batches(64, epoch) {
            let g = grad(|m: &Mlp| softmax_cross_entropy(&m.forward(&b.x), &b.y))(&model);
            (model, state) = opt.update(&model, &g, &state);
        }
    }
    let acc = accuracy(&model.forward(&xte), &test.y);
    assert!(acc >= 0.95, "test accuracy {acc}");
}
