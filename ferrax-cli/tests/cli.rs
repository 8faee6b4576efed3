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
    assert!(stdout.contains("epoch  10/10 loss") && stdout.contains("examples/s"), "{stdout}");
    let acc = accuracy_of(&stdout);
    assert!(acc >= 95.0, "test accuracy {acc}%");
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
    // Resuming continues the epoch count from the checkpoint.
    let (stdout, stderr, ok) =
        run(&["train", "--epochs", "2", "--resume", ck.to_str().unwrap(), "--out", ck.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("resumed from") && stdout.contains("epoch  12/12"), "{stdout}");
    assert!(accuracy_of(&stdout) >= 95.0);
    // A run that contradicts the checkpoint is refused with the reason.
    let (_, stderr, ok) = run(&["train", "--epochs", "1", "--hidden", "32", "--resume", ck.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("--hidden 32 contradicts --resume"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_a_cnn_reaches_98_5_percent_and_resumes_only_as_a_cnn() {
    let dir = std::env::temp_dir().join(format!("ferrax-cli-cnn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = dir.join("cnn.safetensors");
    let plot = dir.join("cnn.svg");
    let (stdout, stderr, ok) = run(&[
        "train",
        "--model",
        "cnn",
        "--epochs",
        "20",
        "--out",
        ck.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("CNN [64, 16, 32, 10]"), "{stdout}");
    let acc = accuracy_of(&stdout);
    assert!(acc >= 98.5, "test accuracy {acc}%");
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
    let (stdout, stderr, ok) =
        run(&["train", "--epochs", "1", "--resume", ck.to_str().unwrap(), "--out", ck.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("resumed from") && stdout.contains("epoch  21/21"), "{stdout}");
    let (_, stderr, ok) = run(&["train", "--model", "mlp", "--resume", ck.to_str().unwrap()]);
    assert!(!ok && stderr.contains("--model mlp contradicts --resume"), "{stderr}");
    let (_, stderr, ok) = run(&["train", "--model", "cnn", "--hidden", "8", "--out", ck.to_str().unwrap()]);
    assert!(!ok && stderr.contains("give their two channel counts"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_a_character_transformer_learns_samples_and_plots() {
    let dir = std::env::temp_dir().join(format!("ferrax-cli-gpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ck, plot) = (dir.join("gpt.safetensors"), dir.join("gpt.svg"));
    let (stdout, stderr, ok) = run(&[
        "train",
        "--model",
        "gpt",
        "--steps",
        "200",
        "--out",
        ck.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    // A uniform guess over the 60 characters is ln 60 = 4.09 nats; 200 steps learn well below it.
    let last = stdout.lines().find(|l| l.starts_with("step   200/200")).expect("a progress line");
    let val: f64 = last.split("validation loss").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(val < 2.6, "validation loss {val}: {last}");
    assert!(stdout.contains("a sample (temperature 0.8) after \"In the beginning\":"), "{stdout}");
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
    assert!(std::fs::metadata(&ck).unwrap().len() > 400_000, "109,884 f32 parameters");
    let (_, stderr, ok) = run(&["train", "--model", "gpt", "--epochs", "3", "--out", ck.to_str().unwrap()]);
    assert!(!ok && stderr.contains("--epochs (use --steps) does not apply to --model gpt"), "{stderr}");
    let (_, stderr, ok) = run(&["train", "--steps", "3"]);
    assert!(!ok && stderr.contains("--steps applies to --model gpt only"), "{stderr}");
    let short = dir.join("short.txt");
    std::fs::write(&short, "too short").unwrap();
    let (_, stderr, ok) =
        run(&["train", "--model", "gpt", "--text", short.to_str().unwrap(), "--out", ck.to_str().unwrap()]);
    assert!(!ok && stderr.contains("too few"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_command_lines_exit_with_a_message() {
    let (_, stderr, ok) = run(&["train", "--epochs", "many"]);
    assert!(!ok && stderr.contains("invalid value 'many' for '--epochs <EPOCHS>'"), "{stderr}");
    let (_, stderr, ok) = run(&["frobnicate"]);
    assert!(!ok && stderr.contains("unrecognized subcommand 'frobnicate'"), "{stderr}");
}

const WORKED: &str = "ln(x1) + x1*x2 - sin(x2)";

#[test]
fn explain_shows_the_worked_example_four_ways_with_its_traces() {
    let (stdout, stderr, ok) = run(&["explain", WORKED, "--at", "x1=2,x2=5"]);
    assert!(ok, "{stderr}");
    // the primal trace, ending in y = 11.652
    assert!(stdout.contains("v_1 = ln v_-1"), "{stdout}");
    assert!(stdout.contains("y = v_5        =    11.65207146"), "{stdout}");
    // the tangent trace: the output row's tangents are the partials
    assert!(stdout.contains("v_5'             5.5   1.716337815"), "{stdout}");
    // the adjoint trace: x1's adjoint is 5.5
    let adj = stdout.lines().find(|l| l.trim_start().starts_with("v̄_-1")).expect("the adjoint of v_-1");
    assert!(adj.trim_end().ends_with("5.5"), "{adj}");
    assert!(stdout.contains("so ∂f/∂x1 = 5.5, ∂f/∂x2 = 1.716337815"), "{stdout}");
    // four methods
    assert!(stdout.contains("symbolic     1/x1 + x2  =  5.5"), "{stdout}");
    assert!(stdout.contains("symbolic     x1 - cos(x2)  =  1.7163378145367738"), "{stdout}");
    assert!(stdout.contains("reverse      1.7163378145367738"), "{stdout}");
    assert!(
        stdout.contains("agreement (largest relative difference): forward vs reverse 0.0e0, AD vs symbolic 0.0e0"),
        "{stdout}"
    );
    assert!(stdout.contains("expression swell: f has 9 nodes as a tree"), "{stdout}");
}

#[test]
fn explain_json_hessian_and_plot() {
    let dir = std::env::temp_dir().join(format!("ferrax-cli-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plot = dir.join("err.svg");
    let (stdout, stderr, ok) =
        run(&["explain", WORKED, "--at", "x1=2,x2=5", "--json", "--hessian", "--plot", plot.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    assert!((j["value"].as_f64().unwrap() - 11.652071455).abs() < 1e-8);
    assert_eq!(j["gradient"]["x1"]["reverse"].as_f64(), Some(5.5));
    assert_eq!(j["gradient"]["x1"]["forward"].as_f64(), Some(5.5));
    assert!((j["gradient"]["x2"]["symbolic_value"].as_f64().unwrap() - 1.716337815).abs() < 1e-9);
    assert_eq!(j["trace"][0]["adjoint"].as_f64(), Some(5.5));
    // d²f/dx1² = -1/x1² = -0.25, d²f/dx1dx2 = 1
    assert_eq!(j["hessian"]["ad"][0][0].as_f64(), Some(-0.25));
    assert_eq!(j["hessian"]["ad"][0][1].as_f64(), Some(1.0));
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.matches("<polyline").count() >= 6, "two charts of three lines");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn explain_jacobians_of_vector_functions() {
    let (stdout, stderr, ok) = run(&["explain", "x*y, sin(x)*y^2", "--at", "x=1,y=2", "--jacobian", "--json"]);
    assert!(ok, "{stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let jac = &j["jacobian_forward"];
    assert_eq!((jac[0][0].as_f64(), jac[0][1].as_f64()), (Some(2.0), Some(1.0)));
    assert!((jac[1][0].as_f64().unwrap() - 4.0 * 1f64.cos()).abs() < 1e-12);
    assert_eq!(j["jacobian_reverse_max_difference"].as_f64(), Some(0.0));
    assert_eq!(j["jacobian_symbolic"][1][1].as_str(), Some("2*sin(x)*y"));
    // vector inputs: an elementwise function has a diagonal Jacobian
    let (stdout, _, ok) = run(&["explain", "x^2", "--at", "x=1,2,3", "--jacobian", "--json"]);
    assert!(ok);
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        j["jacobian_forward"][1].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect::<Vec<_>>(),
        vec![0.0, 4.0, 0.0]
    );
}

#[test]
fn explain_errors_point_at_the_problem() {
    let (_, stderr, ok) = run(&["explain", "ln(x1 + * 2)", "--at", "x1=1"]);
    assert!(!ok);
    assert!(stderr.contains("unexpected '*' at column 9\n  ln(x1 + * 2)\n          ^"), "{stderr}");
    let (_, stderr, ok) = run(&["explain", "x + y", "--at", "x=1"]);
    assert!(!ok && stderr.contains("--at gives no value for y"), "{stderr}");
    let (_, stderr, ok) = run(&["explain", "x", "--at", "x=1,z=2"]);
    assert!(!ok && stderr.contains("names variables the expression does not use"), "{stderr}");
    let (_, stderr, ok) = run(&["explain", "x, y", "--at", "x=1,y=1", "--hessian"]);
    assert!(!ok && stderr.contains("--hessian and --plot are for a scalar function"), "{stderr}");
}

#[test]
fn swell_shows_trees_outgrowing_dags_and_ad_graphs() {
    let (stdout, stderr, ok) = run(&["swell", "--max", "6"]);
    assert!(ok, "{stderr}");
    let row: Vec<usize> = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("6 "))
        .unwrap()
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    // n, sin: tree DAG AD, product: tree DAG AD
    let (tree, dag, ad) = (row[4], row[5], row[6]);
    assert_eq!((tree, dag), (69, 25), "{stdout}");
    assert!(ad <= dag + 5, "the AD graph grows like the DAG, not the tree: {stdout}");
}

#[test]
fn explain_shows_the_program_jit_runs() {
    let (stdout, stderr, ok) = run(&["explain", "sin(x)*x + exp(-x^2)", "--at", "x=1,2,3", "--program", "--json"]);
    assert!(ok, "{stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let count = |k: &str| j[k].as_u64().unwrap();
    assert!(count("simplified_equations") < count("traced_equations"), "{stdout}");
    // The whole gradient is one elementwise chain over the vector: one fused equation.
    assert_eq!(count("fused_equations"), 1, "{stdout}");
    assert_eq!(j["fused_chains"][0].as_u64(), Some(count("simplified_equations")), "{stdout}");
    assert!(j["optimised"].as_str().unwrap().contains("fused[eqns="), "{stdout}");
    let (text, _, ok) = run(&["explain", "ln(x1) + x1*x2 - sin(x2)", "--at", "x1=2,x2=5", "--program"]);
    assert!(ok);
    assert!(text.contains("as traced (12 equations)") && text.contains("1 elementwise chain of"), "{text}");
    let (_, stderr, ok) = run(&["explain", "x^2", "--at", "x=1", "--program", "--hessian"]);
    assert!(!ok && stderr.contains("--program shows the gradient's program"), "{stderr}");
}

#[test]
fn inspect_lists_a_checkpoints_tensors_from_its_header() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../ferrax/tests/data/torch_mlp_bf16.safetensors");
    let (out, _, ok) = run(&["inspect", file]);
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0.weight", "BF16", "[4,", "3]", "12", "24", "B"]),
        "{out}"
    );
    assert!(out.contains("4 tensors, 26 elements, 52 B of data (BF16)"), "{out}");
    let (_, err, ok) = run(&["inspect", "/nonexistent.safetensors"]);
    assert!(!ok && err.contains("/nonexistent.safetensors") && err.contains("No such file"), "{err}");
}

#[test]
fn mixed_precision_training_matches_f32_accuracy() {
    let dir = std::env::temp_dir().join(format!("ferrax-cli-mixed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let train = |precision: &str| {
        let out = dir.join(format!("{precision}.safetensors"));
        let (stdout, stderr, ok) = run(&["train", "--precision", precision, "--out", out.to_str().unwrap()]);
        assert!(ok, "{stderr}");
        (accuracy_of(&stdout), stdout, out)
    };
    let (f32_acc, _, _) = train("f32");
    for precision in ["bf16", "f16"] {
        let (acc, stdout, out) = train(precision);
        assert!(stdout.contains(&format!("mixed precision ({precision} compute, f32 weights)")), "{stdout}");
        assert!((acc - f32_acc).abs() <= 0.5, "{precision}: {acc}% against f32's {f32_acc}%");
        // The checkpoint holds f32 master weights and remembers the precision.
        let header = ferrax::io::inspect_safetensors(&out).unwrap();
        let weights: Vec<_> = header.tensors.iter().filter(|t| t.name.starts_with("model.")).collect();
        assert!(weights.len() == 6 && weights.iter().all(|t| t.dtype == "F32"), "{weights:?}");
        assert_eq!(header.metadata["precision"], precision);
        let (_, stderr, ok) = run(&["train", "--epochs", "1", "--precision", "f32", "--resume", out.to_str().unwrap()]);
        assert!(!ok && stderr.contains("--precision f32 contradicts --resume"), "{stderr}");
    }
    let (_, stderr, ok) = run(&["train", "--precision", "f8"]);
    assert!(!ok && stderr.contains("'f8' is not f32, bf16 or f16"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn training_on_several_ranks_matches_one_rank() {
    use ferrax::prelude::*;
    use std::collections::BTreeMap;
    let dir = std::env::temp_dir().join(format!("ferrax-cli-ranks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let train = |ranks: &str| {
        let out = dir.join(format!("r{ranks}.safetensors"));
        let (stdout, stderr, ok) = run(&["train", "--epochs", "5", "--ranks", ranks, "--out", out.to_str().unwrap()]);
        assert!(ok, "{stderr}");
        (stdout, out)
    };
    let load = |path: &std::path::Path| -> BTreeMap<String, Tensor> {
        let header = ferrax::io::inspect_safetensors(path).unwrap();
        let template: BTreeMap<String, Tensor> = header
            .tensors
            .iter()
            .filter(|t| t.name.starts_with("model."))
            .map(|t| (t.name.clone(), Tensor::zeros(&t.shape, DType::F32)))
            .collect();
        let opts = ferrax::io::LoadOptions::new().strict(false);
        ferrax::io::load_safetensors_with(path, &template, &opts).unwrap().value
    };
    let (one, one_out) = train("1");
    let (two, two_out) = train("2");
    assert!(two.contains("2 data-parallel ranks") && two.matches("epoch ").count() == 5, "{two}");
    assert_eq!(accuracy_of(&one), accuracy_of(&two));
    // Each rank's gradient sum runs in another order than one rank's: the
    // weights agree to f32's rounding over 5 epochs of Adam.
    let (a, b) = (load(&one_out), load(&two_out));
    assert_eq!(a.len(), 6);
    for (name, t) in &a {
        let err = (t - &b[name]).abs().max().item();
        assert!(err < 1e-4, "{name}: {err}");
    }
    let (_, stderr, ok) = run(&["train", "--ranks", "2", "--precision", "bf16"]);
    assert!(!ok && stderr.contains("not supported yet"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
