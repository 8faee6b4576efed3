//! `ferrax train --model gpt`: a character-level transformer language model
//! (2 pre-norm blocks of width 64 with 4 heads, a context of 32
//! characters), trained with Adam on a text — by default the Book of
//! Genesis in the King James Version (data/README.md) — then sampled.

use std::path::Path;
use std::time::Instant;

use ferrax::array::Rng;
use ferrax::io::save_safetensors_with_metadata;
use ferrax::nn::Gpt;
use ferrax::optim::{clip_grad_norm, Adam, Optimizer, Schedule};
use ferrax::prelude::*;

use crate::output::{failed, outln, prepare_outputs, usage, Failure};
use crate::plot::{stack, Chart, Series};

/// The default text, compiled into the binary.
const GENESIS: &str = include_str!("../../data/genesis.txt");

/// The model's sizes, as the benchmark defines them.
const DIM: usize = 64;
const HEADS: usize = 4;
const LAYERS: usize = 2;
const CONTEXT: usize = 32;
/// Steps between progress lines (and points on the curves).
const REPORT: usize = 100;

/// `batch` windows of `CONTEXT + 1` characters from `ids` at random offsets:
/// inputs and the next characters.
fn windows(ids: &[i64], batch: usize, rng: &mut Rng) -> (Tensor, Tensor) {
    let (mut x, mut y) = (Vec::with_capacity(batch * CONTEXT), Vec::with_capacity(batch * CONTEXT));
    for _ in 0..batch {
        let at = rng.below(ids.len() - CONTEXT);
        x.extend_from_slice(&ids[at..at + CONTEXT]);
        y.extend_from_slice(&ids[at + 1..at + CONTEXT + 1]);
    }
    (Tensor::from_vec(x, &[batch, CONTEXT]), Tensor::from_vec(y, &[batch, CONTEXT]))
}

/// What `ferrax train --model gpt` was asked for.
pub struct GptArgs<'a> {
    pub text: Option<&'a Path>,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    pub out: &'a Path,
    pub plot: Option<&'a Path>,
}

