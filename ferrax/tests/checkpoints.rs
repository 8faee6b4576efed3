//! Checkpoints from elsewhere: PyTorch's state dicts (f32 and bf16 files
//! written by PyTorch), partial and renamed loading, and headers.

// The literals are as PyTorch printed them (more digits than an f32 holds).
#![allow(clippy::excessive_precision)]

use ferrax::io::{
    inspect_safetensors, load_safetensors, load_safetensors_bytes_with, load_safetensors_with, save_safetensors,
    to_safetensors_bytes, IoError, LoadOptions,
};
use ferrax::nn::{
    load_torch_safetensors, load_torch_safetensors_with, save_torch_safetensors, torch_state_dict, Activation, Init,
    Layer, Linear, Mlp, Sequential,
};
use ferrax::prelude::*;

// Written by PyTorch 2.15 and safetensors 0.7 (torch_mlp.safetensors, and
// torch_mlp_bf16.safetensors with every tensor cast to bfloat16):
//
//     torch.manual_seed(0)
//     m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
//     save_file(m.state_dict(), "torch_mlp.safetensors")
//     save_file({k: v.to(torch.bfloat16) for k, v in m.state_dict().items()}, "torch_mlp_bf16.safetensors")
//     x = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
//     m(x)  # TORCH_OUT; with the weights rounded to bf16 and back: TORCH_BF16_OUT
const TORCH_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/torch_mlp.safetensors");
const TORCH_BF16_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/torch_mlp_bf16.safetensors");
const TORCH_OUT: [f32; 4] = [-0.0904511735, 0.069849886, -0.144178599, 0.162176624];
const TORCH_BF16_OUT: [f32; 4] = [-0.0905352831, 0.0701446533, -0.143968463, 0.162155151];
/// PyTorch's first weight, `[out, in]`, row by row.
const TORCH_W0: [f32; 12] = [
    -0.004322517663240433,
    0.3097158372402191,
    -0.4751853346824646,
    -0.4248946011066437,
    -0.2223689705133438,
    0.15482072532176971,
    -0.011439144611358643,
    0.45777493715286255,
    -0.05123639851808548,
    0.1527741253376007,
    -0.1744827926158905,
    -0.11348707973957062,
];

fn x() -> Tensor {
    Tensor::from_vec(vec![0.5f32, -1.0, 2.0, 1.5, 0.25, -0.75], &[2, 3])
}

fn mlp() -> Mlp {
    Mlp::new(&[3, 4, 2], Activation::Relu, DType::F32, 9)
}

/// The outputs agree to a few f32 roundings of values near 0.1: the two
/// libraries may sum the three and four products in different orders.
fn assert_close(got: &Tensor, want: &[f32]) {
    for (g, w) in got.to_vec::<f32>().iter().zip(want) {
        assert!((g - w).abs() < 1e-7, "{:?} against PyTorch's {want:?}", got.to_vec::<f32>());
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ferrax-test-{}-{name}", std::process::id()))
}

#[test]
fn a_pytorch_state_dict_loads_into_an_mlp_and_a_sequential() {
    let m = load_torch_safetensors(TORCH_FILE, &mlp()).unwrap();
    // ferrax keeps [in, out]: PyTorch's weight transposed.
    let w0: Vec<f32> = m.layers[0].w.t().to_vec();
    assert_eq!(w0, TORCH_W0);
    assert_close(&m.forward(&x()), &TORCH_OUT);

    let seq = Sequential::new(vec![
        Layer::Linear(Linear::new(3, 4, Init::GlorotUniform, DType::F32, 0)),
        Layer::Activation(Activation::Relu),
        Layer::Linear(Linear::new(4, 2, Init::GlorotUniform, DType::F32, 0)),
    ]);
    let seq = load_torch_safetensors(TORCH_FILE, &seq).unwrap();
    assert_close(&seq.forward(&x()), &TORCH_OUT);
}

#[test]
fn a_saved_model_is_the_file_pytorch_writes() {
    let m = load_torch_safetensors(TORCH_FILE, &mlp()).unwrap();
    let path = temp("torch-roundtrip.safetensors");
    save_torch_safetensors(&path, &m).unwrap();
    // The same names, layouts, dtypes and bytes: PyTorch's load_state_dict takes it.
    assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(TORCH_FILE).unwrap());
    std::fs::remove_file(&path).unwrap();
    assert_eq!(torch_state_dict(&m)["2.weight"].shape(), &[2, 4]);
}

#[test]
fn a_bf16_file_loads_into_a_bf16_model_and_into_an_f32_one_when_converting() {
    match load_torch_safetensors(TORCH_BF16_FILE, &mlp()) {
        Err(IoError::Mismatch { found, .. }) if found.dtype == DType::BF16 => {}
        other => panic!("expected an unconverted bf16 file to be refused, got {other:?}"),
    }
    let native = load_torch_safetensors(TORCH_BF16_FILE, &Mlp::new(&[3, 4, 2], Activation::Relu, DType::BF16, 0));
    let y = native.unwrap().forward(&x().to_dtype(DType::BF16));
    assert_eq!(y.dtype(), DType::BF16);
    // Each bf16 operation rounds to 8 bits: a few roundings of values near 0.1.
    for (g, w) in y.to_dtype(DType::F32).to_vec::<f32>().iter().zip(TORCH_BF16_OUT) {
        assert!((g - w).abs() < 4e-3, "{y} against PyTorch's {TORCH_BF16_OUT:?}");
    }
    let loaded =
        load_torch_safetensors_with(TORCH_BF16_FILE, &mlp(), &LoadOptions::new().convert_dtypes(true)).unwrap();
    assert_eq!(loaded.converted.len(), 4);
    assert!(loaded.converted.iter().all(|(_, d)| d == "BF16"));
    // bf16 widens to f32 exactly, so this is PyTorch's model with bf16-rounded weights.
    assert_close(&loaded.value.forward(&x()), &TORCH_BF16_OUT);
}

