//! `ferrax train`: an MLP or a small convolutional network classifying the
//! UCI handwritten digits.
//!
//! Every option is checked before any work; the checkpoint carries what is
//! needed to use and to resume the model (widths, activation, input
//! scaling, seed, split, batch size, a fingerprint of the data), and
//! `--resume` refuses options that contradict it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ferrax::data::{accuracy, parse_digits_csv, Dataset, Standardizer};
use ferrax::distributed::DataParallel;
use ferrax::io::{load_safetensors, load_safetensors_metadata, save_safetensors_with_metadata};
use ferrax::nn::{softmax_cross_entropy, Activation, Mlp};
use ferrax::optim::{Adam, AdamState, LossScale, MixedPrecision, Optimizer};
use ferrax::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use crate::digits_models::{Classifier, DigitsCnn};
use crate::output::{check_svg_name, failed, outln, prepare_outputs, usage, Failure};
use crate::plot::{stack, Chart, Series};
use crate::ranks;

/// The digits data, compiled into the binary (see data/README.md for its source and licence).
const DIGITS_CSV: &str = include_str!("../../data/digits.csv");

/// The checkpoint format this version writes and reads.
const FORMAT: &str = "ferrax-train-digits-mlp/2";

/// The fraction of the examples held out for testing.
const TEST_FRACTION: f64 = 0.2;

/// More parameters than this are refused before anything is allocated:
/// with Adam's two moments and a gradient, 2^28 f32 parameters need 4 GiB.
const MAX_PARAMETERS: u128 = 1 << 28;

/// `ferrax train`'s options. Those that define the run (widths, activation,
/// seed, batch size, data) default to the checkpoint's under `--resume`.
#[derive(clap::Args)]
#[command(
    after_help = "Trains an MLP or a CNN on the UCI handwritten digits (1,797 8x8 images, 10 classes) with Adam and \
softmax cross-entropy, prints the test accuracy, and saves a checkpoint after every epoch: the parameters, the \
optimizer state, the epoch, the input scaling, and what the run was (model, widths, activation, seed, split, \
batch, data)."
)]
pub struct Args {
    /// Epochs to train (at least 1) [default: 30]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: Option<u32>,
    /// Minibatch size [default: 64]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    batch: Option<u32>,
    /// Adam learning rate, a finite positive number [default: 1e-3; gpt: 3e-3]
    #[arg(long, value_parser = positive_finite, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// mlp; cnn: two 3x3 convolutions with ReLU, a 2x2 max-pool and a linear layer; or gpt: a character-level
    /// transformer trained on --text [default: mlp]
    #[arg(long, value_parser = model_kind)]
    model: Option<ModelKind>,
    /// With --model gpt: the text to learn (UTF-8) [default: the built-in Book of Genesis]
    #[arg(long)]
    text: Option<PathBuf>,
    /// With --model gpt: optimizer steps (at least 1) [default: 2000]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    steps: Option<u32>,
    /// Hidden widths (the convolutions' channels with --model cnn), comma-separated [default: 128,64; cnn: 16,32]
    #[arg(long, value_parser = widths)]
    hidden: Option<Widths>,
    /// relu, tanh, sigmoid, gelu, gelu_tanh, softplus or identity [default: relu]
    #[arg(long, value_parser = activation)]
    activation: Option<Activation>,
    /// Seed for the split, the initial weights and the batches [default: 0]
    #[arg(long)]
    seed: Option<u64>,
    /// Checkpoint to write (after every epoch, atomically) [default: digits-mlp.safetensors, digits-cnn.safetensors
    /// or char-gpt.safetensors]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from a checkpoint; options that contradict it are refused
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Draw the loss and accuracy curves (an .svg file)
    #[arg(long)]
    plot: Option<PathBuf>,
    /// A digits CSV to use instead of the built-in copy
    #[arg(long)]
    data: Option<PathBuf>,
    /// f32; or bf16 or f16: mixed precision, the forward and backward passes in that type with f32 master weights
    /// (f16 with dynamic loss scaling, skipping a step whose gradients overflow) [default: f32]
    #[arg(long, value_parser = precision)]
    precision: Option<Precision>,
    /// Data-parallel ranks: threads of this process, each computing the gradients of its share of every batch,
    /// summed across ranks before the same update on each (1 to 64) [default: 1]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    ranks: Option<u32>,
}

