//! The `ferrax` binary, run as a user runs it.

use std::process::Command;

fn run(args: &[&str]) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrax")).args(args).output().expect("the binary runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn the_demo_prints_the_worked_example_by_both_modes() {
    let (stdout, stderr, ok) = run(&[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("f(2, 5)   =  11.652071"), "{stdout}");
    for line in ["df/dx1    =   5.500000", "df/dx2    =   1.716338"] {
        assert_eq!(stdout.matches(line).count(), 2, "{line} by forward and by reverse mode:\n{stdout}");
    }
    let agreement = stdout.lines().find(|l| l.starts_with("agreement:")).expect("an agreement line");
    let numbers: Vec<&str> = agreement.split_whitespace().filter(|w| w.parse::<f64>().is_ok()).collect();
    assert_eq!(numbers.len(), 2, "{agreement}");
    assert_eq!(numbers[0], numbers[1], "jvp and vjp agree to the printed digits: {agreement}");
    assert!(stdout.contains("= cos b"), "the gradient's graph is printed:\n{stdout}");
}

fn accuracy_of(stdout: &str) -> f64 {
    let line = stdout.lines().find(|l| l.starts_with("test accuracy:")).expect("a test accuracy line");
    line.split_whitespace().nth(2).unwrap().trim_end_matches('%').parse().unwrap()
}

#[test]
fn train_reaches_95_percent_saves_resumes_and_plots() {
    let dir = std::env::temp_dir().join(format!("ferrax-cli-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = dir.join("m.safetensors");
    let plot = dir.join("curves.svg");
    let (stdout, stderr, ok) =
        run(&["train", "--epochs", "10", "--out", ck.to_str().unwrap(), "--plot", plot.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("epoch  10/10") && stdout.contains("examples/s"), "{stdout}");
    let acc = accuracy_of(&stdout);
    assert!(acc >= 95.0, "test accuracy {acc}%");
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
    // Resuming continues the epoch count from the checkpoint.
    let (stdout, stderr, ok) =
        run(&["train", "--epochs", "2", "--resume", ck.to_str().unwrap(), "--out", ck.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("resumed from") && stdout.contains("epoch  12/12"), "{stdout}");
    assert!(accuracy_of(&stdout) >= 95.0);
    // A checkpoint of another model is refused with the reason.
    let (_, stderr, ok) = run(&["train", "--epochs", "1", "--hidden", "32", "--resume", ck.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("is f32[64, 128] in the file but the structure expects f32[64, 32]"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_command_lines_exit_with_a_message() {
    let (_, stderr, ok) = run(&["train", "--epochs", "many"]);
    assert!(!ok && stderr.contains("--epochs: cannot read 'many'"), "{stderr}");
    let (_, stderr, ok) = run(&["frobnicate"]);
    assert!(!ok && stderr.contains("unknown command 'frobnicate'"), "{stderr}");
}
