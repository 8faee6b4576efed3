//! `ferrax train`: an MLP classifier on the UCI handwritten digits.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use ferrax::data::{accuracy, parse_digits_csv, Dataset, Standardizer};
use ferrax::io::{load_safetensors, save_safetensors};
use ferrax::nn::{softmax_cross_entropy, Activation, Mlp};
use ferrax::optim::{Adam, AdamState, Optimizer};
use ferrax::prelude::*;

use crate::args::Args;
use crate::plot::{stack, Chart, Series};

/// The digits data, compiled into the binary (see data/README.md for its source and licence).
const DIGITS_CSV: &str = include_str!("../../data/digits.csv");

pub const USAGE: &str = "\
ferrax train [options]
  Trains an MLP on the UCI handwritten digits (1,797 8x8 images, 10 classes)
  with Adam and softmax cross-entropy, prints the test accuracy and saves a
  checkpoint (parameters, optimizer state, epoch) as safetensors.

  --epochs N        epochs to train (default 30)
  --batch N         minibatch size (default 64)
  --lr X            Adam learning rate (default 0.001)
  --hidden A,B,..   hidden widths (default 128,64)
  --activation F    relu, tanh, sigmoid, gelu, softplus (default relu)
  --seed N          seed for the split, the initial weights and the batches (default 0)
  --out FILE        checkpoint to write (default digits-mlp.safetensors)
  --resume FILE     continue from a checkpoint written with the same model options
  --plot FILE.svg   draw the loss and accuracy curves
  --data FILE       a digits CSV to use instead of the built-in copy";

/// What a checkpoint holds: the model, the optimizer state and the epochs done.
#[derive(Tree)]
struct Checkpoint {
    model: Mlp,
    optimizer: AdamState<Mlp>,
    /// Epochs completed, an i64 scalar.
    epoch: Tensor,
}

/// One epoch's numbers.
struct EpochStats {
    loss: f64,
    train_acc: f64,
    test_acc: f64,
}