/// The arithmetic of the training steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Precision {
    F32,
    Bf16,
    F16,
}

impl Precision {
    fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }

    /// How a step computes, when not in f32.
    fn mixed(self) -> Option<MixedPrecision> {
        match self {
            Precision::F32 => None,
            Precision::Bf16 => Some(MixedPrecision::bf16()),
            Precision::F16 => Some(MixedPrecision::f16()),
        }
    }
}

fn precision(s: &str) -> Result<Precision, String> {
    match s {
        "f32" => Ok(Precision::F32),
        "bf16" => Ok(Precision::Bf16),
        "f16" => Ok(Precision::F16),
        _ => Err(format!("'{s}' is not f32, bf16 or f16")),
    }
}

/// Which network `ferrax train` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModelKind {
    Mlp,
    Cnn,
    Gpt,
}

impl ModelKind {
    fn name(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn => "cnn",
            ModelKind::Gpt => "gpt",
        }
    }
}

fn model_kind(s: &str) -> Result<ModelKind, String> {
    match s {
        "mlp" => Ok(ModelKind::Mlp),
        "cnn" => Ok(ModelKind::Cnn),
        "gpt" => Ok(ModelKind::Gpt),
        _ => Err(format!("'{s}' is not a model; use mlp, cnn or gpt")),
    }
}

impl Args {
    /// The checkpoint's path: --out, or the model's default name.
    fn out(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            PathBuf::from(match self.model {
                Some(ModelKind::Cnn) => "digits-cnn.safetensors",
                Some(ModelKind::Gpt) => "char-gpt.safetensors",
                _ => "digits-mlp.safetensors",
            })
        })
    }
}

/// `--model gpt`: the options that apply to it, the others refused.
fn run_gpt(args: &Args) -> Result<(), Failure> {
    let not_for_gpt = [
        ("--epochs (use --steps)", args.epochs.is_some()),
        ("--hidden", args.hidden.is_some()),
        ("--activation", args.activation.is_some()),
        ("--resume", args.resume.is_some()),
        ("--data (use --text)", args.data.is_some()),
    ];
    if let Some((flag, _)) = not_for_gpt.iter().find(|(_, given)| *given) {
        return Err(usage(format!("{flag} does not apply to --model gpt")));
    }
    if let Some(p) = &args.plot {
        check_svg_name("--plot", p)?;
    }
    let out = args.out();
    crate::gpt::run(crate::gpt::GptArgs {
        text: args.text.as_deref(),
        steps: args.steps.map_or(2000, |s| s as usize),
        batch: args.batch.map_or(32, |b| b as usize),
        lr: args.lr.unwrap_or(3e-3),
        seed: args.seed.unwrap_or(0),
        out: &out,
        plot: args.plot.as_deref(),
    })
}

/// Hidden widths, as a clap value.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Widths(Vec<usize>);

fn positive_finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) => Err(format!("{v} is not a finite positive number")),
        Err(_) => Err(format!("'{s}' is not a number")),
    }
}