pub fn run(args: GptArgs) -> Result<(), Failure> {
    let (text, source) = match args.text {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| usage(format!("--text {}: {e}", p.display())))?,
            p.display().to_string(),
        ),
        None => (GENESIS.to_string(), "Genesis (King James Version)".to_string()),
    };
    let mut vocab: Vec<char> = text.chars().collect();
    vocab.sort_unstable();
    vocab.dedup();
    let ids: Vec<i64> = text.chars().map(|c| vocab.binary_search(&c).expect("in the vocabulary") as i64).collect();
    // The last tenth is held out for the validation loss.
    let split = ids.len() * 9 / 10;
    let (train, val) = (&ids[..split], &ids[split..]);
    if val.len() <= CONTEXT + 1 {
        return Err(usage(format!(
            "--text {source}: {} characters are too few; the held-out tenth needs more than {} (give at least {})",
            ids.len(),
            CONTEXT + 1,
            10 * (CONTEXT + 2)
        )));
    }
    let mut outputs = vec![("--out", args.out)];
    outputs.extend(args.plot.map(|p| ("--plot", p)));
    prepare_outputs(&outputs)?;

    let mut model = Gpt::new(vocab.len(), DIM, HEADS, LAYERS, CONTEXT, DType::F32, args.seed);
    let parameters: usize = model.leaves().iter().map(Tensor::size).sum();
    outln!(
        "{source}: {} characters, {} distinct; GPT of {LAYERS} blocks, width {DIM}, {HEADS} heads, context {CONTEXT} \
         ({parameters} parameters); Adam lr {} with warm-up and cosine decay, batch {}, {} steps",
        ids.len(),
        vocab.len(),
        args.lr,
        args.batch,
        args.steps
    );
    let schedule = Schedule::cosine(args.lr, args.steps.min(100), args.steps);
    let mut state = Adam::new(args.lr).init(&model);
    let loss_and_grad = jit(|(m, x, y): &(Gpt, Tensor, Tensor)| value_and_grad(|m: &Gpt| m.loss(x, y))(m));
    let eval = jit(|(m, x, y): &(Gpt, Tensor, Tensor)| m.loss(x, y));
    let mut val_rng = Rng::new(args.seed.wrapping_add(7));
    let val_batches: Vec<(Tensor, Tensor)> = (0..8).map(|_| windows(val, args.batch, &mut val_rng)).collect();
    let mut rng = Rng::new(args.seed.wrapping_add(1));
    let (mut curve, mut running, start) = (Vec::new(), 0.0, Instant::now());
    for step in 0..args.steps {
        let (x, y) = windows(train, args.batch, &mut rng);
        let (loss, g) = loss_and_grad(&(model.clone(), x, y));
        let loss = loss.item();
        if !loss.is_finite() {
            return Err(failed(format!(
                "training diverged: the loss is {loss} at step {} (try a smaller --lr)",
                step + 1
            )));
        }
        let (g, _) = clip_grad_norm(&g, 1.0);
        (model, state) = Adam::new(schedule.at(step)).update(&model, &g, &state);
        running += loss;
        if (step + 1) % REPORT == 0 || step + 1 == args.steps {
            let n = (step % REPORT + 1) as f64;
            let val_loss =
                val_batches.iter().map(|(x, y)| eval(&(model.clone(), x.clone(), y.clone())).item()).sum::<f64>()
                    / val_batches.len() as f64;
            outln!(
                "step {:>5}/{}  train loss {:.3}  validation loss {:.3}  {:.1} steps/s",
                step + 1,
                args.steps,
                running / n,
                val_loss,
                (step + 1) as f64 / start.elapsed().as_secs_f64()
            );
            curve.push(((step + 1) as f64, running / n, val_loss));
            running = 0.0;
        }
    }
    let meta = std::collections::BTreeMap::from([
        ("format".to_string(), "ferrax-train-char-gpt/1".to_string()),
        ("vocabulary".to_string(), vocab.iter().collect::<String>()),
        ("layers".to_string(), LAYERS.to_string()),
        ("dim".to_string(), DIM.to_string()),
        ("heads".to_string(), HEADS.to_string()),
        ("context".to_string(), CONTEXT.to_string()),
    ]);
    save_safetensors_with_metadata(args.out, &model, &meta)
        .map_err(|e| failed(format!("--out {}: {e}", args.out.display())))?;
    outln!("saved the model and its vocabulary to {}", args.out.display());
    let prompt: String = text.chars().take(CONTEXT / 2).collect();
    outln!("a sample (temperature 0.8) after {prompt:?}:\n{}", sample(&model, &vocab, &prompt, 300, args.seed));
    if let Some(path) = args.plot {
        let line = |name: &str, i: usize, color| Series {
            name: name.into(),
            points: curve.iter().map(|p| (p.0, if i == 0 { p.1 } else { p.2 })).collect(),
            color,
            dashed: false,
        };
        let chart = Chart {
            title: "character-level transformer".into(),
            x_label: "step".into(),
            y_label: "cross-entropy (nats per character)".into(),
            log_x: false,
            log_y: false,
            series: vec![line("train", 0, "#1f77b4"), line("validation", 1, "#d62728")],
            note: None,
        };
        ferrax::io::write_atomically(path, stack(&[chart]).as_bytes())
            .map_err(|e| failed(format!("--plot {}: {e}", path.display())))?;
        outln!("wrote the loss curve to {}", path.display());
    }
    Ok(())
}

/// `len` characters drawn one at a time from the model's next-character
/// distribution at temperature 0.8, each conditioned on the last `CONTEXT`.
fn sample(model: &Gpt, vocab: &[char], prompt: &str, len: usize, seed: u64) -> String {
    let mut ids: Vec<i64> = prompt.chars().filter_map(|c| vocab.binary_search(&c).ok()).map(|i| i as i64).collect();
    let mut rng = Rng::new(seed.wrapping_add(99));
    let mut out = String::from(prompt);
    for _ in 0..len {
        let window = &ids[ids.len().saturating_sub(CONTEXT)..];
        let x = Tensor::from_vec(window.to_vec(), &[1, window.len()]);
        let logits = model.logits(&x).slice(1, window.len() - 1, window.len()).reshape(&[vocab.len()]);
        let probs: Vec<f64> = (logits / 0.8).softmax(0).to_vec();
        let mut u = rng.uniform();
        let next = probs.iter().position(|&p| {
            u -= p;
            u < 0.0
        });
        let next = next.unwrap_or(vocab.len() - 1);
        ids.push(next as i64);
        out.push(vocab[next]);
    }
    out
}