#[test]
fn the_model_part_of_a_checkpoint_loads_by_prefix() {
    let model = mlp();
    let moments = vec![Tensor::ones(&[3], DType::F32), Tensor::scalar(4.0)];
    let mut checkpoint = std::collections::BTreeMap::new();
    checkpoint.insert("model".to_string(), model.leaves());
    checkpoint.insert("optimizer".to_string(), moments);
    let bytes = to_safetensors_bytes(&checkpoint);
    let template = Mlp::new(&[3, 4, 2], Activation::Relu, DType::F32, 1);
    // Strict and without a prefix, the template's paths are not in the file.
    let strict = load_safetensors_bytes_with(&bytes, &template, &LoadOptions::new());
    assert!(matches!(strict, Err(IoError::Missing { .. })), "{strict:?}");
    // The model's leaves are numbered 0..4 under "model."; its own paths are layers.i.w/b.
    let opts = LoadOptions::new().prefix("model.").rename_with(|name| {
        let i: usize = name.strip_prefix("model.")?.parse().ok()?;
        Some(format!("layers.{}.{}", i / 2, ["w", "b"][i % 2]))
    });
    let loaded = load_safetensors_bytes_with(&bytes, &template, &opts).unwrap();
    for (a, b) in loaded.value.leaves().iter().zip(model.leaves()) {
        assert_eq!(a.to_vec::<f32>(), b.to_vec::<f32>());
    }

    // Not strict: what is missing keeps the template's value; what the file
    // has beyond the selection is reported.
    let opts = LoadOptions::new().strict(false).rename("model.0", "layers.0.w").rename("optimizer.1", "nothing");
    let loaded = load_safetensors_bytes_with(&bytes, &template, &opts).unwrap();
    assert_eq!(loaded.value.layers[0].w.to_vec::<f32>(), model.layers[0].w.to_vec::<f32>());
    assert_eq!(loaded.value.layers[1].w.to_vec::<f32>(), template.layers[1].w.to_vec::<f32>());
    assert_eq!(loaded.missing, ["layers.0.b", "layers.1.w", "layers.1.b"]);
    // model.1-3 and optimizer.0 keep their names, which no leaf has.
    assert_eq!(loaded.unexpected, ["model.1", "model.2", "model.3", "optimizer.0", "optimizer.1"]);
}

#[test]
fn shapes_and_dtypes_are_checked_and_floats_converted_on_request() {
    let path = temp("f64.safetensors");
    let wide = vec![Tensor::from_vec(vec![0.1f64, 0.2, 0.3], &[3])];
    save_safetensors(&path, &wide).unwrap();
    let narrow = vec![Tensor::zeros(&[3], DType::F32)];
    assert!(matches!(load_safetensors(&path, &narrow), Err(IoError::Mismatch { .. })));
    let loaded = load_safetensors_with(&path, &narrow, &LoadOptions::new().convert_dtypes(true)).unwrap();
    assert_eq!(loaded.value[0].to_vec::<f32>(), vec![0.1f32, 0.2, 0.3]);
    // A shape never converts.
    let other = vec![Tensor::zeros(&[4], DType::F64)];
    let e = load_safetensors_with(&path, &other, &LoadOptions::new().strict(false).convert_dtypes(true)).unwrap_err();
    assert!(e.to_string().contains("f64[3]") && e.to_string().contains("f64[4]"), "{e}");
    // Nor does an integer.
    let ints = vec![Tensor::from_vec(vec![1i64, 2, 3], &[3])];
    save_safetensors(&path, &ints).unwrap();
    assert!(load_safetensors_with(&path, &narrow, &LoadOptions::new().convert_dtypes(true)).is_err());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_header_is_read_without_the_tensors() {
    let header = inspect_safetensors(TORCH_BF16_FILE).unwrap();
    let names: Vec<(&str, &str, &[usize])> =
        header.tensors.iter().map(|t| (t.name.as_str(), t.dtype.as_str(), t.shape.as_slice())).collect();
    assert_eq!(names.len(), 4);
    assert!(names.contains(&("0.weight", "BF16", &[4, 3][..])), "{names:?}");
    assert_eq!(header.get("2.bias").unwrap().bytes(), 4);
    assert!(header.metadata.is_empty());
}

#[test]
fn malformed_files_are_typed_errors() {
    let good = std::fs::read(TORCH_FILE).unwrap();
    let path = temp("bad.safetensors");
    // Cut short: the header's offsets point past the end.
    std::fs::write(&path, &good[..good.len() - 3]).unwrap();
    assert!(matches!(inspect_safetensors(&path), Err(IoError::Format(_))));
    assert!(matches!(load_torch_safetensors(&path, &mlp()), Err(IoError::Format(_))));
    // A header length beyond the file.
    std::fs::write(&path, [255u8, 255, 0, 0, 0, 0, 0, 0, b'{']).unwrap();
    assert!(matches!(inspect_safetensors(&path), Err(IoError::Format(_))));
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(inspect_safetensors(&path), Err(IoError::Format(_))));
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(inspect_safetensors(temp("absent")), Err(IoError::Io(_))));
}
