//! Files: atomic writes under concurrency, metadata, and what saving a
//! traced value does.

mod common;
use std::collections::BTreeMap;

use common::panic_message;
use ferrax::io::{self, IoError};
use ferrax::prelude::*;

/// Two writers and a reader on one path: every load sees one writer's whole
/// file, never a torn or mixed one, and no save fails.
#[test]
fn concurrent_saves_never_tear_a_checkpoint() {
    const ROUNDS: usize = 1500;
    let dir = std::env::temp_dir().join(format!("ferrax-concurrent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    // A tree whose every element is the writer's id: a mixed file would show two ids.
    let tree = |id: f64| vec![Tensor::full(&[64, 64], id, DType::F32), Tensor::full(&[1000], id, DType::F64)];
    io::save_safetensors(&path, &tree(0.0)).unwrap();
    std::thread::scope(|s| {
        for id in [1.0, 2.0] {
            let path = &path;
            s.spawn(move || {
                let t = tree(id);
                for _ in 0..ROUNDS {
                    io::save_safetensors(path, &t).unwrap();
                }
            });
        }
        let template = tree(0.0);
        let mut loads = 0;
        for _ in 0..ROUNDS {
            let back = io::load_safetensors(&path, &template).unwrap();
            let ids: Vec<f64> = back.iter().flat_map(|l| l.to_vec::<f64>()).collect();
            assert!(ids.iter().all(|&v| v == ids[0]), "a file mixing two writers' data");
            loads += 1;
        }
        assert_eq!(loads, ROUNDS);
    });
    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("model.safetensors")]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn saving_into_a_missing_directory_is_an_error_not_a_panic() {
    let path = std::env::temp_dir().join("ferrax-no-such-dir").join("x.npy");
    let err = io::save_npy(&path, &Tensor::scalar(1.0)).unwrap_err();
    assert!(matches!(err, IoError::Io(_)), "{err}");
}

#[test]
fn metadata_travels_in_the_header() {
    let path = std::env::temp_dir().join(format!("ferrax-meta-{}.safetensors", std::process::id()));
    let meta = BTreeMap::from([("widths".to_string(), "64,32,10".to_string()), ("seed".into(), "7".into())]);
    io::save_safetensors_with_metadata(&path, &vec![Tensor::scalar(1.0)], &meta).unwrap();
    assert_eq!(io::load_safetensors_metadata(&path).unwrap(), meta);
    // A file without metadata has none; one with its tensors still loads as usual.
    assert_eq!(io::load_safetensors(&path, &vec![Tensor::scalar(0.0)]).unwrap()[0].item(), 1.0);
    io::save_safetensors(&path, &vec![Tensor::scalar(1.0)]).unwrap();
    assert!(io::load_safetensors_metadata(&path).unwrap().is_empty());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn traced_values_save_their_value_or_refuse_as_documented() {
    // Under grad (or a tape), a parameter is saved as its value.
    let saved = std::cell::RefCell::new(Vec::new());
    let _ = grad(|w: &Tensor| {
        *saved.borrow_mut() = io::to_safetensors_bytes(&vec![w.clone()]);
        w.sum()
    })(&Tensor::from_vec(vec![1.5, 2.5], &[2]));
    let back = io::load_safetensors_bytes(&saved.borrow(), &vec![Tensor::zeros(&[2], DType::F64)]).unwrap();
    assert_eq!(back[0].to_vec::<f64>(), vec![1.5, 2.5]);
    // Under vmap there is no single array to save.
    let msg = panic_message(|| {
        drop(vmap(|x: &Tensor| {
            let _ = io::to_safetensors_bytes(&vec![x.clone()]);
            x.clone()
        })(&Tensor::ones(&[3, 2], DType::F64)))
    });
    assert!(msg.contains("cannot read the values of a tensor inside vmap"), "{msg}");
}

#[test]
fn a_truncated_version_2_npy_reports_truncation() {
    let err = io::npy_from_bytes(b"\x93NUMPY\x02\x00\x10\x00").unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    let err = io::npy_from_bytes(b"\x93NUMPY\x04\x00\x10\x00\x00\x00").unwrap_err();
    assert!(err.to_string().contains("npy version 4 is not supported"), "{err}");
}