fn widths(s: &str) -> Result<Widths, String> {
    let ws = s
        .split(',')
        .map(|w| match w.trim().parse::<usize>() {
            Ok(0) => Err("a width of 0 leaves no units in the layer".to_string()),
            Ok(n) => Ok(n),
            Err(_) => Err(format!("'{}' is not a width", w.trim())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Widths(ws))
}

fn activation(s: &str) -> Result<Activation, String> {
    Activation::parse(s).ok_or_else(|| "expected relu, tanh, sigmoid, gelu, gelu_tanh, softplus or identity".into())
}

fn activation_name(a: Activation) -> &'static str {
    match a {
        Activation::Relu => "relu",
        Activation::Tanh => "tanh",
        Activation::Sigmoid => "sigmoid",
        Activation::Gelu => "gelu",
        Activation::GeluTanh => "gelu_tanh",
        Activation::Softplus => "softplus",
        Activation::Silu => "silu",
        Activation::Identity => "identity",
    }
}

/// What a checkpoint holds: the model, the optimizer state, the epochs
/// done, and the input scaling the model was trained with.
#[derive(Tree)]
struct Checkpoint<M> {
    model: M,
    optimizer: AdamState<M>,
    /// Epochs completed, an i64 scalar.
    epoch: Tensor,
    /// Per-pixel mean and standard deviation of the training inputs.
    scaling: (Tensor, Tensor),
}

/// What defines a run: a resumed run must have the same.
#[derive(Clone, Debug, PartialEq)]
struct Run {
    model: ModelKind,
    /// `[64, hidden.., 10]`; with the CNN the hidden widths are its channels.
    widths: Vec<usize>,
    activation: Activation,
    seed: u64,
    batch: usize,
    test_fraction: f64,
    /// Where the data came from, and a fingerprint of its text.
    data: String,
    data_hash: u64,
    precision: Precision,
}

impl Run {
    fn metadata(&self, lr: f64) -> BTreeMap<String, String> {
        let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        BTreeMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("model".to_string(), self.model.name().to_string()),
            ("widths".to_string(), list(&self.widths)),
            ("activation".to_string(), activation_name(self.activation).to_string()),
            ("seed".to_string(), self.seed.to_string()),
            ("batch".to_string(), self.batch.to_string()),
            ("test_fraction".to_string(), self.test_fraction.to_string()),
            ("data".to_string(), self.data.clone()),
            ("data_hash".to_string(), format!("{:016x}", self.data_hash)),
            ("lr".to_string(), lr.to_string()),
            ("precision".to_string(), self.precision.name().to_string()),
        ])
    }

    fn from_metadata(path: &Path, meta: &BTreeMap<String, String>) -> Result<Run, Failure> {
        let bad = |what: &str| usage(format!("--resume {}: {what}", path.display()));
        match meta.get("format") {
            Some(f) if f == FORMAT => {}
            Some(f) => return Err(bad(&format!("a checkpoint of format '{f}', not '{FORMAT}'"))),
            None => return Err(bad("not a ferrax train checkpoint (its header has no run description)")),
        }
        let get = |k: &str| meta.get(k).ok_or_else(|| bad(&format!("the checkpoint's header lacks '{k}'")));
        let parse_err = |k: &str| bad(&format!("the checkpoint's '{k}' cannot be read"));
        let widths = get("widths")?
            .split(',')
            .map(|w| w.parse::<usize>().ok().filter(|&w| w > 0))
            .collect::<Option<Vec<_>>>()
            .filter(|w| w.len() >= 2 && w[0] == 64 && *w.last().unwrap() == 10)
            .ok_or_else(|| parse_err("widths"))?;
        // Checkpoints from before the CNN have no "model": they are MLPs.
        let model = match meta.get("model") {
            Some(m) => model_kind(m).map_err(|_| parse_err("model"))?,
            None => ModelKind::Mlp,
        };
        if model == ModelKind::Cnn && widths.len() != 4 {
            return Err(parse_err("widths"));
        }
        Ok(Run {
            model,
            widths,
            activation: Activation::parse(get("activation")?).ok_or_else(|| parse_err("activation"))?,
            seed: get("seed")?.parse().map_err(|_| parse_err("seed"))?,
            batch: get("batch")?.parse().ok().filter(|&b| b > 0).ok_or_else(|| parse_err("batch"))?,
            test_fraction: get("test_fraction")?
                .parse()
                .ok()
                .filter(|f: &f64| *f > 0.0 && *f < 1.0)
                .ok_or_else(|| parse_err("test_fraction"))?,
            data: get("data")?.clone(),
            data_hash: u64::from_str_radix(get("data_hash")?, 16).map_err(|_| parse_err("data_hash"))?,
            // Checkpoints from before mixed precision were trained in f32.
            precision: match meta.get("precision") {
                Some(p) => precision(p).map_err(|_| parse_err("precision"))?,
                None => Precision::F32,
            },
        })
    }
}

