//! A small command-line parser: positional arguments and `--flag`,
//! `--key value`, `--key=value`, checked against each command's list.

use std::collections::BTreeMap;
use std::fmt;

/// The parsed command line of one subcommand.
#[derive(Debug, Default)]
pub struct Args {
    pub positional: Vec<String>,
    values: BTreeMap<String, String>,
    switches: Vec<String>,
}

/// A command line that does not fit the command.
#[derive(Debug, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

impl Args {
    /// Parses `argv` given the flags that take a value and the switches that do not.
    pub fn parse(argv: &[String], valued: &[&str], switches: &[&str]) -> Result<Args, ArgError> {
        let mut args = Args::default();
        let mut it = argv.iter();
        while let Some(a) = it.next() {
            let Some(flag) = a.strip_prefix("--") else {
                args.positional.push(a.clone());
                continue;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            if valued.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => it.next().cloned().ok_or_else(|| ArgError(format!("--{name} needs a value")))?,
                };
                args.values.insert(name.to_string(), v);
            } else if switches.contains(&name) && inline.is_none() {
                args.switches.push(name.to_string());
            } else {
                let known: Vec<String> = valued.iter().chain(switches).map(|f| format!("--{f}")).collect();
                return Err(ArgError(format!("unknown option --{name} (known: {})", known.join(", "))));
            }
        }
        Ok(args)
    }

    /// The value of `--name`, if given.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `--name` parsed, or `default`.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, ArgError> {
        match self.value(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ArgError(format!("--{name}: cannot read '{v}'"))),
        }
    }

    /// Whether the switch `--name` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn values_switches_and_positionals() {
        let a = Args::parse(&argv(&["expr", "--at", "x=-1", "--json", "--plot=a.svg"]), &["at", "plot"], &["json"])
            .unwrap();
        assert_eq!(a.positional, vec!["expr"]);
        assert_eq!(a.value("at"), Some("x=-1"));
        assert_eq!(a.value("plot"), Some("a.svg"));
        assert!(a.switch("json") && !a.switch("hessian"));
        assert_eq!(a.parsed("epochs", 3usize), Ok(3));
    }

    #[test]
    fn errors_name_the_option() {
        assert_eq!(Args::parse(&argv(&["--at"]), &["at"], &[]).unwrap_err().0, "--at needs a value");
        let e = Args::parse(&argv(&["--bogus"]), &["at"], &["json"]).unwrap_err().0;
        assert!(e.starts_with("unknown option --bogus (known: --at, --json)"), "{e}");
        let a = Args::parse(&argv(&["--epochs", "x"]), &["epochs"], &[]).unwrap();
        assert_eq!(a.parsed::<usize>("epochs", 1).unwrap_err().0, "--epochs: cannot read 'x'");
    }
}
