//! Writing to standard output the way command-line tools do: when the
//! reader goes away (`ferrax train | head`), stop quietly instead of
//! panicking on the closed pipe.

use std::fmt;
use std::io::Write;

/// Writes one line to standard output; exits quietly if the pipe is closed.
pub fn line(args: fmt::Arguments) {
    write(format_args!("{args}\n"));
}

/// Writes to standard output and flushes; exits quietly if the pipe is closed.
pub fn write(args: fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("ferrax: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// `println!` that stops quietly on a closed pipe.
macro_rules! outln {
    () => { $crate::output::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::line(format_args!($($arg)*)) };
}
pub(crate) use outln;

/// `print!` that stops quietly on a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*)) };
}
pub(crate) use out;

/// How a command failed: a command line that makes no sense (exit status
/// 2, like clap's own errors; nothing was done), or a failure while running
/// (exit status 1).
#[derive(Debug)]
pub enum Failure {
    /// A bad command line.
    Usage(String),
    /// A failure while running.
    Run(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(m) | Failure::Run(m) => f.write_str(m),
        }
    }
}

/// A bad command line.
pub fn usage(message: impl Into<String>) -> Failure {
    Failure::Usage(message.into())
}

/// A failure while running.
pub fn failed(message: impl Into<String>) -> Failure {
    Failure::Run(message.into())
}

/// Checks, before any work, that each `(flag, path)` can be written: the
/// path is not a directory, and its directory exists or can be made under
/// the nearest one that does, which accepts a new file. Only when every
/// path passes are missing directories created, each with a message — so a
/// refusal writes nothing.
pub fn prepare_outputs(outputs: &[(&str, &std::path::Path)]) -> Result<(), Failure> {
    let mut to_create = Vec::new();
    for &(flag, path) in outputs {
        if path.is_dir() {
            return Err(usage(format!("{flag} {}: is a directory; give a file name", path.display())));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let existing = dir.ancestors().find(|a| a.as_os_str().is_empty() || a.exists()).unwrap_or(&dir);
        let existing = if existing.as_os_str().is_empty() { std::path::Path::new(".") } else { existing };
        if !existing.is_dir() {
            return Err(usage(format!("{flag} {}: cannot create a file under {}", path.display(), existing.display())));
        }
        let probe = existing.join(format!(".ferrax-write-probe-{}", std::process::id()));
        std::fs::write(&probe, b"")
            .map_err(|e| usage(format!("{flag} {}: cannot write in {}: {e}", path.display(), existing.display())))?;
        let _ = std::fs::remove_file(&probe);
        if !dir.exists() {
            to_create.push((flag, dir));
        }
    }
    for (flag, dir) in to_create {
        std::fs::create_dir_all(&dir)
            .map_err(|e| usage(format!("{flag}: cannot create directory {}: {e}", dir.display())))?;
        eprintln!("ferrax: created directory {} for {flag}", dir.display());
    }
    Ok(())
}

/// Checks that a plot file name ends in `.svg`, the one format ferrax draws.
pub fn check_svg_name(flag: &str, path: &std::path::Path) -> Result<(), Failure> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg")) {
        Ok(())
    } else {
        Err(usage(format!("{flag} {}: ferrax draws its plots as SVG; give a file name ending in .svg", path.display())))
    }
}