pub fn run(argv: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse(
        argv,
        &["epochs", "batch", "lr", "hidden", "activation", "seed", "out", "resume", "plot", "data"],
        &[],
    )?;
    let epochs: usize = args.parsed("epochs", 30)?;
    let batch: usize = args.parsed("batch", 64)?;
    let lr: f64 = args.parsed("lr", 1e-3)?;
    let seed: u64 = args.parsed("seed", 0)?;
    let hidden: Vec<usize> = args
        .value("hidden")
        .unwrap_or("128,64")
        .split(',')
        .map(|w| w.trim().parse().map_err(|_| format!("--hidden: '{w}' is not a width")))
        .collect::<Result<_, _>>()?;
    let act_name = args.value("activation").unwrap_or("relu");
    let activation = Activation::parse(act_name).ok_or_else(|| format!("--activation: unknown '{act_name}'"))?;
    let out = args.value("out").unwrap_or("digits-mlp.safetensors").to_string();

    let text = match args.value("data") {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("--data {path}: {e}"))?,
        None => DIGITS_CSV.to_string(),
    };
    let data = parse_digits_csv(&text)?;
    let (train, test) = data.split(0.2, seed);
    let scaler = Standardizer::fit(&train.x);
    let (train, test) = (
        Dataset { x: scaler.apply(&train.x), y: train.y.clone() },
        Dataset { x: scaler.apply(&test.x), y: test.y.clone() },
    );

    let mut widths = vec![64];
    widths.extend(&hidden);
    widths.push(10);
    let opt = Adam::new(lr);
    let mut model = Mlp::new(&widths, activation, DType::F32, seed);
    let mut state = opt.init(&model);
    let mut start_epoch = 0;
    if let Some(path) = args.value("resume") {
        let template = Checkpoint { model: model.clone(), optimizer: state.clone(), epoch: Tensor::scalar(0i64) };
        let c = load_safetensors(path, &template).map_err(|e| format!("--resume {path}: {e}"))?;
        (model, state, start_epoch) = (c.model, c.optimizer, c.epoch.item() as usize);
        println!("resumed from {path} after epoch {start_epoch}");
    }
    println!(
        "digits: {} training and {} test examples; MLP {widths:?} ({} parameters, {act_name}); Adam lr {lr}, batch {batch}",
        train.len(),
        test.len(),
        model.parameter_count()
    );

    let loss_fn = |m: &Mlp, d: &Dataset| softmax_cross_entropy(&m.forward(&d.x), &d.y);
    let tty = std::io::stdout().is_terminal();
    let mut history = Vec::new();
    for epoch in start_epoch..start_epoch + epochs {
        let t0 = Instant::now();
        let batches = train.batches(batch, seed.wrapping_add(1 + epoch as u64));
        let mut total = 0.0;
        for (i, b) in batches.iter().enumerate() {
            let (loss, g) = value_and_grad(|m: &Mlp| loss_fn(m, b))(&model);
            (model, state) = opt.update(&model, &g, &state);
            total += loss.item() * b.len() as f64;
            if tty {
                let done = i + 1;
                let bar: String = (0..20).map(|k| if k * batches.len() < done * 20 { '#' } else { '-' }).collect();
                print!(
                    "\repoch {:>3}/{} [{bar}] loss {:.4}",
                    epoch + 1,
                    start_epoch + epochs,
                    total / (done * batch).min(train.len()) as f64
                );
                let _ = std::io::stdout().flush();
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let stats = EpochStats {
            loss: total / train.len() as f64,
            train_acc: accuracy(&model.forward(&train.x), &train.y),
            test_acc: accuracy(&model.forward(&test.x), &test.y),
        };
        let line = format!(
            "epoch {:>3}/{} [####################] loss {:.4}  train acc {:.1}%  test acc {:.1}%  {:.0} examples/s",
            epoch + 1,
            start_epoch + epochs,
            stats.loss,
            100.0 * stats.train_acc,
            100.0 * stats.test_acc,
            train.len() as f64 / secs
        );
        if tty {
            print!("\r{line}\x1b[K\n");
        } else {
            println!("{line}");
        }
        history.push(stats);
    }
    let final_acc = accuracy(&model.forward(&test.x), &test.y);
    println!("test accuracy: {:.2}% ({} examples)", 100.0 * final_acc, test.len());
    let checkpoint = Checkpoint { model, optimizer: state, epoch: Tensor::scalar((start_epoch + epochs) as i64) };
    save_safetensors(&out, &checkpoint).map_err(|e| format!("{out}: {e}"))?;
    println!("saved the model and optimizer state to {out}");
    if let Some(path) = args.value("plot") {
        let xs: Vec<f64> = (start_epoch + 1..=start_epoch + epochs).map(|e| e as f64).collect();
        let line = |name: &str, f: &dyn Fn(&EpochStats) -> f64, color| Series {
            name: name.into(),
            points: xs.iter().zip(&history).map(|(x, s)| (*x, f(s))).collect(),
            color,
            dashed: false,
        };
        let charts = [
            Chart {
                title: "training loss".into(),
                x_label: "epoch".into(),
                y_label: "cross-entropy".into(),
                log_x: false,
                log_y: true,
                series: vec![line("train loss", &|s| s.loss, "#1f77b4")],
            },
            Chart {
                title: "accuracy".into(),
                x_label: "epoch".into(),
                y_label: "accuracy".into(),
                log_x: false,
                log_y: false,
                series: vec![line("train", &|s| s.train_acc, "#1f77b4"), line("test", &|s| s.test_acc, "#d62728")],
            },
        ];
        std::fs::write(path, stack(&charts)).map_err(|e| format!("--plot {path}: {e}"))?;
        println!("wrote the training curves to {path}");
    }
    Ok(())
}
