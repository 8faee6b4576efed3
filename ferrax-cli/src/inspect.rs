//! `ferrax inspect`: what a safetensors checkpoint holds — names, dtypes,
//! shapes, sizes and metadata — read from its header alone, so a file of
//! many gigabytes is described at once.

use std::path::PathBuf;

use ferrax::io::inspect_safetensors;

use crate::output::{outln, Failure};

/// `ferrax inspect`'s options.
#[derive(clap::Args)]
pub struct Args {
    /// The safetensors file
    file: PathBuf,
}

/// `1.5 MB` and the like.
fn human(bytes: usize) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let (mut v, mut u) = (bytes as f64, 0);
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    let header = inspect_safetensors(&args.file).map_err(|e| Failure::Run(format!("{}: {e}", args.file.display())))?;
    let width = header.tensors.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    outln!("{:<width$}  {:<5}  {:<18}  {:>12}  {:>9}", "name", "dtype", "shape", "elements", "bytes");
    let mut names: Vec<_> = header.tensors.iter().collect();
    names.sort_by(|a, b| a.name.cmp(&b.name));
    for t in &names {
        let shape = format!("{:?}", t.shape);
        outln!("{:<width$}  {:<5}  {:<18}  {:>12}  {:>9}", t.name, t.dtype, shape, t.numel(), human(t.bytes()));
    }
    let (elements, bytes): (usize, usize) =
        header.tensors.iter().map(|t| (t.numel(), t.bytes())).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let mut dtypes: Vec<&str> = header.tensors.iter().map(|t| t.dtype.as_str()).collect();
    dtypes.sort_unstable();
    dtypes.dedup();
    outln!("{} tensors, {elements} elements, {} of data ({})", header.tensors.len(), human(bytes), dtypes.join(", "));
    for (k, v) in &header.metadata {
        outln!("metadata {k}: {v}");
    }
    Ok(())
}
