//! `--config FILE`: a TOML file of options, merged in front of the command line.

use clap::CommandFactory;
use ringws::app::chat::rules::Namespace;

use crate::cli::Cli;

/// What the command line and `--config FILE` give together.
pub(crate) struct Options {
    /// The command line with the options of the file put in front of it.
    pub(crate) args: Vec<std::ffi::OsString>,
    /// The room rules: the file's `[[namespace]]` tables (they have no flag).
    pub(crate) namespaces: Vec<Namespace>,
}

/// The command line with the options of `--config FILE` put in front of it (so the command
/// line wins: later occurrences override earlier ones), each checked by the same parser as the
/// flag it names; and the file's room rules.
pub(crate) fn args_with_config_file() -> Result<Options, String> {
    read(std::env::args_os().collect())
}

pub(crate) fn read(argv: Vec<std::ffi::OsString>) -> Result<Options, String> {
    let mut path = None;
    for (i, arg) in argv.iter().enumerate() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            path = argv.get(i + 1).map(|p| p.to_string_lossy().into_owned());
        } else if let Some(p) = arg.strip_prefix("--config=") {
            path = Some(p.to_owned());
        }
    }
    let Some(path) = path else {
        return Ok(Options {
            args: argv,
            namespaces: Vec::new(),
        });
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("--config: cannot read {path}: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("--config: {path} is not valid TOML: {e}"))?;
    let command = Cli::command();
    let mut args = vec![argv[0].clone()];
    let mut namespaces = Vec::new();
    for (key, value) in table {
        if key == "namespace" {
            namespaces = value.try_into().map_err(|e| {
                format!("--config: {path}: [[namespace]]: {e} (fields: prefix, join = anyone|token|claim|signed, send = members|nobody, max-text, join-leave, history, presence)")
            })?;
            continue;
        }
        let known = command
            .get_arguments()
            .any(|a| a.get_long() == Some(key.as_str()) && key != "config");
        if !known {
            return Err(format!(
                "--config: {path}: unknown option '{key}' (keys are the long flag names, see --help)"
            ));
        }
        let flag = format!("--{key}");
        let values = match value {
            toml::Value::Array(items) => items,
            one => vec![one],
        };
        for value in values {
            match value {
                toml::Value::Boolean(true) => args.push(flag.clone().into()),
                toml::Value::Boolean(false) => {}
                toml::Value::String(s) => args.extend([flag.clone().into(), s.into()]),
                toml::Value::Integer(n) => args.extend([flag.clone().into(), n.to_string().into()]),
                other => {
                    return Err(format!(
                        "--config: {path}: '{key}' must be a string, a number or a boolean, not {}",
                        other.type_str()
                    ));
                }
            }
        }
    }
    args.extend(argv.into_iter().skip(1));
    Ok(Options { args, namespaces })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringws::app::chat::rules::{JoinRule, SendRule};

    fn with_file(text: &str) -> Result<Options, String> {
        let path = std::env::temp_dir().join(format!("ringws-config-{}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let argv = ["ringws", "--config", path.to_str().unwrap()];
        let options = read(argv.iter().map(Into::into).collect());
        let _ = std::fs::remove_file(&path);
        options
    }

    #[test]
    fn namespaces_come_from_their_tables() {
        let options = with_file(
            "max-rooms = 4\n[[namespace]]\nprefix = \"news:\"\nsend = \"nobody\"\nmax-text = 100\n\n[[namespace]]\nprefix = \"team-\"\njoin = \"claim\"\n",
        )
        .unwrap();
        assert_eq!(options.namespaces.len(), 2);
        assert_eq!(options.namespaces[0].prefix, "news:");
        assert_eq!(options.namespaces[0].send, SendRule::Nobody);
        assert_eq!(options.namespaces[0].max_text, Some(100));
        assert_eq!(options.namespaces[1].join, JoinRule::Claim);
        assert!(options.args.iter().any(|a| a == "--max-rooms"));
        let bad = with_file("[[namespace]]\nprefix = \"x\"\njoin = \"everyone\"\n");
        let e = bad.err().unwrap();
        assert!(e.contains("[[namespace]]") && e.contains("everyone"), "{e}");
        let unknown = with_file("[[namespace]]\nprefix = \"x\"\nwho = 1\n");
        assert!(unknown.err().unwrap().contains("who"));
    }
}
