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