/// FNV-1a, 64 bits: a fingerprint of the data's text, to notice a resumed
/// run on other data.
fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// One epoch's numbers.
struct EpochStats {
    loss: f64,
    train_acc: f64,
    test_acc: f64,
}

/// The options merged with the checkpoint being resumed: an option given on
/// the command line must agree with the checkpoint.
fn resolve(args: &Args, resumed: Option<(&Path, &Run)>, data: &str, data_hash: u64) -> Result<Run, Failure> {
    let model = args.model.unwrap_or(ModelKind::Mlp);
    let default_hidden = if model == ModelKind::Cnn { vec![16, 32] } else { vec![128, 64] };
    let fresh = Run {
        model,
        widths: [64].into_iter().chain(args.hidden.clone().map_or(default_hidden, |w| w.0)).chain([10]).collect(),
        activation: args.activation.unwrap_or(Activation::Relu),
        seed: args.seed.unwrap_or(0),
        batch: args.batch.map_or(64, |b| b as usize),
        test_fraction: TEST_FRACTION,
        data: data.to_string(),
        data_hash,
        precision: args.precision.unwrap_or(Precision::F32),
    };
    let Some((path, old)) = resumed else {
        if fresh.model == ModelKind::Cnn && fresh.widths.len() != 4 {
            return Err(usage(format!(
                "--hidden: the CNN has two convolutions; give their two channel counts (like 16,32), not {}",
                fresh.widths.len() - 2
            )));
        }
        return Ok(fresh);
    };
    let refuse = |flag: &str, given: String, saved: String| {
        usage(format!(
            "{flag} {given} contradicts --resume {}, which was trained with {flag} {saved}; leave {flag} out to \
             continue that run",
            path.display()
        ))
    };
    if let Some(m) = args.model.filter(|&m| m != old.model) {
        return Err(refuse("--model", m.name().into(), old.model.name().into()));
    }
    if let Some(h) = &args.hidden {
        if old.widths[1..old.widths.len() - 1] != h.0[..] {
            let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
            return Err(refuse("--hidden", list(&h.0), list(&old.widths[1..old.widths.len() - 1])));
        }
    }
    if let Some(a) = args.activation.filter(|&a| a != old.activation) {
        return Err(refuse("--activation", activation_name(a).into(), activation_name(old.activation).into()));
    }
    if let Some(s) = args.seed.filter(|&s| s != old.seed) {
        // The seed fixes the split: another seed would test on training examples.
        return Err(refuse("--seed", s.to_string(), old.seed.to_string()));
    }
    if let Some(b) = args.batch.filter(|&b| b as usize != old.batch) {
        return Err(refuse("--batch", b.to_string(), old.batch.to_string()));
    }
    if let Some(p) = args.precision.filter(|&p| p != old.precision) {
        return Err(refuse("--precision", p.name().into(), old.precision.name().into()));
    }
    if data_hash != old.data_hash {
        return Err(usage(format!(
            "--resume {}: the checkpoint was trained on {} and this run reads {data} (other examples); the test \
             split would no longer be held out",
            path.display(),
            old.data
        )));
    }
    Ok(old.clone())
}

