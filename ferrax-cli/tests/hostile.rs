//! The `ferrax` binary with hostile and careless input: every refusal comes
//! before any work, with a message naming the flag and exit status 2, and
//! writes nothing; failures while running exit 1; NaN is never agreement.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Out {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

fn ferrax_in(dir: &Path, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrax")).current_dir(dir).args(args).output().expect("the binary runs");
    Out {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrax-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn train_refuses_nonsense_before_training_and_writes_nothing() {
    let dir = scratch("train");
    std::fs::write(
        dir.join("tiny.csv"),
        std::fs::read_to_string("../data/digits.csv").unwrap().lines().take(2).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    std::fs::write(dir.join("bad.csv"), "1,2,3\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--batch", "0"], "invalid value '0' for '--batch <BATCH>'"),
        (vec!["--lr", "nan"], "invalid value 'nan' for '--lr <LR>'"),
        (vec!["--lr", "inf"], "invalid value 'inf' for '--lr <LR>'"),
        (vec!["--lr", "-1"], "invalid value '-1' for '--lr <LR>': -1 is not a finite positive number"),
        (vec!["--hidden", "0"], "invalid value '0' for '--hidden <HIDDEN>': a width of 0"),
        (vec!["--hidden", "64,x"], "'x' is not a width"),
        (vec!["--epochs", "0"], "invalid value '0' for '--epochs <EPOCHS>'"),
        (vec!["--hidden", "100000000,100000"], "--hidden: widths [100000000, 100000] make"),
        (vec!["--data", "tiny.csv"], "--data tiny.csv: 2 examples are too few"),
        (vec!["--data", "bad.csv"], "--data bad.csv: line 1: expected 65 comma-separated values"),
        (vec!["--data", "missing.csv"], "--data missing.csv:"),
        (vec!["--plot", "curves.png"], "--plot curves.png: ferrax draws its plots as SVG"),
        (vec!["--activation", "swish"], "invalid value 'swish' for '--activation <ACTIVATION>'"),
        (vec!["--resume", "missing.safetensors"], "--resume missing.safetensors:"),
        (vec!["--frobnicate"], "unexpected argument '--frobnicate'"),
        (vec!["extra"], "unexpected argument 'extra'"),
    ];
    for (args, want) in cases {
        let mut argv = vec!["train"];
        argv.extend(&args);
        let out = ferrax_in(&dir, &argv);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{args:?}: expected {want:?} in {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?} did work before refusing: {}", out.stdout);
        assert_eq!(files_in(&dir), vec!["bad.csv", "tiny.csv"], "{args:?} wrote a file");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_checks_output_paths_first() {
    let dir = scratch("paths");
    // A missing directory is created, with a message, before training.
    let out = ferrax_in(&dir, &["train", "--epochs", "1", "--out", "runs/a/m.safetensors", "--plot", "runs/p.svg"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("created directory runs/a for --out"), "{}", out.stderr);
    assert!(dir.join("runs/a/m.safetensors").exists() && dir.join("runs/p.svg").exists());
    // One epoch's plot shows its point.
    let svg = std::fs::read_to_string(dir.join("runs/p.svg")).unwrap();
    assert!(svg.contains("<circle"), "a single epoch is drawn as a marker");
    // When one output cannot be written, no directory is made for the other.
    let out = ferrax_in(&dir, &["train", "--epochs", "1", "--out", "fresh/m.safetensors", "--plot", "/proc/x.svg"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--plot /proc/x.svg: cannot write in /proc"), "{}", out.stderr);
    assert!(!dir.join("fresh").exists(), "a refused run made a directory");
    // An unwritable place is refused before any work.
    let out = ferrax_in(&dir, &["train", "--epochs", "1", "--out", "runs/a/m.safetensors/x.safetensors"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--out runs/a/m.safetensors/x.safetensors: cannot"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_refuses_contradictions_and_tampering() {
    let dir = scratch("resume");
    let out = ferrax_in(&dir, &["train", "--epochs", "2", "--hidden", "32", "--activation", "tanh", "--seed", "3"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let ck = "digits-mlp.safetensors";
    let before = std::fs::read(dir.join(ck)).unwrap();
    for (flag, value, want) in [
        (
            "--activation",
            "relu",
            "--activation relu contradicts --resume digits-mlp.safetensors, which was trained with --activation tanh",
        ),
        ("--seed", "7", "--seed 7 contradicts"),
        ("--hidden", "64", "--hidden 64 contradicts"),
        ("--batch", "32", "--batch 32 contradicts"),
    ] {
        let out = ferrax_in(&dir, &["train", "--epochs", "1", "--resume", ck, flag, value]);
        assert_eq!(out.code, Some(2), "{flag}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{flag}: {}", out.stderr);
        assert_eq!(std::fs::read(dir.join(ck)).unwrap(), before, "{flag}: the checkpoint was touched");
    }
    // Options left out come from the checkpoint: the run continues as it was.
    let out = ferrax_in(&dir, &["train", "--epochs", "1", "--resume", ck]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("MLP [64, 32, 10]") && out.stdout.contains("tanh") && out.stdout.contains("epoch   3/3")
    );
    // An edited epoch counter no longer matches the optimizer's step count.
    let mut bytes = std::fs::read(dir.join(ck)).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let at = 8 + header_len + header["epoch"]["data_offsets"][0].as_u64().unwrap() as usize;
    bytes[at..at + 8].copy_from_slice(&9i64.to_le_bytes());
    std::fs::write(dir.join("edited.safetensors"), &bytes).unwrap();
    let out =
        ferrax_in(&dir, &["train", "--epochs", "1", "--resume", "edited.safetensors", "--out", "new.safetensors"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("its epoch counter (9) and optimizer step count"), "{}", out.stderr);
    assert!(!dir.join("new.safetensors").exists());
    // A safetensors file without a run description is not a checkpoint of this command.
    std::fs::write(dir.join("other.safetensors"), ferrax::io::to_safetensors_bytes(&vec![ferrax::Tensor::scalar(1.0)]))
        .unwrap();
    let out = ferrax_in(&dir, &["train", "--resume", "other.safetensors"]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("not a ferrax train checkpoint"), "{}", out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_closed_pipe_ends_the_program_quietly() {
    let dir = scratch("pipe");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrax"))
        .current_dir(&dir)
        .args(["swell", "--max", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe, as `| head -1` does.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn command_line_manners() {
    let dir = scratch("manners");
    let out = ferrax_in(&dir, &["--version"]);
    assert!(out.code == Some(0) && out.stdout.starts_with("ferrax "), "{}", out.stdout);
    let out = ferrax_in(&dir, &["swell", "--help"]);
    assert!(out.code == Some(0) && out.stdout.contains("--max"), "{}", out.stderr);
    let out = ferrax_in(&dir, &["swell", "--max", "100000"]);
    assert!(out.code == Some(2) && out.stderr.contains("invalid value '100000' for '--max <MAX>'"), "{}", out.stderr);
    let out = ferrax_in(&dir, &["explain", "x", "--at", "x=1", "stray"]);
    assert!(out.code == Some(2) && out.stderr.contains("unexpected argument 'stray'"), "{}", out.stderr);
    // --help lists every function the parser accepts, and the constants.
    let out = ferrax_in(&dir, &["explain", "--help"]);
    for f in ["sin", "cos", "tan", "exp", "ln", "log", "sqrt", "tanh", "sigmoid", "abs", "sign", "pi", "e = 2.718"] {
        assert!(out.stdout.contains(f), "{f} missing from:\n{}", out.stdout);
    }
    let out = ferrax_in(&dir, &["completions", "bash"]);
    assert!(out.code == Some(0) && out.stdout.contains("ferrax"), "{}", out.stderr);
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bad = std::ffi::OsStr::from_bytes(b"x\xff");
        let out = Command::new(env!("CARGO_BIN_EXE_ferrax")).args(["explain".as_ref(), bad]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("invalid UTF-8") && !stderr.contains("panicked"), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn explain_never_reports_nan_as_agreement_and_names_the_domain() {
    let dir = scratch("explain");
    let out = ferrax_in(&dir, &["explain", "ln(x)", "--at", "x=-1"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("outside the domain: ln at -1 is NaN"), "{}", out.stdout);
    assert!(out.stdout.contains("numerical vs symbolic disagree (NaN or infinite)"), "{}", out.stdout);
    let out = ferrax_in(&dir, &["explain", "x*y", "--at", "x=nan,y=2"]);
    assert!(out.stdout.contains("x is NaN"), "{}", out.stdout);
    assert!(out.stdout.contains("forward vs reverse disagree (NaN or infinite)"), "{}", out.stdout);
    let out = ferrax_in(&dir, &["explain", "1/x", "--at", "x=0"]);
    assert!(out.stdout.contains("outside the domain: 1/0 is inf"), "{}", out.stdout);
    let out = ferrax_in(&dir, &["explain", "sqrt(x)", "--at", "x=-1"]);
    assert!(out.stdout.contains("sqrt at -1 is NaN"), "{}", out.stdout);
    // At a kink the two engines take different one-sided derivatives, and say so.
    let out = ferrax_in(&dir, &["explain", "abs(x)", "--at", "x=0"]);
    assert!(out.stdout.contains("abs at 0 (in v_1) is a kink: AD takes the right-hand derivative 1"), "{}", out.stdout);
    // NaN points are left out of the plot, with a note saying so.
    let out = ferrax_in(&dir, &["explain", "ln(x)", "--at", "x=1e-12", "--plot", "e.svg"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let svg = std::fs::read_to_string(dir.join("e.svg")).unwrap();
    assert!(svg.contains("give a NaN or infinite difference quotient; left out"), "{svg}");
    assert!(!svg.contains("NaN,") && !svg.contains(",NaN"), "no NaN coordinates");
    // JSON carries the notes; NaN is null.
    let out = ferrax_in(&dir, &["explain", "ln(x)", "--at", "x=-1", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(j["value"].is_null());
    assert!(j["notes"][0].as_str().unwrap().contains("ln at -1"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn explain_output_is_careful_with_names_widths_and_sizes() {
    let dir = scratch("explain-manners");
    // `e` is the constant, not a variable.
    let out = ferrax_in(&dir, &["explain", "e*x", "--at", "e=2,x=1"]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("'e' is the constant e = 2.718281828459045, not a variable"), "{}", out.stderr);
    // The caret sits under the character, counted in display columns: an
    // ideographic space (U+3000) is whitespace two columns wide and three bytes long.
    let out = ferrax_in(&dir, &["explain", "\u{3000}x + * 2", "--at", "x=1"]);
    assert!(out.stderr.contains("at column 6\n  \u{3000}x + * 2\n        ^"), "{}", out.stderr);
    let out = ferrax_in(&dir, &["explain", "y,\u{3000}x + * 2", "--at", "x=1,y=1"]);
    assert!(out.stderr.contains("at column 8\n  y,\u{3000}x + * 2\n          ^"), "{}", out.stderr);
    // The output row is not labelled like a variable.
    let out = ferrax_in(&dir, &["explain", "x*y", "--at", "x=1,y=2"]);
    assert!(out.stdout.contains("\n      f = v_1"), "{}", out.stdout);
    // The adjoint table's columns line up (v̄ is one column wide, two characters).
    let rows: Vec<&str> = out.stdout.lines().filter(|l| l.trim_start().starts_with("v̄")).collect();
    let col = |l: &str| unicode_width::UnicodeWidthStr::width(&l[..l.rfind('=').unwrap()]);
    assert!(rows.len() >= 2 && rows.iter().all(|l| col(l) == col(rows[0])), "{rows:#?}");
    // Huge numbers in scientific notation.
    let out = ferrax_in(&dir, &["explain", "exp(x)", "--at", "x=100"]);
    assert!(out.stdout.contains("reverse      2.6881171418161356e43"), "{}", out.stdout);
    // --jacobian on a scalar function says there is nothing more to show.
    let out = ferrax_in(&dir, &["explain", "x*y", "--at", "x=1,y=2", "--jacobian"]);
    assert!(
        out.stdout.contains("f is a scalar function of scalars, so its Jacobian is the gradient"),
        "{}",
        out.stdout
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_diverging_run_stops_and_keeps_the_last_good_checkpoint() {
    let dir = scratch("diverge");
    let out = ferrax_in(&dir, &["train", "--epochs", "1"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let good = std::fs::read(dir.join("digits-mlp.safetensors")).unwrap();
    // An absurd learning rate: the weights blow up (or the loss becomes NaN).
    let out = ferrax_in(&dir, &["train", "--epochs", "3", "--lr", "1e300", "--resume", "digits-mlp.safetensors"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("training diverged: the"), "{}", out.stderr);
    assert!(!out.stdout.contains("test accuracy"), "{}", out.stdout);
    let after = std::fs::read(dir.join("digits-mlp.safetensors")).unwrap();
    // Either the first epoch of this run diverged (the file is untouched) or a
    // later one did (the file holds the last finite epoch, which still loads).
    if out.stderr.contains("is left as it was") {
        assert_eq!(after, good);
    }
    // One update to infinite weights, with a finite loss before it: caught by
    // the parameter check, nothing saved.
    let out =
        ferrax_in(&dir, &["train", "--epochs", "1", "--batch", "4096", "--lr", "1e300", "--out", "inf.safetensors"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("made layers.0.w non-finite; inf.safetensors is left as it was"), "{}", out.stderr);
    assert!(!dir.join("inf.safetensors").exists());
    let out =
        ferrax_in(&dir, &["train", "--epochs", "1", "--resume", "digits-mlp.safetensors", "--out", "x.safetensors"]);
    assert!(out.stdout.contains("resumed from"), "the kept checkpoint loads: {}", out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}
