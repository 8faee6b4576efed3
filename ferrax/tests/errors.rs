//! Misuse panics point at the caller's line, not inside ferrax: every
//! public operation is `#[track_caller]` all the way down. Functions that a
//! transformation returns are closures, which stable Rust cannot mark
//! `#[track_caller]`; their messages name the line where the
//! transformation was applied instead.

use std::sync::Mutex;

use ferrax::prelude::*;

static LOCATION: Mutex<Option<(String, u32)>> = Mutex::new(None);

/// The message of the panic `f` raises and the file and line it reports.
fn panic_at(f: impl FnOnce() + std::panic::UnwindSafe) -> (String, String, u32) {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let loc = info.location().map(|l| (l.file().to_string(), l.line()));
        *LOCATION.lock().unwrap() = loc;
    }));
    let err = std::panic::catch_unwind(f).expect_err("expected a panic");
    std::panic::set_hook(prev);
    let msg = err.downcast_ref::<String>().cloned().or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()));
    let (file, line) = LOCATION.lock().unwrap().take().expect("a location");
    (msg.unwrap_or_default(), file, line)
}

type Case = (u32, &'static str, Box<dyn FnOnce() + std::panic::UnwindSafe>);

/// One test, so that no other test of this binary swaps the panic hook meanwhile.
#[test]
fn misuse_reports_the_callers_line() {
    direct_misuse_is_reported_at_the_callers_line();
    misuse_inside_transformations_is_reported_at_the_callers_line();
    functions_returned_by_transformations_name_where_they_were_made();
}

fn direct_misuse_is_reported_at_the_callers_line() {
    let a = Tensor::ones(&[2, 3], DType::F64);
    let v = Tensor::ones(&[4], DType::F64);
    let (a1, a2, a3, a4, a5, a6, a7, a8, a9) =
        (a.clone(), a.clone(), a.clone(), a.clone(), a.clone(), a.clone(), a.clone(), a.clone(), a.clone());
    let fidx = Tensor::ones(&[1], DType::F64);
    let (v1, v2, v3) = (Tensor::ones(&[2], DType::F64), Tensor::ones(&[2], DType::F64), Tensor::ones(&[3], DType::F64));
    let (m1, i0, s0) = (Tensor::ones(&[2, 1], DType::F64), Tensor::scalar(0i64), Tensor::scalar(1.0));
    let cases: Vec<Case> = vec![
        (line!(), "add: cannot broadcast", Box::new(move || drop(&a1 + &v))),
        (line!(), "matmul: inner dimensions differ", Box::new(move || drop(a2.matmul(&a2)))),
        (line!(), "reshape: cannot reshape", Box::new(move || drop(a3.reshape(&[4])))),
        (line!(), "sum: axis 2 is out of range", Box::new(move || drop(a4.sum_axes(&[2], false)))),
        (line!(), "permute: [0, 0] is not a permutation", Box::new(move || drop(a5.permute(&[0, 0])))),
        (line!(), "slice: the block", Box::new(move || drop(a6.slice(1, 2, 5)))),
        (line!(), "index_select: indices must be i64", Box::new(move || drop(a7.index_select(0, &fidx)))),
        (line!(), "select: the condition must be a bool", Box::new(move || drop(a8.select(&a8, &a8)))),
        (line!(), "item: expected a tensor with one element", Box::new(move || _ = a9.item())),
        (line!(), "shape [2, 2] holds 4", Box::new(|| drop(Tensor::from_vec(vec![1.0], &[2, 2])))),
        (line!(), "expand_dims: axis 5", Box::new(|| drop(Tensor::ones(&[2], DType::F64).expand_dims(5)))),
        (line!(), "split: axis 0 of shape [3]", Box::new(|| drop(Tensor::ones(&[3], DType::F64).split(2, 0)))),
        (line!(), "einsum: operand 0's subscripts", Box::new(|| drop(einsum("ij->i", &[Tensor::scalar(1.0)])))),
        (line!(), "concat: cannot join", Box::new(move || drop(Tensor::concat(&[v1, m1], 0)))),
        (line!(), "take_along_axis: indices", Box::new(move || drop(v2.take_along_axis(&i0, 0)))),
        (line!(), "jvp: tangent 0 is f64[3]", Box::new(move || drop(jvp(|x: &Tensor| x.sin(), &s0, &v3)))),
        (line!(), "argmax: axis 0 of shape [0] is empty", Box::new(|| drop(Tensor::zeros(&[0], DType::F64).argmax(0)))),
    ];
    let mut wrong = Vec::new();
    for (line, want, f) in cases {
        let (msg, file, at) = panic_at(f);
        if !msg.contains(want) || !file.ends_with("tests/errors.rs") || at != line {
            wrong.push(format!("line {line}: expected {want:?} reported here, got {msg:?} at {file}:{at}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn misuse_inside_transformations_is_reported_at_the_callers_line() {
    // The op runs on tracers, through bind and the trace's rules, and still
    // reports the line in the user's function.
    let xs = Tensor::ones(&[5, 3], DType::F64);
    let w = Tensor::ones(&[4], DType::F64);
    let (msg, file, at) = panic_at(|| drop(vmap(|x: &Tensor| x + &w)(&xs)));
    assert!(msg.contains("add: cannot broadcast shapes [3] and [4]"), "{msg}");
    assert_eq!((file.ends_with("tests/errors.rs"), at), (true, line!() - 2));
    let (msg, file, at) = panic_at(|| drop(grad(|x: &Tensor| x.reshape(&[2]).sum())(&Tensor::ones(&[3], DType::F64))));
    assert!(msg.contains("reshape: cannot reshape [3]"), "{msg}");
    assert_eq!((file.ends_with("tests/errors.rs"), at), (true, line!() - 2));
}

fn functions_returned_by_transformations_name_where_they_were_made() {
    let here = |line: u32| format!("tests/errors.rs:{line}");
    let (msg, ..) = panic_at(|| drop(grad(|x: &Tensor| x * 2.0)(&Tensor::ones(&[3], DType::F64))));
    assert!(msg.contains("grad: the function must return a scalar") && msg.contains(&here(line!() - 1)), "{msg}");
    let (a, b) = (Tensor::ones(&[3, 2], DType::F64), Tensor::ones(&[4, 2], DType::F64));
    let (msg, ..) = panic_at(|| drop(vmap(|p: &(Tensor, Tensor)| &p.0 + &p.1)(&(a.clone(), b.clone()))));
    assert!(msg.contains("vmap: mapped sizes differ") && msg.contains(&here(line!() - 1)), "{msg}");
    let (msg, ..) = panic_at(|| {
        let (_, pullback) = vjp(|x: &Tensor| x.sin(), &Tensor::ones(&[3], DType::F64));
        drop(pullback(&Tensor::ones(&[2], DType::F64)))
    });
    assert!(msg.contains("pullback: cotangent 0 is f64[2]") && msg.contains(&here(line!() - 3)), "{msg}");
}