pub fn run(args: Args) -> Result<(), Failure> {
    if args.model == Some(ModelKind::Gpt) && args.precision.is_some() {
        return Err(usage("--precision applies to --model mlp and cnn"));
    }
    if args.model == Some(ModelKind::Gpt) && args.ranks.is_some() {
        return Err(usage("--ranks applies to --model mlp and cnn"));
    }
    if args.model == Some(ModelKind::Gpt) {
        return run_gpt(&args);
    }
    for (flag, given) in [("--text", args.text.is_some()), ("--steps", args.steps.is_some())] {
        if given {
            return Err(usage(format!("{flag} applies to --model gpt only")));
        }
    }
    // Everything that can be refused is refused before any work, and before
    // anything is written.
    if let Some(p) = &args.plot {
        check_svg_name("--plot", p)?;
    }
    let (text, source) = match &args.data {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| usage(format!("--data {}: {e}", path.display())))?,
            path.display().to_string(),
        ),
        None => (DIGITS_CSV.to_string(), "the built-in digits".to_string()),
    };
    let data = parse_digits_csv(&text).map_err(|e| usage(format!("--data {source}: {e}")))?;
    let resumed = match &args.resume {
        Some(path) => {
            let meta =
                load_safetensors_metadata(path).map_err(|e| usage(format!("--resume {}: {e}", path.display())))?;
            Some((path.as_path(), Run::from_metadata(path, &meta)?))
        }
        None => None,
    };
    let run = resolve(&args, resumed.as_ref().map(|(p, r)| (*p, r)), &source, fingerprint(&text))?;
    let parameters: u128 = match run.model {
        ModelKind::Mlp => run.widths.windows(2).map(|w| (w[0] as u128 + 1) * w[1] as u128).sum(),
        ModelKind::Cnn | ModelKind::Gpt => {
            let (c1, c2) = (run.widths[1] as u128, run.widths[2] as u128);
            c1 * 10 + c2 * (9 * c1 + 1) + (16 * c2 + 1) * 10
        }
    };
    if parameters > MAX_PARAMETERS {
        return Err(usage(format!(
            "--hidden: widths {:?} make {parameters} parameters, more than the {MAX_PARAMETERS} this command trains \
             (4 GiB with Adam's state)",
            &run.widths[1..run.widths.len() - 1]
        )));
    }
    let (train, test) = data.split(run.test_fraction, run.seed);
    if train.is_empty() || test.is_empty() {
        return Err(usage(format!(
            "--data {source}: {} examples are too few to hold out {}% for testing; give at least 3",
            data.len(),
            100.0 * run.test_fraction
        )));
    }

    let out = args.out();
    let mut outputs = vec![("--out", out.as_path())];
    outputs.extend(args.plot.as_deref().map(|p| ("--plot", p)));
    prepare_outputs(&outputs)?;

    let resumed = resumed.as_ref().map(|(p, _)| *p);
    let ranks = args.ranks.map_or(1, |r| r as usize);
    if ranks > 1 && run.precision != Precision::F32 {
        return Err(usage(format!(
            "--ranks {ranks} with --precision {} is not supported yet; train in f32 on several ranks, or in {0} on one",
            run.precision.name()
        )));
    }
    let train_on = |dp: Option<DataParallel>| match run.model {
        ModelKind::Mlp => {
            let model = Mlp::new(&run.widths, run.activation, DType::F32, run.seed);
            train_model(&args, &run, model, (train.clone(), test.clone()), resumed, dp)
        }
        ModelKind::Cnn => {
            let model = DigitsCnn::new(run.widths[1], run.widths[2], run.activation, run.seed);
            train_model(&args, &run, model, (train.clone(), test.clone()), resumed, dp)
        }
        ModelKind::Gpt => unreachable!("--model gpt is run by run_gpt"),
    };
    if let Some(size) = ranks::mpi_job_size() {
        if ranks > 1 {
            return Err(usage("--ranks starts threads of one process; under mpirun each process is a rank already"));
        }
        if run.precision != Precision::F32 {
            return Err(usage(format!(
                "--precision {} across MPI processes is not supported yet",
                run.precision.name()
            )));
        }
        return ranks::train_on_mpi(size, &train_on);
    }
    ranks::train_on_threads(ranks, &train_on)
}

/// The training loop, checkpoints and curves of either network.
fn train_model<M: Classifier>(
    args: &Args,
    run: &Run,
    mut model: M,
    (train, test): (Dataset, Dataset),
    resumed: Option<&Path>,
    dp: Option<DataParallel>,
) -> Result<(), Failure> {
    // With several ranks, rank 0 prints and writes; the others train alike in silence.
    let lead = dp.as_ref().is_none_or(|d| d.rank() == 0);
    let opt = Adam::new(args.lr.unwrap_or(1e-3));
    let mut state = opt.init(&model);
    // The loss scale starts afresh on a resumed run (it adapts within steps).
    let mut loss_scale = run.precision.mixed().unwrap_or_else(MixedPrecision::bf16).init();
    let mut scaling = {
        let s = Standardizer::fit(&train.x);
        (s.mean, s.std)
    };
    let steps_per_epoch = train.len().div_ceil(run.batch);
    let mut start_epoch = 0;
    if let Some(path) = resumed {
        let template = Checkpoint { model, optimizer: state, epoch: Tensor::scalar(0i64), scaling };
        let c = load_safetensors(path, &template).map_err(|e| usage(format!("--resume {}: {e}", path.display())))?;
        start_epoch = checked_epoch(path, &c, steps_per_epoch)?;
        (model, state, scaling) = (c.model, c.optimizer, c.scaling);
        if lead {
            outln!("resumed from {} after epoch {start_epoch}", path.display());
        }
    }
    if let Some(dp) = &dp {
        // Every rank starts from rank 0's parameters and state.
        let synced = dp.sync(&(model, state)).map_err(|e| failed(format!("--ranks: {e}")))?;
        (model, state) = synced;
    }
    let scaler = Standardizer { mean: scaling.0.clone(), std: scaling.1.clone() };
    let (train, test) = (
        Dataset { x: scaler.apply(&train.x), y: train.y.clone() },
        Dataset { x: scaler.apply(&test.x), y: test.y.clone() },
    );
    if lead {
        outln!(
            "digits: {} training and {} test examples; {} {:?} ({} parameters, {}); Adam lr {}, batch {}{}{}",
            train.len(),
            test.len(),
            run.model.name().to_uppercase(),
            run.widths,
            model.leaves().iter().map(Tensor::size).sum::<usize>(),
            activation_name(run.activation),
            readable(args.lr.unwrap_or(1e-3)),
            run.batch,
            match run.precision {
                Precision::F32 => String::new(),
                p => format!(", mixed precision ({} compute, f32 weights)", p.name()),
            },
            match &dp {
                Some(dp) => format!(", {} data-parallel ranks", dp.size()),
                None => String::new(),
            }
        );
    }

    // An epoch is one jitted scan of the optimizer step over the full
    // batches (and the step once more for a last, smaller batch): staged
    // once, it runs without returning to Rust between batches. Each step
    // also gives its loss and the largest magnitude of each updated
    // parameter, for the divergence checks below.
    type Carry<M> = (M, AdamState<M>, LossScale);
    let mixed = run.precision.mixed();
    let step = move |(m, s, scale): &Carry<M>, (x, y): &(Tensor, Tensor)| {
        let (m, s, scale, loss, taken) = match mixed {
            None => {
                let (loss, g) = match &dp {
                    // The batch's gradients from every rank's share, summed in the step.
                    Some(dp) => dp.value_and_grad(|m: &M, x, y| softmax_cross_entropy(&m.logits(x), y), m, x, y),
                    None => value_and_grad(|m: &M| softmax_cross_entropy(&m.logits(x), y))(m),
                };
                let (m, s) = opt.update(m, &g, s);
                (m, s, scale.clone(), loss, Tensor::scalar(true))
            }
            Some(mp) => {
                // The logits go back to f32 for the softmax and its
                // cross-entropy, as PyTorch's autocast keeps them.
                let loss = |m: &M| softmax_cross_entropy(&m.logits(&x.to_dtype(mp.compute)).to_dtype(DType::F32), y);
                let st = mp.step(&opt, loss, m, s, scale);
                (st.params, st.state, st.scale, st.loss, st.finite)
            }
        };
        let maxima: Vec<Tensor> = m.leaves().iter().map(|p| p.abs().max()).collect();
        ((m, s, scale), (loss, maxima, taken))
    };
    let scan_step = step.clone();
    let epoch_scan =
        jit(move |(c, xs, ys): &(Carry<M>, Tensor, Tensor)| scan(&scan_step, c, &(xs.clone(), ys.clone())));
    let one_step = jit(move |(c, x, y): &(Carry<M>, Tensor, Tensor)| step(c, &(x.clone(), y.clone())));
    let epochs = args.epochs.map_or(30, |e| e as usize);
    let out = args.out();
    let last = start_epoch + epochs;
    let mut history = Vec::new();
    let paths = model.leaf_paths();
    for epoch in start_epoch..last {
        let t0 = Instant::now();
        let batches = train.batches(run.batch, run.seed.wrapping_add(1 + epoch as u64));
        let bar = if lead { progress_bar(batches.len(), epoch + 1, last) } else { ProgressBar::hidden() };
        let full = batches.iter().take_while(|b| b.len() == run.batch).count();
        let mut carry = (model.clone(), state.clone(), loss_scale.clone());
        // Per batch: the loss, each parameter's largest magnitude after the
        // update, and whether the step was taken (not skipped for overflow).
        let mut steps: Vec<(f64, Vec<f64>, bool)> = Vec::new();
        if full > 0 {
            let stack = |f: fn(&Dataset) -> &Tensor| {
                Tensor::stack(&batches[..full].iter().map(|b| f(b).clone()).collect::<Vec<_>>(), 0)
            };
            let (c, (losses, maxima, taken)) = epoch_scan(&(carry, stack(|b| &b.x), stack(|b| &b.y)));
            let maxima: Vec<Vec<f64>> = maxima.iter().map(|m| m.to_dtype(DType::F64).to_vec::<f64>()).collect();
            let losses = losses.to_dtype(DType::F64).to_vec::<f64>();
            let taken = taken.to_vec::<bool>();
            steps.extend((0..full).map(|i| (losses[i], maxima.iter().map(|m| m[i]).collect(), taken[i])));
            carry = c;
        }
        for b in &batches[full..] {
            let (c, (loss, maxima, taken)) = one_step(&(carry, b.x.clone(), b.y.clone()));
            steps.push((loss.item(), maxima.iter().map(Tensor::item).collect(), taken.item() != 0.0));
            carry = c;
        }
        bar.inc(batches.len() as u64);
        let (mut total, mut examples, mut skipped) = (0.0, 0, 0);
        for (i, (loss, maxima, taken)) in steps.iter().enumerate() {
            if !taken {
                // Its gradients overflowed the compute type: nothing changed
                // but the loss scale, which backed off.
                skipped += 1;
                continue;
            }
            if !loss.is_finite() {
                bar.abandon();
                return Err(failed(format!(
                    "training diverged: the loss is {loss} at epoch {}, batch {}; {} (try a smaller --lr)",
                    epoch + 1,
                    i + 1,
                    kept(&out, epoch, start_epoch)
                )));
            }
            if let Some(k) = maxima.iter().position(|m| !m.is_finite()) {
                bar.abandon();
                return Err(failed(format!(
                    "training diverged: the update of epoch {}, batch {} made {} non-finite; {} (try a smaller --lr)",
                    epoch + 1,
                    i + 1,
                    paths[k],
                    kept(&out, epoch, start_epoch)
                )));
            }
            total += loss * batches[i].len() as f64;
            examples += batches[i].len();
        }
        if examples == 0 {
            bar.abandon();
            return Err(failed(format!(
                "training diverged: every step of epoch {} overflowed in {}; {} (try a smaller --lr)",
                epoch + 1,
                run.precision.name(),
                kept(&out, epoch, start_epoch)
            )));
        }
        (model, state, loss_scale) = carry;
        bar.finish_and_clear();
        if !lead {
            continue;
        }
        let secs = t0.elapsed().as_secs_f64();
        let stats = EpochStats {
            loss: total / examples as f64,
            train_acc: accuracy(&model.logits(&train.x), &train.y),
            test_acc: accuracy(&model.logits(&test.x), &test.y),
        };
        let skipped = match skipped {
            0 => String::new(),
            1 => "  1 step skipped (overflow)".to_string(),
            n => format!("  {n} steps skipped (overflow)"),
        };
        outln!(
            "epoch {:>3}/{last} loss {:.4}  train acc {:.1}%  test acc {:.1}%  {:.0} examples/s{skipped}",
            epoch + 1,
            stats.loss,
            100.0 * stats.train_acc,
            100.0 * stats.test_acc,
            train.len() as f64 / secs
        );
        history.push(stats);
        let checkpoint = Checkpoint {
            model: model.clone(),
            optimizer: state.clone(),
            epoch: Tensor::scalar((epoch + 1) as i64),
            scaling: scaling.clone(),
        };
        save_safetensors_with_metadata(&out, &checkpoint, &run.metadata(args.lr.unwrap_or(1e-3)))
            .map_err(|e| failed(format!("--out {}: {e}", out.display())))?;
    }
    if !lead {
        return Ok(());
    }
    let final_acc = accuracy(&model.logits(&test.x), &test.y);
    outln!("test accuracy: {:.2}% ({} examples)", 100.0 * final_acc, test.len());
    outln!("saved the model, optimizer state and run description to {}", out.display());
    if let Some(path) = &args.plot {
        let svg = curves(start_epoch, &history);
        ferrax::io::write_atomically(path, svg.as_bytes())
            .map_err(|e| failed(format!("--plot {}: {e}", path.display())))?;
        outln!("wrote the training curves to {}", path.display());
    }
    Ok(())
}

/// What a diverged run leaves in the checkpoint file.
fn kept(out: &Path, epoch: usize, start_epoch: usize) -> String {
    if epoch == start_epoch {
        format!("{} is left as it was", out.display())
    } else {
        format!("{} keeps the model after epoch {epoch}", out.display())
    }
}

/// A number as a person reads it: `0.001`, `1e300`.
fn readable(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-4) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// The checkpoint's epoch, checked against its optimizer's step count: with
/// a fixed batch size each epoch takes the same number of steps, so a
/// counter edited by hand shows.
fn checked_epoch<M>(path: &Path, c: &Checkpoint<M>, steps_per_epoch: usize) -> Result<usize, Failure> {
    let (epoch, step) = (c.epoch.item(), c.optimizer.step.item());
    let tampered = |why: String| usage(format!("--resume {}: {why}; the checkpoint was altered", path.display()));
    if epoch < 0.0 || epoch.fract() != 0.0 || epoch > 1e12 {
        return Err(tampered(format!("its epoch counter is {epoch}")));
    }
    if step != epoch * steps_per_epoch as f64 {
        return Err(tampered(format!(
            "its epoch counter ({epoch}) and optimizer step count ({step}) disagree: {steps_per_epoch} steps make an \
             epoch"
        )));
    }
    Ok(epoch as usize)
}

/// A progress bar for one epoch's batches, drawn on standard error when it
/// is a terminal (and nowhere otherwise).
fn progress_bar(batches: usize, epoch: usize, last: usize) -> ProgressBar {
    let bar = ProgressBar::new(batches as u64);
    let style = ProgressStyle::with_template("epoch {prefix} [{bar:20}] {msg}").expect("a valid template");
    bar.set_style(style.progress_chars("#>-"));
    bar.set_prefix(format!("{epoch:>3}/{last}"));
    bar
}

/// The loss and accuracy curves, one point per epoch.
fn curves(start_epoch: usize, history: &[EpochStats]) -> String {
    let xs: Vec<f64> = (start_epoch + 1..=start_epoch + history.len()).map(|e| e as f64).collect();
    let line = |name: &str, f: &dyn Fn(&EpochStats) -> f64, color| Series {
        name: name.into(),
        points: xs.iter().zip(history).map(|(x, s)| (*x, f(s))).collect(),
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
            note: None,
        },
        Chart {
            title: "accuracy".into(),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            log_x: false,
            log_y: false,
            series: vec![line("train", &|s| s.train_acc, "#1f77b4"), line("test", &|s| s.test_acc, "#d62728")],
            note: None,
        },
    ];
    stack(&charts)
}
